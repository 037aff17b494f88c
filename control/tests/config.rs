//! config: corosync.conf parsing, flattening into cmap keys and types, errors with file and
//! line, defaults and derived totem values, config and authkey locations.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use totem_core::votequorum::TieBreaker;

use rotor_control::cmap::{format_cmapctl, Access, CmapError, CmapStore, Value, ValueType};
use rotor_proto::link::LinkMode;

use rotor_control::config::{
    self, authkey_path, config_path, parse_str, ErrorKind, IpVersionSetting, KernelUdpSetting,
    LinkTransportSetting, PollModeSetting, TransportSetting, AUTHKEY_PATH_ENV, CONFIG_PATH_ENV,
};

const FILE: &str = "/etc/corosync/corosync.conf";

/// Debian's /etc/corosync/corosync.conf as shipped with corosync 3.
const DEBIAN_DEFAULT: &str = "\
# Please read the corosync.conf.5 manual page
system {
\t# This is required to use transport=knet in an unprivileged
\t# environment, such as a container. See man page for details.
\tallow_knet_handle_fallback: yes
}

totem {
\tversion: 2

\t# Corosync itself works without a cluster name, but DLM needs one.
\tcluster_name: debian

\t# crypto_cipher and crypto_hash: Used for mutual node authentication.
\tcrypto_cipher: none
\tcrypto_hash: none
}

logging {
\t# Log the source file and line where messages are being
\t# generated. When in doubt, leave off.
\tfileline: off
\tto_stderr: yes
\tto_logfile: yes
\tlogfile: /var/log/corosync/corosync.log
\tto_syslog: yes
\tdebug: off
\t#timestamp: hires
\tlogger_subsys {
\t\tsubsys: QUORUM
\t\tdebug: off
\t}
}

quorum {
\t# Enable and configure quorum subsystem (default: off)
\tprovider: corosync_votequorum
}

nodelist {
\t# Change/uncomment/add node sections to match cluster configuration

\tnode {
\t\t# Hostname of the node
\t\tname: node1
\t\t# Cluster membership node identifier
\t\tnodeid: 1
\t\t# Address of first link
\t\tring0_addr: 127.0.0.1
\t\t# When knet transport is used it's possible to define up to 8 links
\t\t#ring1_addr: 192.168.1.1
\t}
\t# ...
}
";

