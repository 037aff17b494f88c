//! The subscriber end to end on `tracing` events: tags, levels, notice, filtering per
//! subsystem, the log file with its timestamp, reopen, forwarding over a socket.

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rotor_proto::control::FromDataplane;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn stderr_only() -> LogConfig {
    LogConfig {
        timestamp: Timestamp::Off,
        all: LogSettings {
            to_syslog: false,
            ..LogSettings::default()
        },
        ..LogConfig::default()
    }
}

/// Runs `f` with a logger on `config` writing stderr lines into the returned buffer.
fn with_logger(config: &LogConfig, f: impl FnOnce(&Handle)) -> String {
    let buf = Buf::default();
    let (handle, errors) = Handle::sinks(config, "rotor-test", Box::new(buf.clone()));
    assert!(errors.is_empty(), "{errors:?}");
    let subscriber = tracing_subscriber::registry().with(handle.layer());
    tracing::subscriber::with_default(subscriber, || f(&handle));
    buf.text()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rotor-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn events_become_corosync_lines_with_tag_and_level() {
    let out = with_logger(&stderr_only(), |_| {
        notice!(target: "TOTEM", "A new membership (1.{:x}) was formed.", 8);
        tracing::warn!(target: "CPG", "client pid {} disconnected: {}", 7, "slow");
        tracing::error!(target: "ipc_shm::server", "attach refused: permission denied");
        tracing::info!(target: "xdp_prog::attach", interface = "eth0", queue = 3u32, "bound");
        tracing::info!("no target of ours");
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "notice  [TOTEM ] A new membership (1.8) was formed.",
            "warning [CPG   ] client pid 7 disconnected: slow",
            "error   [IPC   ] attach refused: permission denied",
            "info    [XDP   ] bound interface=eth0 queue=3",
            "info    [MAIN  ] no target of ours",
        ]
    );
}

#[test]
fn fileline_names_this_file() {
    let config = LogConfig {
        fileline: true,
        ..stderr_only()
    };
    let mut line = 0;
    let out = with_logger(&config, |_| {
        line = line!() + 1;
        tracing::info!(target: "MAIN", "here");
    });
    assert_eq!(out, format!("info    [MAIN  ] tests.rs:{line} here\n"));
}

#[test]
fn debug_lines_only_for_subsystems_with_debug_on() {
    let mut config = stderr_only();
    config.subsys.push((
        "CPG".into(),
        LogSettings {
            debug: DebugSetting::On,
            ..config.all.clone()
        },
    ));
    let out = with_logger(&config, |_| {
        tracing::debug!(target: "CPG", "cpg detail");
        tracing::debug!(target: "TOTEM", "totem detail");
        tracing::trace!(target: "CPG", "cpg trace");
        tracing::info!(target: "TOTEM", "totem info");
    });
    assert_eq!(
        out,
        "debug   [CPG   ] cpg detail\ninfo    [TOTEM ] totem info\n"
    );
}

#[test]
fn debug_everywhere_and_trace() {
    let mut config = stderr_only();
    config.all.debug = DebugSetting::On;
    let out = with_logger(&config, |_| {
        tracing::debug!(target: "TOTEM", "totem detail");
        tracing::trace!(target: "TOTEM", "totem trace");
    });
    assert_eq!(out, "debug   [TOTEM ] totem detail\n");
    config.all.debug = DebugSetting::Trace;
    let out = with_logger(&config, |_| {
        tracing::trace!(target: "TOTEM", "totem trace");
    });
    assert_eq!(out, "trace   [TOTEM ] totem trace\n");
}

#[test]
fn priorities_filter_and_notice_outranks_info() {
    let mut config = stderr_only();
    config.all.logfile_priority = Level::Notice;
    let out = with_logger(&config, |_| {
        tracing::info!(target: "MAIN", "plain info");
        notice!(target: "MAIN", "a notice");
        tracing::warn!(target: "MAIN", "a warning");
    });
    assert_eq!(
        out,
        "notice  [MAIN  ] a notice\nwarning [MAIN  ] a warning\n"
    );
}

#[test]
fn reconfigure_turns_debug_on_at_once() {
    let out = with_logger(&stderr_only(), |handle| {
        let emit = || tracing::debug!(target: "QUORUM", "detail");
        emit();
        let mut config = stderr_only();
        config.all.debug = DebugSetting::On;
        assert!(handle.reconfigure(&config).is_empty());
        emit();
        assert!(handle.reconfigure(&stderr_only()).is_empty());
        emit();
    });
    assert_eq!(out, "debug   [QUORUM] detail\n");
}

#[test]
fn multi_line_messages_are_lines_of_their_own() {
    let out = with_logger(&stderr_only(), |_| {
        tracing::warn!(target: "MAIN", "first\nsecond");
    });
    assert_eq!(out, "warning [MAIN  ] first\nwarning [MAIN  ] second\n");
}

fn file_config(path: &std::path::Path, timestamp: Timestamp) -> LogConfig {
    LogConfig {
        timestamp,
        all: LogSettings {
            to_stderr: false,
            to_syslog: false,
            to_logfile: true,
            logfile: Some(path.display().to_string()),
            ..LogSettings::default()
        },
        ..LogConfig::default()
    }
}

#[test]
fn the_log_file_gets_a_human_timestamp_pid_host_and_name() {
    let dir = TempDir::new("file");
    let path = dir.0.join("rotor.log");
    let out = with_logger(&file_config(&path, Timestamp::On), |_| {
        notice!(target: "MAIN", "rotord starting");
    });
    assert_eq!(out, "", "nothing on stderr");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().next().expect("a line");
    // "Mar 07 09:05:42 [PID] HOST rotor-test notice  [MAIN  ] rotord starting"
    let (time, rest) = line.split_at(15);
    let month = &time[..3];
    assert!(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .contains(&month),
        "{line}"
    );
    let digits: Vec<&str> = time[4..].split([' ', ':']).collect();
    assert!(
        digits.len() == 4
            && digits
                .iter()
                .all(|d| d.len() == 2 && d.parse::<u8>().is_ok()),
        "{line}"
    );
    assert!(
        rest.starts_with(&format!(" [{}] ", std::process::id())),
        "{line}"
    );
    assert!(
        rest.ends_with(" rotor-test notice  [MAIN  ] rotord starting"),
        "{line}"
    );
}

#[test]
fn hires_adds_milliseconds_and_off_drops_the_time() {
    let dir = TempDir::new("hires");
    let path = dir.0.join("rotor.log");
    with_logger(&file_config(&path, Timestamp::Hires), |_| {
        tracing::info!(target: "MAIN", "one");
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let ms = &text[15..19];
    assert!(
        ms.starts_with('.') && ms[1..].parse::<u16>().is_ok() && &text[19..21] == " [",
        "{text}"
    );
    let path = dir.0.join("plain.log");
    with_logger(&file_config(&path, Timestamp::Off), |_| {
        tracing::info!(target: "MAIN", "two");
    });
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(&format!("[{}] ", std::process::id())),
        "{text}"
    );
}

#[test]
fn reopen_moves_new_lines_to_a_new_file() {
    let dir = TempDir::new("reopen");
    let path = dir.0.join("rotor.log");
    let rotated = dir.0.join("rotor.log.1");
    with_logger(&file_config(&path, Timestamp::Off), |handle| {
        tracing::info!(target: "MAIN", "before");
        std::fs::rename(&path, &rotated).unwrap();
        tracing::info!(target: "MAIN", "after the rename");
        assert!(handle.reopen().is_empty());
        tracing::info!(target: "MAIN", "after the reopen");
    });
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(
        old.contains("] before\n") && old.contains("] after the rename\n"),
        "{old}"
    );
    assert!(!old.contains("after the reopen"), "{old}");
    assert_eq!(new.lines().count(), 1, "{new}");
    assert!(new.ends_with("[MAIN  ] after the reopen\n"), "{new}");
}

#[test]
fn a_log_file_that_cannot_be_opened_is_reported() {
    let config = file_config(
        std::path::Path::new("/nonexistent-dir/rotor.log"),
        Timestamp::On,
    );
    let (_, errors) = Handle::sinks(&config, "rotor-test", Box::new(Buf::default()));
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(
        text.starts_with("cannot open log file /nonexistent-dir/rotor.log: "),
        "{text}"
    );
}

#[test]
fn a_subsystem_may_have_its_own_file() {
    let dir = TempDir::new("subsys");
    let main = dir.0.join("main.log");
    let cpg = dir.0.join("cpg.log");
    let mut config = file_config(&main, Timestamp::Off);
    config.subsys.push((
        "CPG".into(),
        LogSettings {
            logfile: Some(cpg.display().to_string()),
            ..config.all.clone()
        },
    ));
    with_logger(&config, |_| {
        tracing::info!(target: "CPG", "to cpg");
        tracing::info!(target: "TOTEM", "to main");
    });
    let main = std::fs::read_to_string(&main).unwrap();
    let cpg = std::fs::read_to_string(&cpg).unwrap();
    assert!(
        main.ends_with("[TOTEM ] to main\n") && !main.contains("to cpg"),
        "{main}"
    );
    assert!(
        cpg.ends_with("[CPG   ] to cpg\n") && !cpg.contains("to main"),
        "{cpg}"
    );
}

fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut pair = [0; 2];
    // SAFETY: socketpair fills two descriptors we then own.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: both are fresh descriptors of ours.
    unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) }
}

