//! The attach server: listens on an abstract Unix socket, checks each peer with SO_PEERCRED
//! against the allow-list, creates its two rings and two eventfds and passes them with
//! SCM_RIGHTS. Runs in rotord (for applications and the dataplane) or in the dataplane.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::handshake::{
    decode_hello, encode_reply, HANDSHAKE_MAGIC, HANDSHAKE_VERSION, HELLO_SIZE, REPLY_FDS,
    STATUS_OK, STATUS_PERMISSION_DENIED, STATUS_SERVER_ERROR, STATUS_VERSION_MISMATCH,
};
use crate::layout::{DATA_SIZE_DEFAULT, RECORD_SIZE_MAX_DEFAULT};
use crate::ring::{self, Consumer, Producer};
use crate::session::{PeerCred, Role, Session, WakeFds};
use crate::sys;

/// Who may attach: root always, plus the uids and gids configured (corosync.conf `uidgid`),
/// and, for a server that does not run as root, the user it runs as
/// ([`AllowList::root_and_owner`]): such a user can already read the server's memory, so
/// admitting it grants nothing new, and without it a non-root rotord would refuse its own
/// `rotor status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    uids: BTreeSet<u32>,
    gids: BTreeSet<u32>,
}

impl AllowList {
    /// Root only.
    pub fn root_only() -> AllowList {
        AllowList::default()
    }

    /// Root and the effective uid of this process (the server's owner).
    pub fn root_and_owner() -> AllowList {
        // Safety: geteuid has no preconditions and cannot fail.
        AllowList::root_only().allow_uid(unsafe { libc::geteuid() })
    }

    /// Also allows this user id.
    pub fn allow_uid(mut self, uid: u32) -> AllowList {
        self.uids.insert(uid);
        self
    }

    /// Also allows this (primary) group id.
    pub fn allow_gid(mut self, gid: u32) -> AllowList {
        self.gids.insert(gid);
        self
    }

    /// May a peer with these credentials attach?
    pub fn permits(&self, uid: u32, gid: u32) -> bool {
        uid == 0 || self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

/// Ring sizes and the handshake timeout of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Data region of each ring, bytes (power of two).
    pub data_size: usize,
    /// Largest record, bytes. Invariant: `<= layout::record_size_max_for(data_size)`.
    pub record_size_max: usize,
    /// How long `accept` waits for a connected client's hello before dropping it.
    pub handshake_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            data_size: DATA_SIZE_DEFAULT,
            record_size_max: RECORD_SIZE_MAX_DEFAULT,
            handshake_timeout: Duration::from_secs(1),
        }
    }
}

/// Why one `accept` produced no session. The server itself stays usable.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The peer's uid/gid is not allowed; it was told so and disconnected.
    #[error("permission denied for uid {uid} (gid {gid}, pid {pid})")]
    PermissionDenied { pid: i32, uid: u32, gid: u32 },
    /// The peer sent no valid hello in time, or another version.
    #[error("handshake with pid {pid} failed: {why}")]
    Handshake { pid: i32, why: String },
    /// A system call failed.
    #[error("accept: {0}")]
    Io(#[from] io::Error),
}

/// The listening end of the attach handshake.
pub struct Server {
    listener: OwnedFd,
    name: String,
    allow: AllowList,
    config: ServerConfig,
}

impl Server {
    /// Listens on the abstract socket `name` with default ring sizes.
    pub fn bind(name: &str, allow: AllowList) -> io::Result<Server> {
        Server::bind_with(name, allow, ServerConfig::default())
    }

    /// Listens on the abstract socket `name`.
    pub fn bind_with(name: &str, allow: AllowList, config: ServerConfig) -> io::Result<Server> {
        crate::layout::check_sizes(config.data_size as u64, config.record_size_max as u64)
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
        let listener = sys::listen_abstract(name)?;
        Ok(Server {
            listener,
            name: name.to_owned(),
            allow,
            config,
        })
    }

    /// The abstract socket name (without the leading NUL).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Admits clients by `allow` from the next attach on (a reload or a cmap write changed
    /// the uidgid entries); sessions already attached are not affected.
    pub fn set_allow_list(&mut self, allow: AllowList) {
        self.allow = allow;
    }

    /// Waits for one client and runs the handshake. Refused or broken clients come back as
    /// errors (already logged and disconnected); call again for the next client.
    pub fn accept(&self) -> Result<Session, AcceptError> {
        let (parts, socket, peer) = self.accept_parts()?;
        // Our copies of the memfds close here; the mappings keep the memory alive.
        Ok(Session::new(
            parts.producer,
            parts.consumer,
            socket,
            WakeFds {
                poll: parts.server_wake,
                signal_self: None,
                peer: parts.client_wake,
            },
            peer,
            Role::Server,
        ))
    }

    /// Like [`Server::accept`], but instead of a session returns its descriptors, for handing
    /// the server end to another process ([`crate::handoff`]): rotord runs the handshake,
    /// the dataplane serves the session.
    pub fn accept_detached(&self) -> Result<crate::handoff::DetachedSession, AcceptError> {
        let (parts, socket, peer) = self.accept_parts()?;
        Ok(crate::handoff::DetachedSession {
            to_server: parts.to_server_fd,
            to_client: parts.to_client_fd,
            server_wake: parts.server_wake,
            client_wake: parts.client_wake,
            socket,
            peer,
        })
    }

