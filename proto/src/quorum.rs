//! Quorum service records between an application and rotord, with libquorum's calls and
//! callbacks (`quorum_getquorate`, `quorum_trackstart`/`trackstop`, `quorum_gettype`, the
//! model v0 and v1 notifications): rotord answers from the quorum state the dataplane reports.

use crate::codec::{DecodeError, Reader, Writer};
use crate::Status;

pub const OP_GETQUORATE: u16 = 0x0501;
pub const OP_TRACKSTART: u16 = 0x0502;
pub const OP_TRACKSTOP: u16 = 0x0503;
pub const OP_GETTYPE: u16 = 0x0504;
pub const OP_MODEL_GETTYPE: u16 = 0x0505;
pub const OP_REPLY: u16 = 0x0581;
pub const OP_QUORUM_NOTIFICATION: u16 = 0x0582;
pub const OP_NODELIST_NOTIFICATION: u16 = 0x0583;

/// `CS_TRACK_CURRENT`: send the current state at once.
pub const TRACK_CURRENT: u32 = 0x01;
/// `CS_TRACK_CHANGES`: the current state, then every change.
pub const TRACK_CHANGES: u32 = 0x02;
/// `CS_TRACK_CHANGES_ONLY`: every change from now on.
pub const TRACK_CHANGES_ONLY: u32 = 0x04;

/// `QUORUM_FREE`: no quorum provider, always quorate.
pub const QUORUM_FREE: u32 = 0;
/// `QUORUM_SET`: a provider (votequorum) decides.
pub const QUORUM_SET: u32 = 1;

/// Most node ids one notification carries (corosync's `PROCESSOR_COUNT_MAX`, for each list).
pub const NODES_MAX: usize = 384;

/// libquorum's models (`quorum_model_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Quorum notifications with the ring sequence only.
    V0,
    /// Quorum notifications with the ring id, and nodelist notifications.
    V1,
}

impl Model {
    pub fn code(self) -> u32 {
        match self {
            Model::V0 => 0,
            Model::V1 => 1,
        }
    }

