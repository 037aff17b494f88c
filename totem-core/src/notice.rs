//! What the protocol tells an operator: typed diagnostics of membership and retransmission
//! (`Node::poll_notice`), for the embedding to log. The core holds no text: the wording,
//! severity and destination of each line belong to the embedding (rotor-endpoint words them as
//! corosync does). Notices are outputs only; nothing in the protocol depends on them being read.

use crate::reach::BrokenPair;
use crate::srp::State;
use crate::types::{NodeId, RingId};

/// Why the node started looking for a new membership (the gather state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatherCause {
    /// The node has just started (it begins alone, gathering).
    Start,
    /// The token was not received within the token timeout, in the state given.
    TokenLost(State),
    /// A join message arrived from this node.
    Join { from: NodeId },
    /// A representative of another ring announced itself (merge detection).
    MergeDetected { from: NodeId },
    /// This node kept missing the same frames for `fail_recv_const` token rotations.
    FailedToReceive,
    /// The rows of who hears whom say the ring's members are no longer exactly this node's
    /// group: the largest set of nodes that all hear each other changed (see `reach`).
    Connectivity,
}

/// One diagnostic of the protocol. In the order the protocol produced them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `token_warning` percent of the token timeout has passed without a token
    /// (corosync: "Token has not been received in N ms"); repeats at that interval until the
    /// token comes or is declared lost.
    TokenNotReceived { since_ms: u64, token_ms: u32 },
    /// The token timed out. In the operational state this is a failed processor and a new
    /// configuration being formed; in commit or recovery, a formation that failed.
    TokenLost {
        state: State,
        token_ms: u32,
        consensus_ms: u32,
    },
    /// The consensus timeout expired in the gather state. `failed`: the nodes that did not
    /// agree in time and are now considered failed (empty: every live node agreed but no commit
    /// token came, and the round starts again).
    ConsensusTimeout {
        consensus_ms: u32,
        failed: Vec<NodeId>,
    },
    /// This node kept asking for the same missing frames for `rotations` token rotations and
    /// gives up on the members it cannot hear (corosync: "FAILED TO RECEIVE").
    FailedToReceive {
        ring: RingId,
        aru: u64,
        seq: u64,
        rotations: u32,
    },
    /// Entered the gather state.
    EnteredGather { cause: GatherCause },
    /// Entered the commit state for `ring` (the ring being formed).
    EnteredCommit { ring: RingId },
    /// Entered the recovery state for `ring` (old-ring frames are exchanged).
    EnteredRecovery { ring: RingId },
    /// Entered the operational state in `ring`.
    EnteredOperational { ring: RingId },
    /// A new membership was formed: every member, and who joined and left relative to the
    /// previous ring this node was in (sorted lists).
    Formed {
        ring: RingId,
        members: Vec<NodeId>,
        joined: Vec<NodeId>,
        left: Vec<NodeId>,
    },
    /// Members that left without announcing it (no leave message arrived from them): crashed,
    /// cut off, or paused (corosync: "Failed to receive the leave message. failed: …").
    LeaveNotReceived { ring: RingId, failed: Vec<NodeId> },
    /// This node asked for `count` missing frames on one token visit, `first..=last` among
    /// them.
    RetransmitRequested {
        ring: RingId,
        count: u32,
        first: u64,
        last: u64,
    },
    /// Some nodes do not hear each other both ways (one direction lost, or connectivity that
    /// is not transitive): `broken` lists such pairs (at most `BROKEN_PAIRS_REPORTED_MAX`,
    /// `more` counts the rest). Rings form of the largest sets of nodes that all hear each
    /// other; `group` is this node's. Reported again whenever the list changes.
    PartialConnectivity {
        broken: Vec<BrokenPair>,
        more: u32,
        group: Vec<NodeId>,
    },
    /// Every pair reported by the last `PartialConnectivity` hears each other again (or is no
    /// longer seen at all).
    ConnectivityRestored,
    /// `node` is configured otherwise (its joins and presences carry another
    /// configuration digest), so it is kept out of this node's ring; `differences` names what
    /// differs, one phrase per key ("totem.token: 5000 there, 3000 here"), `truncated` when
    /// its summary was cut to fit a frame; empty when the node never sent its summary (it
    /// drops this node's frames: it does not list it). At most once per
    /// `CONFIG_REPORT_INTERVAL_MS` per node.
    ConfigDiffers {
        node: NodeId,
        differences: Vec<String>,
        truncated: bool,
    },
    /// This node multicast `count` frames again that others asked for, on one token visit.
    Retransmitted {
        ring: RingId,
        count: u32,
        first: u64,
        last: u64,
    },
}
