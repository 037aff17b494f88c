//! The closed process group (CPG) service on top of the ordered stream: processes join and
//! leave named groups and multicast to them through ordered messages, so every member sees
//! joins, leaves, node-downs and messages of a group in one total order.
//!
//! After every ring change the group membership is re-synchronised (as corosync's cpg sync):
//! the transitional configuration removes the processes of departed nodes (reason node-down);
//! then each node of the new ring multicasts its joinlist — its own processes and their
//! groups — as its first message, and sends no application message before it has delivered the
//! joinlists of all members. Every application message of the new ring is therefore ordered
//! after all joinlists, and every node applies the same union at the same point.
//!
//! Message layout (inside a packed message): op u8, then
//! - JOIN, LEAVE, PROCDOWN: name_len u8, name, pid u32;
//! - MCAST: name_len u8, name, pid u32, data;
//! - JOINLIST: count u16, count × (name_len u8, name, pid u32).

use std::collections::{BTreeMap, BTreeSet};

use crate::body::Payload;
use crate::limits::GROUP_NAME_MAX;
use crate::srp::{ConfigChange, ConfigKind};
use crate::types::{Guarantee, NodeId, RingId};

const OP_JOIN: u8 = 1;
const OP_LEAVE: u8 = 2;
const OP_MCAST: u8 = 3;
const OP_JOINLIST: u8 = 4;
const OP_PROCDOWN: u8 = 5;
/// Largest multicast header: op, name length, name, pid.
pub const MCAST_HEAD_MAX: usize = 6 + GROUP_NAME_MAX;

/// A process of the cluster: the node it runs on and its pid there.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ProcessId {
    pub node: NodeId,
    pub pid: u32,
}

/// Why a process joined or left a group (libcpg's CPG_REASON_*).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ChangeReason {
    Join,
    Leave,
    NodeDown,
    NodeUp,
    ProcDown,
}

/// A change of one group's membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupChange {
    pub group: Vec<u8>,
    /// The membership after the change, sorted.
    pub members: Vec<ProcessId>,
    pub joined: Vec<(ProcessId, ChangeReason)>,
    pub left: Vec<(ProcessId, ChangeReason)>,
}

/// A request from a local process.
#[derive(Clone, Copy, Debug)]
pub enum Request<'a> {
    Join {
        group: &'a [u8],
        pid: u32,
    },
    Leave {
        group: &'a [u8],
        pid: u32,
    },
    Mcast {
        group: &'a [u8],
        pid: u32,
        guarantee: Guarantee,
        data: &'a [u8],
    },
    /// A local process's session closed while it had joined `group` (its process died, or its
    /// ring broke): it leaves the group with reason ProcDown, as corosync's exit_fn does.
    ProcessDown {
        group: &'a [u8],
        pid: u32,
    },
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the send queue is full; try again")]
    TryAgain,
    #[error("message of {0} bytes is larger than the 1 MiB maximum")]
    TooLarge(usize),
    #[error("group name is empty or longer than {GROUP_NAME_MAX} bytes")]
    BadName,
    #[error("the process has already joined this group")]
    AlreadyJoined,
    #[error("the process has not joined this group")]
    NotJoined,
}

/// What the group service tells its user, in delivery order.
pub enum CpgOutput<'a> {
    Config(ConfigChange),
    Group(GroupChange),
    /// A multicast: its group name and data, borrowed from the message (the group name of a
    /// message larger than a frame from a copy of its head).
    Deliver {
        group: &'a [u8],
        sender: ProcessId,
        guarantee: Guarantee,
        data: Payload<'a>,
    },
}

/// A re-sync in progress: the ring, the members whose joinlist is missing, and what the
/// joinlists delivered so far announced.
type Sync = (RingId, BTreeSet<NodeId>, BTreeSet<(Vec<u8>, ProcessId)>);

pub struct Cpg {
    me: NodeId,
    groups: BTreeMap<Vec<u8>, BTreeSet<ProcessId>>,
    /// Local memberships requested by processes (the submit-side view): group → pids.
    local: BTreeMap<Vec<u8>, BTreeSet<u32>>,
    /// While re-syncing: the ring and the members whose joinlist is still missing.
    sync: Option<Sync>,
    pub malformed: u64,
    pub unexpected: u64,
}

fn put_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(name.len() as u8);
    out.extend_from_slice(name);
}

/// Reads name_len, name, pid from the front of `bytes`.
fn read_entry(bytes: &[u8]) -> Option<(&[u8], u32, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = len as usize;
    if len == 0 || len > GROUP_NAME_MAX {
        return None;
    }
    let name = rest.get(..len)?;
    let pid = u32::from_be_bytes(rest.get(len..len + 4)?.try_into().ok()?);
    Some((name, pid, &rest[len + 4..]))
}

impl Cpg {
    pub fn new(me: NodeId) -> Self {
        Cpg {
            me,
            groups: BTreeMap::new(),
            local: BTreeMap::new(),
            sync: None,
            malformed: 0,
            unexpected: 0,
        }
    }

