//! rotor-endpoint: one node's glue between totem-core and the wire, with no clock, socket or
//! thread of its own. It holds the totem-core `Node`, rotor-crypto's `Sealer` and `Opener`, the
//! peer table (node id ↔ address, generic over the address so the simulator uses its own) and
//! the counters. Inputs: a datagram from an address at a time `now` (opened in place and fed to
//! the node under the sender id it authenticated), a timeout at `now`, and requests through
//! `node_mut().submit`; outputs: sealed frames with their destination addresses (`flush` hands
//! each to the caller's send function — once to the multicast group, or to every peer, or to
//! one), events in delivery order, diagnostics (the protocol's notices, and foreign senders
//! reported once per kind per interval), runtime changes (`poll_change`: a change round is
//! applied here too — the peer table and the sealing key swap at the point of the ordered
//! stream where the core applies its part, and a rotated-out key is retired once every member
//! seals under the new one), and the next timeout. The dataplane's runner drives it
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
use std::fmt::Display;

use rotor_crypto::{Counters, CryptoMode, KeySlotError, Keys, OpenError, Opener, Sealer};
use thiserror::Error;
use totem_core::{
    ChangeError, ChangeEvent, ClusterShape, ConfigIdentity, Dest, Event, Instant, Node, NodeConfig,
    NodeId, Notice, Outcome, Proposal, RoundId, SettingError, TotemSettings,
};

pub use describe::Severity;
pub use foreign::{recognise_corosync, Corosync, Foreign};
pub use link::{LinkConfig, LinkEvent, LinkMode, LinkSettings, Links, TxKind};
pub use peers::{PeerError, Peers};
pub use stats::{DropCause, Drops, Entries, Rotations, Sheet, Traffic};

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
    /// Link 0's settings (its addresses are `local` and `peers`).
    pub link0: LinkSettings,
    /// Every other link: its settings, this node's address on it and each peer's.
    pub more_links: Vec<LinkConfig<A>>,
    /// Which up links carry a peer's frames.
    pub link_mode: LinkMode,
    /// Ping every peer on every link (`link`). The dataplane does; the simulator
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
    /// Authenticated (under the key `key_id`) and handed to the node; `body` is the opened
    /// plaintext it got.
    Accepted {
        sender: NodeId,
        key_id: u32,
        body: &'a [u8],
    },
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

/// One end of a broken pair: its node id and address (`None`: not in the peer table).
pub type PairEnd<A> = (NodeId, Option<A>);

/// Two nodes that do not hear each other both ways, with their addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairReport<A> {
    pub a: PairEnd<A>,
    pub b: PairEnd<A>,
    pub a_hears_b: bool,
    pub b_hears_a: bool,
}

/// The protocol's `Notice::PartialConnectivity` with every node's address, so the line names
/// what an operator checks the network between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectivityReport<A> {
    pub broken: Vec<PairReport<A>>,
    /// Broken pairs not listed.
    pub more: u32,
    /// This node's group: the largest set of nodes that all hear each other that it is in.
    pub group: Vec<NodeId>,
}

/// Something the embedding should log: its text is its `Display`, its level `severity()`.
/// What a transport did with one datagram ([`Endpoint::flush_links`]' `send`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// Not sent, nothing wrong with the link (no room, a firewall): counted as `send_refused`;
    /// totem retransmits.
    Refused,
    /// Not sent because the link itself cannot carry it (its interface down, no route, the
    /// source address gone): counted as `send_refused`, the link to that peer is taken down at
    /// once and the frame goes again on the links left.
    LinkUnusable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic<A> {
    /// From the protocol (membership, token, retransmission).
    Totem(Notice),
    /// About a sender that should not be sending to this port.
    Foreign(ForeignReport<A>),
    /// Nodes that do not hear each other both ways (`Notice::PartialConnectivity`).
    Connectivity(ConnectivityReport<A>),
    /// A peer's link went up or down.
    Link(LinkEvent),
}

