//! The XDP program run by the kernel on crafted frames (BPF_PROG_TEST_RUN): its verdict and
//! its counters. Needs root; skips with a printed reason otherwise.

mod common;

use common::*;
use std::net::IpAddr;

use xdp_prog::{Source, SteerProgram, UnknownSource, XdpAction, XdpCounters};

/// Loads the program with the cluster port, or None (after printing why) when BPF is unavailable.
fn load(test: &str) -> Option<SteerProgram> {
    if skip_without_bpf(test) {
        return None;
    }
    Some(SteerProgram::load(&[CLUSTER_PORT]).expect("BPF works here, so the program must load"))
}

/// Runs `frame` once and returns the verdict and the counters' change.
fn run(program: &SteerProgram, frame: &[u8]) -> (XdpAction, XdpCounters) {
    let before = program.counters().unwrap();
    let action = program.test_run(frame).unwrap();
    let after = program.counters().unwrap();
    let delta = XdpCounters {
        redirected: after.redirected - before.redirected,
        passed: after.passed - before.passed,
        not_parsed: after.not_parsed - before.not_parsed,
        no_socket: after.no_socket - before.no_socket,
        unknown_source_passed: after.unknown_source_passed - before.unknown_source_passed,
        unknown_source_dropped: after.unknown_source_dropped - before.unknown_source_dropped,
    };
    (action, delta)
}

const NONE: XdpCounters = XdpCounters {
    redirected: 0,
    passed: 0,
    not_parsed: 0,
    no_socket: 0,
    unknown_source_passed: 0,
    unknown_source_dropped: 0,
};
const CLUSTER: XdpCounters = XdpCounters {
    no_socket: 1,
    ..NONE
};
const PASSED: XdpCounters = XdpCounters { passed: 1, ..NONE };
const NOT_PARSED: XdpCounters = XdpCounters {
    not_parsed: 1,
    ..NONE
};
const UNKNOWN_PASSED: XdpCounters = XdpCounters {
    unknown_source_passed: 1,
    ..NONE
};
const UNKNOWN_DROPPED: XdpCounters = XdpCounters {
    unknown_source_dropped: 1,
    ..NONE
};

/// The source addresses of the frame builders (`ipv4`, `ipv6`).
fn frame_source_v4() -> IpAddr {
    IpAddr::from([198, 18, 10, 1])
}
fn frame_source_v6() -> IpAddr {
    "2001:2::1".parse().unwrap()
}

fn source(addr: IpAddr, node_id: u32, link: u8) -> Source {
    Source {
        addr,
        node_id,
        link,
    }
}

/// The source port of the frame builders' datagrams unless a test names another.
const CLIENT_PORT: u16 = 40000;

/// UDP over IPv4 (no options) in an Ethernet frame, behind a VLAN tag when `vlan` is given.
fn udp_v4_frame(
    vlan: Option<u16>,
    source_port: u16,
    destination_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    ethernet(
        ETH_P_IP,
        vlan,
        &ipv4(
            IPPROTO_UDP,
            &[],
            0,
            &udp(source_port, destination_port, payload),
        ),
    )
}

/// UDP over IPv6 (no extension headers) in an Ethernet frame, behind a VLAN tag when `vlan` is
/// given.
fn udp_v6_frame(
    vlan: Option<u16>,
    source_port: u16,
    destination_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    ethernet(
        ETH_P_IPV6,
        vlan,
        &ipv6(IPPROTO_UDP, &udp(source_port, destination_port, payload)),
    )
}

/// Cluster UDP over IPv4 with the IPv4 flags-and-fragment-offset field set to `fragment`.
fn cluster_ipv4_fragment(fragment: u16, payload: &[u8]) -> Vec<u8> {
    ethernet(
        ETH_P_IP,
        None,
        &ipv4(
            IPPROTO_UDP,
            &[],
            fragment,
            &udp(CLIENT_PORT, CLUSTER_PORT, payload),
        ),
    )
}

fn cluster_ipv4_frame() -> Vec<u8> {
    udp_v4_frame(None, CLIENT_PORT, CLUSTER_PORT, b"rotor")
}

fn cluster_ipv6_frame() -> Vec<u8> {
    udp_v6_frame(None, CLIENT_PORT, CLUSTER_PORT, b"rotor")
}

// With no AF_XDP socket in the xsks map, a cluster frame falls back to XDP_PASS and counts as
// no_socket: that is the cluster branch (a socket would make it XDP_REDIRECT).

#[test]
fn cluster_udp_over_ipv4_is_cluster_traffic() {
    let Some(program) = load("cluster_udp_over_ipv4_is_cluster_traffic") else {
        return;
    };
    assert_eq!(
        run(&program, &cluster_ipv4_frame()),
        (XdpAction::Pass, CLUSTER)
    );
}

