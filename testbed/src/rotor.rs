//! rotor nodes on testbed hosts: the corosync.conf of an N-host cluster, its authkey, the
//! `rotord` command line for host I, `rotor status` read back as a value, waiting for a full
//! ring, and killing a host's node the way a crash would (every process in the host, the
//! dataplane before rotord so it cannot leave the ring cleanly on rotord's death signal).
//! Shared by the end-to-end tests, `cargo xtask cluster`, the demo and the benchmarks. It starts
//! nothing by itself: callers spawn the command where they want its output to go.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ipv4, ipv6, Testbed};

/// The cluster port rotor and corosync use by default (totem.interface.mcastport).
pub const PORT_DEFAULT: u16 = 5405;

/// What the cluster's corosync.conf says.
#[derive(Clone, Debug)]
pub struct Spec {
    pub cluster_name: String,
    /// totem.transport: `knet` (rotor: XDP when it can, else UDP), `xdp`, `udpu` or `udp`.
    pub transport: String,
    /// Node addresses in 2001:2::I instead of 198.18.0.I.
    pub ipv6: bool,
    /// Node addresses 127.0.0.I: every node on this host, no namespaces (rotord then needs
    /// `--node-id I` and its own `ROTOR_IPC_SOCKET`).
    pub loopback: bool,
    pub port: u16,
    /// More `key: value` lines for totem{} (e.g. `("token", "300")`).
    pub totem: Vec<(String, String)>,
    /// Whole sections appended verbatim (e.g. `uidgid {\n uid: 1000\n}\n`).
    pub extra: String,
    /// Links of every node (1: `ring0_addr` alone; N: `ring0_addr` … `ring<N-1>_addr` at
    /// [`crate::ipv4_on_link`], on the bridges `Testbed::add_link` makes).
    pub links: usize,
    /// Sections put verbatim inside totem{} (e.g. `interface {\n linknumber: 1\n … }\n`).
    pub interfaces: String,
    /// Link 0's `mcastaddr`: the group every frame for all members goes to (transport `udp`,
    /// or `xdp` with a group), instead of one unicast per peer.
    pub mcastaddr: Option<String>,
}

impl Spec {
    pub fn new(cluster_name: &str) -> Spec {
        Spec {
            cluster_name: cluster_name.to_owned(),
            transport: "knet".to_owned(),
            ipv6: false,
            loopback: false,
            port: PORT_DEFAULT,
            totem: Vec::new(),
            extra: String::new(),
            links: 1,
            interfaces: String::new(),
            mcastaddr: None,
        }
    }

    /// Host `i`'s ring0 address.
    pub fn addr(&self, i: usize) -> String {
        if self.loopback {
            std::net::Ipv4Addr::new(127, 0, 0, i as u8).to_string()
        } else if self.ipv6 {
            ipv6(i).to_string()
        } else {
            ipv4(i).to_string()
        }
    }

    /// corosync.conf for hosts 1..=`hosts`, node ids equal to host numbers.
    pub fn corosync_conf(&self, hosts: usize, keyfile: &Path) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "totem {{");
        let _ = writeln!(s, "  version: 2");
        let _ = writeln!(s, "  cluster_name: {}", self.cluster_name);
        let _ = writeln!(s, "  transport: {}", self.transport);
        let _ = writeln!(s, "  crypto_cipher: aes256");
        let _ = writeln!(s, "  crypto_hash: sha256");
        let _ = writeln!(s, "  keyfile: {}", keyfile.display());
        if self.ipv6 && !self.loopback {
            let _ = writeln!(s, "  ip_version: ipv6");
        }
        for (k, v) in &self.totem {
            let _ = writeln!(s, "  {k}: {v}");
        }
        let _ = writeln!(s, "  interface {{");
        let _ = writeln!(s, "    linknumber: 0");
        let _ = writeln!(s, "    mcastport: {}", self.port);
        if let Some(group) = &self.mcastaddr {
            let _ = writeln!(s, "    mcastaddr: {group}");
        }
        let _ = writeln!(s, "  }}");
        s.push_str(&self.interfaces);
        let _ = writeln!(s, "}}");
        let _ = writeln!(s, "nodelist {{");
        for i in 1..=hosts {
            let _ = writeln!(s, "  node {{");
            let _ = writeln!(s, "    ring0_addr: {}", self.addr(i));
            for link in 1..self.links {
                let _ = writeln!(s, "    ring{link}_addr: {}", crate::ipv4_on_link(i, link));
            }
            let _ = writeln!(s, "    nodeid: {i}");
            let _ = writeln!(s, "  }}");
        }
        let _ = writeln!(s, "}}");
        let _ = writeln!(s, "logging {{");
        let _ = writeln!(s, "  to_stderr: yes");
        let _ = writeln!(s, "  to_syslog: no");
        let _ = writeln!(s, "  timestamp: hires");
        let _ = writeln!(s, "}}");
        s.push_str(&self.extra);
        s
    }
}

