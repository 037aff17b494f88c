//! The quorum and votequorum services rotord runs for its clients (corosync's
//! `exec/vsf_quorum.c` and the library side of `exec/votequorum.c`): votequorum itself runs in
//! the dataplane's node; this keeps what it reported — the quorum callback's view (quorate,
//! ring, members), the last sync's lists, votequorum's state — answers libquorum's and
//! libvotequorum's requests from it, forwards the requests that change votequorum to the
//! dataplane and their answers back, sends every tracking client its notifications in order,
//! publishes `runtime.votequorum.*` as corosync does, logs the `[QUORUM]` lines as corosync
//! writes them, and keeps the expected_votes_tracking barrier on disk.

use std::collections::BTreeMap;

use rotor_proto::dataplane_quorum::{QuorumOp, QuorumReply, QuorumState, QuorumUpdate};
use rotor_proto::quorum as pq;
use rotor_proto::votequorum as pv;
use rotor_proto::{DecodeError, Status};
use totem_core::votequorum as vq;
use totem_core::{NodeId, RingId};

use super::evtracking::EvTrackingFile;
use crate::cmap::{Access, CmapStore, Value};
use crate::log_at;

/// A client of rotord's IPC socket, as the service that owns the sessions numbers it.
pub type ClientId = u64;

/// Most votequorum requests waiting for the dataplane's answer; beyond it a client gets
/// CS_ERR_TRY_AGAIN.
const PENDING_MAX: usize = 1024;

/// What one client tracks.
#[derive(Clone, Copy, Default)]
struct Tracking {
    /// libquorum: tracking changes, and the model of its notifications.
    quorum: bool,
    model_v1: bool,
    /// libvotequorum: tracking changes, with this context.
    votequorum: Option<u64>,
}

/// Quorum as the metrics show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumView {
    pub quorate: bool,
    /// Votes needed to be quorate.
    pub quorum: u32,
    /// Votes of the members (and the quorum device).
    pub total_votes: u32,
    /// This node's expected votes.
    pub expected_votes: u32,
    /// This node's votes.
    pub node_votes: u32,
}

/// The quorum and votequorum services.
pub struct QuorumService {
    /// votequorum is the quorum provider (`quorum.provider`); without one the node is always
    /// quorate and libvotequorum's calls find no service.
    provider: bool,
    node_id: u32,
    /// The quorum callback's view (vsf_quorum's `primary_designated`, ring and view list).
    quorate: bool,
    ring: RingId,
    view: Vec<u32>,
    /// The last sync's ring and members (libquorum's nodelist notification on track start).
    sync_ring: RingId,
    sync_members: Vec<u32>,
    /// votequorum's state as the dataplane last reported it.
    state: Option<vq::QuorumState>,
    ev_tracking: Option<EvTrackingFile>,
    tracking: BTreeMap<ClientId, Tracking>,
    /// Requests sent to the dataplane: its request id → the client and its request id.
    pending: BTreeMap<u32, (ClientId, u32)>,
    next_request: u32,
    /// Requests for the dataplane, not sent yet.
    ops: Vec<(u32, QuorumOp)>,
    /// Records for clients, in order.
    out: Vec<(ClientId, Vec<u8>)>,
    /// The barrier rose: the next dataplane must start from it.
    barrier_changed: Option<u32>,
    buf: Vec<u8>,
}

/// corosync's `log_view_list`: `Members[3]: 1 2 3`, the ids cut into lines of less than 64
/// characters, each but the last ending in `\`.
pub fn view_list_lines(what: &str, ids: &[u32]) -> Vec<String> {
    const VIEW_BUF: usize = 64;
    let mut lines = Vec::new();
    let mut i = 0;
    loop {
        let mut buf = String::new();
        while i < ids.len() {
            let item = format!(" {}", ids[i]);
            // snprintf into what is left of the 64-byte buffer, terminator included.
            if item.len() >= VIEW_BUF - buf.len() {
                break;
            }
            buf.push_str(&item);
            i += 1;
        }
        let more = if i < ids.len() { "\\" } else { "" };
        lines.push(format!("{what}[{}]:{buf}{more}", ids.len()));
        if i == ids.len() {
            return lines;
        }
    }
}

fn log_view_list(what: &str, ids: &[u32]) {
    for line in view_list_lines(what, ids) {
        log_at!(Notice, "QUORUM", "{line}");
    }
}

