//! The records queued for one client whose ring is full, in arrival order: one contiguous
//! buffer of their bytes and a queue of their lengths.
//!
//! Under throughput load a client that does not get a core often enough finds half the records
//! of a run here, so queueing one costs what copying it costs: its parts are appended to the
//! buffer (no allocation per record, no byte-by-byte assembly), and a sent record only moves
//! the read offset. The buffer is compacted once the sent bytes are both most of it and more
//! than [`COMPACT_BYTES_MIN`], and gives back what it grew beyond [`KEEP_BYTES`] when it empties.

use std::collections::VecDeque;

/// Bytes already sent that may sit at the front of the buffer before it is compacted.
const COMPACT_BYTES_MIN: usize = 1 << 20;

/// Capacity an empty backlog keeps for the next burst.
const KEEP_BYTES: usize = 1 << 20;

/// The records waiting for room in one client's ring.
#[derive(Debug, Default)]
pub struct Backlog {
    /// Queued bytes from `head` on; before it, bytes of records already sent.
    bytes: Vec<u8>,
    head: usize,
    lens: VecDeque<usize>,
}

impl Backlog {
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Records queued.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes.len() - self.head
    }

    /// Queues one record made of `parts`, after those queued before it.
    pub fn push<'a>(&mut self, parts: impl Iterator<Item = &'a [u8]>) {
        let start = self.bytes.len();
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        self.lens.push_back(self.bytes.len() - start);
    }

    /// The oldest record queued.
    pub fn front(&self) -> Option<&[u8]> {
        let len = *self.lens.front()?;
        Some(&self.bytes[self.head..self.head + len])
    }

    /// Drops the oldest record (it was sent).
    pub fn pop(&mut self) {
        let Some(len) = self.lens.pop_front() else {
            return;
        };
        self.head += len;
        if self.lens.is_empty() {
            self.bytes.clear();
            self.bytes.shrink_to(KEEP_BYTES);
            self.head = 0;
        } else if self.head > COMPACT_BYTES_MIN && self.head * 2 > self.bytes.len() {
            // Amortised: the bytes moved are fewer than those sent since the last compaction.
            self.bytes.drain(..self.head);
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &mut Backlog) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = b.front() {
            out.push(r.to_vec());
            b.pop();
        }
        out
    }

    #[test]
    fn records_come_out_whole_and_in_order_however_they_were_split() {
        let mut b = Backlog::default();
        b.push([&b"he"[..], b"ll", b"o"].into_iter());
        b.push(std::iter::empty());
        b.push([&b"world"[..]].into_iter());
        assert_eq!((b.len(), b.bytes()), (3, 10));
        assert_eq!(
            drain(&mut b),
            vec![b"hello".to_vec(), vec![], b"world".to_vec()]
        );
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn compaction_keeps_every_queued_byte_and_an_empty_backlog_gives_memory_back() {
        let mut b = Backlog::default();
        let record = |i: u32| -> Vec<u8> { (0..1000u32).map(|j| (i * 7 + j) as u8).collect() };
        let mut next_out = 0;
        // Interleave pushes and pops so the front passes COMPACT_BYTES_MIN several times with
        // records still queued behind it.
        for i in 0..5000u32 {
            b.push([&record(i)[..]].into_iter());
            if i % 3 != 0 {
                assert_eq!(b.front(), Some(&record(next_out)[..]));
                b.pop();
                next_out += 1;
            }
            assert!(b.head <= COMPACT_BYTES_MIN || b.head * 2 <= b.bytes.len());
            assert_eq!(b.bytes(), b.len() * 1000);
        }
        assert!(b.len() > 1000);
        assert!(
            b.bytes.len() < 2 * b.bytes(),
            "sent bytes were compacted away"
        );
        while let Some(r) = b.front() {
            assert_eq!(r, &record(next_out)[..]);
            b.pop();
            next_out += 1;
        }
        assert_eq!(next_out, 5000);
        assert!(b.bytes.capacity() <= KEEP_BYTES);
    }
}
