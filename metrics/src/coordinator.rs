//! The aggregator's metrics.

use std::time::Duration;

use prometheus::{
    Gauge, HistogramTimer, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};

use crate::build::{
    gauge, histogram_vec, int_counter, int_counter_vec, int_gauge, int_gauge_vec, saturating_i64,
};
use crate::labels::{PenaltyReason, Phase, RejectReason, ShareOutcome, TransactionKind};
use crate::{MetricsError, Result};

/// Buckets of the round phase histograms, in seconds: 10 ms to 30 min. A phase is anything
/// from a ciphertext product of a few vectors (milliseconds) to local training of a CNN
/// (minutes); roughly 1-2.5-5 per decade keeps quantiles within a factor of ~2.5.
pub const PHASE_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1200.0, 1800.0,
];

/// The metrics of a coordinator (aggregator + ledger), in a registry of their own.
///
/// Exposition (all names prefixed `fedchain_`):
///
/// | metric | type | labels |
/// |---|---|---|
/// | `rounds_committed_total` | counter | |
/// | `rounds_voided_total` | counter | |
/// | `current_round` | gauge | |
/// | `round_phase_duration_seconds` | histogram | `phase` ([`Phase`]) |
/// | `submissions_total` | counter | `outcome` (accepted, rejected, penalized), `reason` (`none` when accepted, a [`RejectReason`] when rejected, a [`PenaltyReason`] when penalized) |
/// | `connected_hospitals` | gauge | |
/// | `ciphertexts_aggregated_total` | counter | |
/// | `received_bytes_total` | counter | |
/// | `ledger_height` | gauge | |
/// | `model_accuracy_ratio` | gauge | |
/// | `token_balance` | gauge | `account` (hex address or pseudonym) |
/// | `penalties_total` | counter | `reason` ([`PenaltyReason`]) |
/// | `decryption_shares_total` | counter | `outcome` ([`ShareOutcome`]) |
/// | `dropped_transactions_total` | counter | `kind` ([`TransactionKind`]): left out of a block by the chain rules or the verifier |
#[derive(Clone, Debug)]
pub struct CoordinatorMetrics {
    registry: Registry,
    rounds_committed: IntCounter,
    rounds_voided: IntCounter,
    current_round: IntGauge,
    phase_seconds: HistogramVec,
    submissions: IntCounterVec,
    connected_hospitals: IntGauge,
    ciphertexts_aggregated: IntCounter,
    received_bytes: IntCounter,
    ledger_height: IntGauge,
    model_accuracy: Gauge,
    token_balance: IntGaugeVec,
    penalties: IntCounterVec,
    decryption_shares: IntCounterVec,
    dropped_transactions: IntCounterVec,
}

const ACCEPTED: &str = "accepted";
const REJECTED: &str = "rejected";
const PENALIZED: &str = "penalized";
const NONE: &str = "none";

impl CoordinatorMetrics {
    /// Creates the metrics in a new registry, every closed label combination at zero.
    pub fn new() -> Result<Self> {
        let r = Registry::new();
        let m = Self {
            rounds_committed: int_counter(
                &r,
                "fedchain_rounds_committed_total",
                "Rounds committed to the ledger.",
            )?,
            rounds_voided: int_counter(
                &r,
                "fedchain_rounds_voided_total",
                "Rounds voided on the ledger (too few submissions or no decryption in time).",
            )?,
            current_round: int_gauge(
                &r,
                "fedchain_current_round",
                "Number of the round the coordinator is running (the last opened).",
            )?,
            phase_seconds: histogram_vec(
                &r,
                "fedchain_round_phase_duration_seconds",
                "Wall time of one phase of a round, in seconds.",
                &["phase"],
                PHASE_BUCKETS,
            )?,
            submissions: int_counter_vec(
                &r,
                "fedchain_submissions_total",
                "Hospital submissions received, by outcome and reason.",
                &["outcome", "reason"],
            )?,
            connected_hospitals: int_gauge(
                &r,
                "fedchain_connected_hospitals",
                "Hospitals currently connected to the coordinator.",
            )?,
            ciphertexts_aggregated: int_counter(
                &r,
                "fedchain_ciphertexts_aggregated_total",
                "Paillier ciphertexts multiplied into round aggregates.",
            )?,
            received_bytes: int_counter(
                &r,
                "fedchain_received_bytes_total",
                "Bytes received from hospitals (messages and payloads).",
            )?,
            ledger_height: int_gauge(
                &r,
                "fedchain_ledger_height",
                "Height of the last committed block.",
            )?,
            model_accuracy: gauge(
                &r,
                "fedchain_model_accuracy_ratio",
                "Accuracy of the current global model on the held-out set (0 to 1).",
            )?,
            token_balance: int_gauge_vec(
                &r,
                "fedchain_token_balance",
                "Incentive tokens held by an account (balance, deposits excluded).",
                &["account"],
            )?,
            penalties: int_counter_vec(
                &r,
                "fedchain_penalties_total",
                "Penalties (forfeited deposits) imposed, by reason.",
                &["reason"],
            )?,
            decryption_shares: int_counter_vec(
                &r,
                "fedchain_decryption_shares_total",
                "Decryption shares received, by outcome.",
                &["outcome"],
            )?,
            dropped_transactions: int_counter_vec(
                &r,
                "fedchain_dropped_transactions_total",
                "Transactions the chain rules or the verifier left out of a block, by kind.",
                &["kind"],
            )?,
            registry: r,
        };
        for kind in TransactionKind::ALL {
            m.dropped_transactions.with_label_values(&[kind.as_str()]);
        }
        for phase in Phase::ALL {
            m.phase_seconds.with_label_values(&[phase.as_str()]);
        }
        m.submissions.with_label_values(&[ACCEPTED, NONE]);
        for reason in RejectReason::ALL {
            m.submissions
                .with_label_values(&[REJECTED, reason.as_str()]);
        }
        for reason in [PenaltyReason::Equivocation, PenaltyReason::InvalidPayload] {
            m.submissions
                .with_label_values(&[PENALIZED, reason.as_str()]);
        }
        for reason in PenaltyReason::ALL {
            m.penalties.with_label_values(&[reason.as_str()]);
        }
        for outcome in ShareOutcome::ALL {
            m.decryption_shares.with_label_values(&[outcome.as_str()]);
        }
        Ok(m)
    }

