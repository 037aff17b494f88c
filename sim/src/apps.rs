//! The application side of a simulated node: its processes, their CPG sessions behind
//! totem-core's `Sessions` — the fan-out the dataplane runs, deciding which session receives
//! which event — and a log per session of everything it received, for `check_apps`.
//!
//! A process holds one session per group it uses (libcpg: one handle per group), so one pid
//! often has several sessions. Processes join, leave, close a session, die (sometimes to be
//! followed by a process with the same pid), and outlive their node's crash: when the node
//! starts again each one attaches anew and joins the groups it had asked for, as a client does
//! when its dataplane restarts.

use std::collections::BTreeMap;

use totem_core::{
    ChangeReason, ConfigKind, Event, GroupChange, Guarantee, Node, NodeId, ProcessId, SessionId,
    Sessions, SubmitError,
};

use crate::check::{Label, MsgId};

pub const GROUPS: [&[u8]; 4] = [b"alpha", b"beta", b"gamma-group", b"delta"];
/// Groups that random actions join (the others only scripted ones: a scenario decides who
/// is in them, and random actions of their members then load them).
pub const RANDOM_GROUPS: usize = 3;
pub const PROCS_PER_NODE: usize = 3;

/// Where an event lies in its node's stream: the configuration it was delivered in, and how
/// many of the group's ordered events (messages, and changes made by join, leave or
/// process-down messages) the node delivered in that configuration before it. Changes made by
/// a ring change (node-down, and node-up after the joinlists) are `sync`: they come before any
/// ordered event of the configuration and differ from node to node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Pos {
    pub label: Label,
    pub ordered: u64,
    pub sync: bool,
}

/// One event a session received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Change { change: GroupChange, at: Pos },
    Deliver { group: Vec<u8>, id: MsgId, at: Pos },
}

impl Seen {
    pub fn group(&self) -> &[u8] {
        match self {
            Seen::Change { change, .. } => &change.group,
            Seen::Deliver { group, .. } => group,
        }
    }
}

/// Everything one session received, and what it asked for.
#[derive(Debug)]
pub struct SessionLog {
    pub node: NodeId,
    /// The node's incarnation (the dataplane's life) the session was attached to.
    pub incarnation: u32,
    pub pid: u32,
    pub seen: Vec<Seen>,
    /// Joins and leaves the node accepted from it.
    pub joins: u32,
    pub leaves: u32,
    /// Still attached when the run ended (not closed, its process alive, its node up).
    pub attached: bool,
}

impl SessionLog {
    pub fn me(&self) -> ProcessId {
        ProcessId {
            node: self.node,
            pid: self.pid,
        }
    }
}

/// A simulated process: its pid, its session per group, and the groups to join again when its
/// node comes back.
pub struct Proc {
    pub pid: u32,
    handles: BTreeMap<usize, SessionId>,
    rejoin: Vec<usize>,
}

/// One node's processes and sessions.
pub struct Apps {
    node: NodeId,
    incarnation: u32,
    pub procs: Vec<Proc>,
    next_pid: u32,
    /// The fan-out, while the node is up.
    sessions: Option<Sessions<usize>>,
    label: Label,
    ordered: BTreeMap<Vec<u8>, u64>,
    /// `Sessions::counters().unmatched` of the node's past lives.
    unmatched_before: u64,
}

impl Apps {
    pub fn new(node: NodeId) -> Apps {
        let mut apps = Apps {
            node,
            incarnation: 0,
            procs: Vec::new(),
            next_pid: 100,
            sessions: None,
            label: Label::Initial,
            ordered: BTreeMap::new(),
            unmatched_before: 0,
        };
        for _ in 0..PROCS_PER_NODE {
            let pid = apps.fresh_pid();
            apps.procs.push(Proc {
                pid,
                handles: BTreeMap::new(),
                rejoin: Vec::new(),
            });
        }
        apps
    }

