//! Frame bodies and the message data borrowed from them: the one copy of a received message.
//!
//! A received frame's body is copied once, into the ring's store (`store.rs`), which keeps it
//! for retransmission and recovery anyway. Deliveries do not copy it again: a delivered message
//! is a range of that body, or — for a message larger than a frame — a list of ranges of the
//! bodies that carried its fragments ([`Payload`]). Bodies are shared (`Rc`), and a shared
//! body is never written: the store writes a slot's buffer only through `Rc::get_mut`, which
//! fails while a queued delivery or a partial message still holds the buffer; the slot then
//! gets a fresh buffer and the old one lives until its last borrower lets go.
//!
//! `Rc`, not `Arc`: a node is built and driven on one thread (the dataplane builds its runner
//! on the pinned poll thread), and the atomic reference counts cost 10–15% of `bench core` at
//! 64 KiB messages (a few counts per fragment per node). So `Node` is not `Send`.

use std::fmt;
use std::ops::Range;
use std::rc::Rc;

/// A frame body as the store holds it (the bytes after the data header).
///
/// Invariant: never written while shared (see the module doc).
pub type Body = Rc<Vec<u8>>;

/// A byte range of one frame body: a fragment of a message larger than a frame.
#[derive(Clone)]
pub struct Part {
    body: Body,
    start: u32,
    len: u32,
}

impl Part {
    /// The bytes `range` of `body`. Panics if the range is not inside it (a caller's bug: the
    /// packer cuts ranges out of bodies it has bounds-checked).
    pub fn new(body: &Body, range: Range<usize>) -> Part {
        assert!(
            range.start <= range.end && range.end <= body.len(),
            "part outside its frame body"
        );
        Part {
            body: Rc::clone(body),
            start: range.start as u32,
            len: (range.end - range.start) as u32,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        let start = self.start as usize;
        &self.body[start..start + self.len as usize]
    }

    /// The memory its frame body holds (the buffer's capacity), which this part keeps alive.
    pub fn body_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Whether `other` is a range of the same frame body.
    pub fn same_body(&self, other: &Part) -> bool {
        Rc::ptr_eq(&self.body, &other.body)
    }
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Part({}..{})", self.start, self.start + self.len)
    }
}

/// The data of a delivered message, borrowed from the frame bodies that carried it: one slice
/// for a message that fit in a frame, the fragments' ranges (less a prefix) for a larger one.
/// Read it with [`Payload::parts`] (what a gather write wants), or [`Payload::as_slice`] /
/// [`Payload::gather`] where one slice is needed. Small (32 bytes) and `Copy`: it is made once
/// per message per node.
#[derive(Clone, Copy)]
pub struct Payload<'a>(Repr<'a>);

/// How a [`Payload`] lies in memory (for the node's event queue, which keeps a reference).
#[derive(Clone, Copy)]
pub(crate) enum Repr<'a> {
    /// One slice, and the frame body it lies in when it lies in one (see
    /// [`Payload::body_part`]). Invariant: the slice is inside that body.
    Slice(&'a [u8], Option<&'a Body>),
    /// Invariant: `skip + len` is the parts' total length (at most `PACKED_MESSAGE_MAX`).
    Parts {
        parts: &'a [Part],
        skip: u32,
        len: u32,
    },
}

impl<'a> Payload<'a> {
    pub fn from_slice(bytes: &'a [u8]) -> Payload<'a> {
        Payload(Repr::Slice(bytes, None))
    }

    /// The bytes `range` of `body`. Panics if the range is not inside it.
    pub fn from_body(body: &'a Body, range: Range<usize>) -> Payload<'a> {
        Payload(Repr::Slice(&body[range], Some(body)))
    }

    /// The data as a [`Part`] that keeps its frame body alive (an `Rc` clone, no copy), when
    /// it lies in one body: for a consumer that must hold a delivery beyond the event, as the
    /// dataplane does for a client whose ring is full. `None` for data in several bodies or in
    /// none.
    pub fn body_part(&self) -> Option<Part> {
        match self.0 {
            Repr::Slice(bytes, Some(body)) => {
                let start = bytes.as_ptr() as usize - body.as_ptr() as usize;
                Some(Part::new(body, start..start + bytes.len()))
            }
            _ => None,
        }
    }

    /// The parts' bytes after the first `skip`.
    pub(crate) fn from_parts(parts: &'a [Part], skip: u32) -> Payload<'a> {
        let total: u64 = parts.iter().map(|p| u64::from(p.len)).sum();
        assert!(
            u64::from(skip) <= total && total <= u64::from(u32::MAX),
            "payload parts out of range"
        );
        Payload(Repr::Parts {
            parts,
            skip,
            len: (total - u64::from(skip)) as u32,
        })
    }

    pub(crate) fn repr(&self) -> Repr<'a> {
        self.0
    }

    pub fn len(&self) -> usize {
        match self.0 {
            Repr::Slice(bytes, _) => bytes.len(),
            Repr::Parts { len, .. } => len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data as one slice, when it is one (every message that fit in one frame).
    pub fn as_slice(&self) -> Option<&'a [u8]> {
        match self.0 {
            Repr::Slice(bytes, _) => Some(bytes),
            Repr::Parts { .. } => None,
        }
    }

    /// The data's slices in order (empty ones left out, except for an empty one-slice payload).
    pub fn parts(&self) -> Chunks<'a> {
        match self.0 {
            Repr::Slice(bytes, _) => Chunks {
                single: Some(bytes),
                parts: [].iter(),
                skip: 0,
            },
            Repr::Parts { parts, skip, .. } => Chunks {
                single: None,
                parts: parts.iter(),
                skip: skip as usize,
            },
        }
    }

    /// The payload without its first `n` bytes. Panics if `n > len` (a caller's bug).
    pub fn skip(self, n: usize) -> Payload<'a> {
        assert!(n <= self.len(), "skipping past the payload");
        Payload(match self.0 {
            Repr::Slice(bytes, body) => Repr::Slice(&bytes[n..], body),
            Repr::Parts { parts, skip, len } => Repr::Parts {
                parts,
                skip: skip + n as u32,
                len: len - n as u32,
            },
        })
    }

    /// Copies the first `out.len()` bytes (or all, if fewer) into `out`; returns how many.
    pub fn copy_prefix(&self, out: &mut [u8]) -> usize {
        let mut at = 0;
        for chunk in self.parts() {
            if at == out.len() {
                break;
            }
            let n = chunk.len().min(out.len() - at);
            out[at..at + n].copy_from_slice(&chunk[..n]);
            at += n;
        }
        at
    }

    /// The data as one slice: borrowed when it is one, else copied into `scratch`.
    pub fn gather<'s>(&self, scratch: &'s mut Vec<u8>) -> &'s [u8]
    where
        'a: 's,
    {
        if let Some(bytes) = self.as_slice() {
            return bytes;
        }
        scratch.clear();
        for chunk in self.parts() {
            scratch.extend_from_slice(chunk);
        }
        scratch
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for chunk in self.parts() {
            out.extend_from_slice(chunk);
        }
        out
    }
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = match self.0 {
            Repr::Slice(..) => 1,
            Repr::Parts { parts, .. } => parts.len(),
        };
        write!(f, "Payload {{ len: {}, parts: {parts} }}", self.len())
    }
}

