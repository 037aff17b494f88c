//! What corosync.conf may say: the sections a file may have and, for every known key, how its
//! text becomes a typed cmap value (the types corosync's `exec/coroparse.c` gives them).
//! totem{}'s keys come from totem-core's table (`SETTINGS` and `OTHER_KEYS`), quorum{}'s and
//! the nodelist's `quorum_votes` from votequorum's (`QUORUM_KEYS`, `NODE_VOTES_KEY`); nothing
//! here lists them.

use super::types::{KernelUdpSetting, PollModeSetting};
use totem_core::config::{KeyType, KeyUse, OTHER_KEYS, SETTINGS};
use totem_core::votequorum::{QuorumKey, QuorumKeyType, NODE_VOTES_KEY, QUORUM_KEYS};

use crate::cmap::{Value, ValueType};

/// Most links (`interface{}` sections, `ringN_addr` keys): corosync's `INTERFACE_MAX`.
pub use rotor_proto::link::LINK_COUNT_MAX;
/// Most nodes in a nodelist: corosync's `PROCESSOR_COUNT_MAX` with knet.
pub const NODE_COUNT_MAX: usize = 384;

/// The top-level sections a config may have. Every cmap key under one of them stands for the
/// file: a client's change would not take effect until the file is read again, so clients may
/// not write them ([`config_backed_prefixes`]).
pub const SECTIONS_KNOWN: [&str; 9] = [
    "totem",
    "logging",
    "quorum",
    "nodelist",
    "system",
    "uidgid",
    "resources",
    "nozzle",
    "rotor",
];

/// `totem.interface.<n>.mcastport` when unset.
pub const MCASTPORT_DEFAULT: u16 = 5405;
/// totemconfig.c: a multicast TTL is 1 unless `ttl` says otherwise.
pub const TTL_DEFAULT: u8 = 1;
/// The cluster name rotor uses when totem.cluster_name is unset (corosync has none; it then
/// cannot derive a `transport: udp` group, rotor derives it from this name).
pub const CLUSTER_NAME_DEFAULT: &str = "rotor";
/// `rotor.poll_spin_us` when unset. Measured on three nodes sharing two cores
/// (docs/BENCHMARKS.md, "poll spin"): agreed self-delivery p50 ≈ 234 µs with 50 µs spins,
/// ≈ 75 µs with 10 µs, ≈ 44 µs blocking — a spin holds the core the next hop of the token
/// needs.
pub const POLL_SPIN_US_DEFAULT: u32 = 10;

/// How a known key's text becomes a cmap value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    /// `u32`, with the unit named in errors (`""` for a plain count).
    U32(&'static str),
    U8,
    U16,
    I32,
    U64,
    /// A string that must be one of these.
    Choice(&'static [&'static str]),
    Text,
    /// totem.ip_dscp: 0..63 or a DSCP name, stored as `u8`.
    Dscp,
    /// system.priority: `max`, `min` or a nice value -20..19, stored as a string.
    Priority,
    /// rotor.dataplane_cores: comma-separated CPU numbers, stored as a string.
    Cores,
    /// quorum.auto_tie_breaker_node: `lowest`, `highest` or node ids, stored as a string.
    TieBreakerNode,
    /// rotor.metrics_listen: an address and TCP port (`127.0.0.1:9405`, `[::1]:9405`),
    /// stored as a string.
    SocketAddr,
}

impl Kind {
    /// The cmap type a value of this kind has.
    fn value_type(self) -> ValueType {
        match self {
            Kind::U32(_) => ValueType::U32,
            Kind::U8 | Kind::Dscp => ValueType::U8,
            Kind::U16 => ValueType::U16,
            Kind::I32 => ValueType::I32,
            Kind::U64 => ValueType::U64,
            Kind::Choice(_)
            | Kind::Text
            | Kind::Priority
            | Kind::Cores
            | Kind::TieBreakerNode
            | Kind::SocketAddr => ValueType::String,
        }
    }
}

const YES_NO: &[&str] = &["yes", "no"];
const ON_OFF: &[&str] = &["on", "off"];
/// logconfig.c accepts both spellings for the `to_*` switches.
const YES_NO_ON_OFF: &[&str] = &["yes", "no", "on", "off"];
const PRIORITIES: &[&str] = &[
    "alert", "crit", "debug", "emerg", "err", "info", "notice", "warning",
];

/// A section's known keys.
type Keys = &'static [(&'static str, Kind)];

