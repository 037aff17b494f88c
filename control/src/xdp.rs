//! rotord's XDP programs. For each link whose transport is XDP (`transport: xdp`, or corosync's
//! `knet`/auto when rotord is root and the interface holding the link's address accepts the
//! program), rotord loads and attaches one xdp-prog on that link's interface at start, before it
//! drops privileges, with the link's port in its `ports` map and the source filter on: that
//! link's address of every nodelist entry in `sources`, `rotor.xdp_unknown_source` for the rest
//! — filled before the program is attached, so it never steers a frame of another source. Each
//! link is chosen on its own (`choose_link`: a link whose interface cannot take the program
//! runs on kernel UDP under auto, and stops rotord under `xdp`), so the links of one node may
//! run on different transports. A link a reload adds is chosen the same way as the node
//! answers the round (`Programs::choose_added`), its program kept once the round applies and
//! detached if it does not; a link a reload removes has its program detached
//! (`Programs::remove`). rotord keeps every `sources` current when a reload changes the
//! nodelist (`Programs::set_sources`); keeps the programs attached across dataplane restarts
//! (frames of the cluster port pass to the kernel while no AF_XDP socket is in `xsks`, and
//! every other frame passes all along); hands each dataplane every program's `xsks` and
//! `counters` maps beside its start message, and an added link's beside the answer that adds
//! it (SCM_RIGHTS, in link order; the dataplane needs
//! neither `sources` nor `filter`); describes them in cmap (`runtime.xdp.*`, link N's under
//! `runtime.xdp.link<N>.`); and detaches them on its own clean shutdown. A program left by a
//! rotord that was killed is recognised by its name and replaced at the next start (or removed
//! by `rotor xdp-remove`).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use rotor_proto::control::DataplaneTransport;
use rotor_proto::link::LinkStart;
use rotor_proto::xdp as keys;

use xdp_prog::{AttachMode, LoadOptions, Source, SteerProgram, UnknownSource, XdpProgram};

use crate::cmap::{Access, CmapStore, Value};
use crate::config::{Config, TotemSection, TransportSetting};
use crate::log_at;

/// What the source filter lets through, and what it does with the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Every address of every link of every node of the nodelist.
    pub sources: Vec<Source>,
    pub unknown: UnknownSource,
}

impl Filter {
    /// The filter `config` asks for: its nodelist's addresses, and `rotor.xdp_unknown_source`.
    pub fn of(config: &Config) -> Result<Filter, String> {
        Ok(Filter {
            sources: nodelist_sources(config)?,
            unknown: config.rotor.xdp_unknown_source,
        })
    }

    /// The part of the filter that belongs on link `link`'s interface: that link's addresses.
    pub fn of_link(&self, link: u8) -> Filter {
        Filter {
            sources: self
                .sources
                .iter()
                .filter(|s| s.link == link)
                .copied()
                .collect(),
            unknown: self.unknown,
        }
    }
}

/// Every address of every link (`ring0_addr` … `ring7_addr`) of every node of `config`'s
/// nodelist, with its node id and link; names are resolved as the nodelist's ring0 is.
pub fn nodelist_sources(config: &Config) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    for n in &config.nodes {
        let Some(node_id) = n.nodeid else {
            return Err(format!(
                "{}: nodelist.node.{}.nodeid: required (rotor has no automatic node ids)",
                config.file, n.index
            ));
        };
        for (link, name) in n.ring_addrs.iter().enumerate() {
            let Some(name) = name else { continue };
            let addr = resolve(name).map_err(|e| {
                let key = format!("nodelist.node.{}.ring{link}_addr", n.index);
                match config.line_of(&key) {
                    Some(line) => format!("{}:{line}: {key}: {e}", config.file),
                    None => format!("{}: {key}: {e}", config.file),
                }
            })?;
            out.push(Source {
                addr,
                node_id,
                link: link as u8,
            });
        }
    }
    Ok(out)
}

/// An address literal, or the first address a name resolves to (as the nodelist's ring0 is
/// resolved: `ToSocketAddrs` parses literals before it asks the resolver).
fn resolve(name: &str) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addrs = (name, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{name}\": {e}"))?;
    addrs
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| format!("\"{name}\" resolves to no address"))
}

