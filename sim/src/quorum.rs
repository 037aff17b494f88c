//! votequorum in the simulator: every node runs it (options chosen from the seed, or a named
//! scenario's), a simulated quorum device can poll one node, and the checkers read what each
//! node reported to its applications — the quorum callback's quorate flag and members:
//!
//! - **split brain**: at no point in simulated time do two nodes report quorate memberships
//!   that are disjoint. Allowed by the rules of the options: two_node (both halves stay
//!   quorate, fencing decides); once last_man_standing has lowered expected votes, a
//!   partition that merges with a node of the lowered cluster (votequorum(5): it adopts the
//!   quorate node's expected votes); and auto_tie_breaker's side of a split that follows an
//!   earlier split (each node trusts the lowest/highest node of the last membership it was
//!   quorate in, and the "other side may have quorum" guard only looks at the last change:
//!   corosync's rule, with the same hazard). A tie-breaker split straight from the whole
//!   cluster is held to one quorate side;
//! - **wait_for_all**: a node becomes quorate — for the first time, and again after each loss
//!   of quorum (corosync re-arms wait_for_all then) — only in a ring with every node (or as
//!   many votes as its expected votes, which last_man_standing may have lowered), or in a
//!   ring with a node that is quorate or was when that ring began (the quorate flag of its
//!   node info);
//! - **last_man_standing**: a quorate node lowers its expected votes only once
//!   last_man_standing_window has passed since nodes last left its membership (a leave into
//!   fewer nodes than quorum does not count: corosync does not restart the window then);
//! - every node's quorum events come in the order the quorum service needs (a sync's
//!   activation after its start, a quorum report after its activation).
//!
//! A timeline of every report lets a scenario check what each side saw.

use std::collections::BTreeSet;

use totem_core::votequorum::{QuorumEvent, QuorumRequest, QuorumSettings, TieBreaker};
use totem_core::Node;

const MS: u64 = 1_000_000;

/// A simulated quorum device (corosync-qdevice on one node): registers, then polls with its
/// vote every `poll_ms` from `from_ms` until `until_ms`.
#[derive(Clone, Debug)]
pub struct QdeviceSim {
    pub index: usize,
    pub name: String,
    pub poll_ms: u64,
    pub from_ms: u64,
    pub until_ms: u64,
}

/// The quorum options of a run.
#[derive(Clone, Debug)]
pub struct QuorumPlan {
    pub settings: QuorumSettings,
    pub qdevice: Option<QdeviceSim>,
}

impl QuorumPlan {
    /// Every node votes 1, expected votes from the nodelist of `nodes`.
    pub fn majority(nodes: usize) -> QuorumPlan {
        QuorumPlan {
            settings: QuorumSettings {
                expected_votes: None,
                nodelist_expected_votes: Some(nodes as u32),
                votes: 1,
                two_node: false,
                wait_for_all: false,
                wait_for_all_follows_two_node: true,
                last_man_standing: false,
                last_man_standing_window_ms: 10_000,
                auto_tie_breaker: TieBreaker::Off,
                allow_downscale: false,
                expected_votes_tracking: false,
                qdevice: None,
            },
            qdevice: None,
        }
    }

    /// The options of a random seed, chosen from the seed alone (the run's random stream is
    /// not touched): plain majority, wait_for_all, auto_tie_breaker (lowest or highest, with
    /// wait_for_all as odd clusters need), or last_man_standing with wait_for_all.
    pub fn for_seed(seed: u64, nodes: usize) -> QuorumPlan {
        let mut plan = QuorumPlan::majority(nodes);
        let s = &mut plan.settings;
        match (seed / 2) % 5 {
            0 => {}
            1 => s.wait_for_all = true,
            2 => {
                s.auto_tie_breaker = TieBreaker::Lowest;
                s.wait_for_all = true;
            }
            3 => {
                s.auto_tie_breaker = TieBreaker::Highest;
                s.wait_for_all = true;
            }
            _ => {
                s.last_man_standing = true;
                s.last_man_standing_window_ms = 1_000;
                s.wait_for_all = true;
            }
        }
        plan
    }

