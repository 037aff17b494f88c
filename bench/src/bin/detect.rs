//! bench-detect (`cargo xtask bench detect`, root): how long a killed node takes to leave the
//! configuration on real processes. N netns hosts run rotord (XDP) and one CPG checker client
//! each (rotor-faults' `rotor-checker`, logging every configuration change with a
//! CLOCK_MONOTONIC time); every process of the last host gets SIGKILL at a known instant, and
//! the time to each survivor's configuration change without it is read from the checkers'
//! logs. The survivors' rotord logs give the steps in between (token loss declared, new ring
//! formed). The victim is then started again and the next run begins. Figures are compared
//! with the resolved token + consensus of the run (what the simulator shows) plus 20 ms.
//!
//! usage: bench-detect [--runs R] [--nodes N]... [--token MS[:COEFFICIENT]|default]...
//!        [--poll MODE] [--rate MSGS_PER_S] [--bins DIR] [--no-docs]
//! (`--token 10:0` is `token: 10` with `token_coefficient: 0`, a 10 ms token whatever the
//! node count; plain `--token 10` keeps corosync's 650 ms per node beyond two; `--bins` takes
//! rotord, rotor-dataplane, rotor and rotor-checker from DIR instead of building them, to
//! measure an earlier build)

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rotor_bench::cluster::{self, build_rotor, check_interrupt, nap, Daemons, Rotor, RotorConf};
use rotor_bench::dist::median;
use rotor_bench::report::{load_average, table, workspace_root, Machine, Report, RunInfo, Utc};
use rotor_faults::record::{self, Line};
use rotor_faults::soak::{line_ms_of_day, local_ms_of_day, realtime_offset_ns};
use rotor_testbed::rotor::{kill_pids, rotord_command, Bins};
use rotor_testbed::Testbed;

const PREFIX: &str = "dt";
/// What the goal allows beyond the resolved token + consensus.
const GOAL_SLACK_MS: f64 = 20.0;

/// One configuration's token setting.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Token {
    /// totem.token; `None`: the default.
    ms: Option<u32>,
    /// totem.token_coefficient; `None`: the default (650).
    coefficient: Option<u32>,
}

impl Token {
    fn parse(text: &str) -> Result<Token, String> {
        if text == "default" {
            return Ok(Token {
                ms: None,
                coefficient: None,
            });
        }
        let bad = || format!("--token: expected MS, MS:COEFFICIENT or default, got {text}");
        let (ms, coefficient) = match text.split_once(':') {
            Some((t, c)) => (t, Some(c.parse().map_err(|_| bad())?)),
            None => (text, None),
        };
        Ok(Token {
            ms: Some(ms.parse().map_err(|_| bad())?),
            coefficient,
        })
    }

    fn name(&self) -> String {
        match (self.ms, self.coefficient) {
            (None, _) => "default token".into(),
            (Some(t), None) => format!("token: {t}"),
            (Some(t), Some(c)) => format!("token: {t}, token_coefficient: {c}"),
        }
    }

    fn slug(&self) -> String {
        match (self.ms, self.coefficient) {
            (None, _) => "default".into(),
            (Some(t), None) => format!("t{t}"),
            (Some(t), Some(c)) => format!("t{t}c{c}"),
        }
    }
}

struct Plan {
    runs: usize,
    nodes: Vec<usize>,
    tokens: Vec<Token>,
    poll: String,
    rate: u32,
    bins: Option<PathBuf>,
    docs: bool,
    args: Vec<String>,
}

