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

impl PartialEq for Packet {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Packet {}
impl PartialOrd for Packet {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Packet {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
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
    pub in_flight: BinaryHeap<Reverse<Packet>>,
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
        self.in_flight.peek().map(|Reverse(p)| p.at)
    }

    pub fn pop(&mut self) -> Option<Packet> {
        self.in_flight.pop().map(|Reverse(p)| p)
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
            let at = leaves + c.delay_ns + rng.below(c.jitter_ns + 1);
            self.order += 1;
            self.in_flight.push(Reverse(Packet {
                at,
                order: self.order,
                from,
                to,
                bytes: bytes.to_vec(),
            }));
        }
    }
}
