//! Senders that should not be sending to this port, recognised from the datagrams the crypto
//! layer refuses (or, for a sender missing from the nodelist, from one it accepted), and
//! reported at most once per kind per interval with a count of the rest.
//!
//! Corosync's datagrams are recognised by their headers, read from corosync's and kronosnet's
//! sources: knet's clear header (`struct knet_header`, libknet/onwire.h: version 1, a packet
//! type, the sender's 16-bit node id); corosync 3's totem header on the udp/udpu transports
//! (`struct totem_message_header`, include/corosync/totem/totem.h: the 0xC070 magic in the
//! sender's byte order, version 3, a message type 0–5; corosync 3 does no crypto on udp/udpu);
//! corosync 2's totemcrypto header (exec/totemcrypto.c, 2.4: cipher and hash type bytes both
//! 0xFE, two zero pads). knet with crypto on encrypts its whole packet behind a random salt:
//! nothing identifies it, and it is reported as an unrecognised sender.

use rotor_crypto::HEADER_LEN;

/// Who sent a datagram the endpoint dropped, as far as its bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// A rotor frame that failed authentication (another authkey, or altered on the way).
    InvalidDigest,
    /// A frame sealed under this node's own id and key from another address: another node is
    /// configured with our node id.
    DuplicateNodeId { node: u32 },
    /// A rotor frame of another cluster (another cluster_name) on our port.
    OtherCluster { cluster_hash: u32, ours: u32 },
    /// A rotor frame of this cluster sealed in another crypto mode.
    CryptoModeMismatch { node: u32 },
    /// A Corosync node sending to our port.
    Corosync(Corosync),
    /// A node that authenticated (it has our key and cluster name) but is not in our nodelist.
    NotInNodelist { node: u32 },
    /// Not a rotor frame of this version, and not recognised as Corosync.
    Unrecognised,
    /// A rotor frame of this cluster sealed under a key this node does not hold: another
    /// authkey, or a key rotation one of the two nodes did not take part in. `ours`: the key
    /// this node seals under.
    UnknownKey { node: u32, key_id: u32, ours: u32 },
}

/// Number of [`Foreign`] kinds: one rate limit each.
pub(crate) const KINDS: usize = 8;

impl Foreign {
    pub(crate) fn kind(self) -> usize {
        match self {
            Foreign::InvalidDigest => 0,
            Foreign::DuplicateNodeId { .. } => 1,
            Foreign::OtherCluster { .. } => 2,
            Foreign::CryptoModeMismatch { .. } => 3,
            Foreign::Corosync(_) => 4,
            Foreign::NotInNodelist { .. } => 5,
            Foreign::Unrecognised => 6,
            Foreign::UnknownKey { .. } => 7,
        }
    }
}

/// Which Corosync a datagram came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corosync {
    /// Corosync 3 on knet with crypto off; `node` is its knet host id.
    Knet { node: u16 },
    /// Corosync 3 on the udp or udpu transport; `node` is its nodeid.
    TotemUdp { node: u32 },
    /// Corosync 2 (udp or udpu; its crypto header is always present).
    Corosync2,
}

/// The sender and key id in the seal header of a rotor frame (bytes already checked to be one
/// of this cluster's).
pub(crate) fn sender_and_key_of(frame: &[u8]) -> Option<(u32, u32)> {
    let sender = sender_of(frame)?;
    let key = frame.get(24..28)?;
    Some((sender, u32::from_be_bytes(key.try_into().ok()?)))
}

/// The Corosync that sent `datagram`, if its header says so.
pub fn recognise_corosync(datagram: &[u8]) -> Option<Corosync> {
    // knet: kh_version, kh_type, kh_node (BE u16), kh_max_ver, kh_pad1, payload.
    const KNET_HEADER_SIZE: usize = 6;
    const KNET_TYPES: [u8; 5] = [0x00, 0x81, 0x82, 0x83, 0x84];
    // corosync 3 totem: magic (u16, host order), version, type, encapsulated, nodeid (u32,
    // host order), target nodeid.
    const TOTEM_HEADER_SIZE: usize = 13;
    match datagram {
        [0xFE, 0xFE, 0, 0, ..] => Some(Corosync::Corosync2),
        [m0, m1, 0x03, kind, enc, n0, n1, n2, n3, ..]
            if datagram.len() >= TOTEM_HEADER_SIZE && *kind <= 5 && *enc <= 2 =>
        {
            let id = [*n0, *n1, *n2, *n3];
            match (*m0, *m1) {
                (0x70, 0xC0) => Some(Corosync::TotemUdp {
                    node: u32::from_le_bytes(id),
                }),
                (0xC0, 0x70) => Some(Corosync::TotemUdp {
                    node: u32::from_be_bytes(id),
                }),
                _ => None,
            }
        }
        [0x01, kind, n0, n1, max_ver, ..]
            if datagram.len() >= KNET_HEADER_SIZE && KNET_TYPES.contains(kind) && *max_ver >= 1 =>
        {
            Some(Corosync::Knet {
                node: u16::from_be_bytes([*n0, *n1]),
            })
        }
        _ => None,
    }
}

