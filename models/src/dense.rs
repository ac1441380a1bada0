//! The pure-Rust (ndarray) dense network: logistic regression and MLPs.

use fedchain_datasets::Dataset;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::batches::Minibatches;
use crate::error::{ModelError, Result};
use crate::metrics::roc_auc;
use crate::spec::{Backend, Head, ModelSpec};
use crate::{Evaluation, Model, TrainConfig, TrainReport};

/// Rows evaluated per forward pass, to bound memory on large datasets.
const EVAL_CHUNK: usize = 1024;

/// Where one dense layer lives in the flat parameter vector.
#[derive(Clone, Copy, Debug)]
struct Layer {
    inputs: usize,
    outputs: usize,
    /// Offset of the `outputs x inputs` row-major weight matrix; the bias follows it.
    offset: usize,
}

impl Layer {
    fn bias_offset(&self) -> usize {
        self.offset + self.inputs * self.outputs
    }
}

/// A dense network (logistic regression when there is no hidden layer) with all parameters in
/// one flat `f32` vector laid out as [`ModelSpec::canonical_description`] says.
///
/// Computation is single-threaded and in a fixed order, so results are bit-for-bit
/// reproducible for a given seed on a given machine.
#[derive(Clone, Debug)]
pub struct DenseModel {
    spec: ModelSpec,
    head: Head,
    layers: Vec<Layer>,
    params: Vec<f32>,
}

impl DenseModel {
    /// Builds the model with seeded initial weights (He-uniform before a ReLU, Glorot-uniform
    /// for the output layer) and zero biases.
    pub fn new(spec: ModelSpec, seed: u64) -> Result<Self> {
        spec.validate()?;
        if spec.backend() != Backend::Dense {
            return Err(ModelError::InvalidSpec(format!(
                "{} is not a dense network; build it with ModelSpec::build",
                spec.kind()
            )));
        }
        let mut layers = Vec::new();
        let mut offset = 0;
        for (inputs, outputs) in spec.layer_shapes() {
            layers.push(Layer {
                inputs,
                outputs,
                offset,
            });
            offset += inputs * outputs + outputs;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = vec![0f32; offset];
        let last = layers.len() - 1;
        for (l, layer) in layers.iter().enumerate() {
            let limit = if l < last {
                (6.0 / layer.inputs as f32).sqrt()
            } else {
                (6.0 / (layer.inputs + layer.outputs) as f32).sqrt()
            };
            for w in &mut params[layer.offset..layer.bias_offset()] {
                *w = rng.gen_range(-limit..limit);
            }
        }
        Ok(DenseModel {
            head: spec.head(),
            spec,
            layers,
            params,
        })
    }

    fn weight(&self, layer: &Layer) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape(
            (layer.outputs, layer.inputs),
            &self.params[layer.offset..layer.bias_offset()],
        )
        .expect("layer layout is fixed at construction")
    }

