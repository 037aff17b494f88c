//! Who hears whom, and which nodes should form a ring together.
//!
//! Corosync decides membership from joins alone: a node that one member cannot hear is failed
//! by that member, every other member takes the failure over, and a node that hears both sides
//! of a broken pair keeps pulling them together again, so connectivity that is not transitive
//! (1–2 and 2–3 work, 1–3 does not) or not symmetric (one direction lost) makes it form and
//! break rings for as long as the fault lasts. rotor measures connectivity instead:
//!
//! - **Observation.** Each node notes when it last received any authenticated datagram from
//!   each other node (`note_heard`). Its *row* is the set of nodes heard within the reach
//!   timeout (`max(token, 4 × merge)`), itself included. A row is *mature* once the node has
//!   been up for a reach timeout: only then does a node missing from it mean "not heard"
//!   (before, the node may simply not have heard it yet, and the row asserts nothing).
//! - **Publication.** Every node multicasts a presence every `merge` interval, in every state
//!   (`encode_presence`): its own row and every fresh row it learned from others, with their
//!   versions and ages. So a node learns about pairs it is not part of, through any node that
//!   hears both sides. A row is fresh for a reach timeout after its node last produced a new
//!   version; relayed rows carry their age, so a dead node's row expires everywhere at about the
//!   same time and cannot circulate for ever.
//! - **The rule.** Two nodes are connected unless a fresh, mature row says one does not hear
//!   the other (`broken`; a node's own row counts, and is always fresh). The nodes are split
//!   into groups by repeatedly taking the largest set in which every pair is connected — ties
//!   broken by the lowest sorted list of node ids — from those left (`group_of`). A node forms
//!   a ring only with its own group. Every node computes this from the same published rows,
//!   so all agree once the rows have spread; while connectivity stays the same the rows stay
//!   the same and so do the rings; when it heals, the rows say so and the groups merge.
//!
//! The SRP uses the group for the excluded set of its joins (members of the proc set outside
//! the group: not taken over by other nodes, unlike failures) and, when operational, to decide
//! whether a presence or join of another ring, or a change of the rows, calls for a new ring.
//! Nothing here touches EVS: which ring forms is decided as before by consensus on the joins,
//! and installed by the commit token and recovery.

use crate::limits::{BROKEN_PAIRS_REPORTED_MAX, CLIQUE_SEARCH_STEPS_MAX, MEMBERS_MAX};
use crate::types::{Instant, NodeId};
use crate::wire::{DropReason, PresenceHdr, RowHdr, Writer, ROW_MATURE};

use zerocopy::{FromBytes, IntoBytes};

/// Two nodes that do not hear each other both ways, as one node's rows say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokenPair {
    /// `a < b`.
    pub a: NodeId,
    pub b: NodeId,
    /// False when `a`'s row says it does not hear `b`.
    pub a_hears_b: bool,
    /// False when `b`'s row says it does not hear `a`.
    pub b_hears_a: bool,
}

/// One node's published row.
struct Row {
    origin: NodeId,
    incarnation: u32,
    version: u32,
    mature: bool,
    /// Invariant: sorted, unique.
    hears: Vec<NodeId>,
    /// When this version came to be, on this node's clock (its age subtracted).
    born: Instant,
    /// Whether the row was fresh at the last `tick`, or when it was taken: the freshness the
    /// groups are computed with.
    fresh_seen: bool,
}

/// A row as a presence carries it.
struct RowOut<'a> {
    origin: NodeId,
    incarnation: u32,
    version: u32,
    mature: bool,
    hears: &'a [NodeId],
    age_ms: u32,
}

