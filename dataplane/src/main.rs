//! `rotor-dataplane`: one rotor node. Started by rotord with `--control-fd`, it takes everything
//! it runs with from rotord's start message (settings resolved, key bytes, epoch, transport) and
//! serves the CPG sessions rotord hands over; started by hand (tests, experiments), it builds the
//! same start from its flags, joins one CPG group itself, optionally multicasts test messages and
//! prints every event as one line. Either way one function sets the node up from a
//! `DataplaneStart`, so both paths run the same set-up.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rotor_crypto::{CryptoMode, Keys};
use rotor_dataplane::fnv1a32_parts;
use rotor_dataplane::runner::{cluster_shape, Runner, RunnerConfig, RunnerLinks};
use rotor_dataplane::service::{auto, Control, PollChoice, PollLoop};
use rotor_dataplane::transport::any::{open_link, AnyTransport, OpenLinkError, TransportKind};
use rotor_dataplane::transport::mcast::Multicast;
use rotor_dataplane::transport::xsk;
use rotor_dataplane::transport::Transport;
use rotor_endpoint::LinkConfig;
use rotor_proto::control::{
    DataplaneStart, FailureKind, FromDataplane, KernelUdpIo, MulticastSettings, PollMode,
};
use rotor_proto::link::{LinkMode, LinkStart};
use totem_core::config::explicit;
use totem_core::{ConfigKind, Event, Guarantee, Request, SubmitError, TotemSettings};

#[derive(Parser, Debug)]
#[command(
    name = "rotor-dataplane",
    about = "Run one rotor node over kernel UDP or AF_XDP"
)]
struct Args {
    /// Serve rotord on this inherited SOCK_SEQPACKET descriptor: everything else comes in its
    /// start message, and no other flag may be given.
    #[arg(long, conflicts_with_all = ["node_id", "bind", "keyfile", "cluster_name"])]
    control_fd: Option<i32>,
    #[arg(long, required_unless_present = "control_fd")]
    node_id: Option<u32>,
    /// Local address and cluster port, e.g. 198.18.0.1:5405 or [2001:2::1]:5405.
    #[arg(long, required_unless_present = "control_fd")]
    bind: Option<SocketAddr>,
    /// Another node: ID=ADDR:PORT (repeat).
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(u32, SocketAddr)>,
    /// The authkey (read only when the crypto mode is not none).
    #[arg(long, required_unless_present = "control_fd")]
    keyfile: Option<PathBuf>,
    #[arg(long, required_unless_present = "control_fd")]
    cluster_name: Option<String>,
    #[arg(long)]
    token_ms: Option<u32>,
    /// Messages to multicast once every configured node has joined the group.
    #[arg(long, default_value_t = 0)]
    send: u32,
    #[arg(long, default_value_t = 100)]
    size: usize,
    #[arg(long, default_value = "rotor-test")]
    group: String,
    /// A totem setting, KEY=VALUE with corosync's key names (token, consensus, join, merge,
    /// window_size, max_messages, netmtu, …; times in ms). Repeatable.
    #[arg(long = "totem", value_parser = parse_kv)]
    totem: Vec<(String, u32)>,
    /// corosync's crypto_cipher and crypto_hash.
    #[arg(long, default_value = "aes256")]
    crypto_cipher: String,
    #[arg(long, default_value = "sha256")]
    crypto_hash: String,
    /// The highest ring sequence this node has seen before.
    #[arg(long, default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(..totem_core::RingId::SEQ_LIMIT))]
    ring_seq: u64,
    /// udp, xdp, or auto (XDP when root and the interface accepts the program, else UDP).
    #[arg(long, default_value = "auto")]
    transport: TransportKind,
    /// The interface for XDP (default: the one holding the --bind address).
    #[arg(long)]
    interface: Option<String>,
    /// XSKS,COUNTERS: inherited descriptors of the `xsks` and `counters` maps of an XDP program
    /// attached to the interface. XDP then uses them and neither loads nor detaches a program;
    /// without them it loads and attaches its own.
    #[arg(long, value_parser = parse_fd_pair)]
    xdp_maps_fd: Option<(i32, i32)>,
    /// Multicast to this group (IPv4 or IPv6, the family of --bind) on the --bind port, as
    /// corosync's `transport: udp` does: frames for every member go once to the group, the
    /// token stays unicast. Without it every frame is unicast to each peer (`udpu`).
    #[arg(long)]
    mcast: Option<IpAddr>,
    /// TTL / hop limit of the multicast frames (corosync's `ttl`, default 1).
    #[arg(long, default_value_t = rotor_dataplane::transport::mcast::TTL_DEFAULT)]
    mcast_ttl: u8,
    /// CPU to pin the poll loop to.
    #[arg(long)]
    core: Option<u16>,
    /// How kernel UDP does its I/O: socket or io_uring (rotor.kernel_udp).
    #[arg(long, default_value = "socket", value_parser = parse_kernel_udp)]
    kernel_udp: KernelUdpIo,
}

