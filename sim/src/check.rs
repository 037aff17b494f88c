//! The EVS checkers, run on the logs of every node incarnation ("life") after each run:
//! one total order; no duplicates; nothing delivered that was not submitted; virtual synchrony
//! (lives that move together between two configurations delivered the same messages in between);
//! per-sender order (a session's messages of one ring delivered in order and without a gap, in
//! a transitional configuration too);
//! each message delivered in the configuration it was sent in or a transitional one after it;
//! safe delivery (a safe message delivered in a regular configuration reaches every member of it
//! that does not crash); self-delivery; identical CPG group views wherever a message is
//! delivered in the same configuration, and identical views once the cluster has converged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use totem_core::{ConfigKind, Guarantee, NodeId, ProcessId, RingId};

/// A submitted message's identity (carried in its payload).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MsgId {
    pub node: u32,
    pub incarnation: u32,
    pub pid: u32,
    pub counter: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}:{}#{}",
            self.node, self.incarnation, self.pid, self.counter
        )
    }
}

pub struct Submitted {
    pub group: Vec<u8>,
    pub guarantee: Guarantee,
    pub life: usize,
    /// Simulated time of the submission, ns.
    pub at_ns: u64,
}

pub enum Entry {
    Config {
        kind: ConfigKind,
        ring: RingId,
        next: RingId,
        members: Vec<NodeId>,
    },
    Group {
        group: Vec<u8>,
        members: Vec<ProcessId>,
    },
    Deliver {
        id: MsgId,
        group: Vec<u8>,
        guarantee: Guarantee,
        view: Vec<ProcessId>,
    },
}

/// One incarnation of one node and everything it delivered.
pub struct Life {
    pub node: NodeId,
    pub incarnation: u32,
    pub crashed: bool,
    pub entries: Vec<Entry>,
    pub views: BTreeMap<Vec<u8>, Vec<ProcessId>>,
    pub probes: Vec<MsgId>,
}

impl Life {
    pub fn new(node: NodeId, incarnation: u32) -> Self {
        Life {
            node,
            incarnation,
            crashed: false,
            entries: Vec::new(),
            views: BTreeMap::new(),
            probes: Vec::new(),
        }
    }
    fn name(&self) -> String {
        format!("node {} (incarnation {})", self.node, self.incarnation)
    }
}

/// The configuration a delivery happens in.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Label {
    Initial,
    Regular(RingId),
    Transitional(RingId, RingId),
}

impl Label {
    fn origin(self) -> Option<RingId> {
        match self {
            Label::Initial => None,
            Label::Regular(r) | Label::Transitional(r, _) => Some(r),
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Initial => write!(f, "the initial configuration"),
            Label::Regular(r) => write!(f, "regular configuration {r}"),
            Label::Transitional(r, n) => write!(f, "transitional configuration {r}→{n}"),
        }
    }
}

/// One session: a process of one node life multicasting to one group (CPG keeps the order of
/// each connection's messages; a process has one session per group).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
struct Sender {
    node: u32,
    incarnation: u32,
    pid: u32,
    group: Vec<u8>,
}

impl Sender {
    fn of(id: &MsgId, group: &[u8]) -> Sender {
        Sender {
            node: id.node,
            incarnation: id.incarnation,
            pid: id.pid,
            group: group.to_vec(),
        }
    }
}

struct Delivered {
    id: MsgId,
    label: Label,
    guarantee: Guarantee,
    view: Vec<ProcessId>,
    group: Vec<u8>,
}

/// The messages delivered between two consecutive configurations.
type Segment = (Label, Label, BTreeSet<MsgId>);

fn deliveries(life: &Life) -> (Vec<Delivered>, Vec<Segment>) {
    let mut out = Vec::new();
    let mut segments = Vec::new();
    let mut label = Label::Initial;
    let mut current = BTreeSet::new();
    for e in &life.entries {
        match e {
            Entry::Config {
                kind, ring, next, ..
            } => {
                let new = match kind {
                    ConfigKind::Transitional => Label::Transitional(*ring, *next),
                    ConfigKind::Regular => Label::Regular(*ring),
                };
                segments.push((label, new, std::mem::take(&mut current)));
                label = new;
            }
            Entry::Deliver {
                id,
                guarantee,
                view,
                group,
            } => {
                current.insert(*id);
                out.push(Delivered {
                    id: *id,
                    label,
                    guarantee: *guarantee,
                    view: view.clone(),
                    group: group.clone(),
                });
            }
            Entry::Group { .. } => {}
        }
    }
    (out, segments)
}

