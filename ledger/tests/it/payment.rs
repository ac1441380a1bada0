//! Fair payment (A13: a decryptable round cannot be voided, every valid share provider is
//! paid) and sample counts bounded by the join's declaration (A15).

use fedchain_ledger::state::{RoundOutcome, DECRYPTION_WINDOW};
use fedchain_ledger::types::Offence;
use fedchain_ledger::{verify_chain, Address, Chain, Hash, MemoryStore, SignedTx, TxError, TxKind};

use crate::common::{addr, Net, MAX_SAMPLES};

fn open(net: &mut Net, chain: &mut Chain<MemoryStore>, deadline: u64) {
    let agg = net.aggregator.clone();
    let t = net.tx(
        &agg,
        TxKind::OpenRound {
            job: 0,
            round: 0,
            params_hash: Hash::sha256(b"theta0"),
            deadline,
        },
    );
    assert!(net.block(chain, vec![t]).is_empty());
}

fn submit(net: &mut Net, chain: &Chain<MemoryStore>, h: usize, samples: u64) -> SignedTx {
    let body = format!("update {h}");
    let d = chain.put_payload(body.as_bytes()).unwrap();
    let k = net.hospitals[h].clone();
    net.tx(
        &k,
        TxKind::Submit {
            job: 0,
            round: 0,
            payload: d,
            samples,
            payload_bytes: body.len() as u64,
        },
    )
}

fn share(net: &mut Net, chain: &Chain<MemoryStore>, h: usize) -> SignedTx {
    let d = chain.put_payload(format!("share {h}").as_bytes()).unwrap();
    let k = net.hospitals[h].clone();
    net.tx(
        &k,
        TxKind::DecryptionShare {
            job: 0,
            round: 0,
            payload: d,
        },
    )
}

fn commit(net: &mut Net, accepted: Vec<Address>, providers: Vec<Address>) -> SignedTx {
    let agg = net.aggregator.clone();
    net.tx(
        &agg,
        TxKind::CommitRound {
            job: 0,
            round: 0,
            aggregate: Hash::sha256(b"aggregate"),
            new_params_hash: Hash::sha256(b"theta1"),
            accepted,
            share_providers: providers,
        },
    )
}

/// Job 0 with 4 hospitals, t = 2; round 0 open until height `deadline`, every hospital
/// submitted (samples 100 each).
fn round_with_submissions(deadline: u64) -> (Net, Chain<MemoryStore>) {
    let mut net = Net::new(4, 4);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    open(&mut net, &mut chain, deadline);
    let subs: Vec<_> = (0..4).map(|h| submit(&mut net, &chain, h, 100)).collect();
    assert!(net.block(&mut chain, subs).is_empty());
    (net, chain)
}

fn void_of(net: &mut Net) -> SignedTx {
    let agg = net.aggregator.clone();
    net.tx(&agg, TxKind::VoidRound { job: 0, round: 0 })
}

