//! `cargo xtask bench rings [--quick] [--no-docs]` (root): the latency of each ring on rotor's
//! path, as HdrHistogram distributions, on network-namespace hosts `rb1..rb3`:
//!
//! - **shm ring** one way: ipc-shm's own bench (`ipc-shm/examples/bench_ipc.rs --dist`), busy
//!   and blocking, 64 B;
//! - **AF_XDP** RX→TX ping-pong between rb1 and rb2 through the dataplane's `xsk` provider
//!   (xdp-prog steering, copy mode on veth), 64 B UDP payloads, both sides busy-polling;
//! - **kernel UDP** ping-pong between the same hosts for comparison: the plain-socket provider
//!   (`udp`) and the io_uring one (`uring`), busy-polling;
//! - **jumbo**: the AF_XDP (multi-buffer) and kernel UDP ping-pongs again with 8,972 B payloads
//!   on links at MTU 9000, the crossing a 1 KB workload at netmtu 9000 pays per frame and peer;
//! - **token rotation** on a 3-node ring: three dataplane `Runner`s (totem-core + AES-256-GCM +
//!   a provider) in rb1..rb3, the idle ring kept rotating (no token hold), the interval between
//!   consecutive token receipts at node 1; per provider and poll mode;
//! - **end to end**: `rotor bench lat` (64 B, one in flight, agreed self-delivery) on a 3-node
//!   rotord cluster, transport xdp, with rotord's default poll mode, with `blocking`, and with
//!   `blocking` and an idle ring that never holds the token (`seqno_unchanged_const`), plus
//!   rotord's own token-rotation histogram (cmap `stats.srp.token_rotation_us.*`) of each run.
//!
//! Ping-pongs report the round trip (two crossings of the ring); everything else one way.
//! Writes `bench/reports/rings-<stamp>.md` with a percentile plot and its block of
//! docs/BENCHMARKS.md; prints one `ring=… p50_us=…` line per ring and the table.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rotor_bench::cluster::{
    self, bench_args, bench_lines, build_rotor, check_interrupt, interrupted, run_clients, Rotor,
    RotorConf,
};
use rotor_bench::dist::Dist;
use rotor_bench::line::Line;
use rotor_bench::report::{self, load_average, table, Machine, Report, RunInfo, Utc};
use rotor_bench::svg::{percentile_chart, Series};
use rotor_crypto::{CryptoMode, Keys};
use rotor_dataplane::runner::{cluster_shape, Runner, RunnerConfig};
use rotor_dataplane::transport::any::{AnyTransport, TransportKind};
use rotor_dataplane::transport::frame::ETH_HEADER_LEN;
use rotor_dataplane::transport::udp::{KernelUdpIo, UdpTransport};
use rotor_dataplane::transport::uring::UringTransport;
use rotor_dataplane::transport::xsk::{XskConfig, XskTransport};
use rotor_dataplane::transport::Transport;
use rotor_testbed::Testbed;
use totem_core::config::explicit;
use totem_core::{State, TotemSettings};

const PREFIX: &str = "rb";
const PORT: u16 = 5405;
/// No single wait in this bench may exceed this.
const STEP_LIMIT: Duration = Duration::from_secs(60);

struct Plan {
    quick: bool,
    docs: bool,
    ping_samples: u64,
    token_samples: u64,
    lat_count: u64,
}

/// One measured ring: its name, what one sample is, and its distribution in µs.
struct Ring {
    name: String,
    what: &'static str,
    dist: Dist,
}

/// How a polling side waits for its next datagram.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    Busy,
    /// rotord's default: spin this long after the last work, then sleep in poll(2).
    Adaptive(Duration),
    Blocking,
}

impl Wait {
    fn name(self) -> &'static str {
        match self {
            Wait::Busy => "busy",
            Wait::Adaptive(_) => "adaptive",
            Wait::Blocking => "blocking",
        }
    }

    /// The longest a turn may sleep, given how long ago the last work was.
    fn max_wait(self, since_work: Duration) -> Duration {
        match self {
            Wait::Busy => Duration::ZERO,
            Wait::Adaptive(spin) if since_work < spin => Duration::ZERO,
            _ => Duration::from_millis(5),
        }
    }
}

