//! `poll_mode: auto`: the poll loop chosen from what the machine has — online CPUs, the CPUs
//! this dataplane may run on, whether it is pinned, and how many dataplanes share those CPUs —
//! and chosen again while it runs, because the other dataplanes of a host (or of the netns
//! hosts of a test bed) start and stop after this one.
//!
//! The rule, from the poll-spin and rings measurements in docs/BENCHMARKS.md: a spinning
//! dataplane helps only while the CPU it spins on is its own. Where dataplanes, rotord, the
//! applications and the kernel's network processing outnumber the CPUs, every spin takes the
//! CPU from the process that must run next for the token to move, and sleeping until woken
//! (blocking) is fastest — three nodes on two cores rotate in ≈ 84 µs blocking against ≈ 134 µs
//! adaptive and ≈ 8 ms busy. So: busy on a pinned core that leaves `CORES_KEPT` for the rest
//! and that no other dataplane may use; adaptive where the dataplanes sharing our CPUs plus
//! `CORES_KEPT` fit in them; blocking otherwise.

use std::fs;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::PollLoop;

/// Pollers one dataplane runs (its one poll loop).
const POLLERS: usize = 1;
/// CPUs a machine keeps for everything but the pollers: rotord and applications, and the
/// kernel's network processing (softirqs: the copy-mode AF_XDP and UDP paths run there).
const CORES_KEPT: usize = 2;
/// How often the choice is made again (a /proc scan, off the poll loop's thread).
pub const AUTO_RECHECK_INTERVAL: Duration = Duration::from_secs(5);
/// The dataplane binary's name as the kernel keeps it (`comm`, at most 15 bytes).
const DATAPLANE_COMM: &str = "rotor-dataplane";

/// What the choice is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// CPUs online.
    pub cpus_online: usize,
    /// CPUs this dataplane may run on (its affinity; one when pinned).
    pub cpus_allowed: Vec<usize>,
    /// Pinned to a core by rotor.dataplane_cores.
    pub pinned: bool,
    /// Other dataplanes that may run on at least one of `cpus_allowed`.
    pub others_sharing: usize,
}

impl Machine {
    /// This process's view of the machine now.
    pub fn look(pinned: bool) -> Machine {
        // SAFETY: sysconf has no preconditions.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let cpus_online = usize::try_from(online).unwrap_or(1).max(1);
        let cpus_allowed = own_cpus().unwrap_or_else(|| (0..cpus_online).collect());
        let others_sharing = other_dataplanes(&cpus_allowed);
        Machine {
            cpus_online,
            cpus_allowed,
            pinned,
            others_sharing,
        }
    }

    /// The loop to run, and why (for the log).
    pub fn choose(&self, spin: Duration) -> (PollLoop, String) {
        let allowed = self.cpus_allowed.len().max(1);
        let sharing = self.others_sharing + POLLERS;
        let others = match self.others_sharing {
            0 => "no other dataplane".to_owned(),
            1 => "1 other dataplane".to_owned(),
            n => format!("{n} other dataplanes"),
        };
        if self.pinned && self.cpus_online >= CORES_KEPT + POLLERS && self.others_sharing == 0 {
            let why = format!(
                "pinned, {others} on its CPU, {} CPUs online leave {CORES_KEPT} for rotord, \
                 applications and the kernel",
                self.cpus_online
            );
            return (PollLoop::Busy, why);
        }
        let why = format!(
            "{} on {allowed} CPU{} it may use with {CORES_KEPT} kept for rotord, applications \
             and the kernel",
            if self.others_sharing == 0 {
                "alone".to_owned()
            } else {
                format!("{sharing} dataplanes ({others} besides this one)")
            },
            if allowed == 1 { "" } else { "s" },
        );
        if sharing + CORES_KEPT <= allowed {
            (
                PollLoop::Adaptive { spin },
                format!("{why}: a spin costs no one"),
            )
        } else {
            (
                PollLoop::Blocking,
                format!("{why}: a spin would take the CPU the next hop needs"),
            )
        }
    }
}

/// The cpuidle driver's name and the guest halt-poll window's parameter (KVM guests).
const CPUIDLE_DRIVER: &str = "/sys/devices/system/cpu/cpuidle/current_driver";
const GUEST_HALT_POLL_NS: &str = "/sys/module/haltpoll/parameters/guest_halt_poll_ns";

