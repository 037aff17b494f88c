//! The expected_votes_tracking barrier: the highest expected votes this node has seen, kept on
//! disk across restarts (corosync's `ev_tracking` file) so that a group of nodes cut off from
//! a larger cluster cannot come back on its own with a quorum of its own size.

use std::path::{Path, PathBuf};

use crate::error::DaemonError;
use crate::log_at;

/// `<state_dir>/ev_tracking_<node>` (decimal text; one file per node id, as rotor keeps
/// `ringid_<node>`, so several nodes may share a host in tests).
pub struct EvTrackingFile {
    path: PathBuf,
    saved: u32,
}

impl EvTrackingFile {
    /// Opens (creating it at 0 if missing) the barrier of `node_id`. Unlike the ring sequence,
    /// a barrier that cannot be kept is a reason not to start: corosync refuses to start
    /// ("Unable to load ev_tracking file!"), since forgetting it could let a partition regain
    /// quorum with fewer votes after a restart.
    pub fn open(dir: &Path, node_id: u32) -> Result<EvTrackingFile, DaemonError> {
        let path = dir.join(format!("ev_tracking_{node_id}"));
        let unusable = |e: &dyn std::fmt::Display| {
            DaemonError::Config(format!(
                "{}: quorum.expected_votes_tracking keeps the highest expected votes here and \
                 it cannot be used: {e}; fix system.state_dir (or the directory's permissions)",
                path.display()
            ))
        };
        std::fs::create_dir_all(dir).map_err(|e| unusable(&e))?;
        let saved = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| {
                unusable(&format!(
                    "it holds {:?}, not a number; delete it to start from the configured \
                     expected votes",
                    text.trim()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(unusable(&e)),
        };
        let file = EvTrackingFile {
            path: path.clone(),
            saved,
        };
        if saved == 0 {
            file.write(0).map_err(|e| unusable(&e))?;
        }
        Ok(file)
    }

    /// The barrier kept.
    pub fn saved(&self) -> u32 {
        self.saved
    }

    /// Keeps `barrier` if it is higher than what is kept (it never goes down: delete the file
    /// to lower it, as votequorum(5) says).
    pub fn record(&mut self, barrier: u32) {
        if barrier <= self.saved {
            return;
        }
        self.saved = barrier;
        if let Err(e) = self.write(barrier) {
            log_at!(
                Warning,
                "VOTEQ",
                "Unable to update ev_tracking_barrier on disk data!!! {}: {e}",
                self.path.display()
            );
        }
    }

    /// Writes to a temporary, syncs it, then renames it over the file.
    fn write(&self, barrier: u32) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{barrier}\n").as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_barrier_only_rises_and_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("rotor-evt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut f = EvTrackingFile::open(&dir, 3).unwrap();
        assert_eq!(f.saved(), 0);
        f.record(5);
        f.record(4);
        assert_eq!(f.saved(), 5);
        let again = EvTrackingFile::open(&dir, 3).unwrap();
        assert_eq!(again.saved(), 5);
        std::fs::write(dir.join("ev_tracking_3"), "five\n").unwrap();
        let e = EvTrackingFile::open(&dir, 3).err().expect("refused");
        assert!(e.to_string().contains("not a number"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
