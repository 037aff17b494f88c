//! Two endpoints with two links each, wired in memory with the link probes on: a send the
//! transport refuses for link 0 (its interface down) takes that link down at once and the very
//! frame goes out on link 1, so a message submitted after the cut is delivered without waiting
//! for link 0's ping timeout. A reload round that removes link 1 and one that adds it back
//! say what the embedding must do to its sockets (`take_link_change`) at the point they apply,
//! and the link comes up again.

use std::collections::VecDeque;
use std::convert::Infallible;

use rotor_crypto::{CryptoMode, Keys};
use rotor_endpoint::{
    Change, ChangeInput, Diagnostic, Endpoint, EndpointConfig, LinkConfig, LinkMode, LinkSettings,
    LinkStep, SendOutcome,
};
use totem_core::config::{explicit, frame_overhead_bytes};
use totem_core::{
    ChangeEvent, ChangeKind, ClusterShape, Event, Guarantee, Instant, Outcome, Request, RoundId,
    TotemSettings,
};

const MS: u64 = 1_000_000;
const CLUSTER: &str = "links";
const GROUP: &[u8] = b"g";

/// Node `n` is at `n` on link 0 and at `50 + n` on link 1.
type Addr = u16;

/// Node `id`'s link `n`: its address there and the other node's.
fn link_config(id: u32, n: u8, token_ms: u32) -> LinkConfig<Addr> {
    let other = 3 - id;
    let base = 50 * Addr::from(n);
    LinkConfig {
        settings: LinkSettings::resolve(n, token_ms, None, None, None, None, None).unwrap(),
        local: base + id as Addr,
        peers: vec![(other, base + other as Addr)],
    }
}

fn endpoint(id: u32, totem: TotemSettings) -> Endpoint<Addr> {
    let other = 3 - id;
    let overhead = frame_overhead_bytes(false, CryptoMode::Gcm256.overhead());
    let token_ms = totem.token_ms;
    let link = |n: u8| LinkSettings::resolve(n, token_ms, None, None, None, None, None);
    Endpoint::new(
        EndpointConfig {
            node_id: id,
            local: id as Addr,
            peers: vec![(other, other as Addr)],
            group: None,
            keys: Keys::from_authkey_bytes(&[7; 256], CLUSTER).unwrap(),
            cluster_name: CLUSTER.into(),
            mode: CryptoMode::Gcm256,
            totem,
            frame_overhead_bytes: overhead,
            epoch: 1,
            ring_seq_start: 0,
            seed: u64::from(id),
            link0: link(0).unwrap(),
            more_links: vec![link_config(id, 1, token_ms)],
            link_mode: LinkMode::Passive,
            link_probes: true,
        },
        Instant(0),
    )
    .expect("valid config")
}

struct Net {
    endpoints: Vec<Endpoint<Addr>>,
    /// (from, to, link position, frame).
    wire: VecDeque<(Addr, Addr, usize, Vec<u8>)>,
    now: u64,
    /// Node 1's link 0 refuses every send (as the kernel does with its interface down).
    cut: bool,
    /// Link 0 loses every frame, both ways (a switch dropping them).
    silent: bool,
    /// When each node first logged its link 0 to the other down.
    down_at: [Option<u64>; 2],
    /// Frames node 1 put on each link, by position.
    sent_by_1: [u64; 2],
    /// Node 1's first frame refused on link 0, and whether the send right after it in the
    /// same flush was the same sealed frame on link 1.
    first_refusal: Option<(Vec<u8>, bool)>,
    delivered: Vec<Vec<Vec<u8>>>,
    diagnostics: Vec<String>,
    /// Each node's runtime changes, in order.
    changes: Vec<Vec<Change>>,
}

impl Net {
    fn flush(&mut self, i: usize) {
        let from = i as Addr + 1;
        let (wire, cut, silent, sent) =
            (&mut self.wire, self.cut, self.silent, &mut self.sent_by_1);
        let first = &mut self.first_refusal;
        let mut previous_refused = false;
        self.endpoints[i]
            .flush_links(|frame, link, to| {
                let refused = i == 0 && link == 0 && cut;
                if i == 0 {
                    if previous_refused {
                        if let Some((bytes, resent)) = first.as_mut().filter(|f| !f.1) {
                            *resent = link == 1 && bytes == frame;
                        }
                    }
                    previous_refused = refused;
                }
                if refused {
                    first.get_or_insert_with(|| (frame.to_vec(), false));
                    return Ok::<_, Infallible>(SendOutcome::LinkUnusable);
                }
                if i == 0 {
                    sent[link] += 1;
                }
                if !(silent && link == 0) {
                    wire.push_back((from, to, link, frame.to_vec()));
                }
                Ok(SendOutcome::Sent)
            })
            .unwrap();
        let e = &mut self.endpoints[i];
        while let Some(ev) = e.poll_event() {
            if let Event::Deliver(d) = ev {
                self.delivered[i].push(d.data.to_vec());
            }
        }
        while let Some(c) = e.poll_change() {
            self.changes[i].push(c);
        }
        while let Some(d) = e.poll_diagnostic() {
            if let Diagnostic::Link(l) = d {
                if l.link == 0 && !l.up {
                    self.down_at[i].get_or_insert(self.now);
                }
                self.diagnostics.push(format!("node {}: {l}", i + 1));
            }
        }
    }

