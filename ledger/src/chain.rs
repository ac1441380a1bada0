//! The chain: the state machine driven over a store (a thin adapter, no rules of its own).

use std::sync::Mutex;

use fedchain_crypto::identity::SigningKey;
use rayon::prelude::*;

use crate::error::{BlockError, TxError};
use crate::merkle;
use crate::state::{
    apply_block, apply_txs, genesis_block, tx_root, verify_qc, verify_signatures, Genesis, State,
};
use crate::store::{CommitBatch, Head, Store};
use crate::types::*;
use crate::{LedgerError, Result};

/// A proposed block (no certificate yet) and what was left out.
#[derive(Debug)]
pub struct Proposal {
    pub block: Block,
    pub state: State,
    pub rejected: Vec<(SignedTx, TxError)>,
}

/// The ledger over a store.
#[derive(Debug)]
pub struct Chain<S: Store> {
    store: S,
    state: State,
    head: Head,
    genesis_hash: Hash,
    /// The last block this chain proposed or validated, with the state it produces.
    validated: Mutex<Option<(Hash, State)>>,
}

/// The body as stored: transactions and certificate.
pub(crate) fn body_bytes(block: &Block) -> Vec<u8> {
    encode(&(&block.txs, &block.qc))
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
                    validated: Mutex::new(None),
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
                let bytes = store
                    .state()?
                    .ok_or_else(|| LedgerError::Store("no state".into()))?;
                let state: State = decode("state", &bytes)?;
                if state.height != head.height {
                    return Err(LedgerError::Store("state and head disagree".into()));
                }
                Ok(Self {
                    store,
                    state,
                    head,
                    genesis_hash,
                    validated: Mutex::new(None),
                })
            }
        }
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
        let height = self.state.height + 1;
        let mut state = self.state.clone();
        let mut txs = Vec::new();
        let mut rejected = Vec::new();
        let payloads = |d: &Hash| self.store.has_payload(d);
        // one batch verification; per transaction only when the batch fails
        let sig_ok: Vec<bool> = if verify_signatures(&candidates).is_ok() {
            vec![true; candidates.len()]
        } else {
            candidates.par_iter().map(SignedTx::verify).collect()
        };
        for (t, ok) in candidates.into_iter().zip(sig_ok) {
            let r = if ok {
                state.apply_tx(&t, height, &payloads)
            } else {
                Err(TxError::BadSignature)
            };
            match r {
                Ok(()) => txs.push(t),
                Err(e) => rejected.push((t, e)),
            }
        }
        state.height = height;
        state.timestamp_ms = timestamp_ms.max(self.state.timestamp_ms);
        let header = BlockHeader {
            chain_id: state.chain_id.clone(),
            height,
            prev_hash: self.head.hash,
            tx_root: tx_root(&txs),
            state_root: state.root(),
            timestamp_ms: state.timestamp_ms,
            proposer: proposer.verifying_key(),
        };
        let block = Block {
            header,
            txs,
            qc: None,
        };
        self.remember(&block, &state);
        Proposal {
            block,
            state,
            rejected,
        }
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
            false,
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
                let qc = block
                    .qc
                    .as_ref()
                    .ok_or_else(|| BlockError::BadQuorum("missing".into()))?;
                verify_qc(&self.state.validators, &block.header.hash(), qc)?;
                state
            }
            None => apply_block(
                &self.state,
                &self.head.hash,
                block,
                &|d: &Hash| self.store.has_payload(d),
                true,
            )?,
        };
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
        let (Some(h), Some(b)) = (self.store.header(height)?, self.store.body(height)?) else {
            return Ok(None);
        };
        let header: BlockHeader = decode("header", &h)?;
        let (txs, qc): (Vec<SignedTx>, Option<QuorumCertificate>) = decode("body", &b)?;
        Ok(Some(Block { header, txs, qc }))
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
