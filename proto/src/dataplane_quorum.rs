//! The quorum parts of the control socket between rotord and the dataplane, which runs
//! votequorum: the resolved quorum{} settings in the start message (`QuorumStart`), the
//! requests rotord forwards for its clients (`QuorumOp`, answered by `QuorumReply`), and what
//! votequorum reports in order (`QuorumUpdate`: syncs, the quorum callback, notifications,
//! the tracking barrier to persist) with the state getinfo and cmap are answered from
//! (`QuorumState`). Written with the control messages' `Writer`/`Reader`.

use crate::codec::{DecodeError, Reader, Writer};
use crate::Status;

/// Most node ids a list carries: members of a ring, or every node votequorum knows and the
/// device.
pub const NODES_MAX: usize = 2 * 384 + 1;
/// Longest quorum device name (corosync's buffer less its terminator).
pub const QDEVICE_NAME_MAX: usize = 254;

fn put_ids(w: &mut Writer<'_>, ids: &[u32]) {
    w.u32(ids.len() as u32);
    for id in ids {
        w.u32(*id);
    }
}

fn get_ids(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<u32>, DecodeError> {
    let n = r.count(4, what)?;
    if n > NODES_MAX {
        return Err(DecodeError::BadValue(what));
    }
    (0..n).map(|_| r.u32(what)).collect()
}

fn get_bool(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::BadValue(what)),
    }
}

fn put_opt(w: &mut Writer<'_>, v: Option<u32>) {
    match v {
        None => w.u8(0),
        Some(v) => w.u8(1).u32(v),
    };
}

fn get_opt(r: &mut Reader<'_>, what: &'static str) -> Result<Option<u32>, DecodeError> {
    Ok(if get_bool(r, what)? {
        Some(r.u32(what)?)
    } else {
        None
    })
}

fn get_name(r: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let name = r.str(what)?;
    if name.len() > QDEVICE_NAME_MAX {
        return Err(DecodeError::BadValue(what));
    }
    Ok(name.to_owned())
}

/// `auto_tie_breaker_node`, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TieBreakerSetting {
    Off,
    Lowest,
    Highest,
    List(Vec<u32>),
}

/// The quorum device's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QdeviceStart {
    pub votes: u32,
    pub timeout_ms: u32,
    pub sync_timeout_ms: u32,
}

/// votequorum's settings, resolved by rotord (totem-core's `QuorumSettings`), and the
/// expected_votes_tracking barrier rotord keeps in the state directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStart {
    pub expected_votes: Option<u32>,
    pub nodelist_expected_votes: Option<u32>,
    pub votes: u32,
    pub two_node: bool,
    pub wait_for_all: bool,
    pub wait_for_all_follows_two_node: bool,
    pub last_man_standing: bool,
    pub last_man_standing_window_ms: u32,
    pub auto_tie_breaker: TieBreakerSetting,
    pub allow_downscale: bool,
    pub expected_votes_tracking: bool,
    pub qdevice: Option<QdeviceStart>,
    pub ev_tracking_barrier: u32,
}