    fn bias(&self, layer: &Layer) -> ArrayView1<'_, f32> {
        ArrayView1::from(&self.params[layer.bias_offset()..layer.bias_offset() + layer.outputs])
    }

    /// Post-activation outputs of every layer (the last one is the logits).
    fn forward(&self, x: ArrayView2<'_, f32>) -> Vec<Array2<f32>> {
        let mut acts: Vec<Array2<f32>> = Vec::with_capacity(self.layers.len());
        for (l, layer) in self.layers.iter().enumerate() {
            let mut z = {
                let input = acts.last().map_or(x.view(), |a| a.view());
                input.dot(&self.weight(layer).t())
            };
            z += &self.bias(layer);
            if l + 1 < self.layers.len() {
                z.mapv_inplace(|v| v.max(0.0));
            }
            acts.push(z);
        }
        acts
    }

    /// Per-row loss and `dloss/dlogit` (unscaled) of the head, written into `logits` in place
    /// when `want_delta`.
    fn head_loss(&self, logits: &mut Array2<f32>, y: &[u32], want_delta: bool) -> Vec<f64> {
        let mut losses = Vec::with_capacity(y.len());
        for (mut row, &label) in logits.rows_mut().into_iter().zip(y) {
            match self.head {
                Head::Sigmoid => {
                    let z = f64::from(row[0]);
                    let t = f64::from(label);
                    // stable BCE with logits: max(z,0) - z*t + ln(1 + e^-|z|)
                    losses.push(z.max(0.0) - z * t + (-z.abs()).exp().ln_1p());
                    if want_delta {
                        row[0] = (sigmoid(z) - t) as f32;
                    }
                }
                Head::Softmax => {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
                    let lse = f64::from(max) + sum.ln();
                    losses.push(lse - f64::from(row[label as usize]));
                    if want_delta {
                        row.mapv_inplace(|v| (f64::from(v) - lse).exp() as f32);
                        row[label as usize] -= 1.0;
                    }
                }
            }
        }
        losses
    }

    /// Sum of per-row losses of a batch, and the gradient of the batch's *mean* loss written
    /// into `grad` (same layout as the parameters).
    fn loss_grad_batch(&self, x: ArrayView2<'_, f32>, y: &[u32], grad: &mut [f32]) -> f64 {
        let mut acts = self.forward(x);
        let Some(mut delta) = acts.pop() else {
            return 0.0;
        };
        let loss: f64 = self.head_loss(&mut delta, y, true).iter().sum();
        delta /= y.len() as f32;
        for (l, layer) in self.layers.iter().enumerate().rev() {
            let input = if l == 0 { x.view() } else { acts[l - 1].view() };
            let (w_grad, b_grad) = grad[layer.offset..layer.bias_offset() + layer.outputs]
                .split_at_mut(layer.inputs * layer.outputs);
            let mut gw = ArrayViewMut2::from_shape((layer.outputs, layer.inputs), w_grad)
                .expect("layer layout is fixed at construction");
            general_mat_mul(1.0, &delta.t(), &input, 0.0, &mut gw);
            for (g, s) in b_grad.iter_mut().zip(delta.sum_axis(Axis(0))) {
                *g = s;
            }
            if l > 0 {
                let mut back = delta.dot(&self.weight(layer));
                back.zip_mut_with(&acts[l - 1], |d, &a| {
                    if a <= 0.0 {
                        *d = 0.0;
                    }
                });
                delta = back;
            }
        }
        loss
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
        Ok(())
    }

    fn view<'a>(&self, data: &'a Dataset) -> ArrayView2<'a, f32> {
        ArrayView2::from_shape((data.len(), data.num_features()), data.features())
            .expect("Dataset guarantees len * num_features values")
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Model for DenseModel {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn num_params(&self) -> usize {
        self.params.len()
    }

    fn params(&self) -> Vec<f32> {
        self.params.clone()
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.params.len() {
            return Err(ModelError::ParamLength {
                expected: self.params.len(),
                found: params.len(),
            });
        }
        if let Some(index) = params.iter().position(|p| !p.is_finite()) {
            return Err(ModelError::NonFiniteParam { index });
        }
        self.params.copy_from_slice(params);
        Ok(())
    }

    fn train(&mut self, data: &Dataset, config: &TrainConfig, seed: u64) -> Result<TrainReport> {
        config.validate()?;
        self.check_data(data)?;
        if data.is_empty() {
            return Err(ModelError::EmptyDataset);
        }
        let (n, d) = (data.len(), data.num_features());
        let sgd = &config.sgd;
        let mut grad = vec![0f32; self.params.len()];
        let mut velocity = vec![0f32; self.params.len()];
        let mut batches = Minibatches::new(data, config.batch_size, seed);
        let mut epoch_losses = Vec::with_capacity(config.epochs as usize);
        for epoch in 0..config.epochs {
            let loss_sum = batches.epoch(|xb, yb| {
                let x = ArrayView2::from_shape((yb.len(), d), xb).map_err(|e| {
                    ModelError::InvalidConfig {
                        name: "batch",
                        value: e.to_string(),
                        reason: "rows * features",
                    }
                })?;
                let l = self.loss_grad_batch(x, yb, &mut grad);
                for ((w, v), &g) in self.params.iter_mut().zip(&mut velocity).zip(&grad) {
                    *v = sgd.momentum * *v + g + sgd.weight_decay * *w;
                    *w -= sgd.learning_rate * *v;
                }
                Ok::<f64, ModelError>(l)
            })?;
            let loss = loss_sum / n as f64;
            if !loss.is_finite() || self.params.iter().any(|p| !p.is_finite()) {
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

    fn evaluate(&self, data: &Dataset) -> Result<Evaluation> {
        self.check_data(data)?;
        if data.is_empty() {
            return Err(ModelError::EmptyDataset);
        }
        let x = self.view(data);
        let mut loss_sum = 0f64;
        let mut correct = 0usize;
        let mut scores = Vec::new();
        let label_chunks = data.labels().chunks(EVAL_CHUNK);
        for (chunk, y) in x.axis_chunks_iter(Axis(0), EVAL_CHUNK).zip(label_chunks) {
            let mut logits = self.forward(chunk).pop().unwrap_or_default();
            for (row, &label) in logits.rows().into_iter().zip(y) {
                let predicted = match self.head {
                    Head::Sigmoid => u32::from(row[0] > 0.0),
                    Head::Softmax => argmax(row.iter().copied()),
                };
                correct += usize::from(predicted == label);
                if self.head == Head::Sigmoid {
                    scores.push(row[0]); // the logit ranks like P(class 1)
                }
            }
            loss_sum += self.head_loss(&mut logits, y, false).iter().sum::<f64>();
        }
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

    fn loss_and_gradient(&self, data: &Dataset) -> Result<(f32, Vec<f32>)> {
        self.check_data(data)?;
        if data.is_empty() {
            return Err(ModelError::EmptyDataset);
        }
        let mut grad = vec![0f32; self.params.len()];
        let loss = self.loss_grad_batch(self.view(data), data.labels(), &mut grad);
        Ok(((loss / data.len() as f64) as f32, grad))
    }
}

/// Index of the largest value (the first one on ties).
fn argmax(values: impl Iterator<Item = f32>) -> u32 {
    let mut best = (0u32, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i as u32, v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fedchain_datasets::GaussianMixture;

    fn blobs(n: usize, d: usize, k: usize, seed: u64) -> Dataset {
        GaussianMixture {
            samples: n,
            features: d,
            classes: k,
            separation: 1.5,
            noise: 1.0,
            imbalance: 0.0,
        }
        .generate(seed)
        .unwrap()
    }

    /// Central finite differences of the mean loss against the analytic gradient, computed in
    /// f64 on f32 parameters.
    fn grad_check(spec: ModelSpec) {
        let data = blobs(24, spec.num_features(), spec.num_classes(), 1);
        // ReLU is not differentiable at 0: pick the first initialization whose hidden
        // pre-activations are all well away from it, so finite differences never cross a kink.
        let (mut model, p) = (0..100)
            .map(|seed| {
                let mut m = DenseModel::new(spec.clone(), seed).unwrap();
                // move biases off zero so every parameter matters
                let p: Vec<f32> = m
                    .params()
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| w + 0.05 * ((i % 7) as f32 - 3.0))
                    .collect();
                m.set_params(&p).unwrap();
                (m, p)
            })
            .find(|(m, _)| min_abs_hidden_preactivation(m, &data) > 0.02)
            .unwrap();
        let (_, grad) = model.loss_and_gradient(&data).unwrap();
        let eps = 1e-3f32;
        let mut worst = 0f32;
        for i in 0..p.len() {
            let mut q = p.clone();
            q[i] = p[i] + eps;
            model.set_params(&q).unwrap();
            let (lp, _) = model.loss_and_gradient(&data).unwrap();
            q[i] = p[i] - eps;
            model.set_params(&q).unwrap();
            let (lm, _) = model.loss_and_gradient(&data).unwrap();
            let fd = (lp - lm) / (2.0 * eps);
            let err = (fd - grad[i]).abs() / (1e-2 + fd.abs().max(grad[i].abs()));
            worst = worst.max(err);
            assert!(
                err < 5e-3,
                "{spec:?}: param {i}: analytic {} vs numeric {fd}",
                grad[i]
            );
        }
        println!("{spec:?}: worst relative error {worst:e}");
    }

    fn min_abs_hidden_preactivation(m: &DenseModel, data: &Dataset) -> f32 {
        let x = m.view(data);
        let acts = m.forward(x.view());
        let mut min = f32::MAX;
        for (l, layer) in m.layers.iter().enumerate().take(m.layers.len() - 1) {
            let input = if l == 0 { x.view() } else { acts[l - 1].view() };
            let z = input.dot(&m.weight(layer).t()) + m.bias(layer);
            min = z.iter().fold(min, |acc, v| acc.min(v.abs()));
        }
        min
    }

    #[test]
    fn gradients_match_finite_differences() {
        grad_check(ModelSpec::LogisticRegression {
            num_features: 4,
            num_classes: 2,
        });
        grad_check(ModelSpec::LogisticRegression {
            num_features: 4,
            num_classes: 3,
        });
        grad_check(ModelSpec::Mlp {
            num_features: 5,
            hidden: vec![6, 4],
            num_classes: 3,
        });
        grad_check(ModelSpec::Mlp {
            num_features: 3,
            hidden: vec![5],
            num_classes: 2,
        });
    }

    #[test]
    fn training_is_deterministic_and_learns() {
        let data = blobs(400, 6, 3, 5);
        let spec = ModelSpec::Mlp {
            num_features: 6,
            hidden: vec![16],
            num_classes: 3,
        };
        let cfg = TrainConfig {
            epochs: 5,
            ..TrainConfig::default()
        };
        let run = |seed| {
            let mut m = DenseModel::new(spec.clone(), 1).unwrap();
            let r = m.train(&data, &cfg, seed).unwrap();
            (m.params(), r)
        };
        let (p1, r1) = run(9);
        let (p2, r2) = run(9);
        let (p3, _) = run(10);
        assert_eq!(p1, p2);
        assert_eq!(r1, r2);
        assert_ne!(p1, p3);
        assert_eq!(r1.num_samples, 400);
        assert_eq!(r1.epoch_losses.len(), 5);
        assert!(
            r1.epoch_losses[4] < r1.epoch_losses[0],
            "{:?}",
            r1.epoch_losses
        );
        let mut m = DenseModel::new(spec, 1).unwrap();
        let before = m.evaluate(&data).unwrap();
        m.set_params(&p1).unwrap();
        let after = m.evaluate(&data).unwrap();
        assert!(
            after.accuracy > before.accuracy && after.accuracy > 0.8,
            "{before:?} {after:?}"
        );
        assert_eq!(after.auc, None);
    }

    #[test]
    fn binary_evaluation_has_auc() {
        let data = blobs(300, 4, 2, 3);
        let mut m = DenseModel::new(
            ModelSpec::LogisticRegression {
                num_features: 4,
                num_classes: 2,
            },
            0,
        )
        .unwrap();
        m.train(
            &data,
            &TrainConfig {
                epochs: 10,
                ..TrainConfig::default()
            },
            0,
        )
        .unwrap();
        let e = m.evaluate(&data).unwrap();
        assert!(e.auc.unwrap() > 0.9 && e.accuracy > 0.8, "{e:?}");
        assert_eq!(e.num_samples, 300);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let mut m = DenseModel::new(
            ModelSpec::LogisticRegression {
                num_features: 4,
                num_classes: 2,
            },
            0,
        )
        .unwrap();
        assert!(matches!(
            m.set_params(&[0.0; 4]),
            Err(ModelError::ParamLength {
                expected: 5,
                found: 4
            })
        ));
        assert!(matches!(
            m.set_params(&[0.0, 0.0, f32::NAN, 0.0, 0.0]),
            Err(ModelError::NonFiniteParam { index: 2 })
        ));
        let wrong_width = blobs(10, 3, 2, 0);
        assert!(matches!(
            m.evaluate(&wrong_width),
            Err(ModelError::FeatureMismatch {
                expected: 4,
                found: 3
            })
        ));
        let too_many_classes = blobs(10, 4, 3, 0);
        assert!(matches!(
            m.train(&too_many_classes, &TrainConfig::default(), 0),
            Err(ModelError::ClassMismatch { model: 2, data: 3 })
        ));
        let empty = blobs(10, 4, 2, 0).select(&[]).unwrap();
        assert!(matches!(m.evaluate(&empty), Err(ModelError::EmptyDataset)));
        let mut cfg = TrainConfig::default();
        cfg.sgd.learning_rate = 1e30;
        let data = blobs(50, 4, 2, 0);
        assert!(matches!(
            m.train(&data, &cfg, 0),
            Err(ModelError::Diverged { .. })
        ));
    }
}
