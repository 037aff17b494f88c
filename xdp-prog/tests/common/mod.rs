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

/// Prints the skip line on stderr directly: libtest captures `println!`/`eprintln!` of passing
/// tests, and a skip must show up in a plain `cargo test`.
pub fn say_skipped(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Prints why `test` skips and returns true when BPF is unavailable.
pub fn skip_without_bpf(test: &str) -> bool {
    match bpf_unavailable() {
        Some(reason) => {
            say_skipped(test, &reason);
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

/// A network namespace made with `ip netns add`, deleted (with its interfaces) on drop, so a
/// failing test still cleans up.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates the namespace `rxp-<pid>-<n>-<suffix>` (unique within and across test
    /// processes) with its loopback up.
    pub fn create(suffix: &str) -> Result<Netns, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("rxp-{}-{n}-{suffix}", std::process::id());
        // A leftover from an earlier run with the same pid would make `add` fail.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        run_command(&["ip", "netns", "add", &name])?;
        let netns = Netns { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// Runs `ip -n <name> args…`.
    pub fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut command = vec!["ip", "-n", &self.name];
        command.extend_from_slice(args);
        run_command(&command)
    }

    /// Runs `args` inside the namespace (`ip netns exec`).
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut command = vec!["ip", "netns", "exec", &self.name];
        command.extend_from_slice(args);
        run_command(&command)
    }

    /// Runs `f` on a new thread that has entered the namespace: sockets it creates belong to
    /// the namespace (and stay there when used from other threads), and the loader's netlink
    /// calls act on it.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        run_in(&self.name, f)
    }
}

/// [`Netns::run`] by namespace name, for code already running inside another namespace.
pub fn run_in<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    {
        let path = format!("/run/netns/{netns}");
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // Safety: the fd is open for the duration of the call; setns only changes this
            // thread's network namespace.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        });
        match thread.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(error) = run_command(&["ip", "netns", "del", &self.name]) {
            eprintln!("cleaning up network namespace {}: {error}", self.name);
        }
    }
}

/// Why namespace tests cannot run here (on top of [`bpf_unavailable`]), or None.
pub fn netns_unavailable() -> Option<String> {
    if let Some(reason) = bpf_unavailable() {
        return Some(reason);
    }
    match Netns::create("probe") {
        Ok(_netns) => None,
        Err(error) => Some(format!("cannot create a network namespace: {error}")),
    }
}

/// Prints why `test` skips and returns true when namespaces or BPF are unavailable.
pub fn skip_without_netns(test: &str) -> bool {
    match netns_unavailable() {
        Some(reason) => {
            say_skipped(test, &reason);
            true
        }
        None => false,
    }
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub fn run_command(args: &[&str]) -> Result<String, String> {
    let output = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Sends one ICMP echo request from inside `netns` to `to` and waits (bounded) for the reply,
/// over a raw socket, so the tests need no `ping` binary.
pub fn icmp_echo(netns: &str, to: std::net::Ipv4Addr) -> Result<(), String> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const ECHO_ID: u16 = 0x5254;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    run_in(netns, move || {
        // Safety: socket(2) with constant arguments; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        if raw < 0 {
            return Err(format!(
                "raw ICMP socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        // Safety: socket(2) returned a new fd that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // Safety: `timeout` is a valid timeval of the size passed, alive during the call.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        let mut request = vec![8, 0, 0, 0];
        request.extend_from_slice(&ECHO_ID.to_be_bytes());
        request.extend_from_slice(&1u16.to_be_bytes());
        request.extend_from_slice(b"rotor xdp-prog test");
        let checksum = internet_checksum(&request);
        request[2..4].copy_from_slice(&checksum.to_be_bytes());
        let destination = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(to.octets()),
            },
            sin_zero: [0; 8],
        };
        while std::time::Instant::now() < deadline {
            // Safety: `request` and `destination` are valid for the lengths passed.
            let sent = unsafe {
                libc::sendto(
                    socket.as_raw_fd(),
                    request.as_ptr().cast(),
                    request.len(),
                    0,
                    (&destination as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if sent < 0 {
                return Err(format!("sendto: {}", std::io::Error::last_os_error()));
            }
            let mut reply = [0u8; 1500];
            // Safety: `reply` is writable for its full length; recv times out (SO_RCVTIMEO).
            let size = unsafe {
                libc::recv(
                    socket.as_raw_fd(),
                    reply.as_mut_ptr().cast(),
                    reply.len(),
                    0,
                )
            };
            if size <= 0 {
                continue;
            }
            // The raw socket hands over the IPv4 header too; it also sees our own request.
            let reply = &reply[..size as usize];
            let header_size = usize::from(reply[0] & 0x0f) * 4;
            if reply.len() >= header_size + 8
                && reply[12..16] == to.octets()
                && reply[header_size] == 0
                && reply[header_size + 4..header_size + 6] == ECHO_ID.to_be_bytes()
            {
                return Ok(());
            }
        }
        Err(format!("no ICMP echo reply from {to} within 3 s"))
    })
}
