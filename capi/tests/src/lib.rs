//! The harness of the C libraries' end-to-end tests: a rotor cluster on loopback addresses
//! (no root), the libraries under their sonames in a directory for `LD_LIBRARY_PATH`, and
//! C programs compiled against corosync's installed headers and linked against Debian's
//! libraries — so running them with rotor's libraries first on the path is exactly how an
//! existing application meets them.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The libraries: (cargo package, file cargo writes, soname).
pub const LIBRARIES: &[(&str, &str, &str)] = &[
    (
        "rotor-capi-corosync-common",
        "libcorosync_common.so",
        "libcorosync_common.so.4",
    ),
    ("rotor-capi-cpg", "libcpg.so", "libcpg.so.4"),
    ("rotor-capi-cmap", "libcmap.so", "libcmap.so.4"),
];

/// This build's target directory (`target/debug`), after building rotord, the dataplane,
/// the `rotor` tool and the libraries (`cargo test -p` builds none of them).
pub fn target_dir() -> PathBuf {
    let mut packages = vec!["rotor-control", "rotor-dataplane", "rotor-client"];
    packages.extend(LIBRARIES.iter().map(|l| l.0));
    rotor_testbed::rotor::cargo_build(&packages).expect("building rotor and its C libraries");
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// A directory holding each library under its soname (links to cargo's output), for
/// `LD_LIBRARY_PATH`.
pub fn lib_dir() -> PathBuf {
    let target = target_dir();
    let dir = target.join("capi-lib");
    std::fs::create_dir_all(&dir).expect("create capi-lib");
    for (_, file, soname) in LIBRARIES {
        let link = dir.join(soname);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target.join(file), &link).expect("soname link");
    }
    dir
}

/// Compiles `csrc/<name>.c` against the installed corosync headers, linked with `libs`
/// (Debian's, so the binary records their symbol versions), into the target directory.
pub fn compile_c(name: &str, libs: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("csrc")
        .join(format!("{name}.c"));
    let out = target_dir().join(format!("capi-{name}"));
    let mut cc = Command::new("cc");
    cc.args(["-O1", "-g", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(&src);
    for l in libs {
        cc.arg(format!("-l{l}"));
    }
    let o = cc.output().expect("run cc");
    assert!(
        o.status.success(),
        "cc {}: {}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Up to three rotords on 127.0.0.1..N, each with its own IPC socket name.
pub struct Cluster {
    pub dir: PathBuf,
    children: Vec<Child>,
    tag: String,
    pub bin: PathBuf,
    pub lib: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &self.children {
            // SAFETY: kill(2) on a child we started; SIGTERM lets rotord stop its dataplane.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// Starts `nodes` rotords (1..=3); `index` keeps concurrent tests apart (socket names,
    /// directory); the cluster port is a free one. Returns once every node is operational with all of them.
    pub fn start(nodes: usize, index: u16) -> Cluster {
        assert!((1..=3).contains(&nodes));
        let lib = lib_dir();
        let bin = target_dir();
        let tag = format!("{}-{index}", std::process::id());
        let dir = std::env::temp_dir().join(format!("rotor-capi-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("authkey");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o400)
            .open(&key)
            .unwrap();
        f.write_all(&[0x5a; 256]).unwrap();
        // A port nothing uses right now on any address (a port made from the pid can still be
        // held by another test's dataplane).
        let port = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.local_addr())
            .expect("a free UDP port")
            .port();
        let mut nodelist = String::new();
        for i in 1..=nodes {
            nodelist.push_str(&format!(
                "  node {{\n    nodeid: {i}\n    name: n{i}\n    ring0_addr: 127.0.0.{i}\n  }}\n"
            ));
        }
        let conf = dir.join("corosync.conf");
        std::fs::write(
            &conf,
            format!(
                "totem {{\n  version: 2\n  cluster_name: capi\n  token: 1000\n  keyfile: {}\n  interface {{\n    linknumber: 0\n    mcastport: {port}\n  }}\n}}\nnodelist {{\n{nodelist}}}\nlogging {{\n  to_syslog: no\n}}\n",
                key.display()
            ),
        )
        .unwrap();
        let mut cluster = Cluster {
            dir: dir.clone(),
            children: Vec::new(),
            tag,
            bin,
            lib,
        };
        for i in 1..=nodes {
            let log = std::fs::File::create(dir.join(format!("n{i}.log"))).unwrap();
            let child = Command::new(cluster.bin.join("rotord"))
                .args(["-f", "-c"])
                .arg(&conf)
                .args(["--node-id", &i.to_string()])
                .env("ROTOR_IPC_SOCKET", cluster.socket(i))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start rotord");
            cluster.children.push(child);
        }
        for i in 1..=nodes {
            cluster.wait_ring(i, nodes);
        }
        cluster
    }

    /// Node `i`'s IPC socket name (`ROTOR_IPC_SOCKET`).
    pub fn socket(&self, i: usize) -> String {
        format!("rt-capi-{}-n{i}", self.tag)
    }

    fn wait_ring(&self, i: usize, want: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let needle = "Ring ID";
        loop {
            let out = self.rotor(i, &["status"]);
            let text = String::from_utf8_lossy(&out.stdout);
            let connected =
                text.matches("connected").count() - text.matches("disconnected").count();
            if out.status.success()
                && text.contains(needle)
                && text.contains("state operational")
                && connected + 1 == want
            {
                return;
            }
            let log =
                std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "node {i}: no ring of {want} within 30 s; status:\n{text}\nlog:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A command on node `i`: its socket in `ROTOR_IPC_SOCKET`, rotor's libraries first on
    /// `LD_LIBRARY_PATH`.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("ROTOR_IPC_SOCKET", self.socket(i))
            .env("LD_LIBRARY_PATH", &self.lib);
        c
    }

    /// `rotor ARGS` on node `i`.
    pub fn rotor(&self, i: usize, args: &[&str]) -> Output {
        self.command(i, self.bin.join("rotor"))
            .args(args)
            .output()
            .expect("run rotor")
    }

    /// Runs `program ARGS` on node `i` to completion within `limit` (killed after it).
    pub fn run(&self, i: usize, program: &Path, args: &[&str], limit: Duration) -> Output {
        let mut child = self
            .command(i, program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        let deadline = Instant::now() + limit;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().expect("collect output")
    }
}

/// stdout and stderr of a finished program, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
