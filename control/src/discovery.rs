//! Which node of the nodelist this host is, and the host's own addresses and interfaces
//! (getifaddrs), in the calling thread's network namespace.

use std::net::{IpAddr, SocketAddr};

use crate::config::Config;

/// This node's id and address, and every other node's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNode {
    pub node_id: u32,
    /// This node's ring0 address with the cluster port.
    pub bind: SocketAddr,
    /// Every other node of the nodelist: id and ring0 address with the cluster port.
    pub peers: Vec<(u32, SocketAddr)>,
}

/// Chooses the local node from the nodelist: `node_id` if given (rotor's `--node-id`), else
/// the node whose ring0_addr is an address of this host. Without a nodelist: a one-node
/// cluster on the loopback address.
pub fn local_node(config: &Config, node_id: Option<u32>) -> Result<LocalNode, String> {
    let port = config
        .totem
        .interfaces
        .first()
        .map(|i| i.mcastport)
        .unwrap_or(crate::config::MCASTPORT_DEFAULT);
    if config.nodes.is_empty() {
        return Ok(LocalNode {
            node_id: node_id.unwrap_or(1),
            bind: SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port),
            peers: Vec::new(),
        });
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

fn resolve(name: &str) -> Result<IpAddr, String> {
    if let Ok(a) = name.parse::<IpAddr>() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs;
    (name, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {name:?}: {e}"))?
        .next()
        .map(|sa| sa.ip())
        .ok_or_else(|| format!("{name:?} resolves to no address"))
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
