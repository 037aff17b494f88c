//! The kernel-UDP provider over io_uring: one UDP socket (IPv4 or IPv6; plus one bound to the
//! multicast group when the cluster multicasts, the receive slots then split between the two),
//! `RX_SLOTS` recvmsg requests kept in flight into a fixed pool of buffers, sendmsg requests queued by `send_to`
//! and submitted together by `flush` (one `io_uring_enter` for a whole batch), completions
//! reaped in `recv_batch`. On Linux 6.1+ the ring defers task work to this thread
//! (SINGLE_ISSUER + DEFER_TASKRUN), which runs it whenever it reaps; older kernels get the
//! classic ring.
//!
//! The `wait_fd` is an epoll set of an eventfd and of the socket(s) themselves. A socket is
//! readable the moment a datagram is queued in it, before the ring has run any work for it,
//! and `recv_batch` runs that work. An eventfd registered with a deferred ring wakes late: a
//! datagram completes an armed recvmsg by queueing task work from the network softirq, and
//! the kernel (seen on 6.18) signals the eventfd for that work from an RCU callback
//! (`io_eventfd_do_signal` under `rcu_do_batch`), a grace period later — 12–24 ms for every
//! datagram a sleeping loop waited for (agreed self-delivery took 32 ms p50 on loopback). So
//! the eventfd is registered only with a classic ring, whose completions are posted (and the
//! eventfd signalled) by task work run in this task as soon as a request is ready; on a
//! deferred ring it is only signalled by `recv_batch` itself, for completions it reaped but did
//! not hand over.
//!
//! Every buffer, `msghdr`, `iovec` and address lives in memory allocated once in `bind` and never
//! moved, because the kernel holds pointers into it while a request is in flight; each slot has
//! at most one request in flight, so the submission and completion queues (sized above the slot
//! count) can never overflow. Plain recvmsg is used rather than multishot recvmsg with a
//! provided-buffer ring: simpler, and available on every kernel with io_uring sockets; the
//! buffers are not registered because recvmsg/sendmsg cannot use fixed buffers.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types, IoUring};

use crate::transport::mcast::Multicast;

/// Largest datagram received or sent (a UDP payload).
pub const DATAGRAM_MAX: usize = 65_536;
/// recvmsg requests kept in flight.
pub const RX_SLOTS: usize = 32;
/// sendmsg requests that can be queued or in flight at once; `send_to` says "full" beyond.
pub const TX_SLOTS: usize = 64;
/// Submission queue entries (the completion queue gets twice as many).
const RING_ENTRIES: u32 = 128;
/// Datagrams handed over per `recv_batch`, so one busy socket cannot starve timers.
const RECV_BATCH: usize = 64;
/// user_data tag of a cancel request (its completion is only counted).
const CANCEL_TAG: u64 = 1 << 63;

// Each slot has at most one request in flight, plus one cancel per rx slot at drop.
const _: () = assert!(RX_SLOTS * 2 + TX_SLOTS <= RING_ENTRIES as usize);
// One `recv_batch` hands over every receive completion it reaped (at most one per rx slot), so
// draining the eventfd first never hides a reaped datagram from a caller that then sleeps.
const _: () = assert!(RECV_BATCH >= RX_SLOTS);

/// The kernel's view of one request: its header, one iovec and the peer address.
#[repr(C)]
struct Slot {
    hdr: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_storage,
}

/// Counters of what the provider itself dropped or saw fail.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UringCounters {
    /// Datagrams longer than `DATAGRAM_MAX` (dropped).
    pub rx_truncated: u64,
    /// recvmsg completions with an error (the slot is re-armed).
    pub rx_errors: u64,
    /// sendmsg completions with an error (the datagram is lost; totem retransmits).
    pub tx_errors: u64,
}

