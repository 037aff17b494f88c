//! Runtime changes on the control socket between rotord and the dataplane: rotord asks for a
//! change round (a reload, a key rotation), answers the rounds its node is asked for (what the
//! node's config file says now, or why it cannot take it), asks for kills and shutdown
//! announcements and sets node-local totem settings (cmap writes); the dataplane reports what
//! the ordered change service decided, in order, and which keys it holds. The key's bytes
//! travel here as in `Start` (read once by rotord; wiped when the record is dropped).

use std::net::SocketAddr;

use crate::codec::{DecodeError, Reader, Writer};
use crate::control::{get_addr, put_addr};
use crate::dataplane_quorum::QuorumStart;
use crate::link::{read_links, write_links, LinkStart};

/// A change round's name: the node that asked and its count of rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoundRecord {
    pub node: u32,
    pub seq: u32,
}

impl std::fmt::Display for RoundRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.seq)
    }
}

/// What a round changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKindRecord {
    /// Every member reads its config file again (`rotor cfg -R`).
    Reload,
    /// Every member installs the key in the file at `path` (`rotor cfg --rotate-key`).
    RotateKey { path: String },
}

/// A node's answer to a round.
#[derive(Clone, PartialEq, Eq)]
pub enum Answer {
    /// What the node would run with: every totem setting resolved for the new nodelist, the
    /// nodelist with addresses (this node too unless it is removed), and the key to seal under
    /// afterwards when it differs from the current one.
    Ready {
        totem: Vec<(String, u32)>,
        nodelist: Vec<(u32, SocketAddr)>,
        authkey: Option<Vec<u8>>,
        /// votequorum's settings from the node's quorum{}, when it runs votequorum.
        quorum: Option<QuorumStart>,
        /// Every link the node would run, link 0 first, as in `Start`: a reload may add or
        /// remove links 1–7 and the nodes on each (this node's links when it is removed).
        links: Vec<LinkStart>,
    },
    /// Why the node cannot take it (naming the file, line and key).
    Refused { reason: String },
}

impl std::fmt::Debug for Answer {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Ready {
                totem,
                nodelist,
                authkey,
                quorum,
                links,
            } => f
                .debug_struct("Ready")
                .field("totem", totem)
                .field("nodelist", nodelist)
                .field("authkey", &authkey.as_ref().map(|k| k.len()))
                .field("quorum", quorum)
                .field("links", links)
                .finish(),
            Answer::Refused { reason } => {
                f.debug_struct("Refused").field("reason", reason).finish()
            }
        }
    }
}

impl Drop for Answer {
    /// Wipes the key bytes.
    fn drop(&mut self) {
        if let Answer::Ready {
            authkey: Some(key), ..
        } = self
        {
            zeroize::Zeroize::zeroize(key);
        }
    }
}

/// rotord → dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeRequest {
    /// Ask every member for a change; answered by `ChangeReport::Asked` with `request`.
    Ask {
        request: u32,
        kind: ChangeKindRecord,
    },
    /// This node's answer to `round`. `xdp_links`: the links the answer adds on XDP (their
    /// `LinkStart::transport`), whose program rotord attached for this round; each link's
    /// `xsks` and `counters` map fds travel beside the message (SCM_RIGHTS), two per link in
    /// this order, so the dataplane opens the link's AF_XDP socket as it answers.
    Propose {
        round: RoundRecord,
        answer: Answer,
        xdp_links: Vec<u8>,
    },
    /// Ask node `node` to leave the cluster and stop.
    Kill { node: u32, reason: String },
    /// Announce this node's orderly shutdown to every member.
    AnnounceShutdown,
    /// Run with these totem settings on this node alone (a cmap write of a totem key).
    Settings { totem: Vec<(String, u32)> },
}

/// dataplane → rotord, in the order the change service produced them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeReport {
    /// The answer to `ChangeRequest::Ask`: the round's name, or why none was asked for.
    Asked {
        request: u32,
        round: Option<RoundRecord>,
        error: String,
    },
    /// A member asked for a change: rotord answers with `ChangeRequest::Propose`.
    Requested {
        round: RoundRecord,
        kind: ChangeKindRecord,
    },
    /// The round is decided, the same on every member. Applied: the dataplane already runs
    /// what this node proposed; `listed` is false when that nodelist leaves this node out.
    Decided {
        round: RoundRecord,
        kind: ChangeKindRecord,
        applied: bool,
        reasons: Vec<String>,
        listed: bool,
    },
    /// The key `key_id` no longer opens frames (wiped): every member seals under `sealing`.
    KeyRetired { key_id: u32, sealing: u32 },
    /// Node `by` asked this node to leave the cluster and stop.
    Killed { by: u32, reason: String },
    /// A member (this node too) announced its orderly shutdown.
    ShuttingDown { node: u32 },
    /// The keys: the one this node seals under, those it opens, and peers heard sealing
    /// under a key it does not hold (node, key), recently.
    Keys {
        sealing: u32,
        held: Vec<u32>,
        unknown: Vec<(u32, u32)>,
    },
}

