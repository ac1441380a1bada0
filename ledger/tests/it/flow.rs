//! A whole job on chain: rounds, rewards, penalties and every typed rejection.

use fedchain_ledger::state::{RoundOutcome, State};
use fedchain_ledger::types::{Certificate, Offence};
use fedchain_ledger::{verify_chain, BlockError, Chain, Hash, MemoryStore, TxError, TxKind};

use crate::common::{addr, Net};

fn open(net: &mut Net, chain: &mut Chain<MemoryStore>, round: u32, deadline: u64) {
    let agg = net.aggregator.clone();
    let t = net.tx(
        &agg,
        TxKind::OpenRound {
            job: 0,
            round,
            params_hash: Hash::sha256(&[round as u8]),
            deadline,
        },
    );
    assert!(net.block(chain, vec![t]).is_empty());
}

fn submit(
    net: &mut Net,
    chain: &Chain<MemoryStore>,
    h: usize,
    round: u32,
    body: &[u8],
) -> fedchain_ledger::SignedTx {
    let d = chain.put_payload(body).unwrap();
    let k = net.hospitals[h].clone();
    net.tx(
        &k,
        TxKind::Submit {
            job: 0,
            round,
            payload: d,
            samples: 100 * (h as u64 + 1),
            payload_bytes: body.len() as u64,
        },
    )
}

/// A CommitRound of job 0 round 0 by the aggregator (aggregate and parameters left blank).
fn commit_tx(
    net: &mut Net,
    accepted: Vec<fedchain_ledger::Address>,
    providers: &[fedchain_ledger::Address],
) -> fedchain_ledger::SignedTx {
    let agg = net.aggregator.clone();
    net.tx(
        &agg,
        TxKind::CommitRound {
            job: 0,
            round: 0,
            aggregate: Hash::default(),
            new_params_hash: Hash::default(),
            accepted,
            share_providers: providers.to_vec(),
        },
    )
}

/// Decryption-share transactions of the first `count` hospitals for round 0.
fn share_txs(
    net: &mut Net,
    chain: &Chain<MemoryStore>,
    count: usize,
) -> Vec<fedchain_ledger::SignedTx> {
    (0..count)
        .map(|h| {
            let d = chain.put_payload(format!("shares {h}").as_bytes()).unwrap();
            let k = net.hospitals[h].clone();
            net.tx(
                &k,
                TxKind::DecryptionShare {
                    job: 0,
                    round: 0,
                    payload: d,
                },
            )
        })
        .collect()
}

#[test]
fn a_round_commits_pays_and_audits() {
    let mut net = Net::new(4, 3);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    let supply0 = chain.state().total_tokens();
    open(&mut net, &mut chain, 0, 100);
    let subs: Vec<_> = (0..3)
        .map(|h| submit(&mut net, &chain, h, 0, format!("update {h}").as_bytes()))
        .collect();
    assert!(net.block(&mut chain, subs).is_empty());
    let shares = share_txs(&mut net, &chain, 2);
    assert!(net.block(&mut chain, shares).is_empty());
    let before: Vec<u64> = net
        .hospitals
        .iter()
        .map(|h| chain.state().balance(&addr(h)))
        .collect();
    let agg = net.aggregator.clone();
    let accepted: Vec<_> = net.hospitals.iter().map(addr).collect();
    let commit = net.tx(
        &agg,
        TxKind::CommitRound {
            job: 0,
            round: 0,
            aggregate: Hash::sha256(b"agg"),
            new_params_hash: Hash::sha256(b"theta1"),
            accepted: accepted.clone(),
            share_providers: accepted[..2].to_vec(),
        },
    );
    assert!(net.block(&mut chain, vec![commit]).is_empty());
    let s = chain.state();
    // submit reward 900 split 100:200:300 -> 150, 300, 450; share reward 300 over 2 -> 150 each
    let gained: Vec<u64> = net
        .hospitals
        .iter()
        .zip(&before)
        .map(|(h, b)| s.balance(&addr(h)) - b)
        .collect();
    assert_eq!(gained, vec![300, 450, 450]);
    assert_eq!(s.minted, 1200);
    assert_eq!(s.total_tokens(), supply0 + 1200);
    assert!(s.supply_conserved());
    let job = &s.jobs[&0];
    assert!(job.open.is_none());
    assert!(matches!(
        job.history[0].outcome,
        RoundOutcome::Committed { minted: 1200, .. }
    ));
    let report = verify_chain(chain.store(), &net.genesis).unwrap();
    assert_eq!(report.payloads_checked, 5);
}

