//! The supervisor: the process that called register. It forks an instance, watches it (its
//! messages, its end through a pidfd, the quorum service, the health-check deadlines of
//! [`Watch`]), carries out what `Watch` decides, and then forks the next instance or exits.
//! It also keeps the process's cmap keys and its quorum connection, which instances never
//! use: an instance closes its copies as it returns from register.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rotor_proto::cmap::Value;

use super::instance::{Action, Exit, Outcome, Publish, Watch};
use super::link::{encode_reply, send_all, Decoder, Link};
use super::{flush_stdio, keys, log_line, Inner, Level, Policy, SamError};
use crate::cmap::Cmap;
use crate::quorum::{Quorum, QuorumHandler, RingId, TRACK_CHANGES};
use crate::Error;

/// How often a supervisor that lost rotord's quorum service tries to attach again.
const QUORUM_RETRY_INTERVAL: Duration = Duration::from_secs(1);

fn system(what: &str) -> impl FnOnce(io::Error) -> SamError + '_ {
    move |source| SamError::System {
        what: what.to_string(),
        source,
    }
}

/// The node's quorum as the supervisor follows it (quorum policies).
pub(crate) struct QuorumWatch {
    quorum: Option<Quorum>,
    quorate: bool,
    /// Set while detached: when to try again.
    retry_at: Option<Instant>,
}

struct Quorate(Option<bool>);

impl QuorumHandler for Quorate {
    fn quorum(&mut self, quorate: bool, _ring: RingId, _members: &[u32]) {
        self.0 = Some(quorate);
    }
}

impl QuorumWatch {
    /// Attaches to the local rotord's quorum service and tracks its changes.
    pub(crate) fn connect() -> Result<QuorumWatch, Error> {
        let (quorum, quorate) = QuorumWatch::attach()?;
        Ok(QuorumWatch {
            quorum: Some(quorum),
            quorate,
            retry_at: None,
        })
    }

    fn attach() -> Result<(Quorum, bool), Error> {
        let mut q = Quorum::initialize()?;
        q.trackstart(TRACK_CHANGES)?;
        let quorate = q.getquorate()?;
        Ok((q, quorate))
    }

    /// The descriptors to poll: readable on notifications, and the session's control socket,
    /// which hangs up when rotord goes away.
    fn poll_fds(&mut self, now: Instant, pid: u32) -> Option<(RawFd, RawFd)> {
        let q = self.quorum.as_mut()?;
        match q.fd() {
            Ok(fd) => Some((fd, q.control_fd())),
            Err(e) => {
                self.lost(now, pid, &e.to_string());
                None
            }
        }
    }

    fn on_readable(&mut self, now: Instant, pid: u32) {
        let Some(q) = self.quorum.as_mut() else {
            return;
        };
        let mut seen = Quorate(None);
        match q.dispatch(crate::cpg::Dispatch::All, &mut seen) {
            Ok(_) => {
                if let Some(quorate) = seen.0 {
                    self.quorate = quorate;
                }
            }
            Err(e) => self.lost(now, pid, &e.to_string()),
        }
    }

    fn lost(&mut self, now: Instant, pid: u32, why: &str) {
        log_line(
            Level::Warning,
            pid,
            &format!(
                "lost rotord's quorum service ({why}): the node counts as not quorate until it \
                 is back; attaching again every {} s",
                QUORUM_RETRY_INTERVAL.as_secs()
            ),
        );
        self.quorum = None;
        self.quorate = false;
        self.retry_at = Some(now + QUORUM_RETRY_INTERVAL);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.retry_at
    }

    fn handle_timeout(&mut self, now: Instant, pid: u32) {
        match self.retry_at {
            Some(at) if now >= at => {}
            _ => return,
        }
        match QuorumWatch::attach() {
            Ok((q, quorate)) => {
                let what = if quorate { "quorate" } else { "not quorate" };
                log_line(
                    Level::Notice,
                    pid,
                    &format!("attached to rotord's quorum service again: the node is {what}"),
                );
                self.quorum = Some(q);
                self.quorate = quorate;
                self.retry_at = None;
            }
            Err(_) => self.retry_at = Some(now + QUORUM_RETRY_INTERVAL),
        }
    }
}

/// The process's keys in cmap (cmap policy flag).
struct Publisher {
    cmap: Option<Cmap>,
    prefix: String,
    pid: u32,
    /// An update failed and was logged; the next success is logged too.
    failing: bool,
}

