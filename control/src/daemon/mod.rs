//! rotord's event loop and the parts that own their state: the dataplane's supervision
//! (`supervisor`), the cmap/cfg service (`service`, with `cfg`'s actions and shutdown vote)
//! with the quorum and votequorum services (`quorum`), runtime changes (`reload`: what this
//! node answers to a change round; the daemon takes the new config on where the round
//! applies), the numbers kept across restarts (`kept`) and the expected_votes_tracking
//! barrier (`evtracking`), the counters combined across dataplane restarts (`stats`), the
//! metrics endpoint (`metrics`) and systemd's readiness notification (`notify`). [`Plan`] is
//! everything decided at start-up from the config, checked before anything runs (so `rotord
//! -t` checks exactly what a start would). One thread, one poll(2) loop; nothing here is on
//! the per-message path.

pub mod cfg;
pub mod evtracking;
pub mod kept;
pub mod metrics;
pub mod notify;
pub mod quorum;
pub mod reload;
pub mod service;
pub mod stats;
pub mod supervisor;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipc_shm::Server;
use rotor_crypto::CryptoMode;
use rotor_proto::cfg as pcfg;
use rotor_proto::change::{ChangeKindRecord, ChangeReport, ChangeRequest, RoundRecord};
use rotor_proto::control::{
    DataplaneStart, FromDataplane, MulticastSettings, RingReport, ToDataplane,
};
use rotor_proto::link::LinkStart;
use rotor_proto::{RingState, Status};

use rotor_proto::dataplane_quorum::{QdeviceStart, QuorumReply, QuorumStart, TieBreakerSetting};
use totem_core::votequorum::{QuorumSettings, TieBreaker};

use crate::cmap::{Access, CmapError, CmapStore, Value};
use crate::config::Config;
use crate::discovery::LocalNode;
use crate::error::DaemonError;
use crate::log_at;

use cfg::{CfgAction, ClientId};
use evtracking::EvTrackingFile;
use kept::KeptNumber;
use quorum::QuorumService;
use reload::{Prepared, Running};
use service::{CmapService, KeyState};
use supervisor::Supervisor;

/// `system.state_dir` when the config does not set it (corosync's is /var/lib/corosync).
pub const STATE_DIR_DEFAULT: &str = "/var/lib/rotor";
/// The cmap key (under `stats.`) of the dataplane's restarts, which rotord counts itself.
pub const DATAPLANE_RESTARTS_KEY: &str = "dataplane.restarts";
/// How long the loop sleeps at most with nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How often clients are checked for a peer that died without closing its session.
const PEER_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long a cfg shutdown waits for its announcement to be delivered before leaving.
const SHUTDOWN_ANNOUNCE_WAIT: Duration = Duration::from_secs(1);
/// The config prefixes whose keys a reload replaces: cmap keys there that the new file does
/// not have are deleted (corosync's `remove_deleted_entries`).
/// The `runtime.config.totem.interface.<link>.*` keys: a link's values in effect.
const RUNTIME_INTERFACE_PREFIX: &str = "runtime.config.totem.interface.";
const RELOADED_PREFIXES: [&str; 6] = [
    "logging.",
    "totem.",
    "nodelist.node.",
    "quorum.",
    "uidgid.config.",
    "nozzle.",
];

/// Everything rotord decided at start-up, checked.
pub struct Plan {
    pub config: Config,
    pub node: LocalNode,
    pub cluster_name: String,
    pub crypto_mode: CryptoMode,
    /// The authkey's bytes, read once (only when the crypto mode needs a key), wiped on drop.
    pub authkey: zeroize::Zeroizing<Vec<u8>>,
    /// Where the authkey came from (or would have, with crypto off).
    pub keyfile: PathBuf,
    pub dataplane: PathBuf,
    pub socket_base: String,
    /// Where the highest ring sequence is kept across restarts (`system.state_dir`).
    pub state_dir: PathBuf,
    /// rotord runs in the foreground (logging to stderr by default).
    pub foreground: bool,
    /// votequorum's settings for this node, when quorum{} names it as the provider.
    pub quorum: Option<QuorumSettings>,
}

impl Plan {
    /// Checks what the config leaves to be checked at start: which node this host is, the crypto
    /// mode, and the authkey (read and checked once, only when the mode needs one).
    pub fn new(
        config: Config,
        node_id: Option<u32>,
        dataplane: PathBuf,
        socket_base: String,
    ) -> Result<Plan, DaemonError> {
        let node = crate::discovery::local_node(&config, node_id).map_err(DaemonError::Config)?;
        let cluster_name = config
            .totem
            .cluster_name
            .clone()
            .unwrap_or_else(|| crate::config::CLUSTER_NAME_DEFAULT.to_owned());
        let crypto_mode = config.totem.crypto_mode;
        let keyfile = crate::config::authkey_path(config.totem.keyfile.as_deref());
        let authkey = if crypto_mode == CryptoMode::None {
            zeroize::Zeroizing::new(Vec::new())
        } else {
            read_authkey(&keyfile, &cluster_name)?
        };
        let state_dir = match config.entries.get("system.state_dir") {
            Some(Value::String(dir)) => PathBuf::from(dir),
            _ => PathBuf::from(STATE_DIR_DEFAULT),
        };
        let quorum = config
            .quorum_for(node.node_id)
            .map_err(|e| DaemonError::Config(e.to_string()))?;
        Ok(Plan {
            config,
            node,
            cluster_name,
            crypto_mode,
            authkey,
            keyfile,
            dataplane,
            socket_base,
            state_dir,
            foreground: false,
            quorum,
        })
    }

