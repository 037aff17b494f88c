//! Endpoints wired together in memory: three form a ring and deliver in one order through the
//! sealer and opener; when one is killed the survivors' diagnostics read as an operator needs
//! them; each kind of foreign sender is reported once per interval, with the datagrams in
//! between counted and dropped.

use std::collections::VecDeque;
use std::convert::Infallible;

use rotor_crypto::{cluster_name_hash, CryptoMode, Keys, Sealer};
use rotor_endpoint::{
    Corosync, Diagnostic, DropCause, Endpoint, EndpointConfig, Foreign, ForeignReport, Received,
    FOREIGN_REPORT_INTERVAL_NS,
};
use totem_core::config::{explicit, frame_overhead_bytes};
use totem_core::{ClusterShape, Event, Guarantee, Instant, Notice, Request, TotemSettings};

const MS: u64 = 1_000_000;
const CLUSTER: &str = "pair";
const GROUP: &[u8] = b"g";

/// Addresses of the in-memory network: node `n` sits at `n`, strangers above 100.
type Addr = u16;

fn keys(byte: u8) -> Keys {
    Keys::from_authkey_bytes(&[byte; 256], CLUSTER).unwrap()
}

fn endpoint(id: u32, count: u32) -> Endpoint<Addr> {
    let peers = (1..=count)
        .filter(|p| *p != id)
        .map(|p| (p, p as Addr))
        .collect();
    let overhead = frame_overhead_bytes(false, CryptoMode::Gcm256.overhead());
    let shape = ClusterShape {
        nodelist_count: count,
        frame_overhead_bytes: overhead,
    };
    let totem = TotemSettings::resolve(
        explicit(&[("token", 1000), ("token_coefficient", 0)]),
        &shape,
    )
    .expect("valid settings");
    let link0 = rotor_endpoint::link::default_link0(&totem);
    let mut e = Endpoint::new(
        EndpointConfig {
            node_id: id,
            local: id as Addr,
            peers,
            group: None,
            keys: keys(7),
            cluster_name: CLUSTER.into(),
            mode: CryptoMode::Gcm256,
            totem,
            frame_overhead_bytes: overhead,
            epoch: 1,
            ring_seq_start: 0,
            seed: u64::from(id),
            link0,
            more_links: Vec::new(),
            link_mode: rotor_endpoint::LinkMode::Passive,
            link_probes: false,
        },
        Instant(0),
    )
    .expect("valid config");
    e.node_mut().set_check_all_invariants(true);
    e
}

struct Net {
    endpoints: Vec<Endpoint<Addr>>,
    alive: Vec<bool>,
    wire: VecDeque<(Addr, Addr, Vec<u8>)>,
    now: u64,
    delivered: Vec<Vec<Vec<u8>>>,
    diagnostics: Vec<Vec<Diagnostic<Addr>>>,
}

impl Net {
    fn new(count: u32) -> Net {
        Net {
            endpoints: (1..=count).map(|id| endpoint(id, count)).collect(),
            alive: vec![true; count as usize],
            wire: VecDeque::new(),
            now: 0,
            delivered: vec![Vec::new(); count as usize],
            diagnostics: vec![Vec::new(); count as usize],
        }
    }

    fn flush(&mut self, i: usize) {
        let from = i as Addr + 1;
        let wire = &mut self.wire;
        let alive = self.alive[i];
        self.endpoints[i]
            .flush(|frame, to| {
                if alive {
                    wire.push_back((from, to, frame.to_vec()));
                }
                Ok::<bool, Infallible>(true)
            })
            .unwrap();
        let e = &mut self.endpoints[i];
        while let Some(ev) = e.poll_event() {
            if let Event::Deliver(d) = ev {
                self.delivered[i].push(d.data.to_vec());
            }
        }
        while let Some(d) = e.poll_diagnostic() {
            self.diagnostics[i].push(d);
        }
    }

    fn run_until(&mut self, until_ms: u64) {
        loop {
            for i in 0..self.endpoints.len() {
                self.flush(i);
            }
            if let Some((from, to, mut bytes)) = self.wire.pop_front() {
                let i = to as usize - 1;
                if self.alive[i] {
                    let now = Instant(self.now);
                    let _ = self.endpoints[i].handle_datagram(now, from, &mut bytes);
                }
                continue;
            }
            let next = self
                .endpoints
                .iter()
                .zip(&self.alive)
                .filter(|(_, a)| **a)
                .filter_map(|(e, _)| e.poll_timeout())
                .min()
                .map_or(u64::MAX, |t| t.0);
            if next > until_ms * MS {
                self.now = until_ms * MS;
                return;
            }
            self.now = next.max(self.now);
            for (e, alive) in self.endpoints.iter_mut().zip(&self.alive) {
                if *alive {
                    e.handle_timeout(Instant(self.now));
                }
            }
        }
    }
}

