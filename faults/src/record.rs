//! What a checker client sends and what it writes down. A message carries its sender's
//! identity (node, pid, incarnation), a per-process sequence number, its send time and a
//! checksum over every other byte, so a receiver can tell an altered or invented message from
//! a real one without asking anybody. The log is one text line per event, written with one
//! `write(2)` each so a SIGKILL loses at most the line being written.

use std::fmt::Write as _;

/// First bytes of every checker message.
pub const MAGIC: [u8; 4] = *b"RFLT";
/// Bytes before the filler: magic, node, pid, incarnation, seq, sent_ns, len, checksum.
pub const HEAD_LEN: usize = 4 + 4 + 4 + 4 + 8 + 8 + 4 + 4;

/// Who sent a message: a process (node, pid) in one incarnation (one attach to its node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub node: u32,
    pub pid: u32,
    pub inc: u32,
}

/// One message's identity: its source and sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId {
    pub src: Source,
    pub seq: u64,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} (incarnation {})", self.node, self.pid, self.inc)
    }
}

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message {} of {}", self.seq, self.src)
    }
}

/// FNV-1a, 32 bits: cheap, and any single altered byte changes it.
pub fn fnv1a32(parts: &[&[u8]]) -> u32 {
    let mut h = 0x811c_9dc5u32;
    for p in parts {
        for &b in *p {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Builds a message of `len` bytes (at least [`HEAD_LEN`]) into `out`.
pub fn encode(src: Source, seq: u64, sent_ns: u64, len: usize, out: &mut Vec<u8>) {
    let len = len.max(HEAD_LEN);
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&src.node.to_le_bytes());
    out.extend_from_slice(&src.pid.to_le_bytes());
    out.extend_from_slice(&src.inc.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&sent_ns.to_le_bytes());
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    // Filler that depends on the sequence number, so a message is not a copy of another.
    let mut x = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    let sum = fnv1a32(&[&out[..HEAD_LEN - 4], &out[HEAD_LEN..]]);
    out[HEAD_LEN - 4..HEAD_LEN].copy_from_slice(&sum.to_le_bytes());
}

/// A message read back: its identity and send time, if every byte checks out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub id: MsgId,
    pub sent_ns: u64,
}

/// Reads a message; `None` if it is not one a checker sent intact (wrong magic or length, or
/// any byte altered).
pub fn decode(data: &[u8]) -> Option<Decoded> {
    if data.len() < HEAD_LEN || data[..4] != MAGIC {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap_or_default());
    let u64_at = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap_or_default());
    if u32_at(32) as usize != data.len() {
        return None;
    }
    if fnv1a32(&[&data[..HEAD_LEN - 4], &data[HEAD_LEN..]]) != u32_at(36) {
        return None;
    }
    Some(Decoded {
        id: MsgId {
            src: Source {
                node: u32_at(4),
                pid: u32_at(8),
                inc: u32_at(12),
            },
            seq: u64_at(16),
        },
        sent_ns: u64_at(24),
    })
}

/// A process of a group as CPG names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proc {
    pub node: u32,
    pub pid: u32,
}

impl std::fmt::Display for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.node, self.pid)
    }
}

/// Processes as `node:pid, …`.
pub fn proc_list(list: &[Proc]) -> String {
    let v: Vec<String> = list.iter().map(Proc::to_string).collect();
    format!("[{}]", v.join(", "))
}

