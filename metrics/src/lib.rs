//! Prometheus metrics of fedchain's services and the HTTP endpoint that exposes them.
//!
//! [`CoordinatorMetrics`] and [`WorkerMetrics`] each own a [`prometheus::Registry`] and offer
//! one typed method per event, so callers never build label strings: closed label sets are the
//! enums in [`labels`] (the services map their own `RejectReason` / `Offence` onto them; this
//! crate depends on neither, since both services depend on it). [`serve`] exposes a registry at
//! `GET /metrics` (text format 0.0.4) and `GET /healthz`.
//!
//! Names follow the Prometheus conventions (`fedchain_` prefix, base units `_seconds`,
//! `_bytes`, `_ratio`, counters end in `_total`); the integration tests run
//! `promtool check metrics` on the scraped output and query a real Prometheus server.
//!
//! ```
//! use fedchain_metrics::{labels::RejectReason, CoordinatorMetrics};
//!
//! let m = CoordinatorMetrics::new()?;
//! m.set_ledger_height(42);
//! m.submission_rejected(RejectReason::Late);
//! let text = m.render()?;
//! assert!(text.contains("fedchain_ledger_height 42"));
//! assert!(text.contains(r#"fedchain_submissions_total{outcome="rejected",reason="late"} 1"#));
//! # Ok::<(), fedchain_metrics::MetricsError>(())
//! ```

mod build;
mod coordinator;
mod error;
pub mod http;
pub mod labels;
mod worker;

pub use coordinator::{CoordinatorMetrics, PHASE_BUCKETS};
pub use error::{MetricsError, Result};
pub use http::{serve, CONTENT_TYPE};
pub use prometheus::Registry;
pub use worker::WorkerMetrics;

/// Renders `registry` in the Prometheus text exposition format.
pub fn render(registry: &Registry) -> Result<String> {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .map_err(MetricsError::Encode)
}
