//! `rotor keygen`: the cluster's shared authentication key, as corosync-keygen makes it —
//! 256 random bytes from the kernel's generator, written with mode 0400 so that only its owner
//! can read it. An existing key is never overwritten unless asked.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Bytes in a generated key (corosync-keygen's default).
pub const KEY_LEN: usize = 256;
/// Where the key goes by default (corosync's default authkey path).
pub const KEY_PATH_DEFAULT: &str = "/etc/corosync/authkey";

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{0}: a key already exists; use --force to replace it")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read random bytes from the kernel: {0}")]
    Random(getrandom::Error),
}

/// Writes a new key to `path`. With `force`, an existing file is replaced (atomically: the new
/// key is written beside it and renamed over it, so a reader never sees half a key).
pub fn generate(path: &Path, force: bool) -> Result<(), KeygenError> {
    let io = |source| KeygenError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() && !force {
        return Err(KeygenError::Exists(path.to_path_buf()));
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(KeygenError::Random)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&tmp)?;
        file.write_all(&key)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    key.fill(0);
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}
