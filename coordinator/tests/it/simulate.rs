use fedchain_coordinator::config::{Behaviour, Byzantine, SimulateConfig};
use fedchain_coordinator::simulate::{run_one, RunOutcome};
use fedchain_coordinator::{FedchainVerifier, Quiet};
use fedchain_ledger::{
    stored_genesis, verify_chain_full, AuditError, AuditReport, Column, RocksStore, Store,
};

/// The audit `fedchain audit --genesis` runs: every round re-verified, every validators'
/// finalization checked against the genesis set.
fn audit(
    store: &RocksStore,
    genesis: &fedchain_ledger::Genesis,
) -> Result<AuditReport, AuditError> {
    verify_chain_full(
        store,
        genesis,
        Some(&FedchainVerifier),
        Some(&fedchain_validator::SimplexFinality::new()),
    )
}

/// A small, fast configuration: 512-bit key (tests only), breast cancer, 5 hospitals, t = 3.
fn small(rounds: u32) -> SimulateConfig {
    SimulateConfig {
        key_bits: 512,
        rounds,
        validators: 3,
        baseline: false,
        ..SimulateConfig::default()
    }
}

fn run(cfg: &SimulateConfig, dir: &std::path::Path) -> RunOutcome {
    run_one(cfg, dir, &mut Quiet).unwrap()
}

#[test]
fn encrypted_model_equals_plaintext_fedavg_up_to_quantization() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(4);
    let enc = run(&cfg, &dir.path().join("enc"));
    let plain = run(
        &SimulateConfig {
            plaintext: true,
            ..cfg.clone()
        },
        &dir.path().join("plain"),
    );
    assert!(enc.audit.starts_with("ok"), "{}", enc.audit);
    assert!(plain.audit.starts_with("ok"), "{}", plain.audit);
    assert_eq!(enc.params_history.len(), 4);
    // one quantization step is 2 clip / (2^16 - 1); the error of each round's average is at
    // most half a step and compounds through training only mildly over a few rounds
    let step = 2.0 * cfg.clip / 65535.0;
    for (r, (a, b)) in enc
        .params_history
        .iter()
        .zip(&plain.params_history)
        .enumerate()
    {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= 20.0 * step * (r as f32 + 1.0),
            "round {r}: max |enc - plain| = {worst}"
        );
    }
    for (a, b) in enc.rows.iter().zip(&plain.rows) {
        assert!(
            (a.accuracy - b.accuracy).abs() <= 0.01,
            "round {}: {} vs {}",
            a.round,
            a.accuracy,
            b.accuracy
        );
        assert_eq!(a.accepted, 5);
    }
}

fn deposit(out: &RunOutcome, hospital: usize) -> u64 {
    out.balances
        .iter()
        .find(|b| b.participant == format!("hospital-{hospital}"))
        .unwrap()
        .deposit
}

#[test]
fn byzantine_hospitals_are_rejected_penalized_and_rounds_complete() {
    let dir = tempfile::tempdir().unwrap();
    for (i, b) in [
        Behaviour::Equivocate,
        Behaviour::GarbageCiphertext,
        Behaviour::BadProof,
        Behaviour::Late,
        Behaviour::Dropout,
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = SimulateConfig {
            byzantine: vec![Byzantine {
                hospital: 1,
                behaviour: b,
            }],
            ..small(2)
        };
        let out = run(&cfg, &dir.path().join(format!("b{i}")));
        assert!(out.audit.starts_with("ok"), "{b:?}: {}", out.audit);
        for row in &out.rows {
            assert!(!row.void, "{b:?}: round {} void", row.round);
            let expect_accepted = if b == Behaviour::BadProof { 5 } else { 4 };
            assert_eq!(row.accepted, expect_accepted, "{b:?}: round {}", row.round);
            if b != Behaviour::Dropout {
                assert!(
                    row.rejected >= 1,
                    "{b:?}: round {} rejected nothing",
                    row.round
                );
            }
        }
        // deposits: 2000; misbehaviour forfeits half per offence, a missed deadline a tenth
        let want = match b {
            Behaviour::Equivocate | Behaviour::GarbageCiphertext | Behaviour::BadProof => {
                2000 / 2 / 2
            }
            Behaviour::Late | Behaviour::Dropout => 2000 - 200 - 180,
            Behaviour::Overflow => unreachable!("not in this list"),
        };
        assert_eq!(deposit(&out, 1), want, "{b:?}");
        assert_eq!(
            deposit(&out, 0),
            2000,
            "{b:?}: an honest hospital lost its deposit"
        );
    }
}

#[test]
fn a_flipped_byte_in_the_ledger_fails_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let out = run(&small(2), &path);
    assert!(out.audit.starts_with("ok"));
    let store = RocksStore::open(&path).unwrap();
    let genesis = stored_genesis(&store).unwrap();
    let report = audit(&store, &genesis).unwrap();
    assert_eq!(report.rounds_verified, 2);
    // flip one byte of a block body in the middle of the chain
    let h = out.ledger_height / 2;
    let key = RocksStore::height_key(h);
    let mut body = store.raw_get(Column::Bodies, &key).unwrap().unwrap();
    let i = body.len() / 2;
    body[i] ^= 0x40;
    store.raw_put(Column::Bodies, &key, &body).unwrap();
    let e = audit(&store, &genesis).unwrap_err();
    match e {
        AuditError::Corrupt { height, .. } | AuditError::Invalid { height, .. } => {
            assert_eq!(height, h)
        }
        other => panic!("unexpected {other}"),
    }
    body[i] ^= 0x40;
    store.raw_put(Column::Bodies, &key, &body).unwrap();
    audit(&store, &genesis).unwrap();
    // a stored parameter payload altered: the crypto re-verification catches it
    let g = fedchain_ledger::Chain::open_existing(store).unwrap();
    let job = &g.state().jobs[&0];
    let last = job.history.last().unwrap();
    let fedchain_ledger::state::RoundOutcome::Committed {
        new_params_hash, ..
    } = last.outcome.clone()
    else {
        panic!("void")
    };
    let store = g.into_store();
    let mut p = store.payload(&new_params_hash).unwrap().unwrap();
    p[0] ^= 1;
    store
        .raw_put(Column::Payloads, &new_params_hash.0, &p)
        .unwrap();
    let e = audit(&store, &genesis).unwrap_err();
    assert!(matches!(e, AuditError::Crypto { .. }), "{e}");
}

