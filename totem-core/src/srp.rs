//! The Totem single-ring protocol (SRP): the regular token, ordered multicast with agreed and
//! safe delivery, retransmission, flow control, and the membership protocol (gather → commit →
//! recovery → operational) with extended virtual synchrony on every configuration change.
//!
//! Follows Amir et al., "The Totem single-ring ordering and membership protocol" (ACM TOCS 1995,
//! §2–§4) and Agarwal's thesis; corosync's exec/totemsrp.c was read for behaviour. Deviations:
//! - safe delivery and frame freeing use a rotation minimum published by the representative
//!   (`TokenHdr::safe`): every member's aru is at least the minimum seen over one full rotation,
//!   so a frame at or below it is held by every member;
//! - the end of recovery is decided by the representative when a full rotation passes with no
//!   member missing a frame or holding unsent recovery frames, and the token carries that
//!   decision (`TOKEN_RECOVERY_DONE`);
//! - a restarted node is recognised by its incarnation, carried in every header;
//! - in the transitional configuration, a departed member's old-ring frames that follow a gap
//!   (a frame no transitional member holds) are not delivered: they may follow the missing
//!   frame causally (corosync delivers every frame past the gaps there).
//!
//! - which nodes form a ring together is decided by measured connectivity as well as by the
//!   joins: every node publishes who it hears (presences, replacing merge detection), and a
//!   node forms a ring only with the largest set of nodes that all hear each other (its group,
//!   see `reach`). Members of the proc set outside the group go into the join's excluded set,
//!   which other nodes do not take over (the fail set they do); an operational ring that no
//!   longer matches its group gathers again. So connectivity that is not transitive or not
//!   symmetric ends in stable rings instead of endless re-formation (corosync's behaviour);
//! - joins, commit tokens and presences larger than a frame are cut into pieces
//!   (`wire::SegmentHdr`, reassembled by `segment`), so rings of up to `MEMBERS_MAX` nodes
//!   work at any frame size.
//!
//! Accelerated Ring (Babay and Amir, "Fast Total Ordering for Modern Data Centers", ICDCS
//! 2016; Spread 4.4's accelerated ring), `accelerated_window` > 0: the holder stamps every new
//! frame of its visit as classic Totem does, sets the token's seq, aru, fcc and backlog as if
//! all were sent, but passes the token on before the last `accelerated_window` of them
//! (`Token::tail`, carried in `TokenHdr::tail`) and multicasts those right after it — the
//! outbox keeps that order, so the next member receives the token while they are on the
//! wire and starts its own visit sooner. Retransmissions are answered before the token. What
//! the receiver must not do is take the tail, still in flight behind the token, for lost
//! frames. The rules, from Totem's:
//! - retransmission requests (paper §2, "token receipt") and fail_recv_const cover frames up
//!   to `seq − tail` only: only the previous holder sends after the token, and everything
//!   stamped before its visit was sent before the token reached it, so those frames are the
//!   only ones that cannot have arrived yet. A tail frame that was lost is requested on the
//!   next visit, when it is below the token's seq less that visit's tail;
//! - the aru is left as Totem has it: a member lowers the token's aru to what it holds, tail
//!   included, and raises it on its next visit. The aru and the rotation minimum decide safe
//!   delivery and freeing, so they must stay what members hold; the cost is that the previous
//!   holder's tail becomes safe one rotation later (agreed delivery is not affected);
//! - only an operational ring accelerates: recovery's end is decided by a full rotation in
//!   which no member misses a frame, which a tail in flight would keep postponing;
//! - a token that is held (a ring of one; the representative's hold only follows a visit
//!   with nothing to send) has no tail;
//! - frames of the tail count in the visit's flow control (fcc) like the others: the window
//!   limits what is on the wire in one rotation, whatever its order.
//!
//! The membership state is one [`Phase`] whose variants carry the data only that state has (the
//! gather sets; the ring being formed; what recovery still has to send), so a combination the
//! protocol never reaches cannot be represented. [`Srp::check_invariants`] asserts what must
//! hold between inputs; the cheap part runs after every input, in release builds too.

use std::collections::VecDeque;

use zerocopy::{FromBytes, IntoBytes};

use crate::body::Body;
use crate::config::identity::{differences, DIFFERENCES_MAX};
use crate::config::{ClusterShape, ConfigIdentity, SettingError, TotemSettings};
use crate::flow::Allowance;
use crate::limits::{
    CONFIG_REPORT_INTERVAL_MS, MEMBERS_MAX, NOTICES_MAX, RETAINED_FRAMES_MAX, RTR_ENTRIES_MAX,
    SEGMENTS_MAX, WINDOW_SIZE_MAX,
};
use crate::node::NodeConfig;
use crate::notice::{GatherCause, Notice};
use crate::reach::{BrokenPair, Reach};
use crate::rto::TokenRto;
use crate::segment::{Piece, Reassembly};
use crate::stats::Stats;
use crate::store::Store;
use crate::types::{Dest, Instant, NodeId, RingId};
use crate::wire::{self, *};

/// What a configuration change event says (EVS: transitional, then regular).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigKind {
    /// The members of the old ring that move together into the new one.
    Transitional,
    /// The new ring.
    Regular,
}

/// A configuration change, delivered in order with the messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigChange {
    pub kind: ConfigKind,
    /// For a regular configuration, the new ring; for a transitional one, the old ring.
    pub ring: RingId,
    /// For a transitional configuration: the ring being installed next.
    pub next_ring: RingId,
    pub members: Vec<NodeId>,
    pub joined: Vec<NodeId>,
    pub left: Vec<NodeId>,
}

/// The layer above the SRP: supplies frame bodies when the token allows sending and takes
/// frames and configuration changes in delivery order.
pub trait Upper {
    /// Fills `buf` with queued messages; returns the body length (0: nothing to send) and
    /// whether the frame needs safe delivery.
    fn fill(&mut self, buf: &mut [u8]) -> (usize, bool);
    /// Frames' worth of queued messages (for fair flow control).
    fn backlog_frames(&self) -> u32;
    /// A frame body in agreed/safe order. The body is the store's own copy: the upper layer
    /// may keep a reference to it (deliveries borrow from it) instead of copying.
    fn deliver(&mut self, origin: NodeId, body: &Body);
    /// A configuration change, in order with the frames.
    fn config(&mut self, change: ConfigChange);
}

/// The membership state, as callers see it (a read-only view of [`Phase`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Operational,
    Gather,
    Commit,
    Recovery,
}

