//! What a change round asks of this node: read corosync.conf again (a reload) or the key file
//! named (a key rotation), check what may change while the cluster runs, and answer with what
//! the node would run with — or refuse, naming the file, line and key. The answer goes to the
//! dataplane's ordered change service; every member applies (or not) at one point of the
//! ordered stream, and only then does rotord take the new config into cmap, logging, the
//! allow-lists and the dataplane's next start (`Daemon::commit`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rotor_crypto::CryptoMode;
use rotor_proto::change::{Answer, ChangeKindRecord};
use zeroize::Zeroizing;

use crate::cmap::Value;
use crate::config::{self, runtime_changeable, Config};

/// Phrases in a summary of what a reload changes, at most; the rest are counted.
const SUMMARY_MAX: usize = 12;

/// What the node runs with now, as a change round compares it.
pub struct Running {
    pub config: Config,
    pub node_id: u32,
    pub bind: SocketAddr,
    /// The key frames are sealed under now (empty with crypto off), wiped on drop.
    pub authkey: Zeroizing<Vec<u8>>,
    /// Where the key came from (rotated keys are written here).
    pub keyfile: PathBuf,
    pub crypto_mode: CryptoMode,
    pub cluster_name: String,
}

/// A round this node can take: what it answers and what rotord takes on once it applies.
pub struct Prepared {
    pub config: Config,
    /// Every node of the new nodelist with its address (this node too, unless removed).
    pub nodelist: Vec<(u32, SocketAddr)>,
    /// The key to seal under after the round, when it is another key.
    pub authkey: Option<Zeroizing<Vec<u8>>>,
    pub keyfile: PathBuf,
    /// A key rotation from this file: written over `keyfile` once applied, so the node
    /// restarts with it.
    pub rotated_from: Option<PathBuf>,
    /// What changes, one phrase each ("totem.token: 3000 → 5000", "nodelist: node 4 at
    /// 198.18.0.4:5405 added", "authkey: a new key").
    pub changes: Vec<String>,
    /// votequorum's settings from the new quorum{} (when it runs votequorum): what the node
    /// applies there at the round's point of the stream.
    pub quorum: Option<totem_core::votequorum::QuorumSettings>,
}

impl Prepared {
    /// The answer the dataplane proposes; `quorum` is votequorum's start record of
    /// `self.quorum` (the daemon adds the tracking barrier).
    pub fn answer(&self, quorum: Option<rotor_proto::dataplane_quorum::QuorumStart>) -> Answer {
        Answer::Ready {
            totem: self.config.totem.settings.named(),
            nodelist: self.nodelist.clone(),
            authkey: self.authkey.as_ref().map(|k| k.to_vec()),
            quorum,
        }
    }
}

/// A cmap value as text, for messages.
fn text(value: &Value) -> String {
    let line = crate::cmap::format_cmapctl_line("k", value, true);
    line.split_once(" = ")
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default()
}

/// `file:line` of a key in `config`, or the file alone.
fn place(config: &Config, key: &str) -> String {
    match config.line_of(key) {
        Some(line) => format!("{}:{line}", config.file),
        None => config.file.clone(),
    }
}

/// The keys that differ between two configs, sorted.
fn changed_keys<'a>(old: &'a Config, new: &'a Config) -> Vec<&'a str> {
    let keys: BTreeSet<&str> = old
        .entries
        .keys()
        .chain(new.entries.keys())
        .map(String::as_str)
        .collect();
    keys.into_iter()
        .filter(|k| match (old.entries.get(*k), new.entries.get(*k)) {
            (Some(a), Some(b)) => !a.same_as(b),
            _ => true,
        })
        .collect()
}

/// Why `new` cannot replace `old` while the cluster runs: every key that changed and may not,
/// with where it is and what to do.
fn fixed_changes(old: &Config, new: &Config) -> Vec<String> {
    changed_keys(old, new)
        .into_iter()
        .filter(|k| !runtime_changeable(k))
        // A key no file line says (derived, like udp's multicast group) follows from one
        // that is reported.
        .filter(|k| old.line_of(k).is_some() || new.line_of(k).is_some())
        .map(|key| {
            let was = old.entries.get(key).map_or("not set".into(), text);
            let now = new.entries.get(key).map_or("not set".into(), text);
            let at = if new.entries.contains_key(key) {
                place(new, key)
            } else {
                place(old, key)
            };
            format!(
                "{at}: {key} cannot change while the cluster runs (it was {was}, the file now \
                 says {now}); put it back, or stop every node and start them with the new value"
            )
        })
        .collect()
}

