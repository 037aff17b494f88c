//! Messages on the SOCK_SEQPACKET socket between rotord and the dataplane process it
//! supervises. Low-rate by design (start-up, attaches, one status and stats report per
//! change or second, the dataplane's log lines), so a socket, whose hang-up also tells each
//! side that the other died, fits better than a ring. CPG sessions' descriptors travel beside `Session` as SCM_RIGHTS.

use crate::codec::{DecodeError, Reader, Writer};
use crate::log::{LogConfig, LogRecord};

pub const OP_SESSION: u16 = 0x0401;
pub const OP_SHUTDOWN: u16 = 0x0402;
pub const OP_LOGGING: u16 = 0x0403;
pub const OP_RING: u16 = 0x0481;
pub const OP_STATS: u16 = 0x0482;
pub const OP_LOG: u16 = 0x0483;

/// rotord → dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToDataplane {
    /// A CPG session whose descriptors come with this message; the peer's credentials as
    /// SO_PEERCRED gave them to rotord.
    Session { pid: i32, uid: u32, gid: u32 },
    /// Leave the ring cleanly and exit.
    Shutdown,
    /// The logging configuration: which lines to send up (sent after start and whenever it
    /// changes; until the first one every line goes up).
    Logging(LogConfig),
}

/// dataplane → rotord.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromDataplane {
    /// The ring state after a change: sent at start and on every regular configuration or
    /// state change.
    Ring {
        state: String,
        ring_rep: u32,
        ring_seq: u64,
        members: Vec<u32>,
        transport: String,
    },
    /// Counters, as `(cmap key under stats., value)`.
    Stats { counters: Vec<(String, u64)> },
    /// A log line, for rotord's log. Sent without blocking: a full socket drops it (counted).
    Log(LogRecord),
}

impl ToDataplane {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
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
        }
    }

    pub fn decode(buf: &[u8]) -> Result<ToDataplane, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let m = match env.op {
            OP_SESSION => ToDataplane::Session {
                pid: r.u32("pid")? as i32,
                uid: r.u32("uid")?,
                gid: r.u32("gid")?,
            },
            OP_SHUTDOWN => ToDataplane::Shutdown,
            OP_LOGGING => ToDataplane::Logging(LogConfig::read(&mut r)?),
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok(m)
    }
}

impl FromDataplane {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FromDataplane::Ring {
                state,
                ring_rep,
                ring_seq,
                members,
                transport,
            } => {
                let mut w = Writer::new(out, OP_RING, 0);
                w.str(state)
                    .u32(*ring_rep)
                    .u64(*ring_seq)
                    .str(transport)
                    .u32(members.len() as u32);
                for m in members {
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
            FromDataplane::Log(record) => record.write(&mut Writer::new(out, OP_LOG, 0)),
        }
    }

    pub fn decode(buf: &[u8]) -> Result<FromDataplane, DecodeError> {
        let (env, mut r) = Reader::new(buf)?;
        let m = match env.op {
            OP_RING => {
                let state = r.str("state")?.to_owned();
                let ring_rep = r.u32("ring")?;
                let ring_seq = r.u64("ring")?;
                let transport = r.str("transport")?.to_owned();
                let n = r.count(4, "members")?;
                let members = (0..n).map(|_| r.u32("member")).collect::<Result<_, _>>()?;
                FromDataplane::Ring {
                    state,
                    ring_rep,
                    ring_seq,
                    members,
                    transport,
                }
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
            OP_LOG => FromDataplane::Log(LogRecord::read(&mut r)?),
            op => return Err(DecodeError::UnknownOp(op)),
        };
        r.finish()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{DebugSetting, Level, LogSettings, SyslogFacility, Timestamp};

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

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        for m in [
            ToDataplane::Session {
                pid: 10,
                uid: 0,
                gid: 0,
            },
            ToDataplane::Shutdown,
            ToDataplane::Logging(LogConfig::default()),
            ToDataplane::Logging(logging()),
        ] {
            m.encode(&mut buf);
            assert_eq!(ToDataplane::decode(&buf).unwrap(), m);
            for cut in 0..buf.len() {
                assert!(ToDataplane::decode(&buf[..cut]).is_err());
            }
        }
        for m in [
            FromDataplane::Ring {
                state: "operational".into(),
                ring_rep: 1,
                ring_seq: 4,
                members: vec![1, 2],
                transport: "udp".into(),
            },
            FromDataplane::Stats {
                counters: vec![("srp.tokens".into(), 5)],
            },
            FromDataplane::Log(LogRecord {
                level: Level::Notice,
                subsys: "TOTEM".into(),
                file: "runner.rs".into(),
                line: 120,
                message: "A processor failed, forming new configuration".into(),
                unix_time_ns: 1_700_000_000_123_456_789,
            }),
        ] {
            m.encode(&mut buf);
            assert_eq!(FromDataplane::decode(&buf).unwrap(), m);
            for cut in 0..buf.len() {
                assert!(FromDataplane::decode(&buf[..cut]).is_err());
            }
        }
    }
}
