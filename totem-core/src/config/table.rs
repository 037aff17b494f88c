//! The table of totem settings: every value of corosync.conf's totem{} that the protocol runs
//! with, in the order `TotemSettings::resolve` fills them in, and every relation between them.
//! Parsers, validators, cmap, the process boundary and docs walk these tables; no other code
//! lists the settings.
//!
//! Defaults and formulas are corosync 3's (`exec/totemconfig.c`, `totem_volatile_config_read`),
//! in integer arithmetic that gives the same values as its C casts for every token below
//! 2^24 ms. Two rules are rotor's own, for small tokens (corosync refuses any timeout under
//! 30 ms, rotor runs tokens down to 10 ms):
//! - `hold` is `token_retransmit × 0.8 − 10` as in corosync (the 10 ms is one tick of a 100 Hz
//!   kernel), but never less than half of `token_retransmit`: below a retransmit timeout of
//!   34 ms corosync's formula leaves nothing to hold.
//! - `join`, when not set, is 50 ms or a quarter of `consensus`, whichever is smaller, so a
//!   small token (`token: 10`, consensus 12 ms) still sends several joins per consensus round.
//!   Likewise `max_messages`, when not set, is 17 or `window_size`, whichever is smaller.
//!
//! `accelerated_window` is rotor's own (the Accelerated Ring, see `srp`); when not set it is
//! `max_messages`: every new frame of a visit follows the token, which the simulator measured
//! best (docs/BENCHMARKS.md, "Accelerated Ring"). `max_messages_adaptive` (rotor's own too,
//! see `flow`) is 1 unless the config sets window_size or max_messages, whose values are then
//! obeyed exactly.
//!
//! A value set in the file is checked strictly; a derived value that fails a check is reported
//! against the set value it was derived from (see `TotemSettings::resolve`).

use super::{ClusterShape, TotemSettings};
use crate::limits::WINDOW_SIZE_MAX;

/// What a setting counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Seconds,
    /// A plain number: messages, rotations, retransmissions, failures.
    Count,
    Bytes,
    Percent,
}

impl Unit {
    /// The word used in messages (`""` for a plain count).
    pub const fn name(self) -> &'static str {
        match self {
            Unit::Milliseconds => "milliseconds",
            Unit::Seconds => "seconds",
            Unit::Count => "",
            Unit::Bytes => "bytes",
            Unit::Percent => "percent",
        }
    }

    /// The short suffix used after a value (`" ms"`, `" bytes"`, `"%"`; `""` for a count).
    pub const fn suffix(self) -> &'static str {
        match self {
            Unit::Milliseconds => " ms",
            Unit::Seconds => " s",
            Unit::Count => "",
            Unit::Bytes => " bytes",
            Unit::Percent => "%",
        }
    }
}

/// Where a setting's value comes from when the config does not set it.
#[derive(Clone, Copy)]
pub enum DefaultRule {
    /// A fixed value.
    Value(u32),
    /// Computed from settings earlier in [`SETTINGS`] (named in `from`), as `rule` says.
    Derived {
        from: &'static [&'static str],
        rule: &'static str,
        derive: fn(&TotemSettings) -> u32,
    },
    /// `unset` while the config sets none of `keys` (settings earlier in [`SETTINGS`]), else
    /// `set`: a behaviour that only applies where the operator left those to rotor.
    UnlessSet {
        keys: &'static [&'static str],
        rule: &'static str,
        unset: u32,
        set: u32,
    },
}

/// A correction of a setting's value, set or default, by another setting and the cluster.
#[derive(Clone, Copy)]
pub struct Scale {
    /// The setting it uses, earlier in [`SETTINGS`].
    pub by: &'static str,
    pub rule: &'static str,
    pub apply: fn(u32, &TotemSettings, &ClusterShape) -> u32,
}

/// One totem{} setting.
#[derive(Clone, Copy)]
pub struct Setting {
    /// The key under totem{} (`totem.<name>` in cmap).
    pub name: &'static str,
    pub unit: Unit,
    pub default: DefaultRule,
    /// Applied to the value, set or default, once it is known (only the token has one: the
    /// token coefficient).
    pub scale: Option<Scale>,
    /// Smallest and largest value accepted.
    pub min: u32,
    pub max: u32,
    /// A change of this key takes effect while the cluster runs, as corosync's
    /// (`totem_volatile_config_read` re-reads it on a cmap change or a reload): through a
    /// config reload on every member at one point of the ordered stream, or through a cmap
    /// write on one node. The others (netmtu) are refused at runtime, naming the key.
    pub volatile: bool,
    /// Published as `runtime.config.totem.<name>`, the value in effect, as corosync does.
    pub runtime_config: bool,
    pub doc: &'static str,
    pub get: Get,
    pub set: Set,
}