/// The rows a node knows and what it hears itself. See the module documentation.
pub struct Reach {
    me: NodeId,
    incarnation: u32,
    started: Instant,
    timeout_ns: u64,
    /// Counts this node's presences: the version of its own row.
    version: u32,
    /// The last datagram from each node. Invariant: sorted by node, unique, never `me`, at
    /// most `MEMBERS_MAX`.
    heard: Vec<(NodeId, Instant)>,
    /// Rows of other nodes, fresh or not (an expired row is kept so that an older copy of it
    /// cannot come back). Invariant: sorted by origin, unique, never `me`, at most
    /// `MEMBERS_MAX`.
    rows: Vec<Row>,
    /// This node's own row as of the last `tick`, and every node heard since: (mature,
    /// hears). What the groups are computed with.
    own: (bool, Vec<NodeId>),
    /// Counts the changes of what the groups are computed with (`own`, the rows, their
    /// freshness): a group computed at one generation is valid until the next.
    generation: u64,
    /// The last group computed: its generation, universe and result.
    cache: Option<(u64, Vec<NodeId>, Vec<NodeId>)>,
    /// For each node that left this node's own row (no longer heard): the (incarnation,
    /// version) of its row then. Invariant: sorted by node, unique, at most `MEMBERS_MAX`.
    lost: Vec<(NodeId, (u32, u32))>,
}

const WORDS: usize = MEMBERS_MAX.div_ceil(64);

/// A set of indices into a universe of at most `MEMBERS_MAX` nodes.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Bits([u64; WORDS]);

impl Bits {
    const EMPTY: Bits = Bits([0; WORDS]);
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    fn first(&self) -> Option<usize> {
        self.0
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + w.trailing_zeros() as usize)
    }
    fn and(&self, other: &Bits) -> Bits {
        let mut out = *self;
        for (o, b) in out.0.iter_mut().zip(other.0) {
            *o &= b;
        }
        out
    }
    fn or(&self, other: &Bits) -> Bits {
        let mut out = *self;
        for (o, b) in out.0.iter_mut().zip(other.0) {
            *o |= b;
        }
        out
    }
    fn minus(&self, other: &Bits) -> Bits {
        let mut out = *self;
        for (o, b) in out.0.iter_mut().zip(other.0) {
            *o &= !b;
        }
        out
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..WORDS * 64).filter(|i| self.has(*i))
    }
}

/// The connection graph over a sorted universe: `adj[i]` holds `j` when `i` and `j` are
/// connected.
struct Graph {
    nodes: Vec<NodeId>,
    adj: Vec<Bits>,
}

fn contains(set: &[NodeId], node: NodeId) -> bool {
    set.binary_search(&node).is_ok()
}

impl Reach {
    pub fn new(me: NodeId, incarnation: u32, now: Instant, timeout_ms: u32) -> Reach {
        Reach {
            me,
            incarnation,
            started: now,
            timeout_ns: u64::from(timeout_ms) * 1_000_000,
            version: 0,
            heard: Vec::with_capacity(MEMBERS_MAX),
            rows: Vec::with_capacity(MEMBERS_MAX),
            own: (false, vec![me]),
            generation: 0,
            cache: None,
            lost: Vec::with_capacity(MEMBERS_MAX),
        }
    }

    fn within(&self, since: Instant, now: Instant) -> bool {
        now.0.saturating_sub(since.0) <= self.timeout_ns
    }

    /// A datagram from `node` arrived (authenticated by the layer below).
    pub fn note_heard(&mut self, node: NodeId, now: Instant) {
        if node == self.me {
            return;
        }
        match self.heard.binary_search_by_key(&node, |(n, _)| *n) {
            Ok(at) => self.heard[at].1 = now,
            Err(at) => {
                if self.heard.len() < MEMBERS_MAX {
                    self.heard.insert(at, (node, now));
                }
            }
        }
        // A node heard (again) joins this node's row at once; one no longer heard leaves it
        // at the next `tick`.
        if let Err(at) = self.own.1.binary_search(&node) {
            if self.heard.binary_search_by_key(&node, |(n, _)| *n).is_ok() {
                self.own.1.insert(at, node);
                self.generation += 1;
            }
        }
    }

    /// This node's own row now: whether it is mature, and the nodes it hears (itself
    /// included).
    fn own_row(&self, now: Instant) -> (bool, Vec<NodeId>) {
        let mut hears: Vec<NodeId> = self
            .heard
            .iter()
            .filter(|(_, at)| self.within(*at, now))
            .map(|(n, _)| *n)
            .collect();
        let at = hears.binary_search(&self.me).unwrap_err();
        hears.insert(at, self.me);
        (!self.within(self.started, now), hears)
    }

    fn fresh(&self, row: &Row, now: Instant) -> bool {
        self.within(row.born, now)
    }

