//! One attached party's end of a connection: the outgoing ring's producer, the incoming ring's
//! consumer, both eventfds and the control socket whose hang-up tells that the peer is gone.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::ring::{Consumer, CorruptReason, PopError, Producer, PushError};
use crate::sys;
use crate::wait::{WaitMode, CLOCK_CHECK_INTERVAL, PEER_CHECK_INTERVAL};

/// Which end of the handshake a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Created by [`crate::Server::accept`]; its peer is an untrusted client.
    Server,
    /// Created by [`crate::Client::connect`].
    Client,
}

/// The peer's credentials, from SO_PEERCRED (server side) or as the server reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id (0 when unknown).
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// Errors of a session call. `Full` and `Empty` mean "try again"; the others close the session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The outgoing ring is full: try again (nothing was written or dropped).
    #[error("ring full, try again")]
    Full,
    /// No record is waiting.
    #[error("no record available")]
    Empty,
    /// The wait's timeout passed.
    #[error("timed out")]
    TimedOut,
    /// The record can never fit the ring.
    #[error("record of {size} bytes exceeds record_size_max {max}")]
    TooLarge { size: usize, max: usize },
    /// The receive buffer is smaller than the next record, which stays in the ring.
    #[error("record of {size} bytes does not fit a buffer of {buffer} bytes")]
    BufferTooSmall { size: usize, buffer: usize },
    /// The peer closed its end or died.
    #[error("peer has gone away")]
    PeerGone,
    /// The peer wrote something impossible into shared memory; the session is closed.
    #[error("peer corrupted the shared ring: {0}")]
    Corrupt(CorruptReason),
    /// The peer broke the control-socket protocol; the session is closed.
    #[error("peer broke the protocol: {0}")]
    Protocol(&'static str),
    /// The session was closed by an earlier error.
    #[error("session closed")]
    Closed,
    /// A system call failed.
    #[error("ipc system call failed: {0}")]
    Io(#[from] io::Error),
}

/// One end of an attached connection. Not `Sync`: one thread drives it (`&mut self`).
pub struct Session {
    producer: Producer,
    consumer: Consumer,
    socket: OwnedFd,
    /// What this end polls and drains: the server's eventfd, or the poll end of the client's
    /// wake pair.
    wake_fd: OwnedFd,
    /// Where this end signals itself ([`Session::signal_self`]): the client's wake pair's
    /// signal end; `None` when `wake_fd` is an eventfd, which takes its own signals.
    self_wake_fd: Option<OwnedFd>,
    // Kept open for as long as `producer.peer_wake_fd`/`consumer.peer_wake_fd` refer to it.
    _peer_wake_fd: OwnedFd,
    peer: PeerCred,
    role: Role,
    closed: bool,
    /// Consecutive idle rounds since the last liveness look.
    idle_rounds: u32,
    /// `arm_for_poll` raised the consumer flag and no receive has lowered it yet.
    armed: bool,
    /// What [`Session::keep_fd_current`] last left the wake fd as; anything that may change
    /// the fd behind its back (a receive, a drain, a signal of our own) makes it `Stale`.
    fd_state: Cell<FdState>,
}

/// The wake fd as [`Session::keep_fd_current`] knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FdState {
    /// Unknown: arm, drain and look again.
    Stale,
    /// Armed and drained with nothing waiting: the peer signals the next record.
    Quiet,
    /// Readable, and something waited when it was made so.
    Readable,
}

/// A session end's wake descriptors.
pub(crate) struct WakeFds {
    /// What this end polls and drains.
    pub(crate) poll: OwnedFd,
    /// Where this end signals itself, when not `poll` itself (an eventfd takes its own
    /// signals; a wake pair's poll end does not).
    pub(crate) signal_self: Option<OwnedFd>,
    /// Where this end signals the peer.
    pub(crate) peer: OwnedFd,
}

enum Want {
    Record,
    Space(usize),
}

impl Session {
    pub(crate) fn new(
        mut producer: Producer,
        mut consumer: Consumer,
        socket: OwnedFd,
        wake: WakeFds,
        peer: PeerCred,
        role: Role,
    ) -> Session {
        let WakeFds {
            poll: wake_fd,
            signal_self: self_wake_fd,
            peer: peer_wake_fd,
        } = wake;
        producer.peer_wake_fd = peer_wake_fd.as_raw_fd();
        consumer.peer_wake_fd = peer_wake_fd.as_raw_fd();
        Session {
            producer,
            consumer,
            socket,
            wake_fd,
            self_wake_fd,
            _peer_wake_fd: peer_wake_fd,
            peer,
            role,
            closed: false,
            idle_rounds: 0,
            armed: false,
            fd_state: Cell::new(FdState::Stale),
        }
    }

