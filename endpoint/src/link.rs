//! Link probes: each node sends every configured peer a small sealed probe once per
//! `PROBE_INTERVAL_NS` and answers each probe it receives at once, so every node knows, per
//! peer, whether the link answers and how long a round trip takes — what knet's pings tell
//! corosync, and what the metrics show as per-peer link latency and state. Totem itself says
//! neither: the token passes each link one way, held for as long as the hold timer says.
//!
//! A probe is its own frame body inside the same seal as the protocol's frames (authenticated,
//! replay-checked), told apart by its magic: `RL` where the protocol's frames say `TT`.
//!
//! ```text
//! 0      2    3      4          8                     16
//! | "RL" | v1 | kind | seq (BE) | sent_ns (BE, the prober's clock) |
//! ```
//!
//! The answer echoes `seq` and `sent_ns` unchanged, so only the prober's clock is read. A node
//! without probes reads a probe as a frame of unknown magic and drops it (counted).

/// The magic of a probe body (the protocol's frames start with `TT`).
pub const MAGIC: [u8; 2] = *b"RL";
/// The probe layout's version.
pub const VERSION: u8 = 1;
/// A probe body's size.
pub const PROBE_BYTES: usize = 16;
const KIND_PROBE: u8 = 1;
const KIND_ANSWER: u8 = 2;
/// How often each peer is probed.
pub const PROBE_INTERVAL_NS: u64 = 1_000_000_000;
/// A peer that answered none of the last this many probes is down.
pub const PROBES_MISSED_DOWN: u32 = 3;
/// Answers waiting to be sent (one per probe received; more are dropped: the prober counts a
/// missed answer, nothing else depends on it).
const ANSWERS_MAX: usize = 256;

/// What this node knows of the link to one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    pub node: u32,
    pub probes_sent: u64,
    pub answers: u64,
    /// The sequence number of the newest probe answered (0: none yet).
    pub answered_seq: u32,
    pub rtt_last_ns: u64,
    pub rtt_min_ns: u64,
    pub rtt_max_ns: u64,
    pub rtt_sum_ns: u64,
}

/// The probes of one endpoint.
#[derive(Debug)]
pub struct Links {
    peers: Vec<LinkState>,
    /// The sequence number of the last round of probes (1 for the first).
    seq: u32,
    next_round_ns: Option<u64>,
    /// Probe bodies to seal and send: (peer node id, body).
    outbox: Vec<(u32, [u8; PROBE_BYTES])>,
}

impl Links {
    /// Probes for `peers` (node ids); the first round goes at `first_round_ns`. Callers spread
    /// it over an interval (from the node's seed), so that nodes started together do not
    /// probe in step: a burst of every node's probes at one instant is what a network (or the
    /// simulator's) least needs at the moment something else happens.
    pub fn new(peers: impl Iterator<Item = u32>, first_round_ns: u64) -> Links {
        let peers: Vec<LinkState> = peers
            .map(|node| LinkState {
                node,
                ..LinkState::default()
            })
            .collect();
        Links {
            outbox: Vec::with_capacity(peers.len() + ANSWERS_MAX),
            next_round_ns: if peers.is_empty() {
                None
            } else {
                Some(first_round_ns)
            },
            peers,
            seq: 0,
        }
    }

    /// When the next round of probes is due.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.next_round_ns
    }

    /// Queues a round of probes if one is due at `now_ns`.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        match self.next_round_ns {
            Some(due) if due <= now_ns => {}
            _ => return,
        }
        self.seq = self.seq.wrapping_add(1).max(1);
        for p in &mut self.peers {
            p.probes_sent += 1;
            self.outbox
                .push((p.node, encode(KIND_PROBE, self.seq, now_ns)));
        }
        self.next_round_ns = Some(now_ns + PROBE_INTERVAL_NS);
    }

    /// A probe body from `node` (authenticated) at `now_ns`: a probe is answered, an answer
    /// measured. Returns false when the body is not a well-formed probe of this version.
    pub fn handle_body(&mut self, now_ns: u64, node: u32, body: &[u8]) -> bool {
        let Some((kind, seq, sent_ns)) = decode(body) else {
            return false;
        };
        match kind {
            KIND_PROBE => {
                if self.outbox.len() < self.peers.len() + ANSWERS_MAX {
                    self.outbox.push((node, encode(KIND_ANSWER, seq, sent_ns)));
                }
                true
            }
            KIND_ANSWER => {
                let Some(p) = self.peers.iter_mut().find(|p| p.node == node) else {
                    return true;
                };
                // An answer to a probe we sent: not from the future, not older than the last.
                if seq == 0 || seq > self.seq || seq <= p.answered_seq || sent_ns > now_ns {
                    return true;
                }
                let rtt = now_ns - sent_ns;
                p.answered_seq = seq;
                p.answers += 1;
                p.rtt_last_ns = rtt;
                p.rtt_min_ns = if p.answers == 1 {
                    rtt
                } else {
                    p.rtt_min_ns.min(rtt)
                };
                p.rtt_max_ns = p.rtt_max_ns.max(rtt);
                p.rtt_sum_ns = p.rtt_sum_ns.saturating_add(rtt);
                true
            }
            _ => false,
        }
    }

    /// Probe bodies to send, each with the peer's node id; the caller seals and sends them.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (u32, [u8; PROBE_BYTES])> {
        self.outbox.drain(..)
    }

    /// Whether `p` answered one of the last `PROBES_MISSED_DOWN` rounds.
    pub fn up(&self, p: &LinkState) -> bool {
        p.answered_seq != 0 && self.seq.saturating_sub(p.answered_seq) < PROBES_MISSED_DOWN
    }

    pub fn peers(&self) -> &[LinkState] {
        &self.peers
    }

    /// `link.<node>.{up,probes,answers,rtt_us.last,rtt_us.min,rtt_us.max,rtt_us.sum}`.
    pub fn entries(&self, out: &mut crate::Entries) {
        for p in &self.peers {
            let n = p.node;
            for (k, v) in [
                ("up", u64::from(self.up(p))),
                ("probes", p.probes_sent),
                ("answers", p.answers),
                ("rtt_us.last", p.rtt_last_ns / 1_000),
                ("rtt_us.min", p.rtt_min_ns / 1_000),
                ("rtt_us.max", p.rtt_max_ns / 1_000),
                ("rtt_us.sum", p.rtt_sum_ns / 1_000),
            ] {
                out.push((format!("link.{n}.{k}"), v));
            }
        }
    }
}

