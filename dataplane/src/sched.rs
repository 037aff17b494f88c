//! The dataplane's scheduling class. rotord passes on round-robin realtime scheduling one
//! priority below the highest (`system.sched_rr`, rotor-control's `sched`); the poll loop, which
//! carries the token, takes the highest ([`realtime_top`]) so that rotord's own work never holds
//! a token hop. Threads off the token's path ([`to_normal_class`]: the poll mode's re-check)
//! and a busy-polling loop leave the realtime class.

use std::io;

/// Whether the calling thread is in a realtime class, and which.
fn realtime_policy() -> Option<libc::c_int> {
    // SAFETY: sched_getscheduler has no preconditions; pid 0 is this thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    (policy == libc::SCHED_RR || policy == libc::SCHED_FIFO).then_some(policy)
}

/// Raises the calling thread to the highest priority of its realtime class, if it is in one
/// (inherited from rotord); threads it starts afterwards inherit it. `None`: not realtime,
/// nothing done; otherwise the priority now held, or why it could not be raised (without
/// CAP_SYS_NICE or an RLIMIT_RTPRIO that allows it).
pub fn realtime_top() -> Option<io::Result<i32>> {
    let policy = realtime_policy()?;
    // SAFETY: sched_get_priority_max has no preconditions.
    let top = unsafe { libc::sched_get_priority_max(policy) };
    let param = libc::sched_param {
        sched_priority: top,
    };
    // SAFETY: sched_setscheduler reads the sched_param we own; pid 0 is this thread.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
        Some(Ok(top))
    } else {
        Some(Err(io::Error::last_os_error()))
    }
}

/// Moves the calling thread to the normal class (lowering needs no privilege). `Ok(false)`:
/// it was not realtime.
pub fn to_normal_class() -> io::Result<bool> {
    if realtime_policy().is_none() {
        return Ok(false);
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the sched_param we own; pid 0 is this thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) } == 0 {
        Ok(true)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own, so the test thread's class is left alone.
    fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn a_normal_thread_is_left_as_it_is() {
        let (top, normal) = on_thread(|| (realtime_top().is_none(), to_normal_class().unwrap()));
        assert!(top, "a normal-class thread is not raised");
        assert!(!normal, "nor moved");
    }

    #[test]
    fn a_realtime_thread_rises_to_the_top_and_leaves_for_the_normal_class() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: entering the realtime class needs root (CAP_SYS_NICE)");
            return;
        }
        on_thread(|| {
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: as above; pid 0 is this thread.
            let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) };
            assert_eq!(r, 0, "{}", io::Error::last_os_error());
            // SAFETY: no preconditions.
            let max = unsafe { libc::sched_get_priority_max(libc::SCHED_RR) };
            assert_eq!(realtime_top().unwrap().unwrap(), max);
            let mut now = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_getparam writes the sched_param we own.
            assert_eq!(unsafe { libc::sched_getparam(0, &mut now) }, 0);
            assert_eq!(now.sched_priority, max);
            assert!(to_normal_class().unwrap());
            // SAFETY: no preconditions.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
            assert!(realtime_top().is_none());
        });
    }
}
