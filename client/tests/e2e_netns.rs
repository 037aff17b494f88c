//! End to end on network-namespace hosts (root; otherwise it prints why it skipped): three
//! `rotord` on rotor-testbed hosts e2e1..e2e3 (198.18.0.1-3), each with its dataplane on the
//! default transport (XDP when the host allows it). CPG handles on every node in two groups
//! exchange messages in both guarantees and every member delivers the same sequence; a
//! separate process killed with SIGKILL shows as "process down"; a node killed with SIGKILL
//! (dataplane and rotord) shows as "node down" in every group and the survivors carry on; a
//! client whose uid is not allowed is refused with a clear message, an allowed one is served;
//! `rotor status`, `rotor cmap` and `rotor cpg` print what they should; a busy ring's
//! dataplanes leave their clients' requests for the token's visit
//! (`stats.ipc.requests_left_for_token`) and lose none; a dataplane killed
//! under its rotord is restarted and the node rejoins in a higher-numbered ring.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::daemons::Daemons;
use common::{pump, send, Seen};
use rotor_client::cpg::{Cpg, Dispatch, Guarantee, Member, Reason};
use rotor_testbed::rotor::{write_authkey, Bins, Spec};
use rotor_testbed::{cap_masks, root_or_skip, TempDir, Testbed};

mod common;

/// A uid the config allows and one it does not (neither needs to exist in /etc/passwd).
const UID_ALLOWED: u32 = 4242;
const UID_REFUSED: u32 = 65534;
const GROUPS: [&str; 2] = ["alpha", "beta"];
const ROUNDS: usize = 20;

const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_NET_RAW: u64 = 1 << 13;
const CAP_SYS_MODULE: u64 = 1 << 16;
const CAP_IPC_LOCK: u64 = 1 << 14;
const CAP_PERFMON: u64 = 1 << 38;
const CAP_BPF: u64 = 1 << 39;

