//! Which node this host is: the one-node default says so loudly, and bindnetaddr is used as
//! corosync uses it — ignored with a warning beside a nodelist, refused with what to write
//! instead where corosync would use it to discover members.

use rotor_control::config::parse_str;
use rotor_control::discovery::local_node;

const FILE: &str = "/etc/corosync/corosync.conf";

#[test]
fn no_nodelist_runs_one_node_and_says_so() {
    let c = parse_str(FILE, "totem {\n  version: 2\n}\n").unwrap();
    let node = local_node(&c, None).unwrap();
    assert_eq!(node.node_id, 1);
    assert!(node.peers.is_empty());
    assert_eq!(node.warnings.len(), 1, "{:?}", node.warnings);
    assert!(
        node.warnings[0].contains("no nodelist")
            && node.warnings[0].contains("one-node cluster")
            && node.warnings[0].contains("nodelist {"),
        "{}",
        node.warnings[0]
    );
}

#[test]
fn bindnetaddr_without_a_nodelist_is_refused_with_file_line_and_key() {
    let text = "totem {\n  version: 2\n  interface {\n    linknumber: 0\n    bindnetaddr: 192.168.1.0\n  }\n}\n";
    let c = parse_str(FILE, text).unwrap();
    let e = local_node(&c, None).unwrap_err();
    assert!(
        e.starts_with(&format!(
            "{FILE}:5: totem.interface.0.bindnetaddr: 192.168.1.0"
        )),
        "{e}"
    );
    assert!(e.contains("nodelist"), "{e}");
}

#[test]
fn bindnetaddr_beside_a_nodelist_is_ignored_with_a_warning() {
    let text = "totem {\n  version: 2\n  interface {\n    linknumber: 0\n    bindnetaddr: 198.18.0.0\n  }\n}\nnodelist {\n  node {\n    nodeid: 1\n    ring0_addr: 198.18.0.1\n  }\n  node {\n    nodeid: 2\n    ring0_addr: 198.18.0.2\n  }\n}\n";
    let c = parse_str(FILE, text).unwrap();
    let node = local_node(&c, Some(2)).unwrap();
    assert_eq!(node.node_id, 2);
    assert_eq!(node.peers.len(), 1);
    assert_eq!(node.warnings.len(), 1, "{:?}", node.warnings);
    assert!(
        node.warnings[0].starts_with(&format!(
            "{FILE}:5: totem.interface.0.bindnetaddr: 198.18.0.0 is ignored"
        )),
        "{}",
        node.warnings[0]
    );
}
