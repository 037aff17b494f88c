//! rotor-endpoint: one node's glue between totem-core and the wire, with no clock, socket or
//! thread of its own. It holds the totem-core `Node`, rotor-crypto's `Sealer` and `Opener`, the
//! peer table (node id ↔ address, generic over the address so the simulator uses its own) and
//! the counters. Inputs: a datagram from an address at a time `now` (opened in place and fed to
//! the node under the sender id it authenticated), a timeout at `now`, and requests through
//! `node_mut().submit`; outputs: sealed frames with their destination addresses (`flush` hands
//! each to the caller's send function — once to the multicast group, or to every peer, or to
//! one), events in delivery order, diagnostics (the protocol's notices, and foreign senders
//! reported once per kind per interval), and the next timeout. The dataplane's runner drives it
//! with a transport and a monotonic clock; the simulator drives the same code over its
//! simulated network, so the production glue runs in every seed. It deliberately does not read
//! a clock, open a socket, block, log, allocate per datagram on the receive path, or decide
//! anything of the protocol: time comes in as arguments, bytes go out through the caller's
//! function, and the text of a diagnostic is only its `Display`.

pub mod describe;
pub mod foreign;
pub mod link;
pub mod peers;
pub mod stats;

use std::collections::VecDeque;

use rotor_crypto::{Counters, CryptoMode, Keys, OpenError, Opener, Sealer};
use thiserror::Error;
use totem_core::{
    ClusterShape, Dest, Event, Instant, Node, NodeConfig, NodeId, Notice, SettingError,
    TotemSettings,
};

pub use describe::Severity;
pub use foreign::{recognise_corosync, Corosync, Foreign};
pub use link::{LinkState, Links};
pub use peers::{PeerError, Peers};
pub use stats::{DropCause, Drops, Entries, Rotations, Traffic};

/// How often each kind of foreign sender is reported at most; the datagrams in between are
/// counted and the count goes with the next report (as corosync's invalid-digest line).
pub const FOREIGN_REPORT_INTERVAL_NS: u64 = 5_000_000_000;
/// Largest sealed frame: a UDP payload. The core's frames are netmtu-sized, but a recovery
/// frame carries an old-ring frame behind a second data header, and a full token may exceed a
/// small netmtu; the buffer does not depend on either.
const DATAGRAM_MAX: usize = 65_536;
/// Foreign reports waiting to be polled; more are dropped (a report is a log line).
const FOREIGN_REPORTS_MAX: usize = 64;

/// Everything an endpoint needs.
pub struct EndpointConfig<A> {
    pub node_id: u32,
    /// This node's own address: a frame from it with our node id is our own multicast looped
    /// back, not a duplicate node.
    pub local: A,
    /// Every other configured node (the nodelist less this node).
    pub peers: Vec<(u32, A)>,
    /// The multicast group joined, if the cluster multicasts: every `Dest::All` frame goes to it
    /// once instead of to each peer.
    pub group: Option<A>,
    pub keys: Keys,
    pub cluster_name: String,
    pub mode: CryptoMode,
    /// The totem settings, validated by the node against the peer table's size plus this node
    /// and `frame_overhead_bytes`.
    pub totem: TotemSettings,
    /// Bytes of every packet that are not the core's frame: IP and UDP headers and the seal
    /// (`totem_core::config::frame_overhead_bytes`); netmtu less these is the frame.
    pub frame_overhead_bytes: u32,
    /// Per-boot epoch: must grow on every restart (the totem incarnation and the crypto epoch).
    pub epoch: u32,
    /// The highest ring sequence this node saw before it restarted (persisted by the caller).
    pub ring_seq_start: u64,
    /// Seed for the core's one random choice (and where in the first second the link probes
    /// start).
    pub seed: u64,
    /// Probe the link to every peer once a second (`link`). The dataplane does; the simulator
    /// does not yet: the probes' datagrams move the simulated timing enough that seeds which
    /// passed now find the srp fail-set churn and a wait_for_all case still to be understood
    /// (see docs/ARCHITECTURE.md, endpoint).
    pub link_probes: bool,
}

