//! The attach client: connects to the server's abstract socket, says hello, and maps the rings
//! whose fds come back, after checking each one's seals, size and header.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use crate::handshake::{
    decode_reply, encode_hello, socket_name, HANDSHAKE_MAGIC, HANDSHAKE_VERSION, REPLY_FDS,
    REPLY_SIZE, STATUS_OK, STATUS_PERMISSION_DENIED, STATUS_VERSION_MISMATCH,
};
use crate::ring::{self, Consumer, Producer, RingAttachError};
use crate::session::{PeerCred, Role, Session, WakeFds};
use crate::sys;

/// How long the client waits for the server's reply before giving up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client could not attach.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Nobody listens on the socket (or it cannot be reached).
    #[error("cannot connect to the rotor IPC socket @{name}: {source}")]
    Connect { name: String, source: io::Error },
    /// The server refused our credentials.
    #[error("permission denied for uid {uid}")]
    PermissionDenied { uid: u32 },
    /// The server speaks another version.
    #[error("server refused our handshake version {HANDSHAKE_VERSION}")]
    VersionMismatch,
    /// The server failed to set up the rings.
    #[error("server failed to create the rings (status {0})")]
    ServerError(u32),
    /// The server did not answer in time.
    #[error("no answer from the rotor IPC server within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The server closed the connection during the handshake.
    #[error("server closed the connection during the handshake")]
    Closed,
    /// The reply or a ring was malformed.
    #[error("bad handshake reply: {0}")]
    Protocol(&'static str),
    /// A received ring is unusable.
    #[error(transparent)]
    Ring(#[from] RingAttachError),
    /// A system call failed.
    #[error("attach: {0}")]
    Io(#[from] io::Error),
}

/// The connecting end of the attach handshake.
pub struct Client;

impl Client {
    /// Attaches to the server on `$ROTOR_IPC_SOCKET` (default `rotor-ipc`).
    pub fn connect_default() -> Result<Session, AttachError> {
        Client::connect(&socket_name())
    }

    /// Attaches to the server listening on the abstract socket `name`.
    pub fn connect(name: &str) -> Result<Session, AttachError> {
        let socket = sys::connect_abstract(name).map_err(|source| AttachError::Connect {
            name: name.to_owned(),
            source,
        })?;
        let fd = socket.as_raw_fd();
        sys::set_socket_timeouts(fd, Some(HANDSHAKE_TIMEOUT))?;
        // A refusing server may have closed before reading the hello: then read its reply anyway.
        if let Err(e) = sys::send_with_fds(fd, &encode_hello(), &[]) {
            if e.kind() != io::ErrorKind::BrokenPipe && e.kind() != io::ErrorKind::ConnectionReset {
                return Err(e.into());
            }
        }
        let mut buf = [0u8; REPLY_SIZE + 1];
        let (len, fds) = match sys::recv_with_fds(fd, &mut buf) {
            Ok(got) => got,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Err(AttachError::Timeout(HANDSHAKE_TIMEOUT))
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(AttachError::Closed)
            }
            Err(e) => return Err(e.into()),
        };
        if len == 0 {
            return Err(AttachError::Closed);
        }
        let reply =
            decode_reply(&buf[..len]).ok_or(AttachError::Protocol("reply of the wrong size"))?;
        if reply.magic != HANDSHAKE_MAGIC {
            return Err(AttachError::Protocol("bad reply magic"));
        }
        match reply.status {
            STATUS_OK => {}
            STATUS_PERMISSION_DENIED => {
                return Err(AttachError::PermissionDenied { uid: reply.uid })
            }
            STATUS_VERSION_MISMATCH => return Err(AttachError::VersionMismatch),
            other => return Err(AttachError::ServerError(other)),
        }
        if reply.version != HANDSHAKE_VERSION {
            return Err(AttachError::VersionMismatch);
        }
        let Ok::<[OwnedFd; REPLY_FDS], _>(
            [to_server_fd, to_client_fd, server_wake, client_wake, client_poll],
        ) = fds.try_into()
        else {
            return Err(AttachError::Protocol("reply without exactly five fds"));
        };
        let (to_server, out_size, out_max) = ring::attach(to_server_fd.as_raw_fd())?;
        let (to_client, in_size, in_max) = ring::attach(to_client_fd.as_raw_fd())?;
        sys::set_socket_timeouts(fd, None)?;
        let peer = PeerCred {
            pid: reply.server_pid as i32,
            uid: 0,
            gid: 0,
        };
        let peer = match sys::peer_cred(fd) {
            Ok(cred) => PeerCred {
                pid: cred.pid,
                uid: cred.uid,
                gid: cred.gid,
            },
            Err(_) => peer,
        };
        Ok(Session::new(
            Producer::new(to_server, out_size, out_max),
            Consumer::new(to_client, in_size, in_max),
            socket,
            WakeFds {
                poll: client_poll,
                signal_self: Some(client_wake),
                peer: server_wake,
            },
            peer,
            Role::Client,
        ))
    }
}
