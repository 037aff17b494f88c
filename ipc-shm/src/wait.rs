//! How a caller waits for a record or for ring space: busy-poll, sleep, or spin then sleep.
//!
//! Sleeping uses one eventfd per party and the `*_waiting` flags of the ring header: a side
//! raises its flag, re-checks the ring, then sleeps in `poll` on its eventfd and its control
//! socket; the other side signals the eventfd only when it sees the flag raised. So the fast path
//! (nobody asleep) makes no system call, and a peer that dies wakes the sleeper through the socket.

use std::time::Duration;

/// How [`crate::Session::send`] and [`crate::Session::recv`] wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    /// Spin on the ring without system calls (a liveness look at the control socket every
    /// [`PEER_CHECK_INTERVAL`] idle rounds). Lowest latency; burns the core.
    Busy,
    /// Sleep in the kernel at once until the peer signals. No CPU while idle; a wake-up costs
    /// a few microseconds.
    Blocking,
    /// Spin for `spin_ns` nanoseconds, then sleep as [`WaitMode::Blocking`].
    Adaptive {
        /// How long to spin before sleeping.
        spin_ns: u64,
    },
}

impl WaitMode {
    /// How long to spin before the first sleep; `None` means never sleep.
    pub(crate) fn spin_budget(self) -> Option<Duration> {
        match self {
            WaitMode::Busy => None,
            WaitMode::Blocking => Some(Duration::ZERO),
            WaitMode::Adaptive { spin_ns } => Some(Duration::from_nanos(spin_ns)),
        }
    }
}

/// Idle rounds (`Empty`/`Full` results) between two non-blocking liveness looks at the control
/// socket. A look is one `poll` system call; 1024 rounds keep it far off the fast path while a
/// dead peer is still noticed within microseconds of spinning.
pub const PEER_CHECK_INTERVAL: u32 = 1024;

/// Spin rounds between two clock reads while spinning (deadline and spin-budget checks).
pub(crate) const CLOCK_CHECK_INTERVAL: u32 = 64;
