//! rotor-dataplane: the process that moves rotor's cluster traffic. Today it is a first complete
//! slice: kernel-UDP providers behind the `transport::Transport` trait — `uring` (io_uring:
//! recvmsg requests kept in flight over a fixed buffer pool, sendmsg batched per flush, an
//! eventfd to sleep on) and `udp` (a plain non-blocking socket + `poll`, used when io_uring
//! cannot be set up; `udp::KernelUdp` picks and says why), both IPv4 and IPv6 — a runner
//! (`runner`) that drives one totem-core `Node` — opening every datagram with rotor-crypto,
//! feeding it to the node under the authenticated sender id, running the core's timers on a
//! monotonic clock, sealing its transmits and unicasting them to each configured peer — and the
//! `rotor-dataplane` binary, which joins one CPG group, optionally multicasts test messages and
//! prints every configuration, group and delivery event as one parseable line. It deliberately
//! does not yet: use AF_XDP, busy-poll on a pinned core, send IP multicast, or fan deliveries
//! out to client shared-memory rings (later parts of issue 4).

pub mod poll;
pub mod runner;
pub mod service;
pub mod transport;
pub mod udp;
pub mod uring;

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
