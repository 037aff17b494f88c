//! What the netns tests of the dataplane share: a `Cluster` of `rotor-dataplane` processes on
//! rotor-testbed hosts (one per host, every other host as a peer), bounded waits on their
//! output lines, the same-order check, and reading the `stats` line a node prints at exit.
#![allow(dead_code)] // each test binary uses its own part

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use rotor_testbed::in_netns;
use rotor_testbed::{Proc, Testbed};

/// Hosts, node processes and their output; dropping it kills the nodes and removes the hosts.
pub struct Cluster {
    /// Node i (1-based) at index i - 1; `None` while stopped.
    nodes: Vec<Option<Proc>>,
    stderr: Vec<Option<JoinHandle<String>>>,
    pub lines: Vec<Vec<String>>,
    tx: Sender<(usize, String)>,
    pub rx: Receiver<(usize, String)>,
    pub bed: Testbed,
    pub dir: PathBuf,
    v6: bool,
    /// `--transport` of each node (index 0 = node 1): `udp` unless a test says otherwise.
    pub transports: Vec<&'static str>,
    /// `--kernel-udp` of each node: `socket` (the default) unless a test says otherwise.
    pub kernel_udp: Vec<&'static str>,
    /// `--mcast GROUP` for every node, when the cluster multicasts.
    pub mcast: Option<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn write_key(path: &Path) {
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
    pub fn new(prefix: &str, hosts: usize, v6: bool) -> Cluster {
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
            transports: vec!["udp"; hosts],
            kernel_udp: vec!["socket"; hosts],
            mcast: None,
        }
    }

    pub fn addr(&self, i: usize) -> String {
        if self.v6 {
            format!("[{}]:5405", rotor_testbed::ipv6(i))
        } else {
            format!("{}:5405", rotor_testbed::ipv4(i))
        }
    }

    /// Starts node `i` on host `i` with every other host as a peer.
    pub fn start(&mut self, i: usize, key: &Path, send: usize) {
        let peers: Vec<(usize, usize)> = (1..=self.bed.hosts())
            .filter(|&j| j != i)
            .map(|j| (j, j))
            .collect();
        self.start_as(i, i, "rdp-test", key, &peers, send);
    }

    /// Starts a node on host `host` with node id `node_id`, cluster name `cluster` and `peers`
    /// as (node id, host) pairs: for nodes configured unlike the rest of the cluster.
    pub fn start_as(
        &mut self,
        host: usize,
        node_id: usize,
        cluster: &str,
        key: &Path,
        peers: &[(usize, usize)],
        send: usize,
    ) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor-dataplane"));
        cmd.args(["--node-id", &node_id.to_string()])
            .args(["--bind", &self.addr(host)])
            .arg("--keyfile")
            .arg(key)
            .args([
                "--cluster-name",
                cluster,
                "--token-ms",
                "200",
                "--transport",
                self.transports[host - 1],
                "--kernel-udp",
                self.kernel_udp[host - 1],
            ])
            .args(["--send", &send.to_string(), "--size", "300", "--group", "g"]);
        if let Some(group) = &self.mcast {
            cmd.args(["--mcast", group]);
        }
        for (id, j) in peers {
            cmd.args(["--peer", &format!("{id}={}", self.addr(*j))]);
        }
        let mut proc = self.bed.spawn(host, cmd).expect("spawn node");
        proc.forward_stdout(host - 1, self.tx.clone());
        self.stderr[host - 1] = proc.collect_stderr();
        self.nodes[host - 1] = Some(proc);
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("authkey")
    }

    /// Waits (bounded) until `done` holds for the lines seen so far.
    pub fn wait_until(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[Vec<String>]) -> bool,
    ) {
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
    pub fn stop(&mut self, i: usize) -> String {
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
    pub fn kill(&mut self, i: usize) {
        let mut proc = self.nodes[i - 1].take().expect("node running");
        proc.kill().expect("SIGKILL");
        self.stderr[i - 1] = None;
    }
}

pub fn delivers(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("deliver ")).collect()
}

pub fn is_regular(line: &str, members: &str) -> bool {
    line.starts_with("config regular ") && line.ends_with(&format!(" members={members}"))
}

/// Every node of `nodes` delivers `send` messages from each of them, all in node 1's order.
pub fn check_same_order(c: &mut Cluster, nodes: usize, send: usize, limit: Duration) {
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

/// The value of `key` on the `stats` line a node logs to stderr at exit (`None` when absent).
pub fn stat(stderr: &str, key: &str) -> Option<u64> {
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.split_once("[MAIN  ] stats ").map(|(_, rest)| rest))?;
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// Why AF_XDP cannot run on host 1 of `c` (its `eth0` refuses the program or the socket), if
/// it cannot: tests print "skipped: …" with it.
pub fn xdp_unavailable(c: &Cluster) -> Option<String> {
    let bind: std::net::SocketAddr = c.addr(1).parse().expect("address");
    in_netns(&c.bed.host(1), move || {
        let cfg = rotor_dataplane::transport::xsk::XskConfig::new("eth0", bind);
        rotor_dataplane::transport::xsk::XskTransport::open(&cfg)
            .err()
            .map(|e| format!("the AF_XDP transport cannot be opened on veth: {e}"))
    })
}
