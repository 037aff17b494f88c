//! Handing the server end of a session to another process: rotord runs the attach handshake
//! (credential check, ring creation) on its slow path and passes the server end's five
//! descriptors over a Unix socket to the dataplane, which adopts them as a [`Session`] — so
//! the dataplane's poll loop never blocks on a handshake, and CPG traffic never crosses rotord.
//! The adopting side re-validates both rings as it would any ring it did not create.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::ring::{self, Consumer, Producer, RingAttachError};
use crate::session::{PeerCred, Role, Session, WakeFds};
use crate::sys;

/// Descriptors in a handed-off session, in the order they travel.
pub const SESSION_FDS: usize = 5;

/// The server end of an attached session, not yet served by anyone
/// ([`crate::Server::accept_detached`]).
pub struct DetachedSession {
    /// Ring the client writes (we consume).
    pub to_server: OwnedFd,
    /// Ring we write (the client consumes).
    pub to_client: OwnedFd,
    pub server_wake: OwnedFd,
    pub client_wake: OwnedFd,
    /// The control socket whose hang-up tells that the client died.
    pub socket: OwnedFd,
    pub peer: PeerCred,
}

impl DetachedSession {
    /// Sends `message` with the five descriptors over the Unix socket `sock`; our copies close
    /// when `self` drops, so the receiver then holds the only server-side references.
    pub fn send(self, sock: RawFd, message: &[u8]) -> io::Result<()> {
        let fds = [
            self.to_server.as_raw_fd(),
            self.to_client.as_raw_fd(),
            self.server_wake.as_raw_fd(),
            self.client_wake.as_raw_fd(),
            self.socket.as_raw_fd(),
        ];
        sys::send_with_fds(sock, message, &fds)
    }

    /// Builds a detached session from descriptors received with [`recv_message`].
    pub fn from_fds(fds: Vec<OwnedFd>, peer: PeerCred) -> Result<DetachedSession, HandoffError> {
        let Ok::<[OwnedFd; SESSION_FDS], _>(
            [to_server, to_client, server_wake, client_wake, socket],
        ) = fds.try_into()
        else {
            return Err(HandoffError::FdCount);
        };
        Ok(DetachedSession {
            to_server,
            to_client,
            server_wake,
            client_wake,
            socket,
            peer,
        })
    }

    /// Maps and validates both rings and becomes the server end of the session.
    pub fn into_session(self) -> Result<Session, HandoffError> {
        let (incoming, in_size, in_max) = ring::attach(self.to_server.as_raw_fd())?;
        let (outgoing, out_size, out_max) = ring::attach(self.to_client.as_raw_fd())?;
        Ok(Session::new(
            Producer::new(outgoing, out_size, out_max),
            Consumer::new(incoming, in_size, in_max),
            self.socket,
            WakeFds {
                poll: self.server_wake,
                signal_self: None,
                peer: self.client_wake,
            },
            self.peer,
            Role::Server,
        ))
    }
}

/// Why a handed-off session could not be adopted.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    #[error("expected {SESSION_FDS} descriptors with a session")]
    FdCount,
    #[error("handed-off ring: {0}")]
    Ring(#[from] RingAttachError),
}

/// Sends `bytes` (and `fds`, possibly none) as one message on the Unix socket `sock`.
pub fn send_message(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    sys::send_with_fds(sock, bytes, fds)
}

/// Receives one message into `buf` with any descriptors it carries; `Ok((0, []))` at the
/// peer's hang-up.
pub fn recv_message(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    sys::recv_with_fds(sock, buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AllowList, Client, Server, WaitMode};

    #[test]
    fn a_handed_off_session_serves_the_client() {
        let name = format!("rotor-ipc-handoff-{}", std::process::id());
        let server = Server::bind(
            &name,
            AllowList::root_only().allow_uid(unsafe { libc::getuid() }),
        )
        .unwrap();
        let client = std::thread::spawn(move || {
            let mut s = Client::connect(&name).unwrap();
            s.send(b"ping", WaitMode::Blocking).unwrap();
            let mut buf = vec![0u8; 64];
            let n = s.recv(&mut buf, WaitMode::Blocking).unwrap();
            assert_eq!(&buf[..n], b"pong");
        });
        let detached = server.accept_detached().unwrap();
        let peer = detached.peer;
        let mut pair = [0; 2];
        // SAFETY: a valid array of two ints for socketpair to fill.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        detached.send(pair[0], b"session").unwrap();
        let mut msg = [0u8; 16];
        let (n, fds) = recv_message(pair[1], &mut msg).unwrap();
        assert_eq!(&msg[..n], b"session");
        let mut session = DetachedSession::from_fds(fds, peer)
            .unwrap()
            .into_session()
            .unwrap();
        let mut buf = vec![0u8; 64];
        let n = session.recv(&mut buf, WaitMode::Blocking).unwrap();
        assert_eq!(&buf[..n], b"ping");
        session.send(b"pong", WaitMode::Blocking).unwrap();
        client.join().unwrap();
        // SAFETY: closing the two descriptors socketpair gave us.
        unsafe {
            libc::close(pair[0]);
            libc::close(pair[1]);
        }
    }

    #[test]
    fn wrong_descriptor_count_is_refused() {
        let peer = PeerCred {
            pid: 1,
            uid: 0,
            gid: 0,
        };
        assert!(matches!(
            DetachedSession::from_fds(Vec::new(), peer),
            Err(HandoffError::FdCount)
        ));
    }
}