#[test]
fn cluster_udp_over_ipv4_with_options_is_cluster_traffic() {
    let Some(program) = load("cluster_udp_over_ipv4_with_options_is_cluster_traffic") else {
        return;
    };
    // Two NOPs, then router alert (4 bytes) and an end-of-options padding word: IHL 7.
    let options = [1, 1, 0x94, 0x04, 0, 0, 0, 0];
    let frame = ethernet(
        ETH_P_IP,
        None,
        &ipv4(
            IPPROTO_UDP,
            &options[..8],
            0,
            &udp(CLIENT_PORT, CLUSTER_PORT, b"x"),
        ),
    );
    assert_eq!(run(&program, &frame), (XdpAction::Pass, CLUSTER));
}

#[test]
fn cluster_udp_over_ipv6_is_cluster_traffic() {
    let Some(program) = load("cluster_udp_over_ipv6_is_cluster_traffic") else {
        return;
    };
    assert_eq!(
        run(&program, &cluster_ipv6_frame()),
        (XdpAction::Pass, CLUSTER)
    );
}

#[test]
fn cluster_udp_behind_a_vlan_tag_is_cluster_traffic() {
    let Some(program) = load("cluster_udp_behind_a_vlan_tag_is_cluster_traffic") else {
        return;
    };
    let frame = udp_v4_frame(Some(42), CLIENT_PORT, CLUSTER_PORT, b"rotor");
    assert_eq!(run(&program, &frame), (XdpAction::Pass, CLUSTER));
    let frame = udp_v6_frame(Some(42), CLIENT_PORT, CLUSTER_PORT, b"rotor");
    assert_eq!(run(&program, &frame), (XdpAction::Pass, CLUSTER));
}

#[test]
fn other_udp_port_passes() {
    let Some(program) = load("other_udp_port_passes") else {
        return;
    };
    let frame = udp_v4_frame(None, CLUSTER_PORT, OTHER_PORT, b"dns?");
    assert_eq!(run(&program, &frame), (XdpAction::Pass, PASSED));
    let frame = udp_v6_frame(None, CLUSTER_PORT, OTHER_PORT, b"dns?");
    assert_eq!(run(&program, &frame), (XdpAction::Pass, PASSED));
}

#[test]
fn tcp_passes() {
    let Some(program) = load("tcp_passes") else {
        return;
    };
    let frame = ethernet(
        ETH_P_IP,
        None,
        &ipv4(IPPROTO_TCP, &[], 0, &tcp(CLIENT_PORT, CLUSTER_PORT)),
    );
    assert_eq!(run(&program, &frame), (XdpAction::Pass, PASSED));
    let frame = ethernet(
        ETH_P_IPV6,
        None,
        &ipv6(IPPROTO_TCP, &tcp(CLIENT_PORT, CLUSTER_PORT)),
    );
    assert_eq!(run(&program, &frame), (XdpAction::Pass, PASSED));
}

#[test]
fn arp_passes() {
    let Some(program) = load("arp_passes") else {
        return;
    };
    let frame = ethernet(ETH_P_ARP, None, &arp_request());
    assert_eq!(run(&program, &frame), (XdpAction::Pass, PASSED));
}

#[test]
fn ipv6_extension_headers_pass_to_the_kernel() {
    let Some(program) = load("ipv6_extension_headers_pass_to_the_kernel") else {
        return;
    };
    // A routing header (8 bytes) in front of cluster UDP: left to the kernel.
    let mut payload = vec![IPPROTO_UDP, 0, 0, 0, 0, 0, 0, 0];
    payload.extend_from_slice(&udp(CLIENT_PORT, CLUSTER_PORT, b"rotor"));
    let frame = ethernet(ETH_P_IPV6, None, &ipv6(IPPROTO_IPV6_ROUTING, &payload));
    assert_eq!(run(&program, &frame), (XdpAction::Pass, PASSED));
}

#[test]
fn ipv4_fragments_pass_to_the_kernel() {
    let Some(program) = load("ipv4_fragments_pass_to_the_kernel") else {
        return;
    };
    // A non-first fragment (offset 185 × 8 bytes): its "UDP header" is payload bytes.
    let frame = cluster_ipv4_fragment(185, b"tail");
    assert_eq!(run(&program, &frame), (XdpAction::Pass, PASSED));
    // The first fragment (more-fragments bit): the kernel reassembles the whole datagram.
    let frame = cluster_ipv4_fragment(0x2000, b"head");
    assert_eq!(run(&program, &frame), (XdpAction::Pass, PASSED));
    // Don't-fragment alone is not a fragment.
    let frame = cluster_ipv4_fragment(0x4000, b"whole");
    assert_eq!(run(&program, &frame), (XdpAction::Pass, CLUSTER));
}

