//! `cargo xtask cluster up N | down | exec I CMD…`: a cluster of N network-namespace hosts
//! `n1`…`nN` (rotor-testbed, prefix `n`) with one `rotor-dataplane` per host, left running for
//! people and outside tools to poke at. State (key, logs, PIDs) lives in `STATE_DIR`.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rotor_testbed::Testbed;

/// Host namespaces are `n1`…`nN`, the switch `nsw`.
const PREFIX: &str = "n";
/// Key, per-host logs and the PID list.
const STATE_DIR: &str = "/tmp/rotor-cluster";
const CLUSTER_NAME: &str = "rotor-cluster";
/// Most hosts `up` builds (totem's commit token fits 28 members in a default frame).
const HOSTS_MAX: usize = 28;
/// How long `up` waits for every node to report the full ring.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub const USAGE: &str = "\
usage: cargo xtask cluster up N [--transport udp|xdp] [--ipv6] [--debug]
       cargo xtask cluster down
       cargo xtask cluster exec I CMD...";

pub fn main(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("up") => up(&args[1..]),
        Some("down") => down(),
        Some("exec") => exec(&args[1..]),
        _ => Err(USAGE.to_owned()),
    }
}

fn need_root() -> Result<(), String> {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err("cluster needs root (network namespaces)".into())
    }
}

fn state(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(name)
}

struct UpArgs {
    hosts: usize,
    transport: String,
    ipv6: bool,
    release: bool,
}

fn parse_up(args: &[String]) -> Result<UpArgs, String> {
    let mut it = args.iter();
    let hosts: usize = it
        .next()
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=HOSTS_MAX).contains(n))
        .ok_or_else(|| format!("cluster up needs a host count 1..={HOSTS_MAX}\n{USAGE}"))?;
    let mut up = UpArgs {
        hosts,
        transport: "udp".into(),
        ipv6: false,
        release: true,
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--transport" => {
                up.transport = it
                    .next()
                    .filter(|t| matches!(t.as_str(), "udp" | "xdp"))
                    .ok_or("--transport takes udp or xdp")?
                    .clone();
            }
            "--ipv6" => up.ipv6 = true,
            "--debug" => up.release = false,
            other => return Err(format!("cluster up: unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(up)
}

/// Builds rotor-dataplane and returns the path of the binary cargo reports.
fn build_dataplane(release: bool) -> Result<PathBuf, String> {
    let mut cmd = crate::cargo();
    cmd.args(["build", "-p", "rotor-dataplane", "--bin", "rotor-dataplane"])
        .args(["--message-format", "json-render-diagnostics"]);
    if release {
        cmd.arg("--release");
    }
    eprintln!("xtask: building rotor-dataplane");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build rotor-dataplane failed ({})",
            out.status
        ));
    }
    // The compiler-artifact message of the binary carries `"executable":"<path>"`.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("\"executable\":\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .find(|p| p.ends_with("/rotor-dataplane"))
        .map(PathBuf::from)
        .ok_or_else(|| "cargo build did not report the rotor-dataplane executable".into())
}

