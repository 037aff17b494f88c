//! Bad input is dropped and counted per reason, never panics;
//! packing and fragmentation round-trip messages of every size class up to 1 MiB.

use totem_core::pack::Packer;
use totem_core::wire::{self, Header, MAGIC, VERSION};
use totem_core::{
    cluster_hash, ClusterShape, Guarantee, Instant, Node, NodeConfig, NodeId, TotemSettings,
};
use zerocopy::{FromZeros, IntoBytes};

fn node(id: u32) -> Node {
    let config = NodeConfig {
        totem: TotemSettings::default(),
        shape: ClusterShape::ALONE,
        identity: Default::default(),
        key_id: 0,
        node_id: NodeId(id),
        cluster: cluster_hash("test"),
        incarnation: 1,
        ring_seq_start: 0,
        seed: 7,
    };
    Node::new(config, Instant(0)).expect("valid config")
}

fn header(kind: u8, cluster: u32, sender: u32) -> Vec<u8> {
    Header {
        magic: MAGIC,
        version: VERSION,
        kind,
        cluster: cluster.into(),
        sender: sender.into(),
        incarnation: 1.into(),
    }
    .as_bytes()
    .to_vec()
}

#[test]
fn malformed_datagrams_are_dropped_and_counted_by_reason() {
    let mut n = node(1);
    let cluster = cluster_hash("test");
    let from = NodeId(2);
    n.handle_datagram(Instant(1), from, &[]);
    n.handle_datagram(Instant(1), from, &[0x54; 5]);
    let mut bad_magic = header(wire::KIND_JOIN, cluster, 2);
    bad_magic[0] = b'X';
    n.handle_datagram(Instant(1), from, &bad_magic);
    let mut bad_version = header(wire::KIND_JOIN, cluster, 2);
    bad_version[2] = 99;
    n.handle_datagram(Instant(1), from, &bad_version);
    n.handle_datagram(
        Instant(1),
        from,
        &header(wire::KIND_JOIN, cluster_hash("other"), 2),
    );
    n.handle_datagram(Instant(1), from, &header(wire::KIND_JOIN, cluster, 3));
    n.handle_datagram(Instant(1), NodeId(1), &header(wire::KIND_JOIN, cluster, 1));
    n.handle_datagram(Instant(1), from, &header(77, cluster, 2));
    let join_hdr = |proc_count: u16, digest: u64| wire::JoinHdr {
        ring_seq: 0.into(),
        proc_count: proc_count.into(),
        fail_count: 0.into(),
        excluded_count: 0.into(),
        _pad: 0.into(),
        config_digest: digest.into(),
    };
    let ours = n.identity().digest();
    // A join whose counts run past the end of the datagram.
    let mut join = header(wire::KIND_JOIN, cluster, 2);
    join.extend_from_slice(join_hdr(50, ours).as_bytes());
    n.handle_datagram(Instant(1), from, &join);
    // A join naming node id 0.
    let mut zero = header(wire::KIND_JOIN, cluster, 2);
    zero.extend_from_slice(join_hdr(1, ours).as_bytes());
    zero.extend_from_slice(&[0, 0, 0, 0]);
    n.handle_datagram(Instant(1), from, &zero);
    // A join of a node configured otherwise: kept out, and sent this node's summary.
    let mut other = header(wire::KIND_JOIN, cluster, 2);
    other.extend_from_slice(join_hdr(1, ours ^ 1).as_bytes());
    other.extend_from_slice(&2u32.to_be_bytes());
    while n.poll_transmit().is_some() {}
    n.handle_datagram(Instant(1), from, &other);
    n.handle_datagram(Instant(2), from, &other);
    let summaries = std::iter::from_fn(|| n.poll_transmit())
        .filter(|t| t.bytes[3] == wire::KIND_CONFIG)
        .count();
    assert_eq!(summaries, 1, "one summary per report interval");
    // A token for a ring that does not exist, and a truncated one.
    let mut token = header(wire::KIND_TOKEN, cluster, 2);
    token.extend_from_slice(&[0u8; 80]);
    n.handle_datagram(Instant(1), from, &token);
    n.handle_datagram(Instant(1), from, &token[..40]);
    let s = n.stats();
    assert_eq!(s.drop_truncated, 4, "{s:?}");
    assert_eq!(s.drop_bad_magic, 1);
    assert_eq!(s.drop_bad_version, 1);
    assert_eq!(s.drop_foreign_cluster, 1);
    assert_eq!(s.drop_sender_mismatch, 1);
    assert_eq!(s.drop_own_frame, 1);
    assert_eq!(s.drop_unknown_kind, 1);
    assert_eq!(s.drop_malformed, 1);
    assert_eq!(s.drop_not_expected, 1);
    assert_eq!(s.drop_config_mismatch, 2);
    assert_eq!(s.config_summaries_sent, 1);
}

