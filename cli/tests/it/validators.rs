//! Issue #14: validators as processes. Four `fedchain validator` processes, each with its own
//! key (generated in its own bundle, certified by the CA), its own RocksDB replica and its own
//! engine journal, order hospitals' transactions submitted over mutual-TLS QUIC; one is
//! killed with SIGKILL and the others keep finalizing; restarted, it catches up; every
//! replica then passes `fedchain audit --genesis`, which checks each block's finalization
//! against the genesis validator set.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fedchain_ledger::{Hash, RocksStore, Role, SignedTx, Store, Transaction, TxKind};
use fedchain_node::material::load_bundle;
use fedchain_node::validator::ChainClient;

use crate::cluster::{fedchain, lock, Cluster};

const VALIDATORS: usize = 4;
const HOSPITALS: usize = 3;

/// A hospital's connection to validator `v`, with the hospital's own bundle.
async fn client(c: &Cluster, hospital: usize, v: usize) -> ChainClient {
    let bundle = load_bundle(
        &c.path(&format!("bundles/hospital-{hospital}")),
        Role::Hospital,
    )
    .unwrap();
    let cfg = &c.validator_cfgs[v];
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match ChainClient::connect(
            cfg.listen,
            &format!("validator-{v}"),
            &bundle,
            cfg.net.limits(),
        )
        .await
        {
            Ok(c) => return c,
            Err(_) if Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("validator {v} unreachable: {e}"),
        }
    }
}

/// Hospital `h`'s own `Register`, signed with the key of its bundle.
fn register(c: &Cluster, h: usize) -> SignedTx {
    let key = load_bundle(&c.path(&format!("bundles/hospital-{h}")), Role::Hospital)
        .unwrap()
        .signing_key()
        .unwrap();
    Transaction {
        chain_id: c.chain_id(),
        sender: key.verifying_key(),
        nonce: 1,
        kind: TxKind::Register {
            role: Role::Hospital,
            pseudonym: format!("hospital-{h}"),
        },
    }
    .sign(&key)
}

/// The height of the finalized block that holds `tx` on validator `v`, if any yet.
async fn included(client: &ChainClient, tx: &Hash) -> Option<u64> {
    let mut from = 1;
    loop {
        let blocks = client.blocks(from, 64).await.ok()?;
        let last = blocks.last()?.0.header.height;
        for (b, _) in &blocks {
            if b.txs.iter().any(|t| t.hash() == *tx) {
                return Some(b.header.height);
            }
        }
        from = last + 1;
    }
}

