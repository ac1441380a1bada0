//! `fedchain-bench consensus`: the validators' ordering on loopback, measured in one run for
//! each validator-set size. Each validator runs the production assembly
//! (`fedchain_validator::network::start` over TCP with SAKE/CUPS handshakes signed by its BLS
//! key, `fedchain_validator::start` with a RocksDB replica and the simplex engine) on its own
//! commonware tokio runtime in this process; transactions (signed `Register`s of distinct
//! clients) go in through the validators' mailboxes, round-robin. Reported: finalization
//! latency of one transaction (submit to final on validator 0, median), throughput (a burst
//! of transactions, first submit to the last one final everywhere), blocks per second, and
//! the audit of a replica with every finalization checked against the genesis set (blocks per
//! second). Writes bench/results/consensus.json.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use commonware_runtime::{Runner as _, Supervisor as _};
use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::Genesis;
use fedchain_ledger::{
    verify_chain_full, Address, Chain, FinalityRef, Hash, RocksStore, Role, SignedTx, Transaction,
    TxKind,
};
use fedchain_validator::{Mailbox, SimplexFinality, Timing};
use serde::Serialize;

/// Options of `fedchain-bench consensus`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Validator-set sizes to measure.
    #[arg(long = "validators", default_values_t = [4usize, 7])]
    validators: Vec<usize>,
    /// Transactions in the throughput burst.
    #[arg(long, default_value_t = 2000)]
    txs: usize,
    /// Single transactions timed for the latency (median reported).
    #[arg(long, default_value_t = 15)]
    samples: usize,
    /// Output file (default bench/results/consensus.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Row {
    validators: usize,
    latency_ms_median: f64,
    latency_ms_max: f64,
    burst_txs: usize,
    burst_s: f64,
    tps: f64,
    blocks: u64,
    blocks_per_s: f64,
    audit_blocks: u64,
    audit_s: f64,
    audit_blocks_per_s: f64,
}

#[derive(Serialize)]
struct Report {
    command: String,
    machine_cores: usize,
    rows: Vec<Row>,
    note: &'static str,
}

fn free_tcp() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Cluster {
    mailboxes: Vec<Mailbox>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    ledgers: Vec<PathBuf>,
    genesis: Genesis,
    clients: Vec<SigningKey>,
    _dir: tempfile::TempDir,
}

fn boot(n: usize, clients: usize) -> anyhow::Result<Cluster> {
    let dir = tempfile::tempdir()?;
    let keys: Vec<SigningKey> = (0..n)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    let clients: Vec<SigningKey> = (0..clients)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    let genesis = Genesis::new(
        "fedchain-bench-consensus",
        rand::random(),
        now_ms(),
        keys.iter().map(SigningKey::verifying_key).collect(),
        clients
            .iter()
            .map(|c| (Address::of(&c.verifying_key()), 1_000))
            .collect(),
    );
    let p2p: Vec<SocketAddr> = (0..n).map(|_| free_tcp()).collect::<Result<_, _>>()?;
    let (mut mailboxes, mut stops, mut threads, mut ledgers) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, key) in keys.iter().enumerate() {
        let ledger = dir.path().join(format!("validator-{i}/ledger"));
        let journal = dir.path().join(format!("validator-{i}/consensus"));
        std::fs::create_dir_all(&journal)?;
        let store = RocksStore::open(&ledger)?;
        let finality = FinalityRef(Some(Arc::new(SimplexFinality::new())));
        let chain = Chain::open_with(store, &genesis, finality, &mut |_, _| {})?;
        let (mb_tx, mb_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (key, genesis, p2p) = (key.clone(), genesis.clone(), p2p.clone());
        threads.push(std::thread::spawn(move || {
            let cfg = commonware_runtime::tokio::Config::new()
                .with_worker_threads(1)
                .with_storage_directory(journal);
            commonware_runtime::tokio::Runner::new(cfg).start(|context| async move {
                let channels = match fedchain_validator::network::start(
                    context.child("network"),
                    &genesis.chain_id,
                    &key,
                    p2p[i],
                    &genesis.validators,
                    &p2p,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = mb_tx.send(Err(format!("validator {i}: network: {e}")));
                        return;
                    }
                };
                let mailbox = fedchain_validator::start(
                    context.child("validator"),
                    fedchain_validator::Config {
                        chain,
                        key,
                        verifier: None,
                        block_interval: Duration::ZERO,
                    },
                    channels.blocker,
                    "engine".into(),
                    Timing::default(),
                    channels.votes,
                    channels.certificates,
                    channels.resolver,
                    channels.gossip,
                )
                .map_err(|e| format!("validator {i}: {e}"));
                let up = mailbox.is_ok();
                let _ = mb_tx.send(mailbox);
                if !up {
                    return;
                }
                let _ = stopped.await;
            });
        }));
        mailboxes.push(mb_rx.recv()?.map_err(anyhow::Error::msg)?);
        stops.push(stop);
        ledgers.push(ledger);
    }
    Ok(Cluster {
        mailboxes,
        stops,
        threads,
        ledgers,
        genesis,
        clients,
        _dir: dir,
    })
}

