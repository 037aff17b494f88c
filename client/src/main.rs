//! `rotor`: the command-line tool of a rotor cluster.

use std::process::ExitCode;

use clap::Parser;
use rotor_cli::rotor::{CfgArgs, Cli, Command, KeygenArgs, SamOp};
use rotor_client::cmap::{Cmap, Value};
use rotor_client::cpg::Cpg;
use rotor_client::{bench, keygen};

mod cfgtool;
mod cmapctl;
mod sam_demo;
mod xdptool;

fn cfg(a: CfgArgs) -> ExitCode {
    cfgtool::run(cfgtool::Options {
        status: a.status,
        nodes: a.nodes,
        brief: a.brief,
        interface: a.interface,
        reload: a.reload,
        reopen: a.reopen,
        kill: a.kill,
        address: a.address,
        shutdown: a.shutdown,
        force: a.force,
        rotate_key: a.rotate_key,
        local_id: a.local_id,
    })
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("rotor: {e}");
    ExitCode::FAILURE
}

/// cfgtool -s's lines, then the XDP program's (after them: scripts that read cfgtool's
/// layout find it unchanged).
fn status() -> ExitCode {
    let code = cfgtool::link_status(false, None).unwrap_or_else(|code| code);
    if code == ExitCode::SUCCESS {
        for line in xdptool::status_lines() {
            println!("{line}");
        }
    }
    code
}

/// cfg shutdown, then wait until rotord no longer answers.
fn shutdown(wait: std::time::Duration) -> ExitCode {
    let mut c = match Cmap::initialize() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Err(e) = c.shutdown() {
        return fail(e);
    }
    drop(c);
    let deadline = std::time::Instant::now() + wait;
    while Cmap::initialize().is_ok() {
        if std::time::Instant::now() > deadline {
            return fail(format!(
                "rotord accepted the shutdown but still runs after {} s",
                wait.as_secs()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    println!("rotor: the node left the ring and rotord stopped");
    ExitCode::SUCCESS
}

/// A group name as corosync-cpgtool prints it: unprintable bytes as `\xNN`, `\` doubled.
fn group_text(name: &[u8], escape: bool) -> String {
    let mut out = String::new();
    for &b in name {
        if !escape || ((b' '..0x7f).contains(&b) && b != b'\\') {
            out.push(b as char);
        } else if b == b'\\' {
            out.push_str("\\\\");
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

fn cpg(delimiter: Option<char>, escape: bool, names_only: bool) -> ExitCode {
    let mut c = match Cpg::initialize() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let groups = match c.groups() {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    if names_only {
        let names: Vec<String> = groups.iter().map(|(g, _)| group_text(g, escape)).collect();
        match delimiter {
            Some(d) => println!("{}", names.join(&d.to_string())),
            None => names.iter().for_each(|n| println!("{n}")),
        }
        return ExitCode::SUCCESS;
    }
    if let Some(d) = delimiter {
        println!("GRP_NAME{d}PID{d}NODEID");
        for (g, members) in &groups {
            for m in members {
                println!("{}{d}{}{d}{}", group_text(g, escape), m.pid, m.node);
            }
        }
        return ExitCode::SUCCESS;
    }
    // The node addresses, as the ring knows them.
    let addrs = Cmap::initialize()
        .and_then(|mut m| m.iter("runtime.totem.pg.mrp.srp.members."))
        .unwrap_or_default();
    let addr = |node: u32| {
        let key = format!("runtime.totem.pg.mrp.srp.members.{node}.ip");
        addrs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| match v {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default()
    };
    println!("Group Name\t{:>10}\t{:>10}", "PID", "Node ID");
    for (g, members) in &groups {
        println!("{}", group_text(g, escape));
        for m in members {
            println!("\t\t{:>10}\t{:>10} ({})", m.pid, m.node, addr(m.node));
        }
    }
    ExitCode::SUCCESS
}

/// corosync-keygen's habits: `-k FILE`, `-s SIZE`, `-r FILE`, `-l` (ignored, as there).
fn keygen_command(args: KeygenArgs) -> ExitCode {
    let options = keygen::KeygenOptions {
        path: args.key_file,
        size: args.size,
        random_file: args.random_file,
        force: args.force,
    };
    match keygen::generate_with(&options) {
        Ok(()) => {
            println!(
                "rotor: wrote a {}-byte key to {}",
                options.size,
                options.path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn main() -> ExitCode {
    // Output cut short (`rotor status | head -1`) ends the tool quietly, on SIGPIPE, as it ends
    // corosync's tools, not with a panic in `println!` (the Rust runtime ignores SIGPIPE). Its
    // sockets are unaffected: they send with MSG_NOSIGNAL.
    // SAFETY: a disposition set before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match Cli::parse().command {
        Command::Status => status(),
        Command::Cfg(a) => cfg(a),
        Command::Shutdown { timeout_s } => shutdown(std::time::Duration::from_secs(timeout_s)),
        Command::Quorum { args } => rotor_client::quorumtool::run(&args),
        Command::Cmap(args) => cmapctl::run(args),
        Command::Sam { op: SamOp::Demo(o) } => sam_demo::run(o),
        Command::Cpg {
            delimiter,
            no_escape,
            names_only,
        } => cpg(delimiter, !no_escape, names_only),
        Command::Bench {
            kind,
            size,
            count,
            seconds,
            group,
            members,
        } => {
            let o = bench::Options {
                size,
                count,
                seconds,
                group,
                members,
            };
            let r = match kind.as_str() {
                "lat" => bench::lat(&o),
                "tput" => bench::tput(&o),
                other => return fail(format!("bench {other}: expected lat or tput")),
            };
            match r {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Keygen(args) => keygen_command(args),
        Command::XdpRemove { interface } => xdptool::remove(interface),
    }
}

#[cfg(test)]
mod tests {
    use super::group_text;

    #[test]
    fn group_names_are_escaped_as_cpgtool_does() {
        assert_eq!(group_text(b"plain-name", true), "plain-name");
        assert_eq!(group_text(b"a\\b", true), "a\\\\b");
        assert_eq!(group_text(b"x\x01\xffy", true), "x\\x01\\xFFy");
        assert_eq!(group_text(b"a\\b", false), "a\\b");
    }
}
