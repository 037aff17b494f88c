//! votequorum records between an application and rotord, with libvotequorum's calls and
//! callbacks: getinfo, setexpected, setvotes, trackstart/trackstop, the quorum device calls
//! (register, unregister, update, poll, master_wins), and the quorum, nodelist and expected
//! votes notifications. Flags and states are corosync's numbers.

use crate::codec::{DecodeError, Reader, Writer};
use crate::Status;

pub const OP_GETINFO: u16 = 0x0601;
pub const OP_SETEXPECTED: u16 = 0x0602;
pub const OP_SETVOTES: u16 = 0x0603;
pub const OP_TRACKSTART: u16 = 0x0604;
pub const OP_TRACKSTOP: u16 = 0x0605;
pub const OP_QDEVICE_REGISTER: u16 = 0x0606;
pub const OP_QDEVICE_UNREGISTER: u16 = 0x0607;
pub const OP_QDEVICE_UPDATE: u16 = 0x0608;
pub const OP_QDEVICE_POLL: u16 = 0x0609;
pub const OP_QDEVICE_MASTER_WINS: u16 = 0x060a;
pub const OP_STATUS: u16 = 0x0681;
pub const OP_INFO: u16 = 0x0682;
pub const OP_QUORUM_NOTIFICATION: u16 = 0x0683;
pub const OP_NODELIST_NOTIFICATION: u16 = 0x0684;
pub const OP_EXPECTEDVOTES_NOTIFICATION: u16 = 0x0685;

/// `votequorum_getinfo` flags (`VOTEQUORUM_INFO_*`).
pub const INFO_TWONODE: u32 = 1;
pub const INFO_QUORATE: u32 = 2;
pub const INFO_WAIT_FOR_ALL: u32 = 4;
pub const INFO_LAST_MAN_STANDING: u32 = 8;
pub const INFO_AUTO_TIE_BREAKER: u32 = 16;
pub const INFO_ALLOW_DOWNSCALE: u32 = 32;
pub const INFO_QDEVICE_REGISTERED: u32 = 64;
pub const INFO_QDEVICE_ALIVE: u32 = 128;
pub const INFO_QDEVICE_CAST_VOTE: u32 = 256;
pub const INFO_QDEVICE_MASTER_WINS: u32 = 512;

/// `VOTEQUORUM_NODESTATE_*`.
pub const NODESTATE_MEMBER: u32 = 1;
pub const NODESTATE_DEAD: u32 = 2;
pub const NODESTATE_LEAVING: u32 = 3;

/// The quorum device's node id (`VOTEQUORUM_QDEVICE_NODEID`).
pub const QDEVICE_NODEID: u32 = 0;
/// Longest quorum device name, terminator included (`VOTEQUORUM_QDEVICE_MAX_NAME_LEN`).
pub const QDEVICE_NAME_MAX: usize = 255;
/// Most nodes one notification carries (all known nodes and the device).
pub const NODES_MAX: usize = 2 * 384 + 1;

/// The ring id the quorum device polls with (`votequorum_ring_id_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingId {
    pub nodeid: u32,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// Node 0: this node.
    GetInfo {
        node: u32,
    },
    SetExpected {
        expected_votes: u32,
    },
    SetVotes {
        node: u32,
        votes: u32,
    },
    TrackStart {
        context: u64,
        flags: u32,
    },
    TrackStop,
    QdeviceRegister {
        name: &'a str,
    },
    QdeviceUnregister {
        name: &'a str,
    },
    QdeviceUpdate {
        old: &'a str,
        new: &'a str,
    },
    QdevicePoll {
        name: &'a str,
        cast_vote: bool,
        ring: RingId,
    },
    QdeviceMasterWins {
        name: &'a str,
        allow: bool,
    },
}

/// A name that fits corosync's fixed buffer: shorter than `QDEVICE_NAME_MAX` bytes.
fn get_name<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, DecodeError> {
    let name = r.str(what)?;
    if name.len() >= QDEVICE_NAME_MAX {
        return Err(DecodeError::BadValue(what));
    }
    Ok(name)
}

