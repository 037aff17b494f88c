//! `rotor cmap`: corosync-cmapctl's forms and output, line for line — what the tool prints on
//! stdout and stderr and its exit status follow tools/corosync-cmapctl.c of corosync 3.1.7, so
//! scripts and monitoring written for it read rotor the same way (the tests run the real
//! corosync-cmapctl against rotor through rotor's libcmap and compare).

use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::process::ExitCode;

use rotor_cli::rotor::CmapArgs;
use rotor_client::cmap::{
    Cmap, Map, Value, ValueType, TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX,
};
use rotor_client::Error;
use rotor_proto::cmap::format_cmapctl_line;

/// What corosync-cmapctl was asked to do.
#[derive(Clone, Debug, PartialEq)]
enum Action {
    Print,
    Get,
    Set,
    Delete,
    DeletePrefix,
    Track { prefix: bool },
    Load(std::path::PathBuf),
    Clear(String),
}

/// The `-C` arguments corosync-cmapctl accepts.
const CLEAR_WHAT: [&str; 5] = ["knet", "totem", "ipc", "schedmiss", "all"];

/// cmapctl's failure exit status (`EXIT_FAILURE`).
fn failure() -> ExitCode {
    ExitCode::FAILURE
}

/// The name corosync's `cs_strerror` gives the error a libcmap call would have returned (the
/// same mapping as rotor's libcmap).
fn cs_name(e: &Error) -> &'static str {
    match e {
        Error::Attach(ipc_shm::AttachError::PermissionDenied { .. }) => "CS_ERR_ACCESS",
        Error::Attach(_) | Error::Session(_) | Error::Protocol(_) | Error::Decode(_) => {
            "CS_ERR_LIBRARY"
        }
        Error::TryAgain => "CS_ERR_TRY_AGAIN",
        Error::Timeout => "CS_ERR_TIMEOUT",
        Error::Status(s) | Error::Refused { status: s, .. } => s.name(),
    }
}

/// After corosync-cmapctl's own line for a refusal: rotord's reason, when a key may not be
/// changed (read-only, or set in corosync.conf: what to do instead). An extra line on stderr;
/// stdout and the exit status stay corosync-cmapctl's.
fn explain(e: &Error) {
    if let Error::Refused {
        status: rotor_proto::Status::Access,
        message,
    } = e
    {
        if !message.is_empty() {
            eprintln!("rotor: {message}");
        }
    }
}

/// rotor's longer spellings, kept for scripts written against them: `get KEY…`, `set KEY TYPE
/// VALUE`, `delete KEY…`, `list [PREFIX…]`, `track PREFIX…`.
fn legacy_action(args: &mut CmapArgs) {
    let any_action = args.get
        || args.set
        || args.delete
        || args.delete_prefix
        || args.track
        || args.track_prefix
        || args.load.is_some()
        || args.clear.is_some();
    if any_action {
        return;
    }
    let word = match args.params.first() {
        Some(w) => w.as_str(),
        None => return,
    };
    let flag = match word {
        "get" => &mut args.get,
        "set" => &mut args.set,
        "delete" => &mut args.delete,
        "track" => &mut args.track_prefix,
        "list" => {
            args.params.remove(0);
            return;
        }
        _ => return,
    };
    *flag = true;
    args.params.remove(0);
}

fn action(args: &CmapArgs) -> Action {
    if let Some(what) = &args.clear {
        return Action::Clear(what.clone());
    }
    if let Some(file) = &args.load {
        return Action::Load(file.clone());
    }
    if args.get {
        Action::Get
    } else if args.set {
        Action::Set
    } else if args.delete {
        Action::Delete
    } else if args.delete_prefix {
        Action::DeletePrefix
    } else if args.track {
        Action::Track { prefix: false }
    } else if args.track_prefix {
        Action::Track { prefix: true }
    } else {
        Action::Print
    }
}

