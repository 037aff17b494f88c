//! What an attacker on the wire can try without the key, each dropped and counted: frames
//! forged under real node ids with the largest epoch (which, if it moved a window, would lock
//! the real sender out as "stale" for good), frames replayed across a sender's restart (its
//! per-boot key epoch), and frames sealed under a wiped key (all zeros, what a zeroised key
//! buffer holds): unknown_key as sealed, invalid_digest when relabelled with the id of the key
//! the receiver holds.

use rotor_crypto::{cluster_name_hash, CryptoMode, Keys, OpenError, Opener, Sealer, HEADER_LEN};

const CLUSTER: &str = "forgery";
const SENDER: u32 = 3;
const RECEIVER: u32 = 1;
const AUTHENTICATED: [CryptoMode; 3] = [CryptoMode::Gcm256, CryptoMode::Gcm128, CryptoMode::Gmac];

fn keys() -> Keys {
    let authkey: Vec<u8> = (0..256u32).map(|i| (i * 13 + 5) as u8).collect();
    Keys::from_authkey_bytes(&authkey, CLUSTER).unwrap()
}

fn sealed(sealer: &mut Sealer, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; body.len() + sealer.mode().overhead()];
    sealer.seal(body, &mut out).unwrap();
    out
}

/// Room for exactly seven senders: node 3 and the six others of `forged_frames_…`.
fn opener(mode: CryptoMode) -> Opener {
    Opener::new(&keys(), mode, cluster_name_hash(CLUSTER), RECEIVER, 7)
}

/// A frame with a real header (our cluster, the mode, `sender`, `epoch`) and random bytes
/// after it.
fn forged(
    mode: CryptoMode,
    sender: u32,
    epoch: u32,
    counter: u64,
    len: usize,
    salt: u64,
) -> Vec<u8> {
    let mut x = salt | 1;
    let mut f: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    f[0..2].copy_from_slice(b"RT");
    f[2] = rotor_crypto::VERSION;
    f[3] = mode.wire_byte();
    f[4..8].copy_from_slice(&cluster_name_hash(CLUSTER).to_be_bytes());
    f[8..12].copy_from_slice(&sender.to_be_bytes());
    f[12..16].copy_from_slice(&epoch.to_be_bytes());
    f[16..24].copy_from_slice(&counter.to_be_bytes());
    // The key the receiver holds, so the forgery reaches the digest check.
    f[24..28].copy_from_slice(&mode.key_id(&keys()).to_be_bytes());
    f
}

#[test]
fn forged_frames_with_real_ids_and_the_largest_epoch_are_dropped_and_counted() {
    for mode in AUTHENTICATED {
        let mut o = opener(mode);
        let mut real = Sealer::new(&keys(), mode, cluster_name_hash(CLUSTER), SENDER, 7);
        assert!(o.open(&mut sealed(&mut real, b"first")).is_ok());
        for k in 0..200u64 {
            // Known sender, and node ids never heard from (a fresh table slot must not be
            // taken by a forgery either).
            let sender = if k % 2 == 0 {
                SENDER
            } else {
                100 + k as u32 % 6
            };
            let mut f = forged(mode, sender, u32::MAX, u64::MAX - k, 64 + k as usize, k);
            assert_eq!(
                o.open(&mut f),
                Err(OpenError::InvalidDigest),
                "{} k={k}",
                mode.name()
            );
        }
        assert_eq!(o.counters().invalid_digest, 200, "{}", mode.name());
        // The real sender's window did not move: its next frame in epoch 7 opens.
        assert!(
            o.open(&mut sealed(&mut real, b"second")).is_ok(),
            "{}: the real sender was locked out",
            mode.name()
        );
        // A forgery cannot take a slot: the table (seven senders) still has room for every
        // real node.
        for id in [2, 4, 5, 6, 7, 8] {
            let mut s = Sealer::new(&keys(), mode, cluster_name_hash(CLUSTER), id, 1);
            assert!(o.open(&mut sealed(&mut s, b"hello")).is_ok(), "node {id}");
        }
    }
}

#[test]
fn frames_replayed_across_a_senders_restart_are_dropped_and_counted() {
    for mode in AUTHENTICATED {
        let mut o = opener(mode);
        let hash = cluster_name_hash(CLUSTER);
        let mut boot1 = Sealer::new(&keys(), mode, hash, SENDER, 41);
        let old: Vec<Vec<u8>> = (0..20).map(|i| sealed(&mut boot1, &[i; 30])).collect();
        for f in &old[..10] {
            assert!(o.open(&mut f.clone()).is_ok());
        }
        // The sender restarts (epoch 42); everything of epoch 41 is stale now, seen or not.
        let mut boot2 = Sealer::new(&keys(), mode, hash, SENDER, 42);
        let new: Vec<Vec<u8>> = (0..5).map(|i| sealed(&mut boot2, &[i; 30])).collect();
        for f in &new {
            assert!(o.open(&mut f.clone()).is_ok());
        }
        for f in &old {
            assert_eq!(o.open(&mut f.clone()), Err(OpenError::StaleEpoch));
        }
        // And the new epoch's frames replayed are replays.
        for f in &new {
            assert_eq!(o.open(&mut f.clone()), Err(OpenError::Replay));
        }
        let c = o.counters();
        assert_eq!((c.stale_epoch, c.replay), (20, 5), "{}", mode.name());
        // The sender's counter restarts at 0 in the new epoch, so the same nonce bytes as an
        // old frame recur under the same subkey only with another epoch in them.
        assert_ne!(old[0][12..HEADER_LEN], new[0][12..HEADER_LEN]);
    }
}

#[test]
fn frames_of_a_wiped_key_are_dropped_and_counted() {
    for mode in AUTHENTICATED {
        let mut o = opener(mode);
        let wiped = Keys::from_authkey_bytes(&[0u8; 256], CLUSTER).unwrap();
        let mut s = Sealer::new(&wiped, mode, cluster_name_hash(CLUSTER), SENDER, 9);
        let held = mode.key_id(&keys()).to_be_bytes();
        for i in 0..10u8 {
            // As sealed, the frame names the wiped key's id: dropped before any crypto.
            let mut f = sealed(&mut s, &[i; 100]);
            assert_eq!(
                o.open(&mut f),
                Err(OpenError::UnknownKey),
                "{}",
                mode.name()
            );
            // Relabelled with the id of the key the receiver holds: the digest fails.
            let mut f = sealed(&mut s, &[i; 100]);
            f[24..HEADER_LEN].copy_from_slice(&held);
            assert_eq!(
                o.open(&mut f),
                Err(OpenError::InvalidDigest),
                "{}",
                mode.name()
            );
        }
        assert_eq!(o.counters().unknown_key, 10);
        assert_eq!(o.counters().invalid_digest, 10);
        assert_eq!(o.counters().frames_opened, 0);
    }
}
