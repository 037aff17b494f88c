//! Quorum end to end on network-namespace hosts (root; otherwise it prints why it skipped),
//! each rotord with votequorum as the provider, compared with Debian corosync 3.1.7 recorded
//! in the same kind of cluster (`tests/fixtures/quorumtool/`, `record.sh`):
//!
//! - three nodes: `rotor quorum -s`, `-p`, `-s -p`, `-l`, `-l -p`, `-s -H` byte for byte as
//!   corosync-quorumtool printed them (the Date and Ring ID values are the run's own), the
//!   `runtime.votequorum.*` keys as corosync-cmapctl listed them, corosync's refusals; then
//!   two nodes killed at once: node 1 alone prints the recorded "not quorate" texts and exits
//!   2, its `[QUORUM]` log lines are corosync's from start to end, and the quorum and
//!   votequorum client APIs saw every change in order;
//! - five nodes: a partition into 3 and 2 (nft on the switch), `rotor quorum -s` on every
//!   side (text and exit status), the heal, then nodes killed one by one until quorum is
//!   lost;
//! - two_node: either node alone stays quorate, as recorded.
//!
//! Hosts `eq1..3`, `eq5-1..5`, `eq2-1..2`; run under `flock /tmp/rotor-netns.lock`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rotor_client::cpg::Dispatch;
use rotor_client::quorum::{Model, Quorum, QuorumHandler, RingId, TRACK_CHANGES};
use rotor_client::quorumtool::name_info;
use rotor_client::votequorum::{self, Votequorum, VotequorumHandler};
use rotor_testbed::rotor::{rotord_command, write_authkey, Bins, Spec};
use rotor_testbed::{root_or_skip, Proc, TempDir, Testbed};

// Only `bin_dir` of the shared helpers is used here.
#[allow(dead_code)]
mod common;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quorumtool");
const RING_WAIT: Duration = Duration::from_secs(40);

/// The rotords of a testbed, by host, with their logs; a failing test prints every log.
struct Daemons(BTreeMap<usize, (Proc, Option<JoinHandle<String>>)>);

impl Daemons {
    fn start(&mut self, bed: &Testbed, bins: &Bins, i: usize, conf: &Path) {
        let mut p = bed.spawn(i, rotord_command(bins, conf)).unwrap();
        let log = p.collect_stderr();
        self.0.insert(i, (p, log));
    }

    /// The log of host `i`'s rotord so far is only available once it stops: SIGTERM it.
    fn stop(&mut self, i: usize) -> String {
        let Some((mut p, log)) = self.0.remove(&i) else {
            return String::new();
        };
        let _ = p.signal(libc::SIGTERM);
        if p.wait_timeout(Duration::from_secs(5))
            .ok()
            .flatten()
            .is_none()
        {
            let _ = p.kill();
        }
        log.and_then(|h| h.join().ok()).unwrap_or_default()
    }

    /// After `kill_host(i)`: the rotord is gone, its log is what it wrote.
    fn reap(&mut self, i: usize) -> String {
        self.stop(i)
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        let hosts: Vec<usize> = self.0.keys().copied().collect();
        let logs: Vec<(usize, String)> = hosts.into_iter().map(|i| (i, self.stop(i))).collect();
        if std::thread::panicking() {
            for (i, log) in logs {
                eprintln!("---- rotord on host {i}:\n{log}");
            }
        }
    }
}

fn run(bed: &Testbed, bins: &Bins, i: usize, args: &[&str]) -> Output {
    bed.command(i, bins.rotor())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rotor")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A recorded output and its exit status.
fn fixture(name: &str) -> (String, i32) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).expect("fixture");
    let (out, exit) = text.rsplit_once("exit=").expect("exit line");
    (out.to_owned(), exit.trim().parse().unwrap())
}

