//! Where the CPU goes in a bench phase, from /proc: the machine's busy time (`/proc/stat`, all
//! CPUs) and the user and system time of given processes (`/proc/PID/stat`), sampled twice
//! inside the phase's steady state by a thread ([`Window::during`]), so the clients' start-up
//! and drain are outside it. Unlike `perf stat` it costs the measured processes nothing, so
//! its figures can stand beside the throughput of the same phase. What one delivered message
//! costs is the caller's division ([`Usage::per_message_us`]).

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc` times (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The aggregate `cpu` line of `/proc/stat`: (busy, all) ticks, busy being everything but
/// idle and iowait; the number of `cpuN` lines.
fn machine_ticks(stat: &str) -> Option<(u64, u64, usize)> {
    let mut fields = stat.lines().next()?.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields.filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest times are inside user already).
    let all: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    let cpus = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some((all - idle, all, cpus))
}

/// A `/proc/PID/stat` line as its command name and the fields after it (state, ppid, …).
/// `pid (comm) state …`: comm may hold spaces and parentheses, so the split is at the last
/// ") ".
pub fn proc_stat(stat: &str) -> Option<(&str, Vec<&str>)> {
    let (head, rest) = stat.rsplit_once(") ")?;
    let (_, comm) = head.split_once(" (")?;
    Some((comm, rest.split(' ').collect()))
}

/// (utime, stime) ticks of one `/proc/PID/stat` line, all its threads together.
fn process_ticks(stat: &str) -> Option<(u64, u64)> {
    let (_, f) = proc_stat(stat)?;
    // After comm: state(0) ppid(1) … utime is field 14 of the line, index 11 here.
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

/// One reading of the machine and of the processes.
#[derive(Clone, Debug)]
struct Snapshot {
    at: Instant,
    machine_busy: u64,
    cpus: usize,
    /// (user, system) ticks summed over the processes still alive.
    procs: (u64, u64),
}

impl Snapshot {
    fn now(pids: &[u32]) -> Option<Snapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let (busy, _, cpus) = machine_ticks(&stat)?;
        let mut procs = (0, 0);
        for pid in pids {
            let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some((u, s)) = process_ticks(&s) {
                procs.0 += u;
                procs.1 += s;
            }
        }
        Some(Snapshot {
            at: Instant::now(),
            machine_busy: busy,
            cpus,
            procs,
        })
    }
}

/// CPU used between two readings, in cores (CPU-seconds per second).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub seconds: f64,
    pub cpus: usize,
    /// The whole machine, every process and the kernel's interrupt work.
    pub machine: f64,
    /// The given processes (the daemons), in user mode and in the kernel on their behalf.
    pub procs_user: f64,
    pub procs_system: f64,
}

impl Usage {
    fn between(a: &Snapshot, b: &Snapshot) -> Usage {
        let seconds = b.at.duration_since(a.at).as_secs_f64();
        let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / ticks_per_second() / seconds;
        Usage {
            seconds,
            cpus: b.cpus,
            machine: per(a.machine_busy, b.machine_busy),
            procs_user: per(a.procs.0, b.procs.0),
            procs_system: per(a.procs.1, b.procs.1),
        }
    }

    /// Microseconds of CPU per message, at `msgs_per_s` messages a second: (machine, daemons).
    pub fn per_message_us(&self, msgs_per_s: f64) -> (f64, f64) {
        if msgs_per_s <= 0.0 {
            return (f64::NAN, f64::NAN);
        }
        (
            self.machine / msgs_per_s * 1e6,
            (self.procs_user + self.procs_system) / msgs_per_s * 1e6,
        )
    }
}

/// A reading of a phase's steady state, taken by a thread while the phase runs.
pub struct Window {
    thread: std::thread::JoinHandle<Option<Usage>>,
}

impl Window {
    /// Starts reading `pids` and the machine `skip` from now, for `length`.
    pub fn during(pids: Vec<u32>, skip: Duration, length: Duration) -> Window {
        Window {
            thread: std::thread::spawn(move || {
                std::thread::sleep(skip);
                let a = Snapshot::now(&pids)?;
                std::thread::sleep(length);
                let b = Snapshot::now(&pids)?;
                Some(Usage::between(&a, &b))
            }),
        }
    }

    /// The reading, once the window has passed (`None`: /proc could not be read).
    pub fn finish(self) -> Option<Usage> {
        self.thread.join().ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_line_counts_busy_and_all_ticks_and_the_cpus() {
        let stat = "cpu  100 5 50 1000 20 3 7 0 0 0\ncpu0 50 0 25 500 10 1 3 0 0 0\n\
                    cpu1 50 5 25 500 10 2 4 0 0 0\nintr 1 2 3\n";
        assert_eq!(machine_ticks(stat), Some((165, 1185, 2)));
        assert_eq!(machine_ticks("intr 1\n"), None);
    }

    #[test]
    fn a_process_line_gives_user_and_system_ticks_whatever_its_name() {
        let line = "4242 (rotor (data) plane) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    731 245 0 0 -2 0 3 0 12345 0 0";
        assert_eq!(process_ticks(line), Some((731, 245)));
        assert_eq!(process_ticks("4242 (x) S 1"), None);
        let (comm, fields) = proc_stat(line).expect("a stat line");
        assert_eq!((comm, fields[1]), ("rotor (data) plane", "1"));
    }

    #[test]
    fn usage_is_in_cores_and_per_message_in_microseconds() {
        let t = ticks_per_second() as u64;
        let at = Instant::now();
        let a = Snapshot {
            at,
            machine_busy: 0,
            cpus: 2,
            procs: (0, 0),
        };
        let b = Snapshot {
            at: at + Duration::from_secs(2),
            machine_busy: 4 * t,
            cpus: 2,
            procs: (t, 2 * t),
        };
        let u = Usage::between(&a, &b);
        assert_eq!((u.machine, u.procs_user, u.procs_system), (2.0, 0.5, 1.0));
        assert_eq!(u.per_message_us(1_000_000.0), (2.0, 1.5));
        assert!(u.per_message_us(0.0).0.is_nan());
    }
}
