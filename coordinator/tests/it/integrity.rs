//! Integrity attacks of THREAT-MODEL.md performed against the real ledger, verifier and
//! hospital: penalties without evidence (A6), a round re-opened to make a hospital sign twice
//! (A6), and bad enrollments (A9).

use fedchain_coordinator::{Consortium, Ledger, Quiet, SimulateConfig};
use fedchain_ledger::types::Offence;
use fedchain_ledger::{verify_chain_full, Address, Hash, JobId, TxKind};
use fedchain_worker::{
    encode_plain, CoordinatorMsg, RoundOpen, RoundSummary, SubmissionMsg, WorkerError, WorkerMsg,
    WorkerService,
};

/// 512-bit key (tests only), breast cancer, 4 hospitals, t = 3, minimum 3, one round.
pub(crate) fn small() -> SimulateConfig {
    SimulateConfig {
        key_bits: 512,
        hospitals: 4,
        threshold: 3,
        rounds: 1,
        validators: 3,
        baseline: false,
        ..SimulateConfig::default()
    }
}

/// A bootstrapped ledger with round 0 open and hospitals 0..3 having submitted.
struct Open {
    c: Consortium,
    ledger: Ledger,
    hospitals: Vec<fedchain_worker::Hospital>,
    job: JobId,
    subs: Vec<SubmissionMsg>,
    _dir: tempfile::TempDir,
}

/// A fresh ledger of a new consortium of `cfg`, bootstrapped (registrations, job, joins), with
/// round 0 open from theta_0: (dir, consortium, ledger, hospitals, job, deadline).
pub(crate) fn round_zero_open(
    cfg: &SimulateConfig,
) -> (
    tempfile::TempDir,
    Consortium,
    Ledger,
    Vec<fedchain_worker::Hospital>,
    JobId,
    u64,
) {
    let dir = tempfile::tempdir().unwrap();
    let c = Consortium::new(cfg, &mut Quiet).unwrap();
    let mut ledger = c
        .open_ledger(&dir.path().join("ledger"), &mut |_, _| {})
        .unwrap();
    let mut hospitals = c.hospitals().unwrap();
    let job = c.bootstrap(&mut ledger, &mut hospitals).unwrap();
    let params = ledger
        .put_payload(&encode_plain(&c.initial_params))
        .unwrap();
    let deadline = ledger.height() + 20;
    let open = ledger.sign(TxKind::OpenRound {
        job,
        round: 0,
        params_hash: params,
        deadline,
    });
    ledger.block_all(vec![open]).unwrap();
    (dir, c, ledger, hospitals, job, deadline)
}

fn open_round() -> Open {
    let (dir, c, mut ledger, mut hospitals, job, _) = round_zero_open(&small());
    let mut subs = Vec::new();
    for h in hospitals.iter_mut().take(3) {
        let u = h.train(&c.initial_params, 1, c.ciphertexts()).unwrap();
        subs.push(h.submission(job, 0, &u).unwrap());
    }
    for s in &subs {
        ledger.put_payload(&s.payload).unwrap();
    }
    ledger
        .block_all(subs.iter().map(|s| s.tx.clone()).collect())
        .unwrap();
    Open {
        c,
        ledger,
        hospitals,
        job,
        subs,
        _dir: dir,
    }
}

/// Empty blocks until round 0 takes no more submissions (its deadline passed): only then may
/// its decryption shares go on chain.
fn close_submissions(o: &mut Open) {
    let closed = |o: &Open| {
        let st = o.ledger.chain().state();
        st.jobs[&o.job].submissions_closed(0, st.height + 1)
    };
    while !closed(o) {
        o.ledger.block_all(Vec::new()).unwrap();
    }
}

fn deposit(o: &Open, who: &Address) -> u64 {
    o.ledger.chain().state().jobs[&o.job].members[who]
}

