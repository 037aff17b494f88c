//! cmap: typed set/get/delete, prefix iteration, tracking, read-only and config-backed keys,
//! bounds and the corosync-cmapctl text layout.

use rotor_control::cmap::{
    check_key_name, format_cmapctl, format_cmapctl_line, Access, ChangeKind, CmapError, CmapStore,
    TrackFilter, Value, ValueType, KEY_NAME_LEN_MAX, TRACK_EVENT_QUEUE_MAX, VALUE_SIZE_MAX,
};
use rotor_control::config::{parse_str, SECTIONS_KNOWN};

#[test]
fn set_get_delete_round_trip() {
    let mut cmap = CmapStore::new();
    cmap.set("totem.token", Value::U32(3000), Access::Daemon)
        .unwrap();
    cmap.set(
        "totem.cluster_name",
        Value::String("demo".into()),
        Access::Client,
    )
    .unwrap();
    assert_eq!(cmap.get("totem.token"), Some(&Value::U32(3000)));
    assert_eq!(cmap.get_u32("totem.token"), Some(3000));
    assert_eq!(cmap.get_str("totem.cluster_name"), Some("demo"));
    assert_eq!(cmap.get_u32("totem.cluster_name"), None);
    assert_eq!(cmap.len(), 2);
    assert_eq!(
        cmap.delete("totem.token", Access::Client).unwrap(),
        Value::U32(3000)
    );
    assert_eq!(cmap.get("totem.token"), None);
    assert_eq!(
        cmap.delete("totem.token", Access::Client),
        Err(CmapError::NotFound {
            key: "totem.token".into()
        })
    );
}

#[test]
fn set_refuses_a_value_of_another_type() {
    let mut cmap = CmapStore::new();
    cmap.set("totem.token", Value::U32(3000), Access::Daemon)
        .unwrap();
    let err = cmap
        .set("totem.token", Value::String("abc".into()), Access::Client)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cmap key totem.token: has type u32, cannot set a str value"
    );
    assert_eq!(cmap.get_u32("totem.token"), Some(3000));
    // A deleted key may come back with another type, as in corosync.
    cmap.delete("totem.token", Access::Daemon).unwrap();
    cmap.set("totem.token", Value::U64(1), Access::Daemon)
        .unwrap();
}

#[test]
fn declared_type_applies_before_the_key_exists() {
    let mut cmap = CmapStore::new();
    cmap.declare_type("quorum.expected_votes", ValueType::U32);
    let err = cmap
        .set("quorum.expected_votes", Value::U8(3), Access::Client)
        .unwrap_err();
    assert_eq!(
        err,
        CmapError::TypeMismatch {
            key: "quorum.expected_votes".into(),
            expected: ValueType::U32,
            got: ValueType::U8
        }
    );
    cmap.set("quorum.expected_votes", Value::U32(3), Access::Client)
        .unwrap();
}

