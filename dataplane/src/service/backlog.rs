//! The records queued for one client whose ring is full, in arrival order: the bytes copied in
//! one ring buffer (`VecDeque<u8>`), the deliveries kept by reference beside them, and each
//! record's shape.
//!
//! Under throughput load a client that does not get a core often enough finds half the records
//! of a run here, so queueing one must cost little. A delivery whose data lies in one frame
//! body (every message that fit in a frame) keeps that body (`Part`, an `Rc` clone: no copy;
//! the store gives the slot a fresh buffer meanwhile) and copies only its header; any other
//! record is copied whole. Nothing is allocated per record, a record goes out from where it
//! lies (up to three slices), and a sent record only moves the fronts. The byte buffer keeps
//! up to [`KEEP_BYTES`] of capacity when it empties, so a client that falls behind again and
//! again does not have it grown (copied, its new pages faulted in) each time.
//!
//! What a backlog counts ([`Backlog::bytes`]), which the client's limits are checked against, is
//! the memory it holds, not the records' length: a kept delivery holds its whole frame body
//! alive, up to a jumbo frame for a 64 B message whose frame-mates went to other groups. So the
//! first of consecutive kept deliveries from one body counts the body's capacity, the others
//! their headers only (their data lies in that body); a body whose first record has gone out
//! while others of it wait counts their headers only, so at most one body, at the front, counts
//! less than it holds.

use std::collections::VecDeque;

use totem_core::body::Part;

/// Capacity an empty backlog keeps for the next burst: the backlog at which a client's own
/// requests start to wait (`INTAKE_PAUSE_BYTES`), which a client that keeps falling behind
/// reaches again and again.
const KEEP_BYTES: usize = super::INTAKE_PAUSE_BYTES;

/// One queued record: its first `copied` bytes are in `Backlog::bytes`, and when `kept` the
/// rest is the front `Part` of `Backlog::parts`; it adds `charged` to `Backlog::queued`.
#[derive(Clone, Copy, Debug)]
struct Record {
    copied: usize,
    kept: bool,
    charged: usize,
}

/// The records waiting for room in one client's ring.
#[derive(Debug, Default)]
pub struct Backlog {
    bytes: VecDeque<u8>,
    parts: VecDeque<Part>,
    records: VecDeque<Record>,
    /// The memory the records hold (see the module doc).
    queued: usize,
}

impl Backlog {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records queued.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Bytes queued: the memory the records hold, kept frame bodies whole.
    pub fn bytes(&self) -> usize {
        self.queued
    }

    /// Queues one record made of `parts`, copied, after those queued before it.
    pub fn push<'a>(&mut self, parts: impl Iterator<Item = &'a [u8]>) {
        let start = self.bytes.len();
        for part in parts {
            // A slice's iterator: the standard library copies it whole.
            self.bytes.extend(part);
        }
        let copied = self.bytes.len() - start;
        self.queued += copied;
        self.records.push_back(Record {
            copied,
            kept: false,
            charged: copied,
        });
    }

    /// Queues one record made of `head`, copied, and `data`, kept by reference.
    pub fn push_kept(&mut self, head: &[u8], data: Part) {
        self.bytes.extend(head);
        let body_counted = self.parts.back().is_some_and(|p| p.same_body(&data));
        let charged = head.len()
            + if body_counted {
                0
            } else {
                data.body_capacity()
            };
        self.queued += charged;
        self.parts.push_back(data);
        self.records.push_back(Record {
            copied: head.len(),
            kept: true,
            charged,
        });
    }

    /// The oldest record queued, as the pieces it lies in (some possibly empty).
    pub fn front(&self) -> Option<[&[u8]; 3]> {
        let r = *self.records.front()?;
        let (a, b) = self.bytes.as_slices();
        let [a, b] = if a.len() >= r.copied {
            [&a[..r.copied], &[][..]]
        } else {
            [a, &b[..r.copied - a.len()]]
        };
        let kept = match r.kept {
            true => self.parts.front().expect("a kept record's part").bytes(),
            false => &[],
        };
        Some([a, b, kept])
    }

    /// Drops the oldest record (it was sent).
    pub fn pop(&mut self) {
        let Some(r) = self.records.pop_front() else {
            return;
        };
        self.bytes.drain(..r.copied);
        self.queued -= r.charged;
        if r.kept {
            self.parts.pop_front().expect("a kept record's part");
        }
        if self.records.is_empty() {
            self.bytes.clear();
            self.bytes.shrink_to(KEEP_BYTES);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front(b: &Backlog) -> Option<Vec<u8>> {
        b.front().map(|pieces| pieces.concat())
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
                let [_, second, _] = b.front().unwrap();
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

    #[test]
    fn a_kept_delivery_goes_out_as_its_header_and_the_frame_bodys_own_bytes() {
        let body: totem_core::Body = std::rc::Rc::new(b"..hello world..".to_vec());
        let mut b = Backlog::default();
        b.push([&b"first"[..]].into_iter());
        b.push_kept(b"HDR:", Part::new(&body, 2..13));
        b.push([&b"last"[..]].into_iter());
        assert_eq!((b.len(), b.bytes()), (3, 5 + 4 + body.capacity() + 4));
        assert_eq!(std::rc::Rc::strong_count(&body), 2, "kept, not copied");
        assert_eq!(front(&b).unwrap(), b"first");
        b.pop();
        let [_, _, kept] = b.front().unwrap();
        assert_eq!(kept.as_ptr(), body[2..].as_ptr(), "the body's own bytes");
        assert_eq!(front(&b).unwrap(), b"HDR:hello world");
        b.pop();
        assert_eq!(std::rc::Rc::strong_count(&body), 1, "let go once sent");
        assert_eq!(drain(&mut b), vec![b"last".to_vec()]);
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn a_kept_delivery_counts_the_frame_body_it_holds_once_per_run_of_records() {
        let body = |len: usize| -> totem_core::Body { std::rc::Rc::new(vec![7; len]) };
        let (jumbo, other) = (body(9000), body(1500));
        let mut b = Backlog::default();
        // A 64 B message holds a whole jumbo frame body alive: counted so.
        b.push_kept(b"H", Part::new(&jumbo, 0..64));
        assert_eq!(b.bytes(), 1 + jumbo.capacity());
        // Its frame-mates add their headers only; a record from another body, that body.
        b.push_kept(b"H", Part::new(&jumbo, 64..128));
        b.push_kept(b"H", Part::new(&jumbo, 128..192));
        assert_eq!(b.bytes(), 3 + jumbo.capacity());
        b.push_kept(b"H", Part::new(&other, 0..64));
        assert_eq!(b.bytes(), 4 + jumbo.capacity() + other.capacity());
        // A body met again after another one is counted again (the two runs are apart).
        b.push_kept(b"H", Part::new(&jumbo, 192..256));
        assert_eq!(b.bytes(), 5 + 2 * jumbo.capacity() + other.capacity());
        // Going out gives back exactly what each record added.
        b.pop();
        assert_eq!(b.bytes(), 4 + jumbo.capacity() + other.capacity());
        drain(&mut b);
        assert_eq!(b.bytes(), 0);
        // A thousand 64 B deliveries, each from a body of its own: the memory, not 64 KB.
        let bodies: Vec<totem_core::Body> = (0..1000).map(|_| body(9000)).collect();
        for f in &bodies {
            b.push_kept(b"", Part::new(f, 0..64));
        }
        assert!(b.bytes() >= 9_000_000, "{}", b.bytes());
    }
}