const THREE_NODES: &str = "\
totem {
    version: 2
    cluster_name: demo
    transport: knet
    token: 1000
    crypto_cipher: aes256
    crypto_hash: sha256
    interface {
        linknumber: 0
        mcastport: 5405
        knet_link_priority: 1
    }
    interface {
        linknumber: 1
    }
}
nodelist {
    node {
        ring0_addr: 10.0.0.1
        ring1_addr: 10.1.0.1
        name: alpha
        nodeid: 1
    }
    node {
        ring0_addr: 10.0.0.2
        ring1_addr: 10.1.0.2
        name: beta
        nodeid: 2
        quorum_votes: 2
    }
    node {
        ring0_addr: 10.0.0.3
        ring1_addr: 10.1.0.3
        name: gamma
        nodeid: 3
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 0
    wait_for_all: 1
    last_man_standing: 1
    last_man_standing_window: 20000
    auto_tie_breaker: 1
    auto_tie_breaker_node: 3 1
}
uidgid {
    uid: 1000
    gid: root
}
rotor {
    dataplane_cores: 2,3
    poll_mode: busy
    poll_spin_us: 25
    kernel_udp: io_uring
    xdp_unknown_source: drop
}
";

fn error_text(text: &str) -> String {
    parse_str(FILE, text).unwrap_err().to_string()
}

fn error_kind(text: &str) -> ErrorKind {
    parse_str(FILE, text).unwrap_err().kind().unwrap()
}

#[test]
fn debian_default_flattens_like_corosync() {
    let config = parse_str(FILE, DEBIAN_DEFAULT).unwrap();
    let s = |v: &str| Value::String(v.to_string());
    let expected: Vec<(&str, Value)> = vec![
        ("logging.debug", s("off")),
        ("logging.fileline", s("off")),
        ("logging.logfile", s("/var/log/corosync/corosync.log")),
        ("logging.logger_subsys.QUORUM.debug", s("off")),
        ("logging.logger_subsys.QUORUM.subsys", s("QUORUM")),
        ("logging.to_logfile", s("yes")),
        ("logging.to_stderr", s("yes")),
        ("logging.to_syslog", s("yes")),
        ("nodelist.node.0.name", s("node1")),
        ("nodelist.node.0.nodeid", Value::U32(1)),
        ("nodelist.node.0.ring0_addr", s("127.0.0.1")),
        ("quorum.provider", s("corosync_votequorum")),
        ("system.allow_knet_handle_fallback", s("yes")),
        ("totem.cluster_name", s("debian")),
        ("totem.crypto_cipher", s("none")),
        ("totem.crypto_hash", s("none")),
        ("totem.version", Value::U32(2)),
    ];
    let got: Vec<(&str, Value)> = config
        .entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_eq!(got, expected);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert_eq!(config.line_of("totem.cluster_name"), Some(12));
    assert_eq!(config.totem.cluster_name.as_deref(), Some("debian"));
    assert_eq!(
        (
            config.totem.crypto_cipher.as_str(),
            config.totem.crypto_hash.as_str()
        ),
        ("none", "none")
    );
    assert_eq!(config.nodes.len(), 1);
    assert_eq!(config.nodes[0].ring_addrs[0].as_deref(), Some("127.0.0.1"));
}

#[test]
fn three_node_example_types_and_derived_values() {
    let config = parse_str(FILE, THREE_NODES).unwrap();
    let e = &config.entries;
    assert_eq!(e["totem.token"], Value::U32(1000));
    assert_eq!(e["totem.interface.0.mcastport"], Value::U16(5405));
    assert_eq!(e["totem.interface.0.knet_link_priority"], Value::U8(1));
    assert!(!e.contains_key("totem.interface.0.linknumber"));
    assert_eq!(e["nodelist.node.1.quorum_votes"], Value::U32(2));
    assert_eq!(
        e["nodelist.node.2.ring1_addr"],
        Value::String("10.1.0.3".into())
    );
    assert_eq!(e["quorum.wait_for_all"], Value::U8(1));
    assert_eq!(e["quorum.last_man_standing_window"], Value::U32(20000));
    assert_eq!(
        e["quorum.auto_tie_breaker_node"],
        Value::String("3 1".into())
    );
    assert_eq!(e["uidgid.config.uid.1000"], Value::U8(1));
    assert_eq!(e["uidgid.config.gid.0"], Value::U8(1));
    assert_eq!(e["rotor.poll_mode"], Value::String("busy".into()));
    // The interface's knet options are the links' settings now: no warning.
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    // Two links, corosync's ping timers from the token in effect (1650 ms, pong_count 2).
    let links = &config.totem.links;
    assert_eq!(links.len(), 2);
    assert_eq!(
        (
            links[1].number,
            links[1].priority,
            links[1].ping_interval_ms,
            links[1].ping_timeout_ms
        ),
        (1, 1, 412, 825)
    );
    assert_eq!(config.totem.link_mode, LinkMode::Passive);

    // 3 nodes: token 1000 + (3 - 2) × 650 (totemconfig.c), then the formulas on that token.
    let t = &config.totem.settings;
    assert_eq!(t.token_ms, 1650);
    assert_eq!(t.token_retransmit_ms, 392); // (int)(1650 / 4.2)
    assert_eq!(t.hold_ms, 303); // (int)(392 × 0.8 − 10)
    assert_eq!(t.consensus_ms, 1980); // 1.2 × 1650
    assert_eq!(config.totem.transport, TransportSetting::Knet);
    assert_eq!(config.totem.interfaces.len(), 2);
    assert_eq!(config.totem.interfaces[1].linknumber, 1);
    assert_eq!(config.nodes[1].name.as_deref(), Some("beta"));
    let q = config
        .quorum
        .votequorum
        .as_ref()
        .expect("votequorum is the provider");
    assert_eq!(q.last_man_standing_window_ms, 20000);
    assert!(q.wait_for_all && q.last_man_standing && !q.two_node);
    assert_eq!(q.auto_tie_breaker, TieBreaker::List(vec![3, 1]));
    // 1 + 2 + 1 votes in the nodelist.
    assert_eq!(q.nodelist_expected_votes, Some(4));
    assert_eq!(
        config.quorum_for(2).unwrap().map(|q| q.votes),
        Some(2),
        "node 2's quorum_votes"
    );
    assert_eq!(config.rotor.dataplane_cores, [2, 3]);
    assert_eq!(config.rotor.poll_mode, PollModeSetting::Busy);
    assert_eq!(config.rotor.poll_spin_us, 25);
    assert_eq!(e["rotor.poll_spin_us"], Value::U32(25));
    assert_eq!(config.rotor.kernel_udp, KernelUdpSetting::IoUring);
    assert_eq!(
        config.rotor.xdp_unknown_source,
        xdp_prog::UnknownSource::Drop
    );
}

#[test]
fn defaults_match_corosync() {
    let config = parse_str(FILE, "totem {\n}\n").unwrap();
    assert_eq!(
        config.rotor.poll_spin_us,
        rotor_control::config::POLL_SPIN_US_DEFAULT
    );
    let t = &config.totem.settings;
    assert_eq!(
        (
            t.token_ms,
            t.token_coefficient_ms,
            t.token_retransmits_before_loss_const,
            t.token_warning_percent
        ),
        (3000, 650, 4, 75)
    );
    assert_eq!(
        (t.token_retransmit_ms, t.hold_ms, t.consensus_ms),
        (714, 561, 3600)
    );
    assert_eq!(
        (t.join_ms, t.send_join_ms, t.merge_ms, t.downcheck_ms),
        (50, 0, 200, 1000)
    );
    assert_eq!(
        (
            t.fail_recv_const,
            t.seqno_unchanged_const,
            t.heartbeat_failures_allowed
        ),
        (2500, 30, 0)
    );
    assert_eq!(
        (
            t.max_network_delay_ms,
            t.window_size,
            t.max_messages,
            t.miss_count_const
        ),
        (50, 50, 17, 5)
    );
    let totem = &config.totem;
    assert_eq!(
        (
            totem.version,
            totem.settings.netmtu_bytes,
            totem.transport,
            totem.ip_version
        ),
        (2, 1500, TransportSetting::Knet, IpVersionSetting::Ipv6Then4)
    );
    assert_eq!(
        (totem.crypto_cipher.as_str(), totem.crypto_hash.as_str()),
        ("aes256", "sha256")
    );
    assert!(
        totem.interfaces.is_empty() && totem.cluster_name.is_none() && !totem.clear_node_high_bit
    );
    // No provider: always quorate, nothing to resolve.
    assert_eq!(config.quorum.votequorum, None);
    assert_eq!(config.rotor.poll_mode, PollModeSetting::Auto);
    assert_eq!(config.rotor.kernel_udp, KernelUdpSetting::Socket);
    assert_eq!(
        config.rotor.xdp_unknown_source,
        xdp_prog::UnknownSource::Pass,
        "frames from outside the nodelist go to the kernel and its firewall"
    );
    assert!(config.entries.is_empty());

    // Two nodes: no coefficient; two_node implies wait_for_all (votequorum(5)).
    let two = "nodelist {\nnode {\nring0_addr: 10.0.0.1\nnodeid: 1\n}\nnode {\nring0_addr: 10.0.0.2\nnodeid: 2\n}\n}\nquorum {\nprovider: corosync_votequorum\ntwo_node: 1\n}\n";
    let config = parse_str(FILE, two).unwrap();
    assert_eq!(config.totem.settings.token_ms, 3000);
    let q = config
        .quorum
        .votequorum
        .expect("votequorum is the provider");
    assert!(q.two_node && q.wait_for_all && q.wait_for_all_follows_two_node);
    assert_eq!(q.last_man_standing_window_ms, 10_000);
    assert_eq!(q.auto_tie_breaker, TieBreaker::Off);
    // udp defaults to IPv4; secauth off turns crypto off; explicit values win over formulas.
    let config = parse_str(
        FILE,
        "totem {\ntransport: udp\nsecauth: off\ntoken: 10\ntoken_retransmit: 4\nhold: 3\nconsensus: 50\n}\n",
    )
    .unwrap();
    assert_eq!(config.totem.ip_version, IpVersionSetting::Ipv4);
    assert_eq!(config.totem.crypto_cipher, "none");
    let t = &config.totem.settings;
    assert_eq!(
        (t.token_ms, t.token_retransmit_ms, t.hold_ms, t.consensus_ms),
        (10, 4, 3, 50)
    );
}

#[test]
fn syntax_corners_follow_coroparse() {
    let text = "  # comment\n\ntotem:{\r\n\tcluster_name:   my cluster  # not a comment\t\n  token :3000\n}\n";
    let config = parse_str(FILE, text).unwrap();
    assert_eq!(
        config.entries["totem.cluster_name"],
        Value::String("my cluster  # not a comment".into())
    );
    assert_eq!(config.entries["totem.token"], Value::U32(3000));
    // Quotes are part of the value, as in corosync.
    let config = parse_str(FILE, "totem {\ncluster_name: \"demo\"\n}\n").unwrap();
    assert_eq!(config.totem.cluster_name.as_deref(), Some("\"demo\""));
    // A value may hold a colon (IPv6 addresses do).
    let config = parse_str(
        FILE,
        "nodelist {\nnode {\nring0_addr: fe80::1\nnodeid: 1\n}\n}\n",
    )
    .unwrap();
    assert_eq!(config.nodes[0].ring_addrs[0].as_deref(), Some("fe80::1"));
}

#[test]
fn wrong_type_names_file_line_key_and_expectation() {
    let text = "# cluster\n\ntotem {\n\tversion: 2\n\tcluster_name: demo\n\n\ttoken: abc\n}\n";
    assert_eq!(
        error_text(text),
        "/etc/corosync/corosync.conf:7: totem.token: expected an unsigned integer (milliseconds), got \"abc\""
    );
    assert_eq!(error_kind(text), ErrorKind::InvalidValue);
    assert_eq!(
        error_text("totem {\ntransport: tcp\n}\n"),
        "/etc/corosync/corosync.conf:2: totem.transport: expected one of knet, udp, udpu, xdp, got \"tcp\""
    );
    assert_eq!(
        error_text("totem {\ninterface {\nmcastport: 70000\n}\n}\n"),
        "/etc/corosync/corosync.conf:3: totem.interface.0.mcastport: expected an integer in 0..=65535, got \"70000\""
    );
    assert_eq!(
        error_text("totem {\ninterface {\nlinknumber: 8\n}\n}\n"),
        "/etc/corosync/corosync.conf:3: totem.interface.linknumber: expected a link number in 0..=7, got \"8\""
    );
    assert_eq!(
        error_text("quorum {\ntwo_node: yes\n}\n"),
        "/etc/corosync/corosync.conf:2: quorum.two_node: expected an integer in 0..=255, got \"yes\""
    );
    assert_eq!(
        error_text("logging {\ndebug: verbose\n}\n"),
        "/etc/corosync/corosync.conf:2: logging.debug: expected one of on, off, trace, got \"verbose\""
    );
    assert_eq!(
        error_text("totem {\nip_version: ipv5\n}\n"),
        "/etc/corosync/corosync.conf:2: totem.ip_version: expected one of ipv4, ipv6, ipv4-6, ipv6-4, got \"ipv5\""
    );
    assert_eq!(
        error_text("rotor {\nkernel_udp: uring\n}\n"),
        "/etc/corosync/corosync.conf:2: rotor.kernel_udp: expected one of socket, io_uring, got \"uring\""
    );
    assert_eq!(
        error_text("rotor {\npoll_mode: spin\n}\n"),
        "/etc/corosync/corosync.conf:2: rotor.poll_mode: expected one of busy, adaptive, blocking, auto, got \"spin\""
    );
    assert_eq!(
        error_text("rotor {\n\n  xdp_unknown_source: reject\n}\n"),
        "/etc/corosync/corosync.conf:3: rotor.xdp_unknown_source: expected one of pass, drop, got \"reject\""
    );
    assert_eq!(
        error_text("system {\npriority: -40\n}\n"),
        "/etc/corosync/corosync.conf:2: system.priority: expected max, min or a nice value in -20..=19, got \"-40\""
    );
    assert_eq!(
        error_text("totem {\nversion: 1\n}\n"),
        "/etc/corosync/corosync.conf:2: totem.version: expected 2 (the only totem protocol version), got \"1\""
    );
}

#[test]
fn unbalanced_braces_are_errors() {
    assert_eq!(
        error_text("totem {\n  version: 2\n  interface {\n    linknumber: 0\n}\n"),
        "/etc/corosync/corosync.conf:1: totem: section is never closed (missing '}', unbalanced braces)"
    );
    assert_eq!(
        error_text("totem {\n}\n}\n"),
        "/etc/corosync/corosync.conf:3: top level: '}' closes no section (unbalanced braces)"
    );
    assert_eq!(error_kind("totem {\n}\n}\n"), ErrorKind::UnbalancedBraces);
    assert_eq!(
        error_text("totem { version: 2\n}\n"),
        "/etc/corosync/corosync.conf:1: totem: unexpected characters after '{': \"version: 2\""
    );
    assert_eq!(
        error_text("totem {\n} x\n"),
        "/etc/corosync/corosync.conf:2: totem: unexpected characters around '}': \"} x\""
    );
}

#[test]
fn missing_colon_and_other_syntax_errors() {
    assert_eq!(
        error_text("totem {\n  token 3000\n}\n"),
        "/etc/corosync/corosync.conf:2: totem: expected `key: value`, `name {` or `}`, got \"token 3000\""
    );
    assert_eq!(
        error_text("totem {\n  : 3000\n}\n"),
        "/etc/corosync/corosync.conf:2: totem: missing key name before ':'"
    );
    assert_eq!(
        error_text("{\n}\n"),
        "/etc/corosync/corosync.conf:1: top level: missing section name before '{'"
    );
    let long = format!("totem {{\ncluster_name: {}\n}}\n", "x".repeat(600));
    assert_eq!(
        error_text(&long),
        "/etc/corosync/corosync.conf:2: totem: line is longer than 510 characters"
    );
    assert_eq!(error_kind("totem {\n  token 3000\n}\n"), ErrorKind::Syntax);
}

#[test]
fn unknown_sections_are_errors_and_unknown_keys_warnings() {
    assert_eq!(
        error_text("totem {\n}\ntotme {\n}\n"),
        "/etc/corosync/corosync.conf:3: totme: unknown section (expected one of totem, logging, quorum, nodelist, system, uidgid, resources, nozzle, rotor)"
    );
    assert_eq!(
        error_text("totem {\n  iface {\n  }\n}\n"),
        "/etc/corosync/corosync.conf:2: totem.iface: unknown section (expected interface)"
    );
    assert_eq!(
        error_text("nodelist {\nnode {\nring0_addr: 10.0.0.1\naddrs {\n}\n}\n}\n"),
        "/etc/corosync/corosync.conf:4: nodelist.node.0.addrs: no subsections are allowed in nodelist.node.0"
    );
    assert_eq!(
        error_text("uidgid {\nuser: 5\n}\n"),
        "/etc/corosync/corosync.conf:2: uidgid.user: only uid and gid are allowed in uidgid"
    );
    assert_eq!(
        error_text("uidgid {\nuid: no-such-user-here\n}\n"),
        "/etc/corosync/corosync.conf:2: uidgid.uid: user \"no-such-user-here\" is not found in /etc/passwd"
    );

    let config = parse_str(FILE, "totem {\n  tokn: 3000\n}\nrotor {\n  cores: 2\n}\n").unwrap();
    let warnings: Vec<String> = config.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "/etc/corosync/corosync.conf:2: totem.tokn: unknown key, ignored (kept in cmap as a string)",
            "/etc/corosync/corosync.conf:5: rotor.cores: unknown key, ignored (kept in cmap as a string)",
        ]
    );
    assert_eq!(config.entries["totem.tokn"], Value::String("3000".into()));
}

