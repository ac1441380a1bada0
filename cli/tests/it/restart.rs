//! Issue #13 case 6: a coordinator restart punishes nobody. Before, a coordinator killed
//! mid-round and restarted after 1 s counted the round's deadline at once (a block per tick)
//! while the workers needed their idle timeout to notice the dead connection: the open round
//! was voided or committed without honest members, who lost 10% of their deposit. Now QUIC
//! keep-alives and a short idle timeout make the workers reconnect within seconds, and the
//! restarted coordinator produces no block for the recovered round until every member is
//! back (plus a grace of the round's deadline), so the deadline counts from then.
//!
//! Needs the `failpoints` feature (the workers hold their round-1 submissions for 3 s, so the
//! kill lands while the round collects; at 512 bits a round otherwise takes 0.1 s).

use std::time::{Duration, Instant};

use crate::cluster::{assert_all_rounds_committed_by_all, lock, Cluster};

#[test]
fn a_coordinator_killed_mid_round_and_restarted_charges_nobody() {
    let _g = lock();
    let rounds = 4;
    let mut c = Cluster::new(4, rounds);
    c.start_coordinator(&[]);
    // every hospital trains round 1, then waits 3 s before storing and sending its
    // submission: the coordinator is killed in that window, with round 1 collecting
    c.start_workers_holding_round_1();
    c.kill_coordinator();
    std::thread::sleep(Duration::from_secs(1));
    let restarted = Instant::now();
    c.start_coordinator(&[]);
    let log = c.finish_after_restart();
    let back = log
        .lines()
        .find(|l| l.contains("the committee is back after the restart"))
        .unwrap_or_else(|| {
            panic!("the restarted coordinator did not wait for the committee\n{log}")
        });
    eprintln!("{back}");
    eprintln!("job finished {:?} after the restart", restarted.elapsed());
    let (audit, inspect) = c.audit();
    assert_all_rounds_committed_by_all(&audit, &inspect, rounds, 4);
}
