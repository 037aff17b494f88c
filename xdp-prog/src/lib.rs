//! xdp-prog: rotor's XDP steering program and its loader. The program (`bpf/xdp_steer.c`,
//! compiled by clang at build time and embedded in this crate) looks at each received frame's
//! Ethernet (one optional 802.1Q tag), IPv4 or IPv6 and UDP headers and redirects frames whose
//! UDP destination port is one of the cluster's ports to the AF_XDP socket of the receive queue
//! they arrived on; everything else, and everything it cannot parse, goes to the kernel untouched.
//! With the source filter on ([`SteerProgram::set_sources`]) only cluster-port frames from the
//! configured addresses (`sources`: every link of every node) are redirected; the others are
//! passed to the kernel or dropped, as [`UnknownSource`] says, and counted.
//! The loader loads it, keeps its maps (ports, sources, filter, AF_XDP sockets by queue, per-CPU
//! counters), attaches it in native or generic mode, replaces a stale copy left by a crashed run,
//! and detaches it; [`remove_stale`] detaches a copy nothing holds any more (`rotor xdp-remove`),
//! and [`edit_sources`] edits an attached copy's `sources` (a test's one-way link cut).
//! [`SteerMaps`] is the part a dataplane needs (its sockets into `xsks`, the `counters`), whether
//! from a program it loaded or from fds of one rotord loaded. It deliberately does nothing else:
//! no packet processing beyond steering and the source filter (no rewriting, answering or
//! validating rotor headers), and it creates no AF_XDP socket — those belong to the dataplane,
//! which only hands their fds to [`SteerMaps::insert_xsk`].

mod attach;
mod maps;
mod program;
mod sources;
mod stale;

pub use attach::{AttachMode, AttachedMode, Interface, LoadOptions, XdpProgram};
pub use maps::SteerMaps;
pub use program::{SteerProgram, XdpAction, XdpCounters};
pub use sources::{Source, SourceKey, SourceValue, UnknownSource};
pub use stale::{attached_programs, edit_sources, remove_stale, AttachedProgram, Holder};

/// Sends what libbpf prints (by default straight to stderr) to `tracing`, so that it reaches
/// the process's log like every other line: warnings as warnings, information as debug lines.
/// Once per process; libbpf's debug output (verifier chatter) stays off.
fn route_libbpf_output() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        fn print(level: libbpf_rs::PrintLevel, text: String) {
            let text = text.trim_end();
            match level {
                libbpf_rs::PrintLevel::Warn => tracing::warn!("{text}"),
                _ => tracing::debug!("{text}"),
            }
        }
        libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Info, print)));
    });
}

/// The program's function name, as the kernel reports it (`bpftool prog`, `ip link`): the
/// loader recognises a stale copy of itself by this name.
pub const PROGRAM_NAME: &str = "rotor_steer";

/// Name of the hash map of cluster UDP destination ports: key `u16` (host byte order), value `u8`.
pub const PORTS_MAP_NAME: &str = "ports";
/// Name of the XSKMAP of AF_XDP sockets: key `u32` receive queue index, value `u32` socket fd.
pub const XSKS_MAP_NAME: &str = "xsks";
/// Name of the hash map of the source filter's addresses: key [`SourceKey`], value
/// [`SourceValue`].
pub const SOURCES_MAP_NAME: &str = "sources";
/// Name of the one-entry array of the source filter's settings: key `u32` 0, value `u32`
/// ([`UnknownSource::raw`], 0: no filter).
pub const FILTER_MAP_NAME: &str = "filter";
/// Name of the per-CPU array of counters: key `u32` ([`Counter`] index), value `u64` per CPU.
pub const COUNTERS_MAP_NAME: &str = "counters";

/// How many cluster ports the `ports` map holds (`PORT_COUNT_MAX` in the C program).
pub const PORT_COUNT_MAX: usize = 16;
/// How many receive queues the `xsks` map covers (`QUEUE_COUNT_MAX` in the C program).
pub const QUEUE_COUNT_MAX: u32 = 256;
/// Most links of a node (corosync's `INTERFACE_MAX`): ring0_addr … ring7_addr.
pub const LINK_COUNT_MAX: usize = 8;
/// Most nodes of a nodelist (corosync's `PROCESSOR_COUNT_MAX` with knet).
pub const NODE_COUNT_MAX: usize = 384;
/// How many addresses the `sources` map holds (`SOURCE_COUNT_MAX` in the C program): every
/// address of every link of the largest nodelist.
pub const SOURCE_COUNT_MAX: usize = LINK_COUNT_MAX * NODE_COUNT_MAX;

