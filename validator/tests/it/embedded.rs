//! The embedded validators `fedchain simulate` finalizes with: real engines on the
//! deterministic runtime, driven by synchronous requests.

use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::Genesis;
use fedchain_ledger::{
    verify_chain_full, Address, Certificate, Hash, RocksStore, Role, SignedTx, Store, Transaction,
    TxKind,
};
use fedchain_validator::embedded::{Embedded, EmbeddedConfig};
use fedchain_validator::SimplexFinality;

/// Fixed test keys (so two runs can be compared block by block).
fn key(i: u8) -> SigningKey {
    SigningKey::from_seed(&[i; 32])
}

fn register(genesis: &Genesis, c: &SigningKey, k: usize) -> SignedTx {
    Transaction {
        chain_id: genesis.chain_id.clone(),
        sender: c.verifying_key(),
        nonce: 1,
        kind: TxKind::Register {
            role: Role::Hospital,
            pseudonym: format!("hospital-{k}"),
        },
    }
    .sign(c)
}

/// Start four validators in `dir`, register three clients in one batch, then wait for three
/// more blocks; the hashes of every block the validators finalized.
fn run(dir: &std::path::Path, seed: u64) -> (Vec<Hash>, Genesis) {
    let validators: Vec<SigningKey> = (0..4).map(key).collect();
    let clients: Vec<SigningKey> = (10..13).map(key).collect();
    let genesis = Genesis::new(
        "fedchain-embedded-test",
        7,
        1_700_000_000_000,
        validators.iter().map(SigningKey::verifying_key).collect(),
        clients
            .iter()
            .map(|c| (Address::of(&c.verifying_key()), 1_000))
            .collect(),
    );
    let e = Embedded::start(EmbeddedConfig::new(seed, dir), &genesis, validators, None).unwrap();
    let txs: Vec<(SignedTx, Vec<Vec<u8>>)> = clients
        .iter()
        .enumerate()
        .map(|(k, c)| (register(&genesis, c, k), Vec::new()))
        .collect();
    let wanted: Vec<Hash> = txs.iter().map(|(t, _)| t.hash()).collect();
    assert!(e.submit_all(txs).iter().all(Result::is_ok));
    let mut blocks = Vec::new();
    let mut included = Vec::new();
    while included.len() < wanted.len() || blocks.len() < 5 {
        let run = e.blocks_after(blocks.len() as u64, true).unwrap();
        assert!(!run.is_empty(), "no block within the wait");
        assert!(
            matches!(
                run.last().unwrap().0.cert,
                Some(Certificate::Finalization(_))
            ),
            "a served run ends on a finalization"
        );
        for (b, _) in run {
            included.extend(b.txs.iter().map(SignedTx::hash));
            blocks.push(b.header.hash());
        }
    }
    assert_eq!(included, wanted, "the batch is final, in order, once");
    let status = e.status().unwrap();
    assert_eq!(status.len(), 4);
    assert!(status.iter().all(|s| s.faults.is_empty()));
    drop(e);
    (blocks, genesis)
}

#[test]
fn embedded_validators_finalize_a_batch_and_one_seed_gives_one_chain() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, genesis) = run(a.path(), 3);
    let (second, _) = run(b.path(), 3);
    let n = first.len().min(second.len());
    assert_eq!(
        first[..n],
        second[..n],
        "same seed and requests, same blocks"
    );
    // every replica audits clean from the genesis, every finalization checked
    for i in 0..4 {
        let store = RocksStore::open_read_only(a.path().join(i.to_string())).unwrap();
        let report =
            verify_chain_full(&store, &genesis, None, Some(&SimplexFinality::new())).unwrap();
        assert!(report.blocks >= n as u64, "{report:?}");
        assert_eq!(store.head().unwrap().unwrap().height + 1, report.blocks);
    }
}

#[test]
fn embedded_validators_restart_from_their_replicas_and_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let (first, genesis) = run(dir.path(), 5);
    let head = RocksStore::open_read_only(dir.path().join("0"))
        .unwrap()
        .head()
        .unwrap()
        .unwrap();
    assert!(head.height >= first.len() as u64);
    let e = Embedded::start(
        EmbeddedConfig::new(5, dir.path()),
        &genesis,
        (0..4).map(key).collect(),
        None,
    )
    .unwrap();
    // the registrations are final: submitting one again is refused at the head
    let again = register(&genesis, &key(10), 0);
    assert!(e.submit_all(vec![(again, Vec::new())])[0].is_err());
    let run = e.blocks_after(head.height, true).unwrap();
    assert!(
        !run.is_empty(),
        "the restarted validators finalize new blocks"
    );
    assert_eq!(run[0].0.header.height, head.height + 1);
    assert_eq!(run[0].0.header.prev_hash, head.hash);
}
