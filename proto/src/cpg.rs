//! CPG records between an application and the dataplane. One session is one libcpg handle:
//! it joins at most one group at a time, as in corosync.
//!
//! Application → dataplane: `Join`, `Leave`, `Mcast` (no reply on success: a multicast pushed
//! into the ring is the dataplane's to deliver; refusals come back as a `Reply` with the
//! request id), `Membership`, `Groups`. Dataplane → application: `Welcome` once on attach,
//! `Reply`, and in delivery order `Deliver`, `ConfChg` and `TotemConfChg`. A session the node
//! cannot serve gets, from rotord, a `Reply` to [`REFUSED_REQ_ID`] in place of the `Welcome`
//! and is closed.

use crate::codec::{DecodeError, Reader, Writer};
use crate::Status;

pub const OP_JOIN: u16 = 0x0101;
pub const OP_LEAVE: u16 = 0x0102;
pub const OP_MCAST: u16 = 0x0103;
pub const OP_MEMBERSHIP: u16 = 0x0104;
pub const OP_GROUPS: u16 = 0x0105;
pub const OP_WELCOME: u16 = 0x0181;
pub const OP_REPLY: u16 = 0x0182;
pub const OP_DELIVER: u16 = 0x0183;
pub const OP_CONFCHG: u16 = 0x0184;
pub const OP_TOTEM_CONFCHG: u16 = 0x0185;

/// The request id of a `Reply` that comes first, in place of the `Welcome`: the node refused
/// the session (its status says why — `TryAgain` while the dataplane is not serving, as during
/// a restart). No request has this id: clients number theirs from 1 and skip 0.
pub const REFUSED_REQ_ID: u32 = 0;

/// Longest group name (libcpg's `CPG_MAX_NAME_LENGTH`).
pub const GROUP_NAME_MAX: usize = 128;

/// `Join` flag: right after the join's reply, send this session a `TotemConfChg` of the
/// current ring (libcpg's `CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF`, the same bit).
pub const JOIN_INITIAL_TOTEM_CONF: u32 = 0x01;
/// Every `Join` flag this version knows; a request with another bit is refused.
pub const JOIN_FLAGS_KNOWN: u32 = JOIN_INITIAL_TOTEM_CONF;

/// AGREED or SAFE (libcpg's `CPG_TYPE_AGREED`, `CPG_TYPE_SAFE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guarantee {
    Agreed,
    Safe,
}

impl Guarantee {
    fn code(self) -> u8 {
        match self {
            Guarantee::Agreed => 1,
            Guarantee::Safe => 2,
        }
    }
    #[inline]
    fn from_code(c: u8) -> Result<Guarantee, DecodeError> {
        match c {
            1 => Ok(Guarantee::Agreed),
            2 => Ok(Guarantee::Safe),
            _ => Err(DecodeError::BadValue("guarantee")),
        }
    }
}

/// A process of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    pub node: u32,
    pub pid: u32,
}

/// Why a process joined or left (libcpg's `CPG_REASON_*` numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Join,
    Leave,
    NodeDown,
    NodeUp,
    ProcDown,
}

impl Reason {
    pub fn code(self) -> u8 {
        match self {
            Reason::Join => 1,
            Reason::Leave => 2,
            Reason::NodeDown => 3,
            Reason::NodeUp => 4,
            Reason::ProcDown => 5,
        }
    }
    fn from_code(c: u8) -> Result<Reason, DecodeError> {
        Ok(match c {
            1 => Reason::Join,
            2 => Reason::Leave,
            3 => Reason::NodeDown,
            4 => Reason::NodeUp,
            5 => Reason::ProcDown,
            _ => return Err(DecodeError::BadValue("reason")),
        })
    }
    /// Lower-case words as corosync-cpgtool and the logs print them.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Join => "join",
            Reason::Leave => "leave",
            Reason::NodeDown => "node down",
            Reason::NodeUp => "node up",
            Reason::ProcDown => "process down",
        }
    }
}

/// A request from an application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Join {
        group: &'a [u8],
        /// `JOIN_*` bits.
        flags: u32,
    },
    Leave {
        group: &'a [u8],
    },
    Mcast {
        guarantee: Guarantee,
        data: &'a [u8],
    },
    /// The current members of a group.
    Membership {
        group: &'a [u8],
    },
    /// Every group known to the node, with its members.
    Groups,
}

