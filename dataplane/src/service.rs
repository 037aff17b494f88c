//! The dataplane as rotord runs it: CPG sessions handed over by rotord on the control socket
//! are served from the same loop that runs totem-core. Requests are read from each client's
//! ring and go to the node through totem-core's `Sessions` (the local side of CPG, which the
//! simulator runs too); deliveries and membership changes are written to the ring of every
//! session that `Sessions::route` names — the group's members from the change that adds each
//! one to the change that shows it leave, never a session whose join is still in flight —, in
//! delivery order. A delivery's record is its header, built on the stack, and its data, borrowed
//! from the core's frame store, gathered straight into each ring: after the socket, the store's
//! copy and the ring's are the only copies of a message.
//!
//! Flow control without loss: a multicast the node refuses with "try again" stays pending in
//! its session (nothing more is read from that ring until it is accepted), so a client whose
//! ring then fills gets `TryAgain` itself. In the other direction a client that does not drain
//! its ring gets its records queued here up to `CLIENT_BACKLOG_BYTES_MAX`; beyond that it is
//! disconnected with a logged reason — it can no longer see every message, and EVS forbids
//! skipping one — and its processes leave their groups as "process down".

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant as WallInstant};

use ipc_shm::{DetachedSession, PeerCred, Session, SessionError};
use rotor_proto::control::{DataplaneStart, FromDataplane, RingReport, ToDataplane};
use rotor_proto::cpg as proto;
use rotor_proto::RingState;
use rotor_proto::Status;
use totem_core::{
    ConfigKind, Event, Guarantee, Member, Reason, SessionId, Sessions, Submit, SubmitError,
};

use crate::quorum::QuorumLink;
use crate::runner::Runner;
use crate::stats::Entries;
use crate::transport::Transport;

/// Records one client may have queued here beyond its ring before it is disconnected.
pub const CLIENT_BACKLOG_BYTES_MAX: usize = 64 << 20;
/// Requests taken from one client per turn, so one busy client cannot starve the others.
const REQUESTS_PER_TURN: usize = 256;
/// How long the loop sleeps at most while a client's ring is too full for its records (the
/// client frees room without waking us).
const BACKLOG_RETRY: Duration = Duration::from_millis(1);
/// How long an orderly shutdown waits for this node's leave to be ordered (allow_downscale).
const LEAVE_ANNOUNCE_WAIT: Duration = Duration::from_secs(2);
/// How often sessions are checked for a dead peer and stats are published.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(200);

/// How the loop waits for work: the poll mode rotord asked for (`rotor.poll_mode`), resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollLoop {
    /// Never sleep: for a dedicated core.
    Busy,
    /// Spin `spin` after the last work, then sleep in poll(2).
    Adaptive { spin: Duration },
    /// Always sleep in poll(2) when idle.
    Blocking,
}

/// Pollers one dataplane runs (its one poll loop).
const POLLERS: usize = 1;
/// Cores a machine keeps for everything but the pollers: rotord and applications, and the
/// kernel's network processing (softirqs: the copy-mode AF_XDP and UDP paths run there).
const CORES_KEPT: usize = 2;

impl PollLoop {
    /// How the log names the mode: "busy", "adaptive (spin 10 µs)", "blocking".
    pub fn describe(self) -> String {
        match self {
            PollLoop::Busy => "busy".into(),
            PollLoop::Adaptive { spin } => format!("adaptive (spin {} µs)", spin.as_micros()),
            PollLoop::Blocking => "blocking".into(),
        }
    }

    /// The default mode: busy when the loop is pinned to a core of its own and
    /// `cpus` leaves `CORES_KEPT` for the rest, adaptive (spinning `spin`) when there are fewer
    /// free cores than pollers — as on a 2-core machine. Returns the mode and why, for the log.
    pub fn auto(cpus: usize, pinned: bool, spin: Duration) -> (PollLoop, String) {
        if !pinned {
            let why = "not pinned to a core (rotor.dataplane_cores / --core)".to_owned();
            return (PollLoop::Adaptive { spin }, why);
        }
        let free = cpus.saturating_sub(CORES_KEPT);
        let why = format!(
            "{cpus} CPUs, {CORES_KEPT} kept for rotord, applications and the kernel: {free} \
             free for {POLLERS} poller"
        );
        if free >= POLLERS {
            (PollLoop::Busy, why)
        } else {
            (PollLoop::Adaptive { spin }, why)
        }
    }
}

