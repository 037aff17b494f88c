//! The checkers of what processes saw (each session's log, written by the same fan-out the
//! dataplane runs), beside `check`'s checkers of what nodes delivered:
//!
//! - self-inclusion: the first event a session receives of a group is the change that adds it
//!   (listing it in `members` and, reason join, in `joined`); every change until it leaves lists
//!   it as a member; the change that shows it leave is its last event of the group until it
//!   joins again;
//! - one sequence per view: two sessions in the same view of a group — started by the same
//!   change, anywhere in the cluster — receive the same messages and the same next change, in
//!   the same order (within one configuration; across a configuration change the one whose
//!   node delivered less has a prefix of the other's, as EVS allows);
//! - completion: in a run that converged, a session still attached at the end received the
//!   change answering each join and leave it asked for.

use std::collections::BTreeMap;

use totem_core::{ChangeReason, GroupChange, ProcessId};

use crate::apps::{Pos, Seen, SessionLog};
use crate::check::{Label, MsgId};

/// A view of a group: the change that started it, by position (the same at every node that
/// delivered it) and membership.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct ViewKey {
    group: Vec<u8>,
    at: Pos,
    members: Vec<ProcessId>,
}

/// How a session's part of a view within one configuration ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum End {
    /// With the view's next change, in the same configuration.
    Change(GroupChange),
    /// With an event in another configuration, or with the end of the log.
    Open,
}

/// One session's deliveries in one view within one configuration.
struct Part {
    session: usize,
    deliveries: Vec<MsgId>,
    end: End,
}

/// Violations reported per checker at most (the first ones tell the story).
const REPORTED_MAX: usize = 5;

fn name(log: &SessionLog, index: usize) -> String {
    format!(
        "process {}:{} (session {index}, node incarnation {})",
        log.node, log.pid, log.incarnation
    )
}

/// `[1:101 2:104]`
fn members(list: &[ProcessId]) -> String {
    let names: Vec<String> = list
        .iter()
        .map(|m| format!("{}:{}", m.node, m.pid))
        .collect();
    format!("[{}]", names.join(" "))
}

/// `1:101 (join)`, for a change's joined or left list.
fn reasons(list: &[(ProcessId, ChangeReason)]) -> String {
    let names: Vec<String> = list
        .iter()
        .map(|(m, r)| format!("{}:{} ({r:?})", m.node, m.pid).to_lowercase())
        .collect();
    format!("[{}]", names.join(" "))
}

fn change_text(change: &GroupChange) -> String {
    format!(
        "the change to {} (joined {}, left {})",
        members(&change.members),
        reasons(&change.joined),
        reasons(&change.left)
    )
}

fn end_text(end: &End) -> String {
    match end {
        End::Change(change) => change_text(change),
        End::Open => "none in this configuration".into(),
    }
}

fn describe(seen: &Seen) -> String {
    match seen {
        Seen::Change { change, at } => format!("{} in {}", change_text(change), at.label),
        Seen::Deliver { id, at, .. } => format!("message {id} in {}", at.label),
    }
}

