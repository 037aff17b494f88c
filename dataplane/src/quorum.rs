//! votequorum in the dataplane: the node runs it (totem-core), this module links it to rotord
//! over the control socket. Requests rotord forwards (`ToDataplane::Quorum`) are submitted to
//! the node and answered (`QuorumReply`) at once or once ordered; votequorum's events go up
//! in order (`QuorumUpdate`), followed by its state whenever it changed (`QuorumState`);
//! its notices are logged here under `[VOTEQ]`. Nothing of this is on the per-message path:
//! it runs once per loop turn and does nothing while votequorum is quiet.

use rotor_proto::control::FromDataplane;
use rotor_proto::dataplane_quorum::{
    NodeRecord, QuorumOp, QuorumReply, QuorumStart, QuorumState as StateRecord, QuorumUpdate,
    TieBreakerSetting,
};
use rotor_proto::Status;
use totem_core::votequorum::{
    Answer, QdeviceSettings, QuorumError, QuorumEvent, QuorumNotice, QuorumRequest, QuorumSettings,
    QuorumState, TieBreaker,
};
use totem_core::{Node, NodeId, RingId};

/// totem-core's settings from the start message's.
pub fn settings(q: &QuorumStart) -> QuorumSettings {
    QuorumSettings {
        expected_votes: q.expected_votes,
        nodelist_expected_votes: q.nodelist_expected_votes,
        votes: q.votes,
        two_node: q.two_node,
        wait_for_all: q.wait_for_all,
        wait_for_all_follows_two_node: q.wait_for_all_follows_two_node,
        last_man_standing: q.last_man_standing,
        last_man_standing_window_ms: q.last_man_standing_window_ms,
        auto_tie_breaker: match &q.auto_tie_breaker {
            TieBreakerSetting::Off => TieBreaker::Off,
            TieBreakerSetting::Lowest => TieBreaker::Lowest,
            TieBreakerSetting::Highest => TieBreaker::Highest,
            TieBreakerSetting::List(ids) => TieBreaker::List(ids.clone()),
        },
        allow_downscale: q.allow_downscale,
        expected_votes_tracking: q.expected_votes_tracking,
        qdevice: q.qdevice.map(|d| QdeviceSettings {
            votes: d.votes,
            timeout_ms: d.timeout_ms,
            sync_timeout_ms: d.sync_timeout_ms,
        }),
    }
}

fn tie_breaker(t: &TieBreaker) -> TieBreakerSetting {
    match t {
        TieBreaker::Off => TieBreakerSetting::Off,
        TieBreaker::Lowest => TieBreakerSetting::Lowest,
        TieBreaker::Highest => TieBreakerSetting::Highest,
        TieBreaker::List(ids) => TieBreakerSetting::List(ids.clone()),
    }
}

/// The record of votequorum's state.
pub fn state_record(s: &QuorumState) -> StateRecord {
    StateRecord {
        node: s.node.0,
        quorate: s.quorate,
        quorum: s.quorum,
        ring_rep: s.ring.rep,
        ring_seq: s.ring.seq,
        members: ids(&s.members),
        nodes: s
            .nodes
            .iter()
            .map(|n| NodeRecord {
                node: n.node.0,
                state: n.state.code(),
                votes: n.votes,
                expected_votes: n.expected_votes,
                flags: n.flags,
            })
            .collect(),
        qdevice_votes: s.qdevice_votes,
        qdevice_name: s.qdevice_name.clone(),
        two_node: s.two_node,
        wait_for_all: s.wait_for_all,
        wait_for_all_status: s.wait_for_all_status,
        last_man_standing: s.last_man_standing,
        auto_tie_breaker: tie_breaker(&s.auto_tie_breaker),
        allow_downscale: s.allow_downscale,
        expected_votes_tracking: s.expected_votes_tracking,
        ev_barrier: s.ev_barrier,
        ev_tracking_barrier: s.ev_tracking_barrier,
        lowest_node_id: s.lowest_node_id,
        highest_node_id: s.highest_node_id,
        qdevice_can_operate: s.qdevice_can_operate,
        qdevice_master_wins: s.qdevice_master_wins,
    }
}

