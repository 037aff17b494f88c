//! `cargo xtask bench core [--sizes 64,4096,65536] [--nodes 3,16] [--runs 5] [--frame-size B]`:
//! the totem-core state machine alone, on one CPU core, with a loss-free in-memory network and
//! no crypto. N nodes keep their send queues full of messages of one size (64 bytes unless
//! `--sizes` says otherwise; larger than a frame means fragmented), all in one group; the
//! figures are ordered messages per second of CPU time (each message is delivered on every
//! node), the same in MB/s of payload, and deliveries per second. `--copy-out` copies every
//! delivered payload once into a buffer, as the dataplane's write into a client ring would. Prints one line per size, node
//! count and run, then the median.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Instant as Wall;

use totem_core::config::explicit;
use totem_core::limits::MESSAGE_SIZE_MAX;
use totem_core::{
    cluster_hash, ClusterShape, Dest, Event, Guarantee, Instant, Node, NodeConfig, NodeId, Request,
    TotemSettings,
};

const GROUP: &[u8] = b"bench";
const PID: u32 = 1;

fn run(nodes: usize, size: usize, messages: u64, frame_size: usize, copy_out: bool) -> (f64, f64) {
    let shape = ClusterShape {
        nodelist_count: nodes as u32,
        ..ClusterShape::ALONE
    };
    let netmtu = frame_size as u32 + shape.frame_overhead_bytes;
    let totem = TotemSettings::resolve(
        explicit(&[
            ("netmtu", netmtu),
            ("window_size", 200),
            ("max_messages", 100),
        ]),
        &shape,
    )
    .unwrap_or_else(|e| panic!("--frame-size {frame_size}: {e}"));
    let mut now = 0u64;
    let mut cluster: Vec<Node> = (0..nodes)
        .map(|i| {
            let config = NodeConfig {
                totem: totem.clone(),
                shape,
                identity: Default::default(),
                key_id: 0,
                node_id: NodeId(i as u32 + 1),
                cluster: cluster_hash("bench"),
                incarnation: 1,
                ring_seq_start: 0,
                seed: i as u64,
            };
            Node::new(config, Instant(0)).expect("valid config")
        })
        .collect();
    // One buffer per datagram, shared by its recipients: the network itself costs no copies.
    let mut wire: VecDeque<(usize, usize, Rc<Vec<u8>>)> = VecDeque::new();
    let payload = vec![0x5au8; size];
    let mut delivered = vec![0u64; nodes];
    let mut joined = vec![false; nodes];
    let mut submitted = 0u64;
    let mut sink: Vec<u8> = Vec::with_capacity(size);
    let mut started: Option<(Wall, u64)> = None;
    loop {
        // Timers: advance simulated time only when nothing is in flight.
        if wire.is_empty() {
            let next = cluster
                .iter()
                .filter_map(|n| n.poll_timeout())
                .min()
                .map_or(now + 1_000_000, |i| i.0);
            now = next.max(now);
            for n in cluster.iter_mut() {
                if n.poll_timeout().is_some_and(|t| t.0 <= now) {
                    n.handle_timeout(Instant(now));
                }
            }
        }
        while let Some((from, to, bytes)) = wire.pop_front() {
            cluster[to].handle_datagram(Instant(now), NodeId(from as u32 + 1), &bytes);
            if let Ok(bytes) = Rc::try_unwrap(bytes) {
                cluster[to].recycle(bytes);
            }
            if wire.len() > 4096 {
                break;
            }
        }
        for i in 0..nodes {
            let node = &mut cluster[i];
            if !joined[i]
                && node.is_operational()
                && node
                    .submit(Request::Join {
                        group: GROUP,
                        pid: PID,
                    })
                    .is_ok()
            {
                joined[i] = true;
            }
            if joined[i] && started.is_some() {
                while node.queued_bytes() < 256 * 1024 && submitted < messages {
                    let r = node.submit(Request::Mcast {
                        group: GROUP,
                        pid: PID,
                        guarantee: Guarantee::Agreed,
                        data: &payload,
                    });
                    if r.is_err() {
                        break;
                    }
                    submitted += 1;
                }
            }
            while let Some(t) = node.poll_transmit() {
                match t.dest {
                    Dest::All => {
                        let shared = Rc::new(t.bytes);
                        for to in 0..nodes {
                            if to != i {
                                wire.push_back((i, to, Rc::clone(&shared)));
                            }
                        }
                    }
                    Dest::Node(to) => wire.push_back((i, to.0 as usize - 1, Rc::new(t.bytes))),
                }
            }
            while let Some(ev) = node.poll_event() {
                if let Event::Deliver(d) = ev {
                    delivered[i] += 1;
                    if copy_out {
                        sink.clear();
                        match d.data.as_slice() {
                            Some(bytes) => sink.extend_from_slice(bytes),
                            None => d.data.parts().for_each(|part| sink.extend_from_slice(part)),
                        }
                    }
                }
            }
        }
        if started.is_none()
            && joined.iter().all(|j| *j)
            && cluster
                .iter()
                .all(|n| n.group_members(GROUP).len() == nodes)
        {
            started = Some((Wall::now(), delivered.iter().sum()));
        }
        if let Some((t0, d0)) = started {
            if delivered.iter().all(|d| *d >= messages) {
                let secs = t0.elapsed().as_secs_f64();
                let deliveries = (delivered.iter().sum::<u64>() - d0) as f64;
                return (messages as f64 / secs, deliveries / secs);
            }
        }
    }
}