fn get_bool(r: &mut Reader<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match r.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::BadValue(what)),
    }
}

impl<'a> Request<'a> {
    pub fn encode(&self, req_id: u32, out: &mut Vec<u8>) {
        match *self {
            Request::GetInfo { node } => {
                Writer::new(out, OP_GETINFO, req_id).u32(node);
            }
            Request::SetExpected { expected_votes } => {
                Writer::new(out, OP_SETEXPECTED, req_id).u32(expected_votes);
            }
            Request::SetVotes { node, votes } => {
                Writer::new(out, OP_SETVOTES, req_id).u32(node).u32(votes);
            }
            Request::TrackStart { context, flags } => {
                Writer::new(out, OP_TRACKSTART, req_id)
                    .u64(context)
                    .u32(flags);
            }
            Request::TrackStop => {
                Writer::new(out, OP_TRACKSTOP, req_id);
            }
            Request::QdeviceRegister { name } => {
                Writer::new(out, OP_QDEVICE_REGISTER, req_id).str(name);
            }
            Request::QdeviceUnregister { name } => {
                Writer::new(out, OP_QDEVICE_UNREGISTER, req_id).str(name);
            }
            Request::QdeviceUpdate { old, new } => {
                Writer::new(out, OP_QDEVICE_UPDATE, req_id)
                    .str(old)
                    .str(new);
            }
            Request::QdevicePoll {
                name,
                cast_vote,
                ring,
            } => {
                Writer::new(out, OP_QDEVICE_POLL, req_id)
                    .str(name)
                    .u8(u8::from(cast_vote))
                    .u32(ring.nodeid)
                    .u64(ring.seq);
            }
            Request::QdeviceMasterWins { name, allow } => {
                Writer::new(out, OP_QDEVICE_MASTER_WINS, req_id)
                    .str(name)
                    .u8(u8::from(allow));
            }
        }
    }

    pub fn decode(buf: &'a [u8]) -> Result<(u32, Request<'a>), DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let req = match env.op {
            OP_GETINFO => Request::GetInfo {
                node: r.u32("node")?,
            },
            OP_SETEXPECTED => Request::SetExpected {
                expected_votes: r.u32("expected votes")?,
            },
            OP_SETVOTES => Request::SetVotes {
                node: r.u32("node")?,
                votes: r.u32("votes")?,
            },
            OP_TRACKSTART => Request::TrackStart {
                context: r.u64("context")?,
                flags: r.u32("track flags")?,
            },
            OP_TRACKSTOP => Request::TrackStop,
            OP_QDEVICE_REGISTER => Request::QdeviceRegister {
                name: get_name(&mut r, "qdevice name")?,
            },
            OP_QDEVICE_UNREGISTER => Request::QdeviceUnregister {
                name: get_name(&mut r, "qdevice name")?,
            },
            OP_QDEVICE_UPDATE => Request::QdeviceUpdate {
                old: get_name(&mut r, "qdevice name")?,
                new: get_name(&mut r, "qdevice name")?,
            },
            OP_QDEVICE_POLL => Request::QdevicePoll {
                name: get_name(&mut r, "qdevice name")?,
                cast_vote: get_bool(&mut r, "cast vote")?,
                ring: RingId {
                    nodeid: r.u32("ring id")?,
                    seq: r.u64("ring id")?,
                },
            },
            OP_QDEVICE_MASTER_WINS => Request::QdeviceMasterWins {
                name: get_name(&mut r, "qdevice name")?,
                allow: get_bool(&mut r, "allow")?,
            },
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok((env.req_id, req))
    }
}

