//! rotord's log, as logging{} configures it: stderr, a log file and syslog, each on or off,
//! with corosync-style subsystem tags (`[TOTEM ]`, `[CPG   ]`, …) and per-subsystem debug
//! (logging.debug, logger_subsys{ subsys: X debug: on }).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use crate::cmap::{CmapStore, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
    fn syslog_priority(self) -> libc::c_int {
        match self {
            Level::Error => libc::LOG_ERR,
            Level::Warning => libc::LOG_WARNING,
            Level::Notice => libc::LOG_NOTICE,
            Level::Info => libc::LOG_INFO,
            Level::Debug => libc::LOG_DEBUG,
        }
    }
}

struct Sinks {
    stderr: bool,
    file: Option<File>,
    syslog: bool,
    debug_all: bool,
    debug_subsys: BTreeSet<String>,
}

/// The process-wide log.
pub struct Log {
    sinks: Mutex<Sinks>,
}

static LOG: Log = Log {
    sinks: Mutex::new(Sinks {
        stderr: true,
        file: None,
        syslog: false,
        debug_all: false,
        debug_subsys: BTreeSet::new(),
    }),
};

fn on(cmap: &CmapStore, key: &str, default: bool) -> bool {
    match cmap.get(key) {
        Some(Value::String(s)) => matches!(s.as_str(), "yes" | "on" | "trace"),
        _ => default,
    }
}

/// Applies logging{} from the loaded cmap. Returns a problem opening the log file, if any
/// (the log then goes on without the file).
pub fn configure(cmap: &CmapStore, foreground: bool) -> Result<(), String> {
    let mut s = LOG.sinks.lock().unwrap_or_else(|p| p.into_inner());
    // corosync logs to stderr by default only in the foreground.
    s.stderr = on(cmap, "logging.to_stderr", foreground);
    s.syslog = on(cmap, "logging.to_syslog", true);
    s.debug_all = on(cmap, "logging.debug", false);
    s.debug_subsys = cmap
        .iter_prefix("logging.logger_subsys.")
        .filter(|(k, v)| {
            k.ends_with(".debug") && matches!(v, Value::String(s) if s == "on" || s == "trace")
        })
        .filter_map(|(k, _)| k.split('.').nth(2).map(str::to_owned))
        .collect();
    if s.syslog {
        let facility = match cmap.get("logging.syslog_facility") {
            Some(Value::String(f)) => facility(f),
            _ => libc::LOG_DAEMON,
        };
        // SAFETY: openlog keeps the pointer: a static C string literal lives forever.
        unsafe { libc::openlog(c"rotord".as_ptr(), libc::LOG_PID, facility) };
    }
    if on(cmap, "logging.to_logfile", false) {
        if let Some(Value::String(path)) = cmap.get("logging.logfile") {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => s.file = Some(f),
                Err(e) => return Err(format!("logging.logfile {path}: {e}")),
            }
        }
    }
    Ok(())
}

/// syslog's facility for a `logging.syslog_facility` name (the config parser admits only
/// daemon and local0..local7).
fn facility(name: &str) -> libc::c_int {
    match name {
        "local0" => libc::LOG_LOCAL0,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => libc::LOG_DAEMON,
    }
}

/// Logs one line under a subsystem tag (at most 6 characters, as corosync pads them).
pub fn log(level: Level, subsys: &str, msg: &str) {
    let mut s = LOG.sinks.lock().unwrap_or_else(|p| p.into_inner());
    if level == Level::Debug && !s.debug_all && !s.debug_subsys.contains(subsys) {
        return;
    }
    let line = format!("[{subsys:<6}] {msg}");
    if s.stderr {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    if let Some(f) = s.file.as_mut() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let _ = writeln!(
            f,
            "{}.{:03} [{}] rotord {:<7} {line}",
            now.as_secs(),
            now.subsec_millis(),
            std::process::id(),
            level.name()
        );
    }
    if s.syslog {
        if let Ok(c) = std::ffi::CString::new(line) {
            // SAFETY: a "%s" format with one valid C string argument.
            unsafe { libc::syslog(level.syslog_priority(), c"%s".as_ptr(), c.as_ptr()) };
        }
    }
}

#[macro_export]
macro_rules! log_at {
    ($level:ident, $subsys:expr, $($arg:tt)*) => {
        $crate::log::log($crate::log::Level::$level, $subsys, &format!($($arg)*))
    };
}
