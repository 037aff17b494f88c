//! The attach handshake and sessions between real sockets and processes: round trips in every
//! wait mode, wake-ups, the pollable fd, permission refusal under another uid, either side dying
//! by SIGKILL, and a client that writes garbage into its ring.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_shm::layout::{RecordHeader, DATA_OFFSET, RECORD_KIND_DATA};
use ipc_shm::{
    AcceptError, AllowList, AttachError, Client, Server, ServerConfig, Session, SessionError,
    WaitMode,
};

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipc-shm-test-{}-{tag}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn small_config() -> ServerConfig {
    ServerConfig {
        data_size: 64 << 10,
        record_size_max: 16 << 10,
        handshake_timeout: Duration::from_secs(2),
    }
}

/// A server and one attached client, both in this process.
fn attached(tag: &str, allow: AllowList) -> (Server, Session, Session) {
    let name = unique_name(tag);
    let server = Server::bind_with(&name, allow, small_config()).unwrap();
    let connecting = std::thread::spawn(move || Client::connect(&name));
    let session = server.accept().unwrap();
    let client = connecting.join().unwrap().unwrap();
    (server, session, client)
}

fn echo_once(server: &mut Session, client: &mut Session, record: &[u8], mode: WaitMode) {
    let mut buf = vec![0u8; 16 << 10];
    client.send_timeout(record, mode, TIMEOUT).unwrap();
    let n = server.recv_timeout(&mut buf, mode, TIMEOUT).unwrap();
    server.send_timeout(&buf[..n], mode, TIMEOUT).unwrap();
    let n = client.recv_timeout(&mut buf, mode, TIMEOUT).unwrap();
    assert_eq!(&buf[..n], record);
}

#[test]
fn round_trip_in_every_wait_mode() {
    let (_server, mut s, mut c) = attached("echo", AllowList::root_only());
    assert_eq!(s.peer().pid, std::process::id() as i32);
    assert_eq!(s.peer().uid, unsafe_getuid());
    for mode in [
        WaitMode::Busy,
        WaitMode::Blocking,
        WaitMode::Adaptive { spin_ns: 10_000 },
    ] {
        for size in [0, 1, 64, 1000, 16 << 10] {
            echo_once(&mut s, &mut c, &vec![size as u8; size], mode);
        }
    }
}

fn unsafe_getuid() -> u32 {
    // Safety: getuid cannot fail.
    unsafe { libc::getuid() }
}

#[test]
fn blocking_recv_sleeps_until_the_peer_sends() {
    let (_server, mut s, mut c) = attached("wake", AllowList::root_only());
    let waiter = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let n = c
            .recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT)
            .unwrap();
        buf[..n].to_vec()
    });
    std::thread::sleep(Duration::from_millis(50));
    s.try_send(b"wake").unwrap();
    assert_eq!(waiter.join().unwrap(), b"wake");
}

#[test]
fn a_record_sent_just_before_the_peer_closes_is_received_before_its_going() {
    // Send and close come together: the sleeping receiver's one poll sees the record's wake-up
    // and the hang-up at once, yet gets the record first (as a refused CPG attach does).
    for round in 0..20 {
        let (_server, mut s, mut c) = attached("lastwords", AllowList::root_only());
        let waiter = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            let first = c.recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT);
            let first = first.map(|n| buf[..n].to_vec());
            let then = c.recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT);
            (first, then.map(|n| buf[..n].to_vec()))
        });
        std::thread::sleep(Duration::from_millis(20));
        s.try_send(b"last words").unwrap();
        drop(s);
        let (first, then) = waiter.join().unwrap();
        assert!(
            matches!(&first, Ok(r) if r == b"last words"),
            "round {round}: {first:?}"
        );
        assert!(
            matches!(then, Err(SessionError::PeerGone)),
            "round {round}: {then:?}"
        );
    }
}