/// CLOCK_MONOTONIC in nanoseconds, as corosync's `cs_timestamp_get`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Publisher {
    /// Attaches to cmap and writes `recovery` and `poll_period`, as `sam_register` does.
    fn register(pid: u32, policy: Policy, time_interval_ms: u32) -> Result<Publisher, Error> {
        let mut cmap = Cmap::initialize()?;
        let prefix = keys::process_prefix(pid);
        cmap.set(
            &format!("{prefix}{}", keys::RECOVERY),
            Value::String(policy.recovery_name().into()),
        )?;
        cmap.set(
            &format!("{prefix}{}", keys::POLL_PERIOD),
            Value::U64(u64::from(time_interval_ms)),
        )?;
        Ok(Publisher {
            cmap: Some(cmap),
            prefix,
            pid,
            failing: false,
        })
    }

    fn publish(&mut self, p: Publish) {
        match p {
            Publish::State(s) => self.set(keys::STATE, Value::String(s.into())),
            Publish::LastUpdated => self.set(keys::LAST_UPDATED, Value::U64(monotonic_ns())),
        }
    }

    /// Sets one key, attaching again if rotord went away; a failure is logged once, and
    /// supervision goes on without it.
    fn set(&mut self, name: &str, value: Value) {
        let key = format!("{}{name}", self.prefix);
        let result = match self.cmap.as_mut() {
            Some(c) => c.set(&key, value),
            None => Cmap::initialize().and_then(|mut c| {
                let r = c.set(&key, value);
                self.cmap = Some(c);
                r
            }),
        };
        match result {
            Ok(()) if self.failing => {
                self.failing = false;
                log_line(
                    Level::Notice,
                    self.pid,
                    &format!("{key} updated in cmap again"),
                );
            }
            Ok(()) => {}
            Err(e) => {
                if !matches!(e, Error::Refused { .. } | Error::Status(_)) {
                    self.cmap = None;
                }
                if !self.failing {
                    self.failing = true;
                    log_line(
                        Level::Warning,
                        self.pid,
                        &format!(
                            "cannot update {key} in cmap: {e}; supervision goes on, the keys \
                             are written again at the next change"
                        ),
                    );
                }
            }
        }
    }

    /// Deletes every key of the process (a clean end).
    fn remove_all(&mut self) {
        let prefix = self.prefix.clone();
        let result = (|| {
            if self.cmap.is_none() {
                self.cmap = Some(Cmap::initialize()?);
            }
            let c = self.cmap.as_mut().expect("attached above");
            for (key, _) in c.iter(&prefix)? {
                c.delete(&key)?;
            }
            Ok::<(), Error>(())
        })();
        if let Err(e) = result {
            log_line(
                Level::Warning,
                self.pid,
                &format!("cannot delete the keys under {prefix} from cmap: {e}"),
            );
        }
    }
}

/// What register turns the calling process into.
pub(crate) struct Supervisor {
    pid: u32,
    policy: Policy,
    interval: Option<Duration>,
    quorum: Option<QuorumWatch>,
    cmap: Option<Publisher>,
    /// The application's SIGCHLD action: the supervisor runs with the default one (so no
    /// handler of the application's reaps an instance, and SIG_IGN does not discard its
    /// status), every instance gets this one back.
    sigchld: libc::sigaction,
}

impl Supervisor {
    pub(crate) fn new(inner: &mut Inner) -> Result<Supervisor, SamError> {
        let pid = std::process::id();
        let cmap = if inner.policy.cmap {
            let p = Publisher::register(pid, inner.policy, inner.time_interval_ms).map_err(
                |source| SamError::Service {
                    what: "cannot publish the process in cmap (the policy's cmap flag)",
                    source,
                },
            )?;
            Some(p)
        } else {
            None
        };
        // SAFETY: an all-zero sigaction is a valid value of the C struct (SIG_DFL, no flags).
        let mut sigchld: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let default: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: sigaction with valid pointers: reads the old action, installs SIG_DFL.
        if unsafe { libc::sigaction(libc::SIGCHLD, &default, &mut sigchld) } != 0 {
            return Err(SamError::System {
                what: "cannot reset SIGCHLD in the supervisor".into(),
                source: io::Error::last_os_error(),
            });
        }
        let interval = (inner.time_interval_ms > 0)
            .then(|| Duration::from_millis(inner.time_interval_ms.into()));
        Ok(Supervisor {
            pid,
            policy: inner.policy,
            interval,
            quorum: inner.quorum.take(),
            cmap,
            sigchld,
        })
    }

