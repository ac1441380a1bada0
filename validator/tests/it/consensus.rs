use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use commonware_cryptography::bls12381::PublicKey;
use commonware_p2p::simulated::{Config as NetConfig, Link, Network, Oracle};
use commonware_runtime::{deterministic, Clock as _, Quota, Runner as _, Supervisor as _};
use commonware_utils::{probability, NZUsize, NZU32};
use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::Genesis;
use fedchain_ledger::{
    verify_chain_full, Address, AuditReport, Certificate, Chain, Finality, FinalityRef, Hash,
    RocksStore, Role, SignedTx, Store, Transaction, TxKind,
};
use fedchain_validator::{scheme, start, Config, Mailbox, SimplexFinality, Timing};

const QUOTA: Quota = Quota::per_second(NZU32!(10_000));

/// Logs of the run when RUST_LOG asks for them.
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn fresh_keys(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect()
}

struct Consortium {
    validators: Vec<SigningKey>,
    clients: Vec<SigningKey>,
    genesis: Genesis,
    dir: tempfile::TempDir,
}

impl Consortium {
    fn new(validators: usize, clients: usize) -> Self {
        let validators = fresh_keys(validators);
        let clients = fresh_keys(clients);
        let genesis = Genesis::new(
            "fedchain-validator-test",
            rand::random(),
            1_700_000_000_000,
            validators.iter().map(SigningKey::verifying_key).collect(),
            clients
                .iter()
                .map(|c| (Address::of(&c.verifying_key()), 1_000))
                .collect(),
        );
        Self {
            validators,
            clients,
            genesis,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("validator-{i}"))
    }

    fn identity(&self, i: usize) -> PublicKey {
        scheme::public_key(&self.validators[i].verifying_key()).unwrap()
    }

    fn register(&self, c: usize) -> SignedTx {
        let key = &self.clients[c];
        Transaction {
            chain_id: self.genesis.chain_id.clone(),
            sender: key.verifying_key(),
            nonce: 1,
            kind: TxKind::Register {
                role: Role::Hospital,
                pseudonym: format!("hospital-{c}"),
            },
        }
        .sign(key)
    }

    /// Start validator `i` on the simulated network (its replica created or reopened).
    async fn start(
        &self,
        context: &deterministic::Context,
        oracle: &mut Oracle<PublicKey, deterministic::Context>,
        i: usize,
    ) -> Mailbox {
        let control = oracle.control(self.identity(i));
        let votes = control.register(0, QUOTA).await.unwrap();
        let certificates = control.register(1, QUOTA).await.unwrap();
        let resolver = control.register(2, QUOTA).await.unwrap();
        let gossip = control.register(3, QUOTA).await.unwrap();
        let dir = self.store_dir(i);
        let store = if dir.exists() {
            RocksStore::open_existing(&dir).unwrap()
        } else {
            RocksStore::create(&dir).unwrap()
        };
        let finality = FinalityRef(Some(Arc::new(SimplexFinality::new())));
        let chain = Chain::open_with(store, &self.genesis, finality, &mut |_, _| {}).unwrap();
        start(
            context.child("validator").with_attribute("index", i),
            Config {
                chain,
                key: self.validators[i].clone(),
                verifier: None,
                block_interval: Duration::ZERO,
            },
            control,
            format!("validator-{i}"),
            Timing::default(),
            votes,
            certificates,
            resolver,
            gossip,
        )
        .unwrap()
    }

    /// Start validators `0..n`.
    async fn boot(
        &self,
        context: &deterministic::Context,
        oracle: &mut Oracle<PublicKey, deterministic::Context>,
        n: usize,
    ) -> Vec<Mailbox> {
        let mut mailboxes = Vec::new();
        for i in 0..n {
            mailboxes.push(self.start(context, oracle, i).await);
        }
        mailboxes
    }

    /// Client `k` registers through validator `k % len`, for every `k` in `clients`; then
    /// every validator settles on one head at `height` or above.
    async fn register_all(
        &self,
        context: &deterministic::Context,
        mailboxes: &[Mailbox],
        clients: std::ops::Range<usize>,
        height: u64,
    ) -> Vec<(u64, Hash, Vec<String>)> {
        for k in clients {
            let h = mailboxes[k % mailboxes.len()]
                .submit(self.register(k), Vec::new())
                .await
                .unwrap();
            assert_eq!(h, self.register(k).hash());
        }
        let refs: Vec<&Mailbox> = mailboxes.iter().collect();
        settle(context, &refs, height).await
    }

