//! `rotor cfg`: corosync-cfgtool's options, output text and exit statuses where the feature is
//! the same (`-s`, `-b`, `-i`, `-n`, `-a`, `-k`, `-R`, `-L`, `-H [--force]`), read from
//! corosync's `tools/corosync-cfgtool.c`; rotor's own: `--rotate-key FILE` and `--local-id`.
//! The key lines after the ring line of `-s` are rotor's too (cfgtool has no keys to show).

use std::process::ExitCode;

use rotor_client::cfg::{Cfg, ShutdownFlags, StatusReply};
use rotor_client::cmap::{Cmap, Value};
use rotor_client::Error;
use rotor_proto::Status;

/// What `rotor cfg` does, one action per run (as cfgtool: the last option given wins there;
/// here the options are checked in the order below).
#[derive(Debug, Default)]
pub struct Options {
    pub status: bool,
    pub nodes: bool,
    pub brief: bool,
    pub interface: Option<String>,
    pub reload: bool,
    pub reopen: bool,
    pub kill: Option<String>,
    pub address: Option<String>,
    pub shutdown: bool,
    pub force: bool,
    pub rotate_key: Option<String>,
    pub local_id: bool,
}

/// cfgtool's usage text (`-h`, or no action).
const USAGE: &str =
    "rotor cfg [[-i <interface ip>] [-b] -s] [-R] [-L] [-k nodeid] [-a nodeid] [-h] [-H]
        [--rotate-key FILE] [--local-id]

A tool for displaying and configuring active parameters within rotor.
options:
\t-i\tFinds only information about the specified interface IP address or link id when used with -s..
\t-s\tDisplays the status of the current links on this node.
\t-n\tDisplays the status of the connected nodes and their links.
\t-b\tDisplays the brief status of the current links on this node when used with -s.
\t-R\tTell all instances of rotor in this cluster to reload corosync.conf.
\t-L\tTell rotor to reopen all logging files.
\t-k\tKill a node identified by node id.
\t-a\tDisplay the IP address(es) of a node
\t-h\tPrint basic usage.
\t-H\tShutdown rotor cleanly on this node.
\t\t--force will shut down rotor regardless of daemon vetos
\t--rotate-key FILE\tTell all instances of rotor in this cluster to install the key in FILE.
\t--local-id\tDisplay the local node id.
";

/// cfgtool's check of a node id argument (`util_strtonum(optarg, 1, UINT_MAX)`).
fn node_id(arg: &str) -> Result<u32, ExitCode> {
    match arg.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => {
            eprintln!("The nodeid was not valid, try a positive number");
            Err(ExitCode::FAILURE)
        }
    }
}

/// cfgtool exits with the `cs_error_t` number of a failed call.
fn exit_status(status: Status) -> ExitCode {
    ExitCode::from(u8::try_from(status.code()).unwrap_or(1))
}

/// The `cs_error_t` of a failed call.
fn status_of(e: &Error) -> Status {
    match e {
        Error::Refused { status, .. } | Error::Status(status) => *status,
        Error::TryAgain => Status::TryAgain,
        Error::Timeout => Status::Timeout,
        _ => Status::Library,
    }
}

fn initialize() -> Result<Cfg, ExitCode> {
    Cfg::initialize().map_err(|e| {
        eprintln!(
            "Could not initialize rotor configuration API error {}",
            status_of(&e).code()
        );
        eprintln!("rotor: {e}");
        ExitCode::FAILURE
    })
}

pub fn run(o: Options) -> ExitCode {
    let result = if o.status {
        link_status(o.brief, o.interface.as_deref())
    } else if o.nodes {
        node_status()
    } else if o.reload {
        reload()
    } else if let Some(path) = &o.rotate_key {
        rotate_key(path)
    } else if o.reopen {
        reopen()
    } else if let Some(node) = &o.kill {
        kill(node)
    } else if o.shutdown {
        shutdown(o.force)
    } else if let Some(node) = &o.address {
        show_addresses(node)
    } else if o.local_id {
        local_id()
    } else {
        print!("{USAGE}");
        Ok(ExitCode::SUCCESS)
    };
    result.unwrap_or_else(|code| code)
}

