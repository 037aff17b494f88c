//! The dataplane's end of the control socket to rotord: the start message first, then
//! sessions handed over, quorum requests, shutdown; reports, stats and log lines go up in
//! order, queued while the socket is full.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use ipc_shm::{DetachedSession, PeerCred, Session};
use rotor_proto::control::{DataplaneStart, FromDataplane, ToDataplane};

/// The largest message on the control socket: a `Start` with 384 peers, a 4 KiB key and every
/// totem setting is well below it.
const CONTROL_MESSAGE_MAX: usize = 64 << 10;

/// The rotord side of the control socket.
pub struct Control {
    sock: OwnedFd,
    buf: Vec<u8>,
    /// Messages of `send_in_order` waiting for room in the socket.
    queued: VecDeque<Vec<u8>>,
}

/// Why the first message from rotord did not arrive.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no start message from rotord within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("rotord hung up before sending the start message")]
    Gone,
    #[error("rotord's first message is not a start message")]
    NotFirst,
    #[error("start message: {0}")]
    Decode(rotor_proto::DecodeError),
    #[error("control socket: {0}")]
    Io(io::Error),
}

/// What rotord asked for.
pub enum ControlInput {
    Session(Session),
    /// A runtime change (see `change`), with the descriptors that came beside it (the map
    /// fds of the links an answer adds on XDP).
    Change(rotor_proto::change::ChangeRequest, Vec<OwnedFd>),
    /// A votequorum request for one of rotord's clients.
    Quorum {
        request: u32,
        op: rotor_proto::dataplane_quorum::QuorumOp,
    },
    Shutdown,
    /// rotord hung up: it died or is stopping; leave and exit.
    Gone,
}

impl Control {
    pub fn new(sock: OwnedFd) -> io::Result<Control> {
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(sock.as_raw_fd(), libc::F_GETFL);
            if flags < 0
                || libc::fcntl(sock.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Control {
            sock,
            buf: vec![0; CONTROL_MESSAGE_MAX],
            queued: VecDeque::new(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Waits (at most `timeout`) for rotord's first message, `Start`, with the descriptors that
    /// come with it (the XDP program's `xsks` and `counters` maps, when the transport is XDP).
    pub fn receive_start(
        &mut self,
        timeout: Duration,
    ) -> Result<(Box<DataplaneStart>, Vec<OwnedFd>), StartError> {
        let fd = self.sock.as_raw_fd();
        if !crate::poll::wait_readable(fd, &[], timeout).map_err(StartError::Io)? {
            return Err(StartError::Timeout(timeout));
        }
        let (n, fds) = ipc_shm::handoff::recv_message(fd, &mut self.buf).map_err(StartError::Io)?;
        if n == 0 && fds.is_empty() {
            return Err(StartError::Gone);
        }
        match ToDataplane::decode(&self.buf[..n]) {
            Ok(ToDataplane::Start(start)) => Ok((start, fds)),
            Ok(_) => Err(StartError::NotFirst),
            Err(e) => Err(StartError::Decode(e)),
        }
    }

    /// The next message from rotord, if one is waiting.
    pub fn poll(&mut self) -> Option<ControlInput> {
        loop {
            let (n, fds) =
                match ipc_shm::handoff::recv_message(self.sock.as_raw_fd(), &mut self.buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) => {
                        tracing::error!(target: "MAIN", "control socket to rotord: {e}");
                        return Some(ControlInput::Gone);
                    }
                };
            if n == 0 && fds.is_empty() {
                return Some(ControlInput::Gone);
            }
            match ToDataplane::decode(&self.buf[..n]) {
                Ok(ToDataplane::Session { pid, uid, gid }) => {
                    let peer = PeerCred { pid, uid, gid };
                    match DetachedSession::from_fds(fds, peer).and_then(|d| d.into_session()) {
                        Ok(s) => return Some(ControlInput::Session(s)),
                        Err(e) => tracing::warn!(
                            target: "CPG",
                            "session of client pid {pid} (uid {uid}) handed over by rotord \
                             refused: {e}"
                        ),
                    }
                }
                Ok(ToDataplane::Shutdown) => return Some(ControlInput::Shutdown),
                Ok(ToDataplane::Change(change)) => return Some(ControlInput::Change(change, fds)),
                Ok(ToDataplane::Quorum { request, op }) => {
                    return Some(ControlInput::Quorum { request, op })
                }
                Ok(ToDataplane::Logging(config)) => {
                    rotor_log::reconfigure(&config);
                }
                Ok(ToDataplane::Start(_)) => {
                    tracing::warn!(target: "MAIN", "a second start message from rotord ignored")
                }
                Err(e) => tracing::warn!(
                    target: "MAIN",
                    "message from rotord dropped: {e}"
                ),
            }
        }
    }

    /// Sends a report to rotord; a full socket drops it (the next report supersedes it).
    pub fn report(&mut self, msg: &FromDataplane) {
        let mut out = Vec::new();
        msg.encode(&mut out);
        let _ = ipc_shm::handoff::send_message(self.sock.as_raw_fd(), &out, &[]);
    }

    /// Sends a message that nothing later supersedes (a quorum reply or update): queued, in
    /// order, while the socket is full, and sent by `flush_queued`.
    pub fn send_in_order(&mut self, msg: &FromDataplane) {
        let mut out = Vec::new();
        msg.encode(&mut out);
        self.queued.push_back(out);
        self.flush_queued();
    }

    /// Sends what `send_in_order` queued while the socket has room.
    pub fn flush_queued(&mut self) {
        while let Some(front) = self.queued.front() {
            match ipc_shm::handoff::send_message(self.sock.as_raw_fd(), front, &[]) {
                Ok(_) => {
                    self.queued.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // rotord is gone: nobody to tell.
                    self.queued.clear();
                    return;
                }
            }
        }
    }
}
