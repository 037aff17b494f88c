//! rotor-hwtest: tests of the AF_XDP provider on a real NIC (zero-copy bind on every receive
//! queue, frames spread over several queues, need_wakeup on TX and fill rings), and the same
//! test bodies on veth in copy mode so they run everywhere.
//!
//! `tests/nic.rs` runs when `ROTOR_HWTEST_IFACE` names an interface (with an IPv4 address,
//! whose driver supports AF_XDP zero-copy); its RX test also needs `ROTOR_HWTEST_PEER_IFACE`,
//! a second interface on the same link (another port cabled to the first, or on its switch)
//! that raw frames are sent from. Without them each test prints one `skipped: …` line saying
//! what is missing. `tests/netns_copy.rs` runs the same bodies (this module's `check_bound`,
//! `tx_burst_completes`, `rx_spread`) on a two-queue veth in network namespaces, in copy mode.
//! Run as root (XDP, AF_XDP and AF_PACKET need CAP_NET_ADMIN / CAP_NET_RAW / CAP_BPF).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use rotor_dataplane::transport::frame::{self, Addressing, Mac, HOP_LIMIT_UNICAST};
use rotor_dataplane::transport::mcast::Multicast;
use rotor_dataplane::transport::neigh;
use rotor_dataplane::transport::xsk::{BindMode, XskConfig, XskTransport};
use rotor_dataplane::transport::Transport;

/// Names the NIC under test.
pub const IFACE_ENV: &str = "ROTOR_HWTEST_IFACE";
/// Names a second interface on the same link, that frames for the RX test are sent from.
pub const PEER_IFACE_ENV: &str = "ROTOR_HWTEST_PEER_IFACE";
/// The UDP port the tests steer (not the cluster's 5405, so a running rotor is not disturbed).
pub const PORT: u16 = 5499;
/// The multicast group TX bursts go to (no neighbour resolution needed; TTL 1).
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 192, 77, 99);
/// Most receive queues a test binds (one UMEM of 2048 frames each).
pub const QUEUES_MAX: u32 = 16;

/// The value of environment variable `var`, or `None` after printing
/// `skipped: <test>: <var> is not set (<what>)`.
pub fn env_or_skip(test: &str, var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("skipped: {test}: {var} is not set ({what})");
            None
        }
    }
}

/// The first IPv4 address of `iface`, with [`PORT`].
pub fn bind_addr(iface: &str) -> io::Result<SocketAddr> {
    let link = neigh::link_by_name(iface)?;
    link.addrs
        .iter()
        .find(|a| a.is_ipv4())
        .map(|a| SocketAddr::new(*a, PORT))
        .ok_or_else(|| io::Error::other(format!("{iface} has no IPv4 address")))
}

/// An `XskConfig` for `iface` serving its first `queues` receive queues in `mode`, joined to
/// [`GROUP`] (so TX bursts can go there without neighbour resolution).
pub fn config(iface: &str, queues: u32, mode: BindMode) -> io::Result<XskConfig> {
    let bind = bind_addr(iface)?;
    let mut cfg = XskConfig::new(iface, bind);
    cfg.queues = (0..queues.min(QUEUES_MAX)).collect();
    cfg.bind_mode = Some(mode);
    cfg.multicast = Some(Multicast::new(IpAddr::V4(GROUP), PORT, 1).map_err(io::Error::other)?);
    Ok(cfg)
}

/// The transport is bound in `mode` on exactly `queues`.
pub fn check_bound(x: &XskTransport, mode: BindMode, queues: &[u32]) -> Result<(), String> {
    if x.bind_mode() != mode {
        return Err(format!("bound in {} mode, wanted {mode}", x.bind_mode()));
    }
    if x.queue_ids() != queues {
        return Err(format!(
            "serves queues {:?}, wanted {queues:?}",
            x.queue_ids()
        ));
    }
    Ok(())
}