    fn row(&self, node: NodeId) -> Option<&Row> {
        self.rows
            .binary_search_by_key(&node, |r| r.origin)
            .ok()
            .map(|at| &self.rows[at])
    }

    /// What `a`'s row says `a` hears, if it says anything (fresh and mature).
    fn asserted(&self, a: NodeId) -> Option<&[NodeId]> {
        if a == self.me {
            return self.own.0.then_some(&self.own.1[..]);
        }
        self.row(a)
            .filter(|r| r.mature && r.fresh_seen)
            .map(|r| &r.hears[..])
    }

    /// Whether `node` has been up for a reach timeout (its row, fresh, says it is mature; or
    /// this node's own): only then can another node's row leaving it out mean anything. A node
    /// just (re)started has not been heard by the others yet; it is taken as connected to all
    /// until then, as its own row asserts nothing either.
    fn judged(&self, node: NodeId) -> bool {
        if node == self.me {
            return self.own.0;
        }
        self.row(node).is_some_and(|r| r.mature && r.fresh_seen)
    }

    /// Whether `a` is known not to hear `b`: its row (fresh, mature) leaves `b` out, and `b`
    /// has been up long enough to be judged.
    fn deaf(&self, a: NodeId, b: NodeId) -> bool {
        self.judged(b) && self.asserted(a).is_some_and(|hears| !contains(hears, b))
    }

    /// Whether `node` is known to be up and reaching someone: this node hears it, or its row is
    /// fresh and (if this node heard it before) newer than when this node stopped hearing it —
    /// a row produced since, relayed by a node that still hears it. A node that stopped
    /// altogether (crashed, or cut off from everyone on this side) is absent as soon as this
    /// node stops hearing it: its last rows, still fresh for a while, say what it heard before
    /// it went, and taken as news they would make this node look like the one that is deaf.
    pub fn present(&self, node: NodeId) -> bool {
        if node == self.me || contains(&self.own.1, node) {
            return true;
        }
        let Some(row) = self.row(node).filter(|r| r.fresh_seen) else {
            return false;
        };
        match self.lost.binary_search_by_key(&node, |(n, _)| *n) {
            Ok(at) => (row.incarnation, row.version) > self.lost[at].1,
            Err(_) => true,
        }
    }

    /// The nodes present (`present`) with a fresh row, this node included (sorted).
    pub fn fresh_nodes(&self) -> Vec<NodeId> {
        // Sized once (a filtered collect grows from a few): the gather state asks on every join.
        let mut nodes = Vec::with_capacity(self.rows.len() + 1);
        nodes.extend(
            self.rows
                .iter()
                .filter(|r| r.fresh_seen && self.present(r.origin))
                .map(|r| r.origin),
        );
        let at = nodes.binary_search(&self.me).unwrap_err();
        nodes.insert(at, self.me);
        nodes
    }

    fn graph(&self, universe: &[NodeId]) -> Graph {
        let nodes = universe.to_vec();
        // out[i]: the nodes of the universe that i is not known to be deaf to (all of them when
        // its row asserts nothing).
        let mut all = Bits::EMPTY;
        (0..nodes.len()).for_each(|i| all.set(i));
        let mut unjudged = Bits::EMPTY;
        for (i, n) in nodes.iter().enumerate() {
            if !self.judged(*n) {
                unjudged.set(i);
            }
        }
        let out: Vec<Bits> = nodes
            .iter()
            .map(|a| {
                let Some(hears) = self.asserted(*a) else {
                    return all;
                };
                // Both lists are sorted: one pass.
                let mut bits = Bits::EMPTY;
                let mut h = hears.iter().peekable();
                for (j, n) in nodes.iter().enumerate() {
                    while h.next_if(|x| *x < n).is_some() {}
                    if h.peek() == Some(&n) {
                        bits.set(j);
                    }
                }
                bits.or(&unjudged)
            })
            .collect();
        let mut adj = vec![Bits::EMPTY; nodes.len()];
        for i in 0..nodes.len() {
            for j in (i + 1)..nodes.len() {
                if out[i].has(j) && out[j].has(i) {
                    adj[i].set(j);
                    adj[j].set(i);
                }
            }
        }
        Graph { nodes, adj }
    }

