//! The public face of the core: one node's whole protocol stack (SRP, packing, CPG) as a
//! sans-IO state machine with `handle_*` inputs and `poll_*` outputs.

use std::collections::VecDeque;

use crate::body::{offset_in, Body, Part, Payload, Repr};
use crate::config::{ClusterShape, ConfigIdentity, SettingError, TotemSettings};
use crate::cpg::{Cpg, CpgOutput, GroupChange, ProcessId, Request, SubmitError, MCAST_HEAD_MAX};
use crate::notice::Notice;
use crate::pack::{Packer, QueueError};
use crate::reconfig::{ChangeError, ChangeEvent, ChangeKind, Proposal, Reconfig, RoundId};
use crate::srp::{self, ConfigChange, ConfigKind, Srp, State};
use crate::stats::Stats;
use crate::types::{Dest, Guarantee, Instant, NodeId, RingId};
use crate::votequorum::{
    Answer, QuorumError, QuorumEvent, QuorumRequest, QuorumSettings, QuorumState, Votequorum,
};
use crate::wire;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub totem: TotemSettings,
    /// The nodelist's size and the bytes of each packet below the core's frame.
    pub shape: ClusterShape,
    /// What the node's configuration must agree on with every member's (see
    /// `config::identity`); the default agrees with every other default.
    pub identity: ConfigIdentity,
    /// The key the layer below seals this node's frames under (its id; 0 without crypto):
    /// announced to the ring, so a key rotation knows when every member seals under the new
    /// key (see `reconfig`).
    pub key_id: u32,
    pub node_id: NodeId,
    /// Hash of the cluster name (see `cluster_hash`).
    pub cluster: u32,
    /// Changes on every start of the node (e.g. boot time); tells peers it restarted.
    pub incarnation: u32,
    /// The ring sequence persisted from the previous run (`Node::max_ring_seq`), 0 if none.
    pub ring_seq_start: u64,
    /// Seed for the core's only random choice (the send_join delay).
    pub seed: u64,
}

/// FNV-1a of the cluster name: carried in every header so clusters sharing a wire ignore
/// each other.
pub fn cluster_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A datagram to send.
pub struct Transmit {
    pub dest: Dest,
    pub bytes: Vec<u8>,
}

/// A message delivered to a group, borrowed until the next `poll_event`.
///
/// The data is not a copy: it borrows the frame bodies held by the ring's store (the one copy of
/// a received message), one slice for a message that fit in a frame, the fragments' ranges for
/// a larger one.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub group: &'a [u8],
    pub sender: ProcessId,
    pub guarantee: Guarantee,
    pub data: Payload<'a>,
}

/// Outputs in delivery order.
#[derive(Debug)]
pub enum Event<'a> {
    /// The totem configuration changed (transitional, then regular).
    Config(ConfigChange),
    /// A group's membership changed.
    Group(GroupChange),
    /// A group message.
    Deliver(Delivery<'a>),
}

/// A buffer of the event queue: an index into `Layers::frames`, or `IN_ARENA`.
const IN_ARENA: u32 = u32::MAX;

/// A queued event. Configuration and group changes are rare and large: boxed, so the common
/// delivery record stays small (it is written and read once per message per node).
enum Stored {
    Config(Box<ConfigChange>),
    Group(Box<GroupChange>),
    /// A message that fit in one frame: group name and data are ranges (start, length) of one
    /// buffer, the frame's body (or, never expected, the arena).
    Deliver {
        sender: ProcessId,
        guarantee: Guarantee,
        buffer: u32,
        group: (u32, u32),
        data: (u32, u32),
    },
    /// A message larger than a frame: its group name is in the arena, its data is
    /// `Layers::parts[first..first + count]` less `skip` bytes.
    DeliverParts {
        sender: ProcessId,
        guarantee: Guarantee,
        group: (u32, u32),
        first: u32,
        count: u32,
        skip: u32,
    },
}