/// Reads a setting's field.
pub type Get = fn(&TotemSettings) -> u32;
/// Writes a setting's field.
pub type Set = fn(&mut TotemSettings, u32);

impl Setting {
    /// `totem.<name>`, the cmap key.
    pub fn key(&self) -> String {
        format!("totem.{}", self.name)
    }
}

/// Corosync's `JOIN_TIMEOUT`: the join interval when consensus leaves room for it.
pub const JOIN_MS_DEFAULT: u32 = 50;
/// Corosync's `MAX_MESSAGES`: frames per token visit when the window leaves room for it.
pub const MAX_MESSAGES_DEFAULT: u32 = 17;
/// `1000 / HZ` in corosync's hold formula: one tick of a 100 Hz kernel.
const HOLD_TICK_MS: u32 = 10;

/// `token + (nodes − 2) × token_coefficient` from three nodes on (corosync.conf(5)).
fn scale_token(token_ms: u32, s: &TotemSettings, shape: &ClusterShape) -> u32 {
    let beyond_two = shape.nodelist_count.saturating_sub(2);
    token_ms.saturating_add(beyond_two.saturating_mul(s.token_coefficient_ms))
}

/// `(int)(token / (token_retransmits_before_loss_const + 0.2))`.
fn derive_token_retransmit(s: &TotemSettings) -> u32 {
    let tenths = u64::from(s.token_retransmits_before_loss_const) * 10 + 2;
    (u64::from(s.token_ms) * 10 / tenths) as u32
}

/// `(int)(token_retransmit × 0.8 − 10)`, at least half of token_retransmit (module doc).
fn derive_hold(s: &TotemSettings) -> u32 {
    let corosync = (u64::from(s.token_retransmit_ms) * 8 / 10) as u32;
    corosync
        .saturating_sub(HOLD_TICK_MS)
        .max(s.token_retransmit_ms / 2)
}

/// `(int)(float)(1.2 × token)`.
fn derive_consensus(s: &TotemSettings) -> u32 {
    (u64::from(s.token_ms) * 12 / 10).min(u64::from(u32::MAX)) as u32
}

/// 50 ms, or a quarter of consensus when that is less (module doc).
fn derive_join(s: &TotemSettings) -> u32 {
    (s.consensus_ms / 4).clamp(1, JOIN_MS_DEFAULT)
}

/// 17, or window_size when that is less.
fn derive_max_messages(s: &TotemSettings) -> u32 {
    s.window_size.min(MAX_MESSAGES_DEFAULT)
}

/// max_messages: the whole visit (module doc).
fn derive_accelerated_window(s: &TotemSettings) -> u32 {
    s.max_messages
}

macro_rules! accessors {
    ($field:ident) => {
        (
            (|s: &TotemSettings| s.$field) as Get,
            (|s: &mut TotemSettings, v: u32| s.$field = v) as Set,
        )
    };
}

const fn setting(
    name: &'static str,
    unit: Unit,
    default: DefaultRule,
    (min, max): (u32, u32),
    volatile: bool,
    doc: &'static str,
    (get, set): (Get, Set),
) -> Setting {
    Setting {
        name,
        unit,
        default,
        scale: None,
        min,
        max,
        volatile,
        runtime_config: volatile,
        doc,
        get,
        set,
    }
}

/// Entries of [`SETTINGS`].
pub const SETTING_COUNT: usize = 22;

