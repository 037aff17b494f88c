//! quorum{} of corosync.conf: the one table of its keys (`QUORUM_KEYS`, plus the nodelist's
//! per-node `quorum_votes`), and the settings votequorum starts with, resolved from what the
//! file says with corosync's defaults, derivations and refusals (`exec/votequorum.c`
//! `votequorum_readconfig` at start-up, and votequorum(5)).
//!
//! rotord's parser types quorum{} from this table and calls [`QuorumSettings::resolve`], so
//! `rotord -t` refuses exactly what a start would; the dataplane gets the resolved settings in
//! its start message. Corosync's combinations are kept: an error where corosync refuses to
//! start, a warning (and the setting it says it turns off) where corosync carries on.

use crate::limits::MEMBERS_MAX;

/// Most votes one node (or the quorum device) may have. Corosync has no bound but `u32`; rotor
/// keeps the sum of every node's votes far from overflow: `(MEMBERS_MAX + 1) × VOTES_MAX`
/// fits in 25 bits.
pub const VOTES_MAX: u32 = 65_535;
/// Most expected votes: every node and the quorum device with `VOTES_MAX` each.
pub const EXPECTED_VOTES_MAX: u32 = (MEMBERS_MAX as u32 + 1) * VOTES_MAX;
/// `quorum.last_man_standing_window` when unset (votequorum(5)).
pub const LAST_MAN_STANDING_WINDOW_MS_DEFAULT: u32 = 10_000;
/// `quorum.device.timeout` when unset (`VOTEQUORUM_QDEVICE_DEFAULT_TIMEOUT`).
pub const QDEVICE_TIMEOUT_MS_DEFAULT: u32 = 10_000;
/// `quorum.device.sync_timeout` when unset (`VOTEQUORUM_QDEVICE_DEFAULT_SYNC_TIMEOUT`).
pub const QDEVICE_SYNC_TIMEOUT_MS_DEFAULT: u32 = 30_000;
/// Longest quorum device name, terminator included (`VOTEQUORUM_QDEVICE_MAX_NAME_LEN`).
pub const QDEVICE_NAME_MAX: usize = 255;
/// The only provider: `quorum.provider` names it.
pub const PROVIDER_VOTEQUORUM: &str = "corosync_votequorum";

/// How a key's text is read, and what it may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumKeyType {
    /// An unsigned number in `min..=max`, in the unit named (`""` for a count).
    U32 {
        unit: &'static str,
        min: u32,
        max: u32,
    },
    /// A switch: corosync types it `u8` and reads any value but 0 as on.
    Flag,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// `lowest`, `highest` or a space-separated list of node ids.
    TieBreakerNode,
    /// Free text.
    Text,
}

/// What rotor does with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumKeyUse {
    /// votequorum runs with it.
    Votequorum,
    /// Typed and kept in cmap, as corosync keeps it; nothing in rotor reads it.
    Kept,
}

/// One key of quorum{} (or the nodelist's `quorum_votes`).
#[derive(Clone, Copy, Debug)]
pub struct QuorumKey {
    /// The path under quorum{} (`expected_votes`, `device.votes`); for the nodelist's key, its
    /// name inside node{}.
    pub name: &'static str,
    pub key_type: QuorumKeyType,
    /// The value when the file leaves it out, in words.
    pub default: &'static str,
    /// Corosync applies a change of this key while running (a config reload); corosync makes
    /// every other key read-only after start. rotor applies no change while running yet.
    pub runtime: bool,
    pub key_use: QuorumKeyUse,
    pub doc: &'static str,
}

impl QuorumKey {
    /// `quorum.<name>`, the cmap key (the nodelist's key is per node: see [`NODE_VOTES_KEY`]).
    pub fn key(&self) -> String {
        format!("quorum.{}", self.name)
    }
}

const fn key(
    name: &'static str,
    key_type: QuorumKeyType,
    default: &'static str,
    runtime: bool,
    key_use: QuorumKeyUse,
    doc: &'static str,
) -> QuorumKey {
    QuorumKey {
        name,
        key_type,
        default,
        runtime,
        key_use,
        doc,
    }
}