/// What getnameinfo makes of 198.18.0.I inside the host (the Name column resolves addresses
/// as corosync-quorumtool does): `None` where it fails, as it did where the fixtures were
/// recorded (no resolver reachable from the namespaces).
fn resolved_names(bed: &Testbed, hosts: usize) -> Vec<Option<String>> {
    bed.in_host(1, move || {
        (1..=hosts)
            .map(|i| name_info(IpAddr::V4(Ipv4Addr::new(198, 18, 0, i as u8)), false))
            .collect()
    })
}

/// The recorded text as this environment would print it: the Date and Ring ID lines are the
/// run's own (checked to have corosync's form), and where getnameinfo resolves an address
/// here, the recorded (empty) name is replaced by what it resolves to.
fn expected(recorded: &str, got: &str, names: &[Option<String>]) -> String {
    let line_of = |text: &str, prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    };
    let mut want = recorded.to_owned();
    if let (Some(r), Some(g)) = (
        line_of(recorded, "Date:             "),
        line_of(got, "Date:             "),
    ) {
        // ctime(3): "Sun Dec  6 15:25:09 2026".
        assert_eq!(g.len(), r.len(), "date line {g:?}");
        want = want.replace(&r, &g);
    }
    if let (Some(r), Some(g)) = (
        line_of(recorded, "Ring ID:          "),
        line_of(got, "Ring ID:          "),
    ) {
        let id = g.trim_start_matches("Ring ID:          ");
        let ok = id.split_once('.').is_some_and(|(a, b)| {
            u32::from_str_radix(a, 16).is_ok() && u64::from_str_radix(b, 16).is_ok()
        });
        assert!(ok, "ring id {id:?} is not corosync's %x.%llx");
        want = want.replace(&r, &g);
    }
    // Rows of the membership table: the name follows the padded columns.
    let mut out = String::new();
    let mut in_table = false;
    let mut columns = 0;
    for line in want.split_inclusive('\n') {
        if line.trim_start().starts_with("Nodeid") {
            in_table = true;
            columns = if line.contains("Qdevice") {
                3
            } else if line.contains("Votes") {
                2
            } else {
                1
            };
            out.push_str(line);
            continue;
        }
        if in_table && line.len() > columns * 11 {
            let (head, tail) = line.split_at(columns * 11);
            let id: usize = head.split_whitespace().next().unwrap().parse().unwrap_or(0);
            if let Some(Some(name)) = names.get(id.wrapping_sub(1)) {
                let rest = tail.trim_start_matches(|c: char| c != ' ' && c != '\n');
                out.push_str(head);
                out.push_str(name);
                out.push_str(rest);
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

/// `rotor quorum ARGS` on host `i` against the recording `name`: text and exit status.
fn compare(
    bed: &Testbed,
    bins: &Bins,
    i: usize,
    args: &[&str],
    name: &str,
    names: &[Option<String>],
) {
    let mut all = vec!["quorum"];
    all.extend_from_slice(args);
    let out = run(bed, bins, i, &all);
    let got = stdout(&out);
    let (recorded, exit) = fixture(name);
    assert_eq!(
        got,
        expected(&recorded, &got, names),
        "rotor quorum {args:?} on host {i} against {name}; stderr: {}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(exit), "{name}: {}", stderr(&out));
}

/// A cluster of `hosts` rotords with votequorum; `quorum` lines go into quorum{}.
fn conf(dir: &Path, name: &str, hosts: usize, quorum: &[&str]) -> std::path::PathBuf {
    let key = dir.join("authkey");
    if !key.exists() {
        write_authkey(&key).unwrap();
    }
    let mut spec = Spec::new(name);
    spec.totem.push(("token".into(), "500".into()));
    let mut q = String::from("quorum {\n  provider: corosync_votequorum\n");
    for l in quorum {
        q.push_str(&format!("  {l}\n"));
    }
    q.push_str("}\n");
    spec.extra = format!(
        "{q}system {{\n  state_dir: {}\n}}\n",
        dir.join(format!("state-{name}")).display()
    );
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, spec.corosync_conf(hosts, &key)).unwrap();
    path
}

/// What the quorum client API saw, as lines.
#[derive(Default)]
struct QuorumLog(Vec<String>);

impl QuorumHandler for QuorumLog {
    fn quorum(&mut self, quorate: bool, ring: RingId, members: &[u32]) {
        self.0.push(format!(
            "quorum {quorate} {:x}.{:x} {members:?}",
            ring.nodeid, ring.seq
        ));
    }
    fn nodelist(&mut self, ring: RingId, members: &[u32], joined: &[u32], left: &[u32]) {
        self.0.push(format!(
            "nodelist {:x}.{:x} {members:?} joined {joined:?} left {left:?}",
            ring.nodeid, ring.seq
        ));
    }
}

#[derive(Default)]
struct VotequorumLog(Vec<String>);

impl VotequorumHandler for VotequorumLog {
    fn quorum(&mut self, context: u64, quorate: bool, nodes: &[(u32, u32)]) {
        self.0.push(format!("{context} quorum {quorate} {nodes:?}"));
    }
    fn expected_votes(&mut self, context: u64, expected_votes: u32) {
        self.0.push(format!("{context} expected {expected_votes}"));
    }
    fn nodelist(&mut self, context: u64, ring: votequorum::RingId, nodes: &[u32]) {
        self.0.push(format!(
            "{context} nodelist {:x}.{:x} {nodes:?}",
            ring.nodeid, ring.seq
        ));
    }
}

/// `rotor quorum -s` on host `i` until it exits `code` (a sync may be under way).
fn wait_status(bed: &Testbed, bins: &Bins, i: usize, code: i32, what: &str) -> String {
    let deadline = Instant::now() + RING_WAIT;
    loop {
        let out = run(bed, bins, i, &["quorum", "-s"]);
        if out.status.code() == Some(code) {
            return stdout(&out);
        }
        assert!(
            Instant::now() < deadline,
            "host {i}: {what}: rotor quorum -s still exits {:?}:\n{}{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `[QUORUM]` and `[VOTEQ]` lines of a log, from the level on (no timestamp).
fn quorum_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let at = l.find("[QUORUM]").or_else(|| l.find("[VOTEQ ]"))?;
            // The level word and its padding come right before the tag: "notice  [QUORUM]".
            let start = l[..at].trim_end().rfind(' ').map_or(0, |s| s + 1);
            Some(l[start..].to_owned())
        })
        .collect()
}

#[test]
fn three_nodes_print_what_corosync_prints_and_lose_quorum_alone() {
    if !root_or_skip("network namespaces and nft for rotord with votequorum") {
        return;
    }
    let bins = Bins {
        dir: common::bin_dir(),
    };
    let dir = TempDir::new(&format!("rotor-e2e-quorum-{}", std::process::id())).unwrap();
    let conf = conf(dir.path(), "eq", 3, &[]);
    let bed = Testbed::up("eq", 3).expect("testbed");
    let mut daemons = Daemons(BTreeMap::new());
    // Node 1 first, alone (as corosync was recorded): its log starts with a ring of one.
    daemons.start(&bed, &bins, 1, &conf);
    bed.wait_rotor_ring(&[1], &[1], &bins, RING_WAIT).unwrap();
    // Nodes 2 and 3 join together, as they did in the recording: started one after the
    // other, a slow machine can let node 2 join alone first (a true log, but not the
    // recorded one). So they form their ring out of node 1's sight, and the two rings merge.
    partition(&bed, &[1], &[2, 3]);
    for i in 2..=3 {
        daemons.start(&bed, &bins, i, &conf);
    }
    bed.wait_rotor_ring(&[2, 3], &[2, 3], &bins, RING_WAIT)
        .unwrap();
    heal(&bed);
    bed.wait_rotor_ring(&[1, 2, 3], &[1, 2, 3], &bins, RING_WAIT)
        .unwrap();
    wait_status(&bed, &bins, 1, 0, "three nodes");

    // The client APIs on host 1, tracking every change.
    let (mut quorum, mut vq) = bed.in_host(1, || {
        let mut q = Quorum::model_initialize(Model::V1).expect("quorum attach");
        q.trackstart(TRACK_CHANGES).expect("quorum trackstart");
        let mut v = Votequorum::initialize().expect("votequorum attach");
        v.trackstart(7, votequorum::TRACK_CHANGES)
            .expect("votequorum trackstart");
        (q, v)
    });
    assert_eq!(quorum.quorum_type(), rotor_client::quorum::QUORUM_SET);
    assert!(quorum.getquorate().unwrap());
    let info = vq.getinfo(0).unwrap();
    assert_eq!(
        (
            info.node_id,
            info.node_expected_votes,
            info.total_votes,
            info.quorum
        ),
        (1, 3, 3, 2)
    );

    // The status texts, byte for byte.
    let names = resolved_names(&bed, 3);
    compare(&bed, &bins, 1, &["-s"], "three-s.txt", &names);
    compare(&bed, &bins, 1, &["-p"], "three-p.txt", &names);
    compare(&bed, &bins, 1, &["-s", "-p"], "three-sp.txt", &names);
    compare(&bed, &bins, 2, &["-l"], "three-l.txt", &names);
    compare(&bed, &bins, 2, &["-l", "-p"], "three-lp.txt", &names);
    compare(&bed, &bins, 3, &["-s", "-H"], "three-sH.txt", &names);
    compare(&bed, &bins, 3, &["-l", "-o", "i"], "three-loi.txt", &names);
    // -i: the addresses (no resolver involved).
    let out = run(&bed, &bins, 1, &["quorum", "-l", "-i"]);
    let (recorded, _) = fixture("names-li.txt");
    assert_eq!(stdout(&out), recorded);

    // runtime.votequorum.* as corosync-cmapctl listed them.
    let out = run(&bed, &bins, 1, &["cmap", "list", "runtime.votequorum."]);
    let recorded = std::fs::read_to_string(format!("{FIXTURES}/three-cmap-runtime.txt")).unwrap();
    assert_eq!(stdout(&out), recorded);

    // Refusals: corosync's messages and statuses (rotor adds why in parentheses).
    let out = run(&bed, &bins, 1, &["quorum", "-e", "0"]);
    let recorded = std::fs::read_to_string(format!("{FIXTURES}/three-e0.txt.stderr")).unwrap();
    assert_eq!((out.status.code(), stderr(&out)), (Some(1), recorded));
    let out = run(&bed, &bins, 1, &["quorum", "-e", "1"]);
    let recorded = std::fs::read_to_string(format!("{FIXTURES}/three-e1.txt.stderr")).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(recorded.trim_end()),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("lower than the 3 votes present"),
        "{}",
        stderr(&out)
    );
    let out = run(&bed, &bins, 1, &["quorum", "-v", "2", "-n", "9"]);
    let recorded = std::fs::read_to_string(format!("{FIXTURES}/three-v2.txt.stderr")).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(recorded.trim_end()),
        "{}",
        stderr(&out)
    );

    // Nodes 2 and 3 die at once: node 1 alone is not quorate.
    bed.kill_host(2);
    bed.kill_host(3);
    daemons.reap(2);
    daemons.reap(3);
    bed.wait_rotor_ring(&[1], &[1], &bins, RING_WAIT).unwrap();
    wait_status(&bed, &bins, 1, 2, "alone");
    compare(&bed, &bins, 1, &["-s"], "alone-s.txt", &names);
    compare(&bed, &bins, 1, &["-p"], "alone-p.txt", &names);
    compare(&bed, &bins, 1, &["-l"], "alone-l.txt", &names);
    let out = run(&bed, &bins, 1, &["cmap", "list", "runtime.votequorum."]);
    let recorded = std::fs::read_to_string(format!("{FIXTURES}/alone-cmap-runtime.txt")).unwrap();
    assert_eq!(stdout(&out), recorded);

    // The client APIs saw it all, in order.
    let mut qlog = QuorumLog::default();
    let mut vlog = VotequorumLog::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !qlog.0.last().is_some_and(|l| l.starts_with("quorum false"))
        || !vlog
            .0
            .last()
            .is_some_and(|l| l.starts_with("7 quorum false"))
    {
        assert!(
            Instant::now() < deadline,
            "notifications: {:?} / {:?}",
            qlog.0,
            vlog.0
        );
        quorum
            .dispatch(Dispatch::Blocking(Duration::from_millis(200)), &mut qlog)
            .unwrap();
        vq.dispatch(Dispatch::Blocking(Duration::from_millis(200)), &mut vlog)
            .unwrap();
    }
    // Quorum: the current state, then the sync of node 1 alone (who left) and the loss.
    let q = &qlog.0;
    assert!(
        q[0].starts_with("nodelist ") && q[0].contains("[1, 2, 3] joined [] left []"),
        "{q:?}"
    );
    assert!(
        q[1].starts_with("quorum true ") && q[1].ends_with("[1, 2, 3]"),
        "{q:?}"
    );
    let n = q.len();
    assert!(
        q[n - 2].starts_with("nodelist ") && q[n - 2].contains("[1] joined [] left [2, 3]"),
        "{q:?}"
    );
    assert!(
        q[n - 1].starts_with("quorum false ") && q[n - 1].ends_with("[1]"),
        "{q:?}"
    );
    // The ring of the last notification is the ring the nodelist named.
    assert_eq!(
        q[n - 2].split(' ').nth(1),
        q[n - 1].split(' ').nth(2),
        "{q:?}"
    );
    let v = &vlog.0;
    assert!(
        v[0].starts_with("7 nodelist ") && v[0].ends_with("[1, 2, 3]"),
        "{v:?}"
    );
    assert_eq!(v[1], "7 quorum true [(1, 1), (2, 1), (3, 1)]", "{v:?}");
    assert_eq!(
        v.last().unwrap(),
        "7 quorum false [(1, 1), (2, 2), (3, 2)]",
        "{v:?}"
    );

    // Node 1's [QUORUM] lines: corosync's, from its start to the end.
    let log = daemons.stop(1);
    let recorded = std::fs::read_to_string(format!("{FIXTURES}/three-then-alone-log.txt")).unwrap();
    let want: Vec<&str> = recorded.lines().collect();
    assert_eq!(quorum_lines(&log), want, "{log}");
}

/// The nft table that cuts hosts `a` off from hosts `b` (both ways) on the switch.
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
        let out = Command::new("ip")
            .args(["netns", "exec", &bed.switch(), "nft"])
            .arg(&rule)
            .output()
            .unwrap();
        assert!(out.status.success(), "nft {rule}: {}", stderr(&out));
    }
}

