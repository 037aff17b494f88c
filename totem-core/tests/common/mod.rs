//! What the in-memory cluster tests share: a node as they all build it, and a loss-free
//! network to run nodes on.

use totem_core::{
    cluster_hash, ClusterShape, Dest, Instant, Node, NodeConfig, NodeId, TotemSettings,
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
    mut drain: impl FnMut(usize, &mut Node),
) {
    const MS: u64 = 1_000_000;
    loop {
        let mut wire = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            while let Some(t) = n.poll_transmit() {
                if alive[i] {
                    wire.push((i, t.dest, t.bytes));
                }
            }
            drain(i, n);
        }
        if !wire.is_empty() {
            for (from, dest, bytes) in wire {
                for to in 0..nodes.len() {
                    let addressed = match dest {
                        Dest::All => to != from,
                        Dest::Node(id) => id.0 as usize == to + 1,
                    };
                    if addressed && alive[to] {
                        let sender = NodeId(from as u32 + 1);
                        nodes[to].handle_datagram(Instant(*now), sender, &bytes);
                    }
                }
            }
            continue;
        }
        let next = nodes
            .iter()
            .zip(alive)
            .filter(|(_, alive)| **alive)
            .filter_map(|(n, _)| n.poll_timeout())
            .min()
            .map_or(u64::MAX, |t| t.0);
        if next > until_ms * MS {
            *now = until_ms * MS;
            return;
        }
        *now = next.max(*now);
        for (n, alive) in nodes.iter_mut().zip(alive) {
            if *alive && n.poll_timeout().is_some_and(|t| t.0 <= *now) {
                n.handle_timeout(Instant(*now));
            }
        }
    }
}
