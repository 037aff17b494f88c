//! An endpoint's counters as one flat list of `key → u64` (the dataplane publishes it to
//! rotord, which keeps each as cmap `stats.<key>`): traffic, drops by cause, and the token
//! rotation histogram.

use std::collections::BTreeMap;

use rotor_crypto::OpenError;
use totem_core::RingId;

/// Counters as published: `(key, value)`, keys without the `stats.` prefix.
pub type Entries = Vec<(String, u64)>;

/// Upper bounds (inclusive, µs) of the token rotation histogram's buckets; one more bucket
/// (`le_inf`) takes everything above the last.
pub const ROTATION_BUCKETS_US: [u64; 12] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 100_000, 1_000_000,
];

/// Token rotation times as seen at one node: the time between two consecutive visits of the
/// token in one ring (a visit in another ring starts over, so membership changes are not
/// counted as rotations). Fixed buckets, plus count, min, mean and max.
#[derive(Debug, Clone, Default)]
pub struct Rotations {
    /// The ring and time (ns) of the last visit.
    last: Option<(RingId, u64)>,
    count: u64,
    sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
    buckets: [u64; ROTATION_BUCKETS_US.len() + 1],
}

impl Rotations {
    /// A token visit in `ring` at `now_ns`.
    pub fn on_token(&mut self, ring: RingId, now_ns: u64) {
        if let Some((last_ring, last_ns)) = self.last {
            if last_ring == ring {
                self.record(now_ns.saturating_sub(last_ns));
            }
        }
        self.last = Some((ring, now_ns));
    }

    fn record(&mut self, ns: u64) {
        self.min_ns = if self.count == 0 {
            ns
        } else {
            self.min_ns.min(ns)
        };
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        let us = ns / 1_000;
        let i = ROTATION_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(ROTATION_BUCKETS_US.len());
        self.buckets[i] += 1;
    }

    /// Rotations measured.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `srp.token_rotations`, `srp.token_rotation_us.{min,mean,max,sum}` and one
    /// `srp.token_rotation_us.le_<bound>` per bucket (`le_inf` last; not cumulative).
    pub fn entries(&self, out: &mut Entries) {
        out.push(("srp.token_rotations".into(), self.count));
        let mean_ns = self.sum_ns.checked_div(self.count).unwrap_or(0);
        for (name, ns) in [
            ("min", self.min_ns),
            ("mean", mean_ns),
            ("max", self.max_ns),
        ] {
            out.push((format!("srp.token_rotation_us.{name}"), ns / 1_000));
        }
        out.push(("srp.token_rotation_us.sum".into(), self.sum_ns / 1_000));
        for (bound, n) in ROTATION_BUCKETS_US.iter().zip(&self.buckets) {
            out.push((format!("srp.token_rotation_us.le_{bound}"), *n));
        }
        out.push((
            "srp.token_rotation_us.le_inf".into(),
            self.buckets[ROTATION_BUCKETS_US.len()],
        ));
    }
}

/// Why an endpoint dropped a datagram (received or to be sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// The crypto layer refused it (`OpenError::reason()` names each).
    Crypto(OpenError),
    /// It authenticated, but its sender is not in the nodelist.
    UnconfiguredSender,
    /// The core addressed a node the peer table has no address for.
    UnknownDestination,
    /// The transport had no room for it, or (AF_XDP) no MAC for the peer yet; the provider's own
    /// counters say which.
    SendRefused,
    /// Sealing failed (the sealer's counter is exhausted).
    SealError,
    /// With several links: a frame the replay window had already seen, which is what a copy
    /// over another link of its sender is (every frame in active mode, every frame while no
    /// link is up yet); with one link such a frame is a `replay`.
    LinkDuplicate,
}

impl DropCause {
    /// The counter's name under `crypto.drops.` or `net.drops.` (see [`Drops::entries`]).
    pub const fn key(self) -> &'static str {
        match self {
            DropCause::Crypto(e) => e.reason(),
            DropCause::UnconfiguredSender => "unconfigured_sender",
            DropCause::UnknownDestination => "unknown_destination",
            DropCause::SendRefused => "send_refused",
            DropCause::SealError => "seal_error",
            DropCause::LinkDuplicate => "link_duplicate",
        }
    }

    /// `crypto` for what the crypto layer refused or failed to seal, `net` for the rest.
    const fn area(self) -> &'static str {
        match self {
            DropCause::Crypto(_) | DropCause::SealError => "crypto",
            _ => "net",
        }
    }
}

