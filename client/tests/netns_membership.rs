//! Membership of real rotord clusters on network-namespace hosts (root; otherwise each test
//! prints why it skipped). Every wait is bounded; every process is stopped by its pid and the
//! hosts are removed, on failure too.
//!
//! - Partial connectivity (hosts `pc1..pc3`, the default transport): nft rules on the switch's
//!   bridge (where cluster frames pass whether the hosts run XDP or kernel UDP) drop every
//!   frame between hosts 1 and 3, both ways — connectivity that is not transitive. Hosts 1 and
//!   2 settle in one ring and host 3 alone, the logs name the broken pair with its addresses,
//!   and no ring changes while the rules stay; after the heal all three form one ring. Then
//!   the same with one direction lost (host 3 does not hear host 1).
//! - Scale (hosts `big1..big16`, kernel UDP, blocking poll, so sixteen nodes fit two cores):
//!   sixteen nodes form one ring (their commit tokens go in pieces at the default netmtu), and
//!   when one is killed the fifteen others form theirs.
//!
//! Timings are printed for the record, never asserted beyond the bounds of the waits.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rotor_testbed::rotor::{write_authkey, Bins, Spec};
use rotor_testbed::{root_or_skip, TempDir, Testbed};

#[allow(dead_code)] // the helpers of the other end-to-end tests
mod common;

use common::daemons::Daemons;

/// Each host's ring as `rotor status` shows it: (ring id, members).
fn rings(bed: &Testbed, bins: &Bins) -> Vec<Option<(String, Vec<u32>)>> {
    (1..=bed.hosts())
        .map(|i| {
            bed.rotor_status(i, bins)
                .ok()
                .filter(|s| s.state == "operational")
                .map(|s| (s.ring, s.connected))
        })
        .collect()
}

