//! `cargo xtask bench capi [--runs R] [--lat-count N] [--tput-seconds T] [--client-rt]
//! [--perf-stat] [--no-docs]`: the drop-in path against the native one, on the same rotor
//! cluster (hosts `ca1..ca3`, XDP dataplane, AES-256-GCM): `bench/csrc/cpg_bench.c` — the C
//! client of vs-corosync, unchanged, built against Debian's libcpg — run with rotor's
//! libcpg.so.4 first on `LD_LIBRARY_PATH`, and `rotor bench` (rotor-client), each workload
//! run by both clients back to back, the C client first in odd runs and the Rust client first
//! in even ones (so neither always meets a freshly idle or a freshly loaded machine): latency
//! 64 B from host 1 (one message in flight, agreed self-delivery), throughput 64 B and 1 KB with every host sending (delivered msgs/s, median over the
//! members). Ratios are C ÷ Rust for throughput and Rust ÷ C for latency (1.0 = the same; the
//! goal is ≥ 0.9), taken in each run and reported per run and as the median over runs.
//! `--client-rt` runs both clients in the realtime class below the daemons (as vs-corosync's);
//! `--perf-stat` counts system calls, context switches and CPU time per delivered message of
//! the clients and of the dataplanes during each 64 B throughput phase (`perf stat`; it slows
//! every system call, so its runs are for finding costs, not for the ratios). Writes
//! `bench/reports/capi-<stamp>.md` and its block in docs/BENCHMARKS.md; the last stdout line is
//! `capi lat64_p50_ratio=… lat64_p99_ratio=… tput64_ratio=… tput1k_ratio=…`.

use std::path::Path;
use std::time::Duration;

use rotor_bench::cluster::{
    self, bench_args, bench_lines, build_c_client, build_rotor, capi_lib_dir, check_interrupt,
    client_class, run_clients, Rotor, RotorClient, RotorConf, CLIENT_RT_PRIORITY,
};
use rotor_bench::dist::median;
use rotor_bench::line::Line;
use rotor_bench::perfstat;
use rotor_bench::report::{load_average, table, Machine, Report, RunInfo, Utc};
use rotor_testbed::Testbed;

const PREFIX: &str = "ca";
const HOSTS: usize = 3;

struct Plan {
    runs: usize,
    lat_count: u64,
    tput_seconds: f64,
    docs: bool,
    client_rt: bool,
    perf_stat: bool,
    args: Vec<String>,
}

