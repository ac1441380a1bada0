//! Flip one byte anywhere in a RocksDB ledger: the audit names the height and the damage.

use fedchain_ledger::{verify_chain, AuditError, Chain, Column, Hash, RocksStore, TxKind};

use crate::common::Net;

fn build(path: &std::path::Path) -> (Net, Hash, u64) {
    let mut net = Net::new(4, 3);
    let mut chain = Chain::open(RocksStore::open(path).unwrap(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    let agg = net.aggregator.clone();
    let t = net.tx(
        &agg,
        TxKind::OpenRound {
            job: 0,
            round: 0,
            params_hash: Hash::default(),
            deadline: 50,
        },
    );
    net.block(&mut chain, vec![t]);
    let d = chain.put_payload(&vec![7u8; 4096]).unwrap();
    let k = net.hospitals[0].clone();
    let s = net.tx(
        &k,
        TxKind::Submit {
            job: 0,
            round: 0,
            payload: d,
            samples: 10,
            payload_bytes: 4096,
        },
    );
    assert!(net.block(&mut chain, vec![s]).is_empty());
    let h = chain.head().height;
    verify_chain(chain.store(), &net.genesis).unwrap();
    (net, d, h)
}

fn flip(store: &RocksStore, col: Column, key: &[u8], at: usize) {
    let mut v = store.raw_get(col, key).unwrap().unwrap();
    let i = at % v.len();
    v[i] ^= 0x01;
    store.raw_put(col, key, &v).unwrap();
}

#[test]
fn flipped_bytes_are_found_with_height_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let (net, payload, head) = build(&path);
    let store = RocksStore::open(&path).unwrap();
    // each case: flip, audit, flip back
    for at in [0usize, 17, 40, 97, 200] {
        for height in [1u64, 3, head] {
            flip(&store, Column::Headers, &RocksStore::height_key(height), at);
            let e = verify_chain(&store, &net.genesis).unwrap_err();
            let named = match &e {
                AuditError::Corrupt {
                    height: h, what, ..
                } => *h == height && *what == "header",
                AuditError::Invalid { height: h, .. } | AuditError::BrokenLink { height: h } => {
                    *h == height || *h == height + 1
                }
                _ => false,
            };
            assert!(named, "header flip at {height}/{at}: {e}");
            flip(&store, Column::Headers, &RocksStore::height_key(height), at);

            flip(&store, Column::Bodies, &RocksStore::height_key(height), at);
            let e = verify_chain(&store, &net.genesis).unwrap_err();
            let named = match &e {
                AuditError::Corrupt {
                    height: h, what, ..
                } => *h == height && *what == "body",
                AuditError::Invalid { height: h, .. } => *h == height,
                _ => false,
            };
            assert!(named, "body flip at {height}/{at}: {e}");
            flip(&store, Column::Bodies, &RocksStore::height_key(height), at);
        }
        flip(&store, Column::State, RocksStore::state_key(), at * 7);
        let e = verify_chain(&store, &net.genesis).unwrap_err();
        assert_eq!(
            e,
            AuditError::StateMismatch { height: head },
            "state flip at {at}"
        );
        flip(&store, Column::State, RocksStore::state_key(), at * 7);

        flip(&store, Column::Payloads, &payload.0, at);
        let e = verify_chain(&store, &net.genesis).unwrap_err();
        assert_eq!(
            e,
            AuditError::Payload {
                height: head,
                digest: payload
            }
        );
        flip(&store, Column::Payloads, &payload.0, at);
    }
    verify_chain(&store, &net.genesis).unwrap();
}
