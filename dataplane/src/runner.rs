//! The poll loop driving one totem-core `Node` over any [`Transport`]: datagrams are opened with
//! rotor-crypto and fed to the node under the sender id the frame authenticated; the node's
//! transmits are sealed and sent to each destination's configured address — `Dest::All` once to
//! the multicast group when the transport joined one, else to every configured peer.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use rotor_crypto::{CryptoMode, Keys, Opener, Sealer};
use totem_core::config::frame_overhead_bytes;
use totem_core::{ClusterShape, Dest, Event, Instant, Node, NodeConfig, NodeId, TotemSettings};

use crate::stats::{Entries, Rotations, Traffic};
use crate::transport::Transport;

/// Largest datagram handled (a UDP payload).
const DATAGRAM_MAX: usize = 65_536;

/// Everything the runner needs.
pub struct RunnerConfig {
    pub node_id: u32,
    /// Every other configured node.
    pub peers: Vec<(u32, SocketAddr)>,
    pub keys: Keys,
    pub cluster_name: String,
    pub mode: CryptoMode,
    /// Validated by the node against [`cluster_shape`] of the peers, the bound family and
    /// `mode`.
    pub totem: TotemSettings,
    /// Per-boot epoch: must grow on every restart (used as totem incarnation and crypto epoch).
    pub epoch: u32,
    /// The highest ring sequence this node saw before it restarted (rotord persists it), so
    /// rings it forms are numbered above every ring it was part of.
    pub ring_seq_start: u64,
    pub seed: u64,
}

/// The shape a node's settings are validated against: the configured peers and this node, and
/// the IP, UDP and crypto bytes of every packet (netmtu less these is the core's frame).
pub fn cluster_shape(peer_count: usize, ipv6: bool, mode: CryptoMode) -> ClusterShape {
    ClusterShape {
        nodelist_count: u32::try_from(peer_count + 1).unwrap_or(u32::MAX),
        frame_overhead_bytes: frame_overhead_bytes(ipv6, mode.overhead()),
    }
}

/// Why the runner could not start.
#[derive(Debug)]
pub enum RunnerError {
    Io(io::Error),
    Config(totem_core::SettingError),
}

impl std::fmt::Display for RunnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunnerError::Io(e) => write!(f, "socket: {e}"),
            RunnerError::Config(e) => write!(f, "config: {e}"),
        }
    }
}

impl std::error::Error for RunnerError {}

/// Datagrams dropped, by reason (crypto open errors under `OpenError::reason()`).
#[derive(Debug, Default, Clone)]
pub struct Drops {
    pub by_reason: BTreeMap<&'static str, u64>,
}

impl Drops {
    fn count(&mut self, reason: &'static str) {
        *self.by_reason.entry(reason).or_insert(0) += 1;
    }

    pub fn get(&self, reason: &str) -> u64 {
        self.by_reason.get(reason).copied().unwrap_or(0)
    }

    /// `crypto.drops.<reason>` for what the crypto layer refused (an `OpenError` reason or
    /// `seal_error`), `net.drops.<reason>` for the rest: `unconfigured_sender`,
    /// `unknown_destination`, and `send_refused` (the provider had no room or, over AF_XDP, no
    /// MAC for the peer yet; its own counters say which).
    pub fn entries(&self, out: &mut Entries) {
        for (reason, n) in &self.by_reason {
            let area = if CRYPTO_DROPS.contains(reason) {
                "crypto"
            } else {
                "net"
            };
            out.push((format!("{area}.drops.{reason}"), *n));
        }
    }
}

/// At most one "invalid digest" log line per this many nanoseconds (the rest are counted).
const DIGEST_LOG_INTERVAL_NS: u64 = 5_000_000_000;

/// Rate-limited logging of frames that fail authentication (a wrong key, or forgery):
/// corosync's "Received message has invalid digest... ignoring." at most once per
/// `DIGEST_LOG_INTERVAL_NS`, saying how many were not logged in between.
#[derive(Debug, Default)]
struct DigestLog {
    last_ns: Option<u64>,
    unlogged: u64,
}

impl DigestLog {
    fn on_invalid(&mut self, now_ns: u64, from: SocketAddr) {
        if self
            .last_ns
            .is_some_and(|last| now_ns.saturating_sub(last) < DIGEST_LOG_INTERVAL_NS)
        {
            self.unlogged += 1;
            return;
        }
        let more = match self.unlogged {
            0 => String::new(),
            n => format!(" ({n} more since the last report)"),
        };
        tracing::warn!(
            target: "TOTEM",
            "Received message has invalid digest... ignoring (from {from}){more}"
        );
        self.last_ns = Some(now_ns);
        self.unlogged = 0;
    }
}

/// The drop reasons that belong to the crypto layer.
const CRYPTO_DROPS: [&str; 11] = [
    "truncated",
    "bad_magic",
    "bad_version",
    "foreign_cluster",
    "mode_mismatch",
    "own_frame",
    "too_many_senders",
    "stale_epoch",
    "replay",
    "invalid_digest",
    "seal_error",
];