/// A UDP socket driven through io_uring.
pub struct UringTransport {
    ring: IoUring,
    /// Registered with the ring as fixed file 0; kept open for the ring's lifetime.
    _sock: UdpSocket,
    /// The multicast group's socket, registered as fixed file 1, and the group's address.
    group: Option<(UdpSocket, SocketAddr)>,
    local: SocketAddr,
    event: OwnedFd,
    /// The `wait_fd`: `event` and the socket(s), readable when any of them is (see the module
    /// comment for why the sockets are in it).
    wait: OwnedFd,
    /// The ring defers task work to this task (see `bind_with`): `reap` runs it, and `event`
    /// is not registered with the ring (module comment). Invariant: the ring is only ever
    /// entered from the thread that created it (the kernel refuses others: SINGLE_ISSUER).
    deferred: bool,
    /// `RX_SLOTS` receive slots then `TX_SLOTS` send slots. Invariant: never reallocated while
    /// the ring lives (the kernel holds pointers into it).
    slots: Box<[Slot]>,
    /// `DATAGRAM_MAX` bytes per slot, same order as `slots`. Same invariant.
    buffers: Box<[u8]>,
    free_tx: Vec<usize>,
    /// Receive completions reaped but not yet handed over: (slot, result).
    ready_rx: VecDeque<(usize, i32)>,
    /// Requests submitted or queued whose completion has not been reaped.
    in_flight: usize,
    counters: UringCounters,
}