/// Runs every checker; returns the violations found, most fundamental first.
pub fn check_all(
    lives: &[Life],
    submitted: &BTreeMap<MsgId, Submitted>,
    final_lives: &[usize],
    converged: bool,
) -> Vec<String> {
    let mut v = Vec::new();
    let all: Vec<(Vec<Delivered>, Vec<Segment>)> = lives.iter().map(deliveries).collect();

    // No duplicates; nothing invented; right group and guarantee.
    for (life, (ds, _)) in lives.iter().zip(&all) {
        let mut seen = BTreeSet::new();
        for d in ds {
            if !seen.insert(d.id) {
                v.push(format!(
                    "duplicate: {} delivered message {} twice",
                    life.name(),
                    d.id
                ));
            }
            match submitted.get(&d.id) {
                None => v.push(format!("invented: {} delivered message {} that was never submitted", life.name(), d.id)),
                Some(s) if s.group != d.group || s.guarantee != d.guarantee => v.push(format!(
                    "altered: {} delivered message {} in group {:?} as {:?}, submitted to {:?} as {:?}",
                    life.name(),
                    d.id,
                    String::from_utf8_lossy(&d.group),
                    d.guarantee,
                    String::from_utf8_lossy(&s.group),
                    s.guarantee
                )),
                _ => {}
            }
        }
    }

    // One total order: any two lives deliver their common messages in the same order.
    let positions: Vec<HashMap<MsgId, usize>> = all
        .iter()
        .map(|(ds, _)| ds.iter().enumerate().map(|(i, d)| (d.id, i)).collect())
        .collect();
    'pairs: for a in 0..lives.len() {
        for b in (a + 1)..lives.len() {
            let mut last: Option<(usize, MsgId)> = None;
            for d in &all[a].0 {
                if let Some(&pb) = positions[b].get(&d.id) {
                    if let Some((prev, prev_id)) = last {
                        if pb < prev {
                            v.push(format!(
                                "total order: {} delivered {} before {}, {} delivered them the other way round",
                                lives[a].name(),
                                prev_id,
                                d.id,
                                lives[b].name()
                            ));
                            break 'pairs;
                        }
                    }
                    last = Some((pb, d.id));
                }
            }
        }
    }

    // Virtual synchrony: same pair of consecutive configurations, same messages in between.
    let mut segs: HashMap<(Label, Label), (usize, &BTreeSet<MsgId>)> = HashMap::new();
    for (i, (_, segments)) in all.iter().enumerate() {
        for (from, to, set) in segments {
            if *from == Label::Initial {
                continue;
            }
            match segs.get(&(*from, *to)) {
                None => {
                    segs.insert((*from, *to), (i, set));
                }
                Some((j, other)) if *other != set => {
                    let only_a = set.difference(other).next();
                    let only_b = other.difference(set).next();
                    v.push(format!(
                        "virtual synchrony: {} and {} both moved from {from} to {to} but delivered different messages in between ({} only at the first, {} only at the second)",
                        lives[i].name(),
                        lives[*j].name(),
                        only_a.map_or("-".into(), |m| m.to_string()),
                        only_b.map_or("-".into(), |m| m.to_string()),
                    ));
                }
                _ => {}
            }
        }
    }

    // Each message is delivered in one regular configuration or transitional ones after it,
    // and lives delivering it in the same configuration agree on the group's view.
    let mut where_: HashMap<MsgId, (RingId, usize, Label)> = HashMap::new();
    let mut views: HashMap<(MsgId, Label), (usize, &Vec<ProcessId>)> = HashMap::new();
    for (i, (ds, _)) in all.iter().enumerate() {
        for d in ds {
            let Some(origin) = d.label.origin() else {
                v.push(format!(
                    "delivery outside a configuration: {} delivered {} before any configuration",
                    lives[i].name(),
                    d.id
                ));
                continue;
            };
            match where_.get(&d.id) {
                None => {
                    where_.insert(d.id, (origin, i, d.label));
                }
                Some((o, j, l)) if *o != origin => v.push(format!(
                    "configuration: message {} delivered by {} in {} but by {} in {}",
                    d.id,
                    lives[*j].name(),
                    l,
                    lives[i].name(),
                    d.label
                )),
                _ => {}
            }
            match views.get(&(d.id, d.label)) {
                None => {
                    views.insert((d.id, d.label), (i, &d.view));
                }
                Some((j, view)) if *view != &d.view => v.push(format!(
                    "cpg view: message {} in {} delivered by {} with group view {:?} but by {} with {:?}",
                    d.id,
                    d.label,
                    lives[*j].name(),
                    view,
                    lives[i].name(),
                    d.view
                )),
                _ => {}
            }
            if let Label::Regular(_) = d.label {
                let sender = ProcessId {
                    node: NodeId(d.id.node),
                    pid: d.id.pid,
                };
                if !d.view.contains(&sender) {
                    v.push(format!(
                        "cpg view: {} delivered {} in {} while the sender was not in the group's view {:?}",
                        lives[i].name(),
                        d.id,
                        d.label,
                        d.view
                    ));
                }
            }
        }
    }

    // Per-sender order within a configuration (EVS causal delivery; CPG's per-connection FIFO):
    // a life that delivers a message must have delivered, just before it among that session's
    // messages, every earlier message the same session sent in the same ring that anyone
    // delivered — in a transitional configuration too, where a gap may only be another
    // sender's.
    let mut sent_in: BTreeMap<(Sender, RingId), Vec<u64>> = BTreeMap::new();
    for (id, (origin, ..)) in &where_ {
        let group = &submitted.get(id).map_or(&[][..], |s| &s.group[..]);
        sent_in
            .entry((Sender::of(id, group), *origin))
            .or_default()
            .push(id.counter);
    }
    sent_in.values_mut().for_each(|c| c.sort_unstable());
    'lives: for (i, (ds, _)) in all.iter().enumerate() {
        let mut next: HashMap<(Sender, RingId), usize> = HashMap::new();
        for d in ds {
            let Some(origin) = d.label.origin() else {
                continue;
            };
            let key = (Sender::of(&d.id, &d.group), origin);
            let at = next.entry(key.clone()).or_default();
            let expected = sent_in.get(&key).and_then(|c| c.get(*at)).copied();
            if expected != Some(d.id.counter) {
                v.push(format!(
                    "per-sender order: {} delivered {} in {} but not, before it, the same session's message #{} sent in ring {origin}",
                    lives[i].name(),
                    d.id,
                    d.label,
                    expected.map_or("-".into(), |c| c.to_string()),
                ));
                break 'lives;
            }
            *at += 1;
        }
    }

    // Safe: delivered in a regular configuration ⇒ every member of it that never crashed
    // delivers it too.
    let mut installed: HashMap<RingId, Vec<usize>> = HashMap::new();
    for (i, life) in lives.iter().enumerate() {
        for e in &life.entries {
            if let Entry::Config {
                kind: ConfigKind::Regular,
                ring,
                ..
            } = e
            {
                installed.entry(*ring).or_default().push(i);
            }
        }
    }
    let delivered_sets: Vec<BTreeSet<MsgId>> = all
        .iter()
        .map(|(ds, _)| ds.iter().map(|d| d.id).collect())
        .collect();
    let mut safe_reported = 0;
    for (i, (ds, _)) in all.iter().enumerate() {
        for d in ds {
            let (Guarantee::Safe, Label::Regular(ring)) = (d.guarantee, d.label) else {
                continue;
            };
            for &j in installed.get(&ring).map(Vec::as_slice).unwrap_or(&[]) {
                if !lives[j].crashed && !delivered_sets[j].contains(&d.id) && safe_reported < 5 {
                    safe_reported += 1;
                    v.push(format!(
                        "safe: {} delivered safe message {} in {}, but member {} never delivered it",
                        lives[i].name(),
                        d.id,
                        d.label,
                        lives[j].name()
                    ));
                }
            }
        }
    }

    // Self-delivery: a live node delivers every message it accepted (once the cluster healed).
    if converged {
        let mut missing = 0;
        for (id, s) in submitted {
            let life = &lives[s.life];
            if !life.crashed
                && final_lives.contains(&s.life)
                && !delivered_sets[s.life].contains(id)
            {
                missing += 1;
                if missing <= 5 {
                    v.push(format!(
                        "self-delivery: {} accepted message {} but never delivered it",
                        life.name(),
                        id
                    ));
                }
            }
        }
        // Converged: the final lives agree on every group's membership.
        if let Some((&first, rest)) = final_lives.split_first() {
            for &other in rest {
                if lives[first].views_nonempty() != lives[other].views_nonempty() {
                    v.push(format!(
                        "cpg view: after convergence {} sees groups {:?} but {} sees {:?}",
                        lives[first].name(),
                        lives[first].views_nonempty(),
                        lives[other].name(),
                        lives[other].views_nonempty()
                    ));
                    break;
                }
            }
        }
    }
    v
}

impl Life {
    fn views_nonempty(&self) -> BTreeMap<String, Vec<(u32, u32)>> {
        self.views
            .iter()
            .filter(|(_, m)| !m.is_empty())
            .map(|(g, m)| {
                (
                    String::from_utf8_lossy(g).into_owned(),
                    m.iter().map(|m| (m.node.0, m.pid)).collect(),
                )
            })
            .collect()
    }
}