const VOTES: QuorumKeyType = QuorumKeyType::U32 {
    unit: "",
    min: 0,
    max: VOTES_MAX,
};
const MS: QuorumKeyType = QuorumKeyType::U32 {
    unit: "milliseconds",
    min: 1,
    max: u32::MAX,
};

/// Every key of quorum{} (`device.*` included) that corosync types; any other key under
/// `device{}` is corosync-qdevice's own and kept as text.
pub static QUORUM_KEYS: [QuorumKey; 18] = [
    key(
        "provider",
        QuorumKeyType::Choice(&[PROVIDER_VOTEQUORUM]),
        "none (always quorate)",
        false,
        QuorumKeyUse::Votequorum,
        "The quorum provider. Without one the node is always quorate and no votes are counted.",
    ),
    key(
        "expected_votes",
        QuorumKeyType::U32 {
            unit: "",
            min: 1,
            max: EXPECTED_VOTES_MAX,
        },
        "the sum of the nodelist's quorum_votes",
        true,
        QuorumKeyUse::Votequorum,
        "Votes the whole cluster has; quorum is half of them plus one. Overrides the sum the \
         nodelist gives.",
    ),
    key(
        "votes",
        VOTES,
        "1",
        true,
        QuorumKeyUse::Votequorum,
        "This node's votes when there is no nodelist (deprecated; the nodelist's quorum_votes \
         wins).",
    ),
    key(
        "two_node",
        QuorumKeyType::Flag,
        "0",
        true,
        QuorumKeyUse::Votequorum,
        "A two-node cluster: quorum is 1, so either node alone stays quorate (a fence race \
         decides). Implies wait_for_all unless that is set.",
    ),
    key(
        "wait_for_all",
        QuorumKeyType::Flag,
        "two_node",
        false,
        QuorumKeyUse::Votequorum,
        "Quorate for the first time only once every node has been seen at the same time.",
    ),
    key(
        "last_man_standing",
        QuorumKeyType::Flag,
        "0",
        false,
        QuorumKeyUse::Votequorum,
        "Lower expected votes to the nodes present once the membership has been stable for \
         last_man_standing_window. Every node must have one vote.",
    ),
    key(
        "last_man_standing_window",
        MS,
        "10000",
        false,
        QuorumKeyUse::Votequorum,
        "How long the membership must be stable before last_man_standing lowers expected \
         votes.",
    ),
    key(
        "auto_tie_breaker",
        QuorumKeyType::Flag,
        "0",
        false,
        QuorumKeyUse::Votequorum,
        "On an even split, the half with the tie-breaker node (auto_tie_breaker_node) stays \
         quorate.",
    ),
    key(
        "auto_tie_breaker_node",
        QuorumKeyType::TieBreakerNode,
        "lowest",
        false,
        QuorumKeyUse::Votequorum,
        "Which node breaks ties: lowest, highest, or a space-separated list of node ids tried \
         in order.",
    ),
    key(
        "allow_downscale",
        QuorumKeyType::Flag,
        "0",
        false,
        QuorumKeyUse::Votequorum,
        "Lower expected votes when a node leaves cleanly, down to the configured \
         expected_votes (corosync calls it incomplete and unsupported). Implies \
         expected_votes_tracking.",
    ),
    key(
        "expected_votes_tracking",
        QuorumKeyType::Flag,
        "0",
        false,
        QuorumKeyUse::Votequorum,
        "Keep the highest expected votes ever seen in the state directory (ev_tracking) and \
         start from it.",
    ),
    key(
        "leaving_timeout",
        MS,
        "none",
        false,
        QuorumKeyUse::Kept,
        "Accepted and typed as corosync types it; corosync 3 does not use it.",
    ),
    key(
        "device.model",
        QuorumKeyType::Text,
        "none (no quorum device)",
        true,
        QuorumKeyUse::Votequorum,
        "The quorum device's model (corosync-qdevice's `net`); a quorum device is configured \
         when this is set.",
    ),
    key(
        "device.votes",
        VOTES,
        "nodes − 1 when every node has one vote",
        true,
        QuorumKeyUse::Votequorum,
        "Votes of the quorum device.",
    ),
    key(
        "device.timeout",
        MS,
        "10000",
        true,
        QuorumKeyUse::Votequorum,
        "How long the device's vote counts after its last poll.",
    ),
    key(
        "device.sync_timeout",
        MS,
        "30000",
        true,
        QuorumKeyUse::Votequorum,
        "After a membership change, how long votequorum waits for the device's poll in the new \
         ring before it carries on without the device's vote.",
    ),
    key(
        "device.master_wins",
        QuorumKeyType::Flag,
        "0",
        true,
        QuorumKeyUse::Kept,
        "corosync-qdevice's own: it asks votequorum for master_wins through the API.",
    ),
    key(
        "cancel_wait_for_all",
        QuorumKeyType::Flag,
        "0",
        true,
        QuorumKeyUse::Kept,
        "Corosync cancels wait_for_all when a client sets this key to 1 in cmap; rotor keeps \
         quorum.* keys read-only for clients.",
    ),
];

