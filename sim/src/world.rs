//! One simulated run: nodes, their application processes, the network and the fault
//! schedule, with a log of everything each node delivered for the checkers.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use totem_core::config::explicit;
use totem_core::{
    ClusterShape, ConfigKind, Event, Guarantee, Instant, NodeId, Notice, RingId, State,
    SubmitError, TotemSettings,
};

use rotor_crypto::{CryptoMode, Keys};
use rotor_endpoint::{Diagnostic, Endpoint, EndpointConfig, Received};

use crate::apps::{Apps, SessionLog, GROUPS, RANDOM_GROUPS};
use crate::check::{self, Entry, Life, MsgId, Submitted};
use crate::check_apps::check_apps;

mod changes;
mod timed;
use crate::net::Network;
use crate::quorum::{QuorumPlan, QuorumReport, QuorumWatch};
use crate::rng::Rng;
use timed::TimedEndpoint;

const MS: u64 = 1_000_000;
/// Datagrams queued for a paused node before its "socket buffer" overflows.
const PAUSED_BACKLOG_MAX: usize = 4096;

/// A node's address on the simulated network: its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimAddr(pub usize);

impl std::fmt::Display for SimAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sim-host-{}", self.0 + 1)
    }
}

/// Which faults a run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faults {
    None,
    /// Loss, duplication and jitter that reorders.
    Loss,
    /// Partitions and heals, and pairs of nodes that lose one direction or both (connectivity
    /// that is not transitive or not symmetric), also cleared at random.
    Partition,
    /// Crashes and restarts, pauses.
    Crash,
    All,
}

impl Faults {
    pub fn parse(s: &str) -> Option<Faults> {
        Some(match s {
            "none" => Faults::None,
            "loss" => Faults::Loss,
            "partition" => Faults::Partition,
            "crash" => Faults::Crash,
            "all" => Faults::All,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Faults::None => "none",
            Faults::Loss => "loss",
            Faults::Partition => "partition",
            Faults::Crash => "crash",
            Faults::All => "all",
        }
    }
}

/// When a scripted action happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// At this simulated time, in milliseconds.
    At(u64),
    /// The first time node `index` (0-based) is seen in this protocol state after `after_ms`.
    State {
        index: usize,
        state: State,
        after_ms: u64,
    },
}

/// A scripted fault, for the named scenarios.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Crash(usize),
    Restart(usize),
    /// A partition label per node: only nodes with the same label hear each other.
    Partition(Vec<u32>),
    /// Directed pairs (from, to), 0-based: every datagram from `from` to `to` is lost from now
    /// on (in addition to any blocked before), until a heal.
    Block(Vec<(usize, usize)>),
    /// Clears partitions and blocked pairs.
    Heal,
    Pause {
        index: usize,
        ms: u64,
    },
    /// Node `index` says its local receivers are behind for `ms` (`Node::set_receivers_behind`):
    /// the others send nothing new meanwhile.
    Behind {
        index: usize,
        ms: u64,
    },
    /// Process `proc_index` (of `PROCS_PER_NODE`) of node `index` joins group `group` (an index
    /// into `GROUPS`).
    Join {
        index: usize,
        proc_index: usize,
        group: usize,
    },
    Leave {
        index: usize,
        proc_index: usize,
        group: usize,
    },
    /// The process dies: every session of it closes; a process with the same pid takes its
    /// place when `same_pid`.
    Kill {
        index: usize,
        proc_index: usize,
        same_pid: bool,
    },
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub faults: Faults,
    /// Simulated time with faults and traffic, before the heal.
    pub fault_ms: u64,
    /// Print a line per ring change.
    pub verbose: bool,
    /// Scripted faults (in addition to the random mix chosen by `faults`).
    pub script: Vec<(When, Action)>,
    /// Gap between application actions, microseconds (uniform in `[min, max)`). The default
    /// keeps the ring busy; gaps longer than the idle rotations before a token hold let nodes
    /// hold the token, which the latency checks need.
    pub app_gap_us: (u64, u64),
    /// Runtime changes in the middle of the faults: reloads of the token timeout and key
    /// rotations, asked for by a simulated operator (see `world::changes`).
    pub changes: bool,
    /// totem.token in ms (`None`: the simulator's 300 ms).
    pub token_ms: Option<u32>,
    /// A constant frame loss rate, percent, from `LOSS_START_MS` to the heal (the fault mix's
    /// loss settings do not change it); the report then has the longest delivery gap under it
    /// (`RunReport::stall`).
    pub loss_percent: Option<u32>,
    /// totem.accelerated_window (`None`: the settings table's default).
    pub accelerated_window: Option<u32>,
    /// Set totem.max_messages_adaptive to 1: the per-visit allowance adapts (the simulator
    /// sets window_size and max_messages, which otherwise turns it off).
    pub adaptive: bool,
    /// `net::Conditions::send_gap_ns`: each node's datagrams leave one after another, this far
    /// apart (0: all at once).
    pub send_gap_ns: u64,
}

/// The default `app_gap_us`: a busy ring.
pub const APP_GAP_US_BUSY: (u64, u64) = (250, 4_000);

/// When `SimConfig::loss_percent` starts at the earliest: then, or later once every node is in
/// one ring (formed without loss), so the figure is about loss, not about the first ring.
pub const LOSS_START_MS: u64 = 1_000;

/// The longest time a node delivered nothing while `SimConfig::loss_percent` was on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stall {
    /// The longest gap, microseconds, between consecutive SRP deliveries on one node (the
    /// window's start and end count as deliveries), and that node.
    pub longest_us: u64,
    pub node: u32,
    /// Regular configurations installed (summed over nodes) in the window: a stall with none
    /// is the protocol's own recovery (a lost token or frame waiting to be sent again).
    pub configs: u64,
    /// Token retransmissions and frame retransmissions (summed over nodes) in the window.
    pub token_retransmits: u64,
    pub retransmitted: u64,
}

impl SimConfig {
    pub fn new(seed: u64, nodes: usize, faults: Faults) -> Self {
        SimConfig {
            seed,
            nodes,
            faults,
            fault_ms: 6_000,
            verbose: false,
            script: Vec::new(),
            app_gap_us: APP_GAP_US_BUSY,
            changes: false,
            token_ms: None,
            loss_percent: None,
            accelerated_window: None,
            adaptive: false,
            send_gap_ns: 0,
        }
    }