impl Plan {
    fn parse(args: &[String]) -> Result<Plan, String> {
        let mut p = Plan {
            runs: 5,
            nodes: Vec::new(),
            tokens: Vec::new(),
            // N nodes and their clients share the machine's cores.
            poll: "blocking".into(),
            rate: 50,
            bins: None,
            docs: true,
            args: args.to_vec(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
            match a.as_str() {
                "--runs" => p.runs = value()?.parse().map_err(|_| "--runs: a number")?,
                "--nodes" => p
                    .nodes
                    .push(value()?.parse().map_err(|_| "--nodes: a number")?),
                "--token" => p.tokens.push(Token::parse(value()?)?),
                "--poll" => p.poll = value()?.clone(),
                "--rate" => p.rate = value()?.parse().map_err(|_| "--rate: msgs/s")?,
                "--bins" => p.bins = Some(PathBuf::from(value()?)),
                "--no-docs" => p.docs = false,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if p.nodes.is_empty() {
            p.nodes = vec![3, 5];
        }
        if p.tokens.is_empty() {
            p.tokens = ["10:0", "10", "default"]
                .iter()
                .map(|t| Token::parse(t))
                .collect::<Result<_, _>>()?;
        }
        if p.runs == 0 || p.nodes.iter().any(|&n| n < 2) {
            return Err("--runs must be at least 1 and --nodes at least 2".into());
        }
        Ok(p)
    }
}

/// A checker's log read as it grows; keeps the lines this bench needs.
struct CheckerLog {
    path: PathBuf,
    offset: u64,
    partial: String,
    /// The node it attached to.
    node: Option<u32>,
    /// Every configuration change: time, members, left nodes.
    changes: Vec<(u64, Vec<u32>, Vec<u32>)>,
}

impl CheckerLog {
    fn new(path: PathBuf) -> CheckerLog {
        CheckerLog {
            path,
            offset: 0,
            partial: String::new(),
            node: None,
            changes: Vec::new(),
        }
    }

    fn read(&mut self) {
        let Ok(mut f) = File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut text = String::new();
        let Ok(n) = f.read_to_string(&mut text) else {
            return;
        };
        self.offset += n as u64;
        self.partial.push_str(&text);
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            match Line::parse(&line) {
                Some(Line::Attach { node, .. }) => self.node = Some(node),
                Some(Line::ConfChg {
                    t, members, left, ..
                }) => self.changes.push((
                    t,
                    members.iter().map(|p| p.node).collect(),
                    left.iter().map(|(p, _)| p.node).collect(),
                )),
                _ => {}
            }
        }
    }

    /// The members of its latest view.
    fn view(&self) -> Option<&Vec<u32>> {
        self.changes.last().map(|(_, m, _)| m)
    }
}

/// One kill and what followed.
#[derive(Clone, Debug, Default)]
struct Run {
    /// Kill → each survivor's configuration change without the victim (ms), by node.
    confchg_ms: Vec<(u32, f64)>,
    /// Kill → each survivor's rotord log line that declared the token lost (ms), by node.
    token_lost_ms: Vec<(u32, f64)>,
    /// Kill → each survivor's log line of the new ring (ms), by node.
    ring_ms: Vec<(u32, f64)>,
    /// Kill → each survivor's first consensus timeout that failed a node (ms), by node.
    consensus_ms: Vec<(u32, f64)>,
}

impl Run {
    fn last_confchg(&self) -> f64 {
        self.confchg_ms.iter().map(|c| c.1).fold(0.0, f64::max)
    }
    fn first_confchg(&self) -> f64 {
        self.confchg_ms.iter().map(|c| c.1).fold(f64::MAX, f64::min)
    }
}

/// One configuration: N hosts, a token setting, its runs.
struct ConfigFigures {
    nodes: usize,
    token: Token,
    /// As resolved by rotord (runtime.config.totem.*): token, consensus, token_retransmit, join.
    token_ms: f64,
    consensus_ms: f64,
    retransmit_ms: f64,
    join_ms: f64,
    runs: Vec<Run>,
    error: Option<String>,
}

/// A resolved totem timer of node `i` (`runtime.config.totem.<name>`), ms.
fn timer(bed: &Testbed, bins: &Bins, i: usize, name: &str) -> f64 {
    bed.command(i, bins.rotor())
        .args(["cmap", "-g", &format!("runtime.config.totem.{name}")])
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .rsplit('=')
                .next()
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// `cargo build --release -p rotor-faults --bin rotor-checker`; returns its path.
fn build_checker(bin: &Path) -> Result<PathBuf, String> {
    let status = rotor_testbed::rotor::cargo_command()
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "-p",
            "rotor-faults",
            "--bin",
            "rotor-checker",
        ])
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of rotor-checker: {status}"));
    }
    Ok(bin.join("rotor-checker"))
}

struct Bed<'a> {
    bed: &'a Testbed,
    bins: Bins,
    checker: PathBuf,
    dir: PathBuf,
    conf: PathBuf,
    rotor: Rotor,
    clients: Daemons,
    logs: Vec<CheckerLog>,
    rate: u32,
}

