//! Confidentiality attacks of THREAT-MODEL.md (A1-A4, A14) performed against the real
//! hospital service, round engine and simulation: a malicious aggregator asks holders to
//! decrypt what is not a round's aggregate, a colluder resubmits a victim's ciphertexts, and
//! anyone with the config tries to recompute secrets. Each is refused with a typed reason.

use fedchain_coordinator::engine::RejectReason;
use fedchain_coordinator::simulate::run_one;
use fedchain_coordinator::{Action, Consortium, Event, Quiet, RoundEngine, SimulateConfig};
use fedchain_crypto::identity::SigningKey;
use fedchain_crypto::{CiphertextVector, Integer, ProvenVector};
use fedchain_ledger::{Address, Hash, JobId, Transaction, TxKind};
use fedchain_worker::{
    CoordinatorMsg, Marks, Protection, RoundOpen, RoundSummary, ShareRefusal, ShareRequest,
    SubmissionMsg, WorkerError, WorkerMsg, WorkerService,
};

use crate::integrity::small;

const JOB: JobId = 0;

/// A consortium, one service per hospital, and every hospital's round-0 submission as it
/// signed it (each service answered a real `RoundOpen`).
struct Round {
    c: Consortium,
    workers: Vec<WorkerService>,
    subs: Vec<SubmissionMsg>,
}

fn round0() -> Round {
    let c = Consortium::new(&small(), &mut Quiet).unwrap();
    let mut workers: Vec<WorkerService> = (0..4)
        .map(|i| WorkerService::new(c.hospital(i).unwrap(), JOB, c.cfg.seed, i))
        .collect();
    let open = CoordinatorMsg::RoundOpen(RoundOpen {
        job: JOB,
        round: 0,
        params: c.initial_params.clone(),
        deadline: 10,
    });
    let subs = workers
        .iter_mut()
        .map(|w| match w.on_message(open.clone()).unwrap().as_slice() {
            [WorkerMsg::Submit(m)] => m.clone(),
            other => panic!("no submission: {other:?}"),
        })
        .collect();
    Round { c, workers, subs }
}

fn request(round: u32, submissions: Vec<SubmissionMsg>) -> CoordinatorMsg {
    CoordinatorMsg::ShareRequest(ShareRequest {
        job: JOB,
        round,
        submissions,
    })
}

/// The holder's refusal of `msg`, or a panic if it produced anything.
fn refusal(w: &mut WorkerService, msg: CoordinatorMsg) -> ShareRefusal {
    match w.on_message(msg) {
        Err(WorkerError::ShareRefused(r)) => r,
        other => panic!("the holder did not refuse: {other:?}"),
    }
}

fn shares(w: &mut WorkerService, msg: CoordinatorMsg) -> bool {
    matches!(w.on_message(msg).unwrap().as_slice(), [WorkerMsg::Share(_)])
}

/// A submission signed by `key` for round `round`, carrying `payload`.
fn signed(c: &Consortium, key: &SigningKey, round: u32, payload: Vec<u8>) -> SubmissionMsg {
    let tx = Transaction {
        chain_id: c.genesis.chain_id.clone(),
        sender: key.verifying_key(),
        nonce: 1_000,
        kind: TxKind::Submit {
            job: JOB,
            round,
            payload: Hash::sha256(&payload),
            samples: 10,
            payload_bytes: payload.len() as u64,
        },
    }
    .sign(key);
    SubmissionMsg { tx, payload }
}

/// An encryption of zero in the job's format, made by someone who is not a member (the
/// aggregator): the `[c_victim, Enc(0)]` attack's second input.
fn enc_zero_like(c: &Consortium, victim: &SubmissionMsg) -> Vec<u8> {
    let Protection::Encrypted(e) = &c.protection else {
        panic!("encrypted job")
    };
    let pk = e.key.public_key();
    let v = ProvenVector::from_bytes(pk, &victim.payload).unwrap();
    let mut rng = rand::rngs::OsRng;
    let zeros = (0..v.ciphertexts.len())
        .map(|_| pk.encrypt(&Integer::new(), &mut rng).unwrap())
        .collect();
    ProvenVector {
        ciphertexts: CiphertextVector(zeros),
        proof: v.proof,
    }
    .to_bytes(pk)
}

