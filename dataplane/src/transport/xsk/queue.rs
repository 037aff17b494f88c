//! One AF_XDP receive queue: its socket, its UMEM and the four rings, bound with the RX half
//! of the frames on the fill ring, and how frames go back to the kernel.

use std::io;
use std::num::NonZeroU32;

use xsk_rs::config::{
    BindFlags, FrameSize, Interface as XskInterface, LibxdpFlags, QueueSize, SocketConfig,
    UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::chain::Gather;
use super::{BindMode, XskConfig, XskError, RX_BATCH, UMEM_FRAME_BYTES, UMEM_FRAME_DATA_BYTES};

/// One receive queue's socket, rings and memory.
pub(super) struct Queue {
    pub(super) id: u32,
    pub(super) rx: RxQueue,
    pub(super) tx: TxQueue,
    pub(super) fill: FillQueue,
    pub(super) comp: CompQueue,
    pub(super) umem: Umem,
    /// TX frames not on the TX ring or in flight.
    pub(super) tx_free: Vec<FrameDesc>,
    pub(super) tx_ring_size: u32,
    /// Scratch for RX and completion batches.
    pub(super) batch: Vec<FrameDesc>,
    /// Received frames waiting to go back on the fill ring. The kernel publishes how far it
    /// has read the fill ring lazily (when it next looks for frames), so right after an RX
    /// batch the ring can look fuller than it is; frames it did not take yet wait here and are
    /// offered again on every receive. Invariant: at most the RX half of the UMEM, and no frame
    /// is both here and on a ring.
    pub(super) refill: Vec<FrameDesc>,
    /// Descriptors (UMEM frames) taken from this queue's RX ring.
    pub(super) frames_in: u64,
    /// Joins received chains (multi-buffer); takes chains of one descriptor on a
    /// single-buffer socket.
    pub(super) gather: Gather,
    /// The descriptors of the chain being sent. Invariant: empty outside `send_chain`;
    /// capacity `frame_parts_max`.
    tx_chain: Vec<FrameDesc>,
}

impl Queue {
    /// Puts the frames waiting in `refill` back on the fill ring, as many as it takes now
    /// (libxdp reserves all or nothing, so a refusal is retried with halves); returns whether
    /// any went back.
    pub(super) fn refill(&mut self) -> bool {
        let mut returned = false;
        let mut want = self.refill.len();
        while want > 0 {
            // SAFETY: `refill` holds frames of this queue's UMEM taken from its RX ring and
            // referenced by nothing else; produced ones leave `refill` at once.
            let put = unsafe { self.fill.produce(&self.refill[..want]) };
            if put > 0 {
                self.refill.drain(..put);
                returned = true;
                want = self.refill.len();
            } else {
                want /= 2;
            }
        }
        returned
    }

    /// Copies the frame `head` + `payload` (its headers, written apart, and the UDP payload
    /// where it lies: no contiguous copy first) into `parts` free frames, each filled before
    /// the next (the caller checked there are so many, `chain::parts` of its length), and puts
    /// them on the TX ring as one chain, all or none; returns whether it went (no room on the
    /// ring: the frames go back to the free list).
    pub(super) fn send_chain(
        &mut self,
        head: &[u8],
        payload: &[u8],
        parts: usize,
    ) -> io::Result<bool> {
        assert!(parts <= self.tx_chain.capacity() && self.tx_chain.is_empty());
        let from = self.tx_free.len() - parts;
        self.tx_chain.extend(self.tx_free.drain(from..));
        let last = parts - 1;
        let (mut head, mut payload) = (head, payload);
        for (i, desc) in self.tx_chain.iter_mut().enumerate() {
            let from_head = head.len().min(UMEM_FRAME_DATA_BYTES);
            let from_payload = payload.len().min(UMEM_FRAME_DATA_BYTES - from_head);
            // SAFETY: `desc` came from this queue's free list: a frame of `self.umem` on no
            // ring.
            let mut data = unsafe { self.umem.data_mut(desc) };
            let mut cursor = data.cursor();
            cursor.set_pos(0);
            io::Write::write_all(&mut cursor, &head[..from_head])?;
            io::Write::write_all(&mut cursor, &payload[..from_payload])?;
            (head, payload) = (&head[from_head..], &payload[from_payload..]);
            desc.set_options(if i < last { libc::XDP_PKT_CONTD } else { 0 });
        }
        assert!(
            head.is_empty() && payload.is_empty(),
            "a chain of {parts} frames too short for its frame"
        );
        // SAFETY: the chain's frames are of this queue's UMEM, now owned by the TX ring until
        // the completion ring returns them. libxdp reserves all the descriptors or none.
        let put = unsafe { self.tx.produce(&self.tx_chain) };
        assert!(put == 0 || put == parts, "the TX ring took part of a chain");
        if put == 0 {
            self.tx_free.append(&mut self.tx_chain);
            return Ok(false);
        }
        self.tx_chain.clear();
        Ok(true)
    }

    /// Returns completed TX frames to the free list.
    pub(super) fn reap(&mut self) {
        loop {
            let room = self.batch.len();
            // SAFETY: completion descriptors name frames of this queue's UMEM that this queue
            // put on its TX ring; the kernel is done with them.
            let n = unsafe { self.comp.consume(&mut self.batch[..room]) };
            self.tx_free.extend_from_slice(&self.batch[..n]);
            if n < room {
                break;
            }
        }
    }
}

pub(super) fn socket_err(queue: u32) -> impl Fn(String) -> XskError {
    move |reason| XskError::Socket { queue, reason }
}

/// A UMEM and a socket bound to `queue` in `mode`, with the RX half of the frames on the fill
/// ring.
pub(super) fn bind_queue(cfg: &XskConfig, queue: u32, mode: BindMode) -> Result<Queue, String> {
    let frames = cfg.frames_per_queue;
    if frames < 2 * RX_BATCH as u32 || !frames.is_power_of_two() {
        return Err(format!(
            "frames_per_queue {frames} must be a power of two ≥ {}",
            2 * RX_BATCH
        ));
    }
    let half = frames / 2;
    let ring = QueueSize::new(half).map_err(|e| e.to_string())?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(UMEM_FRAME_BYTES).map_err(|e| e.to_string())?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .map_err(|e| e.to_string())?;
    assert_eq!(
        umem_cfg.mtu() as usize,
        UMEM_FRAME_DATA_BYTES,
        "UMEM_FRAME_DATA_BYTES is a UMEM frame's data area"
    );
    let parts_max = cfg.frame_parts_max();
    let count = NonZeroU32::new(frames).ok_or("no frames")?;
    let (umem, mut descs) = Umem::new(umem_cfg, count, false).map_err(|e| e.to_string())?;
    let mut bind = match mode {
        BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY | BindFlags::XDP_USE_NEED_WAKEUP,
        BindMode::Copy => BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP,
    };
    // Multi-buffer only when a frame needs it: a zero-copy driver without it refuses the bind
    // (then copy mode serves), and single-buffer frames never pay for it.
    if parts_max > 1 {
        bind |= BindFlags::XDP_USE_SG;
    }
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(bind)
        .build();
    let ifname: XskInterface = cfg
        .interface
        .parse()
        .map_err(|_| "interface name contains NUL".to_string())?;
    // SAFETY: this UMEM is fresh and used by this one socket only, so the shared-UMEM
    // precondition (program loading inhibited when a bound pair is reused) does not arise —
    // and loading is inhibited anyway.
    let (tx, rx, rings) =
        unsafe { Socket::new(sock_cfg, &umem, &ifname, queue) }.map_err(|e| e.to_string())?;
    let (mut fill, comp) = rings.ok_or("the kernel returned no fill/completion rings")?;
    let tx_free = descs.split_off(half as usize);
    // SAFETY: these descriptors are frames of this UMEM, on no other ring.
    let put = unsafe { fill.produce(&descs) };
    if put != descs.len() {
        return Err(format!("fill ring took {put} of {} frames", descs.len()));
    }
    Ok(Queue {
        id: queue,
        rx,
        tx,
        fill,
        comp,
        umem,
        tx_free,
        tx_ring_size: half,
        refill: Vec::with_capacity(descs.len()),
        batch: descs,
        frames_in: 0,
        gather: Gather::new(parts_max, UMEM_FRAME_DATA_BYTES),
        tx_chain: Vec::with_capacity(parts_max),
    })
}