impl QuorumStart {
    pub fn write(&self, w: &mut Writer<'_>) {
        put_opt(w, self.expected_votes);
        put_opt(w, self.nodelist_expected_votes);
        w.u32(self.votes)
            .u8(u8::from(self.two_node))
            .u8(u8::from(self.wait_for_all))
            .u8(u8::from(self.wait_for_all_follows_two_node))
            .u8(u8::from(self.last_man_standing))
            .u32(self.last_man_standing_window_ms);
        match &self.auto_tie_breaker {
            TieBreakerSetting::Off => {
                w.u8(0);
            }
            TieBreakerSetting::Lowest => {
                w.u8(1);
            }
            TieBreakerSetting::Highest => {
                w.u8(2);
            }
            TieBreakerSetting::List(ids) => {
                w.u8(3);
                put_ids(w, ids);
            }
        }
        w.u8(u8::from(self.allow_downscale))
            .u8(u8::from(self.expected_votes_tracking));
        match self.qdevice {
            None => {
                w.u8(0);
            }
            Some(q) => {
                w.u8(1)
                    .u32(q.votes)
                    .u32(q.timeout_ms)
                    .u32(q.sync_timeout_ms);
            }
        }
        w.u32(self.ev_tracking_barrier);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<QuorumStart, DecodeError> {
        let expected_votes = get_opt(r, "expected votes")?;
        let nodelist_expected_votes = get_opt(r, "nodelist expected votes")?;
        let votes = r.u32("votes")?;
        let two_node = get_bool(r, "two_node")?;
        let wait_for_all = get_bool(r, "wait_for_all")?;
        let wait_for_all_follows_two_node = get_bool(r, "wait_for_all")?;
        let last_man_standing = get_bool(r, "last_man_standing")?;
        let last_man_standing_window_ms = r.u32("last_man_standing_window")?;
        let auto_tie_breaker = match r.u8("auto_tie_breaker")? {
            0 => TieBreakerSetting::Off,
            1 => TieBreakerSetting::Lowest,
            2 => TieBreakerSetting::Highest,
            3 => TieBreakerSetting::List(get_ids(r, "auto_tie_breaker_node")?),
            _ => return Err(DecodeError::BadValue("auto_tie_breaker")),
        };
        let allow_downscale = get_bool(r, "allow_downscale")?;
        let expected_votes_tracking = get_bool(r, "expected_votes_tracking")?;
        let qdevice = if get_bool(r, "quorum device")? {
            Some(QdeviceStart {
                votes: r.u32("quorum device votes")?,
                timeout_ms: r.u32("quorum device timeout")?,
                sync_timeout_ms: r.u32("quorum device sync timeout")?,
            })
        } else {
            None
        };
        Ok(QuorumStart {
            expected_votes,
            nodelist_expected_votes,
            votes,
            two_node,
            wait_for_all,
            wait_for_all_follows_two_node,
            last_man_standing,
            last_man_standing_window_ms,
            auto_tie_breaker,
            allow_downscale,
            expected_votes_tracking,
            qdevice,
            ev_tracking_barrier: r.u32("ev_tracking barrier")?,
        })
    }
}

/// A votequorum request rotord forwards for a client (or for itself: a clean leave).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumOp {
    SetExpected(u32),
    SetVotes {
        node: u32,
        votes: u32,
    },
    /// This node leaves cleanly (allow_downscale): answered once its leave is ordered.
    Leaving,
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
        ring_rep: u32,
        ring_seq: u64,
    },
    QdeviceMasterWins {
        name: String,
        allow: bool,
    },
}

impl QuorumOp {
    pub fn write(&self, w: &mut Writer<'_>) {
        match self {
            QuorumOp::SetExpected(v) => {
                w.u8(1).u32(*v);
            }
            QuorumOp::SetVotes { node, votes } => {
                w.u8(2).u32(*node).u32(*votes);
            }
            QuorumOp::Leaving => {
                w.u8(3);
            }
            QuorumOp::CancelWaitForAll => {
                w.u8(4);
            }
            QuorumOp::QdeviceRegister { name } => {
                w.u8(5).str(name);
            }
            QuorumOp::QdeviceUnregister { name } => {
                w.u8(6).str(name);
            }
            QuorumOp::QdeviceRename { old, new } => {
                w.u8(7).str(old).str(new);
            }
            QuorumOp::QdevicePoll {
                name,
                cast_vote,
                ring_rep,
                ring_seq,
            } => {
                w.u8(8)
                    .str(name)
                    .u8(u8::from(*cast_vote))
                    .u32(*ring_rep)
                    .u64(*ring_seq);
            }
            QuorumOp::QdeviceMasterWins { name, allow } => {
                w.u8(9).str(name).u8(u8::from(*allow));
            }
        }
    }

