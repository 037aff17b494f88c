//! The table of totem settings: corosync's defaults and derivations, the small-token rules,
//! every bound and relation refused under the key the operator should change, and the table's
//! own consistency (derivations only look back, accessors address their own field).

use totem_core::config::{
    explicit, frame_overhead_bytes, setting_named, ClusterShape, DefaultRule, KeyUse, SettingError,
    TotemSettings, OTHER_KEYS, RELATIONS, SETTINGS,
};
use totem_core::limits::FRAME_SIZE_MIN;

fn shape(nodes: u32) -> ClusterShape {
    ClusterShape {
        nodelist_count: nodes,
        frame_overhead_bytes: frame_overhead_bytes(false, 40),
    }
}

fn resolve(pairs: &[(&str, u32)], nodes: u32) -> Result<TotemSettings, SettingError> {
    TotemSettings::resolve(explicit(pairs), &shape(nodes))
}

fn error(pairs: &[(&str, u32)], nodes: u32) -> String {
    resolve(pairs, nodes).expect_err("refused").to_string()
}

#[test]
fn defaults_are_corosyncs() {
    let s = resolve(&[], 0).unwrap();
    let expected = [
        ("token_coefficient", 650),
        ("token", 3000),
        ("token_warning", 75),
        ("token_retransmits_before_loss_const", 4),
        // (int)(3000 / 4.2)
        ("token_retransmit", 714),
        ("token_retransmit_min", 1),
        // (int)(714 × 0.8 − 10)
        ("hold", 561),
        ("consensus", 3600),
        ("join", 50),
        ("send_join", 0),
        ("merge", 200),
        ("downcheck", 1000),
        ("fail_recv_const", 2500),
        ("seqno_unchanged_const", 30),
        ("heartbeat_failures_allowed", 0),
        ("max_network_delay", 50),
        ("window_size", 50),
        ("max_messages", 17),
        ("accelerated_window", 17),
        ("max_messages_adaptive", 1),
        ("miss_count_const", 5),
        ("netmtu", 1500),
    ];
    assert_eq!(expected.len(), SETTINGS.len());
    for (name, value) in expected {
        let setting = setting_named(name).unwrap_or_else(|| panic!("{name} in the table"));
        assert_eq!((setting.get)(&s), value, "{name}");
    }
    assert_eq!(
        TotemSettings::default().frame_size_bytes(&ClusterShape::ALONE),
        1400
    );
    assert_eq!(s.frame_size_bytes(&shape(0)), 1500 - 28 - 40);
    assert_eq!(s.token_warning_ms(), Some(2250));
    assert_eq!(
        resolve(&[("token_warning", 0)], 0)
            .unwrap()
            .token_warning_ms(),
        None
    );
}

#[test]
fn the_token_coefficient_applies_from_three_nodes() {
    assert_eq!(resolve(&[("token", 1000)], 2).unwrap().token_ms, 1000);
    let s = resolve(&[("token", 1000)], 3).unwrap();
    assert_eq!(
        (s.token_ms, s.token_retransmit_ms, s.hold_ms, s.consensus_ms),
        (1650, 392, 303, 1980)
    );
    let s = resolve(&[("token_coefficient", 100)], 5).unwrap();
    assert_eq!(s.token_ms, 3300);
}

