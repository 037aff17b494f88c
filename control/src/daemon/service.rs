//! The services rotord runs itself for the clients attached on `@rotor-ipc` (or
//! `$ROTOR_IPC_SOCKET`): cmap (the typed key/value database, requests and track
//! notifications, the `runtime.*` and `stats.*` keys kept current from the dataplane's
//! reports), cfg, and quorum and votequorum (`quorum.rs`), routed by the request's op. cfg
//! requests that take the whole cluster (reload, key rotation, kill) or a config key written
//! through cmap go to the daemon as `CfgAction`s and are answered when it knows the outcome;
//! a shutdown request is put to every client that tracks (`cfg::ShutdownVote`).

use std::os::fd::{AsRawFd, RawFd};

use std::time::Instant;

use ipc_shm::{AllowList, Server, Session, SessionError};
use rotor_proto::cfg::{
    self, LinkReport, LinkStatus, NodeStatus, NodeStatusV1, ShutdownFlags, StatusReply,
};
use rotor_proto::cmap as pc;
use rotor_proto::control::RingReport;
use rotor_proto::Status;

use super::quorum::{ClientId, QuorumService};
use crate::cmap::{Access, CmapError, CmapStore, TrackFilter, TrackHandle, Value};
use crate::discovery::LocalNode;
use crate::error::DaemonError;
use crate::log_at;

use super::cfg::{CfgAction, ShutdownVote, Verdict, SHUTDOWN_TIMEOUT_DEFAULT};
use super::stats::{clear_prefixes, Publisher, StatsBook};

/// Setting a key under this prefix clears statistics, as corosync's stats map does
/// (`corosync-cmapctl -C WHAT` sets `stats.clear.WHAT`).
pub const STATS_CLEAR_PREFIX: &str = "stats.clear.";

/// The allow-list from uidgid{}: root and the user rotord runs as always, plus
/// `uidgid.config.uid.*`/`gid.*` entries (the file's) and `uidgid.uid.*`/`gid.*` entries
/// (written by applications, as pacemakerd admits its group), as corosync's IPC admits: an
/// entry counts when its value is 1.
pub fn allow_list(cmap: &CmapStore) -> AllowList {
    let mut allow = AllowList::root_and_owner();
    let admitted = |prefix: &str| -> Vec<u32> {
        cmap.iter_prefix(prefix)
            .filter(|(_, v)| matches!(v, Value::U8(1)))
            .filter_map(|(k, _)| k.rsplit('.').next().and_then(|s| s.parse().ok()))
            .collect()
    };
    for prefix in ["uidgid.config.uid.", "uidgid.uid."] {
        for uid in admitted(prefix) {
            allow = allow.allow_uid(uid);
        }
    }
    for prefix in ["uidgid.config.gid.", "uidgid.gid."] {
        for gid in admitted(prefix) {
            allow = allow.allow_gid(gid);
        }
    }
    allow
}

struct CmapClient {
    /// Names the client to the quorum service (indexes move as clients leave).
    id: ClientId,
    session: Session,
    tracks: Vec<TrackHandle>,
    /// Asked about shutdowns (libcfg's trackstart).
    tracking: bool,
}

/// The keys as the dataplane last reported them: the one it seals under, those it opens, and
/// peers heard under a key it does not hold (node, key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyState {
    pub sealing: u32,
    pub held: Vec<u32>,
    pub unknown: Vec<(u32, u32)>,
}

/// The cmap key a client sets to 1 to cancel wait_for_all, as with corosync.
const CANCEL_WAIT_FOR_ALL_KEY: &str = "quorum.cancel_wait_for_all";

/// Requests handled per client per turn, so one busy client cannot starve the others.
const REQUESTS_PER_TURN: usize = 64;

