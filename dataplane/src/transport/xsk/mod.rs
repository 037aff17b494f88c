//! The AF_XDP provider: xdp-prog steers the cluster's UDP port into one AF_XDP socket per served
//! receive queue (xsk-rs: UMEM, fill/completion/RX/TX rings); frames are parsed and built here
//! (`frame`), destination MACs come from the kernel neighbour table (`neigh`).
//!
//! Per queue: one UMEM of `frames_per_queue` frames (4 KiB each), the first half lent to the
//! kernel through the fill ring for reception, the second half a free list for transmission;
//! every ring is half the frame count, so a ring is never fuller than its frames. One queue's
//! sockets never share a UMEM with another's (simple, and zero-copy drivers want per-queue
//! memory anyway).
//!
//! - **RX** (`recv_batch`): up to [`RX_BATCH`] descriptors per queue are taken from the RX
//!   ring, each frame is parsed in place and its UDP payload handed to the caller as a mutable
//!   slice of UMEM (opened in place by the runner, never copied), then the whole batch goes
//!   back on the fill ring (with a wake-up when the kernel asks for one); frames the ring
//!   cannot take yet — the kernel publishes its progress through the fill ring lazily — wait
//!   in a per-queue list and are offered again on every receive (`fill_deferred`).
//! - **TX** (`send_to`): a free frame is taken, the payload written at its header offset, the
//!   headers built around it, and the descriptor put on the TX ring; `flush` kicks the kernel
//!   (`sendto`, repeated while the kernel keeps making progress: copy mode sends 32 frames per
//!   kick) and reaps the completion ring into the free list. No free frame → `Ok(false)`,
//!   counted as `tx_ring_full`.
//! - **Frames larger than one UMEM frame** (multi-buffer, [`XskConfig::frame_bytes_max`] above
//!   [`UMEM_FRAME_DATA_BYTES`]): the sockets are bound with `XDP_USE_SG`. A received frame
//!   spread over several descriptors is copied together (`chain::Gather`, across batches if a
//!   batch ends inside it) before it is parsed; its descriptors go back to the fill ring like
//!   any other; a chain longer than the socket was set up for is dropped and counted
//!   (`drops.chain_malformed`). A frame to send is built in a scratch buffer and copied into as
//!   many free frames as it needs, all put on the TX ring at once or none (libxdp reserves
//!   all or nothing), never half. Single-descriptor frames take the in-place path either way;
//!   without the need the sockets are bound as before, without `XDP_USE_SG`.
//! - **Bind**: zero-copy first, copy mode when the driver refuses (veth, most virtual NICs),
//!   always with need_wakeup; libxdp's own program loading is inhibited (its dispatcher fails on
//!   veth with EPERM, and xdp-prog is ours), so the socket fd is put into xdp-prog's `xsks` map.
//! - **Program**: [`XskTransport::open`] loads and attaches xdp-prog itself (a dataplane started
//!   by hand); [`XskTransport::open_inherited`] uses the `xsks` and `counters` maps of the
//!   program rotord loaded and attached ([`xdp_prog::SteerMaps`]), and neither loads nor
//!   detaches anything.
//! - **Drop**: sockets and UMEMs are released first (the kernel then removes them from the
//!   `xsks` map), then a program this transport loaded is detached (field order).
//!
//! Not done yet: several queues sharing one UMEM, busy polling (`SO_BUSY_POLL`),
//! TX metadata/checksum offload.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use xdp_prog::{AttachMode, AttachedMode, SteerMaps, XdpCounters, XdpError, XdpProgram};

mod chain;
mod queue;

use chain::{Step, CHAIN_MALFORMED};
use queue::{bind_queue, socket_err, Queue};

use crate::transport::frame::{self, Addressing};
use crate::transport::mcast::Multicast;
use crate::transport::neigh::{self, LinkInfo, NeighCache, NeighCounters};

