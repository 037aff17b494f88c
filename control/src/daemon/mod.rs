//! rotord's event loop and the parts that own their state: the dataplane's supervision
//! (`supervisor`), the cmap/cfg service (`service`) with the quorum and votequorum services
//! (`quorum`), the numbers kept across restarts (`kept`) and the expected_votes_tracking
//! barrier (`evtracking`), the counters combined across dataplane restarts (`stats`), the
//! metrics endpoint (`metrics`) and systemd's readiness notification (`notify`). [`Plan`] is
//! everything decided at start-up from the config, checked before anything runs (so `rotord
//! -t` checks exactly what a start would). One thread, one poll(2) loop; nothing here is on
//! the per-message path.

pub mod evtracking;
pub mod kept;
pub mod metrics;
pub mod notify;
pub mod quorum;
pub mod service;
pub mod stats;
pub mod supervisor;

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipc_shm::Server;
use rotor_crypto::CryptoMode;
use rotor_proto::control::{
    DataplaneStart, DataplaneTransport, FromDataplane, MulticastSettings, RingReport, ToDataplane,
};
use rotor_proto::RingState;

use rotor_proto::dataplane_quorum::{QdeviceStart, QuorumReply, QuorumStart, TieBreakerSetting};
use totem_core::votequorum::{QuorumSettings, TieBreaker};

use crate::cmap::{CmapStore, Value};
use crate::config::Config;
use crate::discovery::LocalNode;
use crate::error::DaemonError;
use crate::log_at;

use evtracking::EvTrackingFile;
use kept::KeptNumber;
use quorum::QuorumService;
use service::CmapService;
use supervisor::Supervisor;

/// `system.state_dir` when the config does not set it (corosync's is /var/lib/corosync).
pub const STATE_DIR_DEFAULT: &str = "/var/lib/rotor";
/// The cmap key (under `stats.`) of the dataplane's restarts, which rotord counts itself.
pub const DATAPLANE_RESTARTS_KEY: &str = "dataplane.restarts";
/// How long the loop sleeps at most with nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How often clients are checked for a peer that died without closing its session.
const PEER_CHECK_INTERVAL: Duration = Duration::from_millis(500);

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
            quorum,
        })
    }

    /// The start message every dataplane of this node gets (epoch, ring sequence and seed are
    /// the supervisor's, per start).
    fn dataplane_start(
        &self,
        transport: DataplaneTransport,
        interface: Option<String>,
        ev_tracking_barrier: u32,
    ) -> DataplaneStart {
        let t = &self.config.totem;
        // Every setting of the table with the value in effect (derived ones included).
        let totem = totem_core::config::SETTINGS
            .iter()
            .map(|s| (s.name.to_owned(), (s.get)(&t.settings)))
            .collect();
        let rotor = &self.config.rotor;
        DataplaneStart {
            node_id: self.node.node_id,
            bind: self.node.bind,
            peers: self.node.peers.clone(),
            cluster_name: self.cluster_name.clone(),
            crypto_mode: self.crypto_mode.wire_byte(),
            authkey: self.authkey.to_vec(),
            epoch: 0,
            ring_seq_start: 0,
            totem,
            transport,
            interface,
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
    /// The XDP program rotord attached (XDP transport), kept across dataplane restarts and
    /// detached on a clean shutdown; `None` on kernel UDP.
    xdp: Option<crate::xdp::OwnedProgram>,
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
        let xdp = match crate::xdp::choose(plan.config.totem.transport, plan.node.bind)
            .map_err(DaemonError::Transport)?
        {
            crate::xdp::Choice::Xdp(program) => Some(program),
            crate::xdp::Choice::Udp(_) => None,
        };
        let (transport, interface, maps) = match &xdp {
            Some(x) => (
                x.dataplane_transport(),
                Some(x.interface().to_owned()),
                Some(x.map_fds()),
            ),
            None => (DataplaneTransport::Udp, None, None),
        };
        let start = plan.dataplane_start(transport, interface, barrier);
        let metrics = plan
            .config
            .rotor
            .metrics_listen
            .map(metrics::MetricsServer::bind)
            .transpose()?;
        Ok(Daemon {
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
        let (bounding, kept) = crate::privs::after_setup(self.xdp.is_some());
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
        self.shutdown();
        result
    }

    fn serve(&mut self, stop: &dyn Fn() -> bool) -> Result<(), DaemonError> {
        // From the start, as corosync's stats map: the dataplane's counters follow within
        // its first report.
        self.service
            .publish_own_stat(DATAPLANE_RESTARTS_KEY, self.dataplane_restarts);
        self.supervisor.spawn(self.ring_seq.saved())?;
        let mut last_check = Instant::now();
        let mut fds = Vec::new();
        while !(stop() || self.service.shutdown_requested()) {
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
            ..
        } = self;
        supervisor.supervise(ring_seq.saved(), || {
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

    fn shutdown(&mut self) {
        if self.supervisor.control_fd().is_some() {
            log_at!(Notice, "MAIN", "shutting down: leaving the ring");
        } else {
            log_at!(Notice, "MAIN", "shutting down");
        }
        self.supervisor.shutdown();
        // After the dataplane: its sockets are closed, nothing is left to steer to.
        if let Some(program) = self.xdp.take() {
            program.detach();
        }
        log_at!(Notice, "MAIN", "rotord stopped");
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