/// cmap, cfg, quorum and votequorum for local clients.
pub struct CmapService {
    cmap: CmapStore,
    server: Server,
    clients: Vec<CmapClient>,
    next_client: ClientId,
    node: LocalNode,
    /// Why rotord should stop now (a cfg shutdown: who asked).
    shutdown: Option<String>,
    /// Requests for the daemon, in order.
    actions: Vec<CfgAction>,
    vote: Option<ShutdownVote>,
    keys: KeyState,
    /// Why the last reload was not applied (empty once one is).
    reload_error: String,
    /// The largest IP packet the cluster sends (a link's mtu in node status).
    netmtu: u32,
    quorum: QuorumService,
    /// A dataplane runs to forward votequorum requests to.
    dataplane_running: bool,
    /// Every node seen in an operational ring: how often it joined one, and whether it is
    /// in the current one (`runtime.members.<id>.*`).
    members_seen: std::collections::BTreeMap<u32, (u32, bool)>,
    /// The ring `runtime.members.*` were last updated for.
    members_ring: Option<(u32, u64)>,
    /// `stats.*` combined across dataplane lifetimes.
    book: StatsBook,
    /// What of the book is in cmap.
    published: Publisher,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl CmapService {
    /// Listens on `@socket_name` for clients the uidgid{} entries in `cmap` allow.
    pub fn new(
        cmap: CmapStore,
        socket_name: &str,
        node: LocalNode,
        quorum: QuorumService,
    ) -> Result<CmapService, DaemonError> {
        let server = Server::bind(socket_name, allow_list(&cmap)).map_err(|e| {
            DaemonError::AlreadyRunning {
                name: socket_name.to_owned(),
                reason: e.to_string(),
            }
        })?;
        let mut service = CmapService {
            cmap,
            server,
            clients: Vec::new(),
            next_client: 1,
            node,
            shutdown: None,
            actions: Vec::new(),
            vote: None,
            keys: KeyState::default(),
            reload_error: String::new(),
            netmtu: totem_core::TotemSettings::default().netmtu_bytes,
            quorum,
            dataplane_running: false,
            members_seen: Default::default(),
            members_ring: None,
            book: StatsBook::default(),
            published: Publisher::default(),
            buf: vec![0; 1 << 16],
            out: Vec::new(),
        };
        service.publish_local_node_pos();
        service.publish_ring(&RingReport {
            state: rotor_proto::RingState::Down,
            ring_rep: 0,
            ring_seq: 0,
            members: Vec::new(),
            transport: String::new(),
        });
        Ok(service)
    }

    pub fn cmap(&self) -> &CmapStore {
        &self.cmap
    }

    /// The database, for the daemon's writes (a reload's keys).
    pub fn cmap_mut(&mut self) -> &mut CmapStore {
        &mut self.cmap
    }

    /// The quorum service and the cmap it publishes in.
    /// Quorum as the metrics show it (`None` without votequorum).
    pub fn quorum_status(&self) -> Option<super::quorum::QuorumView> {
        self.quorum.view()
    }

    pub fn quorum_mut(&mut self) -> (&mut QuorumService, &mut CmapStore) {
        (&mut self.quorum, &mut self.cmap)
    }

    /// Whether a dataplane runs (votequorum requests need one).
    pub fn set_dataplane_running(&mut self, running: bool) {
        self.dataplane_running = running;
    }

    /// Whether a client asked for an orderly shutdown.
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Who asked for the shutdown, for the log.
    pub fn shutdown_reason(&self) -> Option<&str> {
        self.shutdown.as_deref()
    }

    /// The requests for the daemon since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<CfgAction> {
        std::mem::take(&mut self.actions)
    }

    /// The node as a reload left it (peers for status and addresses).
    pub fn set_node(&mut self, node: LocalNode) {
        self.node = node;
        self.publish_local_node_pos();
    }

    /// Admits clients by `allow` from now on.
    pub fn set_allow_list(&mut self, allow: AllowList) {
        self.server.set_allow_list(allow);
    }

    pub fn set_keys(&mut self, keys: KeyState) {
        self.keys = keys;
    }

    pub fn keys(&self) -> &KeyState {
        &self.keys
    }

    pub fn set_reload_error(&mut self, error: String) {
        self.reload_error = error;
    }

    pub fn set_netmtu(&mut self, netmtu: u32) {
        self.netmtu = netmtu;
    }

    /// Sends `event` to client `client`, if it is still attached.
    pub fn reply_cfg(&mut self, client: ClientId, event: cfg::Event) {
        event.encode(&mut self.out);
        self.send_to(client);
    }

    /// Answers a cmap request of `client` the daemon carried out.
    pub fn reply_cmap(&mut self, client: ClientId, req_id: u32, result: Result<(), CmapError>) {
        let (status, message) = match result {
            Ok(()) => (Status::Ok, String::new()),
            Err(e) => (cmap_status(&e), e.to_string()),
        };
        pc::Event::Reply {
            req_id,
            status,
            message,
            value: None,
            entries: Vec::new(),
        }
        .encode(&mut self.out);
        self.send_to(client);
    }

    fn send_to(&mut self, client: ClientId) {
        let Some(c) = self.clients.iter_mut().find(|c| c.id == client) else {
            return;
        };
        if let Err(e) = c.session.try_send(&self.out) {
            log_at!(
                Warning,
                "IPC",
                "client pid {}: reply dropped, disconnecting: {e}",
                c.session.peer().pid
            );
            c.session.close();
        }
    }

    /// Descriptors to wait on: the listening socket first, then each client's wake-up fd and
    /// control socket (armed, so a client's next record wakes us).
    pub fn wait_fds(&mut self, out: &mut Vec<RawFd>) {
        out.push(self.server.as_raw_fd());
        for c in &mut self.clients {
            let _ = c.session.arm_for_poll();
            out.push(c.session.as_raw_fd());
            out.push(c.session.control_fd());
        }
    }

