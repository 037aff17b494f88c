//! The AF_XDP transport with frames larger than one UMEM frame (multi-buffer), on two testbed
//! hosts whose links are at MTU 9000 (testbed prefix `xj-`): host 1's transport, opened for
//! 9014-byte frames, receives jumbo UDP datagrams from host 2's kernel socket byte for byte as
//! chains of descriptors (and small ones on the same socket in place), and sends jumbo
//! datagrams that host 2's kernel accepts (its UDP checksum check passes, so every byte of the
//! chain is where it belongs); the interface's MTU bounds `datagram_size_max`, and at MTU
//! 65535 the 17 UMEM frames a chain may take bound it instead. Needs root and XDP; without
//! either it prints "skipped: …" and why.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rotor_dataplane::transport::frame::ETH_HEADER_LEN;
use rotor_dataplane::transport::xsk::{XskConfig, XskTransport};
use rotor_dataplane::transport::Transport;
use rotor_testbed::{in_netns, ipv4, root_or_skip, Testbed};

const PORT: u16 = 5405;
const MTU: u32 = 9000;
/// The largest UDP payload of an IPv4 packet at `MTU`.
const DATAGRAM_MAX: usize = MTU as usize - 28;
/// Bound on every wait: generous, the machine is loaded.
const WAIT: Duration = Duration::from_secs(20);

/// `n` bytes that differ from position to position and from datagram to datagram.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn jumbo_datagrams_cross_af_xdp_as_chains_both_ways() {
    if !root_or_skip("network namespaces and XDP for jumbo frames over AF_XDP") {
        return;
    }
    let bed = Testbed::up("xj-", 2).expect("testbed");
    bed.set_mtu(MTU).unwrap();
    let local = SocketAddr::new(ipv4(1).into(), PORT);
    let peer_addr = SocketAddr::new(ipv4(2).into(), PORT);
    // Host 2's kernel socket keeps its namespace when used from host 1's thread.
    let peer = in_netns(&bed.host(2), move || UdpSocket::bind(peer_addr)).expect("bind host 2");
    peer.set_read_timeout(Some(WAIT)).unwrap();

    let result = in_netns(&bed.host(1), move || -> Result<(), String> {
        let mut cfg = XskConfig::new("eth0", local);
        cfg.frame_bytes_max = MTU as usize + ETH_HEADER_LEN;
        let mut x = match XskTransport::open(&cfg) {
            Ok(x) => x,
            Err(e) => return Err(format!("skip: AF_XDP on veth: {e}")),
        };
        assert_eq!(
            x.datagram_size_max(),
            DATAGRAM_MAX,
            "{}",
            x.datagram_limit()
        );
        assert!(
            x.describe()
                .contains("multi-buffer (up to 3 UMEM frames a frame)"),
            "{}",
            x.describe()
        );

        // RX: two jumbo datagrams around a small one, in order, byte for byte.
        let sent = [pattern(DATAGRAM_MAX, 1), pattern(100, 2), pattern(5000, 3)];
        for d in &sent {
            peer.send_to(d, local).map_err(|e| e.to_string())?;
        }
        let mut got: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + WAIT;
        while got.len() < sent.len() {
            if Instant::now() > deadline {
                return Err(format!(
                    "received {} of {} datagrams: {:?}",
                    got.len(),
                    sent.len(),
                    x.counters()
                ));
            }
            x.recv_batch(&mut |payload, from| {
                assert_eq!(from, peer_addr);
                got.push(payload.to_vec());
            })
            .map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(got == sent, "received datagrams differ from those sent");
        assert_eq!(x.counters().dropped("chain_malformed"), 0);

        // TX: a jumbo datagram, retried while the neighbour entry resolves.
        let big = pattern(DATAGRAM_MAX, 4);
        let deadline = Instant::now() + WAIT;
        while !x.send_to(&big, peer_addr).map_err(|e| e.to_string())? {
            if Instant::now() > deadline {
                return Err(format!("never sent: {:?}", x.counters()));
            }
            x.flush().map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_millis(10));
        }
        x.flush().map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65_536];
        let (n, from) = peer.recv_from(&mut buf).map_err(|e| e.to_string())?;
        assert_eq!(from, local);
        assert!(buf[..n] == big[..], "host 2 received {n} bytes that differ");
        // A datagram larger than the MTU allows is refused, never sent in part.
        assert!(!x
            .send_to(&pattern(DATAGRAM_MAX + 1, 5), peer_addr)
            .map_err(|e| e.to_string())?);
        assert_eq!(x.counters().dropped("frame_too_large"), 1);
        drop(x);

        // At the largest MTU the UMEM chain is the bound: 17 frames of 3840 bytes.
        let out = std::process::Command::new("ip")
            .args(["link", "set", "eth0", "mtu", "65535"])
            .output()
            .map_err(|e| e.to_string())?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cfg.frame_bytes_max = 65_535 + ETH_HEADER_LEN;
        let x = XskTransport::open(&cfg).map_err(|e| e.to_string())?;
        assert_eq!(x.datagram_size_max(), 17 * 3840 - 42);
        assert_eq!(
            x.datagram_limit(),
            "its sockets take at most 17 UMEM frame(s) of 3840 bytes per frame"
        );
        Ok(())
    });
    match result {
        Err(e) if e.starts_with("skip: ") => {
            eprintln!("skipped: {}", &e["skip: ".len()..]);
        }
        r => r.unwrap(),
    }
}
