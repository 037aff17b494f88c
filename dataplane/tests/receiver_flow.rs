//! Receiver flow control on real sockets (no root, loopback): two nodes, each a runner and its
//! `Clients` driven by this test's loop. Node 1's client joins and then reads nothing; node 2's
//! client multicasts large messages as fast as its ring takes them and reads its own
//! deliveries. Once more than `INTAKE_PAUSE_BYTES` are queued for node 1's client, node 1
//! pauses that client's intake and its token visits claim the window (`srp.window_claimed`),
//! which holds node 2's sender back — but only for `RECEIVER_BEHIND_MAX`: a client that reads
//! nothing must not stall the cluster, so node 2's traffic resumes, node 1's client reaches
//! `CLIENT_BACKLOG_BYTES_MAX` and is disconnected as slow, and node 2's client gets every one
//! of its messages, on the same ring. Every wait is bounded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc_shm::{AllowList, Client, Server, ServerConfig, Session, SessionError, WaitMode};
use rotor_crypto::{CryptoMode, Keys};
use rotor_dataplane::runner::{Runner, RunnerConfig};
use rotor_dataplane::service::{stats_counters, Clients, CLIENT_BACKLOG_BYTES_MAX};
use rotor_dataplane::stats::Sheet;
use rotor_dataplane::transport::udp::UdpTransport;
use rotor_proto::cpg as proto;
use totem_core::config::explicit;
use totem_core::TotemSettings;

/// Large messages (fragmented) so the backlog fills in few of them.
const SIZE: usize = 60_000;
/// Enough for node 1's backlog to pass `CLIENT_BACKLOG_BYTES_MAX` with room to spare.
const MESSAGES: usize = CLIENT_BACKLOG_BYTES_MAX / SIZE * 3 / 2;

fn runner(id: u32, udp: UdpTransport, peer: (u32, SocketAddr)) -> Runner<UdpTransport> {
    let shape = rotor_dataplane::runner::cluster_shape(1, false, CryptoMode::Gcm256);
    let totem = TotemSettings::resolve(explicit(&[("token", 1000)]), &shape).unwrap();
    Runner::new(
        RunnerConfig {
            node_id: id,
            peers: vec![peer],
            keys: Keys::from_authkey_bytes(&[3; 256], "rflow").unwrap(),
            cluster_name: "rflow".into(),
            mode: CryptoMode::Gcm256,
            totem,
            epoch: 1,
            ring_seq_start: 0,
            seed: u64::from(id),
            links: None,
        },
        udp,
    )
    .unwrap()
}

fn server(name: &str) -> Server {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let data_size = 1 << 20;
    Server::bind_with(
        name,
        AllowList::root_only().allow_uid(uid),
        ServerConfig {
            data_size,
            record_size_max: ipc_shm::layout::record_size_max_for(data_size),
            ..ServerConfig::default()
        },
    )
    .unwrap()
}

fn join(s: &mut Session, rec: &mut Vec<u8>) {
    proto::Request::Join {
        group: b"g",
        flags: 0,
    }
    .encode(1, rec);
    s.send(rec, WaitMode::Blocking).unwrap();
}