    /// This node's group among `universe` (sorted, unique, containing this node, at most
    /// `MEMBERS_MAX`): see the module documentation. Sorted; contains this node. Computed with
    /// what the rows said at the last `tick` or change, and kept until the next.
    pub fn group_of(&mut self, universe: &[NodeId]) -> Vec<NodeId> {
        if let Some((generation, u, group)) = &self.cache {
            if *generation == self.generation && u == universe {
                return group.clone();
            }
        }
        let group = self.compute_group(universe);
        self.cache = Some((self.generation, universe.to_vec(), group.clone()));
        group
    }

    fn compute_group(&self, universe: &[NodeId]) -> Vec<NodeId> {
        assert!(
            universe.len() <= MEMBERS_MAX && contains(universe, self.me),
            "a universe of at most MEMBERS_MAX nodes, this one among them"
        );
        let g = self.graph(universe);
        let me = universe.binary_search(&self.me).expect("checked above");
        let mut left = Bits::EMPTY;
        for i in 0..g.nodes.len() {
            left.set(i);
        }
        loop {
            let best = largest_clique(&g, left);
            if best.has(me) {
                return best.iter().map(|i| g.nodes[i]).collect();
            }
            assert!(
                !best.is_empty(),
                "a non-empty universe has a non-empty clique"
            );
            left = left.minus(&best);
        }
    }

    /// The pairs among the nodes with fresh rows that do not hear each other both ways and
    /// that are worth an operator's attention: at least one direction works, or both nodes are
    /// connected through others (a clean partition, where neither hears the other or anyone
    /// that does, is not listed). At most `BROKEN_PAIRS_REPORTED_MAX`, and how many more.
    pub fn broken_pairs(&self) -> (Vec<BrokenPair>, u32) {
        let nodes = self.fresh_nodes();
        let g = self.graph(&nodes);
        // Connected components of the graph, by label.
        let mut label = vec![usize::MAX; nodes.len()];
        for start in 0..nodes.len() {
            if label[start] != usize::MAX {
                continue;
            }
            label[start] = start;
            let mut stack = vec![start];
            while let Some(i) = stack.pop() {
                for j in g.adj[i].iter() {
                    if label[j] == usize::MAX {
                        label[j] = start;
                        stack.push(j);
                    }
                }
            }
        }
        let mut pairs = Vec::new();
        let mut more = 0u32;
        for i in 0..nodes.len() {
            for j in (i + 1)..nodes.len() {
                if g.adj[i].has(j) {
                    continue;
                }
                let (a, b) = (nodes[i], nodes[j]);
                let pair = BrokenPair {
                    a,
                    b,
                    a_hears_b: !self.deaf(a, b),
                    b_hears_a: !self.deaf(b, a),
                };
                if pair.a_hears_b || pair.b_hears_a || label[i] == label[j] {
                    if pairs.len() < BROKEN_PAIRS_REPORTED_MAX {
                        pairs.push(pair);
                    } else {
                        more += 1;
                    }
                }
            }
        }
        (pairs, more)
    }

    /// Brings what time changes up to date: this node's own row (a node no longer heard;
    /// maturity) and the freshness of every row. Returns whether that changed anything.
    pub fn tick(&mut self, now: Instant) -> bool {
        let own = self.own_row(now);
        let mut changed = own != self.own;
        for gone in self.own.1.iter().filter(|n| !contains(&own.1, **n)) {
            let version = self
                .row(*gone)
                .map_or((0, 0), |r| (r.incarnation, r.version));
            match self.lost.binary_search_by_key(gone, |(n, _)| *n) {
                Ok(at) => self.lost[at].1 = version,
                Err(at) => {
                    if self.lost.len() < MEMBERS_MAX {
                        self.lost.insert(at, (*gone, version));
                    }
                }
            }
        }
        self.own = own;
        for i in 0..self.rows.len() {
            let fresh = self.fresh(&self.rows[i], now);
            if fresh != self.rows[i].fresh_seen {
                self.rows[i].fresh_seen = fresh;
                changed = true;
            }
        }
        if changed {
            self.generation += 1;
        }
        changed
    }

    // ----- presence ------------------------------------------------------------------------

