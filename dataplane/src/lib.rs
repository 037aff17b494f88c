//! rotor-dataplane: the process that moves rotor's cluster traffic. Providers behind one
//! `Transport` trait (all under `transport`): kernel UDP (`udp`: a plain non-blocking socket +
//! `poll`, the default; `uring`: io_uring with recvmsg requests kept in flight and sendmsg
//! batched per flush, where `rotor.kernel_udp` asks for it — `udp::KernelUdp` picks and says
//! why) and AF_XDP (`xsk`: xdp-prog steers
//! the cluster port into one AF_XDP socket per served receive queue, frames are built and parsed
//! by hand in `frame`, destination MACs come from the kernel neighbour table in `neigh`); `any`
//! picks one at start (`--transport udp|xdp|auto`), IPv4 or IPv6. A runner (`runner`) is a transport, a
//! monotonic clock and one rotor-endpoint `Endpoint` (the totem-core node, crypto, the peer
//! table and the counters: every datagram opened and fed to the node under the authenticated
//! sender id, its transmits sealed and sent to each configured peer or, with IP multicast
//! (`mcast`), frames for every member once to the group), and logs the endpoint's diagnostics;
//! the `rotor-dataplane` binary either serves the CPG sessions rotord hands over (`service`: client rings in, deliveries
//! fanned out in order, busy/adaptive/blocking polling) or, started by hand, joins one CPG
//! group, optionally multicasts test messages and prints every event as one parseable line.
//! Every counter is one flat list (`stats`) published to rotord. The node runs votequorum when
//! rotord's start message carries quorum settings; `quorum` forwards rotord's requests to it
//! and its events and state to rotord. Runtime changes (`change`) pass between rotord and the
//! endpoint's ordered change service. It deliberately does not reach peers behind a gateway
//! over AF_XDP.

pub mod change;
pub mod poll;
pub mod quorum;
pub mod runner;
pub mod sched;
pub mod service;
pub mod stats;
pub mod transport;

/// FNV-1a (32-bit) of a payload: the checksum printed on `deliver` lines.
pub fn fnv1a32(data: &[u8]) -> u32 {
    fnv1a32_parts([data])
}

/// [`fnv1a32`] of the concatenation of `parts` (a delivery larger than a frame comes in parts).
pub fn fnv1a32_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u32 {
    parts.into_iter().flatten().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a32_known_values() {
        assert_eq!(super::fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(super::fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(
            super::fnv1a32_parts([&b"ab"[..], b"", b"c"]),
            super::fnv1a32(b"abc")
        );
    }
}
