//! The poll loop driving one totem-core `Node` over the kernel-UDP provider: datagrams are
//! opened with rotor-crypto and fed to the node under the sender id the frame authenticated;
//! the node's transmits are sealed and unicast to each destination's configured address.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rotor_crypto::{CryptoMode, Keys, Opener, Sealer};
use totem_core::{Dest, Event, Instant, Node, NodeConfig, NodeId, TotemConfig};

use crate::udp::UdpTransport;

/// Largest datagram handled (a UDP payload).
const DATAGRAM_MAX: usize = 65_536;

/// Everything the runner needs.
pub struct RunnerConfig {
    pub node_id: u32,
    pub bind: SocketAddr,
    /// Every other configured node.
    pub peers: Vec<(u32, SocketAddr)>,
    pub keys: Keys,
    pub cluster_name: String,
    pub mode: CryptoMode,
    pub totem: TotemConfig,
    /// Per-boot epoch: must grow on every restart (used as totem incarnation and crypto epoch).
    pub epoch: u32,
    pub seed: u64,
}

/// Why the runner could not start.
#[derive(Debug)]
pub enum RunnerError {
    Io(io::Error),
    Config(totem_core::ConfigError),
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
}

pub struct Runner {
    node: Node,
    udp: UdpTransport,
    sealer: Sealer,
    opener: Opener,
    peers: HashMap<u32, SocketAddr>,
    start: std::time::Instant,
    rx: Vec<u8>,
    tx: Vec<u8>,
    drops: Drops,
}

impl Runner {
    pub fn new(cfg: RunnerConfig) -> Result<Runner, RunnerError> {
        let start = std::time::Instant::now();
        let cluster = totem_core::cluster_hash(&cfg.cluster_name);
        let mut totem = cfg.totem;
        // The transport payload minus the crypto header and tag.
        totem.frame_size = totem.frame_size.min(DATAGRAM_MAX - cfg.mode.overhead());
        totem.nodelist_count = (cfg.peers.len() + 1) as u32;
        let node = Node::new(
            NodeConfig {
                totem,
                node_id: NodeId(cfg.node_id),
                cluster,
                incarnation: cfg.epoch,
                ring_seq_start: 0,
                seed: cfg.seed,
            },
            Instant(0),
        )
        .map_err(RunnerError::Config)?;
        let udp = UdpTransport::bind(cfg.bind).map_err(RunnerError::Io)?;
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
            udp,
            sealer,
            opener,
            peers: cfg.peers.into_iter().collect(),
            start,
            rx: vec![0; DATAGRAM_MAX],
            tx: vec![0; DATAGRAM_MAX],
            drops: Drops::default(),
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

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
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
            match t.dest {
                Dest::All => {
                    for addr in self.peers.values() {
                        if !self.udp.send_to(&self.tx[..n], *addr)? {
                            self.drops.count("send_would_block");
                        }
                    }
                }
                Dest::Node(id) => match self.peers.get(&id.0) {
                    Some(addr) => {
                        if !self.udp.send_to(&self.tx[..n], *addr)? {
                            self.drops.count("send_would_block");
                        }
                    }
                    None => self.drops.count("unknown_destination"),
                },
            }
            self.node.recycle(t.bytes);
        }
        Ok(())
    }

    /// One turn: waits at most `max_wait` (less if a core timer is due) for datagrams, feeds
    /// them and due timers to the node, sends its transmits, then hands every event to
    /// `on_event` in delivery order.
    pub fn turn(
        &mut self,
        max_wait: Duration,
        mut on_event: impl FnMut(&Event<'_>),
    ) -> io::Result<()> {
        self.flush()?;
        let now = self.now();
        let wait = match self.node.poll_timeout() {
            Some(t) => Duration::from_nanos(t.0.saturating_sub(now.0)).min(max_wait),
            None => max_wait,
        };
        if self.udp.wait_readable(wait)? {
            while let Some((len, _from)) = self.udp.recv(&mut self.rx)? {
                let now = self.now();
                match self.opener.open(&mut self.rx[..len]) {
                    Ok(opened) => {
                        if self.peers.contains_key(&opened.sender) {
                            self.node
                                .handle_datagram(now, NodeId(opened.sender), opened.body);
                        } else {
                            self.drops.count("unconfigured_sender");
                        }
                    }
                    Err(e) => self.drops.count(e.reason()),
                }
                self.flush()?;
            }
        }
        let now = self.now();
        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        self.flush()?;
        while let Some(ev) = self.node.poll_event() {
            on_event(&ev);
        }
        self.flush()
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
        let mut runner = Runner::new(RunnerConfig {
            node_id: 1,
            bind: "127.0.0.1:0".parse().unwrap(),
            peers: vec![(2, "127.0.0.1:9".parse().unwrap())],
            keys: keys(7),
            cluster_name: "rt".into(),
            mode: CryptoMode::Gcm256,
            totem: TotemConfig::default(),
            epoch: 1,
            seed: 1,
        })
        .unwrap();
        let to = runner.local_addr().unwrap();
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
            runner.turn(Duration::from_millis(20), |_| {}).unwrap();
        }
        let d = runner.drops();
        assert_eq!(d.get("replay"), 1, "{d:?}");
        assert_eq!(d.get("unconfigured_sender"), 1, "{d:?}");
        assert_eq!(d.get("invalid_digest"), 1, "{d:?}");
        assert_eq!(d.get("truncated"), 1, "{d:?}");
        assert_eq!(runner.opener.counters().frames_opened, 2);
    }
}