/// Runs `rotor cmap` with corosync-cmapctl's semantics.
pub fn run(mut args: CmapArgs) -> ExitCode {
    legacy_action(&mut args);
    let action = action(&args);
    let mut map = Map::Default;
    if let Action::Clear(what) = &action {
        if !CLEAR_WHAT.contains(&what.as_str()) {
            eprintln!("argument to -C should be 'knet', 'totem', 'ipc', 'schedmiss' or 'all'");
            return failure();
        }
        map = Map::Stats;
    }
    if let Some(name) = &args.map {
        map = match name.as_str() {
            "icmap" | "default" => Map::Default,
            "stats" => Map::Stats,
            _ => {
                eprintln!("invalid map name, must be 'default', 'icmap' or 'stats'");
                return failure();
            }
        };
    }
    if args.params.is_empty()
        && !matches!(action, Action::Load(_) | Action::Clear(_) | Action::Print)
    {
        eprintln!("Expected key after options");
        return failure();
    }
    let mut c = match Cmap::initialize_map(map) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Failed to initialize the cmap API. Error {}", cs_name(&e));
            // corosync-cmapctl's line, then why and what to do (rotord's refusal names the
            // uid and the uidgid setting that would admit it).
            eprintln!("rotor: {e}");
            return failure();
        }
    };
    let out = Printer {
        quiet: args.quiet,
        show_binary: args.show_binary > 0,
    };
    let params = &args.params;
    match action {
        Action::Print => {
            let prefixes: Vec<&str> = if params.is_empty() {
                vec![""]
            } else {
                params.iter().map(String::as_str).collect()
            };
            let mut no_result = 0;
            for prefix in prefixes {
                match c.iter(prefix) {
                    Ok(entries) if entries.is_empty() => no_result += 1,
                    Ok(entries) => entries.iter().for_each(|(k, v)| out.key(k, v)),
                    Err(e) => {
                        eprintln!("Failed to initialize iteration. Error {}", cs_name(&e));
                        return failure();
                    }
                }
            }
            if no_result > 0 && no_result >= params.len() {
                return failure();
            }
        }
        Action::Get => {
            for key in params {
                match c.get(key) {
                    Ok(v) => out.key(key, &v),
                    Err(e) => {
                        eprintln!("Can't get key {key}. Error {}", cs_name(&e));
                        return failure();
                    }
                }
            }
        }
        Action::Set => {
            if params.len() < 3 {
                eprintln!("At least 3 parameters are expected for set");
                return failure();
            }
            if let Err(code) = set_key(&mut c, &params[0], &params[1], &params[2]) {
                return code;
            }
        }
        Action::Delete => {
            for key in params {
                if let Err(e) = c.delete(key) {
                    eprintln!("Can't delete key {key}. Error {}", cs_name(&e));
                    explain(&e);
                    return failure();
                }
            }
        }
        Action::DeletePrefix => {
            for prefix in params {
                if let Err(code) = delete_with_prefix(&mut c, prefix) {
                    return code;
                }
            }
        }
        Action::Load(file) => {
            if let Err(code) = load(&mut c, &file) {
                return code;
            }
        }
        Action::Track { prefix } => {
            let mut flags = TRACK_ADD | TRACK_DELETE | TRACK_MODIFY;
            if prefix {
                flags |= TRACK_PREFIX;
            }
            for key in params {
                if let Err(e) = c.track_add(key, flags) {
                    eprintln!("Failed to add tracking function. Error {}", cs_name(&e));
                    return failure();
                }
            }
            return track(&mut c, &out);
        }
        Action::Clear(what) => {
            // corosync-cmapctl ignores the result too.
            let _ = c.set(&format!("stats.clear.{what}"), Value::U32(1));
        }
    }
    ExitCode::SUCCESS
}

/// print_key: `key (type) = value`, or the value alone with `-q`.
struct Printer {
    quiet: bool,
    show_binary: bool,
}

impl Printer {
    fn text(&self, key: &str, value: &Value) -> String {
        let full = format_cmapctl_line(key, value, self.show_binary);
        if !self.quiet {
            return full;
        }
        // "key (" is left out; corosync-cmapctl still prints a binary value's "bin)".
        let rest = &full[key.len() + 2..];
        if value.value_type() == ValueType::Binary {
            rest.to_owned()
        } else {
            rest.split_once(") = ")
                .map_or(String::new(), |(_, v)| v.to_owned())
        }
    }

    fn key(&self, key: &str, value: &Value) {
        println!("{}", self.text(key, value));
    }
}

/// delete_with_prefix: every key under `prefix`; a key that cannot be deleted is reported and
/// the rest still go.
fn delete_with_prefix(c: &mut Cmap, prefix: &str) -> Result<(), ExitCode> {
    let entries = c.iter(prefix).map_err(|e| {
        eprintln!("Failed to initialize iteration. Error {}", cs_name(&e));
        failure()
    })?;
    for (key, _) in entries {
        if let Err(e) = c.delete(&key) {
            eprintln!("Can't delete key {key}. Error {}", cs_name(&e));
        }
    }
    Ok(())
}

