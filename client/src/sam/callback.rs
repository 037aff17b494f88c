//! SAM's health-check thread (event-driven health checking, `sam_hc_callback_register`):
//! while the instance is started it sends a health check every quarter interval and calls
//! the application's callback once per interval, libsam's rhythm; once the callback
//! reports a failure it sends nothing more until the next start, so the supervisor warns
//! and then kills the instance. The callback runs on this thread, outside SAM's lock, so it
//! may call SAM itself.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use super::{lock, log_line, HealthCheck, Inner, Level};

/// Health checks per interval; the callback is called on every last one.
const TICKS_PER_INTERVAL: u32 = 4;

enum Control {
    Start,
    Stop,
    Set(Option<HealthCheck>),
    Shutdown,
}

/// The handle of the thread; dropping it ends the thread after its current step.
pub(crate) struct Thread {
    tx: mpsc::Sender<Control>,
}

impl Thread {
    pub(crate) fn spawn(
        shared: Weak<Mutex<Inner>>,
        interval: Duration,
        callback: HealthCheck,
    ) -> io::Result<Thread> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("sam-hc".into())
            .spawn(move || run(shared, rx, interval, callback))?;
        Ok(Thread { tx })
    }

    pub(crate) fn start(&self) {
        let _ = self.tx.send(Control::Start);
    }

    pub(crate) fn stop(&self) {
        let _ = self.tx.send(Control::Stop);
    }

    pub(crate) fn set(&self, callback: Option<HealthCheck>) {
        let _ = self.tx.send(Control::Set(callback));
    }

    pub(crate) fn shutdown(self) {
        let _ = self.tx.send(Control::Shutdown);
    }
}

fn run(
    shared: Weak<Mutex<Inner>>,
    rx: mpsc::Receiver<Control>,
    interval: Duration,
    callback: HealthCheck,
) {
    let tick = (interval / TICKS_PER_INTERVAL).max(Duration::from_millis(1));
    let mut callback = Some(callback);
    let mut started = false;
    let mut healthy = true;
    let mut ticks = 0;
    let mut next = Instant::now();
    loop {
        let active = started && healthy && callback.is_some();
        let got = if active {
            rx.recv_timeout(next.saturating_duration_since(Instant::now()))
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match got {
            Ok(Control::Start) => {
                started = true;
                healthy = true;
                ticks = 0;
                next = Instant::now() + tick;
            }
            Ok(Control::Stop) => started = false,
            Ok(Control::Set(c)) => callback = c,
            Ok(Control::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {
                next = (next + tick).max(Instant::now());
                ticks += 1;
                if ticks == TICKS_PER_INTERVAL {
                    ticks = 0;
                    let cb = callback.as_mut().expect("active implies a callback");
                    if !cb() {
                        healthy = false;
                        if let Some(s) = shared.upgrade() {
                            let inner = lock(&s);
                            let text = format!(
                                "instance {} (pid {}): the health-check callback reported a \
                                 failure: health checks stop",
                                inner.instance_id,
                                std::process::id()
                            );
                            log_line(Level::Warning, inner.supervisor_pid(), &text);
                        }
                        continue;
                    }
                }
                let Some(s) = shared.upgrade() else { return };
                // Stopped or finalized meanwhile, or the supervisor gone: the next Control
                // says what to do.
                let _ = lock(&s).hc_send();
            }
        }
    }
}