/// A13: once t valid decryption shares are on chain (and enough valid submissions), the round
/// can only be committed: a VoidRound is refused with `Decryptable`, before and after the
/// decryption window. A share taken out by a penalty does not count, so a round with fewer
/// than t valid shares can still be voided after the window.
#[test]
fn a13_round_with_t_valid_shares_cannot_be_voided() {
    let (mut net, mut chain) = round_with_submissions(8);
    let shares = vec![share(&mut net, &chain, 0), share(&mut net, &chain, 1)];
    assert!(net.block(&mut chain, shares).is_empty());
    while chain.head().height <= 8 + DECRYPTION_WINDOW {
        net.block(&mut chain, vec![]);
    }
    let void = void_of(&mut net);
    assert_eq!(
        chain.check_tx(&void),
        Err(TxError::Decryptable {
            job: 0,
            round: 0,
            shares: 2,
            threshold: 2
        })
    );
    assert_eq!(net.block(&mut chain, vec![void]).len(), 1);
    // it commits, paying both providers
    let all: Vec<_> = net.hospitals.iter().map(addr).collect();
    let c = commit(&mut net, all.clone(), all[..2].to_vec());
    assert!(net.block(&mut chain, vec![c]).is_empty());
    verify_chain(chain.store(), &net.genesis).unwrap();

    // the same with one of the two shares proven invalid: below t valid, void after the window
    let (mut net, mut chain) = round_with_submissions(8);
    let shares = vec![share(&mut net, &chain, 0), share(&mut net, &chain, 1)];
    let bad_digest = Hash::sha256(b"share 1");
    assert!(net.block(&mut chain, shares).is_empty());
    let agg = net.aggregator.clone();
    let h1 = addr(&net.hospitals[1]);
    let p = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h1,
            offence: Offence::InvalidShare {
                job: 0,
                round: 0,
                digest: bad_digest,
            },
        },
    );
    assert!(net.block(&mut chain, vec![p]).is_empty());
    while chain.head().height <= 8 + DECRYPTION_WINDOW {
        net.block(&mut chain, vec![]);
    }
    let void = void_of(&mut net);
    assert!(net.block(&mut chain, vec![void]).is_empty());
    assert_eq!(
        chain.state().jobs[&0].history[0].outcome,
        RoundOutcome::Void
    );
    verify_chain(chain.store(), &net.genesis).unwrap();
}

/// A13: with three valid shares on chain (t = 2) a commit listing two of them is refused
/// with `UnpaidShare` naming the one left out; a penalized share may not be listed; the commit
/// listing every valid provider pays each an equal part of the share reward.
#[test]
fn a13_every_valid_share_provider_is_paid() {
    let (mut net, mut chain) = round_with_submissions(100);
    let shares: Vec<_> = (0..4).map(|h| share(&mut net, &chain, h)).collect();
    assert!(net.block(&mut chain, shares).is_empty());
    // hospital 3's share is proven invalid: it is out, and unpaid
    let agg = net.aggregator.clone();
    let h: Vec<Address> = net.hospitals.iter().map(addr).collect();
    let p = net.tx(
        &agg,
        TxKind::Penalty {
            job: 0,
            offender: h[3],
            offence: Offence::InvalidShare {
                job: 0,
                round: 0,
                digest: Hash::sha256(b"share 3"),
            },
        },
    );
    assert!(net.block(&mut chain, vec![p]).is_empty());
    let subset = commit(&mut net, h.clone(), vec![h[0], h[1]]);
    assert_eq!(
        chain.check_tx(&subset),
        Err(TxError::UnpaidShare {
            job: 0,
            round: 0,
            provider: h[2]
        })
    );
    let other_subset = commit(&mut net, h.clone(), vec![h[2], h[1]]);
    assert_eq!(
        chain.check_tx(&other_subset),
        Err(TxError::UnpaidShare {
            job: 0,
            round: 0,
            provider: h[0]
        })
    );
    let with_penalized = commit(&mut net, h.clone(), vec![h[0], h[1], h[2], h[3]]);
    assert!(matches!(
        chain.check_tx(&with_penalized),
        Err(TxError::BadCommit { .. })
    ));
    let before: Vec<u64> = h.iter().map(|a| chain.state().balance(a)).collect();
    let fair = commit(&mut net, h.clone(), vec![h[2], h[0], h[1]]);
    assert!(net.block(&mut chain, vec![fair]).is_empty());
    let s = chain.state();
    let gained: Vec<u64> = h
        .iter()
        .zip(&before)
        .map(|(a, b)| s.balance(a) - b)
        .collect();
    // submit reward 900 over 4 equal submissions: 225 each; share reward 300 over 3: 100 each
    assert_eq!(gained, vec![325, 325, 325, 225]);
    match &s.jobs[&0].history[0].outcome {
        RoundOutcome::Committed {
            share_providers, ..
        } => assert_eq!(share_providers.len(), 3),
        other => panic!("not committed: {other:?}"),
    }
    verify_chain(chain.store(), &net.genesis).unwrap();
}