#[test]
fn nodelist_errors() {
    let dup = "nodelist {\n  node {\n    ring0_addr: 10.0.0.1\n    nodeid: 1\n  }\n  node {\n    ring0_addr: 10.0.0.2\n    nodeid: 1\n  }\n}\n";
    assert_eq!(
        error_text(dup),
        "/etc/corosync/corosync.conf:8: nodelist.node.1.nodeid: nodeid 1 is already used by nodelist.node.0 (line 4)"
    );
    assert_eq!(error_kind(dup), ErrorKind::DuplicateNodeid);

    let no_ring0 = "nodelist {\n  node {\n    ring0_addr: 10.0.0.1\n    nodeid: 1\n  }\n  node {\n    ring1_addr: 10.0.0.2\n    nodeid: 2\n  }\n}\n";
    assert_eq!(
        error_text(no_ring0),
        "/etc/corosync/corosync.conf:6: nodelist.node.1: node has no ring0_addr"
    );
    assert_eq!(error_kind(no_ring0), ErrorKind::MissingRing0Addr);

    let mixed = "nodelist {\n  node {\n    ring0_addr: 10.0.0.1\n    nodeid: 1\n  }\n  node {\n    ring0_addr: fd00::2\n    nodeid: 2\n  }\n}\n";
    assert_eq!(
        error_text(mixed),
        "/etc/corosync/corosync.conf:7: nodelist.node.1.ring0_addr: address fd00::2 is IPv6 but nodelist.node.0.ring0_addr is IPv4 (10.0.0.1); one cluster uses one address family"
    );
    assert_eq!(error_kind(mixed), ErrorKind::MixedAddressFamilies);
    let v4_only =
        "totem {\nip_version: ipv4\n}\nnodelist {\nnode {\nring0_addr: fd00::1\nnodeid: 1\n}\n}\n";
    assert_eq!(
        error_text(v4_only),
        "/etc/corosync/corosync.conf:6: nodelist.node.0.ring0_addr: address fd00::1 is IPv6 but totem.ip_version allows only the other family"
    );
    // Host names have no family until resolved; they are not checked here.
    parse_str(FILE, "nodelist {\nnode {\nring0_addr: alpha\nnodeid: 1\n}\nnode {\nring0_addr: fd00::2\nnodeid: 2\n}\n}\n").unwrap();

    let no_nodeid = "nodelist {\n  node {\n    ring0_addr: 10.0.0.1\n  }\n}\n";
    assert_eq!(
        error_text(no_nodeid),
        "/etc/corosync/corosync.conf:2: nodelist.node.0: node has no nodeid (required with transport knet)"
    );
    parse_str(FILE, &format!("totem {{\ntransport: udpu\n}}\n{no_nodeid}")).unwrap();
}

