//! The dataplane process: started with a SOCK_SEQPACKET socketpair as its descriptor 3 and a
//! `Start` message on it (everything it runs with, the XDP program's maps beside it as
//! SCM_RIGHTS), watched, restarted after a crash with a doubling delay, and given up on — which
//! stops rotord — when restarting cannot help (a `Failed` report of a configuration, key or
//! version kind) or has not helped `FAILURES_MAX` times in a row.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rotor_proto::control::{DataplaneStart, FailureKind, FromDataplane, ToDataplane};

use super::kept::KeptNumber;
use crate::error::DaemonError;
use crate::log_at;

/// The child's descriptor number for the control socket.
const CONTROL_CHILD_FD: RawFd = 3;
/// The least time between a dataplane's death and its restart: its crypto epoch is its start
/// second, and peers drop frames of a reused epoch as replays.
const RESTART_DELAY_MIN: Duration = Duration::from_millis(1100);
/// Failures in a row after which rotord gives up and stops.
pub const FAILURES_MAX: u32 = 6;
/// A dataplane that ran this long before failing starts a new count of failures in a row.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// How long a dataplane gets to leave the ring and exit on shutdown before it is killed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);
/// Largest report read from the dataplane.
const REPORT_SIZE_MAX: usize = 1 << 20;

struct Running {
    child: Child,
    control: OwnedFd,
    started: Instant,
    /// What the dataplane said before it exited, if it said why.
    failure: Option<(FailureKind, String)>,
}

/// The supervised dataplane.
pub struct Supervisor {
    binary: PathBuf,
    /// What every start sends; the epoch, ring sequence and seed are set per start.
    start: DataplaneStart,
    /// The XDP programs' `xsks` and `counters` map fds (two for each link on XDP, in link
    /// order), sent with every `Start`.
    maps: Vec<RawFd>,
    running: Option<Running>,
    restart_at: Option<Instant>,
    policy: RestartPolicy,
    /// The last epoch started with, kept across rotord restarts.
    epoch: KeptNumber,
    /// Dataplanes started by this rotord.
    starts: u64,
    buf: Vec<u8>,
}

impl Supervisor {
    pub fn new(
        binary: PathBuf,
        start: DataplaneStart,
        maps: Vec<RawFd>,
        epoch: KeptNumber,
    ) -> Supervisor {
        Supervisor {
            binary,
            start,
            maps,
            running: None,
            restart_at: None,
            policy: RestartPolicy::default(),
            epoch,
            starts: 0,
            buf: vec![0; REPORT_SIZE_MAX],
        }
    }

    /// The start message of every later dataplane (a reload changed what it runs with).
    pub fn start_mut(&mut self) -> &mut DataplaneStart {
        &mut self.start
    }

    /// Every later dataplane gets these map fds with its start (a reload added or removed an
    /// XDP link).
    pub fn set_maps(&mut self, maps: Vec<RawFd>) {
        self.maps = maps;
    }

    /// Every later dataplane starts votequorum from this expected_votes_tracking barrier.
    pub fn set_ev_tracking_barrier(&mut self, barrier: u32) {
        if let Some(q) = self.start.quorum.as_mut() {
            q.ev_tracking_barrier = barrier;
        }
    }

    /// The control socket of the running dataplane, if one runs.
    pub fn control_fd(&self) -> Option<RawFd> {
        self.running.as_ref().map(|r| r.control.as_raw_fd())
    }

    /// Dataplanes started by this rotord (the first one and every restart).
    pub fn starts(&self) -> u64 {
        self.starts
    }

