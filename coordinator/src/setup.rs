//! What a run is built from, shared by `fedchain simulate` and the coordinator / worker
//! services: the data split and partition, the model spec (all from the seed), the keys of a
//! simulation (aggregator, validators, hospitals, the threshold Paillier key and its shares:
//! all from the operating system's generator, never from the seed), the genesis configuration,
//! the job spec, and the bootstrap blocks (registration, job, deposits).

use std::collections::BTreeMap;
use std::sync::Arc;

use fedchain_crypto::identity::{SigningKey, VerifyingKey};
use fedchain_crypto::paillier::safe_prime_pair;
use fedchain_crypto::threshold::{KeyShare, ThresholdPublicKey};
use fedchain_crypto::{deal, Encode, Encryptor, FixedBaseTable, Packer, PackingParams};
use fedchain_datasets::{train_test_split, Dataset, Split};
use fedchain_ledger::state::Genesis;
use fedchain_ledger::types::Incentives;
use fedchain_ledger::{Address, Hash, JobId, JobSpec, LedgerError, Role, SignedTx, TxKind};
use fedchain_models::ModelSpec;
use fedchain_worker::Marks;
use fedchain_worker::{EncryptedJob, Hospital, HospitalSetup, Protection};
use rand::rngs::OsRng;

use crate::config::{ModelKind, SimulateConfig};
use crate::engine::EngineConfig;
use crate::ledger::{Finalizer, Ledger};
use crate::simulate::{Observer, Progress, Result, SimError};
use crate::verify::JobParams;

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

/// The data side of a run, the same for the simulation, the coordinator and every worker of a
/// deployment (all derived from the experiment's configuration and seed): the train / test
/// split, each hospital's partition, the model spec and theta_0.
///
/// In a deployment each worker loads the shipped dataset and keeps only its own partition:
/// this is the demo's stand-in for a hospital's private data.
#[derive(Debug)]
pub struct ExperimentData {
    pub split: Split,
    pub parts: Vec<Dataset>,
    pub spec: ModelSpec,
    pub num_params: usize,
    pub initial_params: Vec<f32>,
    pub total_samples: u64,
    pub max_samples: u64,
}

impl ExperimentData {
    /// Load, split (standardized on the training part) and partition `cfg.dataset` into
    /// `cfg.hospitals` parts; build the model from the seed.
    pub fn prepare(cfg: &SimulateConfig) -> Result<Self> {
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
        let total_samples: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let max_samples = parts.iter().map(|p| p.len() as u64).max().unwrap_or(1);
        Ok(Self {
            split,
            parts,
            spec,
            num_params,
            initial_params,
            total_samples,
            max_samples,
        })
    }
}

/// The deposit a hospital locks when it joins (the job's minimum is 1000).
pub const JOIN_DEPOSIT: u64 = 2_000;

/// The packing layout of a job (value bits, clipping, headroom for the committee and the
/// largest partition).
pub fn packing_params(cfg: &SimulateConfig, max_samples: u64) -> PackingParams {
    PackingParams {
        value_bits: cfg.value_bits,
        clip: cfg.clip,
        max_parties: cfg.hospitals as u32,
        max_samples,
        rounding: cfg.rounding,
    }
}

/// Tokens the genesis gives the aggregator.
pub const AGGREGATOR_ALLOCATION: u64 = 1_000_000;
/// Tokens the genesis gives each hospital (enough for its deposit).
pub const HOSPITAL_ALLOCATION: u64 = 10_000;
/// The simulation's genesis time.
pub const SIMULATION_GENESIS_MS: u64 = 1_700_000_000_000;

