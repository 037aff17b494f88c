//! `rotord -t` refuses exactly what the core refuses: for a table of valid and invalid totem{}
//! sections (timeouts, windows, small tokens, netmtu against the nodelist's size, address
//! family and crypto), the config parser and totem-core's `TotemSettings::resolve` agree on
//! every row — the same settings, or the same refusal, with the parser naming the file, the
//! line of the key concerned and the key.

use std::process::Command;

use rotor_control::config::{parse_str, Config, ConfigError};
use rotor_crypto::CryptoMode;
use totem_core::config::{explicit, frame_overhead_bytes, setting_named};
use totem_core::{ClusterShape, SettingError, TotemSettings};

const FILE: &str = "/etc/corosync/corosync.conf";

/// What a row expects: accepted, or refused naming this subject (`totem.<key>`, or `totem`
/// for the section when only defaults are involved).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Valid,
    Refused(&'static str),
}

struct Row {
    what: &'static str,
    totem: &'static [&'static str],
    nodes: usize,
    v6: bool,
    expect: Expect,
}

const fn row(
    what: &'static str,
    totem: &'static [&'static str],
    nodes: usize,
    expect: Expect,
) -> Row {
    Row {
        what,
        totem,
        nodes,
        v6: false,
        expect,
    }
}

use Expect::{Refused, Valid};

const ROWS: &[Row] = &[
    row("defaults", &[], 0, Valid),
    row("defaults, three nodes", &[], 3, Valid),
    row("token with coefficient", &["token: 1000"], 3, Valid),
    row(
        "consensus under 1.2 × token",
        &["token: 1000", "consensus: 1100"],
        0,
        Refused("totem.consensus"),
    ),
    row(
        "consensus at 1.2 × token",
        &["token: 1000", "consensus: 1200"],
        0,
        Valid,
    ),
    row("a small token alone", &["token: 10"], 0, Valid),
    row("a small token alone, two nodes", &["token: 10"], 2, Valid),
    row(
        "a small token with the default join",
        &["token: 10", "join: 50"],
        0,
        Refused("totem.join"),
    ),
    row(
        "too small for any hold",
        &["token: 5"],
        0,
        Refused("totem.token"),
    ),
    row("token 0", &["token: 0"], 3, Refused("totem.token")),
    row(
        "hold at token_retransmit",
        &["token: 1000", "hold: 238"],
        0,
        Refused("totem.hold"),
    ),
    row(
        "hold under token_retransmit",
        &["token: 1000", "hold: 237"],
        0,
        Valid,
    ),
    row(
        "token_retransmit at token",
        &["token: 1000", "token_retransmit: 1000"],
        0,
        Refused("totem.token_retransmit"),
    ),
    row(
        "retransmits leave no retransmit timeout",
        &["token: 100", "token_retransmits_before_loss_const: 200"],
        0,
        Refused("totem.token"),
    ),
    row(
        "retransmit timeout too short for a hold",
        &["token_retransmit: 1"],
        0,
        Refused("totem.token_retransmit"),
    ),
    row("a small window", &["window_size: 10"], 0, Valid),
    row(
        "max_messages over window_size",
        &["window_size: 10", "max_messages: 20"],
        0,
        Refused("totem.max_messages"),
    ),
    row(
        "window_size over the retained frames",
        &["window_size: 2000"],
        0,
        Refused("totem.window_size"),
    ),
    row(
        "window_size 0",
        &["window_size: 0"],
        0,
        Refused("totem.window_size"),
    ),
    row(
        "send_join at consensus",
        &["token: 100", "send_join: 120"],
        0,
        Refused("totem.send_join"),
    ),
    row(
        "token_warning over 100%",
        &["token_warning: 150"],
        0,
        Refused("totem.token_warning"),
    ),
    row("token_warning off", &["token_warning: 0"], 0, Valid),
    row("merge 0", &["merge: 0"], 0, Refused("totem.merge")),
    row(
        "netmtu below IPv4's minimum",
        &["netmtu: 500"],
        0,
        Refused("totem.netmtu"),
    ),
    row(
        "netmtu too small for a frame",
        &["netmtu: 576"],
        0,
        Refused("totem.netmtu"),
    ),
    row("jumbo netmtu", &["netmtu: 9000"], 40, Valid),
    // Membership messages larger than a frame go in pieces.
    row("default netmtu for 64 nodes", &[], 64, Valid),
    row("explicit netmtu for 64 nodes", &["netmtu: 1500"], 64, Valid),
    row(
        "crypto off, small token",
        &["crypto_cipher: none", "crypto_hash: none", "token: 10"],
        3,
        Valid,
    ),
];

fn config_text(totem: &[&str], nodes: usize, v6: bool) -> String {
    let mut text = String::from("totem {\n    cluster_name: agree\n");
    for line in totem {
        text.push_str(&format!("    {line}\n"));
    }
    text.push_str("}\n");
    if nodes > 0 {
        text.push_str("nodelist {\n");
        for i in 1..=nodes {
            let addr = if v6 {
                format!("fd00::{i:x}")
            } else {
                format!("10.0.{}.{}", i / 200, i % 200 + 1)
            };
            text.push_str(&format!(
                "    node {{\n        nodeid: {i}\n        ring0_addr: {addr}\n    }}\n"
            ));
        }
        text.push_str("}\n");
    }
    text
}

