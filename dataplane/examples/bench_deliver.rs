//! `cargo xtask bench deliver [--sizes 64,4096,65536] [--runs 5]`: the delivery path of the
//! dataplane without the network — a node alone in its ring (totem-core: packing, the store,
//! ordering, unpacking) and the CPG service writing each delivery into a client's shared-memory
//! ring (`service::Clients::on_event`), which the client reads (copies out and decodes) after
//! every turn. All on one thread, so the figure — messages per second read by the client, and
//! MB/s of payload — is CPU cost, not cross-core latency; `backlogged` counts records that found
//! the ring full and took the service's slow path. Nothing is asserted beyond every delivery
//! arriving.

use std::process::ExitCode;
use std::time::Instant as Wall;

use ipc_shm::{AllowList, Client, Server, ServerConfig, SessionError, WaitMode};
use rotor_crypto::{CryptoMode, Keys};
use rotor_dataplane::runner::{Runner, RunnerConfig};
use rotor_dataplane::service::Clients;
use rotor_dataplane::transport::udp::UdpTransport;
use rotor_proto::cpg as proto;
use totem_core::{Guarantee, Instant, Request, TotemSettings};

const GROUP: &[u8] = b"bench";

/// Messages per run: a budget of 512 MiB of payload, between 2,000 and 1,000,000 messages.
fn messages_for(size: usize) -> usize {
    ((512usize << 20) / size.max(1)).clamp(2_000, 1_000_000)
}

/// Messages per second read by the client, and records that found its ring full (copied into
/// the service's backlog, the slow path).
fn run(size: usize, messages: usize, run_index: usize) -> (f64, u64) {
    let udp = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let mut runner = Runner::new(
        RunnerConfig {
            node_id: 1,
            peers: Vec::new(),
            keys: Keys::from_authkey_bytes(&[9; 256], "bench").unwrap(),
            cluster_name: "bench".into(),
            mode: CryptoMode::Gcm256,
            totem: TotemSettings::default(),
            epoch: 1,
            ring_seq_start: 0,
            seed: 7,
            links: None,
        },
        udp,
    )
    .expect("runner");
    let name = format!("rotor-bench-deliver-{}-{run_index}", std::process::id());
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let server = Server::bind_with(
        &name,
        AllowList::root_only().allow_uid(uid),
        ServerConfig::default(),
    )
    .expect("server");
    let connecting = std::thread::spawn(move || Client::connect(&name).expect("connect"));
    let mut clients = Clients::new(1);
    clients.adopt(server.accept().expect("accept"));
    let mut client = connecting.join().expect("client");
    let mut record = Vec::new();
    proto::Request::Join {
        group: GROUP,
        flags: 0,
    }
    .encode(1, &mut record);
    client.send(&record, WaitMode::Busy).expect("join");
    let mut buf = vec![0u8; client.recv_size_max()];
    let pid = std::process::id();
    let payload = vec![0x5au8; size];
    let mut now = 0u64;
    let (mut submitted, mut read) = (0, 0);
    let mut t0 = None;
    while read < messages {
        clients.serve(&mut runner);
        let node = runner.node_mut();
        let in_group = node.group_members(GROUP).iter().any(|m| m.pid == pid);
        while in_group && submitted < messages && node.queued_bytes() < 1 << 20 {
            let request = Request::Mcast {
                group: GROUP,
                pid,
                guarantee: Guarantee::Agreed,
                data: &payload,
            };
            if node.submit(request).is_err() {
                break;
            }
            submitted += 1;
            t0.get_or_insert_with(Wall::now);
        }
        now = node.poll_timeout().map_or(now, |t| t.0.max(now));
        node.handle_timeout(Instant(now));
        while node.poll_transmit().is_some() {}
        while let Some(event) = node.poll_event() {
            clients.on_event(&event);
        }
        // The application's side: read everything that arrived.
        loop {
            let n = match client.try_recv(&mut buf) {
                Ok(n) => n,
                Err(SessionError::Empty) => break,
                Err(e) => panic!("client: {e}"),
            };
            if let Ok(proto::Event::Deliver { data, .. }) = proto::Event::decode(&buf[..n]) {
                assert_eq!(data.len(), size);
                read += 1;
            }
        }
    }
    let rate = messages as f64 / t0.expect("submitted").elapsed().as_secs_f64();
    (rate, clients.counters().records_backlogged)
}

fn main() -> ExitCode {
    let mut sizes = vec![64usize, 4096, 65536];
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--sizes" => sizes = value.split(',').filter_map(|s| s.parse().ok()).collect(),
            "--runs" => runs = value.parse().unwrap_or(0),
            _ => {
                eprintln!("usage: bench_deliver [--sizes 64,4096,65536] [--runs 5]");
                return ExitCode::FAILURE;
            }
        }
    }
    if runs == 0 || sizes.is_empty() {
        eprintln!("bench_deliver: --runs and --sizes must not be empty");
        return ExitCode::FAILURE;
    }
    println!(
        "bench deliver: one node alone, the CPG service writing into one client's ring, the \
         client reading it, one thread, no network"
    );
    for size in sizes {
        let messages = messages_for(size);
        let mut rates = Vec::new();
        for run_index in 0..runs {
            let (rate, backlogged) = run(size, messages, run_index);
            println!(
                "deliver size={size} run={run_index} msgs_per_s={rate:.0} MBps={:.1} \
                 backlogged={backlogged}",
                rate * size as f64 / 1e6
            );
            rates.push(rate);
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[runs / 2];
        println!(
            "deliver size={size} median msgs_per_s={median:.0} MBps={:.1}",
            median * size as f64 / 1e6
        );
    }
    ExitCode::SUCCESS
}