fn heal(bed: &Testbed) {
    let out = bed
        .exec_switch(&["nft", "delete", "table", "bridge", "rotor_part"])
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn five_nodes_split_heal_and_lose_quorum_one_by_one() {
    if !root_or_skip("network namespaces and nft for rotord with votequorum") {
        return;
    }
    let bins = Bins {
        dir: common::bin_dir(),
    };
    let dir = TempDir::new(&format!("rotor-e2e-quorum5-{}", std::process::id())).unwrap();
    let conf = conf(dir.path(), "eq5-", 5, &[]);
    let bed = Testbed::up("eq5-", 5).expect("testbed");
    let mut daemons = Daemons(BTreeMap::new());
    for i in 1..=5 {
        daemons.start(&bed, &bins, i, &conf);
    }
    let all = [1, 2, 3, 4, 5];
    bed.wait_rotor_ring(&all, &[1, 2, 3, 4, 5], &bins, RING_WAIT)
        .unwrap();
    for i in all {
        wait_status(&bed, &bins, i, 0, "five nodes");
    }

    // Three and two: the majority runs, the minority blocks, on every node of each side.
    partition(&bed, &[1, 2, 3], &[4, 5]);
    bed.wait_rotor_ring(&[1, 2, 3], &[1, 2, 3], &bins, RING_WAIT)
        .unwrap();
    bed.wait_rotor_ring(&[4, 5], &[4, 5], &bins, RING_WAIT)
        .unwrap();
    for i in 1..=3 {
        let s = wait_status(&bed, &bins, i, 0, "majority side");
        for line in [
            "Nodes:            3\n",
            "Quorate:          Yes\n",
            "Expected votes:   5\n",
            "Total votes:      3\n",
            "Quorum:           3  \n",
            "Flags:            Quorate \n",
        ] {
            assert!(s.contains(line), "host {i}: {line:?} in\n{s}");
        }
    }
    for i in 4..=5 {
        let s = wait_status(&bed, &bins, i, 2, "minority side");
        for line in [
            "Nodes:            2\n",
            "Quorate:          No\n",
            "Total votes:      2\n",
            "Quorum:           3 Activity blocked\n",
            "Flags:            \n",
        ] {
            assert!(s.contains(line), "host {i}: {line:?} in\n{s}");
        }
    }
    heal(&bed);
    bed.wait_rotor_ring(&all, &[1, 2, 3, 4, 5], &bins, RING_WAIT)
        .unwrap();
    for i in all {
        wait_status(&bed, &bins, i, 0, "healed");
    }

    // Nodes die one by one: quorate down to 3 of 5, not at 2.
    for (gone, left, code) in [(5, 4, 0), (4, 3, 0), (3, 2, 2)] {
        bed.kill_host(gone);
        daemons.reap(gone);
        let members: Vec<u32> = (1..=left as u32).collect();
        let hosts: Vec<usize> = (1..=left).collect();
        bed.wait_rotor_ring(&hosts, &members, &bins, RING_WAIT)
            .unwrap();
        for i in hosts {
            let s = wait_status(&bed, &bins, i, code, "after a node died");
            assert!(s.contains(&format!("Nodes:            {left}\n")), "{s}");
            assert!(s.contains(&format!("Total votes:      {left}\n")), "{s}");
        }
    }
    // The survivors logged the loss as corosync does.
    let log = daemons.stop(1);
    let lines = quorum_lines(&log);
    let tail: Vec<&str> = lines
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "notice  [QUORUM] Sync members[2]: 1 2",
            "notice  [QUORUM] Sync left[1]: 3",
            "notice  [QUORUM] This node is within the non-primary component and will NOT \
             provide any services.",
            "notice  [QUORUM] Members[2]: 1 2",
        ],
        "{log}"
    );
}

