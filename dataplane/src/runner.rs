//! The poll loop driving one node over any [`Transport`]: the transport, a monotonic clock and a
//! rotor-endpoint `Endpoint` (the totem-core node, crypto, the peer table and the counters).
//! Each datagram the transport hands over goes to the endpoint with the time it arrived; the
//! endpoint's sealed frames go back to the transport with their addresses — `Dest::All` once to
//! the multicast group when the transport joined one, else to every configured peer — and its
//! diagnostics are logged at target "TOTEM".

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use rotor_crypto::{CryptoMode, Keys};
use rotor_endpoint::{
    Diagnostic, Endpoint, EndpointConfig, EndpointError, LinkConfig, LinkMode, LinkSettings,
    LinkStep, SendOutcome, Severity,
};
use rotor_proto::link::LinkStart;
use totem_core::config::frame_overhead_bytes;
use totem_core::{ClusterShape, Event, Instant, Node, RoundId, TotemSettings};

pub use rotor_endpoint::Drops;

use crate::stats::Sheet;
use crate::transport::Transport;

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
    /// The links; `None`: link 0 alone, with corosync's defaults for the token.
    pub links: Option<RunnerLinks>,
}

/// The links of a runner beyond its first transport.
pub struct RunnerLinks {
    /// Link 0's settings (its addresses: the transport's and `peers`).
    pub link0: LinkSettings,
    /// Every other link, in the order of the runner's other transports.
    pub more: Vec<LinkConfig<SocketAddr>>,
    pub mode: LinkMode,
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
    /// The nodelist given as peers is unusable (a duplicate id, our own id).
    Peers(rotor_endpoint::PeerError),
}

impl std::fmt::Display for RunnerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunnerError::Io(e) => write!(f, "socket: {e}"),
            RunnerError::Config(e) => write!(f, "config: {e}"),
            RunnerError::Peers(e) => write!(f, "config: nodelist: {e}"),
        }
    }
}

impl std::error::Error for RunnerError {}

impl From<EndpointError> for RunnerError {
    fn from(e: EndpointError) -> RunnerError {
        match e {
            EndpointError::Totem(e) => RunnerError::Config(e),
            EndpointError::Peers(e) => RunnerError::Peers(e),
        }
    }
}

/// Logs one diagnostic of the endpoint at target "TOTEM" (the protocol's subsystem, as
/// corosync tags these lines), at its severity.
fn log(d: &Diagnostic<SocketAddr>) {
    if let Diagnostic::Link(e) = d {
        // knet's lines, under knet's tag, as corosync logs them.
        rotor_log::notice!(target: "KNET", "{e}");
        return;
    }
    match d.severity() {
        Severity::Error => tracing::error!(target: "TOTEM", "{d}"),
        Severity::Warning => tracing::warn!(target: "TOTEM", "{d}"),
        Severity::Notice => rotor_log::notice!(target: "TOTEM", "{d}"),
        Severity::Debug => tracing::debug!(target: "TOTEM", "{d}"),
    }
}

/// What a failed send says about its link: the kernel refusing it for the link itself (its
/// interface down, no route to the peer on it, the source address gone, the peer's neighbour
/// entry failed) takes that link to that peer down at once; a firewall's refusal or an earlier
/// datagram's port-unreachable says nothing about the link (the datagram is lost, counted, and
/// totem retransmits). `None`: the socket itself failed.
fn send_failure(e: &io::Error) -> Option<SendOutcome> {
    use io::ErrorKind as K;
    match e.kind() {
        K::NetworkUnreachable | K::HostUnreachable | K::NetworkDown | K::AddrNotAvailable => {
            Some(SendOutcome::LinkUnusable)
        }
        K::PermissionDenied | K::ConnectionRefused => Some(SendOutcome::Refused),
        _ => None,
    }
}

/// Opens the transport of a link a reload adds (`Runner::set_link_opener`): the link as the
/// answer carries it (settings, this node's address, the transport rotord chose) and, on XDP,
/// the maps of the program rotord attached for it; the error says why not, for the round's
/// refusal.
pub type LinkOpener<T> =
    Box<dyn FnMut(&LinkStart, Option<xdp_prog::SteerMaps>) -> Result<T, String>>;

