//! The diagnostics an operator reads after a membership change: a node alone forms its first
//! ring; three nodes form one; a crashed member produces the token warning, the token loss,
//! the new membership without it and "leave not received"; a member that leaves cleanly
//! produces none of the last. Every node's invariants are asserted after every input.

mod common;

use totem_core::config::explicit;
use totem_core::{ClusterShape, GatherCause, Instant, Node, NodeId, Notice, State, TotemSettings};

const SHAPE: ClusterShape = ClusterShape {
    nodelist_count: 3,
    ..ClusterShape::ALONE
};

fn totem() -> TotemSettings {
    TotemSettings::resolve(
        explicit(&[("token", 1000), ("token_coefficient", 0)]),
        &SHAPE,
    )
    .expect("valid settings")
}

fn node(id: u32) -> Node {
    common::node(common::config(id, totem(), SHAPE, "notices"))
}

/// Nodes on a loss-free in-memory network; `alive[i]` false drops everything to and from i.
struct Cluster {
    nodes: Vec<Node>,
    alive: Vec<bool>,
    now: u64,
    notices: Vec<Vec<Notice>>,
}

impl Cluster {
    fn new(count: u32) -> Cluster {
        Cluster {
            nodes: (1..=count).map(node).collect(),
            alive: vec![true; count as usize],
            now: 0,
            notices: vec![Vec::new(); count as usize],
        }
    }

    /// Runs until simulated time `until_ms`, delivering every datagram at once.
    fn run_until(&mut self, until_ms: u64) {
        let notices = &mut self.notices;
        common::run_until(
            &mut self.nodes,
            &self.alive,
            &mut self.now,
            until_ms,
            |i, n| {
                while n.poll_event().is_some() {}
                while let Some(notice) = n.poll_notice() {
                    notices[i].push(notice);
                }
            },
        );
    }

    fn formed(&self, i: usize) -> Vec<(Vec<u32>, Vec<u32>, Vec<u32>)> {
        let ids = |v: &[NodeId]| v.iter().map(|n| n.0).collect::<Vec<_>>();
        self.notices[i]
            .iter()
            .filter_map(|n| match n {
                Notice::Formed {
                    members,
                    joined,
                    left,
                    ..
                } => Some((ids(members), ids(joined), ids(left))),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_node_alone_forms_its_first_ring_and_says_who_is_in_it() {
    let mut c = Cluster::new(1);
    c.run_until(5_000);
    assert!(c.nodes[0].is_operational());
    assert_eq!(
        c.notices[0].first(),
        Some(&Notice::EnteredGather {
            cause: GatherCause::Start
        })
    );
    // Nobody joined or left (it was alone before too), but the members are stated.
    assert_eq!(c.formed(0), vec![(vec![1], vec![], vec![])]);
    assert!(c.notices[0]
        .iter()
        .any(|n| matches!(n, Notice::EnteredCommit { .. })));
    assert!(c.notices[0]
        .iter()
        .any(|n| matches!(n, Notice::EnteredRecovery { .. })));
}

#[test]
fn a_crashed_member_is_reported_as_failed_and_left() {
    let mut c = Cluster::new(3);
    c.run_until(3_000);
    for n in &c.nodes {
        assert!(n.is_operational() && n.members().len() == 3, "no ring of 3");
    }
    let last = c.formed(0).last().cloned().expect("a ring");
    assert_eq!(last.0, vec![1, 2, 3]);
    c.notices.iter_mut().for_each(Vec::clear);

    c.alive[2] = false; // node 3 crashes
    c.run_until(10_000);
    assert_eq!(c.nodes[0].members(), &[NodeId(1), NodeId(2)]);
    let lost_operational = |n: &Notice| {
        matches!(
            n,
            Notice::TokenLost {
                state: State::Operational,
                token_ms: 1000,
                ..
            }
        )
    };
    // The survivor whose token timer expires first declares the loss; the other follows its
    // join. Both were warned first, at 75% of the token timeout.
    assert!(
        c.notices
            .iter()
            .take(2)
            .any(|n| n.iter().any(lost_operational)),
        "{:?}",
        c.notices
    );
    for i in 0..2 {
        let notices = &c.notices[i];
        let warned = notices.iter().position(|n| {
            matches!(
                n,
                Notice::TokenNotReceived {
                    since_ms: 750,
                    token_ms: 1000
                }
            )
        });
        let gathered = notices
            .iter()
            .position(|n| matches!(n, Notice::EnteredGather { .. }));
        assert!(
            warned.is_some() && warned < gathered,
            "node {}: {notices:?}",
            i + 1
        );
        if let Some(lost) = notices.iter().position(lost_operational) {
            assert_eq!(
                notices.get(lost + 1),
                Some(&Notice::EnteredGather {
                    cause: GatherCause::TokenLost(State::Operational)
                })
            );
        }
        assert_eq!(c.formed(i), vec![(vec![1, 2], vec![], vec![3])]);
        assert!(
            notices.iter().any(|n| matches!(n,
                Notice::LeaveNotReceived { failed, .. } if failed == &[NodeId(3)])),
            "node {}: {notices:?}",
            i + 1
        );
    }
}

#[test]
fn a_member_that_leaves_cleanly_is_not_reported_as_failed() {
    let mut c = Cluster::new(3);
    c.run_until(3_000);
    c.notices.iter_mut().for_each(Vec::clear);
    c.nodes[2].leave();
    // Its leave goes out; then it is gone.
    let bytes: Vec<_> = std::iter::from_fn(|| c.nodes[2].poll_transmit()).collect();
    c.alive[2] = false;
    for t in bytes {
        for to in 0..2 {
            c.nodes[to].handle_datagram(Instant(c.now), NodeId(3), &t.bytes);
        }
    }
    c.run_until(10_000);
    for i in 0..2 {
        assert_eq!(c.formed(i), vec![(vec![1, 2], vec![], vec![3])]);
        let notices = &c.notices[i];
        assert!(
            !notices
                .iter()
                .any(|n| matches!(n, Notice::LeaveNotReceived { .. })),
            "node {}: {notices:?}",
            i + 1
        );
        // It was not a token loss either: the leave started the new membership at once.
        assert!(
            !notices
                .iter()
                .any(|n| matches!(n, Notice::TokenLost { .. })),
            "node {}: {notices:?}",
            i + 1
        );
    }
}
