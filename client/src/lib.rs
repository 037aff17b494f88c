//! rotor-client: the Rust client library (CPG, cmap, quorum, cfg, SAM) and the `rotor` command.
//! Not yet implemented (issue 5).