/// What an idle CPU of this machine does that a sleeping poll loop pays for on every wake-up,
/// when it is worth an operator's attention: a KVM guest whose `haltpoll` cpuidle driver has a
/// poll window of 0 halts an idle vCPU into the hypervisor at once, and a wake-up aimed at it
/// then goes through the host (≈ 15 µs a hop on the test VM). `None` on anything else, or when
/// the files cannot be read.
pub fn idle_cost() -> Option<String> {
    let driver = fs::read_to_string(CPUIDLE_DRIVER).ok()?;
    let window = fs::read_to_string(GUEST_HALT_POLL_NS).ok()?;
    idle_cost_of(&driver, &window)
}

/// [`idle_cost`] from the two files' contents.
fn idle_cost_of(driver: &str, window_ns: &str) -> Option<String> {
    (driver.trim() == "haltpoll" && window_ns.trim().parse::<u64>().ok()? == 0).then(|| {
        "idle CPUs halt into the hypervisor at once (cpuidle haltpoll, guest_halt_poll_ns 0): \
         every wake-up of a sleeping hop goes through the host; a poll window can shorten \
         it while the host is quiet (OPERATIONS, \"Idle CPUs in a virtual machine\")"
            .to_owned()
    })
}

/// The mode the loop reads on every turn (one relaxed load) and the re-checking thread writes.
#[derive(Clone)]
pub struct AutoMode {
    code: Arc<AtomicU8>,
    spin: Duration,
}

impl AutoMode {
    /// The loop now.
    pub fn get(&self) -> PollLoop {
        decode(self.code.load(Ordering::Relaxed), self.spin)
    }
}

fn encode(mode: PollLoop) -> u8 {
    match mode {
        PollLoop::Busy => 0,
        PollLoop::Adaptive { .. } => 1,
        PollLoop::Blocking => 2,
    }
}

fn decode(code: u8, spin: Duration) -> PollLoop {
    match code {
        0 => PollLoop::Busy,
        1 => PollLoop::Adaptive { spin },
        _ => PollLoop::Blocking,
    }
}

/// Chooses now, logs the choice, and starts a thread that looks again every
/// `AUTO_RECHECK_INTERVAL` and logs each change; the thread ends with the process.
pub fn start(pinned: bool, spin: Duration) -> AutoMode {
    let (mode, why) = Machine::look(pinned).choose(spin);
    tracing::info!(target: "MAIN", "poll mode {}, chosen by auto: {why}", mode.describe());
    let auto = AutoMode {
        code: Arc::new(AtomicU8::new(encode(mode))),
        spin,
    };
    let shared = auto.clone();
    let spawned = std::thread::Builder::new()
        .name("poll-auto".into())
        .spawn(move || {
            // Its look at /proc takes about a millisecond: at the realtime priority the thread
            // inherits, that would hold a token hop as long. Nothing here is urgent.
            if let Err(e) = crate::sched::to_normal_class() {
                tracing::debug!(target: "MAIN", "poll-auto stays realtime: {e}");
            }
            loop {
                std::thread::sleep(AUTO_RECHECK_INTERVAL);
                let (mode, why) = Machine::look(pinned).choose(spin);
                let code = encode(mode);
                if shared.code.swap(code, Ordering::Relaxed) != code {
                    tracing::info!(
                        target: "MAIN",
                        "poll mode {}, chosen again by auto: {why}",
                        mode.describe()
                    );
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(
            target: "MAIN",
            "poll mode auto cannot look again while running ({e}); it keeps {}",
            mode.describe()
        );
    }
    auto
}

/// The CPUs this thread may run on.
fn own_cpus() -> Option<Vec<usize>> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the set is valid for its size.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return None;
    }
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: index below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect();
    (!cpus.is_empty()).then_some(cpus)
}

/// Other dataplanes (by their `comm`) that may run on any of `cpus`. Processes that vanish
/// or cannot be read while we look are skipped: this is a hint for a poll mode, not a count
/// anything else depends on.
fn other_dataplanes(cpus: &[usize]) -> usize {
    dataplanes_on(cpus, std::process::id()).len()
}

/// The pids of the dataplanes but `me` that may run on any of `cpus`.
fn dataplanes_on(cpus: &[usize], me: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == DATAPLANE_COMM)
        })
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| allowed_list(&s))
                .is_none_or(|theirs| theirs.iter().any(|c| cpus.contains(c)))
        })
        .collect()
}