/// What `votequorum_getinfo` answers (`struct votequorum_info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub node_id: u32,
    pub node_state: u32,
    pub node_votes: u32,
    pub node_expected_votes: u32,
    pub highest_expected: u32,
    pub total_votes: u32,
    pub quorum: u32,
    /// `INFO_*`.
    pub flags: u32,
    pub qdevice_votes: u32,
    pub qdevice_name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The answer to a request without data; `message` says why it was refused, for a person.
    Status {
        req_id: u32,
        status: Status,
        message: String,
    },
    /// The answer to GetInfo (`info` is meaningful with `Status::Ok`).
    Info {
        req_id: u32,
        status: Status,
        info: Info,
    },
    /// Quorum changed: every known node with its state (`NODESTATE_*`; the device, node 0,
    /// with 0).
    Quorum {
        context: u64,
        quorate: bool,
        nodes: Vec<(u32, u32)>,
    },
    /// A membership was synced: its ring and members.
    Nodelist {
        context: u64,
        ring: RingId,
        nodes: Vec<u32>,
    },
    ExpectedVotes {
        context: u64,
        expected_votes: u32,
    },
}

impl Event {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Event::Status {
                req_id,
                status,
                message,
            } => {
                Writer::new(out, OP_STATUS, *req_id)
                    .u32(status.code())
                    .str(message);
            }
            Event::Info {
                req_id,
                status,
                info,
            } => {
                Writer::new(out, OP_INFO, *req_id)
                    .u32(status.code())
                    .u32(info.node_id)
                    .u32(info.node_state)
                    .u32(info.node_votes)
                    .u32(info.node_expected_votes)
                    .u32(info.highest_expected)
                    .u32(info.total_votes)
                    .u32(info.quorum)
                    .u32(info.flags)
                    .u32(info.qdevice_votes)
                    .str(&info.qdevice_name);
            }
            Event::Quorum {
                context,
                quorate,
                nodes,
            } => {
                let mut w = Writer::new(out, OP_QUORUM_NOTIFICATION, 0);
                w.u64(*context)
                    .u8(u8::from(*quorate))
                    .u32(nodes.len() as u32);
                for (id, state) in nodes {
                    w.u32(*id).u32(*state);
                }
            }
            Event::Nodelist {
                context,
                ring,
                nodes,
            } => {
                let mut w = Writer::new(out, OP_NODELIST_NOTIFICATION, 0);
                w.u64(*context)
                    .u32(ring.nodeid)
                    .u64(ring.seq)
                    .u32(nodes.len() as u32);
                for id in nodes {
                    w.u32(*id);
                }
            }
            Event::ExpectedVotes {
                context,
                expected_votes,
            } => {
                Writer::new(out, OP_EXPECTEDVOTES_NOTIFICATION, 0)
                    .u64(*context)
                    .u32(*expected_votes);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let status = |r: &mut Reader<'_>| {
            Status::from_code(r.u32("status")?).ok_or(DecodeError::BadValue("status"))
        };
        let ev = match env.op {
            OP_STATUS => Event::Status {
                req_id: env.req_id,
                status: status(&mut r)?,
                message: r.str("message")?.to_owned(),
            },
            OP_INFO => Event::Info {
                req_id: env.req_id,
                status: status(&mut r)?,
                info: Info {
                    node_id: r.u32("node")?,
                    node_state: r.u32("node state")?,
                    node_votes: r.u32("votes")?,
                    node_expected_votes: r.u32("expected votes")?,
                    highest_expected: r.u32("highest expected")?,
                    total_votes: r.u32("total votes")?,
                    quorum: r.u32("quorum")?,
                    flags: r.u32("flags")?,
                    qdevice_votes: r.u32("qdevice votes")?,
                    qdevice_name: get_name(&mut r, "qdevice name")?.to_owned(),
                },
            },
            OP_QUORUM_NOTIFICATION => {
                let context = r.u64("context")?;
                let quorate = get_bool(&mut r, "quorate")?;
                let n = r.count(8, "nodes")?;
                if n > NODES_MAX {
                    return Err(DecodeError::BadValue("nodes"));
                }
                let nodes = (0..n)
                    .map(|_| Ok((r.u32("node")?, r.u32("node state")?)))
                    .collect::<Result<_, DecodeError>>()?;
                Event::Quorum {
                    context,
                    quorate,
                    nodes,
                }
            }
            OP_NODELIST_NOTIFICATION => {
                let context = r.u64("context")?;
                let ring = RingId {
                    nodeid: r.u32("ring id")?,
                    seq: r.u64("ring id")?,
                };
                let n = r.count(4, "nodes")?;
                if n > NODES_MAX {
                    return Err(DecodeError::BadValue("nodes"));
                }
                let nodes = (0..n).map(|_| r.u32("node")).collect::<Result<_, _>>()?;
                Event::Nodelist {
                    context,
                    ring,
                    nodes,
                }
            }
            OP_EXPECTEDVOTES_NOTIFICATION => Event::ExpectedVotes {
                context: r.u64("context")?,
                expected_votes: r.u32("expected votes")?,
            },
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok(ev)
    }
}

