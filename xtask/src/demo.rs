//! `cargo xtask demo`: a real three-node rotor cluster, shown working. As root it runs on
//! network-namespace hosts `demo1..3` (198.18.0.I) with the default transport (XDP there);
//! otherwise (or with `--loopback`) every node runs on this host's loopback (127.0.0.I) over
//! kernel UDP. It generates a key with `rotor keygen`, starts one rotord per node, shows the ring
//! forming and `rotor status`, runs CPG traffic between processes on all nodes with a progress
//! bar, kills one node and shows the configuration change and the survivors carrying on, prints
//! latency percentiles and throughput, and cleans up everything it started (also on an error,
//! Ctrl-C or SIGTERM).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rotor_testbed::interrupt::check as check_interrupt;
use rotor_testbed::rotor::{parse_status, Bins, RotorStatus, Spec};
use rotor_testbed::Testbed;

use crate::cluster::{build_bins, is_root};

const NODES: usize = 3;
/// Seconds of CPG traffic with all three nodes sending.
const TRAFFIC_S: u64 = 4;
const RING_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the nodes run.
enum Place {
    Hosts(Testbed),
    /// Every node on this host; node I has its own IPC socket name.
    Loopback {
        tag: String,
    },
}

/// The running demo cluster; dropping it stops every node and removes what it made.
struct Demo {
    place: Place,
    bins: Bins,
    dir: PathBuf,
    conf: PathBuf,
    /// rotord of node I at index I-1, `None` once killed.
    daemons: Vec<Option<Child>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pids: Vec<i32> = self
            .daemons
            .iter()
            .flatten()
            .map(|c| c.id() as i32)
            .collect();
        crate::cluster::stop_pids(&pids, "rotord");
        for c in self.daemons.iter_mut().flatten() {
            let _ = c.wait();
        }
        // Dropping the testbed kills anything left in the hosts and removes them.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Demo {
    /// `program` run as on node `i`: inside its host, or with its IPC socket name.
    fn on_node(&self, i: usize, program: &Path) -> Command {
        match &self.place {
            Place::Hosts(bed) => bed.command(i, program),
            Place::Loopback { tag } => {
                let mut c = Command::new(program);
                c.env("ROTOR_IPC_SOCKET", format!("{tag}-n{i}"));
                c
            }
        }
    }

