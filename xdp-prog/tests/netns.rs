//! The program attached to a veth in network namespaces, with real traffic, and stale or
//! foreign programs already on the interface. Needs root; skips with a printed reason
//! otherwise. Addresses are in 198.18.0.0/15 only; namespaces are deleted even on failure.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use libbpf_rs::{libbpf_sys, Xdp, XdpFlags};
use xdp_prog::{AttachMode, AttachedMode, LoadOptions, XdpError, XdpProgram};

const WAIT: Duration = Duration::from_secs(3);
const DATAGRAM_COUNT: u64 = 5;
/// The address of `vb`, the side the program is attached to.
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 2);

/// Two namespaces joined by a veth pair: `va` 198.18.10.1/24 in `a`, `vb` 198.18.10.2/24 in `b`.
fn veth_pair() -> (Netns, Netns) {
    let a = Netns::create("a").unwrap();
    let b = Netns::create("b").unwrap();
    a.ip(&[
        "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &b.name,
    ])
    .unwrap();
    a.ip(&["addr", "add", "198.18.10.1/24", "dev", "va"])
        .unwrap();
    b.ip(&["addr", "add", "198.18.10.2/24", "dev", "vb"])
        .unwrap();
    a.ip(&["link", "set", "va", "up"]).unwrap();
    b.ip(&["link", "set", "vb", "up"]).unwrap();
    (a, b)
}

/// One namespace with a veth pair `v0`/`v1` inside it, both up, no addresses.
fn lone_veth() -> Netns {
    let x = Netns::create("x").unwrap();
    x.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        .unwrap();
    x.ip(&["link", "set", "v0", "up"]).unwrap();
    x.ip(&["link", "set", "v1", "up"]).unwrap();
    x
}

/// The id of the XDP program attached to `ifindex` in the calling thread's namespace, 0 if none.
fn attached_prog_id(program: &XdpProgram) -> u32 {
    Xdp::new(program.program().prog_fd())
        .query_id(program.ifindex() as i32, XdpFlags::NONE)
        .unwrap()
}

