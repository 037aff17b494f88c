//! SAM, the simple availability manager, with libsam's semantics (corosync's `sam.h`,
//! `sam_overview(3)`): a process supervises itself.
//!
//! [`Sam::initialize`] takes a health-check interval and a [`Policy`]; [`Sam::register`] forks.
//! The process that called it becomes the *supervisor* and never returns from it; the child
//! returns with its instance number and is the application. Once the application calls
//! [`Sam::start`] it must send a health check ([`Sam::hc_send`], or a callback SAM's own
//! thread calls: [`Sam::hc_callback_register`]) at least once per interval. When it misses
//! one, the supervisor sends the warn signal (SIGTERM unless [`Sam::warn_signal_set`] says
//! otherwise), and SIGKILL one interval later; when the instance dies while health checking
//! (crash, kill, exit), the policy decides: restart forks a new instance (the next instance
//! number, the data of [`Sam::data_store`] kept), quit ends the supervisor with the
//! instance's exit status. An instance that exits while not health checking ends the
//! supervisor with its status, whatever the policy. The quorum policies also stop the
//! instance (warn signal, then SIGKILL) when the node loses quorum, and hold
//! [`Sam::start`] until the node is quorate. With the cmap flag the supervisor publishes the
//! process under `resources.process.<supervisor pid>.` ([`keys`]).
//!
//! What appears where: every decision of the supervisor is one line on its standard error
//! (the application's, inherited), `<level> [SAM   ] sam[<supervisor pid>]: instance N (pid
//! P): …`; the cmap keys let tools watch the state (`rotor cmap track resources.process.`).
//!
//! Register before starting threads: only the thread that calls [`Sam::register`] goes on,
//! in the new process (fork(2)); the supervisor runs on the calling thread.

mod callback;
mod instance;
mod link;
mod supervisor;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use std::{fmt, io};

use rotor_proto::Status;

use crate::Error;
use link::{Link, Message};
use supervisor::{QuorumWatch, Supervisor};

/// The most data [`Sam::data_store`] keeps. The supervisor holds a copy and every instance
/// gets one, so it is bounded.
pub const DATA_SIZE_MAX: usize = 16 << 20;

/// How long an instance has after the warn signal when the node lost quorum and SAM has no
/// time interval (with one, it has one interval).
pub const KILL_GRACE_WITHOUT_INTERVAL: Duration = Duration::from_secs(1);

/// `SAM_RECOVERY_POLICY_*` of `sam.h`, the bits [`Policy::from_bits`] reads.
pub const RECOVERY_POLICY_QUIT: u32 = 1;
pub const RECOVERY_POLICY_RESTART: u32 = 2;
/// A flag: stop the instance when quorum is lost, start it only when quorate.
pub const RECOVERY_POLICY_QUORUM: u32 = 0x08;
pub const RECOVERY_POLICY_QUORUM_QUIT: u32 = RECOVERY_POLICY_QUORUM | RECOVERY_POLICY_QUIT;
pub const RECOVERY_POLICY_QUORUM_RESTART: u32 = RECOVERY_POLICY_QUORUM | RECOVERY_POLICY_RESTART;
/// A flag: publish the process in cmap (`SAM_RECOVERY_POLICY_CONFDB` is the same bit).
pub const RECOVERY_POLICY_CMAP: u32 = 0x10;

/// The cmap keys of a supervised process, as corosync's libsam writes them.
pub mod keys {
    pub use rotor_proto::cmap::PROCESS_RESOURCES_PREFIX;

    /// `quit` or `restart` (string).
    pub const RECOVERY: &str = "recovery";
    /// The health-check interval in milliseconds (u64; 0: no time limit).
    pub const POLL_PERIOD: &str = "poll_period";
    /// When the supervisor last heard from the instance: CLOCK_MONOTONIC in nanoseconds
    /// (u64), as corosync's `cs_timestamp_get`.
    pub const LAST_UPDATED: &str = "last_updated";
    /// One of the `STATE_*` values (string).
    pub const STATE: &str = "state";