/// Wait until each validator in `vs` has `tx` in a finalized block; the heights.
async fn wait_included(c: &mut Cluster, vs: &[usize], hospital: usize, tx: &Hash) -> Vec<u64> {
    let end = Instant::now() + Duration::from_secs(90);
    let mut at = Vec::new();
    for &v in vs {
        let client = client(c, hospital, v).await;
        loop {
            c.validator_alive(v);
            if let Some(h) = included(&client, tx).await {
                at.push(h);
                break;
            }
            assert!(
                Instant::now() < end,
                "validator {v} did not finalize the transaction in 90 s:\n{}",
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    at
}

/// `fedchain audit --genesis` of validator `v`'s replica.
fn audit(c: &Cluster, v: usize) -> String {
    let ledger = c.validator_cfgs[v].ledger.display().to_string();
    fedchain(
        c.dir.path(),
        &["audit", &ledger, "--genesis", &c.chain_id()],
    )
}

/// The header hash of every replica at the lowest head height among them (they must agree).
fn agree(c: &Cluster, ledgers: &[PathBuf]) -> (Vec<u64>, u64) {
    let mut heights = Vec::new();
    for l in ledgers {
        let store = RocksStore::open_read_only(l).unwrap();
        heights.push(Store::head(&store).unwrap().unwrap().height);
    }
    let low = *heights.iter().min().unwrap();
    let mut at_low = Vec::new();
    for l in ledgers {
        let store = RocksStore::open_read_only(l).unwrap();
        let header = Store::header(&store, low).unwrap().unwrap();
        at_low.push(fedchain_ledger::store::header_hash(&header));
    }
    assert!(
        at_low.windows(2).all(|w| w[0] == w[1]),
        "the replicas differ at height {low}: {at_low:?}\n{}",
        c.logs()
    );
    (heights, low)
}

#[test]
fn four_validator_processes_finalize_survive_a_kill_and_every_replica_audits_clean() {
    let _guard = lock();
    let mut c = Cluster::with_validators(HOSPITALS, 1, VALIDATORS);
    for v in 0..VALIDATORS {
        c.start_validator(v);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // hospital 0 registers through validator 0: every replica finalizes it at one height
        let to0 = client(&c, 0, 0).await;
        let tx = to0.submit(&register(&c, 0), &[]).await.unwrap().unwrap();
        let at = wait_included(&mut c, &[0, 1, 2, 3], 0, &tx).await;
        assert!(at.windows(2).all(|w| w[0] == w[1]), "{at:?}");
        // the same registration again is refused with the chain's reason
        let again = to0.submit(&register(&c, 0), &[]).await.unwrap();
        assert!(again.is_err(), "{again:?}");

        // one validator of four killed: the other three keep finalizing
        c.kill_validator(3);
        let to1 = client(&c, 1, 1).await;
        let tx1 = to1.submit(&register(&c, 1), &[]).await.unwrap().unwrap();
        let at1 = wait_included(&mut c, &[0, 1, 2], 1, &tx1).await;
        assert!(at1.windows(2).all(|w| w[0] == w[1]), "{at1:?}");
        assert!(at1[0] > at[0]);

        // restarted, it catches up on what was finalized without it, and takes part again
        c.start_validator(3);
        let back = wait_included(&mut c, &[3], 1, &tx1).await;
        assert_eq!(back[0], at1[0]);
        let to3 = client(&c, 2, 3).await;
        let tx2 = to3.submit(&register(&c, 2), &[]).await.unwrap().unwrap();
        let at2 = wait_included(&mut c, &[0, 1, 2, 3], 2, &tx2).await;
        assert!(at2.windows(2).all(|w| w[0] == w[1]), "{at2:?}");
        eprintln!(
            "finalized at heights {} (4 validators), {} (3, one killed), {} (4, after it caught up)",
            at[0], at1[0], at2[0]
        );
        let s = to3.status().await.unwrap();
        assert_eq!(s.chain_id, c.chain_id());
        assert_eq!(s.index, 3);
        assert!(s.height >= at2[0]);
    });
    drop(rt);
    for v in 0..VALIDATORS {
        c.stop_validator(v);
    }
    // every replica audits clean from the genesis hash, finalizations checked against the
    // genesis validator set, and the replicas agree
    for v in 0..VALIDATORS {
        let report = audit(&c, v);
        assert!(report.contains("audit ok"), "validator {v}: {report}");
    }
    let ledgers: Vec<PathBuf> = c.validator_cfgs.iter().map(|v| v.ledger.clone()).collect();
    let (heights, low) = agree(&c, &ledgers);
    eprintln!("replica heads {heights:?}, all equal at height {low}");
}

/// Issue #14 "done means": the aggregator starts from a bundle and a config without any
/// validator key, four validator processes finalize a job's rounds, one is killed with
/// SIGKILL in the middle of the job and the rounds go on; every replica and the aggregator's
/// own ledger audit clean from the genesis hash and agree.
#[test]
fn a_job_runs_on_four_validator_processes_and_the_aggregator_holds_no_validator_key() {
    let _guard = lock();
    let mut c = Cluster::with_validators(4, 3, VALIDATORS);
    // the aggregator's inputs: its own bundle, the job directory (public files and sealed
    // shares) and a config naming validators by address only
    assert!(c.coordinator.validators.is_empty());
    assert_eq!(c.coordinator.chain.len(), VALIDATORS);
    let config = std::fs::read_to_string(c.path("coordinator.toml")).unwrap();
    assert!(!config.contains("bundles/validator"), "{config}");
    c.start_all();
    // the first round commits with all four validators, then one is killed
    let coordinator_ledger = c.coordinator.ledger.clone();
    c.wait_for("round 0 committed", 180, |c| {
        c.log("coordinator")
            .contains("coordinator: round committed")
    });
    c.kill_validator(2);
    assert!(
        c.wait_coordinator(300),
        "the coordinator failed\n{}",
        c.logs()
    );
    c.wait_workers(60);
    let out = c.out("coordinator");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("committed at height"))
            .count(),
        3,
        "{out}\n{}",
        c.logs()
    );
    for v in [0, 1, 3] {
        c.stop_validator(v);
    }
    let chain = c.chain_id();
    let aggregator = fedchain(
        c.dir.path(),
        &[
            "audit",
            &coordinator_ledger.display().to_string(),
            "--genesis",
            &chain,
        ],
    );
    assert!(aggregator.contains("audit ok"), "{aggregator}");
    for v in 0..VALIDATORS {
        let report = audit(&c, v);
        assert!(report.contains("audit ok"), "validator {v}: {report}");
    }
    // the three that ran to the end and the aggregator agree at the aggregator's head; the
    // killed one agrees with them up to its own
    let mut live: Vec<PathBuf> = [0, 1, 3]
        .iter()
        .map(|&v| c.validator_cfgs[v].ledger.clone())
        .collect();
    live.push(coordinator_ledger);
    let (heights, low) = agree(&c, &live);
    let (_, killed_at) = agree(&c, &[live[0].clone(), c.validator_cfgs[2].ledger.clone()]);
    eprintln!(
        "{out}\nheads (validators 0, 1, 3, the aggregator) {heights:?}, equal at height {low}; \
         validator 2 (killed) equal up to {killed_at}"
    );
    assert_eq!(
        heights[3], low,
        "compared at the aggregator's head: {heights:?}"
    );
}

