//! The versioned wire format of the core: fixed-layout big-endian headers read with `zerocopy`,
//! bounds-first decoding with checked arithmetic. This is an ABI: change `VERSION` with it.
//!
//! Every datagram is `Header` + a body chosen by `Header::kind`:
//! - DATA: `DataHdr` + packed items (see `pack`); with `FLAG_RECOVERY` the body is instead a
//!   second `DataHdr` describing an old-ring frame + that frame's body.
//! - TOKEN: `TokenHdr` + `rtr_count` × u64 retransmission requests.
//! - JOIN: `JoinHdr` + `proc_count` + `fail_count` + `excluded_count` × u32 node ids.
//! - COMMIT: `CommitHdr` + `member_count` × `CommitEntry`.
//! - PRESENCE: `PresenceHdr` + `node_count` × u32 node ids + `row_count` × (`RowHdr` + a bitmap
//!   of `node_count` bits): who hears whom (see `reach`).
//! - HOLD_CANCEL: `RingHdr`.
//! - SEGMENT: `SegmentHdr` + a piece of the body of a join, commit token or presence that is
//!   larger than one frame; the receiver reassembles the whole body and handles it as if it
//!   had come in one datagram of the kind `SegmentHdr::kind`.
//! - CONFIG: `ConfigHdr` + `len` bytes of the sender's configuration summary (see
//!   `config::identity`), sent to a node whose join or presence carried another
//!   configuration digest. Never segmented: the summary is cut to fit one frame.
//!
//! Version 2 added the join's excluded set and configuration digest, presence (replacing
//! version 1's merge-detect, sent by representatives only and carrying only the ring; it
//! carries the configuration digest too), segmentation and the CONFIG kind. The token's
//! `tail` (Accelerated Ring) took the place of padding that every sender wrote as zero, which
//! means "no frames follow": tokens of either kind are read alike, so the version stayed 2.

use zerocopy::byteorder::network_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::limits::{FRAME_SIZE_MIN, MEMBERS_MAX, SEGMENTS_MAX};
use crate::types::{NodeId, RingId};

pub const MAGIC: [u8; 2] = *b"TT";
pub const VERSION: u8 = 2;

pub const KIND_DATA: u8 = 1;
pub const KIND_TOKEN: u8 = 2;
pub const KIND_JOIN: u8 = 3;
pub const KIND_COMMIT: u8 = 4;
pub const KIND_PRESENCE: u8 = 5;
pub const KIND_HOLD_CANCEL: u8 = 6;
pub const KIND_SEGMENT: u8 = 7;
pub const KIND_CONFIG: u8 = 8;

/// Common header of every datagram.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 2],
    pub version: u8,
    pub kind: u8,
    /// Hash of the cluster name: two clusters on one wire ignore each other.
    pub cluster: U32,
    /// The node that transmitted this datagram.
    pub sender: U32,
    /// The sender's incarnation (changes when the node restarts).
    pub incarnation: U32,
}
const _: () = assert!(core::mem::size_of::<Header>() == 16);

/// Data frame: one ordered multicast of a ring.
pub const FLAG_SAFE: u8 = 1;
pub const FLAG_RECOVERY: u8 = 2;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct DataHdr {
    pub ring_seq: U64,
    pub ring_rep: U32,
    /// The node that stamped the frame (differs from `Header::sender` on retransmission).
    pub origin: U32,
    pub seq: U64,
    pub flags: u8,
    pub _pad: [u8; 3],
    /// Body length, so padding added by a transport is ignored.
    pub len: U32,
}
const _: () = assert!(core::mem::size_of::<DataHdr>() == 32);