/// Datagrams dropped, by cause.
#[derive(Debug, Default, Clone)]
pub struct Drops {
    /// Count per [`DropCause::key`], with the cause's area.
    by_cause: BTreeMap<&'static str, (&'static str, u64)>,
}

impl Drops {
    pub fn count(&mut self, cause: DropCause) {
        self.by_cause
            .entry(cause.key())
            .or_insert((cause.area(), 0))
            .1 += 1;
    }

    /// The count of one cause, by its key (`replay`, `unconfigured_sender`, …).
    pub fn get(&self, key: &str) -> u64 {
        self.by_cause.get(key).map_or(0, |(_, n)| *n)
    }

    /// Every cause that counted something, by key.
    pub fn by_key(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.by_cause.iter().map(|(k, (_, n))| (*k, *n))
    }

    pub fn is_empty(&self) -> bool {
        self.by_cause.is_empty()
    }

    /// `crypto.drops.<key>` for what the crypto layer refused (an `OpenError` reason or
    /// `seal_error`), `net.drops.<key>` for the rest: `unconfigured_sender`,
    /// `unknown_destination`, `send_refused`.
    pub fn entries(&self, out: &mut Entries) {
        for (key, (area, n)) in &self.by_cause {
            out.push((format!("{area}.drops.{key}"), *n));
        }
    }
}

/// What the endpoint moved, independent of the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams handed over by the transport (before crypto), and their bytes.
    pub frames_in: u64,
    pub bytes_in: u64,
    /// Datagrams the transport accepted for sending, and their bytes.
    pub frames_out: u64,
    pub bytes_out: u64,
    /// `Dest::All` frames sent once to the multicast group.
    pub group_sends: u64,
    /// Frames sent to one peer (the token, and `Dest::All` per peer without multicast).
    pub unicast_sends: u64,
}

impl Traffic {
    pub fn entries(&self, out: &mut Entries) {
        for (k, v) in [
            ("net.frames_in", self.frames_in),
            ("net.bytes_in", self.bytes_in),
            ("net.frames_out", self.frames_out),
            ("net.bytes_out", self.bytes_out),
            ("net.group_sends", self.group_sends),
            ("net.unicast_sends", self.unicast_sends),
        ] {
            out.push((k.into(), v));
        }
    }
}

/// One line of `key=value` pairs, for logs.
pub fn line(entries: &Entries) -> String {
    let pairs: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(" ")
}

/// The value of `key` in `entries` (0 when absent): for tests and tools reading a stats line.
pub fn get(entries: &Entries, key: &str) -> u64 {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(seq: u64) -> RingId {
        RingId { rep: 1, seq }
    }

    #[test]
    fn rotations_are_measured_within_one_ring_only() {
        let mut r = Rotations::default();
        r.on_token(ring(4), 1_000_000);
        r.on_token(ring(4), 1_015_000); // 15 µs
        r.on_token(ring(4), 1_315_000); // 300 µs
        r.on_token(ring(8), 9_000_000); // new ring: not a rotation
        r.on_token(ring(8), 9_002_000); // 2 µs
        r.on_token(ring(8), 3_009_002_000); // 3 s
        let mut out = Entries::new();
        r.entries(&mut out);
        assert_eq!(get(&out, "srp.token_rotations"), 4);
        assert_eq!(get(&out, "srp.token_rotation_us.min"), 2);
        assert_eq!(get(&out, "srp.token_rotation_us.max"), 3_000_000);
        assert_eq!(
            get(&out, "srp.token_rotation_us.mean"),
            (15 + 300 + 2 + 3_000_000) / 4
        );
        assert_eq!(get(&out, "srp.token_rotation_us.le_10"), 1);
        assert_eq!(get(&out, "srp.token_rotation_us.le_20"), 1);
        assert_eq!(get(&out, "srp.token_rotation_us.le_500"), 1);
        assert_eq!(get(&out, "srp.token_rotation_us.le_inf"), 1);
        let buckets: u64 = out
            .iter()
            .filter(|(k, _)| k.contains(".le_"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(buckets, 4);
    }

    #[test]
    fn an_empty_histogram_publishes_zeros() {
        let mut out = Entries::new();
        Rotations::default().entries(&mut out);
        assert!(out.iter().all(|(_, v)| *v == 0));
        assert_eq!(out.len(), 5 + ROTATION_BUCKETS_US.len() + 1);
    }
}