#[test]
fn read_only_prefixes_refuse_clients_but_not_the_daemon() {
    let mut cmap = CmapStore::new();
    cmap.set(
        "runtime.votequorum.this_node_id",
        Value::U32(1),
        Access::Daemon,
    )
    .unwrap();
    cmap.set("stats.srp.orf_token_tx", Value::U64(7), Access::Daemon)
        .unwrap();
    let err = cmap
        .set(
            "runtime.votequorum.this_node_id",
            Value::U32(2),
            Access::Client,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cmap key runtime.votequorum.this_node_id: read-only for clients (under \"runtime.\")"
    );
    assert!(matches!(
        cmap.delete("stats.srp.orf_token_tx", Access::Client),
        Err(CmapError::ReadOnly { .. })
    ));
    assert!(matches!(
        cmap.set("stats.new", Value::U8(1), Access::Client),
        Err(CmapError::ReadOnly { .. })
    ));
    cmap.add_read_only_prefix("nodelist.");
    assert!(matches!(
        cmap.set("nodelist.local_node_pos", Value::U32(0), Access::Client),
        Err(CmapError::ReadOnly { .. })
    ));
    cmap.delete("stats.srp.orf_token_tx", Access::Daemon)
        .unwrap();
}

#[test]
fn config_backed_prefixes_refuse_clients_with_what_to_do() {
    let mut cmap = CmapStore::new();
    cmap.set("totem.token", Value::U32(3000), Access::Daemon)
        .unwrap();
    cmap.add_config_prefix("totem.", "/etc/corosync/corosync.conf");
    let err = cmap
        .set("totem.token", Value::U32(5000), Access::Client)
        .unwrap_err();
    // The store refuses; rotord then decides what the write does (a timeout takes effect
    // on the node, other keys are refused naming what to do).
    assert_eq!(
        err.to_string(),
        "cmap key totem.token: stands for /etc/corosync/corosync.conf: change it there and \
         run rotor cfg -R (a reload applies it on every node)"
    );
    assert_eq!(cmap.get_u32("totem.token"), Some(3000));
    // A new key under the prefix, and a delete, are refused the same way.
    assert!(matches!(
        cmap.set("totem.new_key", Value::U32(1), Access::Client),
        Err(CmapError::ConfigBacked { .. })
    ));
    assert!(matches!(
        cmap.delete("totem.token", Access::Client),
        Err(CmapError::ConfigBacked { .. })
    ));
    // The daemon still writes (a reload), and other keys stay writable as in corosync.
    cmap.set("totem.token", Value::U32(4000), Access::Daemon)
        .unwrap();
    cmap.set("myapp.counter", Value::U64(1), Access::Client)
        .unwrap();
    cmap.delete("myapp.counter", Access::Client).unwrap();
}

#[test]
fn a_loaded_config_refuses_client_writes_under_every_section() {
    let text = "totem {\n    token: 1000\n}\nnodelist {\n    node {\n        nodeid: 1\n        \
                ring0_addr: 127.0.0.1\n    }\n}\nuidgid {\n    uid: 0\n}\n";
    let config = parse_str("/etc/rotor/corosync.conf", text).unwrap();
    let mut cmap = CmapStore::new();
    config.load_into(&mut cmap).unwrap();
    for section in SECTIONS_KNOWN {
        let key = format!("{section}.some_key");
        assert_eq!(
            cmap.set(&key, Value::U32(1), Access::Client),
            Err(CmapError::ConfigBacked {
                key: key.clone(),
                file: "/etc/rotor/corosync.conf".into()
            }),
            "{key}"
        );
    }
    for key in [
        "totem.token",
        "nodelist.node.0.nodeid",
        "uidgid.config.uid.0",
    ] {
        let before = cmap.get(key).cloned().unwrap();
        assert!(matches!(
            cmap.delete(key, Access::Client),
            Err(CmapError::ConfigBacked { .. })
        ));
        assert_eq!(cmap.get(key), Some(&before), "{key}");
    }
    // Published values stay read-only for their own reason; other keys stay writable.
    assert!(matches!(
        cmap.set("runtime.config.totem.token", Value::U32(1), Access::Client),
        Err(CmapError::ReadOnly { .. })
    ));
    cmap.set("myapp.state", Value::String("up".into()), Access::Client)
        .unwrap();
}

#[test]
fn sam_clients_own_their_process_keys_under_resources() {
    let text = "totem {\n    token: 1000\n}\nresources {\n    watchdog_timeout: 6\n    \
                process {\n        memory_used {\n            recovery: reboot\n        }\n    \
                }\n}\n";
    let config = parse_str("/etc/rotor/corosync.conf", text).unwrap();
    let mut cmap = CmapStore::new();
    config.load_into(&mut cmap).unwrap();
    // What libsam writes for a supervised process: set, changed, deleted by the client.
    let key = "resources.process.4120.state";
    cmap.set(key, Value::String("stopped".into()), Access::Client)
        .unwrap();
    cmap.set(key, Value::String("running".into()), Access::Client)
        .unwrap();
    cmap.set(
        "resources.process.4120.poll_period",
        Value::U64(1000),
        Access::Client,
    )
    .unwrap();
    assert_eq!(cmap.get(key), Some(&Value::String("running".into())));
    cmap.delete(key, Access::Client).unwrap();
    // The rest of resources{} still stands for the file.
    for key in [
        "resources.watchdog_timeout",
        "resources.process.memory_used.recovery",
        "resources.system.4120.state",
    ] {
        assert!(
            matches!(
                cmap.set(key, Value::String("x".into()), Access::Client),
                Err(CmapError::ConfigBacked { .. })
            ),
            "{key}"
        );
    }
}

#[test]
fn key_names_and_value_sizes_are_bounded() {
    assert!(matches!(
        check_key_name("ab"),
        Err(CmapError::KeyLength { len: 2, .. })
    ));
    assert!(check_key_name(&"a".repeat(KEY_NAME_LEN_MAX)).is_ok());
    assert!(matches!(
        check_key_name(&"a".repeat(KEY_NAME_LEN_MAX + 1)),
        Err(CmapError::KeyLength { len: 256, .. })
    ));
    let err = check_key_name("totem token").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cmap key \"totem token\": character ' ' is not allowed (allowed: a-z A-Z 0-9 . _ - / :)"
    );
    assert!(check_key_name("uidgid.config.uid.0-x/y:z_").is_ok());

    let mut cmap = CmapStore::new();
    cmap.set(
        "test.bin",
        Value::Binary(vec![0; VALUE_SIZE_MAX]),
        Access::Client,
    )
    .unwrap();
    let err = cmap
        .set(
            "test.bin2",
            Value::Binary(vec![0; VALUE_SIZE_MAX + 1]),
            Access::Client,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cmap key test.bin2: value of 16385 bytes exceeds the maximum of 16384 bytes"
    );
    // A string counts its terminating NUL, as in corosync.
    assert!(matches!(
        cmap.set(
            "test.str",
            Value::String("x".repeat(VALUE_SIZE_MAX)),
            Access::Client
        ),
        Err(CmapError::ValueTooLarge {
            size_bytes: 16385,
            ..
        })
    ));
    assert!(matches!(
        cmap.set("test.str", Value::String("a\0b".into()), Access::Client),
        Err(CmapError::StringWithNul { .. })
    ));
}

