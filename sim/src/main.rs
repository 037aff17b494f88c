//! `cargo xtask sim`: runs seeds of the simulator and prints one summary line last.

use std::process::exit;

use rotor_sim::{run, Faults, SimConfig};

const USAGE: &str = "usage: rotor-sim [--seeds N] [--seed S] [--first-seed S] [--nodes K] \
[--faults none|loss|partition|crash|all] [--fault-ms MS] [--app-gap-us MIN,MAX] [--changes] \
[--token MS] [--loss PERCENT] [--accelerated-window N] [--adaptive] [--send-gap-ns NS] [--latency] [--verbose]
  --accelerated-window: totem.accelerated_window (default: the settings table's)
  --adaptive: the per-visit allowance adapts (totem.max_messages_adaptive: 1)
  --send-gap-ns: each node's datagrams leave its interface one after another, this far apart (default 0: at once)
  --latency: each seed's line then has the self-delivery latency percentiles and the mean token rotation from 1 s to the heal
  --loss: that share of every datagram lost from 1 s (or once the ring of all nodes formed) to the heal; each seed's line then has the \
longest time a node delivered nothing under it";

fn main() {
    let mut seeds = 20u64;
    let mut first_seed: Option<u64> = None;
    let mut nodes = 5usize;
    let mut faults = Faults::All;
    let mut fault_ms = 6_000u64;
    let mut verbose = false;
    let mut changes = false;
    let mut token_ms: Option<u32> = None;
    let mut loss_percent: Option<u32> = None;
    let mut app_gap_us = rotor_sim::APP_GAP_US_BUSY;
    let mut accelerated_window: Option<u32> = None;
    let mut send_gap_ns = 0u64;
    let mut latency = false;
    let mut adaptive = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> String {
            args.next().unwrap_or_else(|| {
                eprintln!("rotor-sim: {name} needs a value\n{USAGE}");
                exit(2)
            })
        };
        let number = |name: &str, s: String| -> u64 {
            s.parse().unwrap_or_else(|_| {
                eprintln!("rotor-sim: {name}: not a number: {s}\n{USAGE}");
                exit(2)
            })
        };
        match arg.as_str() {
            "--seeds" => seeds = number("--seeds", value("--seeds")),
            "--seed" => {
                first_seed = Some(number("--seed", value("--seed")));
                seeds = 1;
            }
            "--first-seed" => first_seed = Some(number("--first-seed", value("--first-seed"))),
            "--nodes" => nodes = number("--nodes", value("--nodes")) as usize,
            "--fault-ms" => fault_ms = number("--fault-ms", value("--fault-ms")),
            "--faults" => {
                let s = value("--faults");
                faults = Faults::parse(&s).unwrap_or_else(|| {
                    eprintln!("rotor-sim: unknown fault mix {s}\n{USAGE}");
                    exit(2)
                })
            }
            "--app-gap-us" => {
                let s = value("--app-gap-us");
                let (lo, hi) = s.split_once(',').unwrap_or((&s, &s));
                app_gap_us = (
                    number("--app-gap-us", lo.to_owned()),
                    number("--app-gap-us", hi.to_owned()),
                );
            }
            "--token" => token_ms = Some(number("--token", value("--token")) as u32),
            "--loss" => {
                let pct = number("--loss", value("--loss"));
                if pct > 100 {
                    eprintln!("rotor-sim: --loss is a percentage (0 to 100)\n{USAGE}");
                    exit(2);
                }
                loss_percent = Some(pct as u32);
            }
            "--accelerated-window" => {
                let n = number("--accelerated-window", value("--accelerated-window"));
                accelerated_window = Some(u32::try_from(n).unwrap_or(u32::MAX));
            }
            "--send-gap-ns" => send_gap_ns = number("--send-gap-ns", value("--send-gap-ns")),
            "--latency" => latency = true,
            "--adaptive" => adaptive = true,
            "--verbose" | "-v" => verbose = true,
            "--changes" => changes = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("rotor-sim: unknown argument {other}\n{USAGE}");
                exit(2)
            }
        }
    }
    if !(3..=64).contains(&nodes) {
        eprintln!("rotor-sim: --nodes must be between 3 and 64");
        exit(2);
    }
    let first = first_seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
    });
    println!(
        "seed {first} (seeds {first}..{}), nodes {nodes}, faults {}",
        first + seeds,
        faults.name()
    );
    let (mut messages, mut configs, mut violations) = (0u64, 0u64, 0u64);
    let mut stall_max = 0u64;
    for seed in first..first + seeds {
        let cfg = SimConfig {
            seed,
            nodes,
            faults,
            fault_ms,
            verbose,
            script: Vec::new(),
            app_gap_us,
            changes,
            token_ms,
            loss_percent,
            accelerated_window,
            adaptive,
            send_gap_ns,
        };
        let replay = cfg.replay_command();
        let report = run(cfg);
        messages += report.messages_submitted;
        configs += report.configs;
        let seen: usize = report.sessions.iter().map(|s| s.seen.len()).sum();
        println!(
            "seed {seed}: {} messages, {} deliveries, {} process sessions saw {seen} events, {} configurations, converged {} ms after heal, {} datagrams ({} rejected by crypto), quorum {}, {} violations",
            report.messages_submitted,
            report.deliveries,
            report.sessions.len(),
            report.configs,
            report.converged_after_heal_ms.map_or("never".into(), |ms| ms.to_string()),
            report.datagrams,
            report.crypto_rejected.values().sum::<u64>(),
            report.quorum.plan,
            report.violations.len()
        );
        if let Some(stall) = report.stall {
            stall_max = stall_max.max(stall.longest_us);
            println!(
                "  loss {}%: longest delivery gap {:.1} ms (node {}), {} configurations, {} token retransmissions, {} frames retransmitted",
                loss_percent.unwrap_or(0),
                stall.longest_us as f64 / 1000.0,
                stall.node,
                stall.configs,
                stall.token_retransmits,
                stall.retransmitted
            );
        }
        if latency {
            print_latency(&report);
        }
        if changes {
            println!(
                "  changes: {} asked for, {} applied and {} refused (per member), {} keys retired",
                report.changes_requested,
                report.changes_applied,
                report.changes_refused,
                report.keys_retired
            );
        }
        if !report.violations.is_empty() {
            violations += report.violations.len() as u64;
            println!("  first violation: {}", report.violations[0]);
            for other in report.violations.iter().skip(1).take(4) {
                println!("  also: {other}");
            }
            println!("  replay: {replay}");
        }
    }
    let stall = match loss_percent {
        Some(_) => format!(" longest_gap_ms={:.1}", stall_max as f64 / 1000.0),
        None => String::new(),
    };
    println!("sim seeds={seeds} nodes={nodes} messages={messages} configs={configs} violations={violations}{stall}");
    if violations > 0 {
        exit(1);
    }
}

/// The `--latency` line of one seed: self-delivery percentiles and the mean rotation.
fn print_latency(report: &rotor_sim::RunReport) {
    let mut us: Vec<u64> = report.self_delivery.iter().map(|&(_, us)| us).collect();
    us.sort_unstable();
    let at = |q: f64| -> u64 {
        if us.is_empty() {
            return 0;
        }
        us[((us.len() - 1) as f64 * q).round() as usize]
    };
    println!(
        "  latency: self-delivery p50 {} µs, p90 {} µs, p99 {} µs, max {} µs ({} messages); rotation {} µs",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        us.len(),
        report
            .rotation_us_mean
            .map_or("not measured".into(), |r| format!("{r:.1}"))
    );
}