/// set_key: the value parsed as corosync-cmapctl parses it (sscanf), range-checked for the
/// type, a binary value read from a file (`-` for stdin).
fn set_key(c: &mut Cmap, key: &str, type_name: &str, text: &str) -> Result<(), ExitCode> {
    let Some(t) = ValueType::from_cmapctl_name(type_name) else {
        eprintln!("Unknown type {type_name}");
        return Err(failure());
    };
    let not_valid = || {
        eprintln!("{text} is not valid {type_name} type value");
        failure()
    };
    let out_of_range = || {
        eprintln!("{text} is not valid {type_name} integer");
        failure()
    };
    let value = match t {
        ValueType::I8 | ValueType::I16 | ValueType::I32 | ValueType::I64 => {
            let v = scan_signed(text).ok_or_else(not_valid)?;
            match t {
                ValueType::I8 => Value::I8(i8::try_from(v).map_err(|_| out_of_range())?),
                ValueType::I16 => Value::I16(i16::try_from(v).map_err(|_| out_of_range())?),
                ValueType::I32 => Value::I32(i32::try_from(v).map_err(|_| out_of_range())?),
                _ => Value::I64(v),
            }
        }
        ValueType::U8 | ValueType::U16 | ValueType::U32 | ValueType::U64 => {
            let v = scan_unsigned(text).ok_or_else(not_valid)?;
            match t {
                ValueType::U8 => Value::U8(u8::try_from(v).map_err(|_| out_of_range())?),
                ValueType::U16 => Value::U16(u16::try_from(v).map_err(|_| out_of_range())?),
                ValueType::U32 => Value::U32(u32::try_from(v).map_err(|_| out_of_range())?),
                _ => Value::U64(v),
            }
        }
        ValueType::Float => Value::Float(scan_float::<f32>(text).ok_or_else(not_valid)?),
        ValueType::Double => Value::Double(scan_float::<f64>(text).ok_or_else(not_valid)?),
        ValueType::String => Value::String(text.to_owned()),
        ValueType::Binary => Value::Binary(read_binary(text)?),
    };
    c.set(key, value).map_err(|e| {
        eprintln!("Failed to set key {key}. Error {}", cs_name(&e));
        explain(&e);
        failure()
    })
}

/// A binary value's bytes: the file `name`, or standard input for `-`.
fn read_binary(name: &str) -> Result<Vec<u8>, ExitCode> {
    let mut bytes = Vec::new();
    let read = if name == "-" {
        std::io::stdin().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(name).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    match read {
        Ok(_) => Ok(bytes),
        Err(e) => {
            // perror's layout.
            eprintln!("Can't open input file: {}", strerror(&e));
            Err(failure())
        }
    }
}

/// The C library's text of an I/O error (what perror prints), without Rust's "(os error N)".
fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// read_in_config_file: `[^[^]]KEY[ TYPE VALUE]` per line, fields split at spaces.
fn load(c: &mut Cmap, file: &Path) -> Result<(), ExitCode> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) => {
            // perror("Couldn't open file.") — and corosync-cmapctl still exits 0.
            eprintln!("Couldn't open file.: {}", strerror(&e));
            return Ok(());
        }
    };
    for raw in text.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(' ').filter(|f| !f.is_empty());
        let Some(key) = fields.next() else { continue };
        if let Some(prefix) = key.strip_prefix("^^") {
            delete_with_prefix(c, prefix)?;
        } else if let Some(key) = key.strip_prefix('^') {
            if let Err(e) = c.delete(key) {
                eprintln!("Can't delete key {key}. Error {}", cs_name(&e));
            }
        } else {
            let (Some(type_name), Some(value)) = (fields.next(), fields.next()) else {
                eprintln!("Both type and value for key {key} are required");
                return Err(failure());
            };
            set_key(c, key, type_name, value)?;
        }
    }
    Ok(())
}

/// track_changes: "Type "q" to finish", then every change as it comes, until a line starting
/// with q or the end of standard input.
fn track(c: &mut Cmap, out: &Printer) -> ExitCode {
    println!("Type \"q\" to finish");
    let _ = std::io::stdout().flush();
    loop {
        let fd = match c.fd() {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("Failed to get file handle. Error {}", cs_name(&e));
                return failure();
            }
        };
        let (cmap_ready, stdin_ready, hung_up) = wait(fd, c.control_fd());
        if stdin_ready && stdin_says_quit() {
            return ExitCode::SUCCESS;
        }
        if cmap_ready || hung_up {
            loop {
                match c.poll_notification(None) {
                    Ok(Some(n)) => {
                        let (kind, value) = match n.kind {
                            TRACK_ADD => ("create", &n.new),
                            TRACK_DELETE => ("delete", &n.old),
                            _ => ("modify", &n.new),
                        };
                        match value {
                            Some(v) => println!("{kind}> {}", out.text(&n.key, v)),
                            None => println!("{kind}> {}", n.key),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("Dispatch error {}", cs_name(&e));
                        return ExitCode::SUCCESS;
                    }
                }
            }
        }
    }
}

