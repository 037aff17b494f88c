//! quorum{}'s table and resolution: corosync's defaults and derivations, its refusals under the
//! key to change, its corrections as warnings, and bounds on votes.

use totem_core::votequorum::{
    quorum_key_named, NodeVotes, QuorumKeyType, QuorumSettings, QuorumValue, TieBreaker,
    EXPECTED_VOTES_MAX, QUORUM_KEYS, VOTES_MAX,
};

fn nodes(votes: &[Option<u32>]) -> Vec<NodeVotes> {
    votes
        .iter()
        .enumerate()
        .map(|(i, v)| NodeVotes {
            index: i,
            node_id: i as u32 + 1,
            votes: *v,
        })
        .collect()
}

fn resolve(
    pairs: &[(&str, &str)],
    list: &[NodeVotes],
) -> Result<(Option<QuorumSettings>, Vec<String>), String> {
    let explicit = |name: &str| -> Option<QuorumValue<'_>> {
        let (_, v) = pairs.iter().find(|(n, _)| *n == name)?;
        let key = quorum_key_named(name).expect("known key");
        Some(match key.key_type {
            QuorumKeyType::U32 { .. } | QuorumKeyType::Flag => {
                QuorumValue::Number(v.parse().expect("a number"))
            }
            _ => QuorumValue::Text(v),
        })
    };
    QuorumSettings::resolve(explicit, list, Some(1))
        .map(|(s, w)| (s, w.into_iter().map(|w| w.message).collect()))
        .map_err(|e| e.to_string())
}

const VQ: (&str, &str) = ("provider", "corosync_votequorum");

/// Keys the file sets, the nodelist, and the start of the error wanted.
type Refusal<'a> = (&'a [(&'a str, &'a str)], &'a [NodeVotes], &'a str);

#[test]
fn no_provider_means_always_quorate() {
    assert_eq!(resolve(&[], &nodes(&[None; 3])).unwrap().0, None);
}

#[test]
fn defaults_come_from_the_nodelist() {
    let s = resolve(&[VQ], &nodes(&[None, Some(3), None]))
        .unwrap()
        .0
        .unwrap();
    assert_eq!(s.nodelist_expected_votes, Some(5));
    assert_eq!(s.votes, 1);
    assert_eq!(s.start_expected_votes(0), 5);
    assert!(!s.wait_for_all && !s.two_node && !s.last_man_standing);
    assert_eq!(s.last_man_standing_window_ms, 10_000);
    assert_eq!(s.auto_tie_breaker, TieBreaker::Off);
    // quorum.expected_votes overrides the nodelist.
    let s = resolve(&[VQ, ("expected_votes", "7")], &nodes(&[None; 3]))
        .unwrap()
        .0
        .unwrap();
    assert_eq!(s.start_expected_votes(0), 7);
}

#[test]
fn two_node_implies_wait_for_all_unless_set() {
    let s = resolve(&[VQ, ("two_node", "1")], &nodes(&[None; 2]))
        .unwrap()
        .0
        .unwrap();
    assert!(s.two_node && s.wait_for_all);
    let s = resolve(
        &[VQ, ("two_node", "1"), ("wait_for_all", "0")],
        &nodes(&[None; 2]),
    )
    .unwrap()
    .0
    .unwrap();
    assert!(s.two_node && !s.wait_for_all);
}

#[test]
fn corosyncs_refusals_name_the_key_to_change() {
    let three = nodes(&[None; 3]);
    let cases: [Refusal<'_>; 8] = [
        (
            &[VQ],
            &[],
            "quorum.expected_votes: configuration error: nodelist or quorum.expected_votes must \
             be configured!",
        ),
        (
            &[VQ, ("two_node", "1"), ("device.model", "net")],
            &three,
            "quorum.two_node: configuration error: two_node and quorum device cannot be \
             configured at the same time!",
        ),
        (
            &[VQ, ("auto_tie_breaker", "1"), ("last_man_standing", "1")],
            &three,
            "quorum.last_man_standing: configuration error: auto_tie_breaker & \
             last_man_standing not available in odd sized cluster",
        ),
        (
            &[VQ, ("device.model", "net"), ("last_man_standing", "1")],
            &three,
            "quorum.last_man_standing: configuration error: quorum.device is not compatible \
             with last_man_standing",
        ),
        (
            &[VQ, ("device.model", "net"), ("allow_downscale", "1")],
            &three,
            "quorum.allow_downscale: configuration error: quorum.device is not compatible with \
             allow_downscale",
        ),
        (
            &[VQ, ("device.model", "net"), ("expected_votes", "5")],
            &three,
            "quorum.device.votes: configuration error: quorum.device.votes must be specified \
             when quorum.expected_votes is set",
        ),
        (
            &[
                VQ,
                ("device.model", "net"),
                ("expected_votes", "3"),
                ("device.votes", "2"),
            ],
            &three,
            "quorum.device.votes: configuration error: quorum.device.votes is too high or \
             expected_votes is too low",
        ),
        (
            &[VQ, ("provider", "corosync_ykd")],
            &three,
            "quorum.provider: unknown quorum provider",
        ),
    ];
    for (pairs, list, want) in cases {
        // The provider key given last wins in `explicit`'s search: put the odd one first.
        let mut pairs = pairs.to_vec();
        if pairs.iter().filter(|(n, _)| *n == "provider").count() > 1 {
            pairs.remove(0);
        }
        let e = resolve(&pairs, list).expect_err(want);
        assert!(e.starts_with(want), "{e}\n wanted {want}");
    }
    let uneven = nodes(&[None, Some(2), None]);
    let e = resolve(&[VQ, ("device.model", "net")], &uneven).unwrap_err();
    assert!(
        e.contains("must be specified when not all nodes votes 1"),
        "{e}"
    );
    let e = resolve(
        &[VQ, ("device.model", "net"), ("auto_tie_breaker", "1")],
        &nodes(&[None; 4]),
    )
    .unwrap_err();
    assert!(e.contains("not compatible with auto_tie_breaker"), "{e}");
}

