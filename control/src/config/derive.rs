//! The typed values rotor runs with, from the flattened file: totem{} (its protocol settings
//! resolved through totem-core's table, so the parser refuses exactly what the core would),
//! the nodelist's cross-checks, link 0's multicast group, quorum{} and rotor{} — with
//! `exec/totemconfig.c`'s rules and defaults where corosync has them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rotor_crypto::CryptoMode;
use totem_core::config::frame_overhead_bytes;
use totem_core::votequorum::{NodeVotes, QuorumSettingError, QuorumSettings, QuorumValue};
use totem_core::{ClusterShape, SettingError, TotemSettings};

use super::build::Builder;
use rotor_proto::link::{LinkMode, LinkSettings};

use super::schema::{CLUSTER_NAME_DEFAULT, LINK_COUNT_MAX, POLL_SPIN_US_DEFAULT, TTL_DEFAULT};
use super::types::{
    ConfigWarning, InterfaceSection, IpVersionSetting, KernelUdpSetting, MulticastGroup,
    NodelistNode, PollModeSetting, QuorumSection, RotorSection, TotemSection, TransportSetting,
};
use super::{ConfigError, ErrorKind};
use crate::cmap::Value;

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

impl Builder<'_> {
    fn u32_or(&self, key: &str, default: u32) -> u32 {
        match self.entries.get(key) {
            Some(Value::U32(v)) => *v,
            _ => default,
        }
    }

    fn str_of(&self, key: &str) -> Option<&str> {
        match self.entries.get(key) {
            Some(Value::String(v)) => Some(v),
            _ => None,
        }
    }

    /// The line an error about `key` cites: the key's own, else the first of `sections` the
    /// file has (an error about a value the file leaves out points at where to add it), else
    /// the first line.
    fn line_for(&self, key: &str, sections: &[&str]) -> u32 {
        self.lines
            .get(key)
            .or_else(|| sections.iter().find_map(|s| self.section_lines.get(*s)))
            .copied()
            .unwrap_or(1)
    }

    /// totem{}, in the order totemconfig.c reads it; `check_nodes` runs here, once the
    /// address family rules are known.
    pub(super) fn totem_section(&self) -> Result<TotemSection, ConfigError> {
        let transport = match self.str_of("totem.transport") {
            Some("udp") => TransportSetting::Udp,
            Some("udpu") => TransportSetting::Udpu,
            Some("xdp") => TransportSetting::Xdp,
            _ => TransportSetting::Knet,
        };
        // totemconfig.c `totem_config_get_ip_version`: ipv6-4 unless udp (ipv4).
        let ip_version = match (self.str_of("totem.ip_version"), transport) {
            (Some("ipv4"), _) => IpVersionSetting::Ipv4,
            (Some("ipv6"), _) => IpVersionSetting::Ipv6,
            (Some("ipv4-6"), _) => IpVersionSetting::Ipv4Then6,
            (Some("ipv6-4"), _) => IpVersionSetting::Ipv6Then4,
            (_, TransportSetting::Udp) => IpVersionSetting::Ipv4,
            _ => IpVersionSetting::Ipv6Then4,
        };
        let version = self.u32_or("totem.version", 2);
        if version != 2 {
            let line = self.line_for("totem.version", &["totem"]);
            let reason = format!("expected 2 (the only totem protocol version), got \"{version}\"");
            return Err(self.error(line, "totem.version", ErrorKind::InvalidValue, reason));
        }
        let (cipher, hash, crypto_mode) = self.crypto()?;
        self.check_nodes(ip_version)?;
        let settings = self.totem_settings(crypto_mode, self.nodelist_is_v6(ip_version))?;
        let mut interfaces: Vec<InterfaceSection> =
            self.interfaces.iter().map(|(i, _)| i.clone()).collect();
        interfaces.sort_by_key(|i| i.linknumber);
        let links = self.links(&interfaces, settings.token_ms, transport)?;
        let link_mode = self
            .str_of("totem.link_mode")
            .and_then(LinkMode::from_name)
            .unwrap_or_default();
        let mut totem = TotemSection {
            version,
            cluster_name: self.str_of("totem.cluster_name").map(str::to_string),
            transport,
            ip_version,
            crypto_cipher: cipher.to_string(),
            crypto_hash: hash.to_string(),
            crypto_mode,
            keyfile: self.str_of("totem.keyfile").map(str::to_string),
            clear_node_high_bit: self.str_of("totem.clear_node_high_bit") == Some("yes"),
            interfaces,
            link_mode,
            links,
            settings,
            multicast: None,
        };
        totem.multicast = self.multicast(&totem)?;
        Ok(totem)
    }

    /// totemconfig.c `totem_get_crypto`: rotor encrypts by default, like corosync built
    /// without ENABLE_UNENCRYPTED; `secauth: off` turns both off, explicit keys win.
    fn crypto(&self) -> Result<(&str, &str, CryptoMode), ConfigError> {
        let (mut cipher, mut hash) = ("aes256", "sha256");
        if self.str_of("totem.secauth") == Some("off") {
            (cipher, hash) = ("none", "none");
        }
        cipher = self.str_of("totem.crypto_cipher").unwrap_or(cipher);
        hash = self.str_of("totem.crypto_hash").unwrap_or(hash);
        let key = if self.lines.contains_key("totem.crypto_hash") {
            "totem.crypto_hash"
        } else {
            "totem.crypto_cipher"
        };
        if cipher != "none" && hash == "none" {
            let line = self.line_for(key, &["totem"]);
            let reason = format!("crypto_cipher {cipher} requires a crypto_hash other than none");
            return Err(self.error(line, key, ErrorKind::Conflict, reason));
        }
        let mode = CryptoMode::from_corosync(cipher, hash).map_err(|e| {
            self.error(
                self.line_for(key, &["totem"]),
                key,
                ErrorKind::InvalidValue,
                e.to_string(),
            )
        })?;
        Ok((cipher, hash, mode))
    }

    /// Whether the cluster runs over IPv6: the family of the first literal ring0_addr, else
    /// the family `ip_version` tries first; a node without a nodelist runs alone on IPv4
    /// loopback.
    fn nodelist_is_v6(&self, ip_version: IpVersionSetting) -> bool {
        if self.nodes.is_empty() {
            return false;
        }
        let literal = self
            .nodes
            .iter()
            .find_map(|n| n.node.ring_addrs[0].as_deref()?.parse::<IpAddr>().ok());
        match literal {
            Some(a) => a.is_ipv6(),
            None => matches!(
                ip_version,
                IpVersionSetting::Ipv6 | IpVersionSetting::Ipv6Then4
            ),
        }
    }

    /// The protocol settings: each `totem.<setting>` the file sets, the rest defaulted and
    /// derived, validated for the nodelist's size and each frame's overhead — the same
    /// `TotemSettings::resolve` the core's checks come from. An error cites the line of the
    /// key it names; one about defaults alone, the totem section (else the nodelist).
    fn totem_settings(&self, mode: CryptoMode, v6: bool) -> Result<TotemSettings, ConfigError> {
        let shape = ClusterShape {
            nodelist_count: u32::try_from(self.nodes.len()).unwrap_or(u32::MAX),
            frame_overhead_bytes: frame_overhead_bytes(v6, mode.overhead()),
        };
        let explicit = |name: &str| match self.entries.get(&format!("totem.{name}")) {
            Some(Value::U32(v)) => Some(*v),
            _ => None,
        };
        TotemSettings::resolve(explicit, &shape).map_err(|e: SettingError| {
            let (line, subject) = match e.key {
                Some(name) => {
                    let key = format!("totem.{name}");
                    (self.line_for(&key, &["totem", "nodelist"]), key)
                }
                None if self.section_lines.contains_key("totem") || self.nodes.is_empty() => {
                    (self.line_for("totem", &["totem"]), "totem".to_string())
                }
                None => (
                    self.line_for("nodelist", &["nodelist"]),
                    "nodelist".to_string(),
                ),
            };
            self.error(line, &subject, ErrorKind::InvalidValue, e.reason)
        })
    }

    /// The links the nodelist uses, checked as totemconfig.c checks them and more: every
    /// node has the same links ("Not all nodes have the same number of links"), no address
    /// is used twice, an `interface{}` section names a link some node has an address on, and
    /// multicast (`transport: udp`) runs on one link. Each link's settings are resolved from
    /// its `interface{}` section with corosync's defaults (`LinkSettings::resolve`).
    fn links(
        &self,
        interfaces: &[InterfaceSection],
        token_ms: u32,
        transport: TransportSetting,
    ) -> Result<Vec<LinkSettings>, ConfigError> {
        let has = |n: &super::build::ParsedNode, link: usize| n.node.ring_addrs[link].is_some();
        // The links of the first node are the cluster's; every other node must have the same.
        let used: Vec<usize> = match self.nodes.first() {
            None => vec![0],
            Some(first) => (0..LINK_COUNT_MAX).filter(|l| has(first, *l)).collect(),
        };
        for (position, node) in self.nodes.iter().enumerate().skip(1) {
            for link in 0..LINK_COUNT_MAX {
                if has(node, link) == used.contains(&link) {
                    continue;
                }
                let (line, key, reason) = if has(node, link) {
                    (
                        node.ring_lines[link],
                        format!("nodelist.node.{position}.ring{link}_addr"),
                        format!(
                            "Not all nodes have the same number of links: this node has link \
                             {link}, the first node (nodelist.node.0, line {}) has not; give \
                             every node a ring{link}_addr or none",
                            self.nodes[0].line
                        ),
                    )
                } else {
                    (
                        node.line,
                        format!("nodelist.node.{position}"),
                        format!(
                            "Not all nodes have the same number of links: this node has no \
                             ring{link}_addr, the first node (nodelist.node.0, line {}) has; \
                             give every node a ring{link}_addr or none",
                            self.nodes[0].ring_lines[link]
                        ),
                    )
                };
                return Err(self.error(line, &key, ErrorKind::LinkMismatch, reason));
            }
        }
        // One address per node and link: two equal addresses would be one socket.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (position, node) in self.nodes.iter().enumerate() {
            for link in 0..LINK_COUNT_MAX {
                let Some(addr) = node.node.ring_addrs[link].as_deref() else {
                    continue;
                };
                let key = format!("nodelist.node.{position}.ring{link}_addr");
                let canonical = addr
                    .parse::<IpAddr>()
                    .map_or_else(|_| addr.to_ascii_lowercase(), |a| a.to_string());
                if let Some(first) = seen.get(&canonical) {
                    let reason = format!(
                        "address {addr} is already {first} (line {}); every node has an \
                         address of its own on every link",
                        self.lines.get(first).copied().unwrap_or(1)
                    );
                    let line = node.ring_lines[link];
                    return Err(self.error(line, &key, ErrorKind::DuplicateAddress, reason));
                }
                seen.insert(canonical, key);
            }
        }
        // Without a nodelist a node runs alone on link 0 (bindnetaddr is refused later).
        for (interface, line) in self.interfaces.iter().filter(|_| !self.nodes.is_empty()) {
            if !used.contains(&usize::from(interface.linknumber)) {
                let n = interface.linknumber;
                let reason = format!(
                    "interface with linknumber {n}, but no node has a ring{n}_addr; add the \
                     link's addresses to the nodelist or remove the interface section"
                );
                let key = format!("totem.interface.{n}.linknumber");
                let line = self.lines.get(&key).copied().unwrap_or(*line);
                return Err(self.error(line, &key, ErrorKind::LinkMismatch, reason));
            }
        }
        let multicast = transport == TransportSetting::Udp
            || (transport == TransportSetting::Xdp
                && interfaces
                    .iter()
                    .any(|i| i.linknumber == 0 && i.mcastaddr.is_some()));
        if used.len() > 1 && multicast {
            let reason = format!(
                "multicast (transport udp, or xdp with mcastaddr) runs on one link, but the \
                 nodelist has {} (ring{}_addr); unicast (transport knet, or xdp without \
                 mcastaddr) for several links",
                used.len(),
                used[1]
            );
            let line = self.line_for("totem.transport", &["totem"]);
            return Err(self.error(line, "totem.transport", ErrorKind::Conflict, reason));
        }
        used.iter()
            .map(|&link| {
                let n = link as u8;
                let i = interfaces.iter().find(|i| i.linknumber == n);
                LinkSettings::resolve(
                    n,
                    token_ms,
                    i.and_then(|i| i.knet_link_priority),
                    i.and_then(|i| i.knet_ping_interval),
                    i.and_then(|i| i.knet_ping_timeout),
                    i.and_then(|i| i.knet_ping_precision),
                    i.and_then(|i| i.knet_pong_count),
                )
                .map_err(|e| {
                    let key = format!("totem.interface.{n}.{}", e.key);
                    let line = self.line_for(&key, &["totem"]);
                    self.error(line, &key, ErrorKind::InvalidValue, e.reason)
                })
            })
            .collect()
    }

    /// Whether and where link 0 multicasts ([`MulticastGroup`]), with totemconfig.c's checks:
    /// the group is a multicast address of the nodelist's family (the first literal address;
    /// without one, the family `ip_version` tries first), and `ttl` other than 1 needs
    /// multicast. Run after `check_nodes`.
    fn multicast(&self, totem: &TotemSection) -> Result<Option<MulticastGroup>, ConfigError> {
        let link0 = totem.interfaces.iter().find(|i| i.linknumber == 0);
        let mcastaddr = link0.and_then(|i| i.mcastaddr.as_deref());
        let ttl = link0.and_then(|i| i.ttl);
        let line = |key: &str| self.line_for(key, &["totem"]);
        let multicast = match totem.transport {
            TransportSetting::Udp => true,
            TransportSetting::Xdp => mcastaddr.is_some(),
            TransportSetting::Udpu | TransportSetting::Knet => false,
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
            .find_map(|n| n.node.ring_addrs[0].as_deref()?.parse::<IpAddr>().ok());
        let v6 = match literal {
            Some(a) => a.is_ipv6(),
            None => matches!(
                totem.ip_version,
                IpVersionSetting::Ipv6 | IpVersionSetting::Ipv6Then4
            ),
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
        Ok(Some(MulticastGroup {
            addr,
            ttl: ttl.unwrap_or(TTL_DEFAULT),
            derived,
        }))
    }

    /// Every node has a ring0_addr and (with knet and xdp) a nodeid, nodeids are unique
    /// (totemconfig.c `check_for_duplicate_nodeids`), and literal addresses all have one family.
    fn check_nodes(&self, ip_version: IpVersionSetting) -> Result<(), ConfigError> {
        let transport = self.entries.get("totem.transport").and_then(|v| match v {
            Value::String(s) => Some(s.as_str()),
            _ => None,
        });
        let nodeid_required = matches!(transport, None | Some("knet") | Some("xdp"));
        let mut family_first: Option<(IpAddr, String)> = None;
        for (position, node) in self.nodes.iter().enumerate() {
            let path = format!("nodelist.node.{position}");
            if node.node.ring_addrs[0].is_none() {
                return Err(self.error(
                    node.line,
                    &path,
                    ErrorKind::MissingRing0Addr,
                    "node has no ring0_addr".into(),
                ));
            }
            match node.node.nodeid {
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
                        .position(|n| n.node.nodeid == Some(id))
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
            for (ring, addr) in node.node.ring_addrs.iter().enumerate() {
                let Some(addr) = addr.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                let key = format!("{path}.ring{ring}_addr");
                let line = node.ring_lines[ring];
                let family = |a: &IpAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
                let wanted_v4 = match ip_version {
                    IpVersionSetting::Ipv4 => Some(true),
                    IpVersionSetting::Ipv6 => Some(false),
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

    pub(super) fn quorum_section(
        &self,
    ) -> Result<(QuorumSection, Vec<ConfigWarning>), ConfigError> {
        let nodes: Vec<NodelistNode> = self.nodes.iter().map(|n| n.node.clone()).collect();
        let lines = Lines {
            file: self.file,
            keys: &self.lines,
            sections: &self.section_lines,
        };
        let (votequorum, warnings) = resolve_quorum(&lines, &self.entries, &nodes, None)?;
        Ok((QuorumSection { votequorum }, warnings))
    }

    pub(super) fn rotor_section(&self) -> RotorSection {
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
            .and_then(PollModeSetting::from_name)
            .unwrap_or(PollModeSetting::Auto);
        RotorSection {
            dataplane_cores,
            poll_mode,
            poll_spin_us: self.u32_or("rotor.poll_spin_us", POLL_SPIN_US_DEFAULT),
            // Checked by the schema when the file was read.
            kernel_udp: self
                .str_of("rotor.kernel_udp")
                .and_then(KernelUdpSetting::from_name)
                .unwrap_or_default(),
            // Checked by the schema when the file was read.
            metrics_listen: self
                .str_of("rotor.metrics_listen")
                .and_then(|a| a.parse().ok()),
            // Checked by the schema when the file was read.
            xdp_unknown_source: self
                .str_of("rotor.xdp_unknown_source")
                .and_then(xdp_prog::UnknownSource::from_name)
                .unwrap_or_default(),
        }
    }
}

/// Where a config's keys and sections are, for errors about them.
pub(super) struct Lines<'a> {
    pub(super) file: &'a str,
    pub(super) keys: &'a BTreeMap<String, u32>,
    pub(super) sections: &'a BTreeMap<String, u32>,
}

impl Lines<'_> {
    /// The key's own line, else the first of `sections` the file has, else the first line.
    fn of(&self, key: &str, sections: &[&str]) -> u32 {
        self.keys
            .get(key)
            .or_else(|| sections.iter().find_map(|s| self.sections.get(*s)))
            .copied()
            .unwrap_or(1)
    }
}

/// quorum{} through votequorum's table and `QuorumSettings::resolve`: votequorum_readconfig's
/// refusals under the key to change and its line, its corrections as warnings. `local` is
/// this node when known (its votes), `None` at parse time.
pub(super) fn resolve_quorum(
    lines: &Lines<'_>,
    entries: &BTreeMap<String, Value>,
    nodes: &[NodelistNode],
    local: Option<u32>,
) -> Result<(Option<QuorumSettings>, Vec<ConfigWarning>), ConfigError> {
    let explicit = |name: &str| match entries.get(&format!("quorum.{name}")) {
        Some(Value::U32(v)) => Some(QuorumValue::Number(*v)),
        Some(Value::U8(v)) => Some(QuorumValue::Number(u32::from(*v))),
        Some(Value::String(v)) => Some(QuorumValue::Text(v.as_str())),
        _ => None,
    };
    let votes: Vec<NodeVotes> = nodes
        .iter()
        .map(|n| NodeVotes {
            index: n.index,
            node_id: n.nodeid.unwrap_or(n.index as u32 + 1),
            votes: n.quorum_votes,
        })
        .collect();
    let (settings, warnings) =
        QuorumSettings::resolve(explicit, &votes, local).map_err(|e: QuorumSettingError| {
            ConfigError::Invalid {
                file: lines.file.to_string(),
                line: lines.of(&e.key, &["quorum", "nodelist"]),
                subject: e.key,
                kind: ErrorKind::InvalidValue,
                reason: e.reason,
            }
        })?;
    let warnings = warnings
        .into_iter()
        .map(|w| ConfigWarning {
            file: lines.file.to_string(),
            line: lines.of(&w.key, &["quorum"]),
            key: w.key,
            message: w.message,
        })
        .collect();
    Ok((settings, warnings))
}