#[test]
fn every_bad_submission_gets_its_typed_error() {
    let mut net = Net::new(4, 3);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    let h0 = addr(&net.hospitals[0]);
    // submission before any round is open
    let early = submit(&mut net, &chain, 0, 0, b"early");
    assert_eq!(
        chain.check_tx(&early),
        Err(TxError::RoundNotOpen { job: 0, round: 0 })
    );
    open(&mut net, &mut chain, 0, 8);
    let first = submit(&mut net, &chain, 0, 0, b"u0");
    assert!(net.block(&mut chain, vec![first.clone()]).is_empty());
    // replay of the very same signed transaction
    assert!(matches!(
        chain.check_tx(&first),
        Err(TxError::Replay { .. })
    ));
    // the same update again with a fresh nonce: duplicate; a different one: equivocation
    let dup = submit(&mut net, &chain, 0, 0, b"u0");
    assert_eq!(
        chain.check_tx(&dup),
        Err(TxError::Duplicate {
            job: 0,
            round: 0,
            hospital: h0
        })
    );
    let other = submit(&mut net, &chain, 0, 0, b"u0-bis");
    assert_eq!(
        chain.check_tx(&other),
        Err(TxError::Equivocation {
            job: 0,
            round: 0,
            hospital: h0
        })
    );
    // wrong job and wrong round
    let k1 = net.hospitals[1].clone();
    let d = chain.put_payload(b"u1").unwrap();
    let wrong_job = net.tx(
        &k1,
        TxKind::Submit {
            job: 7,
            round: 0,
            payload: d,
            samples: 1,
            payload_bytes: 2,
        },
    );
    assert_eq!(chain.check_tx(&wrong_job), Err(TxError::UnknownJob(7)));
    let wrong_round = net.tx(
        &k1,
        TxKind::Submit {
            job: 0,
            round: 3,
            payload: d,
            samples: 1,
            payload_bytes: 2,
        },
    );
    assert_eq!(
        chain.check_tx(&wrong_round),
        Err(TxError::RoundNotOpen { job: 0, round: 3 })
    );
    // a payload that is not stored
    let missing = net.tx(
        &k1,
        TxKind::Submit {
            job: 0,
            round: 0,
            payload: Hash::sha256(b"nowhere"),
            samples: 1,
            payload_bytes: 2,
        },
    );
    assert_eq!(
        chain.check_tx(&missing),
        Err(TxError::MissingPayload {
            digest: Hash::sha256(b"nowhere")
        })
    );
    // a non-member: a registered aggregator-role outsider, and an unregistered key
    let outsider = crate::common::key(77);
    let reg = net.tx(
        &outsider,
        TxKind::Register {
            role: fedchain_ledger::Role::Hospital,
            pseudonym: "x".into(),
        },
    );
    assert!(net.block(&mut chain, vec![reg]).is_empty());
    let d2 = chain.put_payload(b"x").unwrap();
    let nonmember = net.tx(
        &outsider,
        TxKind::Submit {
            job: 0,
            round: 0,
            payload: d2,
            samples: 1,
            payload_bytes: 1,
        },
    );
    assert_eq!(
        chain.check_tx(&nonmember),
        Err(TxError::NotMember {
            job: 0,
            hospital: addr(&outsider)
        })
    );
    let stranger = crate::common::key(78);
    let unregistered = net.tx(&stranger, TxKind::Transfer { to: h0, amount: 1 });
    assert_eq!(
        chain.check_tx(&unregistered),
        Err(TxError::UnknownSender(addr(&stranger)))
    );
    // late: move past the deadline (height 8)
    while chain.head().height < 9 {
        net.block(&mut chain, vec![]);
    }
    let late = submit(&mut net, &chain, 2, 0, b"u2");
    assert!(matches!(
        chain.check_tx(&late),
        Err(TxError::Late {
            job: 0,
            round: 0,
            deadline: 8,
            ..
        })
    ));
    // a hospital may not open rounds or commit
    let not_agg = net.tx(&k1, TxKind::VoidRound { job: 0, round: 0 });
    assert_eq!(
        chain.check_tx(&not_agg),
        Err(TxError::NotAggregator { job: 0 })
    );
    // overdraft
    let over = net.tx(
        &k1,
        TxKind::Transfer {
            to: h0,
            amount: 1 << 40,
        },
    );
    assert!(matches!(
        chain.check_tx(&over),
        Err(TxError::InsufficientFunds { .. })
    ));
    // a tampered signature
    let mut forged = submit(&mut net, &chain, 1, 0, b"u1");
    forged.tx.nonce += 1000;
    assert_eq!(chain.check_tx(&forged), Err(TxError::BadSignature));
    // one submission only: the round is void after its deadline, recorded on chain
    let agg = net.aggregator.clone();
    let void = net.tx(&agg, TxKind::VoidRound { job: 0, round: 0 });
    assert!(net.block(&mut chain, vec![void]).is_empty());
    assert_eq!(
        chain.state().jobs[&0].history[0].outcome,
        RoundOutcome::Void
    );
    assert_eq!(chain.state().jobs[&0].next_round, 1);
    verify_chain(chain.store(), &net.genesis).unwrap();
}

