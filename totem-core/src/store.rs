//! The frames of one ring, retained from the oldest not yet safe to the newest received: a fixed
//! window of slots indexed by sequence number, allocated once and reused.

use crate::limits::RETAINED_FRAMES_MAX;
use crate::types::NodeId;
use crate::wire::DropReason;

pub struct Slot {
    /// Sequence number held, or 0 for an empty slot.
    pub seq: u64,
    pub origin: NodeId,
    pub flags: u8,
    pub body: Vec<u8>,
}

pub struct Store {
    slots: Vec<Slot>,
    /// Invariant: every frame below `base` has been freed (known received by all members).
    base: u64,
    /// Invariant: every frame in `1..=aru` has been received (held, or freed).
    aru: u64,
    /// Highest sequence number received.
    high: u64,
}

impl Store {
    pub fn new() -> Self {
        let slots = (0..RETAINED_FRAMES_MAX)
            .map(|_| Slot {
                seq: 0,
                origin: NodeId(0),
                flags: 0,
                body: Vec::new(),
            })
            .collect();
        Store {
            slots,
            base: 1,
            aru: 0,
            high: 0,
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

    /// Stores a received or stamped frame.
    pub fn insert(
        &mut self,
        seq: u64,
        origin: NodeId,
        flags: u8,
        body: &[u8],
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
        assert!(
            slot.seq == 0 || slot.seq < self.base,
            "slot reuse before free"
        );
        slot.seq = seq;
        slot.origin = origin;
        slot.flags = flags;
        slot.body.clear();
        slot.body.extend_from_slice(body);
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
            self.slots[index].seq = 0;
            self.base += 1;
        }
    }

    /// Room left for frames above `seq` before the window is full.
    pub fn room_above(&self, seq: u64) -> u64 {
        (self.base + RETAINED_FRAMES_MAX as u64).saturating_sub(seq + 1)
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}