fn ring_of(rep: u32, seq: u64) -> RingId {
    RingId { seq, rep }
}

/// totem-core's state from the dataplane's record (so getinfo has one implementation).
fn state_of(r: &QuorumState) -> vq::QuorumState {
    use rotor_proto::dataplane_quorum::TieBreakerSetting as T;
    let node_state = |code| match code {
        pv::NODESTATE_DEAD => vq::NodeState::Dead,
        pv::NODESTATE_LEAVING => vq::NodeState::Leaving,
        _ => vq::NodeState::Member,
    };
    vq::QuorumState {
        node: NodeId(r.node),
        quorate: r.quorate,
        quorum: r.quorum,
        ring: ring_of(r.ring_rep, r.ring_seq),
        members: r.members.iter().map(|&m| NodeId(m)).collect(),
        nodes: r
            .nodes
            .iter()
            .map(|n| vq::NodeInfo {
                node: NodeId(n.node),
                state: node_state(n.state),
                votes: n.votes,
                expected_votes: n.expected_votes,
                flags: n.flags,
            })
            .collect(),
        qdevice_votes: r.qdevice_votes,
        qdevice_name: r.qdevice_name.clone(),
        two_node: r.two_node,
        wait_for_all: r.wait_for_all,
        wait_for_all_status: r.wait_for_all_status,
        last_man_standing: r.last_man_standing,
        auto_tie_breaker: match &r.auto_tie_breaker {
            T::Off => vq::TieBreaker::Off,
            T::Lowest => vq::TieBreaker::Lowest,
            T::Highest => vq::TieBreaker::Highest,
            T::List(ids) => vq::TieBreaker::List(ids.clone()),
        },
        allow_downscale: r.allow_downscale,
        expected_votes_tracking: r.expected_votes_tracking,
        ev_barrier: r.ev_barrier,
        ev_tracking_barrier: r.ev_tracking_barrier,
        lowest_node_id: r.lowest_node_id,
        highest_node_id: r.highest_node_id,
        qdevice_can_operate: r.qdevice_can_operate,
        qdevice_master_wins: r.qdevice_master_wins,
    }
}

impl QuorumService {
    /// `settings`: votequorum's, when quorum{} names it as the provider.
    pub fn new(
        node_id: u32,
        settings: Option<&vq::QuorumSettings>,
        ev_tracking: Option<EvTrackingFile>,
    ) -> QuorumService {
        if settings.is_some() {
            log_at!(
                Notice,
                "QUORUM",
                "Using quorum provider {}",
                vq::PROVIDER_VOTEQUORUM
            );
        }
        QuorumService {
            provider: settings.is_some(),
            node_id,
            // Without a provider the node is always quorate (vsf_quorum's quorum_type 0).
            quorate: settings.is_none(),
            ring: RingId::default(),
            view: Vec::new(),
            sync_ring: RingId::default(),
            sync_members: Vec::new(),
            state: None,
            ev_tracking,
            tracking: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_request: 1,
            ops: Vec::new(),
            out: Vec::new(),
            barrier_changed: None,
            buf: Vec::new(),
        }
    }

    /// Whether this node is quorate (what `quorum_getquorate` answers).
    pub fn quorate(&self) -> bool {
        self.quorate
    }

    /// What the metrics show of quorum; `None` without a quorum provider or before the
    /// dataplane first reported votequorum's state.
    pub fn view(&self) -> Option<QuorumView> {
        if !self.provider {
            return None;
        }
        let s = self.state.as_ref()?;
        let me = s.nodes.iter().find(|n| n.node == s.node);
        let total = s
            .nodes
            .iter()
            .filter(|n| n.state == vq::NodeState::Member)
            .map(|n| n.votes)
            .sum::<u32>()
            + s.qdevice_votes;
        Some(QuorumView {
            quorate: self.quorate,
            quorum: s.quorum,
            total_votes: total,
            expected_votes: me.map_or(0, |n| n.expected_votes),
            node_votes: me.map_or(0, |n| n.votes),
        })
    }

    /// Requests for the dataplane, in order.
    pub fn take_ops(&mut self) -> Vec<(u32, QuorumOp)> {
        std::mem::take(&mut self.ops)
    }

    /// Records for clients, in order.
    pub fn take_out(&mut self) -> Vec<(ClientId, Vec<u8>)> {
        std::mem::take(&mut self.out)
    }