    /// Takes a waiting attach (when the listening socket was readable).
    pub fn accept(&mut self) {
        match self.server.accept() {
            Ok(s) => {
                let id = self.next_client;
                self.next_client += 1;
                self.clients.push(CmapClient {
                    id,
                    session: s,
                    tracks: Vec::new(),
                    tracking: false,
                })
            }
            Err(ipc_shm::AcceptError::Io(e)) => log_at!(Warning, "IPC", "cmap/cfg attach: {e}"),
            // ipc-shm logged the refusal (and logs an attach at debug level).
            Err(_) => {}
        }
    }

    /// Serves every client, drops the ones that left, routes track notifications and the
    /// quorum service's records.
    pub fn serve(&mut self, ring: &RingReport) {
        self.serve_clients(ring);
        self.deliver_quorum();
        self.reap_clients();
        self.check_vote();
        self.route_track_events();
    }

    /// Sends the quorum service's records to their clients, in order.
    pub fn deliver_quorum(&mut self) {
        for (id, record) in self.quorum.take_out() {
            let Some(c) = self.clients.iter_mut().find(|c| c.id == id) else {
                continue;
            };
            if let Err(e) = c.session.try_send(&record) {
                log_at!(
                    Warning,
                    "QUORUM",
                    "client pid {}: not reading its quorum records ({e}): disconnected",
                    c.session.peer().pid
                );
                c.session.close();
            }
        }
    }

    /// Looks for clients that died without closing their session.
    pub fn check_peers(&mut self) {
        for c in &mut self.clients {
            let _ = c.session.check_peer();
        }
    }

    /// Stores the dataplane's counters as `stats.<key>` (u64).
    /// Stores the dataplane's counters as `stats.<key>` (u64), and under corosync's names
    /// (`stats::COROSYNC_SRP_COUNTERS`) where a counter means what corosync's does.
    pub fn publish_stats(&mut self, counters: Vec<(String, u64)>) {
        self.book.update(&counters);
        self.republish_stats();
    }

    /// A reload removed links `numbers`: every peer's counters on them leave the book and
    /// cmap (`stats.knet.node<N>.link<L>.*`), as knet's stats of a removed link do, and so do
    /// the link's XDP counters (`stats.xdp.link<L>.*`).
    pub fn forget_link_stats(&mut self, numbers: &[u8]) {
        let on_removed = |key: &str| {
            let xdp = |&n: &u8| key.starts_with(&rotor_proto::xdp::for_link("xdp.", n));
            if numbers.iter().filter(|n| **n != 0).any(xdp) {
                return true;
            }
            let Some(rest) = key.strip_prefix("knet.node") else {
                return false;
            };
            let link = rest.split('.').nth(1).and_then(|l| l.strip_prefix("link"));
            link.and_then(|l| l.parse::<u8>().ok())
                .is_some_and(|l| numbers.contains(&l))
        };
        for key in self.book.forget(on_removed) {
            let _ = self.cmap.delete(&format!("stats.{key}"), Access::Daemon);
            self.published.forget(&key);
        }
    }

    /// The dataplane exited: what it counted is kept, its levels (clients, backlogs) go.
    pub fn dataplane_gone(&mut self) {
        self.book.end_lifetime();
        self.republish_stats();
    }

    /// The counters combined across dataplane lifetimes.
    pub fn stats(&self) -> &StatsBook {
        &self.book
    }

    /// `stats.*` from the book, what changed since last time (`stats::Publisher`).
    fn republish_stats(&mut self) {
        self.published.publish(&self.book, &mut self.cmap);
    }

    /// Publishes a statistic rotord keeps itself (`stats.<key>`), e.g. the dataplane's restarts.
    pub fn publish_own_stat(&mut self, key: &str, value: u64) {
        let _ = self
            .cmap
            .set(&format!("stats.{key}"), Value::U64(value), Access::Daemon);
    }

    /// corosync-cmapctl -C: a client set `stats.clear.<what>` (any value).
    fn clear_stats(&mut self, what: &str, pid: i32) -> Result<(), CmapError> {
        let Some(prefixes) = clear_prefixes(what) else {
            return Err(CmapError::ReadOnly {
                key: format!("{STATS_CLEAR_PREFIX}{what}"),
                prefix: STATS_CLEAR_PREFIX.to_owned(),
            });
        };
        log_at!(Notice, "MAIN", "statistics cleared ({what}) by pid {pid}");
        self.book.clear(prefixes);
        self.republish_stats();
        Ok(())
    }

    /// `nodelist.local_node_pos`: this node's index in the nodelist, as corosync publishes it
    /// (applications find their own `nodelist.node.<pos>.*` with it).
    pub(crate) fn publish_local_node_pos(&mut self) {
        let id = self.node.node_id;
        let pos = self
            .cmap
            .iter_prefix("nodelist.node.")
            .find(|(k, v)| k.ends_with(".nodeid") && **v == Value::U32(id))
            .and_then(|(k, _)| k.split('.').nth(2).and_then(|p| p.parse::<u32>().ok()));
        if let Some(pos) = pos {
            let _ = self
                .cmap
                .set("nodelist.local_node_pos", Value::U32(pos), Access::Daemon);
        }
    }

