//! Thin wrappers over the Linux calls this crate needs: memfd with seals, mmap, eventfd, poll,
//! abstract Unix sockets, SCM_RIGHTS and SO_PEERCRED. Each returns `io::Result` and owns its fds.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Seals every ring memfd carries: its size can never change again, so a peer holding the fd
/// cannot shrink it under our mapping (which would turn our next access into SIGBUS).
pub const RING_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// Creates a sealed memfd of exactly `size` bytes.
pub fn memfd_sealed(name: &CStr, size: usize) -> io::Result<OwnedFd> {
    // Safety: `name` is a valid NUL-terminated string; the flags are valid for memfd_create.
    let fd = cvt(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // Safety: memfd_create returned a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len =
        libc::off_t::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Safety: plain syscalls on an fd we own.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
    // Safety: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, RING_SEALS) })?;
    Ok(fd)
}

/// The size and the seals of a memfd received from another process.
pub fn memfd_size_and_seals(fd: RawFd) -> io::Result<(u64, libc::c_int)> {
    // Safety: an all-zero `stat` is a valid value; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // Safety: `st` is a valid, writable stat buffer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    // Safety: F_GET_SEALS takes no argument.
    let seals = cvt(unsafe { libc::fcntl(fd, libc::F_GET_SEALS) })?;
    Ok((st.st_size as u64, seals))
}

/// A shared read-write mapping of a whole memfd, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// Safety: the mapping is plain shared memory; all concurrent access goes through atomics or
// through the ring's copy-out protocol.
unsafe impl Send for Mapping {}
// Safety: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` shared and read-write.
    pub fn map(fd: RawFd, len: usize) -> io::Result<Mapping> {
        // Safety: a fresh mapping chosen by the kernel; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// Start of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Size of the mapping in bytes.
    pub fn size(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Safety: `ptr`/`len` are exactly what mmap returned, and nothing borrows the mapping
        // beyond the owner's lifetime.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A non-blocking, close-on-exec eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // Safety: plain syscall.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // Safety: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A client's wake pair: a non-blocking, close-on-exec `AF_UNIX` datagram socket pair,
/// `(poll end, signal end)`. Whoever signals sends on the signal end; the client polls and
/// drains the poll end. Unlike an eventfd, the poll end is a socket whose `SO_PEERCRED` names
/// the process that created the pair (the server): applications that check who serves them
/// before they trust the descriptor a library gives them (Pacemaker asks that the provider
/// run as root) can.
pub fn wake_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // Safety: writes two fds into a valid array.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // Safety: two fresh fds nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Wakes whoever polls the other side: adds one to an eventfd's counter, or sends a datagram
/// on the signal end of a wake pair. Errors are ignored: the only possible ones here are a
/// saturated counter or a full socket buffer, which already mean "readable".
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // Safety: writes 8 bytes from a valid u64.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Signals a wake pair's drain takes per system call.
const DRAIN_BATCH: usize = 16;

/// Makes a wake descriptor unreadable again (non-blocking), in one system call unless more
/// than a batch of signals wait: an eventfd's read takes its whole counter at once; a wake
/// pair's poll end (`datagrams`) gives up to `DRAIN_BATCH` datagrams per `recvmmsg`, and
/// fewer means none was left. (A read per signal plus one to find the end cost a client that
/// re-arms its fd after every dispatch two system calls each time.)
pub fn wake_drain(fd: RawFd, datagrams: bool) {
    if !datagrams {
        let mut value: u64 = 0;
        // Safety: reads at most 8 bytes into a valid u64.
        unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
        return;
    }
    let mut bufs = [0u64; DRAIN_BATCH];
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 8,
    }; DRAIN_BATCH];
    // Safety: mmsghdr is plain data; all-zero is a valid empty header.
    let mut msgs: [libc::mmsghdr; DRAIN_BATCH] = unsafe { std::mem::zeroed() };
    for ((m, iov), b) in msgs.iter_mut().zip(iovs.iter_mut()).zip(bufs.iter_mut()) {
        iov.iov_base = (b as *mut u64).cast();
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    loop {
        // Safety: DRAIN_BATCH headers, each pointing at one 8-byte buffer of ours, all alive
        // for the call; no timeout.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                DRAIN_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < DRAIN_BATCH as libc::c_int {
            break;
        }
    }
}

/// What a poll on (wake fd, control socket) found.
pub struct PollResult {
    /// The wake eventfd is readable.
    pub woken: bool,
    /// The control socket reported hang-up, error or readable data.
    pub socket_events: libc::c_short,
}

/// Polls an eventfd and a socket; `timeout` of `None` waits forever.
pub fn poll2(
    wake_fd: RawFd,
    socket_fd: RawFd,
    timeout: Option<Duration>,
) -> io::Result<PollResult> {
    let mut fds = [
        libc::pollfd {
            fd: wake_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: socket_fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        },
    ];
    let timeout_ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
    // Safety: `fds` is a valid array of two pollfd.
    let ret = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(PollResult {
                woken: false,
                socket_events: 0,
            });
        }
        return Err(err);
    }
    Ok(PollResult {
        woken: fds[0].revents & libc::POLLIN != 0,
        socket_events: fds[1].revents,
    })
}