    /// The start message every dataplane of this node gets (epoch, ring sequence and seed are
    /// the supervisor's, per start).
    /// `links` are the node's links with the transport chosen for each.
    fn dataplane_start(&self, links: Vec<LinkStart>, ev_tracking_barrier: u32) -> DataplaneStart {
        let t = &self.config.totem;
        // Every setting of the table with the value in effect (derived ones included).
        let totem = t.settings.named();
        let rotor = &self.config.rotor;
        DataplaneStart {
            node_id: self.node.node_id,
            links,
            link_mode: t.link_mode,
            cluster_name: self.cluster_name.clone(),
            crypto_mode: self.crypto_mode.wire_byte(),
            authkey: self.authkey.to_vec(),
            epoch: 0,
            ring_seq_start: 0,
            totem,
            // udp (and xdp with an mcastaddr) multicast; a node alone has nobody to multicast to.
            multicast: t
                .multicast
                .filter(|_| !self.node.peers.is_empty())
                .map(|m| MulticastSettings {
                    group: m.addr,
                    ttl: m.ttl,
                }),
            poll_mode: rotor.poll_mode,
            poll_spin_us: rotor.poll_spin_us,
            kernel_udp: rotor.kernel_udp,
            core: rotor.dataplane_cores.first().copied(),
            seed: 0,
            quorum: self
                .quorum
                .as_ref()
                .map(|q| quorum_start(q, ev_tracking_barrier)),
        }
    }
}

/// The start message's quorum settings.
fn quorum_start(s: &QuorumSettings, ev_tracking_barrier: u32) -> QuorumStart {
    QuorumStart {
        expected_votes: s.expected_votes,
        nodelist_expected_votes: s.nodelist_expected_votes,
        votes: s.votes,
        two_node: s.two_node,
        wait_for_all: s.wait_for_all,
        wait_for_all_follows_two_node: s.wait_for_all_follows_two_node,
        last_man_standing: s.last_man_standing,
        last_man_standing_window_ms: s.last_man_standing_window_ms,
        auto_tie_breaker: match &s.auto_tie_breaker {
            TieBreaker::Off => TieBreakerSetting::Off,
            TieBreaker::Lowest => TieBreakerSetting::Lowest,
            TieBreaker::Highest => TieBreakerSetting::Highest,
            TieBreaker::List(ids) => TieBreakerSetting::List(ids.clone()),
        },
        allow_downscale: s.allow_downscale,
        expected_votes_tracking: s.expected_votes_tracking,
        qdevice: s.qdevice.as_ref().map(|d| QdeviceStart {
            votes: d.votes,
            timeout_ms: d.timeout_ms,
            sync_timeout_ms: d.sync_timeout_ms,
        }),
        ev_tracking_barrier,
    }
}