impl Plan {
    fn parse(args: &[String]) -> Result<Plan, String> {
        let mut p = Plan {
            runs: 3,
            lat_count: 5000,
            tput_seconds: 5.0,
            docs: true,
            client_rt: false,
            perf_stat: false,
            args: args.to_vec(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--runs" => p.runs = value()?.parse().map_err(|_| "--runs: a number")?,
                "--lat-count" => {
                    p.lat_count = value()?.parse().map_err(|_| "--lat-count: a number")?
                }
                "--tput-seconds" => {
                    p.tput_seconds = value()?.parse().map_err(|_| "--tput-seconds: seconds")?
                }
                "--no-docs" => p.docs = false,
                "--client-rt" => p.client_rt = true,
                "--perf-stat" => p.perf_stat = true,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(p)
    }
}

/// The clients, by index: 0 the C client through libcpg, 1 rotor bench.
const TAGS: [&str; 2] = ["c-libcpg", "rust"];

/// (workload, client) → figures of each run, in run order.
#[derive(Default)]
struct Figures {
    lat_p50: [Vec<f64>; 2],
    lat_p99: [Vec<f64>; 2],
    tput64: [Vec<f64>; 2],
    tput1k: [Vec<f64>; 2],
    seq_errors: f64,
    raw: Vec<String>,
    /// `--perf-stat`: one line per run and client, the 64 B throughput phase's costs.
    costs: Vec<String>,
}

/// The clients' order in run `r` (from 0): the C client first in odd runs (1, 3, …).
fn order(r: usize) -> [usize; 2] {
    if r % 2 == 0 {
        [0, 1]
    } else {
        [1, 0]
    }
}

fn main() {
    cluster::bench_main("capi", run);
}

fn run(args: &[String]) -> Result<(), String> {
    let plan = Plan::parse(args)?;
    if !rotor_testbed::root_or_skip("bench capi needs network namespaces and XDP") {
        return Err("not root".into());
    }
    let started = Utc::now();
    let machine = Machine::detect();
    let bin = build_rotor()?;
    let cpg_bench = bin.join("cpg_bench");
    build_c_client(&cpg_bench)?;
    // In the order of `TAGS`.
    let clients = [
        RotorClient::C {
            cpg_bench,
            libs: capi_lib_dir(&bin)?,
        },
        RotorClient::Native {
            rotor: bin.join("rotor"),
        },
    ];
    let work = std::env::temp_dir().join(format!("rotor-bench-capi-{}", std::process::id()));
    let load_before = load_average();
    let bed = Testbed::up(PREFIX, HOSTS).map_err(|e| format!("testbed: {e}"))?;
    let rotor = Rotor::up(&bed, &work, &bin, RotorConf::default())?;
    let mut f = Figures::default();
    // `perf_out`: count the client into that file with `perf stat`.
    let client = |which: usize, i: usize, a: &[String], perf_out: Option<&Path>| {
        let rc = &clients[which];
        let mut cmd = match perf_out {
            Some(out) => {
                let mut cmd = bed.command(i, "perf");
                perfstat::wrap(&mut cmd, out, rc.program());
                cmd
            }
            None => bed.command(i, rc.program()),
        };
        rc.prepare(&mut cmd);
        cmd.args(a);
        client_class(plan.client_rt, cmd)
    };
    for r in 0..plan.runs {
        // Each workload runs both clients back to back, so a ratio compares two phases a few
        // seconds apart: the machine's drift over a run (seen as 0.77–1.04 spreads when each
        // client ran all its workloads in turn) weighs on both alike.
        for which in order(r) {
            let tag = TAGS[which];
            check_interrupt()?;
            // Every CPG message carries its group's name: the two clients' names are of one
            // length (the client's index, not its tag), so neither sends more bytes.
            let group = format!("capi-{which}-r{r}-lat");
            let args = bench_args("lat", 64, plan.lat_count, 60.0, &group, 1);
            let lat = client(which, 1, &args, None);
            let out = run_clients(vec![(1, lat)], Duration::from_secs(120))?;
            let line = bench_lines(&out, &format!("{tag} lat 64"))?.remove(0);
            eprintln!("capi: run {}: {tag}: {line}", r + 1);
            f.raw.push(format!("run {} {tag} host1 {line}", r + 1));
            let l = Line::parse(&line).ok_or("unparsable lat line")?;
            f.lat_p50[which].push(l.num("p50_us")?);
            f.lat_p99[which].push(l.num("p99_us")?);
            f.seq_errors += l.num("seq_errors")?;
        }
        for size in [64usize, 1024] {
            for which in order(r) {
                let tag = TAGS[which];
                check_interrupt()?;
                let group = format!("capi-{which}-r{r}-tput{size}");
                let args = bench_args(
                    "tput",
                    size,
                    1_000_000_000,
                    plan.tput_seconds,
                    &group,
                    HOSTS,
                );
                let counted = plan.perf_stat && size == 64;
                let perf_file = |who: &str| work.join(format!("perf-r{r}-{tag}-{who}.csv"));
                let cmds = (1..=HOSTS)
                    .map(|i| {
                        let out = counted.then(|| perf_file(&format!("client{i}")));
                        (i, client(which, i, &args, out.as_deref()))
                    })
                    .collect();
                let dataplanes = if counted {
                    let pids = rotor.dataplane_pids();
                    if pids.len() != HOSTS {
                        return Err(format!("found dataplanes {pids:?}, want {HOSTS}"));
                    }
                    Some(perfstat::attach(
                        &pids,
                        plan.tput_seconds,
                        &perf_file("dataplanes"),
                    )?)
                } else {
                    None
                };
                let limit = Duration::from_secs_f64(plan.tput_seconds + 90.0);
                let outcome = run_clients(cmds, limit);
                if let Some(mut p) = dataplanes {
                    let _ = p.wait();
                }
                let lines = bench_lines(&outcome?, &format!("{tag} tput {size}"))?;
                let mut rates = Vec::new();
                for (i, line) in lines.iter().enumerate() {
                    eprintln!("capi: run {}: {tag}: host{} {line}", r + 1, i + 1);
                    f.raw
                        .push(format!("run {} {tag} host{} {line}", r + 1, i + 1));
                    let l = Line::parse(line).ok_or("unparsable tput line")?;
                    rates.push(l.num("delivered_msgs_per_s")?);
                    f.seq_errors += l.num("seq_errors")?;
                }
                if counted {
                    // Messages delivered at all members during the phase.
                    let msgs = rates.iter().sum::<f64>() * plan.tput_seconds;
                    let mut clients = perfstat::Counts::default();
                    for i in 1..=HOSTS {
                        clients = clients
                            .plus(perfstat::Counts::read(&perf_file(&format!("client{i}")))?);
                    }
                    let dp = perfstat::Counts::read(&perf_file("dataplanes"))?;
                    let cost = format!(
                        "run {} {tag} tput 64 per delivered message: clients {} | dataplanes {}",
                        r + 1,
                        clients.per_message(msgs),
                        dp.per_message(msgs)
                    );
                    eprintln!("capi: {cost}");
                    f.costs.push(cost);
                }
                let m = median(&rates).unwrap_or(0.0);
                if size == 64 {
                    f.tput64[which].push(m);
                } else {
                    f.tput1k[which].push(m);
                }
            }
        }
    }
    drop(rotor);
    drop(bed);
    let load_after = load_average();
    let _ = std::fs::remove_dir_all(&work);
    let med = |v: &Vec<f64>| median(v).unwrap_or(0.0);
    let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 0.0 };
    let rows_src = [
        ("latency 64 B p50 (µs)", &f.lat_p50, true),
        ("latency 64 B p99 (µs)", &f.lat_p99, true),
        ("throughput 64 B (msgs/s per member)", &f.tput64, false),
        ("throughput 1 KB (msgs/s per member)", &f.tput1k, false),
    ];
    // Each run's ratio (C and Rust measured in the same run), better-is-higher.
    let run_ratios: Vec<Vec<f64>> = rows_src
        .iter()
        .map(|(_, v, lower_better)| {
            (0..plan.runs)
                .map(|r| {
                    let (c, rust) = (v[0][r], v[1][r]);
                    if *lower_better {
                        ratio(rust, c)
                    } else {
                        ratio(c, rust)
                    }
                })
                .collect()
        })
        .collect();
    let ratios: Vec<f64> = run_ratios.iter().map(med).collect();
    let rows: Vec<Vec<String>> = rows_src
        .iter()
        .zip(&run_ratios)
        .zip(&ratios)
        .map(|(((name, v, _), per_run), q)| {
            let runs: Vec<String> = per_run.iter().map(|x| format!("{x:.2}")).collect();
            vec![
                name.to_string(),
                format!("{:.1}", med(&v[0])),
                format!("{:.1}", med(&v[1])),
                runs.join(" / "),
                format!("{q:.2}"),
            ]
        })
        .collect();
    let table_md = table(
        &[
            "",
            "C client via libcpg",
            "rotor bench (Rust)",
            "ratio per run",
            "median ratio",
        ],
        &rows,
    );
    let last = format!(
        "capi lat64_p50_ratio={:.2} lat64_p99_ratio={:.2} tput64_ratio={:.2} tput1k_ratio={:.2}",
        ratios[0], ratios[1], ratios[2], ratios[3]
    );
    println!("{table_md}");
    let costs = if f.costs.is_empty() {
        String::new()
    } else {
        format!(
            "\n## Costs of the 64 B throughput phase (perf stat)\n\nSystem calls, context \
             switches and CPU time per message delivered at any member, of the three clients \
             together and of the three dataplanes together (perf counting from when the clients \
             start, for the phase's seconds).\n\n```\n{}\n```\n",
            f.costs.join("\n")
        )
    };
    let class = if plan.client_rt {
        format!("SCHED_RR priority {CLIENT_RT_PRIORITY} (the daemons: 99)")
    } else {
        "the normal class (SCHED_OTHER)".to_owned()
    };
    let mut rep = Report::new("capi", started);
    rep.markdown = format!(
        "# capi, {} {}\n\n- Command: `cargo xtask bench capi {}`\n- Machine: {}\n- Load average: \
         {load_before} before, {load_after} after\n- Cluster: rotor on {HOSTS} network namespaces \
         `{PREFIX}1..{PREFIX}{HOSTS}` (transport xdp, AES-256-GCM, default poll mode), up once for \
         every run\n- Clients: each workload run by both, back to back (the C client first in \
         odd runs, the Rust client first in even ones): `bench/csrc/cpg_bench.c` built against Debian's \
         libcpg and run with rotor's libcpg.so.4 on LD_LIBRARY_PATH, and `rotor bench`; \
         scheduling class: {class}\n- Workloads: latency = {} messages of 64 B, one in flight, \
         host 1; throughput = every host sends for {} s\n- Runs: {}; client columns are medians \
         over runs; ratios are taken in each run (Rust ÷ C for latency, C ÷ Rust for \
         throughput: 1.00 = the same, the goal ≥ 0.90) and their median is the headline\n- \
         Sequence errors (all clients, all runs): {}\n\n## Results\n\n{table_md}\n`{last}`\n{costs}\n\
         ## Raw lines\n\n```\n{}\n```\n",
        started.date(),
        started.time(),
        plan.args.join(" "),
        machine.describe(),
        plan.lat_count,
        plan.tput_seconds,
        plan.runs,
        f.seq_errors,
        f.raw.join("\n"),
    );
    let info = RunInfo {
        command: format!("cargo xtask bench capi {}", plan.args.join(" ")),
        machine,
        started,
        load_before,
        load_after,
    };
    let path = rep.publish(&info, &format!("{table_md}\n`{last}`\n"), plan.docs)?;
    eprintln!("capi: report {}", path.display());
    println!("{last}");
    Ok(())
}