/// THREAT-MODEL A7 with real processes: the aggregator drops every submission of hospital 1
/// (failpoint `coordinator::drop-submission`, no record and no acknowledgement), but each
/// hospital also gives what it signs to the validators directly, so the submission is final
/// on chain anyway; the coordinator finds it there and has to count it (a commit must list
/// every valid submission on chain), and every round commits with hospital 1 accepted. The
/// hospitals follow the validators' chain and decrypt only its valid set.
#[cfg(feature = "failpoints")]
#[test]
fn a07_a_submission_the_aggregator_drops_reaches_the_chain_through_the_validators_and_counts() {
    let _guard = lock();
    let mut c = Cluster::with_validators(4, 2, VALIDATORS);
    for v in 0..VALIDATORS {
        c.start_validator(v);
    }
    c.start_coordinator(&[("FAILPOINTS", "coordinator::drop-submission=return(1)")]);
    for i in 0..4 {
        c.start_worker(i, &[]);
    }
    assert!(
        c.wait_coordinator(300),
        "the coordinator failed\n{}",
        c.logs()
    );
    c.wait_workers(60);
    let log = c.log("coordinator");
    let committed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("coordinator: round committed"))
        .collect();
    assert_eq!(committed.len(), 2, "{}", c.logs());
    for l in &committed {
        // hospital-1 is among the accepted, nobody is missing
        let accepted = l
            .split("accepted=")
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap();
        assert!(accepted.contains("hospital-1"), "{l}");
        assert!(l.contains("missing=[]"), "{l}");
    }
    assert!(
        log.lines()
            .any(|l| l.contains("reached the chain directly") && l.contains("kind=Submit")),
        "{log}"
    );
    // the hospitals followed the validators' chain
    for i in 0..4 {
        assert!(
            c.log(&format!("worker-{i}"))
                .contains("following the validators' chain"),
            "{}",
            c.logs()
        );
    }
    for v in 0..VALIDATORS {
        c.stop_validator(v);
    }
    let aggregator = fedchain(
        c.dir.path(),
        &[
            "audit",
            &c.coordinator.ledger.display().to_string(),
            "--genesis",
            &c.chain_id(),
        ],
    );
    assert!(aggregator.contains("audit ok"), "{aggregator}");
    let report = audit(&c, 0);
    assert!(report.contains("audit ok"), "{report}");
}

/// Issue #14 item 5 with real processes: the aggregator is killed with SIGKILL while round 1
/// collects (each hospital holds its round-1 submission for 3 s after training, failpoint
/// `worker::before-submit`), so the hospitals give their submissions to the validators while
/// it is down; the blocks go on without it. Restarted, it recovers its ledger from the
/// validators and resumes the round with what it finds on chain and what the hospitals resend:
/// every round commits with all four hospitals, nobody is charged, and its ledger and a
/// validator's audit clean.
#[cfg(feature = "failpoints")]
#[test]
fn the_aggregator_killed_mid_round_resumes_the_round_from_the_chain_and_loses_nothing() {
    let _guard = lock();
    let rounds = 3;
    let mut c = Cluster::with_validators(4, rounds, VALIDATORS);
    for v in 0..VALIDATORS {
        c.start_validator(v);
    }
    c.start_coordinator(&[]);
    c.start_workers_holding_round_1();
    c.kill_coordinator();
    // down long enough for the held submissions to reach the validators
    std::thread::sleep(Duration::from_secs(6));
    c.start_coordinator(&[]);
    let log = c.finish_after_restart();
    // what the hospitals gave the validators while it was down it finds on chain; what they
    // resend after reconnecting it takes as duplicates (which comes first depends on timing)
    let adopted = log
        .lines()
        .filter(|l| l.contains("reached the chain directly") && l.contains("kind=Submit"))
        .count();
    eprintln!("{adopted} submissions of round 1 taken from the chain after the restart");
    for v in 0..VALIDATORS {
        c.stop_validator(v);
    }
    let (audit_out, inspect) = c.audit();
    crate::cluster::assert_all_rounds_committed_by_all(&audit_out, &inspect, rounds, 4);
    let report = audit(&c, 1);
    assert!(report.contains("audit ok"), "{report}");
}
