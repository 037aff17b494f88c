//! Deterministic fuzzing of the quorum decoders: libquorum's and libvotequorum's records
//! (what a client writes into rotord) and the control socket's quorum messages (what a
//! dataplane sends rotord and back). A seeded xorshift generator feeds random bytes, bit
//! flips, truncations and extensions of valid records; nothing may panic, and whatever
//! decodes must encode back to a record that decodes to the same value.
//!
//! - `cargo test -p rotor-proto --test fuzz_quorum` runs 20,000 cases per target.
//! - `ROTOR_FUZZ_ITERS=1000000 cargo test --release -p rotor-proto --test fuzz_quorum` runs
//!   longer; `ROTOR_FUZZ_SEED=<n>` replays a run (each target prints its seed, a failure its
//!   case).

use rotor_proto::control::{FromDataplane, ToDataplane};
use rotor_proto::dataplane_quorum::{
    NodeRecord, QuorumOp, QuorumReply, QuorumState, QuorumUpdate, TieBreakerSetting,
};
use rotor_proto::quorum as pq;
use rotor_proto::votequorum as pv;
use rotor_proto::Status;

const ITERS_DEFAULT: u64 = 20_000;

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
        .unwrap_or(0x5eed_9a07_0000_0001);
    eprintln!("fuzz target={target} seed={seed} iters={}", iterations());
    seed
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, case: u64) -> Rng {
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
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A valid record, mutated (or left alone, or replaced by noise).
fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut b = valid.to_vec();
    match rng.below(6) {
        0 => {}
        1 => {
            let n = rng.below(64);
            b = (0..n).map(|_| rng.next() as u8).collect();
            if n >= 2 && rng.below(2) == 0 {
                // A known op with random fields.
                b[..2].copy_from_slice(&valid[..2]);
            }
        }
        2 => b.truncate(rng.below(b.len() + 1)),
        3 => {
            for _ in 0..=rng.below(4) {
                b.push(rng.next() as u8);
            }
        }
        _ => {
            for _ in 0..=rng.below(4) {
                if !b.is_empty() {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
            if rng.below(4) == 0 && b.len() >= 12 {
                // A count or length field turned huge.
                let i = 8 + rng.below(b.len() - 11);
                b[i..i + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            }
        }
    }
    b
}

fn run(target: &str, samples: &[Vec<u8>], check: impl Fn(&[u8])) {
    let seed = seed(target);
    for case in 0..iterations() {
        let mut rng = Rng::new(seed, case);
        let pick = rng.below(samples.len());
        let bytes = mutate(&mut rng, &samples[pick]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&bytes)));
        assert!(
            result.is_ok(),
            "{target}: case {case} panicked on {bytes:02x?} (replay: ROTOR_FUZZ_SEED={seed})"
        );
    }
}

#[test]
fn libquorum_records() {
    let mut samples = Vec::new();
    for req in [
        pq::Request::GetQuorate,
        pq::Request::TrackStart { flags: 3 },
        pq::Request::ModelGetType { model: 1 },
    ] {
        let mut b = Vec::new();
        req.encode(1, &mut b);
        samples.push(b);
    }
    for ev in [
        pq::Event::Quorum {
            quorate: true,
            ring: pq::RingId { nodeid: 1, seq: 4 },
            members: vec![1, 2, 3],
        },
        pq::Event::Nodelist {
            ring: pq::RingId { nodeid: 1, seq: 4 },
            members: vec![1, 2],
            joined: vec![2],
            left: vec![3],
        },
    ] {
        let mut b = Vec::new();
        ev.encode(&mut b);
        samples.push(b);
    }
    run("libquorum", &samples, |bytes| {
        if let Ok((id, req)) = pq::Request::decode(bytes) {
            let mut again = Vec::new();
            req.encode(id, &mut again);
            assert_eq!(pq::Request::decode(&again), Ok((id, req)));
        }
        if let Ok(ev) = pq::Event::decode(bytes) {
            let mut again = Vec::new();
            ev.encode(&mut again);
            assert_eq!(pq::Event::decode(&again), Ok(ev));
        }
    });
}

#[test]
fn libvotequorum_records() {
    let mut samples = Vec::new();
    for req in [
        pv::Request::GetInfo { node: 2 },
        pv::Request::SetVotes { node: 2, votes: 3 },
        pv::Request::TrackStart {
            context: 9,
            flags: 2,
        },
        pv::Request::QdeviceUpdate {
            old: "Qdevice",
            new: "Other",
        },
        pv::Request::QdevicePoll {
            name: "Qdevice",
            cast_vote: true,
            ring: pv::RingId { nodeid: 1, seq: 8 },
        },
    ] {
        let mut b = Vec::new();
        req.encode(7, &mut b);
        samples.push(b);
    }
    for ev in [
        pv::Event::Status {
            req_id: 1,
            status: Status::InvalidParam,
            message: "no".into(),
        },
        pv::Event::Info {
            req_id: 2,
            status: Status::Ok,
            info: pv::Info {
                node_id: 1,
                qdevice_name: "Qdevice".into(),
                ..pv::Info::default()
            },
        },
        pv::Event::Quorum {
            context: 3,
            quorate: false,
            nodes: vec![(1, 1), (2, 2)],
        },
        pv::Event::Nodelist {
            context: 3,
            ring: pv::RingId { nodeid: 1, seq: 8 },
            nodes: vec![1],
        },
    ] {
        let mut b = Vec::new();
        ev.encode(&mut b);
        samples.push(b);
    }
    run("libvotequorum", &samples, |bytes| {
        if let Ok((id, req)) = pv::Request::decode(bytes) {
            let mut again = Vec::new();
            req.encode(id, &mut again);
            assert_eq!(pv::Request::decode(&again), Ok((id, req)));
        }
        if let Ok(ev) = pv::Event::decode(bytes) {
            let mut again = Vec::new();
            ev.encode(&mut again);
            assert_eq!(pv::Event::decode(&again), Ok(ev));
        }
    });
}

#[test]
fn control_quorum_messages() {
    let mut samples = Vec::new();
    let mut push_to = |m: ToDataplane| {
        let mut b = Vec::new();
        m.encode(&mut b);
        samples.push(b);
    };
    push_to(ToDataplane::Quorum {
        request: 3,
        op: QuorumOp::QdeviceRename {
            old: "a".into(),
            new: "b".into(),
        },
    });
    push_to(ToDataplane::Quorum {
        request: 4,
        op: QuorumOp::SetExpected(5),
    });
    for m in [
        FromDataplane::QuorumReply(QuorumReply {
            request: 1,
            status: Status::Exist,
            message: "taken".into(),
        }),
        FromDataplane::QuorumUpdate(QuorumUpdate::SyncStarted {
            ring_rep: 1,
            ring_seq: 4,
            members: vec![1, 2],
            joined: vec![2],
            left: vec![],
        }),
        FromDataplane::QuorumUpdate(QuorumUpdate::NodeStates {
            quorate: true,
            nodes: vec![(1, 1)],
        }),
        FromDataplane::QuorumState(Box::new(QuorumState {
            node: 1,
            quorate: true,
            quorum: 2,
            ring_rep: 1,
            ring_seq: 4,
            members: vec![1, 2, 3],
            nodes: vec![NodeRecord {
                node: 1,
                state: 1,
                votes: 1,
                expected_votes: 3,
                flags: 9,
            }],
            qdevice_votes: 1,
            qdevice_name: "q".into(),
            two_node: false,
            wait_for_all: true,
            wait_for_all_status: false,
            last_man_standing: false,
            auto_tie_breaker: TieBreakerSetting::List(vec![2, 1]),
            allow_downscale: false,
            expected_votes_tracking: true,
            ev_barrier: 3,
            ev_tracking_barrier: 3,
            lowest_node_id: Some(1),
            highest_node_id: Some(3),
            qdevice_can_operate: true,
            qdevice_master_wins: false,
        })),
    ] {
        let mut b = Vec::new();
        m.encode(&mut b);
        samples.push(b);
    }
    run("control quorum", &samples, |bytes| {
        if let Ok(m) = ToDataplane::decode(bytes) {
            let mut again = Vec::new();
            m.encode(&mut again);
            assert_eq!(ToDataplane::decode(&again), Ok(m));
        }
        if let Ok(m) = FromDataplane::decode(bytes) {
            let mut again = Vec::new();
            m.encode(&mut again);
            assert_eq!(FromDataplane::decode(&again), Ok(m));
        }
    });
}
