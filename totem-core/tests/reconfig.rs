//! The runtime-change service on an in-memory network: a reload round applied on every member
//! at one point of the stream, refused for a member's reason, for configurations that differ
//! (naming the key), called off by a membership change, by its asker's timeout and by a second
//! request; a key switch announced until every member seals under the new key; kill and
//! shutdown; and a node configured unlike the ring kept out of it, with the differing key
//! named on both sides, while the ring goes on. Every node's invariants are asserted after
//! every input.

mod common;

use totem_core::config::explicit;
use totem_core::{
    ChangeEvent, ChangeKind, ClusterShape, ConfigIdentity, Node, NodeConfig, NodeId, Notice,
    Outcome, Proposal, RoundId, State, TotemSettings,
};

const MS: u64 = 1_000_000;

fn shape(nodes: u32) -> ClusterShape {
    ClusterShape {
        nodelist_count: nodes,
        ..ClusterShape::ALONE
    }
}

fn totem(token: u32, nodes: u32) -> TotemSettings {
    TotemSettings::resolve(
        explicit(&[("token", token), ("token_coefficient", 0)]),
        &shape(nodes),
    )
    .expect("valid settings")
}

fn identity(token: u32, nodes: u32) -> ConfigIdentity {
    ConfigIdentity::from_pairs(
        std::iter::once(("totem.token".to_string(), token.to_string()))
            .chain((1..=nodes).map(|n| (format!("nodelist.{n}"), format!("host-{n}")))),
    )
}

fn node(id: u32, token: u32, nodes: u32) -> Node {
    common::node(NodeConfig {
        identity: identity(token, nodes),
        key_id: 1,
        ..common::config(id, totem(token, nodes), shape(nodes), "reconfig")
    })
}

/// Nodes on a loss-free in-memory network; `alive[i]` false drops everything to and from i.
struct Cluster {
    nodes: Vec<Node>,
    alive: Vec<bool>,
    now: u64,
    changes: Vec<Vec<ChangeEvent>>,
    notices: Vec<Vec<Notice>>,
    /// Regular configurations installed, per node.
    rings: Vec<u32>,
}

impl Cluster {
    fn new(count: u32) -> Cluster {
        let mut c = Cluster {
            nodes: (1..=count).map(|i| node(i, 1000, count)).collect(),
            alive: vec![true; count as usize],
            now: 0,
            changes: vec![Vec::new(); count as usize],
            notices: vec![Vec::new(); count as usize],
            rings: vec![0; count as usize],
        };
        c.run_until(3_000);
        for n in &c.nodes {
            assert_eq!(n.state(), State::Operational);
            assert_eq!(n.members().len(), count as usize);
        }
        c
    }

    fn add(&mut self, node: Node) {
        self.nodes.push(node);
        self.alive.push(true);
        self.changes.push(Vec::new());
        self.notices.push(Vec::new());
        self.rings.push(0);
    }

    /// Runs until simulated time `until_ms` (from now), delivering every datagram at once.
    fn run_for(&mut self, ms: u64) {
        let until = self.now / MS + ms;
        self.run_until(until);
    }

    fn run_until(&mut self, until_ms: u64) {
        let (rings, changes, notices) = (&mut self.rings, &mut self.changes, &mut self.notices);
        common::run_until(
            &mut self.nodes,
            &self.alive,
            &mut self.now,
            until_ms,
            |i, n| {
                while let Some(ev) = n.poll_event() {
                    if let totem_core::Event::Config(c) = ev {
                        if c.kind == totem_core::ConfigKind::Regular {
                            rings[i] += 1;
                        }
                    }
                }
                while let Some(ev) = n.poll_change() {
                    changes[i].push(ev);
                }
                while let Some(notice) = n.poll_notice() {
                    notices[i].push(notice);
                }
            },
        );
    }

    /// Takes the change events each node has seen so far.
    fn take_changes(&mut self) -> Vec<Vec<ChangeEvent>> {
        self.changes
            .iter_mut()
            .map(std::mem::take)
            .collect::<Vec<_>>()
    }

    /// The round every node saw requested (checked to be the same one).
    fn requested(events: &[Vec<ChangeEvent>]) -> RoundId {
        let mut round = None;
        for ev in events {
            let r = ev
                .iter()
                .find_map(|e| match e {
                    ChangeEvent::Requested { round, .. } => Some(*round),
                    _ => None,
                })
                .expect("every member sees the request");
            assert_eq!(*round.get_or_insert(r), r);
        }
        round.expect("members")
    }
}

fn ready(token: u32, nodes: u32, key_id: u32) -> Proposal {
    Proposal::Ready {
        totem: totem(token, nodes),
        shape: shape(nodes),
        identity: identity(token, nodes),
        key_id,
        quorum: None,
    }
}