/// Builds a `sockaddr_un` for an abstract name (leading NUL, no filesystem entry).
fn abstract_addr(name: &str) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // Safety: an all-zero sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() + 1 > addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "abstract socket name empty or too long",
        ));
    }
    for (dst, src) in addr.sun_path[1..].iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + bytes.len();
    Ok((addr, len as libc::socklen_t))
}

fn seqpacket_socket() -> io::Result<OwnedFd> {
    // Safety: plain syscall.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // Safety: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A listening SOCK_SEQPACKET socket on an abstract name.
pub fn listen_abstract(name: &str) -> io::Result<OwnedFd> {
    let fd = seqpacket_socket()?;
    let (addr, len) = abstract_addr(name)?;
    // Safety: `addr` is a valid sockaddr_un of `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // Safety: plain syscall on our fd.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), 128) })?;
    Ok(fd)
}

/// Connects a SOCK_SEQPACKET socket to an abstract name.
pub fn connect_abstract(name: &str) -> io::Result<OwnedFd> {
    let fd = seqpacket_socket()?;
    let (addr, len) = abstract_addr(name)?;
    // Safety: `addr` is a valid sockaddr_un of `len` bytes.
    cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    Ok(fd)
}

/// Accepts one connection (blocking unless the listener is non-blocking).
pub fn accept(listener: RawFd) -> io::Result<OwnedFd> {
    loop {
        // Safety: null address pointers are allowed by accept4.
        let ret = unsafe {
            libc::accept4(
                listener,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        match cvt(ret) {
            // Safety: a fresh fd nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sets both send and receive timeouts of a socket (`None` clears them).
pub fn set_socket_timeouts(fd: RawFd, timeout: Option<Duration>) -> io::Result<()> {
    let t = timeout.unwrap_or(Duration::ZERO);
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // Safety: `tv` is a valid timeval of the given size.
        cvt(unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// The peer's credentials as the kernel recorded them at connect time.
pub fn peer_cred(fd: RawFd) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // Safety: `cred`/`len` are a valid, writable ucred buffer and its size.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred)
}

/// The most fds one message carries (a handshake reply has 4, a session handoff 5, a
/// dataplane's start message two for each of up to 8 links on XDP); the control buffers below
/// hold a cmsghdr plus this many ints.
pub const FDS_MAX: usize = 16;
/// The control buffers' size in u64 words: a 16-byte cmsghdr, then `FDS_MAX` 4-byte ints.
const CONTROL_WORDS: usize = 2 + FDS_MAX / 2;

/// Sends one packet with `fds` attached as SCM_RIGHTS.
pub fn send_with_fds(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > FDS_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors for one message",
        ));
    }
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // Room for FDS_MAX ints, u64-aligned as cmsghdr requires.
    let mut control = [0u64; CONTROL_WORDS];
    // Safety: an all-zero msghdr is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let fds_bytes = std::mem::size_of_val(fds);
        // Safety: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(fds_bytes as u32) } as usize;
        assert!(space <= std::mem::size_of_val(&control));
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // Safety: msg_control points at `space` writable bytes, enough for one cmsghdr with
        // `fds.len()` ints, so CMSG_FIRSTHDR is non-null and CMSG_DATA has room for the fds.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fds_bytes as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr().cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                fds_bytes,
            );
        }
    }
    loop {
        // Safety: `msg` points at valid iovec and control buffers for the duration of the call.
        let ret = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if ret >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Receives one packet into `buf`, returning its length and any fds that came with it
/// (owned, so they are closed if the caller rejects the message). A length of 0 is EOF.
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; CONTROL_WORDS];
    // Safety: an all-zero msghdr is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let len = loop {
        // Safety: `msg` points at valid, writable iovec and control buffers.
        let ret = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if ret >= 0 {
            break ret as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let mut fds = Vec::new();
    // Safety: the kernel filled msg_control/msg_controllen; the CMSG_* macros walk it within
    // those bounds, and each SCM_RIGHTS payload is an array of ints the kernel installed for us.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize).saturating_sub(header)
                    / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "control message truncated",
        ));
    }
    Ok((len, fds))
}