/// What a reload changes, for the log.
fn summary(
    old: &Config,
    new: &Config,
    old_nodes: &[(u32, SocketAddr)],
    new_nodes: &[(u32, SocketAddr)],
    key: bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (id, addr) in new_nodes {
        if !old_nodes.iter().any(|(o, _)| o == id) {
            out.push(format!("nodelist: node {id} at {addr} added"));
        }
    }
    for (id, addr) in old_nodes {
        if !new_nodes.iter().any(|(n, _)| n == id) {
            out.push(format!("nodelist: node {id} at {addr} removed"));
        }
    }
    for s in totem_core::config::SETTINGS.iter() {
        let (a, b) = ((s.get)(&old.totem.settings), (s.get)(&new.totem.settings));
        if a != b {
            out.push(format!("totem.{}: {a} → {b}{}", s.name, s.unit.suffix()));
        }
    }
    for key in changed_keys(old, new) {
        if key.starts_with("nodelist.") || key.starts_with("totem.") {
            continue;
        }
        let was = old.entries.get(key).map_or("not set".into(), text);
        let now = new.entries.get(key).map_or("not set".into(), text);
        out.push(format!("{key}: {was} → {now}"));
    }
    if key {
        out.push("authkey: a new key".into());
    }
    if out.len() > SUMMARY_MAX {
        let more = out.len() - SUMMARY_MAX;
        out.truncate(SUMMARY_MAX);
        out.push(format!("and {more} more"));
    }
    out
}

/// The authkey at `path`, checked as at start (type, mode, length).
fn read_key(path: &Path, cluster_name: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    rotor_crypto::Keys::from_authkey_file(path, cluster_name).map_err(|e| e.to_string())?;
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| format!("authkey {}: cannot read: {e}", path.display()))
}

/// What this node answers for a round of `kind`, or why it refuses.
pub fn prepare(running: &Running, kind: &ChangeKindRecord) -> Result<Prepared, String> {
    let old = &running.config;
    let old_nodes = crate::discovery::nodelist_addresses(old)?;
    match kind {
        ChangeKindRecord::Reload => {
            let path = PathBuf::from(&old.file);
            let new = config::load(&path).map_err(|e| e.to_string())?;
            let fixed = fixed_changes(old, &new);
            if !fixed.is_empty() {
                return Err(fixed.join("; "));
            }
            let numbers = |c: &Config| c.totem.links.iter().map(|l| l.number).collect::<Vec<u8>>();
            if numbers(old) != numbers(&new) {
                return Err(format!(
                    "{}: the nodelist's links would change from {:?} to {:?}; links cannot be \
                     added or removed while the cluster runs yet: put them back, or stop every \
                     node and start them with the new links",
                    old.file,
                    numbers(old),
                    numbers(&new)
                ));
            }
            let nodelist = crate::discovery::nodelist_addresses(&new)?;
            if let Some((_, addr)) = nodelist.iter().find(|(id, _)| *id == running.node_id) {
                if *addr != running.bind {
                    return Err(format!(
                        "{}: this node's (nodeid {}) address would change from {} to {addr}; an \
                         address cannot change while the node runs: put it back, or restart \
                         this node with the new one",
                        old.file, running.node_id, running.bind
                    ));
                }
            }
            let keyfile = config::authkey_path(new.totem.keyfile.as_deref());
            let authkey = if running.crypto_mode == CryptoMode::None {
                None
            } else {
                let key = read_key(&keyfile, &running.cluster_name)?;
                (*key != *running.authkey).then_some(key)
            };
            let quorum = new.quorum_for(running.node_id).map_err(|e| e.to_string())?;
            let changes = summary(old, &new, &old_nodes, &nodelist, authkey.is_some());
            Ok(Prepared {
                config: new,
                nodelist,
                authkey,
                keyfile,
                rotated_from: None,
                changes,
                quorum,
            })
        }
        ChangeKindRecord::RotateKey { path } => {
            if running.crypto_mode == CryptoMode::None {
                return Err(format!(
                    "{}: crypto is off (totem.crypto_cipher and totem.crypto_hash are none): \
                     there is no key to rotate",
                    old.file
                ));
            }
            let from = PathBuf::from(path);
            let key = read_key(&from, &running.cluster_name)?;
            if *key == *running.authkey {
                return Err(format!(
                    "{path} holds the key the cluster runs with already; write a new one with \
                     rotor keygen -k {path}"
                ));
            }
            Ok(Prepared {
                config: old.clone(),
                nodelist: old_nodes,
                authkey: Some(key),
                keyfile: running.keyfile.clone(),
                rotated_from: Some(from),
                changes: vec![format!("authkey: the key in {path}")],
                quorum: None,
            })
        }
    }
}

