//! corosync.conf: parsing, typed validation of the known keys, the flattening into cmap keys
//! and types exactly as corosync's `exec/coroparse.c` does it, and the values corosync derives
//! in `exec/totemconfig.c` (token timeout with `token_coefficient`, token retransmit, hold,
//! consensus).
//!
//! A config is input from outside: every problem is a `ConfigError` naming the file, the line,
//! the key or section and what was expected; unknown keys inside known sections are
//! `ConfigWarning`s (kept in cmap as strings, as corosync keeps them).

pub mod paths;
mod tree;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use thiserror::Error;

pub use rotor_proto::control::PollMode;

use crate::cmap::{Access, Cmap, CmapError, Value, ValueType};

pub use paths::{
    authkey_path, config_path, AUTHKEY_PATH_DEFAULT, AUTHKEY_PATH_ENV, CONFIG_PATH_DEFAULT,
    CONFIG_PATH_ENV,
};
pub use tree::{parse_tree, Item, Pair, Section, LINE_LEN_MAX, SECTION_DEPTH_MAX};

/// Largest config file read.
pub const FILE_SIZE_MAX: usize = 1 << 20;
/// Most links (`interface{}` sections, `ringN_addr` keys): corosync's `INTERFACE_MAX`.
pub const LINK_COUNT_MAX: usize = 8;
/// Most nodes in a nodelist: corosync's `PROCESSOR_COUNT_MAX` with knet.
pub const NODE_COUNT_MAX: usize = 384;

/// The top-level sections a config may have.
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

// Defaults of exec/totemconfig.c (`#define`s at its top) and corosync.conf(5).
pub const TOKEN_MS_DEFAULT: u32 = 3000;
pub const TOKEN_COEFFICIENT_MS_DEFAULT: u32 = 650;
pub const TOKEN_RETRANSMITS_BEFORE_LOSS_CONST_DEFAULT: u32 = 4;
pub const TOKEN_WARNING_PERCENT_DEFAULT: u32 = 75;
pub const JOIN_MS_DEFAULT: u32 = 50;
pub const SEND_JOIN_MS_DEFAULT: u32 = 0;
pub const MERGE_MS_DEFAULT: u32 = 200;
pub const DOWNCHECK_MS_DEFAULT: u32 = 1000;
pub const FAIL_RECV_CONST_DEFAULT: u32 = 2500;
pub const SEQNO_UNCHANGED_CONST_DEFAULT: u32 = 30;
pub const HEARTBEAT_FAILURES_ALLOWED_DEFAULT: u32 = 0;
pub const MAX_NETWORK_DELAY_MS_DEFAULT: u32 = 50;
pub const WINDOW_SIZE_DEFAULT: u32 = 50;
pub const MAX_MESSAGES_DEFAULT: u32 = 17;
pub const MISS_COUNT_CONST_DEFAULT: u32 = 5;
pub const NETMTU_BYTES_DEFAULT: u32 = 1500;
pub const MCASTPORT_DEFAULT: u16 = 5405;
/// totemconfig.c: a multicast TTL is 1 unless `ttl` says otherwise.
pub const TTL_DEFAULT: u8 = 1;
/// The cluster name rotor uses when totem.cluster_name is unset (corosync has none; it then
/// cannot derive a `transport: udp` group, rotor derives it from this name).
pub const CLUSTER_NAME_DEFAULT: &str = "rotor";
pub const LAST_MAN_STANDING_WINDOW_MS_DEFAULT: u32 = 10_000;
/// Linux's `HZ` as corosync's hold formula uses it (`1000/HZ` = 10 ms).
const KERNEL_HZ: u32 = 100;

/// What kind of problem a `ConfigError` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Syntax,
    UnbalancedBraces,
    UnknownSection,
    InvalidValue,
    DuplicateNodeid,
    DuplicateLinknumber,
    MissingRing0Addr,
    MissingNodeid,
    MixedAddressFamilies,
    MissingSubsys,
    Conflict,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    #[error("{file}:{line}: {subject}: {reason}")]
    Invalid {
        file: String,
        line: u32,
        subject: String,
        kind: ErrorKind,
        reason: String,
    },
}

impl ConfigError {
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Invalid { kind, .. } => Some(*kind),
        }
    }
}

/// A key rotor accepts but ignores or does not know; the config still loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub file: String,
    pub line: u32,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.key, self.message
        )
    }
}

/// totem.transport. `knet` and `udpu` send unicast to each member over kernel UDP (rotor has
/// no knet), `udp` multicasts, `xdp` is rotor's AF_XDP path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Knet,
    Udp,
    Udpu,
    Xdp,
}

/// totem.ip_version; for the `-4`/`-6` forms, the family tried first when resolving names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    Ipv4,
    Ipv6,
    Ipv4Then6,
    Ipv6Then4,
}

/// Totem timeouts and constants, explicit or derived as exec/totemconfig.c
/// (`totem_volatile_config_read`) derives them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotemTimeouts {
    /// `totem.token` plus `(nodes - 2) × token_coefficient` when the nodelist has 3 or more.
    pub token_ms: u32,
    pub token_coefficient_ms: u32,
    pub token_warning_percent: u32,
    pub token_retransmits_before_loss_const: u32,
    pub token_retransmit_ms: u32,
    pub hold_ms: u32,
    pub join_ms: u32,
    pub send_join_ms: u32,
    pub consensus_ms: u32,
    pub merge_ms: u32,
    pub downcheck_ms: u32,
    pub fail_recv_const: u32,
    pub seqno_unchanged_const: u32,
    pub heartbeat_failures_allowed: u32,
    pub max_network_delay_ms: u32,
    pub window_size: u32,
    pub max_messages: u32,
    pub miss_count_const: u32,
}

