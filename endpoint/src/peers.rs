//! The peer table: each configured node's id and the address its frames go to. Generic over the
//! address, so the dataplane uses socket addresses and the simulator its own.

use thiserror::Error;

/// A nodelist the endpoint cannot use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PeerError {
    #[error("node id {node} appears twice in the nodelist")]
    Duplicate { node: u32 },
    #[error("node id {node} is this node's own id; list only the other nodes as peers")]
    IsSelf { node: u32 },
    #[error("node id 0 is reserved; give every node a nodeid of 1 or more")]
    Zero,
}

/// Every other configured node, sorted by id.
#[derive(Debug, Clone)]
pub struct Peers<A> {
    /// Invariant: sorted by id, ids unique, never 0 or this node's id.
    ids: Vec<u32>,
    /// `addresses[i]` is the address of `ids[i]`.
    addresses: Vec<A>,
}

impl<A: Copy> Peers<A> {
    /// The table of `peers` for node `me`.
    pub fn new(me: u32, mut peers: Vec<(u32, A)>) -> Result<Peers<A>, PeerError> {
        peers.sort_by_key(|(id, _)| *id);
        if let Some(w) = peers.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(PeerError::Duplicate { node: w[0].0 });
        }
        if peers.iter().any(|(id, _)| *id == 0) {
            return Err(PeerError::Zero);
        }
        if peers.iter().any(|(id, _)| *id == me) {
            return Err(PeerError::IsSelf { node: me });
        }
        Ok(Peers {
            ids: peers.iter().map(|(id, _)| *id).collect(),
            addresses: peers.iter().map(|(_, a)| *a).collect(),
        })
    }

    /// The address of node `id`, if it is configured.
    pub fn address(&self, id: u32) -> Option<A> {
        self.ids
            .binary_search(&id)
            .ok()
            .map(|at| self.addresses[at])
    }

    pub fn contains(&self, id: u32) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Every peer's address, in node id order.
    pub fn addresses(&self) -> &[A] {
        &self.addresses
    }

    /// Every peer's id and address, in node id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, A)> + '_ {
        self.ids.iter().copied().zip(self.addresses.iter().copied())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_refusals() {
        let peers = Peers::new(2, vec![(3, 'c'), (1, 'a'), (7, 'g')]).unwrap();
        assert_eq!(peers.address(1), Some('a'));
        assert_eq!(peers.address(7), Some('g'));
        assert_eq!(peers.address(2), None);
        assert_eq!(peers.addresses(), &['a', 'c', 'g']);
        assert_eq!(
            Peers::new(2, vec![(3, 'c'), (3, 'd')]).unwrap_err(),
            PeerError::Duplicate { node: 3 }
        );
        assert_eq!(
            Peers::new(2, vec![(2, 'b')]).unwrap_err(),
            PeerError::IsSelf { node: 2 }
        );
        assert_eq!(Peers::new(2, vec![(0, 'z')]).unwrap_err(), PeerError::Zero);
    }
}
