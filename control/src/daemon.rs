//! rotord's event loop: it supervises the dataplane process, brokers client attaches (CPG
//! sessions are handed to the dataplane, cmap/cfg sessions stay here), answers cmap and cfg
//! requests, and keeps `runtime.*` and `stats.*` current from the dataplane's reports. One
//! thread, one poll(2) loop; nothing here is on the per-message path.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipc_shm::{AcceptError, AllowList, Server, Session, SessionError};
use rotor_proto::cfg::{self, NodeStatus, StatusReply};
use rotor_proto::cmap as pc;
use rotor_proto::control::{FromDataplane, ToDataplane};
use rotor_proto::Status;

use crate::cmap::{Access, Cmap, CmapError, TrackFilter, TrackHandle, Value};
use crate::config::Config;
use crate::log_at;

/// Everything rotord decided at start-up.
pub struct Plan {
    pub config: Config,
    pub node_id: u32,
    pub bind: SocketAddr,
    /// Every other node: id and address.
    pub peers: Vec<(u32, SocketAddr)>,
    pub keyfile: PathBuf,
    pub cluster_name: String,
    pub dataplane: PathBuf,
    pub socket_base: String,
    pub foreground: bool,
    /// Where the highest ring sequence is kept across restarts (`system.state_dir`).
    pub state_dir: PathBuf,
}

/// `system.state_dir` when the config does not set it (corosync's is /var/lib/corosync).
pub const STATE_DIR_DEFAULT: &str = "/var/lib/rotor";

/// The highest ring sequence this node has been part of, kept in `<state_dir>/ringid_<node>`
/// (decimal text) as corosync keeps its ring id: a restarted node must number new rings above
/// every ring it was in, or two different rings could share an id.
struct RingSeqFile {
    /// `None` when the directory cannot be used (logged once; the node still runs).
    path: Option<PathBuf>,
    saved: u64,
}

impl RingSeqFile {
    fn open(dir: &std::path::Path, node_id: u32) -> RingSeqFile {
        if let Err(e) = std::fs::create_dir_all(dir) {
            log_at!(
                Warning,
                "MAIN",
                "state directory {}: {e}; ring sequence not kept across restarts",
                dir.display()
            );
            return RingSeqFile {
                path: None,
                saved: 0,
            };
        }
        let path = dir.join(format!("ringid_{node_id}"));
        let saved = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                log_at!(
                    Warning,
                    "MAIN",
                    "{}: not a ring sequence (\"{}\"); starting from 0",
                    path.display(),
                    text.trim()
                );
                0
            }),
            Err(_) => 0,
        };
        RingSeqFile {
            path: Some(path),
            saved,
        }
    }

    /// Records `seq` if it is higher than what is kept (write to a temporary, then rename).
    fn record(&mut self, seq: u64) {
        if seq <= self.saved {
            return;
        }
        self.saved = seq;
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result =
            std::fs::write(&tmp, format!("{seq}\n")).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            log_at!(
                Warning,
                "MAIN",
                "{}: {e}; ring sequence not kept across restarts",
                path.display()
            );
            self.path = None;
        }
    }
}

/// This node's id and address, and every other node's.
pub type LocalNode = (u32, SocketAddr, Vec<(u32, SocketAddr)>);

