//! `cargo xtask bench lat-ab --base REV [--rounds R] [--lat-count N]`: the latency of this
//! tree's rotor against the same figures of commit `REV`, measured in one window of the machine,
//! for a before/after of a change whose effect is smaller than what separates two windows (the
//! p99.9 of one build moves by half between runs here). `REV` is checked out in a temporary git
//! worktree and built there in a target directory of its own (never this tree's, whose
//! artifacts cargo would then take for this tree's). Each round starts a fresh 3-host XDP
//! cluster (hosts `la1..la3`) of each build in turn, the base first in odd rounds and this tree
//! first in even ones, and runs `rotor bench lat` (64 B, one message in flight) twice on host 1,
//! reading node 1's token rotation histogram before and after each. Prints, per build, every
//! run and the medians of the runs: latency p50, p99, p99.9, max and the rotations of 200 µs to
//! 5 ms;
//! writes `bench/reports/lat-ab-<stamp>.md`; the last stdout line is
//! `lat-ab base=REV p50=… p99=… p999=… max=… rot200=…`, each the head's median over the base's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rotor_bench::cluster::{self, bench_args, build_rotor, check_interrupt, run_clients, Rotor};
use rotor_bench::dist::median;
use rotor_bench::line::Line;
use rotor_bench::report::{workspace_root, Utc};
use rotor_testbed::Testbed;

const PREFIX: &str = "la";
const HOSTS: usize = 3;
/// Latency runs per build per round.
const RUNS_PER_ROUND: usize = 2;
/// The rotation histogram's buckets in (200 µs, 5 ms] (`stats.srp.token_rotation_us.le_<bound>`):
/// a hop that waited; longer ones are the idle ring holding its token between runs.
const OVER_200_US: [&str; 4] = ["le_500", "le_1000", "le_2000", "le_5000"];

#[derive(Debug)]
struct Plan {
    base: String,
    rounds: usize,
    lat_count: u64,
}

