//! The checker: reads every checker client's log and tests what the processes saw against
//! what CPG promises, from the logs alone.
//!
//! A *member* is one incarnation of one process (a re-attach after its node's dataplane
//! restarted is a new member with a new join). Properties, each violation a line naming the
//! log and the event:
//! - **intact**: every delivered message decodes with its checksum, and names as its source
//!   the process CPG says sent it;
//! - **not invented**: every delivered message was sent (its `S` line exists in the sender's
//!   log);
//! - **no duplicates**: a process delivers a message at most once, over all its incarnations;
//! - **self-inclusion**: a member's first group event is the configuration change that adds
//!   it (listed in members and joined), every later change lists it until the one that tells
//!   it of its own leave (after which it gets nothing), and every message it delivers comes
//!   from a member of its current view;
//! - **per-sender order**: a member delivers one sender's messages in sequence order, with a
//!   gap only where that sender left its view in between;
//! - **total order**: any two members deliver the messages they both deliver in one order;
//! - **virtual synchrony**: two members that install the same view and then the same next
//!   view deliver the same messages in between. A view is named by the totem ring it was
//!   installed in and its member list, so it is compared only between members that saw that
//!   ring's change (a member attached later cannot name it).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::record::{proc_list, Line, MsgId, Proc, Source};

/// One member's history: what it delivered, in order, and its views.
#[derive(Debug, Default)]
struct Member {
    /// `log:inc`, for messages.
    name: String,
    proc: Option<Proc>,
    inc: u32,
    delivered: Vec<MsgId>,
    /// Views in order: name (if known) and the index in `delivered` where each begins.
    views: Vec<(Option<ViewKey>, usize)>,
}

type ViewKey = (String, Vec<Proc>);

/// libcpg's CPG_REASON_LEAVE.
const REASON_LEAVE: u8 = 2;

/// What the logs held and what was wrong with them.
#[derive(Debug, Default)]
pub struct Report {
    pub deliveries: u64,
    pub sends: u64,
    pub members: usize,
    pub views_compared: u64,
    pub violations: Vec<String>,
}

impl Report {
    /// The lines a sequence's summary ends with: what the checker found, the changes the
    /// sequence did not expect, and a failed set-up.
    pub fn summary_tail(&self, unexpected: &[String], setup_error: Option<&str>) -> String {
        let mut s = format!(
            "checked {} deliveries of {} members: {} violations, {} unexpected changes\n",
            self.deliveries,
            self.members,
            self.violations.len(),
            unexpected.len()
        );
        for v in self.violations.iter().chain(unexpected) {
            s.push_str(&format!("  {v}\n"));
        }
        if let Some(e) = setup_error {
            s.push_str(&format!("SET-UP FAILED: {e}\n"));
        }
        s
    }

    /// Keeps at most this many violation lines per property (a broken property breaks
    /// thousands of times).
    const PER_KIND_MAX: usize = 5;