/// The 1-based line of `subject` in `text`: `totem.<key>`'s `key:` line, or the `totem {` line.
fn line_of(text: &str, subject: &str) -> u32 {
    let needle = match subject.strip_prefix("totem.") {
        Some(key) => format!("{key}:"),
        None => format!("{subject} {{"),
    };
    let index = text
        .lines()
        .position(|l| l.trim_start().starts_with(&needle))
        .unwrap_or_else(|| panic!("{subject} not in\n{text}"));
    index as u32 + 1
}

/// The core's own answer for a row, computed without the parser: the settings the row sets,
/// resolved for its nodelist size and the overhead of its family and crypto.
fn core_answer(totem: &[&str], nodes: usize, v6: bool) -> Result<TotemSettings, SettingError> {
    let value = |key: &str| {
        totem
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
    };
    let pairs: Vec<(&str, u32)> = totem
        .iter()
        .filter_map(|l| {
            let (key, v) = l.split_once(": ")?;
            setting_named(key)?;
            Some((key, v.parse().expect("a number")))
        })
        .collect();
    let mode = CryptoMode::from_corosync(
        value("crypto_cipher").unwrap_or("aes256"),
        value("crypto_hash").unwrap_or("sha256"),
    )
    .expect("a crypto mode");
    let shape = ClusterShape {
        nodelist_count: nodes as u32,
        frame_overhead_bytes: frame_overhead_bytes(v6, mode.overhead()),
    };
    TotemSettings::resolve(explicit(&pairs), &shape)
}

/// Checks that the parser and the core agree on one config; returns the parser's answer.
fn agree(what: &str, totem: &[&str], nodes: usize, v6: bool) -> Result<Config, ConfigError> {
    let text = config_text(totem, nodes, v6);
    let parsed = parse_str(FILE, &text);
    match (&parsed, core_answer(totem, nodes, v6)) {
        (Ok(config), Ok(settings)) => assert_eq!(config.totem.settings, settings, "{what}"),
        (
            Err(ConfigError::Invalid {
                file,
                line,
                subject,
                reason,
                ..
            }),
            Err(e),
        ) => {
            let key = e.key.map_or("totem".to_string(), |k| format!("totem.{k}"));
            assert_eq!((file.as_str(), subject), (FILE, &key), "{what}");
            assert_eq!(*line, line_of(&text, subject), "{what}: line");
            assert_eq!(reason, &e.reason, "{what}");
        }
        (parser, core) => {
            panic!("{what}: the parser and the core disagree:\nparser: {parser:?}\ncore: {core:?}")
        }
    }
    parsed
}

#[test]
fn the_parser_refuses_exactly_what_the_core_refuses() {
    for r in ROWS {
        let parsed = agree(r.what, r.totem, r.nodes, r.v6);
        match (parsed, r.expect) {
            (Ok(_), Valid) => {}
            (Err(ConfigError::Invalid { subject, .. }), Refused(key)) => {
                assert_eq!(subject, key, "{}", r.what)
            }
            (got, _) => panic!("{}: expected {:?}, got {got:?}", r.what, r.expect),
        }
    }
}

#[test]
fn small_tokens_derive_the_rest() {
    let config = agree("token 10", &["token: 10"], 0, false).unwrap();
    let t = &config.totem.settings;
    assert_eq!(
        (
            t.token_ms,
            t.token_retransmit_ms,
            t.hold_ms,
            t.consensus_ms,
            t.join_ms
        ),
        (10, 2, 1, 12, 3)
    );
}

/// The frame holds netmtu less IP, UDP and crypto headers. Joins and commit tokens larger than
/// a frame go in pieces, so the nodelist's size no longer depends on the family or the crypto
/// mode: at the default netmtu parser and core agree at every size to 64 nodes, and accept it.
#[test]
fn netmtu_against_nodelist_size_family_and_crypto() {
    let crypto: [&[&str]; 2] = [&[], &["crypto_cipher: none", "crypto_hash: none"]];
    for v6 in [false, true] {
        for lines in crypto {
            for nodes in 20..=64 {
                let what = format!("{nodes} nodes, ipv6 {v6}, crypto settings {lines:?}");
                if let Err(e) = agree(&what, lines, nodes, v6) {
                    panic!("{what}: refused: {e}");
                }
            }
        }
    }
}

/// `rotord -t` itself: the refusal with file, line and key, and success for a small token.
#[test]
fn rotord_t_reports_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("rotor-totem-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("corosync.conf");
    let run = |totem: &[&str]| {
        let mut lines = vec!["crypto_cipher: none", "crypto_hash: none"];
        lines.extend_from_slice(totem);
        std::fs::write(&path, config_text(&lines, 0, false)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rotord"))
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = run(&["token: 1000", "consensus: 1100"]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}:6: totem.consensus: consensus (1100 ms) must be at least 1.2 × token (1000 ms)",
            path.display()
        )),
        "{err}"
    );
    let (ok, err) = run(&["token: 10"]);
    assert!(ok, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