    pub fn from_code(code: u32) -> Option<Model> {
        match code {
            0 => Some(Model::V0),
            1 => Some(Model::V1),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    GetQuorate,
    TrackStart {
        flags: u32,
    },
    TrackStop,
    GetType,
    /// Chooses the notification model of this connection (`quorum_model_initialize`);
    /// answered with the quorum type. The code is passed through so that rotord can refuse
    /// a model it does not know with CS_ERR_INVALID_PARAM, as corosync does.
    ModelGetType {
        model: u32,
    },
}

impl Request {
    pub fn encode(&self, req_id: u32, out: &mut Vec<u8>) {
        match *self {
            Request::GetQuorate => {
                Writer::new(out, OP_GETQUORATE, req_id);
            }
            Request::TrackStart { flags } => {
                Writer::new(out, OP_TRACKSTART, req_id).u32(flags);
            }
            Request::TrackStop => {
                Writer::new(out, OP_TRACKSTOP, req_id);
            }
            Request::GetType => {
                Writer::new(out, OP_GETTYPE, req_id);
            }
            Request::ModelGetType { model } => {
                Writer::new(out, OP_MODEL_GETTYPE, req_id).u32(model);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<(u32, Request), DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let req = match env.op {
            OP_GETQUORATE => Request::GetQuorate,
            OP_TRACKSTART => Request::TrackStart {
                flags: r.u32("track flags")?,
            },
            OP_TRACKSTOP => Request::TrackStop,
            OP_GETTYPE => Request::GetType,
            OP_MODEL_GETTYPE => Request::ModelGetType {
                model: r.u32("model")?,
            },
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok((env.req_id, req))
    }
}

/// A ring id as libquorum gives it (`struct quorum_ring_id`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingId {
    pub nodeid: u32,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The answer to a request: `value` is the quorate flag (GetQuorate) or the quorum type
    /// (GetType, ModelGetType), 0 otherwise.
    Reply {
        req_id: u32,
        status: Status,
        value: u32,
    },
    /// Quorum changed (or the current state, on track start): both models' callback.
    Quorum {
        quorate: bool,
        ring: RingId,
        members: Vec<u32>,
    },
    /// A membership was synced (model v1): members and who joined and left since the last.
    Nodelist {
        ring: RingId,
        members: Vec<u32>,
        joined: Vec<u32>,
        left: Vec<u32>,
    },
}

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

impl Event {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Event::Reply {
                req_id,
                status,
                value,
            } => {
                Writer::new(out, OP_REPLY, *req_id)
                    .u32(status.code())
                    .u32(*value);
            }
            Event::Quorum {
                quorate,
                ring,
                members,
            } => {
                let mut w = Writer::new(out, OP_QUORUM_NOTIFICATION, 0);
                w.u8(u8::from(*quorate)).u32(ring.nodeid).u64(ring.seq);
                put_ids(&mut w, members);
            }
            Event::Nodelist {
                ring,
                members,
                joined,
                left,
            } => {
                let mut w = Writer::new(out, OP_NODELIST_NOTIFICATION, 0);
                w.u32(ring.nodeid).u64(ring.seq);
                put_ids(&mut w, members);
                put_ids(&mut w, joined);
                put_ids(&mut w, left);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let ev = match env.op {
            OP_REPLY => Event::Reply {
                req_id: env.req_id,
                status: Status::from_code(r.u32("status")?)
                    .ok_or(DecodeError::BadValue("status"))?,
                value: r.u32("value")?,
            },
            OP_QUORUM_NOTIFICATION => {
                let quorate = match r.u8("quorate")? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::BadValue("quorate")),
                };
                let ring = RingId {
                    nodeid: r.u32("ring id")?,
                    seq: r.u64("ring id")?,
                };
                Event::Quorum {
                    quorate,
                    ring,
                    members: get_ids(&mut r, "members")?,
                }
            }
            OP_NODELIST_NOTIFICATION => Event::Nodelist {
                ring: RingId {
                    nodeid: r.u32("ring id")?,
                    seq: r.u64("ring id")?,
                },
                members: get_ids(&mut r, "members")?,
                joined: get_ids(&mut r, "joined")?,
                left: get_ids(&mut r, "left")?,
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
        && u16::from_le_bytes([record[0], record[1]]) == OP_REPLY
        && u32::from_le_bytes([record[4], record[5], record[6], record[7]]) == req_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncation_is_an_error() {
        let mut buf = Vec::new();
        for req in [
            Request::GetQuorate,
            Request::TrackStart {
                flags: TRACK_CHANGES,
            },
            Request::TrackStop,
            Request::GetType,
            Request::ModelGetType { model: 1 },
        ] {
            req.encode(9, &mut buf);
            assert_eq!(Request::decode(&buf).unwrap(), (9, req));
            for cut in 0..buf.len() {
                assert!(Request::decode(&buf[..cut]).is_err());
            }
        }
        let ring = RingId { nodeid: 2, seq: 44 };
        for ev in [
            Event::Reply {
                req_id: 3,
                status: Status::Ok,
                value: 1,
            },
            Event::Quorum {
                quorate: true,
                ring,
                members: vec![1, 2, 3],
            },
            Event::Nodelist {
                ring,
                members: vec![1, 2],
                joined: vec![2],
                left: vec![3],
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
    fn forged_lists_and_flags_are_refused() {
        let mut buf = Vec::new();
        Event::Quorum {
            quorate: true,
            ring: RingId::default(),
            members: vec![],
        }
        .encode(&mut buf);
        let mut bad = buf.clone();
        bad[crate::codec::ENVELOPE_LEN] = 2;
        assert_eq!(Event::decode(&bad), Err(DecodeError::BadValue("quorate")));
        // A count larger than the record holds.
        let at = buf.len() - 4;
        buf[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Event::decode(&buf).is_err());
    }
}
