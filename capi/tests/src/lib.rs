//! The harness of the C libraries' end-to-end tests: a rotor cluster on loopback addresses
//! (no root), the libraries under their sonames in a directory for `LD_LIBRARY_PATH`, and
//! C programs compiled against corosync's installed headers and linked against Debian's
//! libraries — so running them with rotor's libraries first on the path is exactly how an
//! existing application meets them.

use std::io::{BufRead, BufReader, Write};
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
    ("rotor-capi-quorum", "libquorum.so", "libquorum.so.5"),
    (
        "rotor-capi-votequorum",
        "libvotequorum.so",
        "libvotequorum.so.8",
    ),
    ("rotor-capi-sam", "libsam.so", "libsam.so.4"),
    ("rotor-capi-cfg", "libcfg.so", "libcfg.so.7"),
];

/// This build's target directory (`target/debug`), after building rotord, the dataplane,
/// the `rotor` tool and the libraries (`cargo test -p` builds none of them).
pub fn target_dir() -> PathBuf {
    rotor_testbed::rotor::cargo_build().expect("building rotor and its C libraries");
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
/// (Debian's, so the binary records their symbol versions), into the target directory; once
/// per test process, however many tests ask.
pub fn compile_c(name: &str, libs: &[&str]) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
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
    built.push((name.to_owned(), out.clone()));
    out
}

/// Up to three rotords on 127.0.0.1..N, each with its own IPC socket name.
pub struct Cluster {
    pub dir: PathBuf,
    /// By node, `None` once stopped.
    children: Vec<Option<Child>>,
    tag: String,
    pub bin: PathBuf,
    pub lib: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter().flatten() {
            // SAFETY: kill(2) on a child we started and have not reaped; SIGTERM lets rotord
            // stop its dataplane.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in self.children.iter_mut().flatten() {
            reap(c);
        }
        if std::thread::panicking() {
            for i in 1..=self.children.len() {
                eprintln!("---- rotord n{i}:\n{}", self.log(i));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits up to 5 s for a child that was sent SIGTERM, then kills it.
fn reap(c: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Cluster {
    /// Starts `nodes` rotords (1..=3); `index` keeps concurrent tests apart (socket names,
    /// directory); the cluster port is a free one. Returns once every node is operational with all of them.
    pub fn start(nodes: usize, index: u16) -> Cluster {
        Cluster::start_with(nodes, index, "")
    }

    /// As [`Cluster::start`], with votequorum as the quorum provider (`quorum {}` holds
    /// `provider: corosync_votequorum` and the lines of `quorum`).
    pub fn start_votequorum(nodes: usize, index: u16, quorum: &str) -> Cluster {
        Cluster::start_with(
            nodes,
            index,
            &format!("quorum {{\n  provider: corosync_votequorum\n{quorum}}}\n"),
        )
    }

    /// As [`Cluster::start`], with `sections` added to corosync.conf.
    fn start_with(nodes: usize, index: u16, sections: &str) -> Cluster {
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
                "totem {{\n  version: 2\n  cluster_name: capi\n  token: 1000\n  keyfile: {}\n  interface {{\n    linknumber: 0\n    mcastport: {port}\n  }}\n}}\nnodelist {{\n{nodelist}}}\n{sections}system {{\n  state_dir: {}\n}}\nlogging {{\n  to_syslog: no\n}}\n",
                key.display(),
                dir.join("state").display(),
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
            cluster.children.push(Some(child));
        }
        for i in 1..=nodes {
            cluster.wait_ring(i, nodes);
        }
        cluster
    }

    /// Stops node `i` (SIGTERM: rotord stops its dataplane and leaves the ring).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.children[i - 1].take() {
            // SAFETY: kill(2) on a child we started and have not reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            reap(&mut c);
        }
    }

    /// What node `i`'s rotord logged so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("n{i}.log"))).unwrap_or_default()
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
            let log = self.log(i);
            assert!(
                Instant::now() < deadline,
                "node {i}: no ring of {want} within 30 s; status:\n{text}\nlog:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A command on node `i`: its socket in `ROTOR_IPC_SOCKET`, rotor's libraries first on
    /// `LD_LIBRARY_PATH`, and `LD_BIND_NOW`: every function the program imports binds as it
    /// starts, so one missing from rotor's libraries (or at another version) fails the run at
    /// once rather than when it is first called.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("ROTOR_IPC_SOCKET", self.socket(i))
            .env("LD_LIBRARY_PATH", &self.lib)
            .env("LD_BIND_NOW", "1");
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

/// Runs `program ARGS` on node `i` of `cluster` to completion within `limit` (killed after
/// it), as [`Cluster::run`], for programs that ask for something to happen in the cluster
/// halfway: a line `# pause: WHAT` on the program's stdout calls `on_pause(cluster, WHAT)`,
/// then the program reads one line from its stdin and goes on. Returns the exit status and
/// everything the program printed.
pub fn run_with_pauses(
    cluster: &mut Cluster,
    i: usize,
    program: &Path,
    args: &[&str],
    limit: Duration,
    mut on_pause: impl FnMut(&mut Cluster, &str),
) -> (std::process::ExitStatus, String) {
    let mut child = cluster
        .command(i, program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut stdin = child.stdin.take();
    let deadline = Instant::now() + limit;
    let mut printed = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                printed.push_str(&line);
                printed.push('\n');
                if let Some(what) = line.strip_prefix("# pause: ") {
                    on_pause(cluster, what);
                    if let Some(s) = stdin.as_mut() {
                        let _ = s.write_all(b"\n");
                        let _ = s.flush();
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                printed.push_str("--- killed: over the time limit\n");
                let _ = child.kill();
                break;
            }
        }
    }
    drop(stdin);
    let status = child.wait().expect("wait for the program");
    printed.push_str("--- stderr\n");
    printed.push_str(&errors.join().unwrap_or_default());
    (status, printed)
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_build_makes_every_library() {
        for (package, ..) in super::LIBRARIES {
            assert!(
                rotor_testbed::rotor::PACKAGES.contains(package),
                "{package}"
            );
        }
    }
}