/// Writes `key` over `path` (a temporary file in the same directory, mode 0400, renamed), so
/// a restart reads the rotated key.
pub fn write_key(path: &Path, key: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // A name of this process's own: a file left by an earlier attempt, or another rotord
    // writing the same path (nodes sharing a directory), is never opened (mode 0400).
    let tmp = path.with_extension(format!("rotor-new.{}", std::process::id()));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&tmp)?;
    file.write_all(key)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        config::parse_str("/etc/corosync/corosync.conf", text).unwrap()
    }

    const BASE: &str = "totem {\n  version: 2\n  cluster_name: alpha\n  token: 3000\n  \
                        transport: udpu\n}\nnodelist {\n  node {\n    ring0_addr: 10.0.0.1\n    \
                        nodeid: 1\n  }\n  node {\n    ring0_addr: 10.0.0.2\n    nodeid: 2\n  }\n}\n";

    #[test]
    fn fixed_keys_are_named_with_their_line() {
        let old = parse(BASE);
        let new = parse(
            &BASE
                .replace("cluster_name: alpha", "cluster_name: beta")
                .replace("transport: udpu", "transport: udp"),
        );
        let refused = fixed_changes(&old, &new);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[0].starts_with(
            "/etc/corosync/corosync.conf:3: totem.cluster_name cannot change while the cluster \
             runs (it was alpha, the file now says beta)"
        ));
        assert!(refused[1].contains(":5: totem.transport cannot change"));
        // A timeout and the nodelist may change.
        let new = parse(&BASE.replace("token: 3000", "token: 5000").replace(
            "  }\n}\n",
            "  }\n  node {\n    ring0_addr: 10.0.0.3\n    nodeid: 3\n  }\n}\n",
        ));
        assert!(fixed_changes(&old, &new).is_empty());
        let nodes = |c: &Config| crate::discovery::nodelist_addresses(c).unwrap();
        let changes = summary(&old, &new, &nodes(&old), &nodes(&new), false);
        assert_eq!(changes[0], "nodelist: node 3 at 10.0.0.3:5405 added");
        assert!(
            changes.contains(&"totem.token: 3000 → 5650 ms".to_string()),
            "{changes:?}"
        );
    }

    #[test]
    fn netmtu_and_interface_keys_are_fixed_logging_is_not() {
        assert!(!runtime_changeable("totem.netmtu"));
        assert!(!runtime_changeable("totem.crypto_cipher"));
        assert!(!runtime_changeable("totem.interface.0.mcastport"));
        assert!(!runtime_changeable("quorum.provider"));
        assert!(!runtime_changeable("quorum.wait_for_all"));
        assert!(!runtime_changeable("quorum.auto_tie_breaker"));
        assert!(runtime_changeable("quorum.two_node"));
        assert!(runtime_changeable("quorum.device.votes"));
        assert!(runtime_changeable("nodelist.node.2.quorum_votes"));
        assert!(!runtime_changeable("rotor.poll_mode"));
        assert!(!runtime_changeable("system.state_dir"));
        assert!(runtime_changeable("totem.token"));
        assert!(runtime_changeable("totem.keyfile"));
        assert!(runtime_changeable("nodelist.node.3.ring0_addr"));
        assert!(runtime_changeable("logging.debug"));
        assert!(runtime_changeable("uidgid.config.uid.1000"));
        assert!(runtime_changeable("quorum.expected_votes"));
    }
}
