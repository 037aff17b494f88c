//! Sleeping until the transport or another descriptor (client rings' eventfds, the control
//! socket) is readable.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Waits until `first` or any of `others` is readable (or hung up), or `timeout` passes; true
/// when something is ready. EINTR counts as "nothing ready".
pub fn wait_readable(first: RawFd, others: &[RawFd], timeout: Duration) -> io::Result<bool> {
    let mut fds: Vec<libc::pollfd> = std::iter::once(first)
        .chain(others.iter().copied())
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Round up so a 0.4 ms timer does not turn into a busy loop of zero-length polls.
    let ms = i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}
