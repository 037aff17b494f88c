//! The `uidgid.d` directory beside corosync.conf: files of uidgid{} sections (`uid: NAME`,
//! `gid: NAME`), read after the main file on every start and reload, as corosync's
//! `read_uidgid_files_into_icmap` does, so an administrator can admit a user by dropping a
//! file there and reloading. Each entry becomes `uidgid.config.uid.<uid>` (or `gid`) like the
//! main file's.

use std::path::Path;

use super::build::Builder;
use super::tree::{parse_tree, Item};
use super::{Config, ConfigError, ErrorKind, FILE_SIZE_MAX};

/// Adds the entries of every regular file in `dir` (sorted by name) to `config`. A missing
/// directory is no error; a file that cannot be read or holds anything but uidgid{} is.
pub(super) fn read_dir(dir: &Path, config: &mut Config) -> Result<(), ConfigError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        let name = path.display().to_string();
        let read_error = |reason: String| ConfigError::Read {
            path: name.clone(),
            reason,
        };
        let bytes = std::fs::read(&path).map_err(|e| read_error(e.to_string()))?;
        if bytes.len() > FILE_SIZE_MAX {
            return Err(read_error(format!(
                "file is larger than {FILE_SIZE_MAX} bytes"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| read_error(format!("not UTF-8: {e}")))?;
        let tree = parse_tree(&name, &text)?;
        let mut b = Builder::new(&name);
        for item in &tree.items {
            match item {
                Item::Section(s) if s.name == "uidgid" => b.on_uidgid(s)?,
                Item::Section(s) => {
                    return Err(b.error(
                        s.line,
                        &s.name,
                        ErrorKind::UnknownSection,
                        "a uidgid.d file may hold uidgid sections only".into(),
                    ))
                }
                Item::Pair(p) => {
                    return Err(b.error(
                        p.line,
                        &p.key,
                        ErrorKind::UnknownSection,
                        "a uidgid.d file may hold uidgid sections only".into(),
                    ))
                }
            }
        }
        for (key, value) in b.entries {
            config.entries.insert(key, value);
        }
        config.lines.extend(b.lines);
    }
    Ok(())
}