    /// The address corosync shows for a node: `r(0) ip(ADDR) ` (one ring).
    fn member_ip(&self, id: u32) -> String {
        let addr = if id == self.node.node_id {
            self.node.bind.ip().to_string()
        } else {
            self.node
                .peers
                .iter()
                .find(|(p, _)| *p == id)
                .map(|(_, a)| a.ip().to_string())
                .unwrap_or_default()
        };
        format!("r(0) ip({addr}) ")
    }

    /// `runtime.members.<id>.{ip,join_count,status,config_version}` as corosync keeps them:
    /// every node seen in an operational ring keeps its entry, `joined` while in the ring,
    /// `left` after; `join_count` counts the rings it joined after being out of one.
    fn publish_members(&mut self, ring: &RingReport) {
        if ring.state != rotor_proto::RingState::Operational
            || self.members_ring == Some((ring.ring_rep, ring.ring_seq))
        {
            return;
        }
        self.members_ring = Some((ring.ring_rep, ring.ring_seq));
        for (id, (_, in_ring)) in self.members_seen.iter_mut() {
            if !ring.members.contains(id) {
                *in_ring = false;
            }
        }
        for m in &ring.members {
            let entry = self.members_seen.entry(*m).or_insert((0, false));
            if !entry.1 {
                *entry = (entry.0 + 1, true);
            }
        }
        let seen: Vec<(u32, (u32, bool))> =
            self.members_seen.iter().map(|(k, v)| (*k, *v)).collect();
        for (id, (joins, in_ring)) in seen {
            let ip = self.member_ip(id);
            let status = if in_ring { "joined" } else { "left" };
            for (k, v) in [
                ("ip", Value::String(ip)),
                ("join_count", Value::U32(joins)),
                ("status", Value::String(status.into())),
                ("config_version", Value::U64(0)),
            ] {
                let key = format!("runtime.members.{id}.{k}");
                let _ = self.cmap.set(&key, v, Access::Daemon);
            }
        }
    }

    /// Publishes the ring in `runtime.totem.pg.mrp.srp.*` and `runtime.members.*`
    /// (corosync's keys).
    pub fn publish_ring(&mut self, ring: &RingReport) {
        self.publish_members(ring);
        let (rep, seq) = (ring.ring_rep, ring.ring_seq);
        let set = |c: &mut CmapStore, k: &str, v: Value| {
            let _ = c.set(k, v, Access::Daemon);
        };
        set(
            &mut self.cmap,
            "runtime.votequorum.this_node_id",
            Value::U32(self.node.node_id),
        );
        set(
            &mut self.cmap,
            "runtime.totem.pg.mrp.srp.state",
            Value::String(ring.state.name().into()),
        );
        set(
            &mut self.cmap,
            "runtime.totem.pg.mrp.srp.ring_id",
            Value::String(format!("{rep}.{seq:x}")),
        );
        set(
            &mut self.cmap,
            "runtime.totem.pg.mrp.srp.transport",
            Value::String(ring.transport.clone()),
        );
        let old: Vec<String> = self
            .cmap
            .iter_prefix("runtime.totem.pg.mrp.srp.members.")
            .map(|(k, _)| k.to_owned())
            .collect();
        for k in old {
            let _ = self.cmap.delete(&k, Access::Daemon);
        }
        for m in &ring.members {
            let addr = if *m == self.node.node_id {
                self.node.bind.ip().to_string()
            } else {
                self.node
                    .peers
                    .iter()
                    .find(|(id, _)| id == m)
                    .map(|(_, a)| a.ip().to_string())
                    .unwrap_or_default()
            };
            set(
                &mut self.cmap,
                &format!("runtime.totem.pg.mrp.srp.members.{m}.ip"),
                Value::String(addr),
            );
            set(
                &mut self.cmap,
                &format!("runtime.totem.pg.mrp.srp.members.{m}.status"),
                Value::String("joined".into()),
            );
        }
    }

    /// Answers every request waiting in the clients' rings (at most 64 per client per call).
    fn serve_clients(&mut self, ring: &RingReport) {
        for i in 0..self.clients.len() {
            for _ in 0..REQUESTS_PER_TURN {
                let n = match self.clients[i].session.try_recv(&mut self.buf) {
                    Ok(n) => n,
                    Err(SessionError::Empty) => break,
                    Err(_) => break,
                };
                let record = self.buf[..n].to_vec();
                self.handle(i, &record, ring);
            }
        }
    }

