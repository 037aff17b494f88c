//! `cargo xtask cluster up N | down | exec I CMD…`: a cluster of N network-namespace hosts
//! `n1`…`nN` (rotor-testbed, prefix `n`) with one `rotord` per host (each starting its
//! dataplane), left running for people and outside tools to poke at. State (config, key, logs,
//! PIDs, where the binaries are) lives in `STATE_DIR`. Also the binary build shared with the
//! demo.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rotor_testbed::rotor::{write_authkey, Bins, Spec};
use rotor_testbed::Testbed;

/// Host namespaces are `n1`…`nN`, the switch `nsw`.
const PREFIX: &str = "n";
/// Config, key, per-host logs, the PID list and the binary directory.
const STATE_DIR: &str = "/tmp/rotor-cluster";
const CLUSTER_NAME: &str = "rotor-cluster";
/// Most hosts `up` builds (totem's commit token fits 28 members in a default frame).
const HOSTS_MAX: usize = 28;
/// How long `up` waits for every node to report the full ring.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub const USAGE: &str = "\
usage: cargo xtask cluster up N [--transport auto|xdp|udp] [--ipv6] [--debug] [--mtu BYTES]
                                 [--netmtu BYTES] [--mcast GROUP]
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

pub fn is_root() -> bool {
    // Safety: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn need_root() -> Result<(), String> {
    if is_root() {
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
    /// corosync.conf's totem.transport: knet (rotor: XDP when it can), xdp or udpu.
    transport: &'static str,
    ipv6: bool,
    release: bool,
    /// The MTU of every link of the testbed (hosts' eth0, the bridge and its ports), when set.
    mtu: Option<u32>,
    /// totem.netmtu, when set (jumbo frames want `mtu` too).
    netmtu: Option<u32>,
    /// Link 0's multicast group (`--transport xdp` or `udp` only; udp then means corosync's
    /// multicast `transport: udp` instead of `udpu`).
    mcast: Option<std::net::IpAddr>,
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
        transport: "knet",
        ipv6: false,
        release: true,
        mtu: None,
        netmtu: None,
        mcast: None,
    };
    let bytes = |flag: &str, v: Option<&String>| -> Result<Option<u32>, String> {
        v.and_then(|v| v.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("{flag} takes a size in bytes"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--transport" => {
                up.transport = match it.next().map(String::as_str) {
                    Some("auto") => "knet",
                    Some("xdp") => "xdp",
                    Some("udp") => "udpu",
                    _ => return Err("--transport takes auto, xdp or udp".into()),
                };
            }
            "--ipv6" => up.ipv6 = true,
            "--debug" => up.release = false,
            "--mtu" => up.mtu = bytes("--mtu", it.next())?,
            "--netmtu" => up.netmtu = bytes("--netmtu", it.next())?,
            "--mcast" => {
                up.mcast = Some(
                    it.next()
                        .and_then(|g| g.parse().ok())
                        .filter(std::net::IpAddr::is_multicast)
                        .ok_or("--mcast takes a multicast group address")?,
                )
            }
            other => return Err(format!("cluster up: unknown argument `{other}`\n{USAGE}")),
        }
    }
    if let Some(group) = up.mcast {
        up.transport = match up.transport {
            "xdp" => "xdp",
            "udpu" => "udp",
            _ => return Err("--mcast needs --transport xdp or --transport udp".into()),
        };
        if group.is_ipv6() != up.ipv6 {
            return Err(format!(
                "--mcast {group} is not of the cluster's address family (add or drop --ipv6)"
            ));
        }
    }
    Ok(up)
}

/// Builds rotord, rotor-dataplane and rotor, and returns the directory cargo put them in.
pub fn build_bins(release: bool) -> Result<Bins, String> {
    eprintln!("xtask: building rotord, rotor-dataplane and rotor");
    rotor_testbed::rotor::build_bins(&crate::root(), release).map_err(|e| e.to_string())
}

