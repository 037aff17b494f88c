//! rotor-faults: the fault campaign on real processes. Checker clients (`rotor-checker`, built
//! on rotor-client's CPG API) run on every node of a testbed cluster, multicast numbered and
//! checksummed messages and log every delivery and configuration change; the campaign applies
//! one fault at a time for a bounded time (loss, delay with reordering, duplication,
//! partitions, flapping, kills, pauses, restarts, a node with another key, a garbage flood),
//! heals it, measures how long traffic takes to flow everywhere again, and the checker tests
//! the logs against what CPG promises (`check`). `changes` runs the same checkers while the
//! cluster is changed at runtime (a node added and removed by reloads, the token timeout, a key
//! rotation, refused changes), `link_reload` while a reload adds and removes a link, `links`
//! while redundant links fail (`failover` times it from the logs). `soak` runs the checkers'
//! load with no fault for a bounded time and reports every membership change, each a false
//! one. Test infrastructure: no product crate depends on it.

pub mod campaign;
pub mod changes;
pub mod check;
pub mod failover;
pub mod link_reload;
pub mod links;
pub mod record;
pub mod relay;
pub mod soak;