/// The genesis of a consortium: its validators, and allocations to the aggregator and every
/// committee member. The one derivation of a chain's genesis (and so of its id) for both the
/// simulation and a deployment (`fedchain genesis` writes its result to the job directory;
/// the coordinator recomputes it from its own keys and refuses a genesis that differs).
pub fn consortium_genesis(
    consortium: &str,
    nonce: u64,
    timestamp_ms: u64,
    aggregator: &VerifyingKey,
    validators: Vec<VerifyingKey>,
    committee: &[VerifyingKey],
) -> Genesis {
    let mut allocations = vec![(Address::of(aggregator), AGGREGATOR_ALLOCATION)];
    allocations.extend(
        committee
            .iter()
            .map(|k| (Address::of(k), HOSPITAL_ALLOCATION)),
    );
    Genesis::new(consortium, nonce, timestamp_ms, validators, allocations)
}

/// The public material of a deployed job (written by `ca issue`, `keygen` and `genesis`), as
/// the coordinator loads it: it holds its own and the validators' keys, but only the
/// hospitals' public keys.
#[derive(Debug)]
pub struct DeploymentKeys {
    /// The genesis every participant was given (`genesis.json` of the job directory).
    pub genesis: Genesis,
    pub aggregator: SigningKey,
    /// The validators' keys (the coordinator's demo mode runs them embedded).
    pub validators: Vec<SigningKey>,
    /// The committee's BLS keys in key-holder order (holder i + 1 is entry i).
    pub committee: Vec<VerifyingKey>,
    /// The job's threshold public key (`None`: a plaintext job).
    pub threshold_key: Option<ThresholdPublicKey>,
}

/// A hospital of a deployment: its own key, share and partition.
#[derive(Debug)]
pub struct DeployedHospital {
    pub key: SigningKey,
    pub chain_id: String,
    /// Position in the committee (its partition index; holder `index + 1`).
    pub index: usize,
    pub threshold_key: Option<ThresholdPublicKey>,
    pub share: Option<KeyShare>,
    /// The committee in key-holder order.
    pub committee: Vec<Address>,
    /// Its high-water marks as last stored (see [`Marks`]).
    pub marks: Marks,
}

/// Build the protection of a job from its threshold key (or the plaintext baseline).
fn protection_for(
    cfg: &SimulateConfig,
    key: Option<ThresholdPublicKey>,
    max_samples: u64,
) -> Result<(Protection, Option<Arc<FixedBaseTable>>)> {
    let Some(key) = key else {
        return Ok((Protection::Plaintext, None));
    };
    if key.parties() as usize != cfg.hospitals || key.threshold() != cfg.threshold {
        return Err(SimError::Refused(format!(
            "the threshold key is {}-of-{}, the experiment says {}-of-{}",
            key.threshold(),
            key.parties(),
            cfg.threshold,
            cfg.hospitals
        )));
    }
    let packer = Packer::new(
        packing_params(cfg, max_samples),
        key.public_key().plaintext_bits(),
    )?;
    let table = Arc::new(FixedBaseTable::new(key.public_key(), cfg.window)?);
    Ok((
        Protection::Encrypted(Arc::new(EncryptedJob { key, packer })),
        Some(table),
    ))
}

/// A hospital built from its deployment material and its partition of the experiment's data.
pub fn deployed_hospital(cfg: &SimulateConfig, h: DeployedHospital) -> Result<Hospital> {
    cfg.validate()?;
    let data = ExperimentData::prepare(cfg)?;
    let part = data
        .parts
        .get(h.index)
        .ok_or_else(|| SimError::Refused(format!("no partition {}", h.index)))?
        .clone();
    if cfg.plaintext != h.threshold_key.is_none() {
        return Err(SimError::Refused(
            "the experiment's plaintext setting and the job's threshold key disagree".into(),
        ));
    }
    let (protection, table) = protection_for(cfg, h.threshold_key, data.max_samples)?;
    let encryptor = match (&protection, table) {
        (Protection::Encrypted(e), Some(t)) => {
            Some(Encryptor::with_table(e.key.public_key().clone(), t))
        }
        _ => None,
    };
    Ok(Hospital::new(HospitalSetup {
        key: h.key,
        chain_id: h.chain_id,
        nonce: 0,
        data: part,
        model: data.spec.build(cfg.seed)?,
        train: cfg.train.clone(),
        rule: cfg.rule,
        protection,
        encryptor,
        share: h.share,
        committee: h.committee,
        min_participants: cfg.min_participants(),
        marks: h.marks,
    }))
}

