//! An endpoint's counters as one flat list of `key → u64` (the dataplane publishes it to
//! rotord, which keeps each as cmap `stats.<key>`): traffic, drops by cause, and the token
//! rotation histogram. They are written into a [`Sheet`], which keeps its keys from one report to
//! the next, so that a report formats and allocates only the keys that are new.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use rotor_crypto::OpenError;
use rotor_proto::stats::{HistogramKeys, TOKEN_ROTATIONS};
use totem_core::RingId;

/// Counters as published: `(key, value)`, keys without the `stats.` prefix.
pub type Entries = Vec<(String, u64)>;

/// The counters of one report, gathered in the same order every time. A report is made on the
/// dataplane's poll thread every 200 ms, and a token that arrives meanwhile waits for it: a key is
/// therefore compared with the one written at the same place last time, and formatted and stored
/// only when it differs (the first report, or a counter that came or went before it). What went
/// out is remembered too, so [`Sheet::changed`] hands on only new and changed counters.
#[derive(Debug, Default, Clone)]
pub struct Sheet {
    slots: Vec<Slot>,
    /// Slots written in this report.
    at: usize,
    /// While set, keys are written as link N's (`<provider>.link<N>.<rest>`).
    link: Option<u8>,
    /// A key being put in link scope.
    scratch: String,
}

#[derive(Debug, Clone)]
struct Slot {
    key: String,
    value: u64,
    /// The value `changed` last handed on for this key; `None`: not yet.
    sent: Option<u64>,
}

impl Sheet {
    pub fn new() -> Sheet {
        Sheet::default()
    }

    /// Starts a report: the puts that follow replace the last report's, in order.
    pub fn clear(&mut self) {
        self.at = 0;
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &str, value: u64) {
        if self.link.is_some() {
            self.put_fmt(format_args!("{key}"), value);
        } else {
            self.put_with(value, |k| k == key, |k| k.push_str(key));
        }
    }

    /// Sets each `(key, value)` of `pairs`, in order.
    pub fn put_all<'k>(&mut self, pairs: impl IntoIterator<Item = (&'k str, u64)>) {
        for (key, value) in pairs {
            self.put(key, value);
        }
    }

    /// Sets the key that `key` formats to to `value`, formatting it only when it differs from the
    /// key at this place in the last report.
    pub fn put_fmt(&mut self, key: fmt::Arguments<'_>, value: u64) {
        if let Some(link) = self.link {
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            let _ = scratch.write_fmt(key);
            let (provider, link_word, rest) = match scratch.split_once('.') {
                Some((provider, rest)) => (provider, ".link", rest),
                None => ("", "link", scratch.as_str()),
            };
            let linked = format_args!("{provider}{link_word}{link}.{rest}");
            self.put_with(
                value,
                |k| formats_to(linked, k),
                |k| {
                    let _ = k.write_fmt(linked);
                },
            );
            self.scratch = scratch;
        } else {
            self.put_with(
                value,
                |k| formats_to(key, k),
                |k| {
                    let _ = k.write_fmt(key);
                },
            );
        }
    }

    /// Runs `f` with the keys it puts written as link `link`'s: `udp.x` as `udp.link<N>.x`,
    /// `xdp.prog.y` as `xdp.link<N>.prog.y` (as `rotor_proto::xdp::for_link` names them), a key
    /// without a dot as `link<N>.<key>`.
    pub fn in_link(&mut self, link: u8, f: impl FnOnce(&mut Sheet)) {
        let outer = self.link.replace(link);
        f(self);
        self.link = outer;
    }

    fn put_with(
        &mut self,
        value: u64,
        same: impl FnOnce(&str) -> bool,
        write: impl FnOnce(&mut String),
    ) {
        match self.slots.get_mut(self.at) {
            Some(slot) => {
                if !same(&slot.key) {
                    slot.key.clear();
                    write(&mut slot.key);
                    slot.sent = None;
                }
                slot.value = value;
            }
            None => {
                let mut key = String::new();
                write(&mut key);
                self.slots.push(Slot {
                    key,
                    value,
                    sent: None,
                });
            }
        }
        self.at += 1;
    }

    /// This report's counters, in the order they were put.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.slots[..self.at]
            .iter()
            .map(|s| (s.key.as_str(), s.value))
    }

    /// The value of `key` in this report (0 when absent): for tests and tools.
    pub fn get(&self, key: &str) -> u64 {
        self.iter().find(|(k, _)| *k == key).map_or(0, |(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.at
    }

    pub fn is_empty(&self) -> bool {
        self.at == 0
    }

    /// The counters of this report that are new or changed since the last call. A key that
    /// left the report is forgotten, so it goes out again should it come back.
    pub fn changed(&mut self) -> Entries {
        self.slots.truncate(self.at);
        let mut out = Entries::new();
        for s in &mut self.slots {
            if s.sent != Some(s.value) {
                s.sent = Some(s.value);
                out.push((s.key.clone(), s.value));
            }
        }
        out
    }

    /// One line of `key=value` pairs, for logs.
    pub fn line(&self) -> String {
        let pairs: Vec<String> = self.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(" ")
    }
}

/// Whether `args` formats to exactly `key`, compared as it is formatted, without allocating.
fn formats_to(args: fmt::Arguments<'_>, key: &str) -> bool {
    if let Some(s) = args.as_str() {
        return s == key;
    }
    struct Compare<'a>(&'a str);
    impl fmt::Write for Compare<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match self.0.strip_prefix(s) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(())
                }
                None => Err(fmt::Error),
            }
        }
    }
    let mut rest = Compare(key);
    rest.write_fmt(args).is_ok() && rest.0.is_empty()
}

