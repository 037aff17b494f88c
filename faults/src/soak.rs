//! The soak: the campaign's cluster and checker load with no fault for a bounded time. Every
//! membership change after the first ring formed is a false one (nothing failed); each is
//! reported with its time, the ring it made, who saw it, and every node's log lines around it
//! (which node lost the token, and what it was doing), beside the load of the machine, whose
//! other processes share the cores with the nodes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::campaign::Cluster;
use crate::record::{self, Line, Proc};

/// Log lines kept per node around a false change: this long before it…
const CONTEXT_BEFORE_MS: i64 = 2_500;
/// …and this long after.
const CONTEXT_AFTER_MS: i64 = 1_000;
/// At most this many lines per node and change.
const CONTEXT_LINES_MAX: usize = 40;
/// The load average is sampled this often during the soak.
const LOAD_SAMPLE: Duration = Duration::from_secs(10);
/// The wake-up probe sleeps this long each time…
const PROBE_SLEEP: Duration = Duration::from_millis(1);
/// …and keeps each wake-up later than this (ns).
const PROBE_LATE_NS: u64 = 2_000_000;
/// A false change is compared with the probe's wake-ups this long before it (ns): the window
/// in which a late token would have had to arrive.
const PROBE_WINDOW_NS: u64 = 200_000_000;

/// One membership change after the first ring: a new ring id.
#[derive(Clone, Debug)]
pub struct FalseChange {
    /// From the start of the soak to the first checker that saw the new ring.
    pub at: Duration,
    /// The ring id as the checkers log it (`rep.seq`).
    pub ring: String,
    /// Its members.
    pub nodes: Vec<u32>,
    /// The nodes whose checkers saw it, and when (from the soak's start).
    pub seen: Vec<(u32, Duration)>,
    /// Processes that left the group in a configuration change that followed.
    pub left: Vec<Proc>,
    /// Every node's log lines around it, `node: line`.
    pub context: Vec<String>,
    /// The latest wake-up of the probe thread (same priority as the nodes, on the same cores)
    /// in the `PROBE_WINDOW_NS` before the change: how long a runnable process waited for a
    /// core then.
    pub probe_late_before: Duration,
}

/// What a soak found.
#[derive(Clone, Debug, Default)]
pub struct SoakResult {
    pub length: Duration,
    /// The one-minute load average before, during (min, mean, max of samples) and after.
    pub load_before: f64,
    pub load_during: (f64, f64, f64),
    pub load_after: f64,
    pub changes: Vec<FalseChange>,
    /// Checker sessions that failed during the soak (`E` lines), `node: what`.
    pub session_errors: Vec<String>,
    /// After the soak: until every checker delivered every checker's new messages; `None`:
    /// not within the campaign's recovery limit.
    pub flowing_after: Option<Duration>,
    /// Per node: `srp.token_lost`, the token rotation histogram and its min/mean/max.
    pub token_stats: Vec<(u32, Vec<String>)>,
    /// The timers node 1 runs with (token, token_retransmit, consensus, join), as resolved.
    pub timers: Vec<String>,
    /// The wake-up probe over the whole soak: wake-ups, the latest one, and how many were
    /// late by more than 5, 10 and 20 ms.
    pub probe: ProbeSummary,
    /// `/proc/pressure/cpu` "some" avg60 before and after (share of time some runnable task
    /// waited for a core), when the kernel has it.
    pub cpu_pressure: (Option<f64>, Option<f64>),
}

/// What the wake-up probe saw.
#[derive(Clone, Debug, Default)]
pub struct ProbeSummary {
    pub wakeups: u64,
    pub late_max: Duration,
    pub late_over_5ms: u64,
    pub late_over_10ms: u64,
    pub late_over_20ms: u64,
}

/// A thread that sleeps `PROBE_SLEEP` again and again and notes each wake-up later than
/// `PROBE_LATE_NS` (time, lateness in ns): a process of the nodes' priority waits that long
/// for a core at those moments.
struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(ProbeSummary, Vec<(u64, u64)>)>,
}

