//! The aggregator's ledger: it signs the aggregator's transactions and gets them into final
//! blocks. It holds no validator key: it submits its transactions with their payloads to the
//! validators through a [`Finalizer`] and commits the finalized blocks they serve to its
//! RocksDB chain, each run re-executed and its finalization checked against the genesis
//! validator set ([`Chain::commit_final_run`]). Blocks also hold what others submitted
//! directly. The validators are processes of their own in a deployment
//! (`node::validator::NetFinalizer`), or embedded in this process
//! ([`Ledger::open_embedded`]: `fedchain simulate`, tests), the same engine either way.

use std::path::{Path, PathBuf};

use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::Genesis;
use fedchain_ledger::types::{encode, Block};
use fedchain_ledger::{
    Address, Chain, FinalityRef, Hash, RocksStore, SignedTx, Store, Transaction, TxKind, TxTag,
};
use fedchain_validator::embedded::{Embedded, EmbeddedConfig};
use fedchain_validator::SimplexFinality;

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

    /// The caller has nothing to submit and lets the validators move (a tick, or waiting for
    /// a height). Validators over the network make blocks in real time by themselves: nothing
    /// to do. Embedded ones run their consensus until the next block is final.
    fn idle(&mut self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Rounds of [`Finalizer::blocks_after`] (each waiting a little) a submitted transaction may
/// take to become final before it counts as dropped.
pub const FOLLOW_ATTEMPTS: usize = 600;

/// The aggregator's ledger (see the module doc).
#[derive(Debug)]
pub struct Ledger {
    pub(crate) chain: Chain<RocksStore>,
    finalizer: Box<dyn Finalizer>,
    pub(crate) aggregator: SigningKey,
    aggregator_nonce: u64,
    /// Bytes written to the chain so far (payloads, headers, bodies).
    pub bytes: u64,
    dropped_total: u64,
}

impl Ledger {
    /// The aggregator's chain in `dir` following the validators `finalizer` reaches: opened
    /// (or created) with `finality`, the check of their certificates, then brought up to what
    /// they finalized. It holds no validator key.
    pub fn open_following(
        dir: &Path,
        genesis: &Genesis,
        aggregator: SigningKey,
        finality: fedchain_ledger::FinalityRef,
        finalizer: Box<dyn Finalizer>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let chain = Chain::open_with(RocksStore::open(dir)?, genesis, finality, progress)?;
        let state = chain.state();
        let aggregator_nonce = state
            .nonces
            .get(&Address::of(&aggregator.verifying_key()))
            .copied()
            .unwrap_or(0);
        let mut l = Self {
            chain,
            finalizer,
            aggregator,
            aggregator_nonce,
            bytes: 0,
            dropped_total: 0,
        };
        l.catch_up()?;
        Ok(l)
    }

    /// [`Self::open_following`] the consortium's validators embedded in this process
    /// ([`Embedded`]: one engine per key of `validators`, each with its replica in
    /// [`validators_dir`]`(dir)`, on the deterministic runtime seeded with `seed`): what
    /// `fedchain simulate` and the tests run, the deployment's consensus without its network.
    pub fn open_embedded(
        dir: &Path,
        genesis: &Genesis,
        validators: Vec<SigningKey>,
        aggregator: SigningKey,
        seed: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        let embedded = Embedded::start(
            EmbeddedConfig::new(seed, &validators_dir(dir)),
            genesis,
            validators,
            Some(std::sync::Arc::new(FedchainVerifier)),
        )
        .map_err(|e| SimError::Refused(e.to_string()))?;
        Self::open_following(
            dir,
            genesis,
            aggregator,
            FinalityRef(Some(std::sync::Arc::new(SimplexFinality::new()))),
            Box::new(embedded),
            progress,
        )
    }

    /// Commit what the validators finalized after this chain's head; the number of blocks.
    pub fn catch_up(&mut self) -> Result<u64> {
        catch_up(&mut self.chain, &mut self.bytes, self.finalizer.as_mut())
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

    /// Get `txs` into finalized blocks: each is submitted with its payloads to the validators
    /// (who re-execute every block: the chain rules, and the [`FedchainVerifier`]'s
    /// cryptography of aggregates, commits, penalties and voids), and the call returns once
    /// each is final or left out. Without transactions, the validators are left to move
    /// ([`Finalizer::idle`]) and what they finalized meanwhile is committed.
    ///
    /// A transaction the validators refuse, or that is not final after [`FOLLOW_ATTEMPTS`]
    /// requests, is returned as [`Dropped`] (the caller logs and counts it): no transaction
    /// stops the ledger. Also counted in [`Self::dropped_total`].
    pub fn block(&mut self, txs: Vec<SignedTx>) -> Result<Vec<Dropped>> {
        let dropped = follow(
            &mut self.chain,
            &mut self.bytes,
            self.finalizer.as_mut(),
            txs,
        )?;
        // a dropped transaction of ours leaves its nonce unused: continue from the chain's
        let me = Address::of(&self.aggregator.verifying_key());
        self.aggregator_nonce = self.chain.state().nonces.get(&me).copied().unwrap_or(0);
        self.dropped_total += dropped.len() as u64;
        Ok(dropped)
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

    /// Transactions left out of blocks so far.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Height of the last committed block.
    pub fn height(&self) -> u64 {
        self.chain.head().height
    }
}

/// A transaction a block left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub tx: Hash,
    pub kind: TxTag,
    pub reason: String,
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

/// [`Ledger::block`]: submit, then follow finalized blocks until
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
        f.idle().map_err(SimError::Refused)?;
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

    fn idle(&mut self) -> std::result::Result<(), String> {
        self.advance()
    }
}

/// Where the embedded validators of the ledger in `ledger_dir` keep their replicas
/// (`<ledger>-validators/<i>`, beside it).
pub fn validators_dir(ledger_dir: &Path) -> PathBuf {
    let name = ledger_dir
        .file_name()
        .map_or_else(|| "ledger".into(), |n| n.to_string_lossy().into_owned());
    ledger_dir.with_file_name(format!("{name}-validators"))
}

/// The transaction is in a block this replica committed.
fn is_final(chain: &Chain<RocksStore>, tx: &Hash) -> bool {
    matches!(chain.store().tx_location(tx), Ok(Some(_)))
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