/// Descriptors taken from one RX ring per `recv_batch`, so one busy queue cannot starve timers.
pub const RX_BATCH: usize = 64;
/// Bytes of one UMEM frame (libxdp's default chunk, one page).
pub const UMEM_FRAME_BYTES: u32 = 4096;
/// Bytes of a UMEM frame the kernel writes a packet into and reads one from: the frame less
/// the XDP program's headroom (`XDP_PACKET_HEADROOM`, linux/bpf.h; no headroom of our own). A
/// frame on the wire larger than this travels as a chain of descriptors (multi-buffer).
pub const UMEM_FRAME_DATA_BYTES: usize = UMEM_FRAME_BYTES as usize - 256;
/// Most descriptors of one frame: the kernel's copy-mode limit (`MAX_SKB_FRAGS`, 17 by
/// default, fragments after the first buffer: 18 in all, of which we use 17 so a kernel
/// built with one fewer still takes every chain). 17 × 3840 bytes: any frame up to 65,280.
pub const FRAME_PARTS_MAX: usize = 17;
/// Most kicks of the TX ring per `flush` (copy mode moves 32 frames per kick).
const TX_KICKS_MAX: usize = 64;

/// What to open.
#[derive(Debug, Clone)]
pub struct XskConfig {
    /// The interface that holds `bind`'s address.
    pub interface: String,
    /// The node's address and cluster port.
    pub bind: SocketAddr,
    /// Receive queues to serve, one socket each (queue 0 is enough on veth).
    pub queues: Vec<u32>,
    /// How [`XskTransport::open`] attaches the program it loads (unused with inherited maps).
    pub attach: AttachMode,
    /// UMEM frames per queue, a power of two ≥ 2 × [`RX_BATCH`]: half for RX, half for TX.
    pub frames_per_queue: u32,
    /// The cluster's multicast group, when it multicasts: frames to it are accepted, and sent
    /// to its multicast MAC with its TTL.
    pub multicast: Option<Multicast>,
    /// `None`: zero-copy where the driver takes it, copy mode otherwise. `Some(mode)`: that
    /// mode only, or fail (hwtest requires zero-copy; tests can force copy mode).
    pub bind_mode: Option<BindMode>,
    /// The largest frame on the wire to carry, Ethernet header included (netmtu + 14). Above
    /// [`UMEM_FRAME_DATA_BYTES`] the sockets are bound with `XDP_USE_SG` and such frames
    /// travel as chains of up to [`FRAME_PARTS_MAX`] descriptors.
    pub frame_bytes_max: usize,
}

impl XskConfig {
    pub fn new(interface: impl Into<String>, bind: SocketAddr) -> XskConfig {
        XskConfig {
            interface: interface.into(),
            bind,
            queues: vec![0],
            attach: AttachMode::Auto,
            frames_per_queue: 2048,
            multicast: None,
            bind_mode: None,
            frame_bytes_max: UMEM_FRAME_DATA_BYTES,
        }
    }

    /// Descriptors one frame of `frame_bytes_max` takes, at most [`FRAME_PARTS_MAX`]: 1 binds
    /// single-buffer sockets.
    pub fn frame_parts_max(&self) -> usize {
        chain::parts(self.frame_bytes_max, UMEM_FRAME_DATA_BYTES).min(FRAME_PARTS_MAX)
    }
}

/// How the sockets are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// The NIC DMAs straight into the UMEM.
    ZeroCopy,
    /// The kernel copies frames between its buffers and the UMEM (veth, generic XDP).
    Copy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        })
    }
}

/// Why the AF_XDP provider could not start.
#[derive(Debug)]
pub enum XskError {
    /// The interface or its addresses could not be read, or it does not hold the address.
    Interface(String),
    /// The XDP program could not be loaded or attached, or its maps updated.
    Program(XdpError),
    /// A UMEM or socket could not be created on a queue.
    Socket { queue: u32, reason: String },
    /// The netlink socket for the neighbour table.
    Neigh(io::Error),
}

impl fmt::Display for XskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XskError::Interface(s) => write!(f, "{s}"),
            XskError::Program(e) => write!(f, "{e}"),
            XskError::Socket { queue, reason } => {
                write!(f, "AF_XDP socket on queue {queue}: {reason}")
            }
            XskError::Neigh(e) => write!(f, "neighbour table: {e}"),
        }
    }
}

impl std::error::Error for XskError {}

