//! ipc-shm latency and throughput over a real attached session (server and client in one
//! process, on two pinned cores): one-way latency from a timestamp written by the producer and
//! read by the consumer, in busy-poll and blocking mode, and throughput at 64 B and 1 KiB.
//!
//! Run with `cargo xtask bench ipc` (= `cargo run --release -p ipc-shm --example bench_ipc`).
//! Prints one line per (mode, size):
//! `ipc-shm mode=busy size=64 p50_ns=… p99_ns=… p999_ns=… msgs_per_s=… ratio_p50=… …`.
//! With `--dist` (rotor-bench's `bench rings` passes it) each latency line is followed by its
//! full distribution: `ipc-shm dist mode=busy size=64 count=… dist_ns=50:…,75:…,…,100:max`.
//!
//! First it measures a reference on the same cores, in the same run: a bare cross-core ping (one
//! `AtomicU64` on its own cache line, written by the producer with the send timestamp and spun on
//! by the consumer, timed exactly like the ring latency bench) and a bare SPSC counter throughput
//! (the producer bumps a counter, the consumer spins until it has seen every value, with a
//! one-slot window so each value is observed). That is the machine's floor: a VM may have a high
//! cross-core latency. Each ring line carries its ratio to the reference.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ipc_shm::{AllowList, Client, Server, Session, SessionError, WaitMode};

/// Latency samples per run, and the pause between one record's arrival and the next send.
struct LatencyPlan {
    samples: u64,
    gap: Duration,
}

const THROUGHPUT_RECORDS: u64 = 5_000_000;
const WARMUP_RECORDS: u64 = 10_000;

/// Percentiles of a `--dist` line (each only while a sample lies above it), then the maximum;
/// the same ladder as rotor-bench's.
const DIST_PERCENTILES: [f64; 11] = [
    50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999,
];

fn dist_line(name: &str, h: &Histogram<u64>) -> String {
    let mut out = format!("ipc-shm dist {name} count={} dist_ns=", h.len());
    for p in DIST_PERCENTILES {
        if h.len() as f64 * (1.0 - p / 100.0) >= 1.0 - 1e-9 {
            out.push_str(&format!("{p}:{},", h.value_at_quantile(p / 100.0)));
        }
    }
    out.push_str(&format!("100:{}", h.max()));
    out
}

fn main() {
    let print_dist = std::env::args().any(|a| a == "--dist");
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let (producer_core, consumer_core) = match cores.as_slice() {
        [a, b, ..] => (Some(*a), Some(*b)),
        _ => {
            eprintln!("bench_ipc: fewer than two cores; running unpinned");
            (None, None)
        }
    };
    let reference = run_reference(producer_core, consumer_core);
    let (ref_p50, ref_p99, ref_rate) = (
        reference.0.value_at_quantile(0.50),
        reference.0.value_at_quantile(0.99),
        reference.1,
    );
    println!(
        "ipc-shm reference=atomic p50_ns={ref_p50} p99_ns={ref_p99} p999_ns={} msgs_per_s={ref_rate:.0}",
        reference.0.value_at_quantile(0.999)
    );
    if print_dist {
        println!("{}", dist_line("reference=atomic", &reference.0));
    }
    let name = format!("ipc-shm-bench-{}", std::process::id());
    let server =
        Server::bind(&name, AllowList::root_only().allow_uid(current_uid())).expect("bind");
    for (mode, mode_name, plan) in [
        (
            WaitMode::Busy,
            "busy",
            LatencyPlan {
                samples: 200_000,
                gap: Duration::from_micros(2),
            },
        ),
        (
            WaitMode::Blocking,
            "blocking",
            LatencyPlan {
                samples: 20_000,
                gap: Duration::from_micros(50),
            },
        ),
    ] {
        // 56 B is the largest payload whose record (8-byte header + payload) fills exactly one
        // cache line; 64 B, the goals' message size, always spans two.
        let sizes: &[usize] = if mode == WaitMode::Busy {
            &[56, 64, 1024]
        } else {
            &[64, 1024]
        };
        for &size in sizes {
            let (mut tx, mut rx) = attach(&server, &name);
            let latency = run_latency(
                &mut tx,
                &mut rx,
                size,
                mode,
                &plan,
                producer_core,
                consumer_core,
            );
            let records = if mode == WaitMode::Busy {
                THROUGHPUT_RECORDS
            } else {
                THROUGHPUT_RECORDS / 5
            };
            let msgs_per_s = run_throughput(
                &mut tx,
                &mut rx,
                size,
                mode,
                records,
                producer_core,
                consumer_core,
            );
            let (p50, p99) = (
                latency.value_at_quantile(0.50),
                latency.value_at_quantile(0.99),
            );
            println!(
                "ipc-shm mode={mode_name} size={size} p50_ns={p50} p99_ns={p99} p999_ns={} msgs_per_s={msgs_per_s:.0} ratio_p50={:.2} ratio_p99={:.2} ratio_rate={:.2}",
                latency.value_at_quantile(0.999),
                p50 as f64 / ref_p50.max(1) as f64,
                p99 as f64 / ref_p99.max(1) as f64,
                ref_rate / msgs_per_s,
            );
            if print_dist {
                println!(
                    "{}",
                    dist_line(&format!("mode={mode_name} size={size}"), &latency)
                );
            }
        }
    }
}

