//! cfg records between an application and rotord, after corosync's libcfg: node and ring status
//! (what `rotor status` prints, laid out like `corosync-cfgtool -s`), a node's status and
//! addresses, the local node id, config reload and key rotation cluster-wide, reopening the log
//! files, killing a node, and orderly shutdown with the applications' say (a shutdown request
//! is put to every client that tracks, which confirms or vetoes it within a timeout).

use crate::codec::{DecodeError, Reader, Writer};
use crate::{RingState, Status};

pub const OP_STATUS: u16 = 0x0301;
pub const OP_SHUTDOWN: u16 = 0x0302;
pub const OP_TRY_SHUTDOWN: u16 = 0x0303;
pub const OP_REPLY_TO_SHUTDOWN: u16 = 0x0304;
pub const OP_RELOAD: u16 = 0x0305;
pub const OP_ROTATE_KEY: u16 = 0x0306;
pub const OP_REOPEN_LOG: u16 = 0x0307;
pub const OP_KILL: u16 = 0x0308;
pub const OP_NODE_STATUS: u16 = 0x0309;
pub const OP_LOCAL_GET: u16 = 0x030a;
pub const OP_NODE_ADDRS: u16 = 0x030b;
pub const OP_TRACK_START: u16 = 0x030c;
pub const OP_TRACK_STOP: u16 = 0x030d;
pub const OP_STATUS_REPLY: u16 = 0x0381;
pub const OP_SHUTDOWN_REPLY: u16 = 0x0382;
pub const OP_REPLY: u16 = 0x0383;
pub const OP_NODE_STATUS_REPLY: u16 = 0x0384;
pub const OP_LOCAL_REPLY: u16 = 0x0385;
pub const OP_ADDRS_REPLY: u16 = 0x0386;
pub const OP_SHUTDOWN_REQUESTED: u16 = 0x0387;

/// Every reply op: what answers a request (the rest are notifications).
pub const REPLY_OPS: [u16; 6] = [
    OP_STATUS_REPLY,
    OP_SHUTDOWN_REPLY,
    OP_REPLY,
    OP_NODE_STATUS_REPLY,
    OP_LOCAL_REPLY,
    OP_ADDRS_REPLY,
];

/// How a shutdown is asked for (libcfg's `corosync_cfg_shutdown_flags_t`, same numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownFlags {
    /// Every tracking application is asked; one that says no, or does not answer in time,
    /// stops it.
    Request,
    /// Every tracking application is told and asked, but its answer does not stop it.
    Regardless,
    /// Straight away (the other nodes are still told).
    Immediate,
}

impl ShutdownFlags {
    pub fn code(self) -> u32 {
        match self {
            ShutdownFlags::Request => 0,
            ShutdownFlags::Regardless => 1,
            ShutdownFlags::Immediate => 2,
        }
    }

