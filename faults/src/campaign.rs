//! The campaign: one cluster per configuration (nodes, transport, token) on rotor-testbed
//! hosts, checker clients on every node, then each fault of the matrix in turn — applied for a
//! bounded time, healed, and followed until traffic flows everywhere again — and at the end the
//! checker over every log. Host N+1 is a spare in the nodelist: the source of the garbage
//! flood and the node with another key.
//!
//! Impairments act at the switch, never on the hosts (with XDP a host's own nft does not see
//! cluster frames): nft rules on the bridge (`bridge` family, forward hook) for loss and
//! partitions, the relay (`relay.rs`) for delay, reordering and duplication. Kills and pauses
//! are signals to the processes of one host.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rotor_testbed::rotor::{rotord_command, write_authkey, Bins, Spec, PORT_DEFAULT};
use rotor_testbed::Testbed;

use crate::check::{self, Report};
use crate::record::{self, Line, Proc};
use crate::relay::{Impairment, Relay};
use crate::soak::{self, SoakResult};

/// One fault of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every cluster frame crossing the switch is dropped with this probability (percent).
    Loss(u32),
    /// Cluster frames held 1 ms plus up to 4 ms of jitter (they overtake each other).
    DelayReorder,
    /// One cluster frame in five sent twice.
    Duplicate,
    /// The last ⌊N/2⌋ nodes cut off from the others, then healed.
    Partition,
    /// The same partition switched on and off every 200–800 ms.
    Flap,
    /// SIGKILL of the last node's dataplane (rotord restarts it).
    KillDataplane,
    /// SIGKILL of the last node's rotord (its dataplane follows), restarted after the hold.
    KillRotord,
    /// SIGKILL of every process of the last node, checker included; all restarted.
    KillNode,
    /// SIGSTOP of the last node's dataplane for the hold, then SIGCONT.
    Pause,
    /// SIGTERM of the last node's rotord (a clean leave), started again at once.
    Restart,
    /// The spare node runs with another key for the hold.
    OtherKey,
    /// The spare host floods every node's cluster port with random datagrams and forged frames
    /// (real node ids, the largest epoch).
    Garbage,
    /// One more checker per node joins the group, 150 ms apart, while traffic flows.
    LateJoin,
}

impl Fault {
    pub fn name(self) -> String {
        match self {
            Fault::Loss(p) => format!("loss {p}%"),
            Fault::DelayReorder => "delay+reorder".into(),
            Fault::Duplicate => "duplication".into(),
            Fault::Partition => "partition".into(),
            Fault::Flap => "flapping partition".into(),
            Fault::KillDataplane => "SIGKILL dataplane".into(),
            Fault::KillRotord => "SIGKILL rotord".into(),
            Fault::KillNode => "SIGKILL node".into(),
            Fault::Pause => "SIGSTOP/SIGCONT dataplane".into(),
            Fault::Restart => "restart rotord".into(),
            Fault::OtherKey => "node with another key".into(),
            Fault::Garbage => "garbage flood".into(),
            Fault::LateJoin => "late joiners under load".into(),
        }
    }

    /// Every fault, in the order the full matrix runs them.
    pub const ALL: [Fault; 15] = [
        Fault::Loss(1),
        Fault::Loss(10),
        Fault::Loss(30),
        Fault::DelayReorder,
        Fault::Duplicate,
        Fault::Partition,
        Fault::Flap,
        Fault::KillDataplane,
        Fault::KillRotord,
        Fault::KillNode,
        Fault::Pause,
        Fault::Restart,
        Fault::OtherKey,
        Fault::Garbage,
        Fault::LateJoin,
    ];
}

/// One cluster configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub nodes: usize,
    /// corosync's transport word: `knet` (XDP as root) or `udpu` (kernel UDP).
    pub transport: &'static str,
    /// totem.token in ms; `None` for the default.
    pub token_ms: Option<u32>,
    /// The faults for this configuration, if not the plan's.
    pub faults: Option<Vec<Fault>>,
}

impl Config {
    pub fn name(&self) -> String {
        format!(
            "{} nodes, {}, token {}",
            self.nodes,
            if self.transport == "udpu" {
                "kernel UDP"
            } else {
                "XDP"
            },
            self.token_ms
                .map(|t| format!("{t} ms"))
                .unwrap_or_else(|| "default".into())
        )
    }
}

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub configs: Vec<Config>,
    pub faults: Vec<Fault>,
    /// How long each fault is applied.
    pub hold: Duration,
    /// How long traffic may take to flow everywhere after a heal before it counts as a
    /// liveness failure.
    pub recovery_max: Duration,
    /// Messages per second per checker.
    pub rate: u32,
    /// Where binaries are: rotord, rotor-dataplane, rotor, rotor-checker.
    pub bins: PathBuf,
    /// Logs and the report go here (kept after the run).
    pub out: PathBuf,
    /// Testbed prefix.
    pub prefix: String,
    pub seed: u64,
    /// Soak instead of faults: each configuration runs under the checkers' load with no fault
    /// for this long, and every membership change after the first ring is reported.
    pub soak: Option<Duration>,
    /// totem.token_coefficient for every configuration, when set (corosync's 650 ms per node
    /// beyond two otherwise: `token: 10` in a nodelist of four is a 1310 ms token).
    pub token_coefficient_ms: Option<u32>,
}

