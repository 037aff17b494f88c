//! A running node's endpoint with its next timeout remembered. The run loop asks every node
//! when it next needs `handle_timeout`, twice per step; asking the endpoint each time walked
//! every peer's links of every node at every step, O(nodes²) per datagram, most of a 64-node
//! run. The answer depends on the endpoint's state alone (not on the time asked, and nothing
//! in the endpoint changes behind a shared reference), so it stays right until the endpoint
//! is next borrowed mutably, which forgets it: the remembered answer is always the one asking
//! now would give, and a run is step for step the same.

use std::cell::Cell;
use std::ops::{Deref, DerefMut};

use rotor_endpoint::Endpoint;
use totem_core::Instant;

use super::SimAddr;

pub(super) struct TimedEndpoint {
    endpoint: Endpoint<SimAddr>,
    /// `Endpoint::poll_timeout` as of the last mutable borrow; `None`: not asked since.
    next_timeout: Cell<Option<Option<Instant>>>,
}

impl TimedEndpoint {
    pub(super) fn new(endpoint: Endpoint<SimAddr>) -> TimedEndpoint {
        TimedEndpoint {
            endpoint,
            next_timeout: Cell::new(None),
        }
    }

    /// `Endpoint::poll_timeout`, asked once per change of the endpoint.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        if let Some(known) = self.next_timeout.get() {
            return known;
        }
        let asked = self.endpoint.poll_timeout();
        self.next_timeout.set(Some(asked));
        asked
    }
}

impl Deref for TimedEndpoint {
    type Target = Endpoint<SimAddr>;

    fn deref(&self) -> &Endpoint<SimAddr> {
        &self.endpoint
    }
}

impl DerefMut for TimedEndpoint {
    /// Any mutable borrow may change the timers: the remembered answer is forgotten.
    fn deref_mut(&mut self) -> &mut Endpoint<SimAddr> {
        self.next_timeout.set(None);
        &mut self.endpoint
    }
}
