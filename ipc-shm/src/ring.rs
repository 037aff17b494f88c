//! The single-producer single-consumer byte ring over one shared mapping: variable-length
//! records up to `record_size_max` (≥ 1 MiB by default), each behind an 8-byte header, never
//! split across the end of the data region (a pad record fills the tail end instead).
//!
//! The consumer learns of a record from its header word alone (written last by the producer,
//! see [`crate::layout`]): it spins on the slot at its own cursor, never on a shared producer
//! cursor, so a small record arrives with the same cache-line transfer that signals it. The
//! consumer's cursor goes back to the producer in batches; the producer keeps a cached copy and
//! re-reads it only when the ring looks full.
//!
//! Each side keeps its own cursor privately and only *publishes* it to shared memory; whatever
//! the other side wrote (its cursor, a record header) is read once, copied out and validated
//! before use, so a peer that scribbles on the mapping can make us return [`CorruptReason`],
//! never read or write out of bounds.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::layout::{
    check_sizes, lap_of, mapping_size, record_footprint, RecordHeader, RingHeader, DATA_OFFSET,
    RECORD_ALIGN, RECORD_CHECK, RECORD_KIND_DATA, RECORD_KIND_PAD, RECORD_UNCOMMITTED, RING_MAGIC,
    RING_VERSION,
};
use crate::sys::{self, Mapping};

/// Why a ring's shared contents are impossible. The peer that owns the offending field is
/// misbehaving; the session it belongs to must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    /// The consumer's published tail is ahead of our head, behind it by more than the ring, or
    /// misaligned.
    #[error("consumer cursor {tail} impossible for producer cursor {head}")]
    TailOutOfRange { tail: u64, head: u64 },
    /// The producer's published head is behind our tail, ahead by more than the ring, or
    /// misaligned. Not produced since ring version 2 (the consumer no longer reads `head`);
    /// kept so that existing matches still compile.
    #[error("producer cursor {head} impossible for consumer cursor {tail}")]
    HeadOutOfRange { head: u64, tail: u64 },
    /// A record header without the check value (garbage or zeros where a record should be).
    #[error("bad record magic at offset {offset}: header word {word:#018x}")]
    BadRecordMagic { offset: usize, word: u64 },
    /// A record header of neither this lap nor the previous one (the producer never writes one).
    #[error("record header at offset {offset} has lap tag {lap}, expected {expected}")]
    BadRecordLap {
        offset: usize,
        lap: u8,
        expected: u8,
    },
    /// A record header with an unknown kind.
    #[error("unknown record kind {kind} at offset {offset}")]
    BadRecordKind { offset: usize, kind: u16 },
    /// A record longer than the ring allows.
    #[error("record of {size} bytes at offset {offset} exceeds record_size_max {max}")]
    RecordTooLarge {
        offset: usize,
        size: usize,
        max: usize,
    },
    /// A record that would run past the end of the data region or past the producer's cursor.
    #[error("record of {size} bytes at offset {offset} runs beyond the ring ({available} bytes published)")]
    RecordBeyondRing {
        offset: usize,
        size: usize,
        available: u64,
    },
    /// A pad record that does not end exactly at the end of the data region.
    #[error("pad record at offset {offset} has size {size}, expected {expected}")]
    BadPad {
        offset: usize,
        size: usize,
        expected: usize,
    },
}

/// Why a push did not happen. Nothing was written in any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The ring has no room for this record now: try again once the consumer has caught up.
    #[error("ring full, try again")]
    Full,
    /// The record can never fit this ring.
    #[error("record of {size} bytes exceeds record_size_max {max}")]
    TooLarge { size: usize, max: usize },
    /// The consumer corrupted its cursor.
    #[error("ring corrupted: {0}")]
    Corrupt(CorruptReason),
}