impl Plan {
    /// The quick matrix for the suite, each fault for 4 s: 3 nodes over XDP with a 200 ms
    /// token through loss, delay, duplication, a partition, a killed and a paused dataplane,
    /// the garbage flood and late joiners; 3 nodes over kernel UDP with the default token
    /// through a killed dataplane, a killed node and a restart.
    pub fn quick(bins: PathBuf, out: PathBuf) -> Plan {
        Plan {
            configs: vec![
                Config {
                    nodes: 3,
                    transport: "knet",
                    token_ms: Some(200),
                    faults: None,
                },
                Config {
                    // The default token (4.3 s for this nodelist): a crashed node is back before
                    // the survivors notice it.
                    nodes: 3,
                    transport: "udpu",
                    token_ms: None,
                    faults: Some(vec![Fault::KillDataplane, Fault::KillNode, Fault::Restart]),
                },
            ],
            faults: vec![
                Fault::Loss(10),
                Fault::DelayReorder,
                Fault::Duplicate,
                Fault::Partition,
                Fault::KillDataplane,
                Fault::Pause,
                Fault::Garbage,
                Fault::LateJoin,
            ],
            hold: Duration::from_secs(4),
            recovery_max: Duration::from_secs(30),
            rate: 100,
            bins,
            out,
            prefix: "fq".into(),
            seed: 1,
            soak: None,
            token_coefficient_ms: None,
        }
    }

    /// The full matrix: 3 and 5 nodes, XDP and kernel UDP, token 10 ms, 100 ms and the
    /// default, every fault, 6 s each.
    pub fn full(bins: PathBuf, out: PathBuf) -> Plan {
        let mut configs = Vec::new();
        for nodes in [3, 5] {
            for transport in ["knet", "udpu"] {
                for token_ms in [Some(10), Some(100), None] {
                    configs.push(Config {
                        nodes,
                        transport,
                        token_ms,
                        faults: None,
                    });
                }
            }
        }
        Plan {
            configs,
            faults: Fault::ALL.to_vec(),
            hold: Duration::from_secs(6),
            recovery_max: Duration::from_secs(60),
            rate: 100,
            bins,
            out,
            prefix: "ff".into(),
            seed: 1,
            soak: None,
            token_coefficient_ms: None,
        }
    }
}

/// What one fault did.
#[derive(Clone, Debug)]
pub struct FaultResult {
    pub fault: Fault,
    /// From the heal until every live checker delivered a message sent after the heal by
    /// every live checker (itself included); `None`: not within `recovery_max`.
    pub recovery: Option<Duration>,
    /// Kills, pauses and partitions: from the fault until the first and the last survivor
    /// delivered the configuration change without the last node's processes.
    pub kill_to_confchg: Option<(Duration, Duration)>,
    /// While the fault was on: the longest time any checker went without a delivery, and the
    /// most ring changes one checker saw (a stall without a ring change is the protocol's
    /// own recovery: a lost token or frame waiting for its retransmission).
    pub stall: Stall,
    /// Problems found by the campaign itself (counters, a node that should not be there).
    pub problems: Vec<String>,
}

/// What one configuration's run found.
#[derive(Debug)]
pub struct ConfigResult {
    pub config: Config,
    pub faults: Vec<FaultResult>,
    pub report: Report,
    /// Set-up failures: the cluster never formed, a checker never joined.
    pub setup_error: Option<String>,
    /// What a soak found (`Plan::soak`).
    pub soak: Option<SoakResult>,
}

impl ConfigResult {
    pub fn ok(&self) -> bool {
        self.setup_error.is_none()
            && self.report.ok()
            && self.soak.as_ref().is_none_or(SoakResult::ok)
            && self
                .faults
                .iter()
                .all(|f| f.recovery.is_some() && f.problems.is_empty())
    }
}

/// A checker's log file read as it grows.
pub(crate) struct Tail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            offset: 0,
            partial: String::new(),
        }
    }

    /// Lines written since the last call (a line still being written waits for the next).
    pub(crate) fn read_new(&mut self) -> Vec<Line> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut text = String::new();
        let Ok(n) = f.read_to_string(&mut text) else {
            return Vec::new();
        };
        self.offset += n as u64;
        self.partial.push_str(&text);
        // Complete lines are parsed in place and taken off the front once: a backlog of many
        // lines (a step that did not read the log for a while) costs its length, not its
        // square.
        let complete = self.partial.rfind('\n').map_or(0, |end| end + 1);
        let lines = self.partial[..complete]
            .split_inclusive('\n')
            .filter_map(Line::parse)
            .collect();
        self.partial.drain(..complete);
        lines
    }
}

/// One checker process.
pub(crate) struct Checker {
    pub(crate) host: usize,
    pub(crate) child: Child,
    pub(crate) tail: Tail,
    /// The node and pid it attached as (from its log).
    pub(crate) proc: Option<Proc>,
}

