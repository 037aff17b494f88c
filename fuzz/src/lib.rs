//! rotor-fuzz: one fuzz target for every decoder of outside input, as plain functions of a
//! byte slice. The coverage-guided harness (`fuzz/libfuzzer`, libFuzzer on the stable
//! toolchain; `cargo xtask fuzz TARGET --time N`) calls them; `tests/corpus.rs` replays the
//! checked-in corpus and every crash ever found through them in the ordinary test suite. A
//! target panics only where the code under test broke a promise (a panic inside it, or an
//! oracle below: a frame altered after sealing that still opens, a ring record outside the
//! ring).

use std::sync::Arc;

/// A fuzz target: takes any bytes; panics only on a broken promise.
pub type Target = fn(&[u8]);

/// Every target: name and entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("wire", wire),
    ("crypto_open", crypto_open),
    ("proto", proto),
    ("ipc_ring", ipc_ring),
    ("config", config),
    ("cmap_value", cmap_value),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Reads the input as a stream of small decisions.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    /// Up to `max` bytes, the length taken from the input.
    fn bytes(&mut self, max: usize) -> &'a [u8] {
        let len = usize::from(self.u16().unwrap_or(0))
            .min(max)
            .min(self.data.len());
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        head
    }
}

// ---------------------------------------------------------------------------------------------
// wire: totem-core's decoders through `Node::handle_datagram`.

