//! Counters of everything the core does and drops; published later as cmap stats.srp.*.

use crate::wire::DropReason;

/// Monotonic counters. Drops are counted per reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub data_in: u64,
    pub data_out: u64,
    pub delivered: u64,
    pub tokens: u64,
    pub token_lost: u64,
    pub token_retransmits: u64,
    pub retransmitted: u64,
    pub retransmit_requests: u64,
    pub failed_to_receive: u64,
    pub gathers: u64,
    pub joins_sent: u64,
    pub joins_in: u64,
    pub consensus: u64,
    pub consensus_timeouts: u64,
    pub recoveries: u64,
    pub recovery_sent: u64,
    pub recovered: u64,
    pub rings_installed: u64,
    /// Old-ring frames not delivered in a transitional configuration: a departed member's
    /// frames after a gap, which may depend causally on the missing frame.
    pub withheld_past_gap: u64,
    /// Frames stored in a fresh buffer because their slot's old one was still borrowed (by a
    /// delivery not yet polled or a message waiting for its last fragment). Rare: a slot comes
    /// round again only `RETAINED_FRAMES_MAX` frames later.
    pub store_buffers_replaced: u64,
    /// Diagnostics not queued because `NOTICES_MAX` were waiting to be polled.
    pub notices_dropped: u64,
    /// Token visits on which this node claimed the whole window because its local receivers
    /// were behind (`Node::set_receivers_behind`).
    pub window_claimed: u64,
    /// Presences sent and taken (see `reach`).
    pub presences_sent: u64,
    pub presences_in: u64,
    /// Pieces of membership messages larger than a frame, sent and received.
    pub segments_out: u64,
    pub segments_in: u64,
    pub drop_truncated: u64,
    pub drop_bad_magic: u64,
    pub drop_bad_version: u64,
    pub drop_unknown_kind: u64,
    pub drop_foreign_cluster: u64,
    pub drop_sender_mismatch: u64,
    pub drop_own_frame: u64,
    pub drop_malformed: u64,
    pub drop_stale_ring: u64,
    pub drop_out_of_window: u64,
    pub drop_duplicate_token: u64,
    pub drop_duplicate: u64,
    pub drop_not_expected: u64,
    pub drop_config_mismatch: u64,
    /// Configuration summaries sent to nodes configured otherwise (at most one per node per
    /// `CONFIG_REPORT_INTERVAL_MS`).
    pub config_summaries_sent: u64,
}

impl Stats {
    pub fn drop(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::Truncated => &mut self.drop_truncated,
            DropReason::BadMagic => &mut self.drop_bad_magic,
            DropReason::BadVersion => &mut self.drop_bad_version,
            DropReason::UnknownKind => &mut self.drop_unknown_kind,
            DropReason::ForeignCluster => &mut self.drop_foreign_cluster,
            DropReason::SenderMismatch => &mut self.drop_sender_mismatch,
            DropReason::OwnFrame => &mut self.drop_own_frame,
            DropReason::Malformed => &mut self.drop_malformed,
            DropReason::StaleRing => &mut self.drop_stale_ring,
            DropReason::OutOfWindow => &mut self.drop_out_of_window,
            DropReason::DuplicateToken => &mut self.drop_duplicate_token,
            DropReason::Duplicate => &mut self.drop_duplicate,
            DropReason::NotExpected => &mut self.drop_not_expected,
            DropReason::ConfigMismatch => &mut self.drop_config_mismatch,
        };
        *counter += 1;
    }

    /// Every counter with its name, for publishing (cmap stats.srp.<name>).
    pub fn entries(&self) -> [(&'static str, u64); 43] {
        [
            ("frames_in", self.frames_in),
            ("frames_out", self.frames_out),
            ("data_in", self.data_in),
            ("data_out", self.data_out),
            ("delivered", self.delivered),
            ("tokens", self.tokens),
            ("token_lost", self.token_lost),
            ("token_retransmits", self.token_retransmits),
            ("retransmitted", self.retransmitted),
            ("retransmit_requests", self.retransmit_requests),
            ("failed_to_receive", self.failed_to_receive),
            ("gathers", self.gathers),
            ("joins_sent", self.joins_sent),
            ("joins_in", self.joins_in),
            ("consensus", self.consensus),
            ("consensus_timeouts", self.consensus_timeouts),
            ("recoveries", self.recoveries),
            ("recovery_sent", self.recovery_sent),
            ("recovered", self.recovered),
            ("rings_installed", self.rings_installed),
            ("withheld_past_gap", self.withheld_past_gap),
            ("store_buffers_replaced", self.store_buffers_replaced),
            ("notices_dropped", self.notices_dropped),
            ("window_claimed", self.window_claimed),
            ("presences_sent", self.presences_sent),
            ("presences_in", self.presences_in),
            ("segments_out", self.segments_out),
            ("segments_in", self.segments_in),
            ("drop_truncated", self.drop_truncated),
            ("drop_bad_magic", self.drop_bad_magic),
            ("drop_bad_version", self.drop_bad_version),
            ("drop_unknown_kind", self.drop_unknown_kind),
            ("drop_foreign_cluster", self.drop_foreign_cluster),
            ("drop_sender_mismatch", self.drop_sender_mismatch),
            ("drop_own_frame", self.drop_own_frame),
            ("drop_malformed", self.drop_malformed),
            ("drop_stale_ring", self.drop_stale_ring),
            ("drop_out_of_window", self.drop_out_of_window),
            ("drop_duplicate_token", self.drop_duplicate_token),
            ("drop_duplicate", self.drop_duplicate),
            ("drop_not_expected", self.drop_not_expected),
            ("drop_config_mismatch", self.drop_config_mismatch),
            ("config_summaries_sent", self.config_summaries_sent),
        ]
    }
}
