//! Sleeping until the transport or another descriptor (client rings' eventfds, the control
//! socket) is readable, and epoll sets that let one descriptor stand for several sockets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

/// An epoll set of `fds`, readable when any of them is: the one `wait_fd` of a provider with
/// several sockets.
pub fn epoll_of(fds: &[RawFd]) -> io::Result<OwnedFd> {
    // SAFETY: plain epoll_create1 call; the result is checked.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(fd) };
    for (i, &member) in fds.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: both descriptors are open and `ev` is a valid epoll_event.
        if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, member, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(ep)
}
