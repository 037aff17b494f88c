//! Compiles the XDP program (bpf/xdp_steer.c) to a BPF object with clang; src/lib.rs embeds it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const SOURCE: &str = "bpf/xdp_steer.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("xdp_steer.o");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());

    let mut command = Command::new(&clang);
    command.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"]);
    // <linux/types.h> pulls <asm/types.h>, which Debian keeps under the multiarch directory.
    if let Some(dir) = multiarch_include_dir() {
        command.arg(format!("-I{}", dir.display()));
    }
    command.arg("-c").arg(SOURCE).arg("-o").arg(&object);

    let status = match command.status() {
        Ok(status) => status,
        Err(error) => fail(&format!(
            "cannot run `{clang}` ({error}); the XDP program is C compiled by clang: \
             run `cargo xtask deps` (installs clang, llvm, linux-libc-dev), or set CLANG"
        )),
    };
    if !status.success() {
        fail(&format!(
            "`{clang}` failed to compile {SOURCE} ({status}); if headers such as \
             <linux/bpf.h> or <asm/types.h> are missing, run `cargo xtask deps`"
        ));
    }
}

/// `/usr/include/<triple>` for the host, when it exists.
fn multiarch_include_dir() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let os = env::var("CARGO_CFG_TARGET_OS").ok()?;
    let env_name = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let triple = format!(
        "{arch}-{os}-{}",
        if env_name.is_empty() {
            "gnu"
        } else {
            &env_name
        }
    );
    let dir = Path::new("/usr/include").join(triple);
    dir.is_dir().then_some(dir)
}

fn fail(message: &str) -> ! {
    eprintln!("error: xdp-prog build: {message}");
    println!("cargo:warning=xdp-prog: {message}");
    exit(1);
}
