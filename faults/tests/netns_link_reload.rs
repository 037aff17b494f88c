//! Links added and removed by a reload under CPG load on network-namespace hosts (root;
//! otherwise it prints why it skipped): 3 nodes on one link, a reload adds link 1 on a second
//! bridge, link 0 of node 3 goes down and traffic flows on link 1 with no membership change, a
//! reload missing node 3's ring1_addr is refused naming the key, a reload removes link 1. No
//! message lost, duplicated, reordered or invented. Figures are printed, never asserted.
//! About a minute; testbed prefix `lr`.

mod common;

#[test]
fn links_added_and_removed_by_reload_under_cpg_load() {
    if !rotor_testbed::root_or_skip("link reloads run on network-namespace hosts") {
        return;
    }
    let bins = common::built_bins();
    let out = std::env::temp_dir().join(format!("rotor-link-reload-{}", std::process::id()));
    let result = rotor_faults::link_reload::run(bins, &out, "lr", &mut |line| eprintln!("{line}"));
    let summary = result.summary();
    eprintln!("{summary}");
    assert!(
        result.ok(),
        "links added and removed by reload failed (logs kept in {}):\n{summary}",
        out.display()
    );
    let _ = std::fs::remove_dir_all(&out);
}