    pub fn from_code(code: u32) -> Option<ShutdownFlags> {
        Some(match code {
            0 => ShutdownFlags::Request,
            1 => ShutdownFlags::Regardless,
            2 => ShutdownFlags::Immediate,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Status,
    /// Leave the ring and stop now, without asking the applications.
    Shutdown,
    /// libcfg's `corosync_cfg_try_shutdown`: answered once the applications have had their say.
    TryShutdown {
        flags: ShutdownFlags,
    },
    /// A tracking application's answer to `Event::ShutdownRequested`.
    ReplyToShutdown {
        yes: bool,
    },
    /// Every node reads its config file again (corosync-cfgtool -R); answered once this node
    /// knows the outcome.
    Reload,
    /// Every node installs the key in the file at `path` (a path on each node) as the
    /// cluster's key.
    RotateKey {
        path: String,
    },
    /// Reopen the log files (corosync-cfgtool -L).
    ReopenLog,
    /// Ask node `node` to leave the cluster and stop, for `reason`.
    Kill {
        node: u32,
        reason: String,
    },
    /// libcfg's `corosync_cfg_node_status_get`.
    NodeStatus {
        node: u32,
    },
    /// libcfg's `corosync_cfg_local_get`.
    LocalGet,
    /// libcfg's `corosync_cfg_get_node_addrs` (0: this node).
    NodeAddrs {
        node: u32,
    },
    /// Be asked about shutdowns (libcfg's `corosync_cfg_trackstart`).
    TrackStart,
    TrackStop,
}

impl Request {
    pub fn encode(&self, req_id: u32, out: &mut Vec<u8>) {
        match self {
            Request::Status => {
                Writer::new(out, OP_STATUS, req_id);
            }
            Request::Shutdown => {
                Writer::new(out, OP_SHUTDOWN, req_id);
            }
            Request::TryShutdown { flags } => {
                Writer::new(out, OP_TRY_SHUTDOWN, req_id).u32(flags.code());
            }
            Request::ReplyToShutdown { yes } => {
                Writer::new(out, OP_REPLY_TO_SHUTDOWN, req_id).u8(u8::from(*yes));
            }
            Request::Reload => {
                Writer::new(out, OP_RELOAD, req_id);
            }
            Request::RotateKey { path } => {
                Writer::new(out, OP_ROTATE_KEY, req_id).str(path);
            }
            Request::ReopenLog => {
                Writer::new(out, OP_REOPEN_LOG, req_id);
            }
            Request::Kill { node, reason } => {
                Writer::new(out, OP_KILL, req_id).u32(*node).str(reason);
            }
            Request::NodeStatus { node } => {
                Writer::new(out, OP_NODE_STATUS, req_id).u32(*node);
            }
            Request::LocalGet => {
                Writer::new(out, OP_LOCAL_GET, req_id);
            }
            Request::NodeAddrs { node } => {
                Writer::new(out, OP_NODE_ADDRS, req_id).u32(*node);
            }
            Request::TrackStart => {
                Writer::new(out, OP_TRACK_START, req_id);
            }
            Request::TrackStop => {
                Writer::new(out, OP_TRACK_STOP, req_id);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<(u32, Request), DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let req = match env.op {
            OP_STATUS => Request::Status,
            OP_SHUTDOWN => Request::Shutdown,
            OP_TRY_SHUTDOWN => Request::TryShutdown {
                flags: ShutdownFlags::from_code(r.u32("flags")?)
                    .ok_or(DecodeError::BadValue("flags"))?,
            },
            OP_REPLY_TO_SHUTDOWN => Request::ReplyToShutdown {
                yes: r.u8("answer")? != 0,
            },
            OP_RELOAD => Request::Reload,
            OP_ROTATE_KEY => Request::RotateKey {
                path: r.str("key path")?.to_owned(),
            },
            OP_REOPEN_LOG => Request::ReopenLog,
            OP_KILL => Request::Kill {
                node: r.u32("node")?,
                reason: r.str("reason")?.to_owned(),
            },
            OP_NODE_STATUS => Request::NodeStatus {
                node: r.u32("node")?,
            },
            OP_LOCAL_GET => Request::LocalGet,
            OP_NODE_ADDRS => Request::NodeAddrs {
                node: r.u32("node")?,
            },
            OP_TRACK_START => Request::TrackStart,
            OP_TRACK_STOP => Request::TrackStop,
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
    /// The key this node seals under (0 without crypto, or before the dataplane said).
    pub key_id: u32,
    /// The keys it opens frames under (two during a rotation).
    pub keys_held: Vec<u32>,
    /// Peers heard sealing under a key this node does not hold, recently: (node, key).
    pub unknown_keys: Vec<(u32, u32)>,
    /// Why the last reload on this node was not applied (empty when it was, or none ran).
    pub reload_error: String,
    /// Every link with every node's state on it (`corosync-cfgtool -s`).
    pub links: Vec<LinkReport>,
}

/// One link as `corosync-cfgtool -s` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkReport {
    pub link: u8,
    /// `udp` or `xdp`.
    pub transport: String,
    /// This node's address on the link.
    pub local_addr: String,
    /// Every configured node (this one too) and whether its link is up, sorted by node id.
    pub nodes: Vec<(u32, bool)>,
}

/// One link of a node (libcfg's `corosync_knet_link_status_v1`; rotor has link 0 only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    pub link: u8,
    pub enabled: bool,
    pub connected: bool,
    pub dynconnected: bool,
    /// The largest IP packet the link carries (totem.netmtu).
    pub mtu: u32,
    pub src: String,
    pub dst: String,
}

/// A node's status (libcfg's `corosync_cfg_node_status_v1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatusV1 {
    pub node_id: u32,
    /// In the current ring (or this node itself).
    pub reachable: bool,
    pub remote: bool,
    pub external: bool,
    pub links: Vec<LinkStatus>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Status {
        req_id: u32,
        reply: StatusReply,
    },
    ShutdownReply {
        req_id: u32,
        status: Status,
    },
    /// The answer to a request that returns only a status, and a message saying why when it
    /// is not `Ok` (reload, rotate key, reopen, kill, try shutdown, reply, track).
    Reply {
        req_id: u32,
        status: Status,
        message: String,
    },
    NodeStatusReply {
        req_id: u32,
        status: Status,
        node: NodeStatusV1,
    },
    LocalReply {
        req_id: u32,
        node_id: u32,
    },
    AddrsReply {
        req_id: u32,
        status: Status,
        addrs: Vec<String>,
    },
    /// A shutdown is asked for: a tracking application answers with
    /// `Request::ReplyToShutdown` (libcfg's shutdown callback). `status` is `Timeout` when
    /// the answers did not all come in time and the request lapsed.
    ShutdownRequested {
        flags: ShutdownFlags,
        status: Status,
    },
}

fn status_of(r: &mut Reader<'_>) -> Result<Status, DecodeError> {
    Status::from_code(r.u32("status")?).ok_or(DecodeError::BadValue("status"))
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
                w.u32(reply.key_id).u32(reply.keys_held.len() as u32);
                for k in &reply.keys_held {
                    w.u32(*k);
                }
                w.u32(reply.unknown_keys.len() as u32);
                for (node, key) in &reply.unknown_keys {
                    w.u32(*node).u32(*key);
                }
                w.str(&reply.reload_error);
                w.u32(reply.links.len() as u32);
                for l in &reply.links {
                    w.u8(l.link)
                        .str(&l.transport)
                        .str(&l.local_addr)
                        .u32(l.nodes.len() as u32);
                    for (node, connected) in &l.nodes {
                        w.u32(*node).u8(u8::from(*connected));
                    }
                }
            }
            Event::ShutdownReply { req_id, status } => {
                Writer::new(out, OP_SHUTDOWN_REPLY, *req_id).u32(status.code());
            }
            Event::Reply {
                req_id,
                status,
                message,
            } => {
                Writer::new(out, OP_REPLY, *req_id)
                    .u32(status.code())
                    .str(message);
            }
            Event::NodeStatusReply {
                req_id,
                status,
                node,
            } => {
                let mut w = Writer::new(out, OP_NODE_STATUS_REPLY, *req_id);
                w.u32(status.code())
                    .u32(node.node_id)
                    .u8(u8::from(node.reachable))
                    .u8(u8::from(node.remote))
                    .u8(u8::from(node.external))
                    .u32(node.links.len() as u32);
                for l in &node.links {
                    w.u8(l.link)
                        .u8(u8::from(l.enabled))
                        .u8(u8::from(l.connected))
                        .u8(u8::from(l.dynconnected))
                        .u32(l.mtu)
                        .str(&l.src)
                        .str(&l.dst);
                }
            }
            Event::LocalReply { req_id, node_id } => {
                Writer::new(out, OP_LOCAL_REPLY, *req_id).u32(*node_id);
            }
            Event::AddrsReply {
                req_id,
                status,
                addrs,
            } => {
                let mut w = Writer::new(out, OP_ADDRS_REPLY, *req_id);
                w.u32(status.code()).u32(addrs.len() as u32);
                for a in addrs {
                    w.str(a);
                }
            }
            Event::ShutdownRequested { flags, status } => {
                Writer::new(out, OP_SHUTDOWN_REQUESTED, 0)
                    .u32(flags.code())
                    .u32(status.code());
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let req_id = env.req_id;
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
                let key_id = r.u32("key")?;
                let n = r.count(4, "keys")?;
                let keys_held = (0..n).map(|_| r.u32("key")).collect::<Result<_, _>>()?;
                let n = r.count(8, "unknown keys")?;
                let mut unknown_keys = Vec::with_capacity(n);
                for _ in 0..n {
                    unknown_keys.push((r.u32("node")?, r.u32("key")?));
                }
                let reload_error = r.str("reload error")?.to_owned();
                // A link is at least its number (1), two empty strings (8) and a count (4).
                let n = r.count(13, "links")?;
                let mut links = Vec::with_capacity(n);
                for _ in 0..n {
                    let link = r.u8("link")?;
                    let transport = r.str("link transport")?.to_owned();
                    let local_addr = r.str("link address")?.to_owned();
                    let count = r.count(5, "link nodes")?;
                    let mut nodes = Vec::with_capacity(count);
                    for _ in 0..count {
                        nodes.push((r.u32("link node")?, r.u8("link connected")? != 0));
                    }
                    links.push(LinkReport {
                        link,
                        transport,
                        local_addr,
                        nodes,
                    });
                }
                Event::Status {
                    req_id,
                    reply: StatusReply {
                        node_id,
                        transport,
                        local_addr,
                        state,
                        ring_rep,
                        ring_seq,
                        nodes,
                        key_id,
                        keys_held,
                        unknown_keys,
                        reload_error,
                        links,
                    },
                }
            }
            OP_SHUTDOWN_REPLY => Event::ShutdownReply {
                req_id,
                status: status_of(&mut r)?,
            },
            OP_REPLY => Event::Reply {
                req_id,
                status: status_of(&mut r)?,
                message: r.str("message")?.to_owned(),
            },
            OP_NODE_STATUS_REPLY => {
                let status = status_of(&mut r)?;
                let node_id = r.u32("node")?;
                let reachable = r.u8("reachable")? != 0;
                let remote = r.u8("remote")? != 0;
                let external = r.u8("external")? != 0;
                let n = r.count(16, "links")?;
                let mut links = Vec::with_capacity(n);
                for _ in 0..n {
                    links.push(LinkStatus {
                        link: r.u8("link")?,
                        enabled: r.u8("enabled")? != 0,
                        connected: r.u8("connected")? != 0,
                        dynconnected: r.u8("dynconnected")? != 0,
                        mtu: r.u32("mtu")?,
                        src: r.str("source address")?.to_owned(),
                        dst: r.str("destination address")?.to_owned(),
                    });
                }
                Event::NodeStatusReply {
                    req_id,
                    status,
                    node: NodeStatusV1 {
                        node_id,
                        reachable,
                        remote,
                        external,
                        links,
                    },
                }
            }
            OP_LOCAL_REPLY => Event::LocalReply {
                req_id,
                node_id: r.u32("node id")?,
            },
            OP_ADDRS_REPLY => {
                let status = status_of(&mut r)?;
                let n = r.count(4, "addresses")?;
                let addrs = (0..n)
                    .map(|_| r.str("address").map(str::to_owned))
                    .collect::<Result<_, _>>()?;
                Event::AddrsReply {
                    req_id,
                    status,
                    addrs,
                }
            }
            OP_SHUTDOWN_REQUESTED => Event::ShutdownRequested {
                flags: ShutdownFlags::from_code(r.u32("flags")?)
                    .ok_or(DecodeError::BadValue("flags"))?,
                status: status_of(&mut r)?,
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
        let events = [
            Event::Status {
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
                    key_id: 0x1a2b_3c4d,
                    keys_held: vec![0x1a2b_3c4d, 7],
                    unknown_keys: vec![(3, 9)],
                    reload_error: "node 2: refused".into(),
                    links: vec![LinkReport {
                        link: 1,
                        transport: "udp".into(),
                        local_addr: "198.19.0.1".into(),
                        nodes: vec![(1, true), (2, false)],
                    }],
                },
            },
            Event::ShutdownReply {
                req_id: 5,
                status: Status::Ok,
            },
            Event::Reply {
                req_id: 6,
                status: Status::Busy,
                message: "vetoed by pid 42".into(),
            },
            Event::NodeStatusReply {
                req_id: 7,
                status: Status::Ok,
                node: NodeStatusV1 {
                    node_id: 2,
                    reachable: true,
                    remote: false,
                    external: false,
                    links: vec![LinkStatus {
                        link: 0,
                        enabled: true,
                        connected: true,
                        dynconnected: false,
                        mtu: 1500,
                        src: "198.18.0.1".into(),
                        dst: "198.18.0.2".into(),
                    }],
                },
            },
            Event::LocalReply {
                req_id: 8,
                node_id: 3,
            },
            Event::AddrsReply {
                req_id: 9,
                status: Status::Ok,
                addrs: vec!["198.18.0.3".into()],
            },
            Event::ShutdownRequested {
                flags: ShutdownFlags::Regardless,
                status: Status::Ok,
            },
        ];
        for ev in events {
            ev.encode(&mut buf);
            assert_eq!(Event::decode(&buf).unwrap(), ev);
            for cut in 0..buf.len() {
                assert!(Event::decode(&buf[..cut]).is_err(), "{ev:?} cut at {cut}");
            }
        }
        let requests = [
            Request::Status,
            Request::Shutdown,
            Request::TryShutdown {
                flags: ShutdownFlags::Immediate,
            },
            Request::ReplyToShutdown { yes: false },
            Request::Reload,
            Request::RotateKey {
                path: "/etc/corosync/authkey.new".into(),
            },
            Request::ReopenLog,
            Request::Kill {
                node: 4,
                reason: "Killed by rotor cfg".into(),
            },
            Request::NodeStatus { node: 2 },
            Request::LocalGet,
            Request::NodeAddrs { node: 0 },
            Request::TrackStart,
            Request::TrackStop,
        ];
        for (i, req) in requests.into_iter().enumerate() {
            req.encode(i as u32, &mut buf);
            assert_eq!(Request::decode(&buf).unwrap(), (i as u32, req));
        }
    }
}
