//! The dataplane's counters as one flat list of `key → u64`, published to rotord (which keeps
//! them as cmap `stats.<key>`). The endpoint's counters (traffic, drops, crypto, the core's and
//! the token rotations) are rotor-endpoint's; the transports add their own. All of them are
//! written into one [`Sheet`] kept for the service loop's life, so a report formats no key it formatted
//! before, and each report sends only what changed since the one before ([`Sheet::changed`]):
//! rotord keeps a key's last value.

pub use rotor_endpoint::stats::{
    Entries, Histogram, Rotations, Sheet, Traffic, HISTOGRAM_BUCKETS_US,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pairs: &[(&str, u64)]) -> Entries {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    /// One report of `pairs`, and what it sends.
    fn report(sheet: &mut Sheet, pairs: &[(&str, u64)]) -> Entries {
        sheet.clear();
        for (k, v) in pairs {
            sheet.put(k, *v);
        }
        sheet.changed()
    }

    #[test]
    fn only_new_and_changed_counters_go_out_and_a_key_that_comes_back_goes_out_again() {
        let mut r = Sheet::new();
        let all = [("a", 1), ("b", 2), ("c", 0)];
        assert_eq!(report(&mut r, &all), e(&all), "the first report is whole");
        assert_eq!(report(&mut r, &all), e(&[]));
        assert_eq!(
            report(&mut r, &[("a", 1), ("b", 3), ("c", 0)]),
            e(&[("b", 3)])
        );
        // `c` leaves (its link was removed), then comes back with the value it had.
        assert_eq!(report(&mut r, &[("a", 1), ("b", 3)]), e(&[]));
        assert_eq!(
            report(&mut r, &[("a", 1), ("b", 3), ("c", 0)]),
            e(&[("c", 0)])
        );
        // A key put before the others moves them all: each is sent again under its own name.
        assert_eq!(
            report(&mut r, &[("d", 5), ("a", 2), ("b", 3), ("c", 0)]),
            e(&[("d", 5), ("a", 2), ("b", 3), ("c", 0)])
        );
        assert_eq!(
            report(&mut r, &[("d", 5), ("a", 2), ("b", 4), ("c", 0)]),
            e(&[("b", 4)])
        );
        assert_eq!(r.get("b"), 4);
        assert_eq!(r.len(), 4);
    }

    /// rotord finds link N's `xdp.*` counters by rotor-proto's name for them.
    #[test]
    fn link_counters_are_named_as_rotord_looks_for_them() {
        let keys = [
            "xdp.prog.redirected",
            "xdp.socket.rx_dropped",
            "xdp.frames_in",
        ];
        let mut s = Sheet::new();
        s.in_link(2, |s| keys.iter().for_each(|k| s.put(k, 1)));
        let named: Vec<String> = s.iter().map(|(k, _)| k.to_owned()).collect();
        let want: Vec<String> = keys
            .iter()
            .map(|k| rotor_proto::xdp::for_link(k, 2))
            .collect();
        assert_eq!(named, want);
    }
}
