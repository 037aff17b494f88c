//! hdb-style handle tables: a handle is `generation << 32 | slot`, so a handle that was
//! finalized (its slot reused or not) and any handle never issued — 0 included — is
//! refused (`CS_ERR_BAD_HANDLE`), never a use of freed memory. A slot's generations start at
//! a random value, as hdb's check values are random: a handle of another library (a cpg
//! handle given to libquorum) or of another process is refused too, but for a 1 in 2^31
//! chance. An instance is shared as an `Arc`: a call that looked it up keeps it alive while
//! another thread finalizes it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

/// A random even generation for a new slot (empty: even), from the standard library's
/// per-process random hash keys.
fn random_generation(index: usize) -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_usize(index);
    (h.finish() as u32) & !1
}

struct Slot<T> {
    /// Odd while the slot holds an instance; bumped on insert and on remove.
    generation: u32,
    value: Option<Arc<T>>,
}

/// Instances of one kind (cpg handles, cmap handles …) by handle.
pub struct HandleTable<T> {
    slots: Mutex<Vec<Slot<T>>>,
}

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> HandleTable<T> {
    pub const fn new() -> Self {
        HandleTable {
            slots: Mutex::new(Vec::new()),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Slot<T>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `value`; returns its handle (never 0).
    pub fn insert(&self, value: T) -> u64 {
        let mut slots = self.slots();
        let index = match slots.iter().position(|s| s.value.is_none()) {
            Some(i) => i,
            None => {
                let generation = random_generation(slots.len());
                slots.push(Slot {
                    generation,
                    value: None,
                });
                slots.len() - 1
            }
        };
        let slot = &mut slots[index];
        slot.generation = slot.generation.wrapping_add(1) | 1;
        slot.value = Some(Arc::new(value));
        (u64::from(slot.generation) << 32) | index as u64
    }

    /// The instance of `handle`, if it is live.
    pub fn get(&self, handle: u64) -> Option<Arc<T>> {
        let (generation, index) = ((handle >> 32) as u32, (handle & 0xffff_ffff) as usize);
        let slots = self.slots();
        let slot = slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.value.clone()
    }

    /// Removes `handle`; the instance lives on while calls still hold it.
    pub fn remove(&self, handle: u64) -> Option<Arc<T>> {
        let (generation, index) = ((handle >> 32) as u32, (handle & 0xffff_ffff) as usize);
        let mut slots = self.slots();
        let slot = slots.get_mut(index)?;
        if slot.generation != generation || slot.value.is_none() {
            return None;
        }
        slot.generation = slot.generation.wrapping_add(1) & !1;
        slot.value.take()
    }
}

/// Locks an instance's state; a panic that poisoned it is already reported as
/// `CS_ERR_LIBRARY`, and the state stays usable.
pub fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_and_unknown_handles_are_refused() {
        let t = HandleTable::new();
        assert!(t.get(0).is_none());
        let a = t.insert("a");
        assert_ne!(a, 0);
        assert_eq!(*t.get(a).unwrap(), "a");
        assert!(t.remove(a).is_some());
        assert!(t.get(a).is_none());
        assert!(t.remove(a).is_none());
        // The slot is reused under a new generation: the old handle stays dead.
        let b = t.insert("b");
        assert_ne!(a, b);
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff);
        assert!(t.get(a).is_none());
        assert_eq!(*t.get(b).unwrap(), "b");
        assert!(t.get(b ^ (1 << 40)).is_none());
        assert!(t.get(u64::MAX).is_none());
    }

    #[test]
    fn handles_of_another_table_are_refused() {
        let (cpg, quorum) = (HandleTable::new(), HandleTable::new());
        let c = cpg.insert("cpg");
        let q = quorum.insert("quorum");
        // Both in slot 0, under generations drawn apart (equal with a 1 in 2^31 chance).
        assert_eq!(c & 0xffff_ffff, q & 0xffff_ffff);
        assert!(quorum.get(c).is_none());
        assert!(cpg.get(q).is_none());
    }
}