const INTERFACE_KEYS: Keys = &[
    ("linknumber", Kind::U8),
    ("ttl", Kind::U8),
    ("knet_link_priority", Kind::U8),
    ("mcastport", Kind::U16),
    ("knet_ping_interval", Kind::U32("milliseconds")),
    ("knet_ping_timeout", Kind::U32("milliseconds")),
    ("knet_ping_precision", Kind::U32("")),
    ("knet_pong_count", Kind::U32("")),
    ("bindnetaddr", Kind::Text),
    ("mcastaddr", Kind::Text),
    ("broadcast", Kind::Text),
    // Checked where the interface is built, against `LinkTransportSetting::NAMES`, so that
    // corosync's values rotor has not (sctp, loopback) get their own explanation.
    ("knet_transport", Kind::Text),
];

const LOGGING_KEYS: Keys = &[
    ("to_stderr", Kind::Choice(YES_NO_ON_OFF)),
    ("to_logfile", Kind::Choice(YES_NO_ON_OFF)),
    ("to_syslog", Kind::Choice(YES_NO_ON_OFF)),
    ("fileline", Kind::Choice(ON_OFF)),
    ("function_name", Kind::Choice(ON_OFF)),
    ("blackbox", Kind::Choice(ON_OFF)),
    ("timestamp", Kind::Choice(&["on", "off", "hires"])),
    ("debug", Kind::Choice(&["on", "off", "trace"])),
    (
        "syslog_facility",
        Kind::Choice(&[
            "daemon", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
            "local7",
        ]),
    ),
    ("syslog_priority", Kind::Choice(PRIORITIES)),
    ("logfile_priority", Kind::Choice(PRIORITIES)),
    ("syslog_level", Kind::Choice(PRIORITIES)),
    ("logfile", Kind::Text),
    ("subsys", Kind::Text),
    ("tags", Kind::Text),
];

const SYSTEM_KEYS: Keys = &[
    ("sched_rr", Kind::Choice(YES_NO)),
    ("allow_knet_handle_fallback", Kind::Choice(YES_NO)),
    ("move_to_root_cgroup", Kind::Choice(&["yes", "no", "auto"])),
    ("qb_ipc_type", Kind::Choice(&["native", "shm", "socket"])),
    ("priority", Kind::Priority),
    ("state_dir", Kind::Text),
];

/// A node's keys besides `ring<N>_addr` ([`ring_index`]) and `quorum_votes` (votequorum's
/// table).
const NODE_KEYS: Keys = &[("nodeid", Kind::U32("")), ("name", Kind::Text)];

const NOZZLE_KEYS: Keys = &[
    ("name", Kind::Text),
    ("ipaddr", Kind::Text),
    ("ipprefix", Kind::Text),
    ("macaddr", Kind::Text),
    ("updown", Kind::Text),
    ("updown_script", Kind::Text),
];

const ROTOR_KEYS: Keys = &[
    ("dataplane_cores", Kind::Cores),
    ("poll_mode", Kind::Choice(&PollModeSetting::NAMES)),
    ("poll_spin_us", Kind::U32("microseconds")),
    ("kernel_udp", Kind::Choice(&KernelUdpSetting::NAMES)),
    ("metrics_listen", Kind::SocketAddr),
    (
        "xdp_unknown_source",
        Kind::Choice(&xdp_prog::UnknownSource::NAMES),
    ),
];

fn find(keys: Keys, key: &str) -> Option<Kind> {
    keys.iter().find(|(name, _)| *name == key).map(|(_, k)| *k)
}

fn totem_key_kind(key_type: KeyType) -> Kind {
    match key_type {
        KeyType::U32(unit) => Kind::U32(unit.name()),
        KeyType::I32 => Kind::I32,
        KeyType::U64 => Kind::U64,
        KeyType::Choice(words) => Kind::Choice(words),
        KeyType::Text => Kind::Text,
        KeyType::Dscp => Kind::Dscp,
    }
}

/// Every key of totem{} (not its interface{}) with its kind: the settings, then the rest.
fn totem_keys() -> impl Iterator<Item = (&'static str, Kind)> {
    let settings = SETTINGS.iter().map(|s| (s.name, Kind::U32(s.unit.name())));
    let others = OTHER_KEYS
        .iter()
        .map(|k| (k.name, totem_key_kind(k.key_type)));
    settings.chain(others)
}

pub(super) fn totem_kind(key: &str) -> Option<Kind> {
    totem_keys().find(|(name, _)| *name == key).map(|(_, k)| k)
}

/// A knet option of totem{}: accepted for compatibility, unused by rotor.
pub(super) fn totem_key_is_knet(key: &str) -> bool {
    OTHER_KEYS
        .iter()
        .any(|k| k.name == key && k.key_use == KeyUse::Knet)
}

