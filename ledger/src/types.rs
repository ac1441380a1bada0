//! Transactions, blocks, quorum certificates and their canonical encoding.
//!
//! The canonical bytes of every object are its bincode encoding (fixed-width little-endian
//! integers, no trailing bytes, a size limit on decode); hashes are SHA-256 with a
//! domain-separation prefix per object kind.

use std::fmt;

use bincode::Options;
use fedchain_crypto::identity::{Signature, SigningKey, VerifyingKey};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{LedgerError, Result};

/// Largest object decoded from outside (bytes).
pub const MAX_DECODE_BYTES: u64 = 64 << 20;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// SHA-256 of `parts` after a domain tag.
    pub fn of(domain: &[u8], parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        h.update((domain.len() as u32).to_be_bytes());
        h.update(domain);
        for p in parts {
            h.update(p);
        }
        Hash(h.finalize().into())
    }

    /// Plain SHA-256 of bytes (payload digests: the same as `CiphertextVector::digest`).
    pub fn sha256(bytes: &[u8]) -> Self {
        Hash(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..8]))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", hex::encode(self.0))
    }
}

/// A participant's address: the hash of its BLS public key. Canonical (bincode) bytes are the
/// 20 bytes; human-readable formats (genesis.json) get 40 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 20]);

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(self.0))
        } else {
            s.serialize_newtype_struct("Address", &self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            let mut a = [0u8; 20];
            hex::decode_to_slice(&text, &mut a).map_err(D::Error::custom)?;
            Ok(Address(a))
        } else {
            <[u8; 20]>::deserialize(d).map(Address)
        }
    }
}

impl Address {
    /// The address of a public key.
    pub fn of(key: &VerifyingKey) -> Self {
        let h = Hash::of(b"fedchain/address/v1", &[&key.to_bytes()]);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.0[..20]);
        Address(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..6]))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex::encode(self.0))
    }
}

/// Job identifier, assigned by the chain in creation order.
pub type JobId = u64;

fn opts() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_DECODE_BYTES)
        .reject_trailing_bytes()
}

/// Canonical bytes of a value.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // serializing our own in-memory types to a Vec cannot fail: no maps with non-string keys
    // matter to bincode, and the size limit only applies to values we built ourselves
    opts().serialize(v).unwrap_or_default()
}

/// Decode canonical bytes from outside.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    opts().deserialize(bytes).map_err(|e| LedgerError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// What a participant is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Hospital,
    Aggregator,
    Validator,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Hospital => "hospital",
            Role::Aggregator => "aggregator",
            Role::Validator => "validator",
        }
    }
}

/// Incentive rules of a job, in tokens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incentives {
    /// Smallest deposit a hospital must lock to join.
    pub min_deposit: u64,
    /// Tokens minted per committed round for accepted submitters (split by sample count).
    pub submit_reward: u64,
    /// Tokens minted per committed round for valid decryption-share providers (split evenly).
    pub share_reward: u64,
    /// Per-mille of the deposit forfeited for a missed deadline.
    pub missed_deadline_permille: u32,
    /// Per-mille of the deposit forfeited for equivocation or an invalid payload or proof.
    pub misbehaviour_permille: u32,
}

/// The smallest `JobSpec::min_participants` the chain accepts: with two participants one
/// colluder learns the other's update from the aggregate (THREAT-MODEL A14).
pub const MIN_PARTICIPANTS: u32 = 3;

/// A training job as created on chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Hash of the model specification (architecture and shapes).
    pub model_spec_hash: Hash,
    /// Encoding of the job's threshold Paillier public key (`ThresholdPublicKey::to_bytes`).
    pub threshold_key: Vec<u8>,
    /// The job's parameters as JSON, what a verifier needs besides the threshold key:
    /// `{"num_params", "packing": {value_bits, clip, max_parties, max_samples, rounding} or
    /// null for a plaintext job, "server"}` (fedchain-coordinator's `JobParams`).
    pub packing: String,
    /// Decryption threshold t.
    pub threshold: u32,
    /// The hospitals allowed to join (the key-share holders, in holder order).
    pub committee: Vec<Address>,
    /// Fewest valid submissions any round of this job may aggregate: at least
    /// [`MIN_PARTICIPANTS`] and at least the threshold, fixed for the job's lifetime (an
    /// aggregate of fewer would let a colluder subtract its own update from it).
    pub min_participants: u32,
    /// Largest sample count a member may declare when it joins (at least 1). For an encrypted
    /// job it equals the packing's `max_samples` in `packing` (the verifier checks it): a
    /// weight above it would not fit the packing's headroom.
    pub max_samples: u64,
    /// Incentive rules.
    pub incentives: Incentives,
}

/// Why a deposit is forfeited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Offence {
    /// Two different signed submissions for one round (both carried as evidence).
    Equivocation {
        first: Box<SignedTx>,
        second: Box<SignedTx>,
    },
    /// A submission whose payload failed the aggregator's checks (payload digest named).
    InvalidPayload {
        job: JobId,
        round: u32,
        digest: Hash,
    },
    /// A decryption share whose proof failed (share digest named).
    InvalidShare {
        job: JobId,
        round: u32,
        digest: Hash,
    },
}

