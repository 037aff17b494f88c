//! What the supervisor decides about one instance, as a state machine without I/O (the
//! supervisor's loop feeds it and carries out what it asks): messages from the instance
//! (`handle_message`), quorum changes (`handle_quorum`), the instance's end
//! (`handle_exit`), time (`handle_timeout`); out come `poll_action` (replies, signals, cmap
//! updates, log lines), `poll_timeout` and, once the instance is gone, `outcome`.
//!
//! The rules are libsam's (`lib/sam.c`, `sam_parent_handler`): a health check is due every
//! interval while started, and any message counts as one; a miss sends the warn signal, and
//! a further interval without a message SIGKILL; an instance that comes back after the
//! warning is forgiven. Losing quorum while started (quorum policies) sends the warn signal
//! and SIGKILL after the interval, whatever the instance says meanwhile. An instance that
//! dies while started, or after SAM asked it to go, is recovered by the policy; one that
//! exits while not started ends the supervisor with its status. `mark_failed` is SIGKILL at
//! once and quit.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rotor_proto::Status;

use super::link::Message;
use super::{keys, signal_name, Level, Policy, Recovery, KILL_GRACE_WITHOUT_INTERVAL};

/// How an instance ended (from waitpid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub(crate) fn from_wait_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    /// The status the supervisor exits with after this instance: its exit code, or 128 +
    /// the signal that killed it, as shells report it.
    pub(crate) fn exit_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => write!(f, "was killed by {}", signal_name(*s)),
        }
    }
}

/// Why SAM asked the instance to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    MissedHealthCheck,
    QuorumLost,
    MarkedFailed,
    Malformed,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::MissedHealthCheck => "missed health check",
            Cause::QuorumLost => "quorum lost",
            Cause::MarkedFailed => "marked failed",
            Cause::Malformed => "malformed message",
        })
    }
}

/// A cmap update of the process's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Publish {
    State(&'static str),
    LastUpdated,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Answers the message the instance waits on.
    Reply(Result<(), (Status, String)>),
    /// Sends the signal to the instance.
    Signal(i32),
    Publish(Publish),
    Log(Level, String),
}

/// What the supervisor does once the instance is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Restart,
    /// Exit with `status`; `failed`: after a failure (the cmap state says so), else a clean
    /// end (the cmap keys go).
    Quit {
        status: i32,
        failed: bool,
    },
}

pub(crate) struct Watch {
    policy: Policy,
    /// `None`: no time limit.
    interval: Option<Duration>,
    instance_id: u32,
    pid: u32,
    warn_signal: i32,
    started: bool,
    waiting_for_quorum: bool,
    quorate: bool,
    last_activity: Instant,
    /// SAM asked the instance to go (warn signal or SIGKILL), when and why; a warning for a
    /// missed health check is withdrawn when the instance answers.
    warning: Option<(Instant, Cause)>,
    killed: bool,
    marked_failed: bool,
    outcome: Option<Outcome>,
    actions: VecDeque<Action>,
}

impl Watch {
    pub(crate) fn new(
        now: Instant,
        policy: Policy,
        interval: Option<Duration>,
        instance_id: u32,
        pid: u32,
        warn_signal: i32,
        quorate: bool,
    ) -> Watch {
        Watch {
            policy,
            interval,
            instance_id,
            pid,
            warn_signal,
            started: false,
            waiting_for_quorum: false,
            quorate,
            last_activity: now,
            warning: None,
            killed: false,
            marked_failed: false,
            outcome: None,
            actions: VecDeque::new(),
        }
    }

    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub(crate) fn outcome(&self) -> Option<Outcome> {
        self.outcome
    }

    fn log(&mut self, level: Level, text: String) {
        let line = format!("instance {} (pid {}): {text}", self.instance_id, self.pid);
        self.actions.push_back(Action::Log(level, line));
    }

    fn publish_state(&mut self, state: &'static str) {
        if self.policy.cmap {
            self.actions
                .push_back(Action::Publish(Publish::State(state)));
        }
    }