#[test]
fn configs_are_validated() {
    assert!(SimulateConfig {
        threshold: 6,
        ..SimulateConfig::default()
    }
    .validate()
    .is_err());
    assert!(SimulateConfig {
        key_bits: 1023,
        ..SimulateConfig::default()
    }
    .validate()
    .is_err());
    assert!(SimulateConfig {
        byzantine: vec![Byzantine {
            hospital: 9,
            behaviour: Behaviour::Late
        }],
        ..SimulateConfig::default()
    }
    .validate()
    .is_err());
    assert!(SimulateConfig::from_toml("hospitals = 3\nbogus = 1").is_err());
    let c = SimulateConfig::from_toml("hospitals = 10\nthreshold = 4\ndataset = \"digits\"\nmodel = \"mlp\"\n[partition]\nkind = \"dirichlet\"\nalpha = 0.3\n").unwrap();
    c.validate().unwrap();
    assert_eq!(c.hospitals, 10);
    // every shipped example config parses and validates
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let c = SimulateConfig::from_toml(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            c.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 3, "example configs missing");
}

/// A5: a hospital submits, every round, a well-formed and proven vector whose plaintexts
/// overflow their slots. The first round's aggregate fails to unpack: `VoidUnpackable` (the
/// verified shares on chain as evidence, re-checked by the audit) opens a blame step, the four
/// honest hospitals put range proofs of their ciphertexts there on chain (each verified by the
/// aggregator, by the validators' verifier and by the audit), the offender cannot, and `Blame`
/// takes part of its deposit and excludes it. The consortium keeps training: every later
/// round commits without it.
#[test]
fn a05_overflowing_hospital_is_blamed_penalised_excluded_and_training_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimulateConfig {
        byzantine: vec![Byzantine {
            hospital: 2,
            behaviour: Behaviour::Overflow,
        }],
        ..small(3)
    };
    let out = run(&cfg, &dir.path().join("overflow"));
    assert!(out.audit.starts_with("ok"), "{}", out.audit);
    assert_eq!(out.rows.len(), 3, "every round ran");
    assert!(out.rows[0].void, "round 0 does not unpack");
    for row in &out.rows[1..] {
        assert!(!row.void, "round {} should commit", row.round);
        assert_eq!(row.accepted, 4, "round {}: the offender is out", row.round);
    }
    assert!(out.final_accuracy > 0.85, "{}", out.final_accuracy);
    let deposit = |i: usize| out.balances[i + 1].deposit;
    assert!(
        deposit(2) < deposit(0) && deposit(2) < deposit(1),
        "offender's deposit {} vs {} {}",
        deposit(2),
        deposit(0),
        deposit(1)
    );
    let store = RocksStore::open(&out.ledger).unwrap();
    let genesis = stored_genesis(&store).unwrap();
    let chain = fedchain_ledger::Chain::open_existing(store).unwrap();
    let job = &chain.state().jobs[&0];
    let offender = job.spec.committee[2];
    assert_eq!(
        job.excluded.iter().copied().collect::<Vec<_>>(),
        vec![offender]
    );
    assert!(job
        .punished
        .contains(&(0, offender, fedchain_ledger::types::Offence::OUT_OF_RANGE)));
    let proofs = (1..=chain.state().height)
        .flat_map(|h| chain.block(h).unwrap().unwrap().txs)
        .filter(|t| matches!(t.tx.kind, fedchain_ledger::TxKind::RangeProof { .. }))
        .count();
    assert_eq!(proofs, 4, "one range proof per honest submitter");
    let store = chain.into_store();
    let report = audit(&store, &genesis).unwrap();
    assert_eq!(report.rounds_verified, 2);
    assert_eq!(report.range_proofs_verified, 4);
}

/// Issue #19: theta_r is re-hashed. Flipping the lowest bit of theta_0[0] in the stored
/// payload (f32 rounding would absorb it in theta_1) fails the audit: the payload no longer
/// hashes to the `params_hash` that names it.
#[test]
fn a17_flipped_bit_in_theta_zero_fails_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let out = run(&small(1), &path);
    assert!(out.audit.starts_with("ok"));
    let store = RocksStore::open(&path).unwrap();
    let genesis = stored_genesis(&store).unwrap();
    let g = fedchain_ledger::Chain::open_existing(store).unwrap();
    let theta0 = g.state().jobs[&0].history[0].params_hash;
    let store = g.into_store();
    let mut p = store.payload(&theta0).unwrap().unwrap();
    p[0] ^= 1; // the lowest mantissa bit of theta_0[0] (little-endian f32)
    store.raw_put(Column::Payloads, &theta0.0, &p).unwrap();
    match audit(&store, &genesis).unwrap_err() {
        AuditError::Crypto { reason, .. } => {
            assert!(reason.contains("does not hash to its digest"), "{reason}")
        }
        other => panic!("unexpected {other}"),
    }
}
