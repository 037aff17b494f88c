//! CPG, with libcpg's semantics: a `Cpg` is one handle; it joins at most one group at a time;
//! `mcast` sends to the joined group with AGREED or SAFE delivery; every member, the sender
//! included, receives each message and each membership change of the group in one total
//! order, through `dispatch` and a [`Handler`].

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use rotor_proto::codec::Reader;
pub use rotor_proto::cpg::{
    Delivery, Event, Guarantee, Member, Reason, GROUP_NAME_MAX, JOIN_FLAGS_KNOWN,
    JOIN_INITIAL_TOTEM_CONF,
};
use rotor_proto::cpg::{Request, OP_REPLY, OP_WELCOME};
use rotor_proto::Status;

use crate::conn::Conn;
use crate::Error;

/// What `dispatch` calls, in delivery order.
pub trait Handler {
    fn deliver(&mut self, group: &[u8], sender: Member, guarantee: Guarantee, data: &[u8]);
    fn confchg(
        &mut self,
        group: &[u8],
        members: &[Member],
        left: &[(Member, Reason)],
        joined: &[(Member, Reason)],
    );
    /// The totem ring changed (regular configurations).
    fn totem_confchg(&mut self, _ring_rep: u32, _ring_seq: u64, _members: &[u32]) {}
}

/// How much `dispatch` does (libcpg's `CS_DISPATCH_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// At most one event, without waiting.
    One,
    /// Every event waiting now, without waiting for more.
    All,
    /// Wait up to the duration for one event, then everything waiting.
    Blocking(Duration),
    /// Spin (no sleep) for one event, then everything waiting: lowest latency.
    Busy,
}

/// How long [`Cpg::poll_event`] waits for an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Not at all.
    No,
    /// Up to the duration (spinning briefly, then sleeping).
    Up(Duration),
    /// Spin until one arrives.
    Spin,
}

/// One event taken from the handle, owned: for callers that run their callbacks after
/// releasing the handle (the C library calls back into user code, which may use the handle).
pub struct Received {
    /// The record is its first `len` bytes: the rest is room the connection receives into
    /// once the memory comes back ([`Cpg::recycle`]).
    buf: Vec<u8>,
    len: usize,
}

impl Received {
    /// The event; its slices borrow the record.
    pub fn event(&self) -> Result<Event<'_>, Error> {
        Ok(Event::decode(&self.buf[..self.len])?)
    }

    /// The event if it is a delivery (`None`: another kind, read it with
    /// [`Received::event`]), without building the whole event.
    #[inline]
    pub fn delivery(&self) -> Result<Option<Delivery<'_>>, Error> {
        Ok(Delivery::decode(&self.buf[..self.len])?)
    }

    /// The whole record, writable (a delivery's data is a range of it: libcpg hands the
    /// application a writable message).
    #[inline]
    pub fn record_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The record's first byte, to turn a slice of [`Received::event`] into an offset.
    #[inline]
    pub fn record_start(&self) -> *const u8 {
        self.buf.as_ptr()
    }
}

/// A group and its members.
pub type GroupMembers = (Vec<u8>, Vec<Member>);

/// One CPG handle.
pub struct Cpg {
    conn: Conn,
    node_id: u32,
    message_size_max: usize,
    group: Option<Vec<u8>>,
    /// The last multicast was refused for want of room and none was accepted since.
    flow_controlled: bool,
    /// A record's memory given back by [`Cpg::recycle`], for the next [`Cpg::poll_event`].
    spare: Option<Vec<u8>>,
}

fn is_reply(record: &[u8], req_id: u32) -> bool {
    record.len() >= 8
        && u16::from_le_bytes([record[0], record[1]]) == OP_REPLY
        && u32::from_le_bytes([record[4], record[5], record[6], record[7]]) == req_id
}

impl Cpg {
    /// Attaches to the local node (`$ROTOR_IPC_SOCKET` + `-cpg`, default `rotor-ipc-cpg`).
    pub fn initialize() -> Result<Cpg, Error> {
        Cpg::initialize_at(&rotor_proto::cpg_socket_name(&ipc_shm::socket_name()))
    }