/// Why a session was closed, for `ipc.disconnects.<kind>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseKind {
    /// Its ring stayed full beyond `CLIENT_BACKLOG_BYTES_MAX`.
    Slow,
    /// It wrote a record that does not decode, or corrupted its ring.
    Malformed,
    /// The process exited (or its control socket hung up).
    Gone,
    /// Anything else the session reported.
    Error,
}

impl CloseKind {
    const ALL: [CloseKind; 4] = [
        CloseKind::Slow,
        CloseKind::Malformed,
        CloseKind::Gone,
        CloseKind::Error,
    ];

    fn name(self) -> &'static str {
        match self {
            CloseKind::Slow => "slow",
            CloseKind::Malformed => "malformed",
            CloseKind::Gone => "gone",
            CloseKind::Error => "error",
        }
    }

    fn of(e: &SessionError) -> CloseKind {
        match e {
            SessionError::PeerGone => CloseKind::Gone,
            SessionError::Corrupt(_) => CloseKind::Malformed,
            _ => CloseKind::Error,
        }
    }
}

/// What the service counts (published as `ipc.*`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpcCounters {
    /// Sessions adopted since start.
    pub attached: u64,
    /// Requests taken from client rings and answered or submitted.
    pub requests: u64,
    /// Times a request waited because the node said "try again" (backpressure towards the
    /// client: nothing more is read from its ring meanwhile).
    pub requests_deferred: u64,
    /// Records written to client rings (deliveries, changes, replies).
    pub records_out: u64,
    /// Records that found their client's ring full and were queued here.
    pub records_backlogged: u64,
    /// Most bytes ever queued for one client.
    pub backlog_bytes_max: u64,
    /// Sessions closed, by [`CloseKind`].
    pub disconnects: [u64; 4],
}

/// One attached session's ring and what is queued for it; its group membership is kept by
/// `Sessions`.
struct Client {
    session: Session,
    peer: PeerCred,
    /// A request read from the ring that the node could not take yet.
    pending: Option<Vec<u8>>,
    /// Records waiting for room in the client's ring, and their total size.
    backlog: VecDeque<Vec<u8>>,
    backlog_bytes: usize,
    closed: Option<(CloseKind, String)>,
}

impl Client {
    fn close(&mut self, kind: CloseKind, why: String) {
        if self.closed.is_none() {
            self.closed = Some((kind, why));
        }
    }

    /// Writes one record to the client, queueing it behind earlier ones when the ring is full.
    fn send(&mut self, record: &[u8], counters: &mut IpcCounters) {
        self.send_parts(std::slice::from_ref(&record).iter().copied(), counters);
    }

    /// Writes one record made of `parts` straight into the client's ring (the one copy of a
    /// delivery on its way out: header from the stack, data borrowed from the core). Only when
    /// the ring is full is the record assembled into the backlog, the slow path.
    fn send_parts<'a>(
        &mut self,
        parts: impl Iterator<Item = &'a [u8]> + Clone,
        counters: &mut IpcCounters,
    ) {
        if self.closed.is_some() {
            return;
        }
        if self.backlog.is_empty() {
            match self.session.try_send_parts(parts.clone()) {
                Ok(()) => {
                    counters.records_out += 1;
                    return;
                }
                Err(SessionError::Full) => {}
                Err(e) => {
                    self.close(CloseKind::of(&e), format!("send: {e}"));
                    return;
                }
            }
        }
        let record: Vec<u8> = parts.flatten().copied().collect();
        self.backlog_bytes += record.len();
        self.backlog.push_back(record);
        counters.records_backlogged += 1;
        counters.backlog_bytes_max = counters.backlog_bytes_max.max(self.backlog_bytes as u64);
        if self.backlog_bytes > CLIENT_BACKLOG_BYTES_MAX {
            let why = format!("not draining its ring: {} bytes queued", self.backlog_bytes);
            self.close(CloseKind::Slow, why);
        }
    }

    fn drain_backlog(&mut self, counters: &mut IpcCounters) {
        while let Some(front) = self.backlog.front() {
            match self.session.try_send(front) {
                Ok(()) => {
                    counters.records_out += 1;
                    self.backlog_bytes -= front.len();
                    self.backlog.pop_front();
                }
                Err(SessionError::Full) => return,
                Err(e) => {
                    self.close(CloseKind::of(&e), format!("send: {e}"));
                    return;
                }
            }
        }
    }
}