/// `rotor ARGS` on host `i`, run as `uid` when given (through setpriv, after entering the
/// namespace as root).
fn rotor(bed: &Testbed, bins: &Bins, i: usize, uid: Option<u32>, args: &[&str]) -> Output {
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = bed.command(i, "setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(bins.rotor());
            c
        }
        None => bed.command(i, bins.rotor()),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rotor")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Copies the `rotor` binary into `dir` (mode 0755) so a non-root uid can run it whatever the
/// permissions of the build directory are.
fn world_runnable(bins: &Bins, dir: &Path) -> Bins {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("mkdir");
    let to = dir.join("rotor");
    std::fs::copy(bins.rotor(), &to).expect("copy rotor");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    Bins {
        dir: dir.to_path_buf(),
    }
}

#[test]
fn three_rotords_on_netns_hosts() {
    if !root_or_skip("network namespaces for rotord on testbed hosts") {
        return;
    }
    let bins = Bins {
        dir: common::bin_dir(),
    };
    let dir = TempDir::new(&format!("rotor-e2e-netns-{}", std::process::id())).unwrap();
    let key = dir.path().join("authkey");
    write_authkey(&key).unwrap();
    let mut spec = Spec::new("e2e-netns");
    // A short token so the node-down is seen quickly (consensus follows at 1.2 × token).
    spec.totem.push(("token".into(), "500".into()));
    let state = dir.path().join("state");
    spec.extra = format!(
        "uidgid {{\n  uid: {UID_ALLOWED}\n}}\nsystem {{\n  state_dir: {}\n}}\n",
        state.display()
    );
    let conf = dir.path().join("corosync.conf");
    std::fs::write(&conf, spec.corosync_conf(3, &key)).unwrap();

    let bed = Testbed::up("e2e", 3).expect("testbed");
    let mut daemons = Daemons::start(&bed, &bins, &conf);
    bed.wait_rotor_ring(&[1, 2, 3], &[1, 2, 3], &bins, Duration::from_secs(30))
        .unwrap();

    // Privileges after set-up: rotord, which attached the XDP program, holds only what
    // detaching it and attaching one for a link a reload adds take (NET_ADMIN, BPF, PERFMON);
    // its bounding set, which the dataplane it starts inherits, keeps what AF_XDP needs
    // (NET_RAW) but neither NET_ADMIN nor anything like CAP_SYS_MODULE; the running dataplane,
    // which loaded no program, keeps only what opening such a link's AF_XDP socket takes
    // (NET_RAW, IPC_LOCK; BPF too on kernels that want it to read the counters map).
    let owner = CAP_NET_ADMIN | CAP_BPF | CAP_PERFMON;
    let rotord_caps = cap_masks(daemons.0[0].0.pid() as i32).unwrap();
    assert_eq!(
        (rotord_caps.0, rotord_caps.1),
        (owner, owner),
        "rotord CapEff/CapPrm"
    );
    assert!(
        rotord_caps.2 & CAP_NET_RAW != 0 && rotord_caps.2 & (CAP_NET_ADMIN | CAP_SYS_MODULE) == 0,
        "rotord CapBnd {:x}",
        rotord_caps.2
    );
    let dataplane = bed
        .processes(1)
        .into_iter()
        .find(|(_, comm)| comm == "rotor-dataplane")
        .expect("a dataplane on host 1")
        .0;
    let dp_caps = cap_masks(dataplane).unwrap();
    let opener = CAP_NET_RAW | CAP_IPC_LOCK;
    assert_eq!(
        dp_caps.0 & !CAP_BPF,
        opener,
        "dataplane CapEff {:x}",
        dp_caps.0
    );
    assert_eq!(
        dp_caps.1 & !CAP_BPF,
        opener,
        "dataplane CapPrm {:x}",
        dp_caps.1
    );

    // The rotor command on a node.
    let status = bed.rotor_status(1, &bins).unwrap();
    eprintln!("e2e_netns: ring formed on transport {}", status.transport);
    // The links are connected once their pings are answered (knet_pong_count in a row),
    // which may be after the ring formed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = rotor(&bed, &bins, 1, None, &["status"]);
        let s = text(&out);
        assert!(out.status.success(), "{s}");
        assert!(s.starts_with("Local node ID 1, transport "), "{s}");
        assert!(s.contains("\taddr\t= 198.18.0.1\n"), "{s}");
        if s.contains("2:\tconnected") && s.contains("3:\tconnected") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "links never connected:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = rotor(&bed, &bins, 2, None, &["cmap", "get", "totem.cluster_name"]);
    assert_eq!(text(&out).trim(), "totem.cluster_name (str) = e2e-netns");
    let out = rotor(
        &bed,
        &bins,
        2,
        None,
        &["cmap", "get", "runtime.totem.pg.mrp.srp.members.3.ip"],
    );
    assert_eq!(
        text(&out).trim(),
        "runtime.totem.pg.mrp.srp.members.3.ip (str) = 198.18.0.3"
    );

    // Who may attach: root, the configured uid; not another.
    let plain = world_runnable(&bins, &dir.path().join("bin"));
    let out = rotor(&bed, &plain, 1, Some(UID_REFUSED), &["status"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("permission denied for uid {UID_REFUSED}")),
        "{}",
        text(&out)
    );
    let out = rotor(
        &bed,
        &plain,
        1,
        Some(UID_ALLOWED),
        &["cmap", "get", "totem.cluster_name"],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Two groups on every node; handles attach from a thread inside each host.
    let mut handles: Vec<(Cpg, Seen)> = Vec::new();
    for i in 1..=3 {
        for g in GROUPS {
            let c = bed.in_host(i, move || -> Cpg {
                let mut c = Cpg::initialize().expect("cpg attach");
                c.join(g.as_bytes()).expect("join");
                c
            });
            assert_eq!(c.local_node_id(), i as u32);
            handles.push((c, Seen::default()));
        }
    }
    pump(
        &mut handles,
        Duration::from_secs(20),
        "3 members per group",
        |h| h.iter().all(|(_, s)| s.members.len() >= 3),
    );
    let marks: Vec<usize> = handles.iter().map(|(_, s)| s.events.len()).collect();
    for round in 0..ROUNDS {
        for (k, (c, s)) in handles.iter_mut().enumerate() {
            let g = if round % 2 == 0 {
                Guarantee::Agreed
            } else {
                Guarantee::Safe
            };
            send(c, s, g, &format!("h{k} r{round}"));
        }
    }

    // A separate process joins alpha on node 2 and dies by SIGKILL: a process-down.
    let mut bench = bed
        .spawn(2, {
            let mut c = Command::new(bins.rotor());
            c.args(["bench", "tput", "-g", "alpha", "-m", "99", "-t", "60"]);
            c
        })
        .unwrap();
    let alpha = |k: usize| k % 2 == 0;
    pump(
        &mut handles,
        Duration::from_secs(20),
        "the bench process joining alpha",
        |h| {
            h.iter()
                .enumerate()
                .all(|(k, (_, s))| !alpha(k) || s.members.len() >= 4)
        },
    );
    let out = rotor(&bed, &bins, 3, None, &["cpg"]);
    let listing = text(&out);
    assert!(
        listing.contains("alpha") && listing.contains("beta"),
        "{listing}"
    );
    // `ip netns exec` replaces itself with the command, so the child's pid is rotor's.
    let victim = Member {
        node: 2,
        pid: bench.pid(),
    };
    assert!(
        listing.contains(&format!("\t{:>10}\t         2 (198.18.0.2)", victim.pid)),
        "{listing}"
    );
    let out = rotor(&bed, &bins, 3, None, &["cpg", "-d", ";"]);
    assert!(
        text(&out).contains(&format!("alpha;{};2\n", victim.pid)),
        "{}",
        text(&out)
    );
    bench.kill().unwrap();
    let per_group = 3 * ROUNDS;
    pump(
        &mut handles,
        Duration::from_secs(20),
        "every delivery and the process-down",
        |h| {
            h.iter().enumerate().all(|(k, (_, s))| {
                s.delivered >= per_group
                    && (!alpha(k) || s.left.contains(&(victim, Reason::ProcDown)))
            })
        },
    );
    // While the ring carried those rounds its token came back to each node unasked, and the
    // dataplanes slept through their clients' requests until its visit took them (every one
    // delivered, in one order, below) instead of waking for each.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = bed.cmap_u64(1, &bins.rotor(), "stats.ipc.requests_left_for_token");
        if left.unwrap_or(0) > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 1 never left a request for the token: stats.ipc.requests_left_for_token {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (k, (_, s)) in handles.iter().enumerate().skip(2) {
        let first = &handles[k % 2].1.events[marks[k % 2]..];
        assert_eq!(
            &s.events[marks[k]..],
            first,
            "handle {k} (node {}, group {}) saw another sequence",
            k / 2 + 1,
            GROUPS[k % 2]
        );
    }

    // Node 3 crashes: node down in both groups on the survivors, who keep going.
    let killed = bed.kill_host(3);
    assert!(killed >= 2, "rotord and its dataplane on host 3 ({killed})");
    let (survivors, gone) = handles.split_at_mut(4);
    let marks: Vec<usize> = survivors.iter().map(|(_, s)| s.events.len()).collect();
    pump(
        survivors,
        Duration::from_secs(20),
        "node 3's node-down",
        |h| {
            h.iter().all(|(_, s)| {
                s.left
                    .iter()
                    .any(|(m, r)| m.node == 3 && *r == Reason::NodeDown)
                    && s.members.iter().all(|m| m.node != 3)
            })
        },
    );
    bed.wait_rotor_ring(&[1, 2], &[1, 2], &bins, Duration::from_secs(10))
        .unwrap();
    for (k, (c, s)) in survivors.iter_mut().enumerate() {
        send(c, s, Guarantee::Agreed, &format!("after h{k}"));
    }
    pump(
        survivors,
        Duration::from_secs(20),
        "messages after the crash",
        |h| {
            h.iter()
                .all(|(_, s)| s.events.iter().filter(|e| e.contains("after ")).count() >= 2)
        },
    );
    for k in 2..4 {
        assert_eq!(
            survivors[k].1.events[marks[k]..],
            survivors[k % 2].1.events[marks[k % 2]..],
            "survivor handle {k} saw another sequence after the crash"
        );
    }
    // Node 3's handles learn that their node is gone (an error, not a hang).
    for (c, s) in gone.iter_mut() {
        let mut failed = false;
        for _ in 0..100 {
            if c.dispatch(Dispatch::Blocking(Duration::from_millis(20)), s)
                .is_err()
            {
                failed = true;
                break;
            }
        }
        assert!(failed, "a handle on the killed node never saw an error");
    }

    // Node 2's dataplane dies: rotord logs why, restarts it, and node 2 rejoins in a ring
    // numbered above every ring it was in (the sequence kept in system.state_dir).
    let kept = |i: usize| -> u64 {
        std::fs::read_to_string(state.join(format!("ringid_{i}")))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let before = bed.rotor_status(2, &bins).unwrap();
    let seq_before = u64::from_str_radix(before.ring.split('.').nth(1).unwrap(), 16).unwrap();
    assert!(kept(2) >= seq_before, "ringid_2 {} < {seq_before}", kept(2));
    let dataplanes: Vec<i32> = bed
        .processes(2)
        .into_iter()
        .filter(|(_, comm)| comm == "rotor-dataplane")
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(dataplanes.len(), 1, "{:?}", bed.processes(2));
    // Safety: kill(2) on the dataplane rotord started in our test host.
    unsafe { libc::kill(dataplanes[0], libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let after = loop {
        let s = bed.rotor_status(2, &bins).unwrap();
        if s.ring != before.ring && s.state == "operational" && s.connected == [1, 2] {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 did not rejoin after its dataplane died: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let seq_after = u64::from_str_radix(after.ring.split('.').nth(1).unwrap(), 16).unwrap();
    assert!(
        seq_after > seq_before,
        "ring {} after {}",
        after.ring,
        before.ring
    );
    let logs = daemons.stop();
    assert!(
        logs[1].contains(&format!(
            "dataplane (pid {}) was killed by signal 9",
            dataplanes[0]
        )) && logs[1].contains("restarting it"),
        "{}",
        logs[1]
    );
}
