//! Links: every node may reach each peer over up to `LINK_COUNT_MAX` links (corosync's
//! `ringN_addr` with knet). Per peer and link this module keeps what knet keeps — up or down,
//! decided from pings and their answers (pongs), the latency, the packets and bytes — and
//! picks, per frame, which links carry it to a peer as `totem.link_mode` says: passive (the up
//! link of the highest priority), active (every up link; the receiver's replay window drops
//! the later copies) or rr (the up links in turn). A peer with no link up gets every frame on
//! every link it has an address on: at start, before the first pongs, and when all its links
//! are down (then the ring will notice, as it should).
//!
//! Health, knet's rules: every `knet_ping_interval` a ping goes to each peer on each link
//! (whatever its state: that is how a down link comes back); a pong measures the round trip on
//! the prober's own clock; a link is up after `knet_pong_count` pongs in a row and down once no
//! pong came for its timeout in effect (checked at exactly that instant, see `poll_timeout`);
//! the latency average is taken over the last `knet_ping_precision` samples.
//!
//! The timeout in effect is knet's adjusted pong timeout: `knet_ping_timeout` × a backoff, plus
//! twice the latency average (`threads_heartbeat.c`). The backoff is 1 until the link first goes
//! down; each down sets it to [`TIMEOUT_BACKOFF_MAX`], and it falls by one a second back to 1.
//! So a link is taken down at the configured timeout the first time, but one that has just
//! flapped — a 5 ms timeout (`token: 10`) against a scheduling stall of a loaded machine —
//! needs up to ten times as long a silence to go down again, for the next ten seconds. knet
//! also starts every link at the full backoff; here a link that never went down has none, so
//! the first real failure is seen at the configured timeout (the one corosync documents).
//! A send the kernel refuses for the link itself (its interface down, no route, the address
//! gone: [`Links::handle_send_refused`]) takes that link to that peer down at once, without
//! waiting for the timeout, so passive mode moves to the next link with the frame that failed.
//! Up/down lines are rate-limited per peer and link ([`EVENTS_PER_WINDOW`] per
//! [`EVENT_WINDOW_NS`]); at the end of a window with changes left out, one line gives the
//! link's state and how many were left out.
//!
//! A ping is its own frame body inside the same seal as the protocol's frames (authenticated,
//! replay-checked), told apart by its magic: `RL` where the protocol's frames say `TT`.
//!
//! ```text
//! 0      2    3      4      5     8          12                    20
//! | "RL" | v2 | kind | link | 0 0 0 | seq (BE) | sent_ns (BE, the prober's clock) |
//! ```
//!
//! The answer echoes `link`, `seq` and `sent_ns`, so only the prober's clock is read; an answer
//! that arrives on another link than it names is not counted (a cross-wired network). A node
//! without pings reads one as a frame of unknown magic and drops it (counted).
//!
//! Sans-IO like the rest of the endpoint: time comes in as `now_ns`, pings go out through the
//! endpoint's `flush`, and state changes come out as [`LinkEvent`]s for the embedding to log.

pub use rotor_proto::link::{
    LinkMode, LinkSettings, LINK_COUNT_MAX, TIMEOUT_BACKOFF_MAX, TIMEOUT_BACKOFF_STEP_NS,
};

/// The magic of a ping body (the protocol's frames start with `TT`).
pub const MAGIC: [u8; 2] = *b"RL";
/// The ping layout's version: 2 names the link.
pub const VERSION: u8 = 2;
/// A ping body's size.
pub const PROBE_BYTES: usize = 20;
const KIND_PING: u8 = 1;
const KIND_PONG: u8 = 2;
/// Pongs waiting to be sent (one per ping received; more are dropped: the prober counts a
/// missed pong, nothing else depends on it).
const ANSWERS_MAX: usize = 256;
/// Link events waiting to be polled; more are dropped (an event is a log line; the state and
/// the up/down counts stay right).
const EVENTS_MAX: usize = 256;
/// The latency average counts this many times in the timeout in effect (knet's
/// `KNET_LINK_PONG_TIMEOUT_LAT_MUL`): a slow link is not declared down for being slow.
pub const TIMEOUT_LATENCY_FACTOR: u64 = 2;
/// Up/down events logged per peer and link in one window; later ones in it are counted.
pub const EVENTS_PER_WINDOW: u32 = 4;
/// The rate-limit window of the up/down events.
pub const EVENT_WINDOW_NS: u64 = 10_000_000_000;

/// What a datagram that failed to go out carried: knet counts each kind's errors apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxKind {
    Data,
    Ping,
    Pong,
}

impl TxKind {
    /// The kind of a ping body `drain` gave.
    pub fn of_probe(body: &[u8; PROBE_BYTES]) -> TxKind {
        if body[3] == KIND_PONG {
            TxKind::Pong
        } else {
            TxKind::Ping
        }
    }
}

/// A peer's link going up or down, for the log: corosync's (knet's) "link: host: N link: L is
/// down" / "is up".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    pub node: u32,
    pub link: u8,
    pub up: bool,
    /// Changes of this link before this one that the rate limit left out of the log.
    pub unlogged: u32,
}

impl std::fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.up { "up" } else { "down" };
        write!(
            f,
            "link: host: {} link: {} is {state}",
            self.node, self.link
        )?;
        if self.unlogged > 0 {
            write!(
                f,
                " ({} earlier up/down changes of this link were not logged: at most {} every \
                 {} s)",
                self.unlogged,
                EVENTS_PER_WINDOW,
                EVENT_WINDOW_NS / 1_000_000_000
            )?;
        }
        Ok(())
    }
}

/// Link 0 with every setting at corosync's default for `totem`'s token: a cluster of one
/// link that sets nothing (the simulator, a dataplane started by hand).
pub fn default_link0(totem: &totem_core::TotemSettings) -> LinkSettings {
    LinkSettings::resolve(0, totem.token_ms, None, None, None, None, None)
        .expect("the defaults keep the interval within the timeout")
}

/// What this node knows of one link to one peer (knet's `knet_link_status` and stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkHealth {
    pub connected: bool,
    /// Pongs in a row since the link was last down (or since start).
    pub pongs_in_row: u32,
    /// When the last pong came (`None`: none yet).
    pub last_pong_ns: Option<u64>,
    /// The sequence number of the newest ping answered (0: none yet).
    pub answered_seq: u32,
    /// Average round trip over the last `ping_precision` samples.
    pub latency_ave_ns: u64,
    pub latency_min_ns: u64,
    pub latency_max_ns: u64,
    pub latency_samples: u32,
    pub up_count: u64,
    pub down_count: u64,
    /// The timeout multiplier in effect, less one (0: none; see the module's doc).
    pub timeout_backoff: u32,
    /// When the backoff next falls by one (meaningful while it is above 0).
    pub backoff_step_ns: u64,
    /// Sends the kernel refused for this link (interface down, no route, address gone), by
    /// kind: knet's `tx_data_errors`, `tx_ping_errors`, `tx_pong_errors`.
    pub tx_data_errors: u64,
    pub tx_ping_errors: u64,
    pub tx_pong_errors: u64,
    pub tx_data_packets: u64,
    pub tx_data_bytes: u64,
    pub rx_data_packets: u64,
    pub rx_data_bytes: u64,
    pub tx_ping_packets: u64,
    pub rx_ping_packets: u64,
    pub tx_pong_packets: u64,
    pub rx_pong_packets: u64,
}