fn main() {
    cluster::bench_main("bench-rings", run);
}

fn run(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let plan = Plan {
        quick,
        docs: !args.iter().any(|a| a == "--no-docs"),
        ping_samples: if quick { 5_000 } else { 50_000 },
        token_samples: if quick { 5_000 } else { 50_000 },
        lat_count: if quick { 2_000 } else { 10_000 },
    };
    if let Some(a) = args
        .iter()
        .find(|a| !["--quick", "--no-docs"].contains(&a.as_str()))
    {
        return Err(format!(
            "unknown argument {a} (usage: bench-rings [--quick] [--no-docs])"
        ));
    }
    if !rotor_testbed::root_or_skip("bench rings needs network namespaces and XDP") {
        return Err("not root".into());
    }
    let started = Utc::now();
    let machine = Machine::detect();
    let load_before = load_average();
    let mut rings = Vec::new();
    let mut notes = Vec::new();

    eprintln!("bench-rings: shm ring (ipc-shm bench_ipc --dist)");
    let (shm, shm_lines) = shm_rings()?;
    rings.extend(shm);
    notes.push(format!(
        "ipc-shm bench output:\n\n```\n{}\n```\n",
        shm_lines.trim()
    ));

    let bed = Testbed::up(PREFIX, 3).map_err(|e| format!("testbed: {e}"))?;
    let xsk_open = |addr: SocketAddr| {
        XskTransport::open(&XskConfig::new("eth0", addr)).map_err(|e| e.to_string())
    };
    let udp_open = |addr: SocketAddr| UdpTransport::bind(addr).map_err(|e| e.to_string());
    let uring_open = |addr: SocketAddr| UringTransport::bind(addr).map_err(|e| e.to_string());
    // A ring that fails is reported in the notes and the others are still measured.
    eprintln!("bench-rings: AF_XDP and kernel UDP ping-pongs rb1 <-> rb2");
    for (name, result) in [
        (
            "AF_XDP ping-pong (xsk, busy)",
            ping_pong(&bed, &xsk_open, plan.ping_samples, 64),
        ),
        (
            "kernel UDP ping-pong (socket, busy)",
            ping_pong(&bed, &udp_open, plan.ping_samples, 64),
        ),
        (
            "kernel UDP ping-pong (io_uring, busy)",
            ping_pong(&bed, &uring_open, plan.ping_samples, 64),
        ),
    ] {
        check_interrupt()?;
        match result {
            Ok(h) => rings.push(ping_ring(name, "round trip of one 64 B datagram", h)),
            Err(e) => failed(&mut notes, name, e),
        }
    }
    for (kind, wait) in [
        (
            TransportKind::Xdp,
            Wait::Adaptive(Duration::from_micros(50)),
        ),
        (TransportKind::Xdp, Wait::Busy),
        (TransportKind::Xdp, Wait::Blocking),
        (
            TransportKind::Udp,
            Wait::Adaptive(Duration::from_micros(50)),
        ),
    ] {
        check_interrupt()?;
        let name = format!(
            "token rotation, 3 nodes ({}, {})",
            if kind == TransportKind::Xdp {
                "xdp"
            } else {
                "udp"
            },
            wait.name()
        );
        eprintln!("bench-rings: {name}");
        match token_rotation(&bed, kind, wait, plan.token_samples) {
            Ok(h) => rings.push(Ring {
                name,
                what: "interval between token receipts at node 1",
                dist: Dist::from_histogram(&h, 1000.0),
            }),
            Err(e) => failed(&mut notes, &name, e),
        }
    }
    // rotord's default poll mode (auto: adaptive on this machine); blocking, which spins
    // nowhere (the difference is what spinning on shared cores costs); blocking with an idle
    // ring that never holds the token (the tail the hold-cancel race adds).
    let no_hold = &[("seqno_unchanged_const", "1000000000")];
    for (label, conf) in [
        ("poll default", RotorConf::default()),
        (
            "poll blocking",
            RotorConf {
                poll: Some("blocking"),
                ..RotorConf::default()
            },
        ),
        (
            "poll blocking, no token hold",
            RotorConf {
                poll: Some("blocking"),
                totem: no_hold,
                ..RotorConf::default()
            },
        ),
    ] {
        check_interrupt()?;
        eprintln!("bench-rings: end to end (rotor bench lat, 3 rotords, xdp, {label})");
        let (e2e, e2e_line, rotations) = match end_to_end(&bed, plan.lat_count, label, conf) {
            Ok(r) => r,
            Err(e) => {
                failed(&mut notes, &format!("end to end ({label})"), e);
                continue;
            }
        };
        rings.push(e2e);
        notes.push(format!(
            "End-to-end line ({label}): `{e2e_line}`\n\nToken rotation as rotord's \
             dataplane on host 1 saw it over that run (`rotor cmap list stats.srp.token_rotation`; \
             buckets `le_N` count rotations ≤ N µs and above the previous bound):\n\n```\n{}\n```\n",
            rotations.trim()
        ));
    }
    // Jumbo frames, last (the links' MTU changes): what one crossing of a 9 KB frame costs.
    eprintln!("bench-rings: AF_XDP and kernel UDP ping-pongs of {JUMBO_PAYLOAD} B at MTU 9000");
    match bed.set_mtu(JUMBO_MTU) {
        Err(e) => failed(
            &mut notes,
            "jumbo ping-pongs",
            format!("MTU {JUMBO_MTU}: {e}"),
        ),
        Ok(()) => {
            let xsk_jumbo = |addr: SocketAddr| {
                let mut cfg = XskConfig::new("eth0", addr);
                cfg.frame_bytes_max = JUMBO_MTU as usize + ETH_HEADER_LEN;
                XskTransport::open(&cfg).map_err(|e| e.to_string())
            };
            for (name, result) in [
                (
                    "AF_XDP ping-pong (xsk multi-buffer, busy, 8,972 B)",
                    ping_pong(&bed, &xsk_jumbo, plan.ping_samples, JUMBO_PAYLOAD),
                ),
                (
                    "kernel UDP ping-pong (socket, busy, 8,972 B)",
                    ping_pong(&bed, &udp_open, plan.ping_samples, JUMBO_PAYLOAD),
                ),
            ] {
                check_interrupt()?;
                match result {
                    Ok(h) => rings.push(ping_ring(name, "round trip of one 8,972 B datagram", h)),
                    Err(e) => failed(&mut notes, name, e),
                }
            }
        }
    }
    drop(bed);
    let load_after = load_average();

    // Output: one line per ring, the table, the report, the docs block.
    let mut rows = Vec::new();
    for r in &rings {
        let v = |p: f64| r.dist.value_at(p).map_or("–".into(), |v| format!("{v:.2}"));
        println!(
            "ring=\"{}\" count={} p50_us={} p90_us={} p99_us={} p999_us={} max_us={}",
            r.name,
            r.dist.count,
            v(50.0),
            v(90.0),
            v(99.0),
            v(99.9),
            v(100.0)
        );
        rows.push(vec![
            r.name.clone(),
            r.what.to_owned(),
            r.dist.count.to_string(),
            v(50.0),
            v(90.0),
            v(99.0),
            v(99.9),
            v(100.0),
        ]);
    }
    let table_md = table(
        &[
            "ring",
            "one sample",
            "samples",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs",
        ],
        &rows,
    );
    println!("{table_md}");
    let mut rep = Report::new("rings", started);
    let command = if plan.quick {
        "cargo xtask bench rings --quick"
    } else {
        "cargo xtask bench rings"
    };
    let mut md = format!(
        "# rings, {} {}\n\n- Command: `{command}`\n- Machine: {}\n- Load average (1/5/15 min): \
         {load_before} before, {load_after} after\n- Hosts: network namespaces `{PREFIX}1..{PREFIX}3` \
         on one bridge (veth: native XDP, copy-mode AF_XDP)\n\n## Summary\n\n{table_md}\n",
        started.date(),
        started.time(),
        machine.describe()
    );
    let series: Vec<Series<'_>> = rings
        .iter()
        .map(|r| Series {
            name: &r.name,
            dist: &r.dist,
        })
        .collect();
    let svg = percentile_chart("Latency of each ring on rotor's path", "µs", &series);
    md.push_str(&rep.plot("all", "every ring", svg));
    md.push_str("\n## Full distributions (percentile:µs)\n\n");
    let dist_rows: Vec<Vec<String>> = rings
        .iter()
        .map(|r| vec![r.name.clone(), r.dist.to_text(2).replace(',', ", ")])
        .collect();
    md.push_str(&table(&["ring", "distribution"], &dist_rows));
    md.push_str("\n## Notes\n\n");
    for n in &notes {
        md.push_str(n);
        md.push('\n');
    }
    rep.markdown = md;
    let info = RunInfo {
        command: command.to_owned(),
        machine,
        started,
        load_before,
        load_after,
    };
    let path = rep.publish(&info, &table_md, plan.docs)?;
    eprintln!("bench-rings: report {}", path.display());
    Ok(())
}