/// Why a pop returned no record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    /// Nothing published yet.
    #[error("ring empty")]
    Empty,
    /// The next record is larger than the buffer; it stays in the ring.
    #[error("record of {size} bytes does not fit a buffer of {buffer} bytes")]
    BufferTooSmall { size: usize, buffer: usize },
    /// The producer wrote something impossible.
    #[error("ring corrupted: {0}")]
    Corrupt(CorruptReason),
}

/// Why a received ring fd was refused at attach.
#[derive(Debug, thiserror::Error)]
pub enum RingAttachError {
    /// fstat/fcntl/mmap failed.
    #[error("ring fd: {0}")]
    Io(#[from] io::Error),
    /// The header or the fd does not describe a ring we can use.
    #[error("ring rejected: {0}")]
    Invalid(&'static str),
}

/// Cache line size assumed when ordering the producer's stores (a wrong value costs speed only).
const CACHE_LINE: usize = 64;

/// The private, validated geometry of one ring, shared by both halves in one process.
struct RingView {
    map: Arc<Mapping>,
    data_size: usize,
    record_size_max: usize,
}

impl RingView {
    fn header(&self) -> &RingHeader {
        // Safety: the mapping is at least DATA_OFFSET bytes (checked at create/attach), page
        // aligned, and RingHeader fits in DATA_OFFSET (asserted in layout); the fields we touch
        // through this reference after creation are atomics.
        unsafe { &*self.map.as_ptr().cast::<RingHeader>() }
    }

    fn data(&self) -> *mut u8 {
        // Safety: DATA_OFFSET + data_size == mapping length (checked at create/attach).
        unsafe { self.map.as_ptr().add(DATA_OFFSET) }
    }

    /// Hints the CPU to fetch the cache line after the one holding `offset` (no-op at the end
    /// of the data region and on other architectures). A prefetch never faults nor changes memory.
    #[inline]
    fn prefetch_line_after(&self, offset: usize) {
        let next = (offset | (CACHE_LINE - 1)) + 1;
        if next < self.data_size {
            #[cfg(target_arch = "x86_64")]
            // Safety: `next` is inside the data region; _mm_prefetch only hints the cache.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch::<_MM_HINT_T0>(self.data().add(next).cast::<i8>());
            }
        }
    }

    /// The 8-byte word at `offset` of the data region, accessed atomically: a record header slot.
    fn word(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % RECORD_ALIGN == 0 && offset + RECORD_ALIGN <= self.data_size);
        // Safety: in bounds (asserted above; our offsets are derived from our private cursors,
        // never from shared memory) and 8-aligned (the data region is page-aligned), and the
        // mapping lives as long as `self`. Both processes touch header slots only atomically.
        unsafe { &*self.data().add(offset).cast::<AtomicU64>() }
    }
}

/// Copies bytes `from..to` of the concatenation of `parts` to `dst + from..dst + to` (fewer if
/// the parts end sooner).
///
/// # Safety
/// `dst..dst + to` must be valid for writes and must not overlap any part.
#[inline]
unsafe fn copy_span<'a>(
    parts: impl Iterator<Item = &'a [u8]>,
    from: usize,
    to: usize,
    dst: *mut u8,
) {
    let mut at = 0usize;
    for part in parts {
        if at >= to {
            break;
        }
        let end = at.saturating_add(part.len());
        let start = from.max(at);
        let stop = to.min(end);
        if start < stop {
            // Safety: `start - at .. stop - at` lies inside `part`; `start..stop` lies inside
            // `from..to`, which the caller vouches for.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.as_ptr().add(start - at),
                    dst.add(start),
                    stop - start,
                );
            }
        }
        at = end;
    }
}

