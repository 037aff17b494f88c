//! Named quorum scenarios under the real protocol, with traffic, the EVS checkers and the
//! quorum checkers (split brain, wait_for_all, last_man_standing): a split into halves, a
//! minority and its heal, wait_for_all from a start in pieces, last_man_standing shrinking a
//! cluster step by step, auto_tie_breaker's side of an even split, two_node, and a quorum
//! device whose vote counts only while it polls. Each runs several seeds.

use rotor_sim::When;
use rotor_sim::{run_with_quorum, Action, Faults, QdeviceSim, QuorumPlan, RunReport, SimConfig};
use totem_core::votequorum::{QdeviceSettings, TieBreaker};

/// Runs seeds 1 to 6 of a scenario; every run must be free of violations.
fn scenario(
    name: &str,
    nodes: usize,
    fault_ms: u64,
    plan: impl Fn() -> QuorumPlan,
    script: Vec<(When, Action)>,
) -> Vec<RunReport> {
    scenario_seeds(name, 6, nodes, fault_ms, plan, script)
}

/// Runs seeds 1 to `seeds` of a scenario; every run must be free of violations.
fn scenario_seeds(
    name: &str,
    seeds: u64,
    nodes: usize,
    fault_ms: u64,
    plan: impl Fn() -> QuorumPlan,
    script: Vec<(When, Action)>,
) -> Vec<RunReport> {
    (1..=seeds)
        .map(|seed| {
            let cfg = SimConfig {
                fault_ms,
                script: script.clone(),
                ..SimConfig::new(seed, nodes, Faults::None)
            };
            let replay = cfg.replay_command();
            let steps = cfg.script.len();
            let report = run_with_quorum(cfg, plan());
            assert!(
                report.violations.is_empty(),
                "{name}, seed {seed}: {}\n  (replay with the script and plan of test `{name}`: \
                 {replay})",
                report.violations.join("\n  ")
            );
            assert_eq!(report.script_fired, steps, "{name}, seed {seed}");
            report
        })
        .collect()
}

/// Node `node` (1-based) was quorate at `ms`, as its applications last heard.
fn quorate(r: &RunReport, node: u32, ms: u64) -> bool {
    r.quorum.quorate_at(node, ms)
}

/// Every node ends quorate once the cluster has healed.
fn all_quorate_at_the_end(r: &RunReport, nodes: u32) {
    let end = r.sim_ms;
    for n in 1..=nodes {
        assert!(quorate(r, n, end), "node {n} not quorate after the heal");
    }
}

#[test]
fn halves_of_an_even_cluster_are_both_inquorate() {
    let reports = scenario(
        "halves_of_an_even_cluster_are_both_inquorate",
        4,
        4_000,
        || QuorumPlan::majority(4),
        vec![(When::At(1_000), Action::Partition(vec![0, 0, 1, 1]))],
    );
    for r in &reports {
        for n in 1..=4 {
            assert!(quorate(r, n, 900), "node {n} before the split");
            assert!(!quorate(r, n, 3_900), "node {n}: 2 of 4 votes");
        }
        all_quorate_at_the_end(r, 4);
    }
}

#[test]
fn a_minority_stops_while_the_majority_runs_and_the_heal_restores_it() {
    let reports = scenario(
        "a_minority_stops_while_the_majority_runs_and_the_heal_restores_it",
        5,
        4_000,
        || QuorumPlan::majority(5),
        vec![(When::At(1_000), Action::Partition(vec![0, 0, 0, 1, 1]))],
    );
    for r in &reports {
        for n in 1..=3 {
            assert!(quorate(r, n, 3_900), "majority node {n}");
        }
        for n in 4..=5 {
            assert!(!quorate(r, n, 3_900), "minority node {n}");
        }
        all_quorate_at_the_end(r, 5);
    }
}

