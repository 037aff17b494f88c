//! quorum{} in corosync.conf: every refusal of votequorum_readconfig as a config error naming
//! file, line and key; its corrections as warnings; votes out of range; the keys typed from
//! votequorum's table; and `rotord -t` refusing a bad quorum{} with exit status 8.

use std::process::Command;

use rotor_control::config::parse_str;
use totem_core::votequorum::{TieBreaker, QUORUM_KEYS};

const FILE: &str = "/etc/corosync/corosync.conf";

/// A config of `nodes` nodes (optionally each with quorum_votes) and a quorum{} section.
fn config(nodes: &[Option<u32>], quorum: &[&str]) -> String {
    let mut text = String::from("totem {\n  crypto_cipher: none\n  crypto_hash: none\n}\n");
    if !nodes.is_empty() {
        text.push_str("nodelist {\n");
        for (i, votes) in nodes.iter().enumerate() {
            text.push_str(&format!(
                "  node {{\n    ring0_addr: 10.0.0.{}\n    nodeid: {}\n",
                i + 1,
                i + 1
            ));
            if let Some(v) = votes {
                text.push_str(&format!("    quorum_votes: {v}\n"));
            }
            text.push_str("  }\n");
        }
        text.push_str("}\n");
    }
    text.push_str("quorum {\n  provider: corosync_votequorum\n");
    for line in quorum {
        text.push_str(&format!("  {line}\n"));
    }
    text.push_str("}\n");
    text
}

fn error(nodes: &[Option<u32>], quorum: &[&str]) -> String {
    parse_str(FILE, &config(nodes, quorum))
        .expect_err("refused")
        .to_string()
}

/// The number of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in\n{text}"))
        + 1
}

/// The error a config gets: `file:line: key: reason` with the line of `at`.
fn expect_error(nodes: &[Option<u32>], quorum: &[&str], at: &str, key_and_reason: &str) {
    let text = config(nodes, quorum);
    let want = format!("{FILE}:{}: {key_and_reason}", line_of(&text, at));
    let e = error(nodes, quorum);
    assert!(e.starts_with(&want), "{e}\n  wanted {want}\n{text}");
}

#[test]
fn invalid_combinations_are_refused_with_file_line_and_key() {
    let three = [None; 3];
    // With no nodelist and no expected_votes, the quorum section is blamed.
    expect_error(
        &[],
        &[],
        "quorum {",
        "quorum.expected_votes: configuration error: nodelist or quorum.expected_votes must be \
         configured!",
    );
    expect_error(
        &three,
        &["two_node: 1", "device {", "  model: net", "}"],
        "two_node",
        "quorum.two_node: configuration error: two_node and quorum device cannot be configured \
         at the same time!",
    );
    expect_error(
        &three,
        &["auto_tie_breaker: 1", "last_man_standing: 1"],
        "last_man_standing",
        "quorum.last_man_standing: configuration error: auto_tie_breaker & last_man_standing \
         not available in odd sized cluster",
    );
    expect_error(
        &three,
        &["device {", "  model: net", "}", "last_man_standing: 1"],
        "last_man_standing",
        "quorum.last_man_standing: configuration error: quorum.device is not compatible with \
         last_man_standing",
    );
    expect_error(
        &[None; 4],
        &["auto_tie_breaker: 1", "device {", "  model: net", "}"],
        "auto_tie_breaker",
        "quorum.auto_tie_breaker: configuration error: quorum.device is not compatible with \
         auto_tie_breaker",
    );
    expect_error(
        &three,
        &["allow_downscale: 1", "device {", "  model: net", "}"],
        "allow_downscale",
        "quorum.allow_downscale: configuration error: quorum.device is not compatible with \
         allow_downscale",
    );
    // device.votes is not in the file: the quorum section is blamed.
    expect_error(
        &three,
        &["expected_votes: 5", "device {", "  model: net", "}"],
        "quorum {",
        "quorum.device.votes: configuration error: quorum.device.votes must be specified when \
         quorum.expected_votes is set",
    );
    expect_error(
        &three,
        &[
            "expected_votes: 3",
            "device {",
            "  model: net",
            "  votes: 2",
            "}",
        ],
        "votes: 2",
        "quorum.device.votes: configuration error: quorum.device.votes is too high or \
         expected_votes is too low",
    );
    expect_error(
        &[None, Some(3), None],
        &["device {", "  model: net", "}"],
        "quorum {",
        "quorum.device.votes: configuration error: quorum.device.votes must be specified when \
         not all nodes votes 1",
    );
}

