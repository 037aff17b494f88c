//! The hwtest bodies on veth, in copy mode, so their code paths run without a NIC: host 1's
//! `eth0` is a veth with two queues (both ends rebuilt with `numrxqueues 2`); the transport binds
//! copy-mode sockets on both queues (an epoll set as its wait_fd), a TX burst to the multicast
//! group completes, and raw frames sent from host 2 reach both queues. Testbed prefix `hwq-`;
//! needs root and a veth that takes XDP, otherwise prints "skipped: …" and why.

use std::process::Command;

use rotor_dataplane::transport::xsk::{rx_queue_count, BindMode, XskTransport};
use rotor_hwtest::{check_bound, config, rx_spread, tx_burst_completes, RawSender};
use rotor_testbed::{in_netns, root_or_skip, Testbed};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn copy_mode_on_two_queues_sends_and_receives_on_both() {
    let test = "copy_mode_on_two_queues_sends_and_receives_on_both";
    if !root_or_skip(&format!("network namespaces for {test}")) {
        return;
    }
    let bed = Testbed::up("hwq-", 2).expect("testbed");
    let (sw, h1) = (bed.switch(), bed.host(1));
    // Host 1's link again, with two queues at both ends.
    ip(&["-n", &sw, "link", "del", "h1"]);
    ip(&[
        "-n",
        &sw,
        "link",
        "add",
        "h1",
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
        "netns",
        &h1,
    ]);
    ip(&["-n", &sw, "link", "set", "h1", "master", "br0"]);
    ip(&["-n", &sw, "link", "set", "h1", "up"]);
    ip(&["-n", &h1, "addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    ip(&["-n", &h1, "link", "set", "eth0", "up"]);

    // The sender lives in host 2; its socket keeps that namespace when used from elsewhere.
    let sender = in_netns(&bed.host(2), || {
        RawSender::open("eth0").expect("raw socket")
    });
    let result = in_netns(&h1, move || -> Result<(), String> {
        let queues = rx_queue_count("eth0").map_err(|e| e.to_string())?;
        assert_eq!(queues, 2, "host 1's eth0 should have two receive queues");
        let cfg = config("eth0", queues, BindMode::Copy).map_err(|e| e.to_string())?;
        let mut x = match XskTransport::open(&cfg) {
            Ok(x) => x,
            Err(e) => return Err(format!("skip: AF_XDP on a two-queue veth: {e}")),
        };
        check_bound(&x, BindMode::Copy, &[0, 1])?;
        tx_burst_completes(&mut x, 512)?;
        let mac = rotor_dataplane::transport::neigh::link_by_name("eth0")
            .map_err(|e| e.to_string())?
            .mac;
        let per_queue = rx_spread(&mut x, &sender, mac, 512)?;
        eprintln!("frames per queue: {per_queue:?}; {:?}", x.counters());
        if per_queue.iter().any(|(_, n)| *n == 0) {
            return Err(format!("a queue received nothing: {per_queue:?}"));
        }
        Ok(())
    });
    match result {
        Err(e) if e.starts_with("skip: ") => {
            eprintln!("skipped: {test}: {}", &e["skip: ".len()..]);
        }
        r => r.unwrap(),
    }
}