/// Why an endpoint cannot start.
#[derive(Debug, Error)]
pub enum EndpointError {
    #[error(transparent)]
    Totem(#[from] SettingError),
    #[error("nodelist: {0}")]
    Peers(#[from] PeerError),
}

/// What became of one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// Authenticated and handed to the node; `body` is the opened plaintext it got.
    Accepted { sender: NodeId, body: &'a [u8] },
    /// Authenticated link probe (or its answer) from `sender`, handled by the endpoint.
    Probe { sender: NodeId },
    /// Dropped and counted.
    Dropped(DropCause),
}

/// A foreign sender, reported (see [`FOREIGN_REPORT_INTERVAL_NS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignReport<A> {
    /// The address the datagram came from.
    pub from: A,
    pub sender: Foreign,
    /// Datagrams of the same kind since the last report that were not reported.
    pub unreported: u64,
}

/// Something the embedding should log: its text is its `Display`, its level `severity()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic<A> {
    /// From the protocol (membership, token, retransmission).
    Totem(Notice),
    /// About a sender that should not be sending to this port.
    Foreign(ForeignReport<A>),
}

/// One node between totem-core and the wire. See the crate documentation.
pub struct Endpoint<A> {
    node: Node,
    sealer: Sealer,
    opener: Opener,
    peers: Peers<A>,
    group: Option<A>,
    local: A,
    cluster_hash: u32,
    /// One sealed frame (`DATAGRAM_MAX` bytes, allocated once).
    tx: Vec<u8>,
    drops: Drops,
    traffic: Traffic,
    rotations: Rotations,
    /// Per-peer link probes (latency and state).
    links: Links,
    limit: foreign::RateLimit,
    /// Invariant: at most `FOREIGN_REPORTS_MAX`.
    reports: VecDeque<ForeignReport<A>>,
}

