//! Receiver flow control: while a node says its local receivers are behind
//! (`Node::set_receivers_behind`), each of its token visits claims the whole window in the
//! token's fcc, so the other members send nothing new — the ring keeps rotating, membership
//! does not change — and it may still send its own. Once it clears, everything queued goes out
//! and every member delivers all of it. A frame the node that is behind lost is still
//! retransmitted to it meanwhile: a visit that finds retransmission requests claims nothing, so
//! it does not fail to receive (and no membership change follows) however long it stays behind.
//! Three nodes on an in-memory network whose every hop takes 20 µs, so a rotation takes ring
//! time and a bounded run ends.

mod common;

use totem_core::config::explicit;
use totem_core::wire::KIND_DATA;
use totem_core::{ClusterShape, Event, Node, TotemSettings};

const MS: u64 = 1_000_000;
const HOP_NS: u64 = 20_000;
const WINDOW: u32 = 10;
const GROUP: &[u8] = b"rb";
const PID: u32 = 7;
const MESSAGES: usize = 200;

const SHAPE: ClusterShape = ClusterShape {
    nodelist_count: 3,
    ..ClusterShape::ALONE
};

fn node(id: u32) -> Node {
    let totem = TotemSettings::resolve(
        explicit(&[
            ("token", 1000),
            ("token_coefficient", 0),
            ("window_size", WINDOW),
            ("max_messages", WINDOW),
            ("max_messages_adaptive", 0),
        ]),
        &SHAPE,
    )
    .expect("valid settings");
    common::node(common::config(id, totem, SHAPE, "receivers-behind"))
}

/// Runs until `until_ms` of ring time; counts each node's deliveries to `GROUP` by sender
/// (node ids 1–3 at 0–2).
fn run(nodes: &mut [Node], now: &mut u64, until_ms: u64, delivered: &mut [[usize; 3]; 3]) {
    run_losing(nodes, now, until_ms * MS, delivered, &mut |_, _, _| false);
}

/// `run` until `until_ns`, on a network that loses what `lose(from, to, bytes)` says (indices
/// 0–2).
fn run_losing(
    nodes: &mut [Node],
    now: &mut u64,
    until_ns: u64,
    delivered: &mut [[usize; 3]; 3],
    lose: &mut dyn FnMut(usize, usize, &[u8]) -> bool,
) {
    // Frames polled are always delivered: the run stops before polling, never with frames
    // in hand.
    while *now < until_ns {
        let mut wire = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Some(t) = n.poll_transmit() {
                wire.push((i, t.dest, t.bytes));
            }
            while let Some(ev) = n.poll_event() {
                if let Event::Deliver(d) = ev {
                    if d.group == GROUP {
                        delivered[i][d.sender.node.0 as usize - 1] += 1;
                    }
                }
            }
        }
        if !wire.is_empty() {
            *now += HOP_NS;
            common::deliver_through(nodes, *now, wire, |from, to, bytes| !lose(from, to, bytes));
            continue;
        }
        if !common::fire_timers(nodes, now, until_ns) {
            return;
        }
    }
}

/// Three nodes that formed their ring and joined `GROUP`, at 3.5 s of ring time; what they
/// delivered to it so far (nothing).
fn ring_with_group() -> (Vec<Node>, u64, [[usize; 3]; 3]) {
    let mut nodes: Vec<Node> = (1..=3).map(node).collect();
    let mut now = 0;
    let mut delivered = [[0; 3]; 3];
    run(&mut nodes, &mut now, 3_000, &mut delivered);
    assert!(nodes.iter().all(Node::is_operational), "no ring formed");
    common::join_all(&mut nodes, GROUP, PID);
    run(&mut nodes, &mut now, 3_500, &mut delivered);
    (nodes, now, delivered)
}

#[test]
fn a_node_whose_receivers_are_behind_holds_the_others_back_until_it_clears() {
    let (mut nodes, mut now, mut delivered) = ring_with_group();
    let rings = nodes[0].stats().rings_installed;

    // Node 2 falls behind; then node 1 has a backlog, and node 2 a little of its own.
    nodes[1].set_receivers_behind(true);
    run(&mut nodes, &mut now, 3_600, &mut delivered);
    let data = [0x5au8; 1000];
    common::mcast_agreed(&mut nodes[0], GROUP, PID, &data, MESSAGES);
    common::mcast_agreed(&mut nodes[1], GROUP, PID, &data, 5);
    run(&mut nodes, &mut now, 3_700, &mut delivered);
    let early = delivered;
    run(&mut nodes, &mut now, 4_000, &mut delivered);
    assert_eq!(
        delivered, early,
        "nothing new while node 2 is behind (at most a visit's worth that was on its way)"
    );
    for d in &delivered {
        assert!(
            d[0] <= WINDOW as usize,
            "node 1 sent beyond one visit: {d:?}"
        );
        assert_eq!(d[1], 5, "node 2's own messages still go out: {d:?}");
    }
    assert!(nodes[1].stats().window_claimed > 0);
    assert!(
        nodes.iter().all(|n| n.members().len() == 3),
        "membership held"
    );

    nodes[1].set_receivers_behind(false);
    run(&mut nodes, &mut now, 4_500, &mut delivered);
    for d in &delivered {
        assert_eq!(
            d[..2],
            [MESSAGES, 5],
            "everything delivered once it cleared"
        );
    }
    assert_eq!(
        nodes[0].stats().rings_installed,
        rings,
        "no membership change"
    );
    assert!(nodes
        .iter()
        .all(|n| n.stats().gathers == nodes[0].stats().gathers));
}

#[test]
fn a_node_behind_that_lost_a_frame_still_gets_it_and_stays_in_the_ring() {
    let (mut nodes, mut now, mut delivered) = ring_with_group();
    let rings = nodes[0].stats().rings_installed;

    // The first data frame node 1 sends never reaches node 2, which is behind from that hop.
    common::mcast_agreed(&mut nodes[0], GROUP, PID, &[0x11; 100], 3);
    let mut lost = 0;
    while lost == 0 && now < 4_000 * MS {
        let mut lose = |from: usize, to: usize, bytes: &[u8]| {
            let hit = from == 0 && to == 1 && bytes.get(3) == Some(&KIND_DATA) && lost == 0;
            lost += usize::from(hit);
            hit
        };
        let next = now + HOP_NS;
        run_losing(&mut nodes, &mut now, next, &mut delivered, &mut lose);
    }
    nodes[1].set_receivers_behind(true);
    // Far longer than fail_recv_const (2,500 by default) rotations of 60 µs.
    run(&mut nodes, &mut now, 5_000, &mut delivered);
    assert_eq!(lost, 1);
    for (i, d) in delivered.iter().enumerate() {
        assert_eq!(
            d[0],
            3,
            "node {} got node 1's messages: {delivered:?}",
            i + 1
        );
    }
    assert!(nodes[1].stats().window_claimed > 0, "node 2 stayed behind");
    assert_eq!(nodes[1].stats().failed_to_receive, 0);
    assert_eq!(
        nodes[0].stats().rings_installed,
        rings,
        "no membership change"
    );
}
