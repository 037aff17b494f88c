//! The unprivileged path, run as an unprivileged user (root runs this test and drops to uid
//! 65534 through setpriv; as any other user it skips, since e2e_loopback then runs the same
//! path as that user already). Three rotords on 127.0.0.1-3, each with its dataplane, all as
//! uid 65534 with a state directory it owns: the ring forms, `rotor status` by the same uid is
//! served (a non-root rotord admits its own user), CPG traffic flows between that user's
//! processes on every node. A user neither allowed by uidgid{} nor the owner (uid 4242) is
//! refused with a message that names the uid and uidgid{} (not "is rotord running?"), and
//! cannot reach the rings of another user's client or of the dataplane through /proc (their
//! memfds are unnamed and /proc/PID/fd and map_files are closed to other users).

use std::os::unix::fs::{chown, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const UID_OWNER: u32 = 65534;
const UID_STRANGER: u32 = 4242;
const NODES: usize = 3;

/// `program` as `uid` (and the same gid), no supplementary groups, no capabilities.
fn as_user(uid: u32, program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg("--inh-caps=-all")
        .arg(program);
    c
}

struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    tag: String,
    daemons: Vec<Child>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &self.daemons {
            // Safety: kill(2) on a child we started; SIGTERM lets rotord stop its dataplane.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in &mut self.daemons {
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for i in 1..=NODES {
                let log =
                    std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default();
                eprintln!("---- rotord {i}:\n{log}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    fn socket(&self, i: usize) -> String {
        format!("rt-nonroot-{}-n{i}", self.tag)
    }

    /// `rotor ARGS` on node `i` as `uid`.
    fn rotor(&self, i: usize, uid: u32, args: &[&str]) -> Output {
        as_user(uid, &self.bin.join("rotor"))
            .args(args)
            .env("ROTOR_IPC_SOCKET", self.socket(i))
            .stdin(Stdio::null())
            .output()
            .expect("run rotor")
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn start() -> Cluster {
    let tag = std::process::id().to_string();
    let dir = std::env::temp_dir().join(format!("rotor-nonroot-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    let state = dir.join("state");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown(&state, Some(UID_OWNER), Some(UID_OWNER)).unwrap();
    // Copies every user may run, whatever the permissions of the build directory.
    rotor_testbed::rotor::cargo_build().expect("building rotord and rotor-dataplane");
    let built = Path::new(env!("CARGO_BIN_EXE_rotor")).parent().unwrap();
    for name in ["rotord", "rotor-dataplane", "rotor"] {
        std::fs::copy(built.join(name), bin.join(name)).unwrap();
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let key = dir.join("authkey");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&key)
            .unwrap();
        f.write_all(&[0x3c; 256]).unwrap();
    }
    chown(&key, Some(UID_OWNER), Some(UID_OWNER)).unwrap();
    let port = 30_000 + (std::process::id() % 10_000) as u16 * 2;
    let mut conf = format!(
        "totem {{\n  version: 2\n  cluster_name: nonroot\n  token: 1000\n  keyfile: {}\n  \
         interface {{\n    linknumber: 0\n    mcastport: {port}\n  }}\n}}\nnodelist {{\n",
        key.display()
    );
    for i in 1..=NODES {
        conf.push_str(&format!(
            "  node {{\n    nodeid: {i}\n    ring0_addr: 127.0.0.{i}\n  }}\n"
        ));
    }
    conf.push_str(&format!(
        "}}\nlogging {{\n  to_syslog: no\n}}\nsystem {{\n  state_dir: {}\n}}\n",
        state.display()
    ));
    let conf_path = dir.join("corosync.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cluster = Cluster {
        dir: dir.clone(),
        bin: bin.clone(),
        tag,
        daemons: Vec::new(),
    };
    for i in 1..=NODES {
        let log = std::fs::File::create(dir.join(format!("n{i}.log"))).unwrap();
        let child = as_user(UID_OWNER, &bin.join("rotord"))
            .args(["-f", "-c"])
            .arg(&conf_path)
            .args(["--node-id", &i.to_string()])
            .env("ROTOR_IPC_SOCKET", cluster.socket(i))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rotord through setpriv");
        cluster.daemons.push(child);
    }
    cluster
}

/// Pids of the processes whose parent is `parent` and whose command is `name`.
fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // pid (comm) state ppid …
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
        else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if comm == name && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn rotord_dataplane_and_clients_run_as_an_unprivileged_user() {
    // Safety: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "skipped: runs as root and drops to uid {UID_OWNER} (as a non-root user, \
             e2e_loopback already runs this path)"
        );
        return;
    }
    let cluster = start();

    // The ring forms, and the owner's own `rotor status` is served.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 1..=NODES {
        loop {
            let out = cluster.rotor(i, UID_OWNER, &["status"]);
            let s = text(&out);
            if out.status.success()
                && s.contains("state operational")
                && (1..=NODES).all(|n| {
                    s.contains(&format!("{n}:\tconnected"))
                        || s.contains(&format!("{n}:\tlocalhost"))
                })
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i}: no ring of {NODES} served to uid {UID_OWNER} within 30 s: {s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for (i, d) in cluster.daemons.iter().enumerate() {
        // setpriv execs rotord in place, so the child is rotord.
        assert_eq!(uid_of(d.id()), UID_OWNER, "rotord {}", i + 1);
        let dataplanes = children_named(d.id(), "rotor-dataplane");
        assert_eq!(dataplanes.len(), 1, "one dataplane under rotord {}", i + 1);
        assert_eq!(uid_of(dataplanes[0]), UID_OWNER, "dataplane {}", i + 1);
    }

    // CPG traffic among the owner's processes on every node.
    let benches: Vec<Child> = (1..=NODES)
        .map(|i| {
            as_user(UID_OWNER, &cluster.bin.join("rotor"))
                .args([
                    "bench", "tput", "-g", "nonroot", "-m", "3", "-t", "2", "-n", "400",
                ])
                .env("ROTOR_IPC_SOCKET", cluster.socket(i))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, b) in benches.into_iter().enumerate() {
        let out = b.wait_with_output().unwrap();
        let s = text(&out);
        assert!(out.status.success(), "bench on node {}: {s}", i + 1);
        assert!(
            s.contains("sent=400") && s.contains("seq_errors=0"),
            "bench on node {}: {s}",
            i + 1
        );
    }

    // A stranger is refused with what to do about it.
    let out = cluster.rotor(1, UID_STRANGER, &["status"]);
    let s = text(&out);
    assert!(!out.status.success(), "{s}");
    assert!(
        s.contains(&format!("permission denied for uid {UID_STRANGER}")) && s.contains("uidgid"),
        "{s}"
    );
    assert!(!s.contains("is rotord running"), "{s}");
    let out = cluster.rotor(2, UID_STRANGER, &["cpg"]);
    assert!(
        !out.status.success(),
        "rotor cpg as a stranger: {}",
        text(&out)
    );

    // ... and cannot reach the rings of the owner's client or of the dataplane.
    let mut client = as_user(UID_OWNER, &cluster.bin.join("rotor"))
        .args(["bench", "tput", "-g", "idle", "-m", "99", "-t", "20"])
        .env("ROTOR_IPC_SOCKET", cluster.socket(3))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it is attached: its rings show as memfd mappings.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{}/maps", client.id()))
        .unwrap_or_default()
        .contains("/memfd:")
    {
        assert!(
            Instant::now() < deadline,
            "the client never mapped its rings"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dataplane = children_named(cluster.daemons[2].id(), "rotor-dataplane")[0];
    for pid in [client.id(), dataplane] {
        // Opening a descriptor through /proc: an eventfd or socket would block a reader, so
        // each attempt is bounded; a refusal is immediate.
        let probe = format!(
            "for f in /proc/{pid}/fd/* /proc/{pid}/map_files/*; do \
               if timeout -s KILL 1 head -c1 \"$f\" >/dev/null 2>&1; then echo \"OPENED $f\"; fi; \
             done; \
             ls /proc/{pid}/fd >/dev/null 2>&1 && echo LISTED; \
             grep -c memfd /proc/{pid}/maps >/dev/null 2>&1 && echo MAPS; true"
        );
        let out = as_user(UID_STRANGER, Path::new("/bin/sh"))
            .args(["-c", &probe])
            .output()
            .unwrap();
        let s = text(&out);
        assert!(
            !s.contains("OPENED") && !s.contains("LISTED") && !s.contains("MAPS"),
            "uid {UID_STRANGER} reached pid {pid}'s descriptors: {s}"
        );
        // The owner can list them: the probe is able to see what it looks for.
        let out = as_user(UID_OWNER, Path::new("/bin/sh"))
            .args([
                "-c",
                &format!("ls /proc/{pid}/fd >/dev/null && echo LISTED"),
            ])
            .output()
            .unwrap();
        assert!(text(&out).contains("LISTED"), "{}", text(&out));
    }
    let _ = client.kill();
    let _ = client.wait();
}