impl Probe {
    fn start() -> Probe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut summary = ProbeSummary::default();
            let mut late = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let before = record::now_ns();
                std::thread::sleep(PROBE_SLEEP);
                let after = record::now_ns();
                let over = (after - before).saturating_sub(PROBE_SLEEP.as_nanos() as u64);
                summary.wakeups += 1;
                summary.late_max = summary.late_max.max(Duration::from_nanos(over));
                for (limit, n) in [
                    (5_000_000, &mut summary.late_over_5ms),
                    (10_000_000, &mut summary.late_over_10ms),
                    (20_000_000, &mut summary.late_over_20ms),
                ] {
                    if over > limit {
                        *n += 1;
                    }
                }
                if over > PROBE_LATE_NS {
                    late.push((after, over));
                }
            }
            (summary, late)
        });
        Probe { stop, thread }
    }

    fn finish(self) -> (ProbeSummary, Vec<(u64, u64)>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// `/proc/pressure/cpu`'s "some avg60" (percent), if the kernel has it.
fn cpu_pressure() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some"))?;
    some.split_whitespace()
        .find_map(|w| w.strip_prefix("avg60="))?
        .parse()
        .ok()
}

impl SoakResult {
    /// No false change, no failed session, traffic still flowing at the end.
    pub fn ok(&self) -> bool {
        self.changes.is_empty() && self.session_errors.is_empty() && self.flowing_after.is_some()
    }
}

/// The one-minute load average (`/proc/loadavg`), 0 if unreadable.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns: turns a checker's time into a wall time to
/// compare with the nodes' log lines.
pub fn realtime_offset_ns() -> i128 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    real - record::now_ns() as i128
}

/// Milliseconds since local midnight of a wall time (ns since the epoch), as the nodes' log
/// timestamps (`Mon DD HH:MM:SS.mmm`, local time) count them.
pub fn local_ms_of_day(real_ns: i128) -> i64 {
    let secs = (real_ns / 1_000_000_000) as libc::time_t;
    let millis = ((real_ns / 1_000_000) % 1000) as i64;
    // Safety: localtime_r only writes the tm it is given; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return 0;
    }
    ((i64::from(tm.tm_hour) * 60 + i64::from(tm.tm_min)) * 60 + i64::from(tm.tm_sec)) * 1000
        + millis
}

/// The time of day of a node's log line (`Dec 06 21:10:03.123 …` or without the millis), ms.
pub fn line_ms_of_day(line: &str) -> Option<i64> {
    let clock = line.split_whitespace().nth(2)?;
    let (hms, millis) = match clock.split_once('.') {
        Some((hms, m)) => (hms, m.parse::<i64>().ok()?),
        None => (clock, 0),
    };
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + millis)
}

