//! Every form of corosync-cmapctl, run twice on the same node and the same keys: once as
//! Debian's real `corosync-cmapctl` (through rotor's libcmap) and once as `rotor cmap` with the
//! same arguments. Standard output, standard error and the exit status must be identical
//! (rotor may add one `rotor: …` line after a refusal, saying why) —
//! listings by prefix, `-g`, `-q`, `-b`, every value type, `-m stats`, `-s` with its parse and
//! range errors, `-d`, `-D`, `-p` files, `-C`, the refusals — and the forms that change cmap
//! must leave it in the same state.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use rotor_capi_tests::Cluster;

const CMAPCTL: &str = "/usr/sbin/corosync-cmapctl";

/// What a run printed and how it ended.
#[derive(Debug, PartialEq)]
struct Seen {
    stdout: String,
    stderr: String,
    status: Option<i32>,
}

fn seen(o: Output) -> Seen {
    Seen {
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        status: o.status.code(),
    }
}

/// The two tools on node 1 with `args` (and `stdin`, if any): corosync-cmapctl's answer,
/// then rotor's.
fn both(c: &Cluster, args: &[&str], stdin: Option<&[u8]>) -> (Seen, Seen) {
    (
        one(c, Path::new(CMAPCTL), &[], args, stdin),
        one(c, &c.bin.join("rotor"), &["cmap"], args, stdin),
    )
}

/// Whether rotor answered as corosync-cmapctl: the same stdout and exit status, and on stderr
/// the same lines — rotor may follow a refusal with a line of its own saying why (`rotor: …`).
fn alike(ours: &Seen, theirs: &Seen) -> bool {
    let extra = ours.stderr.strip_prefix(theirs.stderr.as_str());
    ours.stdout == theirs.stdout
        && ours.status == theirs.status
        && extra.is_some_and(|rest| rest.lines().all(|l| l.starts_with("rotor: ")))
}

/// Runs a form that only reads and asserts both tools answer alike.
fn same(c: &Cluster, args: &[&str]) -> Seen {
    let (theirs, ours) = both(c, args, None);
    assert!(
        alike(&ours, &theirs),
        "rotor cmap {args:?} against corosync-cmapctl:\nours {ours:?}\ntheirs {theirs:?}"
    );
    theirs
}

/// The keys the forms work on, one of each type, set through rotor.
const SEED: &[(&str, &str, &str)] = &[
    ("forms.t.i8", "i8", "8"),
    ("forms.t.u8", "u8", "200"),
    ("forms.t.i16", "i16", "-1600"),
    ("forms.t.u16", "u16", "65535"),
    ("forms.t.i32", "i32", "-2147483648"),
    ("forms.t.u32", "u32", "4000000000"),
    ("forms.t.i64", "i64", "-9000000000000000000"),
    ("forms.t.u64", "u64", "18000000000000000000"),
    ("forms.t.flt", "flt", "1.25"),
    ("forms.t.dbl", "dbl", "-2.5e10"),
    ("forms.t.str", "str", "some text"),
    ("forms.u.a", "u32", "1"),
    ("forms.u.b", "str", "b"),
];

