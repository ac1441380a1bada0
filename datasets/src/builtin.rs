//! The small real datasets shipped inside the library (see `data/README.md` for provenance and
//! licences), so simulations run with no files around, and one fixed synthetic set for scale
//! experiments.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::csv::{from_bytes, CsvOptions, LabelColumn};
use crate::dataset::Dataset;
use crate::error::{DatasetError, Result};
use crate::synthetic::GaussianMixture;

/// A shipped dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// UCI Breast Cancer Wisconsin (Diagnostic): 569 rows, 30 features, 2 classes
    /// (0 = malignant, 1 = benign). CC BY 4.0.
    BreastCancer,
    /// UCI optical digits 8x8: 1797 rows, 64 features (0..16), 10 classes. CC BY 4.0.
    Digits,
    /// The first 5000 MNIST images: 784 features (0..255), 10 classes, 500 each. CC BY-SA 3.0.
    #[serde(rename = "mnist_5k")]
    Mnist5k,
    /// Generated, not shipped: [`GaussianMixture::default`] (10,000 rows, 32 features, 10
    /// balanced classes) with seed 0, for scale experiments where only the sizes matter.
    Synthetic,
}

static BREAST_CANCER: &[u8] = include_bytes!("../data/breast_cancer_wisconsin.csv.gz");
static DIGITS: &[u8] = include_bytes!("../data/optdigits_8x8.csv.gz");
static MNIST_5K: &[u8] = include_bytes!("../data/mnist_5k.csv.gz");

impl Builtin {
    /// Every shipped dataset.
    pub const ALL: [Builtin; 4] = [
        Builtin::BreastCancer,
        Builtin::Digits,
        Builtin::Mnist5k,
        Builtin::Synthetic,
    ];

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::BreastCancer => "breast_cancer",
            Builtin::Digits => "digits",
            Builtin::Mnist5k => "mnist_5k",
            Builtin::Synthetic => "synthetic",
        }
    }

    /// The embedded gzip CSV file (`None` for the generated [`Builtin::Synthetic`]).
    pub fn raw(self) -> Option<&'static [u8]> {
        match self {
            Builtin::BreastCancer => Some(BREAST_CANCER),
            Builtin::Digits => Some(DIGITS),
            Builtin::Mnist5k => Some(MNIST_5K),
            Builtin::Synthetic => None,
        }
    }

    /// How the embedded file is read (`None` for the generated [`Builtin::Synthetic`]).
    pub fn csv_options(self) -> Option<CsvOptions> {
        let (has_header, num_classes) = match self {
            Builtin::BreastCancer => (true, 2),
            Builtin::Digits => (true, 10),
            Builtin::Mnist5k => (false, 10),
            Builtin::Synthetic => return None,
        };
        Some(CsvOptions {
            has_header,
            label: LabelColumn::Last,
            num_classes: Some(num_classes),
            delimiter: b',',
        })
    }

    /// The dataset, with raw (unscaled) features. Parsed once per process, then cloned.
    pub fn load(self) -> Dataset {
        static CACHE: [OnceLock<Dataset>; 4] = [const { OnceLock::new() }; 4];
        CACHE[self as usize]
            .get_or_init(|| {
                // The bytes and the generator's parameters are compiled in and loaded by this
                // crate's tests (`builtin::tests`), so a failure here is a build defect, not bad
                // input.
                let loaded = match (self.raw(), self.csv_options()) {
                    (Some(raw), Some(options)) => from_bytes(raw, &options),
                    _ => GaussianMixture::default().generate(0),
                };
                loaded.unwrap_or_else(|e| panic!("builtin dataset {} is corrupt: {e}", self.name()))
            })
            .clone()
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Builtin {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self> {
        Builtin::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                DatasetError::invalid(
                    "dataset",
                    s,
                    "expected breast_cancer, digits, mnist_5k or synthetic",
                )
            })
    }
}

/// Breast cancer Wisconsin (569 x 30, binary).
pub fn breast_cancer() -> Dataset {
    Builtin::BreastCancer.load()
}

/// Optical digits 8x8 (1797 x 64, 10 classes).
pub fn digits() -> Dataset {
    Builtin::Digits.load()
}

/// MNIST, first 5000 images (5000 x 784, 10 classes).
pub fn mnist_5k() -> Dataset {
    Builtin::Mnist5k.load()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn shipped_datasets_parse_with_documented_shapes() {
        let bc = breast_cancer();
        assert_eq!(
            (bc.len(), bc.num_features(), bc.num_classes()),
            (569, 30, 2)
        );
        assert_eq!(bc.label_histogram(), vec![212, 357]);
        let d = digits();
        assert_eq!((d.len(), d.num_features(), d.num_classes()), (1797, 64, 10));
        assert!(d.features().iter().all(|&x| (0.0..=16.0).contains(&x)));
        let m = mnist_5k();
        assert_eq!(
            (m.len(), m.num_features(), m.num_classes()),
            (5000, 784, 10)
        );
        assert_eq!(m.label_histogram(), vec![500; 10]);
        assert!(m.features().iter().all(|&x| (0.0..=255.0).contains(&x)));
        let s = Builtin::Synthetic.load();
        assert_eq!(
            (s.len(), s.num_features(), s.num_classes()),
            (10_000, 32, 10)
        );
        assert_eq!(s.label_histogram(), vec![1_000; 10]);
        assert_eq!(s, GaussianMixture::default().generate(0).unwrap());
    }

    #[test]
    fn names_round_trip() {
        for b in Builtin::ALL {
            assert_eq!(b.name().parse::<Builtin>().unwrap(), b);
        }
        assert!("cifar".parse::<Builtin>().is_err());
    }
}
