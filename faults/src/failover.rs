//! When a failover happened, read from what the processes wrote down rather than from polling:
//! each node's link up/down lines in rotord's log (knet's "link: host: N link: L is down",
//! stamped by `timestamp: hires` in local wall time, to the millisecond) and the checkers'
//! deliveries (CLOCK_MONOTONIC nanoseconds). Both are put on the checkers' clock: the hosts
//! are network namespaces on one machine, so CLOCK_REALTIME and CLOCK_MONOTONIC are the same
//! for every process, and their difference, read once, converts one into the other. A log
//! line's time is cut to the millisecond, so a link event is placed at the middle of its
//! millisecond: ±0.5 ms; deliveries and the fault itself are exact to the clock.
//! Only the figures are computed here; nothing is asserted on them.

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rotor_log::format::MONTHS;

use crate::record::{Line, Proc};

/// A log line's time covers this whole millisecond: an event is placed at its middle.
const HALF_MS_NS: u64 = 500_000;

/// A link of one peer going up or down as one node logged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkLine {
    /// When, in CLOCK_MONOTONIC nanoseconds (the middle of the logged millisecond).
    pub t: u64,
    /// The peer the link leads to.
    pub peer: u32,
    pub link: u8,
    pub up: bool,
    /// Changes of the link before this one that the log's rate limit left out (their times
    /// are lost: a figure read past them may be late).
    pub unlogged: u32,
}

/// The difference of the two clocks, read once.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    /// CLOCK_REALTIME less CLOCK_MONOTONIC, in nanoseconds.
    realtime_less_monotonic_ns: i128,
}

impl Clocks {
    pub fn now() -> Clocks {
        Clocks {
            realtime_less_monotonic_ns: crate::soak::realtime_offset_ns(),
        }
    }

    /// `unix_ns` (wall clock) on the monotonic clock.
    pub fn monotonic(&self, unix_ns: u64) -> u64 {
        (i128::from(unix_ns) - self.realtime_less_monotonic_ns).max(0) as u64
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The calendar year of `t` in this host's time zone (a log line does not say it).
pub fn year_of(t: SystemTime) -> i32 {
    let secs = (unix_ns(t) / 1_000_000_000) as libc::time_t;
    // Safety: localtime_r only writes the tm it is given; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // Safety: both pointers are valid for the duration of the call.
    unsafe { libc::localtime_r(&secs, &mut tm) };
    tm.tm_year + 1900
}

/// The wall time, in nanoseconds since the Unix epoch, of a hires timestamp
/// (`Dec 07 07:30:12.345`) of `year` in this host's time zone (mktime, as the logger's
/// localtime_r).
fn parse_hires(text: &str, year: i32) -> Option<u64> {
    let (month, rest) = text.split_once(' ')?;
    let month = MONTHS.iter().position(|m| *m == month)?;
    let (day, clock) = rest.split_once(' ')?;
    let (hms, millis) = clock.split_once('.')?;
    let mut f = hms.split(':').map(|v| v.parse::<i32>().ok());
    let (hour, minute, second) = (f.next()??, f.next()??, f.next()??);
    let millis: u64 = millis.parse().ok().filter(|_| millis.len() == 3)?;
    // Safety: a zeroed tm is a valid value; mktime reads and normalises the tm we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = year - 1900;
    tm.tm_mon = month as i32;
    tm.tm_mday = day.parse().ok()?;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    tm.tm_isdst = -1;
    // Safety: see above.
    let secs = unsafe { libc::mktime(&mut tm) };
    let secs = u64::try_from(secs).ok()?;
    Some(secs * 1_000_000_000 + millis * 1_000_000)
}

/// Reads one line of rotord's stderr log; `None` unless it is a hires-stamped link up/down
/// line. `year` is the year the log was written in.
pub fn parse_link_line(text: &str, year: i32, clocks: &Clocks) -> Option<LinkLine> {
    // "Mon DD HH:MM:SS.mmm " is 19 characters and a space.
    let stamp = text.get(..19)?;
    let (_, event) = text.split_once("link: host: ")?;
    let mut w = event.split_whitespace();
    let peer = w.next()?.parse().ok()?;
    if w.next()? != "link:" {
        return None;
    }
    let link = w.next()?.parse().ok()?;
    if w.next()? != "is" {
        return None;
    }
    let up = match w.next()? {
        "up" => true,
        "down" => false,
        _ => return None,
    };
    // "(N earlier up/down changes of this link were not logged: …)"
    let unlogged = match w.next() {
        Some(n) => n.strip_prefix('(')?.parse().ok()?,
        None => 0,
    };
    let unix = parse_hires(stamp, year)?;
    Some(LinkLine {
        t: clocks.monotonic(unix + HALF_MS_NS),
        peer,
        link,
        up,
        unlogged,
    })
}

/// Every link line of a rotord log file (none if it cannot be read).
pub fn read_link_lines(path: &Path, year: i32, clocks: &Clocks) -> Vec<LinkLine> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter_map(|l| parse_link_line(l, year, clocks))
                .collect()
        })
        .unwrap_or_default()
}