fn write_key(path: &Path) -> Result<(), String> {
    let mut key = [0u8; 256];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let _ = fs::remove_file(path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .and_then(|mut f| f.write_all(&key))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn addr(i: usize, ipv6: bool) -> String {
    if ipv6 {
        format!("[{}]:5405", rotor_testbed::ipv6(i))
    } else {
        format!("{}:5405", rotor_testbed::ipv4(i))
    }
}

/// The flags of the binary's `--help`, to pass `--transport` only where it exists.
fn supports_flag(bin: &Path, flag: &str) -> bool {
    Command::new(bin)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
        .unwrap_or(false)
}

fn up(args: &[String]) -> Result<(), String> {
    let up = parse_up(args)?;
    need_root()?;
    if state("pids").exists() {
        return Err(format!(
            "a cluster is already up ({} exists); `cargo xtask cluster down` first",
            state("pids").display()
        ));
    }
    let bin = build_dataplane(up.release)?;
    let mut extra: Vec<String> = Vec::new();
    if supports_flag(&bin, "--transport") {
        extra.extend(["--transport".into(), up.transport.clone()]);
        if up.transport == "xdp" && supports_flag(&bin, "--interface") {
            extra.extend(["--interface".into(), "eth0".into()]);
        }
    } else if up.transport != "udp" {
        return Err(format!(
            "this rotor-dataplane has no --transport flag (the AF_XDP transport is not built \
             yet): only --transport udp works for now, not {}",
            up.transport
        ));
    }
    fs::create_dir_all(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    let key = state("authkey");
    write_key(&key)?;
    let bed = Testbed::up(PREFIX, up.hosts).map_err(|e| format!("testbed: {e}"))?;
    let mut pids = String::new();
    let mut started = Vec::new();
    for i in 1..=up.hosts {
        let log_path = state(&format!("n{i}.log"));
        let log =
            fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = bed.command(i, &bin);
        cmd.args(["--node-id", &i.to_string(), "--bind", &addr(i, up.ipv6)])
            .arg("--keyfile")
            .arg(&key)
            .args(["--cluster-name", CLUSTER_NAME])
            .args(&extra);
        for j in (1..=up.hosts).filter(|&j| j != i) {
            cmd.args(["--peer", &format!("{j}={}", addr(j, up.ipv6))]);
        }
        // Its own process group: a Ctrl-C at `up`'s terminal does not reach the nodes.
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start node {i}: {e}"))?;
        let _ = writeln!(pids, "{i} {}", child.id());
        started.push(child);
    }
    fs::write(state("pids"), &pids).map_err(|e| format!("{STATE_DIR}/pids: {e}"))?;
    bed.keep();
    println!(
        "cluster: {} hosts n1..n{} on bridge br0 in namespace nsw; node I is 198.18.0.I/24 and \
         2001:2::I/64 (cluster port 5405, {} transport, {})",
        up.hosts,
        up.hosts,
        up.transport,
        if up.ipv6 { "IPv6" } else { "IPv4" }
    );
    println!("  run in a host:  cargo xtask cluster exec I CMD...   (or: ip netns exec nI CMD...)");
    println!(
        "  logs:           {STATE_DIR}/nI.log   key: {}",
        key.display()
    );
    println!("  stop:           cargo xtask cluster down");
    wait_ready(up.hosts, &mut started)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n    ")
}

/// Waits until every node's log has a regular configuration with all members.
fn wait_ready(hosts: usize, children: &mut [std::process::Child]) -> Result<(), String> {
    let members: Vec<String> = (1..=hosts).map(|i| i.to_string()).collect();
    let want = format!(" members={}", members.join(","));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let mut waiting = Vec::new();
        for i in 1..=hosts {
            let log = state(&format!("n{i}.log"));
            if let Ok(Some(status)) = children[i - 1].try_wait() {
                return Err(format!(
                    "node {i} exited ({status}); cluster left up for inspection, \
                     `cargo xtask cluster down` removes it. {}:\n    {}",
                    log.display(),
                    tail(&log, 10)
                ));
            }
            let text = fs::read_to_string(&log).unwrap_or_default();
            let ready = text
                .lines()
                .any(|l| l.starts_with("config regular ") && l.ends_with(&want));
            if !ready {
                waiting.push(i);
            }
        }
        if waiting.is_empty() {
            println!("cluster: ring formed, every node reports config regular{want}");
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut msg = format!(
                "no full ring after {READY_TIMEOUT:?}: nodes {waiting:?} have not reported \
                 `config regular{want}`; cluster left up for inspection, `cargo xtask cluster \
                 down` removes it."
            );
            for i in waiting {
                let log = state(&format!("n{i}.log"));
                let _ = write!(msg, "\n  {}:\n    {}", log.display(), tail(&log, 5));
            }
            return Err(msg);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `pid` is still a rotor-dataplane (not a recycled pid of something else).
fn is_dataplane(pid: i32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("rotor-dataplane"))
        .unwrap_or(false)
}

fn down() -> Result<(), String> {
    need_root()?;
    let pids: Vec<i32> = fs::read_to_string(state("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    let ours: Vec<i32> = pids.into_iter().filter(|&p| is_dataplane(p)).collect();
    for &pid in &ours {
        // Safety: kill(2) on a pid this tool started and just checked is still rotor-dataplane.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    // SIGTERM makes a node leave the ring and exit; give them a moment, then insist.
    let deadline = Instant::now() + Duration::from_secs(5);
    while ours.iter().any(|&p| is_dataplane(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in ours.iter().filter(|&&p| is_dataplane(p)) {
        // Safety: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let gone = rotor_testbed::down(PREFIX).map_err(|e| format!("testbed down: {e}"))?;
    let _ = fs::remove_file(state("pids"));
    let _ = fs::remove_file(state("authkey"));
    println!(
        "cluster: stopped {} node(s), removed {gone} namespace(s); logs stay in {STATE_DIR}",
        ours.len()
    );
    Ok(())
}

fn exec(args: &[String]) -> Result<(), String> {
    let (i, cmd) = match args {
        [i, cmd @ ..] if !cmd.is_empty() => (i, cmd),
        _ => return Err(USAGE.to_owned()),
    };
    let i: usize = i
        .parse()
        .ok()
        .filter(|&i| i >= 1)
        .ok_or_else(|| format!("cluster exec: host index `{i}`\n{USAGE}"))?;
    need_root()?;
    let ns = rotor_testbed::host_name(PREFIX, i);
    if !Path::new("/var/run/netns").join(&ns).exists() {
        return Err(format!("no host {ns}: is the cluster up?"));
    }
    let err = Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(cmd)
        .exec();
    Err(format!("ip netns exec {ns}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn up_arguments() {
        let a = parse_up(&strings(&["3"])).unwrap();
        assert_eq!(
            (a.hosts, a.transport.as_str(), a.ipv6, a.release),
            (3, "udp", false, true)
        );
        let a = parse_up(&strings(&["5", "--transport", "xdp", "--ipv6", "--debug"])).unwrap();
        assert_eq!(
            (a.hosts, a.transport.as_str(), a.ipv6, a.release),
            (5, "xdp", true, false)
        );
        assert!(parse_up(&strings(&[])).is_err());
        assert!(parse_up(&strings(&["0"])).is_err());
        assert!(parse_up(&strings(&["3", "--transport", "tcp"])).is_err());
        assert!(parse_up(&strings(&["3", "--bogus"])).is_err());
        assert_eq!(addr(2, false), "198.18.0.2:5405");
        assert_eq!(addr(2, true), "[2001:2::2]:5405");
    }
}
