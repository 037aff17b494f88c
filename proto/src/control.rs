//! Messages on the SOCK_SEQPACKET socket between rotord and the dataplane process it
//! supervises. Low-rate by design (start-up, attaches, one status and stats report per
//! change or second, the dataplane's log lines), so a socket, whose hang-up also tells each
//! side that the other died, fits better than a ring. CPG sessions' descriptors travel beside `Session` as SCM_RIGHTS.
//!
//! The first message rotord sends is `Start`: everything the dataplane needs, resolved (the
//! totem settings with every derived value filled in, the authkey's bytes read once by
//! rotord, the crypto epoch, the transport rotord chose). The dataplane reads no config file
//! and no key file of its own. `Start` carries [`CONTROL_VERSION`]; a dataplane of another
//! version refuses it with `Failed { kind: Version }` (rotord and the dataplane are shipped
//! together, so this only catches a mixed installation).

use std::net::{IpAddr, SocketAddr};

use crate::change::{ChangeReport, ChangeRequest};
use crate::codec::{DecodeError, Reader, Writer};
use crate::dataplane_quorum::{QuorumOp, QuorumReply, QuorumStart, QuorumState, QuorumUpdate};
use crate::link::{LinkMode, LinkStart};
use crate::log::{LogConfig, LogRecord};
use crate::RingState;

pub const OP_START: u16 = 0x0400;
pub const OP_SESSION: u16 = 0x0401;
pub const OP_SHUTDOWN: u16 = 0x0402;
pub const OP_LOGGING: u16 = 0x0403;
pub const OP_CHANGE: u16 = 0x0405;
pub const OP_QUORUM: u16 = 0x0404;
pub const OP_RING: u16 = 0x0481;
pub const OP_STATS: u16 = 0x0482;
pub const OP_FAILED: u16 = 0x0483;
pub const OP_LOG: u16 = 0x0484;
pub const OP_QUORUM_REPLY: u16 = 0x0485;
pub const OP_QUORUM_UPDATE: u16 = 0x0486;
pub const OP_QUORUM_STATE: u16 = 0x0487;
pub const OP_CHANGE_REPORT: u16 = 0x0488;

/// The version of the messages below; `Start` carries it. 2: quorum settings in `Start`, the
/// quorum messages; 3: runtime changes (`Change`, `ChangeReport`); 4: the links (every link's
/// settings, addresses and peers, and the link mode, in place of one bind address and peer
/// list); 5: the links in a change round's answer (`Answer::Ready::links`: a reload adds or
/// removes links); 6: the transport and XDP interface of each link (in `LinkStart`, in place
/// of one for the node), with two map fds for each XDP link; 7: the links a change round's
/// answer adds on XDP (`ChangeRequest::Propose::xdp_links`), with their map fds beside it; 8:
/// the kernel-UDP provider (`DataplaneStart::kernel_udp`).
pub const CONTROL_VERSION: u16 = 8;

/// How a link on kernel UDP does its I/O (corosync has no such setting; `rotor.kernel_udp`).
/// The plain socket is the default: measured on netns hosts and loopback, io_uring's round
/// trip is 2-7× the socket's, sleeping or busy, and it carries no more (docs/BENCHMARKS.md,
/// "udp").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelUdpIo {
    /// A non-blocking socket, waited on with poll(2).
    #[default]
    Socket,
    /// io_uring, falling back to the socket (with the reason in the log) where the kernel
    /// refuses it.
    IoUring,
}

spelled_codes!(KernelUdpIo {
    Socket = 0, "socket";
    IoUring = 1, "io_uring";
});

/// How the dataplane waits for work (corosync has no such setting; `rotor.poll_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// Spin on the rings; needs a dedicated core.
    Busy,
    /// Spin a while after the last work, then sleep until woken.
    Adaptive,
    /// Always sleep until woken.
    Blocking,
    /// The dataplane picks busy when it has a core of its own to spare, adaptive otherwise,
    /// and says which and why.
    Auto,
}

spelled_codes!(PollMode {
    Busy = 0, "busy";
    Adaptive = 1, "adaptive";
    Blocking = 2, "blocking";
    Auto = 3, "auto";
});

/// The transport rotord chose for one of the dataplane's links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataplaneTransport {
    /// Kernel UDP sockets (plain, or io_uring as `DataplaneStart::kernel_udp` says).
    Udp,
    /// AF_XDP on the program rotord attached; failing to open is an error.
    Xdp,
    /// AF_XDP on the program rotord attached, kernel UDP when the sockets cannot open.
    XdpOrUdp,
}

