//! The crate's one error type.

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Everything that can go wrong when building, loading, training or evaluating a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The model description is not a valid architecture.
    #[error("invalid model spec: {0}")]
    InvalidSpec(String),
    /// A training hyper-parameter is outside its domain.
    #[error("invalid training config {name} = {value}: {reason}")]
    InvalidConfig {
        /// Field name.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What it must satisfy.
        reason: &'static str,
    },
    /// The data has a different number of features than the model's input.
    #[error("data has {found} features, model expects {expected}")]
    FeatureMismatch {
        /// Model input width.
        expected: usize,
        /// Data row width.
        found: usize,
    },
    /// The data may contain labels the model cannot output.
    #[error("data has {data} classes, model has {model}")]
    ClassMismatch {
        /// Model classes.
        model: usize,
        /// Data classes.
        data: usize,
    },
    /// Training or gradient computation on no rows.
    #[error("empty dataset")]
    EmptyDataset,
    /// A parameter vector of the wrong length.
    #[error("parameter vector has {found} values, model has {expected}")]
    ParamLength {
        /// Model parameter count.
        expected: usize,
        /// Given length.
        found: usize,
    },
    /// A parameter vector containing NaN or infinity.
    #[error("parameter {index} is not finite")]
    NonFiniteParam {
        /// Index of the first bad value.
        index: usize,
    },
    /// The spec needs a backend this build does not include.
    #[error(
        "model {spec} needs the `{feature}` cargo feature of fedchain-models \
         (run scripts/fetch-libtorch.sh, then build with --features {feature})"
    )]
    BackendUnavailable {
        /// The spec's kind, e.g. `deepchain_cnn`.
        spec: &'static str,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// libtorch reported an error.
    #[error("libtorch: {0}")]
    Torch(String),
    /// Training produced a non-finite loss (learning rate too high, or bad parameters).
    #[error("training diverged in epoch {epoch} (non-finite loss)")]
    Diverged {
        /// 0-based epoch.
        epoch: u32,
    },
}