    /// A new expected_votes_tracking barrier the next dataplane must start from.
    pub fn take_barrier_change(&mut self) -> Option<u32> {
        self.barrier_changed.take()
    }

    fn send(&mut self, client: ClientId) {
        self.out.push((client, self.buf.clone()));
    }

    /// A client left: its tracking and requests go with it.
    pub fn client_gone(&mut self, client: ClientId) {
        self.tracking.remove(&client);
        self.pending.retain(|_, (c, _)| *c != client);
    }

    // ----- libquorum -------------------------------------------------------------------

    fn quorum_notification(&mut self, client: ClientId) {
        pq::Event::Quorum {
            quorate: self.quorate,
            ring: pq::RingId {
                nodeid: self.ring.rep,
                seq: self.ring.seq,
            },
            members: self.view.clone(),
        }
        .encode(&mut self.buf);
        self.send(client);
    }

    /// A libquorum request (op 0x05xx).
    pub fn handle_quorum(&mut self, client: ClientId, record: &[u8]) -> Result<(), DecodeError> {
        let (req_id, req) = pq::Request::decode(record)?;
        let quorum_type = if self.provider {
            pq::QUORUM_SET
        } else {
            pq::QUORUM_FREE
        };
        let (status, value) = match req {
            pq::Request::GetQuorate => (Status::Ok, u32::from(self.quorate)),
            pq::Request::GetType => (Status::Ok, quorum_type),
            pq::Request::ModelGetType { model } => match pq::Model::from_code(model) {
                Some(m) => {
                    self.tracking.entry(client).or_default().model_v1 = m == pq::Model::V1;
                    (Status::Ok, quorum_type)
                }
                None => {
                    log_at!(
                        Error,
                        "QUORUM",
                        "quorum_model_type request for unsupported model {model}"
                    );
                    (Status::InvalidParam, quorum_type)
                }
            },
            pq::Request::TrackStart { flags } => {
                let t = *self.tracking.entry(client).or_default();
                if flags & (pq::TRACK_CURRENT | pq::TRACK_CHANGES) != 0 {
                    if t.model_v1 {
                        pq::Event::Nodelist {
                            ring: pq::RingId {
                                nodeid: self.sync_ring.rep,
                                seq: self.sync_ring.seq,
                            },
                            members: self.sync_members.clone(),
                            joined: Vec::new(),
                            left: Vec::new(),
                        }
                        .encode(&mut self.buf);
                        self.send(client);
                    }
                    self.quorum_notification(client);
                }
                if t.quorum {
                    (Status::Exist, 0)
                } else {
                    if flags & (pq::TRACK_CHANGES | pq::TRACK_CHANGES_ONLY) != 0 {
                        self.tracking.entry(client).or_default().quorum = true;
                    }
                    (Status::Ok, 0)
                }
            }
            pq::Request::TrackStop => {
                // corosync answers OK whether or not the client was tracking.
                if let Some(t) = self.tracking.get_mut(&client) {
                    t.quorum = false;
                }
                (Status::Ok, 0)
            }
        };
        pq::Event::Reply {
            req_id,
            status,
            value,
        }
        .encode(&mut self.buf);
        self.send(client);
        Ok(())
    }

    // ----- libvotequorum ---------------------------------------------------------------

    fn status(&mut self, client: ClientId, req_id: u32, status: Status, message: String) {
        pv::Event::Status {
            req_id,
            status,
            message,
        }
        .encode(&mut self.buf);
        self.send(client);
    }

    fn vq_nodelist(&mut self, client: ClientId, context: u64) {
        let (ring, nodes) = match &self.state {
            Some(s) => (
                pv::RingId {
                    nodeid: s.ring.rep,
                    seq: s.ring.seq,
                },
                s.members.iter().map(|m| m.0).collect(),
            ),
            None => (pv::RingId::default(), Vec::new()),
        };
        pv::Event::Nodelist {
            context,
            ring,
            nodes,
        }
        .encode(&mut self.buf);
        self.send(client);
    }

