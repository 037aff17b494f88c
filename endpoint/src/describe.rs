//! The words of every diagnostic: what the operator reads in the log, for the protocol's
//! notices (worded as corosync words the same events, so what an operator knows to look for is
//! there) and for foreign senders (naming the address and what to do). The core has no text of
//! its own; an embedding logs `Diagnostic`'s `Display` at its `severity`.

use std::fmt;

use totem_core::{GatherCause, NodeId, Notice, State};

use crate::foreign::{Corosync, Foreign};
use crate::{ConnectivityReport, Diagnostic, ForeignReport, PairEnd};

/// How much an operator needs a line (corosync's levels, without trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Notice,
    /// Only with `debug: on`.
    Debug,
}

impl<A> Diagnostic<A> {
    pub fn severity(&self) -> Severity {
        match self {
            Diagnostic::Totem(n) => notice_severity(n),
            Diagnostic::Foreign(r) => match r.sender {
                Foreign::DuplicateNodeId { .. } => Severity::Error,
                _ => Severity::Warning,
            },
            Diagnostic::Connectivity(_) => Severity::Warning,
            Diagnostic::Link(_) => Severity::Notice,
        }
    }
}

fn notice_severity(notice: &Notice) -> Severity {
    match notice {
        Notice::TokenNotReceived { .. } => Severity::Notice,
        Notice::TokenLost { state, .. } => match state {
            State::Operational => Severity::Notice,
            _ => Severity::Debug,
        },
        Notice::ConsensusTimeout { failed, .. } if !failed.is_empty() => Severity::Notice,
        Notice::ConsensusTimeout { .. } => Severity::Debug,
        Notice::FailedToReceive { .. } => Severity::Error,
        Notice::ConfigDiffers { .. } => Severity::Warning,
        Notice::Formed { .. } | Notice::LeaveNotReceived { .. } => Severity::Notice,
        Notice::PartialConnectivity { .. } => Severity::Warning,
        Notice::ConnectivityRestored => Severity::Notice,
        Notice::EnteredGather { .. }
        | Notice::EnteredCommit { .. }
        | Notice::EnteredRecovery { .. }
        | Notice::EnteredOperational { .. }
        | Notice::RetransmitRequested { .. }
        | Notice::Retransmitted { .. } => Severity::Debug,
    }
}

/// Node ids separated by spaces, as corosync lists them.
struct Ids<'a>(&'a [NodeId]);

impl fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

fn state_upper(state: State) -> &'static str {
    match state {
        State::Operational => "OPERATIONAL",
        State::Gather => "GATHER",
        State::Commit => "COMMIT",
        State::Recovery => "RECOVERY",
    }
}

