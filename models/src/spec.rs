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
    /// The CNN of the DeepChain paper on 1x28x28 images (784 features, row-major pixels):
    /// conv 10@3x3 (padding 1) + ReLU -> max-pool 2x2 -> FC 1960x128 + ReLU -> FC 128xout;
    /// 252,398 parameters for 10 classes. Needs the `torch` feature (libtorch).
    #[serde(rename = "deepchain_cnn")]
    DeepChainCnn {
        /// Output classes, >= 2.
        num_classes: usize,
    },
    /// LeNet-5 on 1x28x28 images (784 features), in its common modern form: conv 6@5x5
    /// (padding 2) + ReLU -> max-pool 2x2 -> conv 16@5x5 + ReLU -> max-pool 2x2 -> FC 400x120 +
    /// ReLU -> FC 120x84 + ReLU -> FC 84xout; 61,706 parameters for 10 classes. Needs the
    /// `torch` feature (libtorch).
    #[serde(rename = "lenet5")]
    LeNet5 {
        /// Output classes, >= 2.
        num_classes: usize,
    },
}

/// Side of the square grey-scale images the CNNs take.
pub(crate) const IMAGE_SIDE: usize = 28;

/// One layer of an architecture, as the libtorch backend runs it and as the canonical
/// description names it. Parameterized layers own a weight then a bias in the flat vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer {
    /// `y = x W^T + b`, `W` is `outputs x inputs`.
    Linear {
        inputs: usize,
        outputs: usize,
        relu: bool,
    },
    /// Square kernel, stride 1, zero padding; weight `out x in x k x k`.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        padding: usize,
        relu: bool,
    },
    /// Square window with stride equal to its size.
    MaxPool2d { size: usize },
    /// `(c, y, x)` to one vector, channel-major.
    Flatten,
}

impl Layer {
    /// Shapes of the layer's weight and bias, if it has parameters.
    pub(crate) fn param_shapes(&self) -> Option<[Vec<usize>; 2]> {
        match *self {
            Layer::Linear {
                inputs, outputs, ..
            } => Some([vec![outputs, inputs], vec![outputs]]),
            Layer::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => Some([
                vec![out_channels, in_channels, kernel, kernel],
                vec![out_channels],
            ]),
            Layer::MaxPool2d { .. } | Layer::Flatten => None,
        }
    }

    /// Inputs feeding one output (for initialization scales).
    #[cfg_attr(not(feature = "torch"), allow(dead_code))]
    pub(crate) fn fan_in(&self) -> usize {
        match *self {
            Layer::Linear { inputs, .. } => inputs,
            Layer::Conv2d {
                in_channels,
                kernel,
                ..
            } => in_channels * kernel * kernel,
            _ => 0,
        }
    }

    /// Outputs one input feeds (for initialization scales).
    #[cfg_attr(not(feature = "torch"), allow(dead_code))]
    pub(crate) fn fan_out(&self) -> usize {
        match *self {
            Layer::Linear { outputs, .. } => outputs,
            Layer::Conv2d {
                out_channels,
                kernel,
                ..
            } => out_channels * kernel * kernel,
            _ => 0,
        }
    }

    fn num_params(&self) -> usize {
        self.param_shapes().map_or(0, |[w, b]| {
            w.iter().product::<usize>() + b.iter().product::<usize>()
        })
    }
}

