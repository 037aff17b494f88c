//! `rotor keygen`: the cluster's shared authentication key, as corosync-keygen makes it —
//! random bytes (256 by default) from the kernel's generator, written with mode 0400 so that
//! only its owner can read it. An existing key is never overwritten unless asked.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Bytes in a generated key (corosync-keygen's default).
pub const KEY_LEN: usize = 256;
/// The shortest key rotord accepts (corosync's `TOTEM_PRIVATE_KEY_LEN_MIN`).
pub const KEY_LEN_MIN: usize = 128;
/// The longest key rotord accepts (corosync's `TOTEM_PRIVATE_KEY_LEN_MAX`).
pub const KEY_LEN_MAX: usize = 4096;
/// Where the key goes by default (corosync's default authkey path).
pub const KEY_PATH_DEFAULT: &str = rotor_cli::AUTHKEY_PATH_DEFAULT;

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{0}: a key already exists; use --force to replace it")]
    Exists(PathBuf),
    #[error(
        "cannot write {path}: the directory {dir} does not exist; create it (mkdir -p {dir}) or \
         write the key elsewhere with -k FILE"
    )]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("unsupported key size {0} (supported {KEY_LEN_MIN} to {KEY_LEN_MAX} bytes)")]
    Size(usize),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read random bytes from the kernel: {0}")]
    Random(getrandom::Error),
    #[error("random source {path}: {reason}")]
    RandomFile { path: PathBuf, reason: String },
}

/// What to write and where from.
#[derive(Clone, Debug)]
pub struct KeygenOptions {
    pub path: PathBuf,
    /// Key length in bytes, `KEY_LEN_MIN..=KEY_LEN_MAX`.
    pub size: usize,
    /// Read the bytes from this file instead of getrandom(2) (corosync-keygen's `-r`).
    pub random_file: Option<PathBuf>,
    /// Replace an existing file.
    pub force: bool,
}

impl KeygenOptions {
    /// The default key at `path`.
    pub fn new(path: &Path) -> KeygenOptions {
        KeygenOptions {
            path: path.to_path_buf(),
            size: KEY_LEN,
            random_file: None,
            force: false,
        }
    }
}

/// Writes a new key to `path` (256 bytes from the kernel). With `force`, an existing file is
/// replaced.
pub fn generate(path: &Path, force: bool) -> Result<(), KeygenError> {
    generate_with(&KeygenOptions {
        force,
        ..KeygenOptions::new(path)
    })
}

/// Writes a new key as `o` says. A replaced key is replaced atomically: the new key is written
/// beside it and renamed over it, so a reader never sees half a key.
pub fn generate_with(o: &KeygenOptions) -> Result<(), KeygenError> {
    let path = o.path.as_path();
    if !(KEY_LEN_MIN..=KEY_LEN_MAX).contains(&o.size) {
        return Err(KeygenError::Size(o.size));
    }
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => Path::new("/"),
    };
    if !dir.is_dir() {
        return Err(KeygenError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    if path.exists() && !o.force {
        return Err(KeygenError::Exists(path.to_path_buf()));
    }
    let mut key = vec![0u8; o.size];
    let filled = match &o.random_file {
        None => getrandom::fill(&mut key).map_err(KeygenError::Random),
        Some(src) => read_random(src, &mut key),
    };
    if let Err(e) = filled {
        key.fill(0);
        return Err(e);
    }
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
    if let Err(source) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(KeygenError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// Fills `key` from the file `src` (a device such as /dev/random may return less per read).
fn read_random(src: &Path, key: &mut [u8]) -> Result<(), KeygenError> {
    let fail = |reason: String| KeygenError::RandomFile {
        path: src.to_path_buf(),
        reason,
    };
    let mut f = std::fs::File::open(src).map_err(|e| fail(e.to_string()))?;
    let mut filled = 0;
    while filled < key.len() {
        match f.read(&mut key[filled..]) {
            Ok(0) => return Err(fail(format!("ended after {filled} of {} bytes", key.len()))),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Ok(())
}