/// How long the dataplane waits for rotord's start message.
const START_WAIT: Duration = Duration::from_secs(10);

/// Why the dataplane cannot run: the kind tells rotord whether starting again can help.
struct Failure {
    kind: FailureKind,
    message: String,
}

impl Failure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// The process's exit status, with rotord's numbers: 8 for a configuration or key that
    /// cannot work, 15 for anything else.
    fn exit_code(&self) -> ExitCode {
        match self.kind {
            FailureKind::Config | FailureKind::Key => ExitCode::from(8),
            _ => ExitCode::from(15),
        }
    }
}

fn parse_kv(s: &str) -> Result<(String, u32), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    let v = v.parse().map_err(|e| format!("{k}: {e}"))?;
    Ok((k.to_owned(), v))
}

/// Sets one totem setting by its corosync name, finding it in the table of totem settings.
fn parse_fd_pair(s: &str) -> Result<(i32, i32), String> {
    let (a, b) = s.split_once(',').ok_or("expected XSKS_FD,COUNTERS_FD")?;
    let fd = |t: &str| -> Result<i32, String> {
        let fd: i32 = t.trim().parse().map_err(|e| format!("\"{t}\": {e}"))?;
        if fd < 3 {
            return Err(format!("{fd} is a standard stream, not an inherited map"));
        }
        Ok(fd)
    };
    let (a, b) = (fd(a)?, fd(b)?);
    if a == b {
        return Err("the two maps need two descriptors".into());
    }
    Ok((a, b))
}

