//! Model architectures as data, and their stable hash for the ledger.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dense::DenseModel;
use crate::error::{ModelError, Result};
use crate::Model;

/// A model architecture. Serde-friendly so jobs and configs can name one; [`ModelSpec::hash`]
/// identifies it on the ledger and [`ModelSpec::build`] instantiates it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    /// Logistic regression: sigmoid for 2 classes, softmax for more. It is the dense network with
    /// no hidden layer, so it has the same hash as `Mlp { hidden: [] }`.
    LogisticRegression {
        /// Input width.
        num_features: usize,
        /// Output classes, >= 2.
        num_classes: usize,
    },
    /// Multi-layer perceptron: dense layers with ReLU between them, sigmoid (2 classes) or
    /// softmax (more) output with cross-entropy loss.
    Mlp {
        /// Input width.
        num_features: usize,
        /// Hidden layer widths, input to output.
        hidden: Vec<usize>,
        /// Output classes, >= 2.
        num_classes: usize,
    },
}

/// How the network's output is turned into a loss and predictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// One logit, binary cross-entropy.
    Sigmoid,
    /// One logit per class, softmax cross-entropy.
    Softmax,
}

/// SHA-256 of a model spec's canonical description.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpecHash(pub [u8; 32]);

impl fmt::Display for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SpecHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpecHash({self})")
    }
}

impl ModelSpec {
    /// Input width.
    pub fn num_features(&self) -> usize {
        match self {
            ModelSpec::LogisticRegression { num_features, .. }
            | ModelSpec::Mlp { num_features, .. } => *num_features,
        }
    }

