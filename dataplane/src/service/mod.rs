//! The dataplane as rotord runs it: CPG sessions handed over by rotord on the control socket
//! are served from the same loop that runs totem-core. Requests are read from each client's
//! ring and go to the node through totem-core's `Sessions` (the local side of CPG, which the
//! simulator runs too); deliveries and membership changes are written to the ring of every
//! session that `Sessions::route` names — the group's members from the change that adds each
//! one to the change that shows it leave, never a session whose join is still in flight —, in
//! delivery order. A delivery's record is its header, built on the stack, and its data, borrowed
//! from the core's frame store, gathered straight into each ring: after the socket, the store's
//! copy and the ring's are the only copies of a message.
//!
//! Flow control without loss: a multicast the node refuses with "try again" stays pending in
//! its session (nothing more is read from that ring until it is accepted), so a client whose
//! ring then fills gets `TryAgain` itself. In the other direction a client that does not drain
//! its ring gets its records queued here up to `CLIENT_BACKLOG_BYTES_MAX`; beyond that it is
//! disconnected with a logged reason — it can no longer see every message, and EVS forbids
//! skipping one — and its processes leave their groups as "process down". Before that, from
//! `INTAKE_PAUSE_BYTES` on, its own requests wait in its ring; should it still fall behind the
//! other members' traffic, past `RECEIVER_BEHIND_BYTES`, this node's token visits claim the
//! whole window for up to `RECEIVER_BEHIND_MAX`, so the other members send nothing new
//! meanwhile (receiver flow control, `Node::set_receivers_behind`): a client on a core it
//! shares with realtime dataplanes gets to read before the ring carries more.
//!
//! The loop and its poll modes are here; the sessions in `clients`, the records queued for a
//! full ring in `backlog`, the control socket to rotord in `control`.

use std::io;
use std::time::{Duration, Instant as WallInstant};

use rotor_proto::control::{FromDataplane, RingReport};
use rotor_proto::RingState;

use crate::quorum::QuorumLink;
use crate::runner::Runner;
use crate::stats::{Histogram, Sheet};
use crate::transport::Transport;

/// Records one client may have queued here beyond its ring before it is disconnected.
pub const CLIENT_BACKLOG_BYTES_MAX: usize = 64 << 20;
/// Records queued for one client beyond which its own requests wait in its ring until it has
/// read some (an eighth of `CLIENT_BACKLOG_BYTES_MAX`: what the other members still send while
/// it catches up fits in the rest).
pub const INTAKE_PAUSE_BYTES: usize = CLIENT_BACKLOG_BYTES_MAX / 8;
/// Records queued for one client (its intake paused) beyond which the other members are held
/// back (`Node::set_receivers_behind`): half of `CLIENT_BACKLOG_BYTES_MAX`, so holding the ring
/// costs throughput only when pausing the client's own sends was not enough, and what is in
/// flight meanwhile fits in the other half.
pub const RECEIVER_BEHIND_BYTES: usize = CLIENT_BACKLOG_BYTES_MAX / 2;
/// How long one client past `RECEIVER_BEHIND_BYTES` has the ring carry nothing new from the
/// other members: plenty for a client starved of CPU to catch up once the dataplanes go quiet,
/// short enough that one that has stopped reading stalls the cluster only briefly.
pub const RECEIVER_BEHIND_MAX: Duration = Duration::from_millis(500);
/// Requests taken from one client per turn, so one busy client cannot starve the others.
const REQUESTS_PER_TURN: usize = 256;
/// How long the loop sleeps at most while a client's ring is too full for its records (the
/// client frees room without waking us).
const BACKLOG_RETRY: Duration = Duration::from_millis(1);
/// How long an orderly shutdown waits for this node's leave to be ordered (allow_downscale).
const LEAVE_ANNOUNCE_WAIT: Duration = Duration::from_secs(2);
/// How often sessions are checked for a dead peer, the transports do their upkeep and stats are
/// published.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(200);
/// How often a turn that did not sleep reads rotord's socket. A turn that slept reads it only
/// when the wait saw it readable: a read that finds nothing is a system call (about 2 µs after a
/// sleep on this kind of VM), and most turns are a token hop.
const CONTROL_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How long housekeeping that is due waits for this node to have passed the token on: it then
/// has a whole rotation before the token is back, and the work (tens of µs, most of it system
/// calls) holds no hop. A ring that is not rotating (forming, or this node alone) gets it after
/// this wait anyway.
const HOUSEKEEPING_TOKEN_WAIT: Duration = Duration::from_millis(50);

