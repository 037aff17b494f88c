//! Accelerated Ring: a token holder with more new frames than `accelerated_window` multicasts
//! the first ones, passes the token on, and multicasts the last `accelerated_window` after it;
//! the token it passes already counts them (its seq is the last of them, its `tail` says how
//! many follow). With the window 0 nothing follows the token (classic Totem). Three nodes on
//! an in-memory network; node 1 has a backlog of one-frame messages.

mod common;

use totem_core::config::explicit;
use totem_core::wire::{DataHdr, Header, TokenHdr, KIND_DATA, KIND_TOKEN};
use totem_core::{ClusterShape, Event, Node, TotemSettings};
use zerocopy::FromBytes;

const MS: u64 = 1_000_000;
const MAX_MESSAGES: u32 = 10;
const GROUP: &[u8] = b"accel";
const PID: u32 = 7;
const MESSAGES: usize = 300;

const SHAPE: ClusterShape = ClusterShape {
    nodelist_count: 3,
    ..ClusterShape::ALONE
};

fn node(id: u32, accelerated_window: u32) -> Node {
    let totem = TotemSettings::resolve(
        explicit(&[
            ("token", 1000),
            ("token_coefficient", 0),
            ("window_size", 3 * MAX_MESSAGES),
            ("max_messages", MAX_MESSAGES),
            ("accelerated_window", accelerated_window),
        ]),
        &SHAPE,
    )
    .expect("valid settings");
    common::node(common::config(id, totem, SHAPE, "accelerated"))
}

/// One of node 1's token visits as its datagrams left it.
#[derive(Debug, Default)]
struct Visit {
    /// Seqs of the new data frames queued before the token, and after it.
    before: Vec<u64>,
    after: Vec<u64>,
    /// The passed token's seq and tail.
    token_seq: u64,
    token_tail: u32,
}

fn body(bytes: &[u8]) -> &[u8] {
    &bytes[size_of::<Header>()..]
}

/// Runs the nodes until `until_ms`, recording node 1's visits (from its datagrams in the order
/// it queued them) and every node's deliveries.
fn run(
    nodes: &mut [Node],
    now: &mut u64,
    until_ms: u64,
    visits: &mut Vec<Visit>,
    delivered: &mut [usize; 3],
) {
    let mut high = 0u64;
    let mut current = Visit::default();
    loop {
        let mut wire = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Some(t) = n.poll_transmit() {
                let kind = t.bytes.get(3).copied();
                if i == 0 && kind == Some(KIND_DATA) {
                    let (hdr, _) = DataHdr::ref_from_prefix(body(&t.bytes)).expect("data");
                    let seq = hdr.seq.get();
                    if seq > high {
                        high = seq;
                        if current.token_seq == 0 {
                            current.before.push(seq);
                        } else {
                            current.after.push(seq);
                        }
                    }
                } else if i == 0 && kind == Some(KIND_TOKEN) {
                    let (hdr, _) = TokenHdr::ref_from_prefix(body(&t.bytes)).expect("token");
                    // A retransmitted token is the same visit's.
                    if current.token_seq == 0 {
                        current.token_seq = hdr.seq.get();
                        current.token_tail = hdr.tail.get();
                    }
                }
                wire.push((i, t.dest, t.bytes));
            }
            // The end of what node 1 queued for one input: its tail follows the token at once.
            if i == 0 && current.token_seq != 0 {
                visits.push(std::mem::take(&mut current));
            }
            while let Some(ev) = n.poll_event() {
                if let Event::Deliver(d) = ev {
                    if d.group == GROUP {
                        delivered[i] += 1;
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

/// Node 1's visits while it sends `MESSAGES` one-frame messages, and what each node delivered.
fn visits_with(accelerated_window: u32) -> (Vec<Visit>, [usize; 3]) {
    let mut nodes: Vec<Node> = (1..=3).map(|id| node(id, accelerated_window)).collect();
    let (mut now, mut visits, mut delivered) = (0, Vec::new(), [0; 3]);
    run(&mut nodes, &mut now, 3_000, &mut visits, &mut delivered);
    assert!(nodes.iter().all(Node::is_operational), "no ring formed");
    assert_eq!(nodes[0].members().len(), 3);
    common::join_all(&mut nodes, GROUP, PID);
    run(&mut nodes, &mut now, 4_000, &mut visits, &mut delivered);
    let data = [0x5au8; 1000];
    common::mcast_agreed(&mut nodes[0], GROUP, PID, &data, MESSAGES);
    visits.clear();
    run(&mut nodes, &mut now, 20_000, &mut visits, &mut delivered);
    visits.retain(|v| !v.before.is_empty() || !v.after.is_empty());
    (visits, delivered)
}

#[test]
fn the_token_leaves_before_the_last_accelerated_window_frames() {
    const WINDOW: u32 = 4;
    let (visits, delivered) = visits_with(WINDOW);
    assert!(
        visits
            .iter()
            .any(|v| v.before.len() + v.after.len() > WINDOW as usize),
        "no visit had more frames than the window: the test exercises nothing ({visits:?})"
    );
    for v in &visits {
        let sent = v.before.len() + v.after.len();
        assert_eq!(
            v.after.len(),
            sent.min(WINDOW as usize),
            "the last min(sent, accelerated_window) frames follow the token: {v:?}"
        );
        assert_eq!(
            v.token_tail as usize,
            v.after.len(),
            "the token says how many follow: {v:?}"
        );
        // The token counts every frame of the visit: the ones after it are its top seqs.
        let last = v.after.last().or(v.before.last()).copied();
        assert_eq!(
            Some(v.token_seq),
            last,
            "the token's seq is the visit's last frame: {v:?}"
        );
        assert!(
            v.before.iter().all(|s| v.after.iter().all(|a| s < a)),
            "frames before the token are the visit's first: {v:?}"
        );
    }
    assert_eq!(
        delivered, [MESSAGES; 3],
        "every node delivers every message"
    );
}

#[test]
fn window_zero_passes_the_token_after_every_frame() {
    let (visits, delivered) = visits_with(0);
    assert!(!visits.is_empty(), "node 1 sent nothing");
    for v in &visits {
        assert!(v.after.is_empty(), "a frame followed the token: {v:?}");
        assert_eq!(v.token_tail, 0);
        assert_eq!(Some(v.token_seq), v.before.last().copied(), "{v:?}");
    }
    assert_eq!(
        delivered, [MESSAGES; 3],
        "every node delivers every message"
    );
}
