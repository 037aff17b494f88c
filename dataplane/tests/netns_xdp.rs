//! Real `rotor-dataplane` processes on the AF_XDP transport, in network namespaces joined by a
//! bridge (hosts `eth0` at 198.18.0.I/24 and 2001:2::I/64, a veth each, native XDP, copy-mode
//! sockets): 3- and 5-node rings form and deliver every node's messages in one order
//! everywhere, a SIGKILLed node leaves and a restarted one rejoins, ping and TCP keep working
//! between hosts while XDP is attached, a ring forms over IPv6 (with the default `auto`
//! transport), kernel-UDP and AF_XDP nodes share one ring over both families, and a host with
//! another key never joins and its frames are counted as `unknown_key`. Needs root and XDP;
//! without either every test prints SKIPPED and why.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{in_netns, write_key};

/// One test at a time: the machine has two cores and the rings run on a 200 ms token.
static SERIAL: Mutex<()> = Mutex::new(());
static RUN: AtomicUsize = AtomicUsize::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// Namespaces, a key directory and child processes; Drop kills the children and deletes the
/// namespaces (which removes the veths and every XDP program and AF_XDP socket on them), also
/// on panic.
struct Cluster {
    tag: String,
    dir: PathBuf,
    nodes: usize,
    family: Family,
    namespaces: Vec<String>,
    children: Vec<Option<Child>>,
    /// `--transport` of each node (index 0 = node 1): "xdp" unless a test says otherwise.
    transports: Vec<&'static str>,
    /// The authkey file of each node (index 0 = node 1): `dir/authkey` unless a test says
    /// otherwise.
    keys: Vec<PathBuf>,
    tx: Sender<(usize, String)>,
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

impl Cluster {
    fn ns(&self, i: usize) -> String {
        format!("n{}-{i}", self.tag)
    }

    fn addr(&self, i: usize) -> SocketAddr {
        match self.family {
            Family::V4 => format!("198.18.0.{i}:5405").parse().unwrap(),
            Family::V6 => format!("[2001:2::{i}]:5405").parse().unwrap(),
        }
    }

    /// Builds the namespaces and the bridge; returns the cluster and the receiver of every
    /// node's stdout lines as (node index 0-based, line).
    fn new(nodes: usize, family: Family) -> (Cluster, Receiver<(usize, String)>) {
        let run = RUN.fetch_add(1, Ordering::SeqCst);
        // Short: veth names have 15 characters at most.
        let tag = format!("x{}{run}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("rotor-xdp-{tag}"));
        let (tx, rx) = channel();
        let mut c = Cluster {
            tag,
            dir,
            nodes,
            family,
            namespaces: Vec::new(),
            children: Vec::new(),
            transports: vec!["xdp"; nodes],
            keys: Vec::new(),
            tx,
        };
        let sw = format!("n{}-sw", c.tag);
        ip(&["netns", "add", &sw]);
        c.namespaces.push(sw.clone());
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        for i in 1..=nodes {
            let ns = c.ns(i);
            ip(&["netns", "add", &ns]);
            c.namespaces.push(ns.clone());
            let host = format!("{}h{i}", c.tag);
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
            // nodad: usable at once, no 1-2 s of duplicate address detection.
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("2001:2::{i}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            c.children.push(None);
        }
        std::fs::create_dir_all(&c.dir).expect("temp dir");
        write_key(&c.dir.join("authkey"));
        c.keys = vec![c.dir.join("authkey"); nodes];
        (c, rx)
    }

    /// Starts node `i` (1-based) on the XDP transport; its stdout lines go to the channel, its
    /// stderr to `dir/err<i>`.
    fn start(&mut self, i: usize, send: usize) {
        let key = self.keys[i - 1].clone();
        let err = File::create(self.dir.join(format!("err{i}"))).expect("stderr file");
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.ns(i),
            env!("CARGO_BIN_EXE_rotor-dataplane"),
        ])
        .args(["--transport", self.transports[i - 1]])
        .args(["--node-id", &i.to_string()])
        .args(["--bind", &self.addr(i).to_string()])
        .args(["--keyfile", key.to_str().unwrap()])
        .args(["--cluster-name", "rotor-xdp-test", "--token-ms", "200"])
        .args(["--send", &send.to_string(), "--size", "300", "--group", "g"]);
        for j in (1..=self.nodes).filter(|&j| j != i) {
            cmd.args(["--peer", &format!("{j}={}", self.addr(j))]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().unwrap();
        self.children[i - 1] = Some(child);
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((i - 1, line)).is_err() {
                    break;
                }
            }
        });
    }