#[test]
fn two_node_keeps_a_node_alone_quorate() {
    if !root_or_skip("network namespaces for rotord with two_node") {
        return;
    }
    let bins = Bins {
        dir: common::bin_dir(),
    };
    let dir = TempDir::new(&format!("rotor-e2e-quorum2-{}", std::process::id())).unwrap();
    let conf = conf(dir.path(), "eq2-", 2, &["two_node: 1"]);
    let bed = Testbed::up("eq2-", 2).expect("testbed");
    let mut daemons = Daemons(BTreeMap::new());
    for i in 1..=2 {
        daemons.start(&bed, &bins, i, &conf);
    }
    bed.wait_rotor_ring(&[1, 2], &[1, 2], &bins, RING_WAIT)
        .unwrap();
    wait_status(&bed, &bins, 1, 0, "two nodes");
    let names = resolved_names(&bed, 2);
    compare(&bed, &bins, 1, &["-s"], "two-s.txt", &names);
    bed.kill_host(2);
    daemons.reap(2);
    bed.wait_rotor_ring(&[1], &[1], &bins, RING_WAIT).unwrap();
    wait_status(&bed, &bins, 1, 0, "one of two");
    compare(&bed, &bins, 1, &["-s"], "two-alone-s.txt", &names);
    compare(&bed, &bins, 1, &["-p"], "two-alone-p.txt", &names);
}
