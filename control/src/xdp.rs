//! rotord's XDP program. When the node's transport is XDP (`transport: xdp`, or corosync's
//! `knet`/auto when rotord is root and the interface holding the bind address accepts the
//! program), rotord loads and attaches xdp-prog once at start, before it drops privileges,
//! with the cluster port in its `ports` map; keeps it attached across dataplane restarts (frames
//! of the cluster port pass to the kernel while no AF_XDP socket is in `xsks`, and every other
//! frame passes all along); hands each dataplane the `xsks` and `counters` maps beside its
//! start message (SCM_RIGHTS); and detaches it on its own clean shutdown. A program left by a rotord that was
//! killed is recognised by its name and replaced at the next start.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use rotor_proto::control::DataplaneTransport;

use xdp_prog::{AttachMode, XdpProgram};

use crate::config::TransportSetting;
use crate::log_at;

/// The program rotord attached, whose maps it hands to every dataplane.
pub struct OwnedProgram {
    program: XdpProgram,
    /// Whether the config asked for XDP (`xdp`) rather than letting rotord choose (`knet`).
    asked_for: bool,
}

impl OwnedProgram {
    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        self.program.interface_name()
    }

    /// The kernel's id of the program (as `bpftool prog` and `ip -d link` show it).
    pub fn prog_id(&self) -> Option<u32> {
        self.program.program().prog_id().ok()
    }

    /// The program's `xsks` and `counters` map fds, sent beside each dataplane's start message.
    pub fn map_fds(&self) -> (RawFd, RawFd) {
        let maps = self.program.maps();
        (maps.xsks_fd().as_raw_fd(), maps.counters_fd().as_raw_fd())
    }

    /// The dataplane's transport: XDP when the config asked for it; XDP or UDP when rotord
    /// chose XDP, so that a dataplane whose AF_XDP sockets cannot open on the interface still
    /// runs over kernel UDP (the program then passes cluster frames to the kernel, as it does
    /// whenever `xsks` is empty).
    pub fn dataplane_transport(&self) -> DataplaneTransport {
        if self.asked_for {
            DataplaneTransport::Xdp
        } else {
            DataplaneTransport::XdpOrUdp
        }
    }

    /// Detaches the program (on rotord's clean shutdown), logging the outcome.
    pub fn detach(self) {
        let interface = self.interface().to_owned();
        match self.program.detach() {
            Ok(()) => log_at!(
                Notice,
                "MAIN",
                "XDP program {} detached from {interface}",
                xdp_prog::PROGRAM_NAME
            ),
            Err(e) => log_at!(
                Error,
                "MAIN",
                "detaching the XDP program from {interface}: {e}"
            ),
        }
    }
}

/// What rotord runs the dataplane on.
pub enum Choice {
    /// AF_XDP on the program rotord attached.
    Xdp(OwnedProgram),
    /// Kernel UDP, and why (for the log).
    Udp(String),
}

/// Decides the transport and, for XDP, loads and attaches the program on the interface that
/// holds `bind`'s address with `bind`'s port as the cluster port. `transport: xdp` that cannot
/// be had is an error (rotord does not start); `knet` falls back to UDP with the reason.
/// Logs the choice and a replaced stale program. Acts on the calling thread's network
/// namespace; needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON) for XDP.
pub fn choose(transport: TransportSetting, bind: SocketAddr) -> Result<Choice, String> {
    let asked_for = match transport {
        TransportSetting::Udp | TransportSetting::Udpu => {
            return Ok(logged(Choice::Udp("transport udp: asked for".into())));
        }
        TransportSetting::Xdp => true,
        TransportSetting::Knet => false,
    };
    let attached = attach(bind, asked_for);
    match (attached, asked_for) {
        (Ok(owned), _) => Ok(logged(Choice::Xdp(owned))),
        (Err(e), true) => Err(format!("transport xdp: {e}")),
        (Err(e), false) => Ok(logged(Choice::Udp(format!("transport udp: auto: {e}")))),
    }
}

fn logged(choice: Choice) -> Choice {
    match &choice {
        Choice::Udp(why) => log_at!(Notice, "MAIN", "{why}"),
        Choice::Xdp(p) => log_at!(
            Notice,
            "MAIN",
            "transport xdp ({}): XDP program {} (id {}) attached to {} in {} mode, cluster \
             port {}; kept across dataplane restarts",
            if p.asked_for {
                "asked for".to_owned()
            } else {
                format!(
                    "auto: running as root and {} took the program",
                    p.interface()
                )
            },
            xdp_prog::PROGRAM_NAME,
            p.prog_id().map_or("?".into(), |id| id.to_string()),
            p.interface(),
            p.program.mode(),
            p.program
                .program()
                .ports()
                .map(|ports| ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","))
                .unwrap_or_else(|e| format!("unreadable ({e})"))
        ),
    }
    choice
}

fn attach(bind: SocketAddr, asked_for: bool) -> Result<OwnedProgram, String> {
    // Safety: geteuid has no preconditions.
    if !asked_for && unsafe { libc::geteuid() } != 0 {
        return Err("not running as root, so no XDP".into());
    }
    let interface = interface_holding(bind.ip())
        .ok_or_else(|| format!("no interface holds the address {}", bind.ip()))?;
    if interface == "lo" {
        return Err("the address is on loopback, where XDP brings nothing".into());
    }
    let program = XdpProgram::load(interface.as_str(), &[bind.port()], AttachMode::Auto)
        .map_err(|e| format!("XDP unavailable on {interface} ({e})"))?;
    if let Some(id) = program.replaced_prog_id() {
        log_at!(
            Warning,
            "MAIN",
            "replaced a stale {} XDP program (id {id}) on {interface}, left by an earlier run",
            xdp_prog::PROGRAM_NAME
        );
    }
    Ok(OwnedProgram { program, asked_for })
}

/// The name of the interface that holds `ip`, from getifaddrs.
pub fn interface_holding(ip: IpAddr) -> Option<String> {
    crate::discovery::local_interfaces()
        .into_iter()
        .find(|(_, a)| *a == ip)
        .map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_is_chosen_without_touching_xdp() {
        let bind: SocketAddr = "127.0.0.1:5405".parse().unwrap();
        for t in [TransportSetting::Udp, TransportSetting::Udpu] {
            match choose(t, bind).unwrap() {
                Choice::Udp(why) => assert_eq!(why, "transport udp: asked for"),
                Choice::Xdp(_) => panic!("udp config gave XDP"),
            }
        }
    }

    #[test]
    fn auto_on_loopback_is_udp_with_the_reason() {
        let bind: SocketAddr = "127.0.0.1:5405".parse().unwrap();
        match choose(TransportSetting::Knet, bind).unwrap() {
            Choice::Udp(why) => assert!(
                why.contains("loopback") || why.contains("not running as root"),
                "{why}"
            ),
            Choice::Xdp(_) => panic!("XDP on loopback"),
        }
        assert!(choose(TransportSetting::Xdp, bind)
            .err()
            .is_some_and(|e| e.starts_with("transport xdp: ")));
    }

    #[test]
    fn loopback_is_found_by_its_address() {
        assert_eq!(
            interface_holding(IpAddr::from([127, 0, 0, 1])).as_deref(),
            Some("lo")
        );
        assert_eq!(interface_holding(IpAddr::from([192, 0, 2, 254])), None);
    }
}
