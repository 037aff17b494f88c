//! `rotor quorum`'s text against Debian corosync 3.1.7's corosync-quorumtool, byte for byte:
//! the fixtures were recorded from a real corosync cluster on network-namespace hosts
//! (`tests/fixtures/quorumtool/record.sh`), and each is rebuilt here from the same numbers
//! through `format_status` / `format_nodes`. The recorded exit statuses are checked against
//! the tool's rule (0 quorate, 2 not). The netns test (`e2e_quorum.rs`) compares a live rotor
//! cluster's output with the same fixtures.

use rotor_client::quorumtool::{
    format_nodes, format_status, Format, NodeRow, Options, Sort, StatusView,
};
use rotor_client::votequorum::{Info, INFO_QUORATE, INFO_TWONODE, INFO_WAIT_FOR_ALL};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quorumtool");

/// A fixture's output and its recorded exit status.
fn fixture(name: &str) -> (String, i32) {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).expect("recorded fixture");
    let (out, exit) = text.rsplit_once("exit=").expect("exit line");
    (out.to_owned(), exit.trim().parse().unwrap())
}

/// The Date line's text of a recorded status (newline included).
fn date_of(out: &str) -> String {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("Date:             "))
        .expect("a Date line");
    format!("{line}\n")
}

fn format(hex: bool, parsable: bool, sort: Sort) -> Format {
    Format {
        hex,
        ip: false,
        all_addrs: false,
        machine_parsable: parsable,
        sort,
    }
}

fn info(node: u32, expected: u32, total: u32, quorum: u32, flags: u32) -> Info {
    Info {
        node_id: node,
        node_state: 1,
        node_votes: 1,
        node_expected_votes: expected,
        highest_expected: expected,
        total_votes: total,
        quorum,
        flags,
        qdevice_votes: 0,
        qdevice_name: String::new(),
    }
}

fn rows(ids: &[u32], names: &[&str], info_of: impl Fn(u32) -> Info) -> Vec<NodeRow> {
    ids.iter()
        .zip(names)
        .map(|(&id, name)| NodeRow {
            node_id: id,
            info: Some(info_of(id)),
            name: name.to_string(),
        })
        .collect()
}

/// A recorded status, rebuilt.
fn status(
    fixture_name: &str,
    node: u32,
    ring: (u32, u64),
    quorate: bool,
    me: Info,
    members: Vec<NodeRow>,
    fmt: Format,
) {
    let (want, exit) = fixture(fixture_name);
    let view = StatusView {
        date: date_of(&want),
        provider: Some("corosync_votequorum".into()),
        node_id: node,
        ring_seq: ring.1,
        ring_rep: Some(ring.0),
        quorate,
        info: Some(me),
        members,
    };
    let got = format_status(&view, &fmt);
    assert_eq!(got, want, "{fixture_name}");
    assert_eq!(exit, if quorate { 0 } else { 2 }, "{fixture_name}");
}

#[test]
fn status_matches_corosync_quorumtool() {
    let quorate3 = |id| info(id, 3, 3, 2, INFO_QUORATE);
    let empty = ["", "", ""];
    for (name, parsable) in [
        ("three-s.txt", false),
        ("three-p.txt", true),
        ("three-sp.txt", true),
    ] {
        status(
            name,
            1,
            (1, 0xd),
            true,
            quorate3(1),
            rows(&[1, 2, 3], &empty, quorate3),
            format(false, parsable, Sort::Address),
        );
    }
    status(
        "three-sH.txt",
        3,
        (1, 0xd),
        true,
        quorate3(3),
        rows(&[1, 2, 3], &empty, quorate3),
        format(true, false, Sort::Address),
    );
    let alone = |id| info(id, 3, 1, 2, 0);
    for (name, parsable) in [("alone-s.txt", false), ("alone-p.txt", true)] {
        status(
            name,
            1,
            (1, 0x11),
            false,
            alone(1),
            rows(&[1], &[""], alone),
            format(false, parsable, Sort::Address),
        );
    }
    status(
        "names-s.txt",
        1,
        (1, 0x9),
        true,
        quorate3(1),
        rows(&[1, 2, 3], &["node1", "node2", "node3"], quorate3),
        format(false, false, Sort::Address),
    );
    let two = |id| info(id, 2, 2, 1, INFO_TWONODE | INFO_QUORATE | INFO_WAIT_FOR_ALL);
    status(
        "two-s.txt",
        1,
        (1, 0x9),
        true,
        two(1),
        rows(&[1, 2], &["", ""], two),
        format(false, false, Sort::Address),
    );
    let two_alone = |id| info(id, 2, 1, 1, INFO_TWONODE | INFO_QUORATE | INFO_WAIT_FOR_ALL);
    for (name, parsable) in [("two-alone-s.txt", false), ("two-alone-p.txt", true)] {
        status(
            name,
            1,
            (1, 0xd),
            true,
            two_alone(1),
            rows(&[1], &[""], two_alone),
            format(false, parsable, Sort::Address),
        );
    }
}