/// Notes a ring that could not be measured (the bench goes on with the others).
fn failed(notes: &mut Vec<String>, name: &str, e: String) {
    eprintln!("bench-rings: {name}: not measured: {e}");
    notes.push(format!("**{name}: not measured**: {e}\n"));
}

/// Links' MTU and the UDP payload (IPv4) of the jumbo ping-pongs.
const JUMBO_MTU: u32 = 9000;
const JUMBO_PAYLOAD: usize = JUMBO_MTU as usize - 28;

fn ping_ring(name: &str, what: &'static str, h: Histogram<u64>) -> Ring {
    Ring {
        name: name.to_owned(),
        what,
        dist: Dist::from_histogram(&h, 1000.0),
    }
}

/// ipc-shm's bench with `--dist`: its busy and blocking 64 B one-way distributions.
fn shm_rings() -> Result<(Vec<Ring>, String), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(report::workspace_root())
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "ipc-shm",
            "--example",
            "bench_ipc",
        ])
        .args(["--", "--dist"])
        .output()
        .map_err(|e| format!("cargo run bench_ipc: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "bench_ipc failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut rings = Vec::new();
    for line in text.lines().filter_map(Line::parse) {
        if !line.tags.iter().any(|t| t == "dist") || line.get("size") != Some("64") {
            continue;
        }
        let mode = line.get("mode").unwrap_or("?").to_owned();
        let ns = line.dist("dist_ns", "count")?;
        let us = Dist {
            count: ns.count,
            points: ns.points.iter().map(|&(p, v)| (p, v / 1000.0)).collect(),
        };
        rings.push(Ring {
            name: format!("shm ring one-way ({mode}, 64 B)"),
            what: "producer write to consumer read",
            dist: us,
        });
    }
    if rings.is_empty() {
        return Err(format!(
            "no `ipc-shm dist` lines in bench_ipc output:\n{text}"
        ));
    }
    Ok((rings, text))
}

/// Moves the calling thread into network namespace `ns` (network namespaces are per thread).
/// Not `rotor_testbed::in_netns`: that runs one `'static` closure to completion, while these
/// measurements need several threads inside different hosts at once, sharing borrowed state.
fn enter_netns(ns: &str) -> Result<(), String> {
    let f =
        std::fs::File::open(format!("/run/netns/{ns}")).map_err(|e| format!("netns {ns}: {e}"))?;
    // Safety: setns on an open namespace fd; affects only this thread's network namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn host_addr(i: usize) -> SocketAddr {
    SocketAddr::new(rotor_testbed::ipv4(i).into(), PORT)
}

/// Waits for one datagram on `t` (busy), at most `limit`; returns whether one came.
fn take_one<T: Transport>(t: &mut T, limit: Duration) -> Result<bool, String> {
    let deadline = Instant::now() + limit;
    loop {
        if t.recv_batch(&mut |_, _| {}).map_err(|e| e.to_string())? > 0 {
            return Ok(true);
        }
        if Instant::now() > deadline || interrupted() {
            return Ok(false);
        }
        std::hint::spin_loop();
    }
}

/// Round trips of a `size`-byte datagram from host 1 to host 2 and back through providers that
/// `open` builds (inside each host's namespace); both sides busy-poll. The first replies after
/// the neighbour tables fill and 1000 round trips are warm-up.
fn ping_pong<T, F>(
    bed: &Testbed,
    open: &F,
    samples: u64,
    size: usize,
) -> Result<Histogram<u64>, String>
where
    T: Transport,
    F: Fn(SocketAddr) -> Result<T, String> + Sync,
{
    let (h1, h2) = (bed.host(1), bed.host(2));
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    std::thread::scope(|s| {
        let stop = &stop;
        let pong = s.spawn(move || {
            let result = enter_netns(&h2).and_then(|()| open(host_addr(2)));
            let mut t = match result {
                Ok(t) => {
                    let _ = ready_tx.send(Ok(()));
                    t
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let deadline = Instant::now() + STEP_LIMIT * 2;
            let reply = vec![0x5au8; size];
            let mut replies: Vec<SocketAddr> = Vec::with_capacity(64);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                replies.clear();
                if t.recv_batch(&mut |_, from| replies.push(from)).is_err() {
                    break;
                }
                for &to in &replies {
                    let _ = t.send_to(&reply, to);
                }
                if !replies.is_empty() {
                    let _ = t.flush();
                }
            }
        });
        // The ping side runs in its own thread too: the main thread must stay in the root
        // namespace (the testbed's teardown kills every process whose namespace is a host's).
        let ping = s.spawn(move || -> Result<Histogram<u64>, String> {
            ready_rx
                .recv_timeout(STEP_LIMIT)
                .map_err(|_| "pong side never came up".to_string())??;
            enter_netns(&h1)?;
            let mut t = open(host_addr(1))?;
            let to = host_addr(2);
            let msg = vec![0xa5u8; size];
            let send = |t: &mut T| -> Result<(), String> {
                t.send_to(&msg, to).map_err(|e| e.to_string())?;
                t.flush().map_err(|e| e.to_string())
            };
            // Until the first reply: neighbours resolve, programs attach.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                send(&mut t)?;
                if take_one(&mut t, Duration::from_millis(20))? {
                    break;
                }
                if Instant::now() > deadline {
                    return Err("no reply within 10 s".to_string());
                }
                check_interrupt()?;
            }
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| e.to_string())?;
            let (mut lost, mut done) = (0u64, 0u64);
            while done < samples + 1000 {
                check_interrupt()?;
                let t0 = Instant::now();
                send(&mut t)?;
                if take_one(&mut t, Duration::from_secs(1))? {
                    if done >= 1000 {
                        h.saturating_record(t0.elapsed().as_nanos() as u64);
                    }
                    done += 1;
                } else {
                    lost += 1;
                    if lost > 100 {
                        return Err("more than 100 datagrams lost".into());
                    }
                }
            }
            Ok(h)
        });
        let result = joined(ping.join(), "ping side").and_then(|r| r);
        stop.store(true, Ordering::Relaxed);
        // The pong side's panic, if any, is the more telling error.
        joined(pong.join(), "pong side").and(result)
    })
}