impl DataplaneTransport {
    /// Whether the link runs on an XDP program rotord attached: its `xsks` and `counters`
    /// map fds travel beside the message that carries the link.
    pub fn is_xdp(self) -> bool {
        self != DataplaneTransport::Udp
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            DataplaneTransport::Udp => 0,
            DataplaneTransport::Xdp => 1,
            DataplaneTransport::XdpOrUdp => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<DataplaneTransport> {
        [
            DataplaneTransport::Udp,
            DataplaneTransport::Xdp,
            DataplaneTransport::XdpOrUdp,
        ]
        .into_iter()
        .find(|t| t.code() == code)
    }
}

/// IP multicast of frames for every member: the group (of the bind address's family) and TTL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastSettings {
    pub group: IpAddr,
    pub ttl: u8,
}

/// Everything a dataplane needs to run, resolved by rotord.
#[derive(Clone, PartialEq, Eq)]
pub struct DataplaneStart {
    pub node_id: u32,
    /// Every link, by link number. Invariant: at least one, link 0 first, numbers unique and
    /// ascending, every link listing the same peers (the decoder refuses anything else).
    pub links: Vec<LinkStart>,
    /// Which up links carry each peer's frames.
    pub link_mode: LinkMode,
    pub cluster_name: String,
    /// The crypto mode's wire byte (rotor-crypto's `CryptoMode::wire_byte`).
    pub crypto_mode: u8,
    /// The authkey's bytes; empty when the mode is none (no key is read then).
    pub authkey: Vec<u8>,
    /// The per-boot epoch of this dataplane: the totem incarnation and the crypto epoch. rotord
    /// makes it grow with every start (peers drop frames of an older epoch as stale).
    pub epoch: u32,
    /// The highest ring sequence this node has been part of (rotord keeps it across restarts).
    pub ring_seq_start: u64,
    /// Every totem setting by its corosync name, with its resolved value (derived values filled
    /// in): the dataplane sets its totem settings from exactly these.
    pub totem: Vec<(String, u32)>,
    pub multicast: Option<MulticastSettings>,
    pub poll_mode: PollMode,
    /// How long the adaptive mode spins after the last work.
    pub poll_spin_us: u32,
    /// How links on kernel UDP do their I/O.
    pub kernel_udp: KernelUdpIo,
    /// The CPU to pin the poll loop to.
    pub core: Option<u16>,
    /// Seed of the node's randomness (join delays, …).
    pub seed: u64,
    /// votequorum's settings when quorum{} names it as the provider; `None`: no provider
    /// (always quorate, rotord answers alone).
    pub quorum: Option<QuorumStart>,
}

impl std::fmt::Debug for DataplaneStart {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneStart")
            .field("node_id", &self.node_id)
            .field("links", &self.links)
            .field("link_mode", &self.link_mode)
            .field("cluster_name", &self.cluster_name)
            .field("crypto_mode", &self.crypto_mode)
            .field("authkey", &format_args!("<{} bytes>", self.authkey.len()))
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl DataplaneStart {
    /// This node's address on link 0 and the cluster port: the address the node is known by
    /// (its configuration identity, the XDP program's interface).
    pub fn bind(&self) -> SocketAddr {
        self.links[0].local
    }

    /// Every other configured node with its link 0 address.
    pub fn peers(&self) -> &[(u32, SocketAddr)] {
        &self.links[0].peers
    }
}

impl Drop for DataplaneStart {
    /// Wipes the key bytes (the bytes of an encoded message are the caller's to wipe).
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.authkey);
    }
}

/// rotord → dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToDataplane {
    /// The first message: what to run.
    Start(Box<DataplaneStart>),
    /// A CPG session whose descriptors come with this message; the peer's credentials as
    /// SO_PEERCRED gave them to rotord.
    Session { pid: i32, uid: u32, gid: u32 },
    /// Leave the ring cleanly and exit.
    Shutdown,
    /// The logging configuration: which lines to send up (sent after start and whenever it
    /// changes; until the first one every line goes up).
    Logging(LogConfig),
    /// A runtime change: ask for one, answer one, kill, shutdown, node-local settings.
    Change(ChangeRequest),
    /// A votequorum request; answered by `FromDataplane::QuorumReply` with its `request`.
    Quorum { request: u32, op: QuorumOp },
}

/// The ring as the dataplane reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingReport {
    pub state: RingState,
    /// The ring id: representative and sequence.
    pub ring_rep: u32,
    pub ring_seq: u64,
    /// The members of the ring, sorted.
    pub members: Vec<u32>,
    /// The transport's name (`udp`, `udp-uring`, `xdp`).
    pub transport: String,
}