    /// Registered, not health checking.
    pub const STATE_STOPPED: &str = "stopped";
    /// Health checking.
    pub const STATE_RUNNING: &str = "running";
    /// `start` waits for the node to be quorate (quorum policies).
    pub const STATE_WAITING_FOR_QUORUM: &str = "waiting for quorum";
    /// The supervisor quit after a failure (policy quit, or `mark_failed`); the keys stay.
    pub const STATE_FAILED: &str = "failed";

    /// `resources.process.<pid>.`
    pub fn process_prefix(supervisor_pid: u32) -> String {
        format!("{PROCESS_RESOURCES_PREFIX}{supervisor_pid}.")
    }
}

/// What the supervisor does when an instance fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// End the supervisor with the instance's exit status.
    Quit,
    /// Start a new instance.
    Restart,
}

/// A recovery policy (`sam_recovery_policy_t`): the recovery and its two flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub recovery: Recovery,
    /// Tie the instance to quorum: stopped when quorum is lost, started only when quorate.
    pub quorum: bool,
    /// Publish the process's state in cmap.
    pub cmap: bool,
}

impl Policy {
    pub const QUIT: Policy = Policy {
        recovery: Recovery::Quit,
        quorum: false,
        cmap: false,
    };
    pub const RESTART: Policy = Policy {
        recovery: Recovery::Restart,
        quorum: false,
        cmap: false,
    };
    pub const QUORUM_QUIT: Policy = Policy {
        recovery: Recovery::Quit,
        quorum: true,
        cmap: false,
    };
    pub const QUORUM_RESTART: Policy = Policy {
        recovery: Recovery::Restart,
        quorum: true,
        cmap: false,
    };

    /// The same policy with the cmap flag.
    pub const fn with_cmap(self) -> Policy {
        Policy { cmap: true, ..self }
    }

    /// `sam.h`'s bits: quit (1) or restart (2), optionally with the quorum (0x08) and cmap
    /// (0x10) flags; anything else is refused, as `sam_initialize` refuses it.
    pub fn from_bits(bits: u32) -> Result<Policy, SamError> {
        let recovery = match bits & !(RECOVERY_POLICY_QUORUM | RECOVERY_POLICY_CMAP) {
            RECOVERY_POLICY_QUIT => Recovery::Quit,
            RECOVERY_POLICY_RESTART => Recovery::Restart,
            _ => return Err(SamError::InvalidPolicy(bits)),
        };
        Ok(Policy {
            recovery,
            quorum: bits & RECOVERY_POLICY_QUORUM != 0,
            cmap: bits & RECOVERY_POLICY_CMAP != 0,
        })
    }

    pub fn bits(self) -> u32 {
        let recovery = match self.recovery {
            Recovery::Quit => RECOVERY_POLICY_QUIT,
            Recovery::Restart => RECOVERY_POLICY_RESTART,
        };
        let quorum = if self.quorum {
            RECOVERY_POLICY_QUORUM
        } else {
            0
        };
        let cmap = if self.cmap { RECOVERY_POLICY_CMAP } else { 0 };
        recovery | quorum | cmap
    }

    /// The `recovery` key's value: `quit` or `restart`.
    pub fn recovery_name(self) -> &'static str {
        match self.recovery {
            Recovery::Quit => "quit",
            Recovery::Restart => "restart",
        }
    }
}

/// `restart`, `quorum-quit`, `quit+cmap`, …
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quorum {
            f.write_str("quorum-")?;
        }
        f.write_str(self.recovery_name())?;
        if self.cmap {
            f.write_str("+cmap")?;
        }
        Ok(())
    }
}

/// Where a process's SAM is (libsam's internal status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Initialized,
    /// An instance, not health checking.
    Registered,
    /// An instance, health checking.
    Started,
    Finalized,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Initialized => "initialized (not registered yet)",
            State::Registered => "registered and not health checking",
            State::Started => "health checking",
            State::Finalized => "finalized",
        })
    }
}

