//! `cargo xtask bench vs-corosync [--quick] [--hosts N] [--runs R] [--rotor-client c|rust]
//! [--perf] [--sched] [--no-docs]`:
//! Corosync 3 (Debian, knet, aes256+sha256) and rotor (XDP dataplane, AES-256-GCM) on the same
//! network-namespace hosts `vs1..vsN`, in the same run, under the same CPG workloads:
//!
//! - latency: one message in flight from host 1 (the other hosts order it but run no client),
//!   agreed self-delivery, 64 B and 1 KB, 20,000 samples per run by default (p50, p99, p99.9,
//!   maximum);
//! - throughput: every host sends for T seconds; delivered msgs/s at each member (median over
//!   the members), 64 B and 1 KB, and the CPU its steady state used (the machine's and the
//!   daemons', from /proc: `rotor_bench::cpu`) with the CPU per delivered message.
//!
//! Corosync is driven by the C client `bench/csrc/cpg_bench.c` over its libcpg; rotor by
//! `rotor bench`, or with `--rotor-client c` by that same C binary over rotor's libcpg (only
//! the library path differs: exactly like for like).
//!
//! With `--sched`, the last run adds one more 64 B latency run of each system under
//! `perf sched record` (not one of the measured runs): how long the daemons' wake-ups waited
//! for a CPU, and what the CPU ran while a late one waited (`rotor_bench::sched`).
//!
//! Each run brings Corosync up, measures, stops it, then does the same for rotor; ratios are
//! taken per run and their median reported. Prints a table and, last,
//! `vs-corosync lat64_p50_ratio=… lat64_p99_ratio=… tput64_ratio=… tput1k_ratio=…
//! lat64_p999_ratio=…` (Corosync ÷ rotor for latency, rotor ÷ Corosync for throughput: > 1 =
//! rotor better); the report also checks the tail goal (rotor's p99.9 and maximum below
//! Corosync's p50). Writes
//! `bench/reports/vs-corosync-<stamp>.md` with SVG plots and its block in docs/BENCHMARKS.md.
//! Everything it starts is stopped by PID and its hosts removed, on failure and Ctrl-C too.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rotor_bench::cluster::{
    self, bench_args, bench_lines, build_c_client, build_rotor, capi_lib_dir, check_interrupt,
    ensure_corosync, run_clients, Corosync, Daemons, Rotor, RotorClient, RotorConf,
    CLIENT_RT_PRIORITY,
};
use rotor_bench::cpu::{Usage, Window};
use rotor_bench::dist::{median, Dist};
use rotor_bench::line::Line;
use rotor_bench::report::{load_average, table, Machine, Report, RunInfo, Utc};
use rotor_bench::sched::{self, WakeDelays};
use rotor_bench::svg::{bar_chart, percentile_chart, BarGroup, Series};
use rotor_testbed::Testbed;

const SIZES: [usize; 2] = [64, 1024];
const PREFIX: &str = "vs";
/// How many times better rotor must be (docs/BENCHMARKS.md, "performance goals").
const BAR_LAT64: f64 = 10.0;
const BAR_TPUT64: f64 = 80.0;
const BAR_TPUT1K: f64 = 15.0;
/// Latency samples per run: the p99.9 and the maximum mean something only over ≥ 20,000.
const LAT_COUNT_DEFAULT: u64 = 20_000;

struct Plan {
    hosts: usize,
    runs: usize,
    lat_count: u64,
    tput_seconds: f64,
    perf: bool,
    /// The last run also records the daemons' wake-ups under `perf sched` (`--sched`).
    sched: bool,
    docs: bool,
    quick: bool,
    /// rotor{poll_mode} for the dataplanes (None = rotor's default).
    poll: Option<String>,
    /// Both systems with an idle ring that never holds the token.
    no_hold: bool,
    /// Both systems' benchmark clients in the round-robin realtime class
    /// (`CLIENT_RT_PRIORITY`), below the daemons' own.
    client_rt: bool,
    /// rotor's client is the C client Corosync's is (the same binary over rotor's libcpg),
    /// not `rotor bench`.
    c_on_rotor: bool,
}

