//! What the rings should be while some directed pairs of nodes cannot reach each other, worked
//! out here by brute force from the network's blocked pairs — independently of the core's own
//! rule — and the check that a run's rings settled on them within a bound and stayed.
//!
//! Two nodes can be in one ring only if each hears the other. The expected rings take, again
//! and again, the largest set of the nodes left in which every pair can (ties: the lowest
//! sorted list of node ids), as every node must agree on.

/// Node ids (1-based) of the expected rings, for `nodes` nodes with `blocked` directed pairs
/// (0-based `(from, to)`) losing everything. At most 20 nodes (every subset is tried).
pub fn expected_rings(nodes: usize, blocked: &[(usize, usize)]) -> Vec<Vec<u32>> {
    assert!(nodes <= 20, "brute force over every subset");
    let connected = |a: usize, b: usize| !blocked.contains(&(a, b)) && !blocked.contains(&(b, a));
    let mut left: Vec<usize> = (0..nodes).collect();
    let mut rings = Vec::new();
    while !left.is_empty() {
        let mut best: Vec<usize> = Vec::new();
        for mask in 1u32..(1 << left.len()) {
            let set: Vec<usize> = (0..left.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| left[i])
                .collect();
            let clique = set
                .iter()
                .all(|a| set.iter().all(|b| a == b || connected(*a, *b)));
            if clique && (set.len() > best.len() || (set.len() == best.len() && set < best)) {
                best = set;
            }
        }
        left.retain(|n| !best.contains(n));
        rings.push(best.iter().map(|n| *n as u32 + 1).collect());
    }
    rings
}

/// Checks that after the connectivity changed at `change_ms`, every node's last new membership
/// before `until_ms` is its expected ring, and that the last membership change of any node
/// came within `bound_ms` of the change (nothing changed from then to `until_ms`: the rings
/// were stable). `formed` is `RunReport::formed`. Returns the time the rings settled, in ms
/// after the change.
pub fn check_settled(
    formed: &[(u64, u32, Vec<u32>)],
    expected: &[Vec<u32>],
    change_ms: u64,
    bound_ms: u64,
    until_ms: u64,
) -> Result<u64, String> {
    let mut settled = change_ms;
    for ring in expected {
        for node in ring {
            let last = formed
                .iter()
                .rfind(|(ms, n, _)| n == node && *ms < until_ms)
                .ok_or_else(|| format!("node {node} never formed a ring"))?;
            if &last.2 != ring {
                return Err(format!(
                    "node {node} ended in ring {:?} (formed at {} ms), expected {ring:?}; every \
                     ring formed after the change: {:?}",
                    last.2,
                    last.0,
                    after(formed, change_ms, until_ms)
                ));
            }
            settled = settled.max(last.0);
        }
    }
    if settled - change_ms > bound_ms {
        return Err(format!(
            "the rings settled {} ms after the change, more than {bound_ms} ms; every ring \
             formed after the change: {:?}",
            settled - change_ms,
            after(formed, change_ms, until_ms)
        ));
    }
    Ok(settled - change_ms)
}

fn after(formed: &[(u64, u32, Vec<u32>)], from: u64, until: u64) -> Vec<&(u64, u32, Vec<u32>)> {
    formed
        .iter()
        .filter(|(ms, _, _)| (from..until).contains(ms))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_rings_by_brute_force() {
        assert_eq!(
            expected_rings(3, &[(0, 2), (2, 0)]),
            vec![vec![1, 2], vec![3]]
        );
        assert_eq!(expected_rings(4, &[(0, 2)]), vec![vec![1, 2, 4], vec![3]]);
        assert_eq!(
            expected_rings(4, &[(3, 0), (3, 1), (3, 2)]),
            vec![vec![1, 2, 3], vec![4]]
        );
        assert_eq!(
            expected_rings(5, &[(0, 1), (2, 3)]),
            vec![vec![1, 3, 5], vec![2, 4]]
        );
        assert_eq!(expected_rings(3, &[]), vec![vec![1, 2, 3]]);
    }
}
