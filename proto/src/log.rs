//! Logging as it crosses the rotord ↔ dataplane socket: the resolved logging{} configuration
//! rotord sends down (`LogConfig`, so the dataplane filters at the source exactly as rotord
//! would) and the log records the dataplane sends up (`LogRecord`, re-emitted by rotord into
//! its own log with their level, subsystem tag, file and line). Plain data: the formatting and
//! the sinks live in rotor-log.

use crate::codec::{DecodeError, Reader, Writer};

/// A log priority, with syslog's numbers (corosync's names, plus libqb's `trace` below debug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
    Trace = 8,
}

impl Level {
    pub const ALL: [Level; 9] = [
        Level::Emerg,
        Level::Alert,
        Level::Crit,
        Level::Error,
        Level::Warning,
        Level::Notice,
        Level::Info,
        Level::Debug,
        Level::Trace,
    ];

    /// The name in log lines (libqb's `%p`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Emerg => "emerg",
            Level::Alert => "alert",
            Level::Crit => "crit",
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// A `syslog_priority` / `logfile_priority` value of corosync.conf (`err` and `error` both).
    pub fn from_config(name: &str) -> Option<Level> {
        match name {
            "err" => Some(Level::Error),
            _ => Level::ALL.into_iter().find(|l| l.name() == name),
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Level> {
        Level::ALL.get(usize::from(code)).copied()
    }
}

/// `logging.timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Timestamp {
    Off,
    /// Seconds: `Mar 07 10:15:42`.
    On,
    /// Milliseconds: `Mar 07 10:15:42.318` (corosync's default).
    #[default]
    Hires,
}

/// `debug` of logging{} or a logger_subsys{}.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DebugSetting {
    #[default]
    Off,
    /// Debug-level lines too, whatever the priorities say.
    On,
    /// Trace-level lines too.
    Trace,
}

/// `logging.syslog_facility`: daemon or local0..local7.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SyslogFacility {
    #[default]
    Daemon,
    /// local0..local7: the number.
    Local(u8),
}

impl SyslogFacility {
    pub fn from_config(name: &str) -> Option<SyslogFacility> {
        if name == "daemon" {
            return Some(SyslogFacility::Daemon);
        }
        let n: u8 = name.strip_prefix("local")?.parse().ok()?;
        (n <= 7 && name.len() == 6).then_some(SyslogFacility::Local(n))
    }

    fn code(self) -> u8 {
        match self {
            SyslogFacility::Daemon => 0xff,
            SyslogFacility::Local(n) => n,
        }
    }

    fn from_code(code: u8) -> Option<SyslogFacility> {
        match code {
            0xff => Some(SyslogFacility::Daemon),
            n @ 0..=7 => Some(SyslogFacility::Local(n)),
            _ => None,
        }
    }
}

/// Where one subsystem's lines go and from which priority on: the keys corosync accepts both
/// in logging{} and in a logger_subsys{}.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    pub to_stderr: bool,
    pub to_logfile: bool,
    pub to_syslog: bool,
    /// The log file (`logfile`); `to_logfile` without one writes no file.
    pub logfile: Option<String>,
    /// The least important level written to the log file, and to stderr (as libqb does).
    pub logfile_priority: Level,
    /// The least important level sent to syslog.
    pub syslog_priority: Level,
    /// On: debug lines to every destination, whatever the priorities say; trace: trace too.
    pub debug: DebugSetting,
}

impl Default for LogSettings {
    /// corosync's defaults: stderr and syslog, no file, info and above.
    fn default() -> LogSettings {
        LogSettings {
            to_stderr: true,
            to_logfile: false,
            to_syslog: true,
            logfile: None,
            logfile_priority: Level::Info,
            syslog_priority: Level::Info,
            debug: DebugSetting::Off,
        }
    }
}

/// The whole logging{} section, resolved: top-level settings, and each logger_subsys{} with
/// what it does not set already taken from the top level.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LogConfig {
    pub timestamp: Timestamp,
    pub fileline: bool,
    pub syslog_facility: SyslogFacility,
    /// logging{} itself: every subsystem without a logger_subsys{} of its own.
    pub all: LogSettings,
    /// logger_subsys{} sections by subsystem tag (`TOTEM`, `CPG`, …).
    pub subsys: Vec<(String, LogSettings)>,
}

impl LogConfig {
    /// The settings that apply to subsystem `tag`.
    pub fn settings(&self, tag: &str) -> &LogSettings {
        self.subsys
            .iter()
            .find(|(name, _)| name == tag)
            .map_or(&self.all, |(_, s)| s)
    }

    /// Appends this configuration's fields to a record (for any message that carries one).
    pub fn write(&self, w: &mut Writer<'_>) {
        w.u8(match self.timestamp {
            Timestamp::Off => 0,
            Timestamp::On => 1,
            Timestamp::Hires => 2,
        })
        .u8(u8::from(self.fileline))
        .u8(self.syslog_facility.code());
        write_settings(w, "", &self.all);
        w.u32(self.subsys.len() as u32);
        for (name, s) in &self.subsys {
            write_settings(w, name, s);
        }
    }