    /// Audit validator `i`'s replica from the genesis, every certificate checked.
    fn audit(&self, i: usize) -> AuditReport {
        let store = RocksStore::open_read_only(self.store_dir(i)).unwrap();
        verify_chain_full(&store, &self.genesis, None, Some(&SimplexFinality::new())).unwrap()
    }
}

async fn link_all(oracle: &mut Oracle<PublicKey, deterministic::Context>, peers: &[PublicKey]) {
    let link = Link {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        success_rate: probability!(1.0),
    };
    for a in peers {
        for b in peers {
            if a != b {
                oracle
                    .add_link(a.clone(), b.clone(), link.clone())
                    .await
                    .unwrap();
            }
        }
    }
}

async fn network(
    context: &deterministic::Context,
    c: &Consortium,
) -> Oracle<PublicKey, deterministic::Context> {
    let peers: Vec<PublicKey> = (0..c.validators.len()).map(|i| c.identity(i)).collect();
    let (network, mut oracle) = Network::new_with_peers(
        context.child("network"),
        NetConfig {
            max_size: fedchain_validator::wire::MAX_MESSAGE,
            disconnect_on_block: true,
            max_peers_per_set: NZUsize!(peers.len()),
            tracked_peer_sets: NZUsize!(1),
        },
        peers.clone(),
    )
    .await;
    network.start();
    link_all(&mut oracle, &peers).await;
    oracle
}

/// Wait until every mailbox's validator has finalized at least `height` blocks with an
/// empty mempool and all agree on the head; returns the heads.
async fn settle(
    context: &deterministic::Context,
    mailboxes: &[&Mailbox],
    height: u64,
) -> Vec<(u64, Hash, Vec<String>)> {
    loop {
        context.sleep(Duration::from_millis(200)).await;
        let mut heads = Vec::new();
        for m in mailboxes {
            let s = m.status().await.unwrap();
            heads.push((s.head.height, s.head.hash, s.faults, s.mempool));
        }
        let done = heads.iter().all(|h| h.0 >= height && h.3 == 0)
            && heads
                .windows(2)
                .all(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1);
        if done {
            return heads.into_iter().map(|(h, x, f, _)| (h, x, f)).collect();
        }
    }
}

fn registered(report: &AuditReport, path: &Path, genesis: &Genesis, clients: usize) {
    // every client's registration is final in the replica
    let store = RocksStore::open_read_only(path).unwrap();
    let chain = Chain::open_existing(store);
    // a replica of finalizations opens only with its verifier (fallback replay) or from its
    // snapshot: here the snapshot
    let chain = chain.unwrap();
    assert_eq!(
        chain.genesis_hash(),
        fedchain_ledger::state::genesis_block(genesis).header.hash()
    );
    assert_eq!(chain.state().participants.len(), clients);
    assert_eq!(report.transactions, clients as u64);
}

#[test]
fn four_validators_finalize_submitted_transactions_and_every_replica_audits_clean() {
    logs();
    let c = Consortium::new(4, 6);
    let executor = deterministic::Runner::timed(Duration::from_secs(300));
    let c = executor.start(|context| async move {
        let mut oracle = network(&context, &c).await;
        let mailboxes = c.boot(&context, &mut oracle, 4).await;
        // each client submits to a different validator; gossip spreads the transactions
        let heads = c.register_all(&context, &mailboxes, 0..6, 1).await;
        for (_, _, faults) in &heads {
            assert!(
                faults.is_empty(),
                "no fault among honest validators: {faults:?}"
            );
        }
        // a transaction the chain refuses never enters a mempool
        let dup = mailboxes[0].submit(c.register(0), Vec::new()).await;
        assert!(dup.is_err(), "a replayed registration is refused: {dup:?}");
        c
    });
    let mut heads = Vec::new();
    for i in 0..4 {
        let r = c.audit(i);
        registered(&r, &c.store_dir(i), &c.genesis, c.clients.len());
        heads.push(r.head);
    }
    one_chain(&c, &heads);
}

