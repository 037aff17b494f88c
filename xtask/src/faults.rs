//! `cargo xtask faults [--quick] [--hold SECONDS] [--soak SECONDS] [--out DIR] …` (root):
//! builds rotord, the dataplane, rotor and rotor-faults' binaries in release and runs the
//! campaign (rotor-faults' `rotor-faults` binary: the full matrix, the quick one the suite
//! runs, or with `--soak` the load alone for that long; every argument is passed on).

use std::process::Command;

pub fn main(args: &[String]) -> Result<(), String> {
    if !crate::cluster::is_root() {
        return Err("faults needs root (network namespaces, nft on the switch)".into());
    }
    crate::deps::ensure()?;
    crate::run(
        "build rotord, rotor-dataplane, rotor, rotor-checker and rotor-faults (release)",
        crate::cargo().args([
            "build",
            "--release",
            "-p",
            "rotor-control",
            "-p",
            "rotor-dataplane",
            "-p",
            "rotor-client",
            "-p",
            "rotor-faults",
            "--bins",
        ]),
    )?;
    let bin = crate::root()
        .join("target")
        .join("release")
        .join("rotor-faults");
    crate::run("fault campaign", Command::new(bin).args(args))
}
