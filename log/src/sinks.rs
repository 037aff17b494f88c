//! The destinations a process writes itself: stderr, log files (one handle per path, shared by
//! the subsystems that name it, reopened on request for logrotate) and syslog(3).

use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::OnceLock;

use rotor_proto::log::{Level, LogConfig, SyslogFacility};

use crate::format::{self, Format, Line, LocalTime, Process};
use crate::route::Route;
use crate::{FileError, Record};

/// Permissions of a log file rotor creates: lines name addresses and processes.
const LOGFILE_MODE: u32 = 0o640;

struct LogFile {
    path: String,
    file: File,
}

/// Where this process writes lines.
pub(crate) struct Sinks {
    name: &'static str,
    pid: u32,
    host: String,
    stderr: Box<dyn Write + Send>,
    files: Vec<LogFile>,
    /// The facility syslog was opened with, if it was.
    syslog: Option<SyslogFacility>,
    line: String,
}

impl Sinks {
    /// Sinks of process `name` writing "stderr" lines to `stderr`.
    pub(crate) fn new(name: &'static str, stderr: Box<dyn Write + Send>) -> Sinks {
        Sinks {
            name,
            pid: std::process::id(),
            host: hostname(),
            stderr,
            files: Vec::new(),
            syslog: None,
            line: String::new(),
        }
    }

    /// Opens what `cfg` names: every log file not open yet (those no longer named are closed)
    /// and syslog with its facility. Returns the files that could not be opened; lines for
    /// them go to the other destinations.
    pub(crate) fn configure(&mut self, cfg: &LogConfig) -> Vec<FileError> {
        let wanted: Vec<&str> = std::iter::once(&cfg.all)
            .chain(cfg.subsys.iter().map(|(_, s)| s))
            .filter(|s| s.to_logfile)
            .filter_map(|s| s.logfile.as_deref())
            .collect();
        self.files.retain(|f| wanted.contains(&f.path.as_str()));
        let mut errors = Vec::new();
        for path in wanted {
            if self.files.iter().any(|f| f.path == path) {
                continue;
            }
            match open_logfile(path) {
                Ok(file) => self.files.push(LogFile {
                    path: path.to_owned(),
                    file,
                }),
                Err(source) => errors.push(FileError {
                    path: path.to_owned(),
                    source,
                }),
            }
        }
        let syslog = std::iter::once(&cfg.all)
            .chain(cfg.subsys.iter().map(|(_, s)| s))
            .any(|s| s.to_syslog);
        if syslog && self.syslog != Some(cfg.syslog_facility) {
            open_syslog(self.name, cfg.syslog_facility);
            self.syslog = Some(cfg.syslog_facility);
        }
        errors
    }

    /// Opens every log file anew by its path (after logrotate renamed it, new lines go to a
    /// new file). A file that cannot be opened keeps its old handle and is reported.
    pub(crate) fn reopen(&mut self) -> Vec<FileError> {
        let mut errors = Vec::new();
        for f in &mut self.files {
            match open_logfile(&f.path) {
                Ok(file) => f.file = file,
                Err(source) => errors.push(FileError {
                    path: f.path.clone(),
                    source,
                }),
            }
        }
        errors
    }

    /// Writes `rec` where `route` says, one line per line of its message. `origin` is the
    /// process that logged it, when not this one (its pid and name go into the log file).
    pub(crate) fn write(
        &mut self,
        cfg: &LogConfig,
        route: Route,
        rec: &Record<'_>,
        origin: Option<(u32, &str)>,
    ) {
        let f = Format {
            timestamp: cfg.timestamp,
            fileline: cfg.fileline,
        };
        let t = LocalTime::of(rec.time);
        let (pid, name) = origin.unwrap_or((self.pid, self.name));
        let process = Process {
            pid,
            host: &self.host,
            name,
        };
        let logfile = route
            .logfile
            .then(|| cfg.settings(rec.tag).logfile.as_deref())
            .flatten();
        let mut lines = rec.message.split('\n');
        let first = lines.next().unwrap_or("");
        for message in std::iter::once(first).chain(lines) {
            let line = Line {
                level: rec.level,
                tag: rec.tag,
                file: rec.file,
                line: rec.line,
                message,
            };
            if route.stderr {
                format::stderr_line(&f, &t, &line, &mut self.line);
                self.line.push('\n');
                let _ = self.stderr.write_all(self.line.as_bytes());
            }
            if let Some(path) = logfile {
                if let Some(lf) = self.files.iter_mut().find(|lf| lf.path == path) {
                    format::file_line(&f, &t, &process, &line, &mut self.line);
                    self.line.push('\n');
                    let _ = lf.file.write_all(self.line.as_bytes());
                }
            }
            if route.syslog && self.syslog.is_some() {
                format::syslog_line(&f, &line, &mut self.line);
                syslog(rec.level, &self.line);
            }
        }
    }
}

fn open_logfile(path: &str) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOGFILE_MODE)
        .open(path)
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// syslog's identity string: openlog keeps the pointer, so it must live as long as the process.
static SYSLOG_IDENT: OnceLock<CString> = OnceLock::new();

fn open_syslog(name: &str, facility: SyslogFacility) {
    let ident: &CStr =
        SYSLOG_IDENT.get_or_init(|| CString::new(name).unwrap_or_else(|_| CString::from(c"rotor")));
    let facility = match facility {
        SyslogFacility::Daemon => libc::LOG_DAEMON,
        SyslogFacility::Local(n) => libc::LOG_LOCAL0 + (libc::c_int::from(n.min(7)) << 3),
    };
    // SAFETY: the identity is a NUL-terminated string that lives for the rest of the process.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, facility) };
}

fn syslog(level: Level, line: &str) {
    // syslog has no trace priority: trace lines go as debug.
    let priority = libc::c_int::from(level.code().min(Level::Debug.code()));
    let Ok(text) = CString::new(line.replace('\0', " ")) else {
        return;
    };
    // SAFETY: a "%s" format with one valid NUL-terminated string argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) };
}
