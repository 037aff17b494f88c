//! `rotor-dataplane`: one node over kernel UDP, one CPG group, events printed one per line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rotor_crypto::{CryptoMode, Keys};
use rotor_dataplane::fnv1a32;
use rotor_dataplane::runner::{Runner, RunnerConfig};
use rotor_dataplane::udp::UdpTransport;
use totem_core::{ConfigKind, Event, Guarantee, Request, SubmitError, TotemConfig};

#[derive(Parser, Debug)]
#[command(name = "rotor-dataplane", about = "Run one rotor node over kernel UDP")]
struct Args {
    #[arg(long)]
    node_id: u32,
    /// Local address and cluster port, e.g. 198.18.0.1:5405.
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
                fnv1a32(d.data)
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
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let pid = std::process::id();
    let cluster_size = args.peers.len() + 1;
    let udp = match UdpTransport::bind(args.bind) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("rotor-dataplane: bind {}: {e}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    let runner = Runner::new(
        RunnerConfig {
            node_id: args.node_id,
            peers: args.peers.clone(),
            keys,
            cluster_name: args.cluster_name.clone(),
            mode: CryptoMode::default(),
            totem,
            epoch: since_epoch.as_secs() as u32,
            seed: since_epoch.as_nanos() as u64 ^ u64::from(pid),
        },
        udp,
    );
    let mut runner = match runner {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rotor-dataplane: {e}");
            return ExitCode::FAILURE;
        }
    };
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
    ExitCode::SUCCESS
}
