//! The kernel-UDP provider: one non-blocking `std::net::UdpSocket` bound to the node's address
//! and cluster port, waited on with `libc::poll`. Plain sockets are deliberate for this first
//! slice; an io_uring provider (and AF_XDP) come next behind the same small surface.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// corosync's default cluster port.
pub const DEFAULT_PORT: u16 = 5405;

/// A bound, non-blocking UDP socket.
#[derive(Debug)]
pub struct UdpTransport {
    sock: UdpSocket,
}

impl UdpTransport {
    /// Binds to `addr` (the node's address and the cluster port) in non-blocking mode.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpTransport> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        Ok(UdpTransport { sock })
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

    /// Waits until a datagram is readable or `timeout` passes; true when readable.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, count 1, for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(r > 0 && pfd.revents & libc::POLLIN != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_round_trip_and_empty_recv() {
        let a = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        assert!(b.recv(&mut buf).unwrap().is_none());
        assert!(!b.wait_readable(Duration::from_millis(10)).unwrap());
        assert!(a.send_to(b"hello", b.local_addr().unwrap()).unwrap());
        assert!(b.wait_readable(Duration::from_secs(2)).unwrap());
        let (n, from) = b.recv(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from, a.local_addr().unwrap());
    }
}