pub(super) fn interface_kind(key: &str) -> Option<Kind> {
    find(INTERFACE_KEYS, key)
}

/// How a key of votequorum's table is read (bounds are checked when quorum{} is resolved, so
/// the error can say what the value is for).
fn quorum_key_kind(key: &QuorumKey) -> Kind {
    match key.key_type {
        QuorumKeyType::U32 { unit, .. } => Kind::U32(unit),
        QuorumKeyType::Flag => Kind::U8,
        QuorumKeyType::Choice(words) => Kind::Choice(words),
        QuorumKeyType::TieBreakerNode => Kind::TieBreakerNode,
        QuorumKeyType::Text => Kind::Text,
    }
}

/// quorum{}'s keys (not its device{}) with their kinds.
fn quorum_keys() -> impl Iterator<Item = (&'static str, Kind)> {
    QUORUM_KEYS
        .iter()
        .filter(|k| !k.name.starts_with("device."))
        .map(|k| (k.name, quorum_key_kind(k)))
}

pub(super) fn quorum_kind(key: &str) -> Option<Kind> {
    quorum_keys().find(|(name, _)| *name == key).map(|(_, k)| k)
}

/// quorum.device{}, at any depth (`path` under quorum.device, e.g. `votes`, `net.host`):
/// votequorum's keys as its table types them, corosync-qdevice's own as text.
pub(super) fn quorum_device_kind(path: &str) -> Kind {
    QUORUM_KEYS
        .iter()
        .find(|k| k.name.strip_prefix("device.") == Some(path))
        .map_or(Kind::Text, quorum_key_kind)
}

/// resources{}, at any depth: corosync types only `watchdog_timeout` (u32) and `poll_period`
/// (u64).
pub(super) fn resources_kind(key: &str) -> Kind {
    match key {
        "watchdog_timeout" => Kind::U32("seconds"),
        "poll_period" => Kind::U64,
        _ => Kind::Text,
    }
}

pub(super) fn logging_kind(key: &str) -> Option<Kind> {
    find(LOGGING_KEYS, key)
}

pub(super) fn system_kind(key: &str) -> Option<Kind> {
    find(SYSTEM_KEYS, key)
}

pub(super) fn node_kind(key: &str) -> Option<Kind> {
    if key == NODE_VOTES_KEY.name {
        return Some(quorum_key_kind(&NODE_VOTES_KEY));
    }
    find(NODE_KEYS, key).or_else(|| ring_index(key).map(|_| Kind::Text))
}

pub(super) fn nozzle_kind(key: &str) -> Option<Kind> {
    find(NOZZLE_KEYS, key)
}

pub(super) fn rotor_kind(key: &str) -> Option<Kind> {
    find(ROTOR_KEYS, key)
}

/// `ring3_addr` → 3.
pub(super) fn ring_index(key: &str) -> Option<usize> {
    let digits = key.strip_prefix("ring")?.strip_suffix("_addr")?;
    let index: usize = digits.parse().ok()?;
    (index < LINK_COUNT_MAX && digits.len() == 1).then_some(index)
}

/// The keys whose type is fixed whether or not the file sets them: every typed (not string)
/// key of totem{}, quorum{} and rotor{}.
pub(super) fn declared_types() -> Vec<(String, ValueType)> {
    let sections: [(&str, Vec<(&str, Kind)>); 3] = [
        ("totem", totem_keys().collect()),
        ("quorum", quorum_keys().collect()),
        ("rotor", ROTOR_KEYS.to_vec()),
    ];
    sections
        .iter()
        .flat_map(|(section, keys)| {
            keys.iter()
                .map(move |(key, kind)| (format!("{section}.{key}"), kind.value_type()))
        })
        .filter(|(_, value_type)| *value_type != ValueType::String)
        .collect()
}

/// Whether a reload may change `key` (a cmap key of the config) while the cluster runs: every
/// totem setting marked `volatile` in totem-core's table and every other totem{} key marked
/// `runtime` there; the nodelist (nodes added and removed, their votes), logging{}, uidgid{},
/// the keys of quorum{} marked `runtime` in votequorum's table (votes, expected votes,
/// two_node, the quorum device), resources{} and nozzle{} (kept in cmap) and keys outside any
/// section. Not:
/// totem's interface{} (link 0's addresses, port and multicast group are set up once),
/// system{} (scheduling and the state directory, read at start, as corosync), and rotor{}
/// (the dataplane's cores and poll mode).
pub fn runtime_changeable(key: &str) -> bool {
    let Some((section, rest)) = key.split_once('.') else {
        return true;
    };
    match section {
        "totem" => {
            if rest.starts_with("interface.") {
                return false;
            }
            if let Some(s) = SETTINGS.iter().find(|s| s.name == rest) {
                return s.volatile;
            }
            OTHER_KEYS
                .iter()
                .find(|k| k.name == rest)
                .is_none_or(|k| k.runtime)
        }
        // votequorum's table says which of quorum{} corosync re-reads on a reload.
        "quorum" => totem_core::votequorum::quorum_key_named(rest).is_none_or(|k| k.runtime),
        "nodelist" if rest.ends_with(".quorum_votes") => {
            totem_core::votequorum::NODE_VOTES_KEY.runtime
        }
        "system" | "rotor" => false,
        _ => true,
    }
}

