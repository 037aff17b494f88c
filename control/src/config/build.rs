//! The walk over corosync.conf's tree: each known section's keys typed by the schema and
//! flattened into cmap keys exactly as corosync's `exec/coroparse.c` does
//! (`totem.interface.<linknumber>.*`, `nodelist.node.<index>.*`,
//! `logging.logger_subsys.<SUBSYS>.*`, `uidgid.config.<uid|gid>.<id>`), with the line of every
//! key, warnings for unknown keys, and the nodes and interfaces collected for `derive`.

use std::collections::BTreeMap;

use super::schema::{
    convert, interface_kind, logging_kind, node_kind, nozzle_kind, quorum_device_kind, quorum_kind,
    resources_kind, ring_index, rotor_kind, system_kind, totem_key_is_knet, totem_kind, Kind,
    LINK_COUNT_MAX, MCASTPORT_DEFAULT, NODE_COUNT_MAX, SECTIONS_KNOWN,
};
use super::tree::{Item, Pair, Section};
use super::types::{ConfigWarning, InterfaceSection, LinkTransportSetting, NodelistNode};
use super::{ConfigError, ErrorKind};
use crate::cmap::Value;

/// A node as parsed, with the lines the cross-checks name.
pub(super) struct ParsedNode {
    pub(super) node: NodelistNode,
    pub(super) line: u32,
    pub(super) nodeid_line: u32,
    pub(super) ring_lines: [u32; LINK_COUNT_MAX],
}

/// The file as walked so far; `derive` reads it once the walk is done.
pub(super) struct Builder<'a> {
    pub(super) file: &'a str,
    pub(super) entries: BTreeMap<String, Value>,
    /// The line of every key in `entries`.
    pub(super) lines: BTreeMap<String, u32>,
    /// The line of each top-level section (`totem`, `nodelist`, …), the first if repeated.
    pub(super) section_lines: BTreeMap<String, u32>,
    pub(super) warnings: Vec<ConfigWarning>,
    pub(super) nodes: Vec<ParsedNode>,
    /// Each interface with the line of its section.
    pub(super) interfaces: Vec<(InterfaceSection, u32)>,
}

impl<'a> Builder<'a> {
    pub(super) fn new(file: &'a str) -> Builder<'a> {
        Builder {
            file,
            entries: BTreeMap::new(),
            lines: BTreeMap::new(),
            section_lines: BTreeMap::new(),
            warnings: Vec::new(),
            nodes: Vec::new(),
            interfaces: Vec::new(),
        }
    }

    pub(super) fn error(
        &self,
        line: u32,
        subject: &str,
        kind: ErrorKind,
        reason: String,
    ) -> ConfigError {
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

    pub(super) fn on_file(&mut self, root: &Section) -> Result<(), ConfigError> {
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
                Item::Section(s) => {
                    self.section_lines.entry(s.name.clone()).or_insert(s.line);
                    match s.name.as_str() {
                        "totem" => self.on_totem(s)?,
                        "logging" => self.on_logging(s)?,
                        "quorum" => self.on_quorum(s)?,
                        "nodelist" => self.on_nodelist(s)?,
                        "uidgid" => self.on_uidgid(s)?,
                        "resources" => self.on_nested(s, "resources", resources_kind)?,
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
                    }
                }
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
                    if totem_key_is_knet(&pair.key) {
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
        let mut interface = InterfaceSection {
            linknumber,
            bindnetaddr: None,
            mcastaddr: None,
            mcastport: MCASTPORT_DEFAULT,
            ttl: None,
            knet_link_priority: None,
            knet_ping_interval: None,
            knet_ping_timeout: None,
            knet_ping_precision: None,
            knet_pong_count: None,
            knet_transport: None,
        };
        let path = format!("totem.interface.{linknumber}");
        for pair in s.pairs().filter(|p| p.key != "linknumber") {
            match interface_kind(&pair.key) {
                Some(kind) => {
                    self.store_pair(&path, pair, Some(kind))?;
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
                        ("knet_link_priority", Value::U8(v)) => {
                            interface.knet_link_priority = Some(*v)
                        }
                        ("knet_ping_interval", Value::U32(v)) => {
                            interface.knet_ping_interval = Some(*v)
                        }
                        ("knet_ping_timeout", Value::U32(v)) => {
                            interface.knet_ping_timeout = Some(*v)
                        }
                        ("knet_ping_precision", Value::U32(v)) => {
                            interface.knet_ping_precision = Some(*v)
                        }
                        ("knet_pong_count", Value::U32(v)) => interface.knet_pong_count = Some(*v),
                        ("knet_transport", Value::String(v)) => {
                            match LinkTransportSetting::from_name(v) {
                                Some(t) => interface.knet_transport = Some(t),
                                None => {
                                    let key = format!("{path}.knet_transport");
                                    let reason = format!(
                                        "expected one of {}, got {v:?}: rotor carries a link \
                                         over kernel UDP (udp) or AF_XDP (xdp); it has no SCTP \
                                         or loopback transport",
                                        LinkTransportSetting::NAMES.join(", ")
                                    );
                                    return Err(self.error(
                                        pair.line,
                                        &key,
                                        ErrorKind::InvalidValue,
                                        reason,
                                    ));
                                }
                            }
                        }
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
                    self.on_nested(sub, "quorum.device", quorum_device_kind)?;
                }
                Item::Section(sub) => return Err(self.unknown_section(sub, "quorum", "device")),
            }
        }
        Ok(())
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
    pub(super) fn on_uidgid(&mut self, s: &Section) -> Result<(), ConfigError> {
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
        let mut node = ParsedNode {
            node: NodelistNode {
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
                    node.node.nodeid = Some(*id);
                    node.nodeid_line = pair.line;
                }
                ("quorum_votes", Value::U32(v)) => node.node.quorum_votes = Some(*v),
                ("name", Value::String(v)) => node.node.name = Some(v.clone()),
                (key, Value::String(v)) => {
                    if let Some(ring) = ring_index(key) {
                        node.node.ring_addrs[ring] = Some(v.clone());
                        node.ring_lines[ring] = pair.line;
                    }
                }
                _ => {}
            }
        }
        self.nodes.push(node);
        Ok(())
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
