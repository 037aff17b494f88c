//! The transport each link runs on, chosen when the link opens: kernel UDP or AF_XDP.
//! `AnyTransport` dispatches [`Transport`] to the provider inside, so the runner stays generic
//! and each provider stays in its own module; [`open_link`] opens one link of a start message.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::str::FromStr;

use rotor_proto::control::{DataplaneTransport, KernelUdpIo};
use rotor_proto::link::LinkStart;
use xdp_prog::SteerMaps;

use crate::transport::mcast::Multicast;
use crate::transport::udp::KernelUdp;
use crate::transport::xsk::{XskConfig, XskTransport};
use crate::transport::Transport;

/// Most receive queues the AF_XDP provider serves.
pub const QUEUES_SERVED_MAX: u32 = 64;
/// UMEM frames (4 KiB each) shared out among the queues served: 8 MiB for one queue, at most
/// 64 MiB in all, at least 256 frames a queue.
const UMEM_FRAMES_ONE_QUEUE: u32 = 2048;
const UMEM_FRAMES_TOTAL_MAX: u32 = 16_384;
const UMEM_FRAMES_QUEUE_MIN: u32 = 256;

/// `--transport`: which provider to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    Udp,
    Xdp,
    /// XDP when running as root and the interface accepts the program (or, with maps
    /// inherited from rotord, when the AF_XDP sockets open on them), else UDP.
    #[default]
    Auto,
}

impl From<DataplaneTransport> for TransportKind {
    fn from(t: DataplaneTransport) -> TransportKind {
        match t {
            DataplaneTransport::Udp => TransportKind::Udp,
            DataplaneTransport::Xdp => TransportKind::Xdp,
            DataplaneTransport::XdpOrUdp => TransportKind::Auto,
        }
    }
}

impl From<TransportKind> for DataplaneTransport {
    fn from(k: TransportKind) -> DataplaneTransport {
        match k {
            TransportKind::Udp => DataplaneTransport::Udp,
            TransportKind::Xdp => DataplaneTransport::Xdp,
            TransportKind::Auto => DataplaneTransport::XdpOrUdp,
        }
    }
}

impl FromStr for TransportKind {
    type Err = String;

    fn from_str(s: &str) -> Result<TransportKind, String> {
        match s {
            "udp" => Ok(TransportKind::Udp),
            "xdp" => Ok(TransportKind::Xdp),
            "auto" => Ok(TransportKind::Auto),
            other => Err(format!("unknown transport \"{other}\" (udp, xdp or auto)")),
        }
    }
}

/// One of the providers.
#[derive(Debug)]
pub enum AnyTransport {
    /// io_uring, or a plain socket where io_uring cannot be set up.
    Udp(KernelUdp),
    Xdp(Box<XskTransport>),
}

impl AnyTransport {
    /// Opens the provider `kind` asks for on `bind` (and `interface`, default: the interface
    /// holding `bind`'s address), joined to `mcast`'s group when the cluster multicasts.
    /// With `maps` (the `xsks` and `counters` maps of the program rotord attached to that
    /// interface) XDP uses them and loads no program of its own; without, it loads and
    /// attaches its own, with sockets that take IP packets of `netmtu_bytes` (multi-buffer
    /// when one UMEM frame is too small). Kernel UDP does its I/O as `udp_io` says. Returns it
    /// with a sentence saying which one and why, for the log. `Auto` falls back to UDP, with
    /// the reason, whenever XDP cannot be used.
    pub fn open(
        kind: TransportKind,
        bind: SocketAddr,
        interface: Option<&str>,
        mcast: Option<&Multicast>,
        maps: Option<SteerMaps>,
        netmtu_bytes: u32,
        udp_io: KernelUdpIo,
    ) -> Result<(AnyTransport, String), String> {
        let udp = |why: String| {
            KernelUdp::bind(bind, mcast, udp_io)
                .map(|(u, how)| {
                    (
                        AnyTransport::Udp(u),
                        format!("transport udp: {why} ({how})"),
                    )
                })
                .map_err(|e| format!("bind {bind}: {e}"))
        };
        match kind {
            TransportKind::Udp => udp("asked for".into()),
            TransportKind::Xdp => open_xdp(bind, interface, mcast, maps, netmtu_bytes)
                .map(|(x, why)| (x, why + " (asked for)")),
            TransportKind::Auto => {
                // With inherited maps rotord already had the privileges to attach the program;
                // whether this process may open AF_XDP sockets is for the kernel to say.
                // Safety: geteuid has no preconditions.
                if maps.is_none() && unsafe { libc::geteuid() } != 0 {
                    return udp("auto: not running as root, so no XDP".into());
                }
                match open_xdp(bind, interface, mcast, maps, netmtu_bytes) {
                    Ok((x, why)) => Ok((x, why + " (auto)")),
                    Err(e) => udp(format!("auto: XDP unavailable ({e})")),
                }
            }
        }
    }

