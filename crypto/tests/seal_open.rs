//! Round trips, tampering, header errors, replay window and a fixed-seed property loop, through
//! the public API only.

use rotor_crypto::{
    cluster_name_hash, CryptoConfigError, CryptoMode, KeySlotError, Keys, OpenError, Opener,
    SealError, Sealer, HEADER_LEN, TAG_LEN,
};

const CLUSTER: &str = "alpha";
const SENDER: u32 = 1;
const RECEIVER: u32 = 2;
const SIZES: [usize; 5] = [0, 1, 64, 1400, 9000];

fn keys() -> Keys {
    let authkey: Vec<u8> = (0..256u32).map(|i| (i * 37 + 11) as u8).collect();
    Keys::from_authkey_bytes(&authkey, CLUSTER).unwrap()
}

fn body(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

fn pair(mode: CryptoMode) -> (Sealer, Opener) {
    let keys = keys();
    let hash = cluster_name_hash(CLUSTER);
    (
        Sealer::new(&keys, mode, hash, SENDER, 7),
        Opener::new(&keys, mode, hash, RECEIVER, 8),
    )
}

fn sealed(sealer: &mut Sealer, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; body.len() + sealer.mode().overhead()];
    let len = sealer.seal(body, &mut out).unwrap();
    assert_eq!(len, out.len());
    out
}

#[test]
fn round_trip_every_mode_and_size() {
    for mode in CryptoMode::ALL {
        let (mut sealer, mut opener) = pair(mode);
        for (i, &size) in SIZES.iter().enumerate() {
            let plain = body(size, i as u8);
            let mut frame = sealed(&mut sealer, &plain);
            assert_eq!(frame.len(), size + HEADER_LEN + mode.tag_len());
            let on_wire = &frame[HEADER_LEN..HEADER_LEN + size];
            if !mode.encrypts() {
                assert_eq!(on_wire, &plain[..], "{mode} in clear");
            } else if size >= 16 {
                assert_ne!(on_wire, &plain[..], "{mode} encrypts");
            }
            let opened = opener.open(&mut frame).unwrap();
            assert_eq!(opened.body, &plain[..], "mode {mode} size {size}");
            assert_eq!(
                (opened.sender, opened.epoch, opened.counter),
                (SENDER, 7, i as u64)
            );
        }
        let counters = opener.counters();
        assert_eq!(counters.frames_opened, SIZES.len() as u64);
        assert_eq!(counters.frames_rejected(), 0);
        assert_eq!(sealer.counters().frames_sealed, SIZES.len() as u64);
        assert_eq!(sealer.counters().bytes_sealed, counters.bytes_opened);
    }
}

#[test]
fn seal_in_place_matches_seal() {
    for mode in CryptoMode::ALL {
        let keys = keys();
        let mut copying = Sealer::new(&keys, mode, 5, SENDER, 3);
        let mut in_place = Sealer::new(&keys, mode, 5, SENDER, 3);
        for size in SIZES {
            let plain = body(size, 9);
            let expected = sealed(&mut copying, &plain);
            // A larger buffer, as the dataplane has: bytes after the frame stay untouched.
            let mut buffer = vec![0xEE; size + mode.overhead() + 10];
            buffer[HEADER_LEN..HEADER_LEN + size].copy_from_slice(&plain);
            let len = in_place.seal_in_place(&mut buffer, size).unwrap();
            assert_eq!(&buffer[..len], &expected[..]);
            assert!(buffer[len..].iter().all(|&b| b == 0xEE));
        }
    }
}

#[test]
fn seal_refuses_a_small_buffer() {
    let (mut sealer, _) = pair(CryptoMode::Gcm256);
    let mut out = [0u8; HEADER_LEN + TAG_LEN + 9];
    assert_eq!(
        sealer.seal(&[1; 10], &mut out),
        Err(SealError::BufferTooSmall {
            needed: 54,
            available: 53
        })
    );
    assert_eq!(
        sealer.counter_next(),
        Some(0),
        "a refused seal consumes no counter"
    );
    assert_eq!(sealer.counters().seal_buffer_too_small, 1);
}