fn ids(nodes: &[NodeId]) -> Vec<u32> {
    nodes.iter().map(|n| n.0).collect()
}

/// libvotequorum's status for a refusal, and the reason for a person.
pub fn status_of(e: &QuorumError) -> (Status, String) {
    let status = match e {
        QuorumError::InvalidParam(_) => Status::InvalidParam,
        QuorumError::NameNotFound(_) => Status::NameNotFound,
        QuorumError::NotExist(_) => Status::NotExist,
        QuorumError::Exist(_) => Status::Exist,
        QuorumError::Access(_) => Status::Access,
        QuorumError::TryAgain(_) => Status::TryAgain,
        QuorumError::MessageError(_) => Status::MessageError,
        QuorumError::NotProvider => Status::Access,
    };
    (status, e.to_string())
}

fn to_request(op: QuorumOp) -> QuorumRequest {
    match op {
        QuorumOp::SetExpected(v) => QuorumRequest::SetExpected(v),
        QuorumOp::SetVotes { node, votes } => QuorumRequest::SetVotes {
            node: NodeId(node),
            votes,
        },
        QuorumOp::Leaving => QuorumRequest::Leaving,
        QuorumOp::CancelWaitForAll => QuorumRequest::CancelWaitForAll,
        QuorumOp::QdeviceRegister { name } => QuorumRequest::QdeviceRegister { name },
        QuorumOp::QdeviceUnregister { name } => QuorumRequest::QdeviceUnregister { name },
        QuorumOp::QdeviceRename { old, new } => QuorumRequest::QdeviceRename { old, new },
        QuorumOp::QdevicePoll {
            name,
            cast_vote,
            ring_rep,
            ring_seq,
        } => QuorumRequest::QdevicePoll {
            name,
            cast_vote,
            ring: RingId {
                seq: ring_seq,
                rep: ring_rep,
            },
        },
        QuorumOp::QdeviceMasterWins { name, allow } => {
            QuorumRequest::QdeviceMasterWins { name, allow }
        }
    }
}

/// A notice as `[VOTEQ]` logs it, at corosync's level.
fn log_notice(n: &QuorumNotice) {
    match n {
        QuorumNotice::WaitingForAll { .. } => rotor_log::notice!(target: "VOTEQ", "{n}"),
        QuorumNotice::LastManStandingDisabled { .. } | QuorumNotice::QdeviceNameConflict { .. } => {
            tracing::warn!(target: "VOTEQ", "{n}")
        }
        QuorumNotice::WaitingForQdevicePoll { .. }
        | QuorumNotice::LostQdevice { .. }
        | QuorumNotice::WaitForAllCancelled { .. } => tracing::info!(target: "VOTEQ", "{n}"),
    }
}

/// The link between the node's votequorum and rotord.
#[derive(Default)]
pub struct QuorumLink {
    /// The state version last sent up.
    sent_version: Option<u64>,
    /// The request of a leave announced at shutdown, and whether it was answered.
    leave: Option<(u64, bool)>,
}

/// Requests rotord numbers from 1; the dataplane's own (the leave at shutdown) from here.
const OWN_REQUEST: u64 = 1 << 40;

impl QuorumLink {
    /// A request from rotord: submitted, answered now unless the answer comes once ordered.
    pub fn handle(&mut self, node: &mut Node, request: u32, op: QuorumOp) -> Option<FromDataplane> {
        let reply = |status, message| {
            Some(FromDataplane::QuorumReply(QuorumReply {
                request,
                status,
                message,
            }))
        };
        match node.submit_quorum(u64::from(request), to_request(op)) {
            Ok(Answer::Done) => reply(Status::Ok, String::new()),
            Ok(Answer::Later) => None,
            Err(e) => {
                let (status, message) = status_of(&e);
                reply(status, message)
            }
        }
    }