/// Every record waiting on `sock`.
fn records(sock: &OwnedFd) -> Vec<LogRecord> {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: recv into a live buffer of buf.len() bytes.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            return out;
        }
        match FromDataplane::decode(&buf[..n as usize]).unwrap() {
            FromDataplane::Log(r) => out.push(r),
            other => panic!("not a log record: {other:?}"),
        }
    }
}

#[test]
fn forwarded_records_keep_level_tag_file_and_line() {
    let (ours, theirs) = socketpair();
    let handle = Handle::forwarding(ours);
    let subscriber = tracing_subscriber::registry().with(handle.layer());
    let mut line = 0;
    tracing::subscriber::with_default(subscriber, || {
        // Not configured yet: everything goes up, debug included.
        line = line!() + 1;
        tracing::debug!(target: "TOTEM", "set-up step");
        let mut config = stderr_only();
        config.subsys.push((
            "CPG".into(),
            LogSettings {
                debug: DebugSetting::On,
                ..config.all.clone()
            },
        ));
        handle.reconfigure(&config);
        tracing::debug!(target: "TOTEM", "filtered out");
        tracing::debug!(target: "CPG", "client detail");
        notice!(target: "rotor_dataplane::transport::xsk", "bound");
    });
    let got = records(&theirs);
    let summary: Vec<(Level, &str, &str)> = got
        .iter()
        .map(|r| (r.level, r.subsys.as_str(), r.message.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Level::Debug, "TOTEM", "set-up step"),
            (Level::Debug, "CPG", "client detail"),
            (Level::Notice, "XDP", "bound"),
        ]
    );
    assert_eq!(got[0].line, line);
    assert!(got[0].file.ends_with("log/src/tests.rs"), "{}", got[0].file);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(got[0].unix_time_ns <= now && now - got[0].unix_time_ns < 60_000_000_000);
}

