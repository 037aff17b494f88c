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
use rotor_proto::link::LinkStart;
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
    /// Every link this node would run (`discovery::link_starts` of the new config; the
    /// running ones when the round leaves this node out): the dataplane opens those added and
    /// closes those removed where the round applies.
    pub links: Vec<LinkStart>,
    /// The XDP programs rotord attached for the links this round adds on XDP (rotord fills
    /// it): kept once the round applies, detached if it does not.
    pub xdp: crate::xdp::Programs,
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
            links: self.links.clone(),
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

/// The link number of a `totem.interface.<linknumber>.*` key.
fn interface_link(key: &str) -> Option<u8> {
    let rest = key.strip_prefix("totem.interface.")?;
    rest.split_once('.')?.0.parse().ok()
}

/// The link numbers `new` adds to `old`'s and those it removes.
fn link_changes(old: &Config, new: &Config) -> (Vec<u8>, Vec<u8>) {
    let numbers = |c: &Config| c.totem.links.iter().map(|l| l.number).collect::<Vec<u8>>();
    let (was, now) = (numbers(old), numbers(new));
    let added = now.iter().copied().filter(|n| !was.contains(n)).collect();
    let removed = was.iter().copied().filter(|n| !now.contains(n)).collect();
    (added, removed)
}

/// Why `new` cannot replace `old` while the cluster runs: every key that changed and may not,
/// with where it is and what to do. The `interface{}` keys of a link added or removed as a
/// whole (`moving`) come and go with it; those of a link kept stay fixed, as in corosync (its
/// port is read once; a link is reconfigured by removing it by one reload and adding it back
/// by another).
fn fixed_changes(old: &Config, new: &Config, moving: &[u8]) -> Vec<String> {
    changed_keys(old, new)
        .into_iter()
        .filter(|k| !runtime_changeable(k))
        .filter(|k| !interface_link(k).is_some_and(|n| moving.contains(&n)))
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
    let (added, removed) = link_changes(old, new);
    for n in added {
        out.push(format!("links: link {n} added"));
    }
    for n in removed {
        out.push(format!("links: link {n} removed"));
    }
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

/// This node's address on every link it keeps must stay (its socket is bound there; corosync:
/// "To reconfigure an interface it must be deleted and recreated"); peers' may change.
/// Links added or removed as a whole are what a reload may do; the config's own checks (the
/// same as a start's: every node has every link, no address twice, one family) ran already.
/// Added links run on the transport rotord chooses for them as at start (`Daemon`'s
/// `choose_added_links`).
fn check_kept_links(
    new: &Config,
    me: u32,
    old: &[LinkStart],
    links: &[LinkStart],
) -> Result<(), String> {
    for link in links {
        let n = link.settings.number;
        let Some(was) = old.iter().find(|o| o.settings.number == n) else {
            continue;
        };
        if was.local == link.local {
            continue;
        }
        let index = new
            .nodes
            .iter()
            .find(|node| node.nodeid == Some(me))
            .map_or(0, |node| node.index);
        let key = format!("nodelist.node.{index}.ring{n}_addr");
        return Err(format!(
            "{}: {key}: this node's (nodeid {me}) address on link {n} would change from {} to \
             {}; an address cannot change while the node runs: put it back, or remove link {n} \
             by one reload and add it back with the new address by another, or restart this \
             node",
            place(new, &key),
            was.local.ip(),
            link.local.ip()
        ));
    }
    Ok(())
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
            let (added, removed) = link_changes(old, &new);
            let moving: Vec<u8> = added.iter().chain(&removed).copied().collect();
            let fixed = fixed_changes(old, &new, &moving);
            if !fixed.is_empty() {
                return Err(fixed.join("; "));
            }
            let nodelist = crate::discovery::nodelist_addresses(&new)?;
            let listed = nodelist.iter().any(|(id, _)| *id == running.node_id);
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
            let old_links = crate::discovery::link_starts(old, running.node_id)?;
            let links = if listed {
                let links = crate::discovery::link_starts(&new, running.node_id)?;
                check_kept_links(&new, running.node_id, &old_links, &links)?;
                links
            } else {
                // Removed from the nodelist: it leaves on the links it runs.
                old_links
            };
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
                links,
                xdp: Default::default(),
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
                links: crate::discovery::link_starts(old, running.node_id)?,
                xdp: Default::default(),
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
        let refused = fixed_changes(&old, &new, &[]);
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
        assert!(fixed_changes(&old, &new, &[]).is_empty());
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

    /// A config of nodes 1 and 2 with `ring0` (and `ring1`, if given) addresses and `extra`
    /// inside totem{}.
    fn two_nodes(ring1: Option<[&str; 2]>, extra: &str) -> String {
        let node = |i: usize| {
            let r1 = ring1.map_or(String::new(), |r| format!("    ring1_addr: {}\n", r[i]));
            format!(
                "  node {{\n    ring0_addr: 10.0.0.{}\n{r1}    nodeid: {}\n  }}\n",
                i + 1,
                i + 1
            )
        };
        format!(
            "totem {{\n  version: 2\n  cluster_name: alpha\n  transport: knet\n  \
             crypto_cipher: none\n  crypto_hash: none\n{extra}}}\nnodelist {{\n{}{}}}\n",
            node(0),
            node(1)
        )
    }

    /// Node 1 running `text`, and what it answers once its file says `next`.
    fn reload(text: &str, next: &str) -> Result<Prepared, String> {
        let dir = std::env::temp_dir().join(format!(
            "rotor-reload-links-{}-{}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace("::", "-")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("corosync.conf");
        std::fs::write(&file, text).unwrap();
        let config = config::load(&file).unwrap();
        let running = Running {
            config,
            node_id: 1,
            bind: "10.0.0.1:5405".parse().unwrap(),
            authkey: Zeroizing::new(Vec::new()),
            keyfile: dir.join("authkey"),
            crypto_mode: CryptoMode::None,
            cluster_name: "alpha".into(),
        };
        std::fs::write(&file, next).unwrap();
        let answer = prepare(&running, &ChangeKindRecord::Reload);
        let _ = std::fs::remove_dir_all(&dir);
        answer
    }

    const LINK1: &str = "  interface {\n    linknumber: 1\n    knet_link_priority: 2\n  }\n";

    #[test]
    fn a_reload_adds_a_link_and_another_removes_it() {
        let one = two_nodes(None, "");
        let two = two_nodes(Some(["10.1.0.1", "10.1.0.2"]), LINK1);
        let added = reload(&one, &two).unwrap();
        let numbers: Vec<u8> = added.links.iter().map(|l| l.settings.number).collect();
        assert_eq!(numbers, [0, 1]);
        assert_eq!(added.links[1].local, "10.1.0.1:5405".parse().unwrap());
        assert_eq!(
            added.links[1].peers,
            [(2, "10.1.0.2:5405".parse().unwrap())]
        );
        assert_eq!(added.links[1].settings.priority, 2);
        assert!(
            added.changes.contains(&"links: link 1 added".to_owned()),
            "{:?}",
            added.changes
        );
        let removed = reload(&two, &one).unwrap();
        assert_eq!(removed.links.len(), 1);
        assert!(removed
            .changes
            .contains(&"links: link 1 removed".to_owned()));
        // A peer's address on a kept link may change; this node's may not.
        let moved = two_nodes(Some(["10.1.0.1", "10.1.0.9"]), LINK1);
        assert_eq!(
            reload(&two, &moved).unwrap().links[1].peers,
            [(2, "10.1.0.9:5405".parse().unwrap())]
        );
        let mine = two_nodes(Some(["10.1.0.8", "10.1.0.2"]), LINK1);
        let e = reload(&two, &mine).err().unwrap();
        assert!(
            e.contains(
                "corosync.conf:15: nodelist.node.0.ring1_addr: this node's (nodeid 1) \
                        address on link 1 would change from 10.1.0.1 to 10.1.0.8"
            ),
            "{e}"
        );
        // A kept link's interface{} keys stay fixed.
        let priority = two.replace("knet_link_priority: 2", "knet_link_priority: 3");
        let e = reload(&two, &priority).err().unwrap();
        assert!(
            e.contains(":9: totem.interface.1.knet_link_priority cannot change"),
            "{e}"
        );
    }

    #[test]
    fn a_link_reload_that_cannot_work_is_refused_naming_the_key() {
        let one = two_nodes(None, "");
        // A node without the new link.
        let missing = two_nodes(Some(["10.1.0.1", "10.1.0.2"]), LINK1)
            .replace("    ring1_addr: 10.1.0.2\n", "");
        let e = reload(&one, &missing).err().unwrap();
        assert!(e.contains("corosync.conf:"), "{e}");
        assert!(e.contains("nodelist.node.1"), "{e}");
        assert!(
            e.contains("Not all nodes have the same number of links"),
            "{e}"
        );
        // An address twice.
        let twice = two_nodes(Some(["10.1.0.1", "10.1.0.1"]), LINK1);
        let e = reload(&one, &twice).err().unwrap();
        assert!(e.contains("nodelist.node.1.ring1_addr"), "{e}");
        assert!(e.contains("address 10.1.0.1 is already"), "{e}");
        // Another family on the new link.
        let family = two_nodes(Some(["2001:db8::1", "2001:db8::2"]), LINK1);
        assert!(reload(&one, &family).is_err());
        // Without link 0: the only link cannot go.
        let two = two_nodes(Some(["10.1.0.1", "10.1.0.2"]), LINK1);
        let no_ring0 = two
            .replace("    ring0_addr: 10.0.0.1\n", "")
            .replace("    ring0_addr: 10.0.0.2\n", "");
        let e = reload(&two, &no_ring0).err().unwrap();
        assert!(e.contains("ring0_addr"), "{e}");
    }
}