/// The log of node `i` so far, last `lines` lines, indented.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n    ")
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
    let bins = build_bins(up.release)?;
    fs::create_dir_all(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    let key = state("authkey");
    write_authkey(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut spec = Spec::new(CLUSTER_NAME);
    spec.transport = up.transport.to_owned();
    spec.ipv6 = up.ipv6;
    spec.mcastaddr = up.mcast.map(|g| g.to_string());
    if let Some(netmtu) = up.netmtu {
        spec.totem.push(("netmtu".into(), netmtu.to_string()));
    }
    let conf = state("corosync.conf");
    fs::write(&conf, spec.corosync_conf(up.hosts, &key))
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    fs::write(state("bindir"), bins.dir.as_os_str().as_encoded_bytes())
        .map_err(|e| format!("{STATE_DIR}/bindir: {e}"))?;
    let bed = Testbed::up(PREFIX, up.hosts).map_err(|e| format!("testbed: {e}"))?;
    if let Some(mtu) = up.mtu {
        bed.set_mtu(mtu)
            .map_err(|e| format!("testbed MTU {mtu}: {e}"))?;
    }
    let mut pids = String::new();
    for i in 1..=up.hosts {
        let log_path = state(&format!("n{i}.log"));
        let log =
            fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        // Its own process group: a Ctrl-C at `up`'s terminal does not reach the nodes.
        let child = bed
            .command(i, bins.rotord())
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start rotord on n{i}: {e}"))?;
        pids.push_str(&format!("{i} {}\n", child.id()));
    }
    fs::write(state("pids"), &pids).map_err(|e| format!("{STATE_DIR}/pids: {e}"))?;
    let hosts: Vec<usize> = (1..=up.hosts).collect();
    let members: Vec<u32> = (1..=up.hosts as u32).collect();
    let ready = bed.wait_rotor_ring(&hosts, &members, &bins, READY_TIMEOUT);
    bed.keep();
    println!(
        "cluster: {} hosts n1..n{} on bridge br0 in namespace nsw; node I is 198.18.0.I/24 and \
         2001:2::I/64 (cluster port 5405, totem.transport {}{}, {}, link MTU {}, netmtu {}); \
         one rotord per host",
        up.hosts,
        up.hosts,
        up.transport,
        up.mcast.map_or(String::new(), |g| format!(" to group {g}")),
        if up.ipv6 { "IPv6" } else { "IPv4" },
        up.mtu.map_or("as created".to_owned(), |m| m.to_string()),
        up.netmtu
            .map_or("the default".to_owned(), |m| m.to_string())
    );
    println!("  run in a host:  cargo xtask cluster exec I rotor status   (rotor, rotord are on its PATH)");
    println!(
        "  config:         {}   logs: {STATE_DIR}/nI.log",
        conf.display()
    );
    println!("  stop:           cargo xtask cluster down");
    match ready {
        Ok(()) => {
            println!("cluster: ring formed, every node operational with members {members:?}");
            Ok(())
        }
        Err(e) => {
            let mut msg = format!(
                "{e}\ncluster left up for inspection, `cargo xtask cluster down` removes it."
            );
            for i in 1..=up.hosts {
                let log = state(&format!("n{i}.log"));
                msg.push_str(&format!("\n  {}:\n    {}", log.display(), tail(&log, 5)));
            }
            Err(msg)
        }
    }
}

/// Whether `pid` is still the program `name` (not a recycled pid of something else).
pub fn is_running(pid: i32, name: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .next()
                .is_some_and(|argv0| argv0.ends_with(name.as_bytes()))
        })
        .unwrap_or(false)
}

/// SIGTERMs `pids` that are still `name` (rotord leaves the ring and stops its dataplane),
/// waits up to 5 s, then SIGKILLs what is left. Returns how many were running.
pub fn stop_pids(pids: &[i32], name: &str) -> usize {
    let ours: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|&p| is_running(p, name))
        .collect();
    for &pid in &ours {
        // Safety: kill(2) on a pid this tool started and just checked is still `name`.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ours.iter().any(|&p| is_running(p, name)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &pid in ours.iter().filter(|&&p| is_running(p, name)) {
        // Safety: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    ours.len()
}

fn down() -> Result<(), String> {
    need_root()?;
    // `ip netns exec` replaces itself with rotord, so the recorded pid is rotord's.
    let pids: Vec<i32> = fs::read_to_string(state("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    let stopped = stop_pids(&pids, "rotord");
    let gone = rotor_testbed::down(PREFIX).map_err(|e| format!("testbed down: {e}"))?;
    for f in ["pids", "authkey", "bindir"] {
        let _ = fs::remove_file(state(f));
    }
    println!(
        "cluster: stopped {stopped} node(s), removed {gone} namespace(s); logs stay in {STATE_DIR}"
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
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &ns]).args(cmd);
    // The cluster's binaries first on PATH, so `rotor status` is the right rotor.
    if let Ok(dir) = fs::read_to_string(state("bindir")) {
        let path = std::env::var("PATH").unwrap_or_default();
        command.env("PATH", format!("{dir}:{path}"));
    }
    let err = command.exec();
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
            (a.hosts, a.transport, a.ipv6, a.release),
            (3, "knet", false, true)
        );
        let a = parse_up(&strings(&["5", "--transport", "xdp", "--ipv6", "--debug"])).unwrap();
        assert_eq!(
            (a.hosts, a.transport, a.ipv6, a.release),
            (5, "xdp", true, false)
        );
        let a = parse_up(&strings(&["3", "--mtu", "9000", "--netmtu", "9000"])).unwrap();
        assert_eq!((a.mtu, a.netmtu), (Some(9000), Some(9000)));
        assert!(parse_up(&strings(&["3", "--mtu"])).is_err());
        assert!(parse_up(&strings(&["3", "--netmtu", "jumbo"])).is_err());
        let a = parse_up(&strings(&["2", "--transport", "udp"])).unwrap();
        assert_eq!(a.transport, "udpu");
        assert!(parse_up(&strings(&[])).is_err());
        assert!(parse_up(&strings(&["0"])).is_err());
        assert!(parse_up(&strings(&["3", "--transport", "tcp"])).is_err());
        assert!(parse_up(&strings(&["3", "--bogus"])).is_err());
        let a = parse_up(&strings(&[
            "3",
            "--transport",
            "udp",
            "--mcast",
            "239.192.0.9",
        ]))
        .unwrap();
        assert_eq!((a.transport, a.mcast), ("udp", "239.192.0.9".parse().ok()));
        let a = parse_up(&strings(&[
            "3",
            "--mcast",
            "ff15::9",
            "--ipv6",
            "--transport",
            "xdp",
        ]));
        assert_eq!(a.unwrap().transport, "xdp");
        assert!(parse_up(&strings(&["3", "--mcast", "239.192.0.9"])).is_err());
        assert!(parse_up(&strings(&[
            "3",
            "--transport",
            "xdp",
            "--mcast",
            "198.18.0.1"
        ]))
        .is_err());
        assert!(parse_up(&strings(&["3", "--transport", "xdp", "--mcast", "ff15::9"])).is_err());
    }
}