/// The nodelist's per-node key: `nodelist.node.<index>.quorum_votes`.
pub static NODE_VOTES_KEY: QuorumKey = key(
    "quorum_votes",
    VOTES,
    "1",
    true,
    QuorumKeyUse::Votequorum,
    "The node's votes.",
);

/// The key of [`QUORUM_KEYS`] at `name` (under quorum{}).
pub fn quorum_key_named(name: &str) -> Option<&'static QuorumKey> {
    QUORUM_KEYS.iter().find(|k| k.name == name)
}

/// A value from the file, as [`QuorumSettings::resolve`] asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumValue<'a> {
    /// A number (a `U32` or `Flag` key).
    Number(u32),
    /// Text (a `Choice`, `TieBreakerNode` or `Text` key).
    Text(&'a str),
}

/// Which node breaks ties on an even split (`auto_tie_breaker_node`), corosync's ATB types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TieBreaker {
    /// auto_tie_breaker is off.
    Off,
    Lowest,
    Highest,
    /// Node ids tried in order.
    List(Vec<u32>),
}

impl TieBreaker {
    /// `runtime.votequorum.atb_type`: corosync's enum values.
    pub fn atb_type(&self) -> u32 {
        match self {
            TieBreaker::Off => 0,
            TieBreaker::Lowest => 1,
            TieBreaker::Highest => 2,
            TieBreaker::List(_) => 3,
        }
    }

    /// Reads `lowest`, `highest` or a space-separated list of node ids (none of them 0).
    pub fn parse(text: &str) -> Option<TieBreaker> {
        match text {
            "lowest" => Some(TieBreaker::Lowest),
            "highest" => Some(TieBreaker::Highest),
            _ => {
                let ids: Option<Vec<u32>> = text
                    .split_whitespace()
                    .map(|n| n.parse::<u32>().ok().filter(|&id| id != 0))
                    .collect();
                ids.filter(|ids| !ids.is_empty()).map(TieBreaker::List)
            }
        }
    }
}

/// The quorum device's settings (`quorum.device{}`), when one is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QdeviceSettings {
    pub votes: u32,
    pub timeout_ms: u32,
    pub sync_timeout_ms: u32,
}

/// One node of the nodelist as votequorum counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeVotes {
    /// Its position in the nodelist (`nodelist.node.<index>`), for errors.
    pub index: usize,
    pub node_id: u32,
    /// `quorum_votes`, if the node sets it.
    pub votes: Option<u32>,
}

