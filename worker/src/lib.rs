//! fedchain-worker: the hospital node. It trains on its own data, turns the result into an
//! update, protects it (quantize, weight, pack, encrypt under the job's threshold key), signs the
//! submission, and, as a key-share holder, produces decryption shares of round aggregates.
//! It holds no global state: the global parameters come in, messages go out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedchain_crypto::identity::SigningKey;
use fedchain_crypto::range::{self, SlotRangeProof};
use fedchain_crypto::threshold::{KeyShare, ThresholdPublicKey, VectorDecryptionShare};
use fedchain_crypto::vector::{aggregate, encrypt_update_with_witness, UpdateWitness};
use fedchain_crypto::{CiphertextVector, CryptoError, Encryptor, Packer, ProvenVector};
use fedchain_datasets::Dataset;
use fedchain_ledger::{Address, Hash, JobId, SignedTx, Transaction, TxKind};
use fedchain_models::{Model, ModelError, TrainConfig};
use rand::rngs::OsRng;
use rand::SeedableRng;
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub mod service;
pub use service::{
    Ack, CoordinatorMsg, Outcome, RangeRequest, Refusal, RoundOpen, RoundSummary, ShareRequest,
    WorkerMsg, WorkerService, MAX_NONCE, MAX_PENDING_NONCES, MAX_ROUND, PROTOCOL_VERSION,
};

/// Errors of a hospital node.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("this hospital holds no key share")]
    NoKeyShare,
    #[error("refusing to decrypt: {0}")]
    ShareRefused(#[from] ShareRefusal),
    #[error("refusing to sign a second submission for job {job} round {round} (last signed: round {last})")]
    AlreadySubmitted { job: JobId, round: u32, last: u32 },
    #[error("round {round} opened with parameters hashing to {got}, not {expected} (the parameters it must start from)")]
    TrapParams {
        round: u32,
        expected: Hash,
        got: Hash,
    },
    #[error("{what} {value} is out of range")]
    OutOfRange { what: &'static str, value: u64 },
    #[error("a result for round {round}, which this hospital never saw")]
    UnknownRound { round: u32 },
    #[error("global parameters of length {got}, the model has {want}")]
    ParamLength { got: usize, want: usize },
    #[error("no range proof for job {job} round {round}: this hospital keeps the witness of its last submission only, and it is not that one")]
    NoWitness { job: JobId, round: u32 },
    /// What the coordinator claims is not (yet) final on the chain this hospital follows: it
    /// acts only on final state (the process catches up and asks again a bounded number of
    /// times before it refuses).
    /// What the coordinator claims contradicts the final chain for good (the same round with
    /// another deadline, or a round that closed): refused at once.
    #[error("job {job} round {round}: {claim} is contradicted by the final chain")]
    NotOnChain {
        job: JobId,
        round: u32,
        claim: &'static str,
    },
    #[error("job {job} round {round}: {claim} is not what the final chain says ({chain})")]
    NotFinal {
        job: JobId,
        round: u32,
        claim: &'static str,
        chain: String,
    },
}

/// Why a holder refused to produce a decryption share (THREAT-MODEL G1, A1). A holder decrypts
/// only the product of a round's valid submissions: each signed by a distinct committee member
/// for this chain, job and round, naming the SHA-256 of its exact payload, carrying a valid
/// proof of plaintext knowledge; at least the job's minimum of them; its own submission
/// included whenever it submitted; and at most once per (job, round).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShareRefusal {
    #[error("job {job} round {round}: already shared round {last} of this job")]
    AlreadyShared { job: JobId, round: u32, last: u32 },
    #[error("{got} submissions, the job's minimum is {min}")]
    TooFew { got: usize, min: u32 },
    #[error("input {index} is not a Submit of job {job} round {round} on this chain")]
    WrongStatement {
        index: usize,
        job: JobId,
        round: u32,
    },
    #[error("input {index} has a bad signature")]
    BadSignature { index: usize },
    #[error("input {index}: the payload does not hash to the signed digest or size")]
    PayloadMismatch { index: usize },
    #[error("input {index} is from {sender:?}, not a member of the committee")]
    NotMember { index: usize, sender: Address },
    #[error("{sender:?} appears twice among the inputs")]
    DuplicateSender { sender: Address },
    #[error("this hospital's own submission of the round is missing from the inputs")]
    OwnSubmissionMissing,
    #[error("the submission of {sender:?} is malformed: {reason}")]
    InvalidPayload { sender: Address, reason: String },
    #[error("the submission of {sender:?} has no valid proof of plaintext knowledge")]
    NoKnowledgeProof { sender: Address },
    /// The inputs are not the round's valid submissions as final on chain: a submission the
    /// chain holds is left out, or one it does not hold is added (an aggregator singling out
    /// a victim among its colluders' submissions, THREAT-MODEL G1).
    #[error("the inputs are not round {round}'s valid submissions final on chain: {missing} of the chain's left out, {extra} not on chain")]
    NotFinalSet {
        round: u32,
        missing: usize,
        extra: usize,
    },
}

