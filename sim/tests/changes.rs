//! Runtime changes in the middle of faults: a simulated operator edits every node's files (the
//! token timeout, the authkey) and reloads while messages flow, nodes crash, restart, pause and
//! are partitioned. Every seed keeps every EVS check, never accepts a frame under a key a node
//! retired, and ends with every node running what the files say.

use rotor_sim::{run, Faults, SimConfig};

fn seeds(faults: Faults, nodes: usize, first: u64, count: u64) {
    let mut failures = Vec::new();
    let (mut applied, mut refused, mut retired) = (0, 0, 0);
    for seed in first..first + count {
        let cfg = SimConfig {
            changes: true,
            ..SimConfig::new(seed, nodes, faults)
        };
        let cfg = SimConfig {
            fault_ms: 4_000,
            ..cfg
        };
        let replay = cfg.replay_command();
        let report = run(cfg);
        assert!(report.messages_submitted > 0, "seed {seed}: no traffic");
        assert!(
            report.changes_requested > 0,
            "seed {seed}: the operator asked for nothing"
        );
        applied += report.changes_applied;
        refused += report.changes_refused;
        retired += report.keys_retired;
        if !report.violations.is_empty() {
            failures.push(format!("{}\n    replay: {replay}", report.violations[0]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} seeds failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    // The mix exercised what it is about: changes applied and refused, keys retired.
    assert!(applied > 0, "no change was applied");
    assert!(refused > 0, "no change was refused or called off");
    assert!(retired > 0, "no key was retired");
}

#[test]
fn changes_without_faults_4_nodes() {
    seeds(Faults::None, 4, 6_000, 10);
}

#[test]
fn changes_with_loss_5_nodes() {
    seeds(Faults::Loss, 5, 6_100, 20);
}

#[test]
fn changes_with_partitions_5_nodes() {
    seeds(Faults::Partition, 5, 6_200, 20);
}

#[test]
fn changes_with_crashes_and_pauses_5_nodes() {
    seeds(Faults::Crash, 5, 6_300, 20);
}

#[test]
fn changes_with_everything_4_nodes() {
    seeds(Faults::All, 4, 6_400, 20);
}
