//! `coordinator.toml` and `worker.toml`: one serde struct per command, every field defaulted,
//! unknown fields refused, `validate()` before anything starts. Relative paths are resolved
//! against the configuration file's directory, so a cluster directory can be moved.
//!
//! Both files carry the same `[experiment]` table (a `SimulateConfig`: dataset, model,
//! partition, rounds, seed, training, packing): the coordinator and every worker derive the
//! data split, theta_0 and the packing layout from it, exactly as `fedchain simulate` does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedchain_coordinator::SimulateConfig;
use fedchain_net::Limits;
use serde::{Deserialize, Serialize};

use crate::{NodeError, Result};

fn invalid(field: &'static str, reason: impl Into<String>) -> NodeError {
    NodeError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(crate::io_err(path))?;
    toml::from_str(&text).map_err(|e| NodeError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn resolve(base: &Path, p: &mut PathBuf) {
    if !p.as_os_str().is_empty() && p.is_relative() {
        *p = base.join(&*p);
    }
}

/// Network limits shared by both processes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Upper bound of every network operation (handshake, one frame, a reply), in ms.
    pub timeout_ms: u64,
    /// Largest control message in bytes.
    pub max_control: u64,
    /// Largest payload message (a submission's ciphertexts) in bytes.
    pub max_payload: u64,
    /// Messages buffered per peer before backpressure.
    pub queue: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            timeout_ms: l.timeout.as_millis() as u64,
            max_control: l.max_control,
            max_payload: l.max_payload,
            queue: l.incoming_queue,
        }
    }
}

impl NetConfig {
    pub fn limits(&self) -> Limits {
        Limits {
            max_control: self.max_control,
            max_payload: self.max_payload,
            timeout: Duration::from_millis(self.timeout_ms),
            incoming_queue: self.queue,
            ..Limits::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.timeout_ms < 100 {
            return Err(invalid("net.timeout_ms", "at least 100 ms"));
        }
        if self.max_control < 4096 || self.max_payload < self.max_control {
            return Err(invalid(
                "net.max_control / net.max_payload",
                "max_control >= 4096 and max_payload >= max_control",
            ));
        }
        if self.queue == 0 || self.queue > 4096 {
            return Err(invalid("net.queue", "1..=4096"));
        }
        Ok(())
    }
}

/// `fedchain coordinator --config coordinator.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// UDP address of the QUIC endpoint.
    pub listen: SocketAddr,
    /// Address of the Prometheus endpoint (`GET /metrics`); none: not served.
    pub metrics: Option<SocketAddr>,
    /// The aggregator's bundle (`fedchain keys new --role aggregator`, then `keys install`).
    pub bundle: PathBuf,
    /// The validators' bundles; their replicas run inside the coordinator process.
    pub validators: Vec<PathBuf>,
    /// The job directory written by `fedchain keygen` (threshold key, committee order) and
    /// `fedchain genesis` (`genesis.json`: the chain id is its hash).
    pub job_dir: PathBuf,
    /// The RocksDB ledger (created on first start, recovered afterwards).
    pub ledger: PathBuf,
    /// Wall-clock time per block while a round is open (the services count deadlines in
    /// blocks).
    pub tick_ms: u64,
    /// Before a round opens, wait up to this long for every committee member to be
    /// connected; afterwards open it with whoever is there (at least the minimum).
    pub wait_for_members_ms: u64,
    /// Exit once the experiment's rounds are done (otherwise keep serving until a signal).
    pub exit_when_done: bool,
    pub net: NetConfig,
    pub experiment: SimulateConfig,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            metrics: Some(SocketAddr::from((
                [127, 0, 0, 1],
                fedchain_metrics::http::DEFAULT_COORDINATOR_PORT,
            ))),
            bundle: PathBuf::from("aggregator"),
            validators: Vec::new(),
            job_dir: PathBuf::from("job"),
            ledger: PathBuf::from("ledger"),
            tick_ms: 1000,
            wait_for_members_ms: 30_000,
            exit_when_done: true,
            net: NetConfig::default(),
            experiment: SimulateConfig {
                baseline: false,
                ..SimulateConfig::default()
            },
        }
    }
}

