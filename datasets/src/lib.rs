//! Datasets for fedchain: loaders (CSV, MNIST IDX), the small real datasets shipped inside the
//! crate, seeded train/test splits, partitioners that spread a dataset across K hospitals, and a
//! synthetic Gaussian-mixture generator.
//!
//! The core type is [`Dataset`]: features as one flat row-major `f32` buffer (n x d), `u32`
//! labels below `num_classes`. This crate knows nothing about models.
//!
//! ```
//! use fedchain_datasets::{builtin, train_test_split, Partitioner};
//!
//! let data = builtin::breast_cancer();
//! let mut split = train_test_split(&data, 0.2, true, 42)?;
//! split.standardize()?; // fitted on the training split only
//! let partition = Partitioner::Dirichlet { alpha: 0.5 }.partition(&split.train, 5, 7)?;
//! let hospitals = partition.apply(&split.train)?;
//! assert_eq!(hospitals.len(), 5);
//! # Ok::<(), fedchain_datasets::DatasetError>(())
//! ```

pub mod builtin;
pub mod csv;
mod dataset;
mod error;
mod gz;
pub mod idx;
mod partition;
mod split;
mod synthetic;

pub use builtin::Builtin;
pub use dataset::{Dataset, Scaler};
pub use error::{DatasetError, Location, Result};
pub use gz::maybe_gunzip;
pub use partition::{HospitalStats, Partition, Partitioner};
pub use split::{train_test_split, Split};
pub use synthetic::GaussianMixture;
