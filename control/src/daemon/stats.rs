//! The dataplane's counters as rotord keeps them: combined across dataplane lifetimes (a
//! restarted dataplane counts from zero; rotord adds what the ones before it counted, as
//! rotor-proto's `stats::combine` says for each key), and cleared on request (`stats.clear.*`,
//! corosync-cmapctl -C) without ever going back for the metrics: cmap shows a counter less
//! what it was when last cleared, the metrics show it whole.

use std::collections::{BTreeMap, HashMap};

use rotor_proto::cmap::Value;
use rotor_proto::stats::{combine, Combine};

use crate::cmap::{Access, CmapStore};

/// corosync's `stats.srp.*` counters (exec/stats.c) that rotor counts too: (corosync's
/// name, rotor's counter under `stats.srp.`). Both are published; `stats.srp.rx_msg_dropped`
/// is the sum of rotor's `drop_*` counters.
pub const COROSYNC_SRP_COUNTERS: &[(&str, &str)] = &[
    ("orf_token_rx", "tokens"),
    ("mcast_tx", "data_out"),
    ("mcast_rx", "data_in"),
    ("mcast_retx", "retransmitted"),
    ("memb_join_tx", "joins_sent"),
    ("memb_join_rx", "joins_in"),
    ("gather_entered", "gathers"),
    ("operational_entered", "rings_installed"),
    ("operational_token_lost", "token_lost"),
    ("recovery_entered", "recoveries"),
];

/// The cmap key of the sum of rotor's `srp.drop_*` counters, corosync's name for it.
const RX_MSG_DROPPED_KEY: &str = "stats.srp.rx_msg_dropped";

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// How its values combine (`combine` of its key, looked up once: every counter is read
    /// every 200 ms, and the lookup matches the key against a list of patterns).
    kind: Combine,
    /// What the dataplanes that ended contributed (a sum, or an extreme).
    ended: u64,
    /// The running dataplane's latest value.
    current: u64,
    /// The whole value when the key was last cleared (counters only).
    cleared_at: u64,
}