    fn stderr(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("err{i}"))).unwrap_or_default()
    }

    fn kill(&mut self, i: usize) {
        let mut child = self.children[i - 1].take().expect("node running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// SIGTERM to node `i`, bounded wait for its exit; true when it exited 0.
    fn terminate(&mut self, i: usize) -> bool {
        let mut child = self.children[i - 1].take().expect("node running");
        // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Why XDP tests cannot run here, if they cannot: not root, or the AF_XDP transport cannot be
/// opened on a veth in a namespace (checked for real on `cluster`'s first host).
fn skip_reason(cluster: Option<&Cluster>) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces, XDP and AF_XDP".into());
    }
    let c = cluster?;
    let ns = c.ns(1);
    let bind = c.addr(1);
    in_netns(&ns, move || {
        let cfg = rotor_dataplane::transport::xsk::XskConfig::new("eth0", bind);
        match rotor_dataplane::transport::xsk::XskTransport::open(&cfg) {
            Ok(_) => None,
            Err(e) => Some(format!(
                "the AF_XDP transport cannot be opened on veth: {e}"
            )),
        }
    })
}

/// A cluster for test `name`, or `None` after printing why XDP tests cannot run here.
fn cluster_or_skip(
    name: &str,
    nodes: usize,
    family: Family,
) -> Option<(Cluster, Receiver<(usize, String)>)> {
    let why = match skip_reason(None) {
        Some(why) => why,
        None => {
            let (c, rx) = Cluster::new(nodes, family);
            match skip_reason(Some(&c)) {
                None => return Some((c, rx)),
                Some(why) => why,
            }
        }
    };
    eprintln!("SKIPPED {name}: {why}");
    None
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

fn members(n: usize) -> String {
    let ids: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    format!(" members={}", ids.join(","))
}

/// Starts every node sending `send` messages and checks the full ring forms and every node
/// delivers all messages in the same order; returns the lines seen.
fn form_and_agree(
    c: &mut Cluster,
    rx: &Receiver<(usize, String)>,
    send: usize,
) -> Vec<Vec<String>> {
    let n = c.nodes;
    for i in 1..=n {
        c.start(i, send);
    }
    let mut lines = vec![Vec::new(); n];
    let total = send * n;
    wait_until(
        rx,
        &mut lines,
        Duration::from_secs(30),
        "all deliveries",
        |l| l.iter().all(|x| delivers(x).len() >= total),
    );
    let full = members(n);
    for (i, node) in lines.iter().enumerate() {
        assert_eq!(
            delivers(node).len(),
            total,
            "node {} delivered extra",
            i + 1
        );
        assert!(
            node.iter()
                .any(|l| l.starts_with("config regular ") && l.ends_with(&full)),
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
    for sender in 1..=n {
        let from = format!(" from={sender}:");
        let k = delivers(&lines[0])
            .iter()
            .filter(|l| l.contains(&from))
            .count();
        assert_eq!(k, send, "messages from node {sender}");
    }
    for i in 1..=n {
        let err = c.stderr(i);
        let want = match c.transports[i - 1] {
            "udp" => "transport udp: asked for",
            "auto" => {
                "transport xdp: AF_XDP on eth0 (native XDP, copy-mode sockets, queue 0) (auto)"
            }
            _ => "transport xdp: AF_XDP on eth0",
        };
        assert!(
            err.contains(want),
            "node {i} is not on the expected transport ({want}): {err}"
        );
    }
    lines
}

fn ping(ns: &str, to: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "2", to,
        ])
        .output()
        .map_err(|e| format!("run ping: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ping {to} from {ns}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A TCP connection from host `from` to host `to` carries a message there and back.
fn tcp_round_trip(c: &Cluster, from: usize, to: usize, addr: SocketAddr) {
    let listener = in_netns(&c.ns(to), move || TcpListener::bind(addr).expect("listen"));
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("server read");
        s.write_all(&buf).expect("server write");
    });
    let echoed = in_netns(&c.ns(from), move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"rotor").expect("client write");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("client read");
        buf
    });
    server.join().expect("server thread");
    assert_eq!(&echoed, b"rotor");
}

#[test]
fn xdp_three_nodes_agree_survive_a_kill_rejoin_and_leave_other_traffic_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let name = "xdp_three_nodes_agree_survive_a_kill_rejoin_and_leave_other_traffic_alone";
    let Some((mut c, rx)) = cluster_or_skip(name, 3, Family::V4) else {
        return;
    };
    let started = Instant::now();
    let mut lines = form_and_agree(&mut c, &rx, 50);

    // Non-cluster traffic while XDP is attached everywhere: ICMP (v4 and v6) and TCP.
    let have_ping = Command::new("ping").arg("-V").output().is_ok();
    if have_ping {
        ping(&c.ns(1), "198.18.0.2").unwrap();
        ping(&c.ns(3), "2001:2::1").unwrap();
    } else {
        eprintln!("{name}: ping is not installed (cargo xtask deps installs iputils-ping); ping part skipped, TCP still checked");
    }
    tcp_round_trip(&c, 1, 2, "198.18.0.2:7000".parse().unwrap());
    tcp_round_trip(&c, 3, 1, "[2001:2::1]:7001".parse().unwrap());

    // SIGKILL node 3: the survivors form a ring without it (its XDP program stays attached,
    // as after a crash).
    let before: Vec<usize> = lines.iter().map(Vec::len).collect();
    c.kill(3);
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

    // Restart it: the epoch (seconds since 1970) must have moved on, or its frames replay.
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(started.elapsed()));
    let before: Vec<usize> = lines.iter().map(Vec::len).collect();
    c.start(3, 0);
    wait_until(
        &rx,
        &mut lines,
        Duration::from_secs(20),
        "node 3 rejoining",
        |l| {
            (0..3).all(|i| {
                l[i][before[i]..]
                    .iter()
                    .any(|x| x.starts_with("config regular ") && x.ends_with(" members=1,2,3"))
            })
        },
    );
    let err3 = c.stderr(3);
    assert!(
        err3.contains("transport xdp:"),
        "restarted node 3 is not on XDP (stale program not replaced?): {err3}"
    );

    // A clean exit detaches and reports the counters: cluster frames were redirected to AF_XDP.
    assert!(c.terminate(2), "node 2 did not exit 0 on SIGTERM");
    let err2 = c.stderr(2);
    let stats = err2
        .lines()
        .find(|l| l.contains("xdp frames_in="))
        .unwrap_or_else(|| panic!("no counters line from node 2: {err2}"));
    eprintln!("node 2 at exit: {stats}");
    assert!(
        !stats.contains("redirected=0 "),
        "nothing redirected: {stats}"
    );
    assert!(!stats.contains("frames_in=0 "), "nothing received: {stats}");
    let link = Command::new("ip")
        .args(["-n", &c.ns(2), "link", "show", "eth0"])
        .output()
        .expect("ip link");
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        !link.contains("xdp"),
        "XDP program still attached after a clean exit: {link}"
    );
}

