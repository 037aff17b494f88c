//! libcmap.so.4 and libcorosync_common.so.4 end to end: a C program built against
//! corosync's headers exercises every function, success and error paths, on a rotor node
//! (loopback, no root).

use std::time::Duration;

use rotor_capi_tests::{compile_c, text, Cluster};

#[test]
fn every_libcmap_function_against_rotor() {
    let program = compile_c("cmap_test", &["cmap", "corosync_common"]);
    let cluster = Cluster::start(1, 1);
    let out = cluster.run(1, &program, &["capi"], Duration::from_secs(60));
    let report = text(&out);
    println!("{report}");
    assert!(out.status.success(), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");
}