#[test]
fn a_validator_down_does_not_stop_finality_and_catches_up_when_it_returns() {
    let c = Consortium::new(4, 4);
    let executor = deterministic::Runner::timed(Duration::from_secs(600));
    let c = executor.start(|context| async move {
        let mut oracle = network(&context, &c).await;
        // validator 3 is down: 3 of 4 are more than 2/3
        let mut mailboxes = c.boot(&context, &mut oracle, 3).await;
        let before = c.register_all(&context, &mailboxes, 0..2, 1).await;
        // it comes back, learns what was finalized without it, then takes part again
        mailboxes.push(c.start(&context, &mut oracle, 3).await);
        let after = c
            .register_all(&context, &mailboxes[3..], 2..4, before[0].0 + 1)
            .await;
        let refs: Vec<&Mailbox> = mailboxes.iter().collect();
        let all = settle(&context, &refs, after[0].0).await;
        assert!(all[3].0 > before[0].0);
        c
    });
    for i in 0..4 {
        let r = c.audit(i);
        registered(&r, &c.store_dir(i), &c.genesis, c.clients.len());
    }
}

#[test]
fn a_partitioned_validator_misses_nothing_final_and_rejoins() {
    let c = Consortium::new(4, 6);
    let executor = deterministic::Runner::timed(Duration::from_secs(600));
    let c = executor.start(|context| async move {
        let mut oracle = network(&context, &c).await;
        let mailboxes = c.boot(&context, &mut oracle, 4).await;
        let before = c.register_all(&context, &mailboxes, 0..2, 1).await;
        // validator 3 cut off from the others, both ways: the three still finalize
        let (cut, others) = (
            c.identity(3),
            (0..3).map(|i| c.identity(i)).collect::<Vec<_>>(),
        );
        for o in &others {
            oracle.remove_link(cut.clone(), o.clone()).await.unwrap();
            oracle.remove_link(o.clone(), cut.clone()).await.unwrap();
        }
        let during = c
            .register_all(&context, &mailboxes[..3], 2..4, before[0].0 + 1)
            .await;
        let alone = mailboxes[3].status().await.unwrap();
        assert!(
            alone.head.height < during[0].0,
            "the partitioned validator cannot have finalized alone"
        );
        // the partition heals: it catches up with what was final without it and takes part
        let link = Link {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
            success_rate: probability!(1.0),
        };
        for o in &others {
            oracle
                .add_link(cut.clone(), o.clone(), link.clone())
                .await
                .unwrap();
            oracle
                .add_link(o.clone(), cut.clone(), link.clone())
                .await
                .unwrap();
        }
        let after = c
            .register_all(&context, &mailboxes[3..], 4..6, during[0].0 + 1)
            .await;
        let refs: Vec<&Mailbox> = mailboxes.iter().collect();
        let all = settle(&context, &refs, after[0].0).await;
        assert!(
            all.iter().all(|h| h.2.is_empty()),
            "no evidence against anyone: {all:?}"
        );
        c
    });
    let mut heads = Vec::new();
    for i in 0..4 {
        let r = c.audit(i);
        registered(&r, &c.store_dir(i), &c.genesis, c.clients.len());
        heads.push(r.head);
    }
    one_chain(&c, &heads);
}

#[test]
fn a_finalization_checked_against_another_validator_set_fails() {
    // one replica's certificates, checked against a set where one validator's key is
    // replaced (the aggregator's, say): refused
    let c = Consortium::new(4, 1);
    let executor = deterministic::Runner::timed(Duration::from_secs(300));
    let c = executor.start(|context| async move {
        let mut oracle = network(&context, &c).await;
        let mailboxes = c.boot(&context, &mut oracle, 4).await;
        c.register_all(&context, &mailboxes, 0..1, 1).await;
        c
    });
    let store = RocksStore::open_read_only(c.store_dir(0)).unwrap();
    let head = store.head().unwrap().unwrap();
    let chain = Chain::open_existing(store).unwrap();
    let block = chain.block(head.height).unwrap().unwrap();
    let Some(Certificate::Finalization(bytes)) = &block.cert else {
        panic!("the head carries its finalization");
    };
    let f = SimplexFinality::new();
    let vs: Vec<_> = c.validators.iter().map(SigningKey::verifying_key).collect();
    let hh = block.header.hash();
    f.verify(&c.genesis.chain_id, &vs, &hh, bytes).unwrap();
    // at least 3 of the 4 signed (more than 2/3): replacing any signer's key breaks it
    let refused = (0..4)
        .filter(|&i| {
            let mut other = vs.clone();
            other[i] = fresh_keys(1)[0].verifying_key();
            f.verify(&c.genesis.chain_id, &other, &hh, bytes).is_err()
        })
        .count();
    assert!(refused >= 3, "{refused} of 4 replacements refused");
    assert!(f.verify("another-chain", &vs, &hh, bytes).is_err());
    assert!(f
        .verify(&c.genesis.chain_id, &vs, &Hash([7; 32]), bytes)
        .is_err());
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(f.verify(&c.genesis.chain_id, &vs, &hh, &flipped).is_err());
}