/// Is the peer of a connected socket gone? Non-blocking; `Ok(true)` on hang-up or EOF.
/// Unexpected bytes from the peer are reported as `Err(InvalidData)`.
pub fn socket_peer_gone(fd: RawFd, revents: libc::c_short) -> io::Result<bool> {
    if revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR) != 0 {
        return Ok(true);
    }
    if revents & libc::POLLIN != 0 {
        let mut byte = [0u8; 1];
        // Safety: reads at most one byte into a valid buffer.
        let ret = unsafe { libc::recv(fd, byte.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) };
        return match ret {
            0 => Ok(true),
            n if n > 0 => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected bytes on the control socket",
            )),
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::WouldBlock {
                    Ok(false)
                } else {
                    Ok(true)
                }
            }
        };
    }
    Ok(false)
}

/// One non-blocking liveness look at a control socket.
pub fn check_socket(fd: RawFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    // Safety: one valid pollfd.
    let ret = unsafe { libc::poll(&mut pfd, 1, 0) };
    if ret <= 0 {
        return Ok(false);
    }
    socket_peer_gone(fd, pfd.revents)
}

/// Shuts a socket down both ways so the peer sees EOF at once, even if other fds to it remain.
pub fn shutdown(fd: RawFd) {
    // Safety: plain syscall; errors (already closed) are irrelevant here.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `fd` polls readable now.
    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // Safety: one valid pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn one_drain_takes_every_signal_of_a_wake_pair_or_an_eventfd() {
        let (poll_end, signal_end) = wake_pair().unwrap();
        // More than two batches of datagrams, and a count that is not a multiple of one.
        for _ in 0..2 * DRAIN_BATCH + 3 {
            eventfd_signal(signal_end.as_raw_fd());
        }
        assert!(readable(poll_end.as_raw_fd()));
        wake_drain(poll_end.as_raw_fd(), true);
        assert!(!readable(poll_end.as_raw_fd()), "datagrams left");
        // Exactly a batch: the drain must look once more to know none is left.
        for _ in 0..DRAIN_BATCH {
            eventfd_signal(signal_end.as_raw_fd());
        }
        wake_drain(poll_end.as_raw_fd(), true);
        assert!(
            !readable(poll_end.as_raw_fd()),
            "a full batch left one behind"
        );
        let efd = eventfd().unwrap();
        for _ in 0..5 {
            eventfd_signal(efd.as_raw_fd());
        }
        wake_drain(efd.as_raw_fd(), false);
        assert!(!readable(efd.as_raw_fd()), "eventfd counter left");
    }
}
