//! Deterministic fuzzing of every decoder that reads what another process wrote: the ring
//! consumer (record headers in shared memory), the producer (the consumer's cursor), a session
//! over a real attach (Corrupt closes it), and the handshake decoders.
//!
//! It runs on stable Rust as an ordinary integration test (cargo-fuzz needs nightly): a seeded
//! xorshift generator writes random words, plausible headers, bit flips of a valid stream
//! (records pushed whole or gathered from parts) and truncated streams into a ring and checks that nothing panics, that every record returned lies
//! inside the ring where the consumer's cursor said, and that everything else is `Empty`,
//! `BufferTooSmall` or `Corrupt`.
//!
//! - `cargo test -p ipc-shm --test fuzz` runs 20,000 cases per target (about 2 s in debug).
//! - `ROTOR_FUZZ_ITERS=1000000 cargo test --release -p ipc-shm --test fuzz` runs longer.
//! - `ROTOR_FUZZ_SEED=<n>` replays a run; each target prints its seed, and a failure names the
//!   case index, so a failing case replays exactly.

use std::time::Duration;

use ipc_shm::handshake::{
    decode_hello, decode_reply, encode_hello, encode_reply, HELLO_SIZE, REPLY_SIZE,
};
use ipc_shm::layout::{
    lap_of, record_footprint, record_size_max_for, RecordHeader, RingHeader, DATA_OFFSET,
    RECORD_ALIGN, RECORD_KIND_DATA, RECORD_KIND_PAD,
};
use ipc_shm::ring::create;
use ipc_shm::{
    AllowList, Client, Consumer, Mapping, PopError, Producer, PushError, Server, ServerConfig,
    SessionError,
};

/// Cases per target when `ROTOR_FUZZ_ITERS` is unset.
const ITERS_DEFAULT: u64 = 20_000;
const DATA_SIZE: usize = 4096;
const HEAD_OFFSET: usize = std::mem::offset_of!(RingHeader, producer);
const TAIL_OFFSET: usize = std::mem::offset_of!(RingHeader, consumer);

