//! `rotor keygen` writes 256 random bytes with mode 0400, refuses to overwrite, and takes
//! corosync-keygen's flags.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn rotor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rotor"))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rotor-keygen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn writes_a_private_256_byte_key_and_refuses_to_overwrite() {
    let dir = temp_dir("basic");
    let key = dir.join("authkey");
    let out = rotor()
        .args(["keygen", "-k"])
        .arg(&key)
        .output()
        .expect("run rotor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(&key).expect("key written");
    assert_eq!(meta.len(), 256);
    assert_eq!(meta.permissions().mode() & 0o777, 0o400);
    let first = std::fs::read(&key).expect("read key");
    assert!(
        first.iter().any(|b| *b != 0),
        "the key is random, not zeros"
    );

    let again = rotor()
        .args(["keygen", "-k"])
        .arg(&key)
        .output()
        .expect("run rotor");
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&key).expect("read key"),
        first,
        "the old key is untouched"
    );

    let forced = rotor()
        .args(["keygen", "--force", "-k"])
        .arg(&key)
        .output()
        .expect("run rotor");
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let second = std::fs::read(&key).expect("read key");
    assert_eq!(second.len(), 256);
    assert_ne!(second, first, "a new key was generated");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o400
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left: {leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn takes_corosync_keygens_flags() {
    let dir = temp_dir("flags");
    let key = dir.join("authkey");
    // -s SIZE, -l (accepted, ignored), -r FILE as the random source.
    let source = dir.join("random");
    std::fs::write(&source, vec![0xabu8; 1024]).unwrap();
    let out = rotor()
        .args(["keygen", "-l", "-s", "512", "-r"])
        .arg(&source)
        .arg("-k")
        .arg(&key)
        .output()
        .expect("run rotor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&key).unwrap(), vec![0xabu8; 512]);
    // Sizes outside what rotord accepts are refused, naming the range.
    for size in ["127", "4097"] {
        let out = rotor()
            .args(["keygen", "--force", "-s", size, "-k"])
            .arg(&key)
            .output()
            .expect("run rotor");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unsupported key size") && err.contains("128 to 4096"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_directory_is_named_as_such() {
    let dir = temp_dir("nodir");
    let key = dir.join("corosync").join("authkey");
    let out = rotor()
        .args(["keygen", "-k"])
        .arg(&key)
        .output()
        .expect("run rotor");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "the directory {} does not exist",
            dir.join("corosync").display()
        )) && err.contains("mkdir -p"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_size_bounds_are_rotords() {
    use rotor_client::keygen::{KEY_LEN_MAX, KEY_LEN_MIN};
    assert_eq!(KEY_LEN_MIN, rotor_crypto::AUTHKEY_LEN_MIN);
    assert_eq!(KEY_LEN_MAX, rotor_crypto::AUTHKEY_LEN_MAX);
}
