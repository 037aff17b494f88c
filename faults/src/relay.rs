//! A userspace relay for the impairments nft cannot do: delay with reordering, and
//! duplication. This kernel has no netem qdisc, so the campaign diverts cluster frames at the
//! switch: an nft rule on the bridge drops the forwarded copy of every frame to the cluster
//! port, and this relay, on a thread inside the switch namespace, reads each such frame as it
//! arrives on a port `hI` (an AF_PACKET socket sees a port's ingress before the bridge does),
//! holds it for a delay drawn from `[delay, delay + jitter]` (frames overtake each other when
//! the jitter exceeds their spacing), perhaps sends it twice, and writes it out of the port of
//! the host it is addressed to (`hJ` for 198.18.0.J or 2001:2::J; every other port for a
//! multicast group). Everything else (ARP, neighbour discovery, other ports) crosses the bridge
//! untouched. With XDP on the hosts this is the only place the frames can be impaired: a host's
//! own nft never sees them.

use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the relay does to each diverted frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impairment {
    pub delay: Duration,
    /// Extra delay, uniform in `[0, jitter]`: reorders frames closer than this.
    pub jitter: Duration,
    /// Probability (0..=1) that a frame is sent a second time (with its own delay).
    pub duplicate: f64,
}

/// Frames the relay handled, for the report.
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub frames: AtomicU64,
    pub duplicated: AtomicU64,
    pub unroutable: AtomicU64,
}

/// A running relay; stopping (or dropping) it ends the thread.
pub struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
    pub counters: Arc<RelayCounters>,
}

impl Relay {
    /// Starts relaying cluster frames (UDP destination `port`) among the ports `h1..=hN` of
    /// the bridge in namespace `switch_ns`.
    pub fn start(
        switch_ns: &str,
        hosts: usize,
        port: u16,
        how: Impairment,
        seed: u64,
    ) -> io::Result<Relay> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(RelayCounters::default());
        let path = format!("/run/netns/{switch_ns}");
        let ns = std::fs::File::open(&path)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let stop = stop.clone();
            let counters = counters.clone();
            std::thread::spawn(move || -> io::Result<()> {
                // Safety: setns on a namespace fd we hold; it affects this thread only.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let e = io::Error::last_os_error();
                    let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
                let sockets = match (1..=hosts).map(|i| open_port(&format!("h{i}"))).collect() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                let _ = ready_tx.send(Ok(()));
                run(sockets, port, how, seed, &stop, &counters)
            })
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Relay {
                stop,
                thread: Some(thread),
                counters,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("relay thread died at start")),
        }
    }

    /// Stops the thread; frames still held are dropped (as a link going down would).
    pub fn stop(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("relay thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A raw socket on interface `name`, receiving every frame, non-blocking.
fn open_port(name: &str) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // Safety: socket(2) with constant arguments; the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // Safety: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let cname = std::ffi::CString::new(name).map_err(|_| io::Error::other("interface name"))?;
    // Safety: if_nametoindex reads a NUL-terminated string we own.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {name} in the switch namespace"),
        ));
    }
    // Safety: an all-zero sockaddr_ll is valid; the fields we need are set below.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = index as i32;
    // Safety: bind(2) with a sockaddr_ll we own and its size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A frame waiting for its time, to port index `to`.
struct Held {
    due: Instant,
    order: u64,
    to: usize,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Held) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Held) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    // Earliest first in a max-heap.
    fn cmp(&self, o: &Held) -> std::cmp::Ordering {
        (o.due, o.order).cmp(&(self.due, self.order))
    }
}

/// Frames held at most: a bound, so a relay that cannot send cannot grow without end.
const HELD_MAX: usize = 65_536;

/// Which ports a cluster frame goes to, or `None` if it is not one (pass it to the bridge).
/// `from` is the port it arrived on; ports are 0-based (port k is host k + 1).
pub fn route(frame: &[u8], port: u16, from: usize, hosts: usize) -> Option<Vec<usize>> {
    if frame.len() < 14 {
        return None;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let ip = &frame[14..];
    let (dest, udp): (Dest, &[u8]) = match ethertype {
        0x0800 if ip.len() >= 20 && ip[9] == 17 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            // Fragments other than the first carry no UDP header: not ours to route.
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
            if ihl < 20 || ip.len() < ihl + 8 || frag != 0 {
                return None;
            }
            let d = &ip[16..20];
            let dest = if d[0] >= 224 && d[0] < 240 {
                Dest::All
            } else if d[..3] == [198, 18, 0] {
                Dest::Host(usize::from(d[3]))
            } else {
                return None;
            };
            (dest, &ip[ihl..])
        }
        0x86dd if ip.len() >= 48 && ip[6] == 17 => {
            let d = &ip[24..40];
            let dest = if d[0] == 0xff {
                Dest::All
            } else if d[..14] == [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] {
                Dest::Host(usize::from(u16::from_be_bytes([d[14], d[15]])))
            } else {
                return None;
            };
            (dest, &ip[40..])
        }
        _ => return None,
    };
    if u16::from_be_bytes([udp[2], udp[3]]) != port {
        return None;
    }
    Some(match dest {
        Dest::All => (0..hosts).filter(|&k| k != from).collect(),
        Dest::Host(h) if (1..=hosts).contains(&h) && h - 1 != from => vec![h - 1],
        Dest::Host(_) => Vec::new(),
    })
}

