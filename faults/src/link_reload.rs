//! Links added and removed by a reload under CPG load: 3 nodes on one link (a second bridge
//! wired but unused), checker clients on every node. A reload gives every node `ring1_addr`
//! and an `interface { linknumber: 1 }`: every node runs link 1 (node 1 sees both links to
//! nodes 2 and 3 up, `rotor status` lists `LINK ID 1`, cmap has its
//! `runtime.config.totem.interface.1.*`). Link 0 of node 3 then goes down (its interface):
//! traffic flows on link 1 with no membership change, and link 0 comes back. A reload where
//! node 3 lacks ring1_addr is refused naming the file, line and key, and changes nothing. A
//! last reload takes link 1 away: it leaves `rotor status` and cmap. The checker over the logs
//! must find no lost, duplicated, reordered or invented message, and no ring or group change
//! may happen from the first reload to the last. Figures (each round, the recovery after it)
//! are reported, never asserted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rotor_testbed::Testbed;

use crate::campaign::{nft_reset, prepare_run, wait_until, Cluster, Config};
use crate::changes::{
    cfg, cmap_get, rotor, run_sequence, ChangesResult, Logs, Step, POLL_EVERY_CHANGES,
};
use crate::links::{connected, cut, unexpected_changes, Cut};
use crate::record;

const CLUSTER: &str = "linkreload";
/// Longest wait for a link to be seen up or down, a key to appear or go, traffic to flow.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// Runs the sequence on testbed hosts named after `prefix`; logs go to `out`.
pub fn run(
    bins: PathBuf,
    out: &Path,
    prefix: &str,
    progress: &mut dyn FnMut(&str),
) -> ChangesResult {
    run_sequence(bins, out, prefix, progress, steps, unexpected_changes)
}

/// Whether `rotor status` on host `i` lists link `n`.
fn status_lists(cl: &Cluster, i: usize, n: usize) -> bool {
    rotor(cl, i, &["status"]).is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.starts_with(&format!("LINK ID {n} ")))
    })
}

/// `rotor cfg -R` on host `i`, expected to succeed.
fn reload(cl: &Cluster, i: usize, problems: &mut Vec<String>) -> Result<Duration, String> {
    let (code, out, round) = cfg(cl, i, &["-R"])?;
    if code != 0 {
        problems.push(format!("rotor cfg -R exited {code}: {}", out.trim()));
    }
    Ok(round)
}

/// Waits for `ok`, or notes `what` did not happen.
fn expect(problems: &mut Vec<String>, what: &str, ok: impl FnMut() -> bool) {
    if wait_until(POLL_EVERY_CHANGES, WAIT_MAX, ok).is_none() {
        problems.push(format!("{what} within {} s", WAIT_MAX.as_secs()));
    }
}