/// Takes ownership of the inherited map descriptors of `--xdp-maps-fd` (checked to be open
/// and distinct from the control socket) and checks that they are the maps they should be.
fn inherited_maps(
    (xsks, counters): (i32, i32),
    control_fd: Option<i32>,
) -> Result<xdp_prog::SteerMaps, String> {
    use std::os::fd::{FromRawFd, OwnedFd};
    for fd in [xsks, counters] {
        if Some(fd) == control_fd {
            return Err(format!("fd {fd} is also --control-fd"));
        }
        // SAFETY: F_SETFD on any integer is harmless: it fails with EBADF when nothing is open
        // there. Close-on-exec: the maps are not for anything this process might start.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(format!("fd {fd}: {}", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: both descriptors are open (checked above), distinct, not the control socket, and
    // were passed to this process for this use alone; nothing else here refers to them.
    let (xsks, counters) = unsafe { (OwnedFd::from_raw_fd(xsks), OwnedFd::from_raw_fd(counters)) };
    xdp_prog::SteerMaps::from_fds(xsks, counters).map_err(|e| e.to_string())
}

fn parse_kernel_udp(s: &str) -> Result<KernelUdpIo, String> {
    KernelUdpIo::from_name(s)
        .ok_or_else(|| format!("expected one of {}", KernelUdpIo::NAMES.join(", ")))
}

fn parse_peer(s: &str) -> Result<(u32, SocketAddr), String> {
    let (id, addr) = s.split_once('=').ok_or("expected ID=ADDR:PORT")?;
    let id = id.parse().map_err(|e| format!("node id: {e}"))?;
    let addr = addr.parse().map_err(|e| format!("address: {e}"))?;
    Ok((id, addr))
}

/// Message `i` of node `node`: deterministic bytes so every receiver can be compared.
fn payload(node: u32, i: u32, size: usize) -> Vec<u8> {
    let mut x = (u64::from(node) << 32 | u64::from(i)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn print_event(ev: &Event<'_>, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    match ev {
        Event::Config(c) => {
            let kind = if c.kind == ConfigKind::Regular {
                "regular"
            } else {
                "transitional"
            };
            let members: Vec<String> = c.members.iter().map(|m| m.0.to_string()).collect();
            let _ = write!(
                out,
                "config {kind} ring={}.{} members={}",
                c.ring.rep,
                c.ring.seq,
                members.join(",")
            );
        }
        Event::Group(g) => {
            let members: Vec<String> = g
                .members
                .iter()
                .map(|m| format!("{}:{}", m.node.0, m.pid))
                .collect();
            let _ = write!(
                out,
                "group {} members={}",
                String::from_utf8_lossy(&g.group),
                members.join(",")
            );
        }
        Event::Deliver(d) => {
            let _ = write!(
                out,
                "deliver {} from={}:{} len={} crc={:08x}",
                String::from_utf8_lossy(d.group),
                d.sender.node.0,
                d.sender.pid,
                d.data.len(),
                fnv1a32_parts(d.data.parts())
            );
        }
    }
    println!("{out}");
}

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// Starts the logger: under rotord (`--control-fd`) every line goes up the control socket to
/// rotord's log; started by hand, to stderr.
fn start_logging(control_fd: Option<i32>) {
    use std::os::fd::FromRawFd;
    let up = control_fd.and_then(|fd| {
        // A copy of the control socket for the logger, numbered high, close-on-exec.
        // SAFETY: F_DUPFD_CLOEXEC on an integer fails with EBADF when nothing is open there.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        // SAFETY: a fresh descriptor of ours.
        (copy >= 0).then(|| unsafe { OwnedFd::from_raw_fd(copy) })
    });
    let installed = match up {
        Some(sock) => rotor_log::install_forwarding(sock).map(|()| Vec::new()),
        None => rotor_log::install(&by_hand_logging(), "rotor-dataplane"),
    };
    if let Err(e) = installed {
        eprintln!("rotor-dataplane: {e}");
    }
}

/// Logging when started by hand: stderr only, with millisecond timestamps.
fn by_hand_logging() -> rotor_log::LogConfig {
    rotor_log::LogConfig {
        all: rotor_log::LogSettings {
            to_syslog: false,
            ..rotor_log::LogSettings::default()
        },
        ..rotor_log::LogConfig::default()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    start_logging(args.control_fd);
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    match args.control_fd {
        Some(fd) => service_main(fd),
        None => hand_main(&args),
    }
}

/// Opens a link a reload adds through the same `open_link` as the start's links, checked
/// against netmtu: on the transport rotord chose for it, AF_XDP on `maps` (the program rotord
/// attached on the link's interface for this round) or kernel UDP.
fn open_added_link(
    link: &LinkStart,
    maps: Option<xdp_prog::SteerMaps>,
    netmtu: u32,
    udp_io: KernelUdpIo,
) -> Result<AnyTransport, String> {
    if link.transport.is_xdp() && maps.is_none() {
        return Err("transport xdp, but no XDP maps came with the answer".into());
    }
    let (t, why) = open_link(link, None, maps, netmtu, udp_io).map_err(|e| match e {
        OpenLinkError::Transport(m) | OpenLinkError::Netmtu(m) => m,
    })?;
    let n = link.settings.number;
    rotor_log::notice!(target: "TOTEM", "link {n} on {}: {why} (added while running)", link.local);
    Ok(t)
}

/// Builds the node from a start message: crypto, totem settings, the transport, the runner.
/// `maps`: each link's XDP program maps (`None` for a link on kernel UDP), in link order.
fn set_up(
    start: &DataplaneStart,
    maps: Vec<Option<xdp_prog::SteerMaps>>,
) -> Result<Runner<AnyTransport>, Failure> {
    let mode = CryptoMode::from_wire_byte(start.crypto_mode).ok_or_else(|| {
        Failure::new(
            FailureKind::Config,
            format!("unknown crypto mode {}", start.crypto_mode),
        )
    })?;
    let keys = if mode == CryptoMode::None {
        Keys::unkeyed(&start.cluster_name)
    } else {
        Keys::from_authkey_bytes(&start.authkey, &start.cluster_name)
            .map_err(|e| Failure::new(FailureKind::Key, e.to_string()))?
    };
    // Every setting comes resolved; the node validates the whole against the cluster's shape.
    let totem = TotemSettings::from_named(start.totem.iter().map(|(k, v)| (k.as_str(), *v)))
        .map_err(|e| Failure::new(FailureKind::Config, e))?;
    // Before any thread starts (they inherit it) and before the privileges go (CAP_SYS_NICE).
    match rotor_dataplane::sched::realtime_top() {
        None => {}
        Some(Ok(p)) => tracing::info!(
            target: "MAIN",
            "realtime priority {p}, above rotord's (system.sched_rr): rotord's work never holds \
             a token hop"
        ),
        Some(Err(e)) => tracing::warn!(
            target: "MAIN",
            "could not raise to the highest realtime priority ({e}); rotord's work may then \
             delay a token hop now and then"
        ),
    }
    if let Some(core) = start.core {
        let id = usize::from(core);
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            tracing::warn!(target: "MAIN", "could not pin to CPU {core}; running unpinned");
        }
    }
    let mcast = match start.multicast {
        None => None,
        Some(MulticastSettings { group, ttl }) => Some(
            Multicast::new(group, start.bind().port(), ttl)
                .and_then(|m| m.check_family(start.bind()).map(|()| m))
                .map_err(|e| Failure::new(FailureKind::Config, format!("multicast: {e}")))?,
        ),
    };
    // Each link on the transport rotord chose for it; the group (if any) on link 0.
    let mut maps = maps.into_iter();
    let mut transports = Vec::with_capacity(start.links.len());
    let mut more_links = Vec::new();
    for (position, link) in start.links.iter().enumerate() {
        let group = mcast.as_ref().filter(|_| position == 0);
        let opened = open_link(
            link,
            group,
            maps.next().flatten(),
            totem.netmtu_bytes,
            start.kernel_udp,
        );
        let (t, why) = opened.map_err(|e| match e {
            OpenLinkError::Transport(m) => Failure::new(FailureKind::Transport, m),
            OpenLinkError::Netmtu(m) => Failure::new(FailureKind::Config, m),
        })?;
        let n = link.settings.number;
        match group {
            Some(m) => rotor_log::notice!(
                target: "TOTEM",
                "link {n} on {}: {why}; multicast to {} (ttl {})",
                link.local,
                m.group(),
                m.ttl
            ),
            None if start.multicast.is_none() && position == 0 => rotor_log::notice!(
                target: "TOTEM",
                "link {n} on {}: {why}; unicast to each peer",
                link.local
            ),
            None => rotor_log::notice!(target: "TOTEM", "link {n} on {}: {why}", link.local),
        }
        transports.push(t);
        if position > 0 {
            more_links.push(LinkConfig {
                settings: link.settings,
                local: link.local,
                peers: link.peers.clone(),
            });
        }
    }
    let mut transports = transports.into_iter();
    let transport = transports.next().expect("a start message has link 0");
    let more: Vec<AnyTransport> = transports.collect();
    if start.links.len() > 1 {
        rotor_log::notice!(
            target: "TOTEM",
            "{} links, link_mode {}",
            start.links.len(),
            start.link_mode.name()
        );
    }
    let (netmtu, udp_io) = (totem.netmtu_bytes, start.kernel_udp);
    Runner::with_links(
        RunnerConfig {
            node_id: start.node_id,
            peers: start.peers().to_vec(),
            links: Some(RunnerLinks {
                link0: start.links[0].settings,
                more: more_links,
                mode: start.link_mode,
            }),
            keys,
            cluster_name: start.cluster_name.clone(),
            mode,
            totem,
            epoch: start.epoch,
            ring_seq_start: start.ring_seq_start,
            seed: start.seed,
        },
        transport,
        more,
    )
    .map(|mut runner| {
        // A link a reload adds opens as the start's do (netmtu cannot change at runtime).
        runner.set_link_opener(Box::new(move |link, maps| {
            open_added_link(link, maps, netmtu, udp_io)
        }));
        runner
    })
    .map_err(|e| Failure::new(FailureKind::Config, e.to_string()))
}

/// Under rotord: the start message, then the service loop until rotord says stop.
fn service_main(fd: i32) -> ExitCode {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD on any integer is harmless: it fails with EBADF when nothing is open there.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        tracing::error!(
            target: "MAIN",
            "--control-fd {fd}: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::from(15);
    }
    // SAFETY: the descriptor is open (checked above) and rotord passes it for us alone; nothing
    // else in this process refers to it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut control = match Control::new(sock) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "MAIN", "control fd {fd}: {e}");
            return ExitCode::from(15);
        }
    };
    let (start, fds) = match control.receive_start(START_WAIT) {
        Ok(got) => got,
        Err(e) => {
            tracing::error!(target: "MAIN", "{e}");
            return ExitCode::from(15);
        }
    };
    let runner = start_maps(&start, fds).and_then(|maps| set_up(&start, maps));
    let mut runner = match runner {
        Ok(r) => r,
        Err(f) => {
            // rotord logs it, with what it decides.
            control.report(&FromDataplane::Failed {
                kind: f.kind,
                message: f.message.clone(),
            });
            return f.exit_code();
        }
    };
    if let Some(q) = &start.quorum {
        let settings = rotor_dataplane::quorum::settings(q);
        runner
            .node_mut()
            .enable_votequorum(settings, q.ev_tracking_barrier);
    }
    drop_privileges(&runner.transports().collect::<Vec<_>>(), true);
    serve(&mut runner, &mut control, &start)
}