    /// Starts a dataplane that will number its rings above `ring_seq`.
    pub fn spawn(&mut self, ring_seq: u64) -> Result<(), DaemonError> {
        let binary = self.binary.display().to_string();
        let spawn_error = |reason: String| DaemonError::Spawn {
            binary: binary.clone(),
            reason,
        };
        let mut pair = [0; 2];
        // SAFETY: socketpair fills two descriptors we then own.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            return Err(spawn_error(format!(
                "socketpair: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: both descriptors are fresh and ours.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--control-fd").arg(CONTROL_CHILD_FD.to_string());
        let theirs_fd = theirs.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe dup2/fcntl/prctl are called.
        unsafe {
            cmd.pre_exec(move || {
                place_fd(theirs_fd, CONTROL_CHILD_FD)?;
                // The dataplane must not outlive a rotord killed without a chance to stop it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| spawn_error(e.to_string()))?;
        drop(theirs);
        let pid = child.id();
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || relay_stderr(err, pid));
        }
        let mut start = self.start.clone();
        start.epoch = self.next_epoch();
        start.ring_seq_start = ring_seq;
        start.seed = seed(start.epoch);
        let mut msg = Vec::new();
        ToDataplane::Start(Box::new(start)).encode(&mut msg);
        let sent = ipc_shm::handoff::send_message(ours.as_raw_fd(), &msg, &self.maps);
        // The message holds the key: wipe it.
        zeroize::Zeroize::zeroize(&mut msg);
        if let Err(e) = sent {
            let _ = child.kill();
            let _ = child.wait();
            return Err(spawn_error(format!("sending the start message: {e}")));
        }
        // Which of its lines the dataplane sends up (until this arrives, all of them): what
        // rotord's own logger runs on.
        if let Some(logging) = rotor_log::config() {
            ToDataplane::Logging(logging).encode(&mut msg);
            if let Err(e) = ipc_shm::handoff::send_message(ours.as_raw_fd(), &msg, &[]) {
                log_at!(
                    Warning,
                    "MAIN",
                    "sending the logging configuration to the dataplane: {e}"
                );
            }
        }
        set_nonblocking(ours.as_raw_fd());
        log_at!(Notice, "MAIN", "dataplane started (pid {pid})");
        self.starts += 1;
        self.running = Some(Running {
            child,
            control: ours,
            started: Instant::now(),
            failure: None,
        });
        Ok(())
    }

