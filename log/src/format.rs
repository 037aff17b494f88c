//! The text of a log line, as corosync writes it (its logsys.c formats over libqb's
//! log_format.c): on stderr `[TIME ]LEVEL   [TAG   ] [FILE:LINE ]MESSAGE`, in the log file
//! `[TIME ][PID] HOST NAME LEVEL   [TAG   ] [FILE:LINE ]MESSAGE`, to syslog
//! `[TAG   ] [FILE:LINE ]MESSAGE` (syslog adds time, host and priority itself). TIME is local
//! time, `Mar 07 10:15:42` (`timestamp: on`) or `Mar 07 10:15:42.318` (`hires`, the default).
//! The level is padded to 7 characters and the tag padded or cut to 6, as libqb's `%7p` and
//! `%6g` do.

use std::fmt::Write;
use std::time::SystemTime;

use rotor_proto::log::{Level, Timestamp};

/// The month names a timestamp starts with, January first (libqb's `%b` in the C locale).
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A moment in local time, down to the millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    /// 0 = January.
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub millis: u16,
}

impl LocalTime {
    /// `time` in this host's time zone (localtime_r, which reads TZ and /etc/localtime).
    pub fn of(time: SystemTime) -> LocalTime {
        let since = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs() as libc::time_t;
        // SAFETY: localtime_r only writes the tm it is given; a zeroed tm is a valid value.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the duration of the call.
        if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
            // Out of range for the calendar: the fields stay zero, the line is still written.
            tm.tm_mday = 0;
        }
        LocalTime {
            month: tm.tm_mon.clamp(0, 11) as u8,
            day: tm.tm_mday as u8,
            hour: tm.tm_hour as u8,
            minute: tm.tm_min as u8,
            second: tm.tm_sec as u8,
            millis: since.subsec_millis() as u16,
        }
    }
}

/// What a line says, before it is formatted.
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    pub level: Level,
    pub tag: &'a str,
    /// Source file of the statement (a path as the compiler gave it).
    pub file: &'a str,
    pub line: u32,
    /// One line of text (no newline).
    pub message: &'a str,
}

/// The format-wide keys of logging{}.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub timestamp: Timestamp,
    pub fileline: bool,
}

/// Who wrote a line into the log file (`[%P] %H %N`).
#[derive(Clone, Copy, Debug)]
pub struct Process<'a> {
    pub pid: u32,
    pub host: &'a str,
    pub name: &'a str,
}

/// Appends the timestamp and a space, or nothing with `timestamp: off`.
pub fn timestamp(ts: Timestamp, t: &LocalTime, out: &mut String) {
    let month = MONTHS[usize::from(t.month.min(11))];
    let _ = match ts {
        Timestamp::Off => Ok(()),
        Timestamp::On => write!(
            out,
            "{month} {:02} {:02}:{:02}:{:02} ",
            t.day, t.hour, t.minute, t.second
        ),
        Timestamp::Hires => write!(
            out,
            "{month} {:02} {:02}:{:02}:{:02}.{:03} ",
            t.day, t.hour, t.minute, t.second, t.millis
        ),
    };
}

/// A line for stderr.
pub fn stderr_line(f: &Format, t: &LocalTime, line: &Line<'_>, out: &mut String) {
    out.clear();
    timestamp(f.timestamp, t, out);
    body(f, line, out);
}

/// A line for the log file.
pub fn file_line(f: &Format, t: &LocalTime, p: &Process<'_>, line: &Line<'_>, out: &mut String) {
    out.clear();
    timestamp(f.timestamp, t, out);
    let _ = write!(out, "[{}] {} {} ", p.pid, p.host, p.name);
    body(f, line, out);
}

/// A line for syslog(3).
pub fn syslog_line(f: &Format, line: &Line<'_>, out: &mut String) {
    out.clear();
    tagged(f, line, out);
}

fn body(f: &Format, line: &Line<'_>, out: &mut String) {
    let _ = write!(out, "{:<7} ", line.level.name());
    tagged(f, line, out);
}

fn tagged(f: &Format, line: &Line<'_>, out: &mut String) {
    let _ = write!(out, "[{:<6.6}] ", line.tag);
    // Lines from outside any statement (another process's stderr) have no file.
    if f.fileline && !line.file.is_empty() {
        let _ = write!(out, "{}:{} ", source_file(line.file), line.line);
    }
    out.push_str(line.message);
}