    /// The peer's credentials.
    pub fn peer(&self) -> PeerCred {
        self.peer
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Largest record this session can send.
    pub fn send_size_max(&self) -> usize {
        self.producer.record_size_max()
    }

    /// Largest record the peer can send us: a receive buffer this large always suffices.
    pub fn recv_size_max(&self) -> usize {
        self.consumer.record_size_max()
    }

    /// The outgoing ring's mapping, for tests that play a hostile peer.
    #[doc(hidden)]
    pub fn outgoing_mapping(&self) -> &std::sync::Arc<crate::Mapping> {
        self.producer.mapping()
    }

    /// Has an error closed this session?
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The control socket: it reports hang-up when the peer dies. A server that multiplexes many
    /// sessions in one epoll loop registers this fd to learn of a dead client without polling it.
    pub fn control_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Closes the session on a corrupt ring: logs why and shuts the control socket, so the
    /// peer's next call fails instead of waiting.
    fn fail_corrupt(&mut self, reason: CorruptReason) -> SessionError {
        tracing::warn!(
            "disconnecting {} pid {} (uid {}): shared ring corrupt: {reason}",
            self.peer_kind(),
            self.peer.pid,
            self.peer.uid
        );
        self.close();
        SessionError::Corrupt(reason)
    }

    /// What the peer is, for log lines: a server's peer is a client and the other way round.
    fn peer_kind(&self) -> &'static str {
        match self.role {
            Role::Server => "client",
            Role::Client => "server",
        }
    }

    fn fail_gone(&mut self) -> SessionError {
        tracing::debug!(
            "{} pid {} (uid {}) gone",
            self.peer_kind(),
            self.peer.pid,
            self.peer.uid
        );
        self.close();
        SessionError::PeerGone
    }

    fn fail_protocol(&mut self, why: &'static str) -> SessionError {
        tracing::warn!(
            "disconnecting {} pid {} (uid {}): protocol violation: {why}",
            self.peer_kind(),
            self.peer.pid,
            self.peer.uid
        );
        self.close();
        SessionError::Protocol(why)
    }

