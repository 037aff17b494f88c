//! IP multicast for corosync's `transport: udp`: the group a cluster sends `Dest::All` frames
//! to, and the kernel socket options that join it and shape what is sent to it.
//!
//! Following corosync's totemudp.c: the receiving side joins the group on the interface that
//! holds the bind address (IPv4 `IP_ADD_MEMBERSHIP` with that address as the interface, IPv6
//! `IPV6_JOIN_GROUP` with its index) on a socket bound to `group:port` with `SO_REUSEADDR`;
//! the sending socket has multicast loop off (a node never hears its own frames, totem-core
//! handles them locally), the configured TTL / hop limit (1 unless set) and the bind
//! address's interface as the multicast interface. The token and every other `Dest::Node`
//! frame stay unicast, as in corosync. The group port is the cluster port (corosync's
//! `mcastport` is both).

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

/// corosync's default multicast TTL (totemconfig.c: `ttl = 1` unless configured).
pub const TTL_DEFAULT: u8 = 1;

/// The multicast group of a cluster: where `Dest::All` frames go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multicast {
    /// The group address and the cluster port. Invariant: `group.ip().is_multicast()`.
    group: SocketAddr,
    /// IPv4 TTL or IPv6 hop limit of the frames sent to the group.
    pub ttl: u8,
}

impl Multicast {
    /// The group `ip` on the cluster `port`; refuses an address that is not multicast.
    pub fn new(ip: IpAddr, port: u16, ttl: u8) -> Result<Multicast, String> {
        if !ip.is_multicast() {
            return Err(format!("{ip} is not a multicast address"));
        }
        Ok(Multicast {
            group: SocketAddr::new(ip, port),
            ttl,
        })
    }

    /// The group address and port.
    pub fn group(&self) -> SocketAddr {
        self.group
    }

    /// Checks that the group and the node's bind address are of one family.
    pub fn check_family(&self, bind: SocketAddr) -> Result<(), String> {
        if self.group.is_ipv4() == bind.is_ipv4() {
            Ok(())
        } else {
            Err(format!(
                "multicast group {} and bind address {bind} are of different address families",
                self.group.ip()
            ))
        }
    }
}

/// The index of the interface holding `local` (IPv6 joins and multicast interfaces name it).
fn ifindex_of(local: IpAddr) -> io::Result<u32> {
    crate::transport::neigh::link_holding(local).map(|l| l.ifindex)
}

/// Joins `m`'s group on `sock` on the interface holding `local`.
fn join(sock: &Socket, m: &Multicast, local: IpAddr) -> io::Result<()> {
    match (m.group.ip(), local) {
        (IpAddr::V4(g), IpAddr::V4(l)) => sock.join_multicast_v4(&g, &l),
        (IpAddr::V6(g), IpAddr::V6(_)) => sock.join_multicast_v6(&g, ifindex_of(local)?),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "multicast group and local address are of different families",
        )),
    }
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("join multicast group {} on {local}: {e}", m.group.ip()),
        )
    })?;
    tracing::debug!("joined multicast group {} on {local}", m.group.ip());
    Ok(())
}

fn udp_socket(family_of: SocketAddr) -> io::Result<Socket> {
    Socket::new(
        Domain::for_address(family_of),
        Type::DGRAM, // socket2 sets close-on-exec itself
        Some(Protocol::UDP),
    )
}

/// A socket that receives the group's frames: `SO_REUSEADDR`, joined on the interface holding
/// `local`, bound to `group:port` (so it gets the group's datagrams and nothing else; the
/// unicast socket keeps the node's own address). Blocking; the caller sets what it needs.
pub fn group_socket(m: &Multicast, local: IpAddr) -> io::Result<UdpSocket> {
    let sock = udp_socket(m.group)?;
    sock.set_reuse_address(true)?;
    join(&sock, m, local)?;
    if local.is_ipv6() {
        // Only the group's traffic, never an IPv4-mapped address's.
        sock.set_only_v6(true)?;
    }
    sock.bind(&SockAddr::from(m.group))
        .map_err(|e| io::Error::new(e.kind(), format!("bind {}: {e}", m.group)))?;
    Ok(sock.into())
}

/// A socket that only holds the group membership on the interface holding `local` (bound to
/// nothing): the kernel then admits the group's MAC on that interface and answers IGMP/MLD
/// queries for it, so frames to the group reach the XDP program. Keep it open as long as the
/// group's frames are wanted.
pub fn membership_socket(m: &Multicast, local: IpAddr) -> io::Result<UdpSocket> {
    let sock = udp_socket(m.group)?;
    join(&sock, m, local)?;
    Ok(sock.into())
}

/// Sets up `sock` (bound to `local`) to send to `m`'s group: multicast loop off, `m.ttl` as
/// TTL / hop limit, and the interface holding `local` as the multicast interface.
pub fn prepare_sender(sock: &UdpSocket, m: &Multicast, local: IpAddr) -> io::Result<()> {
    let s = SockRef::from(sock);
    match local {
        IpAddr::V4(l) => {
            s.set_multicast_loop_v4(false)?;
            s.set_multicast_ttl_v4(u32::from(m.ttl))?;
            s.set_multicast_if_v4(&l)?;
        }
        IpAddr::V6(_) => {
            s.set_multicast_loop_v6(false)?;
            s.set_multicast_hops_v6(u32::from(m.ttl))?;
            s.set_multicast_if_v6(ifindex_of(local)?)?;
        }
    }
    tracing::debug!(
        "multicast sender on {local}: to {}, ttl {}, loop off",
        m.group,
        m.ttl
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_must_be_multicast_and_of_the_bind_family() {
        assert!(Multicast::new("198.18.0.1".parse().unwrap(), 5405, 1).is_err());
        let m = Multicast::new("239.192.1.2".parse().unwrap(), 5405, 1).unwrap();
        assert_eq!(m.group(), "239.192.1.2:5405".parse().unwrap());
        assert!(m.check_family("198.18.0.1:5405".parse().unwrap()).is_ok());
        assert!(m.check_family("[2001:2::1]:5405".parse().unwrap()).is_err());
        assert!(Multicast::new("ff15::1".parse().unwrap(), 5405, 1).is_ok());
    }

    #[test]
    fn a_loopback_sender_gets_its_options() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let m = Multicast::new("239.192.0.1".parse().unwrap(), 5405, 3).unwrap();
        prepare_sender(&sock, &m, "127.0.0.1".parse().unwrap()).unwrap();
        assert!(!sock.multicast_loop_v4().unwrap());
        assert_eq!(sock.multicast_ttl_v4().unwrap(), 3);
    }
}
