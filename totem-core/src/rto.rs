//! The regular token's retransmission timeout, from measured token rotations: RFC 6298's
//! estimator (smoothed time and mean deviation, Karn's rule, doubling back-off) applied to the
//! time from passing the token on to getting it back, clamped between `token_retransmit_min`
//! and `token_retransmit`.
//!
//! Totem (TOCS 1995, §2) has the last holder send the token again when it does not come back
//! in time, and the receiver drop a copy it already has by the token's sequence number; how
//! long "in time" is does not matter to its guarantees. Corosync waits `token_retransmit`, a
//! share of the token loss timeout sized for failure detection (714 ms at the default token),
//! so a single lost token stalls the ring for that long although a rotation takes a fraction of
//! a millisecond. Waiting a few measured rotations instead recovers the token as soon as it is
//! clearly lost; the token loss timeout, which decides membership, is not touched.

use crate::limits::TOKEN_RTO_BACKOFF_MAX;
use crate::types::Instant;

const NS_PER_MS: u64 = 1_000_000;

/// The estimator of one node.
#[derive(Clone, Debug, Default)]
pub(crate) struct TokenRto {
    /// Smoothed rotation time and its mean deviation, nanoseconds (`None` before the first
    /// sample). Invariant: `rttvar_ns` is 0 while `srtt_ns` is `None`.
    srtt_ns: Option<u64>,
    rttvar_ns: u64,
    /// When this node last passed on a token whose return is a sample: not retransmitted since
    /// (Karn: a token that comes back after a retransmission may be either copy), and not one
    /// the representative may hold on an idle ring (its hold is not a rotation).
    sent_at: Option<Instant>,
    /// The timeout the running retransmission timer was armed with, and the one the token
    /// was first passed on with, nanoseconds.
    armed_ns: u64,
    first_ns: u64,
    /// The running wait is token_retransmit because the representative may hold the token.
    hold_wait: bool,
    /// The `resent` count of the token passed on at `sent_at`.
    sent_resent: u8,
}

impl TokenRto {
    /// The token was passed on now; `sample` says whether its return measures a rotation.
    /// Returns when to send it again (nanoseconds from now): the estimate, or `ceiling_ms` when
    /// there is none yet or the token may be held on purpose.
    pub(crate) fn on_forward(
        &mut self,
        now: Instant,
        sample: bool,
        resent: u8,
        floor_ms: u32,
        ceiling_ms: u32,
    ) -> u64 {
        self.sent_at = sample.then_some(now);
        self.sent_resent = resent;
        self.hold_wait = !sample;
        let ceiling = u64::from(ceiling_ms) * NS_PER_MS;
        self.armed_ns = if sample {
            self.timeout_ns(floor_ms, ceiling_ms)
        } else {
            ceiling
        };
        self.first_ns = self.armed_ns;
        self.armed_ns
    }

    /// The token came back now with `resent` as its count: its rotation is a sample if it is
    /// one (see `sent_at`) and no member sent it again on the way (the count it was passed on
    /// with). A rotation that waited out another hop's loss measures that member's wait, not
    /// a rotation: taken as samples, such waits raised this node's estimate, and with it the
    /// wait for a loss on its own hop, to several times the rotation under steady loss.
    pub(crate) fn on_token(&mut self, now: Instant, resent: u8) {
        self.hold_wait = false;
        let Some(sent) = self.sent_at.take() else {
            return;
        };
        if resent != self.sent_resent {
            return;
        }
        let r = now.0.saturating_sub(sent.0);
        match self.srtt_ns {
            None => {
                self.srtt_ns = Some(r);
                self.rttvar_ns = r / 2;
            }
            Some(srtt) => {
                // RFC 6298 §2.3: rttvar ← ¾ rttvar + ¼ |srtt − r|, srtt ← ⅞ srtt + ⅛ r.
                self.rttvar_ns = (3 * self.rttvar_ns + srtt.abs_diff(r)) / 4;
                self.srtt_ns = Some((7 * srtt + r) / 8);
            }
        }
    }

    /// The token was sent again: no sample from it, and the next wait is twice as long, up to
    /// `TOKEN_RTO_BACKOFF_MAX` times the first and at most `ceiling_ms`. Returns that wait,
    /// nanoseconds. The back-off is bounded by the first wait, not only by the ceiling: frames
    /// are lost at random here, not from congestion, and a token lost several times in a row
    /// under heavy loss would otherwise wait ever longer (1 + 2 + … + 64 ms after seven losses).
    pub(crate) fn on_retransmit(&mut self, ceiling_ms: u32) -> u64 {
        self.sent_at = None;
        self.hold_wait = false;
        let ceiling = u64::from(ceiling_ms) * NS_PER_MS;
        let most = self
            .first_ns
            .saturating_mul(TOKEN_RTO_BACKOFF_MAX)
            .min(ceiling);
        self.armed_ns = self.armed_ns.saturating_mul(2).clamp(1, most.max(1));
        self.armed_ns
    }

    /// A member asked for the token to be released: if the wait running is token_retransmit
    /// because the representative might hold the token, it will not now, so the wait becomes
    /// the measured one (returned, nanoseconds from now). `None`: nothing to change.
    pub(crate) fn on_hold_cancelled(&mut self, floor_ms: u32, ceiling_ms: u32) -> Option<u64> {
        if !std::mem::take(&mut self.hold_wait) {
            return None;
        }
        self.armed_ns = self.timeout_ns(floor_ms, ceiling_ms);
        self.first_ns = self.armed_ns;
        Some(self.armed_ns)
    }

