//! votequorum, with libvotequorum's semantics: `getinfo` of any node (0: this one),
//! `setexpected`, `setvotes`, `trackstart`/`trackstop` with the quorum, nodelist and expected
//! votes notifications through `dispatch` and a [`VotequorumHandler`], and the quorum device
//! calls (register, unregister, update, poll with a vote and the ring id, master_wins).
//! Answered by rotord; the requests that change votequorum are ordered in the cluster and
//! answered once the local node has checked them, with corosync's errors and a reason.

use std::os::fd::RawFd;

pub use rotor_proto::quorum::{TRACK_CHANGES, TRACK_CHANGES_ONLY, TRACK_CURRENT};
use rotor_proto::votequorum::{is_reply, Event, Request};
pub use rotor_proto::votequorum::{
    Info, RingId, INFO_ALLOW_DOWNSCALE, INFO_AUTO_TIE_BREAKER, INFO_LAST_MAN_STANDING,
    INFO_QDEVICE_ALIVE, INFO_QDEVICE_CAST_VOTE, INFO_QDEVICE_MASTER_WINS, INFO_QDEVICE_REGISTERED,
    INFO_QUORATE, INFO_TWONODE, INFO_WAIT_FOR_ALL, NODESTATE_DEAD, NODESTATE_LEAVING,
    NODESTATE_MEMBER, QDEVICE_NAME_MAX, QDEVICE_NODEID,
};
use rotor_proto::Status;

use crate::conn::Conn;
use crate::cpg::{Dispatch, Wait};
use crate::Error;

/// What `dispatch` calls, in delivery order; each carries the context given to `trackstart`.
pub trait VotequorumHandler {
    /// Quorum changed: every node votequorum knows with its state (`NODESTATE_*`; a
    /// registered quorum device as node 0 with state 0).
    fn quorum(&mut self, _context: u64, _quorate: bool, _nodes: &[(u32, u32)]) {}
    /// Expected votes changed.
    fn expected_votes(&mut self, _context: u64, _expected_votes: u32) {}
    /// A membership was synced: its ring and members.
    fn nodelist(&mut self, _context: u64, _ring: RingId, _nodes: &[u32]) {}
}

/// A notification, owned (what [`Votequorum::poll_notification`] returns); each carries the
/// context given to `trackstart`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// Quorum changed: every node with its state (a registered device as node 0, state 0).
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
    /// Expected votes changed.
    ExpectedVotes { context: u64, expected_votes: u32 },
}

/// One votequorum handle (`votequorum_handle_t`).
pub struct Votequorum {
    conn: Conn,
}

fn refused(status: Status, message: String) -> Error {
    if message.is_empty() {
        Error::Status(status)
    } else {
        Error::Refused { status, message }
    }
}

impl Votequorum {
    /// `votequorum_initialize`, attached to the local rotord.
    pub fn initialize() -> Result<Votequorum, Error> {
        Votequorum::initialize_at(&ipc_shm::socket_name())
    }

    pub fn initialize_at(name: &str) -> Result<Votequorum, Error> {
        Ok(Votequorum {
            conn: Conn::connect(name)?,
        })
    }

    fn call(&mut self, req: Request<'_>) -> Result<Event, Error> {
        let id = self.conn.req_id();
        req.encode(id, &mut self.conn.out);
        let record = self.conn.call(id, is_reply)?;
        Ok(Event::decode(&record)?)
    }