/// The authkey's bytes, checked as the dataplane will use them (file type, mode, length).
fn read_authkey(
    path: &std::path::Path,
    cluster_name: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>, DaemonError> {
    let key_error = |e: rotor_crypto::KeyError| DaemonError::Key(e.to_string());
    // Checked through Keys first: a FIFO or a world-readable file is refused before it is read.
    rotor_crypto::Keys::from_authkey_file(path, cluster_name).map_err(key_error)?;
    std::fs::read(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| DaemonError::Key(format!("authkey {}: cannot read: {e}", path.display())))
}

/// The daemon's state.
pub struct Daemon {
    node: LocalNode,
    /// What the node runs with (a reload changes it where its round applies).
    running: Running,
    foreground: bool,
    /// Change requests sent to the dataplane and not answered yet: who asked.
    asked: BTreeMap<u32, (ClientId, u32)>,
    next_request: u32,
    /// Rounds this node asked for: who to answer with the outcome.
    rounds: BTreeMap<(u32, u32), (ClientId, u32)>,
    /// Rounds this node answered ready for, until decided.
    prepared: BTreeMap<(u32, u32), Prepared>,
    /// Totem settings written through cmap on this node, until the next reload.
    overrides: BTreeMap<String, u32>,
    /// Why rotord stops on its own (killed by another node), or that a reload removed it.
    stop: Option<Stop>,
    /// This node's cfg shutdown announcement was delivered.
    shutdown_announced: bool,
    service: CmapService,
    cpg_server: Server,
    supervisor: Supervisor,
    ring: RingReport,
    ring_seq: KeptNumber,
    ready_sent: bool,
    /// Dataplanes started after the first (published as `stats.dataplane.restarts`).
    dataplane_restarts: u64,
    /// The metrics endpoint (`rotor.metrics_listen`), if configured.
    metrics: Option<metrics::MetricsServer>,
    cluster_name: String,
    /// The XDP programs rotord attached (one per link on XDP), kept across dataplane restarts
    /// and detached on a clean shutdown; none when every link runs on kernel UDP.
    xdp: crate::xdp::Programs,
}

/// Why rotord stops on its own.
enum Stop {
    /// Another node asked (cfg kill).
    Killed { by: u32, reason: String },
    /// A reload left this node out of the nodelist.
    Removed,
}

impl Daemon {
    /// Sets up everything that needs rotord's privileges: the client sockets, the state
    /// directory and, for XDP, the program.
    pub fn new(plan: Plan, cmap: CmapStore) -> Result<Daemon, DaemonError> {
        let ev_tracking = match &plan.quorum {
            Some(q) if q.expected_votes_tracking => {
                Some(EvTrackingFile::open(&plan.state_dir, plan.node.node_id)?)
            }
            _ => None,
        };
        let barrier = ev_tracking.as_ref().map_or(0, EvTrackingFile::saved);
        let quorum = QuorumService::new(plan.node.node_id, plan.quorum.as_ref(), ev_tracking);
        let service = CmapService::new(cmap, &plan.socket_base, plan.node.clone(), quorum)?;
        let cpg_name = rotor_proto::cpg_socket_name(&plan.socket_base);
        let cpg_server =
            Server::bind(&cpg_name, service::allow_list(service.cmap())).map_err(|e| {
                DaemonError::AlreadyRunning {
                    name: cpg_name.clone(),
                    reason: e.to_string(),
                }
            })?;
        let ring_seq = KeptNumber::ring_seq(&plan.state_dir, plan.node.node_id);
        let epoch = KeptNumber::epoch(&plan.state_dir, plan.node.node_id);
        let filter = crate::xdp::Filter::of(&plan.config).map_err(DaemonError::Config)?;
        let mut links = plan.node.links.clone();
        let xdp = crate::xdp::choose_links(&plan.config.totem, &mut links, &filter)
            .map_err(DaemonError::Transport)?;
        let maps = xdp.map_fds();
        let start = plan.dataplane_start(links, barrier);
        let mut service = service;
        service.set_netmtu(plan.config.totem.settings.netmtu_bytes);
        xdp.publish(service.cmap_mut());
        let metrics = plan
            .config
            .rotor
            .metrics_listen
            .map(metrics::MetricsServer::bind)
            .transpose()?;
        let running = Running {
            node_id: plan.node.node_id,
            bind: plan.node.bind,
            authkey: plan.authkey,
            keyfile: plan.keyfile,
            crypto_mode: plan.crypto_mode,
            cluster_name: plan.cluster_name.clone(),
            config: plan.config,
        };
        Ok(Daemon {
            running,
            foreground: plan.foreground,
            asked: BTreeMap::new(),
            next_request: 1,
            rounds: BTreeMap::new(),
            prepared: BTreeMap::new(),
            overrides: BTreeMap::new(),
            stop: None,
            shutdown_announced: false,
            node: plan.node,
            service,
            cpg_server,
            supervisor: Supervisor::new(plan.dataplane, start, maps, epoch),
            ring: RingReport {
                state: RingState::Down,
                ring_rep: 0,
                ring_seq: 0,
                members: Vec::new(),
                transport: String::new(),
            },
            ring_seq,
            ready_sent: false,
            dataplane_restarts: 0,
            metrics,
            cluster_name: plan.cluster_name,
            xdp,
        })
    }

    /// Runs until SIGTERM/SIGINT (`stop` returns true) or a cfg shutdown; an error is a reason
    /// to stop with its exit status.
    pub fn run(&mut self, stop: &dyn Fn() -> bool) -> Result<(), DaemonError> {
        // Set-up is done (config, key, sockets, log, XDP program): from here rotord itself
        // needs a capability only to detach its program, and the dataplane it starts only
        // those its transport needs.
        let (bounding, kept) = crate::privs::after_setup(!self.xdp.is_empty());
        match crate::privs::drop_to(bounding, kept) {
            Ok(d) if d.bounding.is_empty() && d.kept.is_empty() => {}
            Ok(d) => log_at!(
                Notice,
                "MAIN",
                "privileges dropped: rotord keeps {}; the dataplane may have {}",
                crate::privs::Dropped::names(&d.kept),
                crate::privs::Dropped::names(&d.bounding)
            ),
            Err(e) => log_at!(Error, "MAIN", "could not drop privileges: {e}"),
        }
        let result = self.serve(stop);
        if self.service.shutdown_requested() {
            self.announce_shutdown();
        }
        self.shutdown();
        match self.stop.take() {
            Some(Stop::Killed { by, reason }) => Err(DaemonError::Killed { by, reason }),
            _ => result,
        }
    }

    fn serve(&mut self, stop: &dyn Fn() -> bool) -> Result<(), DaemonError> {
        // From the start, as corosync's stats map: the dataplane's counters follow within
        // its first report.
        self.service
            .publish_own_stat(DATAPLANE_RESTARTS_KEY, self.dataplane_restarts);
        self.supervisor.spawn(self.ring_seq.saved())?;
        let mut last_check = Instant::now();
        let mut fds = Vec::new();
        while !(stop() || self.service.shutdown_requested() || self.stop.is_some()) {
            self.supervise()?;
            fds.clear();
            fds.push(self.cpg_server.as_raw_fd());
            if let Some(fd) = self.supervisor.control_fd() {
                fds.push(fd);
            }
            if let Some(m) = &self.metrics {
                m.wait_fds(&mut fds);
            }
            let service_first = fds.len();
            self.service.wait_fds(&mut fds);
            let ready = poll_in(&fds, IDLE_WAIT);
            if ready[0] {
                self.broker_cpg();
            }
            if ready[service_first] {
                self.service.accept();
            }
            self.read_dataplane();
            self.service
                .set_dataplane_running(self.supervisor.control_fd().is_some());
            self.service.serve(&self.ring);
            for action in self.service.take_actions() {
                self.on_action(action);
            }
            self.serve_metrics();
            self.send_quorum_ops();
            if last_check.elapsed() > PEER_CHECK_INTERVAL {
                last_check = Instant::now();
                self.service.check_peers();
            }
        }
        Ok(())
    }

    fn supervise(&mut self) -> Result<(), DaemonError> {
        let Daemon {
            supervisor,
            ring,
            service,
            ring_seq,
            prepared,
            ..
        } = self;
        supervisor.supervise(ring_seq.saved(), || {
            // Its answers died with it: no decision comes for them, and the XDP programs
            // attached for links they added go.
            for (_, p) in std::mem::take(prepared) {
                p.xdp.detach();
            }
            *ring = RingReport {
                state: RingState::Down,
                ring_rep: 0,
                ring_seq: 0,
                members: Vec::new(),
                transport: ring.transport.clone(),
            };
            service.publish_ring(ring);
            service.dataplane_gone();
            let (quorum, cmap) = service.quorum_mut();
            quorum.dataplane_down(cmap);
        })?;
        let restarts = supervisor.starts().saturating_sub(1);
        if restarts != self.dataplane_restarts {
            self.dataplane_restarts = restarts;
            self.service
                .publish_own_stat(DATAPLANE_RESTARTS_KEY, restarts);
        }
        Ok(())
    }

    /// Answers scrapes that are ready.
    fn serve_metrics(&mut self) {
        let Some(server) = &mut self.metrics else {
            return;
        };
        let snapshot = metrics::Snapshot {
            node: &self.node,
            cluster_name: &self.cluster_name,
            ring: &self.ring,
            stats: self.service.stats(),
            quorum: self.service.quorum_status(),
            dataplane_restarts: self.dataplane_restarts,
        };
        server.serve(|| metrics::render(&snapshot));
    }

    /// Where the metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
            .as_ref()
            .map(metrics::MetricsServer::local_addr)
    }

    /// Forwards the quorum service's requests to the dataplane.
    fn send_quorum_ops(&mut self) {
        let (quorum, _) = self.service.quorum_mut();
        let ops = quorum.take_ops();
        let mut msg = Vec::new();
        for (request, op) in ops {
            ToDataplane::Quorum { request, op }.encode(&mut msg);
            match self.supervisor.send(&msg, &[]) {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    let (quorum, _) = self.service.quorum_mut();
                    quorum.on_reply(QuorumReply {
                        request,
                        status: rotor_proto::Status::TryAgain,
                        message: "the dataplane is restarting; try again".into(),
                    });
                }
            }
        }
        self.service.deliver_quorum();
    }

    /// Hands a CPG client over to the dataplane (rotord checked its credentials).
    fn broker_cpg(&mut self) {
        let detached = match self.cpg_server.accept_detached() {
            Ok(d) => d,
            Err(ipc_shm::AcceptError::Io(e)) => {
                log_at!(Warning, "CPG", "CPG attach: {e}");
                return;
            }
            // ipc-shm logged the refusal, with the peer's credentials.
            Err(_) => return,
        };
        let Some(fd) = self.supervisor.control_fd() else {
            log_at!(
                Warning,
                "CPG",
                "client pid {} refused: the dataplane is restarting",
                detached.peer.pid
            );
            refuse_cpg(detached);
            return;
        };
        let peer = detached.peer;
        let mut msg = Vec::new();
        ToDataplane::Session {
            pid: peer.pid,
            uid: peer.uid,
            gid: peer.gid,
        }
        .encode(&mut msg);
        match detached.send(fd, &msg) {
            Ok(()) => log_at!(
                Debug,
                "CPG",
                "client pid {} (uid {}, gid {}) handed to the dataplane",
                peer.pid,
                peer.uid,
                peer.gid
            ),
            Err(e) => log_at!(
                Warning,
                "CPG",
                "handing client pid {} to the dataplane failed: {e}",
                peer.pid
            ),
        }
    }

    fn read_dataplane(&mut self) {
        let mut reports = Vec::new();
        self.supervisor.read_reports(|r| reports.push(r));
        for report in reports {
            match report {
                FromDataplane::Ring(ring) => self.on_ring(ring),
                FromDataplane::Stats { counters } => self.service.publish_stats(counters),
                // The supervisor logged it and decides when the process exits.
                FromDataplane::Failed { .. } => {}
                // The supervisor wrote it into the log.
                FromDataplane::Log(_) => {}
                FromDataplane::Change(report) => self.on_change(report),
                FromDataplane::QuorumReply(reply) => self.service.quorum_mut().0.on_reply(reply),
                FromDataplane::QuorumUpdate(update) => {
                    let (quorum, _) = self.service.quorum_mut();
                    quorum.on_update(update);
                    if let Some(barrier) = quorum.take_barrier_change() {
                        self.supervisor.set_ev_tracking_barrier(barrier);
                    }
                }
                FromDataplane::QuorumState(state) => {
                    let (quorum, cmap) = self.service.quorum_mut();
                    quorum.on_state(&state, cmap);
                }
            }
        }
    }

    fn on_ring(&mut self, ring: RingReport) {
        let new_ring = (ring.ring_rep, ring.ring_seq) != (self.ring.ring_rep, self.ring.ring_seq);
        if ring.state == RingState::Operational && new_ring {
            // The membership line ("A new membership … was formed. Members joined: … left: …")
            // is the dataplane's: its core knows the configuration change exactly, and its log
            // lines come here through the supervisor.
            if !self.ready_sent {
                self.ready_sent = true;
                notify::sd_notify_ready();
            }
        }
        self.ring_seq.record(ring.ring_seq);
        self.ring = ring;
        self.service.publish_ring(&self.ring);
    }

    /// Tells every member this node shuts down as asked (each logs it), and waits a moment
    /// for the announcement to be delivered.
    fn announce_shutdown(&mut self) {
        if let Some(why) = self.service.shutdown_reason() {
            log_at!(
                Notice,
                "CFG",
                "{why}: announcing the shutdown to the cluster"
            );
        }
        if !self.send_change(ChangeRequest::AnnounceShutdown) {
            return;
        }
        let deadline = Instant::now() + SHUTDOWN_ANNOUNCE_WAIT;
        while !self.shutdown_announced && Instant::now() < deadline {
            let fd = self.supervisor.control_fd();
            match fd {
                Some(fd) => {
                    poll_in(&[fd], Duration::from_millis(20));
                }
                None => return,
            }
            self.read_dataplane();
        }
    }

    fn shutdown(&mut self) {
        if self.supervisor.control_fd().is_some() {
            log_at!(Notice, "MAIN", "shutting down: leaving the ring");
        } else {
            log_at!(Notice, "MAIN", "shutting down");
        }
        self.supervisor.shutdown();
        // After the dataplane: its sockets are closed, nothing is left to steer to.
        std::mem::take(&mut self.xdp).detach();
        log_at!(Notice, "MAIN", "rotord stopped");
    }

    /// Sends a change request to the running dataplane; false (logged) when none runs.
    fn send_change(&mut self, change: ChangeRequest) -> bool {
        self.send_change_with(change, &[])
    }

    /// Sends a change request with `fds` beside it (SCM_RIGHTS).
    fn send_change_with(&mut self, change: ChangeRequest, fds: &[RawFd]) -> bool {
        let mut msg = Vec::new();
        ToDataplane::Change(change).encode(&mut msg);
        let sent = self.supervisor.send(&msg, fds);
        // The message may hold a key.
        zeroize::Zeroize::zeroize(&mut msg);
        match sent {
            Ok(true) => true,
            Ok(false) => false,
            Err(e) => {
                log_at!(Warning, "CFG", "sending a change to the dataplane: {e}");
                false
            }
        }
    }

    /// A cfg request the service handed over.
    fn on_action(&mut self, action: CfgAction) {
        match action {
            CfgAction::Reload { client, req_id } => {
                self.ask(client, req_id, ChangeKindRecord::Reload)
            }
            CfgAction::RotateKey {
                client,
                req_id,
                path,
            } => self.ask(client, req_id, ChangeKindRecord::RotateKey { path }),
            CfgAction::Kill {
                client,
                req_id,
                node,
                reason,
            } => {
                log_at!(
                    Notice,
                    "CFG",
                    "asking node {node} to leave and stop: {reason}"
                );
                let status = if self.send_change(ChangeRequest::Kill { node, reason }) {
                    (Status::Ok, String::new())
                } else {
                    (
                        Status::TryAgain,
                        "the dataplane is not running (it is restarting); try again".into(),
                    )
                };
                self.service.reply_cfg(
                    client,
                    pcfg::Event::Reply {
                        req_id,
                        status: status.0,
                        message: status.1,
                    },
                );
            }
            CfgAction::CmapWrite {
                client,
                req_id,
                key,
                value,
            } => {
                let result = self.cmap_write(&key, value);
                self.service.reply_cmap(client, req_id, result);
            }
        }
    }

    /// Asks every member for a change round; the client hears the outcome.
    fn ask(&mut self, client: ClientId, req_id: u32, kind: ChangeKindRecord) {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        if self.send_change(ChangeRequest::Ask { request, kind }) {
            self.asked.insert(request, (client, req_id));
        } else {
            self.service.reply_cfg(
                client,
                pcfg::Event::Reply {
                    req_id,
                    status: Status::TryAgain,
                    message: "the dataplane is not running (it is restarting); try again".into(),
                },
            );
        }
    }

    /// What the dataplane's change service reported, in order.
    fn on_change(&mut self, report: ChangeReport) {
        match report {
            ChangeReport::Asked {
                request,
                round,
                error,
            } => {
                let Some((client, req_id)) = self.asked.remove(&request) else {
                    return;
                };
                match round {
                    Some(r) => {
                        self.rounds.insert((r.node, r.seq), (client, req_id));
                    }
                    None => self.service.reply_cfg(
                        client,
                        pcfg::Event::Reply {
                            req_id,
                            status: Status::TryAgain,
                            message: error,
                        },
                    ),
                }
            }
            ChangeReport::Requested { round, kind } => self.on_requested(round, kind),
            ChangeReport::Decided {
                round,
                kind,
                applied,
                reasons,
                listed,
            } => self.on_decided(round, kind, applied, reasons, listed),
            ChangeReport::KeyRetired { key_id, sealing } => log_at!(
                Notice,
                "TOTEM",
                "key {key_id:08x} retired and wiped: every member seals under key {sealing:08x}"
            ),
            ChangeReport::Killed { by, reason } => {
                log_at!(Notice, "CFG", "Killed by node {by} : {reason}");
                self.stop = Some(Stop::Killed { by, reason });
            }
            ChangeReport::ShuttingDown { node } => {
                log_at!(Notice, "CFG", "Node {node} was shut down by sysadmin");
                if node == self.node.node_id {
                    self.shutdown_announced = true;
                }
            }
            ChangeReport::Keys {
                sealing,
                held,
                unknown,
            } => {
                for (node, key) in &unknown {
                    if !self.service.keys().unknown.contains(&(*node, *key)) {
                        log_at!(
                            Warning,
                            "TOTEM",
                            "node {node} seals under key {key:08x}, which this node does not \
                             hold (it seals under {sealing:08x}): one of the two missed a key \
                             rotation; give it the cluster's key file and restart it"
                        );
                    }
                }
                self.service.set_keys(KeyState {
                    sealing,
                    held,
                    unknown,
                });
            }
        }
    }

    /// A member asked for a change round: this node reads what it would run with and answers.
    fn on_requested(&mut self, round: RoundRecord, kind: ChangeKindRecord) {
        match &kind {
            ChangeKindRecord::Reload => log_at!(
                Notice,
                "CFG",
                "Config reload requested by node {} (round {round})",
                round.node
            ),
            ChangeKindRecord::RotateKey { path } => log_at!(
                Notice,
                "CFG",
                "Key rotation to {path} requested by node {} (round {round})",
                round.node
            ),
        }
        let _ =
            self.service
                .cmap_mut()
                .set("config.reload_in_progress", Value::U8(1), Access::Daemon);
        let prepared = reload::prepare(&self.running, &kind).and_then(|mut p| {
            p.xdp = self.choose_added_links(&mut p.links, &p.config)?;
            Ok(p)
        });
        let (answer, xdp_links, fds) = match prepared {
            Ok(prepared) => {
                let barrier = self
                    .supervisor
                    .start_mut()
                    .quorum
                    .as_ref()
                    .map_or(0, |q| q.ev_tracking_barrier);
                let quorum = prepared.quorum.as_ref().map(|q| quorum_start(q, barrier));
                let answer = prepared.answer(quorum);
                let (xdp_links, fds) = (prepared.xdp.links(), prepared.xdp.map_fds());
                self.prepared.insert((round.node, round.seq), prepared);
                (answer, xdp_links, fds)
            }
            Err(reason) => {
                log_at!(
                    Error,
                    "CFG",
                    "this node refuses change round {round}: {reason}"
                );
                let answer = rotor_proto::change::Answer::Refused { reason };
                (answer, Vec::new(), Vec::new())
            }
        };
        let propose = ChangeRequest::Propose {
            round,
            answer,
            xdp_links,
        };
        if !self.send_change_with(propose, &fds) {
            if let Some(p) = self.prepared.remove(&(round.node, round.seq)) {
                p.xdp.detach();
            }
        }
    }

    /// The transport of each link `links` (what a round's answer would run) adds to those
    /// this node runs, chosen as at start (`xdp::Programs::choose_added`, with `config`'s
    /// source filter): on XDP, its program is attached now, so the dataplane opens the
    /// link's AF_XDP socket as it answers. Kept links are marked with the transport they run
    /// on. An added link that cannot have the XDP it needs refuses the round, with nothing
    /// attached.
    fn choose_added_links(
        &self,
        links: &mut [LinkStart],
        config: &Config,
    ) -> Result<crate::xdp::Programs, String> {
        let running: Vec<u8> = self.node.links.iter().map(|l| l.settings.number).collect();
        let filter = crate::xdp::Filter::of(config)?;
        self.xdp
            .choose_added(&config.totem, links, &running, &filter)
    }

    /// The round is decided, the same on every member.
    fn on_decided(
        &mut self,
        round: RoundRecord,
        kind: ChangeKindRecord,
        applied: bool,
        reasons: Vec<String>,
        listed: bool,
    ) {
        let key = (round.node, round.seq);
        let prepared = self.prepared.remove(&key);
        let what = match &kind {
            ChangeKindRecord::Reload => "Config reload".to_owned(),
            ChangeKindRecord::RotateKey { path } => format!("Key rotation to {path}"),
        };
        let cmap = self.service.cmap_mut();
        let _ = cmap.set("config.reload_in_progress", Value::U8(0), Access::Daemon);
        let outcome = if applied {
            let _ = cmap.delete("config.reload_error_message", Access::Daemon);
            let _ = cmap.set(
                "config.reload_status",
                Value::I32(Status::Ok.code() as i32),
                Access::Daemon,
            );
            self.service.set_reload_error(String::new());
            match prepared {
                Some(p) => {
                    let changes = if p.changes.is_empty() {
                        "nothing changed".to_owned()
                    } else {
                        p.changes.join("; ")
                    };
                    log_at!(
                        Notice,
                        "CFG",
                        "{what} (round {round}) applied on every member: {changes}"
                    );
                    self.commit(p);
                }
                None => log_at!(
                    Error,
                    "CFG",
                    "{what} (round {round}) was applied, but this node has no record of its \
                     answer (the dataplane restarted meanwhile?); restart this node to be sure \
                     it runs the cluster's configuration"
                ),
            }
            if !listed {
                log_at!(
                    Notice,
                    "CFG",
                    "the nodelist in effect no longer lists this node (nodeid {}): leaving the \
                     cluster and stopping",
                    self.node.node_id
                );
                self.stop = Some(Stop::Removed);
            }
            (Status::Ok, String::new())
        } else {
            if let Some(p) = prepared {
                p.xdp.detach();
            }
            let message = reasons.join("; ");
            log_at!(
                Error,
                "CFG",
                "{what} (round {round}) refused, nothing changed: {message}"
            );
            let _ = cmap.set(
                "config.reload_error_message",
                Value::String(message.clone()),
                Access::Daemon,
            );
            let _ = cmap.set(
                "config.reload_status",
                Value::I32(Status::InvalidParam.code() as i32),
                Access::Daemon,
            );
            self.service.set_reload_error(message.clone());
            (Status::InvalidParam, message)
        };
        if let Some((client, req_id)) = self.rounds.remove(&key) {
            self.service.reply_cfg(
                client,
                pcfg::Event::Reply {
                    req_id,
                    status: outcome.0,
                    message: outcome.1,
                },
            );
        }
    }

    /// Takes on what an applied round changed: cmap, logging, the allow-lists, the node's
    /// peers, the next dataplane's start, the key file of a rotation.
    fn commit(&mut self, mut p: Prepared) {
        let old_entries = std::mem::take(&mut self.running.config.entries);
        let cmap = self.service.cmap_mut();
        // Keys under the reloaded prefixes that the new file does not have go.
        let gone: Vec<String> = RELOADED_PREFIXES
            .iter()
            .flat_map(|prefix| cmap.iter_prefix(prefix).map(|(k, _)| k.to_owned()))
            .filter(|k| !p.config.entries.contains_key(k))
            .collect();
        for k in gone {
            let _ = cmap.delete(&k, Access::Daemon);
        }
        for (k, v) in &p.config.entries {
            if let Err(CmapError::TypeMismatch { .. }) = cmap.set(k, v.clone(), Access::Daemon) {
                // An unknown key that changed type: it is the file's now.
                let _ = cmap.delete(k, Access::Daemon);
                let _ = cmap.set(k, v.clone(), Access::Daemon);
            }
        }
        let runtime = p.config.runtime_entries();
        // A removed link's values in effect go with it.
        let gone: Vec<String> = cmap
            .iter_prefix(RUNTIME_INTERFACE_PREFIX)
            .map(|(k, _)| k.to_owned())
            .filter(|k| !runtime.iter().any(|(r, _)| r == k))
            .collect();
        for k in gone {
            let _ = cmap.delete(&k, Access::Daemon);
        }
        for (k, v) in runtime {
            let _ = cmap.set(&k, v, Access::Daemon);
        }
        drop(old_entries);
        // A removed link's counters (`stats.knet.node<N>.link<L>.*`) go too: status, cmap
        // and the metrics show the links in effect.
        let removed: Vec<u8> = self
            .node
            .links
            .iter()
            .map(|l| l.settings.number)
            .filter(|n| !p.links.iter().any(|l| l.settings.number == *n))
            .collect();
        if !removed.is_empty() {
            self.service.forget_link_stats(&removed);
        }
        // The XDP programs: a removed link's detached (its AF_XDP socket closed where the
        // round applied), an added link's kept; every later dataplane gets the maps in effect.
        self.xdp.remove(&removed, self.service.cmap_mut());
        self.xdp.take(std::mem::take(&mut p.xdp));
        self.xdp.publish(self.service.cmap_mut());
        self.supervisor.set_maps(self.xdp.map_fds());
        self.overrides.clear();
        // Logging, here and in the dataplane.
        let logging = crate::log::config(self.service.cmap(), self.foreground);
        for e in rotor_log::reconfigure(&logging) {
            log_at!(Error, "MAIN", "{e}; logging goes on without that file");
        }
        let mut msg = Vec::new();
        ToDataplane::Logging(logging).encode(&mut msg);
        let _ = self.supervisor.send(&msg, &[]);
        // Who may attach.
        let allow = service::allow_list(self.service.cmap());
        self.cpg_server.set_allow_list(allow.clone());
        self.service.set_allow_list(allow);
        // The nodelist in effect.
        self.node.peers = p
            .nodelist
            .iter()
            .copied()
            .filter(|(id, _)| *id != self.node.node_id)
            .collect();
        match crate::discovery::link_starts(&p.config, self.node.node_id) {
            Ok(links) => self.node.links = links,
            // This node is gone from the nodelist: it leaves, and no dataplane starts again.
            Err(_) => self.node.links[0].peers = self.node.peers.clone(),
        }
        self.service.set_node(self.node.clone());
        // What the next dataplane starts with.
        let start = self.supervisor.start_mut();
        start.links = self.node.links.clone();
        self.xdp.mark(&mut start.links);
        start.totem = p.config.totem.settings.named();
        if let (Some(q), Some(old)) = (&p.quorum, start.quorum.as_ref()) {
            start.quorum = Some(quorum_start(q, old.ev_tracking_barrier));
        }
        if let Some(key) = &p.authkey {
            zeroize::Zeroize::zeroize(&mut start.authkey);
            start.authkey = key.to_vec();
        }
        if let (Some(key), Some(from)) = (&p.authkey, &p.rotated_from) {
            match reload::write_key(&p.keyfile, key) {
                Ok(()) => log_at!(
                    Notice,
                    "CFG",
                    "{} now holds the key rotated in from {} (this node restarts with it)",
                    p.keyfile.display(),
                    from.display()
                ),
                Err(e) => log_at!(
                    Error,
                    "CFG",
                    "the cluster seals under the key from {}, but {} could not be replaced: \
                     {e}; copy the key there before this node restarts",
                    from.display(),
                    p.keyfile.display()
                ),
            }
        }
        if let Some(key) = p.authkey {
            self.running.authkey = key;
        }
        self.running.keyfile = p.keyfile;
        self.service
            .set_netmtu(p.config.totem.settings.netmtu_bytes);
        // Frames of nodes the reload added reach the dataplane from here on; those of nodes
        // it removed go to the kernel (or are dropped), as any other stranger's.
        if !self.xdp.is_empty() {
            let xdp = &mut self.xdp;
            let updated = crate::xdp::nodelist_sources(&p.config)
                .and_then(|sources| xdp.set_sources(&sources));
            match updated {
                Ok(()) => xdp.publish(self.service.cmap_mut()),
                Err(e) => log_at!(
                    Error,
                    "MAIN",
                    "the XDP source filter keeps the previous nodelist's addresses: {e}; frames \
                     of nodes the reload added do not reach this node until it restarts"
                ),
            }
        }
        self.running.config = p.config;
    }

    /// A client's write of a key the config file stands for: a totem setting that may change
    /// takes effect on this node (as corosync's cmap write does), uidgid and logging entries
    /// take effect at once, the rest is refused naming the key and what to do.
    fn cmap_write(&mut self, key: &str, value: Option<Value>) -> Result<(), CmapError> {
        let file = self.running.config.file.clone();
        if let Some(name) = key.strip_prefix("totem.") {
            if let Some(setting) = totem_core::config::setting_named(name) {
                if setting.volatile {
                    return self.set_totem(key, name, value);
                }
            }
            return Err(CmapError::Fixed {
                key: key.to_owned(),
                file,
            });
        }
        // `uidgid.uid.<uid>`/`uidgid.gid.<gid>` = 1 are what applications write to admit
        // their users (pacemakerd admits its haclient group so): corosync checks both forms.
        let live = key.starts_with("uidgid.config.uid.")
            || key.starts_with("uidgid.config.gid.")
            || key.starts_with("uidgid.uid.")
            || key.starts_with("uidgid.gid.")
            || key.starts_with("logging.");
        if !live {
            return Err(CmapError::ConfigBacked {
                key: key.to_owned(),
                file,
            });
        }
        let cmap = self.service.cmap_mut();
        match value {
            Some(v) => cmap.set(key, v, Access::Daemon)?,
            None => {
                cmap.delete(key, Access::Daemon)?;
            }
        }
        if key.starts_with("uidgid.") {
            let allow = service::allow_list(self.service.cmap());
            self.cpg_server.set_allow_list(allow.clone());
            self.service.set_allow_list(allow);
            log_at!(
                Notice,
                "CFG",
                "{key} changed through cmap: the clients allowed follow"
            );
        } else {
            let logging = crate::log::config(self.service.cmap(), self.foreground);
            for e in rotor_log::reconfigure(&logging) {
                log_at!(Error, "MAIN", "{e}; logging goes on without that file");
            }
            let mut msg = Vec::new();
            ToDataplane::Logging(logging).encode(&mut msg);
            let _ = self.supervisor.send(&msg, &[]);
        }
        Ok(())
    }

    /// A cmap write of the totem setting `name`: the settings resolved again with it (and the
    /// earlier writes) over the file's, checked, and sent to the dataplane.
    fn set_totem(&mut self, key: &str, name: &str, value: Option<Value>) -> Result<(), CmapError> {
        let mut overrides = self.overrides.clone();
        match value {
            Some(Value::U32(v)) => {
                overrides.insert(name.to_owned(), v);
            }
            Some(other) => {
                return Err(CmapError::TypeMismatch {
                    key: key.to_owned(),
                    expected: crate::cmap::ValueType::U32,
                    got: other.value_type(),
                })
            }
            None => {
                overrides.remove(name);
            }
        }
        let config = &self.running.config;
        let shape = totem_core::ClusterShape {
            nodelist_count: u32::try_from(config.nodes.len()).unwrap_or(u32::MAX),
            frame_overhead_bytes: totem_core::config::frame_overhead_bytes(
                self.node.bind.is_ipv6(),
                self.running.crypto_mode.overhead(),
            ),
        };
        let explicit = |n: &str| {
            overrides
                .get(n)
                .copied()
                .or_else(|| match config.entries.get(&format!("totem.{n}")) {
                    Some(Value::U32(v)) => Some(*v),
                    _ => None,
                })
        };
        let settings = totem_core::TotemSettings::resolve(explicit, &shape).map_err(|e| {
            CmapError::Invalid {
                key: key.to_owned(),
                reason: e.to_string(),
            }
        })?;
        if !self.send_change(ChangeRequest::Settings {
            totem: settings.named(),
        }) {
            return Err(CmapError::Invalid {
                key: key.to_owned(),
                reason: "the dataplane is not running (it is restarting); try again".into(),
            });
        }
        self.overrides = overrides;
        let cmap = self.service.cmap_mut();
        match self.overrides.get(name) {
            Some(v) => cmap.set(key, Value::U32(*v), Access::Daemon)?,
            None => match self.running.config.entries.get(key) {
                Some(v) => cmap.set(key, v.clone(), Access::Daemon)?,
                None => {
                    let _ = cmap.delete(key, Access::Daemon);
                }
            },
        }
        for s in totem_core::config::SETTINGS
            .iter()
            .filter(|s| s.runtime_config)
        {
            let k = format!("runtime.config.{}", s.key());
            let _ = cmap.set(&k, Value::U32((s.get)(&settings)), Access::Daemon);
        }
        self.supervisor.start_mut().totem = settings.named();
        log_at!(
            Notice,
            "TOTEM",
            "{key} changed through cmap on this node: the token timeout in effect is {} ms",
            settings.token_ms
        );
        Ok(())
    }

    pub fn cmap(&self) -> &CmapStore {
        self.service.cmap()
    }

    /// This node.
    pub fn node(&self) -> &LocalNode {
        &self.node
    }
}

