//! rotord owns the XDP program (root; otherwise prints "skipped: …"): three `rotord` on
//! rotor-testbed hosts `xl-1..3` (two with `transport: xdp`, one with corosync's `knet`, which
//! rotord runs as XDP when it can). Each rotord attaches the program to its host's `eth0`
//! itself, the ring forms over AF_XDP (cluster frames redirected by the program), rotord keeps
//! only NET_ADMIN, BPF and PERFMON (to detach its program, and attach one for a link a reload
//! adds) and its dataplane none of them but NET_RAW and IPC_LOCK (to open such a link's socket); a SIGKILLed dataplane is restarted
//! and rejoins while the same program stays attached and ping keeps working throughout; a
//! rotord killed with SIGKILL leaves its program behind and the next rotord replaces it; a
//! SIGTERMed rotord detaches its program. Every wait is bounded; the testbed's drop kills
//! whatever is left in its namespaces and deletes them (and their veths, programs included).

use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rotor_testbed::rotor::{cargo_build, rotord_command, write_authkey, Bins, Spec};
use rotor_testbed::{cap_masks, root_or_skip, Proc, TempDir, Testbed};

const HOSTS: usize = 3;
const MEMBERS: [u32; 3] = [1, 2, 3];
const RING_WAIT: Duration = Duration::from_secs(15);

const CAP_NET_RAW: u64 = 1 << 13;
const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_SYS_MODULE: u64 = 1 << 16;
const CAP_IPC_LOCK: u64 = 1 << 14;
const CAP_PERFMON: u64 = 1 << 38;
const CAP_BPF: u64 = 1 << 39;

/// The directory of `rotord` (this package's binary), after building `rotor-dataplane` and
/// `rotor` beside it (`cargo test -p rotor-control` builds neither; a no-op when current).
fn bins() -> Bins {
    cargo_build().unwrap();
    Bins {
        dir: Path::new(env!("CARGO_BIN_EXE_rotord"))
            .parent()
            .expect("rotord sits in a directory")
            .to_path_buf(),
    }
}

/// One rotord per host (index = host − 1) and its collected log.
struct Daemons(Vec<Option<(Proc, Option<JoinHandle<String>>)>>);

impl Daemons {
    fn start(&mut self, bed: &Testbed, bins: &Bins, host: usize, conf: &Path) {
        let mut p = bed.spawn(host, rotord_command(bins, conf)).expect("rotord");
        let log = p.collect_stderr();
        self.0[host - 1] = Some((p, log));
    }

    fn pid(&self, host: usize) -> i32 {
        self.0[host - 1].as_ref().expect("rotord running").0.pid() as i32
    }

    /// SIGTERM to host's rotord, at most 5 s to exit (then SIGKILL): (exited by itself
    /// successfully, its log).
    fn stop(&mut self, host: usize) -> (bool, String) {
        let Some((mut p, log)) = self.0[host - 1].take() else {
            return (false, String::new());
        };
        let _ = p.signal(libc::SIGTERM);
        let clean = match p.wait_timeout(Duration::from_secs(5)) {
            Ok(Some(status)) => status.success(),
            _ => {
                let _ = p.kill();
                false
            }
        };
        let log = log
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (clean, log)
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for host in 1..=self.0.len() {
            let (_, log) = self.stop(host);
            if std::thread::panicking() && !log.is_empty() {
                eprintln!("---- rotord on host {host}:\n{log}");
            }
        }
    }
}

/// The XDP program on host `i`'s eth0 as `ip -d link` shows it: (id, name), or None.
fn xdp_prog(bed: &Testbed, i: usize) -> Option<(u32, String)> {
    xdp_prog_on(bed, i, "eth0")
}

/// The XDP program on host `i`'s interface `dev`, as [`xdp_prog`].
fn xdp_prog_on(bed: &Testbed, i: usize, dev: &str) -> Option<(u32, String)> {
    let out = bed
        .exec(i, &["ip", "-d", "link", "show", "dev", dev])
        .expect("ip link");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("prog/xdp"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|k| words.get(k + 1))
    };
    Some((after("id")?.parse().ok()?, after("name")?.to_string()))
}

fn dataplane_pid(bed: &Testbed, i: usize) -> Option<i32> {
    bed.processes(i)
        .into_iter()
        .find(|(_, comm)| comm == "rotor-dataplane")
        .map(|(pid, _)| pid)
}

/// The scheduling policy of process `pid` (its main thread).
fn sched_policy(pid: i32) -> i32 {
    // Safety: sched_getscheduler only reads the policy of the given process.
    unsafe { libc::sched_getscheduler(pid) }
}

/// The (policy, realtime priority) of `pid`'s main thread.
fn sched_of(pid: i32) -> (i32, i32) {
    let mut param = libc::sched_param { sched_priority: -1 };
    // Safety: sched_getparam writes the sched_param we own.
    assert_eq!(unsafe { libc::sched_getparam(pid, &mut param) }, 0);
    (sched_policy(pid), param.sched_priority)
}

/// A u64 cmap key on host `i`, if set.
fn cmap_u64(bed: &Testbed, bins: &Bins, i: usize, key: &str) -> Option<u64> {
    bed.cmap_u64(i, &bins.rotor(), key)
}

