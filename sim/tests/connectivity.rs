//! Partial connectivity: some directed pairs of nodes lose everything (connectivity that is not
//! transitive, one direction lost, a node that hears everyone but is heard by nobody, two
//! broken pairs at once). Each run checks the EVS properties as every run does, that the rings
//! settle on the largest sets of nodes that all hear each other (worked out by brute force in
//! `reach_check`, ties to the lowest ids) within a bound and then stay unchanged until the
//! heal, and that after the heal one ring of every node forms (the simulator's liveness check).

use rotor_sim::reach_check::{check_settled, expected_rings};
use rotor_sim::{run, Action, Faults, SimConfig, When};

/// When the pairs break.
const CHANGE_MS: u64 = 1_000;
/// Fault phase: the heal comes at its end.
const FAULT_MS: u64 = 14_000;
/// The rings must have settled this long after the change; from then on to the heal (at least
/// 8 s, over 20 token timeouts of these clusters) nothing may change.
const SETTLE_BOUND_MS: u64 = 5_000;

fn partial(name: &str, nodes: usize, blocked: &[(usize, usize)]) {
    let expected = expected_rings(nodes, blocked);
    let mut settled = Vec::new();
    let mut healed = Vec::new();
    let mut churn = Vec::new();
    for seed in 1..=4u64 {
        let cfg = SimConfig {
            fault_ms: FAULT_MS,
            script: vec![(When::At(CHANGE_MS), Action::Block(blocked.to_vec()))],
            ..SimConfig::new(seed, nodes, Faults::None)
        };
        let replay = cfg.replay_command();
        let report = run(cfg);
        assert!(
            report.violations.is_empty(),
            "{name}, seed {seed}: {}\n  (replay with the script of test `{name}`: {replay})",
            report.violations.join("\n  ")
        );
        let ms = check_settled(
            &report.formed,
            &expected,
            CHANGE_MS,
            SETTLE_BOUND_MS,
            FAULT_MS,
        )
        .unwrap_or_else(|e| panic!("{name}, seed {seed}: {e}\n  ({replay})"));
        assert!(
            !report.connectivity.is_empty(),
            "{name}, seed {seed}: no node reported the broken pairs"
        );
        // Memberships announced on the way (per node, on average): how much it churned.
        let changes = report
            .formed
            .iter()
            .filter(|(t, _, _)| (CHANGE_MS..=CHANGE_MS + ms).contains(t))
            .count();
        churn.push(format!("{:.1}", changes as f64 / nodes as f64));
        settled.push(ms);
        healed.push(report.converged_after_heal_ms.expect("checked by the run"));
        if seed == 1 {
            eprintln!("{name}: {}", report.connectivity[0].2);
        }
    }
    eprintln!(
        "{name}: rings {expected:?} settled {settled:?} ms after the change ({churn:?} \
         memberships per node on the way), one ring of all {healed:?} ms after the heal"
    );
}

#[test]
fn not_transitive_three_nodes() {
    // 1–2 and 2–3 work, 1–3 does not.
    partial("not_transitive_three_nodes", 3, &[(0, 2), (2, 0)]);
}

#[test]
fn not_transitive_four_nodes() {
    partial("not_transitive_four_nodes", 4, &[(0, 2), (2, 0)]);
}

#[test]
fn one_direction_lost() {
    // Node 3 does not hear node 1; node 1 hears node 3.
    partial("one_direction_lost", 4, &[(0, 2)]);
}

#[test]
fn a_node_heard_by_nobody() {
    // Node 4 hears everyone, nobody hears node 4.
    partial("a_node_heard_by_nobody", 4, &[(3, 0), (3, 1), (3, 2)]);
}

#[test]
fn two_broken_pairs() {
    // 1–2 and 3–4 broken in five nodes: {1, 3, 5} and {2, 4}.
    partial("two_broken_pairs", 5, &[(0, 1), (1, 0), (2, 3), (3, 2)]);
}