/// The error expected when header byte `index` is altered, before any crypto.
fn header_error(index: usize) -> Option<OpenError> {
    match index {
        0..=1 => Some(OpenError::BadMagic),
        2 => Some(OpenError::BadVersion),
        3 => Some(OpenError::ModeMismatch),
        4..=7 => Some(OpenError::ForeignCluster),
        24..=27 => Some(OpenError::UnknownKey),
        _ => None,
    }
}

#[test]
fn tampering_any_byte_is_detected() {
    for mode in [CryptoMode::Gcm256, CryptoMode::Gcm128, CryptoMode::Gmac] {
        let (mut sealer, mut opener) = pair(mode);
        let plain = body(100, 1);
        let original = sealed(&mut sealer, &plain);
        for index in 0..original.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut frame = original.clone();
                frame[index] ^= flip;
                let expected = header_error(index).unwrap_or(OpenError::InvalidDigest);
                assert_eq!(
                    opener.open(&mut frame).unwrap_err(),
                    expected,
                    "mode {mode} byte {index} flip {flip:#x}"
                );
            }
        }
        // Nothing was recorded: the untouched frame still opens, once.
        let mut frame = original.clone();
        assert_eq!(opener.open(&mut frame).unwrap().body, &plain[..]);
        assert_eq!(opener.counters().frames_opened, 1);
        assert!(opener.counters().invalid_digest > 0);
    }
}

#[test]
fn wrong_key_is_unknown_before_crypto_and_invalid_digest_when_it_claims_ours() {
    for mode in [CryptoMode::Gcm256, CryptoMode::Gcm128, CryptoMode::Gmac] {
        let hash = cluster_name_hash(CLUSTER);
        let other = Keys::from_authkey_bytes(&[0x5A; 256], CLUSTER).unwrap();
        assert_ne!(other.id(), keys().id());
        let mut sealer = Sealer::new(&other, mode, hash, SENDER, 1);
        let mut opener = Opener::new(&keys(), mode, hash, RECEIVER, 4);
        let mut frame = sealed(&mut sealer, b"hello");
        assert_eq!(opener.open(&mut frame), Err(OpenError::UnknownKey));
        // The same frame claiming our key's id: the tag fails.
        frame[24..28].copy_from_slice(&keys().id().to_be_bytes());
        assert_eq!(opener.open(&mut frame), Err(OpenError::InvalidDigest));
        // Same authkey, other cluster name (but same header hash): another key altogether.
        let renamed = Keys::from_authkey_bytes(&[0x5A; 256], "beta").unwrap();
        assert_ne!(renamed.id(), other.id());
        let mut sealer = Sealer::new(&renamed, mode, hash, SENDER, 1);
        let mut opener = Opener::new(&other, mode, hash, RECEIVER, 4);
        let mut frame = sealed(&mut sealer, b"hello");
        assert_eq!(opener.open(&mut frame), Err(OpenError::UnknownKey));
        assert_eq!(opener.counters().unknown_key, 1);
        assert_eq!(opener.counters().invalid_digest, 0);
    }
}