    fn handle(&mut self, i: usize, record: &[u8], ring: &RingReport) {
        let op = record
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .unwrap_or(0);
        if op >> 8 == 0x05 || op >> 8 == 0x06 {
            let id = self.clients[i].id;
            let result = if op >> 8 == 0x05 {
                self.quorum.handle_quorum(id, record)
            } else {
                self.quorum
                    .handle_votequorum(id, record, self.dataplane_running)
            };
            if let Err(e) = result {
                log_at!(
                    Warning,
                    "IPC",
                    "client pid {} disconnected: malformed quorum request: {e}",
                    self.clients[i].session.peer().pid
                );
                self.clients[i].session.close();
            }
            return;
        }
        if op >> 8 == 0x03 {
            match cfg::Request::decode(record) {
                Ok((req_id, req)) => self.handle_cfg(i, req_id, req, ring),
                Err(e) => {
                    log_at!(
                        Warning,
                        "IPC",
                        "client pid {} disconnected: malformed cfg request: {e}",
                        self.clients[i].session.peer().pid
                    );
                    self.clients[i].session.close();
                }
            }
            return;
        }
        let (req_id, req) = match pc::Request::decode(record) {
            Ok(r) => r,
            Err(e) => {
                log_at!(
                    Warning,
                    "IPC",
                    "client pid {} disconnected: malformed cmap request: {e}",
                    self.clients[i].session.peer().pid
                );
                self.clients[i].session.close();
                return;
            }
        };
        let mut value = None;
        let mut entries = Vec::new();
        // corosync's way out of wait_for_all: setting quorum.cancel_wait_for_all to 1 (the
        // key itself stays 0; votequorum orders the cancel in the cluster).
        let cancel = match &req {
            pc::Request::Set { key, value } if *key == CANCEL_WAIT_FOR_ALL_KEY => Some(!matches!(
                value,
                Value::U8(0) | Value::U32(0) | Value::U64(0) | Value::I32(0)
            )),
            _ => None,
        };
        let mut special = None;
        if let Some(on) = cancel {
            special = Some(if on {
                self.quorum.cancel_wait_for_all(self.dataplane_running)
            } else {
                Ok(())
            });
        }
        let result: Result<(), CmapError> = match req {
            _ if special.is_some() => Ok(()),
            pc::Request::Get { key } => match self.cmap.get(key) {
                Some(v) => {
                    value = Some(v.clone());
                    Ok(())
                }
                None => Err(CmapError::NotFound {
                    key: key.to_owned(),
                }),
            },
            pc::Request::Set { key, .. } if key.starts_with(STATS_CLEAR_PREFIX) => {
                let pid = self.clients[i].session.peer().pid;
                self.clear_stats(&key[STATS_CLEAR_PREFIX.len()..], pid)
            }
            pc::Request::Set { key, value: v } => {
                match self.cmap.set(key, v.clone(), Access::Client) {
                    // A key the config file stands for: the daemon decides (and answers).
                    Err(CmapError::ConfigBacked { .. }) => {
                        self.actions.push(CfgAction::CmapWrite {
                            client: self.clients[i].id,
                            req_id,
                            key: key.to_owned(),
                            value: Some(v),
                        });
                        return;
                    }
                    other => other,
                }
            }
            pc::Request::Delete { key } => match self.cmap.delete(key, Access::Client) {
                Err(CmapError::ConfigBacked { .. }) => {
                    self.actions.push(CfgAction::CmapWrite {
                        client: self.clients[i].id,
                        req_id,
                        key: key.to_owned(),
                        value: None,
                    });
                    return;
                }
                other => other.map(|_| ()),
            },
            pc::Request::Iter { prefix } => {
                entries = self
                    .cmap
                    .iter_prefix(prefix)
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect();
                Ok(())
            }
            pc::Request::TrackAdd { key, flags } => {
                let filter = TrackFilter {
                    added: flags & pc::TRACK_ADD != 0,
                    changed: flags & pc::TRACK_MODIFY != 0,
                    deleted: flags & pc::TRACK_DELETE != 0,
                    prefix: flags & pc::TRACK_PREFIX != 0,
                };
                self.cmap.track_add(key, filter).map(|h| {
                    self.clients[i].tracks.push(h);
                    value = Some(Value::U64(h.0));
                })
            }
            pc::Request::Inc { key } => self.cmap.adjust(key, 1, Access::Client),
            pc::Request::Dec { key } => self.cmap.adjust(key, -1, Access::Client),
            pc::Request::TrackDelete { handle } => {
                let h = TrackHandle(handle);
                if self.clients[i].tracks.contains(&h) {
                    self.clients[i].tracks.retain(|t| *t != h);
                    self.cmap.track_delete(h)
                } else {
                    Err(CmapError::UnknownTrack(h))
                }
            }
        };
        let (status, message) = match (special, result) {
            (Some(Err((status, message))), _) => (status, message),
            (_, Ok(())) => (Status::Ok, String::new()),
            (_, Err(e)) => (cmap_status(&e), e.to_string()),
        };
        pc::Event::Reply {
            req_id,
            status,
            message,
            value,
            entries,
        }
        .encode(&mut self.out);
        if let Err(e) = self.clients[i].session.try_send(&self.out) {
            log_at!(
                Warning,
                "IPC",
                "client pid {}: reply dropped, disconnecting: {e}",
                self.clients[i].session.peer().pid
            );
            self.clients[i].session.close();
        }
    }

