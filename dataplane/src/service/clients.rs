//! The client side of the service: each CPG session's ring, its pending request and the
//! records queued for it beyond its ring (`Client`), all sessions and what the loop polls for
//! them (`Clients`), and how one request becomes a totem-core submission and its reply.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant as WallInstant;

use ipc_shm::{PeerCred, Session, SessionError};
use rotor_proto::cpg as proto;
use rotor_proto::Status;
use totem_core::{
    ChangeReason, ConfigKind, Event, Guarantee, Payload, ProcessId, SessionId, Sessions, Submit,
    SubmitError,
};

use super::backlog::Backlog;
use super::{
    CLIENT_BACKLOG_BYTES_MAX, INTAKE_PAUSE_BYTES, RECEIVER_BEHIND_BYTES, RECEIVER_BEHIND_MAX,
    REQUESTS_PER_TURN,
};
use crate::runner::Runner;
use crate::stats::Sheet;
use crate::transport::Transport;

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
    /// Times a client's requests were left in its ring because more than
    /// `INTAKE_PAUSE_BYTES` were queued for it.
    pub intake_paused: u64,
    /// Sleeps in which the clients' new requests were left to wait in their rings for the
    /// token's next visit (`Node::submit_can_wait`) instead of each waking the dataplane.
    pub requests_left_for_token: u64,
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
    /// Records waiting for room in the client's ring.
    backlog: Backlog,
    /// Its requests stay in its ring until its backlog is back within `INTAKE_PAUSE_BYTES`.
    intake_paused: bool,
    /// Since when, in this pause, its backlog first passed `RECEIVER_BEHIND_BYTES`.
    behind_since: Option<WallInstant>,
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
    /// the ring is full is the record copied into the backlog, behind those already there.
    fn send_parts<'a>(
        &mut self,
        parts: impl Iterator<Item = &'a [u8]> + Clone,
        counters: &mut IpcCounters,
    ) {
        if !self.sent_directly(parts.clone(), counters) {
            self.backlog.push(parts);
            self.queued(counters);
        }
    }

    /// Writes a delivery (its header from the stack, its data borrowed from the core) straight
    /// into the client's ring. When the ring is full, data that lies in one frame body is kept
    /// by reference (the body stays alive; only the header is copied), other data copied.
    fn send_deliver(&mut self, header: &[u8], data: Payload<'_>, counters: &mut IpcCounters) {
        let Some(slice) = data.as_slice() else {
            return self.send_parts(std::iter::once(header).chain(data.parts()), counters);
        };
        if !self.sent_directly([header, slice].into_iter(), counters) {
            match data.body_part() {
                Some(part) => self.backlog.push_kept(header, part),
                None => self.backlog.push([header, slice].into_iter()),
            }
            self.queued(counters);
        }
    }

    /// Whether the record `parts` is taken care of without the backlog: written to the ring
    /// (nothing queued before it, and room), or not to be written at all (the session is
    /// closed, or closes on this write).
    fn sent_directly<'a>(
        &mut self,
        parts: impl Iterator<Item = &'a [u8]> + Clone,
        counters: &mut IpcCounters,
    ) -> bool {
        if self.closed.is_some() {
            return true;
        }
        if !self.backlog.is_empty() {
            return false;
        }
        match self.session.try_send_parts(parts) {
            Ok(()) => {
                counters.records_out += 1;
                true
            }
            Err(SessionError::Full) => false,
            Err(e) => {
                self.close(CloseKind::of(&e), format!("send: {e}"));
                true
            }
        }
    }

    /// Counts the record just queued; a client with too much queued is let go.
    fn queued(&mut self, counters: &mut IpcCounters) {
        let queued = self.backlog.bytes();
        counters.records_backlogged += 1;
        counters.backlog_bytes_max = counters.backlog_bytes_max.max(queued as u64);
        if queued > CLIENT_BACKLOG_BYTES_MAX {
            let why = format!("not draining its ring: {queued} bytes queued");
            self.close(CloseKind::Slow, why);
        }
    }

    /// Whether to leave this client's requests in its ring for now: while more than
    /// `INTAKE_PAUSE_BYTES` wait for room in its ring, what it would send adds to what it
    /// cannot read yet (every member delivers its own messages too), so it has to read first.
    /// Its ring then fills and its sends get "try again", which makes it dispatch. A client
    /// that stops reading altogether is still disconnected at `CLIENT_BACKLOG_BYTES_MAX`;
    /// the other clients are not held back.
    fn pause_intake(&mut self, counters: &mut IpcCounters) -> bool {
        let queued = self.backlog.bytes();
        if queued <= INTAKE_PAUSE_BYTES {
            self.intake_paused = false;
            self.behind_since = None;
            return false;
        }
        if !self.intake_paused {
            self.intake_paused = true;
            counters.intake_paused += 1;
        }
        if queued > RECEIVER_BEHIND_BYTES && self.behind_since.is_none() {
            self.behind_since = Some(WallInstant::now());
        }
        true
    }

    /// Whether the ring should carry nothing new from other members for this client's sake:
    /// with its intake paused its backlog still passed `RECEIVER_BEHIND_BYTES` (the others
    /// send faster than it reads), less than `RECEIVER_BEHIND_MAX` ago (one that reads nothing
    /// for longer must not stall the cluster; it is disconnected once its backlog is full).
    fn behind(&self) -> bool {
        self.behind_since
            .is_some_and(|since| since.elapsed() < RECEIVER_BEHIND_MAX)
    }

    fn drain_backlog(&mut self, counters: &mut IpcCounters) {
        while let Some(front) = self.backlog.front() {
            match self.session.try_send_parts(front) {
                Ok(()) => {
                    counters.records_out += 1;
                    self.backlog.pop();
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
    pub fn entries(&self, out: &mut Sheet) {
        let c = &self.counters;
        let backlog: usize = self.sessions.iter().map(|(_, c)| c.backlog.bytes()).sum();
        out.put_all([
            ("ipc.clients", self.sessions.len() as u64),
            ("ipc.clients_attached", c.attached),
            ("ipc.requests", c.requests),
            ("ipc.requests_deferred", c.requests_deferred),
            ("ipc.records_out", c.records_out),
            ("ipc.records_backlogged", c.records_backlogged),
            ("ipc.backlog_bytes", backlog as u64),
            ("ipc.backlog_bytes_max", c.backlog_bytes_max),
            ("ipc.intake_paused", c.intake_paused),
            ("ipc.requests_left_for_token", c.requests_left_for_token),
            ("ipc.clients_disconnected", c.disconnects.iter().sum()),
            ("ipc.changes_unmatched", self.sessions.counters().unmatched),
        ]);
        for (kind, n) in CloseKind::ALL.iter().zip(c.disconnects) {
            out.put_fmt(format_args!("ipc.disconnects.{}", kind.name()), n);
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
            backlog: Backlog::default(),
            intake_paused: false,
            behind_since: None,
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
        let mut behind = false;
        self.sessions.submit_deferred(runner.node_mut());
        for index in 0..self.sessions.slot_count() {
            let Some(id) = self.sessions.id_at(index) else {
                continue;
            };
            let c = self.sessions.get_mut(id);
            c.drain_backlog(&mut self.counters);
            if c.pause_intake(&mut self.counters) {
                behind |= c.behind();
                continue;
            }
            for _ in 0..REQUESTS_PER_TURN {
                let c = self.sessions.get_mut(id);
                if c.closed.is_some() {
                    break;
                }
                // A request is handled where it lies — in the receive buffer, or in the
                // session's parked copy — and copied out of the buffer only when the node
                // refuses it for now.
                let parked = c.pending.take();
                let record: &[u8] = match &parked {
                    Some(r) => r,
                    None => match c.session.try_recv(&mut self.rx) {
                        Ok(n) => &self.rx[..n],
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
                    record,
                    runner,
                    &mut self.scratch,
                    counters,
                ) {
                    Handled::Done => {
                        handled += 1;
                        counters.requests += 1;
                    }
                    Handled::Later => {
                        let record = match parked {
                            Some(parked) => parked,
                            None => self.rx[..record.len()].to_vec(),
                        };
                        self.sessions.get_mut(id).pending = Some(record);
                        counters.requests_deferred += 1;
                        break;
                    }
                }
            }
        }
        self.reap(runner.node_mut());
        // Receiver flow control: the other members hold back while a client here catches up.
        runner.node_mut().set_receivers_behind(behind);
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
                c.backlog.bytes()
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
                let header = header.as_bytes();
                self.sessions
                    .route(ev, |c| c.send_deliver(header, d.data, counters));
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

    /// Descriptors to sleep on: each session's control socket and, when `requests_wake`,
    /// its wake eventfd (armed). Without `requests_wake` (the node has messages queued for the
    /// token's next visit, which comes unasked: `Node::submit_can_wait`) the sessions are
    /// disarmed, so a client's request costs it no signal and the dataplane no wake-up; the
    /// loop serves them when the token, or any other datagram, wakes it, before the token is
    /// handled, and they go out on that visit as they would have.
    /// Returns `false` when a record is already waiting (do not sleep).
    pub fn arm(&mut self, fds: &mut Vec<RawFd>, requests_wake: bool) -> Armed {
        let mut armed = Armed {
            ready: false,
            backlogged: false,
        };
        if !requests_wake && !self.sessions.is_empty() {
            self.counters.requests_left_for_token += 1;
        }
        for (_, c) in self.sessions.iter_mut() {
            fds.push(c.session.control_fd());
            if !c.backlog.is_empty() {
                armed.backlogged = true;
            }
            if c.pending.is_some() || c.intake_paused {
                // The node refused its last request for want of room, which only the network
                // frees (the token's next visit), or its intake is paused until it reads (its
                // backlog has the loop look again soon): nothing to read from this client until
                // then, so no wake-up from it either. Spinning here starved the other processes.
                continue;
            }
            if !requests_wake {
                c.session.disarm();
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

fn member(m: ProcessId) -> proto::Member {
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

fn reason(r: ChangeReason) -> proto::Reason {
    match r {
        ChangeReason::Join => proto::Reason::Join,
        ChangeReason::Leave => proto::Reason::Leave,
        ChangeReason::NodeDown => proto::Reason::NodeDown,
        ChangeReason::NodeUp => proto::Reason::NodeUp,
        ChangeReason::ProcDown => proto::Reason::ProcDown,
    }
}
