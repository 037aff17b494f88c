//! How rotord reads each counter of a dataplane's `FromDataplane::Stats` across dataplane
//! lifetimes. A dataplane's counters start at zero when it starts; rotord keeps what the ones
//! before it counted, so `stats.*` in cmap and the metrics never go back when a dataplane is
//! restarted. Most keys are counters; the few that are not are listed here, beside the
//! message that carries them.

/// How a key's values from successive dataplanes make one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// A counter: the sum over every dataplane this rotord ran.
    Sum,
    /// A level of the running dataplane (clients now, bytes queued now): zero while none runs.
    Gauge,
    /// Already counted across dataplane lifetimes by something that outlives them (the XDP
    /// program's counters, since rotord loaded it): the latest value as it is.
    Kept,
    /// The least non-zero value any dataplane reported.
    Min,
    /// The largest value any dataplane reported.
    Max,
    /// `sum / count` of two other keys, recomputed from their combined values.
    Mean {
        sum: &'static str,
        count: &'static str,
    },
}

/// The keys of a duration histogram a dataplane reports (rotor-endpoint's `stats::Histogram`):
/// how many durations under `count`, and under `prefix` (in µs) `min`, `mean`, `max`, `sum`
/// and one `le_<bound>` per bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramKeys {
    pub count: &'static str,
    pub prefix: &'static str,
}

/// Token rotation times at a node, within one ring.
pub const TOKEN_ROTATIONS: HistogramKeys = HistogramKeys {
    count: "srp.token_rotations",
    prefix: "srp.token_rotation_us",
};

/// The dataplane's housekeeping on its poll thread (clients, transports' upkeep, the report).
pub const HOUSEKEEPING: HistogramKeys = HistogramKeys {
    count: "poll.housekeepings",
    prefix: "poll.housekeeping_us",
};

/// Every histogram a dataplane reports; each one's `min`, `max` and `mean` are in
/// `NOT_COUNTERS` (a test checks it).
pub const HISTOGRAMS: [HistogramKeys; 2] = [TOKEN_ROTATIONS, HOUSEKEEPING];

/// The keys (without `stats.`) that are not counters, by exact name or with one `*` standing
/// for any text (`xdp.prog.*`, `link.*.up`).
pub const NOT_COUNTERS: &[(&str, Combine)] = &[
    ("ipc.clients", Combine::Gauge),
    ("ipc.backlog_bytes", Combine::Gauge),
    ("ipc.backlog_bytes_max", Combine::Max),
    ("srp.token_rotation_us.min", Combine::Min),
    ("srp.token_rotation_us.max", Combine::Max),
    (
        "srp.token_rotation_us.mean",
        Combine::Mean {
            sum: "srp.token_rotation_us.sum",
            count: "srp.token_rotations",
        },
    ),
    ("poll.housekeeping_us.min", Combine::Min),
    ("poll.housekeeping_us.max", Combine::Max),
    (
        "poll.housekeeping_us.mean",
        Combine::Mean {
            sum: "poll.housekeeping_us.sum",
            count: "poll.housekeepings",
        },
    ),
    ("xdp.prog.*", Combine::Kept),
    ("knet.*.connected", Combine::Gauge),
    ("knet.*.enabled", Combine::Gauge),
    ("knet.*.latency_ave", Combine::Gauge),
    ("knet.*.latency_min", Combine::Min),
    ("knet.*.latency_max", Combine::Max),
];

/// How `key` (without `stats.`) combines across dataplane lifetimes.
pub fn combine(key: &str) -> Combine {
    NOT_COUNTERS
        .iter()
        .find(|(name, _)| match name.split_once('*') {
            Some((head, tail)) => {
                key.len() >= head.len() + tail.len() && key.starts_with(head) && key.ends_with(tail)
            }
            None => key == *name,
        })
        .map_or(Combine::Sum, |(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_unless_listed() {
        assert_eq!(combine("srp.delivered"), Combine::Sum);
        assert_eq!(combine("ipc.clients"), Combine::Gauge);
        assert_eq!(combine("ipc.clients_attached"), Combine::Sum);
        assert_eq!(combine("xdp.prog.redirected"), Combine::Kept);
        assert_eq!(combine("knet.node2.link0.connected"), Combine::Gauge);
        assert_eq!(combine("knet.node2.link1.latency_min"), Combine::Min);
        assert_eq!(combine("knet.node2.link0.tx_data_packets"), Combine::Sum);
        assert!(matches!(
            combine("srp.token_rotation_us.mean"),
            Combine::Mean { .. }
        ));
    }

    #[test]
    fn every_histograms_extremes_and_mean_are_not_counters() {
        for h in HISTOGRAMS {
            let key = |stat: &str| format!("{}.{stat}", h.prefix);
            assert_eq!(combine(&key("min")), Combine::Min, "{h:?}");
            assert_eq!(combine(&key("max")), Combine::Max, "{h:?}");
            match combine(&key("mean")) {
                Combine::Mean { sum, count } => {
                    assert_eq!((sum, count), (key("sum").as_str(), h.count), "{h:?}")
                }
                other => panic!("{h:?}: the mean combines as {other:?}"),
            }
            for counter in [key("sum"), key("le_100"), key("le_inf"), h.count.to_owned()] {
                assert_eq!(combine(&counter), Combine::Sum, "{counter}");
            }
        }
    }
}