    fn fresh_pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }

    /// Changes that matched no request in flight, over every life of the node (never expected).
    pub fn unmatched(&self) -> u64 {
        self.unmatched_before + self.sessions.as_ref().map_or(0, |s| s.counters().unmatched)
    }

    /// The node started (again): each process attaches anew and asks to join the groups it had
    /// asked for before the crash. Returns unexpected refusals.
    pub fn start(
        &mut self,
        incarnation: u32,
        node: &mut Node,
        logs: &mut Vec<SessionLog>,
    ) -> Vec<String> {
        self.incarnation = incarnation;
        self.sessions = Some(Sessions::new(self.node));
        self.label = Label::Initial;
        self.ordered.clear();
        let mut errors = Vec::new();
        for p in 0..self.procs.len() {
            for group in std::mem::take(&mut self.procs[p].rejoin) {
                if let Err(e) = self.join(p, group, node, logs) {
                    errors.push(format!(
                        "node {}: process {} could not join {} again after a restart: {e}",
                        self.node,
                        self.procs[p].pid,
                        String::from_utf8_lossy(GROUPS[group])
                    ));
                }
            }
        }
        errors
    }

    /// The node crashed: its sessions are gone (their logs end); each process remembers the
    /// groups it had asked for.
    pub fn crash(&mut self, logs: &mut [SessionLog]) {
        let Some(sessions) = self.sessions.take() else {
            return;
        };
        self.unmatched_before += sessions.counters().unmatched;
        for p in &mut self.procs {
            for (group, id) in std::mem::take(&mut p.handles) {
                if sessions.group(id).is_some() {
                    p.rejoin.push(group);
                }
                logs[*sessions.get(id)].attached = false;
            }
        }
    }

    fn sessions(&mut self) -> &mut Sessions<usize> {
        self.sessions.as_mut().expect("the node is up")
    }

    /// Whether process `p` has asked to join `group` (and not to leave it since).
    pub fn asked(&self, p: usize, group: usize) -> bool {
        let sessions = self.sessions.as_ref().expect("the node is up");
        self.procs[p]
            .handles
            .get(&group)
            .is_some_and(|&id| sessions.group(id).is_some())
    }

    /// Groups process `p` has asked to join.
    pub fn asked_groups(&self, p: usize) -> Vec<usize> {
        (0..GROUPS.len()).filter(|&g| self.asked(p, g)).collect()
    }

    /// Process `p` joins `group` through its session for it (attached first if it has none;
    /// one that left the group joins again).
    pub fn join(
        &mut self,
        p: usize,
        group: usize,
        node: &mut Node,
        logs: &mut Vec<SessionLog>,
    ) -> Result<(), SubmitError> {
        let pid = self.procs[p].pid;
        let id = match self.procs[p].handles.get(&group) {
            Some(&id) => id,
            None => {
                logs.push(SessionLog {
                    node: self.node,
                    incarnation: self.incarnation,
                    pid,
                    seen: Vec::new(),
                    joins: 0,
                    leaves: 0,
                    attached: true,
                });
                let id = self.sessions().attach(pid, logs.len() - 1);
                self.procs[p].handles.insert(group, id);
                id
            }
        };
        self.sessions().join(id, GROUPS[group], node)?;
        logs[*self.sessions().get(id)].joins += 1;
        Ok(())
    }

    /// Process `p` leaves `group` (its session stays attached and may join again).
    pub fn leave(
        &mut self,
        p: usize,
        group: usize,
        node: &mut Node,
        logs: &mut [SessionLog],
    ) -> Result<(), SubmitError> {
        let id = *self.procs[p]
            .handles
            .get(&group)
            .ok_or(SubmitError::NotJoined)?;
        self.sessions().leave(id, GROUPS[group], node)?;
        logs[*self.sessions().get(id)].leaves += 1;
        Ok(())
    }

    /// Process `p` closes its session for `group` (a handle finalized, or its ring broke).
    pub fn close(&mut self, p: usize, group: usize, node: &mut Node, logs: &mut [SessionLog]) {
        if let Some(id) = self.procs[p].handles.remove(&group) {
            let log = self.sessions().detach(id, node);
            logs[log].attached = false;
        }
    }

    /// Process `p` dies: every session of it closes. Another process takes its place, with the
    /// same pid when `same_pid` (pids are reused).
    pub fn kill(&mut self, p: usize, same_pid: bool, node: &mut Node, logs: &mut [SessionLog]) {
        for group in self.procs[p].handles.keys().copied().collect::<Vec<_>>() {
            self.close(p, group, node, logs);
        }
        let pid = if same_pid {
            self.procs[p].pid
        } else {
            self.fresh_pid()
        };
        self.procs[p] = Proc {
            pid,
            handles: BTreeMap::new(),
            rejoin: Vec::new(),
        };
    }

    /// Process `p` multicasts to `group` through its session for it.
    pub fn mcast(
        &mut self,
        p: usize,
        group: usize,
        guarantee: Guarantee,
        data: &[u8],
        node: &mut Node,
    ) -> Result<(), SubmitError> {
        let id = *self.procs[p]
            .handles
            .get(&group)
            .ok_or(SubmitError::NotJoined)?;
        self.sessions().mcast(id, guarantee, data, node)
    }

    /// Hands one of the node's events to the sessions that receive it (the delivery's traced
    /// id with it) and logs it in theirs.
    pub fn route(&mut self, event: &Event<'_>, id: Option<MsgId>, logs: &mut [SessionLog]) {
        let seen = match event {
            Event::Config(c) => {
                self.label = match c.kind {
                    ConfigKind::Transitional => Label::Transitional(c.ring, c.next_ring),
                    ConfigKind::Regular => Label::Regular(c.ring),
                };
                self.ordered.clear();
                None
            }
            Event::Group(change) => {
                let sync = change
                    .joined
                    .iter()
                    .chain(&change.left)
                    .all(|(_, r)| matches!(r, ChangeReason::NodeDown | ChangeReason::NodeUp));
                let at = self.pos(&change.group, !sync, sync);
                Some(Seen::Change {
                    change: change.clone(),
                    at,
                })
            }
            Event::Deliver(d) => {
                let at = self.pos(d.group, true, false);
                id.map(|id| Seen::Deliver {
                    group: d.group.to_vec(),
                    id,
                    at,
                })
            }
        };
        let Some(sessions) = self.sessions.as_mut() else {
            return;
        };
        sessions.route(event, |&mut log| {
            if let Some(seen) = &seen {
                logs[log].seen.push(seen.clone());
            }
        });
    }

    /// The position of the group's next event; counts it when it is an ordered one.
    fn pos(&mut self, group: &[u8], count: bool, sync: bool) -> Pos {
        let ordered = match self.ordered.get_mut(group) {
            Some(n) => n,
            None => self.ordered.entry(group.to_vec()).or_default(),
        };
        let at = Pos {
            label: self.label,
            ordered: *ordered,
            sync,
        };
        if count {
            *ordered += 1;
        }
        at
    }
}