#[test]
fn iter_prefix_is_sorted_and_exact() {
    let mut cmap = CmapStore::new();
    for (k, v) in [
        ("totem.token", 3000u32),
        ("nodelist.node.1.nodeid", 2),
        ("nodelist.node.0.nodeid", 1),
        ("totem.join", 50),
    ] {
        cmap.set(k, Value::U32(v), Access::Daemon).unwrap();
    }
    cmap.set("totemx.other", Value::U8(1), Access::Daemon)
        .unwrap();
    let keys: Vec<&str> = cmap.iter_prefix("totem.").map(|(k, _)| k).collect();
    assert_eq!(keys, ["totem.join", "totem.token"]);
    let all: Vec<&str> = cmap.iter_prefix("").map(|(k, _)| k).collect();
    assert_eq!(
        all,
        [
            "nodelist.node.0.nodeid",
            "nodelist.node.1.nodeid",
            "totem.join",
            "totem.token",
            "totemx.other"
        ]
    );
    assert_eq!(cmap.iter_prefix("quorum.").count(), 0);
}

#[test]
fn track_key_reports_added_changed_deleted_in_order() {
    let mut cmap = CmapStore::new();
    let handle = cmap.track_add("totem.token", TrackFilter::KEY).unwrap();
    cmap.set("totem.token", Value::U32(3000), Access::Daemon)
        .unwrap();
    cmap.set("totem.token", Value::U32(3000), Access::Daemon)
        .unwrap(); // no change, no event
    cmap.set("totem.token", Value::U32(5000), Access::Client)
        .unwrap();
    cmap.set("totem.token_coefficient", Value::U32(650), Access::Daemon)
        .unwrap(); // other key
    cmap.delete("totem.token", Access::Client).unwrap();

    let e = cmap.poll_event().unwrap();
    assert_eq!(
        (e.track, e.key.as_str(), e.kind, e.old, e.new),
        (
            handle,
            "totem.token",
            ChangeKind::Added,
            None,
            Some(Value::U32(3000))
        )
    );
    let e = cmap.poll_event().unwrap();
    assert_eq!(
        (e.kind, e.old, e.new),
        (
            ChangeKind::Changed,
            Some(Value::U32(3000)),
            Some(Value::U32(5000))
        )
    );
    let e = cmap.poll_event().unwrap();
    assert_eq!(
        (e.kind, e.old, e.new),
        (ChangeKind::Deleted, Some(Value::U32(5000)), None)
    );
    assert_eq!(cmap.poll_event(), None);
}