/// The CPG sessions of one dataplane.
pub struct Clients {
    sessions: Sessions<Client>,
    node_id: u32,
    scratch: Vec<u8>,
    rx: Vec<u8>,
    counters: IpcCounters,
}

impl Clients {
    pub fn new(node_id: u32) -> Clients {
        Clients {
            sessions: Sessions::new(totem_core::NodeId(node_id)),
            node_id,
            scratch: Vec::new(),
            rx: vec![0; totem_core::limits::MESSAGE_SIZE_MAX + 4096],
            counters: IpcCounters::default(),
        }
    }

    pub fn counters(&self) -> &IpcCounters {
        &self.counters
    }

    /// `ipc.*`: sessions now and since start, requests, deferrals, records out and queued, the
    /// bytes queued now (all clients) and at most (one client), disconnects by kind, and the
    /// group changes of this node's processes that matched no request (never expected).
    pub fn entries(&self, out: &mut Entries) {
        let c = &self.counters;
        let backlog: usize = self.sessions.iter().map(|(_, c)| c.backlog_bytes).sum();
        for (k, v) in [
            ("ipc.clients", self.sessions.len() as u64),
            ("ipc.clients_attached", c.attached),
            ("ipc.requests", c.requests),
            ("ipc.requests_deferred", c.requests_deferred),
            ("ipc.records_out", c.records_out),
            ("ipc.records_backlogged", c.records_backlogged),
            ("ipc.backlog_bytes", backlog as u64),
            ("ipc.backlog_bytes_max", c.backlog_bytes_max),
            ("ipc.clients_disconnected", c.disconnects.iter().sum()),
            ("ipc.changes_unmatched", self.sessions.counters().unmatched),
        ] {
            out.push((k.into(), v));
        }
        for (kind, n) in CloseKind::ALL.iter().zip(c.disconnects) {
            out.push((format!("ipc.disconnects.{}", kind.name()), n));
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Starts serving a session rotord handed over.
    pub fn adopt(&mut self, session: Session) {
        let peer = session.peer();
        let mut c = Client {
            session,
            peer,
            pending: None,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            closed: None,
        };
        proto::Event::Welcome {
            node_id: self.node_id,
            message_size_max: totem_core::limits::MESSAGE_SIZE_MAX as u32,
        }
        .encode(&mut self.scratch);
        c.send(&self.scratch, &mut self.counters);
        self.counters.attached += 1;
        tracing::info!(
            target: "CPG",
            "client attached: pid {} uid {}",
            peer.pid,
            peer.uid
        );
        tracing::debug!(
            target: "CPG",
            "client pid {}: gid {}, {} session(s) served now",
            peer.pid,
            peer.gid,
            self.sessions.len() + 1
        );
        self.sessions.attach(peer.pid as u32, c);
    }

    /// Reads and submits client requests; returns how many were handled.
    pub fn serve<T: Transport>(&mut self, runner: &mut Runner<T>) -> usize {
        let mut handled = 0;
        self.sessions.submit_deferred(runner.node_mut());
        for index in 0..self.sessions.slot_count() {
            let Some(id) = self.sessions.id_at(index) else {
                continue;
            };
            let c = self.sessions.get_mut(id);
            c.drain_backlog(&mut self.counters);
            for _ in 0..REQUESTS_PER_TURN {
                let c = self.sessions.get_mut(id);
                if c.closed.is_some() {
                    break;
                }
                let record = match c.pending.take() {
                    Some(r) => r,
                    None => match c.session.try_recv(&mut self.rx) {
                        Ok(n) => self.rx[..n].to_vec(),
                        Err(SessionError::Empty) => break,
                        Err(e) => {
                            c.close(CloseKind::of(&e), format!("receive: {e}"));
                            break;
                        }
                    },
                };
                let counters = &mut self.counters;
                match handle(
                    &mut self.sessions,
                    id,
                    &record,
                    runner,
                    &mut self.scratch,
                    counters,
                ) {
                    Handled::Done => {
                        handled += 1;
                        counters.requests += 1;
                    }
                    Handled::Later => {
                        self.sessions.get_mut(id).pending = Some(record);
                        counters.requests_deferred += 1;
                        break;
                    }
                }
            }
        }
        self.reap(runner.node_mut());
        handled
    }

    /// Checks every session's peer (a SIGKILLed client is noticed here); a closed session
    /// leaves its group at the next `serve`.
    pub fn check_peers(&mut self) {
        for (_, c) in self.sessions.iter_mut() {
            if c.closed.is_none() {
                if let Err(e) = c.session.check_peer() {
                    let why = match e {
                        SessionError::PeerGone => "process exited".to_owned(),
                        ref e => e.to_string(),
                    };
                    c.close(CloseKind::of(&e), why);
                }
            }
        }
    }

    /// Detaches the closed sessions: a group each one had asked for is left as process-down.
    fn reap(&mut self, node: &mut impl Submit) {
        for index in 0..self.sessions.slot_count() {
            let Some(id) = self.sessions.id_at(index) else {
                continue;
            };
            let Some((kind, why)) = self.sessions.get(id).closed.clone() else {
                continue;
            };
            self.counters.disconnects[kind as usize] += 1;
            let c = self.sessions.detach(id, node);
            tracing::info!(
                target: "CPG",
                "client pid {} disconnected: {why}",
                c.peer.pid
            );
            tracing::debug!(
                target: "CPG",
                "client pid {}: {} record(s) ({} bytes) queued were dropped",
                c.peer.pid,
                c.backlog.len(),
                c.backlog_bytes
            );
        }
    }

    /// Writes one core event to the sessions `Sessions::route` names.
    pub fn on_event(&mut self, ev: &Event<'_>) {
        let counters = &mut self.counters;
        match ev {
            Event::Deliver(d) => {
                // Header on the stack, data borrowed from the core's frame store: each member's
                // ring gets the record in one copy (the fan-out itself), with no scratch record.
                let header = proto::DeliverHeader::new(
                    guarantee(d.guarantee),
                    member(d.sender),
                    d.group,
                    d.data.len(),
                );
                match d.data.as_slice() {
                    // A message that fit in a frame (the common case): two parts.
                    Some(data) => {
                        let record = [header.as_bytes(), data];
                        self.sessions
                            .route(ev, |c| c.send_parts(record.iter().copied(), counters));
                    }
                    None => {
                        let record = std::iter::once(header.as_bytes()).chain(d.data.parts());
                        self.sessions
                            .route(ev, |c| c.send_parts(record.clone(), counters));
                    }
                }
            }
            Event::Group(g) => {
                proto::Event::ConfChg {
                    group: &g.group,
                    members: g.members.iter().copied().map(member).collect(),
                    joined: g
                        .joined
                        .iter()
                        .map(|(m, r)| (member(*m), reason(*r)))
                        .collect(),
                    left: g
                        .left
                        .iter()
                        .map(|(m, r)| (member(*m), reason(*r)))
                        .collect(),
                }
                .encode(&mut self.scratch);
                let record = &self.scratch;
                self.sessions.route(ev, |c| c.send(record, counters));
            }
            Event::Config(c) if c.kind == ConfigKind::Regular => {
                proto::Event::TotemConfChg {
                    ring_rep: c.ring.rep,
                    ring_seq: c.ring.seq,
                    members: c.members.iter().map(|n| n.0).collect(),
                }
                .encode(&mut self.scratch);
                let record = &self.scratch;
                self.sessions.route(ev, |c| c.send(record, counters));
            }
            Event::Config(_) => {}
        }
    }

    /// Descriptors to sleep on: each session's wake eventfd (armed) and control socket.
    /// Returns `false` when a record is already waiting (do not sleep).
    pub fn arm(&mut self, fds: &mut Vec<RawFd>) -> Armed {
        let mut armed = Armed {
            ready: false,
            backlogged: false,
        };
        for (_, c) in self.sessions.iter_mut() {
            fds.push(c.session.control_fd());
            if !c.backlog.is_empty() {
                armed.backlogged = true;
            }
            if c.pending.is_some() {
                // The node refused its last request for want of room, which only the network
                // frees (the token's next visit): nothing to read from this client until then,
                // so no wake-up from it either. Spinning here starved the other processes.
                continue;
            }
            match c.session.arm_for_poll() {
                Ok(true) => armed.ready = true,
                Ok(false) => {}
                Err(e) => {
                    c.close(CloseKind::of(&e), e.to_string());
                    armed.ready = true;
                }
            }
            fds.push(c.session.as_raw_fd());
        }
        armed
    }
}

/// What [`Clients::arm`] found.
pub struct Armed {
    /// A record is waiting (or a session failed): do not sleep.
    pub ready: bool,
    /// Some client's ring is full with records queued for it: look again soon.
    pub backlogged: bool,
}

enum Handled {
    Done,
    /// The node said try again: keep the record and retry next turn.
    Later,
}

fn handle<T: Transport>(
    sessions: &mut Sessions<Client>,
    id: SessionId,
    record: &[u8],
    runner: &mut Runner<T>,
    scratch: &mut Vec<u8>,
    counters: &mut IpcCounters,
) -> Handled {
    let (req_id, req) = match proto::Request::decode(record) {
        Ok(r) => r,
        Err(e) => {
            let c = sessions.get_mut(id);
            c.close(CloseKind::Malformed, format!("malformed request: {e}"));
            return Handled::Done;
        }
    };
    let node = runner.node_mut();
    let mut members = Vec::new();
    let mut groups = Vec::new();
    let result = match req {
        proto::Request::Join { group, .. } => sessions.join(id, group, node),
        proto::Request::Leave { group } => sessions.leave(id, group, node),
        proto::Request::Mcast { guarantee, data } => {
            let guarantee = match guarantee {
                proto::Guarantee::Agreed => Guarantee::Agreed,
                proto::Guarantee::Safe => Guarantee::Safe,
            };
            match sessions.mcast(id, guarantee, data, node) {
                // Success is silent: the delivery is the answer.
                Ok(()) => return Handled::Done,
                Err(e) => Err(e),
            }
        }
        proto::Request::Membership { group } => {
            members = node.group_members(group).into_iter().map(member).collect();
            Ok(())
        }
        proto::Request::Groups => {
            groups = node.groups();
            Ok(())
        }
    };
    let status = match result {
        Ok(()) => Status::Ok,
        Err(e) => match submit_status(e) {
            None => return Handled::Later,
            Some(s) => s,
        },
    };
    let groups: Vec<(&[u8], Vec<proto::Member>)> = groups
        .iter()
        .map(|(g, m)| (g.as_slice(), m.iter().copied().map(member).collect()))
        .collect();
    reply(
        sessions.get_mut(id),
        req_id,
        status,
        (members, groups),
        scratch,
        counters,
    );
    if let proto::Request::Join { flags, .. } = req {
        if status == Status::Ok && flags & proto::JOIN_INITIAL_TOTEM_CONF != 0 {
            // libcpg's initial totem configuration: the ring this node is in now.
            let node = runner.node_mut();
            proto::Event::TotemConfChg {
                ring_rep: node.ring().rep,
                ring_seq: node.ring().seq,
                members: node.members().iter().map(|n| n.0).collect(),
            }
            .encode(scratch);
            sessions.get_mut(id).send(scratch, counters);
        }
    }
    Handled::Done
}

/// A reply's member list (Membership) and group list (Groups).
type ReplyLists<'a> = (Vec<proto::Member>, Vec<(&'a [u8], Vec<proto::Member>)>);

