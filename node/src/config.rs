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

/// Read a configuration file and resolve the relative paths `paths` names against its
/// directory.
fn load_resolved<T: serde::de::DeserializeOwned>(
    path: &Path,
    paths: fn(&mut T) -> Vec<&mut PathBuf>,
) -> Result<T> {
    let mut c: T = read_toml(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    for p in paths(&mut c) {
        resolve(base, p);
    }
    Ok(c)
}

fn resolve(base: &Path, p: &mut PathBuf) {
    if !p.as_os_str().is_empty() && p.is_relative() {
        *p = base.join(&*p);
    }
}

/// Network limits shared by both processes (`[net]`). The transport's budgets (threat model
/// G7, attack A10): per peer, at most `queue` messages and `peer_budget` bytes being read,
/// queued or not yet handled, `max_streams` open streams; `max_strikes` refused streams
/// close its connection; at most `max_handshakes` handshakes at once (`max_handshakes_per_address`
/// from one address), each within `handshake_timeout_ms`, after QUIC address validation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// Upper bound of every network operation (one frame, a reply), in ms.
    pub timeout_ms: u64,
    /// Upper bound of a handshake, in ms (short: an unauthenticated peer holds a slot at most
    /// this long).
    pub handshake_timeout_ms: u64,
    /// QUIC keep-alive interval, in ms (a PING when nothing else was sent).
    pub keep_alive_ms: u64,
    /// QUIC idle timeout, in ms: a connection silent this long (not even a keep-alive) is
    /// dead and closed, so a crashed coordinator or worker is noticed within seconds.
    pub idle_timeout_ms: u64,
    /// Largest control message in bytes (must be the same in every process: the sender picks
    /// the class by it).
    pub max_control: u64,
    /// Largest payload message sent or accepted, in bytes. The coordinator accepts no more
    /// than its job's largest submission or decryption share (computed from the key and the
    /// packing); it sends up to this (a share request carries every submission).
    pub max_payload: u64,
    /// Messages per peer being read, queued or not yet handled; then backpressure.
    pub queue: usize,
    /// Bytes per peer being read, queued or not yet handled; a frame that would exceed it is
    /// refused at its header. Default: two largest payloads and sixteen largest control
    /// messages (on the coordinator: its job's largest message, not `max_payload`).
    pub peer_budget: Option<u64>,
    /// Streams refused for their size before the peer's connection is closed.
    pub max_strikes: u32,
    /// Streams a peer may have open at once, per direction.
    pub max_streams: u32,
    /// Handshakes in flight at once (server side).
    pub max_handshakes: usize,
    /// Handshakes in flight at once from one source address (IPv4 address, IPv6 /64).
    pub max_handshakes_per_address: usize,
    /// Connections one authenticated peer may hold at once (they share its budget).
    pub max_connections_per_peer: usize,
    /// QUIC address validation (a Retry) before a handshake gets any state.
    pub validate_address: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            timeout_ms: l.timeout.as_millis() as u64,
            handshake_timeout_ms: l.handshake_timeout.as_millis() as u64,
            keep_alive_ms: l.keep_alive.as_millis() as u64,
            idle_timeout_ms: l.idle_timeout.as_millis() as u64,
            max_control: l.max_control,
            max_payload: l.max_payload,
            queue: l.incoming_queue,
            peer_budget: None,
            max_strikes: l.max_strikes,
            max_streams: l.max_streams,
            max_handshakes: l.max_handshakes,
            max_handshakes_per_address: l.max_handshakes_per_address,
            max_connections_per_peer: l.max_connections_per_peer,
            validate_address: l.validate_address,
        }
    }
}

