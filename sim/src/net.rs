//! The simulated network: datagrams in flight ordered by arrival time, with per-run fault
//! settings (loss, duplication, delay and jitter that reorders, partitions).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::rng::Rng;

/// A datagram in flight.
pub struct Packet {
    pub at: u64,
    pub order: u64,
    pub from: usize,
    pub to: usize,
    pub bytes: Vec<u8>,
}

/// Current fault settings of the network.
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    /// Per-million probability that a datagram is lost.
    pub loss_ppm: u32,
    /// Per-million probability that a datagram is delivered twice.
    pub dup_ppm: u32,
    /// Base one-way delay and extra random delay (which reorders), nanoseconds.
    pub delay_ns: u64,
    pub jitter_ns: u64,
    /// Partition label per node: datagrams cross only between equal labels.
    pub partition: Vec<u32>,
    /// Directed pairs (from, to) whose datagrams are all lost: one-way loss, and connectivity
    /// that is not transitive.
    pub blocked: Vec<(usize, usize)>,
    /// Time a node's interface takes to put one datagram on the wire: a node's datagrams leave
    /// one after another in the order it sent them, so a burst delays what follows it (the
    /// cost Accelerated Ring saves the token). 0: every datagram leaves at once.
    pub send_gap_ns: u64,
}

pub struct Network {
    /// Datagrams in flight by arrival: (at, order, slot in `slots`). The heap moves these keys
    /// only (a datagram's fields would triple what every sift moves, and popping was the
    /// largest cost of a 64-node run's loop outside the nodes). `order` is unique, so the slot
    /// never decides.
    in_flight: BinaryHeap<Reverse<(u64, u64, usize)>>,
    /// The datagrams the keys point at; `None`: free, listed in `free`.
    slots: Vec<Option<Packet>>,
    free: Vec<usize>,
    pub conditions: Conditions,
    order: u64,
    pub sent: u64,
    pub lost: u64,
    /// Per node: when its interface is free again (with `Conditions::send_gap_ns`).
    link_free_at: Vec<u64>,
}

impl Network {
    pub fn new(nodes: usize, send_gap_ns: u64) -> Self {
        Network {
            in_flight: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            conditions: Conditions {
                delay_ns: 30_000,
                jitter_ns: 20_000,
                partition: vec![0; nodes],
                send_gap_ns,
                ..Conditions::default()
            },
            order: 0,
            sent: 0,
            lost: 0,
            link_free_at: vec![0; nodes],
        }
    }

    pub fn next_at(&self) -> Option<u64> {
        self.in_flight.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn pop(&mut self) -> Option<Packet> {
        let Reverse((_, _, slot)) = self.in_flight.pop()?;
        self.free.push(slot);
        Some(self.slots[slot].take().expect("a key points at a datagram"))
    }

    fn push(&mut self, p: Packet) {
        let key = (p.at, p.order);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(p);
                slot
            }
            None => {
                self.slots.push(Some(p));
                self.slots.len() - 1
            }
        };
        self.in_flight.push(Reverse((key.0, key.1, slot)));
    }

    /// Puts a datagram on the wire, subject to the current conditions.
    pub fn send(&mut self, rng: &mut Rng, now: u64, from: usize, to: usize, bytes: &[u8]) {
        self.sent += 1;
        let c = &self.conditions;
        // A datagram lost on the way still took its turn on the sender's interface.
        let leaves = if c.send_gap_ns == 0 {
            now
        } else {
            let at = self.link_free_at[from].max(now) + c.send_gap_ns;
            self.link_free_at[from] = at;
            at
        };
        if c.partition[from] != c.partition[to]
            || c.blocked.contains(&(from, to))
            || rng.chance(c.loss_ppm)
        {
            self.lost += 1;
            return;
        }
        let copies = if rng.chance(c.dup_ppm) { 2 } else { 1 };
        for _ in 0..copies {
            let c = &self.conditions;
            let at = leaves + c.delay_ns + rng.below(c.jitter_ns + 1);
            self.order += 1;
            let order = self.order;
            self.push(Packet {
                at,
                order,
                from,
                to,
                bytes: bytes.to_vec(),
            });
        }
    }
}