/// One link of one peer: its address there (`None`: not known on this link — a node a reload
/// added knows only its link 0 address) and its health.
#[derive(Clone, Debug)]
pub struct PeerLink<A> {
    pub addr: Option<A>,
    pub health: LinkHealth,
    log: LogLimit,
}

impl<A> PeerLink<A> {
    fn new(addr: Option<A>) -> PeerLink<A> {
        PeerLink {
            addr,
            health: LinkHealth::default(),
            log: LogLimit::default(),
        }
    }
}

/// The rate limit of one peer link's up/down events.
#[derive(Clone, Copy, Debug, Default)]
struct LogLimit {
    window_start_ns: u64,
    logged: u32,
    /// Changes in this window not logged. Invariant: 0 unless `logged == EVENTS_PER_WINDOW`.
    unlogged: u32,
}

impl LogLimit {
    fn window_end_ns(&self) -> u64 {
        self.window_start_ns + EVENT_WINDOW_NS
    }

    /// Queues the event of a change at `now_ns` if the window has room, else counts it.
    fn note(
        &mut self,
        events: &mut std::collections::VecDeque<LinkEvent>,
        now_ns: u64,
        e: LinkEvent,
    ) {
        if now_ns >= self.window_end_ns() {
            self.window_start_ns = now_ns;
            self.logged = 0;
        }
        if self.logged < EVENTS_PER_WINDOW {
            self.logged += 1;
            push_event(
                events,
                LinkEvent {
                    unlogged: std::mem::take(&mut self.unlogged),
                    ..e
                },
            );
        } else {
            self.unlogged += 1;
        }
    }

    /// At the end of a window that left changes out, the link's state as it is now (so the
    /// log's last word on a link is never stale).
    fn flush(
        &mut self,
        events: &mut std::collections::VecDeque<LinkEvent>,
        now_ns: u64,
        e: LinkEvent,
    ) {
        if self.unlogged > 0 && now_ns >= self.window_end_ns() {
            self.note(events, now_ns, e);
        }
    }
}

/// The timeout in effect of a link with `settings` and `health` (see the module's doc).
fn timeout_ns(settings: &LinkSettings, h: &LinkHealth) -> u64 {
    ms_to_ns(settings.ping_timeout_ms) * u64::from(1 + h.timeout_backoff)
        + TIMEOUT_LATENCY_FACTOR * h.latency_ave_ns
}

/// Takes a link down at `now_ns`: counted, pongs in a row start over, the backoff at its
/// highest; returns the event to log.
fn take_down(h: &mut LinkHealth, now_ns: u64) {
    h.connected = false;
    h.down_count += 1;
    h.pongs_in_row = 0;
    h.timeout_backoff = TIMEOUT_BACKOFF_MAX - 1;
    h.backoff_step_ns = now_ns + TIMEOUT_BACKOFF_STEP_NS;
}

/// One peer's links, by link position (the order of [`Links::settings`]).
#[derive(Clone, Debug)]
pub struct PeerLinks<A> {
    pub node: u32,
    pub links: Vec<PeerLink<A>>,
    /// The next link position rr tries.
    rr_next: usize,
}

/// One of this node's links.
#[derive(Clone, Debug)]
struct Local<A> {
    settings: LinkSettings,
    addr: A,
    /// The sequence number of the last round of pings on this link (1 for the first).
    seq: u32,
    /// `None`: pings are off.
    next_round_ns: Option<u64>,
}

/// The links of one endpoint: this node's, and every peer's on each.
#[derive(Debug)]
pub struct Links<A> {
    mode: LinkMode,
    locals: Vec<Local<A>>,
    /// Sorted by node id.
    peers: Vec<PeerLinks<A>>,
    /// Ping and pong bodies to seal and send: (peer node id, link position, body).
    outbox: Vec<(u32, usize, [u8; PROBE_BYTES])>,
    events: std::collections::VecDeque<LinkEvent>,
    /// Whether pings are on (`Links::new`'s `probes`).
    probes: bool,
    /// Peers a link of which went down on its timeout since `take_timed_out` (each once).
    /// Invariant: at most the peer count.
    timed_out: Vec<u32>,
}

/// Why a link cannot be added or removed while running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkChangeError {
    #[error("link {0} is already configured")]
    Present(u8),
    #[error("link {0} is not configured")]
    Absent(u8),
    #[error("link 0 carries the nodelist's addresses and cannot be removed while running")]
    LinkZero,
    #[error("a node has at most {LINK_COUNT_MAX} links")]
    Full,
}

/// One of this node's links as configured: its settings, this node's address on it, and each
/// peer's (a peer missing here is unknown on this link).
#[derive(Clone, Debug)]
pub struct LinkConfig<A> {
    pub settings: LinkSettings,
    pub local: A,
    pub peers: Vec<(u32, A)>,
}

impl From<&rotor_proto::link::LinkStart> for LinkConfig<std::net::SocketAddr> {
    /// A link as rotord resolved it (`Start`, a change round's answer).
    fn from(l: &rotor_proto::link::LinkStart) -> Self {
        LinkConfig {
            settings: l.settings,
            local: l.local,
            peers: l.peers.clone(),
        }
    }
}

impl<A: Copy + PartialEq> Links<A> {
    /// The links of `configs` (link 0 first) for the peers `nodes`; with `probes`, the first
    /// pings of each link go at `first_round_ns` (callers spread it with the node's seed, so
    /// nodes started together do not ping in step), else never — and then no link is ever up,
    /// so every frame goes on every link (the simulator's one link).
    pub fn new(
        mode: LinkMode,
        configs: Vec<LinkConfig<A>>,
        nodes: impl Iterator<Item = u32>,
        probes: bool,
        first_round_ns: u64,
    ) -> Links<A> {
        assert!(!configs.is_empty() && configs.len() <= LINK_COUNT_MAX);
        let mut peers: Vec<PeerLinks<A>> = nodes
            .map(|node| PeerLinks {
                node,
                links: configs
                    .iter()
                    .map(|c| {
                        PeerLink::new(c.peers.iter().find(|(id, _)| *id == node).map(|(_, a)| *a))
                    })
                    .collect(),
                rr_next: 0,
            })
            .collect();
        peers.sort_by_key(|p| p.node);
        let locals = configs
            .iter()
            .map(|c| Local {
                settings: c.settings,
                addr: c.local,
                seq: 0,
                next_round_ns: (probes && !peers.is_empty()).then_some(first_round_ns),
            })
            .collect();
        Links {
            mode,
            outbox: Vec::with_capacity(peers.len() * configs.len() + ANSWERS_MAX),
            timed_out: Vec::with_capacity(peers.len()),
            probes,
            locals,
            peers,
            events: std::collections::VecDeque::new(),
        }
    }