#[test]
fn a_client_that_reads_nothing_holds_the_ring_back_briefly_then_is_disconnected() {
    let udp1 = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let udp2 = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (a1, a2) = (udp1.local_addr().unwrap(), udp2.local_addr().unwrap());
    let mut nodes = [runner(1, udp1, (2, a2)), runner(2, udp2, (1, a1))];
    let pid = std::process::id();
    let names = [
        format!("rotor-rflow-1-{pid}"),
        format!("rotor-rflow-2-{pid}"),
    ];
    let servers = [server(&names[0]), server(&names[1])];
    let stop = Arc::new(AtomicBool::new(false));

    // Node 1's client: joins, then holds its session open without reading until told to stop.
    let stuck = {
        let (name, stop) = (names[0].clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = Client::connect(&name).unwrap();
            join(&mut s, &mut Vec::new());
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // Node 2's client: joins, waits for the two-member group, then sends everything and
    // reads its own deliveries; returns how many of them it got.
    let sender = {
        let name = names[1].clone();
        std::thread::spawn(move || {
            let mut s = Client::connect(&name).unwrap();
            let mut rec = Vec::new();
            let mut buf = vec![0u8; 1 << 20];
            join(&mut s, &mut rec);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut members = 0;
            let mut delivered = 0;
            let mut sent = 0;
            let data = vec![0x5a; SIZE];
            while delivered < MESSAGES && Instant::now() < deadline {
                // As many requests as its ring takes, then every record waiting, then a short
                // sleep for one when there was none.
                while members >= 2 && sent < MESSAGES {
                    proto::Request::Mcast {
                        guarantee: proto::Guarantee::Agreed,
                        data: &data,
                    }
                    .encode(2 + sent as u32, &mut rec);
                    match s.try_send(&rec) {
                        Ok(()) => sent += 1,
                        Err(SessionError::Full) => break,
                        Err(e) => panic!("sender send: {e}"),
                    }
                }
                let mut got = 0;
                loop {
                    let n = match s.try_recv(&mut buf) {
                        Ok(n) => n,
                        Err(SessionError::Empty) if got > 0 => break,
                        Err(SessionError::Empty) => {
                            let wait = Some(Duration::from_millis(1));
                            match s.recv_timeout(&mut buf, WaitMode::Blocking, wait) {
                                Ok(n) => n,
                                Err(SessionError::TimedOut) => break,
                                Err(e) => panic!("sender recv: {e}"),
                            }
                        }
                        Err(e) => panic!("sender recv: {e}"),
                    };
                    got += 1;
                    match proto::Event::decode(&buf[..n]) {
                        Ok(proto::Event::Deliver { .. }) => delivered += 1,
                        // Once both joined it sends on, also after node 1's client is dropped.
                        Ok(proto::Event::ConfChg { members: m, .. }) => {
                            members = members.max(m.len())
                        }
                        _ => {}
                    }
                }
            }
            delivered
        })
    };

    let mut clients = [Clients::new(1), Clients::new(2)];
    for (c, s) in clients.iter_mut().zip(&servers) {
        c.adopt(s.accept().unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut fds = Vec::new();
    let mut rings = None;
    let mut one = Sheet::new();
    while !sender.is_finished() {
        stats_counters(&nodes[0], &clients[0], &mut one);
        assert!(
            Instant::now() < deadline,
            "timed out; node 1: {}",
            one.line()
        );
        for (runner, c) in nodes.iter_mut().zip(clients.iter_mut()) {
            c.serve(runner);
            fds.clear();
            c.arm(&mut fds, !runner.node().submit_can_wait());
            runner
                .turn(Duration::from_micros(200), &fds, |ev| c.on_event(ev))
                .unwrap();
            c.check_peers();
        }
        stats_counters(&nodes[0], &clients[0], &mut one);
        let installed = one.get("srp.rings_installed");
        if nodes.iter().all(|n| n.node().members().len() == 2) {
            rings.get_or_insert(installed);
        }
    }
    let delivered = sender.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    stuck.join().unwrap();

    stats_counters(&nodes[0], &clients[0], &mut one);
    eprintln!("node 1: {}", one.line());
    assert_eq!(
        delivered, MESSAGES,
        "node 2's client got every one of its messages"
    );
    assert_eq!(
        one.get("ipc.intake_paused"),
        1,
        "paused once, never resumed"
    );
    assert!(
        one.get("srp.window_claimed") > 0,
        "node 1 held the ring back"
    );
    assert_eq!(
        one.get("ipc.disconnects.slow"),
        1,
        "then let it go and dropped its client"
    );
    assert_eq!(
        Some(one.get("srp.rings_installed")),
        rings,
        "on the same ring throughout"
    );
}
