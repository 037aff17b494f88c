//! SAM's quorum policies on three rotor-testbed hosts (root; otherwise it prints why it
//! skipped), each rotord with votequorum: `rotor sam demo` on host 1 under quorum-restart
//! and quorum-quit, with the cmap flag, while host 1 is cut off from the two others (nft on
//! the switch) and healed. Under quorum-restart the instance is warned and killed when the
//! node loses quorum, the next instance waits in `start` ("waiting for quorum" in cmap) and
//! starts health checking once the node is quorate again. Under quorum-quit an instance
//! started without quorum waits, starts with it, and the supervisor ends with the instance's
//! status when quorum is lost, its cmap state `failed`.
//!
//! Hosts `es1..3`; run under `flock /tmp/rotor-netns.lock`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rotor_testbed::rotor::{rotord_command, write_authkey, Bins, Spec};
use rotor_testbed::{forward_lines, root_or_skip, Proc, TempDir, Testbed};

// Only `bin_dir` of the shared helpers is used here.
#[allow(dead_code)]
mod common;

const WAIT: Duration = Duration::from_secs(40);

/// The rotords and their logs; a failing test prints every log.
struct Daemons(Vec<(Proc, Option<JoinHandle<String>>)>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for (p, _) in &mut self.0 {
            let _ = p.signal(libc::SIGTERM);
        }
        for (i, (p, log)) in self.0.iter_mut().enumerate() {
            if p.wait_timeout(Duration::from_secs(5))
                .ok()
                .flatten()
                .is_none()
            {
                let _ = p.kill();
            }
            let log = log
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default();
            if std::thread::panicking() {
                eprintln!("---- rotord on host {}:\n{log}", i + 1);
            }
        }
    }
}

fn rotor(bed: &Testbed, bins: &Bins, i: usize, args: &[&str]) -> Output {
    bed.command(i, bins.rotor())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rotor")
}