fn register(g: &Genesis, key: &SigningKey, i: usize) -> SignedTx {
    Transaction {
        chain_id: g.chain_id.clone(),
        sender: key.verifying_key(),
        nonce: 1,
        kind: TxKind::Register {
            role: Role::Hospital,
            pseudonym: format!("client-{i}"),
        },
    }
    .sign(key)
}

/// What one validator has finalized, read incrementally from its blocks.
#[derive(Default)]
struct Follower {
    from: u64,
    seen: std::collections::HashSet<Hash>,
}

impl Follower {
    async fn poll(&mut self, m: &Mailbox) {
        self.from = self.from.max(1);
        while let Some(batch) = m.blocks(self.from, 64).await {
            let Some((last, _)) = batch.last() else { break };
            self.from = last.header.height + 1;
            self.seen.extend(
                batch
                    .iter()
                    .flat_map(|(b, _)| b.txs.iter())
                    .map(SignedTx::hash),
            );
        }
    }

    /// Poll until `tx` is final (or `limit` passed).
    async fn wait(&mut self, m: &Mailbox, tx: &Hash, limit: Duration) -> anyhow::Result<()> {
        let t = Instant::now();
        while !self.seen.contains(tx) {
            anyhow::ensure!(t.elapsed() < limit, "not final in {limit:?}");
            self.poll(m).await;
            if !self.seen.contains(tx) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        Ok(())
    }
}

async fn measure(n: usize, a: &Args) -> anyhow::Result<Row> {
    let c = boot(n, a.samples + a.txs)?;
    let m = &c.mailboxes;
    let mut followers: Vec<Follower> = (0..n).map(|_| Follower::default()).collect();
    let sub = |i: usize, k: usize| {
        let tx = register(&c.genesis, &c.clients[i], i);
        let m = m[k % n].clone();
        async move { m.submit(tx, vec![]).await.map_err(anyhow::Error::msg) }
    };
    // the network up: a first transaction final everywhere
    let warm = sub(0, 0).await?;
    for (f, mb) in followers.iter_mut().zip(m) {
        f.wait(mb, &warm, Duration::from_secs(60)).await?;
    }
    // latency: one transaction at a time, submit to final on validator 0
    let mut lat = Vec::new();
    for s in 1..a.samples {
        let t = Instant::now();
        let h = sub(s, s).await?;
        followers[0]
            .wait(&m[0], &h, Duration::from_secs(60))
            .await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    // throughput: a burst spread over the validators, until all final on every validator
    let start_head = m[0].status().await.map_or(0, |s| s.head.height);
    let t = Instant::now();
    let mut burst = Vec::with_capacity(a.txs);
    for k in 0..a.txs {
        burst.push(sub(a.samples + k, k).await?);
    }
    for (f, mb) in followers.iter_mut().zip(m) {
        for h in &burst {
            f.wait(mb, h, Duration::from_secs(600)).await?;
        }
    }
    let burst_s = t.elapsed().as_secs_f64();
    let head = m[0].status().await.map_or(0, |s| s.head.height);
    let blocks = head - start_head;
    for s in c.stops {
        let _ = s.send(());
    }
    for th in c.threads {
        let _ = th.join();
    }
    // the audit of validator 0's replica, every finalization checked
    let store = RocksStore::open_read_only(&c.ledgers[0])?;
    let t = Instant::now();
    let report = verify_chain_full(&store, &c.genesis, None, Some(&SimplexFinality::new()))
        .map_err(|e| anyhow::anyhow!("audit: {e}"))?;
    let audit_s = t.elapsed().as_secs_f64();
    Ok(Row {
        validators: n,
        latency_ms_median: lat[lat.len() / 2],
        latency_ms_max: *lat.last().unwrap_or(&0.0),
        burst_txs: a.txs,
        burst_s,
        tps: a.txs as f64 / burst_s,
        blocks,
        blocks_per_s: blocks as f64 / burst_s,
        audit_blocks: report.blocks,
        audit_s,
        audit_blocks_per_s: report.blocks as f64 / audit_s,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for &n in &a.validators {
        anyhow::ensure!(n >= 1, "at least one validator");
        let row = rt.block_on(measure(n, &a))?;
        println!(
            "{n} validators: latency {:.1} ms (median of {}), {} txs in {:.2} s = {:.0} tx/s, \
             {:.1} blocks/s; audit {} blocks in {:.2} s = {:.0} blocks/s",
            row.latency_ms_median,
            a.samples.saturating_sub(1),
            row.burst_txs,
            row.burst_s,
            row.tps,
            row.blocks_per_s,
            row.audit_blocks,
            row.audit_s,
            row.audit_blocks_per_s
        );
        rows.push(row);
    }
    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rows,
        note: "every validator in this process on its own commonware tokio runtime (1 worker \
               thread), TCP on loopback with authenticated p2p, RocksDB replicas, no block \
               interval (blocks as fast as consensus goes), no round verifier (Register \
               transactions only); latency = submit to final on validator 0; tps = a burst \
               round-robin over the validators until final on all; audit = verify_chain_full \
               with SimplexFinality on validator 0's replica",
    };
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("bench/results/consensus.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