fn put_kind(w: &mut Writer<'_>, kind: &ChangeKindRecord) {
    match kind {
        ChangeKindRecord::Reload => {
            w.u8(1);
        }
        ChangeKindRecord::RotateKey { path } => {
            w.u8(2).str(path);
        }
    }
}

fn get_kind(r: &mut Reader<'_>) -> Result<ChangeKindRecord, DecodeError> {
    Ok(match r.u8("change kind")? {
        1 => ChangeKindRecord::Reload,
        2 => ChangeKindRecord::RotateKey {
            path: r.str("key path")?.to_owned(),
        },
        _ => return Err(DecodeError::BadValue("change kind")),
    })
}

fn put_round(w: &mut Writer<'_>, round: RoundRecord) {
    w.u32(round.node).u32(round.seq);
}

fn get_round(r: &mut Reader<'_>) -> Result<RoundRecord, DecodeError> {
    Ok(RoundRecord {
        node: r.u32("round")?,
        seq: r.u32("round")?,
    })
}

fn put_totem(w: &mut Writer<'_>, totem: &[(String, u32)]) {
    w.u32(totem.len() as u32);
    for (name, value) in totem {
        w.str(name).u32(*value);
    }
}

fn get_totem(r: &mut Reader<'_>) -> Result<Vec<(String, u32)>, DecodeError> {
    let n = r.count(8, "totem settings")?;
    let mut totem = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str("totem setting")?.to_owned();
        totem.push((name, r.u32("totem setting")?));
    }
    Ok(totem)
}

fn put_strings(w: &mut Writer<'_>, list: &[String]) {
    w.u32(list.len() as u32);
    for s in list {
        w.str(s);
    }
}

