//! The local side of CPG: the sessions of processes attached to this node, where each one
//! stands with its group, and which session receives which event. `cpg` orders the group
//! service across the cluster; this decides what each local process sees of it.
//!
//! **Invariant (self-inclusion):** a session receives nothing of a group before the
//! configuration change that adds it (a change listing it in `members` and, with reason Join,
//! in `joined`); from that change on it receives every delivery and change of the group that
//! its node delivers, so every member of a view sees the same sequence; it receives the change
//! that shows it leaving (listed in `left`, reason Leave) and nothing of the group after it.
//! libcpg behaves the same (corosync's exec/cpg.c: a connection receives a group's events only
//! in the states JOIN_COMPLETED and LEAVE_STARTED).
//!
//! How a change is tied to the session it concerns: this node's own join, leave and
//! process-down messages are delivered in the order they were submitted (one send queue, one
//! total order), and each produces exactly one change listing the process. So every request
//! submitted here is recorded, per (group, pid), in a queue of requests in flight, and the next
//! change that lists this node's pid in that group is the answer to the first request in that
//! queue. This holds whatever happens between submission and delivery: ring changes (the
//! request waits in the send queue while the group re-syncs and is ordered after every
//! joinlist), a join, leave and join again of one session, two sessions with the same pid, a
//! session closed while its join is in flight (the process-down that follows is ordered after
//! it; both changes go to no session). A dataplane that restarts starts with a new node and no
//! sessions: a process that attaches again is a new member with a new join.
//!
//! States of one session in one group, from two facts: whether its last request was a join
//! (`asked`), and whether its join has been delivered and its leave not yet (`member`):
//!
//! ```text
//!  (none) ─join─► Joining ─its join delivered─► Member ─leave─► Leaving ─its leave delivered─► (none)
//!                    │                                            ▲
//!                    └─leave─► JoinAndLeaveInFlight ─its join delivered─┘
//! ```
//!
//! A session asks for one group at a time (libcpg: a handle joins one group); it may ask again
//! while its leave is in flight. Requests in flight are bounded by the node's send queue (they
//! are in it, or delivered); nothing here allocates per delivery.

use std::collections::{BTreeMap, VecDeque};

use crate::cpg::{ChangeReason, GroupChange, Request, SubmitError};
use crate::node::{Event, Node};
use crate::srp::ConfigKind;
use crate::types::{Guarantee, NodeId};

/// Where membership requests go: the node (tests supply their own).
pub trait Submit {
    fn submit(&mut self, request: Request<'_>) -> Result<(), SubmitError>;
}

impl Submit for Node {
    fn submit(&mut self, request: Request<'_>) -> Result<(), SubmitError> {
        Node::submit(self, request)
    }
}

/// A session attached to this node. Stays valid until `detach`; the slot is reused afterwards.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SessionId(u32);

impl SessionId {
    /// The session's slot, for embedders that keep per-session data in a parallel table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a session stands with a group.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SessionPhase {
    /// Asked to join; its join is not delivered yet: receives nothing of the group.
    Joining,
    /// Its join is delivered: receives every event of the group.
    Member,
    /// Asked to leave; its leave is not delivered yet: still receives every event of the group,
    /// up to the change that shows it leaving. (It may have asked to join again meanwhile.)
    Leaving,
    /// Neither asked nor a member, with a join and a leave still in flight (it left before its
    /// join was delivered): receives the group's events from its join to its leave.
    JoinAndLeaveInFlight,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Join,
    Leave,
    ProcDown,
}

/// A membership request of this node in flight: submitted, its change not delivered yet.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    op: Op,
    /// The session that asked; `None` once it has detached (the change then goes to nobody).
    owner: Option<SessionId>,
}

/// One session's standing with one group.
struct Standing {
    group: Vec<u8>,
    /// Its last request for this group was a join.
    asked: bool,
    /// Its join is delivered and its leave is not: it receives the group's events.
    member: bool,
    /// Its requests for this group still in flight.
    in_flight: u32,
}