impl Plan {
    fn parse(args: &[String]) -> Result<Plan, String> {
        let mut p = Plan {
            hosts: 3,
            runs: 3,
            lat_count: LAT_COUNT_DEFAULT,
            tput_seconds: 8.0,
            perf: false,
            sched: false,
            docs: true,
            quick: false,
            poll: None,
            no_hold: false,
            client_rt: false,
            c_on_rotor: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match a.as_str() {
                "--quick" => {
                    p.quick = true;
                    p.runs = 1;
                    p.lat_count = 1000;
                    p.tput_seconds = 3.0;
                }
                "--hosts" => p.hosts = value("--hosts")?.parse().map_err(|_| "--hosts N")?,
                "--runs" => p.runs = value("--runs")?.parse().map_err(|_| "--runs R")?,
                "--lat-count" => {
                    p.lat_count = value("--lat-count")?.parse().map_err(|_| "--lat-count N")?
                }
                "--tput-seconds" => {
                    p.tput_seconds = value("--tput-seconds")?
                        .parse()
                        .map_err(|_| "--tput-seconds S")?
                }
                "--poll" => p.poll = Some(value("--poll")?),
                "--perf" => p.perf = true,
                "--sched" => p.sched = true,
                "--no-hold" => p.no_hold = true,
                "--client-rt" => p.client_rt = true,
                "--rotor-client" => {
                    p.c_on_rotor = match value("--rotor-client")?.as_str() {
                        "c" => true,
                        "rust" => false,
                        _ => return Err("--rotor-client c|rust".into()),
                    }
                }
                "--no-docs" => p.docs = false,
                "-h" | "--help" => {
                    return Err("usage: vs-corosync [--quick] [--hosts N] [--runs R] \
                                [--lat-count N] [--tput-seconds S] [--poll busy|adaptive|blocking] \
                                [--no-hold] [--client-rt] [--rotor-client c|rust] [--perf] \
                                [--sched] [--no-docs]"
                        .into())
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if !(2..=16).contains(&p.hosts) || p.runs == 0 {
            return Err("--hosts must be 2..=16 and --runs at least 1".into());
        }
        Ok(p)
    }

    fn command_line(&self) -> String {
        let mut s = String::from("cargo xtask bench vs-corosync");
        if self.quick {
            s.push_str(" --quick");
        } else {
            s.push_str(&format!(
                " --runs {} --lat-count {} --tput-seconds {}",
                self.runs, self.lat_count, self.tput_seconds
            ));
        }
        if self.hosts != 3 {
            s.push_str(&format!(" --hosts {}", self.hosts));
        }
        if let Some(p) = &self.poll {
            s.push_str(&format!(" --poll {p}"));
        }
        if self.no_hold {
            s.push_str(" --no-hold");
        }
        if self.client_rt {
            s.push_str(" --client-rt");
        }
        if self.c_on_rotor {
            s.push_str(" --rotor-client c");
        }
        if self.perf {
            s.push_str(" --perf");
        }
        if self.sched {
            s.push_str(" --sched");
        }
        s
    }

    /// totem{} keys for both systems.
    fn totem_extra(&self) -> &'static [(&'static str, &'static str)] {
        if self.no_hold {
            &[("seqno_unchanged_const", "1000000000")]
        } else {
            &[]
        }
    }
}

/// `cmd` as it should run: with `--client-rt`, in the realtime class ([`cluster::client_class`]).
fn client_class(plan: &Plan, cmd: Command) -> Command {
    cluster::client_class(plan.client_rt, cmd)
}

/// One system's results in one run.
#[derive(Default)]
struct Run {
    /// size → host 1's lat line.
    lat: BTreeMap<usize, Line>,
    /// size → every host's tput line.
    tput: BTreeMap<usize, Vec<Line>>,
    raw: Vec<String>,
    /// (after which workload, host 1's counters), cumulative.
    stats: Vec<(String, String)>,
    /// size → the CPU the throughput phase used in its steady state.
    cpu: BTreeMap<usize, Usage>,
}

impl Run {
    fn lat_pct(&self, size: usize, key: &str) -> Option<f64> {
        self.lat.get(&size)?.num(key).ok()
    }

    /// Median over the members of delivered msgs/s (`key` = delivered_msgs_per_s or _MBps).
    fn tput(&self, size: usize, key: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .tput
            .get(&size)?
            .iter()
            .filter_map(|l| l.num(key).ok())
            .collect();
        median(&values)
    }

    fn seq_errors(&self) -> f64 {
        self.lat
            .values()
            .chain(self.tput.values().flatten())
            .filter_map(|l| l.num("seq_errors").ok())
            .sum()
    }
}

/// Builds the client command for host `i` with the `rotor bench`-style arguments.
type ClientCmd<'a> = dyn Fn(usize, &[String]) -> Command + 'a;
/// Host 1's counters after a workload (rotor: `rotor cmap list stats.`), if the system has any.
type StatsCmd<'a> = dyn Fn() -> Option<String> + 'a;
/// The system's daemon processes on every host, whose CPU a throughput phase reads.
type DaemonPids<'a> = dyn Fn() -> Vec<u32> + 'a;

fn measure(
    plan: &Plan,
    tag: &str,
    client: &ClientCmd<'_>,
    stats: &StatsCmd<'_>,
    daemons: &DaemonPids<'_>,
) -> Result<Run, String> {
    let mut run = Run::default();
    for size in SIZES {
        check_interrupt()?;
        let group = format!("{tag}-lat{size}");
        let args = bench_args("lat", size, plan.lat_count, 60.0, &group, 1);
        let out = run_clients(vec![(1, client(1, &args))], Duration::from_secs(120))?;
        let line = bench_lines(&out, &format!("{tag} lat {size}"))?.remove(0);
        eprintln!("vs-corosync: {tag}: {line}");
        run.raw.push(format!("{tag} host1 {line}"));
        run.lat
            .insert(size, Line::parse(&line).ok_or("unparsable lat line")?);
    }
    for size in SIZES {
        check_interrupt()?;
        let group = format!("{tag}-tput{size}");
        let args = bench_args(
            "tput",
            size,
            1_000_000_000,
            plan.tput_seconds,
            &group,
            plan.hosts,
        );
        let cmds = (1..=plan.hosts).map(|i| (i, client(i, &args))).collect();
        let limit = Duration::from_secs_f64(plan.tput_seconds + 90.0);
        // The clients join and wait for each other (well under a second), then send for
        // `tput_seconds`: the reading starts after the first third (at most 1.5 s) and ends
        // half a second before they stop.
        let skip = (plan.tput_seconds / 3.0).min(1.5);
        let length = (plan.tput_seconds - skip - 0.5).max(0.5);
        let window = Window::during(
            daemons(),
            Duration::from_secs_f64(skip),
            Duration::from_secs_f64(length),
        );
        let out = run_clients(cmds, limit)?;
        if let Some(u) = window.finish() {
            run.cpu.insert(size, u);
        }
        let lines = bench_lines(&out, &format!("{tag} tput {size}"))?;
        let mut parsed = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            eprintln!("vs-corosync: {tag}: host{} {line}", i + 1);
            run.raw.push(format!("{tag} host{} {line}", i + 1));
            parsed.push(Line::parse(line).ok_or("unparsable tput line")?);
        }
        run.tput.insert(size, parsed);
        if let Some(text) = stats() {
            run.stats.push((format!("after tput {size}"), text));
        }
    }
    Ok(run)
}

/// A system-wide `perf record` (cpu-clock samples: this VM has no hardware counters) while the
/// clients of `hosts` run `args`; returns the flat profile by command, library and symbol, or
/// why there is none. Not one of the measured runs.
fn profile(
    plan: &Plan,
    work: &Path,
    client: &ClientCmd<'_>,
    hosts: usize,
    args: &[String],
) -> Result<String, String> {
    let data = work.join(format!("perf-{}-{}.data", args[0], args[2]));
    let mut perf = Daemons::default();
    let mut cmd = Command::new("perf");
    cmd.args(["record", "-a", "-g", "-F", "999", "-o"])
        .arg(&data)
        .args(["--", "sleep", "6"]);
    perf.start("perf", cmd, &work.join("perf.log"))?;
    std::thread::sleep(Duration::from_millis(300));
    let cmds = (1..=hosts).map(|i| (i, client(i, args))).collect();
    let out = run_clients(cmds, Duration::from_secs(60 + plan.hosts as u64))?;
    let lines = bench_lines(&out, "profiled run")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while perf.exited().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    perf.stop(Duration::from_secs(5));
    // CPU share per command first (who had the cores), then the hottest symbols.
    let mut sections = Vec::new();
    for (sort, limit) in [("comm", "0.5"), ("comm,dso,sym", "0.7")] {
        let report = Command::new("perf")
            .args(["report", "--stdio", "--no-children", "--sort", sort])
            .args(["--percent-limit", limit, "-g", "none", "-i"])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("perf report: {e}"))?;
        let text = String::from_utf8_lossy(&report.stdout).into_owned();
        let body: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .take(40)
            .collect();
        sections.push(body.join("\n"));
    }
    Ok(format!(
        "`{}` on {hosts} host(s), perf sampling all CPUs for 6 s:\n\n```\n{}\n\n{}\n```\n",
        args.join(" "),
        lines.join("\n"),
        sections.join("\n\n")
    ))
}

