//! Shared by the integration tests: skip decisions and a small frame builder.
#![allow(dead_code)] // each test binary uses a different part

use libbpf_rs::{libbpf_sys, MapHandle, MapType};

/// The cluster port the tests steer.
pub const CLUSTER_PORT: u16 = 5405;
/// A UDP port that is not the cluster's.
pub const OTHER_PORT: u16 = 5406;

/// Why BPF tests cannot run here, or None when they can: not root, or the kernel refuses to
/// create even a tiny BPF map (BPF disabled or filtered). A program that fails to load when
/// this says "can run" is a real failure, not a skip.
pub fn bpf_unavailable() -> Option<String> {
    // Safety: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (BPF and XDP need CAP_BPF and CAP_NET_ADMIN)".into());
    }
    let opts = libbpf_sys::bpf_map_create_opts {
        sz: size_of::<libbpf_sys::bpf_map_create_opts>() as libbpf_sys::size_t,
        ..Default::default()
    };
    match MapHandle::create(MapType::Array, Some("rotor_probe"), 4, 8, 1, &opts) {
        Ok(_map) => None,
        Err(error) => Some(format!("the kernel refuses to create a BPF map: {error}")),
    }
}

/// Prints why `test` skips and returns true when BPF is unavailable.
pub fn skip_without_bpf(test: &str) -> bool {
    match bpf_unavailable() {
        Some(reason) => {
            println!("SKIPPED {test}: {reason}");
            true
        }
        None => false,
    }
}

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6_ROUTING: u8 = 43;

/// An Ethernet header (optionally with one 802.1Q tag) followed by `payload`.
pub fn ethernet(ether_type: u16, vlan_id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]); // destination
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source
    if let Some(vlan_id) = vlan_id {
        frame.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        frame.extend_from_slice(&(vlan_id & 0x0fff).to_be_bytes());
    }
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A UDP header and payload (checksum 0: the program does not look at it).
pub fn udp(source_port: u16, destination_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend_from_slice(&source_port.to_be_bytes());
    segment.extend_from_slice(&destination_port.to_be_bytes());
    segment.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    segment.extend_from_slice(&0u16.to_be_bytes());
    segment.extend_from_slice(payload);
    segment
}

/// A minimal TCP header (SYN) to `destination_port`.
pub fn tcp(source_port: u16, destination_port: u16) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend_from_slice(&source_port.to_be_bytes());
    segment.extend_from_slice(&destination_port.to_be_bytes());
    segment.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // seq, ack
    segment.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]); // offset 5, SYN
    segment
}

/// An IPv4 packet in 198.18.0.0/15 with `options` (a multiple of 4 bytes) and the raw
/// flags+fragment-offset field `fragment`.
pub fn ipv4(protocol: u8, options: &[u8], fragment: u16, payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let header_size = 20 + options.len();
    let mut packet = vec![0x40 | (header_size / 4) as u8, 0];
    packet.extend_from_slice(&((header_size + payload.len()) as u16).to_be_bytes());
    packet.extend_from_slice(&0x1234u16.to_be_bytes()); // identification
    packet.extend_from_slice(&fragment.to_be_bytes());
    packet.extend_from_slice(&[64, protocol, 0, 0]); // ttl, protocol, checksum
    packet.extend_from_slice(&[198, 18, 10, 1]);
    packet.extend_from_slice(&[198, 18, 10, 2]);
    packet.extend_from_slice(options);
    let checksum = internet_checksum(&packet);
    packet[10..12].copy_from_slice(&checksum.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

/// An IPv6 packet (documentation-free addresses in the benchmarking range 2001:2::/48).
pub fn ipv6(next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x60, 0, 0, 0];
    packet.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    packet.extend_from_slice(&[next_header, 64]);
    packet.extend_from_slice(&[0x20, 0x01, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    packet.extend_from_slice(&[0x20, 0x01, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    packet.extend_from_slice(payload);
    packet
}

/// An ARP request for 198.18.10.2 from 198.18.10.1.
pub fn arp_request() -> Vec<u8> {
    let mut packet = vec![0, 1, 0x08, 0, 6, 4, 0, 1];
    packet.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 198, 18, 10, 1]);
    packet.extend_from_slice(&[0, 0, 0, 0, 0, 0, 198, 18, 10, 2]);
    packet
}

fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
