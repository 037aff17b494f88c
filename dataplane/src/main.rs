//! `rotor-dataplane`: one rotor node. Started by rotord with `--control-fd`, it serves the CPG
//! sessions rotord hands over; started by hand (tests, experiments), it joins one CPG group
//! itself, optionally multicasts test messages and prints every event as one line.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rotor_crypto::{CryptoMode, Keys};
use rotor_dataplane::any::{AnyTransport, TransportKind};
use rotor_dataplane::fnv1a32_parts;
use rotor_dataplane::mcast::Multicast;
use rotor_dataplane::runner::{Runner, RunnerConfig};
use totem_core::{ConfigKind, Event, Guarantee, Request, SubmitError, TotemConfig};

#[derive(Parser, Debug)]
#[command(
    name = "rotor-dataplane",
    about = "Run one rotor node over kernel UDP or AF_XDP"
)]
struct Args {
    #[arg(long)]
    node_id: u32,
    /// Local address and cluster port, e.g. 198.18.0.1:5405 or [2001:2::1]:5405.
    #[arg(long)]
    bind: SocketAddr,
    /// Another node: ID=ADDR:PORT (repeat).
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(u32, SocketAddr)>,
    #[arg(long)]
    keyfile: PathBuf,
    #[arg(long)]
    cluster_name: String,
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
    /// window_size, max_messages, …; times in ms). Repeatable.
    #[arg(long = "totem", value_parser = parse_kv)]
    totem: Vec<(String, u32)>,
    /// corosync's crypto_cipher and crypto_hash.
    #[arg(long, default_value = "aes256")]
    crypto_cipher: String,
    #[arg(long, default_value = "sha256")]
    crypto_hash: String,
    /// Serve CPG sessions handed over by rotord on this inherited SOCK_SEQPACKET descriptor.
    #[arg(long)]
    control_fd: Option<i32>,
    /// busy | adaptive | blocking | auto (service mode). auto: busy when pinned (--core) and
    /// the machine has a core to spare beyond the poller's, adaptive otherwise.
    #[arg(long, default_value = "auto")]
    poll: String,
    /// Microseconds the adaptive mode spins after the last work before sleeping.
    #[arg(long, default_value_t = 50)]
    spin_us: u64,
    /// CPU to pin the poll loop to.
    #[arg(long)]
    core: Option<usize>,
    /// udp, xdp, or auto (XDP when root and the interface accepts the program, else UDP).
    #[arg(long, default_value = "auto")]
    transport: TransportKind,
    /// The interface for XDP (default: the one holding the --bind address).
    #[arg(long)]
    interface: Option<String>,
    /// Multicast to this group (IPv4 or IPv6, the family of --bind) on the --bind port, as
    /// corosync's `transport: udp` does: frames for every member go once to the group, the
    /// token stays unicast. Without it every frame is unicast to each peer (`udpu`).
    #[arg(long)]
    mcast: Option<IpAddr>,
    /// TTL / hop limit of the multicast frames (corosync's `ttl`, default 1).
    #[arg(long, default_value_t = rotor_dataplane::mcast::TTL_DEFAULT)]
    mcast_ttl: u8,
}

fn parse_kv(s: &str) -> Result<(String, u32), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    let v = v.parse().map_err(|e| format!("{k}: {e}"))?;
    Ok((k.to_owned(), v))
}

/// Applies one `--totem KEY=VALUE`.
fn set_totem(t: &mut TotemConfig, key: &str, v: u32) -> Result<(), String> {
    match key {
        "token" => t.token_ms = v,
        "token_coefficient" => t.token_coefficient_ms = v,
        "token_retransmits_before_loss_const" => t.token_retransmits_before_loss_const = v,
        "token_retransmit" => t.token_retransmit_ms = v,
        "hold" => t.hold_ms = v,
        "join" => t.join_ms = v,
        "consensus" => t.consensus_ms = v,
        "merge" => t.merge_ms = v,
        "downcheck" => t.downcheck_ms = v,
        "fail_recv_const" => t.fail_recv_const = v,
        "seqno_unchanged_const" => t.seqno_unchanged_const = v,
        "window_size" => t.window_size = v,
        "max_messages" => t.max_messages = v,
        "send_join" => t.send_join_ms = v,
        "miss_count_const" => t.miss_count_const = v,
        "netmtu" => t.frame_size = v as usize,
        _ => return Err(format!("unknown totem key {key:?}")),
    }
    Ok(())
}

fn parse_peer(s: &str) -> Result<(u32, SocketAddr), String> {
    let (id, addr) = s.split_once('=').ok_or("expected ID=ADDR:PORT")?;
    let id = id.parse().map_err(|e| format!("node id: {e}"))?;
    let addr = addr.parse().map_err(|e| format!("address: {e}"))?;
    Ok((id, addr))
}

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
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