    pub fn read(r: &mut Reader<'_>) -> Result<QuorumOp, DecodeError> {
        Ok(match r.u8("quorum op")? {
            1 => QuorumOp::SetExpected(r.u32("expected votes")?),
            2 => QuorumOp::SetVotes {
                node: r.u32("node")?,
                votes: r.u32("votes")?,
            },
            3 => QuorumOp::Leaving,
            4 => QuorumOp::CancelWaitForAll,
            5 => QuorumOp::QdeviceRegister {
                name: get_name(r, "qdevice name")?,
            },
            6 => QuorumOp::QdeviceUnregister {
                name: get_name(r, "qdevice name")?,
            },
            7 => QuorumOp::QdeviceRename {
                old: get_name(r, "qdevice name")?,
                new: get_name(r, "qdevice name")?,
            },
            8 => QuorumOp::QdevicePoll {
                name: get_name(r, "qdevice name")?,
                cast_vote: get_bool(r, "cast vote")?,
                ring_rep: r.u32("ring id")?,
                ring_seq: r.u64("ring id")?,
            },
            9 => QuorumOp::QdeviceMasterWins {
                name: get_name(r, "qdevice name")?,
                allow: get_bool(r, "allow")?,
            },
            _ => return Err(DecodeError::BadValue("quorum op")),
        })
    }
}

/// The dataplane's answer to a `QuorumOp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumReply {
    pub request: u32,
    pub status: Status,
    /// Why it was refused, for a person (empty on success).
    pub message: String,
}

impl QuorumReply {
    pub fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.request)
            .u32(self.status.code())
            .str(&self.message);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<QuorumReply, DecodeError> {
        Ok(QuorumReply {
            request: r.u32("request")?,
            status: Status::from_code(r.u32("status")?).ok_or(DecodeError::BadValue("status"))?,
            message: r.str("message")?.to_owned(),
        })
    }
}

/// What votequorum reports, in order (totem-core's `QuorumEvent`, less the answers and the
/// notices, which travel as `QuorumReply` and log lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumUpdate {
    /// A sync started: the new members, who joined and left since the last activated sync.
    SyncStarted {
        ring_rep: u32,
        ring_seq: u64,
        members: Vec<u32>,
        joined: Vec<u32>,
        left: Vec<u32>,
    },
    /// votequorum's nodelist notification.
    Nodelist {
        ring_rep: u32,
        ring_seq: u64,
        members: Vec<u32>,
    },
    /// The sync finished (the quorum service's nodelist notification).
    SyncActivated {
        ring_rep: u32,
        ring_seq: u64,
        members: Vec<u32>,
        joined: Vec<u32>,
        left: Vec<u32>,
    },
    /// The quorum callback.
    Quorum {
        quorate: bool,
        ring_rep: u32,
        ring_seq: u64,
        members: Vec<u32>,
    },
    /// votequorum's quorum notification: (node, state) of every known node.
    NodeStates {
        quorate: bool,
        nodes: Vec<(u32, u32)>,
    },
    ExpectedVotes(u32),
    /// Persist this expected_votes_tracking barrier.
    EvTrackingBarrier(u32),
}

fn write_sync(w: &mut Writer<'_>, rep: u32, seq: u64, m: &[u32], j: &[u32], l: &[u32]) {
    w.u32(rep).u64(seq);
    put_ids(w, m);
    put_ids(w, j);
    put_ids(w, l);
}