    fn rotor(&self, i: usize) -> Command {
        self.on_node(i, &self.bins.rotor())
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("n{i}.log"))
    }

    fn start(&mut self, i: usize) -> Result<(), String> {
        let log = fs::File::create(self.log(i)).map_err(|e| e.to_string())?;
        let mut cmd = self.on_node(i, &self.bins.rotord());
        cmd.arg("-f").arg("-c").arg(&self.conf);
        if let Place::Loopback { .. } = self.place {
            cmd.args(["--node-id", &i.to_string()]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start rotord for node {i}: {e}"))?;
        self.daemons.push(Some(child));
        Ok(())
    }

    /// Prints `rotor status` of node `i`, as a person would see it.
    fn show_status(&self, i: usize) -> Result<(), String> {
        println!("    $ rotor status   # on node {i}");
        let out = self
            .rotor(i)
            .arg("status")
            .output()
            .map_err(|e| e.to_string())?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("    {line}");
        }
        Ok(())
    }

    fn status(&self, i: usize) -> Option<RotorStatus> {
        let out = self.rotor(i).arg("status").output().ok()?;
        parse_status(&String::from_utf8_lossy(&out.stdout))
    }

    /// Waits until `nodes` are operational with exactly those members, echoing new membership
    /// lines from the first node's log as they appear.
    fn wait_ring(&self, nodes: &[usize], echo_from: &mut usize) -> Result<(), String> {
        let want: Vec<u32> = nodes.iter().map(|&i| i as u32).collect();
        let deadline = Instant::now() + RING_TIMEOUT;
        loop {
            check_interrupt()?;
            self.echo_membership(nodes[0], echo_from);
            let ready = nodes.iter().all(|&i| {
                self.status(i)
                    .is_some_and(|s| s.state == "operational" && s.connected == want)
            });
            if ready {
                self.echo_membership(nodes[0], echo_from);
                return Ok(());
            }
            if Instant::now() > deadline {
                let mut msg = format!("no ring of nodes {want:?} within {RING_TIMEOUT:?}");
                for &i in nodes {
                    msg.push_str(&format!(
                        "\n  node {i} log:\n    {}",
                        crate::cluster::tail(&self.log(i), 8)
                    ));
                }
                return Err(msg);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Prints the `[TOTEM ]` lines of node `i`'s log after line `from`.
    fn echo_membership(&self, i: usize, from: &mut usize) {
        let text = fs::read_to_string(self.log(i)).unwrap_or_default();
        for line in text.lines().skip(*from) {
            if line.contains("[TOTEM ]") || line.contains("transport") {
                println!("    node {i} | {line}");
            }
        }
        *from = text.lines().count();
    }

    /// Kills node `i` as a crash would: SIGKILL to its dataplane, then to its rotord.
    fn crash(&mut self, i: usize) {
        if let Place::Hosts(bed) = &self.place {
            bed.kill_host(i);
        }
        if let Some(mut c) = self.daemons[i - 1].take() {
            for pid in children_named(c.id(), "rotor-dataplane") {
                // Safety: kill(2) on a child of a rotord this demo started, just read from /proc.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Pids of the children of `parent` whose command name is `name`.
fn children_named(parent: u32, name: &str) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
            else {
                return false;
            };
            comm == name && rest.split_whitespace().nth(1) == Some(&parent.to_string())
        })
        .collect()
}

fn heading(text: &str) {
    println!("\n== {text}");
}

/// The value of `key=` in a `rotor bench` line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn bar(done: f64, width: usize) -> String {
    let filled = ((done.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// Runs `rotor bench` on `nodes` at once and returns each node's result line; while they run,
/// draws a progress bar of messages delivered at the first node (from its cmap stats).
fn bench_all(
    demo: &Demo,
    nodes: &[usize],
    args: &[&str],
    seconds: u64,
) -> Result<Vec<String>, String> {
    let delivered = |i: usize| -> u64 {
        demo.rotor(i)
            .args(["cmap", "get", "stats.srp.delivered"])
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.rsplit(' ').next()?.trim().parse().ok()
            })
            .unwrap_or(0)
    };
    let base = delivered(nodes[0]);
    let mut children = Vec::new();
    for &i in nodes {
        let child = demo
            .rotor(i)
            .arg("bench")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("rotor bench on node {i}: {e}"))?;
        children.push((i, child));
    }
    let start = Instant::now();
    let limit = Duration::from_secs(seconds + 40);
    while children
        .iter_mut()
        .any(|(_, c)| matches!(c.try_wait(), Ok(None)))
    {
        if let Err(e) = check_interrupt() {
            for (_, c) in &mut children {
                let _ = c.kill();
                let _ = c.wait();
            }
            return Err(e);
        }
        let t = start.elapsed().as_secs_f64();
        let n = delivered(nodes[0]).saturating_sub(base);
        eprint!(
            "\r    {} {t:4.1} s  {n:>10} messages delivered at node {}",
            bar(t / seconds as f64, 30),
            nodes[0]
        );
        if start.elapsed() > limit {
            for (_, c) in &mut children {
                let _ = c.kill();
            }
            return Err("rotor bench did not finish".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!();
    let mut lines = Vec::new();
    for (i, c) in children {
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || text.is_empty() {
            return Err(format!(
                "rotor bench on node {i} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        lines.push(text);
    }
    Ok(lines)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let usage = || "usage: cargo xtask demo [--loopback] [--bins DIR]".to_string();
    let mut loopback = false;
    let mut prebuilt = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--loopback" => loopback = true,
            // Binaries built already (rotord, rotor-dataplane, rotor): no install, no build,
            // so the demo can run as a user who can do neither.
            "--bins" => {
                i += 1;
                prebuilt = Some(PathBuf::from(args.get(i).ok_or_else(usage)?));
            }
            _ => return Err(usage()),
        }
        i += 1;
    }
    rotor_testbed::interrupt::catch();
    let bins = match prebuilt {
        Some(dir) => Bins { dir },
        None => {
            crate::deps::ensure()?;
            build_bins(true)?
        }
    };
    let root = is_root() && !loopback;
    let dir = std::env::temp_dir().join(format!("rotor-demo-{}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    heading("1. a cluster key");
    let key = dir.join("authkey");
    let out = Command::new(bins.rotor())
        .arg("keygen")
        .arg("-k")
        .arg(&key)
        .output()
        .map_err(|e| format!("rotor keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "rotor keygen: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    println!("    $ rotor keygen -k {}", key.display());
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        println!("    {line}");
    }

    let mut spec = Spec::new("rotor-demo");
    let place = if root {
        heading("2. three hosts (network namespaces demo1..3, 198.18.0.1-3 on one bridge)");
        spec.transport = "knet".into();
        Place::Hosts(Testbed::up("demo", NODES).map_err(|e| format!("testbed: {e}"))?)
    } else {
        heading(if loopback {
            "2. three nodes on this host's loopback (127.0.0.1-3)"
        } else {
            "2. three nodes on this host's loopback (127.0.0.1-3; run as root for network-namespace hosts and XDP)"
        });
        spec.loopback = true;
        spec.transport = "udpu".into();
        Place::Loopback {
            tag: format!("rotor-demo-{}", std::process::id()),
        }
    };
    let conf = dir.join("corosync.conf");
    fs::write(&conf, spec.corosync_conf(NODES, &key)).map_err(|e| e.to_string())?;
    println!(
        "    corosync.conf: {} (cluster_name rotor-demo, totem.transport {}, aes256/sha256, nodes {})",
        conf.display(),
        spec.transport,
        (1..=NODES).map(|i| spec.addr(i)).collect::<Vec<_>>().join(", ")
    );
    let mut demo = Demo {
        place,
        bins,
        dir,
        conf,
        daemons: Vec::new(),
    };

    heading("3. one rotord per node; the ring forms");
    for i in 1..=NODES {
        demo.start(i)?;
        println!("    $ rotord -f -c corosync.conf   # node {i}");
    }
    let mut echoed = 0;
    let all: Vec<usize> = (1..=NODES).collect();
    demo.wait_ring(&all, &mut echoed)?;
    demo.show_status(1)?;

    heading(&format!(
        "4. CPG traffic: a process on every node multicasts 64-byte messages to group \"demo\" for {TRAFFIC_S} s"
    ));
    let secs = TRAFFIC_S.to_string();
    let lines = bench_all(
        &demo,
        &all,
        &[
            "tput",
            "-s",
            "64",
            "-t",
            &secs,
            "-n",
            "100000000",
            "-g",
            "demo",
            "-m",
            "3",
        ],
        TRAFFIC_S,
    )?;
    for (i, line) in all.iter().zip(&lines) {
        println!(
            "    node {i}: sent {:>9}, delivered {:>10} msgs/s ({} MB/s), sequence errors {}",
            field(line, "sent").unwrap_or("?"),
            field(line, "delivered_msgs_per_s").unwrap_or("?"),
            field(line, "delivered_MBps").unwrap_or("?"),
            field(line, "seq_errors").unwrap_or("?")
        );
    }

    heading("5. node 3 crashes (SIGKILL to its dataplane and rotord)");
    demo.crash(3);
    demo.wait_ring(&[1, 2], &mut echoed)?;
    demo.show_status(1)?;

    heading(
        "6. the survivors carry on: agreed self-delivery latency (64 B, one message in flight)",
    );
    let lat = bench_all(
        &demo,
        &[1],
        &["lat", "-s", "64", "-n", "5000", "-t", "5", "-g", "demo-lat"],
        5,
    )?;
    let l = &lat[0];
    println!(
        "    node 1: {} messages, p50 {} us, p99 {} us, p99.9 {} us, max {} us, sequence errors {}",
        field(l, "count").unwrap_or("?"),
        field(l, "p50_us").unwrap_or("?"),
        field(l, "p99_us").unwrap_or("?"),
        field(l, "p999_us").unwrap_or("?"),
        field(l, "max_us").unwrap_or("?"),
        field(l, "seq_errors").unwrap_or("?")
    );
    let tput = bench_all(
        &demo,
        &[1, 2],
        &[
            "tput",
            "-s",
            "1024",
            "-t",
            "3",
            "-n",
            "100000000",
            "-g",
            "demo-1k",
            "-m",
            "2",
        ],
        3,
    )?;
    for (i, line) in [1, 2].iter().zip(&tput) {
        println!(
            "    node {i}: 1 KiB messages, delivered {} msgs/s ({} MB/s), sequence errors {}",
            field(line, "delivered_msgs_per_s").unwrap_or("?"),
            field(line, "delivered_MBps").unwrap_or("?"),
            field(line, "seq_errors").unwrap_or("?")
        );
    }

    heading("7. cleaning up");
    drop(demo);
    println!("    stopped every node and removed the hosts; `cargo xtask cluster up 3` starts a cluster that stays up");
    Ok(())
}

/// The loopback demo as uid 65534 (root only): the debug binaries and this xtask are copied
/// where that user may run them, and the demo runs through setpriv with no capabilities.
pub fn run_unprivileged() -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    const UID: u32 = 65534;
    let built = build_bins(false)?;
    let dir = std::env::temp_dir().join(format!("rotor-demo-nonroot-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copy = |from: &Path, name: &str| -> Result<(), String> {
        let to = dir.join(name);
        fs::copy(from, &to)
            .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
    };
    let result = (|| {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        for name in ["rotord", "rotor-dataplane", "rotor"] {
            copy(&built.dir.join(name), name)?;
        }
        let me = std::env::current_exe().map_err(|e| format!("xtask's own path: {e}"))?;
        copy(&me, "xtask")?;
        crate::run(
            &format!("cargo xtask demo --loopback as uid {UID}"),
            Command::new("setpriv")
                .arg(format!("--reuid={UID}"))
                .arg(format!("--regid={UID}"))
                .args(["--clear-groups", "--inh-caps=-all"])
                .arg(dir.join("xtask"))
                .args(["demo", "--loopback", "--bins"])
                .arg(&dir)
                .env("HOME", "/tmp")
                .env("TMPDIR", "/tmp"),
        )
    })();
    let _ = fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_fields_and_bars() {
        let line = "bench=lat size=64 count=10 p50_us=12.5 p99_us=40.0 seq_errors=0";
        assert_eq!(field(line, "p50_us"), Some("12.5"));
        assert_eq!(field(line, "p5"), None);
        assert_eq!(field(line, "seq_errors"), Some("0"));
        assert_eq!(bar(0.5, 4), "[##--]");
        assert_eq!(bar(2.0, 3), "[###]");
    }
}