    /// Writes a presence body (after the common header) for `ring`: this node's own row (a
    /// new version) and the fresh rows of others that some node needs relayed, with their ages.
    /// Call `tick` first: the rows go as of then. `config_digest` is the sender's
    /// `ConfigIdentity::digest`.
    pub fn encode_presence(
        &mut self,
        now: Instant,
        ring: crate::types::RingId,
        config_digest: u64,
    ) -> Vec<u8> {
        self.version = self.version.wrapping_add(1);
        let own = &self.own;
        // The list: every row's node and every node a row hears (at most MEMBERS_MAX: only
        // configured nodes are ever heard, but a row relayed from elsewhere is not trusted to
        // keep to that).
        // Relayed: the fresh rows of nodes that some fresh row (this node's own included) does
        // not list — a node that does not hear them learns their rows only this way. When
        // everybody hears everybody, a presence carries its sender's row alone.
        let unheard_somewhere = |node: NodeId| {
            !contains(&own.1, node)
                || self
                    .rows
                    .iter()
                    .any(|r| r.fresh_seen && r.origin != node && !contains(&r.hears, node))
        };
        let relayed: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.fresh_seen && unheard_somewhere(r.origin))
            .collect();
        let mut nodes: Vec<NodeId> = own.1.clone();
        for r in &relayed {
            nodes.push(r.origin);
            nodes.extend_from_slice(&r.hears);
        }
        nodes.sort_unstable();
        nodes.dedup();
        if nodes.len() > MEMBERS_MAX {
            // Keep this node and the lowest others.
            nodes.retain(|n| *n != self.me);
            nodes.truncate(MEMBERS_MAX - 1);
            let at = nodes.binary_search(&self.me).unwrap_err();
            nodes.insert(at, self.me);
        }
        // Rows in increasing order of their node, this node's own among them.
        let own_row = RowOut {
            origin: self.me,
            incarnation: self.incarnation,
            version: self.version,
            mature: own.0,
            hears: &own.1,
            age_ms: 0,
        };
        let mut rows: Vec<RowOut<'_>> = relayed
            .iter()
            .filter(|r| nodes.binary_search(&r.origin).is_ok())
            .map(|r| RowOut {
                origin: r.origin,
                incarnation: r.incarnation,
                version: r.version,
                mature: r.mature,
                hears: &r.hears,
                age_ms: (now.0.saturating_sub(r.born.0) / 1_000_000).min(u64::from(u32::MAX))
                    as u32,
            })
            .collect();
        let at = rows.partition_point(|r| r.origin < self.me);
        rows.insert(at, own_row);
        let bitmap_len = nodes.len().div_ceil(8);
        let size = crate::wire::presence_size(nodes.len(), rows.len()) - crate::wire::HEADER_LEN;
        let mut buf = Vec::new();
        let mut w = Writer::new_vec(&mut buf, size);
        w.put(
            PresenceHdr {
                ring_seq: ring.seq.into(),
                ring_rep: ring.rep.into(),
                node_count: (nodes.len() as u16).into(),
                row_count: (rows.len() as u16).into(),
                config_digest: config_digest.into(),
            }
            .as_bytes(),
        );
        for n in &nodes {
            w.put_u32(n.0);
        }
        let mut bitmap = vec![0u8; bitmap_len];
        for RowOut {
            origin,
            incarnation,
            version,
            mature,
            hears,
            age_ms,
        } in rows
        {
            let index = nodes.binary_search(&origin).expect("listed above");
            bitmap.iter_mut().for_each(|b| *b = 0);
            for h in hears {
                if let Ok(i) = nodes.binary_search(h) {
                    bitmap[i / 8] |= 1 << (i % 8);
                }
            }
            w.put(
                RowHdr {
                    origin: (index as u16).into(),
                    flags: if mature { ROW_MATURE } else { 0 },
                    _pad: 0,
                    incarnation: incarnation.into(),
                    version: version.into(),
                    age_ms: age_ms.into(),
                }
                .as_bytes(),
            );
            w.put(&bitmap);
        }
        assert_eq!(w.len(), size, "a presence is exactly its computed size");
        buf
    }

    /// Takes the rows of a presence body from `sender` (of `incarnation`). Returns the ring it
    /// names and whether what the rows say changed (a row appeared, came back, or says
    /// something new). Malformed bodies are refused whole, before anything is taken.
    pub fn merge_presence(
        &mut self,
        now: Instant,
        sender: NodeId,
        incarnation: u32,
        body: &[u8],
    ) -> Result<(crate::types::RingId, bool), DropReason> {
        let (hdr, rest) = PresenceHdr::ref_from_prefix(body).map_err(|_| DropReason::Truncated)?;
        let node_count = hdr.node_count.get() as usize;
        let row_count = hdr.row_count.get() as usize;
        if node_count > MEMBERS_MAX
            || row_count > node_count
            || !crate::types::RingId::plausible(hdr.ring_seq.get())
        {
            return Err(DropReason::Malformed);
        }
        let (ids, mut rest) =
            crate::wire::read_ids(rest, node_count).ok_or(DropReason::Truncated)?;
        let nodes: Vec<NodeId> = ids.collect();
        if nodes.iter().any(|n| n.0 == 0) || nodes.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DropReason::Malformed);
        }
        let bitmap_len = node_count.div_ceil(8);
        let mut decoded = Vec::with_capacity(row_count);
        let mut last_origin: Option<usize> = None;
        for _ in 0..row_count {
            let (row, after) = RowHdr::ref_from_prefix(rest).map_err(|_| DropReason::Truncated)?;
            let bitmap = after.get(..bitmap_len).ok_or(DropReason::Truncated)?;
            rest = &after[bitmap_len..];
            let origin = row.origin.get() as usize;
            if origin >= node_count || last_origin.is_some_and(|l| origin <= l) {
                return Err(DropReason::Malformed);
            }
            last_origin = Some(origin);
            let hears: Vec<NodeId> = (0..node_count)
                .filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
                .map(|i| nodes[i])
                .collect();
            let origin = nodes[origin];
            if origin == sender && row.incarnation.get() != incarnation {
                return Err(DropReason::Malformed);
            }
            decoded.push((origin, *row, hears));
        }
        let mut changed = false;
        for (origin, hdr, hears) in decoded {
            if origin == self.me {
                continue;
            }
            let born = Instant(
                now.0
                    .saturating_sub(u64::from(hdr.age_ms.get()) * 1_000_000),
            );
            changed |= self.take_row(
                now,
                origin == sender,
                Row {
                    origin,
                    incarnation: hdr.incarnation.get(),
                    version: hdr.version.get(),
                    mature: hdr.flags & ROW_MATURE != 0,
                    hears,
                    born: if origin == sender { now } else { born },
                    fresh_seen: true,
                },
            );
        }
        Ok((hdr.ring(), changed))
    }

    /// Takes one row: always from its own node (it may have restarted with a lower
    /// incarnation), otherwise only a newer version than the one held. Returns whether what
    /// the rows say changed.
    fn take_row(&mut self, now: Instant, direct: bool, mut row: Row) -> bool {
        row.fresh_seen = self.fresh(&row, now);
        let origin = row.origin;
        let was_present = self.present(origin);
        let changed = self.store_row(direct, row);
        let present_changed = self.present(origin) != was_present;
        if present_changed && !changed {
            self.generation += 1;
        }
        changed || present_changed
    }

    fn store_row(&mut self, direct: bool, row: Row) -> bool {
        match self.rows.binary_search_by_key(&row.origin, |r| r.origin) {
            Ok(at) => {
                let held = &self.rows[at];
                let newer = (row.incarnation, row.version) > (held.incarnation, held.version);
                let restarted = direct && row.incarnation != held.incarnation;
                if !(newer || restarted) || !row.fresh_seen {
                    return false;
                }
                let changed =
                    !held.fresh_seen || held.mature != row.mature || held.hears != row.hears;
                self.rows[at] = row;
                if changed {
                    self.generation += 1;
                }
                changed
            }
            Err(at) => {
                if self.rows.len() >= MEMBERS_MAX || !row.fresh_seen {
                    return false;
                }
                self.rows.insert(at, row);
                self.generation += 1;
                true
            }
        }
    }

    /// Asserts the invariants of the tables.
    pub fn check_invariants(&self) {
        assert!(
            self.heard.len() <= MEMBERS_MAX && self.rows.len() <= MEMBERS_MAX,
            "reach tables unbounded"
        );
        assert!(
            self.heard.windows(2).all(|w| w[0].0 < w[1].0)
                && self.heard.iter().all(|(n, _)| *n != self.me),
            "heard table not sorted and unique, or with this node"
        );
        assert!(
            self.rows.windows(2).all(|w| w[0].origin < w[1].origin)
                && self.rows.iter().all(|r| r.origin != self.me),
            "rows not sorted and unique, or with this node's own"
        );
        assert!(
            self.lost.len() <= MEMBERS_MAX && self.lost.windows(2).all(|w| w[0].0 < w[1].0),
            "lost table unbounded, or not sorted and unique"
        );
    }
}