    /// Runs until `done` holds or `until_ns` passes.
    fn run(&mut self, until_ns: u64, done: impl Fn(&Net) -> bool) {
        loop {
            for i in 0..2 {
                self.flush(i);
            }
            if done(self) {
                return;
            }
            if let Some((from, to, link, mut bytes)) = self.wire.pop_front() {
                let to = if to > 50 { to - 50 } else { to };
                let now = Instant(self.now);
                let _ = self.endpoints[usize::from(to) - 1].handle_datagram_on(
                    now,
                    link,
                    if link == 1 { from + 50 } else { from },
                    &mut bytes,
                );
                continue;
            }
            let next = self
                .endpoints
                .iter()
                .filter_map(|e| e.poll_timeout())
                .min()
                .map_or(u64::MAX, |t| t.0);
            assert!(next <= until_ns, "nothing done by {until_ns} ns");
            self.now = next.max(self.now);
            for e in &mut self.endpoints {
                e.handle_timeout(Instant(self.now));
            }
        }
    }
}

/// Two endpoints with a ring formed, both links up and a group joined.
fn ready() -> Net {
    let shape = ClusterShape {
        nodelist_count: 2,
        frame_overhead_bytes: frame_overhead_bytes(false, CryptoMode::Gcm256.overhead()),
    };
    let totem = TotemSettings::resolve(
        explicit(&[("token", 1000), ("token_coefficient", 0)]),
        &shape,
    )
    .unwrap();
    let mut net = Net {
        endpoints: vec![endpoint(1, totem.clone()), endpoint(2, totem)],
        wire: VecDeque::new(),
        now: 0,
        cut: false,
        silent: false,
        down_at: [None; 2],
        sent_by_1: [0; 2],
        first_refusal: None,
        delivered: vec![Vec::new(); 2],
        diagnostics: Vec::new(),
        changes: vec![Vec::new(); 2],
    };
    net.run(10_000 * MS, |n| {
        n.endpoints.iter().all(|e| e.node().is_operational())
            && (0..2).all(|l| n.endpoints[0].links().connected(2, l))
    });
    for e in &mut net.endpoints {
        e.node_mut()
            .submit(Request::Join {
                group: GROUP,
                pid: 1,
            })
            .unwrap();
    }
    net.run(20_000 * MS, |n| n.delivered.iter().all(|d| d.is_empty()));
    net
}

fn mcast(net: &mut Net, data: &[u8]) {
    net.endpoints[0]
        .node_mut()
        .submit(Request::Mcast {
            group: GROUP,
            pid: 1,
            guarantee: Guarantee::Agreed,
            data,
        })
        .unwrap();
}

#[test]
fn a_link_the_kernel_refuses_is_down_at_once_and_the_frame_goes_on_the_next() {
    let mut net = ready();
    // Passive with equal priorities: link 0 carries.
    assert!(net.sent_by_1[0] > 0);
    let on_link1_before = net.sent_by_1[1];
    net.cut = true;
    let cut_at = net.now;
    mcast(&mut net, b"after the cut");
    net.run(cut_at + 20_000 * MS, |n| {
        n.delivered[1].iter().any(|d| d == b"after the cut")
    });
    // Delivered before link 0's ping timeout could have noticed anything.
    let timeout_ns = u64::from(
        net.endpoints[0]
            .links()
            .settings()
            .next()
            .unwrap()
            .ping_timeout_ms,
    ) * MS;
    assert!(
        net.now < cut_at + timeout_ns,
        "delivered at {} ns after the cut",
        net.now - cut_at
    );
    assert!(net.sent_by_1[1] > on_link1_before, "frames went on link 1");
    // The frame refused on link 0 went on link 1 at once, the same sealed bytes.
    assert!(
        net.first_refusal.unwrap().1,
        "the refused frame was not sent again on link 1"
    );
    assert!(!net.endpoints[0].links().connected(2, 0));
    assert!(net.endpoints[0].links().connected(2, 1));
    let h = net.endpoints[0].links().peer(2).unwrap().links[0].health;
    assert!(h.tx_data_errors > 0 && h.down_count == 1, "{h:?}");
    assert!(
        net.diagnostics
            .contains(&"node 1: link: host: 2 link: 0 is down".to_owned()),
        "{:?}",
        net.diagnostics
    );
}

