//! `rotor sam demo`: an application under SAM that fails on purpose, to show what the
//! supervisor does (and for the tests to drive every policy). Each instance prints what it
//! does on stdout as `instance N (pid P): …`; the supervisor's decisions are its lines on
//! stderr (`… [SAM   ] sam[PID]: …`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use rotor_cli::rotor::{
    SamDemoOptions as Options, SamOnWarn as OnWarn, SamPolicy as PolicyArg,
};
use rotor_client::sam::{Policy, Sam, SamError};

enum Fail {
    Hang,
    Crash,
    Exit(i32),
    MarkFailed,
    None,
}

fn parse_fail(s: &str) -> Result<Fail, String> {
    Ok(match s {
        "hang" => Fail::Hang,
        "crash" => Fail::Crash,
        "mark-failed" => Fail::MarkFailed,
        "none" => Fail::None,
        _ => match s.strip_prefix("exit:").map(str::parse) {
            Some(Ok(code)) => Fail::Exit(code),
            _ => {
                return Err(format!(
                    "--fail {s}: expected hang, crash, exit:CODE, mark-failed or none"
                ))
            }
        },
    })
}

/// What the warn-signal handler prints (prepared before the handler is installed).
static WARN_LINE: OnceLock<Vec<u8>> = OnceLock::new();

extern "C" fn on_warn_signal(_: libc::c_int) {
    if let Some(line) = WARN_LINE.get() {
        // SAFETY: write(2) is async-signal-safe; the buffer lives for the program.
        unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
    }
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("rotor sam demo: {e}");
    ExitCode::FAILURE
}

pub fn run(o: Options) -> ExitCode {
    let how = match parse_fail(&o.fail) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let policy = match o.policy {
        PolicyArg::Quit => Policy::QUIT,
        PolicyArg::Restart => Policy::RESTART,
        PolicyArg::QuorumQuit => Policy::QUORUM_QUIT,
        PolicyArg::QuorumRestart => Policy::QUORUM_RESTART,
    };
    let policy = if o.cmap { policy.with_cmap() } else { policy };
    match instance(&o, policy, how) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn instance(o: &Options, policy: Policy, how: Fail) -> Result<ExitCode, SamError> {
    if o.ignore_sigchld {
        // SAFETY: ignoring a signal.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    }
    let sam = Arc::new(Sam::initialize(o.interval, policy)?);
    if let Some(s) = o.warn_signal {
        sam.warn_signal_set(s)?;
    }
    let id = sam.register()?;
    let pid = std::process::id();
    let say = |text: &str| println!("instance {id} (pid {pid}): {text}");
    say(&format!(
        "registered (policy {policy}, interval {} ms)",
        o.interval
    ));
    if o.ignore_sigchld {
        // SAFETY: an all-zero sigaction is valid; sigaction only writes into it.
        let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut now) };
        if now.sa_sigaction == libc::SIG_IGN {
            say("SIGCHLD is ignored, as the application set it");
        } else {
            say("SIGCHLD is not ignored any more");
        }
    }

    // The data store: every instance appends its number to what the ones before it left.
    let old = sam.data()?;
    match std::str::from_utf8(&old) {
        Ok("") => say("no data stored"),
        Ok(t) if t.len() <= 200 => say(&format!("restored data: {t}")),
        _ => say(&format!("restored {} bytes of data", old.len())),
    }
    let new = match o.data_bytes {
        Some(n) => vec![b'x'; n],
        None if old.is_empty() => id.to_string().into_bytes(),
        None => format!("{} {id}", String::from_utf8_lossy(&old)).into_bytes(),
    };
    sam.data_store(&new)?;
    say(&format!("stored {} bytes", new.len()));

    match o.on_warn {
        OnWarn::Default => {}
        OnWarn::Ignore => {
            // SAFETY: ignoring a signal.
            unsafe { libc::signal(sam.warn_signal(), libc::SIG_IGN) };
        }
        OnWarn::Report => {
            let line = format!(
                "instance {id} (pid {pid}): got the warn signal {}, carrying on\n",
                sam.warn_signal()
            );
            let _ = WARN_LINE.set(line.into_bytes());
            // SAFETY: the handler only calls write(2).
            unsafe {
                libc::signal(
                    sam.warn_signal(),
                    on_warn_signal as *const () as libc::sighandler_t,
                )
            };
        }
    }

    let calls = Arc::new(AtomicU32::new(0));
    if o.callback {
        let (calls, checks, last) = (calls.clone(), o.checks, id == o.instances);
        let failing = !matches!(how, Fail::None) && !last;
        sam.hc_callback_register(Some(Box::new(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let healthy = !failing || n <= checks;
            let what = if healthy { "healthy" } else { "failure" };
            println!("instance {id} (pid {pid}): callback {n}: {what}");
            healthy
        })))?;
    }

    sam.start()?;
    say("started health checking");

    let half = u64::from(o.interval / 2).max(1);
    for i in 0..o.children {
        // SAFETY: fork(2); the child prints, sleeps and exits without returning here.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let me = std::process::id();
            match sam.hc_send() {
                Ok(()) => println!("child {i} (pid {me}) of instance {id}: hc_send accepted"),
                Err(e) => println!("child {i} (pid {me}) of instance {id}: {e}"),
            }
            sleep_ms(o.child_ms.unwrap_or(u64::from(o.interval) * 4));
            println!("child {i} (pid {me}) of instance {id}: exiting");
            std::process::exit(0);
        }
        say(&format!("forked child {i} (pid {child})"));
    }

    let checks = |n: u32| -> Result<(), SamError> {
        for i in 1..=n {
            sleep_ms(half);
            if !o.callback {
                sam.hc_send()?;
                say(&format!("health check {i}"));
            }
        }
        Ok(())
    };
    checks(o.checks)?;
    if o.stop_start {
        sam.stop()?;
        say("stopped health checking");
        sleep_ms(u64::from(o.interval) * 2);
        sam.start()?;
        say("started health checking again");
        checks(1)?;
    }

    if id == o.instances {
        sam.stop()?;
        sam.finalize()?;
        say("done: stopped health checking, exiting with status 0");
        return Ok(ExitCode::SUCCESS);
    }
    if o.callback {
        say("leaving the health checks to SAM's thread");
        hang()
    }
    match how {
        Fail::Hang => {
            say("hanging: no more health checks");
            hang()
        }
        Fail::Crash => {
            say("crashing (abort)");
            std::process::abort()
        }
        Fail::Exit(code) => {
            say(&format!("exiting with status {code} while health checking"));
            std::process::exit(code)
        }
        Fail::MarkFailed => {
            sam.mark_failed()?;
            say("marked itself failed");
            hang()
        }
        Fail::None => loop {
            sleep_ms(half);
            sam.hc_send()?;
        },
    }
}

fn hang() -> ! {
    loop {
        sleep_ms(1000);
    }
}
