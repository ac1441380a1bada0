//! The libtorch backend (`--features torch`): agreement with the ndarray backend, the flat
//! parameter contract, and the CNN bars on MNIST-5k.
//!
//! The bars print accuracy and time per epoch:
//! `cargo test -p fedchain-models --features torch --test it torch::bar_ -- --nocapture --test-threads 1`

use std::time::Instant;

use fedchain_datasets::{builtin, train_test_split, Dataset, GaussianMixture, Split};
use fedchain_models::{DenseModel, Model, ModelError, ModelSpec, SgdConfig, TchModel, TrainConfig};

use crate::{config, split, SPLIT_SEED};

/// Largest `|a - b| / (atol + |b|)` over two equally long vectors.
fn worst_rel(a: &[f32], b: &[f32], atol: f32) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (atol + y.abs()))
        .fold(0.0, f32::max)
}

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

/// Same spec, same parameters, same batch: the ndarray and libtorch implementations give the
/// same loss, gradient and evaluation, and the same parameters after training with one seed.
fn agree(spec: ModelSpec, data: &Dataset) {
    let mut dense = DenseModel::new(spec.clone(), 3).unwrap();
    let mut tch = TchModel::new(spec.clone(), 3).unwrap();
    // Same seeded initialization by construction.
    assert_eq!(dense.params(), tch.params(), "{spec:?}");
    assert_eq!(dense.spec_hash(), tch.spec_hash());
    // Move biases off zero so every parameter matters.
    let p: Vec<f32> = dense
        .params()
        .iter()
        .enumerate()
        .map(|(i, &w)| w + 0.05 * ((i % 7) as f32 - 3.0))
        .collect();
    dense.set_params(&p).unwrap();
    tch.set_params(&p).unwrap();
    assert_eq!(tch.params(), p);

    let (dl, dg) = dense.loss_and_gradient(data).unwrap();
    let (tl, tg) = tch.loss_and_gradient(data).unwrap();
    let loss_err = (dl - tl).abs() / dl.abs().max(1e-3);
    let grad_err = worst_rel(&tg, &dg, 1e-4);
    println!(
        "AGREE {spec:?}: loss {dl} vs {tl} (rel {loss_err:e}), gradient worst rel {grad_err:e}"
    );
    assert!(loss_err < 1e-5, "{spec:?}: loss {dl} vs {tl}");
    assert!(
        grad_err < 1e-3,
        "{spec:?}: gradient worst rel error {grad_err}"
    );

    let (de, te) = (dense.evaluate(data).unwrap(), tch.evaluate(data).unwrap());
    assert!(
        (de.loss - te.loss).abs() < 1e-5 * de.loss.abs().max(1.0),
        "{de:?} {te:?}"
    );
    assert_eq!(de.accuracy, te.accuracy);
    assert_eq!(de.num_samples, te.num_samples);
    match (de.auc, te.auc) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{a} {b}"),
        (a, b) => assert_eq!(a, b),
    }

    let cfg = config(2, 16, 0.02);
    let dr = dense.train(data, &cfg, 11).unwrap();
    let tr = tch.train(data, &cfg, 11).unwrap();
    let param_err = worst_rel(&tch.params(), &dense.params(), 1e-3);
    println!(
        "AGREE {spec:?}: after 2 epochs losses {:?} vs {:?}, params worst rel {param_err:e}",
        dr.epoch_losses, tr.epoch_losses
    );
    assert_eq!(dr.num_samples, tr.num_samples);
    assert!(
        param_err < 1e-3,
        "{spec:?}: parameters after training differ by {param_err}"
    );
    for (a, b) in dr.epoch_losses.iter().zip(&tr.epoch_losses) {
        assert!((a - b).abs() < 1e-4 * a.abs().max(1.0), "{dr:?} {tr:?}");
    }
}

#[test]
fn dense_and_tch_agree_on_loss_gradient_and_training() {
    let digits = split(&builtin::digits())
        .train
        .select(&(0..64).collect::<Vec<_>>())
        .unwrap();
    agree(
        ModelSpec::Mlp {
            num_features: 64,
            hidden: vec![32, 16],
            num_classes: 10,
        },
        &digits,
    );
    let blobs3 = blobs(48, 5, 3, 1);
    agree(
        ModelSpec::LogisticRegression {
            num_features: 5,
            num_classes: 3,
        },
        &blobs3,
    );
    let blobs2 = blobs(48, 5, 2, 2);
    agree(
        ModelSpec::Mlp {
            num_features: 5,
            hidden: vec![8],
            num_classes: 2,
        },
        &blobs2,
    );
    agree(
        ModelSpec::LogisticRegression {
            num_features: 5,
            num_classes: 2,
        },
        &blobs2,
    );
}

/// MNIST-5k split like the other bars, with pixels scaled to [0, 1] instead of standardized per
/// pixel (the CNNs want the image).
fn mnist_split() -> Split {
    let (features, labels) = builtin::mnist_5k().into_parts();
    let features = features.into_iter().map(|v| v / 255.0).collect();
    let data = Dataset::new(features, labels, 784, 10).unwrap();
    train_test_split(&data, 0.2, true, SPLIT_SEED).unwrap()
}

