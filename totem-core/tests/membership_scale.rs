//! Membership messages larger than a frame: 64 nodes form one ring at the default netmtu, their
//! commit tokens cut into pieces (and reassembled, some pieces lost on the way); malformed
//! pieces are dropped and counted, never taken; presences of a node that hears everyone but
//! is heard by nobody leave it out of the others' ring. Every node's invariants are asserted
//! after every input.

mod common;

use totem_core::config::explicit;
use totem_core::wire::{self, Header, SegmentHdr, MAGIC, VERSION};
use totem_core::{cluster_hash, ClusterShape, Dest, Instant, Node, NodeId, State, TotemSettings};
use zerocopy::IntoBytes;

const MS: u64 = 1_000_000;

fn shape(nodes: u32) -> ClusterShape {
    ClusterShape {
        nodelist_count: nodes,
        ..ClusterShape::ALONE
    }
}

fn node(id: u32, nodes: u32) -> Node {
    let totem = TotemSettings::resolve(
        explicit(&[("token", 300), ("token_coefficient", 10), ("merge", 100)]),
        &shape(nodes),
    )
    .expect("valid settings");
    common::node(common::config(id, totem, shape(nodes), "scale"))
}

/// An in-memory network: every datagram arrives at once, except those `drop` refuses.
struct Cluster {
    nodes: Vec<Node>,
    now: u64,
    sent: u64,
}

impl Cluster {
    fn new(count: u32) -> Cluster {
        Cluster {
            nodes: (1..=count).map(|i| node(i, count)).collect(),
            now: 0,
            sent: 0,
        }
    }

    fn run_until(
        &mut self,
        until_ms: u64,
        drop: &mut impl FnMut(u64, usize, usize, &[u8]) -> bool,
    ) {
        loop {
            let mut wire = Vec::new();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                while let Some(t) = n.poll_transmit() {
                    wire.push((i, t.dest, t.bytes));
                }
                while n.poll_event().is_some() {}
                while n.poll_notice().is_some() {}
            }
            if !wire.is_empty() {
                for (from, dest, bytes) in wire {
                    for to in 0..self.nodes.len() {
                        let addressed = match dest {
                            Dest::All => to != from,
                            Dest::Node(id) => id.0 as usize == to + 1,
                        };
                        self.sent += 1;
                        if addressed && !drop(self.sent, from, to, &bytes) {
                            let sender = NodeId(from as u32 + 1);
                            self.nodes[to].handle_datagram(Instant(self.now), sender, &bytes);
                        }
                    }
                }
                continue;
            }
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.poll_timeout())
                .min()
                .map_or(u64::MAX, |t| t.0);
            if next > until_ms * MS {
                self.now = until_ms * MS;
                return;
            }
            self.now = next.max(self.now);
            for n in self.nodes.iter_mut() {
                if n.poll_timeout().is_some_and(|t| t.0 <= self.now) {
                    n.handle_timeout(Instant(self.now));
                }
            }
        }
    }
}

#[test]
fn sixty_four_nodes_form_one_ring_at_the_default_netmtu() {
    let mut c = Cluster::new(64);
    // Three pieces of membership messages are lost on the way (each costs its message one
    // retransmission: a commit token of 64 members is three pieces at the default netmtu).
    let mut lost = 0;
    let mut drop = |sent: u64, _: usize, _: usize, bytes: &[u8]| {
        let hit = bytes.get(3) == Some(&wire::KIND_SEGMENT) && sent % 7 == 0 && lost < 3;
        lost += u32::from(hit);
        hit
    };
    c.run_until(10_000, &mut drop);
    assert_eq!(lost, 3);
    let all: Vec<NodeId> = (1..=64).map(NodeId).collect();
    for n in &c.nodes {
        assert_eq!(n.state(), State::Operational, "node {}", n.node_id());
        assert_eq!(n.members(), all.as_slice(), "node {}", n.node_id());
        assert_eq!(n.ring(), c.nodes[0].ring());
    }
    let pieces: u64 = c.nodes.iter().map(|n| n.stats().segments_out).sum();
    assert!(pieces > 0, "no commit token went in pieces");
    // Idle, the ring keeps its token: only the representative holds it (were every member to
    // hold it, a rotation would take 64 holds, far beyond the token timeout).
    let installed: Vec<u64> = c.nodes.iter().map(|n| n.stats().rings_installed).collect();
    c.run_until(20_000, &mut |_, _, _, _| false);
    for (n, before) in c.nodes.iter().zip(installed) {
        assert_eq!(n.stats().rings_installed, before, "node {}", n.node_id());
        assert_eq!(n.stats().token_lost, 0, "node {}", n.node_id());
    }
}