pub struct Runner<T: Transport> {
    endpoint: Endpoint<SocketAddr>,
    /// Link 0's transport.
    transport: T,
    /// The other links' transports, by link position less one. Invariant: as many as the
    /// endpoint has links less one, in the same order (`sync_links` keeps them so).
    more: Vec<T>,
    /// How links a reload adds are opened; `None`: a reload that adds one is refused.
    link_opener: Option<LinkOpener<T>>,
    /// The transports this node opened for the links its answers add: (round, link number,
    /// transport), taken in when the round applies, closed once it is not waiting any more.
    opened: Vec<(RoundId, u8, T)>,
    start: std::time::Instant,
    /// The cluster name keys are bound to (a rotated key is read for it).
    cluster_name: String,
    /// The node's token count when the last turn started (see `token_passed`).
    tokens_at_turn_start: u64,
    /// The last turn's wait, if it waited (see `woke_on`).
    waited: crate::poll::PollSet,
}

impl<T: Transport> Runner<T> {
    /// A runner of one link.
    pub fn new(cfg: RunnerConfig, transport: T) -> Result<Runner<T>, RunnerError> {
        Runner::with_links(cfg, transport, Vec::new())
    }

    /// A runner of link 0 on `transport` and one link on each of `more` (the order of
    /// `cfg.more_links`).
    pub fn with_links(
        cfg: RunnerConfig,
        transport: T,
        more: Vec<T>,
    ) -> Result<Runner<T>, RunnerError> {
        let links = cfg.links.unwrap_or_else(|| RunnerLinks {
            link0: rotor_endpoint::link::default_link0(&cfg.totem),
            more: Vec::new(),
            mode: LinkMode::Passive,
        });
        assert_eq!(more.len(), links.more.len());
        let start = std::time::Instant::now();
        let cluster_name = cfg.cluster_name.clone();
        let shape = cluster_shape(cfg.peers.len(), transport.local_addr().is_ipv6(), cfg.mode);
        let endpoint = Endpoint::new(
            EndpointConfig {
                node_id: cfg.node_id,
                local: transport.local_addr(),
                peers: cfg.peers,
                group: transport.group(),
                keys: cfg.keys,
                cluster_name: cfg.cluster_name,
                mode: cfg.mode,
                totem: cfg.totem,
                frame_overhead_bytes: shape.frame_overhead_bytes,
                epoch: cfg.epoch,
                ring_seq_start: cfg.ring_seq_start,
                seed: cfg.seed,
                link0: links.link0,
                more_links: links.more,
                link_mode: links.mode,
                link_probes: true,
            },
            Instant(0),
        )?;
        Ok(Runner {
            endpoint,
            transport,
            more,
            link_opener: None,
            opened: Vec::new(),
            start,
            cluster_name,
            tokens_at_turn_start: 0,
            waited: crate::poll::PollSet::default(),
        })
    }

    /// How this runner opens the transport of a link a reload adds.
    pub fn set_link_opener(&mut self, opener: LinkOpener<T>) {
        self.link_opener = Some(opener);
    }

    /// Opens the transports of the links in `links` this runner does not run yet, for this
    /// node's answer to `round`. They are open before the round applies, so what peers send
    /// on a new link once they applied it waits in the socket, and a link that cannot open
    /// here makes this node refuse the round (the error names the link and why) rather than
    /// run without it.
    /// `maps`: the XDP program maps of the added links rotord attached a program for; a map
    /// for a link this runner runs already, or that the answer does not add, is an error.
    pub fn open_links(
        &mut self,
        round: RoundId,
        links: &[LinkStart],
        mut maps: Vec<(u8, xdp_prog::SteerMaps)>,
    ) -> Result<(), String> {
        let running: Vec<u8> = self.endpoint.links().settings().map(|s| s.number).collect();
        let mut opened = Vec::new();
        for link in links
            .iter()
            .filter(|l| !running.contains(&l.settings.number))
        {
            let n = link.settings.number;
            let Some(open) = self.link_opener.as_mut() else {
                return Err(format!(
                    "link {n}: this dataplane cannot open links while it runs (started by \
                     hand); restart it with the link"
                ));
            };
            let of_link = maps
                .iter()
                .position(|(m, _)| *m == n)
                .map(|i| maps.swap_remove(i).1);
            let t = open(link, of_link).map_err(|e| format!("link {n} on {}: {e}", link.local))?;
            opened.push((round, n, t));
        }
        if let Some((n, _)) = maps.first() {
            return Err(format!(
                "link {n}: XDP maps came for a link this answer does not add"
            ));
        }
        self.opened.extend(opened);
        Ok(())
    }

