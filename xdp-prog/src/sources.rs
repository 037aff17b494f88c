//! The source filter's map entries: which addresses are the cluster's (`sources`: key
//! [`SourceKey`], value [`SourceValue`]) and what happens to a cluster-port frame from any other
//! ([`UnknownSource`], in `filter`). The byte layouts are the C program's `struct source_key`,
//! `struct source_value` and `struct filter_settings`; the compile-time asserts pin their sizes.

use std::net::IpAddr;

/// One address the cluster's frames may come from: a link of a configured node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub addr: IpAddr,
    pub node_id: u32,
    /// The link (ring number, 0..8) the address is on.
    pub link: u8,
}

/// A key of the `sources` map (`struct source_key`): the family (4 or 6), three zero bytes,
/// then the address in network byte order (IPv4 in the first four bytes, the rest zero).
/// A family byte rather than IPv4-mapped IPv6 addresses: an IPv6 frame from `::ffff:a.b.c.d`
/// never matches a configured IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(pub [u8; SourceKey::SIZE]);

/// A value of the `sources` map (`struct source_value`): node id (host byte order), link, three
/// zero bytes. The program only tests a key's presence; the value says whose address it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceValue(pub [u8; SourceValue::SIZE]);

const _: () = assert!(SourceKey::SIZE == 20 && SourceValue::SIZE == 8);

impl SourceKey {
    pub const SIZE: usize = 20;

    /// The key of `addr`.
    pub fn of(addr: IpAddr) -> SourceKey {
        let mut key = [0u8; SourceKey::SIZE];
        match addr {
            IpAddr::V4(a) => {
                key[0] = 4;
                key[4..8].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                key[0] = 6;
                key[4..20].copy_from_slice(&a.octets());
            }
        }
        SourceKey(key)
    }

    /// The address of a key read back from the map; `None` for bytes no key of ours has.
    pub fn addr(&self) -> Option<IpAddr> {
        let k = &self.0;
        if k[1..4] != [0, 0, 0] {
            return None;
        }
        match k[0] {
            4 if k[8..].iter().all(|&b| b == 0) => {
                Some(IpAddr::from(<[u8; 4]>::try_from(&k[4..8]).ok()?))
            }
            6 => Some(IpAddr::from(<[u8; 16]>::try_from(&k[4..20]).ok()?)),
            _ => None,
        }
    }
}

impl SourceValue {
    pub const SIZE: usize = 8;

    pub fn of(node_id: u32, link: u8) -> SourceValue {
        let mut value = [0u8; SourceValue::SIZE];
        value[..4].copy_from_slice(&node_id.to_ne_bytes());
        value[4] = link;
        SourceValue(value)
    }

    /// (node id, link).
    pub fn node_and_link(&self) -> (u32, u8) {
        let id = u32::from_ne_bytes(self.0[..4].try_into().expect("4 bytes"));
        (id, self.0[4])
    }
}

/// What the source filter does with a frame to a cluster port from an address that is not
/// the cluster's (`rotor { xdp_unknown_source: pass | drop }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownSource {
    /// To the kernel, as if no XDP program ran: no socket listens on the cluster port there,
    /// so the host's firewall sees it (and counts or drops it) and the kernel answers ICMP
    /// port unreachable unless the firewall drops it first. The default.
    #[default]
    Pass,
    /// Dropped by the program: neither the firewall nor the kernel sees it.
    Drop,
}

impl UnknownSource {
    /// The setting's words, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["pass", "drop"];

    pub fn name(self) -> &'static str {
        match self {
            UnknownSource::Pass => "pass",
            UnknownSource::Drop => "drop",
        }
    }

    pub fn from_name(name: &str) -> Option<UnknownSource> {
        match name {
            "pass" => Some(UnknownSource::Pass),
            "drop" => Some(UnknownSource::Drop),
            _ => None,
        }
    }

    /// The value in the `filter` map (`enum unknown_source`; 0 is "no filter").
    pub fn raw(self) -> u32 {
        match self {
            UnknownSource::Pass => 1,
            UnknownSource::Drop => 2,
        }
    }

    /// The setting of a `filter` map value; `None` for 0 (no filter) or a value not ours.
    pub fn from_raw(raw: u32) -> Option<UnknownSource> {
        match raw {
            1 => Some(UnknownSource::Pass),
            2 => Some(UnknownSource::Drop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn ipv4_keys_hold_the_family_and_the_address_in_wire_order() {
        let key = SourceKey::of(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 7)));
        let mut want = [0u8; 20];
        want[0] = 4;
        want[4..8].copy_from_slice(&[198, 18, 0, 7]);
        assert_eq!(key.0, want);
        assert_eq!(key.addr(), Some(IpAddr::from([198, 18, 0, 7])));
    }

    #[test]
    fn ipv6_keys_hold_the_family_and_all_sixteen_bytes() {
        let a: Ipv6Addr = "2001:2::7".parse().unwrap();
        let key = SourceKey::of(IpAddr::V6(a));
        assert_eq!(key.0[0], 6);
        assert_eq!(&key.0[1..4], &[0, 0, 0]);
        assert_eq!(&key.0[4..], &a.octets());
        assert_eq!(key.addr(), Some(IpAddr::V6(a)));
    }

    #[test]
    fn a_mapped_ipv6_address_is_not_the_ipv4_address() {
        let v4 = SourceKey::of(IpAddr::from([198, 18, 0, 7]));
        let mapped = SourceKey::of(IpAddr::V6(Ipv4Addr::new(198, 18, 0, 7).to_ipv6_mapped()));
        assert_ne!(v4, mapped);
        let compatible = SourceKey::of(IpAddr::V6(
            Ipv4Addr::new(198, 18, 0, 7).to_ipv6_compatible(),
        ));
        assert_ne!(v4, compatible);
    }

    #[test]
    fn foreign_key_bytes_are_not_read_as_addresses() {
        let mut key = SourceKey::of(IpAddr::from([198, 18, 0, 7]));
        key.0[12] = 1;
        assert_eq!(key.addr(), None, "an IPv4 key with bytes past the address");
        key.0[0] = 5;
        assert_eq!(key.addr(), None, "family 5");
    }

    #[test]
    fn values_carry_node_and_link() {
        let v = SourceValue::of(0xdead_beef, 7);
        assert_eq!(v.node_and_link(), (0xdead_beef, 7));
        assert_eq!(&v.0[5..], &[0, 0, 0]);
    }

    #[test]
    fn unknown_source_words_and_raw_values_round_trip() {
        for name in UnknownSource::NAMES {
            let u = UnknownSource::from_name(name).unwrap();
            assert_eq!(u.name(), name);
            assert_eq!(UnknownSource::from_raw(u.raw()), Some(u));
        }
        assert_eq!(UnknownSource::from_raw(0), None, "0 is no filter");
        assert_eq!(UnknownSource::from_name("accept"), None);
        assert_eq!(UnknownSource::default(), UnknownSource::Pass);
    }
}
