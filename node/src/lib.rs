//! fedchain-node: the runtime adapters that run the transport-agnostic services as processes.
//!
//! - [`coordinator::run`]: a `fedchain_net::Server` accept loop, one task per peer, every
//!   message through one bounded queue to ONE task that owns the `CoordinatorService` (the
//!   state machine is never shared), a tick timer that turns the wall clock into the service's
//!   `now_ms`, Prometheus metrics, a clean stop on SIGINT/SIGTERM.
//! - [`worker::run`]: a hospital that connects with capped, jittered exponential backoff,
//!   enrolls, says hello, answers `RoundOpen` / `ShareRequest` through its `WorkerService`,
//!   keeps what it sent for a round on disk (so a restarted process resends the very same
//!   submission instead of equivocating), and serves its own metrics.
//! - [`config`]: the TOML configurations (`coordinator.toml`, `worker.toml`).
//! - [`proto`]: the envelope around the services' messages (enrollment, end of the job).
//!
//! Deployment identities: the coordinator never holds a hospital key. Each worker signs its
//! own `Register` and `Join` and sends them in [`proto::Up::Enroll`]; once the whole committee
//! has enrolled the coordinator writes the bootstrap block (see
//! `Consortium::bootstrap_enrolled`).

pub mod config;
pub mod coordinator;
pub mod material;
pub mod proto;
pub mod validator;
pub mod worker;

use std::path::PathBuf;

/// Errors of the coordinator and worker processes.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("invalid configuration: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("deployment material {path}: {reason}")]
    Material { path: PathBuf, reason: String },
    #[error("network: {0}")]
    Net(#[from] fedchain_net::NetError),
    #[error("ledger: {0}")]
    Ledger(#[from] fedchain_ledger::LedgerError),
    #[error("coordinator service: {0}")]
    Service(#[from] fedchain_coordinator::simulate::SimError),
    #[error("worker service: {0}")]
    Worker(#[from] fedchain_worker::WorkerError),
    #[error("metrics: {0}")]
    Metrics(#[from] fedchain_metrics::MetricsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: the threshold key loaded ({loaded}) is not the key of job {job} on chain \
         ({on_chain}); the job directory is not this ledger's"
    )]
    ThresholdKeyMismatch {
        path: PathBuf,
        job: u64,
        on_chain: String,
        loaded: String,
    },
    #[error("refused by the coordinator: {0}")]
    Refused(String),
    #[error("{0}")]
    Runtime(String),
}

pub type Result<T, E = NodeError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NodeError {
    let path = path.into();
    move |source| NodeError::Io { path, source }
}

/// Milliseconds since the Unix epoch (the services' `now_ms`).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