/// A nodelist of nodes `i` of `links` (`ring<link>_addr: 198.18.<link>.<i>`), with `extra`
/// lines in node 2.
fn linked(totem: &str, nodes: &[(u32, &[u8])], extra: &str) -> String {
    let mut s = format!("totem {{\n{totem}}}\nnodelist {{\n");
    for (i, links) in nodes {
        s.push_str("node {\n");
        for l in *links {
            s.push_str(&format!("ring{l}_addr: 198.18.{l}.{i}\n"));
        }
        if *i == 2 {
            s.push_str(extra);
        }
        s.push_str(&format!("nodeid: {i}\n}}\n"));
    }
    s.push_str("}\n");
    s
}

#[test]
fn each_link_may_have_its_own_transport() {
    // Link 0 follows totem.transport (xdp), link 1 runs kernel UDP, link 2 AF_XDP under knet.
    let text = linked(
        "transport: xdp\ninterface {\nlinknumber: 1\nknet_transport: udp\n}\n",
        &[(1, &[0, 1]), (2, &[0, 1])],
        "",
    );
    let c = parse_str(FILE, &text).unwrap();
    assert_eq!(c.totem.link_transport(0), TransportSetting::Xdp);
    assert_eq!(c.totem.link_transport(1), TransportSetting::Udpu);
    let text = linked(
        "interface {\nlinknumber: 2\nknet_transport: xdp\n}\n",
        &[(1, &[0, 2]), (2, &[0, 2])],
        "",
    );
    let c = parse_str(FILE, &text).unwrap();
    assert_eq!(c.totem.transport, TransportSetting::Knet);
    assert_eq!(c.totem.link_transport(0), TransportSetting::Knet);
    assert_eq!(c.totem.link_transport(2), TransportSetting::Xdp);
    assert_eq!(
        c.totem.interfaces[0].knet_transport,
        Some(LinkTransportSetting::Xdp)
    );
}

