//! Changing a running cluster under CPG load on network-namespace hosts (root; otherwise it
//! prints why it skipped): 3 nodes over kernel UDP with checker clients; a 4th node added by a
//! reload and started, removed by a reload (it leaves and stops), the token timeout changed
//! (`rotor cmap` shows it on every node), the key rotated with `rotor cfg --rotate-key`, and a
//! change of cluster_name and of transport refused naming the key while the ring runs on. The
//! checker finds no lost, duplicated, reordered or invented message, and the only ring and
//! group changes are node 4's. Figures are printed, never asserted. About a minute; testbed
//! prefix `rc`.

mod common;

#[test]
fn runtime_changes_under_cpg_load() {
    if !rotor_testbed::root_or_skip("runtime changes run on network-namespace hosts") {
        return;
    }
    let bins = common::built_bins();
    let out = std::env::temp_dir().join(format!("rotor-changes-{}", std::process::id()));
    let result = rotor_faults::changes::run(bins, &out, "rc", &mut |line| eprintln!("{line}"));
    let summary = result.summary();
    eprintln!("{summary}");
    assert!(
        result.ok(),
        "runtime changes under load failed (logs kept in {}):\n{summary}",
        out.display()
    );
    let _ = std::fs::remove_dir_all(&out);
}
