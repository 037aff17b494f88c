//! rotord's log end to end, on one node over 127.0.0.1 (no namespaces): a `tracing` event of a
//! library (ipc-shm refusing an attach) and the dataplane's lines (sent up its control socket)
//! land in rotord's log file with their tag, level, file:line and, for the dataplane's, its pid
//! and name; `timestamp: on` writes a human local time; debug lines follow `logger_subsys`;
//! SIGHUP reopens the file, so a renamed log (logrotate) is followed by a new one; a
//! dataplane's last lines before it exits are kept.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code)] // the helpers of the other end-to-end tests
mod common;

struct Rotord {
    child: Child,
    dir: PathBuf,
    socket: String,
}

impl Drop for Rotord {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; SIGTERM lets rotord stop its dataplane.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Rotord {
    fn log(&self) -> PathBuf {
        self.dir.join("rotord.log")
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A one-node rotord (no nodelist: 127.0.0.1) with `logging` as the body of logging{} (the
/// log file `DIR/rotord.log` is appended); `index` keeps the tests of this binary apart.
fn start(index: u16, logging: &str) -> Rotord {
    let tag = format!("{}-log{index}", std::process::id());
    let dir = std::env::temp_dir().join(format!("rotor-e2e-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("authkey");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&key)
        .unwrap()
        .write_all(&[0x44; 256])
        .unwrap();
    // A port nothing on 127.0.0.1 uses right now (a port made from the pid can still be held
    // by another test's dataplane that is leaving its ring).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let conf = dir.join("corosync.conf");
    std::fs::write(
        &conf,
        format!(
            "totem {{\n  version: 2\n  cluster_name: logs{index}\n  keyfile: {key}\n  \
             interface {{\n    mcastport: {port}\n  }}\n}}\n\
             logging {{\n  to_syslog: no\n  to_logfile: yes\n  logfile: {log}\n{logging}\n}}\n\
             system {{\n  state_dir: {state}\n}}\n",
            key = key.display(),
            log = dir.join("rotord.log").display(),
            state = dir.join("state").display(),
        ),
    )
    .unwrap();
    let stderr = std::fs::File::create(dir.join("stderr")).unwrap();
    let socket = format!("rt-e2e-{tag}");
    let child = Command::new(common::bin_dir().join("rotord"))
        .args(["-f", "-c"])
        .arg(&conf)
        .env("ROTOR_IPC_SOCKET", &socket)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start rotord");
    Rotord { child, dir, socket }
}

/// The text of `path` once a line of it contains every one of `needles` (30 s at most).
fn wait_for(path: &Path, needles: &[&str], what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| needles.iter().all(|n| l.contains(n))) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no line with {needles:?} in {} within 30 s:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The uid an attach is refused for: nobody when we are root (root is always allowed),
/// ourselves otherwise (no uidgid{} allows anyone else).
fn refused_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    match unsafe { libc::geteuid() } {
        0 => 65534,
        uid => uid,
    }
}

/// Runs `rotor status` against `r` as `refused_uid()`: rotord refuses the attach.
fn refused_status(r: &Rotord) {
    let rotor = env!("CARGO_BIN_EXE_rotor");
    let mut cmd = if refused_uid() == 65534 {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", rotor]);
        c
    } else {
        Command::new(rotor)
    };
    let out = cmd
        .arg("status")
        .env("ROTOR_IPC_SOCKET", &r.socket)
        .output()
        .expect("run rotor status");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("permission denied"),
        "rotor status as uid {} was not refused: {err}",
        refused_uid()
    );
}

/// `Mar 07 09:05:42 ` at the start of `line`.
fn starts_with_local_time(line: &str) -> bool {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = line.as_bytes();
    line.len() > 16
        && MONTHS.contains(&&line[..3])
        && b[3] == b' '
        && b[6] == b' '
        && b[9] == b':'
        && b[12] == b':'
        && b[15] == b' '
        && [4, 5, 7, 8, 10, 11, 13, 14]
            .iter()
            .all(|&i| b[i].is_ascii_digit())
}

#[test]
fn library_and_dataplane_lines_reach_rotords_log_file() {
    let r = start(0, "  timestamp: on\n  fileline: on");
    wait_for(&r.log(), &["[TOTEM ]", "A new membership"], "the ring");
    refused_status(&r);
    let uid = refused_uid();
    // ipc-shm's own tracing event, tagged IPC by the module table, written by rotord.
    let text = wait_for(
        &r.log(),
        &[
            "warning [IPC   ] server.rs:",
            &format!("refused: permission denied for uid {uid} "),
        ],
        "the refused attach",
    );
    let refused = text
        .lines()
        .find(|l| l.contains("[IPC   ]") && l.contains("refused"))
        .unwrap();
    assert!(
        refused.contains(&format!("[{}] ", r.pid())) && refused.contains(" rotord warning "),
        "{refused}"
    );
    // The dataplane's lines came up the control socket with its level, tag, file and line,
    // and are written with its pid and name.
    let served = text
        .lines()
        .find(|l| l.contains(" serving on 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no dataplane line in:\n{text}"));
    assert!(
        served.contains(" rotor-dataplane notice  [MAIN  ] main.rs:")
            && !served.contains(&format!("[{}] ", r.pid())),
        "{served}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains(" rotor-dataplane notice  [TOTEM ] ")
                && l.contains("transport udp: asked for")),
        "no transport line from the dataplane:\n{text}"
    );
    // A human local time, no epoch seconds, on every line of the file and of stderr.
    for line in text.lines() {
        assert!(starts_with_local_time(line), "{line}");
    }
    let stderr = std::fs::read_to_string(r.dir.join("stderr")).unwrap();
    assert!(stderr.contains("[IPC   ] server.rs:"), "{stderr}");
    for line in stderr.lines() {
        assert!(starts_with_local_time(line), "stderr: {line}");
    }
    // Debug is off: no debug line from anyone.
    assert!(!text.contains(" debug   ["), "{text}");
}

#[test]
fn debug_per_subsystem_shows_the_dataplanes_set_up_steps() {
    let r = start(
        1,
        "  timestamp: off\n  logger_subsys {\n    subsys: TOTEM\n    debug: on\n  }",
    );
    wait_for(
        &r.log(),
        &[" rotor-dataplane debug   [TOTEM ] "],
        "a TOTEM debug line from the dataplane",
    );
    wait_for(&r.log(), &["A new membership"], "the ring");
    refused_status(&r);
    let text = wait_for(&r.log(), &["[IPC   ]", "refused"], "the refused attach");
    for line in text.lines().filter(|l| l.contains(" debug   [")) {
        assert!(
            line.contains(" debug   [TOTEM ] "),
            "debug of another subsystem: {line}"
        );
    }
    assert!(
        text.lines().next().is_some_and(|l| l.starts_with('[')),
        "timestamp: off still wrote a time:\n{text}"
    );
}

#[test]
fn sighup_reopens_the_log_file() {
    let r = start(2, "  timestamp: hires");
    wait_for(&r.log(), &["A new membership"], "the ring");
    let rotated = r.dir.join("rotord.log.1");
    std::fs::rename(r.log(), &rotated).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(r.pid() as i32, libc::SIGHUP) };
    wait_for(
        &r.log(),
        &["[MAIN  ] log files reopened (SIGHUP)"],
        "the reopen",
    );
    refused_status(&r);
    wait_for(
        &r.log(),
        &["[IPC   ]", "refused"],
        "a line after the reopen",
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("A new membership"), "{old}");
    assert!(
        !old.contains("reopened") && !old.contains("refused"),
        "lines after the reopen went to the renamed file:\n{old}"
    );
    assert!(
        r.child_alive(),
        "rotord stopped on SIGHUP instead of reopening its log"
    );
}

#[test]
fn a_dataplanes_last_lines_are_kept() {
    let r = start(3, "  timestamp: on");
    let text = wait_for(&r.log(), &["A new membership"], "the ring");
    // The dataplane that serves: "… [PID] HOST rotor-dataplane notice  [MAIN  ] node 1 serving on".
    let pid: i32 = text
        .lines()
        .filter(|l| l.contains(" serving on "))
        .find_map(|l| {
            l.split(' ')
                .find_map(|w| w.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
        })
        .unwrap_or_else(|| panic!("no serving dataplane in:\n{text}"));
    // SIGTERM: the dataplane leaves the ring, says so and exits at once; rotord restarts it.
    // SAFETY: kill(2) on rotord's child, which it has not reaped (it restarts it after 1 s).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let text = wait_for(
        &r.log(),
        &[&format!("dataplane (pid {pid}) exited")],
        "the dataplane's exit",
    );
    let said = text
        .lines()
        .position(|l| {
            l.contains(&format!("[{pid}] "))
                && l.contains(" rotor-dataplane notice  [MAIN  ] node 1 left the ring on a signal")
        })
        .unwrap_or_else(|| panic!("the dataplane's last line is not in the log:\n{text}"));
    let exited = text
        .lines()
        .position(|l| l.contains(&format!("dataplane (pid {pid}) exited")))
        .unwrap();
    assert!(said < exited, "{text}");
}

impl Rotord {
    fn child_alive(&self) -> bool {
        // SAFETY: kill(2) with signal 0 only checks that our child exists.
        unsafe { libc::kill(self.child.id() as i32, 0) == 0 }
    }
}