impl CoordinatorConfig {
    /// Read a file (relative paths are taken from its directory).
    pub fn load(path: &Path) -> Result<Self> {
        let mut c: Self = read_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        resolve(base, &mut c.bundle);
        resolve(base, &mut c.job_dir);
        resolve(base, &mut c.ledger);
        for v in &mut c.validators {
            resolve(base, v);
        }
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        self.experiment
            .validate()
            .map_err(|e| invalid("experiment", e.to_string()))?;
        if self.validators.is_empty() {
            return Err(invalid("validators", "at least one validator bundle"));
        }
        if self.tick_ms < 10 {
            return Err(invalid("tick_ms", "at least 10 ms"));
        }
        if self.experiment.hospitals < 2 {
            return Err(invalid(
                "experiment.hospitals",
                "a deployment needs at least 2",
            ));
        }
        if !self.experiment.byzantine.is_empty() {
            return Err(invalid(
                "experiment.byzantine",
                "scripted misbehaviour exists only in `fedchain simulate`",
            ));
        }
        self.net.validate()
    }
}

/// `fedchain worker --config worker.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// The coordinator's UDP address.
    pub coordinator: SocketAddr,
    /// The name in the coordinator's certificate.
    pub coordinator_name: String,
    /// This hospital's bundle (`fedchain keys new`, then `keys install`).
    pub bundle: PathBuf,
    /// The job directory written by `fedchain keygen` (threshold key, committee order, and
    /// this hospital's share sealed to its X25519 key in `shares/<name>.share.enc`) and
    /// `fedchain genesis` (`genesis.json`, the source of the chain id).
    pub job_dir: PathBuf,
    /// Where the worker keeps what it sent for the open round (resent after a restart).
    pub state_dir: PathBuf,
    /// Address of the Prometheus endpoint; none: not served.
    pub metrics: Option<SocketAddr>,
    /// The job id on the coordinator's chain (the first job of a fresh chain is 0).
    pub job: u64,
    /// Deposit put down when joining.
    pub deposit: u64,
    /// First reconnection delay; doubled per failure up to `backoff_max_ms`, with jitter.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Reconnect when nothing arrives for this long.
    pub idle_ms: u64,
    pub net: NetConfig,
    pub experiment: SimulateConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            coordinator: SocketAddr::from(([127, 0, 0, 1], 7400)),
            coordinator_name: "aggregator".into(),
            bundle: PathBuf::from("hospital"),
            job_dir: PathBuf::from("job"),
            state_dir: PathBuf::from("state"),
            metrics: Some(SocketAddr::from((
                [127, 0, 0, 1],
                fedchain_metrics::http::DEFAULT_WORKER_PORT,
            ))),
            job: 0,
            deposit: 2_000,
            backoff_initial_ms: 200,
            backoff_max_ms: 5_000,
            idle_ms: 300_000,
            net: NetConfig::default(),
            experiment: SimulateConfig {
                baseline: false,
                ..SimulateConfig::default()
            },
        }
    }
}

impl WorkerConfig {
    /// Read a file (relative paths are taken from its directory).
    pub fn load(path: &Path) -> Result<Self> {
        let mut c: Self = read_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        resolve(base, &mut c.bundle);
        resolve(base, &mut c.job_dir);
        resolve(base, &mut c.state_dir);
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        self.experiment
            .validate()
            .map_err(|e| invalid("experiment", e.to_string()))?;
        if self.coordinator_name.is_empty() {
            return Err(invalid("coordinator_name", "empty"));
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return Err(invalid(
                "backoff_initial_ms / backoff_max_ms",
                "0 < initial <= max",
            ));
        }
        if self.idle_ms < self.net.timeout_ms {
            return Err(invalid("idle_ms", "at least net.timeout_ms"));
        }
        self.net.validate()
    }
}