    pub fn mode(&self) -> LinkMode {
        self.mode
    }

    /// How many links this node has.
    pub fn count(&self) -> usize {
        self.locals.len()
    }

    /// Every link's settings, by position (link 0 first).
    pub fn settings(&self) -> impl Iterator<Item = &LinkSettings> {
        self.locals.iter().map(|l| &l.settings)
    }

    /// This node's address on the link at `position`.
    pub fn local(&self, position: usize) -> Option<A> {
        self.locals.get(position).map(|l| l.addr)
    }

    pub fn peers(&self) -> &[PeerLinks<A>] {
        &self.peers
    }

    pub fn peer(&self, node: u32) -> Option<&PeerLinks<A>> {
        let at = self.peers.binary_search_by_key(&node, |p| p.node).ok()?;
        Some(&self.peers[at])
    }

    fn peer_mut(&mut self, node: u32) -> Option<&mut PeerLinks<A>> {
        let at = self.peers.binary_search_by_key(&node, |p| p.node).ok()?;
        Some(&mut self.peers[at])
    }

    /// Adds a link while running (a reload gave every node an address on it): its settings,
    /// this node's address and each peer's; it takes the next position (positions are in the
    /// order links were added, link 0 first — the embedding keeps its sockets in the same
    /// order), every peer's health on it starts down, and its pings start at
    /// `first_round_ns` if pings are on. Returns its position.
    pub fn add_link(
        &mut self,
        config: LinkConfig<A>,
        first_round_ns: u64,
    ) -> Result<usize, LinkChangeError> {
        let number = config.settings.number;
        if self.locals.iter().any(|l| l.settings.number == number) {
            return Err(LinkChangeError::Present(number));
        }
        if self.locals.len() == LINK_COUNT_MAX {
            return Err(LinkChangeError::Full);
        }
        let probes = self.probes && !self.peers.is_empty();
        for p in &mut self.peers {
            let addr = config
                .peers
                .iter()
                .find(|(id, _)| *id == p.node)
                .map(|(_, a)| *a);
            p.links.push(PeerLink::new(addr));
        }
        self.locals.push(Local {
            settings: config.settings,
            addr: config.local,
            seq: 0,
            next_round_ns: probes.then_some(first_round_ns),
        });
        Ok(self.locals.len() - 1)
    }

    /// Removes link `number` while running (a reload took every node's address on it away):
    /// its pings stop, its health and counters are gone, the links after it move down one
    /// position. Returns the position it had. Link 0 stays: it is the nodelist's address.
    pub fn remove_link(&mut self, number: u8) -> Result<usize, LinkChangeError> {
        if number == 0 {
            return Err(LinkChangeError::LinkZero);
        }
        let position = self
            .locals
            .iter()
            .position(|l| l.settings.number == number)
            .ok_or(LinkChangeError::Absent(number))?;
        self.locals.remove(position);
        let count = self.locals.len();
        for p in &mut self.peers {
            p.links.remove(position);
            p.rr_next %= count;
        }
        // Pings queued on it, and later positions' pings, follow the move.
        self.outbox.retain(|(_, pos, _)| *pos != position);
        for (_, pos, _) in &mut self.outbox {
            if *pos > position {
                *pos -= 1;
            }
        }
        Ok(position)
    }

    /// Takes a reload's view of the link at `position`, kept across it: its settings (the
    /// ping timers follow the token), and every peer's address on it that `config` lists — a
    /// node the reload added gets its address on this link, a peer whose address changed
    /// starts over on it (down, as a link just added). Peers `config` does not list keep
    /// theirs (a removed node still in the ring until it leaves). This node's address stays.
    pub fn update_link(&mut self, position: usize, config: &LinkConfig<A>) {
        self.locals[position].settings = config.settings;
        for p in &mut self.peers {
            let Some((_, addr)) = config.peers.iter().find(|(id, _)| *id == p.node) else {
                continue;
            };
            if p.links[position].addr != Some(*addr) {
                p.links[position] = PeerLink::new(Some(*addr));
            }
        }
    }

    /// Takes the peers of a new nodelist (`nodes`: id and link 0 address): a peer kept keeps
    /// its links and their health, a new one is known on link 0 alone.
    pub fn set_peers(&mut self, nodes: impl Iterator<Item = (u32, A)>) {
        let count = self.locals.len();
        let mut next: Vec<PeerLinks<A>> = nodes
            .map(|(node, addr)| match self.peer(node) {
                Some(p) => {
                    let mut p = p.clone();
                    p.links[0].addr = Some(addr);
                    p
                }
                None => PeerLinks {
                    node,
                    links: (0..count)
                        .map(|i| PeerLink::new((i == 0).then_some(addr)))
                        .collect(),
                    rr_next: 0,
                },
            })
            .collect();
        next.sort_by_key(|p| p.node);
        self.peers = next;
        if self.peers.is_empty() {
            for l in &mut self.locals {
                l.next_round_ns = None;
            }
        }
    }

    /// When `handle_timeout` is next needed: the next round of pings of a link, the instant
    /// an up link's last pong becomes older than its timeout in effect, the next fall of an
    /// up link's backoff (which brings that instant closer), or the end of a log window that
    /// left changes out.
    pub fn poll_timeout(&self) -> Option<u64> {
        // Plain loops: the embedding asks after every input, for every peer and link, and a
        // link that is down with nothing left to log (every link without pings) is skipped on
        // two loads (the simulator's 64-node runs spent most of their time in the iterator
        // adapters this replaced).
        let mut next: Option<u64> = None;
        let mut due = |at: u64| next = Some(next.map_or(at, |n| n.min(at)));
        for l in &self.locals {
            if let Some(at) = l.next_round_ns {
                due(at);
            }
        }
        for p in &self.peers {
            for (pl, l) in p.links.iter().zip(&self.locals) {
                let h = &pl.health;
                if h.connected {
                    if let Some(last) = h.last_pong_ns {
                        due(last + timeout_ns(&l.settings, h));
                    }
                    if h.timeout_backoff > 0 {
                        due(h.backoff_step_ns);
                    }
                }
                if pl.log.unlogged > 0 {
                    due(pl.log.window_end_ns());
                }
            }
        }
        next
    }

