//! Every bound of the core in one place: queues, windows and sets are sized
//! from these at start-up.

/// Most nodes in one ring (corosync's PROCESSOR_COUNT_MAX). Joins, commit tokens and presences
/// larger than a frame are cut into pieces (`wire::SegmentHdr`), so any frame size the settings
/// allow carries them for this many nodes.
pub const MEMBERS_MAX: usize = 384;
/// Most pieces one membership message is cut into (`wire::segments_for`).
pub const SEGMENTS_MAX: usize = 64;
/// Membership messages being reassembled at once, one per sender and kind; a piece of another
/// message when all are taken replaces the one least recently added to.
pub const REASSEMBLIES_MAX: usize = 3 * MEMBERS_MAX;
/// Broken pairs of nodes one connectivity notice lists; the rest are counted.
pub const BROKEN_PAIRS_REPORTED_MAX: usize = 16;
/// Steps of one search for the largest set of nodes that all hear each other (`reach`): enough
/// for an exact answer on any cluster of up to 64 nodes with a few broken pairs; a search that
/// runs out keeps the best set found so far (the same on every node: the search is
/// deterministic).
pub const CLIQUE_SEARCH_STEPS_MAX: u32 = 200_000;
/// Frames of one ring retained for delivery and retransmission. Flow control keeps the distance
/// between the newest stamped frame and the oldest frame not yet known safe below this.
pub const RETAINED_FRAMES_MAX: usize = 4096;
/// Largest `window_size`: a quarter of the retained frames, so a ring of slow receivers never
/// needs more than the retention holds.
pub const WINDOW_SIZE_MAX: u32 = (RETAINED_FRAMES_MAX / 4) as u32;
/// Most times the regular token's first retransmission timeout one retransmission waits
/// (`rto`: the wait doubles with each retransmission of the same token, up to this and to
/// token_retransmit).
pub const TOKEN_RTO_BACKOFF_MAX: u64 = 8;
/// Retransmission requests carried by one token (corosync uses 30).
pub const RTR_ENTRIES_MAX: usize = 64;
/// Largest application message (CPG): 1 MiB of payload, fragmented across frames.
pub const MESSAGE_SIZE_MAX: usize = 1 << 20;
/// Bytes of submitted, not yet sent messages a node queues before `submit` says "try again".
pub const SUBMIT_QUEUE_BYTES_MAX: usize = 8 << 20;
/// Longest CPG group name (corosync's CPG_MAX_NAME_LENGTH).
pub const GROUP_NAME_MAX: usize = 128;
/// Smallest and largest frame the core builds (bytes of core header and body).
pub const FRAME_SIZE_MIN: usize = 512;
pub const FRAME_SIZE_MAX: usize = 65_000;
/// Diagnostics (`Notice`) queued for the embedding; more are counted as `notices_dropped`.
pub const NOTICES_MAX: usize = 256;
/// Least time between two configuration summaries sent to one node configured otherwise, and
/// between two reports of one such node.
pub const CONFIG_REPORT_INTERVAL_MS: u32 = 5_000;
/// How long the node that asked for a runtime change waits for every member's answer before
/// it calls the change off (an ordered abort, so every member calls it off at one point).
pub const CHANGE_ROUND_TIMEOUT_MS: u32 = 15_000;
/// Runtime-change events queued for the embedding; more are dropped and counted.
pub const CHANGE_EVENTS_MAX: usize = 256;
