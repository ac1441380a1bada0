//! The worker (hospital) process: connect with capped, jittered exponential backoff, enroll,
//! say hello, and answer the coordinator through the `WorkerService`.
//!
//! What it sent for a round (submission, decryption share) is written to `state_dir` (synced)
//! before it goes on the wire; after a reconnect or a restart of the process, a `RoundOpen` or
//! `ShareRequest` for that round is answered with exactly the stored message (same digest,
//! same nonce), which the coordinator acknowledges as a duplicate instead of punishing an
//! equivocation. The hospital's high-water marks (`marks.bin`: the last round it signed a
//! submission for and the last it shared, per job) are written (synced) before any message
//! that advanced them leaves, are never removed, and are loaded at start, so no restart and no
//! coordinator message makes it sign twice or decrypt a round again.
//!
//! A request the hospital refuses (a share request outside its rules, a second submission) is
//! logged with its typed reason and counted in `fedchain_worker_refusals_total`; the worker
//! goes on.
//!
//! Given the validators (`chain` in its config), the hospital is a client of the chain like
//! the coordinator: it keeps its own replica in `state_dir/chain` (RocksDB), commits only runs
//! of finalized blocks the validators serve, each re-executed with the chain rules and ending
//! on a certificate checked against the genesis validators, and checks every claim of the
//! coordinator against that final state before acting on it ([`WorkerService::on_message_at`]:
//! the round's opening and parameters, the valid set it decrypts, the blame step, its nonce).
//! A claim not final yet is asked again after catching up, a bounded number of times. Every
//! transaction it signs (submission, decryption share, range proof) goes to the validators
//! directly as well as to the coordinator, so a coordinator that drops one cannot keep it off
//! the chain (THREAT-MODEL A7).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fedchain_coordinator::service::{CoordinatorMsg, Outcome, Refusal, WorkerMsg, WorkerService};
use fedchain_coordinator::setup::{deployed_hospital, DeployedHospital};
use fedchain_coordinator::Finalizer as _;
use fedchain_ledger::Address;
use fedchain_ledger::{Chain, RocksStore, Role, SignedTx, Transaction, TxKind};
use fedchain_metrics::labels::{WorkerRefusal, WorkerSubmitOutcome};
use fedchain_metrics::WorkerMetrics;
use fedchain_net::{Client, Incoming, NetError, Peer};
use fedchain_worker::{Marks, ShareMsg, ShareRefusal, SubmissionMsg, WorkerError};
use rand::Rng;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::config::WorkerConfig;
use crate::material::{chain_id_for, load_bundle, load_committee, load_genesis};
use crate::proto::{Down, Up};
use crate::{io_err, NodeError, Result};

/// Name of the failpoint (feature `failpoints`) after a round's training, before its
/// submission is stored and sent (crash tests kill the process there).
pub const FAILPOINT_BEFORE_SUBMIT: &str = "worker::before-submit";

/// What a finished worker reports.
#[derive(Clone, Debug)]
pub struct WorkerReport {
    pub name: String,
    /// Rounds whose result this worker received.
    pub rounds_seen: usize,
    pub connections: u32,
}

enum Session {
    Finished,
    Lost(String),
    Shutdown,
}

struct Worker {
    cfg: WorkerConfig,
    name: String,
    service: WorkerService,
    enroll: Up,
    metrics: WorkerMetrics,
    /// The coordinator answered the current session (a welcome arrived).
    welcomed: bool,
    /// The chain this hospital follows, when the validators run as their own processes.
    follower: Option<Follower>,
}

/// Catch-ups (each waiting a little for a new final block) before a claim of the coordinator
/// that the final chain does not show is refused.
const FINAL_ATTEMPTS: usize = 400;

/// The hospital's replica of the chain the validators finalize, and its way to them.
struct Follower {
    chain: Chain<RocksStore>,
    validators: crate::validator::NetFinalizer,
    bytes: u64,
}