    fn reply_ok(&mut self) {
        self.actions.push_back(Action::Reply(Ok(())));
    }

    fn interval_text(&self) -> String {
        match self.interval {
            Some(i) => format!("{} ms", i.as_millis()),
            None => "no time limit".into(),
        }
    }

    pub(crate) fn handle_message(&mut self, now: Instant, m: &Message) {
        if self.outcome.is_some() {
            return;
        }
        self.last_activity = now;
        if matches!(self.warning, Some((_, Cause::MissedHealthCheck))) && !self.killed {
            self.warning = None;
            self.log(
                Level::Notice,
                "answered after the warn signal; still supervised".into(),
            );
        }
        if self.policy.cmap {
            self.actions
                .push_back(Action::Publish(Publish::LastUpdated));
        }
        match m {
            Message::Start => {
                if self.started || self.waiting_for_quorum {
                    self.reply_ok();
                } else if self.policy.quorum && !self.quorate {
                    self.waiting_for_quorum = true;
                    self.publish_state(keys::STATE_WAITING_FOR_QUORUM);
                    self.log(
                        Level::Notice,
                        "waiting for quorum before health checking starts".into(),
                    );
                } else {
                    self.begin();
                }
            }
            Message::Stop => {
                self.started = false;
                self.waiting_for_quorum = false;
                self.publish_state(keys::STATE_STOPPED);
                self.reply_ok();
            }
            Message::HealthCheck => {}
            Message::DataStore(_) => self.reply_ok(),
            Message::WarnSignal(s) => {
                self.warn_signal = *s;
                self.reply_ok();
            }
            Message::MarkFailed => {
                self.marked_failed = true;
                self.started = true;
                self.log(
                    Level::Warning,
                    "marked itself failed: sending SIGKILL; the supervisor quits after it".into(),
                );
                self.kill(now, Cause::MarkedFailed);
            }
        }
    }

    /// Bytes on the socket that are no message: the instance is broken.
    pub(crate) fn handle_malformed(&mut self, now: Instant, what: &str) {
        if self.outcome.is_some() || self.killed {
            return;
        }
        self.log(
            Level::Error,
            format!("sent {what} (its memory may be corrupt): sending SIGKILL"),
        );
        self.started = true;
        self.kill(now, Cause::Malformed);
    }

    fn begin(&mut self) {
        self.started = true;
        self.waiting_for_quorum = false;
        self.publish_state(keys::STATE_RUNNING);
        self.reply_ok();
    }

    pub(crate) fn handle_quorum(&mut self, now: Instant, quorate: bool) {
        if quorate == self.quorate {
            return;
        }
        self.quorate = quorate;
        if self.outcome.is_some() || !self.policy.quorum {
            return;
        }
        if quorate && self.waiting_for_quorum {
            self.log(
                Level::Notice,
                "the node is quorate: health checking starts".into(),
            );
            self.begin();
        } else if !quorate && self.started && !self.killed {
            match self.warning {
                None => {
                    let signal = signal_name(self.warn_signal);
                    self.log(
                        Level::Warning,
                        format!("the node lost quorum: sending {signal}"),
                    );
                    self.warn(now, Cause::QuorumLost);
                }
                Some(_) => {
                    self.log(
                        Level::Warning,
                        "the node lost quorum after the warn signal: sending SIGKILL".into(),
                    );
                    self.kill(now, Cause::QuorumLost);
                }
            }
        }
    }

    fn warn(&mut self, now: Instant, cause: Cause) {
        self.warning = Some((now, cause));
        self.actions.push_back(Action::Signal(self.warn_signal));
        if self.warn_signal == libc::SIGKILL {
            self.killed = true;
        }
    }

    fn kill(&mut self, now: Instant, cause: Cause) {
        if self.warning.is_none() {
            self.warning = Some((now, cause));
        }
        self.killed = true;
        self.actions.push_back(Action::Signal(libc::SIGKILL));
    }

