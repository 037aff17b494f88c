//! `cargo xtask install [--prefix DIR] [--libdir DIR]`: builds the release binaries and C
//! libraries and installs them: `rotord` and `rotor-dataplane` (which rotord starts from its
//! own directory) in `PREFIX/sbin`, `rotor` in `PREFIX/bin`, and each C library as corosync's
//! file name with its soname and development links, plus a pkg-config file, in the library
//! directory (default `PREFIX/lib/rotor`: off the loader's default path, so installing never
//! replaces corosync's libraries behind anyone's back; docs/OPERATIONS.md says how to point
//! applications at it, or how to install into the system's library directory instead).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A C library as installed: cargo's output, corosync's file name, soname, development link,
/// pkg-config name and what it is.
pub struct Library {
    pub package: &'static str,
    pub built: &'static str,
    pub file: &'static str,
    pub soname: &'static str,
    pub dev_link: &'static str,
    pub pc_name: &'static str,
    pub description: &'static str,
}

/// The libraries, with Debian corosync 3.1.7's file names.
pub const LIBRARIES: &[Library] = &[
    Library {
        package: "rotor-capi-corosync-common",
        built: "libcorosync_common.so",
        file: "libcorosync_common.so.4.0.0",
        soname: "libcorosync_common.so.4",
        dev_link: "libcorosync_common.so",
        pc_name: "libcorosync_common",
        description: "corosync's common error helpers, from rotor",
    },
    Library {
        package: "rotor-capi-cpg",
        built: "libcpg.so",
        file: "libcpg.so.4.1.0",
        soname: "libcpg.so.4",
        dev_link: "libcpg.so",
        pc_name: "libcpg",
        description: "corosync's closed process group API over rotor",
    },
    Library {
        package: "rotor-capi-cmap",
        built: "libcmap.so",
        file: "libcmap.so.4.1.0",
        soname: "libcmap.so.4",
        dev_link: "libcmap.so",
        pc_name: "libcmap",
        description: "corosync's configuration map API over rotor",
    },
    Library {
        package: "rotor-capi-quorum",
        built: "libquorum.so",
        file: "libquorum.so.5.1.0",
        soname: "libquorum.so.5",
        dev_link: "libquorum.so",
        pc_name: "libquorum",
        description: "corosync's quorum API over rotor",
    },
    Library {
        package: "rotor-capi-votequorum",
        built: "libvotequorum.so",
        file: "libvotequorum.so.8.0.0",
        soname: "libvotequorum.so.8",
        dev_link: "libvotequorum.so",
        pc_name: "libvotequorum",
        description: "corosync's votequorum API over rotor",
    },
    Library {
        package: "rotor-capi-sam",
        built: "libsam.so",
        file: "libsam.so.4.4.0",
        soname: "libsam.so.4",
        dev_link: "libsam.so",
        pc_name: "libsam",
        description: "corosync's simple availability manager over rotor",
    },
    Library {
        package: "rotor-capi-cfg",
        built: "libcfg.so",
        file: "libcfg.so.7.3.0",
        soname: "libcfg.so.7",
        dev_link: "libcfg.so",
        pc_name: "libcfg",
        description: "corosync's configuration and node life API over rotor",
    },
];

/// The corosync version whose ABI the libraries carry (pkg-config's Version).
pub const COROSYNC_ABI_VERSION: &str = "3.1.7";

/// (binary, directory under the prefix).
pub const BINARIES: &[(&str, &str)] = &[
    ("rotord", "sbin"),
    ("rotor-dataplane", "sbin"),
    ("rotor", "bin"),
];

/// The pkg-config file of `lib` installed in `libdir`. The headers are corosync's own (the
/// ABI's definition: Debian's lib*-dev packages), so no include directory is added.
pub fn pc_file(lib: &Library, prefix: &Path, libdir: &Path) -> String {
    let lname = lib
        .dev_link
        .trim_start_matches("lib")
        .trim_end_matches(".so");
    format!(
        "prefix={}\nlibdir={}\n\nName: {}\nDescription: {}\nVersion: {}\nLibs: -L${{libdir}} -Wl,-rpath,${{libdir}} -l{}\nCflags:\n",
        prefix.display(),
        libdir.display(),
        lib.pc_name,
        lib.description,
        COROSYNC_ABI_VERSION,
        lname
    )
}

fn parse(args: &[String]) -> Result<(PathBuf, Option<PathBuf>), String> {
    let mut prefix = PathBuf::from("/usr/local");
    let mut libdir = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = |it: &mut std::slice::Iter<'_, String>| {
            it.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{a} needs a directory"))
        };
        match a.as_str() {
            "--prefix" => prefix = value(&mut it)?,
            "--libdir" => libdir = Some(value(&mut it)?),
            other => {
                return Err(format!(
                    "install: unknown argument `{other}` (--prefix DIR, --libdir DIR)"
                ))
            }
        }
    }
    Ok((prefix, libdir))
}