    /// The command that replays this run exactly.
    pub fn replay_command(&self) -> String {
        let mut cmd = format!(
            "cargo xtask sim --seed {} --nodes {} --faults {} --fault-ms {}",
            self.seed,
            self.nodes,
            self.faults.name(),
            self.fault_ms
        );
        if self.app_gap_us != APP_GAP_US_BUSY {
            let (lo, hi) = self.app_gap_us;
            cmd.push_str(&format!(" --app-gap-us {lo},{hi}"));
        }
        if self.changes {
            cmd.push_str(" --changes");
        }
        if let Some(token) = self.token_ms {
            cmd.push_str(&format!(" --token {token}"));
        }
        if let Some(loss) = self.loss_percent {
            cmd.push_str(&format!(" --loss {loss}"));
        }
        if let Some(window) = self.accelerated_window {
            cmd.push_str(&format!(" --accelerated-window {window}"));
        }
        if self.adaptive {
            cmd.push_str(" --adaptive");
        }
        if self.send_gap_ns != 0 {
            cmd.push_str(&format!(" --send-gap-ns {}", self.send_gap_ns));
        }
        if !self.script.is_empty() {
            cmd.push_str(" (plus the test's script)");
        }
        cmd
    }
}

/// What a run did and what the checkers found.
#[derive(Debug, Default)]
pub struct RunReport {
    pub messages_submitted: u64,
    pub deliveries: u64,
    pub configs: u64,
    pub violations: Vec<String>,
    pub converged_after_heal_ms: Option<u64>,
    pub sim_ms: u64,
    pub datagrams: u64,
    /// Datagrams the crypto layer rejected (duplicated datagrams are replays), by reason.
    pub crypto_rejected: BTreeMap<&'static str, u64>,
    /// Scripted actions that fired (a scenario checks all of its steps did).
    pub script_fired: usize,
    /// Every regular configuration installed: (ms, node, members), in simulated time order.
    /// Recorded when the node's events are read (in a lazy run, up to `LAZY_DRAIN_MS` late).
    pub installs: Vec<(u64, u32, Vec<u32>)>,
    /// Every new membership a node announced (`Notice::Formed`): (ms, node, members), at the
    /// time it was formed.
    pub formed: Vec<(u64, u32, Vec<u32>)>,
    /// Every broken-pair report (`Notice::PartialConnectivity`): (ms, node, the line as logged).
    pub connectivity: Vec<(u64, u32, String)>,
    /// Change rounds asked for, applied (counted per member), refused or called off (per
    /// member), and keys retired (per member); with `SimConfig::changes`.
    pub changes_requested: u64,
    pub changes_applied: u64,
    pub changes_refused: u64,
    pub keys_retired: u64,
    /// Every self-delivery: (submitted at, ms; submit to delivery at the sender, µs). Measured
    /// when the event is read, so in a lazy run (odd seeds, before the heal) it includes the
    /// time the event waited to be read.
    pub self_delivery: Vec<(u64, u64)>,
    /// What votequorum reported on every node (its violations are in `violations` too).
    pub quorum: QuorumReport,
    /// What every process session received (`check_apps` reads them).
    pub sessions: Vec<SessionLog>,
    /// With `SimConfig::loss_percent`: the longest delivery gap under the loss.
    pub stall: Option<Stall>,
    /// Mean time between two token visits of node 1 (a rotation), µs, from `LOSS_START_MS` to
    /// the heal; `None` if node 1 was down at either end.
    pub rotation_us_mean: Option<f64>,
}

struct SimNode {
    id: NodeId,
    /// The production endpoint (core, crypto, peer table, counters) while the node runs.
    endpoint: Option<TimedEndpoint>,
    incarnation: u32,
    persisted_ring_seq: u64,
    paused_until: Option<u64>,
    /// Until when its receivers are behind (`Action::Behind`).
    behind_until: Option<u64>,
    backlog: VecDeque<(usize, Vec<u8>)>,
    /// Its application processes and their sessions (they outlive the node's crashes).
    apps: Apps,
    life: usize,
    counter: u64,
    restart_at: Option<u64>,
    /// When its event queue was last drained (see `World::lazy_events`).
    drained_at: u64,
    /// The last new membership this node announced (`Notice::Formed`): its ring and who left.
    formed: Option<(RingId, Vec<NodeId>)>,
    /// The SRP's delivery count when last looked at, and when it last grew (see `Stall`).
    delivered: u64,
    delivered_at: u64,
}

pub struct World {
    cfg: SimConfig,
    rng: Rng,
    now: u64,
    net: Network,
    nodes: Vec<SimNode>,
    totem: TotemSettings,
    /// What the settings were resolved against: the frame overhead goes to every endpoint.
    shape: ClusterShape,
    lives: Vec<Life>,
    submitted: BTreeMap<MsgId, Submitted>,
    report: RunReport,
    crypto: CryptoMode,
    /// A delivery's data gathered into one slice (messages larger than a frame arrive in parts).
    gathered: Vec<u8>,
    /// Odd seeds leave each node's events queued for up to `LAZY_DRAIN_MS` of simulated time
    /// (many inputs, ring changes included) before reading them, until the heal: deliveries
    /// borrow the core's frame store, and must read the same whatever the store did meanwhile.
    /// Events are outputs only, so this changes nothing else about a run.
    lazy_events: bool,
    /// The node is read in full (the checkers' logs are built from events).
    healed: bool,
    /// The files, the operator and the key checks (see `changes`).
    changes: changes::Changes,
    /// votequorum on every node and its checkers.
    quorum: QuorumWatch,
    /// Probes (node index, group) that found their node's send queue full.
    probes_unsent: Vec<(usize, usize)>,
    /// `SimConfig::loss_percent` is in force: delivery gaps are measured; since when.
    loss_on: bool,
    loss_started_ms: u64,
    /// Node 1's token visits when the rotation measurement began (`RunReport::rotation_us_mean`).
    rotation_start: Option<u64>,
}

/// Per-million loss for a percentage.
fn loss_ppm(percent: Option<u32>) -> u32 {
    percent.unwrap_or(0).min(100) * 10_000
}

/// How long a lazy run leaves a node's events queued.
const LAZY_DRAIN_MS: u64 = 250;

/// The application payload: an id the checkers can trace and bytes they can verify.
pub fn make_payload(id: MsgId, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len.max(24));
    bytes.extend_from_slice(&id.node.to_be_bytes());
    bytes.extend_from_slice(&id.incarnation.to_be_bytes());
    bytes.extend_from_slice(&id.pid.to_be_bytes());
    bytes.extend_from_slice(&id.counter.to_be_bytes());
    bytes.extend_from_slice(&(len as u32).to_be_bytes());
    bytes.resize(len.max(24), 0);
    for (chunk, word) in bytes[24..].chunks_mut(8).zip(payload_words(id)) {
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    bytes
}

/// The bytes of `id`'s payload after its 24-byte header, eight a step, written and checked in
/// place: payloads run to 1 MiB and every session's copy is checked, and a byte a step of the
/// generator (with a second payload built to compare with) was a seventh of a 5-node seed.
fn payload_words(id: MsgId) -> impl Iterator<Item = [u8; 8]> {
    let mut x = id.counter ^ (u64::from(id.pid) << 32) ^ u64::from(id.node);
    std::iter::repeat_with(move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x.to_be_bytes()
    })
}