/// Why a dataplane could not run. rotord decides from the kind whether a restart can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The settings cannot work (a value the core refuses): restarting cannot help.
    Config,
    /// The authkey is unusable: restarting cannot help.
    Key,
    /// The transport could not be opened (address, interface, privileges, XDP).
    Transport,
    /// `Start` came with another `CONTROL_VERSION`.
    Version,
    /// Anything else (an I/O error while running).
    Runtime,
}

impl FailureKind {
    const ALL: [FailureKind; 5] = [
        FailureKind::Config,
        FailureKind::Key,
        FailureKind::Transport,
        FailureKind::Version,
        FailureKind::Runtime,
    ];

    fn code(self) -> u8 {
        match self {
            FailureKind::Config => 0,
            FailureKind::Key => 1,
            FailureKind::Transport => 2,
            FailureKind::Version => 3,
            FailureKind::Runtime => 4,
        }
    }

    /// Whether starting the dataplane again with the same settings can succeed.
    pub fn restart_may_help(self) -> bool {
        matches!(self, FailureKind::Transport | FailureKind::Runtime)
    }
}

/// dataplane → rotord.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromDataplane {
    /// The ring state: sent at start and on every state or ring change.
    Ring(RingReport),
    /// Counters, as `(cmap key under stats., value)`: those new or changed since the last
    /// `Stats` of this dataplane (the first is whole); a key not sent keeps its value.
    Stats { counters: Vec<(String, u64)> },
    /// The dataplane cannot run and is exiting; `message` is for the operator.
    Failed { kind: FailureKind, message: String },
    /// A log line, for rotord's log. Sent without blocking: a full socket drops it (counted).
    Log(LogRecord),
    /// What the change service decided, in order, and the keys held.
    Change(ChangeReport),
    /// The answer to a `ToDataplane::Quorum`.
    QuorumReply(QuorumReply),
    /// What votequorum reported, in order.
    QuorumUpdate(QuorumUpdate),
    /// votequorum's state after a change.
    QuorumState(Box<QuorumState>),
}