#[test]
fn full_ring_says_try_again_and_blocking_send_waits_for_space() {
    let (_server, mut s, mut c) = attached("full", AllowList::root_only());
    let record = vec![5u8; 1000];
    let mut pushed = 0;
    loop {
        match c.try_send(&record) {
            Ok(()) => pushed += 1,
            Err(SessionError::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(pushed > 50);
    let sender = std::thread::spawn(move || {
        c.send_timeout(b"last", WaitMode::Blocking, TIMEOUT)
            .unwrap();
        c
    });
    std::thread::sleep(Duration::from_millis(50));
    let mut buf = vec![0u8; 16 << 10];
    for _ in 0..pushed {
        assert_eq!(
            s.recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT)
                .unwrap(),
            1000
        );
    }
    let n = s
        .recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT)
        .unwrap();
    assert_eq!(&buf[..n], b"last", "nothing overwritten or dropped");
    sender.join().unwrap();
}

#[test]
fn timeout_is_reported() {
    let (_server, mut s, _c) = attached("timeout", AllowList::root_only());
    let mut buf = [0u8; 8];
    for mode in [
        WaitMode::Busy,
        WaitMode::Blocking,
        WaitMode::Adaptive { spin_ns: 1000 },
    ] {
        let started = Instant::now();
        let got = s.recv_timeout(&mut buf, mode, Some(Duration::from_millis(20)));
        assert!(
            matches!(got, Err(SessionError::TimedOut)),
            "{mode:?}: {got:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}

#[test]
fn armed_fd_becomes_readable_in_a_poll_loop() {
    let (_server, mut s, mut c) = attached("fd", AllowList::root_only());
    assert!(!c.arm_for_poll().unwrap());
    let mut pfd = libc::pollfd {
        fd: c.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Safety: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 0) },
        0,
        "not readable before a send"
    );
    s.try_send(b"event").unwrap();
    // Safety: as above.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 5000) },
        1,
        "readable after a send"
    );
    let mut buf = [0u8; 8];
    assert_eq!(c.try_recv(&mut buf).unwrap(), 5);
    assert!(matches!(c.try_recv(&mut buf), Err(SessionError::Empty)));
    s.try_send(b"again").unwrap();
    assert!(
        c.arm_for_poll().unwrap(),
        "arming reports a record already waiting"
    );
}

/// A server that will look at a session at its next wake-up anyway withdraws its arming: the
/// peer's records then wait in the ring without signalling, until the server arms again.
#[test]
fn a_disarmed_session_is_not_signalled_until_armed_again() {
    let (_server, mut s, mut c) = attached("disarm", AllowList::root_only());
    let mut pfd = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    assert!(!s.arm_for_poll().unwrap());
    s.disarm();
    c.try_send(b"quiet").unwrap();
    // Safety: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 20) },
        0,
        "a record sent to a disarmed session signalled it"
    );
    assert!(s.arm_for_poll().unwrap(), "arming finds the record waiting");
    let mut buf = [0u8; 8];
    assert_eq!(s.try_recv(&mut buf).unwrap(), 5);
    assert!(!s.arm_for_poll().unwrap());
    c.try_send(b"loud").unwrap();
    // Safety: as above.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 5000) },
        1,
        "armed again, a record signals"
    );
}

