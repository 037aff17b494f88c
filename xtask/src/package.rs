//! `cargo xtask package [--debug] [--out DIR]`: a Debian package of rotor, built with dpkg-deb
//! (no packaging tool beyond dpkg's own): rotord and rotor-dataplane in /usr/sbin (rotord
//! starts the dataplane from its own directory), rotor in /usr/bin, the C libraries in
//! /usr/lib/rotor under corosync's file names and sonames (off the loader's path, so installing
//! never replaces Debian's libcpg4 and friends behind anyone's back), the systemd unit, the
//! logrotate file, /etc/default/rotor, an example corosync.conf, the man pages (`man.rs`) and
//! the documentation. Depends comes from dpkg-shlibdeps on the binaries and libraries.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::install::{BINARIES, LIBRARIES};

/// The package's name.
pub const NAME: &str = "rotor";
/// Where the C libraries go.
pub const LIBDIR: &str = "usr/lib/rotor";
/// The packaging files kept in the repository (`dist/`), and where each is installed.
const DIST_FILES: &[(&str, &str, u32)] = &[
    ("rotor.service", "lib/systemd/system/rotor.service", 0o644),
    ("rotor.default", "etc/default/rotor", 0o644),
    ("rotor.logrotate", "etc/logrotate.d/rotor", 0o644),
    (
        "corosync.conf.example",
        "usr/share/doc/rotor/examples/corosync.conf",
        0o644,
    ),
];
/// Files an administrator edits: dpkg keeps their changes on upgrade.
const CONFFILES: &[&str] = &["/etc/default/rotor", "/etc/logrotate.d/rotor"];

/// Maintainer scripts. Paths go through `$DPKG_ROOT`, so the package also installs into a
/// scratch root (`dpkg --root DIR --force-script-chrootless`, as the tests do).
const POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = configure ]; then
    mkdir -p "$DPKG_ROOT/etc/corosync"
    # An example configuration only where there is none: an existing Corosync
    # configuration is what rotor reads.
    if [ ! -e "$DPKG_ROOT/etc/corosync/corosync.conf" ]; then
        cp "$DPKG_ROOT/usr/share/doc/rotor/examples/corosync.conf" "$DPKG_ROOT/etc/corosync/corosync.conf"
        chmod 0644 "$DPKG_ROOT/etc/corosync/corosync.conf"
    fi
    mkdir -p "$DPKG_ROOT/var/lib/rotor" "$DPKG_ROOT/var/log/rotor"
    if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
    fi
fi
exit 0
"#;
const PRERM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ] && [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl stop rotor.service >/dev/null 2>&1 || true
fi
exit 0
"#;
const POSTRM: &str = r#"#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -rf "$DPKG_ROOT/var/lib/rotor" "$DPKG_ROOT/var/log/rotor"
fi
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
fi
exit 0
"#;

fn parse(args: &[String]) -> Result<(bool, Option<PathBuf>), String> {
    let (mut debug, mut out) = (false, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => debug = true,
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a directory")?)),
            other => {
                return Err(format!(
                    "package: unknown argument `{other}` (--debug, --out DIR)"
                ))
            }
        }
    }
    Ok((debug, out))
}

/// The cargo packages whose outputs the package holds: the ones every test build makes.
pub fn cargo_packages() -> &'static [&'static str] {
    rotor_testbed::rotor::PACKAGES
}

pub fn run(args: &[String]) -> Result<(), String> {
    let (debug, out) = parse(args)?;
    crate::deps::ensure()?;
    let mut build = crate::cargo();
    build.arg("build");
    if !debug {
        build.arg("--release");
    }
    for p in cargo_packages() {
        build.args(["-p", p]);
    }
    crate::run("cargo build (binaries and C libraries)", &mut build)?;
    let root = crate::root();
    let built = root
        .join("target")
        .join(if debug { "debug" } else { "release" });
    let out = out.unwrap_or_else(|| root.join("target/debian"));
    let deb = build_package(&root, &built, &out)?;
    eprintln!("xtask: wrote {}", deb.display());
    Ok(())
}