#[test]
fn equivocation_missed_deadline_and_bad_payload_are_penalized() {
    let mut net = Net::new(4, 6);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    open(&mut net, &mut chain, 0, 9);
    let a = submit(&mut net, &chain, 0, 0, b"A");
    let b = submit(&mut net, &chain, 0, 0, b"B");
    let s1 = submit(&mut net, &chain, 1, 0, b"ok1");
    let s2 = submit(&mut net, &chain, 2, 0, b"bad ciphertext");
    let s4 = submit(&mut net, &chain, 4, 0, b"ok4");
    let s5 = submit(&mut net, &chain, 5, 0, b"ok5");
    assert!(net
        .block(&mut chain, vec![a.clone(), s1, s2, s4, s5])
        .is_empty());
    let agg = net.aggregator.clone();
    let (h0, h2, h3) = (
        addr(&net.hospitals[0]),
        addr(&net.hospitals[2]),
        addr(&net.hospitals[3]),
    );
    let eq = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h0,
            offence: Offence::Equivocation {
                first: Box::new(a.clone()),
                second: Box::new(b.clone()),
            },
        },
    );
    let bad = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h2,
            offence: Offence::InvalidPayload {
                job: 0,
                round: 0,
                digest: Hash::sha256(b"bad ciphertext"),
            },
        },
    );
    assert!(net.block(&mut chain, vec![eq, bad]).is_empty());
    let job = &chain.state().jobs[&0];
    assert_eq!(job.members[&h0], 1000);
    assert_eq!(job.members[&h2], 1000);
    // the same evidence twice is refused
    let again = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h0,
            offence: Offence::Equivocation {
                first: Box::new(a.clone()),
                second: Box::new(b),
            },
        },
    );
    assert!(matches!(
        chain.check_tx(&again),
        Err(TxError::InvalidEvidence(_))
    ));
    // evidence that is not an equivocation
    let fake = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h0,
            offence: Offence::Equivocation {
                first: Box::new(a.clone()),
                second: Box::new(a),
            },
        },
    );
    assert!(matches!(
        chain.check_tx(&fake),
        Err(TxError::InvalidEvidence(_))
    ));
    // nothing of the round may be decrypted while it still takes submissions
    for s in share_txs(&mut net, &chain, 2) {
        assert!(matches!(
            chain.check_tx(&s),
            Err(TxError::SubmissionsOpen { job: 0, round: 0 })
        ));
    }
    // a rejected submission cannot be accepted
    let providers = vec![h0, addr(&net.hospitals[1])];
    let bad_commit = commit_tx(&mut net, vec![h0, h2], &providers);
    assert!(matches!(
        chain.check_tx(&bad_commit),
        Err(TxError::BadCommit { .. })
    ));
    let (h1, h4, h5) = (
        addr(&net.hospitals[1]),
        addr(&net.hospitals[4]),
        addr(&net.hospitals[5]),
    );
    // before the deadline, hospital 3 may still submit: committing now is refused
    let early = commit_tx(&mut net, vec![h1, h4, h5], &providers);
    // the equivocator's first submission is out of the aggregate, like the invalid one
    let with_equivocator = commit_tx(&mut net, vec![h0, h1, h4, h5], &providers);
    assert!(matches!(
        chain.check_tx(&with_equivocator),
        Err(TxError::BadCommit { .. })
    ));
    // singling out one valid submission (to decrypt it alone) is refused
    let single = commit_tx(&mut net, vec![h1], &providers);
    assert!(matches!(
        chain.check_tx(&single),
        Err(TxError::BadCommit { .. })
    ));
    assert!(matches!(
        chain.check_tx(&early),
        Err(TxError::BadCommit { .. })
    ));
    while chain.head().height < 10 {
        net.block(&mut chain, vec![]);
    }
    // past the deadline the valid set is final: its shares go on chain
    let shares = share_txs(&mut net, &chain, 2);
    assert!(net.block(&mut chain, shares).is_empty());
    let before3 = chain.state().jobs[&0].members[&h3];
    assert!(net.block(&mut chain, vec![early]).is_empty());
    // hospital 3 missed the deadline: 10% of its deposit is forfeited
    assert_eq!(chain.state().jobs[&0].members[&h3], before3 - 200);
    assert!(chain.state().supply_conserved());
    verify_chain(chain.store(), &net.genesis).unwrap();
}

