//! libcfg.so.7 end to end: a C program built against corosync's headers exercises every
//! function, success and error paths, on node 3 of a three-node rotor cluster (loopback, no
//! root), ending with a shutdown request its tracking handle agrees to: node 3's rotord
//! stops.

use std::time::{Duration, Instant};

use rotor_capi_tests::{compile_c, text, Cluster};

#[test]
fn every_libcfg_function_against_rotor() {
    let program = compile_c("cfg_test", &["cfg"]);
    let cluster = Cluster::start(3, 8);
    let out = cluster.run(3, &program, &[], Duration::from_secs(90));
    let report = text(&out);
    println!("{report}");
    assert!(out.status.success(), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");
    // Node 3 left: the others' status says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster.rotor(1, &["cfg", "-s"]);
        let status = String::from_utf8_lossy(&status.stdout).into_owned();
        if status.contains("nodeid:          3:\tdisconnected") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 still in the ring:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        cluster.log(3).contains("shutdown"),
        "node 3's log:\n{}",
        cluster.log(3)
    );
}