    fn call_status(&mut self, req: Request<'_>) -> Result<(), Error> {
        match self.call(req)? {
            Event::Status {
                status: Status::Ok, ..
            } => Ok(()),
            Event::Status {
                status, message, ..
            } => Err(refused(status, message)),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// `votequorum_getinfo`: node 0 is this node.
    pub fn getinfo(&mut self, node: u32) -> Result<Info, Error> {
        match self.call(Request::GetInfo { node })? {
            Event::Info {
                status: Status::Ok,
                info,
                ..
            } => Ok(info),
            Event::Info { status, .. } => Err(Error::Status(status)),
            Event::Status {
                status, message, ..
            } => Err(refused(status, message)),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// `votequorum_setexpected`: refused (CS_ERR_INVALID_PARAM) below the votes present, or
    /// when a quorate cluster would lose quorum.
    pub fn setexpected(&mut self, expected_votes: u32) -> Result<(), Error> {
        self.call_status(Request::SetExpected { expected_votes })
    }

    /// `votequorum_setvotes`: node 0 is this node.
    pub fn setvotes(&mut self, node: u32, votes: u32) -> Result<(), Error> {
        self.call_status(Request::SetVotes { node, votes })
    }

    /// `votequorum_trackstart`: `TRACK_CURRENT` (the state now), `TRACK_CHANGES` (now and
    /// every change), `TRACK_CHANGES_ONLY`; `context` comes back with each notification.
    pub fn trackstart(&mut self, context: u64, flags: u32) -> Result<(), Error> {
        self.call_status(Request::TrackStart { context, flags })
    }

    /// `votequorum_trackstop`.
    pub fn trackstop(&mut self) -> Result<(), Error> {
        self.call_status(Request::TrackStop)
    }

    /// `votequorum_qdevice_register`: answered once the registration is ordered.
    pub fn qdevice_register(&mut self, name: &str) -> Result<(), Error> {
        self.call_status(Request::QdeviceRegister { name })
    }

    /// `votequorum_qdevice_unregister`.
    pub fn qdevice_unregister(&mut self, name: &str) -> Result<(), Error> {
        self.call_status(Request::QdeviceUnregister { name })
    }

    /// `votequorum_qdevice_update`: renames the registered device.
    pub fn qdevice_update(&mut self, old: &str, new: &str) -> Result<(), Error> {
        self.call_status(Request::QdeviceUpdate { old, new })
    }

    /// `votequorum_qdevice_poll`: the device is alive and casts its vote (or not), for the
    /// ring it was told of last (a nodelist notification's ring id).
    pub fn qdevice_poll(&mut self, name: &str, cast_vote: bool, ring: RingId) -> Result<(), Error> {
        self.call_status(Request::QdevicePoll {
            name,
            cast_vote,
            ring,
        })
    }

    /// `votequorum_qdevice_master_wins`.
    pub fn qdevice_master_wins(&mut self, name: &str, allow: bool) -> Result<(), Error> {
        self.call_status(Request::QdeviceMasterWins { name, allow })
    }

    /// A descriptor to poll for readability (`votequorum_fd_get`); call again before each
    /// sleep.
    pub fn fd(&mut self) -> Result<RawFd, Error> {
        self.conn.fd()
    }

    /// The session's control socket, to poll beside [`Self::fd`]: it hangs up when the node
    /// goes away.
    pub fn control_fd(&self) -> RawFd {
        self.conn.control_fd()
    }

    /// Makes [`Self::fd`] readable now, to wake a thread sleeping on it (one dispatching on
    /// a handle another thread is closing).
    pub fn wake(&self) {
        self.conn.wake();
    }

    /// The next notification, waiting as `wait` says; `None` when none came.
    pub fn poll_notification(&mut self, wait: Wait) -> Result<Option<Notification>, Error> {
        let mut wait = wait;
        loop {
            let Some(record) = self.conn.next(wait)? else {
                return Ok(None);
            };
            return Ok(Some(match Event::decode(&record)? {
                Event::Quorum {
                    context,
                    quorate,
                    nodes,
                } => Notification::Quorum {
                    context,
                    quorate,
                    nodes,
                },
                Event::Nodelist {
                    context,
                    ring,
                    nodes,
                } => Notification::Nodelist {
                    context,
                    ring,
                    nodes,
                },
                Event::ExpectedVotes {
                    context,
                    expected_votes,
                } => Notification::ExpectedVotes {
                    context,
                    expected_votes,
                },
                // A late reply to a request that timed out: what is left of the wait is at
                // most another look.
                Event::Status { .. } | Event::Info { .. } => {
                    if wait != Wait::Spin {
                        wait = Wait::No;
                    }
                    continue;
                }
            }));
        }
    }

    /// Runs the handler for waiting notifications (`votequorum_dispatch`); returns how many.
    pub fn dispatch(
        &mut self,
        mode: Dispatch,
        h: &mut impl VotequorumHandler,
    ) -> Result<usize, Error> {
        let mut n = 0;
        let mut wait = match mode {
            Dispatch::Blocking(d) => Wait::Up(d),
            Dispatch::Busy => Wait::Spin,
            Dispatch::One | Dispatch::All => Wait::No,
        };
        while let Some(notification) = self.poll_notification(wait)? {
            wait = Wait::No;
            match notification {
                Notification::Quorum {
                    context,
                    quorate,
                    nodes,
                } => h.quorum(context, quorate, &nodes),
                Notification::Nodelist {
                    context,
                    ring,
                    nodes,
                } => h.nodelist(context, ring, &nodes),
                Notification::ExpectedVotes {
                    context,
                    expected_votes,
                } => h.expected_votes(context, expected_votes),
            }
            n += 1;
            if mode == Dispatch::One {
                break;
            }
        }
        Ok(n)
    }
}