/// The running cluster of one configuration.
pub(crate) struct Cluster {
    pub(crate) bed: Testbed,
    pub(crate) bins: Bins,
    pub(crate) checker_bin: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) conf: PathBuf,
    pub(crate) config: Config,
    pub(crate) rotords: HashMap<usize, Child>,
    pub(crate) checkers: Vec<Checker>,
    /// Every checker log ever started.
    pub(crate) logs: Vec<PathBuf>,
    pub(crate) rate: u32,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.checkers {
            signal(c.child.id(), libc::SIGTERM);
        }
        for c in &mut self.checkers {
            wait_or_kill(&mut c.child, Duration::from_secs(3));
        }
        for c in self.rotords.values_mut() {
            signal(c.id(), libc::SIGCONT);
            signal(c.id(), libc::SIGTERM);
        }
        for c in self.rotords.values_mut() {
            wait_or_kill(c, Duration::from_secs(5));
        }
        let _ = nft(&self.bed, "delete table bridge rotor_faults");
        // The testbed's drop kills what is left in the hosts and removes them.
    }
}

pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    // Safety: kill(2) on a process this campaign started (a child, or a process found in one
    // of its own testbed hosts).
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Looks at `ok` every `every` until it holds (how long that took) or `limit` has passed (`None`).
pub(crate) fn wait_until(
    every: Duration,
    limit: Duration,
    mut ok: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if ok() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(every);
    }
}

pub(crate) fn wait_or_kill(c: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while c.try_wait().ok().flatten().is_none() {
        if Instant::now() >= deadline {
            let _ = c.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.wait();
}

/// Runs `nft` in the switch namespace with `script` on its standard input.
pub(crate) fn nft(bed: &Testbed, script: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", &bed.switch(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft in {}: {} (script: {})",
            bed.switch(),
            String::from_utf8_lossy(&out.stderr).trim(),
            script.replace('\n', "; ")
        ))
    }
}

/// The campaign's table: one forward chain on the bridge, emptied between faults.
pub(crate) fn nft_reset(bed: &Testbed) -> Result<(), String> {
    let _ = nft(bed, "delete table bridge rotor_faults");
    nft(
        bed,
        "table bridge rotor_faults {\n  chain impair {\n    type filter hook forward priority 0; policy accept;\n  }\n}\n",
    )
}

/// Replaces the chain's rules with `rules`, each with a counter in front of its verdict.
pub(crate) fn nft_rules(bed: &Testbed, rules: &[String]) -> Result<(), String> {
    let mut script = String::from("flush chain bridge rotor_faults impair\n");
    for r in rules {
        let counted = match r.strip_suffix(" drop") {
            Some(m) => format!("{m} counter drop"),
            None => r.clone(),
        };
        let _ = writeln!(script, "add rule bridge rotor_faults impair {counted}");
    }
    nft(bed, &script)
}

/// Packets the chain's rules dropped so far (their counters, summed).
fn nft_dropped(bed: &Testbed) -> u64 {
    let out = bed.exec_switch(&["nft", "list", "chain", "bridge", "rotor_faults", "impair"]);
    let Ok(out) = out else { return 0 };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Rules that cut `a` off from `b` (every frame between their ports, both ways).
fn partition_rules(a: &[usize], b: &[usize]) -> Vec<String> {
    let mut rules = Vec::new();
    for x in a {
        for y in b {
            rules.push(format!("iifname \"h{x}\" oifname \"h{y}\" drop"));
            rules.push(format!("iifname \"h{y}\" oifname \"h{x}\" drop"));
        }
    }
    rules
}

/// Makes the run directory `dir` with its cluster key (`dir/authkey`, returned) and a spec for
/// `cluster` whose nodes keep their state under `dir/state` and poll blocking (the nodes and
/// their checkers share two cores).
pub(crate) fn prepare_run(dir: &Path, cluster: &str) -> Result<(PathBuf, Spec), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let key = dir.join("authkey");
    write_authkey(&key).map_err(|e| format!("authkey: {e}"))?;
    let state = dir.join("state");
    std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
    let mut spec = Spec::new(cluster);
    spec.extra = format!(
        "system {{\n  state_dir: {}\n}}\nrotor {{\n  poll_mode: blocking\n}}\n",
        state.display()
    );
    Ok((key, spec))
}

/// Reads every checker log, named by its path, for the checker.
pub(crate) fn read_logs(paths: &[PathBuf]) -> Vec<(String, Vec<Line>)> {
    paths
        .iter()
        .map(|p| (p.display().to_string(), read_log(p)))
        .collect()
}

impl Cluster {
    /// A cluster of `config` on `bed` with nothing started yet; its checkers send `rate`
    /// messages a second.
    pub(crate) fn new(
        bed: Testbed,
        bins: &Path,
        dir: &Path,
        conf: &Path,
        config: Config,
        rate: u32,
    ) -> Cluster {
        Cluster {
            bed,
            bins: Bins {
                dir: bins.to_path_buf(),
            },
            checker_bin: bins.join("rotor-checker"),
            dir: dir.to_path_buf(),
            conf: conf.to_path_buf(),
            config,
            rotords: HashMap::new(),
            checkers: Vec::new(),
            logs: Vec::new(),
            rate,
        }
    }

