//! cfg records between an application and rotord: node and ring status (what `rotor status`
//! prints, laid out like `corosync-cfgtool -s`) and orderly shutdown.

use crate::codec::{DecodeError, Reader, Writer};
use crate::{RingState, Status};

pub const OP_STATUS: u16 = 0x0301;
pub const OP_SHUTDOWN: u16 = 0x0302;
pub const OP_STATUS_REPLY: u16 = 0x0381;
pub const OP_SHUTDOWN_REPLY: u16 = 0x0382;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    Shutdown,
}

impl Request {
    pub fn encode(&self, req_id: u32, out: &mut Vec<u8>) {
        let op = match self {
            Request::Status => OP_STATUS,
            Request::Shutdown => OP_SHUTDOWN,
        };
        Writer::new(out, op, req_id);
    }

    pub fn decode(buf: &[u8]) -> Result<(u32, Request), DecodeError> {
        let (env, r) = Reader::new(buf)?;
        let req = match env.op {
            OP_STATUS => Request::Status,
            OP_SHUTDOWN => Request::Shutdown,
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok((env.req_id, req))
    }
}

/// One configured node as the local node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: u32,
    pub addr: String,
    /// In the current ring.
    pub connected: bool,
}

/// The local node, its transport and ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReply {
    pub node_id: u32,
    /// `xdp` or `udp`.
    pub transport: String,
    pub local_addr: String,
    /// The protocol state, or `Down` when the dataplane is not running.
    pub state: RingState,
    pub ring_rep: u32,
    pub ring_seq: u64,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Status { req_id: u32, reply: StatusReply },
    ShutdownReply { req_id: u32, status: Status },
}

impl Event {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Event::Status { req_id, reply } => {
                let mut w = Writer::new(out, OP_STATUS_REPLY, *req_id);
                w.u32(reply.node_id)
                    .str(&reply.transport)
                    .str(&reply.local_addr)
                    .u8(reply.state.code())
                    .u32(reply.ring_rep)
                    .u64(reply.ring_seq)
                    .u32(reply.nodes.len() as u32);
                for n in &reply.nodes {
                    w.u32(n.node_id).str(&n.addr).u8(u8::from(n.connected));
                }
            }
            Event::ShutdownReply { req_id, status } => {
                Writer::new(out, OP_SHUTDOWN_REPLY, *req_id).u32(status.code());
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let ev = match env.op {
            OP_STATUS_REPLY => {
                let node_id = r.u32("node id")?;
                let transport = r.str("transport")?.to_owned();
                let local_addr = r.str("address")?.to_owned();
                let state =
                    RingState::from_code(r.u8("state")?).ok_or(DecodeError::BadValue("state"))?;
                let ring_rep = r.u32("ring")?;
                let ring_seq = r.u64("ring")?;
                let n = r.count(9, "nodes")?;
                let mut nodes = Vec::with_capacity(n);
                for _ in 0..n {
                    nodes.push(NodeStatus {
                        node_id: r.u32("node")?,
                        addr: r.str("node address")?.to_owned(),
                        connected: r.u8("connected")? != 0,
                    });
                }
                Event::Status {
                    req_id: env.req_id,
                    reply: StatusReply {
                        node_id,
                        transport,
                        local_addr,
                        state,
                        ring_rep,
                        ring_seq,
                        nodes,
                    },
                }
            }
            OP_SHUTDOWN_REPLY => Event::ShutdownReply {
                req_id: env.req_id,
                status: Status::from_code(r.u32("status")?)
                    .ok_or(DecodeError::BadValue("status"))?,
            },
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok(ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        let ev = Event::Status {
            req_id: 4,
            reply: StatusReply {
                node_id: 1,
                transport: "udp".into(),
                local_addr: "198.18.0.1".into(),
                state: RingState::Operational,
                ring_rep: 1,
                ring_seq: 12,
                nodes: vec![NodeStatus {
                    node_id: 2,
                    addr: "198.18.0.2".into(),
                    connected: true,
                }],
            },
        };
        ev.encode(&mut buf);
        assert_eq!(Event::decode(&buf).unwrap(), ev);
        for cut in 0..buf.len() {
            assert!(Event::decode(&buf[..cut]).is_err());
        }
        Request::Shutdown.encode(2, &mut buf);
        assert_eq!(Request::decode(&buf).unwrap(), (2, Request::Shutdown));
    }
}
