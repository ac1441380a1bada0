//! The ledger benchmark: commit latency of round blocks, audit speed, bytes on disk per round.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::{assemble_qc, vote, Genesis};
use fedchain_ledger::types::{Certificate, Incentives};
use fedchain_ledger::{
    verify_chain, Address, Chain, Hash, JobSpec, RocksStore, Role, SignedTx, Transaction, TxKind,
};
use serde_json::json;

/// Options of `fedchain-bench ledger`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fewer rounds.
    #[arg(long)]
    quick: bool,
    /// Bytes of each submission's payload (a 2048-bit ciphertext vector of 89-value slots:
    /// 512 bytes per 89 parameters, so 256 KiB is about 45k parameters).
    #[arg(long, default_value_t = 256 * 1024)]
    payload_bytes: usize,
    /// Output file (default bench/results/ledger.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Net {
    chain_id: String,
    validators: Vec<SigningKey>,
    nonces: std::collections::HashMap<Address, u64>,
    time: u64,
}

fn key(tag: u8, i: usize) -> SigningKey {
    let mut seed = [tag; 32];
    seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
    SigningKey::from_seed(&seed)
}

impl Net {
    fn tx(&mut self, who: &SigningKey, kind: TxKind) -> SignedTx {
        let n = self
            .nonces
            .entry(Address::of(&who.verifying_key()))
            .or_insert(0);
        *n += 1;
        Transaction {
            chain_id: self.chain_id.clone(),
            sender: who.verifying_key(),
            nonce: *n,
            kind,
        }
        .sign(who)
    }

