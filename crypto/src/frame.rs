//! The seal header: the wire ABI in front of every cluster frame.

use zerocopy::byteorder::network_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes of [`SealHeader`] at the start of every frame.
pub const HEADER_LEN: usize = 28;
/// Bytes of the GCM/GMAC authentication tag at the end of a frame (absent in mode none).
pub const TAG_LEN: usize = 16;
/// [`SealHeader::magic`]: "RT".
pub const MAGIC: [u8; 2] = *b"RT";
/// [`SealHeader::version`] this crate writes and accepts. 2: the key id after the counter.
pub const VERSION: u8 = 2;

/// The header in front of every frame, always authenticated as associated data (never
/// encrypted), all integers in network byte order.
///
/// ```text
///  0      2    3     4              8          12         16                      24       28
///  | "RT" | v2 | mode | cluster_hash | sender   | epoch    | counter              | key_id | body … | tag (16) |
/// ```
///
/// Invariant: the nonce of a frame is `epoch (4 B, BE) ‖ counter (8 B, BE)`, i.e. bytes 12..24 of
/// this header, under the sender's own subkey of the key `key_id` names. One sender's counter
/// runs on across key changes, so a nonce is never reused under any key and one replay window
/// per sender covers every key.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
pub struct SealHeader {
    /// Always [`MAGIC`].
    pub magic: [u8; 2],
    /// Always [`VERSION`]; a different layout gets a different version.
    pub version: u8,
    /// [`crate::CryptoMode::wire_byte`] of the sender's mode.
    pub mode: u8,
    /// Hash of the cluster name, supplied by the caller (e.g. [`crate::cluster_name_hash`]);
    /// frames of another cluster are dropped before any crypto.
    pub cluster_hash: U32,
    /// Sender node id.
    pub sender: U32,
    /// Sender's per-boot epoch; strictly larger after each restart of the sender.
    pub epoch: U32,
    /// Per-(sender, epoch) frame counter, never reused.
    pub counter: U64,
    /// [`crate::Keys::id`] of the key the frame is sealed under (0 in mode none): a receiver
    /// holding two keys during a rotation picks the one named, and drops a frame under a key
    /// it does not hold before any crypto.
    pub key_id: U32,
}

const _: () = assert!(core::mem::size_of::<SealHeader>() == HEADER_LEN);
const _: () = assert!(core::mem::align_of::<SealHeader>() == 1);

impl SealHeader {
    /// The 12-byte GCM nonce of this frame: epoch (BE) ‖ counter (BE).
    pub fn nonce_bytes(&self) -> [u8; 12] {
        nonce_bytes(self.epoch.get(), self.counter.get())
    }
}

/// The 12-byte GCM nonce: epoch (4 B, BE) ‖ counter (8 B, BE).
pub(crate) fn nonce_bytes(epoch: u32, counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&epoch.to_be_bytes());
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// 32-bit FNV-1a of a cluster name: a convenient [`SealHeader::cluster_hash`]. Not a security
/// measure (the subkeys already bind the cluster name); it only lets clusters sharing a wire skip
/// each other's frames cheaply.
pub fn cluster_name_hash(cluster_name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &byte in cluster_name.as_bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}
