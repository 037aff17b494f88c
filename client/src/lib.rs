//! rotor-client: the Rust client library and the `rotor` command-line tool. `cpg::Cpg` is a
//! CPG handle with libcpg's semantics (join, leave, mcast AGREED/SAFE, membership, groups,
//! dispatch with deliver/confchg/totem-confchg callbacks, a pollable fd), served by the
//! dataplane through shared-memory rings that rotord brokers; `cmap::Cmap` is cmap, and
//! `cfg::Cfg` is libcfg's calls (status, reload, key rotation, kill, shutdown with the
//! applications' say, node status and addresses), both served by rotord; `keygen` writes
//! authkeys. It deliberately talks to
//! the cluster only through rotord and the dataplane's rings: it never opens cluster sockets
//! itself. `quorum::Quorum` and `votequorum::Votequorum` are libquorum's and libvotequorum's
//! handles, served by rotord. `sam::Sam` is libsam: the process supervises itself (fork,
//! health checks, restart or quit, quorum policies, a data store that survives restarts),
//! publishing its state in cmap.

pub mod bench;
pub mod cfg;
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
    #[error("{}", attach_text(.0))]
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

/// What an attach failure means to the person who ran the client: "is rotord running?" only
/// where nobody answered, what to write in the config where rotord refused the uid.
fn attach_text(error: &ipc_shm::AttachError) -> String {
    use ipc_shm::AttachError;
    match error {
        AttachError::Connect { .. } => {
            format!("{error} (is rotord running in this network namespace?)")
        }
        AttachError::PermissionDenied { uid } => format!(
            "rotord refused this client: permission denied for uid {uid}; \
             list `uid: {uid}` (or its group's `gid:`) in uidgid {{ }} of rotord's config, \
             or run as root or as the user rotord runs as"
        ),
        other => format!("cannot attach to rotor: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_errors_say_what_to_do() {
        let refused = Error::from(ipc_shm::AttachError::PermissionDenied { uid: 65534 });
        let text = refused.to_string();
        assert!(text.contains("permission denied for uid 65534"), "{text}");
        assert!(text.contains("uidgid"), "{text}");
        assert!(!text.contains("is rotord running"), "{text}");
        let absent = Error::from(ipc_shm::AttachError::Connect {
            name: "rotor-ipc".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        });
        assert!(absent.to_string().contains("is rotord running"), "{absent}");
    }
}