enum Dest {
    All,
    Host(usize),
}

fn run(
    sockets: Vec<OwnedFd>,
    port: u16,
    how: Impairment,
    seed: u64,
    stop: &AtomicBool,
    counters: &RelayCounters,
) -> io::Result<()> {
    let mut rng = seed | 1;
    let mut random = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut held: BinaryHeap<Held> = BinaryHeap::new();
    let mut order = 0u64;
    let mut buf = vec![0u8; 65_536];
    let mut pfds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let jitter_ns = how.jitter.as_nanos() as u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while held.peek().is_some_and(|h| h.due <= now) {
            let Some(h) = held.pop() else { break };
            // Safety: send(2) of a buffer we own on a socket we own.
            unsafe {
                libc::send(
                    sockets[h.to].as_raw_fd(),
                    h.frame.as_ptr().cast(),
                    h.frame.len(),
                    0,
                )
            };
        }
        let wait_ms = match held.peek() {
            Some(h) => h
                .due
                .saturating_duration_since(now)
                .as_millis()
                .clamp(0, 20) as i32,
            None => 20,
        };
        // Safety: poll(2) on descriptors we own, with the array's length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait_ms) };
        if n <= 0 {
            continue;
        }
        for (from, pfd) in pfds.iter().enumerate() {
            if pfd.revents & libc::POLLIN == 0 {
                continue;
            }
            loop {
                // Safety: an all-zero sockaddr_ll is valid for recvfrom to fill.
                let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut addr_len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                // Safety: recvfrom(2) into buffers we own, with their sizes.
                let len = unsafe {
                    libc::recvfrom(
                        pfd.fd,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                        &mut addr_len,
                    )
                };
                if len <= 0 {
                    break;
                }
                // Our own sends (and the bridge's) show as outgoing: not arrivals.
                if addr.sll_pkttype == libc::PACKET_OUTGOING {
                    continue;
                }
                let frame = &buf[..len as usize];
                let Some(to) = route(frame, port, from, sockets.len()) else {
                    continue;
                };
                if to.is_empty() {
                    counters.unroutable.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                counters.frames.fetch_add(1, Ordering::Relaxed);
                let copies = if (random() % 1_000_000) as f64 / 1e6 < how.duplicate {
                    counters.duplicated.fetch_add(1, Ordering::Relaxed);
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    for &t in &to {
                        if held.len() >= HELD_MAX {
                            break;
                        }
                        let extra = if jitter_ns > 0 {
                            random() % jitter_ns
                        } else {
                            0
                        };
                        order += 1;
                        held.push(Held {
                            due: Instant::now() + how.delay + Duration::from_nanos(extra),
                            order,
                            to: t,
                            frame: frame.to_vec(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 16..14 + 20].copy_from_slice(&dst);
        f[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn cluster_frames_are_routed_by_destination_and_the_rest_passes() {
        assert_eq!(
            route(&udp4([198, 18, 0, 3], 5405), 5405, 0, 3),
            Some(vec![2])
        );
        assert_eq!(
            route(&udp4([239, 192, 1, 1], 5405), 5405, 1, 3),
            Some(vec![0, 2])
        );
        assert_eq!(route(&udp4([198, 18, 0, 3], 22), 5405, 0, 3), None);
        assert_eq!(
            route(&udp4([198, 18, 0, 9], 5405), 5405, 0, 3),
            Some(vec![])
        );
        let mut arp = udp4([198, 18, 0, 3], 5405);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(route(&arp, 5405, 0, 3), None);
        let mut frag = udp4([198, 18, 0, 3], 5405);
        frag[14 + 7] = 0x10;
        assert_eq!(route(&frag, 5405, 0, 3), None, "a later fragment");
    }
}