/// What a hospital must remember across restarts so it never signs twice for one (job, round)
/// and never decrypts a round twice: its high-water marks. Only the hospital advances them;
/// nothing a coordinator sends clears them. The process adapter writes them durably before a
/// message that advanced them leaves the process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    /// Per job: the last round a submission was signed for, and its payload digest.
    pub submitted: BTreeMap<JobId, (u32, Hash)>,
    /// Per job: the last round a decryption share was produced for.
    pub shared: BTreeMap<JobId, u32>,
}

/// The context a submission's proof of plaintext knowledge is bound to: the chain, the job,
/// the round and the sender, so a proof moves neither to another party nor to another round.
pub fn submission_context(chain_id: &str, job: JobId, round: u32, sender: &Address) -> Vec<u8> {
    proof_context(b"fedchain/submit/v1", chain_id, job, round, sender)
}

/// The context a blame step's range proof is bound to (the same fields as a submission's).
pub fn range_context(chain_id: &str, job: JobId, round: u32, sender: &Address) -> Vec<u8> {
    proof_context(b"fedchain/range/v1", chain_id, job, round, sender)
}

fn proof_context(tag: &[u8], chain_id: &str, job: JobId, round: u32, sender: &Address) -> Vec<u8> {
    let mut c = tag.to_vec();
    c.extend_from_slice(&(chain_id.len() as u64).to_be_bytes());
    c.extend_from_slice(chain_id.as_bytes());
    c.extend_from_slice(&job.to_be_bytes());
    c.extend_from_slice(&round.to_be_bytes());
    c.extend_from_slice(&sender.0);
    c
}

/// Decode an encrypted submission's payload and verify its proof of plaintext knowledge for
/// `sender` in (chain, job, round), expecting `ciphertexts` ciphertexts: what the aggregator,
/// the validators' verifier and every holder run on each submission.
pub fn check_submission(
    e: &EncryptedJob,
    chain_id: &str,
    job: JobId,
    round: u32,
    sender: &Address,
    payload: &[u8],
    ciphertexts: usize,
) -> std::result::Result<ProvenVector, ShareRefusal> {
    let pk = e.key.public_key();
    let v = ProvenVector::from_bytes(pk, payload).map_err(|err| ShareRefusal::InvalidPayload {
        sender: *sender,
        reason: err.to_string(),
    })?;
    if v.ciphertexts.len() != ciphertexts {
        return Err(ShareRefusal::InvalidPayload {
            sender: *sender,
            reason: format!(
                "{} ciphertexts, the job's packing needs {ciphertexts}",
                v.ciphertexts.len()
            ),
        });
    }
    v.verify(pk, &submission_context(chain_id, job, round, sender))
        .map_err(|_| ShareRefusal::NoKnowledgeProof { sender: *sender })?;
    Ok(v)
}

