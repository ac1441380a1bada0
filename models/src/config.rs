//! Training hyper-parameters.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Minibatch SGD with (heavy-ball) momentum and L2 weight decay:
/// `v = momentum * v + (g + weight_decay * w); w -= learning_rate * v`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgdConfig {
    /// Step size, > 0.
    pub learning_rate: f32,
    /// Momentum in [0, 1); 0 is plain SGD.
    pub momentum: f32,
    /// L2 penalty coefficient, >= 0 (added to the gradient, not to the reported loss).
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            learning_rate: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
        }
    }
}

/// One local training run: `epochs` passes over the data in seeded random minibatches.
/// The optimizer state (momentum) starts at zero on every call, as a hospital's local training
/// does in each federated round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the data, >= 1.
    pub epochs: u32,
    /// Rows per minibatch, >= 1 (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// The optimizer.
    pub sgd: SgdConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 1,
            batch_size: 32,
            sgd: SgdConfig::default(),
        }
    }
}

fn invalid(name: &'static str, value: impl std::fmt::Display, reason: &'static str) -> ModelError {
    ModelError::InvalidConfig {
        name,
        value: value.to_string(),
        reason,
    }
}

impl TrainConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(invalid("epochs", self.epochs, "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", self.batch_size, "must be at least 1"));
        }
        let s = &self.sgd;
        if !(s.learning_rate.is_finite() && s.learning_rate > 0.0) {
            return Err(invalid(
                "learning_rate",
                s.learning_rate,
                "must be finite and > 0",
            ));
        }
        if !(0.0..1.0).contains(&s.momentum) {
            return Err(invalid("momentum", s.momentum, "must be in [0, 1)"));
        }
        if !(s.weight_decay.is_finite() && s.weight_decay >= 0.0) {
            return Err(invalid(
                "weight_decay",
                s.weight_decay,
                "must be finite and >= 0",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        TrainConfig::default().validate().unwrap();
        let mut c = TrainConfig::default();
        c.sgd.momentum = 1.0;
        assert!(c.validate().is_err());
        c = TrainConfig {
            epochs: 0,
            ..TrainConfig::default()
        };
        assert!(c.validate().is_err());
        c = TrainConfig::default();
        c.sgd.learning_rate = f32::NAN;
        assert!(c.validate().is_err());
    }
}