impl State {
    /// Lower-case name, as corosync's `runtime.totem.pg.mrp.srp` keys spell states.
    pub const fn name(self) -> &'static str {
        match self {
            State::Operational => "operational",
            State::Gather => "gather",
            State::Commit => "commit",
            State::Recovery => "recovery",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
enum Timer {
    TokenWarning,
    TokenLoss,
    TokenRetransmit,
    Hold,
    Join,
    Consensus,
    /// Sends this node's presence; runs in every state.
    Presence,
}
const TIMER_COUNT: usize = 7;

/// The decoded regular token (kept while held, rebuilt into a datagram when forwarded).
#[derive(Clone, Debug)]
struct Token {
    ring: RingId,
    token_seq: u64,
    seq: u64,
    aru: u64,
    aru_addr: u32,
    rotation_start_seq: u64,
    rotation_min_aru: u64,
    safe: u64,
    fcc: u32,
    backlog: u32,
    flags: u8,
    /// `TokenHdr::resent`.
    resent: u8,
    /// Received: frames the previous holder multicast after passing the token on (the top
    /// `tail` of `seq` may still be in flight). Forwarded: how many of this visit's follow it.
    tail: u32,
    rtr: Vec<u64>,
}

/// The ring this node last installed: its frames and delivery progress.
struct Installed {
    ring: RingId,
    /// Invariant: sorted, unique, contains this node.
    members: Vec<NodeId>,
    store: Store,
    /// Highest sequence delivered to the upper layer. Invariant: at most `store.aru()`.
    delivered: u64,
    /// Every member is known to hold every frame up to here. Invariant: at most `store.aru()`.
    safe: u64,
    /// Set while this node's state has been reported in a commit token: no more frames of this
    /// ring are accepted except through recovery, so all members recover the same set.
    /// Invariant: set exactly in the commit and recovery phases.
    frozen: bool,
}

/// Where the membership protocol is (paper §4), with the data only that phase has.
enum Phase {
    /// Looking for the members of a new ring.
    Gather(Gather),
    /// The commit token circulates among the agreed members of the ring being formed.
    Commit(Forming),
    /// The new ring's token circulates; old-ring frames are recovered.
    Recovery(Forming, Recovery),
    /// The installed ring is in use.
    Operational,
}

impl Phase {
    fn state(&self) -> State {
        match self {
            Phase::Gather(_) => State::Gather,
            Phase::Commit(_) => State::Commit,
            Phase::Recovery(..) => State::Recovery,
            Phase::Operational => State::Operational,
        }
    }

    /// The ring being formed, in commit and recovery.
    fn forming_mut(&mut self) -> Option<&mut Forming> {
        match self {
            Phase::Commit(f) | Phase::Recovery(f, _) => Some(f),
            Phase::Gather(_) | Phase::Operational => None,
        }
    }
}

/// The gather state's sets (paper §4.1: "my_proc_set", "my_fail_set", consensus).
struct Gather {
    /// Invariant: sorted, unique, contains this node, at most `MEMBERS_MAX`.
    proc_set: Vec<NodeId>,
    /// Invariant: sorted, unique, never this node.
    fail_set: Vec<NodeId>,
    /// Live members of the proc set outside this node's group (`reach`): left out because
    /// they do not all hear each other. Not taken over from other nodes' joins. Invariant:
    /// sorted, unique, in the proc set, disjoint from the fail set, never this node.
    excluded: Vec<NodeId>,
    /// Nodes whose join matched our sets since they last changed. Invariant: sorted, unique,
    /// contains this node.
    agreed: Vec<NodeId>,
    /// Consensus timeouts in a row that found every live node agreed but no commit token.
    agreed_timeouts: u32,
}

/// A ring being formed (commit and recovery).
struct Forming {
    ring: RingId,
    /// Invariant: sorted, unique, contains this node; the first is the representative.
    members: Vec<NodeId>,
    /// Invariant: one per member, in the same order.
    entries: Vec<CommitEntry>,
    /// The gather sets that produced this ring: joins repeating them are not news.
    proc_set: Vec<NodeId>,
    fail_set: Vec<NodeId>,
    excluded: Vec<NodeId>,
    store: Store,
    /// Last commit token sequence seen, to discard duplicates.
    commit_token_seq: u64,
}

/// What recovery computed from the second commit token (paper §4.3).
struct Recovery {
    /// Members of the new ring that come from this node's installed ring. Invariant: contains
    /// this node.
    trans: Vec<NodeId>,
    /// Old-ring frames to recover: everything up to `high` that any of `trans` held.
    high: u64,
    /// Old-ring frames up to here are delivered in the old regular configuration.
    old_safe: u64,
    /// Old-ring frames this node retransmits during recovery. Invariant: increasing, each at
    /// most `high`.
    queue: VecDeque<u64>,
}

/// The frames the SRP built and not yet handed out, and spare buffers. Apart from the protocol
/// state so a handler can hold a phase's data and send at once.
struct Outbox {
    me: NodeId,
    incarnation: u32,
    cluster: u32,
    /// Bytes of core header and body in one frame.
    frame_size_bytes: usize,
    /// Number of the last membership message cut into pieces.
    segmented: u32,
    /// `ConfigIdentity::digest` of this node's configuration, carried by joins.
    config_digest: u64,
    queue: VecDeque<(Dest, Vec<u8>)>,
    spare: Vec<Vec<u8>>,
}

impl Outbox {
    fn header(&self, kind: u8) -> Header {
        Header {
            magic: MAGIC,
            version: VERSION,
            kind,
            cluster: self.cluster.into(),
            sender: self.me.0.into(),
            incarnation: self.incarnation.into(),
        }
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < 256 {
            buf.clear();
            self.spare.push(buf);
        }
    }

    fn send(&mut self, dest: Dest, buf: Vec<u8>, stats: &mut Stats) {
        stats.frames_out += 1;
        self.queue.push_back((dest, buf));
    }

    /// Takes the last `count` datagrams queued back out (to queue them again after the token:
    /// Accelerated Ring).
    fn take_last(&mut self, count: usize) -> VecDeque<(Dest, Vec<u8>)> {
        assert!(count <= self.queue.len(), "held back more than was queued");
        self.queue.split_off(self.queue.len() - count)
    }

    /// Sends a membership message (join, commit token, presence: a whole datagram in `buf`),
    /// cut into pieces if it is larger than a frame.
    fn send_membership(&mut self, dest: Dest, buf: Vec<u8>, stats: &mut Stats) {
        if buf.len() <= self.frame_size_bytes {
            self.send(dest, buf, stats);
            return;
        }
        assert!(
            buf.len() <= wire::MEMBERSHIP_MESSAGE_MAX,
            "a membership message beyond the largest one of MEMBERS_MAX nodes"
        );
        let kind = buf[3];
        let body = &buf[HEADER_LEN..];
        let piece_len = self.frame_size_bytes - wire::SEGMENT_OVERHEAD;
        let count = body.len().div_ceil(piece_len);
        assert!(
            count <= SEGMENTS_MAX && count == wire::segments_for(buf.len(), self.frame_size_bytes),
            "frames of the allowed sizes carry every membership message in SEGMENTS_MAX pieces"
        );
        self.segmented = self.segmented.wrapping_add(1);
        for (index, piece) in body.chunks(piece_len).enumerate() {
            let mut out = self.buffer();
            let mut w = Writer::new_vec(&mut out, wire::SEGMENT_OVERHEAD + piece.len());
            w.put(self.header(KIND_SEGMENT).as_bytes());
            let hdr = SegmentHdr {
                kind,
                _pad: 0,
                index: (index as u16).into(),
                count: (count as u16).into(),
                piece_len: (piece_len as u16).into(),
                message: self.segmented.into(),
                total_len: (body.len() as u32).into(),
            };
            w.put(hdr.as_bytes());
            w.put(piece);
            stats.segments_out += 1;
            self.send(dest, out, stats);
        }
        self.recycle(buf);
    }

    /// A join message with these sets (paper §4.1), and the excluded set (`reach`).
    fn join(
        &mut self,
        ring_seq: u64,
        proc_set: &[NodeId],
        fail_set: &[NodeId],
        excluded: &[NodeId],
        stats: &mut Stats,
    ) {
        let mut buf = self.buffer();
        let size = wire::join_size(proc_set.len(), fail_set.len(), excluded.len());
        let mut w = Writer::new_vec(&mut buf, size);
        w.put(self.header(KIND_JOIN).as_bytes());
        let hdr = JoinHdr {
            ring_seq: ring_seq.into(),
            proc_count: (proc_set.len() as u16).into(),
            fail_count: (fail_set.len() as u16).into(),
            excluded_count: (excluded.len() as u16).into(),
            _pad: 0.into(),
            config_digest: self.config_digest.into(),
        };
        w.put(hdr.as_bytes());
        for n in proc_set.iter().chain(fail_set).chain(excluded) {
            w.put_u32(n.0);
        }
        stats.joins_sent += 1;
        self.send_membership(Dest::All, buf, stats);
    }

    fn write_data_headers(
        &self,
        buf: &mut [u8],
        ring: RingId,
        seq: u64,
        origin: NodeId,
        flags: u8,
        len: usize,
    ) {
        let header = self.header(KIND_DATA);
        let data = DataHdr {
            ring_seq: ring.seq.into(),
            ring_rep: ring.rep.into(),
            origin: origin.0.into(),
            seq: seq.into(),
            flags,
            _pad: [0; 3],
            len: (len as u32).into(),
        };
        buf[..HEADER_LEN].copy_from_slice(header.as_bytes());
        buf[HEADER_LEN..wire::DATA_OVERHEAD].copy_from_slice(data.as_bytes());
    }
}

pub struct Srp {
    me: NodeId,
    incarnation: u32,
    /// Invariant: valid for `shape` (`TotemSettings::validate`), whose frame size is
    /// `frame_size_bytes`.
    config: TotemSettings,
    shape: ClusterShape,
    /// What this node's configuration must agree on with a member's (its digest goes in every
    /// join and presence).
    identity: ConfigIdentity,
    /// Nodes configured otherwise that were told so: when this node last sent each its
    /// summary, and when it last reported each. Invariant: at most `MEMBERS_MAX` entries.
    config_reports: Vec<ConfigReport>,
    /// Bytes of core header and body in one frame.
    frame_size_bytes: usize,
    /// `token_warning_percent` of the token timeout; 0 = no warning.
    token_warning_ms: u32,
    phase: Phase,
    installed: Installed,
    /// Highest ring sequence seen anywhere; new rings are numbered above it.
    /// Invariant: at least the installed and the forming ring's sequence.
    max_ring_seq: u64,
    /// Sequence of the last ring this node entered the commit state for (corosync's ring id
    /// after `memb_ring_id_set`): a gathering node takes only commit tokens of a higher one.
    /// An abandoned attempt's commit token, still passed on by members that have not given it
    /// up yet, would otherwise draw the node back into that attempt, and two attempts with the
    /// same members can then chase each other round a large ring for ever, each dropped by the
    /// nodes in the other. Invariant: at most `max_ring_seq`.
    commit_seq: u64,
    /// Incarnations of the nodes seen, to recognise a restart.
    incarnations: Vec<(NodeId, u32)>,
    /// Members of the installed ring whose leave message arrived since it was installed: the
    /// others that leave have failed. Invariant: sorted, unique.
    left_cleanly: Vec<NodeId>,

    // Token handling on the installed (operational) or forming (recovery) ring.
    last_token_seq: u64,
    last_token: Vec<u8>,
    last_token_dest: NodeId,
    /// Invariant: only in recovery and operational, and exactly while the hold timer runs.
    held: Option<Token>,
    /// When the token timer was last started (a token arrived or the node began waiting).
    token_timer_started: Instant,
    idle_rotations: u32,
    /// The token's sequence when this node last passed it on (or held it): a visit is idle
    /// only if no member stamped a frame since, so every member counts the same idle rotations
    /// (give or take the one in progress) and knows when the representative may hold.
    seq_at_last_visit: u64,
    my_last_sent: u32,
    my_last_backlog: u32,
    aru_unchanged_visits: u32,
    last_aru_at_visit: u64,
    hold_cancel_pending: bool,
    /// Whether the last token this node passed on announced a hold (`TOKEN_HOLD_NEXT`), or none
    /// has passed since the ring was installed. Only then does a new message need a
    /// hold-cancel: the representative may hold the token before it comes back, and the
    /// members that passed it on wait token_retransmit before sending a lost one again.
    token_may_be_held: bool,
    /// Per missing frame: token visits it has been seen missing (miss_count_const).
    missing: Vec<(u64, u32)>,
    /// When to send the regular token again, from measured rotations (see `rto`).
    rto: TokenRto,
    /// The adaptive per-visit allowance (`flow`); `None` when `max_messages` applies as set.
    allowance: Option<Allowance>,
    /// This node's local receivers are behind (`set_receivers_behind`): its visits claim the
    /// whole window in the token's fcc, so the other members send nothing new until they catch
    /// up.
    receivers_behind: bool,

    timer: [Option<Instant>; TIMER_COUNT],
    rng: u64,
    outbox: Outbox,
    /// Who hears whom (see `reach`).
    reach: Reach,
    /// Membership messages arriving in pieces.
    reassembly: Reassembly,
    /// The broken pairs last reported (`Notice::PartialConnectivity`), and how many more.
    reported_pairs: (Vec<BrokenPair>, u32),
    /// The rows changed since this node last acted on them (it does not while forming a ring).
    reach_pending: bool,
    /// Invariant: at most `NOTICES_MAX`; more are counted as `notices_dropped`.
    notices: VecDeque<Notice>,
    /// Run the expensive invariants too after every input (the simulator turns this on).
    check_all: bool,
    pub stats: Stats,
}

/// One node configured otherwise: when it was last sent our summary, and last reported.
struct ConfigReport {
    node: NodeId,
    sent: Option<Instant>,
    reported: Option<Instant>,
}

fn sorted_insert(set: &mut Vec<NodeId>, node: NodeId) -> bool {
    match set.binary_search(&node) {
        Ok(_) => false,
        Err(at) => {
            set.insert(at, node);
            true
        }
    }
}

fn contains(set: &[NodeId], node: NodeId) -> bool {
    set.binary_search(&node).is_ok()
}

fn minus(a: &[NodeId], b: &[NodeId]) -> Vec<NodeId> {
    // Sized once: a filtered collect starts small and grows, and the gather state runs this on
    // every join it takes.
    let mut out = Vec::with_capacity(a.len());
    out.extend(a.iter().copied().filter(|n| !contains(b, *n)));
    out
}

fn sorted_unique(set: &[NodeId]) -> bool {
    set.windows(2).all(|w| w[0] < w[1])
}

/// More nodes than a ring can hold: keep the lowest ids (deterministic everywhere) and `me`.
fn cap_members(set: &mut Vec<NodeId>, me: NodeId) {
    if set.len() > MEMBERS_MAX {
        set.retain(|n| *n != me);
        set.truncate(MEMBERS_MAX - 1);
        sorted_insert(set, me);
    }
}

/// The adaptive allowance `totem` asks for, starting at max_messages, bounded by the window.
fn adaptive_allowance(totem: &TotemSettings) -> Option<Allowance> {
    (totem.max_messages_adaptive != 0)
        .then(|| Allowance::new(totem.max_messages, totem.window_size))
}

fn successor(me: NodeId, members: &[NodeId]) -> NodeId {
    let at = members.binary_search(&me).expect("a ring member");
    members[(at + 1) % members.len()]
}

impl Srp {
    /// A node starts alone in the gather state, in a singleton pseudo-ring numbered from
    /// `ring_seq_start`, which the caller persists across restarts (corosync keeps it in
    /// /var/lib/corosync/ringid_*): a restarted node must start above every ring it was in.
    pub fn new(node: &NodeConfig, now: Instant) -> Result<Srp, SettingError> {
        let me = node.node_id;
        assert!(me.0 != 0, "node id 0 is reserved");
        assert!(
            RingId::plausible(node.ring_seq_start),
            "a ring sequence to start from below RingId::SEQ_LIMIT"
        );
        node.totem.validate(&node.shape)?;
        let config = node.totem.clone();
        let shape = node.shape;
        let identity = node.identity.clone();
        let frame_size_bytes = config.frame_size_bytes(&node.shape);
        let token_warning_ms = config.token_warning_ms().unwrap_or(0);
        let reach_timeout_ms = config.reach_timeout_ms();
        let (incarnation, cluster, ring_seq_start, seed) = (
            node.incarnation,
            node.cluster,
            node.ring_seq_start,
            node.seed,
        );
        let ring = RingId {
            seq: ring_seq_start | 1,
            rep: me.0,
        };
        let config_digest = identity.digest();
        let mut srp = Srp {
            me,
            incarnation,
            config,
            shape,
            identity,
            config_reports: Vec::new(),
            frame_size_bytes,
            token_warning_ms,
            phase: Phase::Operational,
            installed: Installed {
                ring,
                members: vec![me],
                store: Store::new(),
                delivered: 0,
                safe: 0,
                frozen: false,
            },
            max_ring_seq: ring_seq_start | 1,
            commit_seq: 0,
            incarnations: Vec::with_capacity(MEMBERS_MAX),
            left_cleanly: Vec::with_capacity(MEMBERS_MAX),
            last_token_seq: 0,
            last_token: Vec::new(),
            last_token_dest: me,
            held: None,
            token_timer_started: now,
            idle_rotations: 0,
            seq_at_last_visit: 0,
            my_last_sent: 0,
            my_last_backlog: 0,
            aru_unchanged_visits: 0,
            last_aru_at_visit: 0,
            hold_cancel_pending: false,
            token_may_be_held: true,
            missing: Vec::with_capacity(RTR_ENTRIES_MAX),
            rto: TokenRto::default(),
            allowance: adaptive_allowance(&node.totem),
            receivers_behind: false,
            timer: [None; TIMER_COUNT],
            rng: seed | 1,
            outbox: Outbox {
                me,
                incarnation,
                cluster,
                frame_size_bytes,
                segmented: 0,
                config_digest,
                queue: VecDeque::new(),
                spare: Vec::new(),
            },
            reach: Reach::new(me, incarnation, now, reach_timeout_ms),
            reassembly: Reassembly::new(),
            reported_pairs: (Vec::new(), 0),
            reach_pending: false,
            notices: VecDeque::with_capacity(NOTICES_MAX),
            check_all: false,
            stats: Stats::default(),
        };
        srp.set_timer(Timer::Presence, Some(now));
        srp.enter_gather(now, vec![me], Vec::new(), GatherCause::Start);
        srp.check_invariants(true);
        Ok(srp)
    }

    pub fn node_id(&self) -> NodeId {
        self.me
    }

    /// Whether this node has installed a ring since it started (the start's pseudo-ring has an
    /// odd sequence number; formed rings are multiples of 4).
    fn ever_installed(&self) -> bool {
        self.installed.ring.is_formed()
    }
    pub fn ring(&self) -> RingId {
        self.installed.ring
    }
    pub fn members(&self) -> &[NodeId] {
        &self.installed.members
    }
    pub fn state(&self) -> State {
        self.phase.state()
    }
    /// The highest ring sequence seen: persist it, and pass it back as `ring_seq_start`.
    pub fn max_ring_seq(&self) -> u64 {
        self.max_ring_seq
    }

    /// Whether this node's local receivers are behind (the dataplane's clients have more
    /// queued than their rings take): while they are, each of its token visits claims the whole
    /// window, so the ring carries nothing new from the other members. Ordering and membership
    /// are untouched; the caller bounds how long it keeps this on (a stalled receiver must not
    /// stall the ring).
    pub fn set_receivers_behind(&mut self, behind: bool) {
        self.receivers_behind = behind;
    }

    /// Whether the expensive invariants run after every input too (the cheap ones always do).
    pub fn set_check_all(&mut self, on: bool) {
        self.check_all = on;
    }

    /// The settings in effect.
    pub fn settings(&self) -> &TotemSettings {
        &self.config
    }

    /// What the settings are validated against.
    pub fn shape(&self) -> ClusterShape {
        self.shape
    }

    /// This node's configuration identity.
    pub fn identity(&self) -> &ConfigIdentity {
        &self.identity
    }

    /// Runs with `totem` for `shape` from now on: timers already running keep their deadline,
    /// the next ones use the new values. Refused (nothing changes) when the settings do not
    /// validate for the shape, or when the frame size would change (netmtu and the bytes
    /// under the frame are fixed for the node's life: the send queue is cut to it).
    pub fn set_settings(
        &mut self,
        totem: TotemSettings,
        shape: ClusterShape,
    ) -> Result<(), SettingError> {
        totem.validate(&shape)?;
        let frame = totem.frame_size_bytes(&shape);
        if frame != self.frame_size_bytes {
            return Err(SettingError {
                key: Some("netmtu"),
                reason: format!(
                    "frames of {frame} bytes instead of {}: netmtu cannot change while the \
                     node runs (restart it)",
                    self.frame_size_bytes
                ),
            });
        }
        self.token_warning_ms = totem.token_warning_ms().unwrap_or(0);
        let flow = |t: &TotemSettings| (t.max_messages_adaptive, t.max_messages, t.window_size);
        if flow(&totem) != flow(&self.config) {
            self.allowance = adaptive_allowance(&totem);
        }
        self.config = totem;
        self.shape = shape;
        Ok(())
    }

    /// Takes `identity` as this node's configuration from now on (its joins carry the new
    /// digest). Nodes reported as configured otherwise are reported again if they still are.
    pub fn set_identity(&mut self, identity: ConfigIdentity) {
        self.outbox.config_digest = identity.digest();
        self.identity = identity;
        self.config_reports.clear();
    }

    // ----- outputs -------------------------------------------------------------------------

    pub fn poll_transmit(&mut self) -> Option<(Dest, Vec<u8>)> {
        self.outbox.queue.pop_front()
    }

    /// Returns a transmitted buffer for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.outbox.recycle(buf);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer.iter().flatten().min().copied()
    }

    /// The next diagnostic, in the order they happened.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    fn notice(&mut self, notice: Notice) {
        if self.notices.len() < NOTICES_MAX {
            self.notices.push_back(notice);
        } else {
            self.stats.notices_dropped += 1;
        }
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.outbox.buffer()
    }

