//! rotord's operations surface on loopback, no root needed: the metrics endpoint
//! (`rotor { metrics_listen }`) scraped over HTTP and parsed by the Prometheus project's own
//! text-format parser (Debian's python3-prometheus-client, installed by `cargo xtask deps`),
//! with the ring, quorum, the peers (their link probes' state and round trip), crypto drops by
//! reason, and counters that survive a dataplane restart; `rotor cmap -C` clearing what cmap
//! shows but never what the metrics count; and `--pid-file`: written, locked against a second
//! rotord (exit 18), removed on a clean stop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Only `bin_dir` is used here.
#[allow(dead_code)]
mod common;

/// The Prometheus text-format parser, by absolute path: a python3 earlier on PATH (pyenv) may
/// not see Debian's packages.
const PYTHON: &str = "/usr/bin/python3";

/// Parses an exposition with prometheus_client and checks what the format and the naming
/// conventions require; prints `name{label="v",...} value` per sample, sorted labels.
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
for fam in text_string_to_metric_families(text):
    assert fam.name.startswith("rotor_"), fam.name
    if fam.type == "counter":
        assert all(s.name == fam.name + "_total" for s in fam.samples), fam.name
    if fam.type == "histogram":
        buckets = [s for s in fam.samples if s.name.endswith("_bucket")]
        values = [s.value for s in buckets]
        assert values == sorted(values), ("buckets not cumulative", fam.name, values)
        assert buckets[-1].labels["le"] == "+Inf", fam.name
        count = [s.value for s in fam.samples if s.name.endswith("_count")][0]
        assert buckets[-1].value == count, ("+Inf bucket is not the count", fam.name)
    for s in fam.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s{%s} %s" % (s.name, labels, repr(float(s.value))))
"#;

struct Node {
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            stop(c);
        }
    }
}