    /// Propose, certify (all validators) and commit; returns the number of rejected txs.
    fn block(
        &mut self,
        chain: &mut Chain<RocksStore>,
        txs: Vec<SignedTx>,
    ) -> anyhow::Result<usize> {
        self.time += 1000;
        let p = chain.propose(txs, self.time, &self.validators[0]);
        let mut b = p.block;
        let h = b.header.hash();
        let votes: Vec<_> = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u32, vote(k, i as u32, &h)))
            .collect();
        b.cert = Some(Certificate::Replicas(assemble_qc(
            self.validators.len(),
            &votes,
        )?));
        chain.commit(&b)?;
        Ok(p.rejected.len())
    }
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let m = e.metadata().ok();
                    match m {
                        Some(m) if m.is_dir() => dir_size(&e.path()),
                        Some(m) => m.len(),
                        None => 0,
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn scenario(
    hospitals: usize,
    rounds: usize,
    payload_bytes: usize,
) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ledger");
    let validators: Vec<SigningKey> = (0..4).map(|i| key(1, i)).collect();
    let aggregator = key(2, 0);
    let hs: Vec<SigningKey> = (0..hospitals).map(|i| key(3, i)).collect();
    let mut allocations = vec![(Address::of(&aggregator.verifying_key()), 1_000_000u64)];
    allocations.extend(
        hs.iter()
            .map(|h| (Address::of(&h.verifying_key()), 10_000u64)),
    );
    let genesis = Genesis::new(
        "bench",
        0,
        0,
        validators.iter().map(SigningKey::verifying_key).collect(),
        allocations,
    );
    let mut net = Net {
        chain_id: genesis.chain_id.clone(),
        validators,
        nonces: Default::default(),
        time: 0,
    };
    let mut chain = Chain::open(RocksStore::open(&path)?, &genesis)?;
    let mut txs = vec![net.tx(
        &aggregator,
        TxKind::Register {
            role: Role::Aggregator,
            pseudonym: "agg".into(),
        },
    )];
    for (i, h) in hs.iter().enumerate() {
        txs.push(net.tx(
            h,
            TxKind::Register {
                role: Role::Hospital,
                pseudonym: format!("h{i}"),
            },
        ));
    }
    anyhow::ensure!(net.block(&mut chain, txs)? == 0, "registration rejected");
    let spec = JobSpec {
        model_spec_hash: Hash::sha256(b"bench model"),
        threshold_key: vec![0; 64],
        packing: "{}".into(),
        threshold: (hospitals as u32 / 3) + 1,
        committee: hs.iter().map(|h| Address::of(&h.verifying_key())).collect(),
        min_participants: (hospitals as u32 / 3 + 1).max(fedchain_ledger::MIN_PARTICIPANTS),
        max_samples: 1_000,
        incentives: Incentives {
            min_deposit: 100,
            submit_reward: 1000,
            share_reward: 100,
            missed_deadline_permille: 10,
            misbehaviour_permille: 500,
        },
    };
    let create = net.tx(&aggregator, TxKind::CreateJob(spec));
    anyhow::ensure!(net.block(&mut chain, vec![create])? == 0, "job rejected");
    let joins: Vec<_> = hs
        .iter()
        .map(|h| {
            net.tx(
                h,
                TxKind::Join {
                    job: 0,
                    deposit: 1000,
                    samples: 1_000,
                },
            )
        })
        .collect();
    anyhow::ensure!(net.block(&mut chain, joins)? == 0, "joins rejected");
    let size_before = dir_size(&path);
    let (mut commit_ms, mut payload_ms, mut round_ms) = (Vec::new(), Vec::new(), Vec::new());
    let t_share = (hospitals / 3) + 1;
    for r in 0..rounds as u32 {
        let round_start = Instant::now();
        let open = net.tx(
            &aggregator,
            TxKind::OpenRound {
                job: 0,
                round: r,
                params_hash: Hash::sha256(b"theta"),
                deadline: chain.head().height + fedchain_ledger::state::MAX_DEADLINE_BLOCKS,
            },
        );
        net.block(&mut chain, vec![open])?;
        // payloads are written (durably) as submissions are accepted
        let t = Instant::now();
        let mut subs = Vec::with_capacity(hospitals);
        for (i, h) in hs.iter().enumerate() {
            let mut payload = vec![(i % 251) as u8; payload_bytes];
            payload[..4].copy_from_slice(&r.to_be_bytes());
            let d = chain.put_payload(&payload)?;
            subs.push(net.tx(
                h,
                TxKind::Submit {
                    job: 0,
                    round: r,
                    payload: d,
                    samples: 100,
                    payload_bytes: payload_bytes as u64,
                },
            ));
        }
        payload_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        anyhow::ensure!(net.block(&mut chain, subs)? == 0, "submissions rejected");
        commit_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let mut shares = Vec::new();
        for h in &hs[..t_share] {
            let d = chain.put_payload(format!("shares {r} {h:?}").as_bytes())?;
            shares.push(net.tx(
                h,
                TxKind::DecryptionShare {
                    job: 0,
                    round: r,
                    payload: d,
                },
            ));
        }
        net.block(&mut chain, shares)?;
        let accepted: Vec<Address> = hs.iter().map(|h| Address::of(&h.verifying_key())).collect();
        let commit = net.tx(
            &aggregator,
            TxKind::CommitRound {
                job: 0,
                round: r,
                aggregate: Hash::sha256(b"agg"),
                new_params_hash: Hash::sha256(b"theta"),
                share_providers: accepted[..t_share].to_vec(),
                accepted,
            },
        );
        anyhow::ensure!(net.block(&mut chain, vec![commit])? == 0, "commit rejected");
        round_ms.push(round_start.elapsed().as_secs_f64() * 1e3);
    }
    let blocks = chain.head().height + 1;
    let store = chain.into_store();
    drop(store);
    let size_after = dir_size(&path);
    let store = RocksStore::open(&path)?;
    let t = Instant::now();
    let report =
        verify_chain(&store, &genesis).map_err(|e| anyhow::anyhow!("audit failed: {e}"))?;
    let audit_s = t.elapsed().as_secs_f64();
    Ok(json!({
        "hospitals": hospitals,
        "rounds": rounds,
        "payload_bytes": payload_bytes,
        "submission_block_commit_ms_median": median(commit_ms.clone()),
        "submission_block_commit_ms": commit_ms,
        "payload_writes_ms_median": median(payload_ms),
        "whole_round_on_chain_ms_median": median(round_ms),
        "audit": {
            "blocks": report.blocks, "transactions": report.transactions, "payloads_checked": report.payloads_checked,
            "seconds": audit_s, "blocks_per_s": blocks as f64 / audit_s, "transactions_per_s": report.transactions as f64 / audit_s,
            "includes": "BLS signature of every transaction, every quorum certificate, Merkle roots, payload digests, state replay; not the Paillier product or share proofs",
        },
        "bytes_on_disk_per_round": (size_after.saturating_sub(size_before)) as f64 / rounds as f64,
    }))
}