/// One line of a checker's log. Times are CLOCK_MONOTONIC nanoseconds, which every process
/// on the machine shares (the hosts are network namespaces, not time namespaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Attached to the node as incarnation `inc` (0, then one more per re-attach).
    Attach {
        t: u64,
        node: u32,
        pid: u32,
        inc: u32,
    },
    /// The join request returned.
    Joined { t: u64, inc: u32 },
    /// About to multicast `seq` (written before the call, so a delivered message always has
    /// its line, even if the sender dies in the call).
    Send { t: u64, inc: u32, seq: u64 },
    /// A delivery: CPG's sender, and the message's identity if it checked out.
    Deliver {
        t: u64,
        inc: u32,
        from: Proc,
        msg: Option<Decoded>,
    },
    /// A group configuration change: members, joined and left with libcpg's reason numbers.
    ConfChg {
        t: u64,
        inc: u32,
        members: Vec<Proc>,
        joined: Vec<(Proc, u8)>,
        left: Vec<(Proc, u8)>,
    },
    /// A totem ring change: ring id and node ids.
    Ring {
        t: u64,
        inc: u32,
        ring: String,
        nodes: Vec<u32>,
    },
    /// The session failed (the node went away); the checker will attach again.
    Error { t: u64, inc: u32, what: String },
    /// Stopped on request.
    End { t: u64 },
}

