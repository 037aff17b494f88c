//! rotor-client: the Rust client library and the `rotor` command-line tool. `cpg::Cpg` is a
//! CPG handle with libcpg's semantics (join, leave, mcast AGREED/SAFE, membership, groups,
//! dispatch with deliver/confchg/totem-confchg callbacks, a pollable fd), served by the
//! dataplane through shared-memory rings that rotord brokers; `cmap::Cmap` is cmap and cfg
//! (status, shutdown), served by rotord; `keygen` writes authkeys. It deliberately talks to
//! the cluster only through rotord and the dataplane's rings: it never opens cluster sockets
//! itself. `quorum::Quorum` and `votequorum::Votequorum` are libquorum's and libvotequorum's
//! handles, served by rotord. `sam::Sam` is libsam: the process supervises itself (fork,
//! health checks, restart or quit, quorum policies, a data store that survives restarts),
//! publishing its state in cmap.

pub mod bench;
pub mod cmap;
mod conn;
pub mod cpg;
pub mod keygen;
pub mod quorum;
pub mod quorumtool;
pub mod sam;
pub mod votequorum;

use rotor_proto::Status;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot attach to rotor (is rotord running?): {0}")]
    Attach(#[from] ipc_shm::AttachError),
    #[error("{0}")]
    Session(#[from] ipc_shm::SessionError),
    #[error("the ring to the node is full, try again")]
    TryAgain,
    #[error("no reply from the node within the timeout")]
    Timeout,
    #[error("refused: {0}")]
    Status(Status),
    #[error("refused ({status}): {message}")]
    Refused { status: Status, message: String },
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("malformed record from the node: {0}")]
    Decode(#[from] rotor_proto::DecodeError),
}