    fn vq_quorum(&mut self, client: ClientId, context: u64) {
        let (quorate, nodes) = match &self.state {
            Some(s) => {
                let mut nodes: Vec<(u32, u32)> =
                    s.nodes.iter().map(|n| (n.node.0, n.state.code())).collect();
                let us = s.nodes.iter().find(|n| n.node == s.node);
                if us.is_some_and(|n| n.flags & vq::flags::QDEVICE_REGISTERED != 0) {
                    nodes.push((vq::QDEVICE_NODE_ID, 0));
                }
                (s.quorate, nodes)
            }
            None => (false, Vec::new()),
        };
        pv::Event::Quorum {
            context,
            quorate,
            nodes,
        }
        .encode(&mut self.buf);
        self.send(client);
    }

    /// A libvotequorum request (op 0x06xx).
    pub fn handle_votequorum(
        &mut self,
        client: ClientId,
        record: &[u8],
        dataplane_running: bool,
    ) -> Result<(), DecodeError> {
        let (req_id, req) = pv::Request::decode(record)?;
        if !self.provider {
            self.status(
                client,
                req_id,
                Status::NotExist,
                "votequorum is not running: quorum.provider is not corosync_votequorum".into(),
            );
            return Ok(());
        }
        let op = match req {
            pv::Request::GetInfo { node } => {
                let info = self.state.as_ref().and_then(|s| s.getinfo(node));
                let (status, info) = match info {
                    Some(r) => (
                        Status::Ok,
                        pv::Info {
                            node_id: r.node,
                            node_state: r.state,
                            node_votes: r.votes,
                            node_expected_votes: r.expected_votes,
                            highest_expected: r.highest_expected,
                            total_votes: r.total_votes,
                            quorum: r.quorum,
                            flags: r.flags,
                            qdevice_votes: r.qdevice_votes,
                            qdevice_name: r.qdevice_name,
                        },
                    ),
                    None if self.state.is_none() => (Status::TryAgain, pv::Info::default()),
                    None => (Status::NotExist, pv::Info::default()),
                };
                pv::Event::Info {
                    req_id,
                    status,
                    info,
                }
                .encode(&mut self.buf);
                self.send(client);
                return Ok(());
            }
            pv::Request::TrackStart { context, flags } => {
                if flags & (pq::TRACK_CURRENT | pq::TRACK_CHANGES) != 0 {
                    self.vq_nodelist(client, context);
                    self.vq_quorum(client, context);
                }
                let t = self.tracking.entry(client).or_default();
                let status = if t.votequorum.is_some() {
                    Status::Exist
                } else {
                    if flags & (pq::TRACK_CHANGES | pq::TRACK_CHANGES_ONLY) != 0 {
                        t.votequorum = Some(context);
                    }
                    Status::Ok
                };
                self.status(client, req_id, status, String::new());
                return Ok(());
            }
            pv::Request::TrackStop => {
                let t = self.tracking.entry(client).or_default();
                let status = if t.votequorum.take().is_some() {
                    Status::Ok
                } else {
                    Status::NotExist
                };
                self.status(client, req_id, status, String::new());
                return Ok(());
            }
            pv::Request::SetExpected { expected_votes } => QuorumOp::SetExpected(expected_votes),
            pv::Request::SetVotes { node, votes } => {
                // Node 0 is this node, as for getinfo.
                let node = if node == 0 { self.node_id } else { node };
                QuorumOp::SetVotes { node, votes }
            }
            pv::Request::QdeviceRegister { name } => {
                QuorumOp::QdeviceRegister { name: name.into() }
            }
            pv::Request::QdeviceUnregister { name } => {
                QuorumOp::QdeviceUnregister { name: name.into() }
            }
            pv::Request::QdeviceUpdate { old, new } => QuorumOp::QdeviceRename {
                old: old.into(),
                new: new.into(),
            },
            pv::Request::QdevicePoll {
                name,
                cast_vote,
                ring,
            } => QuorumOp::QdevicePoll {
                name: name.into(),
                cast_vote,
                ring_rep: ring.nodeid,
                ring_seq: ring.seq,
            },
            pv::Request::QdeviceMasterWins { name, allow } => QuorumOp::QdeviceMasterWins {
                name: name.into(),
                allow,
            },
        };
        if !dataplane_running {
            self.status(
                client,
                req_id,
                Status::TryAgain,
                "the dataplane is restarting; try again".into(),
            );
            return Ok(());
        }
        if self.pending.len() >= PENDING_MAX {
            self.status(
                client,
                req_id,
                Status::TryAgain,
                "too many votequorum requests in flight; try again".into(),
            );
            return Ok(());
        }
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        self.pending.insert(request, (client, req_id));
        self.ops.push((request, op));
        Ok(())
    }