#[test]
fn a01_victim_with_encryption_of_zero_is_refused() {
    let Round {
        c,
        mut workers,
        subs,
    } = round0();
    let victim = subs[0].clone();
    let zero = enc_zero_like(&c, &victim);
    let holder = &mut workers[3];
    // [c_victim, Enc(0)]: fewer than the job's minimum
    assert_eq!(
        refusal(holder, request(0, vec![victim.clone(), subs[3].clone()])),
        ShareRefusal::TooFew { got: 2, min: 3 }
    );
    // padded to three with Enc(0) signed by the aggregator (not a member)
    let by_aggregator = signed(&c, &c.aggregator, 0, zero.clone());
    assert!(matches!(
        refusal(
            holder,
            request(0, vec![victim.clone(), subs[3].clone(), by_aggregator])
        ),
        ShareRefusal::NotMember { index: 2, .. }
    ));
    // Enc(0) slipped under a member's signed transaction
    let mut swapped = subs[1].clone();
    swapped.payload = zero;
    assert_eq!(
        refusal(
            holder,
            request(0, vec![victim.clone(), swapped, subs[3].clone()])
        ),
        ShareRefusal::PayloadMismatch { index: 1 }
    );
    // a member's transaction re-signed... by the aggregator claiming to be the member: the
    // signature does not verify
    let mut forged = subs[1].clone();
    forged.tx.tx.nonce += 1;
    assert_eq!(
        refusal(holder, request(0, vec![victim, forged, subs[3].clone()])),
        ShareRefusal::BadSignature { index: 1 }
    );
    // nothing was decrypted: the honest request still gets the holder's one share
    assert!(shares(holder, request(0, subs)));
}

#[test]
fn a01_fewer_than_the_minimum_or_duplicates_are_refused() {
    let Round {
        mut workers, subs, ..
    } = round0();
    let holder = &mut workers[3];
    assert_eq!(
        refusal(holder, request(0, vec![subs[0].clone(), subs[3].clone()])),
        ShareRefusal::TooFew { got: 2, min: 3 }
    );
    let victim = subs[0].clone();
    assert!(matches!(
        refusal(
            holder,
            request(0, vec![victim.clone(), victim, subs[3].clone()])
        ),
        ShareRefusal::DuplicateSender { .. }
    ));
    assert!(shares(holder, request(0, subs)));
}

#[test]
fn a01_inputs_of_another_round_or_a_fresh_round_number_are_refused() {
    let Round {
        mut workers, subs, ..
    } = round0();
    let holder = &mut workers[2];
    // a round number beyond any real job is refused before anything is read
    assert!(matches!(
        holder.on_message(request(u32::MAX, subs.clone())),
        Err(WorkerError::OutOfRange { what: "round", .. })
    ));
    for round in [1, 7, fedchain_worker::MAX_ROUND] {
        assert_eq!(
            refusal(holder, request(round, subs.clone())),
            ShareRefusal::WrongStatement {
                index: 0,
                job: JOB,
                round
            }
        );
    }
    assert!(shares(holder, request(0, subs)));
}

#[test]
fn a01_the_holder_own_submission_must_be_in_the_product() {
    let Round {
        mut workers, subs, ..
    } = round0();
    // holder 3 submitted; the aggregator leaves it out to isolate the others
    assert_eq!(
        refusal(&mut workers[3], request(0, subs[..3].to_vec())),
        ShareRefusal::OwnSubmissionMissing
    );
}

#[test]
fn a01_same_round_again_is_refused_after_a_result_and_across_a_restart() {
    let Round {
        c,
        mut workers,
        subs,
    } = round0();
    let holder = &mut workers[1];
    assert!(shares(holder, request(0, subs.clone())));
    // the coordinator closes the round (clearing the worker's resend cache) and asks again,
    // for a different product of the same round
    holder
        .on_message(CoordinatorMsg::RoundResult(RoundSummary {
            job: JOB,
            round: 0,
            committed: true,
            accepted: Vec::new(),
            missing: Vec::new(),
            share_providers: Vec::new(),
            new_params_hash: None,
            height: 9,
        }))
        .unwrap();
    let subset = vec![subs[0].clone(), subs[1].clone(), subs[2].clone()];
    assert_eq!(
        refusal(holder, request(0, subset.clone())),
        ShareRefusal::AlreadyShared {
            job: JOB,
            round: 0,
            last: 0
        }
    );
    // the holder restarts from its stored marks (bincode, as the worker process keeps them)
    let stored = bincode::serialize(holder.hospital().marks()).unwrap();
    let marks: Marks = bincode::deserialize(&stored).unwrap();
    let mut restarted =
        WorkerService::new(c.restarted_hospital(1, marks).unwrap(), JOB, c.cfg.seed, 1);
    assert_eq!(
        refusal(&mut restarted, request(0, subset)),
        ShareRefusal::AlreadyShared {
            job: JOB,
            round: 0,
            last: 0
        }
    );
    // and it never signs a second submission for round 0 either
    let open = CoordinatorMsg::RoundOpen(RoundOpen {
        job: JOB,
        round: 0,
        params: c.initial_params.clone(),
        deadline: 10,
    });
    assert!(matches!(
        restarted.on_message(open),
        Err(WorkerError::AlreadySubmitted {
            round: 0,
            last: 0,
            ..
        })
    ));
}