fn current_uid() -> u32 {
    // Safety: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// A fresh session: the client side produces, the server side consumes (the CPG send path).
fn attach(server: &Server, name: &str) -> (Session, Session) {
    let name = name.to_owned();
    let connecting = std::thread::spawn(move || Client::connect(&name).expect("connect"));
    let server_side = server.accept().expect("accept");
    (connecting.join().expect("client thread"), server_side)
}

fn pin(core: Option<core_affinity::CoreId>) {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
}

fn run_latency(
    tx: &mut Session,
    rx: &mut Session,
    size: usize,
    mode: WaitMode,
    plan: &LatencyPlan,
    producer_core: Option<core_affinity::CoreId>,
    consumer_core: Option<core_affinity::CoreId>,
) -> Histogram<u64> {
    let base = Instant::now();
    // One record in flight: the producer sends the next only after the consumer has taken the
    // previous, so a descheduled consumer spoils one sample, not a queue of them.
    let received = AtomicU64::new(0);
    let total = WARMUP_RECORDS.min(plan.samples) + plan.samples;
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(producer_core);
            let mut record = vec![0xa5u8; size];
            for sent in 0..total {
                let sent_at = base.elapsed().as_nanos() as u64;
                record[..8].copy_from_slice(&sent_at.to_le_bytes());
                tx.send(&record, WaitMode::Busy).expect("send");
                while received.load(Ordering::Acquire) < sent + 1 {
                    std::hint::spin_loop();
                }
                let until = Instant::now() + plan.gap;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        });
        let consumer = s.spawn(|| {
            pin(consumer_core);
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
            let mut buf = vec![0u8; rx.recv_size_max()];
            for i in 0..total {
                let n = rx.recv(&mut buf, mode).expect("recv");
                let received_at = base.elapsed().as_nanos() as u64;
                let sent_at = u64::from_le_bytes(buf[..8].try_into().expect("timestamp"));
                received.store(i + 1, Ordering::Release);
                assert_eq!(n, size);
                if i >= total - plan.samples {
                    histogram.saturating_record(received_at.saturating_sub(sent_at).max(1));
                }
            }
            histogram
        });
        consumer.join().expect("consumer")
    })
}

