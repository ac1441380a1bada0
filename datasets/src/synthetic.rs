//! A synthetic Gaussian-mixture classification generator for scale experiments.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DatasetError, Result};
use crate::partition::apportion;

/// One isotropic Gaussian blob per class. Class means are drawn from N(0, separation^2 I);
/// samples are mean + N(0, noise^2 I). Class `c` gets a share of the rows proportional to
/// `(c + 1)^-imbalance` (0 = balanced, 1 = Zipf-like), so the label skew is a knob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GaussianMixture {
    /// Rows to generate.
    pub samples: usize,
    /// Features per row.
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
    /// Standard deviation of the class means around the origin.
    pub separation: f32,
    /// Standard deviation of each blob.
    pub noise: f32,
    /// Class-size skew exponent, >= 0.
    pub imbalance: f64,
}

impl Default for GaussianMixture {
    fn default() -> Self {
        GaussianMixture {
            samples: 10_000,
            features: 32,
            classes: 10,
            separation: 1.0,
            noise: 1.0,
            imbalance: 0.0,
        }
    }
}

impl GaussianMixture {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(DatasetError::invalid("samples", 0, "must be at least 1"));
        }
        if self.features == 0 {
            return Err(DatasetError::invalid("features", 0, "must be at least 1"));
        }
        if self.classes == 0 || self.classes > u32::MAX as usize {
            return Err(DatasetError::invalid(
                "classes",
                self.classes,
                "must be in 1..=u32::MAX",
            ));
        }
        if !(self.separation.is_finite() && self.separation >= 0.0) {
            return Err(DatasetError::invalid(
                "separation",
                self.separation,
                "must be finite and >= 0",
            ));
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err(DatasetError::invalid(
                "noise",
                self.noise,
                "must be finite and >= 0",
            ));
        }
        if !(self.imbalance.is_finite() && self.imbalance >= 0.0) {
            return Err(DatasetError::invalid(
                "imbalance",
                self.imbalance,
                "must be finite and >= 0",
            ));
        }
        if self.samples.checked_mul(self.features).is_none() {
            return Err(DatasetError::invalid(
                "samples",
                self.samples,
                "samples * features overflows",
            ));
        }
        Ok(())
    }

    /// Generates the dataset; rows are in a seeded random order. Deterministic for a given seed.
    pub fn generate(&self, seed: u64) -> Result<Dataset> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = self.features;
        let means: Vec<f32> = (0..self.classes * d)
            .map(|_| {
                let z: f32 = StandardNormal.sample(&mut rng);
                self.separation * z
            })
            .collect();
        let weights: Vec<f64> = (0..self.classes)
            .map(|c| ((c + 1) as f64).powf(-self.imbalance))
            .collect();
        let mut labels: Vec<u32> = apportion(self.samples, &weights)
            .into_iter()
            .enumerate()
            .flat_map(|(c, count)| std::iter::repeat_n(c as u32, count))
            .collect();
        labels.shuffle(&mut rng);
        let mut features = Vec::with_capacity(self.samples * d);
        for &l in &labels {
            let mean = &means[l as usize * d..(l as usize + 1) * d];
            features.extend(mean.iter().map(|&m| {
                let z: f32 = StandardNormal.sample(&mut rng);
                m + self.noise * z
            }));
        }
        Dataset::new(features, labels, d, self.classes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shape_balance_and_determinism() {
        let g = GaussianMixture {
            samples: 1000,
            features: 8,
            classes: 4,
            ..GaussianMixture::default()
        };
        let a = g.generate(3).unwrap();
        assert_eq!((a.len(), a.num_features(), a.num_classes()), (1000, 8, 4));
        assert_eq!(a.label_histogram(), vec![250; 4]);
        assert_eq!(a, g.generate(3).unwrap());
        assert_ne!(a, g.generate(4).unwrap());
    }

    #[test]
    fn imbalance_skews_classes() {
        let g = GaussianMixture {
            samples: 1000,
            classes: 4,
            imbalance: 1.0,
            ..GaussianMixture::default()
        };
        let h = g.generate(0).unwrap().label_histogram();
        assert_eq!(h.iter().sum::<usize>(), 1000);
        assert!(h.windows(2).all(|w| w[0] > w[1]), "{h:?}");
    }

    #[test]
    fn rejects_bad_parameters() {
        let bad = [
            GaussianMixture {
                samples: 0,
                ..Default::default()
            },
            GaussianMixture {
                classes: 0,
                ..Default::default()
            },
            GaussianMixture {
                noise: f32::NAN,
                ..Default::default()
            },
            GaussianMixture {
                imbalance: -1.0,
                ..Default::default()
            },
            GaussianMixture {
                samples: usize::MAX,
                ..Default::default()
            },
        ];
        for g in bad {
            assert!(g.generate(0).is_err(), "{g:?}");
        }
    }
}