/// A temporary directory (`rotor-<tag>-<pid>`) with a fresh authkey in it, and a cluster
/// `name` on `transport: xdp` with a 300 ms token and its state directory in there.
fn xdp_cluster(tag: &str, name: &str) -> (TempDir, std::path::PathBuf, Spec) {
    let dir = TempDir::new(&format!("rotor-{tag}-{}", std::process::id())).unwrap();
    let key = dir.path().join("authkey");
    write_authkey(&key).unwrap();
    let mut spec = Spec::new(name);
    spec.transport = "xdp".into();
    spec.totem.push(("token".into(), "300".into()));
    spec.extra = format!(
        "system {{\n  state_dir: {}\n}}\n",
        dir.path().join("state").display()
    );
    (dir, key, spec)
}

/// Host `i` takes `stranger` (outside the nodelist) as a second address on `dev` and sends
/// `count` datagrams from it to `to`.
fn send_from_stranger(bed: &Testbed, i: usize, dev: &str, stranger: &str, to: &str, count: u64) {
    let with_prefix = format!("{stranger}/24");
    let out = bed
        .exec(i, &["ip", "addr", "add", &with_prefix, "dev", dev])
        .unwrap();
    assert!(out.status.success());
    let (stranger, to) = (stranger.to_owned(), to.to_owned());
    rotor_testbed::in_netns(&bed.host(i), move || {
        let socket = std::net::UdpSocket::bind((stranger.as_str(), 0)).unwrap();
        for _ in 0..count {
            socket.send_to(b"not a member", to.as_str()).unwrap();
        }
    });
}

/// Writes `text` over `conf` (every host's) and has host 1 ask for a reload, which must apply.
fn reload_to(bed: &Testbed, bins: &Bins, conf: &Path, text: String) {
    std::fs::write(conf, text).unwrap();
    let (code, out, err) = rotor_on(bed, bins, 1, &["cfg", "-R"]);
    assert_eq!(code, 0, "rotor cfg -R: {out}{err}");
}