    pub fn syncing(&self) -> bool {
        self.sync.is_some()
    }

    /// Current members of a group as this node has delivered them.
    pub fn members(&self, group: &[u8]) -> Vec<ProcessId> {
        self.groups
            .get(group)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every group with at least one member.
    pub fn groups(&self) -> impl Iterator<Item = (&[u8], &BTreeSet<ProcessId>)> {
        self.groups.iter().map(|(g, m)| (g.as_slice(), m))
    }

    /// Checks a request and encodes it; the caller queues the bytes.
    pub fn encode(
        &mut self,
        request: Request<'_>,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), SubmitError> {
        let check = |g: &[u8]| {
            if g.is_empty() || g.len() > GROUP_NAME_MAX {
                Err(SubmitError::BadName)
            } else {
                Ok(())
            }
        };
        match request {
            Request::Join { group, pid } => {
                check(group)?;
                if !self.local.entry(group.to_vec()).or_default().insert(pid) {
                    return Err(SubmitError::AlreadyJoined);
                }
                out.push(Self::simple(OP_JOIN, group, pid));
            }
            Request::Leave { group, pid } | Request::ProcessDown { group, pid } => {
                check(group)?;
                let pids = self.local.get_mut(group).ok_or(SubmitError::NotJoined)?;
                if !pids.remove(&pid) {
                    return Err(SubmitError::NotJoined);
                }
                if pids.is_empty() {
                    self.local.remove(group);
                }
                let op = match request {
                    Request::Leave { .. } => OP_LEAVE,
                    _ => OP_PROCDOWN,
                };
                out.push(Self::simple(op, group, pid));
            }
            Request::Mcast { group, pid, .. } => {
                check(group)?;
                self.check_joined(group, pid)?;
                out.push(Self::simple(OP_MCAST, group, pid));
            }
        }
        Ok(())
    }

    /// A multicast is allowed only from a process that has joined the group.
    pub fn check_joined(&self, group: &[u8], pid: u32) -> Result<(), SubmitError> {
        if group.is_empty() || group.len() > GROUP_NAME_MAX {
            return Err(SubmitError::BadName);
        }
        match self.local.get(group) {
            Some(pids) if pids.contains(&pid) => Ok(()),
            _ => Err(SubmitError::NotJoined),
        }
    }

    /// Writes a multicast's header (op, name, pid) into `out`; returns its length.
    pub fn mcast_head(group: &[u8], pid: u32, out: &mut [u8; MCAST_HEAD_MAX]) -> usize {
        out[0] = OP_MCAST;
        out[1] = group.len() as u8;
        out[2..2 + group.len()].copy_from_slice(group);
        out[2 + group.len()..6 + group.len()].copy_from_slice(&pid.to_be_bytes());
        6 + group.len()
    }

    fn simple(op: u8, group: &[u8], pid: u32) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(6 + group.len());
        bytes.push(op);
        put_name(&mut bytes, group);
        bytes.extend_from_slice(&pid.to_be_bytes());
        bytes
    }