    /// Queues the rounds of pings due at `now_ns`, lowers the backoffs due, and takes down
    /// every link whose last pong is older than its timeout in effect.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        for (pos, local) in self.locals.iter_mut().enumerate() {
            let number = local.settings.number;
            for p in &mut self.peers {
                let l = &mut p.links[pos];
                let h = &mut l.health;
                while h.timeout_backoff > 0 && now_ns >= h.backoff_step_ns {
                    h.timeout_backoff -= 1;
                    h.backoff_step_ns += TIMEOUT_BACKOFF_STEP_NS;
                }
                let timeout = timeout_ns(&local.settings, h);
                let expired = h.last_pong_ns.is_none_or(|t| now_ns >= t + timeout);
                let event = |up| LinkEvent {
                    node: p.node,
                    link: number,
                    up,
                    unlogged: 0,
                };
                if h.connected && expired {
                    take_down(h, now_ns);
                    l.log.note(&mut self.events, now_ns, event(false));
                    if !self.timed_out.contains(&p.node) {
                        self.timed_out.push(p.node);
                    }
                } else if !h.connected && expired {
                    // knet counts pongs in a row: a gap longer than the timeout starts over.
                    h.pongs_in_row = 0;
                }
                let up = l.health.connected;
                l.log.flush(&mut self.events, now_ns, event(up));
            }
            match local.next_round_ns {
                Some(due) if due <= now_ns => {}
                _ => continue,
            }
            local.seq = local.seq.wrapping_add(1).max(1);
            for p in &mut self.peers {
                if p.links[pos].addr.is_none() {
                    continue;
                }
                p.links[pos].health.tx_ping_packets += 1;
                let body = encode(KIND_PING, local.settings.number, local.seq, now_ns);
                self.outbox.push((p.node, pos, body));
            }
            local.next_round_ns = Some(now_ns + ms_to_ns(local.settings.ping_interval_ms));
        }
    }

    /// The peers a link of which went down on its ping timeout since the last call: what was
    /// sent to them on it since the last pong may be lost (the endpoint has the core resend
    /// its token).
    pub fn take_timed_out(&mut self) -> std::vec::Drain<'_, u32> {
        self.timed_out.drain(..)
    }

    /// The kernel refused at `now_ns` a datagram of `kind` to `node` on the link at `position`
    /// for the link itself (its interface down, no route, the source address gone): counted,
    /// and the link to that peer is down at once rather than at its ping timeout; it comes back
    /// as any down link does, after `knet_pong_count` pongs. Returns whether it was up (then
    /// the caller sends the frame again on the links `choose` now gives).
    pub fn handle_send_refused(
        &mut self,
        now_ns: u64,
        node: u32,
        position: usize,
        kind: TxKind,
    ) -> bool {
        let Some(number) = self.locals.get(position).map(|l| l.settings.number) else {
            return false;
        };
        let events = &mut self.events;
        let Some(l) = self
            .peers
            .binary_search_by_key(&node, |p| p.node)
            .ok()
            .map(|at| &mut self.peers[at].links[position])
        else {
            return false;
        };
        let h = &mut l.health;
        match kind {
            TxKind::Data => h.tx_data_errors += 1,
            TxKind::Ping => h.tx_ping_errors += 1,
            TxKind::Pong => h.tx_pong_errors += 1,
        }
        h.pongs_in_row = 0;
        if !h.connected {
            return false;
        }
        take_down(h, now_ns);
        let e = LinkEvent {
            node,
            link: number,
            up: false,
            unlogged: 0,
        };
        l.log.note(events, now_ns, e);
        true
    }

    /// A ping body from `node` (authenticated) that arrived on the link at `position` at
    /// `now_ns`: a ping is answered on the same link, a pong measured. Returns false when the
    /// body is not a well-formed ping of this version.
    pub fn handle_body(&mut self, now_ns: u64, position: usize, node: u32, body: &[u8]) -> bool {
        let Some((kind, number, seq, sent_ns)) = decode(body) else {
            return false;
        };
        let Some(local) = self.locals.get(position) else {
            return true;
        };
        if number != local.settings.number {
            // Sent on another link than it came in on: the networks are cross-wired.
            return true;
        }
        let (settings, current_seq) = (local.settings, local.seq);
        let room = self.peers.len() * self.locals.len() + ANSWERS_MAX;
        let outbox_len = self.outbox.len();
        let Some(at) = self.peers.binary_search_by_key(&node, |p| p.node).ok() else {
            return true;
        };
        let p = &mut self.peers[at];
        match kind {
            KIND_PING => {
                p.links[position].health.rx_ping_packets += 1;
                if outbox_len < room && p.links[position].addr.is_some() {
                    p.links[position].health.tx_pong_packets += 1;
                    let pong = encode(KIND_PONG, number, seq, sent_ns);
                    self.outbox.push((node, position, pong));
                }
                true
            }
            KIND_PONG => {
                let h = &mut p.links[position].health;
                // A pong to a ping we sent: not from the future, not older than the last.
                if seq == 0 || seq > current_seq || seq <= h.answered_seq || sent_ns > now_ns {
                    return true;
                }
                h.rx_pong_packets += 1;
                let rtt = now_ns - sent_ns;
                h.answered_seq = seq;
                h.last_pong_ns = Some(now_ns);
                h.pongs_in_row = h.pongs_in_row.saturating_add(1);
                // knet's running average over at most `ping_precision` samples.
                let n = u64::from(h.latency_samples);
                h.latency_ave_ns = (h.latency_ave_ns * n + rtt) / (n + 1);
                if h.latency_samples < settings.ping_precision {
                    h.latency_samples += 1;
                }
                h.latency_min_ns = if h.rx_pong_packets == 1 {
                    rtt
                } else {
                    h.latency_min_ns.min(rtt)
                };
                h.latency_max_ns = h.latency_max_ns.max(rtt);
                if !h.connected && h.pongs_in_row >= settings.pong_count {
                    h.connected = true;
                    h.up_count += 1;
                    let e = LinkEvent {
                        node,
                        link: number,
                        up: true,
                        unlogged: 0,
                    };
                    p.links[position].log.note(&mut self.events, now_ns, e);
                }
                true
            }
            _ => false,
        }
    }

    /// Queues a round of pings on the link at `position` now, whatever its schedule.
    #[cfg(test)]
    fn next_round(&mut self, position: usize, now_ns: u64) {
        self.locals[position].next_round_ns = Some(now_ns);
        self.handle_timeout(now_ns);
    }

    /// Ping and pong bodies to send: (peer, link position, body); the caller seals them.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (u32, usize, [u8; PROBE_BYTES])> {
        self.outbox.drain(..)
    }

    /// The next link going up or down, in the order they happened.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// The link positions that carry the next frame to `node`, as the link mode says, into
    /// `out` (cleared first). Empty when the node is not a peer.
    pub fn choose(&mut self, node: u32, out: &mut Vec<usize>) {
        out.clear();
        let mode = self.mode;
        let priorities: [u8; LINK_COUNT_MAX] = {
            let mut p = [0; LINK_COUNT_MAX];
            for (i, l) in self.locals.iter().enumerate() {
                p[i] = l.settings.priority;
            }
            p
        };
        let Some(p) = self.peer_mut(node) else {
            return;
        };
        let usable = |l: &PeerLink<A>| l.addr.is_some();
        out.extend(
            p.links
                .iter()
                .enumerate()
                .filter(|(_, l)| usable(l) && l.health.connected)
                .map(|(i, _)| i),
        );
        if out.is_empty() {
            // Nothing known up: every link the peer has an address on.
            out.extend(
                p.links
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| usable(l))
                    .map(|(i, _)| i),
            );
            return;
        }
        match mode {
            LinkMode::Active => {}
            LinkMode::Passive => {
                // The highest priority; on a tie the lowest link number (the first position).
                let best = out
                    .iter()
                    .copied()
                    .max_by_key(|&i| (priorities[i], std::cmp::Reverse(i)))
                    .expect("not empty");
                out.clear();
                out.push(best);
            }
            LinkMode::Rr => {
                let count = p.links.len();
                let pick = (0..count)
                    .map(|k| (p.rr_next + k) % count)
                    .find(|i| out.contains(i))
                    .expect("not empty");
                p.rr_next = (pick + 1) % count;
                out.clear();
                out.push(pick);
            }
        }
    }

    /// Counts a frame of `bytes` sent to `node` on the link at `position`.
    pub fn note_sent(&mut self, node: u32, position: usize, bytes: usize) {
        if let Some(p) = self.peer_mut(node) {
            let h = &mut p.links[position].health;
            h.tx_data_packets += 1;
            h.tx_data_bytes += bytes as u64;
        }
    }

    /// Counts an authenticated frame of `bytes` from `node` on the link at `position`.
    pub fn note_received(&mut self, node: u32, position: usize, bytes: usize) {
        if let Some(p) = self.peer_mut(node) {
            if let Some(l) = p.links.get_mut(position) {
                l.health.rx_data_packets += 1;
                l.health.rx_data_bytes += bytes as u64;
            }
        }
    }

    /// Whether the link at `position` to `node` is up.
    pub fn connected(&self, node: u32, position: usize) -> bool {
        self.peer(node)
            .and_then(|p| p.links.get(position))
            .is_some_and(|l| l.health.connected)
    }

    /// Every peer's every link, as corosync publishes them (knet's names):
    /// `knet.node<N>.link<L>.{connected,enabled,latency_ave,latency_min,latency_max,up_count,
    /// down_count,tx_data_errors,tx_ping_errors,tx_pong_errors,tx_data_packets,rx_data_packets,tx_data_bytes,rx_data_bytes,
    /// tx_ping_packets,rx_ping_packets,tx_pong_packets,rx_pong_packets}`, latencies in
    /// microseconds.
    pub fn entries(&self, out: &mut crate::Sheet) {
        for p in &self.peers {
            for (l, local) in p.links.iter().zip(&self.locals) {
                if l.addr.is_none() {
                    continue;
                }
                let h = &l.health;
                for (k, v) in [
                    ("connected", u64::from(h.connected)),
                    ("enabled", 1),
                    ("latency_ave", h.latency_ave_ns / 1_000),
                    ("latency_min", h.latency_min_ns / 1_000),
                    ("latency_max", h.latency_max_ns / 1_000),
                    ("up_count", h.up_count),
                    ("down_count", h.down_count),
                    ("tx_data_errors", h.tx_data_errors),
                    ("tx_ping_errors", h.tx_ping_errors),
                    ("tx_pong_errors", h.tx_pong_errors),
                    ("tx_data_packets", h.tx_data_packets),
                    ("rx_data_packets", h.rx_data_packets),
                    ("tx_data_bytes", h.tx_data_bytes),
                    ("rx_data_bytes", h.rx_data_bytes),
                    ("tx_ping_packets", h.tx_ping_packets),
                    ("rx_ping_packets", h.rx_ping_packets),
                    ("tx_pong_packets", h.tx_pong_packets),
                    ("rx_pong_packets", h.rx_pong_packets),
                ] {
                    out.put_fmt(
                        format_args!("knet.node{}.link{}.{k}", p.node, local.settings.number),
                        v,
                    );
                }
            }
        }
    }
}

