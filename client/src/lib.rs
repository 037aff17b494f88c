//! rotor-client: the Rust client library and the `rotor` command-line tool. Today it holds the
//! key generator (`keygen`); the CPG, cmap, quorum, cfg and SAM clients over ipc-shm come with
//! rotord (issue 5). It deliberately talks to the cluster only through rotord and the
//! dataplane's rings: it never opens cluster sockets itself.

pub mod keygen;