#[test]
fn link_settings_and_mode() {
    let text = linked(
        "token: 1000\nlink_mode: rr\ninterface {\nlinknumber: 1\nknet_link_priority: 5\n\
         knet_ping_interval: 100\nknet_ping_timeout: 300\nknet_pong_count: 3\n\
         knet_ping_precision: 64\nknet_transport: udp\nmcastport: 5406\n}\n",
        &[(1, &[0, 1]), (2, &[0, 1]), (3, &[0, 1])],
        "",
    );
    let c = parse_str(FILE, &text).unwrap();
    assert_eq!(c.totem.link_mode, LinkMode::Rr);
    let l = &c.totem.links;
    assert_eq!(l.len(), 2);
    // Link 0 has no interface section: the defaults, from the token in effect (1650 ms).
    assert_eq!(
        (
            l[0].priority,
            l[0].ping_interval_ms,
            l[0].ping_timeout_ms,
            l[0].pong_count
        ),
        (1, 412, 825, 2)
    );
    assert_eq!(l[0].ping_precision, 2048);
    assert_eq!(
        (
            l[1].priority,
            l[1].ping_interval_ms,
            l[1].ping_timeout_ms,
            l[1].pong_count
        ),
        (5, 100, 300, 3)
    );
    assert_eq!(l[1].ping_precision, 64);
    let runtime = c.runtime_entries();
    assert!(runtime.contains(&(
        "runtime.config.totem.interface.1.knet_ping_timeout".into(),
        Value::U32(300)
    )));
    assert!(runtime.contains(&(
        "runtime.config.totem.interface.0.knet_ping_interval".into(),
        Value::U32(412)
    )));
    // Links need not be numbered from 1 up: links 0 and 3.
    let c = parse_str(FILE, &linked("", &[(1, &[0, 3]), (2, &[0, 3])], "")).unwrap();
    let numbers: Vec<u8> = c.totem.links.iter().map(|l| l.number).collect();
    assert_eq!(numbers, [0, 3]);
    // One node alone on loopback: link 0 with the defaults.
    let c = parse_str(FILE, "totem {\n}\n").unwrap();
    assert_eq!(c.totem.links.len(), 1);
}

