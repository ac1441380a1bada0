//! What a run is built from, shared by `fedchain simulate` and the coordinator / worker
//! services: the data split and partition, the model spec, every key derived from the seed
//! (aggregator, validators, hospitals, the threshold Paillier key and its shares), the genesis
//! configuration, the job spec, and the bootstrap blocks (registration, job, deposits).

use std::sync::Arc;

use fedchain_crypto::identity::SigningKey;
use fedchain_crypto::paillier::safe_prime_pair;
use fedchain_crypto::threshold::KeyShare;
use fedchain_crypto::{deal, Encode, Encryptor, FixedBaseTable, Packer, PackingParams};
use fedchain_datasets::{train_test_split, Dataset, Split};
use fedchain_ledger::state::Genesis;
use fedchain_ledger::types::Incentives;
use fedchain_ledger::{Address, Hash, JobId, JobSpec, Role, SignedTx, TxKind};
use fedchain_models::ModelSpec;
use fedchain_worker::{EncryptedJob, Hospital, HospitalSetup, Protection};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::config::{ModelKind, SimulateConfig};
use crate::engine::EngineConfig;
use crate::ledger::Ledger;
use crate::simulate::{Observer, Progress, Result, SimError};
use crate::verify::JobParams;

/// 32 seed bytes for a named key of this run.
fn derive(seed: u64, label: &str, i: usize) -> [u8; 32] {
    let h = Hash::of(
        b"fedchain/simulate/key/v1",
        &[
            &seed.to_be_bytes(),
            label.as_bytes(),
            &(i as u64).to_be_bytes(),
        ],
    );
    h.0
}

fn model_spec(cfg: &SimulateConfig, data: &Dataset) -> ModelSpec {
    let (num_features, num_classes) = (data.num_features(), data.num_classes());
    match cfg.model {
        ModelKind::LogisticRegression => ModelSpec::LogisticRegression {
            num_features,
            num_classes,
        },
        ModelKind::Mlp => ModelSpec::Mlp {
            num_features,
            hidden: cfg.hidden.clone(),
            num_classes,
        },
        ModelKind::DeepchainCnn => ModelSpec::DeepChainCnn { num_classes },
        ModelKind::Lenet5 => ModelSpec::LeNet5 { num_classes },
    }
}

fn scale(d: Dataset, by: f32) -> Result<Dataset> {
    let (classes, features) = (d.num_classes(), d.num_features());
    let (x, y) = d.into_parts();
    Ok(Dataset::new(
        x.into_iter().map(|v| v * by).collect(),
        y,
        features,
        classes,
    )?)
}

/// A consortium and its job as derived from a [`SimulateConfig`] and its seed.
#[derive(Debug)]
pub struct Consortium {
    pub cfg: SimulateConfig,
    /// Train / test split (the test part evaluates the global model).
    pub split: Split,
    /// Each hospital's training data.
    pub parts: Vec<Dataset>,
    pub spec: ModelSpec,
    pub num_params: usize,
    /// theta_0.
    pub initial_params: Vec<f32>,
    pub aggregator: SigningKey,
    pub validators: Vec<SigningKey>,
    pub hospital_keys: Vec<SigningKey>,
    pub protection: Protection,
    /// Hospital i's threshold key share (holder i + 1); `None` in the plaintext baseline.
    pub shares: Vec<Option<KeyShare>>,
    pub table: Option<Arc<FixedBaseTable>>,
    pub genesis: Genesis,
    pub total_samples: u64,
    pub max_samples: u64,
}