/// Why a SAM call failed. [`SamError::status`] is corosync's `cs_error_t` for it.
#[derive(Debug, thiserror::Error)]
pub enum SamError {
    #[error("sam {call}: not allowed while SAM is {state} ({call} needs {needs})")]
    State {
        call: &'static str,
        state: State,
        needs: &'static str,
    },
    #[error(
        "sam initialize: recovery policy {0:#x} is neither quit (1) nor restart (2), with or \
         without the quorum (0x08) and cmap (0x10) flags"
    )]
    InvalidPolicy(u32),
    #[error(
        "sam hc_callback_register: a health-check callback needs a time interval; initialize \
         SAM with an interval above 0 ms, or send health checks with hc_send"
    )]
    CallbackWithoutInterval,
    #[error("sam hc_callback_register: no callback given and none registered")]
    NoCallback,
    #[error("sam data_store: {size} bytes is more than SAM keeps (at most {DATA_SIZE_MAX} bytes)")]
    DataTooLarge { size: usize },
    #[error(
        "sam data_restore: the buffer holds {given} bytes, the stored data is {stored} bytes \
         (data_getsize says how much to allocate)"
    )]
    BufferTooSmall { given: usize, stored: usize },
    #[error("sam warn_signal_set: {0} is not a signal number (1 to {max})", max = signal_max())]
    InvalidSignal(i32),
    #[error("sam mark_failed: needs a recovery policy with the cmap flag")]
    MarkFailedWithoutCmap,
    #[error(
        "sam register: SAM is already registered in this process (it is an instance, or a \
         process it forked); register once, early in the application"
    )]
    AlreadyRegistered,
    #[error(
        "sam {call}: called in pid {pid}, a process the instance forked; only the instance \
         (pid {instance}) talks to its supervisor"
    )]
    NotTheInstance {
        call: &'static str,
        pid: u32,
        instance: u32,
    },
    #[error("sam {call}: the supervisor (pid {supervisor}) is gone: {source}")]
    SupervisorGone {
        call: &'static str,
        supervisor: u32,
        source: io::Error,
    },
    #[error("sam {call}: the supervisor refused ({}): {message}", status.name())]
    Refused {
        call: &'static str,
        status: Status,
        message: String,
    },
    #[error("sam: {what}: {source}")]
    System { what: String, source: io::Error },
    #[error("sam: {what}: {source}")]
    Service { what: &'static str, source: Error },
}

impl SamError {
    /// corosync's `cs_error_t` for the failure, as `sam.h` documents it.
    pub fn status(&self) -> Status {
        match self {
            SamError::State { .. } | SamError::AlreadyRegistered => Status::BadHandle,
            SamError::NotTheInstance { .. } => Status::BadHandle,
            SamError::InvalidPolicy(_)
            | SamError::CallbackWithoutInterval
            | SamError::NoCallback
            | SamError::BufferTooSmall { .. }
            | SamError::InvalidSignal(_)
            | SamError::MarkFailedWithoutCmap => Status::InvalidParam,
            SamError::DataTooLarge { .. } => Status::TooBig,
            SamError::Refused { status, .. } => *status,
            SamError::SupervisorGone { .. } | SamError::System { .. } => Status::Library,
            SamError::Service { source, .. } => match source {
                Error::Status(s) | Error::Refused { status: s, .. } => *s,
                Error::Attach(ipc_shm::AttachError::PermissionDenied { .. }) => Status::Access,
                Error::TryAgain => Status::TryAgain,
                _ => Status::Library,
            },
        }
    }
}

/// The largest signal number (`SIGRTMAX`).
fn signal_max() -> i32 {
    libc::SIGRTMAX()
}

/// An application's health check for [`Sam::hc_callback_register`]: `true` while healthy.
pub type HealthCheck = Box<dyn FnMut() -> bool + Send + 'static>;

/// Whether a process (and every process it forks) has registered: a second supervisor in
/// one process tree would supervise its own supervisor's instance.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// One process's SAM (libsam keeps one per process; so does the C library over this).
/// Cheap to share: calls take `&self` and are serialised inside, as libsam's mutex does.
pub struct Sam {
    shared: Arc<Mutex<Inner>>,
}