pub struct Runner<T: Transport> {
    node: Node,
    transport: T,
    sealer: Sealer,
    opener: Opener,
    peers: HashMap<u32, SocketAddr>,
    start: std::time::Instant,
    tx: Vec<u8>,
    drops: Drops,
    traffic: Traffic,
    rotations: Rotations,
    digest_log: DigestLog,
}

impl<T: Transport> Runner<T> {
    pub fn new(cfg: RunnerConfig, transport: T) -> Result<Runner<T>, RunnerError> {
        let start = std::time::Instant::now();
        let cluster = totem_core::cluster_hash(&cfg.cluster_name);
        let shape = cluster_shape(cfg.peers.len(), transport.local_addr().is_ipv6(), cfg.mode);
        let node = Node::new(
            NodeConfig {
                totem: cfg.totem,
                shape,
                node_id: NodeId(cfg.node_id),
                cluster,
                incarnation: cfg.epoch,
                ring_seq_start: cfg.ring_seq_start,
                seed: cfg.seed,
            },
            Instant(0),
        )
        .map_err(RunnerError::Config)?;
        let sealer = Sealer::new(&cfg.keys, cfg.mode, cluster, cfg.node_id, cfg.epoch);
        let opener = Opener::new(
            &cfg.keys,
            cfg.mode,
            cluster,
            cfg.node_id,
            // Room for every node the core allows, not just the configured peers: a keyed node
            // missing from our list must not take the slot a configured peer needs (its frames
            // are then dropped as `unconfigured_sender`).
            totem_core::limits::MEMBERS_MAX.max(cfg.peers.len()),
        );
        Ok(Runner {
            node,
            transport,
            sealer,
            opener,
            peers: cfg.peers.into_iter().collect(),
            start,
            tx: vec![0; DATAGRAM_MAX],
            drops: Drops::default(),
            traffic: Traffic::default(),
            rotations: Rotations::default(),
            digest_log: DigestLog::default(),
        })
    }

