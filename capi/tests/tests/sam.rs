//! libsam.so.4 end to end: a C program built against corosync's headers exercises every
//! function, success and error paths, on a one-node rotor cluster with votequorum (loopback,
//! no root). SAM forks: the program's exit status is its supervisor's, and each instance
//! prints its own checks.

use std::time::Duration;

use rotor_capi_tests::{compile_c, text, Cluster};

/// The supervisor's pid, which the program prints before it registers.
fn supervisor_pid(report: &str) -> String {
    report
        .lines()
        .find_map(|l| l.strip_prefix("supervisor pid "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no supervisor pid in:\n{report}"))
        .to_owned()
}

#[test]
fn every_libsam_function_against_rotor() {
    let program = compile_c("sam_test", &["sam"]);
    let cluster = Cluster::start_votequorum(1, 6, "");

    // quorum-restart with cmap: instance 1 fails its health-check callback and is killed by
    // the warn signal, instance 2 gets its data, finalizes and ends the supervisor with 0.
    let out = cluster.run(1, &program, &["restart"], Duration::from_secs(90));
    let report = text(&out);
    println!("{report}");
    assert!(out.status.success(), "{report}");
    assert!(report.contains("instance 1: "), "{report}");
    assert!(report.contains("instance 2: "), "{report}");
    assert!(!report.contains("not ok"), "{report}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("instance 1 (pid") && stderr.contains("SIGTERM"),
        "the supervisor's lines say it warned instance 1 with SIGTERM:\n{report}"
    );
    // A clean end deletes the process's keys.
    let pid = supervisor_pid(&report);
    let keys = cluster.rotor(1, &["cmap", "list", &format!("resources.process.{pid}.")]);
    assert_eq!(String::from_utf8_lossy(&keys.stdout), "", "{}", text(&keys));

    // quit: the supervisor ends with the instance's status.
    let out = cluster.run(1, &program, &["quit"], Duration::from_secs(30));
    let report = text(&out);
    println!("{report}");
    assert_eq!(out.status.code(), Some(7), "{report}");
    assert!(report.contains("instance 1: "), "{report}");
    assert!(!report.contains("not ok"), "{report}");

    // mark_failed: SIGKILL at once, the supervisor quits with 128 + 9, the state stays.
    let out = cluster.run(1, &program, &["mark-failed"], Duration::from_secs(30));
    let report = text(&out);
    println!("{report}");
    assert_eq!(out.status.code(), Some(128 + libc::SIGKILL), "{report}");
    assert!(!report.contains("not ok"), "{report}");
    let pid = supervisor_pid(&report);
    let state = cluster.rotor(
        1,
        &["cmap", "get", &format!("resources.process.{pid}.state")],
    );
    assert_eq!(
        String::from_utf8_lossy(&state.stdout),
        format!("resources.process.{pid}.state (str) = failed\n"),
        "{}",
        text(&state)
    );
}