/// When node `node` had the links `links` to every peer in `peers` in state `up`: the latest,
/// over the peers and links, of the first such line at or after `since` (`None` if one never
/// came).
/// A line is placed at the middle of its millisecond, so one of an event just after `since`
/// may stand up to half a millisecond before it.
pub fn seen(lines: &[LinkLine], peers: &[u32], links: &[u8], up: bool, since: u64) -> Option<u64> {
    let mut latest = since;
    for &peer in peers {
        for &link in links {
            let t = lines
                .iter()
                .find(|l| {
                    l.t + HALF_MS_NS >= since && l.peer == peer && l.link == link && l.up == up
                })?
                .t;
            latest = latest.max(t);
        }
    }
    Some(latest)
}

/// Whether a line in `from..to` says the rate limit left out changes of one of `links`.
pub fn left_out(lines: &[LinkLine], links: &[u8], (from, to): (u64, u64)) -> bool {
    lines
        .iter()
        .any(|l| l.unlogged > 0 && links.contains(&l.link) && (from..to).contains(&l.t))
}

/// Traffic flowing after a fault: every checker has delivered a message sent at or after the
/// fault by every checker. The pair that came last says where the time went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flowing {
    /// When the last of those first deliveries happened.
    pub at: u64,
    /// The node of the sender and of the receiver of that delivery.
    pub from: u32,
    pub to: u32,
    /// When its message was sent (at or after the fault: the sender's next send).
    pub sent: u64,
}