/// The settings votequorum starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumSettings {
    /// `quorum.expected_votes`, if set.
    pub expected_votes: Option<u32>,
    /// The nodelist's sum of votes (plus the quorum device's votes when they are derived),
    /// `None` without a nodelist.
    pub nodelist_expected_votes: Option<u32>,
    /// This node's votes.
    pub votes: u32,
    pub two_node: bool,
    pub wait_for_all: bool,
    /// wait_for_all is not set in the file and follows two_node.
    pub wait_for_all_follows_two_node: bool,
    pub last_man_standing: bool,
    pub last_man_standing_window_ms: u32,
    pub auto_tie_breaker: TieBreaker,
    pub allow_downscale: bool,
    /// `expected_votes_tracking`, or implied by allow_downscale.
    pub expected_votes_tracking: bool,
    pub qdevice: Option<QdeviceSettings>,
}

impl QuorumSettings {
    /// Expected votes at start: with expected_votes_tracking the persisted barrier (when there
    /// is one) — corosync's `votequorum_readconfig` — else `quorum.expected_votes`, else the
    /// nodelist's sum.
    pub fn start_expected_votes(&self, ev_tracking_barrier: u32) -> u32 {
        if self.expected_votes_tracking && ev_tracking_barrier > 0 {
            return ev_tracking_barrier;
        }
        if self.expected_votes_tracking {
            // corosync replaces quorum.expected_votes by the (empty) barrier: the nodelist's
            // sum counts.
            return self
                .nodelist_expected_votes
                .or(self.expected_votes)
                .unwrap_or(self.votes);
        }
        self.expected_votes
            .or(self.nodelist_expected_votes)
            .unwrap_or(self.votes)
    }
}

/// A quorum{} that cannot work. `key` is the cmap key the operator should change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct QuorumSettingError {
    pub key: String,
    pub reason: String,
}

/// Something corosync accepts but changes or ignores; the config still loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumWarning {
    pub key: String,
    pub message: String,
}

