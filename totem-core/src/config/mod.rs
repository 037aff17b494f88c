//! totem{} of corosync.conf: the table of settings with corosync's names, defaults and
//! derivations (`table`), the rest of the section's keys (`keys`), and the resolved values the
//! protocol runs with (`TotemSettings`).
//!
//! `TotemSettings::resolve` is the one way from a config to settings: it fills in what the
//! config leaves out, then checks every bound and relation; rotord's parser calls it (so
//! `rotord -t` refuses exactly what the core refuses), and `Node::new` runs the same
//! `validate`. A resolved value is always the value in effect: nothing means "derive later".

pub mod identity;
mod keys;
mod table;

pub use identity::ConfigIdentity;
pub use keys::{KeyType, KeyUse, TotemKey, OTHER_KEYS};
pub use table::{
    setting_named, DefaultRule, Get, Relation, Scale, Set, Setting, Unit, JOIN_MS_DEFAULT,
    MAX_MESSAGES_DEFAULT, RELATIONS, SETTINGS, SETTING_COUNT,
};

use crate::limits::{FRAME_SIZE_MAX, FRAME_SIZE_MIN, MEMBERS_MAX};

/// The totem settings in effect, one field per entry of [`SETTINGS`] (which names them as
/// corosync.conf does and reads and writes them through its accessors). Times are
/// milliseconds.
///
/// Invariant (once out of `resolve`, or after `validate` succeeded): every value within its
/// setting's bounds and every [`RELATIONS`] rule kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotemSettings {
    /// Already added to `token_ms`; kept for the record.
    pub token_coefficient_ms: u32,
    /// The token timeout in effect (`token` plus the coefficient for nodes beyond two).
    pub token_ms: u32,
    pub token_warning_percent: u32,
    pub token_retransmits_before_loss_const: u32,
    pub token_retransmit_ms: u32,
    /// Least wait before the regular token is sent again (the floor of the timeout measured
    /// from rotations, `rto`); `token_retransmit_ms` is its ceiling.
    pub token_retransmit_min_ms: u32,
    pub hold_ms: u32,
    pub consensus_ms: u32,
    pub join_ms: u32,
    pub send_join_ms: u32,
    pub merge_ms: u32,
    pub downcheck_ms: u32,
    pub fail_recv_const: u32,
    pub seqno_unchanged_const: u32,
    pub heartbeat_failures_allowed: u32,
    pub max_network_delay_ms: u32,
    pub window_size: u32,
    pub max_messages: u32,
    /// Of a visit's new frames, how many at most follow the token (Accelerated Ring, `srp`);
    /// 0 is classic Totem.
    pub accelerated_window: u32,
    /// 1: the per-visit allowance adapts (`flow`) instead of being `max_messages`.
    pub max_messages_adaptive: u32,
    pub miss_count_const: u32,
    pub netmtu_bytes: u32,
}

/// What settings are resolved against besides the config: the cluster's size and what the
/// layers under the core take out of every packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterShape {
    /// Nodes in the nodelist (0 or 1 for a node alone): scales the token and sizes membership
    /// messages.
    pub nodelist_count: u32,
    /// Bytes of each netmtu-sized packet that are not the core's frame: IP and UDP headers and
    /// the crypto header and tag ([`frame_overhead_bytes`]).
    pub frame_overhead_bytes: u32,
}

/// IPv4 (20) and UDP (8) header bytes in every packet.
pub const IPV4_UDP_HEADER_BYTES: u32 = 28;
/// IPv6 (40) and UDP (8) header bytes in every packet.
pub const IPV6_UDP_HEADER_BYTES: u32 = 48;

/// Bytes of a packet that are not the core's frame: the IP and UDP headers of the family and
/// `seal_bytes` of crypto header and tag. The one place the frame size's overheads add up.
pub fn frame_overhead_bytes(ipv6: bool, seal_bytes: usize) -> u32 {
    let ip_udp = if ipv6 {
        IPV6_UDP_HEADER_BYTES
    } else {
        IPV4_UDP_HEADER_BYTES
    };
    ip_udp.saturating_add(u32::try_from(seal_bytes).unwrap_or(u32::MAX))
}

impl ClusterShape {
    /// A node alone, with room for any IP family and seal: 100 bytes, so the default netmtu
    /// gives 1400-byte frames. For tests and the simulator.
    pub const ALONE: ClusterShape = ClusterShape {
        nodelist_count: 1,
        frame_overhead_bytes: 100,
    };

    /// Members a ring of this cluster can have.
    pub fn members(&self) -> usize {
        (self.nodelist_count as usize).clamp(1, MEMBERS_MAX)
    }
}

/// A totem setting that cannot work. `key` is the setting the operator should change: the one
/// whose value is wrong, or the set value a wrong derived value came from; `None` when no set
/// value is involved (the section as a whole, e.g. a nodelist too large for the default
/// netmtu).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingError {
    pub key: Option<&'static str>,
    pub reason: String,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key {
            Some(key) => write!(f, "totem.{key}: {}", self.reason),
            None => write!(f, "totem: {}", self.reason),
        }
    }
}

