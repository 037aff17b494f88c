//! The quorum service, with libquorum's semantics: `getquorate`, `trackstart`/`trackstop` with
//! notifications through `dispatch` and a [`QuorumHandler`] (model v0: quorate flag, ring
//! sequence and members; model v1: the ring id, and a nodelist notification at every sync
//! with who joined and left), `quorum_type` (`QUORUM_SET` when votequorum decides,
//! `QUORUM_FREE` when there is no provider), the pollable fd. Answered by rotord.

use std::os::fd::RawFd;

use rotor_proto::quorum::{is_reply, Event, Request};
pub use rotor_proto::quorum::{
    Model, RingId, QUORUM_FREE, QUORUM_SET, TRACK_CHANGES, TRACK_CHANGES_ONLY, TRACK_CURRENT,
};
use rotor_proto::Status;

use crate::conn::Conn;
use crate::cpg::{Dispatch, Wait};
use crate::Error;

/// What `dispatch` calls, in delivery order.
pub trait QuorumHandler {
    /// Quorum changed (or the current state, after `trackstart` with `TRACK_CURRENT`). Model
    /// v0's callback has the ring sequence only (`ring.seq`).
    fn quorum(&mut self, quorate: bool, ring: RingId, members: &[u32]);
    /// A membership was synced (model v1): its members and who joined and left.
    fn nodelist(&mut self, _ring: RingId, _members: &[u32], _joined: &[u32], _left: &[u32]) {}
}

/// A notification, owned (what [`Quorum::poll_notification`] returns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// Quorum changed (or the current state, after `trackstart` with `TRACK_CURRENT`).
    Quorum {
        quorate: bool,
        ring: RingId,
        members: Vec<u32>,
    },
    /// A membership was synced (model v1).
    Nodelist {
        ring: RingId,
        members: Vec<u32>,
        joined: Vec<u32>,
        left: Vec<u32>,
    },
}

/// One quorum handle (`quorum_handle_t`).
pub struct Quorum {
    conn: Conn,
    quorum_type: u32,
    model: Model,
}

impl Quorum {
    /// `quorum_initialize`: model v0, attached to the local rotord.
    pub fn initialize() -> Result<Quorum, Error> {
        Quorum::model_initialize_at(&ipc_shm::socket_name(), Model::V0)
    }

    /// `quorum_model_initialize`.
    pub fn model_initialize(model: Model) -> Result<Quorum, Error> {
        Quorum::model_initialize_at(&ipc_shm::socket_name(), model)
    }

    pub fn model_initialize_at(name: &str, model: Model) -> Result<Quorum, Error> {
        let mut q = Quorum {
            conn: Conn::connect(name)?,
            quorum_type: QUORUM_FREE,
            model,
        };
        let req = match model {
            Model::V0 => Request::GetType,
            Model::V1 => Request::ModelGetType {
                model: model.code(),
            },
        };
        q.quorum_type = q.call(req)?;
        Ok(q)
    }

    /// `QUORUM_SET` when votequorum decides, `QUORUM_FREE` without a provider.
    pub fn quorum_type(&self) -> u32 {
        self.quorum_type
    }

    pub fn model(&self) -> Model {
        self.model
    }

    fn call(&mut self, req: Request) -> Result<u32, Error> {
        let id = self.conn.req_id();
        req.encode(id, &mut self.conn.out);
        let record = self.conn.call(id, is_reply)?;
        match Event::decode(&record)? {
            Event::Reply {
                status: Status::Ok,
                value,
                ..
            } => Ok(value),
            Event::Reply { status, .. } => Err(Error::Status(status)),
            _ => Err(Error::Protocol("a notification instead of a reply")),
        }
    }

    /// `quorum_getquorate`.
    pub fn getquorate(&mut self) -> Result<bool, Error> {
        Ok(self.call(Request::GetQuorate)? != 0)
    }

    /// `quorum_trackstart`: `TRACK_CURRENT` (the state now), `TRACK_CHANGES` (now and every
    /// change), `TRACK_CHANGES_ONLY`. The notifications come through `dispatch`.
    pub fn trackstart(&mut self, flags: u32) -> Result<(), Error> {
        self.call(Request::TrackStart { flags }).map(|_| ())
    }

    /// `quorum_trackstop`.
    pub fn trackstop(&mut self) -> Result<(), Error> {
        self.call(Request::TrackStop).map(|_| ())
    }

    /// A descriptor to poll for readability (`quorum_fd_get`); call again before each sleep.
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

    /// The next notification, waiting as `wait` says; `None` when none came. Model v0's
    /// quorum notification carries the ring sequence only (`ring.nodeid` is 0).
    pub fn poll_notification(&mut self, wait: Wait) -> Result<Option<Notification>, Error> {
        let mut wait = wait;
        loop {
            let Some(record) = self.conn.next(wait)? else {
                return Ok(None);
            };
            match Event::decode(&record)? {
                Event::Quorum {
                    quorate,
                    ring,
                    members,
                } => {
                    let ring = match self.model {
                        Model::V0 => RingId {
                            nodeid: 0,
                            seq: ring.seq,
                        },
                        Model::V1 => ring,
                    };
                    return Ok(Some(Notification::Quorum {
                        quorate,
                        ring,
                        members,
                    }));
                }
                Event::Nodelist {
                    ring,
                    members,
                    joined,
                    left,
                } => {
                    return Ok(Some(Notification::Nodelist {
                        ring,
                        members,
                        joined,
                        left,
                    }))
                }
                // A late reply to a request that timed out: what is left of the wait is at
                // most another look.
                Event::Reply { .. } => {
                    if wait != Wait::Spin {
                        wait = Wait::No;
                    }
                }
            }
        }
    }

    /// Runs the handler for waiting notifications (`quorum_dispatch`); returns how many.
    pub fn dispatch(&mut self, mode: Dispatch, h: &mut impl QuorumHandler) -> Result<usize, Error> {
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
                    quorate,
                    ring,
                    members,
                } => h.quorum(quorate, ring, &members),
                Notification::Nodelist {
                    ring,
                    members,
                    joined,
                    left,
                } => h.nodelist(ring, &members, &joined, &left),
            }
            n += 1;
            if mode == Dispatch::One {
                break;
            }
        }
        Ok(n)
    }
}
