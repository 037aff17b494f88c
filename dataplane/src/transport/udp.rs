//! The kernel-UDP providers: `UdpTransport`, one non-blocking `std::net::UdpSocket` bound to
//! the node's address and cluster port (IPv4 or IPv6), plus a second one bound to the cluster's
//! multicast group when it multicasts (`mcast`), waited on with `poll(2)`; and `KernelUdp`,
//! which is the io_uring provider (`uring`) when io_uring works and falls back to
//! `UdpTransport` with the reason otherwise.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub use rotor_proto::control::KernelUdpIo;

use crate::transport::mcast::Multicast;
use crate::transport::Transport;

/// corosync's default cluster port.
pub const DEFAULT_PORT: u16 = 5405;

/// A bound, non-blocking UDP socket (and the group's, when the cluster multicasts).
#[derive(Debug)]
pub struct UdpTransport {
    /// Bound to the node's address: receives unicast (the token), sends everything.
    sock: UdpSocket,
    /// Bound to the multicast group and joined, with the group's address.
    group: Option<(UdpSocket, SocketAddr)>,
    /// Both sockets, when there are two: the `wait_fd`.
    epoll: Option<OwnedFd>,
    /// Receive buffer for `recv_batch`: one UDP payload at most.
    rx: Box<[u8]>,
}