/// The secret key material of a simulated consortium (one process plays every party): the
/// aggregator's, validators' and hospitals' signing keys, and unless the run is plaintext the
/// dealt threshold key with every share. Always from the operating system's generator, never
/// from the seed or the configuration. `simulate` keeps it in `consortium.secret` of its
/// output directory so that `--resume` can continue the run (`crate::resume`); a deployment
/// has no such thing.
pub struct SimKeys {
    pub aggregator: SigningKey,
    pub validators: Vec<SigningKey>,
    pub hospitals: Vec<SigningKey>,
    pub threshold: Option<fedchain_crypto::threshold::DealtKey>,
}

impl std::fmt::Debug for SimKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimKeys")
            .field("validators", &self.validators.len())
            .field("hospitals", &self.hospitals.len())
            .field("threshold", &self.threshold.is_some())
            .finish_non_exhaustive()
    }
}

impl SimKeys {
    /// Fresh keys for `cfg` from the operating system's generator: the seed is in the config,
    /// and whoever has the config must not be able to recompute a secret (THREAT-MODEL G2, A3).
    pub fn generate(cfg: &SimulateConfig, obs: &mut dyn Observer) -> Result<Self> {
        let mut rng = OsRng;
        let aggregator = SigningKey::generate(&mut rng);
        let validators = (0..cfg.validators)
            .map(|_| SigningKey::generate(&mut rng))
            .collect();
        let hospitals = (0..cfg.hospitals)
            .map(|_| SigningKey::generate(&mut rng))
            .collect();
        let threshold = if cfg.plaintext {
            None
        } else {
            obs.progress(Progress::Setup(
                "generating the threshold Paillier key (safe primes) and dealing shares",
            ));
            let (p, q) = safe_prime_pair(cfg.key_bits, &mut rng)?;
            Some(deal(&p, &q, cfg.hospitals as u32, cfg.threshold, &mut rng)?)
        };
        Ok(Self {
            aggregator,
            validators,
            hospitals,
            threshold,
        })
    }
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
    /// The hospitals' signing keys (simulation only; empty in a deployment, where each
    /// hospital holds its own key).
    pub hospital_keys: Vec<SigningKey>,
    /// The committee's addresses in key-holder order.
    pub members: Vec<Address>,
    pub protection: Protection,
    /// Hospital i's threshold key share (holder i + 1); `None` in the plaintext baseline.
    pub shares: Vec<Option<KeyShare>>,
    pub table: Option<Arc<FixedBaseTable>>,
    pub genesis: Genesis,
    pub total_samples: u64,
    pub max_samples: u64,
    /// Set when the deployment's validators run as their own processes: the aggregator's
    /// ledger then follows them ([`Ledger::open_following`]) and `validators` is empty;
    /// otherwise they run embedded in this process ([`Ledger::open_embedded`]).
    pub following: Option<Following>,
}

/// How a deployment reaches its independent validators.
#[derive(Clone)]
pub struct Following {
    /// The check of their finalizations against the genesis validator set.
    pub finality: fedchain_ledger::FinalityRef,
    /// A fresh connection to them.
    #[allow(clippy::type_complexity)]
    pub connect: Arc<dyn Fn() -> std::result::Result<Box<dyn Finalizer>, String> + Send + Sync>,
}

impl std::fmt::Debug for Following {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Following")
    }
}

impl Consortium {
    /// Load and partition the data (from the seed), generate every key from the operating
    /// system's generator (dealing the threshold key unless `cfg.plaintext`) and write the
    /// genesis configuration.
    pub fn new(cfg: &SimulateConfig, obs: &mut dyn Observer) -> Result<Self> {
        cfg.validate()?;
        obs.progress(Progress::Setup("loading and partitioning data"));
        let data = ExperimentData::prepare(cfg)?;
        let keys = SimKeys::generate(cfg, obs)?;
        Self::assemble(cfg, keys, data, obs)
    }

