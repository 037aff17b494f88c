//! Sealing: header, nonce and tag around a body, for one sender and one boot epoch, under one
//! key at a time (a rotation switches the key; the counter runs on).

use ring::aead::{Aad, LessSafeKey, Nonce};
use thiserror::Error;
use zerocopy::IntoBytes;

use crate::frame::nonce_bytes;
use crate::{Counters, CryptoMode, Keys, SealHeader, HEADER_LEN, MAGIC, TAG_LEN, VERSION};

/// Why a frame could not be sealed. Nothing was written that a peer could accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SealError {
    /// The output buffer cannot hold header, body and tag.
    #[error("frame buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall {
        /// Header + body + tag.
        needed: usize,
        /// Buffer length.
        available: usize,
    },
    /// Every counter of this epoch is used; sealing again would reuse a nonce. The sender must
    /// restart with a newer epoch.
    #[error("frame counter exhausted for this epoch; restart with a newer epoch")]
    CounterExhausted,
    /// The body is longer than AES-GCM allows under one nonce (about 64 GiB).
    #[error("frame body too long for AES-GCM")]
    BodyTooLong,
}

/// Seals the frames one node sends during one boot.
///
/// Invariant: every frame sealed by one `Sealer` has a distinct counter, increasing from 0,
/// whatever key it is sealed under; the nonce (epoch ‖ counter) is never used twice with this
/// sender's subkey as long as the caller gives each boot of a node a larger epoch than the
/// previous boot.
pub struct Sealer {
    key: Option<LessSafeKey>,
    /// `Keys::id` of the key frames are sealed under.
    key_id: u32,
    mode: CryptoMode,
    cluster_hash: u32,
    sender: u32,
    epoch: u32,
    /// Counter of the next frame; `None` once `u64::MAX` was used.
    counter_next: Option<u64>,
    counters: Counters,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer")
            .field("mode", &self.mode)
            .field("cluster_hash", &self.cluster_hash)
            .field("sender", &self.sender)
            .field("epoch", &self.epoch)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .field("counter_next", &self.counter_next)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for node `sender` of the cluster whose header hash is `cluster_hash`, during the
    /// boot `epoch` (supplied by the caller: this crate has no clock; it must be larger than the
    /// epoch of any earlier boot of this node, e.g. a persisted boot count or the start time in
    /// seconds). Derives the sender's subkey once (an HKDF, a few µs).
    pub fn new(
        keys: &Keys,
        mode: CryptoMode,
        cluster_hash: u32,
        sender: u32,
        epoch: u32,
    ) -> Sealer {
        Sealer {
            key: keys.frame_key(mode, sender),
            key_id: mode.key_id(keys),
            mode,
            cluster_hash,
            sender,
            epoch,
            counter_next: Some(0),
            counters: Counters::default(),
        }
    }

    /// The mode frames are sealed in.
    pub fn mode(&self) -> CryptoMode {
        self.mode
    }

    /// The epoch written in every frame.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// [`Keys::id`] of the key frames are sealed under.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Seals every later frame under `keys` (a key rotation: call it once every receiver can
    /// open frames under them). The counter runs on, so no nonce repeats under either key and
    /// receivers' replay windows stay as they are; the old subkey is dropped here.
    pub fn switch_key(&mut self, keys: &Keys) {
        self.key = keys.frame_key(self.mode, self.sender);
        self.key_id = self.mode.key_id(keys);
    }

    /// The counter the next frame will carry, `None` once exhausted.
    pub fn counter_next(&self) -> Option<u64> {
        self.counter_next
    }

    /// Frames and bytes sealed, and seal refusals.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Test hook: jump the counter forward (never backward, so no nonce is reused).
    #[cfg(test)]
    pub(crate) fn skip_counter_to(&mut self, counter: u64) {
        assert!(self.counter_next.is_some_and(|next| next <= counter));
        self.counter_next = Some(counter);
    }

    /// Seals `body` into `out` (header, encrypted or clear body, tag) and returns the frame
    /// length, `body.len() + mode.overhead()`. Copies the body once (into `out`, where it is
    /// then encrypted in place); use [`Sealer::seal_in_place`] when the body can be built in
    /// the frame buffer directly.
    pub fn seal(&mut self, body: &[u8], out: &mut [u8]) -> Result<usize, SealError> {
        let needed = body.len() + self.mode.overhead();
        if out.len() < needed {
            self.counters.seal_buffer_too_small += 1;
            return Err(SealError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        out[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
        self.seal_in_place(out, body.len())
    }

    /// Seals a body already in `frame[HEADER_LEN..HEADER_LEN + body_len]`, writing the header in
    /// front of it and the tag after it, with no copy; returns the frame length,
    /// `body_len + mode.overhead()`. Bytes of `frame` past the frame are untouched.
    pub fn seal_in_place(&mut self, frame: &mut [u8], body_len: usize) -> Result<usize, SealError> {
        let needed = body_len + self.mode.overhead();
        if frame.len() < needed {
            self.counters.seal_buffer_too_small += 1;
            return Err(SealError::BufferTooSmall {
                needed,
                available: frame.len(),
            });
        }
        let Some(counter) = self.counter_next else {
            self.counters.seal_counter_exhausted += 1;
            return Err(SealError::CounterExhausted);
        };
        // The counter is consumed before any crypto so that no path can use it twice.
        self.counter_next = counter.checked_add(1);

        let header = SealHeader {
            magic: MAGIC,
            version: VERSION,
            mode: self.mode.wire_byte(),
            cluster_hash: self.cluster_hash.into(),
            sender: self.sender.into(),
            epoch: self.epoch.into(),
            counter: counter.into(),
            key_id: self.key_id.into(),
        };
        frame[..HEADER_LEN].copy_from_slice(header.as_bytes());
        if let Some(key) = &self.key {
            let nonce = Nonce::assume_unique_for_key(nonce_bytes(self.epoch, counter));
            let tag = if self.mode.encrypts() {
                let (head, rest) = frame.split_at_mut(HEADER_LEN);
                key.seal_in_place_separate_tag(nonce, Aad::from(&*head), &mut rest[..body_len])
            } else {
                // GMAC: empty plaintext, header and clear body as associated data.
                let aad = &frame[..HEADER_LEN + body_len];
                key.seal_in_place_separate_tag(nonce, Aad::from(aad), &mut [])
            }
            .map_err(|_| SealError::BodyTooLong)?;
            let tag_at = HEADER_LEN + body_len;
            frame[tag_at..tag_at + TAG_LEN].copy_from_slice(tag.as_ref());
        }
        self.counters.frames_sealed += 1;
        self.counters.bytes_sealed += needed as u64;
        Ok(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_wrap_is_refused() {
        let keys = Keys::from_authkey_bytes(&[7u8; 256], "wrap").unwrap();
        for mode in CryptoMode::ALL {
            let mut sealer = Sealer::new(&keys, mode, 1, 1, 1);
            let mut out = [0u8; 64];
            sealer.skip_counter_to(u64::MAX - 1);
            assert!(sealer.seal(b"a", &mut out).is_ok());
            assert!(
                sealer.seal(b"b", &mut out).is_ok(),
                "u64::MAX itself is usable"
            );
            assert_eq!(sealer.counter_next(), None);
            assert_eq!(
                sealer.seal(b"c", &mut out),
                Err(SealError::CounterExhausted)
            );
            assert_eq!(
                sealer.seal_in_place(&mut out, 1),
                Err(SealError::CounterExhausted)
            );
            assert_eq!(sealer.counters().seal_counter_exhausted, 2);
            assert_eq!(sealer.counters().frames_sealed, 2);
        }
    }
}
