//! Stores that never lie (issue #13): readers change no byte, a damaged log or a store behind
//! its anchor is refused, a directory without a valid store is never a fresh start, the audit
//! checks every column family, one owner per directory. Each test works on a real RocksDB
//! directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fedchain_ledger::dir::{Anchor, ANCHOR_FILE};
use fedchain_ledger::{
    audit_ledger, check_head, verify_chain, AuditError, Chain, Column, Hash, Head, LedgerError,
    RocksStore, Store, StoreError, TxKind,
};

use crate::common::{addr, Net};

/// A ledger of `blocks` transfer blocks after the job setup, closed.
fn build(path: &Path, blocks: usize) -> Net {
    let mut net = Net::new(4, 3);
    let mut chain = Chain::open(RocksStore::open(path).unwrap(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    extend(&mut net, &mut chain, blocks);
    net
}

fn extend(net: &mut Net, chain: &mut Chain<RocksStore>, blocks: usize) {
    let to = addr(&net.hospitals[1]);
    for _ in 0..blocks {
        let k = net.hospitals[0].clone();
        let t = net.tx(&k, TxKind::Transfer { to, amount: 1 });
        assert!(net.block(chain, vec![t]).is_empty());
    }
}

/// SHA-256 of every file under `dir`, by relative path.
fn checksums(dir: &Path) -> BTreeMap<PathBuf, Hash> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        assert!(!p.is_dir(), "a ledger holds no directories");
        out.insert(
            p.strip_prefix(dir).unwrap().to_path_buf(),
            Hash::sha256(&std::fs::read(&p).unwrap()),
        );
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn files_ending(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn set_read_only(dir: &Path, ro: bool) {
    for p in std::iter::once(dir.to_path_buf())
        .chain(std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()))
    {
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        perm.set_readonly(ro);
        std::fs::set_permissions(&p, perm).unwrap();
    }
}

#[test]
fn readers_change_no_byte_and_open_a_read_only_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let net = build(&path, 5);
    // once reopened read-write, the log is flushed into table files: both kinds are present
    drop(RocksStore::open_existing(&path).unwrap());
    let before = checksums(&path);
    let store = RocksStore::open_read_only(&path).unwrap();
    let report = verify_chain(&store, &net.genesis).unwrap();
    assert!(report.blocks > 5);
    assert!(
        store.raw_put(Column::Meta, b"x", b"y").is_err(),
        "a reader wrote"
    );
    drop(store);
    drop(Chain::open_existing(RocksStore::open_read_only(&path).unwrap()).unwrap());
    assert_eq!(checksums(&path), before, "a reader changed the directory");

    let copy = dir.path().join("ro");
    copy_dir(&path, &copy);
    set_read_only(&copy, true);
    let store = RocksStore::open_read_only(&copy).unwrap();
    assert_eq!(verify_chain(&store, &net.genesis).unwrap(), report);
    drop(store);
    assert_eq!(checksums(&copy), before);
    set_read_only(&copy, false);
}

#[test]
fn a_flipped_byte_in_the_log_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    build(&path, 30);
    // the blocks are in the write-ahead log only (never reopened): flip a byte a quarter in
    let log = files_ending(&path, "log").pop().unwrap();
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() / 4;
    bytes[at] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let before = checksums(&path);
    for writer in [false, true] {
        let r = if writer {
            RocksStore::open_existing(&path)
        } else {
            RocksStore::open_read_only(&path)
        };
        match r {
            Err(LedgerError::Open(StoreError::Rocks { reason, .. })) => {
                assert!(reason.contains("Corruption"), "{reason}")
            }
            other => panic!("writer {writer}: {other:?}"),
        }
        assert_eq!(checksums(&path), before, "a failed open changed files");
    }
}

#[test]
fn a_store_behind_its_anchor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let mut net = build(&path, 3);
    let old = dir.path().join("old");
    copy_dir(&path, &old);
    let mut chain = Chain::open(RocksStore::open(&path).unwrap(), &net.genesis).unwrap();
    extend(&mut net, &mut chain, 3);
    let head = chain.head();
    drop(chain);
    assert_eq!(
        Anchor::read(&path).unwrap(),
        Some(Anchor {
            height: head.height,
            hash: head.hash
        })
    );
    // the older copy with the newer anchor: the store lost the last three blocks
    std::fs::copy(path.join(ANCHOR_FILE), old.join(ANCHOR_FILE)).unwrap();
    let before = checksums(&old);
    for r in [
        RocksStore::open_read_only(&old),
        RocksStore::open_existing(&old),
        RocksStore::open(&old),
    ] {
        match r {
            Err(LedgerError::Open(StoreError::BehindAnchor {
                head: h, anchor, ..
            })) => {
                assert_eq!((h, anchor), (head.height - 3, head.height))
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(checksums(&old), before);
    // a damaged anchor is refused too
    let mut a = std::fs::read(path.join(ANCHOR_FILE)).unwrap();
    a[20] ^= 0x01;
    std::fs::write(old.join(ANCHOR_FILE), &a).unwrap();
    assert!(matches!(
        RocksStore::open_read_only(&old),
        Err(LedgerError::Open(StoreError::BadAnchor { .. }))
    ));
}

#[test]
fn a_directory_without_a_valid_store_is_never_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let net = build(&path, 4);
    drop(RocksStore::open_existing(&path).unwrap());
    let tables = files_ending(&path, "sst");
    assert!(!tables.is_empty(), "no table files");

    // CURRENT deleted (issue case 3): every open fails, nothing is written or removed
    let gone = dir.path().join("no-current");
    copy_dir(&path, &gone);
    std::fs::remove_file(gone.join("CURRENT")).unwrap();
    let before = checksums(&gone);
    for _ in 0..2 {
        assert!(matches!(
            RocksStore::open(&gone),
            Err(LedgerError::Open(StoreError::NotALedger { .. }))
        ));
        assert!(matches!(
            RocksStore::open_read_only(&gone),
            Err(LedgerError::Open(StoreError::NotALedger { .. }))
        ));
        assert!(matches!(
            RocksStore::create(&gone),
            Err(LedgerError::Open(StoreError::NotEmpty { .. }))
        ));
    }
    assert_eq!(checksums(&gone), before);

    // MANIFEST truncated to 600 bytes (issue case 2): refused, the table files stay
    let cut = dir.path().join("cut");
    copy_dir(&path, &cut);
    let manifest = std::fs::read_dir(&cut)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("MANIFEST-")
        })
        .unwrap();
    let m = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &m[..600.min(m.len())]).unwrap();
    let before = checksums(&cut);
    assert!(RocksStore::open_read_only(&cut)
        .and_then(|s| verify_chain(&s, &net.genesis).map_err(Into::into))
        .is_err());
    assert!(RocksStore::open(&cut).is_err());
    assert_eq!(
        checksums(&cut),
        before,
        "a failed open changed or removed files"
    );
    assert_eq!(files_ending(&cut, "sst").len(), tables.len());
}