/// The cluster hash in a rotor seal header, if the datagram has one.
pub(crate) fn cluster_hash_of(datagram: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = datagram.get(4..8)?.try_into().ok()?;
    (datagram.len() >= HEADER_LEN).then(|| u32::from_be_bytes(bytes))
}

/// The sender id in a rotor seal header, if the datagram has one.
pub(crate) fn sender_of(datagram: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = datagram.get(8..12)?.try_into().ok()?;
    (datagram.len() >= HEADER_LEN).then(|| u32::from_be_bytes(bytes))
}

/// One report per kind per `interval_ns`; the datagrams in between are counted and the count
/// goes with the next report.
#[derive(Debug)]
pub(crate) struct RateLimit {
    interval_ns: u64,
    last_ns: [Option<u64>; KINDS],
    unreported: [u64; KINDS],
}

impl RateLimit {
    pub(crate) fn new(interval_ns: u64) -> RateLimit {
        RateLimit {
            interval_ns,
            last_ns: [None; KINDS],
            unreported: [0; KINDS],
        }
    }

    /// Whether a report of `kind` is due at `now_ns`.
    pub(crate) fn due(&self, kind: usize, now_ns: u64) -> bool {
        self.last_ns[kind].is_none_or(|last| now_ns.saturating_sub(last) >= self.interval_ns)
    }

    /// A datagram of `kind` not reported.
    pub(crate) fn skip(&mut self, kind: usize) {
        self.unreported[kind] += 1;
    }

    /// A report of `kind` made at `now_ns`: returns how many went unreported before it.
    pub(crate) fn report(&mut self, kind: usize, now_ns: u64) -> u64 {
        self.last_ns[kind] = Some(now_ns);
        std::mem::take(&mut self.unreported[kind])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corosync_headers_are_recognised() {
        // A knet ping from host 3 (clear): version 1, type PING, node 3, max version 1.
        let mut ping = vec![0x01, 0x81, 0x00, 0x03, 0x01, 0x00];
        ping.extend_from_slice(&[0; 20]);
        assert_eq!(recognise_corosync(&ping), Some(Corosync::Knet { node: 3 }));
        // A corosync 3 join from nodeid 2 on a little-endian host.
        let mut join = vec![0x70, 0xC0, 0x03, 0x03, 0x00, 2, 0, 0, 0, 0, 0, 0, 0];
        join.extend_from_slice(&[0; 40]);
        assert_eq!(
            recognise_corosync(&join),
            Some(Corosync::TotemUdp { node: 2 })
        );
        join[..2].copy_from_slice(&[0xC0, 0x70]);
        join[5..9].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(
            recognise_corosync(&join),
            Some(Corosync::TotemUdp { node: 5 })
        );
        // Corosync 2.4's crypto header.
        assert_eq!(
            recognise_corosync(&[0xFE, 0xFE, 0, 0, 1, 2, 3]),
            Some(Corosync::Corosync2)
        );
        // Rotor's own header, and garbage, are not Corosync.
        assert_eq!(recognise_corosync(b"RT\x01\x01rest-of-a-rotor-frame"), None);
        assert_eq!(recognise_corosync(&[0x70, 0xC0, 0x03]), None);
        assert_eq!(recognise_corosync(&[]), None);
        assert_eq!(recognise_corosync(&[0x01, 0x42, 0, 3, 1, 0]), None);
    }

    #[test]
    fn one_report_per_kind_per_interval() {
        let mut limit = RateLimit::new(100);
        assert!(limit.due(0, 5));
        assert_eq!(limit.report(0, 5), 0);
        assert!(!limit.due(0, 104));
        limit.skip(0);
        limit.skip(0);
        assert!(limit.due(1, 50), "kinds are limited apart");
        assert!(limit.due(0, 105));
        assert_eq!(limit.report(0, 105), 2);
        assert!(!limit.due(0, 106));
    }
}