fn reply(
    c: &mut Client,
    req_id: u32,
    status: Status,
    (members, groups): ReplyLists<'_>,
    scratch: &mut Vec<u8>,
    counters: &mut IpcCounters,
) {
    proto::Event::Reply {
        req_id,
        status,
        members,
        groups,
    }
    .encode(scratch);
    c.send(scratch, counters);
}

/// `None` for "try again later".
fn submit_status(e: SubmitError) -> Option<Status> {
    Some(match e {
        SubmitError::TryAgain => return None,
        SubmitError::TooLarge(_) => Status::TooBig,
        SubmitError::BadName => Status::InvalidParam,
        SubmitError::AlreadyJoined => Status::Exist,
        SubmitError::NotJoined => Status::NotExist,
    })
}

fn member(m: Member) -> proto::Member {
    proto::Member {
        node: m.node.0,
        pid: m.pid,
    }
}

fn guarantee(g: Guarantee) -> proto::Guarantee {
    match g {
        Guarantee::Agreed => proto::Guarantee::Agreed,
        Guarantee::Safe => proto::Guarantee::Safe,
    }
}

fn reason(r: Reason) -> proto::Reason {
    match r {
        Reason::Join => proto::Reason::Join,
        Reason::Leave => proto::Reason::Leave,
        Reason::NodeDown => proto::Reason::NodeDown,
        Reason::NodeUp => proto::Reason::NodeUp,
        Reason::ProcDown => proto::Reason::ProcDown,
    }
}