/// A program rotord attached for one link, whose maps it hands to every dataplane.
pub struct OwnedProgram {
    program: XdpProgram,
    /// The link whose interface it is attached to.
    link: u8,
    /// Whether the config asked for XDP (`xdp`) rather than letting rotord choose (`knet`).
    asked_for: bool,
    /// What the source filter holds now: the link's addresses.
    filter: Filter,
}

impl OwnedProgram {
    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        self.program.interface_name()
    }

    /// The kernel's id of the program (as `bpftool prog` and `ip -d link` show it).
    pub fn prog_id(&self) -> Option<u32> {
        self.program.program().prog_id().ok()
    }

    /// The program's `xsks` and `counters` map fds, sent beside each dataplane's start message.
    pub fn map_fds(&self) -> (RawFd, RawFd) {
        let maps = self.program.maps();
        (maps.xsks_fd().as_raw_fd(), maps.counters_fd().as_raw_fd())
    }

    /// The dataplane's transport: XDP when the config asked for it; XDP or UDP when rotord
    /// chose XDP, so that a dataplane whose AF_XDP sockets cannot open on the interface still
    /// runs over kernel UDP (the program then passes cluster frames to the kernel, as it does
    /// whenever `xsks` is empty).
    pub fn dataplane_transport(&self) -> DataplaneTransport {
        if self.asked_for {
            DataplaneTransport::Xdp
        } else {
            DataplaneTransport::XdpOrUdp
        }
    }

    /// What the source filter holds now.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The link whose interface the program is attached to.
    pub fn link(&self) -> u8 {
        self.link
    }

    /// Replaces the source filter's addresses (a reload changed the nodelist) with `sources`
    /// (this link's), logging what changed; on an error the filter keeps the addresses it had.
    pub fn set_sources(&mut self, sources: Vec<Source>) -> Result<(), String> {
        if sources == self.filter.sources {
            return Ok(());
        }
        self.program
            .set_sources(&sources, self.filter.unknown)
            .map_err(|e| e.to_string())?;
        let added: Vec<String> = sources
            .iter()
            .filter(|s| !self.filter.sources.iter().any(|o| o.addr == s.addr))
            .map(describe)
            .collect();
        let removed: Vec<String> = self
            .filter
            .sources
            .iter()
            .filter(|o| !sources.iter().any(|s| s.addr == o.addr))
            .map(describe)
            .collect();
        log_at!(
            Notice,
            "MAIN",
            "XDP source filter of link {} on {}: {} addresses{}{}",
            self.link,
            self.interface(),
            sources.len(),
            if added.is_empty() {
                String::new()
            } else {
                format!("; added {}", added.join(", "))
            },
            if removed.is_empty() {
                String::new()
            } else {
                format!("; removed {}", removed.join(", "))
            }
        );
        self.filter.sources = sources;
        Ok(())
    }

    /// Writes `runtime.xdp.*` (link N's under `runtime.xdp.link<N>.`): what `rotor status`
    /// shows of the program.
    pub fn publish(&self, cmap: &mut CmapStore) {
        let link = self.link;
        let mut set = |k: &str, v: Value| {
            let _ = cmap.set(&keys::for_link(k, link), v, Access::Daemon);
        };
        set(keys::INTERFACE_KEY, Value::String(self.interface().into()));
        set(
            keys::MODE_KEY,
            Value::String(self.program.mode().to_string()),
        );
        set(
            keys::PROGRAM_KEY,
            Value::String(xdp_prog::PROGRAM_NAME.into()),
        );
        if let Some(id) = self.prog_id() {
            set(keys::PROG_ID_KEY, Value::U32(id));
        }
        set(
            keys::UNKNOWN_SOURCE_KEY,
            Value::String(self.filter.unknown.name().into()),
        );
        let count = u32::try_from(self.filter.sources.len()).unwrap_or(u32::MAX);
        set(keys::SOURCES_KEY, Value::U32(count));
    }

    /// Detaches the program (on rotord's clean shutdown), logging the outcome.
    pub fn detach(self) {
        let interface = self.interface().to_owned();
        let link = self.link;
        match self.program.detach() {
            Ok(()) => log_at!(
                Notice,
                "MAIN",
                "XDP program {} of link {link} detached from {interface}",
                xdp_prog::PROGRAM_NAME
            ),
            Err(e) => log_at!(
                Error,
                "MAIN",
                "detaching the XDP program of link {link} from {interface}: {e}"
            ),
        }
    }
}

