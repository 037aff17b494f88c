//! The libraries export exactly what Debian's corosync 3.1.7 libraries export, with the same
//! symbol versions and sonames (`objdump -T`, `readelf -d` on both), so an application linked
//! against corosync's libraries loads rotor's.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use rotor_capi_tests::{lib_dir, LIBRARIES};

/// Debian's libraries, from the corosync library packages.
const DEBIAN_LIB_DIR: &str = "/usr/lib/x86_64-linux-gnu";

/// (version, name) of every function a library defines, from `objdump -T`. A library built
/// without symbol versions (Debian's libcorosync_common) shows no version column; its
/// functions count as the base version, which is what rustc's own version script gives
/// ours: both bind without a version requirement.
fn exports(lib: &Path) -> BTreeSet<(String, String)> {
    let out = Command::new("objdump")
        .arg("-T")
        .arg(lib)
        .output()
        .expect("run objdump");
    assert!(out.status.success(), "objdump -T {}", lib.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(" DF .text"))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let n = fields.len();
            let version = match fields.get(n.wrapping_sub(2)) {
                Some(v) if v.chars().all(|c| c.is_ascii_hexdigit()) => "Base",
                Some(v) => v,
                None => return None,
            };
            Some((version.to_owned(), fields[n - 1].to_owned()))
        })
        .collect()
}

fn soname(lib: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(lib)
        .output()
        .expect("run readelf");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| l.split('[').nth(1))
        .map(|s| s.trim_end_matches(']').to_owned())
        .unwrap_or_default()
}

#[test]
fn exports_and_versions_are_debians() {
    if !cfg!(target_arch = "x86_64") {
        println!("skipped: Debian's libraries are compared on x86_64");
        return;
    }
    let ours_dir = lib_dir();
    for (_, _, so) in LIBRARIES {
        let debian = Path::new(DEBIAN_LIB_DIR).join(so);
        assert!(
            debian.exists(),
            "{} is missing: install Debian's corosync libraries (cargo xtask deps)",
            debian.display()
        );
        let ours = ours_dir.join(so);
        let (want, got) = (exports(&debian), exports(&ours));
        assert!(
            !want.is_empty(),
            "{so}: no exports read from Debian's library"
        );
        assert_eq!(got, want, "{so}: exported functions and their versions");
        assert_eq!(soname(&ours), *so, "{so}: soname");
        println!("{so}: {} functions, versions as Debian's", got.len());
    }
}
