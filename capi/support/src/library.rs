//! One C library's handles over one kind of rotor-client session, and the calls every
//! handle-based library (libcpg, libcmap, libquorum, libvotequorum, libcfg) shares: the
//! lookup each call starts with, `*_fd_get`, `*_dispatch` and `*_finalize`. A library keeps
//! only what is its own: its callbacks and other per-handle state (`X`), how an event becomes
//! a C callback, and its C conversions.
//!
//! The poll fd rule: once the application asked for the fd (`*_fd_get`), it may poll it at
//! any time, so after every call on the handle the fd is re-armed — readable whenever an
//! event waits, as libqb's socket is — and not only until the next dispatch. Applications
//! that never ask do not pay for the wake-ups.

use std::ffi::c_int;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::Duration;

use rotor_client::cfg::{Cfg, CfgEvent};
use rotor_client::cmap::{self, Cmap};
use rotor_client::cpg::{Cpg, Received, Wait};
use rotor_client::quorum::{self, Quorum};
use rotor_client::votequorum::{self, Votequorum};
use rotor_client::Error;

use crate::abi::*;
use crate::handles::{lock, HandleTable};
use crate::{cs_error, guard, wait_readable, write_out};

/// What the shared dispatch loop needs of a rotor-client session.
pub trait Session: Send {
    /// One event as the session hands it out.
    type Event;

    /// Whether corosync's library checks the dispatch flags before the handle (and so answers
    /// `CS_ERR_INVALID_PARAM` for unknown flags on a bad handle); otherwise the handle is
    /// checked first, and then the flags.
    const DISPATCH_FLAGS_FIRST: bool;

    /// The next event if one waits; `waits` says the dispatch would sleep for one, so a
    /// session may spin for a moment first.
    fn next_event(&mut self, waits: bool) -> Result<Option<Self::Event>, Error>;

    /// The descriptor that polls readable while events wait (re-armed by each call).
    fn fd(&mut self) -> Result<RawFd, Error>;

    /// The session's control socket: it hangs up when the node goes away.
    fn control_fd(&self) -> RawFd;

    /// Makes [`Self::fd`] readable now, to wake a thread sleeping on it.
    fn wake(&self);

    /// Takes back an event whose callback has run, so its memory serves the next one (a
    /// delivery per event must not cost an allocation); by default it is dropped.
    fn recycle(&mut self, _event: Self::Event) {}
}

/// How long a blocking `cpg_dispatch` spins for an event before it sleeps on the fd (the
/// Rust client's blocking dispatch does the same), with the handle locked.
pub const CPG_DISPATCH_SPIN: Duration = Duration::from_micros(20);

/// `impl Session` for a rotor-client session type: its own `fd`, `control_fd` and `wake`,
/// and `next_event` as given (`|session, waits| expression`).
macro_rules! session {
    ($client:ty, $event:ty, flags_first: $first:expr, |$s:ident, $waits:pat_param| $next:expr
     $(, recycle: |$rs:ident, $re:ident| $recycle:expr)?) => {
        impl Session for $client {
            type Event = $event;
            const DISPATCH_FLAGS_FIRST: bool = $first;

            fn next_event(&mut self, $waits: bool) -> Result<Option<$event>, Error> {
                let $s = self;
                $next
            }
            fn fd(&mut self) -> Result<RawFd, Error> {
                <$client>::fd(self)
            }
            fn control_fd(&self) -> RawFd {
                <$client>::control_fd(self)
            }
            fn wake(&self) {
                <$client>::wake(self)
            }
            $(fn recycle(&mut self, $re: $event) {
                let $rs = self;
                $recycle
            })?
        }
    };
}

