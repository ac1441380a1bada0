//! The chain: the state machine driven over a store (a thin adapter, no rules of its own).

use std::sync::{Arc, Mutex};

use fedchain_crypto::identity::SigningKey;
use rayon::prelude::*;

use crate::error::{BlockError, TxError};
use crate::merkle;
use crate::state::{
    apply_block, apply_txs, genesis_block, tx_root, verify_certificate, verify_signatures, Certs,
    Finality, Genesis, Payloads, State,
};
use crate::store::{header_hash, CommitBatch, Head, Store};
use crate::types::*;
use crate::{LedgerError, Result};

/// A proposed block (no certificate yet) and what was left out.
#[derive(Debug)]
pub struct Proposal {
    pub block: Block,
    pub state: State,
    pub rejected: Vec<(SignedTx, TxError)>,
}

/// How [`Chain::open`] found the state it continues from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// An empty store: the genesis block was written.
    Created,
    /// The state stored with the head block (the snapshot), checked against the head's
    /// header: its hash is the stored head's, and the state's root is the header's
    /// `state_root` (which the head's quorum certificate signs).
    Snapshot,
    /// The stored state did not match the head (`reason`): it was rebuilt by replaying every
    /// block from genesis (certificates, signatures, rules), and the replay reached the head's
    /// state root. The stored state is replaced by the next commit.
    Replayed { reason: String },
}

/// The ledger over a store.
#[derive(Debug)]
pub struct Chain<S: Store> {
    store: S,
    state: State,
    head: Head,
    genesis_hash: Hash,
    recovery: Recovery,
    /// The last block this chain proposed or validated, with the state it produces.
    validated: Mutex<Option<(Hash, State)>>,
    /// The checker of consensus finalizations ([`Certificate::Finalization`]); without one
    /// such a certificate is refused.
    finality: FinalityRef,
}

/// An optional [`Finality`] verifier (shown in `Debug` only as present or absent).
#[derive(Clone, Default)]
pub struct FinalityRef(pub Option<Arc<dyn Finality>>);

impl std::fmt::Debug for FinalityRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FinalityRef({})",
            if self.0.is_some() { "some" } else { "none" }
        )
    }
}

impl FinalityRef {
    pub fn get(&self) -> Option<&dyn Finality> {
        self.0.as_deref()
    }
}

/// The body as stored: transactions and certificate.
pub(crate) fn body_bytes(block: &Block) -> Vec<u8> {
    encode(&(&block.txs, &block.cert))
}

/// Build a block on `parent` (its header hash and the state after it) from candidate
/// transactions: the ones that apply go in, in order; the others come back with their errors.
/// A validator proposes on a certified parent that may not be final yet; [`Chain::propose`]
/// proposes on the head.
pub fn propose_on(
    parent_state: &State,
    parent_hash: Hash,
    candidates: Vec<SignedTx>,
    timestamp_ms: u64,
    proposer: &SigningKey,
    payloads: &dyn Payloads,
) -> Proposal {
    let height = parent_state.height + 1;
    let mut state = parent_state.clone();
    let mut txs = Vec::new();
    let mut rejected = Vec::new();
    // one batch verification; per transaction only when the batch fails
    let sig_ok: Vec<bool> = if verify_signatures(&candidates).is_ok() {
        vec![true; candidates.len()]
    } else {
        candidates.par_iter().map(SignedTx::verify).collect()
    };
    for (t, ok) in candidates.into_iter().zip(sig_ok) {
        let r = if ok {
            state.apply_tx(&t, height, payloads)
        } else {
            Err(TxError::BadSignature)
        };
        match r {
            Ok(()) => txs.push(t),
            Err(e) => rejected.push((t, e)),
        }
    }
    state.height = height;
    state.timestamp_ms = timestamp_ms.max(parent_state.timestamp_ms);
    let header = BlockHeader {
        chain_id: state.chain_id.clone(),
        height,
        prev_hash: parent_hash,
        tx_root: tx_root(&txs),
        state_root: state.root(),
        timestamp_ms: state.timestamp_ms,
        proposer: proposer.verifying_key(),
    };
    Proposal {
        block: Block {
            header,
            txs,
            cert: None,
        },
        state,
        rejected,
    }
}

impl<S: Store> Chain<S> {
    /// Open an existing ledger with the genesis configuration stored in it (for audit and
    /// inspection tools; compare `genesis_hash()` with the published one).
    pub fn open_existing(store: S) -> Result<Self> {
        let bytes = store.genesis()?.ok_or_else(|| {
            LedgerError::Genesis("the store holds no genesis configuration".into())
        })?;
        let genesis: Genesis = decode("genesis", &bytes)?;
        Self::open(store, &genesis)
    }