/// A notice of the protocol as one log line.
pub fn notice(n: &Notice, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match n {
        Notice::TokenNotReceived { since_ms, token_ms } => write!(
            f,
            "Token has not been received in {since_ms} ms (token timeout {token_ms} ms)"
        ),
        Notice::TokenLost {
            state: State::Operational,
            token_ms,
            consensus_ms,
        } => write!(
            f,
            "A processor failed, forming new configuration: token timed out ({token_ms} ms), \
             waiting {consensus_ms} ms for consensus."
        ),
        Notice::TokenLost { state, .. } => {
            write!(
                f,
                "The token was lost in the {} state.",
                state_upper(*state)
            )
        }
        Notice::ConsensusTimeout {
            consensus_ms,
            failed,
        } => {
            write!(f, "The consensus timeout expired ({consensus_ms} ms); ")?;
            if failed.is_empty() {
                f.write_str("no commit token came from the agreed representative yet, trying again")
            } else {
                write!(
                    f,
                    "no agreement from: {}, forming a configuration without them",
                    Ids(failed)
                )
            }
        }
        Notice::FailedToReceive {
            ring,
            aru,
            seq,
            rotations,
        } => {
            let from = aru + 1;
            write!(
                f,
                "FAILED TO RECEIVE: frames {from:x} to {seq:x} of ring {ring} still missing after \
                 {rotations} token rotations; forming a new configuration without the members \
                 this node cannot hear (check the network between the nodes: loss, MTU, \
                 firewall)"
            )
        }
        Notice::EnteredGather { cause } => {
            f.write_str("entering GATHER state: ")?;
            match cause {
                GatherCause::Start => f.write_str("starting"),
                GatherCause::TokenLost(state) => {
                    write!(f, "the token was lost in the {} state", state_upper(*state))
                }
                GatherCause::Join { from } => write!(f, "join message from node {from}"),
                GatherCause::MergeDetected { from } => {
                    write!(f, "node {from} represents another ring (merge)")
                }
                GatherCause::FailedToReceive => f.write_str("failed to receive"),
                GatherCause::Connectivity => f.write_str(
                    "the largest set of nodes that all hear each other no longer matches the ring",
                ),
            }
        }
        Notice::EnteredCommit { ring } => write!(f, "entering COMMIT state (ring {ring})."),
        Notice::EnteredRecovery { ring } => write!(f, "entering RECOVERY state (ring {ring})."),
        Notice::EnteredOperational { ring } => {
            write!(f, "entering OPERATIONAL state (ring {ring}).")
        }
        Notice::Formed {
            ring,
            members,
            joined,
            left,
        } => {
            write!(f, "A new membership ({ring}) was formed. Members")?;
            if joined.is_empty() && left.is_empty() {
                // Nothing changed (a node's first ring alone, or the same members again): say
                // who is in it rather than nothing.
                return write!(f, ": {}", Ids(members));
            }
            if !joined.is_empty() {
                write!(f, " joined: {}", Ids(joined))?;
            }
            if !left.is_empty() {
                write!(f, " left: {}", Ids(left))?;
            }
            Ok(())
        }
        Notice::LeaveNotReceived { failed, .. } => {
            write!(
                f,
                "Failed to receive the leave message. failed: {}",
                Ids(failed)
            )
        }
        Notice::PartialConnectivity {
            broken,
            more,
            group,
        } => {
            // Without addresses (the endpoint adds them: `Diagnostic::Connectivity`).
            f.write_str("Partial connectivity: ")?;
            for (i, p) in broken.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                pair(
                    f,
                    (p.a, None::<&str>),
                    (p.b, None),
                    p.a_hears_b,
                    p.b_hears_a,
                )?;
            }
            connectivity_tail(f, *more, group)
        }
        Notice::ConnectivityRestored => f.write_str(
            "Connectivity restored: the nodes reported as not hearing each other do again (or \
             are gone)",
        ),
        Notice::ConfigDiffers {
            node,
            differences,
            truncated,
        } => {
            if differences.is_empty() {
                write!(
                    f,
                    "Node {node} is kept out of the ring: its configuration differs from this \
                     node's, and it does not say how (it may not list this node in its \
                     nodelist)"
                )?;
            } else {
                write!(
                    f,
                    "Node {node} is kept out of the ring: its configuration differs from this \
                     node's: {}",
                    differences.join("; ")
                )?;
            }
            if *truncated {
                f.write_str(" (its summary was cut to fit one frame: more may differ)")?;
            }
            f.write_str(
                ". Make corosync.conf agree on every node, then run rotor cfg -R (or restart \
                 the node whose file changed)",
            )
        }
        Notice::RetransmitRequested {
            ring,
            count,
            first,
            last,
        } => write!(
            f,
            "Retransmit request: {count} frames of ring {ring} missing, from {first:x} to {last:x}"
        ),
        Notice::Retransmitted {
            ring,
            count,
            first,
            last,
        } => write!(
            f,
            "Retransmitted {count} frames of ring {ring}, from {first:x} to {last:x}"
        ),
    }
}

/// "node 1 (198.18.0.1:5405)", or "node 1" without an address.
fn node_at<A: fmt::Display>(f: &mut fmt::Formatter<'_>, end: &PairEnd<A>) -> fmt::Result {
    match &end.1 {
        Some(addr) => write!(f, "node {} ({addr})", end.0),
        None => write!(f, "node {}", end.0),
    }
}

/// One broken pair, by the directions that do not work.
fn pair<A: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    a: PairEnd<A>,
    b: PairEnd<A>,
    a_hears_b: bool,
    b_hears_a: bool,
) -> fmt::Result {
    match (a_hears_b, b_hears_a) {
        (false, false) => {
            node_at(f, &a)?;
            f.write_str(" and ")?;
            node_at(f, &b)?;
            f.write_str(" do not hear each other")
        }
        (false, true) => {
            node_at(f, &a)?;
            f.write_str(" does not hear ")?;
            node_at(f, &b)?;
            f.write_str(" (the other way works)")
        }
        _ => {
            node_at(f, &b)?;
            f.write_str(" does not hear ")?;
            node_at(f, &a)?;
            f.write_str(" (the other way works)")
        }
    }
}

