//! Runtime changes in the simulation (`SimConfig::changes`): an operator edits every node's
//! "file" (the token timeout, the authkey) in the middle of the faults and asks a running node
//! for a reload; members answer after a delay as rotord would (now and then with a refusal);
//! rounds are applied, refused or called off by the production change service; and the
//! operator keeps asking until every running node runs what the files say, as a person would
//! after a reload that failed. Restarted nodes start from the files.
//!
//! Checked on every seed: no node accepts a frame under a key it has retired (the endpoint
//! wipes a rotated-out key once every member seals under the new one), a retired key is no
//! longer held, and once healed every node runs the files' configuration and key.

use std::collections::{BTreeMap, BTreeSet};

use rotor_crypto::Keys;
use rotor_endpoint::{identity_of, Change, ChangeInput};
use totem_core::config::explicit;
use totem_core::{ChangeEvent, ChangeKind, ConfigIdentity, Outcome, RoundId, TotemSettings};

use super::{SimAddr, World, MS};

/// How long a member takes to answer a request (rotord reading its file), at most.
const ANSWER_DELAY_MS_MAX: u64 = 40;
/// How often the operator looks for nodes that do not run what the files say.
const CHECK_INTERVAL_MS: u64 = 400;
/// Share of answers that refuse, per million.
const REFUSAL_PPM: u32 = 40_000;

/// The operator, the files and what the checks need.
pub(super) struct Changes {
    pub(super) enabled: bool,
    /// What every node's files say: nodes restart with it.
    pub(super) file_totem: TotemSettings,
    pub(super) file_keys: Keys,
    /// Answers owed: when, node index, life, round.
    answers: Vec<(u64, usize, usize, RoundId)>,
    next_edit: u64,
    next_check: u64,
    /// Keys each life retired.
    retired: BTreeMap<usize, BTreeSet<u32>>,
    pub(super) requested: u64,
    pub(super) applied: u64,
    pub(super) refused: u64,
    pub(super) keys_retired: u64,
}

impl Changes {
    pub(super) fn new(enabled: bool, totem: TotemSettings, keys: Keys) -> Changes {
        Changes {
            enabled,
            file_totem: totem,
            file_keys: keys,
            answers: Vec::new(),
            next_edit: 300 * MS,
            next_check: CHECK_INTERVAL_MS * MS,
            retired: BTreeMap::new(),
            requested: 0,
            applied: 0,
            refused: 0,
            keys_retired: 0,
        }
    }

    /// When the operator or a member has something to do next.
    pub(super) fn next_at(&self, healed: bool) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        let answers = self.answers.iter().map(|(at, ..)| *at).min();
        let operator = if healed {
            self.next_check
        } else {
            self.next_edit.min(self.next_check)
        };
        Some(answers.map_or(operator, |a| a.min(operator)))
    }
}

impl World {
    /// Every node of the nodelist with its address: the files' nodelist.
    fn nodelist(&self) -> Vec<(u32, SimAddr)> {
        (0..self.cfg.nodes)
            .map(|i| (i as u32 + 1, SimAddr(i)))
            .collect()
    }

    /// What the files say, as members compare it.
    fn file_identity(&self) -> ConfigIdentity {
        identity_of(&self.changes.file_totem, &self.nodelist())
    }

    /// Whether node `index` runs what the files say.
    pub(super) fn runs_files(&self, index: usize) -> bool {
        let Some(endpoint) = self.nodes[index].endpoint.as_ref() else {
            return false;
        };
        endpoint.node().identity() == &self.file_identity()
            && endpoint.sealing_key() == self.crypto.key_id(&self.changes.file_keys)
    }

    /// The operator's and the members' due actions.
    pub(super) fn changes_tick(&mut self, healed: bool) {
        if !self.changes.enabled {
            return;
        }
        let now = self.now;
        let due: Vec<(usize, usize, RoundId)> = self
            .changes
            .answers
            .iter()
            .filter(|(at, ..)| *at <= now)
            .map(|(_, i, life, round)| (*i, *life, *round))
            .collect();
        self.changes.answers.retain(|(at, ..)| *at > now);
        for (index, life, round) in due {
            self.answer(index, life, round);
        }
        if !healed && now >= self.changes.next_edit {
            self.edit_files();
            self.changes.next_edit = now + self.rng.range(600, 1500) * MS;
        }
        if now >= self.changes.next_check {
            self.reload_where_needed();
            self.changes.next_check = now + CHECK_INTERVAL_MS * MS;
        }
    }