#[test]
fn a_rotation_accepts_both_keys_then_only_the_new_one() {
    let hash = cluster_name_hash(CLUSTER);
    let old = keys();
    let new = Keys::from_authkey_bytes(&[0x33; 256], CLUSTER).unwrap();
    for mode in [CryptoMode::Gcm256, CryptoMode::Gcm128, CryptoMode::Gmac] {
        let mut sealer = Sealer::new(&old, mode, hash, SENDER, 1);
        let mut opener = Opener::new(&old, mode, hash, RECEIVER, 4);
        let before = sealed(&mut sealer, b"under the old key");
        // The next key is accepted before anyone seals with it.
        opener.accept_key(&new).unwrap();
        assert_eq!(
            opener.accept_key(&new),
            Ok(()),
            "accepting twice changes nothing"
        );
        assert_eq!(opener.key_ids().collect::<Vec<_>>(), [old.id(), new.id()]);
        let third = Keys::from_authkey_bytes(&[0x44; 256], CLUSTER).unwrap();
        assert_eq!(opener.accept_key(&third), Err(KeySlotError::Full));
        let old_late = sealed(&mut sealer, b"sealed late under the old key");
        sealer.switch_key(&new);
        assert_eq!(sealer.key_id(), new.id());
        let after = sealed(&mut sealer, b"under the new key");
        // Both open, in any order; the counter ran on, so the window saw no replay.
        let mut frame = after.clone();
        let opened = opener.open(&mut frame).unwrap();
        assert_eq!((opened.key_id, opened.counter), (new.id(), 2));
        let mut frame = before.clone();
        assert_eq!(opener.open(&mut frame).unwrap().key_id, old.id());
        // Replays are replays under either key.
        let mut frame = after.clone();
        assert_eq!(opener.open(&mut frame), Err(OpenError::Replay));
        // Once the old key is retired, its frames are dropped before any crypto.
        assert!(opener.retire_key(old.id()));
        assert!(!opener.retire_key(old.id()));
        let mut frame = old_late.clone();
        assert_eq!(opener.open(&mut frame), Err(OpenError::UnknownKey));
        let newer = sealed(&mut sealer, b"still the new key");
        let mut frame = newer.clone();
        assert_eq!(opener.open(&mut frame).unwrap().body, b"still the new key");
        // A freed slot takes another key.
        opener.accept_key(&third).unwrap();
        assert!(opener.holds_key(third.id()) && !opener.holds_key(old.id()));
    }
    // Mode none has no key to rotate.
    let mut none = Opener::new(&Keys::unkeyed(CLUSTER), CryptoMode::None, hash, RECEIVER, 4);
    assert_eq!(none.accept_key(&new), Err(KeySlotError::Unkeyed));
}

#[test]
fn foreign_cluster_is_dropped_before_crypto() {
    // The receiver has other keys too: it must say ForeignCluster, never InvalidDigest.
    let mut sealer = Sealer::new(
        &keys(),
        CryptoMode::Gcm256,
        cluster_name_hash("other"),
        SENDER,
        1,
    );
    let other_keys = Keys::from_authkey_bytes(&[3; 128], CLUSTER).unwrap();
    let mut opener = Opener::new(
        &other_keys,
        CryptoMode::Gcm256,
        cluster_name_hash(CLUSTER),
        RECEIVER,
        4,
    );
    let mut frame = sealed(&mut sealer, b"not for you");
    let before = frame.clone();
    assert_eq!(opener.open(&mut frame), Err(OpenError::ForeignCluster));
    assert_eq!(frame, before, "no decryption attempted");
    assert_eq!(opener.counters().foreign_cluster, 1);
    assert_eq!(opener.counters().invalid_digest, 0);
}

#[test]
fn mode_mismatch_and_own_frame() {
    let keys = keys();
    let hash = cluster_name_hash(CLUSTER);
    let mut gmac = Sealer::new(&keys, CryptoMode::Gmac, hash, SENDER, 1);
    let mut opener = Opener::new(&keys, CryptoMode::Gcm256, hash, RECEIVER, 4);
    let mut frame = sealed(&mut gmac, b"x");
    assert_eq!(opener.open(&mut frame), Err(OpenError::ModeMismatch));
    let mut own = Sealer::new(&keys, CryptoMode::Gcm256, hash, RECEIVER, 1);
    let mut frame = sealed(&mut own, b"x");
    assert_eq!(opener.open(&mut frame), Err(OpenError::OwnFrame));
    assert_eq!(opener.counters().mode_mismatch, 1);
    assert_eq!(opener.counters().own_frame, 1);
}