#[test]
fn a_node_heard_by_nobody_is_left_out_and_the_rest_stay_put() {
    let mut c = Cluster::new(4);
    c.run_until(2_000, &mut |_, _, _, _| false);
    assert!(c.nodes.iter().all(|n| n.members().len() == 4));
    // From now on nothing node 4 sends arrives.
    let mut deaf_to_4 = |_: u64, from: usize, _: usize, _: &[u8]| from == 3;
    c.run_until(4_000, &mut deaf_to_4);
    let rings: Vec<_> = c.nodes.iter().map(|n| n.ring()).collect();
    let installed: Vec<_> = c.nodes.iter().map(|n| n.stats().rings_installed).collect();
    for n in &c.nodes[..3] {
        assert_eq!(n.members(), &[NodeId(1), NodeId(2), NodeId(3)]);
    }
    assert_eq!(c.nodes[3].members(), &[NodeId(4)]);
    // Ten seconds more of the same: no ring changes anywhere.
    c.run_until(14_000, &mut deaf_to_4);
    for (i, n) in c.nodes.iter().enumerate() {
        assert_eq!(n.ring(), rings[i], "node {} formed another ring", i + 1);
        assert_eq!(n.stats().rings_installed, installed[i]);
    }
    // Heal: one ring of all four.
    c.run_until(16_000, &mut |_, _, _, _| false);
    assert!(c.nodes.iter().all(|n| n.members().len() == 4));
}

fn segment(sender: u32, hdr: SegmentHdr, piece: &[u8]) -> Vec<u8> {
    let mut bytes = Header {
        magic: MAGIC,
        version: VERSION,
        kind: wire::KIND_SEGMENT,
        cluster: cluster_hash("scale").into(),
        sender: sender.into(),
        incarnation: 1.into(),
    }
    .as_bytes()
    .to_vec();
    bytes.extend_from_slice(hdr.as_bytes());
    bytes.extend_from_slice(piece);
    bytes
}

#[test]
fn malformed_pieces_are_dropped_and_counted() {
    let mut n = node(1, 3);
    let good = SegmentHdr {
        kind: wire::KIND_JOIN,
        _pad: 0,
        index: 0.into(),
        count: 2.into(),
        piece_len: 100.into(),
        message: 1.into(),
        total_len: 150.into(),
    };
    let bad = [
        // Not a membership message.
        SegmentHdr {
            kind: wire::KIND_DATA,
            ..good
        },
        // One piece only, or more than SEGMENTS_MAX.
        SegmentHdr {
            count: 1.into(),
            total_len: 100.into(),
            ..good
        },
        SegmentHdr {
            count: 65.into(),
            total_len: 6500.into(),
            piece_len: 100.into(),
            ..good
        },
        // A piece past the count; a count that does not match the lengths.
        SegmentHdr {
            index: 2.into(),
            ..good
        },
        SegmentHdr {
            count: 3.into(),
            ..good
        },
        // Larger than any membership message.
        SegmentHdr {
            count: 64.into(),
            piece_len: 60_000.into(),
            total_len: 3_800_000.into(),
            ..good
        },
    ];
    for hdr in bad {
        n.handle_datagram(Instant(1), NodeId(2), &segment(2, hdr, &[0; 100]));
    }
    assert_eq!(n.stats().drop_malformed, bad.len() as u64);
    // A piece shorter than it says.
    n.handle_datagram(Instant(1), NodeId(2), &segment(2, good, &[0; 40]));
    assert_eq!(n.stats().drop_truncated, 1);
    // Both pieces of a join of garbage (but of our configuration digest): reassembled, then
    // refused by the join decoder.
    let mut first = [0xff; 100];
    first[16..24].copy_from_slice(&n.identity().digest().to_be_bytes());
    n.handle_datagram(Instant(1), NodeId(2), &segment(2, good, &first));
    let last = SegmentHdr {
        index: 1.into(),
        ..good
    };
    n.handle_datagram(Instant(1), NodeId(2), &segment(2, last, &[0xff; 50]));
    assert_eq!(n.stats().drop_malformed, bad.len() as u64 + 1);
    assert_eq!(n.stats().joins_in, 0);
}
