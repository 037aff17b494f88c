//! Changing a running cluster as an ordered service: every member acts at the same point of
//! the delivered stream, as the CPG service does.
//!
//! A *change round* (a config reload, or a key rotation) runs in three steps:
//! 1. a member multicasts a REQUEST; every member of the ring that delivers it owes an answer
//!    (the round's `required` set is the ring the request was delivered in);
//! 2. each of them reads its own configuration (the embedding does: `Node::propose`) and
//!    multicasts a PROPOSAL with safe delivery — either what it would run with (its
//!    configuration summary and digest, the key it would seal under), or why it refuses;
//! 3. the delivery of the last required proposal decides, identically everywhere: the change
//!    is applied if every member is ready and every digest and key agree, else refused with
//!    each member's reason or the keys whose values differ. Applying swaps the settings, the
//!    nodelist's size and the configuration identity in the core; the embedding swaps the
//!    peer table and the sealing key on the same event.
//!
//! A round is called off, at one point everywhere, when the membership changes before it is
//! decided (a regular configuration), when another request comes while it runs, or when its
//! asker gives up waiting (`CHANGE_ROUND_TIMEOUT_MS`: an ordered ABORT naming the members
//! that did not answer).
//!
//! Safe delivery for proposals means that once any member has decided, every member had
//! received the last proposal, so members cut off right after still decide the same in their
//! transitional configuration.
//!
//! Key rotation: a member proposing a new key already opens frames under it (the embedding
//! accepts it when it proposes), so when the round is applied every member can open the new
//! key and each seals under it from that point. Every member then announces the key it seals
//! under (KEY; also at the start of every ring); once every member of the ring has announced
//! the new key, the others are retired (`ChangeEvent::KeyAgreed`).
//!
//! Also here, as ordered messages: KILL (the named node leaves and stops, with a reason) and
//! SHUTDOWN (a node announces its orderly shutdown, logged by every member).
//!
//! Messages (inside a packed message; the first byte is the op, in their own range):
//! - REQUEST: round (node u32, seq u32), kind u8, path (u16 length, bytes; rotate-key only);
//! - PROPOSAL: round, verdict u8 (0 ready, 1 refused), digest u64, key u32, text (u32
//!   length, bytes: the summary when ready, the reason when refused);
//! - ABORT: round, reason (u32 length, bytes);
//! - KEY: key id u32;
//! - KILL: node u32, reason (u16 length, bytes);
//! - SHUTDOWN: nothing.

use std::collections::VecDeque;

use crate::config::identity::{differences, DIFFERENCES_MAX, SUMMARY_BYTES_MAX};
use crate::config::{ClusterShape, ConfigIdentity, TotemSettings};
use crate::limits::{CHANGE_EVENTS_MAX, CHANGE_ROUND_TIMEOUT_MS};
use crate::srp::{ConfigChange, ConfigKind};
use crate::types::{Guarantee, Instant, NodeId};
use crate::votequorum::QuorumSettings;

/// First op byte of this service's messages.
pub const OP_FIRST: u8 = 0x50;
/// Last op byte of this service's messages.
pub const OP_LAST: u8 = 0x5f;
const OP_REQUEST: u8 = 0x50;
const OP_PROPOSAL: u8 = 0x51;
const OP_ABORT: u8 = 0x52;
const OP_KEY: u8 = 0x53;
const OP_KILL: u8 = 0x54;
const OP_SHUTDOWN: u8 = 0x55;

const KIND_RELOAD: u8 = 1;
const KIND_ROTATE_KEY: u8 = 2;
const VERDICT_READY: u8 = 0;
const VERDICT_REFUSED: u8 = 1;

/// Longest reason a member gives (a refusal, a kill): longer ones are cut.
pub const REASON_BYTES_MAX: usize = 4096;
/// Longest key path a rotate-key request carries.
pub const PATH_BYTES_MAX: usize = 4096;

/// Names one change round: the member that asked for it and its count of rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoundId {
    pub node: NodeId,
    pub seq: u32,
}

impl std::fmt::Display for RoundId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.seq)
    }
}

/// What a round changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Every member reads its configuration file again.
    Reload,
    /// Every member installs the key in the file at `path` (a path on each member's own
    /// filesystem) as the cluster's next key.
    RotateKey { path: String },
}

/// A member's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proposal {
    /// What this member would run with: the settings for the shape (the new nodelist's size),
    /// its configuration identity, the key it would seal under, and votequorum's settings
    /// from its quorum{} (when it runs votequorum; each member applies its own, as corosync).
    Ready {
        totem: TotemSettings,
        shape: ClusterShape,
        identity: ConfigIdentity,
        key_id: u32,
        quorum: Option<QuorumSettings>,
    },
    /// Why this member cannot take the change (the key it names, the file and line).
    Refused { reason: String },
}