/// Which implementation runs a spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Pure Rust ([`crate::DenseModel`]), always available.
    Dense,
    /// libtorch through tch, behind the `torch` cargo feature.
    Torch,
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
    /// Input width (784 for the CNNs: a 28x28 image, row-major).
    pub fn num_features(&self) -> usize {
        match self {
            ModelSpec::LogisticRegression { num_features, .. }
            | ModelSpec::Mlp { num_features, .. } => *num_features,
            ModelSpec::DeepChainCnn { .. } | ModelSpec::LeNet5 { .. } => IMAGE_SIDE * IMAGE_SIDE,
        }
    }

    /// Output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            ModelSpec::LogisticRegression { num_classes, .. }
            | ModelSpec::Mlp { num_classes, .. }
            | ModelSpec::DeepChainCnn { num_classes }
            | ModelSpec::LeNet5 { num_classes } => *num_classes,
        }
    }

    /// The spec's `kind` as serde names it (`"mlp"`, `"deepchain_cnn"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::LogisticRegression { .. } => "logistic_regression",
            ModelSpec::Mlp { .. } => "mlp",
            ModelSpec::DeepChainCnn { .. } => "deepchain_cnn",
            ModelSpec::LeNet5 { .. } => "lenet5",
        }
    }

    /// The implementation [`ModelSpec::build`] uses.
    pub fn backend(&self) -> Backend {
        match self {
            ModelSpec::LogisticRegression { .. } | ModelSpec::Mlp { .. } => Backend::Dense,
            ModelSpec::DeepChainCnn { .. } | ModelSpec::LeNet5 { .. } => Backend::Torch,
        }
    }

    /// Whether this build of the crate can instantiate the spec (false for the CNNs without the
    /// `torch` feature).
    pub fn is_available(&self) -> bool {
        self.backend() == Backend::Dense || cfg!(feature = "torch")
    }

    fn hidden(&self) -> &[usize] {
        match self {
            ModelSpec::Mlp { hidden, .. } => hidden,
            _ => &[],
        }
    }

    /// Output width of the last layer: 1 logit for a sigmoid head, else one per class.
    fn outputs(&self) -> usize {
        match self.head() {
            Head::Sigmoid => 1,
            Head::Softmax => self.num_classes(),
        }
    }

    /// Per-sample input shape: `[features]` for dense networks, `[1, 28, 28]` for the CNNs.
    pub(crate) fn input_shape(&self) -> Vec<usize> {
        match self.backend() {
            Backend::Dense => vec![self.num_features()],
            Backend::Torch => vec![1, IMAGE_SIDE, IMAGE_SIDE],
        }
    }

    /// Every layer, input to output.
    pub(crate) fn layers(&self) -> Vec<Layer> {
        let out = self.outputs();
        match self {
            ModelSpec::LogisticRegression { .. } | ModelSpec::Mlp { .. } => {
                let shapes = self.layer_shapes();
                let last = shapes.len().saturating_sub(1);
                shapes
                    .into_iter()
                    .enumerate()
                    .map(|(l, (inputs, outputs))| Layer::Linear {
                        inputs,
                        outputs,
                        relu: l < last,
                    })
                    .collect()
            }
            ModelSpec::DeepChainCnn { .. } => vec![
                Layer::Conv2d {
                    in_channels: 1,
                    out_channels: 10,
                    kernel: 3,
                    padding: 1,
                    relu: true,
                },
                Layer::MaxPool2d { size: 2 },
                Layer::Flatten,
                Layer::Linear {
                    inputs: 10 * 14 * 14,
                    outputs: 128,
                    relu: true,
                },
                Layer::Linear {
                    inputs: 128,
                    outputs: out,
                    relu: false,
                },
            ],
            ModelSpec::LeNet5 { .. } => vec![
                Layer::Conv2d {
                    in_channels: 1,
                    out_channels: 6,
                    kernel: 5,
                    padding: 2,
                    relu: true,
                },
                Layer::MaxPool2d { size: 2 },
                Layer::Conv2d {
                    in_channels: 6,
                    out_channels: 16,
                    kernel: 5,
                    padding: 0,
                    relu: true,
                },
                Layer::MaxPool2d { size: 2 },
                Layer::Flatten,
                Layer::Linear {
                    inputs: 16 * 5 * 5,
                    outputs: 120,
                    relu: true,
                },
                Layer::Linear {
                    inputs: 120,
                    outputs: 84,
                    relu: true,
                },
                Layer::Linear {
                    inputs: 84,
                    outputs: out,
                    relu: false,
                },
            ],
        }
    }

    /// The per-sample shape after each layer, checking that every layer fits its input.
    fn propagate_shapes(&self) -> Result<Vec<Vec<usize>>> {
        let mut shape = self.input_shape();
        let mut shapes = Vec::new();
        let bad = |l: usize, what: &str| {
            ModelError::InvalidSpec(format!("layer {l} ({what}) does not fit its input"))
        };
        for (l, layer) in self.layers().iter().enumerate() {
            shape = match (*layer, shape.as_slice()) {
                (
                    Layer::Linear {
                        inputs, outputs, ..
                    },
                    &[n],
                ) if n == inputs => vec![outputs],
                (
                    Layer::Conv2d {
                        in_channels,
                        out_channels,
                        kernel,
                        padding,
                        ..
                    },
                    &[c, h, w],
                ) if c == in_channels && h + 2 * padding >= kernel && w + 2 * padding >= kernel => {
                    vec![
                        out_channels,
                        h + 2 * padding + 1 - kernel,
                        w + 2 * padding + 1 - kernel,
                    ]
                }
                (Layer::MaxPool2d { size }, &[c, h, w]) if size > 0 && h >= size && w >= size => {
                    vec![c, h / size, w / size]
                }
                (Layer::Flatten, &[c, h, w]) => vec![c * h * w],
                (Layer::Linear { .. }, _) => return Err(bad(l, "linear")),
                (Layer::Conv2d { .. }, _) => return Err(bad(l, "conv2d")),
                (Layer::MaxPool2d { .. }, _) => return Err(bad(l, "maxpool2d")),
                (Layer::Flatten, _) => return Err(bad(l, "flatten")),
            };
            shapes.push(shape.clone());
        }
        Ok(shapes)
    }

    pub(crate) fn head(&self) -> Head {
        if self.num_classes() == 2 {
            Head::Sigmoid
        } else {
            Head::Softmax
        }
    }

    /// `(inputs, outputs)` of each layer of a dense network, input to output (meaningless for
    /// the CNNs; [`DenseModel`] rejects them).
    pub(crate) fn layer_shapes(&self) -> Vec<(usize, usize)> {
        let out = self.outputs();
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
        if self.backend() == Backend::Torch {
            // Fixed architectures: check that the layer list is consistent.
            self.propagate_shapes()?;
            return Ok(());
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
        self.layers().iter().map(Layer::num_params).sum()
    }

    /// The canonical text the hash is computed over: architecture, shapes, head, and the layout
    /// of the flat parameter vector, so two models with equal hashes interpret the same vector
    /// the same way whatever their backend.
    pub fn canonical_description(&self) -> String {
        if self.backend() == Backend::Torch {
            return self.cnn_description();
        }
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

    fn cnn_description(&self) -> String {
        let name = match self {
            ModelSpec::DeepChainCnn { .. } => "deepchain-cnn",
            ModelSpec::LeNet5 { .. } => "lenet5",
            _ => "dense",
        };
        let mut s = format!("fedchain-model-spec v1\nfamily cnn\nname {name}\n");
        let dims = |d: &[usize]| d.iter().map(usize::to_string).collect::<Vec<_>>().join("x");
        s += &format!("input {}\n", dims(&self.input_shape()));
        // An invalid spec has no meaningful shapes; its description still names its layers.
        let shapes = self.propagate_shapes().unwrap_or_default();
        for (l, layer) in self.layers().iter().enumerate() {
            let relu = |r: bool| if r { " relu" } else { "" };
            s += &format!("layer {l} ");
            s += &match *layer {
                Layer::Linear {
                    inputs,
                    outputs,
                    relu: r,
                } => format!("linear {inputs}x{outputs}{}", relu(r)),
                Layer::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    padding,
                    relu: r,
                } => format!(
                    "conv2d {in_channels}->{out_channels} kernel {kernel}x{kernel} stride 1 \
                     padding {padding}{}",
                    relu(r)
                ),
                Layer::MaxPool2d { size } => format!("maxpool2d {size}x{size} stride {size}"),
                Layer::Flatten => "flatten".to_string(),
            };
            if let Some(out) = shapes.get(l) {
                s += &format!(" -> {}", dims(out));
            }
            s += "\n";
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
        s += "layout per parameterized layer: conv2d weight[out][in][ky][kx] row-major f32, \
              linear weight[out][in] row-major f32, then bias[out] f32; \
              input pixels row-major; flatten order (channel, y, x)\n";
        s
    }

    /// SHA-256 of [`ModelSpec::canonical_description`].
    pub fn hash(&self) -> SpecHash {
        SpecHash(Sha256::digest(self.canonical_description().as_bytes()).into())
    }

    /// Instantiates the model with seeded initial parameters: a [`DenseModel`] for logistic
    /// regression and MLPs, a `TchModel` for the CNNs. Without the `torch` feature the CNNs give
    /// [`ModelError::BackendUnavailable`].
    pub fn build(&self, seed: u64) -> Result<Box<dyn Model>> {
        match self.backend() {
            Backend::Dense => Ok(Box::new(DenseModel::new(self.clone(), seed)?)),
            Backend::Torch => self.build_torch(seed),
        }
    }

    #[cfg(feature = "torch")]
    fn build_torch(&self, seed: u64) -> Result<Box<dyn Model>> {
        Ok(Box::new(crate::torch::TchModel::new(self.clone(), seed)?))
    }

    #[cfg(not(feature = "torch"))]
    fn build_torch(&self, _seed: u64) -> Result<Box<dyn Model>> {
        self.validate()?;
        Err(ModelError::BackendUnavailable {
            spec: self.kind(),
            feature: "torch",
        })
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
    fn cnn_shapes_counts_and_descriptions() {
        let cnn = ModelSpec::DeepChainCnn { num_classes: 10 };
        cnn.validate().unwrap();
        assert_eq!(cnn.num_features(), 784);
        assert_eq!(
            cnn.num_params(),
            10 * 9 + 10 + 1960 * 128 + 128 + 128 * 10 + 10
        );
        assert_eq!(cnn.num_params(), 252_398);
        assert_eq!(cnn.propagate_shapes().unwrap()[2], vec![1960]);
        let lenet = ModelSpec::LeNet5 { num_classes: 10 };
        lenet.validate().unwrap();
        assert_eq!(lenet.num_params(), 61_706);
        assert_eq!(lenet.propagate_shapes().unwrap()[4], vec![400]);
        assert!(ModelSpec::LeNet5 { num_classes: 1 }.validate().is_err());
        // binary CNNs have one output logit, like the dense family
        assert_eq!(
            ModelSpec::DeepChainCnn { num_classes: 2 }.num_params(),
            252_398 - 9 * 129
        );
        assert_eq!(
            cnn.canonical_description(),
            "fedchain-model-spec v1\nfamily cnn\nname deepchain-cnn\ninput 1x28x28\n\
             layer 0 conv2d 1->10 kernel 3x3 stride 1 padding 1 relu -> 10x28x28\n\
             layer 1 maxpool2d 2x2 stride 2 -> 10x14x14\n\
             layer 2 flatten -> 1960\n\
             layer 3 linear 1960x128 relu -> 128\n\
             layer 4 linear 128x10 -> 10\n\
             head softmax cross-entropy\nclasses 10\nparams 252398\n\
             layout per parameterized layer: conv2d weight[out][in][ky][kx] row-major f32, \
             linear weight[out][in] row-major f32, then bias[out] f32; \
             input pixels row-major; flatten order (channel, y, x)\n"
        );
        let hashes = [
            cnn.hash(),
            lenet.hash(),
            ModelSpec::DeepChainCnn { num_classes: 2 }.hash(),
            ModelSpec::Mlp {
                num_features: 784,
                hidden: vec![128],
                num_classes: 10,
            }
            .hash(),
        ];
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(cnn.hash().to_string(), KNOWN_DEEPCHAIN_CNN_10);
    }

    /// SHA-256 of the DeepChain CNN's canonical text above, computed with Python's hashlib.
    const KNOWN_DEEPCHAIN_CNN_10: &str =
        "437ad016bc7043f69eda695c1ac49a99789e72f6f3dc5e0b0ef237d19340a753";

    #[test]
    fn backends_and_availability() {
        let cnn = ModelSpec::DeepChainCnn { num_classes: 10 };
        assert_eq!(cnn.backend(), Backend::Torch);
        assert_eq!(cnn.is_available(), cfg!(feature = "torch"));
        let lr = ModelSpec::LogisticRegression {
            num_features: 3,
            num_classes: 2,
        };
        assert_eq!(lr.backend(), Backend::Dense);
        assert!(lr.is_available());
        #[cfg(not(feature = "torch"))]
        assert!(matches!(
            cnn.build(0),
            Err(ModelError::BackendUnavailable {
                spec: "deepchain_cnn",
                feature: "torch"
            })
        ));
        // the dense backend refuses CNN specs instead of misreading them
        assert!(matches!(
            DenseModel::new(cnn, 0),
            Err(ModelError::InvalidSpec(_))
        ));
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
        for (spec, json) in [
            (
                ModelSpec::DeepChainCnn { num_classes: 10 },
                r#"{"kind":"deepchain_cnn","num_classes":10}"#,
            ),
            (
                ModelSpec::LeNet5 { num_classes: 10 },
                r#"{"kind":"lenet5","num_classes":10}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&spec).unwrap(), json);
            assert_eq!(serde_json::from_str::<ModelSpec>(json).unwrap(), spec);
            assert_eq!(
                json,
                format!(r#"{{"kind":"{}","num_classes":10}}"#, spec.kind())
            );
        }
    }
}
