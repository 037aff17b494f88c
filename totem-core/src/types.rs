//! Identifiers and small value types shared by every layer of the core.

use core::fmt;

/// A node's identity in the cluster (corosync's `nodeid`). Never zero.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A ring (configuration) identity: the representative that formed it and its ring sequence.
/// Real rings have a sequence that is a multiple of 4; a node's initial singleton "ring" uses
/// `start | 1` so it can never collide with a ring formed by several nodes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct RingId {
    pub seq: u64,
    pub rep: u32,
}

impl RingId {
    /// No ring is numbered at or above this (2^60 configuration changes, 4 apart): a
    /// sequence from the wire at or above it is malformed, so numbering the next ring
    /// (`(highest / 4 + 1) * 4`) never overflows.
    pub const SEQ_LIMIT: u64 = 1 << 62;

    /// Whether this ring was formed by a membership round (its sequence a multiple of 4),
    /// rather than being a node's start-up pseudo-ring (`start | 1`).
    pub fn is_formed(&self) -> bool {
        self.seq % 4 == 0
    }

    /// Whether a node could have sent `seq` (see [`RingId::SEQ_LIMIT`]).
    pub fn plausible(seq: u64) -> bool {
        seq < RingId::SEQ_LIMIT
    }
}

impl fmt::Display for RingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:x}", self.rep, self.seq)
    }
}

/// Monotonic time in nanoseconds, supplied by the caller; the core has no clock of its own.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Instant(pub u64);

impl Instant {
    pub fn plus_ms(self, ms: u32) -> Instant {
        Instant(self.0.saturating_add(u64::from(ms) * 1_000_000))
    }
    pub fn plus_ns(self, ns: u64) -> Instant {
        Instant(self.0.saturating_add(ns))
    }
}

/// Delivery guarantee of a group message (EVS).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Guarantee {
    /// Delivered once every message before it in the total order is delivered.
    Agreed,
    /// Delivered once, in addition, every member of the configuration is known to have it.
    Safe,
}

/// Where a frame produced by the core has to go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dest {
    /// Every node of the cluster (multicast, or unicast to each configured node).
    All,
    /// One node: the ring successor for tokens, anyone for retransmissions.
    Node(NodeId),
}
