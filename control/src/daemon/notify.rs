//! systemd's readiness notification (sd_notify), without libsystemd.

use crate::log_at;

/// Tells systemd we are ready, when started as a notify service ($NOTIFY_SOCKET).
pub fn sd_notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    use std::os::unix::net::UnixDatagram;
    let path = path.to_string_lossy().into_owned();
    let sock = match UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let sent = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| sock.send_to_addr(b"READY=1", &a))
    } else {
        sock.send_to(b"READY=1", &path)
    };
    match sent {
        Ok(_) => log_at!(Notice, "MAIN", "notified systemd: READY=1"),
        Err(e) => log_at!(Warning, "MAIN", "sd_notify to {path}: {e}"),
    }
}