    fn accept_parts(&self) -> Result<(Parts, OwnedFd, PeerCred), AcceptError> {
        let socket = sys::accept(self.listener.as_raw_fd())?;
        let cred = sys::peer_cred(socket.as_raw_fd())?;
        let peer = PeerCred {
            pid: cred.pid,
            uid: cred.uid,
            gid: cred.gid,
        };
        let result = self.handshake(socket, peer);
        match &result {
            // The error names the pid, uid and gid.
            Err(err) => tracing::warn!("attach to @{} refused: {err}", self.name),
            Ok(_) => tracing::debug!(
                "pid {} (uid {}, gid {}) attached to @{}: two rings of {} bytes, records up to {} \
                 bytes",
                peer.pid,
                peer.uid,
                peer.gid,
                self.name,
                self.config.data_size,
                self.config.record_size_max
            ),
        }
        result.map(|(parts, socket)| (parts, socket, peer))
    }

    fn handshake(&self, socket: OwnedFd, peer: PeerCred) -> Result<(Parts, OwnedFd), AcceptError> {
        let fd = socket.as_raw_fd();
        sys::set_socket_timeouts(fd, Some(self.config.handshake_timeout))?;
        let server_pid = std::process::id();
        // Read the hello before answering even a refused peer: closing a socket with unread
        // data resets the connection, and the peer would see a reset instead of our reason.
        let mut hello = [0u8; HELLO_SIZE + 1];
        let hello =
            sys::recv_with_fds(fd, &mut hello).map(|(len, _fds)| decode_hello(&hello[..len]));
        if !self.allow.permits(peer.uid, peer.gid) {
            let reply = encode_reply(STATUS_PERMISSION_DENIED, peer.uid, peer.gid, server_pid);
            let _ = sys::send_with_fds(fd, &reply, &[]);
            return Err(AcceptError::PermissionDenied {
                pid: peer.pid,
                uid: peer.uid,
                gid: peer.gid,
            });
        }
        let hello = hello.map_err(|e| AcceptError::Handshake {
            pid: peer.pid,
            why: format!("no hello: {e}"),
        })?;
        let Some((magic, version)) = hello else {
            return Err(AcceptError::Handshake {
                pid: peer.pid,
                why: "hello of the wrong size".to_owned(),
            });
        };
        if magic != HANDSHAKE_MAGIC || version != HANDSHAKE_VERSION {
            let reply = encode_reply(STATUS_VERSION_MISMATCH, peer.uid, peer.gid, server_pid);
            let _ = sys::send_with_fds(fd, &reply, &[]);
            return Err(AcceptError::Handshake {
                pid: peer.pid,
                why: format!(
                    "magic {magic:#x} version {version}, we speak version {HANDSHAKE_VERSION}"
                ),
            });
        }
        let parts = match self.create_parts() {
            Ok(parts) => parts,
            Err(e) => {
                let reply = encode_reply(STATUS_SERVER_ERROR, peer.uid, peer.gid, server_pid);
                let _ = sys::send_with_fds(fd, &reply, &[]);
                return Err(AcceptError::Io(e));
            }
        };
        let reply = encode_reply(STATUS_OK, peer.uid, peer.gid, server_pid);
        let fds: [RawFd; REPLY_FDS] = [
            parts.to_server_fd.as_raw_fd(),
            parts.to_client_fd.as_raw_fd(),
            parts.server_wake.as_raw_fd(),
            parts.client_wake.as_raw_fd(),
            parts.client_poll.as_raw_fd(),
        ];
        sys::send_with_fds(fd, &reply, &fds)?;
        sys::set_socket_timeouts(fd, None)?;
        Ok((parts, socket))
    }

    fn create_parts(&self) -> io::Result<Parts> {
        let ServerConfig {
            data_size,
            record_size_max,
            ..
        } = self.config;
        let (to_server_fd, to_server) = ring::create(data_size, record_size_max)?;
        let (to_client_fd, to_client) = ring::create(data_size, record_size_max)?;
        let (client_poll, client_wake) = sys::wake_pair()?;
        Ok(Parts {
            consumer: Consumer::new(to_server, data_size, record_size_max),
            producer: Producer::new(to_client, data_size, record_size_max),
            to_server_fd,
            to_client_fd,
            server_wake: sys::eventfd()?,
            client_wake,
            client_poll,
        })
    }
}

impl AsRawFd for Server {
    /// The listening socket, readable when a client is waiting to be accepted.
    fn as_raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }
}

struct Parts {
    consumer: Consumer,
    producer: Producer,
    to_server_fd: OwnedFd,
    to_client_fd: OwnedFd,
    server_wake: OwnedFd,
    /// The signal end of the client's wake pair (the server side keeps it).
    client_wake: OwnedFd,
    /// The poll end of the client's wake pair (only the client keeps it).
    client_poll: OwnedFd,
}