/// The largest set of `left` in which every pair is connected; among equally large ones, the
/// one whose sorted list of nodes is lowest. A depth-first search that tries including each
/// node (in increasing order) before leaving it out, so the first largest set it meets is the
/// lowest; branches that cannot beat the best so far are cut. At most
/// `CLIQUE_SEARCH_STEPS_MAX` steps: then the best set so far (the same on every node).
fn largest_clique(g: &Graph, left: Bits) -> Bits {
    struct Search<'a> {
        g: &'a Graph,
        best: Bits,
        best_size: usize,
        steps: u32,
    }
    impl Search<'_> {
        fn run(&mut self, clique: &mut Bits, size: usize, cands: Bits) {
            if self.steps == 0 {
                return;
            }
            self.steps -= 1;
            let Some(v) = cands.first() else {
                if size > self.best_size {
                    self.best = *clique;
                    self.best_size = size;
                }
                return;
            };
            if size + cands.count() <= self.best_size {
                return;
            }
            clique.set(v);
            let mut with = cands.and(&self.g.adj[v]);
            with.clear(v);
            self.run(clique, size + 1, with);
            clique.clear(v);
            let mut without = cands;
            without.clear(v);
            self.run(clique, size, without);
        }
    }
    let mut s = Search {
        g,
        best: Bits::EMPTY,
        best_size: 0,
        steps: CLIQUE_SEARCH_STEPS_MAX,
    };
    s.run(&mut Bits::EMPTY.clone(), 0, left);
    s.best
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ids(v: &[u32]) -> Vec<NodeId> {
        v.iter().map(|n| NodeId(*n)).collect()
    }

    /// A graph over 1..=n with the given pairs broken.
    fn graph(n: u32, broken: &[(u32, u32)]) -> Graph {
        let nodes = ids(&(1..=n).collect::<Vec<_>>());
        let mut adj = vec![Bits::EMPTY; nodes.len()];
        for (i, row) in adj.iter_mut().enumerate() {
            for j in 0..nodes.len() {
                let (a, b) = (i as u32 + 1, j as u32 + 1);
                if i != j && !broken.contains(&(a, b)) && !broken.contains(&(b, a)) {
                    row.set(j);
                }
            }
        }
        Graph { nodes, adj }
    }

    fn clique(g: &Graph) -> Vec<u32> {
        let mut all = Bits::EMPTY;
        (0..g.nodes.len()).for_each(|i| all.set(i));
        largest_clique(g, all)
            .iter()
            .map(|i| g.nodes[i].0)
            .collect()
    }

    #[test]
    fn the_largest_set_wins_and_ties_go_to_the_lowest_ids() {
        assert_eq!(clique(&graph(3, &[(1, 3)])), vec![1, 2]);
        assert_eq!(clique(&graph(4, &[(1, 3)])), vec![1, 2, 4]);
        assert_eq!(clique(&graph(5, &[(1, 2), (1, 3)])), vec![2, 3, 4, 5]);
        assert_eq!(clique(&graph(4, &[(4, 1), (4, 2), (4, 3)])), vec![1, 2, 3]);
        assert_eq!(clique(&graph(3, &[])), vec![1, 2, 3]);
        // Many broken pairs in a 64-node cluster: 32 disjoint pairs (2^32 largest sets).
        let pairs: Vec<(u32, u32)> = (0..32).map(|k| (2 * k + 1, 2 * k + 2)).collect();
        let got = clique(&graph(64, &pairs));
        assert_eq!(got, (0..32).map(|k| 2 * k + 1).collect::<Vec<_>>());
    }

    /// Three nodes' tables where 1 and 3 do not hear each other; all rows relayed by 2.
    #[test]
    fn presences_spread_rows_and_every_node_agrees_on_the_groups() {
        let t = |ms: u64| Instant(ms * MS);
        let mut r: Vec<Reach> = (1..=3)
            .map(|i| Reach::new(NodeId(i), 7, t(0), 100))
            .collect();
        let hears = |a: u32, b: u32| a != b && (a, b) != (1, 3) && (a, b) != (3, 1);
        for step in 0..40u64 {
            let now = t(step * 10);
            for a in 1..=3u32 {
                r[a as usize - 1].tick(now);
                let body =
                    r[a as usize - 1].encode_presence(now, crate::types::RingId::default(), 0);
                for b in 1..=3u32 {
                    if hears(b, a) {
                        let to = &mut r[b as usize - 1];
                        to.note_heard(NodeId(a), now);
                        to.merge_presence(now, NodeId(a), 7, &body)
                            .expect("well-formed");
                    }
                }
            }
        }
        let now = t(400);
        let all = ids(&[1, 2, 3]);
        r.iter_mut().for_each(|reach| {
            reach.tick(now);
        });
        assert_eq!(r[0].group_of(&all), ids(&[1, 2]));
        assert_eq!(r[1].group_of(&all), ids(&[1, 2]));
        assert_eq!(r[2].group_of(&all), ids(&[3]));
        // Node 1 knows 3 through 2: the pair is reported at every node.
        for reach in &r {
            let (pairs, more) = reach.broken_pairs();
            assert_eq!(
                pairs,
                vec![BrokenPair {
                    a: NodeId(1),
                    b: NodeId(3),
                    a_hears_b: false,
                    b_hears_a: false
                }]
            );
            assert_eq!(more, 0);
        }
        // Node 2 stops relaying: node 3's row expires at node 1 a reach timeout later.
        r[0].tick(t(450));
        assert_eq!(r[0].fresh_nodes(), ids(&[1, 2, 3]));
        r[0].tick(t(520));
        assert_eq!(r[0].fresh_nodes(), ids(&[1]));
    }

    #[test]
    fn a_young_row_asserts_nothing_and_an_old_copy_does_not_come_back() {
        let t = |ms: u64| Instant(ms * MS);
        let ring = crate::types::RingId::default();
        let mut a = Reach::new(NodeId(1), 1, t(0), 100);
        let mut b = Reach::new(NodeId(2), 1, t(0), 100);
        let presence = |b: &mut Reach, ms: u64| {
            b.tick(t(ms));
            b.encode_presence(t(ms), ring, 0)
        };
        // Young: b has heard nobody yet, and says nothing about a.
        let body = presence(&mut b, 10);
        a.note_heard(NodeId(2), t(10));
        a.merge_presence(t(10), NodeId(2), 1, &body).unwrap();
        a.tick(t(10));
        assert_eq!(a.group_of(&ids(&[1, 2])), ids(&[1, 2]));
        // Mature and still deaf to a: a leaves b out.
        let body = presence(&mut b, 150);
        a.note_heard(NodeId(2), t(150));
        a.merge_presence(t(150), NodeId(2), 1, &body).unwrap();
        a.tick(t(150));
        assert_eq!(a.group_of(&ids(&[1, 2])), ids(&[1]));
        // An old version relayed later is not taken.
        let mut c = Reach::new(NodeId(3), 1, t(0), 100);
        c.note_heard(NodeId(2), t(150));
        c.merge_presence(t(150), NodeId(2), 1, &body).unwrap();
        let newer = presence(&mut b, 160);
        c.merge_presence(t(160), NodeId(2), 1, &newer).unwrap();
        let held = |c: &Reach| c.row(NodeId(2)).map(|r| r.version);
        let before = held(&c);
        a.tick(t(170));
        let relayed_old = a.encode_presence(t(170), ring, 0);
        c.merge_presence(t(170), NodeId(1), 1, &relayed_old)
            .unwrap();
        assert_eq!(held(&c), before);
        assert!(c.row(NodeId(1)).is_some());
    }
}
