//! Per-sender order across a configuration change (EVS causal delivery): a member that lost one
//! of a sender's frames, holds a later one of the same sender, and is then cut off from
//! everyone (the sender included) must not deliver the later frame in its transitional
//! configuration — past a gap only the transitional members' frames are delivered. The
//! survivors deliver both. Every node's invariants are asserted after every input.

mod common;

use totem_core::config::explicit;
use totem_core::wire::{DataHdr, Header, FLAG_RECOVERY, KIND_DATA};
use totem_core::{ClusterShape, ConfigKind, Event, Node, NodeId, TotemSettings};
use zerocopy::FromBytes;

const SHAPE: ClusterShape = ClusterShape {
    nodelist_count: 3,
    ..ClusterShape::ALONE
};
const GROUP: &[u8] = b"fifo";
const PID: u32 = 5;
/// The sender (node 2) and the member that loses its first frame (node 3), as indices.
const SENDER: usize = 1;
const CUT: usize = 2;
/// Enough messages of this size for several frames.
const MESSAGES: usize = 40;
const MESSAGE_BYTES: usize = 100;

fn node(id: u32) -> Node {
    let totem = TotemSettings::resolve(
        explicit(&[("token", 1000), ("token_coefficient", 0)]),
        &SHAPE,
    )
    .expect("valid settings");
    common::node(common::config(id, totem, SHAPE, "transitional"))
}

/// What a node's application saw: the sender's messages (their data), and whether a
/// transitional configuration without the sender came.
#[derive(Default)]
struct Seen {
    from_sender: Vec<Vec<u8>>,
    transitional_without_sender: bool,
    /// The group's members after its last change.
    group_size: usize,
}

struct Cluster {
    nodes: Vec<Node>,
    now: u64,
    seen: Vec<Seen>,
}

impl Cluster {
    fn run(&mut self, until_ms: u64, pass: impl FnMut(usize, usize, &[u8]) -> bool) {
        let seen = &mut self.seen;
        let running = [true; 3];
        common::run_until_through(
            &mut self.nodes,
            &running,
            &mut self.now,
            until_ms,
            pass,
            |i, n| {
                while let Some(event) = n.poll_event() {
                    match event {
                        Event::Deliver(d) if d.sender.node == NodeId(SENDER as u32 + 1) => {
                            seen[i].from_sender.push(d.data.to_vec());
                        }
                        Event::Group(g) => seen[i].group_size = g.members.len(),
                        Event::Config(c)
                            if c.kind == ConfigKind::Transitional
                                && !c.members.contains(&NodeId(SENDER as u32 + 1)) =>
                        {
                            seen[i].transitional_without_sender = true;
                        }
                        _ => {}
                    }
                }
            },
        );
    }
}

/// The origin and sequence number of a first-transmission data frame (not a recovery frame).
fn data_frame(bytes: &[u8]) -> Option<(u32, u64)> {
    if bytes.get(3) != Some(&KIND_DATA) {
        return None;
    }
    let (data, _) = DataHdr::ref_from_prefix(bytes.get(size_of::<Header>()..)?).ok()?;
    (data.flags & FLAG_RECOVERY == 0).then(|| (data.origin.get(), data.seq.get()))
}

#[test]
fn a_departed_senders_frame_past_a_gap_is_not_delivered_in_the_transitional_configuration() {
    let mut c = Cluster {
        nodes: (1..=3).map(node).collect(),
        now: 0,
        seen: (0..3).map(|_| Seen::default()).collect(),
    };
    c.run(2_000, |_, _, _| true);
    for n in &c.nodes {
        assert_eq!(n.members().len(), 3, "the ring of three formed");
    }
    common::join_all(&mut c.nodes, GROUP, PID);
    c.run(4_000, |_, _, _| true);
    assert!(
        c.seen.iter().all(|s| s.group_size == 3),
        "every process joined"
    );

    // The sender multicasts `MESSAGES`, several frames' worth in one visit. Node 3 never
    // receives the first of those frames, from anyone; once it has received a later one, it
    // is cut off from everyone and forms a ring of its own.
    let sender_id = SENDER as u32 + 1;
    let mut lost: Option<u64> = None;
    let mut cut_off = false;
    let pass = |from: usize, to: usize, bytes: &[u8]| {
        if cut_off {
            return from != CUT && to != CUT;
        }
        match data_frame(bytes) {
            Some((origin, seq)) if origin == sender_id => {
                let lost = *lost.get_or_insert(seq);
                cut_off = to == CUT && seq > lost;
                !(to == CUT && seq == lost)
            }
            _ => true,
        }
    };
    let sent: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| vec![i as u8; MESSAGE_BYTES])
        .collect();
    for data in &sent {
        common::mcast_agreed(&mut c.nodes[SENDER], GROUP, PID, data, 1);
    }
    c.run(10_000, pass);
    assert!(
        cut_off,
        "node 3 never received a frame of the sender past the lost one"
    );
    assert_eq!(c.nodes[CUT].members(), [NodeId(3)]);
    assert!(c.seen[CUT].transitional_without_sender);
    assert!(
        c.seen[CUT].from_sender.is_empty(),
        "node 3 delivered the sender's messages {:?} without message 0",
        c.seen[CUT]
            .from_sender
            .iter()
            .map(|d| d[0])
            .collect::<Vec<_>>()
    );
    assert!(
        c.nodes[CUT].stats().withheld_past_gap > 0,
        "node 3 did not hold the later frame: nothing exercised"
    );
    for i in [0, SENDER] {
        assert_eq!(c.seen[i].from_sender, sent, "node {} delivered all", i + 1);
    }
}