/// When traffic flowed after `fault_ns`, from the checkers' logs (`None` if some checker
/// never delivered such a message of some other).
pub fn flowing(logs: &[(String, Vec<Line>)], fault_ns: u64) -> Option<Flowing> {
    let attached = |lines: &[Line]| {
        lines.iter().find_map(|l| match l {
            Line::Attach { node, pid, .. } => Some(Proc {
                node: *node,
                pid: *pid,
            }),
            _ => None,
        })
    };
    let senders: Vec<Proc> = logs.iter().filter_map(|(_, l)| attached(l)).collect();
    let mut last: Option<Flowing> = None;
    for (_, lines) in logs {
        let to = attached(lines)?;
        let mut first: HashMap<Proc, (u64, u64)> = HashMap::new();
        for l in lines {
            if let Line::Deliver {
                t,
                from,
                msg: Some(m),
                ..
            } = l
            {
                if m.sent_ns >= fault_ns {
                    first.entry(*from).or_insert((*t, m.sent_ns));
                }
            }
        }
        for s in &senders {
            let &(at, sent) = first.get(s)?;
            if last.is_none_or(|f| at > f.at) {
                last = Some(Flowing {
                    at,
                    from: s.node,
                    to: to.node,
                    sent,
                });
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{self, Decoded, MsgId, Source};
    use rotor_endpoint::LinkEvent;
    use rotor_log::format::{stderr_line, Format, LocalTime};
    use rotor_proto::log::{Level, Timestamp};
    use std::time::Duration;

    /// rotord's stderr line for `event` logged at `t`, as its logger writes it.
    fn logged(t: SystemTime, event: LinkEvent) -> String {
        let message = event.to_string();
        let line = rotor_log::format::Line {
            level: Level::Notice,
            tag: "KNET",
            file: "dataplane/src/runner.rs",
            line: 100,
            message: &message,
        };
        let f = Format {
            timestamp: Timestamp::Hires,
            fileline: false,
        };
        let mut out = String::new();
        stderr_line(&f, &LocalTime::of(t), &line, &mut out);
        out
    }

    #[test]
    fn a_logged_link_line_lands_in_the_middle_of_its_millisecond_on_the_monotonic_clock() {
        let clocks = Clocks::now();
        // 2026-12-07 07:30:12.345678901 UTC, whatever the zone: the logger and the parser
        // both use this host's.
        let t = UNIX_EPOCH + Duration::from_nanos(1_796_628_612_345_678_901);
        let event = LinkEvent {
            node: 3,
            link: 1,
            up: false,
            unlogged: 0,
        };
        let text = logged(t, event);
        let l = parse_link_line(&text, year_of(t), &clocks).expect(&text);
        assert_eq!(
            l,
            LinkLine {
                t: clocks.monotonic(1_796_628_612_345_500_000),
                peer: 3,
                link: 1,
                up: false,
                unlogged: 0,
            }
        );
        let up = LinkEvent {
            up: true,
            unlogged: 5,
            ..event
        };
        let text = logged(t, up);
        assert!(
            parse_link_line(&text, year_of(t), &clocks).is_some_and(|l| l.up && l.unlogged == 5),
            "{text}"
        );
        // Another line, or one with the time cut off, is not a link line.
        assert_eq!(
            parse_link_line(
                "Dec 07 07:30:12.345 notice  [TOTEM ] A new membership",
                2026,
                &clocks
            ),
            None
        );
        assert_eq!(
            parse_link_line(
                "notice  [KNET  ] link: host: 3 link: 1 is down",
                2026,
                &clocks
            ),
            None
        );
        assert_eq!(
            parse_link_line(
                "Dec 07 07:30:12 notice  [KNET  ] link: host: 3 link: 1 is down",
                2026,
                &clocks
            ),
            None
        );
    }

    #[test]
    fn the_two_clocks_differ_by_what_was_read_once() {
        let clocks = Clocks::now();
        let mono = record::now_ns();
        let real = unix_ns(SystemTime::now());
        // The reads are microseconds apart (a second allows for a preempted test), the
        // clocks' difference is decades.
        let on_mono = clocks.monotonic(real);
        assert!(
            on_mono.abs_diff(mono) < 1_000_000_000,
            "{on_mono} against {mono}"
        );
    }

    const MS: u64 = 1_000_000;

    fn line(ms: u64, peer: u32, link: u8, up: bool) -> LinkLine {
        LinkLine {
            t: ms * MS + HALF_MS_NS,
            peer,
            link,
            up,
            unlogged: 0,
        }
    }

    #[test]
    fn a_node_has_seen_a_link_down_once_it_is_down_to_every_peer_across_it() {
        let lines = [
            line(50, 1, 0, false), // before the fault
            line(120, 1, 0, false),
            line(130, 2, 1, false), // another link
            line(150, 2, 0, true),
            line(170, 2, 0, false),
        ];
        let since = 100 * MS;
        assert_eq!(
            seen(&lines, &[1], &[0], false, since),
            Some(line(120, 1, 0, false).t)
        );
        assert_eq!(
            seen(&lines, &[1, 2], &[0], false, since),
            Some(line(170, 1, 0, false).t)
        );
        assert_eq!(
            seen(&lines, &[2], &[0], true, since),
            Some(line(150, 1, 0, false).t)
        );
        assert_eq!(seen(&lines, &[1], &[0, 1], false, since), None);
        // Logged in the millisecond of the fault, after it: placed before it, still seen.
        let early = [line(99, 1, 0, false)];
        assert_eq!(seen(&early, &[1], &[0], false, since - 1), Some(since - 1));
        assert_eq!(seen(&early, &[1], &[0], false, since + 1), None);
        // A line saying earlier changes went unlogged marks its span, for its link only.
        let mut lines = lines.to_vec();
        lines[3].unlogged = 2;
        assert!(left_out(&lines, &[0], (100 * MS, 160 * MS)));
        assert!(!left_out(&lines, &[1], (100 * MS, 160 * MS)));
        assert!(!left_out(&lines, &[0], (160 * MS, 200 * MS)));
    }

    fn deliver(t: u64, from: Proc, sent_ns: u64, seq: u64) -> Line {
        Line::Deliver {
            t,
            inc: 0,
            from,
            msg: Some(Decoded {
                id: MsgId {
                    src: Source {
                        node: from.node,
                        pid: from.pid,
                        inc: 0,
                    },
                    seq,
                },
                sent_ns,
            }),
        }
    }

    fn attach(p: Proc) -> Line {
        Line::Attach {
            t: 0,
            node: p.node,
            pid: p.pid,
            inc: 0,
        }
    }

    #[test]
    fn traffic_flows_when_the_last_checker_has_a_message_of_the_last_sender_sent_after_the_fault() {
        let a = Proc { node: 1, pid: 10 };
        let b = Proc { node: 3, pid: 30 };
        let logs = vec![
            (
                "checker-1".to_owned(),
                vec![
                    attach(a),
                    deliver(900, b, 890, 1), // sent before the fault at 1000
                    deliver(1010, a, 1005, 2),
                    deliver(1300, b, 1100, 2),
                    deliver(1400, b, 1200, 3),
                ],
            ),
            (
                "checker-3".to_owned(),
                vec![
                    attach(b),
                    deliver(1200, b, 1150, 4),
                    deliver(1250, a, 1005, 2),
                ],
            ),
        ];
        assert_eq!(
            flowing(&logs, 1000),
            Some(Flowing {
                at: 1300,
                from: 3,
                to: 1,
                sent: 1100,
            })
        );
        // A checker that never delivers a message of another sent after the fault: not yet.
        let mut stuck = logs.clone();
        stuck[1].1.pop();
        assert_eq!(flowing(&stuck, 1000), None);
    }
}
