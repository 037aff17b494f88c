//! Which node of the nodelist this host is, and the host's own addresses and interfaces
//! (getifaddrs), in the calling thread's network namespace.

use std::net::{IpAddr, SocketAddr};

use rotor_proto::control::DataplaneTransport;
use rotor_proto::link::{LinkSettings, LinkStart};

use crate::config::Config;

/// This node's id and address, and every other node's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    pub node_id: u32,
    /// This node's ring0 address with the cluster port.
    pub bind: SocketAddr,
    /// Every other node of the nodelist: id and ring0 address with the cluster port.
    pub peers: Vec<(u32, SocketAddr)>,
    /// Every link (`config.totem.links`) with this node's and every other node's address on
    /// it and the link's port. Invariant: `links[0]` is link 0, with `bind` and `peers`.
    pub links: Vec<LinkStart>,
    /// What the operator should know about how the node was chosen (logged at start).
    pub warnings: Vec<String>,
}

/// Chooses the local node from the nodelist: `node_id` if given (rotor's `--node-id`), else
/// the node whose ring0_addr is an address of this host. Without a nodelist: a one-node
/// cluster on the loopback address, for a first try, said loudly in `warnings`.
///
/// `bindnetaddr` is corosync's way to pick the local address without a nodelist (with
/// multicast discovery of the members); rotor has no member discovery, so without a nodelist
/// it is refused with what to write instead, and with a nodelist it is ignored with a warning,
/// as corosync does ("Nodelist one is going to be used").
pub fn local_node(config: &Config, node_id: Option<u32>) -> Result<LocalNode, String> {
    let bindnetaddr = config
        .totem
        .interfaces
        .iter()
        .find_map(|i| i.bindnetaddr.as_deref().map(|a| (i.linknumber, a)));
    let port = config
        .totem
        .interfaces
        .first()
        .map(|i| i.mcastport)
        .unwrap_or(crate::config::MCASTPORT_DEFAULT);
    let mut warnings = Vec::new();
    let line = |key: &str| {
        config
            .line_of(key)
            .map_or_else(|| config.file.clone(), |l| format!("{}:{l}", config.file))
    };
    if config.nodes.is_empty() {
        if let Some((link, addr)) = bindnetaddr {
            let key = format!("totem.interface.{link}.bindnetaddr");
            return Err(format!(
                "{}: {key}: {addr} without a nodelist: rotor does not discover members, it \
                 needs them listed; add nodelist {{ node {{ ring0_addr: ADDRESS nodeid: N }} }} \
                 for every node (each node finds itself by its address) and remove bindnetaddr",
                line(&key)
            ));
        }
        let bind = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port);
        warnings.push(format!(
            "{}: no nodelist: running as a one-node cluster on {bind}, which no other node can \
             join; list every node in nodelist {{ node {{ ring0_addr: ADDRESS nodeid: N }} }} to \
             form a cluster",
            config.file
        ));
        let settings = config.totem.links[0];
        return Ok(LocalNode {
            node_id: node_id.unwrap_or(1),
            bind,
            peers: Vec::new(),
            links: vec![LinkStart {
                settings,
                local: bind,
                peers: Vec::new(),
                transport: DataplaneTransport::Udp,
                interface: None,
            }],
            warnings,
        });
    }
    if let Some((link, addr)) = bindnetaddr {
        let key = format!("totem.interface.{link}.bindnetaddr");
        warnings.push(format!(
            "{}: {key}: {addr} is ignored: with a nodelist each node binds to its own \
             ring{link}_addr (remove bindnetaddr)",
            line(&key)
        ));
    }
    let local: Vec<IpAddr> = local_addresses();
    let mut me = None;
    let mut all = Vec::new();
    for n in &config.nodes {
        let ring0 = n.ring_addrs[0].as_deref().unwrap_or_default();
        let addr = resolve(ring0)
            .map_err(|e| format!("{}: nodelist.node.{}.ring0_addr: {e}", config.file, n.index))?;
        let id = n.nodeid.ok_or_else(|| {
            format!(
                "{}: nodelist.node.{}.nodeid: required (rotor has no automatic node ids)",
                config.file, n.index
            )
        })?;
        let sa = SocketAddr::new(addr, port);
        let mine = match node_id {
            Some(want) => want == id,
            None => local.contains(&addr),
        };
        if mine {
            if me.is_some() {
                return Err(format!(
                    "{}: more than one nodelist entry is an address of this host; pick one with --node-id",
                    config.file
                ));
            }
            me = Some((id, sa));
        } else {
            all.push((id, sa));
        }
    }
    match me {
        Some((node_id, bind)) => Ok(LocalNode {
            node_id,
            bind,
            peers: all,
            links: link_starts(config, node_id)?,
            warnings,
        }),
        None => Err(match node_id {
            Some(id) => format!("{}: no nodelist entry has nodeid {id}", config.file),
            None => format!(
                "{}: no nodelist entry's ring0_addr is an address of this host ({})",
                config.file,
                local
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Every nodelist entry's id and ring0 address with the cluster port, as the config says them
/// (a reload's nodelist: this node's entry included, if it has one).
pub fn nodelist_addresses(config: &Config) -> Result<Vec<(u32, SocketAddr)>, String> {
    let port = config
        .totem
        .interfaces
        .first()
        .map(|i| i.mcastport)
        .unwrap_or(crate::config::MCASTPORT_DEFAULT);
    config
        .nodes
        .iter()
        .map(|n| {
            let ring0 = n.ring_addrs[0].as_deref().unwrap_or_default();
            let addr = resolve(ring0).map_err(|e| {
                format!("{}: nodelist.node.{}.ring0_addr: {e}", config.file, n.index)
            })?;
            let id = n.nodeid.ok_or_else(|| {
                format!(
                    "{}: nodelist.node.{}.nodeid: required (rotor has no automatic node ids)",
                    config.file, n.index
                )
            })?;
            Ok((id, SocketAddr::new(addr, port)))
        })
        .collect()
}

/// The port of link `number`: its interface's `mcastport` (knet binds each link to its own).
fn link_port(config: &Config, number: u8) -> u16 {
    config
        .totem
        .interfaces
        .iter()
        .find(|i| i.linknumber == number)
        .map_or(crate::config::MCASTPORT_DEFAULT, |i| i.mcastport)
}

/// Every link of the config for node `me`: its settings, this node's address on it, and every
/// other node's (sorted by id). The config has checked that every node has every link.
pub fn link_starts(config: &Config, me: u32) -> Result<Vec<LinkStart>, String> {
    config
        .totem
        .links
        .iter()
        .map(|settings: &LinkSettings| {
            let link = usize::from(settings.number);
            let port = link_port(config, settings.number);
            let mut local = None;
            let mut peers = Vec::new();
            for n in &config.nodes {
                let key = format!("nodelist.node.{}.ring{link}_addr", n.index);
                let name = n.ring_addrs[link]
                    .as_deref()
                    .ok_or_else(|| format!("{}: {key}: missing", config.file))?;
                let addr = resolve(name).map_err(|e| format!("{}: {key}: {e}", config.file))?;
                let sa = SocketAddr::new(addr, port);
                match n.nodeid {
                    Some(id) if id == me => local = Some(sa),
                    Some(id) => peers.push((id, sa)),
                    None => {
                        return Err(format!(
                            "{}: nodelist.node.{}.nodeid: required (rotor has no automatic \
                             node ids)",
                            config.file, n.index
                        ))
                    }
                }
            }
            peers.sort_by_key(|(id, _)| *id);
            let local = local.ok_or_else(|| format!("{}: no node has nodeid {me}", config.file))?;
            // rotord chooses each link's transport when it starts (`xdp::choose_links`).
            Ok(LinkStart {
                settings: *settings,
                local,
                peers,
                transport: DataplaneTransport::Udp,
                interface: None,
            })
        })
        .collect()
}

fn resolve(name: &str) -> Result<IpAddr, String> {
    if let Ok(a) = name.parse::<IpAddr>() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs;
    (name, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{name}\": {e}"))?
        .next()
        .map(|sa| sa.ip())
        .ok_or_else(|| format!("\"{name}\" resolves to no address"))
}

/// The addresses of this host's interfaces (getifaddrs).
pub fn local_addresses() -> Vec<IpAddr> {
    local_interfaces().into_iter().map(|(_, a)| a).collect()
}

/// Every IPv4 and IPv6 address of this host's interfaces with the interface's name
/// (getifaddrs), in the calling thread's network namespace.
pub fn local_interfaces() -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once; every
    // non-null ifa_name is a NUL-terminated string and every non-null ifa_addr a sockaddr of
    // the family it names, valid until freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            let name = if (*p).ifa_name.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr((*p).ifa_name)
                    .to_string_lossy()
                    .into_owned()
            };
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        let ip = IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes());
                        out.push((name, ip));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push((name, IpAddr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}
