//! Quorum on three rotords on 127.0.0.1-3 (no root): expected_votes_tracking keeps the highest
//! expected votes in the state directory and a restarted cluster starts from it; a quorum
//! device registered through the votequorum API casts its votes while it polls (shown by
//! `rotor quorum -s` in corosync-quorumtool's layout), keeps a node alone quorate, and
//! `rotor quorum -f` unregisters it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rotor_client::cpg::Dispatch;
use rotor_client::votequorum::{
    RingId, Votequorum, VotequorumHandler, INFO_QDEVICE_ALIVE, INFO_QDEVICE_CAST_VOTE,
    INFO_QDEVICE_REGISTERED, TRACK_CHANGES,
};

// Only `bin_dir` of the shared helpers is used here.
#[allow(dead_code)]
mod common;

struct Nodes {
    dir: PathBuf,
    conf: PathBuf,
    tag: String,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn socket(&self, i: usize) -> String {
        format!("rt-q-{}-n{i}", self.tag)
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{i}.log")))
            .unwrap();
        let child = Command::new(common::bin_dir().join("rotord"))
            .args(["-f", "-c"])
            .arg(&self.conf)
            .args(["--node-id", &i.to_string()])
            .env("ROTOR_IPC_SOCKET", self.socket(i))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rotord");
        self.children[i - 1] = Some(child);
    }