fn seed(c: &Cluster, dir: &Path) {
    let out = c.rotor(1, &["cmap", "-D", "forms."]);
    assert!(out.status.success(), "{out:?}");
    for (k, t, v) in SEED {
        let out = c.rotor(1, &["cmap", "-s", k, t, v]);
        assert!(out.status.success(), "seed {k}: {out:?}");
    }
    // A binary value with a backslash, a control byte and bytes above 0x7f.
    let bin = dir.join("bin-value");
    std::fs::write(&bin, b"a\\b\x01\x7f\x80\xffz").unwrap();
    let out = c.rotor(
        1,
        &["cmap", "-s", "forms.t.bin", "bin", bin.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
}

/// The state a form left under `forms.` (read with the real tool, binaries shown).
fn state(c: &Cluster) -> String {
    let o = c.run(
        1,
        Path::new(CMAPCTL),
        &["-b", "forms."],
        Duration::from_secs(20),
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A form that changes cmap: run by each tool from the same seeded state; their output and
/// the state each leaves must be the same.
fn same_change(c: &Cluster, dir: &Path, args: &[&str], stdin: Option<&[u8]>) {
    seed(c, dir);
    let theirs = one(c, Path::new(CMAPCTL), &[], args, stdin);
    let their_state = state(c);
    seed(c, dir);
    let ours = one(c, &c.bin.join("rotor"), &["cmap"], args, stdin);
    let our_state = state(c);
    assert!(
        alike(&ours, &theirs),
        "rotor cmap {args:?} against corosync-cmapctl:\nours {ours:?}\ntheirs {theirs:?}"
    );
    assert_eq!(our_state, their_state, "state after {args:?}");
}

/// One tool's run (for the forms that change cmap).
fn one(c: &Cluster, program: &Path, pre: &[&str], args: &[&str], stdin: Option<&[u8]>) -> Seen {
    let mut cmd = c.command(1, program);
    cmd.args(pre)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("start");
    if let Some(bytes) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} {args:?} did not finish within 20 s", program.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    seen(child.wait_with_output().unwrap())
}

#[test]
fn every_cmapctl_form_answers_as_corosync_cmapctl() {
    let c = Cluster::start(1, 5);
    let dir = c.dir.clone();
    seed(&c, &dir);

    // Listings by prefix: values of every type, several prefixes, one or all empty.
    let listing = same(&c, &["forms."]);
    assert!(
        listing.stdout.contains("forms.t.flt (flt) = 1.250000\n"),
        "{listing:?}"
    );
    assert!(
        listing.stdout.contains("forms.t.bin (bin)\n"),
        "{listing:?}"
    );
    same(&c, &["forms.u.", "forms.t.u"]);
    same(&c, &["forms.u.", "no.such.prefix."]);
    let empty = same(&c, &["no.such.prefix."]);
    assert_eq!(empty.status, Some(1));
    same(&c, &["no.such.", "nor.this."]);
    same(&c, &["-q", "forms."]);
    same(&c, &["-b", "forms.t.bin"]);
    same(&c, &["-b", "-q", "forms.t."]);
    same(&c, &["-bb", "forms.t.bin"]);
    same(&c, &["totem.cluster_name", "-b"]);

    // -g: one or several keys, quiet, binary, missing keys.
    same(&c, &["-g", "forms.t.u64", "forms.t.str"]);
    same(&c, &["-q", "-g", "forms.t.i8"]);
    same(&c, &["-g", "forms.t.bin"]);
    same(&c, &["-b", "-g", "forms.t.bin"]);
    same(&c, &["-q", "-b", "-g", "forms.t.bin"]);
    let missing = same(&c, &["-g", "forms.t.u8", "no.such.key", "forms.t.str"]);
    assert_eq!(missing.status, Some(1));
    same(&c, &["-g"]);
    same(&c, &["-t"]);
    same(&c, &["-d"]);

    // Maps.
    same(&c, &["-m", "stats", "forms."]);
    same(&c, &["-m", "stats", "-g", "totem.cluster_name"]);
    same(&c, &["-m", "icmap", "-g", "totem.cluster_name"]);
    same(&c, &["-m", "default", "forms.u."]);
    same(&c, &["-m", "bogus", "forms."]);

    // -s: every type, its parse and range errors, refusals, too few parameters.
    for args in [
        &["-s", "forms.t.u8", "u8", "7"][..],
        &["-s", "forms.n.i8", "i8", "--", "-128"],
        &["-s", "forms.n.i8", "i8", "128"],
        &["-s", "forms.n.u8", "u8", "256"],
        &["-s", "forms.n.u8", "u8", "--", "-1"],
        &["-s", "forms.n.u64", "u64", "--", "-1"],
        &["-s", "forms.n.u16", "u16", "12abc"],
        &["-s", "forms.n.u16", "u16", "abc"],
        &["-s", "forms.n.i16", "i16", "--", "-32769"],
        &["-s", "forms.n.i32", "i32", "2147483648"],
        &["-s", "forms.n.flt", "flt", "3.5"],
        &["-s", "forms.n.flt", "flt", "x"],
        &["-s", "forms.n.dbl", "dbl", "1e-3"],
        &["-s", "forms.n.str", "str", "with spaces and = signs"],
        &["-s", "forms.n.any", "nosuchtype", "1"],
        &["-s", "forms.t.u32", "str", "a type change"],
        &["-s", "forms.n.key"],
        &["-s", "forms.n.key", "u8"],
        &["-s", "totem.token", "u32", "5000"],
        &["-s", "runtime.totem.pg.mrp.srp.state", "str", "x"],
    ] {
        same_change(&c, &dir, args, None);
    }
    // Binary values from a file and from standard input, and a file that is not there.
    let file = dir.join("bin-in");
    std::fs::write(&file, b"\x00\x01binary\\\xfe").unwrap();
    same_change(
        &c,
        &dir,
        &["-s", "forms.n.bin", "bin", file.to_str().unwrap()],
        None,
    );
    same_change(
        &c,
        &dir,
        &["-s", "forms.n.bin", "bin", "-"],
        Some(b"from stdin \x80"),
    );
    same_change(
        &c,
        &dir,
        &["-s", "forms.n.bin", "bin", "/no/such/file"],
        None,
    );

    // -d and -D.
    same_change(&c, &dir, &["-d", "forms.t.u8", "forms.t.str"], None);
    same_change(
        &c,
        &dir,
        &["-d", "forms.t.u8", "no.such.key", "forms.t.str"],
        None,
    );
    same_change(&c, &dir, &["-d", "totem.token"], None);
    same_change(&c, &dir, &["-D", "forms.t.", "no.such."], None);
    same_change(&c, &dir, &["-D", "forms.u.a"], None);

    // -p: sets, deletes, deletes by prefix, comments and blank lines; a line without its
    // value; a file that is not there.
    let settings = dir.join("settings");
    std::fs::write(
        &settings,
        "# comment\n\n   forms.p.one u32 1\n\tforms.p.two str two\n^forms.t.u8\n^^forms.u.\n\
         forms.p.three i8 -3 trailing\n^no.such.key\n  # indented comment\n",
    )
    .unwrap();
    same_change(&c, &dir, &["-p", settings.to_str().unwrap()], None);
    let broken = dir.join("broken");
    std::fs::write(
        &broken,
        "forms.p.one u32 1\nforms.p.two str\nforms.p.three u8 3\n",
    )
    .unwrap();
    same_change(&c, &dir, &["-p", broken.to_str().unwrap()], None);
    let bad_value = dir.join("bad-value");
    std::fs::write(&bad_value, "forms.p.one u8 300\n").unwrap();
    same_change(&c, &dir, &["-p", bad_value.to_str().unwrap()], None);
    same_change(&c, &dir, &["-p", "/no/such/settings"], None);

    // -C: clears (quietly), or refuses an unknown argument.
    for what in ["all", "totem", "ipc", "knet", "schedmiss", "bogus"] {
        same_change(&c, &dir, &["-C", what], None);
    }

    // The last action flag wins.
    same(&c, &["-d", "-g", "forms.t.u8"]);

    // No rotord behind the socket.
    let (theirs, ours) = {
        let run = |program: &Path, pre: &[&str]| {
            let o = c
                .command(1, program)
                .env("ROTOR_IPC_SOCKET", "rt-capi-forms-nobody")
                .args(pre)
                .args(["-g", "totem.token"])
                .output()
                .unwrap();
            seen(o)
        };
        (
            run(Path::new(CMAPCTL), &[]),
            run(&c.bin.join("rotor"), &["cmap"]),
        )
    };
    assert!(
        alike(&ours, &theirs) && ours.stderr.contains("rotor: cannot connect"),
        "no rotord:\nours {ours:?}\ntheirs {theirs:?}"
    );
    // A refusal: corosync-cmapctl's line, then rotord's reason and what to do.
    let (theirs, ours) = both(&c, &["-s", "totem.netmtu", "u32", "1400"], None);
    assert!(alike(&ours, &theirs));
    assert!(
        ours.stderr
            .contains("totem.netmtu: cannot be changed while the cluster runs"),
        "{ours:?}"
    );
}

/// `-t KEY` and `-T PREFIX`: both tools end at the end of standard input (here /dev/null) or
/// on a line starting with `q`, having printed the same. (The changes they print are compared
/// in tools.rs.)
#[test]
fn tracking_ends_as_corosync_cmapctl_does() {
    let c = Cluster::start(1, 6);
    let (theirs, ours) = both(&c, &["-T", "forms."], None);
    assert_eq!(ours, theirs);
    assert_eq!(theirs.stdout, "Type \"q\" to finish\n");
    let (theirs, ours) = both(&c, &["-t", "forms.x", "forms.y"], Some(b"q\n"));
    assert_eq!(ours, theirs);
    assert_eq!(theirs.status, Some(0));
}
