//! Opening: header checks, replay window and authentication/decryption of received frames.

use ring::aead::{Aad, LessSafeKey, Nonce};
use thiserror::Error;
use zerocopy::FromBytes;

use crate::frame::nonce_bytes;
use crate::replay::{ReplayWindow, SenderIndex, Verdict};
use crate::{Counters, CryptoMode, Keys, SealHeader, HEADER_LEN, MAGIC, VERSION};

/// Why a received frame was dropped. Each variant has its own counter in [`Counters`]; the
/// variants are listed in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum OpenError {
    /// Shorter than the header, or than header + tag.
    #[error("frame truncated")]
    Truncated,
    /// Not a rotor frame.
    #[error("bad magic")]
    BadMagic,
    /// A seal header version this build does not know.
    #[error("unsupported seal header version")]
    BadVersion,
    /// Another cluster's frame (cluster hash differs); dropped before any crypto.
    #[error("frame of a foreign cluster")]
    ForeignCluster,
    /// Sealed in another crypto mode than ours.
    #[error("crypto mode mismatch")]
    ModeMismatch,
    /// Our own node id as sender (our multicast looped back, or a forgery); dropped before any
    /// crypto.
    #[error("own frame")]
    OwnFrame,
    /// Sealed under a key this node does not hold: a key the cluster rotated to that this node
    /// was not given, or one it has retired since; dropped before any crypto.
    #[error("unknown key")]
    UnknownKey,
    /// A sender we have no window for, and the sender table is full.
    #[error("too many senders")]
    TooManySenders,
    /// Epoch older than the newest seen from this sender (a frame from before its restart).
    #[error("stale epoch")]
    StaleEpoch,
    /// Counter already accepted, or older than the replay window.
    #[error("replayed frame")]
    Replay,
    /// Authentication failed: wrong key, or the frame was altered (corosync's wording).
    #[error("invalid digest")]
    InvalidDigest,
}

impl OpenError {
    /// Every reason, in check order.
    pub const ALL: [OpenError; 11] = [
        OpenError::Truncated,
        OpenError::BadMagic,
        OpenError::BadVersion,
        OpenError::ForeignCluster,
        OpenError::ModeMismatch,
        OpenError::OwnFrame,
        OpenError::UnknownKey,
        OpenError::TooManySenders,
        OpenError::StaleEpoch,
        OpenError::Replay,
        OpenError::InvalidDigest,
    ];

    /// Snake-case name for stats keys and logs.
    pub const fn reason(self) -> &'static str {
        match self {
            OpenError::Truncated => "truncated",
            OpenError::BadMagic => "bad_magic",
            OpenError::BadVersion => "bad_version",
            OpenError::ForeignCluster => "foreign_cluster",
            OpenError::ModeMismatch => "mode_mismatch",
            OpenError::OwnFrame => "own_frame",
            OpenError::UnknownKey => "unknown_key",
            OpenError::TooManySenders => "too_many_senders",
            OpenError::StaleEpoch => "stale_epoch",
            OpenError::Replay => "replay",
            OpenError::InvalidDigest => "invalid_digest",
        }
    }
}

/// An authenticated, fresh frame; `body` is the plaintext, decrypted in place inside the frame
/// buffer (`frame[HEADER_LEN..frame.len() - tag]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Sender node id.
    pub sender: u32,
    /// Sender's boot epoch.
    pub epoch: u32,
    /// Frame counter within the epoch.
    pub counter: u64,
    /// [`Keys::id`] of the key the frame was sealed under.
    pub key_id: u32,
    /// Plaintext body.
    pub body: &'a [u8],
}

/// Keys an opener holds at once: the cluster's key, and during a rotation the next one.
pub const KEY_SLOTS: usize = 2;

/// What an opener keeps per remote sender.
struct SenderState {
    /// The sender's subkey under each key slot, derived the first time a frame of the sender
    /// names that slot's key; `None` until then, after the slot's key is retired, and always
    /// in mode none.
    keys: [Option<LessSafeKey>; KEY_SLOTS],
    /// One window for every key: the sender's counter runs on across keys.
    window: ReplayWindow,
}

/// Why a key could not be added to an opener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeySlotError {
    /// Both slots hold a key; retire one first.
    #[error("two keys are held already; retire one before accepting another")]
    Full,
    /// Crypto is off: there is no key to accept.
    #[error("crypto mode none uses no key")]
    Unkeyed,
}

