//! The cluster authkey and the per-sender subkeys derived from it.
//!
//! What holds key material, and whether it is wiped:
//! - the authkey file's bytes: read into a [`Zeroizing`] buffer, wiped as soon as the HKDF
//!   pseudo-random key (PRK) is extracted;
//! - the PRK (32 bytes) lives in [`Keys`] in a [`Zeroizing`] buffer, wiped on drop;
//! - each derived subkey: a [`Zeroizing`] stack buffer, wiped right after it is handed to `ring`;
//! - `ring`'s own key schedules (the HMAC state used during derivation, and the AES round keys and
//!   GHASH table inside every `LessSafeKey` held by a `Sealer`/`Opener`) are not zeroized on drop:
//!   `ring` offers no way to do so. They live as long as the `Sealer`/`Opener` that owns them.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::{hkdf, hmac};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::CryptoMode;

/// Smallest authkey accepted: 1024 bits, as corosync.
pub const AUTHKEY_LEN_MIN: usize = 128;
/// Largest authkey accepted: 4096 bytes, as corosync.
pub const AUTHKEY_LEN_MAX: usize = 4096;

/// HKDF-Extract salt: fixed, so the PRK depends only on the authkey; it separates rotor's use
/// of an authkey from any other use of the same bytes (e.g. by corosync itself).
const HKDF_SALT: &[u8] = b"rotor-crypto v1 authkey";
/// First part of every HKDF-Expand info.
const HKDF_INFO_LABEL: &[u8] = b"rotor-crypto v1 frame key";
/// HKDF-Expand info of a key's id (then the cluster name).
const HKDF_ID_LABEL: &[u8] = b"rotor-crypto v2 key id";

/// Why an authkey could not be loaded. Every variant names the file.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The file could not be opened, inspected or read (missing, no permission, I/O error).
    #[error("authkey {path}: cannot read: {source}")]
    Io {
        /// The authkey path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The path is a directory, device, FIFO or socket.
    #[error("authkey {path}: not a regular file ({kind})")]
    NotRegularFile {
        /// The authkey path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// Group or other users may read or write the file.
    #[error(
        "authkey {path}: mode {mode:04o} gives group or other users access; \
         it must be readable by its owner only (chmod 0400 or 0600)"
    )]
    Permissions {
        /// The authkey path.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// Shorter than [`AUTHKEY_LEN_MIN`] or longer than [`AUTHKEY_LEN_MAX`].
    #[error(
        "authkey {path}: {len_desc} bytes, expected {AUTHKEY_LEN_MIN}..={AUTHKEY_LEN_MAX} \
         (`rotor keygen` or `corosync-keygen` write 256)"
    )]
    BadLength {
        /// The authkey path (`<memory>` for [`Keys::from_authkey_bytes`]).
        path: PathBuf,
        /// The length found, or "more than 4096".
        len_desc: String,
    },
}

