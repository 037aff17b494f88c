//! The shared-memory ABI of one ring: the versioned `#[repr(C)]` header, the cursor cache lines
//! and the 8-byte record header, with their sizes and offsets asserted at compile time.
//!
//! One ring is one memfd: `[RingHeader][padding to DATA_OFFSET][data: data_size bytes]`.
//! Nothing in it is a pointer; every position is a byte offset or a free-running byte count.
//!
//! Since version 2 a record's header word is also its commit: the producer writes the payload,
//! zeroes the header slot that follows the record, then stores the header (Release, SeqCst for
//! the wake-up protocol). The consumer spins on the header word at its own cursor instead of on
//! a shared `head`, so for a small record one cache-line transfer carries both the signal and
//! the data. A header carries the low 8 bits of its lap (`position / data_size`), which tells a
//! header left from the previous lap (not committed yet) from a new one.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64};

use crossbeam_utils::CachePadded;

/// `b"ROTORIPC"` read as a little-endian u64; the first word of every ring.
pub const RING_MAGIC: u64 = u64::from_le_bytes(*b"ROTORIPC");
/// Bumped on every incompatible change of this module's layout or of the record format.
pub const RING_VERSION: u32 = 2;

/// Byte offset of the data region inside the mapping: one page, so the data starts page-aligned.
pub const DATA_OFFSET: usize = 4096;
/// Every record starts at a multiple of this; it is also the record header's size.
pub const RECORD_ALIGN: usize = 8;
/// Smallest data region a ring may have.
pub const DATA_SIZE_MIN: usize = 4096;
/// Largest data region a ring may have (keeps every offset far from u32/usize overflow).
pub const DATA_SIZE_MAX: usize = 1 << 30;
/// Largest CPG message rotor promises (1 MiB) plus 64 KiB of headroom for headers.
pub const RECORD_SIZE_MAX_DEFAULT: usize = (1 << 20) + (64 << 10);
/// Default data region: large enough that two largest records fit (see [`record_size_max_for`]).
pub const DATA_SIZE_DEFAULT: usize = 4 << 20;

/// Record kind: an application record.
pub const RECORD_KIND_DATA: u8 = 1;
/// Record kind: filler up to the end of the data region; the next record starts at offset 0.
pub const RECORD_KIND_PAD: u8 = 2;
/// Written in every record header, so that a committed header is never zero and a ring full of
/// garbage is caught at once.
pub const RECORD_CHECK: u16 = 0x5254; // "RT"
/// A header word of zero: the slot is not committed yet (the producer zeroes the slot after each
/// record before it commits that record).
pub const RECORD_UNCOMMITTED: u64 = 0;

/// The producer's cache line. Written by the producer only.
#[repr(C)]
pub struct ProducerLine {
    /// Free-running count of bytes the producer has committed (records and pads), published in
    /// batches of `data_size / 8` bytes. Advisory only (fill level for diagnostics): the consumer
    /// learns of records from their header words and never reads this.
    pub head: AtomicU64,
}

/// The consumer's cache line. Written by the consumer only.
#[repr(C)]
pub struct ConsumerLine {
    /// Free-running count of bytes the consumer has released.
    pub tail: AtomicU64,
}

/// Sleep flags: written rarely (only around a sleep), read on every push and pop, so they live on
/// a line of their own that stays shared in both caches instead of bouncing with a cursor.
#[repr(C)]
pub struct WaitLine {
    /// Non-zero while the consumer is (about to be) asleep waiting for records. Set by the
    /// consumer; the producer clears it when it signals, so one wait costs one signal however
    /// many records follow before the consumer looks (a signal is a system call, and on a
    /// wake pair a datagram the consumer must read back).
    pub consumer_waiting: AtomicU32,
    /// Non-zero while the producer is (about to be) asleep waiting for space. Set by the
    /// producer, cleared by the consumer when it signals (as above).
    pub producer_waiting: AtomicU32,
}

/// The header at offset 0 of every ring mapping.
///
/// The creator (always the server) writes the first four fields once; an attaching client checks
/// them. Neither side trusts them afterwards: each keeps private copies of the sizes.
#[repr(C)]
pub struct RingHeader {
    /// [`RING_MAGIC`].
    pub magic: u64,
    /// [`RING_VERSION`].
    pub version: u32,
    /// `size_of::<RingHeader>()` of the creator; must equal ours.
    pub header_size: u32,
    /// Size of the data region in bytes. Invariant: a power of two in `DATA_SIZE_MIN..=DATA_SIZE_MAX`.
    pub data_size: u64,
    /// Largest payload of one record. Invariant: `record_size_max + 8 <= data_size / 2`.
    pub record_size_max: u64,
    /// The producer's cursor.
    pub producer: CachePadded<ProducerLine>,
    /// The consumer's cursor.
    pub consumer: CachePadded<ConsumerLine>,
    /// The sleep flags.
    pub wait: CachePadded<WaitLine>,
}

