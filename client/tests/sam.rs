//! SAM end to end with real processes: `rotor sam demo` (an application that fails on
//! purpose) under each policy — a hung instance warned, killed and restarted, a crash, an
//! exit, mark_failed, stop/start, the warn signal before SIGKILL, event-driven health checks,
//! the data store across three restarts, an instance with children of its own — and the bad
//! arguments. The cmap flag runs against a one-node rotord on 127.0.0.1 (no root): the
//! `resources.process.<pid>.*` keys as tools see them change, stay `failed` after a quit,
//! go after a clean end; a quorum policy's supervisor counts the node as not quorate while
//! rotord is gone and attaches again when it is back. A cluster that loses quorum is
//! `e2e_sam_netns.rs`.
//!
//! Every demo runs in its own process group, bounded in time; whatever of it is left at
//! the end (instances, their children) is killed by that group's id and reaped.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rotor_client::cmap::{Cmap, Value, TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX};

// Only `bin_dir` of the shared helpers is used here.
#[allow(dead_code)]
mod common;

/// How long one demo may run before the test fails.
const DEMO_LIMIT: Duration = Duration::from_secs(60);

/// What one demo printed and how it ended.
struct Run {
    code: Option<i32>,
    out: String,
    err: String,
}

impl Run {
    fn out_lines(&self) -> Vec<&str> {
        self.out.lines().collect()
    }

    /// The supervisor's lines, from the tag on (the level and pid vary).
    fn sam_lines(&self) -> Vec<String> {
        self.err
            .lines()
            .filter_map(|l| l.split_once("]: ").map(|(_, t)| t.to_owned()))
            .collect()
    }

    /// The pid an instance printed with its `registered` line.
    fn instance_pid(&self, id: u32) -> u32 {
        let head = format!("instance {id} (pid ");
        let line = self
            .out
            .lines()
            .find(|l| l.starts_with(&head) && l.contains("registered"))
            .unwrap_or_else(|| panic!("no instance {id} in\n{}", self.out));
        line[head.len()..]
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.out, self.err
        )
    }
}

/// One output of a demo, line by line as it comes.
struct Stream {
    rx: mpsc::Receiver<String>,
    seen: String,
    closed: bool,
}

impl Stream {
    fn new(r: impl Read + Send + 'static) -> Stream {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Stream {
            rx,
            seen: String::new(),
            closed: false,
        }
    }

    /// Takes the next line, waiting until `deadline`; `None` at the end or the deadline.
    fn next(&mut self, deadline: Instant) -> Option<String> {
        if self.closed {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(line) => {
                self.seen.push_str(&line);
                self.seen.push('\n');
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.closed = true;
                None
            }
            Err(mpsc::RecvTimeoutError::Timeout) => None,
        }
    }

    /// Reads to the end (every process holding the pipe gone) or the deadline.
    fn read_to_end(&mut self, deadline: Instant) {
        while self.next(deadline).is_some() {}
    }
}

/// A demo started in its own process group.
struct Demo {
    child: Child,
    out: Stream,
    err: Stream,
}