fn connectivity_tail(f: &mut fmt::Formatter<'_>, more: u32, group: &[NodeId]) -> fmt::Result {
    if more > 0 {
        write!(f, "; and {more} more pairs")?;
    }
    write!(
        f,
        ". Rings form of the largest sets of nodes that all hear each other; this node's: {}. \
         Check the network between these addresses (firewall rules, routing, a link losing one \
         direction).",
        Ids(group)
    )
}

/// A connectivity report, with addresses, as one log line.
pub fn connectivity<A: fmt::Display + Clone>(
    r: &ConnectivityReport<A>,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    f.write_str("Partial connectivity: ")?;
    for (i, p) in r.broken.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        pair(f, p.a.clone(), p.b.clone(), p.a_hears_b, p.b_hears_a)?;
    }
    connectivity_tail(f, r.more, &r.group)
}

fn corosync(c: Corosync, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match c {
        Corosync::Knet { node } => write!(f, "Corosync 3 on knet, nodeid {node}"),
        Corosync::TotemUdp { node } => write!(f, "Corosync 3 on udp/udpu, nodeid {node}"),
        Corosync::Corosync2 => f.write_str("Corosync 2"),
    }
}

/// A foreign sender's report as one log line.
pub fn foreign<A: fmt::Display>(r: &ForeignReport<A>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let from = &r.from;
    match r.sender {
        // corosync's wording for a wrong key, kept so that what operators search for matches.
        Foreign::InvalidDigest => write!(
            f,
            "Received message has invalid digest... ignoring (from {from}): every node needs the \
             same authkey"
        )?,
        Foreign::DuplicateNodeId { node } => write!(
            f,
            "A node at {from} uses this node's nodeid {node} (its frames carry our id and our \
             key): give every node its own nodeid in the nodelist"
        )?,
        Foreign::OtherCluster { cluster_hash, ours } => write!(
            f,
            "A node of another cluster (cluster name hash {cluster_hash:08x}, ours is \
             {ours:08x}) at {from} shares this port: give each cluster its own port or network, \
             or the same totem.cluster_name if it belongs to this cluster"
        )?,
        Foreign::CryptoModeMismatch { node } => write!(
            f,
            "Node {node} at {from} seals its frames in another crypto mode: set the same \
             totem.crypto_cipher and totem.crypto_hash on every node"
        )?,
        Foreign::Corosync(c) => {
            f.write_str("A Corosync node (")?;
            corosync(c, f)?;
            write!(
                f,
                ") at {from} is sending to this port: rotor and Corosync cannot share a cluster \
                 port; stop it, or give one of the two clusters another port or network"
            )?
        }
        Foreign::NotInNodelist { node } => write!(
            f,
            "Node {node} at {from} is not in the nodelist; add it to the nodelist of every \
             node, or check its nodeid and configuration"
        )?,
        // Also corosync's wording: to a node of this key, another key is an invalid digest.
        Foreign::UnknownKey { node, key_id, ours } => write!(
            f,
            "Received message has invalid digest... ignoring (from {from}): node {node} seals \
             under key {key_id:08x}, which this node does not hold (it seals under \
             {ours:08x}): every node needs the same authkey; a node that missed a key \
             rotation needs the cluster's new key file, then a restart"
        )?,
        Foreign::Unrecognised => write!(
            f,
            "Datagrams from {from} on the cluster port are not rotor frames (another program, a \
             rotor of another version, or a Corosync node with encryption is sending to this \
             port); dropped"
        )?,
    }
    if r.unreported > 0 {
        write!(f, " ({} more since the last report)", r.unreported)?;
    }
    Ok(())
}

impl<A: fmt::Display> fmt::Display for ForeignReport<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        foreign(self, f)
    }
}