/// Upper bounds (inclusive, µs) of a `Histogram`'s buckets (token rotations, the dataplane's
/// housekeeping); one more bucket (`le_inf`) takes everything above the last.
pub const HISTOGRAM_BUCKETS_US: [u64; 12] = [
    10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 100_000, 1_000_000,
];

/// Durations in fixed buckets (`HISTOGRAM_BUCKETS_US`), plus count, min, mean and max.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    count: u64,
    sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
    buckets: [u64; HISTOGRAM_BUCKETS_US.len() + 1],
}

impl Histogram {
    /// One duration of `ns` nanoseconds.
    pub fn record(&mut self, ns: u64) {
        self.min_ns = if self.count == 0 {
            ns
        } else {
            self.min_ns.min(ns)
        };
        self.max_ns = self.max_ns.max(ns);
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        let us = ns / 1_000;
        let i = HISTOGRAM_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(HISTOGRAM_BUCKETS_US.len());
        self.buckets[i] += 1;
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Under `keys` (see rotor-proto's `HistogramKeys`): the count, `min`, `mean`, `max` and
    /// `sum` in µs and one `le_<bound>` per bucket (`le_inf` last; not cumulative).
    pub fn entries(&self, out: &mut Sheet, keys: HistogramKeys) {
        let prefix = keys.prefix;
        out.put(keys.count, self.count);
        let mean_ns = self.sum_ns.checked_div(self.count).unwrap_or(0);
        for (name, ns) in [
            ("min", self.min_ns),
            ("mean", mean_ns),
            ("max", self.max_ns),
            ("sum", self.sum_ns),
        ] {
            out.put_fmt(format_args!("{prefix}.{name}"), ns / 1_000);
        }
        for (bound, n) in HISTOGRAM_BUCKETS_US.iter().zip(&self.buckets) {
            out.put_fmt(format_args!("{prefix}.le_{bound}"), *n);
        }
        out.put_fmt(
            format_args!("{prefix}.le_inf"),
            self.buckets[HISTOGRAM_BUCKETS_US.len()],
        );
    }
}

/// Token rotation times as seen at one node: the time between two consecutive visits of the
/// token in one ring (a visit in another ring starts over, so membership changes are not
/// counted as rotations).
#[derive(Debug, Clone, Default)]
pub struct Rotations {
    /// The ring and time (ns) of the last visit.
    last: Option<(RingId, u64)>,
    times: Histogram,
}

impl Rotations {
    /// A token visit in `ring` at `now_ns`.
    pub fn on_token(&mut self, ring: RingId, now_ns: u64) {
        if let Some((last_ring, last_ns)) = self.last {
            if last_ring == ring {
                self.times.record(now_ns.saturating_sub(last_ns));
            }
        }
        self.last = Some((ring, now_ns));
    }

    /// Rotations measured.
    pub fn count(&self) -> u64 {
        self.times.count()
    }

    /// `srp.token_rotations` and `srp.token_rotation_us.*` (see `Histogram::entries`).
    pub fn entries(&self, out: &mut Sheet) {
        self.times.entries(out, TOKEN_ROTATIONS);
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
    pub fn entries(&self, out: &mut Sheet) {
        for (key, (area, n)) in &self.by_cause {
            out.put_fmt(format_args!("{area}.drops.{key}"), *n);
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
    pub fn entries(&self, out: &mut Sheet) {
        out.put_all([
            ("net.frames_in", self.frames_in),
            ("net.bytes_in", self.bytes_in),
            ("net.frames_out", self.frames_out),
            ("net.bytes_out", self.bytes_out),
            ("net.group_sends", self.group_sends),
            ("net.unicast_sends", self.unicast_sends),
        ]);
    }
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
        let mut out = Sheet::new();
        r.entries(&mut out);
        assert_eq!(out.get("srp.token_rotations"), 4);
        assert_eq!(out.get("srp.token_rotation_us.min"), 2);
        assert_eq!(out.get("srp.token_rotation_us.max"), 3_000_000);
        assert_eq!(
            out.get("srp.token_rotation_us.mean"),
            (15 + 300 + 2 + 3_000_000) / 4
        );
        assert_eq!(out.get("srp.token_rotation_us.le_10"), 1);
        assert_eq!(out.get("srp.token_rotation_us.le_20"), 1);
        assert_eq!(out.get("srp.token_rotation_us.le_500"), 1);
        assert_eq!(out.get("srp.token_rotation_us.le_inf"), 1);
        let buckets: u64 = out
            .iter()
            .filter(|(k, _)| k.contains(".le_"))
            .map(|(_, v)| v)
            .sum();
        assert_eq!(buckets, 4);
    }

    #[test]
    fn a_sheet_keeps_its_keys_and_sends_what_changed_under_the_right_name() {
        let mut s = Sheet::new();
        let report = |s: &mut Sheet, n: u64, extra: bool| {
            s.clear();
            s.put("net.frames_in", n);
            if extra {
                s.put_fmt(format_args!("srp.{}", "tokens"), 7);
            }
            s.put_fmt(format_args!("srp.token_rotation_us.le_{}", 10), n);
            s.put_fmt(format_args!("ab{}", "c"), 1);
            s.changed()
        };
        let e = |pairs: &[(&str, u64)]| -> Entries {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        assert_eq!(
            report(&mut s, 1, false),
            e(&[
                ("net.frames_in", 1),
                ("srp.token_rotation_us.le_10", 1),
                ("abc", 1)
            ])
        );
        assert_eq!(report(&mut s, 1, false), e(&[]));
        assert_eq!(
            report(&mut s, 2, false),
            e(&[("net.frames_in", 2), ("srp.token_rotation_us.le_10", 2)])
        );
        // A key put in the middle takes the place of another: the keys after it are written
        // anew, and each goes out under its own name, even with an unchanged value.
        assert_eq!(
            report(&mut s, 2, true),
            e(&[
                ("srp.tokens", 7),
                ("srp.token_rotation_us.le_10", 2),
                ("abc", 1)
            ])
        );
        assert_eq!(s.len(), 4);
        assert_eq!(s.get("srp.tokens"), 7);
        // A key that is a prefix, or longer, than the one in its place is another key.
        s.clear();
        s.put("net.frames_i", 1);
        s.put("srp.tokensx", 7);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [("net.frames_i", 1), ("srp.tokensx", 7)]
        );
    }

    #[test]
    fn keys_put_in_a_link_scope_name_the_link_after_the_provider() {
        let mut s = Sheet::new();
        for _ in 0..2 {
            s.clear();
            s.put("udp.uring.rx_errors", 1);
            s.in_link(1, |s| {
                s.put("udp.uring.rx_errors", 2);
                s.put_fmt(format_args!("xdp.prog.{}", "redirected"), 3);
                s.in_link(3, |s| s.put("plain", 4));
                s.put("plain", 5);
            });
            s.put("plain", 6);
        }
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [
                ("udp.uring.rx_errors", 1),
                ("udp.link1.uring.rx_errors", 2),
                ("xdp.link1.prog.redirected", 3),
                ("link3.plain", 4),
                ("link1.plain", 5),
                ("plain", 6),
            ]
        );
    }

    #[test]
    fn an_empty_histogram_publishes_zeros() {
        let mut out = Sheet::new();
        Rotations::default().entries(&mut out);
        assert!(out.iter().all(|(_, v)| v == 0));
        assert_eq!(out.len(), 5 + HISTOGRAM_BUCKETS_US.len() + 1);
    }
}
