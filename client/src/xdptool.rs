//! The XDP part of `rotor status` (the programs rotord attached, one per link on XDP, their
//! source filters and their counters, from cmap) and `rotor xdp-remove` (a stale program left by a killed rotord).

use std::process::ExitCode;

use rotor_client::cmap::{Cmap, Value};
use rotor_proto::xdp as keys;
use xdp_prog::{Counter, Interface};

/// The lines `rotor status` adds after the link status for each link on XDP; none on kernel
/// UDP (or when cmap cannot be read: the link status said why).
pub fn status_lines() -> Vec<String> {
    let Ok(mut cmap) = Cmap::initialize() else {
        return Vec::new();
    };
    let runtime = cmap.iter(keys::RUNTIME_XDP_PREFIX).unwrap_or_default();
    let mut counters = Vec::new();
    for link in 0..rotor_proto::link::LINK_COUNT_MAX as u8 {
        let interface = keys::for_link(keys::INTERFACE_KEY, link);
        if runtime.iter().any(|(k, _)| *k == interface) {
            let prefix = keys::for_link(keys::COUNTERS_PREFIX, link);
            counters.extend(cmap.iter(&prefix).unwrap_or_default());
        }
    }
    render(&runtime, &counters)
}

fn render(runtime: &[(String, Value)], counters: &[(String, Value)]) -> Vec<String> {
    (0..rotor_proto::link::LINK_COUNT_MAX as u8)
        .flat_map(|link| render_link(link, runtime, counters))
        .collect()
}

/// Link `link`'s program (link 0's as with one link, the others' marked with their number).
fn render_link(link: u8, runtime: &[(String, Value)], counters: &[(String, Value)]) -> Vec<String> {
    let get = |key: &str| {
        let key = keys::for_link(key, link);
        runtime.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    };
    let text = |key: &str| match get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::U32(n)) => n.to_string(),
        _ => "?".into(),
    };
    if get(keys::INTERFACE_KEY).is_none() {
        return Vec::new();
    }
    let prefix = keys::for_link(keys::COUNTERS_PREFIX, link);
    let counter = |name: &str| {
        let key = format!("{prefix}{name}");
        match counters.iter().find(|(k, _)| *k == key) {
            Some((_, Value::U64(n))) => n.to_string(),
            _ => "-".into(),
        }
    };
    let counts: Vec<String> = Counter::ALL
        .iter()
        .map(|c| format!("{} {}", c.name(), counter(c.name())))
        .collect();
    vec![
        format!(
            "XDP program {} (id {}) on {}, {} mode{}",
            text(keys::PROGRAM_KEY),
            text(keys::PROG_ID_KEY),
            text(keys::INTERFACE_KEY),
            text(keys::MODE_KEY),
            if link == 0 {
                String::new()
            } else {
                format!(" (link {link})")
            }
        ),
        format!(
            "\tsource filter\t= {} nodelist addresses; other sources: {}",
            text(keys::SOURCES_KEY),
            text(keys::UNKNOWN_SOURCE_KEY)
        ),
        format!("\tframes\t= {}", counts.join(", ")),
    ]
}

/// `rotor xdp-remove [--interface IF]`.
pub fn remove(interface: Option<String>) -> ExitCode {
    // Safety: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "rotor: xdp-remove: needs root (CAP_NET_ADMIN and CAP_BPF) to read and detach XDP \
             programs; run it as root in the node's network namespace"
        );
        return ExitCode::FAILURE;
    }
    let programs = match xdp_prog::attached_programs(interface.clone().map(Interface::from)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rotor: xdp-remove: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Without an interface named, only rotor's programs are this command's business.
    let programs: Vec<_> = programs
        .into_iter()
        .filter(|p| interface.is_some() || p.name == xdp_prog::PROGRAM_NAME)
        .collect();
    if programs.is_empty() {
        match &interface {
            Some(i) => println!("rotor: {i} has no XDP program attached; nothing to remove"),
            None => println!(
                "rotor: no interface of this network namespace runs rotor's XDP program ({}); \
                 nothing to remove",
                xdp_prog::PROGRAM_NAME
            ),
        }
        return ExitCode::SUCCESS;
    }
    let mut code = ExitCode::SUCCESS;
    for p in &programs {
        match xdp_prog::remove_stale(p) {
            Ok(()) => println!(
                "rotor: removed the stale XDP program {} (id {}, {} mode) from {}",
                p.name, p.id, p.mode, p.interface
            ),
            Err(e) => {
                eprintln!("rotor: xdp-remove: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_program_filter_and_every_counter() {
        let s = |k: &str, v: &str| (k.to_owned(), Value::String(v.into()));
        let runtime = vec![
            s(keys::INTERFACE_KEY, "eth0"),
            s(keys::MODE_KEY, "native"),
            s(keys::PROGRAM_KEY, "rotor_steer"),
            (keys::PROG_ID_KEY.to_owned(), Value::U32(42)),
            s(keys::UNKNOWN_SOURCE_KEY, "pass"),
            (keys::SOURCES_KEY.to_owned(), Value::U32(3)),
        ];
        let counters = vec![
            ("stats.xdp.prog.redirected".to_owned(), Value::U64(1000)),
            (
                "stats.xdp.prog.unknown_source_passed".to_owned(),
                Value::U64(5),
            ),
        ];
        assert_eq!(
            render(&runtime, &counters),
            [
                "XDP program rotor_steer (id 42) on eth0, native mode",
                "\tsource filter\t= 3 nodelist addresses; other sources: pass",
                "\tframes\t= redirected 1000, passed -, not_parsed -, no_socket -, \
                 unknown_source_passed 5, unknown_source_dropped -",
            ]
        );
        assert!(
            render(&[], &counters).is_empty(),
            "kernel UDP: no XDP lines"
        );
        // Link 1 on XDP too: its own block, from its own keys.
        let mut both = runtime.clone();
        both.extend(runtime.iter().map(|(k, v)| {
            let v = match v {
                Value::String(s) if s == "eth0" => Value::String("eth1".into()),
                Value::U32(42) => Value::U32(43),
                v => v.clone(),
            };
            (keys::for_link(k, 1), v)
        }));
        let mut counters = counters;
        counters.push(("stats.xdp.link1.prog.redirected".to_owned(), Value::U64(7)));
        counters.push((
            "stats.xdp.link1.prog.unknown_source_dropped".to_owned(),
            Value::U64(20),
        ));
        let lines = render(&both, &counters);
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert_eq!(
            lines[3..],
            [
                "XDP program rotor_steer (id 43) on eth1, native mode (link 1)",
                "\tsource filter\t= 3 nodelist addresses; other sources: pass",
                "\tframes\t= redirected 7, passed -, not_parsed -, no_socket -, \
                 unknown_source_passed -, unknown_source_dropped 20",
            ]
        );
    }
}