/// Audit speed on a chain of small blocks (one transfer each): the per-block cost of the
/// header, link, certificate and signature checks and the state replay.
fn small_blocks(count: u64) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ledger");
    let validators: Vec<SigningKey> = (0..4).map(|i| key(1, i)).collect();
    let sender = key(2, 0);
    let to = Address::of(&key(3, 0).verifying_key());
    let genesis = Genesis::new(
        "bench",
        0,
        0,
        validators.iter().map(SigningKey::verifying_key).collect(),
        vec![(Address::of(&sender.verifying_key()), 1_000_000)],
    );
    let mut net = Net {
        chain_id: genesis.chain_id.clone(),
        validators,
        nonces: Default::default(),
        time: 0,
    };
    let mut chain = Chain::open(RocksStore::open(&path)?, &genesis)?;
    let reg = net.tx(
        &sender,
        TxKind::Register {
            role: Role::Hospital,
            pseudonym: "s".into(),
        },
    );
    net.block(&mut chain, vec![reg])?;
    let t = Instant::now();
    for _ in 1..count {
        let tx = net.tx(&sender, TxKind::Transfer { to, amount: 1 });
        anyhow::ensure!(net.block(&mut chain, vec![tx])? == 0, "transfer rejected");
    }
    let commit_ms = t.elapsed().as_secs_f64() * 1e3 / (count - 1) as f64;
    drop(chain);
    let store = RocksStore::open(&path)?;
    let t = Instant::now();
    let report =
        verify_chain(&store, &genesis).map_err(|e| anyhow::anyhow!("audit failed: {e}"))?;
    let s = t.elapsed().as_secs_f64();
    Ok(
        json!({ "blocks": report.blocks, "audit_blocks_per_s": report.blocks as f64 / s, "commit_ms_per_block": commit_ms }),
    )
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rounds = if args.quick { 3 } else { 10 };
    let mut results = Vec::new();
    for hospitals in [10usize, 100] {
        eprintln!(
            "ledger: {hospitals} hospitals, {rounds} rounds, {} KiB payloads",
            args.payload_bytes / 1024
        );
        let r = scenario(hospitals, rounds, args.payload_bytes)
            .with_context(|| format!("{hospitals} hospitals"))?;
        println!(
            "{hospitals:>4} submissions: block commit {:.1} ms (median), payload writes {:.1} ms, whole round {:.1} ms; audit {:.0} blocks/s ({:.0} tx/s); {:.1} MB on disk per round",
            r["submission_block_commit_ms_median"].as_f64().unwrap_or(0.0),
            r["payload_writes_ms_median"].as_f64().unwrap_or(0.0),
            r["whole_round_on_chain_ms_median"].as_f64().unwrap_or(0.0),
            r["audit"]["blocks_per_s"].as_f64().unwrap_or(0.0),
            r["audit"]["transactions_per_s"].as_f64().unwrap_or(0.0),
            r["bytes_on_disk_per_round"].as_f64().unwrap_or(0.0) / 1e6,
        );
        results.push(r);
    }
    let small = small_blocks(if args.quick { 200 } else { 1000 })?;
    println!(
        "small blocks (1 transfer each): audit {:.0} blocks/s, commit {:.1} ms per block",
        small["audit_blocks_per_s"].as_f64().unwrap_or(0.0),
        small["commit_ms_per_block"].as_f64().unwrap_or(0.0)
    );
    let out = args
        .out
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results/ledger.json"));
    let report = json!({ "scenarios": results, "small_blocks": small, "cores": rayon::current_num_threads() });
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