/// A6: the aggregator slashes a hospital whose submission and share are valid. The evidence
/// (the payloads on chain) does not prove the offence, so the penalty is left out of the block
/// and the deposit stays; a penalty whose evidence holds goes in and the audit re-verifies it.
#[test]
fn a06_penalty_without_evidence_is_refused() {
    let mut o = open_round();
    let victim = o.subs[0].tx.sender();
    let before = deposit(&o, &victim);
    let bogus = o.ledger.sign(TxKind::Penalty {
        job: o.job,
        offender: victim,
        offence: Offence::InvalidPayload {
            job: o.job,
            round: 0,
            digest: Hash::sha256(&o.subs[0].payload),
        },
    });
    let dropped = o.ledger.block(vec![bogus]).unwrap();
    assert_eq!(dropped.len(), 1);
    assert!(
        dropped[0].reason.contains("does not prove the offence"),
        "{}",
        dropped[0].reason
    );
    assert_eq!(deposit(&o, &victim), before, "no evidence, no slash");

    // hospital 3 resubmits hospital 0's payload as its own: invalid for it (the knowledge
    // proof is hospital 0's), so its InvalidPayload penalty holds
    let copier = o.hospitals[3].address();
    let copy = {
        let h = &mut o.hospitals[3];
        let payload = o.subs[0].payload.clone();
        let tx = h.sign(TxKind::Submit {
            job: o.job,
            round: 0,
            payload: Hash::sha256(&payload),
            samples: 10,
            payload_bytes: payload.len() as u64,
        });
        SubmissionMsg { tx, payload }
    };
    o.ledger.block_all(vec![copy.tx.clone()]).unwrap();
    let before = deposit(&o, &copier);
    let fair = o.ledger.sign(TxKind::Penalty {
        job: o.job,
        offender: copier,
        offence: Offence::InvalidPayload {
            job: o.job,
            round: 0,
            digest: Hash::sha256(&copy.payload),
        },
    });
    o.ledger.block_all(vec![fair]).unwrap();
    assert_eq!(
        deposit(&o, &copier),
        before / 2,
        "half the deposit forfeited"
    );

    // a valid decryption share, then a penalty claiming it is invalid
    let valid: Vec<SubmissionMsg> = o.subs.clone();
    let share = o.hospitals[1].decryption_share(o.job, 0, &valid).unwrap();
    o.ledger.put_payload(&share.payload).unwrap();
    o.ledger.block_all(vec![share.tx.clone()]).unwrap();
    let holder = share.tx.sender();
    let bogus = o.ledger.sign(TxKind::Penalty {
        job: o.job,
        offender: holder,
        offence: Offence::InvalidShare {
            job: o.job,
            round: 0,
            digest: Hash::sha256(&share.payload),
        },
    });
    let dropped = o.ledger.block(vec![bogus]).unwrap();
    assert_eq!(dropped.len(), 1, "a valid share cannot be slashed");

    let report = verify_chain_full(
        o.ledger.chain().store(),
        &o.c.genesis,
        Some(&fedchain_coordinator::FedchainVerifier),
        Some(&fedchain_validator::SimplexFinality::new()),
    )
    .unwrap();
    assert_eq!(report.penalties_verified, 1);
}

/// A6: the coordinator closes round 0 and opens it again: the hospital never signs a second
/// submission for it (its marks only move forward).
#[test]
fn a06_reopened_round_is_never_signed_twice() {
    let c = Consortium::new(&small(), &mut Quiet).unwrap();
    let mut w = WorkerService::new(c.hospital(2).unwrap(), 0, c.cfg.seed, 2);
    let open = CoordinatorMsg::RoundOpen(RoundOpen {
        job: 0,
        round: 0,
        params: c.initial_params.clone(),
        deadline: 10,
    });
    assert!(matches!(
        w.on_message(open.clone()).unwrap().as_slice(),
        [WorkerMsg::Submit(_)]
    ));
    w.on_message(CoordinatorMsg::RoundResult(RoundSummary {
        job: 0,
        round: 0,
        committed: false,
        accepted: Vec::new(),
        missing: Vec::new(),
        share_providers: Vec::new(),
        new_params_hash: None,
        height: 9,
    }))
    .unwrap();
    assert!(matches!(
        w.on_message(open),
        Err(WorkerError::AlreadySubmitted {
            round: 0,
            last: 0,
            ..
        })
    ));
}

/// A9: one hospital enrolls with a deposit above its allocation, another with nonce 0. The
/// dry-run names exactly those two (the others' refusals only follow from theirs); once they
/// enroll again correctly, the bootstrap block is written.
#[test]
fn a09_bad_enrollment_is_refused_alone() {
    use fedchain_ledger::{Role, SignedTx, Transaction};
    let dir = tempfile::tempdir().unwrap();
    let c = Consortium::new(&small(), &mut Quiet).unwrap();
    let mut ledger = c
        .open_ledger(&dir.path().join("ledger"), &mut |_, _| {})
        .unwrap();
    let enroll = |i: usize, register_nonce: u64, deposit: u64| -> (SignedTx, SignedTx) {
        let k = &c.hospital_keys[i];
        let signed = |nonce, kind| {
            Transaction {
                chain_id: c.genesis.chain_id.clone(),
                sender: k.verifying_key(),
                nonce,
                kind,
            }
            .sign(k)
        };
        (
            signed(
                register_nonce,
                TxKind::Register {
                    role: Role::Hospital,
                    pseudonym: format!("hospital-{i}"),
                },
            ),
            signed(
                register_nonce + 1,
                TxKind::Join {
                    job: 0,
                    deposit,
                    samples: c.parts[i].len() as u64,
                },
            ),
        )
    };
    let mut enrolled: Vec<_> = (0..4).map(|i| enroll(i, 1, 2_000)).collect();
    enrolled[1] = enroll(1, 1, 20_000); // the allocation is 10,000
    enrolled[2] = enroll(2, 0, 2_000); // nonce 0
    let rejects = c.enrollment_rejects(&ledger, &enrolled).unwrap();
    let who: Vec<usize> = rejects.iter().map(|(i, _)| *i).collect();
    assert_eq!(who, vec![1, 2], "{rejects:?}");
    assert!(
        rejects[0].1.contains("20000") || rejects[0].1.contains("balance"),
        "{}",
        rejects[0].1
    );
    // nothing was written
    assert_eq!(ledger.height(), 0);
    enrolled[1] = enroll(1, 1, 2_000);
    enrolled[2] = enroll(2, 1, 2_000);
    assert!(c.enrollment_rejects(&ledger, &enrolled).unwrap().is_empty());
    let job = c.bootstrap_enrolled(&mut ledger, &enrolled).unwrap();
    assert_eq!(ledger.chain().state().jobs[&job].members.len(), 4);
}