impl PartialEq<[u8]> for Payload<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut at = 0;
        self.parts().all(|chunk| {
            let same = other[at..at + chunk.len()] == *chunk;
            at += chunk.len();
            same
        })
    }
}

/// The slices of a [`Payload`], in order. `Clone`, so a gather write can walk them twice.
#[derive(Clone)]
pub struct Chunks<'a> {
    single: Option<&'a [u8]>,
    parts: std::slice::Iter<'a, Part>,
    /// Bytes still to skip at the front of the parts.
    skip: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(bytes) = self.single.take() {
            return Some(bytes);
        }
        loop {
            let bytes = self.parts.next()?.bytes();
            if self.skip >= bytes.len() {
                self.skip -= bytes.len();
                continue;
            }
            let rest = &bytes[self.skip..];
            self.skip = 0;
            return Some(rest);
        }
    }
}

/// Where `inner` starts inside `outer`, if it lies entirely inside it.
pub(crate) fn offset_in(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (start <= outer.len() && inner.len() <= outer.len() - start).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_in_one_body_is_kept_as_a_part_of_it_without_a_copy() {
        let body: Body = Rc::new(b"headerhello world".to_vec());
        let data = Payload::from_body(&body, 6..17);
        let part = data.body_part().expect("one body");
        assert_eq!(part.bytes(), b"hello world");
        assert_eq!(
            part.bytes().as_ptr(),
            body[6..].as_ptr(),
            "the body's own bytes"
        );
        assert_eq!(Rc::strong_count(&body), 2);
        assert_eq!(data.skip(6).body_part().unwrap().bytes(), b"world");
        assert!(Payload::from_slice(b"elsewhere").body_part().is_none());
        drop(part);
        assert_eq!(Rc::strong_count(&body), 1);
    }

    fn body(bytes: &[u8]) -> Body {
        Rc::new(bytes.to_vec())
    }

    #[test]
    fn parts_skip_across_fragments() {
        let (a, b, c) = (body(b"hello"), body(b""), body(b"world!"));
        let parts = [
            Part::new(&a, 1..5),
            Part::new(&b, 0..0),
            Part::new(&c, 0..6),
        ];
        let whole = Payload::from_parts(&parts, 0);
        assert_eq!(whole.len(), 10);
        assert_eq!(whole.to_vec(), b"elloworld!");
        for n in 0..=10 {
            let p = whole.skip(n);
            assert_eq!(p.to_vec(), b"elloworld!"[n..].to_vec(), "skip {n}");
            assert!(p == b"elloworld!"[n..]);
            assert!(p.parts().all(|c| !c.is_empty()));
            let mut out = [0u8; 4];
            let k = p.copy_prefix(&mut out);
            assert_eq!(out[..k], b"elloworld!"[n..][..k]);
            let mut scratch = Vec::new();
            assert_eq!(p.gather(&mut scratch), &b"elloworld!"[n..]);
        }
        let one = Payload::from_slice(b"abc");
        assert_eq!(one.as_slice(), Some(&b"abc"[..]));
        assert_eq!(one.skip(1).parts().collect::<Vec<_>>(), vec![&b"bc"[..]]);
    }

    #[test]
    fn offset_in_only_inside() {
        let outer = [0u8; 16];
        assert_eq!(offset_in(&outer, &outer[3..9]), Some(3));
        assert_eq!(offset_in(&outer, &outer[16..]), Some(16));
        assert_eq!(offset_in(&outer[4..], &outer[..8]), None);
        assert_eq!(offset_in(&outer[..8], &outer[4..12]), None);
        let other = [0u8; 4];
        assert_eq!(offset_in(&outer, &other), None);
    }
}