    /// Attaches through the abstract socket `name`.
    pub fn initialize_at(name: &str) -> Result<Cpg, Error> {
        let mut conn = Conn::connect(name)?;
        let first = conn
            .next(Wait::Up(crate::conn::REPLY_TIMEOUT))?
            .ok_or(Error::Timeout)?;
        match Event::decode(&first)? {
            Event::Welcome {
                node_id,
                message_size_max,
            } => Ok(Cpg {
                conn,
                node_id,
                message_size_max: message_size_max as usize,
                group: None,
                flow_controlled: false,
                spare: None,
            }),
            Event::Reply {
                req_id: rotor_proto::cpg::REFUSED_REQ_ID,
                status,
                ..
            } => Err(Error::Refused {
                status,
                message: "the node refused the session: its dataplane is not serving yet".into(),
            }),
            _ => Err(Error::Protocol("first record is not a welcome")),
        }
    }

    /// This node's id (`cpg_local_get`).
    pub fn local_node_id(&self) -> u32 {
        self.node_id
    }

    /// Largest message `mcast` takes (`cpg_max_atomic_msgsize_get`).
    pub fn max_message_size(&self) -> usize {
        self.message_size_max
    }

    fn call(&mut self, req: Request<'_>) -> Result<(Vec<Member>, Vec<GroupMembers>), Error> {
        let id = self.conn.req_id();
        req.encode(id, &mut self.conn.out);
        let record = self.conn.call(id, is_reply)?;
        match Event::decode(&record)? {
            Event::Reply {
                status: Status::Ok,
                members,
                groups,
                ..
            } => Ok((
                members,
                groups.into_iter().map(|(g, m)| (g.to_vec(), m)).collect(),
            )),
            Event::Reply { status, .. } => Err(Error::Status(status)),
            _ => Err(Error::Protocol("reply of the wrong kind")),
        }
    }

    /// Joins `group` (`cpg_join`); the join shows in a confchg once it is ordered.
    pub fn join(&mut self, group: &[u8]) -> Result<(), Error> {
        self.join_with(group, 0)
    }

    /// Joins `group` with `JOIN_*` flags: with [`JOIN_INITIAL_TOTEM_CONF`] the current ring
    /// comes as a totem confchg right after the join (libcpg's model v1 flag).
    pub fn join_with(&mut self, group: &[u8], flags: u32) -> Result<(), Error> {
        if group.is_empty() || group.len() > GROUP_NAME_MAX || flags & !JOIN_FLAGS_KNOWN != 0 {
            return Err(Error::Status(Status::InvalidParam));
        }
        self.call(Request::Join { group, flags })?;
        self.group = Some(group.to_vec());
        Ok(())
    }

    /// The group this handle joined, if any.
    pub fn joined_group(&self) -> Option<&[u8]> {
        self.group.as_deref()
    }

    /// Leaves `group` (`cpg_leave`).
    pub fn leave(&mut self, group: &[u8]) -> Result<(), Error> {
        self.call(Request::Leave { group })?;
        self.group = None;
        Ok(())
    }

    /// Multicasts `data` to the joined group (`cpg_mcast_joined`). `Err(Error::TryAgain)`
    /// when the ring to the dataplane is full: nothing was sent; dispatch and retry.
    pub fn mcast(&mut self, guarantee: Guarantee, data: &[u8]) -> Result<(), Error> {
        if self.group.is_none() {
            return Err(Error::Status(Status::NotExist));
        }
        if data.len() > self.message_size_max {
            return Err(Error::Status(Status::TooBig));
        }
        let id = self.conn.req_id();
        Request::encode_mcast_head(id, guarantee, data.len(), &mut self.conn.out);
        // Head and data gathered straight into the ring: the data is copied once here.
        let sent = self.conn.try_send_out_with(data);
        self.flow_controlled = matches!(sent, Err(Error::TryAgain));
        sent
    }

