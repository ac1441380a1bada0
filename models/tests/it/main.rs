//! Integration tests for fedchain-models: the accuracy bars of issue 4 on the shipped datasets,
//! and the Model trait used the way the federation uses it (flat parameters, FedAvg).
//!
//! The bars print accuracy and time per epoch:
//! `cargo test --release -p fedchain-models --test it bar_ -- --nocapture --test-threads 1`
//! (add `--features torch` for the CNN bars and the libtorch tests in `torch.rs`).
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use fedchain_datasets::{builtin, train_test_split, Dataset, Partitioner, Split};
use fedchain_models::{Model, ModelError, ModelSpec, SgdConfig, TrainConfig};
use proptest::prelude::*;

#[cfg(feature = "torch")]
mod torch;

const SPLIT_SEED: u64 = 42;

fn split(data: &Dataset) -> Split {
    let mut s = train_test_split(data, 0.2, true, SPLIT_SEED).unwrap();
    s.standardize().unwrap();
    s
}

/// Centralized training on the train split, evaluation on the held-out test split.
/// Prints accuracy and wall time per epoch (run with --nocapture to see it).
fn bar(name: &str, data: &Dataset, spec: ModelSpec, config: TrainConfig, min_accuracy: f64) {
    let s = split(data);
    let mut model = spec.build(1).unwrap();
    let start = Instant::now();
    let report = model.train(&s.train, &config, 2).unwrap();
    let per_epoch = 1e3 * start.elapsed().as_secs_f64() / f64::from(config.epochs);
    let eval = model.evaluate(&s.test).unwrap();
    println!(
        "BAR {name}: {spec:?} params={} train={} test={} epochs={} train_loss={:.4} test_loss={:.4} \
         test_accuracy={:.4} auc={:?} time/epoch={:.2}ms",
        model.num_params(),
        s.train.len(),
        s.test.len(),
        config.epochs,
        report.loss,
        eval.loss,
        eval.accuracy,
        eval.auc,
        per_epoch,
    );
    assert!(
        eval.accuracy >= min_accuracy,
        "{name}: accuracy {} < {min_accuracy}",
        eval.accuracy
    );
}

fn config(epochs: u32, batch_size: usize, learning_rate: f32) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size,
        sgd: SgdConfig {
            learning_rate,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
    }
}

#[test]
fn bar_breast_cancer_logistic_regression() {
    let spec = ModelSpec::LogisticRegression {
        num_features: 30,
        num_classes: 2,
    };
    bar(
        "breast_cancer/logreg",
        &builtin::breast_cancer(),
        spec,
        config(30, 32, 0.01),
        0.95,
    );
}

#[test]
fn bar_digits_mlp() {
    let spec = ModelSpec::Mlp {
        num_features: 64,
        hidden: vec![64],
        num_classes: 10,
    };
    bar(
        "digits/mlp",
        &builtin::digits(),
        spec,
        config(30, 32, 0.02),
        0.95,
    );
}

#[test]
fn bar_mnist_5k_mlp() {
    let spec = ModelSpec::Mlp {
        num_features: 784,
        hidden: vec![128],
        num_classes: 10,
    };
    bar(
        "mnist_5k/mlp",
        &builtin::mnist_5k(),
        spec,
        config(20, 64, 0.01),
        0.90,
    );
}

/// The trait is all the federation needs: flat parameters out, weighted average, parameters in.
#[test]
fn fedavg_over_hospitals_through_the_trait() {
    let s = split(&builtin::digits());
    let hospitals = Partitioner::Iid
        .partition(&s.train, 5, 3)
        .unwrap()
        .apply(&s.train)
        .unwrap();
    let spec = ModelSpec::Mlp {
        num_features: 64,
        hidden: vec![32],
        num_classes: 10,
    };
    let mut global = spec.build(0).unwrap();
    let mut locals: Vec<Box<dyn Model>> = (0..5).map(|_| spec.build(0).unwrap()).collect();
    let cfg = config(1, 32, 0.02);
    for round in 0..20u64 {
        let theta = global.params();
        let mut sum = vec![0f64; theta.len()];
        let mut total = 0usize;
        for (h, (local, data)) in locals.iter_mut().zip(&hospitals).enumerate() {
            local.set_params(&theta).unwrap();
            let report = local.train(data, &cfg, round * 100 + h as u64).unwrap();
            for (acc, p) in sum.iter_mut().zip(local.params()) {
                *acc += f64::from(p) * report.num_samples as f64;
            }
            total += report.num_samples;
            assert_eq!(local.spec_hash(), global.spec_hash());
        }
        let next: Vec<f32> = sum.iter().map(|s| (s / total as f64) as f32).collect();
        global.set_params(&next).unwrap();
    }
    let eval = global.evaluate(&s.test).unwrap();
    println!(
        "FEDAVG digits/mlp[32], 5 IID hospitals, 20 rounds x 1 epoch: test_accuracy={:.4}",
        eval.accuracy
    );
    assert!(eval.accuracy > 0.9, "{eval:?}");
}

#[test]
fn params_round_trip_and_reproducible_builds() {
    let spec = ModelSpec::Mlp {
        num_features: 64,
        hidden: vec![16, 8],
        num_classes: 10,
    };
    let a = spec.build(7).unwrap();
    let b = spec.build(7).unwrap();
    assert_eq!(a.params(), b.params());
    assert_ne!(a.params(), spec.build(8).unwrap().params());
    assert_eq!(a.num_params(), spec.num_params());
    let mut c = spec.build(0).unwrap();
    c.set_params(&a.params()).unwrap();
    let data = split(&builtin::digits()).test;
    assert_eq!(c.evaluate(&data).unwrap(), a.evaluate(&data).unwrap());
    let (loss, grad) = a.loss_and_gradient(&data).unwrap();
    assert_eq!(grad.len(), a.num_params());
    assert!((loss - a.evaluate(&data).unwrap().loss).abs() < 1e-5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever finite parameters arrive (e.g. a badly aggregated update), evaluation gives
    /// finite numbers (stable log-sum-exp / BCE-with-logits), never NaN or a panic; non-finite
    /// parameters are rejected with a typed error.
    #[test]
    fn any_finite_params_evaluate_finitely(
        scale in 1e-3f32..1e4,
        seed in any::<u64>(),
        hidden in prop::collection::vec(1usize..12, 0..3),
        classes in 2usize..5,
    ) {
        let data = fedchain_datasets::GaussianMixture {
            samples: 40, features: 6, classes, ..Default::default()
        }.generate(seed).unwrap();
        let spec = ModelSpec::Mlp { num_features: 6, hidden, num_classes: classes };
        let mut model = spec.build(seed).unwrap();
        let params: Vec<f32> = model.params().iter().map(|p| p * scale).collect();
        model.set_params(&params).unwrap();
        let eval = model.evaluate(&data).unwrap();
        prop_assert!(eval.loss.is_finite() && (0.0..=1.0).contains(&eval.accuracy));
        let (loss, grad) = model.loss_and_gradient(&data).unwrap();
        prop_assert!(loss.is_finite() && grad.iter().all(|g| g.is_finite()));
        let mut bad = params.clone();
        bad[0] = f32::INFINITY;
        let rejected = matches!(model.set_params(&bad), Err(ModelError::NonFiniteParam { index: 0 }));
        prop_assert!(rejected);
    }
}