impl TotemTimeouts {
    /// The values corosync publishes as `runtime.config.totem.*` (all `u32`).
    pub fn runtime_entries(&self) -> Vec<(String, Value)> {
        let named = [
            ("token", self.token_ms),
            ("token_warning", self.token_warning_percent),
            (
                "token_retransmits_before_loss_const",
                self.token_retransmits_before_loss_const,
            ),
            ("token_retransmit", self.token_retransmit_ms),
            ("hold", self.hold_ms),
            ("join", self.join_ms),
            ("send_join", self.send_join_ms),
            ("consensus", self.consensus_ms),
            ("merge", self.merge_ms),
            ("downcheck", self.downcheck_ms),
            ("fail_recv_const", self.fail_recv_const),
            ("seqno_unchanged_const", self.seqno_unchanged_const),
            (
                "heartbeat_failures_allowed",
                self.heartbeat_failures_allowed,
            ),
            ("max_network_delay", self.max_network_delay_ms),
            ("window_size", self.window_size),
            ("max_messages", self.max_messages),
            ("miss_count_const", self.miss_count_const),
        ];
        named
            .iter()
            .map(|(n, v)| (format!("runtime.config.totem.{n}"), Value::U32(*v)))
            .collect()
    }
}

/// One `totem { interface { … } }` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Invariant: `< LINK_COUNT_MAX`, unique among interfaces.
    pub linknumber: u8,
    pub bindnetaddr: Option<String>,
    pub mcastaddr: Option<String>,
    pub mcastport: u16,
    pub ttl: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotemConfig {
    pub version: u32,
    pub cluster_name: Option<String>,
    pub transport: Transport,
    pub ip_version: IpVersion,
    pub crypto_cipher: String,
    pub crypto_hash: String,
    pub keyfile: Option<String>,
    pub clear_node_high_bit: bool,
    pub netmtu_bytes: u32,
    pub interfaces: Vec<InterfaceConfig>,
    pub timeouts: TotemTimeouts,
    /// The group `Dest::All` frames go to; `None`: unicast to each member. See
    /// [`MulticastConfig`] for when a cluster multicasts.
    pub multicast: Option<MulticastConfig>,
}

/// IP multicast on link 0. A cluster multicasts with `transport: udp` (as corosync: to
/// interface 0's `mcastaddr`, or to the group corosync derives from the cluster name) and with
/// `transport: xdp` when interface 0 has an `mcastaddr` (rotor's rule: an explicit group means
/// multicast); `udpu` and `knet` always unicast, whatever `mcastaddr` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastConfig {
    /// Invariant: a multicast address of the nodelist's family.
    pub addr: IpAddr,
    /// `ttl` (IPv4 TTL / IPv6 hop limit), 1 by default.
    pub ttl: u8,
    /// True when derived from the cluster name rather than configured.
    pub derived: bool,
}

/// corosync's group for a `transport: udp` link without `mcastaddr` (totemconfig.c
/// `get_cluster_mcast_addr`): a 16-bit id from the cluster name (shifted left and added, byte
/// by byte, each byte a signed C `char`), plus the link number; IPv4 `239.192.<id / 256>.<id %
/// 255>` (sic: the remainder by 255, as corosync computes it), IPv6 `ff15::<id>`.
pub fn corosync_default_group(cluster_name: &str, linknumber: u8, v6: bool) -> IpAddr {
    let mut value: i32 = 0;
    for &b in cluster_name.as_bytes() {
        value = value.wrapping_shl(1).wrapping_add(i32::from(b as i8));
    }
    let id = ((value & 0xffff) as u16).wrapping_add(u16::from(linknumber));
    if v6 {
        IpAddr::V6(std::net::Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, id))
    } else {
        IpAddr::V4(std::net::Ipv4Addr::new(
            239,
            192,
            (id >> 8) as u8,
            (id % 0xff) as u8,
        ))
    }
}

/// One `nodelist { node { … } }` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Position in the nodelist: the `<index>` of `nodelist.node.<index>.*`.
    pub index: usize,
    pub nodeid: Option<u32>,
    pub name: Option<String>,
    /// `ring0_addr` … `ring7_addr`. Invariant: `ring_addrs[0]` is set.
    pub ring_addrs: [Option<String>; LINK_COUNT_MAX],
    pub quorum_votes: Option<u32>,
}

/// quorum{}, with votequorum(5)'s defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumConfig {
    pub provider: Option<String>,
    pub expected_votes: Option<u32>,
    pub two_node: bool,
    /// Defaults to `two_node`, as votequorum(5) says.
    pub wait_for_all: bool,
    pub last_man_standing: bool,
    pub last_man_standing_window_ms: u32,
    pub auto_tie_breaker: bool,
    /// `lowest`, `highest` or a space-separated list of node ids.
    pub auto_tie_breaker_node: String,
    pub allow_downscale: bool,
    pub expected_votes_tracking: bool,
}

/// rotor{}: rotor's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotorConfig {
    /// CPUs the dataplane pins its poll loops to; empty = let the OS choose.
    pub dataplane_cores: Vec<u16>,
    pub poll_mode: PollMode,
    /// How long the adaptive poll loop spins after its last work before it sleeps.
    pub poll_spin_us: u32,
}

/// `rotor.poll_spin_us` when unset. Measured on three nodes sharing two cores (docs/BENCHMARKS.md,
/// "poll spin"): agreed self-delivery p50 ≈ 234 µs with 50 µs spins, ≈ 75 µs with 10 µs, ≈ 44 µs
/// blocking — a spin holds the core the next hop of the token needs.
pub const POLL_SPIN_US_DEFAULT: u32 = 10;

/// A parsed, validated config.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: String,
    pub tree: Section,
    /// The cmap keys and values the file stands for, as corosync flattens it.
    pub entries: BTreeMap<String, Value>,
    pub warnings: Vec<ConfigWarning>,
    pub totem: TotemConfig,
    pub nodes: Vec<NodeConfig>,
    pub quorum: QuorumConfig,
    pub rotor: RotorConfig,
    lines: BTreeMap<String, u32>,
}

impl Config {
    /// The line a cmap key of this config came from.
    pub fn line_of(&self, key: &str) -> Option<u32> {
        self.lines.get(key).copied()
    }

    /// Puts the config's keys into `cmap` (as the daemon), declares the types of the known
    /// typed keys so clients cannot store text in them, and publishes the derived
    /// `runtime.config.totem.*` values.
    pub fn load_into(&self, cmap: &mut Cmap) -> Result<(), CmapError> {
        for (key, value_type) in declared_types() {
            cmap.declare_type(&key, value_type);
        }
        for (key, value) in &self.entries {
            cmap.set(key, value.clone(), Access::Daemon)?;
        }
        for (key, value) in self.totem.timeouts.runtime_entries() {
            cmap.set(&key, value, Access::Daemon)?;
        }
        Ok(())
    }
}