#[test]
fn votes_out_of_range_are_refused() {
    let e = resolve(&[VQ], &nodes(&[None, Some(VOTES_MAX + 1)])).unwrap_err();
    assert_eq!(
        e,
        format!(
            "nodelist.node.1.quorum_votes: {} is above the largest value, {VOTES_MAX}",
            VOTES_MAX + 1
        )
    );
    let e = resolve(&[VQ, ("expected_votes", "0")], &nodes(&[None; 3])).unwrap_err();
    assert!(
        e.starts_with("quorum.expected_votes: 0 is below the smallest value, 1"),
        "{e}"
    );
    let too_many = (EXPECTED_VOTES_MAX + 1).to_string();
    let e = resolve(&[VQ, ("expected_votes", &too_many)], &nodes(&[None; 3])).unwrap_err();
    assert!(e.contains("above the largest value"), "{e}");
    let e = resolve(&[VQ, ("last_man_standing_window", "0")], &nodes(&[None; 3])).unwrap_err();
    assert!(
        e.starts_with("quorum.last_man_standing_window: 0 milliseconds"),
        "{e}"
    );
}

#[test]
fn corosyncs_corrections_are_warnings() {
    // two_node with auto_tie_breaker: two_node off, wait_for_all (from two_node) stays.
    let (s, w) = resolve(
        &[VQ, ("two_node", "1"), ("auto_tie_breaker", "1")],
        &nodes(&[None; 2]),
    )
    .unwrap();
    let s = s.unwrap();
    assert!(!s.two_node && s.wait_for_all);
    assert_eq!(s.auto_tie_breaker, TieBreaker::Lowest);
    assert!(w[0].contains("two_node has been disabled"), "{w:?}");
    // auto_tie_breaker on three nodes without wait_for_all: off.
    let (s, w) = resolve(&[VQ, ("auto_tie_breaker", "1")], &nodes(&[None; 3])).unwrap();
    assert_eq!(s.unwrap().auto_tie_breaker, TieBreaker::Off);
    assert!(w[0].contains("auto_tie_breaker has been disabled"), "{w:?}");
    // With wait_for_all it stays.
    let (s, w) = resolve(
        &[VQ, ("auto_tie_breaker", "1"), ("wait_for_all", "1")],
        &nodes(&[None; 3]),
    )
    .unwrap();
    assert_eq!(s.unwrap().auto_tie_breaker, TieBreaker::Lowest);
    assert!(w.is_empty());
    // A tie-breaker node without auto_tie_breaker means nothing.
    let (_, w) = resolve(
        &[VQ, ("auto_tie_breaker_node", "highest")],
        &nodes(&[None; 2]),
    )
    .unwrap();
    assert!(w[0].contains("meaningless"), "{w:?}");
}

#[test]
fn tie_breaker_nodes_parse_as_votequorum_reads_them() {
    assert_eq!(TieBreaker::parse("lowest"), Some(TieBreaker::Lowest));
    assert_eq!(TieBreaker::parse("highest"), Some(TieBreaker::Highest));
    assert_eq!(
        TieBreaker::parse("3 1  5"),
        Some(TieBreaker::List(vec![3, 1, 5]))
    );
    for bad in ["", "0", "first", "1 x"] {
        assert_eq!(TieBreaker::parse(bad), None, "{bad:?}");
    }
    let (s, _) = resolve(
        &[
            VQ,
            ("auto_tie_breaker", "1"),
            ("auto_tie_breaker_node", "4 2"),
        ],
        &nodes(&[None; 4]),
    )
    .unwrap();
    assert_eq!(s.unwrap().auto_tie_breaker, TieBreaker::List(vec![4, 2]));
    let e = resolve(
        &[
            VQ,
            ("auto_tie_breaker", "1"),
            ("auto_tie_breaker_node", "nobody"),
        ],
        &nodes(&[None; 4]),
    )
    .unwrap_err();
    assert!(
        e.starts_with("quorum.auto_tie_breaker_node: expected lowest"),
        "{e}"
    );
}

#[test]
fn quorum_device_votes_are_derived_when_every_node_has_one() {
    let (s, _) = resolve(&[VQ, ("device.model", "net")], &nodes(&[None; 3])).unwrap();
    let s = s.unwrap();
    let q = s.qdevice.clone().unwrap();
    assert_eq!(q.votes, 2);
    assert_eq!((q.timeout_ms, q.sync_timeout_ms), (10_000, 30_000));
    assert_eq!(s.start_expected_votes(0), 5);
}

#[test]
fn allow_downscale_implies_tracking_and_tracking_starts_from_the_barrier() {
    let (s, _) = resolve(&[VQ, ("allow_downscale", "1")], &nodes(&[None; 3])).unwrap();
    let s = s.unwrap();
    assert!(s.expected_votes_tracking);
    assert_eq!(s.start_expected_votes(0), 3);
    assert_eq!(s.start_expected_votes(8), 8);
}

#[test]
fn the_table_names_each_key_once_with_sane_bounds() {
    for (i, k) in QUORUM_KEYS.iter().enumerate() {
        assert!(
            QUORUM_KEYS[..i].iter().all(|o| o.name != k.name),
            "{} twice",
            k.name
        );
        if let QuorumKeyType::U32 { min, max, .. } = k.key_type {
            assert!(min <= max, "{}", k.name);
        }
        assert!(!k.doc.is_empty(), "{} has no doc", k.name);
    }
}