/// Runs the process checkers over every session's log.
pub fn check_apps(logs: &[SessionLog], converged: bool) -> Vec<String> {
    let mut inclusion = Vec::new();
    let mut parts: BTreeMap<(ViewKey, Label), Vec<Part>> = BTreeMap::new();
    let mut completion = Vec::new();
    for (index, log) in logs.iter().enumerate() {
        let me = log.me();
        let groups: Vec<&[u8]> = {
            let mut g: Vec<&[u8]> = log.seen.iter().map(Seen::group).collect();
            g.sort();
            g.dedup();
            g
        };
        let (mut joins, mut leaves) = (0u32, 0u32);
        for group in groups {
            // The view the session is in, and its part of it in the current configuration.
            let mut current: Option<(ViewKey, Label, Vec<MsgId>)> = None;
            let mut close = |current: &mut Option<(ViewKey, Label, Vec<MsgId>)>, end: End| {
                if let Some((key, label, deliveries)) = current.take() {
                    parts.entry((key, label)).or_default().push(Part {
                        session: index,
                        deliveries,
                        end,
                    });
                }
            };
            for seen in log.seen.iter().filter(|s| s.group() == group) {
                let mut wrong = |what: &str| {
                    inclusion.push(format!(
                        "self-inclusion: {} {what}: {}",
                        name(log, index),
                        describe(seen)
                    ))
                };
                match seen {
                    Seen::Change { change, at } => {
                        let joining = change.joined.contains(&(me, ChangeReason::Join));
                        let leaving = change.left.iter().find(|(m, _)| *m == me).map(|l| l.1);
                        let listed = change.members.contains(&me);
                        let Some((_, label, _)) = &current else {
                            if !(joining && listed) {
                                wrong("received a change of a group it is not a member of");
                                continue;
                            }
                            joins += 1;
                            current = Some((view(change, at), at.label, Vec::new()));
                            continue;
                        };
                        let end = if *label == at.label {
                            End::Change(change.clone())
                        } else {
                            End::Open
                        };
                        close(&mut current, end);
                        if joining {
                            wrong("is listed as joining a group it is a member of");
                        }
                        if let Some(reason) = leaving {
                            // Its own leave: a process-down or node-down of it goes to nobody.
                            leaves += 1;
                            if reason != ChangeReason::Leave {
                                wrong("received a change removing it for another reason");
                            }
                            if listed {
                                wrong("is listed as leaving and as a member");
                            }
                        } else {
                            if !listed {
                                wrong("is not listed as a member in a change it received");
                            }
                            current = Some((view(change, at), at.label, Vec::new()));
                        }
                    }
                    Seen::Deliver { id, at, .. } => {
                        let Some((key, label, deliveries)) = current.as_mut() else {
                            wrong("received a message of a group it is not a member of");
                            continue;
                        };
                        if *label != at.label {
                            let key = key.clone();
                            close(&mut current, End::Open);
                            current = Some((key, at.label, vec![*id]));
                        } else {
                            deliveries.push(*id);
                        }
                    }
                }
            }
            close(&mut current, End::Open);
        }
        if converged && log.attached && (joins, leaves) != (log.joins, log.leaves) {
            completion.push(format!(
                "completion: {} asked to join {} and to leave {} times but received {} changes \
                 adding it and {} removing it",
                name(log, index),
                log.joins,
                log.leaves,
                joins,
                leaves
            ));
        }
    }

    let mut views = Vec::new();
    for ((key, label), list) in &parts {
        let Some((first, rest)) = list.split_first() else {
            continue;
        };
        for other in rest {
            let both_closed = matches!((&first.end, &other.end), (End::Change(_), End::Change(_)));
            let agree = if both_closed {
                first.deliveries == other.deliveries && first.end == other.end
            } else {
                let n = first.deliveries.len().min(other.deliveries.len());
                first.deliveries[..n] == other.deliveries[..n]
            };
            if !agree {
                let at = first
                    .deliveries
                    .iter()
                    .zip(&other.deliveries)
                    .position(|(a, b)| a != b)
                    .unwrap_or(first.deliveries.len().min(other.deliveries.len()));
                views.push(format!(
                    "one sequence per view: {} and {} are in the view {} of group {} that began \
                     in {} (after {} ordered events), but in {label} they differ from delivery \
                     {at} on ({} and {} deliveries; next: {}; and {})",
                    name(&logs[first.session], first.session),
                    name(&logs[other.session], other.session),
                    members(&key.members),
                    String::from_utf8_lossy(&key.group),
                    key.at.label,
                    key.at.ordered,
                    first.deliveries.len(),
                    other.deliveries.len(),
                    end_text(&first.end),
                    end_text(&other.end)
                ));
                break;
            }
        }
    }

    let mut out = Vec::new();
    for list in [inclusion, views, completion] {
        let total = list.len();
        out.extend(list.into_iter().take(REPORTED_MAX));
        if total > REPORTED_MAX {
            out.push(format!("… and {} more like it", total - REPORTED_MAX));
        }
    }
    out
}

fn view(change: &GroupChange, at: &Pos) -> ViewKey {
    ViewKey {
        group: change.group.clone(),
        at: *at,
        members: change.members.clone(),
    }
}