/// Decode a blame step's range proof and verify it for `sender`'s submitted ciphertexts `v`
/// at summed plaintext `plaintext` (an update of `len` values): what the aggregator and the
/// validators' verifier run.
#[allow(clippy::too_many_arguments)]
pub fn check_range_proof(
    e: &EncryptedJob,
    chain_id: &str,
    job: JobId,
    round: u32,
    sender: &Address,
    v: &CiphertextVector,
    plaintext: u32,
    len: usize,
    payload: &[u8],
) -> std::result::Result<(), CryptoError> {
    let proof = SlotRangeProof::from_bytes(payload)?;
    range::verify_at(
        e.key.public_key(),
        &e.packer,
        v,
        len,
        plaintext as usize,
        &proof,
        &range_context(chain_id, job, round, sender),
    )
}

pub type Result<T, E = WorkerError> = std::result::Result<T, E>;

/// How updates are protected in a job: encrypted under the threshold key, or in the clear
/// (the `--plaintext` baseline, same pipeline otherwise).
#[derive(Clone, Debug)]
pub enum Protection {
    Encrypted(Arc<EncryptedJob>),
    Plaintext,
}

/// The public crypto setup of an encrypted job.
#[derive(Debug)]
pub struct EncryptedJob {
    pub key: ThresholdPublicKey,
    pub packer: Packer,
}

/// What a hospital computes locally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LocalRule {
    /// FedAvg: train E epochs from the global parameters; the update is local - global.
    #[default]
    FedAvg,
    /// FedSGD: one full-batch gradient at the global parameters; the update is -lr * gradient.
    FedSgd,
}

/// A submission as it travels to the aggregator: the signed transaction and its payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionMsg {
    pub tx: SignedTx,
    pub payload: Vec<u8>,
}

/// A decryption share as it travels to the aggregator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareMsg {
    pub tx: SignedTx,
    pub payload: Vec<u8>,
}

/// A blame step's range proof as it travels to the aggregator (a signed `RangeProof`
/// transaction and the proof it names): the same shape as a share.
pub type RangeMsg = ShareMsg;

/// A protected update's payload, and for an encrypted one its ciphertexts and witness.
type Protected = (Vec<u8>, Option<(CiphertextVector, UpdateWitness)>);

/// What a hospital keeps of its last encrypted submission until the next one: enough to
/// prove its slots in range if that round's aggregate does not unpack.
#[derive(Debug)]
struct LastSubmission {
    job: JobId,
    round: u32,
    digest: Hash,
    ciphertexts: CiphertextVector,
    witness: UpdateWitness,
}

/// The outcome of local training.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalUpdate {
    pub update: Vec<f32>,
    pub samples: u64,
    pub train_loss: f32,
    /// Seed of the stochastic rounding of this update (public by design: derived from the
    /// round's training seed, so runs with one seed quantize alike).
    pub rounding_seed: u64,
}

fn local_update(
    model: &mut dyn Model,
    data: &Dataset,
    train: &TrainConfig,
    rule: LocalRule,
    global: &[f32],
    seed: u64,
) -> Result<LocalUpdate> {
    model.set_params(global)?;
    match rule {
        LocalRule::FedAvg => {
            let report = model.train(data, train, seed)?;
            let local = model.params();
            let update = local.iter().zip(global).map(|(l, g)| l - g).collect();
            Ok(LocalUpdate {
                update,
                samples: report.num_samples as u64,
                train_loss: report.loss,
                rounding_seed: seed,
            })
        }
        LocalRule::FedSgd => {
            let (loss, grad) = model.loss_and_gradient(data)?;
            let lr = train.sgd.learning_rate;
            Ok(LocalUpdate {
                update: grad.iter().map(|g| -lr * g).collect(),
                samples: data.len() as u64,
                train_loss: loss,
                rounding_seed: seed,
            })
        }
    }
}

/// The training seed of hospital `index` in round `round` of a run seeded with `seed` (the
/// simulation and the worker service use the same one, so their models agree bit for bit).
pub fn round_seed(seed: u64, round: u32, index: usize) -> u64 {
    seed ^ ((round as u64) << 32) ^ index as u64
}

