//! The frames of one ring, retained from the oldest not yet safe to the newest received: a fixed
//! window of slots indexed by sequence number, allocated once and reused.
//!
//! A slot's body is the one copy of a received frame (`body.rs`): deliveries borrow from it
//! rather than copy it. A slot freed here may therefore still be read — by a delivery queued and
//! not yet polled, or by a message larger than a frame waiting for its last fragment — and the
//! store of a ring being replaced may be dropped while deliveries from it are queued. Neither
//! matters: every borrower holds its own reference to the body, and a slot's buffer is written
//! only when nobody else holds it (`insert`).

use std::rc::Rc;

use crate::body::Body;
use crate::limits::RETAINED_FRAMES_MAX;
use crate::stats::Stats;
use crate::types::NodeId;
use crate::wire::DropReason;

pub struct Slot {
    /// Sequence number held, or 0 for an empty slot.
    pub seq: u64,
    pub origin: NodeId,
    pub flags: u8,
    /// Invariant: written only while unshared (`Rc::get_mut`), so a borrowed body never
    /// changes under its borrower.
    pub body: Body,
}

pub struct Store {
    slots: Vec<Slot>,
    /// Invariant: every frame below `base` has been freed (known received by all members).
    base: u64,
    /// Invariant: every frame in `1..=aru` has been received (held, or freed).
    aru: u64,
    /// Highest sequence number received.
    high: u64,
    /// Slots holding a frame. Invariant: exactly the frames held in `base..=high`.
    occupied: usize,
}

impl Store {
    pub fn new() -> Self {
        let slots = (0..RETAINED_FRAMES_MAX)
            .map(|_| Slot {
                seq: 0,
                origin: NodeId(0),
                flags: 0,
                body: Body::default(),
            })
            .collect();
        Store {
            slots,
            base: 1,
            aru: 0,
            high: 0,
            occupied: 0,
        }
    }

    pub fn aru(&self) -> u64 {
        self.aru
    }
    pub fn high(&self) -> u64 {
        self.high
    }

    fn index(seq: u64) -> usize {
        (seq % RETAINED_FRAMES_MAX as u64) as usize
    }

    pub fn get(&self, seq: u64) -> Option<&Slot> {
        if seq < self.base || seq >= self.base + RETAINED_FRAMES_MAX as u64 {
            return None;
        }
        let slot = &self.slots[Self::index(seq)];
        (slot.seq == seq).then_some(slot)
    }

    pub fn has(&self, seq: u64) -> bool {
        seq != 0 && (seq < self.base || self.get(seq).is_some())
    }

    /// Stores a received or stamped frame: the one copy of its body. The slot's buffer is reused
    /// when nothing borrows it; otherwise (a delivery not yet polled, a partial message) the slot
    /// gets a fresh buffer, counted in `stats.store_buffers_replaced`.
    pub fn insert(
        &mut self,
        seq: u64,
        origin: NodeId,
        flags: u8,
        body: &[u8],
        stats: &mut Stats,
    ) -> Result<(), DropReason> {
        if seq == 0 {
            return Err(DropReason::Malformed);
        }
        if self.has(seq) {
            return Err(DropReason::Duplicate);
        }
        if seq >= self.base + RETAINED_FRAMES_MAX as u64 {
            return Err(DropReason::OutOfWindow);
        }
        let slot = &mut self.slots[Self::index(seq)];
        // Freed slots are emptied, and the window is one lap of slots: an occupied slot here
        // would be a frame not yet freed.
        assert!(slot.seq == 0, "slot reuse before free");
        slot.seq = seq;
        self.occupied += 1;
        slot.origin = origin;
        slot.flags = flags;
        match Rc::get_mut(&mut slot.body) {
            Some(buffer) => {
                buffer.clear();
                buffer.extend_from_slice(body);
            }
            None => {
                slot.body = Rc::new(body.to_vec());
                stats.store_buffers_replaced += 1;
            }
        }
        self.high = self.high.max(seq);
        while self.get(self.aru + 1).is_some() {
            self.aru += 1;
        }
        Ok(())
    }

    /// Frees every frame up to `seq` (never past `aru`: a freed frame must have been received).
    pub fn free_upto(&mut self, seq: u64) {
        let upto = seq.min(self.aru);
        while self.base <= upto {
            let index = Self::index(self.base);
            assert_eq!(self.slots[index].seq, self.base, "a received frame is held");
            self.slots[index].seq = 0;
            self.occupied -= 1;
            self.base += 1;
        }
    }

    /// Room left for frames above `seq` before the window is full.
    pub fn room_above(&self, seq: u64) -> u64 {
        (self.base + RETAINED_FRAMES_MAX as u64).saturating_sub(seq + 1)
    }
}

impl Store {
    /// Asserts the window's invariants: the cheap bounds always, every slot with `all`.
    pub fn check_invariants(&self, all: bool) {
        assert!(self.base >= 1, "store base below 1");
        assert!(
            self.aru + 1 >= self.base,
            "frames were freed that had not been received"
        );
        assert!(
            self.aru <= self.high,
            "aru above the highest frame received"
        );
        assert!(
            self.high < self.base + RETAINED_FRAMES_MAX as u64,
            "a frame beyond the retained window"
        );
        if all {
            // Every frame from base to aru is held, and the occupied slots are exactly the
            // frames found in the window (no slot holds a frame from outside it).
            let mut held = 0;
            for seq in self.base..=self.high {
                let present = self.get(seq).is_some();
                assert!(
                    present || seq > self.aru,
                    "frame {seq} at or below aru is missing"
                );
                held += usize::from(present);
            }
            assert_eq!(
                held, self.occupied,
                "a slot holds a frame outside the window"
            );
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_body_survives_its_slot_being_freed_and_reused() {
        let mut store = Store::new();
        let mut stats = Stats::default();
        store.insert(1, NodeId(2), 0, b"first", &mut stats).unwrap();
        store
            .insert(2, NodeId(2), 0, b"second", &mut stats)
            .unwrap();
        let borrowed = Rc::clone(&store.get(1).unwrap().body);
        let unborrowed = Rc::as_ptr(&store.get(2).unwrap().body);
        store.free_upto(2);
        // Seq 1's slot comes round again while the borrow is alive: a fresh buffer.
        let again = 1 + RETAINED_FRAMES_MAX as u64;
        store
            .insert(again, NodeId(3), 0, b"reused", &mut stats)
            .unwrap();
        assert_eq!(borrowed.as_slice(), b"first");
        assert_eq!(store.get(again).unwrap().body.as_slice(), b"reused");
        assert_eq!(stats.store_buffers_replaced, 1);
        // Seq 2's slot is not borrowed: its buffer is reused in place.
        store
            .insert(again + 1, NodeId(3), 0, b"in place", &mut stats)
            .unwrap();
        assert_eq!(stats.store_buffers_replaced, 1);
        assert_eq!(Rc::as_ptr(&store.get(again + 1).unwrap().body), unborrowed);
        assert_eq!(store.get(again + 1).unwrap().body.as_slice(), b"in place");
    }
}