#[test]
fn fedchain_bls_keys_are_commonware_keys() {
    for k in fresh_keys(8) {
        scheme::private_key(&k).expect("same scalar, same public key on both sides");
    }
}

#[test]
fn a16_an_equivocating_validator_cannot_split_finality_and_its_proposals_never_become_blocks() {
    use commonware_consensus::simplex::elector::RoundRobin;
    use commonware_consensus::simplex::mocks::{equivocator, relay};
    use commonware_consensus::types::Epoch;
    use commonware_cryptography::Sha256;
    // validator 3 signs two different proposals for each view it leads, sent to different
    // validators, and proposes payloads that are no fedchain block at all
    let c = Consortium::new(4, 6);
    let executor = deterministic::Runner::timed(Duration::from_secs(600));
    let c = executor.start(|context| async move {
        let mut oracle = network(&context, &c).await;
        let mailboxes = c.boot(&context, &mut oracle, 3).await;
        let control = oracle.control(c.identity(3));
        let votes = control.register(0, QUOTA).await.unwrap();
        let certificates = control.register(1, QUOTA).await.unwrap();
        let validators: Vec<_> = c.validators.iter().map(SigningKey::verifying_key).collect();
        let byzantine = equivocator::Equivocator::<_, _, _, Sha256>::new(
            context.child("byzantine"),
            equivocator::Config {
                scheme: scheme::signer(&c.genesis.chain_id, &validators, &c.validators[3]).unwrap(),
                elector: RoundRobin::<Sha256>::default(),
                epoch: Epoch::new(0),
                relay: Arc::new(relay::Relay::new()),
            },
        );
        byzantine.start(votes, certificates);
        // the honest three finalize every registration, in several rounds of leaders
        for k in 0..3 {
            c.register_all(&context, &mailboxes, 2 * k..2 * k + 2, k as u64 + 1)
                .await;
        }
        c
    });
    let mut heads = Vec::new();
    for i in 0..3 {
        let r = c.audit(i);
        registered(&r, &c.store_dir(i), &c.genesis, c.clients.len());
        heads.push(r.head);
        // every block on the chain was proposed by an honest validator
        let store = RocksStore::open_read_only(c.store_dir(i)).unwrap();
        let chain = Chain::open_existing(store).unwrap();
        for h in 1..=chain.head().height {
            let b = chain.block(h).unwrap().unwrap();
            assert_ne!(b.header.proposer, c.validators[3].verifying_key());
        }
    }
    one_chain(&c, &heads);
}

/// A member may submit its next transaction before the previous one is final: a `Transfer`
/// with nonce 2 right behind the sender's `Register` (nonce 1) is refused at the head but
/// admitted after the pending registration, survives the pruning at each finalization, and
/// both end on chain in order. (CI once lost a bootstrap's `Join` this way: the mempool was
/// pruned against the head alone.)
#[test]
fn a_senders_next_transaction_is_admitted_behind_its_pending_one_and_both_finalize() {
    logs();
    let c = Consortium::new(4, 2);
    let executor = deterministic::Runner::timed(Duration::from_secs(300));
    let c = executor.start(|context| async move {
        let mut oracle = network(&context, &c).await;
        let mailboxes = c.boot(&context, &mut oracle, 4).await;
        let key = &c.clients[0];
        let transfer = Transaction {
            chain_id: c.genesis.chain_id.clone(),
            sender: key.verifying_key(),
            nonce: 2,
            kind: TxKind::Transfer {
                to: Address::of(&c.clients[1].verifying_key()),
                amount: 10,
            },
        }
        .sign(key);
        // nonce 2 alone, with nothing pending, is refused
        let alone = mailboxes[1].submit(transfer.clone(), Vec::new()).await;
        assert!(alone.is_err(), "{alone:?}");
        mailboxes[0]
            .submit(c.register(0), Vec::new())
            .await
            .unwrap();
        mailboxes[0].submit(transfer, Vec::new()).await.unwrap();
        let refs: Vec<&Mailbox> = mailboxes.iter().collect();
        settle(&context, &refs, 1).await;
        c
    });
    for i in 0..4 {
        let report = c.audit(i);
        assert_eq!(report.transactions, 2, "validator {i}");
        let store = RocksStore::open_read_only(c.store_dir(i)).unwrap();
        let chain = Chain::open_existing(store).unwrap();
        let state = chain.state();
        let sender = Address::of(&c.clients[0].verifying_key());
        assert_eq!(state.nonces.get(&sender), Some(&2), "validator {i}");
    }
}

