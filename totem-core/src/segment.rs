//! Reassembly of membership messages (joins, commit tokens, presences) that came cut into
//! pieces because they are larger than one frame (`wire::SegmentHdr`; the sender cuts them in
//! `srp::Outbox::send_membership`). One message is reassembled per sender and kind at a time: a
//! piece of a newer message (another number or incarnation) starts that slot over, so a lost
//! piece costs the message, which the protocol sends again anyway (joins every join interval,
//! commit tokens on the token retransmission timer, presences every merge interval).

use crate::limits::{REASSEMBLIES_MAX, SEGMENTS_MAX};
use crate::types::NodeId;
use crate::wire::{
    DropReason, SegmentHdr, HEADER_LEN, KIND_COMMIT, KIND_JOIN, KIND_PRESENCE,
    MEMBERSHIP_MESSAGE_MAX,
};

struct Slot {
    sender: NodeId,
    kind: u8,
    incarnation: u32,
    message: u32,
    count: u16,
    piece_len: u16,
    total_len: u32,
    /// Bit `i` set once piece `i` is in `buf`.
    have: u64,
    /// The message was handed out whole: its pieces, if they come again, are duplicates.
    done: bool,
    buf: Vec<u8>,
    /// When a piece was last added (a count of `add` calls), to replace the stalest slot.
    used: u64,
}

/// The slots. Invariant: at most `REASSEMBLIES_MAX`, one per (sender, kind).
pub struct Reassembly {
    slots: Vec<Slot>,
    adds: u64,
}

/// What became of a piece.
pub enum Piece {
    /// Kept; the message is not whole yet (or was already handed out).
    Kept,
    /// The message is whole: its kind and body. Hand the body back with `recycle`.
    Whole(u8, Vec<u8>),
}

impl Reassembly {
    pub fn new() -> Reassembly {
        Reassembly {
            slots: Vec::new(),
            adds: 0,
        }
    }

    /// A piece from `sender` (of `incarnation`): its header and the bytes after it.
    pub fn add(
        &mut self,
        sender: NodeId,
        incarnation: u32,
        hdr: &SegmentHdr,
        bytes: &[u8],
    ) -> Result<Piece, DropReason> {
        let kind = hdr.kind;
        let (index, count) = (hdr.index.get(), hdr.count.get());
        let (piece_len, total_len) = (hdr.piece_len.get(), hdr.total_len.get());
        let total = total_len as usize;
        if !matches!(kind, KIND_JOIN | KIND_COMMIT | KIND_PRESENCE)
            || !(2..=SEGMENTS_MAX as u16).contains(&count)
            || index >= count
            || piece_len == 0
            || total > MEMBERSHIP_MESSAGE_MAX - HEADER_LEN
            || total.div_ceil(usize::from(piece_len)) != usize::from(count)
        {
            return Err(DropReason::Malformed);
        }
        let start = usize::from(index) * usize::from(piece_len);
        let len = usize::from(piece_len).min(total - start);
        let piece = bytes.get(..len).ok_or(DropReason::Truncated)?;
        self.adds += 1;
        let at = match self
            .slots
            .iter()
            .position(|s| s.sender == sender && s.kind == kind)
        {
            Some(at) => at,
            None if self.slots.len() < REASSEMBLIES_MAX => {
                self.slots.push(Slot {
                    sender,
                    kind,
                    incarnation,
                    message: hdr.message.get(),
                    count: 0,
                    piece_len: 0,
                    total_len: 0,
                    have: 0,
                    done: false,
                    buf: Vec::new(),
                    used: 0,
                });
                self.slots.len() - 1
            }
            None => {
                let stalest = (0..self.slots.len())
                    .min_by_key(|i| self.slots[*i].used)
                    .expect("REASSEMBLIES_MAX slots");
                self.slots[stalest].sender = sender;
                self.slots[stalest].kind = kind;
                self.slots[stalest].count = 0;
                stalest
            }
        };
        let slot = &mut self.slots[at];
        slot.used = self.adds;
        let same = slot.incarnation == incarnation
            && slot.message == hdr.message.get()
            && slot.count == count
            && slot.piece_len == piece_len
            && slot.total_len == total_len;
        if !same {
            slot.incarnation = incarnation;
            slot.message = hdr.message.get();
            slot.count = count;
            slot.piece_len = piece_len;
            slot.total_len = total_len;
            slot.have = 0;
            slot.done = false;
            slot.buf.clear();
            slot.buf.resize(total, 0);
        }
        if slot.done || slot.have & (1 << index) != 0 {
            return Ok(Piece::Kept);
        }
        slot.buf[start..start + len].copy_from_slice(piece);
        slot.have |= 1 << index;
        if slot.have.count_ones() < u32::from(count) {
            return Ok(Piece::Kept);
        }
        slot.done = true;
        Ok(Piece::Whole(kind, std::mem::take(&mut slot.buf)))
    }

    /// Gives a whole message's buffer back to its slot for the next message.
    pub fn recycle(&mut self, sender: NodeId, kind: u8, buf: Vec<u8>) {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.sender == sender && s.kind == kind && s.buf.capacity() == 0)
        {
            slot.buf = buf;
        }
    }

    pub fn check_invariants(&self) {
        assert!(
            self.slots.len() <= REASSEMBLIES_MAX,
            "reassembly slots unbounded"
        );
    }
}

impl Default for Reassembly {
    fn default() -> Self {
        Reassembly::new()
    }
}