    /// `quorum.cancel_wait_for_all` set to 1: ordered in the cluster (every node stops
    /// waiting for all); the error is the status and reason for the client.
    pub fn cancel_wait_for_all(&mut self, dataplane_running: bool) -> Result<(), (Status, String)> {
        if !self.provider {
            return Err((
                Status::NotExist,
                "votequorum is not running: quorum.provider is not corosync_votequorum".into(),
            ));
        }
        if !dataplane_running {
            return Err((
                Status::TryAgain,
                "the dataplane is restarting; try again".into(),
            ));
        }
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        self.ops.push((request, QuorumOp::CancelWaitForAll));
        log_at!(
            Notice,
            "VOTEQ",
            "wait_for_all cancelled by a client (quorum.cancel_wait_for_all)"
        );
        Ok(())
    }

    // ----- from the dataplane ----------------------------------------------------------

    /// The answer to a forwarded request.
    pub fn on_reply(&mut self, reply: QuorumReply) {
        let Some((client, req_id)) = self.pending.remove(&reply.request) else {
            // The client left, or rotord's own leave.
            return;
        };
        self.status(client, req_id, reply.status, reply.message);
    }

    /// The dataplane stopped: its requests fail, and until a new one reports the node is not
    /// quorate (nothing orders anything meanwhile).
    pub fn dataplane_down(&mut self, cmap: &mut CmapStore) {
        for (_, (client, req_id)) in std::mem::take(&mut self.pending) {
            self.status(
                client,
                req_id,
                Status::TryAgain,
                "the dataplane stopped before answering; try again".into(),
            );
        }
        if self.provider {
            self.state = None;
            if self.quorate {
                let ring = self.ring;
                self.on_quorum(false, ring, Vec::new());
            }
            self.publish(cmap);
        }
    }

    /// One of votequorum's reports, in order.
    pub fn on_update(&mut self, update: QuorumUpdate) {
        match update {
            QuorumUpdate::SyncStarted {
                ring_rep,
                ring_seq,
                members,
                joined,
                left,
            } => {
                log_view_list("Sync members", &members);
                if !joined.is_empty() {
                    log_view_list("Sync joined", &joined);
                }
                if !left.is_empty() {
                    log_view_list("Sync left", &left);
                }
                self.sync_ring = ring_of(ring_rep, ring_seq);
                self.sync_members = members;
            }
            QuorumUpdate::Nodelist {
                ring_rep,
                ring_seq,
                members,
            } => {
                let trackers: Vec<(ClientId, u64)> = self
                    .tracking
                    .iter()
                    .filter_map(|(c, t)| t.votequorum.map(|ctx| (*c, ctx)))
                    .collect();
                for (client, context) in trackers {
                    pv::Event::Nodelist {
                        context,
                        ring: pv::RingId {
                            nodeid: ring_rep,
                            seq: ring_seq,
                        },
                        nodes: members.clone(),
                    }
                    .encode(&mut self.buf);
                    self.send(client);
                }
            }
            QuorumUpdate::SyncActivated {
                ring_rep,
                ring_seq,
                members,
                joined,
                left,
            } => {
                let v1: Vec<ClientId> = self
                    .tracking
                    .iter()
                    .filter(|(_, t)| t.quorum && t.model_v1)
                    .map(|(c, _)| *c)
                    .collect();
                for client in v1 {
                    pq::Event::Nodelist {
                        ring: pq::RingId {
                            nodeid: ring_rep,
                            seq: ring_seq,
                        },
                        members: members.clone(),
                        joined: joined.clone(),
                        left: left.clone(),
                    }
                    .encode(&mut self.buf);
                    self.send(client);
                }
            }
            QuorumUpdate::Quorum {
                quorate,
                ring_rep,
                ring_seq,
                members,
            } => self.on_quorum(quorate, ring_of(ring_rep, ring_seq), members),
            QuorumUpdate::NodeStates { quorate, nodes } => {
                let trackers: Vec<(ClientId, u64)> = self
                    .tracking
                    .iter()
                    .filter_map(|(c, t)| t.votequorum.map(|ctx| (*c, ctx)))
                    .collect();
                for (client, context) in trackers {
                    pv::Event::Quorum {
                        context,
                        quorate,
                        nodes: nodes.clone(),
                    }
                    .encode(&mut self.buf);
                    self.send(client);
                }
            }
            QuorumUpdate::ExpectedVotes(expected_votes) => {
                let trackers: Vec<(ClientId, u64)> = self
                    .tracking
                    .iter()
                    .filter_map(|(c, t)| t.votequorum.map(|ctx| (*c, ctx)))
                    .collect();
                for (client, context) in trackers {
                    pv::Event::ExpectedVotes {
                        context,
                        expected_votes,
                    }
                    .encode(&mut self.buf);
                    self.send(client);
                }
            }
            QuorumUpdate::EvTrackingBarrier(barrier) => {
                if let Some(f) = self.ev_tracking.as_mut() {
                    f.record(barrier);
                    self.barrier_changed = Some(f.saved());
                }
            }
        }
    }

