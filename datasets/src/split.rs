//! Seeded train/test splits.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Dataset;
use crate::error::{DatasetError, Result};

/// A train/test pair.
#[derive(Clone, Debug)]
pub struct Split {
    /// Rows to fit on.
    pub train: Dataset,
    /// Held-out rows.
    pub test: Dataset,
}

impl Split {
    /// Standardizes both halves with a [`crate::Scaler`] fitted on `train` only, and returns it
    /// (apply it to any later data too).
    pub fn standardize(&mut self) -> Result<crate::Scaler> {
        let scaler = crate::Scaler::standardize(&self.train);
        scaler.apply(&mut self.train)?;
        scaler.apply(&mut self.test)?;
        Ok(scaler)
    }
}

/// Splits `data` into train and test with about `test_fraction` of the rows in test.
/// With `stratified`, every class is split in that proportion (rounded per class), so both
/// halves keep the label distribution. Deterministic for a given seed. Both halves are
/// non-empty, and each half's rows are in a seeded random order.
pub fn train_test_split(
    data: &Dataset,
    test_fraction: f64,
    stratified: bool,
    seed: u64,
) -> Result<Split> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(DatasetError::invalid(
            "test_fraction",
            test_fraction,
            "must be in (0, 1)",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let groups: Vec<Vec<usize>> = if stratified {
        let mut by_class = vec![Vec::new(); data.num_classes()];
        for (i, &l) in data.labels().iter().enumerate() {
            by_class[l as usize].push(i);
        }
        by_class
    } else {
        vec![(0..data.len()).collect()]
    };
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for mut group in groups {
        group.shuffle(&mut rng);
        let k = ((group.len() as f64) * test_fraction).round() as usize;
        test.extend_from_slice(&group[..k]);
        train.extend_from_slice(&group[k..]);
    }
    if train.is_empty() || test.is_empty() {
        return Err(DatasetError::invalid(
            "test_fraction",
            test_fraction,
            "leaves the train or the test split empty for this dataset",
        ));
    }
    train.shuffle(&mut rng);
    test.shuffle(&mut rng);
    Ok(Split {
        train: data.select(&train)?,
        test: data.select(&test)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data(n: usize) -> Dataset {
        let f = (0..n).map(|i| i as f32).collect();
        let l = (0..n).map(|i| u32::from(i % 4 == 0)).collect();
        Dataset::new(f, l, 1, 2).unwrap()
    }

    #[test]
    fn stratified_keeps_proportions_and_covers() {
        let ds = data(100);
        let s = train_test_split(&ds, 0.2, true, 7).unwrap();
        assert_eq!(s.test.len(), 20);
        assert_eq!(s.test.label_histogram(), vec![15, 5]);
        let mut all: Vec<f32> = s
            .train
            .features()
            .iter()
            .chain(s.test.features())
            .copied()
            .collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, ds.features());
    }

    #[test]
    fn deterministic_and_seed_sensitive() {
        let ds = data(50);
        let a = train_test_split(&ds, 0.3, false, 1).unwrap();
        let b = train_test_split(&ds, 0.3, false, 1).unwrap();
        let c = train_test_split(&ds, 0.3, false, 2).unwrap();
        assert_eq!(a.test, b.test);
        assert_ne!(a.test, c.test);
    }

    #[test]
    fn rejects_bad_fractions() {
        let ds = data(3);
        for f in [0.0, 1.0, -0.5, f64::NAN, 0.01] {
            assert!(matches!(
                train_test_split(&ds, f, false, 0),
                Err(DatasetError::InvalidParameter { .. })
            ));
        }
    }
}
