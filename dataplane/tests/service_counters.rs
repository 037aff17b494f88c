//! The service's counters move (no root, loopback): a one-node ring on 127.0.0.1 serves a CPG
//! client over small (64 KiB) rings; the client multicasts without reading, so its deliveries
//! back up (`ipc.records_backlogged`, `ipc.backlog_bytes`); once it reads everything the backlog
//! drains to zero, and when it goes away it is counted as `ipc.disconnects.gone`. The
//! published list also carries the runner's `net.*`/`srp.*` keys. Every wait is bounded.

use std::sync::mpsc::{channel, TryRecvError};
use std::time::{Duration, Instant};

use ipc_shm::{AllowList, Client, Server, ServerConfig, WaitMode};
use rotor_crypto::{CryptoMode, Keys};
use rotor_dataplane::runner::{Runner, RunnerConfig};
use rotor_dataplane::service::{stats_counters, Clients};
use rotor_dataplane::stats::Sheet;
use rotor_dataplane::transport::udp::UdpTransport;
use rotor_proto::cpg as proto;
use totem_core::config::explicit;
use totem_core::{ClusterShape, TotemSettings};

const MESSAGES: usize = 300;
const SIZE: usize = 1000;

#[test]
fn backpressure_and_disconnects_are_counted() {
    let udp = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let totem = TotemSettings::resolve(explicit(&[("token", 200)]), &ClusterShape::ALONE).unwrap();
    let mut runner = Runner::new(
        RunnerConfig {
            node_id: 1,
            peers: Vec::new(),
            keys: Keys::from_authkey_bytes(&[9; 256], "svc").unwrap(),
            cluster_name: "svc".into(),
            mode: CryptoMode::Gcm256,
            totem,
            epoch: 1,
            ring_seq_start: 0,
            seed: 7,
            links: None,
        },
        udp,
    )
    .unwrap();
    let name = format!("rotor-dp-svc-counters-{}", std::process::id());
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let data_size = 64 << 10;
    let server = Server::bind_with(
        &name,
        AllowList::root_only().allow_uid(uid),
        ServerConfig {
            data_size,
            record_size_max: ipc_shm::layout::record_size_max_for(data_size),
            ..ServerConfig::default()
        },
    )
    .unwrap();

    // The client: join, multicast everything without reading, then (when told) read every
    // delivery, then go away.
    let (read_now_tx, read_now) = channel::<()>();
    let (done_tx, done) = channel::<usize>();
    let client = std::thread::spawn(move || {
        let mut s = Client::connect(&name).unwrap();
        let mut rec = Vec::new();
        proto::Request::Join {
            group: b"g",
            flags: 0,
        }
        .encode(1, &mut rec);
        s.send(&rec, WaitMode::Blocking).unwrap();
        let data = vec![0x5a; SIZE];
        for i in 0..MESSAGES {
            let req = proto::Request::Mcast {
                guarantee: proto::Guarantee::Agreed,
                data: &data,
            };
            req.encode(2 + i as u32, &mut rec);
            s.send(&rec, WaitMode::Blocking).unwrap();
        }
        read_now.recv_timeout(Duration::from_secs(30)).unwrap();
        let mut buf = vec![0u8; 128 << 10];
        let mut delivered = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while delivered < MESSAGES && Instant::now() < deadline {
            let wait = Some(Duration::from_millis(100));
            let n = match s.recv_timeout(&mut buf, WaitMode::Blocking, wait) {
                Ok(n) => n,
                Err(ipc_shm::SessionError::TimedOut) => continue,
                Err(e) => panic!("client recv: {e}"),
            };
            if let Ok(proto::Event::Deliver { .. }) = proto::Event::decode(&buf[..n]) {
                delivered += 1;
            }
        }
        done_tx.send(delivered).unwrap();
    });

    let session = server.accept().unwrap();
    let mut clients = Clients::new(1);
    clients.adopt(session);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut told = false;
    let mut delivered = None;
    let mut fds = Vec::new();
    let mut stats = Sheet::new();
    loop {
        stats_counters(&runner, &clients, &mut stats);
        assert!(
            Instant::now() < deadline,
            "timed out; stats: {}",
            stats.line()
        );
        clients.serve(&mut runner);
        fds.clear();
        clients.arm(&mut fds, !runner.node().submit_can_wait());
        runner
            .turn(Duration::from_millis(5), &fds, |ev| clients.on_event(ev))
            .unwrap();
        clients.check_peers();
        stats_counters(&runner, &clients, &mut stats);
        if !told && stats.get("ipc.records_backlogged") > 0 && stats.get("ipc.backlog_bytes") > 0 {
            // The client's ring is full and records wait here: let it read.
            read_now_tx.send(()).unwrap();
            told = true;
        }
        if delivered.is_none() {
            match done.try_recv() {
                Ok(n) => delivered = Some(n),
                Err(TryRecvError::Empty) => {}
                Err(e) => panic!("client thread: {e}"),
            }
        }
        if delivered.is_some() && clients.is_empty() {
            break;
        }
    }
    client.join().unwrap();
    assert_eq!(delivered, Some(MESSAGES), "the client got every delivery");
    stats_counters(&runner, &clients, &mut stats);
    eprintln!("stats: {}", stats.line());
    assert_eq!(stats.get("ipc.clients_attached"), 1);
    assert_eq!(stats.get("ipc.requests"), 1 + MESSAGES as u64);
    assert!(stats.get("ipc.records_backlogged") > 0);
    assert!(stats.get("ipc.backlog_bytes_max") > 0);
    assert_eq!(stats.get("ipc.backlog_bytes"), 0, "drained");
    assert!(stats.get("ipc.records_out") >= 2 + MESSAGES as u64);
    assert_eq!(stats.get("ipc.clients_disconnected"), 1);
    assert_eq!(stats.get("ipc.disconnects.gone"), 1);
    assert_eq!(stats.get("ipc.clients"), 0);
    assert!(stats.get("srp.delivered") > 0);
    assert!(stats.get("srp.token_rotations") > 0);
    assert!(stats.get("crypto.frames_sealed") > 0);
}