impl ToDataplane {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            ToDataplane::Start(s) => encode_start(s, out),
            ToDataplane::Session { pid, uid, gid } => {
                Writer::new(out, OP_SESSION, 0)
                    .u32(*pid as u32)
                    .u32(*uid)
                    .u32(*gid);
            }
            ToDataplane::Shutdown => {
                Writer::new(out, OP_SHUTDOWN, 0);
            }
            ToDataplane::Logging(config) => config.write(&mut Writer::new(out, OP_LOGGING, 0)),
            ToDataplane::Change(change) => change.write(&mut Writer::new(out, OP_CHANGE, 0)),
            ToDataplane::Quorum { request, op } => {
                let mut w = Writer::new(out, OP_QUORUM, *request);
                op.write(&mut w);
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<ToDataplane, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let m = match env.op {
            OP_START => ToDataplane::Start(Box::new(decode_start(&mut r)?)),
            OP_SESSION => ToDataplane::Session {
                pid: r.u32("pid")? as i32,
                uid: r.u32("uid")?,
                gid: r.u32("gid")?,
            },
            OP_SHUTDOWN => ToDataplane::Shutdown,
            OP_LOGGING => ToDataplane::Logging(LogConfig::read(&mut r)?),
            OP_CHANGE => ToDataplane::Change(ChangeRequest::read(&mut r)?),
            OP_QUORUM => ToDataplane::Quorum {
                request: env.req_id,
                op: QuorumOp::read(&mut r)?,
            },
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok(m)
    }
}

pub(crate) fn put_addr(w: &mut Writer<'_>, a: SocketAddr) {
    match a.ip() {
        IpAddr::V4(v4) => w.u8(4).bytes(&v4.octets()),
        IpAddr::V6(v6) => w.u8(6).bytes(&v6.octets()),
    };
    w.u16(a.port());
}

fn get_ip(r: &mut Reader<'_>, family: u8, what: &'static str) -> Result<IpAddr, DecodeError> {
    let bytes = r.bytes(what)?;
    match (family, bytes.len()) {
        (4, 4) => Ok(IpAddr::from(<[u8; 4]>::try_from(bytes).expect("4 bytes"))),
        (6, 16) => Ok(IpAddr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes"))),
        _ => Err(DecodeError::BadValue(what)),
    }
}

pub(crate) fn get_addr(r: &mut Reader<'_>, what: &'static str) -> Result<SocketAddr, DecodeError> {
    let family = r.u8(what)?;
    let ip = get_ip(r, family, what)?;
    Ok(SocketAddr::new(ip, r.u16(what)?))
}

fn encode_start(s: &DataplaneStart, out: &mut Vec<u8>) {
    let mut w = Writer::new(out, OP_START, 0);
    w.u16(CONTROL_VERSION).u32(s.node_id);
    crate::link::write_links(&mut w, &s.links);
    crate::link::write_mode(&mut w, s.link_mode);
    w.str(&s.cluster_name)
        .u8(s.crypto_mode)
        .bytes(&s.authkey)
        .u32(s.epoch)
        .u64(s.ring_seq_start)
        .u32(s.totem.len() as u32);
    for (name, value) in &s.totem {
        w.str(name).u32(*value);
    }
    match s.multicast {
        None => {
            w.u8(0);
        }
        Some(m) => {
            let family = if m.group.is_ipv4() { 4 } else { 6 };
            w.u8(family);
            match m.group {
                IpAddr::V4(v4) => w.bytes(&v4.octets()),
                IpAddr::V6(v6) => w.bytes(&v6.octets()),
            };
            w.u8(m.ttl);
        }
    }
    w.u8(s.poll_mode.code())
        .u32(s.poll_spin_us)
        .u8(s.kernel_udp.code())
        .u32(s.core.map_or(u32::MAX, u32::from))
        .u64(s.seed);
    match &s.quorum {
        None => {
            w.u8(0);
        }
        Some(q) => {
            w.u8(1);
            q.write(&mut w);
        }
    }
}

fn decode_start(r: &mut Reader<'_>) -> Result<DataplaneStart, DecodeError> {
    let version = r.u16("version")?;
    if version != CONTROL_VERSION {
        return Err(DecodeError::Version(version));
    }
    let node_id = r.u32("node id")?;
    let links = crate::link::read_links(r)?;
    let link_mode = crate::link::read_mode(r)?;
    let cluster_name = r.str("cluster name")?.to_owned();
    let crypto_mode = r.u8("crypto mode")?;
    let authkey = r.bytes("authkey")?.to_vec();
    let epoch = r.u32("epoch")?;
    let ring_seq_start = r.u64("ring sequence")?;
    let n = r.count(8, "totem settings")?;
    let mut totem = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str("totem setting")?.to_owned();
        totem.push((name, r.u32("totem setting")?));
    }
    let multicast = match r.u8("multicast")? {
        0 => None,
        family => {
            let group = get_ip(r, family, "multicast group")?;
            Some(MulticastSettings {
                group,
                ttl: r.u8("multicast ttl")?,
            })
        }
    };
    let poll_mode =
        PollMode::from_code(r.u8("poll mode")?).ok_or(DecodeError::BadValue("poll mode"))?;
    let poll_spin_us = r.u32("poll spin")?;
    let kernel_udp =
        KernelUdpIo::from_code(r.u8("kernel udp")?).ok_or(DecodeError::BadValue("kernel udp"))?;
    let core = match r.u32("core")? {
        u32::MAX => None,
        c => Some(u16::try_from(c).map_err(|_| DecodeError::BadValue("core"))?),
    };
    let seed = r.u64("seed")?;
    let quorum = match r.u8("quorum")? {
        0 => None,
        1 => Some(QuorumStart::read(r)?),
        _ => return Err(DecodeError::BadValue("quorum")),
    };
    Ok(DataplaneStart {
        node_id,
        links,
        link_mode,
        cluster_name,
        crypto_mode,
        authkey,
        epoch,
        ring_seq_start,
        totem,
        multicast,
        poll_mode,
        poll_spin_us,
        kernel_udp,
        core,
        seed,
        quorum,
    })
}

impl FromDataplane {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FromDataplane::Ring(ring) => {
                let mut w = Writer::new(out, OP_RING, 0);
                w.u8(ring.state.code())
                    .u32(ring.ring_rep)
                    .u64(ring.ring_seq)
                    .str(&ring.transport)
                    .u32(ring.members.len() as u32);
                for m in &ring.members {
                    w.u32(*m);
                }
            }
            FromDataplane::Stats { counters } => {
                let mut w = Writer::new(out, OP_STATS, 0);
                w.u32(counters.len() as u32);
                for (k, v) in counters {
                    w.str(k).u64(*v);
                }
            }
            FromDataplane::Failed { kind, message } => {
                Writer::new(out, OP_FAILED, 0).u8(kind.code()).str(message);
            }
            FromDataplane::Log(record) => record.write(&mut Writer::new(out, OP_LOG, 0)),
            FromDataplane::Change(report) => {
                report.write(&mut Writer::new(out, OP_CHANGE_REPORT, 0))
            }
            FromDataplane::QuorumReply(reply) => {
                reply.write(&mut Writer::new(out, OP_QUORUM_REPLY, 0))
            }
            FromDataplane::QuorumUpdate(update) => {
                update.write(&mut Writer::new(out, OP_QUORUM_UPDATE, 0))
            }
            FromDataplane::QuorumState(state) => {
                state.write(&mut Writer::new(out, OP_QUORUM_STATE, 0))
            }
        }
    }

    pub fn decode(buf: &[u8]) -> Result<FromDataplane, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let m = match env.op {
            OP_RING => {
                let state =
                    RingState::from_code(r.u8("state")?).ok_or(DecodeError::BadValue("state"))?;
                let ring_rep = r.u32("ring")?;
                let ring_seq = r.u64("ring")?;
                let transport = r.str("transport")?.to_owned();
                let n = r.count(4, "members")?;
                let members = (0..n).map(|_| r.u32("member")).collect::<Result<_, _>>()?;
                FromDataplane::Ring(RingReport {
                    state,
                    ring_rep,
                    ring_seq,
                    members,
                    transport,
                })
            }
            OP_STATS => {
                let n = r.count(12, "counters")?;
                let mut counters = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = r.str("counter")?.to_owned();
                    counters.push((k, r.u64("counter")?));
                }
                FromDataplane::Stats { counters }
            }
            OP_FAILED => {
                let code = r.u8("failure kind")?;
                let kind = FailureKind::ALL
                    .into_iter()
                    .find(|k| k.code() == code)
                    .ok_or(DecodeError::BadValue("failure kind"))?;
                FromDataplane::Failed {
                    kind,
                    message: r.str("failure message")?.to_owned(),
                }
            }
            OP_LOG => FromDataplane::Log(LogRecord::read(&mut r)?),
            OP_CHANGE_REPORT => FromDataplane::Change(ChangeReport::read(&mut r)?),
            OP_QUORUM_REPLY => FromDataplane::QuorumReply(QuorumReply::read(&mut r)?),
            OP_QUORUM_UPDATE => FromDataplane::QuorumUpdate(QuorumUpdate::read(&mut r)?),
            OP_QUORUM_STATE => FromDataplane::QuorumState(Box::new(QuorumState::read(&mut r)?)),
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{Answer, ChangeKindRecord, RoundRecord};
    use crate::dataplane_quorum::{NodeRecord, QdeviceStart, TieBreakerSetting};
    use crate::link::LinkSettings;
    use crate::log::{DebugSetting, Level, LogSettings, SyslogFacility, Timestamp};
    use crate::Status;

    #[test]
    fn each_spelled_value_round_trips_through_its_name_and_its_byte() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            names: &[&str],
            name: fn(T) -> &'static str,
            from_name: fn(&str) -> Option<T>,
            code: fn(T) -> u8,
            from_code: fn(u8) -> Option<T>,
        ) {
            for (i, v) in all.iter().enumerate() {
                assert_eq!(name(*v), names[i]);
                assert_eq!(from_name(names[i]), Some(*v));
                assert_eq!(code(*v), i as u8, "{v:?}: bytes follow ALL's order");
                assert_eq!(from_code(code(*v)), Some(*v));
            }
            assert_eq!(from_name("nonsense"), None);
            assert_eq!(from_code(all.len() as u8), None);
        }
        check(
            &PollMode::ALL,
            &PollMode::NAMES,
            PollMode::name,
            PollMode::from_name,
            PollMode::code,
            PollMode::from_code,
        );
        check(
            &KernelUdpIo::ALL,
            &KernelUdpIo::NAMES,
            KernelUdpIo::name,
            KernelUdpIo::from_name,
            KernelUdpIo::code,
            KernelUdpIo::from_code,
        );
        assert_eq!(PollMode::NAMES, ["busy", "adaptive", "blocking", "auto"]);
        assert_eq!(KernelUdpIo::NAMES, ["socket", "io_uring"]);
    }

    fn logging() -> LogConfig {
        LogConfig {
            timestamp: Timestamp::On,
            fileline: true,
            syslog_facility: SyslogFacility::Local(3),
            all: LogSettings {
                to_syslog: false,
                to_logfile: true,
                logfile: Some("/var/log/rotor.log".into()),
                ..LogSettings::default()
            },
            subsys: vec![(
                "CPG".into(),
                LogSettings {
                    debug: DebugSetting::Trace,
                    syslog_priority: Level::Crit,
                    ..LogSettings::default()
                },
            )],
        }
    }

    #[test]
    fn impossible_logging_values_are_refused() {
        let mut buf = Vec::new();
        ToDataplane::Logging(logging()).encode(&mut buf);
        // The timestamp byte comes right after the envelope.
        buf[crate::codec::ENVELOPE_LEN] = 9;
        assert_eq!(
            ToDataplane::decode(&buf),
            Err(DecodeError::BadValue("timestamp"))
        );
    }

    fn start() -> DataplaneStart {
        DataplaneStart {
            node_id: 2,
            links: vec![
                LinkStart {
                    settings: LinkSettings::resolve(0, 3000, None, None, None, None, None).unwrap(),
                    local: "198.18.0.2:5405".parse().unwrap(),
                    peers: vec![
                        (1, "198.18.0.1:5405".parse().unwrap()),
                        (3, "[2001:2::3]:5405".parse().unwrap()),
                    ],
                    transport: DataplaneTransport::XdpOrUdp,
                    interface: Some("eth0".into()),
                },
                LinkStart {
                    settings: LinkSettings::resolve(3, 3000, Some(4), Some(10), None, None, None)
                        .unwrap(),
                    local: "198.19.0.2:5406".parse().unwrap(),
                    peers: vec![
                        (1, "198.19.0.1:5406".parse().unwrap()),
                        (3, "198.19.0.3:5406".parse().unwrap()),
                    ],
                    transport: DataplaneTransport::Udp,
                    interface: None,
                },
            ],
            link_mode: LinkMode::Rr,
            cluster_name: "prod".into(),
            crypto_mode: 1,
            authkey: vec![7; 256],
            epoch: 1_700_000_000,
            ring_seq_start: 44,
            totem: vec![("token".into(), 3000), ("netmtu".into(), 1500)],
            multicast: Some(MulticastSettings {
                group: "239.192.1.2".parse().unwrap(),
                ttl: 1,
            }),
            poll_mode: PollMode::Auto,
            poll_spin_us: 10,
            kernel_udp: KernelUdpIo::IoUring,
            core: Some(1),
            seed: 99,
            quorum: Some(QuorumStart {
                expected_votes: None,
                nodelist_expected_votes: Some(3),
                votes: 1,
                two_node: false,
                wait_for_all: true,
                wait_for_all_follows_two_node: false,
                last_man_standing: true,
                last_man_standing_window_ms: 10_000,
                auto_tie_breaker: TieBreakerSetting::List(vec![3, 1]),
                allow_downscale: false,
                expected_votes_tracking: true,
                qdevice: Some(QdeviceStart {
                    votes: 2,
                    timeout_ms: 10_000,
                    sync_timeout_ms: 30_000,
                }),
                ev_tracking_barrier: 5,
            }),
        }
    }

    #[test]
    fn links_that_do_not_agree_are_refused() {
        let mut buf = Vec::new();
        let mut s = start();
        s.links[1].peers.pop();
        ToDataplane::Start(Box::new(s)).encode(&mut buf);
        assert_eq!(
            ToDataplane::decode(&buf),
            Err(DecodeError::BadValue("links"))
        );
        let mut s = start();
        s.links.swap(0, 1);
        buf.clear();
        ToDataplane::Start(Box::new(s)).encode(&mut buf);
        assert_eq!(
            ToDataplane::decode(&buf),
            Err(DecodeError::BadValue("links"))
        );
        // A change round's answer is held to the same rules: without link 0 it is refused.
        buf.clear();
        ToDataplane::Change(ChangeRequest::Propose {
            round: RoundRecord { node: 1, seq: 2 },
            answer: Answer::Ready {
                totem: Vec::new(),
                nodelist: Vec::new(),
                authkey: None,
                quorum: None,
                links: start().links[1..].to_vec(),
            },
            xdp_links: Vec::new(),
        })
        .encode(&mut buf);
        assert_eq!(
            ToDataplane::decode(&buf),
            Err(DecodeError::BadValue("links"))
        );
    }

    #[test]
    fn an_answer_names_the_links_it_adds_on_xdp() {
        let propose = |links: Vec<LinkStart>, xdp_links: Vec<u8>| {
            let mut buf = Vec::new();
            ToDataplane::Change(ChangeRequest::Propose {
                round: RoundRecord { node: 1, seq: 3 },
                answer: Answer::Ready {
                    totem: Vec::new(),
                    nodelist: Vec::new(),
                    authkey: None,
                    quorum: None,
                    links,
                },
                xdp_links,
            })
            .encode(&mut buf);
            buf
        };
        let mut links = start().links.clone();
        links[1].transport = DataplaneTransport::Xdp;
        links[1].interface = Some("eth1".into());
        let buf = propose(links.clone(), vec![3]);
        match ToDataplane::decode(&buf) {
            Ok(ToDataplane::Change(ChangeRequest::Propose { xdp_links, .. })) => {
                assert_eq!(xdp_links, [3])
            }
            other => panic!("{other:?}"),
        }
        // A link the answer runs on kernel UDP, or does not have, has no maps to come with.
        let refused = Err(DecodeError::BadValue("xdp links"));
        assert_eq!(
            ToDataplane::decode(&propose(start().links.clone(), vec![3])),
            refused
        );
        assert_eq!(
            ToDataplane::decode(&propose(links.clone(), vec![5])),
            refused
        );
        // Twice, or out of order.
        assert_eq!(ToDataplane::decode(&propose(links, vec![3, 3])), refused);
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        let mut no_extras = start();
        no_extras.authkey.clear();
        no_extras.links[0].interface = None;
        no_extras.links[1].transport = DataplaneTransport::Xdp;
        no_extras.links[1].interface = Some("eth1".into());
        no_extras.multicast = None;
        no_extras.core = None;
        no_extras.quorum = None;
        for m in [
            ToDataplane::Start(Box::new(start())),
            ToDataplane::Start(Box::new(no_extras)),
            ToDataplane::Session {
                pid: 10,
                uid: 0,
                gid: 0,
            },
            ToDataplane::Shutdown,
            ToDataplane::Logging(LogConfig::default()),
            ToDataplane::Logging(logging()),
            ToDataplane::Change(ChangeRequest::Ask {
                request: 3,
                kind: ChangeKindRecord::Reload,
            }),
            ToDataplane::Change(ChangeRequest::Ask {
                request: 4,
                kind: ChangeKindRecord::RotateKey {
                    path: "/etc/corosync/authkey.new".into(),
                },
            }),
            ToDataplane::Change(ChangeRequest::Propose {
                round: RoundRecord { node: 2, seq: 7 },
                answer: Answer::Ready {
                    totem: vec![("token".into(), 3650)],
                    nodelist: vec![
                        (1, "198.18.0.1:5405".parse().unwrap()),
                        (4, "[2001:2::4]:5405".parse().unwrap()),
                    ],
                    authkey: Some(vec![9; 256]),
                    quorum: start().quorum.clone(),
                    links: start().links.clone(),
                },
                xdp_links: Vec::new(),
            }),
            ToDataplane::Change(ChangeRequest::Propose {
                round: RoundRecord { node: 2, seq: 8 },
                answer: Answer::Ready {
                    totem: Vec::new(),
                    nodelist: Vec::new(),
                    authkey: None,
                    quorum: None,
                    links: start().links[..1].to_vec(),
                },
                xdp_links: Vec::new(),
            }),
            ToDataplane::Change(ChangeRequest::Propose {
                round: RoundRecord { node: 1, seq: 1 },
                answer: Answer::Refused {
                    reason: "corosync.conf:3: totem.cluster_name cannot change".into(),
                },
                xdp_links: Vec::new(),
            }),
            ToDataplane::Change(ChangeRequest::Kill {
                node: 3,
                reason: "Killed by rotor cfg".into(),
            }),
            ToDataplane::Change(ChangeRequest::AnnounceShutdown),
            ToDataplane::Change(ChangeRequest::Settings {
                totem: vec![("token".into(), 5000), ("consensus".into(), 6000)],
            }),
            ToDataplane::Quorum {
                request: 7,
                op: QuorumOp::SetVotes { node: 2, votes: 3 },
            },
            ToDataplane::Quorum {
                request: 8,
                op: QuorumOp::QdevicePoll {
                    name: "Qdevice".into(),
                    cast_vote: true,
                    ring_rep: 1,
                    ring_seq: 12,
                },
            },
            ToDataplane::Quorum {
                request: 9,
                op: QuorumOp::Leaving,
            },
        ] {
            m.encode(&mut buf);
            assert_eq!(ToDataplane::decode(&buf).unwrap(), m);
            for cut in 0..buf.len() {
                assert!(
                    ToDataplane::decode(&buf[..cut]).is_err(),
                    "{m:?} cut at {cut}"
                );
            }
            for cut in 0..buf.len() {
                assert!(ToDataplane::decode(&buf[..cut]).is_err(), "cut at {cut}");
            }
        }
        for m in [
            FromDataplane::Ring(RingReport {
                state: RingState::Operational,
                ring_rep: 1,
                ring_seq: 4,
                members: vec![1, 2],
                transport: "udp".into(),
            }),
            FromDataplane::Stats {
                counters: vec![("srp.tokens".into(), 5)],
            },
            FromDataplane::Failed {
                kind: FailureKind::Key,
                message: "authkey too short".into(),
            },
            FromDataplane::Log(LogRecord {
                level: Level::Notice,
                subsys: "TOTEM".into(),
                file: "runner.rs".into(),
                line: 120,
                message: "A processor failed, forming new configuration".into(),
                unix_time_ns: 1_700_000_000_123_456_789,
            }),
            FromDataplane::Change(ChangeReport::Asked {
                request: 3,
                round: Some(RoundRecord { node: 1, seq: 2 }),
                error: String::new(),
            }),
            FromDataplane::Change(ChangeReport::Asked {
                request: 4,
                round: None,
                error: "the send queue is full; try again".into(),
            }),
            FromDataplane::Change(ChangeReport::Requested {
                round: RoundRecord { node: 1, seq: 2 },
                kind: ChangeKindRecord::Reload,
            }),
            FromDataplane::Change(ChangeReport::Decided {
                round: RoundRecord { node: 1, seq: 2 },
                kind: ChangeKindRecord::RotateKey { path: "/k".into() },
                applied: false,
                reasons: vec!["node 2: refused".into(), "node 3: too".into()],
                listed: true,
            }),
            FromDataplane::Change(ChangeReport::KeyRetired {
                key_id: 0xdead_beef,
                sealing: 7,
            }),
            FromDataplane::Change(ChangeReport::Killed {
                by: 2,
                reason: "Killed by rotor cfg".into(),
            }),
            FromDataplane::Change(ChangeReport::ShuttingDown { node: 3 }),
            FromDataplane::Change(ChangeReport::Keys {
                sealing: 5,
                held: vec![5, 6],
                unknown: vec![(3, 9)],
            }),
            FromDataplane::QuorumReply(QuorumReply {
                request: 7,
                status: Status::InvalidParam,
                message: "expected votes 2 is lower than the 3 votes present".into(),
            }),
            FromDataplane::QuorumUpdate(QuorumUpdate::SyncStarted {
                ring_rep: 1,
                ring_seq: 8,
                members: vec![1, 2, 3],
                joined: vec![3],
                left: vec![],
            }),
            FromDataplane::QuorumUpdate(QuorumUpdate::SyncActivated {
                ring_rep: 1,
                ring_seq: 8,
                members: vec![1, 2],
                joined: vec![],
                left: vec![3],
            }),
            FromDataplane::QuorumUpdate(QuorumUpdate::Nodelist {
                ring_rep: 1,
                ring_seq: 8,
                members: vec![1, 2, 3],
            }),
            FromDataplane::QuorumUpdate(QuorumUpdate::Quorum {
                quorate: true,
                ring_rep: 1,
                ring_seq: 8,
                members: vec![1, 2, 3],
            }),
            FromDataplane::QuorumUpdate(QuorumUpdate::NodeStates {
                quorate: false,
                nodes: vec![(1, 1), (2, 2), (0, 0)],
            }),
            FromDataplane::QuorumUpdate(QuorumUpdate::ExpectedVotes(4)),
            FromDataplane::QuorumUpdate(QuorumUpdate::EvTrackingBarrier(4)),
            FromDataplane::QuorumState(Box::new(QuorumState {
                node: 1,
                quorate: true,
                quorum: 2,
                ring_rep: 1,
                ring_seq: 8,
                members: vec![1, 2, 3],
                nodes: vec![NodeRecord {
                    node: 1,
                    state: 1,
                    votes: 1,
                    expected_votes: 3,
                    flags: 1,
                }],
                qdevice_votes: 0,
                qdevice_name: "Qdevice".into(),
                two_node: false,
                wait_for_all: true,
                wait_for_all_status: false,
                last_man_standing: false,
                auto_tie_breaker: TieBreakerSetting::Highest,
                allow_downscale: false,
                expected_votes_tracking: false,
                ev_barrier: 3,
                ev_tracking_barrier: 0,
                lowest_node_id: Some(1),
                highest_node_id: None,
                qdevice_can_operate: true,
                qdevice_master_wins: false,
            })),
        ] {
            m.encode(&mut buf);
            assert_eq!(FromDataplane::decode(&buf).unwrap(), m);
            for cut in 0..buf.len() {
                assert!(FromDataplane::decode(&buf[..cut]).is_err());
            }
        }
    }

    #[test]
    fn another_version_is_refused() {
        let mut buf = Vec::new();
        ToDataplane::Start(Box::new(start())).encode(&mut buf);
        // The version follows the 8-byte envelope.
        buf[8] = buf[8].wrapping_add(1);
        assert!(matches!(
            ToDataplane::decode(&buf),
            Err(DecodeError::Version(_))
        ));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let text = format!("{:?}", start());
        assert!(text.contains("<256 bytes>"), "{text}");
        assert!(!text.contains("7, 7"), "{text}");
    }
}