    /// A configuration change from the ordered stream. Returns the joinlist to multicast first
    /// in a new regular configuration.
    pub fn on_config(
        &mut self,
        change: ConfigChange,
        emit: &mut impl FnMut(CpgOutput<'_>),
    ) -> Option<Vec<u8>> {
        let kind = change.kind;
        let left_nodes: BTreeSet<NodeId> = change.left.iter().copied().collect();
        let ring = change.ring;
        let members: BTreeSet<NodeId> = change.members.iter().copied().collect();
        emit(CpgOutput::Config(change));
        match kind {
            // Old-ring messages delivered in the transitional configuration still see the
            // departed nodes' processes; they are removed once those messages are done.
            ConfigKind::Transitional => None,
            ConfigKind::Regular => {
                // Processes of departed nodes leave every group (reason node-down).
                let mut changes = Vec::new();
                for (group, set) in self.groups.iter_mut() {
                    let gone: Vec<ProcessId> = set
                        .iter()
                        .copied()
                        .filter(|m| left_nodes.contains(&m.node) || !members.contains(&m.node))
                        .collect();
                    if gone.is_empty() {
                        continue;
                    }
                    for m in &gone {
                        set.remove(m);
                    }
                    changes.push(GroupChange {
                        group: group.clone(),
                        members: set.iter().copied().collect(),
                        joined: Vec::new(),
                        left: gone
                            .into_iter()
                            .map(|m| (m, ChangeReason::NodeDown))
                            .collect(),
                    });
                }
                self.groups.retain(|_, set| !set.is_empty());
                for c in changes {
                    emit(CpgOutput::Group(c));
                }
                self.sync = Some((ring, members, BTreeSet::new()));
                let mine: Vec<(&Vec<u8>, u32)> = self
                    .groups
                    .iter()
                    .flat_map(|(g, set)| {
                        set.iter()
                            .filter(|m| m.node == self.me)
                            .map(move |m| (g, m.pid))
                    })
                    .collect();
                let mut bytes = vec![OP_JOINLIST];
                bytes.extend_from_slice(&(mine.len() as u16).to_be_bytes());
                for (group, pid) in mine {
                    put_name(&mut bytes, group);
                    bytes.extend_from_slice(&pid.to_be_bytes());
                }
                Some(bytes)
            }
        }
    }

    /// A complete message in total order. Returns true when the re-sync has just finished.
    ///
    /// Nothing of a multicast's data is copied: its delivery borrows the message. The head (op,
    /// group, pid) of a message larger than a frame may straddle fragments and is read from a
    /// copy of its first `MCAST_HEAD_MAX` bytes; a joinlist larger than a frame is gathered.
    pub fn on_message(
        &mut self,
        node: NodeId,
        guarantee: Guarantee,
        message: Payload<'_>,
        emit: &mut impl FnMut(CpgOutput<'_>),
    ) -> bool {
        // Only a message in parts needs a copy of its head (not zeroed for every message).
        let mut head_copy;
        let head = match message.as_slice() {
            Some(bytes) => bytes,
            None => {
                head_copy = [0u8; MCAST_HEAD_MAX];
                let len = message.copy_prefix(&mut head_copy);
                &head_copy[..len]
            }
        };
        let Some((&op, rest)) = head.split_first() else {
            self.malformed += 1;
            return false;
        };
        if op == OP_JOINLIST {
            return match message.as_slice() {
                Some(bytes) => self.on_joinlist(node, &bytes[1..], emit),
                None => self.on_joinlist(node, &message.to_vec()[1..], emit),
            };
        }
        let Some((group, pid, tail)) = read_entry(rest) else {
            self.malformed += 1;
            return false;
        };
        let data = match message.as_slice() {
            // `head` is the whole message: the data is the rest of it.
            Some(_) => Payload::from_slice(tail),
            None => message.skip(1 + 1 + group.len() + 4),
        };
        if self.sync.is_some() {
            // Cannot happen with correct senders (they wait for the sync); keep order anyway.
            self.unexpected += 1;
        }
        let member = ProcessId { node, pid };
        match op {
            OP_JOIN => {
                let set = self.groups.entry(group.to_vec()).or_default();
                if set.insert(member) {
                    emit(CpgOutput::Group(GroupChange {
                        group: group.to_vec(),
                        members: set.iter().copied().collect(),
                        joined: vec![(member, ChangeReason::Join)],
                        left: Vec::new(),
                    }));
                } else {
                    self.unexpected += 1;
                }
            }
            OP_LEAVE | OP_PROCDOWN => {
                let reason = if op == OP_LEAVE {
                    ChangeReason::Leave
                } else {
                    ChangeReason::ProcDown
                };
                let Some(set) = self.groups.get_mut(group) else {
                    self.unexpected += 1;
                    return false;
                };
                if set.remove(&member) {
                    emit(CpgOutput::Group(GroupChange {
                        group: group.to_vec(),
                        members: set.iter().copied().collect(),
                        joined: Vec::new(),
                        left: vec![(member, reason)],
                    }));
                    if set.is_empty() {
                        self.groups.remove(group);
                    }
                } else {
                    self.unexpected += 1;
                }
            }
            OP_MCAST => {
                emit(CpgOutput::Deliver {
                    group,
                    sender: member,
                    guarantee,
                    data,
                });
            }
            _ => self.malformed += 1,
        }
        false
    }

    fn on_joinlist(
        &mut self,
        node: NodeId,
        mut rest: &[u8],
        emit: &mut impl FnMut(CpgOutput<'_>),
    ) -> bool {
        let Some((waiting, collected)) = self.sync.as_mut().map(|(_, w, c)| (w, c)) else {
            self.unexpected += 1;
            return false;
        };
        if !waiting.remove(&node) {
            self.unexpected += 1;
            return false;
        }
        let Some(count) = rest.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])) else {
            self.malformed += 1;
            return false;
        };
        rest = &rest[2..];
        for _ in 0..count {
            let Some((group, pid, tail)) = read_entry(rest) else {
                self.malformed += 1;
                break;
            };
            collected.insert((group.to_vec(), ProcessId { node, pid }));
            rest = tail;
        }
        if !waiting.is_empty() {
            return false;
        }
        let (_, _, collected) = self.sync.take().expect("syncing");
        // Union: processes announced by nodes we did not share a ring with join our view, with
        // reason node-up (corosync's joinlist_inform_clients).
        let mut joined: BTreeMap<Vec<u8>, Vec<ProcessId>> = BTreeMap::new();
        for (group, member) in collected {
            let set = self.groups.entry(group.clone()).or_default();
            if set.insert(member) {
                joined.entry(group).or_default().push(member);
            }
        }
        for (group, members) in joined {
            let set = &self.groups[&group];
            emit(CpgOutput::Group(GroupChange {
                group,
                members: set.iter().copied().collect(),
                joined: members
                    .into_iter()
                    .map(|m| (m, ChangeReason::NodeUp))
                    .collect(),
                left: Vec::new(),
            }));
        }
        true
    }
}
