//! `cargo xtask faults [--quick] [--hold SECONDS] [--out DIR]` (root): builds rotord, the
//! dataplane, rotor and rotor-faults' binaries in release and runs the campaign
//! (rotor-faults' `rotor-faults` binary: the full matrix, or the quick one the suite runs).

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