impl<A: Copy + PartialEq> Endpoint<A> {
    pub fn new(cfg: EndpointConfig<A>, now: Instant) -> Result<Endpoint<A>, EndpointError> {
        let peers = Peers::new(cfg.node_id, cfg.peers)?;
        // The first probes go at a point of the first interval that the seed picks
        // (splitmix64's finaliser spreads consecutive seeds).
        let mut spread = cfg.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        spread = (spread ^ (spread >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        spread = (spread ^ (spread >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        spread ^= spread >> 31;
        let links = Links::new(
            peers.iter().map(|(id, _)| id).filter(|_| cfg.link_probes),
            now.0 + spread % link::PROBE_INTERVAL_NS,
        );
        let cluster_hash = totem_core::cluster_hash(&cfg.cluster_name);
        let shape = ClusterShape {
            nodelist_count: u32::try_from(peers.len() + 1).unwrap_or(u32::MAX),
            frame_overhead_bytes: cfg.frame_overhead_bytes,
        };
        let node = Node::new(
            NodeConfig {
                totem: cfg.totem,
                shape,
                node_id: NodeId(cfg.node_id),
                cluster: cluster_hash,
                incarnation: cfg.epoch,
                ring_seq_start: cfg.ring_seq_start,
                seed: cfg.seed,
            },
            now,
        )?;
        let sealer = Sealer::new(&cfg.keys, cfg.mode, cluster_hash, cfg.node_id, cfg.epoch);
        let opener = Opener::new(
            &cfg.keys,
            cfg.mode,
            cluster_hash,
            cfg.node_id,
            // Room for every node the core allows, not just the configured peers: a keyed node
            // missing from our list must not take the slot a configured peer needs (its frames
            // are then dropped as `unconfigured_sender`).
            totem_core::limits::MEMBERS_MAX.max(peers.len()),
        );
        Ok(Endpoint {
            node,
            sealer,
            opener,
            peers,
            group: cfg.group,
            local: cfg.local,
            cluster_hash,
            tx: vec![0; DATAGRAM_MAX],
            drops: Drops::default(),
            traffic: Traffic::default(),
            rotations: Rotations::default(),
            links,
            limit: foreign::RateLimit::new(FOREIGN_REPORT_INTERVAL_NS),
            reports: VecDeque::with_capacity(FOREIGN_REPORTS_MAX),
        })
    }

    // ----- inputs --------------------------------------------------------------------------

    /// A datagram from `from`, received at `now`: opened in place and, if it authenticates as a
    /// configured peer, fed to the node. Anything else is dropped, counted, and reported as a
    /// foreign sender where its bytes say who sent it.
    pub fn handle_datagram<'f>(
        &mut self,
        now: Instant,
        from: A,
        frame: &'f mut [u8],
    ) -> Received<'f> {
        self.traffic.frames_in += 1;
        self.traffic.bytes_in += frame.len() as u64;
        // The opened body is `frame[HEADER_LEN..][..len]`, decrypted in place; taken again
        // below so that the refused frame stays usable for the reports.
        let opened = self
            .opener
            .open(&mut *frame)
            .map(|o| (o.sender, o.body.len()));
        let error = match opened {
            Ok((node, len)) => {
                if !self.peers.contains(node) {
                    let cause = DropCause::UnconfiguredSender;
                    self.drops.count(cause);
                    self.report(now, from, Foreign::NotInNodelist { node });
                    return Received::Dropped(cause);
                }
                let frame: &'f [u8] = frame;
                let body = &frame[rotor_crypto::HEADER_LEN..][..len];
                let sender = NodeId(node);
                if link::is_probe(body) && self.links.handle_body(now.0, node, body) {
                    return Received::Probe { sender };
                }
                let tokens = self.node.stats().tokens;
                self.node.handle_datagram(now, sender, body);
                self.note_rotation(tokens, now);
                return Received::Accepted { sender, body };
            }
            Err(e) => e,
        };
        let cause = DropCause::Crypto(error);
        self.drops.count(cause);
        // The crypto layer refused the frame before any crypto for every reason read here but
        // InvalidDigest (whose report reads nothing of it): its header bytes are as received.
        match error {
            OpenError::InvalidDigest => self.report(now, from, Foreign::InvalidDigest),
            OpenError::ForeignCluster => {
                if let Some(cluster_hash) = foreign::cluster_hash_of(frame) {
                    let ours = self.cluster_hash;
                    self.report(now, from, Foreign::OtherCluster { cluster_hash, ours });
                }
            }
            OpenError::ModeMismatch => {
                if let Some(node) = foreign::sender_of(frame) {
                    self.report(now, from, Foreign::CryptoModeMismatch { node });
                }
            }
            OpenError::OwnFrame if from != self.local => self.on_own_frame(now, from, frame),
            OpenError::Truncated | OpenError::BadMagic | OpenError::BadVersion => {
                let sender = match recognise_corosync(frame) {
                    Some(c) => Foreign::Corosync(c),
                    None => Foreign::Unrecognised,
                };
                self.report(now, from, sender);
            }
            _ => {}
        }
        Received::Dropped(cause)
    }

    /// A frame with our own node id from another address: reported as a duplicate node id if
    /// it authenticates under our own key (checked only when a report is due: the check costs
    /// a key derivation).
    fn on_own_frame(&mut self, now: Instant, from: A, frame: &mut [u8]) {
        let sender = Foreign::DuplicateNodeId {
            node: self.node.node_id().0,
        };
        let kind = sender.kind();
        if !self.limit.due(kind, now.0) {
            self.limit.skip(kind);
        } else if self.opener.authentic_own_frame(frame) {
            self.push_report(now, from, sender);
        }
    }

    fn report(&mut self, now: Instant, from: A, sender: Foreign) {
        let kind = sender.kind();
        if self.limit.due(kind, now.0) {
            self.push_report(now, from, sender);
        } else {
            self.limit.skip(kind);
        }
    }

    fn push_report(&mut self, now: Instant, from: A, sender: Foreign) {
        let unreported = self.limit.report(sender.kind(), now.0);
        if self.reports.len() < FOREIGN_REPORTS_MAX {
            self.reports.push_back(ForeignReport {
                from,
                sender,
                unreported,
            });
        }
    }

    /// Runs the node's expired timers (none if none is due).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.links.handle_timeout(now.0);
        if self.node.poll_timeout().is_none_or(|t| t > now) {
            // Only the probes were due: the node sees its own timers only.
            return;
        }
        let tokens = self.node.stats().tokens;
        self.node.handle_timeout(now);
        // A ring of one passes the token to itself on a timer, not over the wire.
        self.note_rotation(tokens, now);
    }

    fn note_rotation(&mut self, tokens_before: u64, now: Instant) {
        if self.node.stats().tokens != tokens_before {
            self.rotations.on_token(self.node.ring(), now.0);
        }
    }

    /// Leaves the ring cleanly (call `flush` after it).
    pub fn leave(&mut self) {
        self.node.leave();
    }

    // ----- outputs -------------------------------------------------------------------------

    /// Seals every frame the node has queued and hands each to `send` with a destination
    /// address: a frame for every member once to the multicast group if there is one, else
    /// once per peer; a frame for one node to its address. `send` returns `Ok(false)` when the
    /// transport has no room (the frame is counted as `send_refused`; totem retransmits).
    pub fn flush<E>(&mut self, mut send: impl FnMut(&[u8], A) -> Result<bool, E>) -> Result<(), E> {
        while let Some(t) = self.node.poll_transmit() {
            let len = match self.sealer.seal(&t.bytes, &mut self.tx) {
                Ok(len) => len,
                Err(_) => {
                    self.drops.count(DropCause::SealError);
                    self.node.recycle(t.bytes);
                    continue;
                }
            };
            let Endpoint {
                tx,
                peers,
                group,
                drops,
                traffic,
                ..
            } = self;
            let frame = &tx[..len];
            let mut one = |to: A, to_group: bool| -> Result<(), E> {
                if !send(frame, to)? {
                    drops.count(DropCause::SendRefused);
                    return Ok(());
                }
                traffic.frames_out += 1;
                traffic.bytes_out += frame.len() as u64;
                if to_group {
                    traffic.group_sends += 1;
                } else {
                    traffic.unicast_sends += 1;
                }
                Ok(())
            };
            match (t.dest, *group) {
                (Dest::All, Some(group)) => one(group, true)?,
                (Dest::All, None) => {
                    for to in peers.addresses() {
                        one(*to, false)?;
                    }
                }
                (Dest::Node(id), _) => match peers.address(id.0) {
                    Some(to) => one(to, false)?,
                    None => drops.count(DropCause::UnknownDestination),
                },
            }
            self.node.recycle(t.bytes);
        }
        // Link probes and their answers, each to its peer.
        for (node, body) in self.links.drain() {
            let Some(to) = self.peers.address(node) else {
                continue;
            };
            let len = match self.sealer.seal(&body, &mut self.tx) {
                Ok(len) => len,
                Err(_) => {
                    self.drops.count(DropCause::SealError);
                    continue;
                }
            };
            if send(&self.tx[..len], to)? {
                self.traffic.frames_out += 1;
                self.traffic.bytes_out += len as u64;
                self.traffic.unicast_sends += 1;
            } else {
                self.drops.count(DropCause::SendRefused);
            }
        }
        Ok(())
    }

    /// The next event in delivery order (see `totem_core::Node::poll_event`).
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        self.node.poll_event()
    }

