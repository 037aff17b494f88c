//! rotor-bench: the benchmarks that put rotor's performance claims on paper.
//!
//! - `vs-corosync` (`cargo xtask bench vs-corosync [--quick]`): Debian's Corosync 3 and rotor on
//!   the same network-namespace hosts in the same run, driven by the same CPG workloads
//!   (`rotor bench` for rotor, `csrc/cpg_bench.c` over libcpg for Corosync).
//! - `bench-rings` (`cargo xtask bench rings`): the latency of each ring on rotor's path — shm
//!   ring, AF_XDP, kernel UDP, token rotation, end-to-end agreed delivery.
//! - `capi` (`cargo xtask bench capi`): the C drop-in libcpg against the Rust client on one
//!   rotor cluster, with `--perf-stat` counting system calls and context switches per message.
//! - `sched` (vs-corosync's `--sched`): how long the daemons' wake-ups waited for a CPU, and
//!   what that CPU ran meanwhile, from `perf sched`.
//!
//! Both write a Markdown report with SVG plots under `bench/reports/` and their own block of
//! docs/BENCHMARKS.md. The pure parts (result lines, percentile ladders, SVG, report text) live
//! in this library and are unit-tested; the benches themselves are never tests and assert no time.

pub mod cluster;
pub mod cpu;
pub mod dist;
pub mod line;
pub mod perfstat;
pub mod report;
pub mod sched;
pub mod svg;