    /// Takes an applied round's links into effect on the endpoint and the transports at once
    /// (`Endpoint::take_link_change`: removed links' transports close, added links' open
    /// ones join at their positions), and closes links opened for a round no longer waiting.
    /// Called between datagrams only (from `flush`), so a link position names the same
    /// transport on both sides at all times.
    fn sync_links(&mut self) {
        for step in self.endpoint.take_link_change() {
            match step {
                LinkStep::Removed { number, position } => {
                    assert!(position >= 1, "link 0 stays");
                    drop(self.more.remove(position - 1));
                    rotor_log::notice!(target: "TOTEM", "link {number} removed by the reload");
                }
                LinkStep::Added { number, position } => {
                    let i = self.opened.iter().rposition(|(_, n, _)| *n == number);
                    let (_, _, t) = self.opened.swap_remove(
                        i.expect("the answer that adds a link opened its transport first"),
                    );
                    let local = t.local_addr();
                    self.more.push(t);
                    assert_eq!(position, self.more.len(), "added links go last");
                    rotor_log::notice!(
                        target: "TOTEM",
                        "link {number} on {local} added by the reload"
                    );
                }
            }
        }
        let waiting = self.endpoint.pending_round();
        self.opened.retain(|(r, _, _)| Some(*r) == waiting);
    }

    /// Monotonic time since the runner started, as the core's nanoseconds.
    pub fn now(&self) -> Instant {
        Instant(self.start.elapsed().as_nanos() as u64)
    }

    pub fn node(&self) -> &Node {
        self.endpoint.node()
    }

    pub fn node_mut(&mut self) -> &mut Node {
        self.endpoint.node_mut()
    }

    pub fn endpoint(&self) -> &Endpoint<SocketAddr> {
        &self.endpoint
    }

    /// The endpoint, for runtime changes.
    pub fn endpoint_mut(&mut self) -> &mut Endpoint<SocketAddr> {
        &mut self.endpoint
    }

