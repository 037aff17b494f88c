//! The records queued for one client whose ring is full, in arrival order: their bytes in one
//! ring buffer (`VecDeque<u8>`) and their lengths beside.
//!
//! Under throughput load a client that does not get a core often enough finds half the records
//! of a run here, so queueing one costs what copying it costs: its parts are appended (no
//! allocation per record, no byte-by-byte assembly), a record is sent from where it lies (two
//! slices when it wraps), and a sent record only moves the front. The buffer keeps up to
//! [`KEEP_BYTES`] of capacity when it empties, so a client that falls behind again and again
//! does not have it grown (copied, its new pages faulted in) each time.

use std::collections::VecDeque;

/// Capacity an empty backlog keeps for the next burst: the backlog at which a client's own
/// requests start to wait (`INTAKE_PAUSE_BYTES`), which a client that keeps falling behind
/// reaches again and again.
const KEEP_BYTES: usize = super::INTAKE_PAUSE_BYTES;

/// The records waiting for room in one client's ring.
#[derive(Debug, Default)]
pub struct Backlog {
    bytes: VecDeque<u8>,
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
        self.bytes.len()
    }

    /// Queues one record made of `parts`, after those queued before it.
    pub fn push<'a>(&mut self, parts: impl Iterator<Item = &'a [u8]>) {
        let start = self.bytes.len();
        for part in parts {
            // A slice's iterator: the standard library copies it whole.
            self.bytes.extend(part);
        }
        self.lens.push_back(self.bytes.len() - start);
    }

    /// The oldest record queued, as the two pieces it may lie in (the second often empty).
    pub fn front(&self) -> Option<[&[u8]; 2]> {
        let len = *self.lens.front()?;
        let (a, b) = self.bytes.as_slices();
        Some(if a.len() >= len {
            [&a[..len], &[]]
        } else {
            [a, &b[..len - a.len()]]
        })
    }

    /// Drops the oldest record (it was sent).
    pub fn pop(&mut self) {
        let Some(len) = self.lens.pop_front() else {
            return;
        };
        self.bytes.drain(..len);
        if self.lens.is_empty() {
            self.bytes.clear();
            self.bytes.shrink_to(KEEP_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front(b: &Backlog) -> Option<Vec<u8>> {
        b.front().map(|[x, y]| [x, y].concat())
    }

    fn drain(b: &mut Backlog) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = front(b) {
            out.push(r);
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
    fn records_that_wrap_around_come_out_whole_and_an_empty_backlog_gives_memory_back() {
        let mut b = Backlog::default();
        // Lengths that vary, so no capacity the buffer grows to is a multiple of them.
        let record = |i: u32| -> Vec<u8> { (0..990 + i % 17).map(|j| (i * 7 + j) as u8).collect() };
        let (mut next_out, mut wrapped, mut queued) = (0, 0, 0);
        // A hundred records queued, then one in and one out, so the front goes round the
        // buffer many times.
        for i in 0..5000u32 {
            b.push([&record(i)[..]].into_iter());
            queued += record(i).len();
            if i >= 100 {
                let [_, second] = b.front().unwrap();
                wrapped += usize::from(!second.is_empty());
                assert_eq!(front(&b), Some(record(next_out)));
                queued -= record(next_out).len();
                b.pop();
                next_out += 1;
            }
            assert_eq!(b.bytes(), queued);
        }
        assert!(wrapped > 0, "no record lay across the end of the buffer");
        while let Some(r) = front(&b) {
            assert_eq!(r, record(next_out));
            b.pop();
            next_out += 1;
        }
        assert_eq!(next_out, 5000);
        // Past KEEP_BYTES, and back.
        for i in 0..(KEEP_BYTES / 990 * 2) as u32 {
            b.push([&record(i)[..]].into_iter());
        }
        assert!(b.bytes.capacity() > KEEP_BYTES);
        drain(&mut b);
        assert!(b.is_empty());
        assert!(b.bytes.capacity() <= KEEP_BYTES);
    }
}
