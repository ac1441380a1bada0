//! fedchain-ledger: signed transactions, hash-chained blocks with BLS quorum certificates,
//! the deterministic chain state machine, stores (RocksDB and in-memory) and audit.
//!
//! The rules live in [`state`] and take no clock, disk or network: time comes in as block
//! timestamps and heights, payload presence through the [`state::Payloads`] trait. The
//! [`chain::Chain`] drives them over a [`store::Store`].

pub mod audit;
pub mod chain;
pub mod dir;
mod error;
pub mod merkle;
pub mod state;
pub mod store;
pub mod types;

pub use audit::{audit_ledger, check_head};
pub use audit::{
    claims_of_block, claims_of_txs, stored_genesis, verify_chain, verify_chain_full,
    verify_chain_with, AuditReport, Claim, PenaltyClaim, RangeClaim, RoundClaim, RoundVerifier,
    VoidClaim,
};
pub use chain::{propose_on, Chain, FinalityRef, Proposal, Recovery};
pub use dir::{Anchor, DirLock, StoreError};
pub use error::{AuditError, BlockError, LedgerError, Result, TxError};
pub use state::{Certs, Finality, Genesis, State};
pub use store::{Column, Head, MemoryStore, RocksStore, Store};
pub use types::{
    Address, Block, BlockHeader, Certificate, Hash, JobId, JobSpec, Role, SignedTx, Transaction,
    TxKind, TxTag, MIN_PARTICIPANTS,
};