#[test]
fn a_block_needs_more_than_two_thirds_of_validators() {
    let mut net = Net::new(6, 2);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    let h = net.hospitals[0].clone();
    let t = net.tx(
        &h,
        TxKind::Register {
            role: fedchain_ledger::Role::Hospital,
            pseudonym: "h".into(),
        },
    );
    let p = chain.propose(vec![t], net.time + 1, &net.validators[0]);
    let mut b = p.block;
    assert!(chain.validate(&b).is_ok());
    // no certificate, 4 of 6 (= 2/3), then 5 of 6
    assert!(matches!(
        chain.commit(&b),
        Err(fedchain_ledger::LedgerError::Block(BlockError::BadQuorum(
            _
        )))
    ));
    net.certify(&mut b, &[0, 1, 2, 3]);
    assert!(matches!(
        chain.commit(&b),
        Err(fedchain_ledger::LedgerError::Block(BlockError::BadQuorum(
            _
        )))
    ));
    // a bitmap claiming a signer that did not sign
    let mut lying = b.clone();
    if let Some(Certificate::Replicas(qc)) = lying.cert.as_mut() {
        qc.signers[4] = true;
    }
    assert!(matches!(
        chain.commit(&lying),
        Err(fedchain_ledger::LedgerError::Block(BlockError::BadQuorum(
            _
        )))
    ));
    net.certify(&mut b, &[0, 1, 2, 3, 5]);
    chain.commit(&b).unwrap();
    assert_eq!(chain.head().height, 1);
    // a certified block whose state root lies is refused
    let mut p2 = chain
        .propose(vec![], net.time + 2, &net.validators[1])
        .block;
    p2.header.state_root = Hash::sha256(b"lie");
    net.certify(&mut p2, &[0, 1, 2, 3, 4, 5]);
    assert!(matches!(
        chain.commit(&p2),
        Err(fedchain_ledger::LedgerError::Block(
            BlockError::WrongStateRoot
        ))
    ));
    let _unused: Option<State> = None;
}

/// A14: a job whose minimum of participants is below 3 (or below its threshold) is refused, and
/// a round cannot commit with fewer valid submissions than the job's minimum: it can only be
/// voided.
#[test]
fn a14_job_minimum_below_three_is_refused_and_rounds_cannot_commit_below_it() {
    let mut net = Net::new(4, 4);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    let agg = net.aggregator.clone();
    for (min, threshold) in [(2u32, 2u32), (0, 1), (3, 4), (5, 2)] {
        let mut spec = net.job_spec(threshold);
        spec.min_participants = min;
        let create = net.tx(&agg, TxKind::CreateJob(spec));
        assert!(
            matches!(
                chain.check_tx(&create),
                Err(TxError::MinParticipants { got, .. }) if got == min
            ),
            "min {min}, threshold {threshold}"
        );
    }
    // job 0 (setup_job): minimum 3. Only the victim and a colluder submit.
    assert_eq!(chain.state().jobs[&0].spec.min_participants, 3);
    open(&mut net, &mut chain, 0, 7);
    let victim = submit(&mut net, &chain, 0, 0, b"victim");
    let colluder = submit(&mut net, &chain, 1, 0, b"colluder");
    assert!(net.block(&mut chain, vec![victim, colluder]).is_empty());
    while chain.head().height < 7 {
        net.block(&mut chain, vec![]);
    }
    let shares = share_txs(&mut net, &chain, 2);
    assert!(net.block(&mut chain, shares).is_empty());
    let pair = vec![addr(&net.hospitals[0]), addr(&net.hospitals[1])];
    let commit = commit_tx(&mut net, pair.clone(), &pair);
    match chain.check_tx(&commit) {
        Err(TxError::BadCommit { reason, .. }) => assert!(reason.contains("minimum"), "{reason}"),
        other => panic!("a commit of two was not refused: {other:?}"),
    }
    let void = net.tx(&agg, TxKind::VoidRound { job: 0, round: 0 });
    assert!(net.block(&mut chain, vec![void]).is_empty());
    verify_chain(chain.store(), &net.genesis).unwrap();
}

