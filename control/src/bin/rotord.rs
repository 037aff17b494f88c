//! `rotord`: the control process of a rotor node. Reads corosync.conf, checks the authkey,
//! starts and supervises the dataplane, serves cmap/cfg and brokers CPG attaches. Exit statuses
//! are corosync's (see `rotor_control::error`): 8 for a configuration or key that cannot work,
//! 7 for logging that cannot be set up, 18 when another rotord runs here, 15 for the rest.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use rotor_cli::clap::Parser;
use rotor_cli::rotord::Args;
use rotor_control::cmap::CmapStore;
use rotor_control::config::{self, paths};
use rotor_control::daemon::{Daemon, Plan};
use rotor_control::error::{DaemonError, EXIT_CONFIG, EXIT_OK};
use rotor_control::log_at;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Before logging{} applies: one line on stderr, the exit status of the error.
fn early_exit(e: DaemonError) -> ExitCode {
    eprintln!("rotord: {e}");
    ExitCode::from(e.exit_code())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rotor_control::privs::refuse_setid() {
        eprintln!("rotord: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if args.version {
        println!("rotord {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let path = paths::config_path(args.config.as_deref());
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) => return early_exit(DaemonError::Config(e.to_string())),
    };
    let mut warnings: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    let dataplane = args.dataplane.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("rotor-dataplane")))
            .unwrap_or_else(|| PathBuf::from("rotor-dataplane"))
    });
    let plan = match Plan::new(cfg, args.node_id, dataplane, ipc_shm::socket_name()) {
        Ok(mut p) => {
            p.foreground = args.foreground;
            p
        }
        Err(e) => {
            for w in &warnings {
                eprintln!("rotord: warning: {w}");
            }
            return early_exit(e);
        }
    };
    warnings.extend(plan.node.warnings.iter().cloned());
    if args.test {
        for w in &warnings {
            eprintln!("rotord: warning: {w}");
        }
        println!(
            "{}: configuration is valid (node {} at {}, {} other node(s))",
            plan.config.file,
            plan.node.node_id,
            plan.node.bind,
            plan.node.peers.len()
        );
        return ExitCode::from(EXIT_OK);
    }
    let mut cmap = CmapStore::new();
    if let Err(e) = plan.config.load_into(&mut cmap) {
        return early_exit(DaemonError::Config(format!("{}: {e}", plan.config.file)));
    }
    // From here on every line goes through the logger, as logging{} says.
    match rotor_log::install(
        &rotor_control::log::config(&cmap, args.foreground),
        "rotord",
    ) {
        Ok(unopened) if unopened.is_empty() => {}
        Ok(unopened) => {
            let reasons: Vec<String> = unopened.iter().map(|e| e.to_string()).collect();
            return early_exit(DaemonError::Log(reasons.join("; ")));
        }
        Err(e) => return early_exit(DaemonError::Log(e.to_string())),
    }
    if !args.foreground {
        // SAFETY: daemon(3) forks before any thread of ours exists; it keeps the cwd and
        // redirects stdio to /dev/null (logging{} decides where the log goes).
        if unsafe { libc::daemon(1, 0) } != 0 {
            eprintln!("rotord: cannot detach: {}", std::io::Error::last_os_error());
            return ExitCode::from(rotor_control::error::EXIT_FATAL);
        }
    }
    // After daemon(3): the lock belongs to the process that runs (fcntl locks are not
    // inherited across fork).
    let _pid_file = match args
        .pid_file
        .as_deref()
        .map(rotor_control::pidfile::PidFile::acquire)
    {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            log_at!(Error, "MAIN", "{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // Before any other thread starts (they inherit the blocked signal).
    if let Err(e) = rotor_control::log::reopen_on_sighup() {
        log_at!(Warning, "MAIN", "SIGHUP will not reopen the log files: {e}");
    }
    log_at!(
        Notice,
        "MAIN",
        "rotord {} starting: node {} at {}, cluster {}",
        env!("CARGO_PKG_VERSION"),
        plan.node.node_id,
        plan.node.bind,
        plan.cluster_name
    );
    for w in &warnings {
        log_at!(Warning, "MAIN", "{w}");
    }
    // Before the dataplane starts (it inherits this thread's scheduling) and before the
    // privileges are dropped (CAP_SYS_NICE).
    match rotor_control::sched::apply(rotor_control::sched::wanted(&plan.config.entries)) {
        (true, line) => log_at!(Notice, "MAIN", "{line}"),
        (false, line) => log_at!(Warning, "MAIN", "{line}"),
    }
    let result =
        Daemon::new(plan, cmap).and_then(|mut daemon| daemon.run(&|| STOP.load(Ordering::SeqCst)));
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            log_at!(Error, "MAIN", "{e}");
            log_at!(
                Error,
                "MAIN",
                "rotord stops with exit status {}",
                e.exit_code()
            );
            ExitCode::from(e.exit_code())
        }
    }
}