    /// [`Cpg::mcast`] that, refused room, keeps trying for up to `spin` and gives up early
    /// when an event waits: `Err(Error::TryAgain)` then means the caller should dispatch (an
    /// event waits) or sleep on [`Cpg::fd`] (none came within `spin`). A sender that would
    /// otherwise sleep at once on every refusal (libcpg's callers, which poll the fd after
    /// `CS_ERR_TRY_AGAIN`) thus catches the room or the delivery that comes within
    /// microseconds, as a blocking [`Cpg::dispatch`] spins before it sleeps, and the node
    /// does not have to wake it.
    pub fn mcast_spin(
        &mut self,
        guarantee: Guarantee,
        data: &[u8],
        spin: Duration,
    ) -> Result<(), Error> {
        let mut started = None;
        loop {
            match self.mcast(guarantee, data) {
                Err(Error::TryAgain) => {}
                sent => return sent,
            }
            let start = *started.get_or_insert_with(Instant::now);
            if self.conn.record_waiting()? || start.elapsed() >= spin {
                return Err(Error::TryAgain);
            }
            std::hint::spin_loop();
        }
    }

    /// Whether multicasts are being refused for want of room (`cpg_flow_control_state_get`):
    /// true from a multicast that returned `TryAgain` until one is accepted.
    pub fn flow_control_enabled(&self) -> bool {
        self.flow_controlled
    }

    /// The members of `group` as this node has delivered them (`cpg_membership_get`).
    pub fn membership(&mut self, group: &[u8]) -> Result<Vec<Member>, Error> {
        Ok(self.call(Request::Membership { group })?.0)
    }