    fn status(&self, ring: &RingReport) -> StatusReply {
        let p = &self.node;
        let mut nodes = vec![NodeStatus {
            node_id: p.node_id,
            addr: p.bind.ip().to_string(),
            connected: true,
        }];
        nodes.extend(p.peers.iter().map(|(id, a)| NodeStatus {
            node_id: *id,
            addr: a.ip().to_string(),
            connected: ring.members.contains(id),
        }));
        nodes.sort_by_key(|n| n.node_id);
        let transport = if ring.transport.is_empty() {
            "udp".to_owned()
        } else {
            ring.transport.clone()
        };
        let links = p
            .links
            .iter()
            .map(|l| {
                let number = l.settings.number;
                let mut nodes: Vec<(u32, bool)> = l
                    .peers
                    .iter()
                    .map(|(id, _)| (*id, self.link_connected(*id, number)))
                    .collect();
                nodes.push((p.node_id, true));
                nodes.sort_unstable();
                LinkReport {
                    link: number,
                    // Links beyond 0 run on kernel UDP (AF_XDP is link 0's).
                    transport: if number == 0 {
                        transport.clone()
                    } else {
                        "udp".to_owned()
                    },
                    local_addr: l.local.ip().to_string(),
                    nodes,
                }
            })
            .collect();
        StatusReply {
            links,
            key_id: self.keys.sealing,
            keys_held: self.keys.held.clone(),
            unknown_keys: self.keys.unknown.clone(),
            reload_error: self.reload_error.clone(),
            node_id: p.node_id,
            transport,
            local_addr: p.bind.ip().to_string(),
            state: ring.state,
            ring_rep: ring.ring_rep,
            ring_seq: ring.ring_seq,
            nodes,
        }
    }

    /// One cfg request of client `i`.
    fn handle_cfg(&mut self, i: usize, req_id: u32, req: cfg::Request, ring: &RingReport) {
        let client = self.clients[i].id;
        let pid = self.clients[i].session.peer().pid;
        let reply = |status: Status, message: String| cfg::Event::Reply {
            req_id,
            status,
            message,
        };
        let event = match req {
            cfg::Request::Status => cfg::Event::Status {
                req_id,
                reply: self.status(ring),
            },
            cfg::Request::Shutdown => {
                log_at!(Notice, "CFG", "shutdown requested by pid {pid}");
                self.shutdown = Some(format!("shutdown requested by pid {pid}"));
                cfg::Event::ShutdownReply {
                    req_id,
                    status: Status::Ok,
                }
            }
            cfg::Request::TryShutdown { flags } => match self.try_shutdown(client, req_id, flags) {
                Some(event) => event,
                None => return,
            },
            cfg::Request::ReplyToShutdown { yes } => {
                match self.vote.as_mut().map(|vote| vote.answer(client, yes)) {
                    Some(true) => {
                        log_at!(
                            Debug,
                            "CFG",
                            "pid {pid} answers the shutdown request: {}",
                            if yes { "yes" } else { "no" }
                        );
                        reply(Status::Ok, String::new())
                    }
                    _ => reply(
                        Status::Access,
                        "no shutdown request is waiting for this client's answer".into(),
                    ),
                }
            }
            cfg::Request::Reload => {
                self.actions.push(CfgAction::Reload { client, req_id });
                return;
            }
            cfg::Request::RotateKey { path } => {
                self.actions.push(CfgAction::RotateKey {
                    client,
                    req_id,
                    path,
                });
                return;
            }
            cfg::Request::ReopenLog => {
                let errors = rotor_log::reopen();
                if errors.is_empty() {
                    log_at!(Notice, "MAIN", "log files reopened (asked by pid {pid})");
                    reply(Status::Ok, String::new())
                } else {
                    let why: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                    for w in &why {
                        log_at!(
                            Error,
                            "MAIN",
                            "{w}; still writing to the file opened before"
                        );
                    }
                    reply(Status::Library, why.join("; "))
                }
            }
            cfg::Request::Kill { node, reason } => {
                if ring.members.contains(&node) {
                    self.actions.push(CfgAction::Kill {
                        client,
                        req_id,
                        node,
                        reason,
                    });
                    return;
                }
                reply(
                    Status::NotExist,
                    format!("node {node} is not a member of the ring"),
                )
            }
            cfg::Request::NodeStatus { node } => match self.node_status(node, ring) {
                Some(status) => cfg::Event::NodeStatusReply {
                    req_id,
                    status: Status::Ok,
                    node: status,
                },
                None => cfg::Event::NodeStatusReply {
                    req_id,
                    status: Status::NotExist,
                    node: NodeStatusV1 {
                        node_id: node,
                        reachable: false,
                        remote: false,
                        external: false,
                        links: Vec::new(),
                    },
                },
            },
            cfg::Request::LocalGet => cfg::Event::LocalReply {
                req_id,
                node_id: self.node.node_id,
            },
            cfg::Request::NodeAddrs { node } => match self.address_of(node) {
                Some(addr) => cfg::Event::AddrsReply {
                    req_id,
                    status: Status::Ok,
                    addrs: vec![addr.to_string()],
                },
                // corosync answers CS_ERR_EXIST for a node it has no interface of.
                None => cfg::Event::AddrsReply {
                    req_id,
                    status: Status::Exist,
                    addrs: Vec::new(),
                },
            },
            cfg::Request::TrackStart => {
                self.clients[i].tracking = true;
                let flags = self.vote.as_mut().and_then(|vote| {
                    // A vote under way asks the newcomer too.
                    (!vote.voters.iter().any(|(c, _)| *c == client)).then(|| {
                        vote.voters.push((client, None));
                        vote.flags
                    })
                });
                if let Some(flags) = flags {
                    self.reply_cfg(
                        client,
                        cfg::Event::ShutdownRequested {
                            flags,
                            status: Status::Ok,
                        },
                    );
                }
                reply(Status::Ok, String::new())
            }
            cfg::Request::TrackStop => {
                self.clients[i].tracking = false;
                if let Some(vote) = self.vote.as_mut() {
                    vote.gone(client);
                }
                reply(Status::Ok, String::new())
            }
        };
        self.reply_cfg(client, event);
    }

