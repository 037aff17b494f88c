//! cmap: the node's key/value database, answered by rotord (with the node's status and a
//! shutdown, as before the cfg handle: see `cfg::Cfg` for the rest of cfg).

use std::time::Duration;

pub use rotor_proto::cfg::{NodeStatus, StatusReply};
use rotor_proto::cmap::{Event, Request, OP_REPLY};
pub use rotor_proto::cmap::{
    Value, ValueType, TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX,
};
use rotor_proto::{cfg, Status};

use crate::conn::Conn;
use crate::cpg::Wait;
use crate::Error;

/// A change reported to a track.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub handle: u64,
    /// `TRACK_ADD`, `TRACK_MODIFY` or `TRACK_DELETE`.
    pub kind: u8,
    pub key: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

fn is_reply(record: &[u8], req_id: u32) -> bool {
    record.len() >= 8
        && (u16::from_le_bytes([record[0], record[1]]) == OP_REPLY
            || cfg::REPLY_OPS.contains(&u16::from_le_bytes([record[0], record[1]])))
        && u32::from_le_bytes([record[4], record[5], record[6], record[7]]) == req_id
}

/// Which map a handle reads (libcmap's `cmap_map_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    /// Every key: configuration, runtime state and statistics.
    Default,
    /// Statistics only: the keys under [`STATS_PREFIX`] (corosync keeps them in a map of
    /// their own; rotor keeps one database and shows this map as that part of it).
    Stats,
}

/// The prefix of every key in the stats map.
pub const STATS_PREFIX: &str = "stats.";

/// A connection to rotord for cmap and cfg.
pub struct Cmap {
    conn: Conn,
    map: Map,
}

type Reply = (Option<Value>, Vec<(String, Value)>);

impl Cmap {
    /// Attaches to the local rotord (`$ROTOR_IPC_SOCKET`, default `rotor-ipc`).
    pub fn initialize() -> Result<Cmap, Error> {
        Cmap::initialize_at(&ipc_shm::socket_name())
    }

    pub fn initialize_at(name: &str) -> Result<Cmap, Error> {
        Cmap::initialize_map_at(name, Map::Default)
    }

    /// Attaches to the local rotord's `map` (`cmap_initialize_map`).
    pub fn initialize_map(map: Map) -> Result<Cmap, Error> {
        Cmap::initialize_map_at(&ipc_shm::socket_name(), map)
    }

    pub fn initialize_map_at(name: &str, map: Map) -> Result<Cmap, Error> {
        Ok(Cmap {
            conn: Conn::connect(name)?,
            map,
        })
    }

    pub fn map(&self) -> Map {
        self.map
    }

    /// A key outside this handle's map does not exist for it.
    fn in_map(&self, key: &str) -> Result<(), Error> {
        match self.map {
            Map::Stats if !key.starts_with(STATS_PREFIX) => Err(Error::Refused {
                status: Status::NotExist,
                message: format!(
                    "cmap key {key}: not in the stats map (keys under {STATS_PREFIX})"
                ),
            }),
            _ => Ok(()),
        }
    }

    fn call(&mut self, req: Request<'_>) -> Result<Reply, Error> {
        let id = self.conn.req_id();
        req.encode(id, &mut self.conn.out);
        let record = self.conn.call(id, is_reply)?;
        match Event::decode(&record)? {
            Event::Reply {
                status: Status::Ok,
                value,
                entries,
                ..
            } => Ok((value, entries)),
            Event::Reply {
                status, message, ..
            } => Err(Error::Refused { status, message }),
            Event::Notify { .. } => Err(Error::Protocol("notification instead of a reply")),
        }
    }

    pub fn get(&mut self, key: &str) -> Result<Value, Error> {
        self.in_map(key)?;
        self.call(Request::Get { key })?
            .0
            .ok_or(Error::Protocol("get reply without a value"))
    }

    pub fn set(&mut self, key: &str, value: Value) -> Result<(), Error> {
        self.in_map(key)?;
        self.call(Request::Set { key, value }).map(|_| ())
    }

    pub fn delete(&mut self, key: &str) -> Result<(), Error> {
        self.in_map(key)?;
        self.call(Request::Delete { key }).map(|_| ())
    }