#[test]
fn truncated_frames_of_every_length() {
    for mode in CryptoMode::ALL {
        let (mut sealer, mut opener) = pair(mode);
        let full = sealed(&mut sealer, b"");
        assert_eq!(full.len(), mode.overhead());
        for len in 0..full.len() {
            let mut frame = full[..len].to_vec();
            assert_eq!(
                opener.open(&mut frame),
                Err(OpenError::Truncated),
                "{mode} len {len}"
            );
        }
        assert_eq!(opener.counters().truncated, full.len() as u64);
        let mut frame = full.clone();
        assert!(opener.open(&mut frame).is_ok());
        // Cutting a frame with a body short of its tag breaks authentication.
        if mode != CryptoMode::None {
            let full = sealed(&mut sealer, &body(40, 0));
            for len in mode.overhead()..full.len() {
                let mut frame = full[..len].to_vec();
                assert_eq!(
                    opener.open(&mut frame),
                    Err(OpenError::InvalidDigest),
                    "len {len}"
                );
            }
        }
    }
}

#[test]
fn a_short_frame_of_someone_else_is_bad_magic_not_truncated() {
    // A Corosync knet ping is 26 bytes, shorter than our header: it is not ours cut short.
    let (_, mut opener) = pair(CryptoMode::Gcm256);
    let mut ping = vec![0x01, 0x81, 0x00, 0x07, 0x01, 0x00];
    ping.extend_from_slice(&[0; 20]);
    assert_eq!(opener.open(&mut ping), Err(OpenError::BadMagic));
    let mut ours_cut = b"RT".to_vec();
    assert_eq!(opener.open(&mut ours_cut), Err(OpenError::Truncated));
    let counters = opener.counters();
    assert_eq!((counters.bad_magic, counters.truncated), (1, 1));
}

#[test]
fn replay_window() {
    for mode in CryptoMode::ALL {
        let (mut sealer, mut opener) = pair(mode);
        let frames: Vec<Vec<u8>> = (0..2000)
            .map(|i| sealed(&mut sealer, &body(8, i as u8)))
            .collect();
        let open =
            |opener: &mut Opener, i: usize| opener.open(&mut frames[i].clone()).map(|o| o.counter);

        // Exact duplicate.
        assert_eq!(open(&mut opener, 0), Ok(0));
        assert_eq!(open(&mut opener, 0), Err(OpenError::Replay));
        // Reordered within the window: each accepted once.
        assert_eq!(open(&mut opener, 10), Ok(10));
        for i in (1..10).rev() {
            assert_eq!(open(&mut opener, i), Ok(i as u64));
            assert_eq!(open(&mut opener, i), Err(OpenError::Replay));
        }
        // Jump ahead; the window still holds the last 1024 counters.
        assert_eq!(open(&mut opener, 1500), Ok(1500));
        assert_eq!(open(&mut opener, 1500 - 1023), Ok(1500 - 1023));
        assert_eq!(
            open(&mut opener, 1500 - 1024),
            Err(OpenError::Replay),
            "too old"
        );
        assert_eq!(open(&mut opener, 11), Err(OpenError::Replay), "too old");
        assert_eq!(open(&mut opener, 1999), Ok(1999));
        assert_eq!(open(&mut opener, 1600), Ok(1600));
        assert_eq!(open(&mut opener, 1600), Err(OpenError::Replay));

        // The sender restarts with a newer epoch: its window resets.
        let keys = keys();
        let hash = cluster_name_hash(CLUSTER);
        let mut restarted = Sealer::new(&keys, mode, hash, SENDER, 8);
        let mut frame = sealed(&mut restarted, b"after restart");
        assert_eq!(
            opener.open(&mut frame).map(|o| (o.epoch, o.counter)),
            Ok((8, 0))
        );
        // Frames of the old boot are now stale, even unseen ones.
        assert_eq!(open(&mut opener, 1998), Err(OpenError::StaleEpoch));
        let mut older = Sealer::new(&keys, mode, hash, SENDER, 6);
        let mut frame = sealed(&mut older, b"older boot");
        assert_eq!(opener.open(&mut frame), Err(OpenError::StaleEpoch));

        let counters = opener.counters();
        assert_eq!(counters.replay, 13);
        assert_eq!(counters.stale_epoch, 2);
    }
}