fn push_event(events: &mut std::collections::VecDeque<LinkEvent>, e: LinkEvent) {
    if events.len() < EVENTS_MAX {
        events.push_back(e);
    }
}

fn ms_to_ns(ms: u32) -> u64 {
    u64::from(ms) * 1_000_000
}

fn encode(kind: u8, link: u8, seq: u32, sent_ns: u64) -> [u8; PROBE_BYTES] {
    let mut b = [0u8; PROBE_BYTES];
    b[..2].copy_from_slice(&MAGIC);
    b[2] = VERSION;
    b[3] = kind;
    b[4] = link;
    b[8..12].copy_from_slice(&seq.to_be_bytes());
    b[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    b
}

/// (kind, link, seq, sent_ns) of a ping body; `None` unless it is exactly one of this version.
fn decode(body: &[u8]) -> Option<(u8, u8, u32, u64)> {
    let b: &[u8; PROBE_BYTES] = body.try_into().ok()?;
    if b[..2] != MAGIC || b[2] != VERSION || b[5..8] != [0, 0, 0] {
        return None;
    }
    if b[3] != KIND_PING && b[3] != KIND_PONG {
        return None;
    }
    let seq = u32::from_be_bytes(b[8..12].try_into().ok()?);
    let sent = u64::from_be_bytes(b[12..20].try_into().ok()?);
    Some((b[3], b[4], seq, sent))
}

/// Whether a body is a ping (by its magic), before any other check.
pub fn is_probe(body: &[u8]) -> bool {
    body.starts_with(&MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn settings(number: u8, priority: u8) -> LinkSettings {
        // Interval 100 ms, timeout 200 ms, 2 pongs to come up.
        LinkSettings::resolve(number, 400, Some(priority), None, None, None, None).unwrap()
    }

    /// Node `me` of nodes 1..=3 with links 0 and 1 (priorities 1 and 2 unless given).
    fn links(me: u32, mode: LinkMode, priorities: [u8; 2]) -> Links<u32> {
        let configs = (0..2u8)
            .map(|l| LinkConfig {
                settings: settings(l, priorities[usize::from(l)]),
                local: u32::from(l) * 100 + me,
                peers: (1..=3)
                    .filter(|n| *n != me)
                    .map(|n| (n, u32::from(l) * 100 + n))
                    .collect(),
            })
            .collect();
        Links::new(mode, configs, (1..=3).filter(|n| *n != me), true, 0)
    }

    /// Runs a's timers at `now`, delivers its pings to b on every link in `working`, and
    /// b's pongs back at `now + rtt`.
    fn exchange(a: &mut Links<u32>, b: &mut Links<u32>, now: u64, rtt: u64, working: &[usize]) {
        a.handle_timeout(now);
        let (a_id, b_id) = (
            if a.peer(1).is_none() { 1 } else { 2 },
            if b.peer(1).is_none() { 1 } else { 2 },
        );
        let pings: Vec<_> = a.drain().filter(|(n, _, _)| *n == b_id).collect();
        for (_, pos, body) in pings {
            if working.contains(&pos) {
                assert!(b.handle_body(now, pos, a_id, &body));
            }
        }
        let pongs: Vec<_> = b.drain().filter(|(n, _, _)| *n == a_id).collect();
        for (_, pos, body) in pongs {
            assert!(a.handle_body(now + rtt, pos, b_id, &body));
        }
    }

    fn chosen(a: &mut Links<u32>, node: u32) -> Vec<usize> {
        let mut out = Vec::new();
        a.choose(node, &mut out);
        out
    }

    #[test]
    fn links_come_up_after_pong_count_pongs_and_passive_takes_the_highest_priority() {
        let mut a = links(1, LinkMode::Passive, [1, 2]);
        let mut b = links(2, LinkMode::Passive, [1, 2]);
        // Nothing known: every link.
        assert_eq!(chosen(&mut a, 2), [0, 1]);
        exchange(&mut a, &mut b, 0, 40_000, &[0, 1]);
        assert!(!a.connected(2, 0), "one pong of two");
        exchange(&mut a, &mut b, 100 * MS, 60_000, &[0, 1]);
        assert!(a.connected(2, 0) && a.connected(2, 1));
        // Link 1 has priority 2.
        assert_eq!(chosen(&mut a, 2), [1]);
        let h = a.peer(2).unwrap().links[0].health;
        assert_eq!(
            (h.latency_ave_ns, h.latency_min_ns, h.latency_max_ns),
            (50_000, 40_000, 60_000)
        );
        let events: Vec<String> = std::iter::from_fn(|| a.poll_event())
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            events,
            ["link: host: 2 link: 0 is up", "link: host: 2 link: 1 is up"]
        );
        // On a tie, the lowest link number.
        let mut a = links(1, LinkMode::Passive, [3, 3]);
        let mut b = links(2, LinkMode::Passive, [3, 3]);
        exchange(&mut a, &mut b, 0, 1, &[0, 1]);
        exchange(&mut a, &mut b, 100 * MS, 1, &[0, 1]);
        assert_eq!(chosen(&mut a, 2), [0]);
    }

    #[test]
    fn a_link_without_pongs_goes_down_at_its_timeout_and_passive_fails_over() {
        let mut a = links(1, LinkMode::Passive, [2, 1]);
        let mut b = links(2, LinkMode::Passive, [2, 1]);
        exchange(&mut a, &mut b, 0, 10, &[0, 1]);
        exchange(&mut a, &mut b, 100 * MS, 10, &[0, 1]);
        assert_eq!(chosen(&mut a, 2), [0]);
        // Link 0 stops answering after the pong at 100 ms: down at 100 ms + 200 ms timeout.
        exchange(&mut a, &mut b, 200 * MS, 10, &[1]);
        let due = a.poll_timeout().unwrap();
        assert_eq!(due, 300 * MS, "the first round or expiry");
        exchange(&mut a, &mut b, 300 * MS, 10, &[1]);
        // The expiry of link 0 (pong at 100 ms + 10 ns, twice the 10 ns latency added) is due
        // before the next round.
        assert_eq!(a.poll_timeout(), Some(300 * MS + 30));
        a.handle_timeout(300 * MS + 30);
        a.drain();
        assert!(!a.connected(2, 0) && a.connected(2, 1));
        assert_eq!(chosen(&mut a, 2), [1], "failed over");
        let e = std::iter::from_fn(|| a.poll_event()).last();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("link: host: 2 link: 0 is down")
        );
        let h = a.peer(2).unwrap().links[0].health;
        assert_eq!((h.up_count, h.down_count), (1, 1));
        // Back: two pongs in a row, and link 0 carries again.
        exchange(&mut a, &mut b, 400 * MS, 10, &[0, 1]);
        assert_eq!(chosen(&mut a, 2), [1]);
        exchange(&mut a, &mut b, 500 * MS, 10, &[0, 1]);
        assert_eq!(chosen(&mut a, 2), [0]);
        assert_eq!(a.peer(2).unwrap().links[0].health.up_count, 2);
    }

    #[test]
    fn active_uses_every_up_link_and_rr_takes_them_in_turn() {
        for (mode, expect) in [
            (LinkMode::Active, vec![vec![0, 1], vec![0, 1], vec![0, 1]]),
            (LinkMode::Rr, vec![vec![0], vec![1], vec![0]]),
        ] {
            let mut a = links(1, mode, [1, 1]);
            let mut b = links(2, mode, [1, 1]);
            exchange(&mut a, &mut b, 0, 1, &[0, 1]);
            exchange(&mut a, &mut b, 100 * MS, 1, &[0, 1]);
            let got: Vec<Vec<usize>> = (0..3).map(|_| chosen(&mut a, 2)).collect();
            assert_eq!(got, expect, "{mode:?}");
            // With link 0 down, both use link 1 only.
            exchange(&mut a, &mut b, 200 * MS, 1, &[1]);
            a.handle_timeout(300 * MS + 3);
            assert_eq!(chosen(&mut a, 2), [1], "{mode:?}");
            assert_eq!(chosen(&mut a, 2), [1], "{mode:?}");
        }
    }

    #[test]
    fn counters_use_corosyncs_names() {
        let mut a = links(1, LinkMode::Passive, [1, 1]);
        let mut b = links(2, LinkMode::Passive, [1, 1]);
        exchange(&mut a, &mut b, 0, 2_000, &[0, 1]);
        exchange(&mut a, &mut b, 100 * MS, 4_000, &[0, 1]);
        a.note_sent(2, 1, 100);
        a.note_received(2, 1, 80);
        let mut out = crate::Sheet::new();
        a.entries(&mut out);
        let get = |k: &str| out.iter().find(|(key, _)| *key == k).map(|(_, v)| v);
        assert_eq!(get("knet.node2.link1.connected"), Some(1));
        assert_eq!(get("knet.node2.link1.latency_ave"), Some(3));
        assert_eq!(get("knet.node2.link1.tx_data_bytes"), Some(100));
        assert_eq!(get("knet.node2.link1.rx_data_packets"), Some(1));
        assert_eq!(get("knet.node2.link0.up_count"), Some(1));
        assert_eq!(get("knet.node3.link0.connected"), Some(0));
        assert_eq!(get("knet.node2.link0.tx_ping_packets"), Some(2));
    }

    #[test]
    fn pongs_on_the_wrong_link_replays_and_other_bodies_are_refused() {
        let mut a = links(1, LinkMode::Passive, [1, 1]);
        let mut b = links(2, LinkMode::Passive, [1, 1]);
        a.handle_timeout(0);
        let pings: Vec<_> = a.drain().filter(|(n, _, _)| *n == 2).collect();
        // Link 0's ping arriving on link 1 is not answered.
        b.handle_body(0, 1, 1, &pings[0].2);
        assert_eq!(b.drain().count(), 0);
        b.handle_body(0, 0, 1, &pings[0].2);
        let pong = b.drain().next().unwrap();
        assert!(a.handle_body(10, 0, 2, &pong.2));
        assert!(a.handle_body(20, 0, 2, &pong.2), "a replay is a ping body");
        assert_eq!(a.peer(2).unwrap().links[0].health.rx_pong_packets, 1);
        assert!(!a.handle_body(0, 0, 2, b"TT\x01\x01"));
        assert!(!a.handle_body(
            0,
            0,
            2,
            &[b'R', b'L', 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        ));
        assert!(is_probe(b"RL..") && !is_probe(b"TT.."));
    }

    /// Brings links 0 and 1 of a to b up with pongs at 0 and 100 ms; the next round is due
    /// at 200 ms.
    fn both_up(mode: LinkMode) -> (Links<u32>, Links<u32>) {
        let mut a = links(1, mode, [2, 1]);
        let mut b = links(2, mode, [2, 1]);
        exchange(&mut a, &mut b, 0, 10, &[0, 1]);
        exchange(&mut a, &mut b, 100 * MS, 10, &[0, 1]);
        assert!(a.connected(2, 0) && a.connected(2, 1));
        (a, b)
    }

    /// Rounds of pings every 100 ms from `from` while `now < until`, answered on `working`.
    fn rounds(a: &mut Links<u32>, b: &mut Links<u32>, from: u64, until: u64, working: &[usize]) {
        let mut now = from;
        while now < until {
            exchange(a, b, now, 10, working);
            now += 100 * MS;
        }
    }

    #[test]
    fn a_link_that_just_went_down_needs_a_longer_silence_to_go_down_again() {
        let (mut a, mut b) = both_up(LinkMode::Passive);
        // The first silence: down at the configured 200 ms after the last pong.
        rounds(&mut a, &mut b, 200 * MS, 300 * MS, &[1]);
        a.handle_timeout(300 * MS + 29);
        assert!(a.connected(2, 0));
        // The last pong at 100 ms + 10 ns, + 200 ms, + twice the 10 ns latency.
        a.handle_timeout(300 * MS + 30);
        assert!(!a.connected(2, 0), "down at the configured timeout");
        // Back after two pongs (at 400 and 500 ms).
        rounds(&mut a, &mut b, 400 * MS, 600 * MS, &[0, 1]);
        assert!(a.connected(2, 0));
        // 900 ms of silence, well over the 200 ms timeout: it just flapped, so its timeout is
        // 200 ms × 10, less 200 ms each second since it went down (at 300 ms + 30 ns).
        rounds(&mut a, &mut b, 600 * MS, 1_400 * MS, &[1]);
        a.handle_timeout(1_400 * MS);
        assert!(
            a.connected(2, 0),
            "a second silence soon after a flap is held up"
        );
        // Down at the timeout in effect: the last pong (500 ms + 10 ns) + 9 × 200 ms + twice
        // the 10 ns latency — the backoff falling to 8 at that very instant.
        a.handle_timeout(2_300 * MS + 29);
        let h = a.peer(2).unwrap().links[0].health;
        assert!(h.connected);
        assert_eq!((h.down_count, h.timeout_backoff), (1, 8));
        a.handle_timeout(2_300 * MS + 30);
        a.drain();
        assert!(
            !a.connected(2, 0),
            "down once the silence outlasts the timeout in effect"
        );
        // Steady for ten seconds, the backoff is gone: back to the configured timeout.
        rounds(&mut a, &mut b, 2_400 * MS, 12_500 * MS, &[0, 1]);
        assert!(a.connected(2, 0));
        assert_eq!(a.peer(2).unwrap().links[0].health.timeout_backoff, 0);
        rounds(&mut a, &mut b, 12_500 * MS, 12_600 * MS, &[1]);
        let h = a.peer(2).unwrap().links[0].health;
        let expiry = h.last_pong_ns.unwrap() + 200 * MS + 2 * h.latency_ave_ns;
        a.handle_timeout(expiry - 1);
        assert!(a.connected(2, 0));
        a.handle_timeout(expiry);
        assert!(!a.connected(2, 0), "the configured timeout again");
    }

    #[test]
    fn the_latency_average_is_added_twice_to_the_timeout() {
        let mut a = links(1, LinkMode::Passive, [1, 1]);
        let mut b = links(2, LinkMode::Passive, [1, 1]);
        // A 50 ms round trip: the timeout in effect is 200 + 2 × 50 ms after the last pong.
        exchange(&mut a, &mut b, 0, 50 * MS, &[0, 1]);
        exchange(&mut a, &mut b, 100 * MS, 50 * MS, &[0, 1]);
        assert!(a.connected(2, 0));
        exchange(&mut a, &mut b, 200 * MS, 50 * MS, &[1]);
        a.handle_timeout(350 * MS);
        assert!(
            a.connected(2, 0),
            "200 ms after the last pong is not enough"
        );
        a.handle_timeout(450 * MS);
        assert!(!a.connected(2, 0));
    }

    #[test]
    fn a_send_refused_for_the_link_takes_it_down_at_once() {
        let (mut a, mut b) = both_up(LinkMode::Passive);
        std::iter::from_fn(|| a.poll_event()).for_each(drop);
        assert_eq!(chosen(&mut a, 2), [0]);
        assert!(a.handle_send_refused(150 * MS, 2, 0, TxKind::Data));
        assert!(!a.connected(2, 0) && a.connected(2, 1));
        assert_eq!(
            chosen(&mut a, 2),
            [1],
            "passive moves on without waiting for a timeout"
        );
        assert!(
            !a.handle_send_refused(160 * MS, 2, 0, TxKind::Ping),
            "already down"
        );
        let h = a.peer(2).unwrap().links[0].health;
        assert_eq!(
            (h.down_count, h.tx_data_errors, h.tx_ping_errors),
            (1, 1, 1)
        );
        assert_eq!(
            a.poll_event().map(|e| e.to_string()).as_deref(),
            Some("link: host: 2 link: 0 is down")
        );
        // Back as any down link: after two pongs in a row.
        exchange(&mut a, &mut b, 200 * MS, 10, &[0, 1]);
        assert!(!a.connected(2, 0));
        exchange(&mut a, &mut b, 300 * MS, 10, &[0, 1]);
        assert!(a.connected(2, 0));
        assert_eq!(chosen(&mut a, 2), [0]);
        let mut out = crate::Sheet::new();
        a.entries(&mut out);
        assert!(out
            .iter()
            .any(|e| e == ("knet.node2.link0.tx_data_errors", 1)));
    }

    #[test]
    fn up_down_lines_are_rate_limited_and_the_last_state_is_told() {
        let (mut a, _b) = both_up(LinkMode::Passive);
        std::iter::from_fn(|| a.poll_event()).for_each(drop);
        // Eight changes within 10 ms: refused sends, each followed by two pongs in a row.
        let mut now = 150 * MS;
        let mut b = links(2, LinkMode::Passive, [2, 1]);
        for _ in 0..4 {
            a.handle_send_refused(now, 2, 0, TxKind::Data);
            for _ in 0..2 {
                now += MS;
                a.next_round(0, now);
                let pings: Vec<_> = a.drain().filter(|(n, p, _)| *n == 2 && *p == 0).collect();
                for (_, pos, body) in pings {
                    b.handle_body(now, pos, 1, &body);
                }
                for (_, pos, body) in b.drain().filter(|(n, _, _)| *n == 1) {
                    a.handle_body(now, pos, 2, &body);
                }
            }
        }
        assert!(a.connected(2, 0));
        let lines: Vec<String> = std::iter::from_fn(|| a.poll_event())
            .map(|e| e.to_string())
            .collect();
        // Link 0's up at 100 ms was the window's first line: three more, five left out.
        assert_eq!(lines.len(), 3, "{lines:?}");
        // At the window's end: the state now, with what was left out.
        rounds(&mut a, &mut b, 200 * MS, EVENT_WINDOW_NS, &[0, 1]);
        assert_eq!(a.poll_timeout(), Some(EVENT_WINDOW_NS));
        a.handle_timeout(EVENT_WINDOW_NS);
        let last = std::iter::from_fn(|| a.poll_event())
            .map(|e| e.to_string())
            .find(|l| l.contains("host: 2 link: 0"));
        assert_eq!(
            last.as_deref(),
            Some(
                "link: host: 2 link: 0 is up (5 earlier up/down changes of this link were not \
                 logged: at most 4 every 10 s)"
            )
        );
    }

    #[test]
    fn a_link_added_while_running_comes_up_and_one_removed_is_gone() {
        let one = |me: u32, l: u8| LinkConfig {
            settings: settings(l, 1),
            local: u32::from(l) * 100 + me,
            peers: (1..=3)
                .filter(|n| *n != me)
                .map(|n| (n, u32::from(l) * 100 + n))
                .collect(),
        };
        let start = |me: u32| {
            let others = (1..=3).filter(move |n| *n != me);
            Links::new(LinkMode::Active, vec![one(me, 0)], others, true, 0)
        };
        let (mut a, mut b) = (start(1), start(2));
        exchange(&mut a, &mut b, 0, 10, &[0]);
        exchange(&mut a, &mut b, 100 * MS, 10, &[0]);
        assert_eq!(chosen(&mut a, 2), [0]);
        // A reload adds link 1 on both: pings start on it, up after two pongs, then active
        // uses both.
        assert_eq!(a.add_link(one(1, 1), 150 * MS), Ok(1));
        assert_eq!(b.add_link(one(2, 1), 150 * MS), Ok(1));
        assert_eq!(
            a.add_link(one(1, 1), 150 * MS),
            Err(LinkChangeError::Present(1))
        );
        assert!(!a.connected(2, 1));
        exchange(&mut a, &mut b, 200 * MS, 10, &[0, 1]);
        exchange(&mut a, &mut b, 300 * MS, 10, &[0, 1]);
        assert!(a.connected(2, 0) && a.connected(2, 1));
        assert_eq!(chosen(&mut a, 2), [0, 1]);
        let mut out = crate::Sheet::new();
        a.entries(&mut out);
        assert!(out.iter().any(|e| e == ("knet.node2.link1.connected", 1)));
        // And removes it: no pings, no stats, no frames on it; link 0 cannot go.
        a.handle_timeout(400 * MS);
        assert_eq!(a.remove_link(1), Ok(1));
        assert!(
            a.drain().all(|(_, pos, _)| pos == 0),
            "its queued pings went with it"
        );
        assert_eq!(a.remove_link(1), Err(LinkChangeError::Absent(1)));
        assert_eq!(a.remove_link(0), Err(LinkChangeError::LinkZero));
        assert_eq!(chosen(&mut a, 2), [0]);
        a.handle_timeout(500 * MS);
        assert!(a.drain().all(|(_, pos, _)| pos == 0));
        let mut out = crate::Sheet::new();
        a.entries(&mut out);
        assert!(!out.iter().any(|(k, _)| k.contains(".link1.")));
        assert_eq!(a.count(), 1);
    }

    #[test]
    fn without_probes_every_frame_goes_on_every_link_and_nothing_is_sent() {
        let configs = vec![LinkConfig {
            settings: settings(0, 1),
            local: 1u32,
            peers: vec![(2, 2)],
        }];
        let mut a = Links::new(LinkMode::Passive, configs, [2].into_iter(), false, 0);
        assert_eq!(a.poll_timeout(), None);
        a.handle_timeout(10 * MS);
        assert_eq!(a.drain().count(), 0);
        assert_eq!(chosen(&mut a, 2), [0]);
        // A node a reload added is known on link 0 alone until its links are updated.
        a.set_peers([(2, 2), (5, 5)].into_iter());
        assert_eq!(chosen(&mut a, 5), [0]);
        let added = a.add_link(
            LinkConfig {
                settings: settings(1, 1),
                local: 101,
                peers: vec![(2, 102)],
            },
            0,
        );
        assert_eq!(added, Ok(1));
        assert_eq!(a.peer(5).unwrap().links[1].addr, None);
        let mut both = LinkConfig {
            settings: settings(1, 3),
            local: 101,
            peers: vec![(2, 102), (5, 105)],
        };
        a.update_link(1, &both);
        assert_eq!(a.peer(5).unwrap().links[1].addr, Some(105));
        assert_eq!(a.settings().nth(1).unwrap().priority, 3);
        assert_eq!(chosen(&mut a, 5), [0, 1]);
        // A peer the config leaves out keeps its address there.
        both.peers.remove(0);
        a.update_link(1, &both);
        assert_eq!(a.peer(2).unwrap().links[1].addr, Some(102));
        assert_eq!(a.remove_link(1), Ok(1));
    }
}
