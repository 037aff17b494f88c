//! votequorum: each node has votes, and a partition is quorate only while it holds a majority
//! of the expected votes, so two disjoint partitions are never quorate at once. The rules are
//! corosync's (`exec/votequorum.c`, votequorum(5)); this is a deterministic state machine on
//! the ordered stream, like the CPG service: its inputs are its own ordered messages, the
//! configuration changes, timers and local requests; its outputs are messages to multicast
//! and typed [`QuorumEvent`]s.
//!
//! **Sync.** After every regular configuration each member multicasts, as its first messages,
//! its node info (votes, expected votes, flags), the quorum device's votes, the device's name
//! when one is registered, and a sync-done marker carrying the ring. Once the markers of all
//! members are delivered, every member activates: it recalculates quorum and reports it. All
//! members therefore decide at the same point of the ordered stream, from the same messages
//! (corosync's sync barrier). A member whose quorum device is alive sends its marker only once
//! the device has polled in the new ring, or after `device.sync_timeout`.
//!
//! **Messages** (inside a packed message, big-endian; the first byte is the op, in
//! `OP_FIRST..=OP_LAST`, a range the CPG ops do not use):
//! - NODEINFO: node u32, votes u32, expected u32, flags u32 (node 0: the quorum device);
//! - RECONFIGURE: param u8, node u32, value u32 (expected votes, a node's votes, cancel
//!   wait_for_all);
//! - QDEVICE_REG: operation u8 (0 unregister, 1 register), name_len u8, name;
//! - QDEVICE_RENAME: old_len u8, old, new_len u8, new;
//! - SYNC_DONE: ring rep u32, ring seq u64.
//!
//! Nothing here has a clock: timers (last_man_standing_window, the device's timeout and sync
//! timeout) are deadlines in `Instant`s the embedding passes in.

pub mod settings;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::limits::MEMBERS_MAX;
use crate::srp::{ConfigChange, ConfigKind};
use crate::types::{Instant, NodeId, RingId};
pub use settings::{
    quorum_key_named, NodeVotes, QdeviceSettings, QuorumKey, QuorumKeyType, QuorumKeyUse,
    QuorumSettingError, QuorumSettings, QuorumValue, QuorumWarning, TieBreaker, EXPECTED_VOTES_MAX,
    NODE_VOTES_KEY, PROVIDER_VOTEQUORUM, QDEVICE_NAME_MAX, QUORUM_KEYS, VOTES_MAX,
};

/// First and last op byte of votequorum's messages in the ordered stream.
pub const OP_FIRST: u8 = 0x40;
pub const OP_LAST: u8 = 0x4f;
const OP_NODEINFO: u8 = 0x40;
const OP_RECONFIGURE: u8 = 0x41;
const OP_QDEVICE_REG: u8 = 0x42;
const OP_QDEVICE_RENAME: u8 = 0x43;
const OP_SYNC_DONE: u8 = 0x44;

const PARAM_EXPECTED_VOTES: u8 = 1;
const PARAM_NODE_VOTES: u8 = 2;
const PARAM_CANCEL_WFA: u8 = 3;

const QDEVICE_UNREGISTER: u8 = 0;
const QDEVICE_REGISTER: u8 = 1;

/// The quorum device's node id in node info and notifications (`VOTEQUORUM_QDEVICE_NODEID`).
pub const QDEVICE_NODE_ID: u32 = 0;

/// Node flags carried in node info (corosync's `NODE_FLAGS_*`, the same bits).
pub mod flags {
    pub const QUORATE: u32 = 1;
    pub const LEAVING: u32 = 2;
    pub const WFA_STATUS: u32 = 4;
    pub const FIRST: u32 = 8;
    pub const QDEVICE_REGISTERED: u32 = 16;
    pub const QDEVICE_ALIVE: u32 = 32;
    pub const QDEVICE_CAST_VOTE: u32 = 64;
    pub const QDEVICE_MASTER_WINS: u32 = 128;
}

/// Flags of `votequorum_getinfo` (`VOTEQUORUM_INFO_*`).
pub mod info_flags {
    pub const TWO_NODE: u32 = 1;
    pub const QUORATE: u32 = 2;
    pub const WAIT_FOR_ALL: u32 = 4;
    pub const LAST_MAN_STANDING: u32 = 8;
    pub const AUTO_TIE_BREAKER: u32 = 16;
    pub const ALLOW_DOWNSCALE: u32 = 32;
    pub const QDEVICE_REGISTERED: u32 = 64;
    pub const QDEVICE_ALIVE: u32 = 128;
    pub const QDEVICE_CAST_VOTE: u32 = 256;
    pub const QDEVICE_MASTER_WINS: u32 = 512;
}

/// Most nodes the table keeps (members and nodes seen before); beyond it a dead node's entry
/// is reused, as corosync reuses its preallocated entries.
const NODES_KNOWN_MAX: usize = 2 * MEMBERS_MAX;

/// A node's state as votequorum sees it (`VOTEQUORUM_NODESTATE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    Member,
    Dead,
    Leaving,
}

impl NodeState {
    /// The number in notifications and getinfo.
    pub fn code(self) -> u32 {
        match self {
            NodeState::Member => 1,
            NodeState::Dead => 2,
            NodeState::Leaving => 3,
        }
    }
}

/// One node as votequorum knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub node: NodeId,
    pub state: NodeState,
    pub votes: u32,
    pub expected_votes: u32,
    pub flags: u32,
}

/// A request of a local client (libvotequorum's calls, and the leave of an orderly
/// shutdown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumRequest {
    /// `votequorum_setexpected`.
    SetExpected(u32),
    /// `votequorum_setvotes`.
    SetVotes {
        node: NodeId,
        votes: u32,
    },
    /// This node leaves cleanly: the others lower expected votes (allow_downscale).
    Leaving,
    /// corosync's `quorum.cancel_wait_for_all`.
    CancelWaitForAll,
    QdeviceRegister {
        name: String,
    },
    QdeviceUnregister {
        name: String,
    },
    QdeviceRename {
        old: String,
        new: String,
    },
    QdevicePoll {
        name: String,
        cast_vote: bool,
        ring: RingId,
    },
    QdeviceMasterWins {
        name: String,
        allow: bool,
    },
}

/// Why a request was refused (libvotequorum's errors).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error("{0}")]
    InvalidParam(String),
    #[error("node {0} is not known to votequorum")]
    NameNotFound(u32),
    #[error("{0}")]
    NotExist(String),
    #[error("{0}")]
    Exist(String),
    #[error("{0}")]
    Access(String),
    #[error("{0}")]
    TryAgain(String),
    #[error("{0}")]
    MessageError(String),
    #[error("votequorum is not the quorum provider")]
    NotProvider,
}

/// What a request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Done (queued for the cluster when it changes anything).
    Done,
    /// Answered by a [`QuorumEvent::Reply`] with the request's id once ordered.
    Later,
}