pub const TOKEN_ROTATION_PENDING: u8 = 1;
pub const TOKEN_RECOVERY_DONE: u8 = 2;
/// Set by the representative when its next visit holds the token if the ring stays idle
/// (`seqno_unchanged_const`); cleared by a member whose visit is not idle. A member passing on
/// a token with it waits token_retransmit before sending it again, not the measured rotation
/// (`rto`): the representative's hold is not a lost token.
pub const TOKEN_HOLD_NEXT: u8 = 4;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct TokenHdr {
    pub ring_seq: U64,
    pub ring_rep: U32,
    pub aru_addr: U32,
    pub token_seq: U64,
    pub seq: U64,
    pub aru: U64,
    /// `seq` when the representative last passed the token (a rotation's start).
    pub rotation_start_seq: U64,
    pub fcc: U32,
    pub backlog: U32,
    pub flags: u8,
    /// How many times this token was sent again on its way round, modulo 256: a
    /// retransmission is the last token sent with this count one higher (see `srp`'s
    /// `on_token_retransmit_timeout`). A member whose token comes back with another count than
    /// it passed on takes no rotation sample: some hop of that rotation waited out a loss.
    /// Nothing else reads it. Zero from a sender that predates it (the field was padding).
    pub resent: u8,
    pub rtr_count: U16,
    /// Frames its sender multicasts right after this token (Accelerated Ring, see `srp`): the
    /// top `tail` of `seq` may still be on their way to the receiver, which neither requests
    /// them nor counts them missing on this visit. Zero from a sender of classic Totem (the
    /// field was padding, always zero, before).
    pub tail: U32,
    /// Lowest `aru` seen so far in the current rotation (reset by the representative).
    pub rotation_min_aru: U64,
    /// Published by the representative: every member has received every frame up to here.
    pub safe: U64,
}
const _: () = assert!(core::mem::size_of::<TokenHdr>() == 80);
/// Where a regular token's `resent` count lies in its datagram (the common header first).
pub const TOKEN_RESENT_OFFSET: usize = HEADER_LEN + core::mem::offset_of!(TokenHdr, resent);

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct JoinHdr {
    /// Highest ring sequence the sender has seen.
    pub ring_seq: U64,
    pub proc_count: U16,
    pub fail_count: U16,
    /// Nodes of the proc set left out because they do not all hear each other (see `reach`).
    /// Unlike the fail set, receivers do not take them over.
    pub excluded_count: U16,
    pub _pad: U16,
    /// `ConfigIdentity::digest` of the sender's configuration: a join of another
    /// configuration is dropped, so such nodes never form a ring together.
    pub config_digest: U64,
}
const _: () = assert!(core::mem::size_of::<JoinHdr>() == 24);

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct CommitHdr {
    pub ring_seq: U64,
    pub ring_rep: U32,
    pub member_count: U16,
    /// 1 on the first rotation (members fill their entry), 2 on the second.
    pub pass: u8,
    pub _pad: u8,
    pub token_seq: U64,
}
const _: () = assert!(core::mem::size_of::<CommitHdr>() == 24);

/// One member's state in the commit token; `old_rep == 0` means not filled yet.
#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct CommitEntry {
    pub node: U32,
    pub incarnation: U32,
    pub old_seq: U64,
    pub old_rep: U32,
    pub _pad: U32,
    pub aru: U64,
    pub high: U64,
    pub safe: U64,
}
const _: () = assert!(core::mem::size_of::<CommitEntry>() == 48);

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct RingHdr {
    pub ring_seq: U64,
    pub ring_rep: U32,
    pub _pad: U32,
}
const _: () = assert!(core::mem::size_of::<RingHdr>() == 16);

/// Every node multicasts one of these every `merge` interval, in every state: the ring it is in
/// and the rows of who hears whom it knows (its own and the fresh ones others published).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct PresenceHdr {
    /// The sender's installed ring.
    pub ring_seq: U64,
    pub ring_rep: U32,
    /// Node ids listed after this header, sorted and unique: the rows' bitmaps index them.
    pub node_count: U16,
    pub row_count: U16,
    /// `ConfigIdentity::digest` of the sender's configuration: a presence of another
    /// configuration is refused before its rows are taken in.
    pub config_digest: U64,
}
const _: () = assert!(core::mem::size_of::<PresenceHdr>() == 24);

/// A row: its node has been up long enough that a node missing from its row is one it does
/// not hear (before that, a row asserts nothing).
pub const ROW_MATURE: u8 = 1;

/// One node's row: which of the listed nodes it hears. Followed by `node_count.div_ceil(8)`
/// bytes, bit `i % 8` of byte `i / 8` set when the row's node hears listed node `i`.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct RowHdr {
    /// Index of the row's node in the list; rows are in increasing order of it.
    pub origin: U16,
    pub flags: u8,
    pub _pad: u8,
    /// The row's node's incarnation and the number of its row (it counts every presence).
    pub incarnation: U32,
    pub version: U32,
    /// Milliseconds since the sender learned this version (0 for its own row).
    pub age_ms: U32,
}
const _: () = assert!(core::mem::size_of::<RowHdr>() == 16);

/// A piece of a membership message larger than one frame.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct SegmentHdr {
    /// The kind of the whole message (`KIND_JOIN`, `KIND_COMMIT` or `KIND_PRESENCE`).
    pub kind: u8,
    pub _pad: u8,
    /// This piece's place, from 0, among `count`.
    pub index: U16,
    pub count: U16,
    /// Bytes of every piece but the last: piece `index` starts at `index × piece_len` of the
    /// body.
    pub piece_len: U16,
    /// Numbers the sender's segmented messages: a piece of another number starts over.
    pub message: U32,
    /// Bytes of the whole body (what follows the common header).
    pub total_len: U32,
}
const _: () = assert!(core::mem::size_of::<SegmentHdr>() == 16);

/// The summary is cut at a line boundary to fit one frame.
pub const CONFIG_TRUNCATED: u8 = 1;

/// A configuration summary, sent to a node configured otherwise.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct ConfigHdr {
    pub config_digest: U64,
    pub len: U32,
    pub flags: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<ConfigHdr>() == 16);

pub const HEADER_LEN: usize = core::mem::size_of::<Header>();
pub const DATA_OVERHEAD: usize = HEADER_LEN + core::mem::size_of::<DataHdr>();
/// Bytes of each segment datagram before its piece of the body.
pub const SEGMENT_OVERHEAD: usize = HEADER_LEN + core::mem::size_of::<SegmentHdr>();