#[test]
fn track_prefix_filters_kinds_and_stops_on_delete() {
    let mut cmap = CmapStore::new();
    let only_deleted = TrackFilter {
        added: false,
        changed: false,
        deleted: true,
        prefix: true,
    };
    let deletes = cmap.track_add("nodelist.", only_deleted).unwrap();
    let all = cmap.track_add("nodelist.", TrackFilter::PREFIX).unwrap();
    cmap.set("nodelist.node.0.nodeid", Value::U32(1), Access::Daemon)
        .unwrap();
    cmap.set("quorum.expected_votes", Value::U32(3), Access::Daemon)
        .unwrap();
    cmap.delete("nodelist.node.0.nodeid", Access::Daemon)
        .unwrap();
    let events: Vec<_> = std::iter::from_fn(|| cmap.poll_event())
        .map(|e| (e.track, e.kind))
        .collect();
    assert_eq!(
        events,
        [
            (all, ChangeKind::Added),
            (deletes, ChangeKind::Deleted),
            (all, ChangeKind::Deleted)
        ]
    );

    cmap.track_delete(all).unwrap();
    assert_eq!(cmap.track_delete(all), Err(CmapError::UnknownTrack(all)));
    cmap.set("nodelist.node.1.nodeid", Value::U32(2), Access::Daemon)
        .unwrap();
    assert_eq!(cmap.poll_event(), None);
}

#[test]
fn track_event_queue_is_bounded_and_counts_drops() {
    let mut cmap = CmapStore::new();
    cmap.track_add("test.", TrackFilter::PREFIX).unwrap();
    for i in 0..(TRACK_EVENT_QUEUE_MAX as u32 + 10) {
        cmap.set("test.counter", Value::U32(i), Access::Daemon)
            .unwrap();
    }
    assert_eq!(cmap.events_dropped_count(), 10);
    assert_eq!(
        std::iter::from_fn(|| cmap.poll_event()).count(),
        TRACK_EVENT_QUEUE_MAX
    );
}

#[test]
fn cmapctl_layout_for_every_type() {
    let cases: [(&str, Value, &str); 12] = [
        ("test.i8", Value::I8(-8), "test.i8 (i8) = -8"),
        ("test.u8", Value::U8(255), "test.u8 (u8) = 255"),
        ("test.i16", Value::I16(-16), "test.i16 (i16) = -16"),
        ("test.u16", Value::U16(5405), "test.u16 (u16) = 5405"),
        ("test.i32", Value::I32(-32), "test.i32 (i32) = -32"),
        ("totem.token", Value::U32(3000), "totem.token (u32) = 3000"),
        (
            "test.i64",
            Value::I64(i64::MIN),
            "test.i64 (i64) = -9223372036854775808",
        ),
        (
            "test.u64",
            Value::U64(u64::MAX),
            "test.u64 (u64) = 18446744073709551615",
        ),
        ("test.flt", Value::Float(1.5), "test.flt (flt) = 1.500000"),
        (
            "test.dbl",
            Value::Double(-0.1),
            "test.dbl (dbl) = -0.100000",
        ),
        (
            "totem.cluster_name",
            Value::String("demo".into()),
            "totem.cluster_name (str) = demo",
        ),
        ("test.bin", Value::Binary(b"ab".to_vec()), "test.bin (bin)"),
    ];
    for (key, value, line) in cases {
        assert_eq!(format_cmapctl_line(key, &value, false), line);
    }
    assert_eq!(
        format_cmapctl_line("test.dbl", &Value::Double(f64::INFINITY), false),
        "test.dbl (dbl) = inf"
    );
    assert_eq!(
        format_cmapctl_line("test.flt", &Value::Float(f32::NAN), false),
        "test.flt (flt) = nan"
    );
    assert_eq!(
        format_cmapctl_line("test.s", &Value::String(String::new()), false),
        "test.s (str) = "
    );
}

