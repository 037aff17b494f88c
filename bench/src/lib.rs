//! rotor-bench: benchmarks and the side-by-side runs against Corosync. Not yet implemented
//! (issue 6); benchmarks report timings, tests never assert them.