/// Whether `record` is the reply to `req_id`.
pub fn is_reply(record: &[u8], req_id: u32) -> bool {
    record.len() >= 8
        && matches!(
            u16::from_le_bytes([record[0], record[1]]),
            OP_STATUS | OP_INFO
        )
        && u32::from_le_bytes([record[4], record[5], record[6], record[7]]) == req_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_is_an_error() {
        let mut buf = Vec::new();
        let ring = RingId { nodeid: 1, seq: 8 };
        for req in [
            Request::GetInfo { node: 0 },
            Request::SetExpected { expected_votes: 3 },
            Request::SetVotes { node: 2, votes: 5 },
            Request::TrackStart {
                context: u64::MAX,
                flags: 2,
            },
            Request::TrackStop,
            Request::QdeviceRegister { name: "Qdevice" },
            Request::QdeviceUnregister { name: "Qdevice" },
            Request::QdeviceUpdate {
                old: "Qdevice",
                new: "Other",
            },
            Request::QdevicePoll {
                name: "Qdevice",
                cast_vote: true,
                ring,
            },
            Request::QdeviceMasterWins {
                name: "Qdevice",
                allow: false,
            },
        ] {
            req.encode(7, &mut buf);
            assert_eq!(Request::decode(&buf).unwrap(), (7, req.clone()));
            for cut in 0..buf.len() {
                assert!(Request::decode(&buf[..cut]).is_err());
            }
        }
        for ev in [
            Event::Status {
                req_id: 1,
                status: Status::InvalidParam,
                message: "expected votes 2 is lower than the 3 votes present".into(),
            },
            Event::Info {
                req_id: 2,
                status: Status::Ok,
                info: Info {
                    node_id: 1,
                    node_state: NODESTATE_MEMBER,
                    node_votes: 1,
                    node_expected_votes: 3,
                    highest_expected: 3,
                    total_votes: 3,
                    quorum: 2,
                    flags: INFO_QUORATE,
                    qdevice_votes: 0,
                    qdevice_name: String::new(),
                },
            },
            Event::Quorum {
                context: 5,
                quorate: false,
                nodes: vec![(1, NODESTATE_MEMBER), (2, NODESTATE_DEAD)],
            },
            Event::Nodelist {
                context: 5,
                ring,
                nodes: vec![1, 3],
            },
            Event::ExpectedVotes {
                context: 5,
                expected_votes: 4,
            },
        ] {
            ev.encode(&mut buf);
            assert_eq!(Event::decode(&buf).unwrap(), ev);
            for cut in 0..buf.len() {
                assert!(Event::decode(&buf[..cut]).is_err());
            }
        }
    }

    #[test]
    fn names_longer_than_corosyncs_buffer_are_refused() {
        let mut buf = Vec::new();
        let long = "q".repeat(QDEVICE_NAME_MAX);
        Request::QdeviceRegister { name: &long }.encode(1, &mut buf);
        assert_eq!(
            Request::decode(&buf),
            Err(DecodeError::BadValue("qdevice name"))
        );
        let mut buf = Vec::new();
        Request::QdeviceMasterWins {
            name: "q",
            allow: true,
        }
        .encode(1, &mut buf);
        let last = buf.len() - 1;
        buf[last] = 7;
        assert_eq!(Request::decode(&buf), Err(DecodeError::BadValue("allow")));
    }
}