/// With `--sched`, wake-ups that waited longer than this (µs) are sorted by what their CPU ran
/// meanwhile: about a rotation of rotor's idle ring, and half of Corosync's p50 latency.
const SCHED_LATE_US: f64 = 200.0;

/// With `--sched`: one more 64 B latency run from host 1, not one of the measured runs, under
/// `perf sched record`; returns a table row: the run's percentiles, the wake-up delays of
/// `pids`' threads (the daemons of every host, named `daemon`) and what the CPU of each late
/// one ran.
fn wakeups(
    plan: &Plan,
    work: &Path,
    (system, daemon): (&str, &str),
    client: &ClientCmd<'_>,
    pids: &[u32],
) -> Result<Vec<String>, String> {
    let slug = system
        .split_whitespace()
        .next()
        .unwrap_or(system)
        .to_lowercase();
    let rec = sched::Recording::start(work, &slug)?;
    let args = bench_args("lat", 64, plan.lat_count, 60.0, &format!("sched-{slug}"), 1);
    let out = run_clients(vec![(1, client(1, &args))], Duration::from_secs(120));
    let text = rec.finish()?;
    let line = bench_lines(&out?, &format!("{system} sched run"))?.remove(0);
    eprintln!("vs-corosync: {system} under perf sched: {line}");
    let lat = Line::parse(&line).ok_or("unparsable lat line")?;
    let w = WakeDelays::analyse(&text, pids, SCHED_LATE_US);
    let pct = |d: &Dist, p: f64| d.value_at(p).map_or("–".into(), |v| format!("{v:.0}"));
    let delays = w.dist.as_ref().map_or("–".into(), |d| {
        format!(
            "{} / {} / {} / {}",
            pct(d, 50.0),
            pct(d, 99.0),
            pct(d, 99.9),
            pct(d, 100.0)
        )
    });
    let lat_num = |k: &str| lat.num(k).map_or("–".into(), |v| format!("{v:.0}"));
    Ok(vec![
        system.to_owned(),
        format!(
            "{} / {} / {} / {}",
            lat_num("p50_us"),
            lat_num("p99_us"),
            lat_num("p999_us"),
            lat_num("max_us")
        ),
        w.wakes.to_string(),
        delays,
        format!(
            "{} ({:.2} ‰)",
            w.late_total(),
            1000.0 * w.late_total() as f64 / w.wakes.max(1) as f64
        ),
        w.late_text(daemon),
    ])
}

