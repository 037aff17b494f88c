//! rotor-log: the one logging path of every rotor process. Code logs with `tracing` (its
//! target is the corosync subsystem tag, `target: "TOTEM"`, or a module path that one table
//! maps to a tag: `ipc_shm::…` is `IPC`, `xdp_prog::…` is `XDP`); this crate's subscriber turns
//! each event into a corosync-style line — timestamp per `logging.timestamp`, level,
//! `[SUBSYS]` tag, file:line per `logging.fileline` — and writes it to stderr, the log file
//! and syslog as logging{} and its logger_subsys{} sections say ([`install`]), or, in the
//! dataplane under rotord, sends it up the control socket as a typed record
//! ([`install_forwarding`]) that rotord writes into its own log ([`emit`]). The configuration
//! is a typed value ([`LogConfig`], built by rotord from cmap and sent as is to the dataplane,
//! which filters with it at the source); [`reopen`] reopens the log files for logrotate.
//! `tracing` has no notice level: [`notice!`] marks an info event as one.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

pub use rotor_proto::log::{
    DebugSetting, Level, LogConfig, LogRecord, LogSettings, SyslogFacility, Timestamp,
};

pub mod format;
mod forward;
mod route;
mod sinks;
pub mod tags;

use route::{level_max, route};

use forward::Forwarder;
use sinks::Sinks;

/// For the macros of this crate.
#[doc(hidden)]
pub mod __private {
    pub use tracing;
}

/// The field that makes an info event a notice (see [`notice!`]).
pub const NOTICE_FIELD: &str = "rotor_notice";

/// Logs at corosync's notice level, which `tracing` lacks: an info event marked as a notice.
/// `rotor_log::notice!(target: "TOTEM", "A new membership ({rep}.{seq:x}) was formed")`.
#[macro_export]
macro_rules! notice {
    (target: $target:expr, $($arg:tt)+) => {
        $crate::__private::tracing::info!(target: $target, rotor_notice = true, $($arg)+)
    };
}

/// A log file that could not be opened (lines for it go to the other destinations).
#[derive(Debug, thiserror::Error)]
#[error("cannot open log file {path}: {source}")]
pub struct FileError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

/// Why a logger could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("a logger is already installed in this process")]
    AlreadyInstalled,
}

/// One line before formatting.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record<'a> {
    pub level: Level,
    pub tag: &'a str,
    pub file: &'a str,
    pub line: u32,
    pub message: &'a str,
    pub time: SystemTime,
}

/// A process's logger: what passes, and where it goes.
enum Logger {
    /// Writes lines to the destinations `config` names.
    Sinks { config: LogConfig, sinks: Sinks },
    /// Sends lines up a socket; until rotord's `config` arrives, every line.
    Forward {
        config: Option<LogConfig>,
        forwarder: Forwarder,
    },
}

impl Logger {
    fn config(&self) -> Option<&LogConfig> {
        match self {
            Logger::Sinks { config, .. } => Some(config),
            Logger::Forward { config, .. } => config.as_ref(),
        }
    }

    fn wants(&self, tag: &str, level: Level) -> bool {
        self.config().is_none_or(|cfg| route(cfg, tag, level).any())
    }

    fn level_max(&self) -> Option<Level> {
        match self.config() {
            None => Some(Level::Trace),
            Some(cfg) => level_max(cfg),
        }
    }

    fn log(&mut self, rec: &Record<'_>, origin: Option<(u32, &str)>) {
        match self {
            Logger::Sinks { config, sinks } => {
                let r = route(config, rec.tag, rec.level);
                if r.any() {
                    sinks.write(config, r, rec, origin);
                }
            }
            Logger::Forward { config, forwarder } => {
                if config
                    .as_ref()
                    .is_none_or(|cfg| route(cfg, rec.tag, rec.level).any())
                {
                    forwarder.send(rec);
                }
            }
        }
    }
}

/// A logger shared by its `tracing` layer and the functions of this crate.
#[derive(Clone)]
struct Handle(Arc<Mutex<Logger>>);

impl Handle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Logger> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sinks(
        config: &LogConfig,
        name: &'static str,
        stderr: Box<dyn Write + Send>,
    ) -> (Handle, Vec<FileError>) {
        let mut sinks = Sinks::new(name, stderr);
        let errors = sinks.configure(config);
        let logger = Logger::Sinks {
            config: config.clone(),
            sinks,
        };
        (Handle(Arc::new(Mutex::new(logger))), errors)
    }

    fn forwarding(sock: OwnedFd) -> Handle {
        let logger = Logger::Forward {
            config: None,
            forwarder: Forwarder::new(sock),
        };
        Handle(Arc::new(Mutex::new(logger)))
    }

    fn reconfigure(&self, config: &LogConfig) -> Vec<FileError> {
        let errors = match &mut *self.lock() {
            Logger::Sinks {
                config: current,
                sinks,
            } => {
                *current = config.clone();
                sinks.configure(config)
            }
            Logger::Forward {
                config: current, ..
            } => {
                *current = Some(config.clone());
                Vec::new()
            }
        };
        // Outside the lock: rebuilding asks the layer again about every call site.
        tracing::callsite::rebuild_interest_cache();
        errors
    }

    fn reopen(&self) -> Vec<FileError> {
        match &mut *self.lock() {
            Logger::Sinks { sinks, .. } => sinks.reopen(),
            Logger::Forward { .. } => Vec::new(),
        }
    }

    fn layer(&self) -> RotorLayer {
        RotorLayer {
            handle: self.clone(),
        }
    }
}

/// The `tracing` layer: filters each call site by its tag and level, formats each event.
struct RotorLayer {
    handle: Handle,
}