/// SIGTERM and a bounded wait; the exit status, `None` if it had to be killed.
fn stop(mut child: Child) -> Option<std::process::ExitStatus> {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Setup {
    dir: PathBuf,
    /// Node 1's config (with `metrics_listen`); node 2's is the same without it.
    conf: PathBuf,
    conf_plain: PathBuf,
    tag: String,
    metrics_port: u16,
    /// The cluster's UDP port.
    port: u16,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port()
}

/// Two nodes on 127.0.0.1 and .2 (node 1 serves metrics on a free port), crypto on.
fn setup(name: &str) -> Setup {
    let tag = format!("{}-{name}", std::process::id());
    let dir = std::env::temp_dir().join(format!("rotor-ops-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("authkey");
    let keygen = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["keygen", "-k"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let port = free_udp_port();
    let metrics_port = free_tcp_port();
    let plain = format!(
        "totem {{\n  version: 2\n  cluster_name: ops\n  token: 1000\n  keyfile: {}\n  \
         interface {{\n    mcastport: {port}\n  }}\n}}\nnodelist {{\n  node {{\n    \
         nodeid: 1\n    ring0_addr: 127.0.0.1\n  }}\n  node {{\n    nodeid: 2\n    \
         ring0_addr: 127.0.0.2\n  }}\n}}\nquorum {{\n  provider: corosync_votequorum\n}}\n\
         logging {{\n  to_syslog: no\n}}\nsystem {{\n  \
         state_dir: {}\n}}\n",
        key.display(),
        dir.join("state").display()
    );
    let conf = dir.join("corosync.conf");
    let conf_plain = dir.join("corosync-plain.conf");
    std::fs::write(
        &conf,
        format!("{plain}rotor {{\n  metrics_listen: 127.0.0.1:{metrics_port}\n}}\n"),
    )
    .unwrap();
    std::fs::write(&conf_plain, plain).unwrap();
    Setup {
        dir,
        conf,
        conf_plain,
        tag,
        metrics_port,
        port,
    }
}

impl Setup {
    fn socket(&self, i: u32) -> String {
        format!("rt-ops-{}-n{i}", self.tag)
    }

    fn rotord(&self, i: u32, extra: &[&str]) -> Command {
        let mut c = Command::new(common::bin_dir().join("rotord"));
        c.args(["-f", "-c"])
            .arg(if i == 1 { &self.conf } else { &self.conf_plain })
            .args(["--node-id", &i.to_string()])
            .args(extra)
            .env("ROTOR_IPC_SOCKET", self.socket(i))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(format!("n{i}.log")))
                    .unwrap(),
            );
        c
    }

    fn start(&self, i: u32, extra: &[&str]) -> Node {
        Node {
            child: Some(self.rotord(i, extra).spawn().expect("start rotord")),
        }
    }

    fn rotor(&self, i: u32, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(args)
            .env("ROTOR_IPC_SOCKET", self.socket(i))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log(&self, i: u32) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default()
    }

    /// `GET path`: the status line and the body; `None` while nobody listens.
    fn try_get(&self, path: &str) -> Option<(String, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header and a body");
        let status = head.lines().next().unwrap_or_default().to_owned();
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        Some((status, body.to_owned()))
    }

    fn get(&self, path: &str) -> (String, String) {
        self.try_get(path).expect("the metrics endpoint listens")
    }

    /// A scrape, parsed: every sample as `name{labels} value`.
    fn scrape(&self) -> Vec<String> {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        parse(&body)
    }

    /// Waits (30 s at most) until a scrape has `want` among its samples.
    fn wait_sample(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Vec::new();
        loop {
            if let Some((_, body)) = self.try_get("/metrics") {
                last = parse(&body);
                if last.iter().any(|s| s == want) {
                    return last;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{want} never scraped; last:\n{}\nnode 1:\n{}\nnode 2:\n{}",
                last.join("\n"),
                self.log(1),
                self.log(2)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn parse(body: &str) -> Vec<String> {
    let mut py = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client (cargo xtask deps installs it)");
    py.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition: {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn value(samples: &[String], name_labels: &str) -> f64 {
    samples
        .iter()
        .find_map(|s| s.strip_prefix(name_labels)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name_labels} not in:\n{}", samples.join("\n")))
}

/// The dataplane rotord started (its only child).
fn dataplane_pid(rotord: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{rotord}/task/{rotord}/children"))
            .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            return pid.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "rotord {rotord} has no dataplane"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_are_scraped_parsed_and_survive_a_dataplane_restart() {
    let s = setup("metrics");
    let n1 = s.start(1, &[]);
    let samples = s.wait_sample("rotor_ring_state{state=\"operational\"} 1.0");
    assert_eq!(value(&samples, "rotor_ring_members{}"), 1.0);
    assert_eq!(
        value(
            &samples,
            "rotor_peer_up{address=\"127.0.0.2\",peer_id=\"2\"}"
        ),
        0.0
    );
    assert!(samples
        .iter()
        .any(|l| l.starts_with("rotor_info{cluster=\"ops\",node_id=\"1\"")));
    // Alone, one vote of two expected: not quorate.
    let samples = s.wait_sample("rotor_quorum_expected_votes{} 2.0");
    assert_eq!(value(&samples, "rotor_quorum_quorate{}"), 0.0);
    assert_eq!(value(&samples, "rotor_quorum_votes_needed{}"), 2.0);
    let _n2 = s.start(2, &[]);
    let samples = s.wait_sample("rotor_peer_up{address=\"127.0.0.2\",peer_id=\"2\"} 1.0");
    assert_eq!(value(&samples, "rotor_ring_members{}"), 2.0);
    let samples = s.wait_sample("rotor_quorum_quorate{} 1.0");
    assert_eq!(value(&samples, "rotor_quorum_total_votes{}"), 2.0);
    // The link's pings see the peer: up, with a round-trip time.
    let samples =
        s.wait_sample("rotor_peer_link_up{address=\"127.0.0.2\",link=\"0\",peer_id=\"2\"} 1.0");
    let peer = "{address=\"127.0.0.2\",link=\"0\",peer_id=\"2\"}";
    assert!(value(&samples, &format!("rotor_peer_link_rtt_seconds{peer}")) > 0.0);
    assert!(value(&samples, &format!("rotor_peer_link_answers_total{peer}")) >= 1.0);
    // Every family an operator watches is there from the start, counters at their value.
    for family in [
        "rotor_token_rotation_seconds_bucket{le=\"+Inf\"}",
        "rotor_dataplane_housekeeping_seconds_bucket{le=\"+Inf\"}",
        "rotor_token_retransmits_total{}",
        "rotor_retransmitted_frames_total{}",
        "rotor_retransmit_requests_total{}",
        "rotor_token_lost_total{}",
        "rotor_ipc_backlog_bytes{}",
        "rotor_ipc_requests_deferred_total{}",
        "rotor_ipc_records_backlogged_total{}",
        "rotor_ipc_clients{}",
        "rotor_dataplane_restarts_total{}",
    ] {
        value(&samples, family);
    }
    // Frames that are not rotor's are crypto drops, by reason: one that starts like ours but
    // is cut short, one of someone else.
    let garbage = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    garbage.send_to(b"RT\x02", ("127.0.0.1", s.port)).unwrap();
    garbage
        .send_to(&[0x5a; 120], ("127.0.0.1", s.port))
        .unwrap();
    s.wait_sample("rotor_crypto_dropped_frames_total{reason=\"truncated\"} 1.0");
    s.wait_sample("rotor_crypto_dropped_frames_total{reason=\"bad_magic\"} 1.0");
    // Let the token go round, then kill the dataplane: rotord starts another.
    let samples = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let samples = s.scrape();
            if value(&samples, "rotor_token_rotation_seconds_count{}") >= 5.0 {
                break samples;
            }
            assert!(Instant::now() < deadline, "{}", samples.join("\n"));
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let before_tokens = value(&samples, "rotor_tokens_received_total{}");
    let before_rotations = value(&samples, "rotor_token_rotation_seconds_count{}");
    let before_frames = value(&samples, "rotor_network_received_frames_total{}");
    assert!(before_tokens > 0.0 && before_frames > 0.0);
    assert_eq!(value(&samples, "rotor_dataplane_restarts_total{}"), 0.0);
    let rotord = n1.child.as_ref().unwrap().id();
    let dataplane = dataplane_pid(rotord);
    // SAFETY: kill(2) on the dataplane our rotord started.
    unsafe { libc::kill(dataplane as i32, libc::SIGKILL) };
    let samples = s.wait_sample("rotor_dataplane_restarts_total{} 1.0");
    for (name, before) in [
        (
            "rotor_crypto_dropped_frames_total{reason=\"truncated\"}",
            1.0,
        ),
        ("rotor_tokens_received_total{}", before_tokens),
        ("rotor_token_rotation_seconds_count{}", before_rotations),
        ("rotor_network_received_frames_total{}", before_frames),
    ] {
        let after = value(&samples, name);
        assert!(
            after >= before,
            "{name} went back across the restart: {before} then {after}"
        );
    }
    // The new dataplane counts on top of the old one's.
    let samples = s.wait_sample("rotor_ring_state{state=\"operational\"} 1.0");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = value(&samples, "rotor_tokens_received_total{}");
    while now <= before_tokens {
        assert!(Instant::now() < deadline, "tokens stuck at {now}");
        std::thread::sleep(Duration::from_millis(100));
        now = value(&s.scrape(), "rotor_tokens_received_total{}");
    }
    // cmap shows the same total; clearing it resets cmap, not the metrics.
    let shown = s.rotor(1, &["cmap", "-q", "-g", "stats.srp.tokens"]);
    let shown: f64 = shown.trim().parse().expect("a number");
    assert!(
        shown > before_tokens,
        "cmap {shown}, before the restart {before_tokens}"
    );
    assert_eq!(s.rotor(1, &["cmap", "-C", "totem"]), "");
    let cleared: f64 = s
        .rotor(1, &["cmap", "-q", "-g", "stats.srp.tokens"])
        .trim()
        .parse()
        .expect("a number");
    assert!(
        cleared < shown,
        "cmap after -C totem: {cleared} (was {shown})"
    );
    assert!(value(&s.scrape(), "rotor_tokens_received_total{}") >= now);
    assert!(s.log(1).contains("statistics cleared (totem)"));
    // Other paths and methods.
    assert_eq!(s.get("/nothing").0, "HTTP/1.1 404 Not Found");
    assert_eq!(s.get("/").0, "HTTP/1.1 200 OK");
}

#[test]
fn a_pid_file_is_written_locked_and_removed() {
    let s = setup("pidfile");
    // Metrics off: only the pid file is under test (and two rotords would share the port).
    let conf = std::fs::read_to_string(&s.conf).unwrap();
    let conf = &conf[..conf.find("rotor {").unwrap()];
    std::fs::write(&s.conf, conf).unwrap();
    let pid_file = s.dir.join("rotord.pid");
    let pid_arg = pid_file.to_str().unwrap().to_owned();
    let mut n1 = s.start(1, &["--pid-file", &pid_arg]);
    let rotord = n1.child.as_ref().unwrap().id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&pid_file).unwrap_or_default() != format!("{rotord}\n") {
        assert!(Instant::now() < deadline, "pid file {}", pid_file.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another rotord (node 2, its own sockets) on the same pid file is refused.
    let second = s
        .rotord(2, &["--pid-file", &pid_arg])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(18), "{second:?}");
    assert!(
        s.log(2).contains("is locked by another rotord") || {
            String::from_utf8_lossy(&second.stderr).contains("is locked by another rotord")
        },
        "{}",
        s.log(2)
    );
    let status = stop(n1.child.take().unwrap());
    assert!(status.is_some_and(|st| st.success()));
    assert!(!Path::new(&pid_file).exists(), "removed on a clean stop");
}
