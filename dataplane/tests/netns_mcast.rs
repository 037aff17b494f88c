//! IP multicast (corosync's `transport: udp`) between real `rotor-dataplane` processes on
//! rotor-testbed hosts: 3-node rings over kernel UDP and over AF_XDP, IPv4 and IPv6, deliver
//! every node's messages in one order everywhere while every frame for all members goes once to
//! the group (`net.group_sends`) and the token stays unicast; each host's `eth0` holds the
//! group membership; AF_XDP nodes see the group's frames through the XDP program, and kernel
//! and AF_XDP nodes share one multicast ring. Own testbed prefixes (`mcu…`, `mcx…`), bounded
//! waits; root and (for XDP) a veth that takes the program are needed, otherwise each test
//! prints "skipped: …" and why.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{check_same_order, stat, xdp_unavailable, Cluster};
use rotor_testbed::root_or_skip;

const NODES: usize = 3;
const SEND: usize = 30;
const GROUP_V4: &str = "239.192.77.1";
const GROUP_V6: &str = "ff15::7701";

/// The AF_XDP tests one at a time (two cores; each runs three polling processes).
static XDP_SERIAL: Mutex<()> = Mutex::new(());

/// Forms a 3-node multicast ring on `prefix`'s hosts with `transports`, checks one order
/// everywhere, the group membership on every `eth0`, and each node's counters at exit.
fn multicast_ring(c: &mut Cluster, v6: bool) {
    let group = if v6 { GROUP_V6 } else { GROUP_V4 };
    c.mcast = Some(group.to_owned());
    let key = c.key();
    for i in 1..=NODES {
        c.start(i, &key, SEND);
    }
    check_same_order(c, NODES, SEND, Duration::from_secs(20));
    for i in 1..=NODES {
        let out = c
            .bed
            .exec(i, &["ip", "maddr", "show", "dev", "eth0"])
            .expect("ip maddr");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(group),
            "host {i}'s eth0 has not joined {group}: {text}"
        );
    }
    for i in 1..=NODES {
        let err = c.stop(i);
        eprintln!("node {i} ({}) at exit: {err}", c.transports[i - 1]);
        let group_port = if v6 {
            format!("[{group}]:5405")
        } else {
            format!("{group}:5405")
        };
        assert!(
            err.contains(&format!("multicast to {group_port} (ttl 1)")),
            "node {i} did not say it multicasts: {err}"
        );
        let get = |k: &str| stat(&err, k).unwrap_or_else(|| panic!("node {i}: no {k}: {err}"));
        assert!(
            get("net.group_sends") > 0,
            "node {i} sent nothing to the group"
        );
        assert!(
            get("net.unicast_sends") > 0,
            "node {i} never passed the token"
        );
        assert!(get("net.frames_in") > 0, "node {i} received nothing");
        assert!(get("srp.token_rotations") > 0, "node {i} timed no rotation");
        // Drop counters appear once they count something.
        let drops = |k: &str| stat(&err, k).unwrap_or(0);
        assert_eq!(drops("crypto.drops.invalid_digest"), 0, "node {i}");
        if c.transports[i - 1] == "xdp" {
            assert!(
                get("xdp.prog.redirected") > 0,
                "node {i}: nothing redirected"
            );
            assert_eq!(drops("xdp.drops.wrong_destination"), 0, "node {i}");
        }
    }
}

#[test]
fn udp_multicast_three_nodes_agree_over_ipv4() {
    if !root_or_skip("network namespaces for udp_multicast_three_nodes_agree_over_ipv4") {
        return;
    }
    let mut c = Cluster::new("mcu-", NODES, false);
    multicast_ring(&mut c, false);
}

#[test]
fn udp_multicast_three_nodes_agree_over_ipv6() {
    if !root_or_skip("network namespaces for udp_multicast_three_nodes_agree_over_ipv6") {
        return;
    }
    let mut c = Cluster::new("mcu6-", NODES, true);
    multicast_ring(&mut c, true);
}

#[test]
fn xdp_multicast_three_nodes_agree_over_ipv4() {
    let _serial = XDP_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !root_or_skip("network namespaces and XDP for xdp_multicast_three_nodes_agree_over_ipv4") {
        return;
    }
    let mut c = Cluster::new("mcx-", NODES, false);
    if let Some(why) = xdp_unavailable(&c) {
        eprintln!("skipped: xdp_multicast_three_nodes_agree_over_ipv4: {why}");
        return;
    }
    c.transports = vec!["xdp"; NODES];
    multicast_ring(&mut c, false);
}

/// Two AF_XDP nodes and a kernel-UDP node: the kernel accepts the hand-built multicast frames
/// (it checks their checksums and group MAC), and the kernel's reach the AF_XDP sockets.
#[test]
fn xdp_and_udp_multicast_three_nodes_agree_over_ipv6() {
    let _serial = XDP_SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !root_or_skip("network namespaces and XDP for xdp_and_udp_multicast_…_over_ipv6") {
        return;
    }
    let mut c = Cluster::new("mcx6-", NODES, true);
    if let Some(why) = xdp_unavailable(&c) {
        eprintln!("skipped: xdp_and_udp_multicast_three_nodes_agree_over_ipv6: {why}");
        return;
    }
    c.transports = vec!["xdp", "xdp", "udp"];
    multicast_ring(&mut c, true);
}