/// Something votequorum notices that a person should read (logged under `[VOTEQ]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumNotice {
    /// wait_for_all holds quorum back.
    WaitingForAll {
        votes: u32,
        expected_votes: u32,
    },
    /// A node with more than one vote turned last_man_standing off.
    LastManStandingDisabled {
        node: NodeId,
    },
    WaitingForQdevicePoll {
        name: String,
        timeout_ms: u32,
    },
    LostQdevice {
        name: String,
    },
    WaitForAllCancelled {
        node: NodeId,
    },
    /// A quorum device of another name tried to register.
    QdeviceNameConflict {
        new: String,
        old: String,
    },
}

impl std::fmt::Display for QuorumNotice {
    /// corosync's wording.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumNotice::WaitingForAll {
                votes,
                expected_votes,
            } => write!(
                f,
                "Waiting for all cluster members. Current votes: {votes} expected_votes: \
                 {expected_votes}"
            ),
            QuorumNotice::LastManStandingDisabled { node } => write!(
                f,
                "Last Man Standing feature is supported only when all cluster nodes votes are \
                 set to 1 (node {node} has more). Disabling LMS."
            ),
            QuorumNotice::WaitingForQdevicePoll { name, timeout_ms } => write!(
                f,
                "waiting for quorum device {name} poll (but maximum for {timeout_ms} ms)"
            ),
            QuorumNotice::LostQdevice { name } => {
                write!(f, "lost contact with quorum device {name}")
            }
            QuorumNotice::WaitForAllCancelled { node } => {
                write!(f, "wait_for_all_status reset by user on node {node}.")
            }
            QuorumNotice::QdeviceNameConflict { new, old } => write!(
                f,
                "A new qdevice with different name (new: {new} old: {old}) is trying to \
                 register!"
            ),
        }
    }
}

/// votequorum's outputs, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumEvent {
    /// A new regular configuration starts a sync: its members, and who joined and left since
    /// the last activated one (the quorum service's "Sync members[N]" lines).
    SyncStarted {
        ring: RingId,
        members: Vec<NodeId>,
        joined: Vec<NodeId>,
        left: Vec<NodeId>,
    },
    /// votequorum's nodelist notification (sent at every sync): the ring and its members.
    Nodelist {
        ring: RingId,
        members: Vec<NodeId>,
    },
    /// The sync finished: the quorum service's nodelist notification (members, joined, left
    /// since the last activation). Comes before the `Quorum` of the same activation.
    SyncActivated {
        ring: RingId,
        members: Vec<NodeId>,
        joined: Vec<NodeId>,
        left: Vec<NodeId>,
    },
    /// The quorum callback: at every sync activation, and whenever quorum changes outside a
    /// sync. `members` are the ring's.
    Quorum {
        quorate: bool,
        members: Vec<NodeId>,
        ring: RingId,
    },
    /// votequorum's quorum notification: every known node (and a registered quorum device,
    /// node 0) with its state.
    NodeStates {
        quorate: bool,
        nodes: Vec<(u32, u32)>,
    },
    /// Expected votes changed (votequorum's expected votes notification).
    ExpectedVotes(u32),
    /// The expected_votes_tracking barrier rose: persist it (the state dir's ev_tracking).
    EvTrackingBarrier(u32),
    /// The answer to a request that was answered [`Answer::Later`].
    Reply {
        request: u64,
        result: Result<(), QuorumError>,
    },
    Notice(QuorumNotice),
}

/// Everything a client may ask of votequorum's state (getinfo, cmap's `runtime.votequorum.*`),
/// taken at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumState {
    pub node: NodeId,
    pub quorate: bool,
    pub quorum: u32,
    pub ring: RingId,
    /// The ring's members as votequorum last synced them.
    pub members: Vec<NodeId>,
    /// Every node known, sorted by id, this node included.
    pub nodes: Vec<NodeInfo>,
    pub qdevice_votes: u32,
    pub qdevice_name: String,
    pub two_node: bool,
    pub wait_for_all: bool,
    pub wait_for_all_status: bool,
    pub last_man_standing: bool,
    pub auto_tie_breaker: TieBreaker,
    pub allow_downscale: bool,
    pub expected_votes_tracking: bool,
    pub ev_barrier: u32,
    pub ev_tracking_barrier: u32,
    /// Of the last quorate membership (`None` before the first).
    pub lowest_node_id: Option<u32>,
    pub highest_node_id: Option<u32>,
    pub qdevice_can_operate: bool,
    pub qdevice_master_wins: bool,
}

/// What `votequorum_getinfo` answers for one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeReport {
    pub node: u32,
    pub state: u32,
    pub votes: u32,
    pub expected_votes: u32,
    pub highest_expected: u32,
    pub total_votes: u32,
    pub quorum: u32,
    /// [`info_flags`].
    pub flags: u32,
    pub qdevice_votes: u32,
    pub qdevice_name: String,
}

impl QuorumState {
    /// `votequorum_getinfo(node)`: node 0 means this node; `None` for a node votequorum has
    /// never heard of (CS_ERR_NOT_EXIST).
    pub fn getinfo(&self, node: u32) -> Option<NodeReport> {
        let node = if node == QDEVICE_NODE_ID {
            self.node.0
        } else {
            node
        };
        let n = self.nodes.iter().find(|n| n.node.0 == node)?;
        let members = self.nodes.iter().filter(|n| n.state == NodeState::Member);
        let highest_expected = members.clone().map(|n| n.expected_votes).max().unwrap_or(0);
        let mut total_votes: u32 = members.map(|n| n.votes).sum();
        if n.flags & flags::QDEVICE_CAST_VOTE != 0 {
            total_votes += self.qdevice_votes;
        }
        let mut f = 0;
        let mut set = |on: bool, bit: u32| {
            if on {
                f |= bit
            }
        };
        set(self.two_node, info_flags::TWO_NODE);
        set(self.quorate, info_flags::QUORATE);
        set(self.wait_for_all, info_flags::WAIT_FOR_ALL);
        set(self.last_man_standing, info_flags::LAST_MAN_STANDING);
        set(
            self.auto_tie_breaker != TieBreaker::Off,
            info_flags::AUTO_TIE_BREAKER,
        );
        set(self.allow_downscale, info_flags::ALLOW_DOWNSCALE);
        set(
            n.flags & flags::QDEVICE_REGISTERED != 0,
            info_flags::QDEVICE_REGISTERED,
        );
        set(
            n.flags & flags::QDEVICE_ALIVE != 0,
            info_flags::QDEVICE_ALIVE,
        );
        set(
            n.flags & flags::QDEVICE_CAST_VOTE != 0,
            info_flags::QDEVICE_CAST_VOTE,
        );
        set(
            n.flags & flags::QDEVICE_MASTER_WINS != 0,
            info_flags::QDEVICE_MASTER_WINS,
        );
        Some(NodeReport {
            node: n.node.0,
            state: n.state.code(),
            votes: n.votes,
            expected_votes: n.expected_votes,
            highest_expected,
            total_votes,
            quorum: self.quorum,
            flags: f,
            qdevice_votes: self.qdevice_votes,
            qdevice_name: self.qdevice_name.clone(),
        })
    }
}

