//! The highest ring sequence this node has been part of, kept on disk across restarts.

use std::path::{Path, PathBuf};

use crate::log_at;

/// The highest ring sequence this node has been part of, kept in `<state_dir>/ringid_<node>`
/// (decimal text) as corosync keeps its ring id: a restarted node must number new rings above
/// every ring it was in, or two different rings could share an id.
pub struct RingSeqFile {
    /// `None` when the directory cannot be used (logged once; the node still runs).
    path: Option<PathBuf>,
    saved: u64,
}

impl RingSeqFile {
    pub fn open(dir: &Path, node_id: u32) -> RingSeqFile {
        if let Err(e) = std::fs::create_dir_all(dir) {
            log_at!(
                Warning,
                "MAIN",
                "state directory {}: {e}; ring sequence not kept across restarts",
                dir.display()
            );
            return RingSeqFile {
                path: None,
                saved: 0,
            };
        }
        let path = dir.join(format!("ringid_{node_id}"));
        let saved = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                log_at!(
                    Warning,
                    "MAIN",
                    "{}: not a ring sequence (\"{}\"); starting from 0",
                    path.display(),
                    text.trim()
                );
                0
            }),
            Err(_) => 0,
        };
        RingSeqFile {
            path: Some(path),
            saved,
        }
    }

    /// The highest ring sequence kept.
    pub fn saved(&self) -> u64 {
        self.saved
    }

    /// Records `seq` if it is higher than what is kept (write to a temporary, then rename).
    pub fn record(&mut self, seq: u64) {
        if seq <= self.saved {
            return;
        }
        self.saved = seq;
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result =
            std::fs::write(&tmp, format!("{seq}\n")).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            log_at!(
                Warning,
                "MAIN",
                "{}: {e}; ring sequence not kept across restarts",
                path.display()
            );
            self.path = None;
        }
    }
}
