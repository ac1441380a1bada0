//! Models for fedchain: the [`Model`] trait the rest of the system trains and aggregates through
//! without knowing the backend, and pure-Rust (ndarray) implementations: logistic regression
//! (sigmoid for 2 classes, softmax for more) and MLPs with ReLU, trained by minibatch SGD with
//! momentum and weight decay.
//!
//! With the `torch` cargo feature (libtorch through `tch`; run `scripts/fetch-libtorch.sh`
//! first), [`ModelSpec::DeepChainCnn`] and [`ModelSpec::LeNet5`] build a `TchModel`, which also
//! runs the dense specs for cross-checking. Without it, building a CNN spec is
//! [`ModelError::BackendUnavailable`].
//!
//! All models of one [`ModelSpec`] share a flat `f32` parameter layout, which is what hospitals
//! quantize, encrypt and sum; [`ModelSpec::hash`] names that layout on the ledger.
//!
//! ```
//! use fedchain_datasets::{builtin, train_test_split};
//! use fedchain_models::{ModelSpec, TrainConfig};
//!
//! let mut split = train_test_split(&builtin::breast_cancer(), 0.2, true, 0)?;
//! split.standardize()?;
//! let spec = ModelSpec::LogisticRegression { num_features: 30, num_classes: 2 };
//! let mut model = spec.build(0)?;
//! model.train(&split.train, &TrainConfig { epochs: 5, ..TrainConfig::default() }, 1)?;
//! let eval = model.evaluate(&split.test)?;
//! assert!(eval.accuracy > 0.9 && eval.auc.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batches;
mod config;
mod dense;
mod error;
pub mod metrics;
mod spec;
#[cfg(feature = "torch")]
pub mod torch;

use std::fmt;

pub use config::{SgdConfig, TrainConfig};
pub use dense::DenseModel;
pub use error::{ModelError, Result};
pub use fedchain_datasets::Dataset;
use serde::{Deserialize, Serialize};
pub use spec::{Backend, ModelSpec, SpecHash};
#[cfg(feature = "torch")]
pub use torch::TchModel;

/// A trainable classifier with a flat `f32` parameter vector.
///
/// Implementations must be deterministic: the same parameters, data, config and seed give the
/// same result.
pub trait Model: Send + fmt::Debug {
    /// The architecture.
    fn spec(&self) -> &ModelSpec;

    /// Number of parameters (length of [`Model::params`]).
    fn num_params(&self) -> usize;

    /// A copy of the parameters, in the layout of [`ModelSpec::canonical_description`].
    fn params(&self) -> Vec<f32>;

    /// Replaces the parameters. Rejects a wrong length or non-finite values.
    fn set_params(&mut self, params: &[f32]) -> Result<()>;

    /// Trains for `config.epochs` epochs from the current parameters, with minibatch order
    /// drawn from `seed`.
    fn train(&mut self, data: &Dataset, config: &TrainConfig, seed: u64) -> Result<TrainReport>;

    /// Mean loss, accuracy and (for 2 classes) ROC AUC on `data`.
    fn evaluate(&self, data: &Dataset) -> Result<Evaluation>;

    /// Mean loss on `data` (without weight decay) and its gradient with respect to the
    /// parameters, in the parameter layout.
    fn loss_and_gradient(&self, data: &Dataset) -> Result<(f32, Vec<f32>)>;

    /// The hash that identifies the architecture and parameter layout on the ledger.
    fn spec_hash(&self) -> SpecHash {
        self.spec().hash()
    }
}

/// What a local training run reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Mean training loss over the last epoch (running average over its minibatches).
    pub loss: f32,
    /// Mean training loss of every epoch.
    pub epoch_losses: Vec<f32>,
    /// Rows trained on (the FedAvg weight), not multiplied by epochs.
    pub num_samples: usize,
}

/// The result of evaluating a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy loss.
    pub loss: f32,
    /// Fraction of rows classified correctly.
    pub accuracy: f64,
    /// ROC AUC for binary tasks with both classes present, else `None`.
    pub auc: Option<f64>,
    /// Rows evaluated.
    pub num_samples: usize,
}