    /// Monotonic time since the runner started, as the core's nanoseconds.
    pub fn now(&self) -> Instant {
        Instant(self.start.elapsed().as_nanos() as u64)
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    /// Every counter of the runner, its transport, crypto and the core, as published to
    /// rotord (`stats.<key>`): `net.*`, `crypto.*`, `srp.*` and the provider's own
    /// (`udp.*` or `xdp.*`).
    pub fn counters(&self) -> Entries {
        let mut out = Entries::new();
        self.traffic.entries(&mut out);
        self.drops.entries(&mut out);
        let sealed = self.sealer.counters();
        let opened = self.opener.counters();
        for (k, v) in [
            ("crypto.frames_sealed", sealed.frames_sealed),
            ("crypto.bytes_sealed", sealed.bytes_sealed),
            ("crypto.frames_opened", opened.frames_opened),
            ("crypto.bytes_opened", opened.bytes_opened),
        ] {
            out.push((k.into(), v));
        }
        for (k, v) in self.node.stats().entries() {
            out.push((format!("srp.{k}"), v));
        }
        self.rotations.entries(&mut out);
        self.transport.counters(&mut out);
        out
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Seals and sends everything the node has queued.
    pub fn flush(&mut self) -> io::Result<()> {
        while let Some(t) = self.node.poll_transmit() {
            let n = match self.sealer.seal(&t.bytes, &mut self.tx) {
                Ok(n) => n,
                Err(_) => {
                    self.drops.count("seal_error");
                    self.node.recycle(t.bytes);
                    continue;
                }
            };
            let frame = &self.tx[..n];
            let group = self.transport.group();
            let mut send = |to: SocketAddr, group: bool| -> io::Result<()> {
                if !self.transport.send_to(frame, to)? {
                    self.drops.count("send_refused");
                    return Ok(());
                }
                let t = &mut self.traffic;
                t.frames_out += 1;
                t.bytes_out += frame.len() as u64;
                if group {
                    t.group_sends += 1;
                } else {
                    t.unicast_sends += 1;
                }
                Ok(())
            };
            match (t.dest, group) {
                (Dest::All, Some(group)) => send(group, true)?,
                (Dest::All, None) => {
                    for addr in self.peers.values() {
                        send(*addr, false)?;
                    }
                }
                (Dest::Node(id), _) => match self.peers.get(&id.0) {
                    Some(addr) => send(*addr, false)?,
                    None => self.drops.count("unknown_destination"),
                },
            }
            self.node.recycle(t.bytes);
        }
        self.transport.flush()
    }

    /// One turn: waits at most `max_wait` (less if a core timer is due) for datagrams or for
    /// one of `extra_fds` to become readable, feeds datagrams and due timers to the node, sends
    /// its transmits, then hands every event to `on_event` in delivery order. Returns the
    /// datagrams and events handled (0 when the turn found nothing to do).
    pub fn turn(
        &mut self,
        max_wait: Duration,
        extra_fds: &[RawFd],
        mut on_event: impl FnMut(&Event<'_>),
    ) -> io::Result<usize> {
        self.flush()?;
        let mut work = self.receive()?;
        if work == 0 {
            let now = self.now();
            let wait = match self.node.poll_timeout() {
                Some(t) => Duration::from_nanos(t.0.saturating_sub(now.0)).min(max_wait),
                None => max_wait,
            };
            if crate::poll::wait_readable(self.transport.wait_fd(), extra_fds, wait)? {
                work += self.receive()?;
            }
        }
        self.run_timers()?;
        while let Some(ev) = self.node.poll_event() {
            on_event(&ev);
            work += 1;
        }
        self.flush()?;
        Ok(work)
    }

    /// Runs the core's timers if one is due.
    pub fn run_timers(&mut self) -> io::Result<()> {
        let now = self.now();
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            let tokens = self.node.stats().tokens;
            self.node.handle_timeout(now);
            // A ring of one passes the token to itself on a timer, not over the wire.
            if self.node.stats().tokens != tokens {
                self.rotations.on_token(self.node.ring(), now.0);
            }
        }
        self.flush()
    }

    /// Takes every queued datagram (batch by batch) into the node; returns how many.
    pub fn receive(&mut self) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let Runner {
                node,
                transport,
                opener,
                peers,
                drops,
                start,
                traffic,
                rotations,
                digest_log,
                ..
            } = self;
            let n = transport.recv_batch(&mut |frame, from| {
                let now = Instant(start.elapsed().as_nanos() as u64);
                traffic.frames_in += 1;
                traffic.bytes_in += frame.len() as u64;
                match opener.open(frame) {
                    Ok(opened) => {
                        if peers.contains_key(&opened.sender) {
                            let tokens = node.stats().tokens;
                            node.handle_datagram(now, NodeId(opened.sender), opened.body);
                            if node.stats().tokens != tokens {
                                rotations.on_token(node.ring(), now.0);
                            }
                        } else {
                            drops.count("unconfigured_sender");
                        }
                    }
                    Err(e) => {
                        drops.count(e.reason());
                        if e == rotor_crypto::OpenError::InvalidDigest {
                            digest_log.on_invalid(now.0, from);
                        }
                    }
                }
            })?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
            self.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn keys(byte: u8) -> Keys {
        Keys::from_authkey_bytes(&[byte; 256], "rt").unwrap()
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let udp = crate::udp::UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut runner = Runner::new(
            RunnerConfig {
                node_id: 1,
                peers: vec![(2, "127.0.0.1:9".parse().unwrap())],
                keys: keys(7),
                cluster_name: "rt".into(),
                mode: CryptoMode::Gcm256,
                totem: TotemSettings::default(),
                epoch: 1,
                ring_seq_start: 0,
                seed: 1,
            },
            udp,
        )
        .unwrap();
        let to = runner.local_addr();
        let wire = UdpSocket::bind("127.0.0.1:0").unwrap();
        let cluster = totem_core::cluster_hash("rt");
        let mut frame = [0u8; 256];
        let body = [0u8; 40];
        // A peer with the right key, a stranger with the right key, a peer with a wrong key.
        let mut peer = Sealer::new(&keys(7), CryptoMode::Gcm256, cluster, 2, 1);
        let mut stranger = Sealer::new(&keys(7), CryptoMode::Gcm256, cluster, 7, 1);
        let mut forger = Sealer::new(&keys(8), CryptoMode::Gcm256, cluster, 2, 1);
        let n = peer.seal(&body, &mut frame).unwrap();
        wire.send_to(&frame[..n], to).unwrap();
        wire.send_to(&frame[..n], to).unwrap();
        let n = stranger.seal(&body, &mut frame).unwrap();
        wire.send_to(&frame[..n], to).unwrap();
        // Counter 0 of node 2 is taken: the forged frame uses counter 1 to reach the tag check.
        forger.seal(&body, &mut frame).unwrap();
        let n = forger.seal(&body, &mut frame).unwrap();
        wire.send_to(&frame[..n], to).unwrap();
        wire.send_to(b"RT", to).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while runner.drops().by_reason.values().sum::<u64>() < 4
            && std::time::Instant::now() < deadline
        {
            runner.turn(Duration::from_millis(20), &[], |_| {}).unwrap();
        }
        let d = runner.drops();
        assert_eq!(d.get("replay"), 1, "{d:?}");
        assert_eq!(d.get("unconfigured_sender"), 1, "{d:?}");
        assert_eq!(d.get("invalid_digest"), 1, "{d:?}");
        assert_eq!(d.get("truncated"), 1, "{d:?}");
        assert_eq!(runner.opener.counters().frames_opened, 2);
    }
}
