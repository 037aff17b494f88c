//! cfg: the node's configuration and life, after corosync's libcfg — the local node id, a node's
//! status and addresses, a cluster-wide config reload or key rotation (answered once this node
//! knows the outcome: applied on every member, or refused with each reason), reopening the
//! log files, killing a node, and shutdown with the applications' say: a handle that tracks
//! (`track_start`) is asked about every shutdown request (`CfgEvent::ShutdownRequested`) and
//! confirms or vetoes it with `reply_to_shutdown` within the node's timeout
//! (`cfg.shutdown_timeout`, 5 s by default). Answered by rotord.

use std::net::IpAddr;
use std::time::Duration;

use rotor_proto::cfg::{Event, Request, REPLY_OPS};
pub use rotor_proto::cfg::{LinkStatus, NodeStatusV1, ShutdownFlags, StatusReply};
use rotor_proto::Status;

use crate::conn::Conn;
use crate::cpg::Wait;
use crate::Error;

/// How long a reload or key rotation may take: the asking node's round timeout (15 s) and
/// then some.
pub const CHANGE_WAIT: Duration = Duration::from_secs(30);
/// How long a shutdown request may wait for the applications' answers (their timeout is
/// `cfg.shutdown_timeout`).
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

/// What a cfg handle is told without asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfgEvent {
    /// A shutdown is asked for (libcfg's shutdown callback): answer with
    /// [`Cfg::reply_to_shutdown`]. `status` is `Timeout` when the request lapsed because not
    /// every application answered in time.
    ShutdownRequested {
        flags: ShutdownFlags,
        status: Status,
    },
}

fn is_reply(record: &[u8], req_id: u32) -> bool {
    record.len() >= 8
        && REPLY_OPS.contains(&u16::from_le_bytes([record[0], record[1]]))
        && u32::from_le_bytes([record[4], record[5], record[6], record[7]]) == req_id
}

/// A cfg connection to the local rotord.
pub struct Cfg {
    conn: Conn,
}

impl Cfg {
    /// Attaches to the local rotord (`$ROTOR_IPC_SOCKET`, default `rotor-ipc`).
    pub fn initialize() -> Result<Cfg, Error> {
        Cfg::initialize_at(&ipc_shm::socket_name())
    }

    pub fn initialize_at(name: &str) -> Result<Cfg, Error> {
        Ok(Cfg {
            conn: Conn::connect(name)?,
        })
    }

    fn call(&mut self, req: Request, wait: Option<Duration>) -> Result<Event, Error> {
        let id = self.conn.req_id();
        req.encode(id, &mut self.conn.out);
        let record = match wait {
            None => self.conn.call(id, is_reply)?,
            Some(wait) => self.conn.call_within(id, is_reply, wait)?,
        };
        Ok(Event::decode(&record)?)
    }

