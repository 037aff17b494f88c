//! The quick fault matrix on network-namespace hosts (root; otherwise it prints why it
//! skipped): `Plan::quick`, 3 nodes over XDP with a 200 ms token through loss, delay with
//! reordering, duplication, a partition, a killed dataplane, a paused dataplane, a garbage
//! flood and late joiners; then 3 nodes over kernel UDP with the default token through a
//! killed dataplane, a killed node and a restart. Every checker log must pass every property
//! and traffic must flow everywhere after every heal. The figures are printed, never asserted
//! (`cargo xtask faults` runs the full matrix). About two minutes; testbed prefix `fq`.

mod common;

#[test]
fn quick_fault_matrix() {
    if !rotor_testbed::root_or_skip("the fault campaign builds network-namespace hosts") {
        return;
    }
    let bins = common::built_bins();
    let out = std::env::temp_dir().join(format!("rotor-faults-suite-{}", std::process::id()));
    let plan = rotor_faults::campaign::Plan::quick(bins, out.clone());
    let results = rotor_faults::campaign::run(&plan, &mut |line| eprintln!("{line}"));
    let table = rotor_faults::campaign::markdown(&results);
    eprintln!("{table}");
    let ok = results.iter().all(|r| r.ok());
    assert!(
        ok,
        "the quick fault matrix failed (logs kept in {}):\n{table}",
        out.display()
    );
    let _ = std::fs::remove_dir_all(&out);
}
