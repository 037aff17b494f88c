//! Changing a running cluster, end to end on one host (no root): rotords on 127.0.0.1-4, each
//! with its own corosync.conf and authkey. `rotor cfg -R` applies a new token timeout on every
//! node with no ring change; a fixed key (cluster_name) or files that differ are refused naming
//! the key and the node while the ring runs on; `rotor cmap set` of a totem timeout takes
//! effect on one node; a node is added and removed by reload (a running node removed leaves
//! and stops); a node configured unlike the ring is kept out with the differing key in the log
//! and no churn; keys rotate by reload and by `--rotate-key` (the old one retired), and a node
//! that missed a rotation is told so in `rotor status`; `-k` kills a node (exit 15, reason
//! logged); `-H` is vetoed by a tracking application and then goes ahead, announced to every
//! node; the output text and exit statuses of corosync-cfgtool; quorum{}'s runtime keys by
//! reload; and users admitted by a uidgid.d file and a reload, or a cmap write (as root).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rotor_client::cfg::{Cfg, CfgEvent, ShutdownFlags};
use rotor_client::cmap::{Cmap, Value};
use rotor_proto::RingState;

#[allow(dead_code)] // The CPG helpers are for the other end-to-end tests.
mod common;

/// Bounds every wait of these tests.
const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    dir: PathBuf,
    tag: String,
    port: u16,
    children: Vec<Option<Child>>,
    /// Links of every node: link 0 at 127.0.0.N, link 1 (when 2) at 127.0.1.N.
    links: usize,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            // SAFETY: kill(2) on a child we started; SIGTERM lets rotord stop its dataplane.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in self.children.iter_mut().flatten() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_key(path: &Path, byte: u8) {
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .unwrap()
        .write_all(&[byte; 256])
        .unwrap();
}

