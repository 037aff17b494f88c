//! rotor-testbed: network-namespace "hosts" on one machine, for tests and `cargo xtask cluster`.
//! `Testbed::up(prefix, n)` builds hosts `{prefix}1`…`{prefix}N`, each a network namespace with
//! `eth0` at 198.18.0.I/24 and 2001:2::I/64 (IPv6 duplicate address detection off, so the
//! addresses work at once) and `lo` up; every host's veth peer `hI` is a port of bridge `br0` in
//! the switch namespace `{prefix}sw`, so nothing is created in, or connected to, the root
//! namespace. Commands run inside a host through `ip netns exec`. Dropping the testbed (or
//! `down(prefix)`, which also clears what a crashed run with that prefix left) kills every
//! process inside its namespaces and deletes them.
//!
//! It is not a network emulator: no delay, loss or partitions of its own (apply `tc netem` or
//! `nft` to the switch's `hI` ports through `exec_switch`); it does not give each host its own
//! mount, pid or uts namespace; and it needs root (`root_or_skip` lets tests skip without it).
//! Two testbeds with one prefix at a time clash: give each concurrent test its own prefix.

pub mod interrupt;
pub mod rotor;

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// Most hosts one testbed builds (addresses are 198.18.0.I with I ≤ 250).
pub const HOSTS_MAX: usize = 250;

/// True when running as root. Otherwise prints `skipped: needs root (<what>)` to stderr so a
/// test's output says why it did nothing, and returns false.
pub fn root_or_skip(what: &str) -> bool {
    // Safety: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("skipped: needs root ({what})");
    false
}

/// Runs `f` on a new thread that has entered network namespace `ns` (by its `/run/netns`
/// name) and returns what it returns: sockets, XDP attachments and netlink calls made there
/// act on that namespace, and a socket created there keeps it when used from another thread.
/// Panics if the namespace cannot be entered or `f` panics.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // Safety: setns on a namespace fd we hold; it affects this thread only.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A process's capability sets as `/proc/PID/status` shows them (bit N is capability N):
/// (effective, permitted, bounding).
pub fn cap_masks(pid: libc::pid_t) -> io::Result<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("no {key} in /proc/{pid}/status"),
                )
            })
    };
    Ok((mask("CapEff:")?, mask("CapPrm:")?, mask("CapBnd:")?))
}

/// A fresh directory `name` under the system's temporary directory (anything of that name
/// removed first), removed with its contents when dropped.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> io::Result<TempDir> {
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Host `i`'s IPv4 address (1-based).
pub fn ipv4(i: usize) -> Ipv4Addr {
    assert!((1..=HOSTS_MAX).contains(&i), "host index {i}");
    Ipv4Addr::new(198, 18, 0, i as u8)
}

/// Host `i`'s IPv6 address (1-based).
pub fn ipv6(i: usize) -> Ipv6Addr {
    assert!((1..=HOSTS_MAX).contains(&i), "host index {i}");
    Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, i as u16)
}

/// Host `i`'s IPv4 address on link `link` (0: [`ipv4`]; link N ≥ 1: 198.19.N.I, inside the
/// testing range 198.18.0.0/15).
pub fn ipv4_on_link(i: usize, link: usize) -> Ipv4Addr {
    if link == 0 {
        return ipv4(i);
    }
    assert!((1..8).contains(&link), "link {link}");
    Ipv4Addr::new(198, 19, link as u8, i as u8)
}

/// The namespace of host `i` under `prefix`.
pub fn host_name(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}")
}

/// The namespace that holds the bridge.
pub fn switch_name(prefix: &str) -> String {
    format!("{prefix}sw")
}

/// Whether namespace `name` belongs to a testbed with `prefix`: `{prefix}sw` or `{prefix}<digits>`.
pub fn is_testbed_namespace(prefix: &str, name: &str) -> bool {
    match name.strip_prefix(prefix) {
        Some("sw") => true,
        Some(rest) => !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

/// Namespace names from `ip netns list` output (`name` or `name (id: N)` per line).
pub fn parse_netns_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn check_prefix(prefix: &str) -> io::Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !prefix.bytes().last().is_some_and(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("testbed prefix {prefix:?}: 1..=32 of [A-Za-z0-9_-], not ending in a digit"),
        ))
    }
}

/// Runs `ip ARGS`; a failure is an error naming the command and ip's message.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run ip: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {} ({})",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )))
    }
}

fn namespaces() -> io::Result<Vec<String>> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    Ok(parse_netns_list(&String::from_utf8_lossy(&out.stdout)))
}

