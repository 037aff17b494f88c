//! The cmap keys under which rotord describes the XDP program it attached (`runtime.xdp.*`),
//! written by rotord and read back by `rotor status`. The program's counters are the
//! dataplane's `stats.xdp.prog.<name>`, named by xdp-prog's `Counter::name`.

/// The prefix of every key below.
pub const RUNTIME_XDP_PREFIX: &str = "runtime.xdp.";
/// The interface the program is attached to (string).
pub const INTERFACE_KEY: &str = "runtime.xdp.interface";
/// `native` or `generic` (string).
pub const MODE_KEY: &str = "runtime.xdp.mode";
/// The program's name as the kernel shows it (string, `rotor_steer`).
pub const PROGRAM_KEY: &str = "runtime.xdp.program";
/// The kernel's id of the program, as `ip -d link` and `bpftool prog` show it (u32).
pub const PROG_ID_KEY: &str = "runtime.xdp.prog_id";
/// What the source filter does with cluster-port frames from outside the nodelist: `pass` or
/// `drop` (string; `rotor.xdp_unknown_source`).
pub const UNKNOWN_SOURCE_KEY: &str = "runtime.xdp.unknown_source";
/// How many addresses the source filter lets through to the dataplane (u32).
pub const SOURCES_KEY: &str = "runtime.xdp.sources";
/// The prefix of the program's counters in cmap (`stats.xdp.prog.<counter>`).
pub const COUNTERS_PREFIX: &str = "stats.xdp.prog.";
