//! Debian's own corosync tools, unchanged binaries from the `corosync` package, run against
//! rotor through its C libraries (`LD_LIBRARY_PATH`), their output compared with rotor's own
//! commands: corosync-cmapctl's dump, prefix listing, `-g`, `-s`, `-d`, `-t` tracking and the
//! stats map (`-m stats`); corosync-quorumtool as far as it goes without rotor's libcfg.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rotor_capi_tests::{text, Cluster};

const CMAPCTL: &str = "/usr/sbin/corosync-cmapctl";
const QUORUMTOOL: &str = "/usr/sbin/corosync-quorumtool";
const CFGTOOL: &str = "/usr/sbin/corosync-cfgtool";
const CPGTOOL: &str = "/usr/sbin/corosync-cpgtool";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Lines whose values move on their own (counters, timers) are left out of comparisons.
fn stable(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("stats.") && !l.starts_with("runtime.totem.pg.mrp.srp.stats"))
        .map(str::to_owned)
        .collect()
}

fn cmapctl(c: &Cluster, args: &[&str]) -> Output {
    c.run(1, Path::new(CMAPCTL), args, Duration::from_secs(20))
}

#[test]
fn corosync_cmapctl_reads_and_writes_rotors_cmap() {
    let c = Cluster::start(3, 2);
    // Dump: every key, as `rotor cmap list` prints it.
    let ours = c.rotor(1, &["cmap", "list"]);
    let theirs = cmapctl(&c, &[]);
    assert!(theirs.status.success(), "{}", text(&theirs));
    assert_eq!(stable(&stdout(&theirs)), stable(&stdout(&ours)));
    assert!(stdout(&theirs).contains("totem.cluster_name (str) = capi\n"));
    // A prefix.
    let theirs = cmapctl(&c, &["nodelist."]);
    assert!(theirs.status.success(), "{}", text(&theirs));
    assert_eq!(
        stdout(&theirs),
        stdout(&c.rotor(1, &["cmap", "list", "nodelist."]))
    );
    assert!(
        stdout(&theirs).contains("nodelist.node.1.ring0_addr (str) = 127.0.0.2\n"),
        "{}",
        text(&theirs)
    );
    // The keys applications read, named as Corosync 3 publishes them.
    let theirs = stdout(&cmapctl(&c, &["runtime.members."]));
    for want in [
        "runtime.members.1.ip (str) = r(0) ip(127.0.0.1) \n",
        "runtime.members.2.join_count (u32) = 1\n",
        "runtime.members.3.status (str) = joined\n",
        "runtime.members.3.config_version (u64) = 0\n",
    ] {
        assert!(theirs.contains(want), "{want:?} in:\n{theirs}");
    }
    let theirs = stdout(&cmapctl(&c, &["-g", "nodelist.local_node_pos"]));
    assert_eq!(theirs, "nodelist.local_node_pos (u32) = 0\n");
    let stats = stdout(&cmapctl(&c, &["-m", "stats", "stats.srp."]));
    for key in [
        "orf_token_rx",
        "mcast_tx",
        "operational_entered",
        "rx_msg_dropped",
    ] {
        assert!(
            stats.contains(&format!("stats.srp.{key} (u64) = ")),
            "{key} in:\n{stats}"
        );
    }
    // -g.
    let theirs = cmapctl(&c, &["-g", "totem.cluster_name"]);
    assert!(theirs.status.success(), "{}", text(&theirs));
    assert_eq!(
        stdout(&theirs),
        stdout(&c.rotor(1, &["cmap", "get", "totem.cluster_name"]))
    );
    let missing = cmapctl(&c, &["-g", "capi.no.such.key"]);
    assert!(!missing.status.success(), "{}", text(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("CS_ERR_NOT_EXIST"),
        "{}",
        text(&missing)
    );
    // -s, then read back by rotor; -d, then gone.
    for (t, v) in [
        ("u32", "42"),
        ("i8", "7"),
        ("str", "some text"),
        ("dbl", "2.5"),
    ] {
        let key = format!("capi.set.{t}");
        let set = cmapctl(&c, &["-s", &key, t, v]);
        assert!(set.status.success(), "{}", text(&set));
        let back = c.rotor(1, &["cmap", "get", &key]);
        assert_eq!(stdout(&back), stdout(&cmapctl(&c, &["-g", &key])));
    }
    assert_eq!(
        stdout(&c.rotor(1, &["cmap", "get", "capi.set.u32"])),
        "capi.set.u32 (u32) = 42\n"
    );
    let refused = cmapctl(&c, &["-s", "runtime.config.totem.token", "u32", "5000"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("CS_ERR_ACCESS"),
        "{}",
        text(&refused)
    );
    let del = cmapctl(&c, &["-d", "capi.set.u32"]);
    assert!(del.status.success(), "{}", text(&del));
    assert!(!c
        .rotor(1, &["cmap", "get", "capi.set.u32"])
        .status
        .success());
    // The stats map: only stats.* keys.
    let stats = cmapctl(&c, &["-m", "stats"]);
    assert!(stats.status.success(), "{}", text(&stats));
    let dump = stdout(&stats);
    assert!(
        !dump.is_empty() && dump.lines().all(|l| l.starts_with("stats.")),
        "{}",
        text(&stats)
    );
}

/// `corosync-cmapctl -T PREFIX` and `-t KEY` print the changes rotor makes, as `rotor cmap
/// track` does.
#[test]
fn corosync_cmapctl_tracks_rotors_changes() {
    let c = Cluster::start(1, 3);
    // stdbuf: the tool's stdout is a pipe here, which C's stdio would buffer whole; stdin
    // is kept open: the tool quits at its end.
    let tool = |args: &[&str]| {
        c.command(1, "stdbuf")
            .arg("-oL")
            .arg(CMAPCTL)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start corosync-cmapctl")
    };
    let mut theirs = tool(&["-T", "capi.track."]);
    let mut exact = tool(&["-t", "capi.track.a"]);
    let mut ours = c
        .command(1, c.bin.join("rotor"))
        .args(["cmap", "track", "capi.track."])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rotor cmap track");
    let lines = |child: &mut std::process::Child| {
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let (theirs_rx, ours_rx, exact_rx) = (lines(&mut theirs), lines(&mut ours), lines(&mut exact));
    // The trackers are attached once a change made now reaches all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut collected: [Vec<String>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut probe = 0u32;
    while collected.iter().any(Vec::is_empty) {
        assert!(
            Instant::now() < deadline,
            "trackers never saw a change: {collected:?}"
        );
        probe += 1;
        c.rotor(
            1,
            &[
                "cmap",
                "set",
                "capi.track.a",
                "u32",
                &(100 + probe).to_string(),
            ],
        );
        std::thread::sleep(Duration::from_millis(100));
        for (i, rx) in [&theirs_rx, &ours_rx, &exact_rx].into_iter().enumerate() {
            collected[i].extend(rx.try_iter());
        }
    }
    assert!(c
        .rotor(1, &["cmap", "delete", "capi.track.a"])
        .status
        .success());
    for rx in [&theirs_rx, &ours_rx, &exact_rx] {
        while rx
            .recv_timeout(Duration::from_millis(500))
            .is_ok_and(|l| !l.starts_with("delete>"))
        {}
    }
    let script: [&[&str]; 3] = [
        &["cmap", "set", "capi.track.a", "u32", "1"],
        &["cmap", "set", "capi.track.a", "u32", "2"],
        &["cmap", "delete", "capi.track.a"],
    ];
    for step in script {
        assert!(c.rotor(1, step).status.success());
    }
    let want = [
        "create> capi.track.a (u32) = 1",
        "modify> capi.track.a (u32) = 2",
        "delete> capi.track.a (u32) = 2",
    ];
    let mut got: [Vec<String>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.iter().any(|g| g.len() < want.len()) && Instant::now() < deadline {
        for (i, rx) in [&theirs_rx, &ours_rx, &exact_rx].into_iter().enumerate() {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(50)) {
                if l.contains("capi.track.a") {
                    got[i].push(l);
                }
            }
        }
    }
    for child in [&mut theirs, &mut ours, &mut exact] {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(got[0], want, "corosync-cmapctl -T");
    assert_eq!(got[1], want, "rotor cmap track");
    assert_eq!(got[2], want, "corosync-cmapctl -t");
}

/// rotor-bench's C client (`bench/csrc/cpg_bench.c`), the Corosync side of `cargo xtask bench
/// vs-corosync`, runs unchanged against rotor through libcpg: a short latency run and a short
/// throughput run with every sender's sequence intact.
#[test]
fn the_c_bench_client_runs_on_rotor_through_libcpg() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/csrc/cpg_bench.c");
    let out = rotor_capi_tests::target_dir().join("capi-cpg_bench");
    let cc = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lcpg")
        .output()
        .expect("run cc");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let c = Cluster::start(1, 4);
    for args in [
        &["lat", "-n", "500", "-t", "20"][..],
        &["tput", "-s", "1024", "-t", "1", "-n", "20000"][..],
    ] {
        let o = c.run(1, &out, args, Duration::from_secs(40));
        let report = text(&o);
        assert!(o.status.success(), "{report}");
        assert!(report.contains("seq_errors=0"), "{report}");
        assert!(report.contains(&format!("bench={}", args[0])), "{report}");
    }
}

/// Output with the line that moves on its own (`Date:`) left out.
fn undated(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with("Date:")).collect()
}

/// corosync-quorumtool (`-s`, `-l`, `-p` and their combinations) through rotor's libquorum,
/// libvotequorum, libcmap and libcfg (which the tool opens before it prints anything, and
/// names nodes with `corosync_cfg_get_node_addrs`): output and exit status as `rotor
/// quorum`'s.
#[test]
fn corosync_quorumtool_through_rotors_libraries() {
    let c = Cluster::start_votequorum(3, 5, "");
    // Quorum is decided once the ring's sync ends: wait for rotor quorum to say quorate.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c.rotor(1, &["quorum", "-s"]).status.success() {
        assert!(Instant::now() < deadline, "no quorum within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    for args in [
        &["-s"][..],
        &["-l"][..],
        &["-p"][..],
        &["-s", "-p"][..],
        &["-l", "-p"][..],
    ] {
        let theirs = c.run(1, Path::new(QUORUMTOOL), args, Duration::from_secs(20));
        let mut rotor_args = vec!["quorum"];
        rotor_args.extend(args);
        let ours = c.rotor(1, &rotor_args);
        assert_eq!(
            undated(&stdout(&theirs)),
            undated(&stdout(&ours)),
            "corosync-quorumtool {args:?}:\n{}",
            text(&theirs)
        );
        assert_eq!(theirs.status.code(), ours.status.code(), "{args:?}");
    }
}

/// The lines of `rotor cfg` that corosync-cfgtool has too: rotor's own lines after the
/// link's (the ring, the keys, a refused reload) left out, and the transport's name left
/// out of each line (corosync-cfgtool names corosync.conf's `totem.transport`, knet when
/// unset, and knet's link transport udp; `rotor cfg` names the transport the dataplane
/// runs, e.g. udp or udp-uring).
fn cfgtool_lines(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| !l.starts_with("Ring ID "))
        .map(|l| {
            if let Some((head, _)) = l.split_once(", transport ") {
                format!("{head}, transport T")
            } else if let Some(rest) = l.strip_prefix("LINK ID ") {
                let link = rest.split_whitespace().next().unwrap_or("");
                format!("LINK ID {link} T")
            } else if let Some(rest) = l.strip_prefix("   LINK: ") {
                let mut words = rest.splitn(3, ' ');
                let link = words.next().unwrap_or("");
                let _transport = words.next();
                format!("   LINK: {link} T {}", words.next().unwrap_or(""))
            } else {
                l.to_owned()
            }
        })
        .collect()
}

/// corosync-cfgtool `-s`, `-b -s`, `-n`, `-a`, `-R` and `-k` through rotor's libcfg and
/// libcmap, compared with `rotor cfg`; node 3 killed with `-k` leaves the ring.
#[test]
fn corosync_cfgtool_through_rotors_libraries() {
    let c = Cluster::start(3, 7);
    // A link is connected once its pings are answered (knet_pong_count in a row): wait, so
    // both tools see the links in the same state.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stdout(&c.rotor(1, &["cfg", "-b", "-s"])).contains("\tstatus\t= n33\n") {
        assert!(Instant::now() < deadline, "node 1's links never all up");
        std::thread::sleep(Duration::from_millis(100));
    }
    for args in [
        &["-s"][..],
        &["-b", "-s"][..],
        &["-n"][..],
        &["-a", "2"][..],
    ] {
        let theirs = c.run(1, Path::new(CFGTOOL), args, Duration::from_secs(20));
        println!("corosync-cfgtool {args:?}: {}", text(&theirs));
        let mut rotor_args = vec!["cfg"];
        rotor_args.extend(args);
        let ours = c.rotor(1, &rotor_args);
        assert!(ours.status.success(), "{}", text(&ours));
        assert_eq!(
            cfgtool_lines(&stdout(&theirs)),
            cfgtool_lines(&stdout(&ours)),
            "corosync-cfgtool {args:?}:\n{}\nrotor cfg:\n{}",
            text(&theirs),
            text(&ours)
        );
        assert_eq!(theirs.status.code(), ours.status.code(), "{args:?}");
    }
    let reload = c.run(1, Path::new(CFGTOOL), &["-R"], Duration::from_secs(40));
    assert!(reload.status.success(), "{}", text(&reload));
    assert_eq!(
        stdout(&reload),
        "Reloading corosync.conf...\nDone\n",
        "{}",
        text(&reload)
    );
    let kill = c.run(1, Path::new(CFGTOOL), &["-k", "3"], Duration::from_secs(20));
    assert!(kill.status.success(), "{}", text(&kill));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = stdout(&c.run(1, Path::new(CFGTOOL), &["-s"], Duration::from_secs(20)));
        if status.contains("nodeid:          3:\tdisconnected") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 still in the ring 30 s after corosync-cfgtool -k 3:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// corosync-cpgtool (the table, `-n`, `-d`) through rotor's libcpg and libcfg (which it opens
/// first and names nodes with), compared with `rotor cpg`, while processes on two nodes are
/// members of two groups.
#[test]
fn corosync_cpgtool_through_rotors_libraries() {
    let member = rotor_capi_tests::compile_c("cpg_member", &["cpg"]);
    let c = Cluster::start(3, 9);
    let mut members = Vec::new();
    for (node, group) in [(1, "capi-tools"), (2, "capi-tools"), (2, "capi-other")] {
        let mut child = c
            .command(node, &member)
            .arg(group)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start cpg_member");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read cpg_member");
        assert_eq!(line, "joined\n", "cpg_member {group} on node {node}");
        members.push(child);
    }
    for args in [&[][..], &["-n"][..], &["-d", ":"][..]] {
        let theirs = c.run(1, Path::new(CPGTOOL), args, Duration::from_secs(20));
        println!("corosync-cpgtool {args:?}: {}", text(&theirs));
        let mut rotor_args = vec!["cpg"];
        rotor_args.extend(args);
        let ours = c.rotor(1, &rotor_args);
        assert!(theirs.status.success(), "{}", text(&theirs));
        assert_eq!(
            stdout(&theirs),
            stdout(&ours),
            "corosync-cpgtool {args:?}:\n{}\nrotor cpg:\n{}",
            text(&theirs),
            text(&ours)
        );
    }
    for mut m in members {
        drop(m.stdin.take());
        let _ = m.wait();
    }
}