/// Counters of the provider (the XDP program's own are in [`XskTransport::xdp_counters`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct XskCounters {
    pub frames_in: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub bytes_out: u64,
    /// `send_to` found no free TX frame.
    pub tx_ring_full: u64,
    /// `sendto` kicks of a TX ring (every flush in copy mode; with need_wakeup in zero-copy
    /// mode only when the driver asks).
    pub tx_kicks: u64,
    /// Wake-ups of the kernel after refilling a fill ring (only when it asks: need_wakeup).
    pub fill_wakeups: u64,
    /// Received frames the fill ring could not take back at once (retried on the next
    /// receive; see `Queue::refill`), summed over attempts.
    pub fill_deferred: u64,
    /// Received or unsendable frames dropped, by reason (`frame_*` from `ParseError::reason`,
    /// `wrong_destination`, `neigh_unresolved`, `frame_too_large`, `chain_malformed`).
    pub drops: BTreeMap<&'static str, u64>,
}

impl XskCounters {
    fn drop(&mut self, reason: &'static str) {
        *self.drops.entry(reason).or_insert(0) += 1;
    }

    /// Counts a refused receive chain; logs the 1st, 2nd, 4th, 8th… so a stream of them
    /// cannot flood the log (no clock on the packet path).
    fn drop_chain(&mut self, interface: &str, queue: u32, parts_max: usize) {
        self.drop(CHAIN_MALFORMED);
        let n = self.dropped(CHAIN_MALFORMED);
        if n.is_power_of_two() {
            tracing::warn!(
                "{interface} queue {queue}: dropped a received frame spread over more than \
                 {parts_max} UMEM frames or {} bytes ({n} so far, counted in \
                 stats.xdp.drops.{CHAIN_MALFORMED})",
                parts_max * UMEM_FRAME_DATA_BYTES
            );
        }
    }

    pub fn dropped(&self, reason: &str) -> u64 {
        self.drops.get(reason).copied().unwrap_or(0)
    }
}

/// Where the steering program comes from.
enum Steering {
    /// Loaded and attached by this transport; detached when it drops.
    Owned(XdpProgram),
    /// Loaded and attached by rotord, which keeps it across dataplane restarts and detaches it
    /// itself: this process holds only the two maps it uses.
    Inherited(SteerMaps),
}

impl Steering {
    fn maps(&self) -> &SteerMaps {
        match self {
            Steering::Owned(p) => p.maps(),
            Steering::Inherited(m) => m,
        }
    }

    fn mode(&self) -> Option<AttachedMode> {
        match self {
            Steering::Owned(p) => Some(p.mode()),
            Steering::Inherited(_) => None,
        }
    }

    /// `native XDP`, `generic XDP`, or whose program it is when not ours.
    fn describe(&self) -> String {
        match self {
            Steering::Owned(p) => format!("{} XDP", p.mode()),
            Steering::Inherited(_) => "XDP program inherited from rotord".to_owned(),
        }
    }
}

/// The AF_XDP transport. Field order is drop order: sockets and UMEMs go before the program.
pub struct XskTransport {
    queues: Vec<Queue>,
    program: Steering,
    neigh: NeighCache,
    link: LinkInfo,
    local: SocketAddr,
    bind_mode: BindMode,
    /// An epoll set of every queue's socket, when there is more than one.
    epoll: Option<OwnedFd>,
    counters: XskCounters,
    ip_id: u16,
    tx_next: usize,
    multicast: Option<Group>,
    /// The interface's MTU (largest IP packet), read at open.
    link_mtu: u32,
    /// Descriptors one frame may take ([`XskConfig::frame_parts_max`]); 1: single-buffer
    /// sockets.
    frame_parts_max: usize,
}

/// The multicast group a cluster sends to.
struct Group {
    m: Multicast,
    /// The group's Ethernet address ([`frame::multicast_mac`]).
    mac: frame::Mac,
    /// Holds the membership on the interface, so the NIC's MAC filter admits the group's
    /// frames and the kernel answers IGMP/MLD queries for it; nothing is read from it.
    _member: UdpSocket,
}