impl Offence {
    /// Evidence kind of two different signed submissions for one round.
    pub const SUBMISSION_EQUIVOCATION: u8 = 0;
    /// Evidence kind of an invalid submission payload.
    pub const INVALID_PAYLOAD: u8 = 1;
    /// Evidence kind of a decryption share whose proof fails.
    pub const INVALID_SHARE: u8 = 2;
    /// Evidence kind of two different signed decryption shares for one round.
    pub const SHARE_EQUIVOCATION: u8 = 3;
    /// Kind recorded for a submitter a [`TxKind::Blame`] found without a range proof (the
    /// missing proof is the evidence; it is not an [`Offence`] value).
    pub const OUT_OF_RANGE: u8 = 4;

    /// The kind of offence as the chain records it in a job's `punished` set (evidence of one
    /// kind counts once per round and offender). An equivocation is of submissions or of
    /// decryption shares after what its first message is: the penalty then takes the
    /// offender's submission, or its share, out of the round.
    pub fn kind(&self) -> u8 {
        match self {
            Offence::Equivocation { first, .. } => match first.tx.kind {
                TxKind::DecryptionShare { .. } => Self::SHARE_EQUIVOCATION,
                _ => Self::SUBMISSION_EQUIVOCATION,
            },
            Offence::InvalidPayload { .. } => Self::INVALID_PAYLOAD,
            Offence::InvalidShare { .. } => Self::INVALID_SHARE,
        }
    }

    /// Whether the offence takes the offender's submission out of the round (else its share).
    pub fn against_submission(&self) -> bool {
        matches!(
            self.kind(),
            Self::SUBMISSION_EQUIVOCATION | Self::INVALID_PAYLOAD
        )
    }
}

/// The transactions of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxKind {
    /// Register the sender with a role and a pseudonym.
    Register { role: Role, pseudonym: String },
    /// Create a job; the sender becomes its aggregator.
    CreateJob(JobSpec),
    /// Join a job, locking a deposit and declaring, once, the number of samples the member
    /// trains on (1..=the job's `max_samples`): no submission of it may claim more, so its
    /// share of the rewards and its weight in the average are bounded by this declaration.
    Join {
        job: JobId,
        deposit: u64,
        samples: u64,
    },
    /// Open the next round of a job (its minimum of participants is the job's).
    OpenRound {
        job: JobId,
        round: u32,
        params_hash: Hash,
        deadline: u64,
    },
    /// Submit an encrypted update: its payload is stored beside the chain under `payload`.
    Submit {
        job: JobId,
        round: u32,
        payload: Hash,
        samples: u64,
        payload_bytes: u64,
    },
    /// Publish decryption shares (with proofs) of a round's aggregate, stored under `payload`.
    DecryptionShare {
        job: JobId,
        round: u32,
        payload: Hash,
    },
    /// Commit a round: aggregate, new parameters, accepted submitters and share providers.
    CommitRound {
        job: JobId,
        round: u32,
        aggregate: Hash,
        new_params_hash: Hash,
        accepted: Vec<Address>,
        share_providers: Vec<Address>,
    },
    /// Declare a round void (deadline passed with too few submissions).
    VoidRound { job: JobId, round: u32 },
    /// Declare that a round's decrypted aggregate cannot be unpacked (a submission overflowed
    /// its slots) and start its blame step: at least t valid decryption shares are on chain,
    /// and the verifier re-checks that their combination fails to unpack at summed plaintext
    /// `plaintext` (THREAT-MODEL A5). Every valid submitter then has [`crate::state::BLAME_WINDOW`]
    /// blocks to put a [`TxKind::RangeProof`] of its ciphertext there on chain.
    VoidUnpackable {
        job: JobId,
        round: u32,
        plaintext: u32,
    },
    /// In a round's blame step: the sender's proof (stored beside the chain under `payload`)
    /// that every slot of its ciphertext at the blamed plaintext is in range. The verifier
    /// checks it against the sender's submission; one per submitter.
    RangeProof {
        job: JobId,
        round: u32,
        payload: Hash,
    },
    /// End a round's blame step (after its window, or once every valid submitter has proven
    /// its slots): every valid submitter without a range proof on chain forfeits the
    /// misbehaviour share of its deposit and is excluded from the job; the round is void.
    Blame { job: JobId, round: u32 },
    /// Move tokens.
    Transfer { to: Address, amount: u64 },
    /// Forfeit part of an offender's deposit (redistributed to the job's honest members).
    Penalty {
        job: JobId,
        offender: Address,
        offence: Offence,
    },
}

/// The kind of a transaction without its fields (for logs and metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxTag {
    Register,
    CreateJob,
    Join,
    OpenRound,
    Submit,
    DecryptionShare,
    CommitRound,
    VoidRound,
    VoidUnpackable,
    RangeProof,
    Blame,
    Transfer,
    Penalty,
}