/// A2 at the holders: a colluding member re-signs the victim's payload (as is, or with the
/// ciphertexts re-randomised) as its own submission. The proof of plaintext knowledge is bound
/// to the victim, so no holder decrypts a product containing it.
#[test]
fn a02_holders_refuse_a_resubmitted_copy() {
    let Round {
        c,
        mut workers,
        subs,
    } = round0();
    let colluder_key = &c.hospital_keys[1];
    let colluder = Address::of(&colluder_key.verifying_key());
    let copy = signed(&c, colluder_key, 0, subs[0].payload.clone());
    let holder = &mut workers[3];
    assert_eq!(
        refusal(
            holder,
            request(
                0,
                vec![subs[0].clone(), copy, subs[2].clone(), subs[3].clone()]
            )
        ),
        ShareRefusal::NoKnowledgeProof { sender: colluder }
    );
    let rerandomised = signed(&c, colluder_key, 0, rerandomise(&c, &subs[0].payload));
    assert_eq!(
        refusal(
            holder,
            request(
                0,
                vec![
                    subs[0].clone(),
                    rerandomised,
                    subs[2].clone(),
                    subs[3].clone()
                ]
            )
        ),
        ShareRefusal::NoKnowledgeProof { sender: colluder }
    );
}

fn rerandomise(c: &Consortium, payload: &[u8]) -> Vec<u8> {
    let Protection::Encrypted(e) = &c.protection else {
        panic!("encrypted job")
    };
    let pk = e.key.public_key();
    let v = ProvenVector::from_bytes(pk, payload).unwrap();
    let mut rng = rand::rngs::OsRng;
    ProvenVector {
        ciphertexts: CiphertextVector(
            v.ciphertexts
                .0
                .iter()
                .map(|x| pk.rerandomize(x, &mut rng))
                .collect(),
        ),
        proof: v.proof,
    }
    .to_bytes(pk)
}

/// A2 at the aggregator: the round engine rejects the copy and penalizes the colluder with the
/// stored payload as evidence, and the victim's submission counts once.
#[test]
fn a02_the_engine_rejects_and_penalizes_a_resubmitted_copy() {
    let Round { c, subs, .. } = round0();
    let mut engine = RoundEngine::new(c.engine_config(JOB, c.partition_samples()));
    engine.open(0, 10);
    engine.handle(Event::Height(1));
    assert!(engine
        .handle(Event::Submission(subs[0].clone()))
        .iter()
        .all(|a| !matches!(a, Action::Reject { .. })));
    let colluder_key = &c.hospital_keys[1];
    for payload in [subs[0].payload.clone(), rerandomise(&c, &subs[0].payload)] {
        let mut e2 = RoundEngine::new(c.engine_config(JOB, c.partition_samples()));
        e2.open(0, 10);
        e2.handle(Event::Height(1));
        let copy = signed(&c, colluder_key, 0, payload);
        let actions = e2.handle(Event::Submission(copy));
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Penalize { offender, .. } if *offender == Address::of(&colluder_key.verifying_key()))));
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Reject {
                reason: RejectReason::InvalidPayload(why),
                ..
            } if why.contains("proof of plaintext knowledge")
        )));
        assert!(e2.counted().is_empty());
    }
}

