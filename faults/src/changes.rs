//! Changing a running cluster under CPG load: checker clients on every node of a 3-node
//! cluster while a 4th node is added by a reload and started, removed by a reload (it leaves
//! and stops by itself), the token timeout changed, the key rotated, and two changes that may
//! not happen at runtime (cluster_name, transport) refused. The checker over the logs must
//! find no lost, duplicated, reordered or invented message, and the only ring and group
//! changes after the start are node 4's arrival and departure. Figures (how long each round
//! and the key switch took, how long traffic took to flow everywhere after it) are reported,
//! never asserted.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use rotor_testbed::rotor::{write_authkey, Spec};
use rotor_testbed::Testbed;

use crate::campaign::{prepare_run, read_logs, signal, wait_or_kill, wait_until, Cluster, Config};
use crate::check::{self, Report};
use crate::record::{self, Line};

/// One step of the run.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    /// How long the `rotor cfg` command took (the change round, answered by every member).
    pub round: Duration,
    /// For the key rotation: from the command until every node seals under the new key and
    /// holds no other.
    pub settled: Option<Duration>,
    /// From the end of the step until every live checker delivered a message sent after it
    /// by every live checker; `None`: not within the limit.
    pub recovery: Option<Duration>,
    pub problems: Vec<String>,
}

/// What the run found.
#[derive(Debug, Default)]
pub struct ChangesResult {
    pub steps: Vec<Step>,
    pub report: Report,
    /// Ring or group changes other than node 4's arrival and departure.
    pub unexpected: Vec<String>,
    pub setup_error: Option<String>,
}

impl ChangesResult {
    pub fn ok(&self) -> bool {
        self.setup_error.is_none()
            && self.report.ok()
            && self.unexpected.is_empty()
            && self
                .steps
                .iter()
                .all(|s| s.recovery.is_some() && s.problems.is_empty())
    }

    /// One line per step and the checker's verdict.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for st in &self.steps {
            s.push_str(&format!(
                "{:<34} round {:>5} ms{} recovery {}{}\n",
                st.name,
                st.round.as_millis(),
                st.settled
                    .map(|d| format!(", every node on the new key after {} ms,", d.as_millis()))
                    .unwrap_or_else(|| ",".into()),
                st.recovery
                    .map(|d| format!("{} ms", d.as_millis()))
                    .unwrap_or_else(|| "none".into()),
                crate::campaign::problems_suffix(&st.problems)
            ));
        }
        s.push_str(
            &self
                .report
                .summary_tail(&self.unexpected, self.setup_error.as_deref()),
        );
        s
    }
}

/// How often a change sequence looks again at what it waits for.
pub(crate) const POLL_EVERY_CHANGES: Duration = Duration::from_millis(100);
const CLUSTER: &str = "faults";
const RECOVERY_MAX: Duration = Duration::from_secs(30);

/// Runs the whole sequence on testbed hosts named after `prefix`; logs go to `out`.
pub fn run(
    bins: PathBuf,
    out: &Path,
    prefix: &str,
    progress: &mut dyn FnMut(&str),
) -> ChangesResult {
    run_sequence(bins, out, prefix, progress, steps, unexpected_changes)
}

/// A sequence of steps on testbed hosts: the checker logs it leaves and the span whose ring
/// and group changes are judged.
pub(crate) type Sequence =
    fn(PathBuf, &Path, &str, &mut Vec<Step>, &mut dyn FnMut(&str)) -> Result<Logs, String>;

/// Which ring and group changes in a span were not expected.
pub(crate) type Unexpected = fn(&[(String, Vec<Line>)], (u64, u64)) -> Vec<String>;

/// Runs `sequence` (logs in a fresh `out`), then checks what its checkers logged: every CPG
/// property, and the changes `unexpected` names in the span the sequence gave.
pub(crate) fn run_sequence(
    bins: PathBuf,
    out: &Path,
    prefix: &str,
    progress: &mut dyn FnMut(&str),
    sequence: Sequence,
    unexpected: Unexpected,
) -> ChangesResult {
    let mut result = ChangesResult::default();
    let _ = std::fs::remove_dir_all(out);
    match sequence(bins, out, prefix, &mut result.steps, progress) {
        Ok((logs, span)) => {
            let parsed = read_logs(&logs);
            result.report = check::check(&parsed);
            result.unexpected = unexpected(&parsed, span);
        }
        Err(e) => result.setup_error = Some(e),
    }
    result
}