fn iterations() -> u64 {
    std::env::var("ROTOR_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERS_DEFAULT)
}

fn seed(target: &str) -> u64 {
    let seed = std::env::var("ROTOR_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    eprintln!("fuzz target={target} seed={seed} iters={}", iterations());
    seed
}

/// xorshift64*: small, fast and plenty for picking cases.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, case: u64) -> Rng {
        // Mix so that neighbouring cases start far apart; never zero.
        let mut s = seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        s = (s ^ (s >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        Rng(s | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

fn write_u64(map: &Mapping, offset: usize, value: u64) {
    assert!(offset + 8 <= map.size() && offset % 8 == 0);
    // Safety: in bounds of the live mapping (checked above) and 8-aligned.
    unsafe { map.as_ptr().add(offset).cast::<u64>().write_volatile(value) };
}

fn read_bytes(map: &Mapping, offset: usize, len: usize) -> Vec<u8> {
    assert!(offset + len <= map.size());
    // Safety: in bounds of the live mapping (checked above); nobody writes concurrently here.
    unsafe { std::slice::from_raw_parts(map.as_ptr().add(offset), len).to_vec() }
}

fn zero(map: &Mapping) {
    // Safety: the whole live mapping; no other party uses it in these tests.
    unsafe { std::ptr::write_bytes(map.as_ptr(), 0, map.size()) };
}

/// A header word that is plausible more often than chance: right check value, often the
/// right lap, sizes near the interesting bounds.
fn plausible_header(rng: &mut Rng, position: u64, record_size_max: usize) -> u64 {
    let kind = match rng.below(8) {
        0 => RECORD_KIND_PAD,
        1 => rng.next() as u8,
        _ => RECORD_KIND_DATA,
    };
    let size = match rng.below(6) {
        0 => rng.next() as u32,
        1 => (record_size_max + rng.below(16)) as u32,
        2 => (DATA_SIZE - (position as usize % DATA_SIZE)).saturating_sub(8) as u32,
        _ => rng.below(record_size_max + 1) as u32,
    };
    let lap = match rng.below(6) {
        0 => rng.next() as u8,
        1 => lap_of(position, DATA_SIZE).wrapping_sub(1),
        _ => lap_of(position, DATA_SIZE),
    };
    let word = RecordHeader::encode(size, kind, lap);
    if rng.chance(10) {
        word ^ (1 << rng.below(64))
    } else {
        word
    }
}

/// Pushes `record` as it is, or (half the time) as a gather of up to five parts cut at random
/// places, empty parts included: the consumer must not be able to tell the difference.
fn push_maybe_gathered(
    producer: &mut Producer,
    record: &[u8],
    rng: &mut Rng,
) -> Result<(), PushError> {
    if rng.chance(2) {
        return producer.try_push(record);
    }
    let mut cuts: Vec<usize> = (0..rng.below(5))
        .map(|_| rng.below(record.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut parts = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for at in cuts {
        parts.push(&record[from..at]);
        from = at;
    }
    parts.push(&record[from..]);
    producer.try_push_parts(parts.iter().copied())
}

/// Pops until the ring says stop, checking every returned record against the mapping: it must
/// be the bytes right behind the header at the consumer's cursor (or at 0 after a pad), inside
/// the data region. Returns the records taken and how the run ended.
fn drain_checked(
    consumer: &mut Consumer,
    map: &Mapping,
    case: u64,
    pops_max: usize,
    rng: &mut Rng,
) -> (Vec<Vec<u8>>, Option<PopError>) {
    let record_size_max = consumer.record_size_max();
    let mut records = Vec::new();
    // Records taken count against `pops_max`; retries after `BufferTooSmall` only against a
    // looser bound.
    for _ in 0..pops_max * 8 {
        if records.len() >= pops_max {
            break;
        }
        let before = consumer.tail_offset();
        let buf_len = if rng.chance(8) {
            rng.below(record_size_max + 1)
        } else {
            record_size_max
        };
        let mut buf = vec![0u8; buf_len];
        match consumer.try_pop(&mut buf) {
            Ok(n) => {
                assert!(
                    n <= buf_len && n <= record_size_max,
                    "case {case}: size {n}"
                );
                let after = consumer.tail_offset();
                // The record started at `before`, or at 0 when a pad at `before` was skipped.
                let start = (after + DATA_SIZE - record_footprint(n)) % DATA_SIZE;
                assert!(
                    start == before || start == 0,
                    "case {case}: record at {start}, cursor was at {before}"
                );
                assert!(start + record_footprint(n) <= DATA_SIZE, "case {case}");
                assert_eq!(
                    buf[..n],
                    read_bytes(map, DATA_OFFSET + start + RECORD_ALIGN, n)[..],
                    "case {case}: record bytes at {start}"
                );
                records.push(buf[..n].to_vec());
            }
            Err(PopError::BufferTooSmall { size, buffer }) => {
                assert!(size > buffer && size <= record_size_max, "case {case}");
                // The record stays; only a pad in front of it may have been skipped.
                let after = consumer.tail_offset();
                assert!(after == before || after == 0, "case {case}: record kept");
            }
            Err(e) => return (records, Some(e)),
        }
    }
    (records, None)
}

#[test]
fn consumer_over_random_words_never_misreads() {
    let seed = seed("random-words");
    let record_size_max = record_size_max_for(DATA_SIZE);
    let (_fd, map) = create(DATA_SIZE, record_size_max).unwrap();
    for case in 0..iterations() {
        let mut rng = Rng::new(seed, case);
        zero(&map);
        // Some honest traffic first, so the cursor and lap start anywhere.
        let mut producer = Producer::new(map.clone(), DATA_SIZE, record_size_max);
        let mut consumer = Consumer::new(map.clone(), DATA_SIZE, record_size_max);
        for _ in 0..rng.below(100) {
            let size = rng.below(600);
            producer.try_push(&vec![0x33; size]).unwrap();
            consumer.try_pop(&mut vec![0u8; size]).unwrap();
        }
        // Then garbage: random words, plausible headers (mostly at the cursor), the cursors.
        for _ in 0..1 + rng.below(12) {
            let offset = if rng.chance(2) {
                consumer.tail_offset()
            } else {
                rng.below(DATA_SIZE / 8) * 8
            };
            let position = (offset as u64) | (rng.below(4) as u64 * DATA_SIZE as u64);
            let word = if rng.chance(3) {
                rng.next()
            } else {
                plausible_header(&mut rng, position, record_size_max)
            };
            write_u64(&map, DATA_OFFSET + offset, word);
        }
        if rng.chance(4) {
            write_u64(&map, HEAD_OFFSET, rng.next());
        }
        drain_checked(&mut consumer, &map, case, 8, &mut rng);
    }
}

#[test]
fn bit_flips_and_truncations_of_a_valid_stream() {
    let seed = seed("stream");
    let record_size_max = 1000;
    let (_fd, map) = create(DATA_SIZE, record_size_max).unwrap();
    for case in 0..iterations() {
        let mut rng = Rng::new(seed, case);
        zero(&map);
        let mut producer = Producer::new(map.clone(), DATA_SIZE, record_size_max);
        let mut consumer = Consumer::new(map.clone(), DATA_SIZE, record_size_max);
        // Move the cursors to a random place (and lap), then write a valid stream.
        for _ in 0..rng.below(40) {
            let size = rng.below(record_size_max);
            producer.try_push(&vec![1; size]).unwrap();
            assert_eq!(consumer.try_pop(&mut vec![0; size]), Ok(size));
        }
        let mut sent = Vec::new();
        loop {
            let size = if rng.chance(3) {
                rng.below(record_size_max + 1)
            } else {
                rng.below(120)
            };
            let record: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            match push_maybe_gathered(&mut producer, &record, &mut rng) {
                Ok(()) => sent.push(record),
                Err(PushError::Full) => break,
                Err(e) => panic!("case {case}: {e}"),
            }
            if rng.chance(12) {
                break;
            }
        }
        let truncate = rng.chance(2) && !sent.is_empty();
        if truncate {
            // Un-commit the k-th record's header: the consumer must stop exactly there.
            let k = rng.below(sent.len());
            // Walk the stream as the producer laid it out to find the k-th header slot.
            let mut offset = consumer.tail_offset();
            for record in &sent[..k] {
                if offset + record_footprint(record.len()) > DATA_SIZE {
                    offset = 0;
                }
                offset = (offset + record_footprint(record.len())) % DATA_SIZE;
            }
            // That slot holds the k-th record's header, or the pad in front of it if it wrapped;
            // either way zero there means "not committed".
            write_u64(&map, DATA_OFFSET + offset, 0);
            let (got, end) = drain_checked(&mut consumer, &map, case, sent.len() + 2, &mut rng);
            assert_eq!(
                got.len(),
                k,
                "case {case}: records before the cut at {offset}"
            );
            assert!(
                got == sent[..k],
                "case {case}: records before the cut differ"
            );
            assert_eq!(end, Some(PopError::Empty), "case {case}");
        } else {
            // Flip a few bits anywhere in the data region or the cursors.
            for _ in 0..1 + rng.below(4) {
                let offset = if rng.chance(8) {
                    [HEAD_OFFSET, TAIL_OFFSET][rng.below(2)]
                } else {
                    DATA_OFFSET + rng.below(DATA_SIZE / 8) * 8
                };
                let old = read_bytes(&map, offset, 8);
                let word = u64::from_ne_bytes(old.try_into().unwrap()) ^ (1 << rng.below(64));
                write_u64(&map, offset, word);
            }
            drain_checked(&mut consumer, &map, case, sent.len() + 2, &mut rng);
            // The producer sees only its own cursor bits flipped, via the tail: no panic.
            for _ in 0..4 {
                let _ = producer.try_push(&[7; 100]);
            }
        }
    }
}

#[test]
fn producer_over_random_tails_never_overwrites_unread_space() {
    let seed = seed("tail");
    let record_size_max = record_size_max_for(DATA_SIZE);
    let (_fd, map) = create(DATA_SIZE, record_size_max).unwrap();
    for case in 0..iterations() {
        let mut rng = Rng::new(seed, case);
        zero(&map);
        let mut producer = Producer::new(map.clone(), DATA_SIZE, record_size_max);
        let mut pushed = 0u64;
        for _ in 0..rng.below(50) {
            let tail = match rng.below(4) {
                0 => rng.next(),
                1 => pushed.saturating_sub(rng.below(DATA_SIZE * 2) as u64),
                _ => pushed.saturating_sub(rng.below(DATA_SIZE) as u64) & !7,
            };
            write_u64(&map, TAIL_OFFSET, tail);
            let size = rng.below(record_size_max + 8);
            match push_maybe_gathered(&mut producer, &vec![9; size], &mut rng) {
                Ok(()) => pushed += 1,
                Err(PushError::Full | PushError::TooLarge { .. } | PushError::Corrupt(_)) => {}
            }
        }
    }
}

#[test]
fn a_session_closes_on_a_corrupt_ring() {
    let seed = seed("session");
    let name = format!("ipc-shm-fuzz-{}", std::process::id());
    let config = ServerConfig {
        data_size: 64 << 10,
        record_size_max: 16 << 10,
        handshake_timeout: Duration::from_secs(2),
    };
    let server = Server::bind_with(&name, AllowList::root_only(), config).unwrap();
    let mut buf = vec![0u8; 16 << 10];
    let sessions = (iterations() / 30).max(20);
    for case in 0..sessions {
        let mut rng = Rng::new(seed, case);
        let connecting = {
            let name = name.clone();
            std::thread::spawn(move || Client::connect(&name))
        };
        let mut server_side = server.accept().unwrap();
        let mut client = connecting.join().unwrap().unwrap();
        for _ in 0..rng.below(5) {
            client.try_send(&vec![5; rng.below(200)]).unwrap();
        }
        let map = client.outgoing_mapping().clone();
        for _ in 0..1 + rng.below(6) {
            let offset = DATA_OFFSET + rng.below(1024 / 8) * 8;
            let position = (offset - DATA_OFFSET) as u64;
            let word = if rng.chance(2) {
                rng.next()
            } else {
                plausible_header(&mut rng, position, 16 << 10)
            };
            write_u64(&map, offset, word);
        }
        let mut closed = false;
        for _ in 0..10 {
            match server_side.try_recv(&mut buf) {
                Ok(_) | Err(SessionError::Empty | SessionError::BufferTooSmall { .. }) => {}
                Err(SessionError::Corrupt(_)) => {
                    assert!(server_side.is_closed(), "case {case}");
                    assert!(
                        matches!(server_side.try_recv(&mut buf), Err(SessionError::Closed)),
                        "case {case}"
                    );
                    closed = true;
                    break;
                }
                Err(e) => panic!("case {case}: {e}"),
            }
        }
        if closed {
            let timeout = Some(Duration::from_secs(10));
            let got = client.recv_timeout(&mut buf, ipc_shm::WaitMode::Blocking, timeout);
            assert!(matches!(got, Err(SessionError::PeerGone)), "case {case}");
        }
    }
}

#[test]
fn handshake_decoders_take_any_bytes() {
    let seed = seed("handshake");
    for case in 0..iterations() * 10 {
        let mut rng = Rng::new(seed, case);
        let len = match rng.below(4) {
            0 => HELLO_SIZE,
            1 => REPLY_SIZE,
            _ => rng.below(64),
        };
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.chance(2) && len >= 8 {
            // Our magic in front more often than chance, to get past the first check.
            bytes[..8].copy_from_slice(&encode_hello());
        }
        assert_eq!(
            decode_hello(&bytes).is_some(),
            len == HELLO_SIZE,
            "case {case}"
        );
        let reply = decode_reply(&bytes);
        assert_eq!(reply.is_some(), len == REPLY_SIZE, "case {case}");
        if let Some(reply) = reply {
            let again = encode_reply(reply.status, reply.uid, reply.gid, reply.server_pid);
            assert_eq!(again[8..], bytes[8..], "case {case}: fields round-trip");
        }
    }
}
