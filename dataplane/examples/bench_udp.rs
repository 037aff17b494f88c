//! `cargo xtask bench udp`: the two kernel-UDP providers side by side on loopback — round-trip
//! time of one 64-byte datagram (ping-pong, one thread, each side sleeping in `poll` on its
//! `wait_fd`) and one-way throughput of 1400-byte datagrams sent in batches of 32 per flush.
//! Numbers only; nothing is asserted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rotor_dataplane::poll::wait_readable;
use rotor_dataplane::transport::udp::UdpTransport;
use rotor_dataplane::transport::uring::UringTransport;
use rotor_dataplane::transport::Transport;

const ROUND_TRIPS: usize = 20_000;
const BURST_DATAGRAMS: usize = 200_000;

/// Waits for and takes one datagram (or any number) from `t`; returns how many.
fn take(t: &mut dyn Transport) -> usize {
    loop {
        let n = t.recv_batch(&mut |_, _| {}).expect("recv");
        if n > 0 {
            return n;
        }
        wait_readable(t.wait_fd(), &[], Duration::from_millis(100)).expect("poll");
    }
}

fn ping_pong(a: &mut dyn Transport, b: &mut dyn Transport) -> Vec<u64> {
    let (to_a, to_b) = (a.local_addr(), b.local_addr());
    let msg = [7u8; 64];
    let mut rtt = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t0 = Instant::now();
        assert!(a.send_to(&msg, to_b).unwrap());
        a.flush().unwrap();
        take(b);
        assert!(b.send_to(&msg, to_a).unwrap());
        b.flush().unwrap();
        take(a);
        rtt.push(t0.elapsed().as_nanos() as u64);
    }
    rtt.sort_unstable();
    rtt
}

/// Datagrams per second received out of `BURST_DATAGRAMS` sent (loss is possible and shown).
fn burst(a: &mut dyn Transport, b: &mut dyn Transport) -> (f64, usize) {
    let to_b: SocketAddr = b.local_addr();
    let msg = [9u8; 1400];
    let (mut sent, mut got) = (0, 0);
    let t0 = Instant::now();
    while sent < BURST_DATAGRAMS {
        for _ in 0..32 {
            if sent == BURST_DATAGRAMS || !a.send_to(&msg, to_b).unwrap() {
                break;
            }
            sent += 1;
        }
        a.flush().unwrap();
        a.recv_batch(&mut |_, _| {}).unwrap();
        while b.recv_batch(&mut |_, _| got += 1).unwrap() > 0 {}
    }
    let quiet = Instant::now() + Duration::from_millis(200);
    while Instant::now() < quiet {
        wait_readable(b.wait_fd(), &[], Duration::from_millis(20)).unwrap();
        while b.recv_batch(&mut |_, _| got += 1).unwrap() > 0 {}
    }
    let secs = t0.elapsed().as_secs_f64() - 0.2;
    (got as f64 / secs.max(1e-9), BURST_DATAGRAMS - got)
}

fn report(name: &str, a: &mut dyn Transport, b: &mut dyn Transport) {
    let rtt = ping_pong(a, b);
    let pct = |p: f64| rtt[((rtt.len() as f64 * p) as usize).min(rtt.len() - 1)] as f64 / 1000.0;
    let (rate, lost) = burst(a, b);
    println!(
        "| {name:<10} | {:>8.1} | {:>8.1} | {:>8.1} | {:>12.0} | {lost:>6} |",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        rate
    );
}

fn main() {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    println!("kernel UDP on loopback: {ROUND_TRIPS} ping-pongs of 64 B, {BURST_DATAGRAMS} x 1400 B one way");
    println!("| provider   | rtt p50 µs | p99 µs | p99.9 µs | 1400 B recv/s | lost |");
    println!("|------------|-----------:|-------:|---------:|-------------:|-----:|");
    let mut a = UdpTransport::bind(addr).unwrap();
    let mut b = UdpTransport::bind(addr).unwrap();
    report("socket", &mut a, &mut b);
    match (UringTransport::bind(addr), UringTransport::bind(addr)) {
        (Ok(mut a), Ok(mut b)) => report("io_uring", &mut a, &mut b),
        (Err(e), _) | (_, Err(e)) => println!("| io_uring   | unavailable: {e} |"),
    }
}