/// A3: the config (seed included) determines the model, never a secret. Two runs with the same
/// seed give the same parameters bit for bit, with other keys and other ciphertexts.
#[test]
fn a03_same_seed_gives_same_model_and_fresh_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimulateConfig {
        hospitals: 3,
        threshold: 2,
        rounds: 2,
        ..small()
    };
    let a = run_one(&cfg, &dir.path().join("a"), &mut Quiet).unwrap();
    let b = run_one(&cfg, &dir.path().join("b"), &mut Quiet).unwrap();
    assert!(a.audit.starts_with("ok"), "{}", a.audit);
    assert_eq!(a.final_params, b.final_params, "the seed fixes the model");
    // every submission payload differs between the runs (fresh keys and randomness)
    let payloads = |dir: &std::path::Path| -> Vec<Hash> {
        use fedchain_ledger::types::{decode, Certificate};
        use fedchain_ledger::{SignedTx, Store};
        let store = fedchain_ledger::RocksStore::open(dir).unwrap();
        let mut out = Vec::new();
        let mut h = 1;
        while let Some(body) = store.body(h).unwrap() {
            let (txs, _): (Vec<SignedTx>, Option<Certificate>) = decode("body", &body).unwrap();
            for t in &txs {
                if let TxKind::Submit { payload, .. } = t.tx.kind {
                    out.push(payload);
                }
            }
            h += 1;
        }
        out
    };
    let (pa, pb) = (payloads(&a.ledger), payloads(&b.ledger));
    assert_eq!(pa.len(), 6);
    assert!(pa.iter().all(|d| !pb.contains(d)));
    // and the keys differ: two consortia of one config share no key
    let c1 = Consortium::new(&cfg, &mut Quiet).unwrap();
    let c2 = Consortium::new(&cfg, &mut Quiet).unwrap();
    assert_ne!(c1.genesis.validators, c2.genesis.validators);
    assert_ne!(c1.members, c2.members);
    let (Protection::Encrypted(k1), Protection::Encrypted(k2)) = (&c1.protection, &c2.protection)
    else {
        panic!("encrypted")
    };
    assert_ne!(k1.key.public_key().n(), k2.key.public_key().n());
}

/// A4: a restarted hospital (same key, same share, same training seed) never repeats a
/// randomizer or a proof nonce: the same update encrypts to other ciphertexts with another
/// proof, and the same product gets a decryption share with another proof.
#[test]
fn a04_restarted_hospital_never_repeats_randomizers_or_nonces() {
    let Round { c, subs, .. } = round0();
    let mut before = c.hospital(0).unwrap();
    let mut after = c.hospital(0).unwrap(); // the same hospital after a restart
    let u1 = before
        .train(&c.initial_params, 42, c.ciphertexts())
        .unwrap();
    let u2 = after.train(&c.initial_params, 42, c.ciphertexts()).unwrap();
    assert_eq!(u1, u2, "training is reproducible");
    let Protection::Encrypted(e) = &c.protection else {
        panic!("encrypted")
    };
    let pk = e.key.public_key();
    let p1 = ProvenVector::from_bytes(pk, &before.protect(JOB, 0, &u1).unwrap()).unwrap();
    let p2 = ProvenVector::from_bytes(pk, &after.protect(JOB, 0, &u2).unwrap()).unwrap();
    assert!(p1
        .ciphertexts
        .0
        .iter()
        .all(|x| !p2.ciphertexts.0.contains(x)));
    assert_ne!(p1.proof.e, p2.proof.e);
    // decryption shares of one product: same values, other proof nonces
    let s1 = before.decryption_share(JOB, 0, &subs).unwrap();
    let s2 = after.decryption_share(JOB, 0, &subs).unwrap();
    let d1 = fedchain_crypto::VectorDecryptionShare::from_bytes(pk, &s1.payload).unwrap();
    let d2 = fedchain_crypto::VectorDecryptionShare::from_bytes(pk, &s2.payload).unwrap();
    assert_eq!(d1.values, d2.values);
    assert_ne!(d1.proof.z, d2.proof.z);
}

/// A14: a configuration below the floor of 3 participants is refused before any work.
#[test]
fn a14_a_job_minimum_below_three_is_refused() {
    // two hospitals cannot reach the floor at all: the hospital count is what is refused
    for (hospitals, threshold, min, field) in [
        (2usize, 2u32, None, "hospitals"),
        (5, 2, Some(2), "min_participants"),
        (5, 4, Some(3), "min_participants"),
    ] {
        let cfg = SimulateConfig {
            hospitals,
            threshold,
            min_participants: min,
            ..small()
        };
        let err = cfg.validate().unwrap_err();
        assert_eq!(err.field, field, "{hospitals} {threshold} {min:?}");
    }
    assert_eq!(small().min_participants(), 3);
}
