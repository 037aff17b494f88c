//! The kernel-UDP providers: `UdpTransport`, one non-blocking `std::net::UdpSocket` bound to
//! the node's address and cluster port (IPv4 or IPv6), waited on with `poll(2)`; and
//! `KernelUdp`, which is the io_uring provider (`uring`) when io_uring works and falls back to
//! `UdpTransport` with the reason otherwise.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use crate::transport::Transport;

/// corosync's default cluster port.
pub const DEFAULT_PORT: u16 = 5405;

/// A bound, non-blocking UDP socket.
#[derive(Debug)]
pub struct UdpTransport {
    sock: UdpSocket,
    /// Receive buffer for `recv_batch`: one UDP payload at most.
    rx: Box<[u8]>,
}

impl UdpTransport {
    /// Binds to `addr` (the node's address and the cluster port) in non-blocking mode.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpTransport> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        Ok(UdpTransport {
            sock,
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

    fn recv_batch(&mut self, f: &mut dyn FnMut(&mut [u8], SocketAddr)) -> io::Result<usize> {
        let mut n = 0;
        while n < RECV_BATCH {
            match self.sock.recv_from(&mut self.rx) {
                Ok((len, from)) => {
                    f(&mut self.rx[..len], from);
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
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
        self.sock.as_raw_fd()
    }
}

/// Set (to anything) to skip io_uring and use the plain socket provider.
pub const NO_URING_ENV: &str = "ROTOR_NO_URING";

/// Kernel UDP as the dataplane uses it: io_uring when it can be set up, the plain socket
/// otherwise.
pub enum KernelUdp {
    /// Boxed: the ring handle is large and the enum is moved into the runner once.
    Uring(Box<crate::uring::UringTransport>),
    Socket(UdpTransport),
}

impl KernelUdp {
    /// Binds through io_uring, or through a plain socket when io_uring setup fails (or
    /// `ROTOR_NO_URING` is set); the second value then says why, for the log.
    pub fn bind(addr: SocketAddr) -> io::Result<(KernelUdp, Option<String>)> {
        if std::env::var_os(NO_URING_ENV).is_some() {
            let reason = format!("{NO_URING_ENV} is set");
            return Ok((KernelUdp::Socket(UdpTransport::bind(addr)?), Some(reason)));
        }
        match crate::uring::UringTransport::bind(addr) {
            Ok(t) => Ok((KernelUdp::Uring(Box::new(t)), None)),
            // A bind error is the address's fault and would fail the same way without io_uring.
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    || e.kind() == io::ErrorKind::AddrNotAvailable =>
            {
                Err(e)
            }
            Err(e) => Ok((
                KernelUdp::Socket(UdpTransport::bind(addr)?),
                Some(e.to_string()),
            )),
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
    fn kernel_udp_prefers_io_uring_and_talks_to_a_plain_socket_over_v6() {
        let (mut k, why) = KernelUdp::bind("[::1]:0".parse().unwrap()).unwrap();
        if std::env::var_os(NO_URING_ENV).is_none() {
            assert_eq!(k.name(), "udp-uring", "fell back: {why:?}");
        }
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
