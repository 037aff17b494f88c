//! Per-sender replay window and the fixed-capacity table of senders.

/// Counters a replay window remembers behind the newest one: a counter `c` is accepted only if
/// `newest - c < REPLAY_WINDOW_COUNTERS` and `c` was not accepted before.
pub const REPLAY_WINDOW_COUNTERS: u64 = 1024;

/// Bitmap words: one more than the window needs, so the word being entered can be cleared
/// without losing any counter still inside the window (RFC 6479's rotating bitmap).
const WINDOW_WORDS: usize = (REPLAY_WINDOW_COUNTERS / 64) as usize + 1;

/// What a window says about a (epoch, counter) before authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not seen; may be recorded once the frame authenticates.
    Fresh,
    /// Counter already seen, or older than the window.
    Replay,
    /// Epoch older than the newest seen from this sender.
    StaleEpoch,
}

/// Newest (epoch, counter) of one sender and which of the last
/// [`REPLAY_WINDOW_COUNTERS`] counters were seen.
///
/// Invariant: bit `c % 64` of word `(c / 64) % WINDOW_WORDS` is set iff counter `c` of `epoch`
/// was recorded, for every `c` in `newest - REPLAY_WINDOW_COUNTERS < c <= newest`; bits for
/// counters above `newest` in the current word are clear.
#[derive(Clone, Debug)]
pub(crate) struct ReplayWindow {
    epoch: u32,
    newest: u64,
    bitmap: [u64; WINDOW_WORDS],
}

impl ReplayWindow {
    /// A window whose only recorded frame is (epoch, counter).
    pub(crate) fn starting_at(epoch: u32, counter: u64) -> ReplayWindow {
        let mut window = ReplayWindow {
            epoch,
            newest: counter,
            bitmap: [0; WINDOW_WORDS],
        };
        window.set(counter);
        window
    }

    /// Checks without changing anything; safe on unauthenticated input.
    pub(crate) fn check(&self, epoch: u32, counter: u64) -> Verdict {
        if epoch < self.epoch {
            return Verdict::StaleEpoch;
        }
        if epoch > self.epoch || counter > self.newest {
            return Verdict::Fresh;
        }
        if self.newest - counter >= REPLAY_WINDOW_COUNTERS || self.is_set(counter) {
            return Verdict::Replay;
        }
        Verdict::Fresh
    }

    /// Records an authenticated frame that [`ReplayWindow::check`] found fresh.
    pub(crate) fn record(&mut self, epoch: u32, counter: u64) {
        debug_assert_eq!(self.check(epoch, counter), Verdict::Fresh);
        if epoch > self.epoch {
            // The sender restarted: its counters start over under the new epoch.
            *self = ReplayWindow::starting_at(epoch, counter);
            return;
        }
        if counter > self.newest {
            let word_old = self.newest / 64;
            let word_new = counter / 64;
            if word_new - word_old >= WINDOW_WORDS as u64 {
                self.bitmap = [0; WINDOW_WORDS];
            } else {
                for word in word_old + 1..=word_new {
                    self.bitmap[(word % WINDOW_WORDS as u64) as usize] = 0;
                }
            }
            self.newest = counter;
        }
        self.set(counter);
    }

    fn slot(counter: u64) -> (usize, u64) {
        (
            (counter / 64 % WINDOW_WORDS as u64) as usize,
            1u64 << (counter % 64),
        )
    }

    fn is_set(&self, counter: u64) -> bool {
        let (word, bit) = Self::slot(counter);
        self.bitmap[word] & bit != 0
    }

    fn set(&mut self, counter: u64) {
        let (word, bit) = Self::slot(counter);
        self.bitmap[word] |= bit;
    }
}

/// Open-addressed map from node id to a dense index, with a fixed capacity set at construction.
///
/// Invariant: `index.len()` is a power of two at least twice `capacity`, so a probe always ends at
/// an empty slot; entries are never removed (a node that leaves keeps its slot until the owner is
/// rebuilt, e.g. on key rotation).
#[derive(Debug)]
pub(crate) struct SenderIndex {
    /// `EMPTY` or `(node id, dense index)`.
    index: Vec<(u32, u32)>,
    len: usize,
    capacity: usize,
}

const EMPTY: u32 = u32::MAX;

impl SenderIndex {
    pub(crate) fn with_capacity(capacity: usize) -> SenderIndex {
        assert!(capacity >= 1, "sender capacity must be at least 1");
        assert!(
            capacity < EMPTY as usize / 4,
            "sender capacity out of range"
        );
        let slots = (capacity * 2).next_power_of_two();
        SenderIndex {
            index: vec![(0, EMPTY); slots],
            len: 0,
            capacity,
        }
    }

    fn home(&self, node_id: u32) -> usize {
        // Fibonacci hashing: node ids are often small and consecutive.
        let mask = self.index.len() - 1;
        (node_id.wrapping_mul(0x9E37_79B9) as usize) & mask
    }

    /// The dense index of `node_id`, if present.
    pub(crate) fn get(&self, node_id: u32) -> Option<usize> {
        let mask = self.index.len() - 1;
        let mut slot = self.home(node_id);
        loop {
            let (id, dense) = self.index[slot];
            if dense == EMPTY {
                return None;
            }
            if id == node_id {
                return Some(dense as usize);
            }
            slot = (slot + 1) & mask;
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Inserts an absent `node_id`, returning its dense index (the previous `len`).
    pub(crate) fn insert(&mut self, node_id: u32) -> usize {
        assert!(!self.is_full(), "sender index full");
        debug_assert!(self.get(node_id).is_none());
        let mask = self.index.len() - 1;
        let mut slot = self.home(node_id);
        while self.index[slot].1 != EMPTY {
            slot = (slot + 1) & mask;
        }
        let dense = self.len;
        self.index[slot] = (node_id, dense as u32);
        self.len += 1;
        dense
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_against_a_naive_set() {
        // Fixed-seed xorshift walk of counters around a moving front, checked against a plain set.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut window = ReplayWindow::starting_at(1, 0);
        let mut seen = std::collections::BTreeSet::from([0u64]);
        let mut newest = 0u64;
        for _ in 0..200_000 {
            let r = next();
            let counter = match r % 4 {
                0 => newest + 1 + (r >> 8) % 3000,
                _ => newest.saturating_sub((r >> 8) % 1100),
            };
            let expected = if seen.contains(&counter) || newest - counter.min(newest) >= 1024 {
                Verdict::Replay
            } else {
                Verdict::Fresh
            };
            assert_eq!(
                window.check(1, counter),
                expected,
                "counter {counter} newest {newest}"
            );
            if expected == Verdict::Fresh {
                window.record(1, counter);
                seen.insert(counter);
                newest = newest.max(counter);
            }
        }
    }

    #[test]
    fn sender_index_fills_to_capacity() {
        let mut index = SenderIndex::with_capacity(5);
        for id in [7, 0, u32::MAX - 1, 1 << 31, 12345] {
            assert_eq!(index.get(id), None);
            let dense = index.insert(id);
            assert_eq!(index.get(id), Some(dense));
        }
        assert!(index.is_full());
        assert_eq!(index.get(8), None);
    }
}