#[test]
fn link_errors_name_file_line_and_key() {
    // A node with fewer links than the first.
    let fewer = linked("", &[(1, &[0, 1]), (2, &[0]), (3, &[0, 1])], "");
    assert_eq!(
        error_text(&fewer),
        "/etc/corosync/corosync.conf:9: nodelist.node.1: Not all nodes have the same number of links: this node has no ring1_addr, the first node (nodelist.node.0, line 6) has; give every node a ring1_addr or none"
    );
    assert_eq!(error_kind(&fewer), ErrorKind::LinkMismatch);
    // A node with more.
    let more = linked("", &[(1, &[0]), (2, &[0, 2])], "");
    assert_eq!(
        error_text(&more),
        "/etc/corosync/corosync.conf:10: nodelist.node.1.ring2_addr: Not all nodes have the same number of links: this node has link 2, the first node (nodelist.node.0, line 4) has not; give every node a ring2_addr or none"
    );
    // The same address twice: two nodes, or two links of one node.
    let twice = linked("", &[(1, &[0, 1]), (2, &[0, 1])], "");
    let twice = twice.replace("ring1_addr: 198.18.1.2", "ring1_addr: 198.18.0.1");
    assert_eq!(
        error_text(&twice),
        "/etc/corosync/corosync.conf:11: nodelist.node.1.ring1_addr: address 198.18.0.1 is already nodelist.node.0.ring0_addr (line 5); every node has an address of its own on every link"
    );
    assert_eq!(error_kind(&twice), ErrorKind::DuplicateAddress);
    let own = linked("", &[(1, &[0, 1]), (2, &[0, 1])], "")
        .replace("ring1_addr: 198.18.1.2", "ring1_addr: 198.18.0.2");
    assert_eq!(error_kind(&own), ErrorKind::DuplicateAddress);
    // Two families across the links of one cluster.
    let mixed = linked("", &[(1, &[0, 1]), (2, &[0, 1])], "")
        .replace("ring1_addr: 198.18.1.2", "ring1_addr: 2001:2::2");
    assert_eq!(error_kind(&mixed), ErrorKind::MixedAddressFamilies);
    assert!(error_text(&mixed).contains(":11: nodelist.node.1.ring1_addr: "));
    // An interface for a link no node has.
    let unused = linked(
        "interface {\nlinknumber: 2\n}\n",
        &[(1, &[0, 1]), (2, &[0, 1])],
        "",
    );
    assert_eq!(
        error_text(&unused),
        "/etc/corosync/corosync.conf:2: totem.interface.2.linknumber: interface with linknumber 2, but no node has a ring2_addr; add the link's addresses to the nodelist or remove the interface section"
    );
    assert_eq!(error_kind(&unused), ErrorKind::LinkMismatch);
    // Multicast runs on one link.
    let udp = linked("transport: udp\n", &[(1, &[0, 1]), (2, &[0, 1])], "");
    assert_eq!(error_kind(&udp), ErrorKind::Conflict);
    assert!(
        error_text(&udp).starts_with("/etc/corosync/corosync.conf:2: totem.transport: multicast")
    );
    // Ping timers that cannot work, and a transport rotor has not.
    let timers = linked(
        "interface {\nlinknumber: 1\nknet_ping_interval: 500\nknet_ping_timeout: 200\n}\n",
        &[(1, &[0, 1]), (2, &[0, 1])],
        "",
    );
    assert!(
        error_text(&timers).starts_with(
            "/etc/corosync/corosync.conf:4: totem.interface.1.knet_ping_interval: knet_ping_interval 500 ms is longer than knet_ping_timeout 200 ms"
        ),
        "{}",
        error_text(&timers)
    );
    // corosync's knet transports rotor has not.
    for (value, line) in [("sctp", 4), ("loopback", 4)] {
        let text = linked(
            &format!("interface {{\nlinknumber: 0\nknet_transport: {value}\n}}\n"),
            &[(1, &[0]), (2, &[0])],
            "",
        );
        assert_eq!(
            error_text(&text),
            format!(
                "/etc/corosync/corosync.conf:{line}: totem.interface.0.knet_transport: expected one of udp, xdp, got \"{value}\": rotor carries a link over kernel UDP (udp) or AF_XDP (xdp); it has no SCTP or loopback transport"
            )
        );
    }
    assert_eq!(
        error_text("totem {\nlink_mode: fast\n}\n"),
        "/etc/corosync/corosync.conf:2: totem.link_mode: expected one of passive, active, rr, got \"fast\""
    );
}

#[test]
fn cross_key_errors() {
    assert_eq!(
        error_text("totem {\n  interface {\n    linknumber: 0\n  }\n  interface {\n  }\n}\n"),
        "/etc/corosync/corosync.conf:5: totem.interface: linknumber 0 is already used by the interface at line 2"
    );
    assert_eq!(
        error_text("logging {\n  logger_subsys {\n    debug: on\n  }\n}\n"),
        "/etc/corosync/corosync.conf:2: logging.logger_subsys: logger_subsys section has no subsys key"
    );
    assert_eq!(
        error_text("totem {\n  crypto_cipher: aes256\n  crypto_hash: none\n}\n"),
        "/etc/corosync/corosync.conf:3: totem.crypto_hash: crypto_cipher aes256 requires a crypto_hash other than none"
    );
    assert_eq!(
        error_text("totem {\n  token: 20\n  join: 50\n}\n"),
        "/etc/corosync/corosync.conf:3: totem.join: join (50 ms) must be less than consensus (24 ms)"
    );
}

#[test]
fn loading_into_cmap_keeps_types_and_publishes_runtime_values() {
    let config = parse_str(FILE, THREE_NODES).unwrap();
    let mut cmap = CmapStore::new();
    config.load_into(&mut cmap).unwrap();
    assert_eq!(cmap.get("totem.token"), Some(&Value::U32(1000)));
    assert_eq!(
        cmap.get("runtime.config.totem.token"),
        Some(&Value::U32(1650))
    );
    assert_eq!(cmap.get("nodelist.node.0.nodeid"), Some(&Value::U32(1)));
    assert_eq!(cmap.get_str("nodelist.node.0.ring0_addr"), Some("10.0.0.1"));
    let listing = format_cmapctl(&cmap, "totem.", false);
    assert!(
        listing.starts_with("totem.cluster_name (str) = demo\n"),
        "{listing}"
    );
    assert!(listing.contains("totem.token (u32) = 1000\n"), "{listing}");
    assert!(
        listing.contains("totem.interface.0.mcastport (u16) = 5405\n"),
        "{listing}"
    );
    // Known keys keep their type even when the file does not set them.
    assert_eq!(
        cmap.set(
            "totem.consensus",
            Value::String("abc".into()),
            Access::Daemon
        ),
        Err(CmapError::TypeMismatch {
            key: "totem.consensus".into(),
            expected: ValueType::U32,
            got: ValueType::String
        })
    );
    // The file is what config keys stand for: a client's change could not take effect.
    assert_eq!(
        cmap.set("totem.token", Value::U32(5000), Access::Client),
        Err(CmapError::ConfigBacked {
            key: "totem.token".into(),
            file: FILE.into()
        })
    );
    assert_eq!(cmap.get("totem.token"), Some(&Value::U32(1000)));
    assert!(matches!(
        cmap.set("runtime.config.totem.token", Value::U32(1), Access::Client),
        Err(CmapError::ReadOnly { .. })
    ));
}