/// How the loop waits for work: the poll mode rotord asked for (`rotor.poll_mode`), resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollLoop {
    /// Never sleep: for a dedicated core.
    Busy,
    /// Spin `spin` after the last work, then sleep in poll(2).
    Adaptive { spin: Duration },
    /// Always sleep in poll(2) when idle.
    Blocking,
}

impl PollLoop {
    /// How the log names the mode: "busy", "adaptive (spin 10 µs)", "blocking".
    pub fn describe(self) -> String {
        match self {
            PollLoop::Busy => "busy".into(),
            PollLoop::Adaptive { spin } => format!("adaptive (spin {} µs)", spin.as_micros()),
            PollLoop::Blocking => "blocking".into(),
        }
    }
}

/// The loop's mode: fixed by rotor.poll_mode, or auto's, which may change while it runs.
pub enum PollChoice {
    Fixed(PollLoop),
    Auto(AutoMode),
}

impl PollChoice {
    /// The mode for this turn.
    fn now(&self) -> PollLoop {
        match self {
            PollChoice::Fixed(mode) => *mode,
            PollChoice::Auto(auto) => auto.get(),
        }
    }
}

pub mod auto;

/// A busy-polling loop never sleeps: in the realtime class rotord passed on
/// (`system.sched_rr`) it would keep its core from every other task there, rotord and the
/// clients included, so it goes back to the normal class.
fn leave_realtime() {
    match crate::sched::to_normal_class() {
        Ok(false) => {}
        Ok(true) => tracing::info!(
            target: "MAIN",
            "busy polling: realtime scheduling (system.sched_rr) given up, a spinning realtime \
             loop would starve its core"
        ),
        Err(e) => tracing::warn!(
            target: "MAIN",
            "busy polling in the realtime class, which could not be left: {e}"
        ),
    }
}
mod backlog;
mod clients;
mod control;

pub use auto::AutoMode;
pub use clients::{Armed, Clients, IpcCounters};
pub use control::{Control, ControlInput, StartError};

/// The stats published to rotord (cmap keys under `stats.`), written over `out`'s last report.
pub fn stats_counters<T: Transport>(runner: &Runner<T>, clients: &Clients, out: &mut Sheet) {
    out.clear();
    runner.counters(out);
    clients.entries(out);
    out.put("log.dropped", rotor_log::forward_dropped());
}