impl Standing {
    fn phase(&self) -> Option<SessionPhase> {
        match (self.asked, self.member) {
            (true, false) => Some(SessionPhase::Joining),
            (true, true) if self.in_flight == 0 => Some(SessionPhase::Member),
            (_, true) => Some(SessionPhase::Leaving),
            (false, false) if self.in_flight > 0 => Some(SessionPhase::JoinAndLeaveInFlight),
            (false, false) => None,
        }
    }
}

struct Slot<T> {
    pid: u32,
    /// At most one standing is `asked`; the others are leaving or passing. Small: usually one.
    standings: Vec<Standing>,
    user: T,
}

impl<T> Slot<T> {
    #[inline]
    fn receives(&self, group: &[u8]) -> bool {
        self.standings
            .iter()
            .any(|s| s.member && s.group.as_slice() == group)
    }

    fn standing_mut(&mut self, group: &[u8]) -> Option<&mut Standing> {
        self.standings.iter_mut().find(|s| s.group == group)
    }

    fn asked(&self) -> Option<&Standing> {
        self.standings.iter().find(|s| s.asked)
    }

    /// Drops standings that no longer matter (not asked, not a member, nothing in flight).
    fn tidy(&mut self) {
        self.standings.retain(|s| s.phase().is_some());
    }
}

/// What `Sessions` counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Changes listing one of this node's pids that matched no request in flight (never
    /// expected: the core delivers this node's requests in order, one change each).
    pub unmatched: u64,
    /// Attempts to submit a process-down that found the node's send queue full (it waits in
    /// `Sessions` and is tried again at the next request or `submit_deferred`).
    pub procdowns_deferred: u64,
}

/// The sessions of the processes attached to this node, each with the embedder's `T` (the
/// dataplane's client ring, the simulator's log of what a process saw).
pub struct Sessions<T> {
    me: NodeId,
    slots: Vec<Option<Slot<T>>>,
    free: Vec<u32>,
    /// This node's membership requests in flight, per (group, pid), in submission order.
    in_flight: BTreeMap<(Vec<u8>, u32), VecDeque<InFlight>>,
    /// Process-downs of detached sessions not yet taken by the node (its queue was full), in
    /// order. A (group, pid) here cannot be joined until it is submitted.
    procdowns: VecDeque<(Vec<u8>, u32)>,
    counters: SessionCounters,
}

