//! How a node's processes are scheduled, as corosync's system{} says (corosync.conf(5)):
//! `sched_rr: yes`, the default, asks for round-robin realtime scheduling at the highest
//! priority and, when that is refused, the highest nice priority; `sched_rr: no` with
//! `priority` (`max`, `min` or a nice value) sets that nice value. rotord applies it to itself
//! before it starts the dataplane, which inherits it: a token that arrives while other
//! processes keep every core busy is then handled at once instead of after their time slices
//! (with `token: 10` on a loaded machine, without it the token waits for a core past the token
//! timeout and the ring re-forms though no node failed; docs/BENCHMARKS.md, "soak").
//!
//! Unlike corosync, whose one process carries the token, rotor splits the node: rotord takes
//! the priority one below the highest ([`ROTORD_BELOW_DATAPLANE`]) and the dataplane, which
//! carries the token, raises itself to the highest at start (`dataplane`'s `realtime_top`).
//! rotord's own work — the statistics it stores every 200 ms, a client attaching — then never
//! holds a token hop, as it did at the same priority: a realtime task does not preempt another
//! of its own priority. A dataplane that busy-polls gives the realtime class up again (its `serve`).

use rotor_proto::cmap::Value;
use std::collections::BTreeMap;

/// How far below the highest realtime priority rotord runs; its dataplane runs at the highest.
pub const ROTORD_BELOW_DATAPLANE: i32 = 1;

/// What system{} asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// SCHED_RR: rotord one below the highest priority, its dataplane at the highest; the
    /// highest nice priority if refused.
    RoundRobin,
    /// A nice value (the kernel clamps it to -20..19).
    Nice(i32),
    /// Leave the scheduling as it is.
    Unchanged,
}

/// Reads `system.sched_rr` and `system.priority` (already validated by the config parser).
pub fn wanted(entries: &BTreeMap<String, Value>) -> Wanted {
    let text = |key: &str| match entries.get(key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    if text("system.sched_rr").unwrap_or("yes") == "yes" {
        return Wanted::RoundRobin;
    }
    match text("system.priority") {
        Some("max") => Wanted::Nice(-20),
        Some("min") => Wanted::Nice(19),
        Some(n) => n.parse().map(Wanted::Nice).unwrap_or(Wanted::Unchanged),
        None => Wanted::Unchanged,
    }
}

/// Applies `wanted` to the calling thread (the one that starts the dataplane, which inherits
/// it); returns a line for the log saying what took effect, and whether all of it did.
pub fn apply(wanted: Wanted) -> (bool, String) {
    match wanted {
        Wanted::Unchanged => (true, "scheduling unchanged (system.sched_rr: no)".into()),
        Wanted::Nice(n) => match set_nice(n) {
            Ok(()) => (
                true,
                format!("nice priority {n} (system.sched_rr: no, system.priority)"),
            ),
            Err(e) => (
                false,
                format!("could not set nice priority {n} (system.priority): {e}"),
            ),
        },
        Wanted::RoundRobin => {
            // SAFETY: sched_get_priority_max has no preconditions.
            let top = unsafe { libc::sched_get_priority_max(libc::SCHED_RR) };
            let ours = top - ROTORD_BELOW_DATAPLANE;
            let param = libc::sched_param {
                sched_priority: ours,
            };
            // SAFETY: sched_setscheduler reads the sched_param we own; pid 0 is this thread.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) } == 0 {
                return (
                    true,
                    format!(
                        "round-robin realtime scheduling (system.sched_rr): rotord at priority \
                         {ours}, the dataplane it starts at {top}"
                    ),
                );
            }
            let e = std::io::Error::last_os_error();
            let fallback = match set_nice(-20) {
                Ok(()) => "nice priority -20 instead".to_string(),
                Err(e2) => format!("nor nice priority -20 ({e2})"),
            };
            (
                false,
                format!(
                    "could not set SCHED_RR at priority {ours} (system.sched_rr): {e}; {fallback}; \
                     on a loaded machine a short token may then time out while the node waits \
                     for a core (run rotord as root or with CAP_SYS_NICE, or set a longer token)"
                ),
            )
        }
    }
}

fn set_nice(n: i32) -> std::io::Result<()> {
    // SAFETY: setpriority has no memory preconditions; who 0 is this thread (Linux).
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, &str)]) -> BTreeMap<String, Value> {
        list.iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn corosync_defaults_to_round_robin() {
        assert_eq!(wanted(&entries(&[])), Wanted::RoundRobin);
        assert_eq!(
            wanted(&entries(&[
                ("system.sched_rr", "yes"),
                ("system.priority", "5")
            ])),
            Wanted::RoundRobin
        );
    }

    #[test]
    fn priority_counts_only_without_sched_rr() {
        let no = ("system.sched_rr", "no");
        assert_eq!(wanted(&entries(&[no])), Wanted::Unchanged);
        assert_eq!(
            wanted(&entries(&[no, ("system.priority", "max")])),
            Wanted::Nice(-20)
        );
        assert_eq!(
            wanted(&entries(&[no, ("system.priority", "min")])),
            Wanted::Nice(19)
        );
        assert_eq!(
            wanted(&entries(&[no, ("system.priority", "-5")])),
            Wanted::Nice(-5)
        );
    }
}