/// `rotor ARGS` on host `i`.
pub(crate) fn rotor(cl: &Cluster, i: usize, args: &[&str]) -> Result<Output, String> {
    cl.bed
        .command(i, cl.bins.rotor())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("rotor {} on host {i}: {e}", args.join(" ")))
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `rotor cfg ARGS` on host `i`; its exit status, output and how long it took.
pub(crate) fn cfg(
    cl: &Cluster,
    i: usize,
    args: &[&str],
) -> Result<(i32, String, Duration), String> {
    let mut argv = vec!["cfg"];
    argv.extend_from_slice(args);
    let t = Instant::now();
    let o = rotor(cl, i, &argv)?;
    Ok((o.status.code().unwrap_or(-1), text(&o), t.elapsed()))
}

/// A cmap value of host `i` as `rotor cmap get` prints it (after ` = `).
pub(crate) fn cmap_get(cl: &Cluster, i: usize, key: &str) -> Option<String> {
    let o = rotor(cl, i, &["cmap", "get", key]).ok()?;
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    out.rsplit_once(" = ").map(|(_, v)| v.trim().to_owned())
}

/// The key line of `rotor status` on host `i` (`Key 1a2b3c4d`, possibly with the keys it
/// also opens).
fn key_line(cl: &Cluster, i: usize) -> String {
    rotor(cl, i, &["status"])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.starts_with("Key "))
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default()
}

