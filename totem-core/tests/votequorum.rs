//! votequorum on a hand-driven total order: each partition is a bus that delivers every
//! message its members multicast to all of them in one order, with transitional and regular
//! configurations as the SRP gives them. The rules of votequorum(5) one by one — majority,
//! highest expected votes, wait_for_all, two_node, last_man_standing, auto_tie_breaker,
//! allow_downscale, expected_votes_tracking, the quorum device — and the requests' refusals.
//! The simulator runs the same state machine under the real protocol (sim/src/quorum.rs).

use std::collections::BTreeMap;

use totem_core::srp::{ConfigChange, ConfigKind};
use totem_core::votequorum::{
    Answer, NodeState, QuorumError, QuorumEvent, QuorumNotice, QuorumRequest, QuorumSettings,
    TieBreaker, Votequorum,
};
use totem_core::{Instant, NodeId, RingId};

fn settings(nodes: u32) -> QuorumSettings {
    QuorumSettings {
        expected_votes: None,
        nodelist_expected_votes: Some(nodes),
        votes: 1,
        two_node: false,
        wait_for_all: false,
        wait_for_all_follows_two_node: true,
        last_man_standing: false,
        last_man_standing_window_ms: 10_000,
        auto_tie_breaker: TieBreaker::Off,
        allow_downscale: false,
        expected_votes_tracking: false,
        qdevice: None,
    }
}

/// Nodes 1..=n and the partitions they are in.
struct Cluster {
    nodes: BTreeMap<u32, Votequorum>,
    /// Each node's current partition (its ring's members).
    ring_of: BTreeMap<u32, Vec<u32>>,
    seq: u64,
    now: u64,
    events: BTreeMap<u32, Vec<QuorumEvent>>,
}

impl Cluster {
    fn new(n: u32, s: impl Fn(u32) -> QuorumSettings) -> Cluster {
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            ring_of: BTreeMap::new(),
            seq: 0,
            now: 0,
            events: BTreeMap::new(),
        };
        for id in 1..=n {
            c.nodes
                .insert(id, Votequorum::new(NodeId(id), s(id), 0, Instant(0)));
            c.ring_of.insert(id, vec![id]);
            c.events.insert(id, Vec::new());
        }
        c.collect();
        c
    }

    fn collect(&mut self) {
        for (id, vq) in &mut self.nodes {
            while let Some(e) = vq.poll_event() {
                self.events.get_mut(id).unwrap().push(e);
            }
        }
    }

    /// The cluster splits into (or merges to) `parts`; each part forms a ring and syncs.
    fn form(&mut self, parts: &[&[u32]]) {
        for part in parts {
            self.seq += 4;
            let ring = RingId {
                seq: self.seq,
                rep: part[0],
            };
            let members: Vec<NodeId> = part.iter().map(|&i| NodeId(i)).collect();
            let mut bus: Vec<(u32, Vec<u8>)> = Vec::new();
            for &id in part.iter() {
                let old = self.ring_of[&id].clone();
                let trans: Vec<NodeId> = old
                    .iter()
                    .filter(|o| part.contains(o))
                    .map(|&o| NodeId(o))
                    .collect();
                let vq = self.nodes.get_mut(&id).unwrap();
                vq.set_now(Instant(self.now));
                vq.on_config(&ConfigChange {
                    kind: ConfigKind::Transitional,
                    ring: RingId { seq: 0, rep: id },
                    next_ring: ring,
                    members: trans.clone(),
                    joined: Vec::new(),
                    left: old
                        .iter()
                        .filter(|o| !part.contains(o))
                        .map(|&o| NodeId(o))
                        .collect(),
                });
                let sync = vq.on_config(&ConfigChange {
                    kind: ConfigKind::Regular,
                    ring,
                    next_ring: ring,
                    members: members.clone(),
                    joined: members
                        .iter()
                        .copied()
                        .filter(|m| !trans.contains(m))
                        .collect(),
                    left: Vec::new(),
                });
                bus.extend(sync.into_iter().map(|m| (id, m)));
                self.ring_of.insert(id, part.to_vec());
            }
            self.run_bus(part, bus);
        }
        self.collect();
    }

    /// Delivers `bus` and everything it causes, in one order, to every member of `part`.
    fn run_bus(&mut self, part: &[u32], mut bus: Vec<(u32, Vec<u8>)>) {
        let mut next = 0;
        loop {
            for &id in part {
                let vq = self.nodes.get_mut(&id).unwrap();
                while let Some(m) = vq.poll_send() {
                    bus.push((id, m));
                }
            }
            let Some((sender, m)) = bus.get(next).cloned() else {
                break;
            };
            next += 1;
            for &id in part {
                self.nodes
                    .get_mut(&id)
                    .unwrap()
                    .on_message(NodeId(sender), &m);
            }
            assert!(next < 10_000, "messages never stop");
        }
        self.collect();
    }

    /// Delivers what each partition has queued (after requests and timers).
    fn settle(&mut self) {
        let parts: Vec<Vec<u32>> = {
            let mut v: Vec<Vec<u32>> = self.ring_of.values().cloned().collect();
            v.sort();
            v.dedup();
            v
        };
        for part in parts {
            self.run_bus(&part, Vec::new());
        }
    }

    /// Advances time by `ms`, running due timers, then delivers what they sent.
    fn advance(&mut self, ms: u64) {
        self.now += ms * 1_000_000;
        for vq in self.nodes.values_mut() {
            vq.handle_timeout(Instant(self.now));
        }
        self.settle();
    }

    fn vq(&self, id: u32) -> &Votequorum {
        &self.nodes[&id]
    }

    fn quorate(&self, id: u32) -> bool {
        self.nodes[&id].is_quorate()
    }

    fn request(&mut self, id: u32, req: QuorumRequest) -> Result<Answer, QuorumError> {
        let now = Instant(self.now);
        let vq = self.nodes.get_mut(&id).unwrap();
        vq.set_now(now);
        let r = vq.handle_request(id.into(), req);
        self.settle();
        r
    }

    fn expected(&self, id: u32) -> u32 {
        let s = self.vq(id).state();
        s.getinfo(id).unwrap().expected_votes
    }

    fn take_events(&mut self, id: u32) -> Vec<QuorumEvent> {
        std::mem::take(self.events.get_mut(&id).unwrap())
    }
}

