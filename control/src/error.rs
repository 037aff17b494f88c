//! Why rotord stops, and the exit status each reason gives. The numbers are corosync's
//! (`exec/util.h`), so that service managers and scripts written for corosync read them the same
//! way; `Restart=on-failure` units should not restart on the statuses restarting cannot fix
//! (the packaged unit says `RestartPreventExitStatus=7 8 17 18`).

use thiserror::Error;

use rotor_proto::control::FailureKind;

/// A clean stop: SIGTERM, SIGINT or a cfg shutdown.
pub const EXIT_OK: u8 = 0;
/// logging{} cannot be applied (corosync's `COROSYNC_DONE_LOGCONFIGREAD`).
pub const EXIT_LOG_CONFIG: u8 = 7;
/// The configuration or the authkey cannot work (corosync's `COROSYNC_DONE_MAINCONFIGREAD`).
pub const EXIT_CONFIG: u8 = 8;
/// Anything else that stops the node: a transport that cannot be set up, a dataplane that
/// keeps failing, a kill by another node (corosync's `COROSYNC_DONE_FATAL_ERR`).
pub const EXIT_FATAL: u8 = 15;
/// The pid file cannot be created, locked or written (corosync's
/// `COROSYNC_DONE_ACQUIRE_LOCK`).
pub const EXIT_ACQUIRE_LOCK: u8 = 17;
/// Another rotord already serves this network namespace or holds the pid file (corosync's
/// `COROSYNC_DONE_ALREADY_RUNNING`).
pub const EXIT_ALREADY_RUNNING: u8 = 18;

/// What stopped rotord. Each message is for the operator: it names the file, key, address or
/// socket concerned and, where it can, what to do.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// corosync.conf could not be read or is invalid (file:line: key: reason).
    #[error("{0}")]
    Config(String),
    /// The authkey cannot be used (its message names the file).
    #[error("{0}")]
    Key(String),
    /// logging{} cannot be applied.
    #[error("{0}")]
    Log(String),
    /// The client sockets are taken.
    #[error(
        "cannot listen on abstract socket @{name}: {reason} (is another rotord running in this \
         network namespace?)"
    )]
    AlreadyRunning { name: String, reason: String },
    /// `--pid-file` cannot be created, locked or written.
    #[error("pid file {path}: {reason}")]
    PidFile { path: String, reason: String },
    /// Another rotord holds `--pid-file`.
    #[error("pid file {path} is locked by another rotord (pid {pid}); stop it first")]
    PidFileLocked { path: String, pid: String },
    /// `rotor.metrics_listen` cannot be listened on.
    #[error(
        "rotor.metrics_listen {addr}: cannot listen: {reason} (another process on the port, or \
         an address this host does not have?)"
    )]
    Metrics { addr: String, reason: String },
    /// The transport cannot be set up (e.g. `transport: xdp` on an interface that refuses the
    /// program).
    #[error("{0}")]
    Transport(String),
    /// The dataplane said restarting it cannot help.
    #[error("the dataplane cannot run: {message}")]
    Dataplane { kind: FailureKind, message: String },
    /// The dataplane failed too often in a row.
    #[error(
        "the dataplane failed {failures} times in a row (last: {last}); giving up, fix the cause \
         and start rotord again"
    )]
    DataplaneGaveUp { failures: u32, last: String },
    /// The dataplane process could not be started at all.
    #[error("cannot start the dataplane {binary}: {reason}")]
    Spawn { binary: String, reason: String },
    /// Another node asked this one to leave the cluster and stop (cfg kill).
    #[error("killed by node {by}: {reason}")]
    Killed { by: u32, reason: String },
}

impl DaemonError {
    /// The exit status for this reason.
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Config(_) | DaemonError::Key(_) => EXIT_CONFIG,
            DaemonError::Log(_) => EXIT_LOG_CONFIG,
            DaemonError::AlreadyRunning { .. } | DaemonError::PidFileLocked { .. } => {
                EXIT_ALREADY_RUNNING
            }
            DaemonError::PidFile { .. } => EXIT_ACQUIRE_LOCK,
            DaemonError::Dataplane { kind, .. } => match kind {
                FailureKind::Config | FailureKind::Key => EXIT_CONFIG,
                _ => EXIT_FATAL,
            },
            DaemonError::Transport(_)
            | DaemonError::Metrics { .. }
            | DaemonError::DataplaneGaveUp { .. }
            | DaemonError::Spawn { .. }
            | DaemonError::Killed { .. } => EXIT_FATAL,
        }
    }
}