    /// The consortium of a simulation from key material it generated earlier (what
    /// `simulate --resume` reloads from `consortium.secret`): the data and the model come
    /// from the seed again, the keys from `keys`.
    pub fn from_keys(cfg: &SimulateConfig, keys: SimKeys, obs: &mut dyn Observer) -> Result<Self> {
        cfg.validate()?;
        obs.progress(Progress::Setup("loading and partitioning data"));
        let data = ExperimentData::prepare(cfg)?;
        Self::assemble(cfg, keys, data, obs)
    }

    fn assemble(
        cfg: &SimulateConfig,
        keys: SimKeys,
        data: ExperimentData,
        obs: &mut dyn Observer,
    ) -> Result<Self> {
        let ExperimentData {
            split,
            parts,
            spec,
            num_params,
            initial_params,
            total_samples,
            max_samples,
        } = data;
        let SimKeys {
            aggregator,
            validators,
            hospitals: hospital_keys,
            threshold,
        } = keys;
        if validators.len() != cfg.validators || hospital_keys.len() != cfg.hospitals {
            return Err(SimError::Refused(format!(
                "the key material holds {} validators and {} hospitals, the experiment says {} and {}",
                validators.len(),
                hospital_keys.len(),
                cfg.validators,
                cfg.hospitals
            )));
        }
        if cfg.plaintext != threshold.is_none() {
            return Err(SimError::Refused(
                "the experiment's plaintext setting and the threshold key disagree".into(),
            ));
        }
        let (protection, shares, table) = match threshold {
            Some(dealt) => {
                obs.progress(Progress::Setup("building the fixed-base encryption table"));
                let (protection, table) = protection_for(cfg, Some(dealt.public), max_samples)?;
                (
                    protection,
                    dealt.shares.into_iter().map(Some).collect::<Vec<_>>(),
                    table,
                )
            }
            None => (Protection::Plaintext, vec![None; cfg.hospitals], None),
        };

        let committee: Vec<VerifyingKey> = hospital_keys
            .iter()
            .map(SigningKey::verifying_key)
            .collect();
        let genesis = consortium_genesis(
            &format!("fedchain-sim-{}", cfg.seed),
            0,
            SIMULATION_GENESIS_MS,
            &aggregator.verifying_key(),
            validators.iter().map(SigningKey::verifying_key).collect(),
            &committee,
        );
        let members = hospital_keys
            .iter()
            .map(|k| Address::of(&k.verifying_key()))
            .collect();
        Ok(Self {
            cfg: cfg.clone(),
            members,
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
            following: None,
        })
    }