impl UdpTransport {
    /// Binds to `addr` (the node's address and the cluster port) in non-blocking mode.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpTransport> {
        UdpTransport::bind_with(addr, None)
    }

    /// Binds to `addr` and, with `mcast`, also joins its group on a second socket and sets the
    /// first up to send to it (see `mcast`).
    pub fn bind_with(addr: SocketAddr, mcast: Option<&Multicast>) -> io::Result<UdpTransport> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        tracing::debug!("plain UDP socket bound to {addr}, waited on with poll(2)");
        let (group, epoll) = match mcast {
            None => (None, None),
            Some(m) => {
                m.check_family(addr)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                crate::transport::mcast::prepare_sender(&sock, m, addr.ip())?;
                let g = crate::transport::mcast::group_socket(m, addr.ip())?;
                g.set_nonblocking(true)?;
                let ep = crate::poll::epoll_of(&[sock.as_raw_fd(), g.as_raw_fd()])?;
                (Some((g, m.group())), Some(ep))
            }
        };
        Ok(UdpTransport {
            sock,
            group,
            epoll,
            rx: vec![0; 65_536].into_boxed_slice(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// One datagram into `buf`, or `None` when nothing is queued.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        match self.sock.recv_from(buf) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends one datagram; `Ok(false)` when the socket buffer is full (the datagram is dropped,
    /// totem retransmits).
    pub fn send_to(&self, buf: &[u8], addr: SocketAddr) -> io::Result<bool> {
        match self.sock.send_to(buf, addr) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Datagrams taken per `recv_batch`, so one busy socket cannot starve timers and clients.
const RECV_BATCH: usize = 64;

impl Transport for UdpTransport {
    fn name(&self) -> &'static str {
        "udp"
    }

    fn local_addr(&self) -> SocketAddr {
        self.sock
            .local_addr()
            .expect("a bound UDP socket has a local address")
    }

    fn group(&self) -> Option<SocketAddr> {
        self.group.as_ref().map(|g| g.1)
    }

    fn recv_batch(&mut self, f: &mut dyn FnMut(&mut [u8], SocketAddr)) -> io::Result<usize> {
        let mut n = 0;
        let socks = std::iter::once(&self.sock).chain(self.group.as_ref().map(|g| &g.0));
        for sock in socks {
            while n < RECV_BATCH {
                match sock.recv_from(&mut self.rx) {
                    Ok((len, from)) => {
                        f(&mut self.rx[..len], from);
                        n += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> io::Result<bool> {
        UdpTransport::send_to(self, payload, to)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn wait_fd(&self) -> RawFd {
        match &self.epoll {
            Some(ep) => ep.as_raw_fd(),
            None => self.sock.as_raw_fd(),
        }
    }
}

/// Kernel UDP as the dataplane uses it: the plain socket, or io_uring where `rotor.kernel_udp`
/// asks for it and the kernel sets it up.
pub enum KernelUdp {
    /// Boxed: the ring handle is large and the enum is moved into the runner once.
    Uring(Box<crate::transport::uring::UringTransport>),
    Socket(UdpTransport),
}

impl KernelUdp {
    /// Binds the provider `io` names: a plain socket, or io_uring, falling back to a plain
    /// socket when io_uring setup fails; the second value says which and, on a fall-back, why,
    /// for the log. With `mcast`, either provider also joins the group and sends `Dest::All`
    /// frames to it.
    pub fn bind(
        addr: SocketAddr,
        mcast: Option<&Multicast>,
        io: KernelUdpIo,
    ) -> io::Result<(KernelUdp, String)> {
        if io == KernelUdpIo::Socket {
            let t = UdpTransport::bind_with(addr, mcast)?;
            return Ok((KernelUdp::Socket(t), "plain socket".into()));
        }
        match crate::transport::uring::UringTransport::bind_with(addr, mcast) {
            Ok(t) => Ok((KernelUdp::Uring(Box::new(t)), "io_uring".into())),
            // A bind or join error is the address's fault and would fail the same way without
            // io_uring.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AddrInUse
                        | io::ErrorKind::AddrNotAvailable
                        | io::ErrorKind::InvalidInput
                ) =>
            {
                Err(e)
            }
            Err(e) => {
                tracing::debug!("io_uring cannot be used ({e}); falling back to a plain socket");
                Ok((
                    KernelUdp::Socket(UdpTransport::bind_with(addr, mcast)?),
                    format!("plain socket: io_uring cannot be used: {e}"),
                ))
            }
        }
    }

    fn inner(&mut self) -> &mut dyn Transport {
        match self {
            KernelUdp::Uring(t) => &mut **t,
            KernelUdp::Socket(t) => t,
        }
    }
}

impl Transport for KernelUdp {
    fn name(&self) -> &'static str {
        match self {
            KernelUdp::Uring(t) => t.name(),
            KernelUdp::Socket(t) => Transport::name(t),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        match self {
            KernelUdp::Uring(t) => t.local_addr(),
            KernelUdp::Socket(t) => Transport::local_addr(t),
        }
    }

    fn group(&self) -> Option<SocketAddr> {
        match self {
            KernelUdp::Uring(t) => t.group(),
            KernelUdp::Socket(t) => t.group(),
        }
    }

    fn counters(&self, out: &mut crate::stats::Sheet) {
        match self {
            KernelUdp::Uring(t) => Transport::counters(t.as_ref(), out),
            KernelUdp::Socket(t) => Transport::counters(t, out),
        }
    }

    fn recv_batch(&mut self, f: &mut dyn FnMut(&mut [u8], SocketAddr)) -> io::Result<usize> {
        self.inner().recv_batch(f)
    }

    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> io::Result<bool> {
        self.inner().send_to(payload, to)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner().flush()
    }

    fn wait_fd(&self) -> RawFd {
        match self {
            KernelUdp::Uring(t) => t.wait_fd(),
            KernelUdp::Socket(t) => t.wait_fd(),
        }
    }
}

impl std::fmt::Debug for KernelUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelUdp({})", crate::transport::Transport::name(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn round_trip(addr: &str) {
        let a = UdpTransport::bind(addr.parse().unwrap()).unwrap();
        let b = UdpTransport::bind(addr.parse().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        assert!(b.recv(&mut buf).unwrap().is_none());
        let ready = |t: &UdpTransport, ms| {
            crate::poll::wait_readable(t.sock.as_raw_fd(), &[], Duration::from_millis(ms)).unwrap()
        };
        assert!(!ready(&b, 10));
        assert!(a.send_to(b"hello", b.local_addr().unwrap()).unwrap());
        assert!(ready(&b, 2000));
        let (n, from) = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, a.local_addr().unwrap());
    }

    #[test]
    fn loopback_round_trip_and_empty_recv_v4() {
        round_trip("127.0.0.1:0");
    }

    #[test]
    fn loopback_round_trip_and_empty_recv_v6() {
        round_trip("[::1]:0");
    }

    #[test]
    fn kernel_udp_runs_the_provider_asked_for_and_talks_to_a_plain_socket_over_v6() {
        for (io, name) in [
            (KernelUdpIo::Socket, "udp"),
            (KernelUdpIo::IoUring, "udp-uring"),
        ] {
            talks_to_a_plain_socket_over_v6(io, name);
        }
    }

    fn talks_to_a_plain_socket_over_v6(io: KernelUdpIo, name: &str) {
        let (mut k, why) = KernelUdp::bind("[::1]:0".parse().unwrap(), None, io).unwrap();
        assert_eq!(k.name(), name, "fell back: {why}");
        let mut plain = UdpTransport::bind("[::1]:0".parse().unwrap()).unwrap();
        let to = Transport::local_addr(&plain);
        assert!(k.send_to(b"over v6", to).unwrap());
        k.flush().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.is_empty() && std::time::Instant::now() < deadline {
            crate::poll::wait_readable(plain.wait_fd(), &[], Duration::from_millis(50)).unwrap();
            plain
                .recv_batch(&mut |d, from| got.push((d.to_vec(), from)))
                .unwrap();
        }
        assert_eq!(got, vec![(b"over v6".to_vec(), k.local_addr())]);
        assert!(plain.send_to(b"back", k.local_addr()).unwrap());
        let mut back = Vec::new();
        while back.is_empty() && std::time::Instant::now() < deadline {
            crate::poll::wait_readable(k.wait_fd(), &[], Duration::from_millis(50)).unwrap();
            k.recv_batch(&mut |d, _| back.push(d.to_vec())).unwrap();
        }
        assert_eq!(back, vec![b"back".to_vec()]);
    }
}
