//! Named scenarios of what processes see of their groups, each under random traffic and
//! checked by `check_apps` (self-inclusion, one sequence per view, completion) as well as the
//! node checkers: several processes joining one group at start-up; late joiners while the
//! group is loaded; leaving and joining again, before and after the previous request is
//! delivered; a process dying while its join is in flight and its pid coming back at once; a
//! node crashing and restarting before the others notice, its processes attaching again.

use rotor_sim::apps::{Seen, SessionLog, GROUPS, PROCS_PER_NODE};
use rotor_sim::{run, Action, Faults, RunReport, SimConfig, When, APP_GAP_US_BUSY};

/// The group only scripts join (random actions of its members then load it).
const DELTA: usize = 3;
/// A loaded ring: an application action every 60-400 µs (about 800 messages per second from
/// each of 5 nodes).
const APP_GAP_US_LOADED: (u64, u64) = (60, 400);

fn scenario(
    name: &str,
    nodes: usize,
    script: Vec<(When, Action)>,
    app_gap_us: (u64, u64),
) -> Vec<RunReport> {
    (1..=8)
        .map(|seed| {
            let cfg = SimConfig {
                fault_ms: 3_000,
                script: script.clone(),
                app_gap_us,
                ..SimConfig::new(seed, nodes, Faults::None)
            };
            let replay = cfg.replay_command();
            let steps = cfg.script.len();
            let report = run(cfg);
            assert!(
                report.violations.is_empty(),
                "{name}, seed {seed}: {}\n  (replay with the script of test `{name}`: {replay})",
                report.violations.join("\n  ")
            );
            assert_eq!(
                report.script_fired, steps,
                "{name}, seed {seed}: a step never ran"
            );
            report
        })
        .collect()
}

fn join(at: u64, index: usize, proc_index: usize, group: usize) -> (When, Action) {
    (
        When::At(at),
        Action::Join {
            index,
            proc_index,
            group,
        },
    )
}

fn leave(at: u64, index: usize, proc_index: usize, group: usize) -> (When, Action) {
    (
        When::At(at),
        Action::Leave {
            index,
            proc_index,
            group,
        },
    )
}

/// Sessions of `group` whose first event of it was their own join change, with the position
/// of that change (ordered events of the group before it in its configuration).
fn joins_seen(report: &RunReport, group: usize) -> Vec<(&SessionLog, u64)> {
    report
        .sessions
        .iter()
        .filter_map(|log| {
            log.seen.iter().find_map(|s| match s {
                Seen::Change { change, at } if change.group == GROUPS[group] => {
                    Some((log, at.ordered))
                }
                _ => None,
            })
        })
        .collect()
}

#[test]
fn startup_several_processes_per_node_join_one_group() {
    // Every process of every node joins before any ring has formed: the joins are ordered
    // among the first messages of the first rings, and the first members multicast at once.
    let nodes = 4;
    let mut script = Vec::new();
    for index in 0..nodes {
        for p in 0..PROCS_PER_NODE {
            script.push(join(0, index, p, DELTA));
        }
    }
    for report in scenario("startup", nodes, script, APP_GAP_US_BUSY) {
        // Random actions close sessions and kill processes too, some before their join is
        // delivered; most see theirs.
        let joined = joins_seen(&report, DELTA);
        assert!(
            joined.len() >= nodes * 2,
            "only {} sessions saw their join",
            joined.len()
        );
    }
}

#[test]
fn late_joiners_under_load() {
    // Two processes per node use the group from the start and load the ring; the third of
    // every node joins it late, several at the same moment.
    let nodes = 5;
    let mut script = Vec::new();
    for index in 0..nodes {
        script.push(join(0, index, 0, DELTA));
        script.push(join(0, index, 1, DELTA));
        script.push(join(1_500, index, 2, DELTA));
    }
    let mut late_after_traffic = 0;
    for report in scenario("late_joiners_under_load", nodes, script, APP_GAP_US_LOADED) {
        late_after_traffic += joins_seen(&report, DELTA)
            .iter()
            .filter(|(_, ordered)| *ordered > 0)
            .count();
    }
    assert!(
        late_after_traffic > 0,
        "no joiner came after traffic in its configuration"
    );
}

#[test]
fn leave_and_join_again() {
    // Process 0 of node 1 leaves and joins again before its join is delivered, then again
    // while its leave is in flight; process 1 of node 2 dies while its join is in flight and a
    // process with the same pid joins at once (its predecessor's process-down still in flight).
    let mut script = vec![
        join(0, 0, 0, DELTA),
        join(300, 1, 0, DELTA),
        leave(300, 1, 0, DELTA),
        join(300, 1, 0, DELTA),
        leave(1_500, 1, 0, DELTA),
        join(1_500, 1, 0, DELTA),
        leave(2_200, 1, 0, DELTA),
        join(2_300, 1, 0, DELTA),
        join(1_000, 2, 1, DELTA),
        (
            When::At(1_000),
            Action::Kill {
                index: 2,
                proc_index: 1,
                same_pid: true,
            },
        ),
        join(1_000, 2, 1, DELTA),
    ];
    script.push(join(0, 3, 2, DELTA));
    let mut rejoiners = 0;
    for report in scenario("leave_and_join_again", 4, script, APP_GAP_US_BUSY) {
        // Node 2's process 0 joined delta several times through one session (unless a random
        // action closed it meanwhile).
        rejoiners += report
            .sessions
            .iter()
            .filter(|log| log.node.0 == 2 && log.joins >= 3 && log.leaves >= 2)
            .filter(|log| log.seen.iter().any(|s| s.group() == GROUPS[DELTA]))
            .count();
    }
    assert!(
        rejoiners >= 4,
        "{rejoiners} sessions joined again and again"
    );
}

#[test]
fn node_crashes_and_restarts_before_it_is_missed_and_its_processes_attach_again() {
    // Node 2's processes are in delta (and in random groups); it crashes and comes back 20 ms
    // later, before the others' token timeout: its processes attach again and join as new
    // members, while the survivors deliver the old ring's backlog without them.
    let nodes = 4;
    let mut script = Vec::new();
    for index in 0..nodes {
        script.push(join(0, index, 0, DELTA));
        script.push(join(0, index, 1, DELTA));
    }
    script.push((When::At(1_200), Action::Crash(1)));
    script.push((When::At(1_220), Action::Restart(1)));
    let mut reattached = 0;
    for report in scenario("quick_restart", nodes, script, APP_GAP_US_LOADED) {
        reattached += report
            .sessions
            .iter()
            .filter(|log| log.node.0 == 2 && log.incarnation == 2)
            .filter(|log| log.seen.iter().any(|s| s.group() == GROUPS[DELTA]))
            .count();
    }
    assert!(reattached >= 8, "{reattached} sessions attached again");
}