impl Plan {
    fn parse(args: &[String]) -> Result<Plan, String> {
        let mut p = Plan {
            base: String::new(),
            rounds: 4,
            lat_count: 20_000,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--base" => p.base = value()?.clone(),
                "--rounds" => p.rounds = value()?.parse().map_err(|_| "--rounds: a number")?,
                "--lat-count" => {
                    p.lat_count = value()?.parse().map_err(|_| "--lat-count: a number")?
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if p.base.is_empty() {
            return Err("--base REV is required (the commit to compare this tree with)".into());
        }
        if p.rounds == 0 {
            return Err("--rounds: at least 1".into());
        }
        Ok(p)
    }
}

/// A git worktree of the base commit, removed (with its build) when dropped.
struct Worktree {
    root: PathBuf,
    path: PathBuf,
}

impl Worktree {
    fn add(root: &Path, rev: &str) -> Result<Worktree, String> {
        let path = std::env::temp_dir().join(format!("rotor-lat-ab-{}", std::process::id()));
        let out = Command::new("git")
            .current_dir(root)
            .args(["worktree", "add", "--detach"])
            .arg(&path)
            .arg(rev)
            .output()
            .map_err(|e| format!("git worktree add: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "git worktree add {rev}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Worktree {
            root: root.to_owned(),
            path,
        })
    }

    /// `cargo build --release` of rotor's binaries in the worktree, into its own target
    /// directory; returns the directory holding them.
    fn build(&self) -> Result<PathBuf, String> {
        let target = self.path.join("target");
        rotor_testbed::rotor::build_bins_into(&self.path, Some(&target), true)
            .map(|bins| bins.dir)
            .map_err(|e| format!("cargo build of the base: {e}"))
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        let _ = Command::new("git")
            .current_dir(&self.root)
            .args(["worktree", "remove", "--force"])
            .arg(&self.path)
            .output();
    }
}

/// One latency run's figures.
#[derive(Clone, Copy)]
struct Run {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    over_200_us: f64,
}

/// Node 1's rotations over 200 µs so far.
fn rotations_over_200_us(bed: &Testbed, bin: &Path) -> Result<f64, String> {
    let out = bed
        .command(1, bin.join("rotor"))
        .args(["cmap", "list", "stats.srp.token_rotation_us."])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("rotor cmap: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sum = 0.0;
    for bucket in OVER_200_US {
        let key = format!("stats.srp.token_rotation_us.{bucket} ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&key))
            .ok_or_else(|| format!("no {key}in `rotor cmap` on host 1"))?;
        let value = line.rsplit(' ').next().unwrap_or("");
        sum += value
            .parse::<f64>()
            .map_err(|_| format!("{key}: `{value}` is not a number"))?;
    }
    Ok(sum)
}

/// A fresh cluster of the binaries in `bin`, and `RUNS_PER_ROUND` latency runs on it.
fn measure(plan: &Plan, bed: &Testbed, dir: &Path, bin: &Path) -> Result<Vec<Run>, String> {
    let mut rotor = Rotor::up(bed, dir, bin, Default::default())?;
    let mut runs = Vec::new();
    for i in 0..RUNS_PER_ROUND {
        cluster::nap(Duration::from_millis(1500))?;
        let before = rotations_over_200_us(bed, bin)?;
        let args = bench_args("lat", 64, plan.lat_count, 60.0, &format!("ab{i}"), 1);
        let mut cmd = bed.command(1, bin.join("rotor"));
        cmd.arg("bench").args(&args);
        let out = run_clients(vec![(1, cmd)], Duration::from_secs(300))?;
        let text = &out[0].stdout;
        let line = Line::find(text, "bench", "lat")
            .filter(|_| out[0].ok)
            .ok_or_else(|| format!("rotor bench lat: {}{}", text.trim(), out[0].stderr.trim()))?;
        cluster::nap(Duration::from_millis(1500))?;
        let after = rotations_over_200_us(bed, bin)?;
        runs.push(Run {
            p50: line.num("p50_us")?,
            p99: line.num("p99_us")?,
            p999: line.num("p999_us")?,
            max: line.num("max_us")?,
            over_200_us: after - before,
        });
    }
    rotor.daemons.stop(Duration::from_secs(10));
    Ok(runs)
}

/// The medians of `runs`, field by field.
fn medians(runs: &[Run]) -> Run {
    let m = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0);
    Run {
        p50: m(|r| r.p50),
        p99: m(|r| r.p99),
        p999: m(|r| r.p999),
        max: m(|r| r.max),
        over_200_us: m(|r| r.over_200_us),
    }
}

fn row(name: &str, r: &Run) -> String {
    format!(
        "| {name} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
        r.p50, r.p99, r.p999, r.max, r.over_200_us
    )
}

fn main() {
    cluster::bench_main("lat-ab", run);
}

fn run(args: &[String]) -> Result<(), String> {
    let plan = Plan::parse(args)?;
    if !rotor_testbed::root_or_skip("lat-ab needs network namespaces and XDP") {
        return Err("not root".into());
    }
    let started = Utc::now();
    let root = workspace_root();
    let head = build_rotor()?;
    let worktree = Worktree::add(&root, &plan.base)?;
    eprintln!(
        "lat-ab: building {} in {}",
        plan.base,
        worktree.path.display()
    );
    let base = worktree.build()?;
    let work = std::env::temp_dir().join(format!("rotor-bench-lat-ab-{}", std::process::id()));
    let bed = Testbed::up(PREFIX, HOSTS).map_err(|e| format!("testbed: {e}"))?;
    let builds = [
        (plan.base.as_str(), base.as_path()),
        ("this tree", head.as_path()),
    ];
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for round in 0..plan.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for b in order {
            check_interrupt()?;
            eprintln!("lat-ab: round {}: {}", round + 1, builds[b].0);
            let dir = work.join(format!("r{round}-{b}"));
            runs[b].extend(measure(&plan, &bed, &dir, builds[b].1)?);
        }
    }
    let mut text = format!(
        "# lat-ab {}\n\n`cargo xtask bench lat-ab --base {} --rounds {} --lat-count {}`: {} rounds, \
         {RUNS_PER_ROUND} runs of `rotor bench lat` (64 B) per build per round on a fresh \
         {HOSTS}-host XDP cluster, builds alternating first.\n\n",
        started.stamp(),
        plan.base,
        plan.rounds,
        plan.lat_count,
        plan.rounds
    );
    let header =
        "| build | p50 µs | p99 | p99.9 | max | rotations > 200 µs |\n|---|---|---|---|---|---|";
    for (b, (name, _)) in builds.iter().enumerate() {
        text.push_str(&format!("## {name}\n\n{header}\n"));
        for (i, r) in runs[b].iter().enumerate() {
            text.push_str(&row(&format!("run {}", i + 1), r));
            text.push('\n');
        }
        text.push('\n');
    }
    let m = [medians(&runs[0]), medians(&runs[1])];
    text.push_str(&format!(
        "## medians of the runs\n\n{header}\n{}\n{}\n",
        row(builds[0].0, &m[0]),
        row(builds[1].0, &m[1])
    ));
    let ratio = |f: fn(&Run) -> f64| f(&m[1]) / f(&m[0]);
    let summary = format!(
        "lat-ab base={} p50={:.2} p99={:.2} p999={:.2} max={:.2} rot200={:.2}",
        plan.base,
        ratio(|r| r.p50),
        ratio(|r| r.p99),
        ratio(|r| r.p999),
        ratio(|r| r.max),
        ratio(|r| r.over_200_us),
    );
    text.push_str(&format!(
        "\n`{summary}` (this tree's median over the base's)\n"
    ));
    let report = root
        .join("bench/reports")
        .join(format!("lat-ab-{}.md", started.stamp()));
    std::fs::write(&report, &text).map_err(|e| format!("{}: {e}", report.display()))?;
    print!("{text}");
    println!("lat-ab: report {}", report.display());
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_base_is_required_and_the_rest_has_defaults() {
        assert!(Plan::parse(&args(&[])).unwrap_err().contains("--base"));
        let p = Plan::parse(&args(&["--base", "HEAD~1"])).unwrap();
        assert_eq!(
            (p.base.as_str(), p.rounds, p.lat_count),
            ("HEAD~1", 4, 20_000)
        );
        let p = Plan::parse(&args(&[
            "--base",
            "x",
            "--rounds",
            "2",
            "--lat-count",
            "500",
        ]))
        .unwrap();
        assert_eq!((p.rounds, p.lat_count), (2, 500));
        assert!(Plan::parse(&args(&["--base", "x", "--rounds", "0"])).is_err());
        assert!(Plan::parse(&args(&["--base", "x", "--quick"]))
            .unwrap_err()
            .contains("--quick"));
    }

    #[test]
    fn medians_are_taken_field_by_field() {
        let run = |p50, p999, over| Run {
            p50,
            p99: 2.0 * p50,
            p999,
            max: 10.0 * p999,
            over_200_us: over,
        };
        let m = medians(&[run(1.0, 9.0, 5.0), run(3.0, 7.0, 1.0), run(2.0, 8.0, 3.0)]);
        assert_eq!(
            (m.p50, m.p99, m.p999, m.max, m.over_200_us),
            (2.0, 4.0, 8.0, 80.0, 3.0)
        );
    }
}