// corosync's lib/cpg.c: cpg_dispatch looks the handle up first and never checks the flags
// (rotor refuses unknown ones after the handle).
session!(Cpg, Received, flags_first: false, |cpg, waits| {
    cpg.poll_event(if waits {
        Wait::Up(CPG_DISPATCH_SPIN)
    } else {
        Wait::No
    })
}, recycle: |cpg, received| cpg.recycle(received));
// corosync's lib/cmap.c: as lib/cpg.c.
session!(Cmap, cmap::Notification, flags_first: false, |cmap, _| {
    cmap.poll_notification(None)
});
// corosync's lib/quorum.c: quorum_dispatch refuses unknown flags before the handle.
session!(Quorum, quorum::Notification, flags_first: true, |q, _| {
    q.poll_notification(Wait::No)
});
// corosync's lib/votequorum.c: as lib/quorum.c.
session!(Votequorum, votequorum::Notification, flags_first: true, |v, _| {
    v.poll_notification(Wait::No)
});
// corosync's lib/cfg.c: corosync_cfg_dispatch as lib/cpg.c.
session!(Cfg, CfgEvent, flags_first: false, |cfg, _| cfg.poll_event(None));

/// One handle: its session and the library's own state.
struct Instance<C, X> {
    /// `None` once finalized.
    client: Option<C>,
    extra: X,
    /// The application asked for the fd: keep it armed after every call (see the module).
    fd_used: bool,
}

impl<C: Session, X> Instance<C, X> {
    /// Keeps the fd readable while events wait, once the application polls it.
    fn rearm(&mut self) {
        if self.fd_used {
            if let Some(c) = self.client.as_mut() {
                let _ = c.fd();
            }
        }
    }
}

/// Every live handle of one library: sessions of kind `C`, each with the library's state `X`.
pub struct Library<C, X> {
    handles: HandleTable<Mutex<Instance<C, X>>>,
}

impl<C: Session, X> Default for Library<C, X> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Session, X> Library<C, X> {
    pub const fn new() -> Self {
        Library {
            handles: HandleTable::new(),
        }
    }

    /// A new handle on `client` with the library's state `extra`.
    pub fn initialize(&self, client: C, extra: X) -> u64 {
        self.handles.insert(Mutex::new(Instance {
            client: Some(client),
            extra,
            fd_used: false,
        }))
    }

    /// Whether `handle` is a live handle of this library.
    pub fn contains(&self, handle: u64) -> bool {
        self.handles.get(handle).is_some()
    }

    /// Runs `f` on the live handle `handle` with it locked (unknown, stale or finalized:
    /// `CS_ERR_BAD_HANDLE`), then re-arms the fd; a panic is `CS_ERR_LIBRARY`.
    pub fn with(&self, handle: u64, f: impl FnOnce(&mut C, &mut X) -> cs_error_t) -> cs_error_t {
        guard(|| {
            let Some(instance) = self.handles.get(handle) else {
                return CS_ERR_BAD_HANDLE;
            };
            let mut locked = lock(&instance);
            let instance = &mut *locked;
            let Some(client) = instance.client.as_mut() else {
                return CS_ERR_BAD_HANDLE;
            };
            let r = f(client, &mut instance.extra);
            instance.rearm();
            r
        })
    }

    /// `*_fd_get`: writes the session's fd to `fd` and keeps it armed from now on.
    ///
    /// # Safety
    /// `fd` is NULL or valid for a write of a `c_int` (the C API's contract).
    pub unsafe fn fd_get(&self, handle: u64, fd: *mut c_int) -> cs_error_t {
        guard(|| {
            let Some(instance) = self.handles.get(handle) else {
                return CS_ERR_BAD_HANDLE;
            };
            let mut instance = lock(&instance);
            let Some(client) = instance.client.as_mut() else {
                return CS_ERR_BAD_HANDLE;
            };
            let r = match client.fd() {
                Ok(raw) => {
                    instance.fd_used = true;
                    // SAFETY: NULL or valid, by the caller's contract; write_out checks NULL.
                    unsafe { write_out(fd, raw) }.err().unwrap_or(CS_OK)
                }
                Err(e) => cs_error(&e),
            };
            instance.rearm();
            r
        })
    }

    /// `*_finalize`: forgets the handle, wakes a dispatch of another thread sleeping on its fd
    /// (it then finds the handle finalized: closing an fd does not wake a poll on it), closes
    /// the session, then runs the library's `cleanup` of its state.
    pub fn finalize(&self, handle: u64, cleanup: impl FnOnce(&mut X)) -> cs_error_t {
        guard(|| {
            let Some(instance) = self.handles.remove(handle) else {
                return CS_ERR_BAD_HANDLE;
            };
            let mut instance = lock(&instance);
            let Some(client) = instance.client.take() else {
                return CS_ERR_BAD_HANDLE;
            };
            client.wake();
            drop(client);
            cleanup(&mut instance.extra);
            CS_OK
        })
    }

