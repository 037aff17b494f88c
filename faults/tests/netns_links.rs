//! Redundant links on network-namespace hosts (root; otherwise it prints why it skipped):
//! 3 nodes, 2 links each on two bridges, checker clients on every node. In passive mode link
//! 0 of node 3 goes down (interface down, then 100% loss at the switch) and comes back, then
//! link 1, then both: no message lost, duplicated, reordered or invented, no ring or group
//! change while one link remains, each link seen down and up again by node 1. Passive puts
//! every frame on link 0 (equal priorities: the lowest number) and none on link 1; active
//! and rr put frames on both. The passive run with faults runs again on `transport: xdp`, both
//! links on AF_XDP: node 1's XDP programs on both interfaces redirect frames, on udpu neither;
//! there link 0 of node 3 is also cut one way, by its XDP source filter (node 3 deaf to nodes
//! 1 and 2 on it, still sending).
//! Figures are printed, never asserted. A few minutes; testbed prefix `lk` (hosts lk1..lk3,
//! switch lksw).

mod common;

use rotor_faults::links::{run, LinksPlan};

#[test]
fn links_fail_over_without_a_membership_change() {
    if !rotor_testbed::root_or_skip("redundant links run on network-namespace hosts") {
        return;
    }
    let bins = common::built_bins();
    let mut failed = Vec::new();
    for (mode, faults, transport) in [
        ("passive", true, "udpu"),
        ("active", false, "udpu"),
        ("rr", false, "udpu"),
        ("passive", true, "xdp"),
    ] {
        let out = std::env::temp_dir().join(format!(
            "rotor-links-{mode}-{transport}-{}",
            std::process::id()
        ));
        let mut plan = LinksPlan::new(mode, faults);
        plan.transport = transport;
        let result = run(bins.clone(), &out, "lk", &plan, &mut |l| eprintln!("{l}"));
        let summary = result.summary();
        eprintln!("{summary}");
        let (link0, link1) = result.carried;
        let carried_as_documented = match mode {
            "passive" => link0 > 0 && link1 == 0,
            _ => link0 > 0 && link1 > 0,
        };
        // On xdp both links run on AF_XDP: each program redirects (link 1 carries the pings).
        let redirected_as_configured = match transport {
            "xdp" => result.redirected.0 > 0 && result.redirected.1 > 0,
            _ => result.redirected == (0, 0),
        };
        if !result.ok() || !carried_as_documented || !redirected_as_configured {
            failed.push(format!(
                "{mode} on {transport} (logs kept in {}):\n{summary}",
                out.display()
            ));
        } else {
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    assert!(
        failed.is_empty(),
        "redundant links failed:\n{}",
        failed.join("\n")
    );
}