    /// The quorum callback (vsf_quorum's `quorum_api_set_quorum`): the log lines, the view,
    /// the notifications.
    fn on_quorum(&mut self, quorate: bool, ring: RingId, members: Vec<u32>) {
        if quorate && !self.quorate {
            log_at!(
                Notice,
                "QUORUM",
                "This node is within the primary component and will provide service."
            );
        } else if !quorate && self.quorate {
            log_at!(
                Notice,
                "QUORUM",
                "This node is within the non-primary component and will NOT provide any \
                 services."
            );
        }
        self.quorate = quorate;
        self.ring = ring;
        self.view = members;
        log_view_list("Members", &self.view.clone());
        let trackers: Vec<ClientId> = self
            .tracking
            .iter()
            .filter(|(_, t)| t.quorum)
            .map(|(c, _)| *c)
            .collect();
        for client in trackers {
            self.quorum_notification(client);
        }
    }

    /// votequorum's state after a change: kept for getinfo, published in cmap.
    pub fn on_state(&mut self, state: &QuorumState, cmap: &mut CmapStore) {
        self.state = Some(state_of(state));
        self.publish(cmap);
    }

    /// `runtime.votequorum.*`, as corosync's votequorum sets them.
    fn publish(&self, cmap: &mut CmapStore) {
        let mut set = |key: &str, value: Option<Value>| {
            let key = format!("runtime.votequorum.{key}");
            match value {
                Some(v) => {
                    let _ = cmap.set(&key, v, Access::Daemon);
                }
                None => {
                    let _ = cmap.delete(&key, Access::Daemon);
                }
            }
        };
        let Some(s) = &self.state else {
            return;
        };
        set("this_node_id", Some(Value::U32(s.node.0)));
        set("two_node", Some(Value::U8(u8::from(s.two_node))));
        set("ev_barrier", Some(Value::U32(s.ev_barrier)));
        if s.wait_for_all {
            set(
                "wait_for_all_status",
                Some(Value::U8(u8::from(s.wait_for_all_status))),
            );
        }
        if s.expected_votes_tracking {
            set(
                "ev_tracking_barrier",
                Some(Value::U32(s.ev_tracking_barrier)),
            );
        }
        set("lowest_node_id", s.lowest_node_id.map(Value::U32));
        set("highest_node_id", s.highest_node_id.map(Value::U32));
        if s.auto_tie_breaker != vq::TieBreaker::Off {
            set("atb_type", Some(Value::U32(s.auto_tie_breaker.atb_type())));
        }
        if s.qdevice_votes > 0 || !s.qdevice_can_operate {
            set(
                "qdevice_can_operate",
                Some(Value::U8(u8::from(s.qdevice_can_operate))),
            );
        }
        if s.qdevice_master_wins {
            set("qdevice_master_wins", Some(Value::U8(1)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_lists_are_cut_as_corosync_cuts_them() {
        assert_eq!(
            view_list_lines("Members", &[1, 2, 3]),
            ["Members[3]: 1 2 3"]
        );
        assert_eq!(view_list_lines("Sync left", &[]), ["Sync left[0]:"]);
        // 64-byte buffer: 15 ids of " 100N" (5 bytes) make 75 bytes.
        let ids: Vec<u32> = (1000..1015).collect();
        let lines = view_list_lines("Members", &ids);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with('\\'), "{lines:?}");
        assert_eq!(
            lines[0],
            format!(
                "Members[15]:{}\\",
                " 1000 1001 1002 1003 1004 1005 1006 1007 1008 1009 1010 1011"
            )
        );
        assert_eq!(lines[1], "Members[15]: 1012 1013 1014");
    }
}
