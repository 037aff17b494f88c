//! Statistics of a `Sealer` or `Opener`, for cmap `stats.crypto.*`.

use crate::OpenError;

/// Monotonic counts kept by a [`crate::Sealer`] (the `*sealed` and `seal_*` fields) or an
/// [`crate::Opener`] (all others). Plain `u64`s: the owner is single-threaded and publishes a
/// copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames sealed.
    pub frames_sealed: u64,
    /// Bytes of sealed frames (header + body + tag).
    pub bytes_sealed: u64,
    /// Seals refused because the buffer was too small.
    pub seal_buffer_too_small: u64,
    /// Seals refused because the counter was exhausted.
    pub seal_counter_exhausted: u64,
    /// Frames opened (authenticated, fresh, recorded).
    pub frames_opened: u64,
    /// Bytes of opened frames (header + body + tag).
    pub bytes_opened: u64,
    /// [`OpenError::Truncated`].
    pub truncated: u64,
    /// [`OpenError::BadMagic`].
    pub bad_magic: u64,
    /// [`OpenError::BadVersion`].
    pub bad_version: u64,
    /// [`OpenError::ForeignCluster`].
    pub foreign_cluster: u64,
    /// [`OpenError::ModeMismatch`].
    pub mode_mismatch: u64,
    /// [`OpenError::OwnFrame`].
    pub own_frame: u64,
    /// [`OpenError::UnknownKey`].
    pub unknown_key: u64,
    /// [`OpenError::TooManySenders`].
    pub too_many_senders: u64,
    /// [`OpenError::StaleEpoch`].
    pub stale_epoch: u64,
    /// [`OpenError::Replay`].
    pub replay: u64,
    /// [`OpenError::InvalidDigest`].
    pub invalid_digest: u64,
}

impl Counters {
    /// The counter of one rejection reason.
    pub fn rejected(&self, reason: OpenError) -> u64 {
        match reason {
            OpenError::Truncated => self.truncated,
            OpenError::BadMagic => self.bad_magic,
            OpenError::BadVersion => self.bad_version,
            OpenError::ForeignCluster => self.foreign_cluster,
            OpenError::ModeMismatch => self.mode_mismatch,
            OpenError::OwnFrame => self.own_frame,
            OpenError::UnknownKey => self.unknown_key,
            OpenError::TooManySenders => self.too_many_senders,
            OpenError::StaleEpoch => self.stale_epoch,
            OpenError::Replay => self.replay,
            OpenError::InvalidDigest => self.invalid_digest,
        }
    }

    /// All frames rejected, whatever the reason.
    pub fn frames_rejected(&self) -> u64 {
        OpenError::ALL
            .iter()
            .map(|&reason| self.rejected(reason))
            .sum()
    }

    pub(crate) fn count_rejected(&mut self, reason: OpenError) {
        let counter = match reason {
            OpenError::Truncated => &mut self.truncated,
            OpenError::BadMagic => &mut self.bad_magic,
            OpenError::BadVersion => &mut self.bad_version,
            OpenError::ForeignCluster => &mut self.foreign_cluster,
            OpenError::ModeMismatch => &mut self.mode_mismatch,
            OpenError::OwnFrame => &mut self.own_frame,
            OpenError::UnknownKey => &mut self.unknown_key,
            OpenError::TooManySenders => &mut self.too_many_senders,
            OpenError::StaleEpoch => &mut self.stale_epoch,
            OpenError::Replay => &mut self.replay,
            OpenError::InvalidDigest => &mut self.invalid_digest,
        };
        *counter += 1;
    }
}