    /// Every group on the cluster with its members (`cpg_iteration_*`).
    pub fn groups(&mut self) -> Result<Vec<GroupMembers>, Error> {
        Ok(self.call(Request::Groups)?.1)
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

    /// A descriptor to poll for readability (`cpg_fd_get`); call again before each sleep.
    pub fn fd(&mut self) -> Result<RawFd, Error> {
        self.conn.fd()
    }

    /// The next event (deliveries, group changes, totem changes), waiting as `wait` says;
    /// `None` when none came. The record is not copied: the connection hands over the memory
    /// it received it into and takes that of the last event given back with
    /// [`Cpg::recycle`] in exchange.
    #[inline]
    pub fn poll_event(&mut self, wait: Wait) -> Result<Option<Received>, Error> {
        if !self.take_event(wait)? {
            return Ok(None);
        }
        let mut buf = self.spare.take().unwrap_or_default();
        let len = self.conn.hand_over(&mut buf);
        Ok(Some(Received { buf, len }))
    }

    /// Takes back an event of [`Cpg::poll_event`] that its caller is done with: the next
    /// one reuses its memory, so a caller that polls and recycles allocates once, not per
    /// event (libcpg's dispatch).
    #[inline]
    pub fn recycle(&mut self, received: Received) {
        self.spare = Some(received.buf);
    }

    /// Makes the next event's record the connection's current one, skipping late replies;
    /// false when none came.
    fn take_event(&mut self, wait: Wait) -> Result<bool, Error> {
        let mut wait = wait;
        loop {
            if !self.conn.take(wait)? {
                return Ok(false);
            }
            // The envelope alone tells: the event is decoded once, by whoever takes it.
            let (envelope, _) = Reader::new(self.conn.current())?;
            if !matches!(envelope.op, OP_REPLY | OP_WELCOME) {
                return Ok(true);
            }
            // A late reply to a request that already timed out. Whatever the wait, what is
            // left of it now is at most another look.
            wait = match wait {
                Wait::Spin => Wait::Spin,
                _ => Wait::No,
            };
        }
    }

    /// Runs the handler for waiting events (`cpg_dispatch`); returns how many it handled.
    pub fn dispatch(&mut self, mode: Dispatch, h: &mut impl Handler) -> Result<usize, Error> {
        let mut n = 0;
        let mut wait = match mode {
            Dispatch::Blocking(d) => Wait::Up(d),
            Dispatch::Busy => Wait::Spin,
            Dispatch::One | Dispatch::All => Wait::No,
        };
        // Each event is decoded where the connection holds it: the handler borrows the data.
        while self.take_event(wait)? {
            wait = Wait::No;
            // Deliveries, nearly every event, are read as their four fields rather than as the
            // whole event (see `Delivery`).
            if let Some(d) = Delivery::decode(self.conn.current())? {
                h.deliver(d.group, d.sender, d.guarantee, d.data);
                n += 1;
                if mode == Dispatch::One {
                    break;
                }
                continue;
            }
            match Event::decode(self.conn.current())? {
                Event::Deliver { .. } => unreachable!("read as a Delivery above"),
                Event::ConfChg {
                    group,
                    members,
                    joined,
                    left,
                } => h.confchg(group, &members, &left, &joined),
                Event::TotemConfChg {
                    ring_rep,
                    ring_seq,
                    members,
                } => h.totem_confchg(ring_rep, ring_seq, &members),
                Event::Reply { .. } | Event::Welcome { .. } => continue,
            }
            n += 1;
            if mode == Dispatch::One {
                break;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    //! `poll_event` and `recycle` against a node played by an in-process ipc-shm server.

    use super::*;
    use ipc_shm::{AllowList, Server, WaitMode};

    fn deliver(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Event::Deliver {
            guarantee: Guarantee::Agreed,
            sender: Member { node: 2, pid: 7 },
            group: b"g",
            data,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn every_event_comes_whole_whether_it_was_held_or_received_and_its_memory_comes_back() {
        let name = format!("rotor-client-cpg-test-{}", std::process::id());
        let server = Server::bind(&name, AllowList::root_and_owner()).unwrap();
        let node = std::thread::spawn(move || {
            let mut s = server.accept().unwrap();
            let send = |s: &mut ipc_shm::Session, e: &[u8]| s.send(e, WaitMode::Blocking).unwrap();
            let mut out = Vec::new();
            Event::Welcome {
                node_id: 1,
                message_size_max: 1 << 20,
            }
            .encode(&mut out);
            send(&mut s, &out);
            let mut buf = vec![0; s.recv_size_max()];
            let n = s.recv(&mut buf, WaitMode::Blocking).unwrap();
            let (req_id, _) = Request::decode(&buf[..n]).unwrap();
            // Two deliveries before the reply: the client holds them for the next dispatch.
            send(&mut s, &deliver(b"first, held"));
            send(&mut s, &deliver(b"second, held"));
            out.clear();
            Event::Reply {
                req_id,
                status: Status::Ok,
                members: vec![Member { node: 2, pid: 7 }],
                groups: Vec::new(),
            }
            .encode(&mut out);
            send(&mut s, &out);
            for data in [
                &b"third, from the ring"[..],
                b"fourth",
                b"fifth, a longer one",
            ] {
                send(&mut s, &deliver(data));
            }
            // Until the client has read them all.
            let _ = s.recv(&mut buf, WaitMode::Blocking);
        });
        let mut cpg = Cpg::initialize_at(&name).unwrap();
        assert_eq!(cpg.membership(b"g").unwrap(), [Member { node: 2, pid: 7 }]);
        for want in [
            &b"first, held"[..],
            b"second, held",
            b"third, from the ring",
            b"fourth",
            b"fifth, a longer one",
        ] {
            let mut got = cpg
                .poll_event(Wait::Up(Duration::from_secs(5)))
                .unwrap()
                .unwrap();
            let d = got.delivery().unwrap().unwrap();
            assert_eq!((d.group, d.sender.pid, d.data), (&b"g"[..], 7, want));
            let record = got.record_mut().to_vec();
            assert_eq!(record, deliver(want));
            cpg.recycle(got);
        }
        assert!(cpg.poll_event(Wait::No).unwrap().is_none());
        drop(cpg);
        node.join().unwrap();
    }
}
