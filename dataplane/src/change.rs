//! Runtime changes in the dataplane: rotord's requests (ask for a round, answer one, kill,
//! announce a shutdown, node-local totem settings) go to the endpoint, and the endpoint's
//! change events and key state go back up to rotord in order. The decisions are the ordered
//! change service's (totem-core's `reconfig`); the endpoint swaps the peer table and keys at
//! the point where a round applies. Nothing here decides anything of its own.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rotor_crypto::Keys;
use rotor_endpoint::{Change, ChangeInput, LinkConfig};
use rotor_proto::change::{Answer, ChangeKindRecord, ChangeReport, ChangeRequest, RoundRecord};
use rotor_proto::control::FromDataplane;
use totem_core::{ChangeEvent, ChangeKind, NodeId, Outcome, RoundId, TotemSettings};
use xdp_prog::SteerMaps;

use crate::runner::Runner;
use crate::service::Control;
use crate::transport::Transport;

fn round_record(round: RoundId) -> RoundRecord {
    RoundRecord {
        node: round.node.0,
        seq: round.seq,
    }
}

fn kind_record(kind: &ChangeKind) -> ChangeKindRecord {
    match kind {
        ChangeKind::Reload => ChangeKindRecord::Reload,
        ChangeKind::RotateKey { path } => ChangeKindRecord::RotateKey { path: path.clone() },
    }
}

/// The keys as reported: the sealing key, the keys held, peers under unknown keys.
type Keys3 = (u32, Vec<u32>, Vec<(u32, u32)>);

/// What the dataplane last told rotord of its keys.
#[derive(Default)]
pub struct KeysReported(Option<Keys3>);

