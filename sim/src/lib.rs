//! rotor-sim: a seeded, deterministic simulator that drives many totem-core nodes through a
//! simulated network with loss, duplication, reordering, delay, partitions and heals, crashes
//! and restarts, and long pauses, while application processes join and leave groups and
//! multicast with both guarantees through the fan-out the dataplane runs (`apps`). Every run is
//! checked for the EVS properties of what nodes delivered (`check`), for what each process
//! received (`check_apps`) and, with votequorum on every node, for split brain and the quorum
//! options' rules (`quorum`).
//! It deliberately contains no protocol logic: it runs the production core, and every random
//! choice comes from the seed, so a failing seed replays exactly.

pub mod apps;
pub mod check;
pub mod check_apps;
pub mod net;
pub mod quorum;
pub mod reach_check;
pub mod rng;
pub mod world;

pub use quorum::{QdeviceSim, QuorumPlan, QuorumReport};
pub use world::{
    run, run_with_quorum, Action, Faults, RunReport, SimConfig, Stall, When, APP_GAP_US_BUSY,
    LOSS_START_MS,
};
