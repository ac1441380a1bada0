//! Seeded partitioners that spread one dataset across K hospitals, and per-hospital statistics.
//!
//! Every partitioner assigns each row to exactly one hospital and leaves no hospital empty;
//! the result depends only on the labels, the number of hospitals and the seed.

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};
use serde::{Deserialize, Serialize};

use crate::dataset::{label_histogram, Dataset};
use crate::error::{DatasetError, Result};

/// How rows are spread across hospitals.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Partitioner {
    /// Uniformly at random, equal sizes (within one row).
    Iid,
    /// Label skew: for every class, its rows are split across hospitals in proportions drawn
    /// from Dirichlet(alpha, ..., alpha). Small alpha (0.1) is very skewed, large (100) near IID.
    Dirichlet {
        /// Concentration, > 0.
        alpha: f64,
    },
    /// Quantity skew: labels IID, hospital sizes in proportions drawn from Dirichlet(alpha).
    Quantity {
        /// Concentration, > 0.
        alpha: f64,
    },
    /// Pathological non-IID (McMahan et al. 2017): rows sorted by label are cut into
    /// `hospitals * per_hospital` equal shards and each hospital gets `per_hospital` random shards,
    /// so it sees about that many classes.
    Shards {
        /// Shards per hospital, >= 1.
        per_hospital: usize,
    },
}

/// The rows of each hospital: `parts()[h]` lists the row indices of hospital `h`, ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    parts: Vec<Vec<usize>>,
}

/// Size and label histogram of one hospital's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HospitalStats {
    /// Hospital index.
    pub hospital: usize,
    /// Number of rows.
    pub size: usize,
    /// Rows per class.
    pub label_histogram: Vec<usize>,
}

impl Partitioner {
    /// Checks the parameters alone.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Partitioner::Iid => Ok(()),
            Partitioner::Dirichlet { alpha } | Partitioner::Quantity { alpha } => {
                if alpha.is_finite() && alpha > 0.0 {
                    Ok(())
                } else {
                    Err(DatasetError::invalid(
                        "alpha",
                        alpha,
                        "must be finite and > 0",
                    ))
                }
            }
            Partitioner::Shards { per_hospital: 0 } => Err(DatasetError::invalid(
                "per_hospital",
                0,
                "must be at least 1",
            )),
            Partitioner::Shards { .. } => Ok(()),
        }
    }

    /// Partitions `data` across `hospitals` hospitals. Deterministic for a given seed.
    pub fn partition(&self, data: &Dataset, hospitals: usize, seed: u64) -> Result<Partition> {
        self.partition_labels(data.labels(), data.num_classes(), hospitals, seed)
    }

    /// Like [`Partitioner::partition`], from the labels alone.
    pub fn partition_labels(
        &self,
        labels: &[u32],
        num_classes: usize,
        hospitals: usize,
        seed: u64,
    ) -> Result<Partition> {
        self.validate()?;
        let n = labels.len();
        if hospitals == 0 {
            return Err(DatasetError::invalid("hospitals", 0, "must be at least 1"));
        }
        if n < hospitals {
            return Err(DatasetError::invalid(
                "hospitals",
                hospitals,
                "exceeds the number of rows",
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut parts = vec![Vec::new(); hospitals];
        match *self {
            Partitioner::Iid => {
                let order = shuffled(n, &mut rng);
                let sizes = apportion(n, &vec![1.0; hospitals]);
                cut(&order, &sizes, &mut parts);
            }
            Partitioner::Quantity { alpha } => {
                let order = shuffled(n, &mut rng);
                let p = dirichlet(alpha, hospitals, &mut rng)?;
                // one row each first, so nobody is empty; the rest by the drawn proportions
                let sizes: Vec<usize> = apportion(n - hospitals, &p)
                    .into_iter()
                    .map(|s| s + 1)
                    .collect();
                cut(&order, &sizes, &mut parts);
            }
            Partitioner::Dirichlet { alpha } => {
                let mut by_class = vec![Vec::new(); num_classes.max(1)];
                for i in shuffled(n, &mut rng) {
                    if let Some(class) = by_class.get_mut(labels[i] as usize) {
                        class.push(i);
                    }
                }
                for class in &by_class {
                    let p = dirichlet(alpha, hospitals, &mut rng)?;
                    cut(class, &apportion(class.len(), &p), &mut parts);
                }
                fill_empty(&mut parts);
            }
            Partitioner::Shards { per_hospital } => {
                let shards = hospitals
                    .checked_mul(per_hospital)
                    .filter(|&s| s <= n)
                    .ok_or_else(|| {
                        DatasetError::invalid(
                            "per_hospital",
                            per_hospital,
                            "hospitals * per_hospital exceeds the number of rows",
                        )
                    })?;
                let mut order = shuffled(n, &mut rng);
                order.sort_by_key(|&i| labels[i]); // stable: random order within a class
                let mut shard_rows = vec![Vec::new(); shards];
                cut(&order, &apportion(n, &vec![1.0; shards]), &mut shard_rows);
                shard_rows.shuffle(&mut rng);
                for (s, rows) in shard_rows.into_iter().enumerate() {
                    parts[s / per_hospital].extend(rows);
                }
            }
        }
        for p in &mut parts {
            p.sort_unstable();
        }
        Ok(Partition { parts })
    }
}

impl fmt::Display for Partitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioner::Iid => write!(f, "iid"),
            Partitioner::Dirichlet { alpha } => write!(f, "dirichlet:{alpha}"),
            Partitioner::Quantity { alpha } => write!(f, "quantity:{alpha}"),
            Partitioner::Shards { per_hospital } => write!(f, "shards:{per_hospital}"),
        }
    }
}