fn refuse(key: &str, reason: impl Into<String>) -> QuorumSettingError {
    QuorumSettingError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Checks `value` against a `U32` key's bounds.
fn check_bounds(key: &QuorumKey, path: &str, value: u32) -> Result<u32, QuorumSettingError> {
    if let QuorumKeyType::U32 { unit, min, max } = key.key_type {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        if value < min {
            return Err(refuse(
                path,
                format!("{value}{unit} is below the smallest value, {min}{unit}"),
            ));
        }
        if value > max {
            return Err(refuse(
                path,
                format!("{value}{unit} is above the largest value, {max}{unit}"),
            ));
        }
    }
    Ok(value)
}

impl QuorumSettings {
    /// The settings for node `local` from what the file says: `explicit(name)` is the value of
    /// `quorum.<name>` (a name of [`QUORUM_KEYS`]) if the file sets it, `nodes` the nodelist
    /// (empty without one). `local` is `None` when the node is not known yet (a config checked
    /// on its own): every check runs, and `votes` is `quorum.votes` or 1 until it is known.
    /// `Ok(None)`: no provider, the node is always quorate.
    ///
    /// Corosync's refusals are errors naming the key to change; its silent corrections
    /// (two_node with auto_tie_breaker, auto_tie_breaker on an odd cluster without
    /// wait_for_all) are applied and returned as warnings.
    pub fn resolve<'a>(
        explicit: impl Fn(&str) -> Option<QuorumValue<'a>>,
        nodes: &[NodeVotes],
        local: Option<u32>,
    ) -> Result<(Option<QuorumSettings>, Vec<QuorumWarning>), QuorumSettingError> {
        let mut warnings = Vec::new();
        let number = |name: &str| -> Result<Option<u32>, QuorumSettingError> {
            let key = quorum_key_named(name).expect("a key of the table");
            match explicit(name) {
                None => Ok(None),
                Some(QuorumValue::Number(v)) => check_bounds(key, &key.key(), v).map(Some),
                Some(QuorumValue::Text(t)) => {
                    Err(refuse(&key.key(), format!("expected a number, got {t:?}")))
                }
            }
        };
        let flag = |name: &str| -> Result<Option<bool>, QuorumSettingError> {
            Ok(number(name)?.map(|v| v != 0))
        };
        let text = |name: &str| -> Option<&'a str> {
            match explicit(name) {
                Some(QuorumValue::Text(t)) => Some(t),
                _ => None,
            }
        };
        match text("provider") {
            None => return Ok((None, warnings)),
            Some(PROVIDER_VOTEQUORUM) => {}
            Some(other) => {
                return Err(refuse(
                    "quorum.provider",
                    format!(
                        "unknown quorum provider {other:?}; the only provider is \
                         {PROVIDER_VOTEQUORUM}"
                    ),
                ))
            }
        }
        let expected_votes = number("expected_votes")?;
        // The nodelist: every node's votes, summed (votequorum_read_nodelist_configuration).
        let mut nodelist_sum: Option<u32> = None;
        let mut votes = None;
        for n in nodes {
            let path = format!("nodelist.node.{}.quorum_votes", n.index);
            let v = match n.votes {
                Some(v) => check_bounds(&NODE_VOTES_KEY, &path, v)?,
                None => 1,
            };
            nodelist_sum = Some(nodelist_sum.unwrap_or(0) + v);
            if Some(n.node_id) == local {
                votes = Some(v);
            }
        }
        let have_nodelist = !nodes.is_empty();
        if !have_nodelist && expected_votes.is_none() {
            return Err(refuse(
                "quorum.expected_votes",
                "configuration error: nodelist or quorum.expected_votes must be configured!",
            ));
        }
        let quorum_votes = number("votes")?;
        let votes = match (votes, local) {
            (Some(v), _) => v,
            (None, Some(local)) if have_nodelist => {
                return Err(refuse(
                    "nodelist",
                    format!("node {local} is not in the nodelist"),
                ))
            }
            // Not known yet (parse time), or no nodelist: quorum.votes (deprecated) or 1.
            (None, _) => quorum_votes.unwrap_or(1),
        };
        let mut two_node = flag("two_node")?.unwrap_or(false);
        let qdevice_model = text("device.model").filter(|m| !m.is_empty());
        let device_votes = number("device.votes")?;
        if two_node && qdevice_model.is_some() {
            return Err(refuse(
                "quorum.two_node",
                "configuration error: two_node and quorum device cannot be configured at the \
                 same time!",
            ));
        }
        let allow_downscale = flag("allow_downscale")?.unwrap_or(false);
        let wait_for_all_set = flag("wait_for_all")?;
        let last_man_standing = flag("last_man_standing")?.unwrap_or(false);
        let last_man_standing_window_ms =
            number("last_man_standing_window")?.unwrap_or(LAST_MAN_STANDING_WINDOW_MS_DEFAULT);
        let mut expected_votes_tracking = flag("expected_votes_tracking")?.unwrap_or(false);
        let atb = flag("auto_tie_breaker")?.unwrap_or(false);
        let atb_node = text("auto_tie_breaker_node");
        let mut auto_tie_breaker = if atb {
            match atb_node {
                None => TieBreaker::Lowest,
                Some(t) => TieBreaker::parse(t).ok_or_else(|| {
                    refuse(
                        "quorum.auto_tie_breaker_node",
                        format!(
                            "expected lowest, highest or a space-separated list of node ids, \
                             got {t:?}"
                        ),
                    )
                })?,
            }
        } else {
            if atb_node.is_some() {
                warnings.push(QuorumWarning {
                    key: "quorum.auto_tie_breaker_node".into(),
                    message: "auto_tie_breaker_node: is meaningless if auto_tie_breaker is set \
                              to 0"
                        .into(),
                });
            }
            TieBreaker::Off
        };
        if allow_downscale {
            expected_votes_tracking = true;
        }
        // wait_for_all follows two_node before two_node may be turned off below, as in
        // corosync.
        let wait_for_all = wait_for_all_set.unwrap_or(two_node);
        if two_node && auto_tie_breaker != TieBreaker::Off {
            warnings.push(QuorumWarning {
                key: "quorum.two_node".into(),
                message: "two_node and auto_tie_breaker are both specified but are not \
                          compatible; two_node has been disabled, please fix your \
                          corosync.conf"
                    .into(),
            });
            two_node = false;
        }
        let node_expected = nodelist_sum.unwrap_or(0);
        if auto_tie_breaker != TieBreaker::Off && node_expected % 2 == 1 && !wait_for_all {
            if last_man_standing {
                return Err(refuse(
                    "quorum.last_man_standing",
                    "configuration error: auto_tie_breaker & last_man_standing not available \
                     in odd sized cluster: disable last_man_standing, keep auto_tie_breaker and \
                     enable wait_for_all (mandatory for auto_tie_breaker in odd-numbered \
                     clusters)",
                ));
            }
            warnings.push(QuorumWarning {
                key: "quorum.auto_tie_breaker".into(),
                message: "auto_tie_breaker is set and the cluster has an odd number of nodes; \
                          wait_for_all needs to be set for this configuration but it is \
                          missing, therefore auto_tie_breaker has been disabled. Please fix \
                          your corosync.conf"
                    .into(),
            });
            auto_tie_breaker = TieBreaker::Off;
        }
        let mut qdevice = None;
        let mut nodelist_expected_votes = nodelist_sum;
        if qdevice_model.is_some() {
            if last_man_standing {
                return Err(refuse(
                    "quorum.last_man_standing",
                    "configuration error: quorum.device is not compatible with \
                     last_man_standing",
                ));
            }
            if auto_tie_breaker != TieBreaker::Off {
                return Err(refuse(
                    "quorum.auto_tie_breaker",
                    "configuration error: quorum.device is not compatible with \
                     auto_tie_breaker",
                ));
            }
            if allow_downscale {
                return Err(refuse(
                    "quorum.allow_downscale",
                    "configuration error: quorum.device is not compatible with allow_downscale",
                ));
            }
            if expected_votes.is_some() && device_votes.is_none() {
                return Err(refuse(
                    "quorum.device.votes",
                    "configuration error: quorum.device.votes must be specified when \
                     quorum.expected_votes is set",
                ));
            }
            let node_count = nodes.len() as u32;
            if device_votes.is_none() && have_nodelist && node_count != node_expected {
                return Err(refuse(
                    "quorum.device.votes",
                    "configuration error: quorum.device.votes must be specified when not all \
                     nodes votes 1",
                ));
            }
            if let (Some(dv), Some(ev)) = (device_votes.filter(|&v| v > 0), expected_votes) {
                if i64::from(ev) - i64::from(dv) < 2 {
                    return Err(refuse(
                        "quorum.device.votes",
                        format!(
                            "configuration error: quorum.device.votes is too high or \
                             expected_votes is too low (device votes {dv}, expected_votes {ev}: \
                             expected_votes must exceed the device's votes by 2 or more)"
                        ),
                    ));
                }
            }
            // Derived device votes: one less than the nodes, and the nodelist's sum grows by
            // as much.
            let device_votes = match device_votes {
                Some(v) => v,
                None => {
                    let v = node_expected.saturating_sub(1);
                    nodelist_expected_votes = Some(node_expected + v);
                    v
                }
            };
            qdevice = Some(QdeviceSettings {
                votes: device_votes,
                timeout_ms: number("device.timeout")?.unwrap_or(QDEVICE_TIMEOUT_MS_DEFAULT),
                sync_timeout_ms: number("device.sync_timeout")?
                    .unwrap_or(QDEVICE_SYNC_TIMEOUT_MS_DEFAULT),
            });
        }
        Ok((
            Some(QuorumSettings {
                expected_votes,
                nodelist_expected_votes,
                votes,
                two_node,
                wait_for_all,
                wait_for_all_follows_two_node: wait_for_all_set.is_none(),
                last_man_standing,
                last_man_standing_window_ms,
                auto_tie_breaker,
                allow_downscale,
                expected_votes_tracking,
                qdevice,
            }),
            warnings,
        ))
    }
}