impl Request<'_> {
    pub fn encode(&self, req_id: u32, out: &mut Vec<u8>) {
        match *self {
            Request::Join { group, flags } => {
                Writer::new(out, OP_JOIN, req_id).bytes(group).u32(flags);
            }
            Request::Leave { group } => {
                Writer::new(out, OP_LEAVE, req_id).bytes(group);
            }
            Request::Mcast { guarantee, data } => {
                Request::encode_mcast_head(req_id, guarantee, data.len(), out);
                out.extend_from_slice(data);
            }
            Request::Membership { group } => {
                Writer::new(out, OP_MEMBERSHIP, req_id).bytes(group);
            }
            Request::Groups => {
                Writer::new(out, OP_GROUPS, req_id);
            }
        }
    }

    /// A `Mcast` record but its data, which follows it: the client writes head and data
    /// straight into its ring as one record, without first copying the data into a buffer.
    pub fn encode_mcast_head(
        req_id: u32,
        guarantee: Guarantee,
        data_len: usize,
        out: &mut Vec<u8>,
    ) {
        Writer::new(out, OP_MCAST, req_id)
            .u8(guarantee.code())
            .bytes_len(data_len);
    }

    /// Decodes a request, returning it with its request id.
    pub fn decode(buf: &[u8]) -> Result<(u32, Request<'_>), DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let req = match env.op {
            OP_JOIN => Request::Join {
                group: group(&mut r)?,
                flags: match r.u32("join flags")? {
                    f if f & !JOIN_FLAGS_KNOWN == 0 => f,
                    _ => return Err(DecodeError::BadValue("join flags")),
                },
            },
            OP_LEAVE => Request::Leave {
                group: group(&mut r)?,
            },
            OP_MCAST => Request::Mcast {
                guarantee: Guarantee::from_code(r.u8("guarantee")?)?,
                data: r.bytes("data")?,
            },
            OP_MEMBERSHIP => Request::Membership {
                group: group(&mut r)?,
            },
            OP_GROUPS => Request::Groups,
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok((env.req_id, req))
    }
}

fn group<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let g = r.bytes("group")?;
    if g.is_empty() || g.len() > GROUP_NAME_MAX {
        return Err(DecodeError::BadValue("group name length"));
    }
    Ok(g)
}

fn members(w: &mut Writer<'_>, list: &[Member]) {
    w.u32(list.len() as u32);
    for m in list {
        w.u32(m.node).u32(m.pid);
    }
}

fn read_members(r: &mut Reader<'_>) -> Result<Vec<Member>, DecodeError> {
    let n = r.count(8, "members")?;
    (0..n)
        .map(|_| {
            Ok(Member {
                node: r.u32("member")?,
                pid: r.u32("member")?,
            })
        })
        .collect()
}

fn changes(w: &mut Writer<'_>, list: &[(Member, Reason)]) {
    w.u32(list.len() as u32);
    for (m, why) in list {
        w.u32(m.node).u32(m.pid).u8(why.code());
    }
}

fn read_changes(r: &mut Reader<'_>) -> Result<Vec<(Member, Reason)>, DecodeError> {
    let n = r.count(9, "changes")?;
    (0..n)
        .map(|_| {
            let node = r.u32("change")?;
            let pid = r.u32("change")?;
            Ok((Member { node, pid }, Reason::from_code(r.u8("reason")?)?))
        })
        .collect()
}

/// What the dataplane tells an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Sent once when the session starts.
    Welcome {
        node_id: u32,
        /// Largest message `Mcast` accepts.
        message_size_max: u32,
    },
    /// The answer to request `req_id` (the envelope's id).
    Reply {
        req_id: u32,
        status: Status,
        /// For `Membership`: the members; empty otherwise.
        members: Vec<Member>,
        /// For `Groups`: every group and its members.
        groups: Vec<(&'a [u8], Vec<Member>)>,
    },
    Deliver {
        guarantee: Guarantee,
        sender: Member,
        group: &'a [u8],
        data: &'a [u8],
    },
    ConfChg {
        group: &'a [u8],
        members: Vec<Member>,
        joined: Vec<(Member, Reason)>,
        left: Vec<(Member, Reason)>,
    },
    /// The totem ring changed (libcpg's totem confchg callback): regular configurations only.
    TotemConfChg {
        ring_rep: u32,
        ring_seq: u64,
        members: Vec<u32>,
    },
}