/// Every totem setting, in resolution order: a derived setting comes after those it derives
/// from.
pub static SETTINGS: [Setting; SETTING_COUNT] = [
    Setting {
        runtime_config: false,
        ..setting(
            "token_coefficient",
            Unit::Milliseconds,
            DefaultRule::Value(650),
            (0, u32::MAX),
            true,
            "Added to the token timeout for each nodelist node beyond two. Already applied to \
             `token` in resolved settings.",
            accessors!(token_coefficient_ms),
        )
    },
    Setting {
        scale: Some(Scale {
            by: "token_coefficient",
            rule: "token + (nodes − 2) × token_coefficient from three nodes on",
            apply: scale_token,
        }),
        ..setting(
            "token",
            Unit::Milliseconds,
            DefaultRule::Value(3000),
            (1, u32::MAX),
            true,
            "Time without the token before it is declared lost. Resolved value: the set or \
             default value plus token_coefficient for each nodelist node beyond two, the \
             token timeout in effect.",
            accessors!(token_ms),
        )
    },
    setting(
        "token_warning",
        Unit::Percent,
        DefaultRule::Value(75),
        (0, 100),
        true,
        "Share of the token timeout without the token after which a warning is logged; 0 \
         turns the warning off.",
        accessors!(token_warning_percent),
    ),
    setting(
        "token_retransmits_before_loss_const",
        Unit::Count,
        DefaultRule::Value(4),
        (1, u32::MAX),
        true,
        "Token retransmissions before the token is declared lost; sets the default \
         token_retransmit.",
        accessors!(token_retransmits_before_loss_const),
    ),
    setting(
        "token_retransmit",
        Unit::Milliseconds,
        DefaultRule::Derived {
            from: &["token", "token_retransmits_before_loss_const"],
            rule: "token / (token_retransmits_before_loss_const + 0.2)",
            derive: derive_token_retransmit,
        },
        (1, u32::MAX),
        true,
        "Longest time after passing the token before it is sent again if it has not come \
         back; the wait in effect is measured from token rotations (token_retransmit_min).",
        accessors!(token_retransmit_ms),
    ),
    setting(
        "token_retransmit_min",
        Unit::Milliseconds,
        DefaultRule::Value(1),
        (1, u32::MAX),
        true,
        "Least time after passing the regular token before it is sent again (rotor's own \
         key). The wait is the smoothed token rotation time plus four times its deviation, \
         measured by each node, between this and token_retransmit (which alone applies before \
         a rotation is measured, and to the commit token), doubling with each retransmission; \
         it does not change when the token is declared lost.",
        accessors!(token_retransmit_min_ms),
    ),
    setting(
        "hold",
        Unit::Milliseconds,
        DefaultRule::Derived {
            from: &["token_retransmit"],
            rule: "token_retransmit × 0.8 − 10, at least token_retransmit / 2",
            derive: derive_hold,
        },
        (1, u32::MAX),
        true,
        "How long an idle ring's representative holds the token before passing it on.",
        accessors!(hold_ms),
    ),
    setting(
        "consensus",
        Unit::Milliseconds,
        DefaultRule::Derived {
            from: &["token"],
            rule: "1.2 × token",
            derive: derive_consensus,
        },
        (1, u32::MAX),
        true,
        "Time to reach consensus on a new membership before starting a new round.",
        accessors!(consensus_ms),
    ),
    setting(
        "join",
        Unit::Milliseconds,
        DefaultRule::Derived {
            from: &["consensus"],
            rule: "50, or consensus / 4 when that is less",
            derive: derive_join,
        },
        (1, u32::MAX),
        true,
        "Interval between join messages while gathering a new membership.",
        accessors!(join_ms),
    ),
    setting(
        "send_join",
        Unit::Milliseconds,
        DefaultRule::Value(0),
        (0, u32::MAX),
        true,
        "Upper bound of a random delay before sending a join (spreads joins of large \
         clusters); 0 sends at once.",
        accessors!(send_join_ms),
    ),
    setting(
        "merge",
        Unit::Milliseconds,
        DefaultRule::Value(200),
        (1, u32::MAX),
        true,
        "Interval at which every node multicasts its presence (its ring and who it hears), by \
         which rings find each other to merge.",
        accessors!(merge_ms),
    ),
    setting(
        "downcheck",
        Unit::Milliseconds,
        DefaultRule::Value(1000),
        (1, u32::MAX),
        true,
        "Interval for re-checking a failed link (single-link rings only record it).",
        accessors!(downcheck_ms),
    ),
    setting(
        "fail_recv_const",
        Unit::Count,
        DefaultRule::Value(2500),
        (1, u32::MAX),
        true,
        "Token rotations a node may see a message still missing before it forms a new ring \
         without the nodes it cannot receive from.",
        accessors!(fail_recv_const),
    ),
    setting(
        "seqno_unchanged_const",
        Unit::Count,
        DefaultRule::Value(30),
        (1, u32::MAX),
        true,
        "Idle token rotations before the representative starts holding the token (hold).",
        accessors!(seqno_unchanged_const),
    ),
    setting(
        "heartbeat_failures_allowed",
        Unit::Count,
        DefaultRule::Value(0),
        (0, u32::MAX),
        true,
        "Corosync's heartbeat-based failure detection; 0 (off) is the only behaviour rotor has.",
        accessors!(heartbeat_failures_allowed),
    ),
    setting(
        "max_network_delay",
        Unit::Milliseconds,
        DefaultRule::Value(50),
        (1, u32::MAX),
        true,
        "Corosync's estimate of the network round trip for the heartbeat; recorded only.",
        accessors!(max_network_delay_ms),
    ),
    setting(
        "window_size",
        Unit::Count,
        DefaultRule::Value(50),
        (1, WINDOW_SIZE_MAX),
        true,
        "Frames the whole ring may send in one token rotation.",
        accessors!(window_size),
    ),
    setting(
        "max_messages",
        Unit::Count,
        DefaultRule::Derived {
            from: &["window_size"],
            rule: "17, or window_size when that is less",
            derive: derive_max_messages,
        },
        (1, WINDOW_SIZE_MAX),
        true,
        "Frames one node may send per token visit.",
        accessors!(max_messages),
    ),
    setting(
        "accelerated_window",
        Unit::Count,
        DefaultRule::Derived {
            from: &["max_messages"],
            rule: "max_messages",
            derive: derive_accelerated_window,
        },
        (0, WINDOW_SIZE_MAX),
        true,
        "Of the new frames of one token visit, how many at most are multicast after the token \
         is passed on (rotor's own key: the Accelerated Ring protocol), so the next member \
         starts sending while this one finishes; 0 passes the token after all of them, as \
         classic Totem does.",
        accessors!(accelerated_window),
    ),
    setting(
        "max_messages_adaptive",
        Unit::Count,
        DefaultRule::UnlessSet {
            keys: &["window_size", "max_messages"],
            rule: "1, or 0 when window_size or max_messages is set",
            unset: 1,
            set: 0,
        },
        (0, 1),
        true,
        "1: the frames one node may send per token visit adapt (rotor's own key): from \
         max_messages up to window_size by one a visit while the node has a backlog, rotations \
         stay fast and nothing is lost; a quarter less on a visit that finds retransmission \
         requests, half on a lost token; never below 4. 0: max_messages exactly.",
        accessors!(max_messages_adaptive),
    ),
    setting(
        "miss_count_const",
        Unit::Count,
        DefaultRule::Value(5),
        (1, u32::MAX),
        true,
        "Token visits a message must be seen missing before it is requested again.",
        accessors!(miss_count_const),
    ),
    Setting {
        runtime_config: false,
        ..setting(
            "netmtu",
            Unit::Bytes,
            DefaultRule::Value(1500),
            (576, 65_535),
            false,
            "Largest IP packet the cluster sends. A frame of the core is netmtu minus the IP \
             and UDP headers and the crypto header and tag (`frame_size_bytes`); it must hold \
             the membership messages of every node in the nodelist, in pieces when larger.",
            accessors!(netmtu_bytes),
        )
    },
];