/// Two real nodes of a three-node cluster exchange their datagrams while the input decides
/// what reaches whom: a pending datagram delivered as sent, with one byte altered, truncated
/// or duplicated, or raw bytes from any sender; time moves on as the input says. Every
/// datagram and timeout reaches the decoders of a node in whatever state the traffic so far
/// put it in (gather, commit, recovery, operational), and none may panic.
pub fn wire(data: &[u8]) {
    use totem_core::{
        cluster_hash, ClusterShape, Dest, Instant, Node, NodeConfig, NodeId, Request, TotemSettings,
    };
    let shape = ClusterShape {
        nodelist_count: 3,
        frame_overhead_bytes: 100,
    };
    let Ok(totem) = TotemSettings::resolve(|k| (k == "token").then_some(100), &shape) else {
        return;
    };
    let make = |id: u32| {
        Node::new(
            NodeConfig {
                totem: totem.clone(),
                shape,
                node_id: NodeId(id),
                cluster: cluster_hash("fuzz"),
                incarnation: 1,
                ring_seq_start: 0,
                seed: u64::from(id),
                identity: Default::default(),
                key_id: 0,
            },
            Instant(0),
        )
    };
    let (Ok(a), Ok(b)) = (make(1), make(2)) else {
        return;
    };
    let mut nodes = [a, b];
    let mut now = 0u64;
    // Datagrams in flight: (to index, from id, bytes).
    let mut flight: Vec<(usize, u32, Vec<u8>)> = Vec::new();
    let mut input = Input { data };
    let _ = nodes[0].submit(Request::Join {
        group: b"g",
        pid: 1,
    });
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 2_000 {
            break;
        }
        match op % 8 {
            // Deliver the oldest datagram in flight as sent.
            0 | 1 if !flight.is_empty() => {
                let (to, from, bytes) = flight.remove(0);
                nodes[to].handle_datagram(Instant(now), NodeId(from), &bytes);
            }
            // Deliver one with a byte altered.
            2 if !flight.is_empty() => {
                let k = usize::from(input.byte().unwrap_or(0)) % flight.len();
                let (to, from, mut bytes) = flight.remove(k);
                if !bytes.is_empty() {
                    let at = usize::from(input.u16().unwrap_or(0)) % bytes.len();
                    bytes[at] ^= input.byte().unwrap_or(1) | 1;
                }
                nodes[to].handle_datagram(Instant(now), NodeId(from), &bytes);
            }
            // Truncate one.
            3 if !flight.is_empty() => {
                let k = usize::from(input.byte().unwrap_or(0)) % flight.len();
                let (to, from, bytes) = flight.remove(k);
                let cut = usize::from(input.u16().unwrap_or(0)) % (bytes.len() + 1);
                nodes[to].handle_datagram(Instant(now), NodeId(from), &bytes[..cut]);
            }
            // Deliver one twice (it stays in flight).
            4 if !flight.is_empty() => {
                let k = usize::from(input.byte().unwrap_or(0)) % flight.len();
                let (to, from, bytes) = flight[k].clone();
                nodes[to].handle_datagram(Instant(now), NodeId(from), &bytes);
            }
            // Raw bytes from any id (3 is configured but silent, others are not members).
            5 => {
                let to = usize::from(input.byte().unwrap_or(0) & 1);
                let from = u32::from(input.byte().unwrap_or(0) % 5);
                let bytes = input.bytes(9000);
                nodes[to].handle_datagram(Instant(now), NodeId(from), bytes);
            }
            // Time passes.
            6 => {
                now += 1_000_000 * u64::from(input.byte().unwrap_or(0));
                for n in &mut nodes {
                    n.handle_timeout(Instant(now));
                }
            }
            // An application message.
            _ => {
                let k = usize::from(input.byte().unwrap_or(0) & 1);
                let payload = input.bytes(4000);
                let _ = nodes[k].submit(Request::Mcast {
                    group: b"g",
                    pid: 1,
                    guarantee: totem_core::Guarantee::Agreed,
                    data: payload,
                });
            }
        }
        for (k, n) in nodes.iter_mut().enumerate() {
            while let Some(t) = n.poll_transmit() {
                let from = k as u32 + 1;
                let other = 1 - k;
                match t.dest {
                    Dest::All => flight.push((other, from, t.bytes)),
                    Dest::Node(id) if id.0 == other as u32 + 1 => {
                        flight.push((other, from, t.bytes))
                    }
                    Dest::Node(_) => {}
                }
            }
            while n.poll_event().is_some() {}
        }
        // A bound on what is kept in flight.
        if flight.len() > 256 {
            flight.drain(..flight.len() - 256);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// crypto_open: rotor-crypto's header checks, replay window and open path.

/// An opener of node 1 receives a mix of raw bytes and genuine frames sealed by nodes 2 and 3
/// (each in epochs the input picks), delivered as sealed, altered in one byte, or again.
/// Oracles: an altered frame never opens, a frame never opens twice, and what opens is what
/// was sealed.
pub fn crypto_open(data: &[u8]) {
    use rotor_crypto::{CryptoMode, Keys, Opener, Sealer, HEADER_LEN, TAG_LEN};
    let mut input = Input { data };
    let mode = match input.byte().unwrap_or(0) % 4 {
        0 => CryptoMode::Gcm256,
        1 => CryptoMode::Gcm128,
        2 => CryptoMode::Gmac,
        _ => CryptoMode::None,
    };
    let Ok(keys) = Keys::from_authkey_bytes(&[0x42; 128], "fuzz") else {
        return;
    };
    let hash = rotor_crypto::cluster_name_hash("fuzz");
    let mut opener = Opener::new(&keys, mode, hash, 1, 4);
    // Sealers per (sender, epoch) created on demand.
    let mut sealers: Vec<((u32, u32), Sealer)> = Vec::new();
    // Frames sealed so far with their bodies, and whether each was opened already.
    let mut sealed: Vec<(Vec<u8>, Vec<u8>, bool)> = Vec::new();
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 2_000 {
            break;
        }
        match op % 4 {
            0 => {
                let mut frame = input.bytes(2000).to_vec();
                let _ = opener.open(&mut frame);
            }
            1 => {
                let sender = 2 + u32::from(input.byte().unwrap_or(0) & 1);
                let epoch = u32::from(input.byte().unwrap_or(0) % 4);
                let body = input.bytes(1500).to_vec();
                let k = match sealers.iter().position(|(id, _)| *id == (sender, epoch)) {
                    Some(k) => k,
                    None => {
                        sealers.push((
                            (sender, epoch),
                            Sealer::new(&keys, mode, hash, sender, epoch),
                        ));
                        sealers.len() - 1
                    }
                };
                let mut out = vec![0u8; body.len() + HEADER_LEN + TAG_LEN];
                let Ok(len) = sealers[k].1.seal(&body, &mut out) else {
                    continue;
                };
                out.truncate(len);
                if sealed.len() < 512 {
                    sealed.push((out, body, false));
                }
            }
            2 if !sealed.is_empty() => {
                let k = usize::from(input.u16().unwrap_or(0)) % sealed.len();
                let (frame, body, opened_before) = &mut sealed[k];
                let mut copy = frame.clone();
                if let Ok(o) = opener.open(&mut copy) {
                    assert!(!*opened_before, "a frame opened twice (replay accepted)");
                    assert_eq!(
                        o.body,
                        &body[..],
                        "an opened frame differs from what was sealed"
                    );
                    *opened_before = true;
                }
            }
            _ if !sealed.is_empty() => {
                let k = usize::from(input.u16().unwrap_or(0)) % sealed.len();
                let mut copy = sealed[k].0.clone();
                let at = usize::from(input.u16().unwrap_or(0)) % copy.len();
                copy[at] ^= input.byte().unwrap_or(1) | 1;
                let opened = opener.open(&mut copy).is_ok();
                // Mode none has no tag: only the header is checked there.
                if mode != CryptoMode::None {
                    assert!(!opened, "a frame altered at byte {at} opened");
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// proto: the local record decoders (cpg, cmap, cfg, control).

/// Every decoder of rotor-proto on the same bytes: what an application writes into its ring
/// (cpg, cmap, cfg, quorum, votequorum requests), what the dataplane or rotord write back
/// (events), and the rotord ↔ dataplane control records (quorum's and logging's included).
pub fn proto(data: &[u8]) {
    use rotor_proto::{cfg, cmap, control, cpg};
    let _ = cpg::Request::decode(data);
    let _ = cpg::Event::decode(data);
    let _ = cmap::Request::decode(data);
    let _ = cmap::Event::decode(data);
    let _ = cfg::Request::decode(data);
    let _ = cfg::Event::decode(data);
    let _ = rotor_proto::quorum::Request::decode(data);
    let _ = rotor_proto::quorum::Event::decode(data);
    let _ = rotor_proto::votequorum::Request::decode(data);
    let _ = rotor_proto::votequorum::Event::decode(data);
    let _ = control::ToDataplane::decode(data);
    let _ = control::FromDataplane::decode(data);
    let _ = ipc_shm::handshake::decode_hello(data);
    let _ = ipc_shm::handshake::decode_reply(data);
}

// ---------------------------------------------------------------------------------------------
// ipc_ring: the shared ring's reader and writer over memory a peer wrote.

/// A ring whose data region and cursors hold the input (as a client that writes garbage
/// would leave them): the consumer pops until it stops and the producer pushes; nothing may
/// panic, and every record returned must fit the buffer it was read into.
pub fn ipc_ring(data: &[u8]) {
    use ipc_shm::layout::{record_size_max_for, RingHeader, DATA_OFFSET};
    use ipc_shm::ring::create;
    use ipc_shm::{Consumer, Producer};
    const DATA_SIZE: usize = 4096;
    let record_size_max = record_size_max_for(DATA_SIZE);
    let Ok((_fd, map)) = create(DATA_SIZE, record_size_max) else {
        return;
    };
    let mut input = Input { data };
    // Honest traffic first, so cursors and laps start anywhere.
    let mut producer = Producer::new(Arc::clone(&map), DATA_SIZE, record_size_max);
    let mut consumer = Consumer::new(Arc::clone(&map), DATA_SIZE, record_size_max);
    for _ in 0..input.byte().unwrap_or(0) % 32 {
        let size = usize::from(input.u16().unwrap_or(0)) % 600;
        let _ = producer.try_push(&vec![0x33; size]);
        let _ = consumer.try_pop(&mut vec![0u8; size]);
    }
    // Then the peer's writes: (offset, 8 bytes) pairs into the data region or a cursor.
    let head = std::mem::offset_of!(RingHeader, producer);
    let tail = std::mem::offset_of!(RingHeader, consumer);
    while let Some(k) = input.byte() {
        let offset = match k % 8 {
            0 => head,
            1 => tail,
            _ => DATA_OFFSET + (usize::from(input.u16().unwrap_or(0)) % (DATA_SIZE / 8)) * 8,
        };
        let mut word = [0u8; 8];
        for w in &mut word {
            *w = input.byte().unwrap_or(0);
        }
        // Safety: `offset + 8` lies inside the mapping (the header or the data region); the
        // mapping lives as long as `map`; a peer writes these bytes concurrently in real use,
        // which the ring's readers must (and do) tolerate.
        unsafe {
            std::ptr::copy_nonoverlapping(word.as_ptr(), map.as_ptr().add(offset), 8);
        }
    }
    let mut buf = vec![0u8; record_size_max];
    for _ in 0..64 {
        match consumer.try_pop(&mut buf) {
            Ok(n) => assert!(
                n <= buf.len(),
                "a record of {n} bytes in a {}-byte buffer",
                buf.len()
            ),
            Err(_) => break,
        }
    }
    for _ in 0..8 {
        let _ = producer.try_push(&[7; 100]);
    }
}

// ---------------------------------------------------------------------------------------------
// config: corosync.conf.

/// The config parser and everything after it (schema, flattening into cmap keys, derived
/// settings) on any text: an error names a line, nothing panics.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match rotor_control::config::parse_str("fuzz.conf", &text) {
        Ok(config) => {
            let mut cmap = rotor_control::cmap::CmapStore::new();
            let _ = config.load_into(&mut cmap);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// cmap_value: cmap values as clients send them.

/// A cmap value from a client: parsed from text as `rotor cmap set` does, decoded from a Set
/// record, stored under a client-chosen key with client access, printed as corosync-cmapctl
/// does.
pub fn cmap_value(data: &[u8]) {
    use rotor_control::cmap::{Access, CmapStore};
    use rotor_proto::cmap::{format_cmapctl_line, Request, Value, ValueType};
    let mut input = Input { data };
    let type_name = [
        "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "flt", "dbl", "str", "bin",
    ][usize::from(input.byte().unwrap_or(0)) % 12];
    let key = String::from_utf8_lossy(input.bytes(300)).into_owned();
    let text = String::from_utf8_lossy(input.bytes(20_000)).into_owned();
    let mut cmap = CmapStore::new();
    if let Some(t) = ValueType::from_cmapctl_name(type_name) {
        if let Ok(v) = Value::parse(t, &text) {
            let _ = format_cmapctl_line(&key, &v, true);
            let _ = cmap.set(&key, v, Access::Client);
        }
    }
    if let Ok((_, Request::Set { key, value })) = Request::decode(input.data) {
        let _ = format_cmapctl_line(key, &value, false);
        let _ = cmap.set(key, value.clone(), Access::Client);
        let _ = cmap.get(key);
        let _ = cmap.delete(key, Access::Client);
    }
}
