//! The attach handshake's two messages on the SOCK_SEQPACKET control socket, encoded by hand
//! as fixed little-endian fields (no pointers, no padding ambiguity), and the socket name.

/// `b"RTRA"` little-endian: first word of both handshake messages.
pub const HANDSHAKE_MAGIC: u32 = u32::from_le_bytes(*b"RTRA");
/// Bumped on every incompatible change of the handshake or of the ring layout.
pub const HANDSHAKE_VERSION: u32 = 3;

/// Environment variable that overrides the abstract socket name.
pub const SOCKET_ENV: &str = "ROTOR_IPC_SOCKET";
/// Abstract socket name used when [`SOCKET_ENV`] is unset.
pub const SOCKET_NAME_DEFAULT: &str = "rotor-ipc";

/// The socket name in force: `$ROTOR_IPC_SOCKET`, else [`SOCKET_NAME_DEFAULT`].
pub fn socket_name() -> String {
    std::env::var(SOCKET_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| SOCKET_NAME_DEFAULT.to_owned())
}

/// Client → server: `magic u32, version u32`.
pub const HELLO_SIZE: usize = 8;
/// Server → client: `magic u32, version u32, status u32, uid u32, gid u32, server_pid u32`, plus
/// (status OK only) five fds: client→server ring, server→client ring, server eventfd, and the
/// client's wake pair ([`crate::sys::wake_pair`]): its signal end, then its poll end.
pub const REPLY_SIZE: usize = 24;
/// Fds carried by an OK reply.
pub const REPLY_FDS: usize = 5;

/// Reply status: attached.
pub const STATUS_OK: u32 = 0;
/// Reply status: the peer's uid/gid is not on the allow-list.
pub const STATUS_PERMISSION_DENIED: u32 = 1;
/// Reply status: the client speaks another handshake version.
pub const STATUS_VERSION_MISMATCH: u32 = 2;
/// Reply status: the server could not create the rings.
pub const STATUS_SERVER_ERROR: u32 = 3;

/// Encodes the client's hello.
pub fn encode_hello() -> [u8; HELLO_SIZE] {
    let mut out = [0u8; HELLO_SIZE];
    out[0..4].copy_from_slice(&HANDSHAKE_MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&HANDSHAKE_VERSION.to_le_bytes());
    out
}

/// Decodes a hello into `(magic, version)`; `None` when the size is wrong.
pub fn decode_hello(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() != HELLO_SIZE {
        return None;
    }
    Some((word(bytes, 0), word(bytes, 4)))
}

/// A decoded server reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub magic: u32,
    pub version: u32,
    pub status: u32,
    pub uid: u32,
    pub gid: u32,
    pub server_pid: u32,
}

/// Encodes a reply with our magic and version.
pub fn encode_reply(status: u32, uid: u32, gid: u32, server_pid: u32) -> [u8; REPLY_SIZE] {
    let mut out = [0u8; REPLY_SIZE];
    for (i, w) in [
        HANDSHAKE_MAGIC,
        HANDSHAKE_VERSION,
        status,
        uid,
        gid,
        server_pid,
    ]
    .into_iter()
    .enumerate()
    {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Decodes a reply; `None` when the size is wrong.
pub fn decode_reply(bytes: &[u8]) -> Option<Reply> {
    if bytes.len() != REPLY_SIZE {
        return None;
    }
    Some(Reply {
        magic: word(bytes, 0),
        version: word(bytes, 4),
        status: word(bytes, 8),
        uid: word(bytes, 12),
        gid: word(bytes, 16),
        server_pid: word(bytes, 20),
    })
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}