impl fmt::Debug for XskTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskTransport")
            .field("interface", &self.link.name)
            .field("local", &self.local)
            .field("bind_mode", &self.bind_mode)
            .field("attach_mode", &self.program.mode())
            .field("owns_program", &self.owns_program())
            .field(
                "queues",
                &self.queues.iter().map(|q| q.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl XskTransport {
    /// Loads and attaches xdp-prog on `cfg.interface` with `cfg.bind`'s port as the cluster
    /// port, binds one socket per queue (zero-copy, else copy mode) and registers it in the
    /// program's `xsks` map. Acts on the calling thread's network namespace. Needs root (or
    /// CAP_NET_ADMIN + CAP_BPF + CAP_NET_RAW). Dropping the transport detaches the program.
    pub fn open(cfg: &XskConfig) -> Result<XskTransport, XskError> {
        XskTransport::open_with(cfg, |link| {
            XdpProgram::load(link.ifindex, &[cfg.bind.port()], cfg.attach)
                .map(Steering::Owned)
                .map_err(XskError::Program)
        })
    }

    /// Like [`XskTransport::open`], on a program someone else (rotord) loaded and attached to
    /// `cfg.interface` with the cluster port: the sockets go into its `xsks` map, the
    /// counters come from its `counters` map, and nothing is loaded or detached here. Needs
    /// CAP_NET_RAW (and CAP_BPF for the map update on kernels before 6.5).
    pub fn open_inherited(cfg: &XskConfig, maps: SteerMaps) -> Result<XskTransport, XskError> {
        XskTransport::open_with(cfg, |_| Ok(Steering::Inherited(maps)))
    }

    fn open_with(
        cfg: &XskConfig,
        steering: impl FnOnce(&LinkInfo) -> Result<Steering, XskError>,
    ) -> Result<XskTransport, XskError> {
        let link = neigh::link_by_name(&cfg.interface)
            .map_err(|e| XskError::Interface(format!("interface {}: {e}", cfg.interface)))?;
        if !link.addrs.contains(&cfg.bind.ip()) {
            return Err(XskError::Interface(format!(
                "interface {} does not hold {}",
                link.name,
                cfg.bind.ip()
            )));
        }
        if cfg.queues.is_empty() {
            return Err(XskError::Interface("no receive queue to serve".into()));
        }
        let link_mtu = interface_mtu(&link.name)
            .map_err(|e| XskError::Interface(format!("interface {}: MTU: {e}", link.name)))?;
        let frame_parts_max = cfg.frame_parts_max();
        let program = steering(&link)?;
        let mut queues = Vec::with_capacity(cfg.queues.len());
        let mut bind_mode = cfg.bind_mode.unwrap_or(BindMode::ZeroCopy);
        for &id in &cfg.queues {
            let q = match bind_queue(cfg, id, cfg.bind_mode.unwrap_or(BindMode::ZeroCopy)) {
                Ok(q) => q,
                Err(e) if cfg.bind_mode.is_some() => {
                    return Err(socket_err(id)(format!("{bind_mode} mode: {e}")));
                }
                Err(zc) => {
                    let q = bind_queue(cfg, id, BindMode::Copy).map_err(|copy| {
                        socket_err(id)(format!("zero-copy: {zc}; copy mode: {copy}"))
                    })?;
                    tracing::info!(
                        "{} queue {id}: AF_XDP zero-copy bind refused ({zc}); bound in copy mode",
                        link.name
                    );
                    bind_mode = BindMode::Copy;
                    q
                }
            };
            tracing::debug!(
                "{} queue {id}: AF_XDP socket bound in {bind_mode} mode, {} UMEM frames of 4 \
                 KiB, rings of {}, {}",
                link.name,
                cfg.frames_per_queue,
                cfg.frames_per_queue / 2,
                if frame_parts_max > 1 {
                    format!("multi-buffer (frames of up to {frame_parts_max} UMEM frames)")
                } else {
                    "single-buffer".to_owned()
                }
            );
            // SAFETY: the socket's fd is open for as long as `q` (which holds the socket) lives,
            // and the map keeps its own reference.
            let fd = unsafe { BorrowedFd::borrow_raw(q.rx.fd().as_raw_fd()) };
            program
                .maps()
                .insert_xsk(id, fd)
                .map_err(XskError::Program)?;
            queues.push(q);
        }
        let epoll = if queues.len() > 1 {
            let fds: Vec<RawFd> = queues.iter().map(|q| q.rx.fd().as_raw_fd()).collect();
            Some(crate::poll::epoll_of(&fds).map_err(|e| socket_err(queues[0].id)(e.to_string()))?)
        } else {
            None
        };
        let neigh = NeighCache::new(link.ifindex).map_err(XskError::Neigh)?;
        let multicast = match cfg.multicast {
            None => None,
            Some(m) => {
                m.check_family(cfg.bind).map_err(XskError::Interface)?;
                let member = crate::transport::mcast::membership_socket(&m, cfg.bind.ip())
                    .map_err(|e| XskError::Interface(e.to_string()))?;
                let mac = frame::multicast_mac(m.group().ip())
                    .ok_or_else(|| XskError::Interface("group is not multicast".into()))?;
                Some(Group {
                    m,
                    mac,
                    _member: member,
                })
            }
        };
        tracing::debug!(
            "{}: AF_XDP transport ready on {} ({bind_mode}-mode sockets)",
            link.name,
            program.describe()
        );
        Ok(XskTransport {
            queues,
            program,
            neigh,
            link,
            local: cfg.bind,
            bind_mode,
            epoll,
            counters: XskCounters::default(),
            ip_id: 0,
            tx_next: 0,
            multicast,
            link_mtu,
            frame_parts_max,
        })
    }

    /// What bounds [`Transport::datagram_size_max`](crate::transport::Transport), for an
    /// operator: the interface's MTU or the UMEM frames one frame may take.
    pub fn datagram_limit(&self) -> String {
        if self.link_mtu_frame_bytes() <= self.parts_frame_bytes() {
            format!("the MTU of {} is {}", self.link.name, self.link_mtu)
        } else {
            format!(
                "its sockets take at most {} UMEM frame(s) of {UMEM_FRAME_DATA_BYTES} bytes \
                 per frame",
                self.frame_parts_max
            )
        }
    }

    /// The largest frame the interface's MTU lets through, Ethernet header included.
    fn link_mtu_frame_bytes(&self) -> usize {
        self.link_mtu as usize + frame::ETH_HEADER_LEN
    }

    /// The largest frame the sockets take.
    fn parts_frame_bytes(&self) -> usize {
        self.frame_parts_max * UMEM_FRAME_DATA_BYTES
    }

    pub fn bind_mode(&self) -> BindMode {
        self.bind_mode
    }

    /// The mode of the program this transport attached; `None` with an inherited program.
    pub fn attach_mode(&self) -> Option<AttachedMode> {
        self.program.mode()
    }

    /// Whether this transport loaded (and will detach) the program, rather than inheriting
    /// its maps from rotord.
    pub fn owns_program(&self) -> bool {
        matches!(self.program, Steering::Owned(_))
    }

    pub fn interface(&self) -> &str {
        &self.link.name
    }

    pub fn counters(&self) -> &XskCounters {
        &self.counters
    }

    pub fn neigh_counters(&self) -> NeighCounters {
        self.neigh.counters()
    }

    /// The XDP program's counters (summed over CPUs).
    pub fn xdp_counters(&self) -> Result<XdpCounters, XdpError> {
        self.program.maps().counters()
    }

    /// The kernel's per-socket statistics, summed over queues: (rx_dropped, rx_ring_full,
    /// rx_fill_ring_empty_descs, tx_ring_empty_descs, invalid descriptors rx + tx).
    pub fn socket_stats(&self) -> io::Result<[u64; 5]> {
        let mut s = [0u64; 5];
        for q in &self.queues {
            let st = q.rx.fd().xdp_statistics()?;
            s[0] += st.rx_dropped();
            s[1] += st.rx_ring_full();
            s[2] += st.rx_fill_ring_empty_descs();
            s[3] += st.tx_ring_empty_descs();
            s[4] += st.rx_invalid_descs() + st.tx_invalid_descs();
        }
        Ok(s)
    }

    /// A one-line description for logs: interface, XDP mode (or whose program), bind mode,
    /// multi-buffer, queues.
    pub fn describe(&self) -> String {
        format!(
            "AF_XDP on {} ({}, {}-mode{} sockets, {} {})",
            self.link.name,
            self.program.describe(),
            self.bind_mode,
            if self.frame_parts_max > 1 {
                format!(
                    " multi-buffer (up to {} UMEM frames a frame)",
                    self.frame_parts_max
                )
            } else {
                String::new()
            },
            if self.queues.len() == 1 {
                "queue"
            } else {
                "queues"
            },
            self.queues
                .iter()
                .map(|q| q.id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    }

    /// The queue ids served, one socket each.
    pub fn queue_ids(&self) -> Vec<u32> {
        self.queues.iter().map(|q| q.id).collect()
    }

    /// Frames received on each queue served: (queue id, frames).
    pub fn frames_in_by_queue(&self) -> Vec<(u32, u64)> {
        self.queues.iter().map(|q| (q.id, q.frames_in)).collect()
    }

    /// TX frames free now (not on a TX ring or in flight) and in all, over every queue; they
    /// are equal once every sent frame has completed (call `flush` to reap completions).
    pub fn tx_frames_free(&self) -> (usize, usize) {
        let free = self.queues.iter().map(|q| q.tx_free.len()).sum();
        let total = self.queues.iter().map(|q| q.tx_ring_size as usize).sum();
        (free, total)
    }
}

/// How many receive queues `interface` has (of the calling thread's network namespace): the
/// driver's channel counts (`ETHTOOL_GCHANNELS`: rx-only plus combined channels, each with one
/// receive queue); 1 when the driver does not report channels. Read through an ioctl rather
/// than `/sys/class/net`, which shows the namespace sysfs was mounted in, not the thread's.
pub fn rx_queue_count(interface: &str) -> io::Result<u32> {
    /// `struct ethtool_channels` (linux/ethtool.h).
    #[repr(C)]
    #[derive(Default)]
    struct Channels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    let (sock, mut ifr) = ifreq_of(interface)?;
    let mut channels = Channels {
        cmd: ETHTOOL_GCHANNELS,
        ..Channels::default()
    };
    // The data pointer aims at `channels`, alive across the ioctl.
    ifr.ifr_ifru.ifru_data = (&mut channels as *mut Channels).cast();
    // SAFETY: SIOCETHTOOL with a valid ifreq whose data points at a `struct ethtool_channels`.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(1),
            _ => Err(io::Error::new(
                e.kind(),
                format!("{interface}: ETHTOOL_GCHANNELS: {e}"),
            )),
        };
    }
    Ok((channels.rx_count + channels.combined_count).max(1))
}

/// The MTU of `interface` (of the calling thread's network namespace): the largest IP packet
/// it sends and receives (`SIOCGIFMTU`).
pub fn interface_mtu(interface: &str) -> io::Result<u32> {
    let (sock, mut ifr) = ifreq_of(interface)?;
    // SAFETY: SIOCGIFMTU with a valid ifreq naming the interface; the kernel writes ifru_mtu.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("{interface}: SIOCGIFMTU: {e}"),
        ));
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds the MTU.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other(format!("{interface}: MTU {mtu}")))
}

