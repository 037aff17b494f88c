//! `rotord`: the control process of a rotor node. Reads corosync.conf, checks the authkey,
//! starts and supervises the dataplane, serves cmap/cfg and brokers CPG attaches.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use rotor_control::cmap::Cmap;
use rotor_control::config::{self, paths};
use rotor_control::daemon::{local_node, Daemon, Plan};
use rotor_control::log_at;

#[derive(Parser, Debug)]
#[command(
    name = "rotord",
    about = "rotor cluster engine: the control process",
    disable_version_flag = true
)]
struct Args {
    /// Config file (else $COROSYNC_MAIN_CONFIG_FILE, else /etc/corosync/corosync.conf).
    #[arg(short = 'c')]
    config: Option<PathBuf>,
    /// Stay in the foreground.
    #[arg(short = 'f')]
    foreground: bool,
    /// Test the config and exit.
    #[arg(short = 't')]
    test: bool,
    /// Print the version and exit.
    #[arg(short = 'v')]
    version: bool,
    /// rotor extension: which nodelist entry is this node (else the entry whose ring0_addr is
    /// an address of this host). For several nodes on one host.
    #[arg(long)]
    node_id: Option<u32>,
    /// rotor extension: the dataplane binary (else `rotor-dataplane` beside rotord).
    #[arg(long)]
    dataplane: Option<PathBuf>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = rotor_control::privs::refuse_setid() {
        eprintln!("rotord: {e}");
        return ExitCode::FAILURE;
    }
    if args.version {
        println!("rotord {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let path = paths::config_path(args.config.as_deref());
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rotord: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &cfg.warnings {
        eprintln!("rotord: warning: {w:?}");
    }
    let (node_id, bind, peers) = match local_node(&cfg, args.node_id) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("rotord: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cluster_name = cfg
        .totem
        .cluster_name
        .clone()
        .unwrap_or_else(|| rotor_control::config::CLUSTER_NAME_DEFAULT.to_owned());
    let keyfile = paths::authkey_path(cfg.totem.keyfile.as_deref());
    let crypto_on = !(cfg.totem.crypto_cipher == "none" && cfg.totem.crypto_hash == "none");
    if crypto_on {
        if let Err(e) = rotor_crypto::Keys::from_authkey_file(&keyfile, &cluster_name) {
            eprintln!("rotord: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) =
        rotor_crypto::CryptoMode::from_corosync(&cfg.totem.crypto_cipher, &cfg.totem.crypto_hash)
    {
        eprintln!("rotord: {}: totem.crypto_cipher/crypto_hash: {e}", cfg.file);
        return ExitCode::FAILURE;
    }
    if args.test {
        println!(
            "{}: configuration is valid (node {node_id} at {bind}, {} other node(s))",
            cfg.file,
            peers.len()
        );
        return ExitCode::SUCCESS;
    }
    let dataplane = args.dataplane.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("rotor-dataplane")))
            .unwrap_or_else(|| PathBuf::from("rotor-dataplane"))
    });
    let mut cmap = Cmap::new();
    if let Err(e) = cfg.load_into(&mut cmap) {
        eprintln!("rotord: {}: {e}", cfg.file);
        return ExitCode::FAILURE;
    }
    // From here on every line goes through the logger, as logging{} says.
    match rotor_log::install(
        &rotor_control::log::config(&cmap, args.foreground),
        "rotord",
    ) {
        Ok(unopened) => {
            for e in unopened {
                log_at!(Error, "MAIN", "{e}; logging to the other destinations");
            }
        }
        Err(e) => eprintln!("rotord: {e}"),
    }
    if !args.foreground {
        // SAFETY: daemon(3) forks before any thread of ours exists; it keeps the cwd and
        // redirects stdio to /dev/null (logging{} decides where the log goes).
        if unsafe { libc::daemon(1, 0) } != 0 {
            eprintln!("rotord: cannot detach: {}", std::io::Error::last_os_error());
            return ExitCode::FAILURE;
        }
    }
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
    let state_dir = match cmap.get("system.state_dir") {
        Some(rotor_control::cmap::Value::String(dir)) => PathBuf::from(dir),
        _ => PathBuf::from(rotor_control::daemon::STATE_DIR_DEFAULT),
    };
    let plan = Plan {
        config: cfg,
        node_id,
        bind,
        peers,
        keyfile,
        cluster_name,
        dataplane,
        socket_base: ipc_shm::socket_name(),
        foreground: args.foreground,
        state_dir,
    };
    log_at!(
        Notice,
        "MAIN",
        "rotord {} starting: node {node_id} at {bind}, cluster {}",
        env!("CARGO_PKG_VERSION"),
        plan.cluster_name
    );
    let mut daemon = match Daemon::new(plan, cmap) {
        Ok(d) => d,
        Err(e) => {
            log_at!(Error, "MAIN", "{e}");
            return ExitCode::FAILURE;
        }
    };
    match daemon.run(&|| STOP.load(Ordering::SeqCst)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log_at!(Error, "MAIN", "{e}");
            ExitCode::FAILURE
        }
    }
}
