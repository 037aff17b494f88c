//! libquorum.so.5 end to end: a C program built against corosync's headers exercises every
//! function, success and error paths, on rotor nodes (loopback, no root): model v0 and v1
//! notifications on a three-node cluster with votequorum, before and after a node stops, and
//! the quorum type and state of a node without a quorum provider.

use std::time::Duration;

use rotor_capi_tests::{compile_c, run_with_pauses, text, Cluster};

#[test]
fn every_libquorum_function_against_rotor() {
    let program = compile_c("quorum_test", &["quorum"]);
    let mut cluster = Cluster::start_votequorum(3, 3, "");
    let (status, report) = run_with_pauses(
        &mut cluster,
        1,
        &program,
        &["set"],
        Duration::from_secs(90),
        |c, what| {
            assert_eq!(what, "stop node 3");
            c.stop(3);
        },
    );
    println!("{report}");
    assert!(status.success(), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");
}

#[test]
fn libquorum_without_a_quorum_provider() {
    let program = compile_c("quorum_test", &["quorum"]);
    let cluster = Cluster::start(1, 4);
    let out = cluster.run(1, &program, &["free"], Duration::from_secs(60));
    let report = text(&out);
    println!("{report}");
    assert!(out.status.success(), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");
}