/// The XDP programs' maps that come with the start message, one entry per link: none for a
/// link on kernel UDP, the `xsks` and `counters` maps (in that order, links in order)
/// otherwise, each checked to be the map it should be.
fn start_maps(
    start: &DataplaneStart,
    fds: Vec<OwnedFd>,
) -> Result<Vec<Option<xdp_prog::SteerMaps>>, Failure> {
    let xdp_links = start.links.iter().filter(|l| l.transport.is_xdp()).count();
    if fds.len() != 2 * xdp_links {
        return Err(Failure::new(
            FailureKind::Config,
            format!(
                "the start message came with {} descriptors, but its {xdp_links} XDP link(s) \
                 need {}",
                fds.len(),
                2 * xdp_links
            ),
        ));
    }
    let mut fds = fds.into_iter();
    start
        .links
        .iter()
        .map(|link| {
            if !link.transport.is_xdp() {
                return Ok(None);
            }
            let xsks = fds.next().expect("counted above");
            let counters = fds.next().expect("counted above");
            xdp_prog::SteerMaps::from_fds(xsks, counters)
                .map(Some)
                .map_err(|e| {
                    Failure::new(
                        FailureKind::Transport,
                        format!("link {}: {e}", link.settings.number),
                    )
                })
        })
        .collect()
}