    /// Forks instances until this process is one: returns there, with the way to its
    /// supervisor. The supervisor itself exits when the policy says so, or returns an error
    /// when supervision fails (having killed the instance).
    pub(crate) fn run(mut self, inner: &mut Inner) -> Result<Link, SamError> {
        loop {
            let (ours, theirs) = UnixStream::pair()
                .map_err(system("cannot create a socket pair for an instance"))?;
            inner.instance_id = inner.instance_id.wrapping_add(1);
            if let Some(c) = &mut self.cmap {
                c.publish(Publish::State(keys::STATE_STOPPED));
            }
            flush_stdio();
            // SAFETY: fork(2). The new process restores one signal action and returns into
            // the application, as after any fork.
            let child = unsafe { libc::fork() };
            if child < 0 {
                inner.instance_id = inner.instance_id.wrapping_sub(1);
                return Err(SamError::System {
                    what: "cannot fork an instance".into(),
                    source: io::Error::last_os_error(),
                });
            }
            if child == 0 {
                // SAFETY: installs the application's own SIGCHLD action again.
                unsafe { libc::sigaction(libc::SIGCHLD, &self.sigchld, std::ptr::null_mut()) };
                drop(ours);
                // `self` goes with this return: the instance's copies of the supervisor's
                // connections are closed.
                return Ok(Link::new(theirs, self.pid));
            }
            drop(theirs);
            let interval = match self.interval {
                Some(i) => format!("every {} ms", i.as_millis()),
                None => "with no time limit".into(),
            };
            log_line(
                Level::Notice,
                self.pid,
                &format!(
                    "instance {} (pid {child}): forked (policy {}, health checks {interval} once \
                     started)",
                    inner.instance_id, self.policy
                ),
            );
            match self.watch(inner, child, ours) {
                Ok(Outcome::Restart) => continue,
                Ok(Outcome::Quit { status, failed }) => self.quit(status, failed),
                // The instance is gone (watch killed it): supervision failed.
                Err(e) => {
                    if let Some(c) = &mut self.cmap {
                        c.publish(Publish::State(keys::STATE_FAILED));
                    }
                    return Err(e);
                }
            }
        }
    }

    fn quit(mut self, status: i32, failed: bool) -> ! {
        if let Some(c) = &mut self.cmap {
            if failed {
                c.publish(Publish::State(keys::STATE_FAILED));
            } else {
                c.remove_all();
            }
        }
        drop(self.quorum.take());
        drop(self.cmap.take());
        flush_stdio();
        std::process::exit(status)
    }

    /// Watches one instance until it is gone and the policy has decided. If supervision
    /// itself fails, the instance is killed (no instance runs unsupervised) and reaped.
    fn watch(
        &mut self,
        inner: &mut Inner,
        child: libc::pid_t,
        sock: UnixStream,
    ) -> Result<Outcome, SamError> {
        // SAFETY: pidfd_open(2) on our own child; the result is checked.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) };
        if fd < 0 {
            let e = SamError::System {
                what: "cannot watch the instance (pidfd_open, Linux 5.3 or later)".into(),
                source: io::Error::last_os_error(),
            };
            self.give_up(&e, inner.instance_id, child);
            // SAFETY: our child, not reaped yet: its pid cannot have been reused.
            unsafe { libc::kill(child, libc::SIGKILL) };
            let _ = reap_blocking(child);
            return Err(e);
        }
        // SAFETY: a new descriptor only we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let result = self.watch_with(inner, child, &pidfd, sock);
        if let Err(e) = &result {
            self.give_up(e, inner.instance_id, child);
            signal(&pidfd, libc::SIGKILL);
            let _ = reap_blocking(child);
        }
        result
    }

    fn give_up(&self, e: &SamError, instance_id: u32, child: libc::pid_t) {
        log_line(
            Level::Error,
            self.pid,
            &format!("{e}: killing instance {instance_id} (pid {child}) and giving up"),
        );
    }

