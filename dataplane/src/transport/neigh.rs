//! Link-layer facts the AF_XDP provider needs and the kernel would otherwise supply: the
//! interface's index and MAC (from `getifaddrs`), which interface holds an address, and peers'
//! MACs from the kernel neighbour table.
//!
//! The neighbour table is read with one `RTM_GETNEIGH` dump over a NETLINK_ROUTE socket written
//! here by hand (about a hundred lines: a request and a walk over `nlmsghdr`/`ndmsg`/`rtattr`)
//! rather than with `netlink-packet-route` + `netlink-sys`, which would add a dozen crates to a
//! build shared by several engineers on two cores for one message type.
//!
//! A missing entry is resolved by the kernel itself: one empty datagram from an ordinary UDP
//! socket to the peer's discard port (9) makes the kernel send ARP or a neighbour solicitation;
//! the peer's XDP program passes port 9 and ARP/ND to its kernel (which answers with ICMP port
//! unreachable, ignored on an unconnected socket). Misses refresh the cache at most every
//! [`MISS_REFRESH`], probes go at most every [`PROBE_INTERVAL`] per address, and the whole
//! cache is refreshed every [`REFRESH`] (so a peer that changed its MAC is followed) by
//! [`NeighCache::maintain`], which the provider runs off the send path: a dump takes about
//! 75 µs, and a lookup is made for every frame sent.
//!
//! Out of scope: peers behind a gateway. Peers must be on-link (same subnet as the interface);
//! an off-link peer never resolves and its frames are dropped as `neigh_unresolved`.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::transport::frame::Mac;

/// A dump is at most this often on misses.
pub const MISS_REFRESH: Duration = Duration::from_millis(20);
/// A resolution probe to one address is sent at most this often.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// The whole cache is refreshed this often.
pub const REFRESH: Duration = Duration::from_secs(1);
/// The port resolution probes go to (discard).
const PROBE_PORT: u16 = 9;

/// One network interface of this network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub ifindex: u32,
    pub mac: Mac,
    pub addrs: Vec<IpAddr>,
}

/// Every interface of the calling thread's network namespace, from `getifaddrs`.
pub fn links() -> io::Result<Vec<LinkInfo>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out: Vec<LinkInfo> = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let idx = match out.iter().position(|l| l.name == name) {
            Some(i) => i,
            None => {
                out.push(LinkInfo {
                    name: name.clone(),
                    ifindex: 0,
                    mac: Mac::default(),
                    addrs: Vec::new(),
                });
                out.len() - 1
            }
        };
        // SAFETY: ifa_addr is non-null and points at a sockaddr of the family it names; each
        // arm reads it as that family's struct.
        unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_PACKET => {
                    let ll = &*(ifa.ifa_addr as *const libc::sockaddr_ll);
                    out[idx].ifindex = ll.sll_ifindex as u32;
                    if ll.sll_halen == 6 {
                        out[idx].mac.0.copy_from_slice(&ll.sll_addr[..6]);
                    }
                }
                libc::AF_INET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out[idx]
                        .addrs
                        .push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr))));
                }
                libc::AF_INET6 => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    out[idx]
                        .addrs
                        .push(IpAddr::V6(Ipv6Addr::from(sa.sin6_addr.s6_addr)));
                }
                _ => {}
            }
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    for l in &mut out {
        if l.ifindex == 0 {
            let c = std::ffi::CString::new(l.name.clone()).unwrap_or_default();
            // SAFETY: `c` is a valid NUL-terminated string.
            l.ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        }
    }
    Ok(out)
}

/// The interface named `name`.
pub fn link_by_name(name: &str) -> io::Result<LinkInfo> {
    links()?
        .into_iter()
        .find(|l| l.name == name)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface \"{name}\"")))
}