/// Copies `from` to `to` with `mode`, replacing what is there (a running binary included:
/// the old file is unlinked first, never overwritten in place).
fn put(from: &Path, to: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::remove_file(to);
    fs::copy(from, to).map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", to.display()))
}

fn link(target: &str, at: &Path) -> Result<(), String> {
    let _ = fs::remove_file(at);
    symlink(target, at).map_err(|e| format!("symlink {} -> {target}: {e}", at.display()))
}

/// Installs what `built` (a release target directory) holds.
pub fn install_from(built: &Path, prefix: &Path, libdir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut done = Vec::new();
    for (bin, dir) in BINARIES {
        let dir = prefix.join(dir);
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        put(&built.join(bin), &dir.join(bin), 0o755)?;
        done.push(dir.join(bin));
    }
    let pc_dir = libdir.join("pkgconfig");
    fs::create_dir_all(&pc_dir).map_err(|e| format!("create {}: {e}", pc_dir.display()))?;
    for lib in LIBRARIES {
        put(&built.join(lib.built), &libdir.join(lib.file), 0o644)?;
        link(lib.file, &libdir.join(lib.soname))?;
        link(lib.soname, &libdir.join(lib.dev_link))?;
        let pc = pc_dir.join(format!("{}.pc", lib.pc_name));
        fs::write(&pc, pc_file(lib, prefix, libdir))
            .map_err(|e| format!("write {}: {e}", pc.display()))?;
        done.extend([libdir.join(lib.file), libdir.join(lib.soname), pc]);
    }
    Ok(done)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let (prefix, libdir) = parse(args)?;
    let libdir = libdir.unwrap_or_else(|| prefix.join("lib/rotor"));
    crate::deps::ensure()?;
    let mut build = crate::cargo();
    build.args(["build", "--release"]);
    for p in ["rotor-control", "rotor-dataplane", "rotor-client"]
        .into_iter()
        .chain(LIBRARIES.iter().map(|l| l.package))
    {
        build.args(["-p", p]);
    }
    crate::run(
        "cargo build --release (binaries and C libraries)",
        &mut build,
    )?;
    let built = crate::root().join("target/release");
    for path in install_from(&built, &prefix, &libdir)? {
        eprintln!("xtask: installed {}", path.display());
    }
    eprintln!(
        "xtask: corosync applications use these libraries with LD_LIBRARY_PATH={0}, or for \
         every program once {0} is listed in /etc/ld.so.conf.d/ and ldconfig has run \
         (docs/OPERATIONS.md, \"Corosync applications on rotor\")",
        libdir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_go_in_with_their_soname_links_and_pkg_config() {
        let root = std::env::temp_dir().join(format!("xtask-install-{}", std::process::id()));
        let built = root.join("built");
        fs::create_dir_all(&built).unwrap();
        for (bin, _) in BINARIES {
            fs::write(built.join(bin), b"bin").unwrap();
        }
        for lib in LIBRARIES {
            fs::write(built.join(lib.built), lib.soname).unwrap();
        }
        let prefix = root.join("usr");
        let libdir = prefix.join("lib/rotor");
        install_from(&built, &prefix, &libdir).unwrap();
        assert!(
            prefix.join("sbin/rotord").exists() && prefix.join("sbin/rotor-dataplane").exists()
        );
        assert!(prefix.join("bin/rotor").exists());
        let so = libdir.join("libcpg.so");
        assert_eq!(fs::read_link(&so).unwrap(), Path::new("libcpg.so.4"));
        assert_eq!(
            fs::read_link(libdir.join("libcpg.so.4")).unwrap(),
            Path::new("libcpg.so.4.1.0")
        );
        assert_eq!(fs::read_to_string(&so).unwrap(), "libcpg.so.4");
        assert_eq!(
            fs::read_link(libdir.join("libvotequorum.so.8")).unwrap(),
            Path::new("libvotequorum.so.8.0.0")
        );
        assert_eq!(
            fs::read_to_string(libdir.join("libquorum.so")).unwrap(),
            "libquorum.so.5"
        );
        let pc = fs::read_to_string(libdir.join("pkgconfig/libcmap.pc")).unwrap();
        assert!(
            pc.contains("Libs: -L${libdir} -Wl,-rpath,${libdir} -lcmap\n"),
            "{pc}"
        );
        assert!(
            pc.contains(&format!("libdir={}\n", libdir.display())),
            "{pc}"
        );
        // Installing again replaces everything in place.
        install_from(&built, &prefix, &libdir).unwrap();
        fs::remove_dir_all(&root).unwrap();
        assert!(parse(&["--bogus".into()]).is_err());
        assert!(parse(&["--prefix".into()]).is_err());
    }
}