    /// Starts rotord on hosts 1..=nodes, waits for their ring, then starts a checker on each
    /// and waits until every checker is in the group.
    pub(crate) fn form(&mut self) -> Result<(), String> {
        let nodes: Vec<usize> = (1..=self.config.nodes).collect();
        let ids: Vec<u32> = nodes.iter().map(|&i| i as u32).collect();
        let conf = self.conf.clone();
        for &i in &nodes {
            self.start_rotord(i, &conf)?;
        }
        self.bed
            .wait_rotor_ring(&nodes, &ids, &self.bins, Duration::from_secs(60))?;
        for &i in &nodes {
            self.start_checker(i)?;
        }
        self.wait_group(Duration::from_secs(30))
    }

    fn spare(&self) -> usize {
        self.config.nodes + 1
    }

    pub(crate) fn start_rotord(&mut self, i: usize, conf: &Path) -> Result<(), String> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("rotord-{i}.log")))
            .map_err(|e| e.to_string())?;
        let cmd = rotord_command(&self.bins, conf);
        let child = self
            .bed
            .command(i, cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start rotord on host {i}: {e}"))?;
        self.rotords.insert(i, child);
        Ok(())
    }

    pub(crate) fn start_checker(&mut self, host: usize) -> Result<(), String> {
        let path = self
            .dir
            .join(format!("checker-{host}-{}.log", self.logs.len()));
        let child = self
            .bed
            .command(host, &self.checker_bin)
            .arg("--log")
            .arg(&path)
            .args(["--rate", &self.rate.to_string(), "--seconds", "3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start rotor-checker on host {host}: {e}"))?;
        self.logs.push(path.clone());
        self.checkers.push(Checker {
            host,
            child,
            tail: Tail::new(path),
            proc: None,
        });
        Ok(())
    }

    fn pids_named(&self, host: usize, comm: &str) -> Vec<u32> {
        self.bed
            .processes(host)
            .into_iter()
            .filter(|(_, c)| c == comm)
            .map(|(p, _)| p as u32)
            .collect()
    }

    /// Waits until every running checker's current view holds all of them.
    pub(crate) fn wait_group(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut views: HashMap<usize, Vec<Proc>> = HashMap::new();
        loop {
            for (k, c) in self.checkers.iter_mut().enumerate() {
                for l in c.tail.read_new() {
                    match l {
                        Line::Attach { node, pid, .. } => c.proc = Some(Proc { node, pid }),
                        Line::ConfChg { members, .. } => {
                            views.insert(k, members);
                        }
                        _ => {}
                    }
                }
            }
            let live: Vec<Proc> = self.checkers.iter().filter_map(|c| c.proc).collect();
            let all = live.len() == self.checkers.len()
                && (0..self.checkers.len()).all(|k| {
                    views
                        .get(&k)
                        .is_some_and(|v| live.iter().all(|p| v.contains(p)))
                });
            if all {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the checkers did not all see one group of {} within {limit:?} (attached: {})",
                    self.checkers.len(),
                    live.len()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every live checker has delivered a message sent at or after `heal_ns` by
    /// every live checker; returns the time that took, measured from the logs.
    pub(crate) fn wait_recovery(&mut self, heal_ns: u64, limit: Duration) -> Option<Duration> {
        let deadline = Instant::now() + limit;
        // (receiver index, sender proc) → first delivery time.
        let mut first: HashMap<(usize, Proc), u64> = HashMap::new();
        loop {
            for (k, c) in self.checkers.iter_mut().enumerate() {
                for l in c.tail.read_new() {
                    match l {
                        Line::Attach { node, pid, .. } => c.proc = Some(Proc { node, pid }),
                        Line::Deliver {
                            t,
                            from,
                            msg: Some(m),
                            ..
                        } if m.sent_ns >= heal_ns => {
                            first.entry((k, from)).or_insert(t);
                        }
                        _ => {}
                    }
                }
            }
            let live: Vec<Proc> = self.checkers.iter().filter_map(|c| c.proc).collect();
            let mut latest = heal_ns;
            let mut complete = live.len() == self.checkers.len();
            for k in 0..self.checkers.len() {
                for s in &live {
                    match first.get(&(k, *s)) {
                        Some(t) => latest = latest.max(*t),
                        None => complete = false,
                    }
                }
            }
            if complete {
                return Some(Duration::from_nanos(latest - heal_ns));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A counter of node `i` from cmap (`stats.<key>`), 0 when absent.
    pub(crate) fn stat(&self, i: usize, key: &str) -> u64 {
        let out = self
            .bed
            .command(i, self.bins.rotor())
            .args(["cmap", "get", &format!("stats.{key}")])
            .stdin(Stdio::null())
            .output();
        out.ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .rsplit('=')
                    .next()
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

/// Runs the plan; one result per configuration. `progress` gets a line per step.
pub fn run(plan: &Plan, progress: &mut dyn FnMut(&str)) -> Vec<ConfigResult> {
    std::fs::create_dir_all(&plan.out).ok();
    let mut results = Vec::new();
    for (n, config) in plan.configs.iter().enumerate() {
        progress(&format!("== {} ==", config.name()));
        let dir = plan.out.join(format!("config-{}", n + 1));
        let _ = std::fs::remove_dir_all(&dir);
        let mut result = ConfigResult {
            config: config.clone(),
            faults: Vec::new(),
            report: Report::default(),
            setup_error: None,
            soak: None,
        };
        let outcome = run_config(
            plan,
            config,
            &dir,
            &mut result.faults,
            &mut result.soak,
            progress,
        );
        match outcome {
            Ok(logs) => {
                let parsed = read_logs(&logs);
                result.report = check::check(&parsed);
                // The node with another key never appears in a ring.
                let spare = config.nodes as u32 + 1;
                for (name, lines) in &parsed {
                    if lines
                        .iter()
                        .any(|l| matches!(l, Line::Ring { nodes, .. } if nodes.contains(&spare)))
                    {
                        result.report.violations.push(format!(
                            "other key: {name}: node {spare} (keyed differently) was in a ring"
                        ));
                    }
                }
            }
            Err(e) => {
                progress(&format!("   SET-UP FAILED: {e}"));
                result.setup_error = Some(e);
            }
        }
        progress(&format!(
            "   checked {} deliveries of {} members: {}",
            result.report.deliveries,
            result.report.members,
            if result.report.ok() {
                "no violation".to_string()
            } else {
                format!("{} violations", result.report.violations.len())
            }
        ));
        for v in &result.report.violations {
            progress(&format!("   VIOLATION {v}"));
        }
        results.push(result);
    }
    results
}

/// Checks the checker logs (`checker-*.log`) of one configuration's directory of an earlier
/// run, as the run itself did.
pub fn recheck(dir: &Path) -> Report {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("checker-") && n.ends_with(".log"))
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    check::check(&read_logs(&logs))
}

pub(crate) fn read_log(path: &Path) -> Vec<Line> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| Line::parse(&l))
        .collect()
}

fn run_config(
    plan: &Plan,
    config: &Config,
    dir: &Path,
    results: &mut Vec<FaultResult>,
    soaked: &mut Option<SoakResult>,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<PathBuf>, String> {
    let (key, mut spec) = prepare_run(dir, "faults")?;
    let other_key = dir.join("authkey-other");
    write_authkey(&other_key).map_err(|e| format!("authkey: {e}"))?;
    spec.transport = config.transport.to_owned();
    if let Some(t) = config.token_ms {
        spec.totem.push(("token".into(), t.to_string()));
    }
    if let Some(c) = plan.token_coefficient_ms {
        spec.totem.push(("token_coefficient".into(), c.to_string()));
    }
    let hosts = config.nodes + 1;
    let conf = dir.join("corosync.conf");
    std::fs::write(&conf, spec.corosync_conf(hosts, &key)).map_err(|e| e.to_string())?;
    let conf_other = dir.join("corosync-other.conf");
    std::fs::write(&conf_other, spec.corosync_conf(hosts, &other_key))
        .map_err(|e| e.to_string())?;

    let bed = Testbed::up(&plan.prefix, hosts).map_err(|e| format!("testbed: {e}"))?;
    let mut cluster = Cluster::new(bed, &plan.bins, dir, &conf, config.clone(), plan.rate);
    nft_reset(&cluster.bed)?;
    cluster.form()?;
    progress(&format!(
        "   ring of {} formed, checkers joined",
        config.nodes
    ));
    std::thread::sleep(Duration::from_secs(1));

    if let Some(length) = plan.soak {
        *soaked = Some(soak::run(&mut cluster, length, plan.recovery_max, progress));
        let logs = cluster.logs.clone();
        drop(cluster);
        return Ok(logs);
    }
    let faults = config.faults.clone().unwrap_or_else(|| plan.faults.clone());
    for (k, &fault) in faults.iter().enumerate() {
        let r = apply(&mut cluster, plan, fault, plan.seed + k as u64)?;
        progress(&format!(
            "   {:<26} longest delivery gap {} ms ({} ring changes), recovery {}{}{}",
            fault.name(),
            r.stall.longest.as_millis(),
            r.stall.ring_changes,
            r.recovery
                .map(|d| format!("{} ms", d.as_millis()))
                .unwrap_or_else(|| format!("none within {:?}", plan.recovery_max)),
            r.kill_to_confchg
                .map(|(a, b)| format!(
                    ", kill to configuration change {}..{} ms",
                    a.as_millis(),
                    b.as_millis()
                ))
                .unwrap_or_default(),
            problems_suffix(&r.problems)
        ));
        let stuck = r.recovery.is_none();
        results.push(r);
        if stuck {
            // Nothing after a liveness failure would measure anything.
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs = cluster.logs.clone();
    drop(cluster);
    Ok(logs)
}

/// Applies one fault, heals it and measures the recovery.
fn apply(cl: &mut Cluster, plan: &Plan, fault: Fault, seed: u64) -> Result<FaultResult, String> {
    let n = cl.config.nodes;
    let victim = n;
    let minority: Vec<usize> = (n - n / 2 + 1..=n).collect();
    let majority: Vec<usize> = (1..=n - n / 2).collect();
    let mut problems = Vec::new();
    let mut kill_ns = None;
    let divert = format!("meta l4proto udp udp dport {PORT_DEFAULT} drop");
    let fault_ns = record::now_ns();
    let heal_ns = match fault {
        Fault::Loss(p) => {
            nft_rules(
                &cl.bed,
                &[format!(
                    "meta l4proto udp udp dport {PORT_DEFAULT} numgen random mod 1000 < {} drop",
                    p * 10
                )],
            )?;
            std::thread::sleep(plan.hold);
            if nft_dropped(&cl.bed) == 0 {
                problems.push("the loss rule dropped nothing".into());
            }
            nft_rules(&cl.bed, &[])?;
            record::now_ns()
        }
        Fault::DelayReorder | Fault::Duplicate => {
            let how = if fault == Fault::Duplicate {
                Impairment {
                    delay: Duration::ZERO,
                    jitter: Duration::ZERO,
                    duplicate: 0.2,
                }
            } else {
                Impairment {
                    delay: Duration::from_millis(1),
                    jitter: Duration::from_millis(4),
                    duplicate: 0.0,
                }
            };
            let mut relay = Relay::start(&cl.bed.switch(), n + 1, PORT_DEFAULT, how, seed)
                .map_err(|e| format!("relay: {e}"))?;
            nft_rules(&cl.bed, std::slice::from_ref(&divert))?;
            std::thread::sleep(plan.hold);
            nft_rules(&cl.bed, &[])?;
            let _ = relay.stop();
            let relayed = relay
                .counters
                .frames
                .load(std::sync::atomic::Ordering::Relaxed);
            if relayed == 0 {
                problems.push("the relay saw no cluster frame".into());
            }
            record::now_ns()
        }
        Fault::Partition => {
            kill_ns = Some(record::now_ns());
            nft_rules(&cl.bed, &partition_rules(&majority, &minority))?;
            std::thread::sleep(plan.hold);
            if nft_dropped(&cl.bed) == 0 {
                problems.push("the partition rules dropped nothing".into());
            }
            nft_rules(&cl.bed, &[])?;
            record::now_ns()
        }
        Fault::Flap => {
            let end = Instant::now() + plan.hold;
            let mut rng = seed | 1;
            let mut on = false;
            while Instant::now() < end {
                on = !on;
                if on {
                    nft_rules(&cl.bed, &partition_rules(&majority, &minority))?;
                } else {
                    nft_rules(&cl.bed, &[])?;
                }
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                std::thread::sleep(Duration::from_millis(200 + rng % 600));
            }
            nft_rules(&cl.bed, &[])?;
            record::now_ns()
        }
        Fault::KillDataplane => {
            let pids = cl.pids_named(victim, "rotor-dataplane");
            kill_ns = Some(record::now_ns());
            for p in &pids {
                signal(*p, libc::SIGKILL);
            }
            if pids.is_empty() {
                problems.push(format!("no dataplane on host {victim}"));
            }
            // rotord restarts it 1.1 s later; traffic is measured from the kill.
            std::thread::sleep(plan.hold);
            kill_ns.unwrap_or_else(record::now_ns)
        }
        Fault::KillRotord => {
            kill_ns = Some(record::now_ns());
            if let Some(mut c) = cl.rotords.remove(&victim) {
                let _ = c.kill();
                let _ = c.wait();
            }
            std::thread::sleep(plan.hold);
            // Its dataplane follows it (parent-death signal); make sure before restarting.
            for p in cl.pids_named(victim, "rotor-dataplane") {
                signal(p, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
            let conf = cl.conf.clone();
            cl.start_rotord(victim, &conf)?;
            record::now_ns()
        }
        Fault::KillNode => {
            // Listed before the clock is read (`Testbed::kill_list`).
            let pids = cl.bed.kill_list(victim);
            kill_ns = Some(record::now_ns());
            rotor_testbed::rotor::kill_pids(&pids);
            if let Some(mut c) = cl.rotords.remove(&victim) {
                let _ = c.wait();
            }
            let mut i = 0;
            while i < cl.checkers.len() {
                if cl.checkers[i].host == victim {
                    let mut c = cl.checkers.swap_remove(i);
                    let _ = c.child.wait();
                } else {
                    i += 1;
                }
            }
            std::thread::sleep(plan.hold);
            let conf = cl.conf.clone();
            cl.start_rotord(victim, &conf)?;
            cl.start_checker(victim)?;
            record::now_ns()
        }
        Fault::Pause => {
            let pids = cl.pids_named(victim, "rotor-dataplane");
            kill_ns = Some(record::now_ns());
            for p in &pids {
                signal(*p, libc::SIGSTOP);
            }
            std::thread::sleep(plan.hold);
            for p in &pids {
                signal(*p, libc::SIGCONT);
            }
            record::now_ns()
        }
        Fault::Restart => {
            if let Some(mut c) = cl.rotords.remove(&victim) {
                signal(c.id(), libc::SIGTERM);
                wait_or_kill(&mut c, Duration::from_secs(5));
            }
            let conf = cl.conf.clone();
            cl.start_rotord(victim, &conf)?;
            record::now_ns()
        }
        Fault::OtherKey => {
            let spare = cl.spare();
            let before = cl.stat(1, "crypto.drops.unknown_key");
            let conf = cl.dir.join("corosync-other.conf");
            cl.start_rotord(spare, &conf)?;
            std::thread::sleep(plan.hold);
            if let Some(mut c) = cl.rotords.remove(&spare) {
                signal(c.id(), libc::SIGTERM);
                wait_or_kill(&mut c, Duration::from_secs(5));
            }
            let after = cl.stat(1, "crypto.drops.unknown_key");
            if after <= before {
                problems.push(format!(
                    "node 1 counted no unknown_key drop from the node with another key ({before} → {after})"
                ));
            }
            record::now_ns()
        }
        Fault::Garbage => {
            let spare = cl.spare();
            let before = (
                cl.stat(1, "crypto.drops.invalid_digest"),
                cl.stat(1, "crypto.drops.bad_magic"),
            );
            let key = cl.dir.join("authkey");
            let key_id = rotor_crypto::Keys::from_authkey_file(&key, "faults")
                .map(|k| rotor_crypto::CryptoMode::Gcm256.key_id(&k))
                .map_err(|e| format!("{}: {e}", key.display()))?;
            flood(&cl.bed, spare, n, key_id, plan.hold, seed)?;
            let after = (
                cl.stat(1, "crypto.drops.invalid_digest"),
                cl.stat(1, "crypto.drops.bad_magic"),
            );
            if after.0 <= before.0 || after.1 <= before.1 {
                problems.push(format!(
                    "node 1 did not count the flood: invalid_digest {} → {}, bad_magic {} → {}",
                    before.0, after.0, before.1, after.1
                ));
            }
            record::now_ns()
        }
        Fault::LateJoin => {
            for host in 1..=n {
                cl.start_checker(host)?;
                std::thread::sleep(Duration::from_millis(150));
            }
            record::now_ns()
        }
    };
    let recovery = cl.wait_recovery(heal_ns, plan.recovery_max);
    if recovery.is_none() {
        // What each node looked like when traffic did not come back, for the report.
        for i in 1..=n {
            let ring = match cl.bed.rotor_status(i, &cl.bins) {
                Ok(s) => {
                    let members: Vec<String> = s.connected.iter().map(u32::to_string).collect();
                    format!("{} ring {} members {}", s.state, s.ring, members.join(","))
                }
                Err(e) => e.to_string(),
            };
            problems.push(format!(
                "node {i} after the heal: {ring}, delivered {}, token rotations {}, tokens lost {}, retransmitted {}",
                cl.stat(i, "srp.delivered"),
                cl.stat(i, "srp.token_rotations"),
                cl.stat(i, "srp.token_lost"),
                cl.stat(i, "srp.retransmitted"),
            ));
        }
    }
    let kill_to_confchg = kill_ns.and_then(|k| kill_to_confchg(cl, victim as u32, k));
    let stall = stall(&cl.logs, fault_ns, heal_ns);
    Ok(FaultResult {
        fault,
        recovery,
        kill_to_confchg,
        stall,
        problems,
    })
}

/// The longest delivery gap and the ring changes while a fault was on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stall {
    /// The longest interval in `[from, to]` in which one checker delivered nothing (the window's
    /// ends count as deliveries, so a checker that delivered nothing at all stalled for the
    /// whole window).
    pub longest: Duration,
    /// The most ring changes (`T` lines) one checker logged in the window.
    pub ring_changes: u32,
}

/// Reads every checker log for the window `[from_ns, to_ns]` (see [`Stall`]). Checkers that
/// did not run through the whole window (killed or started in it) are left out.
fn stall(logs: &[PathBuf], from_ns: u64, to_ns: u64) -> Stall {
    let mut worst = Stall::default();
    for path in logs {
        let lines = read_log(path);
        let started = lines.iter().find_map(|l| match l {
            Line::Attach { t, .. } => Some(*t),
            _ => None,
        });
        let ended = lines.iter().any(|l| match l {
            Line::Error { t, .. } | Line::End { t } => (from_ns..=to_ns).contains(t),
            _ => false,
        });
        if started.is_none_or(|t| t > from_ns) || ended {
            continue;
        }
        let (gap, rings) = gaps_in(&lines, from_ns, to_ns);
        worst.longest = worst.longest.max(gap);
        worst.ring_changes = worst.ring_changes.max(rings);
    }
    worst
}

/// One log's longest delivery gap in `[from_ns, to_ns]`, and its ring changes there.
fn gaps_in(lines: &[Line], from_ns: u64, to_ns: u64) -> (Duration, u32) {
    let mut last = from_ns;
    let mut longest = 0;
    let mut rings = 0;
    for l in lines {
        match l {
            Line::Deliver { t, .. } if (from_ns..=to_ns).contains(t) => {
                longest = longest.max(t - last);
                last = *t;
            }
            Line::Ring { t, .. } if (from_ns..=to_ns).contains(t) => rings += 1,
            _ => {}
        }
    }
    longest = longest.max(to_ns.saturating_sub(last));
    (Duration::from_nanos(longest), rings)
}

/// From `kill_ns` to the first and last survivor's configuration change that drops node
/// `victim`'s processes.
fn kill_to_confchg(cl: &Cluster, victim: u32, kill_ns: u64) -> Option<(Duration, Duration)> {
    let mut times = Vec::new();
    for path in &cl.logs {
        let lines = read_log(path);
        let me = lines.iter().find_map(|l| match l {
            Line::Attach { node, .. } => Some(*node),
            _ => None,
        });
        if me == Some(victim) {
            continue;
        }
        if let Some(t) = lines.iter().find_map(|l| match l {
            Line::ConfChg { t, left, .. }
                if *t >= kill_ns && left.iter().any(|(p, _)| p.node == victim) =>
            {
                Some(*t)
            }
            _ => None,
        }) {
            times.push(t - kill_ns);
        }
    }
    let first = *times.iter().min()?;
    let last = *times.iter().max()?;
    Some((Duration::from_nanos(first), Duration::from_nanos(last)))
}

/// From host `from`, for `hold`: random datagrams and forged frames (the seal header of a real
/// node id, the right cluster, mode and key id, the largest epoch; random body and tag) to
/// every node's cluster port, at most ~20,000 a second.
fn flood(
    bed: &Testbed,
    from: usize,
    nodes: usize,
    key_id: u32,
    hold: Duration,
    seed: u64,
) -> Result<(), String> {
    let hash = rotor_crypto::cluster_name_hash("faults");
    bed.in_host(from, move || -> Result<(), String> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        let mut rng = seed | 1;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let end = Instant::now() + hold;
        let mut buf = vec![0u8; 1400];
        let mut sent = 0u64;
        let start = Instant::now();
        while Instant::now() < end {
            let len = 1 + (next() % 1400) as usize;
            for b in buf[..len].iter_mut() {
                *b = next() as u8;
            }
            if sent % 2 == 0 && len > 40 {
                // A forged frame: header of node 1..=N, epoch u32::MAX.
                buf[0..2].copy_from_slice(b"RT");
                buf[2] = rotor_crypto::VERSION;
                buf[3] = rotor_crypto::CryptoMode::Gcm256.wire_byte();
                buf[4..8].copy_from_slice(&hash.to_be_bytes());
                let sender = 1 + (next() % nodes as u64) as u32;
                buf[8..12].copy_from_slice(&sender.to_be_bytes());
                buf[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
                buf[24..28].copy_from_slice(&key_id.to_be_bytes());
            }
            let to = 1 + (next() % nodes as u64) as usize;
            let addr = std::net::SocketAddr::from((rotor_testbed::ipv4(to), PORT_DEFAULT));
            let _ = socket.send_to(&buf[..len], addr);
            sent += 1;
            // Pace: at most 20 per millisecond.
            if sent % 20 == 0 {
                let due = start + Duration::from_micros(sent * 50);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
            }
        }
        Ok(())
    })
}

/// The results as a Markdown table (benchmark-style figures, not assertions).
pub fn markdown(results: &[ConfigResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| configuration | fault | recovery (heal → traffic everywhere) | fault → configuration change without the last node (first..last survivor) | longest delivery gap during the fault (ring changes) | notes |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for r in results {
        if let Some(e) = &r.setup_error {
            let _ = writeln!(s, "| {} | set-up | — | — | — | {e} |", r.config.name());
        }
        for f in &r.faults {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} ms ({}) | {} |",
                r.config.name(),
                f.fault.name(),
                f.recovery
                    .map(|d| format!("{} ms", d.as_millis()))
                    .unwrap_or_else(|| "**none**".into()),
                f.kill_to_confchg
                    .map(|(a, b)| format!("{}..{} ms", a.as_millis(), b.as_millis()))
                    .unwrap_or_else(|| "—".into()),
                f.stall.longest.as_millis(),
                f.stall.ring_changes,
                f.problems.join("; ")
            );
        }
    }
    let _ = writeln!(s);
    for r in results {
        if let Some(soaked) = &r.soak {
            soak::markdown(&r.config.name(), soaked, &mut s);
        }
    }
    for r in results {
        let _ = writeln!(
            s,
            "- {}: {} deliveries to {} members checked, {} view pairs compared, {}",
            r.config.name(),
            r.report.deliveries,
            r.report.members,
            r.report.views_compared,
            if r.report.ok() {
                "no violation".to_string()
            } else {
                format!("violations: {}", r.report.violations.join(" / "))
            }
        );
    }
    s
}

/// What ends a step's summary line: nothing when the step found no problem, else the
/// problems after ` PROBLEMS: `.
pub fn problems_suffix(problems: &[String]) -> String {
    if problems.is_empty() {
        String::new()
    } else {
        format!(" PROBLEMS: {}", problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Proc;

    fn deliver(t: u64) -> Line {
        Line::Deliver {
            t,
            inc: 0,
            from: Proc { node: 1, pid: 1 },
            msg: None,
        }
    }

    #[test]
    fn the_longest_gap_counts_the_window_ends_and_only_the_window() {
        let ring = Line::Ring {
            t: 150,
            inc: 0,
            ring: "1.4".into(),
            nodes: vec![1, 2],
        };
        // 0 and 400 are outside the window [100, 300]; inside: 120, 130, 260; then the end.
        let lines = [
            deliver(0),
            deliver(120),
            deliver(130),
            ring,
            deliver(260),
            deliver(400),
        ];
        let (gap, rings) = gaps_in(&lines, 100, 300);
        assert_eq!(gap, Duration::from_nanos(130));
        assert_eq!(rings, 1);
        // Nothing delivered in the window: the whole window is the gap.
        let (gap, rings) = gaps_in(&[deliver(0), deliver(400)], 100, 300);
        assert_eq!(gap, Duration::from_nanos(200));
        assert_eq!(rings, 0);
    }
}