impl NetConfig {
    /// The transport limits (a worker's; the coordinator narrows `max_payload` and the
    /// default budget to its job, see `coordinator::limits`).
    pub fn limits(&self) -> Limits {
        Limits {
            max_control: self.max_control,
            max_payload: self.max_payload,
            max_send: self.max_payload,
            timeout: Duration::from_millis(self.timeout_ms),
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
            keep_alive: Duration::from_millis(self.keep_alive_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            incoming_queue: self.queue,
            peer_budget: self
                .peer_budget
                .unwrap_or(Limits::default_budget(self.max_control, self.max_payload)),
            max_strikes: self.max_strikes,
            max_streams: self.max_streams,
            max_handshakes: self.max_handshakes,
            max_handshakes_per_address: self.max_handshakes_per_address,
            max_connections_per_peer: self.max_connections_per_peer,
            validate_address: self.validate_address,
            ..Limits::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.timeout_ms < 100 {
            return Err(invalid("net.timeout_ms", "at least 100 ms"));
        }
        if !(100..=120_000).contains(&self.handshake_timeout_ms) {
            return Err(invalid("net.handshake_timeout_ms", "100..=120000 ms"));
        }
        if !(100..=60_000).contains(&self.keep_alive_ms) {
            return Err(invalid("net.keep_alive_ms", "100..=60000 ms"));
        }
        if !(2 * self.keep_alive_ms..=600_000).contains(&self.idle_timeout_ms) {
            return Err(invalid(
                "net.idle_timeout_ms",
                "at least twice net.keep_alive_ms and at most 600000 ms",
            ));
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
        if self.peer_budget.is_some_and(|b| b < self.max_control) {
            return Err(invalid(
                "net.peer_budget",
                "at least max_control (one control message)",
            ));
        }
        if self.max_strikes == 0 {
            return Err(invalid("net.max_strikes", "at least 1"));
        }
        if !(1..=1024).contains(&self.max_streams) {
            return Err(invalid("net.max_streams", "1..=1024"));
        }
        if !(1..=4096).contains(&self.max_handshakes) {
            return Err(invalid("net.max_handshakes", "1..=4096"));
        }
        if self.max_handshakes_per_address == 0
            || self.max_handshakes_per_address > self.max_handshakes
        {
            return Err(invalid(
                "net.max_handshakes_per_address",
                "1..=max_handshakes",
            ));
        }
        if !(1..=64).contains(&self.max_connections_per_peer) {
            return Err(invalid("net.max_connections_per_peer", "1..=64"));
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
    /// The validators' bundles, when their replicas run inside the coordinator process (a
    /// demo mode: the coordinator then holds their keys). Leave empty with `chain`.
    pub validators: Vec<PathBuf>,
    /// The validators as independent processes (`fedchain validator`), by certificate name and
    /// QUIC address: the coordinator holds no validator key, submits its transactions to them
    /// and follows the blocks they finalize. Leave empty with `validators`.
    pub chain: Vec<crate::validator::Endpoint>,
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
            chain: Vec::new(),
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
        load_resolved(path, |c: &mut Self| {
            let mut v = vec![&mut c.bundle, &mut c.job_dir, &mut c.ledger];
            v.extend(c.validators.iter_mut());
            v
        })
    }

    pub fn validate(&self) -> Result<()> {
        self.experiment
            .validate()
            .map_err(|e| invalid("experiment", e.to_string()))?;
        if self.validators.is_empty() == self.chain.is_empty() {
            return Err(invalid(
                "validators / chain",
                "either the validators' endpoints (`chain`, validators as their own processes) \
                 or their bundles (`validators`, replicas in this process), not both",
            ));
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
    /// Where the worker keeps what it sent for the open round (resent after a restart) and,
    /// following validators, its replica of the chain (`chain/`, RocksDB).
    pub state_dir: PathBuf,
    /// The validators as independent processes, by certificate name and QUIC address: the
    /// hospital follows the blocks they finalize (each run re-executed, its certificate
    /// checked against the genesis validators), acts only on what is final there, and gives
    /// its own transactions to them as well as to the coordinator (THREAT-MODEL G1, A7).
    /// Empty when the validators run inside the coordinator (a demo mode: the hospital then
    /// takes the round facts from the coordinator).
    pub chain: Vec<crate::validator::Endpoint>,
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
            chain: Vec::new(),
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
        load_resolved(path, |c: &mut Self| {
            vec![&mut c.bundle, &mut c.job_dir, &mut c.state_dir]
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_defaults_are_the_transports_and_validate() {
        let n = NetConfig::default();
        n.validate().expect("defaults validate");
        let l = n.limits();
        let d = Limits::default();
        assert_eq!(l, d, "the [net] defaults are fedchain-net's");
        let parsed: NetConfig = toml::from_str(
            "handshake_timeout_ms = 2000\npeer_budget = 33554432\nmax_streams = 8\n\
             max_handshakes = 16\nmax_handshakes_per_address = 2\nmax_connections_per_peer = 2\n\
             max_strikes = 3\nvalidate_address = false\nqueue = 16\n",
        )
        .expect("parses");
        parsed.validate().expect("valid");
        let l = parsed.limits();
        assert_eq!(l.handshake_timeout, Duration::from_secs(2));
        assert_eq!(l.peer_budget, 32 << 20);
        assert_eq!(
            (
                l.max_streams,
                l.max_handshakes,
                l.max_handshakes_per_address
            ),
            (8, 16, 2)
        );
        assert_eq!((l.max_connections_per_peer, l.max_strikes), (2, 3));
        assert!(!l.validate_address);
        assert_eq!(l.incoming_queue, 16);
    }

    #[test]
    fn bad_net_limits_are_refused_by_name() {
        let bad = [
            (
                NetConfig {
                    handshake_timeout_ms: 10,
                    ..NetConfig::default()
                },
                "net.handshake_timeout_ms",
            ),
            (
                NetConfig {
                    peer_budget: Some(1024),
                    ..NetConfig::default()
                },
                "net.peer_budget",
            ),
            (
                NetConfig {
                    max_strikes: 0,
                    ..NetConfig::default()
                },
                "net.max_strikes",
            ),
            (
                NetConfig {
                    max_streams: 0,
                    ..NetConfig::default()
                },
                "net.max_streams",
            ),
            (
                NetConfig {
                    max_handshakes_per_address: 65,
                    ..NetConfig::default()
                },
                "net.max_handshakes_per_address",
            ),
            (
                NetConfig {
                    max_connections_per_peer: 0,
                    ..NetConfig::default()
                },
                "net.max_connections_per_peer",
            ),
        ];
        for (n, field) in bad {
            let e = n.validate().expect_err(field);
            assert!(e.to_string().contains(field), "{e}");
        }
    }
}

/// `fedchain validator --config validator.toml`: one institute's validator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValidatorConfig {
    /// This validator's bundle (`fedchain keys new --role validator`, then `keys install`):
    /// its BLS key is its consensus key and must be in the genesis validator set.
    pub bundle: PathBuf,
    /// The job directory holding `genesis.json` (written by `fedchain genesis`).
    pub job_dir: PathBuf,
    /// This validator's RocksDB replica (created on first start, recovered afterwards).
    pub ledger: PathBuf,
    /// The engine's own journal (its votes, so a restarted validator never signs twice in one
    /// view); created on first start.
    pub consensus_dir: PathBuf,
    /// TCP address of the validators' network (commonware-p2p, authenticated by the genesis
    /// validator keys).
    pub p2p: SocketAddr,
    /// The p2p address of every genesis validator, in genesis order (this one's included, as
    /// the others dial it).
    pub validators: Vec<SocketAddr>,
    /// UDP address where members (aggregator, hospitals, auditors) reach this validator over
    /// mutual-TLS QUIC: submit transactions, read its status, fetch finalized blocks.
    pub listen: SocketAddr,
    /// Least time between an empty block this validator proposes and its parent, in ms: an
    /// idle chain grows by about one block per interval; a block with transactions is
    /// proposed at once. (The chain's deadlines count blocks: with traffic they pass sooner.)
    pub block_interval_ms: u64,
    /// How long to wait for a leader's proposal, in ms (local policy; at least twice the
    /// block interval, as a leader may wait that long before it proposes).
    pub leader_timeout_ms: u64,
    /// How long to wait for a notarized proposal to certify, in ms.
    pub certification_timeout_ms: u64,
    pub net: NetConfig,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        Self {
            bundle: PathBuf::from("validator"),
            job_dir: PathBuf::from("job"),
            ledger: PathBuf::from("ledger"),
            consensus_dir: PathBuf::from("consensus"),
            p2p: SocketAddr::from(([127, 0, 0, 1], 7500)),
            validators: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7600)),
            block_interval_ms: 1000,
            leader_timeout_ms: 2500,
            certification_timeout_ms: 3000,
            net: NetConfig::default(),
        }
    }
}

impl ValidatorConfig {
    /// Read a file (relative paths are taken from its directory).
    pub fn load(path: &Path) -> Result<Self> {
        load_resolved(path, |c: &mut Self| {
            vec![
                &mut c.bundle,
                &mut c.job_dir,
                &mut c.ledger,
                &mut c.consensus_dir,
            ]
        })
    }

    pub fn validate(&self) -> Result<()> {
        if self.validators.is_empty() {
            return Err(invalid(
                "validators",
                "the p2p address of every genesis validator, in genesis order",
            ));
        }
        if self.block_interval_ms > 60_000 {
            return Err(invalid("block_interval_ms", "at most 60000 ms"));
        }
        if !(50..=120_000).contains(&self.leader_timeout_ms)
            || self.leader_timeout_ms < 2 * self.block_interval_ms
        {
            return Err(invalid(
                "leader_timeout_ms",
                "50..=120000 ms and at least twice block_interval_ms",
            ));
        }
        if !(self.leader_timeout_ms..=120_000).contains(&self.certification_timeout_ms) {
            return Err(invalid(
                "certification_timeout_ms",
                "at least leader_timeout_ms and at most 120000 ms",
            ));
        }
        if self.ledger == self.consensus_dir {
            return Err(invalid(
                "consensus_dir",
                "a directory of its own, not the ledger's",
            ));
        }
        self.net.validate()
    }
}
