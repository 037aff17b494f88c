//! Flow control as the Totem paper's §3.3 states it: on one token visit a node multicasts at
//! most `max_messages` frames and no more than the window leaves after what the others sent in
//! the last rotation — retransmissions included, so a node answering retransmission requests
//! sends correspondingly fewer new frames, and a congested network is not answered with more
//! traffic. Three nodes on an in-memory network; node 1 has a backlog, and its first frames are
//! lost to both other nodes, so it must answer their requests itself while its backlog waits.

mod common;

use totem_core::config::explicit;
use totem_core::wire::{KIND_DATA, KIND_TOKEN};
use totem_core::{ClusterShape, Event, Node, TotemSettings};

const MS: u64 = 1_000_000;
const WINDOW: u32 = 10;
const GROUP: &[u8] = b"fc";
const PID: u32 = 11;
/// Node 1's data frames lost to both other nodes, from the first on.
const LOST_FRAMES: usize = 25;
const MESSAGES: usize = 200;

const SHAPE: ClusterShape = ClusterShape {
    nodelist_count: 3,
    ..ClusterShape::ALONE
};

/// A node whose visits may carry `WINDOW` frames, of a ring whose rotations may carry
/// `window_size`; `adaptive`: `max_messages_adaptive`.
fn node(id: u32, window_size: u32, adaptive: u32) -> Node {
    let totem = TotemSettings::resolve(
        explicit(&[
            ("token", 1000),
            ("token_coefficient", 0),
            ("window_size", window_size),
            ("max_messages", WINDOW),
            ("max_messages_adaptive", adaptive),
            // Classic Totem: every frame of a visit before the token, so a visit's frames are
            // those between two of node 1's tokens (tests/accelerated.rs has the other).
            ("accelerated_window", 0),
        ]),
        &SHAPE,
    )
    .expect("valid settings");
    common::node(common::config(id, totem, SHAPE, "flow-control"))
}

/// What the run saw.
#[derive(Default)]
struct Seen {
    /// Data frames node 1 multicast on each of its token visits (between two of its tokens).
    node1_frames_per_visit: Vec<u32>,
    /// Messages each node delivered.
    delivered: [usize; 3],
    /// The highest seq node 1 multicast: a frame above it is new, one below a retransmission.
    node1_seq_high: u64,
}

/// Runs the three nodes until `until_ms`; while `losing`, node 1's new data frames reach no
/// one until `LOST_FRAMES` are lost (its retransmissions always arrive).
fn run(
    nodes: &mut [Node],
    now: &mut u64,
    until_ms: u64,
    (losing, lost): (bool, &mut usize),
    seen: &mut Seen,
) {
    let mut frames_this_visit = 0;
    loop {
        let mut wire = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Some(t) = n.poll_transmit() {
                let kind = t.bytes.get(3).copied();
                if i == 0 && kind == Some(KIND_DATA) {
                    frames_this_visit += 1;
                    // The data header's seq follows the common header (16 bytes) at 16.
                    let seq = u64::from_be_bytes(t.bytes[32..40].try_into().expect("8 bytes"));
                    let new = seq > seen.node1_seq_high;
                    seen.node1_seq_high = seen.node1_seq_high.max(seq);
                    if losing && new && *lost < LOST_FRAMES {
                        *lost += 1;
                        continue;
                    }
                }
                if i == 0 && kind == Some(KIND_TOKEN) && frames_this_visit > 0 {
                    seen.node1_frames_per_visit.push(frames_this_visit);
                    frames_this_visit = 0;
                }
                wire.push((i, t.dest, t.bytes));
            }
            while let Some(ev) = n.poll_event() {
                if let Event::Deliver(d) = ev {
                    if d.group == GROUP {
                        seen.delivered[i] += 1;
                    }
                }
            }
        }
        if !wire.is_empty() {
            common::deliver(nodes, *now, wire);
            continue;
        }
        if !common::fire_timers(nodes, now, until_ms * MS) {
            return;
        }
    }
}

/// Forms the ring of `nodes`, joins the group on each and queues `MESSAGES` on node 1.
fn load(nodes: &mut [Node], now: &mut u64, lost: &mut usize, seen: &mut Seen) {
    run(nodes, now, 3_000, (false, lost), seen);
    assert!(nodes.iter().all(Node::is_operational), "no ring formed");
    assert_eq!(nodes[0].members().len(), 3);
    common::join_all(nodes, GROUP, PID);
    run(nodes, now, 4_000, (false, lost), seen);
    let data = [0x5au8; 1000];
    common::mcast_agreed(&mut nodes[0], GROUP, PID, &data, MESSAGES);
    seen.node1_frames_per_visit.clear();
}

/// The adaptive allowance (`max_messages_adaptive`) grows past max_messages while node 1 has
/// a backlog and nothing is lost, up to the window and no further; with explicit values and
/// no adaptation, max_messages holds exactly (the test below).
#[test]
fn an_adaptive_allowance_grows_to_the_window_without_loss() {
    const RING_WINDOW: u32 = 3 * WINDOW;
    let mut nodes: Vec<Node> = (1..=3).map(|id| node(id, RING_WINDOW, 1)).collect();
    let (mut now, mut lost, mut seen) = (0, 0, Seen::default());
    load(&mut nodes, &mut now, &mut lost, &mut seen);
    run(&mut nodes, &mut now, 20_000, (false, &mut lost), &mut seen);
    let visits = &seen.node1_frames_per_visit;
    assert!(
        visits.iter().any(|&n| n > WINDOW),
        "never more than max_messages ({WINDOW}) on a visit: {visits:?}"
    );
    assert!(
        visits.iter().all(|&n| n <= RING_WINDOW),
        "over the window ({RING_WINDOW}): {visits:?}"
    );
    assert_eq!(seen.delivered, [MESSAGES; 3]);
}

#[test]
fn retransmissions_and_new_frames_share_one_visits_allowance() {
    let mut nodes: Vec<Node> = (1..=3).map(|id| node(id, WINDOW, 0)).collect();
    let (mut now, mut lost, mut seen) = (0, 0, Seen::default());
    load(&mut nodes, &mut now, &mut lost, &mut seen);
    run(&mut nodes, &mut now, 20_000, (true, &mut lost), &mut seen);

    assert_eq!(lost, LOST_FRAMES, "the first frames were not lost");
    assert!(
        nodes[0].stats().retransmitted > 0,
        "node 1 answered no request: the test exercises nothing"
    );
    let most = seen
        .node1_frames_per_visit
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    assert!(
        most <= WINDOW,
        "node 1 multicast {most} frames on one visit, over max_messages = window_size = {WINDOW} \
         (visits: {:?})",
        seen.node1_frames_per_visit
    );
    assert_eq!(
        seen.delivered, [MESSAGES; 3],
        "every node delivers every message despite the losses"
    );
}
