//! The aggregator's ledger: it signs the aggregator's transactions and gets them into final
//! blocks, one of two ways.
//!
//! - In process (`fedchain simulate`, and a coordinator given validator bundles): it proposes
//!   blocks, has every validator replica re-execute them (state transition, and for committed
//!   rounds the [`FedchainVerifier`]'s cryptography) and vote, and commits each block with its
//!   BLS quorum certificate to its RocksDB chain and to every replica.
//! - Following validators ([`Ledger::open_following`]): it holds no validator key; it submits
//!   its transactions with their payloads to the validators through a [`Finalizer`] and
//!   commits the finalized blocks they serve to its RocksDB chain, each run re-executed and
//!   its finalization checked against the genesis validator set
//!   ([`Chain::commit_final_run`]). Blocks then also hold what others submitted directly.

use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::{assemble_qc, vote, Genesis};
use fedchain_ledger::types::{encode, Block, Certificate};
use fedchain_ledger::{
    claims_of_block, Address, Chain, Hash, MemoryStore, RocksStore, SignedTx, Store, Transaction,
    TxKind, TxTag,
};
use rayon::prelude::*;

use crate::simulate::{Result, SimError};
use crate::verify::FedchainVerifier;

/// Finalized blocks with the payloads each references, ending on a certified block.
pub type FinalRun = Vec<(Block, Vec<Vec<u8>>)>;

/// The validators as a member reaches them (implemented over the network by the node).
pub trait Finalizer: Send + std::fmt::Debug {
    /// Hand one signed transaction with the payloads it references to the validators:
    /// `Err(reason)` when they refuse it at their head.
    fn submit(&mut self, tx: &SignedTx, payloads: Vec<Vec<u8>>) -> std::result::Result<(), String>;

    /// [`Self::submit`] for transactions meant to share a block; one verdict each, in order.
    fn submit_all(
        &mut self,
        txs: Vec<(SignedTx, Vec<Vec<u8>>)>,
    ) -> Vec<std::result::Result<(), String>> {
        txs.into_iter().map(|(t, p)| self.submit(&t, p)).collect()
    }

    /// Finalized blocks after `height`, each with its payloads, ending on a certified block;
    /// with `wait`, waits a little for one when there is none yet; may return none. `Err`
    /// when no validator can be reached.
    fn blocks_after(&mut self, height: u64, wait: bool) -> std::result::Result<FinalRun, String>;
}

/// Rounds of [`Finalizer::blocks_after`] (each waiting a little) a submitted transaction may
/// take to become final before it counts as dropped.
pub const FOLLOW_ATTEMPTS: usize = 600;

/// How blocks become final.
#[derive(Debug)]
enum Producer {
    /// Validator replicas in process, with their keys.
    Replicas {
        replicas: Vec<Chain<MemoryStore>>,
        validators: Vec<SigningKey>,
    },
    /// Independent validators.
    Validators(Box<dyn Finalizer>),
}

/// The aggregator's ledger (see the module doc).
#[derive(Debug)]
pub struct Ledger {
    pub(crate) chain: Chain<RocksStore>,
    producer: Producer,
    pub(crate) aggregator: SigningKey,
    aggregator_nonce: u64,
    time_ms: u64,
    /// Bytes written to the chain so far (payloads, headers, bodies).
    pub bytes: u64,
    dropped_total: u64,
}

impl Ledger {
    /// A ledger on a fresh (or existing) RocksDB chain in `dir`, with one in-memory replica per
    /// validator. On an existing chain every replica starts from the state stored with the
    /// head block, checked against the head's certified header (`Chain::from_snapshot`: the
    /// head's quorum certificate and state root), with the payloads of the open rounds, so a
    /// restart costs what the open round needs, not the length of the chain. A stored state
    /// that does not match its head is rebuilt by a full replay (`Recovery::Replayed`, for
    /// the caller to warn about). The aggregator continues after its last nonce on chain.
    pub fn open(
        dir: &std::path::Path,
        genesis: &Genesis,
        validators: Vec<SigningKey>,
        aggregator: SigningKey,
    ) -> Result<Self> {
        Self::open_observed(dir, genesis, validators, aggregator, &mut |_, _| {})
    }

