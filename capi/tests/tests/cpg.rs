//! libcpg.so.4 end to end: a C program built against corosync's headers exercises every
//! function, success and error paths, on a three-node rotor cluster (loopback, no root).

use std::time::Duration;

use rotor_capi_tests::{compile_c, text, Cluster};

#[test]
fn every_libcpg_function_against_rotor() {
    let program = compile_c("cpg_test", &["cpg"]);
    let cluster = Cluster::start(3, 0);
    let out = cluster.run(2, &program, &["2", "3"], Duration::from_secs(60));
    let report = text(&out);
    println!("{report}");
    assert!(out.status.success(), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");
}
