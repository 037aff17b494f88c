//! What the in-memory cluster tests share: a node as they all build it.

use totem_core::{cluster_hash, ClusterShape, Instant, Node, NodeConfig, NodeId, TotemSettings};

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