/// Started by hand: the start message from the flags (the key file read here, only when the
/// crypto mode needs one), then one CPG group joined and every event printed.
fn start_from_args(args: &Args) -> Result<DataplaneStart, Failure> {
    let required = |what: &str| Failure::new(FailureKind::Config, format!("--{what} is required"));
    let cluster_name = args
        .cluster_name
        .clone()
        .ok_or_else(|| required("cluster-name"))?;
    let mode = CryptoMode::from_corosync(&args.crypto_cipher, &args.crypto_hash)
        .map_err(|e| Failure::new(FailureKind::Config, format!("crypto: {e}")))?;
    let authkey = if mode == CryptoMode::None {
        Vec::new()
    } else {
        let keyfile = args.keyfile.as_ref().ok_or_else(|| required("keyfile"))?;
        // Read through Keys so the file's type, mode and length are checked as rotord checks them.
        Keys::from_authkey_file(keyfile, &cluster_name)
            .map_err(|e| Failure::new(FailureKind::Key, e.to_string()))?;
        std::fs::read(keyfile)
            .map_err(|e| Failure::new(FailureKind::Key, format!("{}: {e}", keyfile.display())))?
    };
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // As a config would resolve --token-ms (the other timeouts derive from it), then the
    // --totem values as they are; the node validates the result.
    let bind = args.bind.ok_or_else(|| required("bind"))?;
    let shape = cluster_shape(args.peers.len(), bind.is_ipv6(), mode);
    let hand: Vec<(&str, u32)> = args.token_ms.map(|ms| ("token", ms)).into_iter().collect();
    let resolved = TotemSettings::resolve(explicit(&hand), &shape)
        .map_err(|e| Failure::new(FailureKind::Config, format!("--token-ms: {e}")))?;
    let mut totem = resolved.named();
    totem.extend(args.totem.iter().cloned());
    let mut peers = args.peers.clone();
    peers.sort_by_key(|(id, _)| *id);
    Ok(DataplaneStart {
        node_id: args.node_id.ok_or_else(|| required("node-id"))?,
        links: vec![LinkStart {
            settings: rotor_endpoint::link::default_link0(&resolved),
            local: bind,
            peers,
            transport: args.transport.into(),
            interface: args.interface.clone(),
        }],
        link_mode: LinkMode::Passive,
        cluster_name,
        crypto_mode: mode.wire_byte(),
        authkey,
        epoch: since_epoch.as_secs() as u32,
        ring_seq_start: args.ring_seq,
        totem,
        multicast: args.mcast.map(|group| MulticastSettings {
            group,
            ttl: args.mcast_ttl,
        }),
        poll_mode: PollMode::Auto,
        poll_spin_us: 10,
        kernel_udp: args.kernel_udp,
        core: args.core,
        seed: since_epoch.as_nanos() as u64 ^ u64::from(std::process::id()),
        quorum: None,
    })
}

