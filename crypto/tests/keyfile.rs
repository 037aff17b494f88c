//! Loading the authkey file: accepted sizes, refused permissions, types and lengths, and errors
//! that name the path.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use rotor_crypto::{cluster_name_hash, CryptoMode, KeyError, Keys, Opener, Sealer};

/// A fresh directory under the system temp dir, unique per test and process.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rotor-crypto-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_key(path: &PathBuf, len: usize, mode: u32) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn good_key_files_load_and_agree_with_bytes() {
    let dir = scratch("good");
    for (len, mode) in [(128, 0o400), (256, 0o600), (4096, 0o600)] {
        let path = dir.join(format!("authkey-{len}"));
        write_key(&path, len, mode);
        let from_file = Keys::from_authkey_file(&path, "c").unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let from_bytes = Keys::from_authkey_bytes(&bytes, "c").unwrap();
        let hash = cluster_name_hash("c");
        let mut sealer = Sealer::new(&from_file, CryptoMode::Gcm256, hash, 1, 1);
        let mut opener = Opener::new(&from_bytes, CryptoMode::Gcm256, hash, 2, 2);
        let mut frame = [0u8; 64];
        let len = sealer.seal(b"same key", &mut frame).unwrap();
        assert_eq!(opener.open(&mut frame[..len]).unwrap().body, b"same key");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn group_or_world_access_is_refused_naming_the_path() {
    let dir = scratch("perms");
    let path = dir.join("authkey");
    for mode in [0o644, 0o640, 0o604, 0o602, 0o620, 0o666, 0o601] {
        write_key(&path, 256, mode);
        let error = Keys::from_authkey_file(&path, "c").unwrap_err();
        assert!(
            matches!(error, KeyError::Permissions { .. }),
            "mode {mode:o}: {error}"
        );
        let message = error.to_string();
        assert!(message.contains(path.to_str().unwrap()), "{message}");
        assert!(message.contains(&format!("{mode:04o}")), "{message}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn short_long_and_empty_keys_are_refused() {
    let dir = scratch("length");
    for len in [0, 1, 127, 4097, 10_000] {
        let path = dir.join(format!("authkey-{len}"));
        write_key(&path, len, 0o600);
        let error = Keys::from_authkey_file(&path, "c").unwrap_err();
        assert!(
            matches!(error, KeyError::BadLength { .. }),
            "len {len}: {error}"
        );
        assert!(error.to_string().contains(path.to_str().unwrap()));
    }
    assert!(matches!(
        Keys::from_authkey_bytes(&[1; 100], "c"),
        Err(KeyError::BadLength { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_file_and_directory_are_refused_naming_the_path() {
    let dir = scratch("missing");
    let path = dir.join("no-such-authkey");
    let error = Keys::from_authkey_file(&path, "c").unwrap_err();
    assert!(
        matches!(&error, KeyError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
    assert!(
        error.to_string().contains(path.to_str().unwrap()),
        "{error}"
    );

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let error = Keys::from_authkey_file(&dir, "c").unwrap_err();
    assert!(
        matches!(
            error,
            KeyError::NotRegularFile {
                kind: "a directory",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(dir.to_str().unwrap()));
    std::fs::remove_dir_all(dir).unwrap();
}
