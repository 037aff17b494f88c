//! rotor-control: the library behind the control process `rotord`, the slow path of a rotor
//! node. It reads and validates corosync.conf (`config`) and holds the node's typed key/value
//! database (`cmap`); quorum, cfg, supervision of the dataplane and the client attach broker
//! come later. It deliberately stays off the packet fast path: nothing here touches a frame,
//! a shared ring or a socket of the cluster network, and nothing here is run per message —
//! the dataplane gets its settings from this crate once, at start-up or on a reload.

pub mod cmap;
pub mod config;
pub mod daemon;
pub mod log;
