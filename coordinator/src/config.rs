//! `fedchain simulate`'s configuration: one TOML struct, flags override it.

use std::path::PathBuf;
use std::str::FromStr;

use fedchain_crypto::Rounding;
use fedchain_datasets::builtin::Builtin;
use fedchain_datasets::Partitioner;
use fedchain_models::TrainConfig;
use fedchain_worker::LocalRule;
use serde::{Deserialize, Serialize};

use crate::strategy::ServerStep;

/// Which model family to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    LogisticRegression,
    Mlp,
    /// The DeepChain paper's CNN (28x28 images; needs the `torch` feature).
    DeepchainCnn,
    /// LeNet-5 (28x28 images; needs the `torch` feature).
    Lenet5,
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logistic_regression" | "logreg" | "lr" => Ok(Self::LogisticRegression),
            "mlp" => Ok(Self::Mlp),
            "deepchain_cnn" | "cnn" => Ok(Self::DeepchainCnn),
            "lenet5" => Ok(Self::Lenet5),
            _ => Err(format!(
                "unknown model {s:?} (logistic_regression, mlp, deepchain_cnn, lenet5)"
            )),
        }
    }
}

/// A misbehaving hospital and what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Submits two different updates for the same round.
    Equivocate,
    /// Publishes a decryption share whose proof does not verify.
    BadProof,
    /// Submits ciphertexts outside Z*_{n^2} (plaintext jobs: a malformed update).
    GarbageCiphertext,
    /// Submits after the round's deadline.
    Late,
    /// Drops out: sends nothing this round.
    Dropout,
    /// Encrypts (with a valid proof of plaintext knowledge) plaintexts whose slots are full, so
    /// the round's aggregate cannot be unpacked (THREAT-MODEL A5).
    Overflow,
}

/// `--byzantine H:behaviour` (hospital index from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Byzantine {
    pub hospital: usize,
    pub behaviour: Behaviour,
}

impl FromStr for Byzantine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (h, b) = s.split_once(':').ok_or(format!(
            "{s:?}: expected HOSPITAL:BEHAVIOUR, e.g. 1:equivocate"
        ))?;
        let hospital = h
            .parse()
            .map_err(|_| format!("{h:?} is not a hospital index"))?;
        let behaviour = match b {
            "equivocate" => Behaviour::Equivocate,
            "bad-proof" => Behaviour::BadProof,
            "garbage-ciphertext" => Behaviour::GarbageCiphertext,
            "late" => Behaviour::Late,
            "dropout" => Behaviour::Dropout,
            "overflow" => Behaviour::Overflow,
            _ => return Err(format!("unknown behaviour {b:?} (equivocate, bad-proof, garbage-ciphertext, late, dropout, overflow)")),
        };
        Ok(Self {
            hospital,
            behaviour,
        })
    }
}

/// Everything `fedchain simulate` needs; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulateConfig {
    pub hospitals: usize,
    pub threshold: u32,
    pub validators: usize,
    pub key_bits: u32,
    pub rounds: u32,
    pub dataset: Builtin,
    pub model: ModelKind,
    /// Hidden widths of the MLP.
    pub hidden: Vec<usize>,
    pub partition: Partitioner,
    pub test_fraction: f64,
    pub seed: u64,
    pub out: PathBuf,
    /// Replace an existing output directory.
    pub force: bool,
    /// Run without encryption (the baseline).
    pub plaintext: bool,
    /// Also run the plaintext baseline with the same seed and compare.
    pub baseline: bool,
    pub train: TrainConfig,
    pub rule: LocalRule,
    pub server: ServerStep,
    pub value_bits: u32,
    pub clip: f32,
    pub rounding: Rounding,
    /// Minimum valid submissions of every round of the job (default: the threshold, at least
    /// 3); fixed in the job on chain.
    pub min_participants: Option<u32>,
    /// Blocks a round stays open for submissions.
    pub deadline_blocks: u64,
    /// Fixed-base table window for encryption.
    pub window: u32,
    pub byzantine: Vec<Byzantine>,
}

impl Default for SimulateConfig {
    fn default() -> Self {
        Self {
            hospitals: 5,
            threshold: 3,
            validators: 4,
            key_bits: 2048,
            rounds: 20,
            dataset: Builtin::BreastCancer,
            model: ModelKind::LogisticRegression,
            hidden: vec![64],
            partition: Partitioner::Dirichlet { alpha: 0.5 },
            test_fraction: 0.2,
            seed: 42,
            out: PathBuf::from("fedchain-out"),
            force: false,
            plaintext: false,
            baseline: true,
            train: TrainConfig {
                epochs: 1,
                batch_size: 16,
                sgd: fedchain_models::SgdConfig {
                    learning_rate: 0.05,
                    momentum: 0.9,
                    weight_decay: 1e-4,
                },
            },
            rule: LocalRule::FedAvg,
            server: ServerStep::default(),
            value_bits: 16,
            clip: 1.0,
            rounding: Rounding::Nearest,
            min_participants: None,
            deadline_blocks: 2,
            window: fedchain_crypto::fast::DEFAULT_WINDOW,
            byzantine: Vec::new(),
        }
    }
}

/// A configuration that cannot run, and why.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        field,
        reason: reason.into(),
    })
}

/// Largest clip bound: an update coordinate beyond it is clipped. Model updates are weight
/// differences, far below this; a larger bound leaves no resolution to the quantization
/// (the step is 2 clip / (2^b - 1)) and the k-party sums leave f32's range.
pub const MAX_CLIP: f32 = 1.0e4;

