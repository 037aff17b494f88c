//! What a node's configuration must agree on with every other member's, and how a difference
//! is named. The embedding writes a *summary*: one `key=value` line per cluster-wide setting
//! (the totem settings in effect, every nodelist entry with its address, whatever else it wants
//! agreed), sorted; its 64-bit FNV-1a hash is the *digest*. Joins and presences carry the
//! digest, so nodes whose configurations differ never form a ring together (a node configured
//! unlike the ring is kept out instead of making the ring re-form over and over); a node that
//! hears such a node sends it its summary, and each side names the keys that differ.
//!
//! A summary from the network is input from outside: it is parsed leniently (a line without
//! `=` or not UTF-8 is skipped) and never trusted beyond naming differences.

/// Largest summary the embedding may give: what a reconfiguration proposal carries.
pub const SUMMARY_BYTES_MAX: usize = 64 << 10;
/// Differences named in one report; the rest are counted.
pub const DIFFERENCES_MAX: usize = 6;

/// A configuration as its members compare it: the summary and its digest.
///
/// Invariant: `digest == digest_of(&summary)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIdentity {
    digest: u64,
    summary: Vec<u8>,
}

impl Default for ConfigIdentity {
    /// The empty summary: every node built without one agrees with every other.
    fn default() -> Self {
        ConfigIdentity::from_summary(Vec::new())
    }
}

impl ConfigIdentity {
    /// The identity of a summary (`key=value` lines). Longer than [`SUMMARY_BYTES_MAX`] is a
    /// bug of the embedding.
    pub fn from_summary(summary: Vec<u8>) -> ConfigIdentity {
        assert!(
            summary.len() <= SUMMARY_BYTES_MAX,
            "a configuration summary of {} bytes (at most {SUMMARY_BYTES_MAX})",
            summary.len()
        );
        ConfigIdentity {
            digest: digest_of(&summary),
            summary,
        }
    }

    /// The identity of `(key, value)` pairs, sorted by key.
    pub fn from_pairs<K: AsRef<str>, V: std::fmt::Display>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> ConfigIdentity {
        let mut lines: Vec<String> = pairs
            .into_iter()
            .map(|(k, v)| format!("{}={v}", k.as_ref()))
            .collect();
        lines.sort();
        let mut summary = Vec::new();
        for line in lines {
            summary.extend_from_slice(line.as_bytes());
            summary.push(b'\n');
        }
        ConfigIdentity::from_summary(summary)
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub fn summary(&self) -> &[u8] {
        &self.summary
    }
}

/// 64-bit FNV-1a of a summary.
pub fn digest_of(summary: &[u8]) -> u64 {
    summary.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The `key=value` lines of a summary; lines that are not UTF-8 or have no `=` are skipped.
fn lines(summary: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    summary
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok()?.split_once('='))
}

/// What differs between two summaries, one phrase per key, at most `max` phrases, then how
/// many more there are: "totem.token: 5000 there, 3000 here", "nodelist.4: 198.18.0.4:5405
/// there, not listed here". `there`/`here` name the two sides (`"there"`/`"here"`, or
/// `"on node 3"`/`"on node 1"`). Both summaries are read leniently.
pub fn differences(ours: &[u8], theirs: &[u8], here: &str, there: &str, max: usize) -> Vec<String> {
    let mine: std::collections::BTreeMap<&str, &str> = lines(ours).collect();
    let other: std::collections::BTreeMap<&str, &str> = lines(theirs).collect();
    let mut keys: Vec<&str> = mine.keys().chain(other.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let mut out = Vec::new();
    let mut more = 0usize;
    for key in keys {
        let phrase = match (other.get(key), mine.get(key)) {
            (Some(t), Some(m)) if t == m => continue,
            (Some(t), Some(m)) => format!("{key}: {t} {there}, {m} {here}"),
            (Some(t), None) => format!("{key}: {t} {there}, not set {here}"),
            (None, Some(m)) => format!("{key}: not set {there}, {m} {here}"),
            (None, None) => continue,
        };
        if out.len() < max {
            out.push(phrase);
        } else {
            more += 1;
        }
    }
    if more > 0 {
        out.push(format!("and {more} more"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_agree_on_the_same_pairs_in_any_order() {
        let a = ConfigIdentity::from_pairs([("totem.token", 3000), ("nodelist.1", 7)]);
        let b = ConfigIdentity::from_pairs([("nodelist.1", 7), ("totem.token", 3000)]);
        assert_eq!(a, b);
        assert_eq!(a.summary(), b"nodelist.1=7\ntotem.token=3000\n");
        let c = ConfigIdentity::from_pairs([("nodelist.1", 7), ("totem.token", 5000)]);
        assert_ne!(a.digest(), c.digest());
        assert_eq!(
            ConfigIdentity::default().digest(),
            ConfigIdentity::from_summary(Vec::new()).digest()
        );
    }

    #[test]
    fn differences_name_each_key() {
        let here = b"nodelist.1=a\nnodelist.2=b\ntotem.token=3000\n";
        let there = b"nodelist.1=a\nnodelist.4=d\ntotem.token=5000\n\xff\xfe\nnoequals\n";
        assert_eq!(
            differences(here, there, "here", "there", 8),
            [
                "nodelist.2: not set there, b here",
                "nodelist.4: d there, not set here",
                "totem.token: 5000 there, 3000 here",
            ]
        );
        assert_eq!(
            differences(here, there, "here", "there", 1),
            ["nodelist.2: not set there, b here", "and 2 more"]
        );
        assert!(differences(here, here, "here", "there", 8).is_empty());
    }
}