#[test]
fn the_audit_checks_the_tx_index_and_every_payload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let net = build(&path, 3);
    let store = RocksStore::open_existing(&path).unwrap();
    verify_chain(&store, &net.genesis).unwrap();
    let mut entries = Vec::new();
    store
        .scan(Column::Txs, &mut |k, v| {
            entries.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
    assert!(entries.len() > 3);
    let (k, v) = entries[entries.len() / 2].clone();
    let tx_index = |e: AuditError| {
        matches!(
            e,
            AuditError::Corrupt {
                what: "tx index",
                ..
            }
        )
    };
    // a flipped byte in a location, a removed entry, an entry for no transaction
    for at in [7usize, 11] {
        let mut bad = v.clone();
        bad[at] ^= 0x01;
        store.raw_put(Column::Txs, &k, &bad).unwrap();
        let e = verify_chain(&store, &net.genesis).unwrap_err();
        assert!(tx_index(e.clone()), "{e}");
    }
    store.raw_delete(Column::Txs, &k).unwrap();
    let e = verify_chain(&store, &net.genesis).unwrap_err();
    assert!(tx_index(e.clone()), "{e}");
    store.raw_put(Column::Txs, &k, &v).unwrap();
    let mut other = k.clone();
    other[0] ^= 0x01;
    store.raw_put(Column::Txs, &other, &v).unwrap();
    let e = verify_chain(&store, &net.genesis).unwrap_err();
    assert!(tx_index(e.clone()), "{e}");
    store.raw_delete(Column::Txs, &other).unwrap();
    verify_chain(&store, &net.genesis).unwrap();
    // a payload no block references, altered
    let d = store.put_payload(b"unreferenced").unwrap();
    store
        .raw_put(Column::Payloads, &d.0, b"unreferencee")
        .unwrap();
    assert!(matches!(
        verify_chain(&store, &net.genesis),
        Err(AuditError::StoredPayload { .. })
    ));
    store
        .raw_put(Column::Payloads, &d.0, b"unreferenced")
        .unwrap();
    // a block stored above the head
    let h = store.head().unwrap().unwrap().height;
    let top = store.header(h).unwrap().unwrap();
    store
        .raw_put(Column::Headers, &RocksStore::height_key(h + 1), &top)
        .unwrap();
    let e = verify_chain(&store, &net.genesis).unwrap_err();
    assert!(
        matches!(e, AuditError::Corrupt { what: "header", .. }),
        "{e}"
    );
}

#[test]
fn the_audit_refuses_a_head_below_a_known_final_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    let mut net = build(&path, 2);
    let mut chain = Chain::open(RocksStore::open(&path).unwrap(), &net.genesis).unwrap();
    let at = chain.head();
    extend(&mut net, &mut chain, 2);
    let top = chain.head();
    let store = chain.into_store();
    for ok in [at, top] {
        check_head(&store, ok).unwrap();
        audit_ledger(&store, None, Some(ok), None, None).unwrap();
    }
    let above = Head {
        height: top.height + 1,
        hash: top.hash,
    };
    assert!(matches!(
        audit_ledger(&store, None, Some(above), None, None),
        Err(AuditError::BelowHead { .. })
    ));
    let wrong = Head {
        height: at.height,
        hash: top.hash,
    };
    assert!(matches!(
        audit_ledger(&store, None, Some(wrong), None, None),
        Err(AuditError::OtherHead { .. })
    ));
}

#[test]
fn one_writer_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l");
    build(&path, 1);
    let w = RocksStore::open(&path).unwrap();
    assert!(matches!(
        RocksStore::open(&path),
        Err(LedgerError::Open(StoreError::Locked { .. }))
    ));
    // readers need no lock
    RocksStore::open_read_only(&path).unwrap();
    drop(w);
    RocksStore::open(&path).unwrap();
}
