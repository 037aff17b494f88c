//! The public face of the core: one node's whole protocol stack (SRP, packing, CPG) as a
//! sans-IO state machine with `handle_*` inputs and `poll_*` outputs (STYLE principle 1).

use std::collections::VecDeque;

use crate::config::{ConfigError, TotemConfig};
use crate::cpg::{Cpg, CpgOutput, GroupChange, Member, Request, SubmitError, MCAST_HEAD_MAX};
use crate::pack::{Packer, QueueError};
use crate::srp::{self, ConfigChange, ConfigKind, Srp, State};
use crate::stats::Stats;
use crate::types::{Dest, Guarantee, Instant, NodeId, RingId};
use crate::wire;

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub totem: TotemConfig,
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
#[derive(Debug)]
pub struct Delivery<'a> {
    pub group: &'a [u8],
    pub sender: Member,
    pub guarantee: Guarantee,
    pub data: &'a [u8],
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

/// A queued event. Configuration and group changes are rare and large: boxed, so the common
/// delivery record stays small (it is written and read once per message per node).
enum Stored {
    Config(Box<ConfigChange>),
    Group(Box<GroupChange>),
    Deliver {
        sender: Member,
        guarantee: Guarantee,
        group: (usize, usize),
        data: (usize, usize),
    },
}

/// The layers above the SRP, fed by it in delivery order.
struct Layers {
    pack: Packer,
    cpg: Cpg,
    events: VecDeque<Stored>,
    /// Group names and payloads of queued deliveries; emptied when the queue is drained.
    arena: Vec<u8>,
}

fn store_output(events: &mut VecDeque<Stored>, arena: &mut Vec<u8>, output: CpgOutput<'_>) {
    let stored = match output {
        CpgOutput::Config(c) => Stored::Config(Box::new(c)),
        CpgOutput::Group(g) => Stored::Group(Box::new(g)),
        CpgOutput::Deliver {
            group,
            sender,
            guarantee,
            data,
        } => {
            let g = (arena.len(), group.len());
            arena.extend_from_slice(group);
            let d = (arena.len(), data.len());
            arena.extend_from_slice(data);
            Stored::Deliver {
                sender,
                guarantee,
                group: g,
                data: d,
            }
        }
    };
    events.push_back(stored);
}

impl srp::Upper for Layers {
    fn fill(&mut self, buf: &mut [u8]) -> (usize, bool) {
        self.pack.fill(buf)
    }

    fn backlog_frames(&self) -> u32 {
        self.pack.backlog_frames()
    }

    fn deliver(&mut self, origin: NodeId, body: &[u8]) {
        let Layers {
            pack,
            cpg,
            events,
            arena,
        } = self;
        let mut synced = false;
        pack.unpack(origin, body, |m| {
            synced |= cpg.on_message(m.sender, m.guarantee, m.bytes, &mut |o| {
                store_output(events, arena, o)
            });
        });
        if synced {
            pack.set_app_open(true);
        }
    }

    fn config(&mut self, change: ConfigChange) {
        let Layers {
            pack,
            cpg,
            events,
            arena,
        } = self;
        if change.kind == ConfigKind::Regular {
            // EVS: partial messages of the old ring are discarded by receivers and restarted
            // by their senders; application messages wait for the group re-sync.
            pack.drop_partial();
            pack.restart_partial();
            pack.clear_control();
            pack.set_app_open(false);
        }
        if let Some(joinlist) = cpg.on_config(change, &mut |o| store_output(events, arena, o)) {
            pack.push_control(joinlist);
        }
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
    pub fn new(config: NodeConfig, now: Instant) -> Result<Node, ConfigError> {
        let frame_body = config.totem.frame_size.saturating_sub(wire::DATA_OVERHEAD);
        let srp = Srp::new(
            config.totem,
            config.node_id,
            config.incarnation,
            config.cluster,
            config.ring_seq_start,
            config.seed,
            now,
        )?;
        Ok(Node {
            srp,
            layers: Layers {
                pack: Packer::new(frame_body),
                cpg: Cpg::new(config.node_id),
                events: VecDeque::new(),
                arena: Vec::new(),
            },
            last_now: now,
            scratch: Vec::new(),
        })
    }

    /// A datagram from `from` (the node id the transport authenticated).
    pub fn handle_datagram(&mut self, now: Instant, from: NodeId, bytes: &[u8]) {
        self.last_now = now;
        self.srp.handle_datagram(now, from, bytes, &mut self.layers);
        self.after_input(now);
    }

    /// Time has passed: run the expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = now;
        self.srp.handle_timeout(now, &mut self.layers);
        self.after_input(now);
    }

    fn after_input(&mut self, now: Instant) {
        if self.layers.pack.has_pending() {
            self.srp.handle_pending(now);
        }
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

    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        let Some(stored) = self.layers.events.pop_front() else {
            self.layers.arena.clear();
            return None;
        };
        let arena = &self.layers.arena;
        Some(match stored {
            Stored::Config(c) => Event::Config(*c),
            Stored::Group(g) => Event::Group(*g),
            Stored::Deliver {
                sender,
                guarantee,
                group,
                data,
            } => Event::Deliver(Delivery {
                group: &arena[group.0..group.0 + group.1],
                sender,
                guarantee,
                data: &arena[data.0..data.0 + data.1],
            }),
        })
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.srp.poll_timeout()
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
        self.srp.state
    }
    pub fn is_operational(&self) -> bool {
        self.srp.state == State::Operational
    }
    /// Persist this and pass it back as `ring_seq_start` on restart.
    pub fn max_ring_seq(&self) -> u64 {
        self.srp.max_ring_seq()
    }
    pub fn stats(&self) -> &Stats {
        &self.srp.stats
    }
    /// Members of a group as delivered so far.
    pub fn group_members(&self, group: &[u8]) -> Vec<Member> {
        self.layers.cpg.members(group)
    }
    /// Every group with at least one member, with its members, sorted by name.
    pub fn groups(&self) -> Vec<(Vec<u8>, Vec<Member>)> {
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
