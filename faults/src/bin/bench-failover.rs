//! bench-failover (`cargo xtask bench failover`, root): how long a link failure takes to be
//! noticed and how long until traffic flows over the other link, on 3 network-namespace hosts
//! with 2 links each (rotor-faults' `links` sequence in passive mode: link 0 of node 3 down by
//! interface and by 100% loss, link 1 down, both down), with the default token (1000 ms, a
//! 1650 ms timeout for 3 nodes) and with `token: 10` (`token_coefficient: 0`: a 10 ms
//! timeout). Prints a Markdown table; the target is traffic flowing on the next link within
//! 2 × the ping interval (token / 4 by corosync's defaults) of the link going down. The times
//! come from the logs (`failover`), on one clock: each node's "link: host: N link: L is down"
//! line (±0.5 ms: its hires millisecond) and the checkers' deliveries (exact); the table gives
//! the fault to each node's down line, the fault to traffic flowing, and the last down line to
//! traffic flowing, with the last delivery split into the wait for its sender's next message
//! and that message's delivery. "The fault" is the moment the command that cuts returned; it
//! took effect at some point while the command ran, whose length the table gives too. Each
//! step waits out the flap damping of the step before (`TIMEOUT_BACKOFF_MAX` s) so each times
//! a first failure. Testbed prefix `lb` unless `--prefix` names another.
//!
//! usage: bench-failover [--token MS]... [--prefix P]   (default: 1000 and 10)

use std::path::PathBuf;
use std::process::ExitCode;

use rotor_faults::links::{ms, run, LinksPlan};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut tokens: Vec<u32> = Vec::new();
    let mut prefix = String::from("lb");
    let mut i = 0;
    while i < args.len() {
        match (
            args[i].as_str(),
            args.get(i + 1).and_then(|v| v.parse().ok()),
        ) {
            ("--token", Some(ms)) => {
                tokens.push(ms);
                i += 2;
            }
            ("--prefix", _) if args.get(i + 1).is_some_and(|p| !p.is_empty()) => {
                prefix = args[i + 1].clone();
                i += 2;
            }
            _ => {
                eprintln!("usage: bench-failover [--token MS]... [--prefix P]");
                return ExitCode::from(2);
            }
        }
    }
    if tokens.is_empty() {
        tokens = vec![1000, 10];
    }
    if !rotor_testbed::root_or_skip("the failover benchmark builds network-namespace hosts") {
        return ExitCode::from(2);
    }
    // The binaries the run drives, beside this one (built in the same profile).
    let bins: PathBuf = match std::env::current_exe() {
        Ok(p) => p.parent().expect("a directory").to_path_buf(),
        Err(e) => {
            eprintln!("bench-failover: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Without the variables cargo set for this program: passed on, they make the nested build
    // recompile ring and all above it.
    let mut build = rotor_testbed::rotor::cargo_command();
    build.args(["build", "--bins"]);
    if bins.ends_with("release") {
        build.arg("--release");
    }
    for p in [
        "rotor-control",
        "rotor-dataplane",
        "rotor-client",
        "rotor-faults",
    ] {
        build.args(["-p", p]);
    }
    if !build.status().is_ok_and(|s| s.success()) {
        eprintln!(
            "bench-failover: building rotord, rotor-dataplane, rotor and rotor-checker failed"
        );
        return ExitCode::FAILURE;
    }
    let mut table = String::from(
        "| token | ping interval | fault on node 3 | cut took | link seen down after (nodes 1 / 2 / 3) | traffic flowing after | flowing after last seen down | last message sent after / delivered in | link up again after |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut ok = true;
    for token in tokens {
        let mut plan = LinksPlan::new("passive", true);
        plan.totem = vec![("token".into(), token.to_string())];
        let timeout_ms = if token < 100 {
            plan.totem.push(("token_coefficient".into(), "0".into()));
            token
        } else {
            token + 650
        };
        let out = std::env::temp_dir().join(format!("rotor-bench-failover-{token}"));
        let result = run(bins.clone(), &out, &prefix, &plan, &mut |l| {
            eprintln!("{l}")
        });
        eprintln!("{}", result.summary());
        ok &= result.ok();
        for st in &result.steps {
            let t = &st.timing;
            table.push_str(&format!(
                "| {token} ms ({timeout_ms} ms) | {} ms | {}{} | {} | {} | {} | {} | {} / {} | {} |\n",
                (timeout_ms / 4).max(1),
                st.name,
                t.left_out_text(),
                ms(Some(st.cut_took()), 1),
                t.down_seen_text(),
                ms(t.flowing, 2),
                ms(t.flowing_after_down(), 1),
                ms(t.last_sent, 2),
                ms(t.last_delivered, 2),
                ms(t.back, 1)
            ));
        }
        if let Some(e) = &result.setup_error {
            table.push_str(&format!(
                "| {token} ms | | set-up failed: {e} | | | | | | |\n"
            ));
        }
    }
    println!("{table}");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
