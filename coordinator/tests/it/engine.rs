//! The round engine on its own: every rejection path, closing and voiding, in plaintext mode
//! (the encrypted paths run in the simulation tests).

use fedchain_coordinator::engine::RejectReason;
use fedchain_coordinator::{Action, EngineConfig, Event, RoundEngine};
use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::{Address, Hash, SignedTx, Transaction, TxKind};
use fedchain_worker::{encode_plain, Protection, ShareMsg, SubmissionMsg};

fn key(i: u8) -> SigningKey {
    SigningKey::from_seed(&[i; 32])
}

fn engine(members: usize, min: u32) -> RoundEngine {
    engine_declaring(members, min, &vec![100; members])
}

/// An engine whose member i declared `declared[i]` samples at join (job maximum 100).
fn engine_declaring(members: usize, min: u32, declared: &[u64]) -> RoundEngine {
    let committee: Vec<Address> = (0..members)
        .map(|i| Address::of(&key(i as u8).verifying_key()))
        .collect();
    let mut e = RoundEngine::new(EngineConfig {
        chain_id: "t".into(),
        job: 0,
        protection: Protection::Plaintext,
        num_params: 3,
        declared: committee
            .iter()
            .copied()
            .zip(declared.iter().copied())
            .collect(),
        committee,
        min_participants: min,
        max_samples: 100,
    });
    e.open(0, 10);
    e.handle(Event::Height(5));
    e
}

fn sign(k: &SigningKey, nonce: u64, kind: TxKind) -> SignedTx {
    Transaction {
        chain_id: "t".into(),
        sender: k.verifying_key(),
        nonce,
        kind,
    }
    .sign(k)
}

fn submission(k: &SigningKey, nonce: u64, update: &[f32], samples: u64) -> SubmissionMsg {
    let payload = encode_plain(update);
    let tx = sign(
        k,
        nonce,
        TxKind::Submit {
            job: 0,
            round: 0,
            payload: Hash::sha256(&payload),
            samples,
            payload_bytes: payload.len() as u64,
        },
    );
    SubmissionMsg { tx, payload }
}