fn hand_main(args: &Args) -> ExitCode {
    let start = match start_from_args(args) {
        Ok(s) => s,
        Err(f) => {
            tracing::error!(target: "MAIN", "{}", f.message);
            return f.exit_code();
        }
    };
    let maps = match args.xdp_maps_fd {
        None => None,
        Some(_) if args.transport == TransportKind::Udp => {
            tracing::error!(target: "MAIN", "--xdp-maps-fd needs --transport xdp or auto");
            return ExitCode::from(8);
        }
        Some(fds) => match inherited_maps(fds, None) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(target: "MAIN", "--xdp-maps-fd: {e}");
                return ExitCode::from(8);
            }
        },
    };
    let mut runner = match set_up(&start, vec![maps]) {
        Ok(r) => r,
        Err(f) => {
            tracing::error!(target: "MAIN", "{}", f.message);
            return f.exit_code();
        }
    };
    drop_privileges(&runner.transports().collect::<Vec<_>>(), false);
    let pid = std::process::id();
    let cluster_size = start.peers().len() + 1;
    let group = args.group.as_bytes().to_vec();
    let mut joined = false;
    let mut ready = false;
    let mut sent = 0u32;
    let mut line = String::new();
    while !TERM.load(Ordering::SeqCst) {
        if !joined {
            match runner
                .node_mut()
                .submit(Request::Join { group: &group, pid })
            {
                Ok(()) => joined = true,
                Err(SubmitError::TryAgain) => {}
                Err(e) => {
                    tracing::error!(target: "CPG", "join: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        while ready && sent < args.send {
            let data = payload(start.node_id, sent, args.size);
            let req = Request::Mcast {
                group: &group,
                pid,
                guarantee: Guarantee::Agreed,
                data: &data,
            };
            match runner.node_mut().submit(req) {
                Ok(()) => sent += 1,
                Err(SubmitError::TryAgain) => break,
                Err(e) => {
                    tracing::error!(target: "CPG", "mcast: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let result = runner.turn(Duration::from_millis(50), &[], |ev| {
            if let Event::Group(g) = ev {
                if g.group == group {
                    let mut nodes: Vec<u32> = g.members.iter().map(|m| m.node.0).collect();
                    nodes.dedup();
                    ready = nodes.len() >= cluster_size;
                }
            }
            print_event(ev, &mut line);
        });
        if let Err(e) = result {
            tracing::error!(target: "TOTEM", "{e}");
            return ExitCode::FAILURE;
        }
        if runner.token_passed() {
            runner.maintain();
        }
    }
    runner.node_mut().leave();
    let _ = runner.flush();
    // Drops are in the stats line too (`crypto.drops.*`, `net.drops.*`).
    tracing::info!(target: "MAIN", "{}", runner.transport().stats_line());
    let mut stats = rotor_dataplane::stats::Sheet::new();
    runner.counters(&mut stats);
    tracing::info!(target: "MAIN", "stats {}", stats.line());
    ExitCode::SUCCESS
}

/// Service mode: CPG sessions from rotord until it says stop, hangs up, or SIGTERM.
fn serve(
    runner: &mut Runner<AnyTransport>,
    control: &mut Control,
    start: &DataplaneStart,
) -> ExitCode {
    let spin = Duration::from_micros(u64::from(start.poll_spin_us));
    let poll = match start.poll_mode {
        PollMode::Busy => PollChoice::Fixed(PollLoop::Busy),
        PollMode::Adaptive => PollChoice::Fixed(PollLoop::Adaptive { spin }),
        PollMode::Blocking => PollChoice::Fixed(PollLoop::Blocking),
        PollMode::Auto => PollChoice::Auto(auto::start(start.core.is_some(), spin)),
    };
    let mode = match &poll {
        PollChoice::Fixed(mode) => mode.describe(),
        PollChoice::Auto(auto) => format!("auto, now {}", auto.get().describe()),
    };
    rotor_log::notice!(
        target: "MAIN",
        "node {} serving on {} ({}), poll mode {}",
        start.node_id,
        runner.local_addr(),
        runner.transport().name(),
        mode
    );
    // Only a loop that may sleep pays for how an idle CPU wakes.
    if !matches!(poll, PollChoice::Fixed(PollLoop::Busy)) {
        if let Some(cost) = auto::idle_cost() {
            tracing::info!(target: "MAIN", "{cost}");
        }
    }
    match rotor_dataplane::service::run(runner, control, &poll, &|| TERM.load(Ordering::SeqCst)) {
        Ok(()) => {
            let why = if TERM.load(Ordering::SeqCst) {
                "on a signal"
            } else {
                "as rotord asked, or because it is gone"
            };
            rotor_log::notice!(
                target: "MAIN",
                "node {} left the ring {why}; the dataplane exits",
                start.node_id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            // rotord logs it, with what it decides.
            control.report(&FromDataplane::Failed {
                kind: FailureKind::Runtime,
                message: e.to_string(),
            });
            ExitCode::from(15)
        }
    }
}

/// Once every link's transport is set up, keeps only what running them needs, in the effective
/// and permitted sets, and nothing inheritable or ambient:
/// - AF_XDP on a program this process loaded: NET_ADMIN and BPF (SYS_ADMIN on kernels without
///   CAP_BPF), to detach the program on exit;
/// - AF_XDP on maps inherited from rotord: nothing, unless this kernel wants CAP_BPF to read
///   the counters map (before 6.5, with unprivileged BPF disabled, every bpf(2) call does) —
///   found out by reading it once with an empty effective set; and, when `under_rotord`,
///   NET_RAW and IPC_LOCK, to open the AF_XDP socket (and pin the UMEM) of a link a reload
///   adds on the program rotord attaches for it;
/// - kernel UDP: nothing.
///
/// The bounding set is rotord's business (this process has no CAP_SETPCAP to change it).
/// Without capabilities there is nothing to do.
fn drop_privileges(transports: &[&AnyTransport], under_rotord: bool) {
    use caps::{CapSet, Capability};
    let Ok(permitted) = caps::read(None, CapSet::Permitted) else {
        return;
    };
    if permitted.is_empty() {
        return;
    }
    let bpf = if caps::runtime::thread_all_supported().contains(&Capability::CAP_BPF) {
        Capability::CAP_BPF
    } else {
        Capability::CAP_SYS_ADMIN
    };
    let only = |list: &[Capability]| -> caps::CapsHashSet {
        list.iter()
            .copied()
            .filter(|c| permitted.contains(c))
            .collect()
    };
    let xsks: Vec<&xsk::XskTransport> = transports
        .iter()
        .filter_map(|t| match t {
            AnyTransport::Xdp(x) => Some(x.as_ref()),
            AnyTransport::Udp(_) => None,
        })
        .collect();
    // Opening a link a reload adds on XDP: decided first, so the probe below keeps it.
    let open = if under_rotord && !xsks.is_empty() {
        only(&[Capability::CAP_NET_RAW, Capability::CAP_IPC_LOCK])
    } else {
        caps::CapsHashSet::new()
    };
    let (mut keep, mut why) = match xsks.first() {
        _ if xsks.iter().any(|x| x.owns_program()) => (
            only(&[Capability::CAP_NET_ADMIN, bpf]),
            " (to detach its XDP program on exit)".to_owned(),
        ),
        Some(x) => {
            // BPF stays permitted (not effective) for the probe, then goes or comes back.
            let mut probe_set = only(&[bpf]);
            probe_set.extend(open.iter().copied());
            let probe = caps::clear(None, CapSet::Effective)
                .and_then(|()| caps::set(None, CapSet::Permitted, &probe_set));
            if probe.is_ok() && x.xdp_counters().is_err() {
                (
                    only(&[bpf]),
                    " (this kernel needs it to read the XDP counters map)".to_owned(),
                )
            } else {
                (caps::CapsHashSet::new(), String::new())
            }
        }
        None => (caps::CapsHashSet::new(), String::new()),
    };
    if !open.is_empty() {
        keep.extend(open);
        why.push_str(" (net_raw, ipc_lock: to open the AF_XDP socket of a link a reload adds)");
    }
    let result = caps::clear(None, CapSet::Ambient)
        .and_then(|()| caps::clear(None, CapSet::Inheritable))
        .and_then(|()| caps::set(None, CapSet::Effective, &keep))
        .and_then(|()| caps::set(None, CapSet::Permitted, &keep));
    match result {
        Ok(()) => {
            let mut names: Vec<String> =
                keep.iter().map(|c| c.to_string().to_lowercase()).collect();
            names.sort();
            rotor_log::notice!(
                target: "MAIN",
                "privileges dropped after set-up: keeps {}{why}",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(",")
                }
            );
        }
        Err(e) => tracing::error!(target: "MAIN", "could not drop privileges: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_fd_pairs_are_validated() {
        assert_eq!(parse_fd_pair("4,5"), Ok((4, 5)));
        assert!(parse_fd_pair("4").is_err());
        assert!(parse_fd_pair("4,4").is_err(), "one fd for two maps");
        assert!(parse_fd_pair("1,5").is_err(), "a standard stream");
        assert!(parse_fd_pair("4,x").is_err());
    }

    #[test]
    fn a_closed_or_control_fd_is_not_taken() {
        assert!(inherited_maps((4, 5), Some(4))
            .unwrap_err()
            .contains("--control-fd"));
        // Far above anything this test process has open.
        assert!(inherited_maps((1_000_000, 1_000_001), None).is_err());
    }
}
