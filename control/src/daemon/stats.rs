//! The dataplane's counters as rotord keeps them: combined across dataplane lifetimes (a
//! restarted dataplane counts from zero; rotord adds what the ones before it counted, as
//! rotor-proto's `stats::combine` says for each key), and cleared on request (`stats.clear.*`,
//! corosync-cmapctl -C) without ever going back for the metrics: cmap shows a counter less
//! what it was when last cleared, the metrics show it whole.

use std::collections::BTreeMap;

use rotor_proto::stats::{combine, Combine};

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// What the dataplanes that ended contributed (a sum, or an extreme).
    ended: u64,
    /// The running dataplane's latest value.
    current: u64,
    /// The whole value when the key was last cleared (counters only).
    cleared_at: u64,
}

/// What `stats.clear.<what>` clears: the counters under these prefixes.
pub fn clear_prefixes(what: &str) -> Option<&'static [&'static str]> {
    Some(match what {
        "totem" => &["srp."],
        "knet" => &["net.", "crypto.", "udp.", "xdp."],
        "ipc" => &["ipc."],
        // rotor measures no scheduling misses.
        "schedmiss" => &[],
        "all" => &[""],
        _ => return None,
    })
}

/// Every counter a dataplane of this node reported.
#[derive(Debug, Default)]
pub struct StatsBook {
    entries: BTreeMap<String, Entry>,
}

impl StatsBook {
    /// The running dataplane's latest counters.
    pub fn update(&mut self, counters: &[(String, u64)]) {
        for (key, value) in counters {
            self.entries.entry(key.clone()).or_default().current = *value;
        }
    }

    /// The running dataplane is gone: what it counted stays, its levels go.
    pub fn end_lifetime(&mut self) {
        for (key, e) in &mut self.entries {
            match combine(key) {
                Combine::Sum => e.ended = e.ended.saturating_add(e.current),
                Combine::Min if e.current > 0 => {
                    e.ended = if e.ended == 0 {
                        e.current
                    } else {
                        e.ended.min(e.current)
                    }
                }
                Combine::Max => e.ended = e.ended.max(e.current),
                Combine::Kept => continue,
                Combine::Gauge | Combine::Min | Combine::Mean { .. } => {}
            }
            e.current = 0;
        }
    }

    /// The whole value of `key` across every dataplane (monotonic for counters).
    pub fn total(&self, key: &str) -> u64 {
        let Some(e) = self.entries.get(key) else {
            return 0;
        };
        match combine(key) {
            Combine::Sum => e.ended.saturating_add(e.current),
            Combine::Gauge | Combine::Kept => e.current,
            Combine::Min => match (e.ended, e.current) {
                (0, c) | (c, 0) => c,
                (a, b) => a.min(b),
            },
            Combine::Max => e.ended.max(e.current),
            Combine::Mean { sum, count } => {
                self.total(sum).checked_div(self.total(count)).unwrap_or(0)
            }
        }
    }

    /// The value cmap shows: a counter less its value when last cleared.
    pub fn shown(&self, key: &str) -> u64 {
        match combine(key) {
            Combine::Sum => {
                let cleared = self.entries.get(key).map_or(0, |e| e.cleared_at);
                self.total(key).saturating_sub(cleared)
            }
            Combine::Mean { sum, count } => {
                self.shown(sum).checked_div(self.shown(count)).unwrap_or(0)
            }
            _ => self.total(key),
        }
    }

    /// Every key with the value cmap shows.
    pub fn shown_all(&self) -> Vec<(String, u64)> {
        self.entries
            .keys()
            .map(|k| (k.clone(), self.shown(k)))
            .collect()
    }

    /// Every key with its whole value (for the metrics).
    pub fn totals(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.entries.keys().map(|k| (k.as_str(), self.total(k)))
    }

    /// Forgets every key `which` names (a removed link's counters); returns them.
    pub fn forget(&mut self, which: impl Fn(&str) -> bool) -> Vec<String> {
        let keys: Vec<String> = self.entries.keys().filter(|k| which(k)).cloned().collect();
        for k in &keys {
            self.entries.remove(k);
        }
        keys
    }

    /// Clears the counters under `prefixes` (as cmap shows them).
    pub fn clear(&mut self, prefixes: &[&str]) {
        let keys: Vec<String> = self
            .entries
            .keys()
            .filter(|k| combine(k) == Combine::Sum && prefixes.iter().any(|p| k.starts_with(p)))
            .cloned()
            .collect();
        for key in keys {
            let total = self.total(&key);
            if let Some(e) = self.entries.get_mut(&key) {
                e.cleared_at = total;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn counters_survive_a_dataplane_restart_and_levels_do_not() {
        let mut b = StatsBook::default();
        b.update(&c(&[
            ("srp.delivered", 10),
            ("ipc.clients", 2),
            ("xdp.prog.redirected", 100),
            ("srp.token_rotation_us.max", 50),
            ("srp.token_rotation_us.min", 7),
        ]));
        b.end_lifetime();
        assert_eq!(b.total("srp.delivered"), 10);
        assert_eq!(b.total("ipc.clients"), 0);
        assert_eq!(
            b.total("xdp.prog.redirected"),
            100,
            "the program outlives it"
        );
        b.update(&c(&[
            ("srp.delivered", 3),
            ("ipc.clients", 1),
            ("xdp.prog.redirected", 130),
            ("srp.token_rotation_us.max", 20),
            ("srp.token_rotation_us.min", 9),
        ]));
        assert_eq!(b.total("srp.delivered"), 13);
        assert_eq!(b.total("ipc.clients"), 1);
        assert_eq!(b.total("xdp.prog.redirected"), 130);
        assert_eq!(b.total("srp.token_rotation_us.max"), 50);
        assert_eq!(b.total("srp.token_rotation_us.min"), 7);
    }

    #[test]
    fn clearing_resets_what_cmap_shows_not_the_metrics() {
        let mut b = StatsBook::default();
        b.update(&c(&[
            ("srp.delivered", 10),
            ("ipc.requests", 4),
            ("srp.token_rotations", 4),
            ("srp.token_rotation_us.sum", 400),
            ("srp.token_rotation_us.mean", 100),
        ]));
        b.clear(clear_prefixes("totem").unwrap());
        assert_eq!(b.shown("srp.delivered"), 0);
        assert_eq!(b.shown("ipc.requests"), 4, "ipc is not totem");
        assert_eq!(b.total("srp.delivered"), 10, "metrics never go back");
        b.update(&c(&[
            ("srp.delivered", 15),
            ("srp.token_rotations", 6),
            ("srp.token_rotation_us.sum", 1000),
        ]));
        assert_eq!(b.shown("srp.delivered"), 5);
        assert_eq!(
            b.shown("srp.token_rotation_us.mean"),
            300,
            "600 µs over 2 rotations"
        );
        assert_eq!(b.total("srp.token_rotation_us.mean"), 166);
        b.clear(clear_prefixes("all").unwrap());
        assert_eq!(b.shown("ipc.requests"), 0);
        assert!(clear_prefixes("bogus").is_none());
    }

    #[test]
    fn a_forgotten_key_is_gone_others_stay() {
        let mut b = StatsBook::default();
        b.update(&c(&[
            ("knet.node2.link1.connected", 1),
            ("knet.node2.link0.connected", 1),
        ]));
        let gone = b.forget(|k| k.contains(".link1."));
        assert_eq!(gone, ["knet.node2.link1.connected"]);
        assert_eq!(b.total("knet.node2.link0.connected"), 1);
        assert!(!b.shown_all().iter().any(|(k, _)| k.contains(".link1.")));
    }
}
