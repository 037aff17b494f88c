//! Real-NIC tests: zero-copy AF_XDP on every receive queue of `ROTOR_HWTEST_IFACE`, a TX burst
//! completing with need_wakeup, and frames from `ROTOR_HWTEST_PEER_IFACE` spread over several
//! queues. Each prints "skipped: …" and why when its interfaces are not named (or without
//! root). One at a time: they attach to the same interface.

use std::sync::Mutex;

use rotor_dataplane::transport::xsk::{rx_queue_count, BindMode, XskTransport};
use rotor_hwtest::{
    check_bound, config, env_or_skip, rx_spread, tx_burst_completes, RawSender, IFACE_ENV,
    PEER_IFACE_ENV, QUEUES_MAX,
};

static SERIAL: Mutex<()> = Mutex::new(());

const IFACE_WHAT: &str = "it names a NIC whose driver supports AF_XDP zero-copy";

/// The interface under test, or `None` after a "skipped: …" line (not named, or not root).
fn iface_or_skip(test: &str) -> Option<String> {
    let iface = env_or_skip(test, IFACE_ENV, IFACE_WHAT)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: {test}: needs root for XDP and AF_XDP");
        return None;
    }
    Some(iface)
}

/// The interface under test opened zero-copy on all its receive queues (up to QUEUES_MAX).
fn open_zero_copy(iface: &str) -> (XskTransport, Vec<u32>) {
    let queues = rx_queue_count(iface).expect("read the interface's queues");
    let cfg = config(iface, queues, BindMode::ZeroCopy).expect("config");
    let want = cfg.queues.clone();
    let x = XskTransport::open(&cfg)
        .unwrap_or_else(|e| panic!("{iface}: zero-copy AF_XDP on queues {want:?} refused: {e}"));
    (x, want)
}

#[test]
fn zero_copy_bind_on_every_queue() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "zero_copy_bind_on_every_queue";
    let Some(iface) = iface_or_skip(test) else {
        return;
    };
    let (x, queues) = open_zero_copy(&iface);
    check_bound(&x, BindMode::ZeroCopy, &queues).unwrap();
    eprintln!("{test}: {}", x.describe());
    assert!(
        queues.len() > 1 || rx_queue_count(&iface).unwrap() == 1,
        "several queues expected"
    );
    x.xdp_counters()
        .expect("the program's counters are readable");
}

#[test]
fn zero_copy_tx_with_need_wakeup_completes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "zero_copy_tx_with_need_wakeup_completes";
    let Some(iface) = iface_or_skip(test) else {
        return;
    };
    let (mut x, _) = open_zero_copy(&iface);
    for _ in 0..4 {
        tx_burst_completes(&mut x, 512).unwrap();
    }
    eprintln!("{test}: {:?}", x.counters());
}

#[test]
fn zero_copy_rx_spreads_over_queues() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let test = "zero_copy_rx_spreads_over_queues";
    let Some(iface) = iface_or_skip(test) else {
        return;
    };
    let Some(peer) = env_or_skip(
        test,
        PEER_IFACE_ENV,
        "a second interface on the same link to send frames from",
    ) else {
        return;
    };
    let (mut x, queues) = open_zero_copy(&iface);
    let sender = RawSender::open(&peer).expect("AF_PACKET socket on the peer interface");
    let mac = rotor_dataplane::transport::neigh::link_by_name(&iface)
        .unwrap()
        .mac;
    let per_queue = rx_spread(&mut x, &sender, mac, 4096).unwrap();
    eprintln!("{test}: frames per queue {per_queue:?}");
    let busy = per_queue.iter().filter(|(_, n)| *n > 0).count();
    assert!(
        queues.len() < 2 || busy >= 2,
        "all frames on one queue of {queues:?}: is RSS hashing UDP ports or source addresses? \
         {per_queue:?} (at most {QUEUES_MAX} queues are served)"
    );
}
