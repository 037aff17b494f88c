//! The typed result of reading corosync.conf: `Config`, with one type per section rotor acts
//! on. Section types end in `Section`, the nodelist's entries are `NodelistNode`, and the
//! values of a key with a fixed set of words end in `Setting` — so none is mistaken for the
//! core's, the dataplane's or the client's type of a similar name.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rotor_crypto::CryptoMode;
use rotor_proto::link::{LinkMode, LinkSettings};
use totem_core::votequorum::QuorumSettings;
use totem_core::TotemSettings;

use super::schema::{config_backed_prefixes, declared_types, LINK_COUNT_MAX};
use super::tree::Section;
use crate::cmap::{Access, CmapError, CmapStore, Value};

/// totem.transport. `knet` and `udpu` send unicast to each member over kernel UDP (rotor has
/// no knet), `udp` multicasts, `xdp` is rotor's AF_XDP path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportSetting {
    Knet,
    Udp,
    Udpu,
    Xdp,
}

/// `interface { knet_transport }`: what one link runs on whatever totem.transport says —
/// kernel UDP (`udp`, corosync's default) or AF_XDP (`xdp`, rotor's own value); unset, the
/// link follows totem.transport. corosync's other values (`sctp`, `loopback`) rotor has not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkTransportSetting {
    Udp,
    Xdp,
}

impl LinkTransportSetting {
    /// Every value, in the order of [`LinkTransportSetting::NAMES`].
    pub const ALL: [LinkTransportSetting; 2] =
        [LinkTransportSetting::Udp, LinkTransportSetting::Xdp];
    /// The config file's words.
    pub const NAMES: [&'static str; 2] = ["udp", "xdp"];

    pub fn from_name(name: &str) -> Option<LinkTransportSetting> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }

    /// The transport a link with this setting is chosen as (`xdp::choose_link`).
    pub fn as_transport(self) -> TransportSetting {
        match self {
            LinkTransportSetting::Udp => TransportSetting::Udpu,
            LinkTransportSetting::Xdp => TransportSetting::Xdp,
        }
    }
}

/// totem.ip_version; for the `-4`/`-6` forms, the family tried first when resolving names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersionSetting {
    Ipv4,
    Ipv6,
    Ipv4Then6,
    Ipv6Then4,
}

/// rotor.poll_mode: the typed value crosses to the dataplane in its start message, so it is
/// rotor-proto's.
pub use rotor_proto::control::PollMode as PollModeSetting;

/// rotor.kernel_udp: how links on kernel UDP do their I/O; rotor-proto's for the same reason.
pub use rotor_proto::control::KernelUdpIo as KernelUdpSetting;

/// One `totem { interface { … } }` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSection {
    /// Invariant: `< LINK_COUNT_MAX`, unique among interfaces.
    pub linknumber: u8,
    pub bindnetaddr: Option<String>,
    pub mcastaddr: Option<String>,
    pub mcastport: u16,
    pub ttl: Option<u8>,
    /// `knet_link_priority`, `knet_ping_interval`, `knet_ping_timeout`,
    /// `knet_ping_precision`, `knet_pong_count` as the file sets them (resolved into
    /// [`TotemSection::links`]).
    pub knet_link_priority: Option<u8>,
    pub knet_ping_interval: Option<u32>,
    pub knet_ping_timeout: Option<u32>,
    pub knet_ping_precision: Option<u32>,
    pub knet_pong_count: Option<u32>,
    /// `knet_transport`: this link's own transport; `None` follows totem.transport.
    pub knet_transport: Option<LinkTransportSetting>,
}

/// totem{}, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotemSection {
    pub version: u32,
    pub cluster_name: Option<String>,
    pub transport: TransportSetting,
    pub ip_version: IpVersionSetting,
    pub crypto_cipher: String,
    pub crypto_hash: String,
    /// What `crypto_cipher` and `crypto_hash` make of each frame.
    pub crypto_mode: CryptoMode,
    pub keyfile: Option<String>,
    pub clear_node_high_bit: bool,
    pub interfaces: Vec<InterfaceSection>,
    /// `totem.link_mode`.
    pub link_mode: LinkMode,
    /// Every link the nodelist uses (a `ringN_addr` on every node), by link number: its
    /// `interface{}` section's settings resolved with corosync's defaults (a link without one
    /// takes the defaults). Invariant: link 0 first, numbers ascending.
    pub links: Vec<LinkSettings>,
    /// The protocol settings in effect (totem-core's table, resolved for the nodelist and
    /// the frame overhead of its address family and `crypto_mode`).
    pub settings: TotemSettings,
    /// The group `Dest::All` frames go to; `None`: unicast to each member. See
    /// [`MulticastGroup`] for when a cluster multicasts.
    pub multicast: Option<MulticastGroup>,
}

impl TotemSection {
    /// What link `number` is chosen as (`xdp::choose_link`): its interface's `knet_transport`
    /// when set, else totem.transport.
    pub fn link_transport(&self, number: u8) -> TransportSetting {
        self.interfaces
            .iter()
            .find(|i| i.linknumber == number)
            .and_then(|i| i.knet_transport)
            .map_or(self.transport, LinkTransportSetting::as_transport)
    }
}

