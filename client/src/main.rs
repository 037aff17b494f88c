//! `rotor`: the command-line tool of a rotor cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rotor_client::cmap::{Cmap, Value, ValueType};
use rotor_client::cpg::Cpg;
use rotor_client::{bench, keygen};

#[derive(Parser)]
#[command(name = "rotor", version, about = "rotor cluster engine tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the cluster authentication key (256 random bytes, mode 0400).
    Keygen {
        /// Where to write the key.
        #[arg(short = 'k', long = "key-file", default_value = keygen::KEY_PATH_DEFAULT)]
        key_file: PathBuf,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Ring and link status (like corosync-cfgtool -s).
    Status,
    /// Read and change cmap (output like corosync-cmapctl: `key (type) = value`).
    Cmap {
        #[command(subcommand)]
        op: Option<CmapOp>,
    },
    /// CPG groups with their processes and nodes (like corosync-cpgtool).
    Cpg {
        /// Delimiter between fields (one line per member, no addresses).
        #[arg(short = 'd')]
        delimiter: Option<char>,
        /// Don't escape unprintable characters in group names.
        #[arg(short = 'e')]
        no_escape: bool,
        /// Display only the group names.
        #[arg(short = 'n')]
        names_only: bool,
    },
    /// CPG load generator.
    Bench {
        /// lat | tput
        kind: String,
        /// Message size in bytes.
        #[arg(short = 's', default_value_t = 64)]
        size: usize,
        /// Messages to send at most.
        #[arg(short = 'n', default_value_t = 10_000)]
        count: u64,
        /// Seconds to run at most.
        #[arg(short = 't', default_value_t = 10.0)]
        seconds: f64,
        #[arg(short = 'g', default_value = "rotor-bench")]
        group: String,
        /// Wait for this many group members before starting.
        #[arg(short = 'm', default_value_t = 1)]
        members: usize,
    },
}

#[derive(Subcommand)]
enum CmapOp {
    /// Print one key.
    Get {
        key: String,
    },
    /// Set KEY of TYPE (u8 … u64, i8 … i64, flt, dbl, str) to VALUE.
    Set {
        key: String,
        r#type: String,
        value: String,
    },
    Delete {
        key: String,
    },
    /// Print every key under PREFIX (all keys without one).
    List {
        prefix: Option<String>,
    },
    /// Print changes under PREFIX until interrupted.
    Track {
        prefix: String,
    },
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("rotor: {e}");
    ExitCode::FAILURE
}

fn status() -> ExitCode {
    let mut c = match Cmap::initialize() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let s = match c.status() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    println!("Local node ID {}, transport {}", s.node_id, s.transport);
    println!("LINK ID 0 {}", s.transport);
    println!("\taddr\t= {}", s.local_addr);
    println!("\tstatus:");
    for n in &s.nodes {
        let what = if n.node_id == s.node_id {
            "localhost"
        } else if n.connected {
            "connected"
        } else {
            "disconnected"
        };
        println!("\t\tnodeid: {:>10}:\t{what}", n.node_id);
    }
    println!("Ring ID {}.{:x}, state {}", s.ring_rep, s.ring_seq, s.state);
    ExitCode::SUCCESS
}

fn cmap(op: Option<CmapOp>) -> ExitCode {
    let mut c = match Cmap::initialize() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let line = |k: &str, v: &Value| rotor_proto::cmap::format_cmapctl_line(k, v, false);
    match op.unwrap_or(CmapOp::List { prefix: None }) {
        CmapOp::Get { key } => match c.get(&key) {
            Ok(v) => println!("{}", line(&key, &v)),
            Err(e) => return fail(e),
        },
        CmapOp::Set { key, r#type, value } => {
            let Some(t) = ValueType::from_cmapctl_name(&r#type) else {
                return fail(
                    format!("unknown type {type:?} (u8 u16 u32 u64 i8 i16 i32 i64 flt dbl str)", type = r#type),
                );
            };
            let v = match Value::parse(t, &value) {
                Ok(v) => v,
                Err(e) => return fail(e),
            };
            if let Err(e) = c.set(&key, v) {
                return fail(e);
            }
        }
        CmapOp::Delete { key } => {
            if let Err(e) = c.delete(&key) {
                return fail(e);
            }
        }
        CmapOp::List { prefix } => match c.iter(prefix.as_deref().unwrap_or("")) {
            Ok(entries) => {
                for (k, v) in entries {
                    println!("{}", line(&k, &v));
                }
            }
            Err(e) => return fail(e),
        },
        CmapOp::Track { prefix } => {
            use rotor_client::cmap::{TRACK_ADD, TRACK_DELETE, TRACK_MODIFY, TRACK_PREFIX};
            if let Err(e) = c.track_add(
                &prefix,
                TRACK_ADD | TRACK_DELETE | TRACK_MODIFY | TRACK_PREFIX,
            ) {
                return fail(e);
            }
            loop {
                match c.next_notification(std::time::Duration::from_secs(1)) {
                    Ok(Some(n)) => {
                        // corosync-cmapctl -t's layout: the new value, the old one on delete.
                        let (kind, value) = match n.kind {
                            TRACK_ADD => ("create", &n.new),
                            TRACK_DELETE => ("delete", &n.old),
                            _ => ("modify", &n.new),
                        };
                        match value {
                            Some(v) => println!("{kind}> {}", line(&n.key, v)),
                            None => println!("{kind}> {}", n.key),
                        }
                    }
                    Ok(None) => {}
                    Err(e) => return fail(e),
                }
            }
        }
    }
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

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Status => status(),
        Command::Cmap { op } => cmap(op),
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
        Command::Keygen { key_file, force } => match keygen::generate(&key_file, force) {
            Ok(()) => {
                println!(
                    "rotor: wrote a {}-byte key to {}",
                    keygen::KEY_LEN,
                    key_file.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rotor: {e}");
                ExitCode::FAILURE
            }
        },
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