impl QuorumUpdate {
    pub fn write(&self, w: &mut Writer<'_>) {
        match self {
            QuorumUpdate::SyncStarted {
                ring_rep,
                ring_seq,
                members,
                joined,
                left,
            } => {
                w.u8(1);
                write_sync(w, *ring_rep, *ring_seq, members, joined, left);
            }
            QuorumUpdate::Nodelist {
                ring_rep,
                ring_seq,
                members,
            } => {
                w.u8(2).u32(*ring_rep).u64(*ring_seq);
                put_ids(w, members);
            }
            QuorumUpdate::SyncActivated {
                ring_rep,
                ring_seq,
                members,
                joined,
                left,
            } => {
                w.u8(3);
                write_sync(w, *ring_rep, *ring_seq, members, joined, left);
            }
            QuorumUpdate::Quorum {
                quorate,
                ring_rep,
                ring_seq,
                members,
            } => {
                w.u8(4).u8(u8::from(*quorate)).u32(*ring_rep).u64(*ring_seq);
                put_ids(w, members);
            }
            QuorumUpdate::NodeStates { quorate, nodes } => {
                w.u8(5).u8(u8::from(*quorate)).u32(nodes.len() as u32);
                for (id, state) in nodes {
                    w.u32(*id).u32(*state);
                }
            }
            QuorumUpdate::ExpectedVotes(v) => {
                w.u8(6).u32(*v);
            }
            QuorumUpdate::EvTrackingBarrier(v) => {
                w.u8(7).u32(*v);
            }
        }
    }

    pub fn read(r: &mut Reader<'_>) -> Result<QuorumUpdate, DecodeError> {
        Ok(match r.u8("quorum update")? {
            kind @ (1 | 3) => {
                let ring_rep = r.u32("ring id")?;
                let ring_seq = r.u64("ring id")?;
                let members = get_ids(r, "members")?;
                let joined = get_ids(r, "joined")?;
                let left = get_ids(r, "left")?;
                if kind == 1 {
                    QuorumUpdate::SyncStarted {
                        ring_rep,
                        ring_seq,
                        members,
                        joined,
                        left,
                    }
                } else {
                    QuorumUpdate::SyncActivated {
                        ring_rep,
                        ring_seq,
                        members,
                        joined,
                        left,
                    }
                }
            }
            2 => QuorumUpdate::Nodelist {
                ring_rep: r.u32("ring id")?,
                ring_seq: r.u64("ring id")?,
                members: get_ids(r, "members")?,
            },
            4 => QuorumUpdate::Quorum {
                quorate: get_bool(r, "quorate")?,
                ring_rep: r.u32("ring id")?,
                ring_seq: r.u64("ring id")?,
                members: get_ids(r, "members")?,
            },
            5 => {
                let quorate = get_bool(r, "quorate")?;
                let n = r.count(8, "nodes")?;
                if n > NODES_MAX {
                    return Err(DecodeError::BadValue("nodes"));
                }
                let nodes = (0..n)
                    .map(|_| Ok((r.u32("node")?, r.u32("node state")?)))
                    .collect::<Result<_, DecodeError>>()?;
                QuorumUpdate::NodeStates { quorate, nodes }
            }
            6 => QuorumUpdate::ExpectedVotes(r.u32("expected votes")?),
            7 => QuorumUpdate::EvTrackingBarrier(r.u32("ev_tracking barrier")?),
            _ => return Err(DecodeError::BadValue("quorum update")),
        })
    }
}

/// One node as votequorum knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    pub node: u32,
    /// `VOTEQUORUM_NODESTATE_*`.
    pub state: u32,
    pub votes: u32,
    pub expected_votes: u32,
    /// votequorum's node flags (corosync's `NODE_FLAGS_*`).
    pub flags: u32,
}

/// votequorum's state (totem-core's `QuorumState`), sent after every change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumState {
    pub node: u32,
    pub quorate: bool,
    pub quorum: u32,
    pub ring_rep: u32,
    pub ring_seq: u64,
    pub members: Vec<u32>,
    pub nodes: Vec<NodeRecord>,
    pub qdevice_votes: u32,
    pub qdevice_name: String,
    pub two_node: bool,
    pub wait_for_all: bool,
    pub wait_for_all_status: bool,
    pub last_man_standing: bool,
    pub auto_tie_breaker: TieBreakerSetting,
    pub allow_downscale: bool,
    pub expected_votes_tracking: bool,
    pub ev_barrier: u32,
    pub ev_tracking_barrier: u32,
    pub lowest_node_id: Option<u32>,
    pub highest_node_id: Option<u32>,
    pub qdevice_can_operate: bool,
    pub qdevice_master_wins: bool,
}

