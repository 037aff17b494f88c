//! The node's typed key/value database, after corosync's cmap: typed values, sorted prefix
//! iteration, change tracking through a queue the caller drains, and prefixes clients may not
//! write: those the daemon publishes (`runtime.`, `stats.`) and those the config file stands
//! for (a write there could not take effect while rotor runs, so it is refused rather than
//! silently ignored), except the keys SAM clients publish about their processes
//! (`resources.process.<pid>.*`).
//!
//! Names and bounds follow corosync's `exec/icmap.c`: a key name is 3 to 255 characters from
//! `a-z A-Z 0-9 . _ - / :`, a value holds at most 16 KiB. Unlike icmap, a key keeps its type
//! for its whole life: setting a `u32` key with a string is refused, so a client cannot turn
//! `totem.token` into text the daemon then fails to read.

use std::collections::{BTreeMap, VecDeque};

pub use rotor_proto::cmap::{format_cmapctl_line, Value, ValueType};

use thiserror::Error;

/// Shortest key name accepted (`ICMAP_KEYNAME_MINLEN` in corosync's icmap.h).
pub const KEY_NAME_LEN_MIN: usize = 3;
/// Longest key name accepted (`ICMAP_KEYNAME_MAXLEN`, `CMAP_KEYNAME_MAXLEN` = 255).
pub const KEY_NAME_LEN_MAX: usize = 255;
/// Largest value in bytes (`ICMAP_MAX_VALUE_LEN` = 16 KiB); a string counts its NUL as C does.
pub const VALUE_SIZE_MAX: usize = 16 * 1024;
/// Most keys one map holds; a set of a new key beyond it is refused.
pub const ENTRY_COUNT_MAX: usize = 65_536;
/// Most tracks alive at once.
pub const TRACK_COUNT_MAX: usize = 1_024;
/// Most undrained track events; further events are counted in `events_dropped_count` and lost.
pub const TRACK_EVENT_QUEUE_MAX: usize = 4_096;

/// Prefixes clients may read but never set or delete: the daemon publishes these.
pub const READ_ONLY_PREFIXES_DEFAULT: [&str; 2] = ["runtime.", "stats."];

/// Who asks: the daemon itself may write everywhere, a client not under read-only prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Daemon,
    Client,
}

/// What happened to a tracked key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

/// What a track asks to be told about: a subset of kinds, on one key or on a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackFilter {
    pub added: bool,
    pub changed: bool,
    pub deleted: bool,
    /// When set, the track's key is a prefix matching every key that starts with it.
    pub prefix: bool,
}

impl TrackFilter {
    /// Every kind of change on exactly one key.
    pub const KEY: TrackFilter = TrackFilter {
        added: true,
        changed: true,
        deleted: true,
        prefix: false,
    };
    /// Every kind of change on every key under a prefix.
    pub const PREFIX: TrackFilter = TrackFilter {
        added: true,
        changed: true,
        deleted: true,
        prefix: true,
    };

    fn wants(&self, kind: ChangeKind) -> bool {
        match kind {
            ChangeKind::Added => self.added,
            ChangeKind::Changed => self.changed,
            ChangeKind::Deleted => self.deleted,
        }
    }
}

/// Names one track; never reused within one `CmapStore`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackHandle(pub u64);