/// The cluster's key material: the HKDF PRK of the authkey, bound to the cluster name.
///
/// Cloning copies the PRK into another wiped-on-drop buffer.
///
/// Invariant: `prk` is HKDF-Extract(SHA-256, fixed salt `"rotor-crypto v1 authkey"`, authkey)
/// and is wiped on drop.
#[derive(Clone)]
pub struct Keys {
    prk: Zeroizing<[u8; 32]>,
    cluster_name: String,
    /// False for [`Keys::unkeyed`]: only mode none may use them.
    keyed: bool,
    /// [`Keys::id`]. Invariant: 0 exactly for unkeyed keys.
    id: u32,
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keys")
            .field("cluster_name", &self.cluster_name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Reads the authkey file at `path` (corosync's `totem.keyfile`, default
    /// `/etc/corosync/authkey`, or `COROSYNC_TOTEM_AUTHKEY_FILE`) for the cluster `cluster_name`.
    ///
    /// Refuses a path that is not a regular file, a file that group or others may read or write
    /// (`mode & 0o077 != 0`), and a key outside [`AUTHKEY_LEN_MIN`]..=[`AUTHKEY_LEN_MAX`] bytes.
    /// The type and mode are checked on the path before opening (so a FIFO cannot block the open)
    /// and again on the opened file (so a file swapped in between is caught).
    pub fn from_authkey_file(path: &Path, cluster_name: &str) -> Result<Keys, KeyError> {
        let io_error = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        check_metadata(path, &std::fs::metadata(path).map_err(io_error)?)?;
        let mut file = File::open(path).map_err(io_error)?;
        check_metadata(path, &file.metadata().map_err(io_error)?)?;

        // One buffer, allocated once at its final size, so no reallocation leaves key bytes behind.
        let mut buffer = Zeroizing::new(vec![0u8; AUTHKEY_LEN_MAX + 1]);
        let mut len = 0;
        while len < buffer.len() {
            match file.read(&mut buffer[len..]) {
                Ok(0) => break,
                Ok(count) => len += count,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(io_error(error)),
            }
        }
        Self::from_bytes_at(path, &buffer[..len], cluster_name)
    }

    /// Builds keys from authkey bytes already in memory (the simulator, tests, a key received by
    /// other means). Same length rule as [`Keys::from_authkey_file`].
    pub fn from_authkey_bytes(authkey: &[u8], cluster_name: &str) -> Result<Keys, KeyError> {
        Self::from_bytes_at(Path::new("<memory>"), authkey, cluster_name)
    }

    fn from_bytes_at(path: &Path, authkey: &[u8], cluster_name: &str) -> Result<Keys, KeyError> {
        if !(AUTHKEY_LEN_MIN..=AUTHKEY_LEN_MAX).contains(&authkey.len()) {
            let len_desc = if authkey.len() > AUTHKEY_LEN_MAX {
                format!("more than {AUTHKEY_LEN_MAX}")
            } else {
                authkey.len().to_string()
            };
            return Err(KeyError::BadLength {
                path: path.to_owned(),
                len_desc,
            });
        }
        // HKDF-Extract is HMAC(salt, ikm) (RFC 5869 §2.2); computed with ring::hmac so the PRK
        // bytes can be kept in a zeroizing buffer (ring's hkdf::Prk is opaque).
        let salt_key = hmac::Key::new(hmac::HMAC_SHA256, HKDF_SALT);
        let tag = hmac::sign(&salt_key, authkey);
        let mut prk = Zeroizing::new([0u8; 32]);
        prk.copy_from_slice(tag.as_ref());
        let id = key_id(&prk, cluster_name);
        Ok(Keys {
            prk,
            cluster_name: cluster_name.to_owned(),
            keyed: true,
            id,
        })
    }

    /// Keys for [`CryptoMode::None`], which seals and opens without a key: no authkey is read
    /// (a cluster without crypto needs no key file). A `Sealer` or `Opener` of any other mode
    /// refuses them (a programming error, asserted).
    pub fn unkeyed(cluster_name: &str) -> Keys {
        Keys {
            prk: Zeroizing::new([0u8; 32]),
            cluster_name: cluster_name.to_owned(),
            keyed: false,
            id: 0,
        }
    }

    /// The key's id, carried in every frame sealed under it (`SealHeader::key_id`): 32 bits
    /// of HKDF-Expand(PRK, "rotor-crypto v2 key id" ‖ cluster name), never 0 for a real key;
    /// 0 for [`Keys::unkeyed`]. It is derived from the key itself rather than counted, so a
    /// node that restarts with the key file agrees with the ring without knowing how many
    /// rotations came before; it reveals nothing of the key (a one-way function of it).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether these keys came from an authkey (false for [`Keys::unkeyed`]).
    pub fn is_keyed(&self) -> bool {
        self.keyed
    }

    /// The cluster name bound into every subkey.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The `ring` key for frames sent by node `sender` in `mode`, or `None` for
    /// [`CryptoMode::None`].
    ///
    /// subkey = HKDF-Expand(PRK, "rotor-crypto v1 frame key" ‖ mode byte ‖ sender (4 B, BE) ‖
    /// cluster name length (4 B, BE) ‖ cluster name, key length). Binding the sender means nonces
    /// need only be unique per sender; binding the mode keeps GMAC and GCM keys apart.
    pub(crate) fn frame_key(
        &self,
        mode: CryptoMode,
        sender: u32,
    ) -> Option<ring::aead::LessSafeKey> {
        let algorithm = mode.aead()?;
        assert!(
            self.keyed,
            "crypto mode {} needs keys read from an authkey, not Keys::unkeyed",
            mode.name()
        );
        let key_len = algorithm.key_len();
        let mode_byte = [mode.wire_byte()];
        let sender_bytes = sender.to_be_bytes();
        let name_len = u32::try_from(self.cluster_name.len())
            .expect("cluster name longer than 4 GiB")
            .to_be_bytes();
        let info: [&[u8]; 5] = [
            HKDF_INFO_LABEL,
            &mode_byte,
            &sender_bytes,
            &name_len,
            self.cluster_name.as_bytes(),
        ];
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &self.prk[..]);
        let mut subkey = Zeroizing::new([0u8; 32]);
        prk.expand(&info, OutputLen(key_len))
            .and_then(|okm| okm.fill(&mut subkey[..key_len]))
            .expect("HKDF-Expand of at most 32 bytes cannot fail");
        let unbound = ring::aead::UnboundKey::new(algorithm, &subkey[..key_len])
            .expect("subkey length is the algorithm's key length");
        Some(ring::aead::LessSafeKey::new(unbound))
    }
}

/// [`Keys::id`] of a PRK.
fn key_id(prk: &[u8; 32], cluster_name: &str) -> u32 {
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk);
    let mut id = [0u8; 4];
    prk.expand(&[HKDF_ID_LABEL, cluster_name.as_bytes()], OutputLen(4))
        .and_then(|okm| okm.fill(&mut id))
        .expect("HKDF-Expand of 4 bytes cannot fail");
    u32::from_be_bytes(id).max(1)
}

/// HKDF output length for ring's `KeyType`.
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn check_metadata(path: &Path, metadata: &std::fs::Metadata) -> Result<(), KeyError> {
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_dir() {
            "a directory"
        } else if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_socket() {
            "a socket"
        } else if file_type.is_block_device() || file_type.is_char_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(KeyError::NotRegularFile {
            path: path.to_owned(),
            kind,
        });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}