/// Creates a ring in a fresh sealed memfd: returns the fd (to pass to the peer) and the mapping.
pub fn create(data_size: usize, record_size_max: usize) -> io::Result<(OwnedFd, Arc<Mapping>)> {
    check_sizes(data_size as u64, record_size_max as u64)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    let fd = sys::memfd_sealed(c"rotor-ipc-ring", mapping_size(data_size))?;
    let map = Mapping::map(fd.as_raw_fd(), mapping_size(data_size))?;
    let header = map.as_ptr().cast::<RingHeader>();
    // Safety: the fresh memfd is zero-filled and mapped only by us so far; writing the plain
    // fields before anyone else can see the mapping is race-free. Cursors and flags start at 0.
    unsafe {
        (*header).magic = RING_MAGIC;
        (*header).version = RING_VERSION;
        (*header).header_size = std::mem::size_of::<RingHeader>() as u32;
        (*header).data_size = data_size as u64;
        (*header).record_size_max = record_size_max as u64;
    }
    Ok((fd, Arc::new(map)))
}

/// Maps a ring fd received from the creator and checks its size, seals and header.
/// Returns the mapping and the validated `(data_size, record_size_max)`.
pub fn attach(fd: RawFd) -> Result<(Arc<Mapping>, usize, usize), RingAttachError> {
    let (file_size, seals) = sys::memfd_size_and_seals(fd)?;
    if seals & sys::RING_SEALS != sys::RING_SEALS {
        return Err(RingAttachError::Invalid(
            "memfd is not sealed against resizing",
        ));
    }
    if file_size < DATA_OFFSET as u64
        || file_size > mapping_size(crate::layout::DATA_SIZE_MAX) as u64
    {
        return Err(RingAttachError::Invalid("memfd size out of range"));
    }
    let map = Mapping::map(fd, file_size as usize)?;
    let header = map.as_ptr().cast::<RingHeader>();
    // Safety: the mapping is at least DATA_OFFSET bytes, which holds a RingHeader; we copy the
    // plain fields out with volatile reads because the creator may still be writing them.
    let (magic, version, header_size, data_size, record_size_max) = unsafe {
        (
            std::ptr::addr_of!((*header).magic).read_volatile(),
            std::ptr::addr_of!((*header).version).read_volatile(),
            std::ptr::addr_of!((*header).header_size).read_volatile(),
            std::ptr::addr_of!((*header).data_size).read_volatile(),
            std::ptr::addr_of!((*header).record_size_max).read_volatile(),
        )
    };
    if magic != RING_MAGIC {
        return Err(RingAttachError::Invalid("bad ring magic"));
    }
    if version != RING_VERSION {
        return Err(RingAttachError::Invalid("unsupported ring version"));
    }
    if header_size as usize != std::mem::size_of::<RingHeader>() {
        return Err(RingAttachError::Invalid(
            "ring header size differs from ours",
        ));
    }
    let (data_size, record_size_max) =
        check_sizes(data_size, record_size_max).map_err(RingAttachError::Invalid)?;
    if mapping_size(data_size) as u64 != file_size {
        return Err(RingAttachError::Invalid(
            "memfd size does not match the header",
        ));
    }
    Ok((Arc::new(map), data_size, record_size_max))
}

/// Builds both halves of one ring in this process (tests, benchmarks, threads of one process).
pub fn pair(data_size: usize, record_size_max: usize) -> io::Result<(Producer, Consumer)> {
    let (_fd, map) = create(data_size, record_size_max)?;
    Ok((
        Producer::new(map.clone(), data_size, record_size_max),
        Consumer::new(map, data_size, record_size_max),
    ))
}

/// The writing half of a ring. Not `Clone`: there is exactly one producer.
pub struct Producer {
    view: RingView,
    /// Our cursor: free-running count of bytes committed (records and pads).
    head: u64,
    /// The value of `head` last stored in the advisory shared `head` (see [`ProducerLine`]).
    ///
    /// [`ProducerLine`]: crate::layout::ProducerLine
    head_published: u64,
    /// Last validated value of the consumer's published tail.
    tail_cached: u64,
    /// The consumer's eventfd, signalled when it sleeps (`-1`: nobody to wake).
    pub(crate) peer_wake_fd: RawFd,
}

