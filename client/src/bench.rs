//! `rotor bench`: a CPG load generator. `lat` sends one message at a time and measures the
//! time until its own agreed delivery; `tput` sends as fast as the rings allow once the group
//! has the expected members, and counts what is delivered. Both check that every sender's
//! messages arrive in its sequence order with none missing (`seq_errors`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::cpg::{Cpg, Dispatch, Guarantee, Handler, Member, Reason};
use crate::Error;

/// Message header: sender's sequence number and its send time (ns since the bench started).
const HEAD: usize = 16;
/// Longest sleep of a throughput sender that was told to try again.
const TRY_AGAIN_WAIT: Duration = Duration::from_millis(1);

pub struct Options {
    pub size: usize,
    pub count: u64,
    pub seconds: f64,
    pub group: String,
    pub members: usize,
}

#[derive(Default)]
struct Tally {
    start: Option<Instant>,
    me: Option<Member>,
    next_seq: HashMap<Member, u64>,
    seq_errors: u64,
    delivered: u64,
    delivered_bytes: u64,
    own_seen: u64,
    own_latency_ns: Vec<u64>,
    members: usize,
}

impl Handler for Tally {
    fn deliver(&mut self, _g: &[u8], sender: Member, _: Guarantee, data: &[u8]) {
        self.delivered += 1;
        self.delivered_bytes += data.len() as u64;
        if data.len() < HEAD {
            self.seq_errors += 1;
            return;
        }
        let seq = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
        let expect = self.next_seq.entry(sender).or_insert(seq);
        if seq != *expect {
            self.seq_errors += 1;
        }
        *expect = seq + 1;
        if Some(sender) == self.me {
            self.own_seen += 1;
            if let Some(start) = self.start {
                let sent = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
                let now = start.elapsed().as_nanos() as u64;
                self.own_latency_ns.push(now.saturating_sub(sent));
            }
        }
    }

    fn confchg(
        &mut self,
        _g: &[u8],
        members: &[Member],
        _: &[(Member, Reason)],
        _: &[(Member, Reason)],
    ) {
        self.members = members.len();
    }
}

fn message(seq: u64, start: Instant, size: usize, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&(start.elapsed().as_nanos() as u64).to_le_bytes());
    buf.resize(size.max(HEAD), 0xa5);
}

fn setup(o: &Options) -> Result<(Cpg, Tally), Error> {
    let mut cpg = Cpg::initialize()?;
    cpg.join(o.group.as_bytes())?;
    let mut t = Tally {
        me: Some(Member {
            node: cpg.local_node_id(),
            pid: std::process::id(),
        }),
        ..Tally::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while t.members < o.members.max(1) {
        if Instant::now() > deadline {
            return Err(Error::Timeout);
        }
        cpg.dispatch(Dispatch::Blocking(Duration::from_millis(100)), &mut t)?;
    }
    t.start = Some(Instant::now());
    Ok((cpg, t))
}

fn percentile(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Percentiles listed in `dist_us` (each only when at least one sample lies above it); rotor-bench's
/// C client for Corosync prints the same ladder, so one parser draws both curves.
const DIST_PERCENTILES: [f64; 11] = [
    50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999,
];

/// `P:V,…,100:max` in µs: the latency distribution on `DIST_PERCENTILES`.
fn dist(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    for p in DIST_PERCENTILES {
        if h.len() as f64 * (1.0 - p / 100.0) >= 1.0 - 1e-9 {
            out.push_str(&format!("{p}:{:.1},", percentile(h, p / 100.0)));
        }
    }
    out.push_str(&format!("100:{:.1}", h.max() as f64 / 1000.0));
    out
}

/// One message in flight at a time; prints p50/p99/p999/max of self-delivery latency and the
/// distribution (`dist_us`).
pub fn lat(o: &Options) -> Result<String, Error> {
    let (mut cpg, mut t) = setup(o)?;
    let start = t.start.unwrap_or_else(Instant::now);
    let mut buf = Vec::new();
    let deadline = start + Duration::from_secs_f64(o.seconds);
    let mut seq = 0;
    while seq < o.count && Instant::now() < deadline {
        message(seq, start, o.size, &mut buf);
        loop {
            match cpg.mcast(Guarantee::Agreed, &buf) {
                Ok(()) => break,
                Err(Error::TryAgain) => {
                    cpg.dispatch(Dispatch::All, &mut t)?;
                }
                Err(e) => return Err(e),
            }
        }
        seq += 1;
        let wait_until = Instant::now() + Duration::from_secs(10);
        while t.own_seen < seq {
            if Instant::now() > wait_until {
                return Err(Error::Timeout);
            }
            cpg.dispatch(Dispatch::Busy, &mut t)?;
        }
    }
    let mut h = Histogram::<u64>::new(3).map_err(|_| Error::Protocol("histogram"))?;
    for v in &t.own_latency_ns {
        let _ = h.record(*v);
    }
    Ok(format!(
        "bench=lat size={} count={} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} seq_errors={} dist_us={}",
        o.size,
        h.len(),
        percentile(&h, 0.5),
        percentile(&h, 0.99),
        percentile(&h, 0.999),
        h.max() as f64 / 1000.0,
        t.seq_errors,
        dist(&h)
    ))
}

/// Everyone sends for `seconds`; prints delivered messages and MB per second at this member.
pub fn tput(o: &Options) -> Result<String, Error> {
    let (mut cpg, mut t) = setup(o)?;
    let start = t.start.unwrap_or_else(Instant::now);
    let mut buf = Vec::new();
    let deadline = start + Duration::from_secs_f64(o.seconds);
    let mut seq = 0;
    let base = (t.delivered, t.delivered_bytes);
    while Instant::now() < deadline && seq < o.count {
        message(seq, start, o.size, &mut buf);
        match cpg.mcast(Guarantee::Agreed, &buf) {
            Ok(()) => seq += 1,
            // Flow control: sleep until something is delivered (which is what frees room)
            // rather than spin; a spinning sender takes the CPU the dataplane needs when cores
            // are shared.
            Err(Error::TryAgain) => {
                cpg.dispatch(Dispatch::Blocking(TRY_AGAIN_WAIT), &mut t)?;
            }
            Err(e) => return Err(e),
        }
        if seq % 64 == 0 {
            cpg.dispatch(Dispatch::All, &mut t)?;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (msgs, bytes) = (t.delivered - base.0, t.delivered_bytes - base.1);
    // Drain what is still in flight so the sequence check sees everything we sent.
    let drain_until = Instant::now() + Duration::from_secs(5);
    while t.own_seen < seq && Instant::now() < drain_until {
        cpg.dispatch(Dispatch::Blocking(Duration::from_millis(50)), &mut t)?;
    }
    Ok(format!(
        "bench=tput size={} sent={} delivered_msgs_per_s={:.0} delivered_MBps={:.2} seq_errors={}",
        o.size,
        seq,
        msgs as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
        t.seq_errors
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_lists_the_ladder_then_the_maximum() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in 1..=200u64 {
            h.record(v * 1000).unwrap();
        }
        // 200 samples: 99.5 % still has one above it, 99.9 % has none.
        let d = dist(&h);
        let ps: Vec<&str> = d.split(',').map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(ps, ["50", "75", "90", "95", "99", "99.5", "100"]);
        // HdrHistogram keeps 3 significant digits: 200 µs reads back as 200.1.
        assert!(
            d.starts_with("50:100.0,") && d.ends_with("100:200.1"),
            "{d}"
        );
    }
}