#[test]
fn real_traffic_cluster_udp_is_steered_and_other_traffic_still_works() {
    let test = "real_traffic_cluster_udp_is_steered_and_other_traffic_still_works";
    if skip_without_netns(test) {
        return;
    }
    let (a, b) = veth_pair();
    let a_name = a.name.clone();
    let b_name = b.name.clone();
    b.run(move || {
        let program = XdpProgram::load("vb", &[CLUSTER_PORT], AttachMode::Auto).unwrap();
        println!("{test}: attached to vb in {} mode", program.mode());
        assert_eq!(
            program.mode(),
            AttachedMode::Native,
            "veth supports native XDP"
        );
        assert_eq!(
            attached_prog_id(&program),
            program.program().prog_id().unwrap()
        );
        let link = run_command(&["ip", "-n", &b_name, "link", "show", "vb"]).unwrap();
        assert!(link.contains("xdp"), "ip link shows the program: {link}");

        // Kernel sockets on both ports: with no AF_XDP socket in the xsks map, cluster
        // frames fall back to the kernel too.
        let cluster_socket = UdpSocket::bind("198.18.10.2:5405").unwrap();
        let other_socket = UdpSocket::bind(("198.18.10.2", OTHER_PORT)).unwrap();
        for socket in [&cluster_socket, &other_socket] {
            socket.set_read_timeout(Some(WAIT)).unwrap();
        }
        let sender = run_in(&a_name, || UdpSocket::bind("198.18.10.1:0").unwrap());

        // Resolves ARP before the datagrams, and shows ICMP still flows.
        icmp_echo(&a_name, PEER).unwrap();

        for i in 0..DATAGRAM_COUNT {
            let payload = format!("datagram {i}");
            sender
                .send_to(payload.as_bytes(), ("198.18.10.2", CLUSTER_PORT))
                .unwrap();
            sender
                .send_to(payload.as_bytes(), ("198.18.10.2", OTHER_PORT))
                .unwrap();
        }
        let mut buffer = [0u8; 128];
        for i in 0..DATAGRAM_COUNT {
            let expected = format!("datagram {i}");
            for (port, socket) in [(CLUSTER_PORT, &cluster_socket), (OTHER_PORT, &other_socket)] {
                let (size, from) = socket
                    .recv_from(&mut buffer)
                    .unwrap_or_else(|e| panic!("datagram {i} to port {port} not delivered: {e}"));
                assert_eq!(&buffer[..size], expected.as_bytes());
                assert_eq!(from, sender.local_addr().unwrap());
            }
        }
        let counters = program.counters().unwrap();
        println!("{test}: counters while attached: {counters:?}");
        assert_eq!(
            counters.no_socket, DATAGRAM_COUNT,
            "every cluster datagram counted"
        );
        assert_eq!(
            counters.redirected, 0,
            "no AF_XDP socket, nothing redirected"
        );
        assert_eq!(counters.not_parsed, 0);
        assert!(
            counters.passed >= DATAGRAM_COUNT,
            "other port, ARP, ICMP pass"
        );

        // TCP still works while attached.
        let listener = TcpListener::bind("198.18.10.2:0").unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let mut client = run_in(&a_name, move || {
            TcpStream::connect_timeout(&address, WAIT).unwrap()
        });
        // The connection is established, so accept does not wait.
        let (mut server, _) = listener.accept().unwrap();
        for stream in [&client, &server] {
            stream.set_read_timeout(Some(WAIT)).unwrap();
        }
        client.write_all(b"hello over tcp").unwrap();
        let mut received = [0u8; 14];
        server.read_exact(&mut received).unwrap();
        assert_eq!(&received, b"hello over tcp");
        server.write_all(b"ack").unwrap();
        let mut ack = [0u8; 3];
        client.read_exact(&mut ack).unwrap();
        assert_eq!(&ack, b"ack");

        program.detach().unwrap();
        let link = run_command(&["ip", "-n", &b_name, "link", "show", "vb"]).unwrap();
        assert!(!link.contains("xdp"), "detached: {link}");
        icmp_echo(&a_name, PEER).unwrap();
        sender
            .send_to(b"after detach", ("198.18.10.2", CLUSTER_PORT))
            .unwrap();
        let (size, _) = cluster_socket.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..size], b"after detach");
    });
    drop((a, b));
}

#[test]
fn stale_program_left_by_a_crashed_run_is_replaced() {
    let test = "stale_program_left_by_a_crashed_run_is_replaced";
    if skip_without_netns(test) {
        return;
    }
    let x = lone_veth();
    x.run(move || {
        // A run that "crashes": its program stays attached (generic mode), nobody detaches it.
        let crashed = XdpProgram::load("v0", &[CLUSTER_PORT], AttachMode::Generic).unwrap();
        assert_eq!(crashed.mode(), AttachedMode::Generic);
        let stale_id = crashed.program().prog_id().unwrap();
        assert_eq!(attached_prog_id(&crashed), stale_id);
        std::mem::forget(crashed);

        let program = XdpProgram::load("v0", &[CLUSTER_PORT], AttachMode::Auto).unwrap();
        println!(
            "{test}: replaced program {:?} (stale {stale_id}), now {} mode",
            program.replaced_prog_id(),
            program.mode()
        );
        assert_eq!(program.replaced_prog_id(), Some(stale_id));
        // The stale generic-mode program is gone, so native mode is possible again.
        assert_eq!(program.mode(), AttachedMode::Native);
        assert_eq!(
            attached_prog_id(&program),
            program.program().prog_id().unwrap()
        );

        let ifindex = program.ifindex();
        let probe = program.program().prog_fd().try_clone_to_owned().unwrap();
        program.detach().unwrap();
        let left = Xdp::new(probe.as_fd())
            .query_id(ifindex as i32, XdpFlags::NONE)
            .unwrap();
        assert_eq!(left, 0, "nothing attached after detach");
    });
}

