//! Sleeping until the transport or another descriptor (client rings' eventfds, the control
//! socket) is readable, and epoll sets that let one descriptor stand for several sockets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Waits until `first` or any of `others` is readable (or hung up), or `timeout` passes; true
/// when something is ready. EINTR counts as "nothing ready".
pub fn wait_readable(first: RawFd, others: &[RawFd], timeout: Duration) -> io::Result<bool> {
    let fds = std::iter::once(first).chain(others.iter().copied());
    PollSet::default().wait(fds, timeout)
}

/// The descriptors of one wait, kept with what the wait found, so a caller asks which of them
/// woke it instead of trying each (a failed read after a sleep costs about 2 µs here).
#[derive(Debug, Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    /// Waits until any of `fds` is readable (or hung up), or `timeout` passes; true when
    /// something is ready. EINTR counts as "nothing ready".
    pub fn wait(
        &mut self,
        fds: impl Iterator<Item = RawFd>,
        timeout: Duration,
    ) -> io::Result<bool> {
        self.fds.clear();
        self.fds.extend(fds.map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }));
        // Round up so a 0.4 ms timer does not turn into a busy loop of zero-length polls.
        let ms = i32::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
        let r = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            self.fds.clear();
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(e);
        }
        Ok(r > 0)
    }

    /// Forgets the last wait: nothing is ready.
    pub fn clear(&mut self) {
        self.fds.clear();
    }

    /// Whether the last wait found `fd` readable, hung up or in error.
    pub fn ready(&self, fd: RawFd) -> bool {
        self.fds
            .iter()
            .any(|p| p.fd == fd && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_poll_set_tells_which_descriptors_woke_it() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let (c, d) = UnixStream::pair().unwrap();
        let fds = [b.as_raw_fd(), d.as_raw_fd()];
        let mut set = PollSet::default();
        assert!(!set.wait(fds.iter().copied(), Duration::ZERO).unwrap());
        assert!(!set.ready(b.as_raw_fd()) && !set.ready(d.as_raw_fd()));
        a.write_all(b"x").unwrap();
        assert!(set
            .wait(fds.iter().copied(), Duration::from_secs(5))
            .unwrap());
        assert!(set.ready(b.as_raw_fd()));
        assert!(!set.ready(d.as_raw_fd()));
        // A peer gone reads as ready too (the reader then sees the end).
        drop(c);
        assert!(set
            .wait(fds.iter().copied(), Duration::from_secs(5))
            .unwrap());
        assert!(set.ready(d.as_raw_fd()));
        set.clear();
        assert!(!set.ready(b.as_raw_fd()), "a cleared set saw nothing");
        assert!(!set.ready(a.as_raw_fd()), "a descriptor it did not wait on");
    }
}