#[test]
fn a_presence_of_another_configuration_is_refused_before_its_rows_are_taken() {
    let mut n = node(1);
    let cluster = cluster_hash("test");
    let ours = n.identity().digest();
    // A presence of node 2 (in ring 8/2) listing itself, with its own row hearing itself.
    let presence = |digest: u64| {
        let mut bytes = header(wire::KIND_PRESENCE, cluster, 2);
        let hdr = wire::PresenceHdr {
            ring_seq: 8.into(),
            ring_rep: 2.into(),
            node_count: 1.into(),
            row_count: 1.into(),
            config_digest: digest.into(),
        };
        bytes.extend_from_slice(hdr.as_bytes());
        bytes.extend_from_slice(&2u32.to_be_bytes());
        let row = wire::RowHdr {
            origin: 0.into(),
            flags: wire::ROW_MATURE,
            _pad: 0,
            incarnation: 1.into(),
            version: 1.into(),
            age_ms: 0.into(),
        };
        bytes.extend_from_slice(row.as_bytes());
        bytes.push(1);
        bytes
    };
    while n.poll_transmit().is_some() {}
    n.handle_datagram(Instant(1), NodeId(2), &presence(ours ^ 1));
    let s = n.stats();
    assert_eq!(s.drop_config_mismatch, 1);
    assert_eq!(s.presences_in, 0, "its rows are not taken");
    let summaries = std::iter::from_fn(|| n.poll_transmit())
        .filter(|t| t.bytes[3] == wire::KIND_CONFIG)
        .count();
    assert_eq!(summaries, 1, "the sender is sent this node's summary");
    n.handle_datagram(Instant(2), NodeId(2), &presence(ours));
    let s = n.stats();
    assert_eq!(s.drop_config_mismatch, 1);
    assert_eq!(s.presences_in, 1);
}

#[test]
fn ring_sequences_no_node_could_send_are_malformed() {
    let mut n = node(1);
    let cluster = cluster_hash("test");
    let ours = n.identity().digest();
    let before = n.max_ring_seq();
    // A join claiming the highest sequence there is: taken, the next ring's number overflows.
    let mut join = header(wire::KIND_JOIN, cluster, 2);
    let hdr = wire::JoinHdr {
        ring_seq: u64::MAX.into(),
        proc_count: 1.into(),
        fail_count: 0.into(),
        excluded_count: 0.into(),
        _pad: 0.into(),
        config_digest: ours.into(),
    };
    join.extend_from_slice(hdr.as_bytes());
    join.extend_from_slice(&2u32.to_be_bytes());
    n.handle_datagram(Instant(1), NodeId(2), &join);
    // A presence naming such a ring.
    let mut presence = header(wire::KIND_PRESENCE, cluster, 2);
    let hdr = wire::PresenceHdr {
        ring_seq: (!3u64).into(),
        ring_rep: 2.into(),
        node_count: 0.into(),
        row_count: 0.into(),
        config_digest: ours.into(),
    };
    presence.extend_from_slice(hdr.as_bytes());
    n.handle_datagram(Instant(1), NodeId(2), &presence);
    // Commit tokens of nodes 1 and 2 for a ring whose sequence no representative numbers:
    // not a multiple of 4, and at the limit.
    for seq in [9, totem_core::RingId::SEQ_LIMIT] {
        let mut commit = header(wire::KIND_COMMIT, cluster, 2);
        let hdr = wire::CommitHdr {
            ring_seq: seq.into(),
            ring_rep: 1.into(),
            member_count: 2.into(),
            pass: 1,
            _pad: 0,
            token_seq: 1.into(),
        };
        commit.extend_from_slice(hdr.as_bytes());
        for node in [1u32, 2] {
            let mut entry = wire::CommitEntry::new_zeroed();
            entry.node = node.into();
            commit.extend_from_slice(entry.as_bytes());
        }
        n.handle_datagram(Instant(1), NodeId(2), &commit);
    }
    let s = n.stats();
    assert_eq!(s.drop_malformed, 4, "{s:?}");
    assert_eq!((s.joins_in, s.presences_in), (0, 0));
    assert_eq!(n.max_ring_seq(), before, "nothing taken from them");
}