/// A source path as a line shows it: what follows `src/` (`runner.rs`, `config/mod.rs`,
/// `bin/rotord.rs`), else the file name.
pub fn source_file(path: &str) -> &str {
    match path.rfind("src/") {
        Some(i) if i == 0 || path.as_bytes()[i - 1] == b'/' => &path[i + 4..],
        _ => path.rsplit('/').next().unwrap_or(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: LocalTime = LocalTime {
        month: 2,
        day: 7,
        hour: 9,
        minute: 5,
        second: 42,
        millis: 18,
    };

    fn line(level: Level, tag: &'static str) -> Line<'static> {
        Line {
            level,
            tag,
            file: "dataplane/src/runner.rs",
            line: 120,
            message: "A new membership (1.8) was formed. Members joined: 2 3",
        }
    }

    fn stderr(ts: Timestamp, fileline: bool, l: &Line<'_>) -> String {
        let mut out = String::new();
        let f = Format {
            timestamp: ts,
            fileline,
        };
        stderr_line(&f, &T, l, &mut out);
        out
    }

    #[test]
    fn timestamps_off_on_and_hires() {
        let l = line(Level::Notice, "TOTEM");
        assert_eq!(
            stderr(Timestamp::Off, false, &l),
            "notice  [TOTEM ] A new membership (1.8) was formed. Members joined: 2 3"
        );
        assert_eq!(
            stderr(Timestamp::On, false, &l),
            "Mar 07 09:05:42 notice  [TOTEM ] A new membership (1.8) was formed. Members joined: 2 3"
        );
        assert_eq!(
            stderr(Timestamp::Hires, false, &l),
            "Mar 07 09:05:42.018 notice  [TOTEM ] A new membership (1.8) was formed. Members joined: 2 3"
        );
    }

    #[test]
    fn fileline_goes_after_the_tag() {
        let l = line(Level::Info, "CPG");
        assert_eq!(
            stderr(Timestamp::Off, true, &l),
            "info    [CPG   ] runner.rs:120 A new membership (1.8) was formed. Members joined: 2 3"
        );
        let no_file = Line { file: "", ..l };
        assert_eq!(
            stderr(Timestamp::Off, true, &no_file),
            "info    [CPG   ] A new membership (1.8) was formed. Members joined: 2 3"
        );
    }

    #[test]
    fn levels_pad_to_seven_and_tags_pad_or_cut_to_six() {
        let mut l = line(Level::Warning, "QUORUM");
        l.message = "x";
        assert_eq!(stderr(Timestamp::Off, false, &l), "warning [QUORUM] x");
        l.tag = "LONGERTAG";
        l.level = Level::Error;
        assert_eq!(stderr(Timestamp::Off, false, &l), "error   [LONGER] x");
        l.level = Level::Debug;
        l.tag = "IPC";
        assert_eq!(stderr(Timestamp::Off, false, &l), "debug   [IPC   ] x");
        l.level = Level::Trace;
        assert_eq!(stderr(Timestamp::Off, false, &l), "trace   [IPC   ] x");
    }

    #[test]
    fn the_file_line_names_pid_host_and_process() {
        let l = line(Level::Notice, "MAIN");
        let p = Process {
            pid: 4242,
            host: "node1",
            name: "rotord",
        };
        let mut out = String::new();
        let f = Format {
            timestamp: Timestamp::On,
            fileline: false,
        };
        file_line(&f, &T, &p, &l, &mut out);
        assert_eq!(
            out,
            "Mar 07 09:05:42 [4242] node1 rotord notice  [MAIN  ] A new membership (1.8) was formed. Members joined: 2 3"
        );
        let f = Format {
            timestamp: Timestamp::Off,
            fileline: true,
        };
        file_line(&f, &T, &p, &l, &mut out);
        assert_eq!(
            out,
            "[4242] node1 rotord notice  [MAIN  ] runner.rs:120 A new membership (1.8) was formed. Members joined: 2 3"
        );
    }

    #[test]
    fn syslog_lines_carry_no_time_or_level() {
        let l = line(Level::Notice, "TOTEM");
        let mut out = String::new();
        let f = Format {
            timestamp: Timestamp::Hires,
            fileline: false,
        };
        syslog_line(&f, &l, &mut out);
        assert_eq!(
            out,
            "[TOTEM ] A new membership (1.8) was formed. Members joined: 2 3"
        );
    }

    #[test]
    fn source_files_are_shown_from_src() {
        assert_eq!(source_file("dataplane/src/runner.rs"), "runner.rs");
        assert_eq!(source_file("control/src/config/mod.rs"), "config/mod.rs");
        assert_eq!(source_file("src/lib.rs"), "lib.rs");
        assert_eq!(source_file("/x/y.rs"), "y.rs");
        assert_eq!(source_file("y.rs"), "y.rs");
        assert_eq!(source_file("a/mysrc/b.rs"), "b.rs");
    }

    #[test]
    fn local_time_is_a_calendar_time() {
        let t = LocalTime::of(SystemTime::now());
        assert!(t.month < 12 && (1..=31).contains(&t.day), "{t:?}");
        assert!(t.hour < 24 && t.minute < 60 && t.second <= 60 && t.millis < 1000);
    }
}
