//! Wake-up delays from `perf sched`: how long each wake-up of a daemon's threads waited before
//! it ran, and, for the late ones, what the CPU it ran on was doing meanwhile. A latency tail is
//! made of such waits; this tells a wait for the daemon's own work (another of its threads on
//! that CPU) from a wait the guest cannot explain (a CPU that stayed idle, or ran a normal-class
//! task a realtime wake-up preempts at once: on a VM, a virtual CPU its host was not running).
//!
//! The recording is `perf sched record -a` (every CPU, scheduler tracepoints, no build-id pass);
//! the reading is `perf sched timehist`, one line per time a task left a CPU:
//! `time [cpu] comm[tid/pid] wait sch-delay run` (milliseconds; `comm[pid]` for a main thread).
//! The sch-delay is the time from the task's wake-up to its switch-in. Not a test: it measures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::cluster::Daemons;
use crate::dist::Dist;

/// A recording in progress; [`Recording::finish`] stops it and reads it.
pub struct Recording {
    perf: Daemons,
    data: PathBuf,
}

impl Recording {
    /// Starts `perf sched record` of every CPU into `work/sched-<tag>.data`.
    pub fn start(work: &Path, tag: &str) -> Result<Recording, String> {
        let data = work.join(format!("sched-{tag}.data"));
        let mut perf = Daemons::default();
        let mut cmd = Command::new("perf");
        cmd.args(["sched", "record", "-a", "--no-buildid", "-o"])
            .arg(&data);
        let log = work.join(format!("sched-{tag}.log"));
        perf.start("perf sched record", cmd, &log)
            .map_err(|e| format!("{e} (--sched needs perf: Debian's package linux-perf)"))?;
        // perf opens its events before it records; a workload started sooner is partly missed.
        std::thread::sleep(Duration::from_millis(500));
        if !perf.exited().is_empty() {
            return Err(format!(
                "perf sched record exited at once: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(Recording { perf, data })
    }

    /// Stops the recording (SIGTERM: perf writes its file out) and returns its timehist.
    pub fn finish(mut self) -> Result<String, String> {
        self.perf.stop(Duration::from_secs(30));
        let out = Command::new("perf")
            .args(["sched", "timehist", "-i"])
            .arg(&self.data)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("perf sched timehist: {e}"))?;
        let _ = std::fs::remove_file(&self.data);
        if !out.status.success() {
            return Err(format!(
                "perf sched timehist: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// How timehist names the idle task (with no `[pid]`).
const IDLE: &str = "<idle>";

/// One timehist line: a task's time on a CPU, ended at `time_s`.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub time_s: f64,
    pub cpu: u32,
    /// The command name ([`IDLE`] for the idle task, whose pid is 0).
    pub comm: String,
    pub pid: u32,
    /// From its wake-up to this switch-in, µs (0 for a task that was preempted, not woken).
    pub delay_us: f64,
    /// Its time on the CPU, µs.
    pub run_us: f64,
}

impl Slice {
    /// Parses `time [cpu] comm[tid/pid] wait delay run`; `None` for headers and other lines.
    /// The comm may hold spaces, so the fields are taken from both ends.
    pub fn parse(line: &str) -> Option<Slice> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 {
            return None;
        }
        let time_s: f64 = fields[0].parse().ok()?;
        let cpu: u32 = fields[1]
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse()
            .ok()?;
        let n = fields.len();
        let ms = |s: &str| s.parse::<f64>().ok().map(|v| v * 1000.0);
        let (delay_us, run_us) = (ms(fields[n - 2])?, ms(fields[n - 1])?);
        ms(fields[n - 3])?;
        let task = fields[2..n - 3].join(" ");
        if task == IDLE {
            return Some(Slice {
                time_s,
                cpu,
                comm: task,
                pid: 0,
                delay_us,
                run_us,
            });
        }
        let open = task.rfind('[')?;
        let ids = task[open + 1..].strip_suffix(']')?;
        let pid = match ids.split_once('/') {
            Some((_, pid)) => pid,
            None => ids,
        };
        Some(Slice {
            time_s,
            cpu,
            comm: task[..open].to_owned(),
            pid: pid.parse().ok()?,
            delay_us,
            run_us,
        })
    }

    fn idle(&self) -> bool {
        self.comm == IDLE
    }
}

/// What a CPU ran just before a late wake-up ran on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Before {
    /// Nothing: the CPU stayed idle through the wait.
    Idle,
    /// Another thread of the watched processes.
    Watched,
    /// Any other task, by command name.
    Other(String),
}

/// The wake-ups of the watched processes' threads over one recording.
#[derive(Debug, Clone)]
pub struct WakeDelays {
    /// Wake-ups (switch-ins after a wake-up).
    pub wakes: u64,
    /// Their delays, µs.
    pub dist: Option<Dist>,
    /// The threshold of a late wake-up, µs.
    pub late_us: f64,
    /// Late wake-ups by what their CPU ran before them.
    pub late: BTreeMap<Before, u64>,
}

impl WakeDelays {
    /// The wake-ups of threads of `pids` in `timehist`, late above `late_us`.
    pub fn analyse(timehist: &str, pids: &[u32], late_us: f64) -> WakeDelays {
        // Bounded (1 ns to 100 s), so a saturating record clamps rather than resizes.
        let mut hist = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3)
            .expect("valid bounds and significant figures");
        let mut late = BTreeMap::new();
        let mut last_on_cpu: BTreeMap<u32, Slice> = BTreeMap::new();
        let mut wakes = 0;
        for s in timehist.lines().filter_map(Slice::parse) {
            let watched = pids.contains(&s.pid);
            if watched && s.delay_us > 0.0 {
                wakes += 1;
                hist.saturating_record((s.delay_us * 1000.0) as u64);
                if s.delay_us > late_us {
                    let before = match last_on_cpu.get(&s.cpu) {
                        Some(b) if b.idle() => Before::Idle,
                        Some(b) if pids.contains(&b.pid) => Before::Watched,
                        Some(b) => Before::Other(b.comm.clone()),
                        None => Before::Other("(not recorded)".into()),
                    };
                    *late.entry(before).or_insert(0) += 1;
                }
            }
            last_on_cpu.insert(s.cpu, s);
        }
        WakeDelays {
            wakes,
            dist: (wakes > 0).then(|| Dist::from_histogram(&hist, 1000.0)),
            late_us,
            late,
        }
    }

    /// Late wake-ups in all.
    pub fn late_total(&self) -> u64 {
        self.late.values().sum()
    }

    /// "N after an idle CPU, N after another thread of theirs, N after rotor, …".
    pub fn late_text(&self, watched: &str) -> String {
        if self.late.is_empty() {
            return "none".into();
        }
        self.late
            .iter()
            .map(|(b, n)| match b {
                Before::Idle => format!("{n} on a CPU that stayed idle"),
                Before::Watched => format!("{n} behind another {watched} thread"),
                Before::Other(c) => format!("{n} behind {c}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
   17283.500014 [0001]  rotor[26359]                        0.077      0.000      0.054
   17283.500037 [0000]  rotor[26359]                        0.077      0.000      0.054
   17283.500059 [0000]  rotor-dataplane[26338]              0.085      0.022      0.022
   17283.500600 [0001]  <idle>                              0.282      0.000      0.500
   17283.500660 [0001]  rotor-dataplane[26343]              0.135      0.480      0.060
   17283.500700 [0001]  poll-auto[26347/26338]              5.000      0.300      0.040
   17283.501500 [0000]  kdamond.0[107]                      1.000      0.000      0.700
   17283.501560 [0000]  rotor-dataplane[26345]              0.100      0.650      0.060
   17283.501570 [0000]  a task with spaces[99]              0.100      0.250      0.010
";

    #[test]
    fn parses_main_threads_threads_and_spaces() {
        let s: Vec<Slice> = SAMPLE.lines().filter_map(Slice::parse).collect();
        assert_eq!(s.len(), 9, "the three header lines are not slices");
        assert_eq!(s[2].comm, "rotor-dataplane");
        assert_eq!((s[2].pid, s[2].cpu), (26338, 0));
        assert!((s[2].delay_us - 22.0).abs() < 1e-9);
        assert_eq!((s[5].comm.as_str(), s[5].pid), ("poll-auto", 26338));
        assert_eq!(s[8].comm, "a task with spaces");
        assert_eq!(s[8].pid, 99);
    }

    #[test]
    fn sorts_late_wakeups_by_what_ran_before() {
        let w = WakeDelays::analyse(SAMPLE, &[26338, 26343, 26345], 200.0);
        // 26338 at 22 µs, 26343 at 480, poll-auto (a thread of 26338) at 300, 26345 at 650.
        assert_eq!(w.wakes, 4);
        assert_eq!(w.late_total(), 3);
        assert_eq!(w.late.get(&Before::Idle), Some(&1));
        assert_eq!(w.late.get(&Before::Watched), Some(&1));
        assert_eq!(w.late.get(&Before::Other("kdamond.0".into())), Some(&1));
        let max = w.dist.as_ref().and_then(Dist::max).unwrap();
        assert!((max - 650.0).abs() < 1.0, "{max}");
        assert_eq!(
            w.late_text("rotor-dataplane"),
            "1 on a CPU that stayed idle, 1 behind another rotor-dataplane thread, \
             1 behind kdamond.0"
        );
    }

    #[test]
    fn no_watched_wakeups_is_no_distribution() {
        let w = WakeDelays::analyse(SAMPLE, &[1], 200.0);
        assert_eq!((w.wakes, w.late_total()), (0, 0));
        assert!(w.dist.is_none());
        assert_eq!(w.late_text("x"), "none");
    }
}
