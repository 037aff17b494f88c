//! Redundant links under CPG load: 3 nodes with 2 links each on two separate bridges, checker
//! clients on every node. Link 0 of node 3 is taken down (its interface down, then 100% loss
//! at the switch), brought back, then link 1, then both (only then may the membership change).
//! The checker over the logs must find no lost, duplicated, reordered or invented message; no
//! ring or group change may happen while one link remains; node 1 must see node 3's link go
//! down and come back in its `stats.knet.*`. In passive mode link 0 (the lowest number of equal
//! priorities) carries the frames and link 1 carries none but pings; active and rr runs check
//! that both links carry frames. Figures (how long after the fault each node logged the link down,
//! how long until every checker delivered a message every other sent after the fault, read
//! from the logs by `failover`) are reported, never asserted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rotor_testbed::Testbed;

use crate::campaign::{nft_reset, nft_rules, prepare_run, read_logs, wait_until, Cluster, Config};
use crate::check::{self, Report};
use crate::failover::{flowing, left_out, read_link_lines, seen, year_of, Clocks, LinkLine};
use crate::record::{self, Line};

/// One fault and its healing.
#[derive(Clone, Debug)]
pub struct LinkStep {
    pub name: String,
    /// The links of node 3 it cuts.
    pub links: Vec<u8>,
    /// CLOCK_MONOTONIC just before the command that cuts, and once it returned: the fault is
    /// in effect from `cut_ns` (the command takes milliseconds), and the figures count from
    /// it. A node may log the link down while the command still runs: that counts as 0.
    pub fault_ns: u64,
    pub cut_ns: u64,
    /// CLOCK_MONOTONIC just before the heal.
    pub heal_ns: u64,
    /// When each thing happened, read from the logs once the run is over.
    pub timing: Timing,
    pub problems: Vec<String>,
}

impl LinkStep {
    /// How long the command that cut ran: the fault took effect at some point in it.
    pub fn cut_took(&self) -> Duration {
        Duration::from_nanos(self.cut_ns.saturating_sub(self.fault_ns))
    }
}

/// A step's figures, from rotord's link lines and the checkers' deliveries (`failover`): on
/// one clock, link events to ±0.5 ms (their log line's millisecond), deliveries exact. "The
/// fault" is the moment the command that cut returned ([`LinkStep::cut_ns`]).
#[derive(Clone, Debug, Default)]
pub struct Timing {
    /// Per node (1, 2, 3): from the fault until its log said the cut links were down to every
    /// peer across them (node 3: to nodes 1 and 2; the others: to node 3).
    pub down_seen: Vec<Option<Duration>>,
    /// From the fault until every checker delivered a message sent after it by every checker:
    /// traffic flowing over the other link (`None` for the step that cuts both).
    pub flowing: Option<Duration>,
    /// Of that last delivery: from the fault until its message was sent (the sender's next
    /// send), and from then until it was delivered.
    pub last_sent: Option<Duration>,
    pub last_delivered: Option<Duration>,
    /// The last delivery's sender and receiver nodes.
    pub last_pair: Option<(u32, u32)>,
    /// From the heal until node 1's log said the links to node 3 were up again.
    pub back: Option<Duration>,
    /// Nodes whose log left out changes of the cut links between the fault and the next
    /// step (the rate limit of link lines): their figures may be late.
    pub left_out: Vec<u32>,
}

impl Timing {
    /// A note naming the nodes whose figures may be late ([`Timing::left_out`]), or nothing.
    pub fn left_out_text(&self) -> String {
        if self.left_out.is_empty() {
            return String::new();
        }
        let v: Vec<String> = self.left_out.iter().map(u32::to_string).collect();
        format!(
            " (the log of node {} left out link changes: those figures may be late)",
            v.join(", ")
        )
    }

    /// [`Timing::down_seen`] as `a / b / c`.
    pub fn down_seen_text(&self) -> String {
        let v: Vec<String> = self.down_seen.iter().map(|d| ms(*d, 1)).collect();
        v.join(" / ")
    }