#[test]
fn a_crashed_majority_leaves_the_rest_inquorate_until_it_restarts() {
    let reports = scenario(
        "a_crashed_majority_leaves_the_rest_inquorate_until_it_restarts",
        5,
        4_000,
        || QuorumPlan::majority(5),
        vec![
            (When::At(1_000), Action::Crash(0)),
            (When::At(1_000), Action::Crash(1)),
            (When::At(1_000), Action::Crash(2)),
            (When::At(3_000), Action::Restart(0)),
        ],
    );
    for r in &reports {
        assert!(!quorate(r, 4, 2_900) && !quorate(r, 5, 2_900));
        assert!(quorate(r, 4, 3_990) && quorate(r, 1, 3_990), "3 of 5 again");
        all_quorate_at_the_end(r, 5);
    }
}

/// When `node` went straight to the ring of `members` after `after_ms` (its first new
/// membership after then, at the time it formed: `installs` are recorded when a lazy seed reads
/// its events, up to 250 ms later), or `None` when it passed through others on the way (the
/// protocol's detection races can split a side for a moment, and wait_for_all and
/// last_man_standing then act on those steps, as in corosync).
fn straight_to(r: &RunReport, node: u32, after_ms: u64, members: &[u32]) -> Option<u64> {
    let (ms, _, m) = r
        .formed
        .iter()
        .find(|(ms, n, _)| *n == node && *ms >= after_ms)?;
    (m.as_slice() == members).then_some(*ms)
}

#[test]
fn wait_for_all_holds_quorum_until_every_node_was_seen() {
    let plan = || {
        let mut p = QuorumPlan::majority(5);
        p.settings.wait_for_all = true;
        p
    };
    let reports = scenario(
        "wait_for_all_holds_quorum_until_every_node_was_seen",
        5,
        4_500,
        plan,
        vec![
            // In pieces from the start: a majority is not enough.
            (When::At(0), Action::Partition(vec![0, 0, 0, 1, 1])),
            (When::At(2_000), Action::Heal),
            // Every node was seen: now a majority is.
            (When::At(3_000), Action::Partition(vec![0, 0, 0, 1, 1])),
        ],
    );
    let mut straight = 0;
    for r in &reports {
        for n in 1..=5 {
            assert!(!quorate(r, n, 1_990), "node {n} before all were seen");
            assert!(quorate(r, n, 2_990), "node {n} after the heal");
        }
        assert!(!quorate(r, 4, 4_450) && !quorate(r, 5, 4_450));
        // A majority that lost quorum on the way (a side split for a moment) waits for all
        // again: corosync re-arms wait_for_all whenever quorum is lost.
        if (1..=3).all(|n| straight_to(r, n, 3_000, &[1, 2, 3]).is_some()) {
            straight += 1;
            assert!(quorate(r, 1, 4_450) && quorate(r, 3, 4_450));
        }
    }
    assert!(straight >= 2, "only {straight} seeds split cleanly");
}

#[test]
fn last_man_standing_shrinks_the_cluster_after_each_stable_window() {
    let plan = || {
        let mut p = QuorumPlan::majority(5);
        p.settings.last_man_standing = true;
        p.settings.last_man_standing_window_ms = 1_000;
        p
    };
    // The window starts only when a quorate ring forms with members gone (as corosync's
    // sync_init starts it); a side of the split that forms in pieces first (a node alone, then
    // the three) never starts it. Under load many seeds take that path, so run enough for some
    // to split cleanly.
    let reports = scenario_seeds(
        "last_man_standing_shrinks_the_cluster_after_each_stable_window",
        16,
        5,
        8_000,
        plan,
        vec![
            (When::At(1_000), Action::Partition(vec![0, 0, 0, 1, 1])),
            (When::At(4_500), Action::Partition(vec![0, 0, 1, 2, 2])),
        ],
    );
    let mut straight = 0;
    for r in &reports {
        assert!(!quorate(r, 4, 4_400), "the minority never lowers anything");
        // The window runs from the sync of the majority's ring; a side that split for a
        // moment on the way restarts it, or (below quorum) keeps expected votes.
        let Some(formed) = straight_to(r, 1, 1_000, &[1, 2, 3]) else {
            continue;
        };
        straight += 1;
        let trace = format!("{:?}\n{:?}", r.quorum.expected, r.formed);
        assert_eq!(r.quorum.expected_at(1, formed + 900), Some(5), "{trace}");
        assert_eq!(r.quorum.expected_at(1, formed + 1_200), Some(3), "{trace}");
        assert!(quorate(r, 1, 4_400) && quorate(r, 2, 4_400));
        if let Some(formed) = straight_to(r, 1, 4_500, &[1, 2]) {
            // Three expected: two of them are a majority; after the window, two expected.
            assert!(quorate(r, 1, 7_900) && quorate(r, 2, 7_900), "{trace}");
            assert!(!quorate(r, 3, 7_900));
            assert_eq!(r.quorum.expected_at(1, formed + 1_200), Some(2), "{trace}");
        }
    }
    assert!(straight >= 2, "only {straight} seeds split cleanly");
}