/// The `--sched` section of the report from [`wakeups`]' rows.
fn sched_section(rows: &[Vec<String>], plan: &Plan) -> String {
    format!(
        "## Wake-ups under perf sched\n\nOne more 64 B latency run of {} messages per system \
         in the last run, from host 1, with `perf sched record -a` on (so not one of the \
         measured runs: tracing costs a little on every switch). A wake-up's delay is from the \
         daemon thread's wake-up to its switch-in (`perf sched timehist`), over the daemons of \
         every host (Corosync: `corosync`; rotor: `rotor-dataplane`, whose threads carry the \
         token; both realtime). A late one (over {SCHED_LATE_US} µs) is sorted by what its \
         CPU ran just before it:\n\n\
         - a CPU that stayed idle: the wake-up had to bring the virtual CPU back, which is the \
         host's to schedule;\n\
         - a normal-class task (a client, perf, a kernel thread): a realtime wake-up preempts \
         it at its next preemption point, so the wait was a kernel section without one (a \
         kernel built for no forced preemption runs one to its end) or a virtual CPU the host \
         was not running;\n\
         - another thread of the same daemons, or rotord (the same priority: no preemption): \
         the system's own work.\n\n{}\n",
        plan.lat_count,
        table(
            &[
                "system",
                "latency p50 / p99 / p99.9 / max (µs)",
                "wake-ups",
                "delay p50 / p99 / p99.9 / max (µs)",
                &format!("late (> {SCHED_LATE_US} µs)"),
                "what the CPU ran before a late one",
            ],
            rows,
        )
    )
}

struct Summary {
    /// (label, Corosync value, rotor value, ratio, bar) rows.
    rows: Vec<[String; 5]>,
    ratios: Ratios,
}