impl Entry {
    /// A counter's whole value: what the ended dataplanes and the running one counted.
    fn sum(&self) -> u64 {
        self.ended.saturating_add(self.current)
    }
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
            match self.entries.get_mut(key) {
                Some(e) => e.current = *value,
                // A key is cloned only the first time it is seen.
                None => {
                    let e = Entry {
                        kind: combine(key),
                        ended: 0,
                        current: *value,
                        cleared_at: 0,
                    };
                    self.entries.insert(key.clone(), e);
                }
            }
        }
    }

    /// The running dataplane is gone: what it counted stays, its levels go.
    pub fn end_lifetime(&mut self) {
        for e in self.entries.values_mut() {
            match e.kind {
                Combine::Sum => e.ended = e.sum(),
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
        self.entries.get(key).map_or(0, |e| self.total_of(e))
    }

    fn total_of(&self, e: &Entry) -> u64 {
        match e.kind {
            Combine::Sum => e.sum(),
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
        self.entries.get(key).map_or(0, |e| self.shown_of(e))
    }

    fn shown_of(&self, e: &Entry) -> u64 {
        match e.kind {
            Combine::Sum => self.total_of(e).saturating_sub(e.cleared_at),
            Combine::Mean { sum, count } => {
                self.shown(sum).checked_div(self.shown(count)).unwrap_or(0)
            }
            _ => self.total_of(e),
        }
    }

    /// Every key with the value cmap shows.
    pub fn shown_all(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.entries
            .iter()
            .map(|(k, e)| (k.as_str(), self.shown_of(e)))
    }

    /// Every key with its whole value (for the metrics).
    pub fn totals(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.entries
            .iter()
            .map(|(k, e)| (k.as_str(), self.total_of(e)))
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
        for (k, e) in &mut self.entries {
            if e.kind == Combine::Sum && prefixes.iter().any(|p| k.starts_with(p)) {
                e.cleared_at = e.sum();
            }
        }
    }
}

/// What of a [`StatsBook`] is in cmap: each key as `stats.<key>` as cmap shows it (cleared
/// counters from where they were cleared), corosync's names for the SRP counters applications
/// read ([`COROSYNC_SRP_COUNTERS`]) and the sum of the drop counters. Each publish walks the
/// whole book (every dataplane's counters, combined), though a report carries only the counters
/// that changed, and rotord runs at realtime priority: only a value that changed since it was
/// last set is set again (a set builds the key, checks it and looks it up several times).
#[derive(Debug, Default)]
pub struct Publisher {
    /// What was last set, by book key.
    set: HashMap<String, u64>,
    /// The drop counters' sum last set.
    dropped: Option<u64>,
}

impl Publisher {
    /// Sets in `cmap` what changed in `book` since the last call.
    pub fn publish(&mut self, book: &StatsBook, cmap: &mut CmapStore) {
        let mut dropped = None;
        for (k, v) in book.shown_all() {
            if k.starts_with("srp.drop_") {
                *dropped.get_or_insert(0u64) += v;
            }
            if self.set.get(k) == Some(&v) {
                continue;
            }
            let corosync = k.strip_prefix("srp.").and_then(|ours| {
                COROSYNC_SRP_COUNTERS
                    .iter()
                    .find(|(_, counter)| *counter == ours)
            });
            if let Some((name, _)) = corosync {
                let _ = cmap.set(&format!("stats.srp.{name}"), Value::U64(v), Access::Daemon);
            }
            if cmap
                .set(&format!("stats.{k}"), Value::U64(v), Access::Daemon)
                .is_ok()
            {
                self.set.insert(k.to_owned(), v);
            }
        }
        if let Some(v) = dropped.filter(|_| dropped != self.dropped) {
            if cmap
                .set(RX_MSG_DROPPED_KEY, Value::U64(v), Access::Daemon)
                .is_ok()
            {
                self.dropped = dropped;
            }
        }
    }

    /// `stats.<key>` was deleted from cmap: set it again whatever its value.
    pub fn forget(&mut self, key: &str) {
        self.set.remove(key);
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
        assert!(!b.shown_all().any(|(k, _)| k.contains(".link1.")));
    }

    #[test]
    fn the_publisher_sets_what_changed_under_both_names_and_again_once_forgotten() {
        let mut book = StatsBook::default();
        let mut cmap = CmapStore::new();
        let mut p = Publisher::default();
        let get = |cmap: &CmapStore, k: &str| match cmap.get(k) {
            Some(Value::U64(v)) => Some(*v),
            _ => None,
        };
        book.update(&c(&[
            ("srp.tokens", 5),
            ("srp.drop_bad", 2),
            ("srp.drop_late", 1),
            ("ipc.clients", 1),
        ]));
        p.publish(&book, &mut cmap);
        assert_eq!(get(&cmap, "stats.srp.tokens"), Some(5));
        assert_eq!(
            get(&cmap, "stats.srp.orf_token_rx"),
            Some(5),
            "corosync's name"
        );
        assert_eq!(get(&cmap, "stats.srp.rx_msg_dropped"), Some(3));
        assert_eq!(get(&cmap, "stats.ipc.clients"), Some(1));
        // An unchanged value is not set again: a key taken away behind the publisher's back
        // stays away...
        cmap.delete("stats.ipc.clients", Access::Daemon).unwrap();
        cmap.delete("stats.srp.rx_msg_dropped", Access::Daemon)
            .unwrap();
        p.publish(&book, &mut cmap);
        assert_eq!(get(&cmap, "stats.ipc.clients"), None);
        assert_eq!(get(&cmap, "stats.srp.rx_msg_dropped"), None);
        // ...until it is forgotten (as a removed link's keys are), or its value changes.
        p.forget("ipc.clients");
        book.update(&c(&[("srp.tokens", 9), ("srp.drop_bad", 3)]));
        p.publish(&book, &mut cmap);
        assert_eq!(get(&cmap, "stats.ipc.clients"), Some(1));
        assert_eq!(get(&cmap, "stats.srp.tokens"), Some(9));
        assert_eq!(get(&cmap, "stats.srp.orf_token_rx"), Some(9));
        assert_eq!(get(&cmap, "stats.srp.rx_msg_dropped"), Some(4));
        // A clear is a change: cmap shows the counters from zero.
        book.clear(&["srp."]);
        p.publish(&book, &mut cmap);
        assert_eq!(get(&cmap, "stats.srp.tokens"), Some(0));
        assert_eq!(get(&cmap, "stats.srp.orf_token_rx"), Some(0));
        assert_eq!(get(&cmap, "stats.srp.rx_msg_dropped"), Some(0));
        assert_eq!(
            get(&cmap, "stats.ipc.clients"),
            Some(1),
            "a gauge is not cleared"
        );
    }
}