/// Runs the soak on a formed cluster whose checkers have joined: `length` of load, then a
/// check that traffic still flows everywhere (at most `flow_limit`).
pub(crate) fn run(
    cl: &mut Cluster,
    length: Duration,
    flow_limit: Duration,
    progress: &mut dyn FnMut(&str),
) -> SoakResult {
    let mut result = SoakResult {
        length,
        load_before: load_average(),
        timers: timers(cl, 1),
        ..SoakResult::default()
    };
    result.cpu_pressure.0 = cpu_pressure();
    let probe = Probe::start();
    let offset = realtime_offset_ns();
    let start_ns = record::now_ns();
    let start = Instant::now();
    let since = |t: u64| Duration::from_nanos(t.saturating_sub(start_ns));
    progress(&format!(
        "   soak of {} s, timers {}, load average {:.2}",
        length.as_secs(),
        result.timers.join(", "),
        result.load_before
    ));
    // Ring id → the change; (checker node, ring) seen.
    let mut rings: BTreeMap<String, FalseChange> = BTreeMap::new();
    let mut loads = Vec::new();
    let mut next_report = Duration::from_secs(60);
    loop {
        for c in cl.checkers.iter_mut() {
            let me = c.proc.map(|p| p.node).unwrap_or(c.host as u32);
            for l in c.tail.read_new() {
                match l {
                    Line::Ring { t, ring, nodes, .. } if t >= start_ns => {
                        let change = rings.entry(ring.clone()).or_insert_with(|| FalseChange {
                            at: since(t),
                            ring,
                            nodes,
                            seen: Vec::new(),
                            left: Vec::new(),
                            context: Vec::new(),
                            probe_late_before: Duration::ZERO,
                        });
                        change.at = change.at.min(since(t));
                        change.seen.push((me, since(t)));
                    }
                    Line::ConfChg { t, left, .. } if t >= start_ns && !left.is_empty() => {
                        // Belongs to the latest ring change seen before it.
                        if let Some(change) = rings
                            .values_mut()
                            .filter(|c| c.at <= since(t))
                            .max_by_key(|c| c.at)
                        {
                            for (p, _) in left {
                                if !change.left.contains(&p) {
                                    change.left.push(p);
                                }
                            }
                        }
                    }
                    Line::Error { t, what, .. } if t >= start_ns => {
                        result.session_errors.push(format!(
                            "node {me} at {:.3} s: {what}",
                            since(t).as_secs_f64()
                        ));
                    }
                    _ => {}
                }
            }
        }
        let elapsed = start.elapsed();
        if elapsed >= length {
            break;
        }
        if elapsed >= next_report {
            progress(&format!(
                "   {:>4} s: {} membership changes, load average {:.2}",
                elapsed.as_secs(),
                rings.len(),
                load_average()
            ));
            next_report += Duration::from_secs(60);
        }
        loads.push(load_average());
        std::thread::sleep(LOAD_SAMPLE.min(length - elapsed));
    }
    result.load_after = load_average();
    result.cpu_pressure.1 = cpu_pressure();
    let (summary, late) = probe.finish();
    result.probe = summary;
    if !loads.is_empty() {
        let min = loads.iter().cloned().fold(f64::MAX, f64::min);
        let max = loads.iter().cloned().fold(0.0, f64::max);
        let mean = loads.iter().sum::<f64>() / loads.len() as f64;
        result.load_during = (min, mean, max);
    }
    result.flowing_after = cl.wait_recovery(record::now_ns(), flow_limit);
    let nodes: Vec<usize> = (1..=cl.config.nodes).collect();
    for &i in &nodes {
        result.token_stats.push((i as u32, token_stats(cl, i)));
    }
    let logs: Vec<(usize, String)> = nodes
        .iter()
        .map(|&i| {
            let path = cl.dir.join(format!("rotord-{i}.log"));
            (i, std::fs::read_to_string(path).unwrap_or_default())
        })
        .collect();
    let mut changes: Vec<FalseChange> = rings.into_values().collect();
    changes.sort_by_key(|c| c.at);
    for change in &mut changes {
        let at_ns = start_ns + change.at.as_nanos() as u64;
        change.probe_late_before = Duration::from_nanos(
            late.iter()
                .filter(|(t, _)| *t <= at_ns && *t + PROBE_WINDOW_NS >= at_ns)
                .map(|(_, over)| *over)
                .max()
                .unwrap_or(0),
        );
        let at_real = i128::from(at_ns) + offset;
        let at = local_ms_of_day(at_real);
        for (i, text) in &logs {
            let near: Vec<&str> = text
                .lines()
                .filter(|l| {
                    line_ms_of_day(l)
                        .is_some_and(|t| t >= at - CONTEXT_BEFORE_MS && t <= at + CONTEXT_AFTER_MS)
                })
                .collect();
            let skip = near.len().saturating_sub(CONTEXT_LINES_MAX);
            for l in &near[skip..] {
                change.context.push(format!("node {i}: {l}"));
            }
        }
    }
    result.changes = changes;
    progress(&format!(
        "   wake-up probe (sleeps of 1 ms at the nodes' priority): {} wake-ups, latest {:.1} ms late, {} later than 5 ms, {} than 10 ms, {} than 20 ms; cpu pressure avg60 {:?} → {:?} %",
        result.probe.wakeups,
        result.probe.late_max.as_secs_f64() * 1e3,
        result.probe.late_over_5ms,
        result.probe.late_over_10ms,
        result.probe.late_over_20ms,
        result.cpu_pressure.0,
        result.cpu_pressure.1,
    ));
    progress(&format!(
        "   soak done: {} false membership changes, {} failed sessions, traffic after: {}, load average {:.2} (during: {:.2}..{:.2})",
        result.changes.len(),
        result.session_errors.len(),
        result
            .flowing_after
            .map(|d| format!("flowing in {} ms", d.as_millis()))
            .unwrap_or_else(|| "NOT FLOWING".into()),
        result.load_after,
        result.load_during.0,
        result.load_during.2,
    ));
    for c in &result.changes {
        progress(&format!(
            "   FALSE CHANGE at {:.3} s: ring {} of nodes {:?}, left {}, probe wake-up late by {:.1} ms in the 200 ms before",
            c.at.as_secs_f64(),
            c.ring,
            c.nodes,
            record::proc_list(&c.left),
            c.probe_late_before.as_secs_f64() * 1e3
        ));
    }
    result
}