/// The reading half of a ring. Not `Clone`: there is exactly one consumer.
pub struct Consumer {
    view: RingView,
    /// Our cursor; the published `tail` is only a copy of it.
    tail: u64,
    /// The value of `tail` last published (publication is batched, see [`Consumer::try_pop`]).
    published: u64,
    /// The producer's eventfd, signalled when it sleeps on a full ring (`-1`: nobody to wake).
    pub(crate) peer_wake_fd: RawFd,
}

/// What the header word at the consumer's cursor says, once validated.
enum Slot {
    /// Nothing committed there yet (zero, or a header left from the previous lap).
    Uncommitted,
    /// A committed header of this lap with a valid check value (kind and size not yet checked).
    Committed(RecordHeader),
}

impl Producer {
    /// The producer half over a mapping whose sizes were validated by [`create`] or [`attach`].
    pub fn new(map: Arc<Mapping>, data_size: usize, record_size_max: usize) -> Producer {
        assert!(map.size() >= mapping_size(data_size));
        Producer {
            view: RingView {
                map,
                data_size,
                record_size_max,
            },
            head: 0,
            head_published: 0,
            tail_cached: 0,
            peer_wake_fd: -1,
        }
    }

    /// Largest payload one record may carry.
    pub fn record_size_max(&self) -> usize {
        self.view.record_size_max
    }

    /// Bytes of ring space a record of `size` needs right now (including a pad to the end).
    fn space_needed(&self, size: usize) -> (usize, usize) {
        let offset = (self.head as usize) & (self.view.data_size - 1);
        let contiguous = self.view.data_size - offset;
        let footprint = record_footprint(size);
        if footprint <= contiguous {
            (footprint, 0)
        } else {
            (contiguous + footprint, contiguous)
        }
    }

    /// Re-reads the consumer's tail (once) and validates it.
    fn refresh_tail(&mut self, order: Ordering) -> Result<(), CorruptReason> {
        let tail = self.view.header().consumer.tail.load(order);
        if tail > self.head
            || self.head - tail > self.view.data_size as u64
            || tail % RECORD_ALIGN as u64 != 0
        {
            return Err(CorruptReason::TailOutOfRange {
                tail,
                head: self.head,
            });
        }
        self.tail_cached = tail;
        Ok(())
    }

    /// Would a record of `size` fit now? Reads the consumer's cursor with `SeqCst`, for the
    /// sleep protocol.
    pub(crate) fn fits_now(&mut self, size: usize) -> Result<bool, CorruptReason> {
        self.refresh_tail(Ordering::SeqCst)?;
        let (total, _) = self.space_needed(size);
        Ok(self.head + total as u64 - self.tail_cached <= self.view.data_size as u64)
    }

    /// Appends one record. On `Full` nothing is written and nothing is overwritten.
    ///
    /// Order of the writes: the payload bytes outside the header's cache line, a zero into the
    /// header slot after the record (so the consumer, arriving there, can never mistake stale
    /// bytes of an earlier lap for a header), the payload bytes that share the header's line,
    /// then the record's header word, which commits it. With a wrap, the record at offset 0 is
    /// written and committed first and the pad header in front of it is stored last, so the
    /// consumer cannot reach offset 0 before that record is there.
    pub fn try_push(&mut self, payload: &[u8]) -> Result<(), PushError> {
        // A slice iterator, not an array's: cloning `array::IntoIter` for the second walk is not
        // free, a slice iterator's is two pointers.
        self.try_push_parts(std::slice::from_ref(&payload).iter().copied())
    }

