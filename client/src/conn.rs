//! One attached session with request/reply matching: replies are matched by request id;
//! records that arrive while a reply is awaited (deliveries, notifications) are kept, in
//! order, for the next dispatch.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use ipc_shm::{Client, Session, SessionError, WaitMode};

use crate::cpg::Wait;
use crate::Error;

/// How long a request waits for its reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Conn {
    session: Session,
    next_req: u32,
    stash: VecDeque<Vec<u8>>,
    buf: Vec<u8>,
    /// A stashed record made current by [`Conn::take`].
    held: Vec<u8>,
    current: Current,
    pub(crate) out: Vec<u8>,
}

/// Where [`Conn::current`]'s record is.
#[derive(Clone, Copy)]
enum Current {
    None,
    /// The first `n` bytes of `buf`.
    Buf(usize),
    /// `held`.
    Held,
}

/// Is this record the reply to `req_id`?
pub(crate) type IsReply = fn(&[u8], u32) -> bool;

impl Conn {
    pub(crate) fn connect(name: &str) -> Result<Conn, Error> {
        let session = Client::connect(name)?;
        let buf = vec![0; session.recv_size_max()];
        Ok(Conn {
            session,
            next_req: 1,
            stash: VecDeque::new(),
            buf,
            held: Vec::new(),
            current: Current::None,
            out: Vec::new(),
        })
    }

    pub(crate) fn req_id(&mut self) -> u32 {
        let id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        id
    }

    /// Sends `self.out` followed by `tail` as one record, without waiting for room and
    /// without copying `tail` anywhere but into the ring: `TryAgain` when the ring is full.
    pub(crate) fn try_send_out_with(&mut self, tail: &[u8]) -> Result<(), Error> {
        match self.session.try_send_parts([self.out.as_slice(), tail]) {
            Ok(()) => Ok(()),
            Err(SessionError::Full) => Err(Error::TryAgain),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends `self.out` (waiting for room) and returns the reply to `req_id`.
    pub(crate) fn call(&mut self, req_id: u32, is_reply: IsReply) -> Result<Vec<u8>, Error> {
        self.call_within(req_id, is_reply, REPLY_TIMEOUT)
    }

    /// [`Conn::call`] for a request whose answer takes longer (a cluster-wide reload, a
    /// shutdown the applications vote on): waits up to `wait` for the reply.
    pub(crate) fn call_within(
        &mut self,
        req_id: u32,
        is_reply: IsReply,
        wait: Duration,
    ) -> Result<Vec<u8>, Error> {
        self.session
            .send_timeout(&self.out, WaitMode::Blocking, Some(REPLY_TIMEOUT))
            .map_err(timeout)?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let n = self
                .session
                .recv_timeout(&mut self.buf, WaitMode::Blocking, Some(left))
                .map_err(timeout)?;
            let record = self.buf[..n].to_vec();
            if is_reply(&record, req_id) {
                return Ok(record);
            }
            self.stash.push_back(record);
        }
    }

    /// The next record for dispatch, owned: stashed ones first; `None` when none came, waiting
    /// as `wait` says.
    pub(crate) fn next(&mut self, wait: Wait) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.take(wait)?.then(|| self.current().to_vec()))
    }

    /// Makes the next record [`Conn::current`] — a stashed one, or one copied from the ring
    /// into this connection's buffer (the one copy the ring's reader makes before it looks at
    /// a record) — waiting as `wait` says; false when none came. Dispatch decodes it in place,
    /// so a delivery reaches the handler without another copy or an allocation.
    pub(crate) fn take(&mut self, wait: Wait) -> Result<bool, Error> {
        if let Some(r) = self.stash.pop_front() {
            self.held = r;
            self.current = Current::Held;
            return Ok(true);
        }
        self.current = Current::None;
        let got = match wait {
            Wait::No => self.session.try_recv(&mut self.buf),
            Wait::Up(d) => self.session.recv_timeout(
                &mut self.buf,
                WaitMode::Adaptive { spin_ns: 20_000 },
                Some(d),
            ),
            Wait::Spin => self.session.recv(&mut self.buf, WaitMode::Busy),
        };
        match got {
            Ok(n) => {
                self.current = Current::Buf(n);
                Ok(true)
            }
            Err(SessionError::Empty) | Err(SessionError::TimedOut) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Hands the current record over in `buf`, whose memory this connection keeps in
    /// exchange; returns the record's length (it is `buf`'s first bytes). A record received
    /// from the ring is not copied: the buffers swap (a `buf` smaller than the ring's largest
    /// record is first replaced by one as large, which a caller that gives buffers back pays
    /// once).
    pub(crate) fn hand_over(&mut self, buf: &mut Vec<u8>) -> usize {
        match self.current {
            Current::None => 0,
            Current::Buf(n) => {
                if buf.len() != self.buf.len() {
                    *buf = vec![0; self.buf.len()];
                }
                std::mem::swap(buf, &mut self.buf);
                self.current = Current::None;
                n
            }
            Current::Held => {
                std::mem::swap(buf, &mut self.held);
                self.current = Current::None;
                buf.len()
            }
        }
    }

    /// Whether a record waits for [`Conn::take`] (stashed or in the ring), without taking it.
    pub(crate) fn record_waiting(&mut self) -> Result<bool, Error> {
        Ok(!self.stash.is_empty() || self.session.record_waiting()?)
    }

    /// The record the last successful [`Conn::take`] made current (empty if none).
    pub(crate) fn current(&self) -> &[u8] {
        match self.current {
            Current::None => &[],
            Current::Buf(n) => &self.buf[..n],
            Current::Held => &self.held,
        }
    }

    /// A descriptor for the caller's poll loop: readable when records wait.
    pub(crate) fn fd(&mut self) -> Result<RawFd, Error> {
        // Readable while records wait, in the ring or stashed here (which the peer never
        // signals), so the caller's poll returns at once.
        self.session.keep_fd_current(!self.stash.is_empty())?;
        Ok(self.session.as_raw_fd())
    }
}

impl Conn {
    /// The session's control socket: it hangs up when the peer goes away, which wakes a
    /// caller that sleeps on [`Conn::fd`] and it together.
    pub(crate) fn control_fd(&self) -> RawFd {
        self.session.control_fd()
    }

    /// Makes [`Conn::fd`] readable now: wakes a thread sleeping on it (a handle being
    /// finalized; closing an fd does not wake a poll on it).
    pub(crate) fn wake(&self) {
        self.session.signal_self();
    }
}

fn timeout(e: SessionError) -> Error {
    match e {
        SessionError::TimedOut => Error::Timeout,
        e => e.into(),
    }
}