/// An equivocation of decryption shares takes the offender's share out of the round (not its
/// submission), and an equivocation of submissions its submission (not its share): each is its
/// own kind of evidence, punished once.
#[test]
fn share_and_submission_equivocations_are_distinct_offences() {
    let mut net = Net::new(4, 4);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    open(&mut net, &mut chain, 0, 100);
    let subs: Vec<_> = (0..4)
        .map(|h| submit(&mut net, &chain, h, 0, format!("update {h}").as_bytes()))
        .collect();
    let first_submit = subs[1].clone();
    assert!(net.block(&mut chain, subs).is_empty());
    let shares = share_txs(&mut net, &chain, 3);
    let first_share = shares[0].clone();
    assert!(net.block(&mut chain, shares).is_empty());
    let agg = net.aggregator.clone();
    let (h0, h1) = (addr(&net.hospitals[0]), addr(&net.hospitals[1]));
    // hospital 0 signs a second, different share of round 0
    let d = chain.put_payload(b"another share").unwrap();
    let k0 = net.hospitals[0].clone();
    let second_share = net.tx(
        &k0,
        TxKind::DecryptionShare {
            job: 0,
            round: 0,
            payload: d,
        },
    );
    let share_eq = Offence::Equivocation {
        first: Box::new(first_share),
        second: Box::new(second_share),
    };
    assert_eq!(share_eq.kind(), Offence::SHARE_EQUIVOCATION);
    let p = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h0,
            offence: share_eq,
        },
    );
    assert!(net.block(&mut chain, vec![p]).is_empty());
    let open_round = chain.state().jobs[&0].open.clone().unwrap();
    assert!(open_round.shares[&h0].1, "the equivocated share is out");
    assert!(
        !open_round.submissions[&h0].rejected,
        "the submission stays"
    );
    // hospital 1 signs a second, different submission of round 0
    let k1 = net.hospitals[1].clone();
    let d = chain.put_payload(b"another update").unwrap();
    let second_submit = net.tx(
        &k1,
        TxKind::Submit {
            job: 0,
            round: 0,
            payload: d,
            samples: 200,
            payload_bytes: 14,
        },
    );
    let submit_eq = Offence::Equivocation {
        first: Box::new(first_submit),
        second: Box::new(second_submit),
    };
    assert_eq!(submit_eq.kind(), Offence::SUBMISSION_EQUIVOCATION);
    let p = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h1,
            offence: submit_eq,
        },
    );
    assert!(net.block(&mut chain, vec![p]).is_empty());
    let open_round = chain.state().jobs[&0].open.clone().unwrap();
    assert!(
        open_round.submissions[&h1].rejected,
        "the submission is out"
    );
    assert!(!open_round.shares[&h1].1, "the share stays");
    // both offences are recorded under their own kind
    let punished = &chain.state().jobs[&0].punished;
    assert!(punished.contains(&(0, h0, Offence::SHARE_EQUIVOCATION)));
    assert!(punished.contains(&(0, h1, Offence::SUBMISSION_EQUIVOCATION)));
    verify_chain(chain.store(), &net.genesis).unwrap();
}

