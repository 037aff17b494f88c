//! rotor-checker: a CPG client for the fault campaign. It attaches to its node, joins one
//! group, multicasts numbered, checksummed messages at a steady rate and logs every delivery,
//! configuration change and ring change (`rotor_faults::record`). When its session fails (the
//! node's dataplane or rotord died) it logs the error and attaches again as a new incarnation,
//! as an application would. Stops on SIGTERM/SIGINT (leaving the group) or after `--seconds`.
//!
//! usage: rotor-checker --log FILE [--group NAME] [--rate MSGS_PER_S] [--size-max BYTES]
//!        [--seconds N]

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use rotor_client::cpg::{Cpg, Dispatch, Guarantee, Handler, Member, Reason};
use rotor_client::Error;
use rotor_faults::record::{self, Line, Proc, Source};

struct Options {
    log: String,
    group: String,
    rate: f64,
    size_max: usize,
    seconds: f64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        log: String::new(),
        group: "faults".into(),
        rate: 200.0,
        size_max: 2000,
        seconds: 600.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value", args[i]))?;
        let bad = |what: &str| format!("{}: expected {what}, got {value}", args[i]);
        match args[i].as_str() {
            "--log" => o.log = value.clone(),
            "--group" => o.group = value.clone(),
            "--rate" => o.rate = value.parse().map_err(|_| bad("messages per second"))?,
            "--size-max" => o.size_max = value.parse().map_err(|_| bad("bytes"))?,
            "--seconds" => o.seconds = value.parse().map_err(|_| bad("seconds"))?,
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    if o.log.is_empty() {
        return Err("--log FILE is required".into());
    }
    Ok(o)
}

/// The log: one write per line.
struct Log {
    file: File,
    inc: u32,
}

impl Log {
    fn put(&mut self, line: Line) {
        // A failed write is reported once at exit by the missing lines; nothing to do here.
        let _ = self.file.write_all(line.to_text().as_bytes());
    }
}

impl Handler for Log {
    fn deliver(&mut self, _group: &[u8], sender: Member, _: Guarantee, data: &[u8]) {
        let line = Line::Deliver {
            t: record::now_ns(),
            inc: self.inc,
            from: Proc {
                node: sender.node,
                pid: sender.pid,
            },
            msg: record::decode(data),
        };
        self.put(line);
    }

    fn confchg(
        &mut self,
        _group: &[u8],
        members: &[Member],
        left: &[(Member, Reason)],
        joined: &[(Member, Reason)],
    ) {
        let p = |m: &Member| Proc {
            node: m.node,
            pid: m.pid,
        };
        let line = Line::ConfChg {
            t: record::now_ns(),
            inc: self.inc,
            members: members.iter().map(p).collect(),
            joined: joined.iter().map(|(m, r)| (p(m), r.code())).collect(),
            left: left.iter().map(|(m, r)| (p(m), r.code())).collect(),
        };
        self.put(line);
    }

    fn totem_confchg(&mut self, ring_rep: u32, ring_seq: u64, members: &[u32]) {
        let line = Line::Ring {
            t: record::now_ns(),
            inc: self.inc,
            ring: format!("{ring_rep}.{ring_seq:x}"),
            nodes: members.to_vec(),
        };
        self.put(line);
    }
}

/// Message sizes cycle through small ones and, now and then, one near `size_max`.
fn size_of(seq: u64, size_max: usize) -> usize {
    let small = record::HEAD_LEN + (seq as usize * 37) % 200;
    if seq % 16 == 15 {
        size_max.max(small)
    } else {
        small.min(size_max.max(record::HEAD_LEN))
    }
}

/// Why an incarnation ended.
enum End {
    /// Stopped on request.
    Stopped,
    /// Could not attach (the node is down or restarting): try again, same incarnation.
    NotAttached,
    /// The attached session failed: the next attach is a new incarnation.
    Failed(Error),
}

/// One incarnation: attached and joined, sending until the session fails or we are told to
/// stop.
fn serve(o: &Options, log: &mut Log, seq: &mut u64, stop_at: Instant) -> End {
    let Ok(mut cpg) = Cpg::initialize() else {
        return End::NotAttached;
    };
    let me = Source {
        node: cpg.local_node_id(),
        pid: std::process::id(),
        inc: log.inc,
    };
    log.put(Line::Attach {
        t: record::now_ns(),
        node: me.node,
        pid: me.pid,
        inc: me.inc,
    });
    if let Err(e) = cpg.join(o.group.as_bytes()) {
        return End::Failed(e);
    }
    log.put(Line::Joined {
        t: record::now_ns(),
        inc: me.inc,
    });
    let interval = Duration::from_secs_f64(1.0 / o.rate.max(0.1));
    let mut next = Instant::now();
    let mut buf = Vec::new();
    // The message being sent: built once per sequence number, retried on TryAgain.
    let mut pending: Option<u64> = None;
    loop {
        if rotor_testbed::interrupt::interrupted() || Instant::now() >= stop_at {
            let _ = cpg.leave(o.group.as_bytes());
            let _ = cpg.dispatch(Dispatch::Blocking(Duration::from_millis(200)), log);
            return End::Stopped;
        }
        let now = Instant::now();
        if now >= next {
            let s = match pending {
                Some(s) => s,
                None => {
                    let s = *seq;
                    *seq += 1;
                    log.put(Line::Send {
                        t: record::now_ns(),
                        inc: me.inc,
                        seq: s,
                    });
                    record::encode(me, s, record::now_ns(), size_of(s, o.size_max), &mut buf);
                    s
                }
            };
            match cpg.mcast(Guarantee::Agreed, &buf) {
                Ok(()) => {
                    pending = None;
                    next += interval;
                    // After a long stall, do not send a burst to catch up.
                    if next + interval * 8 < now {
                        next = now;
                    }
                }
                Err(Error::TryAgain) => pending = Some(s),
                Err(e) => return End::Failed(e),
            }
        }
        let wait = next.saturating_duration_since(Instant::now());
        let wait = wait.clamp(Duration::from_millis(1), Duration::from_millis(20));
        if let Err(e) = cpg.dispatch(Dispatch::Blocking(wait), log) {
            return End::Failed(e);
        }
    }
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rotor-checker: {e}");
            std::process::exit(2);
        }
    };
    rotor_testbed::interrupt::catch();
    let file = match File::options().create(true).append(true).open(&o.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rotor-checker: {}: {e}", o.log);
            std::process::exit(2);
        }
    };
    let mut log = Log { file, inc: 0 };
    let stop_at = Instant::now() + Duration::from_secs_f64(o.seconds);
    // Sequence numbers never restart, so a message of one incarnation is never mistaken for
    // another's.
    let mut seq = 0;
    loop {
        match serve(&o, &mut log, &mut seq, stop_at) {
            End::Stopped => break,
            // Attaching fails while the node is down: try again quietly.
            End::NotAttached => {}
            End::Failed(e) => {
                log.put(Line::Error {
                    t: record::now_ns(),
                    inc: log.inc,
                    what: e.to_string(),
                });
                log.inc += 1;
            }
        }
        if rotor_testbed::interrupt::interrupted() || Instant::now() >= stop_at {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    log.put(Line::End {
        t: record::now_ns(),
    });
}