/// Opens the frames one node receives: checks the header, the sender's replay window and the
/// tag, decrypts in place.
///
/// Invariants: a sender gets a table slot (and its window records a counter) only after one of
/// its frames authenticates, so forged frames cannot fill the table or poison a window; memory is
/// allocated in [`Opener::new`] only, for at most `sender_count_max` senders; the two key slots
/// never hold keys of the same id, and a frame is opened only under a key a slot holds now (a
/// retired key's derived subkeys are dropped with it).
pub struct Opener {
    /// The keys frames may be sealed under (their PRKs are wiped when a slot is emptied).
    slots: [Option<Keys>; KEY_SLOTS],
    mode: CryptoMode,
    cluster_hash: u32,
    local_node_id: u32,
    index: SenderIndex,
    senders: Vec<SenderState>,
    counters: Counters,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener")
            .field("mode", &self.mode)
            .field("cluster_hash", &self.cluster_hash)
            .field("local_node_id", &self.local_node_id)
            .field("sender_count", &self.senders.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An opener for node `local_node_id` of the cluster whose header hash is `cluster_hash`,
    /// accepting frames from at most `sender_count_max` distinct remote nodes (the cluster's
    /// `max nodes`; the local node needs no slot). Keeps its own copy of `keys` (the PRK, wiped on
    /// drop) to derive a sender's subkey the first time that sender's frame arrives.
    ///
    /// # Panics
    /// If `sender_count_max` is 0 or above 2^29 (a programming error, not input).
    pub fn new(
        keys: &Keys,
        mode: CryptoMode,
        cluster_hash: u32,
        local_node_id: u32,
        sender_count_max: usize,
    ) -> Opener {
        assert!(
            mode == CryptoMode::None || keys.is_keyed(),
            "crypto mode {} needs keys read from an authkey, not Keys::unkeyed",
            mode.name()
        );
        Opener {
            slots: [Some(keys.clone()), None],
            mode,
            cluster_hash,
            local_node_id,
            index: SenderIndex::with_capacity(sender_count_max),
            senders: Vec::with_capacity(sender_count_max),
            counters: Counters::default(),
        }
    }

    /// The mode frames must be sealed in.
    pub fn mode(&self) -> CryptoMode {
        self.mode
    }

    /// Frames and bytes opened, and rejections per reason.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The ids of the keys frames may be sealed under, in slot order.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().flatten().map(|k| self.mode.key_id(k))
    }

    /// Whether frames sealed under the key `id` are opened.
    pub fn holds_key(&self, id: u32) -> bool {
        self.key_ids().any(|k| k == id)
    }

    /// Opens frames sealed under `keys` too, beside the key already held (a rotation: the next
    /// key is accepted before any peer seals with it). Accepting a key already held changes
    /// nothing.
    pub fn accept_key(&mut self, keys: &Keys) -> Result<(), KeySlotError> {
        if self.mode == CryptoMode::None || !keys.is_keyed() {
            return Err(KeySlotError::Unkeyed);
        }
        if self.holds_key(keys.id()) {
            return Ok(());
        }
        let free = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(KeySlotError::Full)?;
        self.slots[free] = Some(keys.clone());
        Ok(())
    }

    /// Stops opening frames sealed under the key `id`: its PRK is wiped and every sender's
    /// subkey under it dropped; a later frame under it is [`OpenError::UnknownKey`]. Returns
    /// whether the key was held. The last key is never retired (a node always holds one).
    pub fn retire_key(&mut self, id: u32) -> bool {
        let held = self.slots.iter().flatten().count();
        let Some(slot) = self.slot_of(id) else {
            return false;
        };
        assert!(held > 1, "retiring the only key an opener holds");
        self.slots[slot] = None;
        for sender in &mut self.senders {
            sender.keys[slot] = None;
        }
        true
    }

