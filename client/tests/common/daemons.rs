//! The rotords of a network-namespace test: started on every host, stopped by their pids.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use rotor_testbed::rotor::{rotord_command, Bins};
use rotor_testbed::{Proc, Testbed};

/// The rotords of a test and their logs: stopped (SIGTERM, then SIGKILL after 5 s) when
/// dropped; a failing test prints every log.
pub struct Daemons(pub Vec<(Proc, Option<JoinHandle<String>>)>);

impl Daemons {
    /// Starts rotord with `conf` on every host of `bed`.
    pub fn start(bed: &Testbed, bins: &Bins, conf: &Path) -> Daemons {
        let mut daemons = Daemons(Vec::new());
        for i in 1..=bed.hosts() {
            let mut p = bed
                .spawn(i, rotord_command(bins, conf))
                .expect("start rotord");
            let log = p.collect_stderr();
            daemons.0.push((p, log));
        }
        daemons
    }

    /// Stops every rotord still running and returns every log, host 1 first.
    pub fn stop(&mut self) -> Vec<String> {
        for (p, _) in &mut self.0 {
            let _ = p.signal(libc::SIGTERM);
        }
        self.0
            .iter_mut()
            .map(|(p, log)| {
                if p.wait_timeout(Duration::from_secs(5))
                    .ok()
                    .flatten()
                    .is_none()
                {
                    let _ = p.kill();
                }
                log.take()
                    .map(|h| h.join().unwrap_or_default())
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        let logs = self.stop();
        if std::thread::panicking() {
            for (i, log) in logs.iter().enumerate() {
                eprintln!("---- rotord on host {}:\n{log}", i + 1);
            }
        }
    }
}
