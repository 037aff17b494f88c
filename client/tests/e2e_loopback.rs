//! End to end on one host, no root needed: three `rotord` (each with its dataplane) on
//! 127.0.0.1-3 form a ring; CPG handles on every node join a group and multicast; every member
//! delivers the same sequence (messages larger than a frame included, checked to the byte); a
//! SIGKILLed client shows as "process down"; `rotor status`, `rotor cmap` and `rotor cpg` print
//! what they should; a bad config names file and line. The client API end to end: 1 MiB
//! messages, membership and group iteration, a pollable fd with one-at-a-time dispatch, leave,
//! cmap tracking, and a cfg shutdown seen as a totem change. Start-up: six processes (this test
//! binary run again as children) join one group on three nodes at once and multicast; none sees
//! anything of the group before the change that adds it. What rotord answers at start: a
//! cluster without crypto runs with no key file; an unusable key stops rotord at once with exit
//! status 8 and one message (no dataplane, no restart loop); a netmtu no IP packet can have
//! exits 8 before any dataplane starts; `-t` exits 0 or 8; a second rotord on the same
//! sockets exits 18; a CPG attach while the dataplane restarts is told to try again. A node stopped and started again at once finds its port free and rejoins
//! without its frames being taken for replays.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{delivery_line, pump, send, send_bytes, Seen};
use rotor_client::cmap::Cmap;
use rotor_client::cpg::{Cpg, Guarantee, Member, Reason};

mod common;

fn bin(name: &str) -> PathBuf {
    common::bin_dir().join(name)
}

struct Nodes {
    dir: PathBuf,
    children: Vec<Option<Child>>,
    tag: String,
    conf: PathBuf,
    port: u16,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            // SAFETY: kill(2) on a child we started; SIGTERM lets rotord stop its dataplane.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in self.children.iter_mut().flatten() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nodes {
    fn socket(&self, i: usize) -> String {
        format!("rt-e2e-{}-n{i}", self.tag)
    }
}