/// Largest model (parameters): what one hospital trains, quantizes, packs and encrypts each
/// round and what the ledger stores per round (4 Mi parameters: 16 MiB of f32, about 47,000
/// ciphertexts at 2048 bits).
pub const MAX_PARAMS: u64 = 1 << 22;

/// Most blocks a round stays open for submissions: the chain's own limit.
pub use fedchain_ledger::state::MAX_DEADLINE_BLOCKS;

/// Most hidden layers of an MLP.
pub const MAX_HIDDEN_LAYERS: usize = 8;

/// (features, classes) of a shipped dataset.
fn shape(d: Builtin) -> (u64, u64) {
    match d {
        Builtin::BreastCancer => (30, 2),
        Builtin::Digits => (64, 10),
        Builtin::Mnist5k => (784, 10),
        Builtin::Synthetic => (32, 10),
    }
}

/// Parameters of a dense model: weights and biases of each layer from `features` through
/// `hidden` to `classes` (saturating: an absurd width gives u64::MAX, never an overflow).
fn dense_params(features: u64, hidden: &[usize], classes: u64) -> u64 {
    let mut widths = vec![features];
    widths.extend(hidden.iter().map(|&h| h as u64));
    widths.push(classes);
    widths.windows(2).fold(0u64, |acc, w| {
        acc.saturating_add(w[0].saturating_add(1).saturating_mul(w[1]))
    })
}

impl SimulateConfig {
    /// Parse a TOML file's text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError {
            field: "toml",
            reason: e.to_string(),
        })
    }

    /// The minimum participants in effect.
    pub fn min_participants(&self) -> u32 {
        self.min_participants
            .unwrap_or(self.threshold.max(fedchain_ledger::MIN_PARTICIPANTS))
    }

    /// Check everything before any work starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let min = fedchain_ledger::MIN_PARTICIPANTS as usize;
        if !(min..=1000).contains(&self.hospitals) {
            return bad(
                "hospitals",
                format!(
                    "{} not in {min}..=1000 (a job needs at least {min} members: the chain's \
                     minimum of participants per round)",
                    self.hospitals
                ),
            );
        }
        if self.threshold == 0 || self.threshold as usize > self.hospitals {
            return bad(
                "threshold",
                format!("{} not in 1..={}", self.threshold, self.hospitals),
            );
        }
        if self.validators == 0 || self.validators > 100 {
            return bad("validators", format!("{} not in 1..=100", self.validators));
        }
        if !(256..=4096).contains(&self.key_bits) || self.key_bits % 2 != 0 {
            return bad(
                "key_bits",
                format!("{} must be even and in 256..=4096", self.key_bits),
            );
        }
        if self.rounds == 0 || self.rounds > fedchain_worker::MAX_ROUND {
            return bad(
                "rounds",
                format!("{} not in 1..={}", self.rounds, fedchain_worker::MAX_ROUND),
            );
        }
        let m = self.min_participants();
        let floor = fedchain_ledger::MIN_PARTICIPANTS.max(self.threshold);
        if m < floor || m as usize > self.hospitals {
            return bad(
                "min_participants",
                format!(
                    "{m} not in {floor}..={} (at least 3 and the threshold: a smaller aggregate \
                     would let a colluder read another hospital's update)",
                    self.hospitals
                ),
            );
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return bad("test_fraction", "must be in (0, 1)");
        }
        if !(1..=MAX_DEADLINE_BLOCKS).contains(&self.deadline_blocks) {
            return bad(
                "deadline_blocks",
                format!("{} not in 1..={MAX_DEADLINE_BLOCKS}", self.deadline_blocks),
            );
        }
        if !(4..=32).contains(&self.value_bits) {
            return bad("value_bits", "must be in 4..=32");
        }
        if !(self.clip.is_finite() && self.clip > 0.0 && self.clip <= MAX_CLIP) {
            return bad(
                "clip",
                format!("{} must be finite and in (0, {MAX_CLIP}]", self.clip),
            );
        }
        if !(1..=16).contains(&self.window) {
            return bad("window", "must be in 1..=16");
        }
        if !(self.server.lr.is_finite() && self.server.lr > 0.0) {
            return bad("server.lr", "must be finite and > 0");
        }
        if let Err(e) = self.train.validate() {
            return bad("train", e.to_string());
        }
        if let Err(e) = self.partition.validate() {
            return bad("partition", e.to_string());
        }
        if matches!(self.model, ModelKind::DeepchainCnn | ModelKind::Lenet5)
            && self.dataset != Builtin::Mnist5k
        {
            return bad(
                "model",
                format!("{:?} takes 28x28 images: use dataset mnist_5k", self.model),
            );
        }
        if self.model == ModelKind::Mlp {
            if self.hidden.is_empty()
                || self.hidden.contains(&0)
                || self.hidden.len() > MAX_HIDDEN_LAYERS
            {
                return bad(
                    "hidden",
                    format!("an MLP needs 1..={MAX_HIDDEN_LAYERS} hidden widths, each > 0"),
                );
            }
            let (features, classes) = shape(self.dataset);
            let params = dense_params(features, &self.hidden, classes);
            if params > MAX_PARAMS {
                return bad(
                    "hidden",
                    format!(
                        "{:?} on {} gives {params} parameters, over the budget of {MAX_PARAMS}",
                        self.hidden,
                        self.dataset.name()
                    ),
                );
            }
        }
        for b in &self.byzantine {
            if b.hospital >= self.hospitals {
                return bad(
                    "byzantine",
                    format!("hospital {} does not exist", b.hospital),
                );
            }
        }
        Ok(())
    }
}