/// SIGKILLs every process in namespace `ns` (as `ip netns pids` lists them).
fn kill_all_in(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<libc::pid_t>().ok())
    {
        // Safety: kill(2) has no memory preconditions; these pids were just read from the
        // namespace, which only processes started for this testbed enter.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Removes every namespace of a testbed with `prefix` and kills the processes inside them:
/// the clean-up of `Drop`, usable on what a crashed run left. Returns how many namespaces went.
pub fn down(prefix: &str) -> io::Result<usize> {
    check_prefix(prefix)?;
    let mut gone = 0;
    let mut names: Vec<String> = namespaces()?
        .into_iter()
        .filter(|n| is_testbed_namespace(prefix, n))
        .collect();
    // Hosts first, the switch last.
    names.sort_by_key(|n| *n == switch_name(prefix));
    for ns in &names {
        kill_all_in(ns);
        if ip(&["netns", "del", ns]).is_ok() {
            gone += 1;
        }
    }
    Ok(gone)
}

/// A built testbed; dropping it tears everything down.
#[derive(Debug)]
pub struct Testbed {
    prefix: String,
    hosts: usize,
    /// False after `keep`: the namespaces outlive this value.
    owned: bool,
}

impl Testbed {
    /// Builds `hosts` hosts under `prefix`, first removing any leftovers with that prefix.
    /// A half-built testbed is torn down before the error returns.
    pub fn up(prefix: &str, hosts: usize) -> io::Result<Testbed> {
        check_prefix(prefix)?;
        if !(1..=HOSTS_MAX).contains(&hosts) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("testbed of {hosts} hosts: 1..={HOSTS_MAX}"),
            ));
        }
        down(prefix)?;
        let bed = Testbed {
            prefix: prefix.to_owned(),
            hosts,
            owned: true,
        };
        bed.build()?;
        Ok(bed)
    }

    fn build(&self) -> io::Result<()> {
        let sw = self.switch();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for i in 1..=self.hosts {
            let ns = self.host(i);
            let port = format!("h{i}");
            ip(&["netns", "add", &ns])?;
            // Duplicate address detection off before any address exists (link-local too).
            self.sysctl(&ns, "net/ipv6/conf/all/accept_dad", "0")?;
            self.sysctl(&ns, "net/ipv6/conf/default/accept_dad", "0")?;
            // Both ends are created where they live: nothing passes through the root namespace.
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            let v4 = format!("{}/24", ipv4(i));
            let v6 = format!("{}/64", ipv6(i));
            ip(&["-n", &ns, "addr", "add", &v4, "dev", "eth0"])?;
            ip(&["-n", &ns, "addr", "add", &v6, "dev", "eth0", "nodad"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Adds link `link` (1..=7): bridge `br<link>` in the switch namespace and, in every host,
    /// `eth<link>` at [`ipv4_on_link`]`/24`, its switch-side port `h<i>l<link>` — a second
    /// network for redundant links, as separate from `br0` as two switches.
    pub fn add_link(&self, link: usize) -> io::Result<()> {
        assert!((1..8).contains(&link), "link {link}");
        let sw = self.switch();
        let bridge = format!("br{link}");
        ip(&["-n", &sw, "link", "add", &bridge, "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", &bridge, "up"])?;
        let dev = format!("eth{link}");
        for i in 1..=self.hosts {
            let ns = self.host(i);
            let port = format!("h{i}l{link}");
            ip(&[
                "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", &dev, "netns", &ns,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", &bridge])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            let v4 = format!("{}/24", ipv4_on_link(i, link));
            ip(&["-n", &ns, "addr", "add", &v4, "dev", &dev])?;
            ip(&["-n", &ns, "link", "set", &dev, "up"])?;
        }
        Ok(())
    }

    /// Sets the MTU of every link of the testbed: the bridge, its ports and every host's `eth0`
    /// (jumbo frames for `totem.netmtu` tests).
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        let sw = self.switch();
        let mtu = mtu.to_string();
        for i in 1..=self.hosts {
            let port = format!("h{i}");
            ip(&["-n", &sw, "link", "set", &port, "mtu", &mtu])?;
            ip(&["-n", &self.host(i), "link", "set", "eth0", "mtu", &mtu])?;
        }
        ip(&["-n", &sw, "link", "set", "br0", "mtu", &mtu])
    }

    /// Writes `/proc/sys/<key>` inside namespace `ns` (network sysctls are per namespace).
    fn sysctl(&self, ns: &str, key: &str, value: &str) -> io::Result<()> {
        let path = format!("/proc/sys/{key}");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "sh",
                "-c",
                "echo \"$1\" > \"$2\"",
                "sh",
            ])
            .args([value, &path])
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{ns}: {path} = {value}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many hosts (they are numbered 1..=hosts).
    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// Host `i`'s namespace name.
    pub fn host(&self, i: usize) -> String {
        assert!((1..=self.hosts).contains(&i), "host {i} of {}", self.hosts);
        host_name(&self.prefix, i)
    }

    /// The switch namespace's name.
    pub fn switch(&self) -> String {
        switch_name(&self.prefix)
    }

    /// `ip netns exec <host i> program`: add arguments and stdio, then spawn or run it.
    pub fn command(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec"]).arg(self.host(i)).arg(program);
        cmd
    }

    /// Runs `argv` inside host `i` to completion and returns its output.
    pub fn exec(&self, i: usize, argv: &[&str]) -> io::Result<Output> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "exec: empty argv"))?;
        self.command(i, program)
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Runs `argv` in the switch namespace (for `tc`/`nft` on the `hI` ports).
    pub fn exec_switch(&self, argv: &[&str]) -> io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec"])
            .arg(self.switch())
            .args(argv)
            .stdin(Stdio::null())
            .output()
    }

    /// Starts `cmd` (program, arguments, environment and working directory are taken from
    /// it; its stdio settings are not) inside host `i`, with stdin null and stdout and stderr
    /// piped. The returned `Proc` is killed when dropped; the testbed's own drop kills it too.
    pub fn spawn(&self, i: usize, cmd: Command) -> io::Result<Proc> {
        let mut inner = self.command(i, cmd.get_program());
        inner.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => inner.env(k, v),
                None => inner.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            inner.current_dir(dir);
        }
        let child = inner
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawn in {}: {e}", self.host(i))))?;
        Ok(Proc { child, host: i })
    }

    /// Runs `f` on a new thread inside host `i`'s network namespace ([`in_netns`]); a client
    /// attached there keeps working from any thread afterwards.
    pub fn in_host<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        in_netns(&self.host(i), f)
    }

    /// Leaves the namespaces in place when this value goes (for `cargo xtask cluster up`);
    /// `down(prefix)` removes them later.
    pub fn keep(mut self) {
        self.owned = false;
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.owned {
            let _ = down(&self.prefix);
        }
    }
}