/// The largest message on the control socket: a `Start` with 384 peers, a 4 KiB key and every
/// totem setting is well below it.
const CONTROL_MESSAGE_MAX: usize = 64 << 10;

/// The rotord side of the control socket.
pub struct Control {
    sock: OwnedFd,
    buf: Vec<u8>,
    /// Messages of `send_in_order` waiting for room in the socket.
    queued: VecDeque<Vec<u8>>,
}

/// Why the first message from rotord did not arrive.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no start message from rotord within {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("rotord hung up before sending the start message")]
    Gone,
    #[error("rotord's first message is not a start message")]
    NotFirst,
    #[error("start message: {0}")]
    Decode(rotor_proto::DecodeError),
    #[error("control socket: {0}")]
    Io(io::Error),
}

/// What rotord asked for.
pub enum ControlInput {
    Session(Session),
    /// A votequorum request for one of rotord's clients.
    Quorum {
        request: u32,
        op: rotor_proto::dataplane_quorum::QuorumOp,
    },
    Shutdown,
    /// rotord hung up: it died or is stopping; leave and exit.
    Gone,
}

impl Control {
    pub fn new(sock: OwnedFd) -> io::Result<Control> {
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(sock.as_raw_fd(), libc::F_GETFL);
            if flags < 0
                || libc::fcntl(sock.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Control {
            sock,
            buf: vec![0; CONTROL_MESSAGE_MAX],
            queued: VecDeque::new(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Waits (at most `timeout`) for rotord's first message, `Start`, with the descriptors that
    /// come with it (the XDP program's `xsks` and `counters` maps, when the transport is XDP).
    pub fn receive_start(
        &mut self,
        timeout: Duration,
    ) -> Result<(Box<DataplaneStart>, Vec<OwnedFd>), StartError> {
        let fd = self.sock.as_raw_fd();
        if !crate::poll::wait_readable(fd, &[], timeout).map_err(StartError::Io)? {
            return Err(StartError::Timeout(timeout));
        }
        let (n, fds) = ipc_shm::handoff::recv_message(fd, &mut self.buf).map_err(StartError::Io)?;
        if n == 0 && fds.is_empty() {
            return Err(StartError::Gone);
        }
        match ToDataplane::decode(&self.buf[..n]) {
            Ok(ToDataplane::Start(start)) => Ok((start, fds)),
            Ok(_) => Err(StartError::NotFirst),
            Err(e) => Err(StartError::Decode(e)),
        }
    }

    /// The next message from rotord, if one is waiting.
    pub fn poll(&mut self) -> Option<ControlInput> {
        loop {
            let (n, fds) =
                match ipc_shm::handoff::recv_message(self.sock.as_raw_fd(), &mut self.buf) {
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) => {
                        tracing::error!(target: "MAIN", "control socket to rotord: {e}");
                        return Some(ControlInput::Gone);
                    }
                };
            if n == 0 && fds.is_empty() {
                return Some(ControlInput::Gone);
            }
            match ToDataplane::decode(&self.buf[..n]) {
                Ok(ToDataplane::Session { pid, uid, gid }) => {
                    let peer = PeerCred { pid, uid, gid };
                    match DetachedSession::from_fds(fds, peer).and_then(|d| d.into_session()) {
                        Ok(s) => return Some(ControlInput::Session(s)),
                        Err(e) => tracing::warn!(
                            target: "CPG",
                            "session of client pid {pid} (uid {uid}) handed over by rotord \
                             refused: {e}"
                        ),
                    }
                }
                Ok(ToDataplane::Shutdown) => return Some(ControlInput::Shutdown),
                Ok(ToDataplane::Quorum { request, op }) => {
                    return Some(ControlInput::Quorum { request, op })
                }
                Ok(ToDataplane::Logging(config)) => {
                    rotor_log::reconfigure(&config);
                }
                Ok(ToDataplane::Start(_)) => {
                    tracing::warn!(target: "MAIN", "a second start message from rotord ignored")
                }
                Err(e) => tracing::warn!(
                    target: "MAIN",
                    "message from rotord dropped: {e}"
                ),
            }
        }
    }

    /// Sends a report to rotord; a full socket drops it (the next report supersedes it).
    pub fn report(&mut self, msg: &FromDataplane) {
        let mut out = Vec::new();
        msg.encode(&mut out);
        let _ = ipc_shm::handoff::send_message(self.sock.as_raw_fd(), &out, &[]);
    }

    /// Sends a message that nothing later supersedes (a quorum reply or update): queued, in
    /// order, while the socket is full, and sent by `flush_queued`.
    pub fn send_in_order(&mut self, msg: &FromDataplane) {
        let mut out = Vec::new();
        msg.encode(&mut out);
        self.queued.push_back(out);
        self.flush_queued();
    }

    /// Sends what `send_in_order` queued while the socket has room.
    pub fn flush_queued(&mut self) {
        while let Some(front) = self.queued.front() {
            match ipc_shm::handoff::send_message(self.sock.as_raw_fd(), front, &[]) {
                Ok(_) => {
                    self.queued.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // rotord is gone: nobody to tell.
                    self.queued.clear();
                    return;
                }
            }
        }
    }
}

/// The stats published to rotord (cmap keys under `stats.`).
pub fn stats_counters<T: Transport>(runner: &Runner<T>, clients: &Clients) -> Entries {
    let mut out = runner.counters();
    clients.entries(&mut out);
    out.push(("log.dropped".into(), rotor_log::forward_dropped()));
    out
}

/// Runs the service loop until rotord says stop or hangs up, or `stop` turns true.
pub fn run<T: Transport>(
    runner: &mut Runner<T>,
    control: &mut Control,
    mode: PollLoop,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    let mut clients = Clients::new(runner.node().node_id().0);
    let mut last_work = WallInstant::now();
    let mut last_housekeeping = WallInstant::now();
    let mut last_ring = (RingState::Down, runner.node().ring());
    let mut fds = Vec::new();
    let mut quorum = QuorumLink::default();
    report_ring(runner, control, &mut last_ring, true);
    quorum.pump(runner.node_mut(), |m| control.send_in_order(&m));
    let mut gone = false;
    while !stop() {
        match control.poll() {
            Some(ControlInput::Session(s)) => clients.adopt(s),
            Some(ControlInput::Quorum { request, op }) => {
                let reply = quorum.handle(runner.node_mut(), request, op);
                // The state the request changed goes up before its answer.
                quorum.pump(runner.node_mut(), |m| control.send_in_order(&m));
                if let Some(reply) = reply {
                    control.send_in_order(&reply);
                }
            }
            Some(ControlInput::Shutdown) => break,
            Some(ControlInput::Gone) => {
                gone = true;
                break;
            }
            None => {}
        }
        let mut work = clients.serve(runner);
        fds.clear();
        fds.push(control.fd());
        // Arm the clients' wake-ups only on the way to sleep: an armed session makes its
        // client signal an eventfd (a system call) for every record it writes.
        let max_wait = if work > 0 {
            Duration::ZERO
        } else {
            match mode {
                PollLoop::Busy => Duration::ZERO,
                PollLoop::Adaptive { spin } if last_work.elapsed() < spin => Duration::ZERO,
                _ => {
                    let armed = clients.arm(&mut fds);
                    if armed.ready {
                        Duration::ZERO
                    } else if armed.backlogged {
                        BACKLOG_RETRY
                    } else {
                        HOUSEKEEPING_INTERVAL
                    }
                }
            }
        };
        work += runner.turn(max_wait, &fds, |ev| clients.on_event(ev))?;
        if work > 0 {
            last_work = WallInstant::now();
        }
        report_ring(runner, control, &mut last_ring, false);
        quorum.pump(runner.node_mut(), |m| control.send_in_order(&m));
        control.flush_queued();
        if last_housekeeping.elapsed() >= HOUSEKEEPING_INTERVAL {
            last_housekeeping = WallInstant::now();
            clients.check_peers();
            control.report(&FromDataplane::Stats {
                counters: stats_counters(runner, &clients),
            });
        }
    }
    // A clean leave lowers the others' expected votes (allow_downscale): ordered before the
    // node leaves the ring, waited for a short while (a ring that cannot order it is
    // breaking up anyway).
    if !gone && quorum.announce_leave(runner.node_mut()) {
        let deadline = WallInstant::now() + LEAVE_ANNOUNCE_WAIT;
        while !quorum.leave_done() && WallInstant::now() < deadline {
            runner.turn(Duration::from_millis(5), &[], |ev| clients.on_event(ev))?;
            quorum.pump(runner.node_mut(), |m| control.send_in_order(&m));
        }
        control.flush_queued();
    }
    runner.node_mut().leave();
    runner.flush()
}

/// The protocol state as rotord's ring record names it.
fn ring_state(state: totem_core::State) -> RingState {
    match state {
        totem_core::State::Gather => RingState::Gather,
        totem_core::State::Commit => RingState::Commit,
        totem_core::State::Recovery => RingState::Recovery,
        totem_core::State::Operational => RingState::Operational,
    }
}

fn report_ring<T: Transport>(
    runner: &Runner<T>,
    control: &mut Control,
    last: &mut (RingState, totem_core::RingId),
    force: bool,
) {
    let node = runner.node();
    let state = ring_state(node.state());
    if !force && last.0 == state && last.1 == node.ring() {
        return;
    }
    *last = (state, node.ring());
    control.report(&FromDataplane::Ring(RingReport {
        state,
        ring_rep: node.ring().rep,
        ring_seq: node.ring().seq,
        members: node.members().iter().map(|n| n.0).collect(),
        transport: runner.transport().name().to_owned(),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_polls_busy_only_with_a_pinned_core_to_spare() {
        let spin = Duration::from_micros(50);
        assert_eq!(PollLoop::auto(2, true, spin).0, PollLoop::Adaptive { spin });
        assert_eq!(PollLoop::auto(3, true, spin).0, PollLoop::Busy);
        assert_eq!(
            PollLoop::auto(64, false, spin).0,
            PollLoop::Adaptive { spin }
        );
        assert_eq!(PollLoop::auto(1, true, spin).0, PollLoop::Adaptive { spin });
    }
}
