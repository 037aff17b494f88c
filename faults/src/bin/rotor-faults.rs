//! rotor-faults: runs the fault campaign (`cargo xtask faults [--quick]`, root). The binaries it
//! drives (rotord, rotor-dataplane, rotor, rotor-checker) are taken from its own directory.
//! Prints a line per fault, then the table of figures, and writes it with every log to
//! `--out DIR` (default /tmp/rotor-faults). Exits 1 if any property was violated, traffic did
//! not recover after a heal, or the cluster could not be set up.
//!
//! usage: rotor-faults [--quick] [--hold SECONDS] [--out DIR] [--fault NAME]...
//!        [--token MS|default]... [--nodes N]... [--transport xdp|udp]... [--soak SECONDS]
//!        [--token-coefficient MS]
//!        |    rotor-faults --check DIR
//! (`--fault` keeps the faults whose name contains NAME, from the whole list; `--token`,
//! `--nodes` and `--transport` keep those configurations of the matrix; `--soak` runs each
//! kept configuration under load with no fault for that long and reports every membership
//! change, each a false one; `--token-coefficient` sets totem.token_coefficient, which adds
//! to the token for each nodelist node beyond two, spare host included)

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rotor_faults::campaign::{self, Plan};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut quick = false;
    let mut hold = None;
    let mut out = PathBuf::from("/tmp/rotor-faults");
    let mut only: Vec<String> = Vec::new();
    let mut tokens: Vec<Option<u32>> = Vec::new();
    let mut nodes: Vec<usize> = Vec::new();
    let mut transports: Vec<&'static str> = Vec::new();
    let mut soak = None;
    let mut coefficient = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => quick = true,
            "--hold" => {
                i += 1;
                match args.get(i).and_then(|v| v.parse::<f64>().ok()) {
                    Some(s) if s > 0.0 => hold = Some(Duration::from_secs_f64(s)),
                    _ => {
                        eprintln!("rotor-faults: --hold needs a number of seconds");
                        return ExitCode::from(2);
                    }
                }
            }
            "--out" => {
                i += 1;
                match args.get(i) {
                    Some(d) => out = PathBuf::from(d),
                    None => {
                        eprintln!("rotor-faults: --out needs a directory");
                        return ExitCode::from(2);
                    }
                }
            }
            "--fault" => {
                i += 1;
                match args.get(i) {
                    Some(f) => only.push(f.to_lowercase()),
                    None => {
                        eprintln!("rotor-faults: --fault needs a name (e.g. partition, loss)");
                        return ExitCode::from(2);
                    }
                }
            }
            "--token" => {
                i += 1;
                match args.get(i).map(String::as_str) {
                    Some("default") => tokens.push(None),
                    Some(v) if v.parse::<u32>().is_ok() => tokens.push(v.parse().ok()),
                    _ => {
                        eprintln!("rotor-faults: --token needs milliseconds or `default`");
                        return ExitCode::from(2);
                    }
                }
            }
            "--nodes" => {
                i += 1;
                match args.get(i).and_then(|v| v.parse().ok()) {
                    Some(n) => nodes.push(n),
                    None => {
                        eprintln!("rotor-faults: --nodes needs a number");
                        return ExitCode::from(2);
                    }
                }
            }
            "--transport" => {
                i += 1;
                match args.get(i).map(String::as_str) {
                    Some("xdp" | "knet") => transports.push("knet"),
                    Some("udp" | "udpu") => transports.push("udpu"),
                    _ => {
                        eprintln!("rotor-faults: --transport needs xdp or udp");
                        return ExitCode::from(2);
                    }
                }
            }
            "--token-coefficient" => {
                i += 1;
                match args.get(i).and_then(|v| v.parse::<u32>().ok()) {
                    Some(c) => coefficient = Some(c),
                    None => {
                        eprintln!("rotor-faults: --token-coefficient needs milliseconds");
                        return ExitCode::from(2);
                    }
                }
            }
            "--soak" => {
                i += 1;
                match args.get(i).and_then(|v| v.parse::<u64>().ok()) {
                    Some(s) if s > 0 => soak = Some(Duration::from_secs(s)),
                    _ => {
                        eprintln!("rotor-faults: --soak needs a number of seconds");
                        return ExitCode::from(2);
                    }
                }
            }
            // Check the logs of an earlier run's configuration directory again, and stop.
            "--check" => {
                i += 1;
                let Some(dir) = args.get(i) else {
                    eprintln!(
                        "rotor-faults: --check needs a directory (e.g. /tmp/rotor-faults/config-1)"
                    );
                    return ExitCode::from(2);
                };
                let report = rotor_faults::campaign::recheck(std::path::Path::new(dir));
                println!(
                    "{dir}: {} deliveries to {} members checked, {} view pairs compared",
                    report.deliveries, report.members, report.views_compared
                );
                for v in &report.violations {
                    println!("VIOLATION {v}");
                }
                return if report.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                };
            }
            "-h" | "--help" => {
                println!(
                    "usage: rotor-faults [--quick] [--hold SECONDS] [--out DIR] [--fault NAME]... \
                     [--token MS|default]... [--nodes N]... [--transport xdp|udp]... \
                     [--soak SECONDS] [--token-coefficient MS]  |  rotor-faults --check DIR"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("rotor-faults: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    if !rotor_testbed::root_or_skip("the fault campaign builds network-namespace hosts") {
        return ExitCode::FAILURE;
    }
    let bins = match std::env::current_exe() {
        Ok(p) => p.parent().map(PathBuf::from).unwrap_or_default(),
        Err(e) => {
            eprintln!("rotor-faults: where am I: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut plan = if quick {
        Plan::quick(bins, out.clone())
    } else {
        Plan::full(bins, out.clone())
    };
    if let Some(h) = hold {
        plan.hold = h;
    }
    if !tokens.is_empty() {
        plan.configs.retain(|c| tokens.contains(&c.token_ms));
    }
    if !nodes.is_empty() {
        plan.configs.retain(|c| nodes.contains(&c.nodes));
    }
    if !transports.is_empty() {
        plan.configs.retain(|c| transports.contains(&c.transport));
    }
    plan.token_coefficient_ms = coefficient;
    if soak.is_some() {
        plan.soak = soak;
        plan.faults.clear();
        for c in &mut plan.configs {
            c.faults = None;
        }
    }
    if !only.is_empty() {
        plan.faults = rotor_faults::campaign::Fault::ALL
            .into_iter()
            .filter(|f| {
                only.iter()
                    .any(|o| f.name().to_lowercase().contains(o.as_str()))
            })
            .collect();
        for c in &mut plan.configs {
            c.faults = None;
        }
    }
    let results = campaign::run(&plan, &mut |line| println!("{line}"));
    let table = campaign::markdown(&results);
    println!("\n{table}");
    let report = out.join("report.md");
    if let Err(e) = std::fs::write(&report, &table) {
        eprintln!("rotor-faults: {}: {e}", report.display());
    } else {
        println!("report and logs: {}", out.display());
    }
    if results.iter().all(|r| r.ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