impl FromStr for Partitioner {
    type Err = DatasetError;

    /// Parses `iid`, `dirichlet:<alpha>`, `quantity:<alpha>` or `shards:<per_hospital>`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            DatasetError::invalid(
                "partitioner",
                s,
                "expected iid, dirichlet:<alpha>, quantity:<alpha> or shards:<k>",
            )
        };
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let p = match (kind, arg) {
            ("iid", None) => Partitioner::Iid,
            ("dirichlet", Some(a)) => Partitioner::Dirichlet {
                alpha: a.parse().map_err(|_| bad())?,
            },
            ("quantity", Some(a)) => Partitioner::Quantity {
                alpha: a.parse().map_err(|_| bad())?,
            },
            ("shards", Some(a)) => Partitioner::Shards {
                per_hospital: a.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        };
        p.validate()?;
        Ok(p)
    }
}

impl Partition {
    /// Row indices per hospital.
    pub fn parts(&self) -> &[Vec<usize>] {
        &self.parts
    }

    /// Number of hospitals.
    pub fn num_hospitals(&self) -> usize {
        self.parts.len()
    }

    /// Sizes per hospital.
    pub fn sizes(&self) -> Vec<usize> {
        self.parts.iter().map(Vec::len).collect()
    }

    /// Materializes each hospital's dataset. All keep the whole dataset's `num_classes`.
    pub fn apply(&self, data: &Dataset) -> Result<Vec<Dataset>> {
        self.parts.iter().map(|p| data.select(p)).collect()
    }

    /// Size and label histogram of each hospital.
    pub fn stats(&self, data: &Dataset) -> Result<Vec<HospitalStats>> {
        let labels = data.labels();
        self.parts
            .iter()
            .enumerate()
            .map(|(hospital, rows)| {
                let own: Vec<u32> = rows
                    .iter()
                    .map(|&i| {
                        labels.get(i).copied().ok_or(DatasetError::IndexOutOfRange {
                            index: i,
                            len: labels.len(),
                        })
                    })
                    .collect::<Result<_>>()?;
                Ok(HospitalStats {
                    hospital,
                    size: rows.len(),
                    label_histogram: label_histogram(&own, data.num_classes()),
                })
            })
            .collect()
    }
}

impl HospitalStats {
    /// Statistics of one hospital's dataset.
    pub fn of(hospital: usize, data: &Dataset) -> HospitalStats {
        HospitalStats {
            hospital,
            size: data.len(),
            label_histogram: data.label_histogram(),
        }
    }
}

fn shuffled(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(rng);
    v
}

/// Appends consecutive runs of `rows` of the given sizes to the parts (sizes sum to rows.len()).
fn cut(rows: &[usize], sizes: &[usize], parts: &mut [Vec<usize>]) {
    let mut start = 0;
    for (part, &size) in parts.iter_mut().zip(sizes) {
        part.extend_from_slice(&rows[start..start + size]);
        start += size;
    }
}

/// Splits `total` into integers proportional to `weights` (largest remainder; ties to the lower
/// index), so the sizes always sum to `total`.
pub(crate) fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let quotas: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut sizes: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
    let assigned: usize = sizes.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        (quotas[b] - quotas[b].floor())
            .total_cmp(&(quotas[a] - quotas[a].floor()))
            .then(a.cmp(&b))
    });
    for &i in order.iter().cycle().take(total.saturating_sub(assigned)) {
        sizes[i] += 1;
    }
    sizes
}