/// A member's answer to a change round (`Endpoint::propose`).
pub enum ChangeInput<A> {
    /// What the member would run with.
    Ready {
        /// The settings, resolved for `nodelist`'s size.
        totem: TotemSettings,
        /// Every node of the new nodelist with its address: this node too, unless the change
        /// removes it.
        nodelist: Vec<(u32, A)>,
        /// The key to seal under once the change is applied; `None` keeps the current one.
        keys: Option<Keys>,
        /// votequorum's settings from the member's quorum{} (when it runs votequorum).
        quorum: Option<Box<totem_core::votequorum::QuorumSettings>>,
        /// Every link the member would run, link 0 first, with this node's and every
        /// peer's address on it: a reload adds or removes links 1–7 (see
        /// [`Endpoint::take_link_change`]). `None`: the links stay as they are (the
        /// simulator's one link).
        links: Option<Vec<LinkConfig<A>>>,
    },
    /// Why the member cannot take the change.
    Refused { reason: String },
}

/// What an applied round did to the links, one step at a time, in the order the embedding
/// does the same to its sockets (`Endpoint::take_link_change`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkStep {
    /// Link `number`, at `position`, is gone: its socket closes; the links after it move
    /// down one position.
    Removed { number: u8, position: usize },
    /// Link `number` now runs at `position` (the last): its socket joins there.
    Added { number: u8, position: usize },
}

/// A runtime change, for the embedding (`Endpoint::poll_change`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The core's event, once the endpoint has done its part (an applied change's peer table
    /// and sealing key are in effect; the next key of a refused one is retired).
    Core(ChangeEvent),
    /// Frames under this key are no longer opened; its material is wiped.
    KeyRetired { key_id: u32 },
}

/// This node's proposal for the open round, applied by the endpoint if the round is.
struct PendingChange<A> {
    round: RoundId,
    peers: Peers<A>,
    /// Whether the proposed nodelist lists this node.
    listed: bool,
    /// The key to seal under once applied, when it differs from the current one.
    keys: Option<Keys>,
    /// Whether this answer added `keys` to the opener (a key held already, for another
    /// round's answer, is not this one's to retire).
    key_added: bool,
    /// The links to run once applied (`None`: as they are).
    links: Option<Vec<LinkConfig<A>>>,
}

/// The configuration identity (`totem_core::config::identity`) of `totem` and `nodelist`:
/// every totem setting in effect, and every node with its address. What members must agree
/// on, so a node configured otherwise is kept out of the ring, with the keys named.
pub fn identity_of<A: Display>(totem: &TotemSettings, nodelist: &[(u32, A)]) -> ConfigIdentity {
    let settings = totem_core::config::SETTINGS
        .iter()
        .map(|s| (format!("totem.{}", s.name), (s.get)(totem).to_string()));
    let nodes = nodelist
        .iter()
        .map(|(id, a)| (format!("nodelist.{id}"), a.to_string()));
    ConfigIdentity::from_pairs(settings.chain(nodes))
}

/// Runtime changes queued for the embedding; more are dropped (the core's own queue is bounded
/// the same way).
const CHANGES_MAX: usize = 256;
/// Datagrams for addresses outside the peer table waiting for `flush`.
const DIRECT_MAX: usize = 8;
/// Senders remembered as sealing under a key this node does not hold.
const UNKNOWN_KEYS_MAX: usize = 64;
/// How long such a sender is remembered after its last frame.
pub const UNKNOWN_KEY_MEMORY_NS: u64 = 10_000_000_000;

/// One node between totem-core and the wire. See the crate documentation.
pub struct Endpoint<A> {
    node: Node,
    sealer: Sealer,
    opener: Opener,
    peers: Peers<A>,
    /// The nodelist's peers once `peers` no longer holds nodes a reload removed while they
    /// were ring members: those are kept until a ring without them (their token, their leave
    /// and what they retransmit still flow), then `peers` becomes this table.
    nodelist_peers: Option<Peers<A>>,
    /// Whether the nodelist in effect lists this node (a reload may remove it).
    listed: bool,
    pending: Option<PendingChange<A>>,
    /// The links an applied round asked for, until the embedding takes them with its
    /// sockets (`take_link_change`).
    link_change: Option<Vec<LinkConfig<A>>>,
    /// Invariant: at most `CHANGES_MAX`.
    changes: VecDeque<Change>,
    /// Core datagrams for an address outside the peer table (our summary for a node missing
    /// from the nodelist), sent by the next `flush`. Invariant: at most `DIRECT_MAX`.
    direct: Vec<(Vec<u8>, A)>,
    /// Senders heard sealing under a key this node does not hold: (node, key, last heard).
    /// Invariant: at most `UNKNOWN_KEYS_MAX`, one entry per (node, key).
    unknown_keys: Vec<(u32, u32, u64)>,
    frame_overhead_bytes: u32,
    group: Option<A>,
    local: A,
    cluster_hash: u32,
    /// One sealed frame (`DATAGRAM_MAX` bytes, allocated once).
    tx: Vec<u8>,
    drops: Drops,
    traffic: Traffic,
    rotations: Rotations,
    /// Per-peer per-link health and the choice of links (`link`).
    links: Links<A>,
    /// The link positions `links.choose` picked for the frame being sent.
    chosen: Vec<usize>,
    /// The time of the last input (a datagram or a timeout): when a send the next `flush`
    /// makes fails, for the link that takes it down.
    now: Instant,
    limit: foreign::RateLimit,
    /// Invariant: at most `FOREIGN_REPORTS_MAX`.
    reports: VecDeque<ForeignReport<A>>,
}