    pub fn describe(&self) -> String {
        let s = &self.settings;
        let mut words = Vec::new();
        if s.wait_for_all {
            words.push("wait_for_all".to_string());
        }
        if s.two_node {
            words.push("two_node".into());
        }
        if s.last_man_standing {
            words.push(format!(
                "last_man_standing ({} ms)",
                s.last_man_standing_window_ms
            ));
        }
        match &s.auto_tie_breaker {
            TieBreaker::Off => {}
            t => words.push(format!("auto_tie_breaker {t:?}").to_lowercase()),
        }
        if self.qdevice.is_some() {
            words.push("qdevice".into());
        }
        if words.is_empty() {
            "majority".into()
        } else {
            words.join(", ")
        }
    }
}

/// One quorum report of one node, as its applications got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub ms: u64,
    pub node: u32,
    pub quorate: bool,
    pub members: Vec<u32>,
}

/// What the quorum checkers saw of a run.
#[derive(Clone, Debug, Default)]
pub struct QuorumReport {
    pub plan: String,
    /// Every quorum report, in simulated time order.
    pub timeline: Vec<Report>,
    /// Every change of a node's own expected votes: (ms, node, expected).
    pub expected: Vec<(u64, u32, u32)>,
    pub violations: Vec<String>,
    /// Quorum device polls the nodes accepted.
    pub qdevice_polls: u64,
}

impl QuorumReport {
    /// Whether `node` reported quorate last at or before `ms`.
    pub fn quorate_at(&self, node: u32, ms: u64) -> bool {
        self.timeline
            .iter()
            .rfind(|r| r.node == node && r.ms <= ms)
            .is_some_and(|r| r.quorate)
    }

    /// `node`'s expected votes at `ms` (`None` before it reported any).
    pub fn expected_at(&self, node: u32, ms: u64) -> Option<u32> {
        self.expected
            .iter()
            .rfind(|(at, n, _)| *n == node && *at <= ms)
            .map(|(_, _, e)| *e)
    }
}

/// A node's belief, as its applications last heard it.
#[derive(Clone, Default)]
struct Belief {
    quorate: bool,
    members: BTreeSet<u32>,
    /// The members are more than half of the cluster's nodes (quorate by votes, not by a
    /// tie-breaker).
    majority: bool,
    /// The membership before this one was the whole cluster.
    after_whole: bool,
}

#[derive(Default)]
struct NodeWatch {
    alive: bool,
    belief: Belief,
    /// Quorate reported at least once in this life.
    been_quorate: bool,
    /// What its applications believed when its last membership change began: the quorate flag
    /// its node info carries into the new membership (corosync sends it at the configuration
    /// change, before recalculating).
    quorate_at_change: bool,
    /// wait_for_all holds this node back: at start and after each report of no quorum.
    wfa_armed: bool,
    /// When nodes last left its membership (a sync start without some member of the one
    /// before), ns.
    last_leave_ns: u64,
    /// The members of the last sync started and of the one before.
    members: Vec<u32>,
    previous: Vec<u32>,
    /// Sync started and not yet activated.
    syncing: bool,
    expected: u32,
    /// votequorum's own quorate state after the last input.
    was_quorate: bool,
    ev_tracking_barrier: u32,
    next_poll_ns: u64,
    registered: bool,
}

/// Runs votequorum on every node of a world and checks what the nodes report.
pub struct QuorumWatch {
    plan: QuorumPlan,
    nodes: Vec<NodeWatch>,
    /// Once last_man_standing lowered expected votes anywhere, disjoint quorate memberships
    /// are within the option's rules.
    lms_lowered: bool,
    report: QuorumReport,
    request: u64,
}

impl QuorumWatch {
    pub fn new(plan: QuorumPlan, nodes: usize) -> QuorumWatch {
        QuorumWatch {
            report: QuorumReport {
                plan: plan.describe(),
                ..QuorumReport::default()
            },
            plan,
            nodes: (0..nodes).map(|_| NodeWatch::default()).collect(),
            lms_lowered: false,
            request: 0,
        }
    }

    /// A node (re)starts: votequorum runs from its persisted expected_votes_tracking barrier.
    pub fn on_start(&mut self, now: u64, index: usize, node: &mut Node) {
        let w = &mut self.nodes[index];
        node.enable_votequorum(self.plan.settings.clone(), w.ev_tracking_barrier);
        *w = NodeWatch {
            alive: true,
            ev_tracking_barrier: w.ev_tracking_barrier,
            last_leave_ns: now,
            wfa_armed: self.plan.settings.wait_for_all,
            ..NodeWatch::default()
        };
        self.observe(now, index, node);
    }