impl Follower {
    fn open(cfg: &WorkerConfig, genesis: &fedchain_ledger::state::Genesis) -> Result<Self> {
        let dir = cfg.state_dir.join("chain");
        let finality = fedchain_ledger::FinalityRef(Some(std::sync::Arc::new(
            fedchain_validator::SimplexFinality::new(),
        )));
        let chain = Chain::open_with(RocksStore::open(&dir)?, genesis, finality, &mut |_, _| {})?;
        let validators = crate::validator::NetFinalizer::new(
            tokio::runtime::Handle::current(),
            cfg.bundle.clone(),
            Role::Hospital,
            cfg.chain.clone(),
            cfg.net.limits(),
        );
        Ok(Self {
            chain,
            validators,
            bytes: 0,
        })
    }

    /// Commit what the validators finalized since the head; with `wait`, one more request
    /// after waiting a little for a block. A failure (no validator answers, or one served a
    /// run that does not verify) is reported, and the next request goes to the next validator:
    /// the hospital then acts on the final state it has, or refuses.
    fn catch_up(&mut self, wait: bool) -> std::result::Result<(), String> {
        let r = self.try_catch_up(wait);
        if r.is_err() {
            self.validators.switch();
        }
        r
    }

    fn try_catch_up(&mut self, wait: bool) -> std::result::Result<(), String> {
        let chain = &mut self.chain;
        fedchain_coordinator::ledger::catch_up(chain, &mut self.bytes, &mut self.validators)
            .map_err(|e| e.to_string())?;
        if wait {
            let run = self.validators.blocks_after(chain.head().height, true)?;
            fedchain_coordinator::ledger::commit_run(chain, &mut self.bytes, run)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Give a transaction this hospital signed to the validators (a refusal is logged: the
    /// same transaction is usually in the mempool or final already, through the coordinator).
    fn submit(&mut self, name: &str, tx: &SignedTx, payload: &[u8]) {
        match self.validators.submit(tx, vec![payload.to_vec()]) {
            Ok(()) => debug!(hospital = %name, tx = %tx.hash(), "worker: given to the validators"),
            Err(reason) => {
                debug!(hospital = %name, tx = %tx.hash(), %reason, "worker: the validators did not take it (final or pending already?)")
            }
        }
    }
}

/// A claim the chain may show once the follower has caught up.
fn retry_when_final(e: &WorkerError) -> bool {
    matches!(
        e,
        WorkerError::NotFinal { .. } | WorkerError::ShareRefused(ShareRefusal::NotFinalSet { .. })
    )
}

/// Run the worker until the coordinator says the job is finished or `shutdown` fires.
pub async fn run(cfg: WorkerConfig, mut shutdown: oneshot::Receiver<()>) -> Result<WorkerReport> {
    cfg.validate()?;
    let bundle = load_bundle(&cfg.bundle, Role::Hospital)?;
    let key = bundle.signing_key()?;
    let me = key.verifying_key();
    let committee = load_committee(&cfg.job_dir)?;
    let index = committee
        .iter()
        .position(|(_, k)| *k == me)
        .ok_or_else(|| NodeError::Material {
            path: cfg.job_dir.clone(),
            reason: format!("{} is not in the job's committee", bundle.identity.name),
        })?;
    let threshold_key =
        crate::material::load_threshold_key(&cfg.job_dir, cfg.experiment.plaintext)?;
    let share = match &threshold_key {
        Some(tpk) => Some(bundle.key_share(&cfg.job_dir, tpk)?),
        None => None,
    };
    // the chain id is the hash of the genesis in the job directory, the one the coordinator
    // was given too
    let genesis = load_genesis(&cfg.job_dir)?;
    let chain = chain_id_for(&genesis, &Address::of(&me), &cfg.job_dir)?;
    let name = bundle.identity.name.clone();
    std::fs::create_dir_all(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
    let marks_path = cfg.state_dir.join(MARKS);
    let marks: Marks = load(&marks_path)?.unwrap_or_default();
    let exp = cfg.experiment.clone();
    let hospital = tokio::task::block_in_place(|| {
        deployed_hospital(
            &exp,
            DeployedHospital {
                key: key.clone(),
                chain_id: chain.clone(),
                index,
                threshold_key,
                share,
                committee: committee.iter().map(|(_, k)| Address::of(k)).collect(),
                marks,
            },
        )
    })?;
    info!(hospital = %name, index, samples = hospital.samples(), chain = %chain, "worker: ready");
    // the hospital's own enrollment: registration (nonce 1) and join (nonce 2, declaring its
    // sample count once), deterministic
    let signed = |nonce, kind| {
        Transaction {
            chain_id: chain.clone(),
            sender: me,
            nonce,
            kind,
        }
        .sign(&key)
    };
    let enroll = Up::Enroll {
        register: signed(
            1,
            TxKind::Register {
                role: Role::Hospital,
                pseudonym: name.clone(),
            },
        ),
        join: signed(
            2,
            TxKind::Join {
                job: cfg.job,
                deposit: cfg.deposit,
                samples: hospital.samples(),
            },
        ),
    };
    let service = WorkerService::new(hospital, cfg.job, cfg.experiment.seed, index);
    let follower = if cfg.chain.is_empty() {
        None
    } else {
        let mut f = tokio::task::block_in_place(|| Follower::open(&cfg, &genesis))?;
        if let Err(e) = tokio::task::block_in_place(|| f.catch_up(false)) {
            warn!(hospital = %name, error = %e, "worker: the validators' chain is not reachable yet");
        }
        info!(hospital = %name, validators = cfg.chain.len(), height = f.chain.head().height, "worker: following the validators' chain");
        Some(f)
    };

    let metrics = WorkerMetrics::new()?;
    let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
    if let Some(addr) = cfg.metrics {
        let (bound, _task) = fedchain_metrics::serve(addr, metrics.registry().clone(), async {
            let _ = metrics_stopped.await;
        })
        .await?;
        info!(%bound, "worker: serving /metrics");
    }
    let mut w = Worker {
        cfg,
        name,
        service,
        enroll,
        metrics,
        welcomed: false,
        follower,
    };
    let mut connections = 0u32;
    let mut backoff = Duration::from_millis(w.cfg.backoff_initial_ms);
    let limits = w.cfg.net.limits();
    let outcome = loop {
        let connect = Client::connect(w.cfg.coordinator, &w.cfg.coordinator_name, &bundle, limits);
        let peer = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            p = connect => p,
        };
        match peer {
            Ok(peer) => {
                connections += 1;
                if connections > 1 {
                    w.metrics.reconnected();
                }
                w.metrics.set_connected(true);
                info!(hospital = %w.name, coordinator = %w.cfg.coordinator, "worker: connected");
                w.welcomed = false;
                let r = w.session(&peer, &mut shutdown).await;
                w.metrics.set_connected(false);
                // the delay starts over only after a session the coordinator answered; a
                // connection closed at once (e.g. refused after the handshake) keeps backing off
                if w.welcomed {
                    backoff = Duration::from_millis(w.cfg.backoff_initial_ms);
                }
                if let (Ok(Session::Lost(_)), Some(refusal)) = (&r, peer.refusal()) {
                    // permanent: our certificate is revoked or refused, or the coordinator
                    // does not admit us; retrying cannot help
                    error!(hospital = %w.name, error = %refusal, "worker: refused for good, stopping");
                    break Err(refusal.into());
                }
                match r {
                    Ok(Session::Finished) => {
                        info!(hospital = %w.name, "worker: the job is finished");
                        peer.close("finished");
                        break Ok(());
                    }
                    Ok(Session::Shutdown) => break Ok(()),
                    Ok(Session::Lost(reason)) => {
                        warn!(hospital = %w.name, %reason, "worker: connection lost, reconnecting");
                    }
                    Err(e) => break Err(e),
                }
            }
            Err(e @ NetError::PeerRefused { .. }) => {
                error!(hospital = %w.name, error = %e, "worker: refused for good, stopping");
                break Err(e.into());
            }
            Err(e) => {
                warn!(hospital = %w.name, error = %e, delay_ms = backoff.as_millis() as u64, "worker: connect failed (transient, backing off)")
            }
        }
        // capped exponential backoff with jitter (50-100% of the delay)
        let jitter = rand::thread_rng().gen_range(0.5..=1.0);
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
        }
        backoff = (backoff * 2).min(Duration::from_millis(w.cfg.backoff_max_ms));
    };
    let _ = stop_metrics.send(());
    outcome?;
    Ok(WorkerReport {
        name: w.name.clone(),
        rounds_seen: w.service.results().len(),
        connections,
    })
}

impl Worker {
    async fn session(
        &mut self,
        peer: &Peer,
        shutdown: &mut oneshot::Receiver<()>,
    ) -> Result<Session> {
        let enroll = self.enroll.clone();
        if let Err(e) = peer.notify(&enroll).await {
            return Ok(Session::Lost(e.to_string()));
        }
        if let Err(e) = peer.notify(&Up::Msg(self.service.hello())).await {
            return Ok(Session::Lost(e.to_string()));
        }
        let idle = Duration::from_millis(self.cfg.idle_ms);
        loop {
            let next = tokio::select! {
                _ = &mut *shutdown => return Ok(Session::Shutdown),
                r = tokio::time::timeout(idle, peer.next_incoming::<Down>()) => r,
            };
            let msg = match next {
                Err(_) => {
                    return Ok(Session::Lost(format!(
                        "nothing received for {} ms",
                        idle.as_millis()
                    )))
                }
                Ok(Ok(Incoming::Message(Down::Msg(m)))) => m,
                Ok(Ok(Incoming::Message(Down::Finished { rounds }))) => {
                    info!(hospital = %self.name, rounds, "worker: coordinator finished");
                    return Ok(Session::Finished);
                }
                Ok(Ok(Incoming::Request { responder, .. })) => {
                    let _ = responder
                        .fail("requests are not part of this protocol")
                        .await;
                    continue;
                }
                Ok(Err(NetError::Wire(e))) => {
                    warn!(hospital = %self.name, error = %e, "worker: bad frame");
                    continue;
                }
                Ok(Err(e)) => return Ok(Session::Lost(e.to_string())),
            };
            let replies = tokio::task::block_in_place(|| self.handle(msg))?;
            // to the validators directly first: a dead coordinator connection would otherwise
            // delay them by its timeout (THREAT-MODEL A7)
            tokio::task::block_in_place(|| self.give_validators(&replies));
            for r in replies {
                let bytes = match &r {
                    WorkerMsg::Submit(m) => m.payload.len() as u64,
                    WorkerMsg::Share(m) | WorkerMsg::RangeProof(m) => m.payload.len() as u64,
                    WorkerMsg::Hello { .. } => 0,
                };
                let is_submit = matches!(r, WorkerMsg::Submit(_));
                if let Err(e) = peer.notify(&Up::Msg(r)).await {
                    if is_submit {
                        self.metrics.submission(WorkerSubmitOutcome::Failed);
                    }
                    return Ok(Session::Lost(e.to_string()));
                }
                self.metrics.bytes_sent(bytes);
            }
        }
    }

    fn path(&self, kind: &str, round: u32) -> PathBuf {
        self.cfg.state_dir.join(format!("round-{round}.{kind}"))
    }

    /// Remove the stored messages (`round-<r>.submit`, `round-<r>.share`) of rounds <= `round`.
    fn remove_stored_up_to(&self, round: u32) -> Result<()> {
        let dir = &self.cfg.state_dir;
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let path = entry.map_err(io_err(dir))?.path();
            let stored_round = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("round-"))
                .and_then(|n| n.split_once('.'))
                .filter(|(_, kind)| matches!(*kind, "submit" | "share"))
                .and_then(|(r, _)| r.parse::<u32>().ok());
            if stored_round.is_some_and(|r| r <= round) {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        Ok(())
    }

    /// Let the service react; persist the hospital's marks if they moved (before anything
    /// that moved them is stored or sent). A refusal is logged and counted, not fatal.
    fn react(&mut self, msg: CoordinatorMsg) -> Result<Vec<WorkerMsg>> {
        let before = self.service.hospital().marks().clone();
        let replies = match self.on_final(msg)? {
            Ok(r) => r,
            Err(e) => match refusal(&e) {
                Some(reason) => {
                    warn!(hospital = %self.name, error = %e, "worker: request refused");
                    self.metrics.refused(reason);
                    Vec::new()
                }
                None => return Err(e.into()),
            },
        };
        let marks = self.service.hospital().marks();
        if *marks != before {
            store(&self.cfg.state_dir.join(MARKS), marks)?;
        }
        Ok(replies)
    }

    /// The service's answer to `msg`, checked against the final chain when following one
    /// (caught up first; a claim not final yet is asked again after each further catch-up).
    fn on_final(
        &mut self,
        msg: CoordinatorMsg,
    ) -> Result<std::result::Result<Vec<WorkerMsg>, WorkerError>> {
        let Some(f) = &mut self.follower else {
            return Ok(self.service.on_message(msg));
        };
        // only what makes the hospital sign, or moves its nonce, is checked against the chain
        let checked = matches!(
            msg,
            CoordinatorMsg::Welcome { .. }
                | CoordinatorMsg::RoundOpen(_)
                | CoordinatorMsg::ShareRequest(_)
                | CoordinatorMsg::RangeRequest(_)
        );
        if !checked {
            return Ok(self.service.on_message_at(msg, Some(f.chain.state())));
        }
        let mut caught_up = f.catch_up(false);
        let mut attempt = 0;
        loop {
            let r = self
                .service
                .on_message_at(msg.clone(), Some(f.chain.state()));
            match (r, &caught_up) {
                (Err(e), Ok(())) if retry_when_final(&e) && attempt + 1 < FINAL_ATTEMPTS => {
                    if attempt == 0 {
                        debug!(hospital = %self.name, error = %e, "worker: not final yet; following the chain");
                    }
                    attempt += 1;
                    caught_up = f.catch_up(true);
                }
                (r, caught_up) => {
                    if let Err(e) = caught_up {
                        warn!(hospital = %self.name, error = %e, "worker: could not follow the validators' chain; acting on the final state it has");
                    }
                    return Ok(r);
                }
            }
        }
    }

    /// Give what this hospital signed to the validators too (following them).
    fn give_validators(&mut self, replies: &[WorkerMsg]) {
        let Some(f) = &mut self.follower else {
            return;
        };
        for r in replies {
            if let WorkerMsg::Submit(SubmissionMsg { tx, payload })
            | WorkerMsg::Share(ShareMsg { tx, payload })
            | WorkerMsg::RangeProof(ShareMsg { tx, payload }) = r
            {
                f.submit(&self.name, tx, payload);
            }
        }
    }

    fn handle(&mut self, msg: CoordinatorMsg) -> Result<Vec<WorkerMsg>> {
        match &msg {
            CoordinatorMsg::Refused { reason } => {
                return Err(NodeError::Refused(reason.to_string()));
            }
            CoordinatorMsg::Welcome { nonce, .. } => {
                self.welcomed = true;
                info!(hospital = %self.name, nonce, "worker: welcomed");
            }
            CoordinatorMsg::RoundOpen(o) => {
                let round = o.round;
                self.metrics.set_round(round);
                if let Some(m) = load::<SubmissionMsg>(&self.path("submit", round))? {
                    info!(hospital = %self.name, round, "worker: resending the stored submission");
                    return Ok(vec![WorkerMsg::Submit(m)]);
                }
                let t = Instant::now();
                let replies = self.react(msg)?;
                self.metrics.observe_training(t.elapsed());
                info!(hospital = %self.name, round, ms = t.elapsed().as_millis() as u64, "worker: trained and encrypted");
                #[cfg(feature = "failpoints")]
                fail::fail_point!(FAILPOINT_BEFORE_SUBMIT);
                for r in &replies {
                    if let WorkerMsg::Submit(m) = r {
                        store(&self.path("submit", round), m)?;
                    }
                }
                return Ok(replies);
            }
            CoordinatorMsg::ShareRequest(r) => {
                if let Some(m) = load::<ShareMsg>(&self.path("share", r.round))? {
                    return Ok(vec![WorkerMsg::Share(m)]);
                }
                let round = r.round;
                let replies = self.react(msg)?;
                for r in &replies {
                    if let WorkerMsg::Share(m) = r {
                        store(&self.path("share", round), m)?;
                        self.metrics.decryption_share_produced();
                        info!(hospital = %self.name, round, "worker: decryption share sent");
                    }
                }
                return Ok(replies);
            }
            CoordinatorMsg::Ack(a) => {
                info!(hospital = %self.name, outcome = ?a.outcome, digest = %hex::encode(a.digest.0), "worker: acknowledged");
                let o = match &a.outcome {
                    Outcome::Accepted | Outcome::Duplicate => WorkerSubmitOutcome::Accepted,
                    Outcome::Rejected {
                        reason: reason @ Refusal::Closed { .. },
                    } => {
                        // not a problem: e.g. a share beyond the t the round committed with
                        debug!(hospital = %self.name, %reason, "worker: message for a closed round");
                        WorkerSubmitOutcome::Rejected
                    }
                    Outcome::Rejected { reason } => {
                        warn!(hospital = %self.name, %reason, "worker: message rejected");
                        WorkerSubmitOutcome::Rejected
                    }
                };
                self.metrics.submission(o);
            }
            CoordinatorMsg::RangeRequest(r) => {
                warn!(hospital = %self.name, round = r.round, plaintext = r.plaintext, "worker: the round's aggregate did not unpack; proving this hospital's slots in range");
            }
            CoordinatorMsg::RoundResult(r) => {
                info!(hospital = %self.name, round = r.round, committed = r.committed, "worker: round result");
                // nothing of this round or before will be resent (the marks stay); the
                // directory is listed, never scanned by round number
                if r.round <= fedchain_worker::MAX_ROUND {
                    self.remove_stored_up_to(r.round)?;
                }
            }
        }
        self.react(msg)
    }
}

/// The hospital's high-water marks in `state_dir`.
const MARKS: &str = "marks.bin";

/// The metrics label of a refusal; `None` for errors that are not refusals.
fn refusal(e: &WorkerError) -> Option<WorkerRefusal> {
    Some(match e {
        WorkerError::AlreadySubmitted { .. } => WorkerRefusal::AlreadySubmitted,
        WorkerError::TrapParams { .. } => WorkerRefusal::TrapParams,
        WorkerError::OutOfRange { .. } => WorkerRefusal::OutOfRange,
        WorkerError::UnknownRound { .. } => WorkerRefusal::UnknownRound,
        WorkerError::NoWitness { .. } => WorkerRefusal::NoWitness,
        WorkerError::NotFinal { .. } => WorkerRefusal::NotFinal,
        WorkerError::NotOnChain { .. } => WorkerRefusal::NotOnChain,
        WorkerError::ShareRefused(r) => match r {
            ShareRefusal::AlreadyShared { .. } => WorkerRefusal::AlreadyShared,
            ShareRefusal::TooFew { .. } => WorkerRefusal::TooFew,
            ShareRefusal::WrongStatement { .. } => WorkerRefusal::WrongStatement,
            ShareRefusal::BadSignature { .. } => WorkerRefusal::BadSignature,
            ShareRefusal::PayloadMismatch { .. } => WorkerRefusal::PayloadMismatch,
            ShareRefusal::NotMember { .. } => WorkerRefusal::NotMember,
            ShareRefusal::DuplicateSender { .. } => WorkerRefusal::DuplicateSender,
            ShareRefusal::OwnSubmissionMissing => WorkerRefusal::OwnSubmissionMissing,
            ShareRefusal::InvalidPayload { .. } => WorkerRefusal::InvalidPayload,
            ShareRefusal::NoKnowledgeProof { .. } => WorkerRefusal::NoKnowledgeProof,
            ShareRefusal::NotFinalSet { .. } => WorkerRefusal::NotFinalSet,
        },
        _ => return None,
    })
}

fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => bincode::deserialize(&bytes)
            .map(Some)
            .map_err(|e| NodeError::Material {
                path: path.to_path_buf(),
                reason: format!("stored message: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Write `msg` durably (temporary file, fsync, rename).
fn store<T: serde::Serialize>(path: &Path, msg: &T) -> Result<()> {
    use std::io::Write;
    let bytes = bincode::serialize(msg).map_err(|e| NodeError::Runtime(e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    // the rename itself must survive a crash
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}