/// The programs rotord attached, one per link that runs XDP, in link order.
#[derive(Default)]
pub struct Programs(Vec<OwnedProgram>);

impl Programs {
    /// Whether no link runs XDP.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The program attached for `link`, if it runs XDP.
    pub fn of_link(&self, link: u8) -> Option<&OwnedProgram> {
        self.0.iter().find(|p| p.link == link)
    }

    /// Every program's `xsks` and `counters` map fds, in link order: what goes beside each
    /// dataplane's start message.
    pub fn map_fds(&self) -> Vec<RawFd> {
        self.0
            .iter()
            .flat_map(|p| {
                let (xsks, counters) = p.map_fds();
                [xsks, counters]
            })
            .collect()
    }

    /// Takes `program` (a link `choose_link` gave XDP) in link order.
    pub fn add(&mut self, program: OwnedProgram) {
        let at = self.0.partition_point(|p| p.link < program.link);
        self.0.insert(at, program);
    }

    /// Gives each program its link's part of `sources` (every link's address of every node,
    /// as [`nodelist_sources`] gives them); every program is tried, the first error returned.
    pub fn set_sources(&mut self, sources: &[Source]) -> Result<(), String> {
        let mut first_error = None;
        for p in &mut self.0 {
            let of_link = sources.iter().filter(|s| s.link == p.link).copied();
            if let Err(e) = p.set_sources(of_link.collect()) {
                first_error.get_or_insert(format!("link {}: {e}", p.link));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Chooses the transport of every link of `links` that `running` does not list (a reload
    /// adds it) as [`choose_links`] does at start, by `totem` and with `filter` (the new
    /// config's) in its program; the links `running` lists get the transport they run on ([`Programs::mark`]).
    /// Returns the programs attached for the added links: the caller keeps them
    /// ([`Programs::take`]) once the round applies and drops them (detached) if it does not.
    /// An error (`transport: xdp` that an added link cannot have) leaves nothing attached.
    pub fn choose_added(
        &self,
        totem: &TotemSection,
        links: &mut [LinkStart],
        running: &[u8],
        filter: &Filter,
    ) -> Result<Programs, String> {
        let mut added = Programs::default();
        for link in links.iter_mut() {
            if running.contains(&link.settings.number) {
                self.mark(std::slice::from_mut(link));
                continue;
            }
            let transport = totem.link_transport(link.settings.number);
            match choose_link(transport, link, filter, &[self, &added])? {
                Choice::Xdp(p) => {
                    link.transport = p.dataplane_transport();
                    link.interface = Some(p.interface().to_owned());
                    added.add(*p);
                }
                Choice::Udp(_) => {
                    link.transport = DataplaneTransport::Udp;
                    link.interface = None;
                }
            }
        }
        Ok(added)
    }

    /// Writes into each of `links` the transport it runs on: XDP on its program's interface
    /// when one is attached for it, kernel UDP otherwise.
    pub fn mark(&self, links: &mut [LinkStart]) {
        for link in links {
            match self.of_link(link.settings.number) {
                Some(p) => {
                    link.transport = p.dataplane_transport();
                    link.interface = Some(p.interface().to_owned());
                }
                None => {
                    link.transport = DataplaneTransport::Udp;
                    link.interface = None;
                }
            }
        }
    }

    /// The links with a program, in link order.
    pub fn links(&self) -> Vec<u8> {
        self.0.iter().map(|p| p.link).collect()
    }

    /// Takes every program of `other` (attached for links a reload added).
    pub fn take(&mut self, other: Programs) {
        for p in other.0 {
            self.add(p);
        }
    }

    /// Detaches the program of each of `links` (a reload removed them), logging each outcome,
    /// and deletes its `runtime.xdp.link<N>.*` keys.
    pub fn remove(&mut self, links: &[u8], cmap: &mut CmapStore) {
        let (gone, kept): (Vec<OwnedProgram>, Vec<OwnedProgram>) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|p| links.contains(&p.link));
        self.0 = kept;
        for p in gone {
            let prefix = keys::for_link(keys::RUNTIME_XDP_PREFIX, p.link);
            let stale: Vec<String> = cmap
                .iter_prefix(&prefix)
                .map(|(k, _)| k.to_owned())
                .collect();
            for k in stale {
                let _ = cmap.delete(&k, Access::Daemon);
            }
            p.detach();
        }
    }

    /// Writes every program's `runtime.xdp.*` keys.
    pub fn publish(&self, cmap: &mut CmapStore) {
        for p in &self.0 {
            p.publish(cmap);
        }
    }

    /// Detaches every program (on rotord's clean shutdown), logging each outcome.
    pub fn detach(self) {
        for p in self.0 {
            p.detach();
        }
    }
}

/// What rotord runs one link on.
pub enum Choice {
    /// AF_XDP on the program rotord attached (boxed: the program and its filter are large).
    Xdp(Box<OwnedProgram>),
    /// Kernel UDP, and why (for the log).
    Udp(String),
}

/// Chooses every link's transport (`choose_link`, in link order, each as `totem` says for it:
/// its interface's `knet_transport`, else totem.transport), writing the choice into each
/// `LinkStart`; the programs attached are returned. An error (`transport: xdp` that a link
/// cannot have) detaches the programs attached so far.
pub fn choose_links(
    totem: &TotemSection,
    links: &mut [LinkStart],
    filter: &Filter,
) -> Result<Programs, String> {
    let mut programs = Programs::default();
    for link in links.iter_mut() {
        let transport = totem.link_transport(link.settings.number);
        match choose_link(transport, link, filter, &[&programs]) {
            Ok(Choice::Xdp(p)) => {
                link.transport = p.dataplane_transport();
                link.interface = Some(p.interface().to_owned());
                programs.add(*p);
            }
            Ok(Choice::Udp(_)) => {
                link.transport = DataplaneTransport::Udp;
                link.interface = None;
            }
            Err(e) => {
                programs.detach();
                return Err(e);
            }
        }
    }
    Ok(programs)
}

/// Decides link `link`'s transport and, for XDP, loads and attaches a program on the interface
/// that holds the link's address, with the link's port as the cluster port and the link's
/// part of `filter` as its sources. `transport: xdp` that cannot be had is an error (rotord
/// does not start, or refuses the reload that adds the link); `knet` falls back to UDP with
/// the reason. An interface that already carries another link's program (any of `attached`)
/// cannot take a second one: AF_XDP serves one
/// link per interface. Logs the choice and a replaced stale program. Acts on the calling
/// thread's network namespace; needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON) for XDP.
pub fn choose_link(
    transport: TransportSetting,
    link: &LinkStart,
    filter: &Filter,
    attached: &[&Programs],
) -> Result<Choice, String> {
    let number = link.settings.number;
    let asked_for = match transport {
        TransportSetting::Udp | TransportSetting::Udpu => {
            return Ok(logged(
                number,
                Choice::Udp("transport udp: asked for".into()),
            ));
        }
        TransportSetting::Xdp => true,
        TransportSetting::Knet => false,
    };
    let attached = attach(number, link.local, asked_for, filter, attached);
    match (attached, asked_for) {
        (Ok(owned), _) => Ok(logged(number, Choice::Xdp(Box::new(owned)))),
        (Err(Refusal::Conflict(e)), _) | (Err(Refusal::Unavailable(e)), true) => {
            Err(format!("link {number}: transport xdp: {e}"))
        }
        (Err(Refusal::Unavailable(e)), false) => Ok(logged(
            number,
            Choice::Udp(format!("transport udp: auto: {e}")),
        )),
    }
}

fn logged(link: u8, choice: Choice) -> Choice {
    match &choice {
        Choice::Udp(why) => log_at!(Notice, "MAIN", "link {link}: {why}"),
        Choice::Xdp(p) => log_at!(
            Notice,
            "MAIN",
            "link {link}: transport xdp ({}): XDP program {} (id {}) attached to {} in {} mode, \
             cluster port {}, source filter {} addresses (others: {}); kept across dataplane \
             restarts",
            if p.asked_for {
                "asked for".to_owned()
            } else {
                format!(
                    "auto: running as root and {} took the program",
                    p.interface()
                )
            },
            xdp_prog::PROGRAM_NAME,
            p.prog_id().map_or("?".into(), |id| id.to_string()),
            p.interface(),
            p.program.mode(),
            p.program
                .program()
                .ports()
                .map(|ports| ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_else(|e| format!("unreadable ({e})")),
            p.filter.sources.len(),
            p.filter.unknown.name()
        ),
    }
    choice
}

/// `node N link L address A`, for the log.
fn describe(s: &Source) -> String {
    format!("{} (node {} link {})", s.addr, s.node_id, s.link)
}

/// Why a link cannot have XDP.
enum Refusal {
    /// Not here (privileges, interface, driver): auto takes kernel UDP.
    Unavailable(String),
    /// Not with this config, on any transport: rotord does not start.
    Conflict(String),
}

impl From<String> for Refusal {
    fn from(reason: String) -> Refusal {
        Refusal::Unavailable(reason)
    }
}

fn attach(
    link: u8,
    bind: SocketAddr,
    asked_for: bool,
    filter: &Filter,
    attached: &[&Programs],
) -> Result<OwnedProgram, Refusal> {
    // Safety: geteuid has no preconditions.
    if !asked_for && unsafe { libc::geteuid() } != 0 {
        return Err(Refusal::from("not running as root, so no XDP".to_owned()));
    }
    let interface = interface_holding(bind.ip())
        .ok_or_else(|| format!("no interface holds the address {}", bind.ip()))?;
    if interface == "lo" {
        return Err(Refusal::from(
            "the address is on loopback, where XDP brings nothing".to_owned(),
        ));
    }
    let mut all = attached.iter().flat_map(|programs| programs.0.iter());
    if let Some(other) = all.find(|p| p.interface() == interface) {
        let same_port = other
            .program
            .program()
            .ports()
            .is_ok_and(|ports| ports.contains(&bind.port()));
        if same_port && filter.unknown == UnknownSource::Drop {
            // Over kernel UDP this link's frames would meet the other link's program as
            // strangers' do, and be dropped.
            return Err(Refusal::Conflict(format!(
                "{interface} carries link {}'s XDP program on port {}, which drops this link's \
                 frames (rotor.xdp_unknown_source: drop); give link {link} an interface of its \
                 own, another mcastport, or xdp_unknown_source: pass",
                other.link,
                bind.port()
            )));
        }
        return Err(Refusal::from(format!(
            "{interface} already carries link {}'s XDP program, and AF_XDP serves one link per \
             interface; give link {link} an interface of its own",
            other.link
        )));
    }
    let filter = filter.of_link(link);
    let unavailable = |e: xdp_prog::XdpError| format!("XDP unavailable on {interface} ({e})");
    // The filter is filled before the program is attached: it never steers another source.
    let steer = SteerProgram::load(&[bind.port()]).map_err(unavailable)?;
    steer
        .set_sources(&filter.sources, filter.unknown)
        .map_err(|e| format!("the XDP source filter on {interface}: {e}"))?;
    let program = steer
        .attach(interface.as_str(), AttachMode::Auto, LoadOptions::default())
        .map_err(unavailable)?;
    if let Some(id) = program.replaced_prog_id() {
        log_at!(
            Warning,
            "MAIN",
            "replaced a stale {} XDP program (id {id}) on {interface}, left by an earlier run",
            xdp_prog::PROGRAM_NAME
        );
    }
    Ok(OwnedProgram {
        program,
        link,
        asked_for,
        filter,
    })
}

/// The name of the interface that holds `ip`, from getifaddrs.
pub fn interface_holding(ip: IpAddr) -> Option<String> {
    crate::discovery::local_interfaces()
        .into_iter()
        .find(|(_, a)| *a == ip)
        .map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_filter() -> Filter {
        Filter {
            sources: Vec::new(),
            unknown: UnknownSource::Pass,
        }
    }

    fn choose(
        transport: TransportSetting,
        bind: SocketAddr,
        filter: Filter,
    ) -> Result<Choice, String> {
        let link = LinkStart {
            settings: rotor_proto::link::LinkSettings::resolve(
                0, 3650, None, None, None, None, None,
            )
            .unwrap(),
            local: bind,
            peers: Vec::new(),
            transport: DataplaneTransport::Udp,
            interface: None,
        };
        choose_link(transport, &link, &filter, &[])
    }

    #[test]
    fn every_link_of_every_node_is_a_source() {
        let sources = |text: &str| {
            let config = crate::config::parse_str("/etc/corosync/corosync.conf", text).unwrap();
            let filter = Filter::of(&config).unwrap();
            assert_eq!(filter.unknown, UnknownSource::Pass);
            filter.sources
        };
        let s = |a: &str, node_id: u32, link: u8| Source {
            addr: a.parse().unwrap(),
            node_id,
            link,
        };
        assert_eq!(
            sources(
                "nodelist {\n  node {\n    ring0_addr: 198.18.0.1\n    ring3_addr: \
                 198.18.3.1\n    nodeid: 1\n  }\n  node {\n    ring0_addr: 198.18.0.2\n    \
                 ring3_addr: 198.18.3.2\n    nodeid: 7\n  }\n}\n"
            ),
            [
                s("198.18.0.1", 1, 0),
                s("198.18.3.1", 1, 3),
                s("198.18.0.2", 7, 0),
                s("198.18.3.2", 7, 3),
            ]
        );
        assert_eq!(
            sources(
                "totem {\n  ip_version: ipv6\n}\nnodelist {\n  node {\n    ring0_addr: \
                 2001:2::1\n    ring7_addr: 2001:2:7::1\n    nodeid: 1\n  }\n}\nrotor {\n  \
                 xdp_unknown_source: pass\n}\n"
            ),
            [s("2001:2::1", 1, 0), s("2001:2:7::1", 1, 7)]
        );
    }

    #[test]
    fn each_link_filters_on_its_own_addresses() {
        let s = |a: &str, node_id: u32, link: u8| Source {
            addr: a.parse().unwrap(),
            node_id,
            link,
        };
        let all = Filter {
            sources: vec![
                s("198.18.0.1", 1, 0),
                s("198.19.1.1", 1, 1),
                s("198.18.0.2", 2, 0),
                s("198.19.1.2", 2, 1),
            ],
            unknown: UnknownSource::Drop,
        };
        let link1 = all.of_link(1);
        assert_eq!(
            link1.sources,
            [s("198.19.1.1", 1, 1), s("198.19.1.2", 2, 1)]
        );
        assert_eq!(link1.unknown, UnknownSource::Drop);
        assert!(all.of_link(2).sources.is_empty());
    }

    #[test]
    fn an_unresolvable_link_address_names_its_line_and_key() {
        let config = crate::config::parse_str(
            "/etc/corosync/corosync.conf",
            "nodelist {\n  node {\n    ring0_addr: 198.18.0.1\n    ring1_addr: \
             no-such-host.invalid\n    nodeid: 1\n  }\n}\n",
        )
        .unwrap();
        let e = nodelist_sources(&config).unwrap_err();
        assert!(
            e.starts_with("/etc/corosync/corosync.conf:4: nodelist.node.0.ring1_addr: "),
            "{e}"
        );
    }

    #[test]
    fn udp_is_chosen_without_touching_xdp() {
        let bind: SocketAddr = "127.0.0.1:5405".parse().unwrap();
        for t in [TransportSetting::Udp, TransportSetting::Udpu] {
            match choose(t, bind, no_filter()).unwrap() {
                Choice::Udp(why) => assert_eq!(why, "transport udp: asked for"),
                Choice::Xdp(_) => panic!("udp config gave XDP"),
            }
        }
    }

    #[test]
    fn auto_on_loopback_is_udp_with_the_reason() {
        let bind: SocketAddr = "127.0.0.1:5405".parse().unwrap();
        match choose(TransportSetting::Knet, bind, no_filter()).unwrap() {
            Choice::Udp(why) => assert!(
                why.contains("loopback") || why.contains("not running as root"),
                "{why}"
            ),
            Choice::Xdp(_) => panic!("XDP on loopback"),
        }
        assert!(choose(TransportSetting::Xdp, bind, no_filter())
            .err()
            .is_some_and(|e| e.starts_with("link 0: transport xdp: ")));
    }

    #[test]
    fn loopback_is_found_by_its_address() {
        assert_eq!(
            interface_holding(IpAddr::from([127, 0, 0, 1])).as_deref(),
            Some("lo")
        );
        assert_eq!(interface_holding(IpAddr::from([192, 0, 2, 254])), None);
    }
}