/// Parses and verifies a payload made by `make_payload`.
pub fn read_payload(bytes: &[u8]) -> Option<MsgId> {
    if bytes.len() < 24 {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let id = MsgId {
        node: u32_at(0),
        incarnation: u32_at(4),
        pid: u32_at(8),
        counter: u64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes")),
    };
    let len = u32_at(20) as usize;
    let body_intact = || {
        bytes[24..]
            .chunks(8)
            .zip(payload_words(id))
            .all(|(chunk, word)| chunk == &word[..chunk.len()])
    };
    (len.max(24) == bytes.len() && body_intact()).then_some(id)
}

impl World {
    /// A run with the quorum options the seed picks.
    pub fn new(cfg: SimConfig) -> World {
        let plan = QuorumPlan::for_seed(cfg.seed, cfg.nodes);
        World::with_quorum(cfg, plan)
    }

    pub fn with_quorum(cfg: SimConfig, plan: QuorumPlan) -> World {
        let mut rng = Rng::new(cfg.seed);
        // The default netmtu's frame at every size: membership messages of large clusters go
        // in pieces.
        let frame_size: u32 = 1400;
        let shape = ClusterShape {
            nodelist_count: cfg.nodes as u32,
            ..ClusterShape::ALONE
        };
        let send_join_ms = if rng.chance(300_000) { 20 } else { 0 };
        let mut settings = vec![
            ("token", cfg.token_ms.unwrap_or(300)),
            ("token_coefficient", 10),
            ("merge", 100),
            ("window_size", 50),
            ("max_messages", 17),
            ("netmtu", frame_size + shape.frame_overhead_bytes),
            ("send_join", send_join_ms),
        ];
        if let Some(window) = cfg.accelerated_window {
            settings.push(("accelerated_window", window));
        }
        if cfg.adaptive {
            settings.push(("max_messages_adaptive", 1));
        }
        if cfg.token_ms.is_none() {
            // A set token keeps the derived join (a quarter of consensus at small tokens).
            settings.push(("join", 30));
        }
        let totem =
            TotemSettings::resolve(explicit(&settings), &shape).expect("simulator config is valid");
        // Mostly AES-256-GCM (the default), sometimes auth-only or none, as configs choose.
        let crypto = match rng.below(10) {
            0 => CryptoMode::None,
            1 => CryptoMode::Gmac,
            _ => CryptoMode::Gcm256,
        };
        let authkey: Vec<u8> = (0..256).map(|_| rng.next_u64() as u8).collect();
        let keys = Keys::from_authkey_bytes(&authkey, "sim").expect("a 256-byte key");
        let changes = changes::Changes::new(cfg.changes, totem.clone(), keys.clone());
        let mut world = World {
            changes,
            crypto,
            gathered: Vec::new(),
            // A loss run times deliveries, which a lazy run would hold back.
            lazy_events: cfg.seed % 2 == 1 && cfg.loss_percent.is_none(),
            healed: false,
            quorum: QuorumWatch::new(plan, cfg.nodes),
            probes_unsent: Vec::new(),
            loss_on: false,
            loss_started_ms: 0,
            rotation_start: None,
            net: Network::new(cfg.nodes, cfg.send_gap_ns),
            rng,
            now: 0,
            nodes: Vec::new(),
            totem,
            shape,
            lives: Vec::new(),
            submitted: BTreeMap::new(),
            report: RunReport::default(),
            cfg,
        };
        for index in 0..world.cfg.nodes {
            world.nodes.push(SimNode {
                id: NodeId(index as u32 + 1),
                endpoint: None,
                incarnation: 0,
                persisted_ring_seq: 0,
                paused_until: None,
                behind_until: None,
                backlog: VecDeque::new(),
                apps: Apps::new(NodeId(index as u32 + 1)),
                life: 0,
                counter: 0,
                restart_at: None,
                drained_at: 0,
                formed: None,
                delivered: 0,
                delivered_at: 0,
            });
            world.start_node(index);
        }
        world
    }

    fn start_node(&mut self, index: usize) {
        let seed = self.rng.next_u64();
        let nodes = self.cfg.nodes;
        let n = &mut self.nodes[index];
        n.incarnation += 1;
        let link0 = rotor_endpoint::link::default_link0(&self.changes.file_totem);
        let config = EndpointConfig {
            node_id: n.id.0,
            local: SimAddr(index),
            peers: (0..nodes)
                .filter(|i| *i != index)
                .map(|i| (i as u32 + 1, SimAddr(i)))
                .collect(),
            group: None,
            // Restarted nodes read the files (the simulated operator may have edited them).
            keys: self.changes.file_keys.clone(),
            cluster_name: "sim".into(),
            mode: self.crypto,
            totem: self.changes.file_totem.clone(),
            frame_overhead_bytes: self.shape.frame_overhead_bytes,
            // The incarnation is the per-boot epoch: it grows with every restart.
            epoch: n.incarnation,
            ring_seq_start: n.persisted_ring_seq,
            seed,
            link0,
            more_links: Vec::new(),
            link_mode: rotor_endpoint::LinkMode::Passive,
            link_probes: false,
        };
        let mut endpoint = Endpoint::new(config, Instant(self.now)).expect("valid config");
        // Every invariant, the expensive ones too, after every input of every node.
        endpoint.node_mut().set_check_all_invariants(true);
        self.quorum.on_start(self.now, index, endpoint.node_mut());
        n.endpoint = Some(TimedEndpoint::new(endpoint));
        n.formed = None;
        n.paused_until = None;
        n.behind_until = None;
        n.backlog.clear();
        n.restart_at = None;
        n.life = self.lives.len();
        self.lives.push(Life::new(n.id, n.incarnation));
        let node = n.endpoint.as_mut().expect("just started").node_mut();
        let refused = n.apps.start(n.incarnation, node, &mut self.report.sessions);
        self.report.violations.extend(refused);
        self.flush(index);
    }

    fn crash_node(&mut self, index: usize) {
        // What the node delivered before it crashed, its application saw.
        self.drain_events(index);
        let n = &mut self.nodes[index];
        n.apps.crash(&mut self.report.sessions);
        n.behind_until = None;
        if let Some(endpoint) = n.endpoint.take() {
            self.quorum.on_crash(self.now, index);
            n.persisted_ring_seq = endpoint.node().max_ring_seq();
            self.lives[n.life].crashed = true;
            if self.cfg.verbose {
                println!("  t={}ms node {} crashes", self.now / MS, n.id);
            }
        }
    }

    fn alive(&self, index: usize) -> bool {
        self.nodes[index].endpoint.is_some()
    }

    fn running(&self, index: usize) -> bool {
        self.alive(index) && self.nodes[index].paused_until.is_none()
    }

    /// Moves a node's outputs to the network, its diagnostics through the checks and its
    /// events to its log (in a lazy run, only every `LAZY_DRAIN_MS`).
    fn flush(&mut self, index: usize) {
        let now = self.now;
        let World {
            nodes,
            net,
            rng,
            report,
            cfg,
            quorum,
            loss_on,
            ..
        } = self;
        let n = &mut nodes[index];
        let Some(endpoint) = n.endpoint.as_mut() else {
            return;
        };
        quorum.observe(now, index, endpoint.node_mut());
        let delivered = endpoint.node().stats().delivered;
        if delivered != n.delivered {
            n.delivered = delivered;
            if *loss_on {
                let stall = report.stall.get_or_insert_with(Stall::default);
                let gap_us = (now - n.delivered_at) / 1_000;
                if gap_us > stall.longest_us {
                    stall.longest_us = gap_us;
                    stall.node = n.id.0;
                }
            }
            n.delivered_at = now;
        }
        let unknown = endpoint.drops().get("unknown_destination");
        endpoint
            .flush(|frame, to: SimAddr| {
                net.send(rng, now, index, to.0, frame);
                Ok::<bool, std::convert::Infallible>(true)
            })
            .unwrap_or_else(|never| match never {});
        if endpoint.drops().get("unknown_destination") != unknown {
            // The peer table has every node but this one.
            report
                .violations
                .push(format!("node {} sent a datagram to itself", n.id));
        }
        while let Some(d) = endpoint.poll_diagnostic() {
            // A node that missed a key rotation is told so: expected when the run rotates keys
            // in the middle of partitions and crashes (the operator then reloads it).
            let rotation_report = matches!(
                &d,
                Diagnostic::Foreign(r) if matches!(r.sender, rotor_endpoint::Foreign::UnknownKey { .. })
            );
            if !(cfg.changes && rotation_report) {
                check_diagnostic(n.id, &mut n.formed, &d, &mut report.violations);
            }
            match &d {
                Diagnostic::Totem(Notice::Formed { members, .. }) => {
                    report
                        .formed
                        .push((now / MS, n.id.0, members.iter().map(|m| m.0).collect()))
                }
                Diagnostic::Connectivity(_) => {
                    report.connectivity.push((now / MS, n.id.0, d.to_string()))
                }
                _ => {}
            }
            if cfg.verbose {
                println!("  t={}ms node {}: {d}", now / MS, n.id);
            }
        }
        self.take_changes(index);
        let lazy = self.lazy_events && !self.healed;
        if !lazy || now >= self.nodes[index].drained_at + LAZY_DRAIN_MS * MS {
            self.drain_events(index);
        }
    }

    /// Moves a node's queued events to its log, and through its sessions' fan-out to the logs
    /// of the processes that receive them.
    fn drain_events(&mut self, index: usize) {
        let now = self.now;
        let n = &mut self.nodes[index];
        let (id, life_index) = (n.id, n.life);
        n.drained_at = now;
        let Some(endpoint) = n.endpoint.as_mut() else {
            return;
        };
        let life = &mut self.lives[life_index];
        while let Some(event) = endpoint.poll_event() {
            // A delivery's traced id, when its payload is intact and from its sender.
            let traced = match &event {
                Event::Deliver(d) => read_payload(d.data.gather(&mut self.gathered))
                    .filter(|id| id.node == d.sender.node.0 && id.pid == d.sender.pid),
                _ => None,
            };
            n.apps.route(&event, traced, &mut self.report.sessions);
            match event {
                Event::Config(c) => {
                    if c.kind == ConfigKind::Regular {
                        self.report.configs += 1;
                        self.report.installs.push((
                            now / MS,
                            id.0,
                            c.members.iter().map(|m| m.0).collect(),
                        ));
                        if self.cfg.verbose {
                            println!(
                                "  t={}ms node {} installs ring {} members {:?}",
                                now / MS,
                                id,
                                c.ring,
                                c.members.iter().map(|m| m.0).collect::<Vec<_>>()
                            );
                        }
                    }
                    life.entries.push(Entry::Config {
                        kind: c.kind,
                        ring: c.ring,
                        next: c.next_ring,
                        members: c.members,
                    });
                }
                Event::Group(g) => {
                    life.views.insert(g.group.clone(), g.members.clone());
                    life.entries.push(Entry::Group {
                        group: g.group,
                        members: g.members,
                    });
                }
                Event::Deliver(d) => {
                    self.report.deliveries += 1;
                    let view = life.views.get(d.group).cloned().unwrap_or_default();
                    match traced {
                        Some(id) => {
                            if id.node == life.node.0 && id.incarnation == life.incarnation {
                                if let Some(sub) = self.submitted.get(&id) {
                                    self.report
                                        .self_delivery
                                        .push((sub.at_ns / MS, (now - sub.at_ns) / 1_000));
                                }
                            }
                            life.entries.push(Entry::Deliver { id, group: d.group.to_vec(), guarantee: d.guarantee, view });
                        }
                        _ => self.report.violations.push(format!(
                            "node {} delivered a message that was never submitted or was altered (from {}:{}, {} bytes)",
                            id,
                            d.sender.node,
                            d.sender.pid,
                            d.data.len()
                        )),
                    }
                }
            }
        }
    }

    /// One random action of a random process of a random running node: join a group (attaching
    /// a session for it, or joining again through one that left), leave one, close a session,
    /// die (sometimes to be followed by a process with the same pid), or multicast.
    fn app_action(&mut self) {
        let index = self.rng.below(self.cfg.nodes as u64) as usize;
        if !self.running(index) {
            return;
        }
        let p = self.rng.below(self.nodes[index].apps.procs.len() as u64) as usize;
        let roll = self.rng.below(1000);
        let asked = self.nodes[index].apps.asked_groups(p);
        let pick =
            |rng: &mut Rng, groups: &[usize]| groups[rng.below(groups.len() as u64) as usize];
        let result = if asked.is_empty() || roll < 50 {
            let g = self.rng.below(RANDOM_GROUPS as u64) as usize;
            if asked.contains(&g) {
                return;
            }
            self.app(
                index,
                Action::Join {
                    index,
                    proc_index: p,
                    group: g,
                },
            )
        } else if roll < 80 {
            let g = pick(&mut self.rng, &asked);
            self.app(
                index,
                Action::Leave {
                    index,
                    proc_index: p,
                    group: g,
                },
            )
        } else if roll < 84 {
            let g = pick(&mut self.rng, &asked);
            let n = &mut self.nodes[index];
            let node = n.endpoint.as_mut().expect("running").node_mut();
            n.apps.close(p, g, node, &mut self.report.sessions);
            Ok(())
        } else if roll < 88 {
            let same_pid = self.rng.chance(250_000);
            self.app(
                index,
                Action::Kill {
                    index,
                    proc_index: p,
                    same_pid,
                },
            )
        } else {
            let g = pick(&mut self.rng, &asked);
            let size_roll = self.rng.below(1000);
            let len = if size_roll < 900 {
                self.rng.range(24, 200)
            } else if size_roll < 995 {
                self.rng.range(1_000, 20_000)
            } else {
                self.rng.range(100_000, 1 << 20)
            } as usize;
            let guarantee = if self.rng.chance(300_000) {
                Guarantee::Safe
            } else {
                Guarantee::Agreed
            };
            self.mcast(index, p, g, guarantee, len).map(|_| ())
        };
        self.app_result(index, result);
        self.flush(index);
    }

    /// A process action on node `index` (running): join, leave or die.
    fn app(&mut self, index: usize, action: Action) -> Result<(), SubmitError> {
        let n = &mut self.nodes[index];
        let node = n.endpoint.as_mut().expect("running").node_mut();
        let logs = &mut self.report.sessions;
        match action {
            Action::Join {
                proc_index, group, ..
            } => n.apps.join(proc_index, group, node, logs),
            Action::Leave {
                proc_index, group, ..
            } => n.apps.leave(proc_index, group, node, logs),
            Action::Kill {
                proc_index,
                same_pid,
                ..
            } => {
                n.apps.kill(proc_index, same_pid, node, logs);
                Ok(())
            }
            other => unreachable!("not a process action: {other:?}"),
        }
    }

    /// A refusal other than "try again" is a violation: the simulated processes only ask for
    /// what they may.
    fn app_result(&mut self, index: usize, result: Result<(), SubmitError>) {
        match result {
            Ok(()) | Err(SubmitError::TryAgain) => {}
            Err(e) => {
                let id = self.nodes[index].id;
                self.report
                    .violations
                    .push(format!("node {id}: unexpected submit error: {e}"));
            }
        }
    }

    /// Submits a traced multicast of `len` bytes from process `p` of node `index` to group
    /// `group`, through its session; an accepted one is recorded for the checkers.
    fn mcast(
        &mut self,
        index: usize,
        p: usize,
        group: usize,
        guarantee: Guarantee,
        len: usize,
    ) -> Result<MsgId, SubmitError> {
        let n = &mut self.nodes[index];
        n.counter += 1;
        let id = MsgId {
            node: n.id.0,
            incarnation: n.incarnation,
            pid: n.apps.procs[p].pid,
            counter: n.counter,
        };
        let data = make_payload(id, len);
        let node = n.endpoint.as_mut().expect("a running node").node_mut();
        n.apps.mcast(p, group, guarantee, &data, node)?;
        self.report.messages_submitted += 1;
        let submitted = Submitted {
            group: GROUPS[group].to_vec(),
            guarantee,
            life: n.life,
            at_ns: self.now,
        };
        self.submitted.insert(id, submitted);
        Ok(id)
    }

    fn fault_action(&mut self) {
        let mode = self.cfg.faults;
        let kinds: &[u8] = match mode {
            Faults::None => return,
            Faults::Loss => &[0],
            Faults::Partition => &[0, 1, 1, 4],
            Faults::Crash => &[2, 2, 3],
            Faults::All => &[0, 1, 2, 3, 4],
        };
        let kind = kinds[self.rng.below(kinds.len() as u64) as usize];
        let n = self.cfg.nodes;
        match kind {
            0 => {
                let c = &mut self.net.conditions;
                c.loss_ppm = self.rng.below(60_000) as u32;
                if self.loss_on {
                    c.loss_ppm = loss_ppm(self.cfg.loss_percent);
                }
                c.dup_ppm = self.rng.below(20_000) as u32;
                c.jitter_ns = self.rng.below(300_000);
            }
            1 => {
                if self.net.conditions.partition.iter().any(|p| *p != 0) {
                    self.net
                        .conditions
                        .partition
                        .iter_mut()
                        .for_each(|p| *p = 0);
                    if self.cfg.verbose {
                        println!("  t={}ms partition heals", self.now / MS);
                    }
                } else {
                    let parts = self.rng.range(2, 3) as u32;
                    for i in 0..n {
                        self.net.conditions.partition[i] = self.rng.below(u64::from(parts)) as u32;
                    }
                    if self.cfg.verbose {
                        println!(
                            "  t={}ms partition {:?}",
                            self.now / MS,
                            self.net.conditions.partition
                        );
                    }
                }
            }
            4 => {
                // Partial connectivity: a few directed pairs lose everything (one direction, or
                // both), or the blocked pairs are cleared.
                let c = &mut self.net.conditions;
                if !c.blocked.is_empty() && self.rng.chance(500_000) {
                    c.blocked.clear();
                } else {
                    for _ in 0..self.rng.range(1, 4) {
                        let from = self.rng.below(n as u64) as usize;
                        let to = (from + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                        c.blocked.push((from, to));
                        if self.rng.chance(500_000) {
                            c.blocked.push((to, from));
                        }
                    }
                }
                if self.cfg.verbose {
                    println!("  t={}ms blocked {:?}", self.now / MS, c.blocked);
                }
            }
            2 => {
                let i = self.rng.below(n as u64) as usize;
                if self.alive(i) {
                    self.crash_node(i);
                    let after = self.rng.range(200, 3000) * MS;
                    self.nodes[i].restart_at = Some(self.now + after);
                }
            }
            _ => {
                let i = self.rng.below(n as u64) as usize;
                if self.running(i) {
                    let token = u64::from(self.totem.token_ms);
                    let for_ms = self.rng.range(token / 10, token * 2);
                    self.nodes[i].paused_until = Some(self.now + for_ms * MS);
                    if self.cfg.verbose {
                        println!(
                            "  t={}ms node {} pauses for {}ms",
                            self.now / MS,
                            self.nodes[i].id,
                            for_ms
                        );
                    }
                }
            }
        }
    }

    fn scripted(&mut self, action: Action) {
        if self.cfg.verbose {
            println!("  t={}ms script: {action:?}", self.now / MS);
        }
        match action {
            Action::Crash(i) => self.crash_node(i),
            Action::Restart(i) => {
                if !self.alive(i) {
                    self.start_node(i);
                }
            }
            Action::Partition(labels) => self.net.conditions.partition = labels,
            Action::Block(pairs) => self.net.conditions.blocked.extend(pairs),
            Action::Heal => {
                let c = &mut self.net.conditions;
                c.partition.iter_mut().for_each(|p| *p = 0);
                c.blocked.clear();
            }
            Action::Pause { index, ms } => {
                if self.running(index) {
                    self.nodes[index].paused_until = Some(self.now + ms * MS);
                }
            }
            Action::Behind { index, ms } => self.set_behind(index, Some(self.now + ms * MS)),
            Action::Join { index, .. }
            | Action::Leave { index, .. }
            | Action::Kill { index, .. } => {
                // A paused node's processes still act: their requests queue at the node.
                if self.alive(index) {
                    match self.app(index, action) {
                        // Random actions may have done it already.
                        Err(SubmitError::AlreadyJoined) | Err(SubmitError::NotJoined) => {}
                        result => self.app_result(index, result),
                    }
                    self.flush(index);
                }
            }
        }
    }

    /// Fires the scripted actions that are due; returns the time of the next timed one.
    fn run_script(&mut self, script: &mut Vec<(When, Action)>) -> Option<u64> {
        let mut i = 0;
        while i < script.len() {
            let due = match script[i].0 {
                When::At(ms) => self.now >= ms * MS,
                When::State {
                    index,
                    state,
                    after_ms,
                } => {
                    self.now >= after_ms * MS
                        && self.nodes[index]
                            .endpoint
                            .as_ref()
                            .is_some_and(|e| e.node().state() == state)
                }
            };
            if due {
                let (_, action) = script.remove(i);
                self.report.script_fired += 1;
                self.scripted(action);
            } else {
                i += 1;
            }
        }
        script
            .iter()
            .filter_map(|(w, _)| match w {
                When::At(ms) => Some(ms * MS),
                When::State { .. } => None,
            })
            .min()
    }

    /// Regular token visits node `index` has had since it started; `None` while it is down.
    fn token_visits(&self, index: usize) -> Option<u64> {
        let endpoint = self.nodes[index].endpoint.as_ref()?;
        Some(endpoint.node().stats().tokens)
    }

    /// Switches `SimConfig::loss_percent` on: every node's gap starts now.
    fn start_loss(&mut self) {
        self.loss_on = true;
        self.loss_started_ms = self.now / MS;
        self.net.conditions.loss_ppm = loss_ppm(self.cfg.loss_percent);
        let (mut token_retransmits, mut retransmitted) = (0, 0);
        for n in &mut self.nodes {
            n.delivered_at = self.now;
            if let Some(e) = &n.endpoint {
                token_retransmits += e.node().stats().token_retransmits;
                retransmitted += e.node().stats().retransmitted;
            }
        }
        // The counters at the start, subtracted at the end.
        self.report.stall = Some(Stall {
            token_retransmits,
            retransmitted,
            ..Stall::default()
        });
    }

    /// Ends the loss window at the heal: the gap since each running node's last delivery counts.
    fn end_loss(&mut self) {
        self.loss_on = false;
        let start_ms = self.loss_started_ms;
        let end_ms = self.now / MS;
        let configs = self
            .report
            .installs
            .iter()
            .filter(|(ms, ..)| start_ms < *ms && *ms <= end_ms)
            .count() as u64;
        let Some(stall) = self.report.stall.as_mut() else {
            return;
        };
        stall.configs = configs;
        let (mut token_retransmits, mut retransmitted) = (0, 0);
        for n in &self.nodes {
            let Some(e) = &n.endpoint else { continue };
            token_retransmits += e.node().stats().token_retransmits;
            retransmitted += e.node().stats().retransmitted;
            let gap_us = (self.now - n.delivered_at) / 1_000;
            if gap_us > stall.longest_us {
                stall.longest_us = gap_us;
                stall.node = n.id.0;
            }
        }
        stall.token_retransmits = token_retransmits.saturating_sub(stall.token_retransmits);
        stall.retransmitted = retransmitted.saturating_sub(stall.retransmitted);
    }

    fn heal(&mut self) {
        if self.loss_on {
            self.end_loss();
        }
        self.healed = true;
        for i in 0..self.cfg.nodes {
            self.drain_events(i);
        }
        let c = &mut self.net.conditions;
        c.loss_ppm = 0;
        c.dup_ppm = 0;
        c.jitter_ns = 20_000;
        c.partition.iter_mut().for_each(|p| *p = 0);
        c.blocked.clear();
        for i in 0..self.cfg.nodes {
            if !self.alive(i) {
                self.start_node(i);
            }
            if self.nodes[i].paused_until.is_some() {
                self.nodes[i].paused_until = Some(self.now);
            }
            self.set_behind(i, None);
        }
    }

    /// Node `index`'s receivers are behind until `until` (`None`: no longer).
    fn set_behind(&mut self, index: usize, until: Option<u64>) {
        let n = &mut self.nodes[index];
        // A node that is down is not behind; it starts again without (`start_node`).
        n.behind_until = until.filter(|_| n.endpoint.is_some());
        if let Some(endpoint) = n.endpoint.as_mut() {
            endpoint
                .node_mut()
                .set_receivers_behind(n.behind_until.is_some());
        }
    }

    fn converged(&self) -> Option<RingId> {
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let mut ring = None;
        for n in &self.nodes {
            let node = n.endpoint.as_ref()?.node();
            if !node.is_operational()
                || node.members() != ids.as_slice()
                || (self.changes.enabled && !self.runs_files(n.id.0 as usize - 1))
                || node.syncing()
                || n.paused_until.is_some()
            {
                return None;
            }
            if *ring.get_or_insert(node.ring()) != node.ring() {
                return None;
            }
        }
        ring
    }

    fn deliver_packet(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        if !self.alive(to) {
            return;
        }
        if self.nodes[to].paused_until.is_some() {
            let backlog = &mut self.nodes[to].backlog;
            if backlog.len() < PAUSED_BACKLOG_MAX {
                backlog.push_back((from, bytes));
            }
            return;
        }
        let mut bytes = bytes;
        let expected = self.nodes[from].id;
        let n = &mut self.nodes[to];
        let endpoint = n.endpoint.as_mut().expect("alive");
        match endpoint.handle_datagram(Instant(self.now), SimAddr(from), &mut bytes) {
            Received::Accepted {
                sender,
                key_id,
                body,
            } => {
                if sender != expected {
                    self.report.violations.push(format!(
                        "crypto: a frame from node {expected} opened as node {sender}"
                    ));
                    return;
                }
                if self.cfg.verbose && std::env::var_os("ROTOR_SIM_TRACE").is_some() {
                    trace_datagram(self.now, sender, n.id, body);
                }
                self.check_accepted_key(to, key_id);
            }
            Received::Probe { sender } => {
                if sender != expected {
                    self.report.violations.push(format!(
                        "crypto: a probe from node {expected} opened as node {sender}"
                    ));
                    return;
                }
            }
            Received::Dropped(cause) => {
                *self.report.crypto_rejected.entry(cause.key()).or_default() += 1;
            }
        }
        self.flush(to);
    }

    /// Runs the whole scenario and the checkers.
    pub fn run(mut self) -> RunReport {
        let fault_end = self.cfg.fault_ms * MS;
        let token = u64::from(self.totem.token_ms) * MS;
        // Liveness bound once faults stop: a few token timeouts, consensus rounds and merges.
        let live_deadline = fault_end + 40 * token;
        let mut next_app = 0u64;
        let mut next_fault = 200 * MS;
        let mut healed = false;
        let mut probes_sent: Option<u64> = None;
        // The ring every node is in since when, while it lasts (see the convergence below).
        let mut converged_since: Option<(RingId, u64)> = None;
        let mut next_probe_check = 0u64;
        let mut end = live_deadline;
        let mut steps = 0u64;
        let mut script = std::mem::take(&mut self.cfg.script);
        let mut next_script = self.run_script(&mut script);
        loop {
            steps += 1;
            if steps > 50_000_000 {
                self.report
                    .violations
                    .push("simulation did not finish within its step bound".into());
                break;
            }
            // The next thing that happens.
            let mut next = end;
            if let Some(at) = self.net.next_at() {
                next = next.min(at);
            }
            for n in &self.nodes {
                if let (Some(endpoint), None) = (&n.endpoint, n.paused_until) {
                    if let Some(Instant(at)) = endpoint.next_timeout() {
                        next = next.min(at);
                    }
                }
                if let Some(at) = n.paused_until {
                    next = next.min(at);
                }
                if let Some(at) = n.behind_until {
                    next = next.min(at);
                }
                if let Some(at) = n.restart_at {
                    next = next.min(at);
                }
            }
            if let Some(at) = next_script {
                next = next.min(at);
            }
            // The operator acts until the probes go out (see `changes_tick` below); a time of
            // its past that it will not act on would hold the clock still.
            if let Some(at) = self
                .changes
                .next_at(healed)
                .filter(|_| probes_sent.is_none())
            {
                next = next.min(at);
            }
            if !healed {
                next = next.min(next_app).min(next_fault).min(fault_end);
                if self.cfg.loss_percent.is_some() && !self.loss_on && self.now < LOSS_START_MS * MS
                {
                    next = next.min(LOSS_START_MS * MS);
                }
            } else if probes_sent.is_none() {
                next = next.min(self.now + 10 * MS);
            }
            self.now = next.max(self.now);
            if self.now >= end {
                break;
            }
            // Network arrivals.
            while self.net.next_at().is_some_and(|at| at <= self.now) {
                let p = self.net.pop().expect("peeked");
                self.deliver_packet(p.from, p.to, p.bytes);
            }
            // Resumes and restarts.
            for i in 0..self.cfg.nodes {
                if self.nodes[i].paused_until.is_some_and(|at| at <= self.now) {
                    self.nodes[i].paused_until = None;
                    let backlog = std::mem::take(&mut self.nodes[i].backlog);
                    for (from, bytes) in backlog {
                        self.deliver_packet(from, i, bytes);
                    }
                }
                if self.nodes[i].behind_until.is_some_and(|at| at <= self.now) {
                    self.set_behind(i, None);
                }
                if self.nodes[i].restart_at.is_some_and(|at| at <= self.now) && !healed {
                    self.start_node(i);
                }
            }
            if !healed && !script.is_empty() {
                next_script = self.run_script(&mut script);
            }
            if probes_sent.is_none() {
                self.changes_tick(healed);
            }
            // Timers.
            for i in 0..self.cfg.nodes {
                if !self.running(i) {
                    continue;
                }
                let endpoint = self.nodes[i].endpoint.as_mut().expect("running");
                if endpoint
                    .next_timeout()
                    .is_some_and(|Instant(at)| at <= self.now)
                {
                    endpoint.handle_timeout(Instant(self.now));
                    self.flush(i);
                }
            }
            if !healed {
                if self.cfg.loss_percent.is_some()
                    && !self.loss_on
                    && self.now >= LOSS_START_MS * MS
                    && self.now < fault_end
                    && self.converged().is_some()
                {
                    self.start_loss();
                }
                if self.now >= next_app {
                    self.app_action();
                    let (lo, hi) = self.cfg.app_gap_us;
                    next_app = self.now + self.rng.range(lo * 1_000, hi.max(lo + 1) * 1_000);
                }
                if self.now >= next_fault {
                    self.fault_action();
                    next_fault = self.now + self.rng.range(100, 800) * MS;
                }
                if self.now >= LOSS_START_MS * MS && self.rotation_start.is_none() {
                    self.rotation_start = Some(self.token_visits(0).unwrap_or(u64::MAX));
                }
                if self.now >= fault_end {
                    if let (Some(start), Some(end)) = (self.rotation_start, self.token_visits(0)) {
                        if end > start {
                            let us = (self.now - LOSS_START_MS * MS) as f64 / 1_000.0;
                            self.report.rotation_us_mean = Some(us / (end - start) as f64);
                        }
                    }
                    self.heal();
                    healed = true;
                }
            } else if probes_sent.is_none() {
                // Converged: one ring of every node that stays for two presence intervals. A
                // ring formed at the heal can still be dropped when the nodes act on the
                // connectivity they measured during the faults (seed 5003 of 7 nodes with all
                // faults: the ring of all seven formed 1 ms after the heal and split 3 ms
                // later); probes sent on it end the run before the rings settle.
                match self.converged() {
                    Some(ring) => {
                        let since = match converged_since {
                            Some((r, t)) if r == ring => t,
                            _ => {
                                converged_since = Some((ring, self.now));
                                self.now
                            }
                        };
                        if self.now >= since + 2 * u64::from(self.totem.merge_ms) * MS {
                            self.report.converged_after_heal_ms = Some((since - fault_end) / MS);
                            self.probes_unsent = (0..self.cfg.nodes)
                                .flat_map(|i| (0..GROUPS.len()).map(move |g| (i, g)))
                                .collect();
                            probes_sent = Some(self.now);
                        }
                    }
                    None => converged_since = None,
                }
            } else if !self.probes_unsent.is_empty() {
                // A node whose send queue was full at the heal takes its probes once it has
                // room: they are ordered after everything it accepted before.
                if self.send_probes() {
                    end = self.now + 20 * token;
                }
            } else if self.now >= next_probe_check {
                // Checking rebuilds every node's delivered set: at most every 10 ms of
                // simulated time, not after every event.
                next_probe_check = self.now + 10 * MS;
                if self.probes_done() {
                    break;
                }
            }
        }
        self.report.sim_ms = self.now / MS;
        self.report.datagrams = self.net.sent;
        self.report.changes_requested = self.changes.requested;
        self.report.changes_applied = self.changes.applied;
        self.report.changes_refused = self.changes.refused;
        self.report.keys_retired = self.changes.keys_retired;
        if self.report.converged_after_heal_ms.is_none() {
            let states: Vec<String> = self
                .nodes
                .iter()
                .map(|n| match n.endpoint.as_ref().map(|e| e.node()) {
                    Some(node) => format!(
                        "{}:{:?}@{} {:?}",
                        n.id,
                        node.state(),
                        node.ring(),
                        node.members().iter().map(|m| m.0).collect::<Vec<_>>()
                    ),
                    None => format!("{}:down", n.id),
                })
                .collect();
            self.report.violations.push(format!(
                "liveness: no single ring of all {} nodes within {} ms after the heal; states: {}",
                self.cfg.nodes,
                (live_deadline - fault_end) / MS,
                states.join(", ")
            ));
        }
        let final_lives: Vec<usize> = self.nodes.iter().map(|n| n.life).collect();
        let violations = check::check_all(
            &self.lives,
            &self.submitted,
            &final_lives,
            probes_sent.is_some(),
        );
        self.report.violations.extend(violations);
        let unmatched: u64 = self.nodes.iter().map(|n| n.apps.unmatched()).sum();
        if unmatched > 0 {
            self.report.violations.push(format!(
                "fan-out: {unmatched} changes of a node's own processes matched no request"
            ));
        }
        let violations = check_apps(&self.report.sessions, probes_sent.is_some());
        self.report.violations.extend(violations);
        self.report.quorum = self.quorum.finish();
        let quorum_violations = self.report.quorum.violations.clone();
        self.report.violations.extend(quorum_violations);
        self.report
    }

    /// After convergence every node's first process joins every group and multicasts a probe;
    /// a node whose send queue is full takes the rest later. True once every probe is sent.
    fn send_probes(&mut self) -> bool {
        let mut unsent = std::mem::take(&mut self.probes_unsent);
        unsent.retain(|&(i, g)| {
            if !self.nodes[i].apps.asked(0, g) {
                let result = self.app(
                    i,
                    Action::Join {
                        index: i,
                        proc_index: 0,
                        group: g,
                    },
                );
                if result == Err(SubmitError::TryAgain) {
                    return true;
                }
                self.app_result(i, result);
            }
            let sent = match self.mcast(i, 0, g, Guarantee::Safe, 64) {
                Ok(id) => {
                    let life = self.nodes[i].life;
                    self.lives[life].probes.push(id);
                    true
                }
                Err(SubmitError::TryAgain) => false,
                Err(e) => {
                    let id = self.nodes[i].id;
                    self.report
                        .violations
                        .push(format!("node {id}: a probe was refused: {e}"));
                    true
                }
            };
            self.flush(i);
            !sent
        });
        self.probes_unsent = unsent;
        self.probes_unsent.is_empty()
    }

    fn probes_done(&self) -> bool {
        let probes: Vec<MsgId> = self
            .nodes
            .iter()
            .flat_map(|n| self.lives[n.life].probes.iter().copied())
            .collect();
        self.nodes.iter().all(|n| {
            let delivered = self.lives[n.life].delivered_ids();
            probes.iter().all(|p| delivered.contains(p))
        })
    }
}

/// Runs one seed.
pub fn run(cfg: SimConfig) -> RunReport {
    World::new(cfg).run()
}

/// Runs one seed with the quorum options of a scenario.
pub fn run_with_quorum(cfg: SimConfig, plan: QuorumPlan) -> RunReport {
    World::with_quorum(cfg, plan).run()
}

impl Life {
    fn delivered_ids(&self) -> BTreeSet<MsgId> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Deliver { id, .. } => Some(*id),
                _ => None,
            })
            .collect()
    }
}