/// The fields of an [`Event::Deliver`], read without building the whole event: a reader of
/// deliveries (libcpg's dispatch) takes this small value instead of moving the large enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub guarantee: Guarantee,
    pub sender: Member,
    pub group: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> Delivery<'a> {
    /// The delivery `buf` holds, or `None` for any other event (decode it with
    /// [`Event::decode`]).
    #[inline]
    pub fn decode(buf: &'a [u8]) -> Result<Option<Delivery<'a>>, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        if env.op != OP_DELIVER {
            return Ok(None);
        }
        Delivery::read(&mut r).map(Some)
    }

    #[inline]
    fn read(r: &mut Reader<'a>) -> Result<Delivery<'a>, DecodeError> {
        Ok(Delivery {
            guarantee: Guarantee::from_code(r.u8("guarantee")?)?,
            sender: Member {
                node: r.u32("sender")?,
                pid: r.u32("sender")?,
            },
            group: r.bytes("group")?,
            data: r.bytes("data")?,
        })
    }
}

impl Event<'_> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Event::Welcome {
                node_id,
                message_size_max,
            } => {
                Writer::new(out, OP_WELCOME, 0)
                    .u32(*node_id)
                    .u32(*message_size_max);
            }
            Event::Reply {
                req_id,
                status,
                members: list,
                groups,
            } => {
                let mut w = Writer::new(out, OP_REPLY, *req_id);
                w.u32(status.code());
                members(&mut w, list);
                w.u32(groups.len() as u32);
                for (g, list) in groups {
                    w.bytes(g);
                    members(&mut w, list);
                }
            }
            Event::Deliver {
                guarantee,
                sender,
                group,
                data,
            } => encode_deliver(*guarantee, *sender, group, data, out),
            Event::ConfChg {
                group,
                members: list,
                joined,
                left,
            } => {
                let mut w = Writer::new(out, OP_CONFCHG, 0);
                w.bytes(group);
                members(&mut w, list);
                changes(&mut w, joined);
                changes(&mut w, left);
            }
            Event::TotemConfChg {
                ring_rep,
                ring_seq,
                members: list,
            } => {
                let mut w = Writer::new(out, OP_TOTEM_CONFCHG, 0);
                w.u32(*ring_rep).u64(*ring_seq).u32(list.len() as u32);
                for n in list {
                    w.u32(*n);
                }
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Event<'_>, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let ev = match env.op {
            OP_WELCOME => Event::Welcome {
                node_id: r.u32("node id")?,
                message_size_max: r.u32("message size")?,
            },
            OP_REPLY => {
                let status =
                    Status::from_code(r.u32("status")?).ok_or(DecodeError::BadValue("status"))?;
                let list = read_members(&mut r)?;
                let n = r.count(8, "groups")?;
                let mut groups = Vec::with_capacity(n);
                for _ in 0..n {
                    let g = r.bytes("group")?;
                    groups.push((g, read_members(&mut r)?));
                }
                Event::Reply {
                    req_id: env.req_id,
                    status,
                    members: list,
                    groups,
                }
            }
            OP_DELIVER => {
                let d = Delivery::read(&mut r)?;
                Event::Deliver {
                    guarantee: d.guarantee,
                    sender: d.sender,
                    group: d.group,
                    data: d.data,
                }
            }
            OP_CONFCHG => Event::ConfChg {
                group: r.bytes("group")?,
                members: read_members(&mut r)?,
                joined: read_changes(&mut r)?,
                left: read_changes(&mut r)?,
            },
            OP_TOTEM_CONFCHG => {
                let ring_rep = r.u32("ring")?;
                let ring_seq = r.u64("ring")?;
                let n = r.count(4, "members")?;
                let members = (0..n).map(|_| r.u32("member")).collect::<Result<_, _>>()?;
                Event::TotemConfChg {
                    ring_rep,
                    ring_seq,
                    members,
                }
            }
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok(ev)
    }
}