fn result(round: u32, committed: bool, new_params_hash: Option<Hash>) -> CoordinatorMsg {
    CoordinatorMsg::RoundResult(RoundSummary {
        job: 0,
        round,
        committed,
        accepted: Vec::new(),
        missing: Vec::new(),
        share_providers: Vec::new(),
        new_params_hash,
        height: 9,
    })
}

fn opened(round: u32, params: Vec<f32>) -> CoordinatorMsg {
    CoordinatorMsg::RoundOpen(RoundOpen {
        job: 0,
        round,
        params,
        deadline: 100,
    })
}

/// A11: trap parameters (not the ones the round must start from) are refused, before and
/// after a committed round; the right ones are trained on.
#[test]
fn a11_trap_parameters_are_refused() {
    let c = Consortium::new(&small(), &mut Quiet).unwrap();
    let mut w = WorkerService::new(c.hospital(0).unwrap(), 0, c.cfg.seed, 0);
    let mut trap = c.initial_params.clone();
    trap[0] += 1.0;
    assert!(matches!(
        w.on_message(opened(0, trap.clone())),
        Err(WorkerError::TrapParams { round: 0, .. })
    ));
    assert!(matches!(
        w.on_message(opened(0, c.initial_params.clone()))
            .unwrap()
            .as_slice(),
        [WorkerMsg::Submit(_)]
    ));
    // round 0 commits theta_1 (here: any vector the chain says it is)
    let theta1: Vec<f32> = c.initial_params.iter().map(|x| x + 0.5).collect();
    let h1 = Hash::sha256(&encode_plain(&theta1));
    w.on_message(result(0, true, Some(h1))).unwrap();
    assert!(matches!(
        w.on_message(opened(1, c.initial_params.clone())),
        Err(WorkerError::TrapParams { round: 1, .. })
    ));
    assert!(matches!(
        w.on_message(opened(1, theta1)).unwrap().as_slice(),
        [WorkerMsg::Submit(_)]
    ));
}

/// A11: a nonce of u64::MAX, a round of u32::MAX, a result for a round never seen: refused
/// with typed errors, nothing signed, nothing scanned.
#[test]
fn a11_out_of_range_nonce_and_round_are_refused() {
    let c = Consortium::new(&small(), &mut Quiet).unwrap();
    let mut w = WorkerService::new(c.hospital(1).unwrap(), 0, c.cfg.seed, 1);
    assert!(matches!(
        w.on_message(CoordinatorMsg::Welcome {
            job: 0,
            nonce: u64::MAX,
            submitted: None,
            shared: None,
        }),
        Err(WorkerError::OutOfRange {
            what: "Welcome nonce",
            ..
        })
    ));
    assert!(matches!(
        w.on_message(opened(u32::MAX, c.initial_params.clone())),
        Err(WorkerError::OutOfRange { what: "round", .. })
    ));
    assert!(matches!(
        w.on_message(result(u32::MAX, true, None)),
        Err(WorkerError::UnknownRound { round: u32::MAX })
    ));
    assert_eq!(w.hospital().nonce(), 0, "nothing was signed");
}