/// poll(2) for readability; one bool per descriptor.
fn poll_in(fds: &[RawFd], timeout: Duration) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: a valid array of p.len() pollfds.
    let r = unsafe {
        libc::poll(
            p.as_mut_ptr(),
            p.len() as libc::nfds_t,
            timeout.as_millis() as i32,
        )
    };
    if r <= 0 {
        return vec![false; fds.len()];
    }
    p.iter().map(|x| x.revents != 0).collect()
}

/// Tells a CPG client rotord cannot hand over now that it should try again (a `Reply` to
/// `REFUSED_REQ_ID` in place of the dataplane's `Welcome`; libcpg's `cpg_initialize` returns
/// `CS_ERR_TRY_AGAIN`, which corosync's callers retry), then closes its session.
fn refuse_cpg(detached: ipc_shm::DetachedSession) {
    let pid = detached.peer.pid;
    let mut session = match detached.into_session() {
        Ok(s) => s,
        Err(e) => {
            log_at!(
                Debug,
                "CPG",
                "client pid {pid}: its session is unusable: {e}"
            );
            return;
        }
    };
    let mut record = Vec::new();
    rotor_proto::cpg::Event::Reply {
        req_id: rotor_proto::cpg::REFUSED_REQ_ID,
        status: rotor_proto::Status::TryAgain,
        members: Vec::new(),
        groups: Vec::new(),
    }
    .encode(&mut record);
    if let Err(e) = session.try_send(&record) {
        log_at!(
            Debug,
            "CPG",
            "client pid {pid}: the refusal was not sent: {e}"
        );
    }
}