/// Checks what a node's endpoint reported: nothing about foreign senders (every node of a run
/// has the key, the cluster name and a place in the nodelist), and membership notices that agree
/// with themselves — a new membership contains the node, its joined members are in it, a left
/// member in it has joined again, and the members reported as failed are among those that left.
fn check_diagnostic(
    node: NodeId,
    formed: &mut Option<(RingId, Vec<NodeId>)>,
    d: &Diagnostic<SimAddr>,
    violations: &mut Vec<String>,
) {
    let sorted = |v: &[NodeId]| v.windows(2).all(|w| w[0] < w[1]);
    match d {
        Diagnostic::Foreign(r) => violations.push(format!("node {node} reported: {r}")),
        Diagnostic::Totem(Notice::Formed {
            ring,
            members,
            joined,
            left,
        }) => {
            let ok = sorted(members)
                && sorted(joined)
                && sorted(left)
                && members.contains(&node)
                && joined.iter().all(|j| members.contains(j))
                // A member that left the old configuration and is in the new one came back
                // (it restarted, or was in another ring): it joined again.
                && left.iter().all(|l| !members.contains(l) || joined.contains(l));
            if !ok {
                violations.push(format!("node {node}: inconsistent new membership: {d}"));
            }
            *formed = Some((*ring, left.clone()));
        }
        Diagnostic::Totem(Notice::LeaveNotReceived { ring, failed }) => {
            let ok = formed
                .as_ref()
                .is_some_and(|(r, left)| r == ring && failed.iter().all(|f| left.contains(f)));
            if !ok {
                violations.push(format!(
                    "node {node}: failed members that did not leave ring {ring}: {d}"
                ));
            }
        }
        Diagnostic::Totem(_) | Diagnostic::Connectivity(_) | Diagnostic::Link(_) => {}
    }
}

