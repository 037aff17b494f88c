//! Traffic no honest member sends (forged, or altered on the way: a cluster without
//! authentication), at three members of a ring in memory; every node's invariants hold after
//! every input, and every member delivers the same messages in the same order.
//!
//! A data frame that no token numbered: a member that does not hold the token may already
//! have delivered it; it then refuses the next token, which claims less than it holds, the
//! token is lost and the same members form a new ring, whose recovery delivers the frame
//! everywhere. A member holding the token (an idle ring's representative) drops such a frame
//! on arrival: nobody numbers frames meanwhile. It drops a second token too: the ring's one
//! token is the one it holds.

mod common;

use totem_core::config::explicit;
use totem_core::wire::{DataHdr, Header, TokenHdr, FLAG_RECOVERY, KIND_DATA, KIND_TOKEN};
use totem_core::{ClusterShape, Event, Instant, Node, NodeId, TotemSettings};
use zerocopy::FromBytes;

const SHAPE: ClusterShape = ClusterShape {
    nodelist_count: 3,
    ..ClusterShape::ALONE
};
const GROUP: &[u8] = b"unnumbered";
const PID: u32 = 9;
/// The member that receives the forged frames (index; not the representative, which holds the
/// idle ring's token), and the sender whose frame is copied.
const VICTIM: usize = 2;
const SENDER: usize = 1;
const REP: usize = 0;

fn node(id: u32) -> Node {
    let totem = TotemSettings::resolve(
        explicit(&[("token", 1000), ("token_coefficient", 0)]),
        &SHAPE,
    )
    .expect("valid settings");
    common::node(common::config(id, totem, SHAPE, "unnumbered"))
}

struct Cluster {
    nodes: Vec<Node>,
    now: u64,
    /// Per node: every message delivered to the group (sender's node, data), in order.
    delivered: Vec<Vec<(NodeId, Vec<u8>)>>,
    /// Per node: configuration changes seen.
    configs: Vec<usize>,
    /// The highest (ring sequence, sequence) of any data frame on the wire, and the last of
    /// `SENDER`'s first transmissions.
    highest: (u64, u64),
    sender_frame: Option<Vec<u8>>,
    /// The last token passed to the representative.
    rep_token: Option<Vec<u8>>,
}

/// A data frame's ring sequence, sequence, and, for a first transmission (not a recovery
/// frame), its origin.
fn data_frame(bytes: &[u8]) -> Option<(u64, u64, Option<u32>)> {
    if bytes.get(3) != Some(&KIND_DATA) {
        return None;
    }
    let (data, _) = DataHdr::ref_from_prefix(bytes.get(size_of::<Header>()..)?).ok()?;
    let origin = (data.flags & FLAG_RECOVERY == 0).then(|| data.origin.get());
    Some((data.ring_seq.get(), data.seq.get(), origin))
}

impl Cluster {
    fn run(&mut self, until_ms: u64) {
        let (delivered, configs) = (&mut self.delivered, &mut self.configs);
        let (highest, sender_frame) = (&mut self.highest, &mut self.sender_frame);
        let rep_token = &mut self.rep_token;
        common::run_until_through(
            &mut self.nodes,
            &[true; 3],
            &mut self.now,
            until_ms,
            |from, to, bytes| {
                if to == REP && bytes.get(3) == Some(&KIND_TOKEN) {
                    *rep_token = Some(bytes.to_vec());
                }
                if let Some((ring_seq, seq, origin)) = data_frame(bytes) {
                    *highest = (*highest).max((ring_seq, seq));
                    if from == SENDER && origin == Some(SENDER as u32 + 1) {
                        *sender_frame = Some(bytes.to_vec());
                    }
                }
                true
            },
            |i, n| {
                while let Some(event) = n.poll_event() {
                    match event {
                        Event::Deliver(d) => delivered[i].push((d.sender.node, d.data.to_vec())),
                        Event::Config(_) => configs[i] += 1,
                        Event::Group(_) => {}
                    }
                }
            },
        );
    }

    /// Hands node `to` a copy of `SENDER`'s last frame renumbered `seq`, as if from `SENDER`.
    fn forge(&mut self, to: usize, seq: u64) {
        let mut bytes = self.sender_frame.clone().expect("a frame of the sender");
        let (data, _) = DataHdr::mut_from_prefix(&mut bytes[size_of::<Header>()..]).unwrap();
        data.seq = seq.into();
        let now = Instant(self.now);
        self.nodes[to].handle_datagram(now, NodeId(SENDER as u32 + 1), &bytes);
    }

