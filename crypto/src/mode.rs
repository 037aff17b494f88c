//! Crypto modes and their mapping from corosync.conf's `crypto_cipher` / `crypto_hash`.

use thiserror::Error;

/// How frames are protected on the wire. One mode per cluster: every node must use the same.
///
/// The wire byte of each mode is part of the frame ABI ([`crate::SealHeader::mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CryptoMode {
    /// AEAD AES-256-GCM: the body is encrypted, header and body are authenticated. The default.
    #[default]
    Gcm256,
    /// AEAD AES-128-GCM (corosync `crypto_cipher: aes128`).
    Gcm128,
    /// Authentication only: AES-256-GCM over an empty plaintext with the whole frame (header and
    /// body) as associated data, i.e. GMAC. The body travels in clear.
    Gmac,
    /// No protection: no tag. Header checks and the replay window still apply, but anyone on the
    /// wire can forge or alter frames.
    None,
}

/// A corosync.conf crypto setting that rotor refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoConfigError {
    /// A cipher corosync knows but rotor deliberately does not implement.
    #[error("crypto_cipher `{name}` is not supported, use aes256")]
    CipherNotSupported {
        /// The configured value.
        name: String,
    },
    /// A `crypto_cipher` value that is not a corosync cipher name.
    #[error("unknown crypto_cipher `{name}` (expected one of: none, aes256, aes192, aes128)")]
    UnknownCipher {
        /// The configured value.
        name: String,
    },
    /// A `crypto_hash` value that is not a corosync hash name.
    #[error(
        "unknown crypto_hash `{name}` (expected one of: none, md5, sha1, sha256, sha384, sha512)"
    )]
    UnknownHash {
        /// The configured value.
        name: String,
    },
}

impl CryptoMode {
    /// Every mode, in wire-byte order; handy for tests and benchmarks.
    pub const ALL: [CryptoMode; 4] = [
        CryptoMode::None,
        CryptoMode::Gcm256,
        CryptoMode::Gcm128,
        CryptoMode::Gmac,
    ];

    /// Maps corosync.conf's `crypto_cipher` and `crypto_hash` (exact, lower-case names as corosync
    /// compares them) to a mode:
    ///
    /// | crypto_cipher      | crypto_hash        | mode |
    /// |---|---|---|
    /// | aes256 or aes192   | any, including none | [`CryptoMode::Gcm256`] |
    /// | aes128             | any, including none | [`CryptoMode::Gcm128`] |
    /// | none               | md5, sha1, sha256, sha384, sha512 | [`CryptoMode::Gmac`] |
    /// | none               | none               | [`CryptoMode::None`] |
    /// | 3des               | any                | error: not supported, use aes256 |
    ///
    /// Why: GCM authenticates the frame itself, so the corosync hash name only says "authenticate"
    /// and its algorithm is not used. `ring` has no AES-192-GCM, so aes192 is upgraded to
    /// AES-256-GCM (a stronger key, same wire cost) rather than refused.
    pub fn from_corosync(cipher: &str, hash: &str) -> Result<CryptoMode, CryptoConfigError> {
        let hash_on = match hash {
            "none" => false,
            "md5" | "sha1" | "sha256" | "sha384" | "sha512" => true,
            other => {
                return Err(CryptoConfigError::UnknownHash {
                    name: other.to_owned(),
                })
            }
        };
        match cipher {
            "aes256" | "aes192" => Ok(CryptoMode::Gcm256),
            "aes128" => Ok(CryptoMode::Gcm128),
            "3des" => Err(CryptoConfigError::CipherNotSupported {
                name: cipher.to_owned(),
            }),
            "none" if hash_on => Ok(CryptoMode::Gmac),
            "none" => Ok(CryptoMode::None),
            other => Err(CryptoConfigError::UnknownCipher {
                name: other.to_owned(),
            }),
        }
    }

    /// The mode's byte in [`crate::SealHeader::mode`].
    pub const fn wire_byte(self) -> u8 {
        match self {
            CryptoMode::None => 0,
            CryptoMode::Gcm256 => 1,
            CryptoMode::Gcm128 => 2,
            CryptoMode::Gmac => 3,
        }
    }

    /// The mode of a wire byte, `None` (the Option) for an unknown byte.
    pub const fn from_wire_byte(byte: u8) -> Option<CryptoMode> {
        match byte {
            0 => Some(CryptoMode::None),
            1 => Some(CryptoMode::Gcm256),
            2 => Some(CryptoMode::Gcm128),
            3 => Some(CryptoMode::Gmac),
            _ => None,
        }
    }

    /// Short lower-case name used in logs, stats and benchmark output.
    pub const fn name(self) -> &'static str {
        match self {
            CryptoMode::None => "none",
            CryptoMode::Gcm256 => "gcm256",
            CryptoMode::Gcm128 => "gcm128",
            CryptoMode::Gmac => "gmac",
        }
    }

    /// Bytes of tag after the body: 16 for the GCM and GMAC modes, 0 for [`CryptoMode::None`].
    pub const fn tag_len(self) -> usize {
        match self {
            CryptoMode::None => 0,
            _ => crate::TAG_LEN,
        }
    }

    /// Bytes a sealed frame adds to its body: header plus tag.
    /// The key id frames of this mode carry under `keys`: [`Keys::id`], or 0 in mode none
    /// (no key).
    pub fn key_id(self, keys: &crate::Keys) -> u32 {
        match self {
            CryptoMode::None => 0,
            _ => keys.id(),
        }
    }

    pub const fn overhead(self) -> usize {
        crate::HEADER_LEN + self.tag_len()
    }

    /// Whether the body is encrypted (as opposed to travelling in clear).
    pub const fn encrypts(self) -> bool {
        matches!(self, CryptoMode::Gcm256 | CryptoMode::Gcm128)
    }

    /// The `ring` AEAD algorithm behind the mode, if any.
    pub(crate) fn aead(self) -> Option<&'static ring::aead::Algorithm> {
        match self {
            CryptoMode::Gcm256 | CryptoMode::Gmac => Some(&ring::aead::AES_256_GCM),
            CryptoMode::Gcm128 => Some(&ring::aead::AES_128_GCM),
            CryptoMode::None => None,
        }
    }
}

impl core::fmt::Display for CryptoMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
