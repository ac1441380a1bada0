//! The ledger's one error type.

use crate::types::{Address, Hash, JobId};

/// Why a transaction was refused by the chain rules.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TxError {
    #[error("bad signature")]
    BadSignature,
    #[error("transaction for another chain")]
    WrongChain,
    #[error("sender {0} is not registered")]
    UnknownSender(Address),
    #[error("sender {0} is already registered")]
    AlreadyRegistered(Address),
    #[error("nonce {got} of {sender} is not above {last}")]
    Replay {
        sender: Address,
        last: u64,
        got: u64,
    },
    #[error("{sender} has the role {actual}, the transaction needs {needed}")]
    WrongRole {
        sender: Address,
        needed: &'static str,
        actual: &'static str,
    },
    #[error("no job {0}")]
    UnknownJob(JobId),
    #[error("{hospital} is not a member of job {job}")]
    NotMember { job: JobId, hospital: Address },
    #[error("{hospital} already joined job {job}")]
    AlreadyMember { job: JobId, hospital: Address },
    #[error("only job {job}'s aggregator may do this")]
    NotAggregator { job: JobId },
    #[error("job {job} round {round} is not open")]
    RoundNotOpen { job: JobId, round: u32 },
    #[error("job {job}: round {got} cannot open, next is {expected}")]
    WrongRound { job: JobId, expected: u32, got: u32 },
    #[error("job {job} round {round} closed at height {deadline}, now {height}")]
    Late {
        job: JobId,
        round: u32,
        deadline: u64,
        height: u64,
    },
    #[error("{hospital} already submitted the same update to job {job} round {round}")]
    Duplicate {
        job: JobId,
        round: u32,
        hospital: Address,
    },
    #[error("{hospital} submitted two different updates to job {job} round {round}")]
    Equivocation {
        job: JobId,
        round: u32,
        hospital: Address,
    },
    #[error("job {job} round {round}: {reason}")]
    BadCommit {
        job: JobId,
        round: u32,
        reason: String,
    },
    #[error("balance of {who} is {have}, needs {need}")]
    InsufficientFunds { who: Address, have: u64, need: u64 },
    #[error("invalid job: {0}")]
    InvalidJob(String),
    #[error("a job's minimum of participants must be in {floor}..={committee} (at least 3 and the threshold, at most the committee), got {got}")]
    MinParticipants {
        got: u32,
        floor: u32,
        committee: u32,
    },
    #[error("{hospital} declares {got} samples for job {job}: must be in 1..={max} (the job's max_samples)")]
    BadDeclaration {
        job: JobId,
        hospital: Address,
        got: u64,
        max: u64,
    },
    #[error("{hospital} claims {got} samples in job {job} round {round}: must be in 1..={declared}, the count it declared when it joined")]
    Samples {
        job: JobId,
        round: u32,
        hospital: Address,
        got: u64,
        declared: u64,
    },
    #[error("job {job} round {round} has {shares} valid decryption shares on chain (threshold {threshold}) and enough valid submissions: it must be committed, it cannot be voided")]
    Decryptable {
        job: JobId,
        round: u32,
        shares: u32,
        threshold: u32,
    },
    #[error("job {job} round {round}: {provider}'s valid decryption share is on chain but the commit does not list it (every valid share provider is paid)")]
    UnpaidShare {
        job: JobId,
        round: u32,
        provider: Address,
    },
    #[error("{hospital} was excluded from job {job} (it could not prove its slots in range when an aggregate did not unpack)")]
    Excluded { job: JobId, hospital: Address },
    #[error("job {job} round {round} is in its blame step: {reason}")]
    Blaming {
        job: JobId,
        round: u32,
        reason: String,
    },
    #[error("job {job}: nobody joins while round {round} is open")]
    JoinDuringRound { job: JobId, round: u32 },
    #[error("job {job} round {round} still takes submissions (before its deadline, not every member in): nothing of it may be decrypted yet")]
    SubmissionsOpen { job: JobId, round: u32 },
    #[error("invalid evidence: {0}")]
    InvalidEvidence(String),
    #[error("payload {digest} is missing or does not hash to its digest")]
    MissingPayload { digest: Hash },
    #[error("amount overflow")]
    Overflow,
}

/// Why a block was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BlockError {
    #[error("block at height {got}, expected {expected}")]
    WrongHeight { expected: u64, got: u64 },
    #[error("previous hash does not match the chain's head")]
    WrongParent,
    #[error("transaction root does not match the body")]
    WrongTxRoot,
    #[error("state root does not match the state the block produces")]
    WrongStateRoot,
    #[error("timestamp {got} is before the parent's {parent}")]
    TimeWentBack { parent: u64, got: u64 },
    #[error("proposer is not a validator")]
    UnknownProposer,
    #[error("quorum certificate: {0}")]
    BadQuorum(String),
    #[error("transaction {index}: {error}")]
    Tx { index: usize, error: TxError },
}

/// What an audit found wrong, and where.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuditError {
    #[error("height {height}: stored {what} is corrupt: {reason}")]
    Corrupt {
        height: u64,
        what: &'static str,
        reason: String,
    },
    #[error("height {height}: {error}")]
    Invalid { height: u64, error: BlockError },
    #[error("height {height}: header hash chain broken")]
    BrokenLink { height: u64 },
    #[error("height {height}: payload {digest} missing or altered")]
    Payload { height: u64, digest: Hash },
    #[error("height {height}: crypto re-verification failed: {reason}")]
    Crypto { height: u64, reason: String },
    #[error("stored state differs from the replayed state at height {height}")]
    StateMismatch { height: u64 },
    #[error("token supply {actual} differs from genesis plus minting {expected}")]
    Supply { expected: u128, actual: u128 },
    #[error("the stored genesis states chain id {stated} but its content hashes to {derived}")]
    GenesisId { stated: String, derived: String },
    #[error("the ledger's genesis is {found}, expected {expected}: it holds another chain")]
    OtherGenesis { expected: String, found: String },
    #[error("stored payload under {key} does not hash to its key")]
    StoredPayload { key: String },
    #[error("the store's head is height {head}, below the known final height {expected}: blocks were lost")]
    BelowHead { expected: u64, head: u64 },
    #[error("height {height} holds {found}, the known final block is {expected}: another history")]
    OtherHead {
        height: u64,
        expected: Hash,
        found: String,
    },
    #[error("store: {0}")]
    Store(String),
}

/// Every failure of `fedchain-ledger`.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("store: {0}")]
    Store(String),
    #[error(transparent)]
    Open(#[from] crate::dir::StoreError),
    #[error("decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("genesis: {0}")]
    Genesis(String),
    #[error("genesis states chain id {stated} but its content hashes to {derived}")]
    GenesisId { stated: String, derived: String },
    #[error("the store holds chain {found}, not {expected}")]
    OtherChain { expected: String, found: String },
}

impl From<rocksdb::Error> for LedgerError {
    fn from(e: rocksdb::Error) -> Self {
        LedgerError::Store(e.into_string())
    }
}

/// Result alias of this crate.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;