    /// Open a chain: create the genesis block in an empty store, or recover the last committed
    /// state from a non-empty one (checking it descends from this genesis). A genesis whose
    /// chain id is not the hash of its content is refused (`LedgerError::GenesisId`), and so
    /// is a store holding another chain (`LedgerError::OtherChain`).
    pub fn open(store: S, genesis: &Genesis) -> Result<Self> {
        Self::open_observed(store, genesis, &mut |_, _| {})
    }

    /// [`Chain::open`], calling `progress(done, total)` after each block a fallback replay
    /// applies (only when the stored state does not match the head, see [`Recovery`]).
    pub fn open_observed(
        store: S,
        genesis: &Genesis,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        Self::open_with(store, genesis, FinalityRef::default(), progress)
    }

    /// [`Chain::open_observed`] for a chain whose blocks carry consensus finalizations,
    /// checked by `finality` (in a fallback replay and at every commit).
    pub fn open_with(
        store: S,
        genesis: &Genesis,
        finality: FinalityRef,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Self> {
        genesis
            .check_id()
            .map_err(|(stated, derived)| LedgerError::GenesisId { stated, derived })?;
        genesis.check()?;
        let g = genesis_block(genesis);
        let genesis_hash = g.header.hash();
        match store.head()? {
            None => {
                let state = State::genesis(genesis);
                store.commit(&CommitBatch {
                    height: 0,
                    header_hash: genesis_hash,
                    header: encode(&g.header),
                    body: body_bytes(&g),
                    state: encode(&state),
                    tx_hashes: Vec::new(),
                    genesis: Some(encode(genesis)),
                })?;
                Ok(Self {
                    store,
                    state,
                    head: Head {
                        height: 0,
                        hash: genesis_hash,
                    },
                    genesis_hash,
                    recovery: Recovery::Created,
                    validated: Mutex::new(None),
                    finality: finality.clone(),
                })
            }
            Some(head) => {
                let h0 = store.header(0)?.ok_or_else(|| {
                    LedgerError::Genesis("store has a head but no genesis".into())
                })?;
                let stored = decode::<BlockHeader>("genesis header", &h0)?;
                if stored.hash() != genesis_hash {
                    return Err(LedgerError::OtherChain {
                        expected: genesis.chain_id.clone(),
                        found: stored.chain_id,
                    });
                }
                let header = head_header(&store, head)?;
                let (state, recovery) = match stored_snapshot(&store, &header) {
                    Ok(state) => (state, Recovery::Snapshot),
                    Err(reason) => {
                        let state = replay(&store, genesis, &header, finality.get(), progress)?;
                        (state, Recovery::Replayed { reason })
                    }
                };
                Ok(Self {
                    store,
                    state,
                    head,
                    genesis_hash,
                    recovery,
                    validated: Mutex::new(None),
                    finality: finality.clone(),
                })
            }
        }
    }

    /// A chain that continues from `state`, the state after the certified block `head`
    /// (another chain's verified snapshot, e.g. a validator replica started from the
    /// aggregator's store without replaying it): refused unless `head` is this genesis's
    /// block 0 or carries a valid quorum certificate of the genesis validators, and unless
    /// the state is at `head`'s height and has its state root.
    pub fn from_snapshot(store: S, genesis: &Genesis, head: &Block, state: State) -> Result<Self> {
        genesis
            .check_id()
            .map_err(|(stated, derived)| LedgerError::GenesisId { stated, derived })?;
        let g = genesis_block(genesis);
        let genesis_hash = g.header.hash();
        let h = &head.header;
        if h.height == 0 {
            if h != &g.header {
                return Err(LedgerError::OtherChain {
                    expected: genesis.chain_id.clone(),
                    found: h.chain_id.clone(),
                });
            }
        } else {
            let cert = head
                .cert
                .as_ref()
                .ok_or_else(|| BlockError::BadQuorum("missing".into()))?;
            verify_certificate(&genesis.validators, h, cert, None)?;
        }
        if h.chain_id != genesis.chain_id || state.chain_id != genesis.chain_id {
            return Err(LedgerError::OtherChain {
                expected: genesis.chain_id.clone(),
                found: h.chain_id.clone(),
            });
        }
        if state.height != h.height || state.root() != h.state_root {
            return Err(LedgerError::Store(format!(
                "snapshot at height {} does not have the state root of block {}",
                state.height, h.height
            )));
        }
        Ok(Self {
            store,
            state,
            head: Head {
                height: h.height,
                hash: h.hash(),
            },
            genesis_hash,
            recovery: Recovery::Snapshot,
            validated: Mutex::new(None),
            finality: FinalityRef::default(),
        })
    }

    /// How this chain was opened.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn head(&self) -> Head {
        self.head
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Give the store back (e.g. to reopen it).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Store a payload (durable on return) and give its digest.
    pub fn put_payload(&self, bytes: &[u8]) -> Result<Hash> {
        self.store.put_payload(bytes)
    }

    /// Check a transaction against the current state without changing it.
    pub fn check_tx(&self, tx: &SignedTx) -> std::result::Result<(), TxError> {
        if !tx.verify() {
            return Err(TxError::BadSignature);
        }
        let mut s = self.state.clone();
        s.apply_tx(tx, self.state.height + 1, &|d: &Hash| {
            self.store.has_payload(d)
        })
    }

    /// Build the next block from candidate transactions: the ones that apply go in, in order;
    /// the others come back with their errors.
    pub fn propose(
        &self,
        candidates: Vec<SignedTx>,
        timestamp_ms: u64,
        proposer: &SigningKey,
    ) -> Proposal {
        let p = propose_on(
            &self.state,
            self.head.hash,
            candidates,
            timestamp_ms,
            proposer,
            &|d: &Hash| self.store.has_payload(d),
        );
        self.remember(&p.block, &p.state);
        p
    }

    fn remember(&self, block: &Block, state: &State) {
        let mut v = self.validated.lock().unwrap_or_else(|e| e.into_inner());
        *v = Some((block.header.hash(), state.clone()));
    }

    /// The state a block produces if this chain already proposed or validated exactly it.
    fn recall(&self, block: &Block) -> Option<State> {
        let v = self.validated.lock().unwrap_or_else(|e| e.into_inner());
        match v.as_ref() {
            Some((h, s))
                if *h == block.header.hash() && tx_root(&block.txs) == block.header.tx_root =>
            {
                Some(s.clone())
            }
            _ => None,
        }
    }

    /// A validator's re-execution of a proposal (no certificate needed yet).
    pub fn validate(&self, block: &Block) -> std::result::Result<State, BlockError> {
        let next = apply_block(
            &self.state,
            &self.head.hash,
            block,
            &|d: &Hash| self.store.has_payload(d),
            Certs::Unchecked,
        )?;
        self.remember(block, &next);
        Ok(next)
    }

    /// Validate a certified block and commit it with its state in one atomic write.
    /// A block this chain proposed or validated (same header hash, matching body) is not
    /// re-executed: only its certificate is checked.
    pub fn commit(&mut self, block: &Block) -> Result<()> {
        let next = match self.recall(block) {
            Some(state) => {
                let cert = block
                    .cert
                    .as_ref()
                    .ok_or_else(|| BlockError::BadQuorum("missing".into()))?;
                verify_certificate(
                    &self.state.validators,
                    &block.header,
                    cert,
                    self.finality.get(),
                )?;
                state
            }
            None => apply_block(
                &self.state,
                &self.head.hash,
                block,
                &|d: &Hash| self.store.has_payload(d),
                Certs::Required(self.finality.get()),
            )?,
        };
        self.write(block, next)
    }

    /// Commit a block the caller already re-executed on this chain's head state (a validator
    /// that verified it as a proposal on this parent): `next` must be the state it produces
    /// (height and state root of the header). A certificate the block carries is checked; a
    /// block without one is final through the certified descendant committed after it (the
    /// engine finalizes a block together with its ancestors).
    pub fn commit_executed(&mut self, block: &Block, next: State) -> Result<()> {
        let h = &block.header;
        if h.prev_hash != self.head.hash || h.height != self.head.height + 1 {
            return Err(BlockError::WrongParent.into());
        }
        if next.height != h.height || next.root() != h.state_root {
            return Err(BlockError::WrongStateRoot.into());
        }
        if let Some(cert) = &block.cert {
            verify_certificate(&self.state.validators, h, cert, self.finality.get())?;
        }
        self.write(block, next)
    }

    /// Commit a run of blocks that follow the head and end on a certified block (what a
    /// validator serves a member): each is re-executed on its parent's state with the
    /// payloads in this chain's store, and a certificate it carries is checked; nothing is
    /// written unless the last block's certificate verifies, as the blocks before it are final
    /// only as its ancestors. An empty run is a no-op.
    pub fn commit_final_run(&mut self, blocks: &[Block]) -> Result<()> {
        let Some(last) = blocks.last() else {
            return Ok(());
        };
        if last.cert.is_none() {
            return Err(
                BlockError::BadQuorum("the run does not end on a certified block".into()).into(),
            );
        }
        let mut state = self.state.clone();
        let mut prev = self.head.hash;
        let mut states = Vec::with_capacity(blocks.len());
        for b in blocks {
            let next = apply_block(
                &state,
                &prev,
                b,
                &|d: &Hash| self.store.has_payload(d),
                Certs::IfPresent(self.finality.get()),
            )?;
            prev = b.header.hash();
            states.push(next.clone());
            state = next;
        }
        for (b, next) in blocks.iter().zip(states) {
            self.commit_executed(b, next)?;
        }
        Ok(())
    }

    fn write(&mut self, block: &Block, next: State) -> Result<()> {
        let header_hash = block.header.hash();
        self.store.commit(&CommitBatch {
            height: block.header.height,
            header_hash,
            header: encode(&block.header),
            body: body_bytes(block),
            state: encode(&next),
            tx_hashes: block.txs.iter().map(SignedTx::hash).collect(),
            genesis: None,
        })?;
        self.state = next;
        *self.validated.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.head = Head {
            height: block.header.height,
            hash: header_hash,
        };
        Ok(())
    }

    /// A committed block.
    pub fn block(&self, height: u64) -> Result<Option<Block>> {
        read_block(&self.store, height)
    }

    /// The Merkle proof that a transaction is in a committed block, with that block's header.
    pub fn tx_proof(&self, tx: &Hash) -> Result<Option<(BlockHeader, merkle::Proof)>> {
        let Some((height, index)) = self.store.tx_location(tx)? else {
            return Ok(None);
        };
        let Some(block) = self.block(height)? else {
            return Ok(None);
        };
        let hashes: Vec<Hash> = block.txs.iter().map(SignedTx::hash).collect();
        Ok(merkle::prove(&hashes, index as usize).map(|p| (block.header, p)))
    }

    /// Apply transactions to a scratch copy of the state (dry run, e.g. for a round engine).
    pub fn dry_run(&self, txs: &[SignedTx]) -> std::result::Result<State, BlockError> {
        verify_signatures(txs)?;
        let mut s = self.state.clone();
        apply_txs(&mut s, txs, self.state.height + 1, &|d: &Hash| {
            self.store.has_payload(d)
        })?;
        Ok(s)
    }
}

fn read_block<S: Store>(store: &S, height: u64) -> Result<Option<Block>> {
    let (Some(h), Some(b)) = (store.header(height)?, store.body(height)?) else {
        return Ok(None);
    };
    let header: BlockHeader = decode("header", &h)?;
    let (txs, cert): (Vec<SignedTx>, Option<Certificate>) = decode("body", &b)?;
    Ok(Some(Block { header, txs, cert }))
}

/// The stored head's header, which must hash to the head record's hash.
fn head_header<S: Store>(store: &S, head: Head) -> Result<BlockHeader> {
    let bytes = store
        .header(head.height)?
        .ok_or_else(|| LedgerError::Store(format!("no header at the head {}", head.height)))?;
    if header_hash(&bytes) != head.hash {
        return Err(LedgerError::Store(format!(
            "the header at the head {} does not hash to the head record",
            head.height
        )));
    }
    decode("header", &bytes)
}

/// The stored state if it is the state after `header` (height and state root).
fn stored_snapshot<S: Store>(store: &S, header: &BlockHeader) -> Result<State, String> {
    let bytes = store
        .state()
        .map_err(|e| e.to_string())?
        .ok_or("no state stored")?;
    let state: State = decode("state", &bytes).map_err(|e| e.to_string())?;
    if state.height != header.height {
        return Err(format!(
            "stored state at height {}, head {}",
            state.height, header.height
        ));
    }
    if state.root() != header.state_root {
        return Err(format!(
            "stored state does not have the state root of block {}",
            header.height
        ));
    }
    Ok(state)
}

/// Rebuild the state after `head` by applying every stored block from genesis, each with its
/// certificate; the result must have `head`'s state root.
fn replay<S: Store>(
    store: &S,
    genesis: &Genesis,
    head: &BlockHeader,
    finality: Option<&dyn Finality>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<State> {
    let mut state = State::genesis(genesis);
    let mut prev = genesis_block(genesis).header.hash();
    let mut certified = true;
    for h in 1..=head.height {
        let block = read_block(store, h)?
            .ok_or_else(|| LedgerError::Store(format!("block {h} missing from the store")))?;
        state = apply_block(
            &state,
            &prev,
            &block,
            &|d: &Hash| store.has_payload(d),
            Certs::IfPresent(finality),
        )?;
        certified = block.cert.is_some();
        prev = block.header.hash();
        progress(h, head.height);
    }
    if !certified {
        return Err(BlockError::BadQuorum(format!(
            "the head {} carries no certificate",
            head.height
        ))
        .into());
    }
    if prev != head.hash() || state.root() != head.state_root {
        return Err(LedgerError::Store(format!(
            "replaying the stored blocks does not reach the head {}",
            head.height
        )));
    }
    Ok(state)
}