/// Bytes of a join with the given set sizes.
pub fn join_size(proc_count: usize, fail_count: usize, excluded_count: usize) -> usize {
    HEADER_LEN + core::mem::size_of::<JoinHdr>() + 4 * (proc_count + fail_count + excluded_count)
}

/// Bytes of a presence listing `nodes` node ids and `rows` rows.
pub const fn presence_size(nodes: usize, rows: usize) -> usize {
    HEADER_LEN
        + core::mem::size_of::<PresenceHdr>()
        + 4 * nodes
        + rows * (core::mem::size_of::<RowHdr>() + nodes.div_ceil(8))
}

/// Bytes of a commit token for `members` nodes.
pub const fn commit_size(members: usize) -> usize {
    HEADER_LEN + core::mem::size_of::<CommitHdr>() + core::mem::size_of::<CommitEntry>() * members
}

/// The largest membership message (join, commit token, presence) of a ring of `MEMBERS_MAX`.
pub const MEMBERSHIP_MESSAGE_MAX: usize = {
    let commit = commit_size(MEMBERS_MAX);
    let presence = presence_size(MEMBERS_MAX, MEMBERS_MAX);
    let join = HEADER_LEN + core::mem::size_of::<JoinHdr>() + 4 * 3 * MEMBERS_MAX;
    let most = if commit > presence { commit } else { presence };
    if most > join {
        most
    } else {
        join
    }
};

/// Pieces a membership message of `size` bytes is cut into in frames of `frame` bytes (1 when it
/// fits in one). Frames of at least `FRAME_SIZE_MIN` bytes carry any membership message in at
/// most `SEGMENTS_MAX` pieces (checked below).
pub const fn segments_for(size: usize, frame: usize) -> usize {
    if size <= frame {
        1
    } else {
        (size - HEADER_LEN).div_ceil(frame - SEGMENT_OVERHEAD)
    }
}
const _: () = assert!(segments_for(MEMBERSHIP_MESSAGE_MAX, FRAME_SIZE_MIN) <= SEGMENTS_MAX);

/// Bytes of a token carrying `rtr` retransmission requests.
pub fn token_size(rtr: usize) -> usize {
    HEADER_LEN + core::mem::size_of::<TokenHdr>() + 8 * rtr
}

impl DataHdr {
    pub fn ring(&self) -> RingId {
        RingId {
            seq: self.ring_seq.get(),
            rep: self.ring_rep.get(),
        }
    }
}
impl TokenHdr {
    pub fn ring(&self) -> RingId {
        RingId {
            seq: self.ring_seq.get(),
            rep: self.ring_rep.get(),
        }
    }
}
impl CommitHdr {
    pub fn ring(&self) -> RingId {
        RingId {
            seq: self.ring_seq.get(),
            rep: self.ring_rep.get(),
        }
    }
}
impl PresenceHdr {
    pub fn ring(&self) -> RingId {
        RingId {
            seq: self.ring_seq.get(),
            rep: self.ring_rep.get(),
        }
    }
}
impl RingHdr {
    pub fn ring(&self) -> RingId {
        RingId {
            seq: self.ring_seq.get(),
            rep: self.ring_rep.get(),
        }
    }
    pub fn new(ring: RingId) -> Self {
        RingHdr {
            ring_seq: ring.seq.into(),
            ring_rep: ring.rep.into(),
            _pad: 0.into(),
        }
    }
}
impl CommitEntry {
    pub fn node(&self) -> NodeId {
        NodeId(self.node.get())
    }
    pub fn filled(&self) -> bool {
        self.old_rep.get() != 0
    }
    pub fn old_ring(&self) -> RingId {
        RingId {
            seq: self.old_seq.get(),
            rep: self.old_rep.get(),
        }
    }
}

/// Why a datagram was dropped; each reason is its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Truncated,
    BadMagic,
    BadVersion,
    UnknownKind,
    ForeignCluster,
    SenderMismatch,
    OwnFrame,
    Malformed,
    StaleRing,
    OutOfWindow,
    DuplicateToken,
    Duplicate,
    NotExpected,
    /// A join or presence of a node whose configuration digest differs from ours.
    ConfigMismatch,
}

/// A writer over a caller's buffer; callers size buffers from the `*_size` functions, so running
/// out of room is a bug in the core, not bad input.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }
    pub fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        assert!(
            end <= self.buf.len(),
            "frame buffer too small: {end} > {}",
            self.buf.len()
        );
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
    }
    pub fn put_u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    pub fn put_u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Reads `count` big-endian u32 node ids from the front of `bytes`.
pub fn read_ids(bytes: &[u8], count: usize) -> Option<(impl Iterator<Item = NodeId> + '_, &[u8])> {
    let size = count.checked_mul(4)?;
    if bytes.len() < size {
        return None;
    }
    let (ids, rest) = bytes.split_at(size);
    Some((
        ids.chunks_exact(4)
            .map(|c| NodeId(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))),
        rest,
    ))
}
