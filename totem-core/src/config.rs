//! The totem{} timers and windows of corosync.conf(5), with corosync's names and defaults, and
//! their validation.

use crate::limits::{FRAME_SIZE_MAX, FRAME_SIZE_MIN, MEMBERS_MAX, WINDOW_SIZE_MAX};
use crate::wire;

/// Protocol parameters. Times are milliseconds, as in corosync.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotemConfig {
    /// Token loss timeout before `token_coefficient` is applied (corosync 3 default 3000).
    pub token_ms: u32,
    /// Percent of the token timeout after which a missing token is reported (corosync's
    /// `token_warning`, default 75; 0 = never). Only a diagnostic: the protocol is unchanged.
    pub token_warning_percent: u32,
    /// Added to `token_ms` for each node beyond two (default 650).
    pub token_coefficient_ms: u32,
    /// Token retransmissions before the token is declared lost (default 4).
    pub token_retransmits_before_loss_const: u32,
    /// Time after sending the token before it is sent again; 0 = derived as corosync does,
    /// token / (token_retransmits_before_loss_const + 0.2).
    pub token_retransmit_ms: u32,
    /// How long an idle ring's token is held; 0 = derived: 80% of token_retransmit.
    pub hold_ms: u32,
    /// Interval between join messages in the gather state (default 50).
    pub join_ms: u32,
    /// Time to reach consensus before a new round; 0 = derived: 1.2 × token.
    pub consensus_ms: u32,
    /// Interval at which a ring's representative looks for other rings (default 200).
    pub merge_ms: u32,
    /// Interval for re-checking a failed link (default 1000); single-link rings only record it.
    pub downcheck_ms: u32,
    /// Token rotations a node may keep asking for the same missing message before it gives up
    /// and re-forms the ring without the nodes it cannot hear (default 2500).
    pub fail_recv_const: u32,
    /// Idle token rotations before the hold timer is used (default 30).
    pub seqno_unchanged_const: u32,
    /// Frames the whole ring may send in one token rotation (default 50).
    pub window_size: u32,
    /// Frames one node may send per token visit (default 17).
    pub max_messages: u32,
    /// Upper bound of a random delay before sending a join, 0 = none (default 0).
    pub send_join_ms: u32,
    /// Token visits a message must be seen missing before it is requested (default 5).
    pub miss_count_const: u32,
    /// Bytes of core header and body in one datagram (the transport's payload minus crypto).
    pub frame_size: usize,
    /// Number of nodes in the nodelist, for the token coefficient (0 = no nodelist).
    pub nodelist_count: u32,
}

impl Default for TotemConfig {
    fn default() -> Self {
        TotemConfig {
            token_ms: 3000,
            token_warning_percent: 75,
            token_coefficient_ms: 650,
            token_retransmits_before_loss_const: 4,
            token_retransmit_ms: 0,
            hold_ms: 0,
            join_ms: 50,
            consensus_ms: 0,
            merge_ms: 200,
            downcheck_ms: 1000,
            fail_recv_const: 2500,
            seqno_unchanged_const: 30,
            window_size: 50,
            max_messages: 17,
            send_join_ms: 0,
            miss_count_const: 5,
            frame_size: 1400,
            nodelist_count: 0,
        }
    }
}

/// A totem{} value that cannot work, with the corosync.conf key it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("totem.{key}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

fn err(key: &'static str, reason: String) -> ConfigError {
    ConfigError { key, reason }
}

/// The timers in effect once derived values are filled in, all in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    pub token_ms: u32,
    pub token_retransmit_ms: u32,
    pub hold_ms: u32,
    pub join_ms: u32,
    pub consensus_ms: u32,
    pub merge_ms: u32,
}

impl TotemConfig {
    /// The token timeout in effect: `token + (nodes - 2) × token_coefficient` when the
    /// nodelist has three or more nodes (corosync.conf(5), "token_coefficient").
    pub fn effective_token_ms(&self) -> u32 {
        let extra = self.nodelist_count.saturating_sub(2);
        self.token_ms
            .saturating_add(extra.saturating_mul(self.token_coefficient_ms))
    }