impl<A: Copy + PartialEq + Display> Endpoint<A> {
    pub fn new(cfg: EndpointConfig<A>, now: Instant) -> Result<Endpoint<A>, EndpointError> {
        let mut nodelist = cfg.peers.clone();
        nodelist.push((cfg.node_id, cfg.local));
        nodelist.sort_by_key(|(id, _)| *id);
        let peers = Peers::new(cfg.node_id, cfg.peers.clone())?;
        // The first probes go at a point of the first interval that the seed picks
        // (splitmix64's finaliser spreads consecutive seeds).
        let mut spread = cfg.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        spread = (spread ^ (spread >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        spread = (spread ^ (spread >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        spread ^= spread >> 31;
        let first_interval_ns = u64::from(cfg.link0.ping_interval_ms) * 1_000_000;
        let mut link_configs = vec![LinkConfig {
            settings: cfg.link0,
            local: cfg.local,
            peers: cfg.peers.clone(),
        }];
        link_configs.extend(cfg.more_links);
        let links = Links::new(
            cfg.link_mode,
            link_configs,
            peers.iter().map(|(id, _)| id),
            cfg.link_probes,
            now.0 + spread % first_interval_ns.max(1),
        );
        let cluster_hash = totem_core::cluster_hash(&cfg.cluster_name);
        let shape = ClusterShape {
            nodelist_count: u32::try_from(peers.len() + 1).unwrap_or(u32::MAX),
            frame_overhead_bytes: cfg.frame_overhead_bytes,
        };
        let identity = identity_of(&cfg.totem, &nodelist);
        let node = Node::new(
            NodeConfig {
                totem: cfg.totem,
                shape,
                identity,
                key_id: cfg.mode.key_id(&cfg.keys),
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
            nodelist_peers: None,
            listed: true,
            pending: None,
            link_change: None,
            changes: VecDeque::new(),
            direct: Vec::new(),
            unknown_keys: Vec::with_capacity(UNKNOWN_KEYS_MAX),
            frame_overhead_bytes: cfg.frame_overhead_bytes,
            group: cfg.group,
            local: cfg.local,
            cluster_hash,
            tx: vec![0; DATAGRAM_MAX],
            drops: Drops::default(),
            traffic: Traffic::default(),
            rotations: Rotations::default(),
            now,
            links,
            chosen: Vec::with_capacity(link::LINK_COUNT_MAX),
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
        self.handle_datagram_on(now, 0, from, frame)
    }

    /// A datagram that arrived on the link at `link` (its position: 0 is link 0), as
    /// [`Endpoint::handle_datagram`]; counted on that link of its sender.
    pub fn handle_datagram_on<'f>(
        &mut self,
        now: Instant,
        link: usize,
        from: A,
        frame: &'f mut [u8],
    ) -> Received<'f> {
        self.now = self.now.max(now);
        self.traffic.frames_in += 1;
        self.traffic.bytes_in += frame.len() as u64;
        // The opened body is `frame[HEADER_LEN..][..len]`, decrypted in place; taken again
        // below so that the refused frame stays usable for the reports.
        let opened = self
            .opener
            .open(&mut *frame)
            .map(|o| (o.sender, o.key_id, o.body.len()));
        let error = match opened {
            Ok((node, key_id, len)) => {
                if !self.peers.contains(node) {
                    let cause = DropCause::UnconfiguredSender;
                    self.drops.count(cause);
                    let sender = Foreign::NotInNodelist { node };
                    if self.limit.due(sender.kind(), now.0) && self.direct.len() < DIRECT_MAX {
                        // It authenticated: tell it our configuration, so it can say what
                        // differs (it does not hear us otherwise: we send it nothing).
                        let datagram = self.node.config_datagram();
                        self.direct.push((datagram, from));
                    }
                    self.report(now, from, sender);
                    return Received::Dropped(cause);
                }
                let frame: &'f [u8] = frame;
                let body = &frame[rotor_crypto::HEADER_LEN..][..len];
                let sender = NodeId(node);
                if link::is_probe(body) && self.links.handle_body(now.0, link, node, body) {
                    return Received::Probe { sender };
                }
                self.links.note_received(node, link, frame.len());
                let tokens = self.node.stats().tokens;
                self.node.handle_datagram(now, sender, body);
                self.note_rotation(tokens, now);
                self.take_changes();
                return Received::Accepted {
                    sender,
                    key_id,
                    body,
                };
            }
            Err(e) => e,
        };
        let cause = match error {
            OpenError::Replay if self.links.count() > 1 => DropCause::LinkDuplicate,
            _ => DropCause::Crypto(error),
        };
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
            OpenError::OwnFrame if Some(from) != self.links.local(link) => {
                self.on_own_frame(now, from, frame)
            }
            OpenError::UnknownKey => {
                if let Some((node, key_id)) = foreign::sender_and_key_of(frame) {
                    self.note_unknown_key(node, key_id, now);
                    let ours = self.sealer.key_id();
                    self.report(now, from, Foreign::UnknownKey { node, key_id, ours });
                }
            }
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
        self.now = self.now.max(now);
        self.links.handle_timeout(now.0);
        // What went to a peer on a link that has now timed out may be lost: the token is sent
        // again at once on what carries the peer's frames now.
        for node in self.links.take_timed_out() {
            self.node.handle_path_change(NodeId(node));
        }
        if self.node.poll_timeout().is_none_or(|t| t > now) {
            // Only the probes were due: the node sees its own timers only.
            return;
        }
        let tokens = self.node.stats().tokens;
        self.node.handle_timeout(now);
        // A ring of one passes the token to itself on a timer, not over the wire.
        self.note_rotation(tokens, now);
        self.take_changes();
    }

    // ----- runtime changes -----------------------------------------------------------------

    /// This node's answer to a `ChangeEvent::Requested` (see `totem_core::reconfig`). A ready
    /// answer's next key is accepted at once, so that once every member has answered — the
    /// point where the change applies — every member opens frames under it. What cannot work
    /// here (a nodelist the peer table refuses, this node's address changed, a rotation still
    /// completing) is proposed as a refusal, with the reason.
    pub fn propose(&mut self, round: RoundId, input: ChangeInput<A>) -> Result<(), ChangeError> {
        let (proposal, pending) = match input {
            ChangeInput::Refused { reason } => (Proposal::Refused { reason }, None),
            ChangeInput::Ready {
                totem,
                mut nodelist,
                keys,
                quorum,
                links,
            } => match self.ready(round, &mut nodelist, keys, links) {
                Ok((key_id, pending)) => {
                    let shape = ClusterShape {
                        nodelist_count: u32::try_from(nodelist.len()).unwrap_or(u32::MAX),
                        frame_overhead_bytes: self.frame_overhead_bytes,
                    };
                    let identity = identity_of(&totem, &nodelist);
                    let proposal = Proposal::Ready {
                        totem,
                        shape,
                        identity,
                        key_id,
                        quorum: quorum.map(|q| *q),
                    };
                    (proposal, Some(pending))
                }
                Err(reason) => (Proposal::Refused { reason }, None),
            },
        };
        let accepted_key = pending
            .as_ref()
            .filter(|p: &&PendingChange<A>| p.key_added)
            .and_then(|p| p.keys.as_ref().map(Keys::id));
        match self.node.propose(round, proposal) {
            Ok(()) => {
                self.pending = pending;
                self.take_changes();
                Ok(())
            }
            Err(e) => {
                if let Some(id) = accepted_key {
                    self.drop_key(id);
                }
                Err(e)
            }
        }
    }

    /// Checks a ready answer; returns the key it would seal under and what to apply.
    fn ready(
        &mut self,
        round: RoundId,
        nodelist: &mut [(u32, A)],
        keys: Option<Keys>,
        links: Option<Vec<LinkConfig<A>>>,
    ) -> Result<(u32, PendingChange<A>), String> {
        if let Some(links) = &links {
            self.check_links(links)?;
        }
        let me = self.node.node_id().0;
        nodelist.sort_by_key(|(id, _)| *id);
        let listed = match nodelist.iter().find(|(id, _)| *id == me) {
            Some((_, addr)) if *addr != self.local => {
                return Err(format!(
                    "nodelist: this node's address would change from {} to {addr}; an \
                     address cannot change while the node runs (restart it with the new \
                     address)",
                    self.local
                ))
            }
            Some(_) => true,
            None => false,
        };
        let peers = Peers::new(
            me,
            nodelist
                .iter()
                .copied()
                .filter(|(id, _)| *id != me)
                .collect(),
        )
        .map_err(|e| format!("nodelist: {e}"))?;
        let current = self.sealer.key_id();
        let keys = keys.filter(|k| self.sealer.mode().key_id(k) != current);
        let key_added = keys
            .as_ref()
            .is_some_and(|k| !self.opener.holds_key(k.id()));
        let key_id = match &keys {
            None => current,
            Some(k) => {
                self.opener.accept_key(k).map_err(|e| match e {
                    KeySlotError::Full => "the previous key rotation is still completing (its \
                                            old key is not retired yet); try again in a few \
                                            seconds"
                        .to_owned(),
                    KeySlotError::Unkeyed => "crypto is off (crypto_cipher and crypto_hash \
                                              none): there is no key to rotate"
                        .to_owned(),
                })?;
                k.id()
            }
        };
        Ok((
            key_id,
            PendingChange {
                round,
                peers,
                listed,
                keys,
                key_added,
                links,
            },
        ))
    }

    /// What the links of a ready answer may not do: go without link 0 (every node keeps its
    /// ring0_addr, as corosync requires), exceed `LINK_COUNT_MAX`, name a link twice, or move
    /// this node's address on a link it keeps (its socket is bound there; as corosync says, a
    /// link is reconfigured by deleting and recreating it).
    fn check_links(&self, links: &[LinkConfig<A>]) -> Result<(), String> {
        if links.first().is_none_or(|l| l.settings.number != 0) {
            return Err("link 0 cannot be removed: every node keeps its ring0_addr".into());
        }
        if links.len() > link::LINK_COUNT_MAX {
            return Err(format!(
                "{} links: a node has at most {}",
                links.len(),
                link::LINK_COUNT_MAX
            ));
        }
        for (i, l) in links.iter().enumerate() {
            let number = l.settings.number;
            if links[..i].iter().any(|o| o.settings.number == number) {
                return Err(format!("link {number} is given twice"));
            }
            let kept = self.links.settings().position(|s| s.number == number);
            let local = kept.and_then(|position| self.links.local(position));
            if let Some(was) = local.filter(|was| *was != l.local) {
                return Err(format!(
                    "link {number}: this node's address would change from {was} to {}; an \
                     address cannot change while the node runs: remove the link by one reload \
                     and add it back with the new address by another, or restart this node",
                    l.local
                ));
            }
        }
        Ok(())
    }

    /// Takes the links an applied round asked for into effect and says, step by step, what
    /// the embedding must do to its sockets in the same order: links gone are removed (their
    /// pings, health and counters with them), links kept take their new settings and every
    /// peer's address on them (a node the round added is known on every link from here on),
    /// links new are added at the end, down until their pings are answered. Empty when no
    /// round changed anything. The endpoint waits for this call so that a link position means
    /// the same socket to both sides at every moment: called by the embedding between two
    /// datagrams, never while it hands one in.
    pub fn take_link_change(&mut self) -> Vec<LinkStep> {
        let Some(configs) = self.link_change.take() else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        let current: Vec<u8> = self.links.settings().map(|s| s.number).collect();
        for number in current {
            if configs.iter().all(|c| c.settings.number != number) {
                if let Ok(position) = self.links.remove_link(number) {
                    steps.push(LinkStep::Removed { number, position });
                }
            }
        }
        let now = self.now.0;
        for config in configs {
            let number = config.settings.number;
            let kept = self.links.settings().position(|s| s.number == number);
            match kept {
                Some(position) => self.links.update_link(position, &config),
                None => {
                    if let Ok(position) = self.links.add_link(config, now) {
                        steps.push(LinkStep::Added { number, position });
                    }
                }
            }
        }
        steps
    }

    /// Does the endpoint's part of the core's change events and queues them for the embedding.
    fn take_changes(&mut self) {
        if let Some(listed) = &self.nodelist_peers {
            let members = self.node.members();
            let departed = self
                .peers
                .iter()
                .all(|(id, _)| listed.contains(id) || !members.contains(&NodeId(id)));
            if departed {
                self.peers = self.nodelist_peers.take().expect("checked");
                self.links.set_peers(self.peers.iter());
            }
        }
        while let Some(ev) = self.node.poll_change() {
            match &ev {
                ChangeEvent::Decided { round, outcome, .. } => {
                    let pending = self.pending.take_if(|p| p.round == *round);
                    if let Some(p) = pending {
                        match outcome {
                            Outcome::Applied => {
                                self.take_peers(p.peers);
                                self.listed = p.listed;
                                if p.links.is_some() {
                                    self.link_change = p.links;
                                }
                                if let Some(keys) = &p.keys {
                                    self.sealer.switch_key(keys);
                                }
                            }
                            Outcome::Refused { .. } => {
                                if let Some(keys) = p.keys.as_ref().filter(|_| p.key_added) {
                                    self.drop_key(keys.id());
                                }
                            }
                        }
                    }
                }
                ChangeEvent::KeyAgreed { key_id } => {
                    let others: Vec<u32> = self.opener.key_ids().filter(|k| k != key_id).collect();
                    for old in others {
                        if self.drop_key(old) {
                            self.push_change(Change::KeyRetired { key_id: old });
                        }
                    }
                }
                _ => {}
            }
            self.push_change(Change::Core(ev));
        }
    }

    /// Takes the peers of an applied nodelist; ring members it no longer lists stay in the
    /// table until the ring goes on without them (see `nodelist_peers`).
    fn take_peers(&mut self, new: Peers<A>) {
        let members = self.node.members();
        let kept: Vec<(u32, A)> = self
            .peers
            .iter()
            .filter(|(id, _)| !new.contains(*id) && members.contains(&NodeId(*id)))
            .collect();
        if kept.is_empty() {
            self.peers = new;
            self.nodelist_peers = None;
            self.links.set_peers(self.peers.iter());
            return;
        }
        let me = self.node.node_id().0;
        let both: Vec<(u32, A)> = new.iter().chain(kept).collect();
        match Peers::new(me, both) {
            Ok(both) => {
                self.peers = both;
                self.nodelist_peers = Some(new);
            }
            Err(_) => {
                self.peers = new;
                self.nodelist_peers = None;
            }
        }
        self.links.set_peers(self.peers.iter());
    }

    /// Stops opening frames under the key `id`, unless this node seals under it or holds no
    /// other (a node always opens what it seals, and holds a key). Whether it was retired.
    fn drop_key(&mut self, id: u32) -> bool {
        if id == self.sealer.key_id() || self.opener.key_ids().all(|k| k == id) {
            return false;
        }
        self.opener.retire_key(id)
    }

    fn push_change(&mut self, change: Change) {
        if self.changes.len() < CHANGES_MAX {
            self.changes.push_back(change);
        }
    }

    /// The next runtime change, in delivery order.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// The round this node answered ready and that is not decided yet.
    pub fn pending_round(&self) -> Option<RoundId> {
        self.pending.as_ref().map(|p| p.round)
    }

    /// Whether the nodelist in effect lists this node (false once a reload removed it: the
    /// embedding then leaves the ring and stops).
    pub fn listed(&self) -> bool {
        self.listed
    }

    /// The key this node seals under.
    pub fn sealing_key(&self) -> u32 {
        self.sealer.key_id()
    }

    /// The keys frames are opened under.
    pub fn keys_held(&self) -> Vec<u32> {
        self.opener.key_ids().collect()
    }

    /// Remembers that `node` seals under `key`, which this node does not hold (an unauthenticated
    /// claim: it only feeds status output, never a decision).
    fn note_unknown_key(&mut self, node: u32, key: u32, now: Instant) {
        if let Some(entry) = self
            .unknown_keys
            .iter_mut()
            .find(|(n, k, _)| *n == node && *k == key)
        {
            entry.2 = now.0;
            return;
        }
        if self.unknown_keys.len() == UNKNOWN_KEYS_MAX {
            let oldest = (0..self.unknown_keys.len())
                .min_by_key(|&i| self.unknown_keys[i].2)
                .expect("full");
            self.unknown_keys.swap_remove(oldest);
        }
        self.unknown_keys.push((node, key, now.0));
    }

    /// Senders heard sealing under a key this node does not hold within the last
    /// `UNKNOWN_KEY_MEMORY_NS` before `now`: (node, key), sorted. A node that missed a key
    /// rotation shows here on both sides.
    pub fn unknown_keys(&self, now: Instant) -> Vec<(u32, u32)> {
        let mut recent: Vec<(u32, u32)> = self
            .unknown_keys
            .iter()
            .filter(|(_, k, at)| {
                now.0.saturating_sub(*at) < UNKNOWN_KEY_MEMORY_NS && !self.opener.holds_key(*k)
            })
            .map(|(n, k, _)| (*n, *k))
            .collect();
        recent.sort_unstable();
        recent
    }

    /// Asks every member for a runtime change (see `totem_core::reconfig`).
    pub fn request_change(&mut self, kind: totem_core::ChangeKind) -> Result<RoundId, ChangeError> {
        let round = self.node.request_change(kind)?;
        self.take_changes();
        Ok(round)
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
    /// The link each goes on is left out: for a transport of one link (the simulator).
    pub fn flush<E>(&mut self, mut send: impl FnMut(&[u8], A) -> Result<bool, E>) -> Result<(), E> {
        self.flush_links(|frame, _link, to| {
            Ok(if send(frame, to)? {
                SendOutcome::Sent
            } else {
                SendOutcome::Refused
            })
        })
    }

    /// As [`Endpoint::flush`], with the position of the link each datagram goes on: per peer
    /// the links `totem.link_mode` picks among those up (`Links::choose`); the multicast group,
    /// pings' own links and replies to nodes outside the nodelist on their link, else link 0.
    pub fn flush_links<E>(
        &mut self,
        mut send: impl FnMut(&[u8], usize, A) -> Result<SendOutcome, E>,
    ) -> Result<(), E> {
        let now = self.now.0;
        while let Some((bytes, to)) = self.direct.pop() {
            match self.sealer.seal(&bytes, &mut self.tx) {
                Ok(len) => {
                    if send(&self.tx[..len], 0, to)? == SendOutcome::Sent {
                        self.traffic.frames_out += 1;
                        self.traffic.bytes_out += len as u64;
                        self.traffic.unicast_sends += 1;
                    } else {
                        self.drops.count(DropCause::SendRefused);
                    }
                }
                Err(_) => self.drops.count(DropCause::SealError),
            }
        }
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
                links,
                chosen,
                ..
            } = self;
            let frame = &tx[..len];
            let mut one = |link: usize, to: A, to_group: bool| -> Result<SendOutcome, E> {
                let outcome = send(frame, link, to)?;
                if outcome != SendOutcome::Sent {
                    drops.count(DropCause::SendRefused);
                    return Ok(outcome);
                }
                traffic.frames_out += 1;
                traffic.bytes_out += frame.len() as u64;
                if to_group {
                    traffic.group_sends += 1;
                } else {
                    traffic.unicast_sends += 1;
                }
                Ok(outcome)
            };
            // Each peer's frame on the links chosen for it; a link the kernel refuses goes
            // down for that peer and the frame goes on what the choice is then (each link
            // tried once: the loop ends when a round refuses nothing new).
            let mut to_peer =
                |id: u32, one: &mut dyn FnMut(usize, A, bool) -> Result<SendOutcome, E>| {
                    let mut tried = 0u32;
                    loop {
                        links.choose(id, chosen);
                        let mut again = false;
                        for &link in chosen.iter() {
                            if tried & (1 << link) != 0 {
                                continue;
                            }
                            tried |= 1 << link;
                            let Some(addr) = links.peer(id).and_then(|p| p.links[link].addr) else {
                                continue;
                            };
                            match one(link, addr, false)? {
                                SendOutcome::Sent => links.note_sent(id, link, frame.len()),
                                SendOutcome::Refused => {}
                                SendOutcome::LinkUnusable => {
                                    links.handle_send_refused(now, id, link, TxKind::Data);
                                    again = true;
                                }
                            }
                        }
                        if !again {
                            return Ok(());
                        }
                    }
                };
            match (t.dest, *group) {
                (Dest::All, Some(group)) => {
                    one(0, group, true)?;
                }
                (Dest::All, None) => {
                    for (id, _) in peers.iter() {
                        to_peer(id, &mut one)?;
                    }
                }
                (Dest::Node(id), _) if peers.contains(id.0) => to_peer(id.0, &mut one)?,
                (Dest::Node(_), _) => drops.count(DropCause::UnknownDestination),
            }
            self.node.recycle(t.bytes);
        }
        // Pings and pongs, each to its peer on its link.
        let pending: Vec<(u32, usize, [u8; link::PROBE_BYTES])> = self.links.drain().collect();
        for (node, position, body) in pending {
            let Some(to) = self.links.peer(node).and_then(|p| p.links[position].addr) else {
                continue;
            };
            let len = match self.sealer.seal(&body, &mut self.tx) {
                Ok(len) => len,
                Err(_) => {
                    self.drops.count(DropCause::SealError);
                    continue;
                }
            };
            match send(&self.tx[..len], position, to)? {
                SendOutcome::Sent => {
                    self.traffic.frames_out += 1;
                    self.traffic.bytes_out += len as u64;
                    self.traffic.unicast_sends += 1;
                }
                SendOutcome::Refused => self.drops.count(DropCause::SendRefused),
                SendOutcome::LinkUnusable => {
                    self.drops.count(DropCause::SendRefused);
                    let kind = TxKind::of_probe(&body);
                    self.links.handle_send_refused(now, node, position, kind);
                }
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
        if let Some(e) = self.links.poll_event() {
            return Some(Diagnostic::Link(e));
        }
        match self.node.poll_notice()? {
            Notice::PartialConnectivity {
                broken,
                more,
                group,
            } => {
                let end = |n: NodeId| -> PairEnd<A> {
                    if n == self.node.node_id() {
                        (n, Some(self.local))
                    } else {
                        (n, self.peers.address(n.0))
                    }
                };
                let broken = broken
                    .iter()
                    .map(|p| PairReport {
                        a: end(p.a),
                        b: end(p.b),
                        a_hears_b: p.a_hears_b,
                        b_hears_a: p.b_hears_a,
                    })
                    .collect();
                Some(Diagnostic::Connectivity(ConnectivityReport {
                    broken,
                    more,
                    group,
                }))
            }
            notice => Some(Diagnostic::Totem(notice)),
        }
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

    /// Every peer's links, as the pings measure them.
    pub fn links(&self) -> &Links<A> {
        &self.links
    }

    /// The opener's and the sealer's counters (frames, bytes, rejections by reason).
    pub fn crypto_counters(&self) -> (&Counters, &Counters) {
        (self.opener.counters(), self.sealer.counters())
    }

    /// Every counter of the endpoint as published (`stats.<key>`): `net.*` traffic and drops,
    /// `crypto.*`, and `srp.*` (the core's and the token rotations).
    pub fn counters(&self, out: &mut Sheet) {
        self.traffic.entries(out);
        self.drops.entries(out);
        let sealed = self.sealer.counters();
        let opened = self.opener.counters();
        out.put_all([
            ("crypto.frames_sealed", sealed.frames_sealed),
            ("crypto.bytes_sealed", sealed.bytes_sealed),
            ("crypto.frames_opened", opened.frames_opened),
            ("crypto.bytes_opened", opened.bytes_opened),
        ]);
        for (k, v) in self.node.stats().entries() {
            out.put_fmt(format_args!("srp.{k}"), v);
        }
        self.rotations.entries(out);
        self.links.entries(out);
    }
}