fn steps(
    bins: PathBuf,
    dir: &Path,
    prefix: &str,
    steps: &mut Vec<Step>,
    progress: &mut dyn FnMut(&str),
) -> Result<Logs, String> {
    let (key, mut spec) = prepare_run(dir, CLUSTER)?;
    spec.transport = "udpu".into();
    spec.totem.push(("token".into(), "1000".into()));
    spec.links = 1;
    // One file for every node (the hosts share the file system).
    let conf = dir.join("corosync.conf");
    let write = |text: String| std::fs::write(&conf, text).map_err(|e| format!("{e}"));
    write(spec.corosync_conf(3, &key))?;
    let bed = Testbed::up(prefix, 3).map_err(|e| format!("testbed: {e}"))?;
    bed.add_link(1)
        .map_err(|e| format!("testbed link 1: {e}"))?;
    let config = Config {
        nodes: 3,
        transport: "udpu",
        token_ms: Some(1000),
        faults: None,
    };
    let mut cl = Cluster::new(bed, &bins, dir, &conf, config, 200);
    nft_reset(&cl.bed)?;
    cl.form()?;
    progress("ring of 3 on one link formed, checkers joined");
    std::thread::sleep(Duration::from_secs(1));
    let since = record::now_ns();

    // Link 1 added by a reload.
    let mut two = spec.clone();
    two.links = 2;
    two.interfaces = "  interface {\n    linknumber: 1\n  }\n".into();
    {
        let mut problems = Vec::new();
        write(two.corosync_conf(3, &key))?;
        let round = reload(&cl, 1, &mut problems)?;
        expect(
            &mut problems,
            "node 1 never saw link 1 to nodes 2 and 3 up",
            || (2..=3).all(|n| connected(&cl, 1, n, 1) == 1),
        );
        for i in 1..=3 {
            expect(&mut problems, &format!("node {i}: no LINK ID 1"), || {
                status_lists(&cl, i, 1)
            });
            if cmap_get(&cl, i, "runtime.config.totem.interface.1.knet_ping_timeout").is_none() {
                problems.push(format!("node {i}: no runtime.config.totem.interface.1.*"));
            }
        }
        let recovery = cl.wait_recovery(record::now_ns(), WAIT_MAX);
        steps.push(Step {
            name: "link 1 added (reload)".into(),
            round,
            settled: None,
            recovery,
            problems,
        });
        progress("link 1 added");
    }

    // Link 0 of node 3 down: link 1 carries its traffic, no membership change.
    {
        let mut problems = Vec::new();
        let on_link1 = |cl: &Cluster| cl.stat(1, "knet.node3.link1.tx_data_packets");
        let before = on_link1(&cl);
        let start = Instant::now();
        cut(&cl, 3, 0, Cut::Interface, true)?;
        expect(
            &mut problems,
            "node 1 never saw node 3's link 0 down",
            || connected(&cl, 1, 3, 0) == 0,
        );
        let recovery = cl.wait_recovery(record::now_ns(), WAIT_MAX);
        if on_link1(&cl) <= before {
            problems.push("no data frame went to node 3 on link 1".into());
        }
        cut(&cl, 3, 0, Cut::Interface, false)?;
        expect(
            &mut problems,
            "node 1 never saw node 3's link 0 up again",
            || connected(&cl, 1, 3, 0) == 1,
        );
        steps.push(Step {
            name: "node 3's link 0 down and up".into(),
            round: start.elapsed(),
            settled: None,
            recovery,
            problems,
        });
        progress("link 0 down and up");
    }

    // A reload where node 3 lacks ring1_addr: refused, naming where; link 1 stays.
    {
        let mut problems = Vec::new();
        let text = two.corosync_conf(3, &key);
        let ring1_of_3 = format!("    ring1_addr: {}\n", rotor_testbed::ipv4_on_link(3, 1));
        write(text.replacen(&ring1_of_3, "", 1))?;
        let (code, out, round) = cfg(&cl, 2, &["-R"])?;
        let named = out.contains(&format!("{}:", conf.display()))
            && out.contains("nodelist.node.2")
            && out.contains("Not all nodes have the same number of links");
        if code == 0 || !named {
            problems.push(format!(
                "a reload without node 3's ring1_addr: rotor cfg -R exited {code}: {}",
                out.trim()
            ));
        }
        write(text)?;
        if !(1..=3).all(|i| status_lists(&cl, i, 1)) {
            problems.push("link 1 went away with the refused reload".into());
        }
        let recovery = cl.wait_recovery(record::now_ns(), WAIT_MAX);
        steps.push(Step {
            name: "a node without the link refused".into(),
            round,
            settled: None,
            recovery,
            problems,
        });
        progress("a reload without node 3's ring1_addr refused");
    }

    // Link 1 removed by a reload: gone from status and cmap.
    {
        let mut problems = Vec::new();
        write(spec.corosync_conf(3, &key))?;
        let round = reload(&cl, 3, &mut problems)?;
        for i in 1..=3 {
            expect(
                &mut problems,
                &format!("node {i}: LINK ID 1 still listed"),
                || !status_lists(&cl, i, 1),
            );
            let gone = |key: &str| cmap_get(&cl, i, key).is_none();
            expect(
                &mut problems,
                &format!("node {i}: link 1's keys still in cmap"),
                || {
                    gone("runtime.config.totem.interface.1.knet_ping_timeout")
                        && gone(&format!("stats.knet.node{}.link1.connected", i % 3 + 1))
                },
            );
        }
        let recovery = cl.wait_recovery(record::now_ns(), WAIT_MAX);
        steps.push(Step {
            name: "link 1 removed (reload)".into(),
            round,
            settled: None,
            recovery,
            problems,
        });
        progress("link 1 removed");
    }
    cl.bed
        .wait_rotor_ring(&[1, 2, 3], &[1, 2, 3], &cl.bins, Duration::from_secs(5))?;
    let logs = cl.logs.clone();
    let until = record::now_ns();
    drop(cl);
    Ok((logs, (since, until)))
}
