//! `cargo xtask fuzz TARGET [--time SECONDS] [--merge]` and the bounded fuzz step of `cargo
//! xtask test`: libFuzzer on the stable toolchain. The harness (`fuzz/libfuzzer`, its own
//! workspace and lock file) is built with SanitizerCoverage through plain `-C` flags (the
//! instrumentation cargo-fuzz asks nightly for is a stable codegen pass; only the sanitizers
//! need nightly, and rotor's targets are safe Rust), for the host target only so build
//! scripts and proc macros stay uninstrumented, into `target/fuzz`. Each target reads the
//! checked-in corpus `fuzz/corpus/TARGET` and writes what it finds to
//! `target/fuzz/corpus/TARGET`; `--merge` folds that into the checked-in corpus, keeping
//! only inputs that add coverage. A crash is written to `target/fuzz/artifacts/TARGET/`;
//! copied into `fuzz/regressions/TARGET/` it becomes a regression test of the ordinary suite
//! (rotor-fuzz's `tests/corpus.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// SanitizerCoverage as libFuzzer wants it, through stable rustc flags.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing";
const HOST: &str = "x86_64-unknown-linux-gnu";

/// The targets, as rotor-fuzz lists them (kept in step by `tests/corpus.rs`, which fails on a
/// corpus directory without a target).
pub const TARGETS: &[&str] = &[
    "wire",
    "crypto_open",
    "proto",
    "ipc_ring",
    "config",
    "cmap_value",
];

fn target_dir() -> PathBuf {
    crate::root().join("target").join("fuzz")
}

/// Builds the instrumented harness and returns its path.
pub fn build() -> Result<PathBuf, String> {
    let dir = crate::root().join("fuzz").join("libfuzzer");
    // The workspace's lock file, so the harness builds the versions the suite tests; cargo
    // adds libFuzzer's own crates to the copy.
    let lock = dir.join("Cargo.lock");
    std::fs::copy(crate::root().join("Cargo.lock"), &lock)
        .map_err(|e| format!("copy Cargo.lock to {}: {e}", lock.display()))?;
    crate::run(
        "build the libFuzzer harness (instrumented, release)",
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&dir)
            .env("RUSTFLAGS", RUSTFLAGS)
            .args(["build", "--release", "--target", HOST, "--target-dir"])
            .arg(target_dir()),
    )?;
    Ok(target_dir().join(HOST).join("release").join("rotor-fuzz"))
}

/// Runs `target` for `seconds`; an error if it crashed (the input is kept under
/// `target/fuzz/artifacts/TARGET/`).
pub fn run_target(harness: &Path, target: &str, seconds: u64) -> Result<(), String> {
    let corpus = crate::root().join("fuzz").join("corpus").join(target);
    let found = target_dir().join("corpus").join(target);
    let artifacts = target_dir().join("artifacts").join(target);
    for d in [&corpus, &found, &artifacts] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    crate::run(
        &format!("fuzz {target} for {seconds} s"),
        Command::new(harness)
            .env("ROTOR_FUZZ_TARGET", target)
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            // A unit slower than this is a finding (a corrupted commit token once cost 3 s).
            .arg("-timeout=10")
            .arg(&found)
            .arg(&corpus),
    )
    .map_err(|e| {
        format!(
            "{e}: the crashing input is in {}; copy it into fuzz/regressions/{target}/ so the \
             suite replays it, then fix the code",
            artifacts.display()
        )
    })
}

/// Folds what runs found into the checked-in corpus (inputs that add coverage only).
fn merge(harness: &Path, target: &str) -> Result<(), String> {
    let corpus = crate::root().join("fuzz").join("corpus").join(target);
    let found = target_dir().join("corpus").join(target);
    crate::run(
        &format!("merge new {target} inputs into fuzz/corpus/{target}"),
        Command::new(harness)
            .env("ROTOR_FUZZ_TARGET", target)
            .arg("-merge=1")
            .arg(&corpus)
            .arg(&found),
    )
}

/// `cargo xtask fuzz TARGET [--time SECONDS] [--merge]`.
pub fn main(args: &[String]) -> Result<(), String> {
    let usage = || {
        format!(
            "usage: cargo xtask fuzz TARGET [--time SECONDS] [--merge]  (targets: {})",
            TARGETS.join(", ")
        )
    };
    let target = args.first().ok_or_else(usage)?;
    if !TARGETS.contains(&target.as_str()) {
        return Err(format!("unknown fuzz target `{target}`\n{}", usage()));
    }
    let mut seconds = 60;
    let mut do_merge = false;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--time" => {
                i += 1;
                seconds = args
                    .get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("--time needs seconds\n{}", usage()))?;
            }
            "--merge" => do_merge = true,
            other => return Err(format!("unknown argument `{other}`\n{}", usage())),
        }
        i += 1;
    }
    let harness = build()?;
    run_target(&harness, target, seconds)?;
    if do_merge {
        merge(&harness, target)?;
    }
    Ok(())
}

/// The suite's step: every target for a few seconds.
pub fn quick() -> Result<(), String> {
    let harness = build()?;
    for t in TARGETS {
        run_target(&harness, t, 4)?;
    }
    Ok(())
}