    /// Reads what [`LogConfig::write`] wrote.
    pub fn read(r: &mut Reader<'_>) -> Result<LogConfig, DecodeError> {
        let timestamp = match r.u8("timestamp")? {
            0 => Timestamp::Off,
            1 => Timestamp::On,
            2 => Timestamp::Hires,
            _ => return Err(DecodeError::BadValue("timestamp")),
        };
        let fileline = r.u8("fileline")? != 0;
        let syslog_facility = SyslogFacility::from_code(r.u8("syslog facility")?)
            .ok_or(DecodeError::BadValue("syslog facility"))?;
        let (_, all) = read_settings(r)?;
        // A subsystem entry takes at least its name length, 5 flag/level bytes and the logfile
        // length.
        let n = r.count(4 + 6 + 4, "logger_subsys")?;
        let mut subsys = Vec::with_capacity(n);
        for _ in 0..n {
            subsys.push(read_settings(r)?);
        }
        Ok(LogConfig {
            timestamp,
            fileline,
            syslog_facility,
            all,
            subsys,
        })
    }
}

fn write_settings(w: &mut Writer<'_>, name: &str, s: &LogSettings) {
    w.str(name)
        .u8(u8::from(s.to_stderr) | u8::from(s.to_logfile) << 1 | u8::from(s.to_syslog) << 2)
        .u8(s.logfile_priority.code())
        .u8(s.syslog_priority.code())
        .u8(match s.debug {
            DebugSetting::Off => 0,
            DebugSetting::On => 1,
            DebugSetting::Trace => 2,
        })
        .u8(u8::from(s.logfile.is_some()))
        .str(s.logfile.as_deref().unwrap_or(""));
}

fn read_settings(r: &mut Reader<'_>) -> Result<(String, LogSettings), DecodeError> {
    let name = r.str("subsys")?.to_owned();
    let to = r.u8("destinations")?;
    if to > 0b111 {
        return Err(DecodeError::BadValue("destinations"));
    }
    let level = |code: u8, what| Level::from_code(code).ok_or(DecodeError::BadValue(what));
    let logfile_priority = level(r.u8("logfile priority")?, "logfile priority")?;
    let syslog_priority = level(r.u8("syslog priority")?, "syslog priority")?;
    let debug = match r.u8("debug")? {
        0 => DebugSetting::Off,
        1 => DebugSetting::On,
        2 => DebugSetting::Trace,
        _ => return Err(DecodeError::BadValue("debug")),
    };
    let has_logfile = r.u8("logfile")? != 0;
    let logfile = r.str("logfile")?;
    Ok((
        name,
        LogSettings {
            to_stderr: to & 1 != 0,
            to_logfile: to & 2 != 0,
            to_syslog: to & 4 != 0,
            logfile: has_logfile.then(|| logfile.to_owned()),
            logfile_priority,
            syslog_priority,
            debug,
        },
    ))
}

/// One log line from the dataplane, before formatting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub level: Level,
    /// The subsystem tag (`TOTEM`, `CPG`, `XDP`, …).
    pub subsys: String,
    /// Source file and line of the statement.
    pub file: String,
    pub line: u32,
    pub message: String,
    /// When it was logged: nanoseconds since the Unix epoch.
    pub unix_time_ns: u64,
}

impl LogRecord {
    pub fn write(&self, w: &mut Writer<'_>) {
        w.u8(self.level.code())
            .str(&self.subsys)
            .str(&self.file)
            .u32(self.line)
            .u64(self.unix_time_ns)
            .str(&self.message);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<LogRecord, DecodeError> {
        let level = Level::from_code(r.u8("level")?).ok_or(DecodeError::BadValue("level"))?;
        Ok(LogRecord {
            level,
            subsys: r.str("subsys")?.to_owned(),
            file: r.str("file")?.to_owned(),
            line: r.u32("line")?,
            unix_time_ns: r.u64("time")?,
            message: r.str("message")?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::from_config(l.name()), Some(l));
            assert_eq!(Level::from_code(l.code()), Some(l));
        }
        assert_eq!(Level::from_config("err"), Some(Level::Error));
        assert_eq!(Level::from_config("loud"), None);
        assert_eq!(
            SyslogFacility::from_config("local7"),
            Some(SyslogFacility::Local(7))
        );
        assert_eq!(SyslogFacility::from_config("local8"), None);
        assert_eq!(SyslogFacility::from_config("local07"), None);
        assert_eq!(
            SyslogFacility::from_config("daemon"),
            Some(SyslogFacility::Daemon)
        );
    }

    #[test]
    fn a_subsystem_without_settings_takes_the_top_level() {
        let cpg = LogSettings {
            debug: DebugSetting::On,
            ..LogSettings::default()
        };
        let cfg = LogConfig {
            subsys: vec![("CPG".into(), cpg.clone())],
            ..LogConfig::default()
        };
        assert_eq!(cfg.settings("CPG"), &cpg);
        assert_eq!(cfg.settings("TOTEM"), &LogSettings::default());
    }
}
