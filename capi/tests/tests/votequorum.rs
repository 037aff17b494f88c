//! libvotequorum.so.8 end to end: a C program built against corosync's headers exercises
//! every function, success and error paths, on a three-node rotor cluster with votequorum and
//! a quorum device configured (loopback, no root): getinfo, expected votes and votes, the
//! device's registration, polls, master wins, rename and unregistration, the notifications
//! before and after a node stops (quorum lost, then regained with lower expected votes).

use std::time::Duration;

use rotor_capi_tests::{compile_c, run_with_pauses, Cluster};

#[test]
fn every_libvotequorum_function_against_rotor() {
    let program = compile_c("votequorum_test", &["votequorum"]);
    let mut cluster = Cluster::start_votequorum(3, 5, "  device {\n    model: net\n  }\n");
    let (status, report) = run_with_pauses(
        &mut cluster,
        1,
        &program,
        &[],
        Duration::from_secs(120),
        |c, what| {
            assert_eq!(what, "stop node 3");
            c.stop(3);
        },
    );
    println!("{report}");
    assert!(status.success(), "{report}");
    assert!(report.contains(" passed, 0 failed"), "{report}");
}
