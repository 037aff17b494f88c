//! The kernel-UDP provider: one non-blocking `std::net::UdpSocket` bound to the node's address
//! and cluster port (IPv4 or IPv6), waited on with `poll(2)`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

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

impl crate::transport::Transport for UdpTransport {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loopback_round_trip_and_empty_recv() {
        let a = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
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
}