fn run_ok(what: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn put(from: &Path, to: &Path, mode: u32) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    fs::copy(from, to).map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", to.display()))
}

fn write(to: &Path, text: &str, mode: u32) -> Result<(), String> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    fs::write(to, text).map_err(|e| format!("write {}: {e}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", to.display()))
}

/// The Depends line dpkg-shlibdeps finds for `files` (it wants a debian/control around it).
fn shlib_depends(scratch: &Path, files: &[PathBuf]) -> Result<String, String> {
    let dir = scratch.join("shlibdeps");
    fs::create_dir_all(dir.join("debian")).map_err(|e| e.to_string())?;
    fs::write(
        dir.join("debian/control"),
        format!("Source: {NAME}\n\nPackage: {NAME}\nArchitecture: any\n"),
    )
    .map_err(|e| e.to_string())?;
    let out = run_ok(
        "dpkg-shlibdeps (cargo xtask deps installs dpkg-dev)",
        Command::new("dpkg-shlibdeps")
            .arg("-O")
            .args(files)
            .current_dir(&dir)
            .stderr(std::process::Stdio::null()),
    )?;
    let _ = fs::remove_dir_all(&dir);
    out.lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .ok_or_else(|| format!("dpkg-shlibdeps printed no Depends: {out}"))
}