impl Consortium {
    /// Load and partition the data, derive every key from the seed (dealing the threshold key
    /// unless `cfg.plaintext`) and write the genesis configuration.
    pub fn new(cfg: &SimulateConfig, obs: &mut dyn Observer) -> Result<Self> {
        cfg.validate()?;
        let encrypted = !cfg.plaintext;
        obs.progress(Progress::Setup("loading and partitioning data"));
        let data = cfg.dataset.load();
        let mut split = train_test_split(&data, cfg.test_fraction, true, cfg.seed)?;
        if matches!(cfg.model, ModelKind::DeepchainCnn | ModelKind::Lenet5) {
            // the image models take pixels scaled to [0, 1]
            split.train = scale(split.train, 1.0 / 255.0)?;
            split.test = scale(split.test, 1.0 / 255.0)?;
            // hospitals train in parallel on rayon threads: one libtorch thread each
            #[cfg(feature = "torch")]
            fedchain_models::torch::set_num_threads(1);
        } else {
            split.standardize()?;
        }
        let partition = cfg
            .partition
            .partition(&split.train, cfg.hospitals, cfg.seed)?;
        let parts = partition.apply(&split.train)?;
        let spec = model_spec(cfg, &split.train);
        let global_model = spec.build(cfg.seed)?;
        let num_params = global_model.num_params();
        let initial_params = global_model.params();

        let aggregator = SigningKey::from_seed(&derive(cfg.seed, "aggregator", 0));
        let validators: Vec<SigningKey> = (0..cfg.validators)
            .map(|i| SigningKey::from_seed(&derive(cfg.seed, "validator", i)))
            .collect();
        let hospital_keys: Vec<SigningKey> = (0..cfg.hospitals)
            .map(|i| SigningKey::from_seed(&derive(cfg.seed, "hospital", i)))
            .collect();
        let total_samples: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let max_samples = parts.iter().map(|p| p.len() as u64).max().unwrap_or(1);

        let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
        let (protection, shares, table) = if encrypted {
            obs.progress(Progress::Setup(
                "generating the threshold Paillier key (safe primes) and dealing shares",
            ));
            let (p, q) = safe_prime_pair(cfg.key_bits, &mut rng)?;
            let dealt = deal(&p, &q, cfg.hospitals as u32, cfg.threshold, &mut rng)?;
            let packing = PackingParams {
                value_bits: cfg.value_bits,
                clip: cfg.clip,
                max_parties: cfg.hospitals as u32,
                max_samples,
                rounding: cfg.rounding,
            };
            let packer = Packer::new(packing, dealt.public.public_key().plaintext_bits())?;
            obs.progress(Progress::Setup("building the fixed-base encryption table"));
            let table = Arc::new(FixedBaseTable::new(dealt.public.public_key(), cfg.window)?);
            let job = Arc::new(EncryptedJob {
                key: dealt.public,
                packer,
            });
            (
                Protection::Encrypted(job),
                dealt.shares.into_iter().map(Some).collect::<Vec<_>>(),
                Some(table),
            )
        } else {
            (Protection::Plaintext, vec![None; cfg.hospitals], None)
        };

        let chain_id = format!("fedchain-sim-{}", cfg.seed);
        let mut allocations = vec![(Address::of(&aggregator.verifying_key()), 1_000_000u64)];
        allocations.extend(
            hospital_keys
                .iter()
                .map(|k| (Address::of(&k.verifying_key()), 10_000u64)),
        );
        let genesis = Genesis {
            chain_id,
            timestamp_ms: 1_700_000_000_000,
            validators: validators.iter().map(SigningKey::verifying_key).collect(),
            allocations,
        };
        Ok(Self {
            cfg: cfg.clone(),
            split,
            parts,
            spec,
            num_params,
            initial_params,
            aggregator,
            validators,
            hospital_keys,
            protection,
            shares,
            table,
            genesis,
            total_samples,
            max_samples,
        })
    }

    /// The committee in key-holder order.
    pub fn committee(&self) -> Vec<Address> {
        self.hospital_keys
            .iter()
            .map(|k| Address::of(&k.verifying_key()))
            .collect()
    }