    /// A node crashed: its applications believe nothing any more.
    pub fn on_crash(&mut self, now: u64, index: usize) {
        let w = &mut self.nodes[index];
        if w.alive && w.belief.quorate {
            self.report.timeline.push(Report {
                ms: now / MS,
                node: index as u32 + 1,
                quorate: false,
                members: Vec::new(),
            });
        }
        w.alive = false;
        w.belief = Belief::default();
    }

    /// After every input of a node: takes its quorum events, drives the simulated quorum
    /// device, and checks.
    pub fn observe(&mut self, now: u64, index: usize, node: &mut Node) {
        self.drive_qdevice(now, index, node);
        let id = index as u32 + 1;
        while let Some(event) = node.poll_quorum_event() {
            match event {
                QuorumEvent::SyncStarted { members, .. } => {
                    // corosync restarts the last_man_standing timer on a leave only when the
                    // new membership still has quorum's count of nodes (or auto_tie_breaker
                    // may apply): a leave into a minority (a node cut off alone for a moment)
                    // leaves the timer running.
                    let quorum = node.votequorum().map_or(0, |vq| vq.quorum());
                    let restarts = members.len() as u64 >= u64::from(quorum)
                        || self.plan.settings.auto_tie_breaker != TieBreaker::Off;
                    let w = &mut self.nodes[index];
                    let members: Vec<u32> = members.iter().map(|m| m.0).collect();
                    w.syncing = true;
                    w.quorate_at_change = w.belief.quorate;
                    if restarts && w.members.iter().any(|m| !members.contains(m)) {
                        w.last_leave_ns = now;
                    }
                    w.previous = std::mem::replace(&mut w.members, members);
                }
                QuorumEvent::SyncActivated { .. } => {
                    let w = &mut self.nodes[index];
                    if !w.syncing {
                        self.report.violations.push(format!(
                            "quorum: node {id} activated a sync it never started ({} ms)",
                            now / MS
                        ));
                    }
                    w.syncing = false;
                }
                QuorumEvent::Quorum {
                    quorate, members, ..
                } => {
                    let members: BTreeSet<u32> = members.iter().map(|m| m.0).collect();
                    let expected = node.votequorum().map_or(0, |vq| vq.expected_votes());
                    self.on_report(now, index, quorate, members, expected);
                }
                QuorumEvent::EvTrackingBarrier(b) => self.nodes[index].ev_tracking_barrier = b,
                QuorumEvent::Reply { result: Ok(()), .. } => {
                    self.nodes[index].registered = true;
                }
                _ => {}
            }
        }
        if let Some(vq) = node.votequorum() {
            let (expected, quorate) = (vq.expected_votes(), vq.is_quorate());
            let w = &mut self.nodes[index];
            if expected != w.expected {
                self.report.expected.push((now / MS, id, expected));
                if expected < w.expected && w.was_quorate {
                    // A quorate node lowers its own expected votes only by last_man_standing
                    // (a node that is not quorate may adopt a quorate node's, and the
                    // simulator never sets expected votes by hand).
                    let settings = &self.plan.settings;
                    let window = u64::from(settings.last_man_standing_window_ms) * MS;
                    if !settings.last_man_standing {
                        self.report.violations.push(format!(
                            "quorum: quorate node {id} lowered its expected votes {} -> \
                             {expected} without last_man_standing ({} ms)",
                            w.expected,
                            now / MS
                        ));
                    } else if now < w.last_leave_ns + window {
                        self.report.violations.push(format!(
                            "last_man_standing: node {id} lowered expected votes {} -> \
                             {expected} {} ms after nodes left its membership (window {} ms)",
                            w.expected,
                            (now - w.last_leave_ns) / MS,
                            settings.last_man_standing_window_ms
                        ));
                    }
                    self.lms_lowered = true;
                }
                w.expected = expected;
            }
            w.was_quorate = quorate;
        }
    }

