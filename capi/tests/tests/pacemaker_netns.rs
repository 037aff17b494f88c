//! Pacemaker on rotor: Debian's pacemaker 2.1, unchanged, on three rotor-testbed hosts
//! (root; otherwise it prints why it skipped), each with rotord (votequorum) and pacemakerd
//! running with rotor's libcpg, libcmap, libquorum and libcfg first on `LD_LIBRARY_PATH`.
//! Each pacemakerd runs in a mount namespace of its own where its state lives in the test's
//! directory (`/var/lib/pacemaker`, `/var/log/pacemaker` bound to the host's, a tmpfs on
//! `/run`), and a UTS namespace named after its node.
//!
//! `crm_mon -1` shows the three nodes online and the partition quorate; with
//! stonith-enabled=false an `ocf:pacemaker:Dummy` resource starts; killing its node (its
//! rotord, dataplane and pacemaker, SIGKILL) makes crm_mon show that node offline and the
//! resource started on another; killing one more node leaves the last without quorum, and
//! no-quorum-policy=stop (pacemaker's default) stops the resource there.
//!
//! Hosts `pm1..3`; run under `flock /tmp/rotor-netns.lock`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rotor_capi_tests::{lib_dir, target_dir, text};
use rotor_testbed::rotor::{rotord_command, write_authkey, Bins, Spec};
use rotor_testbed::{root_or_skip, Proc, TempDir, Testbed};

const PACEMAKERD: &str = "/usr/sbin/pacemakerd";
/// How long pacemaker may take for each step (election, start, recovery).
const STEP: Duration = Duration::from_secs(120);

fn node_name(i: usize) -> String {
    format!("pm-n{i}")
}

/// Every descendant of `pid` (children first found through /proc), deepest last.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a pid this test started (or a descendant of one), read just now.
    unsafe { libc::kill(pid as i32, signal) };
}

/// A host's processes: rotord and pacemakerd, with their logs.
struct Host {
    rotord: Option<Proc>,
    rotord_log: Option<JoinHandle<String>>,
    pacemakerd: Option<Proc>,
    dir: PathBuf,
}

impl Host {
    /// SIGKILL to pacemakerd, rotord and everything they started: the node dies at once.
    fn kill_all(&mut self) {
        let mut pids = Vec::new();
        for p in [self.pacemakerd.as_ref(), self.rotord.as_ref()]
            .into_iter()
            .flatten()
        {
            pids.push(p.pid());
            pids.extend(descendants(p.pid()));
        }
        for pid in pids {
            kill(pid, libc::SIGKILL);
        }
        for p in [self.pacemakerd.as_mut(), self.rotord.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = p.wait_timeout(Duration::from_secs(5));
        }
    }

    /// pacemakerd stops its daemons on SIGTERM; then rotord. Whatever is left is killed.
    fn stop(&mut self) {
        if let Some(p) = self.pacemakerd.as_mut() {
            let children = descendants(p.pid());
            let _ = p.signal(libc::SIGTERM);
            if p.wait_timeout(Duration::from_secs(30))
                .ok()
                .flatten()
                .is_none()
            {
                let _ = p.kill();
            }
            for c in children {
                kill(c, libc::SIGKILL);
            }
        }
        if let Some(p) = self.rotord.as_mut() {
            let _ = p.signal(libc::SIGTERM);
            if p.wait_timeout(Duration::from_secs(5))
                .ok()
                .flatten()
                .is_none()
            {
                let _ = p.kill();
            }
        }
    }
}

/// The hosts, stopped in order when the test ends; a failing test prints every log.
struct Hosts(Vec<Host>);