    fn violate(
        &mut self,
        counts: &mut HashMap<&'static str, usize>,
        kind: &'static str,
        s: String,
    ) {
        let n = counts.entry(kind).or_default();
        *n += 1;
        if *n <= Self::PER_KIND_MAX {
            self.violations.push(format!("{kind}: {s}"));
        } else if *n == Self::PER_KIND_MAX + 1 {
            self.violations.push(format!("{kind}: … (more)"));
        }
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks the logs `(name, lines)`, one per checker process.
pub fn check(logs: &[(String, Vec<Line>)]) -> Report {
    let mut report = Report::default();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();

    // Every message any process meant to send.
    let mut sent: HashSet<MsgId> = HashSet::new();
    for (_, lines) in logs {
        let mut me: Option<(u32, u32)> = None;
        for l in lines {
            match l {
                Line::Attach { node, pid, .. } => me = Some((*node, *pid)),
                Line::Send { inc, seq, .. } => {
                    if let Some((node, pid)) = me {
                        report.sends += 1;
                        sent.insert(MsgId {
                            src: Source {
                                node,
                                pid,
                                inc: *inc,
                            },
                            seq: *seq,
                        });
                    }
                }
                _ => {}
            }
        }
    }

    let mut members: Vec<Member> = Vec::new();
    for (name, lines) in logs {
        let mut seen_in_process: HashSet<MsgId> = HashSet::new();
        let mut m = Member::default();
        let mut ring: Option<String> = None;
        // Per member state.
        let mut view: Option<Vec<Proc>> = None;
        let mut last_seq: HashMap<Source, u64> = HashMap::new();
        // Senders (node, pid) that left this member's view since its last delivery from them.
        let mut left_since: HashSet<Proc> = HashSet::new();
        let mut keys_seen: HashSet<ViewKey> = HashSet::new();
        // The member saw the change of its own leave: it is out of the group.
        let mut has_left = false;
        for (n, l) in lines.iter().enumerate() {
            let at = format!("{name}:{}", n + 1);
            match l {
                Line::Attach { node, pid, inc, .. } => {
                    if m.proc.is_some() {
                        members.push(std::mem::take(&mut m));
                    }
                    m.name = format!("{name} inc {inc}");
                    m.proc = Some(Proc {
                        node: *node,
                        pid: *pid,
                    });
                    m.inc = *inc;
                    ring = None;
                    view = None;
                    has_left = false;
                    last_seq.clear();
                    left_since.clear();
                    keys_seen.clear();
                }
                Line::Ring { ring: r, .. } => ring = Some(r.clone()),
                Line::ConfChg {
                    members: list,
                    joined,
                    left,
                    ..
                } => {
                    let Some(me) = m.proc else { continue };
                    if has_left {
                        report.violate(
                            &mut counts,
                            "self-inclusion",
                            format!(
                                "{at}: {} got a configuration change after its own leave",
                                m.name
                            ),
                        );
                    }
                    // libcpg tells a process of its own leave: the change lists it as left.
                    let leaving = left.iter().any(|(p, r)| *p == me && *r == REASON_LEAVE);
                    match &view {
                        Some(_) if leaving => has_left = true,
                        None => {
                            let adds_me = joined.iter().any(|(p, _)| *p == me);
                            if !list.contains(&me) || !adds_me {
                                report.violate(
                                    &mut counts,
                                    "self-inclusion",
                                    format!(
                                        "{at}: first configuration change of {} does not add it \
                                         (members {})",
                                        m.name,
                                        proc_list(list)
                                    ),
                                );
                            }
                        }
                        Some(old) => {
                            if !list.contains(&me) {
                                report.violate(
                                    &mut counts,
                                    "self-inclusion",
                                    format!("{at}: a view of {} without itself", m.name),
                                );
                            }
                            for p in old {
                                if !list.contains(p) {
                                    left_since.insert(*p);
                                }
                            }
                        }
                    }
                    let mut sorted = list.clone();
                    sorted.sort_unstable();
                    let key = ring.as_ref().map(|r| (r.clone(), sorted));
                    // A name seen twice by one member is ambiguous: compare neither.
                    let key = match key {
                        Some(k) if keys_seen.insert(k.clone()) => Some(k),
                        _ => None,
                    };
                    m.views.push((key, m.delivered.len()));
                    view = Some(list.clone());
                }
                Line::Deliver { from, msg, .. } => {
                    report.deliveries += 1;
                    let Some(me) = m.proc else { continue };
                    let Some(d) = msg else {
                        report.violate(
                            &mut counts,
                            "intact",
                            format!(
                                "{at}: a message from {}:{} altered or not a checker's",
                                from.node, from.pid
                            ),
                        );
                        continue;
                    };
                    let id = d.id;
                    if id.src.node != from.node || id.src.pid != from.pid {
                        report.violate(
                            &mut counts,
                            "intact",
                            format!("{at}: CPG says {from} sent {id}"),
                        );
                    }
                    if !sent.contains(&id) {
                        report.violate(
                            &mut counts,
                            "invented",
                            format!("{at}: {id} was never sent"),
                        );
                    }
                    if !seen_in_process.insert(id) {
                        report.violate(
                            &mut counts,
                            "duplicate",
                            format!("{at}: {id} delivered again"),
                        );
                        continue;
                    }
                    match &view {
                        _ if has_left => report.violate(
                            &mut counts,
                            "self-inclusion",
                            format!("{at}: {} delivered {id} after its own leave", m.name),
                        ),
                        None => report.violate(
                            &mut counts,
                            "self-inclusion",
                            format!(
                                "{at}: {} delivered {id} before the change that adds it",
                                m.name
                            ),
                        ),
                        Some(v) if !v.contains(from) => report.violate(
                            &mut counts,
                            "self-inclusion",
                            format!(
                                "{at}: {id} from a process outside the view {}",
                                proc_list(v)
                            ),
                        ),
                        Some(_) => {}
                    }
                    let _ = me;
                    if let Some(prev) = last_seq.get(&id.src) {
                        let gap_allowed = left_since.contains(from);
                        if id.seq <= *prev || (id.seq != prev + 1 && !gap_allowed) {
                            report.violate(
                                &mut counts,
                                "per-sender order",
                                format!(
                                    "{at}: {} delivered seq {} of {}:{}:{} after seq {prev}",
                                    m.name, id.seq, id.src.node, id.src.pid, id.src.inc
                                ),
                            );
                        }
                    }
                    last_seq.insert(id.src, id.seq);
                    left_since.remove(from);
                    m.delivered.push(id);
                }
                _ => {}
            }
        }
        if m.proc.is_some() {
            members.push(m);
        }
    }
    report.members = members.len();

    // Total order between every pair of members.
    let positions: Vec<HashMap<MsgId, usize>> = members
        .iter()
        .map(|m| {
            m.delivered
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i))
                .collect()
        })
        .collect();
    for a in 0..members.len() {
        for b in a + 1..members.len() {
            let mut last: Option<(usize, MsgId)> = None;
            for id in &members[a].delivered {
                let Some(&pos) = positions[b].get(id) else {
                    continue;
                };
                if let Some((prev, prev_id)) = last {
                    if pos < prev {
                        report.violate(
                            &mut counts,
                            "total order",
                            format!(
                                "{} delivered {prev_id} before {id}, {} the other way round",
                                members[a].name, members[b].name
                            ),
                        );
                        break;
                    }
                }
                last = Some((pos, *id));
            }
        }
    }