/// poll(2) on the cmap fd, the session's control socket and stdin.
fn wait(cmap_fd: RawFd, control_fd: RawFd) -> (bool, bool, bool) {
    let mut p = [
        libc::pollfd {
            fd: cmap_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: control_fd,
            events: 0,
            revents: 0,
        },
    ];
    // SAFETY: a valid array of three pollfds.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, -1) };
    if r <= 0 {
        return (false, false, false);
    }
    (
        p[0].revents != 0,
        p[1].revents != 0,
        p[2].revents & (libc::POLLHUP | libc::POLLERR) != 0,
    )
}

/// Reads what standard input has: the end of it, or a line starting with `q`, means quit.
fn stdin_says_quit() -> bool {
    let mut buf = [0u8; 256];
    // SAFETY: reads into a buffer of its length.
    let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return true;
    }
    buf[..n as usize]
        .split(|&b| b == b'\n')
        .any(|line| line.first() == Some(&b'q'))
}

/// The number sscanf("%" PRId64) reads: leading white space, a sign, the digits that follow
/// (what comes after them is ignored); glibc saturates on overflow.
fn scan_signed(text: &str) -> Option<i64> {
    let (negative, digits) = scan_digits(text)?;
    let magnitude: i128 = digits.parse().unwrap_or(i128::MAX);
    let v = if negative { -magnitude } else { magnitude };
    Some(v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// The number sscanf("%" PRIu64) reads: as strtoull, a minus sign negates modulo 2^64.
fn scan_unsigned(text: &str) -> Option<u64> {
    let (negative, digits) = scan_digits(text)?;
    let magnitude: u64 = digits.parse().unwrap_or(u64::MAX);
    Some(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

fn scan_digits(text: &str) -> Option<(bool, &str)> {
    let t = text.trim_start();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = t.bytes().take_while(u8::is_ascii_digit).count();
    (end > 0).then(|| (negative, &t[..end]))
}

/// The number sscanf("%f"/"%lf") reads: the longest prefix (after white space) that is a
/// decimal number, `inf`/`infinity` or `nan`.
fn scan_float<T: std::str::FromStr>(text: &str) -> Option<T> {
    let t = text.trim_start();
    let candidate = t
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    (1..=candidate).rev().find_map(|n| t[..n].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_as_sscanf_reads_them() {
        assert_eq!(scan_signed("42"), Some(42));
        assert_eq!(scan_signed("  -7xyz"), Some(-7));
        assert_eq!(scan_signed("abc"), None);
        assert_eq!(scan_signed("-"), None);
        assert_eq!(scan_signed("99999999999999999999"), Some(i64::MAX));
        assert_eq!(scan_unsigned("-1"), Some(u64::MAX));
        assert_eq!(scan_unsigned("+12"), Some(12));
        assert_eq!(scan_float::<f64>("2.5"), Some(2.5));
        assert_eq!(scan_float::<f64>("1e"), Some(1.0));
        assert_eq!(scan_float::<f32>(" .5x"), Some(0.5));
        assert!(scan_float::<f64>("nan").is_some_and(f64::is_nan));
        assert_eq!(scan_float::<f64>("x"), None);
    }

    #[test]
    fn the_old_words_are_cmapctl_flags() {
        let mut a = CmapArgs {
            params: vec!["set".into(), "k.k".into(), "u8".into(), "1".into()],
            ..CmapArgs::default()
        };
        legacy_action(&mut a);
        assert_eq!(action(&a), Action::Set);
        assert_eq!(a.params, ["k.k", "u8", "1"]);
        let mut a = CmapArgs {
            params: vec!["list".into()],
            ..CmapArgs::default()
        };
        legacy_action(&mut a);
        assert_eq!((action(&a), a.params.len()), (Action::Print, 0));
        let mut a = CmapArgs {
            get: true,
            params: vec!["list".into()],
            ..CmapArgs::default()
        };
        legacy_action(&mut a);
        assert_eq!(
            (action(&a), a.params.len()),
            (Action::Get, 1),
            "a key named list"
        );
    }

    #[test]
    fn quiet_prints_the_value_alone_but_binaries_keep_their_type() {
        let p = Printer {
            quiet: true,
            show_binary: false,
        };
        assert_eq!(p.text("a.b", &Value::U32(7)), "7");
        assert_eq!(p.text("a.b", &Value::String("x = y".into())), "x = y");
        assert_eq!(p.text("a.b", &Value::Binary(vec![1])), "bin)");
        let p = Printer {
            quiet: true,
            show_binary: true,
        };
        assert_eq!(p.text("a.b", &Value::Binary(b"hi".to_vec())), "bin) = hi");
    }
}
