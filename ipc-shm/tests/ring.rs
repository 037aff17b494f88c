//! The ring on its own, both halves in one process: edges, size classes, wrap-around, gather
//! pushes (byte-identical to contiguous ones), a concurrent stress run with a checksum, and a
//! producer that writes garbage.

use std::sync::atomic::{AtomicU64, Ordering};

use ipc_shm::layout::{
    record_footprint, record_size_max_for, RecordHeader, DATA_OFFSET, DATA_SIZE_DEFAULT,
    RECORD_KIND_DATA, RECORD_KIND_PAD, RECORD_SIZE_MAX_DEFAULT,
};
use ipc_shm::{pair, CorruptReason, PopError, PushError};

const DATA_SIZE_SMALL: usize = 4096;

fn pattern(seed: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

#[test]
fn empty_ring_pops_nothing() {
    let (_p, mut c) = pair(DATA_SIZE_SMALL, record_size_max_for(DATA_SIZE_SMALL)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(c.try_pop(&mut buf), Err(PopError::Empty));
}

#[test]
fn full_ring_refuses_without_overwriting_then_drains_in_order() {
    let (mut p, mut c) = pair(DATA_SIZE_SMALL, record_size_max_for(DATA_SIZE_SMALL)).unwrap();
    // 56-byte payloads take 64 bytes each: exactly 64 of them fill 4096 bytes.
    let mut pushed = 0u64;
    loop {
        match p.try_push(&pattern(pushed, 56)) {
            Ok(()) => pushed += 1,
            Err(PushError::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(pushed as usize, DATA_SIZE_SMALL / record_footprint(56));
    assert_eq!(
        p.try_push(&[]),
        Err(PushError::Full),
        "even an empty record needs 8 bytes"
    );
    let mut buf = [0u8; 64];
    for i in 0..pushed {
        let n = c.try_pop(&mut buf).unwrap();
        assert_eq!(&buf[..n], &pattern(i, 56)[..]);
    }
    assert_eq!(c.try_pop(&mut buf), Err(PopError::Empty));
    // Space is back: one more full round.
    for i in 0..pushed {
        p.try_push(&pattern(i, 56)).unwrap();
    }
    assert_eq!(p.try_push(&[1]), Err(PushError::Full));
}

#[test]
fn too_large_and_buffer_too_small() {
    let max = record_size_max_for(DATA_SIZE_SMALL);
    let (mut p, mut c) = pair(DATA_SIZE_SMALL, max).unwrap();
    assert_eq!(
        p.try_push(&vec![0; max + 1]),
        Err(PushError::TooLarge { size: max + 1, max })
    );
    p.try_push(&[7; 100]).unwrap();
    let mut small = [0u8; 10];
    assert_eq!(
        c.try_pop(&mut small),
        Err(PopError::BufferTooSmall {
            size: 100,
            buffer: 10
        })
    );
    let mut buf = [0u8; 100];
    assert_eq!(
        c.try_pop(&mut buf),
        Ok(100),
        "the record stayed in the ring"
    );
}

#[test]
fn records_of_every_size_class_wrap_around() {
    let max = record_size_max_for(DATA_SIZE_SMALL);
    let (mut p, mut c) = pair(DATA_SIZE_SMALL, max).unwrap();
    let mut buf = vec![0u8; max];
    let mut sizes: Vec<usize> = (0..=72).collect();
    sizes.extend([
        127,
        128,
        129,
        255,
        256,
        257,
        511,
        1000,
        1024,
        1500,
        2000,
        max - 1,
        max,
    ]);
    // Many rounds at shifting offsets, so each size meets the end of the ring at every phase.
    let mut seq = 0u64;
    for round in 0..200 {
        for &size in sizes.iter().skip(round % 7) {
            p.try_push(&pattern(seq, size)).unwrap();
            let n = c.try_pop(&mut buf).unwrap();
            assert_eq!(n, size);
            assert_eq!(
                &buf[..n],
                &pattern(seq, size)[..],
                "record {seq} of {size} bytes"
            );
            seq += 1;
        }
    }
}

#[test]
fn large_records_up_to_the_default_maximum() {
    let (mut p, mut c) = pair(DATA_SIZE_DEFAULT, RECORD_SIZE_MAX_DEFAULT).unwrap();
    let mut buf = vec![0u8; RECORD_SIZE_MAX_DEFAULT];
    for (i, size) in [
        1 << 20,
        RECORD_SIZE_MAX_DEFAULT,
        3,
        (1 << 20) + 1,
        RECORD_SIZE_MAX_DEFAULT,
    ]
    .into_iter()
    .enumerate()
    {
        let record = pattern(i as u64, size);
        // Keep two in flight to exercise the pad at the end of the region.
        p.try_push(&record).unwrap();
        p.try_push(&record).unwrap();
        for _ in 0..2 {
            let n = c.try_pop(&mut buf).unwrap();
            assert_eq!(&buf[..n], &record[..]);
        }
    }
}

/// Every byte of a ring's mapping (header lines and data region).
fn mapping_bytes(map: &ipc_shm::Mapping) -> Vec<u8> {
    // Safety: the whole live mapping; in these tests nobody writes it concurrently.
    unsafe { std::slice::from_raw_parts(map.as_ptr(), map.size()).to_vec() }
}

/// Ways to cut one payload into parts: none, at every place near the header's cache line (the
/// first 56 payload bytes share it), empty parts, and one byte per part.
fn cuts(size: usize, round: usize) -> Vec<Vec<usize>> {
    let mut out = vec![vec![], vec![0], vec![size], vec![0, 0, size, size]];
    for at in [1, 7, 8, 48, 55, 56, 57, 63, 64, 120, 121] {
        if at <= size {
            out.push(vec![at]);
            out.push(vec![at / 2, at]);
        }
    }
    out.push(vec![round % (size + 1), (round * 7) % (size + 1)]);
    if size <= 200 {
        out.push((1..size).collect());
    }
    for c in &mut out {
        c.sort_unstable();
    }
    out
}

fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut from = 0;
    for &at in cuts {
        parts.push(&bytes[from..at]);
        from = at;
    }
    parts.push(&bytes[from..]);
    parts
}

#[test]
fn gathered_records_are_byte_identical_to_contiguous_ones() {
    // Two rings fed the same records, one contiguous and one as parts cut every way: after every
    // push the two mappings (cursors, headers, pads, zeroed slots, payload) are identical, and
    // the consumer reads the same records, across every phase of the wrap.
    let max = record_size_max_for(DATA_SIZE_SMALL);
    let (mut p1, mut c1) = pair(DATA_SIZE_SMALL, max).unwrap();
    let (mut p2, mut c2) = pair(DATA_SIZE_SMALL, max).unwrap();
    let (m1, m2) = (p1.mapping().clone(), p2.mapping().clone());
    let (mut b1, mut b2) = (vec![0u8; max], vec![0u8; max]);
    let sizes = [0usize, 1, 7, 8, 55, 56, 57, 64, 100, 121, 500, 1000, max];
    let mut seq = 0u64;
    for round in 0..40 {
        for &size in sizes.iter().skip(round % 5) {
            for cut in cuts(size, round) {
                let record = pattern(seq, size);
                // Records stay in flight (two of three are read at once), so the ring fills and
                // wraps unevenly; when it is full both are drained the same way.
                loop {
                    match p1.try_push(&record) {
                        Ok(()) => break,
                        Err(PushError::Full) => {
                            let (n1, n2) = (c1.try_pop(&mut b1), c2.try_pop(&mut b2));
                            assert_eq!(n1, n2);
                            assert_eq!(b1[..n1.unwrap()], b2[..n2.unwrap()]);
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                p2.try_push_parts(split(&record, &cut)).unwrap();
                assert!(
                    mapping_bytes(&m1) == mapping_bytes(&m2),
                    "record {seq} of {size} bytes cut at {cut:?}"
                );
                if seq % 3 != 0 {
                    let (n1, n2) = (c1.try_pop(&mut b1).unwrap(), c2.try_pop(&mut b2).unwrap());
                    assert_eq!(b1[..n1], b2[..n2]);
                }
                seq += 1;
            }
        }
    }
}

#[test]
fn gathered_records_refuse_like_contiguous_ones() {
    let max = record_size_max_for(DATA_SIZE_SMALL);
    let (mut p, mut c) = pair(DATA_SIZE_SMALL, max).unwrap();
    let half = vec![1u8; max / 2 + 1];
    assert_eq!(
        p.try_push_parts([&half[..], &half[..]]),
        Err(PushError::TooLarge {
            size: 2 * half.len(),
            max
        })
    );
    // Fill, then a gathered push is Full and writes nothing.
    for i in 0..64 {
        p.try_push_parts([&pattern(i, 20)[..], &pattern(i + 1, 36)[..]])
            .unwrap();
    }
    let before = mapping_bytes(p.mapping());
    assert_eq!(
        p.try_push_parts([&[1u8][..], &[2u8][..]]),
        Err(PushError::Full)
    );
    assert!(
        mapping_bytes(p.mapping()) == before,
        "a refused push writes nothing"
    );
    let mut buf = vec![0u8; max];
    for i in 0..64 {
        let n = c.try_pop(&mut buf).unwrap();
        let mut expected = pattern(i, 20);
        expected.extend(pattern(i + 1, 36));
        assert_eq!(buf[..n], expected[..]);
    }
}

#[test]
fn concurrent_stress_with_checksum() {
    const RECORDS: u64 = 50_000;
    let max = 1000;
    let (mut p, mut c) = pair(16 << 10, max).unwrap();
    let sent_sum = AtomicU64::new(0);
    let received = std::thread::scope(|s| {
        s.spawn(|| {
            let mut sum = 0u64;
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            for seq in 0..RECORDS {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let size = 8 + (rng % (max as u64 - 8)) as usize;
                let mut record = pattern(rng, size);
                record[..8].copy_from_slice(&seq.to_le_bytes());
                sum = sum.wrapping_add(checksum(&record));
                // Every other record goes in as a gather of three parts cut at random places.
                let cut_a = (rng >> 20) as usize % (size + 1);
                let cut_b = cut_a + (rng >> 40) as usize % (size - cut_a + 1);
                let (a, rest) = record.split_at(cut_a);
                let (b, c) = rest.split_at(cut_b - cut_a);
                loop {
                    let pushed = if seq % 2 == 0 {
                        p.try_push(&record)
                    } else {
                        p.try_push_parts([a, b, c])
                    };
                    match pushed {
                        Ok(()) => break,
                        Err(PushError::Full) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            sent_sum.store(sum, Ordering::SeqCst);
        });
        let mut buf = vec![0u8; max];
        let mut sum = 0u64;
        let mut next = 0u64;
        while next < RECORDS {
            match c.try_pop(&mut buf) {
                Ok(n) => {
                    assert_eq!(
                        u64::from_le_bytes(buf[..8].try_into().unwrap()),
                        next,
                        "records in order, none lost"
                    );
                    sum = sum.wrapping_add(checksum(&buf[..n]));
                    next += 1;
                }
                Err(PopError::Empty) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        sum
    });
    assert_eq!(
        received,
        sent_sum.load(Ordering::SeqCst),
        "checksum over everything sent"
    );
}

fn checksum(bytes: &[u8]) -> u64 {
    // FNV-1a.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Writes `value` at `offset` of the mapping as a hostile peer would.
fn scribble_u64(map: &ipc_shm::Mapping, offset: usize, value: u64) {
    assert!(offset + 8 <= map.size());
    // Safety: in bounds of the live mapping (checked above), 8-aligned offsets only.
    unsafe { map.as_ptr().add(offset).cast::<u64>().write_volatile(value) };
}

const HEAD_OFFSET: usize = std::mem::offset_of!(ipc_shm::layout::RingHeader, producer);
const TAIL_OFFSET: usize = std::mem::offset_of!(ipc_shm::layout::RingHeader, consumer);

#[test]
fn consumer_ignores_the_advisory_head() {
    // Since ring version 2 the consumer learns of records from their headers only: whatever the
    // producer's `head` line says, an empty ring stays empty and a committed record is read.
    let (mut p, mut c) = pair(DATA_SIZE_SMALL, 1024).unwrap();
    let map = c.mapping().clone();
    let mut buf = [0u8; 1024];
    for head in [DATA_SIZE_SMALL as u64 + 8, 12, u64::MAX - 7] {
        scribble_u64(&map, HEAD_OFFSET, head);
        assert_eq!(c.try_pop(&mut buf), Err(PopError::Empty), "head {head}");
    }
    p.try_push(b"hello").unwrap();
    assert_eq!(c.try_pop(&mut buf), Ok(5));
}

#[test]
fn consumer_rejects_garbage_records() {
    let mut buf = [0u8; 2048];
    type IsExpected = fn(&CorruptReason) -> bool;
    // (tail offset reached by honest records first, header word written there, expectation)
    let cases: [(usize, u64, IsExpected); 7] = [
        (0, 0xdead_beef_dead_beef, |r| {
            matches!(r, CorruptReason::BadRecordMagic { .. })
        }),
        (0, 0x0000_0001_0000_0010, |r| {
            matches!(r, CorruptReason::BadRecordMagic { .. })
        }),
        (0, 0x5254_0009_0000_0010, |r| {
            matches!(r, CorruptReason::BadRecordKind { .. })
        }),
        (0, 0x5254_0001_0000_0801, |r| {
            matches!(r, CorruptReason::RecordTooLarge { .. })
        }),
        (0, RecordHeader::encode(16, RECORD_KIND_DATA, 5), |r| {
            matches!(r, CorruptReason::BadRecordLap { .. })
        }),
        (3072, RecordHeader::encode(2000, RECORD_KIND_DATA, 0), |r| {
            matches!(r, CorruptReason::RecordBeyondRing { .. })
        }),
        (3072, RecordHeader::encode(64, RECORD_KIND_PAD, 0), |r| {
            matches!(r, CorruptReason::BadPad { .. })
        }),
    ];
    for (at, word, expect) in cases {
        let (mut p, mut c) = pair(DATA_SIZE_SMALL, 2048 - 8).unwrap();
        while c.tail_offset() < at {
            p.try_push(&[1; 1016]).unwrap();
            assert_eq!(c.try_pop(&mut buf), Ok(1016));
        }
        let map = c.mapping().clone();
        scribble_u64(&map, DATA_OFFSET + at, word);
        match c.try_pop(&mut buf) {
            Err(PopError::Corrupt(reason)) => assert!(expect(&reason), "word {word:#x}: {reason}"),
            other => panic!("word {word:#x}: {other:?}"),
        }
    }
}

#[test]
fn a_record_is_consumed_only_once_its_header_is_committed() {
    let (_p, mut c) = pair(DATA_SIZE_SMALL, 1024).unwrap();
    let map = c.mapping().clone();
    let mut buf = [0u8; 1024];
    // Payload in place, header slot still zero: nothing to read.
    scribble_u64(&map, DATA_OFFSET + 8, 0x1122_3344_5566_7788);
    assert_eq!(c.try_pop(&mut buf), Err(PopError::Empty));
    // A header left from the previous lap (255 = 0 - 1): still not committed, not corrupt.
    scribble_u64(
        &map,
        DATA_OFFSET,
        RecordHeader::encode(8, RECORD_KIND_DATA, 255),
    );
    assert_eq!(c.try_pop(&mut buf), Err(PopError::Empty));
    // The commit: the same header in this lap.
    scribble_u64(
        &map,
        DATA_OFFSET,
        RecordHeader::encode(8, RECORD_KIND_DATA, 0),
    );
    assert_eq!(c.try_pop(&mut buf), Ok(8));
    assert_eq!(buf[..8], 0x1122_3344_5566_7788u64.to_ne_bytes());
    assert_eq!(c.try_pop(&mut buf), Err(PopError::Empty));
}

#[test]
fn stale_bytes_of_an_earlier_lap_are_never_taken_for_a_record() {
    // Lap 0 leaves payload words that look like committed headers of lap 1 everywhere; lap 1
    // puts record starts where that payload was (and fills the ring exactly once, so the slot
    // after the last record holds a header of the previous lap). Every pop must return exactly
    // the record just pushed, and the pop after it nothing.
    let (mut p, mut c) = pair(DATA_SIZE_SMALL, record_size_max_for(DATA_SIZE_SMALL)).unwrap();
    let mut buf = vec![0u8; DATA_SIZE_SMALL];
    let bait: Vec<u8> = (0..7)
        .flat_map(|_| RecordHeader::encode(8, RECORD_KIND_DATA, 1).to_le_bytes())
        .collect();
    // Lap 0: 64 records of 56 bytes fill the ring exactly.
    for _ in 0..DATA_SIZE_SMALL / 64 {
        p.try_push(&bait).unwrap();
    }
    assert_eq!(p.try_push(&[]), Err(PushError::Full));
    for _ in 0..DATA_SIZE_SMALL / 64 {
        assert_eq!(c.try_pop(&mut buf), Ok(56));
    }
    assert_eq!(
        c.try_pop(&mut buf),
        Err(PopError::Empty),
        "stale lap-0 header"
    );
    // Laps 1 and 2: sizes that put headers at every phase of the old 64-byte grid, with a pad
    // at each wrap.
    for (seq, size) in (0..40).cycle().take(400).enumerate() {
        let record = pattern(seq as u64, size * 8 + 4);
        p.try_push(&record).unwrap();
        let n = c.try_pop(&mut buf).unwrap();
        assert_eq!(&buf[..n], &record[..], "record {seq}");
        assert_eq!(
            c.try_pop(&mut buf),
            Err(PopError::Empty),
            "after record {seq}"
        );
    }
}

#[test]
fn wrap_with_a_pad_commits_the_record_before_the_pad() {
    let (mut p, mut c) = pair(DATA_SIZE_SMALL, record_size_max_for(DATA_SIZE_SMALL)).unwrap();
    let map = c.mapping().clone();
    let mut buf = vec![0u8; DATA_SIZE_SMALL];
    // Move both cursors to 64 bytes before the end.
    for _ in 0..(DATA_SIZE_SMALL - 64) / 64 {
        p.try_push(&[3; 56]).unwrap();
        assert_eq!(c.try_pop(&mut buf), Ok(56));
    }
    // 100 bytes do not fit the last 64: a pad at 4032, the record at offset 0 of lap 1.
    p.try_push(&pattern(9, 100)).unwrap();
    let word = |offset: usize| {
        // Safety: in bounds of the live mapping, 8-aligned.
        unsafe {
            map.as_ptr()
                .add(DATA_OFFSET + offset)
                .cast::<u64>()
                .read_volatile()
        }
    };
    assert_eq!(word(4032), RecordHeader::encode(56, RECORD_KIND_PAD, 0));
    assert_eq!(word(0), RecordHeader::encode(100, RECORD_KIND_DATA, 1));
    assert_eq!(word(record_footprint(100)), 0, "the next slot is zeroed");
    // Un-commit the pad: the consumer must not skip ahead to the (committed) record at 0.
    scribble_u64(&map, DATA_OFFSET + 4032, 0);
    assert_eq!(c.try_pop(&mut buf), Err(PopError::Empty));
    scribble_u64(
        &map,
        DATA_OFFSET + 4032,
        RecordHeader::encode(56, RECORD_KIND_PAD, 0),
    );
    assert_eq!(c.try_pop(&mut buf), Ok(100));
    assert_eq!(&buf[..100], &pattern(9, 100)[..]);
    assert_eq!(c.tail_offset(), record_footprint(100));
}

#[test]
fn producer_rejects_impossible_tail() {
    let (mut p, _c) = pair(DATA_SIZE_SMALL, 1024).unwrap();
    let map = p.mapping().clone();
    scribble_u64(&map, TAIL_OFFSET, 1 << 40);
    // Fill until the producer has to look at the tail.
    let result = (0..100)
        .map(|_| p.try_push(&[0; 1000]))
        .find(|r| r.is_err())
        .unwrap();
    assert!(
        matches!(
            result,
            Err(PushError::Corrupt(CorruptReason::TailOutOfRange { .. }))
        ),
        "{result:?}"
    );
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = 0x1234_5678_9abc_def1u64;
    let mut buf = vec![0u8; 2048];
    for _ in 0..300 {
        let (_p, mut c) = pair(DATA_SIZE_SMALL, 2048 - 8).unwrap();
        let map = c.mapping().clone();
        for _ in 0..8 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let offset = DATA_OFFSET + ((rng >> 20) as usize % DATA_SIZE_SMALL) / 8 * 8;
            scribble_u64(&map, offset, rng);
        }
        scribble_u64(
            &map,
            HEAD_OFFSET,
            (rng % (DATA_SIZE_SMALL as u64 + 64)) & !7,
        );
        for _ in 0..4 {
            let _ = c.try_pop(&mut buf);
        }
    }
}

#[test]
fn batched_tail_becomes_visible_on_drain_flush_or_batch() {
    let (mut p, mut c) = pair(DATA_SIZE_SMALL, record_size_max_for(DATA_SIZE_SMALL)).unwrap();
    // 64 records of 64 bytes fill the ring; the consumer learns of all 64 at its first pop.
    let record = [7u8; 56];
    for _ in 0..64 {
        p.try_push(&record).unwrap();
    }
    assert_eq!(p.try_push(&record), Err(PushError::Full));
    let mut buf = [0u8; 64];
    // One pop frees 64 bytes but stays private (below data_size / 8 = 512, records remain).
    assert_eq!(c.try_pop(&mut buf), Ok(56));
    assert_eq!(p.try_push(&record), Err(PushError::Full));
    // An explicit flush publishes it.
    c.flush_tail();
    p.try_push(&record).unwrap();
    assert_eq!(p.try_push(&record), Err(PushError::Full));
    // Eight pops (512 bytes) reach the batch size and publish without a flush.
    for _ in 0..8 {
        assert_eq!(c.try_pop(&mut buf), Ok(56));
    }
    for _ in 0..8 {
        p.try_push(&record).unwrap();
    }
    assert_eq!(p.try_push(&record), Err(PushError::Full));
    // Draining every known record publishes everything.
    while c.try_pop(&mut buf).is_ok() {}
    for _ in 0..64 {
        p.try_push(&record).unwrap();
    }
}