    /// A quorum report of node `index`, whose expected votes are `expected` then.
    fn on_report(
        &mut self,
        now: u64,
        index: usize,
        quorate: bool,
        members: BTreeSet<u32>,
        expected: u32,
    ) {
        let id = index as u32 + 1;
        let all = self.nodes.len();
        // corosync's are_we_quorate lets wait_for_all go once the votes present are this
        // node's expected votes, which last_man_standing may have lowered below the whole
        // cluster's: a node whose expected votes went down to 3 of 4 and that then lost quorum
        // is quorate again in a ring of 3.
        let votes = members.len() as u64 * u64::from(self.plan.settings.votes);
        let waited_for_all = members.len() >= all || votes >= u64::from(expected.max(1));
        if quorate && self.nodes[index].wfa_armed && !waited_for_all {
            // Allowed only next to a node that is quorate, or was when this membership began
            // (its node info, sent at the change, clears wait_for_all even if the node itself
            // then finds it is no longer quorate).
            let with_quorate = members.iter().any(|m| {
                let other = &self.nodes[*m as usize - 1];
                *m != id && other.alive && (other.belief.quorate || other.quorate_at_change)
            });
            if !with_quorate {
                self.report.violations.push(format!(
                    "wait_for_all: node {id} became quorate at {} ms with members {:?} without \
                     all nodes or its {expected} expected votes present, nor a quorate node",
                    now / MS,
                    members,
                ));
            }
        }
        if self.plan.settings.wait_for_all {
            self.nodes[index].wfa_armed = !quorate;
        }
        let w = &mut self.nodes[index];
        if quorate {
            w.been_quorate = true;
        }
        w.belief = Belief {
            quorate,
            majority: members.len() * 2 > all,
            after_whole: w.previous.len() == all,
            members: members.clone(),
        };
        self.report.timeline.push(Report {
            ms: now / MS,
            node: id,
            quorate,
            members: members.iter().copied().collect(),
        });
        if quorate {
            self.check_split_brain(now, index);
        }
    }

    /// No quorate node believes in a membership disjoint from `index`'s.
    fn check_split_brain(&mut self, now: u64, index: usize) {
        let settings = &self.plan.settings;
        if settings.two_node || self.lms_lowered {
            return;
        }
        let tie_breaker = settings.auto_tie_breaker != TieBreaker::Off;
        // A tie-breaker side after an earlier split is within auto_tie_breaker's rules.
        let exempt = |b: &Belief| tie_breaker && !b.majority && !b.after_whole;
        let me = &self.nodes[index].belief;
        let mine = &me.members;
        for (other, w) in self.nodes.iter().enumerate() {
            if other == index || !w.alive || !w.belief.quorate {
                continue;
            }
            if mine.is_disjoint(&w.belief.members) && !exempt(me) && !exempt(&w.belief) {
                self.report.violations.push(format!(
                    "split brain at {} ms ({}): node {} is quorate with {:?} and node {} with {:?}",
                    now / MS,
                    self.report.plan,
                    index + 1,
                    mine,
                    other + 1,
                    w.belief.members
                ));
            }
        }
    }

    fn drive_qdevice(&mut self, now: u64, index: usize, node: &mut Node) {
        let Some(q) = self.plan.qdevice.clone() else {
            return;
        };
        if q.index != index || now < q.from_ms * MS {
            return;
        }
        let w = &mut self.nodes[index];
        if !w.registered {
            if w.next_poll_ns == 0 {
                // Register once per life; the reply comes when the registration is ordered.
                w.next_poll_ns = now;
                self.request += 1;
                let _ = node.submit_quorum(
                    self.request,
                    QuorumRequest::QdeviceRegister {
                        name: q.name.clone(),
                    },
                );
            }
            return;
        }
        if now >= q.until_ms * MS || now < w.next_poll_ns {
            return;
        }
        w.next_poll_ns = now + q.poll_ms * MS;
        let Some(ring) = node.votequorum().map(|vq| vq.state().ring) else {
            return;
        };
        self.request += 1;
        if node
            .submit_quorum(
                self.request,
                QuorumRequest::QdevicePoll {
                    name: q.name,
                    cast_vote: true,
                    ring,
                },
            )
            .is_ok()
        {
            self.report.qdevice_polls += 1;
        }
    }

    /// The report of the run so far.
    pub fn finish(&mut self) -> QuorumReport {
        std::mem::take(&mut self.report)
    }
}