/// The interface that holds `ip`.
pub fn link_holding(ip: IpAddr) -> io::Result<LinkInfo> {
    links()?
        .into_iter()
        .find(|l| l.addrs.contains(&ip))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface holds the address {ip}"),
            )
        })
}

// Netlink constants (linux/netlink.h, linux/rtnetlink.h, linux/neighbour.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_NOARP | NUD_PERMANENT: states whose
/// link-layer address is usable (INCOMPLETE and FAILED are not).
const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
const NLMSG_HDR_LEN: usize = 16;
const NDMSG_LEN: usize = 12;

/// One usable neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub mac: Mac,
}

/// A NETLINK_ROUTE socket for neighbour dumps.
#[derive(Debug)]
struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // A receive timeout so a kernel that never answers cannot hang the dataplane.
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Netlink {
            fd,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// Every usable neighbour entry of every interface.
    fn dump(&mut self) -> io::Result<Vec<Neighbour>> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = [0u8; NLMSG_HDR_LEN + NDMSG_LEN];
        let req_len = req.len() as u32;
        req[0..4].copy_from_slice(&req_len.to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
        req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // ndmsg: family AF_UNSPEC (both families), everything else zero.
        // SAFETY: sockaddr_nl is plain data for which all zeroes is a valid value.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `req` and `kernel` are valid for the lengths passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr() as *const libc::c_void,
                req.len(),
                0,
                &kernel as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr() as *mut libc::c_void,
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if parse_dump(&self.buf[..n as usize], self.seq, &mut out)? {
                return Ok(out);
            }
        }
    }
}

fn ne16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn ne32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Walks one datagram of a neighbour dump, appending usable entries; true at NLMSG_DONE.
/// Messages of another sequence number are skipped; malformed lengths end the walk.
fn parse_dump(mut b: &[u8], seq: u32, out: &mut Vec<Neighbour>) -> io::Result<bool> {
    while b.len() >= NLMSG_HDR_LEN {
        let len = ne32(b, 0) as usize;
        if len < NLMSG_HDR_LEN || len > b.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "malformed netlink message",
            ));
        }
        let kind = ne16(b, 4);
        let msg = &b[..len];
        if ne32(msg, 8) == seq {
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let errno = if len >= NLMSG_HDR_LEN + 4 {
                        -(ne32(msg, NLMSG_HDR_LEN) as i32)
                    } else {
                        libc::EIO
                    };
                    return Err(io::Error::from_raw_os_error(errno));
                }
                RTM_NEWNEIGH => {
                    if let Some(n) = parse_neigh(&msg[NLMSG_HDR_LEN..]) {
                        out.push(n);
                    }
                }
                _ => {}
            }
        }
        let aligned = (len + 3) & !3;
        b = &b[aligned.min(b.len())..];
    }
    Ok(false)
}

/// One `ndmsg` with its attributes, if it is a usable entry with an Ethernet address.
fn parse_neigh(m: &[u8]) -> Option<Neighbour> {
    if m.len() < NDMSG_LEN {
        return None;
    }
    let family = i32::from(m[0]);
    let ifindex = ne32(m, 4);
    let state = ne16(m, 8);
    if state & NUD_USABLE == 0 {
        return None;
    }
    let mut ip = None;
    let mut mac = None;
    let mut a = &m[NDMSG_LEN..];
    while a.len() >= 4 {
        let alen = usize::from(ne16(a, 0));
        if alen < 4 || alen > a.len() {
            return None;
        }
        let kind = ne16(a, 2);
        let val = &a[4..alen];
        match (kind, family, val.len()) {
            (NDA_DST, libc::AF_INET, 4) => {
                ip = Some(IpAddr::V4(Ipv4Addr::new(val[0], val[1], val[2], val[3])));
            }
            (NDA_DST, libc::AF_INET6, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(val);
                ip = Some(IpAddr::V6(Ipv6Addr::from(o)));
            }
            (NDA_LLADDR, _, 6) => {
                let mut o = [0u8; 6];
                o.copy_from_slice(val);
                mac = Some(Mac(o));
            }
            _ => {}
        }
        let aligned = (alen + 3) & !3;
        a = &a[aligned.min(a.len())..];
    }
    Some(Neighbour {
        ifindex,
        ip: ip?,
        mac: mac?,
    })
}