fn rejection(actions: &[Action]) -> Option<RejectReason> {
    actions.iter().find_map(|a| match a {
        Action::Reject { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

#[test]
fn every_bad_message_is_rejected_with_its_reason() {
    let mut e = engine(3, 2);
    let k0 = key(0);
    // wrong job, wrong round, wrong kind
    let mut m = submission(&k0, 1, &[1.0, 2.0, 3.0], 10);
    m.tx = sign(
        &k0,
        1,
        TxKind::Submit {
            job: 9,
            round: 0,
            payload: Hash::sha256(&m.payload),
            samples: 10,
            payload_bytes: 12,
        },
    );
    assert_eq!(
        rejection(&e.handle(Event::Submission(m))),
        Some(RejectReason::WrongJob {
            expected: 0,
            got: 9
        })
    );
    let mut m = submission(&k0, 1, &[1.0, 2.0, 3.0], 10);
    m.tx = sign(
        &k0,
        1,
        TxKind::Submit {
            job: 0,
            round: 4,
            payload: Hash::sha256(&m.payload),
            samples: 10,
            payload_bytes: 12,
        },
    );
    assert_eq!(
        rejection(&e.handle(Event::Submission(m))),
        Some(RejectReason::WrongRound {
            expected: Some(0),
            got: 4
        })
    );
    let transfer = SubmissionMsg {
        tx: sign(
            &k0,
            1,
            TxKind::Transfer {
                to: Address([0; 20]),
                amount: 1,
            },
        ),
        payload: vec![],
    };
    assert_eq!(
        rejection(&e.handle(Event::Submission(transfer))),
        Some(RejectReason::WrongKind)
    );
    // forged signature, outsider
    let mut forged = submission(&k0, 1, &[1.0, 2.0, 3.0], 10);
    forged.tx.tx.nonce = 77;
    assert_eq!(
        rejection(&e.handle(Event::Submission(forged))),
        Some(RejectReason::BadSignature)
    );
    let outsider = submission(&key(50), 1, &[1.0, 2.0, 3.0], 10);
    assert_eq!(
        rejection(&e.handle(Event::Submission(outsider))),
        Some(RejectReason::NotMember)
    );
    // payload that does not match its transaction, sample counts out of bounds
    let mut swapped = submission(&k0, 1, &[1.0, 2.0, 3.0], 10);
    swapped.payload = encode_plain(&[9.0, 9.0, 9.0]);
    assert!(matches!(
        rejection(&e.handle(Event::Submission(swapped))),
        Some(RejectReason::PayloadMismatch(_))
    ));
    assert_eq!(
        rejection(&e.handle(Event::Submission(submission(&k0, 1, &[1.0, 2.0, 3.0], 0)))),
        Some(RejectReason::Samples { got: 0, max: 100 })
    );
    assert_eq!(
        rejection(&e.handle(Event::Submission(submission(&k0, 1, &[1.0, 2.0, 3.0], 101)))),
        Some(RejectReason::Samples { got: 101, max: 100 })
    );
    // a share while collecting submissions
    let share = ShareMsg {
        tx: sign(
            &k0,
            2,
            TxKind::DecryptionShare {
                job: 0,
                round: 0,
                payload: Hash::sha256(b"s"),
            },
        ),
        payload: b"s".to_vec(),
    };
    assert_eq!(
        rejection(&e.handle(Event::Share(share))),
        Some(RejectReason::NotDecrypting)
    );
    // a good one, then the same again (acknowledged as a duplicate, not counted twice)
    let good = submission(&k0, 1, &[1.0, 2.0, 3.0], 10);
    let a = e.handle(Event::Submission(good.clone()));
    assert!(matches!(a.first(), Some(Action::Include { .. })) && rejection(&a).is_none());
    assert_eq!(
        rejection(&e.handle(Event::Submission(good))),
        Some(RejectReason::Duplicate)
    );
    // a malformed update (wrong length) is included and penalized, not counted
    let bad = submission(&key(1), 1, &[1.0, 2.0], 10);
    let a = e.handle(Event::Submission(bad));
    assert!(a.iter().any(|x| matches!(x, Action::Penalize { .. })));
    assert_eq!(e.counted().len(), 1);
    // the deadline passes with one valid submission, minimum 2: the round is void
    assert!(matches!(
        e.handle(Event::Height(10)).as_slice(),
        [Action::Void { round: 0 }]
    ));
    // and a late submission is refused
    let late = submission(&key(2), 1, &[1.0, 2.0, 3.0], 10);
    assert!(matches!(
        rejection(&e.handle(Event::Submission(late))),
        Some(RejectReason::Late { .. })
    ));
}

#[test]
fn the_round_completes_with_the_weighted_average_when_all_submitted() {
    let mut e = engine(2, 2);
    assert!(e
        .handle(Event::Submission(submission(
            &key(0),
            1,
            &[1.0, 0.0, -1.0],
            10
        )))
        .iter()
        .all(|a| !matches!(a, Action::Complete(_))));
    let a = e.handle(Event::Submission(submission(
        &key(1),
        1,
        &[4.0, 3.0, 2.0],
        30,
    )));
    let Some(Action::Complete(r)) = a.iter().find(|a| matches!(a, Action::Complete(_))) else {
        panic!("not complete: {a:?}")
    };
    assert_eq!(r.total_weight, 40);
    assert_eq!(r.average, vec![3.25, 2.25, 1.25]);
    assert_eq!(r.accepted.len(), 2);
}

/// A15 at the aggregator: a submission claiming more samples than its sender declared at join
/// is rejected (even below the job's maximum), and the average weighs each accepted update by
/// its claimed count, which is within the declaration.
#[test]
fn a15_the_engine_bounds_samples_by_the_declaration() {
    // member 0 declared 20, member 1 declared 100, member 2 declared nothing
    let mut e = engine_declaring(3, 2, &[20]);
    assert_eq!(
        rejection(&e.handle(Event::Submission(submission(&key(0), 1, &[1.0; 3], 21)))),
        Some(RejectReason::Samples { got: 21, max: 20 })
    );
    assert_eq!(
        rejection(&e.handle(Event::Submission(submission(&key(2), 1, &[1.0; 3], 1)))),
        Some(RejectReason::Samples { got: 1, max: 0 })
    );
    assert!(e.counted().is_empty());
    let mut e = engine_declaring(2, 2, &[20, 100]);
    let a = e.handle(Event::Submission(submission(
        &key(0),
        1,
        &[1.0, 0.0, -1.0],
        20,
    )));
    assert!(rejection(&a).is_none());
    let a = e.handle(Event::Submission(submission(
        &key(1),
        1,
        &[4.0, 3.0, 2.0],
        60,
    )));
    let Some(Action::Complete(r)) = a.iter().find(|a| matches!(a, Action::Complete(_))) else {
        panic!("not complete: {a:?}")
    };
    assert_eq!(r.total_weight, 80);
    assert_eq!(r.average, vec![3.25, 2.25, 1.25]);
}