impl Demo {
    fn start(args: &[&str], socket: Option<&str>) -> Demo {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rotor"));
        cmd.args(["sam", "demo"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        match socket {
            Some(s) => cmd.env("ROTOR_IPC_SOCKET", s),
            // No rotord answers there: a demo that needs one fails clearly.
            None => cmd.env(
                "ROTOR_IPC_SOCKET",
                format!("rt-sam-none-{}", std::process::id()),
            ),
        };
        let mut child = cmd.spawn().expect("start rotor sam demo");
        let out = Stream::new(child.stdout.take().unwrap());
        let err = Stream::new(child.stderr.take().unwrap());
        Demo { child, out, err }
    }

    fn pgid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits (within `DEMO_LIMIT`) for a line of stdout (`err`: stderr) ending with
    /// `suffix`, and returns it.
    fn wait_for(&mut self, err: bool, suffix: &str) -> String {
        let deadline = Instant::now() + DEMO_LIMIT;
        let stream = if err { &mut self.err } else { &mut self.out };
        if let Some(l) = stream.seen.lines().find(|l| l.ends_with(suffix)) {
            return l.to_owned();
        }
        while let Some(line) = stream.next(deadline) {
            if line.ends_with(suffix) {
                return line;
            }
        }
        panic!(
            "no line ending {suffix:?}:\n--- stdout\n{}--- stderr\n{}",
            self.out.seen, self.err.seen
        );
    }

    /// Waits for the supervisor's exit and for every process holding its output (instances
    /// and their children) to end, within `DEMO_LIMIT`; then nothing of the group is left.
    fn finish(self) -> Run {
        self.finish_then(false)
    }

    /// Waits for the supervisor's exit, then kills what is left of its group (children an
    /// instance forked that would live on) before reading the output.
    fn finish_killing_the_rest(self) -> Run {
        self.finish_then(true)
    }

    fn finish_then(mut self, kill_the_rest: bool) -> Run {
        let deadline = Instant::now() + DEMO_LIMIT;
        let mut code = None;
        let mut timed_out = false;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                code = s.code().or_else(|| {
                    use std::os::unix::process::ExitStatusExt;
                    s.signal().map(|sig| -sig)
                });
                break;
            }
            if Instant::now() > deadline {
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if kill_the_rest {
            self.kill_group();
        }
        self.out.read_to_end(deadline);
        self.err.read_to_end(deadline);
        let leftovers = !self.out.closed || !self.err.closed;
        self.kill_group();
        let run = Run {
            code,
            out: std::mem::take(&mut self.out.seen),
            err: std::mem::take(&mut self.err.seen),
        };
        assert!(
            !timed_out && !leftovers,
            "the demo (or a process of its group) still ran after {DEMO_LIMIT:?}:\n{run}"
        );
        run
    }

    fn kill_group(&mut self) {
        // SAFETY: kill(2) on the process group this test created (its id is our child's pid).
        unsafe { libc::kill(-self.pgid(), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.kill_group();
    }
}

fn demo(args: &[&str]) -> Run {
    Demo::start(args, None).finish()
}

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

#[test]
fn a_hung_instance_is_warned_killed_and_restarted_and_its_data_survives_three_restarts() {
    let run = demo(&["--interval", "200", "--instances", "4"]);
    assert_eq!(run.code, Some(0), "{run}");
    let pids: Vec<u32> = (1..=4).map(|i| run.instance_pid(i)).collect();
    let out = run.out_lines();
    // Each instance finds what the ones before it stored.
    for (id, data) in [(2, "1"), (3, "1 2"), (4, "1 2 3")] {
        let want = format!(
            "instance {id} (pid {}): restored data: {data}",
            pids[id - 1]
        );
        assert!(out.contains(&want.as_str()), "{want:?} in\n{run}");
    }
    let sam = run.sam_lines();
    for id in 1..=3u32 {
        let pid = pids[id as usize - 1];
        for want in [
            format!("instance {id} (pid {pid}): no health check for 200 ms: sending SIGTERM"),
            format!(
                "instance {id} (pid {pid}): was killed by SIGTERM (missed health check): \
                 restarting it as instance {} (policy restart)",
                id + 1
            ),
        ] {
            assert!(has(&sam, &want), "{want:?} in\n{run}");
        }
    }
    assert_eq!(
        sam.last().unwrap(),
        &format!(
            "instance 4 (pid {}): exited with status 0 while not health checking: the \
             supervisor exits with status 0",
            pids[3]
        ),
        "{run}"
    );
    // Instance 4, the last, was never warned.
    let last = format!("instance 4 (pid {}): no health check", pids[3]);
    assert!(!sam.iter().any(|l| l.starts_with(&last)), "{run}");
}

#[test]
fn a_crash_restarts_under_restart_and_ends_the_supervisor_under_quit() {
    let run = demo(&["--interval", "200", "--fail", "crash", "--instances", "2"]);
    assert_eq!(run.code, Some(0), "{run}");
    let pid = run.instance_pid(1);
    assert!(
        has(
            &run.sam_lines(),
            &format!(
                "instance 1 (pid {pid}): was killed by SIGABRT: restarting it as instance 2 \
                 (policy restart)"
            )
        ),
        "{run}"
    );
    // An application that ignores SIGCHLD keeps ignoring it in every instance, and the
    // supervisor still learns how each ended (SIG_IGN would have the kernel discard it).
    let run = demo(&[
        "--interval",
        "200",
        "--fail",
        "crash",
        "--ignore-sigchld",
        "--instances",
        "2",
    ]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(
        run.out
            .matches("SIGCHLD is ignored, as the application set it")
            .count(),
        2,
        "{run}"
    );
    assert!(
        run.err
            .contains("was killed by SIGABRT: restarting it as instance 2"),
        "{run}"
    );
    // No interval: a crash is still noticed.
    let run = demo(&["--interval", "0", "--fail", "crash", "--instances", "2"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.err
            .contains("was killed by SIGABRT: restarting it as instance 2"),
        "{run}"
    );

    // Quit: the supervisor ends with the instance's status, 128 + the signal for a signal.
    let run = demo(&["--interval", "200", "--policy", "quit", "--fail", "crash"]);
    assert_eq!(run.code, Some(134), "{run}");
    let pid = run.instance_pid(1);
    assert_eq!(
        run.sam_lines().last().unwrap(),
        &format!(
            "instance 1 (pid {pid}): was killed by SIGABRT: the supervisor exits with status 134 \
             (policy quit)"
        ),
        "{run}"
    );
    assert!(run.err.contains("error   [SAM   ] sam["), "{run}");
    let run = demo(&["--interval", "200", "--policy", "quit", "--fail", "exit:7"]);
    assert_eq!(run.code, Some(7), "{run}");
    assert!(
        run.err
            .contains("exited with status 7: the supervisor exits with status 7 (policy quit)"),
        "{run}"
    );
}

#[test]
fn quit_ends_the_supervisor_when_an_instance_misses_its_health_check() {
    let run = demo(&["--interval", "200", "--policy", "quit"]);
    assert_eq!(run.code, Some(128 + libc::SIGTERM), "{run}");
    let pid = run.instance_pid(1);
    assert_eq!(
        run.sam_lines()[1..],
        [
            format!("instance 1 (pid {pid}): no health check for 200 ms: sending SIGTERM"),
            format!(
                "instance 1 (pid {pid}): was killed by SIGTERM (missed health check): the \
                 supervisor exits with status 143 (policy quit)"
            ),
        ],
        "{run}"
    );
    assert!(!run.out.contains("instance 2"), "{run}");
}

#[test]
fn the_warn_signal_comes_first_then_sigkill_one_interval_later() {
    // An instance that reports the warn signal (SIGUSR1 here) and carries on.
    let run = demo(&[
        "--interval",
        "200",
        "--warn-signal",
        "10",
        "--on-warn",
        "report",
        "--instances",
        "2",
    ]);
    assert_eq!(run.code, Some(0), "{run}");
    let pid = run.instance_pid(1);
    assert!(
        run.out.contains(&format!(
            "instance 1 (pid {pid}): got the warn signal 10, carrying on"
        )),
        "{run}"
    );
    let sam = run.sam_lines();
    let at = |want: String| {
        sam.iter()
            .position(|l| *l == want)
            .unwrap_or_else(|| panic!("{want:?} in\n{run}"))
    };
    let warned = at(format!(
        "instance 1 (pid {pid}): no health check for 200 ms: sending SIGUSR1"
    ));
    let killed = at(format!(
        "instance 1 (pid {pid}): still running 200 ms after SIGUSR1 (missed health check): \
         sending SIGKILL"
    ));
    let restarted = at(format!(
        "instance 1 (pid {pid}): was killed by SIGKILL (missed health check): restarting it as \
         instance 2 (policy restart)"
    ));
    assert!(warned < killed && killed < restarted, "{run}");

    // An instance that ignores SIGTERM is killed the same way.
    let run = demo(&[
        "--interval",
        "200",
        "--on-warn",
        "ignore",
        "--instances",
        "2",
    ]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(
        run.err
            .contains("after SIGTERM (missed health check): sending SIGKILL"),
        "{run}"
    );
    assert!(run.err.contains("was killed by SIGKILL"), "{run}");

    // SIGKILL as the warn signal: no warning at all.
    let run = demo(&[
        "--interval",
        "200",
        "--warn-signal",
        "9",
        "--instances",
        "2",
    ]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.err.contains("sending SIGKILL"), "{run}");
    assert!(!run.err.contains("still running"), "{run}");
}

#[test]
fn stop_and_start_pause_health_checking() {
    // Stopped for two intervals: no warning; started again, it is checked again.
    let run = demo(&["--interval", "200", "--stop-start", "--instances", "1"]);
    assert_eq!(run.code, Some(0), "{run}");
    let out = run.out_lines();
    let pos = |suffix: &str| {
        out.iter()
            .position(|l| l.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix:?} in\n{run}"))
    };
    assert!(pos("stopped health checking") < pos("started health checking again"));
    assert!(!run.err.contains("no health check"), "{run}");
    assert!(!run.out.contains("instance 2"), "{run}");
    // Stopped, then failing: the next instance comes after a warning as usual.
    let run = demo(&["--interval", "200", "--stop-start", "--instances", "2"]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.err.contains("restarting it as instance 2"), "{run}");
}

#[test]
fn event_driven_health_checks_come_from_sams_thread() {
    let run = demo(&["--interval", "200", "--callback", "--instances", "2"]);
    assert_eq!(run.code, Some(0), "{run}");
    let pid = run.instance_pid(1);
    for want in [
        format!("instance 1 (pid {pid}): callback 3: healthy"),
        format!("instance 1 (pid {pid}): callback 4: failure"),
    ] {
        assert!(run.out.contains(&want), "{want:?} in\n{run}");
    }
    let sam = run.sam_lines();
    for want in [
        format!(
            "instance 1 (pid {pid}): the health-check callback reported a failure: health \
             checks stop"
        ),
        format!("instance 1 (pid {pid}): no health check for 200 ms: sending SIGTERM"),
        format!(
            "instance 1 (pid {pid}): was killed by SIGTERM (missed health check): restarting it \
             as instance 2 (policy restart)"
        ),
    ] {
        assert!(has(&sam, &want), "{want:?} in\n{run}");
    }
    // While the callback is healthy, SAM's thread alone keeps the instance supervised: the
    // last instance leaves the health checks to it for five intervals, then ends cleanly.
    let run = demo(&[
        "--interval",
        "200",
        "--callback",
        "--checks",
        "10",
        "--instances",
        "1",
    ]);
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.out.contains("callback 2: healthy"), "{run}");
    assert!(!run.out.contains("failure"), "{run}");
    assert!(!run.err.contains("no health check"), "{run}");
}

#[test]
fn an_instance_with_children_of_its_own() {
    // Children that outlive the instance's crash (they would live ten minutes) hold copies
    // of its socket to the supervisor: the crash is noticed all the same (the supervisor
    // watches the process, not the socket) and instance 2 runs to its clean end, while the
    // children are still there; their SAM calls are refused.
    let run = Demo::start(
        &[
            "--interval",
            "200",
            "--fail",
            "crash",
            "--children",
            "2",
            "--child-ms",
            "600000",
            "--instances",
            "2",
        ],
        None,
    )
    .finish_killing_the_rest();
    assert_eq!(run.code, Some(0), "{run}");
    let pid = run.instance_pid(1);
    assert!(
        has(
            &run.sam_lines(),
            &format!(
                "instance 1 (pid {pid}): was killed by SIGABRT: restarting it as instance 2 \
                 (policy restart)"
            )
        ),
        "{run}"
    );
    assert!(
        run.out
            .contains("): done: stopped health checking, exiting with status 0"),
        "{run}"
    );
    let refused: Vec<&str> = run
        .out
        .lines()
        .filter(|l| {
            l.contains("of instance 1: sam hc_send: called in pid")
                && l.ends_with(&format!(
                    "a process the instance forked; only the instance (pid {pid}) talks to its \
                     supervisor"
                ))
        })
        .collect();
    assert_eq!(refused.len(), 2, "{run}");
    assert!(!run.out.contains("of instance 1: exiting"), "{run}");
    // Children that end while the instance health checks change nothing.
    let run = demo(&[
        "--interval",
        "200",
        "--children",
        "2",
        "--child-ms",
        "50",
        "--checks",
        "6",
        "--instances",
        "1",
    ]);
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(
        run.out.matches("of instance 1: exiting").count(),
        2,
        "{run}"
    );
    assert!(!run.err.contains("warning"), "{run}");
}

#[test]
fn bad_arguments_give_clear_errors() {
    // The callback mode needs an interval.
    let run = demo(&["--interval", "0", "--callback"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.err.contains(
            "rotor sam demo: sam hc_callback_register: a health-check callback needs a time \
             interval; initialize SAM with an interval above 0 ms, or send health checks with \
             hc_send\n"
        ),
        "{run}"
    );
    // Data beyond the limit.
    let size = (rotor_client::sam::DATA_SIZE_MAX + 1).to_string();
    let run = demo(&["--data-bytes", &size]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.err.contains(&format!(
            "rotor sam demo: sam data_store: {size} bytes is more than SAM keeps (at most {} \
             bytes)\n",
            rotor_client::sam::DATA_SIZE_MAX
        )),
        "{run}"
    );
    // Exactly the limit is kept, and the next instance gets all of it.
    let max = rotor_client::sam::DATA_SIZE_MAX.to_string();
    let ok = demo(&[
        "--interval",
        "300",
        "--data-bytes",
        &max,
        "--instances",
        "2",
    ]);
    assert_eq!(ok.code, Some(0), "{ok}");
    assert!(
        ok.out.contains(&format!("restored {max} bytes of data")),
        "{ok}"
    );
    // The instance exited 1 before starting: the supervisor ends with its status.
    assert!(
        run.err.contains(
            "exited with status 1 while not health checking: the supervisor exits with status 1"
        ),
        "{run}"
    );
    // Not a signal.
    let run = demo(&["--warn-signal", "0"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.err
            .starts_with("rotor sam demo: sam warn_signal_set: 0 is not a signal number (1 to "),
        "{run}"
    );
    // mark_failed is for policies with the cmap flag.
    let run = demo(&[
        "--interval",
        "200",
        "--fail",
        "mark-failed",
        "--policy",
        "quit",
    ]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.err.contains(
            "rotor sam demo: sam mark_failed: needs a recovery policy with the cmap flag"
        ),
        "{run}"
    );
    // The cmap flag and the quorum policies need rotord: said at register and initialize.
    let run = demo(&["--cmap"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.err.starts_with(
            "rotor sam demo: sam: cannot publish the process in cmap (the policy's cmap flag): \
             cannot connect to the rotor IPC socket @rt-sam-none-"
        ) && run
            .err
            .contains("(is rotord running in this network namespace?)"),
        "{run}"
    );
    let run = demo(&["--policy", "quorum-restart"]);
    assert_eq!(run.code, Some(1), "{run}");
    assert!(
        run.err.starts_with(
            "rotor sam demo: sam: cannot attach to the quorum service for a quorum policy: \
             cannot connect to the rotor IPC socket @rt-sam-none-"
        ) && run
            .err
            .contains("(is rotord running in this network namespace?)"),
        "{run}"
    );
    assert!(run.out.is_empty(), "no instance: {run}");
}

/// A UDP port on 127.0.0.1 that is free, with the one below it (totem's pair), so this
/// rotord meets no other test's.
fn free_port() -> u16 {
    loop {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port > 1024 && std::net::UdpSocket::bind(("127.0.0.1", port - 1)).is_ok() {
            return port;
        }
    }
}

/// A one-node rotord on 127.0.0.1 with its own port and socket, stopped when dropped.
struct Rotord {
    child: Option<Child>,
    socket: String,
    dir: PathBuf,
    conf: PathBuf,
}

impl Rotord {
    fn start(index: u16) -> Rotord {
        let tag = format!("{}-{index}", std::process::id());
        let dir = std::env::temp_dir().join(format!("rotor-sam-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("authkey");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&key)
            .unwrap()
            .write_all(&[0x5a; 256])
            .unwrap();
        let port = free_port();
        let conf = dir.join("corosync.conf");
        std::fs::write(
            &conf,
            format!(
                "totem {{\n  version: 2\n  cluster_name: sam{index}\n  keyfile: {}\n  interface \
                 {{\n    mcastport: {port}\n  }}\n}}\nlogging {{\n  to_syslog: no\n}}\nsystem \
                 {{\n  state_dir: {}\n}}\n",
                key.display(),
                dir.join("state").display()
            ),
        )
        .unwrap();
        let socket = format!("rt-sam-{tag}");
        let mut r = Rotord {
            child: None,
            socket,
            dir,
            conf,
        };
        r.spawn();
        r
    }

    /// Starts rotord (again) and waits until it answers.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rotord.log"))
            .unwrap();
        let child = Command::new(common::bin_dir().join("rotord"))
            .args(["-f", "-c"])
            .arg(&self.conf)
            .env("ROTOR_IPC_SOCKET", &self.socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rotord");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Cmap::initialize_at(&self.socket)
            .and_then(|mut c| c.status())
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "rotord did not answer:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (rotord leaves cleanly) and a bounded wait, then SIGKILL.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rotord.log")).unwrap_or_default()
    }

    fn cmap(&self) -> Cmap {
        Cmap::initialize_at(&self.socket).expect("cmap attach")
    }
}

impl Drop for Rotord {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- rotord:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::U64(n) => n.to_string(),
        other => rotor_proto::cmap::format_cmapctl_line("", other, false),
    }
}

#[test]
fn cmap_shows_each_state_and_a_clean_end_removes_the_keys() {
    let rotord = Rotord::start(1);
    let mut watch = rotord.cmap();
    watch
        .track_add(
            "resources.process.",
            TRACK_ADD | TRACK_DELETE | TRACK_MODIFY | TRACK_PREFIX,
        )
        .unwrap();
    let run = Demo::start(
        &["--interval", "300", "--cmap", "--instances", "2"],
        Some(&rotord.socket),
    )
    .finish();
    assert_eq!(run.code, Some(0), "{run}");
    let prefix = format!("resources.process.{}.", run.supervisor_pid());
    // Every change as a tool tracking the prefix saw it.
    let mut states = Vec::new();
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    let mut last_updated = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while deleted.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "states {states:?} created {created:?} deleted {deleted:?}\n{run}"
        );
        let Some(n) = watch.next_notification(Duration::from_millis(200)).unwrap() else {
            continue;
        };
        let name = n.key.strip_prefix(&prefix).unwrap_or_else(|| {
            panic!("{} is not under {prefix}", n.key);
        });
        match n.kind {
            TRACK_DELETE => deleted.push(name.to_owned()),
            kind => {
                let v = n.new.unwrap();
                if kind == TRACK_ADD {
                    created.push(format!("{name}={}", text(&v)));
                }
                match name {
                    "state" => states.push(text(&v)),
                    "last_updated" => {
                        let Value::U64(t) = v else {
                            panic!("last_updated is {v:?}")
                        };
                        assert!(t > last_updated, "last_updated goes forward");
                        last_updated = t;
                    }
                    _ => {}
                }
            }
        }
    }
    assert_eq!(
        created[..3],
        ["recovery=restart", "poll_period=300", "state=stopped"],
        "{run}"
    );
    assert_eq!(
        states,
        ["stopped", "running", "stopped", "running", "stopped"],
        "register, start, the restart, start, the clean stop; {run}"
    );
    deleted.sort();
    assert_eq!(
        deleted,
        ["last_updated", "poll_period", "recovery", "state"]
    );
    assert!(watch.iter(&prefix).unwrap().is_empty());
}

impl Run {
    /// The supervisor's pid, from its `sam[PID]` tag.
    fn supervisor_pid(&self) -> u32 {
        let at = self.err.find("sam[").expect("a supervisor line") + 4;
        self.err[at..].split(']').next().unwrap().parse().unwrap()
    }
}

#[test]
fn quit_and_mark_failed_leave_the_state_failed_in_cmap() {
    let rotord = Rotord::start(2);
    let mut cmap = rotord.cmap();
    let run = Demo::start(
        &[
            "--interval",
            "200",
            "--cmap",
            "--policy",
            "quit",
            "--fail",
            "crash",
        ],
        Some(&rotord.socket),
    )
    .finish();
    assert_eq!(run.code, Some(134), "{run}");
    let prefix = format!("resources.process.{}.", run.supervisor_pid());
    let get = |c: &mut Cmap, name: &str| text(&c.get(&format!("{prefix}{name}")).unwrap());
    assert_eq!(get(&mut cmap, "state"), "failed");
    assert_eq!(get(&mut cmap, "recovery"), "quit");
    // The keys are the client's: a tool may clear them.
    for (key, _) in cmap.iter(&prefix).unwrap() {
        cmap.delete(&key).unwrap();
    }

    // mark_failed: SIGKILL at once (no warn signal), then quit whatever the policy.
    let run = Demo::start(
        &["--interval", "200", "--cmap", "--fail", "mark-failed"],
        Some(&rotord.socket),
    )
    .finish();
    assert_eq!(run.code, Some(128 + libc::SIGKILL), "{run}");
    let pid = run.instance_pid(1);
    let prefix = format!("resources.process.{}.", run.supervisor_pid());
    assert_eq!(
        run.sam_lines()[1..],
        [
            format!(
                "instance 1 (pid {pid}): marked itself failed: sending SIGKILL; the supervisor \
                 quits after it"
            ),
            format!(
                "instance 1 (pid {pid}): was killed by SIGKILL (marked failed): the supervisor \
                 exits with status 137 (marked failed)"
            ),
        ],
        "{run}"
    );
    assert_eq!(
        text(&cmap.get(&format!("{prefix}state")).unwrap()),
        "failed"
    );
    assert_eq!(
        text(&cmap.get(&format!("{prefix}recovery")).unwrap()),
        "restart"
    );
    for (key, _) in cmap.iter(&prefix).unwrap() {
        cmap.delete(&key).unwrap();
    }
}

/// The pid in `… instance N (pid P): …`.
fn pid_in(line: &str) -> u32 {
    let at = line.find("(pid ").expect("a pid") + 5;
    line[at..].split(')').next().unwrap().parse().unwrap()
}

#[test]
fn a_quorum_policy_counts_the_node_as_not_quorate_while_rotord_is_gone() {
    // A node without a quorum provider is always quorate; without rotord nobody says so. The
    // instances are healthy: a generous interval keeps a loaded machine from making them miss.
    let mut rotord = Rotord::start(3);
    let mut d = Demo::start(
        &[
            "--interval",
            "1000",
            "--policy",
            "quorum-restart",
            "--fail",
            "none",
            "--instances",
            "0",
        ],
        Some(&rotord.socket),
    );
    let first = pid_in(&d.wait_for(false, "): started health checking"));
    rotord.stop();
    d.wait_for(
        true,
        "the node counts as not quorate until it is back; attaching again every 1 s",
    );
    d.wait_for(
        true,
        &format!("instance 1 (pid {first}): the node lost quorum: sending SIGTERM"),
    );
    let waiting = d.wait_for(true, "waiting for quorum before health checking starts");
    assert!(waiting.contains("instance 2 (pid "), "{waiting}");
    let second = pid_in(&waiting);
    // rotord is back: the supervisor attaches again and instance 2 starts.
    rotord.spawn();
    d.wait_for(
        true,
        "attached to rotord's quorum service again: the node is quorate",
    );
    d.wait_for(
        true,
        &format!("instance 2 (pid {second}): the node is quorate: health checking starts"),
    );
    d.wait_for(
        false,
        &format!("instance 2 (pid {second}): started health checking"),
    );
    d.kill_group();
}