/// A socket for interface ioctls and an `ifreq` naming `interface`.
fn ifreq_of(interface: &str) -> io::Result<(UdpSocket, libc::ifreq)> {
    let name = interface.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let sock = UdpSocket::bind("0.0.0.0:0").or_else(|_| UdpSocket::bind("[::]:0"))?;
    // SAFETY: all-zero is a valid ifreq; the name is copied in below, NUL-terminated as the
    // length was checked.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    Ok((sock, ifr))
}

impl crate::transport::Transport for XskTransport {
    fn name(&self) -> &'static str {
        "xdp"
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The smaller of what the interface's MTU lets through (frames are sent with DF, so a
    /// larger one would be dropped on the way) and what the sockets' UMEM frames hold.
    fn datagram_size_max(&self) -> usize {
        self.link_mtu_frame_bytes()
            .min(self.parts_frame_bytes())
            .saturating_sub(frame::header_len(&self.local))
    }

    fn group(&self) -> Option<SocketAddr> {
        self.multicast.as_ref().map(|g| g.m.group())
    }

    /// `xdp.*`: the provider's frames, bytes and drops, the kernel's per-socket statistics
    /// (`xdp.socket.*`), the XDP program's per-CPU counters summed (`xdp.prog.*`) and the
    /// neighbour cache's (`xdp.neigh.*`). A map or socket that cannot be read is skipped (its
    /// keys keep their last published value in cmap).
    fn counters(&self, out: &mut crate::stats::Sheet) {
        let c = &self.counters;
        out.put_all([
            ("xdp.frames_in", c.frames_in),
            ("xdp.bytes_in", c.bytes_in),
            ("xdp.frames_out", c.frames_out),
            ("xdp.bytes_out", c.bytes_out),
            ("xdp.tx_ring_full", c.tx_ring_full),
            ("xdp.tx_kicks", c.tx_kicks),
            ("xdp.fill_wakeups", c.fill_wakeups),
            ("xdp.fill_deferred", c.fill_deferred),
        ]);
        for (reason, n) in &c.drops {
            out.put_fmt(format_args!("xdp.drops.{reason}"), *n);
        }
        if let Ok(s) = self.socket_stats() {
            let names = [
                "rx_dropped",
                "rx_ring_full",
                "rx_fill_ring_empty",
                "tx_ring_empty",
                "invalid_descs",
            ];
            for (name, v) in names.iter().zip(s) {
                out.put_fmt(format_args!("xdp.socket.{name}"), v);
            }
        }
        if let Ok(p) = self.xdp_counters() {
            for (name, v) in p.named() {
                out.put_fmt(format_args!("xdp.prog.{name}"), v);
            }
        }
        let n = self.neigh_counters();
        out.put_all([
            ("xdp.neigh.dumps", n.dumps),
            ("xdp.neigh.dump_errors", n.dump_errors),
            ("xdp.neigh.probes", n.probes),
            ("xdp.neigh.misses", n.misses),
        ]);
    }