/// A15: a hospital declares its sample count once, at join, within the job's `max_samples`;
/// a submission claiming more than it declared is refused, so neither its reward share nor
/// its weight in the average can exceed the declaration.
#[test]
fn a15_sample_count_above_the_declaration_is_refused() {
    let mut net = Net::new(4, 3);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    let agg = net.aggregator.clone();
    let mut regs = vec![net.tx(
        &agg,
        TxKind::Register {
            role: fedchain_ledger::Role::Aggregator,
            pseudonym: "agg".into(),
        },
    )];
    for (i, k) in net.hospitals.clone().iter().enumerate() {
        regs.push(net.tx(
            k,
            TxKind::Register {
                role: fedchain_ledger::Role::Hospital,
                pseudonym: format!("h{i}"),
            },
        ));
    }
    assert!(net.block(&mut chain, regs).is_empty());
    // a job without a bound on sample counts is refused
    let mut unbounded = net.job_spec(2);
    unbounded.max_samples = 0;
    let t = net.tx(&agg, TxKind::CreateJob(unbounded));
    assert!(matches!(chain.check_tx(&t), Err(TxError::InvalidJob(_))));
    let t = net.tx(&agg, TxKind::CreateJob(net.job_spec(2)));
    assert!(net.block(&mut chain, vec![t]).is_empty());
    let h: Vec<Address> = net.hospitals.iter().map(addr).collect();
    let join = |net: &mut Net, i: usize, samples: u64| {
        let k = net.hospitals[i].clone();
        net.tx(
            &k,
            TxKind::Join {
                job: 0,
                deposit: 2000,
                samples,
            },
        )
    };
    // a huge declaration, and none at all, are refused at join
    for bad in [MAX_SAMPLES + 1, u64::MAX, 0] {
        let t = join(&mut net, 0, bad);
        assert_eq!(
            chain.check_tx(&t),
            Err(TxError::BadDeclaration {
                job: 0,
                hospital: h[0],
                got: bad,
                max: MAX_SAMPLES
            })
        );
    }
    let joins = vec![
        join(&mut net, 0, 50),
        join(&mut net, 1, 100),
        join(&mut net, 2, 200),
    ];
    assert!(net.block(&mut chain, joins).is_empty());
    assert_eq!(chain.state().jobs[&0].samples[&h[0]], 50);
    open(&mut net, &mut chain, 100);
    // hospital 0 declared 50: 51 (or the job maximum, or 0) is refused
    for bad in [51, MAX_SAMPLES, 0] {
        let t = submit(&mut net, &chain, 0, bad);
        assert_eq!(
            chain.check_tx(&t),
            Err(TxError::Samples {
                job: 0,
                round: 0,
                hospital: h[0],
                got: bad,
                declared: 50
            })
        );
    }
    let subs = vec![
        submit(&mut net, &chain, 0, 50),
        submit(&mut net, &chain, 1, 100),
        submit(&mut net, &chain, 2, 150),
    ];
    assert!(net.block(&mut chain, subs).is_empty());
    let shares = vec![share(&mut net, &chain, 0), share(&mut net, &chain, 1)];
    assert!(net.block(&mut chain, shares).is_empty());
    let before: Vec<u64> = h.iter().map(|a| chain.state().balance(a)).collect();
    let c = commit(&mut net, h.clone(), vec![h[0], h[1]]);
    assert!(net.block(&mut chain, vec![c]).is_empty());
    // the reward is split by the submitted counts (each within its declaration): 900 over
    // 50:100:150; the share reward 300 over two providers
    let gained: Vec<u64> = h
        .iter()
        .zip(&before)
        .map(|(a, b)| chain.state().balance(a) - b)
        .collect();
    assert_eq!(gained, vec![150 + 150, 300 + 150, 450]);
    verify_chain(chain.store(), &net.genesis).unwrap();
}