/// What to run: `--sizes 64,4096,65536 --nodes 3,16 --runs 5 --frame-size 1400 --copy-out`.
struct Args {
    /// Copy every delivered payload once into a buffer, as the dataplane's write into a client
    /// ring does (without it, deliveries are only counted).
    copy_out: bool,
    sizes: Vec<usize>,
    nodes: Vec<usize>,
    runs: usize,
    frame_size: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        copy_out: false,
        sizes: vec![64],
        nodes: vec![3, 16],
        runs: 5,
        frame_size: TotemSettings::default().frame_size_bytes(&ClusterShape::ALONE),
    };
    let list = |v: &str| -> Result<Vec<usize>, String> {
        v.split(',')
            .map(|x| x.trim().parse().map_err(|e| format!("`{x}`: {e}")))
            .collect()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--copy-out" {
            args.copy_out = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sizes" => args.sizes = list(&value)?,
            "--nodes" => args.nodes = list(&value)?,
            "--runs" => args.runs = value.parse().map_err(|e| format!("--runs: {e}"))?,
            "--frame-size" => {
                args.frame_size = value.parse().map_err(|e| format!("--frame-size: {e}"))?
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.runs == 0 || args.sizes.iter().any(|s| *s > MESSAGE_SIZE_MAX) {
        return Err(format!("--runs must be > 0 and sizes ≤ {MESSAGE_SIZE_MAX}"));
    }
    Ok(args)
}

/// Messages per run: 2 M (3 nodes) or 500 k (more) at 64 B, fewer for larger messages so a run
/// moves at most 1 GiB of payload (and at least 2,000 messages).
fn messages_for(nodes: usize, size: usize) -> u64 {
    let count: u64 = if nodes <= 3 { 2_000_000 } else { 500_000 };
    let by_bytes = (1u64 << 30) / size.max(1) as u64;
    count.min(by_bytes).max(2_000)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-core: {e}\nusage: bench-core [--sizes 64,4096] [--nodes 3,16] [--runs 5] [--frame-size 1400] [--copy-out]");
            return ExitCode::FAILURE;
        }
    };
    let runs = args.runs;
    println!(
        "bench core: totem-core alone, one CPU core, in-memory network, no crypto, frame size {}{}",
        args.frame_size,
        if args.copy_out {
            ", each delivery copied out once"
        } else {
            ""
        }
    );
    for &size in &args.sizes {
        for &nodes in &args.nodes {
            let messages = messages_for(nodes, size);
            let mut msgs = Vec::new();
            let mut dels = Vec::new();
            for run_index in 0..runs {
                let (m, d) = run(nodes, size, messages, args.frame_size, args.copy_out);
                println!(
                    "core nodes={nodes} size={size} run={run_index} ordered_msgs_per_s={m:.0} \
                     deliveries_per_s={d:.0} ordered_MBps={:.1}",
                    m * size as f64 / 1e6
                );
                msgs.push(m);
                dels.push(d);
            }
            msgs.sort_by(f64::total_cmp);
            dels.sort_by(f64::total_cmp);
            let (m, d) = (msgs[runs / 2], dels[runs / 2]);
            println!(
                "core nodes={nodes} size={size} median ordered_msgs_per_s={m:.0} \
                 deliveries_per_s={d:.0} ordered_MBps={:.1}",
                m * size as f64 / 1e6
            );
        }
    }
    ExitCode::SUCCESS
}