    /// [`Ledger::open`], reporting `progress(done, total)` of a fallback replay.
    pub fn open_observed(
        dir: &std::path::Path,
        genesis: &Genesis,
        validators: Vec<SigningKey>,
        aggregator: SigningKey,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let chain = Chain::open_observed(RocksStore::open(dir)?, genesis, progress)?;
        let head = chain.head().height;
        let head_block = chain
            .block(head)?
            .ok_or_else(|| SimError::Refused(format!("block {head} missing from the store")))?;
        let payloads = open_round_payloads(&chain);
        let replicas = (0..validators.len())
            .map(|_| {
                let store = MemoryStore::new();
                for p in &payloads {
                    store.put_payload(p)?;
                }
                Chain::from_snapshot(store, genesis, &head_block, chain.state().clone())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::with(chain, replicas, genesis, validators, aggregator)
    }

    /// The ledger as it was opened before snapshots: every replica replays every committed
    /// block (each checked with its certificate). Kept to measure restarts against
    /// (`fedchain-bench restart`) and to check that both give the same replicas.
    pub fn open_replaying(
        dir: &std::path::Path,
        genesis: &Genesis,
        validators: Vec<SigningKey>,
        aggregator: SigningKey,
    ) -> Result<Self> {
        let chain = Chain::open(RocksStore::open(dir)?, genesis)?;
        let mut replicas = (0..validators.len())
            .map(|_| Chain::open(MemoryStore::new(), genesis))
            .collect::<Result<Vec<_>, _>>()?;
        let head = chain.head().height;
        for h in 1..=head {
            let block = chain
                .block(h)?
                .ok_or_else(|| SimError::Refused(format!("block {h} missing from the store")))?;
            let payloads = payloads_of(&chain, &block);
            for r in &mut replicas {
                for p in &payloads {
                    r.put_payload(p)?;
                }
                r.commit(&block)?;
            }
        }
        Self::with(chain, replicas, genesis, validators, aggregator)
    }

    /// The aggregator's chain in `dir` as a follower of independent validators: opened (or
    /// created) with `finality`, the check of the validators' certificates, then brought up to
    /// what they finalized. It holds no validator key.
    pub fn open_following(
        dir: &std::path::Path,
        genesis: &Genesis,
        aggregator: SigningKey,
        finality: fedchain_ledger::FinalityRef,
        finalizer: Box<dyn Finalizer>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let chain = Chain::open_with(RocksStore::open(dir)?, genesis, finality, progress)?;
        let mut l =
            Self::with_producer(chain, Producer::Validators(finalizer), genesis, aggregator);
        l.catch_up()?;
        Ok(l)
    }

    /// Commit what the validators finalized after this chain's head; the number of blocks.
    pub fn catch_up(&mut self) -> Result<u64> {
        match &mut self.producer {
            Producer::Validators(f) => catch_up(&mut self.chain, &mut self.bytes, f.as_mut()),
            Producer::Replicas { .. } => Ok(0),
        }
    }

    fn with(
        chain: Chain<RocksStore>,
        replicas: Vec<Chain<MemoryStore>>,
        genesis: &Genesis,
        validators: Vec<SigningKey>,
        aggregator: SigningKey,
    ) -> Result<Self> {
        let producer = Producer::Replicas {
            replicas,
            validators,
        };
        Ok(Self::with_producer(chain, producer, genesis, aggregator))
    }

    fn with_producer(
        chain: Chain<RocksStore>,
        producer: Producer,
        genesis: &Genesis,
        aggregator: SigningKey,
    ) -> Self {
        let state = chain.state();
        let aggregator_nonce = state
            .nonces
            .get(&Address::of(&aggregator.verifying_key()))
            .copied()
            .unwrap_or(0);
        let time_ms = state.timestamp_ms.max(genesis.timestamp_ms);
        Self {
            chain,
            producer,
            aggregator,
            aggregator_nonce,
            time_ms,
            bytes: 0,
            dropped_total: 0,
        }
    }

    /// The aggregator's chain.
    pub fn chain(&self) -> &Chain<RocksStore> {
        &self.chain
    }

    /// The aggregator's address.
    pub fn aggregator(&self) -> Address {
        Address::of(&self.aggregator.verifying_key())
    }

    /// Sign an aggregator transaction with the next nonce.
    pub fn sign(&mut self, kind: TxKind) -> SignedTx {
        self.aggregator_nonce += 1;
        Transaction {
            chain_id: self.chain.state().chain_id.clone(),
            sender: self.aggregator.verifying_key(),
            nonce: self.aggregator_nonce,
            kind,
        }
        .sign(&self.aggregator)
    }

    /// Store a payload (durable on return).
    pub fn put_payload(&mut self, bytes: &[u8]) -> Result<Hash> {
        self.bytes += bytes.len() as u64;
        Ok(self.chain.put_payload(bytes)?)
    }

    /// A block one second after the previous one (the simulation's clock).
    pub fn block(&mut self, txs: Vec<SignedTx>) -> Result<Vec<Dropped>> {
        let t = self.time_ms + 1000;
        self.block_at(txs, t)
    }

    /// Propose a block stamped `time_ms` (at least one millisecond after the previous block),
    /// have every validator re-execute it (state transition, the cryptography of committed
    /// rounds and the evidence of penalties) and vote, then commit it with its certificate on
    /// the aggregator's RocksDB ledger and on every replica.
    ///
    /// A candidate the chain rules refuse, or whose claim the verifier refutes, is left out of
    /// the block and returned as [`Dropped`] (the caller logs and counts it): no transaction
    /// stops the ledger. Also counted in [`Self::dropped_total`].
    ///
    /// Following validators, `time_ms` is theirs to choose: the transactions are submitted
    /// and the call returns once each is final or dropped (see [`FOLLOW_ATTEMPTS`]).
    pub fn block_at(&mut self, txs: Vec<SignedTx>, time_ms: u64) -> Result<Vec<Dropped>> {
        let (replicas, validators) = match &mut self.producer {
            Producer::Validators(f) => {
                let dropped = follow(&mut self.chain, &mut self.bytes, f.as_mut(), txs)?;
                // a dropped transaction of ours leaves its nonce unused: continue from the
                // chain's
                let me = Address::of(&self.aggregator.verifying_key());
                self.aggregator_nonce = self.chain.state().nonces.get(&me).copied().unwrap_or(0);
                self.dropped_total += dropped.len() as u64;
                return Ok(dropped);
            }
            Producer::Replicas {
                replicas,
                validators,
            } => (replicas, validators),
        };
        self.time_ms = time_ms.max(self.time_ms + 1);
        let mut candidates = txs;
        let mut dropped = Vec::new();
        let mut block = loop {
            let p = self
                .chain
                .propose(candidates.clone(), self.time_ms, &validators[0]);
            dropped.extend(p.rejected.iter().map(|(t, e)| Dropped {
                tx: t.hash(),
                kind: t.tx.kind.tag(),
                reason: e.to_string(),
            }));
            // what only the cryptography can check, before any validator sees the block
            let mut claims = Vec::new();
            claims_of_block(self.chain.state(), &p.block, &mut claims);
            let store = self.chain.store();
            let get = |d: &Hash| store.payload(d).ok().flatten();
            let refuted: Vec<(Hash, String)> = claims
                .par_iter()
                .filter_map(|c| c.verify(&FedchainVerifier, &get).err().map(|e| (c.tx(), e)))
                .collect();
            if refuted.is_empty() {
                break p.block;
            }
            candidates = p.block.txs;
            for (h, reason) in refuted {
                if let Some(t) = candidates.iter().find(|t| t.hash() == h) {
                    dropped.push(Dropped {
                        tx: h,
                        kind: t.tx.kind.tag(),
                        reason,
                    });
                }
                candidates.retain(|t| t.hash() != h);
            }
        };
        self.dropped_total += dropped.len() as u64;
        let payloads = payloads_of(&self.chain, &block);
        let height = block.header.height;
        let header_hash = block.header.hash();
        let votes = replicas
            .par_iter()
            .enumerate()
            .map(|(i, replica)| {
                for p in &payloads {
                    replica.put_payload(p)?;
                }
                replica.validate(&block).map_err(|e| SimError::Validator {
                    height,
                    reason: e.to_string(),
                })?;
                let mut claims = Vec::new();
                claims_of_block(replica.state(), &block, &mut claims);
                let get = |d: &Hash| replica.store().payload(d).ok().flatten();
                for c in &claims {
                    c.verify(&FedchainVerifier, &get)
                        .map_err(|reason| SimError::Validator { height, reason })?;
                }
                Ok((i as u32, vote(&validators[i], i as u32, &header_hash)))
            })
            .collect::<Result<Vec<_>>>()?;
        block.cert = Some(Certificate::Replicas(
            assemble_qc(validators.len(), &votes).map_err(|e| SimError::Validator {
                height,
                reason: e.to_string(),
            })?,
        ));
        self.bytes +=
            (encode(&block.header).len() + encode(&(&block.txs, &block.cert)).len()) as u64;
        self.chain.commit(&block)?;
        for r in replicas.iter_mut() {
            r.commit(&block)?;
        }
        Ok(dropped)
    }

    /// One more block: with transactions, [`Self::block`]; without, the next block the
    /// validators finalize (they make empty blocks by themselves: what waiting for a height
    /// means), or an empty one proposed here with replicas.
    pub fn next_block(&mut self, txs: Vec<SignedTx>) -> Result<Vec<Dropped>> {
        if let (true, Producer::Validators(f)) = (txs.is_empty(), &mut self.producer) {
            let run = f
                .blocks_after(self.chain.head().height, true)
                .map_err(SimError::Refused)?;
            commit_run(&mut self.chain, &mut self.bytes, run)?;
            return Ok(Vec::new());
        }
        self.block(txs)
    }

    /// [`Self::block`] where every transaction must be included (a bootstrap, the simulation's
    /// own round transactions): a dropped one is an error naming it.
    pub fn block_all(&mut self, txs: Vec<SignedTx>) -> Result<()> {
        match self.block(txs)?.first() {
            None => Ok(()),
            Some(d) => Err(SimError::Refused(format!(
                "{:?} refused by the chain: {}",
                d.kind, d.reason
            ))),
        }
    }

    /// Transactions left out of blocks since this ledger was opened.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Height of the last committed block.
    pub fn height(&self) -> u64 {
        self.chain.head().height
    }
}

/// The payloads validators need for `block`: referenced by its transactions or by parameter
/// hashes (those present in the aggregator's store).
/// A transaction a block left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub tx: Hash,
    pub kind: TxTag,
    pub reason: String,
}

/// The payloads a replica started from a snapshot needs to validate what follows: each job's
/// current parameters and, of its open round, the starting parameters, every submission
/// (rejected ones too: penalty evidence) and every decryption share.
fn open_round_payloads(chain: &Chain<RocksStore>) -> Vec<Vec<u8>> {
    let mut digests: Vec<Hash> = Vec::new();
    for j in chain.state().jobs.values() {
        digests.extend(j.current_params);
        if let Some(o) = &j.open {
            digests.push(o.params_hash);
            digests.extend(o.submissions.values().map(|x| x.payload));
            digests.extend(o.shares.values().map(|(d, _)| *d));
        }
    }
    digests
        .iter()
        .filter_map(|d| chain.store().payload(d).ok().flatten())
        .collect()
}

/// A replica's view, to compare replicas started differently (tests, benchmarks).
impl Ledger {
    /// Each replica's head and state root.
    pub fn replica_heads(&self) -> Vec<(Hash, Hash)> {
        match &self.producer {
            Producer::Replicas { replicas, .. } => replicas
                .iter()
                .map(|r| (r.head().hash, r.state().root()))
                .collect(),
            Producer::Validators(_) => Vec::new(),
        }
    }
}

/// Commit what the validators finalized after `chain`'s head (each run re-executed, its
/// finalization checked: [`commit_run`]); the number of blocks. `bytes` counts what was
/// written. Also what a hospital following the chain runs.
pub fn catch_up(
    chain: &mut Chain<RocksStore>,
    bytes: &mut u64,
    f: &mut dyn Finalizer,
) -> Result<u64> {
    let mut n = 0;
    loop {
        let batch = f
            .blocks_after(chain.head().height, false)
            .map_err(SimError::Refused)?;
        if batch.is_empty() {
            return Ok(n);
        }
        n += commit_run(chain, bytes, batch)?;
    }
}

/// Commit one served run: its payloads first, then the blocks, only if its last
/// finalization verifies ([`Chain::commit_final_run`]).
pub fn commit_run(chain: &mut Chain<RocksStore>, bytes: &mut u64, batch: FinalRun) -> Result<u64> {
    let mut blocks = Vec::with_capacity(batch.len());
    for (b, payloads) in batch {
        for p in &payloads {
            chain.put_payload(p)?;
        }
        *bytes += (encode(&b.header).len() + encode(&(&b.txs, &b.cert)).len()) as u64;
        blocks.push(b);
    }
    chain.commit_final_run(&blocks)?;
    Ok(blocks.len() as u64)
}

/// [`Ledger::block_at`] through the validators: submit, then follow finalized blocks until
/// every accepted transaction is in one. Without transactions: commit what they finalized
/// meanwhile, without waiting.
fn follow(
    chain: &mut Chain<RocksStore>,
    bytes: &mut u64,
    f: &mut dyn Finalizer,
    txs: Vec<SignedTx>,
) -> Result<Vec<Dropped>> {
    if txs.is_empty() {
        // nothing to wait for: the validators make blocks by themselves
        catch_up(chain, bytes, f)?;
        return Ok(Vec::new());
    }
    let mut dropped = Vec::new();
    let mut refused = Vec::new();
    let mut waiting: std::collections::HashMap<Hash, TxTag> = Default::default();
    let batch: Vec<(SignedTx, Vec<Vec<u8>>)> = txs
        .into_iter()
        .map(|t| {
            let payloads = tx_payloads(chain, std::slice::from_ref(&t));
            (t, payloads)
        })
        .collect();
    let txs: Vec<SignedTx> = batch.iter().map(|(t, _)| t.clone()).collect();
    for (t, verdict) in txs.into_iter().zip(f.submit_all(batch)) {
        match verdict {
            Ok(()) => {
                waiting.insert(t.hash(), t.tx.kind.tag());
            }
            Err(reason) => refused.push((t, reason)),
        }
    }
    if !refused.is_empty() {
        // a hospital's transaction relayed here may already be final: its sender gave it to
        // the validators directly as well (THREAT-MODEL A7), and that is not a drop
        catch_up(chain, bytes, f)?;
        for (t, reason) in refused {
            if !is_final(chain, &t.hash()) {
                dropped.push(Dropped {
                    tx: t.hash(),
                    kind: t.tx.kind.tag(),
                    reason,
                });
            }
        }
    }
    for _ in 0..FOLLOW_ATTEMPTS {
        // final already (also in blocks the catch-up above committed)
        waiting.retain(|h, _| !is_final(chain, h));
        if waiting.is_empty() {
            break;
        }
        let batch = f
            .blocks_after(chain.head().height, true)
            .map_err(SimError::Refused)?;
        commit_run(chain, bytes, batch)?;
    }
    waiting.retain(|h, _| !is_final(chain, h));
    for (tx, kind) in waiting {
        dropped.push(Dropped {
            tx,
            kind,
            reason: format!(
                "not in a finalized block after {FOLLOW_ATTEMPTS} requests to the validators"
            ),
        });
    }
    Ok(dropped)
}

/// The embedded validators of `fedchain simulate`.
impl Finalizer for fedchain_validator::embedded::Embedded {
    fn submit(&mut self, tx: &SignedTx, payloads: Vec<Vec<u8>>) -> std::result::Result<(), String> {
        let mut r = self.submit_all(vec![(tx.clone(), payloads)]);
        r.pop().unwrap_or_else(|| Err("no verdict".into()))
    }