#[test]
fn small_tokens_derive_what_they_need() {
    let s = resolve(&[("token", 10)], 3).unwrap();
    // 10 + 650: the coefficient dominates a small token on three nodes.
    assert_eq!(s.token_ms, 660);
    let s = resolve(&[("token", 10), ("token_coefficient", 0)], 3).unwrap();
    assert_eq!(
        (
            s.token_ms,
            s.token_retransmit_ms,
            s.hold_ms,
            s.consensus_ms,
            s.join_ms
        ),
        (10, 2, 1, 12, 3)
    );
    // Explicit values still get the strict checks.
    assert_eq!(
        error(&[("token", 10), ("join", 50)], 1),
        "totem.join: join (50 ms) must be less than consensus (12 ms)"
    );
    // Below 9 ms there is no room for a hold under the retransmit timeout: the token is named.
    assert_eq!(
        error(&[("token", 5)], 1),
        "totem.token: hold (0 ms) must be at least 1 ms (hold is not set: token_retransmit × \
         0.8 − 10, at least token_retransmit / 2); change token, or set hold explicitly"
    );
    let s = resolve(&[("window_size", 10)], 1).unwrap();
    assert_eq!(s.max_messages, 10);
    // The accelerated window shrinks with the visit it is part of.
    let s = resolve(&[("max_messages", 2)], 1).unwrap();
    assert_eq!(s.accelerated_window, 2);
    assert_eq!(
        resolve(&[("accelerated_window", 0)], 1)
            .unwrap()
            .accelerated_window,
        0
    );
    // Explicit flow control values are obeyed exactly: no adaptation then, unless asked for.
    let adaptive = |pairs: &[(&str, u32)]| resolve(pairs, 1).unwrap().max_messages_adaptive;
    assert_eq!(adaptive(&[]), 1);
    assert_eq!(adaptive(&[("window_size", 50)]), 0);
    assert_eq!(adaptive(&[("max_messages", 17)]), 0);
    assert_eq!(
        adaptive(&[("max_messages", 17), ("max_messages_adaptive", 1)]),
        1
    );
    assert_eq!(adaptive(&[("max_messages_adaptive", 0)]), 0);
}

#[test]
fn every_bound_and_relation_names_its_key() {
    let cases: &[(&[(&str, u32)], &str)] = &[
        (&[("token", 0)], "totem.token: token (0 ms) must be at least 1 ms (corosync"),
        (&[("window_size", 0)], "totem.window_size: window_size (0) must be at least 1"),
        (&[("window_size", 5000)], "totem.window_size: window_size (5000) must be at most 1024"),
        (&[("token_warning", 101)], "totem.token_warning: token_warning (101%) must be at most 100%"),
        (&[("max_messages", 60)], "totem.max_messages: max_messages (60) may not exceed window_size (50)"),
        (
            &[("accelerated_window", 18)],
            "totem.accelerated_window: accelerated_window (18) may not exceed max_messages (17)",
        ),
        (
            &[("accelerated_window", 5), ("max_messages", 4)],
            "totem.accelerated_window: accelerated_window (5) may not exceed max_messages (4)",
        ),
        (
            &[("token", 1000), ("consensus", 1100)],
            "totem.consensus: consensus (1100 ms) must be at least 1.2 × token (1000 ms), 1200 ms",
        ),
        (
            &[("token_retransmit", 5000)],
            "totem.token_retransmit: token_retransmit (5000 ms) must be less than token (3000 ms)",
        ),
        (&[("hold", 714)], "totem.hold: hold (714 ms) must be less than token_retransmit (714 ms)"),
        (&[("join", 0)], "totem.join: join (0 ms) must be at least 1 ms"),
        (&[("send_join", 3600)], "totem.send_join: send_join (3600 ms) must be less than consensus"),
        (&[("netmtu", 100)], "totem.netmtu: netmtu (100 bytes) must be at least 576 bytes"),
        (&[("netmtu", 576)], "totem.netmtu: netmtu (576 bytes) less 68 bytes of IP, UDP and crypto headers leaves frames of 508 bytes"),
        // A derived value that breaks a rule is blamed on the set value it comes from.
        (
            &[("token", 100), ("token_retransmits_before_loss_const", 200)],
            "totem.token: token_retransmit (0 ms) must be at least 1 ms",
        ),
        (
            &[("token_retransmit", 1)],
            "totem.token_retransmit: hold (0 ms) must be at least 1 ms",
        ),
    ];
    for (pairs, expected) in cases {
        let text = error(pairs, 1);
        assert!(text.starts_with(expected), "{pairs:?}: {text}");
    }
}