#[test]
fn xdp_five_nodes_agree() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut c, rx)) = cluster_or_skip("xdp_five_nodes_agree", 5, Family::V4) else {
        return;
    };
    form_and_agree(&mut c, &rx, 20);
}

#[test]
fn xdp_three_nodes_agree_over_ipv6() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut c, rx)) = cluster_or_skip("xdp_three_nodes_agree_over_ipv6", 3, Family::V6)
    else {
        return;
    };
    // The default transport, as root on a veth that takes the program, is XDP.
    c.transports = vec!["auto"; 3];
    form_and_agree(&mut c, &rx, 30);
}

/// A kernel-UDP node and AF_XDP nodes in one ring: the same wire format, and the kernel of the
/// UDP node accepts the frames built by hand (it verifies their IP and UDP checksums).
#[test]
fn xdp_and_udp_nodes_share_a_ring() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for family in [Family::V4, Family::V6] {
        let Some((mut c, rx)) = cluster_or_skip("xdp_and_udp_nodes_share_a_ring", 3, family) else {
            return;
        };
        c.transports = vec!["udp", "xdp", "xdp"];
        form_and_agree(&mut c, &rx, 20);
    }
}

/// A host with another key: its frames reach the others' AF_XDP sockets, name a key they do
/// not hold and are counted as `unknown_key`; it never joins their ring.
#[test]
fn xdp_host_with_another_key_is_dropped_and_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut c, rx)) = cluster_or_skip(
        "xdp_host_with_another_key_is_dropped_and_counted",
        3,
        Family::V4,
    ) else {
        return;
    };
    let other = c.dir.join("authkey-other");
    write_key(&other);
    c.keys[2] = other;
    for i in 1..=3 {
        c.start(i, 0);
    }
    let mut lines = vec![Vec::new(); 3];
    let ring12 = |l: &[String]| {
        l.iter()
            .any(|x| x.starts_with("config regular ") && x.ends_with(" members=1,2"))
    };
    wait_until(
        &rx,
        &mut lines,
        Duration::from_secs(20),
        "a ring of 1 and 2",
        |l| ring12(&l[0]) && ring12(&l[1]),
    );
    // Give node 3 a few token rotations' worth of joins to (fail to) get in.
    let settle = Instant::now() + Duration::from_secs(1);
    while let Some(left) = settle.checked_duration_since(Instant::now()) {
        if let Ok((i, line)) = rx.recv_timeout(left) {
            lines[i].push(line);
        }
    }
    for (i, node) in lines.iter().enumerate() {
        for l in node.iter().filter(|l| l.starts_with("config ")) {
            let members = l.rsplit(" members=").next().unwrap_or("");
            let has3 = members.split(',').any(|m| m == "3");
            let only3 = members == "3";
            assert!(
                if i == 2 { only3 } else { !has3 },
                "node {} saw a configuration mixing keys: {l}",
                i + 1
            );
        }
    }
    assert!(c.terminate(1), "node 1 did not exit 0 on SIGTERM");
    let err1 = c.stderr(1);
    assert!(
        common::stat(&err1, "crypto.drops.unknown_key").unwrap_or(0) > 0,
        "node 1 did not count unknown_key drops: {err1}"
    );
}