/// Prints membership datagrams (joins, commit tokens) as they arrive, for debugging a seed.
fn trace_datagram(now: u64, from: NodeId, to: NodeId, bytes: &[u8]) {
    use totem_core::wire;
    if bytes.len() < wire::HEADER_LEN {
        return;
    }
    let kind = bytes[3];
    let ids = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    match kind {
        wire::KIND_JOIN => {
            let body = &bytes[wire::HEADER_LEN..];
            let pc = u16::from_be_bytes([body[8], body[9]]) as usize;
            let fc = u16::from_be_bytes([body[10], body[11]]) as usize;
            let all = ids(&body[16..]);
            println!(
                "    {}us join {}->{} ring_seq {:x} proc {:?} fail {:?} excluded {:?}",
                now / 1000,
                from,
                to,
                u64::from_be_bytes(body[..8].try_into().unwrap()),
                &all[..pc],
                &all[pc..pc + fc],
                &all[pc + fc..]
            );
        }
        wire::KIND_COMMIT => println!("    {}us commit {}->{}", now / 1000, from, to),
        wire::KIND_PRESENCE => println!("    {}us presence {}->{}", now / 1000, from, to),
        wire::KIND_SEGMENT => println!("    {}us segment {}->{}", now / 1000, from, to),
        wire::KIND_TOKEN => println!("    {}us token {}->{}", now / 1000, from, to),
        wire::KIND_HOLD_CANCEL => println!("    {}us hold-cancel {}->{}", now / 1000, from, to),
        wire::KIND_DATA => println!("    {}us data {}->{}", now / 1000, from, to),
        _ => {}
    }
}