    fn send(&mut self, dest: Dest, buf: Vec<u8>) {
        self.outbox.send(dest, buf, &mut self.stats);
    }

    fn set_timer(&mut self, timer: Timer, at: Option<Instant>) {
        self.timer[timer as usize] = at;
    }

    /// Starts (or restarts) the token timer, and with it the token warning.
    fn reset_token_timeout(&mut self, now: Instant) {
        self.token_timer_started = now;
        self.set_timer(Timer::TokenLoss, Some(now.plus_ms(self.config.token_ms)));
        let warning = (self.token_warning_ms > 0).then(|| now.plus_ms(self.token_warning_ms));
        self.set_timer(Timer::TokenWarning, warning);
    }

    fn cancel_token_timeout(&mut self) {
        self.set_timer(Timer::TokenLoss, None);
        self.set_timer(Timer::TokenWarning, None);
    }

    fn random_below(&mut self, bound: u64) -> u64 {
        // xorshift64*: the seed comes from the caller; the core has no randomness of its own.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }

    /// The sequence joins carry: the highest ring sequence this node knows of.
    fn join_ring_seq(&self) -> u64 {
        self.max_ring_seq.max(self.installed.ring.seq)
    }

    // ----- inputs --------------------------------------------------------------------------

    /// A datagram from the network. `from` is the node the transport (crypto) authenticated.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: NodeId,
        bytes: &[u8],
        up: &mut impl Upper,
    ) {
        self.stats.frames_in += 1;
        if let Err(reason) = self.on_datagram(now, from, bytes, up) {
            self.stats.drop(reason);
        }
        self.check_invariants(self.check_all);
    }

    fn on_datagram(
        &mut self,
        now: Instant,
        from: NodeId,
        bytes: &[u8],
        up: &mut impl Upper,
    ) -> Result<(), DropReason> {
        let (header, body) = Header::ref_from_prefix(bytes).map_err(|_| DropReason::Truncated)?;
        if header.magic != MAGIC {
            return Err(DropReason::BadMagic);
        }
        if header.version != VERSION {
            return Err(DropReason::BadVersion);
        }
        if header.cluster.get() != self.outbox.cluster {
            return Err(DropReason::ForeignCluster);
        }
        let sender = NodeId(header.sender.get());
        if sender != from || sender.0 == 0 {
            return Err(DropReason::SenderMismatch);
        }
        if sender == self.me {
            return Err(DropReason::OwnFrame);
        }
        let incarnation = header.incarnation.get();
        // Whatever it is, the sender reaches us.
        self.reach.note_heard(sender, now);
        if header.kind == KIND_SEGMENT {
            let (hdr, piece) =
                SegmentHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
            self.stats.segments_in += 1;
            let Piece::Whole(kind, whole) = self.reassembly.add(sender, incarnation, hdr, piece)?
            else {
                return Ok(());
            };
            let result = self.dispatch(now, kind, sender, incarnation, &whole, up);
            self.reassembly.recycle(sender, kind, whole);
            return result;
        }
        self.dispatch(now, header.kind, sender, incarnation, body, up)
    }

    /// Hands a datagram's body (or a reassembled one) to the handler of its kind.
    fn dispatch(
        &mut self,
        now: Instant,
        kind: u8,
        sender: NodeId,
        incarnation: u32,
        body: &[u8],
        up: &mut impl Upper,
    ) -> Result<(), DropReason> {
        match kind {
            KIND_DATA => self.on_data(sender, body, up),
            KIND_TOKEN => self.on_token(now, body, up),
            KIND_JOIN => self.on_join(now, sender, incarnation, body, up),
            KIND_COMMIT => self.on_commit(now, body, up),
            KIND_PRESENCE => self.on_presence(now, sender, incarnation, body, up),
            KIND_HOLD_CANCEL => self.on_hold_cancel(now, body),
            KIND_CONFIG => self.on_config_summary(now, sender, body),
            _ => Err(DropReason::UnknownKind),
        }
    }

    /// Advances the timers: each expired one runs its `on_<name>_timeout` handler.
    pub fn handle_timeout(&mut self, now: Instant, up: &mut impl Upper) {
        for timer in [
            Timer::TokenWarning,
            Timer::TokenLoss,
            Timer::Consensus,
            Timer::TokenRetransmit,
            Timer::Hold,
            Timer::Join,
            Timer::Presence,
        ] {
            match self.timer[timer as usize] {
                Some(at) if at <= now => {
                    self.timer[timer as usize] = None;
                    match timer {
                        Timer::TokenWarning => self.on_token_warning_timeout(now),
                        Timer::TokenLoss => self.on_token_loss_timeout(now),
                        Timer::TokenRetransmit => self.on_token_retransmit_timeout(now),
                        Timer::Hold => self.on_hold_timeout(now, up),
                        Timer::Join => self.on_join_timeout(now, up),
                        Timer::Consensus => self.on_consensus_timeout(now, up),
                        Timer::Presence => self.on_presence_timeout(now, up),
                    }
                }
                _ => {}
            }
        }
        self.check_invariants(self.check_all);
    }

    /// Whether a message submitted now goes out on the token's next visit here without this
    /// node doing anything before it: the ring is operational with other members, the token is
    /// not held here, and the last token this node passed on announced no hold, so it comes back
    /// unasked ([`Srp::handle_pending`] would do nothing). An embedding that sleeps may then
    /// leave new submissions for that visit instead of waking for each one.
    pub fn token_returns_unasked(&self) -> bool {
        self.phase.state() == State::Operational
            && self.held.is_none()
            && self.installed.members.len() > 1
            && !self.token_may_be_held
    }

    /// The layer above has new messages: release a held token, or ask the holder to.
    pub fn handle_pending(&mut self, now: Instant) {
        if self.phase.state() != State::Operational {
            return;
        }
        if let Some(token) = &mut self.held {
            // Released for traffic: the next visit is not held.
            token.flags &= !TOKEN_HOLD_NEXT;
            self.set_timer(Timer::Hold, Some(now));
        } else if self.installed.members.len() > 1
            && !self.hold_cancel_pending
            && self.token_may_be_held
        {
            // The token we passed on announced a hold: ask the representative not to hold it
            // and tell the members that passed it on that it will come back, at most once per
            // visit. When it announced none, the representative's next visit forwards it (its
            // idle count is below the hold, and traffic since keeps it so) and our message goes
            // out on the token's next visit here: a cancel would only cost every member a frame
            // and a wake-up per message (corosync too sends one only when it counts the ring
            // idle).
            self.hold_cancel_pending = true;
            let mut buf = self.buffer();
            let mut w = Writer::new_vec(&mut buf, wire::HEADER_LEN + 16);
            w.put(self.outbox.header(KIND_HOLD_CANCEL).as_bytes());
            w.put(RingHdr::new(self.installed.ring).as_bytes());
            self.send(Dest::All, buf);
        }
    }

    /// Leaves the ring cleanly: a join naming ourselves as failed, so the others re-form at
    /// once instead of waiting for the token timeout.
    pub fn leave(&mut self) {
        let ring_seq = self.join_ring_seq();
        self.outbox.join(
            ring_seq,
            &self.installed.members,
            &[self.me],
            &[],
            &mut self.stats,
        );
    }

    // ----- timers --------------------------------------------------------------------------

    /// corosync's "Token has not been received in N ms": repeats every warning interval until
    /// the token arrives or is declared lost.
    fn on_token_warning_timeout(&mut self, now: Instant) {
        if self.timer[Timer::TokenLoss as usize].is_none() {
            return;
        }
        let since_ms = (now.0.saturating_sub(self.token_timer_started.0)) / 1_000_000;
        let token_ms = self.config.token_ms;
        self.notice(Notice::TokenNotReceived { since_ms, token_ms });
        self.set_timer(
            Timer::TokenWarning,
            Some(now.plus_ms(self.token_warning_ms)),
        );
    }

    fn on_token_loss_timeout(&mut self, now: Instant) {
        let state = self.phase.state();
        let members = match &self.phase {
            Phase::Operational => self.installed.members.clone(),
            Phase::Commit(f) | Phase::Recovery(f, _) => f.members.clone(),
            Phase::Gather(_) => return,
        };
        self.stats.token_lost += 1;
        self.notice(Notice::TokenLost {
            state,
            token_ms: self.config.token_ms,
            consensus_ms: self.config.consensus_ms,
        });
        self.enter_gather(now, members, Vec::new(), GatherCause::TokenLost(state));
    }