/// Reads and parses the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let read_error = |reason: String| ConfigError::Read {
        path: name.clone(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| read_error(e.to_string()))?;
    if bytes.len() > FILE_SIZE_MAX {
        return Err(read_error(format!(
            "file is larger than {FILE_SIZE_MAX} bytes"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| read_error(format!("not UTF-8: {e}")))?;
    parse_str(&name, &text)
}

/// Parses config text; `file` names it in errors and warnings.
pub fn parse_str(file: &str, text: &str) -> Result<Config, ConfigError> {
    let tree = parse_tree(file, text)?;
    let mut b = Builder {
        file,
        entries: BTreeMap::new(),
        lines: BTreeMap::new(),
        warnings: Vec::new(),
        nodes: Vec::new(),
        interfaces: Vec::new(),
    };
    b.on_file(&tree)?;
    let mut totem = b.totem_config()?;
    b.check_nodes(totem.ip_version)?;
    totem.multicast = b.multicast(&totem)?;
    if let Some(m) = totem.multicast.filter(|m| m.derived) {
        // totemconfig.c stores the derived group back, so cmap shows where udp sends.
        b.entries.insert(
            "totem.interface.0.mcastaddr".into(),
            Value::String(m.addr.to_string()),
        );
    }
    let quorum = b.quorum_config();
    let rotor = b.rotor_config();
    let nodes = b.nodes.iter().map(|n| n.config.clone()).collect();
    Ok(Config {
        file: file.to_string(),
        tree,
        entries: b.entries,
        warnings: b.warnings,
        totem,
        nodes,
        quorum,
        rotor,
        lines: b.lines,
    })
}

/// How a known key's text becomes a cmap value.
#[derive(Clone, Copy, Debug)]
enum Kind {
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
}

const YES_NO: &[&str] = &["yes", "no"];
const ON_OFF: &[&str] = &["on", "off"];
/// logconfig.c accepts both spellings for the `to_*` switches.
const YES_NO_ON_OFF: &[&str] = &["yes", "no", "on", "off"];

fn totem_kind(key: &str) -> Option<Kind> {
    Some(match key {
        "token" | "token_retransmit" | "hold" | "join" | "send_join" | "consensus" | "merge"
        | "downcheck" | "max_network_delay" | "token_coefficient" => Kind::U32("milliseconds"),
        "knet_pmtud_interval" => Kind::U32("seconds"),
        "netmtu" | "knet_mtu" | "knet_compression_threshold" => Kind::U32("bytes"),
        "token_warning" => Kind::U32("percent"),
        "version"
        | "nodeid"
        | "threads"
        | "token_retransmits_before_loss_const"
        | "fail_recv_const"
        | "seqno_unchanged_const"
        | "heartbeat_failures_allowed"
        | "window_size"
        | "max_messages"
        | "miss_count_const" => Kind::U32(""),
        "knet_compression_level" => Kind::I32,
        "config_version" => Kind::U64,
        "ip_dscp" => Kind::Dscp,
        "ip_version" => Kind::Choice(&["ipv4", "ipv6", "ipv4-6", "ipv6-4"]),
        "transport" => Kind::Choice(&["knet", "udp", "udpu", "xdp"]),
        "crypto_cipher" => Kind::Choice(&["none", "aes256", "aes192", "aes128"]),
        "crypto_hash" => Kind::Choice(&["none", "md5", "sha1", "sha256", "sha384", "sha512"]),
        "crypto_model" => Kind::Choice(&["nss", "openssl"]),
        "secauth" => Kind::Choice(ON_OFF),
        "clear_node_high_bit" | "block_unlisted_ips" | "cancel_token_hold_on_retransmit" => {
            Kind::Choice(YES_NO)
        }
        "link_mode" => Kind::Choice(&["passive", "active", "rr"]),
        "cluster_name" | "keyfile" | "knet_compression_model" => Kind::Text,
        _ => return None,
    })
}

fn interface_kind(key: &str) -> Option<Kind> {
    Some(match key {
        "linknumber" | "ttl" | "knet_link_priority" => Kind::U8,
        "mcastport" => Kind::U16,
        "knet_ping_interval" | "knet_ping_timeout" => Kind::U32("milliseconds"),
        "knet_ping_precision" | "knet_pong_count" => Kind::U32(""),
        "bindnetaddr" | "mcastaddr" | "broadcast" | "knet_transport" => Kind::Text,
        _ => return None,
    })
}

fn quorum_kind(key: &str) -> Option<Kind> {
    Some(match key {
        "expected_votes" | "votes" => Kind::U32(""),
        "last_man_standing_window" | "leaving_timeout" => Kind::U32("milliseconds"),
        "two_node"
        | "expected_votes_tracking"
        | "allow_downscale"
        | "wait_for_all"
        | "auto_tie_breaker"
        | "last_man_standing" => Kind::U8,
        "provider" => Kind::Choice(&["corosync_votequorum"]),
        "auto_tie_breaker_node" => Kind::TieBreakerNode,
        _ => return None,
    })
}

fn quorum_device_kind(key: &str) -> Kind {
    match key {
        "timeout" | "sync_timeout" => Kind::U32("milliseconds"),
        "votes" => Kind::U32(""),
        "master_wins" => Kind::U8,
        _ => Kind::Text,
    }
}

fn logging_kind(key: &str) -> Option<Kind> {
    Some(match key {
        "to_stderr" | "to_logfile" | "to_syslog" => Kind::Choice(YES_NO_ON_OFF),
        "fileline" | "function_name" | "blackbox" => Kind::Choice(ON_OFF),
        "timestamp" => Kind::Choice(&["on", "off", "hires"]),
        "debug" => Kind::Choice(&["on", "off", "trace"]),
        "syslog_facility" => Kind::Choice(&[
            "daemon", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
            "local7",
        ]),
        "syslog_priority" | "logfile_priority" | "syslog_level" => Kind::Choice(&[
            "alert", "crit", "debug", "emerg", "err", "info", "notice", "warning",
        ]),
        "logfile" | "subsys" | "tags" => Kind::Text,
        _ => return None,
    })
}

fn system_kind(key: &str) -> Option<Kind> {
    Some(match key {
        "sched_rr" | "allow_knet_handle_fallback" => Kind::Choice(YES_NO),
        "move_to_root_cgroup" => Kind::Choice(&["yes", "no", "auto"]),
        "qb_ipc_type" => Kind::Choice(&["native", "shm", "socket"]),
        "priority" => Kind::Priority,
        "state_dir" => Kind::Text,
        _ => return None,
    })
}

fn node_kind(key: &str) -> Option<Kind> {
    Some(match key {
        "nodeid" | "quorum_votes" => Kind::U32(""),
        "name" => Kind::Text,
        _ if ring_index(key).is_some() => Kind::Text,
        _ => return None,
    })
}

fn nozzle_kind(key: &str) -> Option<Kind> {
    matches!(
        key,
        "name" | "ipaddr" | "ipprefix" | "macaddr" | "updown" | "updown_script"
    )
    .then_some(Kind::Text)
}

fn rotor_kind(key: &str) -> Option<Kind> {
    Some(match key {
        "dataplane_cores" => Kind::Cores,
        "poll_mode" => Kind::Choice(&PollMode::NAMES),
        "poll_spin_us" => Kind::U32("microseconds"),
        _ => return None,
    })
}

/// `ring3_addr` → 3.
fn ring_index(key: &str) -> Option<usize> {
    let digits = key.strip_prefix("ring")?.strip_suffix("_addr")?;
    let index: usize = digits.parse().ok()?;
    (index < LINK_COUNT_MAX && digits.len() == 1).then_some(index)
}

/// The keys whose type is fixed whether or not the file sets them.
fn declared_types() -> Vec<(String, ValueType)> {
    const TOTEM: [&str; 23] = [
        "version",
        "nodeid",
        "threads",
        "token",
        "token_coefficient",
        "token_retransmit",
        "token_warning",
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
        "netmtu",
        "knet_mtu",
    ];
    const QUORUM_U8: [&str; 6] = [
        "two_node",
        "expected_votes_tracking",
        "allow_downscale",
        "wait_for_all",
        "auto_tie_breaker",
        "last_man_standing",
    ];
    let mut out: Vec<(String, ValueType)> = TOTEM
        .iter()
        .map(|k| (format!("totem.{k}"), ValueType::U32))
        .collect();
    out.push(("totem.config_version".into(), ValueType::U64));
    for k in [
        "expected_votes",
        "votes",
        "last_man_standing_window",
        "leaving_timeout",
    ] {
        out.push((format!("quorum.{k}"), ValueType::U32));
    }
    out.extend(
        QUORUM_U8
            .iter()
            .map(|k| (format!("quorum.{k}"), ValueType::U8)),
    );
    out
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
fn convert(kind: Kind, text: &str) -> Result<Value, String> {
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

/// A node as parsed, with the lines the cross-checks name.
struct NodeEntry {
    config: NodeConfig,
    line: u32,
    nodeid_line: u32,
    ring_lines: [u32; LINK_COUNT_MAX],
}

struct Builder<'a> {
    file: &'a str,
    entries: BTreeMap<String, Value>,
    lines: BTreeMap<String, u32>,
    warnings: Vec<ConfigWarning>,
    nodes: Vec<NodeEntry>,
    /// (linknumber, line of the interface section).
    interfaces: Vec<(InterfaceConfig, u32)>,
}

impl Builder<'_> {
    fn error(&self, line: u32, subject: &str, kind: ErrorKind, reason: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            line,
            subject: subject.to_string(),
            kind,
            reason,
        }
    }

    fn warn(&mut self, line: u32, key: &str, message: &str) {
        self.warnings.push(ConfigWarning {
            file: self.file.to_string(),
            line,
            key: key.to_string(),
            message: message.to_string(),
        });
    }

    fn store(&mut self, key: String, value: Value, line: u32) {
        self.lines.insert(key.clone(), line);
        self.entries.insert(key, value);
    }

    /// Converts and stores `path.key`; `None` kind = unknown key: warned and kept as a string.
    fn store_pair(
        &mut self,
        path: &str,
        pair: &Pair,
        kind: Option<Kind>,
    ) -> Result<(), ConfigError> {
        let key = format!("{path}.{}", pair.key);
        let value = match kind {
            Some(kind) => convert(kind, &pair.value)
                .map_err(|r| self.error(pair.line, &key, ErrorKind::InvalidValue, r))?,
            None => {
                self.warn(
                    pair.line,
                    &key,
                    "unknown key, ignored (kept in cmap as a string)",
                );
                Value::String(pair.value.clone())
            }
        };
        self.store(key, value, pair.line);
        Ok(())
    }

    fn no_subsections(&self, section: &Section, path: &str) -> Result<(), ConfigError> {
        match section.sections().next() {
            Some(sub) => Err(self.error(
                sub.line,
                &format!("{path}.{}", sub.name),
                ErrorKind::UnknownSection,
                format!("no subsections are allowed in {path}"),
            )),
            None => Ok(()),
        }
    }

    fn unknown_section(&self, sub: &Section, path: &str, known: &str) -> ConfigError {
        let subject = if path.is_empty() {
            sub.name.clone()
        } else {
            format!("{path}.{}", sub.name)
        };
        self.error(
            sub.line,
            &subject,
            ErrorKind::UnknownSection,
            format!("unknown section (expected {known})"),
        )
    }

    fn on_file(&mut self, root: &Section) -> Result<(), ConfigError> {
        for item in &root.items {
            match item {
                Item::Pair(pair) => {
                    self.warn(
                        pair.line,
                        &pair.key,
                        "key outside any section, ignored (kept in cmap as a string)",
                    );
                    self.store(
                        pair.key.clone(),
                        Value::String(pair.value.clone()),
                        pair.line,
                    );
                }
                Item::Section(s) => match s.name.as_str() {
                    "totem" => self.on_totem(s)?,
                    "logging" => self.on_logging(s)?,
                    "quorum" => self.on_quorum(s)?,
                    "nodelist" => self.on_nodelist(s)?,
                    "uidgid" => self.on_uidgid(s)?,
                    "resources" => self.on_free_form(s, "resources")?,
                    "system" => self.on_flat(s, "system", system_kind)?,
                    "nozzle" => self.on_flat(s, "nozzle", nozzle_kind)?,
                    "rotor" => self.on_flat(s, "rotor", rotor_kind)?,
                    _ => {
                        return Err(self.unknown_section(
                            s,
                            "",
                            &format!("one of {}", SECTIONS_KNOWN.join(", ")),
                        ))
                    }
                },
            }
        }
        Ok(())
    }

    /// A section of pairs only, typed by `kind_of`.
    fn on_flat(
        &mut self,
        s: &Section,
        path: &str,
        kind_of: fn(&str) -> Option<Kind>,
    ) -> Result<(), ConfigError> {
        self.no_subsections(s, path)?;
        for pair in s.pairs() {
            self.store_pair(path, pair, kind_of(&pair.key))?;
        }
        Ok(())
    }

    fn on_totem(&mut self, s: &Section) -> Result<(), ConfigError> {
        for item in &s.items {
            match item {
                Item::Pair(pair) => {
                    let kind = totem_kind(&pair.key);
                    self.store_pair("totem", pair, kind)?;
                    if kind.is_some() && pair.key.starts_with("knet_") {
                        let key = format!("totem.{}", pair.key);
                        self.warn(
                            pair.line,
                            &key,
                            "knet option accepted for compatibility, unused by rotor",
                        );
                    }
                }
                Item::Section(sub) if sub.name == "interface" => self.on_interface(sub)?,
                Item::Section(sub) => return Err(self.unknown_section(sub, "totem", "interface")),
            }
        }
        Ok(())
    }

    /// coroparse.c keeps an interface's keys until its `}` and stores them as
    /// `totem.interface.<linknumber>.<key>`; unknown keys go to `totem.interface.<key>`.
    fn on_interface(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.no_subsections(s, "totem.interface")?;
        let mut linknumber = 0u8;
        for pair in s.pairs().filter(|p| p.key == "linknumber") {
            let key = "totem.interface.linknumber";
            match pair.value.parse::<u8>() {
                Ok(n) if usize::from(n) < LINK_COUNT_MAX => linknumber = n,
                _ => {
                    let reason = format!(
                        "expected a link number in 0..={}, got {:?}",
                        LINK_COUNT_MAX - 1,
                        pair.value
                    );
                    return Err(self.error(pair.line, key, ErrorKind::InvalidValue, reason));
                }
            }
        }
        if let Some((_, first_line)) = self
            .interfaces
            .iter()
            .find(|(i, _)| i.linknumber == linknumber)
        {
            let reason = format!(
                "linknumber {linknumber} is already used by the interface at line {first_line}"
            );
            return Err(self.error(
                s.line,
                "totem.interface",
                ErrorKind::DuplicateLinknumber,
                reason,
            ));
        }
        let mut interface = InterfaceConfig {
            linknumber,
            bindnetaddr: None,
            mcastaddr: None,
            mcastport: MCASTPORT_DEFAULT,
            ttl: None,
        };
        let path = format!("totem.interface.{linknumber}");
        for pair in s.pairs().filter(|p| p.key != "linknumber") {
            match interface_kind(&pair.key) {
                Some(kind) => {
                    self.store_pair(&path, pair, Some(kind))?;
                    if pair.key.starts_with("knet_") {
                        let key = format!("{path}.{}", pair.key);
                        self.warn(
                            pair.line,
                            &key,
                            "knet option accepted for compatibility, unused by rotor",
                        );
                    }
                    match (
                        pair.key.as_str(),
                        &self.entries[&format!("{path}.{}", pair.key)],
                    ) {
                        ("bindnetaddr", Value::String(v)) => {
                            interface.bindnetaddr = Some(v.clone())
                        }
                        ("mcastaddr", Value::String(v)) => interface.mcastaddr = Some(v.clone()),
                        ("mcastport", Value::U16(v)) => interface.mcastport = *v,
                        ("ttl", Value::U8(v)) => interface.ttl = Some(*v),
                        _ => {}
                    }
                }
                None => self.store_pair("totem.interface", pair, None)?,
            }
        }
        self.interfaces.push((interface, s.line));
        Ok(())
    }

    fn on_logging(&mut self, s: &Section) -> Result<(), ConfigError> {
        for item in &s.items {
            match item {
                Item::Pair(pair) => self.store_pair("logging", pair, logging_kind(&pair.key))?,
                Item::Section(sub) if sub.name == "logger_subsys" => self.on_logger_subsys(sub)?,
                Item::Section(sub) => {
                    return Err(self.unknown_section(sub, "logging", "logger_subsys"))
                }
            }
        }
        Ok(())
    }

    /// Stored as `logging.logger_subsys.<SUBSYS>.<key>`, all strings (coroparse.c).
    fn on_logger_subsys(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.no_subsections(s, "logging.logger_subsys")?;
        let Some(subsys) = s.pairs().filter(|p| p.key == "subsys").last() else {
            let reason = "logger_subsys section has no subsys key".to_string();
            return Err(self.error(
                s.line,
                "logging.logger_subsys",
                ErrorKind::MissingSubsys,
                reason,
            ));
        };
        let path = format!("logging.logger_subsys.{}", subsys.value);
        for pair in s.pairs() {
            self.store_pair(&path, pair, logging_kind(&pair.key))?;
        }
        Ok(())
    }

    fn on_quorum(&mut self, s: &Section) -> Result<(), ConfigError> {
        for item in &s.items {
            match item {
                Item::Pair(pair) => self.store_pair("quorum", pair, quorum_kind(&pair.key))?,
                Item::Section(sub) if sub.name == "device" => {
                    self.warn(
                        sub.line,
                        "quorum.device",
                        "qdevice is not supported by rotor; kept in cmap only",
                    );
                    self.on_nested(sub, "quorum.device", quorum_device_kind)?;
                }
                Item::Section(sub) => return Err(self.unknown_section(sub, "quorum", "device")),
            }
        }
        Ok(())
    }

    /// resources{}: corosync types only `watchdog_timeout` (u32) and `poll_period` (u64).
    fn on_free_form(&mut self, s: &Section, path: &str) -> Result<(), ConfigError> {
        self.on_nested(s, path, |key| match key {
            "watchdog_timeout" => Kind::U32("seconds"),
            "poll_period" => Kind::U64,
            _ => Kind::Text,
        })
    }

    /// Any nesting, every key stored under its path with the type `kind_of` gives it.
    fn on_nested(
        &mut self,
        s: &Section,
        path: &str,
        kind_of: fn(&str) -> Kind,
    ) -> Result<(), ConfigError> {
        for item in &s.items {
            match item {
                Item::Pair(pair) => self.store_pair(path, pair, Some(kind_of(&pair.key)))?,
                Item::Section(sub) => {
                    self.on_nested(sub, &format!("{path}.{}", sub.name), kind_of)?
                }
            }
        }
        Ok(())
    }

    /// coroparse.c resolves names and stores `uidgid.config.uid.<uid>` = 1 (u8).
    fn on_uidgid(&mut self, s: &Section) -> Result<(), ConfigError> {
        self.no_subsections(s, "uidgid")?;
        for pair in s.pairs() {
            let (database, what) = match pair.key.as_str() {
                "uid" => ("/etc/passwd", "user"),
                "gid" => ("/etc/group", "group"),
                _ => {
                    let key = format!("uidgid.{}", pair.key);
                    return Err(self.error(
                        pair.line,
                        &key,
                        ErrorKind::UnknownSection,
                        "only uid and gid are allowed in uidgid".into(),
                    ));
                }
            };
            let id = pair
                .value
                .parse::<u32>()
                .ok()
                .or_else(|| lookup_id(database, &pair.value));
            let key = format!("uidgid.{}", pair.key);
            let Some(id) = id else {
                let reason = format!("{what} {:?} is not found in {database}", pair.value);
                return Err(self.error(pair.line, &key, ErrorKind::InvalidValue, reason));
            };
            self.store(
                format!("uidgid.config.{}.{id}", pair.key),
                Value::U8(1),
                pair.line,
            );
        }
        Ok(())
    }

    fn on_nodelist(&mut self, s: &Section) -> Result<(), ConfigError> {
        for item in &s.items {
            match item {
                Item::Pair(pair) => self.store_pair("nodelist", pair, None)?,
                Item::Section(sub) if sub.name == "node" => self.on_node(sub)?,
                Item::Section(sub) => return Err(self.unknown_section(sub, "nodelist", "node")),
            }
        }
        Ok(())
    }

    fn on_node(&mut self, s: &Section) -> Result<(), ConfigError> {
        let index = self.nodes.len();
        let path = format!("nodelist.node.{index}");
        if index >= NODE_COUNT_MAX {
            return Err(self.error(
                s.line,
                &path,
                ErrorKind::Conflict,
                format!("more than {NODE_COUNT_MAX} nodes"),
            ));
        }
        self.no_subsections(s, &path)?;
        let mut node = NodeEntry {
            config: NodeConfig {
                index,
                nodeid: None,
                name: None,
                ring_addrs: Default::default(),
                quorum_votes: None,
            },
            line: s.line,
            nodeid_line: s.line,
            ring_lines: [0; LINK_COUNT_MAX],
        };
        for pair in s.pairs() {
            self.store_pair(&path, pair, node_kind(&pair.key))?;
            match (
                pair.key.as_str(),
                &self.entries[&format!("{path}.{}", pair.key)],
            ) {
                ("nodeid", Value::U32(id)) => {
                    node.config.nodeid = Some(*id);
                    node.nodeid_line = pair.line;
                }
                ("quorum_votes", Value::U32(v)) => node.config.quorum_votes = Some(*v),
                ("name", Value::String(v)) => node.config.name = Some(v.clone()),
                (key, Value::String(v)) => {
                    if let Some(ring) = ring_index(key) {
                        node.config.ring_addrs[ring] = Some(v.clone());
                        node.ring_lines[ring] = pair.line;
                    }
                }
                _ => {}
            }
        }
        self.nodes.push(node);
        Ok(())
    }

    /// Every node has a ring0_addr and (with knet and xdp) a nodeid, nodeids are unique
    /// (totemconfig.c `check_for_duplicate_nodeids`), and literal addresses all have one family.
    fn check_nodes(&self, ip_version: IpVersion) -> Result<(), ConfigError> {
        let transport = self.entries.get("totem.transport").and_then(|v| match v {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        });
        let nodeid_required = matches!(transport, None | Some("knet") | Some("xdp"));
        let mut family_first: Option<(IpAddr, String)> = None;
        for (position, node) in self.nodes.iter().enumerate() {
            let path = format!("nodelist.node.{position}");
            if node.config.ring_addrs[0].is_none() {
                return Err(self.error(
                    node.line,
                    &path,
                    ErrorKind::MissingRing0Addr,
                    "node has no ring0_addr".into(),
                ));
            }
            match node.config.nodeid {
                None if nodeid_required => {
                    let reason = format!(
                        "node has no nodeid (required with transport {})",
                        transport.unwrap_or("knet")
                    );
                    return Err(self.error(node.line, &path, ErrorKind::MissingNodeid, reason));
                }
                Some(id) => {
                    if let Some(first) = self.nodes[..position]
                        .iter()
                        .position(|n| n.config.nodeid == Some(id))
                    {
                        let reason = format!(
                            "nodeid {id} is already used by nodelist.node.{first} (line {})",
                            self.nodes[first].nodeid_line
                        );
                        return Err(self.error(
                            node.nodeid_line,
                            &format!("{path}.nodeid"),
                            ErrorKind::DuplicateNodeid,
                            reason,
                        ));
                    }
                }
                None => {}
            }
            for (ring, addr) in node.config.ring_addrs.iter().enumerate() {
                let Some(addr) = addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                let key = format!("{path}.ring{ring}_addr");
                let line = node.ring_lines[ring];
                let family = |a: &IpAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
                let wanted_v4 = match ip_version {
                    IpVersion::Ipv4 => Some(true),
                    IpVersion::Ipv6 => Some(false),
                    _ => None,
                };
                if wanted_v4.is_some_and(|v4| v4 != addr.is_ipv4()) {
                    let reason = format!(
                        "address {addr} is {} but totem.ip_version allows only the other family",
                        family(&addr)
                    );
                    return Err(self.error(line, &key, ErrorKind::MixedAddressFamilies, reason));
                }
                match &family_first {
                    None => family_first = Some((addr, key)),
                    Some((first, first_key)) if first.is_ipv4() != addr.is_ipv4() => {
                        let reason = format!(
                            "address {addr} is {} but {first_key} is {} ({first}); one cluster uses one address family",
                            family(&addr),
                            family(first)
                        );
                        return Err(self.error(
                            line,
                            &key,
                            ErrorKind::MixedAddressFamilies,
                            reason,
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    fn u32_or(&self, key: &str, default: u32) -> u32 {
        match self.entries.get(key) {
            Some(Value::U32(v)) => *v,
            _ => default,
        }
    }

    fn u8_flag(&self, key: &str) -> bool {
        matches!(self.entries.get(key), Some(Value::U8(v)) if *v != 0)
    }

    fn str_of(&self, key: &str) -> Option<&str> {
        match self.entries.get(key) {
            Some(Value::String(v)) => Some(v),
            _ => None,
        }
    }

    fn totem_config(&self) -> Result<TotemConfig, ConfigError> {
        let transport = match self.str_of("totem.transport") {
            Some("udp") => Transport::Udp,
            Some("udpu") => Transport::Udpu,
            Some("xdp") => Transport::Xdp,
            _ => Transport::Knet,
        };
        // totemconfig.c `totem_config_get_ip_version`: ipv6-4 unless udp (ipv4).
        let ip_version = match (self.str_of("totem.ip_version"), transport) {
            (Some("ipv4"), _) => IpVersion::Ipv4,
            (Some("ipv6"), _) => IpVersion::Ipv6,
            (Some("ipv4-6"), _) => IpVersion::Ipv4Then6,
            (Some("ipv6-4"), _) => IpVersion::Ipv6Then4,
            (_, Transport::Udp) => IpVersion::Ipv4,
            _ => IpVersion::Ipv6Then4,
        };
        let version = self.u32_or("totem.version", 2);
        if version != 2 {
            let line = self.lines.get("totem.version").copied().unwrap_or(0);
            let reason = format!("expected 2 (the only totem protocol version), got \"{version}\"");
            return Err(self.error(line, "totem.version", ErrorKind::InvalidValue, reason));
        }
        // totemconfig.c `totem_get_crypto`: rotor encrypts by default, like corosync built
        // without ENABLE_UNENCRYPTED; `secauth: off` turns both off, explicit keys win.
        let (mut cipher, mut hash) = ("aes256", "sha256");
        if self.str_of("totem.secauth") == Some("off") {
            (cipher, hash) = ("none", "none");
        }
        cipher = self.str_of("totem.crypto_cipher").unwrap_or(cipher);
        hash = self.str_of("totem.crypto_hash").unwrap_or(hash);
        if cipher != "none" && hash == "none" {
            let key = if self.lines.contains_key("totem.crypto_hash") {
                "totem.crypto_hash"
            } else {
                "totem.crypto_cipher"
            };
            let line = self.lines.get(key).copied().unwrap_or(0);
            let reason = format!("crypto_cipher {cipher} requires a crypto_hash other than none");
            return Err(self.error(line, key, ErrorKind::Conflict, reason));
        }
        let timeouts = self.totem_timeouts()?;
        let mut interfaces: Vec<InterfaceConfig> =
            self.interfaces.iter().map(|(i, _)| i.clone()).collect();
        interfaces.sort_by_key(|i| i.linknumber);
        Ok(TotemConfig {
            version,
            cluster_name: self.str_of("totem.cluster_name").map(str::to_string),
            transport,
            ip_version,
            crypto_cipher: cipher.to_string(),
            crypto_hash: hash.to_string(),
            keyfile: self.str_of("totem.keyfile").map(str::to_string),
            clear_node_high_bit: self.str_of("totem.clear_node_high_bit") == Some("yes"),
            netmtu_bytes: self.u32_or("totem.netmtu", NETMTU_BYTES_DEFAULT),
            interfaces,
            timeouts,
            multicast: None,
        })
    }

    /// Whether and where link 0 multicasts ([`MulticastConfig`]), with totemconfig.c's checks:
    /// the group is a multicast address of the nodelist's family (the first literal address;
    /// without one, the family `ip_version` tries first), and `ttl` other than 1 needs
    /// multicast. Run after `check_nodes`.
    fn multicast(&self, totem: &TotemConfig) -> Result<Option<MulticastConfig>, ConfigError> {
        let link0 = totem.interfaces.iter().find(|i| i.linknumber == 0);
        let mcastaddr = link0.and_then(|i| i.mcastaddr.as_deref());
        let ttl = link0.and_then(|i| i.ttl);
        let line = |key: &str| self.lines.get(key).copied().unwrap_or(0);
        let multicast = match totem.transport {
            Transport::Udp => true,
            Transport::Xdp => mcastaddr.is_some(),
            Transport::Udpu | Transport::Knet => false,
        };
        if !multicast {
            if ttl.is_some_and(|t| t != TTL_DEFAULT) {
                let key = "totem.interface.0.ttl";
                let reason = "a ttl other than 1 needs a multicast transport (udp, or xdp with \
                              mcastaddr)"
                    .to_string();
                return Err(self.error(line(key), key, ErrorKind::Conflict, reason));
            }
            return Ok(None);
        }
        let literal = self
            .nodes
            .iter()
            .find_map(|n| n.config.ring_addrs[0].as_deref()?.parse::<IpAddr>().ok());
        let v6 = match literal {
            Some(a) => a.is_ipv6(),
            None => matches!(totem.ip_version, IpVersion::Ipv6 | IpVersion::Ipv6Then4),
        };
        let key = "totem.interface.0.mcastaddr";
        let (addr, derived) = match mcastaddr {
            None => {
                let name = totem
                    .cluster_name
                    .as_deref()
                    .unwrap_or(CLUSTER_NAME_DEFAULT);
                (corosync_default_group(name, 0, v6), true)
            }
            Some(text) => match text.parse::<IpAddr>() {
                Ok(a) => (a, false),
                Err(_) => {
                    let reason = format!("expected a literal IP address, got {text:?}");
                    return Err(self.error(line(key), key, ErrorKind::InvalidValue, reason));
                }
            },
        };
        if !addr.is_multicast() {
            let reason = format!("{addr} is not a correct multicast address");
            return Err(self.error(line(key), key, ErrorKind::InvalidValue, reason));
        }
        if addr.is_ipv6() != v6 {
            let reason =
                format!("multicast address {addr} does not match the nodelist's address family");
            return Err(self.error(line(key), key, ErrorKind::MixedAddressFamilies, reason));
        }
        Ok(Some(MulticastConfig {
            addr,
            ttl: ttl.unwrap_or(TTL_DEFAULT),
            derived,
        }))
    }

    /// totemconfig.c `totem_volatile_config_read`, in its order.
    fn totem_timeouts(&self) -> Result<TotemTimeouts, ConfigError> {
        let node_count = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        let token_coefficient_ms =
            self.u32_or("totem.token_coefficient", TOKEN_COEFFICIENT_MS_DEFAULT);
        let mut token_ms = self.u32_or("totem.token", TOKEN_MS_DEFAULT);
        // "token_timeout += (member_count - 2) * token_coefficient" when member_count > 2.
        if node_count > 2 {
            token_ms =
                token_ms.saturating_add((node_count - 2).saturating_mul(token_coefficient_ms));
        }
        let token_retransmits_before_loss_const = self.u32_or(
            "totem.token_retransmits_before_loss_const",
            TOKEN_RETRANSMITS_BEFORE_LOSS_CONST_DEFAULT,
        );
        // "(int)(token_timeout / (token_retransmits_before_loss_const + 0.2))"
        let token_retransmit_ms = self.u32_or(
            "totem.token_retransmit",
            (f64::from(token_ms) / (f64::from(token_retransmits_before_loss_const) + 0.2)) as u32,
        );
        // "(int)(token_retransmit_timeout * 0.8 - (1000/HZ))"
        let hold_ms = self.u32_or(
            "totem.hold",
            (f64::from(token_retransmit_ms) * 0.8 - f64::from(1000 / KERNEL_HZ)) as u32,
        );
        let join_ms = self.u32_or("totem.join", JOIN_MS_DEFAULT);
        // "(int)(float)(1.2 * token_timeout)"
        let consensus_ms =
            self.u32_or("totem.consensus", (1.2 * f64::from(token_ms)) as f32 as u32);
        if consensus_ms < join_ms {
            let key = if self.lines.contains_key("totem.consensus") {
                "totem.consensus"
            } else {
                "totem.join"
            };
            let line = self.lines.get(key).copied().unwrap_or(0);
            let reason =
                format!("consensus ({consensus_ms} ms) may not be less than join ({join_ms} ms)");
            return Err(self.error(line, key, ErrorKind::Conflict, reason));
        }
        if token_ms == 0 {
            let line = self.lines.get("totem.token").copied().unwrap_or(0);
            return Err(self.error(
                line,
                "totem.token",
                ErrorKind::InvalidValue,
                "expected a timeout above 0 ms, got \"0\"".into(),
            ));
        }
        Ok(TotemTimeouts {
            token_ms,
            token_coefficient_ms,
            token_warning_percent: self
                .u32_or("totem.token_warning", TOKEN_WARNING_PERCENT_DEFAULT),
            token_retransmits_before_loss_const,
            token_retransmit_ms,
            hold_ms,
            join_ms,
            send_join_ms: self.u32_or("totem.send_join", SEND_JOIN_MS_DEFAULT),
            consensus_ms,
            merge_ms: self.u32_or("totem.merge", MERGE_MS_DEFAULT),
            downcheck_ms: self.u32_or("totem.downcheck", DOWNCHECK_MS_DEFAULT),
            fail_recv_const: self.u32_or("totem.fail_recv_const", FAIL_RECV_CONST_DEFAULT),
            seqno_unchanged_const: self
                .u32_or("totem.seqno_unchanged_const", SEQNO_UNCHANGED_CONST_DEFAULT),
            heartbeat_failures_allowed: self.u32_or(
                "totem.heartbeat_failures_allowed",
                HEARTBEAT_FAILURES_ALLOWED_DEFAULT,
            ),
            max_network_delay_ms: self
                .u32_or("totem.max_network_delay", MAX_NETWORK_DELAY_MS_DEFAULT),
            window_size: self.u32_or("totem.window_size", WINDOW_SIZE_DEFAULT),
            max_messages: self.u32_or("totem.max_messages", MAX_MESSAGES_DEFAULT),
            miss_count_const: self.u32_or("totem.miss_count_const", MISS_COUNT_CONST_DEFAULT),
        })
    }

    fn quorum_config(&self) -> QuorumConfig {
        let two_node = self.u8_flag("quorum.two_node");
        QuorumConfig {
            provider: self.str_of("quorum.provider").map(str::to_string),
            expected_votes: match self.entries.get("quorum.expected_votes") {
                Some(Value::U32(v)) => Some(*v),
                _ => None,
            },
            two_node,
            wait_for_all: match self.entries.get("quorum.wait_for_all") {
                Some(Value::U8(v)) => *v != 0,
                _ => two_node,
            },
            last_man_standing: self.u8_flag("quorum.last_man_standing"),
            last_man_standing_window_ms: self.u32_or(
                "quorum.last_man_standing_window",
                LAST_MAN_STANDING_WINDOW_MS_DEFAULT,
            ),
            auto_tie_breaker: self.u8_flag("quorum.auto_tie_breaker"),
            auto_tie_breaker_node: self
                .str_of("quorum.auto_tie_breaker_node")
                .unwrap_or("lowest")
                .to_string(),
            allow_downscale: self.u8_flag("quorum.allow_downscale"),
            expected_votes_tracking: self.u8_flag("quorum.expected_votes_tracking"),
        }
    }

    fn rotor_config(&self) -> RotorConfig {
        let dataplane_cores = self
            .str_of("rotor.dataplane_cores")
            .map(|s| {
                s.split(',')
                    .filter_map(|c| c.trim().parse::<u16>().ok())
                    .collect()
            })
            .unwrap_or_default();
        let poll_mode = self
            .str_of("rotor.poll_mode")
            .and_then(PollMode::from_name)
            .unwrap_or(PollMode::Auto);
        RotorConfig {
            dataplane_cores,
            poll_mode,
            poll_spin_us: self.u32_or("rotor.poll_spin_us", POLL_SPIN_US_DEFAULT),
        }
    }
}

/// The numeric id of `name` in an /etc/passwd-style file (third field), as getpwnam would give.
fn lookup_id(database: &str, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(database).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.parse().ok()
    })
}