    /// Derived timers, as corosync computes them when they are not set explicitly.
    pub fn timers(&self) -> Timers {
        let token_ms = self.effective_token_ms();
        let token_retransmit_ms = if self.token_retransmit_ms != 0 {
            self.token_retransmit_ms
        } else {
            // token / (retransmits_before_loss_const + 0.2), in integer arithmetic.
            ((u64::from(token_ms) * 10)
                / (u64::from(self.token_retransmits_before_loss_const) * 10 + 2)) as u32
        };
        let hold_ms = if self.hold_ms != 0 {
            self.hold_ms
        } else {
            (token_retransmit_ms * 8 / 10).max(1)
        };
        let consensus_ms = if self.consensus_ms != 0 {
            self.consensus_ms
        } else {
            (u64::from(token_ms) * 12 / 10) as u32
        };
        Timers {
            token_ms,
            token_retransmit_ms: token_retransmit_ms.max(1),
            hold_ms,
            join_ms: self.join_ms,
            consensus_ms,
            merge_ms: self.merge_ms,
        }
    }

    /// Checks every value and their relations; the first problem is returned.
    pub fn validate(&self) -> Result<Timers, ConfigError> {
        if self.token_ms == 0 {
            return Err(err("token", "must be at least 1 ms".into()));
        }
        if self.token_warning_percent > 100 {
            return Err(err(
                "token_warning",
                format!(
                    "must be between 0 (off) and 100 percent of the token timeout, got {}",
                    self.token_warning_percent
                ),
            ));
        }
        if self.token_retransmits_before_loss_const == 0 {
            return Err(err(
                "token_retransmits_before_loss_const",
                "must be at least 1".into(),
            ));
        }
        if self.join_ms == 0 {
            return Err(err("join", "must be at least 1 ms".into()));
        }
        if self.merge_ms == 0 {
            return Err(err("merge", "must be at least 1 ms".into()));
        }
        if self.window_size == 0 || self.window_size > WINDOW_SIZE_MAX {
            return Err(err(
                "window_size",
                format!(
                    "must be between 1 and {WINDOW_SIZE_MAX}, got {}",
                    self.window_size
                ),
            ));
        }
        if self.max_messages == 0 || self.max_messages > self.window_size {
            return Err(err(
                "max_messages",
                format!(
                    "must be between 1 and window_size ({}), got {}",
                    self.window_size, self.max_messages
                ),
            ));
        }
        if self.fail_recv_const == 0 {
            return Err(err("fail_recv_const", "must be at least 1".into()));
        }
        if self.seqno_unchanged_const == 0 {
            return Err(err("seqno_unchanged_const", "must be at least 1".into()));
        }
        if self.frame_size < FRAME_SIZE_MIN || self.frame_size > FRAME_SIZE_MAX {
            return Err(err(
                "netmtu",
                format!(
                    "leaves {} bytes per frame; must be between {FRAME_SIZE_MIN} and {FRAME_SIZE_MAX}",
                    self.frame_size
                ),
            ));
        }
        let members = (self.nodelist_count as usize).clamp(1, MEMBERS_MAX);
        if self.nodelist_count as usize > MEMBERS_MAX {
            return Err(err(
                "nodelist",
                format!(
                    "has {} nodes; at most {MEMBERS_MAX} are supported",
                    self.nodelist_count
                ),
            ));
        }
        let needed = wire::commit_size(members).max(wire::join_size(members, members));
        if needed > self.frame_size {
            return Err(err(
                "netmtu",
                format!(
                    "a {members}-node membership message needs {needed} bytes but a frame holds {}; \
                     raise netmtu (jumbo frames) or use fewer nodes",
                    self.frame_size
                ),
            ));
        }
        let t = self.timers();
        if t.token_retransmit_ms >= t.token_ms {
            return Err(err(
                "token_retransmit",
                format!(
                    "({} ms) must be less than token ({} ms)",
                    t.token_retransmit_ms, t.token_ms
                ),
            ));
        }
        if t.hold_ms >= t.token_retransmit_ms {
            return Err(err(
                "hold",
                format!(
                    "({} ms) must be less than token_retransmit ({} ms)",
                    t.hold_ms, t.token_retransmit_ms
                ),
            ));
        }
        if u64::from(t.consensus_ms) * 10 < u64::from(t.token_ms) * 12 {
            return Err(err(
                "consensus",
                format!(
                    "({} ms) must be at least 1.2 × token ({} ms)",
                    t.consensus_ms, t.token_ms
                ),
            ));
        }
        if t.join_ms >= t.consensus_ms {
            return Err(err(
                "join",
                format!(
                    "({} ms) must be less than consensus ({} ms)",
                    t.join_ms, t.consensus_ms
                ),
            ));
        }
        if self.send_join_ms >= t.consensus_ms {
            return Err(err(
                "send_join",
                format!(
                    "({} ms) must be less than consensus ({} ms)",
                    self.send_join_ms, t.consensus_ms
                ),
            ));
        }
        Ok(t)
    }
}