/// Reads the whole neighbour table of this network namespace once.
pub fn dump_neighbours() -> io::Result<Vec<Neighbour>> {
    Netlink::open()?.dump()
}

/// Counters of the neighbour cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NeighCounters {
    pub dumps: u64,
    pub dump_errors: u64,
    pub probes: u64,
    pub misses: u64,
}

/// Destination MACs on one interface, from the kernel neighbour table.
#[derive(Debug)]
pub struct NeighCache {
    ifindex: u32,
    netlink: Netlink,
    entries: HashMap<IpAddr, Mac>,
    last_dump: Option<Instant>,
    last_probe: HashMap<IpAddr, Instant>,
    probe_v4: Option<UdpSocket>,
    probe_v6: Option<UdpSocket>,
    counters: NeighCounters,
}

impl NeighCache {
    pub fn new(ifindex: u32) -> io::Result<NeighCache> {
        Ok(NeighCache {
            ifindex,
            netlink: Netlink::open()?,
            entries: HashMap::new(),
            last_dump: None,
            last_probe: HashMap::new(),
            probe_v4: None,
            probe_v6: None,
            counters: NeighCounters::default(),
        })
    }

    pub fn counters(&self) -> NeighCounters {
        self.counters
    }

    /// The MAC of `ip`, or `None` while it is unresolved (resolution is then under way).
    pub fn lookup(&mut self, ip: IpAddr) -> Option<Mac> {
        if let Some(m) = self.entries.get(&ip) {
            return Some(*m);
        }
        self.counters.misses += 1;
        let now = Instant::now();
        self.maybe_refresh(now, MISS_REFRESH);
        if let Some(m) = self.entries.get(&ip) {
            return Some(*m);
        }
        self.probe(ip, now);
        None
    }

    /// Refreshes the whole cache if the last dump is [`REFRESH`] old.
    pub fn maintain(&mut self) {
        self.maybe_refresh(Instant::now(), REFRESH);
    }

    /// Refreshes the cache if the last dump is older than `age`.
    fn maybe_refresh(&mut self, now: Instant, age: Duration) {
        if self.last_dump.is_some_and(|t| now.duration_since(t) < age) {
            return;
        }
        self.last_dump = Some(now);
        self.counters.dumps += 1;
        match self.netlink.dump() {
            Ok(all) => {
                // Entries the kernel dropped are kept: a MAC we had is better than none, and
                // our own traffic bypasses the kernel, so its entries age out while in use.
                for n in all.into_iter().filter(|n| n.ifindex == self.ifindex) {
                    self.entries.insert(n.ip, n.mac);
                }
            }
            Err(e) => {
                self.counters.dump_errors += 1;
                tracing::warn!("neighbour table dump failed: {e}");
            }
        }
    }