/// `rotor quorum -s` on host `i` until it exits `code` (0 quorate, 2 not).
fn wait_quorate(bed: &Testbed, bins: &Bins, i: usize, code: i32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = rotor(bed, bins, i, &["quorum", "-s"]);
        if out.status.code() == Some(code) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "host {i}: rotor quorum -s still exits {:?}:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Cuts host `a` off from hosts `b` (both ways) on the switch.
fn partition(bed: &Testbed, a: &[usize], b: &[usize]) {
    let ports = |hosts: &[usize]| {
        hosts
            .iter()
            .map(|i| format!("h{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (pa, pb) = (ports(a), ports(b));
    for rule in [
        "add table bridge rotor_part".to_owned(),
        "add chain bridge rotor_part cut { type filter hook forward priority 0 ; }".to_owned(),
        format!("add rule bridge rotor_part cut iifname {{ {pa} }} oifname {{ {pb} }} drop"),
        format!("add rule bridge rotor_part cut iifname {{ {pb} }} oifname {{ {pa} }} drop"),
    ] {
        let out = bed.exec_switch(&["nft", &rule]).unwrap();
        assert!(
            out.status.success(),
            "nft {rule}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn heal(bed: &Testbed) {
    let out = bed
        .exec_switch(&["nft", "delete", "table", "bridge", "rotor_part"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A demo on a host: its lines (stdout and stderr as they come), its supervisor's pid.
struct Demo {
    proc: Proc,
    lines: Receiver<(usize, String)>,
    seen: Vec<String>,
}

const OUT: usize = 1;
const ERR: usize = 2;

impl Demo {
    fn start(bed: &Testbed, bins: &Bins, args: &[&str]) -> Demo {
        let mut cmd = Command::new(bins.rotor());
        cmd.args(["sam", "demo"]).args(args);
        let mut proc = bed.spawn(1, cmd).expect("start rotor sam demo");
        let (tx, lines) = mpsc::channel();
        proc.forward_stdout(OUT, tx.clone());
        forward_lines(proc.take_stderr().unwrap(), ERR, tx);
        Demo {
            proc,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that `want` accepts; returns it.
    fn expect_with(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.seen.iter().find(|l| want(l)) {
            return l.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((_, line)) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line {what}; so far:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for a line ending with `suffix`.
    fn expect(&mut self, suffix: &str) -> String {
        self.expect_with(&format!("ending {suffix:?}"), |l| l.ends_with(suffix))
    }

    /// Everything printed so far (without waiting).
    fn drain(&mut self) -> &[String] {
        while let Ok((_, l)) = self.lines.try_recv() {
            self.seen.push(l);
        }
        &self.seen
    }

    /// The supervisor's pid, from its `sam[PID]` tag.
    fn supervisor(&mut self) -> u32 {
        let line = self.expect("once started)");
        let at = line.find("sam[").unwrap() + 4;
        line[at..].split(']').next().unwrap().parse().unwrap()
    }

    /// The pid of instance `id`, from its `registered` line.
    fn instance(&mut self, id: u32) -> u32 {
        let head = format!("instance {id} (pid ");
        let line = self.expect_with(&format!("of instance {id} registering"), |l| {
            l.starts_with(&head) && l.contains("): registered (policy ")
        });
        line[head.len()..]
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Stops the supervisor and its running instance: the supervisor is frozen first, so it
    /// neither restarts the instance nor reaps it (its pid stays ours to kill), then both
    /// are killed.
    fn stop(mut self, instance: Option<u32>) {
        if let Some(pid) = instance {
            let _ = self.proc.signal(libc::SIGSTOP);
            // SAFETY: kill(2) on the frozen supervisor's child, unreaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = self.proc.kill();
        if let Some(pid) = instance {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Path::new(&format!("/proc/{pid}")).exists() {
                assert!(Instant::now() < deadline, "instance pid {pid} still there");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn cmap_state(bed: &Testbed, bins: &Bins, supervisor: u32) -> String {
    let key = format!("resources.process.{supervisor}.state");
    let out = rotor(bed, bins, 1, &["cmap", "get", &key]);
    String::from_utf8_lossy(&out.stdout)
        .trim_end()
        .strip_prefix(&format!("{key} (str) = "))
        .unwrap_or_else(|| panic!("rotor cmap get {key}: {out:?}"))
        .to_owned()
}

fn wait_cmap_state(bed: &Testbed, bins: &Bins, supervisor: u32, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = cmap_state(bed, bins, supervisor);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "state {got:?}, wanted {want:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn quorum_policies_stop_the_instance_without_quorum_and_start_it_with_quorum() {
    if !root_or_skip("network namespaces and nft for rotord with votequorum") {
        return;
    }
    let bins = Bins {
        dir: common::bin_dir(),
    };
    let dir = TempDir::new(&format!("rotor-e2e-sam-{}", std::process::id())).unwrap();
    let key = dir.path().join("authkey");
    write_authkey(&key).unwrap();
    let mut spec = Spec::new("es");
    spec.totem.push(("token".into(), "500".into()));
    spec.extra = format!(
        "quorum {{\n  provider: corosync_votequorum\n}}\nsystem {{\n  state_dir: {}\n}}\n",
        dir.path().join("state").display()
    );
    let conf = dir.path().join("es.conf");
    std::fs::write(&conf, spec.corosync_conf(3, &key)).unwrap();
    let bed = Testbed::up("es", 3).expect("testbed");
    let mut daemons = Daemons(Vec::new());
    for i in 1..=3 {
        let mut p = bed.spawn(i, rotord_command(&bins, &conf)).unwrap();
        let log = p.collect_stderr();
        daemons.0.push((p, log));
    }
    bed.wait_rotor_ring(&[1, 2, 3], &[1, 2, 3], &bins, WAIT)
        .unwrap();
    wait_quorate(&bed, &bins, 1, 0);

    // quorum-restart: runs while quorate.
    let mut demo = Demo::start(
        &bed,
        &bins,
        &[
            "--interval",
            "500",
            "--policy",
            "quorum-restart",
            "--cmap",
            "--fail",
            "none",
            "--instances",
            "0",
        ],
    );
    let supervisor = demo.supervisor();
    assert_eq!(
        supervisor,
        demo.proc.pid(),
        "ip netns exec runs the demo itself"
    );
    let first = demo.instance(1);
    demo.expect(&format!(
        "instance 1 (pid {first}): started health checking"
    ));
    wait_cmap_state(&bed, &bins, supervisor, "running");

    // Host 1 alone: not quorate. The instance is warned (SIGTERM ends it) and the next
    // one waits in start.
    partition(&bed, &[1], &[2, 3]);
    wait_quorate(&bed, &bins, 1, 2);
    demo.expect(&format!(
        "instance 1 (pid {first}): the node lost quorum: sending SIGTERM"
    ));
    demo.expect(&format!(
        "instance 1 (pid {first}): was killed by SIGTERM (quorum lost): restarting it as \
         instance 2 (policy quorum-restart+cmap)"
    ));
    let second = demo.instance(2);
    demo.expect(&format!(
        "instance 2 (pid {second}): waiting for quorum before health checking starts"
    ));
    wait_cmap_state(&bed, &bins, supervisor, "waiting for quorum");
    assert!(
        !demo
            .drain()
            .iter()
            .any(|l| l.starts_with(&format!("instance 2 (pid {second}): started"))),
        "{:?}",
        demo.seen
    );

    // Healed: quorate again, instance 2 starts.
    heal(&bed);
    wait_quorate(&bed, &bins, 1, 0);
    demo.expect(&format!(
        "instance 2 (pid {second}): the node is quorate: health checking starts"
    ));
    demo.expect(&format!(
        "instance 2 (pid {second}): started health checking"
    ));
    wait_cmap_state(&bed, &bins, supervisor, "running");
    demo.stop(Some(second));

    // quorum-quit, started without quorum: start waits; with quorum it runs; losing it
    // ends the supervisor with the instance's status.
    partition(&bed, &[1], &[2, 3]);
    wait_quorate(&bed, &bins, 1, 2);
    let mut demo = Demo::start(
        &bed,
        &bins,
        &[
            "--interval",
            "500",
            "--policy",
            "quorum-quit",
            "--cmap",
            "--fail",
            "none",
            "--instances",
            "0",
        ],
    );
    let supervisor = demo.supervisor();
    let only = demo.instance(1);
    demo.expect(&format!(
        "instance 1 (pid {only}): waiting for quorum before health checking starts"
    ));
    wait_cmap_state(&bed, &bins, supervisor, "waiting for quorum");
    heal(&bed);
    wait_quorate(&bed, &bins, 1, 0);
    demo.expect(&format!("instance 1 (pid {only}): started health checking"));
    wait_cmap_state(&bed, &bins, supervisor, "running");
    partition(&bed, &[1], &[2, 3]);
    demo.expect(&format!(
        "instance 1 (pid {only}): was killed by SIGTERM (quorum lost): the supervisor exits \
         with status 143 (policy quorum-quit+cmap)"
    ));
    let status = demo
        .proc
        .wait_timeout(WAIT)
        .unwrap()
        .expect("the supervisor exits");
    assert_eq!(status.code(), Some(143));
    assert_eq!(cmap_state(&bed, &bins, supervisor), "failed");
    heal(&bed);
    // The supervisor reaped the instance and exited: nothing is left.
    demo.stop(None);
}
