//! Accelerated Ring (`totem.accelerated_window`) under faults: the frames a holder multicasts
//! after passing the token must leave every EVS property intact under loss, partitions and
//! merges, and crashes. Each seed runs with a window of half and of all of max_messages (17),
//! on a network whose nodes send one datagram at a time (`send_gap_ns`), so the frames after
//! the token really do arrive after it. A failure prints the replay command.

use rotor_sim::{run, Faults, SimConfig};

/// 1400-byte frames at about 10 Gb/s.
const SEND_GAP_NS: u64 = 1_200;

/// Runs `count` seeds from `first` with each window; fails with every failed seed's first
/// violation and replay command.
fn seeds(base: impl Fn(u64) -> SimConfig, first: u64, count: u64) {
    let mut failures = Vec::new();
    for window in [8, 17] {
        for seed in first..first + count {
            let cfg = SimConfig {
                accelerated_window: Some(window),
                send_gap_ns: SEND_GAP_NS,
                ..base(seed)
            };
            let replay = cfg.replay_command();
            let report = run(cfg);
            assert!(report.messages_submitted > 0, "seed {seed}: no traffic");
            if let Some(v) = report.violations.first() {
                failures.push(format!("{v}\n    replay: {replay}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} runs failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// A constant loss on three nodes with a busy ring (a message every 100–400 µs).
fn loss(percent: u32, token_ms: u32) -> impl Fn(u64) -> SimConfig {
    move |seed| SimConfig {
        token_ms: Some(token_ms),
        loss_percent: Some(percent),
        fault_ms: 3_000,
        app_gap_us: (100, 400),
        ..SimConfig::new(seed, 3, Faults::None)
    }
}

#[test]
fn ten_and_thirty_percent_loss_keep_evs() {
    seeds(loss(10, 1000), 7_000, 2);
    seeds(loss(30, 1000), 7_010, 2);
    seeds(loss(30, 10), 7_020, 2);
}

#[test]
fn loss_duplication_and_reordering_keep_evs() {
    seeds(|seed| SimConfig::new(seed, 5, Faults::Loss), 7_100, 3);
}

#[test]
fn partitions_and_merges_keep_evs() {
    seeds(|seed| SimConfig::new(seed, 5, Faults::Partition), 7_200, 3);
}

#[test]
fn crashes_restarts_and_pauses_keep_evs() {
    seeds(|seed| SimConfig::new(seed, 5, Faults::Crash), 7_300, 3);
}

#[test]
fn everything_at_once_keeps_evs() {
    seeds(|seed| SimConfig::new(seed, 7, Faults::All), 7_400, 2);
}