/// How a round ended, the same on every member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// In effect from this point: every member runs what it proposed (all agreed).
    Applied,
    /// Nothing changed; one phrase per reason, each naming the node it is about.
    Refused { reasons: Vec<String> },
}

/// What the change service tells the embedding, in delivery order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeEvent {
    /// A member asked for a change: answer with `Node::propose(round, …)`.
    Requested { round: RoundId, kind: ChangeKind },
    /// The round is decided at this point of the ordered stream. When applied, the core
    /// already runs the settings, shape and identity this node proposed; the embedding swaps
    /// its part (peer table, sealing key) now.
    Decided {
        round: RoundId,
        kind: ChangeKind,
        outcome: Outcome,
    },
    /// Every member of the ring seals under `key_id`: every other key may be retired.
    KeyAgreed { key_id: u32 },
    /// Member `by` asked this node to leave the cluster and stop.
    Killed { by: NodeId, reason: String },
    /// A member (this node too) announced its orderly shutdown.
    ShuttingDown { node: NodeId },
}

/// Why `Node::propose` or a request was refused locally.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("round {0} is not waiting for this node's answer")]
    NotWaiting(RoundId),
    #[error("the send queue is full; try again")]
    TryAgain,
    #[error("{0}")]
    Invalid(String),
}

/// What the core applies when a round this node proposed for is applied.
#[derive(Clone, Debug)]
pub(crate) struct Apply {
    pub totem: TotemSettings,
    pub shape: ClusterShape,
    pub identity: ConfigIdentity,
    pub quorum: Option<QuorumSettings>,
}

/// A member's proposal as delivered.
#[derive(Clone, Debug)]
enum Proposed {
    Ready {
        digest: u64,
        key_id: u32,
        summary: Vec<u8>,
    },
    Refused(String),
}

struct Round {
    id: RoundId,
    kind: ChangeKind,
    /// The members of the ring the request was delivered in. Invariant: sorted, unique.
    required: Vec<NodeId>,
    /// Invariant: from required members only, at most one each.
    proposals: Vec<(NodeId, Proposed)>,
    /// At the member that asked: when it gives up waiting.
    deadline: Option<Instant>,
    /// At the member that asked: its ABORT is queued.
    aborting: bool,
}

/// The change service of one node.
pub struct Reconfig {
    me: NodeId,
    /// Members of the current ring (from the last regular configuration). Invariant: sorted.
    members: Vec<NodeId>,
    round: Option<Round>,
    /// This node's proposal for the open round, applied if the round is.
    local: Option<(RoundId, Apply, u32)>,
    next_seq: u32,
    /// The key this node seals under.
    sealing_key: u32,
    /// The key a switch moved to, until every member announced it.
    retire_pending: Option<u32>,
    /// Who announced sealing under which key in this ring.
    announced: Vec<(NodeId, u32)>,
    send: VecDeque<(Guarantee, Vec<u8>)>,
    events: VecDeque<ChangeEvent>,
    apply: Option<Apply>,
    now: Instant,
    pub malformed: u64,
    pub unexpected: u64,
    pub events_dropped: u64,
}

/// A reader over a message's bytes; `None` when it runs out.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }
    fn round(&mut self) -> Option<RoundId> {
        let node = NodeId(self.u32()?);
        let seq = self.u32()?;
        (node.0 != 0).then_some(RoundId { node, seq })
    }
    fn text(&mut self, len: usize) -> Option<String> {
        Some(String::from_utf8_lossy(self.take(len)?).into_owned())
    }
}

