//! Deliveries borrow the ring's frame store (the one copy of a received message) instead of
//! copying it: they must read the bytes that were multicast however long they stay queued —
//! while the store frees their frames and reuses the slots for newer ones — and a node whose
//! events are polled after every input must never need a fresh store buffer.

use totem_core::limits::RETAINED_FRAMES_MAX;
use totem_core::{
    cluster_hash, ClusterShape, Event, Guarantee, Instant, Node, NodeConfig, NodeId, Request,
    TotemSettings,
};

const GROUP: &[u8] = b"borrow";
const PID: u32 = 7;
/// Sizes cycled through: empty, small, about a frame, just over a frame, several frames, many.
const SIZES: [usize; 8] = [0, 1, 63, 700, 1300, 1500, 5_000, 70_000];

fn payload(index: usize) -> Vec<u8> {
    let len = SIZES[index % SIZES.len()];
    (0..len)
        .map(|i| (i as u64 * 31 + index as u64 * 7919) as u8)
        .collect()
}

/// A node alone in its ring, operational, its process joined to `GROUP`.
fn alone() -> (Node, u64) {
    let config = NodeConfig {
        totem: TotemSettings::default(),
        shape: ClusterShape::ALONE,
        identity: Default::default(),
        key_id: 0,
        node_id: NodeId(1),
        cluster: cluster_hash("borrow"),
        incarnation: 1,
        ring_seq_start: 0,
        seed: 3,
    };
    let mut node = Node::new(config, Instant(0)).expect("valid config");
    let mut now = 0;
    while !node.is_operational() {
        now = node.poll_timeout().expect("a timer runs").0;
        node.handle_timeout(Instant(now));
        while node.poll_transmit().is_some() {}
    }
    node.submit(Request::Join {
        group: GROUP,
        pid: PID,
    })
    .expect("join");
    (node, now)
}

/// Multicasts `count` messages and runs the node until all are delivered; events are polled
/// after every input when `poll_each_input`, else only at the end. Returns the data delivered.
fn run(count: usize, poll_each_input: bool) -> (Node, Vec<Vec<u8>>) {
    let (mut node, mut now) = alone();
    let mut delivered = Vec::new();
    let poll = |node: &mut Node, delivered: &mut Vec<Vec<u8>>| {
        while let Some(event) = node.poll_event() {
            if let Event::Deliver(d) = event {
                assert_eq!((d.group, d.sender.pid), (GROUP, PID));
                assert_eq!(d.guarantee, Guarantee::Agreed);
                delivered.push(d.data.to_vec());
            }
        }
    };
    let mut submitted = 0;
    let mut inputs = 0;
    while submitted < count
        || node.queued_bytes() > 0
        || node.stats().delivered < node.stats().data_out
    {
        while submitted < count && node.queued_bytes() < 256 << 10 {
            let data = payload(submitted);
            match node.submit(Request::Mcast {
                group: GROUP,
                pid: PID,
                guarantee: Guarantee::Agreed,
                data: &data,
            }) {
                Ok(()) => submitted += 1,
                Err(e) => panic!("submit {submitted}: {e}"),
            }
        }
        now = node.poll_timeout().map_or(now, |t| t.0.max(now));
        node.handle_timeout(Instant(now));
        while node.poll_transmit().is_some() {}
        if poll_each_input {
            poll(&mut node, &mut delivered);
        }
        inputs += 1;
        assert!(inputs < 1_000_000, "the node stopped making progress");
    }
    poll(&mut node, &mut delivered);
    (node, delivered)
}

#[test]
fn queued_deliveries_survive_the_store_reusing_their_slots() {
    // Enough messages that the store goes round its window more than twice while every
    // delivery (and the frames it borrows) stays queued.
    let count = 1_500;
    let (node, delivered) = run(count, false);
    let frames = node.stats().data_out;
    assert!(
        frames > 2 * RETAINED_FRAMES_MAX as u64,
        "only {frames} frames: the store never went round"
    );
    assert!(
        node.stats().store_buffers_replaced > 0,
        "no slot was reused while borrowed: the test exercises nothing"
    );
    assert_eq!(delivered.len(), count);
    for (i, data) in delivered.iter().enumerate() {
        assert!(
            *data == payload(i),
            "delivery {i} ({} bytes) altered",
            data.len()
        );
    }
}

#[test]
fn promptly_polled_deliveries_never_replace_a_store_buffer() {
    let count = 1_500;
    let (node, delivered) = run(count, true);
    assert!(node.stats().data_out > 2 * RETAINED_FRAMES_MAX as u64);
    assert_eq!(node.stats().store_buffers_replaced, 0, "{:?}", node.stats());
    assert_eq!(delivered.len(), count);
    for (i, data) in delivered.iter().enumerate() {
        assert!(
            *data == payload(i),
            "delivery {i} ({} bytes) altered",
            data.len()
        );
    }
}