    /// The token passed on last has not come back: send it again (paper §2: the last holder
    /// retransmits; the receiver drops a copy it has by the token sequence number). The
    /// regular token waits twice as long each time, up to `token_retransmit` (`rto`); the
    /// commit token always waits `token_retransmit`.
    fn on_token_retransmit_timeout(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Gather(_)) && !self.last_token.is_empty() {
            self.stats.token_retransmits += 1;
            let regular = self.last_token.get(3) == Some(&KIND_TOKEN);
            if regular {
                self.count_resent();
            }
            let mut buf = self.buffer();
            buf.extend_from_slice(&self.last_token);
            let dest = self.last_token_dest;
            if let (true, Some(allowance)) = (regular, &mut self.allowance) {
                allowance.on_token_lost();
            }
            // A commit token may be larger than a frame.
            self.outbox
                .send_membership(Dest::Node(dest), buf, &mut self.stats);
            let ceiling_ms = self.config.token_retransmit_ms;
            let next = if regular {
                now.plus_ns(self.rto.on_retransmit(ceiling_ms))
            } else {
                now.plus_ms(ceiling_ms)
            };
            self.set_timer(Timer::TokenRetransmit, Some(next));
        }
    }

    /// The path to `node` changed under the ring: a link to it went down and its frames now
    /// take another. If the token this node passed on last went to `node` and has not come
    /// back, the dead link may have swallowed it: send it again now rather than at the
    /// retransmit timer, which after a silence as long as a link's ping timeout has backed off
    /// to its ceiling. The timer is left as it is; the receiver drops a copy it has by the
    /// token sequence number, as with any retransmission (paper §2).
    pub fn handle_path_change(&mut self, node: NodeId) {
        let waiting = self.timer[Timer::TokenRetransmit as usize].is_some();
        if waiting
            && !matches!(self.phase, Phase::Gather(_))
            && !self.last_token.is_empty()
            && self.last_token_dest == node
        {
            self.stats.token_retransmits += 1;
            if self.last_token.get(3) == Some(&KIND_TOKEN) {
                self.count_resent();
            }
            let mut buf = self.buffer();
            buf.extend_from_slice(&self.last_token);
            self.outbox
                .send_membership(Dest::Node(node), buf, &mut self.stats);
        }
    }

    /// The regular token passed on last is about to be sent again: its copy carries a
    /// `resent` count one higher, so every member whose rotation it ends knows a hop of that
    /// rotation was recovered by a retransmission (no sample). The successor still takes one
    /// copy by `token_seq`, whichever comes first; order, aru and safe read nothing else.
    fn count_resent(&mut self) {
        if let Some(count) = self.last_token.get_mut(wire::TOKEN_RESENT_OFFSET) {
            *count = count.wrapping_add(1);
        }
    }

    fn on_hold_timeout(&mut self, now: Instant, up: &mut impl Upper) {
        if let Some(mut token) = self.held.take() {
            if self.ring_members().len() == 1 {
                // Alone: the token "comes back" at once; process the next rotation.
                token.token_seq += 1;
                self.on_regular_token(now, token, up);
            } else {
                self.forward_token(now, token);
            }
        }
    }

    /// Sends this node's join and runs the join timer again (gather only).
    fn send_join_round(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Gather(_)) {
            self.send_join();
            self.set_timer(Timer::Join, Some(now.plus_ms(self.config.join_ms)));
        }
    }

    fn on_join_timeout(&mut self, now: Instant, up: &mut impl Upper) {
        if matches!(self.phase, Phase::Gather(_)) {
            self.send_join_round(now);
            if !self.ever_installed() {
                // A node that just started and that nobody answered within a join period
                // forms its first ring alone and merges when the others appear, as corosync
                // does (its own join comes back to it through the transport and
                // memb_join_process finds consensus on it), instead of waiting for the
                // consensus timeout — 3.6 s at the default token — before it has any ring (and
                // systemd its READY=1). Only before the first ring: later gathers keep the
                // consensus timeout, so survivors of a fault do not split into rings of one.
                self.check_consensus(now, up);
            }
        }
    }

    fn on_consensus_timeout(&mut self, now: Instant, up: &mut impl Upper) {
        let me = self.me;
        let Phase::Gather(g) = &mut self.phase else {
            return;
        };
        self.stats.consensus_timeouts += 1;
        let live = minus(&minus(&g.proc_set, &g.fail_set), &g.excluded);
        let silent: Vec<NodeId> = live
            .iter()
            .copied()
            .filter(|n| !contains(&g.agreed, *n))
            .collect();
        let mut failed = Vec::new();
        if silent.is_empty() {
            // Every live node agreed but no commit token came. The agreement may be only
            // microseconds old (this timer runs from the start of the gather, and the last
            // matching join can arrive just before it fires): restart the round, as corosync's
            // memb_state_consensus_timeout_expired does, and blame the representative only when
            // a whole further round passes agreed without its commit token. Failing it at once
            // split two survivors of a crash into two singleton rings (found by a seeded run:
            // node 3 of 3 crashes, nodes 1 and 2 each formed a ring alone, then merged).
            g.agreed_timeouts += 1;
            if g.agreed_timeouts >= 2 {
                g.agreed_timeouts = 0;
                if let Some(rep) = live.first().copied().filter(|rep| *rep != me) {
                    sorted_insert(&mut g.fail_set, rep);
                    failed.push(rep);
                }
            }
        } else {
            g.agreed_timeouts = 0;
            for node in silent {
                sorted_insert(&mut g.fail_set, node);
                failed.push(node);
            }
        }
        g.excluded.retain(|n| !contains(&g.fail_set, *n));
        g.agreed.clear();
        g.agreed.push(me);
        let consensus_ms = self.config.consensus_ms;
        self.notice(Notice::ConsensusTimeout {
            consensus_ms,
            failed,
        });
        self.set_timer(Timer::Consensus, Some(now.plus_ms(consensus_ms)));
        self.refresh_gather();
        self.send_join();
        self.check_consensus(now, up);
    }

    /// Multicasts this node's presence (its ring and the rows it knows, see `reach`) and looks
    /// at what time changed in the rows.
    fn on_presence_timeout(&mut self, now: Instant, up: &mut impl Upper) {
        self.reach_pending |= self.reach.tick(now);
        let body = self
            .reach
            .encode_presence(now, self.installed.ring, self.identity.digest());
        let mut buf = self.buffer();
        buf.clear();
        buf.extend_from_slice(self.outbox.header(KIND_PRESENCE).as_bytes());
        buf.extend_from_slice(&body);
        self.stats.presences_sent += 1;
        self.outbox.send_membership(Dest::All, buf, &mut self.stats);
        self.set_timer(Timer::Presence, Some(now.plus_ms(self.config.merge_ms)));
        // A change that came while a ring was being formed is acted on here, once it is
        // installed (or gathering again).
        if self.reach_pending {
            self.on_reach_changed(now, up);
        }
    }

    /// Sends a join with the gather's current sets.
    fn send_join(&mut self) {
        let ring_seq = self.join_ring_seq();
        if let Phase::Gather(g) = &self.phase {
            self.outbox.join(
                ring_seq,
                &g.proc_set,
                &g.fail_set,
                &g.excluded,
                &mut self.stats,
            );
        }
    }

    // ----- data frames ---------------------------------------------------------------------

    fn on_data(
        &mut self,
        _sender: NodeId,
        body: &[u8],
        up: &mut impl Upper,
    ) -> Result<(), DropReason> {
        let (data, rest) = DataHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
        let len = data.len.get() as usize;
        let payload = rest.get(..len).ok_or(DropReason::Truncated)?;
        let ring = data.ring();
        let seq = data.seq.get();
        let origin = NodeId(data.origin.get());
        if self
            .held
            .as_ref()
            .is_some_and(|t| t.ring == ring && seq > t.seq)
        {
            // Nobody numbers a frame of the token's ring while this node holds it (the
            // previous holder's tail is numbered within it): this one is forged or altered.
            return Err(DropReason::Malformed);
        }
        if ring == self.installed.ring {
            if self.installed.frozen {
                return Err(DropReason::StaleRing);
            }
            self.installed
                .store
                .insert(seq, origin, data.flags, payload, &mut self.stats)?;
            self.stats.data_in += 1;
            if matches!(self.phase, Phase::Operational) {
                self.deliver_ready(up);
            }
            return Ok(());
        }
        let Some(forming) = self.phase.forming_mut() else {
            return Err(DropReason::StaleRing);
        };
        if ring != forming.ring {
            return Err(DropReason::StaleRing);
        }
        forming
            .store
            .insert(seq, origin, data.flags, payload, &mut self.stats)?;
        self.stats.data_in += 1;
        if data.flags & FLAG_RECOVERY != 0 {
            self.on_recovered(payload);
        }
        Ok(())
    }

    /// An old-ring frame carried inside a recovery frame of the ring being formed.
    fn on_recovered(&mut self, payload: &[u8]) {
        let Ok((old, rest)) = DataHdr::ref_from_prefix(payload) else {
            self.stats.drop(DropReason::Malformed);
            return;
        };
        let Some(body) = rest.get(..old.len.get() as usize) else {
            self.stats.drop(DropReason::Malformed);
            return;
        };
        if old.ring() != self.installed.ring {
            return; // Another member's old ring.
        }
        // In commit nothing is to be recovered yet: such a frame is early or forged.
        let Phase::Recovery(_, recovery) = &mut self.phase else {
            self.stats.drop(DropReason::Malformed);
            return;
        };
        if old.seq.get() > recovery.high {
            self.stats.drop(DropReason::Malformed);
            return;
        }
        // Another member resent it in the new ring, whose retransmissions carry it to every
        // member: this node need not send it again. Frames beyond every member's aru are queued
        // by every member holding them; without this, 64 members sending each of a few hundred
        // such frames filled the new ring's window before recovery could end.
        if let Ok(at) = recovery.queue.binary_search(&old.seq.get()) {
            recovery.queue.remove(at);
        }
        match self.installed.store.insert(
            old.seq.get(),
            NodeId(old.origin.get()),
            old.flags,
            body,
            &mut self.stats,
        ) {
            Ok(()) => self.stats.recovered += 1,
            Err(DropReason::Duplicate) => {}
            Err(reason) => self.stats.drop(reason),
        }
    }

    /// Delivers, in order, the frames of the installed ring that agreed or safe order allows.
    fn deliver_ready(&mut self, up: &mut impl Upper) {
        let ring = &mut self.installed;
        loop {
            let next = ring.delivered + 1;
            let Some(slot) = ring.store.get(next) else {
                break;
            };
            if slot.flags & FLAG_SAFE != 0 && next > ring.safe {
                break;
            }
            if slot.flags & FLAG_RECOVERY == 0 {
                up.deliver(slot.origin, &slot.body);
                self.stats.delivered += 1;
            }
            ring.delivered = next;
        }
        let free = ring.safe.min(ring.delivered);
        ring.store.free_upto(free);
    }

    // ----- the regular token ---------------------------------------------------------------

    fn on_token(
        &mut self,
        now: Instant,
        body: &[u8],
        up: &mut impl Upper,
    ) -> Result<(), DropReason> {
        let (hdr, rest) = TokenHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
        let count = hdr.rtr_count.get() as usize;
        if count > RTR_ENTRIES_MAX {
            return Err(DropReason::Malformed);
        }
        let rtr_bytes = rest.get(..count * 8).ok_or(DropReason::Truncated)?;
        let ring = hdr.ring();
        let expected = match &self.phase {
            Phase::Operational => self.installed.ring,
            Phase::Recovery(f, _) => f.ring,
            Phase::Gather(_) | Phase::Commit(_) => return Err(DropReason::NotExpected),
        };
        if ring != expected {
            return Err(DropReason::StaleRing);
        }
        if hdr.token_seq.get() <= self.last_token_seq {
            return Err(DropReason::DuplicateToken);
        }
        if self.held.is_some() {
            // The ring's one token is here: no member passes another (a copy this node
            // already had is a duplicate above).
            return Err(DropReason::NotExpected);
        }
        let token = Token {
            ring,
            token_seq: hdr.token_seq.get(),
            seq: hdr.seq.get(),
            aru: hdr.aru.get(),
            aru_addr: hdr.aru_addr.get(),
            rotation_start_seq: hdr.rotation_start_seq.get(),
            rotation_min_aru: hdr.rotation_min_aru.get(),
            safe: hdr.safe.get(),
            fcc: hdr.fcc.get(),
            backlog: hdr.backlog.get(),
            flags: hdr.flags,
            resent: hdr.resent,
            tail: hdr.tail.get(),
            rtr: rtr_bytes
                .chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().expect("8-byte chunk")))
                .collect(),
        };
        // The token carries the highest sequence stamped in its ring: one that claims less
        // than this node already holds, or an aru or safe mark beyond it, is not a token an
        // honest member sent.
        // Its tail is frames of one visit, stamped at the top of its sequence.
        if token.safe > token.seq
            || token.aru > token.seq
            || token.seq < self.ring_store().high()
            || u64::from(token.tail) > token.seq
            || token.tail > WINDOW_SIZE_MAX
        {
            return Err(DropReason::Malformed);
        }
        self.on_regular_token(now, token, up);
        Ok(())
    }

    /// One visit of the token (paper §2: "token receipt").
    fn on_regular_token(&mut self, now: Instant, mut token: Token, up: &mut impl Upper) {
        self.last_token_seq = token.token_seq;
        self.stats.tokens += 1;
        self.hold_cancel_pending = false;
        self.set_timer(Timer::TokenRetransmit, None);
        self.rto.on_token(now, token.resent);
        self.reset_token_timeout(now);

        if matches!(self.phase, Phase::Recovery(..)) && token.flags & TOKEN_RECOVERY_DONE != 0 {
            self.install(up);
        }
        let recovering = matches!(self.phase, Phase::Recovery(..));
        let operational = matches!(self.phase, Phase::Operational);
        let is_rep = token.ring.rep == self.me.0;

        // The representative closes the rotation that started at its previous visit.
        if is_rep {
            let clean =
                token.rotation_start_seq == token.seq && token.flags & TOKEN_ROTATION_PENDING == 0;
            let my_pending = self.recovery_pending(token.seq);
            if recovering && clean && !my_pending && token.token_seq > 1 {
                token.flags |= TOKEN_RECOVERY_DONE;
            } else if token.flags & TOKEN_RECOVERY_DONE != 0 && !recovering {
                // The decision has been round once: everyone has installed.
                token.flags &= !TOKEN_RECOVERY_DONE;
            }
            if token.token_seq > 1 {
                token.safe = token.safe.max(token.rotation_min_aru.min(token.seq));
            }
        }

        // The previous holder's tail may still be on its way (Accelerated Ring): only frames
        // up to `arrived` could have been received by now.
        let arrived = token.seq - u64::from(token.tail);
        token.tail = 0;

        // What this visit may multicast, retransmissions and new frames together (paper
        // §3.3: the token's fcc counts every frame of the last rotation, retransmissions
        // included, so frames lost to a congested network are not answered with more).
        let mut allowed = self.flow_allowance(&token);
        let visit_allowance = allowed;
        let requested = !token.rtr.is_empty();
        // Retransmit what others asked for; ask for what we miss.
        let retransmitted = self.serve_retransmissions(&mut token, &mut allowed);
        self.request_missing(&mut token, arrived);
        let loss = requested || !token.rtr.is_empty();
        if operational && self.failed_to_receive(arrived) {
            self.stats.failed_to_receive += 1;
            self.notice(Notice::FailedToReceive {
                ring: self.installed.ring,
                aru: self.installed.store.aru(),
                seq: token.seq,
                rotations: self.aru_unchanged_visits,
            });
            let others = minus(&self.installed.members, &[self.me]);
            let members = self.installed.members.clone();
            self.enter_gather(now, members, others, GatherCause::FailedToReceive);
            return;
        }

        // Multicast new frames as flow control allows. With Accelerated Ring the last
        // `accelerated_window` of them wait in `tail_frames` and go out after the token.
        let sent = self.send_new_frames(&mut token, up, allowed);
        let alone = self.ring_members().len() == 1;
        if operational && !alone {
            token.tail = sent.min(self.config.accelerated_window);
        }
        let tail_frames = self.outbox.take_last(token.tail as usize);
        if let (true, Some(allowance)) = (operational, &mut self.allowance) {
            // The node's own allowance stopped it (not the window the others left, nor its
            // fair share, nor an empty queue): a larger one would have been used.
            let limited = visit_allowance >= allowance.current()
                && sent + retransmitted >= visit_allowance
                && up.backlog_frames() > 0;
            allowance.on_visit(now, loss, limited);
        }

        let store = self.ring_store();
        let my_aru = store.aru();
        assert!(
            store.high() <= token.seq,
            "a frame numbered beyond the token's sequence"
        );
        // The all-received-up-to mark (paper §2): lowered by any member that misses frames,
        // raised only by the member that lowered it.
        if my_aru < token.aru || token.aru_addr == self.me.0 || token.aru_addr == 0 {
            token.aru = my_aru;
            token.aru_addr = if my_aru == token.seq { 0 } else { self.me.0 };
        }
        if is_rep {
            token.rotation_start_seq = token.seq;
            token.rotation_min_aru = my_aru;
            token.flags &= !TOKEN_ROTATION_PENDING;
            if self.recovery_pending(token.seq) {
                token.flags |= TOKEN_ROTATION_PENDING;
            }
        } else {
            token.rotation_min_aru = token.rotation_min_aru.min(my_aru);
            if self.recovery_pending(token.seq) {
                token.flags |= TOKEN_ROTATION_PENDING;
            }
        }
        let mut multicast = sent.saturating_add(retransmitted);
        if operational && !alone && self.receivers_behind && !loss {
            // Receiver flow control (paper §3.3 bounds a rotation by what the members can
            // buffer): this node's share of the fcc is the whole window, so the others'
            // allowance is none until it clears, while this node may still retransmit and
            // send what its own allowance lets it. Not on a visit that found retransmission
            // requests: the others' allowance is also what they retransmit with, and a member
            // (this one too) that cannot get a frame it misses fails to receive.
            multicast = multicast.max(self.config.window_size);
            self.stats.window_claimed += 1;
        }
        token.fcc = token
            .fcc
            .saturating_sub(self.my_last_sent)
            .saturating_add(multicast);
        self.my_last_sent = multicast;
        let backlog = if operational { up.backlog_frames() } else { 0 };
        token.backlog = token
            .backlog
            .saturating_sub(self.my_last_backlog)
            .saturating_add(backlog);
        self.my_last_backlog = backlog;

        if operational {
            // The token's safe mark says every member holds every frame up to it, this node
            // included: never beyond what it holds (a token altered in flight claimed more).
            self.installed.safe = self.installed.safe.max(token.safe.min(my_aru));
        }

        // corosync's seqno_unchanged_const counts rotations in which the ring's sequence did not
        // move; this node's own frames are not the only ones that make a rotation busy.
        let idle = sent == 0
            && token.seq == self.seq_at_last_visit
            && token.rtr.is_empty()
            && token.aru == token.seq
            && token.backlog == 0
            && operational;
        self.seq_at_last_visit = token.seq;
        if idle {
            self.idle_rotations = self.idle_rotations.saturating_add(1);
        } else {
            self.idle_rotations = 0;
        }
        if !idle {
            token.flags &= !TOKEN_HOLD_NEXT;
        }
        if is_rep {
            let holds_next = operational
                && self.idle_rotations.saturating_add(1) >= self.config.seqno_unchanged_const;
            if holds_next {
                token.flags |= TOKEN_HOLD_NEXT;
            } else {
                token.flags &= !TOKEN_HOLD_NEXT;
            }
        }
        // Only the representative holds an idle ring's token (corosync's totemsrp.c: the others
        // count idle rotations but forward): were every member to hold it, a rotation would
        // take members × hold, longer than the token timeout from about six members on.
        let hold = is_rep && idle && self.idle_rotations >= self.config.seqno_unchanged_const;
        if alone || hold {
            assert!(tail_frames.is_empty(), "frames held back with a held token");
            let wait = if idle { self.config.hold_ms } else { 0 };
            self.held = Some(token);
            self.set_timer(Timer::Hold, Some(now.plus_ms(wait)));
            if alone {
                self.cancel_token_timeout();
            }
        } else {
            self.forward_token(now, token);
            self.outbox.queue.extend(tail_frames);
        }
        if operational {
            self.deliver_ready(up);
        }
    }

    /// Members of the ring the token belongs to (the forming ring during recovery).
    fn ring_members(&self) -> &[NodeId] {
        match &self.phase {
            Phase::Recovery(f, _) => &f.members,
            _ => &self.installed.members,
        }
    }

    fn ring_store(&self) -> &Store {
        match &self.phase {
            Phase::Recovery(f, _) => &f.store,
            _ => &self.installed.store,
        }
    }

    /// Recovery is unfinished at this node: it misses frames of the new ring or still has
    /// old-ring frames to send.
    fn recovery_pending(&self, seq: u64) -> bool {
        match &self.phase {
            Phase::Recovery(f, r) => f.store.aru() < seq || !r.queue.is_empty(),
            _ => false,
        }
    }

    /// Answers the token's retransmission requests this node can, at most `allowed` of them
    /// (which they use up); returns how many it sent. The rest stay on the token.
    fn serve_retransmissions(&mut self, token: &mut Token, allowed: &mut u32) -> u32 {
        let mut kept = Vec::with_capacity(token.rtr.len());
        let requests = std::mem::take(&mut token.rtr);
        let (mut count, mut first, mut last) = (0u32, u64::MAX, 0u64);
        for seq in requests {
            if count < *allowed && self.retransmit(token.ring, seq) {
                count += 1;
                first = first.min(seq);
                last = last.max(seq);
            } else {
                kept.push(seq);
            }
        }
        token.rtr = kept;
        *allowed -= count;
        if count > 0 {
            self.notice(Notice::Retransmitted {
                ring: token.ring,
                count,
                first,
                last,
            });
        }
        count
    }

    /// Multicasts a held frame again (built straight from the store, no intermediate copy).
    fn retransmit(&mut self, ring: RingId, seq: u64) -> bool {
        let mut buf = self.buffer();
        let Some(slot) = self.ring_store().get(seq) else {
            self.outbox.recycle(buf);
            return false;
        };
        buf.resize(wire::DATA_OVERHEAD, 0);
        self.outbox.write_data_headers(
            &mut buf,
            ring,
            seq,
            slot.origin,
            slot.flags,
            slot.body.len(),
        );
        buf.extend_from_slice(&slot.body);
        self.stats.retransmitted += 1;
        self.send(Dest::All, buf);
        true
    }

    /// Asks for the frames up to `arrived` (the token's seq less the previous holder's tail)
    /// seen missing on `miss_count_const` visits.
    fn request_missing(&mut self, token: &mut Token, arrived: u64) {
        let store = self.ring_store();
        let from = store.aru() + 1;
        let to = arrived;
        let mut still_missing = Vec::new();
        let mut seq = from;
        while seq <= to && still_missing.len() < RTR_ENTRIES_MAX {
            if !store.has(seq) {
                still_missing.push(seq);
            }
            seq += 1;
        }
        // miss_count_const: a frame seen missing on this many visits is requested; frames
        // merely still in flight behind the token are not.
        let mut next = Vec::with_capacity(still_missing.len());
        let (mut count, mut first, mut last) = (0u32, u64::MAX, 0u64);
        for seq in still_missing {
            let seen = self
                .missing
                .iter()
                .find(|(s, _)| *s == seq)
                .map_or(0, |(_, c)| *c)
                + 1;
            next.push((seq, seen));
            if seen >= self.config.miss_count_const
                && !token.rtr.contains(&seq)
                && token.rtr.len() < RTR_ENTRIES_MAX
            {
                token.rtr.push(seq);
                self.stats.retransmit_requests += 1;
                count += 1;
                first = first.min(seq);
                last = last.max(seq);
            }
        }
        self.missing = next;
        if count > 0 {
            self.notice(Notice::RetransmitRequested {
                ring: token.ring,
                count,
                first,
                last,
            });
        }
    }

    /// fail_recv_const: the aru has not moved for that many visits while frames are missing
    /// (those up to `arrived`: a tail still in flight is not missing yet).
    fn failed_to_receive(&mut self, arrived: u64) -> bool {
        let aru = self.installed.store.aru();
        if aru < arrived && aru == self.last_aru_at_visit {
            self.aru_unchanged_visits += 1;
        } else {
            self.aru_unchanged_visits = 0;
        }
        self.last_aru_at_visit = aru;
        self.aru_unchanged_visits >= self.config.fail_recv_const && self.installed.members.len() > 1
    }

    /// Frames this visit may multicast (paper §3.3): at most max_messages (or the adaptive
    /// allowance, `flow`), and no more than the window leaves after what the others
    /// multicast in the last rotation.
    fn flow_allowance(&self, token: &Token) -> u32 {
        let others_sent = token.fcc.saturating_sub(self.my_last_sent);
        let per_visit = self
            .allowance
            .as_ref()
            .map_or(self.config.max_messages, Allowance::current);
        per_visit.min(self.config.window_size.saturating_sub(others_sent))
    }

    /// Multicasts new frames, at most `allowed` (what retransmissions left of this visit's
    /// allowance), shared fairly by backlog and bounded by what every member can retain.
    fn send_new_frames(&mut self, token: &mut Token, up: &mut impl Upper, allowed: u32) -> u32 {
        let operational = matches!(self.phase, Phase::Operational);
        let mut allowed = allowed;
        let my_backlog = if operational { up.backlog_frames() } else { 0 };
        let total_backlog = token
            .backlog
            .saturating_sub(self.my_last_backlog)
            .saturating_add(my_backlog);
        if total_backlog > 0 && my_backlog > 0 {
            let fair = ((u64::from(self.config.window_size) * u64::from(my_backlog))
                / u64::from(total_backlog)) as u32;
            allowed = allowed.min(fair.max(1));
        }
        // Never run past what every member can retain: the oldest unsafe frame bounds it.
        let store = self.ring_store();
        let room = store.room_above(token.seq).min(
            (RETAINED_FRAMES_MAX as u64 / 2).saturating_sub(token.seq - token.safe.min(token.seq)),
        );
        allowed = allowed.min(room.min(u64::from(u32::MAX)) as u32);
        let mut sent = 0;
        while sent < allowed {
            let ok = match self.phase {
                Phase::Operational => self.send_app_frame(token, up),
                Phase::Recovery(..) => self.send_recovery_frame(token),
                Phase::Gather(_) | Phase::Commit(_) => false,
            };
            if !ok {
                break;
            }
            sent += 1;
        }
        sent
    }

    fn send_app_frame(&mut self, token: &mut Token, up: &mut impl Upper) -> bool {
        let room = self.frame_size_bytes - wire::DATA_OVERHEAD;
        let mut buf = self.buffer();
        buf.resize(wire::DATA_OVERHEAD + room, 0);
        let (len, safe) = up.fill(&mut buf[wire::DATA_OVERHEAD..]);
        if len == 0 {
            self.outbox.recycle(buf);
            return false;
        }
        buf.truncate(wire::DATA_OVERHEAD + len);
        token.seq += 1;
        let flags = if safe { FLAG_SAFE } else { 0 };
        self.outbox
            .write_data_headers(&mut buf, token.ring, token.seq, self.me, flags, len);
        self.installed
            .store
            .insert(
                token.seq,
                self.me,
                flags,
                &buf[wire::DATA_OVERHEAD..],
                &mut self.stats,
            )
            .expect("a stamped frame fits the window: flow control checked the room");
        self.stats.data_out += 1;
        self.send(Dest::All, buf);
        true
    }

    fn send_recovery_frame(&mut self, token: &mut Token) -> bool {
        let Phase::Recovery(forming, recovery) = &mut self.phase else {
            return false;
        };
        let Some(old_seq) = recovery.queue.pop_front() else {
            return false;
        };
        let Some(slot) = self.installed.store.get(old_seq) else {
            return true; // Freed or never held: nothing to send for it.
        };
        let mut body = Vec::with_capacity(32 + slot.body.len());
        let inner = DataHdr {
            ring_seq: self.installed.ring.seq.into(),
            ring_rep: self.installed.ring.rep.into(),
            origin: slot.origin.0.into(),
            seq: old_seq.into(),
            flags: slot.flags,
            _pad: [0; 3],
            len: (slot.body.len() as u32).into(),
        };
        body.extend_from_slice(inner.as_bytes());
        body.extend_from_slice(&slot.body);
        token.seq += 1;
        let ring = token.ring;
        forming
            .store
            .insert(token.seq, self.me, FLAG_RECOVERY, &body, &mut self.stats)
            .expect("recovery frame fits the window");
        self.stats.recovery_sent += 1;
        self.transmit_data(ring, token.seq, self.me, FLAG_RECOVERY, &body);
        true
    }

    fn transmit_data(&mut self, ring: RingId, seq: u64, origin: NodeId, flags: u8, body: &[u8]) {
        let mut buf = self.buffer();
        buf.resize(wire::DATA_OVERHEAD, 0);
        self.outbox
            .write_data_headers(&mut buf, ring, seq, origin, flags, body.len());
        buf.extend_from_slice(body);
        self.send(Dest::All, buf);
    }

    fn encode_token(&mut self, token: &Token) -> Vec<u8> {
        let mut buf = self.buffer();
        let mut w = Writer::new_vec(&mut buf, wire::token_size(token.rtr.len()));
        w.put(self.outbox.header(KIND_TOKEN).as_bytes());
        let hdr = TokenHdr {
            ring_seq: token.ring.seq.into(),
            ring_rep: token.ring.rep.into(),
            aru_addr: token.aru_addr.into(),
            token_seq: token.token_seq.into(),
            seq: token.seq.into(),
            aru: token.aru.into(),
            rotation_start_seq: token.rotation_start_seq.into(),
            fcc: token.fcc.into(),
            backlog: token.backlog.into(),
            flags: token.flags,
            resent: token.resent,
            rtr_count: (token.rtr.len() as u16).into(),
            tail: token.tail.into(),
            rotation_min_aru: token.rotation_min_aru.into(),
            safe: token.safe.into(),
        };
        w.put(hdr.as_bytes());
        for seq in &token.rtr {
            w.put_u64(*seq);
        }
        buf
    }

    fn forward_token(&mut self, now: Instant, mut token: Token) {
        token.token_seq += 1;
        self.last_token_seq = token.token_seq;
        let next = successor(self.me, self.ring_members());
        let buf = self.encode_token(&token);
        self.last_token.clear();
        self.last_token.extend_from_slice(&buf);
        self.last_token_dest = next;
        self.send(Dest::Node(next), buf);
        // The token comes back after a rotation, unless the representative holds it on an idle
        // ring: a member passing on a token that says so (`TOKEN_HOLD_NEXT`) waits the whole
        // token_retransmit, as corosync does, and does not take the hold for a rotation.
        self.token_may_be_held = token.flags & TOKEN_HOLD_NEXT != 0;
        let may_be_held = token.ring.rep != self.me.0 && self.token_may_be_held;
        let wait_ns = self.rto.on_forward(
            now,
            !may_be_held,
            token.resent,
            self.config.token_retransmit_min_ms,
            self.config.token_retransmit_ms,
        );
        self.set_timer(Timer::TokenRetransmit, Some(now.plus_ns(wait_ns)));
    }

    fn on_hold_cancel(&mut self, now: Instant, body: &[u8]) -> Result<(), DropReason> {
        let (hdr, _) = RingHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
        if hdr.ring() != self.installed.ring || !matches!(self.phase, Phase::Operational) {
            return Err(DropReason::StaleRing);
        }
        // Some member has messages: the next token visit must not be held either. A cancel can
        // overtake the token on its way here; corosync resets its idle count whether or not it
        // holds the token, and so do we (otherwise the sender waits out the hold timer).
        self.idle_rotations = 0;
        if let Some(token) = &mut self.held {
            token.flags &= !TOKEN_HOLD_NEXT;
            self.set_timer(Timer::Hold, Some(now));
        }
        // A token this node passed on in the belief that the representative would hold it
        // will not be held now: if it was lost, it is sent again after the measured wait.
        if self.timer[Timer::TokenRetransmit as usize].is_some() {
            let (floor, ceiling) = (
                self.config.token_retransmit_min_ms,
                self.config.token_retransmit_ms,
            );
            if let Some(wait_ns) = self.rto.on_hold_cancelled(floor, ceiling) {
                self.set_timer(Timer::TokenRetransmit, Some(now.plus_ns(wait_ns)));
            }
        }
        Ok(())
    }

    // ----- membership ----------------------------------------------------------------------

    fn note_incarnation(&mut self, node: NodeId, incarnation: u32) -> bool {
        match self.incarnations.iter_mut().find(|(n, _)| *n == node) {
            Some((_, known)) if *known == incarnation => false,
            Some((_, known)) => {
                *known = incarnation;
                true
            }
            None => {
                if self.incarnations.len() < MEMBERS_MAX * 2 {
                    self.incarnations.push((node, incarnation));
                }
                false
            }
        }
    }

    fn enter_gather(
        &mut self,
        now: Instant,
        mut proc_set: Vec<NodeId>,
        mut fail_set: Vec<NodeId>,
        cause: GatherCause,
    ) {
        self.stats.gathers += 1;
        // Ring changes are rare: a forming ring's store is simply dropped.
        self.installed.frozen = false;
        self.held = None;
        self.last_token.clear();
        self.rto.forget_sent();
        proc_set.sort();
        proc_set.dedup();
        sorted_insert(&mut proc_set, self.me);
        if proc_set.len() > MEMBERS_MAX {
            // More nodes than a ring can hold: keep the lowest ids (deterministic everywhere),
            // and this node.
            proc_set.truncate(MEMBERS_MAX - 1);
            sorted_insert(&mut proc_set, self.me);
        }
        fail_set.sort();
        fail_set.dedup();
        fail_set.retain(|n| *n != self.me);
        self.phase = Phase::Gather(Gather {
            proc_set,
            fail_set,
            excluded: Vec::new(),
            agreed: vec![self.me],
            agreed_timeouts: 0,
        });
        self.refresh_gather();
        self.notice(Notice::EnteredGather { cause });
        self.cancel_token_timeout();
        for timer in [Timer::TokenRetransmit, Timer::Hold] {
            self.set_timer(timer, None);
        }
        let delay = if self.config.send_join_ms > 0 {
            self.random_below(u64::from(self.config.send_join_ms)) as u32
        } else {
            0
        };
        if delay == 0 {
            self.send_join_round(now);
        } else {
            self.set_timer(Timer::Join, Some(now.plus_ms(delay)));
        }
        self.set_timer(
            Timer::Consensus,
            Some(now.plus_ms(self.config.consensus_ms)),
        );
    }

    fn on_join(
        &mut self,
        now: Instant,
        sender: NodeId,
        incarnation: u32,
        body: &[u8],
        up: &mut impl Upper,
    ) -> Result<(), DropReason> {
        let (hdr, rest) = JoinHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
        if hdr.config_digest.get() != self.identity.digest() {
            self.on_config_mismatch(now, sender);
            return Err(DropReason::ConfigMismatch);
        }
        let (pc, fc, xc) = (
            hdr.proc_count.get() as usize,
            hdr.fail_count.get() as usize,
            hdr.excluded_count.get() as usize,
        );
        if pc > MEMBERS_MAX
            || fc > MEMBERS_MAX
            || xc > MEMBERS_MAX
            || !RingId::plausible(hdr.ring_seq.get())
        {
            return Err(DropReason::Malformed);
        }
        let (procs, rest) = read_ids(rest, pc).ok_or(DropReason::Truncated)?;
        let mut jp: Vec<NodeId> = procs.collect();
        let (fails, rest) = read_ids(rest, fc).ok_or(DropReason::Truncated)?;
        let mut jf: Vec<NodeId> = fails.collect();
        let (excluded, _) = read_ids(rest, xc).ok_or(DropReason::Truncated)?;
        let mut jx: Vec<NodeId> = excluded.collect();
        if jp.iter().chain(&jf).chain(&jx).any(|n| n.0 == 0) {
            return Err(DropReason::Malformed);
        }
        for set in [&mut jp, &mut jf, &mut jx] {
            set.sort();
            set.dedup();
        }
        let restarted = self.note_incarnation(sender, incarnation);
        let ring_seq = hdr.ring_seq.get();
        self.max_ring_seq = self.max_ring_seq.max(ring_seq);
        let leaving = contains(&jf, sender);
        self.stats.joins_in += 1;
        if leaving && contains(&self.installed.members, sender) {
            // Its leave message: if it is gone from the next ring, it did not fail.
            sorted_insert(&mut self.left_cleanly, sender);
        }

        match &self.phase {
            Phase::Operational => {
                let member = contains(&self.installed.members, sender);
                if !member && (leaving || contains(&jf, self.me)) {
                    // A round that already gave up on us (or a node leaving another ring): the
                    // sender forms its own ring and presences reunite us later.
                    return Err(DropReason::NotExpected);
                }
                if !restarted && !leaving && ring_seq < self.installed.ring.seq {
                    // Sent before this ring formed (the sender has not heard of it): stale.
                    // A node that never heard of this ring learns its sequence from our
                    // presences and then joins with a current one.
                    return Err(DropReason::StaleRing);
                }
                if !member && !restarted && !self.in_group(sender) {
                    // The rows say the sender and this ring's members do not all hear each
                    // other: merging would only fail again. It forms its ring without us.
                    return Err(DropReason::NotExpected);
                }
                let mut proc_set = self.installed.members.clone();
                proc_set.extend(jp.iter().copied());
                proc_set.push(sender);
                self.enter_gather(
                    now,
                    proc_set,
                    Vec::new(),
                    GatherCause::Join { from: sender },
                );
            }
            Phase::Commit(forming) | Phase::Recovery(forming, _) => {
                if !contains(&forming.members, sender) {
                    return Err(DropReason::NotExpected);
                }
                if !restarted
                    && !leaving
                    && jp == forming.proc_set
                    && jf == forming.fail_set
                    && jx == forming.excluded
                {
                    return Ok(()); // A repeat of the join that formed this ring.
                }
                let mut proc_set = forming.members.clone();
                proc_set.extend(jp.iter().copied());
                self.enter_gather(
                    now,
                    proc_set,
                    Vec::new(),
                    GatherCause::Join { from: sender },
                );
            }
            Phase::Gather(_) => {
                let member = contains(&self.installed.members, sender);
                if member && !restarted && !leaving && ring_seq < self.installed.ring.seq {
                    return Err(DropReason::StaleRing);
                }
            }
        }
        self.on_join_gathering(now, sender, restarted, &jp, &jf, &jx, up)
    }

    /// A join in the gather state (paper §4.1: "join message receipt"). The sender's proc set
    /// is taken over; its fail set too when the sender is in this node's group (a node outside
    /// it may fail nodes this node's group can form a ring with); its excluded set never: it is
    /// the sender's own conclusion from the rows, which this node draws for itself.
    #[allow(clippy::too_many_arguments)]
    fn on_join_gathering(
        &mut self,
        now: Instant,
        sender: NodeId,
        restarted: bool,
        jp: &[NodeId],
        jf: &[NodeId],
        jx: &[NodeId],
        up: &mut impl Upper,
    ) -> Result<(), DropReason> {
        let me = self.me;
        let Phase::Gather(g) = &mut self.phase else {
            unreachable!("a join is taken in the gather state, entered above if need be");
        };
        if contains(jf, sender) {
            // The sender leaves: it is failed for this round.
            if sorted_insert(&mut g.fail_set, sender) {
                g.excluded.retain(|n| *n != sender);
                g.agreed.clear();
                g.agreed.push(me);
                self.refresh_gather();
                self.send_join();
            }
            self.check_consensus(now, up);
            return Ok(());
        }
        if contains(&g.fail_set, sender) && !restarted {
            return Err(DropReason::NotExpected);
        }
        if restarted {
            g.fail_set.retain(|n| *n != sender);
        }
        let mut changed = false;
        if contains(jf, me) {
            // It considers us failed: consensus with it is impossible this round.
            changed |= sorted_insert(&mut g.fail_set, sender);
            g.excluded.retain(|n| *n != sender);
        } else {
            changed |= sorted_insert(&mut g.proc_set, sender);
            for n in jp {
                changed |= sorted_insert(&mut g.proc_set, *n);
            }
        }
        if g.proc_set.len() > MEMBERS_MAX {
            // More nodes than a ring can hold: keep the lowest ids (deterministic everywhere),
            // and this node.
            g.proc_set.truncate(MEMBERS_MAX - 1);
            sorted_insert(&mut g.proc_set, me);
        }
        changed |= self.refresh_gather();
        let g = self.gather_mut();
        let live = |g: &Gather, n: NodeId| {
            contains(&g.proc_set, n) && !contains(&g.fail_set, n) && !contains(&g.excluded, n)
        };
        if live(g, sender) {
            let mut failed_more = false;
            for n in jf {
                if *n != me && contains(&g.proc_set, *n) {
                    failed_more |= sorted_insert(&mut g.fail_set, *n);
                }
            }
            if failed_more {
                g.excluded.retain(|n| !contains(&g.fail_set, *n));
                changed = true;
                self.refresh_gather();
            }
        }
        if changed {
            let g = self.gather_mut();
            g.agreed.clear();
            g.agreed.push(me);
            self.send_join();
        }
        let g = self.gather_mut();
        if jp == g.proc_set && jf == g.fail_set && jx == g.excluded {
            sorted_insert(&mut g.agreed, sender);
        }
        self.check_consensus(now, up);
        Ok(())
    }

    /// The gather state's sets, in a handler that runs only while gathering.
    fn gather_mut(&mut self) -> &mut Gather {
        match &mut self.phase {
            Phase::Gather(g) => g,
            _ => unreachable!("called while gathering"),
        }
    }

    /// Brings the gather's excluded set up to date with the rows (`reach`): every live member
    /// of the proc set outside this node's group is excluded. The group is computed among the
    /// proc set and every node with a fresh row (less the failed), as an operational node
    /// computes it, so that both draw the same groups. Nodes of the group outside the proc set
    /// are not taken in: a gathering node comes in through its joins, an operational one
    /// through its presences (merge detection), and a node whose row is merely not yet expired
    /// may have crashed. Returns whether the excluded set changed (the caller sends a new join).
    fn refresh_gather(&mut self) -> bool {
        let Phase::Gather(g) = &self.phase else {
            return false;
        };
        let universe = self.universe(&g.proc_set, &g.fail_set);
        let group = self.reach.group_of(&universe);
        let Phase::Gather(g) = &mut self.phase else {
            unreachable!("checked above");
        };
        let excluded: Vec<NodeId> = minus(&minus(&g.proc_set, &g.fail_set), &group);
        if excluded == g.excluded {
            return false;
        }
        g.excluded = excluded;
        g.agreed.clear();
        g.agreed.push(self.me);
        true
    }

    /// Whether `node` is in this node's group, among the nodes with fresh rows, the installed
    /// ring's members and `node`.
    fn in_group(&mut self, node: NodeId) -> bool {
        let mut with = self.installed.members.clone();
        sorted_insert(&mut with, node);
        let universe = self.universe(&with, &[]);
        contains(&self.reach.group_of(&universe), node)
    }

    /// The nodes the groups are drawn among: those present with a fresh row (`reach`), and
    /// those of `with` that are present, less `without`; at most `MEMBERS_MAX`, this node
    /// always.
    fn universe(&self, with: &[NodeId], without: &[NodeId]) -> Vec<NodeId> {
        assert!(sorted_unique(with), "a set of nodes not sorted and unique");
        let mut universe = self.reach.fresh_nodes();
        // Two sorted runs, each unique, the second without the first's nodes: the stable sort
        // merges them in one pass (every join of every gathering node comes here).
        let fresh = universe.len();
        universe.reserve(with.len());
        for &n in with {
            if !contains(&universe[..fresh], n) && self.reach.present(n) {
                universe.push(n);
            }
        }
        universe.sort();
        universe.retain(|n| !contains(without, *n));
        cap_members(&mut universe, self.me);
        universe
    }

    /// What the rows say changed: report the broken pairs, and act on it — an operational
    /// ring with a member outside this node's group gathers again (to leave it out); a
    /// gathering node updates its sets. (A group larger than the ring is not acted on here:
    /// its other nodes, if alive, send presences, and `on_presence` merges with them.)
    fn on_reach_changed(&mut self, now: Instant, up: &mut impl Upper) {
        self.reach_pending = matches!(self.phase, Phase::Commit(_) | Phase::Recovery(..));
        self.report_connectivity();
        match self.phase {
            Phase::Operational => {
                let universe = self.universe(&self.installed.members.clone(), &[]);
                let group = self.reach.group_of(&universe);
                if self.installed.members.iter().any(|m| !contains(&group, *m)) {
                    let mut proc_set = self.installed.members.clone();
                    proc_set.extend_from_slice(&group);
                    self.enter_gather(now, proc_set, Vec::new(), GatherCause::Connectivity);
                }
            }
            Phase::Gather(_) => {
                if self.refresh_gather() {
                    self.send_join();
                    self.check_consensus(now, up);
                }
            }
            Phase::Commit(_) | Phase::Recovery(..) => {}
        }
    }

    /// Reports the broken pairs when they changed since the last report.
    fn report_connectivity(&mut self) {
        let (pairs, more) = self.reach.broken_pairs();
        if (&pairs, more) == (&self.reported_pairs.0, self.reported_pairs.1) {
            return;
        }
        if pairs.is_empty() {
            self.notice(Notice::ConnectivityRestored);
        } else {
            let universe = self.universe(&self.installed.members.clone(), &[]);
            let group = self.reach.group_of(&universe);
            self.notice(Notice::PartialConnectivity {
                broken: pairs.clone(),
                more,
                group,
            });
        }
        self.reported_pairs = (pairs, more);
    }

    /// A presence: take its rows, then see whether it is another ring this node should merge
    /// with (merge detection: the sender is outside our ring and in our group). A presence of
    /// another configuration is refused before its rows are taken: a node configured otherwise
    /// never forms a ring with this one, so what it hears must not shape our groups.
    fn on_presence(
        &mut self,
        now: Instant,
        sender: NodeId,
        incarnation: u32,
        body: &[u8],
        up: &mut impl Upper,
    ) -> Result<(), DropReason> {
        let (hdr, _) = PresenceHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
        if hdr.config_digest.get() != self.identity.digest() {
            // Merging with a ring configured otherwise would only form our own ring again.
            self.on_config_mismatch(now, sender);
            return Err(DropReason::ConfigMismatch);
        }
        let (ring, changed) = self.reach.merge_presence(now, sender, incarnation, body)?;
        self.stats.presences_in += 1;
        self.max_ring_seq = self.max_ring_seq.max(ring.seq);
        if changed {
            self.on_reach_changed(now, up);
        }
        // A presence of a ring older than ours comes from a node that has not heard of ours
        // (one just started): as with its joins, it learns our sequence from our presences
        // and then joins with a current one. So nodes started together come in together, on
        // the same presence of ours, in one membership change rather than one each.
        if matches!(self.phase, Phase::Operational)
            && ring != self.installed.ring
            && ring.seq >= self.installed.ring.seq
            && !contains(&self.installed.members, sender)
            && self.in_group(sender)
        {
            let mut proc_set = self.installed.members.clone();
            proc_set.push(sender);
            self.enter_gather(
                now,
                proc_set,
                Vec::new(),
                GatherCause::MergeDetected { from: sender },
            );
        }
        Ok(())
    }

    fn check_consensus(&mut self, now: Instant, up: &mut impl Upper) {
        let Phase::Gather(g) = &self.phase else {
            return;
        };
        let live = minus(&minus(&g.proc_set, &g.fail_set), &g.excluded);
        if !live.iter().all(|n| contains(&g.agreed, *n)) {
            return;
        }
        if live.first() != Some(&self.me) {
            return; // The representative sends the commit token.
        }
        let sets = (g.proc_set.clone(), g.fail_set.clone(), g.excluded.clone());
        self.stats.consensus += 1;
        let seq = (self.max_ring_seq.max(self.installed.ring.seq) / 4 + 1) * 4;
        self.max_ring_seq = seq;
        let ring = RingId {
            seq,
            rep: self.me.0,
        };
        let entries = live
            .iter()
            .map(|n| CommitEntry {
                node: n.0.into(),
                incarnation: 0.into(),
                old_seq: 0.into(),
                old_rep: 0.into(),
                _pad: 0.into(),
                aru: 0.into(),
                high: 0.into(),
                safe: 0.into(),
            })
            .collect();
        let alone = live.len() == 1;
        self.enter_commit(now, ring, live, entries, 0, sets);
        if alone {
            // Alone: both commit rotations complete at once.
            self.enter_recovery();
            self.start_regular_token(now, ring, up);
        } else {
            self.send_commit(now, 1, 1);
        }
    }

    /// Enters the commit state for `ring` (paper §4.2): our old-ring state goes into the commit
    /// token, and from now on no frame of the old ring is taken except through recovery.
    #[allow(clippy::too_many_arguments)]
    fn enter_commit(
        &mut self,
        now: Instant,
        ring: RingId,
        members: Vec<NodeId>,
        mut entries: Vec<CommitEntry>,
        commit_token_seq: u64,
        (proc_set, fail_set, excluded): (Vec<NodeId>, Vec<NodeId>, Vec<NodeId>),
    ) {
        assert!(
            ring.seq > self.installed.ring.seq && ring.seq <= self.max_ring_seq,
            "a new ring is numbered above the installed one"
        );
        self.installed.frozen = true;
        self.commit_seq = ring.seq;
        let entry = entries
            .iter_mut()
            .find(|e| e.node() == self.me)
            .expect("a member of the ring being formed");
        entry.incarnation = self.incarnation.into();
        entry.old_seq = self.installed.ring.seq.into();
        entry.old_rep = self.installed.ring.rep.into();
        entry.aru = self.installed.store.aru().into();
        entry.high = self.installed.store.high().into();
        entry.safe = self.installed.safe.into();
        self.phase = Phase::Commit(Forming {
            ring,
            members,
            entries,
            proc_set,
            fail_set,
            excluded,
            store: Store::new(),
            commit_token_seq,
        });
        self.notice(Notice::EnteredCommit { ring });
        self.set_timer(Timer::Join, None);
        self.set_timer(Timer::Consensus, None);
        self.reset_token_timeout(now);
    }

    fn send_commit(&mut self, now: Instant, pass: u8, token_seq: u64) {
        let Some(forming) = self.phase.forming_mut() else {
            unreachable!("a commit token is sent only while a ring is being formed");
        };
        forming.commit_token_seq = token_seq;
        let hdr = CommitHdr {
            ring_seq: forming.ring.seq.into(),
            ring_rep: forming.ring.rep.into(),
            member_count: (forming.entries.len() as u16).into(),
            pass,
            _pad: 0,
            token_seq: token_seq.into(),
        };
        let next = successor(self.me, &forming.members);
        let mut buf = self.outbox.buffer();
        let mut w = Writer::new_vec(&mut buf, wire::commit_size(forming.entries.len()));
        w.put(self.outbox.header(KIND_COMMIT).as_bytes());
        w.put(hdr.as_bytes());
        for e in &forming.entries {
            w.put(e.as_bytes());
        }
        self.last_token.clear();
        self.last_token.extend_from_slice(&buf);
        self.last_token_dest = next;
        self.outbox
            .send_membership(Dest::Node(next), buf, &mut self.stats);
        self.set_timer(
            Timer::TokenRetransmit,
            Some(now.plus_ms(self.config.token_retransmit_ms)),
        );
    }

    fn on_commit(
        &mut self,
        now: Instant,
        body: &[u8],
        up: &mut impl Upper,
    ) -> Result<(), DropReason> {
        let (hdr, rest) = CommitHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
        let count = hdr.member_count.get() as usize;
        // Nobody commits to a node's start-up pseudo-ring.
        let ring = hdr.ring();
        if count == 0
            || count > MEMBERS_MAX
            || !(1..=2).contains(&hdr.pass)
            || !ring.is_formed()
            || !RingId::plausible(ring.seq)
        {
            return Err(DropReason::Malformed);
        }
        let (entries, _) = <[CommitEntry]>::ref_from_prefix_with_elems(rest, count)
            .map_err(|_| DropReason::Truncated)?;
        let members: Vec<NodeId> = entries.iter().map(|e| e.node()).collect();
        if members.windows(2).any(|w| w[0] >= w[1])
            || members.first().map(|n| n.0) != Some(hdr.ring_rep.get())
        {
            return Err(DropReason::Malformed);
        }
        if !contains(&members, self.me) {
            return Err(DropReason::NotExpected);
        }
        let token_seq = hdr.token_seq.get();
        let all_filled = entries.iter().all(|e| e.filled());
        self.max_ring_seq = self.max_ring_seq.max(ring.seq);
        let is_rep = ring.rep == self.me.0;
        match &mut self.phase {
            Phase::Gather(g) => {
                if hdr.pass != 1 || ring.seq <= self.installed.ring.seq.max(self.commit_seq) {
                    return Err(DropReason::StaleRing);
                }
                if members != minus(&minus(&g.proc_set, &g.fail_set), &g.excluded) {
                    return Err(DropReason::NotExpected);
                }
                let sets = (g.proc_set.clone(), g.fail_set.clone(), g.excluded.clone());
                self.enter_commit(now, ring, members, entries.to_vec(), token_seq, sets);
                self.send_commit(now, 1, token_seq + 1);
                Ok(())
            }
            Phase::Commit(forming) | Phase::Recovery(forming, _) => {
                if ring != forming.ring {
                    return Err(DropReason::StaleRing);
                }
                if members != forming.members {
                    // The ring being formed, with other members: not its commit token.
                    return Err(DropReason::Malformed);
                }
                if token_seq <= forming.commit_token_seq {
                    return Err(DropReason::DuplicateToken);
                }
                if !all_filled {
                    return Err(DropReason::Malformed);
                }
                // Our own entry is as we filled it (our installed ring as the old one); a token
                // that says otherwise was altered and would have us recover without ourselves.
                let me = self.me;
                let old = self.installed.ring;
                if !entries
                    .iter()
                    .any(|e| e.node() == me && e.old_ring() == old)
                {
                    return Err(DropReason::Malformed);
                }
                forming.entries = entries.to_vec();
                self.set_timer(Timer::TokenRetransmit, None);
                self.reset_token_timeout(now);
                let state = self.phase.state();
                if hdr.pass == 1 && is_rep && state == State::Commit {
                    // The first rotation is complete: start the second.
                    self.enter_recovery();
                    self.send_commit(now, 2, token_seq + 1);
                } else if hdr.pass == 2 && !is_rep && state == State::Commit {
                    self.enter_recovery();
                    self.send_commit(now, 2, token_seq + 1);
                } else if hdr.pass == 2
                    && is_rep
                    && state == State::Recovery
                    && self.last_token_seq == 0
                {
                    // The second rotation is complete and the regular token not yet started
                    // (a second pass-2 token, which no member sends, would restart it at 0).
                    if let Some(forming) = self.phase.forming_mut() {
                        forming.commit_token_seq = token_seq;
                    }
                    self.start_regular_token(now, ring, up);
                } else {
                    return Err(DropReason::NotExpected);
                }
                Ok(())
            }
            Phase::Operational => Err(DropReason::NotExpected),
        }
    }

    /// Commit token seen twice: compute what to recover from the old ring (paper §4.3).
    fn enter_recovery(&mut self) {
        let forming = match std::mem::replace(&mut self.phase, Phase::Operational) {
            Phase::Commit(forming) => forming,
            _ => unreachable!("recovery follows commit"),
        };
        self.stats.recoveries += 1;
        let old = self.installed.ring;
        let trans: Vec<&CommitEntry> = forming
            .entries
            .iter()
            .filter(|e| e.old_ring() == old)
            .collect();
        let low = trans.iter().map(|e| e.aru.get()).min().unwrap_or(0);
        let high = trans.iter().map(|e| e.high.get()).max().unwrap_or(0);
        // Each frame is resent by the first member whose aru covers it; frames beyond every
        // aru are resent by every member holding them.
        let store = &self.installed.store;
        let mut queue = VecDeque::new();
        // Nothing above our own highest frame is held: the commit token's `high` comes from
        // other members and is not walked blindly (a corrupted one cost seconds per token).
        for seq in (low + 1)..=high.min(store.high()) {
            if !store.has(seq) {
                continue;
            }
            let responsible = trans.iter().find(|e| e.aru.get() >= seq).map(|e| e.node());
            if responsible.is_none() || responsible == Some(self.me) {
                queue.push_back(seq);
            }
        }
        let recovery = Recovery {
            trans: trans.iter().map(|e| e.node()).collect(),
            high,
            old_safe: trans.iter().map(|e| e.safe.get()).max().unwrap_or(0),
            queue,
        };
        let ring = forming.ring;
        self.phase = Phase::Recovery(forming, recovery);
        self.notice(Notice::EnteredRecovery { ring });
        self.last_token_seq = 0;
        self.my_last_sent = 0;
        self.my_last_backlog = 0;
        self.missing.clear();
    }

    /// The representative starts the regular token of `ring`, the ring it is recovering into.
    fn start_regular_token(&mut self, now: Instant, ring: RingId, up: &mut impl Upper) {
        let token = Token {
            ring,
            token_seq: 1,
            seq: 0,
            aru: 0,
            aru_addr: 0,
            rotation_start_seq: 0,
            rotation_min_aru: 0,
            safe: 0,
            fcc: 0,
            backlog: 0,
            flags: TOKEN_ROTATION_PENDING,
            resent: 0,
            tail: 0,
            rtr: Vec::new(),
        };
        self.on_regular_token(now, token, up);
    }

    /// Recovery is complete: deliver the rest of the old ring with EVS semantics, then the
    /// transitional and the regular configuration (paper §4.4), and become operational.
    fn install(&mut self, up: &mut impl Upper) {
        let (forming, recovery) = match std::mem::replace(&mut self.phase, Phase::Operational) {
            Phase::Recovery(forming, recovery) => (forming, recovery),
            _ => unreachable!("a ring is installed at the end of recovery"),
        };
        // Nothing is known yet of the new ring's holds.
        self.token_may_be_held = true;
        let old = &mut self.installed;
        // 1. Old-ring frames deliverable in the old regular configuration: contiguous, and safe
        //    frames only as far as some member of the transitional configuration knew them safe.
        let old_safe = old.safe.max(recovery.old_safe);
        loop {
            let next = old.delivered + 1;
            if next > recovery.high {
                break;
            }
            let Some(slot) = old.store.get(next) else {
                break;
            };
            if slot.flags & FLAG_SAFE != 0 && next > old_safe {
                break;
            }
            if slot.flags & FLAG_RECOVERY == 0 {
                up.deliver(slot.origin, &slot.body);
                self.stats.delivered += 1;
            }
            old.delivered = next;
        }
        // 2. The transitional configuration.
        let left = minus(&old.members, &recovery.trans);
        up.config(ConfigChange {
            kind: ConfigKind::Transitional,
            ring: old.ring,
            next_ring: forming.ring,
            members: recovery.trans.clone(),
            joined: Vec::new(),
            left: left.clone(),
        });
        // 3. The remaining old-ring frames, past the gaps left by the departed — but, once past
        //    a gap, only those of transitional members. A frame no transitional member holds
        //    was never delivered by any of them (delivery is contiguous), so no frame a
        //    transitional member sent can follow it causally; a departed member's later frame
        //    can (its own earlier frame, or one it delivered before sending), and EVS causal
        //    delivery forbids delivering it without its predecessor (paper §4.4; a process
        //    would see its sender's messages with a hole in them).
        let mut past_gap = false;
        for seq in (old.delivered + 1)..=recovery.high.min(old.store.high()) {
            let Some(slot) = old.store.get(seq) else {
                past_gap = true;
                continue;
            };
            if slot.flags & FLAG_RECOVERY != 0 {
                continue;
            }
            if past_gap && !contains(&recovery.trans, slot.origin) {
                self.stats.withheld_past_gap += 1;
                continue;
            }
            up.deliver(slot.origin, &slot.body);
            self.stats.delivered += 1;
        }
        // 4. The regular configuration.
        let joined = minus(&forming.members, &recovery.trans);
        up.config(ConfigChange {
            kind: ConfigKind::Regular,
            ring: forming.ring,
            next_ring: forming.ring,
            members: forming.members.clone(),
            joined: joined.clone(),
            left: left.clone(),
        });
        assert!(
            forming.ring.seq > self.installed.ring.seq,
            "ring sequences only grow"
        );
        let failed = minus(&left, &self.left_cleanly);
        self.left_cleanly.clear();
        self.notice(Notice::EnteredOperational { ring: forming.ring });
        self.notice(Notice::Formed {
            ring: forming.ring,
            members: forming.members.clone(),
            joined,
            left,
        });
        if !failed.is_empty() {
            self.notice(Notice::LeaveNotReceived {
                ring: forming.ring,
                failed,
            });
        }
        self.installed = Installed {
            ring: forming.ring,
            members: forming.members,
            store: forming.store,
            delivered: 0,
            safe: 0,
            frozen: false,
        };
        self.stats.rings_installed += 1;
        self.idle_rotations = 0;
        self.seq_at_last_visit = 0;
        self.aru_unchanged_visits = 0;
        self.last_aru_at_visit = 0;
        self.missing.clear();
    }

    // ----- configuration identity ----------------------------------------------------------

    /// The report entry of `node`, made if there is room.
    fn config_report(&mut self, node: NodeId) -> Option<&mut ConfigReport> {
        let at = match self.config_reports.iter().position(|r| r.node == node) {
            Some(at) => at,
            None if self.config_reports.len() < MEMBERS_MAX => {
                self.config_reports.push(ConfigReport {
                    node,
                    sent: None,
                    reported: None,
                });
                self.config_reports.len() - 1
            }
            None => return None,
        };
        Some(&mut self.config_reports[at])
    }

    /// A join or presence of a node configured otherwise: it is sent our summary (at
    /// most once per `CONFIG_REPORT_INTERVAL_MS`), so each side can name what differs.
    fn on_config_mismatch(&mut self, now: Instant, sender: NodeId) {
        let due =
            |at: Option<Instant>| at.is_none_or(|at| now >= at.plus_ms(CONFIG_REPORT_INTERVAL_MS));
        let Some(report) = self.config_report(sender) else {
            return;
        };
        if !due(report.sent) {
            return;
        }
        // A node that never answers with its summary (its layer below drops our frames: it
        // does not list this node) is reported without details, once a whole interval passed.
        let silent = report.reported.is_none() && report.sent.is_some();
        if silent {
            report.reported = Some(now);
        }
        report.sent = Some(now);
        if silent {
            self.notice(Notice::ConfigDiffers {
                node: sender,
                differences: Vec::new(),
                truncated: false,
            });
        }
        let buf = self.config_datagram();
        self.stats.config_summaries_sent += 1;
        self.send(Dest::Node(sender), buf);
    }

    /// A CONFIG datagram with this node's summary, cut at a line boundary to fit a frame:
    /// what a node configured otherwise is sent. The embedding sends it itself to a sender its
    /// layer below refuses (one missing from its nodelist), so that node learns what differs.
    pub fn config_datagram(&mut self) -> Vec<u8> {
        let room = self
            .frame_size_bytes
            .saturating_sub(wire::HEADER_LEN + size_of::<ConfigHdr>());
        let summary = self.identity.summary();
        let (len, flags) = if summary.len() <= room {
            (summary.len(), 0)
        } else {
            let cut = summary[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            (cut, CONFIG_TRUNCATED)
        };
        let hdr = ConfigHdr {
            config_digest: self.identity.digest().into(),
            len: (len as u32).into(),
            flags,
            _pad: [0; 3],
        };
        let mut buf = self.buffer();
        let mut w = Writer::new_vec(&mut buf, wire::HEADER_LEN + size_of::<ConfigHdr>() + len);
        w.put(self.outbox.header(KIND_CONFIG).as_bytes());
        w.put(hdr.as_bytes());
        w.put(&self.identity.summary()[..len]);
        buf
    }

    /// A node configured otherwise sent its summary: name what differs (at most once per
    /// `CONFIG_REPORT_INTERVAL_MS` per node).
    fn on_config_summary(
        &mut self,
        now: Instant,
        sender: NodeId,
        body: &[u8],
    ) -> Result<(), DropReason> {
        let (hdr, rest) = ConfigHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
        let summary = rest
            .get(..hdr.len.get() as usize)
            .ok_or(DropReason::Truncated)?;
        if hdr.config_digest.get() == self.identity.digest() {
            return Ok(()); // Sent before one of us changed: nothing differs now.
        }
        let Some(report) = self.config_report(sender) else {
            return Ok(());
        };
        if report
            .reported
            .is_some_and(|at| now < at.plus_ms(CONFIG_REPORT_INTERVAL_MS))
        {
            return Ok(());
        }
        report.reported = Some(now);
        let mut differences = differences(
            self.identity.summary(),
            summary,
            "here",
            "there",
            DIFFERENCES_MAX,
        );
        if differences.is_empty() {
            // Both summaries read the same where they overlap: the sender's was cut short.
            differences.push("keys beyond what one frame carries".into());
        }
        self.notice(Notice::ConfigDiffers {
            node: sender,
            differences,
            truncated: hdr.flags & CONFIG_TRUNCATED != 0,
        });
        // Make sure the sender hears ours too (it may not have sent a join we saw).
        self.on_config_mismatch(now, sender);
        Ok(())
    }

    // ----- invariants ----------------------------------------------------------------------

    /// Asserts what the protocol guarantees between inputs. The cheap checks (constant time,
    /// or linear in the small sets) always run; `all` adds those that walk the stores and
    /// every set. Runs after every input: the cheap part in every build, everything when the
    /// embedding turned it on (`set_check_all`; the simulator does).
    pub fn check_invariants(&self, all: bool) {
        let me = self.me;
        let timer = |t: Timer| self.timer[t as usize];
        let installed = &self.installed;

        // The installed ring and its store.
        installed.store.check_invariants(all);
        assert!(
            installed.delivered <= installed.store.aru(),
            "delivered past the installed ring's aru"
        );
        assert!(
            installed.safe <= installed.store.aru(),
            "a frame is known safe that this node has not received"
        );
        assert!(
            installed.ring.seq <= self.max_ring_seq,
            "installed ring above the highest ring sequence seen"
        );
        assert!(
            self.commit_seq <= self.max_ring_seq,
            "entered the commit state for a ring above the highest ring sequence seen"
        );
        assert!(
            installed.frozen == matches!(self.phase, Phase::Commit(_) | Phase::Recovery(..)),
            "the installed ring is frozen exactly while a new ring is being formed"
        );

        // The token timer drives the token warning; the hold timer holds a token.
        if timer(Timer::TokenWarning).is_some() {
            assert!(
                timer(Timer::TokenLoss).is_some(),
                "a token warning without a token timer"
            );
        }
        assert_eq!(
            self.held.is_some(),
            timer(Timer::Hold).is_some(),
            "the hold timer runs exactly while a token is held"
        );
        if let Some(token) = &self.held {
            assert!(
                token.aru <= token.seq && token.safe <= token.seq,
                "held token: aru or safe beyond its sequence"
            );
            let store = self.ring_store();
            assert!(
                store.high() <= token.seq,
                "held token: this node holds frames beyond the token's sequence"
            );
            assert!(
                token.rtr.len() <= RTR_ENTRIES_MAX,
                "retransmit list too long"
            );
        }
        assert!(
            self.missing.len() <= RTR_ENTRIES_MAX,
            "missing list unbounded"
        );
        assert!(self.notices.len() <= NOTICES_MAX, "notice queue unbounded");
        self.rto.check_invariants();
        assert!(
            timer(Timer::Presence).is_some(),
            "the presence timer runs in every state"
        );
        if all {
            self.reach.check_invariants();
            self.reassembly.check_invariants();
        }
        assert!(
            self.incarnations.len() <= MEMBERS_MAX * 2,
            "incarnation table unbounded"
        );

        match &self.phase {
            Phase::Gather(g) => {
                assert!(self.held.is_none(), "a token held while gathering");
                for t in [Timer::TokenLoss, Timer::TokenRetransmit, Timer::Hold] {
                    assert!(timer(t).is_none(), "{t:?} timer running while gathering");
                }
                assert!(
                    timer(Timer::Join).is_some() && timer(Timer::Consensus).is_some(),
                    "gathering without the join and consensus timers"
                );
                assert!(
                    g.proc_set.len() <= MEMBERS_MAX,
                    "more processors than a ring can hold"
                );
                assert!(contains(&g.proc_set, me), "gathering without itself");
                assert!(!contains(&g.fail_set, me), "this node in its own fail set");
                assert!(
                    contains(&g.agreed, me),
                    "this node does not agree with itself"
                );
                assert!(!contains(&g.excluded, me), "this node excludes itself");
                if all {
                    assert!(sorted_unique(&g.proc_set), "proc set not sorted and unique");
                    assert!(sorted_unique(&g.fail_set), "fail set not sorted and unique");
                    assert!(
                        sorted_unique(&g.excluded)
                            && g.excluded
                                .iter()
                                .all(|n| contains(&g.proc_set, *n) && !contains(&g.fail_set, *n)),
                        "excluded set not sorted and unique, outside the proc set or failed"
                    );
                    assert!(sorted_unique(&g.agreed), "agreed set not sorted and unique");
                }
            }
            Phase::Commit(f) => {
                self.check_forming(f, all);
                for t in [Timer::Join, Timer::Consensus, Timer::Hold] {
                    assert!(timer(t).is_none(), "{t:?} timer running in commit");
                }
                assert!(
                    timer(Timer::TokenLoss).is_some(),
                    "commit without a token timer"
                );
                assert!(self.held.is_none(), "a regular token held in commit");
            }
            Phase::Recovery(f, r) => {
                self.check_forming(f, all);
                for t in [Timer::Join, Timer::Consensus] {
                    assert!(timer(t).is_none(), "{t:?} timer running in recovery");
                }
                assert!(
                    timer(Timer::TokenLoss).is_some()
                        || (self.held.is_some() && f.members.len() == 1),
                    "recovery without a token timer (only a ring of one holds its token)"
                );
                assert!(contains(&r.trans, me), "recovering without itself");
                assert!(
                    r.queue.back().is_none_or(|s| *s <= r.high),
                    "recovering past high"
                );
                if all {
                    assert!(sorted_unique(&r.trans), "transitional set not sorted");
                    assert!(
                        r.trans.iter().all(|n| contains(&f.members, *n)),
                        "a transitional member outside the new ring"
                    );
                    assert!(
                        r.queue
                            .iter()
                            .zip(r.queue.iter().skip(1))
                            .all(|(a, b)| a < b),
                        "recovery queue out of order"
                    );
                }
            }
            Phase::Operational => {
                for t in [Timer::Join, Timer::Consensus] {
                    assert!(timer(t).is_none(), "{t:?} timer running when operational");
                }
                assert!(
                    timer(Timer::TokenLoss).is_some()
                        || (self.held.is_some() && installed.members.len() == 1),
                    "operational without a token timer (only a ring of one holds its token)"
                );
                assert!(
                    installed.ring.is_formed(),
                    "an installed ring is formed, not the start-up pseudo-ring"
                );
            }
        }
        if all {
            assert!(
                sorted_unique(&installed.members) && contains(&installed.members, me),
                "installed members not sorted and unique, or without this node"
            );
            assert_eq!(
                installed.members.first().map(|n| n.0),
                Some(installed.ring.rep),
                "the representative is the lowest member"
            );
            assert!(
                sorted_unique(&self.left_cleanly),
                "leave list not sorted and unique"
            );
        }
    }

    fn check_forming(&self, f: &Forming, all: bool) {
        assert!(
            f.ring.seq > self.installed.ring.seq && f.ring.seq <= self.max_ring_seq,
            "the ring being formed is not numbered above the installed one"
        );
        assert!(
            f.ring.is_formed(),
            "a formed ring's sequence is a multiple of 4"
        );
        assert_eq!(
            f.entries.len(),
            f.members.len(),
            "one commit entry per member"
        );
        f.store.check_invariants(all);
        if all {
            assert!(
                sorted_unique(&f.members) && contains(&f.members, self.me),
                "forming members not sorted and unique, or without this node"
            );
            assert_eq!(
                f.members.first().map(|n| n.0),
                Some(f.ring.rep),
                "the representative is the lowest member"
            );
            assert!(
                f.entries
                    .iter()
                    .zip(&f.members)
                    .all(|(e, m)| e.node() == *m),
                "commit entries out of step with the members"
            );
        }
    }
}

impl<'a> Writer<'a> {
    /// A writer over a vector resized to exactly `size` bytes.
    pub fn new_vec(buf: &'a mut Vec<u8>, size: usize) -> Writer<'a> {
        buf.clear();
        buf.resize(size, 0);
        Writer::new(buf.as_mut_slice())
    }
}
