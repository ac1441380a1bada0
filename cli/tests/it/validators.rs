//! Issue #14: validators as processes. Four `fedchain validator` processes, each with its own
//! key (generated in its own bundle, certified by the CA), its own RocksDB replica and its own
//! engine journal, order hospitals' transactions submitted over mutual-TLS QUIC; one is
//! killed with SIGKILL and the others keep finalizing; restarted, it catches up; every
//! replica then passes `fedchain audit --genesis`, which checks each block's finalization
//! against the genesis validator set.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fedchain_ledger::{Hash, Role, SignedTx, Transaction, TxKind};
use fedchain_node::config::ValidatorConfig;
use fedchain_node::material::{load_bundle, load_genesis};
use fedchain_node::validator::ChainClient;

use crate::cluster::{bin, consortium_files, fedchain, lock};

const VALIDATORS: usize = 4;
const HOSPITALS: usize = 3;

fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Validators {
    dir: tempfile::TempDir,
    configs: Vec<ValidatorConfig>,
    procs: Vec<Option<Child>>,
    chain_id: String,
}

impl Validators {
    /// The deployment's files (`consortium_files`: three hospitals, to whom the genesis
    /// allocates, and four validators) and one validator.toml per validator.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        consortium_files(d, HOSPITALS, VALIDATORS);
        let chain_id = load_genesis(&d.join("job")).unwrap().chain_id;
        let p2p: Vec<SocketAddr> = (0..VALIDATORS).map(|_| free_tcp()).collect();
        let configs: Vec<ValidatorConfig> = (0..VALIDATORS)
            .map(|v| ValidatorConfig {
                bundle: d.join(format!("bundles/validator-{v}")),
                job_dir: d.join("job"),
                ledger: d.join(format!("validator-{v}/ledger")),
                consensus_dir: d.join(format!("validator-{v}/consensus")),
                p2p: p2p[v],
                validators: p2p.clone(),
                listen: free_udp(),
                ..ValidatorConfig::default()
            })
            .collect();
        fs::create_dir_all(d.join("logs")).unwrap();
        for (v, c) in configs.iter().enumerate() {
            fs::write(
                d.join(format!("validator-{v}.toml")),
                toml::to_string(c).unwrap(),
            )
            .unwrap();
        }
        Self {
            dir,
            configs,
            procs: (0..VALIDATORS).map(|_| None).collect(),
            chain_id,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn start(&mut self, v: usize) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("logs/validator-{v}.log")))
            .unwrap();
        let child = Command::new(bin())
            .current_dir(self.dir.path())
            .args(["validator", "--config", &format!("validator-{v}.toml")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs[v] = Some(child);
    }

    fn kill9(&mut self, v: usize) {
        let mut c = self.procs[v].take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// SIGTERM, then the exit status must be a success.
    fn stop(&mut self, v: usize) {
        let mut c = self.procs[v].take().unwrap();
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = c.wait().unwrap();
        assert!(
            status.success(),
            "validator {v} stopped with {status}: {}",
            self.log(v)
        );
    }

    fn log(&self, v: usize) -> String {
        fs::read_to_string(self.path(&format!("logs/validator-{v}.log"))).unwrap_or_default()
    }

    fn alive(&mut self, v: usize) {
        if let Some(c) = self.procs[v].as_mut() {
            assert!(
                c.try_wait().unwrap().is_none(),
                "validator {v} exited:\n{}",
                self.log(v)
            );
        }
    }

    /// A hospital's connection to validator `v`, with the hospital's own bundle.
    async fn client(&self, hospital: usize, v: usize) -> ChainClient {
        let bundle = load_bundle(
            &self.path(&format!("bundles/hospital-{hospital}")),
            Role::Hospital,
        )
        .unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            match ChainClient::connect(
                self.configs[v].listen,
                &format!("validator-{v}"),
                &bundle,
                self.configs[v].net.limits(),
            )
            .await
            {
                Ok(c) => return c,
                Err(e) if Instant::now() < end => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("validator {v} unreachable: {e}"),
            }
        }
    }

    /// Hospital `h`'s own `Register`, signed with the key of its bundle.
    fn register(&self, h: usize) -> SignedTx {
        let key = load_bundle(&self.path(&format!("bundles/hospital-{h}")), Role::Hospital)
            .unwrap()
            .signing_key()
            .unwrap();
        Transaction {
            chain_id: self.chain_id.clone(),
            sender: key.verifying_key(),
            nonce: 1,
            kind: TxKind::Register {
                role: Role::Hospital,
                pseudonym: format!("hospital-{h}"),
            },
        }
        .sign(&key)
    }
}

