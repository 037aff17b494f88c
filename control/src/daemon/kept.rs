//! Numbers a node keeps on disk across restarts, in `system.state_dir`: the highest ring
//! sequence it was part of and the last epoch a dataplane of it started with.

use std::path::{Path, PathBuf};

use crate::log_at;

/// A number kept in `<state_dir>/<name>_<node>` (decimal text), written to a temporary and
/// renamed so a crash never leaves half a number. An unusable directory or file is logged once
/// and the node runs without it (from what it knows in memory).
pub struct KeptNumber {
    /// What the number is, for log lines ("ring sequence").
    what: &'static str,
    /// `None` when the directory cannot be used.
    path: Option<PathBuf>,
    saved: u64,
}

impl KeptNumber {
    /// The highest ring sequence this node has been part of (`ringid_<node>`, as corosync keeps
    /// its ring id): a restarted node must number new rings above every ring it was in, or two
    /// different rings could share an id.
    pub fn ring_seq(dir: &Path, node_id: u32) -> KeptNumber {
        let name = format!("ringid_{node_id}");
        KeptNumber::open(
            dir,
            &name,
            "ring sequence",
            totem_core::RingId::SEQ_LIMIT - 1,
        )
    }

    /// The last epoch a dataplane of this node started with (`epoch_<node>`): the totem
    /// incarnation and the crypto epoch, which must grow with every start — peers drop frames
    /// of an epoch they have seen as replays and joins of a known incarnation with an old ring
    /// as stale — also across rotord restarts within one second.
    pub fn epoch(dir: &Path, node_id: u32) -> KeptNumber {
        KeptNumber::open(dir, &format!("epoch_{node_id}"), "epoch", u64::MAX)
    }

    /// A kept number above `max` (a file another program wrote) is not one this node kept.
    fn open(dir: &Path, name: &str, what: &'static str, max: u64) -> KeptNumber {
        if let Err(e) = std::fs::create_dir_all(dir) {
            log_at!(
                Warning,
                "MAIN",
                "state directory {}: {e}; {what} not kept across restarts",
                dir.display()
            );
            return KeptNumber {
                what,
                path: None,
                saved: 0,
            };
        }
        let path = dir.join(name);
        let saved = match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| *n <= max)
                .unwrap_or_else(|| {
                    log_at!(
                        Warning,
                        "MAIN",
                        "{}: not a {what} (\"{}\"); starting from 0",
                        path.display(),
                        text.trim()
                    );
                    0
                }),
            Err(_) => 0,
        };
        KeptNumber {
            what,
            path: Some(path),
            saved,
        }
    }

    /// The highest number kept.
    pub fn saved(&self) -> u64 {
        self.saved
    }

    /// Records `value` if it is higher than what is kept.
    pub fn record(&mut self, value: u64) {
        if value <= self.saved {
            return;
        }
        self.saved = value;
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result =
            std::fs::write(&tmp, format!("{value}\n")).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            log_at!(
                Warning,
                "MAIN",
                "{}: {e}; {} not kept across restarts",
                path.display(),
                self.what
            );
            self.path = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_survive_a_reopen_and_only_grow() {
        let dir = std::env::temp_dir().join(format!("rotor-kept-{}", std::process::id()));
        let mut seq = KeptNumber::ring_seq(&dir, 7);
        let mut epoch = KeptNumber::epoch(&dir, 7);
        assert_eq!((seq.saved(), epoch.saved()), (0, 0));
        seq.record(12);
        seq.record(8);
        epoch.record(1_700_000_000);
        let (seq, epoch) = (KeptNumber::ring_seq(&dir, 7), KeptNumber::epoch(&dir, 7));
        assert_eq!((seq.saved(), epoch.saved()), (12, 1_700_000_000));
        assert_eq!(KeptNumber::ring_seq(&dir, 8).saved(), 0, "per node");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_ring_sequence_no_node_could_reach_is_not_kept() {
        let dir = std::env::temp_dir().join(format!("rotor-kept-far-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ringid_7");
        std::fs::write(&file, format!("{}\n", totem_core::RingId::SEQ_LIMIT)).unwrap();
        assert_eq!(KeptNumber::ring_seq(&dir, 7).saved(), 0);
        std::fs::write(&file, format!("{}\n", totem_core::RingId::SEQ_LIMIT - 1)).unwrap();
        assert_eq!(
            KeptNumber::ring_seq(&dir, 7).saved(),
            totem_core::RingId::SEQ_LIMIT - 1
        );
        std::fs::write(dir.join("epoch_7"), format!("{}\n", u64::MAX)).unwrap();
        assert_eq!(KeptNumber::epoch(&dir, 7).saved(), u64::MAX, "any epoch");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
