//! The dataplane's counters as one flat list of `key → u64`, published to rotord (which keeps
//! them as cmap `stats.<key>`). The endpoint's counters (traffic, drops, crypto, the core's and
//! the token rotations) are rotor-endpoint's; the transports add their own. Each report sends
//! only what changed since the one before ([`Reported`]): rotord keeps a key's last value.

use std::collections::HashMap;

pub use rotor_endpoint::stats::{get, line, Entries, Rotations, Traffic, ROTATION_BUCKETS_US};

/// What was last reported to rotord. Most of a node's counters do not move between two reports
/// (200 ms apart); sending only the others spares rotord, which runs at realtime priority,
/// decoding and storing them.
#[derive(Debug, Default)]
pub struct Reported {
    /// Each key's last value, and the report that last saw the key.
    last: HashMap<String, (u64, u64)>,
    /// Reports made.
    reports: u64,
}

impl Reported {
    /// The entries of `all` (every counter now) that are new or changed since the last call.
    /// A key that left `all` is forgotten, so it is sent again should it come back.
    pub fn changed(&mut self, all: Entries) -> Entries {
        self.reports += 1;
        let now = self.reports;
        let count = all.len();
        let mut out = Entries::new();
        for (key, value) in all {
            match self.last.get_mut(&key) {
                Some((last, seen)) => {
                    *seen = now;
                    if *last != value {
                        *last = value;
                        out.push((key, value));
                    }
                }
                None => {
                    self.last.insert(key.clone(), (value, now));
                    out.push((key, value));
                }
            }
        }
        if self.last.len() > count {
            // Keys went away (a link a reload removed).
            self.last.retain(|_, (_, seen)| *seen == now);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pairs: &[(&str, u64)]) -> Entries {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn only_new_and_changed_counters_go_out_and_a_key_that_comes_back_goes_out_again() {
        let mut r = Reported::default();
        let all = e(&[("a", 1), ("b", 2), ("c", 0)]);
        assert_eq!(r.changed(all.clone()), all, "the first report is whole");
        assert_eq!(r.changed(all.clone()), e(&[]));
        assert_eq!(
            r.changed(e(&[("a", 1), ("b", 3), ("c", 0)])),
            e(&[("b", 3)])
        );
        // `c` leaves (its link was removed), then comes back with the value it had.
        assert_eq!(r.changed(e(&[("a", 1), ("b", 3)])), e(&[]));
        assert_eq!(
            r.changed(e(&[("a", 1), ("b", 3), ("c", 0)])),
            e(&[("c", 0)])
        );
        assert_eq!(
            r.changed(e(&[("d", 5), ("a", 2), ("b", 3), ("c", 0)])),
            e(&[("d", 5), ("a", 2)])
        );
    }
}