#[test]
fn the_token_goes_again_as_soon_as_a_silent_link_times_out() {
    let mut net = ready();
    // Keep the ring busy so a token is in flight when link 0 goes silent.
    mcast(&mut net, b"before");
    net.run(net.now + 1_000 * MS, |n| {
        n.delivered[1].iter().any(|d| d == b"before")
    });
    net.silent = true;
    let cut_at = net.now;
    mcast(&mut net, b"after the cut");
    net.run(cut_at + 20_000 * MS, |n| {
        n.delivered
            .iter()
            .all(|d| d.iter().any(|d| d == b"after the cut"))
    });
    let seen = net
        .down_at
        .iter()
        .map(|d| d.expect("both saw link 0 down"))
        .max()
        .unwrap();
    // Within a millisecond of the later of the two detections, not at the token's
    // retransmit timer (backed off to its ceiling over the silence).
    assert!(
        net.now <= seen + MS,
        "delivered {} µs after link 0 was seen down",
        (net.now - seen) / 1_000
    );
    assert!(net.endpoints.iter().all(|e| e.node().members().len() == 2));
}

/// A reload round asked by node 1, once every node was asked for its answer.
fn ask(net: &mut Net) -> RoundId {
    for c in &mut net.changes {
        c.clear();
    }
    let round = net.endpoints[0].request_change(ChangeKind::Reload).unwrap();
    let requested = |n: &Net| {
        n.changes.iter().all(|c| {
            c.iter().any(
                |c| matches!(c, Change::Core(ChangeEvent::Requested { round: r, .. }) if *r == round),
            )
        })
    };
    net.run(net.now + 10_000 * MS, requested);
    round
}

/// Node `id`'s ready answer to `round`: the same nodelist and settings, `links`.
fn answer(net: &mut Net, round: RoundId, id: u32, links: &[u8]) {
    let e = &mut net.endpoints[id as usize - 1];
    let totem = e.node().totem().clone();
    let token_ms = totem.token_ms;
    let input = ChangeInput::Ready {
        totem,
        nodelist: vec![(1, 1), (2, 2)],
        keys: None,
        quorum: None,
        links: Some(
            links
                .iter()
                .map(|&n| link_config(id, n, token_ms))
                .collect(),
        ),
    };
    e.propose(round, input).unwrap();
}

/// A reload round that both nodes answer with `links`; each node's steps.
fn reload_links(net: &mut Net, links: &[u8]) -> Vec<Vec<LinkStep>> {
    let round = ask(net);
    for id in 1..=2u32 {
        answer(net, round, id, links);
    }
    let decided = |n: &Net| {
        n.changes.iter().all(|c| {
            c.iter().any(|c| {
                matches!(
                    c,
                    Change::Core(ChangeEvent::Decided { round: r, outcome: Outcome::Applied, .. })
                        if *r == round
                )
            })
        })
    };
    net.run(net.now + 10_000 * MS, decided);
    net.endpoints
        .iter_mut()
        .map(|e| e.take_link_change())
        .collect()
}

#[test]
fn a_reload_removes_a_link_and_another_adds_it_back() {
    let mut net = ready();
    let removed = reload_links(&mut net, &[0]);
    for steps in &removed {
        assert_eq!(
            steps,
            &[LinkStep::Removed {
                number: 1,
                position: 1
            }]
        );
    }
    assert!(net.endpoints.iter().all(|e| e.links().count() == 1));
    assert!(net.endpoints[0].take_link_change().is_empty(), "taken once");
    mcast(&mut net, b"one link");
    net.run(net.now + 10_000 * MS, |n| {
        n.delivered[1].iter().any(|d| d == b"one link")
    });
    let before = net.sent_by_1[1];
    let added = reload_links(&mut net, &[0, 1]);
    for steps in &added {
        assert_eq!(
            steps,
            &[LinkStep::Added {
                number: 1,
                position: 1
            }]
        );
    }
    // Pinged on the new link until it is up, with no membership change.
    net.run(net.now + 10_000 * MS, |n| {
        n.endpoints[0].links().connected(2, 1) && n.endpoints[1].links().connected(1, 1)
    });
    assert!(net.sent_by_1[1] > before);
    assert!(net.endpoints.iter().all(|e| e.node().members().len() == 2));
    // A round that would move this node's address on a link it keeps is refused by it.
    let round = ask(&mut net);
    let e = &mut net.endpoints[0];
    let totem = e.node().totem().clone();
    let mut moved = link_config(1, 1, totem.token_ms);
    moved.local = 99;
    let input = ChangeInput::Ready {
        totem,
        nodelist: vec![(1, 1), (2, 2)],
        keys: None,
        quorum: None,
        links: Some(vec![link_config(1, 0, 1000), moved]),
    };
    e.propose(round, input).unwrap();
    answer(&mut net, round, 2, &[0, 1]);
    let refused = |n: &Net| {
        n.changes[0].iter().any(|c| {
            matches!(
                c,
                Change::Core(ChangeEvent::Decided { round: r, outcome: Outcome::Refused { reasons }, .. })
                    if *r == round && reasons.iter().any(|r| r.contains("link 1: this node's address would change from 51 to 99"))
            )
        })
    };
    net.run(net.now + 10_000 * MS, refused);
    assert!(net.endpoints[0].take_link_change().is_empty());
}
