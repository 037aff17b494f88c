//! Accelerated Ring (`totem.accelerated_window`) and the adaptive per-visit allowance
//! (`totem.max_messages_adaptive`) under faults, on a network whose nodes send one datagram
//! at a time (`send_gap_ns`), so frames sent after the token really do arrive after it.
//! - The frames a holder multicasts after passing the token leave every EVS property intact
//!   under loss, partitions and merges, and crashes: each seed runs with a window of half and
//!   of all of max_messages (17).
//! - With the allowance adapting, every EVS property holds too, and no node starves: at the
//!   end of every run, a saturated ring's included, each node's probe in every group is
//!   delivered on every member (the run's liveness check, a violation otherwise).
//!
//! A failure prints the replay command.

use rotor_sim::{run, Faults, SimConfig};

/// 1400-byte frames at about 10 Gb/s.
const SEND_GAP_NS: u64 = 1_200;

/// Runs `count` seeds from `first`, each as `cfg` makes it, with the send gap; returns every
/// failed seed's first violation and replay command.
fn failures(cfg: impl Fn(u64) -> SimConfig, first: u64, count: u64) -> Vec<String> {
    let mut failures = Vec::new();
    for seed in first..first + count {
        let cfg = SimConfig {
            send_gap_ns: SEND_GAP_NS,
            ..cfg(seed)
        };
        let replay = cfg.replay_command();
        let report = run(cfg);
        assert!(report.messages_submitted > 0, "seed {seed}: no traffic");
        if let Some(v) = report.violations.first() {
            failures.push(format!("{v}\n    replay: {replay}"));
        }
    }
    failures
}

fn assert_none(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} runs failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Runs `count` seeds from `first` with each accelerated window; fails on any violation.
fn seeds(base: impl Fn(u64) -> SimConfig, first: u64, count: u64) {
    let mut all = Vec::new();
    for window in [8, 17] {
        let with = |seed| SimConfig {
            accelerated_window: Some(window),
            ..base(seed)
        };
        all.extend(failures(with, first, count));
    }
    assert_none(all);
}

/// Runs `count` seeds from `first` with the allowance adapting; returns the failures.
fn adaptive(base: impl Fn(u64) -> SimConfig, first: u64, count: u64) -> Vec<String> {
    let with = |seed| SimConfig {
        adaptive: true,
        ..base(seed)
    };
    failures(with, first, count)
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

#[test]
fn adaptive_a_saturated_ring_delivers_every_nodes_messages() {
    // A message every 20–100 µs somewhere: every visit has a backlog, so allowances grow.
    assert_none(adaptive(
        |seed| SimConfig {
            fault_ms: 3_000,
            app_gap_us: (20, 100),
            ..SimConfig::new(seed, 5, Faults::None)
        },
        8_000,
        2,
    ));
}

#[test]
fn adaptive_loss_keeps_evs() {
    let loss = |percent| {
        move |seed| SimConfig {
            token_ms: Some(1000),
            loss_percent: Some(percent),
            fault_ms: 3_000,
            app_gap_us: (50, 200),
            ..SimConfig::new(seed, 3, Faults::None)
        }
    };
    let mut failures = adaptive(loss(10), 8_100, 2);
    failures.extend(adaptive(loss(30), 8_110, 2));
    failures.extend(adaptive(
        |seed| SimConfig::new(seed, 5, Faults::Loss),
        8_120,
        2,
    ));
    assert_none(failures);
}

#[test]
fn adaptive_partitions_crashes_and_everything_keep_evs() {
    let mut failures = adaptive(|seed| SimConfig::new(seed, 5, Faults::Partition), 8_200, 2);
    failures.extend(adaptive(
        |seed| SimConfig::new(seed, 5, Faults::Crash),
        8_300,
        2,
    ));
    failures.extend(adaptive(
        |seed| SimConfig::new(seed, 7, Faults::All),
        8_400,
        2,
    ));
    assert_none(failures);
}