/// A thread's result, or its panic as an error naming `who` and the panic message.
fn joined<T>(r: std::thread::Result<T>, who: &str) -> Result<T, String> {
    r.map_err(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("{who} panicked: {why}")
    })
}

/// Token rotation on a 3-node ring of dataplane runners (AES-256-GCM, `kind` provider, each in
/// its host): `samples` intervals between consecutive token receipts at node 1 once the ring of
/// three is operational. The idle ring never holds the token (seqno_unchanged_const is huge),
/// so it rotates back to back.
fn token_rotation(
    bed: &Testbed,
    kind: TransportKind,
    wait: Wait,
    samples: u64,
) -> Result<Histogram<u64>, String> {
    let stop = AtomicBool::new(false);
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs() as u32);
    let hosts: Vec<String> = (1..=3).map(|i| bed.host(i)).collect();
    std::thread::scope(|s| {
        let stop = &stop;
        let mut handles = Vec::new();
        for (idx, ns) in hosts.iter().enumerate() {
            let i = idx + 1;
            handles.push(s.spawn(move || -> Result<Option<Histogram<u64>>, String> {
                let result = (|| {
                    enter_netns(ns)?;
                    let totem = TotemSettings::resolve(
                        explicit(&[("token", 1000), ("seqno_unchanged_const", 1_000_000_000)]),
                        &cluster_shape(2, false, CryptoMode::Gcm256),
                    )
                    .map_err(|e| e.to_string())?;
                    let (t, _) = AnyTransport::open(
                        kind,
                        host_addr(i),
                        None,
                        None,
                        None,
                        totem.netmtu_bytes,
                        KernelUdpIo::default(),
                    )?;
                    let keys = Keys::from_authkey_bytes(&[0x42; 256], "rbring")
                        .map_err(|e| e.to_string())?;
                    let cfg = RunnerConfig {
                        node_id: i as u32,
                        peers: (1..=3)
                            .filter(|&j| j != i)
                            .map(|j| (j as u32, host_addr(j)))
                            .collect(),
                        keys,
                        cluster_name: "rbring".into(),
                        mode: CryptoMode::Gcm256,
                        totem,
                        epoch,
                        ring_seq_start: 0,
                        seed: i as u64,
                        links: None,
                    };
                    let mut runner = Runner::new(cfg, t).map_err(|e| e.to_string())?;
                    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                        .map_err(|e| e.to_string())?;
                    let deadline = Instant::now() + STEP_LIMIT;
                    let (mut last_tokens, mut last_at) = (0u64, Instant::now());
                    let mut last_work = Instant::now();
                    let mut warm = 0u64;
                    while !stop.load(Ordering::Relaxed)
                        && Instant::now() < deadline
                        && !interrupted()
                    {
                        let work = runner
                            .turn(wait.max_wait(last_work.elapsed()), &[], |_| {})
                            .map_err(|e| e.to_string())?;
                        let now = Instant::now();
                        if work > 0 {
                            last_work = now;
                        }
                        if i != 1 {
                            continue;
                        }
                        let node = runner.node();
                        let tokens = node.stats().tokens;
                        if tokens == last_tokens {
                            continue;
                        }
                        let ring_of_three =
                            node.state() == State::Operational && node.members().len() == 3;
                        if ring_of_three && tokens == last_tokens + 1 {
                            // The first rotations after the ring forms are warm-up.
                            warm += 1;
                            if warm > 1000 {
                                h.saturating_record((now - last_at).as_nanos() as u64);
                            }
                        }
                        last_tokens = tokens;
                        last_at = now;
                        if h.len() >= samples {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    runner.node_mut().leave();
                    let _ = runner.flush();
                    Ok((i == 1).then_some(h))
                })();
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                result
            }));
        }
        // Join every thread before looking at any result, so a panic is reported, not re-raised.
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        let mut out = None;
        for (i, r) in results.into_iter().enumerate() {
            if let Some(hist) = joined(r, &format!("token node {}", i + 1))?? {
                out = Some(hist);
            }
        }
        check_interrupt()?;
        let h = out.ok_or("node 1 gave no histogram")?;
        if h.is_empty() {
            return Err("no token rotation measured within 60 s (did the ring of 3 form?)".into());
        }
        Ok(h)
    })
}

/// `rotor bench lat` (64 B) on host 1 of a 3-node rotord cluster configured by `conf`.
fn end_to_end(
    bed: &Testbed,
    count: u64,
    label: &str,
    conf: RotorConf<'_>,
) -> Result<(Ring, String, String), String> {
    let bin = build_rotor()?;
    let dir = std::env::temp_dir().join(format!("rotor-bench-rings-{}", std::process::id()));
    let mut rotor = Rotor::up(bed, &dir, &bin, conf)?;
    let mut cmd = bed.command(1, bin.join("rotor"));
    cmd.arg("bench")
        .args(bench_args("lat", 64, count, 60.0, "rb-e2e", 1));
    let out = run_clients(vec![(1, cmd)], Duration::from_secs(120))?;
    let line = bench_lines(&out, "rotor bench lat")?.remove(0);
    // rotord's own token-rotation histogram over the same run (the dataplane publishes it).
    let rotations = bed
        .command(1, bin.join("rotor"))
        .args(["cmap", "list", "stats.srp.token_rotation"])
        .stdin(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    rotor.daemons.stop(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
    let dist = Line::parse(&line)
        .ok_or("unparsable lat line")?
        .dist("dist_us", "count")?;
    Ok((
        Ring {
            name: format!("end to end, agreed self-delivery (rotor bench lat, xdp, {label})"),
            what: "mcast to own agreed delivery, 64 B",
            dist,
        },
        line,
        rotations,
    ))
}