impl<A: fmt::Display + Clone> fmt::Display for Diagnostic<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diagnostic::Totem(n) => notice(n, f),
            Diagnostic::Foreign(r) => foreign(r, f),
            Diagnostic::Connectivity(r) => connectivity(r, f),
            Diagnostic::Link(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use totem_core::RingId;

    fn line(n: Notice) -> String {
        Diagnostic::<&str>::Totem(n).to_string()
    }

    #[test]
    fn a_membership_line_states_its_lists() {
        let ring = RingId { rep: 1, seq: 8 };
        let ids = |v: &[u32]| v.iter().map(|n| NodeId(*n)).collect::<Vec<_>>();
        assert_eq!(
            line(Notice::Formed {
                ring,
                members: ids(&[1, 2]),
                joined: ids(&[2]),
                left: ids(&[3, 4]),
            }),
            "A new membership (1.8) was formed. Members joined: 2 left: 3 4"
        );
        assert_eq!(
            line(Notice::Formed {
                ring,
                members: ids(&[1]),
                joined: vec![],
                left: vec![],
            }),
            "A new membership (1.8) was formed. Members: 1"
        );
        assert_eq!(
            line(Notice::LeaveNotReceived {
                ring,
                failed: ids(&[3]),
            }),
            "Failed to receive the leave message. failed: 3"
        );
    }

    #[test]
    fn token_loss_reads_as_corosync_reads() {
        let lost = Notice::TokenLost {
            state: State::Operational,
            token_ms: 3000,
            consensus_ms: 3600,
        };
        assert_eq!(
            line(lost.clone()),
            "A processor failed, forming new configuration: token timed out (3000 ms), \
             waiting 3600 ms for consensus."
        );
        assert_eq!(notice_severity(&lost), Severity::Notice);
        assert_eq!(
            line(Notice::TokenNotReceived {
                since_ms: 2250,
                token_ms: 3000
            }),
            "Token has not been received in 2250 ms (token timeout 3000 ms)"
        );
        let in_commit = Notice::TokenLost {
            state: State::Commit,
            token_ms: 3000,
            consensus_ms: 3600,
        };
        assert_eq!(
            line(in_commit.clone()),
            "The token was lost in the COMMIT state."
        );
        assert_eq!(notice_severity(&in_commit), Severity::Debug);
    }

    #[test]
    fn a_connectivity_line_names_each_broken_pair_with_addresses() {
        let r = Diagnostic::Connectivity(ConnectivityReport {
            broken: vec![
                crate::PairReport {
                    a: (NodeId(1), Some("198.18.0.1:5405")),
                    b: (NodeId(3), Some("198.18.0.3:5405")),
                    a_hears_b: false,
                    b_hears_a: false,
                },
                crate::PairReport {
                    a: (NodeId(2), Some("198.18.0.2:5405")),
                    b: (NodeId(4), None),
                    a_hears_b: true,
                    b_hears_a: false,
                },
            ],
            more: 2,
            group: vec![NodeId(1), NodeId(2)],
        });
        assert_eq!(
            r.to_string(),
            "Partial connectivity: node 1 (198.18.0.1:5405) and node 3 (198.18.0.3:5405) do not \
             hear each other; node 4 does not hear node 2 (198.18.0.2:5405) (the other way \
             works); and 2 more pairs. Rings form of the largest sets of nodes that all hear \
             each other; this node's: 1 2. Check the network between these addresses (firewall \
             rules, routing, a link losing one direction)."
        );
        assert_eq!(r.severity(), Severity::Warning);
        assert_eq!(
            line(Notice::ConnectivityRestored),
            "Connectivity restored: the nodes reported as not hearing each other do again (or \
             are gone)"
        );
    }

    #[test]
    fn a_foreign_line_names_the_address_and_the_rest() {
        let r = Diagnostic::Foreign(ForeignReport {
            from: "198.18.0.4:5405",
            sender: Foreign::InvalidDigest,
            unreported: 12,
        });
        assert_eq!(
            r.to_string(),
            "Received message has invalid digest... ignoring (from 198.18.0.4:5405): every node \
             needs the same authkey (12 more since the last report)"
        );
        let r = Diagnostic::Foreign(ForeignReport {
            from: "10.0.0.9:5405",
            sender: Foreign::Corosync(Corosync::Knet { node: 4 }),
            unreported: 0,
        });
        assert!(r.to_string().starts_with(
            "A Corosync node (Corosync 3 on knet, nodeid 4) at 10.0.0.9:5405 is sending to this port"
        ));
        assert_eq!(r.severity(), Severity::Warning);
    }
}