/// Index of each counter in the `counters` map (`enum counter` in the C program).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Counter {
    /// A cluster frame handed to the AF_XDP socket of its queue.
    Redirected = 0,
    /// Parsed, not cluster traffic (another port, TCP, ARP, IPv6 extension headers, fragments).
    Passed = 1,
    /// Truncated or malformed headers: passed to the kernel.
    NotParsed = 2,
    /// A cluster frame on a queue without an AF_XDP socket: passed to the kernel.
    NoSocket = 3,
    /// A cluster-port frame from an address outside `sources`: passed to the kernel.
    UnknownSourcePassed = 4,
    /// A cluster-port frame from an address outside `sources`: dropped.
    UnknownSourceDropped = 5,
}

impl Counter {
    /// All counters, in map index order.
    pub const ALL: [Counter; 6] = [
        Counter::Redirected,
        Counter::Passed,
        Counter::NotParsed,
        Counter::NoSocket,
        Counter::UnknownSourcePassed,
        Counter::UnknownSourceDropped,
    ];

    /// The counter's name, as the dataplane publishes it (`stats.xdp.prog.<name>` in cmap,
    /// `outcome="<name>"` in the metrics) and `rotor status` shows it.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Redirected => "redirected",
            Counter::Passed => "passed",
            Counter::NotParsed => "not_parsed",
            Counter::NoSocket => "no_socket",
            Counter::UnknownSourcePassed => "unknown_source_passed",
            Counter::UnknownSourceDropped => "unknown_source_dropped",
        }
    }
}

/// Errors of the loader. Kernel errors keep libbpf's error (with its errno) as the source.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("no network interface named \"{0}\" in this network namespace")]
    NoSuchInterface(String),
    #[error("no network interface with index {0} in this network namespace")]
    NoSuchIfindex(u32),
    #[error("invalid cluster port list: {0}")]
    InvalidPorts(String),
    #[error("invalid source list: {0}")]
    InvalidSources(String),
    #[error(
        "{interface} runs the XDP program \"{name}\" (id {id}), which is not rotor's \
         ({PROGRAM_NAME}); rotor xdp-remove removes only rotor's own (detach another one with: \
         ip link set dev {interface} xdp off)"
    )]
    NotRotors {
        interface: String,
        id: u32,
        name: String,
    },
    #[error("{interface} has no XDP program attached")]
    NoProgram { interface: String },
    #[error(
        "{interface}: the XDP program {PROGRAM_NAME} (id {id}) is not stale: {holders} still          hold it or its maps; stop rotord (rotor shutdown, or systemctl stop rotor) and it          detaches its program itself"
    )]
    InUse {
        interface: String,
        id: u32,
        holders: String,
    },
    #[error("receive queue index {queue_index} is out of range (the xsks map has {QUEUE_COUNT_MAX} slots)")]
    QueueIndexOutOfRange { queue_index: u32 },
    #[error(
        "loading the XDP program into the kernel failed (it needs root, or CAP_BPF and \
         CAP_NET_ADMIN, and a kernel with BPF; libbpf printed the verifier log if any): {0}"
    )]
    Load(#[source] libbpf_rs::Error),
    #[error(
        "interface {interface} already runs the XDP program \"{name}\" (id {id}), which is \
         not rotor's; refusing to replace it (detach it first: ip link set dev {interface} xdp off)"
    )]
    ForeignProgram {
        interface: String,
        id: u32,
        name: String,
    },
    #[error("attaching the XDP program to {interface} in {mode} mode failed: {source}")]
    Attach {
        interface: String,
        mode: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error(
        "attaching the XDP program to {interface} failed in native mode ({native}) and in \
         generic mode ({generic})"
    )]
    AttachAuto {
        interface: String,
        native: libbpf_rs::Error,
        generic: libbpf_rs::Error,
    },
    #[error("inherited fd {fd} is not the \"{map}\" map of rotor's XDP program: {reason}")]
    InheritedMap {
        map: &'static str,
        fd: i32,
        reason: String,
    },
    #[error("{operation} failed: {source}")]
    Bpf {
        operation: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
}

impl XdpError {
    fn bpf(operation: &'static str) -> impl FnOnce(libbpf_rs::Error) -> XdpError {
        move |source| XdpError::Bpf { operation, source }
    }
}
