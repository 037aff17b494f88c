//! End to end on one host, no root needed: three `rotord` (each with its dataplane) on
//! 127.0.0.1-3 form a ring; CPG handles on every node join a group and multicast; every member
//! delivers the same sequence (messages larger than a frame included, checked to the byte); a
//! SIGKILLed client shows as "process down"; `rotor status`, `rotor cmap` and `rotor cpg` print
//! what they should; a bad config names file and line.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{delivery_line, pump, send, send_bytes, Seen};
use rotor_client::cmap::Cmap;
use rotor_client::cpg::{Cpg, Guarantee, Member, Reason};

mod common;

fn bin(name: &str) -> PathBuf {
    common::bin_dir().join(name)
}

struct Nodes {
    dir: PathBuf,
    children: Vec<Option<Child>>,
    tag: String,
}

impl Drop for Nodes {
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

impl Nodes {
    fn socket(&self, i: usize) -> String {
        format!("rt-e2e-{}-n{i}", self.tag)
    }
}

fn start() -> Nodes {
    let tag = std::process::id().to_string();
    let dir = std::env::temp_dir().join(format!("rotor-e2e-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("authkey");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o400)
        .open(&key)
        .unwrap();
    f.write_all(&[0x5a; 256]).unwrap();
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let conf = dir.join("corosync.conf");
    std::fs::write(
        &conf,
        format!(
            "totem {{\n  version: 2\n  cluster_name: e2e\n  token: 1000\n  keyfile: {}\n  interface {{\n    linknumber: 0\n    mcastport: {port}\n  }}\n}}\nnodelist {{\n  node {{\n    nodeid: 1\n    ring0_addr: 127.0.0.1\n  }}\n  node {{\n    nodeid: 2\n    ring0_addr: 127.0.0.2\n  }}\n  node {{\n    nodeid: 3\n    ring0_addr: 127.0.0.3\n  }}\n}}\nlogging {{\n  to_syslog: no\n}}\n",
            key.display()
        ),
    )
    .unwrap();
    let mut nodes = Nodes {
        dir: dir.clone(),
        children: Vec::new(),
        tag,
    };
    for i in 1..=3 {
        let log = std::fs::File::create(dir.join(format!("n{i}.log"))).unwrap();
        let child = Command::new(bin("rotord"))
            .args(["-f", "-c"])
            .arg(&conf)
            .args(["--node-id", &i.to_string()])
            .env("ROTOR_IPC_SOCKET", nodes.socket(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rotord");
        nodes.children.push(Some(child));
    }
    nodes
}

fn wait_ring(nodes: &Nodes, i: usize, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connected = Cmap::initialize_at(&nodes.socket(i))
            .and_then(|mut c| c.status())
            .map(|s| {
                if s.state == "operational" {
                    s.nodes.iter().filter(|n| n.connected).count()
                } else {
                    0
                }
            })
            .unwrap_or(0);
        if connected == want {
            return;
        }
        let log = std::fs::read_to_string(nodes.dir.join(format!("n{i}.log"))).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "node {i}: no ring of {want} within 30 s (have {connected}); log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rotor(nodes: &Nodes, i: usize, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .env("ROTOR_IPC_SOCKET", nodes.socket(i))
        .output()
        .expect("run rotor");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn three_rotords_carry_cpg_end_to_end() {
    let nodes = start();
    for i in 1..=3 {
        wait_ring(&nodes, i, 3);
    }
    let (ok, out, err) = rotor(&nodes, 1, &["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("Local node ID 1, transport udp"), "{out}");
    assert!(
        out.contains("2:\tconnected") && out.contains("3:\tconnected"),
        "{out}"
    );
    let (ok, out, _) = rotor(&nodes, 2, &["cmap", "get", "totem.cluster_name"]);
    assert!(ok);
    assert_eq!(out.trim(), "totem.cluster_name (str) = e2e");
    let (ok, _, err) = rotor(
        &nodes,
        2,
        &["cmap", "set", "runtime.totem.pg.mrp.srp.state", "str", "x"],
    );
    assert!(!ok && err.contains("read-only"), "{err}");

    let mut handles: Vec<(Cpg, Seen)> = (1..=3)
        .map(|i| {
            let mut c =
                Cpg::initialize_at(&format!("{}-cpg", nodes.socket(i))).expect("cpg attach");
            assert_eq!(c.local_node_id(), i as u32);
            c.join(b"e2e-group").expect("join");
            (c, Seen::default())
        })
        .collect();
    pump(
        &mut handles,
        Duration::from_secs(20),
        "3 group members",
        |h| h.iter().all(|(_, s)| s.members.len() >= 3),
    );
    // From here on every member must see exactly the same sequence.
    let marks: Vec<usize> = handles.iter().map(|(_, s)| s.events.len()).collect();
    for round in 0..40 {
        for (i, (c, s)) in handles.iter_mut().enumerate() {
            let g = if round % 2 == 0 {
                Guarantee::Agreed
            } else {
                Guarantee::Safe
            };
            send(c, s, g, &format!("n{} r{round}", i + 1));
        }
    }
    // Messages larger than a frame: delivered in fragments borrowed from the dataplane's frame
    // store and gathered straight into each client's ring; every byte must arrive.
    let large = |node: usize, len: usize| -> Vec<u8> {
        (0..len)
            .map(|k| (k * 131 + node * 17 + len) as u8)
            .collect()
    };
    let mut expected_large = Vec::new();
    for (i, (c, s)) in handles.iter_mut().enumerate() {
        for len in [3_000, 300_000] {
            let data = large(i + 1, len);
            send_bytes(c, s, Guarantee::Agreed, &data);
            let me = Member {
                node: i as u32 + 1,
                pid: std::process::id(),
            };
            expected_large.push(delivery_line(me, &data));
        }
    }
    // A separate process joins, then dies by SIGKILL: a process-down for everyone.
    let mut bench = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["bench", "tput", "-g", "e2e-group", "-m", "99", "-t", "60"])
        .env("ROTOR_IPC_SOCKET", nodes.socket(2))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    pump(
        &mut handles,
        Duration::from_secs(20),
        "the bench process joining",
        |h| h.iter().all(|(_, s)| s.members.len() >= 4),
    );
    let (ok, out, _) = rotor(&nodes, 3, &["cpg"]);
    assert!(ok && out.contains("e2e-group"), "{out}");
    assert!(out.contains(&bench.id().to_string()), "{out}");
    bench.kill().unwrap();
    bench.wait().unwrap();
    let victim = Member {
        node: 2,
        pid: bench.id(),
    };
    pump(
        &mut handles,
        Duration::from_secs(20),
        "every delivery and the process-down",
        |h| {
            h.iter()
                .all(|(_, s)| s.delivered >= 126 && s.left.contains(&(victim, Reason::ProcDown)))
        },
    );
    let first = &handles[0].1.events[marks[0]..];
    for (k, (_, s)) in handles.iter().enumerate().skip(1) {
        assert_eq!(
            &s.events[marks[k]..],
            first,
            "member {} saw another sequence",
            k + 1
        );
    }
    assert_eq!(first.iter().filter(|e| e.starts_with("msg ")).count(), 126);
    for line in &expected_large {
        assert!(
            first.contains(line),
            "large message missing or altered: {line}"
        );
    }
}

#[test]
fn a_bad_config_names_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("rotor-e2e-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "totem {\n  version: 2\n  token: soon\n}\n").unwrap();
    let out = Command::new(bin("rotord"))
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.conf:3:") && err.contains("token"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
