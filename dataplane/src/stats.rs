//! The dataplane's counters as one flat list of `key → u64`, published to rotord (which keeps
//! them as cmap `stats.<key>`). The endpoint's counters (traffic, drops, crypto, the core's and
//! the token rotations) are rotor-endpoint's; the transports add their own.

pub use rotor_endpoint::stats::{get, line, Entries, Rotations, Traffic, ROTATION_BUCKETS_US};