fn key_id(path: &Path) -> Result<u32, String> {
    rotor_crypto::Keys::from_authkey_file(path, CLUSTER)
        .map(|k| rotor_crypto::CryptoMode::Gcm256.key_id(&k))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write_conf(spec: &Spec, conf: &Path, nodes: usize, key: &Path) -> Result<(), String> {
    std::fs::write(conf, spec.corosync_conf(nodes, key))
        .map_err(|e| format!("{}: {e}", conf.display()))
}

/// Lets traffic flow for a while, then measures how long every checker takes to hear every
/// other after `since`.
fn settle(cl: &mut Cluster, since: u64) -> Option<Duration> {
    std::thread::sleep(Duration::from_secs(2));
    cl.wait_recovery(since, RECOVERY_MAX)
}

/// The checker logs, and the span (start, end) whose ring and group changes are judged (this
/// sequence's: they must be node 4's; the link reload's: there must be none).
pub(crate) type Logs = (Vec<PathBuf>, (u64, u64));

fn steps(
    bins: PathBuf,
    dir: &Path,
    prefix: &str,
    steps: &mut Vec<Step>,
    progress: &mut dyn FnMut(&str),
) -> Result<Logs, String> {
    let (key, mut spec) = prepare_run(dir, CLUSTER)?;
    spec.transport = "udpu".into();
    spec.totem.push(("token".into(), "300".into()));
    // One file for every node (the hosts share the file system): editing it is editing every
    // node's corosync.conf.
    let conf = dir.join("corosync.conf");
    write_conf(&spec, &conf, 3, &key)?;
    let bed = Testbed::up(prefix, 4).map_err(|e| format!("testbed: {e}"))?;
    let config = Config {
        nodes: 3,
        transport: "udpu",
        token_ms: Some(300),
        faults: None,
    };
    let mut cl = Cluster::new(bed, &bins, dir, &conf, config, 200);
    cl.form()?;
    progress("ring of 3 formed, checkers joined");
    std::thread::sleep(Duration::from_secs(1));
    // Every ring and group change from here on must be node 4's.
    let since = record::now_ns();

    // Add node 4: every file lists it, a reload, then it starts and joins.
    {
        let mut problems = Vec::new();
        write_conf(&spec, &conf, 4, &key)?;
        let (code, out, round) = cfg(&cl, 1, &["-R"])?;
        if code != 0 || !out.contains("Done") {
            problems.push(format!("rotor cfg -R exited {code}: {}", out.trim()));
        }
        for i in 1..=3 {
            let (code, out, _) = cfg(&cl, i, &["-a", "4"])?;
            if code != 0 || !out.contains("198.18.0.4") {
                problems.push(format!(
                    "node {i}: rotor cfg -a 4 exited {code}: {}",
                    out.trim()
                ));
            }
        }
        cl.start_rotord(4, &conf)?;
        cl.bed.wait_rotor_ring(
            &[1, 2, 3, 4],
            &[1, 2, 3, 4],
            &cl.bins,
            Duration::from_secs(30),
        )?;
        cl.start_checker(4)?;
        cl.wait_group(Duration::from_secs(30))?;
        let recovery = settle(&mut cl, record::now_ns());
        steps.push(Step {
            name: "add node 4 (reload, start)".into(),
            round,
            settled: None,
            recovery,
            problems,
        });
        progress("node 4 added");
    }

    // Remove node 4: its checker leaves, every file drops it, a reload; node 4 leaves the ring
    // and stops by itself.
    {
        let mut problems = Vec::new();
        if let Some(k) = cl.checkers.iter().position(|c| c.host == 4) {
            let mut c = cl.checkers.remove(k);
            signal(c.child.id(), libc::SIGTERM);
            wait_or_kill(&mut c.child, Duration::from_secs(5));
        }
        write_conf(&spec, &conf, 3, &key)?;
        let (code, out, round) = cfg(&cl, 2, &["-R"])?;
        if code != 0 || !out.contains("Done") {
            problems.push(format!("rotor cfg -R exited {code}: {}", out.trim()));
        }
        let stopped = match cl.rotords.remove(&4) {
            Some(mut c) => {
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    match c.try_wait() {
                        Ok(Some(status)) => break Some(status),
                        _ if Instant::now() >= deadline => {
                            wait_or_kill(&mut c, Duration::ZERO);
                            break None;
                        }
                        _ => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            }
            None => None,
        };
        match stopped {
            Some(s) if s.success() => {}
            Some(s) => problems.push(format!("node 4's rotord ended with {s}")),
            None => problems.push("node 4's rotord did not stop within 20 s".into()),
        }
        cl.bed
            .wait_rotor_ring(&[1, 2, 3], &[1, 2, 3], &cl.bins, Duration::from_secs(30))?;
        let recovery = settle(&mut cl, record::now_ns());
        steps.push(Step {
            name: "remove node 4 (reload)".into(),
            round,
            settled: None,
            recovery,
            problems,
        });
        progress("node 4 removed");
    }

    // The token timeout 300 → 600 ms, on every node, shown by cmap.
    {
        let mut problems = Vec::new();
        spec.totem = vec![("token".into(), "600".into())];
        write_conf(&spec, &conf, 3, &key)?;
        let (code, out, round) = cfg(&cl, 3, &["-R"])?;
        if code != 0 || !out.contains("Done") {
            problems.push(format!("rotor cfg -R exited {code}: {}", out.trim()));
        }
        // The timeout in effect is corosync's: token + token_coefficient (650 ms) per node
        // past two.
        for i in 1..=3 {
            for (k, want) in [
                ("totem.token", "600"),
                ("runtime.config.totem.token", "1250"),
            ] {
                let shown = wait_until(POLL_EVERY_CHANGES, Duration::from_secs(10), || {
                    cmap_get(&cl, i, k).as_deref() == Some(want)
                });
                if shown.is_none() {
                    problems.push(format!(
                        "node {i}: rotor cmap get {k} shows {}, not {want}",
                        cmap_get(&cl, i, k).unwrap_or_else(|| "nothing".into())
                    ));
                }
            }
        }
        let recovery = settle(&mut cl, record::now_ns());
        steps.push(Step {
            name: "token 300 → 600 ms (reload)".into(),
            round,
            settled: None,
            recovery,
            problems,
        });
        progress("token changed");
    }

    // Key rotation: a new key file, rotor cfg --rotate-key; every node ends sealing under it
    // and holding no other.
    {
        let mut problems = Vec::new();
        let old = key_id(&key)?;
        let next = dir.join("authkey.new");
        write_authkey(&next).map_err(|e| format!("authkey: {e}"))?;
        let new = key_id(&next)?;
        let start = Instant::now();
        let path = next.display().to_string();
        let (code, out, round) = cfg(&cl, 1, &["--rotate-key", &path])?;
        if code != 0 {
            problems.push(format!(
                "rotor cfg --rotate-key exited {code}: {}",
                out.trim()
            ));
        }
        let want = format!("Key {new:08x}");
        let settled = wait_until(POLL_EVERY_CHANGES, Duration::from_secs(20), || {
            (1..=3).all(|i| key_line(&cl, i) == want)
        })
        .map(|_| start.elapsed());
        if settled.is_none() {
            for i in 1..=3 {
                problems.push(format!(
                    "node {i} shows '{}', not '{want}' (old key {old:08x})",
                    key_line(&cl, i)
                ));
            }
        }
        // The key file now holds the new key, so a restart or a reload keeps it.
        if key_id(&key).ok() != Some(new) {
            problems.push(format!(
                "{} was not rewritten with the new key",
                key.display()
            ));
        }
        let recovery = settle(&mut cl, record::now_ns());
        steps.push(Step {
            name: "key rotation (--rotate-key)".into(),
            round,
            settled,
            recovery,
            problems,
        });
        progress("key rotated");
    }

    // What may not change at runtime: refused naming the key; the ring runs on.
    for (what, key_name) in [
        ("cluster_name", "totem.cluster_name"),
        ("transport", "totem.transport"),
    ] {
        let mut problems = Vec::new();
        let mut changed = spec.clone();
        match what {
            "cluster_name" => changed.cluster_name = "renamed".into(),
            _ => changed.transport = "udp".into(),
        }
        write_conf(&changed, &conf, 3, &key)?;
        let (code, out, round) = cfg(&cl, 2, &["-R"])?;
        if code != 1 || !out.contains(&format!("{key_name} cannot change while the cluster runs")) {
            problems.push(format!(
                "a change of {key_name}: rotor cfg -R exited {code}: {}",
                out.trim()
            ));
        }
        write_conf(&spec, &conf, 3, &key)?;
        for i in 1..=3 {
            if cmap_get(&cl, i, "runtime.config.totem.token").as_deref() != Some("1250") {
                problems.push(format!(
                    "node {i} no longer runs with a 1250 ms token timeout"
                ));
            }
        }
        let recovery = settle(&mut cl, record::now_ns());
        steps.push(Step {
            name: format!("{key_name} refused"),
            round,
            settled: None,
            recovery,
            problems,
        });
        progress(&format!("{key_name} refused"));
    }
    cl.bed
        .wait_rotor_ring(&[1, 2, 3], &[1, 2, 3], &cl.bins, Duration::from_secs(5))?;
    let logs = cl.logs.clone();
    // The checkers' own leaves as the cluster is taken down come after this.
    let until = record::now_ns();
    drop(cl);
    Ok((logs, (since, until)))
}

/// Ring and group changes after `since` other than node 4's: every checker of nodes 1–3 must
/// see exactly a ring of 1–4 then one of 1–3, and in the group only node 4's processes join
/// and leave.
fn unexpected_changes(logs: &[(String, Vec<Line>)], (since, until): (u64, u64)) -> Vec<String> {
    let mut out = Vec::new();
    for (name, lines) in logs {
        let me = lines.iter().find_map(|l| match l {
            Line::Attach { node, .. } => Some(*node),
            _ => None,
        });
        if me == Some(4) {
            continue;
        }
        let rings: Vec<Vec<u32>> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Ring { t, nodes, .. } if (since..until).contains(t) => Some(nodes.clone()),
                _ => None,
            })
            .collect();
        if rings != [vec![1, 2, 3, 4], vec![1, 2, 3]] {
            out.push(format!(
                "{name}: rings after the start {rings:?}, expected [[1, 2, 3, 4], [1, 2, 3]]"
            ));
        }
        for l in lines {
            if let Line::ConfChg {
                t, joined, left, ..
            } = l
            {
                if !(since..until).contains(t) {
                    continue;
                }
                for (p, reason) in joined.iter().chain(left) {
                    if p.node != 4 {
                        out.push(format!(
                            "{name}: group change of {p} (reason {reason}) after the start"
                        ));
                    }
                }
            }
        }
    }
    out
}