/// The evidence of an equivocation carries both messages, so its penalty may be final before
/// either of them (the aggregator's penalty and the hospital's own submission ordered the other
/// way in a block, or the hospital's submission reaching the validators late): the submission
/// then enters the round rejected, whatever the order.
#[test]
fn an_equivocation_penalized_before_its_submission_keeps_the_submission_out() {
    let mut net = Net::new(4, 4);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    open(&mut net, &mut chain, 0, 9);
    let a = submit(&mut net, &chain, 0, 0, b"A");
    let b = submit(&mut net, &chain, 0, 0, b"B");
    let h0 = addr(&net.hospitals[0]);
    let agg = net.aggregator.clone();
    let eq = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h0,
            offence: Offence::Equivocation {
                first: Box::new(a.clone()),
                second: Box::new(b),
            },
        },
    );
    let s1 = submit(&mut net, &chain, 1, 0, b"ok1");
    assert!(net.block(&mut chain, vec![eq, a, s1]).is_empty());
    let open_round = chain.state().jobs[&0].open.clone().unwrap();
    assert!(
        open_round.submissions[&h0].rejected,
        "the equivocator's submission is out of the round"
    );
    assert!(!open_round.submissions[&addr(&net.hospitals[1])].rejected);
    assert_eq!(chain.state().jobs[&0].members[&h0], 1000, "half forfeited");
    verify_chain(chain.store(), &net.genesis).unwrap();
}

/// Issue #13 item 7: a round's deadline may be at most `MAX_DEADLINE_BLOCKS` after the block
/// that opens it (a deadline near u64::MAX would write empty blocks forever).
#[test]
fn a_deadline_beyond_the_limit_is_refused() {
    let mut net = Net::new(4, 3);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    let agg = net.aggregator.clone();
    let next = chain.head().height + 1;
    let limit = fedchain_ledger::state::MAX_DEADLINE_BLOCKS;
    for (deadline, ok) in [
        (next + limit + 1, false),
        (u64::MAX, false),
        (next + limit, true),
    ] {
        let t = net.tx(
            &agg,
            TxKind::OpenRound {
                job: 0,
                round: 0,
                params_hash: Hash::sha256(b"theta"),
                deadline,
            },
        );
        match chain.check_tx(&t) {
            Ok(()) => assert!(ok, "deadline {deadline} accepted"),
            Err(TxError::InvalidJob(m)) => {
                assert!(!ok && m.contains("blocks after height"), "{deadline}: {m}")
            }
            Err(e) => panic!("{deadline}: {e}"),
        }
    }
}

/// The valid set a holder decrypts does not move once the round closed with every member in:
/// a committee member that joins while the round is open would reopen it, so the chain
/// refuses the join until the round ends (THREAT-MODEL G1).
#[test]
fn a_join_while_a_round_is_open_is_refused_and_a_closed_round_stays_closed() {
    let mut net = Net::new(4, 4);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    // a second job of the same committee, joined by three of its four members
    let agg = net.aggregator.clone();
    let create = net.tx(&agg, TxKind::CreateJob(net.job_spec(2)));
    assert!(net.block(&mut chain, vec![create]).is_empty());
    let join = |net: &mut Net, h: usize| {
        let k = net.hospitals[h].clone();
        net.tx(
            &k,
            TxKind::Join {
                job: 1,
                deposit: 2000,
                samples: crate::common::MAX_SAMPLES,
            },
        )
    };
    let joins: Vec<_> = (0..3).map(|h| join(&mut net, h)).collect();
    assert!(net.block(&mut chain, joins).is_empty());
    let open_1 = net.tx(
        &agg,
        TxKind::OpenRound {
            job: 1,
            round: 0,
            params_hash: Hash::sha256(b"theta 0"),
            deadline: chain.head().height + 20,
        },
    );
    assert!(net.block(&mut chain, vec![open_1]).is_empty());
    let subs: Vec<_> = (0..3)
        .map(|h| {
            let d = chain.put_payload(format!("update {h}").as_bytes()).unwrap();
            let k = net.hospitals[h].clone();
            net.tx(
                &k,
                TxKind::Submit {
                    job: 1,
                    round: 0,
                    payload: d,
                    samples: 10,
                    payload_bytes: 8,
                },
            )
        })
        .collect();
    assert!(net.block(&mut chain, subs).is_empty());
    let closed = |chain: &Chain<MemoryStore>| {
        let st = chain.state();
        st.jobs[&1].submissions_closed(0, st.height + 1)
    };
    assert!(
        closed(&chain),
        "every joined member is in, long before the deadline"
    );
    let late = join(&mut net, 3);
    assert_eq!(
        chain.check_tx(&late),
        Err(TxError::JoinDuringRound { job: 1, round: 0 })
    );
    assert!(!net.block(&mut chain, vec![late]).is_empty());
    assert!(closed(&chain));
}
