//! xtask: the project's own build tool, `cargo xtask <command>`. It installs the system packages
//! the build needs (Debian/Ubuntu), runs the test suite, the simulator, the benchmarks and the
//! demo. It deliberately holds no product logic: every command drives a crate of the workspace.

mod cluster;
mod demo;
mod deps;
mod faults;
mod fuzz;
mod install;
mod man;
mod package;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const USAGE: &str = "\
usage: cargo xtask <command> [args]

  test                 install missing system packages, then fmt check, clippy, the whole test suite
  demo [--loopback] [--bins DIR]
                       install, build, start a 3-node cluster (netns + XDP as root, loopback
                       otherwise or with --loopback), show it working and clean up
  sim [ARGS]           run the seeded Totem simulator (see `cargo xtask sim --help`)
  bench core [ARGS]    benchmark the totem-core state machine in the simulator
  bench ipc            shared-memory ring latency and throughput
  bench crypto         per-frame seal/open cost for each crypto mode
  bench udp            the io_uring and plain-socket UDP providers on loopback
  bench deliver [ARGS] the dataplane's delivery path: core, CPG service, client ring
  bench rings          latency of each ring on the path (root; report in bench/reports/)
  bench vs-corosync [--quick] [--rotor-client c|rust]
                       Corosync 3 and rotor side by side on netns hosts (root; report too);
                       rotor driven by rotor bench, or by the same C client over its libcpg
  bench capi [--runs R] [--lat-count N] [--tput-seconds T] [--client-rt] [--perf-stat]
                       the C bench client through rotor's libcpg against rotor bench, same
                       cluster, order alternating by run (root; report too)
  bench detect [--runs R] [--nodes N]... [--token MS[:COEFFICIENT]|default]...
                       SIGKILL of a node to the survivors' configuration change, on netns
                       hosts (root; report too)
  cluster up N [--transport auto|xdp|udp] [--ipv6] [--debug]
                       N netns hosts n1..nN (198.18.0.I, 2001:2::I), one rotord each
  cluster down         stop those nodes and remove the hosts
  cluster exec I CMD…  run CMD inside host nI
  faults [--quick] [--hold SECONDS] [--soak SECONDS] [--nodes N] [--token MS|default]
         [--transport xdp|udp] [--token-coefficient MS] [--fault NAME]
                       the fault campaign on netns hosts (root): checker clients on every
                       node, each fault applied, healed and checked; figures in the report;
                       --soak: the same load with no fault, every membership change reported
  fuzz TARGET [--time SECONDS] [--merge]
                       libFuzzer (stable toolchain) on one target: wire, crypto_open, proto,
                       ipc_ring, config, cmap_value
  install [--prefix DIR] [--libdir DIR]
                       build in release mode and install rotord, rotor-dataplane (PREFIX/sbin),
                       rotor (PREFIX/bin) and the C libraries with their soname links and
                       pkg-config files (LIBDIR, default PREFIX/lib/rotor; PREFIX: /usr/local)
  man [DIR]            the man pages (rotord.8, rotor.8, rotor-*.8, rotor.conf.5) into DIR
                       (default target/man)
  package [--debug] [--out DIR]
                       a Debian package of rotor (binaries, C libraries, systemd unit,
                       logrotate, defaults, man pages) into DIR (default target/debian)
  deps                 only install the missing system packages
";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        exit(2);
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "test" => test(),
        "demo" => demo::run(rest),
        "sim" => sim(rest),
        "bench" => bench(rest),
        "cluster" => cluster::main(rest),
        "faults" => faults::main(rest),
        "fuzz" => fuzz::main(rest),
        "deps" => deps::ensure(),
        "man" => man::run(rest),
        "package" => package::run(rest),
        "install" => install::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    if let Err(message) = result {
        eprintln!("xtask: {message}");
        exit(1);
    }
}

/// The workspace root: xtask lives one level below it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// The cargo running xtask, without the variables it set for xtask (`CARGO_PKG_NAME`, …):
/// passed on, they differ from what the tests' own nested builds pass, and ring's and
/// libbpf-sys's build scripts, which watch them, would be rebuilt back and forth.
fn cargo() -> Command {
    let mut command = rotor_testbed::rotor::cargo_command();
    command.current_dir(root());
    command
}

/// Runs a command to completion; a non-zero exit is an error naming the step.
fn run(step: &str, command: &mut Command) -> Result<(), String> {
    eprintln!("xtask: {step}");
    let status = command
        .status()
        .map_err(|error| format!("{step}: cannot start: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step}: failed ({status})"))
    }
}

fn test() -> Result<(), String> {
    deps::ensure()?;
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    run("cargo test", cargo().args(["test", "--workspace"]))?;
    // Coverage-guided fuzzing, a few seconds per target, from the checked-in corpus.
    fuzz::quick()?;
    // The quick fault matrix runs inside `cargo test` (rotor-faults' netns_faults, root).
    // The unprivileged demo, as the non-root path a user without root takes.
    demo_unprivileged()
}

/// `cargo xtask demo --loopback` as uid 65534 when run as root (as any other user, the demo
/// in the suite would be the same user's run; skipped).
fn demo_unprivileged() -> Result<(), String> {
    if !cluster::is_root() {
        eprintln!("xtask: skipped: the unprivileged demo (needs root to switch to uid 65534)");
        return Ok(());
    }
    demo::run_unprivileged()
}

/// `cargo run --release` of one target of the workspace, with `args` passed through.
fn run_release(
    step: &str,
    package: &str,
    kind: &str,
    target: &str,
    args: &[String],
) -> Result<(), String> {
    run(
        step,
        cargo()
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                package,
                kind,
                target,
                "--",
            ])
            .args(args),
    )
}

fn sim(args: &[String]) -> Result<(), String> {
    run_release("simulator", "rotor-sim", "--bin", "rotor-sim", args)
}

/// Each benchmark: its name, and the package and target that run it.
const BENCHES: &[(&str, &str, &str, &str)] = &[
    ("core", "rotor-sim", "--bin", "bench-core"),
    ("ipc", "ipc-shm", "--example", "bench_ipc"),
    ("crypto", "rotor-crypto", "--example", "bench_crypto"),
    ("udp", "rotor-dataplane", "--example", "bench_udp"),
    ("deliver", "rotor-dataplane", "--example", "bench_deliver"),
    ("rings", "rotor-bench", "--bin", "bench-rings"),
    ("vs-corosync", "rotor-bench", "--bin", "vs-corosync"),
    ("capi", "rotor-bench", "--bin", "bench-capi"),
    ("lat-ab", "rotor-bench", "--bin", "bench-lat-ab"),
    ("detect", "rotor-bench", "--bin", "bench-detect"),
    ("failover", "rotor-faults", "--bin", "bench-failover"),
];

fn bench(args: &[String]) -> Result<(), String> {
    let names: Vec<&str> = BENCHES.iter().map(|b| b.0).collect();
    let name = args
        .first()
        .ok_or_else(|| format!("bench needs a name: {}", names.join(", ")))?;
    let (_, package, kind, target) = BENCHES
        .iter()
        .find(|b| b.0 == name)
        .ok_or_else(|| format!("unknown benchmark `{name}` (have: {})", names.join(", ")))?;
    run_release(&format!("bench {name}"), package, kind, target, &args[1..])
}
