//! libtorch models through `tch` (the `torch` cargo feature): the DeepChain CNN and LeNet-5, and
//! the dense family (logistic regression, MLP) for cross-checking against [`crate::DenseModel`].
//!
//! Runs on the CPU. All randomness is drawn in Rust from the seed (initial weights from a
//! ChaCha8 stream, minibatch order as in [`crate::DenseModel`]); no libtorch operation used here
//! is random, so `tch::manual_seed` (process-global, racy across threads) is not needed.
//! Results are reproducible for a given seed and libtorch thread count on a given machine.
//!
//! libtorch's intra-op thread pool is process-wide: it is set once, on the first model built,
//! to `FEDCHAIN_TORCH_THREADS` if set, else to [`std::thread::available_parallelism`] (which
//! respects CPU affinity and cgroup quotas, unlike OpenMP's default); [`set_num_threads`]
//! changes it.

use std::fmt;
use std::sync::Once;

use fedchain_datasets::Dataset;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Reduction, TchError, Tensor};

use crate::batches::Minibatches;
use crate::dense::DenseModel;
use crate::error::{ModelError, Result};
use crate::metrics::roc_auc;
use crate::spec::{Backend, Head, Layer, ModelSpec};
use crate::{Evaluation, Model, TrainConfig, TrainReport};

/// Rows evaluated per forward pass, to bound memory on large datasets.
const EVAL_CHUNK: usize = 1024;

/// The environment variable that sets libtorch's thread count on first use.
pub const THREADS_ENV: &str = "FEDCHAIN_TORCH_THREADS";

static THREADS: Once = Once::new();

fn init_threads() {
    THREADS.call_once(|| {
        let n = std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1);
        tch::set_num_threads(i32::try_from(n).unwrap_or(i32::MAX));
    });
}

/// Sets libtorch's intra-op thread count for the whole process (e.g. 1 when many models train
/// in parallel on their own threads).
pub fn set_num_threads(n: usize) {
    THREADS.call_once(|| {});
    tch::set_num_threads(i32::try_from(n.max(1)).unwrap_or(i32::MAX));
}

impl From<TchError> for ModelError {
    fn from(e: TchError) -> Self {
        ModelError::Torch(e.to_string())
    }
}

/// A model of any [`ModelSpec`] run by libtorch on the CPU, with the flat parameter layout of
/// [`ModelSpec::canonical_description`]: for each parameterized layer in order, its weight
/// (`[out][in]` for linear, `[out][in][ky][kx]` for conv2d, row-major) then its bias.
/// For logistic regression and MLPs that is exactly [`crate::DenseModel`]'s layout, and
/// [`TchModel::new`] draws the same initial parameters for the same seed.
pub struct TchModel {
    spec: ModelSpec,
    head: Head,
    layers: Vec<Layer>,
    /// `[-1, ...per-sample input shape]`.
    input_shape: Vec<i64>,
    /// Weight and bias of each parameterized layer, in layout order; leaves that require grad.
    params: Vec<Tensor>,
    num_params: usize,
}

impl fmt::Debug for TchModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TchModel")
            .field("spec", &self.spec)
            .field("num_params", &self.num_params)
            .finish_non_exhaustive()
    }
}

fn to_i64(dims: &[usize]) -> Vec<i64> {
    dims.iter().map(|&d| d as i64).collect()
}

impl TchModel {
    /// Builds the model with seeded initial weights and zero biases: He-uniform for layers
    /// followed by a ReLU, Glorot-uniform for the output layer (for the dense family, the same
    /// values as [`crate::DenseModel::new`]).
    pub fn new(spec: ModelSpec, seed: u64) -> Result<Self> {
        spec.validate()?;
        init_threads();
        let layers = spec.layers();
        let mut params = Vec::new();
        for layer in &layers {
            for shape in layer.param_shapes().into_iter().flatten() {
                let t = Tensor::f_zeros(to_i64(&shape), (Kind::Float, Device::Cpu))?;
                params.push(t.f_set_requires_grad(true)?);
            }
        }
        let mut input_shape = vec![-1];
        input_shape.extend(to_i64(&spec.input_shape()));
        let mut model = TchModel {
            head: spec.head(),
            num_params: spec.num_params(),
            spec,
            layers,
            input_shape,
            params,
        };
        let init = match model.spec.backend() {
            Backend::Dense => DenseModel::new(model.spec.clone(), seed)?.params(),
            Backend::Torch => model.initial_params(seed),
        };
        model.write_params(&init)?;
        Ok(model)
    }

