//! rotor-control: the library behind the control process `rotord`, the slow path of a rotor
//! node. It reads and validates corosync.conf (`config`), holds the node's typed key/value
//! database (`cmap`), runs the daemon (`daemon`: supervision of the dataplane, the client
//! attach broker, cmap and cfg service), owns the XDP program when the transport is XDP
//! (`xdp`: attached once at start, its maps handed to every dataplane, detached on shutdown),
//! logs as logging{} says (`log`), schedules itself and the dataplane as system{} says
//! (`sched`) and drops privileges after set-up (`privs`); quorum and
//! votequorum come later. It deliberately stays off the packet fast path: nothing here touches
//! a frame, a shared ring or a socket of the cluster network, and nothing here is run per
//! message — the dataplane gets its settings from this crate once, at start-up or on a reload.

pub mod cmap;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod error;
pub mod log;
pub mod pidfile;
pub mod privs;
pub mod sched;
pub mod xdp;
