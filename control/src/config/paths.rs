//! Where the config and the authkey live: `-c FILE`, then the environment variables
//! corosync 2.x honoured (`COROSYNC_MAIN_CONFIG_FILE`, `COROSYNC_TOTEM_AUTHKEY_FILE`), then
//! the defaults under /etc/corosync. An empty variable counts as unset.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const CONFIG_PATH_DEFAULT: &str = "/etc/corosync/corosync.conf";
pub const CONFIG_PATH_ENV: &str = "COROSYNC_MAIN_CONFIG_FILE";
pub const AUTHKEY_PATH_DEFAULT: &str = "/etc/corosync/authkey";
pub const AUTHKEY_PATH_ENV: &str = "COROSYNC_TOTEM_AUTHKEY_FILE";

fn env_path(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The config file: `cli` (`-c FILE`), else `$COROSYNC_MAIN_CONFIG_FILE`, else the default.
pub fn config_path(cli: Option<&Path>) -> PathBuf {
    match cli {
        Some(path) => path.to_path_buf(),
        None => env_path(CONFIG_PATH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(CONFIG_PATH_DEFAULT)),
    }
}

/// The authkey: `totem.keyfile`, else `$COROSYNC_TOTEM_AUTHKEY_FILE`, else the default — the
/// order of corosync 2.x's `totem_config_keyread`.
pub fn authkey_path(keyfile: Option<&str>) -> PathBuf {
    match keyfile.filter(|k| !k.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => env_path(AUTHKEY_PATH_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(AUTHKEY_PATH_DEFAULT)),
    }
}
