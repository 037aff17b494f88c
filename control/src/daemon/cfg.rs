//! cfg requests that need more than the cmap database: what the service hands the daemon to
//! carry out (`CfgAction`: reload, key rotation, kill, a cmap write of a config key), and the
//! vote on a shutdown request (`ShutdownVote`, corosync's cfg.c: every client that tracks is
//! asked; a REQUEST goes ahead when all say yes, a REGARDLESS once all answered or the timeout
//! passed; a client that leaves counts as yes; no answer in time is a no).

use std::time::{Duration, Instant};

use rotor_proto::cfg::ShutdownFlags;
use rotor_proto::Status;

use crate::cmap::Value;

/// A client of the cmap/cfg socket, for as long as it is attached (never reused).
pub use super::quorum::ClientId;

/// `cfg.shutdown_timeout` when cmap does not set it (corosync's DEFAULT_SHUTDOWN_TIMEOUT).
pub const SHUTDOWN_TIMEOUT_DEFAULT: Duration = Duration::from_millis(5000);

/// A request the daemon carries out, answered later with the client's request id.
#[derive(Clone, Debug, PartialEq)]
pub enum CfgAction {
    /// `rotor cfg -R`: a change round of every member.
    Reload { client: ClientId, req_id: u32 },
    /// `rotor cfg --rotate-key PATH`.
    RotateKey {
        client: ClientId,
        req_id: u32,
        path: String,
    },
    /// `rotor cfg -k NODE`.
    Kill {
        client: ClientId,
        req_id: u32,
        node: u32,
        reason: String,
    },
    /// A client's set (`Some`) or delete (`None`) of a key the config file stands for.
    CmapWrite {
        client: ClientId,
        req_id: u32,
        key: String,
        value: Option<Value>,
    },
}

/// A shutdown being voted on.
#[derive(Debug)]
pub struct ShutdownVote {
    /// Who asked, and its request id (answered with the outcome).
    pub asker: (ClientId, u32),
    pub flags: ShutdownFlags,
    /// The tracking clients asked, and their answer so far.
    pub voters: Vec<(ClientId, Option<bool>)>,
    pub deadline: Instant,
}

/// How a vote ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Shutdown,
    /// Called off: `Busy` (a no), or `Timeout`.
    Cancelled(Status),
}

impl ShutdownVote {
    /// Whether the vote is over at `now`, and how.
    pub fn verdict(&self, now: Instant) -> Option<Verdict> {
        let answered = self.voters.iter().all(|(_, a)| a.is_some());
        let yes = self.voters.iter().all(|(_, a)| *a == Some(true));
        if answered {
            return Some(if yes || self.flags == ShutdownFlags::Regardless {
                Verdict::Shutdown
            } else {
                Verdict::Cancelled(Status::Busy)
            });
        }
        if now >= self.deadline {
            return Some(if self.flags == ShutdownFlags::Regardless {
                Verdict::Shutdown
            } else {
                Verdict::Cancelled(Status::Timeout)
            });
        }
        None
    }

    /// Records `client`'s answer; false when it was not asked.
    pub fn answer(&mut self, client: ClientId, yes: bool) -> bool {
        match self.voters.iter_mut().find(|(c, _)| *c == client) {
            Some(v) => {
                v.1 = Some(yes);
                true
            }
            None => false,
        }
    }

    /// A voter detached: its leaving is a yes.
    pub fn gone(&mut self, client: ClientId) {
        self.answer(client, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(flags: ShutdownFlags, voters: &[ClientId]) -> ShutdownVote {
        ShutdownVote {
            asker: (1, 7),
            flags,
            voters: voters.iter().map(|c| (*c, None)).collect(),
            deadline: Instant::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn a_request_needs_every_yes_regardless_only_answers() {
        let now = Instant::now();
        let mut v = vote(ShutdownFlags::Request, &[2, 3]);
        assert_eq!(v.verdict(now), None);
        assert!(v.answer(2, true));
        assert!(!v.answer(9, true), "not asked");
        assert_eq!(v.verdict(now), None);
        v.answer(3, false);
        assert_eq!(v.verdict(now), Some(Verdict::Cancelled(Status::Busy)));
        let mut v = vote(ShutdownFlags::Request, &[2, 3]);
        v.answer(2, true);
        v.gone(3);
        assert_eq!(v.verdict(now), Some(Verdict::Shutdown));
        let mut v = vote(ShutdownFlags::Regardless, &[2]);
        v.answer(2, false);
        assert_eq!(v.verdict(now), Some(Verdict::Shutdown));
        // No answer in time.
        let v = vote(ShutdownFlags::Request, &[2]);
        assert_eq!(
            v.verdict(v.deadline),
            Some(Verdict::Cancelled(Status::Timeout))
        );
        let v = vote(ShutdownFlags::Regardless, &[2]);
        assert_eq!(v.verdict(v.deadline), Some(Verdict::Shutdown));
    }
}