/// A process started in a host; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    host: usize,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The host it runs in.
    pub fn host(&self) -> usize {
        self.host
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Sends every stdout line to `tx` as `(tag, line)` from a thread, until EOF.
    pub fn forward_stdout(&mut self, tag: usize, tx: Sender<(usize, String)>) {
        if let Some(out) = self.take_stdout() {
            forward_lines(out, tag, tx);
        }
    }

    /// Collects stderr in a thread; the joined handle yields everything written.
    pub fn collect_stderr(&mut self) -> Option<std::thread::JoinHandle<String>> {
        let err = self.take_stderr()?;
        Some(std::thread::spawn(move || {
            let mut s = String::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                s.push_str(&line);
                s.push('\n');
            }
            s
        }))
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) unless the process has been reaped already.
    pub fn signal(&mut self, signal: libc::c_int) -> io::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        // Safety: kill(2) on our own child, which is not reaped yet, so the pid is still ours.
        if unsafe { libc::kill(self.child.id() as libc::pid_t, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits at most `limit` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, limit: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> io::Result<ExitStatus> {
        let _ = self.child.kill();
        self.child.wait()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Sends every line of `r` to `tx` as `(tag, line)` from a new thread, until EOF or until the
/// receiver is gone.
pub fn forward_lines(r: impl io::Read + Send + 'static, tag: usize, tx: Sender<(usize, String)>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send((tag, line)).is_err() {
                break;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(host_name("n", 3), "n3");
        assert_eq!(switch_name("n"), "nsw");
        assert_eq!(ipv4(7).to_string(), "198.18.0.7");
        assert_eq!(ipv6(12).to_string(), "2001:2::c");
    }

    #[test]
    fn leftovers_are_recognised_by_prefix() {
        assert!(is_testbed_namespace("n", "n1"));
        assert!(is_testbed_namespace("n", "n42"));
        assert!(is_testbed_namespace("n", "nsw"));
        assert!(!is_testbed_namespace("n", "n"));
        assert!(!is_testbed_namespace("n", "nx1"));
        assert!(!is_testbed_namespace("n", "m1"));
        assert!(!is_testbed_namespace("rt-a", "rt-b1"));
        let listed = parse_netns_list("n2 (id: 3)\nnsw (id: 0)\nother\n\n");
        assert_eq!(listed, ["n2", "nsw", "other"]);
    }

    #[test]
    fn bad_prefixes_and_sizes_are_refused() {
        assert!(check_prefix("").is_err());
        assert!(check_prefix("n1").is_err(), "n1 + 2 would be n12");
        assert!(check_prefix("a b").is_err());
        assert!(check_prefix("rt-udp-").is_ok());
        assert!(Testbed::up("x", 0).is_err());
        assert!(Testbed::up("x", HOSTS_MAX + 1).is_err());
    }

    #[test]
    fn two_hosts_reach_each_other_and_drop_cleans_up() {
        if !root_or_skip("network namespaces") {
            return;
        }
        let prefix = "rtb-self-";
        let bed = Testbed::up(prefix, 2).unwrap();
        let out = bed
            .exec(1, &["ping", "-c1", "-W2", &ipv4(2).to_string()])
            .unwrap();
        assert!(out.status.success(), "ping v4: {out:?}");
        let out = bed
            .exec(2, &["ping", "-6", "-c1", "-W2", &ipv6(1).to_string()])
            .unwrap();
        assert!(out.status.success(), "ping v6: {out:?}");
        let mut sleeper = bed.spawn(1, {
            let mut c = Command::new("sleep");
            c.arg("30");
            c
        });
        let sleeper = sleeper.as_mut().unwrap();
        drop(bed);
        assert!(
            sleeper
                .wait_timeout(Duration::from_secs(5))
                .unwrap()
                .is_some(),
            "the testbed's drop kills what runs inside"
        );
        let left: Vec<String> = namespaces()
            .unwrap()
            .into_iter()
            .filter(|n| is_testbed_namespace(prefix, n))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
