//! fedchain-worker: the hospital node. It trains on its own data, turns the result into an
//! update, protects it (quantize, weight, pack, encrypt under the job's threshold key), signs the
//! submission, and, as a key-share holder, produces decryption shares of round aggregates.
//! It holds no global state: the global parameters come in, messages go out.

use std::sync::Arc;

use fedchain_crypto::identity::SigningKey;
use fedchain_crypto::threshold::{KeyShare, ThresholdPublicKey, VectorDecryptionShare};
use fedchain_crypto::vector::encrypt_update;
use fedchain_crypto::{CiphertextVector, CryptoError, Encryptor, Packer};
use fedchain_datasets::Dataset;
use fedchain_ledger::{Address, Hash, JobId, SignedTx, Transaction, TxKind};
use fedchain_models::{Model, ModelError, TrainConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

pub mod service;
pub use service::{
    Ack, CoordinatorMsg, Outcome, Refusal, RoundOpen, RoundSummary, ShareRequest, WorkerMsg,
    WorkerService, PROTOCOL_VERSION,
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
    #[error("refusing to decrypt: not the product of the round's {inputs} valid submissions (at least 2)")]
    NotTheAggregate { inputs: usize },
    #[error("global parameters of length {got}, the model has {want}")]
    ParamLength { got: usize, want: usize },
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

/// The outcome of local training.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalUpdate {
    pub update: Vec<f32>,
    pub samples: u64,
    pub train_loss: f32,
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
            })
        }
        LocalRule::FedSgd => {
            let (loss, grad) = model.loss_and_gradient(data)?;
            let lr = train.sgd.learning_rate;
            Ok(LocalUpdate {
                update: grad.iter().map(|g| -lr * g).collect(),
                samples: data.len() as u64,
                train_loss: loss,
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
    rng: ChaCha20Rng,
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
    pub seed: u64,
}

impl Hospital {
    pub fn new(s: HospitalSetup) -> Self {
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
            rng: ChaCha20Rng::seed_from_u64(s.seed),
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
        self.nonce += 1;
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

    /// Protect, sign and package an update for round `round` of `job`.
    pub fn submission(
        &mut self,
        job: JobId,
        round: u32,
        update: &LocalUpdate,
    ) -> Result<SubmissionMsg> {
        let payload = match (&self.protection, &self.encryptor) {
            (Protection::Encrypted(e), Some(enc)) => {
                let v: CiphertextVector = encrypt_update(
                    enc,
                    &e.packer,
                    &update.update,
                    update.samples,
                    &mut self.rng,
                )?;
                v.to_bytes(e.key.public_key())
            }
            (Protection::Encrypted(_), None) => return Err(WorkerError::NoKeyShare),
            (Protection::Plaintext, _) => encode_plain(&update.update),
        };
        let tx = self.sign(TxKind::Submit {
            job,
            round,
            payload: Hash::sha256(&payload),
            samples: update.samples,
            payload_bytes: payload.len() as u64,
        });
        Ok(SubmissionMsg { tx, payload })
    }

    /// As a key-share holder: decryption shares (with one proof) of a round's aggregate.
    ///
    /// `inputs` are the valid submissions of the round as this hospital reads them from the
    /// ledger: it decrypts only their product, and only of two or more, so no aggregator can
    /// have a single hospital's update decrypted.
    pub fn decryption_share(
        &mut self,
        job: JobId,
        round: u32,
        aggregate: &CiphertextVector,
        inputs: &[CiphertextVector],
    ) -> Result<ShareMsg> {
        let Protection::Encrypted(e) = &self.protection else {
            return Err(WorkerError::NoKeyShare);
        };
        let share = self.share.as_ref().ok_or(WorkerError::NoKeyShare)?;
        let pk = e.key.public_key();
        if inputs.len() < 2
            || fedchain_crypto::vector::aggregate(pk, inputs)?.digest(pk) != aggregate.digest(pk)
        {
            return Err(WorkerError::NotTheAggregate {
                inputs: inputs.len(),
            });
        }
        let s: VectorDecryptionShare = share.decrypt_share(&e.key, &aggregate.0, &mut self.rng)?;
        let payload = s.to_bytes(e.key.public_key());
        let tx = self.sign(TxKind::DecryptionShare {
            job,
            round,
            payload: Hash::sha256(&payload),
        });
        Ok(ShareMsg { tx, payload })
    }
}