    /// `*_dispatch`: ONE waits for one event and runs its callback, ONE_NONBLOCKING runs one
    /// waiting now (none: `CS_ERR_TRY_AGAIN`), ALL runs every event waiting now, BLOCKING
    /// keeps waiting and running until the handle is finalized or fails; other flags are
    /// `CS_ERR_INVALID_PARAM` (checked before or after the handle as corosync's library does,
    /// [`Session::DISPATCH_FLAGS_FIRST`]).
    ///
    /// `take` reads what the callback needs beside the event (copying callbacks out of the
    /// library's state), with the handle locked; `run` calls the application with the event
    /// and the handle unlocked, so the callback may call the library, finalize included —
    /// dispatch then returns `CS_ERR_BAD_HANDLE`, as corosync's does. The event then goes
    /// back to the session ([`Session::recycle`]) under the same lock that takes the next
    /// one: one lock per event. A sleep for an event is on the fd and the control socket,
    /// with the handle unlocked, so other threads can use it.
    pub fn dispatch<K>(
        &self,
        handle: u64,
        how: cs_dispatch_flags_t,
        mut take: impl FnMut(&mut X, &C::Event) -> K,
        mut run: impl FnMut(&mut C::Event, K) -> Result<(), cs_error_t>,
    ) -> cs_error_t {
        guard(|| {
            let known = matches!(
                how,
                CS_DISPATCH_ONE
                    | CS_DISPATCH_ALL
                    | CS_DISPATCH_BLOCKING
                    | CS_DISPATCH_ONE_NONBLOCKING
            );
            if C::DISPATCH_FLAGS_FIRST && !known {
                return CS_ERR_INVALID_PARAM;
            }
            let Some(instance) = self.handles.get(handle) else {
                return CS_ERR_BAD_HANDLE;
            };
            if !known {
                return CS_ERR_INVALID_PARAM;
            }
            let waits = matches!(how, CS_DISPATCH_ONE | CS_DISPATCH_BLOCKING);
            let one = matches!(how, CS_DISPATCH_ONE | CS_DISPATCH_ONE_NONBLOCKING);
            let mut locked = lock(&instance);
            loop {
                let state = &mut *locked;
                // Finalized (by a callback or by another thread).
                let Some(client) = state.client.as_mut() else {
                    return CS_ERR_BAD_HANDLE;
                };
                match client.next_event(waits) {
                    Ok(Some(mut event)) => {
                        let k = take(&mut state.extra, &event);
                        drop(locked);
                        if let Err(e) = run(&mut event, k) {
                            return e;
                        }
                        locked = lock(&instance);
                        let state = &mut *locked;
                        let Some(client) = state.client.as_mut() else {
                            return CS_ERR_BAD_HANDLE;
                        };
                        client.recycle(event);
                        if one {
                            state.rearm();
                            return CS_OK;
                        }
                    }
                    Ok(None) if how == CS_DISPATCH_ALL => {
                        state.rearm();
                        return CS_OK;
                    }
                    Ok(None) if how == CS_DISPATCH_ONE_NONBLOCKING => {
                        state.rearm();
                        return CS_ERR_TRY_AGAIN;
                    }
                    Ok(None) => {
                        let fds = match client.fd() {
                            Ok(fd) => [fd, client.control_fd()],
                            Err(e) => return cs_error(&e),
                        };
                        drop(locked);
                        wait_readable(fds, -1);
                        locked = lock(&instance);
                    }
                    Err(e) => return cs_error(&e),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! The shared calls over a session of pipes: events are numbers queued in memory, the
    //! fd is a pipe's read end written once per event (and by `wake`), so the sleeps and
    //! wake-ups are real polls on real descriptors.

    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    /// A non-blocking pipe, closed on drop.
    struct Pipe([RawFd; 2]);

    impl Pipe {
        fn new() -> Pipe {
            let mut fds = [0; 2];
            // SAFETY: two ints for pipe2 to fill.
            let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
            assert_eq!(r, 0, "pipe2");
            Pipe(fds)
        }
        fn ring(&self) {
            // SAFETY: one byte from the stack to our pipe's write end.
            unsafe { libc::write(self.0[1], [1u8].as_ptr().cast(), 1) };
        }
        fn drain(&self) {
            let mut buf = [0u8; 64];
            // SAFETY: reads into a buffer of ours from our non-blocking read end.
            while unsafe { libc::read(self.0[0], buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }
    }

    impl Drop for Pipe {
        fn drop(&mut self) {
            // SAFETY: our own descriptors, closed once.
            unsafe {
                libc::close(self.0[0]);
                libc::close(self.0[1]);
            }
        }
    }

    /// What a test shares with its session.
    struct Shared {
        events: Mutex<VecDeque<u32>>,
        doorbell: Pipe,
        control: Pipe,
        fd_calls: AtomicUsize,
        /// Told on every `fd()`: a blocking dispatch calls it just before it sleeps.
        on_fd: Mutex<Option<mpsc::Sender<()>>>,
        /// The events given back by `recycle`, in order.
        recycled: Mutex<Vec<u32>>,
    }

    impl Shared {
        fn new() -> Arc<Shared> {
            Arc::new(Shared {
                events: Mutex::new(VecDeque::new()),
                doorbell: Pipe::new(),
                control: Pipe::new(),
                fd_calls: AtomicUsize::new(0),
                on_fd: Mutex::new(None),
                recycled: Mutex::new(Vec::new()),
            })
        }
        fn post(&self, event: u32) {
            lock(&self.events).push_back(event);
            self.doorbell.ring();
        }
        fn fd_calls(&self) -> usize {
            self.fd_calls.load(Ordering::SeqCst)
        }
    }

    struct PipeSession<const FLAGS_FIRST: bool>(Arc<Shared>);

    impl<const FLAGS_FIRST: bool> Session for PipeSession<FLAGS_FIRST> {
        type Event = u32;
        const DISPATCH_FLAGS_FIRST: bool = FLAGS_FIRST;

        fn next_event(&mut self, _waits: bool) -> Result<Option<u32>, Error> {
            self.0.doorbell.drain();
            Ok(lock(&self.0.events).pop_front())
        }
        fn fd(&mut self) -> Result<RawFd, Error> {
            self.0.fd_calls.fetch_add(1, Ordering::SeqCst);
            if let Some(tx) = lock(&self.0.on_fd).as_ref() {
                let _ = tx.send(());
            }
            Ok(self.0.doorbell.0[0])
        }
        fn control_fd(&self) -> RawFd {
            self.0.control.0[0]
        }
        fn wake(&self) {
            self.0.doorbell.ring();
        }
        fn recycle(&mut self, event: u32) {
            lock(&self.0.recycled).push(event);
        }
    }

    type Lib<X> = Library<PipeSession<false>, X>;

    fn open<const F: bool, X>(lib: &Library<PipeSession<F>, X>, extra: X) -> (u64, Arc<Shared>) {
        let shared = Shared::new();
        (lib.initialize(PipeSession(shared.clone()), extra), shared)
    }

    /// Dispatches `how`, returning the result and the events whose callbacks ran.
    fn dispatch_log<const F: bool>(
        lib: &Library<PipeSession<F>, ()>,
        handle: u64,
        how: cs_dispatch_flags_t,
    ) -> (cs_error_t, Vec<u32>) {
        let mut ran = Vec::new();
        let r = lib.dispatch(
            handle,
            how,
            |_, _| (),
            |e, ()| {
                ran.push(*e);
                Ok(())
            },
        );
        (r, ran)
    }

    #[test]
    fn unknown_flags_are_checked_where_corosyncs_library_checks_them() {
        let first: Library<PipeSession<true>, ()> = Library::new();
        let (h, _s) = open(&first, ());
        assert_eq!(dispatch_log(&first, 0, 9).0, CS_ERR_INVALID_PARAM);
        assert_eq!(dispatch_log(&first, h, 9).0, CS_ERR_INVALID_PARAM);
        let handle_first: Lib<()> = Library::new();
        let (h, _s) = open(&handle_first, ());
        assert_eq!(dispatch_log(&handle_first, 0, 9).0, CS_ERR_BAD_HANDLE);
        assert_eq!(dispatch_log(&handle_first, h, 9).0, CS_ERR_INVALID_PARAM);
        assert_eq!(
            dispatch_log(&handle_first, 0, CS_DISPATCH_ALL).0,
            CS_ERR_BAD_HANDLE
        );
    }

    #[test]
    fn dispatch_runs_as_many_callbacks_as_the_flags_say() {
        let lib: Lib<()> = Library::new();
        let (h, s) = open(&lib, ());
        for e in 1..=4 {
            s.post(e);
        }
        assert_eq!(dispatch_log(&lib, h, CS_DISPATCH_ONE), (CS_OK, vec![1]));
        assert_eq!(
            dispatch_log(&lib, h, CS_DISPATCH_ONE_NONBLOCKING),
            (CS_OK, vec![2])
        );
        assert_eq!(dispatch_log(&lib, h, CS_DISPATCH_ALL), (CS_OK, vec![3, 4]));
        assert_eq!(dispatch_log(&lib, h, CS_DISPATCH_ALL), (CS_OK, vec![]));
        assert_eq!(
            dispatch_log(&lib, h, CS_DISPATCH_ONE_NONBLOCKING),
            (CS_ERR_TRY_AGAIN, vec![])
        );
        // A failing callback ends the dispatch with its error.
        s.post(5);
        s.post(6);
        let r = lib.dispatch(h, CS_DISPATCH_ALL, |_, _| (), |_, ()| Err(CS_ERR_LIBRARY));
        assert_eq!(r, CS_ERR_LIBRARY);
        assert_eq!(dispatch_log(&lib, h, CS_DISPATCH_ALL), (CS_OK, vec![6]));
    }

    #[test]
    fn each_event_goes_back_to_its_session_once_its_callback_ran() {
        let lib: Lib<()> = Library::new();
        let (h, s) = open(&lib, ());
        for e in 1..=3 {
            s.post(e);
        }
        assert_eq!(dispatch_log(&lib, h, CS_DISPATCH_ONE), (CS_OK, vec![1]));
        assert_eq!(*lock(&s.recycled), [1]);
        assert_eq!(dispatch_log(&lib, h, CS_DISPATCH_ALL), (CS_OK, vec![2, 3]));
        assert_eq!(*lock(&s.recycled), [1, 2, 3]);
        // A callback that finalizes: its event goes with the session, not back to it.
        s.post(4);
        let r = lib.dispatch(
            h,
            CS_DISPATCH_ALL,
            |_, _| (),
            |_, ()| {
                assert_eq!(lib.finalize(h, |_| ()), CS_OK);
                Ok(())
            },
        );
        assert_eq!(r, CS_ERR_BAD_HANDLE);
        assert_eq!(*lock(&s.recycled), [1, 2, 3]);
    }

    #[test]
    fn take_sees_the_librarys_state_with_the_handle_locked() {
        let lib: Lib<Vec<u32>> = Library::new();
        let (h, s) = open(&lib, vec![10, 20]);
        s.post(1);
        s.post(0);
        let mut got = Vec::new();
        let r = lib.dispatch(
            h,
            CS_DISPATCH_ALL,
            |x: &mut Vec<u32>, e| x[*e as usize],
            |_, v| {
                got.push(v);
                // The handle is unlocked here: the library may be called.
                assert_eq!(lib.with(h, |_, _| CS_OK), CS_OK);
                Ok(())
            },
        );
        assert_eq!((r, got), (CS_OK, vec![20, 10]));
    }

    #[test]
    fn a_callback_may_finalize_its_handle() {
        let lib: Lib<u32> = Library::new();
        let (h, s) = open(&lib, 0);
        s.post(1);
        s.post(2);
        let mut cleaned = 0;
        let mut ran = Vec::new();
        let r = lib.dispatch(
            h,
            CS_DISPATCH_ALL,
            |_, _| (),
            |e, ()| {
                ran.push(*e);
                assert_eq!(lib.finalize(h, |_| cleaned += 1), CS_OK);
                Ok(())
            },
        );
        assert_eq!((r, ran, cleaned), (CS_ERR_BAD_HANDLE, vec![1], 1));
        assert_eq!(lib.with(h, |_, _| CS_OK), CS_ERR_BAD_HANDLE);
        assert_eq!(lib.finalize(h, |_| cleaned += 1), CS_ERR_BAD_HANDLE);
        assert_eq!(cleaned, 1);
        let mut fd = -1;
        // SAFETY: a valid int to write.
        assert_eq!(unsafe { lib.fd_get(h, &mut fd) }, CS_ERR_BAD_HANDLE);
        assert!(!lib.contains(h));
    }

    #[test]
    fn finalize_wakes_a_blocking_dispatch_of_another_thread() {
        let lib: Arc<Lib<()>> = Arc::new(Library::new());
        let (h, s) = open(&lib, ());
        let (tx, sleeping) = mpsc::channel();
        *lock(&s.on_fd) = Some(tx);
        s.post(1);
        let dispatcher = {
            let lib = lib.clone();
            std::thread::spawn(move || dispatch_log(&lib, h, CS_DISPATCH_BLOCKING))
        };
        // The dispatch ran the event and asks for the fd to sleep on: no event will come.
        sleeping.recv().unwrap();
        assert_eq!(lib.finalize(h, |_| ()), CS_OK);
        assert_eq!(dispatcher.join().unwrap(), (CS_ERR_BAD_HANDLE, vec![1]));
    }

    #[test]
    fn a_blocking_dispatch_sleeps_until_an_event_comes() {
        let lib: Arc<Lib<()>> = Arc::new(Library::new());
        let (h, s) = open(&lib, ());
        let (tx, sleeping) = mpsc::channel();
        *lock(&s.on_fd) = Some(tx);
        let dispatcher = {
            let lib = lib.clone();
            std::thread::spawn(move || dispatch_log(&lib, h, CS_DISPATCH_ONE))
        };
        sleeping.recv().unwrap();
        // The handle is unlocked while the dispatch sleeps.
        assert_eq!(lib.with(h, |_, _| CS_OK), CS_OK);
        s.post(7);
        assert_eq!(dispatcher.join().unwrap(), (CS_OK, vec![7]));
    }

    #[test]
    fn the_fd_is_rearmed_after_every_call_once_asked_for() {
        let lib: Lib<()> = Library::new();
        let (h, s) = open(&lib, ());
        assert_eq!(lib.with(h, |_, _| CS_OK), CS_OK);
        assert_eq!(dispatch_log(&lib, h, CS_DISPATCH_ALL).0, CS_OK);
        assert_eq!(
            s.fd_calls(),
            0,
            "an application that never polls pays nothing"
        );
        let mut fd = -1;
        // SAFETY: a valid int to write.
        assert_eq!(unsafe { lib.fd_get(h, &mut fd) }, CS_OK);
        assert_eq!(fd, s.doorbell.0[0]);
        let after_get = s.fd_calls();
        assert_eq!(lib.with(h, |_, _| CS_OK), CS_OK);
        assert_eq!(s.fd_calls(), after_get + 1);
        assert_eq!(
            dispatch_log(&lib, h, CS_DISPATCH_ONE_NONBLOCKING).0,
            CS_ERR_TRY_AGAIN
        );
        assert_eq!(s.fd_calls(), after_get + 2);
        // SAFETY: NULL is refused before any write.
        assert_eq!(
            unsafe { lib.fd_get(h, std::ptr::null_mut()) },
            CS_ERR_INVALID_PARAM
        );
    }

    #[test]
    fn a_panic_is_a_library_error_and_the_handle_stays_usable() {
        let lib: Lib<u32> = Library::new();
        let (h, _s) = open(&lib, 0);
        assert_eq!(lib.with(h, |_, _| panic!("a bug")), CS_ERR_LIBRARY);
        assert_eq!(
            lib.with(h, |_, x| {
                *x += 1;
                CS_OK
            }),
            CS_OK
        );
        assert_eq!(lib.finalize(h, |x| assert_eq!(*x, 1)), CS_OK);
    }
}
