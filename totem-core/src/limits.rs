//! Every bound of the core in one place: queues, windows and sets are sized
//! from these at start-up.

/// Most nodes in one ring (corosync's PROCESSOR_COUNT_MAX). Joins and commit tokens must also fit
/// in one frame of the transport: see `TotemSettings::validate`.
pub const MEMBERS_MAX: usize = 384;
/// Frames of one ring retained for delivery and retransmission. Flow control keeps the distance
/// between the newest stamped frame and the oldest frame not yet known safe below this.
pub const RETAINED_FRAMES_MAX: usize = 4096;
/// Largest `window_size`: a quarter of the retained frames, so a ring of slow receivers never
/// needs more than the retention holds.
pub const WINDOW_SIZE_MAX: u32 = (RETAINED_FRAMES_MAX / 4) as u32;
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