    /// Output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            ModelSpec::LogisticRegression { num_classes, .. }
            | ModelSpec::Mlp { num_classes, .. } => *num_classes,
        }
    }

    fn hidden(&self) -> &[usize] {
        match self {
            ModelSpec::LogisticRegression { .. } => &[],
            ModelSpec::Mlp { hidden, .. } => hidden,
        }
    }

    pub(crate) fn head(&self) -> Head {
        if self.num_classes() == 2 {
            Head::Sigmoid
        } else {
            Head::Softmax
        }
    }

    /// `(inputs, outputs)` of each dense layer, input to output.
    pub(crate) fn layer_shapes(&self) -> Vec<(usize, usize)> {
        let out = match self.head() {
            Head::Sigmoid => 1,
            Head::Softmax => self.num_classes(),
        };
        let mut widths = vec![self.num_features()];
        widths.extend_from_slice(self.hidden());
        widths.push(out);
        widths.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Checks the architecture.
    pub fn validate(&self) -> Result<()> {
        if self.num_features() == 0 {
            return Err(ModelError::InvalidSpec(
                "num_features must be at least 1".into(),
            ));
        }
        if self.num_classes() < 2 {
            return Err(ModelError::InvalidSpec(
                "num_classes must be at least 2".into(),
            ));
        }
        if self.hidden().contains(&0) {
            return Err(ModelError::InvalidSpec(
                "hidden widths must be at least 1".into(),
            ));
        }
        let total = self.layer_shapes().iter().try_fold(0usize, |acc, &(i, o)| {
            i.checked_mul(o)?.checked_add(o)?.checked_add(acc)
        });
        match total {
            Some(n) if n <= u32::MAX as usize => Ok(()),
            _ => Err(ModelError::InvalidSpec("more than 2^32 parameters".into())),
        }
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.layer_shapes().iter().map(|&(i, o)| i * o + o).sum()
    }

    /// The canonical text the hash is computed over: architecture, shapes, head, and the layout
    /// of the flat parameter vector, so two models with equal hashes interpret the same vector
    /// the same way whatever their backend.
    pub fn canonical_description(&self) -> String {
        let mut s = String::from("fedchain-model-spec v1\nfamily dense\n");
        s += &format!("input {}\n", self.num_features());
        let shapes = self.layer_shapes();
        for (l, (i, o)) in shapes.iter().enumerate() {
            let act = if l + 1 < shapes.len() { " relu" } else { "" };
            s += &format!("layer {l} linear {i}x{o}{act}\n");
        }
        s += match self.head() {
            Head::Sigmoid => "head sigmoid binary-cross-entropy\n",
            Head::Softmax => "head softmax cross-entropy\n",
        };
        s += &format!(
            "classes {}\nparams {}\n",
            self.num_classes(),
            self.num_params()
        );
        s += "layout per layer: weight[out][in] row-major f32, then bias[out] f32\n";
        s
    }

    /// SHA-256 of [`ModelSpec::canonical_description`].
    pub fn hash(&self) -> SpecHash {
        SpecHash(Sha256::digest(self.canonical_description().as_bytes()).into())
    }

    /// Instantiates the model with seeded initial parameters.
    pub fn build(&self, seed: u64) -> Result<Box<dyn Model>> {
        Ok(Box::new(DenseModel::new(self.clone(), seed)?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shapes_and_counts() {
        let lr = ModelSpec::LogisticRegression {
            num_features: 30,
            num_classes: 2,
        };
        assert_eq!(lr.num_params(), 31);
        let sm = ModelSpec::LogisticRegression {
            num_features: 64,
            num_classes: 10,
        };
        assert_eq!(sm.num_params(), 650);
        let mlp = ModelSpec::Mlp {
            num_features: 784,
            hidden: vec![128],
            num_classes: 10,
        };
        assert_eq!(mlp.num_params(), 784 * 128 + 128 + 128 * 10 + 10);
    }

    #[test]
    fn hash_is_stable_and_structural() {
        let lr = ModelSpec::LogisticRegression {
            num_features: 30,
            num_classes: 2,
        };
        let mlp0 = ModelSpec::Mlp {
            num_features: 30,
            hidden: vec![],
            num_classes: 2,
        };
        assert_eq!(lr.hash(), mlp0.hash());
        let a = ModelSpec::Mlp {
            num_features: 30,
            hidden: vec![8, 4],
            num_classes: 3,
        };
        let b = ModelSpec::Mlp {
            num_features: 30,
            hidden: vec![4, 8],
            num_classes: 3,
        };
        assert_ne!(a.hash(), b.hash());
        // Known answer: this value is what goes on the ledger; it must never change silently.
        assert_eq!(
            lr.canonical_description(),
            "fedchain-model-spec v1\nfamily dense\ninput 30\nlayer 0 linear 30x1\n\
             head sigmoid binary-cross-entropy\nclasses 2\nparams 31\n\
             layout per layer: weight[out][in] row-major f32, then bias[out] f32\n"
        );
        assert_eq!(lr.hash().to_string(), KNOWN_LR_30_2);
    }

    /// SHA-256 of the canonical text, computed independently with Python's hashlib.
    const KNOWN_LR_30_2: &str = "891957308bc3e94003e89791da5a07069776db12988cdc9cc71282ed2f686b27";

    #[test]
    fn validation() {
        assert!(ModelSpec::LogisticRegression {
            num_features: 0,
            num_classes: 2
        }
        .validate()
        .is_err());
        assert!(ModelSpec::LogisticRegression {
            num_features: 3,
            num_classes: 1
        }
        .validate()
        .is_err());
        assert!(ModelSpec::Mlp {
            num_features: 3,
            hidden: vec![0],
            num_classes: 2
        }
        .validate()
        .is_err());
        assert!(ModelSpec::Mlp {
            num_features: usize::MAX,
            hidden: vec![2],
            num_classes: 2
        }
        .validate()
        .is_err());
    }

    #[test]
    fn serde_round_trip() {
        let s = ModelSpec::Mlp {
            num_features: 64,
            hidden: vec![32],
            num_classes: 10,
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(
            j,
            r#"{"kind":"mlp","num_features":64,"hidden":[32],"num_classes":10}"#
        );
        assert_eq!(serde_json::from_str::<ModelSpec>(&j).unwrap(), s);
    }
}