fn run_throughput(
    tx: &mut Session,
    rx: &mut Session,
    size: usize,
    mode: WaitMode,
    records: u64,
    producer_core: Option<core_affinity::CoreId>,
    consumer_core: Option<core_affinity::CoreId>,
) -> f64 {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(producer_core);
            let record = vec![0x5au8; size];
            for _ in 0..records {
                match mode {
                    WaitMode::Busy => loop {
                        match tx.try_send(&record) {
                            Ok(()) => break,
                            Err(SessionError::Full) => std::hint::spin_loop(),
                            Err(e) => panic!("send: {e}"),
                        }
                    },
                    _ => tx.send(&record, mode).expect("send"),
                }
            }
        });
        let consumer = s.spawn(|| {
            pin(consumer_core);
            let mut buf = vec![0u8; rx.recv_size_max()];
            let started = Instant::now();
            for _ in 0..records {
                rx.recv(&mut buf, mode).expect("recv");
            }
            records as f64 / started.elapsed().as_secs_f64()
        });
        consumer.join().expect("consumer")
    })
}

/// One `AtomicU64` alone on its cache line, so the reference measures one line's transfer.
#[repr(align(128))]
struct Line(AtomicU64);

/// The machine's floor on these two cores: (one-way latency histogram, counter msgs/s).
fn run_reference(
    producer_core: Option<core_affinity::CoreId>,
    consumer_core: Option<core_affinity::CoreId>,
) -> (Histogram<u64>, f64) {
    let plan = LatencyPlan {
        samples: 200_000,
        gap: Duration::from_micros(2),
    };
    let base = Instant::now();
    // Latency: the producer stores the send timestamp (never 0) in `ping`; the consumer spins
    // until it sees a new value, then acknowledges on its own line, like the ring latency bench.
    let ping = Line(AtomicU64::new(0));
    let received = Line(AtomicU64::new(0));
    let total = WARMUP_RECORDS + plan.samples;
    let histogram = std::thread::scope(|s| {
        s.spawn(|| {
            pin(producer_core);
            for sent in 0..total {
                let sent_at = (base.elapsed().as_nanos() as u64).max(1);
                ping.0.store(sent_at, Ordering::Release);
                while received.0.load(Ordering::Acquire) < sent + 1 {
                    std::hint::spin_loop();
                }
                let until = Instant::now() + plan.gap;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
        });
        let consumer = s.spawn(|| {
            pin(consumer_core);
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
            let mut last = 0u64;
            for i in 0..total {
                let sent_at = loop {
                    let v = ping.0.load(Ordering::Acquire);
                    if v != last {
                        break v;
                    }
                    std::hint::spin_loop();
                };
                let received_at = base.elapsed().as_nanos() as u64;
                last = sent_at;
                received.0.store(i + 1, Ordering::Release);
                if i >= total - plan.samples {
                    histogram.saturating_record(received_at.saturating_sub(sent_at).max(1));
                }
            }
            histogram
        });
        consumer.join().expect("consumer")
    });
    // Throughput: a producer counter and a consumer counter on separate lines, a window of 64
    // values in flight (like a small ring), the consumer counting each value it takes.
    const WINDOW: u64 = 64;
    let head = Line(AtomicU64::new(0));
    let tail = Line(AtomicU64::new(0));
    let records = THROUGHPUT_RECORDS;
    let rate = std::thread::scope(|s| {
        s.spawn(|| {
            pin(producer_core);
            let mut tail_seen = 0;
            for n in 1..=records {
                while n - tail_seen > WINDOW {
                    tail_seen = tail.0.load(Ordering::Acquire);
                    std::hint::spin_loop();
                }
                head.0.store(n, Ordering::Release);
            }
        });
        let consumer = s.spawn(|| {
            pin(consumer_core);
            let started = Instant::now();
            let mut taken = 0;
            while taken < records {
                let published = head.0.load(Ordering::Acquire);
                while taken < published {
                    taken += 1;
                    tail.0.store(taken, Ordering::Release);
                }
                std::hint::spin_loop();
            }
            records as f64 / started.elapsed().as_secs_f64()
        });
        consumer.join().expect("consumer")
    });
    (histogram, rate)
}