#[test]
fn auto_tie_breaker_gives_an_even_split_to_the_documented_side() {
    for (breaker, winners) in [
        (TieBreaker::Lowest, [1, 2]),
        (TieBreaker::Highest, [3, 4]),
        (TieBreaker::List(vec![4, 1]), [3, 4]),
    ] {
        let plan = || {
            let mut p = QuorumPlan::majority(4);
            p.settings.auto_tie_breaker = breaker.clone();
            p
        };
        let reports = scenario(
            "auto_tie_breaker_gives_an_even_split_to_the_documented_side",
            4,
            4_000,
            plan,
            vec![(When::At(1_000), Action::Partition(vec![0, 0, 1, 1]))],
        );
        for r in &reports {
            for n in 1..=4u32 {
                assert_eq!(
                    quorate(r, n, 3_900),
                    winners.contains(&n),
                    "{breaker:?}: node {n}"
                );
            }
            all_quorate_at_the_end(r, 4);
        }
    }
}

#[test]
fn two_node_keeps_both_halves_quorate_once_both_were_seen() {
    let plan = || {
        let mut p = QuorumPlan::majority(2);
        p.settings.two_node = true;
        p.settings.wait_for_all = true;
        p
    };
    let reports = scenario(
        "two_node_keeps_both_halves_quorate_once_both_were_seen",
        2,
        4_000,
        plan,
        vec![(When::At(1_000), Action::Partition(vec![0, 1]))],
    );
    for r in &reports {
        assert!(quorate(r, 1, 3_900) && quorate(r, 2, 3_900));
    }
    let reports = scenario(
        "two_node_waits_for_both_at_start",
        2,
        4_000,
        plan,
        vec![
            (When::At(0), Action::Partition(vec![0, 1])),
            (When::At(2_500), Action::Heal),
        ],
    );
    for r in &reports {
        assert!(!quorate(r, 1, 2_400) && !quorate(r, 2, 2_400));
        all_quorate_at_the_end(r, 2);
    }
}

#[test]
fn a_quorum_device_vote_counts_only_while_it_polls() {
    let plan = || {
        let mut p = QuorumPlan::majority(2);
        p.settings.nodelist_expected_votes = Some(3);
        p.settings.qdevice = Some(QdeviceSettings {
            votes: 1,
            timeout_ms: 1_000,
            sync_timeout_ms: 2_000,
        });
        p.qdevice = Some(QdeviceSim {
            index: 0,
            name: "Qdevice".into(),
            poll_ms: 200,
            from_ms: 300,
            until_ms: 2_500,
        });
        p
    };
    let reports = scenario(
        "a_quorum_device_vote_counts_only_while_it_polls",
        2,
        4_500,
        plan,
        vec![(When::At(1_000), Action::Partition(vec![0, 1]))],
    );
    for r in &reports {
        assert!(
            r.quorum.qdevice_polls > 5,
            "{} polls",
            r.quorum.qdevice_polls
        );
        assert!(quorate(r, 1, 2_400), "node 1 and the device: 2 of 3");
        assert!(!quorate(r, 2, 2_400), "node 2 alone: 1 of 3");
        assert!(!quorate(r, 1, 4_400), "the device stopped polling at 2.5 s");
    }
}