/// Writes a fresh 256-byte key from /dev/urandom with mode 0400, replacing any old one.
pub fn write_authkey(path: &Path) -> io::Result<()> {
    let mut key = [0u8; 256];
    fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)?
        .write_all(&key)
}

/// Every package whose programs or libraries the tests and tools run: rotord, the dataplane,
/// `rotor`, and the C libraries. Every build here selects all of them, so cargo resolves the
/// same features each time and a build made for one test is current for the next; a build of
/// a subset resolved other features and rebuilt (and relinked) what the previous one made.
pub const PACKAGES: &[&str] = &[
    "rotor-control",
    "rotor-dataplane",
    "rotor-client",
    "rotor-capi-corosync-common",
    "rotor-capi-cpg",
    "rotor-capi-cmap",
    "rotor-capi-quorum",
    "rotor-capi-votequorum",
    "rotor-capi-sam",
    "rotor-capi-cfg",
];

/// The variables cargo sets for the program it runs (a test, xtask) that build scripts of our
/// dependencies watch with `rerun-if-env-changed` (ring and libbpf-sys watch
/// `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, …): passed on to a nested cargo, they made it rebuild
/// ring, libbpf-sys and all that depends on them, and the next plain build rebuild them again.
fn is_set_for_the_running_program(name: &str) -> bool {
    name == "OUT_DIR"
        || name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || name.starts_with("CARGO_BIN_")
        || name.starts_with("CARGO_CRATE_")
        || name.starts_with("CARGO_CFG_")
        || name == "CARGO_PRIMARY_PACKAGE"
        || name == "CARGO_TARGET_TMPDIR"
        || name == "CARGO_RUSTC_CURRENT_DIR"
}

/// The cargo running us, with its environment less what it set for the running program: every
/// nested cargo of a test or a benchmark starts here.
pub fn cargo_command() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_set_for_the_running_program) {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// `cargo build` of [`PACKAGES`] (see [`cargo_command`]).
fn cargo_build_command() -> Command {
    let mut cmd = cargo_command();
    cmd.arg("build");
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    cmd
}

/// Builds [`PACKAGES`] in `workspace` (with `--release` or not; a no-op when they are current)
/// and returns the directory cargo put rotord, rotor-dataplane and rotor in, as its JSON
/// messages report it. Compiler output goes to stderr. For `cargo xtask cluster`, the demo and
/// the benchmarks.
pub fn build_bins(workspace: &Path, release: bool) -> io::Result<Bins> {
    build_bins_into(workspace, None, release)
}

/// [`build_bins`] into `target_dir` (cargo's `CARGO_TARGET_DIR`) when given: a second checkout
/// (the base of `bench lat-ab`) must not build into this one's target directory, whose
/// artifacts cargo would then take for this checkout's.
pub fn build_bins_into(
    workspace: &Path,
    target_dir: Option<&Path>,
    release: bool,
) -> io::Result<Bins> {
    let mut cmd = cargo_build_command();
    cmd.current_dir(workspace)
        .args(["--message-format", "json-render-diagnostics"]);
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    if release {
        cmd.arg("--release");
    }
    let out = cmd.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "cargo build of {}: {}",
            PACKAGES.join(", "),
            out.status
        )));
    }
    // The compiler-artifact message of each binary carries `"executable":"<path>"`.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("\"executable\":\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .find(|p| p.ends_with("/rotord"))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
        .map(|dir| Bins { dir })
        .ok_or_else(|| io::Error::other("cargo build did not report the rotord executable"))
}

/// Builds [`PACKAGES`] (debug) for a test: a test of one package needs the binaries and
/// libraries of others, which `cargo test -p` neither builds nor rebuilds when stale (a stale
/// rotord would speak an older ring version). A no-op when they are current.
pub fn cargo_build() -> io::Result<()> {
    let status = cargo_build_command().status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "cargo build of {}: {status}",
            PACKAGES.join(", ")
        )))
    }
}