    /// Adds one to an integer key, wrapping (`cmap_inc`).
    pub fn inc(&mut self, key: &str) -> Result<(), Error> {
        self.in_map(key)?;
        self.call(Request::Inc { key }).map(|_| ())
    }

    /// Subtracts one from an integer key, wrapping (`cmap_dec`).
    pub fn dec(&mut self, key: &str) -> Result<(), Error> {
        self.in_map(key)?;
        self.call(Request::Dec { key }).map(|_| ())
    }

    /// Every key of this handle's map under `prefix`, sorted.
    pub fn iter(&mut self, prefix: &str) -> Result<Vec<(String, Value)>, Error> {
        // The stats map is the part of the database under `stats.`: ask for the narrower of
        // the two prefixes (a prefix outside it, like `totem.`, matches nothing).
        let prefix = match self.map {
            Map::Stats if STATS_PREFIX.starts_with(prefix) => STATS_PREFIX,
            Map::Stats if !prefix.starts_with(STATS_PREFIX) => return Ok(Vec::new()),
            _ => prefix,
        };
        Ok(self.call(Request::Iter { prefix })?.1)
    }

    /// Tracks changes of `key` (or of every key under it with `TRACK_PREFIX`); returns the
    /// handle notifications carry.
    pub fn track_add(&mut self, key: &str, flags: u8) -> Result<u64, Error> {
        let key = match self.map {
            Map::Stats if flags & TRACK_PREFIX != 0 && STATS_PREFIX.starts_with(key) => {
                STATS_PREFIX
            }
            _ => {
                self.in_map(key)?;
                key
            }
        };
        match self.call(Request::TrackAdd { key, flags })?.0 {
            Some(Value::U64(h)) => Ok(h),
            _ => Err(Error::Protocol("track reply without a handle")),
        }
    }

    pub fn track_delete(&mut self, handle: u64) -> Result<(), Error> {
        self.call(Request::TrackDelete { handle }).map(|_| ())
    }

    /// The next notification, waiting up to `wait`.
    pub fn next_notification(&mut self, wait: Duration) -> Result<Option<Notification>, Error> {
        self.poll_notification(Some(wait))
    }

    /// The next notification: without waiting for `None`, else waiting up to the duration.
    pub fn poll_notification(
        &mut self,
        wait: Option<Duration>,
    ) -> Result<Option<Notification>, Error> {
        let Some(record) = self.conn.next(wait.map_or(Wait::No, Wait::Up))? else {
            return Ok(None);
        };
        match Event::decode(&record)? {
            Event::Notify {
                handle,
                kind,
                key,
                old,
                new,
            } => Ok(Some(Notification {
                handle,
                kind,
                key,
                old,
                new,
            })),
            Event::Reply { .. } => Ok(None),
        }
    }

    /// A descriptor to poll for readability while notifications wait (`cmap_fd_get`); call
    /// again before each sleep.
    pub fn fd(&mut self) -> Result<std::os::fd::RawFd, Error> {
        self.conn.fd()
    }

    /// The session's control socket, to poll beside [`Self::fd`]: it hangs up when the node
    /// goes away.
    pub fn control_fd(&self) -> std::os::fd::RawFd {
        self.conn.control_fd()
    }

    /// Makes [`Self::fd`] readable now, to wake a thread sleeping on it (one dispatching on
    /// a handle another thread is closing).
    pub fn wake(&self) {
        self.conn.wake();
    }

    /// The node's ring and link status (cfg).
    pub fn status(&mut self) -> Result<StatusReply, Error> {
        let id = self.conn.req_id();
        cfg::Request::Status.encode(id, &mut self.conn.out);
        let record = self.conn.call(id, is_reply)?;
        match cfg::Event::decode(&record)? {
            cfg::Event::Status { reply, .. } => Ok(reply),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// Asks rotord to leave the ring and stop (cfg shutdown).
    pub fn shutdown(&mut self) -> Result<(), Error> {
        let id = self.conn.req_id();
        cfg::Request::Shutdown.encode(id, &mut self.conn.out);
        let record = self.conn.call(id, is_reply)?;
        match cfg::Event::decode(&record)? {
            cfg::Event::ShutdownReply {
                status: Status::Ok, ..
            } => Ok(()),
            cfg::Event::ShutdownReply { status, .. } => Err(Error::Status(status)),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }
}