#[test]
fn random_bytes_never_panic() {
    let mut n = node(1);
    let cluster = cluster_hash("test");
    let mut x = 0x1234_5678_9abc_def0u64;
    for round in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let kind = (x % 10) as u8;
        let mut bytes = header(kind, cluster, 2);
        let len = (x >> 8) % 300;
        for i in 0..len {
            bytes.push((x.rotate_left(i as u32) >> 3) as u8);
        }
        n.handle_datagram(Instant(round), NodeId(2), &bytes);
        n.handle_timeout(Instant(round * 1_000_000));
        while n.poll_transmit().is_some() {}
        while n.poll_event().is_some() {}
    }
}

#[test]
fn packing_round_trips_every_size_class() {
    let body_max = 1400 - wire::DATA_OVERHEAD;
    let mut packer = Packer::new(body_max);
    packer.set_app_open(true);
    let sizes = [
        0usize,
        1,
        63,
        64,
        200,
        body_max - 4,
        body_max,
        body_max + 1,
        9_000,
        65_535,
        65_536,
        300_000,
        1 << 20,
    ];
    let messages: Vec<Vec<u8>> = sizes
        .iter()
        .map(|&n| (0..n).map(|i| (i * 31 + n) as u8).collect())
        .collect();
    for (i, m) in messages.iter().enumerate() {
        let g = if i % 3 == 0 {
            Guarantee::Safe
        } else {
            Guarantee::Agreed
        };
        packer.push_app(g, &[m]).expect("queued");
    }
    let mut out = Vec::new();
    let mut frame = vec![0u8; body_max];
    let mut frames = 0;
    loop {
        let (len, _) = packer.fill(&mut frame);
        if len == 0 {
            break;
        }
        assert!(len <= body_max);
        frames += 1;
        let body = totem_core::Body::new(frame[..len].to_vec());
        packer.unpack(NodeId(9), &body, |m| out.push(m.message.to_vec()));
    }
    assert_eq!(out, messages);
    assert!(
        frames > (1 << 20) / body_max,
        "large messages span frames ({frames})"
    );
    assert_eq!(packer.queued_bytes(), 0);
}

#[test]
fn a_message_over_one_mebibyte_is_refused() {
    let mut n = node(1);
    let data = vec![0u8; (1 << 20) + 1];
    n.submit(totem_core::Request::Join {
        group: b"g",
        pid: 1,
    })
    .expect("join");
    let err = n
        .submit(totem_core::Request::Mcast {
            group: b"g",
            pid: 1,
            guarantee: Guarantee::Agreed,
            data: &data,
        })
        .expect_err("too large");
    assert!(matches!(err, totem_core::SubmitError::TooLarge(_)));
    let not_joined = n.submit(totem_core::Request::Mcast {
        group: b"h",
        pid: 1,
        guarantee: Guarantee::Agreed,
        data: b"x",
    });
    assert_eq!(not_joined, Err(totem_core::SubmitError::NotJoined));
}