fn procs(list: &[Proc]) -> String {
    let v: Vec<String> = list
        .iter()
        .map(|p| format!("{}:{}", p.node, p.pid))
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn reasons(list: &[(Proc, u8)]) -> String {
    let v: Vec<String> = list
        .iter()
        .map(|(p, r)| format!("{}:{}:{r}", p.node, p.pid))
        .collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

impl Line {
    /// The line's text, newline included.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = match self {
            Line::Attach { t, node, pid, inc } => {
                writeln!(s, "A {t} inc={inc} node={node} pid={pid}")
            }
            Line::Joined { t, inc } => writeln!(s, "J {t} inc={inc}"),
            Line::Send { t, inc, seq } => writeln!(s, "S {t} inc={inc} seq={seq}"),
            Line::Deliver { t, inc, from, msg } => match msg {
                Some(m) => writeln!(
                    s,
                    "D {t} inc={inc} from={}:{} src={}:{}:{} seq={} sent={}",
                    from.node,
                    from.pid,
                    m.id.src.node,
                    m.id.src.pid,
                    m.id.src.inc,
                    m.id.seq,
                    m.sent_ns
                ),
                None => writeln!(s, "D {t} inc={inc} from={}:{} bad", from.node, from.pid),
            },
            Line::ConfChg {
                t,
                inc,
                members,
                joined,
                left,
            } => writeln!(
                s,
                "C {t} inc={inc} members={} joined={} left={}",
                procs(members),
                reasons(joined),
                reasons(left)
            ),
            Line::Ring {
                t,
                inc,
                ring,
                nodes,
            } => {
                let n: Vec<String> = nodes.iter().map(u32::to_string).collect();
                writeln!(s, "T {t} inc={inc} ring={ring} nodes={}", n.join(","))
            }
            Line::Error { t, inc, what } => {
                writeln!(s, "E {t} inc={inc} {}", what.replace('\n', " "))
            }
            Line::End { t } => writeln!(s, "Q {t}"),
        };
        s
    }

    /// Reads one line back; `None` for a line cut short (a process killed while writing it).
    pub fn parse(text: &str) -> Option<Line> {
        let mut words = text.split_whitespace();
        let kind = words.next()?;
        let t: u64 = words.next()?.parse().ok()?;
        let rest: Vec<&str> = words.collect();
        let field = |key: &str| -> Option<&str> {
            rest.iter()
                .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        let num = |key: &str| -> Option<u64> { field(key)?.parse().ok() };
        let inc = || -> Option<u32> { num("inc").map(|v| v as u32) };
        Some(match kind {
            "A" => Line::Attach {
                t,
                inc: inc()?,
                node: num("node")? as u32,
                pid: num("pid")? as u32,
            },
            "J" => Line::Joined { t, inc: inc()? },
            "S" => Line::Send {
                t,
                inc: inc()?,
                seq: num("seq")?,
            },
            "D" => {
                let from = parse_proc(field("from")?)?;
                let msg = if rest.contains(&"bad") {
                    None
                } else {
                    let src: Vec<u32> = field("src")?
                        .split(':')
                        .map(|v| v.parse().ok())
                        .collect::<Option<_>>()?;
                    if src.len() != 3 {
                        return None;
                    }
                    Some(Decoded {
                        id: MsgId {
                            src: Source {
                                node: src[0],
                                pid: src[1],
                                inc: src[2],
                            },
                            seq: num("seq")?,
                        },
                        sent_ns: num("sent")?,
                    })
                };
                Line::Deliver {
                    t,
                    inc: inc()?,
                    from,
                    msg,
                }
            }
            "C" => Line::ConfChg {
                t,
                inc: inc()?,
                members: parse_list(field("members")?, parse_proc)?,
                joined: parse_list(field("joined")?, parse_reason)?,
                left: parse_list(field("left")?, parse_reason)?,
            },
            "T" => Line::Ring {
                t,
                inc: inc()?,
                ring: field("ring")?.to_owned(),
                nodes: parse_list(field("nodes")?, |w| w.parse().ok())?,
            },
            "E" => Line::Error {
                t,
                inc: inc()?,
                what: rest.iter().skip(1).copied().collect::<Vec<_>>().join(" "),
            },
            "Q" => Line::End { t },
            _ => return None,
        })
    }
}

fn parse_proc(w: &str) -> Option<Proc> {
    let (n, p) = w.split_once(':')?;
    Some(Proc {
        node: n.parse().ok()?,
        pid: p.parse().ok()?,
    })
}

fn parse_reason(w: &str) -> Option<(Proc, u8)> {
    let (np, r) = w.rsplit_once(':')?;
    Some((parse_proc(np)?, r.parse().ok()?))
}

fn parse_list<T>(text: &str, f: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    if text == "-" || text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(f).collect()
}

/// CLOCK_MONOTONIC now, in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: clock_gettime writes the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_any_altered_byte_is_caught() {
        let src = Source {
            node: 3,
            pid: 77,
            inc: 1,
        };
        let mut m = Vec::new();
        encode(src, 42, 123_456, 100, &mut m);
        let d = decode(&m).unwrap();
        assert_eq!(d.id, MsgId { src, seq: 42 });
        assert_eq!(d.sent_ns, 123_456);
        for i in 0..m.len() {
            let mut bad = m.clone();
            bad[i] ^= 0x10;
            assert_eq!(decode(&bad), None, "byte {i} altered");
        }
        assert_eq!(decode(&m[..m.len() - 1]), None, "truncated");
    }

    #[test]
    fn every_line_reads_back() {
        let p = Proc { node: 1, pid: 9 };
        let lines = [
            Line::Attach {
                t: 1,
                node: 1,
                pid: 9,
                inc: 0,
            },
            Line::Joined { t: 2, inc: 0 },
            Line::Send {
                t: 3,
                inc: 0,
                seq: 5,
            },
            Line::Deliver {
                t: 4,
                inc: 0,
                from: p,
                msg: Some(Decoded {
                    id: MsgId {
                        src: Source {
                            node: 1,
                            pid: 9,
                            inc: 0,
                        },
                        seq: 5,
                    },
                    sent_ns: 3,
                }),
            },
            Line::Deliver {
                t: 4,
                inc: 0,
                from: p,
                msg: None,
            },
            Line::ConfChg {
                t: 5,
                inc: 0,
                members: vec![p, Proc { node: 2, pid: 4 }],
                joined: vec![(p, 1)],
                left: vec![],
            },
            Line::Ring {
                t: 6,
                inc: 0,
                ring: "1.1c".into(),
                nodes: vec![1, 2, 3],
            },
            Line::Error {
                t: 7,
                inc: 0,
                what: "peer gone".into(),
            },
            Line::End { t: 8 },
        ];
        for l in lines {
            assert_eq!(
                Line::parse(&l.to_text()),
                Some(l.clone()),
                "{}",
                l.to_text()
            );
        }
        assert_eq!(Line::parse("D 12 inc=0 from=1:"), None, "a line cut short");
    }
}
