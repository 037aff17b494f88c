//! totem-core: the Totem single-ring ordering and membership protocol with extended virtual
//! synchrony (agreed and safe delivery, transitional and regular configurations), message
//! packing and fragmentation, the closed-process-group (CPG) service and the runtime-change
//! service (config reload, key rotation, kill, shutdown: `reconfig`), as one deterministic
//! sans-IO state machine. Inputs are `Node::handle_datagram(now, from, bytes)`,
//! `Node::handle_timeout(now)` and `Node::submit(request)`; outputs are `poll_transmit`,
//! `poll_event` and `poll_timeout`. It deliberately has no sockets, clock, threads or
//! randomness of its own (time and a seed come in as arguments), does no crypto (the layer
//! below authenticates datagrams and tells the core who sent them) and knows nothing of
//! addresses: destinations are node ids. `sessions` is CPG's local side, which the dataplane and
//! the simulator share: which attached process receives which event.

pub mod body;
pub mod config;
pub mod cpg;
mod flow;
pub mod limits;
pub mod node;
pub mod notice;
pub mod pack;
pub mod reach;
pub mod reconfig;
mod rto;
mod segment;
pub mod sessions;
pub mod srp;
pub mod stats;
mod store;
pub mod types;
pub mod votequorum;
pub mod wire;

pub use body::{Body, Payload};
pub use config::{ClusterShape, ConfigIdentity, SettingError, TotemSettings};
pub use cpg::{ChangeReason, GroupChange, ProcessId, Request, SubmitError};
pub use node::{cluster_hash, Delivery, Event, Node, NodeConfig, Transmit};
pub use notice::{GatherCause, Notice};
pub use reach::BrokenPair;
pub use reconfig::{ChangeError, ChangeEvent, ChangeKind, Outcome, Proposal, RoundId};
pub use sessions::{SessionId, SessionPhase, Sessions, Submit};
pub use srp::{ConfigChange, ConfigKind, State};
pub use stats::Stats;
pub use types::{Dest, Guarantee, Instant, NodeId, RingId};
