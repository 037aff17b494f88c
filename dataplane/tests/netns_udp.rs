//! Real `rotor-dataplane` processes on rotor-testbed hosts (network namespaces on one bridge),
//! over kernel UDP (io_uring when available) with AES-256-GCM frames: a 5-node ring delivers
//! the same messages in the same order everywhere, loses a SIGKILLed node and takes it back
//! when it restarts; a node with another key never joins and its frames are counted as
//! `invalid_digest`; an IPv6 ring of 3 does the same as IPv4. Each test has its own testbed
//! prefix (they run in parallel); every wait is bounded. Needs root, otherwise skipped.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rotor_testbed::{root_or_skip, Proc, Testbed};

/// Hosts, node processes and their output; dropping it kills the nodes and removes the hosts.
struct Cluster {
    /// Node i (1-based) at index i - 1; `None` while stopped.
    nodes: Vec<Option<Proc>>,
    stderr: Vec<Option<JoinHandle<String>>>,
    lines: Vec<Vec<String>>,
    tx: Sender<(usize, String)>,
    rx: Receiver<(usize, String)>,
    bed: Testbed,
    dir: PathBuf,
    v6: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write_key(path: &Path) {
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

impl Cluster {
    fn new(prefix: &str, hosts: usize, v6: bool) -> Cluster {
        let bed = Testbed::up(prefix, hosts).expect("testbed up");
        let dir = std::env::temp_dir().join(format!("rotor-{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        write_key(&dir.join("authkey"));
        let (tx, rx) = channel();
        Cluster {
            nodes: (0..hosts).map(|_| None).collect(),
            stderr: (0..hosts).map(|_| None).collect(),
            lines: vec![Vec::new(); hosts],
            tx,
            rx,
            bed,
            dir,
            v6,
        }
    }

    fn addr(&self, i: usize) -> String {
        if self.v6 {
            format!("[{}]:5405", rotor_testbed::ipv6(i))
        } else {
            format!("{}:5405", rotor_testbed::ipv4(i))
        }
    }

    /// Starts node `i` on host `i` with every other host as a peer.
    fn start(&mut self, i: usize, key: &Path, send: usize) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor-dataplane"));
        cmd.args(["--node-id", &i.to_string()])
            .args(["--bind", &self.addr(i)])
            .arg("--keyfile")
            .arg(key)
            .args([
                "--cluster-name",
                "rdp-test",
                "--token-ms",
                "200",
                "--transport",
                "udp",
            ])
            .args(["--send", &send.to_string(), "--size", "300", "--group", "g"]);
        for j in (1..=self.bed.hosts()).filter(|&j| j != i) {
            cmd.args(["--peer", &format!("{j}={}", self.addr(j))]);
        }
        let mut proc = self.bed.spawn(i, cmd).expect("spawn node");
        proc.forward_stdout(i - 1, self.tx.clone());
        self.stderr[i - 1] = proc.collect_stderr();
        self.nodes[i - 1] = Some(proc);
    }

    fn key(&self) -> PathBuf {
        self.dir.join("authkey")
    }

    /// Waits (bounded) until `done` holds for the lines seen so far.
    fn wait_until(&mut self, limit: Duration, what: &str, done: impl Fn(&[Vec<String>]) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((i, line)) => self.lines[i].push(line),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "timed out after {limit:?} waiting for {what}; output: {:#?}",
                        self.lines
                    )
                }
            }
        }
    }

    /// SIGTERM node `i`, wait (bounded) for a clean exit, return its stderr.
    fn stop(&mut self, i: usize) -> String {
        let mut proc = self.nodes[i - 1].take().expect("node running");
        proc.signal(libc::SIGTERM).expect("SIGTERM");
        let status = proc
            .wait_timeout(Duration::from_secs(10))
            .expect("wait")
            .unwrap_or_else(|| panic!("node {i} did not exit within 10 s of SIGTERM"));
        assert!(
            status.success(),
            "node {i} exit status after SIGTERM: {status}"
        );
        self.stderr[i - 1]
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// SIGKILL node `i` and reap it.
    fn kill(&mut self, i: usize) {
        let mut proc = self.nodes[i - 1].take().expect("node running");
        proc.kill().expect("SIGKILL");
        self.stderr[i - 1] = None;
    }
}

fn delivers(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("deliver ")).collect()
}

fn is_regular(line: &str, members: &str) -> bool {
    line.starts_with("config regular ") && line.ends_with(&format!(" members={members}"))
}

