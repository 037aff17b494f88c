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
use crate::cpg::Dispatch;
use crate::Error;

/// What `dispatch` calls, in delivery order.
pub trait QuorumHandler {
    /// Quorum changed (or the current state, after `trackstart` with `TRACK_CURRENT`). Model
    /// v0's callback has the ring sequence only (`ring.seq`).
    fn quorum(&mut self, quorate: bool, ring: RingId, members: &[u32]);
    /// A membership was synced (model v1): its members and who joined and left.
    fn nodelist(&mut self, _ring: RingId, _members: &[u32], _joined: &[u32], _left: &[u32]) {}
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

    /// Runs the handler for waiting notifications (`quorum_dispatch`); returns how many.
    pub fn dispatch(&mut self, mode: Dispatch, h: &mut impl QuorumHandler) -> Result<usize, Error> {
        let mut n = 0;
        let mut first = match mode {
            Dispatch::Blocking(d) => self.conn.next(Some(d))?,
            Dispatch::Busy => Some(self.conn.next_busy()?),
            _ => None,
        };
        loop {
            let record = match first.take() {
                Some(r) => r,
                None => match self.conn.next(None)? {
                    Some(r) => r,
                    None => return Ok(n),
                },
            };
            match Event::decode(&record)? {
                Event::Quorum {
                    quorate,
                    ring,
                    members,
                } => {
                    let ring = match self.model {
                        // Model v0 knows the sequence only.
                        Model::V0 => RingId {
                            nodeid: 0,
                            seq: ring.seq,
                        },
                        Model::V1 => ring,
                    };
                    h.quorum(quorate, ring, &members)
                }
                Event::Nodelist {
                    ring,
                    members,
                    joined,
                    left,
                } => h.nodelist(ring, &members, &joined, &left),
                // A late reply to a request that timed out.
                Event::Reply { .. } => continue,
            }
            n += 1;
            if mode == Dispatch::One {
                return Ok(n);
            }
        }
    }
}