impl Cluster {
    /// A directory for up to four nodes; `index` keeps concurrent tests apart.
    fn new(index: u16) -> Cluster {
        let tag = format!("{}-{index}", std::process::id());
        let dir = std::env::temp_dir().join(format!("rotor-cfg-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = 20_000 + (std::process::id() % 4_000) as u16 * 8 + index;
        Cluster {
            dir,
            tag,
            port,
            children: (0..4).map(|_| None).collect(),
            links: 1,
        }
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        let d = self.dir.join(format!("n{i}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn conf(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("corosync.conf")
    }

    fn key(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("authkey")
    }

    fn socket(&self, i: usize) -> String {
        format!("rt-cfg-{}-n{i}", self.tag)
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.node_dir(i).join("rotord.log")).unwrap_or_default()
    }

    /// Node `i`'s corosync.conf: `nodes` in the nodelist, `token`, and `extra` in totem{}.
    fn write_conf(&self, i: usize, nodes: &[usize], token: u32, extra: &str) {
        let mut list = String::new();
        let mut interfaces = String::new();
        for link in 0..self.links {
            interfaces.push_str(&format!(
                "  interface {{\n    linknumber: {link}\n    mcastport: {}\n  }}\n",
                self.port
            ));
        }
        for n in nodes {
            let more: String = (1..self.links)
                .map(|l| format!("    ring{l}_addr: 127.0.{l}.{n}\n"))
                .collect();
            list.push_str(&format!(
                "  node {{\n    nodeid: {n}\n    ring0_addr: 127.0.0.{n}\n{more}  }}\n"
            ));
        }
        let text = format!(
            "totem {{\n  version: 2\n  cluster_name: cfg\n  token: {token}\n  keyfile: {}\n{extra}\
             {interfaces}}}\nnodelist {{\n{list}}}\n\
             logging {{\n  to_syslog: no\n}}\nsystem {{\n  state_dir: {}\n}}\n",
            self.key(i).display(),
            self.node_dir(i).join("state").display()
        );
        std::fs::write(self.conf(i), text).unwrap();
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::File::create(self.node_dir(i).join("rotord.log")).unwrap();
        let child = Command::new(common::bin_dir().join("rotord"))
            .args(["-f", "-c"])
            .arg(self.conf(i))
            .args(["--node-id", &i.to_string()])
            .env("ROTOR_IPC_SOCKET", self.socket(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rotord");
        self.children[i - 1] = Some(child);
    }

    /// Waits (bounded) for node `i` to exit; its status.
    fn wait_exit(&mut self, i: usize) -> std::process::ExitStatus {
        let child = self.children[i - 1].as_mut().expect("started");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.children[i - 1] = None;
                return status;
            }
            assert!(Instant::now() < deadline, "node {i} did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self, i: usize) -> std::process::ExitStatus {
        let child = self.children[i - 1].as_ref().expect("started");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        self.wait_exit(i)
    }

    fn rotor(&self, i: usize, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(args)
            .env("ROTOR_IPC_SOCKET", self.socket(i))
            .output()
            .expect("run rotor");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn cmap(&self, i: usize, key: &str) -> Option<Value> {
        Cmap::initialize_at(&self.socket(i))
            .and_then(|mut c| c.get(key))
            .ok()
    }

    /// (ring id, members) of node `i` when operational.
    fn ring(&self, i: usize) -> Option<(String, Vec<u32>)> {
        let s = Cmap::initialize_at(&self.socket(i))
            .and_then(|mut c| c.status())
            .ok()?;
        (s.state == RingState::Operational).then(|| {
            let members = s
                .nodes
                .iter()
                .filter(|n| n.connected)
                .map(|n| n.node_id)
                .collect();
            (format!("{}.{:x}", s.ring_rep, s.ring_seq), members)
        })
    }

    /// Waits until every node of `nodes` is operational with exactly `nodes` as members; the
    /// ring id.
    fn wait_ring(&self, nodes: &[usize]) -> String {
        let want: Vec<u32> = nodes.iter().map(|n| *n as u32).collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let rings: Vec<Option<(String, Vec<u32>)>> =
                nodes.iter().map(|i| self.ring(*i)).collect();
            if rings.iter().all(|r| {
                r.as_ref()
                    .is_some_and(|(id, m)| *m == want && *id == rings[0].as_ref().unwrap().0)
            }) {
                return rings[0].as_ref().unwrap().0.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no ring of {want:?} within {WAIT:?}: {rings:?}\nlog of node {}:\n{}",
                nodes[0],
                self.log(nodes[0])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `check` holds (bounded).
    fn wait_for(&self, what: &str, check: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !check(self) {
            if Instant::now() >= deadline {
                let logs: Vec<String> = (1..=4)
                    .map(|i| format!("--- node {i}:\n{}", self.log(i)))
                    .collect();
                panic!("timed out waiting for {what}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn u32_of(v: Option<Value>) -> Option<u32> {
    match v {
        Some(Value::U32(v)) => Some(v),
        _ => None,
    }
}

#[test]
fn a_reload_changes_the_token_everywhere_and_refuses_what_cannot_change() {
    let mut c = Cluster::new(0);
    for i in 1..=3 {
        write_key(&c.key(i), 0x11);
        c.write_conf(i, &[1, 2, 3], 1000, "");
        c.start(i);
    }
    let ring = c.wait_ring(&[1, 2, 3]);
    for i in 1..=3 {
        c.write_conf(i, &[1, 2, 3], 2000, "");
    }
    let (code, out, err) = c.rotor(1, &["cfg", "-R"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Reloading corosync.conf...\nDone\n"),
        "{err}"
    );
    // Every member applied where the round was decided; each rotord takes it on as its
    // dataplane reports it.
    c.wait_for("every node on the new token", |c| {
        (1..=3).all(|i| u32_of(c.cmap(i, "runtime.config.totem.token")) == Some(2650))
    });
    for i in 1..=3 {
        // token + (3 − 2) × token_coefficient (650 by default).
        assert_eq!(
            u32_of(c.cmap(i, "runtime.config.totem.token")),
            Some(2650),
            "node {i}"
        );
        assert_eq!(u32_of(c.cmap(i, "totem.token")), Some(2000), "node {i}");
        assert_eq!(
            c.ring(i).map(|r| r.0),
            Some(ring.clone()),
            "node {i}: no ring change"
        );
    }
    assert!(
        c.log(2).contains("Config reload requested by node 1"),
        "{}",
        c.log(2)
    );
    assert!(
        c.log(3)
            .contains("applied on every member: totem.token: 1650 → 2650 ms"),
        "{}",
        c.log(3)
    );

    // Node 2's file changes the cluster name: refused, naming it, the node and the line.
    c.write_conf(2, &[1, 2, 3], 2000, "");
    let text = std::fs::read_to_string(c.conf(2)).unwrap();
    std::fs::write(
        c.conf(2),
        text.replace("cluster_name: cfg", "cluster_name: other"),
    )
    .unwrap();
    let (code, out, err) = c.rotor(3, &["cfg", "-R"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.starts_with("Reloading corosync.conf...\nERROR from reload: node 2: "),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{}:3: totem.cluster_name cannot change while the cluster runs (it was cfg, the \
             file now says other)",
            c.conf(2).display()
        )),
        "{out}"
    );
    assert!(
        out.ends_with(" - see syslog for more information\n"),
        "{out}"
    );
    assert!(
        err.contains("Could not reload configuration. Error CS_ERR_INVALID_PARAM"),
        "{err}"
    );
    assert!(
        err.contains("Errors in applying config, corosync.conf might not match the running system"),
        "{err}"
    );
    for i in 1..=3 {
        assert_eq!(
            u32_of(c.cmap(i, "totem.token")),
            Some(2000),
            "node {i}: nothing applied"
        );
        assert_eq!(
            c.ring(i).map(|r| r.0),
            Some(ring.clone()),
            "node {i}: the ring runs on"
        );
    }
    let (_, status, _) = c.rotor(1, &["status"]);
    assert!(status.contains("Last reload refused: node 2: "), "{status}");

    // Node 3's file says another token: the files differ, named.
    c.write_conf(2, &[1, 2, 3], 2000, "");
    c.write_conf(3, &[1, 2, 3], 3000, "");
    let (code, out, _) = c.rotor(1, &["cfg", "-R"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("node 3's configuration differs from node 1's: ")
            && out.contains("totem.token: 3650 on node 3, 2650 on node 1"),
        "{out}"
    );
    c.write_conf(3, &[1, 2, 3], 2000, "");
    let (code, _, err) = c.rotor(1, &["cfg", "-R"]);
    assert_eq!(code, 0, "{err}");
    let (_, status, _) = c.rotor(1, &["status"]);
    assert!(!status.contains("Last reload refused"), "{status}");

    // cmap: a totem timeout takes effect on the node written to; a fixed key is refused.
    let (code, _, err) = c.rotor(1, &["cmap", "set", "totem.token", "u32", "1500"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(u32_of(c.cmap(1, "runtime.config.totem.token")), Some(2150));
    assert_eq!(u32_of(c.cmap(1, "totem.token")), Some(1500));
    assert_eq!(u32_of(c.cmap(2, "runtime.config.totem.token")), Some(2650));
    let (code, _, err) = c.rotor(1, &["cmap", "set", "totem.netmtu", "u32", "1400"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("cmap key totem.netmtu: cannot be changed while the cluster runs"),
        "{err}"
    );
    let (code, _, err) = c.rotor(1, &["cmap", "set", "totem.token", "u32", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("totem.token"), "{err}");
    let (code, _, err) = c.rotor(
        1,
        &[
            "cmap",
            "set",
            "nodelist.node.0.ring0_addr",
            "str",
            "127.0.0.9",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("run rotor cfg -R"), "{err}");
    assert_eq!(
        c.ring(1).map(|r| r.0),
        Some(ring.clone()),
        "the ring ran on throughout"
    );
}

#[test]
fn nodes_are_added_and_removed_by_reload() {
    let mut c = Cluster::new(1);
    for i in 1..=3 {
        write_key(&c.key(i), 0x22);
        c.write_conf(i, &[1, 2, 3], 1000, "");
        c.start(i);
    }
    c.wait_ring(&[1, 2, 3]);
    // Node 4 started before the ring's files list it: kept out, named, no churn.
    write_key(&c.key(4), 0x22);
    c.write_conf(4, &[1, 2, 3, 4], 1000, "");
    let ring = c.wait_ring(&[1, 2, 3]);
    c.start(4);
    c.wait_for("both sides to say the nodelists differ", |c| {
        c.log(1).contains("Node 4 at 127.0.0.4:")
            && c.log(1)
                .contains("is not in the nodelist; add it to the nodelist of every node")
            && c.log(4).contains(
                "Node 1 is kept out of the ring: its configuration differs from this node's: \
                 nodelist.4: not set there, 127.0.0.4:",
            )
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.ring(1).map(|r| r.0),
        Some(ring.clone()),
        "the ring did not churn"
    );
    // Add it: every file lists it, a reload, and it joins.
    for i in 1..=3 {
        c.write_conf(i, &[1, 2, 3, 4], 1000, "");
    }
    let (code, _, err) = c.rotor(2, &["cfg", "-R"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        c.log(1).contains("nodelist: node 4 at 127.0.0.4:"),
        "{}",
        c.log(1)
    );
    c.wait_ring(&[1, 2, 3, 4]);
    let (code, out, _) = c.rotor(1, &["cfg", "-a", "4"]);
    assert_eq!((code, out.as_str()), (0, "127.0.0.4\n"));
    // Remove it while it runs: its file too, and it leaves and stops on its own.
    for i in 1..=4 {
        c.write_conf(i, &[1, 2, 3], 1000, "");
    }
    let (code, _, err) = c.rotor(1, &["cfg", "-R"]);
    assert_eq!(code, 0, "{err}");
    let status = c.wait_exit(4);
    assert!(status.success(), "node 4 exits cleanly: {status}");
    assert!(
        c.log(4)
            .contains("the nodelist in effect no longer lists this node (nodeid 4)"),
        "{}",
        c.log(4)
    );
    c.wait_ring(&[1, 2, 3]);
    let (code, _, err) = c.rotor(1, &["cfg", "-a", "4"]);
    assert_eq!(code, 1);
    assert_eq!(err, "Could not get node address for nodeid 4\n");
}

#[test]
fn keys_rotate_by_reload_and_by_rotate_key() {
    let mut c = Cluster::new(2);
    for i in 1..=3 {
        write_key(&c.key(i), 0x33);
        c.write_conf(i, &[1, 2, 3], 1000, "");
        c.start(i);
    }
    let ring = c.wait_ring(&[1, 2, 3]);
    let key_line = |c: &Cluster, i: usize| {
        let (_, out, _) = c.rotor(i, &["status"]);
        out.lines()
            .find(|l| l.starts_with("Key "))
            .unwrap_or_default()
            .to_owned()
    };
    let first = key_line(&c, 1);
    assert!(first.len() == "Key 01234567".len(), "{first}");
    // A new key file on every node, and a reload.
    for i in 1..=3 {
        write_key(&c.key(i), 0x44);
    }
    let (code, _, err) = c.rotor(3, &["cfg", "-R"]);
    assert_eq!(code, 0, "{err}");
    c.wait_for("the old key retired everywhere", |c| {
        (1..=3).all(|i| {
            let k = key_line(c, i);
            k != first && !k.contains("rotation") && k.starts_with("Key ")
        })
    });
    for i in 1..=3 {
        assert!(c.log(i).contains("retired and wiped"), "{}", c.log(i));
        assert_eq!(
            c.ring(i).map(|r| r.0),
            Some(ring.clone()),
            "node {i}: no ring change"
        );
    }
    let second = key_line(&c, 1);
    // --rotate-key FILE: the same path on every node (one host here).
    let next = c.dir.join("authkey.next");
    write_key(&next, 0x55);
    let (code, out, err) = c.rotor(2, &["cfg", "--rotate-key", next.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!("Rotating the cluster key to {}...\nDone\n", next.display())
    );
    c.wait_for("the key from FILE everywhere", |c| {
        (1..=3).all(|i| {
            let k = key_line(c, i);
            k != second && !k.contains("rotation")
        })
    });
    for i in 1..=3 {
        // Each node's keyfile now holds it, for its next start.
        assert_eq!(
            std::fs::read(c.key(i)).unwrap(),
            vec![0x55; 256],
            "node {i}"
        );
    }
    // Rotating to the key in use is refused, and the key of a cluster without crypto too.
    let (code, _, err) = c.rotor(2, &["cfg", "--rotate-key", next.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("holds the key the cluster runs with already"),
        "{err}"
    );

    // Node 3 misses a rotation: it is told, and so are the others.
    assert!(c.stop(3).success());
    c.wait_ring(&[1, 2]);
    for i in 1..=2 {
        write_key(&c.key(i), 0x66);
    }
    let (code, _, err) = c.rotor(1, &["cfg", "-R"]);
    assert_eq!(code, 0, "{err}");
    c.start(3);
    c.wait_for("node 3 to show the rotation it missed", |c| {
        let (_, out, _) = c.rotor(3, &["status"]);
        out.contains("WARNING: node 1 seals under key")
            && out.contains("which this node does not hold: one of the two missed a key rotation")
    });
    assert_eq!(c.ring(1).map(|r| r.1), Some(vec![1, 2]));
}

#[test]
fn kill_shutdown_and_the_text_of_cfgtool() {
    let mut c = Cluster::new(3);
    for i in 1..=3 {
        write_key(&c.key(i), 0x77);
        c.write_conf(i, &[1, 2, 3], 1000, "");
        c.start(i);
    }
    c.wait_ring(&[1, 2, 3]);
    // A link is connected once its pings are answered (knet_pong_count of them in a row).
    c.wait_for("node 2's links to be up", |c| {
        c.rotor(2, &["cfg", "-s", "-b"])
            .1
            .contains("\tstatus\t= 3n3\n")
    });
    // -s, -b, -n, --local-id, -a, -L, usage and a bad node id.
    let (code, out, _) = c.rotor(2, &["cfg", "-s"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("Local node ID 2, transport "), "{out}");
    assert!(lines[1].starts_with("LINK ID 0 "), "{out}");
    assert_eq!(lines[2], "\taddr\t= 127.0.0.2");
    assert_eq!(lines[3], "\tstatus:");
    assert_eq!(lines[4], "\t\tnodeid:          1:\tconnected");
    assert_eq!(lines[5], "\t\tnodeid:          2:\tlocalhost");
    let (_, out, _) = c.rotor(2, &["cfg", "-s", "-b"]);
    assert!(out.contains("\n\tstatus\t= 3n3\n"), "{out}");
    let (_, out, _) = c.rotor(2, &["cfg", "-s", "-i", "10.9.9.9"]);
    assert!(!out.contains("LINK ID"), "{out}");
    let (code, out, _) = c.rotor(2, &["cfg", "-n"]);
    assert_eq!(code, 0);
    let transport = out
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        [
            "nodeid: 1 reachable",
            &format!("   LINK: 0 {transport} (127.0.0.2->127.0.0.1) enabled connected mtu: 1500"),
            "",
            "nodeid: 3 reachable",
            &format!("   LINK: 0 {transport} (127.0.0.2->127.0.0.3) enabled connected mtu: 1500"),
            "",
        ]
    );
    assert_eq!(c.rotor(2, &["cfg", "--local-id"]).1, "2\n");
    assert_eq!(c.rotor(2, &["cfg", "-a", "3"]).1, "127.0.0.3\n");
    assert_eq!(c.rotor(2, &["cfg", "-L"]).0, 0);
    let (code, out, _) = c.rotor(2, &["cfg"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(
            "rotor cfg [[-i <interface ip>] [-b] -s] [-R] [-L] [-k nodeid] [-a nodeid] [-h] [-H]"
        ),
        "{out}"
    );
    let (code, _, err) = c.rotor(2, &["cfg", "-k", "0"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "The nodeid was not valid, try a positive number\n")
    );
    let (code, out, err) = c.rotor(2, &["cfg", "-k", "9"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            1,
            "Killing node 9\n",
            "Could not kill node (error = CS_ERR_NOT_EXIST)\n"
        )
    );

    // -k: node 3 leaves and stops, saying who and why.
    let (code, out, _) = c.rotor(1, &["cfg", "-k", "3"]);
    assert_eq!((code, out.as_str()), (0, "Killing node 3\n"));
    let status = c.wait_exit(3);
    assert_eq!(status.code(), Some(15), "a killed node exits 15");
    assert!(
        c.log(3).contains("Killed by node 1 : Killed by rotor cfg"),
        "{}",
        c.log(3)
    );
    c.wait_ring(&[1, 2]);

    // -H on node 2 while an application tracking shutdowns says no: refused, node 2 runs on.
    let socket = c.socket(2);
    let voter = |answer: bool| {
        let socket = socket.clone();
        std::thread::spawn(move || {
            let mut cfg = Cfg::initialize_at(&socket).unwrap();
            cfg.track_start().unwrap();
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if let Some(CfgEvent::ShutdownRequested { flags, .. }) =
                    cfg.poll_event(Some(Duration::from_millis(100))).unwrap()
                {
                    assert_eq!(flags, ShutdownFlags::Request);
                    cfg.reply_to_shutdown(answer).unwrap();
                    return true;
                }
            }
            false
        })
    };
    let no = voter(false);
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = c.rotor(2, &["cfg", "-H"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Shutting down rotor\n"),
        "as cfgtool: 0 even when refused"
    );
    assert!(
        err.starts_with("Could not shutdown (error = 10)\n"),
        "{err}"
    );
    assert!(no.join().unwrap(), "the application was asked");
    c.wait_ring(&[1, 2]);
    // The same application says yes now: node 2 stops cleanly, and node 1 is told.
    let yes = voter(true);
    std::thread::sleep(Duration::from_millis(300));
    let (code, _, err) = c.rotor(2, &["cfg", "-H"]);
    assert_eq!(code, 0);
    assert!(err.is_empty(), "{err}");
    assert!(yes.join().unwrap());
    assert!(c.wait_exit(2).success());
    c.wait_for("node 1 to log the shutdown", |c| {
        c.log(1).contains("Node 2 was shut down by sysadmin")
    });
}

#[test]
fn quorum_options_take_effect_by_reload() {
    let mut c = Cluster::new(4);
    let quorum = |expected: Option<u32>, wait_for_all: bool| {
        let mut q = String::from("quorum {\n  provider: corosync_votequorum\n");
        if let Some(e) = expected {
            q.push_str(&format!("  expected_votes: {e}\n"));
        }
        if wait_for_all {
            q.push_str("  wait_for_all: 1\n");
        }
        q.push_str("}\n");
        q
    };
    let write = |c: &Cluster, i: usize, expected: Option<u32>, wfa: bool| {
        c.write_conf(i, &[1, 2, 3], 1000, "");
        let mut text = std::fs::read_to_string(c.conf(i)).unwrap();
        text.push_str(&quorum(expected, wfa));
        std::fs::write(c.conf(i), text).unwrap();
    };
    for i in 1..=3 {
        write_key(&c.key(i), 0x88);
        write(&c, i, None, false);
        c.start(i);
    }
    c.wait_ring(&[1, 2, 3]);
    let expected_votes = |c: &Cluster, i: usize| {
        let (code, out, _) = c.rotor(i, &["quorum", "-s"]);
        let votes = out
            .lines()
            .find_map(|l| l.strip_prefix("Expected votes:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        (code, votes)
    };
    c.wait_for("a quorate ring of three", |c| {
        (1..=3).all(|i| expected_votes(c, i) == (0, "3".into()))
    });
    // Expected votes raised to 7 in every file: quorum 4, three votes present, not quorate
    // (rotor quorum exits 2), with no ring change.
    for i in 1..=3 {
        write(&c, i, Some(7), false);
    }
    let (code, _, err) = c.rotor(1, &["cfg", "-R"]);
    assert_eq!(code, 0, "{err}");
    c.wait_for("expected votes 7 everywhere, not quorate", |c| {
        (1..=3).all(|i| expected_votes(c, i) == (2, "7".into()))
    });
    // Back: quorate again.
    for i in 1..=3 {
        write(&c, i, None, false);
    }
    let (code, _, err) = c.rotor(2, &["cfg", "-R"]);
    assert_eq!(code, 0, "{err}");
    c.wait_for("expected votes 3 everywhere, quorate", |c| {
        (1..=3).all(|i| expected_votes(c, i) == (0, "3".into()))
    });
    // wait_for_all is read at start only: refused, named.
    for i in 1..=3 {
        write(&c, i, None, true);
    }
    let (code, out, _) = c.rotor(3, &["cfg", "-R"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("quorum.wait_for_all cannot change while the cluster runs"),
        "{out}"
    );
}

/// Users admitted while rotord runs (as root only: the client runs as another uid through
/// setpriv): a file in the uidgid.d directory beside corosync.conf and a reload admit one, a
/// cmap write of `uidgid.config.uid.N` admits another at once; no restart.
#[test]
fn users_admitted_by_uidgid_d_and_cmap_without_restart() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: running a client as another user needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let mut c = Cluster::new(5);
    write_key(&c.key(1), 0x99);
    c.write_conf(1, &[1], 1000, "");
    c.start(1);
    c.wait_ring(&[1]);
    // A copy of rotor every user may run, whatever the permissions of the build directory.
    let bin = c.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in [&c.dir, &bin] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let rotor = bin.join("rotor");
    std::fs::copy(env!("CARGO_BIN_EXE_rotor"), &rotor).unwrap();
    std::fs::set_permissions(&rotor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_user = |uid: u32| {
        let out = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(&rotor)
            .args(["cmap", "get", "totem.token"])
            .env("ROTOR_IPC_SOCKET", c.socket(1))
            .output()
            .expect("run setpriv");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = as_user(4242);
    assert!(
        !ok && err.contains("permission denied for uid 4242"),
        "{err}"
    );
    let dir = c.node_dir(1).join("uidgid.d");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("operators"), "uidgid {\n  uid: 4242\n}\n").unwrap();
    let (code, out, err) = c.rotor(1, &["cfg", "-R"]);
    assert_eq!(code, 0, "{out}{err}");
    let (ok, err) = as_user(4242);
    assert!(ok, "uid 4242 after the reload: {err}");
    assert_eq!(
        c.cmap(1, "uidgid.config.uid.4242"),
        Some(Value::U8(1)),
        "the uidgid.d entry in cmap"
    );
    // A cmap write takes effect at once.
    let (ok, err) = as_user(4343);
    assert!(
        !ok && err.contains("permission denied for uid 4343"),
        "{err}"
    );
    let (code, _, err) = c.rotor(1, &["cmap", "set", "uidgid.config.uid.4343", "u8", "1"]);
    assert_eq!(code, 0, "{err}");
    let (ok, err) = as_user(4343);
    assert!(ok, "uid 4343 after the cmap write: {err}");
}

/// Frames node 1 sent node 2 on `link` (`stats.knet.node2.link<L>.tx_data_packets`).
fn tx_to_2(c: &Cluster, link: u8) -> u64 {
    match c.cmap(1, &format!("stats.knet.node2.link{link}.tx_data_packets")) {
        Some(Value::U64(n)) => n,
        _ => 0,
    }
}

#[test]
fn two_links_carry_frames_as_link_mode_says() {
    for (index, mode) in [(6, "passive"), (7, "active"), (6, "rr")] {
        let mut c = Cluster::new(index);
        c.links = 2;
        for i in 1..=3 {
            write_key(&c.key(i), 0x42);
            c.write_conf(i, &[1, 2, 3], 1000, &format!("  link_mode: {mode}\n"));
            c.start(i);
        }
        c.wait_ring(&[1, 2, 3]);
        // Both links of both peers up, as corosync-cfgtool -s -b shows them.
        c.wait_for("node 1's two links to be up", |c| {
            c.rotor(1, &["cfg", "-s", "-b"])
                .1
                .matches("\tstatus\t= n33\n")
                .count()
                == 2
        });
        let (_, out, _) = c.rotor(1, &["cfg", "-s"]);
        assert!(
            out.contains("LINK ID 1 udp\n\taddr\t= 127.0.1.1\n"),
            "{out}"
        );
        let (_, out, _) = c.rotor(1, &["cfg", "-n"]);
        assert!(
            out.contains("   LINK: 1 udp (127.0.1.1->127.0.1.2) enabled connected mtu: "),
            "{out}"
        );
        // Traffic: what each link carries from here on.
        let before = (tx_to_2(&c, 0), tx_to_2(&c, 1));
        c.wait_for("frames on the links", |c| {
            let (l0, l1) = (tx_to_2(c, 0) - before.0, tx_to_2(c, 1) - before.1);
            match mode {
                "passive" => l0 >= 50,
                _ => l0 >= 50 && l1 >= 50,
            }
        });
        if mode == "passive" {
            // Equal priorities: link 0 (the lowest number) carries, link 1 only pings.
            assert_eq!(tx_to_2(&c, 1), before.1, "passive sent frames on link 1");
        }
        if mode == "active" {
            // Every frame came twice: the later copy is dropped as a link duplicate.
            c.wait_for("copies dropped as link duplicates", |c| {
                matches!(c.cmap(2, "stats.net.drops.link_duplicate"), Some(Value::U64(n)) if n > 0)
            });
        }
        assert_eq!(
            c.cmap(1, "runtime.config.totem.interface.1.knet_ping_interval"),
            Some(Value::U32(412)),
            "token 1000 + 650 for the third node, / (2 × pong_count)"
        );
    }
}