/// The layers above the SRP, fed by it in delivery order.
///
/// Queued deliveries borrow: each holds a reference to the frame bodies its bytes lie in
/// (`frames`, `parts`), so the bytes stay as they were however the store frees and reuses its
/// slots, or drops an old ring's store at a membership change, before the queue is polled. All
/// three holders are emptied together when the queue has been drained (`release`).
struct Layers {
    pack: Packer,
    cpg: Cpg,
    /// Runtime changes (reload, key rotation, kill, shutdown) as ordered messages.
    reconfig: Reconfig,
    /// votequorum, when quorum{} names it as the provider.
    vq: Option<Votequorum>,
    /// votequorum's messages when it is off (a peer runs it): dropped.
    vq_ignored: u64,
    events: VecDeque<Stored>,
    /// Bytes of queued deliveries that lie in no frame body: the group names of messages larger
    /// than a frame (read from a copy of their head).
    arena: Vec<u8>,
    /// Frame bodies that queued deliveries borrow from, each once.
    frames: Vec<Body>,
    /// Fragments that queued deliveries of messages larger than a frame borrow.
    parts: Vec<Part>,
}

impl Layers {
    /// Drops the queue's hold on frame bodies and arena bytes. Only with the queue empty: a
    /// queued delivery refers to them by index.
    fn release(&mut self) {
        assert!(
            self.events.is_empty(),
            "releasing bytes of queued deliveries"
        );
        self.arena.clear();
        self.frames.clear();
        self.parts.clear();
    }
}

/// The frame body being delivered, its index in `Layers::frames` (pushed before its messages
/// are unpacked, popped again if none of them borrowed from it), and whether one did.
struct Frame<'b> {
    body: &'b Body,
    index: u32,
    borrowed: bool,
}

/// `(start, length)` of `bytes` appended to the arena.
fn in_arena(arena: &mut Vec<u8>, bytes: &[u8]) -> (u32, u32) {
    let start = u32::try_from(arena.len()).expect("event arena under 4 GiB");
    arena.extend_from_slice(bytes);
    (start, bytes.len() as u32)
}

/// Queues one output of the group service. A delivery records where its bytes lie — in the
/// body of the frame being delivered, or in parts — and takes a reference to that body or
/// those parts; only bytes that lie in no body are copied (into the arena).
///
/// Inlined into the per-message closure: called through it, the output was written to the
/// stack field by field and read back whole, a store-forwarding stall per message that cost
/// ~10% of `bench core` at 64 bytes.
#[inline(always)]
fn store_output(layers: &mut LayersOut<'_>, frame: Option<&mut Frame<'_>>, output: CpgOutput<'_>) {
    let stored = match output {
        CpgOutput::Config(c) => Stored::Config(Box::new(c)),
        CpgOutput::Group(g) => Stored::Group(Box::new(g)),
        CpgOutput::Deliver {
            group,
            sender,
            guarantee,
            data,
        } => match data.repr() {
            Repr::Slice(bytes, _) => {
                let offsets = frame.and_then(|f| {
                    let g = offset_in(f.body, group)?;
                    let d = offset_in(f.body, bytes)?;
                    f.borrowed = true;
                    Some((f.index, g as u32, d as u32))
                });
                let (buffer, group, data) = match offsets {
                    Some((index, g, d)) => {
                        (index, (g, group.len() as u32), (d, bytes.len() as u32))
                    }
                    None => (
                        IN_ARENA,
                        in_arena(layers.arena, group),
                        in_arena(layers.arena, bytes),
                    ),
                };
                Stored::Deliver {
                    sender,
                    guarantee,
                    buffer,
                    group,
                    data,
                }
            }
            Repr::Parts { parts, skip, .. } => {
                let first = layers.parts.len() as u32;
                layers.parts.extend_from_slice(parts);
                Stored::DeliverParts {
                    sender,
                    guarantee,
                    group: in_arena(layers.arena, group),
                    first,
                    count: parts.len() as u32,
                    skip,
                }
            }
        },
    };
    layers.events.push_back(stored);
}

/// The parts of `Layers` that queued outputs go into.
struct LayersOut<'l> {
    events: &'l mut VecDeque<Stored>,
    arena: &'l mut Vec<u8>,
    frames: &'l mut Vec<Body>,
    parts: &'l mut Vec<Part>,
}