#[test]
fn node_lists_match_corosync_quorumtool() {
    let quorate3 = |id| info(id, 3, 3, 2, INFO_QUORATE);
    let cases: [(&str, u32, [&str; 3], Format); 6] = [
        (
            "three-l.txt",
            2,
            ["", "", ""],
            format(false, false, Sort::Address),
        ),
        (
            "three-lp.txt",
            2,
            ["", "", ""],
            format(false, true, Sort::Address),
        ),
        (
            "three-loi.txt",
            3,
            ["", "", ""],
            format(false, false, Sort::NodeId),
        ),
        (
            "alone-l.txt",
            1,
            ["", "", ""],
            format(false, false, Sort::Address),
        ),
        (
            "names-l.txt",
            1,
            ["node1", "node2", "node3"],
            format(false, false, Sort::Address),
        ),
        (
            "names-lon.txt",
            1,
            ["node1", "node2", "node3"],
            format(false, false, Sort::Name),
        ),
    ];
    for (name, local, names, fmt) in cases {
        let (want, exit) = fixture(name);
        let ids: &[u32] = if name.starts_with("alone") {
            &[1]
        } else {
            &[1, 2, 3]
        };
        let got = format_nodes(&rows(ids, &names, quorate3), local, true, &fmt);
        assert_eq!(got, want, "{name}");
        assert_eq!(exit, 0, "{name}");
    }
    // -i: the addresses, with the names in the nodelist ignored.
    let (want, _) = fixture("names-li.txt");
    let ips = ["198.18.0.1", "198.18.0.2", "198.18.0.3"];
    let got = format_nodes(
        &rows(&[1, 2, 3], &ips, quorate3),
        1,
        true,
        &format(false, false, Sort::Address),
    );
    assert_eq!(got, want);
}

#[test]
fn refused_values_say_what_corosync_quorumtool_says() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let err = |a: &[&str]| Options::parse(&args(a)).unwrap_err().0;
    let (_, exit) = fixture("three-e0.txt");
    assert_eq!(exit, 1);
    let recorded = std::fs::read_to_string(format!("{DIR}/three-e0.txt.stderr")).unwrap();
    assert_eq!(format!("{}\n", err(&["-e", "0"])), recorded);
    assert_eq!(
        err(&["-v", "-1"]),
        "New votes value was not valid, try a positive number or zero"
    );
    assert_eq!(
        err(&["-n", "0", "-v", "1"]),
        "The nodeid was not valid, try a positive number"
    );
    assert_eq!(
        err(&["-o", "x"]),
        "Invalid ordering option. valid orders are a(address), i(node ID) or n(name)"
    );
    // The last command wins, flags group, values follow in the word or the next.
    let o = Options::parse(&args(&["-sp", "-e3", "-l", "-oi"])).unwrap();
    assert_eq!(o.command, rotor_client::quorumtool::Command::ShowNodes);
    assert!(o.format.machine_parsable);
    assert_eq!(o.format.sort, Sort::NodeId);
    let o = Options::parse(&args(&["-v", "2", "-n", "3"])).unwrap();
    assert_eq!(o.command, rotor_client::quorumtool::Command::SetVotes(2));
    assert_eq!(o.node, Some(3));
}

/// `rotor quorum -h` prints corosync-quorumtool's usage text (the options rotor-quorum(8)
/// lists, from the same table), checked against the real tool where Debian's corosync is
/// installed (`cargo xtask deps` installs it).
#[test]
fn usage_is_corosync_quorumtool_s() {
    let tool = "/usr/sbin/corosync-quorumtool";
    if !std::path::Path::new(tool).exists() {
        eprintln!("skipped: {tool} is not installed");
        return;
    }
    let out = std::process::Command::new(tool).arg("-h").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        rotor_client::quorumtool::usage(tool),
        String::from_utf8(out.stdout).unwrap()
    );
}