/// Node `i`'s token counters from cmap: `srp.token_lost`, and `srp.token_rotation*` (the
/// rotation histogram), one `key = value` each.
fn token_stats(cl: &Cluster, i: usize) -> Vec<String> {
    let out = cl
        .bed
        .command(i, cl.bins.rotor())
        .args(["cmap", "-m", "stats", "stats.srp."])
        .stdin(Stdio::null())
        .output();
    let Ok(out) = out else {
        return vec!["(rotor cmap failed to run)".into()];
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("token_lost") || l.contains("token_rotation"))
        .map(|l| {
            // `stats.srp.key (u64) = value` → `key = value`
            let key = l.split_whitespace().next().unwrap_or(l);
            let value = l.rsplit('=').next().unwrap_or("").trim();
            format!("{} = {value}", key.trim_start_matches("stats.srp."))
        })
        .collect()
}

/// The timers node `i` runs with, as rotord resolved them (`runtime.config.totem.*`).
fn timers(cl: &Cluster, i: usize) -> Vec<String> {
    let out = cl
        .bed
        .command(i, cl.bins.rotor())
        .args(["cmap", "runtime.config.totem."])
        .stdin(Stdio::null())
        .output();
    let Ok(out) = out else {
        return vec!["(rotor cmap failed to run)".into()];
    };
    let text = String::from_utf8_lossy(&out.stdout);
    ["token", "token_retransmit", "consensus", "join"]
        .iter()
        .filter_map(|name| {
            let key = format!("runtime.config.totem.{name} ");
            let line = text.lines().find(|l| l.starts_with(&key))?;
            Some(format!("{name} {} ms", line.rsplit('=').next()?.trim()))
        })
        .collect()
}

/// The soak's part of the report: per configuration the count, then each change with its
/// context, then the token statistics.
pub fn markdown(name: &str, r: &SoakResult, s: &mut String) {
    let _ = writeln!(
        s,
        "### Soak: {name}, {} s\n\n- timers in effect: {}\n- false membership changes: **{}**\n- failed checker sessions: {}\n- traffic after the soak: {}\n- load average (1 min): {:.2} before, {:.2}..{:.2} (mean {:.2}) during, {:.2} after; cpu pressure (some, avg60) {} → {} %\n- wake-up probe (1 ms sleeps at the nodes' priority): {} wake-ups, latest {:.1} ms late, {} later than 5 ms, {} than 10 ms, {} than 20 ms\n",
        r.length.as_secs(),
        r.timers.join(", "),
        r.changes.len(),
        r.session_errors.len(),
        r.flowing_after
            .map(|d| format!("flowing everywhere in {} ms", d.as_millis()))
            .unwrap_or_else(|| "**not flowing**".into()),
        r.load_before,
        r.load_during.0,
        r.load_during.2,
        r.load_during.1,
        r.load_after,
        r.cpu_pressure.0.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
        r.cpu_pressure.1.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
        r.probe.wakeups,
        r.probe.late_max.as_secs_f64() * 1e3,
        r.probe.late_over_5ms,
        r.probe.late_over_10ms,
        r.probe.late_over_20ms,
    );
    for e in &r.session_errors {
        let _ = writeln!(s, "- session error: {e}");
    }
    for c in &r.changes {
        let seen: Vec<String> = c
            .seen
            .iter()
            .map(|(n, t)| format!("{n} at {:.3} s", t.as_secs_f64()))
            .collect();
        let _ = writeln!(
            s,
            "#### Change at {:.3} s: ring {} of nodes {:?}\n\nseen by {}; left: {}; the probe's latest wake-up in the 200 ms before: {:.1} ms late\n\n```",
            c.at.as_secs_f64(),
            c.ring,
            c.nodes,
            seen.join(", "),
            record::proc_list(&c.left),
            c.probe_late_before.as_secs_f64() * 1e3
        );
        for l in &c.context {
            let _ = writeln!(s, "{l}");
        }
        let _ = writeln!(s, "```\n");
    }
    for (node, stats) in &r.token_stats {
        let _ = writeln!(s, "- node {node}: {}", stats.join(", "));
    }
    let _ = writeln!(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_times_are_read_with_and_without_millis() {
        assert_eq!(
            line_ms_of_day("Dec 06 21:10:03.123 notice  [TOTEM ] x"),
            Some(((21 * 60 + 10) * 60 + 3) * 1000 + 123)
        );
        assert_eq!(
            line_ms_of_day("Dec 06 01:00:00 notice  [TOTEM ] x"),
            Some(3_600_000)
        );
        assert_eq!(line_ms_of_day("garbage"), None);
    }
}