impl srp::Upper for Layers {
    fn fill(&mut self, buf: &mut [u8]) -> (usize, bool) {
        self.pack.fill(buf)
    }

    fn backlog_frames(&self) -> u32 {
        self.pack.backlog_frames()
    }

    fn deliver(&mut self, origin: NodeId, body: &Body) {
        let Layers {
            pack,
            cpg,
            reconfig,
            vq,
            vq_ignored,
            events,
            arena,
            frames,
            parts,
        } = self;
        let mut out = LayersOut {
            events,
            arena,
            frames,
            parts,
        };
        let mut frame = Frame {
            body,
            index: out.frames.len() as u32,
            borrowed: false,
        };
        out.frames.push(Body::clone(body));
        let mut synced = false;
        pack.unpack(origin, body, |m| {
            if first_byte(&m.message).is_some_and(Reconfig::is_own) {
                match m.message.as_slice() {
                    Some(bytes) => reconfig.on_message(m.sender, bytes),
                    // A proposal carrying a large summary arrives in fragments.
                    None => reconfig.on_message(m.sender, &m.message.to_vec()),
                }
                return;
            }
            if first_byte(&m.message).is_some_and(Votequorum::is_own) {
                on_quorum_message(vq, vq_ignored, m.sender, m.message);
                return;
            }
            synced |= cpg.on_message(m.sender, m.guarantee, m.message, &mut |o| {
                store_output(&mut out, Some(&mut frame), o)
            });
        });
        if !frame.borrowed {
            out.frames.pop();
        }
        if synced {
            pack.set_app_open(true);
        }
    }

    fn config(&mut self, change: ConfigChange) {
        self.reconfig.on_config(&change);
        let quorum_sync = match self.vq.as_mut() {
            Some(vq) => vq.on_config(&change),
            None => Vec::new(),
        };
        let Layers {
            pack,
            cpg,
            events,
            arena,
            frames,
            parts,
            ..
        } = self;
        if change.kind == ConfigKind::Regular {
            // EVS: partial messages of the old ring are discarded by receivers and restarted
            // by their senders; application messages wait for the group re-sync.
            pack.drop_partial();
            pack.restart_partial();
            pack.clear_control();
            pack.set_app_open(false);
        }
        let mut out = LayersOut {
            events,
            arena,
            frames,
            parts,
        };
        if let Some(joinlist) = cpg.on_config(change, &mut |o| store_output(&mut out, None, o)) {
            pack.push_control(joinlist);
        }
        // votequorum's sync messages follow the joinlist, before any ordinary message.
        for message in quorum_sync {
            pack.push_control(message);
        }
    }
}

/// The op byte a message starts with.
#[inline(always)]
fn first_byte(message: &Payload<'_>) -> Option<u8> {
    match message.as_slice() {
        Some(bytes) => bytes.first().copied(),
        None => {
            let mut head = [0u8; 1];
            (message.copy_prefix(&mut head) == 1).then_some(head[0])
        }
    }
}

/// A votequorum message in total order: to votequorum, or counted and dropped when it is off.
fn on_quorum_message(
    vq: &mut Option<Votequorum>,
    ignored: &mut u64,
    sender: NodeId,
    message: Payload<'_>,
) {
    let Some(vq) = vq.as_mut() else {
        *ignored += 1;
        return;
    };
    match message.as_slice() {
        Some(bytes) => vq.on_message(sender, bytes),
        // Never sent in fragments by an honest sender (they are small); read whole anyway.
        None => vq.on_message(sender, &message.to_vec()),
    }
}

/// One node of the cluster.
pub struct Node {
    srp: Srp,
    layers: Layers,
    last_now: Instant,
    scratch: Vec<Vec<u8>>,
}

