//! When a node forms a ring without the others. A node that nobody answers forms its first ring
//! at its first join timeout, as corosync does (its own join comes back to it and is agreed at
//! once), so a service manager hears READY=1 within a join period rather than a consensus
//! timeout (3.6 s at the default token), and it merges with the others when they appear. Once
//! it has had a ring, a node whose peers fall silent forms a ring without them only when they
//! are absent (unheard for the reach timeout, at least a token timeout) or the consensus
//! timeout fails them, never at a join timeout: a short silence must not split survivors into
//! rings of one.

use totem_core::{
    cluster_hash, ClusterShape, Dest, Instant, Node, NodeConfig, NodeId, RingId, State,
    TotemSettings,
};

const NODES: u32 = 3;

fn shape_of(nodes: u32) -> ClusterShape {
    ClusterShape {
        nodelist_count: nodes,
        frame_overhead_bytes: 28,
    }
}

fn shape() -> ClusterShape {
    shape_of(NODES)
}

/// corosync's defaults for a cluster of `NODES`.
fn settings() -> TotemSettings {
    TotemSettings::resolve(|_| None, &shape()).expect("defaults resolve")
}

fn node(id: u32) -> Node {
    node_in(id, NODES)
}

/// Node `id` of a nodelist of `nodes`.
fn node_in(id: u32, nodes: u32) -> Node {
    let config = NodeConfig {
        totem: TotemSettings::resolve(|_| None, &shape_of(nodes)).expect("defaults resolve"),
        shape: shape_of(nodes),
        node_id: NodeId(id),
        cluster: cluster_hash("first-ring"),
        incarnation: 1,
        ring_seq_start: 0,
        seed: u64::from(id),
        identity: Default::default(),
        key_id: 0,
    };
    Node::new(config, Instant(0)).expect("valid config")
}

fn ms(now: Instant) -> u64 {
    now.0 / 1_000_000
}

/// Runs `nodes` on a lossless network that delivers at once, except that nothing reaches or
/// leaves the nodes whose index is in `silent`, until `until` (ms). Returns when the node at
/// index 0 is operational, with the time; `None` if it never is.
fn run(
    nodes: &mut [Node],
    silent: &[usize],
    not_in: Option<RingId>,
    from_ms: u64,
    until_ms: u64,
) -> Option<u64> {
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.node_id()).collect();
    let mut now = Instant(from_ms * 1_000_000);
    loop {
        // Deliver everything queued, in rounds, until the network is quiet.
        loop {
            let mut sent = Vec::new();
            for (i, n) in nodes.iter_mut().enumerate() {
                while let Some(t) = n.poll_transmit() {
                    if !silent.contains(&i) {
                        sent.push((ids[i], t));
                    }
                }
                while n.poll_event().is_some() {}
            }
            if sent.is_empty() {
                break;
            }
            for (from, t) in sent {
                for (j, n) in nodes.iter_mut().enumerate() {
                    let to_it = match t.dest {
                        Dest::All => ids[j] != from,
                        Dest::Node(id) => id == ids[j],
                    };
                    if to_it && !silent.contains(&j) {
                        n.handle_datagram(now, from, &t.bytes);
                    }
                }
            }
        }
        if nodes[0].state() == State::Operational && Some(nodes[0].ring()) != not_in {
            return Some(ms(now));
        }
        let next = nodes.iter().filter_map(|n| n.poll_timeout()).min()?;
        if ms(next) > until_ms {
            return None;
        }
        now = next;
        for n in nodes.iter_mut() {
            if n.poll_timeout().is_some_and(|t| t <= now) {
                n.handle_timeout(now);
            }
        }
    }
}

#[test]
fn a_node_configured_alone_forms_its_first_ring_at_the_first_join_timeout() {
    let mut nodes = [node_in(1, 1)];
    let settings = TotemSettings::resolve(|_| None, &shape_of(1)).unwrap();
    let formed = run(&mut nodes, &[], None, 0, 60_000).expect("a ring forms");
    assert_eq!(formed, u64::from(settings.join_ms));
    assert!(formed < u64::from(settings.consensus_ms));
    assert_eq!(nodes[0].ring().rep, 1);
}

#[test]
fn a_node_of_a_larger_cluster_that_nobody_answers_forms_its_first_ring_at_the_first_join_timeout() {
    let mut nodes = [node(1)];
    let settings = settings();
    let formed = run(&mut nodes, &[], None, 0, 60_000).expect("a ring forms");
    assert_eq!(formed, u64::from(settings.join_ms));
    assert!(formed < u64::from(settings.consensus_ms));
    assert_eq!(nodes[0].ring().rep, 1);
}

#[test]
fn a_node_that_formed_its_first_ring_alone_merges_when_another_starts() {
    let mut nodes = [node(1), node(2)];
    // Node 2 is not there yet: node 1 forms a ring of its own.
    let formed = run(&mut nodes, &[1], None, 0, 60_000).expect("node 1 alone");
    let alone = nodes[0].ring();
    // Node 2 starts (its own timers ran unheard so far): one ring of both follows.
    run(&mut nodes, &[], Some(alone), formed, 120_000).expect("a ring of two");
    assert_ne!(nodes[0].ring(), alone);
    assert_eq!(nodes[1].state(), State::Operational);
    assert_eq!(nodes[0].ring(), nodes[1].ring(), "one ring of both");
}

#[test]
fn nodes_that_answer_each_other_form_one_ring_without_a_singleton_first() {
    let mut nodes = [node(1), node(2), node(3)];
    run(&mut nodes, &[], None, 0, 60_000).expect("a ring forms");
    for n in &nodes {
        assert_eq!(n.state(), State::Operational);
        assert_eq!(n.ring(), nodes[0].ring(), "one ring of all three");
    }
}

#[test]
fn after_its_first_ring_a_node_waits_for_its_peer_to_be_absent_before_going_alone() {
    let mut nodes = [node(1), node(2)];
    let formed = run(&mut nodes, &[], None, 0, 60_000).expect("a ring of two forms");
    let first = nodes[0].ring();
    let settings = settings();
    // Node 2 falls silent: node 1 loses the token and gathers; only once node 2 has been
    // unheard for the reach timeout (it is absent: gone from everyone node 1 hears) may node 1
    // form a ring without it — not at its join timeout as before its first ring.
    let alone = run(&mut nodes, &[1], Some(first), formed, 120_000).expect("node 1 goes on alone");
    assert_ne!(nodes[0].ring(), first);
    let waited = alone - formed;
    let bound = settings.token_ms.max(settings.reach_timeout_ms());
    assert!(
        waited >= u64::from(bound),
        "formed a ring without its peer {waited} ms after the last one: the token timeout and \
         the reach timeout ({bound} ms) expected at least",
    );
}