#[test]
fn a_full_socket_drops_lines_and_says_so_later() {
    let (ours, theirs) = socketpair();
    let handle = Handle::forwarding(ours);
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(handle.layer()));
    let before = forward_dropped();
    let sent = 2000;
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..sent {
            tracing::info!(target: "TOTEM", "line {i} {}", "x".repeat(200));
        }
    });
    let first = records(&theirs);
    let dropped = sent - first.len();
    assert!(dropped > 0, "nobody read, yet nothing was dropped");
    assert!(forward_dropped() - before >= dropped as u64);
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!(target: "TOTEM", "after the reader caught up");
    });
    let later = records(&theirs);
    assert_eq!(later.len(), 2, "{later:?}");
    assert_eq!(later[0].level, Level::Warning);
    assert_eq!(
        later[0].message,
        format!("{dropped} log line(s) dropped: the control socket to rotord was full")
    );
    assert_eq!(later[1].message, "after the reader caught up");
}

#[test]
fn records_from_another_process_are_written_with_its_pid_and_name() {
    let dir = TempDir::new("emit");
    let path = dir.0.join("rotor.log");
    let config = file_config(&path, Timestamp::Off);
    let (handle, _) = Handle::sinks(&config, "rotord", Box::new(Buf::default()));
    let rec = LogRecord {
        level: Level::Warning,
        subsys: "TOTEM".into(),
        file: "dataplane/src/runner.rs".into(),
        line: 99,
        message: "Received message has invalid digest... ignoring".into(),
        unix_time_ns: 0,
    };
    handle.lock().log(
        &Record {
            level: rec.level,
            tag: &rec.subsys,
            file: &rec.file,
            line: rec.line,
            message: &rec.message,
            time: forward::time_of(&rec),
        },
        Some((4321, "rotor-dataplane")),
    );
    let mut debug = rec.clone();
    debug.level = Level::Debug;
    handle.lock().log(
        &Record {
            level: Level::Debug,
            tag: "TOTEM",
            file: "x.rs",
            line: 1,
            message: "filtered",
            time: SystemTime::now(),
        },
        Some((4321, "rotor-dataplane")),
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("[4321] ")
            && text.ends_with(
                " rotor-dataplane warning [TOTEM ] Received message has invalid digest... ignoring\n"
            ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}
