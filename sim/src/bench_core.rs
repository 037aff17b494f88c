//! `cargo xtask bench core`: the totem-core state machine alone, on one CPU core, with a
//! loss-free in-memory network and no crypto. N nodes keep their send queues full of 64-byte
//! messages (all in one group); the figure is ordered messages per second of CPU time (each
//! message is delivered on every node) and deliveries per second. Prints one line per node
//! count and run, then the median.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant as Wall;

use totem_core::{
    cluster_hash, Dest, Event, Guarantee, Instant, Node, NodeConfig, NodeId, Request, TotemConfig,
};

const GROUP: &[u8] = b"bench";
const PID: u32 = 1;

fn run(nodes: usize, size: usize, messages: u64) -> (f64, f64) {
    let totem = TotemConfig {
        nodelist_count: nodes as u32,
        window_size: 200,
        max_messages: 100,
        ..TotemConfig::default()
    };
    let mut now = 0u64;
    let mut cluster: Vec<Node> = (0..nodes)
        .map(|i| {
            let config = NodeConfig {
                totem: totem.clone(),
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
                if let Event::Deliver(_) = ev {
                    delivered[i] += 1;
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

fn main() {
    let runs = 5;
    println!("bench core: totem-core alone, one CPU core, in-memory network, no crypto, 64-byte messages");
    for nodes in [3usize, 16] {
        let messages = if nodes == 3 { 2_000_000 } else { 500_000 };
        let mut msgs = Vec::new();
        let mut dels = Vec::new();
        for run_index in 0..runs {
            let (m, d) = run(nodes, 64, messages);
            println!("core nodes={nodes} size=64 run={run_index} ordered_msgs_per_s={m:.0} deliveries_per_s={d:.0}");
            msgs.push(m);
            dels.push(d);
        }
        msgs.sort_by(f64::total_cmp);
        dels.sort_by(f64::total_cmp);
        println!(
            "core nodes={nodes} size=64 median ordered_msgs_per_s={:.0} deliveries_per_s={:.0}",
            msgs[runs / 2],
            dels[runs / 2]
        );
    }
}