/// One draw from a symmetric Dirichlet(alpha) over `k` categories, via normalized Gamma draws.
/// With tiny alpha every Gamma draw can underflow to zero; the draw is then one-hot at a
/// uniformly chosen category, which is the limit of the distribution.
fn dirichlet(alpha: f64, k: usize, rng: &mut ChaCha8Rng) -> Result<Vec<f64>> {
    let gamma = Gamma::new(alpha, 1.0)
        .map_err(|_| DatasetError::invalid("alpha", alpha, "must be finite and > 0"))?;
    let mut p: Vec<f64> = (0..k).map(|_| gamma.sample(rng)).collect();
    let sum: f64 = p.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        p.iter_mut().for_each(|x| *x /= sum);
    } else {
        p = vec![0.0; k];
        p[rng.gen_range(0..k)] = 1.0;
    }
    Ok(p)
}

/// Moves one row into each empty part from the currently largest part.
fn fill_empty(parts: &mut [Vec<usize>]) {
    for h in 0..parts.len() {
        if parts[h].is_empty() {
            let Some(largest) = (0..parts.len()).max_by_key(|&j| (parts[j].len(), usize::MAX - j))
            else {
                return;
            };
            if let Some(row) = parts[largest].pop() {
                parts[h].push(row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn labels(n: usize, classes: u32) -> Vec<u32> {
        (0..n as u32).map(|i| i % classes).collect()
    }

    fn check_cover(p: &Partition, n: usize) {
        let mut all: Vec<usize> = p.parts().iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
        assert!(p.parts().iter().all(|h| !h.is_empty()));
    }

    #[test]
    fn apportion_sums() {
        assert_eq!(apportion(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
        assert_eq!(apportion(7, &[0.0, 1.0]), vec![0, 7]);
        assert_eq!(apportion(5, &[0.5, 0.25, 0.25]).iter().sum::<usize>(), 5);
    }

    #[test]
    fn iid_is_balanced() {
        let l = labels(103, 5);
        let p = Partitioner::Iid.partition_labels(&l, 5, 10, 1).unwrap();
        check_cover(&p, 103);
        assert!(p.sizes().iter().all(|&s| s == 10 || s == 11));
    }

    #[test]
    fn shards_limit_classes() {
        let l = labels(1000, 10);
        let p = Partitioner::Shards { per_hospital: 2 }
            .partition_labels(&l, 10, 10, 3)
            .unwrap();
        check_cover(&p, 1000);
        for rows in p.parts() {
            let mut classes: Vec<u32> = rows.iter().map(|&i| l[i]).collect();
            classes.sort_unstable();
            classes.dedup();
            assert!(classes.len() <= 2, "{classes:?}");
        }
    }

    #[test]
    fn small_alpha_is_skewed_large_alpha_is_not() {
        let l = labels(2000, 10);
        let ds = Dataset::new(vec![0.0; 2000], l, 1, 10).unwrap();
        let max_share = |alpha| {
            let p = Partitioner::Dirichlet { alpha }
                .partition(&ds, 10, 5)
                .unwrap();
            check_cover(&p, 2000);
            let stats = p.stats(&ds).unwrap();
            stats
                .iter()
                .map(|s| *s.label_histogram.iter().max().unwrap() as f64 / s.size as f64)
                .sum::<f64>()
                / 10.0
        };
        assert!(max_share(0.05) > 0.6);
        assert!(max_share(1000.0) < 0.2);
    }

    #[test]
    fn extreme_alpha_still_fills_everyone() {
        let l = labels(50, 2);
        for part in [
            Partitioner::Dirichlet { alpha: 1e-4 },
            Partitioner::Quantity { alpha: 1e-4 },
        ] {
            let p = part.partition_labels(&l, 2, 50, 9).unwrap();
            check_cover(&p, 50);
        }
    }

    #[test]
    fn errors() {
        let l = labels(10, 2);
        assert!(Partitioner::Iid.partition_labels(&l, 2, 0, 0).is_err());
        assert!(Partitioner::Iid.partition_labels(&l, 2, 11, 0).is_err());
        assert!(Partitioner::Dirichlet { alpha: 0.0 }
            .partition_labels(&l, 2, 2, 0)
            .is_err());
        assert!(Partitioner::Quantity { alpha: f64::NAN }
            .partition_labels(&l, 2, 2, 0)
            .is_err());
        assert!(Partitioner::Shards { per_hospital: 3 }
            .partition_labels(&l, 2, 4, 0)
            .is_err());
        assert!(Partitioner::Shards { per_hospital: 0 }
            .partition_labels(&l, 2, 4, 0)
            .is_err());
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["iid", "dirichlet:0.5", "quantity:2", "shards:2"] {
            let p: Partitioner = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        for s in [
            "",
            "iid:1",
            "dirichlet",
            "dirichlet:-1",
            "shards:x",
            "other:1",
        ] {
            assert!(s.parse::<Partitioner>().is_err(), "{s}");
        }
    }
}
