//! The core in-memory dataset: row-major f32 features, u32 labels.

use std::fmt;

use crate::error::{DatasetError, Location, Result};

/// A labelled classification dataset held in memory.
///
/// Features are one flat row-major `f32` buffer of `len() * num_features()` values; labels are
/// `u32` below `num_classes()`. The invariants (matching lengths, at least one feature, finite
/// values, labels in range) are checked once in [`Dataset::new`] and hold for every value of this
/// type, so consumers (models, partitioners) need not re-check them.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    labels: Vec<u32>,
    num_features: usize,
    num_classes: usize,
}

impl fmt::Debug for Dataset {
    // Deliberately not derived: a derived Debug would print millions of numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("rows", &self.len())
            .field("num_features", &self.num_features)
            .field("num_classes", &self.num_classes)
            .finish_non_exhaustive()
    }
}

impl Dataset {
    /// Builds a dataset, checking every invariant.
    pub fn new(
        features: Vec<f32>,
        labels: Vec<u32>,
        num_features: usize,
        num_classes: usize,
    ) -> Result<Self> {
        if num_features == 0 {
            return Err(DatasetError::NoFeatures);
        }
        if num_classes == 0 {
            return Err(DatasetError::invalid(
                "num_classes",
                0,
                "must be at least 1",
            ));
        }
        if labels.len().checked_mul(num_features) != Some(features.len()) {
            return Err(DatasetError::ShapeMismatch {
                features: features.len(),
                labels: labels.len(),
                num_features,
            });
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(DatasetError::NonFinite {
                at: Location::Item(i / num_features),
                column: i % num_features,
            });
        }
        if let Some((i, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= num_classes)
        {
            return Err(DatasetError::LabelOutOfRange {
                at: Location::Item(i),
                label: u64::from(label),
                num_classes,
            });
        }
        Ok(Dataset {
            features,
            labels,
            num_features,
            num_classes,
        })
    }

    /// Number of rows (samples).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per row (`d`).
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Number of classes; every label is below it.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The flat row-major feature buffer (`len() x num_features()`).
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The labels, one per row.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Row `i`'s features, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.num_features)?;
        self.features.get(start..start + self.num_features)
    }

    /// Iterates over `(features, label)` rows.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = (&[f32], u32)> + '_ {
        self.features
            .chunks_exact(self.num_features)
            .zip(self.labels.iter().copied())
    }

    /// A new dataset made of the given rows, in the given order (repeats allowed).
    /// Keeps `num_classes`, so every part of a partition agrees with the whole.
    pub fn select(&self, indices: &[usize]) -> Result<Dataset> {
        let len = self.len();
        let mut features = Vec::with_capacity(indices.len() * self.num_features);
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            let row = self
                .row(index)
                .ok_or(DatasetError::IndexOutOfRange { index, len })?;
            features.extend_from_slice(row);
            labels.push(self.labels[index]);
        }
        Ok(Dataset {
            features,
            labels,
            num_features: self.num_features,
            num_classes: self.num_classes,
        })
    }

    /// Number of rows of each class (`num_classes()` entries).
    pub fn label_histogram(&self) -> Vec<usize> {
        label_histogram(&self.labels, self.num_classes)
    }

    /// Splits into the feature buffer and the labels.
    pub fn into_parts(self) -> (Vec<f32>, Vec<u32>) {
        (self.features, self.labels)
    }
}

pub(crate) fn label_histogram(labels: &[u32], num_classes: usize) -> Vec<usize> {
    let mut hist = vec![0; num_classes];
    for &l in labels {
        if let Some(slot) = hist.get_mut(l as usize) {
            *slot += 1;
        }
    }
    hist
}

/// A per-feature affine transform `x' = (x - shift) * scale`, fitted on one dataset (the training
/// split) and applied to others (the test split, or new data), so no statistic of held-out data
/// leaks into training.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaler {
    shift: Vec<f32>,
    scale: Vec<f32>,
}

