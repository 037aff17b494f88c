//! corosync.conf: the syntax (`tree`), what each section and key may hold (`schema`; totem{}'s
//! keys from totem-core's table of settings), the walk that types and flattens the file into
//! cmap keys exactly as corosync's `exec/coroparse.c` does (`build`), the values rotor runs
//! with, derived as `exec/totemconfig.c` derives them (`derive`; the totem settings through
//! `TotemSettings::resolve`, so a config is refused here for anything the core would refuse),
//! and the typed result (`types`).
//!
//! A config is input from outside: every problem is a `ConfigError` naming the file, the line,
//! the key or section and what was expected; unknown keys inside known sections are
//! `ConfigWarning`s (kept in cmap as strings, as corosync keeps them).

mod build;
mod derive;
pub mod paths;
mod schema;
mod tree;
mod types;
mod uidgid;

use std::path::Path;

use thiserror::Error;

pub use derive::corosync_default_group;
pub use paths::{
    authkey_path, config_path, AUTHKEY_PATH_DEFAULT, AUTHKEY_PATH_ENV, CONFIG_PATH_DEFAULT,
    CONFIG_PATH_ENV,
};
pub use schema::{
    config_backed_prefixes, runtime_changeable, CLUSTER_NAME_DEFAULT, LINK_COUNT_MAX,
    MCASTPORT_DEFAULT, NODE_COUNT_MAX, POLL_SPIN_US_DEFAULT, SECTIONS_KNOWN, TTL_DEFAULT,
};
pub use tree::{parse_tree, Item, Pair, Section, LINE_LEN_MAX, SECTION_DEPTH_MAX};
pub use types::{
    Config, ConfigWarning, InterfaceSection, IpVersionSetting, KernelUdpSetting,
    LinkTransportSetting, MulticastGroup, NodelistNode, PollModeSetting, QuorumSection,
    RotorSection, TotemSection, TransportSetting,
};

use crate::cmap::Value;
use build::Builder;

/// Largest config file read.
pub const FILE_SIZE_MAX: usize = 1 << 20;

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
    /// Nodes with different links, or an interface{} for a link no node has.
    LinkMismatch,
    /// One address given twice (two nodes, or two links of one node).
    DuplicateAddress,
    MissingSubsys,
    Conflict,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{path}: cannot read: {reason}")]
    Read { path: String, reason: String },
    /// Invariant: `line` ≥ 1, a line of the file.
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

/// Reads and parses the config file at `path`, then the uidgid{} files of the `uidgid.d`
/// directory beside it (as corosync does: each file holds uidgid{} sections only, and adds
/// its entries to the main file's).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let mut config = load_file(path)?;
    let dir = path.parent().unwrap_or(Path::new(".")).join("uidgid.d");
    uidgid::read_dir(&dir, &mut config)?;
    Ok(config)
}

/// Reads and parses the config file at `path` alone.
fn load_file(path: &Path) -> Result<Config, ConfigError> {
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
    let mut b = Builder::new(file);
    b.on_file(&tree)?;
    let totem = b.totem_section()?;
    if let Some(m) = totem.multicast.filter(|m| m.derived) {
        // totemconfig.c stores the derived group back, so cmap shows where udp sends.
        b.entries.insert(
            "totem.interface.0.mcastaddr".into(),
            Value::String(m.addr.to_string()),
        );
    }
    let (quorum, quorum_warnings) = b.quorum_section()?;
    b.warnings.extend(quorum_warnings);
    let rotor = b.rotor_section();
    let nodes = b.nodes.iter().map(|n| n.node.clone()).collect();
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
        section_lines: b.section_lines,
    })
}
