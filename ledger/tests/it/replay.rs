//! The chain id is the genesis hash: transactions do not replay across deployments (A12) and
//! an audit pinned to a genesis refuses a ledger of another chain (A17).

use fedchain_ledger::state::Genesis;
use fedchain_ledger::types::encode;
use fedchain_ledger::{
    audit_ledger, verify_chain, AuditError, Chain, Column, LedgerError, MemoryStore, RocksStore,
    TxError, TxKind,
};

use crate::common::{addr, Net};

/// Deployment B: the same consortium, keys and time as `Net::new(4, 3)`, another nonce.
fn deployment_b() -> Net {
    let mut b = Net::new(4, 3);
    b.genesis = Genesis::new(
        b.genesis.consortium.clone(),
        1,
        b.genesis.timestamp_ms,
        b.genesis.validators.clone(),
        b.genesis.allocations.clone(),
    );
    b
}

#[test]
fn the_chain_id_is_the_hash_of_the_genesis_content() {
    let a = Net::new(4, 3);
    assert_eq!(a.genesis.chain_id, a.genesis.derived_id());
    assert_eq!(a.genesis.chain_id.len(), 64, "hex of SHA-256");
    // every field is in the hash
    let b = deployment_b();
    assert_ne!(a.genesis.chain_id, b.genesis.chain_id);
    let mut g = a.genesis.clone();
    g.timestamp_ms += 1;
    assert_ne!(g.derived_id(), a.genesis.chain_id);
    let mut g = a.genesis.clone();
    g.consortium.push('x');
    assert_ne!(g.derived_id(), a.genesis.chain_id);
    let mut g = a.genesis.clone();
    g.allocations[0].1 += 1;
    assert_ne!(g.derived_id(), a.genesis.chain_id);
    let mut g = a.genesis.clone();
    g.validators.pop();
    assert_ne!(g.derived_id(), a.genesis.chain_id);
}

#[test]
fn a12_genesis_whose_id_is_not_its_hash_is_refused() {
    let mut net = Net::new(4, 3);
    let derived = net.genesis.chain_id.clone();
    net.genesis.chain_id = "fedchain-test".into();
    match Chain::open(MemoryStore::new(), &net.genesis) {
        Err(LedgerError::GenesisId { stated, derived: d }) => {
            assert_eq!(stated, "fedchain-test");
            assert_eq!(d, derived);
        }
        other => panic!("a free-string chain id was accepted: {other:?}"),
    }
    // a hash of other content is refused too
    net.genesis.chain_id = deployment_b().genesis.chain_id;
    assert!(matches!(
        Chain::open(MemoryStore::new(), &net.genesis),
        Err(LedgerError::GenesisId { .. })
    ));
}

/// A12: deployment A and B have the same participants, job ids restart at 0 and the nonces
/// line up, yet a transaction signed for A is refused by B's chain, in a proposal as well as
/// on its own.
#[test]
fn a12_transaction_from_another_deployment_is_refused() {
    let mut a = Net::new(4, 3);
    let mut b = deployment_b();
    let mut chain_a = Chain::open(MemoryStore::new(), &a.genesis).unwrap();
    let mut chain_b = Chain::open(MemoryStore::new(), &b.genesis).unwrap();
    a.setup_job(&mut chain_a, 2);
    b.setup_job(&mut chain_b, 2);
    // both are at job 0 with the same nonces: only the chain id tells them apart
    let h0 = a.hospitals[0].clone();
    let to = addr(&a.hospitals[1]);
    let for_a = a.tx(&h0, TxKind::Transfer { to, amount: 7 });
    let for_b = b.tx(&h0, TxKind::Transfer { to, amount: 7 });
    assert_eq!(for_a.tx.nonce, for_b.tx.nonce);
    assert_eq!(chain_b.check_tx(&for_a), Err(TxError::WrongChain));
    let rejected = b.block(&mut chain_b, vec![for_a.clone()]);
    assert_eq!(rejected, vec![TxError::WrongChain]);
    // the round messages of job 0 likewise
    let agg = a.aggregator.clone();
    let open = a.tx(
        &agg,
        TxKind::OpenRound {
            job: 0,
            round: 0,
            params_hash: fedchain_ledger::Hash::default(),
            deadline: 100,
        },
    );
    assert_eq!(chain_b.check_tx(&open), Err(TxError::WrongChain));
    assert_eq!(chain_b.state().precheck(&for_a), Err(TxError::WrongChain));
    // A's own chain takes it
    assert!(a.block(&mut chain_a, vec![for_a]).is_empty());
    assert!(b.block(&mut chain_b, vec![for_b]).is_empty());
    verify_chain(chain_a.store(), &a.genesis).unwrap();
    verify_chain(chain_b.store(), &b.genesis).unwrap();
}

fn build(net: &mut Net, path: &std::path::Path) {
    let mut chain = Chain::open(RocksStore::open(path).unwrap(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A17: the ledger directory of deployment A is replaced by B's (a complete, valid chain).
/// Audited against A's published genesis it fails with `OtherGenesis`; without a genesis the
/// audit passes and says which genesis it holds for. A stored genesis edited to claim A's id
/// does not hash to it.
#[test]
fn a17_audit_refuses_another_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a"), dir.path().join("b"));
    let mut a = Net::new(4, 3);
    let mut b = deployment_b();
    build(&mut a, &pa);
    build(&mut b, &pb);
    let published = a.genesis.chain_id.clone();
    {
        let store = RocksStore::open_existing(&pa).unwrap();
        let (g, report) = audit_ledger(&store, Some(&published), None, None, None).unwrap();
        assert_eq!(g, a.genesis);
        assert_eq!(report.blocks, 4);
    }
    // replace A's ledger by B's
    std::fs::remove_dir_all(&pa).unwrap();
    copy_dir(&pb, &pa);
    let store = RocksStore::open_existing(&pa).unwrap();
    match audit_ledger(&store, Some(&published), None, None, None) {
        Err(AuditError::OtherGenesis { expected, found }) => {
            assert_eq!(expected, published);
            assert_eq!(found, b.genesis.chain_id);
        }
        other => panic!("another chain's ledger passed the audit: {other:?}"),
    }
    // unpinned, the audit holds relative to the genesis it found (B's)
    let (g, _) = audit_ledger(&store, None, None, None, None).unwrap();
    assert_eq!(g.chain_id, b.genesis.chain_id);
    // the stored genesis edited to claim A's id: its content does not hash to it
    let mut forged = b.genesis.clone();
    forged.chain_id = published.clone();
    store
        .raw_put(Column::Meta, b"genesis", &encode(&forged))
        .unwrap();
    match audit_ledger(&store, Some(&published), None, None, None) {
        Err(AuditError::GenesisId { stated, derived }) => {
            assert_eq!(stated, published);
            assert_eq!(derived, b.genesis.chain_id);
        }
        other => panic!("a forged genesis id passed the audit: {other:?}"),
    }
    drop(store);
    // and no chain opens on it
    assert!(matches!(
        Chain::open_existing(RocksStore::open_existing(&pa).unwrap()),
        Err(LedgerError::GenesisId { .. })
    ));
}
