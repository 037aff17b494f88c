//! Three real `rotor-dataplane` processes in network namespaces joined by a bridge: they form
//! one ring over kernel UDP with AES-256-GCM frames, deliver the same 150 messages in the same
//! order, and the two survivors re-form the ring when the third is killed. Needs root.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const SEND: usize = 50;

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// Namespaces, key directory and child processes; Drop removes them all, also on panic.
struct Cluster {
    tag: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    fn ns(&self, i: usize) -> String {
        format!("rdp-{}-{i}", self.tag)
    }

    fn switch(&self) -> String {
        format!("rdp-{}-sw", self.tag)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup() -> Cluster {
    let tag = std::process::id().to_string();
    let dir = std::env::temp_dir().join(format!("rdp-{tag}"));
    let mut c = Cluster {
        tag,
        dir,
        namespaces: Vec::new(),
        children: Vec::new(),
    };
    let sw = c.switch();
    ip(&["netns", "add", &sw]);
    c.namespaces.push(sw.clone());
    ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &sw, "link", "set", "br0", "up"]);
    for i in 1..=NODES {
        let ns = c.ns(i);
        ip(&["netns", "add", &ns]);
        c.namespaces.push(ns.clone());
        let host = format!("rdp{}h{i}", c.tag);
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip(&["link", "set", &host, "netns", &sw]);
        ip(&["-n", &sw, "link", "set", &host, "master", "br0"]);
        ip(&["-n", &sw, "link", "set", &host, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("198.18.0.{i}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
    }
    std::fs::create_dir_all(&c.dir).expect("temp dir");
    c
}

fn write_key(path: &PathBuf) {
    let mut key = [0u8; 256];
    let mut urandom = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    std::io::Read::read_exact(&mut urandom, &mut key).expect("read /dev/urandom");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .expect("create key file");
    f.write_all(&key).expect("write key");
}

/// Waits (bounded) until `done` holds for the lines seen so far.
fn wait_until(
    rx: &Receiver<(usize, String)>,
    lines: &mut [Vec<String>],
    limit: Duration,
    what: &str,
    done: impl Fn(&[Vec<String>]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, line)) => lines[i].push(line),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                panic!("timed out after {limit:?} waiting for {what}; output: {lines:#?}")
            }
        }
    }
}

fn delivers(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("deliver ")).collect()
}

#[test]
fn three_nodes_agree_over_udp_and_survive_a_kill() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED three_nodes_agree_over_udp_and_survive_a_kill: needs root for network namespaces"
        );
        return;
    }
    let mut cluster = setup();
    let key = cluster.dir.join("authkey");
    write_key(&key);
    let (tx, rx) = channel();
    for i in 1..=NODES {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &cluster.ns(i),
            env!("CARGO_BIN_EXE_rotor-dataplane"),
        ])
        // The default (auto) would pick AF_XDP as root; this test is the kernel-UDP path's.
        .args(["--transport", "udp"])
        .args(["--node-id", &i.to_string()])
        .args(["--bind", &format!("198.18.0.{i}:5405")])
        .args(["--keyfile", key.to_str().unwrap()])
        .args(["--cluster-name", "rdp-test", "--token-ms", "200"])
        .args(["--send", &SEND.to_string(), "--size", "300", "--group", "g"]);
        for j in (1..=NODES).filter(|&j| j != i) {
            cmd.args(["--peer", &format!("{j}=198.18.0.{j}:5405")]);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn node");
        let stdout = child.stdout.take().unwrap();
        cluster.children.push(Some(child));
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((i - 1, line)).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut lines = vec![Vec::new(); NODES];
    let total = SEND * NODES;
    wait_until(
        &rx,
        &mut lines,
        Duration::from_secs(30),
        "all deliveries",
        |l| l.iter().all(|n| delivers(n).len() >= total),
    );
    for (i, node) in lines.iter().enumerate() {
        assert_eq!(
            delivers(node).len(),
            total,
            "node {} delivered extra",
            i + 1
        );
        assert!(
            node.iter()
                .any(|l| l.starts_with("config regular ") && l.ends_with(" members=1,2,3")),
            "node {} never saw the full ring: {node:#?}",
            i + 1
        );
        assert_eq!(
            delivers(node),
            delivers(&lines[0]),
            "node {} delivered in another order than node 1",
            i + 1
        );
    }
    for sender in 1..=NODES {
        let from = format!(" from={sender}:");
        let n = delivers(&lines[0])
            .iter()
            .filter(|l| l.contains(&from))
            .count();
        assert_eq!(n, SEND, "messages from node {sender}");
    }

    let before: Vec<usize> = lines.iter().map(Vec::len).collect();
    let mut victim = cluster.children[NODES - 1].take().unwrap();
    victim.kill().expect("SIGKILL node 3");
    victim.wait().expect("reap node 3");
    wait_until(
        &rx,
        &mut lines,
        Duration::from_secs(20),
        "a ring without node 3",
        |l| {
            (0..2).all(|i| {
                l[i][before[i]..]
                    .iter()
                    .any(|x| x.starts_with("config regular ") && x.ends_with(" members=1,2"))
            })
        },
    );

    // SIGTERM: node 2 leaves the ring and exits cleanly; node 1 forms a ring on its own.
    let before = lines[0].len();
    let mut leaver = cluster.children[1].take().unwrap();
    // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
    assert_eq!(unsafe { libc::kill(leaver.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = leaver.try_wait().expect("wait node 2") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = leaver.kill();
            let _ = leaver.wait();
            panic!("node 2 did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "node 2 exit status after SIGTERM: {status}"
    );
    wait_until(
        &rx,
        &mut lines,
        Duration::from_secs(20),
        "node 1 alone",
        |l| {
            l[0][before..]
                .iter()
                .any(|x| x.starts_with("config regular ") && x.ends_with(" members=1"))
        },
    );
    eprintln!(
        "node 1 output (first and last 4 lines of {}):",
        lines[0].len()
    );
    for l in lines[0]
        .iter()
        .take(4)
        .chain(lines[0].iter().rev().take(4).rev())
    {
        eprintln!("  {l}");
    }
}