/// One change seen by one track, queued until the caller drains it with `poll_event`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackEvent {
    pub track: TrackHandle,
    pub key: String,
    pub kind: ChangeKind,
    /// The value before the change; `None` for `Added`.
    pub old: Option<Value>,
    /// The value after the change; `None` for `Deleted`.
    pub new: Option<Value>,
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum CmapError {
    #[error("cmap key {key:?}: name must be {KEY_NAME_LEN_MIN} to {KEY_NAME_LEN_MAX} characters long, got {len}")]
    KeyLength { key: String, len: usize },
    #[error("cmap key {key:?}: character {ch:?} is not allowed (allowed: a-z A-Z 0-9 . _ - / :)")]
    KeyCharacter { key: String, ch: char },
    #[error(
        "cmap key {key}: value of {size_bytes} bytes exceeds the maximum of {VALUE_SIZE_MAX} bytes"
    )]
    ValueTooLarge { key: String, size_bytes: usize },
    #[error("cmap key {key}: string value contains a NUL byte")]
    StringWithNul { key: String },
    #[error("cmap key {key}: has type {expected}, cannot set a {got} value")]
    TypeMismatch {
        key: String,
        expected: ValueType,
        got: ValueType,
    },
    #[error("cmap key {key}: read-only for clients (under {prefix:?})")]
    ReadOnly { key: String, prefix: String },
    #[error(
        "cmap key {key}: stands for {file}: change it there and run rotor cfg -R (a reload \
         applies it on every node)"
    )]
    ConfigBacked { key: String, file: String },
    #[error(
        "cmap key {key}: cannot be changed while the cluster runs: change it in {file} and \
         restart every node"
    )]
    Fixed { key: String, file: String },
    #[error("cmap key {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("cmap key {key}: not found")]
    NotFound { key: String },
    #[error("cmap key {key}: map is full ({ENTRY_COUNT_MAX} keys)")]
    MapFull { key: String },
    #[error("cmap: too many tracks (at most {TRACK_COUNT_MAX})")]
    TooManyTracks,
    #[error("cmap: unknown track handle {0:?}")]
    UnknownTrack(TrackHandle),
    #[error(
        "cmap key {key}: has type {value_type}; only integers can be incremented or decremented"
    )]
    NotInteger { key: String, value_type: ValueType },
}

#[derive(Clone, Debug)]
struct Track {
    key: String,
    filter: TrackFilter,
}

/// The typed key/value database. Single-threaded and passive: changes to tracked keys are
/// queued and handed out by `poll_event`, never delivered by callbacks or threads.
#[derive(Debug)]
pub struct CmapStore {
    entries: BTreeMap<String, Value>,
    /// Types that keys must have even before they exist (e.g. `totem.token` is `u32`).
    declared_types: BTreeMap<String, ValueType>,
    read_only_prefixes: Vec<String>,
    /// Prefixes the config file stands for, with the file's name.
    config_prefixes: Vec<(String, String)>,
    tracks: BTreeMap<TrackHandle, Track>,
    track_handle_next: u64,
    /// Invariant: `events.len() <= TRACK_EVENT_QUEUE_MAX`.
    events: VecDeque<TrackEvent>,
    events_dropped_count: u64,
}

impl Default for CmapStore {
    fn default() -> Self {
        Self::new()
    }
}

impl CmapStore {
    /// An empty map with `runtime.` and `stats.` read-only for clients.
    pub fn new() -> CmapStore {
        CmapStore {
            entries: BTreeMap::new(),
            declared_types: BTreeMap::new(),
            read_only_prefixes: READ_ONLY_PREFIXES_DEFAULT
                .iter()
                .map(|p| p.to_string())
                .collect(),
            config_prefixes: Vec::new(),
            tracks: BTreeMap::new(),
            track_handle_next: 1,
            events: VecDeque::new(),
            events_dropped_count: 0,
        }
    }

    /// Makes every key starting with `prefix` read-only for clients.
    pub fn add_read_only_prefix(&mut self, prefix: &str) {
        if !self.read_only_prefixes.iter().any(|p| p == prefix) {
            self.read_only_prefixes.push(prefix.to_string());
        }
    }

    /// Refuses clients' writes and deletes of every key starting with `prefix`: its keys stand
    /// for `file`, and a change would not take effect until the file is read again
    /// (`CmapError::ConfigBacked`, which says to edit `file` and restart).
    pub fn add_config_prefix(&mut self, prefix: &str, file: &str) {
        if !self.config_prefixes.iter().any(|(p, _)| p == prefix) {
            self.config_prefixes
                .push((prefix.to_string(), file.to_string()));
        }
    }