    /// Appends one record whose payload is the concatenation of `parts` (a gather write: a
    /// record header built on the stack and a message borrowed from elsewhere go into the ring
    /// with no intermediate buffer). The record is byte for byte the one [`Producer::try_push`]
    /// writes for the concatenation, in the same write order; the consumer cannot tell them
    /// apart. `parts` is walked up to three times (sizes, the bytes outside the header's cache
    /// line, the bytes inside it), so its iterator must be `Clone`; bytes past the size found by
    /// the first walk are never written.
    pub fn try_push_parts<'a, I>(&mut self, parts: I) -> Result<(), PushError>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        let parts = parts.into_iter();
        let size = parts
            .clone()
            .try_fold(0usize, |sum, part| sum.checked_add(part.len()))
            .unwrap_or(usize::MAX);
        if size > self.view.record_size_max {
            return Err(PushError::TooLarge {
                size,
                max: self.view.record_size_max,
            });
        }
        let (total, pad) = self.space_needed(size);
        let data_size = self.view.data_size as u64;
        // The record's bytes plus the next header slot, which we zero when it is free.
        if self.head + (total + RECORD_ALIGN) as u64 - self.tail_cached > data_size {
            self.refresh_tail(Ordering::Acquire)
                .map_err(PushError::Corrupt)?;
            if self.head + total as u64 - self.tail_cached > data_size {
                return Err(PushError::Full);
            }
        }
        // Only when this record fills the ring exactly is the next slot not free: it is then the
        // header of the consumer's oldest unread record (its published tail is always a record
        // start), a header of the previous lap, which the consumer reads as "not committed".
        let zero_next = self.head + (total + RECORD_ALIGN) as u64 - self.tail_cached <= data_size;
        let mask = self.view.data_size - 1;
        let offset = (self.head as usize) & mask;
        let record_offset = if pad != 0 { 0 } else { offset };
        let data = self.view.data();
        // The consumer may be polling the header's cache line right now, so that line is written
        // last and in one burst (the payload bytes that share it, then the header): every other
        // line first, then the zeroed next slot. Writing it early would let the poller pull it
        // back between our stores and cost a second ownership transfer before the commit.
        let payload_offset = record_offset + RECORD_ALIGN;
        let header_line_end = (record_offset | (CACHE_LINE - 1)) + 1;
        let head_part = size.min(header_line_end.saturating_sub(payload_offset));
        // Safety: `record_offset` is 8-aligned and the record fits between it and the end of the
        // data region (`space_needed` moved it to offset 0 when it would not fit); the space from
        // the old head up to head + total (+ 8 when `zero_next`) is free (checked against the
        // validated tail), so nothing we write overlaps bytes the consumer may still read.
        // `head_part <= size`, and `copy_span` writes only bytes `head_part..size` of the
        // payload, inside the record; the parts are our caller's memory, not the mapping.
        unsafe {
            copy_span(parts.clone(), head_part, size, data.add(payload_offset));
        }
        if zero_next {
            let next = ((self.head + total as u64) as usize) & mask;
            self.view
                .word(next)
                .store(RECORD_UNCOMMITTED, Ordering::Relaxed);
        }
        // Safety: as above, bytes `0..head_part` of the payload.
        unsafe {
            copy_span(parts, 0, head_part, data.add(payload_offset));
        }
        let record_lap = lap_of(self.head + pad as u64, self.view.data_size);
        let record_word = RecordHeader::encode(size as u32, RECORD_KIND_DATA, record_lap);
        // The last store commits the push. SeqCst, then a SeqCst load of the flag: with the
        // consumer's SeqCst flag store then header load, at least one side sees the other (no
        // lost wake-up).
        if pad != 0 {
            self.view.word(0).store(record_word, Ordering::Release);
            let pad_word = RecordHeader::encode(
                (pad - RECORD_ALIGN) as u32,
                RECORD_KIND_PAD,
                lap_of(self.head, self.view.data_size),
            );
            self.view.word(offset).store(pad_word, Ordering::SeqCst);
        } else {
            self.view.word(offset).store(record_word, Ordering::SeqCst);
        }
        self.head += total as u64;
        let header = self.view.header();
        if self.head - self.head_published >= data_size / 8 {
            self.head_published = self.head;
            header.producer.head.store(self.head, Ordering::Relaxed);
        }
        // The plain load first: the flag's line stays shared while nobody waits.
        if self.peer_wake_fd >= 0
            && header.wait.consumer_waiting.load(Ordering::SeqCst) != 0
            && header.wait.consumer_waiting.swap(0, Ordering::SeqCst) != 0
        {
            sys::eventfd_signal(self.peer_wake_fd);
        }
        Ok(())
    }

    /// Raw access to the mapping, for tests that play a hostile peer.
    #[doc(hidden)]
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.view.map
    }

    pub(crate) fn set_waiting(&self, waiting: bool) {
        self.view
            .header()
            .wait
            .producer_waiting
            .store(u32::from(waiting), Ordering::SeqCst);
    }
}