impl Drop for Validators {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The height of the finalized block that holds `tx` on validator `v`, if any yet.
async fn included(client: &ChainClient, tx: &Hash) -> Option<u64> {
    let mut from = 1;
    loop {
        let blocks = client.blocks(from, 64).await.ok()?;
        let last = blocks.last()?.0.header.height;
        for (b, _) in &blocks {
            if b.txs.iter().any(|t| t.hash() == *tx) {
                return Some(b.header.height);
            }
        }
        from = last + 1;
    }
}

/// Wait until each validator in `vs` has `tx` in a finalized block; the heights.
async fn wait_included(c: &mut Validators, vs: &[usize], hospital: usize, tx: &Hash) -> Vec<u64> {
    let end = Instant::now() + Duration::from_secs(90);
    let mut at = Vec::new();
    for &v in vs {
        let client = c.client(hospital, v).await;
        loop {
            c.alive(v);
            if let Some(h) = included(&client, tx).await {
                at.push(h);
                break;
            }
            assert!(
                Instant::now() < end,
                "validator {v} did not finalize the transaction in 90 s:\n{}",
                c.log(v)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    at
}

fn ledger_arg(c: &Validators, v: usize) -> String {
    c.configs[v].ledger.display().to_string()
}

fn audit(c: &Validators, v: usize) -> String {
    fedchain(
        c.dir.path(),
        &["audit", &ledger_arg(c, v), "--genesis", &c.chain_id],
    )
}

#[test]
fn four_validator_processes_finalize_survive_a_kill_and_every_replica_audits_clean() {
    let _guard = lock();
    let mut c = Validators::new();
    for v in 0..VALIDATORS {
        c.start(v);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // hospital 0 registers through validator 0: every replica finalizes it at one height
        let client = c.client(0, 0).await;
        let tx = client.submit(&c.register(0), &[]).await.unwrap().unwrap();
        // a transaction that is not valid at the head is refused with the chain's reason
        let again = client.submit(&c.register(0), &[]).await.unwrap();
        assert!(again.is_err() || again == Ok(tx), "{again:?}");
        let at = wait_included(&mut c, &[0, 1, 2, 3], 0, &tx).await;
        assert!(at.windows(2).all(|w| w[0] == w[1]), "{at:?}");

        // one validator of four killed: the other three keep finalizing
        c.kill9(3);
        let client = c.client(1, 1).await;
        let tx1 = client.submit(&c.register(1), &[]).await.unwrap().unwrap();
        let at1 = wait_included(&mut c, &[0, 1, 2], 1, &tx1).await;
        assert!(at1.windows(2).all(|w| w[0] == w[1]), "{at1:?}");
        assert!(at1[0] > at[0]);

        // restarted, it catches up on what was finalized without it, and takes part again
        c.start(3);
        let back = wait_included(&mut c, &[3], 1, &tx1).await;
        assert_eq!(back[0], at1[0]);
        let client = c.client(2, 3).await;
        let tx2 = client.submit(&c.register(2), &[]).await.unwrap().unwrap();
        let at2 = wait_included(&mut c, &[0, 1, 2, 3], 2, &tx2).await;
        assert!(at2.windows(2).all(|w| w[0] == w[1]), "{at2:?}");
        eprintln!(
            "finalized at heights {} (4 validators), {} (3, one killed), {} (4, after it caught up)",
            at[0], at1[0], at2[0]
        );
        let s = client.status().await.unwrap();
        assert_eq!(s.chain_id, c.chain_id);
        assert_eq!(s.index, 3);
        assert!(s.height >= at2[0]);
    });
    drop(rt);
    for v in 0..VALIDATORS {
        c.stop(v);
    }
    // every replica audits clean from the genesis hash, finalizations checked against the
    // genesis validator set
    let mut heads = Vec::new();
    for v in 0..VALIDATORS {
        let report = audit(&c, v);
        assert!(report.contains("audit ok"), "validator {v}: {report}");
        let store = fedchain_ledger::RocksStore::open_read_only(&c.configs[v].ledger).unwrap();
        heads.push(fedchain_ledger::Store::head(&store).unwrap().unwrap());
    }
    // the replicas agree: at the lowest head height every one holds the same block
    let low = heads.iter().map(|h| h.height).min().unwrap();
    let mut at_low = Vec::new();
    for v in 0..VALIDATORS {
        let store = fedchain_ledger::RocksStore::open_read_only(&c.configs[v].ledger).unwrap();
        let header = fedchain_ledger::Store::header(&store, low)
            .unwrap()
            .unwrap();
        at_low.push(fedchain_ledger::store::header_hash(&header));
    }
    assert!(at_low.windows(2).all(|w| w[0] == w[1]), "{at_low:?}");
    eprintln!(
        "replica heads {:?}, all equal at height {low}",
        heads.iter().map(|h| h.height).collect::<Vec<_>>()
    );
}