#[test]
fn cmapctl_binary_escapes_like_corosync() {
    let value = Value::Binary(vec![b'a', b'\\', b' ', 0x00, 0x1f, 0x7f, 0x80, 0xff]);
    assert_eq!(
        format_cmapctl_line("test.bin", &value, true),
        "test.bin (bin) = a\\\\ \\x00\\x1F\\x7F\\xFFFFFF80\\xFFFFFFFF"
    );
    assert_eq!(
        format_cmapctl_line("test.bin", &Value::Binary(vec![]), true),
        "test.bin (bin) = *empty*"
    );
}

#[test]
fn cmapctl_listing_is_sorted_by_key() {
    let mut cmap = CmapStore::new();
    cmap.set("totem.token", Value::U32(3000), Access::Daemon)
        .unwrap();
    cmap.set(
        "totem.cluster_name",
        Value::String("demo".into()),
        Access::Daemon,
    )
    .unwrap();
    cmap.set(
        "quorum.provider",
        Value::String("corosync_votequorum".into()),
        Access::Daemon,
    )
    .unwrap();
    assert_eq!(
        format_cmapctl(&cmap, "", false),
        "quorum.provider (str) = corosync_votequorum\ntotem.cluster_name (str) = demo\ntotem.token (u32) = 3000\n"
    );
    assert_eq!(
        format_cmapctl(&cmap, "totem.t", false),
        "totem.token (u32) = 3000\n"
    );
}

#[test]
fn inc_and_dec_wrap_integers_and_refuse_other_types() {
    let mut cmap = CmapStore::new();
    cmap.set("app.u8", Value::U8(255), Access::Client).unwrap();
    cmap.adjust("app.u8", 1, Access::Client).unwrap();
    assert_eq!(cmap.get("app.u8"), Some(&Value::U8(0)));
    cmap.adjust("app.u8", -1, Access::Client).unwrap();
    assert_eq!(cmap.get("app.u8"), Some(&Value::U8(255)));
    cmap.set("app.i64", Value::I64(i64::MIN), Access::Client)
        .unwrap();
    cmap.adjust("app.i64", -1, Access::Client).unwrap();
    assert_eq!(cmap.get("app.i64"), Some(&Value::I64(i64::MAX)));
    cmap.set("app.u32", Value::U32(7), Access::Client).unwrap();
    cmap.adjust("app.u32", 1, Access::Client).unwrap();
    assert_eq!(cmap.get("app.u32"), Some(&Value::U32(8)));
    cmap.set("app.str", Value::String("x".into()), Access::Client)
        .unwrap();
    assert!(matches!(
        cmap.adjust("app.str", 1, Access::Client),
        Err(CmapError::NotInteger { .. })
    ));
    assert!(matches!(
        cmap.adjust("app.none", 1, Access::Client),
        Err(CmapError::NotFound { .. })
    ));
    cmap.set("stats.x", Value::U64(1), Access::Daemon).unwrap();
    assert!(matches!(
        cmap.adjust("stats.x", 1, Access::Client),
        Err(CmapError::ReadOnly { .. })
    ));
}