    /// An epoch above every earlier one of this node: the start second, or one more than the
    /// last (kept on disk, so a rotord restarted within the second of its last start does not
    /// reuse it: its frames would be dropped as replays).
    fn next_epoch(&mut self) -> u32 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let epoch = now.max(self.epoch.saved() + 1).min(u64::from(u32::MAX)) as u32;
        self.epoch.record(u64::from(epoch));
        epoch
    }

    /// Notices a dataplane that exited and restarts it when it is time, or gives up. `on_down`
    /// runs once when a dataplane is found gone. An error means rotord must stop.
    pub fn supervise(&mut self, ring_seq: u64, on_down: impl FnOnce()) -> Result<(), DaemonError> {
        if let Some(running) = &mut self.running {
            match running.child.try_wait() {
                Ok(Some(status)) => {
                    let mut running = self.running.take().expect("checked above");
                    // A Failed report and the last log lines sent just before the exit may
                    // still be unread.
                    drain_failure(&mut running, &mut self.buf);
                    on_down();
                    self.on_exit(running, status)?;
                }
                Ok(None) => {}
                Err(e) => log_at!(Warning, "MAIN", "waitpid on the dataplane: {e}"),
            }
        }
        if self.running.is_none() && self.restart_at.is_some_and(|t| Instant::now() >= t) {
            self.restart_at = None;
            self.spawn(ring_seq)?;
        }
        Ok(())
    }

    fn on_exit(
        &mut self,
        running: Running,
        status: std::process::ExitStatus,
    ) -> Result<(), DaemonError> {
        let pid = running.child.id();
        let kind = running.failure.as_ref().map(|(kind, _)| *kind);
        let last = match &running.failure {
            Some((_, message)) => format!("{message} ({})", describe_status(status)),
            None => describe_status(status),
        };
        match self.policy.on_exit(running.started.elapsed(), kind) {
            Decision::Stop => {
                let (kind, message) = running.failure.expect("Stop comes from a failure report");
                Err(DaemonError::Dataplane { kind, message })
            }
            Decision::GiveUp { failures } => Err(DaemonError::DataplaneGaveUp { failures, last }),
            Decision::Restart { delay, failures } => {
                log_at!(
                    Error,
                    "MAIN",
                    "dataplane (pid {pid}) {last}; restarting it in {:.1} s (failure {failures} \
                     in a row; rotord gives up at {FAILURES_MAX})",
                    delay.as_secs_f64()
                );
                self.restart_at = Some(Instant::now() + delay);
                Ok(())
            }
        }
    }

    /// Hands every report waiting on the control socket to `on_report`; a `Failed` report is
    /// also kept for the decision when the process exits.
    pub fn read_reports(&mut self, mut on_report: impl FnMut(FromDataplane)) {
        let Some(running) = &mut self.running else {
            return;
        };
        let fd = running.control.as_raw_fd();
        let pid = running.child.id();
        loop {
            let n = match ipc_shm::handoff::recv_message(fd, &mut self.buf) {
                Ok((0, _)) => return, // hang-up: supervise() sees the exit
                Ok((n, _)) => n,
                Err(_) => return,
            };
            match FromDataplane::decode(&self.buf[..n]) {
                Ok(FromDataplane::Failed { kind, message }) => {
                    // Logged once, with the decision, when the process exits.
                    running.failure = Some((kind, message.clone()));
                    on_report(FromDataplane::Failed { kind, message });
                }
                Ok(FromDataplane::Log(record)) => rotor_log::emit(&record, pid, DATAPLANE_NAME),
                Ok(report) => on_report(report),
                Err(e) => log_at!(
                    Warning,
                    "MAIN",
                    "a malformed report from the dataplane was dropped: {e}"
                ),
            }
        }
    }

    /// Sends one message (and descriptors) to the running dataplane; `false` when none runs.
    pub fn send(&self, msg: &[u8], fds: &[RawFd]) -> std::io::Result<bool> {
        match &self.running {
            None => Ok(false),
            Some(r) => {
                ipc_shm::handoff::send_message(r.control.as_raw_fd(), msg, fds).map(|()| true)
            }
        }
    }

    /// Asks the dataplane to leave the ring and waits (bounded) for it to exit.
    pub fn shutdown(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let mut msg = Vec::new();
        ToDataplane::Shutdown.encode(&mut msg);
        let _ = ipc_shm::handoff::send_message(running.control.as_raw_fd(), &msg, &[]);
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        loop {
            match running.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    log_at!(
                        Warning,
                        "MAIN",
                        "the dataplane did not stop within {} s; killing it",
                        SHUTDOWN_WAIT.as_secs()
                    );
                    let _ = running.child.kill();
                    let _ = running.child.wait();
                    break;
                }
            }
        }
    }
}

/// Reads what a dataplane that exited left on its control socket, keeping a `Failed` report
/// and writing its log lines (the rest describes a ring that is gone).
fn drain_failure(running: &mut Running, buf: &mut [u8]) {
    let fd = running.control.as_raw_fd();
    let pid = running.child.id();
    while let Ok((n, _)) = ipc_shm::handoff::recv_message(fd, buf) {
        if n == 0 {
            return;
        }
        match FromDataplane::decode(&buf[..n]) {
            Ok(FromDataplane::Failed { kind, message }) => running.failure = Some((kind, message)),
            Ok(FromDataplane::Log(record)) => rotor_log::emit(&record, pid, DATAPLANE_NAME),
            _ => {}
        }
    }
}

/// What to do about a dataplane that exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after `delay`; `failures` in a row so far.
    Restart { delay: Duration, failures: u32 },
    /// It failed `failures` times in a row: stop rotord.
    GiveUp { failures: u32 },
    /// It said restarting cannot help: stop rotord.
    Stop,
}

