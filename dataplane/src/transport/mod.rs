//! The surface every datagram provider offers the runner, and the providers: kernel UDP
//! (`uring`, and `udp` which falls back to a plain socket), AF_XDP (`xsk`, with its frame
//! builder/parser `frame` and the neighbour table `neigh`), the multicast set-up they share
//! (`mcast`) and the choice between them at start (`any`). A provider moves UDP payloads
//! between the wire and the runner and nothing else: crypto, totem-core and client rings stay
//! in the runner, so every provider runs exactly the same protocol code.

pub mod any;
pub mod frame;
pub mod mcast;
pub mod neigh;
pub mod udp;
pub mod uring;
pub mod xsk;

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// The largest UDP payload over IPv4 (65,535 − 20 − 8); IPv6 allows 20 bytes more, which
/// rotor does not use.
pub const UDP_PAYLOAD_MAX: usize = 65_507;

/// A source and sink of cluster datagrams (UDP payloads).
pub trait Transport {
    /// A short name for logs and `stats`: `"udp"`, `"xdp"`.
    fn name(&self) -> &'static str;

    /// The local address and cluster port datagrams are received on.
    fn local_addr(&self) -> SocketAddr;

    /// The largest UDP payload one datagram may carry on this provider: the kernel's UDP limit
    /// for sockets, what a UMEM frame holds after the Ethernet, IP and UDP headers for AF_XDP.
    fn datagram_size_max(&self) -> usize {
        UDP_PAYLOAD_MAX
    }

    /// The multicast group (and cluster port) this provider joined, if the cluster multicasts:
    /// the runner then sends every `Dest::All` frame once, to it, instead of to each peer.
    fn group(&self) -> Option<SocketAddr> {
        None
    }

    /// Hands every datagram queued now (up to one batch) to `f` as `(payload, from)`; the
    /// payload is mutable so it can be opened in place. Returns how many were handed over;
    /// `Ok(0)` when nothing is queued (never blocks).
    fn recv_batch(&mut self, f: &mut dyn FnMut(&mut [u8], SocketAddr)) -> io::Result<usize>;

    /// Queues one datagram to `to`. `Ok(false)` when there is no room right now: the datagram
    /// is dropped (the caller counts it; totem retransmits).
    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> io::Result<bool>;

    /// Pushes everything queued by `send_to` to the wire (a no-op for providers that send at
    /// once).
    fn flush(&mut self) -> io::Result<()>;

    /// Appends the provider's own counters (`udp.*`, `xdp.*`) to `out`.
    fn counters(&self, _out: &mut crate::stats::Sheet) {}

    /// Periodic upkeep that takes a while (AF_XDP: refreshing the neighbour table, a netlink
    /// dump of about 75 µs). The service calls it where no token waits for it, with the stats
    /// report; a provider does none of it on the send path but what a miss needs.
    fn maintain(&mut self) {}

    /// A descriptor that becomes readable (POLLIN) when datagrams arrive, for sleeping in
    /// `poll(2)` alongside the client rings.
    fn wait_fd(&self) -> RawFd;
}