/// `Cpus_allowed_list:` of a /proc status text ("0-3,6"), as CPU numbers.
fn allowed_list(status: &str) -> Option<Vec<usize>> {
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?
        .trim();
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPIN: Duration = Duration::from_micros(10);

    #[test]
    fn a_guest_whose_idle_vcpus_halt_at_once_is_named_and_nothing_else() {
        let said = idle_cost_of("haltpoll\n", "0\n").expect("haltpoll with no window");
        assert!(said.contains("guest_halt_poll_ns 0"), "{said}");
        assert_eq!(idle_cost_of("haltpoll\n", "200000\n"), None, "a window");
        assert_eq!(
            idle_cost_of("acpi_idle\n", "0\n"),
            None,
            "not the guest driver"
        );
        assert_eq!(idle_cost_of("haltpoll\n", "garbage"), None, "unreadable");
    }

    fn machine(online: usize, allowed: usize, pinned: bool, others: usize) -> Machine {
        Machine {
            cpus_online: online,
            cpus_allowed: (0..allowed).collect(),
            pinned,
            others_sharing: others,
        }
    }

    #[test]
    fn busy_only_on_a_pinned_core_of_its_own_with_cores_to_spare() {
        assert_eq!(machine(4, 1, true, 0).choose(SPIN).0, PollLoop::Busy);
        assert_eq!(machine(3, 1, true, 0).choose(SPIN).0, PollLoop::Busy);
        // Another dataplane on the same core: spinning would starve it.
        assert_eq!(machine(4, 1, true, 1).choose(SPIN).0, PollLoop::Blocking);
        // Pinned on a 2-CPU machine: no core to spare for the rest.
        assert_eq!(machine(2, 1, true, 0).choose(SPIN).0, PollLoop::Blocking);
    }

    #[test]
    fn spinning_only_where_the_sharing_dataplanes_and_the_rest_fit() {
        // This test bed: three netns hosts' dataplanes on two CPUs.
        let (mode, why) = machine(2, 2, false, 2).choose(SPIN);
        assert_eq!(mode, PollLoop::Blocking);
        assert!(
            why.contains("3 dataplanes (2 other dataplanes besides this one)"),
            "{why}"
        );
        assert_eq!(machine(2, 2, false, 0).choose(SPIN).0, PollLoop::Blocking);
        assert_eq!(
            machine(4, 4, false, 0).choose(SPIN).0,
            PollLoop::Adaptive { spin: SPIN }
        );
        assert_eq!(machine(4, 4, false, 2).choose(SPIN).0, PollLoop::Blocking);
        assert_eq!(
            machine(64, 64, false, 3).choose(SPIN).0,
            PollLoop::Adaptive { spin: SPIN }
        );
    }

    #[test]
    fn the_allowed_list_of_a_status_text() {
        let status = "Name:\trotor-dataplane\nCpus_allowed:\t3\nCpus_allowed_list:\t0-2,5\n";
        assert_eq!(allowed_list(status), Some(vec![0, 1, 2, 5]));
        assert_eq!(allowed_list("Cpus_allowed_list:\t7\n"), Some(vec![7]));
        assert_eq!(allowed_list("Name:\tx\n"), None);
        assert_eq!(allowed_list("Cpus_allowed_list:\tx-1\n"), None);
    }

    #[test]
    fn the_mode_survives_its_encoding() {
        for mode in [
            PollLoop::Busy,
            PollLoop::Adaptive { spin: SPIN },
            PollLoop::Blocking,
        ] {
            assert_eq!(decode(encode(mode), SPIN), mode);
        }
    }

    #[test]
    fn this_process_sees_its_own_cpus() {
        let m = Machine::look(false);
        let status = fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(Some(m.cpus_allowed), allowed_list(&status));
    }

    /// A process whose binary is called `rotor-dataplane` is seen as one.
    #[test]
    fn another_dataplane_is_seen() {
        let dir = std::env::temp_dir().join(format!("rotor-auto-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let bin = dir.join(DATAPLANE_COMM);
        fs::copy("/bin/sleep", &bin).unwrap();
        let mut child = std::process::Command::new(&bin).arg("30").spawn().unwrap();
        let cpus = own_cpus().unwrap();
        // The child's comm is its binary's name once it has exec'd.
        let mut seen = false;
        for _ in 0..200 {
            if dataplanes_on(&cpus, std::process::id()).contains(&child.id()) {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = fs::remove_dir_all(&dir);
        assert!(seen, "pid {} not counted as a dataplane", child.id());
        assert!(!dataplanes_on(&cpus, std::process::id()).contains(&child.id()));
    }
}