#[test]
fn cnn_params_round_trip_and_contract() {
    for (spec, count) in [
        (ModelSpec::DeepChainCnn { num_classes: 10 }, 252_398),
        (ModelSpec::LeNet5 { num_classes: 10 }, 61_706),
        (
            ModelSpec::DeepChainCnn { num_classes: 2 },
            252_398 - 9 * 129,
        ),
    ] {
        let a = spec.build(7).unwrap();
        assert_eq!(a.num_params(), count);
        assert_eq!(a.params().len(), count);
        assert_eq!(a.spec_hash(), spec.hash());
        assert_eq!(a.params(), spec.build(7).unwrap().params());
        assert_ne!(a.params(), spec.build(8).unwrap().params());
        let mut b = spec.build(0).unwrap();
        b.set_params(&a.params()).unwrap();
        assert_eq!(b.params(), a.params());
        let p: Vec<f32> = (0..count).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
        b.set_params(&p).unwrap();
        assert_eq!(b.params(), p);
        assert!(matches!(
            b.set_params(&p[1..]),
            Err(ModelError::ParamLength { expected, found }) if expected == count && found == count - 1
        ));
        let mut bad = p.clone();
        bad[5] = f32::NAN;
        assert!(matches!(
            b.set_params(&bad),
            Err(ModelError::NonFiniteParam { index: 5 })
        ));
        assert_eq!(
            b.params(),
            p,
            "a rejected vector leaves the parameters alone"
        );
    }
    let s = mnist_split();
    let data = s.test.select(&(0..100).collect::<Vec<_>>()).unwrap();
    let m = ModelSpec::DeepChainCnn { num_classes: 10 }
        .build(1)
        .unwrap();
    let (loss, grad) = m.loss_and_gradient(&data).unwrap();
    assert_eq!(grad.len(), m.num_params());
    assert!(grad.iter().all(|g| g.is_finite()) && grad.iter().any(|&g| g != 0.0));
    let eval = m.evaluate(&data).unwrap();
    assert!((loss - eval.loss).abs() < 1e-4, "{loss} {eval:?}");
    assert_eq!(eval.auc, None);
    // wrong width and too many classes are typed errors, not libtorch exceptions
    let digits = builtin::digits();
    assert!(matches!(
        m.evaluate(&digits),
        Err(ModelError::FeatureMismatch {
            expected: 784,
            found: 64
        })
    ));
    let binary = ModelSpec::LeNet5 { num_classes: 2 }.build(0).unwrap();
    assert!(matches!(
        binary.evaluate(&data),
        Err(ModelError::ClassMismatch { model: 2, data: 10 })
    ));
}

/// A binary CNN has one logit and reports an AUC.
#[test]
fn binary_cnn_has_auc() {
    let s = mnist_split();
    let keep: Vec<usize> = (0..s.test.len())
        .filter(|&i| s.test.labels()[i] < 2)
        .collect();
    let data = s.test.select(&keep).unwrap();
    let (features, labels) = data.into_parts();
    let data = Dataset::new(features, labels, 784, 2).unwrap();
    let mut m = ModelSpec::LeNet5 { num_classes: 2 }.build(0).unwrap();
    m.train(&data, &config(2, 16, 0.02), 0).unwrap();
    let e = m.evaluate(&data).unwrap();
    assert!(e.auc.unwrap() > 0.95 && e.accuracy > 0.9, "{e:?}");
}

#[test]
fn cnn_training_is_deterministic() {
    let s = mnist_split();
    let data = s.train.select(&(0..300).collect::<Vec<_>>()).unwrap();
    let spec = ModelSpec::DeepChainCnn { num_classes: 10 };
    let run = |seed| {
        let mut m = spec.build(1).unwrap();
        let r = m.train(&data, &config(1, 32, 0.02), seed).unwrap();
        (m.params(), r)
    };
    let (p1, r1) = run(5);
    let (p2, r2) = run(5);
    assert_eq!(p1, p2);
    assert_eq!(r1, r2);
    assert_ne!(p1, run(6).0);
}

/// Centralized training on the MNIST-5k train split (4,000 images), evaluation on the held-out
/// 1,000; prints accuracy and time per epoch.
fn cnn_bar(name: &str, spec: ModelSpec, config: TrainConfig, min_accuracy: f64) {
    let s = mnist_split();
    let mut model = spec.build(1).unwrap();
    let start = Instant::now();
    let report = model.train(&s.train, &config, 2).unwrap();
    let per_epoch = start.elapsed().as_secs_f64() / f64::from(config.epochs);
    let eval = model.evaluate(&s.test).unwrap();
    println!(
        "BAR {name}: {spec:?} params={} train={} test={} epochs={} threads={} train_loss={:.4} \
         test_loss={:.4} test_accuracy={:.4} time/epoch={:.2}s",
        model.num_params(),
        s.train.len(),
        s.test.len(),
        config.epochs,
        tch::get_num_threads(),
        report.loss,
        eval.loss,
        eval.accuracy,
        per_epoch,
    );
    assert!(
        eval.accuracy >= min_accuracy,
        "{name}: accuracy {} < {min_accuracy}",
        eval.accuracy
    );
}

#[test]
fn bar_mnist_5k_deepchain_cnn() {
    cnn_bar(
        "mnist_5k/deepchain_cnn",
        ModelSpec::DeepChainCnn { num_classes: 10 },
        TrainConfig {
            sgd: SgdConfig {
                weight_decay: 5e-4, // it overfits 4,000 images within a few epochs
                ..config(10, 32, 0.02).sgd
            },
            ..config(10, 32, 0.02)
        },
        0.95,
    );
}

#[test]
fn bar_mnist_5k_lenet5() {
    cnn_bar(
        "mnist_5k/lenet5",
        ModelSpec::LeNet5 { num_classes: 10 },
        config(20, 32, 0.01),
        0.95,
    );
}