#[test]
fn truncated_and_malformed_headers_pass_and_count_not_parsed() {
    let Some(program) = load("truncated_and_malformed_headers_pass_and_count_not_parsed") else {
        return;
    };
    // The kernel's test run refuses frames shorter than an Ethernet header (14 bytes), so the
    // shortest case is a VLAN tag cut off after the Ethernet header.
    let full_ipv4 = cluster_ipv4_frame();
    let full_ipv6 = cluster_ipv6_frame();
    let vlan = udp_v4_frame(Some(7), CLIENT_PORT, CLUSTER_PORT, b"rotor");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("VLAN tag cut short", vlan[..15].to_vec()),
        ("IPv4 header cut short", full_ipv4[..14 + 19].to_vec()),
        (
            "IPv4 header cut short behind a VLAN tag",
            vlan[..18 + 10].to_vec(),
        ),
        (
            "UDP header cut short (IPv4)",
            full_ipv4[..14 + 20 + 7].to_vec(),
        ),
        ("IPv6 header cut short", full_ipv6[..14 + 39].to_vec()),
        (
            "UDP header cut short (IPv6)",
            full_ipv6[..14 + 40 + 4].to_vec(),
        ),
        ("IPv4 version field not 4", {
            let mut frame = full_ipv4.clone();
            frame[14] = 0x55;
            frame
        }),
        ("IPv4 IHL below 5", {
            let mut frame = full_ipv4.clone();
            frame[14] = 0x44;
            frame
        }),
        ("IPv4 options longer than the frame", {
            let mut frame = full_ipv4.clone();
            frame[14] = 0x4f; // 60-byte header: the UDP header would start past the end
            frame
        }),
        ("IPv6 version field not 6", {
            let mut frame = full_ipv6.clone();
            frame[14] = 0x40;
            frame
        }),
    ];
    for (case, frame) in cases {
        assert_eq!(
            run(&program, &frame),
            (XdpAction::Pass, NOT_PARSED),
            "case: {case}"
        );
    }
    // The frames above were not changed by the program (it never writes).
    assert_eq!(program.counters().unwrap().redirected, 0);
}

#[test]
fn set_ports_changes_what_is_cluster_traffic() {
    let Some(program) = load("set_ports_changes_what_is_cluster_traffic") else {
        return;
    };
    let to_other = udp_v4_frame(None, CLIENT_PORT, OTHER_PORT, b"x");
    assert_eq!(run(&program, &to_other), (XdpAction::Pass, PASSED));
    program.set_ports(&[OTHER_PORT, 7000]).unwrap();
    assert_eq!(program.ports().unwrap(), vec![OTHER_PORT, 7000]);
    assert_eq!(run(&program, &to_other), (XdpAction::Pass, CLUSTER));
    assert_eq!(
        run(&program, &cluster_ipv4_frame()),
        (XdpAction::Pass, PASSED)
    );
    program.set_ports(&[]).unwrap();
    assert!(program.ports().unwrap().is_empty());
    assert_eq!(run(&program, &to_other), (XdpAction::Pass, PASSED));
    assert!(program.set_ports(&[0]).is_err());
    assert!(
        program.remove_xsk(3).is_ok(),
        "removing an empty slot is fine"
    );
    assert!(program.remove_xsk(xdp_prog::QUEUE_COUNT_MAX).is_err());
}

#[test]
fn inherited_map_fds_are_checked_and_share_the_program_maps() {
    use std::os::fd::OwnedFd;
    use xdp_prog::{SteerMaps, XdpError};
    let Some(program) = load("inherited_map_fds_are_checked_and_share_the_program_maps") else {
        return;
    };
    let dup = |fd: std::os::fd::BorrowedFd<'_>| -> OwnedFd { fd.try_clone_to_owned().unwrap() };
    let maps = program.maps();
    // What rotord hands to its dataplane: the same kernel maps through other descriptors.
    let inherited = SteerMaps::from_fds(dup(maps.xsks_fd()), dup(maps.counters_fd())).unwrap();
    let _ = run(&program, &cluster_ipv4_frame());
    assert_eq!(inherited.counters().unwrap(), program.counters().unwrap());
    assert!(inherited.counters().unwrap().no_socket >= 1);
    assert!(inherited.remove_xsk(0).is_ok(), "an empty slot");
    assert!(inherited.remove_xsk(xdp_prog::QUEUE_COUNT_MAX).is_err());
    // Swapped, or not a map at all: refused before any use.
    let swapped = SteerMaps::from_fds(dup(maps.counters_fd()), dup(maps.xsks_fd()));
    assert!(
        matches!(swapped, Err(XdpError::InheritedMap { map: "xsks", .. })),
        "{swapped:?}"
    );
    let null: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
    let not_a_map = SteerMaps::from_fds(dup(maps.xsks_fd()), null);
    match not_a_map {
        Err(
            e @ XdpError::InheritedMap {
                map: "counters", ..
            },
        ) => assert!(e.to_string().contains("not a BPF map"), "{e}"),
        other => panic!("{other:?}"),
    }
}