/// `Local node ID N, transport T`: the first line of `-s` and `-n`.
fn header(s: &StatusReply) {
    println!("Local node ID {}, transport {}", s.node_id, s.transport);
}

/// `-s` (and `rotor status`): link 0 with every configured node, then the ring and the keys.
pub fn link_status(brief: bool, interface: Option<&str>) -> Result<ExitCode, ExitCode> {
    let mut cfg = initialize()?;
    let s = cfg.status().map_err(|e| {
        eprintln!("rotor: {e}");
        ExitCode::FAILURE
    })?;
    header(&s);
    // -i: only the link whose address or number it names.
    for link in &s.links {
        let shown = interface.is_none_or(|i| i == link.link.to_string() || i == link.local_addr);
        if !shown {
            continue;
        }
        println!("LINK ID {} {}", link.link, link.transport);
        println!("\taddr\t= {}", link.local_addr);
        if brief {
            // corosync-cfgtool: enabled | connected << 1, 'n' for this node.
            let status: String = link
                .nodes
                .iter()
                .map(|(node, connected)| match (*node == s.node_id, connected) {
                    (true, _) => 'n',
                    (false, true) => '3',
                    (false, false) => '1',
                })
                .collect();
            println!("\tstatus\t= {status}");
        } else {
            println!("\tstatus:");
            for (node, connected) in &link.nodes {
                let what = if *node == s.node_id {
                    "localhost"
                } else if *connected {
                    "connected"
                } else {
                    "disconnected"
                };
                println!("\t\tnodeid: {node:>10}:\t{what}");
            }
        }
    }
    println!("Ring ID {}.{:x}, state {}", s.ring_rep, s.ring_seq, s.state);
    // rotor's: the ring's members (a link can be up to a node outside the ring).
    let members: Vec<String> = s
        .nodes
        .iter()
        .filter(|n| n.connected)
        .map(|n| n.node_id.to_string())
        .collect();
    println!("Members {}", members.join(" "));
    if s.key_id != 0 {
        let held: Vec<String> = s.keys_held.iter().map(|k| format!("{k:08x}")).collect();
        if s.keys_held.len() > 1 {
            println!(
                "Key {:08x} (a rotation is completing: also opens {})",
                s.key_id,
                held.iter()
                    .filter(|k| **k != format!("{:08x}", s.key_id))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        } else {
            println!("Key {:08x}", s.key_id);
        }
    }
    for (node, key) in &s.unknown_keys {
        println!(
            "WARNING: node {node} seals under key {key:08x}, which this node does not hold: one \
             of the two missed a key rotation; give it the cluster's key file and restart it"
        );
    }
    if !s.reload_error.is_empty() {
        println!("Last reload refused: {}", s.reload_error);
    }
    Ok(ExitCode::SUCCESS)
}

/// `-n`: every reachable node but this one, with its link.
fn node_status() -> Result<ExitCode, ExitCode> {
    let mut cfg = initialize()?;
    let s = cfg.status().map_err(|e| {
        eprintln!("rotor: {e}");
        ExitCode::FAILURE
    })?;
    header(&s);
    for n in &s.nodes {
        let Ok(status) = cfg.node_status_get(n.node_id) else {
            continue;
        };
        if !status.reachable || status.node_id == s.node_id {
            continue;
        }
        let mut line = format!("nodeid: {} reachable", status.node_id);
        if status.remote {
            line.push_str(" remote");
        }
        if status.external {
            line.push_str(" external");
        }
        println!("{line}");
        for l in status.links.iter().filter(|l| l.enabled) {
            let transport = s
                .links
                .iter()
                .find(|r| r.link == l.link)
                .map_or(s.transport.as_str(), |r| r.transport.as_str());
            let mut line = format!(
                "   LINK: {} {transport} ({}->{}) enabled",
                l.link, l.src, l.dst
            );
            if l.connected {
                line.push_str(" connected");
            }
            if l.dynconnected {
                line.push_str(" dynconnected");
            }
            println!("{line} mtu: {}", l.mtu);
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// cfgtool's `check_for_reload_errors`: the reason the last reload was refused, from cmap.
fn reload_errors() -> bool {
    let Ok(mut cmap) = Cmap::initialize() else {
        return false;
    };
    match cmap.get("config.reload_error_message") {
        Ok(Value::String(message)) => {
            println!("ERROR from reload: {message} - see syslog for more information");
            true
        }
        _ => false,
    }
}

/// `-R`.
fn reload() -> Result<ExitCode, ExitCode> {
    println!("Reloading corosync.conf...");
    let mut cfg = Cfg::initialize().map_err(|e| {
        eprintln!(
            "Could not initialize rotor configuration API error {}",
            status_of(&e)
        );
        ExitCode::FAILURE
    })?;
    let mut code = ExitCode::SUCCESS;
    match cfg.reload_config() {
        Ok(()) => println!("Done"),
        Err(e) => {
            eprintln!("Could not reload configuration. Error {}", status_of(&e));
            code = exit_status(status_of(&e));
        }
    }
    drop(cfg);
    if reload_errors() {
        eprintln!("Errors in applying config, corosync.conf might not match the running system");
        code = ExitCode::FAILURE;
    }
    Ok(code)
}

/// `--rotate-key FILE`, worded as `-R`.
fn rotate_key(path: &str) -> Result<ExitCode, ExitCode> {
    println!("Rotating the cluster key to {path}...");
    let mut cfg = initialize()?;
    match cfg.rotate_key(path) {
        Ok(()) => {
            println!("Done");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("Could not rotate the cluster key. Error {}", status_of(&e));
            if let Error::Refused { message, .. } = &e {
                if !message.is_empty() {
                    eprintln!("{message}");
                }
            }
            Ok(exit_status(status_of(&e)))
        }
    }
}

/// `-L`.
fn reopen() -> Result<ExitCode, ExitCode> {
    let mut cfg = Cfg::initialize().map_err(|e| {
        eprintln!(
            "Could not initialize rotor configuration API error {}",
            status_of(&e)
        );
        ExitCode::FAILURE
    })?;
    match cfg.reopen_log_files() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!(
                "Could not reopen rotor logging files. Error {}",
                status_of(&e)
            );
            Ok(exit_status(status_of(&e)))
        }
    }
}

/// `-k NODEID`.
fn kill(node: &str) -> Result<ExitCode, ExitCode> {
    let node = node_id(node)?;
    println!("Killing node {node}");
    let mut cfg = initialize()?;
    match cfg.kill_node(node, "Killed by rotor cfg") {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("Could not kill node (error = {})", status_of(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `-H [--force]`. As cfgtool, the exit status is 0 even when the shutdown was refused (the
/// reason is printed).
fn shutdown(force: bool) -> Result<ExitCode, ExitCode> {
    let flags = if force {
        ShutdownFlags::Regardless
    } else {
        ShutdownFlags::Request
    };
    let mut cfg = initialize()?;
    println!("Shutting down rotor");
    // cfgtool's cs_repeat: up to 30 tries a second apart while the answer is "try again".
    let mut result = cfg.try_shutdown(flags);
    for _ in 0..30 {
        if !matches!(&result, Err(e) if status_of(e) == Status::TryAgain) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        result = cfg.try_shutdown(flags);
    }
    if let Err(e) = result {
        eprintln!("Could not shutdown (error = {})", status_of(&e).code());
        if let Error::Refused { message, .. } = &e {
            if !message.is_empty() {
                eprintln!("{message}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `-a NODEID`.
fn show_addresses(node: &str) -> Result<ExitCode, ExitCode> {
    let node = node_id(node)?;
    let mut cfg = initialize()?;
    match cfg.get_node_addrs(node) {
        Ok(addrs) => {
            let text: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            println!("{}", text.join(" "));
            Ok(ExitCode::SUCCESS)
        }
        Err(_) => {
            eprintln!("Could not get node address for nodeid {node}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `--local-id`.
fn local_id() -> Result<ExitCode, ExitCode> {
    let mut cfg = initialize()?;
    match cfg.local_get() {
        Ok(id) => {
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "Could not get the local node id, the error is: {}",
                status_of(&e).code()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