    /// A shutdown request: at once (IMMEDIATE, or nobody tracks), else put to the tracking
    /// clients; `None` when the answer waits for the vote.
    fn try_shutdown(
        &mut self,
        client: ClientId,
        req_id: u32,
        flags: ShutdownFlags,
    ) -> Option<cfg::Event> {
        let pid = self
            .clients
            .iter()
            .find(|c| c.id == client)
            .map_or(0, |c| c.session.peer().pid);
        let ok = cfg::Event::Reply {
            req_id,
            status: Status::Ok,
            message: String::new(),
        };
        if self.vote.is_some() {
            return Some(cfg::Event::Reply {
                req_id,
                status: Status::Exist,
                message: "a shutdown request is being voted on already".into(),
            });
        }
        let voters: Vec<(ClientId, Option<bool>)> = self
            .clients
            .iter()
            .filter(|c| c.tracking && c.id != client)
            .map(|c| (c.id, None))
            .collect();
        if flags == ShutdownFlags::Immediate || voters.is_empty() {
            log_at!(Notice, "CFG", "shutdown requested by pid {pid}");
            self.shutdown = Some(format!("shutdown requested by pid {pid}"));
            return Some(ok);
        }
        let timeout = self
            .cmap
            .get_u32("cfg.shutdown_timeout")
            .map_or(SHUTDOWN_TIMEOUT_DEFAULT, |ms| {
                std::time::Duration::from_millis(u64::from(ms))
            });
        log_at!(
            Notice,
            "CFG",
            "shutdown requested by pid {pid}: asking {} application(s), {} ms at most",
            voters.len(),
            timeout.as_millis()
        );
        for (voter, _) in &voters {
            self.reply_cfg(
                *voter,
                cfg::Event::ShutdownRequested {
                    flags,
                    status: Status::Ok,
                },
            );
        }
        self.vote = Some(ShutdownVote {
            asker: (client, req_id),
            flags,
            voters,
            deadline: Instant::now() + timeout,
        });
        None
    }

    /// Ends a vote that has its answers or ran out of time.
    fn check_vote(&mut self) {
        let Some(verdict) = self.vote.as_ref().and_then(|v| v.verdict(Instant::now())) else {
            return;
        };
        let vote = self.vote.take().expect("checked");
        let (client, req_id) = vote.asker;
        let (status, message) = match verdict {
            Verdict::Shutdown => {
                log_at!(Notice, "CFG", "shutdown confirmed by the applications");
                self.shutdown =
                    Some("shutdown requested, and confirmed by the applications".into());
                (Status::Ok, String::new())
            }
            Verdict::Cancelled(status) => {
                let why = if status == Status::Timeout {
                    for (voter, answer) in &vote.voters {
                        if answer.is_none() {
                            self.reply_cfg(
                                *voter,
                                cfg::Event::ShutdownRequested {
                                    flags: vote.flags,
                                    status: Status::Timeout,
                                },
                            );
                        }
                    }
                    "not every application answered in time".to_owned()
                } else {
                    "an application said no".to_owned()
                };
                log_at!(Notice, "CFG", "shutdown request called off: {why}");
                (status, format!("shutdown called off: {why}"))
            }
        };
        self.reply_cfg(
            client,
            cfg::Event::Reply {
                req_id,
                status,
                message,
            },
        );
    }

    /// The address of node `node` (0: this node) in the nodelist in effect.
    fn address_of(&self, node: u32) -> Option<std::net::IpAddr> {
        if node == 0 || node == self.node.node_id {
            return Some(self.node.bind.ip());
        }
        self.node
            .peers
            .iter()
            .find(|(id, _)| *id == node)
            .map(|(_, a)| a.ip())
    }