    /// The provider's counters as one line for the log at exit.
    pub fn stats_line(&self) -> String {
        match self {
            AnyTransport::Udp(_) => "udp".into(),
            AnyTransport::Xdp(x) => {
                let c = x.counters();
                let xdp = x
                    .xdp_counters()
                    .map(|k| {
                        k.named()
                            .map(|(name, v)| format!("{name}={v}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|e| format!("unreadable: {e}"));
                let drops: String = c
                    .drops
                    .iter()
                    .map(|(reason, n)| format!(" drops.{reason}={n}"))
                    .collect();
                let n = x.neigh_counters();
                format!(
                    "xdp frames_in={} bytes_in={} frames_out={} bytes_out={} tx_ring_full={}\
                     {drops} neigh.dumps={} neigh.dump_errors={} neigh.probes={} \
                     neigh.misses={} program: {xdp}",
                    c.frames_in,
                    c.bytes_in,
                    c.frames_out,
                    c.bytes_out,
                    c.tx_ring_full,
                    n.dumps,
                    n.dump_errors,
                    n.probes,
                    n.misses
                )
            }
        }
    }
}

/// Why a link could not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenLinkError {
    /// The transport itself: address, interface, privileges, XDP.
    Transport(String),
    /// `totem.netmtu` asks for more than the transport carries.
    Netmtu(String),
}

/// Opens link `link` as the start message describes it: on the transport rotord chose for it
/// (`maps`: its program's maps when that is XDP; `mcast`: the group, on the link that
/// multicasts), checked to carry `netmtu_bytes`-sized packets. Returns the transport and a
/// sentence for the log. Falls back as [`AnyTransport::open`] does: rotord's `XdpOrUdp`
/// (auto) takes kernel UDP with the reason, its `Xdp` fails. Every link opens through here,
/// at start or later.
pub fn open_link(
    link: &LinkStart,
    mcast: Option<&Multicast>,
    maps: Option<SteerMaps>,
    netmtu_bytes: u32,
    udp_io: KernelUdpIo,
) -> Result<(AnyTransport, String), OpenLinkError> {
    let n = link.settings.number;
    let (transport, why) = AnyTransport::open(
        link.transport.into(),
        link.local,
        link.interface.as_deref(),
        mcast,
        maps,
        netmtu_bytes,
        udp_io,
    )
    .map_err(|e| OpenLinkError::Transport(format!("link {n}: {e}")))?;
    check_netmtu(netmtu_bytes, link.local, &transport).map_err(OpenLinkError::Netmtu)?;
    Ok((transport, why))
}

/// Refuses a `totem.netmtu` (the size of one IP packet on the link, corosync's meaning) whose
/// UDP payload the transport cannot carry (AF_XDP: more than the interface's MTU, or than the
/// UMEM frames one frame may take), naming what bounds it.
pub fn check_netmtu(netmtu: u32, bind: SocketAddr, transport: &AnyTransport) -> Result<(), String> {
    let ip_udp = if bind.is_ipv4() {
        totem_core::config::IPV4_UDP_HEADER_BYTES
    } else {
        totem_core::config::IPV6_UDP_HEADER_BYTES
    } as usize;
    let datagram = (netmtu as usize).saturating_sub(ip_udp);
    let max = transport.datagram_size_max();
    if datagram > max {
        let why = match transport {
            AnyTransport::Xdp(x) => format!(" ({})", x.datagram_limit()),
            AnyTransport::Udp(_) => String::new(),
        };
        return Err(format!(
            "totem.netmtu {netmtu} needs {datagram}-byte UDP payloads, but the {} transport \
             carries at most {max}{why}; lower netmtu to {} or less",
            transport.name(),
            max + ip_udp
        ));
    }
    Ok(())
}

fn open_xdp(
    bind: SocketAddr,
    interface: Option<&str>,
    mcast: Option<&Multicast>,
    maps: Option<SteerMaps>,
    netmtu_bytes: u32,
) -> Result<(AnyTransport, String), String> {
    let name = match interface {
        Some(n) => n.to_owned(),
        None => {
            crate::transport::neigh::link_holding(bind.ip())
                .map_err(|e| e.to_string())?
                .name
        }
    };
    if name == "lo" {
        return Err("the address is on loopback, where XDP brings nothing".into());
    }
    let mut cfg = XskConfig::new(name, bind);
    cfg.multicast = mcast.copied();
    // netmtu is an IP packet; the frame adds an Ethernet header.
    cfg.frame_bytes_max = netmtu_bytes as usize + crate::transport::frame::ETH_HEADER_LEN;
    // Every receive queue gets a socket: RSS may put cluster frames on any of them, and a
    // queue without one passes them to a kernel with no socket on the port.
    let queues = crate::transport::xsk::rx_queue_count(&cfg.interface)
        .map_err(|e| e.to_string())?
        .min(QUEUES_SERVED_MAX);
    cfg.queues = (0..queues).collect();
    let share = (UMEM_FRAMES_TOTAL_MAX / queues.max(1)).min(UMEM_FRAMES_ONE_QUEUE);
    // A power of two, as the rings need.
    cfg.frames_per_queue = (1u32 << share.ilog2()).max(UMEM_FRAMES_QUEUE_MIN);
    tracing::debug!(
        target: "XDP",
        "AF_XDP on {}: {queues} receive queue(s), {} UMEM frames each, {}",
        cfg.interface,
        cfg.frames_per_queue,
        if maps.is_some() {
            "on the maps of rotord's program"
        } else {
            "loading a program of its own"
        }
    );
    let x = match maps {
        Some(maps) => XskTransport::open_inherited(&cfg, maps),
        None => XskTransport::open(&cfg),
    }
    .map_err(|e| e.to_string())?;
    let why = format!("transport xdp: {}", x.describe());
    Ok((AnyTransport::Xdp(Box::new(x)), why))
}

impl Transport for AnyTransport {
    fn name(&self) -> &'static str {
        match self {
            AnyTransport::Udp(t) => t.name(),
            AnyTransport::Xdp(t) => t.name(),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        match self {
            AnyTransport::Udp(t) => Transport::local_addr(t),
            AnyTransport::Xdp(t) => Transport::local_addr(t.as_ref()),
        }
    }

    fn datagram_size_max(&self) -> usize {
        match self {
            AnyTransport::Udp(t) => t.datagram_size_max(),
            AnyTransport::Xdp(t) => t.datagram_size_max(),
        }
    }

    fn group(&self) -> Option<SocketAddr> {
        match self {
            AnyTransport::Udp(t) => t.group(),
            AnyTransport::Xdp(t) => t.group(),
        }
    }

    fn counters(&self, out: &mut crate::stats::Sheet) {
        match self {
            AnyTransport::Udp(t) => t.counters(out),
            AnyTransport::Xdp(t) => Transport::counters(t.as_ref(), out),
        }
    }

    fn recv_batch(&mut self, f: &mut dyn FnMut(&mut [u8], SocketAddr)) -> io::Result<usize> {
        match self {
            AnyTransport::Udp(t) => t.recv_batch(f),
            AnyTransport::Xdp(t) => t.recv_batch(f),
        }
    }

    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> io::Result<bool> {
        match self {
            AnyTransport::Udp(t) => Transport::send_to(t, payload, to),
            AnyTransport::Xdp(t) => t.send_to(payload, to),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            AnyTransport::Udp(t) => t.flush(),
            AnyTransport::Xdp(t) => t.flush(),
        }
    }

    fn maintain(&mut self) {
        match self {
            AnyTransport::Udp(t) => t.maintain(),
            AnyTransport::Xdp(t) => t.maintain(),
        }
    }

    fn wait_fd(&self) -> RawFd {
        match self {
            AnyTransport::Udp(t) => t.wait_fd(),
            AnyTransport::Xdp(t) => t.wait_fd(),
        }
    }
}