/// Encode a plaintext update (little-endian f32) — the `--plaintext` payload.
pub fn encode_plain(update: &[f32]) -> Vec<u8> {
    update.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decode a plaintext payload of exactly `len` finite values.
pub fn decode_plain(bytes: &[u8], len: usize) -> Option<Vec<f32>> {
    if bytes.len() != len * 4 {
        return None;
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    v.iter().all(|x| x.is_finite()).then_some(v)
}

/// A hospital node.
///
/// Every secret it makes (encryption randomizers, the pool, proof nonces) comes from the
/// operating system's generator: a ChaCha20 generator seeded from `OsRng` when the hospital is
/// built, never persisted and never derived from the experiment's seed, so two runs with one
/// seed give the same model and different ciphertexts, and a restart never repeats a nonce.
#[derive(Debug)]
pub struct Hospital {
    key: SigningKey,
    chain_id: String,
    nonce: u64,
    data: Dataset,
    model: Box<dyn Model>,
    train: TrainConfig,
    rule: LocalRule,
    protection: Protection,
    encryptor: Option<Encryptor>,
    share: Option<KeyShare>,
    committee: Vec<Address>,
    min_participants: u32,
    marks: Marks,
    /// SHA-256 of theta_0 as this hospital's own model starts (the parameters of round 0).
    initial_params: Hash,
    rng: ChaCha20Rng,
    /// Its last encrypted submission and witness (memory only, wiped on drop).
    last: Option<LastSubmission>,
}

/// Everything a hospital is built from.
#[derive(Debug)]
pub struct HospitalSetup {
    pub key: SigningKey,
    pub chain_id: String,
    /// The last nonce this key used on chain (0 for a fresh key).
    pub nonce: u64,
    pub data: Dataset,
    pub model: Box<dyn Model>,
    pub train: TrainConfig,
    pub rule: LocalRule,
    pub protection: Protection,
    /// The encryptor (its table may be shared; its pool is this hospital's own).
    pub encryptor: Option<Encryptor>,
    pub share: Option<KeyShare>,
    /// The job's committee in key-holder order.
    pub committee: Vec<Address>,
    /// The job's minimum of participants (on chain in its `JobSpec`).
    pub min_participants: u32,
    /// High-water marks recovered from durable storage (default for a fresh hospital).
    pub marks: Marks,
}

impl Hospital {
    pub fn new(s: HospitalSetup) -> Self {
        let initial_params = Hash::sha256(&encode_plain(&s.model.params()));
        Self {
            key: s.key,
            chain_id: s.chain_id,
            nonce: s.nonce,
            data: s.data,
            model: s.model,
            train: s.train,
            rule: s.rule,
            protection: s.protection,
            encryptor: s.encryptor,
            share: s.share,
            committee: s.committee,
            min_participants: s.min_participants,
            marks: s.marks,
            initial_params,
            rng: ChaCha20Rng::from_seed(os_seed()),
            last: None,
        }
    }

    /// The hospital's address.
    pub fn address(&self) -> Address {
        Address::of(&self.key.verifying_key())
    }

    /// Its signing key (for registration transactions).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// How this hospital's job protects updates.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }

    /// The last nonce this hospital signed with.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// SHA-256 of theta_0 as its own model starts.
    pub fn initial_params_hash(&self) -> Hash {
        self.initial_params
    }

    /// Its high-water marks (persist them before sending what advanced them).
    pub fn marks(&self) -> &Marks {
        &self.marks
    }

    /// Continue after `nonce` (the last one the chain or the aggregator has seen from this
    /// key, e.g. after a restart); never goes back.
    pub fn resume_nonce(&mut self, nonce: u64) {
        self.nonce = self.nonce.max(nonce);
    }

    /// Local samples.
    pub fn samples(&self) -> u64 {
        self.data.len() as u64
    }

    /// Sign a transaction with the next nonce.
    pub fn sign(&mut self, kind: TxKind) -> SignedTx {
        // resume_nonce is bounded by the service (MAX_NONCE): no overflow here
        self.nonce = self.nonce.saturating_add(1);
        Transaction {
            chain_id: self.chain_id.clone(),
            sender: self.key.verifying_key(),
            nonce: self.nonce,
            kind,
        }
        .sign(&self.key)
    }

    /// Train on local data from the global parameters and return the update, while the
    /// encryption randomness for `ciphertexts` encryptions is precomputed alongside (rayon
    /// join: the offline phase overlaps training).
    pub fn train(&mut self, global: &[f32], seed: u64, ciphertexts: usize) -> Result<LocalUpdate> {
        if global.len() != self.model.num_params() {
            return Err(WorkerError::ParamLength {
                got: global.len(),
                want: self.model.num_params(),
            });
        }
        let Self {
            model,
            data,
            train,
            rule,
            encryptor,
            rng,
            ..
        } = self;
        let (update, ()) = rayon::join(
            || local_update(model.as_mut(), data, train, *rule, global, seed),
            || {
                if let Some(enc) = encryptor.as_ref() {
                    let missing = ciphertexts.saturating_sub(enc.pooled());
                    enc.precompute(missing, rng);
                }
            },
        );
        update
    }

    /// The payload of an update for round `round` of `job`: quantized, packed, encrypted with
    /// a proof of plaintext knowledge bound to this hospital (or the plain values of the
    /// baseline). Signs nothing and records nothing: see [`Self::submission`].
    pub fn protect(&mut self, job: JobId, round: u32, update: &LocalUpdate) -> Result<Vec<u8>> {
        self.protect_with_witness(job, round, update)
            .map(|(p, _)| p)
    }

    fn protect_with_witness(
        &mut self,
        job: JobId,
        round: u32,
        update: &LocalUpdate,
    ) -> Result<Protected> {
        match (&self.protection, &self.encryptor) {
            (Protection::Encrypted(e), Some(enc)) => {
                let context = submission_context(&self.chain_id, job, round, &self.address());
                let mut rounding = ChaCha8Rng::seed_from_u64(update.rounding_seed);
                let (v, w) = encrypt_update_with_witness(
                    enc,
                    &e.packer,
                    &update.update,
                    update.samples,
                    &context,
                    &mut rounding,
                    &mut self.rng,
                )?;
                let bytes = v.to_bytes(e.key.public_key());
                Ok((bytes, Some((v.ciphertexts, w))))
            }
            (Protection::Encrypted(_), None) => Err(WorkerError::NoKeyShare),
            (Protection::Plaintext, _) => Ok((encode_plain(&update.update), None)),
        }
    }

    /// In a blame step (the aggregate of round `round` of `job` did not unpack at summed
    /// plaintext `plaintext`): a signed range proof of this hospital's ciphertext there.
    /// Only for its last submission, whose witness it kept; it reveals nothing of the update.
    pub fn range_proof(&mut self, job: JobId, round: u32, plaintext: u32) -> Result<RangeMsg> {
        let Protection::Encrypted(e) = &self.protection else {
            return Err(WorkerError::NoKeyShare);
        };
        let last = self
            .last
            .as_ref()
            .filter(|l| l.job == job && l.round == round)
            .filter(|l| self.marks.submitted.get(&job) == Some(&(round, l.digest)))
            .ok_or(WorkerError::NoWitness { job, round })?;
        let context = range_context(&self.chain_id, job, round, &self.address());
        // a witness that does not make the ciphertext at this index (or no such index) is as
        // good as none: refused, never fatal
        let proof = range::prove_at(
            e.key.public_key(),
            &e.packer,
            &last.ciphertexts,
            &last.witness,
            plaintext as usize,
            &context,
            &mut self.rng,
        )
        .map_err(|_| WorkerError::NoWitness { job, round })?;
        let payload = proof.to_bytes();
        let tx = self.sign(TxKind::RangeProof {
            job,
            round,
            payload: Hash::sha256(&payload),
        });
        Ok(RangeMsg { tx, payload })
    }

    /// Protect, sign and package an update for round `round` of `job`. Refused for a round at
    /// or before the last one this hospital signed a submission for (its marks), so it never
    /// signs two different submissions for one (job, round).
    pub fn submission(
        &mut self,
        job: JobId,
        round: u32,
        update: &LocalUpdate,
    ) -> Result<SubmissionMsg> {
        if let Some((last, _)) = self.marks.submitted.get(&job) {
            if *last >= round {
                return Err(WorkerError::AlreadySubmitted {
                    job,
                    round,
                    last: *last,
                });
            }
        }
        let (payload, witness) = self.protect_with_witness(job, round, update)?;
        let digest = Hash::sha256(&payload);
        self.last = witness.map(|(ciphertexts, witness)| LastSubmission {
            job,
            round,
            digest,
            ciphertexts,
            witness,
        });
        let tx = self.sign(TxKind::Submit {
            job,
            round,
            payload: digest,
            samples: update.samples,
            payload_bytes: payload.len() as u64,
        });
        self.marks.submitted.insert(job, (round, digest));
        Ok(SubmissionMsg { tx, payload })
    }

    /// As a key-share holder: decryption shares (with one proof) of the product of a round's
    /// valid submissions, given as their signed `Submit` messages. Every rule of
    /// [`ShareRefusal`] is checked before anything is decrypted; the round is recorded in the
    /// marks before the share is made.
    pub fn decryption_share(
        &mut self,
        job: JobId,
        round: u32,
        inputs: &[SubmissionMsg],
    ) -> Result<ShareMsg> {
        let Protection::Encrypted(e) = &self.protection else {
            return Err(WorkerError::NoKeyShare);
        };
        let share = self.share.as_ref().ok_or(WorkerError::NoKeyShare)?;
        if let Some(last) = self.marks.shared.get(&job) {
            if *last >= round {
                return Err(ShareRefusal::AlreadyShared {
                    job,
                    round,
                    last: *last,
                }
                .into());
            }
        }
        if inputs.len() < self.min_participants as usize {
            return Err(ShareRefusal::TooFew {
                got: inputs.len(),
                min: self.min_participants,
            }
            .into());
        }
        let mut senders = BTreeSet::new();
        for (index, m) in inputs.iter().enumerate() {
            let TxKind::Submit {
                job: j,
                round: r,
                payload,
                payload_bytes,
                ..
            } = &m.tx.tx.kind
            else {
                return Err(ShareRefusal::WrongStatement { index, job, round }.into());
            };
            if *j != job || *r != round || m.tx.tx.chain_id != self.chain_id {
                return Err(ShareRefusal::WrongStatement { index, job, round }.into());
            }
            if !m.tx.verify() {
                return Err(ShareRefusal::BadSignature { index }.into());
            }
            if Hash::sha256(&m.payload) != *payload || m.payload.len() as u64 != *payload_bytes {
                return Err(ShareRefusal::PayloadMismatch { index }.into());
            }
            let sender = m.tx.sender();
            if !self.committee.contains(&sender) {
                return Err(ShareRefusal::NotMember { index, sender }.into());
            }
            if !senders.insert(sender) {
                return Err(ShareRefusal::DuplicateSender { sender }.into());
            }
        }
        let me = self.address();
        if let Some((r, digest)) = self.marks.submitted.get(&job) {
            let mine = inputs.iter().any(|m| {
                m.tx.sender() == me
                    && matches!(&m.tx.tx.kind, TxKind::Submit { payload, .. } if payload == digest)
            });
            if *r == round && !mine {
                return Err(ShareRefusal::OwnSubmissionMissing.into());
            }
        }
        let want = e.packer.plaintexts_for(self.model.num_params());
        let chain_id = &self.chain_id;
        let vectors: Vec<CiphertextVector> = inputs
            .par_iter()
            .map(|m| {
                check_submission(e, chain_id, job, round, &m.tx.sender(), &m.payload, want)
                    .map(|v| v.ciphertexts)
            })
            .collect::<std::result::Result<_, ShareRefusal>>()?;
        let pk = e.key.public_key();
        let product = aggregate(pk, &vectors)?;
        // recorded before the share exists: a restart or a coordinator message never brings
        // this round back
        self.marks.shared.insert(job, round);
        let s: VectorDecryptionShare = share.decrypt_share(&e.key, &product.0, &mut self.rng)?;
        let payload = s.to_bytes(pk);
        let tx = self.sign(TxKind::DecryptionShare {
            job,
            round,
            payload: Hash::sha256(&payload),
        });
        Ok(ShareMsg { tx, payload })
    }
}

/// 32 bytes from the operating system's generator (the seed of a hospital's secret randomness).
fn os_seed() -> [u8; 32] {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    seed
}
