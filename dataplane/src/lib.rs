//! rotor-dataplane: the process that moves rotor's cluster traffic. Two providers behind one
//! `Transport` trait: kernel UDP (`udp`, non-blocking `std::net::UdpSocket` + `poll`) and AF_XDP
//! (`xsk`: xdp-prog steers the cluster port into one AF_XDP socket per served receive queue,
//! frames are built and parsed by hand in `frame`, destination MACs come from the kernel
//! neighbour table in `neigh`); `any` picks one at start (`--transport udp|xdp|auto`). A runner
//! (`runner`) drives one totem-core `Node` — opening every datagram with rotor-crypto, feeding it
//! to the node under the authenticated sender id, running the core's timers on a monotonic
//! clock, sealing its transmits and unicasting them to each configured peer — and the
//! `rotor-dataplane` binary either serves the CPG sessions rotord hands over (`service`: client
//! rings in, deliveries fanned out in order) or, started by hand, joins one CPG group,
//! optionally multicasts test messages and prints every configuration, group and delivery event
//! as one parseable line. It deliberately does not yet: use io_uring, send IP multicast, or
//! reach peers behind a gateway over AF_XDP (later parts of issue 4).

pub mod any;
pub mod frame;
pub mod neigh;
pub mod poll;
pub mod runner;
pub mod service;
pub mod transport;
pub mod udp;
pub mod xsk;

/// FNV-1a (32-bit) of a payload: the checksum printed on `deliver` lines.
pub fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a32_known_values() {
        assert_eq!(super::fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(super::fnv1a32(b"a"), 0xe40c_292c);
    }
}