#[test]
fn load_reads_the_file_and_reports_missing_ones() {
    let dir = std::env::temp_dir().join(format!("rotor-control-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("corosync.conf");
    std::fs::write(&path, "totem {\n  token: x\n}\n").unwrap();
    let err = config::load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: totem.token: expected an unsigned integer (milliseconds), got \"x\"",
            path.display()
        )
    );
    std::fs::write(&path, DEBIAN_DEFAULT).unwrap();
    assert_eq!(
        config::load(&path).unwrap().file,
        path.display().to_string()
    );
    let missing = dir.join("absent.conf");
    let err = config::load(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: cannot read: ", missing.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Tests that change the process environment hold this lock.
static ENV_LOCK: Mutex<()> = Mutex::new(());

#[test]
fn config_path_precedence_cli_then_env_then_default() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::env::remove_var(CONFIG_PATH_ENV);
    assert_eq!(
        config_path(None),
        PathBuf::from("/etc/corosync/corosync.conf")
    );
    std::env::set_var(CONFIG_PATH_ENV, "");
    assert_eq!(
        config_path(None),
        PathBuf::from("/etc/corosync/corosync.conf")
    );
    std::env::set_var(CONFIG_PATH_ENV, "/tmp/env.conf");
    assert_eq!(config_path(None), PathBuf::from("/tmp/env.conf"));
    assert_eq!(
        config_path(Some(Path::new("/tmp/cli.conf"))),
        PathBuf::from("/tmp/cli.conf")
    );
    std::env::remove_var(CONFIG_PATH_ENV);
}

#[test]
fn authkey_path_precedence_keyfile_then_env_then_default() {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::env::remove_var(AUTHKEY_PATH_ENV);
    assert_eq!(authkey_path(None), PathBuf::from("/etc/corosync/authkey"));
    std::env::set_var(AUTHKEY_PATH_ENV, "/tmp/env.key");
    assert_eq!(authkey_path(None), PathBuf::from("/tmp/env.key"));
    assert_eq!(
        authkey_path(Some("/tmp/keyfile.key")),
        PathBuf::from("/tmp/keyfile.key")
    );
    std::env::remove_var(AUTHKEY_PATH_ENV);
}

#[test]
fn every_documented_option_is_typed() {
    let text = "\
totem {
version: 2
cluster_name: demo
token: 3000
token_coefficient: 650
token_retransmit: 714
hold: 561
token_retransmits_before_loss_const: 4
join: 50
send_join: 0
consensus: 3600
merge: 200
downcheck: 1000
fail_recv_const: 2500
seqno_unchanged_const: 30
heartbeat_failures_allowed: 0
max_network_delay: 50
window_size: 50
max_messages: 17
miss_count_const: 5
knet_pmtud_interval: 30
knet_compression_level: -1
netmtu: 1500
transport: xdp
crypto_cipher: aes128
crypto_hash: sha512
keyfile: /etc/rotor/authkey
ip_version: ipv4-6
clear_node_high_bit: yes
secauth: on
config_version: 18446744073709551615
ip_dscp: ef
interface {
linknumber: 2
bindnetaddr: 10.0.0.0
mcastaddr: 239.255.1.1
mcastport: 5407
ttl: 1
}
}
quorum {
provider: corosync_votequorum
expected_votes: 3
two_node: 0
wait_for_all: 0
last_man_standing: 1
last_man_standing_window: 10000
auto_tie_breaker: 1
auto_tie_breaker_node: highest
allow_downscale: 1
expected_votes_tracking: 0
}
logging {
to_stderr: on
to_logfile: no
logfile: /var/log/rotor.log
to_syslog: yes
syslog_facility: local3
debug: trace
timestamp: hires
fileline: on
function_name: off
logger_subsys {
subsys: TOTEM
debug: on
}
}
system {
move_to_root_cgroup: auto
sched_rr: no
priority: max
allow_knet_handle_fallback: no
state_dir: /var/lib/rotor
}
resources {
watchdog_timeout: 6
}
nozzle {
name: noz01
ipaddr: 192.168.10.0
ipprefix: 24
}
";
    let config = parse_str(FILE, text).unwrap();
    let type_of = |key: &str| {
        config
            .entries
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .value_type()
    };
    for key in [
        "version",
        "token",
        "token_coefficient",
        "token_retransmit",
        "hold",
        "token_retransmits_before_loss_const",
        "join",
        "send_join",
        "consensus",
        "merge",
        "downcheck",
        "fail_recv_const",
        "seqno_unchanged_const",
        "heartbeat_failures_allowed",
        "max_network_delay",
        "window_size",
        "max_messages",
        "miss_count_const",
        "knet_pmtud_interval",
        "netmtu",
    ] {
        assert_eq!(
            type_of(&format!("totem.{key}")),
            ValueType::U32,
            "totem.{key}"
        );
    }
    assert_eq!(type_of("totem.knet_compression_level"), ValueType::I32);
    assert_eq!(type_of("totem.config_version"), ValueType::U64);
    assert_eq!(config.entries["totem.ip_dscp"], Value::U8(46));
    for key in [
        "cluster_name",
        "transport",
        "crypto_cipher",
        "crypto_hash",
        "keyfile",
        "ip_version",
        "clear_node_high_bit",
        "secauth",
    ] {
        assert_eq!(
            type_of(&format!("totem.{key}")),
            ValueType::String,
            "totem.{key}"
        );
    }
    assert_eq!(type_of("totem.interface.2.bindnetaddr"), ValueType::String);
    assert_eq!(type_of("totem.interface.2.mcastaddr"), ValueType::String);
    assert_eq!(
        config.entries["totem.interface.2.mcastport"],
        Value::U16(5407)
    );
    assert_eq!(config.entries["totem.interface.2.ttl"], Value::U8(1));
    for key in ["expected_votes", "last_man_standing_window"] {
        assert_eq!(
            type_of(&format!("quorum.{key}")),
            ValueType::U32,
            "quorum.{key}"
        );
    }
    for key in [
        "two_node",
        "wait_for_all",
        "last_man_standing",
        "auto_tie_breaker",
        "allow_downscale",
        "expected_votes_tracking",
    ] {
        assert_eq!(
            type_of(&format!("quorum.{key}")),
            ValueType::U8,
            "quorum.{key}"
        );
    }
    assert_eq!(
        config.entries["logging.logger_subsys.TOTEM.debug"],
        Value::String("on".into())
    );
    assert_eq!(
        config.entries["system.state_dir"],
        Value::String("/var/lib/rotor".into())
    );
    assert_eq!(config.entries["resources.watchdog_timeout"], Value::U32(6));
    assert_eq!(
        config.entries["nozzle.ipprefix"],
        Value::String("24".into())
    );
    let totem = &config.totem;
    assert_eq!(
        (totem.transport, totem.ip_version),
        (TransportSetting::Xdp, IpVersionSetting::Ipv4Then6)
    );
    assert_eq!(
        (totem.crypto_cipher.as_str(), totem.crypto_hash.as_str()),
        ("aes128", "sha512")
    );
    assert_eq!(
        totem.interfaces[0].mcastaddr.as_deref(),
        Some("239.255.1.1")
    );
    assert!(totem.clear_node_high_bit);
    assert_eq!(
        config
            .quorum
            .votequorum
            .as_ref()
            .map(|q| &q.auto_tie_breaker),
        Some(&TieBreaker::Highest)
    );
    // Only the knet option is warned about.
    let warned: Vec<&str> = config.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        warned,
        ["totem.knet_pmtud_interval", "totem.knet_compression_level"]
    );
}