/// Lays the package out under `out/staging` from the binaries in `built` and builds
/// `out/rotor_<version>_<arch>.deb`.
pub fn build_package(root: &Path, built: &Path, out: &Path) -> Result<PathBuf, String> {
    let staging = out.join("staging");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| format!("create {}: {e}", staging.display()))?;
    let mut shlib_files = Vec::new();
    for (bin, dir) in BINARIES {
        let to = staging.join("usr").join(dir).join(bin);
        put(&built.join(bin), &to, 0o755)?;
        shlib_files.push(to);
    }
    let libdir = staging.join(LIBDIR);
    for lib in LIBRARIES {
        let to = libdir.join(lib.file);
        put(&built.join(lib.built), &to, 0o644)?;
        symlink(lib.file, libdir.join(lib.soname)).map_err(|e| format!("{}: {e}", lib.soname))?;
        shlib_files.push(to);
    }
    // Debug information stays in the build tree; the package carries what runs.
    for f in &shlib_files {
        let _ = Command::new("strip").arg("--strip-debug").arg(f).status();
    }
    for (src, dest, mode) in DIST_FILES {
        put(&root.join("dist").join(src), &staging.join(dest), *mode)?;
    }
    for (doc, dest) in [
        ("README.md", "README.md"),
        ("docs/OPERATIONS.md", "OPERATIONS.md"),
    ] {
        put(
            &root.join(doc),
            &staging.join("usr/share/doc/rotor").join(dest),
            0o644,
        )?;
    }
    write(
        &staging.join("usr/share/doc/rotor/copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: rotor\n\nFiles: *\nLicense: Apache-2.0\n On Debian systems the full \
         text of the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.\n",
        0o644,
    )?;
    for page in crate::man::pages(root)? {
        let section = page.file.rsplit('.').next().unwrap_or("8");
        let dir = staging.join(format!("usr/share/man/man{section}"));
        let path = dir.join(&page.file);
        write(&path, &page.text, 0o644)?;
        run_ok("gzip", Command::new("gzip").args(["-9n", "-f"]).arg(&path))?;
    }
    let depends = shlib_depends(out, &shlib_files)?;
    let arch = run_ok(
        "dpkg --print-architecture",
        Command::new("dpkg").arg("--print-architecture"),
    )?
    .trim()
    .to_owned();
    let size_kib = run_ok("du", Command::new("du").args(["-sk"]).arg(&staging))?
        .split_whitespace()
        .next()
        .unwrap_or("0")
        .to_owned();
    let version = env!("CARGO_PKG_VERSION");
    let libraries = LIBRARIES
        .iter()
        .map(|l| l.soname)
        .collect::<Vec<_>>()
        .join(", ");
    let control = format!(
        "Package: {NAME}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: rotor developers \
         <rotor@localhost>\nInstalled-Size: {size_kib}\nDepends: {depends}\nSuggests: \
         python3-prometheus-client\nSection: admin\nPriority: optional\nHomepage: \
         https://github.com/rotor-cluster/rotor\nDescription: cluster engine with Corosync's \
         configuration, tools and C libraries\n rotor runs Totem ordered group messaging with \
         extended virtual synchrony, CPG and cmap\n over a kernel-bypass dataplane (XDP and \
         AF_XDP, or kernel UDP). It reads corosync.conf,\n answers as corosync's tools do, and \
         ships drop-in builds of corosync's C libraries\n in /usr/lib/rotor ({libraries}).\n \
         It does not speak Corosync's wire protocol: a cluster moves to rotor\n all at once \
         (see /usr/share/doc/rotor/OPERATIONS.md).\n"
    );
    let debian = staging.join("DEBIAN");
    write(&debian.join("control"), &control, 0o644)?;
    let mut conffiles = CONFFILES.join("\n");
    conffiles.push('\n');
    write(&debian.join("conffiles"), &conffiles, 0o644)?;
    write(&debian.join("postinst"), POSTINST, 0o755)?;
    write(&debian.join("prerm"), PRERM, 0o755)?;
    write(&debian.join("postrm"), POSTRM, 0o755)?;
    let deb = out.join(format!("{NAME}_{version}_{arch}.deb"));
    run_ok(
        "dpkg-deb --build",
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&staging)
            .arg(&deb),
    )?;
    let _ = fs::remove_dir_all(&staging);
    Ok(deb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixDatagram;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    #[test]
    fn the_test_build_makes_every_library_the_package_holds() {
        for lib in LIBRARIES {
            assert!(cargo_packages().contains(&lib.package), "{}", lib.package);
        }
    }

    fn dpkg_deb(args: &[&str], deb: &Path) -> String {
        run_ok("dpkg-deb", Command::new("dpkg-deb").args(args).arg(deb)).unwrap()
    }

    /// The package built from this build's debug binaries, installed into a scratch root
    /// with dpkg (no container): its contents, control data and conffiles; the unit checked by
    /// systemd-analyze; the man pages read by groff; the installed rotord started the way the
    /// unit starts it (in a network namespace of its own) until READY=1 and stopped by the
    /// unit's ExecStop; purged clean.
    #[test]
    fn the_package_installs_into_a_scratch_root_and_its_unit_runs() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: the_package_installs_into_a_scratch_root: needs root (dpkg --root, a network namespace)");
            return;
        }
        let root = crate::root();
        rotor_testbed::rotor::cargo_build().expect("building the binaries");
        let built = root.join("target/debug");
        let scratch = rotor_testbed::TempDir::new("rotor-package").expect("temp dir");
        let deb = build_package(&root, &built, scratch.path()).expect("package");

        // Control data and contents.
        let control = dpkg_deb(&["-f"], &deb);
        for want in [
            "Package: rotor\n",
            &format!("Version: {}\n", env!("CARGO_PKG_VERSION")),
            "libc6",
            "libelf1",
            "zlib1g",
            "libvotequorum.so.8",
        ] {
            assert!(control.contains(want), "{want} in\n{control}");
        }
        let contents = dpkg_deb(&["-c"], &deb);
        let mut want: Vec<String> = vec![
            "./usr/sbin/rotord".into(),
            "./usr/sbin/rotor-dataplane".into(),
            "./usr/bin/rotor".into(),
            "./lib/systemd/system/rotor.service".into(),
            "./etc/logrotate.d/rotor".into(),
            "./etc/default/rotor".into(),
            "./usr/share/doc/rotor/examples/corosync.conf".into(),
            "./usr/share/doc/rotor/OPERATIONS.md".into(),
            "./usr/share/man/man5/rotor.conf.5.gz".into(),
            "./usr/share/man/man8/rotord.8.gz".into(),
            "./usr/share/man/man8/rotor-cmap.8.gz".into(),
        ];
        for lib in LIBRARIES {
            want.push(format!("./{LIBDIR}/{}", lib.file));
            want.push(format!("./{LIBDIR}/{} -> {}", lib.soname, lib.file));
        }
        for w in &want {
            assert!(contents.contains(w.as_str()), "{w} in\n{contents}");
        }
        assert!(contents.contains("-rwxr-xr-x root/root"), "{contents}");
        assert!(!contents.contains("rwsr"), "nothing setuid:\n{contents}");

        // Into a scratch root with dpkg itself.
        let target = scratch.path().join("root");
        for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log"] {
            fs::create_dir_all(target.join(d)).unwrap();
        }
        for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
            fs::write(target.join(f), "").unwrap();
        }
        let dpkg = |args: &[&str]| {
            run_ok(
                "dpkg",
                Command::new("dpkg")
                    .arg(format!("--root={}", target.display()))
                    .args([
                        "--force-script-chrootless",
                        "--force-depends",
                        "--log=/dev/null",
                    ])
                    .args(args),
            )
        };
        dpkg(&["-i", deb.to_str().unwrap()]).expect("dpkg -i");
        let conf = target.join("etc/corosync/corosync.conf");
        assert!(
            conf.is_file(),
            "example config installed where there was none"
        );
        let status = fs::read_to_string(target.join("var/lib/dpkg/status")).unwrap();
        assert!(status.contains("Status: install ok installed"), "{status}");
        assert!(
            status.contains(" /etc/default/rotor "),
            "conffiles: {status}"
        );
        // An edited config survives a reinstall; so does an edited conffile.
        fs::write(&conf, fs::read_to_string(&conf).unwrap() + "# edited\n").unwrap();
        dpkg(&["-i", deb.to_str().unwrap()]).expect("dpkg -i again");
        assert!(fs::read_to_string(&conf).unwrap().ends_with("# edited\n"));

        // The unit: systemd-analyze against the scratch root (it checks the ExecStart binary
        // there and the man pages of Documentation=).
        let unit = target.join("lib/systemd/system/rotor.service");
        // The system's targets, so that the unit's dependencies resolve in the scratch root.
        for entry in fs::read_dir("/lib/systemd/system").expect("/lib/systemd/system") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "target") {
                let to = target
                    .join("lib/systemd/system")
                    .join(path.file_name().unwrap());
                if !to.exists() && path.is_file() {
                    fs::copy(&path, &to).unwrap();
                }
            }
        }
        // Documentation=man:… is checked with man(1): the scratch root's pages.
        let verify = Command::new("systemd-analyze")
            .env("MANPATH", target.join("usr/share/man"))
            .arg(format!("--root={}", target.display()))
            .arg("verify")
            .arg(&unit)
            .output()
            .expect("systemd-analyze");
        let complaints = String::from_utf8_lossy(&verify.stderr);
        assert!(
            verify.status.success(),
            "systemd-analyze verify: {complaints}"
        );
        for line in complaints.lines() {
            // corosync.service (Conflicts=) is not in the scratch root; nothing else may be
            // reported.
            assert!(
                line.contains("corosync.service"),
                "systemd-analyze verify: {complaints}"
            );
        }
        let unit_text = fs::read_to_string(&unit).unwrap();
        for want in [
            "Type=notify",
            "After=network-online.target",
            "RestartPreventExitStatus=7 8 17 18",
            "StandardError=null",
        ] {
            assert!(unit_text.contains(want), "{want}");
        }

        // Every man page reads cleanly.
        for entry in fs::read_dir(target.join("usr/share/man/man8"))
            .unwrap()
            .chain(fs::read_dir(target.join("usr/share/man/man5")).unwrap())
        {
            let path = entry.unwrap().path();
            let mut text = String::new();
            flate_read(&path).read_to_string(&mut text).unwrap();
            let mut groff = Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            groff
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let o = groff.wait_with_output().unwrap();
            assert!(
                o.stderr.is_empty(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }

        // The unit's commands, from the installed files, in a network namespace of their own:
        // ExecStart until READY=1, then ExecStop.
        let exec = |key: &str| -> String {
            unit_text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} in the unit"))
                .trim_start_matches('-')
                .to_owned()
        };
        let options = fs::read_to_string(target.join("etc/default/rotor")).unwrap();
        let options = options
            .lines()
            .find_map(|l| l.strip_prefix("ROTORD_OPTIONS="))
            .unwrap()
            .trim_matches('"')
            .to_owned();
        let pid_file = scratch.path().join("rotord.pid");
        let rebase = |cmd: String| {
            cmd.replace("/usr/sbin/", &format!("{}/usr/sbin/", target.display()))
                .replace("/usr/bin/", &format!("{}/usr/bin/", target.display()))
                .replace("/run/rotord.pid", pid_file.to_str().unwrap())
                .replace("$ROTORD_OPTIONS", &options)
        };
        let start = rebase(exec("ExecStart"));
        let stop = rebase(exec("ExecStop"));
        // The example config with a key, crypto on; state and logs under the scratch root.
        let key = target.join("etc/corosync/authkey");
        run_ok(
            "rotor keygen",
            Command::new(target.join("usr/bin/rotor"))
                .args(["keygen", "-k"])
                .arg(&key),
        )
        .unwrap();
        let text = fs::read_to_string(&conf).unwrap().replace(
            "/var/log/rotor",
            &target.join("var/log/rotor").display().to_string(),
        ) + &format!(
            "system {{\n    state_dir: {}\n}}\n",
            target.join("var/lib/rotor").display()
        );
        fs::write(&conf, text).unwrap();
        let notify = scratch.path().join("notify");
        let listener = UnixDatagram::bind(&notify).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let socket = format!("rt-pkg-{}", std::process::id());
        let script = format!(
            "ip link set lo up && {start} & pid=$!; read line; {stop}; wait $pid; echo exit=$?"
        );
        let mut ns = Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .env("COROSYNC_MAIN_CONFIG_FILE", &conf)
            .env("COROSYNC_TOTEM_AUTHKEY_FILE", &key)
            .env("ROTOR_IPC_SOCKET", &socket)
            .env("NOTIFY_SOCKET", &notify)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ready = false;
        while !ready && Instant::now() < deadline {
            match listener.recv(&mut buf) {
                Ok(n) => ready = buf[..n].windows(7).any(|w| w == b"READY=1"),
                Err(_) => break,
            }
        }
        assert!(
            fs::read_to_string(&pid_file).is_ok_and(|p| !p.trim().is_empty()),
            "the pid file is written"
        );
        {
            use std::io::Write;
            let _ = ns.stdin.take().unwrap().write_all(b"stop\n");
        }
        let out = ns.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(ready, "no READY=1 from the unit's ExecStart: {text}");
        assert!(text.contains("left the ring and rotord stopped"), "{text}");
        assert!(text.contains("exit=0"), "rotord's exit: {text}");
        assert!(!pid_file.exists(), "the pid file is removed");

        // Purged: nothing of the package is left.
        dpkg(&["--purge", NAME]).expect("dpkg --purge");
        assert!(!target.join("usr/sbin/rotord").exists());
        assert!(!target.join("etc/default/rotor").exists());
        assert!(!target.join("var/lib/rotor").exists());
    }

    /// A gzip'd man page's text (through gzip -dc).
    fn flate_read(path: &Path) -> impl Read {
        let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
        std::io::Cursor::new(out.stdout)
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]).unwrap(), (false, None));
        assert_eq!(
            parse(&["--debug".into(), "--out".into(), "/x".into()]).unwrap(),
            (true, Some(PathBuf::from("/x")))
        );
        assert!(parse(&["--bogus".into()]).is_err());
    }
}