/// Waits until every host shows the members `expected[i - 1]`, operational; returns how long
/// it took. Panics after `limit`, with what every host showed.
fn wait_rings(bed: &Testbed, bins: &Bins, expected: &[Vec<u32>], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let now = rings(bed, bins);
        let settled = now
            .iter()
            .zip(expected)
            .all(|(r, want)| r.as_ref().is_some_and(|(_, m)| m == want));
        if settled {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "no rings {expected:?} within {limit:?}; the hosts show {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Watches the rings for `span`: every host must keep the ring it has now.
fn assert_stable(bed: &Testbed, bins: &Bins, span: Duration) {
    let before = rings(bed, bins);
    let start = Instant::now();
    while start.elapsed() < span {
        std::thread::sleep(Duration::from_millis(250));
        let now = rings(bed, bins);
        assert_eq!(
            now,
            before,
            "a ring changed {:?} after the rings settled, with connectivity unchanged",
            start.elapsed()
        );
    }
}

/// nft rules in the switch namespace that drop every frame from host `from`'s port to host
/// `to`'s port of the bridge, for each pair; replaces the rules set before.
fn block(bed: &Testbed, pairs: &[(usize, usize)]) {
    let _ = bed.exec_switch(&["nft", "delete", "table", "bridge", "rotor_reach"]);
    let mut script = String::from(
        "table bridge rotor_reach {\n  chain forward {\n    type filter hook forward priority 0;\n",
    );
    for (from, to) in pairs {
        script.push_str(&format!("    iifname \"h{from}\" oifname \"h{to}\" drop\n"));
    }
    script.push_str("  }\n}\n");
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &bed.switch(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft in the switch namespace");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("piped stdin"),
        script.as_bytes(),
    )
    .expect("write the nft rules");
    let out = child.wait_with_output().expect("wait for nft");
    assert!(
        out.status.success(),
        "nft -f in {}: {}\n{script}",
        bed.switch(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn heal(bed: &Testbed) {
    let out = bed
        .exec_switch(&["nft", "delete", "table", "bridge", "rotor_reach"])
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft delete table: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn partial_connectivity_settles_on_the_largest_ring_and_heals() {
    if !root_or_skip("network namespaces and nft for the partial connectivity test") {
        return;
    }
    let bins = Bins {
        dir: common::bin_dir(),
    };
    let dir = TempDir::new(&format!("rotor-netns-reach-{}", std::process::id())).unwrap();
    let key = dir.path().join("authkey");
    write_authkey(&key).unwrap();
    let mut spec = Spec::new("netns-reach");
    // A token of one second, whatever the node count: a node counts another as not heard
    // after max(token, 4 × merge) = 1 s without a datagram from it.
    spec.totem.push(("token".into(), "1000".into()));
    spec.totem.push(("token_coefficient".into(), "0".into()));
    spec.extra = format!(
        "system {{\n  state_dir: {}\n}}\n",
        dir.path().join("state").display()
    );
    let conf = dir.path().join("corosync.conf");
    std::fs::write(&conf, spec.corosync_conf(3, &key)).unwrap();

    let bed = Testbed::up("pc", 3).expect("testbed");
    let mut daemons = Daemons::start(&bed, &bins, &conf);
    let all = vec![vec![1, 2, 3]; 3];
    let formed = wait_rings(&bed, &bins, &all, Duration::from_secs(30));
    eprintln!("netns partial connectivity: one ring of 3 in {formed:?}");

    let split = vec![vec![1, 2], vec![1, 2], vec![3]];
    let cases: [(&str, &[(usize, usize)]); 2] = [
        ("1 and 3 do not hear each other", &[(1, 3), (3, 1)]),
        ("3 does not hear 1", &[(1, 3)]),
    ];
    for (what, pairs) in cases {
        block(&bed, pairs);
        let settled = wait_rings(&bed, &bins, &split, Duration::from_secs(30));
        // Eight token timeouts with the rules in place: no ring may change.
        assert_stable(&bed, &bins, Duration::from_secs(8));
        heal(&bed);
        let healed = wait_rings(&bed, &bins, &all, Duration::from_secs(30));
        eprintln!(
            "netns partial connectivity ({what}): rings [1, 2] and [3] {settled:?} after the \
             rules, unchanged for 8 s, one ring of 3 {healed:?} after the heal"
        );
    }
    let logs = daemons.stop();
    let named = logs.iter().any(|log| {
        log.contains(
            "Partial connectivity: node 1 (198.18.0.1:5405) and node 3 (198.18.0.3:5405) do not \
             hear each other",
        )
    });
    let one_way = logs
        .iter()
        .any(|log| log.contains("node 3 (198.18.0.3:5405) does not hear node 1 (198.18.0.1:5405)"));
    if !(named && one_way) {
        for (i, log) in logs.iter().enumerate() {
            eprintln!("---- rotord on host {}:\n{log}", i + 1);
        }
    }
    assert!(named, "no log names the pair that does not hear each other");
    assert!(one_way, "no log names the direction that is lost");
    assert!(
        logs.iter().any(|log| log.contains("Connectivity restored")),
        "no log says connectivity was restored"
    );
    drop(bed);
}

#[test]
fn sixteen_nodes_form_one_ring_and_survive_a_kill() {
    if !root_or_skip("network namespaces for sixteen rotord hosts") {
        return;
    }
    const NODES: usize = 16;
    let bins = Bins {
        dir: common::bin_dir(),
    };
    let dir = TempDir::new(&format!("rotor-netns-16-{}", std::process::id())).unwrap();
    let key = dir.path().join("authkey");
    write_authkey(&key).unwrap();
    let mut spec = Spec::new("netns-sixteen");
    // Kernel UDP and a dataplane that sleeps until there is work: sixteen nodes share two
    // cores. Two seconds of token whatever the count (corosync's coefficient would make it
    // 11 s).
    spec.transport = "udpu".into();
    spec.totem.push(("token".into(), "2000".into()));
    spec.totem.push(("token_coefficient".into(), "0".into()));
    spec.extra = format!(
        "rotor {{\n  poll_mode: blocking\n}}\nsystem {{\n  state_dir: {}\n}}\n",
        dir.path().join("state").display()
    );
    let conf = dir.path().join("corosync.conf");
    std::fs::write(&conf, spec.corosync_conf(NODES, &key)).unwrap();

    let bed = Testbed::up("big", NODES).expect("testbed");
    let mut daemons = Daemons::start(&bed, &bins, &conf);
    let all: Vec<u32> = (1..=NODES as u32).collect();
    let formed = wait_rings(
        &bed,
        &bins,
        &vec![all.clone(); NODES],
        Duration::from_secs(90),
    );
    eprintln!("netns 16 nodes: one ring of {NODES} in {formed:?}");

    let killed = bed.kill_host(NODES);
    assert!(killed >= 2, "host {NODES} had rotord and its dataplane");
    let start = Instant::now();
    let survivors: Vec<usize> = (1..NODES).collect();
    let rest: Vec<u32> = (1..NODES as u32).collect();
    bed.wait_rotor_ring(&survivors, &rest, &bins, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("after killing host {NODES}: {e}"));
    eprintln!(
        "netns 16 nodes: host {NODES} killed, the other {} in one ring {:?} later",
        NODES - 1,
        start.elapsed()
    );
    daemons.stop();
    drop(bed);
}