fn sockaddr_from(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    // Safety: sockaddr_storage is large and aligned enough for both sockaddr_in and
    // sockaddr_in6 (that is its purpose); all-zero is a valid value of each.
    unsafe {
        *out = mem::zeroed();
        match addr {
            SocketAddr::V4(a) => {
                let sin = &mut *(out as *mut libc::sockaddr_storage as *mut libc::sockaddr_in);
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                let sin6 = &mut *(out as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6);
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo();
                sin6.sin6_scope_id = a.scope_id();
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }
}

fn sockaddr_to(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(addr.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // Safety: the family and length say the kernel wrote a sockaddr_in here.
            let sin =
                unsafe { &*(addr as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(sin.sin_addr.s_addr).into(),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // Safety: the family and length say the kernel wrote a sockaddr_in6 here.
            let sin6 =
                unsafe { &*(addr as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

impl UringTransport {
    /// Binds a UDP socket to `addr` and sets up the ring. Fails when io_uring is unavailable
    /// (old kernel, `kernel.io_uring_disabled`, seccomp): callers fall back to `UdpTransport`.
    pub fn bind(addr: SocketAddr) -> io::Result<UringTransport> {
        UringTransport::bind_with(addr, None)
    }

    /// As `bind`; with `mcast`, also joins its group on a second socket (fixed file 1, every
    /// other receive slot reads it) and sets the first up to send to it (see `mcast`).
    pub fn bind_with(addr: SocketAddr, mcast: Option<&Multicast>) -> io::Result<UringTransport> {
        UringTransport::bind_ring(addr, mcast, true)
    }

    /// As `bind_with`; `defer` false skips deferred task work (the path of kernels before
    /// 6.1, kept testable here).
    fn bind_ring(
        addr: SocketAddr,
        mcast: Option<&Multicast>,
        defer: bool,
    ) -> io::Result<UringTransport> {
        // Deferred task work (Linux 6.1+): a receive whose data arrived completes when this
        // task next enters the ring with GETEVENTS (`reap`), not whenever the kernel gets to
        // interrupt it — a busy-polling task was otherwise only reached at its next tick
        // (≈ 88 µs busy round trips against 19 µs). Older kernels get the classic ring.
        let deferred_ring = if defer {
            IoUring::builder()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .build(RING_ENTRIES)
        } else {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        };
        let (ring, deferred) = match deferred_ring {
            Ok(ring) => (ring, true),
            Err(_) => (
                IoUring::new(RING_ENTRIES)
                    .map_err(|e| io::Error::new(e.kind(), format!("io_uring setup: {e}")))?,
                false,
            ),
        };
        // The sockets stay blocking: io_uring then waits for data inside the kernel instead of
        // completing each recvmsg at once with EAGAIN.
        let sock = UdpSocket::bind(addr)?;
        let local = sock.local_addr()?;
        tracing::debug!(
            "io_uring of {RING_ENTRIES} entries ({}), UDP socket bound to {local}",
            if deferred {
                "single issuer, deferred task work"
            } else {
                "classic: no deferred task work on this kernel"
            }
        );
        let group = match mcast {
            None => None,
            Some(m) => {
                m.check_family(addr)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                crate::transport::mcast::prepare_sender(&sock, m, addr.ip())?;
                Some((
                    crate::transport::mcast::group_socket(m, addr.ip())?,
                    m.group(),
                ))
            }
        };
        // Safety: eventfd has no memory preconditions; a non-negative result is a new fd that
        // nothing else owns.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // Safety: see above; `efd` is ours alone.
        let event = unsafe { OwnedFd::from_raw_fd(efd) };
        if !deferred {
            // A classic ring posts completions from task work the kernel runs in this task
            // when the request is ready, and signals the eventfd then. A deferred ring posts
            // them only when this task reaps; registering the eventfd there would add nothing
            // but the kernel's late signals for queued work (module comment).
            ring.submitter()
                .register_eventfd(event.as_raw_fd())
                .map_err(|e| io::Error::new(e.kind(), format!("io_uring register eventfd: {e}")))?;
        }
        let mut files = vec![sock.as_raw_fd()];
        files.extend(group.as_ref().map(|g| g.0.as_raw_fd()));
        // Level-triggered: a socket stays readable while a datagram waits in it, whether or
        // not the ring has run the work that takes it.
        let wait = crate::poll::epoll_of(
            &std::iter::once(event.as_raw_fd())
                .chain(files.iter().copied())
                .collect::<Vec<_>>(),
        )?;
        ring.submitter()
            .register_files(&files)
            .map_err(|e| io::Error::new(e.kind(), format!("io_uring register socket: {e}")))?;
        let slot_count = RX_SLOTS + TX_SLOTS;
        let slots: Box<[Slot]> = (0..slot_count)
            // Safety: msghdr, iovec and sockaddr_storage are plain C structs; all-zero (null
            // pointers, zero lengths) is a valid value of each.
            .map(|_| unsafe { mem::zeroed::<Slot>() })
            .collect();
        let mut t = UringTransport {
            ring,
            _sock: sock,
            group,
            local,
            event,
            wait,
            deferred,
            slots,
            buffers: vec![0u8; slot_count * DATAGRAM_MAX].into_boxed_slice(),
            free_tx: (RX_SLOTS..slot_count).rev().collect(),
            ready_rx: VecDeque::with_capacity(RX_SLOTS),
            in_flight: 0,
            counters: UringCounters::default(),
        };
        for slot in 0..RX_SLOTS {
            t.arm_recv(slot)?;
        }
        t.ring.submit()?;
        tracing::debug!(
            "io_uring ready on {local}: {RX_SLOTS} receives in flight, {TX_SLOTS} send slots, \
             {DATAGRAM_MAX} bytes each"
        );
        Ok(t)
    }

    pub fn counters(&self) -> UringCounters {
        self.counters
    }

    /// Points slot `slot`'s header at its own iovec, buffer and address, `len` bytes long.
    fn prepare(&mut self, slot: usize, len: usize) -> *mut libc::msghdr {
        let buf = self.buffers[slot * DATAGRAM_MAX..][..len].as_mut_ptr();
        let s = &mut self.slots[slot];
        s.iov = libc::iovec {
            iov_base: buf.cast(),
            iov_len: len,
        };
        s.hdr.msg_name = (&mut s.addr as *mut libc::sockaddr_storage).cast();
        s.hdr.msg_iov = &mut s.iov;
        s.hdr.msg_iovlen = 1;
        s.hdr.msg_control = std::ptr::null_mut();
        s.hdr.msg_controllen = 0;
        s.hdr.msg_flags = 0;
        &mut s.hdr
    }

    /// Queues a recvmsg into rx slot `slot`: on the group's socket (fixed file 1) for odd
    /// slots when there is one, else on the node's socket (fixed file 0).
    fn arm_recv(&mut self, slot: usize) -> io::Result<()> {
        let file = u32::from(self.group.is_some() && slot % 2 == 1);
        let hdr = self.prepare(slot, DATAGRAM_MAX);
        self.slots[slot].hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as u32;
        let sqe = opcode::RecvMsg::new(types::Fixed(file), hdr)
            .build()
            .user_data(slot as u64);
        self.push(&sqe)
    }

    /// Runs this task's deferred task work (an `io_uring_enter` with GETEVENTS, submitting
    /// nothing and not waiting): completions it produces land in the completion queue.
    fn run_deferred(&self) -> io::Result<()> {
        // Safety: io_uring_enter with nothing to submit, no wait and no argument.
        unsafe {
            self.ring.submitter().enter::<libc::sigset_t>(
                0,
                0,
                io_uring::EnterFlags::GETEVENTS.bits(),
                None,
            )
        }?;
        Ok(())
    }

    fn push(&mut self, sqe: &io_uring::squeue::Entry) -> io::Result<()> {
        // Safety: every pointer in the entry points into `slots`/`buffers`, which stay put
        // and untouched by us until the request's completion is reaped (or the ring is torn
        // down in `drop`, which waits for in-flight requests first).
        let pushed = unsafe { self.ring.submission().push(sqe) };
        if pushed.is_err() {
            // Cannot happen while the slot bound holds; submit and retry once to be safe.
            self.ring.submit()?;
            // Safety: as above.
            unsafe { self.ring.submission().push(sqe) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Moves every completion out of the ring: send slots go back to the free list, receive
    /// completions wait in `ready_rx` for `recv_batch`.
    fn reap(&mut self) {
        if self.deferred {
            // The completions of receives whose data arrived are produced here.
            if self.run_deferred().is_err() {
                self.counters.rx_errors += 1;
            }
        }
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            self.in_flight -= 1;
            let tag = cqe.user_data();
            if tag & CANCEL_TAG != 0 {
                continue;
            }
            let slot = tag as usize;
            if slot < RX_SLOTS {
                self.ready_rx.push_back((slot, cqe.result()));
            } else {
                if cqe.result() < 0 {
                    self.counters.tx_errors += 1;
                }
                self.free_tx.push(slot);
            }
        }
    }

    fn signal_eventfd(&self) {
        let one = 1u64;
        // Safety: writes 8 bytes from `one`; the eventfd is non-blocking, EAGAIN (counter at
        // its maximum) still leaves it readable.
        unsafe {
            libc::write(
                self.event.as_raw_fd(),
                (&one as *const u64).cast(),
                mem::size_of::<u64>(),
            )
        };
    }

    fn drain_eventfd(&self) {
        let mut v = 0u64;
        // Safety: reads 8 bytes into `v`; the eventfd is non-blocking, EAGAIN is fine.
        unsafe {
            libc::read(
                self.event.as_raw_fd(),
                (&mut v as *mut u64).cast(),
                mem::size_of::<u64>(),
            )
        };
    }
}

impl crate::transport::Transport for UringTransport {
    fn name(&self) -> &'static str {
        "udp-uring"
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn group(&self) -> Option<SocketAddr> {
        self.group.as_ref().map(|g| g.1)
    }

    fn counters(&self, out: &mut crate::stats::Sheet) {
        let c = self.counters;
        out.put_all([
            ("udp.uring.rx_truncated", c.rx_truncated),
            ("udp.uring.rx_errors", c.rx_errors),
            ("udp.uring.tx_errors", c.tx_errors),
        ]);
    }

    fn recv_batch(&mut self, f: &mut dyn FnMut(&mut [u8], SocketAddr)) -> io::Result<usize> {
        // Drain first: a completion posted after this read signals the eventfd again.
        self.drain_eventfd();
        self.reap();
        let mut handed = 0;
        let mut rearmed = false;
        while handed < RECV_BATCH {
            let Some((slot, result)) = self.ready_rx.pop_front() else {
                break;
            };
            let s = &self.slots[slot];
            if result < 0 {
                self.counters.rx_errors += 1;
            } else if s.hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.counters.rx_truncated += 1;
            } else if let Some(from) = sockaddr_to(&s.addr, s.hdr.msg_namelen) {
                let len = result as usize;
                f(&mut self.buffers[slot * DATAGRAM_MAX..][..len], from);
                handed += 1;
            } else {
                self.counters.rx_errors += 1;
            }
            self.arm_recv(slot)?;
            rearmed = true;
        }
        if rearmed {
            self.ring.submit()?;
        }
        if self.deferred {
            // Datagrams that arrived while the batch was handed over queued task work for this
            // task: run it and collect what completed meanwhile. A datagram still waiting in a
            // socket keeps `wait` readable; a completion collected here but not handed over
            // signals the eventfd, so a caller that sleeps now is woken at once. No wake-up is
            // lost or late either way.
            self.reap();
            if !self.ready_rx.is_empty() {
                self.signal_eventfd();
            }
        }
        Ok(handed)
    }

    fn send_to(&mut self, payload: &[u8], to: SocketAddr) -> io::Result<bool> {
        if payload.len() > DATAGRAM_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("datagram of {} bytes", payload.len()),
            ));
        }
        if self.free_tx.is_empty() {
            // Queued sends complete only once submitted.
            self.ring.submit()?;
            self.reap();
        }
        let Some(slot) = self.free_tx.pop() else {
            return Ok(false);
        };
        self.buffers[slot * DATAGRAM_MAX..][..payload.len()].copy_from_slice(payload);
        let hdr = self.prepare(slot, payload.len());
        let s = &mut self.slots[slot];
        s.hdr.msg_namelen = sockaddr_from(to, &mut s.addr);
        let sqe = opcode::SendMsg::new(types::Fixed(0), hdr)
            .build()
            .user_data(slot as u64);
        self.push(&sqe)?;
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ring.submit()?;
        Ok(())
    }

    fn wait_fd(&self) -> RawFd {
        self.wait.as_raw_fd()
    }
}

impl Drop for UringTransport {
    fn drop(&mut self) {
        // The kernel may still write into `buffers`/`slots`: cancel the pending receives and
        // wait (bounded) until every request has completed before the memory is freed.
        for slot in 0..RX_SLOTS {
            let sqe = opcode::AsyncCancel::new(slot as u64)
                .build()
                .user_data(CANCEL_TAG | slot as u64);
            if self.push(&sqe).is_err() {
                break;
            }
        }
        for _ in 0..1000 {
            if self.in_flight == 0 {
                break;
            }
            if self.ring.submit_and_wait(1).is_err() {
                break;
            }
            self.reap();
        }
        if self.in_flight == 0 {
            // The ring holds its own reference to every registered socket, and the kernel
            // drops a ring's references asynchronously, in a worker, some time after its fd
            // is closed (measured: 20-35 ms after the process exited): a dataplane started
            // at once on the same port failed with "Address already in use". Unregistering
            // them here, with nothing in flight, hands them back now, so the sockets close
            // when their fields drop, before the process exits.
            if let Err(e) = self.ring.submitter().unregister_files() {
                tracing::debug!("io_uring unregister files: {e}");
            }
            return;
        }
        // Requests still pending after all that: leak the memory rather than free it under
        // the kernel's feet.
        mem::forget(mem::take(&mut self.buffers));
        mem::forget(mem::take(&mut self.slots));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Transport;
    use std::time::{Duration, Instant};

    fn pair(addr: &str) -> (UringTransport, UringTransport) {
        let a = UringTransport::bind(addr.parse().unwrap()).unwrap();
        let b = UringTransport::bind(addr.parse().unwrap()).unwrap();
        assert!(
            a.deferred && b.deferred,
            "this kernel has deferred task work"
        );
        (a, b)
    }

    /// A pair on classic rings (no deferred task work), as kernels before 6.1 get.
    fn classic_pair(addr: &str) -> (UringTransport, UringTransport) {
        let bind = |a: &str| UringTransport::bind_ring(a.parse().unwrap(), None, false).unwrap();
        let (a, b) = (bind(addr), bind(addr));
        assert!(!a.deferred && !b.deferred);
        (a, b)
    }

    /// Receives until `want` datagrams arrived or 5 s passed.
    fn receive(t: &mut UringTransport, want: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < want && Instant::now() < deadline {
            crate::poll::wait_readable(t.wait_fd(), &[], Duration::from_millis(100)).unwrap();
            t.recv_batch(&mut |b, from| got.push((b.to_vec(), from)))
                .unwrap();
        }
        got
    }

    /// More datagrams than send and receive slots, in bursts of 48 per flush, two sizes: every
    /// one arrives once, intact, from the sender's address.
    fn many_datagrams((mut a, mut b): (UringTransport, UringTransport)) {
        let to = b.local_addr();
        assert_eq!(b.recv_batch(&mut |_, _| panic!("nothing sent")).unwrap(), 0);
        let total = 2000u32;
        let payload = |i: u32| -> Vec<u8> {
            let len = if i % 7 == 0 { 1400 } else { 64 };
            let mut p = vec![(i % 251) as u8; len];
            p[..4].copy_from_slice(&i.to_be_bytes());
            p
        };
        let mut next = 0;
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < total as usize && Instant::now() < deadline {
            for _ in 0..48 {
                if next == total || !a.send_to(&payload(next), to).unwrap() {
                    break;
                }
                next += 1;
            }
            a.flush().unwrap();
            crate::poll::wait_readable(b.wait_fd(), &[], Duration::from_millis(50)).unwrap();
            while b
                .recv_batch(&mut |d, from| got.push((d.to_vec(), from)))
                .unwrap()
                > 0
            {}
        }
        assert_eq!(got.len(), total as usize, "sent {next}");
        let mut seen = vec![false; total as usize];
        for (d, from) in &got {
            let i = u32::from_be_bytes(d[..4].try_into().unwrap());
            assert!(!seen[i as usize], "datagram {i} twice");
            seen[i as usize] = true;
            assert_eq!(d, &payload(i));
            assert_eq!(*from, a.local_addr());
        }
        assert_eq!(a.counters(), UringCounters::default());
        assert_eq!(b.counters(), UringCounters::default());
    }

    #[test]
    fn many_datagrams_v4() {
        many_datagrams(pair("127.0.0.1:0"));
    }

    #[test]
    fn classic_ring_many_datagrams_v4() {
        many_datagrams(classic_pair("127.0.0.1:0"));
    }

    #[test]
    fn many_datagrams_v6() {
        many_datagrams(pair("[::1]:0"));
    }

    #[test]
    fn wait_fd_signals_arrival_and_quiets_when_drained() {
        wait_fd_cycle(pair("127.0.0.1:0"));
    }

    #[test]
    fn classic_ring_wait_fd_signals_arrival_and_quiets_when_drained() {
        wait_fd_cycle(classic_pair("127.0.0.1:0"));
    }

    fn wait_fd_cycle((mut a, mut b): (UringTransport, UringTransport)) {
        let ready = |t: &UringTransport, ms| {
            crate::poll::wait_readable(t.wait_fd(), &[], Duration::from_millis(ms)).unwrap()
        };
        b.recv_batch(&mut |_, _| {}).unwrap();
        assert!(!ready(&b, 20));
        assert!(a.send_to(b"hello", b.local_addr()).unwrap());
        assert!(!ready(&b, 20), "nothing leaves before flush");
        a.flush().unwrap();
        assert!(ready(&b, 2000));
        let got = receive(&mut b, 1);
        assert_eq!(got, vec![(b"hello".to_vec(), a.local_addr())]);
        assert!(!ready(&b, 20));
    }

    /// The `wait_fd` is readable as soon as a datagram waits in the socket, before the ring
    /// has run any work for it: the service loop sleeps on it, so anything later is latency
    /// added to every message. Checked by order, not by time: the socket itself reports the
    /// datagram first (the kernel's own readiness, waited for), and `wait_fd` must then
    /// already be readable (a zero timeout). With the eventfd alone as `wait_fd` this failed in
    /// the first round: the kernel signalled it a grace period after the socket. Deferred
    /// rings only: a classic ring runs the receive in this thread on its way back from any
    /// system call, so its socket may be empty again before it can be looked at.
    #[test]
    fn wait_fd_is_ready_as_soon_as_a_datagram_waits() {
        let (mut a, mut b) = pair("127.0.0.1:0");
        let ready = |fd, timeout| crate::poll::wait_readable(fd, &[], timeout).unwrap();
        let sock = b._sock.as_raw_fd();
        let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
        for round in 0..20u8 {
            assert_eq!(
                b.recv_batch(&mut |_, _| panic!("nothing sent yet"))
                    .unwrap(),
                0
            );
            assert!(
                !ready(b.wait_fd(), Duration::ZERO),
                "round {round}: ready before a send"
            );
            // Through a ring and through a plain socket: the datagram reaches `b` from the
            // sender's system call either way.
            if round % 2 == 0 {
                assert!(a.send_to(&[round], b.local_addr()).unwrap());
                a.flush().unwrap();
            } else {
                plain.send_to(&[round], b.local_addr()).unwrap();
            }
            assert!(
                ready(sock, Duration::from_secs(5)),
                "round {round}: the datagram never reached the socket"
            );
            assert!(
                ready(b.wait_fd(), Duration::ZERO),
                "round {round}: a datagram waits in the socket but wait_fd is quiet"
            );
            let got = receive(&mut b, 1);
            assert_eq!(got.len(), 1, "round {round}");
            assert_eq!(got[0].0, vec![round]);
        }
    }

    /// A dropped transport's port is free at once, in the same process, for both ring kinds:
    /// a new dataplane started right after the last one stopped must be able to bind it.
    #[test]
    fn a_dropped_transport_frees_its_port_at_once() {
        for defer in [true, false] {
            for _ in 0..20 {
                let t =
                    UringTransport::bind_ring("127.0.0.1:0".parse().unwrap(), None, defer).unwrap();
                let addr = t.local_addr();
                drop(t);
                if let Err(e) = UdpSocket::bind(addr) {
                    panic!("{addr} still bound after drop (deferred task work {defer}): {e}");
                }
            }
        }
    }

    #[test]
    fn oversized_sends_are_refused() {
        let (mut a, b) = pair("127.0.0.1:0");
        assert!(a
            .send_to(&vec![0; DATAGRAM_MAX + 1], b.local_addr())
            .is_err());
    }
}