/// Our level of a `tracing` level. Info may still turn out to be a notice (a field says so).
fn level_of(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warning,
        tracing::Level::INFO => Level::Info,
        tracing::Level::DEBUG => Level::Debug,
        tracing::Level::TRACE => Level::Trace,
    }
}

impl RotorLayer {
    fn enabled_meta(&self, meta: &Metadata<'static>) -> bool {
        let mut level = level_of(meta.level());
        if level == Level::Info {
            // Decided per event once the notice field is seen; here the more important of the two.
            level = Level::Notice;
        }
        self.handle.lock().wants(tags::tag_of(meta.target()), level)
    }
}

impl<S: Subscriber> Layer<S> for RotorLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.enabled_meta(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        // Call sites are cached by `register_callsite`; this is asked only of those another
        // subscriber in the process wants.
        let mut level = level_of(meta.level());
        if level == Level::Info {
            level = Level::Notice;
        }
        let tag = tags::tag_of(meta.target());
        self.handle.lock().wants(tag, level)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match self.handle.lock().level_max() {
            None => LevelFilter::OFF,
            Some(Level::Trace) => LevelFilter::TRACE,
            Some(Level::Debug) => LevelFilter::DEBUG,
            Some(Level::Info | Level::Notice) => LevelFilter::INFO,
            Some(Level::Warning) => LevelFilter::WARN,
            Some(_) => LevelFilter::ERROR,
        })
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut level = level_of(meta.level());
        if fields.notice && level == Level::Info {
            level = Level::Notice;
        }
        let rec = Record {
            level,
            tag: tags::tag_of(meta.target()),
            file: meta.file().unwrap_or(""),
            line: meta.line().unwrap_or(0),
            message: fields.message.trim_start(),
            time: SystemTime::now(),
        };
        self.handle.lock().log(&rec, None);
    }
}

/// The message of an event and its other fields, `key=value` after it.
#[derive(Default)]
struct Fields {
    message: String,
    notice: bool,
}

impl Fields {
    fn field(&mut self, field: &Field) {
        self.message.push(' ');
        self.message.push_str(field.name());
        self.message.push('=');
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            // The message is format_args!, whose Debug is the formatted text.
            let rest = std::mem::take(&mut self.message);
            let _ = write!(self.message, "{value:?}");
            self.message.push_str(&rest);
        } else {
            self.field(field);
            let _ = write!(self.message, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.insert_str(0, value);
        } else {
            self.field(field);
            self.message.push_str(value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == NOTICE_FIELD {
            self.notice = value;
        } else {
            self.field(field);
            self.message.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        use std::fmt::Write;
        self.field(field);
        let _ = write!(self.message, "{value}");
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        use std::fmt::Write;
        self.field(field);
        let _ = write!(self.message, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        use std::fmt::Write;
        self.field(field);
        let _ = write!(self.message, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        use std::fmt::Write;
        self.field(field);
        let _ = write!(self.message, "{value}");
    }
}

static GLOBAL: OnceLock<Handle> = OnceLock::new();

fn install_handle(handle: Handle) -> Result<(), InstallError> {
    GLOBAL
        .set(handle.clone())
        .map_err(|_| InstallError::AlreadyInstalled)?;
    let subscriber = tracing_subscriber::registry().with(handle.layer());
    tracing::subscriber::set_global_default(subscriber).map_err(|_| InstallError::AlreadyInstalled)
}

/// Installs the process's logger writing to the destinations `config` names, as process
/// `name` (in log-file lines and as the syslog identity). Returns the log files that could not
/// be opened: the logger runs without them.
pub fn install(config: &LogConfig, name: &'static str) -> Result<Vec<FileError>, InstallError> {
    let (handle, errors) = Handle::sinks(config, name, Box::new(std::io::stderr()));
    install_handle(handle)?;
    Ok(errors)
}

/// Installs the logger of a process whose lines go up `sock` (the dataplane's control socket
/// to rotord) as `FromDataplane::Log` records. Until [`reconfigure`] gives it rotord's
/// configuration, every line goes up and rotord filters.
pub fn install_forwarding(sock: OwnedFd) -> Result<(), InstallError> {
    install_handle(Handle::forwarding(sock))
}

/// Applies a new configuration (a reload, or rotord's configuration reaching the dataplane).
/// Returns the log files that could not be opened.
pub fn reconfigure(config: &LogConfig) -> Vec<FileError> {
    match GLOBAL.get() {
        Some(h) => h.reconfigure(config),
        None => Vec::new(),
    }
}

/// Opens every log file anew by its path: after logrotate renamed one, new lines go to a new
/// file. A file that cannot be reopened keeps its old handle and is returned.
pub fn reopen() -> Vec<FileError> {
    match GLOBAL.get() {
        Some(h) => h.reopen(),
        None => Vec::new(),
    }
}

/// Writes a record another process sent (the dataplane's, with its pid and name for the log
/// file) as if it had been logged here: same filtering, same format, same destinations.
pub fn emit(rec: &LogRecord, pid: u32, name: &str) {
    let Some(h) = GLOBAL.get() else { return };
    let record = Record {
        level: rec.level,
        tag: &rec.subsys,
        file: &rec.file,
        line: rec.line,
        message: &rec.message,
        time: forward::time_of(rec),
    };
    h.lock().log(&record, Some((pid, name)));
}

/// The configuration the process's logger runs on (`None` before one is installed, and for a
/// forwarding logger not configured yet): what rotord hands its dataplane.
pub fn config() -> Option<LogConfig> {
    GLOBAL.get().and_then(|h| h.lock().config().cloned())
}

/// Lines the forwarding logger dropped because the control socket was full.
pub fn forward_dropped() -> u64 {
    forward::DROPPED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests;