#[test]
fn any_frame_size_carries_the_membership_messages_of_the_largest_nodelist() {
    // Membership messages larger than a frame go in pieces: 64 and 384 nodes run at the
    // default netmtu, and at the smallest frame the settings allow, over IPv4 and IPv6.
    for nodes in [29, 64, 384] {
        resolve(&[], nodes).unwrap();
        for ipv6 in [false, true] {
            let shape = ClusterShape {
                nodelist_count: nodes,
                frame_overhead_bytes: frame_overhead_bytes(ipv6, 40),
            };
            let smallest = FRAME_SIZE_MIN as u32 + shape.frame_overhead_bytes;
            TotemSettings::resolve(explicit(&[("netmtu", smallest)]), &shape).unwrap();
        }
    }
    // The nodelist maximum stays.
    let e = resolve(&[], 385).unwrap_err();
    assert_eq!(e.key, None);
    assert!(e.reason.contains("at most 384"), "{e}");
}

#[test]
fn resolved_settings_validate_and_resolve_to_themselves() {
    for (pairs, nodes) in [
        (&[][..], 1),
        (&[("token", 10), ("token_coefficient", 0)][..], 3),
        (&[("token", 200), ("window_size", 8)][..], 2),
        (&[("netmtu", 9000)][..], 64),
        (&[][..], 64),
    ] {
        let s = resolve(pairs, nodes).unwrap();
        s.validate(&shape(nodes)).unwrap();
        // Every value set explicitly gives the same settings (two nodes: no coefficient).
        let all: Vec<(&str, u32)> = SETTINGS.iter().map(|t| (t.name, (t.get)(&s))).collect();
        assert_eq!(resolve(&all, nodes.min(2)).unwrap(), s);
    }
}

#[test]
fn the_table_is_consistent() {
    let mut seen: Vec<&str> = Vec::new();
    for (i, setting) in SETTINGS.iter().enumerate() {
        assert!(!seen.contains(&setting.name), "{} twice", setting.name);
        seen.push(setting.name);
        // A derivation only uses settings resolved before it.
        let inputs: Vec<&str> = match setting.default {
            DefaultRule::Derived { from, .. } => from.to_vec(),
            DefaultRule::UnlessSet {
                keys, unset, set, ..
            } => {
                for v in [unset, set] {
                    assert!((setting.min..=setting.max).contains(&v), "{}", setting.name);
                }
                keys.to_vec()
            }
            DefaultRule::Value(v) => {
                assert!((setting.min..=setting.max).contains(&v), "{}", setting.name);
                Vec::new()
            }
        };
        for input in inputs.iter().chain(setting.scale.as_ref().map(|s| &s.by)) {
            let at = SETTINGS.iter().position(|s| s.name == *input);
            assert!(at.is_some_and(|at| at < i), "{} uses {input}", setting.name);
        }
        // The accessors address this setting's field and no other.
        let mut s = TotemSettings::default();
        let before: Vec<u32> = SETTINGS.iter().map(|t| (t.get)(&s)).collect();
        (setting.set)(&mut s, 123_456);
        for (j, other) in SETTINGS.iter().enumerate() {
            let expected = if i == j { 123_456 } else { before[j] };
            assert_eq!(
                (other.get)(&s),
                expected,
                "{} set, {} read",
                setting.name,
                other.name
            );
        }
        assert!(!setting.doc.is_empty());
        assert_eq!(setting.key(), format!("totem.{}", setting.name));
    }
    for relation in &RELATIONS {
        assert!(
            setting_named(relation.subject).is_some(),
            "{}",
            relation.subject
        );
    }
    for key in &OTHER_KEYS {
        assert!(
            setting_named(key.name).is_none(),
            "{} in both tables",
            key.name
        );
        assert_eq!(
            key.key_use == KeyUse::Knet,
            key.name.starts_with("knet_"),
            "{}",
            key.name
        );
    }
    // netmtu is read at start only; corosync re-reads the rest while running.
    let restart_only: Vec<&str> = SETTINGS
        .iter()
        .filter(|s| !s.volatile)
        .map(|s| s.name)
        .collect();
    assert_eq!(restart_only, ["netmtu"]);
}