    /// A request answered with a status and a message.
    fn status_call(&mut self, req: Request, wait: Option<Duration>) -> Result<(), Error> {
        match self.call(req, wait)? {
            Event::Reply {
                status: Status::Ok, ..
            } => Ok(()),
            Event::Reply {
                status, message, ..
            } => Err(Error::Refused { status, message }),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// This node's id (`corosync_cfg_local_get`).
    pub fn local_get(&mut self) -> Result<u32, Error> {
        match self.call(Request::LocalGet, None)? {
            Event::LocalReply { node_id, .. } => Ok(node_id),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// A configured node's status and link (`corosync_cfg_node_status_get`); a node the
    /// nodelist does not have is `NotExist`.
    pub fn node_status_get(&mut self, node: u32) -> Result<NodeStatusV1, Error> {
        match self.call(Request::NodeStatus { node }, None)? {
            Event::NodeStatusReply {
                status: Status::Ok,
                node,
                ..
            } => Ok(node),
            Event::NodeStatusReply { status, .. } => Err(Error::Refused {
                status,
                message: format!("node {node} is not in the nodelist"),
            }),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// A node's addresses (`corosync_cfg_get_node_addrs`; 0: this node).
    pub fn get_node_addrs(&mut self, node: u32) -> Result<Vec<IpAddr>, Error> {
        match self.call(Request::NodeAddrs { node }, None)? {
            Event::AddrsReply {
                status: Status::Ok,
                addrs,
                ..
            } => addrs
                .iter()
                .map(|a| {
                    a.parse()
                        .map_err(|_| Error::Protocol("an address that does not parse"))
                })
                .collect(),
            Event::AddrsReply { status, .. } => Err(Error::Refused {
                status,
                message: format!("node {node} is not in the nodelist"),
            }),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// Asks node `node` to leave the cluster and stop; it logs `reason`
    /// (`corosync_cfg_kill_node`). A node not in the ring is `NotExist`.
    pub fn kill_node(&mut self, node: u32, reason: &str) -> Result<(), Error> {
        self.status_call(
            Request::Kill {
                node,
                reason: reason.to_owned(),
            },
            None,
        )
    }

    /// Every node reads its config file again; returns once applied on every member, or with
    /// every reason it was refused (`corosync_cfg_reload_config`).
    pub fn reload_config(&mut self) -> Result<(), Error> {
        self.status_call(Request::Reload, Some(CHANGE_WAIT))
    }

    /// Every node installs the key in the file at `path` (on each node) as the cluster's key;
    /// frames are sealed with it once every member has it, and the old key is wiped after.
    pub fn rotate_key(&mut self, path: &str) -> Result<(), Error> {
        self.status_call(
            Request::RotateKey {
                path: path.to_owned(),
            },
            Some(CHANGE_WAIT),
        )
    }

    /// Reopens the log files (`corosync_cfg_reopen_log_files`).
    pub fn reopen_log_files(&mut self) -> Result<(), Error> {
        self.status_call(Request::ReopenLog, None)
    }

    /// Asks for an orderly shutdown of this node (`corosync_cfg_try_shutdown`): with
    /// `Request`, every tracking application must agree in time (else `Busy` or `Timeout`);
    /// with `Regardless` they are asked but cannot stop it; `Immediate` does not ask. Another
    /// request being voted on is `Exist`.
    pub fn try_shutdown(&mut self, flags: ShutdownFlags) -> Result<(), Error> {
        self.status_call(Request::TryShutdown { flags }, Some(SHUTDOWN_WAIT))
    }

    /// This application's answer to a `ShutdownRequested` (`corosync_cfg_replyto_shutdown`).
    pub fn reply_to_shutdown(&mut self, yes: bool) -> Result<(), Error> {
        self.status_call(Request::ReplyToShutdown { yes }, None)
    }

    /// Be asked about shutdowns from now on (`corosync_cfg_trackstart`).
    pub fn track_start(&mut self) -> Result<(), Error> {
        self.status_call(Request::TrackStart, None)
    }

    pub fn track_stop(&mut self) -> Result<(), Error> {
        self.status_call(Request::TrackStop, None)
    }

    /// The node's ring, links and keys (what `rotor cfg -s` prints).
    pub fn status(&mut self) -> Result<StatusReply, Error> {
        match self.call(Request::Status, None)? {
            Event::Status { reply, .. } => Ok(reply),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// The next event: without waiting for `None`, else waiting up to the duration.
    pub fn poll_event(&mut self, wait: Option<Duration>) -> Result<Option<CfgEvent>, Error> {
        loop {
            let Some(record) = self.conn.next(wait.map_or(Wait::No, Wait::Up))? else {
                return Ok(None);
            };
            match Event::decode(&record)? {
                Event::ShutdownRequested { flags, status } => {
                    return Ok(Some(CfgEvent::ShutdownRequested { flags, status }))
                }
                // A late reply to a request that timed out: nothing waits for it.
                _ => continue,
            }
        }
    }

    /// Hands every waiting event to `handler` (`corosync_cfg_dispatch` with CS_DISPATCH_ALL).
    pub fn dispatch_all(
        &mut self,
        mut handler: impl FnMut(&mut Cfg, CfgEvent),
    ) -> Result<(), Error> {
        while let Some(ev) = self.poll_event(None)? {
            handler(self, ev);
        }
        Ok(())
    }

    /// A descriptor to poll for readability while events wait (`corosync_cfg_fd_get`); call
    /// again before each sleep.
    pub fn fd(&mut self) -> Result<std::os::fd::RawFd, Error> {
        self.conn.fd()
    }

    /// The session's control socket: it hangs up when the node goes away.
    pub fn control_fd(&self) -> std::os::fd::RawFd {
        self.conn.control_fd()
    }

    /// Makes [`Self::fd`] readable now, to wake a thread sleeping on it (one dispatching on
    /// a handle another thread is closing).
    pub fn wake(&self) {
        self.conn.wake();
    }
}