    /// Closes the session: the peer sees EOF on the control socket at once. Idempotent.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            sys::shutdown(self.socket.as_raw_fd());
        }
    }

    /// One non-blocking look at the control socket: `Err(PeerGone)` if the peer has gone.
    pub fn check_peer(&mut self) -> Result<(), SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        match sys::check_socket(self.socket.as_raw_fd()) {
            Ok(false) => Ok(()),
            Ok(true) => Err(self.fail_gone()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(self.fail_protocol("unexpected bytes on the control socket"))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn on_idle(&mut self) -> Result<(), SessionError> {
        self.idle_rounds += 1;
        if self.idle_rounds >= PEER_CHECK_INTERVAL {
            self.idle_rounds = 0;
            self.check_peer()?;
        }
        Ok(())
    }

    /// Sends one record without waiting. `Err(Full)`: try again later; nothing was written.
    pub fn try_send(&mut self, record: &[u8]) -> Result<(), SessionError> {
        self.try_send_parts(std::slice::from_ref(&record).iter().copied())
    }

    /// Sends one record made of `parts` (concatenated, written straight into the ring: see
    /// [`Producer::try_push_parts`]) without waiting. `Err(Full)`: try again later; nothing was
    /// written.
    pub fn try_send_parts<'a, I>(&mut self, parts: I) -> Result<(), SessionError>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        if self.closed {
            return Err(SessionError::Closed);
        }
        match self.producer.try_push_parts(parts) {
            Ok(()) => Ok(()),
            Err(PushError::Full) => {
                // We are about to wait for our peer: let it see the space we freed in the other
                // ring (see the batching note in `Consumer::try_pop`).
                self.consumer.flush_tail();
                self.on_idle()?;
                Err(SessionError::Full)
            }
            Err(PushError::TooLarge { size, max }) => Err(SessionError::TooLarge { size, max }),
            Err(PushError::Corrupt(reason)) => Err(self.fail_corrupt(reason)),
        }
    }

    /// Whether a record waits to be received, without taking it or touching the wake fd (a
    /// sender refused room watches for the deliveries it would otherwise sleep for).
    pub fn record_waiting(&mut self) -> Result<bool, SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        match self.consumer.ready_now() {
            Ok(ready) => Ok(ready),
            Err(reason) => Err(self.fail_corrupt(reason)),
        }
    }

    /// Receives one record into `buf` without waiting; returns its length.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> Result<usize, SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        match self.consumer.try_pop(buf) {
            Ok(size) => {
                if self.armed {
                    self.armed = false;
                    self.consumer.set_waiting(false);
                    self.fd_state.set(FdState::Stale);
                }
                Ok(size)
            }
            Err(PopError::Empty) => {
                self.on_idle()?;
                Err(SessionError::Empty)
            }
            Err(PopError::BufferTooSmall { size, buffer }) => {
                Err(SessionError::BufferTooSmall { size, buffer })
            }
            Err(PopError::Corrupt(reason)) => Err(self.fail_corrupt(reason)),
        }
    }

    /// Sends one record, waiting for space as `mode` says.
    pub fn send(&mut self, record: &[u8], mode: WaitMode) -> Result<(), SessionError> {
        self.send_timeout(record, mode, None)
    }

    /// [`Session::send`] giving up with `TimedOut` after `timeout`.
    pub fn send_timeout(
        &mut self,
        record: &[u8],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<(), SessionError> {
        let mut waiter = Waiter::new(mode, timeout);
        loop {
            match self.try_send(record) {
                Err(SessionError::Full) => {}
                other => return other,
            }
            if waiter.should_sleep()? {
                self.sleep(Want::Space(record.len()), waiter.deadline)?;
            }
        }
    }

    /// Receives one record into `buf`, waiting as `mode` says; returns its length.
    pub fn recv(&mut self, buf: &mut [u8], mode: WaitMode) -> Result<usize, SessionError> {
        self.recv_timeout(buf, mode, None)
    }

    /// [`Session::recv`] giving up with `TimedOut` after `timeout`.
    pub fn recv_timeout(
        &mut self,
        buf: &mut [u8],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<usize, SessionError> {
        let mut waiter = Waiter::new(mode, timeout);
        loop {
            match self.try_recv(buf) {
                Err(SessionError::Empty) => {}
                other => return other,
            }
            if waiter.should_sleep()? {
                self.sleep(Want::Record, waiter.deadline)?;
            }
        }
    }

    /// Prepares the wake fd ([`AsRawFd::as_raw_fd`]) for the caller's own poll/epoll loop:
    /// asks the peer to signal it on the next record. Returns `true` if a record is already
    /// waiting (then receive instead of sleeping). The request ends with the next received record,
    /// so call this again before each sleep, like `cpg_dispatch` then `poll` with libcpg's fd.
    pub fn arm_for_poll(&mut self) -> Result<bool, SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        self.armed = true;
        self.consumer.flush_tail();
        self.consumer.set_waiting(true);
        match self.consumer.ready_now() {
            Ok(ready) => {
                if !ready {
                    self.drain_wake_fd();
                    // A record may have landed between the check and the drain.
                    if self.consumer.ready_now().unwrap_or(true) {
                        self.signal_self();
                    }
                }
                Ok(ready)
            }
            Err(reason) => Err(self.fail_corrupt(reason)),
        }
    }

    /// Withdraws an [`Session::arm_for_poll`] not yet ended by a received record: the peer stops
    /// signalling the wake fd for its records (a server that will look at this session at its
    /// next wake-up anyway, whatever wakes it). Publishes the room taken records freed, as
    /// arming does, so the peer never waits for space we have already made.
    pub fn disarm(&mut self) {
        if self.closed {
            return;
        }
        self.consumer.flush_tail();
        if self.armed {
            self.armed = false;
            self.consumer.set_waiting(false);
        }
    }

    /// Keeps the wake fd ([`AsRawFd::as_raw_fd`]) readable exactly while a record waits or
    /// `held` (records the caller took from the ring and still holds), for an application
    /// that polls the fd between its calls, as libcpg's fd is polled: call it after every call
    /// that may have received. Returns whether something waits.
    ///
    /// Unlike [`Session::arm_for_poll`], which a server calls once before each sleep, this is
    /// called after every library call, so it makes no system call unless the fd must change:
    /// an application that multicasts in a loop while deliveries wait must not pay a signal
    /// (and, on a wake pair, a datagram to read back) per call.
    pub fn keep_fd_current(&mut self, held: bool) -> Result<bool, SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        if self.armed {
            let ready = match self.consumer.ready_now() {
                Ok(ready) => ready || held,
                Err(reason) => return Err(self.fail_corrupt(reason)),
            };
            match (self.fd_state.get(), ready) {
                (FdState::Readable, true) | (FdState::Quiet, false) => return Ok(ready),
                // The flag was up when the record landed, so the peer signalled it.
                (FdState::Quiet, true) if !held => {
                    self.fd_state.set(FdState::Readable);
                    return Ok(true);
                }
                _ => {}
            }
        }
        let ready = self.arm_for_poll()? || held;
        if ready {
            self.signal_self();
            self.fd_state.set(FdState::Readable);
        } else {
            self.fd_state.set(FdState::Quiet);
        }
        Ok(ready)
    }

    /// Makes the wake fd unreadable again (what woke it is being looked at).
    fn drain_wake_fd(&self) {
        sys::wake_drain(self.wake_fd.as_raw_fd(), self.self_wake_fd.is_some());
    }

    /// Makes this end's wake fd ([`AsRawFd::as_raw_fd`]) readable: a poll on it returns at
    /// once (something waits that the peer will not signal, or a thread sleeping on it must
    /// wake).
    pub fn signal_self(&self) {
        self.fd_state.set(FdState::Stale);
        let fd = self.self_wake_fd.as_ref().unwrap_or(&self.wake_fd);
        sys::eventfd_signal(fd.as_raw_fd());
    }

    /// Raises our flag, re-checks, sleeps on (wake fd, control socket), lowers the flag.
    fn sleep(&mut self, want: Want, deadline: Option<Instant>) -> Result<(), SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        let ready = match want {
            Want::Record => {
                self.consumer.set_waiting(true);
                self.consumer.ready_now()
            }
            Want::Space(size) => {
                self.producer.set_waiting(true);
                self.producer.fits_now(size)
            }
        };
        let result = match ready {
            Err(reason) => Err(self.fail_corrupt(reason)),
            Ok(true) => Ok(()),
            Ok(false) => self.poll_once(deadline, matches!(want, Want::Record)),
        };
        match want {
            Want::Record => {
                self.armed = false;
                self.consumer.set_waiting(false);
            }
            Want::Space(_) => self.producer.set_waiting(false),
        }
        result
    }

    /// One poll of the wake fd and the control socket. `record_wanted`: a record the peer wrote
    /// just before it went away is still read before its going is reported (rotord's refusal
    /// of a session is a record and a close, which one poll sees at once).
    fn poll_once(
        &mut self,
        deadline: Option<Instant>,
        record_wanted: bool,
    ) -> Result<(), SessionError> {
        let timeout = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(SessionError::TimedOut);
                }
                Some(left)
            }
        };
        let polled = sys::poll2(self.wake_fd.as_raw_fd(), self.socket.as_raw_fd(), timeout)?;
        if polled.woken {
            self.drain_wake_fd();
            self.fd_state.set(FdState::Stale);
        }
        match sys::socket_peer_gone(self.socket.as_raw_fd(), polled.socket_events) {
            Ok(false) => Ok(()),
            Ok(true) if record_wanted && self.consumer.ready_now().unwrap_or(false) => Ok(()),
            Ok(true) => Err(self.fail_gone()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(self.fail_protocol("unexpected bytes on the control socket"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl AsRawFd for Session {
    /// The wake fd: readable when the peer has signalled. See [`Session::arm_for_poll`]. On
    /// the client, the poll end of its wake pair: a socket whose peer credentials are the
    /// server's.
    fn as_raw_fd(&self) -> RawFd {
        self.wake_fd.as_raw_fd()
    }
}

/// The spin-then-sleep policy of one `send`/`recv` call. It reads no clock until the first
/// attempt has failed, so a call that succeeds at once (the busy fast path) costs no clock read.
struct Waiter {
    mode: WaitMode,
    timeout: Option<Duration>,
    /// Set at the first failed attempt (the clock is read then).
    started: bool,
    spin_until: Option<Instant>,
    sleeping: bool,
    deadline: Option<Instant>,
    rounds: u32,
}

impl Waiter {
    fn new(mode: WaitMode, timeout: Option<Duration>) -> Waiter {
        Waiter {
            mode,
            timeout,
            started: false,
            spin_until: None,
            sleeping: false,
            deadline: None,
            rounds: 0,
        }
    }

    /// Called after each unsuccessful attempt: spins (returns `false`) or says to sleep.
    fn should_sleep(&mut self) -> Result<bool, SessionError> {
        if !self.started {
            self.started = true;
            let budget = self.mode.spin_budget();
            if budget.is_some() || self.timeout.is_some() {
                let now = Instant::now();
                self.sleeping = budget == Some(Duration::ZERO);
                self.spin_until = budget.map(|b| now + b);
                self.deadline = self.timeout.map(|t| now + t);
            }
        }
        if self.sleeping {
            return Ok(true);
        }
        self.rounds += 1;
        if self.rounds % CLOCK_CHECK_INTERVAL == 0
            && (self.deadline.is_some() || self.spin_until.is_some())
        {
            let now = Instant::now();
            if self.deadline.is_some_and(|d| now >= d) {
                return Err(SessionError::TimedOut);
            }
            if self.spin_until.is_some_and(|s| now >= s) {
                self.sleeping = true;
                return Ok(true);
            }
        }
        std::hint::spin_loop();
        Ok(false)
    }
}