/// Every node of `nodes` delivers `send` messages from each of them, all in node 1's order.
fn check_same_order(c: &mut Cluster, nodes: usize, send: usize, limit: Duration) {
    let total = send * nodes;
    c.wait_until(limit, "all deliveries", |l| {
        l.iter().all(|n| delivers(n).len() >= total)
    });
    let members: Vec<String> = (1..=nodes).map(|i| i.to_string()).collect();
    let members = members.join(",");
    for (i, node) in c.lines.iter().enumerate() {
        assert_eq!(
            delivers(node).len(),
            total,
            "node {} delivered extra",
            i + 1
        );
        assert!(
            node.iter().any(|l| is_regular(l, &members)),
            "node {} never saw the full ring: {node:#?}",
            i + 1
        );
        assert_eq!(
            delivers(node),
            delivers(&c.lines[0]),
            "node {} delivered in another order than node 1",
            i + 1
        );
    }
    for sender in 1..=nodes {
        let from = format!(" from={sender}:");
        let n = delivers(&c.lines[0])
            .iter()
            .filter(|l| l.contains(&from))
            .count();
        assert_eq!(n, send, "messages from node {sender}");
    }
}

#[test]
fn five_nodes_agree_and_a_killed_node_rejoins() {
    if !root_or_skip("network namespaces for five_nodes_agree_and_a_killed_node_rejoins") {
        return;
    }
    const NODES: usize = 5;
    const SEND: usize = 30;
    let mut c = Cluster::new("rdpu5-", NODES, false);
    let key = c.key();
    for i in 1..=NODES {
        c.start(i, &key, SEND);
    }
    check_same_order(&mut c, NODES, SEND, Duration::from_secs(25));

    let before: Vec<usize> = c.lines.iter().map(Vec::len).collect();
    c.kill(5);
    c.wait_until(Duration::from_secs(10), "a ring without node 5", |l| {
        (0..4).all(|i| l[i][before[i]..].iter().any(|x| is_regular(x, "1,2,3,4")))
    });

    // Same node id, new process: it comes back into the ring.
    let before: Vec<usize> = c.lines.iter().map(Vec::len).collect();
    c.start(5, &key, 0);
    c.wait_until(Duration::from_secs(10), "node 5 back in the ring", |l| {
        (0..5).all(|i| l[i][before[i]..].iter().any(|x| is_regular(x, "1,2,3,4,5")))
    });
}

#[test]
fn a_node_with_another_key_never_joins_and_its_frames_are_dropped() {
    if !root_or_skip("network namespaces for a_node_with_another_key_never_joins") {
        return;
    }
    let mut c = Cluster::new("rdpuk-", 4, false);
    let key = c.key();
    let other = c.dir.join("otherkey");
    write_key(&other);
    for i in 1..=3 {
        c.start(i, &key, 0);
    }
    c.start(4, &other, 0);
    c.wait_until(Duration::from_secs(10), "a ring of 1,2,3", |l| {
        (0..3).all(|i| l[i].iter().any(|x| is_regular(x, "1,2,3")))
    });
    // Give node 4 a few token timeouts of trying.
    let settle = Instant::now() + Duration::from_secs(2);
    while let Some(left) = settle.checked_duration_since(Instant::now()) {
        if let Ok((i, line)) = c.rx.recv_timeout(left) {
            c.lines[i].push(line);
        }
    }
    for i in 0..3 {
        for l in c.lines[i].iter().filter(|l| l.starts_with("config ")) {
            let members = l.rsplit_once("members=").map(|x| x.1).unwrap_or("");
            assert!(
                !members.split(',').any(|m| m == "4"),
                "node {} let node 4 in: {l}",
                i + 1
            );
        }
    }
    assert!(
        c.lines[3]
            .iter()
            .filter(|l| l.starts_with("config regular "))
            .all(|l| is_regular(l, "4")),
        "node 4 formed a ring with others: {:#?}",
        c.lines[3]
    );
    let stderr = c.stop(1);
    let digest = stderr
        .split("\"invalid_digest\": ")
        .nth(1)
        .and_then(|s| s.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        digest > 0,
        "node 1 counted no invalid_digest drops: {stderr}"
    );
    if std::env::var_os(rotor_dataplane::udp::NO_URING_ENV).is_none() {
        assert!(
            stderr.contains("transport udp: asked for (io_uring)"),
            "node 1 did not run on io_uring: {stderr}"
        );
    }
}

#[test]
fn three_nodes_agree_over_ipv6() {
    if !root_or_skip("network namespaces for three_nodes_agree_over_ipv6") {
        return;
    }
    const NODES: usize = 3;
    const SEND: usize = 30;
    let mut c = Cluster::new("rdpu6-", NODES, true);
    let key = c.key();
    for i in 1..=NODES {
        c.start(i, &key, SEND);
    }
    check_same_order(&mut c, NODES, SEND, Duration::from_secs(20));
    // SIGTERM leaves cleanly (exit 0) over IPv6 too.
    c.stop(3);
}