/// The client's fd is a socket whose peer credentials are the server's, so an application
/// can check who serves it (Pacemaker refuses a provider that does not run as root), and
/// `signal_self` makes it readable (a thread sleeping on it wakes) until it is drained.
#[test]
fn the_clients_fd_names_the_server_and_wakes_on_its_own_signal() {
    let (_server, _s, mut c) = attached("cred", AllowList::root_only());
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // Safety: SO_PEERCRED into a valid ucred of the given length.
    let r = unsafe {
        libc::getsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "SO_PEERCRED on the client's fd");
    assert_eq!(cred.pid as u32, std::process::id(), "the server created it");
    assert_eq!(cred.uid, unsafe_getuid());
    assert!(!c.arm_for_poll().unwrap());
    let mut pfd = libc::pollfd {
        fd: c.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    c.signal_self();
    c.signal_self();
    // Safety: one valid pollfd.
    assert_eq!(
        unsafe { libc::poll(&mut pfd, 1, 0) },
        1,
        "readable once signalled"
    );
    assert!(!c.arm_for_poll().unwrap(), "arming drains every signal");
    // Safety: as above.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0, "drained");
}

#[test]
fn connect_without_a_server_is_a_clear_error() {
    let err = Client::connect(&unique_name("nobody")).err().unwrap();
    assert!(matches!(err, AttachError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

/// Runs `child` in a forked process (which exits with its return value) and returns its pid.
fn fork_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    // Safety: the child only runs `child` (socket calls and small allocations, which glibc keeps
    // usable after fork) and then leaves with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // Safety: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn wait_child(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // Safety: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    }
}

fn kill_child(pid: libc::pid_t) {
    // Safety: signals our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_child(pid);
}

const NOBODY: u32 = 65534;
const EXIT_ATTACHED: i32 = 0;
const EXIT_DENIED: i32 = 13;
const EXIT_OTHER: i32 = 1;

/// A child that drops to uid/gid 65534 and tries to attach.
fn connect_as_nobody(name: String) -> libc::pid_t {
    fork_child(move || {
        // Safety: plain syscalls in the forked child; gid first, while we may still change it.
        let dropped = unsafe {
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(NOBODY) == 0
                && libc::setuid(NOBODY) == 0
        };
        if !dropped {
            return EXIT_OTHER;
        }
        match Client::connect(&name) {
            Ok(_) => EXIT_ATTACHED,
            Err(AttachError::PermissionDenied { uid }) if uid == NOBODY => {
                let message = AttachError::PermissionDenied { uid }.to_string();
                if message == "permission denied for uid 65534" {
                    EXIT_DENIED
                } else {
                    EXIT_OTHER
                }
            }
            Err(_) => EXIT_OTHER,
        }
    })
}

#[test]
fn uid_not_on_the_allow_list_is_refused_with_a_clear_error() {
    if unsafe_getuid() != 0 {
        println!(
            "skipped: needs root to run the client under uid 65534 (we run as uid {})",
            unsafe_getuid()
        );
        return;
    }
    let name = unique_name("refuse");
    let server = Server::bind_with(
        &name,
        AllowList::root_only().allow_uid(1000).allow_gid(1000),
        small_config(),
    )
    .unwrap();
    let child = connect_as_nobody(name);
    let refused = server.accept().err().unwrap();
    assert!(
        matches!(
            refused,
            AcceptError::PermissionDenied {
                uid: NOBODY,
                gid: NOBODY,
                ..
            }
        ),
        "{refused}"
    );
    assert_eq!(
        wait_child(child),
        EXIT_DENIED,
        "child saw `permission denied for uid 65534`"
    );
}

#[test]
fn uid_and_gid_on_the_allow_list_are_admitted() {
    if unsafe_getuid() != 0 {
        println!(
            "skipped: needs root to run the client under uid 65534 (we run as uid {})",
            unsafe_getuid()
        );
        return;
    }
    for allow in [
        AllowList::root_only().allow_uid(NOBODY),
        AllowList::root_only().allow_gid(NOBODY),
    ] {
        let name = unique_name("admit");
        let server = Server::bind_with(&name, allow, small_config()).unwrap();
        let child = connect_as_nobody(name);
        let session = server.accept().unwrap();
        assert_eq!(session.peer().uid, NOBODY);
        assert_eq!(wait_child(child), EXIT_ATTACHED);
    }
}

#[test]
fn client_killed_by_sigkill_is_noticed_by_the_server() {
    let name = unique_name("client-dies");
    let server = Server::bind_with(&name, AllowList::root_only(), small_config()).unwrap();
    let child_name = name.clone();
    let child = fork_child(move || {
        let Ok(mut session) = Client::connect(&child_name) else {
            return EXIT_OTHER;
        };
        if session.send(b"alive", WaitMode::Blocking).is_err() {
            return EXIT_OTHER;
        }
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let mut session = server.accept().unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        session
            .recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT)
            .unwrap(),
        5
    );
    kill_child(child);
    let started = Instant::now();
    let got = session.recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT);
    assert!(matches!(got, Err(SessionError::PeerGone)), "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "noticed promptly"
    );
    assert!(matches!(
        session.try_recv(&mut buf),
        Err(SessionError::Closed)
    ));
    // A busy-polling server notices too, through its periodic liveness look.
    let child_name = name.clone();
    let child = fork_child(move || {
        let Ok(_session) = Client::connect(&child_name) else {
            return EXIT_OTHER;
        };
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let mut session = server.accept().unwrap();
    kill_child(child);
    let got = session.recv_timeout(&mut buf, WaitMode::Busy, TIMEOUT);
    assert!(matches!(got, Err(SessionError::PeerGone)), "{got:?}");
}

#[test]
fn server_killed_gives_the_client_an_error_not_a_hang() {
    let name = unique_name("server-dies");
    let child_name = name.clone();
    let (ready_r, ready_w) = pipe();
    let child = fork_child(move || {
        let Ok(server) = Server::bind_with(&child_name, AllowList::root_only(), small_config())
        else {
            return EXIT_OTHER;
        };
        // Safety: one byte to a pipe we own: "listening".
        unsafe { libc::write(ready_w, b"r".as_ptr().cast(), 1) };
        let _sessions: Vec<Session> = (0..3).filter_map(|_| server.accept().ok()).collect();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let mut byte = [0u8; 1];
    // Safety: reads one byte from our pipe (blocks until the child listens).
    assert_eq!(
        unsafe { libc::read(ready_r, byte.as_mut_ptr().cast(), 1) },
        1
    );
    let mut sessions: Vec<Session> = (0..3).map(|_| Client::connect(&name).unwrap()).collect();
    kill_child(child);
    let mut buf = [0u8; 16];
    let got = sessions[0].recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT);
    assert!(
        matches!(got, Err(SessionError::PeerGone)),
        "blocking recv: {got:?}"
    );
    let got = sessions[1].recv_timeout(&mut buf, WaitMode::Busy, TIMEOUT);
    assert!(
        matches!(got, Err(SessionError::PeerGone)),
        "busy recv: {got:?}"
    );
    // A sender notices once it has to wait for space that the dead server will never free.
    let record = vec![0u8; 1000];
    let got = (0..10_000)
        .map(|_| sessions[2].send_timeout(&record, WaitMode::Adaptive { spin_ns: 1000 }, TIMEOUT))
        .find(|r| r.is_err());
    assert!(
        matches!(got, Some(Err(SessionError::PeerGone))),
        "send: {got:?}"
    );
    // Safety: closing our own pipe fds.
    unsafe {
        libc::close(ready_r);
        libc::close(ready_w);
    }
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // Safety: a valid two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

/// Writes `value` at byte `offset` of a client's outgoing ring, as a hostile client would.
fn scribble(client: &Session, offset: usize, value: u64) {
    let map = client.outgoing_mapping();
    assert!(offset + 8 <= map.size());
    // Safety: in bounds of the live mapping (checked above) and 8-aligned.
    unsafe { map.as_ptr().add(offset).cast::<u64>().write_volatile(value) };
}

const HEAD_OFFSET: usize = std::mem::offset_of!(ipc_shm::layout::RingHeader, producer);

#[test]
fn garbage_from_one_client_disconnects_only_that_client() {
    let name = unique_name("garbage");
    let server = Server::bind_with(&name, AllowList::root_only(), small_config()).unwrap();
    let mut sessions = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let n = name.clone();
        let connecting = std::thread::spawn(move || Client::connect(&n));
        sessions.push(server.accept().unwrap());
        clients.push(connecting.join().unwrap().unwrap());
    }
    let mut buf = vec![0u8; 16 << 10];
    // Client 0: a record header from a lap that cannot be (and a cursor beyond the ring, which
    // the consumer no longer reads). Client 1: a garbage header word after a good record.
    // Client 2: a record claiming more bytes than the ring has. Client 3 stays honest.
    let wrong_lap = RecordHeader::encode(8, RECORD_KIND_DATA, 7);
    scribble(&clients[0], DATA_OFFSET, wrong_lap);
    scribble(&clients[0], HEAD_OFFSET, u64::MAX - 7);
    clients[1].try_send(b"good").unwrap();
    scribble(&clients[1], DATA_OFFSET + 16, 0xdead_beef_dead_beef);
    let huge = RecordHeader::encode(u32::MAX, RECORD_KIND_DATA, 0);
    scribble(&clients[2], DATA_OFFSET, huge);

    let got = sessions[0].try_recv(&mut buf);
    assert!(matches!(got, Err(SessionError::Corrupt(_))), "{got:?}");
    assert_eq!(sessions[1].try_recv(&mut buf).unwrap(), 4);
    let got = sessions[1].try_recv(&mut buf);
    assert!(matches!(got, Err(SessionError::Corrupt(_))), "{got:?}");
    let got = sessions[2].try_recv(&mut buf);
    assert!(matches!(got, Err(SessionError::Corrupt(_))), "{got:?}");
    for session in &mut sessions[..3] {
        assert!(session.is_closed());
        assert!(matches!(
            session.try_recv(&mut buf),
            Err(SessionError::Closed)
        ));
    }
    // The misbehaving clients are told: their next wait ends with an error.
    for client in &mut clients[..3] {
        let got = client.recv_timeout(&mut buf, WaitMode::Blocking, TIMEOUT);
        assert!(matches!(got, Err(SessionError::PeerGone)), "{got:?}");
    }
    // The honest client is unaffected.
    let (honest_server, honest_client) = (&mut sessions[3], &mut clients[3]);
    echo_once(
        honest_server,
        honest_client,
        b"still here",
        WaitMode::Blocking,
    );
}

#[test]
fn client_corrupting_the_servers_outgoing_cursor_is_disconnected() {
    let (_server, mut s, c) = attached("tail", AllowList::root_only());
    // The client is the consumer of the server's outgoing ring: it writes the tail there.
    // Reach that mapping through the server session (same process) and corrupt the tail.
    let tail_offset = std::mem::offset_of!(ipc_shm::layout::RingHeader, consumer);
    let map = s.outgoing_mapping().clone();
    // Safety: in bounds of the live mapping and 8-aligned.
    unsafe {
        map.as_ptr()
            .add(tail_offset)
            .cast::<u64>()
            .write_volatile(1 << 50)
    };
    let record = vec![1u8; 1000];
    let got = (0..1000)
        .map(|_| s.try_send(&record))
        .find(|r| r.is_err())
        .unwrap();
    assert!(matches!(got, Err(SessionError::Corrupt(_))), "{got:?}");
    drop(c);
}

#[test]
fn space_freed_by_a_receiver_is_published_when_it_waits_to_send() {
    // The receiver publishes its cursor in batches; if it stops receiving and instead waits to
    // send, the peer blocked on a full ring must still see the space it freed (no deadlock).
    let (_server, mut s, mut c) = attached("batch", AllowList::root_only());
    let record = vec![6u8; 1000];
    while c.try_send(&record).is_ok() {}
    let mut buf = vec![0u8; 16 << 10];
    // One record taken, many left: that space is not published yet.
    assert_eq!(s.try_recv(&mut buf).unwrap(), 1000);
    let sender = std::thread::spawn(move || {
        let sent = c.send_timeout(&record, WaitMode::Blocking, Some(Duration::from_secs(5)));
        (sent, c)
    });
    std::thread::sleep(Duration::from_millis(50));
    // The server now only sends, until its own ring is full: that wait flushes its cursor.
    while s.try_send(b"reply").is_ok() {}
    let (sent, _c) = sender.join().unwrap();
    sent.expect("the blocked sender saw the space the receiver freed");
}

/// Reads every wake-up waiting on the client's poll end (a datagram each) without blocking.
fn wake_ups_waiting(fd: std::os::fd::RawFd) -> usize {
    let mut n = 0;
    loop {
        let mut value = 0u64;
        // Safety: reads at most 8 bytes into a valid u64, non-blocking.
        let r = unsafe { libc::recv(fd, (&mut value as *mut u64).cast(), 8, libc::MSG_DONTWAIT) };
        if r <= 0 {
            return n;
        }
        n += 1;
    }
}

fn readable(fd: std::os::fd::RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // Safety: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}

/// One wait costs the producer one signal, however many records follow before the consumer
/// looks: each signal is a system call, and on the client's wake pair a datagram to read back.
#[test]
fn records_sent_to_a_waiting_consumer_signal_it_once() {
    let (_server, mut s, mut c) = attached("once", AllowList::root_only());
    assert!(!c.arm_for_poll().unwrap());
    for i in 0..50u32 {
        s.try_send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(
        wake_ups_waiting(c.as_raw_fd()),
        1,
        "one signal for 50 records"
    );
}

/// `keep_fd_current` keeps the fd readable exactly while something waits, and calling it
/// again changes nothing (no signal, no drain) until a record is taken.
#[test]
fn the_fd_kept_current_is_readable_exactly_while_records_wait() {
    let (_server, mut s, mut c) = attached("current", AllowList::root_only());
    let fd = c.as_raw_fd();
    assert!(!c.keep_fd_current(false).unwrap());
    assert!(!readable(fd), "nothing waits");
    s.try_send(b"one").unwrap();
    s.try_send(b"two").unwrap();
    assert!(readable(fd), "the peer's signal");
    for _ in 0..10 {
        assert!(c.keep_fd_current(false).unwrap());
    }
    assert!(readable(fd));
    let mut buf = [0u8; 8];
    assert_eq!(c.try_recv(&mut buf).unwrap(), 3);
    assert!(c.keep_fd_current(false).unwrap(), "one still waits");
    assert!(readable(fd));
    assert_eq!(c.try_recv(&mut buf).unwrap(), 3);
    assert!(!c.keep_fd_current(false).unwrap());
    assert!(!readable(fd), "drained once the ring is empty");
    assert!(
        c.keep_fd_current(true).unwrap(),
        "records held by the caller"
    );
    assert!(readable(fd));
    assert!(!c.keep_fd_current(false).unwrap());
    assert!(!readable(fd), "drained once nothing is held");
    s.try_send(b"three").unwrap();
    assert!(c.keep_fd_current(false).unwrap());
    assert!(readable(fd));
    assert_eq!(
        wake_ups_waiting(fd),
        1,
        "calls in between added no signal of their own"
    );
}

/// `record_waiting` looks without taking the record or touching the wake fd: a sender that
/// watches for deliveries while refused room must not cost the peer a signal.
#[test]
fn record_waiting_looks_without_taking_or_signalling() {
    let (_server, mut s, mut c) = attached("looks", AllowList::root_only());
    let fd = c.as_raw_fd();
    assert!(!c.record_waiting().unwrap());
    s.try_send(b"one").unwrap();
    for _ in 0..3 {
        assert!(c.record_waiting().unwrap());
    }
    assert!(!readable(fd), "not armed: no signal, and looking made none");
    let mut buf = [0u8; 8];
    assert_eq!(c.try_recv(&mut buf).unwrap(), 3, "still there to take");
    assert!(!c.record_waiting().unwrap());
}