/// The outcome each node saw for `round`.
fn outcomes(events: &[Vec<ChangeEvent>], round: RoundId) -> Vec<Outcome> {
    events
        .iter()
        .map(|ev| {
            ev.iter()
                .find_map(|e| match e {
                    ChangeEvent::Decided {
                        round: r, outcome, ..
                    } if *r == round => Some(outcome.clone()),
                    _ => None,
                })
                .expect("every member decides")
        })
        .collect()
}

#[test]
fn a_reload_is_applied_on_every_member_at_one_point() {
    let mut c = Cluster::new(3);
    let rings = c.rings.clone();
    let round = c.nodes[0].request_change(ChangeKind::Reload).unwrap();
    c.run_for(100);
    let events = c.take_changes();
    assert_eq!(Cluster::requested(&events), round);
    for n in &mut c.nodes {
        n.propose(round, ready(2000, 3, 1)).unwrap();
        assert!(
            n.propose(round, ready(2000, 3, 1)).is_err(),
            "a member answers once"
        );
    }
    c.run_for(100);
    let events = c.take_changes();
    assert_eq!(outcomes(&events, round), vec![Outcome::Applied; 3]);
    for n in &c.nodes {
        assert_eq!(n.totem().token_ms, 2000);
        assert_eq!(n.identity(), &identity(2000, 3));
        assert_eq!(n.change_round(), None);
    }
    // No ring change, and the ring runs on with the new identity (a node alone with the old
    // one would be kept out).
    c.run_for(5_000);
    assert_eq!(c.rings, rings, "the reload changed no membership");
}

#[test]
fn a_refusal_or_a_differing_configuration_changes_nothing() {
    let mut c = Cluster::new(3);
    let round = c.nodes[0].request_change(ChangeKind::Reload).unwrap();
    c.run_for(100);
    c.take_changes();
    c.nodes[0].propose(round, ready(2000, 3, 1)).unwrap();
    let reason = "/etc/corosync/corosync.conf:3: totem.cluster_name cannot change at runtime";
    c.nodes[1]
        .propose(
            round,
            Proposal::Refused {
                reason: reason.into(),
            },
        )
        .unwrap();
    c.nodes[2].propose(round, ready(2000, 3, 1)).unwrap();
    c.run_for(100);
    let events = c.take_changes();
    let expected = Outcome::Refused {
        reasons: vec![format!("node 2: {reason}")],
    };
    assert_eq!(outcomes(&events, round), vec![expected; 3]);
    for n in &c.nodes {
        assert_eq!(n.totem().token_ms, 1000, "nothing half-applied");
    }

    // Node 3's file says another token.
    let round = c.nodes[1].request_change(ChangeKind::Reload).unwrap();
    c.run_for(100);
    c.take_changes();
    for (i, n) in c.nodes.iter_mut().enumerate() {
        let token = if i == 2 { 4000 } else { 2000 };
        n.propose(round, ready(token, 3, 1)).unwrap();
    }
    c.run_for(100);
    let events = c.take_changes();
    let expected = Outcome::Refused {
        reasons: vec![
            "node 3's configuration differs from node 2's: totem.token: 4000 on node 3, 2000 \
             on node 2"
                .into(),
        ],
    };
    assert_eq!(outcomes(&events, round), vec![expected; 3]);

    // And its authkey file.
    let round = c.nodes[0].request_change(ChangeKind::Reload).unwrap();
    c.run_for(100);
    c.take_changes();
    for (i, n) in c.nodes.iter_mut().enumerate() {
        n.propose(round, ready(2000, 3, if i == 0 { 9 } else { 7 }))
            .unwrap();
    }
    c.run_for(100);
    let events = c.take_changes();
    let Outcome::Refused { reasons } = &outcomes(&events, round)[0] else {
        panic!("refused");
    };
    assert!(
        reasons[0].contains("node 2 would seal under key 00000007 and node 1 under 00000009"),
        "{reasons:?}"
    );
    for n in &c.nodes {
        assert_eq!(n.totem().token_ms, 1000);
        assert_eq!(n.sealing_key(), 1);
    }
}