/// The 8-byte header in front of every record, read and written as one little-endian u64
/// (one atomic store commits it): bits 0..32 payload size, 32..40 kind, 40..48 lap, 48..64
/// [`RECORD_CHECK`]. Zero ([`RECORD_UNCOMMITTED`]) means nothing is committed at this slot yet.
#[repr(C)]
pub struct RecordHeader {
    /// Payload size in bytes (the padding to the next 8-byte boundary is not counted).
    pub size: u32,
    /// [`RECORD_KIND_DATA`] or [`RECORD_KIND_PAD`].
    pub kind: u8,
    /// Low 8 bits of the lap the record was written in ([`lap_of`] its position). A header whose
    /// lap is one behind the reader's is left from the previous lap: not committed yet.
    pub lap: u8,
    /// [`RECORD_CHECK`].
    pub check: u16,
}

impl RecordHeader {
    /// The header as the u64 written into the ring.
    pub fn encode(size: u32, kind: u8, lap: u8) -> u64 {
        u64::from(size)
            | (u64::from(kind) << 32)
            | (u64::from(lap) << 40)
            | (u64::from(RECORD_CHECK) << 48)
    }

    /// Splits a u64 read from the ring; no validation.
    pub fn decode(word: u64) -> RecordHeader {
        RecordHeader {
            size: word as u32,
            kind: (word >> 32) as u8,
            lap: (word >> 40) as u8,
            check: (word >> 48) as u16,
        }
    }
}

/// The lap tag of the record header at free-running byte `position` of a ring of `data_size`
/// (a power of two) bytes: the low 8 bits of `position / data_size`.
pub const fn lap_of(position: u64, data_size: usize) -> u8 {
    (position >> data_size.trailing_zeros()) as u8
}

// The layout is an ABI between processes: pin it down.
const _: () = assert!(offset_of!(RingHeader, magic) == 0);
const _: () = assert!(offset_of!(RingHeader, version) == 8);
const _: () = assert!(offset_of!(RingHeader, header_size) == 12);
const _: () = assert!(offset_of!(RingHeader, data_size) == 16);
const _: () = assert!(offset_of!(RingHeader, record_size_max) == 24);
// Each cursor and the flags sit on their own cache line(s), apart from the read-mostly sizes.
const _: () = assert!(offset_of!(RingHeader, producer) % 64 == 0);
const _: () = assert!(offset_of!(RingHeader, consumer) - offset_of!(RingHeader, producer) >= 64);
const _: () = assert!(offset_of!(RingHeader, wait) - offset_of!(RingHeader, consumer) >= 64);
const _: () = assert!(size_of::<RingHeader>() <= DATA_OFFSET);
const _: () = assert!(size_of::<RingHeader>() % 64 == 0);
const _: () = assert!(size_of::<RecordHeader>() == RECORD_ALIGN);
const _: () = assert!(offset_of!(RecordHeader, size) == 0);
const _: () = assert!(offset_of!(RecordHeader, kind) == 4);
const _: () = assert!(offset_of!(RecordHeader, lap) == 5);
const _: () = assert!(offset_of!(RecordHeader, check) == 6);
// A committed header is never the uncommitted word.
const _: () = assert!(RECORD_CHECK != 0);
const _: () = assert!(DATA_OFFSET % 4096 == 0);
const _: () = assert!(DATA_SIZE_DEFAULT.is_power_of_two());
const _: () = assert!(RECORD_SIZE_MAX_DEFAULT + RECORD_ALIGN <= DATA_SIZE_DEFAULT / 2);
const _: () = assert!(RECORD_SIZE_MAX_DEFAULT >= 1 << 20);

/// Size of a whole ring mapping (header page plus data region).
pub const fn mapping_size(data_size: usize) -> usize {
    DATA_OFFSET + data_size
}

/// Bytes one record of `payload_size` occupies in the data region: header plus payload, rounded
/// up to [`RECORD_ALIGN`].
pub const fn record_footprint(payload_size: usize) -> usize {
    RECORD_ALIGN + payload_size.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// The largest `record_size_max` a data region of `data_size` bytes allows. Keeping two records
/// within the data region guarantees that any record fits into an empty ring wherever the cursors
/// stand (it fits either before the end or, after a pad, before the current offset).
pub const fn record_size_max_for(data_size: usize) -> usize {
    data_size / 2 - RECORD_ALIGN
}

/// Checks sizes received from another process (or a caller) before any of them is used.
pub fn check_sizes(data_size: u64, record_size_max: u64) -> Result<(usize, usize), &'static str> {
    let data_size = usize::try_from(data_size).map_err(|_| "data_size does not fit usize")?;
    let record_size_max =
        usize::try_from(record_size_max).map_err(|_| "record_size_max does not fit usize")?;
    if !data_size.is_power_of_two() || !(DATA_SIZE_MIN..=DATA_SIZE_MAX).contains(&data_size) {
        return Err("data_size is not a power of two in the allowed range");
    }
    if record_size_max > record_size_max_for(data_size) {
        return Err("record_size_max exceeds half the data region");
    }
    if record_size_max > u32::MAX as usize {
        return Err("record_size_max exceeds u32");
    }
    Ok((data_size, record_size_max))
}
