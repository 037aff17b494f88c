//! The rest of totem{}: every key corosync.conf(5) allows there that is not a protocol setting
//! of [`SETTINGS`](super::SETTINGS) — the transport, addresses, crypto and names rotord acts
//! on, and the keys kept only for compatibility. With `SETTINGS` this is the whole section:
//! rotord's parser types totem{} from these two tables alone.

use super::table::Unit;

/// How a key's text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    U32(Unit),
    I32,
    U64,
    /// One of these words.
    Choice(&'static [&'static str]),
    Text,
    /// A DSCP code point: 0..=63 or an IANA name such as `ef`, `af41`, `cs6`.
    Dscp,
}

/// What rotor does with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// rotord acts on it.
    Rotord,
    /// Accepted and kept in cmap, as corosync keeps it; rotor does not act on it.
    Kept,
    /// A knet option: kept in cmap, unused (rotor has no knet); the parser warns.
    Knet,
}

/// One totem{} key that is not a protocol setting.
#[derive(Clone, Copy, Debug)]
pub struct TotemKey {
    pub name: &'static str,
    pub key_type: KeyType,
    pub key_use: KeyUse,
    /// A config reload may change it while the cluster runs. The others name what every node
    /// must agree on from its start (the transport, the cluster name, the crypto mode): a
    /// reload that changes one is refused, naming it (corosync ignores such a change with a
    /// notice; rotor refuses the whole reload, so nothing half-applies).
    pub runtime: bool,
}

const YES_NO: &[&str] = &["yes", "no"];

const fn key(name: &'static str, key_type: KeyType, key_use: KeyUse) -> TotemKey {
    TotemKey {
        name,
        key_type,
        key_use,
        runtime: false,
    }
}

/// A key a reload may change.
const fn runtime(k: TotemKey) -> TotemKey {
    TotemKey { runtime: true, ..k }
}

/// Every totem{} key besides the protocol settings.
pub static OTHER_KEYS: [TotemKey; 22] = [
    key("version", KeyType::U32(Unit::Count), KeyUse::Rotord),
    key("cluster_name", KeyType::Text, KeyUse::Rotord),
    key(
        "transport",
        KeyType::Choice(&["knet", "udp", "udpu", "xdp"]),
        KeyUse::Rotord,
    ),
    key(
        "ip_version",
        KeyType::Choice(&["ipv4", "ipv6", "ipv4-6", "ipv6-4"]),
        KeyUse::Rotord,
    ),
    key(
        "crypto_cipher",
        KeyType::Choice(&["none", "aes256", "aes192", "aes128"]),
        KeyUse::Rotord,
    ),
    key(
        "crypto_hash",
        KeyType::Choice(&["none", "md5", "sha1", "sha256", "sha384", "sha512"]),
        KeyUse::Rotord,
    ),
    key("secauth", KeyType::Choice(&["on", "off"]), KeyUse::Rotord),
    // Another key file is another key: a reload rotates to it.
    runtime(key("keyfile", KeyType::Text, KeyUse::Rotord)),
    key(
        "crypto_model",
        KeyType::Choice(&["nss", "openssl"]),
        KeyUse::Kept,
    ),
    key("nodeid", KeyType::U32(Unit::Count), KeyUse::Kept),
    key("threads", KeyType::U32(Unit::Count), KeyUse::Kept),
    runtime(key("config_version", KeyType::U64, KeyUse::Kept)),
    key("clear_node_high_bit", KeyType::Choice(YES_NO), KeyUse::Kept),
    runtime(key(
        "block_unlisted_ips",
        KeyType::Choice(YES_NO),
        KeyUse::Kept,
    )),
    runtime(key(
        "cancel_token_hold_on_retransmit",
        KeyType::Choice(YES_NO),
        KeyUse::Kept,
    )),
    key(
        "link_mode",
        KeyType::Choice(&["passive", "active", "rr"]),
        KeyUse::Rotord,
    ),
    key("ip_dscp", KeyType::Dscp, KeyUse::Kept),
    runtime(key(
        "knet_pmtud_interval",
        KeyType::U32(Unit::Seconds),
        KeyUse::Knet,
    )),
    runtime(key("knet_mtu", KeyType::U32(Unit::Bytes), KeyUse::Knet)),
    runtime(key(
        "knet_compression_threshold",
        KeyType::U32(Unit::Bytes),
        KeyUse::Knet,
    )),
    runtime(key("knet_compression_level", KeyType::I32, KeyUse::Knet)),
    runtime(key("knet_compression_model", KeyType::Text, KeyUse::Knet)),
];
