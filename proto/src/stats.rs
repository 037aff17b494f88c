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
}