    /// From the last node seeing the link down until traffic flowed: the failover
    /// time, link down to traffic on the next link (`None` if either is missing; 0 if
    /// traffic flowed before the last node noticed).
    pub fn flowing_after_down(&self) -> Option<Duration> {
        let last_down = self.down_seen.iter().copied().collect::<Option<Vec<_>>>()?;
        let last_down = last_down.into_iter().max()?;
        Some(self.flowing?.saturating_sub(last_down))
    }
}

/// `d` in milliseconds with `decimals` places, or `-`.
pub fn ms(d: Option<Duration>, decimals: usize) -> String {
    d.map(|d| format!("{:.decimals$} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// What a run found.
#[derive(Debug, Default)]
pub struct LinksResult {
    pub mode: String,
    pub steps: Vec<LinkStep>,
    pub report: Report,
    /// Ring or group changes while one link remained.
    pub unexpected: Vec<String>,
    /// Frames sent to node 2 on each link over a quiet stretch: (link 0, link 1).
    pub carried: (u64, u64),
    /// Frames node 1's XDP programs redirected to AF_XDP on each link over that stretch
    /// (`stats.xdp.prog.redirected`, `stats.xdp.link1.prog.redirected`; 0 on kernel UDP).
    pub redirected: (u64, u64),
    pub setup_error: Option<String>,
}

impl LinksResult {
    pub fn ok(&self) -> bool {
        self.setup_error.is_none()
            && self.report.ok()
            && self.unexpected.is_empty()
            && self.steps.iter().all(|s| s.problems.is_empty())
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "link_mode {}: frames to node 2 over a quiet stretch: link 0 {}, link 1 {}\n",
            self.mode, self.carried.0, self.carried.1
        );
        if self.redirected != (0, 0) {
            s.push_str(&format!(
                "AF_XDP frames node 1's XDP programs redirected meanwhile: link 0 {}, link 1 {}\n",
                self.redirected.0, self.redirected.1
            ));
        }
        for st in &self.steps {
            let t = &st.timing;
            s.push_str(&format!(
                "{}: cut in {}; down seen by nodes 1/2/3 after {}; traffic flowing after {} \
                 ({} after the last node saw it down; last: node {} got node {}'s message \
                 sent {} after the fault, {} later); up again after {}{}{}\n",
                st.name,
                ms(Some(st.cut_took()), 1),
                t.down_seen_text(),
                ms(t.flowing, 2),
                ms(t.flowing_after_down(), 1),
                t.last_pair.map_or("-".into(), |p| p.1.to_string()),
                t.last_pair.map_or("-".into(), |p| p.0.to_string()),
                ms(t.last_sent, 2),
                ms(t.last_delivered, 2),
                ms(t.back, 1),
                t.left_out_text(),
                crate::campaign::problems_suffix(&st.problems)
            ));
        }
        s.push_str(
            &self
                .report
                .summary_tail(&self.unexpected, self.setup_error.as_deref()),
        );
        s
    }
}

/// How often the links sequence looks again at what it waits for (the figures come from the
/// logs, not from these looks).
const POLL_EVERY_LINKS: Duration = Duration::from_millis(50);
const CLUSTER: &str = "links";
/// The cluster's nodes, and the one whose links are cut.
const NODES: u32 = 3;
const FAULTY: u32 = 3;
/// Longest wait for a link to be seen down or up, or for traffic to flow.
const WAIT_MAX: Duration = Duration::from_secs(20);

/// What to run.
#[derive(Clone, Debug)]
pub struct LinksPlan {
    /// `totem.link_mode`.
    pub mode: String,
    /// Every fault; without, only the carried-frames check.
    pub faults: bool,
    /// totem{} keys; the default plan sets `token: 1000` (a 1650 ms timeout for 3 nodes: pings
    /// every 412 ms, a link down after 825 ms without an answer).
    pub totem: Vec<(String, String)>,
    /// `totem.transport` (default `udpu`; `xdp` runs both links on AF_XDP).
    pub transport: &'static str,
}

impl LinksPlan {
    pub fn new(mode: &str, faults: bool) -> LinksPlan {
        LinksPlan {
            mode: mode.to_owned(),
            faults,
            totem: vec![("token".into(), "1000".into())],
            transport: "udpu",
        }
    }
}

/// Runs `plan` on testbed hosts named after `prefix`; logs go to `out`.
pub fn run(
    bins: PathBuf,
    out: &Path,
    prefix: &str,
    plan: &LinksPlan,
    progress: &mut dyn FnMut(&str),
) -> LinksResult {
    let mut result = LinksResult {
        mode: plan.mode.clone(),
        ..LinksResult::default()
    };
    let _ = std::fs::remove_dir_all(out);
    match steps(bins, out, prefix, plan, &mut result, progress) {
        Ok((logs, span)) => {
            let parsed = read_logs(&logs);
            result.report = check::check(&parsed);
            result.unexpected = unexpected_changes(&parsed, span);
            time_steps(out, &parsed, &mut result.steps);
        }
        Err(e) => result.setup_error = Some(e),
    }
    result
}

/// How a link is cut.
#[derive(Clone, Copy)]
pub(crate) enum Cut {
    /// `ip link set ethL down` in the host.
    Interface,
    /// Every frame through the host's switch port dropped (nft on the bridge).
    Loss,
    /// The other nodes' addresses on the link taken out of the host's XDP source filter: it
    /// stops hearing them on that link (their frames go to the kernel, as a stranger's do)
    /// while it still sends to them — a one-way cut the pings find from both sides.
    SourceFilter,
}

pub(crate) fn cut(
    cl: &Cluster,
    host: usize,
    link: usize,
    how: Cut,
    on: bool,
) -> Result<(), String> {
    match how {
        Cut::Interface => {
            let dev = format!("eth{link}");
            let state = if on { "down" } else { "up" };
            let o = cl
                .bed
                .exec(host, &["ip", "link", "set", &dev, state])
                .map_err(|e| format!("ip link set {dev} {state}: {e}"))?;
            if !o.status.success() {
                return Err(format!(
                    "ip link set {dev} {state} on host {host}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            Ok(())
        }
        Cut::Loss => {
            let port = if link == 0 {
                format!("h{host}")
            } else {
                format!("h{host}l{link}")
            };
            let rules = if on {
                vec![
                    format!("iifname \"{port}\" drop"),
                    format!("oifname \"{port}\" drop"),
                ]
            } else {
                Vec::new()
            };
            nft_rules(&cl.bed, &rules)
        }
        Cut::SourceFilter => {
            let peers: Vec<xdp_prog::Source> = (1..=cl.config.nodes)
                .filter(|&i| i != host)
                .map(|i| xdp_prog::Source {
                    addr: rotor_testbed::ipv4_on_link(i, link).into(),
                    node_id: i as u32,
                    link: link as u8,
                })
                .collect();
            let dev = format!("eth{link}");
            rotor_testbed::in_netns(&cl.bed.host(host), move || {
                let program = xdp_prog::attached_programs(Some(dev.as_str().into()))
                    .map_err(|e| format!("XDP program on {dev}: {e}"))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| format!("no XDP program on {dev}"))?;
                let (remove, put_back): (Vec<_>, &[xdp_prog::Source]) = if on {
                    (peers.iter().map(|p| p.addr).collect(), &[])
                } else {
                    (Vec::new(), &peers)
                };
                xdp_prog::edit_sources(&program, &remove, put_back)
                    .map_err(|e| format!("source filter on {dev}: {e}"))
            })
        }
    }
}

pub(crate) fn connected(cl: &Cluster, from: usize, to: usize, link: usize) -> u64 {
    cl.stat(from, &format!("knet.node{to}.link{link}.connected"))
}

/// The checker logs, and the span (start, end) in which no ring or group may change.
type Logs = (Vec<PathBuf>, (u64, u64));

fn steps(
    bins: PathBuf,
    dir: &Path,
    prefix: &str,
    plan: &LinksPlan,
    result: &mut LinksResult,
    progress: &mut dyn FnMut(&str),
) -> Result<Logs, String> {
    let (mode, faults) = (plan.mode.as_str(), plan.faults);
    let (key, mut spec) = prepare_run(dir, CLUSTER)?;
    spec.transport = plan.transport.into();
    spec.links = 2;
    spec.totem.extend(plan.totem.iter().cloned());
    spec.totem.push(("link_mode".into(), mode.into()));
    let conf = dir.join("corosync.conf");
    std::fs::write(&conf, spec.corosync_conf(NODES as usize, &key))
        .map_err(|e| format!("{}: {e}", conf.display()))?;
    let bed = Testbed::up(prefix, NODES as usize).map_err(|e| format!("testbed: {e}"))?;
    bed.add_link(1)
        .map_err(|e| format!("testbed link 1: {e}"))?;
    let config = Config {
        nodes: NODES as usize,
        transport: plan.transport,
        token_ms: plan
            .totem
            .iter()
            .find(|(k, _)| k == "token")
            .and_then(|(_, v)| v.parse().ok()),
        faults: None,
    };
    let mut cl = Cluster::new(bed, &bins, dir, &conf, config, 200);
    nft_reset(&cl.bed)?;
    cl.form()?;
    let up = wait_until(POLL_EVERY_LINKS, WAIT_MAX, || {
        (0..2).all(|l| connected(&cl, 1, 2, l) == 1 && connected(&cl, 1, 3, l) == 1)
    });
    if up.is_none() {
        return Err("node 1 never saw both links to nodes 2 and 3 up".into());
    }
    progress(&format!(
        "{mode}: ring of 3 formed, checkers joined, links up"
    ));
    // What each link carries over a quiet stretch.
    let tx = |cl: &Cluster, l: usize| cl.stat(1, &format!("knet.node2.link{l}.tx_data_packets"));
    let redirected = |cl: &Cluster, l: u8| {
        let key = rotor_proto::xdp::for_link("xdp.prog.redirected", l);
        cl.stat(1, &key)
    };
    let before = (tx(&cl, 0), tx(&cl, 1));
    let redirected_before = (redirected(&cl, 0), redirected(&cl, 1));
    std::thread::sleep(Duration::from_secs(2));
    result.carried = (tx(&cl, 0) - before.0, tx(&cl, 1) - before.1);
    result.redirected = (
        redirected(&cl, 0).saturating_sub(redirected_before.0),
        redirected(&cl, 1).saturating_sub(redirected_before.1),
    );
    let since = record::now_ns();
    let mut until = since;
    if faults {
        let mut plan_steps = vec![
            ("link 0 interface down", &[0usize][..], Cut::Interface),
            ("link 0 100% loss at the switch", &[0], Cut::Loss),
        ];
        if plan.transport == "xdp" {
            plan_steps.push((
                "link 0 deaf by the XDP source filter",
                &[0],
                Cut::SourceFilter,
            ));
        }
        plan_steps.push(("link 1 interface down", &[1], Cut::Interface));
        plan_steps.push(("both links down", &[0, 1], Cut::Interface));
        for (name, links, how) in plan_steps {
            let both = links.len() == 2;
            if both {
                // A membership change is expected from here on.
                until = record::now_ns();
            }
            let mut problems = Vec::new();
            let fault_ns = record::now_ns();
            let start = Instant::now();
            for &l in links {
                cut(&cl, FAULTY as usize, l, how, true)?;
            }
            let cut_ns = record::now_ns();
            // The figures come from the logs afterwards; these waits pace the run and check
            // that node 1's stats follow.
            let watched = links[0];
            let detected = wait_until(POLL_EVERY_LINKS, WAIT_MAX, || {
                connected(&cl, 1, FAULTY as usize, watched) == 0
            });
            if detected.is_none() {
                problems.push(format!("node 1 never saw node 3's link {watched} down"));
            }
            if !both && cl.wait_recovery(cut_ns, WAIT_MAX).is_none() {
                problems.push("traffic did not flow on the other link".into());
            }
            if both {
                cl.bed
                    .wait_rotor_ring(&[1, 2], &[1, 2], &cl.bins, Duration::from_secs(30))?;
            } else {
                std::thread::sleep(Duration::from_secs(2));
            }
            let heal_ns = record::now_ns();
            for &l in links {
                cut(&cl, FAULTY as usize, l, how, false)?;
            }
            let back = wait_until(POLL_EVERY_LINKS, WAIT_MAX, || {
                links
                    .iter()
                    .all(|&l| connected(&cl, 1, FAULTY as usize, l) == 1)
            });
            if back.is_none() {
                problems.push(format!(
                    "node 1 never saw node 3's links {links:?} up again"
                ));
            }
            if both {
                cl.bed.wait_rotor_ring(
                    &[1, 2, 3],
                    &[1, 2, 3],
                    &cl.bins,
                    Duration::from_secs(30),
                )?;
            }
            if cl
                .wait_recovery(record::now_ns(), Duration::from_secs(30))
                .is_none()
            {
                problems.push("traffic did not flow everywhere after the heal".into());
            }
            // A link that went down has its ping timeout raised for a while (knet's flap
            // damping): the next step starts once it is back to the configured timeout, so
            // each step times a first failure.
            let damped = Duration::from_nanos(
                u64::from(rotor_proto::link::TIMEOUT_BACKOFF_MAX)
                    * rotor_proto::link::TIMEOUT_BACKOFF_STEP_NS,
            );
            let settled = start + detected.unwrap_or_default() + damped;
            std::thread::sleep(settled.saturating_duration_since(Instant::now()));
            progress(&format!("{mode}: {name}: done"));
            result.steps.push(LinkStep {
                name: name.into(),
                links: links.iter().map(|&l| l as u8).collect(),
                fault_ns,
                cut_ns,
                heal_ns,
                timing: Timing::default(),
                problems,
            });
        }
    } else {
        until = record::now_ns();
    }
    let logs = cl.logs.clone();
    drop(cl);
    Ok((logs, (since, until)))
}

/// Fills each step's [`Timing`] from the rotord logs in `dir` (`rotord-<node>.log`) and the
/// checkers' `logs`.
fn time_steps(dir: &Path, logs: &[(String, Vec<Line>)], steps: &mut [LinkStep]) {
    let clocks = Clocks::now();
    let year = year_of(SystemTime::now());
    let nodes: Vec<u32> = (1..=NODES).collect();
    let lines: Vec<Vec<LinkLine>> = nodes
        .iter()
        .map(|n| read_link_lines(&dir.join(format!("rotord-{n}.log")), year, &clocks))
        .collect();
    let after = |from: u64, t: Option<u64>| t.map(|t| Duration::from_nanos(t.saturating_sub(from)));
    // Each step's span: from its fault until the next step's.
    let ends: Vec<u64> = steps
        .iter()
        .skip(1)
        .map(|s| s.fault_ns)
        .chain([u64::MAX])
        .collect();
    for (st, end) in steps.iter_mut().zip(ends) {
        let across = |n: u32| -> Vec<u32> {
            if n == FAULTY {
                nodes.iter().copied().filter(|&p| p != FAULTY).collect()
            } else {
                vec![FAULTY]
            }
        };
        let t = &mut st.timing;
        t.down_seen = nodes
            .iter()
            .zip(&lines)
            .map(|(&n, l)| {
                after(
                    st.cut_ns,
                    seen(l, &across(n), &st.links, false, st.fault_ns),
                )
            })
            .collect();
        t.left_out = nodes
            .iter()
            .zip(&lines)
            .filter(|(_, l)| left_out(l, &st.links, (st.fault_ns, end)))
            .map(|(&n, _)| n)
            .collect();
        let up = seen(&lines[0], &[FAULTY], &st.links, true, st.heal_ns);
        t.back = after(st.heal_ns, up);
        if st.links.len() == 1 {
            if let Some(f) = flowing(logs, st.cut_ns) {
                t.flowing = after(st.cut_ns, Some(f.at));
                t.last_sent = after(st.cut_ns, Some(f.sent));
                t.last_delivered = after(f.sent, Some(f.at));
                t.last_pair = Some((f.from, f.to));
            }
        }
    }
}

/// Ring and group changes in `(since, until)`: none may happen while one link remains.
pub(crate) fn unexpected_changes(
    logs: &[(String, Vec<Line>)],
    (since, until): (u64, u64),
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, lines) in logs {
        for l in lines {
            match l {
                Line::Ring { t, nodes, .. } if (since..until).contains(t) => {
                    out.push(format!("{name}: ring {nodes:?} while one link remained"));
                }
                Line::ConfChg {
                    t, joined, left, ..
                } if (since..until).contains(t) => {
                    for (p, reason) in joined.iter().chain(left) {
                        out.push(format!(
                            "{name}: group change of {p} (reason {reason}) while one link remained"
                        ));
                    }
                }
                _ => {}
            }
        }
    }
    out
}
