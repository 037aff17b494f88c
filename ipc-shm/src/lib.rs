//! ipc-shm: how rotor's local parties talk — applications with the dataplane (the CPG fast
//! path), applications with rotord (cmap, quorum, cfg), rotord with the dataplane. Each
//! connection is a pair of single-producer single-consumer byte rings in sealed memfd-backed
//! shared memory, carrying variable-length records up to `record_size_max` (1 MiB + 64 KiB by
//! default), with busy, blocking (eventfd, signalled only when the other side sleeps) and
//! adaptive waiting; a connection is set up by a handshake on an abstract Unix socket that checks
//! the peer's SO_PEERCRED against an allow-list and passes the ring fds with SCM_RIGHTS. The
//! server treats the shared memory as hostile: every cursor and record header is copied out and
//! validated, and an impossible value closes that one session with a logged reason. This crate
//! deliberately knows nothing of Totem, CPG or the wire format: a record is opaque bytes.
//!
//! ```no_run
//! use ipc_shm::{AllowList, Client, Server, WaitMode};
//! let server = Server::bind("rotor-ipc-example", AllowList::root_only().allow_gid(1000))?;
//! // in the application:
//! let mut app = Client::connect("rotor-ipc-example")?;
//! app.send(b"hello", WaitMode::Blocking)?;
//! // in the server:
//! let mut session = server.accept()?;
//! let mut buf = vec![0u8; session.recv_size_max()];
//! let len = session.recv(&mut buf, WaitMode::Adaptive { spin_ns: 20_000 })?;
//! assert_eq!(&buf[..len], b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod client;
pub mod handoff;
pub mod handshake;
pub mod layout;
pub mod ring;
pub mod server;
pub mod session;
mod sys;
pub mod wait;

pub use client::{AttachError, Client};
pub use handoff::{DetachedSession, HandoffError};
pub use handshake::{socket_name, SOCKET_ENV, SOCKET_NAME_DEFAULT};
pub use ring::{pair, Consumer, CorruptReason, PopError, Producer, PushError, RingAttachError};
pub use server::{AcceptError, AllowList, Server, ServerConfig};
pub use session::{PeerCred, Role, Session, SessionError};
pub use sys::Mapping;
pub use wait::WaitMode;