/// A sync in progress: the ring, members whose sync-done is missing, and whether this node's
/// own marker still waits for the quorum device's poll.
struct Sync {
    ring: RingId,
    waiting: BTreeSet<NodeId>,
    wait_for_poll: bool,
    done_sent: bool,
}

/// Timers, advanced in one place (`handle_timeout`).
#[derive(Clone, Copy)]
enum Timer {
    LastManStanding = 0,
    Qdevice = 1,
}
const TIMER_COUNT: usize = 2;

/// The quorum device as a node of the table (its votes; never a member).
#[derive(Clone, Copy, Default)]
struct Qdevice {
    votes: u32,
}

pub struct Votequorum {
    me: NodeId,
    settings: QuorumSettings,
    /// Every node heard of, this node included. Invariant: `nodes[&me]` exists.
    nodes: BTreeMap<NodeId, NodeInfo>,
    qdevice: Qdevice,
    qdevice_name: String,
    quorum: u32,
    quorate: bool,
    two_node: bool,
    wait_for_all: bool,
    wait_for_all_status: bool,
    last_man_standing: bool,
    auto_tie_breaker: TieBreaker,
    ev_barrier: u32,
    ev_tracking_barrier: u32,
    qdevice_can_operate: bool,
    qdevice_master_wins: bool,
    lowest_node_id: Option<u32>,
    highest_node_id: Option<u32>,
    /// The ring's members as last synced, and the ones before.
    members: Vec<NodeId>,
    previous_members: Vec<NodeId>,
    ring: RingId,
    sync: Option<Sync>,
    /// The transitional configuration's members before the regular one being synced.
    trans: Vec<NodeId>,
    /// Members of the last activated sync (the quorum service's "old" list).
    activated: Vec<NodeId>,
    /// joined/left of the sync in progress, for its activation.
    sync_joined: Vec<NodeId>,
    sync_left: Vec<NodeId>,
    timers: [Option<Instant>; TIMER_COUNT],
    now: Instant,
    /// A registration waiting for its message to come back: the request's id.
    qdevice_reg_pending: Option<u64>,
    /// A leave waiting for its node info to come back.
    leaving_pending: Option<u64>,
    /// Messages to multicast after the sync messages (ordinary order).
    send: VecDeque<Vec<u8>>,
    events: VecDeque<QuorumEvent>,
    /// Bumped on every change a `QuorumState` would show.
    version: u64,
    /// Messages that did not decode, and messages that made no sense in the state (both
    /// dropped).
    pub malformed: u64,
    pub unexpected: u64,
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn get_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

/// Reads name_len, name from the front of `bytes`.
fn get_name(bytes: &[u8]) -> Option<(String, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let name = rest.get(..len as usize)?;
    let name = std::str::from_utf8(name).ok()?;
    Some((name.to_owned(), &rest[len as usize..]))
}

/// A quorum device name a client may use: 1..QDEVICE_NAME_MAX bytes (room for C's
/// terminator), no NUL.
fn check_name(name: &str) -> Result<(), QuorumError> {
    if name.is_empty() || name.len() >= QDEVICE_NAME_MAX || name.contains('\0') {
        return Err(QuorumError::InvalidParam(format!(
            "a quorum device name is 1 to {} bytes without NUL",
            QDEVICE_NAME_MAX - 1
        )));
    }
    Ok(())
}

impl Votequorum {
    /// votequorum for node `me` with `settings`, starting from the persisted
    /// expected_votes_tracking barrier (0 if none); `now` is the embedding's time.
    pub fn new(
        me: NodeId,
        settings: QuorumSettings,
        ev_tracking_barrier: u32,
        now: Instant,
    ) -> Votequorum {
        let expected = settings.start_expected_votes(ev_tracking_barrier);
        let mut nodes = BTreeMap::new();
        nodes.insert(
            me,
            NodeInfo {
                node: me,
                state: NodeState::Member,
                votes: settings.votes,
                expected_votes: expected,
                flags: flags::FIRST,
            },
        );
        let mut vq = Votequorum {
            me,
            two_node: settings.two_node,
            wait_for_all: settings.wait_for_all,
            wait_for_all_status: settings.wait_for_all,
            last_man_standing: settings.last_man_standing,
            auto_tie_breaker: settings.auto_tie_breaker.clone(),
            qdevice: Qdevice {
                votes: settings.qdevice.as_ref().map_or(0, |q| q.votes),
            },
            settings,
            nodes,
            qdevice_name: String::new(),
            quorum: 0,
            quorate: false,
            ev_barrier: expected,
            ev_tracking_barrier,
            qdevice_can_operate: true,
            qdevice_master_wins: false,
            lowest_node_id: None,
            highest_node_id: None,
            members: Vec::new(),
            previous_members: Vec::new(),
            ring: RingId::default(),
            sync: None,
            trans: Vec::new(),
            activated: Vec::new(),
            sync_joined: Vec::new(),
            sync_left: Vec::new(),
            timers: [None; TIMER_COUNT],
            now,
            qdevice_reg_pending: None,
            leaving_pending: None,
            send: VecDeque::new(),
            events: VecDeque::new(),
            version: 0,
            malformed: 0,
            unexpected: 0,
        };
        if vq.wait_for_all {
            vq.us_mut().flags |= flags::WFA_STATUS;
        }
        vq.recalculate(false, false);
        vq
    }

    /// Whether an ordered message belongs to votequorum (by its first byte).
    pub fn is_own(message_head: u8) -> bool {
        (OP_FIRST..=OP_LAST).contains(&message_head)
    }

    fn us(&self) -> &NodeInfo {
        &self.nodes[&self.me]
    }

    fn us_mut(&mut self) -> &mut NodeInfo {
        self.nodes
            .get_mut(&self.me)
            .expect("this node is in the table")
    }

    pub fn is_quorate(&self) -> bool {
        self.quorate
    }

    pub fn quorum(&self) -> u32 {
        self.quorum
    }

    /// This node's expected votes.
    pub fn expected_votes(&self) -> u32 {
        self.us().expected_votes
    }

    /// Bumped on every change of what [`state`](Self::state) shows.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn settings(&self) -> &QuorumSettings {
        &self.settings
    }

    /// Whether a sync is in progress (quorum is decided when it ends).
    pub fn syncing(&self) -> bool {
        self.sync.is_some()
    }

    pub fn state(&self) -> QuorumState {
        QuorumState {
            node: self.me,
            quorate: self.quorate,
            quorum: self.quorum,
            ring: self.ring,
            members: self.members.clone(),
            nodes: self.nodes.values().copied().collect(),
            qdevice_votes: self.qdevice.votes,
            qdevice_name: self.qdevice_name.clone(),
            two_node: self.two_node,
            wait_for_all: self.wait_for_all,
            wait_for_all_status: self.wait_for_all_status,
            last_man_standing: self.last_man_standing,
            auto_tie_breaker: self.auto_tie_breaker.clone(),
            allow_downscale: self.settings.allow_downscale,
            expected_votes_tracking: self.settings.expected_votes_tracking,
            ev_barrier: self.ev_barrier,
            ev_tracking_barrier: self.ev_tracking_barrier,
            lowest_node_id: self.lowest_node_id,
            highest_node_id: self.highest_node_id,
            qdevice_can_operate: self.qdevice_can_operate,
            qdevice_master_wins: self.qdevice_master_wins,
        }
    }