fn get_strings(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<String>, DecodeError> {
    let n = r.count(4, what)?;
    (0..n).map(|_| r.str(what).map(str::to_owned)).collect()
}

fn get_u32s(r: &mut Reader<'_>, what: &'static str) -> Result<Vec<u32>, DecodeError> {
    let n = r.count(4, what)?;
    (0..n).map(|_| r.u32(what)).collect()
}

impl ChangeRequest {
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        match self {
            ChangeRequest::Ask { request, kind } => {
                w.u8(1).u32(*request);
                put_kind(w, kind);
            }
            ChangeRequest::Propose {
                round,
                answer,
                xdp_links,
            } => {
                w.u8(2);
                put_round(w, *round);
                match answer {
                    Answer::Ready {
                        totem,
                        nodelist,
                        authkey,
                        quorum,
                        links,
                    } => {
                        w.u8(0);
                        put_totem(w, totem);
                        w.u32(nodelist.len() as u32);
                        for (id, addr) in nodelist {
                            w.u32(*id);
                            put_addr(w, *addr);
                        }
                        match authkey {
                            None => w.u8(0),
                            Some(key) => w.u8(1).bytes(key),
                        };
                        match quorum {
                            None => {
                                w.u8(0);
                            }
                            Some(q) => {
                                w.u8(1);
                                q.write(w);
                            }
                        }
                        write_links(w, links);
                    }
                    Answer::Refused { reason } => {
                        w.u8(1).str(reason);
                    }
                }
                w.bytes(xdp_links);
            }
            ChangeRequest::Kill { node, reason } => {
                w.u8(3).u32(*node).str(reason);
            }
            ChangeRequest::AnnounceShutdown => {
                w.u8(4);
            }
            ChangeRequest::Settings { totem } => {
                w.u8(5);
                put_totem(w, totem);
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<ChangeRequest, DecodeError> {
        Ok(match r.u8("change request")? {
            1 => ChangeRequest::Ask {
                request: r.u32("request")?,
                kind: get_kind(r)?,
            },
            2 => {
                let round = get_round(r)?;
                let answer = match r.u8("answer")? {
                    0 => {
                        let totem = get_totem(r)?;
                        // An entry is at least id (4), family (1), length (4), 4 bytes, port (2).
                        let n = r.count(15, "nodelist")?;
                        let mut nodelist = Vec::with_capacity(n);
                        for _ in 0..n {
                            let id = r.u32("node id")?;
                            nodelist.push((id, get_addr(r, "node address")?));
                        }
                        let authkey = match r.u8("authkey")? {
                            0 => None,
                            1 => Some(r.bytes("authkey")?.to_vec()),
                            _ => return Err(DecodeError::BadValue("authkey")),
                        };
                        let quorum = match r.u8("quorum")? {
                            0 => None,
                            1 => Some(QuorumStart::read(r)?),
                            _ => return Err(DecodeError::BadValue("quorum")),
                        };
                        Answer::Ready {
                            totem,
                            nodelist,
                            authkey,
                            quorum,
                            links: read_links(r)?,
                        }
                    }
                    1 => Answer::Refused {
                        reason: r.str("reason")?.to_owned(),
                    },
                    _ => return Err(DecodeError::BadValue("answer")),
                };
                let xdp_links = r.bytes("xdp links")?;
                // Ascending links of the answer that run XDP: the fds beside pair up with them.
                let on_xdp = |n: &u8| match &answer {
                    Answer::Ready { links, .. } => links
                        .iter()
                        .any(|l| l.settings.number == *n && l.transport.is_xdp()),
                    Answer::Refused { .. } => false,
                };
                if !xdp_links.windows(2).all(|w| w[0] < w[1]) || !xdp_links.iter().all(on_xdp) {
                    return Err(DecodeError::BadValue("xdp links"));
                }
                ChangeRequest::Propose {
                    round,
                    answer,
                    xdp_links: xdp_links.to_vec(),
                }
            }
            3 => ChangeRequest::Kill {
                node: r.u32("node")?,
                reason: r.str("reason")?.to_owned(),
            },
            4 => ChangeRequest::AnnounceShutdown,
            5 => ChangeRequest::Settings {
                totem: get_totem(r)?,
            },
            _ => return Err(DecodeError::BadValue("change request")),
        })
    }
}

impl ChangeReport {
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        match self {
            ChangeReport::Asked {
                request,
                round,
                error,
            } => {
                w.u8(1).u32(*request);
                match round {
                    None => {
                        w.u8(0);
                    }
                    Some(round) => {
                        w.u8(1);
                        put_round(w, *round);
                    }
                }
                w.str(error);
            }
            ChangeReport::Requested { round, kind } => {
                w.u8(2);
                put_round(w, *round);
                put_kind(w, kind);
            }
            ChangeReport::Decided {
                round,
                kind,
                applied,
                reasons,
                listed,
            } => {
                w.u8(3);
                put_round(w, *round);
                put_kind(w, kind);
                w.u8(u8::from(*applied)).u8(u8::from(*listed));
                put_strings(w, reasons);
            }
            ChangeReport::KeyRetired { key_id, sealing } => {
                w.u8(4).u32(*key_id).u32(*sealing);
            }
            ChangeReport::Killed { by, reason } => {
                w.u8(5).u32(*by).str(reason);
            }
            ChangeReport::ShuttingDown { node } => {
                w.u8(6).u32(*node);
            }
            ChangeReport::Keys {
                sealing,
                held,
                unknown,
            } => {
                w.u8(7).u32(*sealing).u32(held.len() as u32);
                for k in held {
                    w.u32(*k);
                }
                w.u32(unknown.len() as u32);
                for (node, key) in unknown {
                    w.u32(*node).u32(*key);
                }
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<ChangeReport, DecodeError> {
        Ok(match r.u8("change report")? {
            1 => {
                let request = r.u32("request")?;
                let round = match r.u8("round")? {
                    0 => None,
                    1 => Some(get_round(r)?),
                    _ => return Err(DecodeError::BadValue("round")),
                };
                ChangeReport::Asked {
                    request,
                    round,
                    error: r.str("error")?.to_owned(),
                }
            }
            2 => ChangeReport::Requested {
                round: get_round(r)?,
                kind: get_kind(r)?,
            },
            3 => {
                let round = get_round(r)?;
                let kind = get_kind(r)?;
                let applied = r.u8("applied")? != 0;
                let listed = r.u8("listed")? != 0;
                ChangeReport::Decided {
                    round,
                    kind,
                    applied,
                    reasons: get_strings(r, "reasons")?,
                    listed,
                }
            }
            4 => ChangeReport::KeyRetired {
                key_id: r.u32("key")?,
                sealing: r.u32("key")?,
            },
            5 => ChangeReport::Killed {
                by: r.u32("node")?,
                reason: r.str("reason")?.to_owned(),
            },
            6 => ChangeReport::ShuttingDown {
                node: r.u32("node")?,
            },
            7 => {
                let sealing = r.u32("key")?;
                let held = get_u32s(r, "keys")?;
                let n = r.count(8, "unknown keys")?;
                let mut unknown = Vec::with_capacity(n);
                for _ in 0..n {
                    unknown.push((r.u32("node")?, r.u32("key")?));
                }
                ChangeReport::Keys {
                    sealing,
                    held,
                    unknown,
                }
            }
            _ => return Err(DecodeError::BadValue("change report")),
        })
    }
}