/// The maps of the links an answer adds on XDP, from the descriptors beside it: `xsks` and
/// `counters` of each link of `xdp_links`, in that order, each checked to be the map it
/// should be.
fn added_maps(xdp_links: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<(u8, SteerMaps)>, String> {
    if fds.len() != 2 * xdp_links.len() {
        return Err(format!(
            "the answer came with {} descriptors, but the {} link(s) it adds on XDP need {}",
            fds.len(),
            xdp_links.len(),
            2 * xdp_links.len()
        ));
    }
    let mut fds = fds.into_iter();
    xdp_links
        .iter()
        .map(|&n| {
            let xsks = fds.next().expect("counted above");
            let counters = fds.next().expect("counted above");
            SteerMaps::from_fds(xsks, counters)
                .map(|maps| (n, maps))
                .map_err(|e| format!("link {n}: {e}"))
        })
        .collect()
}

/// Carries out one of rotord's change requests; `fds` came beside it.
pub fn handle<T: Transport>(
    runner: &mut Runner<T>,
    control: &mut Control,
    request: ChangeRequest,
    fds: Vec<OwnedFd>,
) {
    match request {
        ChangeRequest::Ask { request, kind } => {
            let kind = match kind {
                ChangeKindRecord::Reload => ChangeKind::Reload,
                ChangeKindRecord::RotateKey { path } => ChangeKind::RotateKey { path },
            };
            let (round, error) = match runner.endpoint_mut().request_change(kind) {
                Ok(round) => (Some(round_record(round)), String::new()),
                Err(e) => (None, e.to_string()),
            };
            control.send_in_order(&FromDataplane::Change(ChangeReport::Asked {
                request,
                round,
                error,
            }));
        }
        ChangeRequest::Propose {
            round,
            answer,
            xdp_links,
        } => {
            let round = RoundId {
                node: NodeId(round.node),
                seq: round.seq,
            };
            let input = match input_of(runner.cluster_name(), &answer) {
                Ok(input) => input,
                Err(reason) => ChangeInput::Refused { reason },
            };
            // The sockets of links the answer adds open now (AF_XDP on the maps beside it for
            // those rotord attached a program for): one that cannot is a refusal.
            let input = match (&input, &answer) {
                (ChangeInput::Ready { .. }, Answer::Ready { links, .. }) => {
                    match added_maps(&xdp_links, fds)
                        .and_then(|maps| runner.open_links(round, links, maps))
                    {
                        Ok(()) => input,
                        Err(reason) => {
                            tracing::error!(target: "CFG", "change round {round}: {reason}");
                            ChangeInput::Refused { reason }
                        }
                    }
                }
                _ => input,
            };
            if let Err(e) = runner.endpoint_mut().propose(round, input) {
                tracing::warn!(target: "CFG", "answer to change round {round} dropped: {e}");
            }
        }
        ChangeRequest::Kill { node, reason } => runner.node_mut().kill(NodeId(node), &reason),
        ChangeRequest::AnnounceShutdown => runner.node_mut().announce_shutdown(),
        ChangeRequest::Settings { totem } => {
            let applied = TotemSettings::from_named(totem.iter().map(|(k, v)| (k.as_str(), *v)))
                .and_then(|t| runner.node_mut().set_totem(t).map_err(|e| e.to_string()));
            match applied {
                Ok(()) => tracing::debug!(target: "TOTEM", "totem settings changed on this node"),
                Err(e) => tracing::error!(
                    target: "TOTEM",
                    "totem settings from cmap not applied: {e}"
                ),
            }
        }
    }
}

/// The endpoint's input for rotord's answer.
fn input_of(cluster_name: &str, answer: &Answer) -> Result<ChangeInput<SocketAddr>, String> {
    Ok(match answer {
        Answer::Refused { reason } => ChangeInput::Refused {
            reason: reason.clone(),
        },
        Answer::Ready {
            totem,
            nodelist,
            authkey,
            quorum,
            links,
        } => ChangeInput::Ready {
            totem: TotemSettings::from_named(totem.iter().map(|(k, v)| (k.as_str(), *v)))?,
            nodelist: nodelist.clone(),
            keys: match authkey {
                None => None,
                Some(bytes) => {
                    Some(Keys::from_authkey_bytes(bytes, cluster_name).map_err(|e| e.to_string())?)
                }
            },
            quorum: quorum
                .as_ref()
                .map(|q| Box::new(crate::quorum::settings(q))),
            links: Some(links.iter().map(LinkConfig::from).collect()),
        },
    })
}

/// Sends rotord every change event the endpoint has, in order, and the keys when they changed.
pub fn report<T: Transport>(
    runner: &mut Runner<T>,
    control: &mut Control,
    reported: &mut KeysReported,
) {
    while let Some(change) = runner.endpoint_mut().poll_change() {
        let report = match change {
            Change::Core(ChangeEvent::Requested { round, kind }) => ChangeReport::Requested {
                round: round_record(round),
                kind: kind_record(&kind),
            },
            Change::Core(ChangeEvent::Decided {
                round,
                kind,
                outcome,
            }) => {
                let (applied, reasons) = match outcome {
                    Outcome::Applied => (true, Vec::new()),
                    Outcome::Refused { reasons } => (false, reasons),
                };
                ChangeReport::Decided {
                    round: round_record(round),
                    kind: kind_record(&kind),
                    applied,
                    reasons,
                    listed: runner.endpoint().listed(),
                }
            }
            Change::Core(ChangeEvent::KeyAgreed { .. }) => continue,
            Change::KeyRetired { key_id } => ChangeReport::KeyRetired {
                key_id,
                sealing: runner.endpoint().sealing_key(),
            },
            Change::Core(ChangeEvent::Killed { by, reason }) => {
                ChangeReport::Killed { by: by.0, reason }
            }
            Change::Core(ChangeEvent::ShuttingDown { node }) => {
                ChangeReport::ShuttingDown { node: node.0 }
            }
        };
        control.send_in_order(&FromDataplane::Change(report));
    }
    let now = runner.now();
    let endpoint = runner.endpoint();
    let keys = (
        endpoint.sealing_key(),
        endpoint.keys_held(),
        endpoint.unknown_keys(now),
    );
    if reported.0.as_ref() != Some(&keys) {
        control.send_in_order(&FromDataplane::Change(ChangeReport::Keys {
            sealing: keys.0,
            held: keys.1.clone(),
            unknown: keys.2.clone(),
        }));
        reported.0 = Some(keys);
    }
}
