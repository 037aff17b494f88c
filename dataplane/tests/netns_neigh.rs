//! The AF_XDP provider's neighbour cache against the kernel's table, in a testbed host (testbed
//! prefix `nb-`): a lookup of a known address reads the cache and never the kernel, a miss dumps
//! the table, and only `maintain` (which the service runs off the send path) follows a MAC that
//! changed, once the cache is `REFRESH` old. Needs root for the namespace; without it prints
//! "skipped: …" and why.

use std::net::IpAddr;
use std::time::Duration;

use rotor_dataplane::transport::frame::Mac;
use rotor_dataplane::transport::neigh::{links, NeighCache, REFRESH};
use rotor_testbed::{in_netns, root_or_skip, Testbed};

/// An on-link address no host of the bed has.
const PEER: &str = "198.18.0.99";

#[test]
fn the_cache_follows_a_changed_mac_only_when_maintained() {
    if !root_or_skip("a network namespace for a neighbour table of our own") {
        return;
    }
    let bed = Testbed::up("nb-", 1).expect("testbed");
    let set_mac = |mac: &str| {
        let out = bed
            .exec(
                1,
                &[
                    "ip",
                    "neigh",
                    "replace",
                    PEER,
                    "lladdr",
                    mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ],
            )
            .expect("ip neigh");
        assert!(out.status.success(), "ip neigh: {out:?}");
    };
    set_mac("02:00:00:00:00:01");
    let (changed_tx, changed_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let host = bed.host(1);
    let worker = std::thread::spawn(move || {
        in_netns(&host, move || {
            let check = || -> Result<(), String> {
                let eth0 = links()
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|l| l.name == "eth0")
                    .ok_or("no eth0 in the host")?;
                let mut cache = NeighCache::new(eth0.ifindex).map_err(|e| e.to_string())?;
                let peer: IpAddr = PEER.parse().unwrap();
                let first = Mac([2, 0, 0, 0, 0, 1]);
                assert_eq!(cache.lookup(peer), Some(first), "a miss dumps the table");
                assert_eq!((cache.counters().dumps, cache.counters().misses), (1, 1));
                done_tx.send(Ok(())).unwrap();
                // The test changes the kernel's entry.
                changed_rx.recv().unwrap();
                assert_eq!(cache.lookup(peer), Some(first), "a hit reads the cache");
                cache.maintain();
                assert_eq!(cache.lookup(peer), Some(first), "not REFRESH old yet");
                assert_eq!(cache.counters().dumps, 1);
                std::thread::sleep(REFRESH + Duration::from_millis(50));
                assert_eq!(
                    cache.lookup(peer),
                    Some(first),
                    "lookups never dump on a hit"
                );
                assert_eq!(cache.counters().dumps, 1);
                cache.maintain();
                assert_eq!(cache.counters().dumps, 2);
                assert_eq!(cache.lookup(peer), Some(Mac([2, 0, 0, 0, 0, 2])));
                assert_eq!(cache.counters().misses, 1);
                Ok(())
            };
            done_tx.send(check()).unwrap();
        })
    });
    done_rx.recv().unwrap().expect("first lookup");
    set_mac("02:00:00:00:00:02");
    changed_tx.send(()).unwrap();
    let result = done_rx.recv();
    worker.join().expect("the checks passed");
    result.unwrap().expect("the checks");
}
