//! Seeded minibatches, shared by every backend so that the same seed gives the same batches.

use fedchain_datasets::Dataset;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Each epoch shuffles the row order with a ChaCha8 stream seeded once, then hands out
/// contiguous copies of each batch's features (row-major) and labels.
pub(crate) struct Minibatches<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    rng: ChaCha8Rng,
    batch: usize,
    xb: Vec<f32>,
    yb: Vec<u32>,
}

impl<'a> Minibatches<'a> {
    /// Batches of at most `batch_size` rows (at least one) of a non-empty dataset.
    pub(crate) fn new(data: &'a Dataset, batch_size: usize, seed: u64) -> Self {
        let n = data.len();
        let batch = batch_size.min(n).max(1);
        let d = data.num_features();
        Self {
            data,
            order: (0..n).collect(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            batch,
            xb: Vec::with_capacity(batch * d),
            yb: Vec::with_capacity(batch),
        }
    }

    /// One epoch: `step(features, labels)` for every batch in a fresh order; returns the sum
    /// of what the steps return (e.g. loss times rows), or the first error.
    pub(crate) fn epoch<E>(
        &mut self,
        mut step: impl FnMut(&[f32], &[u32]) -> Result<f64, E>,
    ) -> Result<f64, E> {
        let d = self.data.num_features();
        self.order.shuffle(&mut self.rng);
        let mut sum = 0f64;
        for rows in self.order.chunks(self.batch) {
            self.xb.clear();
            self.yb.clear();
            for &i in rows {
                self.xb
                    .extend_from_slice(&self.data.features()[i * d..(i + 1) * d]);
                self.yb.push(self.data.labels()[i]);
            }
            sum += step(&self.xb, &self.yb)?;
        }
        Ok(sum)
    }
}