    /// The ring is being left: a token passed on in it measures nothing any more.
    pub(crate) fn forget_sent(&mut self) {
        self.sent_at = None;
        self.hold_wait = false;
    }

    /// `srtt + 4 × rttvar` (RFC 6298 §2.3), at least `floor_ms` and at most `ceiling_ms`
    /// (the floor yields to the ceiling); the ceiling while nothing was measured.
    pub(crate) fn timeout_ns(&self, floor_ms: u32, ceiling_ms: u32) -> u64 {
        let ceiling = u64::from(ceiling_ms) * NS_PER_MS;
        let floor = (u64::from(floor_ms) * NS_PER_MS).min(ceiling);
        match self.srtt_ns {
            None => ceiling,
            Some(srtt) => srtt
                .saturating_add(self.rttvar_ns.saturating_mul(4))
                .clamp(floor, ceiling),
        }
    }

    /// The smoothed rotation time, nanoseconds, once measured.
    #[cfg(test)]
    pub(crate) fn srtt_ns(&self) -> Option<u64> {
        self.srtt_ns
    }

    pub(crate) fn check_invariants(&self) {
        assert!(
            self.srtt_ns.is_some() || self.rttvar_ns == 0,
            "a rotation deviation without a rotation estimate"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: u64 = 1_000;

    /// Feeds `rotations` of `r_ns` each.
    fn steady(rto: &mut TokenRto, r_ns: u64, rotations: u64) -> Instant {
        let mut now = Instant(0);
        for _ in 0..rotations {
            rto.on_forward(now, true, 0, 1, 700);
            now = Instant(now.0 + r_ns);
            rto.on_token(now, 0);
        }
        now
    }

    #[test]
    fn without_a_measurement_the_timeout_is_token_retransmit() {
        let rto = TokenRto::default();
        assert_eq!(rto.timeout_ns(1, 700), 700 * NS_PER_MS);
    }

    #[test]
    fn steady_rotations_give_the_floor_and_slow_ones_their_own_time() {
        let mut rto = TokenRto::default();
        steady(&mut rto, 200 * US, 50);
        // 200 µs rotations with no deviation: below the 1 ms floor.
        assert_eq!(rto.timeout_ns(1, 700), NS_PER_MS);
        let mut slow = TokenRto::default();
        steady(&mut slow, 30 * NS_PER_MS, 50);
        let t = slow.timeout_ns(1, 700);
        assert!((30 * NS_PER_MS..40 * NS_PER_MS).contains(&t), "{t}");
        // Never above the ceiling, and the floor yields to it.
        assert_eq!(slow.timeout_ns(1, 20), 20 * NS_PER_MS);
        assert_eq!(rto.timeout_ns(5, 2), 2 * NS_PER_MS);
    }

    #[test]
    fn a_retransmitted_or_possibly_held_token_is_no_sample_and_retransmissions_back_off() {
        let mut rto = TokenRto::default();
        let now = steady(&mut rto, 200 * US, 20);
        let before = rto.srtt_ns();
        assert_eq!(rto.on_forward(now, true, 0, 1, 700), NS_PER_MS);
        assert_eq!(rto.on_retransmit(700), 2 * NS_PER_MS);
        assert_eq!(rto.on_retransmit(700), 4 * NS_PER_MS);
        assert_eq!(rto.on_retransmit(700), 8 * NS_PER_MS);
        assert_eq!(
            rto.on_retransmit(700),
            TOKEN_RTO_BACKOFF_MAX * NS_PER_MS,
            "the back-off stops at its bound"
        );
        rto.on_token(Instant(now.0 + 500 * NS_PER_MS), 0);
        assert_eq!(
            rto.srtt_ns(),
            before,
            "Karn: no sample across a retransmission"
        );
        // A token the representative may hold waits token_retransmit and measures nothing.
        assert_eq!(rto.on_forward(now, false, 0, 1, 700), 700 * NS_PER_MS);
        rto.on_token(Instant(now.0 + 500 * NS_PER_MS), 0);
        assert_eq!(rto.srtt_ns(), before);
        // A hold cancel turns a wait for a possible hold into the measured one, once.
        rto.on_forward(now, false, 0, 1, 700);
        assert_eq!(rto.on_hold_cancelled(1, 700), Some(NS_PER_MS));
        assert_eq!(rto.on_hold_cancelled(1, 700), None);
        // Back-off never goes above the ceiling.
        rto.on_forward(now, false, 0, 1, 700);
        for _ in 0..20 {
            rto.on_retransmit(700);
        }
        assert_eq!(rto.on_retransmit(700), 700 * NS_PER_MS);
        // A rotation that some member's retransmission ended (the token comes back with
        // another count than it left with) measured that member's wait: no sample.
        let rotation = |rto: &mut TokenRto, left_with: u8, came_back_with: u8| {
            rto.on_forward(now, true, left_with, 1, 700);
            rto.on_token(Instant(now.0 + 50 * NS_PER_MS), came_back_with);
            rto.srtt_ns()
        };
        assert_eq!(
            rotation(&mut rto, 3, 4),
            before,
            "no sample across another's retransmission"
        );
        assert_ne!(
            rotation(&mut rto, 4, 4),
            before,
            "a rotation nobody retransmitted is a sample"
        );
    }
}