#[test]
fn second_load_replaces_the_first_and_dropping_the_first_leaves_it_attached() {
    let test = "second_load_replaces_the_first_and_dropping_the_first_leaves_it_attached";
    if skip_without_netns(test) {
        return;
    }
    let x = lone_veth();
    x.run(move || {
        let first = XdpProgram::load("v0", &[CLUSTER_PORT], AttachMode::Auto).unwrap();
        let second = XdpProgram::load("v0", &[CLUSTER_PORT], AttachMode::Auto).unwrap();
        let second_id = second.program().prog_id().unwrap();
        assert_eq!(
            second.replaced_prog_id(),
            Some(first.program().prog_id().unwrap())
        );
        drop(first);
        assert_eq!(
            attached_prog_id(&second),
            second_id,
            "the first did not detach the second"
        );
        let ifindex = second.ifindex();
        let probe = second.program().prog_fd().try_clone_to_owned().unwrap();
        drop(second);
        let left = Xdp::new(probe.as_fd())
            .query_id(ifindex as i32, XdpFlags::NONE)
            .unwrap();
        assert_eq!(left, 0, "dropping detaches");
        println!("{test}: ok");
    });
}

/// Loads a two-instruction XDP program (`return XDP_PASS`) named `foreign_pass`.
fn foreign_program() -> OwnedFd {
    // mov64 r0, 2 (XDP_PASS); exit
    #[repr(C, align(8))]
    struct Instructions([u8; 16]);
    let instructions = Instructions([0xb7, 0, 0, 0, 2, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]);
    // Safety: the name and licence are NUL-terminated literals; `instructions` holds two
    // 8-byte, 8-aligned struct bpf_insn and outlives the call; NULL opts are allowed.
    let fd = unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            c"foreign_pass".as_ptr(),
            c"GPL".as_ptr(),
            instructions.0.as_ptr().cast(),
            2,
            std::ptr::null_mut(),
        )
    };
    assert!(fd >= 0, "loading the foreign program: errno {}", -fd);
    // Safety: bpf_prog_load returned a new fd that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[test]
fn foreign_program_is_refused_unless_replacing_it_is_asked() {
    let test = "foreign_program_is_refused_unless_replacing_it_is_asked";
    if skip_without_netns(test) {
        return;
    }
    let x = lone_veth();
    x.run(move || {
        let foreign = foreign_program();
        // Safety: a NUL-terminated literal; this thread is in the namespace of v0.
        let ifindex = unsafe { libc::if_nametoindex(c"v0".as_ptr()) } as i32;
        assert!(ifindex > 0, "v0 exists in this namespace");
        Xdp::new(foreign.as_fd())
            .attach(ifindex, XdpFlags::SKB_MODE)
            .unwrap();
        let foreign_id = libbpf_rs::Program::id_from_fd(foreign.as_fd()).unwrap();

        match XdpProgram::load("v0", &[CLUSTER_PORT], AttachMode::Auto) {
            Err(XdpError::ForeignProgram { id, name, .. }) => {
                assert_eq!(id, foreign_id);
                assert_eq!(name, "foreign_pass");
                println!(
                    "{test}: refused as expected: {}",
                    XdpError::ForeignProgram {
                        interface: "v0".into(),
                        id,
                        name
                    }
                );
            }
            other => panic!("expected ForeignProgram, got {other:?}"),
        }
        let still = Xdp::new(foreign.as_fd())
            .query_id(ifindex, XdpFlags::NONE)
            .unwrap();
        assert_eq!(still, foreign_id, "the foreign program is left alone");

        let program = XdpProgram::load_with(
            "v0",
            &[CLUSTER_PORT],
            AttachMode::Auto,
            LoadOptions {
                replace_foreign: true,
            },
        )
        .unwrap();
        assert_eq!(program.replaced_prog_id(), Some(foreign_id));
        assert_eq!(
            attached_prog_id(&program),
            program.program().prog_id().unwrap()
        );
        program.detach().unwrap();
        let left = Xdp::new(foreign.as_fd())
            .query_id(ifindex, XdpFlags::NONE)
            .unwrap();
        assert_eq!(left, 0);
    });
}