    /// The grace after a warn signal for a loss of quorum.
    fn grace(&self) -> Duration {
        self.interval.unwrap_or(KILL_GRACE_WITHOUT_INTERVAL)
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() || self.killed {
            return None;
        }
        match (self.warning, self.interval) {
            (Some((at, Cause::MissedHealthCheck)), Some(i)) => Some(at + i),
            (Some((at, _)), _) => Some(at + self.grace()),
            (None, Some(i)) if self.started => Some(self.last_activity + i),
            (None, _) => None,
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        let interval = self.interval_text();
        let warn = signal_name(self.warn_signal);
        match self.warning {
            None => {
                self.log(
                    Level::Warning,
                    format!("no health check for {interval}: sending {warn}"),
                );
                self.warn(now, Cause::MissedHealthCheck);
            }
            Some((_, cause)) => {
                let waited = match cause {
                    Cause::MissedHealthCheck => interval,
                    _ => format!("{} ms", self.grace().as_millis()),
                };
                self.log(
                    Level::Warning,
                    format!("still running {waited} after {warn} ({cause}): sending SIGKILL"),
                );
                self.kill(now, cause);
            }
        }
    }

    pub(crate) fn handle_exit(&mut self, _now: Instant, exit: Exit) {
        if self.outcome.is_some() {
            return;
        }
        let status = exit.exit_code();
        let why = match self.warning {
            Some((_, cause)) => format!(" ({cause})"),
            None => String::new(),
        };
        let recover = self.started || self.warning.is_some();
        let outcome = if !recover {
            self.log(
                Level::Notice,
                format!(
                    "{exit} while not health checking: the supervisor exits with status {status}"
                ),
            );
            Outcome::Quit {
                status,
                failed: false,
            }
        } else if self.marked_failed || self.policy.recovery == Recovery::Quit {
            let policy = if self.marked_failed {
                "marked failed".to_string()
            } else {
                format!("policy {}", self.policy)
            };
            self.log(
                Level::Error,
                format!("{exit}{why}: the supervisor exits with status {status} ({policy})"),
            );
            Outcome::Quit {
                status,
                failed: true,
            }
        } else {
            self.log(
                Level::Warning,
                format!(
                    "{exit}{why}: restarting it as instance {} (policy {})",
                    self.instance_id.wrapping_add(1),
                    self.policy
                ),
            );
            Outcome::Restart
        };
        self.outcome = Some(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn watch(policy: Policy, interval_ms: u64, quorate: bool) -> (Watch, Instant) {
        let t0 = Instant::now();
        let interval = (interval_ms > 0).then(|| MS * interval_ms as u32);
        (
            Watch::new(t0, policy, interval, 1, 100, libc::SIGTERM, quorate),
            t0,
        )
    }

    /// Every action waiting, logs as `log: …`.
    fn drain(w: &mut Watch) -> Vec<String> {
        std::iter::from_fn(|| w.poll_action())
            .map(|a| match a {
                Action::Reply(Ok(())) => "reply ok".into(),
                Action::Reply(Err((s, t))) => format!("reply {} {t}", s.name()),
                Action::Signal(s) => format!("signal {}", signal_name(s)),
                Action::Publish(Publish::State(s)) => format!("state {s}"),
                Action::Publish(Publish::LastUpdated) => "last_updated".into(),
                Action::Log(_, t) => format!("log: {t}"),
            })
            .collect()
    }

    #[test]
    fn a_missed_health_check_is_warned_then_killed_then_recovered() {
        let (mut w, t0) = watch(Policy::RESTART.with_cmap(), 100, true);
        assert_eq!(w.poll_timeout(), None, "no deadline before start");
        w.handle_message(t0, &Message::Start);
        assert_eq!(drain(&mut w), ["last_updated", "state running", "reply ok"]);
        w.handle_message(t0 + MS * 50, &Message::HealthCheck);
        assert_eq!(w.poll_timeout(), Some(t0 + MS * 150));
        w.handle_timeout(t0 + MS * 149);
        assert!(
            drain(&mut w).len() == 1,
            "only the health check's last_updated"
        );
        w.handle_timeout(t0 + MS * 150);
        assert_eq!(
            drain(&mut w),
            [
                "log: instance 1 (pid 100): no health check for 100 ms: sending SIGTERM",
                "signal SIGTERM"
            ]
        );
        assert_eq!(w.poll_timeout(), Some(t0 + MS * 250));
        w.handle_timeout(t0 + MS * 250);
        assert_eq!(
            drain(&mut w),
            [
                "log: instance 1 (pid 100): still running 100 ms after SIGTERM (missed health \
                 check): sending SIGKILL",
                "signal SIGKILL"
            ]
        );
        assert_eq!(w.poll_timeout(), None, "killed: waiting for the exit only");
        w.handle_exit(t0 + MS * 251, Exit::Signal(libc::SIGKILL));
        assert_eq!(w.outcome(), Some(Outcome::Restart));
        assert_eq!(
            drain(&mut w),
            [
                "log: instance 1 (pid 100): was killed by SIGKILL (missed health check): \
              restarting it as instance 2 (policy restart+cmap)"
            ]
        );
    }

    #[test]
    fn an_instance_that_answers_after_the_warning_is_forgiven() {
        let (mut w, t0) = watch(Policy::RESTART, 100, true);
        w.handle_message(t0, &Message::Start);
        w.handle_timeout(t0 + MS * 100);
        w.handle_message(t0 + MS * 120, &Message::HealthCheck);
        assert_eq!(w.poll_timeout(), Some(t0 + MS * 220));
        drain(&mut w);
        w.handle_timeout(t0 + MS * 220);
        assert_eq!(drain(&mut w)[1], "signal SIGTERM", "a new miss warns again");
    }

    #[test]
    fn the_warn_signal_can_be_sigkill_or_another_signal() {
        let (mut w, t0) = watch(Policy::QUIT, 100, true);
        w.handle_message(t0, &Message::WarnSignal(libc::SIGKILL));
        w.handle_message(t0, &Message::Start);
        drain(&mut w);
        w.handle_timeout(t0 + MS * 100);
        assert_eq!(drain(&mut w)[1], "signal SIGKILL");
        assert_eq!(
            w.poll_timeout(),
            None,
            "SIGKILL as the warning: nothing after it"
        );
        w.handle_exit(t0 + MS * 101, Exit::Signal(libc::SIGKILL));
        assert_eq!(
            w.outcome(),
            Some(Outcome::Quit {
                status: 137,
                failed: true
            })
        );
    }

    #[test]
    fn a_crash_while_started_follows_the_policy_and_an_exit_while_stopped_quits() {
        for (policy, outcome) in [
            (Policy::RESTART, Outcome::Restart),
            (
                Policy::QUIT,
                Outcome::Quit {
                    status: 134,
                    failed: true,
                },
            ),
        ] {
            let (mut w, t0) = watch(policy, 0, true);
            w.handle_message(t0, &Message::Start);
            assert_eq!(
                w.poll_timeout(),
                None,
                "no interval: only the exit is watched"
            );
            w.handle_exit(t0, Exit::Signal(libc::SIGABRT));
            assert_eq!(w.outcome(), Some(outcome));
        }
        // Stopped, the instance may end as it likes, under any policy.
        let (mut w, t0) = watch(Policy::RESTART.with_cmap(), 100, true);
        w.handle_message(t0, &Message::Start);
        w.handle_message(t0, &Message::Stop);
        assert_eq!(w.poll_timeout(), None);
        drain(&mut w);
        w.handle_exit(t0 + MS * 5000, Exit::Code(3));
        assert_eq!(
            w.outcome(),
            Some(Outcome::Quit {
                status: 3,
                failed: false
            })
        );
        assert_eq!(
            drain(&mut w),
            [
                "log: instance 1 (pid 100): exited with status 3 while not health checking: the \
              supervisor exits with status 3"
            ]
        );
    }

    #[test]
    fn mark_failed_kills_at_once_and_quits_whatever_the_policy() {
        let (mut w, t0) = watch(Policy::RESTART.with_cmap(), 100, true);
        w.handle_message(t0, &Message::MarkFailed);
        let a = drain(&mut w);
        assert_eq!(a.last().unwrap(), "signal SIGKILL", "{a:?}");
        assert!(!a.contains(&"signal SIGTERM".to_string()));
        w.handle_exit(t0, Exit::Signal(libc::SIGKILL));
        assert_eq!(
            w.outcome(),
            Some(Outcome::Quit {
                status: 137,
                failed: true
            })
        );
    }

    #[test]
    fn quorum_policies_wait_for_quorum_and_stop_the_instance_when_it_is_lost() {
        let (mut w, t0) = watch(Policy::QUORUM_RESTART.with_cmap(), 100, false);
        w.handle_message(t0, &Message::Start);
        assert_eq!(
            drain(&mut w),
            [
                "last_updated",
                "state waiting for quorum",
                "log: instance 1 (pid 100): waiting for quorum before health checking starts"
            ],
            "no reply: start blocks"
        );
        assert_eq!(
            w.poll_timeout(),
            None,
            "no health check is due while waiting"
        );
        w.handle_quorum(t0 + MS * 5000, true);
        assert_eq!(
            drain(&mut w),
            [
                "log: instance 1 (pid 100): the node is quorate: health checking starts",
                "state running",
                "reply ok"
            ]
        );
        // Quorum lost: the warn signal, and SIGKILL one interval later even if the
        // instance goes on sending health checks.
        let t1 = t0 + MS * 6000;
        w.handle_quorum(t1, false);
        assert_eq!(
            drain(&mut w),
            [
                "log: instance 1 (pid 100): the node lost quorum: sending SIGTERM",
                "signal SIGTERM"
            ]
        );
        w.handle_message(t1 + MS * 50, &Message::HealthCheck);
        assert_eq!(w.poll_timeout(), Some(t1 + MS * 100));
        w.handle_timeout(t1 + MS * 100);
        assert_eq!(drain(&mut w).last().unwrap(), "signal SIGKILL");
        w.handle_exit(t1 + MS * 101, Exit::Signal(libc::SIGKILL));
        assert_eq!(w.outcome(), Some(Outcome::Restart));
    }

    #[test]
    fn an_instance_that_stops_and_exits_after_the_warning_is_still_recovered() {
        let (mut w, t0) = watch(Policy::QUORUM_RESTART, 0, true);
        w.handle_message(t0, &Message::Start);
        w.handle_quorum(t0, false);
        assert_eq!(w.poll_timeout(), Some(t0 + KILL_GRACE_WITHOUT_INTERVAL));
        // Its SIGTERM handler stops health checking and exits 0.
        w.handle_message(t0 + MS, &Message::Stop);
        w.handle_exit(t0 + MS * 2, Exit::Code(0));
        assert_eq!(w.outcome(), Some(Outcome::Restart));
    }

    #[test]
    fn without_the_quorum_flag_quorum_changes_nothing() {
        let (mut w, t0) = watch(Policy::RESTART, 100, false);
        w.handle_message(t0, &Message::Start);
        assert_eq!(drain(&mut w), ["reply ok"]);
        w.handle_quorum(t0, true);
        w.handle_quorum(t0, false);
        assert!(drain(&mut w).is_empty());
    }

    #[test]
    fn exit_codes_are_the_instances_or_128_plus_its_signal() {
        assert_eq!(Exit::from_wait_status(3 << 8), Exit::Code(3));
        assert_eq!(Exit::from_wait_status(libc::SIGKILL), Exit::Signal(9));
        assert_eq!(Exit::Signal(libc::SIGTERM).exit_code(), 143);
        assert_eq!(Exit::Code(7).exit_code(), 7);
        assert_eq!(
            Exit::Signal(libc::SIGSEGV).to_string(),
            "was killed by SIGSEGV"
        );
    }
}