impl QuorumState {
    pub fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.node)
            .u8(u8::from(self.quorate))
            .u32(self.quorum)
            .u32(self.ring_rep)
            .u64(self.ring_seq);
        put_ids(w, &self.members);
        w.u32(self.nodes.len() as u32);
        for n in &self.nodes {
            w.u32(n.node)
                .u32(n.state)
                .u32(n.votes)
                .u32(n.expected_votes)
                .u32(n.flags);
        }
        w.u32(self.qdevice_votes)
            .str(&self.qdevice_name)
            .u8(u8::from(self.two_node))
            .u8(u8::from(self.wait_for_all))
            .u8(u8::from(self.wait_for_all_status))
            .u8(u8::from(self.last_man_standing));
        match &self.auto_tie_breaker {
            TieBreakerSetting::Off => {
                w.u8(0);
            }
            TieBreakerSetting::Lowest => {
                w.u8(1);
            }
            TieBreakerSetting::Highest => {
                w.u8(2);
            }
            TieBreakerSetting::List(ids) => {
                w.u8(3);
                put_ids(w, ids);
            }
        }
        w.u8(u8::from(self.allow_downscale))
            .u8(u8::from(self.expected_votes_tracking))
            .u32(self.ev_barrier)
            .u32(self.ev_tracking_barrier);
        put_opt(w, self.lowest_node_id);
        put_opt(w, self.highest_node_id);
        w.u8(u8::from(self.qdevice_can_operate))
            .u8(u8::from(self.qdevice_master_wins));
    }

    pub fn read(r: &mut Reader<'_>) -> Result<QuorumState, DecodeError> {
        let node = r.u32("node")?;
        let quorate = get_bool(r, "quorate")?;
        let quorum = r.u32("quorum")?;
        let ring_rep = r.u32("ring id")?;
        let ring_seq = r.u64("ring id")?;
        let members = get_ids(r, "members")?;
        let n = r.count(20, "nodes")?;
        if n > NODES_MAX {
            return Err(DecodeError::BadValue("nodes"));
        }
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(NodeRecord {
                node: r.u32("node")?,
                state: r.u32("node state")?,
                votes: r.u32("votes")?,
                expected_votes: r.u32("expected votes")?,
                flags: r.u32("node flags")?,
            });
        }
        let qdevice_votes = r.u32("qdevice votes")?;
        let qdevice_name = get_name(r, "qdevice name")?;
        let two_node = get_bool(r, "two_node")?;
        let wait_for_all = get_bool(r, "wait_for_all")?;
        let wait_for_all_status = get_bool(r, "wait_for_all status")?;
        let last_man_standing = get_bool(r, "last_man_standing")?;
        let auto_tie_breaker = match r.u8("auto_tie_breaker")? {
            0 => TieBreakerSetting::Off,
            1 => TieBreakerSetting::Lowest,
            2 => TieBreakerSetting::Highest,
            3 => TieBreakerSetting::List(get_ids(r, "auto_tie_breaker_node")?),
            _ => return Err(DecodeError::BadValue("auto_tie_breaker")),
        };
        Ok(QuorumState {
            node,
            quorate,
            quorum,
            ring_rep,
            ring_seq,
            members,
            nodes,
            qdevice_votes,
            qdevice_name,
            two_node,
            wait_for_all,
            wait_for_all_status,
            last_man_standing,
            auto_tie_breaker,
            allow_downscale: get_bool(r, "allow_downscale")?,
            expected_votes_tracking: get_bool(r, "expected_votes_tracking")?,
            ev_barrier: r.u32("ev_barrier")?,
            ev_tracking_barrier: r.u32("ev_tracking barrier")?,
            lowest_node_id: get_opt(r, "lowest node id")?,
            highest_node_id: get_opt(r, "highest node id")?,
            qdevice_can_operate: get_bool(r, "qdevice_can_operate")?,
            qdevice_master_wins: get_bool(r, "qdevice_master_wins")?,
        })
    }
}