    pub fn poll_event(&mut self) -> Option<QuorumEvent> {
        self.events.pop_front()
    }

    /// The next message to multicast in ordinary order (after the sync messages).
    pub fn poll_send(&mut self) -> Option<Vec<u8>> {
        self.send.pop_front()
    }

    /// Puts back a message the send queue could not take.
    pub fn unsend(&mut self, message: Vec<u8>) {
        self.send.push_front(message);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().flatten().min().copied()
    }

    fn set_timer(&mut self, timer: Timer, at: Option<Instant>) {
        self.timers[timer as usize] = at;
    }

    fn emit(&mut self, event: QuorumEvent) {
        self.events.push_back(event);
    }

    fn changed(&mut self) {
        self.version += 1;
    }

    /// Advances the timers: each expired one runs its `on_<name>_timeout` handler.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        for timer in [Timer::LastManStanding, Timer::Qdevice] {
            match self.timers[timer as usize] {
                Some(at) if at <= now => {
                    self.timers[timer as usize] = None;
                    match timer {
                        Timer::LastManStanding => self.on_last_man_standing_timeout(),
                        Timer::Qdevice => self.on_qdevice_timeout(),
                    }
                }
                _ => {}
            }
        }
    }

    /// The embedding's time before an input that may start a timer.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    fn on_last_man_standing_timeout(&mut self) {
        if self.quorate {
            self.recalculate(true, true);
        }
    }

    fn on_qdevice_timeout(&mut self) {
        if self.us().flags & flags::QDEVICE_ALIVE == 0 {
            return;
        }
        let us = self.us_mut();
        us.flags &= !(flags::QDEVICE_ALIVE | flags::QDEVICE_CAST_VOTE);
        let name = self.qdevice_name.clone();
        self.emit(QuorumEvent::Notice(QuorumNotice::LostQdevice { name }));
        self.send_nodeinfo(self.me.0);
        self.poll_arrived();
        self.changed();
    }

    /// The quorum device polled, timed out or went away: a sync waiting for it goes on.
    fn poll_arrived(&mut self) {
        let Some(sync) = self.sync.as_mut() else {
            return;
        };
        sync.wait_for_poll = false;
        if !sync.done_sent {
            sync.done_sent = true;
            let ring = sync.ring;
            self.send.push_back(Self::sync_done(ring));
        }
    }

    // ----- messages --------------------------------------------------------------------

    fn nodeinfo_message(node: u32, info: &NodeInfo) -> Vec<u8> {
        let mut m = Vec::with_capacity(17);
        m.push(OP_NODEINFO);
        put_u32(&mut m, node);
        put_u32(&mut m, info.votes);
        put_u32(&mut m, info.expected_votes);
        put_u32(&mut m, info.flags);
        m
    }

    /// Node info of this node (or of the quorum device, node 0), in ordinary order.
    fn send_nodeinfo(&mut self, node: u32) {
        let m = self.current_nodeinfo(node);
        self.send.push_back(m);
    }

    fn current_nodeinfo(&self, node: u32) -> Vec<u8> {
        if node == QDEVICE_NODE_ID {
            let info = NodeInfo {
                node: NodeId(0),
                state: NodeState::Member,
                votes: self.qdevice.votes,
                expected_votes: 0,
                flags: 0,
            };
            Self::nodeinfo_message(QDEVICE_NODE_ID, &info)
        } else {
            Self::nodeinfo_message(node, self.us())
        }
    }

    fn reconfigure_message(param: u8, node: u32, value: u32) -> Vec<u8> {
        let mut m = vec![OP_RECONFIGURE, param];
        put_u32(&mut m, node);
        put_u32(&mut m, value);
        m
    }

    fn qdevice_reg_message(operation: u8, name: &str) -> Vec<u8> {
        let mut m = vec![OP_QDEVICE_REG, operation];
        put_name(&mut m, name);
        m
    }

    fn sync_done(ring: RingId) -> Vec<u8> {
        let mut m = vec![OP_SYNC_DONE];
        put_u32(&mut m, ring.rep);
        m.extend_from_slice(&ring.seq.to_be_bytes());
        m
    }

    /// A config reload applied at this point of the ordered stream (every member applies its
    /// own file's quorum{} here, as corosync's `votequorum_refresh_config`): what may change
    /// at runtime — this node's votes, expected votes, two_node (and wait_for_all when it
    /// follows two_node), the quorum device's votes and timeouts — takes effect, and this
    /// node's node info goes out again, with a reconfigure of its votes and of the expected
    /// votes when they changed, so every member recalculates from the same messages. The
    /// others keep their start value (rotord refuses a reload that changes them).
    pub fn reconfigure(&mut self, new: QuorumSettings) {
        let old_votes = self.us().votes;
        let old_expected = self.us().expected_votes;
        self.two_node = new.two_node;
        if new.wait_for_all_follows_two_node && self.settings.wait_for_all_follows_two_node {
            self.wait_for_all = new.two_node;
            if !self.wait_for_all && self.wait_for_all_status {
                self.set_wait_for_all_status(false);
            }
        }
        let expected = new.start_expected_votes(self.ev_tracking_barrier);
        self.us_mut().votes = new.votes;
        if let Some(q) = &new.qdevice {
            if self.qdevice.votes > 0 || self.us().flags & flags::QDEVICE_REGISTERED != 0 {
                self.qdevice.votes = q.votes;
            }
        }
        let old = &self.settings;
        self.settings = QuorumSettings {
            wait_for_all: old.wait_for_all,
            last_man_standing: old.last_man_standing,
            last_man_standing_window_ms: old.last_man_standing_window_ms,
            auto_tie_breaker: old.auto_tie_breaker.clone(),
            allow_downscale: old.allow_downscale,
            expected_votes_tracking: old.expected_votes_tracking,
            ..new
        };
        self.version += 1;
        self.send_nodeinfo(self.me.0);
        self.send_nodeinfo(QDEVICE_NODE_ID);
        if self.us().votes != old_votes {
            let m = Self::reconfigure_message(PARAM_NODE_VOTES, self.me.0, self.us().votes);
            self.send.push_back(m);
        }
        if expected != old_expected {
            let m = Self::reconfigure_message(PARAM_EXPECTED_VOTES, self.me.0, expected);
            self.send.push_back(m);
        }
        self.recalculate(true, false);
    }

    // ----- configuration changes (sync) ------------------------------------------------

    /// A configuration change from the ordered stream. Returns the sync messages to
    /// multicast first in a new regular configuration.
    pub fn on_config(&mut self, change: &ConfigChange) -> Vec<Vec<u8>> {
        match change.kind {
            ConfigKind::Transitional => {
                self.trans = change.members.clone();
                Vec::new()
            }
            ConfigKind::Regular => self.on_regular(change),
        }
    }

    fn on_regular(&mut self, change: &ConfigChange) -> Vec<Vec<u8>> {
        let members = &change.members;
        if members.len() > 1 {
            self.us_mut().flags &= !flags::FIRST;
        }
        // Nodes of the last sync that are gone are dead (votequorum_sync_init).
        let mut left_any = false;
        for m in self.members.clone() {
            if !members.contains(&m) {
                left_any = true;
                if let Some(n) = self.nodes.get_mut(&m) {
                    n.state = NodeState::Dead;
                }
            }
        }
        if self.last_man_standing {
            let count = members.len() as u64;
            let quorum = u64::from(self.quorum);
            let atb_side = count <= quorum
                && self.auto_tie_breaker != TieBreaker::Off
                && self.low_node_id_present();
            if (count >= quorum && left_any) || atb_side {
                let at = self.now.plus_ms(self.settings.last_man_standing_window_ms);
                self.set_timer(Timer::LastManStanding, Some(at));
            }
        }
        self.previous_members = std::mem::replace(&mut self.members, members.clone());
        self.ring = change.ring;
        // The quorum service's lists, against the last activated sync (vsf_quorum).
        let trans_new: Vec<NodeId> = self
            .trans
            .iter()
            .copied()
            .filter(|n| members.contains(n))
            .collect();
        let left: Vec<NodeId> = self
            .activated
            .iter()
            .copied()
            .filter(|n| !trans_new.contains(n))
            .collect();
        let joined: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|m| !self.activated.contains(m) || left.contains(m))
            .collect();
        self.sync_joined = joined.clone();
        self.sync_left = left.clone();
        self.emit(QuorumEvent::SyncStarted {
            ring: change.ring,
            members: members.clone(),
            joined,
            left,
        });
        let us = *self.us();
        let wait_for_poll =
            us.flags & flags::QDEVICE_REGISTERED != 0 && us.flags & flags::QDEVICE_ALIVE != 0;
        if wait_for_poll {
            let timeout = self
                .settings
                .qdevice
                .as_ref()
                .map_or(settings::QDEVICE_SYNC_TIMEOUT_MS_DEFAULT, |q| {
                    q.sync_timeout_ms
                });
            self.set_timer(Timer::Qdevice, Some(self.now.plus_ms(timeout)));
            let name = self.qdevice_name.clone();
            self.emit(QuorumEvent::Notice(QuorumNotice::WaitingForQdevicePoll {
                name,
                timeout_ms: timeout,
            }));
        }
        self.sync = Some(Sync {
            ring: change.ring,
            waiting: members.iter().copied().collect(),
            wait_for_poll,
            done_sent: !wait_for_poll,
        });
        // votequorum_sync_process: this node's info, the device's votes, the device's name.
        let mut out = vec![
            self.current_nodeinfo(self.me.0),
            self.current_nodeinfo(QDEVICE_NODE_ID),
        ];
        if !self.qdevice_name.is_empty() {
            out.push(Self::qdevice_reg_message(
                QDEVICE_REGISTER,
                &self.qdevice_name,
            ));
        }
        if !wait_for_poll {
            out.push(Self::sync_done(change.ring));
        }
        self.emit(QuorumEvent::Nodelist {
            ring: change.ring,
            members: members.clone(),
        });
        self.changed();
        out
    }

    // ----- ordered messages ------------------------------------------------------------

    /// One of votequorum's messages in total order, from `sender`.
    pub fn on_message(&mut self, sender: NodeId, bytes: &[u8]) {
        let Some((&op, body)) = bytes.split_first() else {
            self.malformed += 1;
            return;
        };
        let ok = match op {
            OP_NODEINFO => self.on_nodeinfo(sender, body),
            OP_RECONFIGURE => self.on_reconfigure(sender, body),
            OP_QDEVICE_REG => self.on_qdevice_reg(sender, body),
            OP_QDEVICE_RENAME => self.on_qdevice_rename(body),
            OP_SYNC_DONE => self.on_sync_done(sender, body),
            _ => false,
        };
        if !ok {
            self.malformed += 1;
        }
        self.changed();
    }

    fn on_nodeinfo(&mut self, sender: NodeId, body: &[u8]) -> bool {
        let (Some(node), Some(votes), Some(expected), Some(f)) = (
            get_u32(body, 0),
            get_u32(body, 4),
            get_u32(body, 8),
            get_u32(body, 12),
        ) else {
            return false;
        };
        if body.len() != 16 || (node != sender.0 && node != QDEVICE_NODE_ID) {
            return false;
        }
        if votes > VOTES_MAX || expected > EXPECTED_VOTES_MAX {
            return false;
        }
        if node == QDEVICE_NODE_ID {
            let Some(sender_flags) = self.nodes.get(&sender).map(|n| n.flags) else {
                // The sender's own info always comes first.
                self.unexpected += 1;
                return true;
            };
            let old = self.qdevice.votes;
            self.qdevice.votes = if !self.quorate && sender_flags & flags::QUORATE != 0 {
                votes
            } else {
                old.max(votes)
            };
            if old != self.qdevice.votes {
                self.recalculate(false, false);
            }
            return true;
        }
        let node = NodeId(node);
        let new_node = !self.nodes.contains_key(&node);
        if new_node && !self.make_room() {
            self.unexpected += 1;
            return true;
        }
        let old = self.nodes.get(&node).copied();
        let us_expected = self.us().expected_votes;
        let mut allow_downgrade = false;
        let mut by_node = false;
        let mut state = NodeState::Member;
        if f & flags::LEAVING != 0 {
            state = NodeState::Leaving;
            allow_downgrade = true;
            by_node = true;
        }
        let mut us_expected_now = us_expected;
        if !self.quorate && f & flags::QUORATE != 0 {
            // A quorate partition's expected votes win over ours.
            allow_downgrade = true;
            us_expected_now = expected;
        }
        let node_expected = if f & flags::QUORATE != 0 || self.settings.expected_votes_tracking {
            expected
        } else {
            us_expected_now
        };
        let info = NodeInfo {
            node,
            state,
            votes,
            expected_votes: node_expected,
            flags: f,
        };
        self.nodes.insert(node, info);
        if node != self.me {
            // (Our own info coming back carries our expected votes, as corrected above.)
            self.us_mut().expected_votes = us_expected_now;
        }
        if self.last_man_standing && votes > 1 {
            self.last_man_standing = false;
            self.set_timer(Timer::LastManStanding, None);
            self.emit(QuorumEvent::Notice(QuorumNotice::LastManStandingDisabled {
                node,
            }));
        }
        let changed = match old {
            None => true,
            Some(o) => {
                o.votes != info.votes
                    || o.expected_votes != info.expected_votes
                    || o.flags != info.flags
                    || o.state != info.state
            }
        };
        if new_node || node == self.me || f & flags::FIRST != 0 || changed {
            self.recalculate(allow_downgrade, by_node);
        }
        if self.wait_for_all && f & flags::WFA_STATUS == 0 && f & flags::QUORATE != 0 {
            self.set_wait_for_all_status(false);
        }
        if node == self.me && f & flags::LEAVING != 0 {
            if let Some(request) = self.leaving_pending.take() {
                self.emit(QuorumEvent::Reply {
                    request,
                    result: Ok(()),
                });
            }
        }
        true
    }

    /// Room for one more node: reuses a dead node's entry when the table is full.
    fn make_room(&mut self) -> bool {
        if self.nodes.len() < NODES_KNOWN_MAX {
            return true;
        }
        let dead = self
            .nodes
            .values()
            .find(|n| n.state == NodeState::Dead && n.node != self.me)
            .map(|n| n.node);
        match dead {
            Some(d) => {
                self.nodes.remove(&d);
                true
            }
            None => false,
        }
    }

    fn on_reconfigure(&mut self, sender: NodeId, body: &[u8]) -> bool {
        let (Some(&param), Some(node), Some(value)) =
            (body.first(), get_u32(body, 1), get_u32(body, 5))
        else {
            return false;
        };
        if body.len() != 9 {
            return false;
        }
        match param {
            PARAM_EXPECTED_VOTES => {
                if value == 0 || value > EXPECTED_VOTES_MAX {
                    return false;
                }
                self.set_members_expected(value);
                let expected = self.us().expected_votes;
                self.emit(QuorumEvent::ExpectedVotes(expected));
                self.ev_barrier = value;
                if self.settings.expected_votes_tracking {
                    let barrier = self.ev_tracking_barrier;
                    let us = self.us_mut();
                    us.expected_votes = us.expected_votes.max(barrier);
                }
                self.recalculate(true, false);
            }
            PARAM_NODE_VOTES => {
                if value > VOTES_MAX {
                    return false;
                }
                let Some(n) = self.nodes.get_mut(&NodeId(node)) else {
                    self.unexpected += 1;
                    return true;
                };
                n.votes = value;
                self.recalculate(true, false);
            }
            PARAM_CANCEL_WFA => {
                self.set_wait_for_all_status(false);
                self.emit(QuorumEvent::Notice(QuorumNotice::WaitForAllCancelled {
                    node: sender,
                }));
                self.recalculate(false, false);
            }
            _ => return false,
        }
        true
    }

    fn on_qdevice_reg(&mut self, sender: NodeId, body: &[u8]) -> bool {
        let Some((&operation, rest)) = body.split_first() else {
            return false;
        };
        let Some((name, rest)) = get_name(rest) else {
            return false;
        };
        if !rest.is_empty() || name.len() >= QDEVICE_NAME_MAX {
            return false;
        }
        match operation {
            QDEVICE_REGISTER => {
                if sender != self.me {
                    if self.qdevice_name.is_empty() {
                        self.qdevice_name = name;
                    }
                    return true;
                }
                if self.us().flags & flags::QDEVICE_REGISTERED != 0 {
                    // Our registration re-announced at a sync.
                    return true;
                }
                let Some(request) = self.qdevice_reg_pending.take() else {
                    self.unexpected += 1;
                    return true;
                };
                if self.qdevice_name.is_empty() {
                    self.qdevice_name = name.clone();
                }
                let result = if name == self.qdevice_name {
                    self.us_mut().flags |= flags::QDEVICE_REGISTERED;
                    self.send_nodeinfo(QDEVICE_NODE_ID);
                    self.send_nodeinfo(self.me.0);
                    Ok(())
                } else {
                    let old = self.qdevice_name.clone();
                    self.emit(QuorumEvent::Notice(QuorumNotice::QdeviceNameConflict {
                        new: name.clone(),
                        old: old.clone(),
                    }));
                    Err(QuorumError::Exist(format!(
                        "a quorum device named {old} is registered in the cluster; {name} \
                         cannot register"
                    )))
                };
                self.emit(QuorumEvent::Reply { request, result });
            }
            QDEVICE_UNREGISTER => {
                let still_registered = self.nodes.values().any(|n| {
                    n.state == NodeState::Member && n.flags & flags::QDEVICE_REGISTERED != 0
                });
                if !still_registered {
                    self.qdevice_name.clear();
                }
            }
            _ => return false,
        }
        true
    }

    fn on_qdevice_rename(&mut self, body: &[u8]) -> bool {
        let Some((old, rest)) = get_name(body) else {
            return false;
        };
        let Some((new, rest)) = get_name(rest) else {
            return false;
        };
        if !rest.is_empty() || new.is_empty() || new.len() >= QDEVICE_NAME_MAX {
            return false;
        }
        if old == self.qdevice_name {
            self.qdevice_name = new;
        }
        true
    }

    fn on_sync_done(&mut self, sender: NodeId, body: &[u8]) -> bool {
        let (Some(rep), Some(seq)) = (
            get_u32(body, 0),
            body.get(4..12)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes"))),
        ) else {
            return false;
        };
        if body.len() != 12 {
            return false;
        }
        let ring = RingId { seq, rep };
        let Some(sync) = self.sync.as_mut() else {
            // A marker of a ring already activated or superseded.
            return true;
        };
        if sync.ring != ring {
            return true;
        }
        if !sync.waiting.remove(&sender) {
            self.unexpected += 1;
            return true;
        }
        if sync.waiting.is_empty() {
            self.activate();
        }
        true
    }

    /// Every member's sync is delivered: decide (votequorum_sync_activate, after the quorum
    /// service's own activation).
    fn activate(&mut self) {
        let sync = self.sync.take().expect("a sync in progress");
        self.activated = self.members.clone();
        let joined = std::mem::take(&mut self.sync_joined);
        let left = std::mem::take(&mut self.sync_left);
        self.emit(QuorumEvent::SyncActivated {
            ring: sync.ring,
            members: self.members.clone(),
            joined,
            left,
        });
        self.recalculate(false, false);
        self.report_quorum();
    }

    fn report_quorum(&mut self) {
        self.emit(QuorumEvent::Quorum {
            quorate: self.quorate,
            members: self.members.clone(),
            ring: self.ring,
        });
        let mut nodes: Vec<(u32, u32)> = self
            .nodes
            .values()
            .map(|n| (n.node.0, n.state.code()))
            .collect();
        if self.us().flags & flags::QDEVICE_REGISTERED != 0 {
            // The device's entry has no state of its own (corosync sends 0).
            nodes.push((QDEVICE_NODE_ID, 0));
        }
        self.emit(QuorumEvent::NodeStates {
            quorate: self.quorate,
            nodes,
        });
    }

    // ----- the quorum calculation ------------------------------------------------------

    fn set_members_expected(&mut self, expected: u32) {
        if expected == 0 {
            return;
        }
        for n in self.nodes.values_mut() {
            if n.state == NodeState::Member {
                n.expected_votes = expected;
            }
        }
    }

    fn set_wait_for_all_status(&mut self, on: bool) {
        self.wait_for_all_status = on;
        let us = self.us_mut();
        if on {
            us.flags |= flags::WFA_STATUS;
        } else {
            us.flags &= !flags::WFA_STATUS;
        }
    }

    /// Total votes of the members (and the device's votes, if any) and how many members
    /// (get_total_votes).
    fn total_votes(&self) -> (u32, u32) {
        let mut votes = 0;
        let mut count = 0;
        for n in self.nodes.values() {
            if n.state == NodeState::Member {
                votes += n.votes;
                count += 1;
            }
        }
        if self.qdevice.votes > 0 {
            votes += self.qdevice.votes;
            count += 1;
        }
        (votes, count)
    }

    /// Quorum for the members as they are, and their votes (calculate_quorum): half the
    /// highest expected votes plus one, or half the votes present plus one if more; never
    /// lower than now unless `allow_decrease`; 1 in a two-node cluster of at most two.
    /// `max_expected`, when not 0, replaces the highest expected votes.
    fn calculate(
        &self,
        allow_decrease: bool,
        mut max_expected: u32,
        downscale: bool,
    ) -> (u32, u32) {
        if downscale && allow_decrease && max_expected > 0 {
            max_expected = max_expected.max(self.ev_barrier);
        }
        let mut total = 0u32;
        let mut highest = 0u32;
        let mut count = 0u32;
        for n in self.nodes.values() {
            if n.state == NodeState::Member {
                highest = highest.max(n.expected_votes);
                total += n.votes;
                count += 1;
            }
        }
        if self.us().flags & flags::QDEVICE_CAST_VOTE != 0 {
            total += self.qdevice.votes;
            count += 1;
        }
        if max_expected > 0 {
            highest = max_expected;
        }
        let mut quorum = ((highest + 2) / 2).max((total + 2) / 2);
        if !allow_decrease {
            quorum = quorum.max(self.quorum);
        }
        if self.two_node && count <= 2 {
            quorum = 1;
        }
        (quorum, total)
    }

    /// recalculate_quorum: keeps expected votes at least the votes present, records the
    /// tracking barrier, computes quorum and decides.
    fn recalculate(&mut self, allow_decrease: bool, by_current_nodes: bool) {
        let (total, count) = self.total_votes();
        let count = if by_current_nodes { count } else { 0 };
        if total > self.us().expected_votes {
            self.us_mut().expected_votes = total;
            self.emit(QuorumEvent::ExpectedVotes(total));
        }
        let expected = self.us().expected_votes;
        if self.settings.expected_votes_tracking && expected > self.ev_tracking_barrier {
            self.ev_tracking_barrier = expected;
            self.emit(QuorumEvent::EvTrackingBarrier(expected));
        }
        let (quorum, total) = self.calculate(allow_decrease, count, self.settings.allow_downscale);
        self.quorum = quorum;
        self.set_members_expected(count);
        self.decide(total);
    }

    fn low_node_id_present(&self) -> bool {
        self.lowest_node_id.is_some_and(|low| {
            self.nodes
                .get(&NodeId(low))
                .is_some_and(|n| n.state == NodeState::Member)
        })
    }

    fn high_node_id_present(&self) -> bool {
        self.highest_node_id.is_some_and(|high| {
            self.nodes
                .get(&NodeId(high))
                .is_some_and(|n| n.state == NodeState::Member)
        })
    }

    /// Whether this partition holds the tie-breaker (check_auto_tie_breaker). With a list, the
    /// first listed node present decides, unless a node listed before it was in the previous
    /// membership: that one may be on the other side.
    fn holds_tie_breaker(&self) -> bool {
        match &self.auto_tie_breaker {
            TieBreaker::Off => false,
            TieBreaker::Lowest => self.low_node_id_present(),
            TieBreaker::Highest => self.high_node_id_present(),
            TieBreaker::List(list) => {
                for (i, id) in list.iter().enumerate() {
                    if self.members.contains(&NodeId(*id)) {
                        return !list[..i]
                            .iter()
                            .any(|earlier| self.previous_members.contains(&NodeId(*earlier)));
                    }
                }
                false
            }
        }
    }

    fn master_wins_present(&self) -> bool {
        self.nodes.values().any(|n| {
            n.state == NodeState::Member
                && n.flags & flags::QDEVICE_MASTER_WINS != 0
                && n.flags & flags::QDEVICE_CAST_VOTE != 0
        })
    }

    /// are_we_quorate.
    fn decide(&mut self, total: u32) {
        if self.wait_for_all && self.wait_for_all_status {
            let expected = self.us().expected_votes;
            if total != expected {
                self.emit(QuorumEvent::Notice(QuorumNotice::WaitingForAll {
                    votes: total,
                    expected_votes: expected,
                }));
                assert!(
                    !self.quorate,
                    "wait_for_all is waiting while the partition is quorate"
                );
                return;
            }
            self.set_wait_for_all_status(false);
        }
        let mut quorate = self.quorum <= total;
        if quorate {
            // This node counts whatever its state (get_lowest_node_id starts from it).
            let me = self.me.0;
            let members = self
                .nodes
                .values()
                .filter(|n| n.state == NodeState::Member)
                .map(|n| n.node.0);
            self.lowest_node_id = members.clone().chain([me]).min();
            self.highest_node_id = members.chain([me]).max();
        }
        let expected = self.us().expected_votes;
        let gone = self.previous_members.len() as i64 - self.members.len() as i64;
        if self.auto_tie_breaker != TieBreaker::Off
            && total == expected / 2
            && gone < i64::from(self.quorum)
            && self.holds_tie_breaker()
        {
            quorate = true;
        }
        if self.qdevice_master_wins && !quorate && self.master_wins_present() {
            quorate = true;
        }
        let change = quorate != self.quorate;
        self.quorate = quorate;
        let us = self.us_mut();
        if quorate {
            us.flags |= flags::QUORATE;
        } else {
            us.flags &= !flags::QUORATE;
        }
        if self.wait_for_all {
            self.set_wait_for_all_status(!quorate);
        }
        if change && self.sync.is_none() {
            self.report_quorum();
        }
        self.changed();
    }

    // ----- local requests --------------------------------------------------------------

    /// A request of a local client. `request` identifies it in a later
    /// [`QuorumEvent::Reply`] (when the answer is [`Answer::Later`]).
    pub fn handle_request(
        &mut self,
        request: u64,
        req: QuorumRequest,
    ) -> Result<Answer, QuorumError> {
        let registered = self.us().flags & flags::QDEVICE_REGISTERED != 0;
        let not_registered =
            || QuorumError::NotExist("no quorum device is registered on this node".into());
        let wrong_name = |name: &str, current: &str| {
            QuorumError::InvalidParam(format!(
                "the quorum device registered on this node is {current}, not {name}"
            ))
        };
        let disabled = || {
            QuorumError::Access(
                "registration of a quorum device is disabled by the configuration".into(),
            )
        };
        match req {
            QuorumRequest::SetExpected(expected) => {
                if expected == 0 || expected > EXPECTED_VOTES_MAX {
                    return Err(QuorumError::InvalidParam(format!(
                        "expected votes must be 1 to {EXPECTED_VOTES_MAX}, not {expected}"
                    )));
                }
                let (quorum, total) = self.calculate(true, expected, false);
                if expected < total {
                    return Err(QuorumError::InvalidParam(format!(
                        "expected votes {expected} is lower than the {total} votes present"
                    )));
                }
                if self.quorate && quorum > total {
                    return Err(QuorumError::InvalidParam(format!(
                        "expected votes {expected} would need a quorum of {quorum}, more than \
                         the {total} votes present: the cluster would lose quorum"
                    )));
                }
                self.set_members_expected(expected);
                self.send.push_back(Self::reconfigure_message(
                    PARAM_EXPECTED_VOTES,
                    self.me.0,
                    expected,
                ));
                self.changed();
                Ok(Answer::Done)
            }
            QuorumRequest::SetVotes { node, votes } => {
                if votes > VOTES_MAX {
                    return Err(QuorumError::InvalidParam(format!(
                        "votes must be 0 to {VOTES_MAX}, not {votes}"
                    )));
                }
                let Some(saved) = self.nodes.get(&node).map(|n| n.votes) else {
                    return Err(QuorumError::NameNotFound(node.0));
                };
                self.nodes.get_mut(&node).expect("known").votes = votes;
                let (quorum, total) = self.calculate(true, 0, self.settings.allow_downscale);
                self.nodes.get_mut(&node).expect("known").votes = saved;
                if quorum < total / 2 || quorum > total {
                    return Err(QuorumError::InvalidParam(format!(
                        "{votes} votes for node {node} would make quorum {quorum} with {total} \
                         votes present"
                    )));
                }
                self.send
                    .push_back(Self::reconfigure_message(PARAM_NODE_VOTES, node.0, votes));
                Ok(Answer::Done)
            }
            QuorumRequest::Leaving => {
                if !self.settings.allow_downscale {
                    return Err(QuorumError::Access(
                        "a node announces its leave only with quorum.allow_downscale".into(),
                    ));
                }
                if self.leaving_pending.is_some() {
                    return Err(QuorumError::TryAgain("a leave is already announced".into()));
                }
                self.us_mut().flags |= flags::LEAVING;
                self.send_nodeinfo(self.me.0);
                self.leaving_pending = Some(request);
                self.changed();
                Ok(Answer::Later)
            }
            QuorumRequest::CancelWaitForAll => {
                self.send
                    .push_back(Self::reconfigure_message(PARAM_CANCEL_WFA, self.me.0, 0));
                Ok(Answer::Done)
            }
            QuorumRequest::QdeviceRegister { name } => {
                check_name(&name)?;
                if !self.qdevice_can_operate {
                    return Err(disabled());
                }
                if registered {
                    if name == self.qdevice_name {
                        return Ok(Answer::Done);
                    }
                    let old = self.qdevice_name.clone();
                    self.emit(QuorumEvent::Notice(QuorumNotice::QdeviceNameConflict {
                        new: name,
                        old: old.clone(),
                    }));
                    return Err(QuorumError::Exist(format!(
                        "the quorum device {old} is registered on this node"
                    )));
                }
                if self.qdevice_reg_pending.is_some() {
                    return Err(QuorumError::TryAgain(
                        "a registration is already in progress".into(),
                    ));
                }
                self.qdevice_reg_pending = Some(request);
                self.send
                    .push_back(Self::qdevice_reg_message(QDEVICE_REGISTER, &name));
                Ok(Answer::Later)
            }
            QuorumRequest::QdeviceUnregister { name } => {
                if !registered {
                    return Err(not_registered());
                }
                if name != self.qdevice_name {
                    return Err(wrong_name(&name, &self.qdevice_name));
                }
                self.set_timer(Timer::Qdevice, None);
                self.us_mut().flags &= !(flags::QDEVICE_REGISTERED
                    | flags::QDEVICE_ALIVE
                    | flags::QDEVICE_CAST_VOTE
                    | flags::QDEVICE_MASTER_WINS);
                self.send_nodeinfo(self.me.0);
                self.send
                    .push_back(Self::qdevice_reg_message(QDEVICE_UNREGISTER, &name));
                self.poll_arrived();
                self.changed();
                Ok(Answer::Done)
            }
            QuorumRequest::QdeviceRename { old, new } => {
                check_name(&new)?;
                if !registered {
                    return Err(not_registered());
                }
                if old != self.qdevice_name {
                    return Err(wrong_name(&old, &self.qdevice_name));
                }
                let mut m = vec![OP_QDEVICE_RENAME];
                put_name(&mut m, &old);
                put_name(&mut m, &new);
                self.send.push_back(m);
                Ok(Answer::Done)
            }
            QuorumRequest::QdevicePoll {
                name,
                cast_vote,
                ring,
            } => {
                if !self.qdevice_can_operate {
                    return Err(disabled());
                }
                if !registered {
                    return Err(not_registered());
                }
                if ring != self.ring {
                    return Err(QuorumError::MessageError(format!(
                        "poll for ring {ring}, but the last synced ring is {}",
                        self.ring
                    )));
                }
                if name != self.qdevice_name {
                    return Err(wrong_name(&name, &self.qdevice_name));
                }
                let old = self.us().flags;
                let us = self.us_mut();
                us.flags |= flags::QDEVICE_ALIVE;
                if cast_vote {
                    us.flags |= flags::QDEVICE_CAST_VOTE;
                } else {
                    us.flags &= !flags::QDEVICE_CAST_VOTE;
                }
                if self.us().flags != old {
                    self.send_nodeinfo(self.me.0);
                }
                let timeout = self
                    .settings
                    .qdevice
                    .as_ref()
                    .map_or(settings::QDEVICE_TIMEOUT_MS_DEFAULT, |q| q.timeout_ms);
                self.set_timer(Timer::Qdevice, Some(self.now.plus_ms(timeout)));
                self.poll_arrived();
                self.changed();
                Ok(Answer::Done)
            }
            QuorumRequest::QdeviceMasterWins { name, allow } => {
                if !self.qdevice_can_operate {
                    return Err(disabled());
                }
                if !registered {
                    return Err(not_registered());
                }
                if name != self.qdevice_name {
                    return Err(wrong_name(&name, &self.qdevice_name));
                }
                let old = self.us().flags;
                let us = self.us_mut();
                if allow {
                    us.flags |= flags::QDEVICE_MASTER_WINS;
                } else {
                    us.flags &= !flags::QDEVICE_MASTER_WINS;
                }
                if self.us().flags != old {
                    self.send_nodeinfo(self.me.0);
                }
                self.qdevice_master_wins = allow;
                self.changed();
                Ok(Answer::Done)
            }
        }
    }
}