fn encode(kind: u8, seq: u32, sent_ns: u64) -> [u8; PROBE_BYTES] {
    let mut b = [0u8; PROBE_BYTES];
    b[..2].copy_from_slice(&MAGIC);
    b[2] = VERSION;
    b[3] = kind;
    b[4..8].copy_from_slice(&seq.to_be_bytes());
    b[8..16].copy_from_slice(&sent_ns.to_be_bytes());
    b
}

/// (kind, seq, sent_ns) of a probe body; `None` unless it is exactly one of this version.
fn decode(body: &[u8]) -> Option<(u8, u32, u64)> {
    let b: &[u8; PROBE_BYTES] = body.try_into().ok()?;
    if b[..2] != MAGIC || b[2] != VERSION {
        return None;
    }
    let seq = u32::from_be_bytes(b[4..8].try_into().ok()?);
    let sent = u64::from_be_bytes(b[8..16].try_into().ok()?);
    Some((b[3], seq, sent))
}

/// Whether a body is a probe (by its magic), before any other check.
pub fn is_probe(body: &[u8]) -> bool {
    body.starts_with(&MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_answered_and_the_answer_measured() {
        let mut a = Links::new([2].into_iter(), 0);
        let mut b = Links::new([1].into_iter(), 0);
        assert_eq!(a.poll_timeout(), Some(0));
        a.handle_timeout(1_000);
        let probes: Vec<_> = a.drain().collect();
        assert_eq!(probes.len(), 1);
        assert!(b.handle_body(5_000, 1, &probes[0].1));
        let answers: Vec<_> = b.drain().collect();
        assert_eq!(answers[0].0, 1);
        assert!(a.handle_body(41_000, 2, &answers[0].1));
        let p = a.peers()[0];
        assert_eq!((p.answers, p.rtt_last_ns, p.answered_seq), (1, 40_000, 1));
        assert!(a.up(&p));
        // A replayed answer is not measured twice.
        assert!(a.handle_body(90_000, 2, &answers[0].1));
        assert_eq!(a.peers()[0].answers, 1);
        assert_eq!(a.poll_timeout(), Some(1_000 + PROBE_INTERVAL_NS));
    }

    #[test]
    fn a_peer_that_stops_answering_goes_down() {
        let mut a = Links::new([2].into_iter(), 0);
        let mut b = Links::new([1].into_iter(), 0);
        let mut now = 0;
        a.handle_timeout(now);
        let probe = a.drain().next().unwrap().1;
        b.handle_body(now, 1, &probe);
        let answer = b.drain().next().unwrap().1;
        a.handle_body(now + 10, 2, &answer);
        for _ in 0..PROBES_MISSED_DOWN {
            now += PROBE_INTERVAL_NS;
            a.handle_timeout(now);
            a.drain();
        }
        assert!(!a.up(&a.peers()[0]));
        let mut out = Vec::new();
        a.entries(&mut out);
        assert!(out.contains(&("link.2.up".to_string(), 0)));
        assert!(out.contains(&("link.2.probes".to_string(), 4)));
    }

    #[test]
    fn other_bodies_are_not_probes() {
        let mut a = Links::new([2].into_iter(), 0);
        assert!(!a.handle_body(0, 2, b"TT\x01\x01"));
        assert!(!a.handle_body(
            0,
            2,
            &[b'R', b'L', 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        ));
        assert!(!a.handle_body(0, 2, b"RL"));
        assert!(is_probe(b"RL..") && !is_probe(b"TT.."));
    }
}
