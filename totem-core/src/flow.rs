//! The adaptive per-visit allowance (`max_messages_adaptive`, on when the config sets neither
//! `window_size` nor `max_messages`): how many frames a node may multicast on one token visit,
//! adapted to what it measures, in place of the fixed `max_messages`.
//!
//! The rule, additive increase and multiplicative decrease (as TCP's congestion window), driven
//! only by token visits and token losses (no clock of its own: a visit's time comes in):
//! - it starts at `max_messages` and stays between [`ALLOWANCE_MIN`] (or `window_size` when
//!   that is less) and `window_size`: the window still bounds what the whole ring multicasts
//!   in one rotation (paper §3.3, fcc), so growing one node's allowance lets a node with a
//!   backlog use the window the others leave, never more;
//! - a visit that finds loss — retransmission requests on the token, or frames this node asks
//!   for — takes a quarter off (loss means a receiver or the network is overrun: send less);
//! - a lost token (the token retransmission timeout fired) halves it, once between two visits
//!   (the timeout backs off and fires again for the same token);
//! - a visit with no loss, after one in which the allowance was what stopped this node (it sent
//!   all of it and still had a backlog), while rotations stay fast — this one no more than
//!   twice the smoothed rotation — adds one frame.
//!
//! Explicit `window_size` or `max_messages` values are obeyed exactly (no `Allowance` then).

use crate::types::Instant;

/// The least allowance after decreases: a node always makes progress on its backlog.
pub const ALLOWANCE_MIN: u32 = 4;

/// One node's adaptive per-visit allowance.
#[derive(Clone, Debug)]
pub struct Allowance {
    /// Invariant: within `floor..=max`.
    current: u32,
    floor: u32,
    max: u32,
    /// When this node last had the token, and the smoothed time between its visits (ns, 0
    /// until measured; a moving average of 1/8 weight per visit).
    last_visit: Option<Instant>,
    rotation_avg_ns: u64,
    /// On the last visit the allowance was what stopped this node (its backlog was left).
    wanted_more: bool,
    /// The token was found lost since the last visit (halved once already).
    lost_since_visit: bool,
}

impl Allowance {
    /// Starts at `start`, kept within [`ALLOWANCE_MIN`] and `max` (the window).
    pub fn new(start: u32, max: u32) -> Allowance {
        let max = max.max(1);
        let floor = ALLOWANCE_MIN.min(max);
        Allowance {
            current: start.clamp(floor, max),
            floor,
            max,
            last_visit: None,
            rotation_avg_ns: 0,
            wanted_more: false,
            lost_since_visit: false,
        }
    }

    /// Frames this node may multicast on its next visit.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// A token visit at `now` (module doc): `loss` when it found retransmission requests,
    /// `limited` when this visit sent its whole allowance and left a backlog.
    pub fn on_visit(&mut self, now: Instant, loss: bool, limited: bool) {
        let fast = match self.last_visit {
            Some(last) => {
                let rotation = now.0.saturating_sub(last.0);
                let fast = self.rotation_avg_ns == 0 || rotation <= 2 * self.rotation_avg_ns;
                self.rotation_avg_ns = if self.rotation_avg_ns == 0 {
                    rotation
                } else {
                    (7 * self.rotation_avg_ns + rotation) / 8
                };
                fast
            }
            None => false,
        };
        self.last_visit = Some(now);
        self.lost_since_visit = false;
        if loss {
            self.current = (self.current - self.current / 4).max(self.floor);
        } else if self.wanted_more && fast {
            self.current = (self.current + 1).min(self.max);
        }
        self.wanted_more = limited;
    }

    /// The token was lost on its way from this node (its retransmission timeout fired).
    pub fn on_token_lost(&mut self) {
        if !self.lost_since_visit {
            self.lost_since_visit = true;
            self.current = (self.current / 2).max(self.floor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROTATION: u64 = 100_000;

    /// Visits `count` times one rotation apart from `*now`.
    fn visits(a: &mut Allowance, now: &mut u64, count: u32, loss: bool, limited: bool) {
        for _ in 0..count {
            *now += ROTATION;
            a.on_visit(Instant(*now), loss, limited);
        }
    }

    #[test]
    fn grows_by_one_a_visit_while_limited_up_to_the_window() {
        let (mut a, mut now) = (Allowance::new(17, 50), 0);
        visits(&mut a, &mut now, 3, false, true);
        // The first visit measures nothing; the second and third each follow a limited one.
        assert_eq!(a.current(), 19);
        visits(&mut a, &mut now, 100, false, true);
        assert_eq!(a.current(), 50);
    }

    #[test]
    fn does_not_grow_without_a_backlog_or_when_rotations_slow_down() {
        let (mut a, mut now) = (Allowance::new(17, 50), 0);
        visits(&mut a, &mut now, 10, false, false);
        assert_eq!(a.current(), 17, "no backlog left: nothing to grow for");
        visits(&mut a, &mut now, 2, false, true);
        let before = a.current();
        // A rotation three times the smoothed one: the ring is slow, do not add to it.
        now += 3 * ROTATION;
        a.on_visit(Instant(now), false, true);
        assert_eq!(a.current(), before);
    }

    #[test]
    fn shrinks_on_loss_and_on_a_lost_token_down_to_the_floor() {
        let (mut a, mut now) = (Allowance::new(40, 50), 0);
        visits(&mut a, &mut now, 1, true, true);
        assert_eq!(a.current(), 30, "a quarter off");
        a.on_token_lost();
        assert_eq!(a.current(), 15, "halved");
        a.on_token_lost();
        assert_eq!(a.current(), 15, "once for one token");
        visits(&mut a, &mut now, 20, true, true);
        assert_eq!(a.current(), ALLOWANCE_MIN);
        a.on_token_lost();
        assert_eq!(a.current(), ALLOWANCE_MIN);
        // Loss gone, backlog still left after every visit: it grows again by one a visit.
        visits(&mut a, &mut now, 3, false, true);
        assert_eq!(a.current(), ALLOWANCE_MIN + 3);
    }

    #[test]
    fn same_inputs_same_allowance() {
        let run = || {
            let (mut a, mut now) = (Allowance::new(17, 50), 0);
            let mut seen = Vec::new();
            for i in 0..200u32 {
                now += ROTATION + u64::from(i % 7) * 10_000;
                a.on_visit(Instant(now), i % 13 == 0, i % 3 != 0);
                if i % 50 == 49 {
                    a.on_token_lost();
                }
                seen.push(a.current());
            }
            seen
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn a_small_window_bounds_floor_and_start() {
        let a = Allowance::new(17, 2);
        assert_eq!(a.current(), 2);
        let mut a = Allowance::new(1, 50);
        assert_eq!(a.current(), ALLOWANCE_MIN);
        a.on_token_lost();
        assert_eq!(a.current(), ALLOWANCE_MIN);
    }
}