/// `"totem."`, `"nodelist."`, …: the cmap prefixes the config file stands for.
pub fn config_backed_prefixes() -> impl Iterator<Item = String> {
    SECTIONS_KNOWN.iter().map(|s| format!("{s}."))
}

/// DSCP names of the IANA registry, as coroparse.c's `get_dscp_value` accepts them.
const DSCP_NAMES: [(&str, u8); 21] = [
    ("cs0", 0),
    ("cs1", 8),
    ("cs2", 16),
    ("cs3", 24),
    ("cs4", 32),
    ("cs5", 40),
    ("cs6", 48),
    ("cs7", 56),
    ("af11", 10),
    ("af12", 12),
    ("af13", 14),
    ("af21", 18),
    ("af22", 20),
    ("af23", 22),
    ("af31", 26),
    ("af32", 28),
    ("af33", 30),
    ("af41", 34),
    ("af42", 36),
    ("af43", 38),
    ("ef", 46),
];

/// Converts `text` to the cmap value of `kind`, or says what was expected.
pub(super) fn convert(kind: Kind, text: &str) -> Result<Value, String> {
    let expected = |what: String| format!("expected {what}, got {text:?}");
    match kind {
        Kind::U32(unit) => text.parse::<u32>().map(Value::U32).map_err(|_| {
            if unit.is_empty() {
                expected("an unsigned integer".into())
            } else {
                expected(format!("an unsigned integer ({unit})"))
            }
        }),
        Kind::U8 => text
            .parse::<u8>()
            .map(Value::U8)
            .map_err(|_| expected("an integer in 0..=255".into())),
        Kind::U16 => text
            .parse::<u16>()
            .map(Value::U16)
            .map_err(|_| expected("an integer in 0..=65535".into())),
        Kind::I32 => text
            .parse::<i32>()
            .map(Value::I32)
            .map_err(|_| expected("a signed 32-bit integer".into())),
        Kind::U64 => text
            .parse::<u64>()
            .map(Value::U64)
            .map_err(|_| expected("an unsigned integer".into())),
        Kind::Choice(choices) => {
            if choices.contains(&text) {
                Ok(Value::String(text.to_string()))
            } else {
                Err(expected(format!("one of {}", choices.join(", "))))
            }
        }
        Kind::Text => Ok(Value::String(text.to_string())),
        Kind::Dscp => DSCP_NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, v)| *v)
            .or_else(|| text.parse::<u8>().ok().filter(|v| *v <= 63))
            .map(Value::U8)
            .ok_or_else(|| expected("a DSCP value 0..=63 or a name such as ef, af41, cs6".into())),
        Kind::Priority => {
            let ok = text == "max"
                || text == "min"
                || text.parse::<i32>().is_ok_and(|n| (-20..=19).contains(&n));
            ok.then(|| Value::String(text.to_string()))
                .ok_or_else(|| expected("max, min or a nice value in -20..=19".into()))
        }
        Kind::Cores => {
            let ok = text.split(',').all(|c| c.trim().parse::<u16>().is_ok());
            ok.then(|| Value::String(text.to_string()))
                .ok_or_else(|| expected("a comma-separated list of CPU numbers such as 2,3".into()))
        }
        Kind::SocketAddr => text
            .parse::<std::net::SocketAddr>()
            .map(|_| Value::String(text.to_string()))
            .map_err(|_| {
                expected("an address and TCP port such as 127.0.0.1:9405 or [::1]:9405".into())
            }),
        Kind::TieBreakerNode => {
            let ok = text == "lowest"
                || text == "highest"
                || (!text.is_empty() && text.split_whitespace().all(|n| n.parse::<u32>().is_ok()));
            ok.then(|| Value::String(text.to_string())).ok_or_else(|| {
                expected("lowest, highest or a space-separated list of node ids".into())
            })
        }
    }
}