/// Sends `n` datagrams to [`GROUP`] in one burst and flushes until every TX frame has come
/// back through the completion ring (bounded: 5 s). Checks the kernel was kicked fewer times
/// than there were frames (batching, and need_wakeup in zero-copy mode) and no frame was
/// refused.
pub fn tx_burst_completes(x: &mut XskTransport, n: usize) -> Result<(), String> {
    let group = SocketAddr::new(IpAddr::V4(GROUP), PORT);
    let before = x.counters().clone();
    let payload = [0x42u8; 256];
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while sent < n {
        if Instant::now() > deadline {
            return Err(format!("only {sent} of {n} frames were accepted in 5 s"));
        }
        match x.send_to(&payload, group) {
            Ok(true) => sent += 1,
            Ok(false) => x.flush().map_err(|e| format!("flush: {e}"))?,
            Err(e) => return Err(format!("send_to: {e}")),
        }
    }
    loop {
        x.flush().map_err(|e| format!("flush: {e}"))?;
        let (free, total) = x.tx_frames_free();
        if free == total {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{} TX frames never completed", total - free));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = x.counters();
    let out = after.frames_out - before.frames_out;
    let kicks = after.tx_kicks - before.tx_kicks;
    if out != n as u64 {
        return Err(format!("frames_out moved by {out}, wanted {n}"));
    }
    if kicks >= n as u64 {
        return Err(format!(
            "{kicks} TX kicks for {n} frames: one syscall per frame"
        ));
    }
    Ok(())
}

/// A raw (AF_PACKET) socket that puts whole Ethernet frames on one interface.
pub struct RawSender {
    fd: OwnedFd,
    ifindex: u32,
    /// The interface's MAC and first IPv4 address.
    pub mac: Mac,
    pub ip: Ipv4Addr,
}

impl RawSender {
    /// Opens it on `iface` of the calling thread's network namespace.
    pub fn open(iface: &str) -> io::Result<RawSender> {
        let link = neigh::link_by_name(iface)?;
        let ip = link
            .addrs
            .iter()
            .find_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| io::Error::other(format!("{iface} has no IPv4 address")))?;
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                0, // send only: no protocol, so nothing is queued for reading
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawSender {
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ifindex: link.ifindex,
            mac: link.mac,
            ip,
        })
    }

    /// Puts one Ethernet frame on the wire.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: all-zero is a valid sockaddr_ll; the fields that matter are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` and `sll` are valid for the lengths passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Sends `n` UDP frames from `sender` to the transport's address, each from another source
/// address and port (so RSS, or veth's queue choice, spreads them over queues), and receives
/// them all through `recv_batch` (bounded: 5 s). Returns the frames each queue received.
pub fn rx_spread(
    x: &mut XskTransport,
    sender: &RawSender,
    dst_mac: Mac,
    n: usize,
) -> Result<Vec<(u32, u64)>, String> {
    let before = x.frames_in_by_queue();
    let local = x.local_addr();
    let mut frame_buf = vec![0u8; 2048];
    for i in 0..n {
        let o = sender.ip.octets();
        // Vary the low byte of the source inside the sender's /24 and the source port.
        let src_ip = Ipv4Addr::new(o[0], o[1], o[2], 100 + (i % 100) as u8);
        let a = Addressing {
            src_mac: sender.mac,
            dst_mac,
            src: SocketAddr::new(IpAddr::V4(src_ip), 20_000 + i as u16),
            dst: local,
            hop_limit: HOP_LIMIT_UNICAST,
        };
        let payload = (i as u32).to_be_bytes();
        let len = frame::build(&mut frame_buf, &a, &payload, i as u16)
            .map_err(|e| format!("build: {e:?}"))?;
        sender
            .send(&frame_buf[..len])
            .map_err(|e| format!("raw send: {e}"))?;
    }
    let mut seen = vec![false; n];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < n && Instant::now() < deadline {
        let r = x.recv_batch(&mut |payload, _from| {
            if let Ok(b) = <[u8; 4]>::try_from(&payload[..]) {
                let i = u32::from_be_bytes(b) as usize;
                if i < n && !seen[i] {
                    seen[i] = true;
                    got += 1;
                }
            }
        });
        if let Err(e) = r {
            return Err(format!("recv_batch: {e}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    if got < n {
        return Err(format!(
            "received {got} of {n} frames; xdp counters: {:?}",
            x.xdp_counters()
        ));
    }
    let after = x.frames_in_by_queue();
    Ok(after
        .iter()
        .zip(&before)
        .map(|((q, a), (_, b))| (*q, a - b))
        .collect())
}