#[test]
fn votes_out_of_range_name_the_node_and_the_bound() {
    expect_error(
        &[None, Some(70_000), None],
        &[],
        "quorum_votes",
        "nodelist.node.1.quorum_votes: 70000 is above the largest value, 65535",
    );
    expect_error(
        &[None; 3],
        &["expected_votes: 0"],
        "expected_votes",
        "quorum.expected_votes: 0 is below the smallest value, 1",
    );
    expect_error(
        &[None; 3],
        &["votes: x"],
        "votes: x",
        "quorum.votes: expected an unsigned integer, got \"x\"",
    );
    expect_error(
        &[None; 3],
        &["auto_tie_breaker: 1", "auto_tie_breaker_node: first"],
        "auto_tie_breaker_node",
        "quorum.auto_tie_breaker_node: expected",
    );
    let e = error(&[None; 3], &["provider: corosync_ykd"]);
    assert!(e.contains("quorum.provider"), "{e}");
}

#[test]
fn corosyncs_corrections_load_with_a_warning_on_the_line() {
    let c = parse_str(
        FILE,
        &config(&[None; 2], &["two_node: 1", "auto_tie_breaker: 1"]),
    )
    .unwrap();
    let q = c.quorum.votequorum.as_ref().unwrap();
    assert!(!q.two_node && q.wait_for_all);
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    let text = config(&[None; 2], &["two_node: 1", "auto_tie_breaker: 1"]);
    let want = format!(
        "{FILE}:{}: quorum.two_node: two_node and",
        line_of(&text, "two_node")
    );
    assert!(w[0].starts_with(&want), "{w:?}");
    let c = parse_str(FILE, &config(&[None; 3], &["auto_tie_breaker: 1"])).unwrap();
    assert_eq!(
        c.quorum.votequorum.unwrap().auto_tie_breaker,
        TieBreaker::Off
    );
    assert!(c.warnings[0]
        .message
        .contains("auto_tie_breaker has been disabled"));
}

#[test]
fn a_quorum_device_section_is_typed_from_the_table() {
    let c = parse_str(
        FILE,
        &config(
            &[None; 3],
            &[
                "device {",
                "  model: net",
                "  timeout: 5000",
                "  net {",
                "    host: 10.0.0.9",
                "  }",
                "}",
            ],
        ),
    )
    .unwrap();
    let q = c.quorum.votequorum.unwrap().qdevice.unwrap();
    assert_eq!(
        (q.votes, q.timeout_ms, q.sync_timeout_ms),
        (2, 5000, 30_000)
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.entries["quorum.device.net.host"],
        rotor_control::cmap::Value::String("10.0.0.9".into())
    );
    assert_eq!(
        c.entries["quorum.device.timeout"],
        rotor_control::cmap::Value::U32(5000)
    );
    // Every key of the table is known to the parser (none warned as unknown).
    let mut lines: Vec<String> = Vec::new();
    for k in QUORUM_KEYS.iter() {
        if k.name == "provider" || k.name.starts_with("device.") {
            continue;
        }
        let value = match k.name {
            "auto_tie_breaker_node" => "lowest",
            "last_man_standing_window" | "leaving_timeout" | "expected_votes" => "5",
            _ => "0",
        };
        lines.push(format!("{}: {value}", k.name));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let c = parse_str(FILE, &config(&[None; 3], &refs)).unwrap();
    let unknown: Vec<_> = c
        .warnings
        .iter()
        .filter(|w| w.message.contains("unknown"))
        .collect();
    assert!(unknown.is_empty(), "{unknown:?}");
}

/// `rotord -t`: a quorum{} corosync refuses exits 8 with file:line: key.
#[test]
fn rotord_t_refuses_a_bad_quorum_section() {
    let dir = std::env::temp_dir().join(format!("rotor-quorum-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("corosync.conf");
    let text = config(&[None; 3], &["auto_tie_breaker: 1", "last_man_standing: 1"])
        .replace("10.0.0.1", "127.0.0.1");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rotord"))
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        err.contains(&format!(
            "{}:{}: quorum.last_man_standing: configuration error",
            path.display(),
            line_of(&text, "last_man_standing")
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `rotord -t`: an unknown `rotor.xdp_unknown_source` exits 8 with file:line: key.
#[test]
fn rotord_t_refuses_a_bad_xdp_unknown_source() {
    let dir = std::env::temp_dir().join(format!("rotor-xdp-unknown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("corosync.conf");
    let text = config(&[None; 3], &[]).replace("10.0.0.1", "127.0.0.1")
        + "rotor {\n    xdp_unknown_source: accept\n}\n";
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rotord"))
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains(&format!(
            "{}:{}: rotor.xdp_unknown_source: expected one of pass, drop, got \"accept\"",
            path.display(),
            line_of(&text, "xdp_unknown_source")
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