fn put_round(out: &mut Vec<u8>, round: RoundId) {
    out.extend_from_slice(&round.node.0.to_be_bytes());
    out.extend_from_slice(&round.seq.to_be_bytes());
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn nodes(list: &[NodeId]) -> String {
    list.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Reconfig {
    /// The service of node `me`, sealing under `key_id`.
    pub fn new(me: NodeId, key_id: u32) -> Reconfig {
        Reconfig {
            me,
            members: vec![me],
            round: None,
            local: None,
            next_seq: 1,
            sealing_key: key_id,
            retire_pending: None,
            announced: Vec::new(),
            send: VecDeque::new(),
            events: VecDeque::new(),
            apply: None,
            now: Instant(0),
            malformed: 0,
            unexpected: 0,
            events_dropped: 0,
        }
    }

    /// Whether a message belongs to this service (by its first byte).
    pub fn is_own(op: u8) -> bool {
        (OP_FIRST..=OP_LAST).contains(&op)
    }

    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// The key this node seals under.
    pub fn sealing_key(&self) -> u32 {
        self.sealing_key
    }

    /// The round in progress, if any.
    pub fn round(&self) -> Option<RoundId> {
        self.round.as_ref().map(|r| r.id)
    }

    fn event(&mut self, event: ChangeEvent) {
        if self.events.len() < CHANGE_EVENTS_MAX {
            self.events.push_back(event);
        } else {
            self.events_dropped += 1;
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<ChangeEvent> {
        self.events.pop_front()
    }

    pub(crate) fn poll_send(&mut self) -> Option<(Guarantee, Vec<u8>)> {
        self.send.pop_front()
    }

    /// A message `poll_send` gave that did not fit the send queue: sent first next time.
    pub(crate) fn unsend(&mut self, message: (Guarantee, Vec<u8>)) {
        self.send.push_front(message);
    }

    pub(crate) fn take_apply(&mut self) -> Option<Apply> {
        self.apply.take()
    }

    /// When the asker of the open round gives up waiting.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.round
            .as_ref()
            .filter(|r| !r.aborting)
            .and_then(|r| r.deadline)
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        let Some(round) = self.round.as_mut() else {
            return;
        };
        if round.aborting || round.deadline.is_none_or(|d| d > now) {
            return;
        }
        round.aborting = true;
        let missing: Vec<NodeId> = round
            .required
            .iter()
            .copied()
            .filter(|n| !round.proposals.iter().any(|(p, _)| p == n))
            .collect();
        let reason = format!(
            "no answer from node(s) {} within {} s (is rotord running there?)",
            nodes(&missing),
            CHANGE_ROUND_TIMEOUT_MS / 1000
        );
        let mut out = vec![OP_ABORT];
        put_round(&mut out, round.id);
        out.extend_from_slice(&(reason.len() as u32).to_be_bytes());
        out.extend_from_slice(reason.as_bytes());
        self.send.push_back((Guarantee::Agreed, out));
    }

    /// Asks every member for a change; the round's id names it in later events.
    pub fn request(&mut self, kind: ChangeKind) -> Result<RoundId, ChangeError> {
        let round = RoundId {
            node: self.me,
            seq: self.next_seq,
        };
        let mut out = vec![OP_REQUEST];
        put_round(&mut out, round);
        match &kind {
            ChangeKind::Reload => out.push(KIND_RELOAD),
            ChangeKind::RotateKey { path } => {
                if path.is_empty() || path.len() > PATH_BYTES_MAX {
                    return Err(ChangeError::Invalid(format!(
                        "a key path of 1 to {PATH_BYTES_MAX} bytes"
                    )));
                }
                out.push(KIND_ROTATE_KEY);
                out.extend_from_slice(&(path.len() as u16).to_be_bytes());
                out.extend_from_slice(path.as_bytes());
            }
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        self.send.push_back((Guarantee::Agreed, out));
        Ok(round)
    }

    /// This node's answer to round `round`.
    pub fn propose(&mut self, round: RoundId, proposal: Proposal) -> Result<(), ChangeError> {
        let waiting = self.round.as_ref().is_some_and(|r| {
            r.id == round
                && r.required.binary_search(&self.me).is_ok()
                && !r.proposals.iter().any(|(n, _)| *n == self.me)
        });
        if !waiting || self.local.as_ref().is_some_and(|(r, _, _)| *r == round) {
            return Err(ChangeError::NotWaiting(round));
        }
        let mut out = vec![OP_PROPOSAL];
        put_round(&mut out, round);
        match proposal {
            Proposal::Ready {
                totem,
                shape,
                identity,
                key_id,
                quorum,
            } => {
                out.push(VERDICT_READY);
                out.extend_from_slice(&identity.digest().to_be_bytes());
                out.extend_from_slice(&key_id.to_be_bytes());
                let summary = identity.summary();
                out.extend_from_slice(&(summary.len() as u32).to_be_bytes());
                out.extend_from_slice(summary);
                self.local = Some((
                    round,
                    Apply {
                        totem,
                        shape,
                        identity,
                        quorum,
                    },
                    key_id,
                ));
            }
            Proposal::Refused { reason } => {
                let reason = cut(&reason, REASON_BYTES_MAX);
                out.push(VERDICT_REFUSED);
                out.extend_from_slice(&0u64.to_be_bytes());
                out.extend_from_slice(&0u32.to_be_bytes());
                out.extend_from_slice(&(reason.len() as u32).to_be_bytes());
                out.extend_from_slice(reason.as_bytes());
                self.local = None;
            }
        }
        self.send.push_back((Guarantee::Safe, out));
        Ok(())
    }

    /// Asks node `target` to leave the cluster and stop, for `reason`.
    pub fn kill(&mut self, target: NodeId, reason: &str) {
        let reason = cut(reason, u16::MAX as usize);
        let mut out = vec![OP_KILL];
        out.extend_from_slice(&target.0.to_be_bytes());
        out.extend_from_slice(&(reason.len() as u16).to_be_bytes());
        out.extend_from_slice(reason.as_bytes());
        self.send.push_back((Guarantee::Safe, out));
    }

    /// Announces this node's orderly shutdown to every member.
    pub fn announce_shutdown(&mut self) {
        self.send.push_back((Guarantee::Safe, vec![OP_SHUTDOWN]));
    }

    fn announce_key(&mut self) {
        let mut out = vec![OP_KEY];
        out.extend_from_slice(&self.sealing_key.to_be_bytes());
        self.send.push_back((Guarantee::Agreed, out));
    }

    /// A configuration change from the ordered stream: a round still open is called off at the
    /// regular configuration (after the transitional deliveries), and every member announces
    /// its key in the new ring.
    pub(crate) fn on_config(&mut self, change: &ConfigChange) {
        if change.kind != ConfigKind::Regular {
            return;
        }
        self.members = change.members.clone();
        if let Some(round) = self.round.take() {
            self.local = None;
            let reason = format!(
                "the membership changed before every member answered (members now: {}); \
                 run it again",
                nodes(&change.members)
            );
            self.event(ChangeEvent::Decided {
                round: round.id,
                kind: round.kind,
                outcome: Outcome::Refused {
                    reasons: vec![reason],
                },
            });
        }
        self.announced.clear();
        self.announce_key();
    }

    /// A message of this service in total order.
    pub(crate) fn on_message(&mut self, sender: NodeId, bytes: &[u8]) {
        let mut r = Bytes(bytes);
        let ok = match r.u8() {
            Some(OP_REQUEST) => self.on_request(sender, &mut r),
            Some(OP_PROPOSAL) => self.on_proposal(sender, &mut r),
            Some(OP_ABORT) => self.on_abort(sender, &mut r),
            Some(OP_KEY) => r.u32().map(|key| self.on_key(sender, key)),
            Some(OP_KILL) => self.on_kill(sender, &mut r),
            Some(OP_SHUTDOWN) => {
                self.event(ChangeEvent::ShuttingDown { node: sender });
                Some(())
            }
            _ => None,
        };
        if ok.is_none() {
            self.malformed += 1;
        }
    }

    fn on_request(&mut self, sender: NodeId, r: &mut Bytes<'_>) -> Option<()> {
        let id = r.round()?;
        let kind = match r.u8()? {
            KIND_RELOAD => ChangeKind::Reload,
            KIND_ROTATE_KEY => {
                let len = usize::from(r.u16()?);
                ChangeKind::RotateKey { path: r.text(len)? }
            }
            _ => return None,
        };
        if id.node != sender {
            return None;
        }
        if let Some(open) = &self.round {
            let reason = format!(
                "another change (round {}, asked by node {}) is in progress; try again when \
                 it is done",
                open.id, open.id.node
            );
            self.event(ChangeEvent::Decided {
                round: id,
                kind,
                outcome: Outcome::Refused {
                    reasons: vec![reason],
                },
            });
            return Some(());
        }
        let deadline = (sender == self.me).then(|| self.now.plus_ms(CHANGE_ROUND_TIMEOUT_MS));
        self.round = Some(Round {
            id,
            kind: kind.clone(),
            required: self.members.clone(),
            proposals: Vec::new(),
            deadline,
            aborting: false,
        });
        if self.members.binary_search(&self.me).is_ok() {
            self.event(ChangeEvent::Requested { round: id, kind });
        }
        Some(())
    }

    fn on_proposal(&mut self, sender: NodeId, r: &mut Bytes<'_>) -> Option<()> {
        let id = r.round()?;
        let verdict = r.u8()?;
        let digest = r.u64()?;
        let key_id = r.u32()?;
        let len = r.u32()? as usize;
        if len > SUMMARY_BYTES_MAX {
            return None;
        }
        let text = r.take(len)?;
        let proposed = match verdict {
            VERDICT_READY => Proposed::Ready {
                digest,
                key_id,
                summary: text.to_vec(),
            },
            VERDICT_REFUSED => Proposed::Refused(String::from_utf8_lossy(text).into_owned()),
            _ => return None,
        };
        let Some(round) = self.round.as_mut().filter(|r| r.id == id) else {
            self.unexpected += 1; // A round already decided or called off.
            return Some(());
        };
        if round.required.binary_search(&sender).is_err()
            || round.proposals.iter().any(|(n, _)| *n == sender)
        {
            self.unexpected += 1;
            return Some(());
        }
        round.proposals.push((sender, proposed));
        if round.proposals.len() == round.required.len() {
            let round = self.round.take().expect("open");
            self.decide(round);
        }
        Some(())
    }

    fn on_abort(&mut self, sender: NodeId, r: &mut Bytes<'_>) -> Option<()> {
        let id = r.round()?;
        let len = r.u32()? as usize;
        let reason = r.text(len.min(REASON_BYTES_MAX))?;
        if sender != id.node || self.round.as_ref().is_none_or(|r| r.id != id) {
            self.unexpected += 1;
            return Some(());
        }
        let round = self.round.take().expect("open");
        self.local = None;
        self.event(ChangeEvent::Decided {
            round: round.id,
            kind: round.kind,
            outcome: Outcome::Refused {
                reasons: vec![reason],
            },
        });
        Some(())
    }

    /// Every required member answered: the same decision on every member.
    fn decide(&mut self, round: Round) {
        let mut reasons = Vec::new();
        for (node, p) in &round.proposals {
            if let Proposed::Refused(reason) = p {
                reasons.push(format!("node {node}: {reason}"));
            }
        }
        if reasons.is_empty() {
            // Compared with the asker's proposal (it is a member: it delivered its request in
            // this ring), else with the lowest member's.
            let reference = round
                .proposals
                .iter()
                .find(|(n, _)| *n == round.id.node)
                .or_else(|| round.proposals.iter().min_by_key(|(n, _)| *n))
                .expect("a round has proposals")
                .clone();
            let (
                ref_node,
                Proposed::Ready {
                    digest,
                    key_id,
                    summary,
                },
            ) = reference
            else {
                unreachable!("no proposal was refused");
            };
            let mut proposals = round.proposals.clone();
            proposals.sort_by_key(|(n, _)| *n);
            for (node, p) in &proposals {
                let Proposed::Ready {
                    digest: d,
                    key_id: k,
                    summary: s,
                } = p
                else {
                    continue;
                };
                if *d != digest {
                    let here = format!("on node {ref_node}");
                    let there = format!("on node {node}");
                    let what = differences(&summary, s, &here, &there, DIFFERENCES_MAX);
                    reasons.push(format!(
                        "node {node}'s configuration differs from node {ref_node}'s: {}",
                        what.join("; ")
                    ));
                } else if *k != key_id {
                    reasons.push(format!(
                        "node {node} would seal under key {k:08x} and node {ref_node} under \
                         {key_id:08x}: their authkey files differ"
                    ));
                }
            }
        }
        let local = self.local.take().filter(|(id, _, _)| *id == round.id);
        let outcome = if reasons.is_empty() {
            if let Some((_, apply, key_id)) = local {
                if key_id != self.sealing_key {
                    self.sealing_key = key_id;
                    self.retire_pending = Some(key_id);
                    self.announced.clear();
                    self.announce_key();
                }
                self.apply = Some(apply);
            }
            Outcome::Applied
        } else {
            Outcome::Refused { reasons }
        };
        self.event(ChangeEvent::Decided {
            round: round.id,
            kind: round.kind,
            outcome,
        });
    }

    fn on_key(&mut self, sender: NodeId, key: u32) {
        match self.announced.iter_mut().find(|(n, _)| *n == sender) {
            Some(entry) => entry.1 = key,
            None => self.announced.push((sender, key)),
        }
        let Some(pending) = self.retire_pending else {
            return;
        };
        let agreed = self
            .members
            .iter()
            .all(|m| self.announced.iter().any(|(n, k)| n == m && *k == pending));
        if agreed && pending == self.sealing_key {
            self.retire_pending = None;
            self.event(ChangeEvent::KeyAgreed { key_id: pending });
        }
    }

    fn on_kill(&mut self, sender: NodeId, r: &mut Bytes<'_>) -> Option<()> {
        let target = NodeId(r.u32()?);
        let len = usize::from(r.u16()?);
        let reason = r.text(len)?;
        if target == self.me {
            self.event(ChangeEvent::Killed { by: sender, reason });
        }
        Some(())
    }
}