pub(crate) struct Inner {
    state: State,
    time_interval_ms: u32,
    policy: Policy,
    warn_signal: i32,
    /// Invariant: `data.len() <= DATA_SIZE_MAX`.
    data: Vec<u8>,
    /// The instance this process is (0 before the first register).
    instance_id: u32,
    /// The quorum service, from initialize until register hands it to the supervisor.
    quorum: Option<QuorumWatch>,
    /// In an instance: the way to its supervisor.
    link: Option<Link>,
    /// In an instance with a health-check callback: SAM's thread.
    callback: Option<callback::Thread>,
}

impl Sam {
    /// `sam_initialize`: health checks at least every `time_interval_ms` milliseconds once
    /// started (0: no time limit, only the instance's death is noticed), recovery by `policy`.
    /// A quorum policy attaches to the local rotord's quorum service now and fails if it
    /// cannot.
    pub fn initialize(time_interval_ms: u32, policy: Policy) -> Result<Sam, SamError> {
        let quorum = if policy.quorum {
            Some(QuorumWatch::connect().map_err(|source| SamError::Service {
                what: "cannot attach to the quorum service for a quorum policy",
                source,
            })?)
        } else {
            None
        };
        Ok(Sam {
            shared: Arc::new(Mutex::new(Inner {
                state: State::Initialized,
                time_interval_ms,
                policy,
                warn_signal: libc::SIGTERM,
                data: Vec::new(),
                instance_id: 0,
                quorum,
                link: None,
                callback: None,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared)
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    pub fn policy(&self) -> Policy {
        self.lock().policy
    }

    pub fn time_interval_ms(&self) -> u32 {
        self.lock().time_interval_ms
    }

    /// This process's instance number (1 for the first; 0 before register).
    pub fn instance_id(&self) -> u32 {
        self.lock().instance_id
    }

    /// The warn signal in effect.
    pub fn warn_signal(&self) -> i32 {
        self.lock().warn_signal
    }

    /// `sam_register`: forks. Returns in each new instance with its number (1, 2, …;
    /// wrapping to 0 after `u32::MAX`), which starts after this call every time it is
    /// restarted. The calling process becomes the supervisor and returns only if
    /// supervision itself fails (then no instance is left running); when the policy quits
    /// it exits with the instance's status (128 + the signal for an instance killed by one).
    pub fn register(&self) -> Result<u32, SamError> {
        let mut inner = self.lock();
        check(
            &inner,
            "register",
            &[State::Initialized],
            "an initialized SAM",
        )?;
        if REGISTERED.swap(true, Ordering::SeqCst) {
            return Err(SamError::AlreadyRegistered);
        }
        let supervisor = match Supervisor::new(&mut inner) {
            Ok(s) => s,
            Err(e) => {
                REGISTERED.store(false, Ordering::SeqCst);
                return Err(e);
            }
        };
        // Only an instance returns Ok: the supervisor exits or fails.
        let link = supervisor.run(&mut inner)?;
        inner.link = Some(link);
        inner.state = State::Registered;
        Ok(inner.instance_id)
    }

    /// `sam_start`: health checking begins; from now on a health check is due every
    /// interval. With a quorum policy this waits until the node is quorate.
    pub fn start(&self) -> Result<(), SamError> {
        let mut inner = self.lock();
        check(
            &inner,
            "start",
            &[State::Registered],
            "a registered instance not health checking",
        )?;
        inner.call("start", &Message::Start)?;
        inner.state = State::Started;
        if let Some(t) = &inner.callback {
            t.start();
        }
        Ok(())
    }

    /// `sam_stop`: health checking ends; the instance may now exit without recovery.
    pub fn stop(&self) -> Result<(), SamError> {
        self.lock().stop()
    }

    /// `sam_hc_send`: one health check.
    pub fn hc_send(&self) -> Result<(), SamError> {
        self.lock().hc_send()
    }

    /// `sam_finalize`: stops health checking if started; SAM can do nothing more in this
    /// process. The instance may then exit without recovery.
    pub fn finalize(&self) -> Result<(), SamError> {
        let mut inner = self.lock();
        check(
            &inner,
            "finalize",
            &[State::Initialized, State::Registered, State::Started],
            "a SAM not finalized",
        )?;
        if inner.state == State::Started {
            inner.stop()?;
        }
        if let Some(t) = inner.callback.take() {
            t.shutdown();
        }
        inner.state = State::Finalized;
        inner.data = Vec::new();
        inner.quorum = None;
        Ok(())
    }

    /// `sam_hc_callback_register`: SAM's own thread sends the health checks while started
    /// and calls `callback` once per interval; once it returns `false` the health checks
    /// stop, so the supervisor warns and then kills the instance. `None` gives the health
    /// checks back to the application (`hc_send`). Only in a registered instance that is
    /// not health checking, and only with a time interval.
    pub fn hc_callback_register(&self, callback: Option<HealthCheck>) -> Result<(), SamError> {
        let mut inner = self.lock();
        check(
            &inner,
            "hc_callback_register",
            &[State::Registered],
            "a registered instance not health checking",
        )?;
        if inner.time_interval_ms == 0 {
            return Err(SamError::CallbackWithoutInterval);
        }
        match (&inner.callback, callback) {
            (Some(t), cb) => t.set(cb),
            (None, None) => return Err(SamError::NoCallback),
            (None, Some(cb)) => {
                let interval = Duration::from_millis(u64::from(inner.time_interval_ms));
                let thread = callback::Thread::spawn(Arc::downgrade(&self.shared), interval, cb)
                    .map_err(|source| SamError::System {
                        what: "cannot start the health-check thread".into(),
                        source,
                    })?;
                inner.callback = Some(thread);
            }
        }
        Ok(())
    }

    /// `sam_warn_signal_set`: the signal sent first when the instance must go (default
    /// SIGTERM; SIGKILL means no warning).
    pub fn warn_signal_set(&self, signal: i32) -> Result<(), SamError> {
        let mut inner = self.lock();
        check(
            &inner,
            "warn_signal_set",
            &[State::Initialized, State::Registered, State::Started],
            "a SAM not finalized",
        )?;
        if !(1..=signal_max()).contains(&signal) {
            return Err(SamError::InvalidSignal(signal));
        }
        if inner.link.is_some() {
            inner.call("warn_signal_set", &Message::WarnSignal(signal))?;
        }
        inner.warn_signal = signal;
        Ok(())
    }

    /// `sam_mark_failed`: the supervisor kills this instance at once (no warn signal), sets
    /// its cmap state to `failed` and quits, whatever the policy. Needs the cmap flag.
    pub fn mark_failed(&self) -> Result<(), SamError> {
        let inner = self.lock();
        check(
            &inner,
            "mark_failed",
            &[State::Registered, State::Started],
            "a registered instance",
        )?;
        if !inner.policy.cmap {
            return Err(SamError::MarkFailedWithoutCmap);
        }
        inner.send("mark_failed", &Message::MarkFailed)
    }

    /// `sam_data_store`: keeps `data` (empty: nothing) for this and every later instance.
    pub fn data_store(&self, data: &[u8]) -> Result<(), SamError> {
        let mut inner = self.lock();
        check(
            &inner,
            "data_store",
            &[State::Initialized, State::Registered, State::Started],
            "a SAM not finalized",
        )?;
        if data.len() > DATA_SIZE_MAX {
            return Err(SamError::DataTooLarge { size: data.len() });
        }
        if let Some(link) = &inner.link {
            link.store("data_store", data)?;
        }
        inner.data.clear();
        inner.data.extend_from_slice(data);
        Ok(())
    }

    /// `sam_data_getsize`: how many bytes are stored (0: none).
    pub fn data_getsize(&self) -> Result<usize, SamError> {
        let inner = self.lock();
        check(
            &inner,
            "data_getsize",
            &[State::Initialized, State::Registered, State::Started],
            "a SAM not finalized",
        )?;
        Ok(inner.data.len())
    }

    /// `sam_data_restore`: copies the stored data to the start of `buf`, which must hold it
    /// all; returns its size (0, leaving `buf` alone, when nothing is stored).
    pub fn data_restore(&self, buf: &mut [u8]) -> Result<usize, SamError> {
        let inner = self.lock();
        check(
            &inner,
            "data_restore",
            &[State::Initialized, State::Registered, State::Started],
            "a SAM not finalized",
        )?;
        let stored = inner.data.len();
        if buf.len() < stored {
            return Err(SamError::BufferTooSmall {
                given: buf.len(),
                stored,
            });
        }
        buf[..stored].copy_from_slice(&inner.data);
        Ok(stored)
    }

    /// The stored data (data_getsize and data_restore in one).
    pub fn data(&self) -> Result<Vec<u8>, SamError> {
        let inner = self.lock();
        check(
            &inner,
            "data_restore",
            &[State::Initialized, State::Registered, State::Started],
            "a SAM not finalized",
        )?;
        Ok(inner.data.clone())
    }
}

impl Inner {
    /// The supervisor's pid (this process's before register), for log lines.
    fn supervisor_pid(&self) -> u32 {
        self.link
            .as_ref()
            .map_or_else(std::process::id, Link::supervisor)
    }

    fn stop(&mut self) -> Result<(), SamError> {
        check(
            self,
            "stop",
            &[State::Started],
            "a health-checking instance",
        )?;
        self.call("stop", &Message::Stop)?;
        self.state = State::Registered;
        if let Some(t) = &self.callback {
            t.stop();
        }
        Ok(())
    }

    fn hc_send(&self) -> Result<(), SamError> {
        check(
            self,
            "hc_send",
            &[State::Started],
            "a health-checking instance",
        )?;
        self.send("hc_send", &Message::HealthCheck)
    }

    fn link(&self, call: &'static str) -> Result<&Link, SamError> {
        // The states that allow a call to the supervisor exist only in an instance.
        self.link.as_ref().ok_or(SamError::State {
            call,
            state: self.state,
            needs: "a registered instance",
        })
    }

    /// Sends a message that has no reply.
    fn send(&self, call: &'static str, m: &Message) -> Result<(), SamError> {
        self.link(call)?.send(call, m)
    }

    /// Sends a message and waits for the supervisor's reply.
    fn call(&self, call: &'static str, m: &Message) -> Result<(), SamError> {
        self.link(call)?.call(call, m)
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic elsewhere while holding the lock leaves nothing half-changed that matters here.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check(
    inner: &Inner,
    call: &'static str,
    allowed: &[State],
    needs: &'static str,
) -> Result<(), SamError> {
    if allowed.contains(&inner.state) {
        Ok(())
    } else {
        Err(SamError::State {
            call,
            state: inner.state,
            needs,
        })
    }
}

/// Flushes what the process has buffered for stdout/stderr (Rust's and C's) so a fork does
/// not print it twice.
fn flush_stdio() {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: fflush(NULL) flushes every C stdio output stream; it takes their locks.
    unsafe { libc::fflush(std::ptr::null_mut()) };
}

/// Severity of a supervisor's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Notice,
    Warning,
    Error,
}

/// Writes one supervisor line to standard error: `<level> [SAM   ] sam[<pid>]: <text>`.
pub(crate) fn log_line(level: Level, supervisor_pid: u32, text: &str) {
    let level = match level {
        Level::Notice => "notice",
        Level::Warning => "warning",
        Level::Error => "error",
    };
    let line = format!("{level:<7} [SAM   ] sam[{supervisor_pid}]: {text}\n");
    // One write, so lines from the supervisor and the instance do not interleave.
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// A signal's name as kill -l spells it with `SIG`, or `signal N`.
pub(crate) fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_read_and_write_sam_h_bits() {
        for (bits, policy) in [
            (1, Policy::QUIT),
            (2, Policy::RESTART),
            (0x09, Policy::QUORUM_QUIT),
            (0x0a, Policy::QUORUM_RESTART),
            (0x11, Policy::QUIT.with_cmap()),
            (0x1a, Policy::QUORUM_RESTART.with_cmap()),
        ] {
            assert_eq!(Policy::from_bits(bits).unwrap(), policy, "{bits:#x}");
            assert_eq!(policy.bits(), bits);
        }
        for bits in [0, 3, 4, 0x08, 0x10, 0x18, 0x21, 0x102] {
            let e = Policy::from_bits(bits).unwrap_err();
            assert!(matches!(e, SamError::InvalidPolicy(b) if b == bits));
            assert_eq!(e.status(), Status::InvalidParam);
        }
        assert_eq!(
            Policy::from_bits(3).unwrap_err().to_string(),
            "sam initialize: recovery policy 0x3 is neither quit (1) nor restart (2), with or \
             without the quorum (0x08) and cmap (0x10) flags"
        );
        assert_eq!(
            Policy::QUORUM_RESTART.with_cmap().to_string(),
            "quorum-restart+cmap"
        );
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn a_sam_can_be_shared_between_threads() {
        assert_send_sync::<Sam>();
    }

    // What needs no fork: calls out of order and bad arguments before register.
    #[test]
    fn bad_arguments_and_calls_out_of_order_say_what_is_wrong() {
        let sam = Sam::initialize(0, Policy::RESTART).unwrap();
        assert_eq!(sam.state(), State::Initialized);
        let e = sam.start().unwrap_err();
        assert_eq!(
            e.to_string(),
            "sam start: not allowed while SAM is initialized (not registered yet) (start needs \
             a registered instance not health checking)"
        );
        assert_eq!(e.status(), Status::BadHandle);
        assert!(matches!(sam.hc_send(), Err(SamError::State { .. })));
        assert!(matches!(sam.stop(), Err(SamError::State { .. })));
        assert!(matches!(sam.mark_failed(), Err(SamError::State { .. })));
        assert!(matches!(
            sam.hc_callback_register(Some(Box::new(|| true))),
            Err(SamError::State { .. })
        ));
        let e = sam.warn_signal_set(0).unwrap_err();
        assert_eq!(e.status(), Status::InvalidParam);
        assert!(e
            .to_string()
            .starts_with("sam warn_signal_set: 0 is not a signal number"));
        assert!(sam.warn_signal_set(libc::SIGRTMAX() + 1).is_err());
        sam.warn_signal_set(libc::SIGUSR1).unwrap();
        assert_eq!(sam.warn_signal(), libc::SIGUSR1);

        // The data store, before register: kept here for the instances to come.
        assert_eq!(sam.data_getsize().unwrap(), 0);
        let mut buf = [7u8; 4];
        assert_eq!(sam.data_restore(&mut buf).unwrap(), 0);
        assert_eq!(buf, [7; 4], "nothing stored: the buffer is left alone");
        sam.data_store(b"hello").unwrap();
        assert_eq!(sam.data_getsize().unwrap(), 5);
        let e = sam.data_restore(&mut buf).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sam data_restore: the buffer holds 4 bytes, the stored data is 5 bytes \
             (data_getsize says how much to allocate)"
        );
        let mut big = [0u8; 8];
        assert_eq!(sam.data_restore(&mut big).unwrap(), 5);
        assert_eq!(&big[..5], b"hello");
        let too_big = vec![0u8; DATA_SIZE_MAX + 1];
        let e = sam.data_store(&too_big).unwrap_err();
        assert_eq!(e.status(), Status::TooBig);
        assert_eq!(
            e.to_string(),
            format!(
                "sam data_store: {} bytes is more than SAM keeps (at most {DATA_SIZE_MAX} bytes)",
                DATA_SIZE_MAX + 1
            )
        );
        assert_eq!(
            sam.data().unwrap(),
            b"hello",
            "a refused store keeps what was stored"
        );
        sam.data_store(&[]).unwrap();
        assert_eq!(sam.data_getsize().unwrap(), 0);

        sam.finalize().unwrap();
        assert_eq!(sam.state(), State::Finalized);
        assert!(matches!(sam.register(), Err(SamError::State { .. })));
        assert!(matches!(sam.data_getsize(), Err(SamError::State { .. })));
        assert!(matches!(sam.finalize(), Err(SamError::State { .. })));
    }
}