impl TxKind {
    /// The payload stored beside the chain that this transaction names (a submission, a
    /// decryption share or a range proof), if any.
    pub fn payload(&self) -> Option<Hash> {
        match self {
            TxKind::Submit { payload, .. }
            | TxKind::DecryptionShare { payload, .. }
            | TxKind::RangeProof { payload, .. } => Some(*payload),
            _ => None,
        }
    }

    /// Every payload this transaction needs beside the chain: its own ([`Self::payload`]) and
    /// the parameters an `OpenRound` starts from or a `CommitRound` ends with.
    pub fn referenced(&self) -> Vec<Hash> {
        let mut v: Vec<Hash> = self.payload().into_iter().collect();
        match self {
            TxKind::OpenRound { params_hash, .. } => v.push(*params_hash),
            TxKind::CommitRound {
                new_params_hash, ..
            } => v.push(*new_params_hash),
            _ => {}
        }
        v
    }

    /// The kind without its fields.
    pub fn tag(&self) -> TxTag {
        match self {
            TxKind::Register { .. } => TxTag::Register,
            TxKind::CreateJob(_) => TxTag::CreateJob,
            TxKind::Join { .. } => TxTag::Join,
            TxKind::OpenRound { .. } => TxTag::OpenRound,
            TxKind::Submit { .. } => TxTag::Submit,
            TxKind::DecryptionShare { .. } => TxTag::DecryptionShare,
            TxKind::CommitRound { .. } => TxTag::CommitRound,
            TxKind::VoidRound { .. } => TxTag::VoidRound,
            TxKind::VoidUnpackable { .. } => TxTag::VoidUnpackable,
            TxKind::RangeProof { .. } => TxTag::RangeProof,
            TxKind::Blame { .. } => TxTag::Blame,
            TxKind::Transfer { .. } => TxTag::Transfer,
            TxKind::Penalty { .. } => TxTag::Penalty,
        }
    }
}

/// A transaction before signing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub chain_id: String,
    pub sender: VerifyingKey,
    pub nonce: u64,
    pub kind: TxKind,
}

impl Transaction {
    /// The bytes the sender signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut b = b"fedchain/tx/v1".to_vec();
        b.extend_from_slice(&encode(self));
        b
    }

    /// Sign with the sender's key.
    pub fn sign(self, key: &SigningKey) -> SignedTx {
        let signature = key.sign(&self.signing_bytes());
        SignedTx {
            tx: self,
            signature,
        }
    }
}

/// A signed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    pub tx: Transaction,
    pub signature: Signature,
}

impl SignedTx {
    /// Whether the signature verifies under the sender's key.
    pub fn verify(&self) -> bool {
        self.tx
            .sender
            .verify(&self.tx.signing_bytes(), &self.signature)
    }

    /// The transaction's hash (its Merkle leaf and index key).
    pub fn hash(&self) -> Hash {
        Hash::of(b"fedchain/tx-hash/v1", &[&encode(self)])
    }

    /// The sender's address.
    pub fn sender(&self) -> Address {
        Address::of(&self.tx.sender)
    }
}

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub chain_id: String,
    pub height: u64,
    pub prev_hash: Hash,
    pub tx_root: Hash,
    pub state_root: Hash,
    /// Milliseconds since the epoch, given by the proposer (never read from a clock here).
    pub timestamp_ms: u64,
    pub proposer: VerifyingKey,
}

impl BlockHeader {
    /// The header hash (what validators sign and the next block links to).
    pub fn hash(&self) -> Hash {
        Hash::of(b"fedchain/header/v1", &[&encode(self)])
    }
}

/// A quorum certificate: an aggregate BLS signature and the bitmap of signers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumCertificate {
    pub signers: Vec<bool>,
    pub signature: Signature,
}

/// The message validator `index` signs for a header: distinct per validator, so the aggregate
/// is verified over distinct messages (no rogue-key attack).
pub fn vote_message(header_hash: &Hash, index: u32) -> Vec<u8> {
    let mut m = b"fedchain/vote/v1".to_vec();
    m.extend_from_slice(&header_hash.0);
    m.extend_from_slice(&index.to_be_bytes());
    m
}

/// What makes a block final: more than 2/3 of the genesis validators signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Certificate {
    /// A quorum certificate of validator replicas that one process holds (the coordinator's
    /// in-process replicas; they go when the aggregator becomes a client of the validators).
    Replicas(QuorumCertificate),
    /// A finalization of the validators' consensus engine (commonware `simplex` with
    /// `bls12381_multisig`: signer bitmap and one aggregated BLS signature over the view, the
    /// parent view and this block's header hash), in the engine's own encoding. This crate
    /// does not know the engine: a [`crate::state::Finality`] verifier checks it.
    Finalization(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A block: header, transactions and the certificate that makes it final. A block finalized
/// as the ancestor of a certified block may carry none: the descendant's certificate signs a
/// header that links to it by hash (the head of a ledger always carries one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<SignedTx>,
    pub cert: Option<Certificate>,
}