#[test]
fn forged_newer_epoch_does_not_reset_the_window() {
    let (mut sealer, mut opener) = pair(CryptoMode::Gcm256);
    let first = sealed(&mut sealer, b"one");
    assert!(opener.open(&mut first.clone()).is_ok());
    let mut forged = first.clone();
    forged[12..16].copy_from_slice(&99u32.to_be_bytes());
    assert_eq!(opener.open(&mut forged), Err(OpenError::InvalidDigest));
    assert_eq!(opener.open(&mut first.clone()), Err(OpenError::Replay));
    assert!(
        opener.open(&mut sealed(&mut sealer, b"two")).is_ok(),
        "epoch 7 still current"
    );
}

#[test]
fn sender_table_is_bounded() {
    let keys = keys();
    let hash = cluster_name_hash(CLUSTER);
    let mut opener = Opener::new(&keys, CryptoMode::Gcm256, hash, RECEIVER, 3);
    for sender in [10, 20, 30] {
        let mut s = Sealer::new(&keys, CryptoMode::Gcm256, hash, sender, 1);
        assert!(opener.open(&mut sealed(&mut s, b"hi")).is_ok());
    }
    let mut fourth = Sealer::new(&keys, CryptoMode::Gcm256, hash, 40, 1);
    assert_eq!(
        opener.open(&mut sealed(&mut fourth, b"hi")),
        Err(OpenError::TooManySenders)
    );
    // Known senders still work; forged frames from unknown ids never took a slot.
    let mut s = Sealer::new(&keys, CryptoMode::Gcm256, hash, 20, 1);
    s.seal(b"skip", &mut [0; 64]).unwrap();
    assert!(opener.open(&mut sealed(&mut s, b"again")).is_ok());
    assert_eq!(opener.counters().too_many_senders, 1);

    let mut roomy = Opener::new(&keys, CryptoMode::Gcm256, hash, RECEIVER, 1);
    let mut forged = sealed(&mut fourth, b"x");
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(roomy.open(&mut forged), Err(OpenError::InvalidDigest));
    let mut s = Sealer::new(&keys, CryptoMode::Gcm256, hash, 50, 1);
    assert!(
        roomy.open(&mut sealed(&mut s, b"real")).is_ok(),
        "forgery took no slot"
    );
}

#[test]
fn corosync_names_map_to_modes() {
    use CryptoMode::*;
    for hash in ["none", "md5", "sha1", "sha256", "sha384", "sha512"] {
        assert_eq!(CryptoMode::from_corosync("aes256", hash), Ok(Gcm256));
        assert_eq!(CryptoMode::from_corosync("aes192", hash), Ok(Gcm256));
        assert_eq!(CryptoMode::from_corosync("aes128", hash), Ok(Gcm128));
        let expected = if hash == "none" { None } else { Gmac };
        assert_eq!(CryptoMode::from_corosync("none", hash), Ok(expected));
    }
    let error = CryptoMode::from_corosync("3des", "sha1").unwrap_err();
    assert_eq!(
        error,
        CryptoConfigError::CipherNotSupported {
            name: "3des".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "crypto_cipher `3des` is not supported, use aes256"
    );
    assert!(matches!(
        CryptoMode::from_corosync("AES256", "none"),
        Err(CryptoConfigError::UnknownCipher { .. })
    ));
    assert!(matches!(
        CryptoMode::from_corosync("aes256", "sha3"),
        Err(CryptoConfigError::UnknownHash { .. })
    ));
    assert_eq!(CryptoMode::default(), Gcm256);
    for mode in CryptoMode::ALL {
        assert_eq!(CryptoMode::from_wire_byte(mode.wire_byte()), Some(mode));
    }
}

/// xorshift64: a fixed-seed generator for the property loop, no extra crates.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn property_random_lengths_round_trip_and_single_flips_fail() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for mode in CryptoMode::ALL {
        let (mut sealer, mut opener) = pair(mode);
        let mut buffer = vec![0u8; 9000 + mode.overhead()];
        for round in 0..300 {
            let len = (rng.next() % 9001) as usize;
            let plain: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let frame_len = sealer.seal(&plain, &mut buffer).unwrap();
            if mode != CryptoMode::None {
                let mut bad = buffer[..frame_len].to_vec();
                let at = (rng.next() as usize) % frame_len;
                bad[at] ^= 1 << (rng.next() % 8);
                let error = opener.open(&mut bad).unwrap_err();
                let expected = if at < 8 || (24..28).contains(&at) {
                    error
                } else {
                    OpenError::InvalidDigest
                };
                assert_eq!(error, expected, "seed round {round} byte {at}");
            }
            let opened = opener.open(&mut buffer[..frame_len]).unwrap();
            assert_eq!(opened.body, &plain[..], "round {round} len {len}");
        }
    }
}