impl Bed<'_> {
    fn start_checker(&mut self, host: usize, run: usize) -> Result<(), String> {
        let path = self.dir.join(format!("checker{host}-r{run}.log"));
        let mut cmd = self.bed.command(host, &self.checker);
        cmd.arg("--log")
            .arg(&path)
            .args(["--rate", &self.rate.to_string(), "--seconds", "3600"]);
        let out = self.dir.join(format!("checker{host}-r{run}.out"));
        self.clients.start(&format!("checker{host}"), cmd, &out)?;
        self.logs.retain(|l| l.node != Some(host as u32));
        self.logs.push(CheckerLog::new(path));
        Ok(())
    }

    /// Waits until every checker attached and its latest view holds every host.
    fn wait_group(&mut self, hosts: usize, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            check_interrupt()?;
            for l in &mut self.logs {
                l.read();
            }
            if self.logs.len() == hosts
                && self.logs.iter().all(|l| {
                    l.view()
                        .is_some_and(|v| (1..=hosts as u32).all(|n| v.contains(&n)))
                })
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the checkers did not see one group of {hosts} within {limit:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills every process of host `victim` and measures until every survivor delivered the
    /// configuration change without it (at most `limit`).
    fn kill_and_measure(&mut self, victim: usize, limit: Duration) -> Result<Run, String> {
        for l in &mut self.logs {
            l.read();
        }
        // Listed before the clock is read: listing runs `ip netns pids`, milliseconds on a
        // loaded machine, which would count as detection time.
        let pids = self.bed.kill_list(victim);
        let offset = realtime_offset_ns();
        let kill_ns = record::now_ns();
        kill_pids(&pids);
        let victim_id = victim as u32;
        let deadline = Instant::now() + limit;
        let mut run = Run::default();
        loop {
            check_interrupt()?;
            run.confchg_ms.clear();
            let mut waiting = 0;
            for l in &mut self.logs {
                if l.node == Some(victim_id) {
                    continue;
                }
                l.read();
                let seen = l
                    .changes
                    .iter()
                    .find(|(t, _, left)| *t >= kill_ns && left.contains(&victim_id));
                match (seen, l.node) {
                    (Some((t, _, _)), Some(node)) => {
                        run.confchg_ms.push((node, (t - kill_ns) as f64 / 1e6))
                    }
                    _ => waiting += 1,
                }
            }
            if waiting == 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{waiting} survivors saw no configuration change without node {victim} within {limit:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // The steps in between, from each survivor's rotord log (local time, ms).
        let kill_ms = local_ms_of_day(i128::from(kill_ns) + offset);
        for node in (1..=self.bed.hosts()).filter(|&n| n != victim) {
            let text = std::fs::read_to_string(self.dir.join(format!("rotord{node}.log")))
                .unwrap_or_default();
            let after = |needle: &str| {
                text.lines()
                    .filter(|l| l.contains(needle))
                    .filter_map(line_ms_of_day)
                    .find(|&t| t >= kill_ms)
                    .map(|t| (t - kill_ms) as f64)
            };
            if let Some(t) = after("A processor failed") {
                run.token_lost_ms.push((node as u32, t));
            }
            if let Some(t) = after("A new membership") {
                run.ring_ms.push((node as u32, t));
            }
            if let Some(t) = after("forming a configuration without them") {
                run.consensus_ms.push((node as u32, t));
            }
        }
        Ok(run)
    }

    /// Starts host `victim` again (rotord, then its checker) and waits for the full group.
    fn restart(&mut self, victim: usize, run: usize) -> Result<(), String> {
        let hosts = self.bed.hosts();
        let rotord = rotord_command(&self.bins, &self.conf);
        let mut cmd = self.bed.command(victim, rotord.get_program());
        cmd.args(rotord.get_args());
        // The first log keeps its name (the steps are read from it); later ones are numbered.
        let log = self.dir.join(format!("rotord{victim}-r{run}.log"));
        self.rotor
            .daemons
            .start(&format!("rotord{victim}"), cmd, &log)?;
        let all: Vec<usize> = (1..=hosts).collect();
        let ids: Vec<u32> = (1..=hosts as u32).collect();
        self.bed
            .wait_rotor_ring(&all, &ids, &self.bins, Duration::from_secs(120))?;
        self.start_checker(victim, run)?;
        self.wait_group(hosts, Duration::from_secs(60))
    }
}

fn run_config(
    plan: &Plan,
    bin: &Path,
    checker: &Path,
    work: &Path,
    nodes: usize,
    token: Token,
) -> ConfigFigures {
    let mut f = ConfigFigures {
        nodes,
        token,
        token_ms: f64::NAN,
        consensus_ms: f64::NAN,
        retransmit_ms: f64::NAN,
        join_ms: f64::NAN,
        runs: Vec::new(),
        error: None,
    };
    if let Err(e) = measure(plan, bin, checker, work, &mut f) {
        eprintln!("detect: {nodes} nodes, {}: {e}", token.name());
        f.error = Some(e);
    }
    f
}

fn measure(
    plan: &Plan,
    bin: &Path,
    checker: &Path,
    work: &Path,
    f: &mut ConfigFigures,
) -> Result<(), String> {
    let dir = work.join(format!("n{}-{}", f.nodes, f.token.slug()));
    let bed = Testbed::up(PREFIX, f.nodes).map_err(|e| format!("testbed: {e}"))?;
    let mut totem: Vec<(&str, String)> = Vec::new();
    if let Some(t) = f.token.ms {
        totem.push(("token", t.to_string()));
    }
    if let Some(c) = f.token.coefficient {
        totem.push(("token_coefficient", c.to_string()));
    }
    let totem_ref: Vec<(&str, &str)> = totem.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rotor = Rotor::up(
        &bed,
        &dir,
        bin,
        RotorConf {
            transport: "xdp",
            poll: Some(&plan.poll),
            totem: &totem_ref,
        },
    )?;
    let bins = Bins {
        dir: bin.to_owned(),
    };
    f.token_ms = timer(&bed, &bins, 1, "token");
    f.consensus_ms = timer(&bed, &bins, 1, "consensus");
    f.retransmit_ms = timer(&bed, &bins, 1, "token_retransmit");
    f.join_ms = timer(&bed, &bins, 1, "join");
    let mut b = Bed {
        bed: &bed,
        bins,
        checker: checker.to_owned(),
        conf: dir.join("corosync.conf"),
        dir,
        rotor,
        clients: Daemons::default(),
        logs: Vec::new(),
        rate: plan.rate,
    };
    for host in 1..=f.nodes {
        b.start_checker(host, 0)?;
    }
    b.wait_group(f.nodes, Duration::from_secs(60))?;
    let limit = Duration::from_secs_f64(3.0 * (f.token_ms + f.consensus_ms) / 1e3 + 10.0);
    let victim = f.nodes;
    for r in 1..=plan.runs {
        // Let the ring settle after the (re)join.
        nap(Duration::from_secs(1))?;
        let run = b.kill_and_measure(victim, limit)?;
        eprintln!(
            "detect: {} nodes, {}: run {r}: kill → configuration change {:.1}..{:.1} ms (token lost declared {:?}, consensus timed out {:?}, ring {:?})",
            f.nodes,
            f.token.name(),
            run.first_confchg(),
            run.last_confchg(),
            run.token_lost_ms,
            run.consensus_ms,
            run.ring_ms,
        );
        f.runs.push(run);
        if r < plan.runs {
            b.restart(victim, r)?;
        }
    }
    b.clients.stop(Duration::from_secs(3));
    b.rotor.daemons.stop(Duration::from_secs(5));
    Ok(())
}

fn main() {
    cluster::bench_main("detect", run);
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let plan = Plan::parse(args)?;
    if !rotor_testbed::root_or_skip("bench detect needs network namespaces and XDP") {
        return Err("not root".into());
    }
    let started = Utc::now();
    let machine = Machine::detect();
    let (bin, checker) = match &plan.bins {
        Some(dir) => (dir.clone(), dir.join("rotor-checker")),
        None => {
            let bin = build_rotor()?;
            let checker = build_checker(&bin)?;
            (bin, checker)
        }
    };
    let work = std::env::temp_dir().join(format!("rotor-bench-detect-{}", std::process::id()));
    let load_before = load_average();
    let mut all = Vec::new();
    for &nodes in &plan.nodes {
        for &token in &plan.tokens {
            check_interrupt()?;
            all.push(run_config(&plan, &bin, &checker, &work, nodes, token));
        }
    }
    let load_after = load_average();
    let mut rows = Vec::new();
    let mut summary = vec!["detect".to_string()];
    let mut raw = Vec::new();
    for f in &all {
        let last: Vec<f64> = f.runs.iter().map(Run::last_confchg).collect();
        let first: Vec<f64> = f.runs.iter().map(Run::first_confchg).collect();
        let step = |pick: fn(&Run) -> &Vec<(u32, f64)>| -> Vec<f64> {
            f.runs
                .iter()
                .filter_map(|r| pick(r).iter().map(|x| x.1).reduce(f64::max))
                .collect()
        };
        let lost = step(|r| &r.token_lost_ms);
        let ring = step(|r| &r.ring_ms);
        let goal = f.token_ms + f.consensus_ms + GOAL_SLACK_MS;
        let med = median(&last).unwrap_or(f64::NAN);
        let max = last.iter().cloned().fold(f64::NAN, f64::max);
        rows.push(vec![
            format!("{} nodes, {}", f.nodes, f.token.name()),
            format!(
                "{} / {} / {} / {}",
                ms(f.token_ms),
                ms(f.consensus_ms),
                ms(f.retransmit_ms),
                ms(f.join_ms)
            ),
            ms(goal),
            f.runs.len().to_string(),
            format!(
                "{} / {}",
                ms(median(&first).unwrap_or(f64::NAN)),
                ms(first.iter().cloned().fold(f64::NAN, f64::max))
            ),
            format!("**{}** / {}", ms(med), ms(max)),
            ms(median(&lost).unwrap_or(f64::NAN)),
            ms(median(&ring).unwrap_or(f64::NAN)),
            if let Some(e) = &f.error {
                format!("error: {e}")
            } else if max <= goal {
                "within".into()
            } else {
                format!("max {} over", ms(max - goal))
            },
        ]);
        summary.push(format!(
            "n{}_{}_median_ms={:.1} n{}_{}_max_ms={:.1}",
            f.nodes,
            f.token.slug(),
            med,
            f.nodes,
            f.token.slug(),
            max
        ));
        for (k, r) in f.runs.iter().enumerate() {
            raw.push(format!(
                "{} nodes, {}, run {}: confchg {:?} token lost declared {:?} consensus timed out {:?} ring formed {:?}",
                f.nodes,
                f.token.name(),
                k + 1,
                r.confchg_ms,
                r.token_lost_ms,
                r.consensus_ms,
                r.ring_ms
            ));
        }
    }
    let table_md = table(
        &[
            "configuration",
            "resolved token / consensus / token_retransmit / join (ms)",
            "goal: token + consensus + 20 ms",
            "runs",
            "kill → first survivor's configuration change, median / max (ms)",
            "kill → last survivor's configuration change, median / max (ms)",
            "kill → token declared lost (median of the last survivor, ms)",
            "kill → new ring in the log (median, ms)",
            "vs goal",
        ],
        &rows,
    );
    let last_line = summary.join(" ");
    println!("{table_md}\n{last_line}");
    let mut rep = Report::new("detect", started);
    rep.markdown = format!(
        "# detect, {} {}\n\n- Command: `cargo xtask bench detect {}`\n- Machine: {}\n- Load \
         average: {load_before} before, {load_after} after\n- Cluster: rotor on N network \
         namespaces `{PREFIX}1..{PREFIX}N` (transport xdp, AES-256-GCM, poll mode {}), one \
         rotor-checker CPG client per node multicasting {} msgs/s\n- Each run: SIGKILL to every \
         process of the last host (dataplane first), then until every survivor's checker \
         delivered the configuration change without it (CLOCK_MONOTONIC in the checkers' logs); \
         the token-loss and new-ring steps come from the survivors' rotord logs (millisecond \
         timestamps); then the host is started again and rejoins\n- Resolved timers are \
         rotord's `runtime.config.totem.*`; `token: 10` alone keeps corosync's token_coefficient \
         (650 ms per node beyond two), `token_coefficient: 0` makes it a 10 ms token\n\n## \
         Results\n\n{table_md}\n`{last_line}`\n\n## Raw\n\n```\n{}\n```\n",
        started.date(),
        started.time(),
        plan.args.join(" "),
        machine.describe(),
        plan.poll,
        plan.rate,
        raw.join("\n"),
    );
    let info = RunInfo {
        command: format!("cargo xtask bench detect {}", plan.args.join(" ")),
        machine,
        started,
        load_before,
        load_after,
    };
    let path = rep.publish(&info, &format!("{table_md}\n`{last_line}`\n"), plan.docs)?;
    eprintln!(
        "detect: report {}; rotord and checker logs kept in {}",
        path.display(),
        work.display()
    );
    if all.iter().any(|f| f.error.is_some()) {
        return Err("some configurations failed (see the report)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_settings_are_read_as_written() {
        let t = Token::parse("10:0").unwrap();
        assert_eq!((t.ms, t.coefficient), (Some(10), Some(0)));
        assert_eq!(t.slug(), "t10c0");
        let t = Token::parse("10").unwrap();
        assert_eq!((t.ms, t.coefficient), (Some(10), None));
        assert_eq!(t.name(), "token: 10");
        assert_eq!(Token::parse("default").unwrap().ms, None);
        assert!(Token::parse("ten").is_err());
        assert!(Token::parse("10:x").is_err());
    }
}