    // Virtual synchrony: same view, same next view → same messages in between.
    type Segment<'a> = (&'a [MsgId], Option<&'a ViewKey>);
    let mut by_view: BTreeMap<&ViewKey, Vec<(usize, Segment)>> = BTreeMap::new();
    for (k, m) in members.iter().enumerate() {
        for w in m.views.windows(2) {
            if let (Some(key), start) = (&w[0].0, w[0].1) {
                let segment = &m.delivered[start..w[1].1];
                by_view
                    .entry(key)
                    .or_default()
                    .push((k, (segment, w[1].0.as_ref())));
            }
        }
    }
    for (key, list) in &by_view {
        for i in 0..list.len() {
            for j in i + 1..list.len() {
                let (a, (sa, na)) = &list[i];
                let (b, (sb, nb)) = &list[j];
                if na.is_none() || na != nb {
                    continue;
                }
                report.views_compared += 1;
                if sa != sb {
                    report.violate(
                        &mut counts,
                        "virtual synchrony",
                        format!(
                            "{} and {} moved together from view {} {} to the next but delivered \
                             {} and {} messages in it",
                            members[*a].name,
                            members[*b].name,
                            key.0,
                            proc_list(&key.1),
                            sa.len(),
                            sb.len()
                        ),
                    );
                }
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Decoded;

    const JOIN: u8 = 1;
    const NODEDOWN: u8 = 3;

    fn p(node: u32) -> Proc {
        Proc {
            node,
            pid: 100 + node,
        }
    }

    fn id(node: u32, seq: u64) -> MsgId {
        MsgId {
            src: Source {
                node,
                pid: 100 + node,
                inc: 0,
            },
            seq,
        }
    }

    fn deliver(node: u32, seq: u64) -> Line {
        Line::Deliver {
            t: 0,
            inc: 0,
            from: p(node),
            msg: Some(Decoded {
                id: id(node, seq),
                sent_ns: 0,
            }),
        }
    }

    fn conf(members: &[u32], joined: &[u32], left: &[u32]) -> Line {
        Line::ConfChg {
            t: 0,
            inc: 0,
            members: members.iter().map(|&n| p(n)).collect(),
            joined: joined.iter().map(|&n| (p(n), JOIN)).collect(),
            left: left.iter().map(|&n| (p(n), NODEDOWN)).collect(),
        }
    }

    fn ring(r: &str, nodes: &[u32]) -> Line {
        Line::Ring {
            t: 0,
            inc: 0,
            ring: r.into(),
            nodes: nodes.to_vec(),
        }
    }

    /// Three processes that joined together, each sending `per` messages, all delivered in
    /// the same order by all three, then node 3 leaves and 1 and 2 deliver two more.
    fn good() -> Vec<(String, Vec<Line>)> {
        let per = 4;
        let mut order = Vec::new();
        for s in 0..per {
            for n in 1..=3 {
                order.push((n, s));
            }
        }
        (1..=3u32)
            .map(|me| {
                let mut lines = vec![
                    Line::Attach {
                        t: 0,
                        node: me,
                        pid: 100 + me,
                        inc: 0,
                    },
                    ring("1.4", &[1, 2, 3]),
                    Line::Joined { t: 0, inc: 0 },
                    conf(&[1, 2, 3], &[1, 2, 3], &[]),
                ];
                for s in 0..per + 1 {
                    lines.push(Line::Send {
                        t: 0,
                        inc: 0,
                        seq: s,
                    });
                }
                lines.extend(order.iter().map(|&(n, s)| deliver(n, s)));
                if me != 3 {
                    lines.push(ring("1.8", &[1, 2]));
                    lines.push(conf(&[1, 2], &[], &[3]));
                    lines.push(deliver(1, per));
                    lines.push(deliver(2, per));
                }
                (format!("n{me}.log"), lines)
            })
            .collect()
    }

    fn kinds(r: &Report) -> Vec<String> {
        r.violations
            .iter()
            .map(|v| v.split(':').next().unwrap().to_owned())
            .collect()
    }

    /// Asserts that checking `logs` reports a violation of `kind`.
    fn assert_caught(logs: &[(String, Vec<Line>)], kind: &str) {
        let r = check(logs);
        assert!(
            kinds(&r).iter().any(|k| k == kind),
            "{kind}: {:?}",
            r.violations
        );
    }

    /// Where in `lines` the delivery of `node`'s message `seq` stands.
    fn delivery_index(lines: &[Line], node: u32, seq: u64) -> usize {
        lines.iter().position(|l| *l == deliver(node, seq)).unwrap()
    }

    #[test]
    fn a_correct_history_passes() {
        let r = check(&good());
        assert!(r.ok(), "{:?}", r.violations);
        assert_eq!(r.members, 3);
        assert_eq!(r.deliveries, 12 * 3 + 4);
        assert!(r.views_compared >= 1, "1 and 2 moved together");
    }

    #[test]
    fn a_reordered_delivery_is_caught() {
        let mut logs = good();
        // Node 2 swaps two deliveries of different senders.
        let lines = &mut logs[1].1;
        let a = delivery_index(lines, 1, 1);
        lines.swap(a, a + 1);
        assert_caught(&logs, "total order");
    }

    #[test]
    fn a_duplicate_an_invention_and_an_alteration_are_caught() {
        let mut logs = good();
        logs[0].1.push(deliver(2, 1));
        logs[1].1.push(deliver(3, 99));
        logs[2].1.push(Line::Deliver {
            t: 0,
            inc: 0,
            from: p(1),
            msg: None,
        });
        let r = check(&logs);
        let k = kinds(&r);
        for want in ["duplicate", "invented", "intact"] {
            assert!(k.contains(&want.to_owned()), "{want}: {:?}", r.violations);
        }
    }

    #[test]
    fn a_gap_in_one_senders_sequence_is_caught() {
        let mut logs = good();
        let lines = &mut logs[0].1;
        let a = delivery_index(lines, 3, 2);
        lines.remove(a);
        assert_caught(&logs, "per-sender order");
    }

    #[test]
    fn a_delivery_before_the_own_join_is_caught() {
        let mut logs = good();
        // Node 3 gets node 1's first message before the change that adds it.
        let lines = &mut logs[2].1;
        lines.insert(3, deliver(1, 0));
        assert_caught(&logs, "self-inclusion");
        // And a first change that lists others only.
        let mut logs = good();
        logs[2].1[3] = conf(&[1, 2], &[1, 2], &[]);
        assert_caught(&logs, "self-inclusion");
    }

    #[test]
    fn members_that_move_together_but_deliver_differently_are_caught() {
        let mut logs = good();
        // Node 2 misses node 3's last message in the view all three shared, yet moves on to
        // the same next view as node 1.
        let lines = &mut logs[1].1;
        let a = delivery_index(lines, 3, 3);
        lines.remove(a);
        assert_caught(&logs, "virtual synchrony");
    }

    #[test]
    fn the_change_of_the_own_leave_ends_a_member_and_nothing_may_follow() {
        let mut logs = good();
        let leave = |n: u32| Line::ConfChg {
            t: 0,
            inc: 0,
            members: vec![p(1), p(2)],
            joined: vec![],
            left: vec![(p(n), REASON_LEAVE)],
        };
        // Node 3 leaves instead of crashing: it is told, and so are the others.
        logs[2].1.push(leave(3));
        let r = check(&logs);
        assert!(r.ok(), "{:?}", r.violations);
        logs[2].1.push(deliver(1, 4));
        assert_caught(&logs, "self-inclusion");
    }

    #[test]
    fn a_sender_that_left_may_resume_after_a_gap() {
        let mut logs = good();
        // Node 3 was partitioned away, sent 4..6 on its own, and came back: 1 sees a gap in
        // 3's sequence after 3 left its view.
        for s in 5..8 {
            logs[2].1.push(Line::Send {
                t: 0,
                inc: 0,
                seq: s,
            });
        }
        logs[0].1.push(conf(&[1, 2, 3], &[3], &[]));
        logs[0].1.push(deliver(3, 7));
        let r = check(&logs);
        assert!(r.ok(), "{:?}", r.violations);
    }
}