    /// Checks and opens `frame` (exactly one frame, header to tag), decrypting the body in place.
    /// Every outcome is counted. On error the frame's contents are unspecified (a failed
    /// decryption may have overwritten the body).
    ///
    /// A sender not seen before costs one HKDF derivation (a few µs) before its tag is checked,
    /// also for forged frames; once authenticated the key is kept.
    pub fn open<'a>(&mut self, frame: &'a mut [u8]) -> Result<Opened<'a>, OpenError> {
        let frame_len = frame.len();
        match self.open_counted(frame) {
            Ok(opened) => {
                self.counters.frames_opened += 1;
                self.counters.bytes_opened += frame_len as u64;
                Ok(opened)
            }
            Err(reason) => {
                self.counters.count_rejected(reason);
                Err(reason)
            }
        }
    }

    /// Whether `frame`, rejected by [`Opener::open`] as [`OpenError::OwnFrame`], really was
    /// sealed under this node's own id and key: another node configured with our node id
    /// (a duplicate nodeid), rather than a forgery or garbage. Checks the tag only — nothing is
    /// recorded, no replay window moves, and the frame's body is left unspecified. Costs a key
    /// derivation (a few µs), so a caller reporting duplicates checks one frame per report, not
    /// every frame. In mode none there is no key to check, and any frame with our id passes.
    pub fn authentic_own_frame(&self, frame: &mut [u8]) -> bool {
        let Ok((header, _)) = SealHeader::read_from_prefix(frame) else {
            return false;
        };
        if header.magic != MAGIC
            || header.version != VERSION
            || header.cluster_hash.get() != self.cluster_hash
            || header.mode != self.mode.wire_byte()
            || header.sender.get() != self.local_node_id
        {
            return false;
        }
        let Some(body_len) = frame.len().checked_sub(HEADER_LEN + self.mode.tag_len()) else {
            return false;
        };
        let Some(slot) = self.slot_of(header.key_id.get()) else {
            return false;
        };
        let keys = self.slots[slot].as_ref().expect("slot_of names a held key");
        let Some(key) = keys.frame_key(self.mode, self.local_node_id) else {
            return true; // Mode none: nothing to authenticate.
        };
        let nonce = Nonce::assume_unique_for_key(header.nonce_bytes());
        if self.mode.encrypts() {
            let (head, ciphertext_and_tag) = frame.split_at_mut(HEADER_LEN);
            key.open_in_place(nonce, Aad::from(&*head), ciphertext_and_tag)
                .is_ok()
        } else {
            let (aad, tag) = frame.split_at_mut(HEADER_LEN + body_len);
            key.open_in_place(nonce, Aad::from(&*aad), tag).is_ok()
        }
    }

    /// The slot holding the key `id` (as frames of our mode name it).
    fn slot_of(&self, id: u32) -> Option<usize> {
        self.slots
            .iter()
            .position(|k| k.as_ref().is_some_and(|k| self.mode.key_id(k) == id))
    }

    fn open_counted<'a>(&mut self, frame: &'a mut [u8]) -> Result<Opened<'a>, OpenError> {
        // Header checks, cheapest and most common first; no crypto before ForeignCluster. A
        // frame that does not start with our magic is someone else's (a Corosync ping is
        // shorter than our header), not one of ours cut short.
        if frame.len() >= MAGIC.len() && frame[..MAGIC.len()] != MAGIC {
            return Err(OpenError::BadMagic);
        }
        let Ok((header, _)) = SealHeader::read_from_prefix(frame) else {
            return Err(OpenError::Truncated);
        };
        if header.version != VERSION {
            return Err(OpenError::BadVersion);
        }
        if header.cluster_hash.get() != self.cluster_hash {
            return Err(OpenError::ForeignCluster);
        }
        if header.mode != self.mode.wire_byte() {
            return Err(OpenError::ModeMismatch);
        }
        let tag_len = self.mode.tag_len();
        let Some(body_len) = frame.len().checked_sub(HEADER_LEN + tag_len) else {
            return Err(OpenError::Truncated);
        };
        let sender = header.sender.get();
        let epoch = header.epoch.get();
        let counter = header.counter.get();
        if sender == self.local_node_id {
            return Err(OpenError::OwnFrame);
        }
        let key_id = header.key_id.get();
        let slot = self.slot_of(key_id).ok_or(OpenError::UnknownKey)?;

        // Replay checks before crypto: they only read state built from authenticated frames, so
        // an unauthenticated header can make us drop only itself.
        let dense = self.index.get(sender);
        match dense {
            Some(dense) => match self.senders[dense].window.check(epoch, counter) {
                Verdict::Fresh => {}
                Verdict::Replay => return Err(OpenError::Replay),
                Verdict::StaleEpoch => return Err(OpenError::StaleEpoch),
            },
            None if self.index.is_full() => return Err(OpenError::TooManySenders),
            None => {}
        }

        // A known sender keeps its subkey per slot (derived on its first frame under that
        // slot's key); a new one's is derived here and kept once the frame authenticates.
        let keys = self.slots[slot].as_ref().expect("slot_of names a held key");
        let key_new = match dense {
            Some(dense) => {
                if self.senders[dense].keys[slot].is_none() {
                    self.senders[dense].keys[slot] = keys.frame_key(self.mode, sender);
                }
                None
            }
            None => keys.frame_key(self.mode, sender),
        };
        let key = match dense {
            Some(dense) => self.senders[dense].keys[slot].as_ref(),
            None => key_new.as_ref(),
        };
        if let Some(key) = key {
            let nonce = Nonce::assume_unique_for_key(nonce_bytes(epoch, counter));
            let result = if self.mode.encrypts() {
                let (head, ciphertext_and_tag) = frame.split_at_mut(HEADER_LEN);
                key.open_in_place(nonce, Aad::from(&*head), ciphertext_and_tag)
                    .map(|_| ())
            } else {
                // GMAC: the tag authenticates header and clear body; no plaintext.
                let (aad, tag) = frame.split_at_mut(HEADER_LEN + body_len);
                key.open_in_place(nonce, Aad::from(&*aad), tag).map(|_| ())
            };
            result.map_err(|_| OpenError::InvalidDigest)?;
        }

        // Authenticated (or mode none): record.
        match dense {
            Some(dense) => self.senders[dense].window.record(epoch, counter),
            None => {
                let dense_new = self.index.insert(sender);
                assert_eq!(dense_new, self.senders.len());
                assert!(
                    self.senders.len() < self.senders.capacity(),
                    "sender table allocated up front"
                );
                let mut keys: [Option<LessSafeKey>; KEY_SLOTS] = Default::default();
                keys[slot] = key_new;
                self.senders.push(SenderState {
                    keys,
                    window: ReplayWindow::starting_at(epoch, counter),
                });
            }
        }
        let frame: &'a [u8] = frame;
        Ok(Opened {
            sender,
            epoch,
            counter,
            key_id,
            body: &frame[HEADER_LEN..HEADER_LEN + body_len],
        })
    }
}
