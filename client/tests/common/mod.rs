//! What the end-to-end tests share: the directory holding current `rotord`,
//! `rotor-dataplane` and `rotor` binaries.

use std::path::PathBuf;

// Only the network-namespace tests start rotords on testbed hosts.
#[allow(dead_code)]
pub mod daemons;

/// The target directory of this build, after making sure rotord and rotor-dataplane in it are
/// current: `cargo test -p rotor-client` alone neither builds other packages' binaries nor
/// rebuilds stale ones (a stale rotord would speak an older ring version); when they are
/// current the build is a no-op.
pub fn bin_dir() -> PathBuf {
    rotor_testbed::rotor::cargo_build().expect("building rotord and rotor-dataplane");
    std::path::Path::new(env!("CARGO_BIN_EXE_rotor"))
        .parent()
        .expect("the rotor binary sits in a directory")
        .to_path_buf()
}

use std::time::{Duration, Instant};

use rotor_client::cpg::{Cpg, Dispatch, Guarantee, Handler, Member, Reason};

/// What one handle saw, in delivery order.
#[derive(Default)]
pub struct Seen {
    /// Deliveries and group changes, as text.
    pub events: Vec<String>,
    pub delivered: usize,
    pub members: Vec<Member>,
    pub left: Vec<(Member, Reason)>,
    /// Members of every totem ring delivered, in order.
    pub rings: Vec<Vec<u32>>,
}

/// How a delivery reads in `Seen::events`: its text, or for more than 200 bytes its length and
/// FNV-1a 64 (large messages arrive in many fragments; the digest checks every byte).
pub fn delivery_line(sender: Member, data: &[u8]) -> String {
    if data.len() <= 200 {
        return format!(
            "msg {}:{} {}",
            sender.node,
            sender.pid,
            String::from_utf8_lossy(data)
        );
    }
    let fnv = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "msg {}:{} len={} fnv={fnv:016x}",
        sender.node,
        sender.pid,
        data.len()
    )
}

impl Handler for Seen {
    fn deliver(&mut self, _g: &[u8], s: Member, _: Guarantee, data: &[u8]) {
        self.delivered += 1;
        self.events.push(delivery_line(s, data));
    }
    fn confchg(
        &mut self,
        _g: &[u8],
        m: &[Member],
        left: &[(Member, Reason)],
        j: &[(Member, Reason)],
    ) {
        self.members = m.to_vec();
        self.left.extend_from_slice(left);
        self.events
            .push(format!("conf {m:?} left {left:?} joined {j:?}"));
    }
    fn totem_confchg(&mut self, _rep: u32, _seq: u64, members: &[u32]) {
        self.rings.push(members.to_vec());
    }
}

/// Dispatches every handle until `done` holds, failing the test after `limit`.
pub fn pump(
    handles: &mut [(Cpg, Seen)],
    limit: Duration,
    what: &str,
    done: impl Fn(&[(Cpg, Seen)]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(handles) {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        for (c, s) in handles.iter_mut() {
            c.dispatch(Dispatch::Blocking(Duration::from_millis(10)), s)
                .unwrap_or_else(|e| panic!("dispatch while waiting for {what}: {e}"));
        }
    }
}

/// Multicasts `msg` on `c`, dispatching into `s` while the ring is full.
pub fn send(c: &mut Cpg, s: &mut Seen, g: Guarantee, msg: &str) {
    send_bytes(c, s, g, msg.as_bytes());
}

pub fn send_bytes(c: &mut Cpg, s: &mut Seen, g: Guarantee, msg: &[u8]) {
    loop {
        match c.mcast(g, msg) {
            Ok(()) => return,
            Err(rotor_client::Error::TryAgain) => {
                c.dispatch(Dispatch::All, s).expect("dispatch");
            }
            Err(e) => panic!("mcast of {} bytes: {e}", msg.len()),
        }
    }
}