    fn recv_batch(&mut self, f: &mut dyn FnMut(&mut [u8], SocketAddr)) -> io::Result<usize> {
        let local = self.local;
        let group = self.group();
        let counters = &mut self.counters;
        let mut handed = 0;
        for q in &mut self.queues {
            // SAFETY: the RX ring hands back frames of this queue's UMEM (the only ones on its
            // fill ring); `batch` has room for RX_BATCH.
            let n = unsafe { q.rx.consume(&mut q.batch[..RX_BATCH]) };
            q.frames_in += n as u64;
            for desc in &mut q.batch[..n] {
                let more = desc.options() & libc::XDP_PKT_CONTD != 0;
                // SAFETY: `desc` was just consumed from this queue's RX ring, so it is a frame
                // of `q.umem` that the kernel has finished writing and that nothing else
                // touches until it goes back on the fill ring below.
                let mut data = unsafe { q.umem.data_mut(desc) };
                let bytes = data.contents_mut();
                counters.bytes_in += bytes.len() as u64;
                // A chain's bytes are copied out here, so its descriptors go back to the fill
                // ring with the batch even when the chain ends in a later one.
                let bytes = match q.gather.push(bytes, more) {
                    Step::Whole => bytes,
                    Step::Pending => continue,
                    Step::Gathered => q.gather.frame_mut(),
                    Step::Dropped => {
                        counters.drop_chain(&self.link.name, q.id, q.gather.parts_max());
                        continue;
                    }
                };
                counters.frames_in += 1;
                match frame::parse(bytes) {
                    Ok(p) if p.dst == local || Some(p.dst) == group => {
                        f(&mut bytes[p.payload], p.src);
                        handed += 1;
                    }
                    Ok(_) => counters.drop("wrong_destination"),
                    Err(e) => counters.drop(e.reason()),
                }
            }
            // The frames go back to the kernel (with any that waited from an earlier batch).
            // A ring that looks full is normal right after a batch: see `Queue::refill`.
            q.refill.extend_from_slice(&q.batch[..n]);
            assert!(
                q.refill.len() <= q.batch.len(),
                "more frames waiting for the fill ring than the RX half of the UMEM"
            );
            if !q.refill.is_empty() {
                let returned = q.refill();
                counters.fill_deferred += q.refill.len() as u64;
                if returned && q.fill.needs_wakeup() {
                    q.fill.wakeup(q.rx.fd_mut(), 0)?;
                    counters.fill_wakeups += 1;
                }
            }
        }
        Ok(handed)
    }

    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> io::Result<bool> {
        if to.is_ipv4() != self.local.is_ipv4() {
            self.counters.drop("wrong_family");
            return Ok(false);
        }
        let (dst_mac, hop_limit) = match &self.multicast {
            Some(g) if to == g.m.group() => (g.mac, g.m.ttl),
            _ => match self.neigh.lookup(to.ip()) {
                Some(mac) => (mac, frame::HOP_LIMIT_UNICAST),
                None => {
                    self.counters.drop("neigh_unresolved");
                    return Ok(false);
                }
            },
        };
        // The caller keeps to datagram_size_max (netmtu is checked against it); a larger
        // frame would pass the interface's MTU or the chain the sockets take.
        if payload.len() > self.datagram_size_max() {
            self.counters.drop("frame_too_large");
            return Ok(false);
        }
        let hl = frame::header_len(&to);
        let frame_bytes = hl + payload.len();
        let parts = chain::parts(frame_bytes, UMEM_FRAME_DATA_BYTES);
        let qi = self.tx_next % self.queues.len();
        self.tx_next = self.tx_next.wrapping_add(1);
        let q = &mut self.queues[qi];
        if q.tx_free.len() < parts {
            q.reap();
        }
        if q.tx_free.len() < parts {
            self.counters.tx_ring_full += 1;
            return Ok(false);
        }
        let addressing = Addressing {
            src_mac: self.link.mac,
            dst_mac,
            src: self.local,
            dst: to,
            hop_limit,
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        if parts > 1 {
            let mut head = [0u8; frame::HEADER_LEN_MAX];
            let head = &mut head[..hl];
            if frame::write_headers(head, payload, &addressing, self.ip_id).is_err() {
                self.counters.drop("frame_too_large");
                return Ok(false);
            }
            if !q.send_chain(head, payload, parts)? {
                self.counters.tx_ring_full += 1;
                return Ok(false);
            }
            self.counters.frames_out += 1;
            self.counters.bytes_out += frame_bytes as u64;
            return Ok(true);
        }
        let mut desc = q.tx_free.pop().expect("a free frame: counted above");
        desc.set_options(0);
        let built = {
            // SAFETY: `desc` came from this queue's free list: a frame of `q.umem` on no ring.
            let mut data = unsafe { q.umem.data_mut(&mut desc) };
            let mut cursor = data.cursor();
            if cursor.buf_len() < hl + payload.len() {
                None
            } else {
                cursor.set_pos(hl);
                io::Write::write_all(&mut cursor, payload)?;
                Some(frame::build_headers(
                    data.contents_mut(),
                    &addressing,
                    self.ip_id,
                ))
            }
        };
        match built {
            Some(Ok(())) => {}
            _ => {
                q.tx_free.push(desc);
                self.counters.drop("frame_too_large");
                return Ok(false);
            }
        }
        // SAFETY: `desc` is a frame of this queue's UMEM, now owned by the TX ring until the
        // completion ring returns it.
        if unsafe { q.tx.produce_one(&desc) } == 0 {
            q.tx_free.push(desc);
            self.counters.tx_ring_full += 1;
            return Ok(false);
        }
        self.counters.frames_out += 1;
        self.counters.bytes_out += (hl + payload.len()) as u64;
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Copy mode always wants a kick (the kernel never clears the flag there).
        let copy = self.bind_mode == BindMode::Copy;
        for q in &mut self.queues {
            let mut free = q.tx.nb_free_exact();
            for _ in 0..TX_KICKS_MAX {
                if free >= q.tx_ring_size {
                    break;
                }
                if copy || q.tx.needs_wakeup() {
                    q.tx.wakeup()?;
                    self.counters.tx_kicks += 1;
                }
                let now = q.tx.nb_free_exact();
                if now <= free {
                    break; // no progress: in flight (zero-copy) or the device is busy
                }
                free = now;
            }
            q.reap();
        }
        Ok(())
    }

    fn maintain(&mut self) {
        self.neigh.maintain();
    }

    fn wait_fd(&self) -> RawFd {
        match &self.epoll {
            Some(ep) => ep.as_raw_fd(),
            None => self.queues[0].rx.fd().as_raw_fd(),
        }
    }
}