#[test]
fn three_endpoints_form_a_ring_and_deliver_in_one_order() {
    let mut net = Net::new(3);
    net.run_until(3_000);
    for e in &net.endpoints {
        assert!(e.node().is_operational() && e.node().members().len() == 3);
    }
    for (i, e) in net.endpoints.iter_mut().enumerate() {
        e.node_mut()
            .submit(Request::Join {
                group: GROUP,
                pid: 1,
            })
            .unwrap();
        for k in 0..20u8 {
            e.node_mut()
                .submit(Request::Mcast {
                    group: GROUP,
                    pid: 1,
                    guarantee: if k % 2 == 0 {
                        Guarantee::Agreed
                    } else {
                        Guarantee::Safe
                    },
                    data: &[i as u8, k],
                })
                .unwrap();
        }
    }
    net.run_until(6_000);
    assert_eq!(net.delivered[0].len(), 60, "{:?}", net.delivered[0]);
    assert_eq!(net.delivered[1], net.delivered[0]);
    assert_eq!(net.delivered[2], net.delivered[0]);
    // Sealed and opened on the way, counted by the endpoint.
    for e in &net.endpoints {
        let (opened, sealed) = e.crypto_counters();
        assert!(opened.frames_opened > 0 && sealed.frames_sealed > 0);
        assert!(e.drops().is_empty(), "{:?}", e.drops());
        assert!(e.rotations().count() > 0);
        let mut entries = rotor_endpoint::Sheet::new();
        e.counters(&mut entries);
        for key in [
            "net.frames_in",
            "net.unicast_sends",
            "crypto.frames_opened",
            "srp.delivered",
        ] {
            assert!(entries.get(key) > 0, "{key}");
        }
    }
    // No foreign sender on this network; the ring's membership was logged.
    for d in &net.diagnostics {
        assert!(!d.iter().any(|d| matches!(d, Diagnostic::Foreign(_))));
        assert!(d.iter().any(|d| matches!(
            d,
            Diagnostic::Totem(Notice::Formed { members, .. }) if members.len() == 3
        )));
    }
}

#[test]
fn a_killed_endpoint_is_reported_by_the_survivors() {
    let mut net = Net::new(3);
    net.run_until(3_000);
    net.diagnostics.iter_mut().for_each(Vec::clear);
    net.alive[2] = false;
    net.run_until(10_000);
    for i in 0..2 {
        let lines: Vec<String> = net.diagnostics[i].iter().map(|d| d.to_string()).collect();
        for wanted in [
            "Token has not been received in 750 ms",
            "A new membership (",
            "was formed. Members left: 3",
            "Failed to receive the leave message. failed: 3",
        ] {
            assert!(
                lines.iter().any(|l| l.contains(wanted)),
                "node {}: no line with {wanted:?} in {lines:#?}",
                i + 1
            );
        }
    }
}

/// An endpoint and a stranger's sealer: each foreign frame is handed to the endpoint at `ms`.
struct Target {
    e: Endpoint<Addr>,
}

impl Target {
    fn feed(
        &mut self,
        ms: u64,
        from: Addr,
        mut frame: Vec<u8>,
    ) -> (DropCause, Option<ForeignReport<Addr>>) {
        let cause = match self.e.handle_datagram(Instant(ms * MS), from, &mut frame) {
            Received::Dropped(cause) => cause,
            Received::Accepted { .. } | Received::Probe { .. } => {
                panic!("a foreign frame was accepted")
            }
        };
        let mut reports = Vec::new();
        while let Some(d) = self.e.poll_diagnostic() {
            if let Diagnostic::Foreign(r) = d {
                reports.push(r);
            }
        }
        assert!(reports.len() <= 1, "{reports:?}");
        (cause, reports.pop())
    }
}

