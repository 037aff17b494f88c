//! `rotord --pid-file FILE`: the pid written to FILE under a write lock held while rotord runs,
//! as corosync keeps /run/corosync.pid — a second rotord on the same file is refused (exit 18)
//! instead of running beside the first, and a file that cannot be created or locked stops the
//! start (exit 17). The file is removed on a clean stop; a crash leaves it, unlocked, and the
//! next start takes it over.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::DaemonError;

/// A held pid file. Dropping it removes the file.
pub struct PidFile {
    path: PathBuf,
    /// Holds the lock (close-on-exec: the dataplane does not inherit it).
    _file: File,
}

impl PidFile {
    /// Creates (or takes over) `path`, locks it and writes this process's pid.
    pub fn acquire(path: &Path) -> Result<PidFile, DaemonError> {
        let fail = |what: &str, e: std::io::Error| DaemonError::PidFile {
            path: path.display().to_string(),
            reason: format!("{what}: {e}"),
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| fail("cannot create it", e))?;
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 0,
            l_pid: 0,
        };
        // SAFETY: F_SETLK with a valid flock on a descriptor we own.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == -1 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EACCES) => {
                    let holder = std::fs::read_to_string(path).unwrap_or_default();
                    Err(DaemonError::PidFileLocked {
                        path: path.display().to_string(),
                        pid: holder.trim().to_owned(),
                    })
                }
                _ => Err(fail("cannot lock it", e)),
            };
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|e| fail("cannot write it", e))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