    /// SIGTERM (a clean stop) and wait.
    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.children[i - 1].take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default()
    }

    /// `rotor ARGS` on node `i`: exit status and stdout (stderr after it).
    fn rotor(&self, i: usize, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_rotor"))
            .args(args)
            .env("ROTOR_IPC_SOCKET", self.socket(i))
            .output()
            .expect("run rotor");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `rotor quorum -s` on node `i` until it exits `code` and its text has every line of
    /// `lines`.
    fn wait_status(&self, i: usize, code: i32, lines: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (got, text) = self.rotor(i, &["quorum", "-s"]);
            if got == Some(code) && lines.iter().all(|l| text.contains(l)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "node {i}: wanted exit {code} and {lines:?}, got {got:?}:\n{text}\nlog:\n{}",
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 1..=self.children.len() {
            self.stop(i);
        }
        if std::thread::panicking() {
            for i in 1..=self.children.len() {
                eprintln!("---- node {i}:\n{}", self.log(i));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three nodes on 127.0.0.1-3 with `quorum` lines in quorum{}, the first `running` of them
/// started; `index` keeps tests apart.
fn cluster(index: u16, quorum: &str, running: usize) -> Nodes {
    let tag = format!("{}-{index}", std::process::id());
    let dir = std::env::temp_dir().join(format!("rotor-quorum-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("authkey");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o400)
        .open(&key)
        .unwrap()
        .write_all(&[0x3c; 256])
        .unwrap();
    let port = 30_000 + (std::process::id() % 5_000) as u16 * 4 + index;
    let conf = dir.join("corosync.conf");
    let mut text = format!(
        "totem {{\n  cluster_name: q{index}\n  token: 500\n  keyfile: {}\n  interface {{\n    \
         linknumber: 0\n    mcastport: {port}\n  }}\n}}\nnodelist {{\n",
        key.display()
    );
    for i in 1..=3 {
        text.push_str(&format!(
            "  node {{\n    nodeid: {i}\n    ring0_addr: 127.0.0.{i}\n  }}\n"
        ));
    }
    text.push_str(&format!(
        "}}\nquorum {{\n  provider: corosync_votequorum\n{quorum}}}\nsystem {{\n  state_dir: \
         {}\n}}\nlogging {{\n  to_syslog: no\n}}\n",
        dir.join("state").display()
    ));
    std::fs::write(&conf, text).unwrap();
    let mut nodes = Nodes {
        dir,
        conf,
        tag,
        children: (0..3).map(|_| None).collect(),
    };
    for i in 1..=running {
        nodes.start(i);
    }
    nodes
}

fn barrier(dir: &Path, node: u32) -> String {
    std::fs::read_to_string(dir.join("state").join(format!("ev_tracking_{node}")))
        .unwrap_or_default()
}

#[test]
fn expected_votes_tracking_survives_a_restart_of_the_cluster() {
    let mut nodes = cluster(1, "  expected_votes_tracking: 1\n", 3);
    for i in 1..=3 {
        nodes.wait_status(i, 0, &["Nodes:            3\n", "Expected votes:   3\n"]);
    }
    assert_eq!(barrier(&nodes.dir, 1), "3\n");
    // The operator raises expected votes: every node follows and keeps it.
    let (code, text) = nodes.rotor(2, &["quorum", "-e", "4"]);
    assert_eq!(code, Some(0), "{text}");
    for i in 1..=3 {
        nodes.wait_status(i, 0, &["Expected votes:   4\n", "Quorum:           3  \n"]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while barrier(&nodes.dir, 1) != "4\n" {
        assert!(Instant::now() < deadline, "{:?}", barrier(&nodes.dir, 1));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Lower than the votes present: refused with the reason.
    let (code, text) = nodes.rotor(1, &["quorum", "-e", "2"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        text,
        "Unable to set expected votes: CS_ERR_INVALID_PARAM (expected votes 2 is lower than \
         the 3 votes present)\n"
    );
    // The whole cluster restarts: it starts from 4, and two of four are not a majority.
    for i in 1..=3 {
        nodes.stop(i);
    }
    for i in 1..=2 {
        nodes.start(i);
    }
    nodes.wait_status(
        1,
        2,
        &[
            "Nodes:            2\n",
            "Expected votes:   4\n",
            "Quorum:           3 Activity blocked\n",
        ],
    );
    nodes.start(3);
    nodes.wait_status(1, 0, &["Nodes:            3\n", "Expected votes:   4\n"]);
}

/// The ring of votequorum's nodelist notifications.
#[derive(Default)]
struct Rings(Vec<RingId>);

impl VotequorumHandler for Rings {
    fn nodelist(&mut self, _context: u64, ring: RingId, _nodes: &[u32]) {
        self.0.push(ring);
    }
}

#[test]
fn a_quorum_device_votes_while_it_polls() {
    // Two votes for the device (nodes − 1): expected votes 5, quorum 3.
    let nodes = cluster(2, "  device {\n    model: net\n  }\n", 3);
    nodes.wait_status(1, 0, &["Nodes:            3\n", "Expected votes:   5\n"]);
    std::env::set_var("ROTOR_IPC_SOCKET", nodes.socket(1));
    let mut v = Votequorum::initialize().expect("votequorum attach");
    let mut rings = Rings::default();
    v.trackstart(1, TRACK_CHANGES).unwrap();
    v.dispatch(Dispatch::Blocking(Duration::from_secs(5)), &mut rings)
        .unwrap();
    let mut ring = *rings.0.last().expect("the current ring");
    v.qdevice_register("Qdevice").unwrap();
    // Another name is refused; the same one is fine.
    match v.qdevice_register("Other") {
        Err(rotor_client::Error::Refused { status, message }) => {
            assert_eq!(status, rotor_proto::Status::Exist);
            assert!(message.contains("Qdevice"), "{message}");
        }
        r => panic!("{r:?}"),
    }
    v.qdevice_register("Qdevice").unwrap();
    // A poll for an old ring is refused.
    assert!(v
        .qdevice_poll("Qdevice", true, RingId { nodeid: 9, seq: 1 })
        .is_err());
    v.qdevice_poll("Qdevice", true, ring).unwrap();
    let info = v.getinfo(0).unwrap();
    let f = info.flags;
    assert!(
        f & INFO_QDEVICE_REGISTERED != 0
            && f & INFO_QDEVICE_ALIVE != 0
            && f & INFO_QDEVICE_CAST_VOTE != 0,
        "{info:?}"
    );
    let status = nodes.wait_status(
        1,
        0,
        &[
            "Total votes:      5\n",
            "Flags:            Quorate Qdevice \n",
            "    Nodeid      Votes    Qdevice Name\n",
            "         1          1    A,V,NMW localhost (local)\n",
            "         2          1         NR 127.0.0.2\n",
            // corosync-quorumtool: the padded votes, then 11 spaces and the name.
            "         0          2            Qdevice\n",
        ],
    );
    // Nodes 2 and 3 stop: node 1 and the device hold 3 of 5 while the device polls in the
    // new ring.
    let mut nodes = nodes;
    nodes.stop(2);
    nodes.stop(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        v.dispatch(Dispatch::Blocking(Duration::from_millis(200)), &mut rings)
            .unwrap();
        if let Some(r) = rings.0.last() {
            if *r != ring {
                ring = *r;
            }
        }
        let _ = v.qdevice_poll("Qdevice", true, ring);
        let (code, text) = nodes.rotor(1, &["quorum", "-s"]);
        if code == Some(0) && text.contains("Nodes:            1\n") {
            assert!(text.contains("Total votes:      3\n"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "{status}\n{text}");
    }
    // Unregistered (rotor quorum -f): node 1 alone has 1 of 5.
    let (code, text) = nodes.rotor(1, &["quorum", "-f"]);
    assert_eq!(code, Some(0), "{text}");
    nodes.wait_status(1, 2, &["Total votes:      1\n", "Flags:            \n"]);
    assert!(v.getinfo(0).unwrap().flags & INFO_QDEVICE_REGISTERED == 0);
}

#[test]
fn cancelling_wait_for_all_through_cmap_lets_a_majority_run() {
    // Node 3 never starts: two of three were never all seen together.
    let nodes = cluster(3, "  wait_for_all: 1\n", 2);
    nodes.wait_status(
        1,
        2,
        &["Nodes:            2\n", "Flags:            WaitForAll \n"],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes
        .log(1)
        .contains("[VOTEQ ] Waiting for all cluster members. Current votes: 2 expected_votes: 3")
    {
        assert!(Instant::now() < deadline, "{}", nodes.log(1));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, text) = nodes.rotor(2, &["cmap", "set", "quorum.cancel_wait_for_all", "u8", "1"]);
    assert_eq!(code, Some(0), "{text}");
    for i in 1..=2 {
        nodes.wait_status(
            i,
            0,
            &[
                "Quorate:          Yes\n",
                "Flags:            Quorate WaitForAll \n",
            ],
        );
    }
    assert!(nodes
        .log(1)
        .contains("wait_for_all_status reset by user on node 2."));
}