/// Three rotords on 127.0.0.1-3, on a free cluster port; `index` keeps concurrent tests of this
/// binary apart (their own socket names and directory): each test has its own.
fn start(index: u16) -> Nodes {
    let tag = format!("{}-{index}", std::process::id());
    let dir = std::env::temp_dir().join(format!("rotor-e2e-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("authkey");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o400)
        .open(&key)
        .unwrap();
    f.write_all(&[0x5a; 256]).unwrap();
    // A port nothing uses right now (one made from the pid can collide with another test's).
    let port = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let conf = dir.join("corosync.conf");
    std::fs::write(
        &conf,
        format!(
            "totem {{\n  version: 2\n  cluster_name: e2e\n  token: 1000\n  keyfile: {}\n  interface {{\n    linknumber: 0\n    mcastport: {port}\n  }}\n}}\nnodelist {{\n  node {{\n    nodeid: 1\n    ring0_addr: 127.0.0.1\n  }}\n  node {{\n    nodeid: 2\n    ring0_addr: 127.0.0.2\n  }}\n  node {{\n    nodeid: 3\n    ring0_addr: 127.0.0.3\n  }}\n}}\nlogging {{\n  to_syslog: no\n}}\n",
            key.display()
        ),
    )
    .unwrap();
    let mut nodes = Nodes {
        dir: dir.clone(),
        children: Vec::new(),
        tag,
        conf,
        port,
    };
    for i in 1..=3 {
        let child = nodes.spawn(i);
        nodes.children.push(Some(child));
    }
    nodes
}

impl Nodes {
    /// Starts node `i`'s rotord, appending to its log.
    fn spawn(&self, i: usize) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{i}.log")))
            .unwrap();
        Command::new(bin("rotord"))
            .args(["-f", "-c"])
            .arg(&self.conf)
            .args(["--node-id", &i.to_string()])
            .env("ROTOR_IPC_SOCKET", self.socket(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rotord")
    }
}

fn wait_ring(nodes: &Nodes, i: usize, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connected = Cmap::initialize_at(&nodes.socket(i))
            .and_then(|mut c| c.status())
            .map(|s| {
                if s.state == rotor_proto::RingState::Operational {
                    s.nodes.iter().filter(|n| n.connected).count()
                } else {
                    0
                }
            })
            .unwrap_or(0);
        if connected == want {
            return;
        }
        let log = std::fs::read_to_string(nodes.dir.join(format!("n{i}.log"))).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "node {i}: no ring of {want} within 30 s (have {connected}); log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rotor(nodes: &Nodes, i: usize, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(args)
        .env("ROTOR_IPC_SOCKET", nodes.socket(i))
        .output()
        .expect("run rotor");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn three_rotords_carry_cpg_end_to_end() {
    let nodes = start(0);
    for i in 1..=3 {
        wait_ring(&nodes, i, 3);
    }
    // The links are connected once their pings are answered (knet_pong_count in a row),
    // which may be after the ring formed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out, err) = rotor(&nodes, 1, &["status"]);
        assert!(ok, "{err}");
        assert!(out.contains("Local node ID 1, transport udp"), "{out}");
        if out.contains("2:\tconnected") && out.contains("3:\tconnected") {
            break;
        }
        assert!(Instant::now() < deadline, "links never connected:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its reader gone (`rotor status | head -1`), the tool ends on SIGPIPE, saying nothing.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .arg("status")
        .env("ROTOR_IPC_SOCKET", nodes.socket(1))
        .stdout(writer)
        .output()
        .expect("run rotor");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        (
            out.status.signal(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(libc::SIGPIPE), "")
    );
    let (ok, out, _) = rotor(&nodes, 2, &["cmap", "get", "totem.cluster_name"]);
    assert!(ok);
    assert_eq!(out.trim(), "totem.cluster_name (str) = e2e");
    let (ok, _, err) = rotor(
        &nodes,
        2,
        &["cmap", "set", "runtime.totem.pg.mrp.srp.state", "str", "x"],
    );
    assert!(
        !ok && err.contains("Error CS_ERR_ACCESS") && err.contains("read-only"),
        "{err}"
    );
    // A config key that cannot change while the cluster runs: refused, never a silent
    // success (a timeout takes effect: cfg_loopback.rs).
    let (ok, _, err) = rotor(&nodes, 2, &["cmap", "set", "totem.netmtu", "u32", "1400"]);
    assert!(
        !ok && err.contains("CS_ERR_ACCESS")
            && err
                .contains("totem.netmtu: cannot be changed while the cluster runs: change it in ")
            && err.contains("and restart every node"),
        "{err}"
    );
    let (ok, out, _) = rotor(&nodes, 2, &["cmap", "get", "runtime.config.totem.token"]);
    assert!(ok);
    assert_eq!(out.trim(), "runtime.config.totem.token (u32) = 1650");

    let mut handles: Vec<(Cpg, Seen)> = (1..=3)
        .map(|i| {
            let mut c =
                Cpg::initialize_at(&format!("{}-cpg", nodes.socket(i))).expect("cpg attach");
            assert_eq!(c.local_node_id(), i as u32);
            c.join(b"e2e-group").expect("join");
            (c, Seen::default())
        })
        .collect();
    pump(
        &mut handles,
        Duration::from_secs(20),
        "3 group members",
        |h| h.iter().all(|(_, s)| s.members.len() >= 3),
    );
    // From here on every member must see exactly the same sequence.
    let marks: Vec<usize> = handles.iter().map(|(_, s)| s.events.len()).collect();
    for round in 0..40 {
        for (i, (c, s)) in handles.iter_mut().enumerate() {
            let g = if round % 2 == 0 {
                Guarantee::Agreed
            } else {
                Guarantee::Safe
            };
            send(c, s, g, &format!("n{} r{round}", i + 1));
        }
    }
    // Messages larger than a frame: delivered in fragments borrowed from the dataplane's frame
    // store and gathered straight into each client's ring; every byte must arrive.
    let large = |node: usize, len: usize| -> Vec<u8> {
        (0..len)
            .map(|k| (k * 131 + node * 17 + len) as u8)
            .collect()
    };
    let mut expected_large = Vec::new();
    for (i, (c, s)) in handles.iter_mut().enumerate() {
        for len in [3_000, 300_000] {
            let data = large(i + 1, len);
            send_bytes(c, s, Guarantee::Agreed, &data);
            let me = Member {
                node: i as u32 + 1,
                pid: std::process::id(),
            };
            expected_large.push(delivery_line(me, &data));
        }
    }
    // A separate process joins, then dies by SIGKILL: a process-down for everyone.
    let mut bench = Command::new(env!("CARGO_BIN_EXE_rotor"))
        .args(["bench", "tput", "-g", "e2e-group", "-m", "99", "-t", "60"])
        .env("ROTOR_IPC_SOCKET", nodes.socket(2))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    pump(
        &mut handles,
        Duration::from_secs(20),
        "the bench process joining",
        |h| h.iter().all(|(_, s)| s.members.len() >= 4),
    );
    let (ok, out, _) = rotor(&nodes, 3, &["cpg"]);
    assert!(ok && out.contains("e2e-group"), "{out}");
    assert!(out.contains(&bench.id().to_string()), "{out}");
    bench.kill().unwrap();
    bench.wait().unwrap();
    let victim = Member {
        node: 2,
        pid: bench.id(),
    };
    pump(
        &mut handles,
        Duration::from_secs(20),
        "every delivery and the process-down",
        |h| {
            h.iter()
                .all(|(_, s)| s.delivered >= 126 && s.left.contains(&(victim, Reason::ProcDown)))
        },
    );
    let first = &handles[0].1.events[marks[0]..];
    for (k, (_, s)) in handles.iter().enumerate().skip(1) {
        assert_eq!(
            &s.events[marks[k]..],
            first,
            "member {} saw another sequence",
            k + 1
        );
    }
    assert_eq!(first.iter().filter(|e| e.starts_with("msg ")).count(), 126);
    for line in &expected_large {
        assert!(
            first.contains(line),
            "large message missing or altered: {line}"
        );
    }
}

/// Set in a child process of `startup_processes_see_nothing_before_their_own_join`:
/// `SOCKET|DIR|INDEX`.
const STARTUP_CHILD: &str = "ROTOR_E2E_STARTUP_CHILD";
const STARTUP_MESSAGES: usize = 50;

/// What a child process saw of the group: one line per event, members as `node:pid`.
#[derive(Default)]
struct Lines(Vec<String>);

fn names(list: &[Member]) -> String {
    list.iter()
        .map(|m| format!("{}:{}", m.node, m.pid))
        .collect::<Vec<_>>()
        .join(",")
}

fn with_reasons(list: &[(Member, Reason)]) -> String {
    list.iter()
        .map(|(m, r)| format!("{}:{}/{}", m.node, m.pid, r.name().replace(' ', "-")))
        .collect::<Vec<_>>()
        .join(",")
}

impl rotor_client::cpg::Handler for Lines {
    fn deliver(&mut self, _: &[u8], sender: Member, _: Guarantee, data: &[u8]) {
        self.0.push(delivery_line(sender, data));
    }
    fn confchg(
        &mut self,
        _: &[u8],
        members: &[Member],
        left: &[(Member, Reason)],
        joined: &[(Member, Reason)],
    ) {
        self.0.push(format!(
            "conf members={} joined={} left={}",
            names(members),
            with_reasons(joined),
            with_reasons(left)
        ));
    }
}

/// The child's side: join, multicast at once (allowed while joining; ordered after the join),
/// say "ready" once its own messages came back, keep dispatching until told to stop, then
/// write what it saw. Every wait is bounded.
fn startup_child(spec: &str) {
    use rotor_client::cpg::Dispatch;
    let mut parts = spec.split('|');
    let (socket, dir, index) = (
        parts.next().unwrap(),
        PathBuf::from(parts.next().unwrap()),
        parts.next().unwrap(),
    );
    let mut cpg = Cpg::initialize_at(socket).expect("attach");
    let me = format!("{}:{}", cpg.local_node_id(), std::process::id());
    let mut seen = Lines::default();
    cpg.join(b"startup").expect("join");
    for k in 0..STARTUP_MESSAGES {
        let text = format!("c{index} m{k}");
        loop {
            match cpg.mcast(Guarantee::Agreed, text.as_bytes()) {
                Ok(()) => break,
                Err(rotor_client::Error::TryAgain) => {
                    cpg.dispatch(Dispatch::All, &mut seen).unwrap();
                }
                Err(e) => panic!("mcast: {e}"),
            }
        }
    }
    let mine = |seen: &Lines| {
        seen.0
            .iter()
            .filter(|l| l.starts_with(&format!("msg {me} ")))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while !dir.join("stop").exists() && Instant::now() < deadline {
        cpg.dispatch(Dispatch::Blocking(Duration::from_millis(20)), &mut seen)
            .unwrap();
        if !ready && mine(&seen) == STARTUP_MESSAGES {
            ready = true;
            std::fs::write(dir.join(format!("ready-{index}")), b"").unwrap();
        }
    }
    let drain = Instant::now() + Duration::from_millis(300);
    while Instant::now() < drain {
        cpg.dispatch(Dispatch::Blocking(Duration::from_millis(20)), &mut seen)
            .unwrap();
    }
    let log = format!("me {me}\n{}\n", seen.0.join("\n"));
    std::fs::write(dir.join(format!("seen-{index}")), log).unwrap();
}

#[test]
fn startup_processes_see_nothing_before_their_own_join() {
    // Six processes, two per node, attach and join one group at the same moment and multicast
    // at once: each one's first event of the group must be the change that adds it, and from
    // there on it must see exactly what the processes that joined before it see.
    if let Ok(spec) = std::env::var(STARTUP_CHILD) {
        return startup_child(&spec);
    }
    let nodes = start(3);
    for i in 1..=3 {
        wait_ring(&nodes, i, 3);
    }
    let dir = nodes.dir.join("startup");
    std::fs::create_dir_all(&dir).unwrap();
    let mut children: Vec<Child> = (0..6)
        .map(|k| {
            let spec = format!("{}-cpg|{}|{k}", nodes.socket(k % 3 + 1), dir.display());
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "startup_processes_see_nothing_before_their_own_join",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(STARTUP_CHILD, spec)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join(format!("stderr-{k}"))).unwrap())
                .spawn()
                .expect("start a child process")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let all_ready = loop {
        if (0..6).all(|k| dir.join(format!("ready-{k}")).exists()) {
            break true;
        }
        if Instant::now() > deadline || children.iter_mut().any(|c| c.try_wait().unwrap().is_some())
        {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::fs::write(dir.join("stop"), b"").unwrap();
    for (k, c) in children.iter_mut().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let status = c.wait().unwrap();
        let err = std::fs::read_to_string(dir.join(format!("stderr-{k}"))).unwrap_or_default();
        assert!(status.success() && all_ready, "child {k}: {status}\n{err}");
    }
    let logs: Vec<(String, Vec<String>)> = (0..6)
        .map(|k| {
            let text = std::fs::read_to_string(dir.join(format!("seen-{k}"))).unwrap();
            let mut lines = text.lines().map(str::to_owned);
            let me = lines.next().unwrap().trim_start_matches("me ").to_owned();
            (me, lines.collect())
        })
        .collect();
    for (me, seen) in &logs {
        let first = seen.first().map(String::as_str).unwrap_or("nothing");
        let joined = first
            .split(' ')
            .find_map(|f| f.strip_prefix("joined="))
            .unwrap_or("");
        let members = first
            .split(' ')
            .find_map(|f| f.strip_prefix("members="))
            .unwrap_or("");
        assert!(
            joined.split(',').any(|j| j == format!("{me}/join"))
                && members.split(',').any(|m| m == me),
            "{me}: the first event is not the change that adds it: {first}"
        );
    }
    // Whoever joined first sees the other's join change: from there both see one sequence.
    for (a, (me_a, seen_a)) in logs.iter().enumerate() {
        for (me_b, seen_b) in logs.iter().skip(a + 1) {
            let (early, late, late_name) = match seen_a.iter().position(|l| *l == seen_b[0]) {
                Some(at) => (&seen_a[at..], &seen_b[..], me_b),
                None => {
                    let at = seen_b
                        .iter()
                        .position(|l| *l == seen_a[0])
                        .unwrap_or_else(|| panic!("neither {me_a} nor {me_b} saw the other join"));
                    (&seen_b[at..], &seen_a[..], me_a)
                }
            };
            let n = early.len().min(late.len());
            assert!(n > STARTUP_MESSAGES, "{late_name} saw only {n} events");
            assert_eq!(
                early[..n],
                late[..n],
                "{me_a} and {me_b} saw different sequences after {late_name} joined"
            );
        }
    }
}

#[test]
fn a_bad_config_names_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("rotor-e2e-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "totem {\n  version: 2\n  token: soon\n}\n").unwrap();
    let out = Command::new(bin("rotord"))
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.conf:3:") && err.contains("token"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_setuid_rotord_refuses_to_start() {
    if !rotor_testbed::root_or_skip("making a setuid-root copy of rotord") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("rotor-e2e-suid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Mounted nosuid, the bit would be ignored and there would be nothing to refuse.
    // SAFETY: statvfs on a NUL-terminated path into a zeroed struct it fills.
    let nosuid = unsafe {
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(path.as_ptr(), &mut st) == 0 && st.f_flag & libc::ST_NOSUID != 0
    };
    if nosuid {
        eprintln!("skipped: {} is on a nosuid mount", dir.display());
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let copy = dir.join("rotord");
    std::fs::copy(bin("rotord"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&copy)
        .arg("-v")
        .output()
        .expect("run setpriv");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a setuid rotord started: {err}");
    assert!(
        err.contains("refusing to run setuid/setgid (real uid 65534, effective uid 0"),
        "{err}"
    );
}

#[test]
fn the_client_api_end_to_end() {
    use rotor_client::cmap::{Value, TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX};
    use rotor_client::cpg::Dispatch;
    let nodes = start(1);
    for i in 1..=3 {
        wait_ring(&nodes, i, 3);
    }
    let group = b"api-group";
    let mut handles: Vec<(Cpg, Seen)> = (1..=3)
        .map(|i| {
            let mut c = Cpg::initialize_at(&format!("{}-cpg", nodes.socket(i))).expect("attach");
            c.join(group).expect("join");
            (c, Seen::default())
        })
        .collect();
    pump(&mut handles, Duration::from_secs(20), "3 members", |h| {
        h.iter().all(|(_, s)| s.members.len() >= 3)
    });
    let me = Member {
        node: 1,
        pid: std::process::id(),
    };

    // Messages up to the largest size, fragmented on the wire and whole at every member.
    let max = handles[0].0.max_message_size();
    assert!(max >= 1 << 20, "max message size {max}");
    let big: Vec<u8> = (0..max).map(|i| b'a' + (i % 26) as u8).collect();
    assert!(matches!(
        handles[0].0.mcast(Guarantee::Agreed, &vec![0; max + 1]),
        Err(rotor_client::Error::Status(rotor_proto::Status::TooBig))
    ));
    {
        let (c, s) = &mut handles[0];
        loop {
            match c.mcast(Guarantee::Safe, &big) {
                Ok(()) => break,
                Err(rotor_client::Error::TryAgain) => {
                    c.dispatch(Dispatch::All, s).unwrap();
                }
                Err(e) => panic!("mcast 1 MiB: {e}"),
            }
        }
    }
    let whole = delivery_line(me, &big);
    pump(
        &mut handles,
        Duration::from_secs(20),
        "the 1 MiB message",
        |h| h.iter().all(|(_, s)| s.events.contains(&whole)),
    );

    // Membership and group iteration.
    let members = handles[1].0.membership(group).unwrap();
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.contains(&me), "{members:?}");
    let groups = handles[2].0.groups().unwrap();
    assert!(
        groups.iter().any(|(g, m)| g == group && m.len() == 3),
        "{groups:?}"
    );

    // The pollable fd: readable once a message waits; One dispatches exactly one event.
    {
        let (c, s) = &mut handles[1];
        send(c, s, Guarantee::Agreed, "one");
        send(c, s, Guarantee::Agreed, "two");
    }
    let (c, s) = &mut handles[0];
    let fd = c.fd().unwrap();
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(ready, 1, "the cpg fd never became readable");
    let before = s.events.len();
    assert_eq!(c.dispatch(Dispatch::One, s).unwrap(), 1);
    assert_eq!(s.events.len(), before + 1);
    pump(
        &mut handles,
        Duration::from_secs(10),
        "both small messages",
        |h| {
            h.iter()
                .all(|(_, s)| s.events.iter().any(|e| e.ends_with(" two")))
        },
    );

    // Leave: the others see the member go with reason Leave.
    let leaver = Member {
        node: 3,
        pid: std::process::id(),
    };
    handles[2].0.leave(group).unwrap();
    pump(
        &mut handles[..2],
        Duration::from_secs(10),
        "the leave",
        |h| {
            h.iter()
                .all(|(_, s)| s.left.contains(&(leaver, Reason::Leave)))
        },
    );

    // cmap tracking of a prefix.
    let mut cmap = Cmap::initialize_at(&nodes.socket(1)).unwrap();
    let handle = cmap
        .track_add(
            "test.api",
            TRACK_ADD | TRACK_MODIFY | TRACK_DELETE | TRACK_PREFIX,
        )
        .unwrap();
    let mut writer = Cmap::initialize_at(&nodes.socket(1)).unwrap();
    writer.set("test.api.x", Value::U32(7)).unwrap();
    writer.set("test.api.x", Value::U32(8)).unwrap();
    writer.delete("test.api.x").unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let n = cmap
            .next_notification(Duration::from_secs(5))
            .unwrap()
            .expect("a notification");
        assert_eq!((n.handle, n.key.as_str()), (handle, "test.api.x"));
        kinds.push(n.kind);
    }
    assert_eq!(kinds, [TRACK_ADD, TRACK_MODIFY, TRACK_DELETE]);

    // cfg shutdown of node 3: it leaves the ring, the others get a totem change without it.
    Cmap::initialize_at(&nodes.socket(3))
        .unwrap()
        .shutdown()
        .unwrap();
    pump(
        &mut handles[..2],
        Duration::from_secs(20),
        "a ring without node 3",
        |h| {
            h.iter()
                .all(|(_, s)| s.rings.last().is_some_and(|m| m == &[1, 2]))
        },
    );
}

/// A node stopped cleanly and started again at once — within the same second, so only the epoch
/// kept on disk tells its peers it is a new run and not a replay of the last — finds its
/// cluster port free the moment rotord has exited, and rejoins the ring of three, every time.
#[test]
fn a_node_restarted_right_after_a_clean_stop_rejoins() {
    let mut nodes = start(4);
    for i in 1..=3 {
        wait_ring(&nodes, i, 3);
    }
    for round in 0..3 {
        let child = nodes.children[2].take().expect("node 3 runs");
        let status = stop(child);
        assert!(
            status.is_some_and(|s| s.success()),
            "node 3 stop: {status:?}"
        );
        // The port is free once rotord has exited: its dataplane closed the socket.
        if let Err(e) = std::net::UdpSocket::bind(("127.0.0.3", nodes.port)) {
            panic!(
                "round {round}: 127.0.0.3:{} still bound after a clean stop: {e}",
                nodes.port
            );
        }
        nodes.children[2] = Some(nodes.spawn(3));
        for i in 1..=3 {
            wait_ring(&nodes, i, 3);
        }
    }
    let log = std::fs::read_to_string(nodes.dir.join("n3.log")).unwrap_or_default();
    assert!(!log.contains("Address already in use"), "{log}");
    assert!(!log.contains("restarting it in"), "{log}");
    // Every restart came with a new epoch: the peers dropped none of its frames as replays
    // (their counters reach cmap every 200 ms; a drop counter exists once it counts).
    std::thread::sleep(Duration::from_millis(500));
    for i in 1..=2 {
        let mut c = Cmap::initialize_at(&nodes.socket(i)).expect("cmap");
        for reason in ["replay", "stale_epoch"] {
            let key = format!("stats.crypto.drops.{reason}");
            if let Ok(v) = c.get(&key) {
                assert_eq!(v, rotor_client::cmap::Value::U64(0), "node {i}: {key}");
            }
        }
    }
}

#[test]
fn one_node_out_of_the_box_notifies_systemd_and_stops_cleanly() {
    use std::os::unix::net::UnixDatagram;
    let tag = format!("{}-solo", std::process::id());
    let dir = std::env::temp_dir().join(format!("rotor-e2e-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("authkey");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&key)
        .unwrap()
        .write_all(&[0x33; 256])
        .unwrap();
    // No nodelist: a one-node cluster on 127.0.0.1 (own port, socket and state directory so it
    // runs beside the other tests).
    let port = 20_000 + (std::process::id() % 10_000) as u16 * 4 + 2;
    let conf = dir.join("corosync.conf");
    std::fs::write(
        &conf,
        format!(
            "totem {{\n  version: 2\n  cluster_name: solo\n  keyfile: {}\n  interface {{\n    mcastport: {port}\n  }}\n}}\nlogging {{\n  to_syslog: no\n}}\nsystem {{\n  state_dir: {}\n}}\n",
            key.display(),
            dir.join("state").display()
        ),
    )
    .unwrap();
    let notify = dir.join("notify.sock");
    let listener = UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let socket = format!("rt-e2e-{tag}");
    let mut rotord = Command::new(bin("rotord"))
        .args(["-f", "-c"])
        .arg(&conf)
        .env("ROTOR_IPC_SOCKET", &socket)
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 64];
    let got = listener.recv(&mut buf);
    let status = Cmap::initialize_at(&socket).and_then(|mut c| c.status());
    // SAFETY: kill(2) on our own child; SIGTERM asks for a clean stop.
    unsafe { libc::kill(rotord.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = rotord.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = rotord.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_dir_all(&dir);
    let n = got.expect("no sd_notify datagram within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    let status = status.expect("status");
    assert_eq!(status.state, rotor_proto::RingState::Operational);
    assert_eq!(status.local_addr, "127.0.0.1");
    assert_eq!(status.nodes.len(), 1);
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit on SIGTERM: {exit:?}"
    );
}

/// A scratch directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("rotor-start-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A one-node corosync.conf (no nodelist: 127.0.0.1) with `totem_extra` lines in totem{}, on a
/// port of this test's own.
fn one_node_conf(dir: &Path, port_offset: u16, totem_extra: &str) -> PathBuf {
    let port = 30_000 + (std::process::id() % 5_000) as u16 * 4 + port_offset;
    let conf = dir.join("corosync.conf");
    std::fs::write(
        &conf,
        format!(
            "totem {{\n  version: 2\n  cluster_name: start\n{totem_extra}  interface {{\n    mcastport: {port}\n  }}\n}}\nlogging {{\n  to_syslog: no\n}}\nsystem {{\n  state_dir: {}\n}}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    conf
}

fn write_key(path: &Path, mode: u32, len: usize) {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .unwrap()
        .write_all(&vec![0x42; len])
        .unwrap();
}

fn rotord(conf: &Path, socket: &str) -> Command {
    let mut cmd = Command::new(bin("rotord"));
    cmd.args(["-f", "-c"])
        .arg(conf)
        .env("ROTOR_IPC_SOCKET", socket)
        .stdout(Stdio::null());
    cmd
}

/// Runs rotord to its exit (at most 30 s, then killed and the test fails).
fn run_to_exit(mut cmd: Command) -> Output {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "rotord still running after 30 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// SIGTERM and a bounded wait; the exit status, `None` if it had to be killed.
fn stop(mut child: Child) -> Option<std::process::ExitStatus> {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_operational(socket: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Cmap::initialize_at(socket).and_then(|mut c| c.status()) {
            Ok(s) if s.state == rotor_proto::RingState::Operational => return Ok(()),
            other if Instant::now() > deadline => {
                return Err(format!("not operational within 20 s: {other:?}"))
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn crypto_none_runs_without_a_key_file() {
    let dir = Dir::new("nokey");
    let missing = dir.0.join("no-such-authkey");
    let conf = one_node_conf(
        &dir.0,
        0,
        &format!(
            "  crypto_cipher: none\n  crypto_hash: none\n  keyfile: {}\n",
            missing.display()
        ),
    );
    let log = std::fs::File::create(dir.0.join("rotord.log")).unwrap();
    let socket = format!("rt-start-nokey-{}", std::process::id());
    let child = rotord(&conf, &socket).stderr(log).spawn().unwrap();
    let ready = wait_operational(&socket);
    let exit = stop(child);
    let log = std::fs::read_to_string(dir.0.join("rotord.log")).unwrap();
    ready.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}\n{log}");
    assert!(!log.contains("authkey"), "{log}");
}

#[test]
fn a_cpg_attach_while_the_dataplane_restarts_is_told_to_try_again() {
    let dir = Dir::new("cpgretry");
    let conf = one_node_conf(&dir.0, 2, "  crypto_cipher: none\n  crypto_hash: none\n");
    let log_path = dir.0.join("rotord.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let socket = format!("rt-start-cpgretry-{}", std::process::id());
    let child = rotord(&conf, &socket).stderr(log).spawn().unwrap();
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let outcome = (|| -> Result<usize, String> {
        wait_operational(&socket)?;
        // The dataplane is rotord's only child.
        let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
            .map_err(|e| e.to_string())?;
        let dataplane: i32 = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("rotord has no child")?;
        // SAFETY: kill(2) on the child of our own rotord.
        unsafe { libc::kill(dataplane, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !read_log().contains("restarting it in") {
            if Instant::now() > deadline {
                return Err("rotord did not see its dataplane die".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // Until the dataplane is back an attach is refused with "try again"; then one works.
        let cpg = rotor_proto::cpg_socket_name(&socket);
        let mut refused = 0;
        loop {
            match Cpg::initialize_at(&cpg) {
                Ok(_) => return Ok(refused),
                Err(rotor_client::Error::Refused {
                    status: rotor_proto::Status::TryAgain,
                    ..
                }) => refused += 1,
                Err(e) => return Err(format!("attach {}: {e}", refused + 1)),
            }
            if Instant::now() > deadline {
                return Err(format!("no attach worked again; {refused} refused"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })();
    let exit = stop(child);
    let log = read_log();
    let refused = outcome.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert!(
        refused > 0,
        "the dataplane was back before any attach\n{log}"
    );
    assert!(
        log.contains("refused: the dataplane is restarting"),
        "{log}"
    );
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}\n{log}");
}

#[test]
fn an_unusable_key_stops_rotord_with_status_8_and_one_message() {
    for (name, mode, len, expect) in [
        ("world-readable", 0o644, 256, "group or other"),
        ("short", 0o400, 10, "10"),
    ] {
        let dir = Dir::new(&format!("badkey-{name}"));
        let key = dir.0.join("authkey");
        write_key(&key, mode, len);
        let conf = one_node_conf(&dir.0, 1, &format!("  keyfile: {}\n", key.display()));
        let socket = format!("rt-start-badkey-{name}-{}", std::process::id());
        let out = run_to_exit(rotord(&conf, &socket));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(8), "{name}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: one message: {err}");
        assert!(
            lines[0].contains(&key.display().to_string()) && lines[0].contains(expect),
            "{name}: {err}"
        );
        assert_eq!(
            lines[0].matches("authkey /").count(),
            1,
            "{name}: the prefix is said once: {err}"
        );
        assert!(!err.contains("dataplane"), "{name}: {err}");
    }
}

#[test]
fn a_netmtu_no_ip_packet_can_have_exits_8_before_any_dataplane() {
    let dir = Dir::new("netmtu");
    let key = dir.0.join("authkey");
    write_key(&key, 0o400, 256);
    // Larger than any IP packet: refused by the table of settings at parse time (a netmtu that
    // only the transport refuses, such as 9000 over AF_XDP, is the netns test's).
    let conf = one_node_conf(
        &dir.0,
        2,
        &format!("  keyfile: {}\n  netmtu: 70000\n", key.display()),
    );
    let socket = format!("rt-start-netmtu-{}", std::process::id());
    let out = run_to_exit(rotord(&conf, &socket));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(err.contains(":5: totem.netmtu"), "{err}");
    assert!(!err.contains("dataplane started"), "{err}");
}

#[test]
fn test_mode_exits_0_or_8() {
    let dir = Dir::new("test-mode");
    let key = dir.0.join("authkey");
    write_key(&key, 0o400, 256);
    let good = one_node_conf(&dir.0, 3, &format!("  keyfile: {}\n", key.display()));
    let out = Command::new(bin("rotord"))
        .arg("-t")
        .arg("-c")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.0.join("bad.conf");
    std::fs::write(&bad, "totem {\n  version: 2\n  window_size: many\n}\n").unwrap();
    let out = Command::new(bin("rotord"))
        .arg("-t")
        .arg("-c")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{err}");
    assert!(
        err.contains("bad.conf:3:") && err.contains("totem.window_size"),
        "{err}"
    );
}

#[test]
fn a_second_rotord_on_the_same_sockets_exits_18() {
    let dir = Dir::new("twice");
    let conf = one_node_conf(&dir.0, 3, "  crypto_cipher: none\n  crypto_hash: none\n");
    let socket = format!("rt-start-twice-{}", std::process::id());
    let first = rotord(&conf, &socket)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_operational(&socket);
    let second = run_to_exit(rotord(&conf, &socket));
    let exit = stop(first);
    ready.unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(18), "{err}");
    assert!(err.contains("another rotord"), "{err}");
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}");
}