/// IP multicast on link 0. A cluster multicasts with `transport: udp` (as corosync: to
/// interface 0's `mcastaddr`, or to the group corosync derives from the cluster name) and with
/// `transport: xdp` when interface 0 has an `mcastaddr` (rotor's rule: an explicit group means
/// multicast); `udpu` and `knet` always unicast, whatever `mcastaddr` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastGroup {
    /// Invariant: a multicast address of the nodelist's family.
    pub addr: IpAddr,
    /// `ttl` (IPv4 TTL / IPv6 hop limit), 1 by default.
    pub ttl: u8,
    /// True when derived from the cluster name rather than configured.
    pub derived: bool,
}

/// One `nodelist { node { … } }` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodelistNode {
    /// Position in the nodelist: the `<index>` of `nodelist.node.<index>.*`.
    pub index: usize,
    pub nodeid: Option<u32>,
    pub name: Option<String>,
    /// `ring0_addr` … `ring7_addr`. Invariant: `ring_addrs[0]` is set.
    pub ring_addrs: [Option<String>; LINK_COUNT_MAX],
    pub quorum_votes: Option<u32>,
}

/// quorum{}, resolved through votequorum's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumSection {
    /// votequorum's settings when `quorum.provider` names it; `None`: no provider, always
    /// quorate. Resolved without knowing which node this host is: `votes` is
    /// `quorum.votes` (or 1) until [`Config::quorum_for`] gives this node's.
    pub votequorum: Option<QuorumSettings>,
}

/// rotor{}: rotor's own settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotorSection {
    /// CPUs the dataplane pins its poll loops to; empty = let the OS choose.
    pub dataplane_cores: Vec<u16>,
    pub poll_mode: PollModeSetting,
    /// How long the adaptive poll loop spins after its last work before it sleeps.
    pub poll_spin_us: u32,
    /// How links on kernel UDP do their I/O (`socket`, the default, or `io_uring`).
    pub kernel_udp: KernelUdpSetting,
    /// Where rotord serves its metrics (Prometheus text format over HTTP); `None`, the
    /// default: not served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// What the XDP program does with a frame to the cluster port from an address that no
    /// node of the nodelist has (`pass` to the kernel, the default, or `drop`).
    pub xdp_unknown_source: xdp_prog::UnknownSource,
}

/// A key rotor accepts but ignores or does not know; the config still loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub file: String,
    pub line: u32,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.key, self.message
        )
    }
}

/// A parsed, validated config.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: String,
    pub tree: Section,
    /// The cmap keys and values the file stands for, as corosync flattens it.
    pub entries: BTreeMap<String, Value>,
    pub warnings: Vec<ConfigWarning>,
    pub totem: TotemSection,
    pub nodes: Vec<NodelistNode>,
    pub quorum: QuorumSection,
    pub rotor: RotorSection,
    pub(super) lines: BTreeMap<String, u32>,
    pub(super) section_lines: BTreeMap<String, u32>,
}

impl Config {
    /// votequorum's settings for node `local` (its votes from the nodelist), checked as at
    /// parse time; `None` without a quorum provider.
    pub fn quorum_for(&self, local: u32) -> Result<Option<QuorumSettings>, super::ConfigError> {
        let lines = super::derive::Lines {
            file: &self.file,
            keys: &self.lines,
            sections: &self.section_lines,
        };
        super::derive::resolve_quorum(&lines, &self.entries, &self.nodes, Some(local))
            .map(|(settings, _)| settings)
    }

    /// The line a cmap key of this config came from.
    pub fn line_of(&self, key: &str) -> Option<u32> {
        self.lines.get(key).copied()
    }

    /// `runtime.config.totem.<name>` for every setting corosync publishes there, with the
    /// value in effect: the table's entries marked `runtime_config`, and each link's
    /// `interface.<n>.knet_ping_timeout` and `knet_ping_interval` (totemconfig.c
    /// `totem_calc_knet_ping_timers`).
    pub fn runtime_entries(&self) -> Vec<(String, Value)> {
        let settings = totem_core::config::SETTINGS
            .iter()
            .filter(|s| s.runtime_config)
            .map(|s| {
                (
                    format!("runtime.config.{}", s.key()),
                    Value::U32((s.get)(&self.totem.settings)),
                )
            });
        let links = self.totem.links.iter().flat_map(|l| {
            let key = |name: &str| format!("runtime.config.totem.interface.{}.{name}", l.number);
            [
                (key("knet_ping_timeout"), Value::U32(l.ping_timeout_ms)),
                (key("knet_ping_interval"), Value::U32(l.ping_interval_ms)),
            ]
        });
        settings.chain(links).collect()
    }

    /// Puts the config's keys into `cmap` (as the daemon), declares the types of the known
    /// typed keys, publishes the `runtime.config.totem.*` values in effect, and makes every
    /// key under a config section unwritable for clients: the file is what they stand for,
    /// and a change through cmap would not take effect.
    pub fn load_into(&self, cmap: &mut CmapStore) -> Result<(), CmapError> {
        for (key, value_type) in declared_types() {
            cmap.declare_type(&key, value_type);
        }
        for (key, value) in &self.entries {
            cmap.set(key, value.clone(), Access::Daemon)?;
        }
        for (key, value) in self.runtime_entries() {
            cmap.set(&key, value, Access::Daemon)?;
        }
        for prefix in config_backed_prefixes() {
            cmap.add_config_prefix(&prefix, &self.file);
        }
        Ok(())
    }
}
