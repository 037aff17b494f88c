//! A member with a new message asks the representative not to hold the token (a hold-cancel
//! frame to every member) only when the representative may hold it before the token comes
//! back: when the token the member last passed on said so (`TOKEN_HOLD_NEXT`). On a busy ring
//! the message goes out on the token's next visit and costs no member a frame; on an idle
//! ring, whose token the representative holds, the cancel goes out and the message does not
//! wait for the hold timer. `Node::token_returns_unasked` says which of the two a submit would
//! meet, and `Node::submit_can_wait` when an embedding need not wake for a submit at all.
//! Three nodes on an in-memory network that delivers at once.

mod common;

use totem_core::config::explicit;
use totem_core::wire::{KIND_HOLD_CANCEL, KIND_TOKEN};
use totem_core::{ClusterShape, Event, Node, TotemSettings};

const MS: u64 = 1_000_000;
const GROUP: &[u8] = b"hold";
const PID: u32 = 5;

const SHAPE: ClusterShape = ClusterShape {
    nodelist_count: 3,
    ..ClusterShape::ALONE
};

struct Net {
    nodes: Vec<Node>,
    now: u64,
    /// Hold-cancels each node sent.
    cancels: [usize; 3],
    /// Messages of `GROUP` each node delivered, and the time of the last.
    delivered: [usize; 3],
    last_delivery_ns: u64,
}

impl Net {
    /// Three nodes in one ring, every one's process `PID` in `GROUP`, the ring left idle.
    fn idle() -> Net {
        let totem = TotemSettings::resolve(
            explicit(&[("token", 1000), ("token_coefficient", 0)]),
            &SHAPE,
        )
        .expect("valid settings");
        let nodes = (1..=3)
            .map(|id| common::node(common::config(id, totem.clone(), SHAPE, "hold-cancel")))
            .collect();
        let mut net = Net {
            nodes,
            now: 0,
            cancels: [0; 3],
            delivered: [0; 3],
            last_delivery_ns: 0,
        };
        net.run_until(3_000 * MS);
        assert!(net.nodes.iter().all(Node::is_operational), "no ring formed");
        assert_eq!(net.nodes[0].members().len(), 3);
        common::join_all(&mut net.nodes, GROUP, PID);
        net.run_until(6_000 * MS);
        net.cancels = [0; 3];
        net
    }

    /// One round: moves every node's output to the wire (counting cancels and deliveries) and
    /// hands it on, or, with nothing in flight, fires the timers due next. Returns the
    /// (sender, kind) of each datagram moved; `None` when no timer is due by `until_ns`.
    fn step(&mut self, until_ns: u64) -> Option<Vec<(usize, u8)>> {
        let mut wire = Vec::new();
        let mut moved = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            while let Some(t) = n.poll_transmit() {
                let kind = t.bytes.get(3).copied().unwrap_or(0);
                if kind == KIND_HOLD_CANCEL {
                    self.cancels[i] += 1;
                }
                moved.push((i, kind));
                wire.push((i, t.dest, t.bytes));
            }
            while let Some(ev) = n.poll_event() {
                if matches!(ev, Event::Deliver(ref d) if d.group == GROUP) {
                    self.delivered[i] += 1;
                    self.last_delivery_ns = self.now;
                }
            }
        }
        if wire.is_empty() {
            return common::fire_timers(&mut self.nodes, &mut self.now, until_ns).then(Vec::new);
        }
        common::deliver(&mut self.nodes, self.now, wire);
        Some(moved)
    }

    /// Runs rounds until no timer is due by `until_ns`.
    fn run_until(&mut self, until_ns: u64) {
        while self.step(until_ns).is_some() {}
    }
}