impl<T> Sessions<T> {
    pub fn new(me: NodeId) -> Self {
        Sessions {
            me,
            slots: Vec::new(),
            free: Vec::new(),
            in_flight: BTreeMap::new(),
            procdowns: VecDeque::new(),
            counters: SessionCounters::default(),
        }
    }

    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// A process `pid` attached; `user` is what the embedder keeps for it.
    pub fn attach(&mut self, pid: u32, user: T) -> SessionId {
        let slot = Slot {
            pid,
            standings: Vec::new(),
            user,
        };
        match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = Some(slot);
                SessionId(index)
            }
            None => {
                self.slots.push(Some(slot));
                SessionId(self.slots.len() as u32 - 1)
            }
        }
    }

    /// The session closed (its process exited, or its ring broke): a group it asked for is left
    /// with reason process-down (now, or as soon as the node has room), and its requests in
    /// flight are answered to nobody. Returns the embedder's `T`.
    pub fn detach(&mut self, id: SessionId, node: &mut impl Submit) -> T {
        let slot = self.slots[id.index()]
            .take()
            .expect("detach of a session that is not attached");
        self.free.push(id.0);
        for queue in self.in_flight.values_mut() {
            for request in queue.iter_mut() {
                if request.owner == Some(id) {
                    request.owner = None;
                }
            }
        }
        if let Some(s) = slot.asked() {
            self.procdowns.push_back((s.group.clone(), slot.pid));
        }
        self.submit_deferred(node);
        slot.user
    }

    /// Submits the process-downs that found the node's queue full; true when none is left.
    pub fn submit_deferred(&mut self, node: &mut impl Submit) -> bool {
        while let Some((group, pid)) = self.procdowns.front() {
            match node.submit(Request::ProcessDown { group, pid: *pid }) {
                Err(SubmitError::TryAgain) => {
                    self.counters.procdowns_deferred += 1;
                    return false;
                }
                Ok(()) => {
                    let (group, pid) = self.procdowns.pop_front().expect("front");
                    self.in_flight
                        .entry((group, pid))
                        .or_default()
                        .push_back(InFlight {
                            op: Op::ProcDown,
                            owner: None,
                        });
                }
                // The node no longer has the process in the group: nothing to announce.
                Err(_) => {
                    self.procdowns.pop_front();
                }
            }
        }
        true
    }

    /// Session `id` asks to join `group`. `AlreadyJoined` when it already asked for a group
    /// (this one or another) or another session of its pid has; `TryAgain` when the node's
    /// queue is full or a process-down of the same pid in that group is still waiting for it.
    pub fn join(
        &mut self,
        id: SessionId,
        group: &[u8],
        node: &mut impl Submit,
    ) -> Result<(), SubmitError> {
        let pid = self.slot(id).pid;
        if self.slot(id).asked().is_some() {
            return Err(SubmitError::AlreadyJoined);
        }
        if !self.submit_deferred(node)
            && self.procdowns.iter().any(|(g, p)| *p == pid && g == group)
        {
            return Err(SubmitError::TryAgain);
        }
        node.submit(Request::Join { group, pid })?;
        let slot = self.slot_mut(id);
        match slot.standing_mut(group) {
            Some(s) => {
                s.asked = true;
                s.in_flight += 1;
            }
            None => slot.standings.push(Standing {
                group: group.to_vec(),
                asked: true,
                member: false,
                in_flight: 1,
            }),
        }
        self.record(group, pid, Op::Join, id);
        Ok(())
    }

    /// Session `id` asks to leave `group` (the group it asked to join; `NotJoined` otherwise).
    /// Allowed before its join is delivered: it then gets its join, the group's events up to
    /// its leave, and the change that shows it leaving.
    pub fn leave(
        &mut self,
        id: SessionId,
        group: &[u8],
        node: &mut impl Submit,
    ) -> Result<(), SubmitError> {
        let pid = self.slot(id).pid;
        if self.group(id) != Some(group) {
            return Err(SubmitError::NotJoined);
        }
        node.submit(Request::Leave { group, pid })?;
        let s = self
            .slot_mut(id)
            .standing_mut(group)
            .expect("the asked group has a standing");
        s.asked = false;
        s.in_flight += 1;
        self.record(group, pid, Op::Leave, id);
        Ok(())
    }

    /// Multicasts to the group session `id` asked to join (`NotJoined` if none). Allowed while
    /// joining, as libcpg does: the message is ordered after the join.
    pub fn mcast(
        &mut self,
        id: SessionId,
        guarantee: Guarantee,
        data: &[u8],
        node: &mut impl Submit,
    ) -> Result<(), SubmitError> {
        let slot = self.slot(id);
        let group = slot.asked().ok_or(SubmitError::NotJoined)?;
        node.submit(Request::Mcast {
            group: &group.group,
            pid: slot.pid,
            guarantee,
            data,
        })
    }

    fn record(&mut self, group: &[u8], pid: u32, op: Op, owner: SessionId) {
        self.in_flight
            .entry((group.to_vec(), pid))
            .or_default()
            .push_back(InFlight {
                op,
                owner: Some(owner),
            });
    }

    /// Takes the first request in flight for (`group`, `pid`) if it is `op` (a join for a
    /// change that lists the pid joining, a leave or process-down for one that lists it leaving).
    fn answer(&mut self, group: &[u8], pid: u32, ops: &[Op]) -> Option<Option<SessionId>> {
        let key = (group.to_vec(), pid);
        let queue = self.in_flight.get_mut(&key);
        let Some(queue) = queue.filter(|q| q.front().is_some_and(|r| ops.contains(&r.op))) else {
            self.counters.unmatched += 1;
            return None;
        };
        let request = queue.pop_front().expect("front");
        if queue.is_empty() {
            self.in_flight.remove(&key);
        }
        Some(request.owner)
    }

    /// Hands `event` to every session that receives it, in slot order: a delivery or a group's
    /// change to the group's members (a change adding a session is its first event of the
    /// group, a change showing it leave its last), a regular configuration to every session,
    /// a transitional one to none.
    #[inline]
    pub fn route(&mut self, event: &Event<'_>, mut each: impl FnMut(&mut T)) {
        match event {
            Event::Deliver(d) => {
                for slot in self.slots.iter_mut().flatten() {
                    if slot.receives(d.group) {
                        each(&mut slot.user);
                    }
                }
            }
            Event::Group(change) => self.route_change(change, each),
            Event::Config(c) if c.kind == ConfigKind::Regular => {
                for slot in self.slots.iter_mut().flatten() {
                    each(&mut slot.user);
                }
            }
            Event::Config(_) => {}
        }
    }

    fn route_change(&mut self, change: &GroupChange, mut each: impl FnMut(&mut T)) {
        let group = change.group.as_slice();
        // This node's processes joining: their sessions are members from this change on.
        for &(m, reason) in &change.joined {
            if m.node != self.me {
                continue;
            }
            if reason != ChangeReason::Join {
                self.counters.unmatched += 1;
                continue;
            }
            if let Some(Some(id)) = self.answer(group, m.pid, &[Op::Join]) {
                let s = self
                    .slot_mut(id)
                    .standing_mut(group)
                    .expect("a session with a join in flight has a standing");
                s.member = true;
                s.in_flight -= 1;
            }
        }
        for slot in self.slots.iter_mut().flatten() {
            if slot.receives(group) {
                each(&mut slot.user);
            }
        }
        // This node's processes leaving: this change was their last.
        for &(m, reason) in &change.left {
            if m.node != self.me {
                continue;
            }
            if !matches!(reason, ChangeReason::Leave | ChangeReason::ProcDown) {
                self.counters.unmatched += 1;
                continue;
            }
            if let Some(Some(id)) = self.answer(group, m.pid, &[Op::Leave, Op::ProcDown]) {
                let slot = self.slot_mut(id);
                let s = slot
                    .standing_mut(group)
                    .expect("a session with a leave in flight has a standing");
                s.member = false;
                s.in_flight -= 1;
                slot.tidy();
            }
        }
    }

    fn slot(&self, id: SessionId) -> &Slot<T> {
        self.slots[id.index()]
            .as_ref()
            .expect("a session that is attached")
    }

    fn slot_mut(&mut self, id: SessionId) -> &mut Slot<T> {
        self.slots[id.index()]
            .as_mut()
            .expect("a session that is attached")
    }

    /// The group session `id` last asked to join, while it has not asked to leave it.
    pub fn group(&self, id: SessionId) -> Option<&[u8]> {
        self.slot(id).asked().map(|s| s.group.as_slice())
    }

    /// Where session `id` stands with `group`; `None` when it has nothing to do with it.
    pub fn phase(&self, id: SessionId, group: &[u8]) -> Option<SessionPhase> {
        self.slot(id)
            .standings
            .iter()
            .find(|s| s.group == group)
            .and_then(Standing::phase)
    }

    pub fn pid(&self, id: SessionId) -> u32 {
        self.slot(id).pid
    }

    pub fn get(&self, id: SessionId) -> &T {
        &self.slot(id).user
    }

    pub fn get_mut(&mut self, id: SessionId) -> &mut T {
        &mut self.slot_mut(id).user
    }

    /// Sessions attached now.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots to look at with `id_at` (attached sessions and free slots).
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The session in slot `index`, if one is attached there (a walk over the sessions that
    /// leaves `self` free to be changed in between).
    pub fn id_at(&self, index: usize) -> Option<SessionId> {
        self.slots
            .get(index)
            .and_then(Option::as_ref)
            .map(|_| SessionId(index as u32))
    }

    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (SessionId(i as u32), &s.user)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (SessionId, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.as_mut().map(|s| (SessionId(i as u32), &mut s.user)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::Payload;
    use crate::cpg::{Cpg, ProcessId};
    use crate::node::Delivery;

    const ME: NodeId = NodeId(1);
    const G: &[u8] = b"g";

    /// The core's submit side (its checks and encodings), with a queue that can be full.
    struct Core {
        cpg: Cpg,
        full: bool,
        sent: Vec<Vec<u8>>,
    }

    impl Core {
        fn new() -> Core {
            Core {
                cpg: Cpg::new(ME),
                full: false,
                sent: Vec::new(),
            }
        }
    }

    impl Submit for Core {
        fn submit(&mut self, request: Request<'_>) -> Result<(), SubmitError> {
            if self.full {
                return Err(SubmitError::TryAgain);
            }
            self.cpg.encode(request, &mut self.sent)
        }
    }

    fn m(node: u32, pid: u32) -> ProcessId {
        ProcessId {
            node: NodeId(node),
            pid,
        }
    }

    fn change(
        members: &[ProcessId],
        joined: &[(ProcessId, ChangeReason)],
        left: &[(ProcessId, ChangeReason)],
    ) -> Event<'static> {
        Event::Group(GroupChange {
            group: G.to_vec(),
            members: members.to_vec(),
            joined: joined.to_vec(),
            left: left.to_vec(),
        })
    }

    fn deliver(sender: ProcessId, data: &'static [u8]) -> Event<'static> {
        Event::Deliver(Delivery {
            group: G,
            sender,
            guarantee: Guarantee::Agreed,
            data: Payload::from_slice(data),
        })
    }

    /// What each session saw, as text: `c:<members>` for a change, `d:<data>` for a delivery.
    type Seen = Vec<String>;

    fn feed(s: &mut Sessions<Seen>, event: Event<'_>) {
        let line = match &event {
            Event::Group(c) => format!(
                "c:{}",
                c.members
                    .iter()
                    .map(|m| format!("{}.{}", m.node, m.pid))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Event::Deliver(d) => format!("d:{}", String::from_utf8_lossy(&d.data.to_vec())),
            Event::Config(_) => "totem".into(),
        };
        s.route(&event, |seen| seen.push(line.clone()));
    }

    #[test]
    fn a_joiner_sees_nothing_before_the_change_that_adds_it() {
        let (mut core, mut s) = (Core::new(), Sessions::new(ME));
        let first = s.attach(10, Seen::new());
        let second = s.attach(11, Seen::new());
        s.join(first, G, &mut core).unwrap();
        s.join(second, G, &mut core).unwrap();
        assert_eq!(s.phase(second, G), Some(SessionPhase::Joining));
        // Ordered before the second's join: its first join and first message.
        feed(
            &mut s,
            change(&[m(1, 10)], &[(m(1, 10), ChangeReason::Join)], &[]),
        );
        feed(&mut s, deliver(m(1, 10), b"early"));
        feed(
            &mut s,
            change(
                &[m(1, 10), m(1, 11)],
                &[(m(1, 11), ChangeReason::Join)],
                &[],
            ),
        );
        feed(&mut s, deliver(m(1, 10), b"late"));
        assert_eq!(
            s.get(first),
            &["c:1.10", "d:early", "c:1.10,1.11", "d:late"]
        );
        assert_eq!(s.get(second), &["c:1.10,1.11", "d:late"]);
        assert_eq!(s.phase(second, G), Some(SessionPhase::Member));
        assert_eq!(s.counters().unmatched, 0);
    }

    #[test]
    fn a_leaver_sees_its_leave_and_nothing_after() {
        let (mut core, mut s) = (Core::new(), Sessions::new(ME));
        let a = s.attach(10, Seen::new());
        s.join(a, G, &mut core).unwrap();
        feed(
            &mut s,
            change(&[m(1, 10)], &[(m(1, 10), ChangeReason::Join)], &[]),
        );
        s.leave(a, G, &mut core).unwrap();
        assert_eq!(s.phase(a, G), Some(SessionPhase::Leaving));
        assert_eq!(s.group(a), None);
        assert_eq!(
            s.mcast(a, Guarantee::Agreed, b"x", &mut core),
            Err(SubmitError::NotJoined)
        );
        feed(&mut s, deliver(m(2, 5), b"before"));
        feed(
            &mut s,
            change(&[m(2, 5)], &[], &[(m(1, 10), ChangeReason::Leave)]),
        );
        feed(&mut s, deliver(m(2, 5), b"after"));
        assert_eq!(s.get(a), &["c:1.10", "d:before", "c:2.5",][..]);
        assert_eq!(s.phase(a, G), None);
    }

    #[test]
    fn join_leave_join_of_one_session_is_two_memberships() {
        let (mut core, mut s) = (Core::new(), Sessions::new(ME));
        let a = s.attach(10, Seen::new());
        // Leave before the join is delivered, then join again before the leave is.
        s.join(a, G, &mut core).unwrap();
        s.leave(a, G, &mut core).unwrap();
        assert_eq!(s.phase(a, G), Some(SessionPhase::JoinAndLeaveInFlight));
        s.join(a, G, &mut core).unwrap();
        assert_eq!(s.phase(a, G), Some(SessionPhase::Joining));
        feed(&mut s, deliver(m(2, 5), b"0"));
        feed(
            &mut s,
            change(&[m(1, 10), m(2, 5)], &[(m(1, 10), ChangeReason::Join)], &[]),
        );
        feed(&mut s, deliver(m(2, 5), b"1"));
        feed(
            &mut s,
            change(&[m(2, 5)], &[], &[(m(1, 10), ChangeReason::Leave)]),
        );
        feed(&mut s, deliver(m(2, 5), b"2"));
        feed(
            &mut s,
            change(&[m(1, 10), m(2, 5)], &[(m(1, 10), ChangeReason::Join)], &[]),
        );
        feed(&mut s, deliver(m(2, 5), b"3"));
        assert_eq!(
            s.get(a),
            &["c:1.10,2.5", "d:1", "c:2.5", "c:1.10,2.5", "d:3"][..]
        );
        assert_eq!(s.phase(a, G), Some(SessionPhase::Member));
        assert_eq!(s.counters().unmatched, 0);
    }

    #[test]
    fn two_sessions_of_one_pid_are_told_apart_by_the_order_of_their_requests() {
        let (mut core, mut s) = (Core::new(), Sessions::new(ME));
        let old = s.attach(10, Seen::new());
        let new = s.attach(10, Seen::new());
        s.join(old, G, &mut core).unwrap();
        // One pid, one group: the same process cannot be in a group twice.
        assert_eq!(s.join(new, G, &mut core), Err(SubmitError::AlreadyJoined));
        feed(
            &mut s,
            change(&[m(1, 10)], &[(m(1, 10), ChangeReason::Join)], &[]),
        );
        s.leave(old, G, &mut core).unwrap();
        // Once the old one asked to leave, the new one may ask to join.
        s.join(new, G, &mut core).unwrap();
        feed(&mut s, deliver(m(1, 10), b"x"));
        feed(&mut s, change(&[], &[], &[(m(1, 10), ChangeReason::Leave)]));
        feed(
            &mut s,
            change(&[m(1, 10)], &[(m(1, 10), ChangeReason::Join)], &[]),
        );
        feed(&mut s, deliver(m(1, 10), b"y"));
        assert_eq!(s.get(old), &["c:1.10", "d:x", "c:"][..]);
        assert_eq!(s.get(new), &["c:1.10", "d:y"][..]);
    }

    #[test]
    fn a_session_closed_while_joining_leaves_by_process_down_and_its_changes_go_to_nobody() {
        let (mut core, mut s) = (Core::new(), Sessions::new(ME));
        let a = s.attach(10, Seen::new());
        let watcher = s.attach(11, Seen::new());
        s.join(watcher, G, &mut core).unwrap();
        feed(
            &mut s,
            change(&[m(1, 11)], &[(m(1, 11), ChangeReason::Join)], &[]),
        );
        s.join(a, G, &mut core).unwrap();
        // The queue is full when it closes: the process-down waits, and blocks a rejoin.
        core.full = true;
        s.detach(a, &mut core);
        let again = s.attach(10, Seen::new());
        assert_eq!(s.join(again, G, &mut core), Err(SubmitError::TryAgain));
        core.full = false;
        s.join(again, G, &mut core).unwrap();
        assert_eq!(core.sent.len(), 4, "join, join, procdown, join");
        feed(
            &mut s,
            change(
                &[m(1, 10), m(1, 11)],
                &[(m(1, 10), ChangeReason::Join)],
                &[],
            ),
        );
        feed(
            &mut s,
            change(&[m(1, 11)], &[], &[(m(1, 10), ChangeReason::ProcDown)]),
        );
        feed(&mut s, deliver(m(1, 11), b"between"));
        feed(
            &mut s,
            change(
                &[m(1, 10), m(1, 11)],
                &[(m(1, 10), ChangeReason::Join)],
                &[],
            ),
        );
        assert_eq!(s.get(again), &["c:1.10,1.11"][..]);
        assert_eq!(s.get(watcher).len(), 5);
        assert_eq!(s.counters().unmatched, 0);
        assert_eq!(s.counters().procdowns_deferred, 2);
    }

    #[test]
    fn one_group_per_session_and_requests_only_for_it() {
        let (mut core, mut s) = (Core::new(), Sessions::new(ME));
        let a = s.attach(10, Seen::new());
        assert_eq!(
            s.mcast(a, Guarantee::Agreed, b"x", &mut core),
            Err(SubmitError::NotJoined)
        );
        assert_eq!(s.leave(a, G, &mut core), Err(SubmitError::NotJoined));
        assert_eq!(s.join(a, b"", &mut core), Err(SubmitError::BadName));
        s.join(a, G, &mut core).unwrap();
        assert_eq!(
            s.join(a, b"other", &mut core),
            Err(SubmitError::AlreadyJoined)
        );
        assert_eq!(s.leave(a, b"other", &mut core), Err(SubmitError::NotJoined));
        // A multicast while joining is ordered after the join, as libcpg allows.
        s.mcast(a, Guarantee::Safe, b"x", &mut core).unwrap();
        // Leaving one group while joining another.
        feed(
            &mut s,
            change(&[m(1, 10)], &[(m(1, 10), ChangeReason::Join)], &[]),
        );
        s.leave(a, G, &mut core).unwrap();
        s.join(a, b"other", &mut core).unwrap();
        assert_eq!(s.phase(a, G), Some(SessionPhase::Leaving));
        assert_eq!(s.phase(a, b"other"), Some(SessionPhase::Joining));
        assert_eq!(s.group(a), Some(&b"other"[..]));
        // Every session gets a regular configuration.
        let b = s.attach(11, Seen::new());
        s.route(
            &Event::Config(crate::srp::ConfigChange {
                kind: ConfigKind::Regular,
                ring: Default::default(),
                next_ring: Default::default(),
                members: vec![ME],
                joined: Vec::new(),
                left: Vec::new(),
            }),
            |seen| seen.push("totem".into()),
        );
        assert_eq!(s.get(b), &["totem"][..]);
    }
}