/// Issue #19: the chain accepts a commit with more than t share providers, and so must the
/// audit: every listed share's proof is verified and the canonical t (lowest holder indices)
/// are combined. Commits with t + 1 and t + 2 providers audit clean.
#[test]
fn commits_with_t_plus_one_and_t_plus_two_share_providers_audit_clean() {
    use fedchain_coordinator::strategy::Strategy;
    use fedchain_coordinator::{Action, Event, RoundEngine};
    for extra in [1usize, 2] {
        let cfg = SimulateConfig {
            hospitals: 5,
            threshold: 3,
            ..small()
        };
        let (_dir, c, mut ledger, mut hospitals, job, deadline) = round_zero_open(&cfg);
        let declared = ledger.chain().state().jobs[&job].samples.clone();
        let mut engine = RoundEngine::new(c.engine_config(job, declared));
        engine.open(0, deadline);
        engine.handle(Event::Height(ledger.height()));
        let mut subs = Vec::new();
        for h in hospitals.iter_mut() {
            let u = h.train(&c.initial_params, 3, c.ciphertexts()).unwrap();
            subs.push(h.submission(job, 0, &u).unwrap());
        }
        let mut inputs = Vec::new();
        for s in &subs {
            ledger.put_payload(&s.payload).unwrap();
            for a in engine.handle(Event::Submission(s.clone())) {
                if let Action::RequestShares { inputs: i, .. } = a {
                    inputs = i;
                }
            }
        }
        ledger
            .block_all(subs.iter().map(|s| s.tx.clone()).collect())
            .unwrap();
        // t + extra holders share; the engine completes at the t-th
        let mut result = None;
        let mut providers = Vec::new();
        let mut share_txs = Vec::new();
        for h in hospitals.iter_mut().take(3 + extra) {
            let m = h.decryption_share(job, 0, &inputs).unwrap();
            ledger.put_payload(&m.payload).unwrap();
            providers.push(m.tx.sender());
            share_txs.push(m.tx.clone());
            for a in engine.handle(Event::Share(m)) {
                if let Action::Complete(r) = a {
                    result = Some(r);
                }
            }
        }
        ledger.block_all(share_txs).unwrap();
        let r = result.expect("the round completes at t shares");
        let theta = cfg.server.apply(&c.initial_params, &r.average);
        let next = ledger.put_payload(&encode_plain(&theta)).unwrap();
        let commit = ledger.sign(TxKind::CommitRound {
            job,
            round: 0,
            aggregate: r.aggregate,
            new_params_hash: next,
            accepted: r.accepted.clone(),
            share_providers: providers.clone(),
        });
        ledger.block_all(vec![commit]).unwrap();
        let report = verify_chain_full(
            ledger.chain().store(),
            &c.genesis,
            Some(&fedchain_coordinator::FedchainVerifier),
            Some(&fedchain_validator::SimplexFinality::new()),
        )
        .unwrap();
        assert_eq!(report.rounds_verified, 1, "t + {extra}");
        assert_eq!(providers.len(), 3 + extra);
    }
}

/// A5 (rules): an aggregator cannot open a blame step on a round whose aggregate unpacks (the
/// verifier decrypts with the shares on chain and refutes the `VoidUnpackable`), and a range
/// proof outside a blame step is refused by the chain rules.
#[test]
fn a05_blame_step_only_for_an_aggregate_that_does_not_unpack() {
    let mut o = open_round();
    // a share while the round still takes submissions is refused by the chain rules
    let early = o.hospitals[3]
        .decryption_share(o.job, 0, &o.subs.clone())
        .unwrap();
    o.ledger.put_payload(&early.payload).unwrap();
    let dropped = o.ledger.block(vec![early.tx]).unwrap();
    assert_eq!(dropped.len(), 1);
    assert!(
        dropped[0].reason.contains("still takes submissions"),
        "{}",
        dropped[0].reason
    );
    close_submissions(&mut o);
    let valid: Vec<SubmissionMsg> = o.subs.clone();
    let mut shares = Vec::new();
    for h in o.hospitals.iter_mut().take(3) {
        let s = h.decryption_share(o.job, 0, &valid).unwrap();
        o.ledger.put_payload(&s.payload).unwrap();
        shares.push(s.tx);
    }
    o.ledger.block_all(shares).unwrap();
    let forged = o.ledger.sign(TxKind::VoidUnpackable {
        job: o.job,
        round: 0,
        plaintext: 0,
    });
    let dropped = o.ledger.block(vec![forged]).unwrap();
    assert_eq!(dropped.len(), 1, "a packable aggregate cannot be blamed");
    assert!(
        dropped[0].reason.contains("unpacks"),
        "{}",
        dropped[0].reason
    );
    assert!(o.ledger.chain().state().jobs[&o.job]
        .open
        .as_ref()
        .unwrap()
        .blame
        .is_none());
    // an honest hospital's range proof of its own submission is valid, but there is no blame
    // step to put it in
    let proof = o.hospitals[0].range_proof(o.job, 0, 0).unwrap();
    o.ledger.put_payload(&proof.payload).unwrap();
    let dropped = o.ledger.block(vec![proof.tx]).unwrap();
    assert_eq!(dropped.len(), 1);
    assert!(
        dropped[0].reason.contains("no blame step"),
        "{}",
        dropped[0].reason
    );
    // a hospital without the witness of that submission cannot prove it
    assert!(matches!(
        o.hospitals[3].range_proof(o.job, 0, 0),
        Err(WorkerError::NoWitness { .. })
    ));
}
