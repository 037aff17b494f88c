//! The Debian/Ubuntu packages the build and the tests need, installed when missing.

use std::process::Command;

/// Every system package a build or test of this workspace uses, with the reason.
const PACKAGES: &[(&str, &str)] = &[
    (
        "pkg-config",
        "locating system C libraries (libbpf-sys, libxdp-sys)",
    ),
    (
        "clang",
        "compiling the XDP program to BPF and building libxdp-sys",
    ),
    ("llvm", "llvm-strip for the BPF object"),
    ("libelf-dev", "libbpf-sys and libxdp-sys"),
    ("zlib1g-dev", "libbpf-sys and libxdp-sys"),
    ("m4", "building libxdp-sys"),
    (
        "libpcap-dev",
        "building libxdp-sys (its configure script requires pcap headers)",
    ),
    ("linux-libc-dev", "kernel UAPI headers for the XDP program"),
    (
        "iproute2",
        "network-namespace test hosts (ip netns, veth, bridge)",
    ),
    ("nftables", "partition faults on network-namespace hosts"),
    (
        "libcorosync-common-dev",
        "corosync's headers (corotypes.h): the C libraries' types are generated from them",
    ),
    (
        "libcpg-dev",
        "corosync/cpg.h, the ABI of libcpg.so.4 (capi/cpg), and the C tests built against it",
    ),
    (
        "libcmap-dev",
        "corosync/cmap.h, the ABI of libcmap.so.4 (capi/cmap), and the C tests built against it",
    ),
    (
        "libquorum-dev",
        "corosync/quorum.h, the ABI of libquorum.so.5 (capi/quorum), and the C tests built against it",
    ),
    (
        "libvotequorum-dev",
        "corosync/votequorum.h, the ABI of libvotequorum.so.8 (capi/votequorum), and the C tests built against it",
    ),
    (
        "libsam-dev",
        "corosync/sam.h, the ABI of libsam.so.4 (capi/sam), and the C tests built against it",
    ),
    (
        "libcfg-dev",
        "corosync/cfg.h, the ABI of libcfg.so.7 (capi/cfg), and the C tests built against it",
    ),
    (
        "corosync",
        "Debian's corosync-cpgtool, corosync-cmapctl and corosync-quorumtool, run unchanged through rotor's C libraries in the tests",
    ),
    (
        "pacemaker",
        "Debian's pacemaker 2.1, run unchanged on a three-node rotor cluster through rotor's C libraries (capi/tests pacemaker_netns)",
    ),
    (
        "pacemaker-cli-utils",
        "crm_mon, crm_attribute and cibadmin for the pacemaker test",
    ),
    (
        "iputils-ping",
        "the XDP netns test checks ping between hosts while XDP is attached",
    ),
];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Installs the missing packages with apt-get (as root), or says which are missing and how to
/// install them.
pub fn ensure() -> Result<(), String> {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("xtask: not a Debian-like system; make sure these are installed:");
        for (package, why) in PACKAGES {
            eprintln!("  {package}: {why}");
        }
        return Ok(());
    }
    let missing: Vec<&str> = PACKAGES
        .iter()
        .map(|(package, _)| *package)
        .filter(|package| !installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !crate::cluster::is_root() {
        return Err(format!(
            "missing system packages: {0}; install them with: sudo apt-get install -y {0}",
            missing.join(" ")
        ));
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get update: {e}"))?;
    if !update.success() {
        return Err("apt-get update failed".into());
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apt-get install {} failed", missing.join(" ")))
    }
}