/// Chooses the local node from the nodelist: `node_id` if given (rotor's `--node-id`), else
/// the node whose ring0_addr is an address of this host. Without a nodelist: a one-node
/// cluster on the loopback address.
pub fn local_node(config: &Config, node_id: Option<u32>) -> Result<LocalNode, String> {
    let port = config
        .totem
        .interfaces
        .first()
        .map(|i| i.mcastport)
        .unwrap_or(crate::config::MCASTPORT_DEFAULT);
    if config.nodes.is_empty() {
        let id = node_id.unwrap_or(1);
        return Ok((
            id,
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port),
            Vec::new(),
        ));
    }
    let local: Vec<IpAddr> = local_addresses();
    let mut me = None;
    let mut all = Vec::new();
    for n in &config.nodes {
        let ring0 = n.ring_addrs[0].as_deref().unwrap_or_default();
        let addr = resolve(ring0)
            .map_err(|e| format!("{}: nodelist.node.{}.ring0_addr: {e}", config.file, n.index))?;
        let id = n.nodeid.ok_or_else(|| {
            format!(
                "{}: nodelist.node.{}.nodeid: required (rotor has no automatic node ids)",
                config.file, n.index
            )
        })?;
        let sa = SocketAddr::new(addr, port);
        let mine = match node_id {
            Some(want) => want == id,
            None => local.contains(&addr),
        };
        if mine {
            if me.is_some() {
                return Err(format!(
                    "{}: more than one nodelist entry is an address of this host; pick one with --node-id",
                    config.file
                ));
            }
            me = Some((id, sa));
        } else {
            all.push((id, sa));
        }
    }
    match me {
        Some((id, sa)) => Ok((id, sa, all)),
        None => Err(match node_id {
            Some(id) => format!("{}: no nodelist entry has nodeid {id}", config.file),
            None => format!(
                "{}: no nodelist entry's ring0_addr is an address of this host ({})",
                config.file,
                local
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

fn resolve(name: &str) -> Result<IpAddr, String> {
    if let Ok(a) = name.parse::<IpAddr>() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs;
    (name, 0)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{name}\": {e}"))?
        .next()
        .map(|sa| sa.ip())
        .ok_or_else(|| format!("\"{name}\" resolves to no address"))
}

/// The addresses of this host's interfaces (getifaddrs).
pub fn local_addresses() -> Vec<IpAddr> {
    local_interfaces().into_iter().map(|(_, a)| a).collect()
}

/// Every IPv4 and IPv6 address of this host's interfaces with the interface's name
/// (getifaddrs), in the calling thread's network namespace.
pub fn local_interfaces() -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once; every
    // non-null ifa_name is a NUL-terminated string and every non-null ifa_addr a sockaddr of
    // the family it names, valid until freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            let name = if (*p).ifa_name.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr((*p).ifa_name)
                    .to_string_lossy()
                    .into_owned()
            };
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        let ip = IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes());
                        out.push((name, ip));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        out.push((name, IpAddr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The allow-list from uidgid{}: root always, plus `uidgid.config.uid.*`/`gid.*` entries.
pub fn allow_list(cmap: &Cmap) -> AllowList {
    let mut allow = AllowList::root_only();
    for (k, _) in cmap.iter_prefix("uidgid.config.uid.") {
        if let Some(uid) = k.rsplit('.').next().and_then(|s| s.parse().ok()) {
            allow = allow.allow_uid(uid);
        }
    }
    for (k, _) in cmap.iter_prefix("uidgid.config.gid.") {
        if let Some(gid) = k.rsplit('.').next().and_then(|s| s.parse().ok()) {
            allow = allow.allow_gid(gid);
        }
    }
    allow
}

struct Dataplane {
    child: Child,
    control: OwnedFd,
}

struct CmapClient {
    session: Session,
    tracks: Vec<TrackHandle>,
}

/// The daemon's state.
pub struct Daemon {
    plan: Plan,
    cmap: Cmap,
    dataplane: Option<Dataplane>,
    restart_at: Option<Instant>,
    cmap_server: Server,
    cpg_server: Server,
    clients: Vec<CmapClient>,
    ring: (String, u32, u64, Vec<u32>, String),
    ready_sent: bool,
    shutting_down: bool,
    ring_seq: RingSeqFile,
    /// The XDP program rotord attached (XDP transport), kept across dataplane restarts and
    /// detached on a clean shutdown; `None` on kernel UDP.
    xdp: Option<crate::xdp::OwnedProgram>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

/// The dataplane's name in log-file lines of what it logged.
const DATAPLANE_NAME: &str = "rotor-dataplane";

/// Now, in nanoseconds since the Unix epoch.
fn unix_time_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The least time between a dataplane's death and its restart.
const RESTART_BACKOFF: Duration = Duration::from_millis(1100);

impl Daemon {
    pub fn new(plan: Plan, cmap: Cmap) -> Result<Daemon, String> {
        let allow = allow_list(&cmap);
        let cmap_server = Server::bind(&plan.socket_base, allow.clone()).map_err(|e| {
            format!(
                "cannot listen on abstract socket @{}: {e} (is another rotord running in this network namespace?)",
                plan.socket_base
            )
        })?;
        let cpg_name = rotor_proto::cpg_socket_name(&plan.socket_base);
        let cpg_server = Server::bind(&cpg_name, allow)
            .map_err(|e| format!("cannot listen on abstract socket @{cpg_name}: {e}"))?;
        let ring_seq = RingSeqFile::open(&plan.state_dir, plan.node_id);
        // Set-up, while rotord still holds its privileges: the transport, and for XDP the
        // program, attached once for the life of rotord.
        let xdp = match crate::xdp::choose(plan.config.totem.transport, plan.bind)? {
            crate::xdp::Choice::Xdp(program) => Some(program),
            crate::xdp::Choice::Udp(_) => None,
        };
        let mut d = Daemon {
            ring_seq,
            xdp,
            plan,
            cmap,
            dataplane: None,
            restart_at: None,
            cmap_server,
            cpg_server,
            clients: Vec::new(),
            ring: ("down".into(), 0, 0, Vec::new(), String::new()),
            ready_sent: false,
            shutting_down: false,
            buf: vec![0; 1 << 16],
            out: Vec::new(),
        };
        d.publish_runtime();
        Ok(d)
    }

    fn spawn_dataplane(&mut self) -> Result<(), String> {
        let mut pair = [0; 2];
        // SAFETY: socketpair fills two descriptors we then own.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            return Err(format!("socketpair: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: both descriptors are fresh and ours.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let p = &self.plan;
        let t = &p.config.totem;
        let mut cmd = Command::new(&p.dataplane);
        cmd.arg("--node-id")
            .arg(p.node_id.to_string())
            .arg("--bind")
            .arg(p.bind.to_string())
            .arg("--keyfile")
            .arg(&p.keyfile)
            .arg("--cluster-name")
            .arg(&p.cluster_name)
            .arg("--crypto-cipher")
            .arg(&t.crypto_cipher)
            .arg("--crypto-hash")
            .arg(&t.crypto_hash)
            .arg("--control-fd")
            .arg("3");
        for (id, addr) in &p.peers {
            cmd.arg("--peer").arg(format!("{id}={addr}"));
        }
        cmd.arg("--ring-seq").arg(self.ring_seq.saved.to_string());
        // rotord already added token_coefficient × (nodes − 2) to the token: the dataplane must
        // not add it again.
        cmd.arg("--totem").arg("token_coefficient=0");
        for (k, v) in t.timeouts.runtime_entries() {
            let name = k.trim_start_matches("runtime.config.totem.");
            if let (Value::U32(v), true) = (v, DATAPLANE_TOTEM_KEYS.contains(&name)) {
                cmd.arg("--totem").arg(format!("{name}={v}"));
            }
        }
        // rotord chose the transport at start: XDP means its own program, whose maps the
        // dataplane inherits as fds 4 and 5 (placed in pre_exec below); otherwise kernel UDP.
        let maps = self.xdp.as_ref().map(|x| x.map_fds());
        match &self.xdp {
            Some(x) => {
                cmd.arg("--transport")
                    .arg(x.dataplane_transport())
                    .arg("--interface")
                    .arg(x.interface())
                    .arg("--xdp-maps-fd")
                    .arg(format!(
                        "{},{}",
                        crate::xdp::XSKS_CHILD_FD,
                        crate::xdp::COUNTERS_CHILD_FD
                    ));
            }
            None => {
                cmd.arg("--transport").arg("udp");
            }
        }
        // udp (and xdp with an mcastaddr) multicast; a node alone has nobody to multicast to.
        if let Some(m) = t.multicast.filter(|_| !p.peers.is_empty()) {
            cmd.arg("--mcast").arg(m.addr.to_string());
            cmd.arg("--mcast-ttl").arg(m.ttl.to_string());
        }
        let rotor = &p.config.rotor;
        cmd.arg("--poll").arg(match rotor.poll_mode {
            crate::config::PollMode::Busy => "busy",
            crate::config::PollMode::Adaptive => "adaptive",
            crate::config::PollMode::Blocking => "blocking",
            crate::config::PollMode::Auto => "auto",
        });
        cmd.arg("--spin-us").arg(rotor.poll_spin_us.to_string());
        if let Some(core) = rotor.dataplane_cores.first() {
            cmd.arg("--core").arg(core.to_string());
        }
        let theirs_fd = theirs.as_raw_fd();
        // SAFETY: between fork and exec we only call async-signal-safe dup2/fcntl/prctl. The
        // control socket goes first: it may sit at 4 or 5, which the map fds (numbered 10 and
        // up, see xdp::OwnedProgram) overwrite next.
        unsafe {
            cmd.pre_exec(move || {
                place_fd(theirs_fd, 3)?;
                if let Some((xsks, counters)) = maps {
                    place_fd(xsks, crate::xdp::XSKS_CHILD_FD)?;
                    place_fd(counters, crate::xdp::COUNTERS_CHILD_FD)?;
                }
                // The dataplane must not outlive a rotord killed without a chance to stop it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", p.dataplane.display()))?;
        drop(theirs);
        // The dataplane logs through the control socket; what reaches its stderr was written
        // before its logger ran or outside it (a panic, libbpf): logged as a warning.
        let pid = child.id();
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let record = rotor_log::LogRecord {
                        level: rotor_log::Level::Warning,
                        subsys: "MAIN".into(),
                        file: String::new(),
                        line: 0,
                        message: format!("dataplane stderr: {line}"),
                        unix_time_ns: unix_time_ns(),
                    };
                    rotor_log::emit(&record, pid, DATAPLANE_NAME);
                }
            });
        }
        set_nonblocking(ours.as_raw_fd());
        log_at!(Notice, "MAIN", "dataplane started (pid {pid})");
        // Which of its lines the dataplane sends up (until this arrives, all of them).
        let mut msg = Vec::new();
        ToDataplane::Logging(crate::log::config(&self.cmap, self.plan.foreground)).encode(&mut msg);
        if let Err(e) = ipc_shm::handoff::send_message(ours.as_raw_fd(), &msg, &[]) {
            log_at!(
                Warning,
                "MAIN",
                "sending the logging configuration to the dataplane: {e}"
            );
        }
        self.dataplane = Some(Dataplane {
            child,
            control: ours,
        });
        Ok(())
    }

    /// Runs until SIGTERM/SIGINT (`stop` returns true) or a cfg shutdown.
    pub fn run(&mut self, stop: &dyn Fn() -> bool) -> Result<(), String> {
        // Set-up is done (config, key, sockets, log, XDP program): from here rotord itself
        // needs a capability only to detach its program, and the dataplane it starts only
        // those its transport needs.
        let (bounding, kept) = crate::privs::after_setup(self.xdp.is_some());
        match crate::privs::drop_to(bounding, kept) {
            Ok(d) if d.bounding.is_empty() && d.kept.is_empty() => {}
            Ok(d) => log_at!(
                Notice,
                "MAIN",
                "privileges dropped: rotord keeps {}; the dataplane may have {}",
                crate::privs::Dropped::names(&d.kept),
                crate::privs::Dropped::names(&d.bounding)
            ),
            Err(e) => log_at!(Error, "MAIN", "could not drop privileges: {e}"),
        }
        self.spawn_dataplane()?;
        let mut last_check = Instant::now();
        while !(stop() || self.shutting_down) {
            self.supervise();
            let mut fds = vec![self.cmap_server.as_raw_fd(), self.cpg_server.as_raw_fd()];
            if let Some(dp) = &self.dataplane {
                fds.push(dp.control.as_raw_fd());
            }
            for c in &mut self.clients {
                let _ = c.session.arm_for_poll();
                fds.push(c.session.as_raw_fd());
                fds.push(c.session.control_fd());
            }
            let ready = poll_in(&fds, Duration::from_millis(200));
            if ready.first() == Some(&true) {
                match self.cmap_server.accept() {
                    Ok(s) => self.clients.push(CmapClient {
                        session: s,
                        tracks: Vec::new(),
                    }),
                    // ipc-shm logged the refusal (and logs an attach at debug level).
                    Err(AcceptError::Io(e)) => log_at!(Warning, "IPC", "cmap/cfg attach: {e}"),
                    Err(_) => {}
                }
            }
            if ready.get(1) == Some(&true) {
                self.broker_cpg();
            }
            self.read_dataplane();
            self.serve_clients();
            if last_check.elapsed() > Duration::from_millis(500) {
                last_check = Instant::now();
                for c in &mut self.clients {
                    let _ = c.session.check_peer();
                }
            }
            self.reap_clients();
            self.route_track_events();
        }
        self.shutdown();
        Ok(())
    }

    fn broker_cpg(&mut self) {
        let detached = match self.cpg_server.accept_detached() {
            Ok(d) => d,
            Err(AcceptError::Io(e)) => {
                log_at!(Warning, "CPG", "CPG attach: {e}");
                return;
            }
            // ipc-shm logged the refusal, with the peer's credentials.
            Err(_) => return,
        };
        let Some(dp) = &self.dataplane else {
            log_at!(
                Warning,
                "CPG",
                "client pid {} refused: the dataplane is restarting",
                detached.peer.pid
            );
            return;
        };
        let peer = detached.peer;
        let mut msg = Vec::new();
        ToDataplane::Session {
            pid: peer.pid,
            uid: peer.uid,
            gid: peer.gid,
        }
        .encode(&mut msg);
        match detached.send(dp.control.as_raw_fd(), &msg) {
            Ok(()) => log_at!(
                Debug,
                "CPG",
                "client pid {} (uid {}, gid {}) handed to the dataplane",
                peer.pid,
                peer.uid,
                peer.gid
            ),
            Err(e) => log_at!(
                Warning,
                "CPG",
                "handing client pid {} to the dataplane failed: {e}",
                peer.pid
            ),
        }
    }

    fn supervise(&mut self) {
        if let Some(dp) = &mut self.dataplane {
            match dp.child.try_wait() {
                Ok(Some(status)) => {
                    let pid = dp.child.id();
                    // Its last words (why it exited) are still queued on the socket.
                    self.read_dataplane();
                    log_at!(
                        Error,
                        "MAIN",
                        "dataplane (pid {pid}) exited: {status}; restarting it"
                    );
                    self.dataplane = None;
                    // At least a second apart: the dataplane's per-boot crypto epoch is its
                    // start time in seconds, and peers drop a reused epoch as replays.
                    self.restart_at = Some(Instant::now() + RESTART_BACKOFF);
                    self.ring = ("down".into(), 0, 0, Vec::new(), self.ring.4.clone());
                    self.publish_runtime();
                }
                Ok(None) => {}
                Err(e) => log_at!(Warning, "MAIN", "waitpid: {e}"),
            }
        }
        if self.dataplane.is_none() && self.restart_at.is_some_and(|t| Instant::now() >= t) {
            self.restart_at = None;
            if let Err(e) = self.spawn_dataplane() {
                log_at!(Error, "MAIN", "{e}");
                self.restart_at = Some(Instant::now() + RESTART_BACKOFF);
            }
        }
    }

    fn read_dataplane(&mut self) {
        let Some(dp) = &self.dataplane else { return };
        let fd = dp.control.as_raw_fd();
        let pid = dp.child.id();
        loop {
            let n = match ipc_shm::handoff::recv_message(fd, &mut self.buf) {
                Ok((0, _)) => return, // hang-up: supervise() sees the exit
                Ok((n, _)) => n,
                Err(_) => return,
            };
            match FromDataplane::decode(&self.buf[..n]) {
                Ok(FromDataplane::Ring {
                    state,
                    ring_rep,
                    ring_seq,
                    members,
                    transport,
                }) => {
                    if state == "operational" && (ring_rep, ring_seq) != (self.ring.1, self.ring.2)
                    {
                        let old: Vec<u32> = self.ring.3.clone();
                        let joined: Vec<String> = members
                            .iter()
                            .filter(|m| !old.contains(m))
                            .map(|m| m.to_string())
                            .collect();
                        let left: Vec<String> = old
                            .iter()
                            .filter(|m| !members.contains(m))
                            .map(|m| m.to_string())
                            .collect();
                        log_at!(
                            Notice,
                            "TOTEM",
                            "A new membership ({ring_rep}.{ring_seq:x}) was formed. Members{}{}",
                            if joined.is_empty() {
                                String::new()
                            } else {
                                format!(" joined: {}", joined.join(" "))
                            },
                            if left.is_empty() {
                                String::new()
                            } else {
                                format!(" left: {}", left.join(" "))
                            },
                        );
                        if !self.ready_sent {
                            self.ready_sent = true;
                            sd_notify_ready();
                        }
                    }
                    self.ring_seq.record(ring_seq);
                    self.ring = (state, ring_rep, ring_seq, members, transport);
                    self.publish_runtime();
                }
                Ok(FromDataplane::Log(record)) => rotor_log::emit(&record, pid, DATAPLANE_NAME),
                Ok(FromDataplane::Stats { counters }) => {
                    for (k, v) in counters {
                        let _ = self
                            .cmap
                            .set(&format!("stats.{k}"), Value::U64(v), Access::Daemon);
                    }
                }
                Err(e) => log_at!(
                    Warning,
                    "MAIN",
                    "bad report from the dataplane dropped: {e}"
                ),
            }
        }
    }

    fn publish_runtime(&mut self) {
        let (state, rep, seq, members, transport) = self.ring.clone();
        let set = |c: &mut Cmap, k: &str, v: Value| {
            let _ = c.set(k, v, Access::Daemon);
        };
        set(
            &mut self.cmap,
            "runtime.votequorum.this_node_id",
            Value::U32(self.plan.node_id),
        );
        set(
            &mut self.cmap,
            "runtime.totem.pg.mrp.srp.state",
            Value::String(state),
        );
        set(
            &mut self.cmap,
            "runtime.totem.pg.mrp.srp.ring_id",
            Value::String(format!("{rep}.{seq:x}")),
        );
        set(
            &mut self.cmap,
            "runtime.totem.pg.mrp.srp.transport",
            Value::String(transport),
        );
        let old: Vec<String> = self
            .cmap
            .iter_prefix("runtime.totem.pg.mrp.srp.members.")
            .map(|(k, _)| k.to_owned())
            .collect();
        for k in old {
            let _ = self.cmap.delete(&k, Access::Daemon);
        }
        for m in &members {
            let addr = if *m == self.plan.node_id {
                self.plan.bind.ip().to_string()
            } else {
                self.plan
                    .peers
                    .iter()
                    .find(|(id, _)| id == m)
                    .map(|(_, a)| a.ip().to_string())
                    .unwrap_or_default()
            };
            set(
                &mut self.cmap,
                &format!("runtime.totem.pg.mrp.srp.members.{m}.ip"),
                Value::String(addr),
            );
            set(
                &mut self.cmap,
                &format!("runtime.totem.pg.mrp.srp.members.{m}.status"),
                Value::String("joined".into()),
            );
        }
    }

    fn serve_clients(&mut self) {
        for i in 0..self.clients.len() {
            for _ in 0..64 {
                let n = match self.clients[i].session.try_recv(&mut self.buf) {
                    Ok(n) => n,
                    Err(SessionError::Empty) => break,
                    Err(_) => break,
                };
                let record = self.buf[..n].to_vec();
                self.handle(i, &record);
            }
        }
    }

    fn handle(&mut self, i: usize, record: &[u8]) {
        let op = record
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .unwrap_or(0);
        if op >> 8 == 0x03 {
            match cfg::Request::decode(record) {
                Ok((req_id, cfg::Request::Status)) => {
                    cfg::Event::Status {
                        req_id,
                        reply: self.status(),
                    }
                    .encode(&mut self.out);
                }
                Ok((req_id, cfg::Request::Shutdown)) => {
                    log_at!(
                        Notice,
                        "CFG",
                        "shutdown requested by pid {}",
                        self.clients[i].session.peer().pid
                    );
                    self.shutting_down = true;
                    cfg::Event::ShutdownReply {
                        req_id,
                        status: Status::Ok,
                    }
                    .encode(&mut self.out);
                }
                Err(e) => {
                    log_at!(
                        Warning,
                        "IPC",
                        "client pid {} disconnected: malformed cfg request: {e}",
                        self.clients[i].session.peer().pid
                    );
                    self.clients[i].session.close();
                    return;
                }
            }
            let _ = self.clients[i].session.try_send(&self.out);
            return;
        }
        let (req_id, req) = match pc::Request::decode(record) {
            Ok(r) => r,
            Err(e) => {
                log_at!(
                    Warning,
                    "IPC",
                    "client pid {} disconnected: malformed cmap request: {e}",
                    self.clients[i].session.peer().pid
                );
                self.clients[i].session.close();
                return;
            }
        };
        let mut value = None;
        let mut entries = Vec::new();
        let result: Result<(), CmapError> = match req {
            pc::Request::Get { key } => match self.cmap.get(key) {
                Some(v) => {
                    value = Some(v.clone());
                    Ok(())
                }
                None => Err(CmapError::NotFound {
                    key: key.to_owned(),
                }),
            },
            pc::Request::Set { key, value: v } => self.cmap.set(key, v, Access::Client),
            pc::Request::Delete { key } => self.cmap.delete(key, Access::Client).map(|_| ()),
            pc::Request::Iter { prefix } => {
                entries = self
                    .cmap
                    .iter_prefix(prefix)
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect();
                Ok(())
            }
            pc::Request::TrackAdd { key, flags } => {
                let filter = TrackFilter {
                    added: flags & pc::TRACK_ADD != 0,
                    changed: flags & pc::TRACK_MODIFY != 0,
                    deleted: flags & pc::TRACK_DELETE != 0,
                    prefix: flags & pc::TRACK_PREFIX != 0,
                };
                self.cmap.track_add(key, filter).map(|h| {
                    self.clients[i].tracks.push(h);
                    value = Some(Value::U64(h.0));
                })
            }
            pc::Request::TrackDelete { handle } => {
                let h = TrackHandle(handle);
                if self.clients[i].tracks.contains(&h) {
                    self.clients[i].tracks.retain(|t| *t != h);
                    self.cmap.track_delete(h)
                } else {
                    Err(CmapError::UnknownTrack(h))
                }
            }
        };
        let (status, message) = match result {
            Ok(()) => (Status::Ok, String::new()),
            Err(e) => (cmap_status(&e), e.to_string()),
        };
        pc::Event::Reply {
            req_id,
            status,
            message,
            value,
            entries,
        }
        .encode(&mut self.out);
        if let Err(e) = self.clients[i].session.try_send(&self.out) {
            log_at!(
                Warning,
                "IPC",
                "client pid {}: reply dropped, disconnecting: {e}",
                self.clients[i].session.peer().pid
            );
            self.clients[i].session.close();
        }
    }

    fn status(&self) -> StatusReply {
        let p = &self.plan;
        let mut nodes = vec![NodeStatus {
            node_id: p.node_id,
            addr: p.bind.ip().to_string(),
            connected: true,
        }];
        nodes.extend(p.peers.iter().map(|(id, a)| NodeStatus {
            node_id: *id,
            addr: a.ip().to_string(),
            connected: self.ring.3.contains(id),
        }));
        nodes.sort_by_key(|n| n.node_id);
        StatusReply {
            node_id: p.node_id,
            transport: if self.ring.4.is_empty() {
                "udp".into()
            } else {
                self.ring.4.clone()
            },
            local_addr: p.bind.ip().to_string(),
            state: self.ring.0.clone(),
            ring_rep: self.ring.1,
            ring_seq: self.ring.2,
            nodes,
        }
    }

    fn reap_clients(&mut self) {
        let mut i = 0;
        while i < self.clients.len() {
            if self.clients[i].session.is_closed() {
                let c = self.clients.swap_remove(i);
                log_at!(
                    Debug,
                    "IPC",
                    "cmap/cfg client pid {} detached ({} track(s) removed)",
                    c.session.peer().pid,
                    c.tracks.len()
                );
                for h in c.tracks {
                    let _ = self.cmap.track_delete(h);
                }
            } else {
                i += 1;
            }
        }
    }

    fn route_track_events(&mut self) {
        while let Some(ev) = self.cmap.poll_event() {
            let kind = match ev.kind {
                crate::cmap::ChangeKind::Added => pc::TRACK_ADD,
                crate::cmap::ChangeKind::Changed => pc::TRACK_MODIFY,
                crate::cmap::ChangeKind::Deleted => pc::TRACK_DELETE,
            };
            let Some(c) = self
                .clients
                .iter_mut()
                .find(|c| c.tracks.contains(&ev.track))
            else {
                continue;
            };
            pc::Event::Notify {
                handle: ev.track.0,
                kind,
                key: ev.key,
                old: ev.old,
                new: ev.new,
            }
            .encode(&mut self.out);
            if c.session.try_send(&self.out).is_err() {
                log_at!(
                    Warning,
                    "IPC",
                    "client pid {} not reading its track notifications: disconnected",
                    c.session.peer().pid
                );
                c.session.close();
            }
        }
    }

    fn shutdown(&mut self) {
        log_at!(Notice, "MAIN", "shutting down: leaving the ring");
        if let Some(mut dp) = self.dataplane.take() {
            let mut msg = Vec::new();
            ToDataplane::Shutdown.encode(&mut msg);
            let _ = ipc_shm::handoff::send_message(dp.control.as_raw_fd(), &msg, &[]);
            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                match dp.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        log_at!(
                            Warning,
                            "MAIN",
                            "dataplane did not stop in time; killing it"
                        );
                        let _ = dp.child.kill();
                        let _ = dp.child.wait();
                        break;
                    }
                }
            }
        }
        // After the dataplane: its sockets are closed, nothing is left to steer to.
        if let Some(program) = self.xdp.take() {
            program.detach();
        }
        log_at!(Notice, "MAIN", "rotord stopped");
    }

    pub fn cmap(&self) -> &Cmap {
        &self.cmap
    }
}

