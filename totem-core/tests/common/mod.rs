//! What the in-memory cluster tests share: a node as they all build it.

use totem_core::{
    cluster_hash, ClusterShape, Dest, Guarantee, Instant, Node, NodeConfig, NodeId, Request,
    TotemSettings,
};

/// A node's config: id `id`, incarnation 1, key 0, no config identity, seeded by its id.
pub fn config(id: u32, totem: TotemSettings, shape: ClusterShape, cluster: &str) -> NodeConfig {
    NodeConfig {
        totem,
        shape,
        identity: Default::default(),
        key_id: 0,
        node_id: NodeId(id),
        cluster: cluster_hash(cluster),
        incarnation: 1,
        ring_seq_start: 0,
        seed: u64::from(id),
    }
}

/// A node at time 0 that checks every invariant after every input.
pub fn node(config: NodeConfig) -> Node {
    let mut node = Node::new(config, Instant(0)).expect("valid config");
    node.set_check_all_invariants(true);
    node
}

/// Hands every datagram of `wire` (sender's index, destination, bytes) to the nodes it is
/// addressed to, at `now_ns`: a loss-free network with no delay. Node `i` has id `i + 1`.
#[allow(dead_code)] // Only the tests that drive a cluster by hand use it.
pub fn deliver(nodes: &mut [Node], now_ns: u64, wire: Vec<(usize, Dest, Vec<u8>)>) {
    deliver_through(nodes, now_ns, wire, |_, _, _| true);
}

/// `deliver` on a network that hands node `to` the datagram `bytes` of node `from` only when
/// `pass(from, to, bytes)` (indices, not ids).
#[allow(dead_code)] // Only the tests that drive a cluster by hand use it.
pub fn deliver_through(
    nodes: &mut [Node],
    now_ns: u64,
    wire: Vec<(usize, Dest, Vec<u8>)>,
    mut pass: impl FnMut(usize, usize, &[u8]) -> bool,
) {
    for (from, dest, bytes) in wire {
        for (to, n) in nodes.iter_mut().enumerate() {
            let addressed = match dest {
                Dest::All => to != from,
                Dest::Node(id) => id.0 as usize == to + 1,
            };
            if addressed && pass(from, to, &bytes) {
                n.handle_datagram(Instant(now_ns), NodeId(from as u32 + 1), &bytes);
            }
        }
    }
}

/// Moves `now_ns` on to the earliest timer of any node and fires the timers due then; false
/// (with `now_ns` at `until_ns`) when that timer is later than `until_ns`.
#[allow(dead_code)] // Only the tests that drive a cluster by hand use it.
pub fn fire_timers(nodes: &mut [Node], now_ns: &mut u64, until_ns: u64) -> bool {
    let next = nodes
        .iter()
        .filter_map(|n| n.poll_timeout())
        .min()
        .map_or(u64::MAX, |t| t.0);
    if next > until_ns {
        *now_ns = until_ns;
        return false;
    }
    *now_ns = next.max(*now_ns);
    for n in nodes.iter_mut() {
        if n.poll_timeout().is_some_and(|t| t.0 <= *now_ns) {
            n.handle_timeout(Instant(*now_ns));
        }
    }
    true
}

/// Runs `nodes` (node i has id i + 1) until simulated time `until_ms`, `now` being the clock in
/// nanoseconds, on a loss-free network that delivers every datagram at once. `alive[i]` false
/// drops everything to and from node i and stops its timers. After each round of reading a
/// node's datagrams, `drain(i, node)` reads its other outputs.
// Each test file compiles this module on its own; the files with their own lossy network
// (flow_control, membership_scale) do not use it.
#[allow(dead_code)]
pub fn run_until(
    nodes: &mut [Node],
    alive: &[bool],
    now: &mut u64,
    until_ms: u64,
    drain: impl FnMut(usize, &mut Node),
) {
    let pass = |from: usize, to: usize, _: &[u8]| alive[from] && alive[to];
    run_until_through(nodes, alive, now, until_ms, pass, drain);
}

/// `run_until` on a network that hands node `to` the datagram `bytes` of node `from` only when
/// `pass(from, to, bytes)`; the timers of node i run while `running[i]`.
#[allow(dead_code)]
pub fn run_until_through(
    nodes: &mut [Node],
    running: &[bool],
    now: &mut u64,
    until_ms: u64,
    mut pass: impl FnMut(usize, usize, &[u8]) -> bool,
    mut drain: impl FnMut(usize, &mut Node),
) {
    const MS: u64 = 1_000_000;
    loop {
        let mut wire = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Some(t) = n.poll_transmit() {
                wire.push((i, t.dest, t.bytes));
            }
            drain(i, n);
        }
        if !wire.is_empty() {
            deliver_through(nodes, *now, wire, &mut pass);
            continue;
        }
        let next = nodes
            .iter()
            .zip(running)
            .filter(|(_, running)| **running)
            .filter_map(|(n, _)| n.poll_timeout())
            .min()
            .map_or(u64::MAX, |t| t.0);
        if next > until_ms * MS {
            *now = until_ms * MS;
            return;
        }
        *now = next.max(*now);
        for (n, running) in nodes.iter_mut().zip(running) {
            if *running && n.poll_timeout().is_some_and(|t| t.0 <= *now) {
                n.handle_timeout(Instant(*now));
            }
        }
    }
}

/// Every node's process `pid` joins `group`.
#[allow(dead_code)] // Only the tests that load a group by hand use it.
pub fn join_all(nodes: &mut [Node], group: &[u8], pid: u32) {
    for n in nodes.iter_mut() {
        n.submit(Request::Join { group, pid }).expect("join");
    }
}

/// `count` agreed multicasts of `data` to `group` from `node`'s process `pid`.
#[allow(dead_code)] // Only the tests that load a group by hand use it.
pub fn mcast_agreed(node: &mut Node, group: &[u8], pid: u32, data: &[u8], count: usize) {
    for _ in 0..count {
        node.submit(Request::Mcast {
            group,
            pid,
            guarantee: Guarantee::Agreed,
            data,
        })
        .expect("mcast");
    }
}