impl Drop for Hosts {
    fn drop(&mut self) {
        for h in &mut self.0 {
            h.stop();
        }
        for (i, h) in self.0.iter_mut().enumerate() {
            let log = h
                .rotord_log
                .take()
                .map(|j| j.join().unwrap_or_default())
                .unwrap_or_default();
            if std::thread::panicking() {
                eprintln!("---- rotord on host {}:\n{log}", i + 1);
                let pm =
                    std::fs::read_to_string(h.dir.join("log/pacemaker.log")).unwrap_or_default();
                let tail: Vec<&str> = pm.lines().rev().take(150).collect();
                eprintln!("---- pacemaker.log on host {} (last lines):", i + 1);
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// A pacemaker tool on host `i` with rotor's libraries.
fn tool(bed: &Testbed, lib: &Path, i: usize, program: &str, args: &[&str]) -> Output {
    bed.command(i, program)
        .args(args)
        .env("LD_LIBRARY_PATH", lib)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// `crm_mon -1` on host `i` until `done` says its output is what is awaited.
fn wait_crm_mon(
    bed: &Testbed,
    lib: &Path,
    i: usize,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + STEP;
    loop {
        let out = tool(bed, lib, i, "crm_mon", &["-1", "-r"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && done(&text) {
            println!("host {i}: {what}:\n{text}");
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "host {i}: {what}: not within {} s; crm_mon -1 says:\n{}",
            STEP.as_secs(),
            String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The node crm_mon says runs `resource` (`* dummy (ocf:pacemaker:Dummy): Started pm-n2`).
fn started_on(crm_mon: &str, resource: &str) -> Option<usize> {
    crm_mon
        .lines()
        .find(|l| l.contains(&format!("* {resource}\t")) || l.contains(&format!("* {resource} ")))
        .and_then(|l| l.split("Started ").nth(1))
        .and_then(|n| n.trim().strip_prefix("pm-n"))
        .and_then(|n| n.parse().ok())
}

/// The mount-namespace set-up of a pacemakerd: its host's state directories in place of the
/// system's, a private /run, its node name as host name.
fn pacemakerd_script(dir: &Path, name: &str) -> String {
    format!(
        "set -e\n\
         hostname {name}\n\
         mount --bind {d}/lib /var/lib/pacemaker\n\
         mount --bind {d}/log /var/log/pacemaker\n\
         mount -t tmpfs -o mode=0755 tmpfs /run\n\
         mkdir -p /run/crm /run/resource-agents\n\
         chown hacluster:haclient /run/crm\n\
         exec {PACEMAKERD} -f\n",
        d = dir.display()
    )
}

fn chown_hacluster(path: &Path) {
    let out = Command::new("chown")
        .args(["-R", "hacluster:haclient"])
        .arg(path)
        .output()
        .expect("run chown");
    assert!(
        out.status.success(),
        "chown {}: {}",
        path.display(),
        text(&out)
    );
}

#[test]
fn pacemaker_runs_on_a_three_node_rotor_cluster() {
    if !root_or_skip("pacemaker on netns hosts") {
        return;
    }
    assert!(
        Path::new(PACEMAKERD).exists(),
        "{PACEMAKERD} is missing: install Debian's pacemaker and pacemaker-cli-utils (cargo \
         xtask deps)"
    );
    let lib = lib_dir();
    let bins = Bins { dir: target_dir() };
    let dir = TempDir::new(&format!("rotor-pacemaker-{}", std::process::id())).unwrap();
    // pacemaker's daemons (uid hacluster) read their state through this directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = dir.path().join("authkey");
    write_authkey(&key).unwrap();
    let mut spec = Spec::new("pm");
    spec.extra = format!(
        "quorum {{\n  provider: corosync_votequorum\n}}\nsystem {{\n  state_dir: {}\n}}\n",
        dir.path().join("state").display()
    );
    let mut conf_text = spec.corosync_conf(3, &key);
    for i in 1..=3 {
        conf_text = conf_text.replace(
            &format!("    nodeid: {i}\n"),
            &format!("    nodeid: {i}\n    name: {}\n", node_name(i)),
        );
    }
    let conf = dir.path().join("pm.conf");
    std::fs::write(&conf, conf_text).unwrap();

    let bed = Testbed::up("pm", 3).expect("testbed");
    let mut hosts = Hosts(Vec::new());
    for i in 1..=3 {
        let hdir = dir.path().join(format!("h{i}"));
        for sub in ["lib/cib", "lib/pengine", "lib/blackbox", "lib/cores", "log"] {
            std::fs::create_dir_all(hdir.join(sub)).unwrap();
        }
        chown_hacluster(&hdir.join("lib"));
        chown_hacluster(&hdir.join("log"));
        let mut rotord = bed.spawn(i, rotord_command(&bins, &conf)).unwrap();
        let rotord_log = rotord.collect_stderr();
        hosts.0.push(Host {
            rotord: Some(rotord),
            rotord_log,
            pacemakerd: None,
            dir: hdir,
        });
    }
    // Quorate everywhere before pacemaker starts.
    for i in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !bed
            .command(i, bins.rotor())
            .args(["quorum", "-s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
        {
            assert!(Instant::now() < deadline, "host {i}: no quorum within 40 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for i in 1..=3 {
        let h = &mut hosts.0[i - 1];
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--uts", "--propagation", "private", "sh", "-c"])
            .arg(pacemakerd_script(&h.dir, &node_name(i)))
            .env("LD_LIBRARY_PATH", &lib)
            .env("PCMK_logfile", h.dir.join("log/pacemaker.log"))
            .env("PCMK_debug", "no");
        h.pacemakerd = Some(bed.spawn(i, cmd).expect("start pacemakerd"));
    }

    // Three nodes online, the partition quorate.
    wait_crm_mon(&bed, &lib, 1, "three nodes online and quorate", |t| {
        t.contains("partition with quorum")
            && t.contains("* Online: [ pm-n1 pm-n2 pm-n3 ]")
            && t.contains("* 3 nodes configured")
    });

    // A Dummy resource starts once STONITH is off.
    for args in [
        &[
            "--type",
            "crm_config",
            "--name",
            "stonith-enabled",
            "--update",
            "false",
        ][..],
        &[
            "--type",
            "crm_config",
            "--name",
            "no-quorum-policy",
            "--update",
            "stop",
        ][..],
    ] {
        let out = tool(&bed, &lib, 1, "crm_attribute", args);
        assert!(
            out.status.success(),
            "crm_attribute {args:?}: {}",
            text(&out)
        );
    }
    let out = tool(
        &bed,
        &lib,
        1,
        "cibadmin",
        &[
            "--create",
            "--scope",
            "resources",
            "--xml-text",
            "<primitive id=\"dummy\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\">\
             <operations><op id=\"dummy-monitor\" name=\"monitor\" interval=\"5s\"/></operations>\
             </primitive>",
        ],
    );
    assert!(out.status.success(), "cibadmin --create: {}", text(&out));
    let status = wait_crm_mon(&bed, &lib, 1, "the Dummy resource started", |t| {
        started_on(t, "dummy").is_some()
    });
    let first = started_on(&status, "dummy").expect("started");

    // Kill the node running it: it shows offline, the resource moves.
    hosts.0[first - 1].kill_all();
    let watcher = (1..=3).find(|i| *i != first).expect("a survivor");
    let status = wait_crm_mon(
        &bed,
        &lib,
        watcher,
        "the killed node offline and the resource moved",
        |t| {
            t.contains(&format!("* OFFLINE: [ {} ]", node_name(first)))
                && t.contains("partition with quorum")
                && started_on(t, "dummy").is_some_and(|n| n != first)
        },
    );
    let second = started_on(&status, "dummy").expect("started");

    // Kill the other survivor: the last node has no quorum and stops the resource.
    let other = (1..=3)
        .find(|i| *i != first && *i != second)
        .expect("the third node");
    hosts.0[other - 1].kill_all();
    wait_crm_mon(
        &bed,
        &lib,
        second,
        "quorum lost and the resource stopped",
        |t| {
            t.contains("partition WITHOUT quorum")
                && t.contains("Stopped")
                && started_on(t, "dummy").is_none()
        },
    );
}
