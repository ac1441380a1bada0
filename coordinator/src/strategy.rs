//! How the server turns the round's average update into the next global parameters.
//!
//! Hospitals send updates (FedAvg: local - global after E epochs; FedSGD: -lr * gradient), the
//! engine produces their sample-weighted average exactly (packed Paillier sums, weights inside
//! the packing headroom), and a [`Strategy`] applies it. Strategies are stateless functions of
//! (global, average) so that any validator or auditor can recompute the next parameters from
//! the ledger.

use serde::{Deserialize, Serialize};

/// Server update rule.
pub trait Strategy: Send + Sync + std::fmt::Debug {
    /// The next global parameters.
    fn apply(&self, global: &[f32], average_update: &[f32]) -> Vec<f32>;
}

/// theta' = theta + lr * average: FedAvg and FedSGD with lr = 1 (the hospitals already scaled
/// their updates), a damped or amplified server step otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerStep {
    pub lr: f32,
}

impl Default for ServerStep {
    fn default() -> Self {
        Self { lr: 1.0 }
    }
}

impl Strategy for ServerStep {
    fn apply(&self, global: &[f32], average_update: &[f32]) -> Vec<f32> {
        global
            .iter()
            .zip(average_update)
            .map(|(g, u)| g + self.lr * u)
            .collect()
    }
}

/// Hash of a parameter vector as stored on chain (SHA-256 of its little-endian bytes).
pub fn params_hash(params: &[f32]) -> fedchain_ledger::Hash {
    fedchain_ledger::Hash::sha256(&fedchain_worker::encode_plain(params))
}