    /// votequorum's state, when it changed, then its events in order: what goes up to rotord.
    /// The state comes first so that whatever a client does on an answer or a notification
    /// (getinfo, typically) sees at least what the answer or notification says.
    pub fn pump(&mut self, node: &mut Node, mut send: impl FnMut(FromDataplane)) {
        if let Some(vq) = node.votequorum() {
            if self.sent_version != Some(vq.version()) {
                self.sent_version = Some(vq.version());
                send(FromDataplane::QuorumState(Box::new(state_record(
                    &vq.state(),
                ))));
            }
        }
        while let Some(event) = node.poll_quorum_event() {
            let update = match event {
                QuorumEvent::SyncStarted {
                    ring,
                    members,
                    joined,
                    left,
                } => QuorumUpdate::SyncStarted {
                    ring_rep: ring.rep,
                    ring_seq: ring.seq,
                    members: ids(&members),
                    joined: ids(&joined),
                    left: ids(&left),
                },
                QuorumEvent::Nodelist { ring, members } => QuorumUpdate::Nodelist {
                    ring_rep: ring.rep,
                    ring_seq: ring.seq,
                    members: ids(&members),
                },
                QuorumEvent::SyncActivated {
                    ring,
                    members,
                    joined,
                    left,
                } => QuorumUpdate::SyncActivated {
                    ring_rep: ring.rep,
                    ring_seq: ring.seq,
                    members: ids(&members),
                    joined: ids(&joined),
                    left: ids(&left),
                },
                QuorumEvent::Quorum {
                    quorate,
                    members,
                    ring,
                } => QuorumUpdate::Quorum {
                    quorate,
                    ring_rep: ring.rep,
                    ring_seq: ring.seq,
                    members: ids(&members),
                },
                QuorumEvent::NodeStates { quorate, nodes } => {
                    QuorumUpdate::NodeStates { quorate, nodes }
                }
                QuorumEvent::ExpectedVotes(v) => QuorumUpdate::ExpectedVotes(v),
                QuorumEvent::EvTrackingBarrier(v) => QuorumUpdate::EvTrackingBarrier(v),
                QuorumEvent::Reply { request, result } => {
                    if let Some((own, answered)) = self.leave.as_mut() {
                        if *own == request {
                            *answered = true;
                            continue;
                        }
                    }
                    let (status, message) = match result {
                        Ok(()) => (Status::Ok, String::new()),
                        Err(e) => status_of(&e),
                    };
                    let Ok(request) = u32::try_from(request) else {
                        continue;
                    };
                    send(FromDataplane::QuorumReply(QuorumReply {
                        request,
                        status,
                        message,
                    }));
                    continue;
                }
                QuorumEvent::Notice(n) => {
                    log_notice(&n);
                    continue;
                }
            };
            send(FromDataplane::QuorumUpdate(update));
        }
    }

    /// Announces this node's clean leave when allow_downscale asks for it (corosync does it at
    /// shutdown); `false` when there is nothing to announce.
    pub fn announce_leave(&mut self, node: &mut Node) -> bool {
        let downscale = node
            .votequorum()
            .is_some_and(|vq| vq.settings().allow_downscale);
        if !downscale {
            return false;
        }
        match node.submit_quorum(OWN_REQUEST, QuorumRequest::Leaving) {
            Ok(_) => {
                self.leave = Some((OWN_REQUEST, false));
                true
            }
            Err(e) => {
                tracing::warn!(target: "VOTEQ", "could not announce this node's leave: {e}");
                false
            }
        }
    }

    /// Whether the announced leave has been ordered.
    pub fn leave_done(&self) -> bool {
        self.leave.is_some_and(|(_, done)| done)
    }
}