/// The setting called `name`, if there is one.
pub fn setting_named(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// A rule two or more settings must keep, checked once every value is known.
#[derive(Clone, Copy)]
pub struct Relation {
    /// The setting the rule constrains; an error names it (or the set value it derives from).
    pub subject: &'static str,
    /// The rule in words, as docs and errors show it.
    pub rule: &'static str,
    /// `Err(reason)` when the settings break the rule.
    pub check: fn(&TotemSettings) -> Result<(), String>,
}

fn less_than(name: &str, a: u32, other: &str, b: u32) -> Result<(), String> {
    if a < b {
        Ok(())
    } else {
        Err(format!(
            "{name} ({a} ms) must be less than {other} ({b} ms)"
        ))
    }
}

/// "max_messages (60) may not exceed window_size (50)" for counts.
fn at_most(name: &str, a: u32, other: &str, b: u32) -> Result<(), String> {
    if a <= b {
        Ok(())
    } else {
        Err(format!("{name} ({a}) may not exceed {other} ({b})"))
    }
}

/// Every relation between settings, checked in this order after each value's own bounds.
pub static RELATIONS: [Relation; 7] = [
    Relation {
        subject: "token_retransmit",
        rule: "token_retransmit < token",
        check: |s| {
            less_than(
                "token_retransmit",
                s.token_retransmit_ms,
                "token",
                s.token_ms,
            )
        },
    },
    Relation {
        subject: "hold",
        rule: "hold < token_retransmit",
        check: |s| less_than("hold", s.hold_ms, "token_retransmit", s.token_retransmit_ms),
    },
    Relation {
        subject: "consensus",
        rule: "consensus ≥ 1.2 × token",
        check: |s| {
            if u64::from(s.consensus_ms) * 10 >= u64::from(s.token_ms) * 12 {
                Ok(())
            } else {
                Err(format!(
                    "consensus ({} ms) must be at least 1.2 × token ({} ms), {} ms",
                    s.consensus_ms,
                    s.token_ms,
                    (u64::from(s.token_ms) * 12).div_ceil(10)
                ))
            }
        },
    },
    Relation {
        subject: "join",
        rule: "join < consensus",
        check: |s| less_than("join", s.join_ms, "consensus", s.consensus_ms),
    },
    Relation {
        subject: "send_join",
        rule: "send_join < consensus",
        check: |s| less_than("send_join", s.send_join_ms, "consensus", s.consensus_ms),
    },
    Relation {
        subject: "max_messages",
        rule: "max_messages ≤ window_size",
        check: |s| at_most("max_messages", s.max_messages, "window_size", s.window_size),
    },
    Relation {
        subject: "accelerated_window",
        rule: "accelerated_window ≤ max_messages",
        check: |s| {
            at_most(
                "accelerated_window",
                s.accelerated_window,
                "max_messages",
                s.max_messages,
            )
        },
    },
];