/// Where the binaries are: `rotord`, `rotor-dataplane` (beside rotord) and `rotor`.
#[derive(Clone, Debug)]
pub struct Bins {
    pub dir: PathBuf,
}

impl Bins {
    pub fn rotord(&self) -> PathBuf {
        self.dir.join("rotord")
    }
    pub fn rotor(&self) -> PathBuf {
        self.dir.join("rotor")
    }
}

/// `rotor status` as a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotorStatus {
    pub node_id: u32,
    pub transport: String,
    /// `operational`, `gather`, `commit`, `recovery`, or `down` (no dataplane).
    pub state: String,
    pub ring: String,
    /// The ring's members (the `Members` line; without one, the node ids link 0 shows as
    /// `localhost` or `connected`), ascending.
    pub connected: Vec<u32>,
}

/// Reads `rotor status` output (laid out like `corosync-cfgtool -s`).
pub fn parse_status(text: &str) -> Option<RotorStatus> {
    let first = text.lines().next()?;
    let rest = first.strip_prefix("Local node ID ")?;
    let (id, transport) = rest.split_once(", transport ")?;
    let mut connected = Vec::new();
    let mut members: Option<Vec<u32>> = None;
    let mut state = None;
    let mut ring = None;
    let mut links_seen = 0;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("LINK ID ") {
            links_seen += 1;
        } else if let Some(m) = t.strip_prefix("Members") {
            members = m
                .split_whitespace()
                .map(|id| id.parse().ok())
                .collect::<Option<Vec<u32>>>();
        } else if let Some(r) = t.strip_prefix("Ring ID ") {
            let (r, s) = r.split_once(", state ")?;
            ring = Some(r.to_owned());
            state = Some(s.to_owned());
        } else if let Some(n) = t.strip_prefix("nodeid:").filter(|_| links_seen <= 1) {
            // Only link 0's node lines.
            let (id, what) = n.split_once(':')?;
            if matches!(what.trim(), "localhost" | "connected") {
                connected.push(id.trim().parse().ok()?);
            }
        }
    }
    let mut connected = members.unwrap_or(connected);
    connected.sort_unstable();
    Some(RotorStatus {
        node_id: id.trim().parse().ok()?,
        transport: transport.trim().to_owned(),
        state: state?,
        ring: ring?,
        connected,
    })
}

/// rotord in the foreground with `conf`: hand it to [`Testbed::spawn`], or run it through
/// [`Testbed::command`] where its output should go elsewhere.
pub fn rotord_command(bins: &Bins, conf: &Path) -> Command {
    let mut cmd = Command::new(bins.rotord());
    cmd.arg("-f").arg("-c").arg(conf);
    cmd
}

impl Testbed {
    /// A u64 cmap key on host `i` (`rotor cmap get KEY` with the `rotor` binary at `rotor`):
    /// `None` when the key is not set or not a number. Panics when rotor cannot be run at all,
    /// so a test asserting a key's absence never passes on a tool that did not start.
    pub fn cmap_u64(&self, i: usize, rotor: &Path, key: &str) -> Option<u64> {
        let out = self
            .command(i, rotor)
            .args(["cmap", "get", key])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("rotor cmap get {key} on {}: {e}", self.host(i)));
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .rsplit_once(" = ")
            .and_then(|(_, v)| v.parse().ok())
    }

    /// `rotor status` on host `i`.
    pub fn rotor_status(&self, i: usize, bins: &Bins) -> io::Result<RotorStatus> {
        let out = self
            .command(i, bins.rotor())
            .arg("status")
            .stdin(Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "rotor status on {}: {}",
                self.host(i),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_status(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("rotor status on {}: unreadable: {text:?}", self.host(i)),
            )
        })
    }

    /// Waits until every host in `hosts` is operational with exactly `members` connected.
    /// The error names the hosts that are not, with what they last showed.
    pub fn wait_rotor_ring(
        &self,
        hosts: &[usize],
        members: &[u32],
        bins: &Bins,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut behind = Vec::new();
            for &i in hosts {
                match self.rotor_status(i, bins) {
                    Ok(s) if s.state == "operational" && s.connected == members => {}
                    Ok(s) => behind.push(format!(
                        "{}: state {} ring {} connected {:?}",
                        self.host(i),
                        s.state,
                        s.ring,
                        s.connected
                    )),
                    Err(e) => behind.push(e.to_string()),
                }
            }
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no ring of {members:?} within {timeout:?}: {}",
                    behind.join("; ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every process running in host `i`, with its command name (`/proc/PID/comm`).
    pub fn processes(&self, i: usize) -> Vec<(libc::pid_t, String)> {
        let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.host(i)])
            .output()
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .map(|pid| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                (pid, comm.trim().to_owned())
            })
            .collect()
    }

    /// Kills host `i`'s node as a crash or power loss would: SIGKILL to every process in the
    /// host, the dataplane first (rotord's death would otherwise signal it to leave cleanly).
    /// Returns how many processes were signalled.
    pub fn kill_host(&self, i: usize) -> usize {
        let pids = self.kill_list(i);
        kill_pids(&pids);
        pids.len()
    }

    /// The processes `kill_host` would signal, in its order. Listing them runs `ip netns pids`,
    /// which takes milliseconds on a loaded machine: a caller that times the kill lists first,
    /// takes its time, then calls [`kill_pids`].
    pub fn kill_list(&self, i: usize) -> Vec<libc::pid_t> {
        let mut pids: Vec<(bool, libc::pid_t)> = self
            .processes(i)
            .into_iter()
            .map(|(pid, comm)| (comm != "rotor-dataplane", pid))
            .collect();
        pids.sort_unstable();
        pids.into_iter().map(|(_, pid)| pid).collect()
    }
}