impl Node {
    pub fn new(config: NodeConfig, now: Instant) -> Result<Node, SettingError> {
        let frame_body = config
            .totem
            .frame_size_bytes(&config.shape)
            .saturating_sub(wire::DATA_OVERHEAD);
        let srp = Srp::new(&config, now)?;
        Ok(Node {
            srp,
            layers: Layers {
                pack: Packer::new(frame_body),
                cpg: Cpg::new(config.node_id),
                reconfig: Reconfig::new(config.node_id, config.key_id),
                vq: None,
                vq_ignored: 0,
                events: VecDeque::new(),
                arena: Vec::new(),
                frames: Vec::new(),
                parts: Vec::new(),
            },
            last_now: now,
            scratch: Vec::new(),
        })
    }

    /// A datagram from `from` (the node id the transport authenticated).
    pub fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        self.before_input();
        self.last_now = now;
        self.layers.reconfig.set_now(now);
        if let Some(vq) = self.layers.vq.as_mut() {
            vq.set_now(now);
        }
        self.srp.handle_datagram(now, from, bytes, &mut self.layers);
        self.after_input(now);
    }

    /// Time has passed: run the expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.before_input();
        self.last_now = now;
        self.layers.reconfig.set_now(now);
        if let Some(vq) = self.layers.vq.as_mut() {
            vq.set_now(now);
        }
        self.srp.handle_timeout(now, &mut self.layers);
        self.layers.reconfig.handle_timeout(now);
        if let Some(vq) = self.layers.vq.as_mut() {
            vq.handle_timeout(now);
        }
        self.after_input(now);
    }

    /// The network path to `node` changed (the embedding's link to it went down and another
    /// carries its frames): the token, if it went to `node` last and has not come back, is
    /// sent again at once (see `Srp::handle_path_change`).
    pub fn handle_path_change(&mut self, node: NodeId) {
        self.srp.handle_path_change(node);
    }

    /// Lets go of the frame bodies polled deliveries borrowed, if the queue has been drained
    /// without a final `poll_event` returning `None`.
    fn before_input(&mut self) {
        if self.layers.events.is_empty() {
            self.layers.release();
        }
    }

    fn after_input(&mut self, now: Instant) {
        if let Some(apply) = self.layers.reconfig.take_apply() {
            // A change round this node proposed for was applied at this point of the stream.
            let frame_body = self.srp.settings().frame_size_bytes(&self.srp.shape());
            self.srp
                .set_settings(apply.totem, apply.shape)
                .expect("a proposal is validated before it is sent");
            assert_eq!(
                frame_body,
                self.srp.settings().frame_size_bytes(&self.srp.shape()),
                "a change round kept the frame size"
            );
            self.srp.set_identity(apply.identity);
            if let (Some(quorum), Some(vq)) = (apply.quorum, self.layers.vq.as_mut()) {
                vq.set_now(now);
                vq.reconfigure(quorum);
            }
        }
        self.queue_change_messages();
        self.queue_quorum_messages();
        if self.layers.pack.has_pending() {
            self.srp.handle_pending(now);
        }
    }

    /// Moves the change service's messages into the send queue while it has room.
    fn queue_change_messages(&mut self) {
        while let Some((guarantee, message)) = self.layers.reconfig.poll_send() {
            if self.layers.pack.push_app(guarantee, &[&message]).is_err() {
                self.layers.reconfig.unsend((guarantee, message));
                break;
            }
        }
    }

    /// After a local request to the change service: queue its message and send it.
    fn after_change_request(&mut self) {
        self.queue_change_messages();
        if self.layers.pack.has_pending() {
            self.srp.handle_pending(self.last_now);
        }
    }

    /// Asks every member of the ring for a runtime change (see `reconfig`). The round's id
    /// names it in the `ChangeEvent`s every member then sees.
    pub fn request_change(&mut self, kind: ChangeKind) -> Result<RoundId, ChangeError> {
        let round = self.layers.reconfig.request(kind)?;
        self.after_change_request();
        Ok(round)
    }

    /// This node's answer to a `ChangeEvent::Requested`. A ready proposal is checked here
    /// first: settings that do not validate for its shape, or that would change the frame
    /// size, are proposed as a refusal instead, with the reason.
    pub fn propose(&mut self, round: RoundId, proposal: Proposal) -> Result<(), ChangeError> {
        let proposal = match proposal {
            Proposal::Ready {
                totem,
                shape,
                identity,
                key_id,
                quorum,
            } => {
                let frame = self.srp.settings().frame_size_bytes(&self.srp.shape());
                let checked = totem
                    .validate(&shape)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        let new = totem.frame_size_bytes(&shape);
                        if new == frame {
                            Ok(())
                        } else {
                            Err(format!(
                                "totem.netmtu: frames of {new} bytes instead of {frame}: netmtu \
                             cannot change while the cluster runs"
                            ))
                        }
                    });
                match checked {
                    Ok(()) => Proposal::Ready {
                        totem,
                        shape,
                        identity,
                        key_id,
                        quorum,
                    },
                    Err(reason) => Proposal::Refused { reason },
                }
            }
            refused => refused,
        };
        self.layers.reconfig.propose(round, proposal)?;
        self.after_change_request();
        Ok(())
    }

    /// Asks node `target` to leave the cluster and stop, giving `reason` (cfg kill).
    pub fn kill(&mut self, target: NodeId, reason: &str) {
        self.layers.reconfig.kill(target, reason);
        self.after_change_request();
    }

    /// Announces this node's orderly shutdown to every member (each logs it); the embedding
    /// leaves once `ChangeEvent::ShuttingDown` for this node is delivered.
    pub fn announce_shutdown(&mut self) {
        self.layers.reconfig.announce_shutdown();
        self.after_change_request();
    }

    /// The next event of the change service, in delivery order (independent of `poll_event`).
    pub fn poll_change(&mut self) -> Option<ChangeEvent> {
        self.layers.reconfig.poll_event()
    }

    /// The change round in progress, if any.
    pub fn change_round(&self) -> Option<RoundId> {
        self.layers.reconfig.round()
    }

    /// The key this node seals under, as the change service knows it.
    pub fn sealing_key(&self) -> u32 {
        self.layers.reconfig.sealing_key()
    }

    /// Runs with `totem` on this node alone from now on (corosync's cmap write of a totem
    /// key): the configuration identity is unchanged, so it is not compared with the members'.
    /// Refused when the settings do not validate for the node's shape or would change the
    /// frame size.
    pub fn set_totem(&mut self, totem: TotemSettings) -> Result<(), SettingError> {
        let shape = self.srp.shape();
        self.srp.set_settings(totem, shape)
    }

    /// The settings in effect.
    pub fn totem(&self) -> &TotemSettings {
        self.srp.settings()
    }

    /// The shape the settings are validated against (the nodelist's size in effect).
    pub fn shape(&self) -> ClusterShape {
        self.srp.shape()
    }

    /// This node's configuration identity in effect.
    pub fn identity(&self) -> &ConfigIdentity {
        self.srp.identity()
    }

    /// A datagram telling its receiver this node's configuration (its summary): for the
    /// embedding to send to a node its layer below refuses as missing from the nodelist, so
    /// that node can name what differs.
    pub fn config_datagram(&mut self) -> Vec<u8> {
        self.srp.config_datagram()
    }

    /// A request of a local process. Never blocks: a full queue is `SubmitError::TryAgain`.
    pub fn submit(&mut self, request: Request<'_>) -> Result<(), SubmitError> {
        if let Request::Mcast {
            group,
            pid,
            guarantee,
            data,
        } = request
        {
            // The hot path: no allocation, one copy of the payload into the send queue.
            if data.len() > crate::limits::MESSAGE_SIZE_MAX {
                return Err(SubmitError::TooLarge(data.len()));
            }
            self.layers.cpg.check_joined(group, pid)?;
            let mut head = [0u8; MCAST_HEAD_MAX];
            let len = Cpg::mcast_head(group, pid, &mut head);
            self.layers
                .pack
                .push_app(guarantee, &[&head[..len], data])
                .map_err(|e| match e {
                    QueueError::TryAgain => SubmitError::TryAgain,
                    QueueError::TooLarge(n) => SubmitError::TooLarge(n),
                })?;
        } else {
            if self.layers.pack.queued_bytes() + 4096 > crate::limits::SUBMIT_QUEUE_BYTES_MAX {
                return Err(SubmitError::TryAgain);
            }
            let mut encoded = std::mem::take(&mut self.scratch);
            encoded.clear();
            let result = self.layers.cpg.encode(request, &mut encoded);
            for head in encoded.drain(..) {
                // Membership requests are small; the room was checked above.
                let queued = self.layers.pack.push_app(Guarantee::Agreed, &[&head]);
                debug_assert!(queued.is_ok());
            }
            self.scratch = encoded;
            result?;
        }
        self.srp.handle_pending(self.last_now);
        Ok(())
    }

    /// Runs votequorum with `settings` (quorum{} names it as the provider), from the persisted
    /// expected_votes_tracking barrier (0 if none). Called once, before the first input.
    pub fn enable_votequorum(&mut self, settings: QuorumSettings, ev_tracking_barrier: u32) {
        assert!(self.layers.vq.is_none(), "votequorum enabled twice");
        self.layers.vq = Some(Votequorum::new(
            self.srp.node_id(),
            settings,
            ev_tracking_barrier,
            self.last_now,
        ));
    }

    /// votequorum, when it runs.
    pub fn votequorum(&self) -> Option<&Votequorum> {
        self.layers.vq.as_ref()
    }

    /// A votequorum request of a local client; `request` names it in a later
    /// [`QuorumEvent::Reply`].
    pub fn submit_quorum(
        &mut self,
        request: u64,
        req: QuorumRequest,
    ) -> Result<Answer, QuorumError> {
        let vq = self.layers.vq.as_mut().ok_or(QuorumError::NotProvider)?;
        vq.set_now(self.last_now);
        let answer = vq.handle_request(request, req)?;
        self.queue_quorum_messages();
        if self.layers.pack.has_pending() {
            self.srp.handle_pending(self.last_now);
        }
        Ok(answer)
    }

    /// The next votequorum output, in order.
    pub fn poll_quorum_event(&mut self) -> Option<QuorumEvent> {
        self.layers.vq.as_mut()?.poll_event()
    }

    /// votequorum's state now, when it runs.
    pub fn quorum_state(&self) -> Option<QuorumState> {
        self.layers.vq.as_ref().map(Votequorum::state)
    }

    /// Moves votequorum's ordinary messages into the send queue while it has room.
    fn queue_quorum_messages(&mut self) {
        let Some(vq) = self.layers.vq.as_mut() else {
            return;
        };
        while let Some(message) = vq.poll_send() {
            if self
                .layers
                .pack
                .push_app(Guarantee::Agreed, &[&message])
                .is_err()
            {
                vq.unsend(message);
                break;
            }
        }
    }

    /// Leaves the ring cleanly before shutting down.
    pub fn leave(&mut self) {
        self.srp.leave();
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.srp
            .poll_transmit()
            .map(|(dest, bytes)| Transmit { dest, bytes })
    }

    /// Hands a transmitted buffer back for reuse (optional).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.srp.recycle(buf);
    }

    /// The next event in delivery order. A delivery borrows the frame bodies it lies in (see
    /// [`Delivery`]); they stay untouched until the queue has been drained, however many inputs
    /// come in between.
    #[inline]
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        let Some(stored) = self.layers.events.pop_front() else {
            self.layers.release();
            return None;
        };
        let layers = &self.layers;
        fn range(buffer: &[u8], (start, len): (u32, u32)) -> &[u8] {
            &buffer[start as usize..start as usize + len as usize]
        }
        Some(match stored {
            Stored::Config(c) => Event::Config(*c),
            Stored::Group(g) => Event::Group(*g),
            Stored::Deliver {
                sender,
                guarantee,
                buffer,
                group,
                data,
            } => {
                let (buffer, data): (&[u8], _) = match buffer {
                    IN_ARENA => (
                        &layers.arena,
                        Payload::from_slice(range(&layers.arena, data)),
                    ),
                    index => {
                        let body = &layers.frames[index as usize];
                        let (start, len) = (data.0 as usize, data.1 as usize);
                        (body, Payload::from_body(body, start..start + len))
                    }
                };
                Event::Deliver(Delivery {
                    group: range(buffer, group),
                    sender,
                    guarantee,
                    data,
                })
            }
            Stored::DeliverParts {
                sender,
                guarantee,
                group,
                first,
                count,
                skip,
            } => {
                let first = first as usize;
                let parts = &layers.parts[first..first + count as usize];
                Event::Deliver(Delivery {
                    group: range(&layers.arena, group),
                    sender,
                    guarantee,
                    data: Payload::from_parts(parts, skip),
                })
            }
        })
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let change = self.layers.reconfig.poll_timeout();
        let quorum = self.layers.vq.as_ref().and_then(Votequorum::poll_timeout);
        [self.srp.poll_timeout(), change, quorum]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next diagnostic of the protocol (membership steps, token loss, retransmissions),
    /// for the embedding to log. Independent of `poll_event`: nothing depends on reading them,
    /// and at most `limits::NOTICES_MAX` wait (the rest are counted as `notices_dropped`).
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.srp.poll_notice()
    }

    /// Asserts the protocol's invariants now: all of them, including those that walk every
    /// frame store and member set (`Srp::check_invariants`).
    pub fn check_invariants(&self) {
        self.srp.check_invariants(true);
    }

    /// Whether this node's local receivers are behind: while they are, the ring carries nothing
    /// new from the other members (`Srp::set_receivers_behind`). The dataplane sets it while a
    /// client has more queued than its ring takes, for a bounded time.
    pub fn set_receivers_behind(&mut self, behind: bool) {
        self.srp.set_receivers_behind(behind);
    }

    /// Whether every invariant, not only the cheap ones, is asserted after each input. Off by
    /// default; the simulator turns it on.
    pub fn set_check_all_invariants(&mut self, on: bool) {
        self.srp.set_check_all(on);
    }

    pub fn node_id(&self) -> NodeId {
        self.srp.node_id()
    }
    /// The ring this node last installed.
    pub fn ring(&self) -> RingId {
        self.srp.ring()
    }
    pub fn members(&self) -> &[NodeId] {
        self.srp.members()
    }
    pub fn state(&self) -> State {
        self.srp.state()
    }
    pub fn is_operational(&self) -> bool {
        self.srp.state() == State::Operational
    }
    /// Whether the token's next visit here comes unasked: the ring is operational with other
    /// members, this node does not hold the token, and the last token it passed on announced
    /// no hold (see `Srp::token_returns_unasked`).
    pub fn token_returns_unasked(&self) -> bool {
        self.srp.token_returns_unasked()
    }

    /// Whether a message submitted now would only join messages already queued for the token's
    /// next visit, which comes unasked: submitting it at once or just before that visit sends
    /// it on the same visit, so an embedding that sleeps need not wake for it. With nothing
    /// queued it should: the first message is then packed before the token arrives, off the
    /// token's path, and a held token or a hold needs the node's action at once.
    pub fn submit_can_wait(&self) -> bool {
        self.srp.token_returns_unasked() && self.layers.pack.has_pending()
    }
    /// Persist this and pass it back as `ring_seq_start` on restart.
    pub fn max_ring_seq(&self) -> u64 {
        self.srp.max_ring_seq()
    }
    pub fn stats(&self) -> &Stats {
        &self.srp.stats
    }
    /// Members of a group as delivered so far.
    pub fn group_members(&self, group: &[u8]) -> Vec<ProcessId> {
        self.layers.cpg.members(group)
    }
    /// Every group with at least one member, with its members, sorted by name.
    pub fn groups(&self) -> Vec<(Vec<u8>, Vec<ProcessId>)> {
        self.layers
            .cpg
            .groups()
            .map(|(g, m)| (g.to_vec(), m.iter().copied().collect()))
            .collect()
    }
    /// Whether application messages are being held for the group re-sync.
    pub fn syncing(&self) -> bool {
        self.layers.cpg.syncing()
    }
    /// Bytes queued and not yet sent.
    pub fn queued_bytes(&self) -> usize {
        self.layers.pack.queued_bytes()
    }
}