/// Encodes a delivery without building an `Event`: its [`DeliverHeader`], then the data.
pub fn encode_deliver(
    guarantee: Guarantee,
    sender: Member,
    group: &[u8],
    data: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    out.extend_from_slice(DeliverHeader::new(guarantee, sender, group, data.len()).as_bytes());
    out.extend_from_slice(data);
}

/// Bytes a delivery record takes beyond the group name and the data.
pub const DELIVER_OVERHEAD: usize = crate::codec::ENVELOPE_LEN + 1 + 8 + 4 + 4;
/// Longest [`DeliverHeader`]: the overhead and a group name of `GROUP_NAME_MAX` bytes.
pub const DELIVER_HEADER_MAX: usize = DELIVER_OVERHEAD + GROUP_NAME_MAX;

/// The bytes of a `Deliver` record in front of its data: envelope (`OP_DELIVER`, request id 0),
/// guarantee u8, sender node u32 and pid u32, group length u32 and name, data length u32 — all
/// little-endian, exactly what [`Event::encode`] writes. Built on the stack, so the dataplane
/// writes the header and the data, borrowed where it lies, straight into a client's ring as two
/// parts of one record (`ipc_shm::Session::try_send_parts`), with no intermediate buffer.
#[derive(Clone, Copy)]
pub struct DeliverHeader {
    bytes: [u8; DELIVER_HEADER_MAX],
    len: usize,
}