/// `explicit` for [`TotemSettings::resolve`] from name/value pairs.
pub fn explicit<'a>(pairs: &'a [(&'a str, u32)]) -> impl Fn(&str) -> Option<u32> + 'a {
    move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// "hold (0 ms) must be at least 1 ms" for a value outside `setting`'s bounds.
fn bound_reason(setting: &Setting, value: u32) -> Option<String> {
    let unit = setting.unit.suffix();
    let name = setting.name;
    if value < setting.min {
        Some(format!(
            "{name} ({value}{unit}) must be at least {}{unit}",
            setting.min
        ))
    } else if value > setting.max {
        Some(format!(
            "{name} ({value}{unit}) must be at most {}{unit}",
            setting.max
        ))
    } else {
        None
    }
}

impl TotemSettings {
    /// Every setting of [`SETTINGS`] in table order: the value `explicit` gives for its name
    /// (the config sets it), else its default or derivation from the values before it; then
    /// the token coefficient; then [`validate`](Self::validate).
    ///
    /// A set value outside its bounds is refused under its own name. A derived value that
    /// breaks a rule is reported under the set value it derives from (`token: 5` makes a hold
    /// of 0 ms: the error names `token`), or under no key when only defaults are involved.
    pub fn resolve(
        explicit: impl Fn(&str) -> Option<u32>,
        shape: &ClusterShape,
    ) -> Result<TotemSettings, SettingError> {
        let mut s = TotemSettings::ZERO;
        let mut set = [false; SETTING_COUNT];
        for (i, setting) in SETTINGS.iter().enumerate() {
            let value = match explicit(setting.name) {
                Some(v) => {
                    if let Some(mut reason) = bound_reason(setting, v) {
                        if v == 0 {
                            reason.push_str(
                                " (corosync reads 0 as \"use the default\": remove the line \
                                 for the default)",
                            );
                        }
                        return Err(SettingError {
                            key: Some(setting.name),
                            reason,
                        });
                    }
                    set[i] = true;
                    v
                }
                None => match setting.default {
                    DefaultRule::Value(v) => v,
                    DefaultRule::Derived { derive, .. } => derive(&s),
                    DefaultRule::UnlessSet {
                        keys,
                        unset,
                        set: when_set,
                        ..
                    } => {
                        let any_set = keys.iter().any(|k| {
                            SETTINGS[..i]
                                .iter()
                                .zip(&set)
                                .any(|(t, &s)| s && t.name == *k)
                        });
                        if any_set {
                            when_set
                        } else {
                            unset
                        }
                    }
                },
            };
            let value = match setting.scale {
                Some(scale) => (scale.apply)(value, &s, shape),
                None => value,
            };
            (setting.set)(&mut s, value);
        }
        s.validate(shape).map_err(|e| blame(e, &set))?;
        Ok(s)
    }

    /// Checks every value against its bounds, every [`RELATIONS`] rule, the nodelist's size
    /// and that a frame (`frame_size_bytes`) is within the core's limits. A frame of any size
    /// within them carries the membership messages of a ring of `MEMBERS_MAX` nodes (larger
    /// ones go in pieces: see `wire::segments_for`), so the nodelist is not checked against the
    /// frame. The first problem is returned, under the key of the setting it is about.
    pub fn validate(&self, shape: &ClusterShape) -> Result<(), SettingError> {
        for setting in &SETTINGS {
            if let Some(reason) = bound_reason(setting, (setting.get)(self)) {
                return Err(SettingError {
                    key: Some(setting.name),
                    reason,
                });
            }
        }
        for relation in &RELATIONS {
            (relation.check)(self).map_err(|reason| SettingError {
                key: Some(relation.subject),
                reason,
            })?;
        }
        if shape.nodelist_count as usize > MEMBERS_MAX {
            return Err(SettingError {
                key: None,
                reason: format!(
                    "the nodelist has {} nodes; at most {MEMBERS_MAX} are supported",
                    shape.nodelist_count
                ),
            });
        }
        let netmtu = self.netmtu_bytes;
        let overhead = shape.frame_overhead_bytes;
        let frame = self.frame_size_bytes(shape);
        let netmtu_error = |reason: String| SettingError {
            key: Some("netmtu"),
            reason,
        };
        if !(FRAME_SIZE_MIN..=FRAME_SIZE_MAX).contains(&frame) {
            return Err(netmtu_error(format!(
                "netmtu ({netmtu} bytes) less {overhead} bytes of IP, UDP and crypto headers \
                 leaves frames of {frame} bytes; frames must be {FRAME_SIZE_MIN} to \
                 {FRAME_SIZE_MAX} bytes"
            )));
        }
        Ok(())
    }

    /// Bytes of core header and body in one frame: netmtu less what the layers below take
    /// ([`ClusterShape::frame_overhead_bytes`]).
    pub fn frame_size_bytes(&self, shape: &ClusterShape) -> usize {
        self.netmtu_bytes.saturating_sub(shape.frame_overhead_bytes) as usize
    }

    /// After how long without a datagram a node counts another as not heard, in the rows of
    /// who hears whom (`reach`): the token timeout, the protocol's measure of silence, but at
    /// least four presence (`merge`) intervals so that a few lost presences do not count.
    pub fn reach_timeout_ms(&self) -> u32 {
        self.token_ms.max(self.merge_ms.saturating_mul(4))
    }

    /// Every setting by its name with its value, in table order: how settings cross a process
    /// boundary (rotord → dataplane).
    pub fn named(&self) -> Vec<(String, u32)> {
        SETTINGS
            .iter()
            .map(|s| (s.name.to_owned(), (s.get)(self)))
            .collect()
    }

    /// Settings from name/value pairs as [`named`](Self::named) gives them: each value set as
    /// is (no derivation), starting from the defaults; an unknown name is refused. Not
    /// validated: the node validates settings against its shape.
    pub fn from_named<'a>(
        pairs: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<TotemSettings, String> {
        let mut totem = TotemSettings::default();
        for (name, value) in pairs {
            let setting = setting_named(name).ok_or_else(|| {
                let names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
                format!(
                    "unknown totem setting \"{name}\" (known: {})",
                    names.join(", ")
                )
            })?;
            (setting.set)(&mut totem, value);
        }
        Ok(totem)
    }

    /// After how long without the token "Token has not been received" is logged
    /// (`token_warning` percent of the token timeout, as corosync computes it); `None` when
    /// `token_warning` is 0.
    pub fn token_warning_ms(&self) -> Option<u32> {
        (self.token_warning_percent != 0).then(|| {
            (u64::from(self.token_warning_percent) * u64::from(self.token_ms) / 100) as u32
        })
    }

    /// Every field zero: the start of `resolve`, never a valid result.
    const ZERO: TotemSettings = TotemSettings {
        token_coefficient_ms: 0,
        token_ms: 0,
        token_warning_percent: 0,
        token_retransmits_before_loss_const: 0,
        token_retransmit_ms: 0,
        token_retransmit_min_ms: 0,
        hold_ms: 0,
        consensus_ms: 0,
        join_ms: 0,
        send_join_ms: 0,
        merge_ms: 0,
        downcheck_ms: 0,
        fail_recv_const: 0,
        seqno_unchanged_const: 0,
        heartbeat_failures_allowed: 0,
        max_network_delay_ms: 0,
        window_size: 0,
        max_messages: 0,
        accelerated_window: 0,
        max_messages_adaptive: 0,
        miss_count_const: 0,
        netmtu_bytes: 0,
    };
}

/// Nothing set, a node alone ([`ClusterShape::ALONE`]): corosync's defaults.
impl Default for TotemSettings {
    fn default() -> Self {
        TotemSettings::resolve(|_| None, &ClusterShape::ALONE).expect("the defaults are valid")
    }
}

/// Re-addresses an error about a derived setting to the set value it derives from: the first
/// set setting found walking the derivation inputs breadth-first (`None` if there is none).
fn blame(error: SettingError, set: &[bool; SETTING_COUNT]) -> SettingError {
    let Some(subject) = error.key else {
        return error;
    };
    let is_set = |name: &str| {
        SETTINGS
            .iter()
            .position(|s| s.name == name)
            .is_some_and(|i| set[i])
    };
    if is_set(subject) {
        return error;
    }
    let mut queue = vec![subject];
    let mut next = 0;
    let mut blamed = None;
    while let Some(&name) = queue.get(next) {
        next += 1;
        if is_set(name) {
            blamed = Some(name);
            break;
        }
        let Some(setting) = setting_named(name) else {
            continue;
        };
        let from = match setting.default {
            DefaultRule::Derived { from, .. } => from,
            DefaultRule::UnlessSet { keys, .. } => keys,
            DefaultRule::Value(_) => &[],
        };
        for &input in from.iter().chain(setting.scale.as_ref().map(|s| &s.by)) {
            if !queue.contains(&input) {
                queue.push(input);
            }
        }
    }
    let how = match setting_named(subject).map(|s| s.default) {
        Some(DefaultRule::Derived { rule, .. } | DefaultRule::UnlessSet { rule, .. }) => {
            format!("{subject} is not set: {rule}")
        }
        _ => format!("{subject} is not set"),
    };
    let reason = match blamed {
        Some(b) => format!(
            "{} ({how}); change {b}, or set {subject} explicitly",
            error.reason
        ),
        None => format!("{} ({how})", error.reason),
    };
    SettingError {
        key: blamed,
        reason,
    }
}