/// Runs the service loop until rotord says stop or hangs up, or `stop` turns true.
pub fn run<T: Transport>(
    runner: &mut Runner<T>,
    control: &mut Control,
    poll: &PollChoice,
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    let mut clients = Clients::new(runner.node().node_id().0);
    let mut last_work = WallInstant::now();
    let mut last_housekeeping = WallInstant::now();
    let mut last_ring = (RingState::Down, runner.node().ring());
    let mut fds = Vec::new();
    let mut keys_reported = crate::change::KeysReported::default();
    let mut quorum = QuorumLink::default();
    let mut stats = Sheet::new();
    // How long each housekeeping kept the poll thread from the token (published with the
    // next one's report): it runs between hops, so its time is a hop's wait.
    let mut housekeeping = Histogram::default();
    report_ring(runner, control, &mut last_ring, true);
    quorum.pump(runner.node_mut(), |m| control.send_in_order(&m));
    let mut gone = false;
    let mut left_realtime = false;
    let mut last_control_poll: Option<WallInstant> = None;
    while !stop() {
        let mode = poll.now();
        // Once, the first turn it busy-polls (from the start, or when auto chooses it).
        if mode == PollLoop::Busy && !left_realtime {
            left_realtime = true;
            leave_realtime();
        }
        let control_due = runner.woke_on(control.fd())
            || last_control_poll.is_none_or(|t| t.elapsed() >= CONTROL_POLL_INTERVAL);
        let input = if control_due {
            // After a message, the next turn reads again: more may be queued.
            let input = control.poll();
            last_control_poll = input.is_none().then(WallInstant::now);
            input
        } else {
            None
        };
        match input {
            Some(ControlInput::Session(s)) => clients.adopt(s),
            Some(ControlInput::Change(c, fds)) => crate::change::handle(runner, control, c, fds),
            Some(ControlInput::Quorum { request, op }) => {
                let reply = quorum.handle(runner.node_mut(), request, op);
                // The state the request changed goes up before its answer.
                quorum.pump(runner.node_mut(), |m| control.send_in_order(&m));
                if let Some(reply) = reply {
                    control.send_in_order(&reply);
                }
            }
            Some(ControlInput::Shutdown) => break,
            Some(ControlInput::Gone) => {
                gone = true;
                break;
            }
            None => {}
        }
        let mut work = clients.serve(runner);
        fds.clear();
        fds.push(control.fd());
        // Arm the clients' wake-ups only on the way to sleep: an armed session makes its
        // client signal an eventfd (a system call) for every record it writes.
        let max_wait = if work > 0 {
            Duration::ZERO
        } else {
            match mode {
                PollLoop::Busy => Duration::ZERO,
                PollLoop::Adaptive { spin } if last_work.elapsed() < spin => Duration::ZERO,
                _ => {
                    let armed = clients.arm(&mut fds, !runner.node().submit_can_wait());
                    if armed.ready {
                        Duration::ZERO
                    } else if armed.backlogged {
                        BACKLOG_RETRY
                    } else {
                        HOUSEKEEPING_INTERVAL
                    }
                }
            }
        };
        work += runner.turn_start(max_wait, &fds)?;
        // What a client sent during the wait goes to the node before the datagrams that woke
        // it: were the token among them, the request would otherwise wait a whole rotation.
        if max_wait > Duration::ZERO {
            work += clients.serve(runner);
        }
        work += runner.turn_end(|ev| clients.on_event(ev))?;
        if work > 0 {
            last_work = WallInstant::now();
        }
        report_ring(runner, control, &mut last_ring, false);
        quorum.pump(runner.node_mut(), |m| control.send_in_order(&m));
        crate::change::report(runner, control, &mut keys_reported);
        control.flush_queued();
        if housekeeping_now(last_housekeeping.elapsed(), runner.token_passed()) {
            last_housekeeping = WallInstant::now();
            runner.maintain();
            clients.check_peers();
            stats_counters(runner, &clients, &mut stats);
            housekeeping.entries(&mut stats, rotor_proto::stats::HOUSEKEEPING);
            control.report(&FromDataplane::Stats {
                counters: stats.changed(),
            });
            housekeeping.record(last_housekeeping.elapsed().as_nanos() as u64);
        }
    }
    // A clean leave lowers the others' expected votes (allow_downscale): ordered before the
    // node leaves the ring, waited for a short while (a ring that cannot order it is
    // breaking up anyway).
    if !gone && quorum.announce_leave(runner.node_mut()) {
        let deadline = WallInstant::now() + LEAVE_ANNOUNCE_WAIT;
        while !quorum.leave_done() && WallInstant::now() < deadline {
            runner.turn(Duration::from_millis(5), &[], |ev| clients.on_event(ev))?;
            quorum.pump(runner.node_mut(), |m| control.send_in_order(&m));
        }
        control.flush_queued();
    }
    runner.node_mut().leave();
    runner.flush()
}

/// Whether housekeeping runs now, `since` the last, and with the token just passed on (or not).
fn housekeeping_now(since: Duration, token_passed: bool) -> bool {
    since >= HOUSEKEEPING_INTERVAL
        && (token_passed || since >= HOUSEKEEPING_INTERVAL + HOUSEKEEPING_TOKEN_WAIT)
}

/// The protocol state as rotord's ring record names it.
fn ring_state(state: totem_core::State) -> RingState {
    match state {
        totem_core::State::Gather => RingState::Gather,
        totem_core::State::Commit => RingState::Commit,
        totem_core::State::Recovery => RingState::Recovery,
        totem_core::State::Operational => RingState::Operational,
    }
}

fn report_ring<T: Transport>(
    runner: &Runner<T>,
    control: &mut Control,
    last: &mut (RingState, totem_core::RingId),
    force: bool,
) {
    let node = runner.node();
    let state = ring_state(node.state());
    if !force && last.0 == state && last.1 == node.ring() {
        return;
    }
    *last = (state, node.ring());
    control.report(&FromDataplane::Ring(RingReport {
        state,
        ring_rep: node.ring().rep,
        ring_seq: node.ring().seq,
        members: node.members().iter().map(|n| n.0).collect(),
        transport: runner.transport().name().to_owned(),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn housekeeping_waits_for_the_token_to_pass_but_not_for_ever() {
        let ms = Duration::from_millis;
        assert!(!housekeeping_now(ms(199), true), "not due yet");
        assert!(housekeeping_now(ms(200), true));
        assert!(
            !housekeeping_now(ms(200), false),
            "due: waits for the token"
        );
        assert!(!housekeeping_now(ms(249), false));
        assert!(
            housekeeping_now(ms(250), false),
            "a ring that does not rotate"
        );
    }
}