    /// The registry to serve (see [`crate::serve`]); clones share the metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The exposition in the Prometheus text format.
    pub fn render(&self) -> Result<String> {
        crate::render(&self.registry)
    }

    /// Round `round` opened.
    pub fn round_opened(&self, round: u32) {
        self.current_round.set(i64::from(round));
    }

    /// A round was committed to the ledger.
    pub fn round_committed(&self) {
        self.rounds_committed.inc();
    }

    /// A round was voided on the ledger.
    pub fn round_voided(&self) {
        self.rounds_voided.inc();
    }

    /// One phase of a round took `elapsed`.
    pub fn observe_phase(&self, phase: Phase, elapsed: Duration) {
        self.phase_seconds
            .with_label_values(&[phase.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Starts timing a phase; the time is recorded when the timer is dropped (or
    /// `observe_duration` is called), discarded with `stop_and_discard`.
    pub fn start_phase(&self, phase: Phase) -> HistogramTimer {
        self.phase_seconds
            .with_label_values(&[phase.as_str()])
            .start_timer()
    }

    /// A submission was accepted (included in the next block).
    pub fn submission_accepted(&self) {
        self.submissions.with_label_values(&[ACCEPTED, NONE]).inc();
    }

    /// A submission was refused and its sender told why.
    pub fn submission_rejected(&self, reason: RejectReason) {
        self.submissions
            .with_label_values(&[REJECTED, reason.as_str()])
            .inc();
    }

    /// A submission was included with a penalty (equivocation, invalid payload). Record the
    /// penalty itself with [`Self::penalty`].
    pub fn submission_penalized(&self, reason: PenaltyReason) {
        self.submissions
            .with_label_values(&[PENALIZED, reason.as_str()])
            .inc();
    }

    /// A penalty was committed.
    pub fn penalty(&self, reason: PenaltyReason) {
        self.penalties.with_label_values(&[reason.as_str()]).inc();
    }

    /// The chain left a transaction of `kind` out of a block.
    pub fn dropped_transaction(&self, kind: TransactionKind) {
        self.dropped_transactions
            .with_label_values(&[kind.as_str()])
            .inc();
    }

    /// A decryption share was received and handled with `outcome`.
    pub fn decryption_share(&self, outcome: ShareOutcome) {
        self.decryption_shares
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// A hospital connected.
    pub fn hospital_connected(&self) {
        self.connected_hospitals.inc();
    }

    /// A hospital disconnected.
    pub fn hospital_disconnected(&self) {
        self.connected_hospitals.dec();
    }

    /// Sets the number of connected hospitals (e.g. after a restart).
    pub fn set_connected_hospitals(&self, count: usize) {
        self.connected_hospitals
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// `count` ciphertexts were multiplied into an aggregate.
    pub fn ciphertexts_aggregated(&self, count: u64) {
        self.ciphertexts_aggregated.inc_by(count);
    }

    /// `bytes` were received from a hospital.
    pub fn bytes_received(&self, bytes: u64) {
        self.received_bytes.inc_by(bytes);
    }

    /// A block at `height` was committed (or the ledger was opened at that height).
    pub fn set_ledger_height(&self, height: u64) {
        self.ledger_height.set(saturating_i64(height));
    }

    /// The global model's accuracy on the held-out set, a ratio in 0..=1.
    pub fn set_model_accuracy(&self, ratio: f64) -> Result<()> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(MetricsError::NotARatio {
                name: "fedchain_model_accuracy_ratio",
                value: ratio,
            });
        }
        self.model_accuracy.set(ratio);
        Ok(())
    }

    /// The token balance of `account` (one series per account: use the consortium's members).
    pub fn set_token_balance(&self, account: &str, balance: u64) {
        self.token_balance
            .with_label_values(&[account])
            .set(saturating_i64(balance));
    }

    /// Stops exporting the balance of `account` (it left the consortium). Returns whether it was
    /// exported.
    pub fn remove_token_balance(&self, account: &str) -> bool {
        self.token_balance.remove_label_values(&[account]).is_ok()
    }
}