#[test]
fn multicast_follows_the_transport_and_corosyncs_derived_group() {
    let conf = |transport: &str, name: &str, interface: &str, addrs: [&str; 2]| {
        format!(
            "totem {{\ntransport: {transport}\n{name}interface {{\nlinknumber: 0\n{interface}}}\n}}\n\
             nodelist {{\nnode {{\nring0_addr: {}\nnodeid: 1\n}}\nnode {{\nring0_addr: {}\nnodeid: 2\n}}\n}}\n",
            addrs[0], addrs[1]
        )
    };
    let v4 = ["198.18.0.1", "198.18.0.2"];
    let v6 = ["2001:2::1", "2001:2::2"];
    let multicast = |text: String| parse_str(FILE, &text).unwrap().totem.multicast;
    // udp without mcastaddr: corosync's group from the cluster name ("ab" → id 292), stored
    // back into cmap as totemconfig.c does.
    let c = parse_str(FILE, &conf("udp", "cluster_name: ab\n", "", v4)).unwrap();
    let m = c.totem.multicast.unwrap();
    assert_eq!(m.addr.to_string(), "239.192.1.37");
    assert_eq!((m.ttl, m.derived), (1, true));
    assert_eq!(
        c.entries["totem.interface.0.mcastaddr"],
        Value::String("239.192.1.37".into())
    );
    // udp is IPv4 unless ip_version says otherwise (totemconfig.c).
    let m = multicast(conf("udp", "cluster_name: ab\nip_version: ipv6\n", "", v6)).unwrap();
    assert_eq!(m.addr.to_string(), "ff15::124");
    // No cluster name: derived from rotor's default name.
    let m = multicast(conf("udp", "", "", v4)).unwrap();
    assert_eq!(
        m.addr,
        config::corosync_default_group(config::CLUSTER_NAME_DEFAULT, 0, false)
    );
    // Explicit group and ttl; xdp multicasts only with an mcastaddr; udpu and knet never.
    let explicit = "mcastaddr: 239.255.1.1\nttl: 3\n";
    let m = multicast(conf("udp", "", explicit, v4)).unwrap();
    assert_eq!(
        (m.addr.to_string(), m.ttl, m.derived),
        ("239.255.1.1".into(), 3, false)
    );
    let m = multicast(conf("xdp", "", "mcastaddr: ff15::1\n", v6)).unwrap();
    assert_eq!(m.addr.to_string(), "ff15::1");
    assert_eq!(multicast(conf("xdp", "", "", v4)), None);
    assert_eq!(
        multicast(conf("udpu", "", "mcastaddr: 239.255.1.1\n", v4)),
        None
    );
    assert_eq!(
        multicast(conf("knet", "", "mcastaddr: 239.255.1.1\n", v4)),
        None
    );
    // Errors with the line of the key: not multicast, other family, not literal, ttl unicast.
    let err = |text: String| parse_str(FILE, &text).unwrap_err();
    let e = err(conf("udp", "", "mcastaddr: 198.18.0.9\n", v4));
    assert_eq!(e.kind(), Some(ErrorKind::InvalidValue));
    assert!(
        e.to_string()
            .starts_with(&format!("{FILE}:5: totem.interface.0.mcastaddr: ")),
        "{e}"
    );
    let e = err(conf("udp", "", "mcastaddr: ff15::1\n", v4));
    assert_eq!(e.kind(), Some(ErrorKind::MixedAddressFamilies));
    let e = err(conf("xdp", "", "mcastaddr: cluster-group.example\n", v4));
    assert_eq!(e.kind(), Some(ErrorKind::InvalidValue));
    let e = err(conf("udpu", "", "ttl: 2\n", v4));
    assert_eq!(e.kind(), Some(ErrorKind::Conflict));
    assert!(multicast(conf("udpu", "", "ttl: 1\n", v4)).is_none());
}