impl Scaler {
    /// Z-score standardization: shift by the mean, divide by the population standard deviation.
    /// Constant features (standard deviation below 1e-6 of their magnitude or zero) are only
    /// centered, never divided by (almost) zero.
    pub fn standardize(train: &Dataset) -> Scaler {
        let d = train.num_features;
        let n = train.len().max(1) as f64;
        let mut mean = vec![0f64; d];
        for (row, _) in train.rows() {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += f64::from(x);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0f64; d];
        for (row, _) in train.rows() {
            for ((v, &m), &x) in var.iter_mut().zip(&mean).zip(row) {
                let c = f64::from(x) - m;
                *v += c * c;
            }
        }
        let scale = var
            .iter()
            .zip(&mean)
            .map(|(&v, &m)| {
                let sd = (v / n).sqrt();
                if sd > 1e-6 * m.abs().max(1.0) {
                    (1.0 / sd) as f32
                } else {
                    1.0
                }
            })
            .collect();
        Scaler {
            shift: mean.into_iter().map(|m| m as f32).collect(),
            scale,
        }
    }

    /// Features this scaler was fitted on.
    pub fn num_features(&self) -> usize {
        self.shift.len()
    }

    /// Applies the transform in place. Fails if the dimensions differ.
    pub fn apply(&self, data: &mut Dataset) -> Result<()> {
        if data.num_features != self.shift.len() {
            return Err(DatasetError::FeatureMismatch {
                expected: self.shift.len(),
                found: data.num_features,
            });
        }
        for row in data.features.chunks_exact_mut(self.shift.len()) {
            for ((x, &s), &k) in row.iter_mut().zip(&self.shift).zip(&self.scale) {
                *x = (*x - s) * k;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tiny() -> Dataset {
        Dataset::new(vec![1.0, 10.0, 2.0, 10.0, 3.0, 10.0], vec![0, 1, 1], 2, 2).unwrap()
    }

    #[test]
    fn new_checks_invariants() {
        assert!(matches!(
            Dataset::new(vec![1.0; 5], vec![0, 0], 2, 1),
            Err(DatasetError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            Dataset::new(vec![1.0; 4], vec![0, 3], 2, 2),
            Err(DatasetError::LabelOutOfRange {
                at: Location::Item(1),
                label: 3,
                ..
            })
        ));
        assert!(matches!(
            Dataset::new(vec![1.0, f32::NAN], vec![0], 2, 1),
            Err(DatasetError::NonFinite { column: 1, .. })
        ));
        assert!(matches!(
            Dataset::new(vec![], vec![0], 0, 1),
            Err(DatasetError::NoFeatures)
        ));
    }

    #[test]
    fn select_and_histogram() {
        let ds = tiny();
        let s = ds.select(&[2, 0]).unwrap();
        assert_eq!(s.features(), &[3.0, 10.0, 1.0, 10.0]);
        assert_eq!(s.labels(), &[1, 0]);
        assert_eq!(ds.label_histogram(), vec![1, 2]);
        assert!(matches!(
            ds.select(&[3]),
            Err(DatasetError::IndexOutOfRange { index: 3, len: 3 })
        ));
        assert_eq!(ds.row(3), None);
    }

    #[test]
    fn standardize_fits_on_train_only() {
        let train = tiny();
        let scaler = Scaler::standardize(&train);
        let mut t = train.clone();
        scaler.apply(&mut t).unwrap();
        let col0: Vec<f32> = t.rows().map(|(r, _)| r[0]).collect();
        let mean: f32 = col0.iter().sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-6);
        // constant column: centered, not blown up
        assert!(t.rows().all(|(r, _)| r[1] == 0.0));
        let mut test = Dataset::new(vec![4.0, 11.0], vec![0], 2, 2).unwrap();
        scaler.apply(&mut test).unwrap();
        let sd = (2.0f32 / 3.0).sqrt();
        assert!((test.features()[0] - 2.0 / sd).abs() < 1e-5);
        assert_eq!(test.features()[1], 1.0);
    }
}