    fn initial_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut flat = Vec::with_capacity(self.num_params);
        let param_layers: Vec<&Layer> = self
            .layers
            .iter()
            .filter(|l| l.param_shapes().is_some())
            .collect();
        for (i, layer) in param_layers.iter().enumerate() {
            let Some([w, b]) = layer.param_shapes() else {
                continue;
            };
            let limit = if i + 1 < param_layers.len() {
                (6.0 / layer.fan_in() as f32).sqrt()
            } else {
                (6.0 / (layer.fan_in() + layer.fan_out()) as f32).sqrt()
            };
            let n: usize = w.iter().product();
            flat.extend((0..n).map(|_| rng.gen_range(-limit..limit)));
            flat.extend(std::iter::repeat_n(0f32, b.iter().product()));
        }
        flat
    }

    /// Copies a checked flat vector into the parameter tensors.
    fn write_params(&mut self, flat: &[f32]) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            let mut offset = 0;
            for p in &mut self.params {
                let n = p.numel();
                let src =
                    Tensor::f_from_slice(&flat[offset..offset + n])?.f_view(p.size().as_slice())?;
                p.f_copy_(&src)?;
                offset += n;
            }
            Ok(())
        })
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        if data.num_features() != self.spec.num_features() {
            return Err(ModelError::FeatureMismatch {
                expected: self.spec.num_features(),
                found: data.num_features(),
            });
        }
        if data.num_classes() > self.spec.num_classes() {
            return Err(ModelError::ClassMismatch {
                model: self.spec.num_classes(),
                data: data.num_classes(),
            });
        }
        if data.is_empty() {
            return Err(ModelError::EmptyDataset);
        }
        Ok(())
    }

    /// A batch as tensors: inputs in the model's input shape, and labels.
    fn batch(&self, features: &[f32], labels: &[u32]) -> Result<(Tensor, Tensor), TchError> {
        let x = Tensor::f_from_slice(features)?.f_view(self.input_shape.as_slice())?;
        let y = match self.head {
            Head::Sigmoid => {
                let y: Vec<f32> = labels.iter().map(|&l| l as f32).collect();
                Tensor::f_from_slice(&y)?
            }
            Head::Softmax => {
                let y: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
                Tensor::f_from_slice(&y)?
            }
        };
        Ok((x, y))
    }

    /// Logits, `[batch, outputs]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut params = self.params.iter();
        let mut next = || {
            params
                .next()
                .ok_or_else(|| TchError::Shape("missing parameter tensor".into()))
        };
        let mut h = x.shallow_clone();
        for layer in &self.layers {
            h = match *layer {
                Layer::Linear { relu, .. } => {
                    let (w, b) = (next()?, next()?);
                    let z = h.f_linear(w, Some(b))?;
                    if relu {
                        z.f_relu()?
                    } else {
                        z
                    }
                }
                Layer::Conv2d { padding, relu, .. } => {
                    let (w, b) = (next()?, next()?);
                    let p = padding as i64;
                    let z = h.f_conv2d(w, Some(b), [1, 1], [p, p], [1, 1], 1)?;
                    if relu {
                        z.f_relu()?
                    } else {
                        z
                    }
                }
                Layer::MaxPool2d { size } => {
                    let s = size as i64;
                    h.f_max_pool2d([s, s], [s, s], [0, 0], [1, 1], false)?
                }
                Layer::Flatten => h.f_flatten(1, -1)?,
            };
        }
        Ok(h)
    }

    /// Cross-entropy of the head, reduced as asked.
    fn loss(&self, logits: &Tensor, y: &Tensor, reduction: Reduction) -> Result<Tensor, TchError> {
        match self.head {
            Head::Sigmoid => logits
                .f_squeeze_dim(1)?
                .f_binary_cross_entropy_with_logits::<Tensor>(y, None, None, reduction),
            Head::Softmax => logits.f_cross_entropy_loss::<Tensor>(y, None, reduction, -100, 0.0),
        }
    }

    /// Mean loss of a batch and its gradient with respect to every parameter tensor.
    fn loss_grads(&self, x: &Tensor, y: &Tensor) -> Result<(f64, Vec<Tensor>), TchError> {
        let loss = self.loss(&self.forward(x)?, y, Reduction::Mean)?;
        let grads = Tensor::f_run_backward(&[&loss], &self.params, false, false)?;
        Ok((loss.f_double_value(&[])?, grads))
    }

    fn flatten(tensors: &[Tensor], total: usize) -> Result<Vec<f32>, TchError> {
        let mut flat = vec![0f32; total];
        let mut offset = 0;
        for t in tensors {
            let n = t.numel();
            t.f_detach()?
                .f_contiguous()?
                .f_copy_data(&mut flat[offset..offset + n], n)?;
            offset += n;
        }
        Ok(flat)
    }

    fn train_impl(
        &mut self,
        data: &Dataset,
        config: &TrainConfig,
        seed: u64,
    ) -> Result<TrainReport> {
        let n = data.len();
        let sgd = &config.sgd;
        let mut velocity = self
            .params
            .iter()
            .map(Tensor::f_zeros_like)
            .collect::<Result<Vec<_>, _>>()?;
        let mut batches = Minibatches::new(data, config.batch_size, seed);
        let mut epoch_losses = Vec::with_capacity(config.epochs as usize);
        for epoch in 0..config.epochs {
            let loss_sum = batches.epoch(|xb, yb| {
                let (x, y) = self.batch(xb, yb)?;
                let (loss, grads) = self.loss_grads(&x, &y)?;
                // v = momentum * v + (g + weight_decay * w); w -= learning_rate * v
                tch::no_grad(|| -> Result<(), TchError> {
                    for ((w, v), g) in self.params.iter_mut().zip(&mut velocity).zip(&grads) {
                        // in-place ops also return a handle to the same tensor
                        let _ = v.f_mul_scalar_(f64::from(sgd.momentum))?;
                        let _ = v.f_add_(g)?;
                        if sgd.weight_decay != 0.0 {
                            let _ = v.f_add_(&w.f_mul_scalar(f64::from(sgd.weight_decay))?)?;
                        }
                        let _ = w.f_sub_(&v.f_mul_scalar(f64::from(sgd.learning_rate))?)?;
                    }
                    Ok(())
                })?;
                Ok::<f64, ModelError>(loss * yb.len() as f64)
            })?;
            let loss = loss_sum / n as f64;
            if !loss.is_finite() || !self.params_finite()? {
                return Err(ModelError::Diverged { epoch });
            }
            epoch_losses.push(loss as f32);
        }
        Ok(TrainReport {
            loss: epoch_losses.last().copied().unwrap_or(f32::NAN),
            epoch_losses,
            num_samples: n,
        })
    }

    fn params_finite(&self) -> Result<bool, TchError> {
        tch::no_grad(|| {
            for p in &self.params {
                if p.f_isfinite()?.f_all()?.f_int64_value(&[])? == 0 {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    fn evaluate_impl(&self, data: &Dataset) -> Result<Evaluation, TchError> {
        let d = data.num_features();
        let mut loss_sum = 0f64;
        let mut correct = 0usize;
        let mut scores = Vec::new();
        tch::no_grad(|| -> Result<(), TchError> {
            let chunks = data.features().chunks(EVAL_CHUNK * d);
            for (x, y) in chunks.zip(data.labels().chunks(EVAL_CHUNK)) {
                let (xt, yt) = self.batch(x, y)?;
                let logits = self.forward(&xt)?;
                loss_sum += self
                    .loss(&logits, &yt, Reduction::Sum)?
                    .f_double_value(&[])?;
                let predicted: Vec<i64> = match self.head {
                    Head::Sigmoid => {
                        let z = Vec::<f32>::try_from(&logits.f_flatten(0, -1)?)?;
                        let p = z.iter().map(|&v| i64::from(v > 0.0)).collect();
                        scores.extend(z); // the logit ranks like P(class 1)
                        p
                    }
                    Head::Softmax => Vec::<i64>::try_from(&logits.f_argmax(1, false)?)?,
                };
                correct += predicted
                    .iter()
                    .zip(y)
                    .filter(|(&p, &l)| p == i64::from(l))
                    .count();
            }
            Ok(())
        })?;
        let positive: Vec<bool> = data.labels().iter().map(|&l| l == 1).collect();
        Ok(Evaluation {
            loss: (loss_sum / data.len() as f64) as f32,
            accuracy: correct as f64 / data.len() as f64,
            auc: if scores.is_empty() {
                None
            } else {
                roc_auc(&scores, &positive)
            },
            num_samples: data.len(),
        })
    }
}

impl Model for TchModel {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn num_params(&self) -> usize {
        self.num_params
    }

    fn params(&self) -> Vec<f32> {
        Self::flatten(&self.params, self.num_params)
            .expect("parameter tensors are contiguous f32 CPU tensors of the spec's shapes")
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.num_params {
            return Err(ModelError::ParamLength {
                expected: self.num_params,
                found: params.len(),
            });
        }
        if let Some(index) = params.iter().position(|p| !p.is_finite()) {
            return Err(ModelError::NonFiniteParam { index });
        }
        self.write_params(params)
    }

    fn train(&mut self, data: &Dataset, config: &TrainConfig, seed: u64) -> Result<TrainReport> {
        config.validate()?;
        self.check_data(data)?;
        self.train_impl(data, config, seed)
    }

    fn evaluate(&self, data: &Dataset) -> Result<Evaluation> {
        self.check_data(data)?;
        Ok(self.evaluate_impl(data)?)
    }

    fn loss_and_gradient(&self, data: &Dataset) -> Result<(f32, Vec<f32>)> {
        self.check_data(data)?;
        let (x, y) = self.batch(data.features(), data.labels())?;
        let (loss, grads) = self.loss_grads(&x, &y)?;
        Ok((loss as f32, Self::flatten(&grads, self.num_params)?))
    }
}