    fn assert_all_delivered_alike(&self) {
        for (i, d) in self.delivered.iter().enumerate() {
            assert_eq!(
                d,
                &self.delivered[VICTIM],
                "node {} delivered otherwise than node {}",
                i + 1,
                VICTIM + 1
            );
        }
    }
}

#[test]
fn forged_frames_are_delivered_by_all_or_by_none_and_a_second_token_is_dropped() {
    let mut c = Cluster {
        nodes: (1..=3).map(node).collect(),
        now: 0,
        delivered: vec![Vec::new(); 3],
        configs: vec![0; 3],
        highest: (0, 0),
        sender_frame: None,
        rep_token: None,
    };
    c.run(2_000);
    for n in &c.nodes {
        assert_eq!(n.members().len(), 3, "the ring of three formed");
    }
    common::join_all(&mut c.nodes, GROUP, PID);
    c.run(3_000);
    common::mcast_agreed(&mut c.nodes[SENDER], GROUP, PID, b"first", 1);
    c.run(4_000);
    assert_eq!(c.delivered[VICTIM].len(), 1);
    c.assert_all_delivered_alike();

    // Right above the highest frame, at a member that does not hold the token: it delivers
    // the copy at once and refuses the next token (which claims less than it holds) as not
    // one an honest member sent. The token is lost, the same three form a new ring, and the
    // copy, recovered from the old ring, is delivered everywhere.
    let malformed = c.nodes[VICTIM].stats().drop_malformed;
    let rings: Vec<u64> = c.nodes.iter().map(|n| n.stats().rings_installed).collect();
    c.forge(VICTIM, c.highest.1 + 1);
    c.run(8_000);
    assert!(c.nodes[VICTIM].stats().drop_malformed > malformed);
    assert_eq!(c.delivered[VICTIM].len(), 2, "the copy delivered");
    c.assert_all_delivered_alike();
    for (n, before) in c.nodes.iter().zip(rings) {
        assert_eq!(n.members().len(), 3, "the same three in the new ring");
        assert_eq!(n.stats().rings_installed, before + 1, "one new ring");
    }
    common::mcast_agreed(&mut c.nodes[REP], GROUP, PID, b"after", 1);
    c.run(9_000);
    assert_eq!(c.delivered[VICTIM].len(), 3);
    c.assert_all_delivered_alike();

    // At the representative while it holds the idle ring's token: dropped on arrival, and
    // nothing changes.
    let configs = c.configs.clone();
    let malformed = c.nodes[REP].stats().drop_malformed;
    c.forge(REP, c.highest.1 + 1);
    assert_eq!(c.nodes[REP].stats().drop_malformed, malformed + 1);
    c.run(11_000);
    assert_eq!(c.delivered[VICTIM].len(), 3);
    c.assert_all_delivered_alike();
    assert_eq!(c.configs, configs, "the ring kept its membership");

    // A second token at the representative holding one (the last it was passed, numbered
    // as a later visit), with a message of its own waiting: dropped, and the ring goes on
    // with the token it holds.
    let mut token = c
        .rep_token
        .clone()
        .expect("a token passed to the representative");
    let (hdr, _) = TokenHdr::mut_from_prefix(&mut token[size_of::<Header>()..]).unwrap();
    hdr.token_seq = (hdr.token_seq.get() + 1_000).into();
    let from = NodeId(Header::ref_from_prefix(&token).unwrap().0.sender.get());
    let not_expected = c.nodes[REP].stats().drop_not_expected;
    let tokens = c.nodes[REP].stats().tokens;
    common::mcast_agreed(&mut c.nodes[REP], GROUP, PID, b"held", 1);
    let now = Instant(c.now);
    c.nodes[REP].handle_datagram(now, from, &token);
    assert_eq!(c.nodes[REP].stats().drop_not_expected, not_expected + 1);
    assert_eq!(
        c.nodes[REP].stats().tokens,
        tokens,
        "no visit of the second token"
    );
    c.run(12_000);
    assert_eq!(c.delivered[VICTIM].len(), 4);
    c.assert_all_delivered_alike();
    assert_eq!(c.configs, configs, "the ring kept its membership");
}
