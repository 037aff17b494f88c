//! Which destinations take a line of a given subsystem and level, by corosync's rules
//! (logsys.c): the log file and stderr take what `logfile_priority` admits, syslog what
//! `syslog_priority` admits, and `debug: on` (`trace`) opens all three down to debug (trace).

use rotor_proto::log::{DebugSetting, Level, LogConfig, LogSettings};

/// The destinations one line goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub stderr: bool,
    pub logfile: bool,
    pub syslog: bool,
}

impl Route {
    pub fn any(self) -> bool {
        self.stderr || self.logfile || self.syslog
    }
}

/// The least important level `s` admits on a destination whose priority is `priority`.
fn threshold(s: &LogSettings, priority: Level) -> Level {
    match s.debug {
        DebugSetting::Off => priority,
        DebugSetting::On => priority.max(Level::Debug),
        DebugSetting::Trace => Level::Trace,
    }
}

/// Where a line of subsystem `tag` at `level` goes.
pub fn route(cfg: &LogConfig, tag: &str, level: Level) -> Route {
    let s = cfg.settings(tag);
    let file_level = threshold(s, s.logfile_priority);
    Route {
        stderr: s.to_stderr && level <= file_level,
        logfile: s.to_logfile && s.logfile.is_some() && level <= file_level,
        syslog: s.to_syslog && level <= threshold(s, s.syslog_priority),
    }
}

/// The least important level any subsystem sends anywhere (`None`: nothing goes anywhere).
pub fn level_max(cfg: &LogConfig) -> Option<Level> {
    std::iter::once(&cfg.all)
        .chain(cfg.subsys.iter().map(|(_, s)| s))
        .flat_map(|s| {
            let file = (s.to_stderr || (s.to_logfile && s.logfile.is_some()))
                .then(|| threshold(s, s.logfile_priority));
            let syslog = s.to_syslog.then(|| threshold(s, s.syslog_priority));
            [file, syslog]
        })
        .flatten()
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(all: LogSettings, subsys: &[(&str, LogSettings)]) -> LogConfig {
        LogConfig {
            all,
            subsys: subsys
                .iter()
                .map(|(n, s)| (n.to_string(), s.clone()))
                .collect(),
            ..LogConfig::default()
        }
    }

    fn file_only() -> LogSettings {
        LogSettings {
            to_stderr: false,
            to_syslog: false,
            to_logfile: true,
            logfile: Some("/tmp/x.log".into()),
            ..LogSettings::default()
        }
    }

    #[test]
    fn defaults_take_info_and_above_on_stderr_and_syslog() {
        let c = LogConfig::default();
        let all = Route {
            stderr: true,
            logfile: false,
            syslog: true,
        };
        assert_eq!(route(&c, "TOTEM", Level::Notice), all);
        assert_eq!(route(&c, "TOTEM", Level::Info), all);
        assert_eq!(route(&c, "TOTEM", Level::Debug), Route::default());
        assert_eq!(level_max(&c), Some(Level::Info));
    }

    #[test]
    fn debug_per_subsystem() {
        let on = LogSettings {
            debug: DebugSetting::On,
            ..file_only()
        };
        let c = cfg(file_only(), &[("CPG", on)]);
        assert!(route(&c, "CPG", Level::Debug).logfile);
        assert!(!route(&c, "CPG", Level::Trace).any());
        assert!(!route(&c, "TOTEM", Level::Debug).any());
        assert!(route(&c, "TOTEM", Level::Info).logfile);
        assert_eq!(level_max(&c), Some(Level::Debug));
        let trace = LogSettings {
            debug: DebugSetting::Trace,
            ..file_only()
        };
        let c = cfg(trace, &[]);
        assert!(route(&c, "ANY", Level::Trace).logfile);
        assert_eq!(level_max(&c), Some(Level::Trace));
    }

    #[test]
    fn priorities_per_destination() {
        let s = LogSettings {
            to_logfile: true,
            logfile: Some("/tmp/x.log".into()),
            logfile_priority: Level::Warning,
            syslog_priority: Level::Error,
            ..LogSettings::default()
        };
        let c = cfg(s, &[]);
        assert_eq!(
            route(&c, "MAIN", Level::Warning),
            Route {
                stderr: true,
                logfile: true,
                syslog: false
            }
        );
        assert!(route(&c, "MAIN", Level::Error).syslog);
        assert!(!route(&c, "MAIN", Level::Notice).any());
        assert_eq!(level_max(&c), Some(Level::Warning));
    }

    #[test]
    fn to_logfile_without_a_file_and_all_off_go_nowhere() {
        let s = LogSettings {
            to_stderr: false,
            to_syslog: false,
            to_logfile: true,
            logfile: None,
            ..LogSettings::default()
        };
        let c = cfg(s, &[]);
        assert!(!route(&c, "MAIN", Level::Emerg).any());
        assert_eq!(level_max(&c), None);
    }
}