    /// The operator edits every node's files (a new token timeout, or a new key) and asks a
    /// running node to reload.
    fn edit_files(&mut self) {
        if self.rng.chance(500_000) {
            let token = 300 + 50 * self.rng.below(3) as u32;
            self.changes.file_totem = TotemSettings::resolve(
                explicit(&[
                    ("token", token),
                    ("token_coefficient", 10),
                    ("join", 30),
                    ("merge", 100),
                    ("window_size", 50),
                    ("max_messages", 17),
                    ("netmtu", self.totem.netmtu_bytes),
                    ("send_join", self.totem.send_join_ms),
                ]),
                &self.shape,
            )
            .expect("simulator config is valid");
        } else if self.crypto != rotor_crypto::CryptoMode::None {
            let authkey: Vec<u8> = (0..256).map(|_| self.rng.next_u64() as u8).collect();
            self.changes.file_keys =
                Keys::from_authkey_bytes(&authkey, "sim").expect("a 256-byte key");
        }
        if self.cfg.verbose {
            println!(
                "  t={}ms operator: files now say token {} ms, key {:08x}",
                self.now / MS,
                self.changes.file_totem.token_ms,
                self.changes.file_keys.id()
            );
        }
        let index = self.rng.below(self.cfg.nodes as u64) as usize;
        self.request_reload(index);
    }

    /// The operator asks one running node that does not run the files to reload (its ring).
    fn reload_where_needed(&mut self) {
        let lagging = (0..self.cfg.nodes).find(|&i| {
            self.running(i)
                && !self.runs_files(i)
                && self.nodes[i]
                    .endpoint
                    .as_ref()
                    .is_some_and(|e| e.node().is_operational() && e.node().change_round().is_none())
        });
        if let Some(index) = lagging {
            self.request_reload(index);
        }
    }

    fn request_reload(&mut self, index: usize) {
        if !self.running(index) {
            return;
        }
        let endpoint = self.nodes[index].endpoint.as_mut().expect("running");
        if endpoint.request_change(ChangeKind::Reload).is_ok() {
            self.changes.requested += 1;
            self.flush(index);
        }
    }

    /// Member `index` answers `round` as its files say (or refuses, now and then).
    fn answer(&mut self, index: usize, life: usize, round: RoundId) {
        if !self.alive(index) || self.nodes[index].life != life {
            return;
        }
        if let Some(until) = self.nodes[index].paused_until {
            // rotord answers once the node runs again.
            self.changes.answers.push((until, index, life, round));
            return;
        }
        let input = if self.rng.chance(REFUSAL_PPM) {
            ChangeInput::Refused {
                reason: "simulated refusal (a key that cannot change at runtime)".into(),
            }
        } else {
            ChangeInput::Ready {
                totem: self.changes.file_totem.clone(),
                nodelist: self.nodelist(),
                keys: Some(self.changes.file_keys.clone()),
                quorum: None,
                links: None,
            }
        };
        let endpoint = self.nodes[index].endpoint.as_mut().expect("running");
        // Not waiting any more (the round was decided or called off meanwhile): nothing to do.
        let _ = endpoint.propose(round, input);
        self.flush(index);
    }

    /// Takes node `index`'s runtime changes: answers to schedule, keys retired.
    pub(super) fn take_changes(&mut self, index: usize) {
        let now = self.now;
        let n = &mut self.nodes[index];
        let (id, life) = (n.id, n.life);
        let Some(endpoint) = n.endpoint.as_mut() else {
            return;
        };
        while let Some(change) = endpoint.poll_change() {
            match change {
                Change::Core(ChangeEvent::Requested { round, .. }) => {
                    let delay = self.rng.range(0, ANSWER_DELAY_MS_MAX) * MS;
                    self.changes.answers.push((now + delay, index, life, round));
                }
                Change::Core(ChangeEvent::Decided { round, outcome, .. }) => {
                    match &outcome {
                        Outcome::Applied => self.changes.applied += 1,
                        Outcome::Refused { .. } => self.changes.refused += 1,
                    }
                    if self.cfg.verbose {
                        println!("  t={}ms node {id}: round {round}: {outcome:?}", now / MS);
                    }
                }
                Change::KeyRetired { key_id } => {
                    self.changes.keys_retired += 1;
                    if endpoint.keys_held().contains(&key_id) {
                        self.report
                            .violations
                            .push(format!("node {id} retired key {key_id:08x} but holds it"));
                    }
                    self.changes.retired.entry(life).or_default().insert(key_id);
                    if self.cfg.verbose {
                        println!("  t={}ms node {id}: key {key_id:08x} retired", now / MS);
                    }
                }
                Change::Core(_) => {}
            }
        }
    }

    /// A frame node `index` accepted under `key_id`: never under a key it retired.
    pub(super) fn check_accepted_key(&mut self, index: usize, key_id: u32) {
        let n = &self.nodes[index];
        if self
            .changes
            .retired
            .get(&n.life)
            .is_some_and(|r| r.contains(&key_id))
        {
            self.report.violations.push(format!(
                "node {} accepted a frame under key {key_id:08x} after retiring it",
                n.id
            ));
        }
    }
}