/// No two disjoint groups of nodes are quorate at once.
fn assert_no_split_brain(c: &Cluster) {
    let quorate: Vec<&Vec<u32>> = c
        .ring_of
        .iter()
        .filter(|(id, _)| c.quorate(**id))
        .map(|(_, part)| part)
        .collect();
    for a in &quorate {
        for b in &quorate {
            assert!(
                a == b || a.iter().any(|n| b.contains(n)),
                "split brain: {a:?} and {b:?} are both quorate"
            );
        }
    }
}

#[test]
fn a_majority_is_quorate_and_a_minority_is_not() {
    let mut c = Cluster::new(3, |_| settings(3));
    for id in 1..=3 {
        assert!(!c.quorate(id), "node {id} alone before any ring");
    }
    c.form(&[&[1, 2, 3]]);
    for id in 1..=3 {
        assert!(c.quorate(id));
        let info = c.vq(id).state().getinfo(id).unwrap();
        assert_eq!(
            (info.expected_votes, info.total_votes, info.quorum),
            (3, 3, 2)
        );
    }
    c.form(&[&[1], &[2, 3]]);
    assert!(!c.quorate(1));
    assert!(c.quorate(2) && c.quorate(3));
    assert_no_split_brain(&c);
    let info = c.vq(1).state().getinfo(1).unwrap();
    assert_eq!(
        (info.expected_votes, info.total_votes, info.quorum),
        (3, 1, 2)
    );
    // The other nodes are dead to node 1.
    let states: Vec<NodeState> = c.vq(1).state().nodes.iter().map(|n| n.state).collect();
    assert_eq!(
        states,
        vec![NodeState::Member, NodeState::Dead, NodeState::Dead]
    );
    c.form(&[&[1, 2, 3]]);
    assert!((1..=3).all(|id| c.quorate(id)));
}