    fn watch_with(
        &mut self,
        inner: &mut Inner,
        child: libc::pid_t,
        pidfd: &OwnedFd,
        sock: UnixStream,
    ) -> Result<Outcome, SamError> {
        sock.set_nonblocking(true)
            .map_err(system("cannot make the instance's socket non-blocking"))?;
        let quorate = self.quorum.as_ref().is_none_or(|q| q.quorate);
        let mut w = Watch::new(
            Instant::now(),
            self.policy,
            self.interval,
            inner.instance_id,
            child as u32,
            inner.warn_signal,
            quorate,
        );
        let mut decoder = Decoder::default();
        let mut sock_open = true;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Messages read in one go update last_updated once: a supervisor waiting on
            // rotord for each health check would slow an instance that sends many.
            let mut heard = false;
            while let Some(a) = w.poll_action() {
                match a {
                    Action::Publish(Publish::LastUpdated) => heard = true,
                    a => self.act(a, pidfd, &sock),
                }
            }
            if heard {
                self.act(Action::Publish(Publish::LastUpdated), pidfd, &sock);
            }
            if let Some(o) = w.outcome() {
                return Ok(o);
            }
            let now = Instant::now();
            let mut fds = vec![pollfd(pidfd.as_raw_fd(), libc::POLLIN)];
            let sock_at = sock_open.then(|| {
                fds.push(pollfd(sock.as_raw_fd(), libc::POLLIN));
                fds.len() - 1
            });
            let quorum_at = match self.quorum.as_mut().and_then(|q| q.poll_fds(now, self.pid)) {
                Some((events, control)) => {
                    fds.push(pollfd(events, libc::POLLIN));
                    fds.push(pollfd(control, 0));
                    Some(fds.len() - 2)
                }
                None => None,
            };
            let deadline = [
                w.poll_timeout(),
                self.quorum.as_ref().and_then(|q| q.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout_ms = deadline.map_or(-1, |d| {
                let us = d.saturating_duration_since(now).as_micros();
                us.div_ceil(1000).min(i32::MAX as u128) as i32
            });
            // SAFETY: poll on descriptors we hold, `fds.len()` entries.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(SamError::System {
                        what: "poll".into(),
                        source: e,
                    });
                }
            }
            let now = Instant::now();
            let exited = n > 0 && fds[0].revents != 0;
            // Messages first: what the instance said before it died counts (its last data).
            if let Some(i) = sock_at {
                if (n > 0 && fds[i].revents != 0) || exited {
                    sock_open = read(&sock, &mut decoder, &mut buf, &mut w, inner, now);
                }
            }
            if exited {
                if let Some(status) = reap(child)? {
                    w.handle_exit(now, Exit::from_wait_status(status));
                }
            }
            if let (Some(i), Some(q)) = (quorum_at, self.quorum.as_mut()) {
                if n > 0 && fds[i + 1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                    q.lost(now, self.pid, "rotord closed the session");
                } else if n > 0 && fds[i].revents != 0 {
                    q.on_readable(now, self.pid);
                }
            }
            if let Some(q) = self.quorum.as_mut() {
                q.handle_timeout(now, self.pid);
                w.handle_quorum(now, q.quorate);
            }
            w.handle_timeout(now);
        }
    }

    fn act(&mut self, a: Action, pidfd: &OwnedFd, sock: &UnixStream) {
        match a {
            // The instance may be gone already: then nobody waits for the reply.
            Action::Reply(r) => {
                let _ = send_all(sock.as_raw_fd(), &encode_reply(&r));
            }
            Action::Signal(s) => signal(pidfd, s),
            Action::Publish(p) => {
                if let Some(c) = &mut self.cmap {
                    c.publish(p);
                }
            }
            Action::Log(level, text) => log_line(level, self.pid, &text),
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Reads what the instance sent and hands each message to `w`; false once the socket is
/// closed (or the instance sent bytes that are no message).
fn read(
    sock: &UnixStream,
    decoder: &mut Decoder,
    buf: &mut [u8],
    w: &mut Watch,
    inner: &mut Inner,
    now: Instant,
) -> bool {
    loop {
        // SAFETY: recv into a live buffer of `buf.len()` bytes on our socket.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return false;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return true,
                _ => return false,
            }
        }
        decoder.push(&buf[..n as usize]);
        while let Some(m) = decoder.next() {
            match m {
                Ok(m) => {
                    w.handle_message(now, &m);
                    match m {
                        super::link::Message::DataStore(d) => inner.data = d,
                        super::link::Message::WarnSignal(s) => inner.warn_signal = s,
                        _ => {}
                    }
                }
                Err(malformed) => {
                    w.handle_malformed(now, &malformed.0);
                    return false;
                }
            }
        }
    }
}

/// Sends `sig` to the instance through its pidfd: never to another process that got its
/// pid after it was reaped. An instance already gone is no error.
fn signal(pidfd: &OwnedFd, sig: i32) {
    // SAFETY: pidfd_send_signal(2) on a pidfd we own, no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Waits for the instance's end (after SIGKILL); an instance reaped already is no error.
fn reap_blocking(child: libc::pid_t) -> io::Result<()> {
    loop {
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
        if r == child {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The instance's wait status once it has ended (its pidfd was readable).
fn reap(child: libc::pid_t) -> Result<Option<i32>, SamError> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, writing into a local.
        let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if r == child {
            return Ok(Some(status));
        }
        if r == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(SamError::System {
                what: format!(
                    "cannot learn how instance pid {child} ended (another thread of the \
                     supervisor reaped it?)"
                ),
                source: e,
            });
        }
    }
}