// The source filter: with no AF_XDP socket, a frame from a listed address takes the cluster
// branch (no_socket; it would be redirected with a socket), any other is refused as configured.

#[test]
fn source_filter_is_off_until_sources_are_set() {
    let Some(program) = load("source_filter_is_off_until_sources_are_set") else {
        return;
    };
    assert_eq!(program.unknown_source().unwrap(), None);
    assert!(program.sources().unwrap().is_empty());
    assert_eq!(
        run(&program, &cluster_ipv4_frame()),
        (XdpAction::Pass, CLUSTER)
    );
}

#[test]
fn listed_sources_are_cluster_traffic_and_others_pass_or_drop() {
    let Some(program) = load("listed_sources_are_cluster_traffic_and_others_pass_or_drop") else {
        return;
    };
    let other_v4 = IpAddr::from([198, 18, 10, 9]);
    let other_v6: IpAddr = "2001:2::9".parse().unwrap();
    // Only other addresses listed: both frames come from unknown sources.
    program
        .set_sources(
            &[source(other_v4, 2, 0), source(other_v6, 2, 1)],
            UnknownSource::Pass,
        )
        .unwrap();
    assert_eq!(program.unknown_source().unwrap(), Some(UnknownSource::Pass));
    assert_eq!(
        run(&program, &cluster_ipv4_frame()),
        (XdpAction::Pass, UNKNOWN_PASSED)
    );
    assert_eq!(
        run(&program, &cluster_ipv6_frame()),
        (XdpAction::Pass, UNKNOWN_PASSED)
    );
    // Traffic to other ports from unknown sources is not the filter's business.
    let to_other = udp_v4_frame(None, CLIENT_PORT, OTHER_PORT, b"x");
    assert_eq!(run(&program, &to_other), (XdpAction::Pass, PASSED));

    program
        .set_sources(
            &[source(other_v4, 2, 0), source(other_v6, 2, 1)],
            UnknownSource::Drop,
        )
        .unwrap();
    assert_eq!(
        run(&program, &cluster_ipv4_frame()),
        (XdpAction::Drop, UNKNOWN_DROPPED)
    );
    assert_eq!(
        run(&program, &cluster_ipv6_frame()),
        (XdpAction::Drop, UNKNOWN_DROPPED)
    );

    // The frames' sources added (as a reload adds a node): cluster traffic again; the
    // listing reads back with node and link, sorted.
    let all = [
        source(other_v4, 2, 0),
        source(frame_source_v4(), 1, 0),
        source(frame_source_v6(), 1, 1),
        source(other_v6, 2, 1),
    ];
    program.set_sources(&all, UnknownSource::Drop).unwrap();
    assert_eq!(
        run(&program, &cluster_ipv4_frame()),
        (XdpAction::Pass, CLUSTER)
    );
    assert_eq!(
        run(&program, &cluster_ipv6_frame()),
        (XdpAction::Pass, CLUSTER)
    );
    let mut sorted = all.to_vec();
    sorted.sort_unstable();
    assert_eq!(program.sources().unwrap(), sorted);

    // Removed again (as a reload removes it): refused again.
    program
        .set_sources(&[source(other_v4, 2, 0)], UnknownSource::Pass)
        .unwrap();
    assert_eq!(program.sources().unwrap(), vec![source(other_v4, 2, 0)]);
    assert_eq!(
        run(&program, &cluster_ipv4_frame()),
        (XdpAction::Pass, UNKNOWN_PASSED)
    );
}

#[test]
fn an_ipv6_frame_from_the_mapped_form_of_a_listed_ipv4_address_is_unknown() {
    let Some(program) =
        load("an_ipv6_frame_from_the_mapped_form_of_a_listed_ipv4_address_is_unknown")
    else {
        return;
    };
    // The IPv6 builder's source is 2001:2::1; list the IPv4 address whose "bytes" it ends in
    // and the mapped form of the IPv4 frames' source: neither makes the other family's match.
    program
        .set_sources(
            &[
                source(IpAddr::from([0, 0, 0, 1]), 1, 0),
                source(
                    IpAddr::V6(std::net::Ipv4Addr::new(198, 18, 10, 1).to_ipv6_mapped()),
                    1,
                    0,
                ),
            ],
            UnknownSource::Pass,
        )
        .unwrap();
    assert_eq!(
        run(&program, &cluster_ipv4_frame()),
        (XdpAction::Pass, UNKNOWN_PASSED)
    );
    assert_eq!(
        run(&program, &cluster_ipv6_frame()),
        (XdpAction::Pass, UNKNOWN_PASSED)
    );
}