    /// The aggregator's ledger of this consortium in `dir`, following its validators (their
    /// processes, or embedded ones with the validator keys; `progress` of a fallback replay).
    pub fn open_ledger(
        &self,
        dir: &std::path::Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Ledger> {
        match &self.following {
            Some(f) => Ledger::open_following(
                dir,
                &self.genesis,
                self.aggregator.clone(),
                f.finality.clone(),
                (f.connect)().map_err(SimError::Refused)?,
                progress,
            ),
            None => Ledger::open_embedded(
                dir,
                &self.genesis,
                self.validators.clone(),
                self.aggregator.clone(),
                self.cfg.seed,
                progress,
            ),
        }
    }

    /// The committee in key-holder order.
    pub fn committee(&self) -> Vec<Address> {
        self.members.clone()
    }

    /// Hospital `i` as freshly started (nonce 0; call `resume_nonce` to continue a chain).
    pub fn hospital(&self, i: usize) -> Result<Hospital> {
        self.restarted_hospital(i, Marks::default())
    }

    /// Hospital `i` restarted with the high-water marks it had stored.
    pub fn restarted_hospital(&self, i: usize, marks: Marks) -> Result<Hospital> {
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
            committee: self.committee(),
            min_participants: cfg.min_participants(),
            marks,
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
            min_participants: self.cfg.min_participants(),
            max_samples: self.max_samples,
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

    /// The round engine's configuration for `job`, with the members' sample counts as
    /// declared on chain when they joined (`Job::samples`).
    pub fn engine_config(&self, job: JobId, declared: BTreeMap<Address, u64>) -> EngineConfig {
        EngineConfig {
            chain_id: self.genesis.chain_id.clone(),
            job,
            protection: self.protection.clone(),
            num_params: self.num_params,
            committee: self.committee(),
            min_participants: self.cfg.min_participants(),
            max_samples: self.max_samples,
            declared,
        }
    }

    /// Each committee member's partition size: what an honest member declares at join.
    pub fn partition_samples(&self) -> BTreeMap<Address, u64> {
        self.members
            .iter()
            .zip(&self.parts)
            .map(|(a, p)| (*a, p.len() as u64))
            .collect()
    }

    /// The first blocks of a fresh ledger: registrations (aggregator and hospitals), the job,
    /// the hospitals' deposits with their declared sample counts. The hospitals sign their own
    /// transactions. Gives the job id.
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
        ledger.block_all(txs)?;
        let create = ledger.sign(TxKind::CreateJob(self.job_spec()?));
        ledger.block_all(vec![create])?;
        let job = ledger.chain.state().next_job - 1;
        let joins: Vec<SignedTx> = hospitals
            .iter_mut()
            .map(|h| {
                let samples = h.samples();
                h.sign(TxKind::Join {
                    job,
                    deposit: JOIN_DEPOSIT,
                    samples,
                })
            })
            .collect();
        ledger.block_all(joins)?;
        Ok(job)
    }

    /// A consortium of a deployment: the experiment's data, the coordinator's keys and the
    /// committee's public keys (nobody's hospital key), on the genesis it was given. The
    /// genesis must be [`consortium_genesis`] of exactly these keys (its name, nonce and time
    /// aside): its id is its hash, and its validators are the ones whose keys we hold.
    pub fn deployment(cfg: &SimulateConfig, keys: DeploymentKeys) -> Result<Self> {
        cfg.validate()?;
        if keys.committee.len() != cfg.hospitals {
            return Err(SimError::Refused(format!(
                "the committee has {} hospitals, the experiment says {}",
                keys.committee.len(),
                cfg.hospitals
            )));
        }
        if cfg.plaintext != keys.threshold_key.is_none() {
            return Err(SimError::Refused(
                "the experiment's plaintext setting and the job's threshold key disagree".into(),
            ));
        }
        let ExperimentData {
            split,
            parts,
            spec,
            num_params,
            initial_params,
            total_samples,
            max_samples,
        } = ExperimentData::prepare(cfg)?;
        let (protection, table) = protection_for(cfg, keys.threshold_key, max_samples)?;
        let members: Vec<Address> = keys.committee.iter().map(Address::of).collect();
        let genesis = keys.genesis;
        genesis
            .check_id()
            .map_err(|(stated, derived)| LedgerError::GenesisId { stated, derived })?;
        let expected = consortium_genesis(
            &genesis.consortium,
            genesis.nonce,
            genesis.timestamp_ms,
            &keys.aggregator.verifying_key(),
            // validators as their own processes: their keys are the genesis's to state
            if keys.validators.is_empty() {
                genesis.validators.clone()
            } else {
                keys.validators
                    .iter()
                    .map(SigningKey::verifying_key)
                    .collect()
            },
            &keys.committee,
        );
        if expected != genesis {
            return Err(SimError::Refused(format!(
                "the genesis of chain {} is not this deployment's: its validators, aggregator or \
                 committee allocations differ from the keys loaded",
                genesis.chain_id
            )));
        }
        let mut cfg = cfg.clone();
        cfg.validators = genesis.validators.len();
        Ok(Self {
            cfg,
            members,
            split,
            parts,
            spec,
            num_params,
            initial_params,
            aggregator: keys.aggregator,
            validators: keys.validators,
            hospital_keys: Vec::new(),
            shares: vec![None; keys.committee.len()],
            protection,
            table,
            genesis,
            total_samples,
            max_samples,
            following: None,
        })
    }

    /// Dry-run of [`Self::bootstrap_enrolled`] against the chain rules, writing nothing: the
    /// members (committee positions) whose own registration or join the chain would refuse,
    /// with the reason. Each registration is applied to a scratch copy of the state, the job
    /// is put there as `CreateJob` would make it, then each join is applied, so one member's
    /// bad enrollment never hides or causes another's. THREAT-MODEL A9: a bad enrollment is
    /// refused alone and the bootstrap waits for a good one.
    pub fn enrollment_rejects(
        &self,
        ledger: &Ledger,
        enrolled: &[(SignedTx, SignedTx)],
    ) -> Result<Vec<(usize, String)>> {
        let state = ledger.chain().state();
        let height = state.height + 1;
        let stored = |_: &Hash| true;
        let mut scratch = state.clone();
        let me = self.aggregator.verifying_key();
        let aggregator = Address::of(&me);
        if !scratch.participants.contains_key(&aggregator) {
            let nonce = scratch.nonces.get(&aggregator).copied().unwrap_or(0) + 1;
            let register = fedchain_ledger::Transaction {
                chain_id: self.genesis.chain_id.clone(),
                sender: me,
                nonce,
                kind: TxKind::Register {
                    role: Role::Aggregator,
                    pseudonym: "aggregator".into(),
                },
            }
            .sign(&self.aggregator);
            scratch
                .apply_tx(&register, height, &stored)
                .map_err(|e| SimError::Refused(format!("the aggregator's registration: {e}")))?;
        }
        let apply = |scratch: &mut fedchain_ledger::State, tx: &SignedTx| {
            if !tx.verify() {
                return Err("bad signature".to_string());
            }
            scratch
                .apply_tx(tx, height, &stored)
                .map_err(|e| e.to_string())
        };
        let mut out = Vec::new();
        for (i, (register, _)) in enrolled.iter().enumerate() {
            if let Err(e) = apply(&mut scratch, register) {
                out.push((i, format!("registration: {e}")));
            }
        }
        let job = scratch.next_job;
        scratch.next_job += 1;
        scratch.jobs.insert(
            job,
            fedchain_ledger::state::Job {
                spec: self.job_spec()?,
                aggregator,
                members: Default::default(),
                samples: Default::default(),
                next_round: 0,
                open: None,
                history: Vec::new(),
                current_params: None,
                punished: Default::default(),
                excluded: Default::default(),
            },
        );
        for (i, (_, join)) in enrolled.iter().enumerate() {
            if out.iter().any(|(k, _)| *k == i) {
                continue;
            }
            if let Err(e) = apply(&mut scratch, join) {
                out.push((i, format!("join: {e}")));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The bootstrap of a deployment in ONE block (so a crash leaves all or nothing): the
    /// aggregator's registration, each hospital's own signed registration, the job, and each
    /// hospital's own signed join, in committee order. `enrolled[i]` is member i's
    /// (register, join). Gives the job id.
    pub fn bootstrap_enrolled(
        &self,
        ledger: &mut Ledger,
        enrolled: &[(SignedTx, SignedTx)],
    ) -> Result<JobId> {
        if enrolled.len() != self.members.len() {
            return Err(SimError::Refused(format!(
                "{} of {} hospitals enrolled",
                enrolled.len(),
                self.members.len()
            )));
        }
        let job = ledger.chain.state().next_job;
        let mut txs = vec![ledger.sign(TxKind::Register {
            role: Role::Aggregator,
            pseudonym: "aggregator".into(),
        })];
        txs.extend(enrolled.iter().map(|(r, _)| r.clone()));
        txs.push(ledger.sign(TxKind::CreateJob(self.job_spec()?)));
        txs.extend(enrolled.iter().map(|(_, j)| j.clone()));
        ledger.block_all(txs)?;
        Ok(job)
    }
}
