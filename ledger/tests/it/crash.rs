//! Crash test: a child process commits blocks in a loop and is killed with SIGKILL at random
//! moments; reopening always yields a valid chain whose last block is complete.

use std::process::{Command, Stdio};
use std::time::Duration;

use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::{assemble_qc, vote};
use fedchain_ledger::types::Certificate;
use fedchain_ledger::{verify_chain, Address, Chain, RocksStore, Role, Transaction, TxKind};
use rand::{Rng, SeedableRng};

use crate::common::{addr, Net};

const DIR_VAR: &str = "FEDCHAIN_CRASH_DIR";

/// The child's loop. Ignored in normal runs: `sigkill_during_commits` starts it in a child
/// process (the same test binary, by name) and kills it.
#[test]
#[ignore = "run only as the child of sigkill_during_commits"]
fn child_commits_forever() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let net = Net::new(4, 2);
    let mut chain = Chain::open(RocksStore::open(&dir).unwrap(), &net.genesis).unwrap();
    let from: SigningKey = net.aggregator.clone();
    let to: Address = addr(&net.hospitals[0]);
    let all: Vec<usize> = (0..4).collect();
    loop {
        let nonce = chain.state().nonces.get(&addr(&from)).copied().unwrap_or(0) + 1;
        // a payload write between commits, as a round does
        chain.put_payload(&nonce.to_be_bytes().repeat(512)).unwrap();
        let kind = if chain.state().participants.contains_key(&addr(&from)) {
            TxKind::Transfer { to, amount: 1 }
        } else {
            TxKind::Register {
                role: Role::Aggregator,
                pseudonym: "agg".into(),
            }
        };
        let tx = Transaction {
            chain_id: net.genesis.chain_id.clone(),
            sender: from.verifying_key(),
            nonce,
            kind,
        }
        .sign(&from);
        let t = chain.state().timestamp_ms + 1;
        let mut b = chain.propose(vec![tx], t, &net.validators[0]).block;
        let h = b.header.hash();
        let votes: Vec<_> = all
            .iter()
            .map(|&i| (i as u32, vote(&net.validators[i], i as u32, &h)))
            .collect();
        b.cert = Some(Certificate::Replicas(assemble_qc(4, &votes).unwrap()));
        assert_eq!(b.txs.len(), 1, "the child's transaction was rejected");
        chain.commit(&b).unwrap();
        println!("committed {}", b.header.height);
    }
}

#[test]
fn sigkill_during_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let exe = std::env::current_exe().unwrap();
    let net = Net::new(4, 2);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let mut last = 0u64;
    for round in 0..6 {
        let mut child = Command::new(&exe)
            .args([
                "crash::child_commits_forever",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(150..900)));
        child.kill().unwrap(); // SIGKILL on unix
        child.wait().unwrap();
        let store = RocksStore::open(&path).unwrap();
        let report = verify_chain(&store, &net.genesis)
            .unwrap_or_else(|e| panic!("after kill {round}: {e}"));
        let chain = Chain::open(store, &net.genesis).unwrap();
        assert_eq!(chain.head().height + 1, report.blocks);
        assert!(chain.head().height >= last, "the chain went back");
        // every committed block is complete: block 1 registers, each later one transfers 1
        let h = chain.head().height;
        assert_eq!(
            chain.state().balance(&addr(&net.hospitals[0])),
            10_000 + h.saturating_sub(1)
        );
        last = chain.head().height;
    }
    assert!(last > 0, "the child never committed");
}
