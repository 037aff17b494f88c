//! Running the systems under test on rotor-testbed hosts: Corosync 3 (one daemon per host, each in
//! its own mount namespace with its own /run and /var/lib/corosync, as shared/tools/corosync-peer.sh
//! does) and rotor (one `rotord` per host, which starts its dataplane), plus the bench clients.
//!
//! Every process started here is in its own process group (a terminal's Ctrl-C reaches only the
//! bench, which then tears down in order), is remembered by PID, and is stopped by that PID only:
//! SIGTERM, a bounded wait, then SIGKILL. Every wait is bounded and gives up early when the bench
//! is interrupted (`interrupted`).

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rotor_testbed::rotor::{rotord_command, Bins, Spec};
use rotor_testbed::Testbed;

pub use rotor_testbed::interrupt::{
    catch as catch_interrupts, check as check_interrupt, interrupted,
};

/// Sleeps `d` unless interrupted first.
pub fn nap(d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
    }
    check_interrupt()
}

/// The `main` of each bench binary: interrupts caught, `run` on the arguments, its error on
/// stderr after `name` and exit status 1.
pub fn bench_main(name: &str, run: fn(&[String]) -> Result<(), String>) {
    catch_interrupts();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

/// The arguments of one `rotor bench` / `cpg_bench` run (after the program name).
pub fn bench_args(
    kind: &str,
    size: usize,
    count: u64,
    seconds: f64,
    group: &str,
    members: usize,
) -> Vec<String> {
    let (size, count, seconds, members) = (
        size.to_string(),
        count.to_string(),
        seconds.to_string(),
        members.to_string(),
    );
    [
        kind, "-s", &size, "-n", &count, "-t", &seconds, "-g", group, "-m", &members,
    ]
    .map(String::from)
    .to_vec()
}

/// Runs `cmd` to completion; a failure is an error naming `what` with the command's stderr.
fn run_ok(what: &str, cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Long-running processes (daemons) started by the bench; stopped by PID on `stop` or drop.
#[derive(Default)]
pub struct Daemons {
    procs: Vec<(String, Child)>,
}

impl Daemons {
    /// Starts `cmd` in its own process group with stdout and stderr going to `log`.
    pub fn start(&mut self, name: &str, mut cmd: Command, log: &Path) -> Result<u32, String> {
        let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        let pid = child.id();
        self.procs.push((name.to_owned(), child));
        Ok(pid)
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|(_, c)| c.id()).collect()
    }

    /// Names of daemons that have exited already.
    pub fn exited(&mut self) -> Vec<String> {
        self.procs
            .iter_mut()
            .filter_map(|(n, c)| c.try_wait().ok().flatten().map(|_| n.clone()))
            .collect()
    }

    /// SIGTERM to each, up to `grace` for all to exit, then SIGKILL to what is left; reaps all.
    pub fn stop(&mut self, grace: Duration) {
        for (_, c) in &mut self.procs {
            if c.try_wait().ok().flatten().is_none() {
                // Safety: kill(2) on our own unreaped child: the PID is still ours.
                unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline
            && self
                .procs
                .iter_mut()
                .any(|(_, c)| c.try_wait().ok().flatten().is_none())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (_, c) in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// What one client run printed.
pub struct ClientOutput {
    pub host: usize,
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The benchmark clients' realtime priority with `--client-rt`: below the daemons' 99 (both
/// systems' default `system.sched_rr`), so a client never keeps its node's token waiting.
pub const CLIENT_RT_PRIORITY: i32 = 50;

/// `cmd` as it should run: with `rt` its process (and what it execs) is put in the
/// round-robin realtime class ([`CLIENT_RT_PRIORITY`]) before exec, as a latency-sensitive
/// application would run; otherwise unchanged.
pub fn client_class(rt: bool, mut cmd: Command) -> Command {
    if rt {
        // SAFETY: between fork and exec only sched_setscheduler (async-signal-safe) runs.
        unsafe {
            cmd.pre_exec(|| {
                let param = libc::sched_param {
                    sched_priority: CLIENT_RT_PRIORITY,
                };
                if libc::sched_setscheduler(0, libc::SCHED_RR, &param) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

/// Runs one command per host at once, each in its own process group, and waits for all of
/// them at most `limit` (killing, by PID, any still running then or on an interrupt).
pub fn run_clients(
    cmds: Vec<(usize, Command)>,
    limit: Duration,
) -> Result<Vec<ClientOutput>, String> {
    let mut running = Vec::new();
    for (host, mut cmd) in cmds {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start client on host {host}: {e}"))?;
        running.push((host, child));
    }
    // Drain the pipes from threads so a chatty client never blocks on a full pipe.
    let readers: Vec<_> = running
        .iter_mut()
        .map(|(_, c)| {
            let mut out = c.stdout.take();
            let mut err = c.stderr.take();
            std::thread::spawn(move || {
                let (mut o, mut e) = (String::new(), String::new());
                if let Some(s) = out.as_mut() {
                    let _ = s.read_to_string(&mut o);
                }
                if let Some(s) = err.as_mut() {
                    let _ = s.read_to_string(&mut e);
                }
                (o, e)
            })
        })
        .collect();
    let deadline = Instant::now() + limit;
    let mut status = vec![None; running.len()];
    while status.iter().any(Option::is_none) {
        for (i, (_, c)) in running.iter_mut().enumerate() {
            if status[i].is_none() {
                status[i] = c.try_wait().map_err(|e| e.to_string())?;
            }
        }
        if Instant::now() > deadline || interrupted() {
            for (_, c) in &mut running {
                let _ = c.kill();
            }
            for (i, (_, c)) in running.iter_mut().enumerate() {
                if status[i].is_none() {
                    status[i] = c.wait().ok();
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut outputs = Vec::new();
    for (((host, _), reader), st) in running.into_iter().zip(readers).zip(status) {
        let (stdout, stderr) = reader.join().unwrap_or_default();
        outputs.push(ClientOutput {
            host,
            ok: st.is_some_and(|s| s.success()),
            stdout,
            stderr,
        });
    }
    check_interrupt()?;
    Ok(outputs)
}

/// The first `bench=` line of each client, or an error with what the failing ones said.
pub fn bench_lines(outputs: &[ClientOutput], what: &str) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    let mut errors = String::new();
    for o in outputs {
        match o.stdout.lines().find(|l| l.starts_with("bench=")) {
            Some(l) if o.ok => lines.push(l.to_owned()),
            _ => {
                let _ = write!(
                    errors,
                    "\n  host {}: {}{}",
                    o.host,
                    o.stdout.trim(),
                    o.stderr.trim()
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(format!("{what} failed:{errors}"))
    }
}

/// corosync.conf for either system, through rotor-testbed's shared `Spec` (hosts at
/// 198.18.0.I, node I = host I, aes256 + sha256 with `keyfile`, cluster port 5405):
/// `transport` is `knet` (Corosync) or `xdp` (rotor); `totem` lines go inside totem{}, `extra`
/// sections (quorum{}, rotor{} …) are appended.
pub fn corosync_conf(
    transport: &str,
    keyfile: &Path,
    hosts: usize,
    totem: &[(&str, &str)],
    extra: &str,
) -> String {
    let mut spec = Spec::new("vsbench");
    spec.transport = transport.to_owned();
    spec.totem = totem
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spec.extra = extra.to_owned();
    spec.corosync_conf(hosts, keyfile)
}

/// How rotor is configured for a run.
#[derive(Clone, Copy, Default)]
pub struct RotorConf<'a> {
    /// `xdp` or `udp` (empty = xdp).
    pub transport: &'a str,
    /// rotor{poll_mode}; None = rotord's default.
    pub poll: Option<&'a str>,
    /// Extra totem{} keys and values.
    pub totem: &'a [(&'a str, &'a str)],
}

/// Debian's corosync 3 and libcpg-dev, installed with apt-get when missing.
pub fn ensure_corosync() -> Result<(), String> {
    let have = Path::new("/usr/sbin/corosync").exists()
        && Path::new("/usr/include/corosync/cpg.h").exists();
    if have {
        return Ok(());
    }
    eprintln!("vs-corosync: installing corosync and libcpg-dev (apt-get)");
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "corosync", "libcpg-dev"][..],
    ] {
        let ok = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("apt-get: {e}"))?;
        if !ok.success() {
            return Err(format!("apt-get {}: {ok}", args.join(" ")));
        }
    }
    Ok(())
}

/// Compiles the C CPG client into `out` (linked with Debian's libcpg).
pub fn build_c_client(out: &Path) -> Result<(), String> {
    let src = crate::report::workspace_root().join("bench/csrc/cpg_bench.c");
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(out)
        .arg(&src)
        .arg("-lcpg")
        .status()
        .map_err(|e| format!("cc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cc {}: {status}", src.display()))
    }
}

/// rotor's libcpg and libcorosync_common under their sonames in `bin/capi-lib`, for the C
/// client's `LD_LIBRARY_PATH`, from the release build [`build_rotor`] made (it builds the C
/// libraries with the binaries).
pub fn capi_lib_dir(bin: &Path) -> Result<PathBuf, String> {
    let dir = bin.join("capi-lib");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for (file, soname) in [
        ("libcpg.so", "libcpg.so.4"),
        ("libcorosync_common.so", "libcorosync_common.so.4"),
    ] {
        let link = dir.join(soname);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(bin.join(file), &link).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

/// What drives rotor's side of a bench: `rotor bench` (the native client), or the C client
/// `cpg_bench` over rotor's libcpg (the drop-in path: [`capi_lib_dir`] first on its library
/// path).
pub enum RotorClient {
    Native { rotor: PathBuf },
    C { cpg_bench: PathBuf, libs: PathBuf },
}

impl RotorClient {
    /// The program to run (directly, or under a wrapper such as `perf stat`).
    pub fn program(&self) -> &Path {
        match self {
            RotorClient::Native { rotor } => rotor,
            RotorClient::C { cpg_bench, .. } => cpg_bench,
        }
    }

    /// Readies `cmd`, which runs [`Self::program`], for the bench arguments that follow:
    /// rotor's libcpg on the C client's library path, or `rotor`'s `bench` subcommand.
    pub fn prepare(&self, cmd: &mut Command) {
        match self {
            RotorClient::Native { .. } => {
                cmd.arg("bench");
            }
            RotorClient::C { libs, .. } => {
                cmd.env("LD_LIBRARY_PATH", libs);
            }
        }
    }
}

/// `cargo build --release` of rotord, rotor-dataplane and rotor (a no-op when they are
/// current); returns the directory holding them.
pub fn build_rotor() -> Result<PathBuf, String> {
    rotor_testbed::rotor::build_bins(&crate::report::workspace_root(), true)
        .map(|bins| bins.dir)
        .map_err(|e| format!("building rotord, rotor-dataplane and rotor: {e}"))
}

/// Corosync on every testbed host, each daemon with its own /run and /var/lib/corosync.
pub struct Corosync {
    pub dir: PathBuf,
    pub daemons: Daemons,
}

impl Corosync {
    /// `program args…` inside host `i` and that host's mount namespace view (its /run and
    /// /var/lib/corosync bound over the real ones), so libcpg reaches that host's daemon.
    pub fn command(bed: &Testbed, dir: &Path, i: usize, program: &Path, args: &[&str]) -> Command {
        let host = dir.join(format!("host{i}"));
        let mut cmd = bed.command(i, "unshare");
        cmd.args([
            "-m",
            "sh",
            "-c",
            "mount --bind \"$1\" /run && mount --bind \"$2\" /var/lib/corosync && shift 2 && exec \"$@\"",
            "sh",
        ])
        .arg(host.join("run"))
        .arg(host.join("lib"))
        .arg(program)
        .args(args);
        cmd
    }

    /// Writes the key and config (with `totem` keys inside totem{}), starts a daemon per host
    /// and waits (60 s at most) until host 1's votequorum counts every node.
    pub fn up(bed: &Testbed, dir: &Path, totem: &[(&str, &str)]) -> Result<Corosync, String> {
        let hosts = bed.hosts();
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let key = dir.join("authkey");
        if !key.exists() {
            run_ok(
                "corosync-keygen",
                Command::new("corosync-keygen").arg("-k").arg(&key),
            )?;
        }
        let conf = dir.join("corosync.conf");
        let quorum = "quorum {\n  provider: corosync_votequorum\n}\n";
        std::fs::write(&conf, corosync_conf("knet", &key, hosts, totem, quorum))
            .map_err(|e| e.to_string())?;
        let mut c = Corosync {
            dir: dir.to_owned(),
            daemons: Daemons::default(),
        };
        for i in 1..=hosts {
            let host = dir.join(format!("host{i}"));
            for sub in ["run", "lib"] {
                std::fs::create_dir_all(host.join(sub)).map_err(|e| e.to_string())?;
            }
            let conf_s = conf.display().to_string();
            let cmd = Corosync::command(bed, dir, i, Path::new("corosync"), &["-f", "-c", &conf_s]);
            c.daemons
                .start(&format!("corosync{i}"), cmd, &host.join("log"))?;
        }
        let want = format!("Nodes: {hosts}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            check_interrupt()?;
            let out = Corosync::command(bed, dir, 1, Path::new("corosync-quorumtool"), &["-s"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout);
            if text
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == want)
            {
                return Ok(c);
            }
            let dead = c.daemons.exited();
            if !dead.is_empty() || Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("host1/log")).unwrap_or_default();
                return Err(format!(
                    "corosync: no ring of {hosts} within 60 s (exited: {dead:?}); host 1 log tail:\n{}",
                    tail(&log, 15)
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// rotor on every testbed host: one rotord each, which starts its dataplane.
pub struct Rotor {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub daemons: Daemons,
}

impl Rotor {
    /// Writes a key (`rotor keygen`) and a config from `conf`, starts rotord on every host (in
    /// its own process group, log in `dir`) and waits (60 s at most) until every host reports
    /// an operational ring of all hosts (rotor-testbed's `wait_rotor_ring`).
    pub fn up(bed: &Testbed, dir: &Path, bin: &Path, conf: RotorConf<'_>) -> Result<Rotor, String> {
        let hosts = bed.hosts();
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let key = dir.join("authkey");
        let _ = std::fs::remove_file(&key);
        run_ok(
            "rotor keygen",
            Command::new(bin.join("rotor"))
                .args(["keygen", "-k"])
                .arg(&key),
        )?;
        let rotor_section = conf
            .poll
            .map(|p| format!("rotor {{\n  poll_mode: {p}\n}}\n"))
            .unwrap_or_default();
        let transport = if conf.transport.is_empty() {
            "xdp"
        } else {
            conf.transport
        };
        let conf_path = dir.join("corosync.conf");
        let text = corosync_conf(transport, &key, hosts, conf.totem, &rotor_section);
        std::fs::write(&conf_path, text).map_err(|e| e.to_string())?;
        let mut r = Rotor {
            dir: dir.to_owned(),
            bin: bin.to_owned(),
            daemons: Daemons::default(),
        };
        let bins = Bins {
            dir: bin.to_owned(),
        };
        for i in 1..=hosts {
            let rotord = rotord_command(&bins, &conf_path);
            let mut cmd = bed.command(i, rotord.get_program());
            cmd.args(rotord.get_args());
            let log = dir.join(format!("rotord{i}.log"));
            r.daemons.start(&format!("rotord{i}"), cmd, &log)?;
        }
        check_interrupt()?;
        let all: Vec<usize> = (1..=hosts).collect();
        let members: Vec<u32> = (1..=hosts as u32).collect();
        if let Err(e) = bed.wait_rotor_ring(&all, &members, &bins, Duration::from_secs(60)) {
            let dead = r.daemons.exited();
            let log = std::fs::read_to_string(dir.join("rotord1.log")).unwrap_or_default();
            return Err(format!(
                "rotor: {e} (exited: {dead:?}); host 1 log tail:\n{}",
                tail(&log, 15)
            ));
        }
        Ok(r)
    }
}

impl Rotor {
    /// The dataplane processes the rotords started (their children named `rotor-dataplane`).
    pub fn dataplane_pids(&self) -> Vec<u32> {
        let parents = self.daemons.pids();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                let Some((comm, fields)) = crate::cpu::proc_stat(&stat) else {
                    return false;
                };
                let ppid = fields.get(1).and_then(|p| p.parse::<u32>().ok());
                comm == "rotor-dataplane" && ppid.is_some_and(|p| parents.contains(&p))
            })
            .collect()
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_node_and_the_crypto() {
        let c = corosync_conf("xdp", Path::new("/k"), 3, &[("hold", "5")], "rotor {\n}\n");
        assert!(c.contains("transport: xdp"));
        assert!(c.contains("crypto_cipher: aes256") && c.contains("crypto_hash: sha256"));
        assert!(c.contains("keyfile: /k\n") && c.contains("  hold: 5\n"));
        for i in 1..=3 {
            assert!(c.contains(&format!("ring0_addr: 198.18.0.{i}\n    nodeid: {i}\n")));
        }
        assert!(c.ends_with("rotor {\n}\n"));
    }

    #[test]
    fn bench_args_are_rotor_bench_flags() {
        assert_eq!(
            bench_args("lat", 64, 100, 2.5, "g", 3).join(" "),
            "lat -s 64 -n 100 -t 2.5 -g g -m 3"
        );
    }

    #[test]
    fn bench_lines_pick_results_and_name_failures() {
        let out = |host, ok, stdout: &str| ClientOutput {
            host,
            ok,
            stdout: stdout.into(),
            stderr: String::new(),
        };
        let good = [
            out(1, true, "noise\nbench=lat size=64\n"),
            out(2, true, "bench=tput size=1\n"),
        ];
        assert_eq!(
            bench_lines(&good, "x").unwrap(),
            ["bench=lat size=64", "bench=tput size=1"]
        );
        let bad = [out(1, true, "bench=lat\n"), out(3, false, "timed out")];
        let e = bench_lines(&bad, "lat 64").unwrap_err();
        assert!(
            e.contains("lat 64 failed") && e.contains("host 3: timed out"),
            "{e}"
        );
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
