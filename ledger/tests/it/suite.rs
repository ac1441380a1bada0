//! The shared store suite: both stores must behave the same.

use fedchain_ledger::{merkle, verify_chain, Chain, Hash, MemoryStore, RocksStore, Store, TxKind};

use crate::common::{addr, Net};

fn suite<S: Store>(make: impl Fn() -> S, reopen: impl Fn(S) -> S) {
    let mut net = Net::new(4, 3);
    let mut chain = Chain::open(make(), &net.genesis).unwrap();
    assert_eq!(chain.head().height, 0);
    net.setup_job(&mut chain, 2);
    // payloads: content-addressed, durable, checked
    let d = chain.put_payload(b"ciphertexts of hospital 0").unwrap();
    assert_eq!(d, Hash::sha256(b"ciphertexts of hospital 0"));
    assert!(chain.store().has_valid_payload(&d));
    assert!(!chain.store().has_valid_payload(&Hash::sha256(b"absent")));
    let to = addr(&net.hospitals[1]);
    let h0 = net.hospitals[0].clone();
    let t = net.tx(&h0, TxKind::Transfer { to, amount: 5 });
    let th = t.hash();
    assert!(net.block(&mut chain, vec![t]).is_empty());
    let head = chain.head();
    assert_eq!(head.height, 4);
    // tx index and Merkle proof
    let (header, proof) = chain.tx_proof(&th).unwrap().unwrap();
    assert_eq!(header.height, 4);
    assert!(merkle::verify(&header.tx_root, &th, &proof));
    assert!(!merkle::verify(
        &header.tx_root,
        &Hash::sha256(b"x"),
        &proof
    ));
    // pending records: payload and record in one write, listed in sequence order, removable
    let pd = chain
        .store()
        .put_pending(7, b"second", b"pending payload b")
        .unwrap();
    chain
        .store()
        .put_pending(2, b"first", b"pending payload a")
        .unwrap();
    assert_eq!(pd, Hash::sha256(b"pending payload b"));
    assert!(chain.store().has_valid_payload(&pd));
    let state = chain.state().clone();
    // reopen yields exactly the last committed block and state
    let store = reopen(into_store(chain));
    let chain = Chain::open(store, &net.genesis).unwrap();
    assert_eq!(chain.head(), head);
    assert_eq!(chain.state(), &state);
    assert!(chain.store().has_valid_payload(&d));
    assert_eq!(
        chain.store().pending().unwrap(),
        vec![(2, b"first".to_vec()), (7, b"second".to_vec())]
    );
    chain.store().remove_pending(&[2, 99]).unwrap();
    assert_eq!(
        chain.store().pending().unwrap(),
        vec![(7, b"second".to_vec())]
    );
    assert!(chain.store().has_valid_payload(&pd));
    let report = verify_chain(chain.store(), &net.genesis).unwrap();
    assert_eq!(report.blocks, 5);
    // a store of another chain is refused
    let mut other = Net::new(4, 3);
    other.genesis.nonce = 1;
    other.genesis.chain_id = other.genesis.derived_id();
    assert!(matches!(
        Chain::open(into_store(chain), &other.genesis),
        Err(fedchain_ledger::LedgerError::OtherChain { .. })
    ));
}

fn into_store<S: Store>(c: Chain<S>) -> S {
    c.into_store()
}

#[test]
fn memory_store_suite() {
    suite(MemoryStore::new, |s| s);
}

#[test]
fn rocksdb_store_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let p2 = path.clone();
    suite(
        move || RocksStore::open(&path).unwrap(),
        move |s| {
            drop(s);
            RocksStore::open(&p2).unwrap()
        },
    );
}

#[test]
fn merkle_proofs_for_every_leaf_and_size() {
    for n in 1..=17usize {
        let items: Vec<Hash> = (0..n).map(|i| Hash::sha256(&[i as u8])).collect();
        let root = merkle::root(&items);
        for (i, it) in items.iter().enumerate() {
            let p = merkle::prove(&items, i).unwrap();
            assert!(merkle::verify(&root, it, &p), "n={n} i={i}");
            let mut bad = p.clone();
            bad.index = (bad.index + 1) % n as u64;
            if n > 1 {
                assert!(!merkle::verify(&root, it, &bad), "n={n} i={i} moved");
            }
        }
    }
}
