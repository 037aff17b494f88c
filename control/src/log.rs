//! rotord's side of logging: logging{} and its logger_subsys{} sections read from cmap into
//! the `LogConfig` that rotor-log's subscriber runs on (and that the dataplane gets too),
//! log-file reopening on SIGHUP, and `log_at!`, rotord's statements as `tracing` events whose
//! target is the subsystem tag.

use rotor_log::{DebugSetting, Level, LogConfig, LogSettings, SyslogFacility, Timestamp};

use crate::cmap::{CmapStore, Value};

/// Logs under a corosync subsystem tag at one of corosync's levels:
/// `log_at!(Notice, "TOTEM", "A new membership ({rep}.{seq:x}) was formed.")`.
#[macro_export]
macro_rules! log_at {
    (Error, $subsys:expr, $($arg:tt)+) => {
        ::rotor_log::__private::tracing::error!(target: $subsys, $($arg)+)
    };
    (Warning, $subsys:expr, $($arg:tt)+) => {
        ::rotor_log::__private::tracing::warn!(target: $subsys, $($arg)+)
    };
    (Notice, $subsys:expr, $($arg:tt)+) => {
        ::rotor_log::notice!(target: $subsys, $($arg)+)
    };
    (Info, $subsys:expr, $($arg:tt)+) => {
        ::rotor_log::__private::tracing::info!(target: $subsys, $($arg)+)
    };
    (Debug, $subsys:expr, $($arg:tt)+) => {
        ::rotor_log::__private::tracing::debug!(target: $subsys, $($arg)+)
    };
}

/// The logging configuration in cmap (`logging.*`, `logging.logger_subsys.<TAG>.*`, all
/// strings as coroparse stores them; the config parser has already refused bad values, and a
/// value it let through that is not understood here keeps the default). `to_stderr` defaults
/// to on only in the foreground: a daemon's stderr is /dev/null.
pub fn config(cmap: &CmapStore, foreground: bool) -> LogConfig {
    let get = |key: &str| match cmap.get(key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let mut all = LogSettings {
        to_stderr: foreground,
        ..LogSettings::default()
    };
    apply(&mut all, |k| get(&format!("logging.{k}")));
    let mut names: Vec<&str> = cmap
        .iter_prefix("logging.logger_subsys.")
        .filter_map(|(k, _)| k.split('.').nth(2))
        .collect();
    names.dedup();
    let subsys = names
        .into_iter()
        .map(|name| {
            let mut s = all.clone();
            apply(&mut s, |k| {
                get(&format!("logging.logger_subsys.{name}.{k}"))
            });
            (name.to_owned(), s)
        })
        .collect();
    LogConfig {
        timestamp: match get("logging.timestamp") {
            Some("off") => Timestamp::Off,
            Some("on") => Timestamp::On,
            _ => Timestamp::Hires,
        },
        fileline: get("logging.fileline") == Some("on"),
        syslog_facility: get("logging.syslog_facility")
            .and_then(SyslogFacility::from_config)
            .unwrap_or_default(),
        all,
        subsys,
    }
}

/// Sets in `s` what `get(key)` finds among the keys valid in logging{} and logger_subsys{}.
fn apply<'a>(s: &mut LogSettings, get: impl Fn(&str) -> Option<&'a str>) {
    let flag = |key: &str, current: bool| match get(key) {
        Some("yes" | "on") => true,
        Some("no" | "off") => false,
        _ => current,
    };
    s.to_stderr = flag("to_stderr", s.to_stderr);
    s.to_logfile = flag("to_logfile", s.to_logfile);
    s.to_syslog = flag("to_syslog", s.to_syslog);
    if let Some(path) = get("logfile") {
        s.logfile = Some(path.to_owned());
    }
    // syslog_level is corosync's obsolete name of syslog_priority.
    if let Some(l) = get("syslog_priority")
        .or_else(|| get("syslog_level"))
        .and_then(Level::from_config)
    {
        s.syslog_priority = l;
    }
    if let Some(l) = get("logfile_priority").and_then(Level::from_config) {
        s.logfile_priority = l;
    }
    match get("debug") {
        Some("on") => s.debug = DebugSetting::On,
        Some("trace") => s.debug = DebugSetting::Trace,
        Some("off") => s.debug = DebugSetting::Off,
        _ => {}
    }
}