    /// Whether the dataplane has link `link` to `node` up (`stats.knet.node<N>.link<L>.connected`).
    fn link_connected(&self, node: u32, link: u8) -> bool {
        self.book
            .total(&format!("knet.node{node}.link{link}.connected"))
            != 0
    }

    /// A node's status (libcfg's v1): reachable when in the ring (or this node), each link
    /// connected as its pings say (this node's own links always).
    fn node_status(&self, node: u32, ring: &RingReport) -> Option<NodeStatusV1> {
        self.address_of(node)?;
        let local = node == self.node.node_id;
        let links = self
            .node
            .links
            .iter()
            .filter_map(|l| {
                let dst = if local {
                    l.local
                } else {
                    l.peers.iter().find(|(id, _)| *id == node)?.1
                };
                Some(LinkStatus {
                    link: l.settings.number,
                    enabled: true,
                    connected: local || self.link_connected(node, l.settings.number),
                    dynconnected: false,
                    mtu: self.netmtu,
                    src: l.local.ip().to_string(),
                    dst: dst.ip().to_string(),
                })
            })
            .collect();
        Some(NodeStatusV1 {
            node_id: node,
            reachable: local || ring.members.contains(&node),
            remote: false,
            external: false,
            links,
        })
    }

    fn reap_clients(&mut self) {
        let mut i = 0;
        while i < self.clients.len() {
            if self.clients[i].session.is_closed() {
                let c = self.clients.swap_remove(i);
                if let Some(vote) = self.vote.as_mut() {
                    if vote.asker.0 == c.id {
                        // corosync calls a shutdown off when its asker goes away.
                        log_at!(
                            Notice,
                            "CFG",
                            "shutdown request called off: pid {} that asked detached",
                            c.session.peer().pid
                        );
                        self.vote = None;
                    } else {
                        vote.gone(c.id);
                    }
                }
                self.quorum.client_gone(c.id);
                log_at!(
                    Debug,
                    "IPC",
                    "cmap/cfg client pid {} detached ({} track(s) removed)",
                    c.session.peer().pid,
                    c.tracks.len()
                );
                for h in c.tracks {
                    let _ = self.cmap.track_delete(h);
                }
            } else {
                i += 1;
            }
        }
    }

    fn route_track_events(&mut self) {
        while let Some(ev) = self.cmap.poll_event() {
            let kind = match ev.kind {
                crate::cmap::ChangeKind::Added => pc::TRACK_ADD,
                crate::cmap::ChangeKind::Changed => pc::TRACK_MODIFY,
                crate::cmap::ChangeKind::Deleted => pc::TRACK_DELETE,
            };
            let Some(c) = self
                .clients
                .iter_mut()
                .find(|c| c.tracks.contains(&ev.track))
            else {
                continue;
            };
            pc::Event::Notify {
                handle: ev.track.0,
                kind,
                key: ev.key,
                old: ev.old,
                new: ev.new,
            }
            .encode(&mut self.out);
            if c.session.try_send(&self.out).is_err() {
                log_at!(
                    Warning,
                    "IPC",
                    "client pid {} not reading its track notifications: disconnected",
                    c.session.peer().pid
                );
                c.session.close();
            }
        }
    }
}

fn cmap_status(e: &CmapError) -> Status {
    match e {
        CmapError::NotFound { .. } => Status::NotExist,
        CmapError::ReadOnly { .. } | CmapError::ConfigBacked { .. } | CmapError::Fixed { .. } => {
            Status::Access
        }
        CmapError::ValueTooLarge { .. } => Status::TooBig,
        CmapError::MapFull { .. } | CmapError::TooManyTracks => Status::NoSpace,
        CmapError::UnknownTrack(_) => Status::BadHandle,
        _ => Status::InvalidParam,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_admit_users_and_groups_as_with_corosync() {
        let mut cmap = CmapStore::new();
        let nobody = allow_list(&cmap);
        assert!(!nobody.permits(4242, 4242));
        // The file's entries, and what applications write (pacemakerd: its haclient group).
        cmap.set("uidgid.config.uid.4242", Value::U8(1), Access::Daemon)
            .unwrap();
        cmap.set("uidgid.gid.105", Value::U8(1), Access::Daemon)
            .unwrap();
        cmap.set("uidgid.uid.5000", Value::U8(1), Access::Daemon)
            .unwrap();
        // Only the value 1 admits, as corosync reads them.
        cmap.set("uidgid.uid.6000", Value::U8(0), Access::Daemon)
            .unwrap();
        let allow = allow_list(&cmap);
        assert!(allow.permits(4242, 4242));
        assert!(allow.permits(999, 105), "a member of an admitted group");
        assert!(allow.permits(5000, 5000));
        assert!(!allow.permits(6000, 6000));
        assert!(!allow.permits(7000, 7000));
    }
}