/// When a dataplane that exited is restarted: after `RESTART_DELAY_MIN`, doubling with each
/// failure in a row, never after a failure restarting cannot fix, and
/// not after `FAILURES_MAX` failures in a row; a dataplane that ran `STABLE_RUN` starts a new
/// count.
#[derive(Debug, Default)]
pub struct RestartPolicy {
    /// Failures since the last dataplane that ran `STABLE_RUN`.
    failures: u32,
}

impl RestartPolicy {
    /// A dataplane exited after running `ran_for`, having reported `failure` (if it said why).
    pub fn on_exit(&mut self, ran_for: Duration, failure: Option<FailureKind>) -> Decision {
        if failure.is_some_and(|kind| !kind.restart_may_help()) {
            return Decision::Stop;
        }
        if ran_for >= STABLE_RUN {
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures >= FAILURES_MAX {
            return Decision::GiveUp {
                failures: self.failures,
            };
        }
        // 1.1, 2.2, 4.4, 8.8, 17.6 s: about half a minute of trying before giving up.
        let delay = RESTART_DELAY_MIN.saturating_mul(1 << (self.failures - 1));
        Decision::Restart {
            delay,
            failures: self.failures,
        }
    }
}

/// "exited with status 15", "was killed by signal 9".
fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "exited".to_owned(),
    }
}

/// A seed for the node's randomness, different for every start.
fn seed(epoch: u32) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    (u64::from(epoch) << 32 | u64::from(nanos)) ^ u64::from(std::process::id())
}

/// The dataplane's name in log-file lines of what it logged.
const DATAPLANE_NAME: &str = "rotor-dataplane";

/// Logs what dataplane `pid` writes on stderr: it logs through the control socket, so this is
/// what was written before its logger ran or outside it (a panic, a library): a warning.
fn relay_stderr(err: std::process::ChildStderr, pid: u32) {
    for line in BufReader::new(err).lines().map_while(Result::ok) {
        let record = rotor_log::LogRecord {
            level: rotor_log::Level::Warning,
            subsys: "MAIN".into(),
            file: String::new(),
            line: 0,
            message: format!("dataplane stderr: {line}"),
            unix_time_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        rotor_log::emit(&record, pid, DATAPLANE_NAME);
    }
}

/// Makes `fd` the child's descriptor `target`, inheritable across exec: dup2, or — when it
/// already has that number, where dup2 would do nothing — clearing close-on-exec.
/// Async-signal-safe (for pre_exec).
fn place_fd(fd: RawFd, target: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 and fcntl on descriptors of this (forked) process; no memory is touched.
    let r = unsafe {
        if fd == target {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, target)
        }
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_and_give_up() {
        let mut policy = RestartPolicy::default();
        let quick = Duration::from_millis(10);
        let mut delays = Vec::new();
        for _ in 1..FAILURES_MAX {
            match policy.on_exit(quick, None) {
                Decision::Restart { delay, .. } => delays.push(delay.as_millis()),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delays, [1100, 2200, 4400, 8800, 17600]);
        assert_eq!(
            policy.on_exit(quick, Some(FailureKind::Runtime)),
            Decision::GiveUp {
                failures: FAILURES_MAX
            }
        );
    }

    #[test]
    fn a_long_run_starts_a_new_count() {
        let mut policy = RestartPolicy::default();
        for _ in 0..4 {
            policy.on_exit(Duration::ZERO, None);
        }
        assert_eq!(
            policy.on_exit(STABLE_RUN, Some(FailureKind::Transport)),
            Decision::Restart {
                delay: RESTART_DELAY_MIN,
                failures: 1
            }
        );
    }

    #[test]
    fn config_key_and_version_failures_stop_at_once() {
        for kind in [FailureKind::Config, FailureKind::Key, FailureKind::Version] {
            let mut policy = RestartPolicy::default();
            assert_eq!(policy.on_exit(Duration::ZERO, Some(kind)), Decision::Stop);
        }
    }
}
