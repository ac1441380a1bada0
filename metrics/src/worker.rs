//! The hospital node's metrics.

use std::time::Duration;

use prometheus::{Histogram, HistogramTimer, IntCounter, IntCounterVec, IntGauge, Registry};

use crate::build::{histogram, int_counter, int_counter_vec, int_gauge};
use crate::coordinator::PHASE_BUCKETS;
use crate::labels::{WorkerRefusal, WorkerSubmitOutcome};
use crate::Result;

/// The metrics of a hospital worker, in a registry of their own.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `fedchain_worker_training_duration_seconds` | histogram | |
/// | `fedchain_worker_encryption_duration_seconds` | histogram | |
/// | `fedchain_worker_sent_bytes_total` | counter | |
/// | `fedchain_worker_submissions_total` | counter | `outcome` ([`WorkerSubmitOutcome`]) |
/// | `fedchain_worker_decryption_shares_total` | counter | |
/// | `fedchain_worker_refusals_total` | counter | `reason` ([`WorkerRefusal`]) |
/// | `fedchain_worker_connected` | gauge (0 or 1) | |
/// | `fedchain_worker_reconnects_total` | counter | |
/// | `fedchain_worker_current_round` | gauge | |
#[derive(Clone, Debug)]
pub struct WorkerMetrics {
    registry: Registry,
    training_seconds: Histogram,
    encryption_seconds: Histogram,
    sent_bytes: IntCounter,
    submissions: IntCounterVec,
    decryption_shares: IntCounter,
    refusals: IntCounterVec,
    connected: IntGauge,
    reconnects: IntCounter,
    current_round: IntGauge,
}

impl WorkerMetrics {
    /// Creates the metrics in a new registry, every closed label combination at zero.
    pub fn new() -> Result<Self> {
        let r = Registry::new();
        let m = Self {
            training_seconds: histogram(
                &r,
                "fedchain_worker_training_duration_seconds",
                "Wall time of local training for one round, in seconds.",
                PHASE_BUCKETS,
            )?,
            encryption_seconds: histogram(
                &r,
                "fedchain_worker_encryption_duration_seconds",
                "Wall time to quantize, pack and encrypt one update, in seconds.",
                PHASE_BUCKETS,
            )?,
            sent_bytes: int_counter(
                &r,
                "fedchain_worker_sent_bytes_total",
                "Bytes sent to the coordinator (messages and payloads).",
            )?,
            submissions: int_counter_vec(
                &r,
                "fedchain_worker_submissions_total",
                "Submissions sent to the coordinator, by outcome.",
                &["outcome"],
            )?,
            decryption_shares: int_counter(
                &r,
                "fedchain_worker_decryption_shares_total",
                "Decryption shares produced and sent.",
            )?,
            refusals: int_counter_vec(
                &r,
                "fedchain_worker_refusals_total",
                "Requests the hospital refused (decrypting outside its rules, signing twice), by reason.",
                &["reason"],
            )?,
            connected: int_gauge(
                &r,
                "fedchain_worker_connected",
                "1 while connected to the coordinator, else 0.",
            )?,
            reconnects: int_counter(
                &r,
                "fedchain_worker_reconnects_total",
                "Connections to the coordinator re-established after a loss.",
            )?,
            current_round: int_gauge(
                &r,
                "fedchain_worker_current_round",
                "Number of the round the worker is taking part in.",
            )?,
            registry: r,
        };
        for outcome in WorkerSubmitOutcome::ALL {
            m.submissions.with_label_values(&[outcome.as_str()]);
        }
        for reason in WorkerRefusal::ALL {
            m.refusals.with_label_values(&[reason.as_str()]);
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

    /// The worker takes part in round `round`.
    pub fn set_round(&self, round: u32) {
        self.current_round.set(i64::from(round));
    }

    /// Local training for one round took `elapsed`.
    pub fn observe_training(&self, elapsed: Duration) {
        self.training_seconds.observe(elapsed.as_secs_f64());
    }

    /// Starts timing local training; recorded when the timer is dropped.
    pub fn start_training(&self) -> HistogramTimer {
        self.training_seconds.start_timer()
    }

    /// Protecting (quantize, pack, encrypt) one update took `elapsed`.
    pub fn observe_encryption(&self, elapsed: Duration) {
        self.encryption_seconds.observe(elapsed.as_secs_f64());
    }

    /// `bytes` were sent to the coordinator.
    pub fn bytes_sent(&self, bytes: u64) {
        self.sent_bytes.inc_by(bytes);
    }

    /// A submission ended with `outcome`.
    pub fn submission(&self, outcome: WorkerSubmitOutcome) {
        self.submissions
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// A decryption share was produced and sent.
    pub fn decryption_share_produced(&self) {
        self.decryption_shares.inc();
    }

    /// A request was refused for `reason`.
    pub fn refused(&self, reason: WorkerRefusal) {
        self.refusals.with_label_values(&[reason.as_str()]).inc();
    }

    /// The connection to the coordinator is up (`true`) or lost (`false`).
    pub fn set_connected(&self, connected: bool) {
        self.connected.set(i64::from(connected));
    }

    /// The worker reconnected after losing the connection (also sets `connected` to 1).
    pub fn reconnected(&self) {
        self.reconnects.inc();
        self.connected.set(1);
    }
}