/// A third host floods node 1's cluster port with garbage (random lengths and bytes, some with
/// rotor's magic in front) while nodes 1 and 2 exchange messages: every garbage frame goes
/// through the AF_XDP receive path and is dropped and counted, the two nodes still deliver
/// everything in one order, and node 1 exits 0.
#[test]
fn xdp_node_survives_a_flood_of_garbage() {
    const GARBAGE: usize = 100_000;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((mut c, rx)) = cluster_or_skip("xdp_node_survives_a_flood_of_garbage", 3, Family::V4)
    else {
        return;
    };
    // Host 3 runs no node: it is the flooder.
    c.nodes = 2;
    for i in 1..=2 {
        c.start(i, 200);
    }
    let mut lines = vec![Vec::new(); 2];
    // Once node 1's program and sockets are up (its first ring), the flood starts.
    wait_until(
        &rx,
        &mut lines,
        Duration::from_secs(20),
        "node 1's first ring",
        |l| l[0].iter().any(|x| x.starts_with("config regular ")),
    );
    let (flooder, target) = (c.ns(3), c.addr(1));
    let flood = std::thread::spawn(move || in_netns(&flooder, move || flood(target, GARBAGE)));
    wait_until(
        &rx,
        &mut lines,
        Duration::from_secs(30),
        "all deliveries during the flood",
        |l| l.iter().all(|x| delivers(x).len() >= 400),
    );
    assert_eq!(
        delivers(&lines[1]),
        delivers(&lines[0]),
        "node 2 delivered in another order than node 1"
    );
    let sent = flood.join().expect("flood thread");
    assert!(sent > GARBAGE / 2, "only {sent} garbage datagrams went out");
    assert!(
        c.terminate(1),
        "node 1 did not exit 0 on SIGTERM after the flood"
    );
    let err1 = c.stderr(1);
    // The garbage reached the node and was counted.
    let counted = common::stat(&err1, "crypto.drops.bad_magic").unwrap_or(0);
    assert!(
        counted > (GARBAGE / 4) as u64,
        "node 1 counted {counted} bad_magic drops of {sent} garbage datagrams: {err1}"
    );
}

/// Sends `count` datagrams of random length and bytes to `target` (every fourth starting with
/// rotor's magic and version, to reach the header and crypto checks); returns how many went out.
fn flood(target: SocketAddr, count: usize) -> usize {
    let sock = std::net::UdpSocket::bind("198.18.0.3:0").expect("bind flooder");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut buf = [0u8; 1400];
    let mut sent = 0;
    for k in 0..count {
        let len = 1 + (next() % 1400) as usize;
        buf[..len].iter_mut().for_each(|b| *b = next() as u8);
        if k % 4 == 0 && len >= 3 {
            buf[..3].copy_from_slice(b"RT\x01");
        }
        if sock.send_to(&buf[..len], target).is_ok() {
            sent += 1;
        }
    }
    sent
}