    /// The cluster name the keys are bound to.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    pub fn drops(&self) -> &Drops {
        self.endpoint.drops()
    }

    /// Every counter of the runner, its transports, crypto and the core, as published to
    /// rotord (`stats.<key>`): `net.*`, `crypto.*`, `srp.*` and each link's provider's own —
    /// link 0's as `udp.*` or `xdp.*`, link N's with `link<N>.` after the provider's name
    /// (`xdp.link1.prog.redirected`, rotor-proto's `xdp::for_link`).
    pub fn counters(&self, out: &mut Sheet) {
        self.endpoint.counters(out);
        self.transport.counters(out);
        // `more` runs the endpoint's links after link 0, in its order (`sync_links`).
        let numbers = self.endpoint.links().settings().skip(1).map(|s| s.number);
        for (t, number) in self.more.iter().zip(numbers) {
            out.in_link(number, |out| t.counters(out));
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// Link 0's transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Every link's transport, link 0 first.
    pub fn transports(&self) -> impl Iterator<Item = &T> {
        std::iter::once(&self.transport).chain(&self.more)
    }

    /// Seals and sends everything the node has queued, each datagram on the link the endpoint
    /// chose, and logs what the endpoint has to say.
    pub fn flush(&mut self) -> io::Result<()> {
        self.sync_links();
        let Runner {
            endpoint,
            transport,
            more,
            ..
        } = self;
        endpoint.flush_links(|frame, link, to| {
            let sent = match link {
                0 => transport.send_to(frame, to),
                n => more[n - 1].send_to(frame, to),
            };
            match sent {
                Ok(true) => Ok(SendOutcome::Sent),
                Ok(false) => Ok(SendOutcome::Refused),
                Err(e) => send_failure(&e).ok_or(e),
            }
        })?;
        while let Some(d) = self.endpoint.poll_diagnostic() {
            log(&d);
        }
        self.transport.flush()?;
        for t in &mut self.more {
            t.flush()?;
        }
        Ok(())
    }

    /// One turn: waits at most `max_wait` (less if a core timer is due) for datagrams or for
    /// one of `extra_fds` to become readable, feeds datagrams and due timers to the node, sends
    /// its transmits, then hands every event to `on_event` in delivery order. Returns the
    /// datagrams and events handled (0 when the turn found nothing to do).
    pub fn turn(
        &mut self,
        max_wait: Duration,
        extra_fds: &[RawFd],
        on_event: impl FnMut(&Event<'_>),
    ) -> io::Result<usize> {
        let work = self.turn_start(max_wait, extra_fds)?;
        Ok(work + self.turn_end(on_event)?)
    }

    /// A turn's first half: sends what is queued, takes the queued datagrams, and when there
    /// were none waits as [`Runner::turn`] does, without taking what woke it. A caller with
    /// its own inputs (the service's clients) reads them before [`Runner::turn_end`]: a
    /// request and the token that wake one sleep then meet on this visit of the token, not
    /// the next. Returns the datagrams handled.
    pub fn turn_start(&mut self, max_wait: Duration, extra_fds: &[RawFd]) -> io::Result<usize> {
        self.tokens_at_turn_start = self.endpoint.node().stats().tokens;
        self.waited.clear();
        self.flush()?;
        let work = self.receive()?;
        if work == 0 {
            let now = self.now();
            let wait = match self.endpoint.poll_timeout() {
                Some(t) => Duration::from_nanos(t.0.saturating_sub(now.0)).min(max_wait),
                None => max_wait,
            };
            let fds = std::iter::once(self.transport.wait_fd())
                .chain(self.more.iter().map(|t| t.wait_fd()))
                .chain(extra_fds.iter().copied());
            self.waited.wait(fds, wait)?;
        }
        Ok(work)
    }

    /// A turn's second half: takes the queued datagrams, runs due timers, sends the
    /// transmits, then hands every event to `on_event` in delivery order. Returns the
    /// datagrams and events handled.
    pub fn turn_end(&mut self, mut on_event: impl FnMut(&Event<'_>)) -> io::Result<usize> {
        let mut work = self.receive()?;
        self.run_timers()?;
        while let Some(ev) = self.endpoint.poll_event() {
            on_event(&ev);
            work += 1;
        }
        self.flush()?;
        Ok(work)
    }

    /// Whether the last turn waited and `fd` (one of its `extra_fds`) was readable when the wait
    /// ended: a caller with its own descriptors reads only those that are, not each of them on
    /// every turn.
    pub fn woke_on(&self, fd: RawFd) -> bool {
        self.waited.ready(fd)
    }

    /// Whether the node took the token during the last turn (it has passed it on, or holds it
    /// while the ring is idle): the token is not back before a rotation, so work that is not a
    /// hop's (`maintain`, the stats) delays no hop then.
    pub fn token_passed(&self) -> bool {
        self.endpoint.node().stats().tokens != self.tokens_at_turn_start
    }

    /// Every link's transport's periodic upkeep ([`Transport::maintain`]).
    pub fn maintain(&mut self) {
        self.transport.maintain();
        for t in &mut self.more {
            t.maintain();
        }
    }

    /// Runs the core's timers if one is due.
    pub fn run_timers(&mut self) -> io::Result<()> {
        let now = self.now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        self.flush()
    }

    /// Takes every queued datagram (batch by batch) into the node; returns how many.
    pub fn receive(&mut self) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let Runner {
                endpoint,
                transport,
                more,
                start,
                ..
            } = self;
            let mut n = 0;
            for (link, t) in std::iter::once(transport)
                .chain(more.iter_mut())
                .enumerate()
            {
                n += t.recv_batch(&mut |frame, from| {
                    let now = Instant(start.elapsed().as_nanos() as u64);
                    endpoint.handle_datagram_on(now, link, from, frame);
                })?;
            }
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
    use rotor_crypto::Sealer;
    use std::net::UdpSocket;

    fn keys(byte: u8) -> Keys {
        Keys::from_authkey_bytes(&[byte; 256], "rt").unwrap()
    }

    /// Node 1 of cluster "rt" on a loopback UDP socket, with key 7.
    fn udp_runner(
        peers: Vec<(u32, SocketAddr)>,
        totem: TotemSettings,
    ) -> Runner<crate::transport::udp::UdpTransport> {
        let udp =
            crate::transport::udp::UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let config = RunnerConfig {
            node_id: 1,
            peers,
            keys: keys(7),
            cluster_name: "rt".into(),
            mode: CryptoMode::Gcm256,
            totem,
            epoch: 1,
            ring_seq_start: 0,
            seed: 1,
            links: None,
        };
        Runner::new(config, udp).unwrap()
    }

    /// What wakes a turn's wait is left to [`Runner::turn_end`]: the service reads its
    /// clients in between, so a request and the token that come during one sleep meet on this
    /// visit of the token. Checked with a datagram sent while the runner waits (an attempt in
    /// which it came too early, or a core timer ended the wait first, is made again).
    #[test]
    fn a_turn_start_leaves_what_came_during_its_wait_to_turn_end() {
        let totem = TotemSettings::resolve(
            totem_core::config::explicit(&[("token", 200)]),
            &totem_core::ClusterShape::ALONE,
        )
        .unwrap();
        let mut runner = udp_runner(Vec::new(), totem);
        let to = runner.local_addr();
        let truncated = |r: &Runner<_>| r.drops().get("truncated");
        for _ in 0..50 {
            let before = truncated(&runner);
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                let wire = UdpSocket::bind("127.0.0.1:0").unwrap();
                wire.send_to(b"RT", to).unwrap();
            });
            let work = runner.turn_start(Duration::from_secs(10), &[]).unwrap();
            // Whether the datagram had come when the wait ended.
            let mut p = libc::pollfd {
                fd: runner.transport.wait_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd of ours, no wait.
            let came = unsafe { libc::poll(&mut p, 1, 0) } == 1;
            sender.join().unwrap();
            if work > 0 || !came {
                // Taken before the wait, or the wait ended before it came: again.
                runner.turn_end(|_| {}).unwrap();
                while truncated(&runner) == before {
                    runner.turn(Duration::from_millis(20), &[], |_| {}).unwrap();
                }
                continue;
            }
            assert_eq!(truncated(&runner), before, "turn_start took what woke it");
            runner.turn_end(|_| {}).unwrap();
            assert_eq!(truncated(&runner), before + 1, "turn_end did not take it");
            return;
        }
        panic!(
            "in 50 attempts turn_start never left the datagram to turn_end: it took it itself, \
             or the datagram never came during its wait"
        );
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let mut runner = udp_runner(
            vec![(2, "127.0.0.1:9".parse().unwrap())],
            TotemSettings::default(),
        );
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
        // Counter 0 of node 2 is taken: the forged frame uses counter 1 to reach the key check.
        forger.seal(&body, &mut frame).unwrap();
        let n = forger.seal(&body, &mut frame).unwrap();
        wire.send_to(&frame[..n], to).unwrap();
        wire.send_to(b"RT", to).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while runner.drops().by_key().map(|(_, n)| n).sum::<u64>() < 4
            && std::time::Instant::now() < deadline
        {
            runner.turn(Duration::from_millis(20), &[], |_| {}).unwrap();
        }
        let d = runner.drops();
        assert_eq!(d.get("replay"), 1, "{d:?}");
        assert_eq!(d.get("unconfigured_sender"), 1, "{d:?}");
        assert_eq!(d.get("unknown_key"), 1, "another key: {d:?}");
        assert_eq!(d.get("truncated"), 1, "{d:?}");
        assert_eq!(runner.endpoint().crypto_counters().0.frames_opened, 2);
    }
}