    fn submit_all(
        &mut self,
        txs: Vec<(SignedTx, Vec<Vec<u8>>)>,
    ) -> Vec<std::result::Result<(), String>> {
        fedchain_validator::embedded::Embedded::submit_all(self, txs)
    }

    fn blocks_after(&mut self, height: u64, wait: bool) -> std::result::Result<FinalRun, String> {
        fedchain_validator::embedded::Embedded::blocks_after(self, height, wait)
    }
}

/// The transaction is in a block this replica committed.
fn is_final(chain: &Chain<RocksStore>, tx: &Hash) -> bool {
    matches!(chain.store().tx_location(tx), Ok(Some(_)))
}

fn payloads_of(chain: &Chain<RocksStore>, block: &Block) -> Vec<Vec<u8>> {
    tx_payloads(chain, &block.txs)
}

/// The payloads validators need for `txs`: referenced by them or by parameter hashes (those
/// present in the aggregator's store).
fn tx_payloads(chain: &Chain<RocksStore>, txs: &[SignedTx]) -> Vec<Vec<u8>> {
    txs.iter()
        .flat_map(|t| t.tx.kind.referenced())
        .collect::<Vec<Hash>>()
        .iter()
        .filter_map(|d| chain.store().payload(d).ok().flatten())
        .collect()
}