/// Waits (bounded) until `check` holds, failing with `what`.
fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rotord_attaches_keeps_and_detaches_its_xdp_program() {
    if !root_or_skip("network namespaces and XDP for rotord's program") {
        return;
    }
    let bins = bins();
    let started = Instant::now();
    let dir = TempDir::new(&format!("rotor-xl-{}", std::process::id())).unwrap();
    let key = dir.path().join("authkey");
    write_authkey(&key).unwrap();
    let mut spec = Spec::new("xdp-load");
    spec.totem.push(("token".into(), "300".into()));
    spec.extra = format!(
        "system {{\n  state_dir: {}\n}}\n",
        dir.path().join("state").display()
    );
    spec.transport = "xdp".into();
    let conf_xdp = dir.path().join("xdp.conf");
    std::fs::write(&conf_xdp, spec.corosync_conf(HOSTS, &key)).unwrap();
    spec.transport = "knet".into();
    let conf_auto = dir.path().join("auto.conf");
    std::fs::write(&conf_auto, spec.corosync_conf(HOSTS, &key)).unwrap();
    let conf = |i: usize| if i == 3 { &conf_auto } else { &conf_xdp };

    let bed = Testbed::up("xl-", HOSTS).expect("testbed");
    let mut daemons = Daemons((0..HOSTS).map(|_| None).collect());
    for i in 1..=HOSTS {
        daemons.start(&bed, &bins, i, conf(i));
    }
    bed.wait_rotor_ring(&[1, 2, 3], &MEMBERS, &bins, RING_WAIT)
        .unwrap();

    // Every rotord attached rotor's program to its eth0; the ring runs over AF_XDP.
    let mut progs = Vec::new();
    for i in 1..=HOSTS {
        let (id, name) = xdp_prog(&bed, i).unwrap_or_else(|| panic!("no XDP on host {i}"));
        assert_eq!(name, "rotor_steer", "host {i}");
        assert_eq!(bed.rotor_status(i, &bins).unwrap().transport, "xdp");
        progs.push(id);
    }
    wait_for(
        Duration::from_secs(3),
        "cluster frames redirected by rotord's program, counted by the dataplane",
        || {
            cmap_u64(&bed, &bins, 1, "stats.xdp.prog.redirected").unwrap_or(0) > 0
                && cmap_u64(&bed, &bins, 1, "stats.xdp.frames_in").unwrap_or(0) > 0
        },
    );

    // Privileges: rotord keeps exactly what detaching its program and attaching one for a
    // link a reload adds take; its bounding set (the dataplane's at exec) has AF_XDP's but not
    // NET_ADMIN; the dataplane, which loaded nothing, keeps what opening an added link's
    // AF_XDP socket takes (and BPF only where the kernel wants it to read the counters).
    let owner = CAP_NET_ADMIN | CAP_BPF | CAP_PERFMON;
    let (eff, prm, bnd) = cap_masks(daemons.pid(1)).unwrap();
    assert_eq!((eff, prm), (owner, owner));
    assert!(bnd & CAP_NET_RAW != 0 && bnd & (CAP_NET_ADMIN | CAP_SYS_MODULE) == 0);
    let dataplane = dataplane_pid(&bed, 1).expect("a dataplane on host 1");
    let (eff, prm, _) = cap_masks(dataplane).unwrap();
    let opener = CAP_NET_RAW | CAP_IPC_LOCK;
    assert_eq!(eff & !CAP_BPF, opener, "dataplane CapEff {eff:x}");
    assert_eq!(prm & !CAP_BPF, opener, "dataplane CapPrm {prm:x}");
    // system.sched_rr (corosync's default yes): rotord takes round-robin realtime scheduling
    // one below the highest priority before it starts the dataplane, which keeps the class (it
    // does not busy-poll here: unpinned) and raises itself to the highest, above rotord.
    // Safety: sched_get_priority_max has no preconditions.
    let top = unsafe { libc::sched_get_priority_max(libc::SCHED_RR) };
    assert_eq!(
        sched_of(daemons.pid(1)),
        (libc::SCHED_RR, top - 1),
        "rotord"
    );
    assert_eq!(sched_of(dataplane), (libc::SCHED_RR, top), "dataplane");

    // Host 1's dataplane dies: rotord restarts it on the same program; ping from host 2
    // (XDP_PASS all along) loses nothing meanwhile.
    let before = bed.rotor_status(1, &bins).unwrap();
    let mut ping = bed
        .spawn(2, {
            let mut c = Command::new("ping");
            c.args([
                "-n",
                "-q",
                "-c",
                "60",
                "-i",
                "0.05",
                "-W",
                "1",
                "198.18.0.1",
            ]);
            c
        })
        .expect("ping");
    let ping_out = ping.take_stdout();
    // Safety: kill(2) on the dataplane our rotord started in our test host.
    assert_eq!(unsafe { libc::kill(dataplane, libc::SIGKILL) }, 0);
    wait_for(Duration::from_secs(2), "the dataplane gone", || {
        dataplane_pid(&bed, 1).is_none_or(|p| p != dataplane)
    });
    assert_eq!(xdp_prog(&bed, 1).map(|p| p.0), Some(progs[0]));
    wait_for(RING_WAIT, "host 1 back in a new ring of 3", || {
        bed.rotor_status(1, &bins).is_ok_and(|s| {
            s.ring != before.ring && s.state == "operational" && s.connected == MEMBERS
        })
    });
    let restarted = dataplane_pid(&bed, 1).expect("a dataplane on host 1 again");
    assert_ne!(restarted, dataplane);
    assert_eq!(
        sched_of(restarted),
        (libc::SCHED_RR, top),
        "a dataplane rotord restarts (with rotord's privileges dropped) is scheduled as the first"
    );
    assert_eq!(
        xdp_prog(&bed, 1).map(|p| p.0),
        Some(progs[0]),
        "the program stays attached across a dataplane restart"
    );
    let status = ping
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("ping finished");
    let mut summary = String::new();
    if let Some(mut out) = ping_out {
        let _ = std::io::Read::read_to_string(&mut out, &mut summary);
    }
    assert!(
        status.success() && summary.contains("60 received"),
        "ping during the restart: {summary}"
    );

    // Host 3's rotord crashes: its program stays behind and the next rotord replaces it.
    assert!(bed.kill_host(3) >= 2);
    let (_, _) = daemons.stop(3);
    assert_eq!(xdp_prog(&bed, 3).map(|p| p.0), Some(progs[2]));
    daemons.start(&bed, &bins, 3, conf(3));
    bed.wait_rotor_ring(&[1, 2, 3], &MEMBERS, &bins, RING_WAIT)
        .unwrap();
    let replaced = xdp_prog(&bed, 3).expect("XDP on host 3 after the restart");
    assert_eq!(replaced.1, "rotor_steer");
    assert_ne!(replaced.0, progs[2], "the stale program was replaced");

    // SIGTERM: rotord leaves, stops its dataplane, detaches its program.
    for i in 1..=HOSTS {
        let (clean, log) = daemons.stop(i);
        assert!(clean, "rotord on host {i} did not exit cleanly:\n{log}");
        assert_eq!(xdp_prog(&bed, i), None, "host {i} still has XDP:\n{log}");
        assert!(log.contains("detached from eth0"), "{log}");
        match i {
            1 => assert!(
                log.contains("dataplane (pid") && log.contains("restarting it"),
                "{log}"
            ),
            3 => assert!(
                log.contains("transport xdp (auto: running as root and eth0 took the program)")
                    && log.contains("replaced a stale"),
                "{log}"
            ),
            _ => assert!(log.contains("transport xdp (asked for)"), "{log}"),
        }
    }
    eprintln!("netns_xdp: {:?}", started.elapsed());
}

/// The packets of the bridge's nft counter in the switch namespace.
fn nft_counter_packets(bed: &Testbed) -> u64 {
    let out = bed
        .exec_switch(&["nft", "list", "chain", "bridge", "rotor_mtu", "large"])
        .expect("nft list");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in: {text}"))
}