#[test]
fn an_own_frame_is_authentic_only_under_our_own_key() {
    let hash = cluster_name_hash(CLUSTER);
    let other_key = Keys::from_authkey_bytes(&[9u8; 256], CLUSTER).unwrap();
    for mode in CryptoMode::ALL {
        let opener = Opener::new(&keys(), mode, hash, RECEIVER, 4);
        // Another node configured with our id and our key: authentic.
        let mut twin = Sealer::new(&keys(), mode, hash, RECEIVER, 3);
        let mut frame = sealed(&mut twin, b"duplicate nodeid");
        assert!(opener.authentic_own_frame(&mut frame), "{mode:?}");
        // The same id under another key, or a peer's frame: not ours.
        let mut forged = Sealer::new(&other_key, mode, hash, RECEIVER, 3);
        let mut frame = sealed(&mut forged, b"forged");
        assert_eq!(
            opener.authentic_own_frame(&mut frame),
            mode == CryptoMode::None,
            "{mode:?}: mode none has nothing to check"
        );
        let mut peer = Sealer::new(&keys(), mode, hash, SENDER, 3);
        let mut frame = sealed(&mut peer, b"peer");
        assert!(!opener.authentic_own_frame(&mut frame), "{mode:?}");
        assert!(!opener.authentic_own_frame(&mut [0u8; 3]), "{mode:?}");
        // Nothing was recorded or counted.
        assert_eq!(*opener.counters(), rotor_crypto::Counters::default());
    }
}

#[test]
fn mode_none_runs_without_an_authkey() {
    let keys = Keys::unkeyed(CLUSTER);
    assert!(!keys.is_keyed());
    let hash = cluster_name_hash(CLUSTER);
    let mut sealer = Sealer::new(&keys, CryptoMode::None, hash, SENDER, 7);
    let mut opener = Opener::new(&keys, CryptoMode::None, hash, RECEIVER, 8);
    let data = body(100, 3);
    let mut frame = sealed(&mut sealer, &data);
    assert_eq!(opener.open(&mut frame).unwrap().body, &data[..]);
}

#[test]
#[should_panic(expected = "needs keys read from an authkey")]
fn an_encrypting_sealer_refuses_unkeyed_keys() {
    let keys = Keys::unkeyed(CLUSTER);
    Sealer::new(
        &keys,
        CryptoMode::Gcm256,
        cluster_name_hash(CLUSTER),
        SENDER,
        7,
    );
}

#[test]
#[should_panic(expected = "needs keys read from an authkey")]
fn an_authenticating_opener_refuses_unkeyed_keys() {
    let keys = Keys::unkeyed(CLUSTER);
    Opener::new(
        &keys,
        CryptoMode::Gmac,
        cluster_name_hash(CLUSTER),
        RECEIVER,
        8,
    );
}