impl Consumer {
    /// The consumer half over a mapping whose sizes were validated by [`create`] or [`attach`].
    pub fn new(map: Arc<Mapping>, data_size: usize, record_size_max: usize) -> Consumer {
        assert!(map.size() >= mapping_size(data_size));
        Consumer {
            view: RingView {
                map,
                data_size,
                record_size_max,
            },
            tail: 0,
            published: 0,
            peer_wake_fd: -1,
        }
    }

    /// Largest payload one record may carry (a buffer this large always suffices).
    pub fn record_size_max(&self) -> usize {
        self.view.record_size_max
    }

    /// Offset in the data region of the next record header we will read (our private cursor).
    pub fn tail_offset(&self) -> usize {
        (self.tail as usize) & (self.view.data_size - 1)
    }

    /// Reads the header word at our cursor once and classifies the copy.
    fn slot(&self, order: Ordering) -> Result<Slot, CorruptReason> {
        let offset = (self.tail as usize) & (self.view.data_size - 1);
        let word = self.view.word(offset).load(order);
        if word == RECORD_UNCOMMITTED {
            return Ok(Slot::Uncommitted);
        }
        let record = RecordHeader::decode(word);
        if record.check != RECORD_CHECK {
            return Err(CorruptReason::BadRecordMagic { offset, word });
        }
        let expected = lap_of(self.tail, self.view.data_size);
        if record.lap == expected {
            Ok(Slot::Committed(record))
        } else if record.lap == expected.wrapping_sub(1) {
            // Left from the previous lap: the producer filled the ring exactly and has not
            // written here since (see `Producer::try_push`).
            Ok(Slot::Uncommitted)
        } else {
            Err(CorruptReason::BadRecordLap {
                offset,
                lap: record.lap,
                expected,
            })
        }
    }

    /// Is a record committed at our cursor? Reads the header with `SeqCst`, for the sleep
    /// protocol.
    pub(crate) fn ready_now(&mut self) -> Result<bool, CorruptReason> {
        Ok(matches!(self.slot(Ordering::SeqCst)?, Slot::Committed(_)))
    }