#[test]
fn the_quorum_service_hears_sync_and_quorum_in_order() {
    let mut c = Cluster::new(3, |_| settings(3));
    c.form(&[&[1, 2, 3]]);
    let events = c.take_events(1);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            QuorumEvent::SyncStarted { .. } => "sync",
            QuorumEvent::Nodelist { .. } => "nodelist",
            QuorumEvent::SyncActivated { .. } => "activated",
            QuorumEvent::Quorum { .. } => "quorum",
            QuorumEvent::NodeStates { .. } => "states",
            QuorumEvent::ExpectedVotes(_) => "expected",
            QuorumEvent::EvTrackingBarrier(_) => "barrier",
            QuorumEvent::Reply { .. } => "reply",
            QuorumEvent::Notice(_) => "notice",
        })
        .collect();
    assert_eq!(
        kinds,
        ["sync", "nodelist", "activated", "quorum", "states"],
        "{events:?}"
    );
    match &events[3] {
        QuorumEvent::Quorum {
            quorate, members, ..
        } => {
            assert!(quorate);
            assert_eq!(members, &[NodeId(1), NodeId(2), NodeId(3)]);
        }
        e => panic!("{e:?}"),
    }
    c.form(&[&[1, 2], &[3]]);
    let events = c.take_events(1);
    match &events[0] {
        QuorumEvent::SyncStarted { joined, left, .. } => {
            assert!(joined.is_empty());
            assert_eq!(left, &[NodeId(3)]);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn the_highest_expected_votes_of_a_quorate_partition_win() {
    // Node 3 was configured for 5 expected votes, the others for 3.
    let mut c = Cluster::new(3, |id| QuorumSettings {
        expected_votes: (id == 3).then_some(5),
        ..settings(3)
    });
    c.form(&[&[1, 2, 3]]);
    // Nobody was quorate when the infos were exchanged: each node counts its own expected
    // votes for the others (node 3 alone believes in 5).
    assert_eq!(c.vq(1).state().getinfo(3).unwrap().expected_votes, 3);
    assert_eq!(c.vq(3).state().getinfo(3).unwrap().highest_expected, 5);
    // At the next sync node 3's info says quorate: its expected votes count everywhere.
    c.form(&[&[1, 2, 3]]);
    // Highest expected is 5: quorum 3, three votes present.
    for id in 1..=3 {
        let info = c.vq(id).state().getinfo(id).unwrap();
        assert_eq!(info.highest_expected, 5, "node {id}");
        assert_eq!(info.quorum, 3, "node {id}");
        assert!(c.quorate(id));
    }
    c.form(&[&[1, 2], &[3]]);
    // Two of five is not a majority anywhere (quorum never drops by itself).
    assert!(!c.quorate(1) && !c.quorate(2) && !c.quorate(3));
    assert_eq!(c.vq(1).quorum(), 3);
}

#[test]
fn wait_for_all_needs_every_node_once() {
    let mut c = Cluster::new(3, |_| QuorumSettings {
        wait_for_all: true,
        ..settings(3)
    });
    c.form(&[&[1, 2], &[3]]);
    assert!(
        !c.quorate(1) && !c.quorate(2),
        "two of three before all were seen"
    );
    assert!(c.take_events(1).iter().any(|e| matches!(
        e,
        QuorumEvent::Notice(QuorumNotice::WaitingForAll {
            votes: 2,
            expected_votes: 3
        })
    )));
    c.form(&[&[1, 2, 3]]);
    assert!((1..=3).all(|id| c.quorate(id)));
    c.form(&[&[1, 2], &[3]]);
    assert!(
        c.quorate(1) && c.quorate(2),
        "all were seen: a majority is quorate"
    );
    assert!(!c.quorate(3));
}

#[test]
fn cancelling_wait_for_all_lets_a_majority_run() {
    let mut c = Cluster::new(3, |_| QuorumSettings {
        wait_for_all: true,
        ..settings(3)
    });
    c.form(&[&[1, 2], &[3]]);
    assert!(!c.quorate(1));
    c.request(1, QuorumRequest::CancelWaitForAll).unwrap();
    assert!(c.quorate(1) && c.quorate(2));
    assert!(!c.quorate(3));
}

#[test]
fn two_node_keeps_either_node_quorate_after_both_were_seen() {
    let two = |_| QuorumSettings {
        two_node: true,
        wait_for_all: true,
        ..settings(2)
    };
    let mut c = Cluster::new(2, two);
    c.form(&[&[1], &[2]]);
    assert!(
        !c.quorate(1) && !c.quorate(2),
        "wait_for_all: a node alone at start"
    );
    c.form(&[&[1, 2]]);
    assert!(c.quorate(1) && c.quorate(2));
    assert_eq!(c.vq(1).quorum(), 1);
    c.form(&[&[1], &[2]]);
    // two_node: both stay quorate, fencing decides (votequorum(5)).
    assert!(c.quorate(1) && c.quorate(2));
    let info = c.vq(1).state().getinfo(1).unwrap();
    assert_eq!(
        (info.expected_votes, info.total_votes, info.quorum),
        (2, 1, 1)
    );
}

#[test]
fn last_man_standing_lowers_expected_votes_after_the_window() {
    let lms = |_| QuorumSettings {
        last_man_standing: true,
        last_man_standing_window_ms: 10_000,
        ..settings(5)
    };
    let mut c = Cluster::new(5, lms);
    c.form(&[&[1, 2, 3, 4, 5]]);
    c.advance(20_000);
    c.form(&[&[1, 2, 3], &[4], &[5]]);
    assert!(c.quorate(1));
    assert_eq!(c.expected(1), 5);
    c.advance(9_999);
    assert_eq!(c.expected(1), 5, "before the window");
    c.advance(1);
    assert_eq!(c.expected(1), 3, "after the window");
    assert_eq!(c.vq(1).quorum(), 2);
    // Now two of the three are enough.
    c.form(&[&[1, 2], &[3], &[4], &[5]]);
    assert!(c.quorate(1) && c.quorate(2));
    assert!(!c.quorate(3));
    assert_no_split_brain(&c);
    c.advance(10_000);
    assert_eq!(c.expected(1), 2);
    assert_eq!(c.vq(1).quorum(), 2, "2 of 2: one more loss is the end");
}

#[test]
fn last_man_standing_waits_for_a_stable_membership() {
    let lms = |_| QuorumSettings {
        last_man_standing: true,
        last_man_standing_window_ms: 10_000,
        ..settings(5)
    };
    let mut c = Cluster::new(5, lms);
    c.form(&[&[1, 2, 3, 4, 5]]);
    c.form(&[&[1, 2, 3, 4], &[5]]);
    c.advance(6_000);
    // Another change restarts the window.
    c.form(&[&[1, 2, 3], &[4], &[5]]);
    c.advance(6_000);
    assert_eq!(
        c.expected(1),
        5,
        "the window restarted at the second change"
    );
    c.advance(4_000);
    assert_eq!(c.expected(1), 3);
}

#[test]
fn last_man_standing_is_off_when_a_node_has_more_than_one_vote() {
    let mut c = Cluster::new(3, |id| QuorumSettings {
        last_man_standing: true,
        votes: if id == 3 { 2 } else { 1 },
        nodelist_expected_votes: Some(4),
        ..settings(4)
    });
    c.form(&[&[1, 2, 3]]);
    assert!(!c.vq(1).state().last_man_standing);
    assert!(c.take_events(1).iter().any(|e| matches!(
        e,
        QuorumEvent::Notice(QuorumNotice::LastManStandingDisabled { node: NodeId(3) })
    )));
}

#[test]
fn auto_tie_breaker_gives_an_even_split_to_the_documented_side() {
    for (breaker, winner) in [
        (TieBreaker::Lowest, [1u32, 2]),
        (TieBreaker::Highest, [3, 4]),
        (TieBreaker::List(vec![3, 1]), [3, 4]),
    ] {
        let mut c = Cluster::new(4, |_| QuorumSettings {
            auto_tie_breaker: breaker.clone(),
            ..settings(4)
        });
        c.form(&[&[1, 2, 3, 4]]);
        c.form(&[&[1, 2], &[3, 4]]);
        for id in 1..=4 {
            assert_eq!(
                c.quorate(id),
                winner.contains(&id),
                "{breaker:?}: node {id}"
            );
        }
        assert_no_split_brain(&c);
    }
}

#[test]
fn a_tie_breaker_list_skips_a_node_that_may_be_on_the_other_side() {
    // List "5 1": node 5 is not in the cluster at all, so node 1's half wins.
    let mut c = Cluster::new(4, |_| QuorumSettings {
        auto_tie_breaker: TieBreaker::List(vec![5, 1]),
        ..settings(4)
    });
    c.form(&[&[1, 2, 3, 4]]);
    c.form(&[&[1, 2], &[3, 4]]);
    assert!(c.quorate(1) && c.quorate(2));
    assert!(!c.quorate(3) && !c.quorate(4));
    // List "3 1": 3 was in the previous membership, so 1's half must not claim the tie.
    let mut c = Cluster::new(4, |_| QuorumSettings {
        auto_tie_breaker: TieBreaker::List(vec![3, 1]),
        ..settings(4)
    });
    c.form(&[&[1, 2, 3, 4]]);
    c.form(&[&[1, 2], &[3, 4]]);
    assert!(!c.quorate(1) && !c.quorate(2));
    assert!(c.quorate(3) && c.quorate(4));
}

#[test]
fn set_expected_refuses_less_than_the_votes_present_and_losing_quorum() {
    let mut c = Cluster::new(5, |_| settings(5));
    c.form(&[&[1, 2, 3], &[4, 5]]);
    assert!(c.quorate(1));
    match c.request(1, QuorumRequest::SetExpected(2)) {
        Err(QuorumError::InvalidParam(why)) => {
            assert!(why.contains("lower than the 3 votes present"), "{why}")
        }
        r => panic!("{r:?}"),
    }
    match c.request(1, QuorumRequest::SetExpected(0)) {
        Err(QuorumError::InvalidParam(_)) => {}
        r => panic!("{r:?}"),
    }
    // 3 of 7 would not be quorate: refused while quorate.
    assert!(matches!(
        c.request(1, QuorumRequest::SetExpected(7)),
        Err(QuorumError::InvalidParam(_))
    ));
    assert_eq!(
        c.request(1, QuorumRequest::SetExpected(3)),
        Ok(Answer::Done)
    );
    for id in 1..=3 {
        assert_eq!(c.expected(id), 3, "node {id}");
        assert_eq!(c.vq(id).quorum(), 2);
    }
    // The other partition never heard of it.
    assert_eq!(c.expected(4), 5);
    assert!(!c.quorate(4));
}

#[test]
fn set_expected_lets_a_minority_resume_when_the_operator_says_so() {
    let mut c = Cluster::new(3, |_| settings(3));
    c.form(&[&[1, 2, 3]]);
    c.form(&[&[1], &[2], &[3]]);
    assert!(!c.quorate(1));
    assert_eq!(
        c.request(1, QuorumRequest::SetExpected(1)),
        Ok(Answer::Done)
    );
    assert!(c.quorate(1));
    assert!(!c.quorate(2) && !c.quorate(3));
}

#[test]
fn set_votes_checks_the_node_and_the_resulting_quorum() {
    let mut c = Cluster::new(3, |_| settings(3));
    c.form(&[&[1, 2, 3]]);
    assert_eq!(
        c.request(
            1,
            QuorumRequest::SetVotes {
                node: NodeId(9),
                votes: 1
            }
        ),
        Err(QuorumError::NameNotFound(9))
    );
    assert!(matches!(
        c.request(
            1,
            QuorumRequest::SetVotes {
                node: NodeId(2),
                votes: 70_000
            }
        ),
        Err(QuorumError::InvalidParam(_))
    ));
    assert_eq!(
        c.request(
            1,
            QuorumRequest::SetVotes {
                node: NodeId(2),
                votes: 3
            }
        ),
        Ok(Answer::Done)
    );
    for id in 1..=3 {
        let info = c.vq(id).state().getinfo(2).unwrap();
        assert_eq!(info.votes, 3, "seen by node {id}");
        assert_eq!(info.total_votes, 5);
        assert_eq!(c.expected(id), 5, "expected follows the votes present");
    }
}

#[test]
fn allow_downscale_lowers_expected_votes_when_a_node_leaves_cleanly() {
    let mut c = Cluster::new(5, |_| QuorumSettings {
        allow_downscale: true,
        expected_votes_tracking: true,
        expected_votes: Some(3),
        ..settings(5)
    });
    c.form(&[&[1, 2, 3, 4, 5]]);
    assert_eq!(c.expected(1), 5, "expected votes rise to the votes present");
    assert_eq!(c.request(5, QuorumRequest::Leaving), Ok(Answer::Later));
    assert!(c.take_events(5).iter().any(|e| matches!(
        e,
        QuorumEvent::Reply {
            request: 5,
            result: Ok(())
        }
    )));
    c.form(&[&[1, 2, 3, 4], &[5]]);
    assert!(c.quorate(1));
    // Without allow_downscale a leave is refused.
    let mut plain = Cluster::new(2, |_| settings(2));
    assert!(matches!(
        plain.request(1, QuorumRequest::Leaving),
        Err(QuorumError::Access(_))
    ));
}

#[test]
fn expected_votes_tracking_reports_the_barrier_to_persist_and_starts_from_it() {
    let tracking = |_| QuorumSettings {
        expected_votes_tracking: true,
        ..settings(3)
    };
    let mut c = Cluster::new(3, tracking);
    assert!(c
        .take_events(1)
        .contains(&QuorumEvent::EvTrackingBarrier(3)));
    c.form(&[&[1, 2, 3]]);
    c.request(
        1,
        QuorumRequest::SetVotes {
            node: NodeId(1),
            votes: 2,
        },
    )
    .unwrap();
    assert!(c
        .take_events(1)
        .contains(&QuorumEvent::EvTrackingBarrier(4)));
    // A restart from barrier 4: alone, 1 of 4 expected.
    let s = QuorumSettings {
        expected_votes_tracking: true,
        ..settings(3)
    };
    let vq = Votequorum::new(NodeId(1), s, 4, Instant(0));
    assert_eq!(vq.state().getinfo(1).unwrap().expected_votes, 4);
}

#[test]
fn a_quorum_device_vote_counts_only_while_it_polls() {
    let with_device = |_| QuorumSettings {
        qdevice: Some(totem_core::votequorum::QdeviceSettings {
            votes: 1,
            timeout_ms: 10_000,
            sync_timeout_ms: 30_000,
        }),
        nodelist_expected_votes: Some(3),
        ..settings(2)
    };
    let mut c = Cluster::new(2, with_device);
    c.form(&[&[1, 2]]);
    assert!(c.quorate(1), "two of three votes");
    let name = || "Qdevice".to_string();
    assert_eq!(
        c.request(1, QuorumRequest::QdeviceRegister { name: name() }),
        Ok(Answer::Later)
    );
    assert!(c.take_events(1).iter().any(|e| matches!(
        e,
        QuorumEvent::Reply {
            request: 1,
            result: Ok(())
        }
    )));
    // Node 2 learns the name; a different name is refused.
    assert_eq!(c.vq(2).state().qdevice_name, "Qdevice");
    assert!(matches!(
        c.request(
            1,
            QuorumRequest::QdeviceRegister {
                name: "other".into()
            }
        ),
        Err(QuorumError::Exist(_))
    ));
    let ring = c.vq(1).state().ring;
    let poll = |cast_vote, ring| QuorumRequest::QdevicePoll {
        name: name(),
        cast_vote,
        ring,
    };
    assert_eq!(c.request(1, poll(true, ring)), Ok(Answer::Done));
    assert!(matches!(
        c.request(1, poll(true, RingId { seq: 1, rep: 1 })),
        Err(QuorumError::MessageError(_))
    ));
    let info = c.vq(1).state().getinfo(1).unwrap();
    assert_eq!(info.total_votes, 3);
    // Node 2 dies; node 1 and the device keep quorum (2 of 3) while the device polls.
    c.form(&[&[1], &[2]]);
    assert!(c.quorate(1));
    assert!(
        c.vq(1).syncing(),
        "waiting for the device's poll in the new ring"
    );
    let ring = c.vq(1).state().ring;
    c.request(1, poll(true, ring)).unwrap();
    c.settle();
    assert!(!c.vq(1).syncing());
    assert!(c.quorate(1));
    assert!(!c.quorate(2));
    c.advance(9_000);
    c.request(1, poll(true, ring)).unwrap();
    c.advance(9_000);
    assert!(c.quorate(1), "polled within the timeout");
    // The device stops polling: its vote is gone after the timeout.
    c.advance(1_001);
    assert!(!c.quorate(1));
    assert!(c
        .take_events(1)
        .iter()
        .any(|e| matches!(e, QuorumEvent::Notice(QuorumNotice::LostQdevice { .. }))));
    assert_eq!(
        c.request(1, QuorumRequest::QdeviceUnregister { name: name() }),
        Ok(Answer::Done)
    );
    assert!(matches!(
        c.request(1, poll(true, ring)),
        Err(QuorumError::NotExist(_))
    ));
}

#[test]
fn a_sync_waits_for_the_device_at_most_its_sync_timeout() {
    let with_device = |_| QuorumSettings {
        qdevice: Some(totem_core::votequorum::QdeviceSettings {
            votes: 1,
            timeout_ms: 50_000,
            sync_timeout_ms: 30_000,
        }),
        nodelist_expected_votes: Some(3),
        ..settings(2)
    };
    let mut c = Cluster::new(2, with_device);
    c.form(&[&[1, 2]]);
    let name = "Qdevice".to_string();
    c.request(1, QuorumRequest::QdeviceRegister { name: name.clone() })
        .unwrap();
    let ring = c.vq(1).state().ring;
    c.request(
        1,
        QuorumRequest::QdevicePoll {
            name,
            cast_vote: true,
            ring,
        },
    )
    .unwrap();
    c.form(&[&[1, 2]]);
    assert!(c.vq(2).syncing(), "node 2 waits for node 1's marker");
    c.advance(29_999);
    assert!(c.vq(1).syncing());
    c.advance(1);
    assert!(!c.vq(1).syncing() && !c.vq(2).syncing());
    assert!(c.quorate(1) && c.quorate(2));
}

#[test]
fn malformed_and_out_of_place_messages_are_counted_not_applied() {
    let mut c = Cluster::new(2, |_| settings(2));
    c.form(&[&[1, 2]]);
    let vq = c.nodes.get_mut(&1).unwrap();
    // Truncated node info, node info claiming another node, an unknown op, huge votes.
    vq.on_message(NodeId(2), &[0x40, 0, 0]);
    let mut claim = vec![0x40];
    for v in [3u32, 1, 2, 0] {
        claim.extend_from_slice(&v.to_be_bytes());
    }
    vq.on_message(NodeId(2), &claim);
    vq.on_message(NodeId(2), &[0x4f]);
    let mut huge = vec![0x40];
    for v in [2u32, 1 << 30, 2, 0] {
        huge.extend_from_slice(&v.to_be_bytes());
    }
    vq.on_message(NodeId(2), &huge);
    assert_eq!(vq.malformed, 4);
    assert!(vq.is_quorate());
    assert_eq!(vq.state().nodes.len(), 2, "no node invented");
}

#[test]
fn random_splits_never_leave_two_quorate_sides() {
    // A small deterministic walk through partitions of five nodes.
    let mut c = Cluster::new(5, |_| settings(5));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut parts: Vec<Vec<u32>> = Vec::new();
        for id in 1..=5u32 {
            let p = ((x >> (id * 3)) % 3) as usize;
            while parts.len() <= p {
                parts.push(Vec::new());
            }
            parts[p].push(id);
        }
        let parts: Vec<&[u32]> = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.as_slice())
            .collect();
        c.form(&parts);
        assert_no_split_brain(&c);
        for part in &parts {
            let q = part.len() >= 3;
            for id in part.iter() {
                assert_eq!(c.quorate(*id), q, "{parts:?}");
            }
        }
    }
}

#[test]
fn garbage_from_members_never_panics_and_an_honest_sync_still_decides() {
    // Seeded: random and mutated messages of every op from the members, then a clean sync.
    let mut x: u64 = 0x243f_6a88_85a3_08d3;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..200 {
        let mut c = Cluster::new(3, |_| QuorumSettings {
            wait_for_all: round % 2 == 0,
            ..settings(3)
        });
        c.form(&[&[1, 2, 3]]);
        for _ in 0..50 {
            let len = (next() % 24) as usize;
            let mut m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(op) = m.first_mut() {
                *op = 0x40 + (*op % 6);
            }
            let sender = NodeId(1 + (next() % 3) as u32);
            for vq in c.nodes.values_mut() {
                vq.on_message(sender, &m);
            }
        }
        // The garbage may have said anything a member could honestly say (votes, expected
        // votes): an honest sync of the whole cluster still ends in one decision everywhere.
        c.form(&[&[1, 2, 3]]);
        let q: Vec<bool> = (1..=3).map(|id| c.quorate(id)).collect();
        assert!(q.iter().all(|&v| v == q[0]), "round {round}: {q:?}");
        for id in 1..=3 {
            assert!(c.vq(id).state().nodes.len() <= 768, "round {round}");
        }
    }
}