    /// Fixes the type `key` must have, whether or not it exists yet.
    pub fn declare_type(&mut self, key: &str, value_type: ValueType) {
        self.declared_types.insert(key.to_string(), value_type);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key)
    }

    /// The value of a `u32` key; `None` when absent or of another type.
    pub fn get_u32(&self, key: &str) -> Option<u32> {
        match self.entries.get(key) {
            Some(Value::U32(v)) => Some(*v),
            _ => None,
        }
    }

    /// The value of a string key; `None` when absent or of another type.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.entries.get(key) {
            Some(Value::String(v)) => Some(v),
            _ => None,
        }
    }

    /// Sets `key` to `value`. Refused when the key name or value is out of bounds, when the
    /// key exists (or is declared) with another type, or when a client writes a read-only or
    /// config-backed key.
    /// Setting the value a key already has is no change and queues no event.
    pub fn set(&mut self, key: &str, value: Value, access: Access) -> Result<(), CmapError> {
        check_key_name(key)?;
        self.check_writable(key, access)?;
        if let Value::String(s) = &value {
            if s.as_bytes().contains(&0) {
                return Err(CmapError::StringWithNul {
                    key: key.to_string(),
                });
            }
        }
        let size_bytes = value.size_bytes();
        if size_bytes > VALUE_SIZE_MAX {
            return Err(CmapError::ValueTooLarge {
                key: key.to_string(),
                size_bytes,
            });
        }
        let expected = self
            .entries
            .get(key)
            .map(Value::value_type)
            .or_else(|| self.declared_types.get(key).copied());
        if let Some(expected) = expected {
            if expected != value.value_type() {
                return Err(CmapError::TypeMismatch {
                    key: key.to_string(),
                    expected,
                    got: value.value_type(),
                });
            }
        }
        match self.entries.get_mut(key) {
            Some(current) => {
                if current.same_as(&value) {
                    return Ok(());
                }
                let old = std::mem::replace(current, value.clone());
                self.on_change(key, ChangeKind::Changed, Some(old), Some(value));
            }
            None => {
                if self.entries.len() >= ENTRY_COUNT_MAX {
                    return Err(CmapError::MapFull {
                        key: key.to_string(),
                    });
                }
                self.entries.insert(key.to_string(), value.clone());
                self.on_change(key, ChangeKind::Added, None, Some(value));
            }
        }
        Ok(())
    }

    /// Adds `step` (±1) to an integer key, wrapping at its type's bounds as corosync's
    /// `icmap_adjust_int` does; floats, strings and binaries are refused.
    pub fn adjust(&mut self, key: &str, step: i8, access: Access) -> Result<(), CmapError> {
        check_key_name(key)?;
        let current = self.entries.get(key).ok_or_else(|| CmapError::NotFound {
            key: key.to_string(),
        })?;
        let s = i64::from(step);
        let next = match *current {
            Value::I8(v) => Value::I8(v.wrapping_add(step)),
            Value::U8(v) => Value::U8(v.wrapping_add_signed(step)),
            Value::I16(v) => Value::I16(v.wrapping_add(s as i16)),
            Value::U16(v) => Value::U16(v.wrapping_add_signed(s as i16)),
            Value::I32(v) => Value::I32(v.wrapping_add(s as i32)),
            Value::U32(v) => Value::U32(v.wrapping_add_signed(s as i32)),
            Value::I64(v) => Value::I64(v.wrapping_add(s)),
            Value::U64(v) => Value::U64(v.wrapping_add_signed(s)),
            ref other => {
                return Err(CmapError::NotInteger {
                    key: key.to_string(),
                    value_type: other.value_type(),
                })
            }
        };
        self.set(key, next, access)
    }

    /// Deletes `key`, returning its last value.
    pub fn delete(&mut self, key: &str, access: Access) -> Result<Value, CmapError> {
        check_key_name(key)?;
        self.check_writable(key, access)?;
        let old = self
            .entries
            .remove(key)
            .ok_or_else(|| CmapError::NotFound {
                key: key.to_string(),
            })?;
        self.on_change(key, ChangeKind::Deleted, Some(old.clone()), None);
        Ok(old)
    }

    /// Keys and values starting with `prefix`, in byte order of the key (`""` = all).
    pub fn iter_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// Starts tracking `key` (or every key under it, with `filter.prefix`).
    pub fn track_add(&mut self, key: &str, filter: TrackFilter) -> Result<TrackHandle, CmapError> {
        if self.tracks.len() >= TRACK_COUNT_MAX {
            return Err(CmapError::TooManyTracks);
        }
        let handle = TrackHandle(self.track_handle_next);
        self.track_handle_next += 1;
        self.tracks.insert(
            handle,
            Track {
                key: key.to_string(),
                filter,
            },
        );
        Ok(handle)
    }

    /// Stops a track. Its events already queued stay in the queue.
    pub fn track_delete(&mut self, handle: TrackHandle) -> Result<(), CmapError> {
        self.tracks
            .remove(&handle)
            .map(|_| ())
            .ok_or(CmapError::UnknownTrack(handle))
    }

    /// The oldest undrained track event.
    pub fn poll_event(&mut self) -> Option<TrackEvent> {
        self.events.pop_front()
    }

    /// Events lost because the queue held `TRACK_EVENT_QUEUE_MAX` undrained ones.
    pub fn events_dropped_count(&self) -> u64 {
        self.events_dropped_count
    }

    fn check_writable(&self, key: &str, access: Access) -> Result<(), CmapError> {
        if access == Access::Client {
            if let Some(prefix) = self
                .read_only_prefixes
                .iter()
                .find(|p| key.starts_with(p.as_str()))
            {
                return Err(CmapError::ReadOnly {
                    key: key.to_string(),
                    prefix: prefix.clone(),
                });
            }
            // A supervised process's SAM keys sit under resources{} but stand for no line of
            // the file: the process that writes them owns them, as in corosync.
            if let Some((_, file)) = self
                .config_prefixes
                .iter()
                .find(|(p, _)| key.starts_with(p.as_str()))
                .filter(|_| !rotor_proto::cmap::is_process_resource_key(key))
            {
                return Err(CmapError::ConfigBacked {
                    key: key.to_string(),
                    file: file.clone(),
                });
            }
        }
        Ok(())
    }

    fn on_change(&mut self, key: &str, kind: ChangeKind, old: Option<Value>, new: Option<Value>) {
        for (handle, track) in &self.tracks {
            let matches = if track.filter.prefix {
                key.starts_with(&track.key)
            } else {
                key == track.key
            };
            if !matches || !track.filter.wants(kind) {
                continue;
            }
            if self.events.len() >= TRACK_EVENT_QUEUE_MAX {
                self.events_dropped_count += 1;
                continue;
            }
            self.events.push_back(TrackEvent {
                track: *handle,
                key: key.to_string(),
                kind,
                old: old.clone(),
                new: new.clone(),
            });
        }
    }
}

/// Checks a key name the way corosync's `icmap_check_key_name` does.
pub fn check_key_name(key: &str) -> Result<(), CmapError> {
    let len = key.len();
    if !(KEY_NAME_LEN_MIN..=KEY_NAME_LEN_MAX).contains(&len) {
        return Err(CmapError::KeyLength {
            key: key.to_string(),
            len,
        });
    }
    if let Some(ch) = key
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':')))
    {
        return Err(CmapError::KeyCharacter {
            key: key.to_string(),
            ch,
        });
    }
    Ok(())
}

/// Every key under `prefix` in corosync-cmapctl's layout, one line each, newline-terminated.
pub fn format_cmapctl(cmap: &CmapStore, prefix: &str, show_binary: bool) -> String {
    let mut out = String::new();
    for (key, value) in cmap.iter_prefix(prefix) {
        out.push_str(&format_cmapctl_line(key, value, show_binary));
        out.push('\n');
    }
    out
}