fn main() -> ExitCode {
    let args = Args::parse();
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
    let keys = match Keys::from_authkey_file(&args.keyfile, &args.cluster_name) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("rotor-dataplane: key file {}: {e}", args.keyfile.display());
            return ExitCode::FAILURE;
        }
    };
    let mut totem = TotemConfig::default();
    if let Some(ms) = args.token_ms {
        totem.token_ms = ms;
    }
    for (k, v) in &args.totem {
        if let Err(e) = set_totem(&mut totem, k, *v) {
            eprintln!("rotor-dataplane: --totem: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mode = match CryptoMode::from_corosync(&args.crypto_cipher, &args.crypto_hash) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("rotor-dataplane: crypto: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(core) = args.core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            eprintln!("rotor-dataplane: could not pin to CPU {core}; running unpinned");
        }
    }
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let pid = std::process::id();
    let cluster_size = args.peers.len() + 1;
    let mcast = match args.mcast {
        None => None,
        Some(ip) => match Multicast::new(ip, args.bind.port(), args.mcast_ttl)
            .and_then(|m| m.check_family(args.bind).map(|()| m))
        {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("rotor-dataplane: --mcast: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let opened = AnyTransport::open(
        args.transport,
        args.bind,
        args.interface.as_deref(),
        mcast.as_ref(),
    );
    let transport = match opened {
        Ok((t, why)) => {
            match mcast {
                Some(m) => eprintln!(
                    "rotor-dataplane: {why}; multicast to {} (ttl {})",
                    m.group(),
                    m.ttl
                ),
                None => eprintln!("rotor-dataplane: {why}; unicast to each peer"),
            }
            t
        }
        Err(e) => {
            eprintln!("rotor-dataplane: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runner = Runner::new(
        RunnerConfig {
            node_id: args.node_id,
            peers: args.peers.clone(),
            keys,
            cluster_name: args.cluster_name.clone(),
            mode,
            totem,
            epoch: since_epoch.as_secs() as u32,
            seed: since_epoch.as_nanos() as u64 ^ u64::from(pid),
        },
        transport,
    );
    let mut runner = match runner {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rotor-dataplane: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(fd) = args.control_fd {
        return serve(&mut runner, fd, &args);
    }
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
                    eprintln!("rotor-dataplane: join: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        while ready && sent < args.send {
            let data = payload(args.node_id, sent, args.size);
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
                    eprintln!("rotor-dataplane: mcast: {e}");
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
            eprintln!("rotor-dataplane: {e}");
            return ExitCode::FAILURE;
        }
    }
    runner.node_mut().leave();
    let _ = runner.flush();
    let drops = runner.drops();
    if !drops.by_reason.is_empty() {
        eprintln!("rotor-dataplane: drops {:?}", drops.by_reason);
    }
    eprintln!("rotor-dataplane: {}", runner.transport().stats_line());
    eprintln!(
        "rotor-dataplane: stats {}",
        rotor_dataplane::stats::line(&runner.counters())
    );
    ExitCode::SUCCESS
}

/// Service mode: CPG sessions from rotord until it says stop, hangs up, or SIGTERM.
fn serve(runner: &mut Runner<AnyTransport>, fd: i32, args: &Args) -> ExitCode {
    use rotor_dataplane::service::{run, Control, PollMode};
    use std::os::fd::FromRawFd;
    let mode = match args.poll.as_str() {
        "busy" => PollMode::Busy,
        "adaptive" => PollMode::Adaptive {
            spin: Duration::from_micros(args.spin_us),
        },
        "blocking" => PollMode::Blocking,
        "auto" => {
            // Online CPUs, not this thread's affinity (already narrowed by --core).
            // SAFETY: sysconf has no preconditions.
            let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
            let cpus = usize::try_from(online).unwrap_or(1).max(1);
            let (mode, why) = PollMode::auto(
                cpus,
                args.core.is_some(),
                Duration::from_micros(args.spin_us),
            );
            eprintln!("rotor-dataplane: [MAIN  ] poll auto: {mode:?} ({why})");
            mode
        }
        other => {
            eprintln!("rotor-dataplane: --poll {other}: expected busy, adaptive, blocking or auto");
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: rotord passes this descriptor for us alone and nothing else in this process
    // refers to it.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut control = match Control::new(sock) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rotor-dataplane: control fd {fd}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "rotor-dataplane: [MAIN  ] node {} serving on {} ({}), poll {:?}",
        args.node_id,
        runner.local_addr(),
        rotor_dataplane::transport::Transport::name(runner.transport()),
        mode
    );
    match run(runner, &mut control, mode, &|| TERM.load(Ordering::SeqCst)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rotor-dataplane: {e}");
            ExitCode::FAILURE
        }
    }
}
