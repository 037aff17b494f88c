//! rotord end to end over IP multicast: three `rotord` (each starting its dataplane) on
//! rotor-testbed hosts (prefix `mcr-`) with corosync's `transport: udp` and no `mcastaddr` form
//! one ring; cmap shows the group derived from the cluster name, and the dataplane's counters
//! land in cmap as `stats.*` (frames went to the group, the token stayed unicast, rotations
//! were timed). Needs root, otherwise prints "skipped: …". Every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::write_key;
use rotor_testbed::{root_or_skip, Testbed};

/// `target/<profile>/rotord` and `…/rotor`, built first (`cargo test -p rotor-dataplane`
/// builds neither; the build is a no-op when they are current).
fn rotord_and_tool() -> (PathBuf, PathBuf) {
    rotor_testbed::rotor::cargo_build().expect("building rotord and rotor");
    let dataplane = Path::new(env!("CARGO_BIN_EXE_rotor-dataplane"));
    (
        dataplane.with_file_name("rotord"),
        dataplane.with_file_name("rotor"),
    )
}

/// `rotor ARGS` in host `i`: (success, stdout).
fn rotor(bed: &Testbed, tool: &Path, i: usize, args: &[&str]) -> (bool, String) {
    let mut argv = vec![tool.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    let out = bed.exec(i, &argv).expect("run rotor");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The value of a u64 cmap key in host `i`, if set.
fn cmap_u64(bed: &Testbed, tool: &Path, i: usize, key: &str) -> Option<u64> {
    bed.cmap_u64(i, tool, key)
}

#[test]
fn three_rotords_multicast_and_publish_stats() {
    if !root_or_skip("network namespaces for three_rotords_multicast_and_publish_stats") {
        return;
    }
    let (rotord, tool) = rotord_and_tool();
    let bed = Testbed::up("mcr-", 3).expect("testbed");
    let dir = std::env::temp_dir().join(format!("rotor-mcr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("authkey");
    write_key(&key);
    let mut nodes = String::new();
    for i in 1..=3 {
        nodes += &format!(
            "  node {{\n    nodeid: {i}\n    ring0_addr: {}\n  }}\n",
            rotor_testbed::ipv4(i)
        );
    }
    let conf = dir.join("corosync.conf");
    std::fs::write(
        &conf,
        format!(
            "totem {{\n  version: 2\n  cluster_name: mcast-e2e\n  transport: udp\n  token: 200\n  \
             keyfile: {}\n}}\nnodelist {{\n{nodes}}}\nlogging {{\n  to_syslog: no\n}}\n",
            key.display()
        ),
    )
    .unwrap();
    let mut procs = Vec::new();
    for i in 1..=3 {
        let mut cmd = Command::new(&rotord);
        cmd.args(["-f", "-c"]).arg(&conf);
        let mut p = bed.spawn(i, cmd).expect("start rotord");
        let log = p.collect_stderr();
        procs.push((p, log));
    }

    // Stats reach cmap every 200 ms, behind the ring: wait for every counter to have moved.
    let moved = [
        "stats.net.group_sends",
        "stats.net.unicast_sends",
        "stats.net.frames_in",
        "stats.srp.token_rotations",
        "stats.crypto.frames_opened",
        "stats.poll.housekeepings",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = |i: usize| {
        let (ok, out) = rotor(&bed, &tool, i, &["status"]);
        ok && (1..=3)
            .filter(|&j| j != i)
            .all(|j| out.contains(&format!("{j}:\tconnected")))
            && moved
                .iter()
                .all(|k| cmap_u64(&bed, &tool, i, k).is_some_and(|n| n > 0))
    };
    while !(1..=3).all(ready) {
        if Instant::now() > deadline {
            let stats: Vec<Vec<(&str, Option<u64>)>> = (1..=3)
                .map(|i| {
                    moved
                        .iter()
                        .map(|k| (*k, cmap_u64(&bed, &tool, i, k)))
                        .collect()
                })
                .collect();
            drop(bed);
            let logs: Vec<String> = procs
                .into_iter()
                .map(|(_, log)| {
                    log.map(|h| h.join().unwrap_or_default())
                        .unwrap_or_default()
                })
                .collect();
            panic!("no 3-node multicast ring with all of {moved:?} moved within 30 s: {stats:?}; logs: {logs:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in 1..=3 {
        let (_, group) = rotor(
            &bed,
            &tool,
            i,
            &["cmap", "get", "totem.interface.0.mcastaddr"],
        );
        assert!(
            group
                .trim()
                .starts_with("totem.interface.0.mcastaddr (str) = 239.192."),
            "host {i}: {group}"
        );
        let (_, maddr) = rotor(
            &bed,
            &tool,
            i,
            &["cmap", "get", "totem.interface.0.mcastaddr"],
        );
        let group = maddr
            .trim()
            .rsplit_once(" = ")
            .map(|x| x.1.to_owned())
            .unwrap();
        let joined = bed
            .exec(i, &["ip", "maddr", "show", "dev", "eth0"])
            .unwrap();
        assert!(
            String::from_utf8_lossy(&joined.stdout).contains(&group),
            "host {i}'s eth0 has not joined {group}"
        );
    }
    drop(procs);
    drop(bed);
    let _ = std::fs::remove_dir_all(&dir);
}
