//! Per-frame cost of seal and open for each crypto mode at 64 B and 1400 B bodies.
//!
//! Run with `cargo xtask bench crypto` (= `cargo run --release -p rotor-crypto --example
//! bench_crypto`). Each repetition seals a batch of frames with a fresh epoch, then opens them
//! in place; the median repetition is reported. `seal` is the copying variant (body copied
//! into the frame buffer, then encrypted in place); `open` includes header checks, the replay
//! window and in-place decryption. GBps counts body bytes.

use std::time::Instant;

use rotor_crypto::{cluster_name_hash, CryptoMode, Keys, Opener, Sealer};

const FRAME_COUNT: usize = 4096;
const REPETITION_COUNT: usize = 21;
const SIZES: [usize; 2] = [64, 1400];

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let authkey: Vec<u8> = (0..256u32).map(|i| (i * 131 + 7) as u8).collect();
    let keys = Keys::from_authkey_bytes(&authkey, "bench").expect("valid key");
    let hash = cluster_name_hash("bench");
    for mode in [
        CryptoMode::Gcm256,
        CryptoMode::Gcm128,
        CryptoMode::Gmac,
        CryptoMode::None,
    ] {
        for size in SIZES {
            let stride = size + mode.overhead();
            let body: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let mut frames = vec![0u8; stride * FRAME_COUNT];
            let mut opener = Opener::new(&keys, mode, hash, 2, 4);
            let mut seal_ns = Vec::with_capacity(REPETITION_COUNT);
            let mut open_ns = Vec::with_capacity(REPETITION_COUNT);
            for repetition in 0..REPETITION_COUNT {
                let mut sealer = Sealer::new(&keys, mode, hash, 1, repetition as u32 + 1);
                let start = Instant::now();
                for frame in frames.chunks_exact_mut(stride) {
                    sealer
                        .seal(std::hint::black_box(&body), frame)
                        .expect("seal");
                }
                seal_ns.push(start.elapsed().as_nanos() as f64 / FRAME_COUNT as f64);

                let start = Instant::now();
                for frame in frames.chunks_exact_mut(stride) {
                    let opened = opener.open(frame).expect("open");
                    std::hint::black_box(opened.body);
                }
                open_ns.push(start.elapsed().as_nanos() as f64 / FRAME_COUNT as f64);
            }
            for (op, samples) in [("seal", seal_ns), ("open", open_ns)] {
                let ns_per_frame = median(samples);
                println!(
                    "crypto mode={} op={op} size={size} ns_per_frame={ns_per_frame:.1} GBps={:.2}",
                    mode.name(),
                    size as f64 / ns_per_frame,
                );
            }
        }
    }
}