fn sealed(sealer: &mut Sealer, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; body.len() + sealer.mode().overhead()];
    let n = sealer.seal(body, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn each_foreign_sender_is_reported_once_per_interval_and_counted() {
    let hash = cluster_name_hash(CLUSTER);
    let interval_ms = FOREIGN_REPORT_INTERVAL_NS / MS;
    let mut t = Target { e: endpoint(1, 3) };
    let mut wrong_key = Sealer::new(&keys(8), CryptoMode::Gcm256, hash, 2, 1);
    let mut forger = Sealer::new(&keys(8), CryptoMode::Gcm256, hash, 3, 1);
    let mut twin = Sealer::new(&keys(7), CryptoMode::Gcm256, hash, 1, 1);
    let mut other_cluster = Sealer::new(&keys(7), CryptoMode::Gcm256, hash ^ 1, 2, 1);
    let mut stranger = Sealer::new(&keys(7), CryptoMode::Gcm256, hash, 9, 1);
    let mut gmac = Sealer::new(&keys(7), CryptoMode::Gmac, hash, 3, 1);
    let mut knet_ping = vec![0x01, 0x81, 0x00, 0x04, 0x01, 0x00];
    knet_ping.extend_from_slice(&[0; 30]);
    let mut totem_join = vec![0x70, 0xC0, 0x03, 0x03, 0x00, 5, 0, 0, 0, 0, 0, 0, 0];
    totem_join.extend_from_slice(&[0; 40]);

    type Make<'a> = Box<dyn FnMut() -> Vec<u8> + 'a>;
    let cases: Vec<(&str, Make, DropCause, Foreign)> = vec![
        (
            "wrong key",
            Box::new(|| sealed(&mut wrong_key, b"x")),
            DropCause::Crypto(rotor_crypto::OpenError::UnknownKey),
            Foreign::UnknownKey {
                node: 2,
                key_id: keys(8).id(),
                ours: keys(7).id(),
            },
        ),
        (
            "wrong key claiming ours",
            Box::new(|| {
                let mut frame = sealed(&mut forger, b"x");
                frame[24..28].copy_from_slice(&keys(7).id().to_be_bytes());
                frame
            }),
            DropCause::Crypto(rotor_crypto::OpenError::InvalidDigest),
            Foreign::InvalidDigest,
        ),
        (
            "duplicate node id",
            Box::new(|| sealed(&mut twin, b"x")),
            DropCause::Crypto(rotor_crypto::OpenError::OwnFrame),
            Foreign::DuplicateNodeId { node: 1 },
        ),
        (
            "another cluster",
            Box::new(|| sealed(&mut other_cluster, b"x")),
            DropCause::Crypto(rotor_crypto::OpenError::ForeignCluster),
            Foreign::OtherCluster {
                cluster_hash: hash ^ 1,
                ours: hash,
            },
        ),
        (
            "not in the nodelist",
            Box::new(|| sealed(&mut stranger, b"x")),
            DropCause::UnconfiguredSender,
            Foreign::NotInNodelist { node: 9 },
        ),
        (
            "another crypto mode",
            Box::new(|| sealed(&mut gmac, b"x")),
            DropCause::Crypto(rotor_crypto::OpenError::ModeMismatch),
            Foreign::CryptoModeMismatch { node: 3 },
        ),
        (
            "corosync knet",
            Box::new(|| knet_ping.clone()),
            DropCause::Crypto(rotor_crypto::OpenError::BadMagic),
            Foreign::Corosync(Corosync::Knet { node: 4 }),
        ),
        (
            "corosync udpu",
            Box::new(|| totem_join.clone()),
            DropCause::Crypto(rotor_crypto::OpenError::BadMagic),
            Foreign::Corosync(Corosync::TotemUdp { node: 5 }),
        ),
        (
            "garbage",
            Box::new(|| b"hello, is this the cluster port?".to_vec()),
            DropCause::Crypto(rotor_crypto::OpenError::BadMagic),
            Foreign::Unrecognised,
        ),
    ];
    let mut at = 0;
    for (name, mut make, cause, sender) in cases {
        let from = 200;
        // A kind is limited on its own: every case starts with a report.
        let (got, report) = t.feed(at, from, make());
        assert_eq!(got, cause, "{name}");
        let report = report.unwrap_or_else(|| panic!("{name}: no report"));
        assert_eq!(report.sender, sender, "{name}");
        assert_eq!((report.from, report.unreported), (from, 0), "{name}");
        // Within the interval: dropped and counted, not reported.
        for k in 1..=3 {
            let (got, report) = t.feed(at + k, from, make());
            assert_eq!(got, cause, "{name}");
            assert_eq!(report, None, "{name}: reported again within the interval");
        }
        // After it: reported again, with the count of the rest.
        let (_, report) = t.feed(at + interval_ms, from, make());
        let report = report.unwrap_or_else(|| panic!("{name}: no report after the interval"));
        assert_eq!(report.unreported, 3, "{name}");
        assert!(
            report
                .to_string()
                .contains("(3 more since the last report)"),
            "{name}"
        );
        at += 2 * interval_ms;
    }
    let d = t.e.drops();
    assert_eq!(d.get("invalid_digest"), 5);
    assert_eq!(d.get("unknown_key"), 5);
    assert_eq!(d.get("own_frame"), 5);
    assert_eq!(d.get("foreign_cluster"), 5);
    assert_eq!(d.get("unconfigured_sender"), 5);
    assert_eq!(d.get("mode_mismatch"), 5);
    assert_eq!(d.get("bad_magic"), 15);
}

#[test]
fn own_frames_are_not_a_duplicate_from_our_own_address_or_under_another_key() {
    let hash = cluster_name_hash(CLUSTER);
    let mut t = Target { e: endpoint(1, 3) };
    // Our own multicast looped back (from our own address): counted, not reported.
    let mut own = Sealer::new(&keys(7), CryptoMode::Gcm256, hash, 1, 1);
    let (cause, report) = t.feed(0, 1, sealed(&mut own, b"x"));
    assert_eq!(cause, DropCause::Crypto(rotor_crypto::OpenError::OwnFrame));
    assert_eq!(report, None);
    // Our id without our key (a forgery): counted, not reported as a duplicate.
    let mut forged = Sealer::new(&keys(9), CryptoMode::Gcm256, hash, 1, 1);
    let (_, report) = t.feed(1, 200, sealed(&mut forged, b"x"));
    assert_eq!(report, None);
    assert_eq!(t.e.drops().get("own_frame"), 2);
}