/// What a member's follower (the aggregator's ledger) does with the runs a validator serves:
/// `Chain::commit_final_run` writes a run only when its last block's finalization verifies
/// against the genesis set. A run whose finalization is altered, or cut before its certified
/// block, leaves the follower's chain as it was; the run as served is committed whole.
#[test]
fn a_follower_commits_a_served_run_only_when_its_finalization_verifies() {
    logs();
    let c = Consortium::new(4, 3);
    let executor = deterministic::Runner::timed(Duration::from_secs(300));
    let (c, run) = executor.start(|context| async move {
        let mut oracle = network(&context, &c).await;
        let mailboxes = c.boot(&context, &mut oracle, 4).await;
        c.register_all(&context, &mailboxes, 0..3, 2).await;
        let run = mailboxes[2].blocks(1, 64).await.unwrap();
        (c, run)
    });
    let blocks: Vec<fedchain_ledger::Block> = run.into_iter().map(|(b, _)| b).collect();
    assert!(!blocks.is_empty());
    let open = || {
        let finality = FinalityRef(Some(Arc::new(SimplexFinality::new())));
        Chain::open_with(
            fedchain_ledger::MemoryStore::new(),
            &c.genesis,
            finality,
            &mut |_, _| {},
        )
        .unwrap()
    };
    // the last finalization altered: refused, nothing written
    let mut forged = blocks.clone();
    let Some(Certificate::Finalization(bytes)) = forged.last_mut().unwrap().cert.as_mut() else {
        panic!("a served run ends on a finalization");
    };
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut follower = open();
    assert!(follower.commit_final_run(&forged).is_err());
    assert_eq!(follower.head().height, 0);
    // cut before its certified block: refused, nothing written
    let mut cut = blocks.clone();
    cut.last_mut().unwrap().cert = None;
    assert!(follower.commit_final_run(&cut).is_err());
    assert_eq!(follower.head().height, 0);
    // as served: committed whole, the same head as the validator's replica
    follower.commit_final_run(&blocks).unwrap();
    let store = RocksStore::open_read_only(c.store_dir(2)).unwrap();
    let replica = Chain::open_existing(store).unwrap();
    let top = blocks.last().unwrap().header.height;
    assert_eq!(follower.head().height, top);
    assert_eq!(
        follower.head().hash,
        replica.block(top).unwrap().unwrap().header.hash()
    );
    assert_eq!(follower.state().participants.len(), 3);
}

/// The replicas hold one chain: at the lowest of their heads (one may not have committed the
/// last finalized block when the run stopped) every replica has the same header.
fn one_chain(c: &Consortium, heads: &[Hash]) {
    let stores: Vec<RocksStore> = (0..heads.len())
        .map(|i| RocksStore::open_read_only(c.store_dir(i)).unwrap())
        .collect();
    let low = stores
        .iter()
        .map(|s| Store::head(s).unwrap().unwrap().height)
        .min()
        .unwrap();
    let at_low: Vec<Hash> = stores
        .iter()
        .map(|s| fedchain_ledger::store::header_hash(&Store::header(s, low).unwrap().unwrap()))
        .collect();
    assert!(
        at_low.windows(2).all(|w| w[0] == w[1]),
        "one chain at height {low}: {at_low:?} (heads {heads:?})"
    );
}