impl DeliverHeader {
    /// The header of a delivery of `data_len` bytes. Group names are at most
    /// [`GROUP_NAME_MAX`] bytes (the dataplane's come from totem-core, which enforces it) and
    /// data at most `u32::MAX`; anything longer is a bug of the caller and panics.
    pub fn new(guarantee: Guarantee, sender: Member, group: &[u8], data_len: usize) -> Self {
        assert!(group.len() <= GROUP_NAME_MAX, "group name too long");
        let data_len = u32::try_from(data_len).expect("delivery data fits a u32 length");
        let mut bytes = [0u8; DELIVER_HEADER_MAX];
        let mut at = 0;
        let mut put = |field: &[u8]| {
            bytes[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        };
        put(&OP_DELIVER.to_le_bytes());
        put(&0u16.to_le_bytes());
        put(&0u32.to_le_bytes());
        put(&[guarantee.code()]);
        put(&sender.node.to_le_bytes());
        put(&sender.pid.to_le_bytes());
        put(&(group.len() as u32).to_le_bytes());
        put(group);
        put(&data_len.to_le_bytes());
        DeliverHeader { bytes, len: at }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let mut buf = Vec::new();
        for req in [
            Request::Join {
                group: b"g",
                flags: JOIN_INITIAL_TOTEM_CONF,
            },
            Request::Leave { group: b"g" },
            Request::Mcast {
                guarantee: Guarantee::Safe,
                data: b"xyz",
            },
            Request::Membership { group: b"grp" },
            Request::Groups,
        ] {
            req.encode(9, &mut buf);
            assert_eq!(Request::decode(&buf).unwrap(), (9, req));
            for cut in 0..buf.len() {
                assert!(Request::decode(&buf[..cut]).is_err());
            }
        }
    }

    /// The gathered form (head, then the data from elsewhere) is the same record.
    #[test]
    fn a_mcast_head_and_its_data_are_a_mcast_record() {
        let mut head = Vec::new();
        Request::encode_mcast_head(7, Guarantee::Agreed, 5, &mut head);
        head.extend_from_slice(b"hello");
        assert_eq!(
            Request::decode(&head).unwrap(),
            (
                7,
                Request::Mcast {
                    guarantee: Guarantee::Agreed,
                    data: b"hello"
                }
            )
        );
    }

    #[test]
    fn events_round_trip() {
        let m = Member { node: 1, pid: 2 };
        let mut buf = Vec::new();
        for ev in [
            Event::Welcome {
                node_id: 3,
                message_size_max: 1 << 20,
            },
            Event::Reply {
                req_id: 5,
                status: Status::Exist,
                members: vec![m],
                groups: vec![(b"a".as_slice(), vec![m, m])],
            },
            Event::Deliver {
                guarantee: Guarantee::Agreed,
                sender: m,
                group: b"g",
                data: b"data",
            },
            Event::ConfChg {
                group: b"g",
                members: vec![m],
                joined: vec![(m, Reason::Join)],
                left: vec![(m, Reason::ProcDown)],
            },
            Event::TotemConfChg {
                ring_rep: 1,
                ring_seq: 8,
                members: vec![1, 2, 3],
            },
        ] {
            ev.encode(&mut buf);
            assert_eq!(Event::decode(&buf).unwrap(), ev);
            for cut in 0..buf.len() {
                assert!(Event::decode(&buf[..cut]).is_err(), "{ev:?} cut {cut}");
            }
        }
    }

    /// The `Deliver` layout as `Writer` builds it field by field: the ABI the header must keep.
    fn deliver_by_fields(
        guarantee: Guarantee,
        sender: Member,
        group: &[u8],
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        Writer::new(&mut out, OP_DELIVER, 0)
            .u8(guarantee.code())
            .u32(sender.node)
            .u32(sender.pid)
            .bytes(group)
            .bytes(data);
        out
    }

    #[test]
    fn deliver_header_then_data_is_the_deliver_record() {
        let long = [b'n'; GROUP_NAME_MAX];
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        for (i, group) in [&b"g"[..], b"group-7", &long].into_iter().enumerate() {
            for len in [0, 1, 56, 64, 4096, 70_000] {
                let guarantee = [Guarantee::Agreed, Guarantee::Safe][i % 2];
                let sender = Member {
                    node: 0x0102_0304 + i as u32,
                    pid: 0xa0b0_c0d0,
                };
                let data = &data[..len];
                let expected = deliver_by_fields(guarantee, sender, group, data);
                let header = DeliverHeader::new(guarantee, sender, group, len);
                assert_eq!(header.as_bytes().len(), DELIVER_OVERHEAD + group.len());
                assert_eq!([header.as_bytes(), data].concat(), expected);
                let mut out = vec![9; 3];
                encode_deliver(guarantee, sender, group, data, &mut out);
                assert_eq!(out, expected);
                let event = Event::Deliver {
                    guarantee,
                    sender,
                    group,
                    data,
                };
                event.encode(&mut out);
                assert_eq!(out, expected);
                assert_eq!(Event::decode(&out).unwrap(), event);
                let d = Delivery::decode(&out).unwrap().expect("a delivery");
                assert_eq!(
                    (d.guarantee, d.sender, d.group, d.data),
                    (guarantee, sender, group, data)
                );
            }
        }
    }

    #[test]
    fn a_delivery_alone_is_read_as_event_decode_reads_it_and_no_other_event_is() {
        let mut buf = Vec::new();
        let event = Event::Deliver {
            guarantee: Guarantee::Safe,
            sender: Member { node: 4, pid: 99 },
            group: b"grp",
            data: b"payload",
        };
        event.encode(&mut buf);
        for cut in 0..buf.len() {
            assert_eq!(
                Delivery::decode(&buf[..cut]).is_err(),
                Event::decode(&buf[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let confchg = Event::ConfChg {
            group: b"grp",
            members: vec![Member { node: 1, pid: 2 }],
            joined: Vec::new(),
            left: Vec::new(),
        };
        confchg.encode(&mut buf);
        assert_eq!(Delivery::decode(&buf).unwrap(), None);
    }

    #[test]
    fn bad_group_names_are_refused() {
        let mut buf = Vec::new();
        Request::Join {
            group: b"",
            flags: 0,
        }
        .encode(1, &mut buf);
        assert!(Request::decode(&buf).is_err());
        let long = [b'x'; GROUP_NAME_MAX + 1];
        Request::Join {
            group: &long,
            flags: 0,
        }
        .encode(1, &mut buf);
        assert!(Request::decode(&buf).is_err());
        Request::Join {
            group: b"g",
            flags: 0x80,
        }
        .encode(1, &mut buf);
        assert!(Request::decode(&buf).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut buf = Vec::new();
        for i in 0..20_000 {
            buf.clear();
            let len = i % 64;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            if len >= 2 {
                let op = [OP_JOIN, OP_MCAST, OP_REPLY, OP_CONFCHG, OP_TOTEM_CONFCHG][i % 5];
                buf[..2].copy_from_slice(&op.to_le_bytes());
            }
            let _ = Request::decode(&buf);
            let _ = Event::decode(&buf);
        }
    }
}