/// The medians of the per-run ratios (NaN where a run lacked the figure), each "how many
/// times better rotor is", and the tail goal's figures.
struct Ratios {
    lat64_p50: f64,
    lat64_p99: f64,
    /// Corosync's p99.9 over rotor's.
    lat64_p999: f64,
    tput64: f64,
    tput1k: f64,
    /// rotor's 64 B p99.9 and maximum, and Corosync's 64 B p50 (medians over runs, µs): the
    /// goal is a tail below Corosync's median.
    rotor64_p999_us: f64,
    rotor64_max_us: f64,
    coro64_p50_us: f64,
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

fn per_run_median(runs: &[Run], f: impl Fn(&Run) -> Option<f64>) -> Option<f64> {
    median(&runs.iter().filter_map(f).collect::<Vec<_>>())
}

fn summarise(coro: &[Run], rotor: &[Run]) -> Summary {
    // Ratios per run (same run = same load), then the median over runs.
    let ratio = |better_low: bool, f: &dyn Fn(&Run) -> Option<f64>| {
        let per_run: Vec<f64> = coro
            .iter()
            .zip(rotor)
            .filter_map(|(c, r)| {
                let (c, r) = (f(c)?, f(r)?);
                (c > 0.0 && r > 0.0).then(|| if better_low { c / r } else { r / c })
            })
            .collect();
        median(&per_run)
    };
    let mut rows = Vec::new();
    let mut ratios = Ratios {
        lat64_p50: f64::NAN,
        lat64_p99: f64::NAN,
        lat64_p999: f64::NAN,
        tput64: f64::NAN,
        tput1k: f64::NAN,
        rotor64_p999_us: f64::NAN,
        rotor64_max_us: f64::NAN,
        coro64_p50_us: f64::NAN,
    };
    for size in SIZES {
        for (pct, key) in [
            ("p50", "p50_us"),
            ("p99", "p99_us"),
            ("p99.9", "p999_us"),
            ("max", "max_us"),
        ] {
            let f = |r: &Run| r.lat_pct(size, key);
            let q = ratio(true, &f);
            let bar = match (size, key) {
                (64, "p50_us" | "p99_us") => format!("≥ {BAR_LAT64}"),
                (64, _) => "below Corosync's p50".into(),
                _ => "–".into(),
            };
            let (coro_median, rotor_median) = (per_run_median(coro, f), per_run_median(rotor, f));
            if size == 64 {
                let q = q.unwrap_or(f64::NAN);
                let nan = f64::NAN;
                match key {
                    "p50_us" => {
                        ratios.lat64_p50 = q;
                        ratios.coro64_p50_us = coro_median.unwrap_or(nan);
                    }
                    "p99_us" => ratios.lat64_p99 = q,
                    "p999_us" => {
                        ratios.lat64_p999 = q;
                        ratios.rotor64_p999_us = rotor_median.unwrap_or(nan);
                    }
                    _ => ratios.rotor64_max_us = rotor_median.unwrap_or(nan),
                }
            }
            rows.push([
                format!("latency {} {pct} (µs)", size_name(size)),
                fmt(coro_median, 1),
                fmt(rotor_median, 1),
                fmt(q, 2),
                bar,
            ]);
        }
    }
    for size in SIZES {
        let f = |r: &Run| r.tput(size, "delivered_msgs_per_s");
        let mb = |r: &Run| r.tput(size, "delivered_MBps");
        let q = ratio(false, &f);
        let bar = if size == 64 { BAR_TPUT64 } else { BAR_TPUT1K };
        if size == 64 {
            ratios.tput64 = q.unwrap_or(f64::NAN);
        } else {
            ratios.tput1k = q.unwrap_or(f64::NAN);
        }
        rows.push([
            format!("throughput {} (msgs/s per member)", size_name(size)),
            fmt(per_run_median(coro, f), 0),
            fmt(per_run_median(rotor, f), 0),
            fmt(q, 2),
            format!("≥ {bar}"),
        ]);
        rows.push([
            format!("throughput {} (MB/s per member)", size_name(size)),
            fmt(per_run_median(coro, mb), 2),
            fmt(per_run_median(rotor, mb), 2),
            fmt(ratio(false, &mb), 2),
            "–".into(),
        ]);
    }
    Summary { rows, ratios }
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn last_line(r: &Ratios) -> String {
    format!(
        "vs-corosync lat64_p50_ratio={:.2} lat64_p99_ratio={:.2} tput64_ratio={:.2} \
         tput1k_ratio={:.2} lat64_p999_ratio={:.2}",
        r.lat64_p50, r.lat64_p99, r.tput64, r.tput1k, r.lat64_p999
    )
}

fn shortfalls(r: &Ratios) -> Vec<String> {
    let mut out = Vec::new();
    for (name, v, bar) in [
        ("64 B latency p50", r.lat64_p50, BAR_LAT64),
        ("64 B latency p99", r.lat64_p99, BAR_LAT64),
        ("64 B throughput", r.tput64, BAR_TPUT64),
        ("1 KB throughput", r.tput1k, BAR_TPUT1K),
    ] {
        if v.is_nan() || v < bar {
            out.push(format!("{name}: {v:.2}× against a bar of {bar}×"));
        }
    }
    let coro_p50 = r.coro64_p50_us;
    for (name, v) in [("p99.9", r.rotor64_p999_us), ("maximum", r.rotor64_max_us)] {
        if v.is_nan() || coro_p50.is_nan() || v >= coro_p50 {
            out.push(format!(
                "64 B latency {name}: {v:.1} µs against Corosync's p50 of {coro_p50:.1} µs"
            ));
        }
    }
    out
}

fn main() {
    cluster::bench_main("vs-corosync", run);
}

fn run(args: &[String]) -> Result<(), String> {
    let plan = Plan::parse(args)?;
    if !rotor_testbed::root_or_skip("vs-corosync needs network namespaces and XDP") {
        return Err("not root".into());
    }
    let started = Utc::now();
    let machine = Machine::detect();
    ensure_corosync()?;
    let bin = build_rotor()?;
    let cpg_bench = bin.join("cpg_bench");
    build_c_client(&cpg_bench)?;
    let rotor_client = if plan.c_on_rotor {
        RotorClient::C {
            cpg_bench: cpg_bench.clone(),
            libs: capi_lib_dir(&bin)?,
        }
    } else {
        RotorClient::Native {
            rotor: bin.join("rotor"),
        }
    };
    let work = std::env::temp_dir().join(format!("rotor-bench-vs-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let load_before = load_average();
    eprintln!(
        "vs-corosync: {} hosts, {} run(s), lat {} msgs, tput {} s; load {load_before}; logs in {}",
        plan.hosts,
        plan.runs,
        plan.lat_count,
        plan.tput_seconds,
        work.display()
    );
    let bed = Testbed::up(PREFIX, plan.hosts).map_err(|e| format!("testbed: {e}"))?;

    let (mut coro_runs, mut rotor_runs) = (Vec::new(), Vec::new());
    let mut profile_text = None;
    let mut sched_rows = Vec::new();
    for r in 0..plan.runs {
        let dir = work.join(format!("corosync-{r}"));
        eprintln!("vs-corosync: run {}: Corosync up", r + 1);
        let mut c = Corosync::up(&bed, &dir, plan.totem_extra())?;
        let client = |i: usize, a: &[String]| {
            let args: Vec<&str> = a.iter().map(String::as_str).collect();
            client_class(&plan, Corosync::command(&bed, &dir, i, &cpg_bench, &args))
        };
        coro_runs.push(measure(
            &plan,
            &format!("corosync-r{r}"),
            &client,
            &|| None,
            &|| c.daemons.pids(),
        )?);
        if plan.sched && r + 1 == plan.runs {
            sched_rows.push(wakeups(
                &plan,
                &work,
                ("Corosync 3", "corosync"),
                &client,
                &c.daemons.pids(),
            )?);
        }
        c.daemons.stop(Duration::from_secs(10));
        check_interrupt()?;
        eprintln!("vs-corosync: run {}: rotor up", r + 1);
        let conf = RotorConf {
            poll: plan.poll.as_deref(),
            totem: plan.totem_extra(),
            ..RotorConf::default()
        };
        let mut rt = Rotor::up(&bed, &work.join(format!("rotor-{r}")), &bin, conf)?;
        let client = |i: usize, a: &[String]| {
            let mut cmd = bed.command(i, rotor_client.program());
            rotor_client.prepare(&mut cmd);
            cmd.args(a);
            client_class(&plan, cmd)
        };
        let stats = || {
            let out = bed
                .command(1, bin.join("rotor"))
                .args(["cmap", "list", "stats."])
                .stdin(Stdio::null())
                .output()
                .ok()?;
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let daemons = || {
            let mut pids = rt.daemons.pids();
            pids.extend(rt.dataplane_pids());
            pids
        };
        rotor_runs.push(measure(
            &plan,
            &format!("rotor-r{r}"),
            &client,
            &stats,
            &daemons,
        )?);
        if plan.perf && r + 1 == plan.runs {
            let lat = bench_args("lat", 64, 1_000_000, 4.0, "perf-lat", 1);
            let secs = plan.tput_seconds.min(4.0);
            let tput = bench_args("tput", 1024, 1_000_000_000, secs, "perf-tput", plan.hosts);
            let mut text = String::new();
            for (n, args) in [(1, &lat), (plan.hosts, &tput)] {
                text.push_str(&profile(&plan, &work, &client, n, args).unwrap_or_else(|e| e));
                text.push('\n');
            }
            profile_text = Some(text);
        }
        if plan.sched && r + 1 == plan.runs {
            sched_rows.push(wakeups(
                &plan,
                &work,
                ("rotor", "rotor-dataplane"),
                &client,
                &rt.dataplane_pids(),
            )?);
        }
        rt.daemons.stop(Duration::from_secs(10));
    }
    let load_after = load_average();
    drop(bed);
    let summary = summarise(&coro_runs, &rotor_runs);
    let header = ["", "Corosync 3", "rotor", "ratio", "bar"];
    let rows: Vec<Vec<String>> = summary.rows.iter().map(|r| r.to_vec()).collect();
    let table_md = table(&header, &rows);
    let seq_errors: f64 = coro_runs
        .iter()
        .chain(&rotor_runs)
        .map(Run::seq_errors)
        .sum();
    println!("{table_md}");
    let last = last_line(&summary.ratios);
    let short = shortfalls(&summary.ratios);

    // The report.
    let mut rep = Report::new("vs-corosync", started);
    let mut md = format!(
        "# vs-corosync, {} {}\n\n\
         - Command: `{}`\n- Machine: {}\n- Load average (1/5/15 min): {load_before} before, \
         {load_after} after\n- Hosts: {} network namespaces `{PREFIX}1..{PREFIX}{}` on one \
         bridge (veth: native XDP, copy-mode AF_XDP)\n- Corosync: Debian corosync 3 (knet, \
         aes256 + sha256), driven by `bench/csrc/cpg_bench.c` over libcpg\n- rotor: rotord + \
         rotor-dataplane, transport xdp, AES-256-GCM, poll mode {}; driven by {}\n\
         - Workloads: latency = {} messages, one in flight, from host 1 (agreed self-delivery); \
         throughput = every host sends for {} s, delivered msgs/s at each member (median over \
         members)\n- Runs: {} (each: Corosync up, measure, down; rotor up, measure, down); \
         figures are medians over runs, ratios medians of the per-run ratios\n- Sequence \
         errors (all clients, all runs): {seq_errors}\n- Token hold: {}\n- Benchmark clients: {}\n\n## Results\n\n\
         {table_md}\n`{last}`\n\n",
        started.date(),
        started.time(),
        plan.command_line(),
        machine.describe(),
        plan.hosts,
        plan.hosts,
        plan.poll
            .as_deref()
            .unwrap_or("default (auto: see the dataplane log for what it chose and why)"),
        if plan.c_on_rotor {
            "the same `cpg_bench` binary over rotor's libcpg.so.4 (`LD_LIBRARY_PATH`)"
        } else {
            "`rotor bench` (the native client)"
        },
        plan.lat_count,
        plan.tput_seconds,
        plan.runs,
        if plan.no_hold {
            "off in both systems (`totem.seqno_unchanged_const: 1000000000`: an idle ring never \
             holds the token)"
        } else {
            "both systems' default (an idle ring's token is held after 30 idle rotations)"
        },
        if plan.client_rt {
            format!("SCHED_RR priority {CLIENT_RT_PRIORITY} in both systems (the daemons: 99)")
        } else {
            "the normal class (SCHED_OTHER) in both systems".to_owned()
        },
    );
    if short.is_empty() {
        md.push_str(
            "Every ratio meets the bar of the performance goals (docs/BENCHMARKS.md), and the tail \
             is below Corosync's p50.\n\n",
        );
    } else {
        md.push_str("Short of the bar (the performance goals, docs/BENCHMARKS.md):\n\n");
        for s in &short {
            md.push_str(&format!("- {s}\n"));
        }
        md.push_str(
            "\nWhere the time goes: see the per-ring figures of `cargo xtask bench rings` \
             (docs/BENCHMARKS.md, section rings) and the profile below when run with `--perf`.\n\n",
        );
    }
    md.push_str("## Latency distributions\n\n");
    for size in SIZES {
        let c = Dist::median(&dists(&coro_runs, size));
        let r = Dist::median(&dists(&rotor_runs, size));
        let mut series = Vec::new();
        if let Some(c) = &c {
            series.push(Series {
                name: "Corosync 3 (knet)",
                dist: c,
            });
        }
        if let Some(r) = &r {
            series.push(Series {
                name: "rotor (xdp)",
                dist: r,
            });
        }
        let svg = percentile_chart(
            &format!(
                "Agreed self-delivery latency, {}, one in flight, {} nodes",
                size_name(size),
                plan.hosts
            ),
            "µs",
            &series,
        );
        md.push_str(&rep.plot(
            &format!("lat{size}"),
            &format!("latency {}", size_name(size)),
            svg,
        ));
        md.push('\n');
        let mut rows = Vec::new();
        for (name, d) in [("Corosync 3", &c), ("rotor", &r)] {
            if let Some(d) = d {
                rows.push(vec![name.to_owned(), d.to_text(1).replace(',', ", ")]);
            }
        }
        md.push_str(&table(
            &["system", "percentile:µs (median over runs)"],
            &rows,
        ));
        md.push('\n');
    }
    md.push_str("## Throughput\n\n");
    let groups: Vec<BarGroup<'_>> = SIZES
        .iter()
        .map(|&size| BarGroup {
            label: if size == 64 { "64 B" } else { "1 KB" },
            values: vec![
                per_run_median(&coro_runs, |r| r.tput(size, "delivered_msgs_per_s")),
                per_run_median(&rotor_runs, |r| r.tput(size, "delivered_msgs_per_s")),
            ],
        })
        .collect();
    let svg = bar_chart(
        &format!(
            "Delivered msgs/s per member, {} nodes all sending",
            plan.hosts
        ),
        "msgs/s",
        &["Corosync 3 (knet)", "rotor (xdp)"],
        &groups,
    );
    md.push_str(&rep.plot("tput", "throughput", svg));
    md.push('\n');
    md.push_str(&cpu_section(&coro_runs, &rotor_runs, plan.tput_seconds));
    if let Some(p) = &profile_text {
        md.push_str(&format!("## Profile (perf, system-wide)\n\n{p}\n"));
    }
    if !sched_rows.is_empty() {
        md.push_str(&sched_section(&sched_rows, &plan));
    }
    md.push_str("## Raw lines\n\n```\n");
    for run in coro_runs.iter().zip(&rotor_runs) {
        for l in run.0.raw.iter().chain(&run.1.raw) {
            md.push_str(l);
            md.push('\n');
        }
    }
    md.push_str("```\n");
    if let Some(last) = rotor_runs.last() {
        md.push_str("\n## rotor counters on host 1 (last run, cumulative)\n\n");
        for (when, text) in &last.stats {
            let keep: Vec<&str> = text.lines().filter(|l| !l.contains("= 0")).collect();
            md.push_str(&format!("{when}:\n\n```\n{}\n```\n\n", keep.join("\n")));
        }
    }
    rep.markdown = md;
    let info = RunInfo {
        command: plan.command_line(),
        machine,
        started,
        load_before,
        load_after,
    };
    let path = rep.publish(&info, &format!("{table_md}\n`{last}`\n"), plan.docs)?;
    eprintln!("vs-corosync: report {}", path.display());
    let _ = std::fs::remove_dir_all(&work);
    println!("{last}");
    Ok(())
}

/// The CPU of each throughput phase's steady state, per system and size (medians over
/// runs): how busy the machine was, how much of it the daemons, and what a message delivered
/// at any member cost. On a machine whose cores are all busy, throughput is the cores
/// divided by that cost.
fn cpu_section(coro: &[Run], rotor: &[Run], tput_seconds: f64) -> String {
    let mut rows = Vec::new();
    for (name, runs) in [("Corosync 3", coro), ("rotor", rotor)] {
        for size in SIZES {
            let each: Vec<(Usage, f64)> = runs
                .iter()
                .filter_map(|r| {
                    let total: f64 = r
                        .tput
                        .get(&size)?
                        .iter()
                        .filter_map(|l| l.num("delivered_msgs_per_s").ok())
                        .sum();
                    Some((*r.cpu.get(&size)?, total))
                })
                .collect();
            if each.is_empty() {
                continue;
            }
            let med = |f: &dyn Fn(&(Usage, f64)) -> f64| {
                median(&each.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
            };
            rows.push(vec![
                format!("{name}, {}", size_name(size)),
                format!("{:.2} of {}", med(&|e| e.0.machine), each[0].0.cpus),
                format!("{:.2}", med(&|e| e.0.procs_user)),
                format!("{:.2}", med(&|e| e.0.procs_system)),
                format!("{:.0}", med(&|e| e.1)),
                format!("{:.2}", med(&|e| e.0.per_message_us(e.1).0)),
                format!("{:.2}", med(&|e| e.0.per_message_us(e.1).1)),
            ]);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "## CPU during throughput\n\nRead from /proc in each throughput phase's steady state (from \
         a third of its {tput_seconds} s, at most 1.5 s, to half a second before its end), \
         medians over runs. Cores are CPU-seconds per second; daemons are every host's \
         corosync, or rotord and its dataplane; a delivered message is one delivery at one \
         member (all members together).\n\n{}\n",
        table(
            &[
                "system, size",
                "machine busy (cores)",
                "daemons user (cores)",
                "daemons system (cores)",
                "deliveries/s, all members",
                "µs CPU per delivery (machine)",
                "µs CPU per delivery (daemons)",
            ],
            &rows,
        )
    )
}

fn dists(runs: &[Run], size: usize) -> Vec<Dist> {
    runs.iter()
        .filter_map(|r| r.lat.get(&size)?.dist("dist_us", "count").ok())
        .collect()
}