/// The totem keys the dataplane takes with `--totem`.
const DATAPLANE_TOTEM_KEYS: [&str; 14] = [
    "token",
    "token_retransmits_before_loss_const",
    "token_retransmit",
    "hold",
    "join",
    "consensus",
    "merge",
    "downcheck",
    "fail_recv_const",
    "seqno_unchanged_const",
    "window_size",
    "max_messages",
    "send_join",
    "miss_count_const",
];

fn cmap_status(e: &CmapError) -> Status {
    match e {
        CmapError::NotFound { .. } => Status::NotExist,
        CmapError::ReadOnly { .. } => Status::Access,
        CmapError::ValueTooLarge { .. } => Status::TooBig,
        CmapError::MapFull { .. } | CmapError::TooManyTracks => Status::NoSpace,
        CmapError::UnknownTrack(_) => Status::BadHandle,
        _ => Status::InvalidParam,
    }
}

/// Makes `fd` the child's descriptor `target`, inheritable across exec: dup2, or — when it
/// already has that number, where dup2 would do nothing — clearing close-on-exec.
/// Async-signal-safe (for pre_exec).
fn place_fd(fd: RawFd, target: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 and fcntl on descriptors of this (forked) process; no memory is touched.
    let r = unsafe {
        if fd == target {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, target)
        }
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// poll(2) for readability; one bool per descriptor.
fn poll_in(fds: &[RawFd], timeout: Duration) -> Vec<bool> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: a valid array of p.len() pollfds.
    let r = unsafe {
        libc::poll(
            p.as_mut_ptr(),
            p.len() as libc::nfds_t,
            timeout.as_millis() as i32,
        )
    };
    if r <= 0 {
        return vec![false; fds.len()];
    }
    p.iter().map(|x| x.revents != 0).collect()
}

/// Tells systemd we are ready, when started as a notify service ($NOTIFY_SOCKET).
fn sd_notify_ready() {
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

/// Keys with their values, for `-t` output and tests.
pub fn summary(plan: &Plan) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("node_id", plan.node_id.to_string());
    m.insert("bind", plan.bind.to_string());
    m.insert(
        "peers",
        plan.peers
            .iter()
            .map(|(i, a)| format!("{i}={a}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    m
}
