//! Stores that never lie (issue #13, cases 1-5) through the real binary: a killed `simulate`
//! whose log lost a byte is refused, not audited short; readers change no byte; a damaged
//! MANIFEST or a deleted CURRENT is refused with every file left as it was (the coordinator
//! does not start over); one owner per output directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fedchain_ledger::dir::{Anchor, ANCHOR_FILE};
use fedchain_ledger::{Column, Hash, RocksStore, Store};

use crate::cluster::{bin, fedchain, lock, wait_for_height, Cluster, SMALL_SIMULATE};

const SIM: &[&str] = SMALL_SIMULATE;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run fedchain")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn simulate(dir: &Path, out: &str, rounds: &str) -> Child {
    Command::new(bin())
        .current_dir(dir)
        .args(SIM)
        .args(["--rounds", rounds, "--out", out])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn simulate")
}

/// SHA-256 of every file of a ledger directory.
fn checksums(dir: &Path) -> BTreeMap<PathBuf, Hash> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let h = Hash::sha256(&std::fs::read(&p).expect("read"));
            (p.file_name().expect("name").into(), h)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

fn files_ending(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// A finished 2-round simulation's ledger in `dir/r/ledger`, reopened once as a writer so its
/// blocks are in table files as well as (empty) logs.
fn finished_ledger(dir: &Path) -> PathBuf {
    fedchain(dir, &[SIM, &["--rounds", "2", "--out", "r"]].concat());
    let l = dir.join("r/ledger");
    drop(RocksStore::open_existing(&l).expect("reopen"));
    assert!(!files_ending(&l, "sst").is_empty(), "no table files");
    l
}

/// Issue case 1: SIGKILL a running simulate, copy its ledger, flip one byte a quarter into the
/// newest write-ahead log. Before: `audit` exited 0 reporting 11 of 37 blocks (RocksDB dropped
/// the log's tail) and made the loss permanent. After: the open refuses the log (corruption),
/// nothing in the copy changes, and the undamaged ledger audits at or above its anchor.
#[test]
fn a_killed_simulate_with_a_flipped_log_byte_is_refused_not_audited_short() {
    let _g = lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut child = simulate(d, "r", "100");
    let ledger = d.join("r/ledger");
    wait_for_height(&mut child, &ledger, 12);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    let anchor = Anchor::read(&ledger).expect("anchor").expect("anchor");

    let copy = d.join("copy");
    copy_dir(&ledger, &copy);
    let log = files_ending(&copy, "log").pop().expect("a log file");
    let mut bytes = std::fs::read(&log).expect("read log");
    let at = bytes.len() / 4;
    bytes[at] ^= 0x01;
    std::fs::write(&log, &bytes).expect("write log");
    let before = checksums(&copy);
    for args in [&["audit", "copy"][..], &["inspect", "copy"][..]] {
        let o = run(d, args);
        assert!(!o.status.success(), "{args:?} succeeded:\n{}", text(&o));
        assert!(text(&o).contains("Corruption"), "{}", text(&o));
    }
    assert_eq!(checksums(&copy), before, "a failed audit changed the copy");

    let o = run(d, &["audit", "r/ledger"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let blocks: u64 = t
        .split("audit ok: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("block count");
    assert!(
        blocks > anchor.height,
        "{blocks} blocks, anchor {}",
        anchor.height
    );
    // --head: the anchor's block is known final; one above the head is refused
    let at = format!("{}:{}", anchor.height, hex::encode(anchor.hash.0));
    assert!(run(d, &["audit", "r/ledger", "--head", &at])
        .status
        .success());
    let above = format!("{}:{}", blocks + 5, hex::encode(anchor.hash.0));
    let o = run(d, &["audit", "r/ledger", "--head", &above]);
    assert!(
        !o.status.success() && text(&o).contains("below the known final height"),
        "{}",
        text(&o)
    );
}

/// Issue case 4: `audit` and `inspect` change no byte of the ledger (before: MANIFEST,
/// CURRENT, OPTIONS and LOG were rewritten) and open a copy made read-only; a flipped byte in
/// the `txs` column family fails the audit (before: the index was never checked).
#[test]
fn readers_change_no_byte_and_the_tx_index_is_audited() {
    let _g = lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let l = finished_ledger(d);
    let before = checksums(&l);
    let audit = fedchain(d, &["audit", "r/ledger"]);
    assert!(audit.contains("audit ok"), "{audit}");
    fedchain(d, &["inspect", "r/ledger"]);
    assert_eq!(checksums(&l), before, "a reader changed the ledger");

    let ro = d.join("ro");
    copy_dir(&l, &ro);
    let chmod = |mode: &str| {
        let st = Command::new("chmod")
            .args(["-R", mode])
            .arg(&ro)
            .status()
            .expect("chmod");
        assert!(st.success());
    };
    chmod("a-w");
    let o = run(d, &["audit", "ro"]);
    let i = run(d, &["inspect", "ro"]);
    chmod("u+w");
    assert!(o.status.success(), "{}", text(&o));
    assert!(i.status.success(), "{}", text(&i));
    assert_eq!(checksums(&ro), before);

    // one flipped byte in a tx index entry
    let store = RocksStore::open_existing(&ro).expect("open");
    let mut entry = None;
    store
        .scan(Column::Txs, &mut |k, v| {
            entry.get_or_insert((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .expect("scan");
    let (k, mut v) = entry.expect("an index entry");
    v[11] ^= 0x01;
    store.raw_put(Column::Txs, &k, &v).expect("put");
    drop(store);
    let o = run(d, &["audit", "ro"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("tx index"), "{}", text(&o));
}

/// Issue case 2: a MANIFEST truncated to 600 bytes. Before: `audit` exited 1 and the table
/// files were gone afterwards. After: refused, every file as it was.
#[test]
fn a_truncated_manifest_is_refused_and_nothing_is_deleted() {
    let _g = lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let l = finished_ledger(d);
    let manifest = std::fs::read_dir(&l)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("MANIFEST-"))
        })
        .expect("MANIFEST");
    let m = std::fs::read(&manifest).expect("read");
    std::fs::write(&manifest, &m[..600.min(m.len())]).expect("truncate");
    let before = checksums(&l);
    for args in [&["audit", "r/ledger"][..], &["inspect", "r/ledger"][..]] {
        let o = run(d, args);
        assert!(!o.status.success(), "{args:?}:\n{}", text(&o));
    }
    assert_eq!(checksums(&l), before, "files changed or were deleted");
}

/// Issue case 3: delete CURRENT in a coordinator's ledger and start the coordinator twice.
/// Before: the first start failed but wrote an empty CURRENT, the second said "fresh ledger"
/// and the old table files were gone. After: both starts fail naming the directory, no file
/// is written or removed, and the ledger (CURRENT put back) audits as before.
#[test]
fn a_coordinator_never_starts_over_on_a_ledger_without_current() {
    let _g = lock();
    let mut c = Cluster::new(4, 1);
    c.start_all();
    assert!(c.wait_coordinator(240), "coordinator failed\n{}", c.logs());
    c.wait_workers(60);
    let (audit, _) = c.audit();
    let l = c.dir.path().join(&c.coordinator.ledger);
    drop(RocksStore::open_existing(&l).expect("reopen"));
    let current = std::fs::read(l.join("CURRENT")).expect("CURRENT");
    std::fs::remove_file(l.join("CURRENT")).expect("rm CURRENT");
    let before = checksums(&l);
    for _ in 0..2 {
        let o = run(
            c.dir.path(),
            &["coordinator", "--config", "coordinator.toml"],
        );
        let t = text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(t.contains("is not a fedchain ledger"), "{t}");
        assert!(!t.contains("fresh ledger"), "{t}");
        assert_eq!(checksums(&l), before, "a failed start changed the ledger");
    }
    std::fs::write(l.join("CURRENT"), current).expect("restore CURRENT");
    assert!(l.join(ANCHOR_FILE).exists());
    // the same audit (up to its elapsed time)
    let same = |a: &str| a.rsplit_once(", ").map(|(x, _)| x.to_string());
    assert_eq!(same(&c.audit().0), same(&audit));
}

/// Issue case 5: `simulate --out r` running, then `simulate --out r --force`. Before: the
/// second deleted the live ledger and both exited 0. After: the second is refused while the
/// first holds the directory, and the first finishes with a ledger that audits.
#[test]
fn force_refuses_a_directory_another_run_owns() {
    let _g = lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut first = simulate(d, "r", "3");
    let ledger = d.join("r/ledger");
    let end = Instant::now() + Duration::from_secs(120);
    while Anchor::read(&ledger).ok().flatten().is_none() {
        assert!(Instant::now() < end, "no ledger after 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = run(
        d,
        &[SIM, &["--rounds", "1", "--out", "r", "--force"]].concat(),
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("in use by another process"), "{t}");
    assert!(
        first.wait().expect("wait").success(),
        "the first run failed"
    );
    let audit = fedchain(d, &["audit", "r/ledger"]);
    assert!(audit.contains("audit ok"), "{audit}");
    // once the owner is gone, --force replaces the ledger
    fedchain(
        d,
        &[SIM, &["--rounds", "1", "--out", "r", "--force"]].concat(),
    );
}
