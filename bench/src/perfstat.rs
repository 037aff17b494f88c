//! `perf stat` counts of a bench phase: system calls (the `raw_syscalls:sys_enter`
//! tracepoint), context switches and CPU time, of a client (its command wrapped in `perf
//! stat`) or of running daemons (`perf stat -p` for a set time), read back from perf's CSV
//! output (`-x,`). What a phase costs per delivered message is these counts divided by the
//! messages the bench counted; the division is the caller's.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The events counted, as `perf stat -e` takes them; [`Counts::parse`] reads them back.
pub const EVENTS: [&str; 3] = ["raw_syscalls:sys_enter", "context-switches", "task-clock"];

/// `perf stat`'s arguments up to the command it runs: the events, CSV to `out`.
fn stat_args(out: &Path) -> Vec<String> {
    vec![
        "stat".into(),
        "-x,".into(),
        "-e".into(),
        EVENTS.join(","),
        "-o".into(),
        out.display().to_string(),
    ]
}

/// Appends to `cmd` (whose program is, or runs, `perf`) the arguments that count `program`
/// into `out`; the caller appends `program`'s own arguments.
pub fn wrap(cmd: &mut Command, out: &Path, program: &Path) {
    cmd.args(stat_args(out)).arg("--").arg(program);
}

/// Starts counting the running processes `pids` into `out` for `seconds`.
pub fn attach(pids: &[u32], seconds: f64, out: &Path) -> Result<Child, String> {
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    Command::new("perf")
        .args(stat_args(out))
        .args(["-p", &list.join(","), "--", "sleep", &format!("{seconds}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("perf stat -p {}: {e}", list.join(",")))
}

/// What one `perf stat` counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub syscalls: f64,
    pub context_switches: f64,
    pub cpu_ms: f64,
}

impl Counts {
    /// Reads perf's CSV (`value,unit,event,…` per line; comments and `<not counted>` skipped).
    pub fn parse(text: &str) -> Counts {
        let mut c = Counts::default();
        for line in text.lines() {
            let mut f = line.split(',');
            let (Some(value), Some(_unit), Some(event)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            match event {
                e if e == EVENTS[0] => c.syscalls += v,
                e if e == EVENTS[1] => c.context_switches += v,
                e if e == EVENTS[2] => c.cpu_ms += v,
                _ => {}
            }
        }
        c
    }

    /// Reads the file perf wrote (missing or unreadable: an error naming it).
    pub fn read(path: &Path) -> Result<Counts, String> {
        std::fs::read_to_string(path)
            .map(|t| Counts::parse(&t))
            .map_err(|e| format!("perf stat output {}: {e}", path.display()))
    }

    /// The sum of two counts.
    pub fn plus(self, o: Counts) -> Counts {
        Counts {
            syscalls: self.syscalls + o.syscalls,
            context_switches: self.context_switches + o.context_switches,
            cpu_ms: self.cpu_ms + o.cpu_ms,
        }
    }

    /// `syscalls=… cs=… cpu_us=…` per message, for `messages` messages.
    pub fn per_message(&self, messages: f64) -> String {
        let m = messages.max(1.0);
        format!(
            "syscalls={:.3} cs={:.3} cpu_us={:.2}",
            self.syscalls / m,
            self.context_switches / m,
            self.cpu_ms * 1000.0 / m
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perf_csv_and_divides_per_message() {
        let text = "# started on Mon\n\n1200,,raw_syscalls:sys_enter,5000,100.00,,\n\
                    30,,context-switches,5000,100.00,6.0,K/sec\n\
                    5.00,msec,task-clock,5000,100.00,1.0,CPUs utilized\n\
                    <not counted>,,cycles,0,0.00,,\n";
        let c = Counts::parse(text);
        assert_eq!(
            c,
            Counts {
                syscalls: 1200.0,
                context_switches: 30.0,
                cpu_ms: 5.0
            }
        );
        assert_eq!(
            c.plus(c).per_message(100.0),
            "syscalls=24.000 cs=0.600 cpu_us=100.00"
        );
    }
}