/// SIGKILL to each of `pids` (from [`Testbed::kill_list`]), in order.
pub fn kill_pids(pids: &[libc::pid_t]) {
    for pid in pids {
        // Safety: kill(2) has no memory preconditions; the pids were read from a testbed
        // host's namespace, which only processes started for this testbed enter.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_is_read_back() {
        let text = "Local node ID 2, transport xdp\nLINK ID 0 xdp\n\taddr\t= 198.18.0.2\n\
                    \tstatus:\n\t\tnodeid:          1:\tconnected\n\t\tnodeid:          2:\t\
                    localhost\n\t\tnodeid:          3:\tdisconnected\nRing ID 1.c, state operational\n";
        let s = parse_status(text).unwrap();
        assert_eq!(s.node_id, 2);
        assert_eq!(s.transport, "xdp");
        assert_eq!(s.state, "operational");
        assert_eq!(s.ring, "1.c");
        assert_eq!(s.connected, [1, 2]);
        assert!(parse_status("rotor: cannot connect").is_none());
        // Two links: the members from the Members line (link 1's lines and link health do
        // not count).
        let text = "Local node ID 1, transport udp\nLINK ID 0 udp\n\taddr\t= 198.18.0.1\n\
                    \tstatus:\n\t\tnodeid:          1:\tlocalhost\n\t\tnodeid:          2:\t\
                    connected\nLINK ID 1 udp\n\taddr\t= 198.19.1.1\n\tstatus:\n\t\t\
                    nodeid:          1:\tlocalhost\n\t\tnodeid:          2:\tconnected\n\
                    Ring ID 1.8, state operational\nMembers 1\nKey 6a1cf437\n";
        let s = parse_status(text).unwrap();
        assert_eq!((s.ring.as_str(), s.connected.as_slice()), ("1.8", &[1][..]));
    }

    #[test]
    fn config_names_every_host() {
        let mut spec = Spec::new("t");
        spec.totem.push(("token".into(), "300".into()));
        let conf = spec.corosync_conf(3, Path::new("/k"));
        assert!(conf.contains("ring0_addr: 198.18.0.3\n    nodeid: 3"));
        assert!(conf.contains("  token: 300\n"));
        assert!(conf.contains("keyfile: /k\n"));
        spec.links = 2;
        let conf = spec.corosync_conf(3, Path::new("/k"));
        assert!(conf.contains("ring0_addr: 198.18.0.3\n    ring1_addr: 198.19.1.3\n"));
        spec.links = 1;
        spec.ipv6 = true;
        let conf = spec.corosync_conf(2, Path::new("/k"));
        assert!(conf.contains("ring0_addr: 2001:2::2"));
        assert!(conf.contains("ip_version: ipv6"));
        spec.loopback = true;
        assert!(spec
            .corosync_conf(2, Path::new("/k"))
            .contains("ring0_addr: 127.0.0.2"));
    }
}