    /// Makes the kernel resolve `ip` (rate-limited per address).
    fn probe(&mut self, ip: IpAddr, now: Instant) {
        if self
            .last_probe
            .get(&ip)
            .is_some_and(|t| now.duration_since(*t) < PROBE_INTERVAL)
        {
            return;
        }
        self.last_probe.insert(ip, now);
        let slot = match ip {
            IpAddr::V4(_) => &mut self.probe_v4,
            IpAddr::V6(_) => &mut self.probe_v6,
        };
        if slot.is_none() {
            let any: SocketAddr = match ip {
                IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            match UdpSocket::bind(any).and_then(|s| s.set_nonblocking(true).map(|()| s)) {
                Ok(s) => *slot = Some(s),
                Err(e) => {
                    tracing::warn!("neighbour probe socket: {e}");
                    return;
                }
            }
        }
        if let Some(s) = slot {
            self.counters.probes += 1;
            if let Err(e) = s.send_to(&[], SocketAddr::new(ip, PROBE_PORT)) {
                tracing::debug!("neighbour probe to {ip}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDR_LEN + body.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn ndmsg(family: u8, ifindex: u32, state: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![family, 0, 0, 0];
        m.extend_from_slice(&ifindex.to_ne_bytes());
        m.extend_from_slice(&state.to_ne_bytes());
        m.extend_from_slice(&[0, 0]);
        for (kind, val) in attrs {
            m.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(val);
            while m.len() % 4 != 0 {
                m.push(0);
            }
        }
        m
    }

    #[test]
    fn dump_messages_are_parsed_and_unusable_entries_skipped() {
        let mac = [2, 0, 0, 0, 0, 9];
        let v6 = "2001:2::2".parse::<Ipv6Addr>().unwrap().octets();
        let mut d = Vec::new();
        d.extend(nlmsg(
            RTM_NEWNEIGH,
            7,
            &ndmsg(
                libc::AF_INET as u8,
                3,
                0x02,
                &[(NDA_DST, &[198, 18, 0, 2]), (NDA_LLADDR, &mac)],
            ),
        ));
        // INCOMPLETE (0x01): no usable address.
        d.extend(nlmsg(
            RTM_NEWNEIGH,
            7,
            &ndmsg(libc::AF_INET as u8, 3, 0x01, &[(NDA_DST, &[198, 18, 0, 3])]),
        ));
        d.extend(nlmsg(
            RTM_NEWNEIGH,
            7,
            &ndmsg(
                libc::AF_INET6 as u8,
                3,
                0x04,
                &[(NDA_DST, &v6), (NDA_LLADDR, &mac)],
            ),
        ));
        // Another request's message is ignored.
        d.extend(nlmsg(
            RTM_NEWNEIGH,
            6,
            &ndmsg(
                libc::AF_INET as u8,
                3,
                0x02,
                &[(NDA_DST, &[1, 1, 1, 1]), (NDA_LLADDR, &mac)],
            ),
        ));
        let mut out = Vec::new();
        assert!(!parse_dump(&d, 7, &mut out).unwrap());
        assert_eq!(
            out,
            vec![
                Neighbour {
                    ifindex: 3,
                    ip: "198.18.0.2".parse().unwrap(),
                    mac: Mac(mac)
                },
                Neighbour {
                    ifindex: 3,
                    ip: IpAddr::V6(Ipv6Addr::from(v6)),
                    mac: Mac(mac)
                },
            ]
        );
        assert!(parse_dump(&nlmsg(NLMSG_DONE, 7, &[0; 4]), 7, &mut out).unwrap());
        let err = nlmsg(NLMSG_ERROR, 7, &(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            parse_dump(&err, 7, &mut out).unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
    }

    #[test]
    fn malformed_dumps_do_not_panic() {
        let good = nlmsg(
            RTM_NEWNEIGH,
            1,
            &ndmsg(
                libc::AF_INET as u8,
                1,
                0x02,
                &[(NDA_DST, &[1, 2, 3, 4]), (NDA_LLADDR, &[1, 2, 3, 4, 5, 6])],
            ),
        );
        for cut in 0..good.len() {
            let mut out = Vec::new();
            let _ = parse_dump(&good[..cut], 1, &mut out);
            let mut bad = good.clone();
            bad[cut] = 0xff;
            let _ = parse_dump(&bad, 1, &mut out);
        }
    }

    #[test]
    fn loopback_is_listed_and_the_table_can_be_dumped() {
        let lo = link_by_name("lo").unwrap();
        assert!(lo.ifindex > 0);
        assert!(lo.addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(
            link_holding(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap().name,
            "lo"
        );
        dump_neighbours().unwrap();
    }
}