/// Makes SIGHUP reopen the log files (for logrotate: rename the file, then `kill -HUP`): the
/// signal is blocked in this thread and every thread it starts from now on, and one thread
/// waits for it. Call once, after daemon(3) and before any other thread is started.
pub fn reopen_on_sighup() -> std::io::Result<()> {
    // SAFETY: a sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to our set; pthread_sigmask changes only this thread's mask.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    std::thread::Builder::new()
        .name("log-reopen".into())
        .spawn(move || loop {
            let mut sig = 0;
            // SAFETY: sigwait reads the set and writes one int.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            let errors = rotor_log::reopen();
            if errors.is_empty() {
                log_at!(Notice, "MAIN", "log files reopened (SIGHUP)");
            }
            for e in errors {
                log_at!(
                    Error,
                    "MAIN",
                    "{e}; still writing to the file opened before"
                );
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmap::Access;

    fn cmap(entries: &[(&str, &str)]) -> CmapStore {
        let mut c = CmapStore::new();
        for (k, v) in entries {
            c.set(k, Value::String(v.to_string()), Access::Daemon)
                .unwrap();
        }
        c
    }

    #[test]
    fn defaults_are_corosyncs() {
        let c = config(&CmapStore::new(), true);
        assert_eq!(c, LogConfig::default());
        let daemon = config(&CmapStore::new(), false);
        assert!(!daemon.all.to_stderr && daemon.all.to_syslog);
    }

    #[test]
    fn top_level_keys() {
        let c = config(
            &cmap(&[
                ("logging.timestamp", "on"),
                ("logging.fileline", "on"),
                ("logging.to_logfile", "yes"),
                ("logging.logfile", "/var/log/rotor.log"),
                ("logging.to_syslog", "no"),
                ("logging.syslog_facility", "local5"),
                ("logging.logfile_priority", "warning"),
                ("logging.syslog_level", "err"),
                ("logging.debug", "on"),
            ]),
            true,
        );
        assert_eq!(c.timestamp, Timestamp::On);
        assert!(c.fileline);
        assert_eq!(c.syslog_facility, SyslogFacility::Local(5));
        assert_eq!(
            c.all,
            LogSettings {
                to_stderr: true,
                to_logfile: true,
                to_syslog: false,
                logfile: Some("/var/log/rotor.log".into()),
                logfile_priority: Level::Warning,
                syslog_priority: Level::Error,
                debug: DebugSetting::On,
            }
        );
        assert!(c.subsys.is_empty());
    }

    #[test]
    fn logger_subsys_overrides_what_it_sets() {
        let c = config(
            &cmap(&[
                ("logging.to_syslog", "no"),
                ("logging.logger_subsys.CPG.subsys", "CPG"),
                ("logging.logger_subsys.CPG.debug", "trace"),
                ("logging.logger_subsys.TOTEM.subsys", "TOTEM"),
                ("logging.logger_subsys.TOTEM.to_stderr", "off"),
                ("logging.logger_subsys.TOTEM.syslog_priority", "crit"),
            ]),
            true,
        );
        let names: Vec<&str> = c.subsys.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["CPG", "TOTEM"]);
        assert_eq!(c.settings("CPG").debug, DebugSetting::Trace);
        assert!(c.settings("CPG").to_stderr && !c.settings("CPG").to_syslog);
        assert!(!c.settings("TOTEM").to_stderr);
        assert_eq!(c.settings("TOTEM").syslog_priority, Level::Crit);
        assert_eq!(c.settings("TOTEM").debug, DebugSetting::Off);
        assert_eq!(c.settings("MAIN"), &c.all);
    }
}
