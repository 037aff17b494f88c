//! Real `rotor-dataplane` processes on rotor-testbed hosts (network namespaces on one bridge),
//! over kernel UDP (io_uring when available) with AES-256-GCM frames: a 5-node ring delivers
//! the same messages in the same order everywhere, loses a SIGKILLed node and takes it back
//! when it restarts; a node with another key never joins and its frames are counted as
//! `invalid_digest`; an IPv6 ring of 3 does the same as IPv4. Each test has its own testbed
//! prefix (they run in parallel); every wait is bounded. Needs root, otherwise skipped.

mod common;

use std::time::{Duration, Instant};

use common::{check_same_order, is_regular, write_key, Cluster};
use rotor_testbed::root_or_skip;

#[test]
fn five_nodes_agree_and_a_killed_node_rejoins() {
    if !root_or_skip("network namespaces for five_nodes_agree_and_a_killed_node_rejoins") {
        return;
    }
    const NODES: usize = 5;
    const SEND: usize = 30;
    let mut c = Cluster::new("rdpu5-", NODES, false);
    let key = c.key();
    for i in 1..=NODES {
        c.start(i, &key, SEND);
    }
    check_same_order(&mut c, NODES, SEND, Duration::from_secs(25));

    let before: Vec<usize> = c.lines.iter().map(Vec::len).collect();
    c.kill(5);
    c.wait_until(Duration::from_secs(10), "a ring without node 5", |l| {
        (0..4).all(|i| l[i][before[i]..].iter().any(|x| is_regular(x, "1,2,3,4")))
    });

    // Same node id, new process: it comes back into the ring.
    let before: Vec<usize> = c.lines.iter().map(Vec::len).collect();
    c.start(5, &key, 0);
    c.wait_until(Duration::from_secs(10), "node 5 back in the ring", |l| {
        (0..5).all(|i| l[i][before[i]..].iter().any(|x| is_regular(x, "1,2,3,4,5")))
    });
}

#[test]
fn a_node_with_another_key_never_joins_and_its_frames_are_dropped() {
    if !root_or_skip("network namespaces for a_node_with_another_key_never_joins") {
        return;
    }
    let mut c = Cluster::new("rdpuk-", 4, false);
    let key = c.key();
    let other = c.dir.join("otherkey");
    write_key(&other);
    for i in 1..=3 {
        c.start(i, &key, 0);
    }
    c.start(4, &other, 0);
    c.wait_until(Duration::from_secs(10), "a ring of 1,2,3", |l| {
        (0..3).all(|i| l[i].iter().any(|x| is_regular(x, "1,2,3")))
    });
    // Give node 4 a few token timeouts of trying.
    let settle = Instant::now() + Duration::from_secs(2);
    while let Some(left) = settle.checked_duration_since(Instant::now()) {
        if let Ok((i, line)) = c.rx.recv_timeout(left) {
            c.lines[i].push(line);
        }
    }
    for i in 0..3 {
        for l in c.lines[i].iter().filter(|l| l.starts_with("config ")) {
            let members = l.rsplit_once("members=").map(|x| x.1).unwrap_or("");
            assert!(
                !members.split(',').any(|m| m == "4"),
                "node {} let node 4 in: {l}",
                i + 1
            );
        }
    }
    assert!(
        c.lines[3]
            .iter()
            .filter(|l| l.starts_with("config regular "))
            .all(|l| is_regular(l, "4")),
        "node 4 formed a ring with others: {:#?}",
        c.lines[3]
    );
    let stderr = c.stop(1);
    let digest = common::stat(&stderr, "crypto.drops.invalid_digest").unwrap_or(0);
    assert!(
        digest > 0,
        "node 1 counted no invalid_digest drops: {stderr}"
    );
    assert!(
        stderr.contains("Received message has invalid digest... ignoring (from 198.18.0.4:5405)"),
        "node 1 did not log the invalid digest: {stderr}"
    );
    if std::env::var_os(rotor_dataplane::udp::NO_URING_ENV).is_none() {
        assert!(
            stderr.contains("transport udp: asked for (io_uring)"),
            "node 1 did not run on io_uring: {stderr}"
        );
    }
}

#[test]
fn three_nodes_agree_over_ipv6() {
    if !root_or_skip("network namespaces for three_nodes_agree_over_ipv6") {
        return;
    }
    const NODES: usize = 3;
    const SEND: usize = 30;
    let mut c = Cluster::new("rdpu6-", NODES, true);
    let key = c.key();
    for i in 1..=NODES {
        c.start(i, &key, SEND);
    }
    check_same_order(&mut c, NODES, SEND, Duration::from_secs(20));
    // SIGTERM leaves cleanly (exit 0) over IPv6 too.
    c.stop(3);
}