#[test]
fn a_message_on_an_idle_ring_cancels_the_hold_and_does_not_wait_for_it() {
    let mut net = Net::idle();
    let start = net.now;
    // The idle ring's token is held or may be: a submit needs the node's action now, so an
    // embedding must wake for it.
    assert!(
        net.nodes.iter().all(|n| !n.token_returns_unasked()),
        "a node of the idle ring counts on the token coming back unasked"
    );
    // Node 3 is not the representative (the lowest id is), which holds the idle ring's token.
    common::mcast_agreed(&mut net.nodes[2], GROUP, PID, b"after a quiet spell", 1);
    assert!(
        !net.nodes[2].submit_can_wait(),
        "queued behind a held token, a next submit would still leave it for the token"
    );
    net.run_until(start + 2_000 * MS);
    assert_eq!(net.delivered, [1; 3], "every node delivers the message");
    assert_eq!(
        net.cancels,
        [0, 0, 1],
        "node 3 asks the holder to pass the token on, once"
    );
    assert!(
        net.last_delivery_ns - start < MS,
        "delivered {} µs after the submit: it waited for the hold timer",
        (net.last_delivery_ns - start) / 1_000
    );
}

#[test]
fn a_message_on_a_busy_ring_waits_for_the_token_and_sends_no_cancel() {
    let mut net = Net::idle();
    let start = net.now;
    // Node 1 keeps the ring busy for many rotations; node 2 adds one message right after it
    // has passed on a token of that busy ring, which therefore did not announce a hold.
    common::mcast_agreed(&mut net.nodes[0], GROUP, PID, &[0xa5; 900], 400);
    let cancels_before = net.cancels;
    let mut passes = 0;
    while passes < 2 {
        let moved = net
            .step(start + 2_000 * MS)
            .expect("the ring stopped before node 2 passed a token twice");
        passes += moved
            .iter()
            .filter(|&&(sender, kind)| sender == 1 && kind == KIND_TOKEN)
            .count();
    }
    // Exactly then the token comes back by itself. With nothing queued a submit should still
    // wake the embedding (the message is packed before the token comes); once one is queued,
    // a next one only joins it on that visit.
    assert!(
        net.nodes[1].token_returns_unasked(),
        "node 2 passed on a busy ring's token, yet says a submit needs it to act"
    );
    assert!(!net.nodes[1].submit_can_wait(), "nothing queued at node 2");
    common::mcast_agreed(&mut net.nodes[1], GROUP, PID, b"mid-stream", 1);
    assert!(
        net.nodes[1].submit_can_wait(),
        "node 2 has a message queued for the token's next visit"
    );
    net.run_until(start + 2_000 * MS);
    assert_eq!(
        net.delivered, [401; 3],
        "every node delivers node 1's 400 messages and node 2's one"
    );
    assert_eq!(
        net.cancels, cancels_before,
        "no member sent a hold-cancel while the ring was busy"
    );
}

#[test]
fn a_node_without_a_ring_of_others_never_counts_on_the_token() {
    let totem = TotemSettings::resolve(explicit(&[("token", 1000)]), &ClusterShape::ALONE)
        .expect("valid settings");
    let config = common::config(1, totem, ClusterShape::ALONE, "hold-cancel");
    let mut nodes = vec![common::node(config)];
    assert!(!nodes[0].token_returns_unasked(), "before any ring formed");
    let mut now = 0;
    loop {
        let mut wire = Vec::new();
        while let Some(t) = nodes[0].poll_transmit() {
            wire.push((0, t.dest, t.bytes));
        }
        while nodes[0].poll_event().is_some() {}
        if !wire.is_empty() {
            common::deliver(&mut nodes, now, wire);
        } else if !common::fire_timers(&mut nodes, &mut now, 3_000 * MS) {
            break;
        }
    }
    assert!(nodes[0].is_operational() && nodes[0].members().len() == 1);
    assert!(!nodes[0].token_returns_unasked(), "a ring of one");
    common::join_all(&mut nodes, GROUP, PID);
    assert!(
        !nodes[0].submit_can_wait(),
        "a ring of one, a message queued"
    );
}