    /// The next diagnostic to log: foreign-sender reports first, then the protocol's notices
    /// in the order they happened.
    pub fn poll_diagnostic(&mut self) -> Option<Diagnostic<A>> {
        if let Some(r) = self.reports.pop_front() {
            return Some(Diagnostic::Foreign(r));
        }
        self.node.poll_notice().map(Diagnostic::Totem)
    }

    /// When `handle_timeout` is next needed (the node's timers, or the next link probes).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let probes = self.links.poll_timeout().map(Instant);
        match (self.node.poll_timeout(), probes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- state ---------------------------------------------------------------------------

    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node, for requests (`submit`) and queries.
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    pub fn peers(&self) -> &Peers<A> {
        &self.peers
    }

    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    pub fn rotations(&self) -> &Rotations {
        &self.rotations
    }

    /// The link to each peer, as the probes measure it.
    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The opener's and the sealer's counters (frames, bytes, rejections by reason).
    pub fn crypto_counters(&self) -> (&Counters, &Counters) {
        (self.opener.counters(), self.sealer.counters())
    }

    /// Every counter of the endpoint as published (`stats.<key>`): `net.*` traffic and drops,
    /// `crypto.*`, and `srp.*` (the core's and the token rotations).
    pub fn counters(&self, out: &mut Entries) {
        self.traffic.entries(out);
        self.drops.entries(out);
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
        self.rotations.entries(out);
        self.links.entries(out);
    }
}