#[test]
fn netmtu_reaches_the_wire_and_is_checked_against_the_transport() {
    if !root_or_skip("network namespaces, nft and XDP for jumbo frames") {
        return;
    }
    let bins = bins();
    let dir = TempDir::new(&format!("rotor-xm-{}", std::process::id())).unwrap();
    let key = dir.path().join("authkey");
    write_authkey(&key).unwrap();
    let mut spec = Spec::new("xdp-mtu");
    spec.transport = "xdp".into();
    spec.totem.push(("token".into(), "300".into()));
    spec.totem.push(("netmtu".into(), "9000".into()));
    spec.extra = format!(
        "system {{\n  state_dir: {}\n}}\n",
        dir.path().join("state").display()
    );
    let conf = dir.path().join("jumbo.conf");
    std::fs::write(&conf, spec.corosync_conf(HOSTS, &key)).unwrap();

    let bed = Testbed::up("xm-", HOSTS).expect("testbed");
    bed.set_mtu(9000).unwrap();
    // Count IPv4 packets longer than one 4 KiB UMEM frame crossing the switch.
    for rule in [
        "add table bridge rotor_mtu",
        "add chain bridge rotor_mtu large { type filter hook forward priority 0 ; }",
        "add rule bridge rotor_mtu large ip length > 4096 counter",
    ] {
        let argv: Vec<&str> = std::iter::once("nft").chain(rule.split(' ')).collect();
        let out = bed.exec_switch(&argv).unwrap();
        assert!(
            out.status.success(),
            "nft {rule}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut daemons = Daemons((0..HOSTS).map(|_| None).collect());
    for i in 1..=HOSTS {
        daemons.start(&bed, &bins, i, &conf);
    }
    bed.wait_rotor_ring(&[1, 2, 3], &MEMBERS, &bins, RING_WAIT)
        .unwrap();
    assert_eq!(
        nft_counter_packets(&bed),
        0,
        "no large frame before traffic"
    );
    let redirected = |i| cmap_u64(&bed, &bins, i, "stats.xdp.prog.redirected").unwrap_or(0);
    let redirected_before: Vec<u64> = (1..=HOSTS).map(redirected).collect();
    // 8,000-byte messages: one frame each at netmtu 9000 (three UMEM frames on each side).
    let rotor = bins.rotor();
    let out = bed
        .exec(
            1,
            &[
                rotor.to_str().unwrap(),
                "bench",
                "lat",
                "-s",
                "8000",
                "-n",
                "50",
                "-t",
                "10",
            ],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "rotor bench: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each message reaches two peers (unicast): at least 100 packets above 4096 bytes, which
    // AF_XDP sent and received as chains of UMEM frames.
    let large = nft_counter_packets(&bed);
    assert!(large >= 100, "{large} packets above 4096 bytes");
    for i in 2..=HOSTS {
        wait_for(
            Duration::from_secs(10),
            "the peers' programs redirected the jumbo frames to AF_XDP",
            || redirected(i) >= redirected_before[i - 1] + 50,
        );
    }
    for i in 1..=HOSTS {
        for reason in ["frame_too_large", "chain_malformed"] {
            let key = format!("stats.xdp.drops.{reason}");
            assert_eq!(cmap_u64(&bed, &bins, i, &key), None, "host {i}: {key}");
        }
    }

    // An interface that cannot carry netmtu 9000: the dataplane refuses it at start, naming
    // the key and the interface's MTU, and rotord stops with exit status 8 instead of
    // restarting it.
    let (clean, _) = daemons.stop(1);
    assert!(clean);
    let out = bed
        .exec(1, &["ip", "link", "set", "eth0", "mtu", "4000"])
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut p = bed.spawn(1, rotord_command(&bins, &conf)).expect("rotord");
    let log = p.collect_stderr();
    let status = p
        .wait_timeout(Duration::from_secs(15))
        .unwrap()
        .expect("rotord with netmtu 9000 on an MTU of 4000 did not stop");
    let log = log
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(status.code(), Some(8), "{log}");
    assert!(
        log.contains("totem.netmtu 9000")
            && log.contains("the MTU of eth0 is 4000")
            && log.contains("lower netmtu to 4000 or less"),
        "{log}"
    );
    assert!(!log.contains("restarting it"), "{log}");
}

/// `nft` on host `i` or on the switch (`i` = 0), failing the test with nft's words.
fn nft(bed: &Testbed, i: usize, rule: &str) {
    let argv: Vec<&str> = std::iter::once("nft").chain(rule.split(' ')).collect();
    let out = if i == 0 {
        bed.exec_switch(&argv)
    } else {
        bed.exec(i, &argv)
    }
    .unwrap();
    assert!(
        out.status.success(),
        "nft {rule} on host {i}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The packets counted by the first counter of `chain` in `table` on host `i`.
fn nft_packets(bed: &Testbed, i: usize, family: &str, table: &str, chain: &str) -> u64 {
    let out = bed
        .exec(i, &["nft", "list", "chain", family, table, chain])
        .expect("nft list");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in: {text}"))
}

/// `rotor ARGS` on host `i`: (exit code, stdout, stderr).
fn rotor_on(bed: &Testbed, bins: &Bins, i: usize, args: &[&str]) -> (i32, String, String) {
    let rotor = bins.rotor();
    let argv: Vec<&str> = std::iter::once(rotor.to_str().unwrap())
        .chain(args.iter().copied())
        .collect();
    let out = bed.exec(i, &argv).expect("rotor");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The source filter, as an operator meets it. Hosts `sf1..sf3` run the cluster over XDP;
/// `sf4` is outside the nodelist. Its datagrams to host 1's cluster port are not redirected:
/// they are counted as `unknown_source_passed` and reach the kernel, where host 1's own
/// `nft … udp dport 5405 drop` counts and drops exactly them — while the members' frames,
/// redirected before netfilter, keep the ring of three (a host's firewall guards the cluster
/// port against strangers; it cannot partition members). Dropping at the switch does partition
/// host 1, and removing the rule heals it. A reload that adds host 4 to the nodelist puts its
/// address in every member's filter, and host 4 joins (its frames redirected: a passed one
/// would never reach a dataplane). Host 1's rotord and dataplane SIGKILLed leave the program
/// attached: `rotor xdp-remove` refuses on host 2, whose rotord runs, and removes host 1's.
/// Host 1 restarted with `xdp_unknown_source: drop` drops a stranger's datagrams itself (counted
/// `unknown_source_dropped`; its firewall sees none).
#[test]
fn source_filter_redirects_only_the_nodelist_and_xdp_remove_clears_a_stale_program() {
    if !root_or_skip("network namespaces, nft and XDP for the source filter") {
        return;
    }
    const SENT: u64 = 20;
    let bins = bins();
    let started = Instant::now();
    let (dir, key, spec) = xdp_cluster("sf", "srcfilter");
    let conf = dir.path().join("corosync.conf");
    std::fs::write(&conf, spec.corosync_conf(3, &key)).unwrap();

    let bed = Testbed::up("sf", 4).expect("testbed");
    let mut daemons = Daemons((0..4).map(|_| None).collect());
    for i in 1..=3 {
        daemons.start(&bed, &bins, i, &conf);
    }
    bed.wait_rotor_ring(&[1, 2, 3], &MEMBERS, &bins, RING_WAIT)
        .unwrap();

    // rotor status shows the program as the kernel has it, and the filter.
    let (id, _) = xdp_prog(&bed, 1).expect("XDP on host 1");
    let (code, status, err) = rotor_on(&bed, &bins, 1, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        status.contains(&format!(
            "XDP program rotor_steer (id {id}) on eth0, native mode\n\tsource filter\t= 3 \
             nodelist addresses; other sources: pass\n\tframes\t= redirected "
        )),
        "{status}"
    );

    // Host 1's firewall drops the cluster port on input; host 4 (not in the nodelist) sends.
    nft(&bed, 1, "add table inet sf");
    nft(
        &bed,
        1,
        "add chain inet sf input { type filter hook input priority 0 ; }",
    );
    nft(
        &bed,
        1,
        "add rule inet sf input udp dport 5405 counter drop",
    );
    // The program's counters reach cmap with rotord's next stats round, which may come after
    // the ring formed.
    let mut passed_before = None;
    wait_for(
        Duration::from_secs(10),
        "stats.xdp.prog.unknown_source_passed in cmap",
        || {
            passed_before = cmap_u64(&bed, &bins, 1, "stats.xdp.prog.unknown_source_passed");
            passed_before.is_some()
        },
    );
    assert_eq!(passed_before, Some(0), "no stranger yet");
    rotor_testbed::in_netns(&bed.host(4), || {
        let socket = std::net::UdpSocket::bind("198.18.0.4:0").unwrap();
        for _ in 0..SENT {
            socket.send_to(b"not a member", "198.18.0.1:5405").unwrap();
        }
    });
    wait_for(
        Duration::from_secs(5),
        "host 4's datagrams counted as unknown_source_passed on host 1",
        || cmap_u64(&bed, &bins, 1, "stats.xdp.prog.unknown_source_passed") == Some(SENT),
    );
    assert_eq!(
        nft_packets(&bed, 1, "inet", "sf", "input"),
        SENT,
        "host 1's firewall saw exactly the stranger's datagrams, none of the members' frames"
    );
    let ring = bed.rotor_status(1, &bins).unwrap();
    assert_eq!(ring.connected, MEMBERS, "the input rule does not partition");
    assert_eq!(
        cmap_u64(&bed, &bins, 1, "stats.xdp.prog.unknown_source_dropped"),
        Some(0)
    );

    // Partitioning host 1 for a test: at the switch.
    nft(&bed, 0, "add table bridge sf");
    nft(
        &bed,
        0,
        "add chain bridge sf forward { type filter hook forward priority 0 ; }",
    );
    nft(&bed, 0, "add rule bridge sf forward iifname h1 drop");
    nft(&bed, 0, "add rule bridge sf forward oifname h1 drop");
    bed.wait_rotor_ring(&[2, 3], &[2, 3], &bins, RING_WAIT)
        .unwrap();
    bed.wait_rotor_ring(&[1], &[1], &bins, RING_WAIT).unwrap();
    nft(&bed, 0, "delete table bridge sf");
    bed.wait_rotor_ring(&[1, 2, 3], &MEMBERS, &bins, RING_WAIT)
        .unwrap();

    // A reload adds host 4: every member's filter takes its address, then it joins.
    std::fs::write(&conf, spec.corosync_conf(4, &key)).unwrap();
    let (code, out, err) = rotor_on(&bed, &bins, 1, &["cfg", "-R"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for(
        Duration::from_secs(5),
        "every member's filter holding 4 addresses",
        || (1..=3).all(|i| cmap_u64(&bed, &bins, i, "runtime.xdp.sources") == Some(4)),
    );
    let unknown: Vec<Option<u64>> = (1..=3)
        .map(|i| cmap_u64(&bed, &bins, i, "stats.xdp.prog.unknown_source_passed"))
        .collect();
    daemons.start(&bed, &bins, 4, &conf);
    bed.wait_rotor_ring(&[1, 2, 3, 4], &[1, 2, 3, 4], &bins, RING_WAIT)
        .unwrap();
    let after: Vec<Option<u64>> = (1..=3)
        .map(|i| cmap_u64(&bed, &bins, i, "stats.xdp.prog.unknown_source_passed"))
        .collect();
    assert_eq!(unknown, after, "host 4's frames were all redirected");

    // rotord and its dataplane SIGKILLed on host 1: the program stays attached.
    assert!(bed.kill_host(1) >= 2);
    let _ = daemons.stop(1);
    assert_eq!(xdp_prog(&bed, 1).map(|p| p.0), Some(id));
    // Host 2's program is held by its running rotord: refused, saying so.
    let (code, out, err) = rotor_on(&bed, &bins, 2, &["xdp-remove", "--interface", "eth0"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("is not stale") && err.contains("rotord (pid"),
        "{err}"
    );
    assert!(xdp_prog(&bed, 2).is_some());
    let (code, out, err) = rotor_on(&bed, &bins, 1, &["xdp-remove"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!(
            "rotor: removed the stale XDP program rotor_steer (id {id}, native mode) from eth0\n"
        )
    );
    assert_eq!(xdp_prog(&bed, 1), None);
    let (code, out, _) = rotor_on(&bed, &bins, 1, &["xdp-remove", "-i", "eth0"]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "rotor: eth0 has no XDP program attached; nothing to remove\n"
        )
    );

    // Host 1 again, with `xdp_unknown_source: drop` (rotor{} is not compared between members):
    // host 4 sends from a second address, outside the nodelist; the program drops exactly
    // those datagrams and host 1's firewall sees none of them.
    let drop_conf = dir.path().join("drop.conf");
    std::fs::write(
        &drop_conf,
        spec.corosync_conf(4, &key) + "rotor {\n  xdp_unknown_source: drop\n}\n",
    )
    .unwrap();
    daemons.start(&bed, &bins, 1, &drop_conf);
    bed.wait_rotor_ring(&[1, 2, 3, 4], &[1, 2, 3, 4], &bins, RING_WAIT)
        .unwrap();
    let (_, status, _) = rotor_on(&bed, &bins, 1, &["status"]);
    assert!(
        status.contains("4 nodelist addresses; other sources: drop"),
        "{status}"
    );
    let firewall_before = nft_packets(&bed, 1, "inet", "sf", "input");
    send_from_stranger(&bed, 4, "eth0", "198.18.0.99", "198.18.0.1:5405", SENT);
    wait_for(
        Duration::from_secs(5),
        "the second address's datagrams counted as unknown_source_dropped on host 1",
        || cmap_u64(&bed, &bins, 1, "stats.xdp.prog.unknown_source_dropped") == Some(SENT),
    );
    assert_eq!(
        nft_packets(&bed, 1, "inet", "sf", "input"),
        firewall_before,
        "dropped by the program: the firewall saw none"
    );
    eprintln!("netns_xdp source filter: {:?}", started.elapsed());
}

/// Two links on XDP (`transport: xdp`, link 1 on a second bridge, `xdp_unknown_source: drop`):
/// each rotord attaches a program to eth0 and to eth1, each holding its own link's addresses;
/// the AF_XDP redirect counters of both rise (link 1 carries the pings); `rotor status` shows
/// both programs; a reload removes link 1 (every program on eth1 detached, its
/// `runtime.xdp.link1.*` and `stats.xdp.link1.*` keys gone), one adding it on eth0 (which
/// carries link 0's program) is refused with nothing attached, and another adds it back, on AF_XDP
/// from that round (a new program on eth1, its counters rising) — between the two, link 1 runs
/// on kernel UDP (`knet_transport: udp`) beside link 0 on AF_XDP; a dataplane restarted after the
/// reloads runs link 1 on the re-added program; a stranger on link 1's network
/// is dropped by the re-added program and counted there; SIGKILLed, a node leaves both behind and `rotor xdp-remove` removes both; SIGTERMed,
/// rotord detaches both.
#[test]
fn two_links_run_af_xdp_on_both_interfaces_each_with_its_source_filter() {
    if !root_or_skip("network namespaces and XDP on two links") {
        return;
    }
    const SENT: u64 = 20;
    let bins = bins();
    let started = Instant::now();
    let (dir, key, mut spec) = xdp_cluster("xk", "xdplinks");
    spec.links = 2;
    spec.extra += "rotor {\n  xdp_unknown_source: drop\n}\n";
    let conf = dir.path().join("corosync.conf");
    std::fs::write(&conf, spec.corosync_conf(HOSTS, &key)).unwrap();

    let bed = Testbed::up("xk", HOSTS).expect("testbed");
    bed.add_link(1).expect("link 1's bridge");
    let mut daemons = Daemons((0..HOSTS).map(|_| None).collect());
    for i in 1..=HOSTS {
        daemons.start(&bed, &bins, i, &conf);
    }
    bed.wait_rotor_ring(&[1, 2, 3], &MEMBERS, &bins, RING_WAIT)
        .unwrap();

    // A program on each link's interface, and AF_XDP frames on both.
    let link1_redirected = "stats.xdp.link1.prog.redirected";
    let mut before = Vec::new();
    for i in 1..=HOSTS {
        for dev in ["eth0", "eth1"] {
            let (_, name) =
                xdp_prog_on(&bed, i, dev).unwrap_or_else(|| panic!("no XDP on host {i}'s {dev}"));
            assert_eq!(name, "rotor_steer", "host {i} {dev}");
        }
        let link0 = cmap_u64(&bed, &bins, i, "stats.xdp.prog.redirected").unwrap_or(0);
        let link1 = cmap_u64(&bed, &bins, i, link1_redirected).unwrap_or(0);
        before.push((link0, link1));
    }
    wait_for(
        Duration::from_secs(10),
        "the redirect counters of both links rising on every host",
        || {
            (1..=HOSTS).all(|i| {
                let (link0, link1) = before[i - 1];
                cmap_u64(&bed, &bins, i, "stats.xdp.prog.redirected").unwrap_or(0) > link0
                    && cmap_u64(&bed, &bins, i, link1_redirected).unwrap_or(0) > link1
                    && cmap_u64(&bed, &bins, i, "stats.xdp.link1.frames_in").unwrap_or(0) > 0
            })
        },
    );
    let (id0, _) = xdp_prog_on(&bed, 1, "eth0").unwrap();
    let (id1, _) = xdp_prog_on(&bed, 1, "eth1").unwrap();
    let (code, status, err) = rotor_on(&bed, &bins, 1, &["status"]);
    assert_eq!(code, 0, "{err}");
    for (id, dev, link) in [(id0, "eth0", ""), (id1, "eth1", " (link 1)")] {
        assert!(
            status.contains(&format!(
                "XDP program rotor_steer (id {id}) on {dev}, native mode{link}\n\tsource \
                 filter\t= 3 nodelist addresses; other sources: drop\n\tframes\t= redirected "
            )),
            "{status}"
        );
    }

    // A reload removes link 1: every host detaches its program and drops its counters.
    let link1_keys = ["runtime.xdp.link1.prog_id", link1_redirected];
    let one_link = Spec {
        links: 1,
        ..spec.clone()
    };
    reload_to(&bed, &bins, &conf, one_link.corosync_conf(HOSTS, &key));
    wait_for(
        Duration::from_secs(20),
        "link 1's program detached and its keys gone on every host",
        || {
            (1..=HOSTS).all(|i| {
                xdp_prog_on(&bed, i, "eth1").is_none()
                    && link1_keys
                        .iter()
                        .all(|k| cmap_u64(&bed, &bins, i, k).is_none())
            })
        },
    );
    assert!(
        xdp_prog_on(&bed, 1, "eth0").is_some(),
        "link 0 keeps its program"
    );

    // A reload that adds link 1 on addresses of eth0, which carries link 0's program, is
    // refused naming the link and why, and leaves nothing attached or changed.
    let on_eth0 = |i: usize| format!("198.18.9.{i}");
    for i in 1..=HOSTS {
        let addr = format!("{}/24", on_eth0(i));
        let out = bed
            .exec(i, &["ip", "addr", "add", &addr, "dev", "eth0"])
            .unwrap();
        assert!(out.status.success());
    }
    std::fs::write(
        &conf,
        spec.corosync_conf(HOSTS, &key)
            .replace("198.19.1.", "198.18.9."),
    )
    .unwrap();
    let (code, out, err) = rotor_on(&bed, &bins, 1, &["cfg", "-R"]);
    let said = format!("{out}{err}");
    assert_ne!(code, 0, "{said}");
    assert!(
        said.contains("link 1: transport xdp: eth0 carries link 0's XDP program"),
        "{said}"
    );
    for i in 1..=HOSTS {
        assert_eq!(xdp_prog_on(&bed, i, "eth1"), None, "host {i}");
        assert_eq!(cmap_u64(&bed, &bins, i, "runtime.xdp.link1.prog_id"), None);
        let addr = format!("{}/24", on_eth0(i));
        let _ = bed.exec(i, &["ip", "addr", "del", &addr, "dev", "eth0"]);
    }
    assert_eq!(xdp_prog_on(&bed, 1, "eth0").map(|p| p.0), Some(id0));

    // A reload adds it on kernel UDP (`knet_transport: udp` under transport xdp): link 0 on
    // AF_XDP, link 1 on UDP answering its pings, no program on eth1. Another removes it (a
    // kept link's transport cannot change).
    let pongs = |j: usize| format!("stats.knet.node{j}.link1.rx_pong_packets");
    let on_udp = Spec {
        interfaces: "  interface {\n    linknumber: 1\n    knet_transport: udp\n  }\n".into(),
        ..spec.clone()
    };
    reload_to(&bed, &bins, &conf, on_udp.corosync_conf(HOSTS, &key));
    wait_for(
        Duration::from_secs(20),
        "link 1 carrying pings on kernel UDP beside link 0 on AF_XDP on every host",
        || {
            (1..=HOSTS).all(|i| {
                let mut peers = (1..=HOSTS).filter(|j| *j != i);
                xdp_prog_on(&bed, i, "eth1").is_none()
                    && cmap_u64(&bed, &bins, i, link1_redirected).is_none()
                    && peers.all(|j| cmap_u64(&bed, &bins, i, &pongs(j)).unwrap_or(0) > 0)
            })
        },
    );
    assert!(
        xdp_prog_on(&bed, 1, "eth0").is_some(),
        "link 0 stays on AF_XDP"
    );
    reload_to(&bed, &bins, &conf, one_link.corosync_conf(HOSTS, &key));
    wait_for(Duration::from_secs(20), "link 1 removed again", || {
        (1..=HOSTS).all(|i| cmap_u64(&bed, &bins, i, &pongs(i % HOSTS + 1)).is_none())
    });

    // A reload adds it back: AF_XDP from the round on (a program on eth1, its redirect
    // counter and the AF_XDP socket's frames rising), not kernel UDP until a restart.
    reload_to(&bed, &bins, &conf, spec.corosync_conf(HOSTS, &key));
    wait_for(
        Duration::from_secs(20),
        "link 1 added back on AF_XDP on every host",
        || {
            (1..=HOSTS).all(|i| {
                xdp_prog_on(&bed, i, "eth1").is_some_and(|(_, name)| name == "rotor_steer")
                    && cmap_u64(&bed, &bins, i, link1_redirected).unwrap_or(0) > 0
                    && cmap_u64(&bed, &bins, i, "stats.xdp.link1.frames_in").unwrap_or(0) > 0
            })
        },
    );
    let (readded, _) = xdp_prog_on(&bed, 1, "eth1").unwrap();
    assert_ne!(readded, id1, "a new program on eth1");
    let (code, status, err) = rotor_on(&bed, &bins, 1, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        status.contains(&format!(
            "XDP program rotor_steer (id {readded}) on eth1, native mode (link 1)\n"
        )),
        "{status}"
    );

    // Host 1's dataplane dies after the reloads: the next one starts with the links' transports
    // and maps in effect (link 1 on the re-added program), and AF_XDP frames flow on link 1.
    let dataplane = dataplane_pid(&bed, 1).expect("a dataplane on host 1");
    let before = bed.rotor_status(1, &bins).unwrap();
    // Safety: kill(2) on the dataplane our rotord started in our test host.
    assert_eq!(unsafe { libc::kill(dataplane, libc::SIGKILL) }, 0);
    wait_for(RING_WAIT, "host 1 back in a new ring of 3", || {
        dataplane_pid(&bed, 1).is_some_and(|p| p != dataplane)
            && bed.rotor_status(1, &bins).is_ok_and(|s| {
                s.ring != before.ring && s.state == "operational" && s.connected == MEMBERS
            })
    });
    let frames = cmap_u64(&bed, &bins, 1, "stats.xdp.link1.frames_in").unwrap_or(0);
    wait_for(
        Duration::from_secs(10),
        "the restarted dataplane receiving on link 1's AF_XDP socket",
        || cmap_u64(&bed, &bins, 1, "stats.xdp.link1.frames_in").unwrap_or(0) > frames,
    );
    assert_eq!(xdp_prog_on(&bed, 1, "eth1").map(|p| p.0), Some(readded));

    // A stranger on link 1's network: host 3 sends from a second address on its eth1.
    send_from_stranger(&bed, 3, "eth1", "198.19.1.99", "198.19.1.1:5405", SENT);
    wait_for(
        Duration::from_secs(5),
        "the stranger's datagrams counted as unknown_source_dropped by link 1's program",
        || {
            cmap_u64(
                &bed,
                &bins,
                1,
                "stats.xdp.link1.prog.unknown_source_dropped",
            ) == Some(SENT)
        },
    );
    assert_eq!(
        cmap_u64(&bed, &bins, 1, "stats.xdp.prog.unknown_source_dropped"),
        Some(0),
        "link 0's program saw none of them"
    );
    assert_eq!(bed.rotor_status(1, &bins).unwrap().connected, MEMBERS);

    // Host 2 SIGKILLed leaves both programs; xdp-remove removes both.
    let (stale0, _) = xdp_prog_on(&bed, 2, "eth0").unwrap();
    let (stale1, _) = xdp_prog_on(&bed, 2, "eth1").unwrap();
    assert!(bed.kill_host(2) >= 2);
    let _ = daemons.stop(2);
    assert_eq!(xdp_prog_on(&bed, 2, "eth1").map(|p| p.0), Some(stale1));
    let (code, out, err) = rotor_on(&bed, &bins, 2, &["xdp-remove"]);
    assert_eq!(code, 0, "{out}{err}");
    for (id, dev) in [(stale0, "eth0"), (stale1, "eth1")] {
        assert!(
            out.contains(&format!(
                "rotor: removed the stale XDP program rotor_steer (id {id}, native mode) from \
                 {dev}\n"
            )),
            "{out}"
        );
        assert_eq!(xdp_prog_on(&bed, 2, dev), None);
    }

    // SIGTERM: rotord detaches both programs.
    for i in [1, 3] {
        let (clean, log) = daemons.stop(i);
        assert!(clean, "rotord on host {i} did not exit cleanly:\n{log}");
        for dev in ["eth0", "eth1"] {
            assert_eq!(xdp_prog_on(&bed, i, dev), None, "host {i} {dev}:\n{log}");
        }
        assert!(
            log.contains("link 0 detached from eth0") && log.contains("link 1 detached from eth1"),
            "{log}"
        );
        // Added twice by reloads: on kernel UDP, then on AF_XDP.
        let added: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("(added while running)"))
            .collect();
        let on = |t: &str| format!("link 1 on 198.19.1.{i}:5405: transport {t}");
        assert!(
            added.len() == 2 && added[0].contains(&on("udp")) && added[1].contains(&on("xdp")),
            "host {i}: {added:?}"
        );
    }
    eprintln!("netns_xdp two links: {:?}", started.elapsed());
}