    /// Copies the next record into `buf` and releases its space; returns its length.
    ///
    /// The released space becomes visible to the producer in batches: at the latest when a pop
    /// finds the ring empty, after `data_size / 8` bytes, when the producer is seen waiting, or
    /// on [`Consumer::flush_tail`] (which `Session` calls before it waits).
    pub fn try_pop(&mut self, buf: &mut [u8]) -> Result<usize, PopError> {
        let data_size = self.view.data_size;
        // At most two rounds: a pad record, then a data record at offset 0.
        for _ in 0..2 {
            let offset = (self.tail as usize) & (data_size - 1);
            // Acquire: pairs with the producer's commit store, so the payload written before it
            // is visible below.
            let record = match self.slot(Ordering::Acquire).map_err(PopError::Corrupt)? {
                Slot::Committed(record) => record,
                Slot::Uncommitted => {
                    // While we wait on the header's line, keep pulling the line after it: the
                    // producer writes that one first, so a record spanning both (64 B of payload
                    // always does) is often complete in our cache when its header lands.
                    self.view.prefetch_line_after(offset);
                    // A pad we skipped may have moved the cursor without publishing it.
                    self.flush_tail();
                    return Err(PopError::Empty);
                }
            };
            let size = record.size as usize;
            match record.kind {
                RECORD_KIND_PAD => {
                    let expected = data_size - offset - RECORD_ALIGN;
                    if size != expected {
                        return Err(PopError::Corrupt(CorruptReason::BadPad {
                            offset,
                            size,
                            expected,
                        }));
                    }
                    self.tail += (data_size - offset) as u64;
                }
                RECORD_KIND_DATA => {
                    if size > self.view.record_size_max {
                        return Err(PopError::Corrupt(CorruptReason::RecordTooLarge {
                            offset,
                            size,
                            max: self.view.record_size_max,
                        }));
                    }
                    let footprint = record_footprint(size);
                    if offset + footprint > data_size {
                        return Err(PopError::Corrupt(CorruptReason::RecordBeyondRing {
                            offset,
                            size,
                            available: (data_size - offset) as u64,
                        }));
                    }
                    if buf.len() < size {
                        self.publish_tail();
                        return Err(PopError::BufferTooSmall {
                            size,
                            buffer: buf.len(),
                        });
                    }
                    // Safety: offset + 8 + size <= data_size (checked above), `buf` holds at
                    // least `size` bytes, and the regions cannot overlap (ours vs the mapping).
                    // The bytes are opaque payload: whatever a racing writer leaves in them is
                    // copied as-is and cannot affect our control flow.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            self.view.data().add(offset + RECORD_ALIGN),
                            buf.as_mut_ptr(),
                            size,
                        );
                    }
                    self.tail += footprint as u64;
                    // Batched publication, so the consumer's cursor line is not bounced per
                    // record. We publish (SeqCst store + flag check, the full wake protocol) every
                    // `data_size / 8` bytes, when the producer's waiting flag is already visible,
                    // and when a pop finds the ring empty (so the last look before any sleep
                    // always publishes). So less than `data_size / 8` bytes are ever private
                    // while the ring is drained, and a record needs at most `data_size / 2`: a
                    // drained consumer never leaves the producer `Full`. Unpublished space
                    // otherwise exists only while records remain unread; `Session` flushes it
                    // before it waits for space itself and in `arm_for_poll`, so two sessions
                    // cannot deadlock on each other's unpublished space.
                    if self.tail - self.published >= (data_size / 8) as u64
                        || self
                            .view
                            .header()
                            .wait
                            .producer_waiting
                            .load(Ordering::Relaxed)
                            != 0
                    {
                        self.publish_tail();
                    }
                    return Ok(size);
                }
                kind => {
                    return Err(PopError::Corrupt(CorruptReason::BadRecordKind {
                        offset,
                        kind: u16::from(kind),
                    }))
                }
            }
        }
        // Two pads in a row cannot happen with an honest producer: the second would start at 0.
        let offset = (self.tail as usize) & (data_size - 1);
        Err(PopError::Corrupt(CorruptReason::BadPad {
            offset,
            size: 0,
            expected: 0,
        }))
    }

    /// Publishes our cursor if part of it is still private.
    pub fn flush_tail(&mut self) {
        if self.published != self.tail {
            self.publish_tail();
        }
    }

    fn publish_tail(&mut self) {
        self.published = self.tail;
        let header = self.view.header();
        // Mirror of the producer's store/load pair (see `Producer::try_push`).
        header.consumer.tail.store(self.tail, Ordering::SeqCst);
        if self.peer_wake_fd >= 0
            && header.wait.producer_waiting.load(Ordering::SeqCst) != 0
            && header.wait.producer_waiting.swap(0, Ordering::SeqCst) != 0
        {
            sys::eventfd_signal(self.peer_wake_fd);
        }
    }

    pub(crate) fn set_waiting(&self, waiting: bool) {
        self.view
            .header()
            .wait
            .consumer_waiting
            .store(u32::from(waiting), Ordering::SeqCst);
    }

    /// Raw access to the mapping, for tests that play a hostile peer.
    #[doc(hidden)]
    pub fn mapping(&self) -> &Arc<Mapping> {
        &self.view.map
    }
}