    /// Hospital `i` as freshly started (nonce 0; call `resume_nonce` to continue a chain).
    pub fn hospital(&self, i: usize) -> Result<Hospital> {
        let cfg = &self.cfg;
        let (Some(data), Some(key), Some(share)) = (
            self.parts.get(i),
            self.hospital_keys.get(i),
            self.shares.get(i),
        ) else {
            return Err(SimError::Refused(format!("no hospital {i}")));
        };
        let encryptor = match (&self.protection, &self.table) {
            (Protection::Encrypted(e), Some(t)) => Some(Encryptor::with_table(
                e.key.public_key().clone(),
                Arc::clone(t),
            )),
            _ => None,
        };
        Ok(Hospital::new(HospitalSetup {
            key: key.clone(),
            chain_id: self.genesis.chain_id.clone(),
            nonce: 0,
            data: data.clone(),
            model: self.spec.build(cfg.seed)?,
            train: cfg.train.clone(),
            rule: cfg.rule,
            protection: self.protection.clone(),
            encryptor,
            share: share.clone(),
            seed: cfg.seed ^ (0x9e37_79b9 * (i as u64 + 1)),
        }))
    }

    /// Every hospital, freshly started.
    pub fn hospitals(&self) -> Result<Vec<Hospital>> {
        (0..self.cfg.hospitals).map(|i| self.hospital(i)).collect()
    }

    /// The job as it goes on chain.
    pub fn job_spec(&self) -> Result<JobSpec> {
        let job_params = JobParams {
            num_params: self.num_params,
            packing: match &self.protection {
                Protection::Encrypted(e) => Some(e.packer.params().clone()),
                Protection::Plaintext => None,
            },
            server: self.cfg.server,
        };
        Ok(JobSpec {
            model_spec_hash: Hash(self.spec.hash().0),
            threshold_key: match &self.protection {
                Protection::Encrypted(e) => e.key.to_bytes(),
                Protection::Plaintext => Vec::new(),
            },
            packing: serde_json::to_string(&job_params)
                .map_err(|e| SimError::Refused(e.to_string()))?,
            threshold: if self.cfg.plaintext {
                0
            } else {
                self.cfg.threshold
            },
            committee: self.committee(),
            incentives: Incentives {
                min_deposit: 1_000,
                submit_reward: 1_000,
                share_reward: 300,
                missed_deadline_permille: 100,
                misbehaviour_permille: 500,
            },
        })
    }

    /// Ciphertexts per submission (0 in the plaintext baseline).
    pub fn ciphertexts(&self) -> usize {
        match &self.protection {
            Protection::Encrypted(e) => e.packer.plaintexts_for(self.num_params),
            Protection::Plaintext => 0,
        }
    }

    /// The round engine's configuration for `job`.
    pub fn engine_config(&self, job: JobId) -> EngineConfig {
        EngineConfig {
            job,
            protection: self.protection.clone(),
            num_params: self.num_params,
            committee: self.committee(),
            min_participants: self.cfg.min_participants(),
            max_samples: self.max_samples,
        }
    }

    /// The first blocks of a fresh ledger: registrations (aggregator and hospitals), the job,
    /// the hospitals' deposits. The hospitals sign their own transactions. Gives the job id.
    pub fn bootstrap(&self, ledger: &mut Ledger, hospitals: &mut [Hospital]) -> Result<JobId> {
        let mut txs = vec![ledger.sign(TxKind::Register {
            role: Role::Aggregator,
            pseudonym: "aggregator".into(),
        })];
        for (i, h) in hospitals.iter_mut().enumerate() {
            txs.push(h.sign(TxKind::Register {
                role: Role::Hospital,
                pseudonym: format!("hospital-{i}"),
            }));
        }
        ledger.block(txs)?;
        let create = ledger.sign(TxKind::CreateJob(self.job_spec()?));
        ledger.block(vec![create])?;
        let job = ledger.chain.state().next_job - 1;
        let joins: Vec<SignedTx> = hospitals
            .iter_mut()
            .map(|h| {
                h.sign(TxKind::Join {
                    job,
                    deposit: 2_000,
                })
            })
            .collect();
        ledger.block(joins)?;
        Ok(job)
    }
}