#[test]
fn a_round_is_called_off_by_a_membership_change_a_timeout_or_another_request() {
    let mut c = Cluster::new(3);
    // Two requests at once: the one ordered second is refused at once, naming the first,
    // which carries on (which one comes first depends on where the token is).
    let a = c.nodes[0].request_change(ChangeKind::Reload).unwrap();
    let b = c.nodes[1].request_change(ChangeKind::Reload).unwrap();
    c.run_for(100);
    let events = c.take_changes();
    let first = Cluster::requested(&events);
    let second = if first == a { b } else { a };
    let Outcome::Refused { reasons } = &outcomes(&events, second)[2] else {
        panic!("the second round is refused");
    };
    let naming = format!(
        "another change (round {first}, asked by node {})",
        first.node
    );
    assert!(reasons[0].contains(&naming), "{reasons:?}");
    // Node 3 never answers: the asker gives up and every member calls it off at one point.
    c.nodes[0].propose(first, ready(2000, 3, 1)).unwrap();
    c.nodes[1].propose(first, ready(2000, 3, 1)).unwrap();
    c.run_for(20_000);
    let events = c.take_changes();
    let expected = Outcome::Refused {
        reasons: vec!["no answer from node(s) 3 within 15 s (is rotord running there?)".into()],
    };
    assert_eq!(outcomes(&events, first), vec![expected; 3]);
    for n in &c.nodes {
        assert_eq!(n.totem().token_ms, 1000);
        assert_eq!(n.change_round(), None);
    }

    // A member dies before answering: the survivors call the round off at the new ring.
    let round = c.nodes[0].request_change(ChangeKind::Reload).unwrap();
    c.run_for(100);
    c.take_changes();
    c.nodes[0].propose(round, ready(2000, 3, 1)).unwrap();
    c.alive[2] = false;
    c.run_for(10_000);
    let events = c.take_changes();
    let outcome = outcomes(&events[..2], round);
    assert_eq!(outcome[0], outcome[1]);
    let Outcome::Refused { reasons } = &outcome[0] else {
        panic!("called off");
    };
    assert!(
        reasons[0].starts_with("the membership changed before every member answered"),
        "{reasons:?}"
    );
    assert_eq!(c.nodes[0].totem().token_ms, 1000);
}

#[test]
fn a_key_switch_is_agreed_once_every_member_seals_under_the_new_key() {
    let mut c = Cluster::new(3);
    let round = c.nodes[2]
        .request_change(ChangeKind::RotateKey {
            path: "/etc/corosync/authkey.new".into(),
        })
        .unwrap();
    c.run_for(100);
    let events = c.take_changes();
    assert!(events.iter().all(|ev| ev.contains(&ChangeEvent::Requested {
        round,
        kind: ChangeKind::RotateKey {
            path: "/etc/corosync/authkey.new".into()
        }
    })));
    for n in &mut c.nodes {
        n.propose(round, ready(1000, 3, 2)).unwrap();
    }
    c.run_for(200);
    let events = c.take_changes();
    for ev in &events {
        let decided = ev
            .iter()
            .position(|e| {
                matches!(
                    e,
                    ChangeEvent::Decided {
                        outcome: Outcome::Applied,
                        ..
                    }
                )
            })
            .expect("applied");
        let agreed = ev
            .iter()
            .position(|e| *e == ChangeEvent::KeyAgreed { key_id: 2 })
            .expect("every member announced the new key");
        assert!(decided < agreed);
    }
    for n in &c.nodes {
        assert_eq!(n.sealing_key(), 2);
    }
}

#[test]
fn kill_and_shutdown_are_ordered_messages() {
    let mut c = Cluster::new(3);
    c.nodes[0].kill(NodeId(3), "Killed by rotor cfg");
    c.nodes[1].announce_shutdown();
    c.run_for(100);
    let events = c.take_changes();
    assert!(events[2].contains(&ChangeEvent::Killed {
        by: NodeId(1),
        reason: "Killed by rotor cfg".into()
    }));
    assert!(!events[0]
        .iter()
        .any(|e| matches!(e, ChangeEvent::Killed { .. })));
    for ev in &events {
        assert!(ev.contains(&ChangeEvent::ShuttingDown { node: NodeId(2) }));
    }
}

#[test]
fn a_node_configured_otherwise_is_kept_out_and_told_which_key_differs() {
    let mut c = Cluster::new(3);
    let rings = c.rings.clone();
    // Node 4 lists four nodes; the ring's members list three.
    c.add(node(4, 1000, 4));
    c.run_for(10_000);
    assert_eq!(c.rings[..3], rings[..], "the ring did not re-form");
    for n in &c.nodes[..3] {
        assert_eq!(n.members().len(), 3);
    }
    assert_eq!(c.nodes[3].members(), &[NodeId(4)]);
    let differs = |notices: &[Notice], node: u32| {
        notices.iter().find_map(|n| match n {
            Notice::ConfigDiffers {
                node: from,
                differences,
                ..
            } if from.0 == node => Some(differences.clone()),
            _ => None,
        })
    };
    assert_eq!(
        differs(&c.notices[3], 1).expect("node 4 names what differs"),
        ["nodelist.4: not set there, host-4 here"]
    );
    assert_eq!(
        differs(&c.notices[0], 4).expect("node 1 names what differs"),
        ["nodelist.4: host-4 there, not set here"]
    );
    // Once the ring reloads with node 4 in its nodelist, node 4 joins.
    let round = c.nodes[0].request_change(ChangeKind::Reload).unwrap();
    c.run_for(100);
    let events = c.take_changes();
    assert_eq!(Cluster::requested(&events[..3]), round);
    for n in &mut c.nodes[..3] {
        n.propose(round, ready(1000, 4, 1)).unwrap();
    }
    c.run_for(10_000);
    for n in &c.nodes {
        assert_eq!(n.members().len(), 4, "node {} sees everyone", n.node_id());
        assert_eq!(n.shape().nodelist_count, 4);
    }
}
