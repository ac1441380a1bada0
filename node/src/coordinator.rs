//! The coordinator process: the QUIC server, one task per peer, and ONE task that owns the
//! `CoordinatorService` and the metrics.
//!
//! ```text
//! Server::accept ──> peer task (reader) ──┐ bounded mpsc (events)
//!                    peer task (reader) ──┼──────────────> service loop ── owns CoordinatorService
//!                    ...                  │                    │   tick timer
//!  peer writer <── bounded mpsc (Down) <──┴────────────────────┘
//! ```
//!
//! Stages: on a fresh ledger the loop collects each committee member's own signed
//! `Register` + `Join` ([`Up::Enroll`]); with the whole committee enrolled it writes the
//! bootstrap block and opens the `CoordinatorService` on it. On a ledger that already holds the
//! job, the service is reopened from the store (`CoordinatorService::open`: pending accepted
//! messages are replayed, the open round continues).
//!
//! Budgets (A10): the server's limits come from the job ([`MessageBounds`], [`limits`]): a
//! payload frame larger than the job's largest submission or decryption share is refused at
//! its header, and each peer's byte and message budget covers its messages until the service
//! loop has handled them (the event carries the message's [`Held`]). What the coordinator
//! queues for one peer is bounded in messages (256) and bytes (two share requests and
//! round openings); a peer that falls further behind is disconnected.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedchain_coordinator::service::{
    CoordinatorMsg, CoordinatorService, Outbound, Outcome, Refusal, RoundSummary, ShareRequest,
    WorkerMsg,
};
use fedchain_coordinator::setup::DeploymentKeys;
use fedchain_coordinator::{Consortium, Ledger};
use fedchain_crypto::{CiphertextVector, PublicKey, ThresholdPublicKey};
use fedchain_ledger::{Address, Hash, Role, SignedTx, Transaction, TxKind, TxTag};
use fedchain_metrics::labels::{PenaltyReason, Phase, RejectReason, ShareOutcome, TransactionKind};
use fedchain_metrics::CoordinatorMetrics;
use fedchain_net::{Held, Incoming, Limits, NetError, NetStats, Peer, PeerIdentity, Server};
use fedchain_worker::{Protection, ShareMsg, SubmissionMsg};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::config::{CoordinatorConfig, NetConfig};
use crate::material::{check_registered, load_bundle, load_committee, load_genesis};
use crate::proto::{Down, Up};
use crate::{NodeError, Result};

/// Events queued for the service loop (bounded).
const EVENT_QUEUE: usize = 1024;
/// Messages queued for one peer's writer (bounded; a peer that falls this far behind is
/// disconnected and catches up after reconnecting).
const PEER_QUEUE: usize = 256;
/// Bytes added to the job's largest message for what its computation cannot see.
const FRAME_MARGIN: u64 = 1024;
/// Refused frames logged one by one per connection (the rest are counted in one line).
const LOGGED_REFUSALS: u64 = 8;
/// How often the transport's refusal counters are logged (when they changed).
const STATS_EVERY: Duration = Duration::from_secs(10);

/// Upper bound of [`fedchain_crypto::ProvenVector::to_bytes`] for `k` ciphertexts: the codec
/// header and count, `k` ciphertexts of `ciphertext_bytes()`, then the proof of knowledge: `e`
/// (32 bytes), `z_m` (the width of n) and `z_a`, length-prefixed (u32). A valid `z_a` has at
/// most short-exponent + 533 bits (the verifier refuses more); 1024 bits are allowed.
pub fn proven_vector_bytes(pk: &PublicKey, k: usize) -> u64 {
    let prefix = CiphertextVector(Vec::new()).to_bytes(pk).len() as u64;
    let w = pk.ciphertext_bytes() as u64;
    let n_bytes = u64::from(pk.bits()).div_ceil(8);
    let z_a = u64::from(pk.short_exponent_bits() + 1024).div_ceil(8);
    prefix + k as u64 * w + 32 + n_bytes + 4 + z_a
}

/// Upper bound of [`fedchain_crypto::VectorDecryptionShare::to_bytes`] for `k` values: the
/// codec header, holder and count (u32 each), `k` values of `ciphertext_bytes()`, the proof's
/// `e` (32 bytes) and `z`, length-prefixed (u32). A valid `z` has at most
/// 2·bits(n) + bits(parties!) + 385 bits (the verifier refuses more); 512 more are allowed.
pub fn decryption_share_bytes(tpk: &ThresholdPublicKey, k: usize) -> u64 {
    let pk = tpk.public_key();
    // header and one u32 (as in a ciphertext vector), then the second u32
    let prefix = CiphertextVector(Vec::new()).to_bytes(pk).len() as u64 + 4;
    let w = pk.ciphertext_bytes() as u64;
    // bits(p!) <= sum of bits(i) for i in 2..=p
    let delta_bits: u64 = (2..=u64::from(tpk.parties()))
        .map(|i| u64::from(u64::BITS - i.leading_zeros()))
        .sum();
    let z_bits = 2 * u64::from(pk.bits()) + delta_bits + 385 + 512;
    prefix + k as u64 * w + 32 + 4 + z_bits.div_ceil(8)
}

/// The largest messages of a job, in bytes, from its key and packing (A10: the server refuses
/// a payload frame above `frame` at its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageBounds {
    /// A submission's payload (a proven ciphertext vector; the update in plaintext).
    pub submission: u64,
    /// A decryption share's payload.
    pub share: u64,
    /// The largest frame body a hospital sends (an [`Up`] carrying either), plus a margin.
    pub frame: u64,
    /// The largest frame body the coordinator sends: a share request with every member's
    /// submission, or a round opening with the parameters.
    pub down: u64,
}

impl MessageBounds {
    /// Computed from the consortium's key, packing and committee; the envelopes are encoded
    /// (a transaction signed by the aggregator stands in for a hospital's: every field but
    /// the chain id has a fixed width).
    pub fn of(c: &Consortium) -> Result<Self> {
        let k = c.ciphertexts();
        let (submission, share) = match &c.protection {
            Protection::Encrypted(e) => (
                proven_vector_bytes(e.key.public_key(), k),
                decryption_share_bytes(&e.key, k),
            ),
            Protection::Plaintext => (4 * c.num_params as u64, 0),
        };
        let tx = |kind| {
            Transaction {
                chain_id: c.genesis.chain_id.clone(),
                sender: c.aggregator.verifying_key(),
                nonce: u64::MAX,
                kind,
            }
            .sign(&c.aggregator)
        };
        let submit = SubmissionMsg {
            tx: tx(TxKind::Submit {
                job: u64::MAX,
                round: u32::MAX,
                payload: Hash([0; 32]),
                samples: u64::MAX,
                payload_bytes: u64::MAX,
            }),
            payload: Vec::new(),
        };
        let share_msg = ShareMsg {
            tx: tx(TxKind::DecryptionShare {
                job: u64::MAX,
                round: u32::MAX,
                payload: Hash([0; 32]),
            }),
            payload: Vec::new(),
        };
        // bincode: a byte vector is its length (u64) and its bytes, so sizes add up
        let up_submit = encoded_len(&Up::Msg(WorkerMsg::Submit(submit.clone())))?;
        let up_share = encoded_len(&Up::Msg(WorkerMsg::Share(share_msg)))?;
        let one = encoded_len(&submit)?;
        let request = encoded_len(&Down::Msg(CoordinatorMsg::ShareRequest(ShareRequest {
            job: u64::MAX,
            round: u32::MAX,
            submissions: Vec::new(),
        })))?;
        let members = c.members.len() as u64;
        let share_request = request + members * (one + submission);
        let round_open = 64 + 4 * c.num_params as u64;
        Ok(Self {
            submission,
            share,
            frame: (up_submit + submission).max(up_share + share) + FRAME_MARGIN,
            down: share_request.max(round_open) + FRAME_MARGIN,
        })
    }
}

fn encoded_len<T: serde::Serialize>(v: &T) -> Result<u64> {
    Ok(fedchain_net::wire::encode(v).map_err(NetError::from)?.len() as u64)
}

/// The coordinator's transport limits: `[net]`, with the payload limit narrowed to the job's
/// largest message (`bounds.frame`) and, unless `net.peer_budget` is set, the budget derived
/// from it. Sending is bounded by `net.max_payload`, which must hold a share request.
pub fn limits(net: &NetConfig, bounds: &MessageBounds) -> Result<Limits> {
    let mut l = net.limits();
    if bounds.frame > net.max_payload || bounds.down > net.max_payload {
        return Err(NodeError::Invalid {
            field: "net.max_payload",
            reason: format!(
                "{} bytes cannot carry this job's messages: a submission or share frame is up to {} bytes, a share request up to {}",
                net.max_payload, bounds.frame, bounds.down
            ),
        });
    }
    l.max_payload = bounds.frame;
    l.max_send = net.max_payload;
    l.peer_budget = net
        .peer_budget
        .unwrap_or(Limits::default_budget(net.max_control, bounds.frame));
    if l.peer_budget < bounds.frame {
        return Err(NodeError::Invalid {
            field: "net.peer_budget",
            reason: format!(
                "{} bytes cannot hold one of this job's messages ({} bytes)",
                l.peer_budget, bounds.frame
            ),
        });
    }
    Ok(l)
}

/// What a finished coordinator reports.
#[derive(Clone, Debug)]
pub struct CoordinatorReport {
    /// Rounds finished while this process ran.
    pub rounds: Vec<RoundSummary>,
    pub height: u64,
    /// Hash of the current global parameters' payload (the last committed round's result).
    pub params_hash: Option<Hash>,
    pub ledger: PathBuf,
    /// Whether every round of the experiment is done.
    pub finished: bool,
}

enum Event {
    Connected {
        conn: u64,
        id: PeerIdentity,
        outbox: Outbox,
    },
    Message {
        conn: u64,
        from: Address,
        up: Box<Up>,
        bytes: u64,
        /// The message's share of its peer's budget, given back once it is handled.
        _held: Held,
    },
    Closed {
        conn: u64,
        from: Address,
    },
}

/// What is queued for one peer's writer: at most [`PEER_QUEUE`] messages and `budget` bytes
/// (as [`Down::held_bytes`] counts them).
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<(Down, u64)>,
    queued: Arc<AtomicU64>,
    budget: u64,
    /// Set when the peer is refused for good: its writer closes the connection with
    /// `DENIED` and this reason, so the peer stops instead of reconnecting.
    denied: Arc<std::sync::Mutex<Option<String>>>,
}

impl Outbox {
    /// Refuse the peer for good (its connection closes with the reason once the outbox goes).
    fn deny(&self, reason: &str) {
        if let Ok(mut d) = self.denied.lock() {
            *d = Some(reason.to_string());
        }
    }

    /// Queue `d`, or say why not (the caller disconnects the peer).
    fn push(&self, d: Down) -> std::result::Result<(), String> {
        let size = d.held_bytes();
        let queued = self.queued.fetch_add(size, Ordering::AcqRel);
        if queued.saturating_add(size) > self.budget {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            return Err(format!(
                "{queued} bytes already queued for it, budget {}",
                self.budget
            ));
        }
        self.tx.try_send((d, size)).map_err(|e| {
            self.queued.fetch_sub(size, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => format!("{PEER_QUEUE} messages queued"),
                mpsc::error::TrySendError::Closed(_) => "its writer stopped".into(),
            }
        })
    }
}

struct Conn {
    id: u64,
    name: String,
    outbox: Outbox,
    /// Said hello (only then does it get round messages).
    hello: bool,
}

enum Stage {
    Enrolling {
        ledger: Option<Box<Ledger>>,
        /// Committee index -> (register, join).
        enrolled: BTreeMap<usize, (SignedTx, SignedTx)>,
    },
    Running(Box<CoordinatorService>),
}

/// Run the coordinator until its rounds are done (`exit_when_done`) or `shutdown` fires.
pub async fn run(
    cfg: CoordinatorConfig,
    shutdown: oneshot::Receiver<()>,
) -> Result<CoordinatorReport> {
    cfg.validate()?;
    let bundle = load_bundle(&cfg.bundle, Role::Aggregator)?;
    let aggregator = bundle.signing_key()?;
    let mut validators = Vec::new();
    for v in &cfg.validators {
        validators.push(load_bundle(v, Role::Validator)?.signing_key()?);
    }
    let committee = load_committee(&cfg.job_dir)?;
    let threshold_key =
        crate::material::load_threshold_key(&cfg.job_dir, cfg.experiment.plaintext)?;
    let keys = DeploymentKeys {
        genesis: load_genesis(&cfg.job_dir)?,
        aggregator,
        validators,
        committee: committee.iter().map(|(_, k)| *k).collect(),
        threshold_key,
    };
    let exp = cfg.experiment.clone();
    let mut c = tokio::task::block_in_place(|| Consortium::deployment(&exp, keys))?;
    if !cfg.chain.is_empty() {
        // the validators run as their own processes: the ledger follows what they finalize
        let handle = tokio::runtime::Handle::current();
        let (dir, endpoints, limits) = (cfg.bundle.clone(), cfg.chain.clone(), cfg.net.limits());
        c.following = Some(fedchain_coordinator::Following {
            finality: fedchain_ledger::FinalityRef(Some(Arc::new(
                fedchain_validator::SimplexFinality::new(),
            ))),
            connect: Arc::new(move || {
                Ok(Box::new(crate::validator::NetFinalizer::new(
                    handle.clone(),
                    dir.clone(),
                    Role::Aggregator,
                    endpoints.clone(),
                    limits,
                ))
                    as Box<dyn fedchain_coordinator::Finalizer>)
            }),
        });
        info!(
            validators = cfg.chain.len(),
            "coordinator: following independent validators (no validator key here)"
        );
    }
    let c = Arc::new(c);
    info!(
        chain = %c.genesis.chain_id,
        hospitals = c.members.len(),
        threshold = c.cfg.threshold,
        rounds = c.cfg.rounds,
        "coordinator: consortium loaded"
    );

    let metrics = Arc::new(CoordinatorMetrics::new()?);
    let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
    if let Some(addr) = cfg.metrics {
        let (bound, _task) = fedchain_metrics::serve(addr, metrics.registry().clone(), async {
            let _ = metrics_stopped.await;
        })
        .await?;
        info!(%bound, "coordinator: serving /metrics");
    }

    let stage = open_stage(&cfg, &c)?;
    let bounds = MessageBounds::of(&c)?;
    let limits = limits(&cfg.net, &bounds)?;
    let down_budget = bounds.down.saturating_mul(2);
    let mut server = Server::bind(cfg.listen, &bundle, limits)?;
    let revoked = server.revoked();
    info!(
        listen = %server.local_addr()?,
        submission = bounds.submission,
        share = bounds.share,
        max_payload = limits.max_payload,
        max_control = limits.max_control,
        peer_budget = limits.peer_budget,
        queue = limits.incoming_queue,
        handshake_timeout_ms = limits.handshake_timeout.as_millis() as u64,
        "coordinator: listening (QUIC, mutual TLS; limits from the job)"
    );

    let (events_tx, events) = mpsc::channel::<Event>(EVENT_QUEUE);
    let (stop_accept, mut accept_stopped) = oneshot::channel::<()>();
    let mut accept = tokio::spawn(async move {
        let mut next_conn = 0u64;
        let mut every = tokio::time::interval(STATS_EVERY);
        let mut logged = NetStats::default();
        loop {
            let res = tokio::select! {
                r = server.accept() => r,
                _ = every.tick() => {
                    log_stats(&mut logged, server.stats());
                    continue;
                }
                _ = &mut accept_stopped => break,
            };
            match res {
                Ok(peer) => {
                    next_conn += 1;
                    tokio::spawn(peer_task(next_conn, peer, events_tx.clone(), down_budget));
                }
                Err(NetError::Handshake { remote, reason }) => {
                    warn!(%remote, %reason, "coordinator: handshake refused");
                }
                Err(
                    e @ (NetError::HandshakesFromAddress { .. } | NetError::HandshakesBusy { .. }),
                ) => {
                    // counted; summarised every STATS_EVERY, not one line per attempt
                    debug!(error = %e, "coordinator: handshake refused");
                }
                Err(NetError::Closed) => break,
                Err(e) => warn!(error = %e, "coordinator: connection refused"),
            }
        }
        log_stats(&mut logged, server.stats());
        server.close();
    });

    // a recovered open round waits for its committee (see `Loop::held`)
    let resumed = match &stage {
        Stage::Running(s) if s.round().is_some() => Some(Resume {
            round: s.round(),
            since: Instant::now(),
            back: None,
        }),
        _ => None,
    };
    let mut lp = Loop {
        cfg,
        c,
        stage,
        revoked,
        resumed,
        conns: BTreeMap::new(),
        metrics,
        phase_started: Instant::now(),
        idle_since: Instant::now(),
        finished_at: None,
        hellos: BTreeMap::new(),
    };
    if let Stage::Running(s) = &lp.stage {
        lp.metrics.set_ledger_height(s.ledger().height());
    }
    let result = lp.run(events, shutdown).await;
    let _ = stop_accept.send(());
    if tokio::time::timeout(Duration::from_secs(1), &mut accept)
        .await
        .is_err()
    {
        accept.abort();
    }
    let _ = stop_metrics.send(());
    if let Err(e) = result {
        // a service error (e.g. a failpoint) ends the process as a crash would: the store
        // holds everything acknowledged, and a restart continues from it
        error!(error = %e, "coordinator: stopping on a service error");
        return Err(e);
    }
    if lp.finished_at.is_some() {
        // let the writers deliver what is queued (Finished) before the process exits
        let rounds = lp.c.cfg.rounds;
        for conn in lp.conns.values() {
            let d = Down::Finished { rounds };
            let size = d.held_bytes();
            let _ = conn
                .outbox
                .tx
                .send_timeout((d, size), Duration::from_millis(200))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(lp.report())
}

/// A fresh ledger waits for enrollments; one holding the job reopens the service.
fn open_stage(cfg: &CoordinatorConfig, c: &Consortium) -> Result<Stage> {
    let mut last = Instant::now();
    let mut progress = |done: u64, total: u64| {
        if done == total || last.elapsed() >= Duration::from_secs(2) {
            info!(done, total, "coordinator: replaying the ledger");
            last = Instant::now();
        }
    };
    let key_file = cfg.job_dir.join(fedchain_net::pki::THRESHOLD_KEY);
    tokio::task::block_in_place(|| recover_stage(&cfg.ledger, &key_file, c, &mut progress))
}

/// [`open_stage`] with its progress callback: the ledger is opened ONCE (a stored state that
/// does not match its head is replayed once, `progress` called once per block), then a fresh
/// one waits for enrollments and one holding the job must hold it under the threshold key the
/// coordinator loaded (`key_file`, for the error) before the service is rebuilt on it.
fn recover_stage(
    dir: &std::path::Path,
    key_file: &std::path::Path,
    c: &Consortium,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Stage> {
    let t = Instant::now();
    let ledger = c.open_ledger(dir, progress)?;
    // no job yet (following validators the chain may already hold their empty blocks)
    if ledger.chain().state().next_job == 0 {
        info!(ledger = %dir.display(), "coordinator: fresh ledger, waiting for the committee to enroll");
        return Ok(Stage::Enrolling {
            ledger: Some(Box::new(ledger)),
            enrolled: BTreeMap::new(),
        });
    }
    match ledger.chain().recovery() {
        fedchain_ledger::Recovery::Replayed { reason } => warn!(
            %reason,
            "coordinator: the stored state did not match the head; rebuilt it by a full replay"
        ),
        r => info!(recovery = ?r, "coordinator: state restored from the head's snapshot"),
    }
    check_job_key(&ledger, c, key_file)?;
    let (s, out) = CoordinatorService::recover(ledger, dir, c)?;
    info!(
        seconds = t.elapsed().as_secs_f64(),
        height = s.ledger().height(),
        round = ?s.round(),
        counted = s.counted().len(),
        pending_messages = out.len(),
        "coordinator: recovered the ledger"
    );
    // the recovered round's announcements go out as hospitals say hello again
    Ok(Stage::Running(Box::new(s)))
}

/// Refuse to run a job whose `CreateJob` on chain carries another threshold key than the one
/// the coordinator loaded from `key_file` (or none, for a plaintext job): its shares, bounds
/// and checks would all be computed for the wrong key.
fn check_job_key(ledger: &Ledger, c: &Consortium, key_file: &std::path::Path) -> Result<()> {
    let state = ledger.chain().state();
    let job = state
        .next_job
        .checked_sub(1)
        .and_then(|j| state.jobs.get(&j).map(|x| (j, x)));
    let Some((job, j)) = job else {
        return Err(NodeError::Runtime(
            "the ledger holds blocks but no job".into(),
        ));
    };
    let loaded = match &c.protection {
        Protection::Encrypted(e) => {
            use fedchain_crypto::Encode;
            e.key.to_bytes()
        }
        Protection::Plaintext => Vec::new(),
    };
    if j.spec.threshold_key != loaded {
        return Err(NodeError::ThresholdKeyMismatch {
            path: key_file.to_path_buf(),
            job,
            on_chain: fingerprint(&j.spec.threshold_key),
            loaded: fingerprint(&loaded),
        });
    }
    Ok(())
}

/// A short name for key bytes in messages (the SHA-256 prefix, or "none").
fn fingerprint(key: &[u8]) -> String {
    if key.is_empty() {
        return "none (plaintext)".into();
    }
    hex::encode(&Hash::sha256(key).0[..8])
}

/// Log the transport's refusal counters when they changed.
fn log_stats(logged: &mut NetStats, now: NetStats) {
    if now != *logged {
        warn!(
            retries = now.retries,
            handshakes_refused_address = now.handshakes_refused_address,
            handshakes_refused_busy = now.handshakes_refused_busy,
            handshakes_failed = now.handshakes_failed,
            connections_refused = now.connections_refused,
            frames_too_large = now.frames_too_large,
            streams_over_budget = now.streams_over_budget,
            connections_closed_abusive = now.connections_closed_abusive,
            "coordinator: transport refusals so far"
        );
        *logged = now;
    }
}

/// One connection: read its messages into the event queue (each with its share of the peer's
/// budget); a writer task sends `Down`s.
async fn peer_task(conn: u64, peer: Peer, events: mpsc::Sender<Event>, down_budget: u64) {
    let peer = Arc::new(peer);
    let id = peer.identity().clone();
    let from = id.address();
    let timeout = peer.limits().timeout;
    let (tx, mut rx) = mpsc::channel::<(Down, u64)>(PEER_QUEUE);
    let outbox = Outbox {
        tx,
        queued: Arc::new(AtomicU64::new(0)),
        budget: down_budget,
        denied: Arc::default(),
    };
    let queued = Arc::clone(&outbox.queued);
    let denied = Arc::clone(&outbox.denied);
    info!(peer = %id.name, remote = %peer.remote_address(), "coordinator: peer connected");
    if events
        .send_timeout(
            Event::Connected {
                conn,
                id: id.clone(),
                outbox,
            },
            timeout,
        )
        .await
        .is_err()
    {
        return;
    }
    let writer = {
        let peer = Arc::clone(&peer);
        let name = id.name.clone();
        tokio::spawn(async move {
            while let Some((d, size)) = rx.recv().await {
                let sent = peer.notify(&d).await;
                queued.fetch_sub(size, Ordering::AcqRel);
                if let Err(e) = sent {
                    warn!(peer = %name, error = %e, "coordinator: send failed, closing");
                    break;
                }
            }
            match denied.lock().ok().and_then(|d| d.clone()) {
                Some(reason) => peer.deny(&reason),
                None => peer.close("closing"),
            }
        })
    };
    let mut refused = 0u64;
    loop {
        match peer.next_incoming_held::<Up>().await {
            Ok((Incoming::Message(up), held)) => {
                let bytes = match &up {
                    Up::Msg(WorkerMsg::Submit(m)) => m.payload.len() as u64,
                    Up::Msg(WorkerMsg::Share(m) | WorkerMsg::RangeProof(m)) => {
                        m.payload.len() as u64
                    }
                    _ => 0,
                };
                let ev = Event::Message {
                    conn,
                    from,
                    up: Box::new(up),
                    bytes,
                    _held: held,
                };
                if events.send_timeout(ev, timeout).await.is_err() {
                    warn!(peer = %id.name, "coordinator: service queue full or gone, dropping the peer");
                    break;
                }
            }
            Ok((Incoming::Request { responder, .. }, _)) => {
                let _ = responder
                    .fail("requests are not part of this protocol")
                    .await;
            }
            Err(NetError::Wire(e)) => {
                refused += 1;
                if refused <= LOGGED_REFUSALS {
                    warn!(peer = %id.name, error = %e, "coordinator: frame refused (stream dropped)");
                } else {
                    debug!(peer = %id.name, error = %e, "coordinator: frame refused (stream dropped)");
                }
            }
            Err(e @ NetError::Abusive { .. }) => {
                warn!(peer = %id.name, error = %e, "coordinator: peer exceeded its limits, connection closed");
                break;
            }
            Err(e) => {
                info!(peer = %id.name, reason = %e, "coordinator: peer disconnected");
                break;
            }
        }
    }
    if refused > LOGGED_REFUSALS {
        warn!(peer = %id.name, refused, "coordinator: frames refused on this connection (the first {LOGGED_REFUSALS} logged)");
    }
    writer.abort();
    peer.close("closing");
    let _ = events
        .send_timeout(Event::Closed { conn, from }, timeout)
        .await;
}

/// A round recovered open after a restart: no block is produced for it until the committee is
/// back, so the hospitals are not charged for the time the coordinator was down.
struct Resume {
    round: Option<u32>,
    since: Instant,
    /// When every expected member had said hello again.
    back: Option<Instant>,
}

struct Loop {
    cfg: CoordinatorConfig,
    c: Arc<Consortium>,
    stage: Stage,
    /// Participants refused for a revoked certificate (the server records them).
    revoked: fedchain_net::tls::Revoked,
    resumed: Option<Resume>,
    conns: BTreeMap<Address, Conn>,
    metrics: Arc<CoordinatorMetrics>,
    phase_started: Instant,
    idle_since: Instant,
    finished_at: Option<Instant>,
    /// Hellos received before the service exists (during enrollment).
    hellos: BTreeMap<Address, WorkerMsg>,
}

impl Loop {
    async fn run(
        &mut self,
        mut events: mpsc::Receiver<Event>,
        mut shutdown: oneshot::Receiver<()>,
    ) -> Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    info!("coordinator: shutting down");
                    return Ok(());
                }
                ev = events.recv() => {
                    let Some(ev) = ev else { return Err(NodeError::Runtime("event queue closed".into())) };
                    tokio::task::block_in_place(|| self.on_event(ev))?;
                }
                _ = tick.tick() => {
                    tokio::task::block_in_place(|| self.on_tick())?;
                }
            }
            self.report_dropped();
            if let Some(t) = self.finished_at {
                if self.cfg.exit_when_done && t.elapsed() >= Duration::from_millis(500) {
                    return Ok(());
                }
            }
        }
    }

    fn report(&self) -> CoordinatorReport {
        match &self.stage {
            Stage::Running(s) => CoordinatorReport {
                rounds: s.results().to_vec(),
                height: s.ledger().height(),
                params_hash: self.current_params_hash(s),
                ledger: self.cfg.ledger.clone(),
                finished: self.finished_at.is_some(),
            },
            Stage::Enrolling { .. } => CoordinatorReport {
                rounds: Vec::new(),
                height: 0,
                params_hash: None,
                ledger: self.cfg.ledger.clone(),
                finished: false,
            },
        }
    }

    fn current_params_hash(&self, s: &CoordinatorService) -> Option<Hash> {
        s.ledger()
            .chain()
            .state()
            .jobs
            .get(&s.job())
            .and_then(|j| j.current_params)
    }

    /// Transactions the chain left out of blocks: logged and counted, never fatal. Also
    /// logged: submissions the chain holds that did not come through this coordinator.
    fn report_dropped(&mut self) {
        let Stage::Running(s) = &mut self.stage else {
            return;
        };
        for (round, hospital, kind) in s.take_adopted() {
            warn!(round, %hospital, ?kind, "coordinator: a transaction reached the chain directly (not through this coordinator); taken from there");
        }
        for d in s.take_dropped() {
            warn!(tx = %d.tx, kind = ?d.kind, reason = %d.reason, "coordinator: transaction left out of the block");
            self.metrics.dropped_transaction(match d.kind {
                TxTag::Register => TransactionKind::Register,
                TxTag::CreateJob => TransactionKind::CreateJob,
                TxTag::Join => TransactionKind::Join,
                TxTag::OpenRound => TransactionKind::OpenRound,
                TxTag::Submit => TransactionKind::Submit,
                TxTag::DecryptionShare => TransactionKind::DecryptionShare,
                TxTag::CommitRound => TransactionKind::CommitRound,
                TxTag::VoidRound => TransactionKind::VoidRound,
                TxTag::VoidUnpackable => TransactionKind::VoidUnpackable,
                TxTag::RangeProof => TransactionKind::RangeProof,
                TxTag::Blame => TransactionKind::Blame,
                TxTag::Transfer => TransactionKind::Transfer,
                TxTag::Penalty => TransactionKind::Penalty,
            });
        }
    }

    fn member_index(&self, a: &Address) -> Option<usize> {
        self.c.members.iter().position(|m| m == a)
    }

    fn on_event(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Connected { conn, id, outbox } => {
                let a = id.address();
                let admitted = match &self.stage {
                    Stage::Running(s) => {
                        check_registered(&id, s.ledger().chain().state()).map(|_| ())
                    }
                    Stage::Enrolling { .. } => {
                        if id.role == Role::Hospital && self.member_index(&a).is_some() {
                            Ok(())
                        } else {
                            Err(format!("{} is not a hospital of the committee", id.name))
                        }
                    }
                };
                if let Err(reason) = admitted {
                    warn!(peer = %id.name, %reason, "coordinator: refusing the peer");
                    // dropping the outbox ends its writer, which closes the connection with
                    // DENIED: the peer stops instead of reconnecting
                    outbox.deny(&reason);
                    return Ok(());
                }
                self.conns.insert(
                    a,
                    Conn {
                        id: conn,
                        name: id.name.clone(),
                        outbox,
                        hello: false,
                    },
                );
                self.metrics.set_connected_hospitals(self.conns.len());
            }
            Event::Closed { conn, from } => {
                if self.conns.get(&from).is_some_and(|c| c.id == conn) {
                    self.conns.remove(&from);
                    self.hellos.remove(&from);
                    self.metrics.set_connected_hospitals(self.conns.len());
                }
            }
            Event::Message {
                conn,
                from,
                up,
                bytes,
                _held,
            } => {
                if self.conns.get(&from).is_none_or(|c| c.id != conn) {
                    return Ok(()); // from a refused or replaced connection
                }
                self.metrics.bytes_received(bytes);
                match *up {
                    Up::Enroll { register, join } => self.enroll(from, register, join)?,
                    Up::Msg(msg) => self.message(from, msg)?,
                }
            }
        }
        self.maybe_start()
    }

    fn enroll(&mut self, from: Address, register: SignedTx, join: SignedTx) -> Result<()> {
        let name = self
            .conns
            .get(&from)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let Some(i) = self.member_index(&from) else {
            return Ok(());
        };
        let Stage::Enrolling { ledger, enrolled } = &mut self.stage else {
            debug!(peer = %name, "coordinator: already enrolled on chain");
            return Ok(());
        };
        let chain = &self.c.genesis.chain_id;
        let ok = register.sender() == from
            && join.sender() == from
            && register.tx.chain_id == *chain
            && join.tx.chain_id == *chain
            && register.tx.nonce < join.tx.nonce
            && register.verify()
            && join.verify()
            && matches!(&register.tx.kind, TxKind::Register { role: Role::Hospital, pseudonym } if *pseudonym == name)
            && matches!(&join.tx.kind, TxKind::Join { job: 0, deposit, samples }
                if *deposit >= 1_000 && (1..=self.c.max_samples).contains(samples));
        if !ok {
            warn!(peer = %name, "coordinator: malformed enrollment refused");
            self.send(
                &from,
                Down::Msg(CoordinatorMsg::Refused {
                    reason: Refusal::Chain(format!(
                        "malformed enrollment (register + join of job 0 declaring 1..={} samples)",
                        self.c.max_samples
                    )),
                }),
            );
            return Ok(());
        }
        enrolled.insert(i, (register, join));
        info!(peer = %name, enrolled = enrolled.len(), of = self.c.members.len(), "coordinator: hospital enrolled");
        if enrolled.len() < self.c.members.len() {
            return Ok(());
        }
        // dry-run against the chain rules first: a bad enrollment is refused alone and the
        // bootstrap waits for that member to enroll again
        let txs: Vec<_> = enrolled.values().cloned().collect();
        let rejects = match ledger.as_ref() {
            Some(l) => self.c.enrollment_rejects(l, &txs)?,
            None => Vec::new(),
        };
        if !rejects.is_empty() {
            let keys: Vec<usize> = enrolled.keys().copied().collect();
            let mut refused = Vec::new();
            for (pos, reason) in rejects {
                if let Some(i) = keys.get(pos) {
                    enrolled.remove(i);
                    refused.push((*i, reason));
                }
            }
            for (i, reason) in refused {
                let Some(who) = self.c.members.get(i).copied() else {
                    continue;
                };
                let peer = self
                    .conns
                    .get(&who)
                    .map(|c| c.name.clone())
                    .unwrap_or_default();
                warn!(peer = %peer, %reason, "coordinator: enrollment refused by the chain rules");
                self.send(
                    &who,
                    Down::Msg(CoordinatorMsg::Refused {
                        reason: Refusal::Chain(format!("enrollment refused: {reason}")),
                    }),
                );
            }
            return Ok(());
        }
        let mut l = ledger
            .take()
            .ok_or_else(|| NodeError::Runtime("ledger already bootstrapped".into()))?;
        let job = self.c.bootstrap_enrolled(&mut l, &txs)?;
        let key_file = self.cfg.job_dir.join(fedchain_net::pki::THRESHOLD_KEY);
        check_job_key(&l, &self.c, &key_file)?;
        let (s, _) = CoordinatorService::recover(*l, &self.cfg.ledger, &self.c)?;
        info!(
            job,
            height = s.ledger().height(),
            "coordinator: bootstrap block committed (registrations, job, joins)"
        );
        self.metrics.set_ledger_height(s.ledger().height());
        self.stage = Stage::Running(Box::new(s));
        self.idle_since = Instant::now();
        // answer the hellos that came during enrollment
        let hellos = std::mem::take(&mut self.hellos);
        for (a, h) in hellos {
            self.message(a, h)?;
        }
        Ok(())
    }

    fn message(&mut self, from: Address, msg: WorkerMsg) -> Result<()> {
        let Stage::Running(s) = &mut self.stage else {
            if matches!(msg, WorkerMsg::Hello { .. }) {
                self.hellos.insert(from, msg);
            }
            return Ok(());
        };
        let kind = match &msg {
            WorkerMsg::Hello { .. } => 0,
            WorkerMsg::Submit(_) => 1,
            WorkerMsg::Share(_) => 2,
            WorkerMsg::RangeProof(_) => 3,
        };
        let out = s.on_message(from, msg)?;
        if kind == 0 {
            let welcomed = out
                .iter()
                .any(|o| matches!(o, Outbound::To(_, CoordinatorMsg::Welcome { .. })));
            if let Some(c) = self.conns.get_mut(&from) {
                let again = c.hello && welcomed;
                c.hello = welcomed;
                if again {
                    // a repeated hello on one connection (answered, not logged each time)
                    debug!(peer = %c.name, "coordinator: hello again");
                } else {
                    info!(peer = %c.name, welcomed, "coordinator: hello");
                }
            }
            if self.finished_at.is_some() {
                self.send(
                    &from,
                    Down::Finished {
                        rounds: self.c.cfg.rounds,
                    },
                );
            }
            // a recovered round notes the committee's return at the hello that completes it
            // (its submissions may close the round before the next tick)
            let _ = self.held();
        }
        for o in &out {
            if let Outbound::To(a, CoordinatorMsg::Ack(ack)) = o {
                if *a == from {
                    self.record_ack(kind, &ack.outcome);
                }
            }
        }
        self.deliver(out)
    }

    fn record_ack(&self, kind: u8, outcome: &Outcome) {
        let m = &self.metrics;
        match (kind, outcome) {
            (1, Outcome::Accepted) => m.submission_accepted(),
            (1, Outcome::Duplicate) => m.submission_rejected(RejectReason::Duplicate),
            (1, Outcome::Rejected { reason }) => {
                let r = reject_label(reason);
                m.submission_rejected(r);
                if r == RejectReason::Equivocation {
                    m.penalty(PenaltyReason::Equivocation);
                }
            }
            (2, Outcome::Accepted) => m.decryption_share(ShareOutcome::Accepted),
            (2, Outcome::Duplicate | Outcome::Rejected { .. }) => {
                m.decryption_share(ShareOutcome::Rejected)
            }
            _ => {}
        }
    }

    /// Members the coordinator waits for: the committee but those refused for a revoked
    /// certificate (they cannot connect again, so no round waits for them).
    fn expected_members(&self) -> usize {
        let revoked = self
            .revoked
            .lock()
            .map(|r| self.c.members.iter().filter(|m| r.contains_key(m)).count());
        self.c.members.len() - revoked.unwrap_or(0)
    }

    /// Whether the recovered round still waits for its committee: after a restart no block
    /// (so no step towards the round's deadline height) is produced until every expected
    /// member has said hello again and a grace of `deadline_blocks` ticks has passed since
    /// (the time a round is given), or `wait_for_members_ms` has passed without them. A
    /// hospital's deadline thus counts from when the committee is back, and a crash of the
    /// coordinator neither voids the round nor charges anyone for missing it.
    fn held(&mut self) -> bool {
        let expected = self.expected_members();
        let Some(r) = &mut self.resumed else {
            return false;
        };
        let Stage::Running(s) = &self.stage else {
            return false;
        };
        if s.round() != r.round {
            self.resumed = None; // the recovered round ended
            return false;
        }
        let ready = self.conns.values().filter(|c| c.hello).count();
        if r.back.is_none() && ready >= expected {
            info!(
                round = ?r.round,
                after_ms = r.since.elapsed().as_millis() as u64,
                "coordinator: the committee is back after the restart, the round's deadline counts from now"
            );
            r.back = Some(Instant::now());
        }
        let grace =
            Duration::from_millis(self.cfg.tick_ms.saturating_mul(self.c.cfg.deadline_blocks));
        let release = match r.back {
            Some(t) => t.elapsed() >= grace,
            None => r.since.elapsed() >= Duration::from_millis(self.cfg.wait_for_members_ms),
        };
        if release {
            info!(round = ?r.round, hospitals = ready, "coordinator: the recovered round goes on");
            self.resumed = None;
        }
        !release
    }

    fn on_tick(&mut self) -> Result<()> {
        let held = self.held();
        if let Stage::Running(s) = &mut self.stage {
            if s.round().is_some() && !held {
                let out = s.on_tick()?;
                self.metrics.set_ledger_height(s.ledger().height());
                self.deliver(out)?;
            }
        }
        self.maybe_start()
    }

    /// Open the next round when idle: at once if every member is connected, otherwise after
    /// `wait_for_members_ms` with at least the minimum; or finish after the last round.
    fn maybe_start(&mut self) -> Result<()> {
        let expected = self.expected_members();
        let Stage::Running(s) = &mut self.stage else {
            return Ok(());
        };
        if s.round().is_some() || self.finished_at.is_some() {
            return Ok(());
        }
        let next = s
            .ledger()
            .chain()
            .state()
            .jobs
            .get(&s.job())
            .map_or(0, |j| j.next_round);
        if next >= self.c.cfg.rounds {
            info!(
                rounds = next,
                height = s.ledger().height(),
                "coordinator: all rounds done"
            );
            self.finished_at = Some(Instant::now());
            let ids: Vec<Address> = self.conns.keys().copied().collect();
            for a in ids {
                self.send(&a, Down::Finished { rounds: next });
            }
            return Ok(());
        }
        let ready = self.conns.values().filter(|c| c.hello).count();
        let all = ready >= expected;
        let waited =
            self.idle_since.elapsed() >= Duration::from_millis(self.cfg.wait_for_members_ms);
        if !(all || (waited && ready as u32 >= self.c.cfg.min_participants())) {
            return Ok(());
        }
        let out = s.start_round()?;
        info!(
            round = next,
            hospitals = ready,
            height = s.ledger().height(),
            "coordinator: round opened"
        );
        self.metrics.round_opened(next);
        self.metrics.set_ledger_height(s.ledger().height());
        self.phase_started = Instant::now();
        self.deliver(out)
    }

    fn send(&mut self, to: &Address, d: Down) {
        let Some(c) = self.conns.get(to) else {
            return;
        };
        if let Err(reason) = c.outbox.push(d) {
            warn!(peer = %c.name, %reason, "coordinator: peer falls behind, disconnecting it");
            self.conns.remove(to);
            self.metrics.set_connected_hospitals(self.conns.len());
        }
    }

    fn deliver(&mut self, out: Vec<Outbound>) -> Result<()> {
        for o in out {
            let (to, msg) = match o {
                Outbound::To(a, m) => (Some(a), m),
                Outbound::All(m) => (None, m),
            };
            self.observe(&msg)?;
            match to {
                Some(a) => self.send(&a, Down::Msg(msg)),
                None => {
                    let ids: Vec<Address> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| c.hello)
                        .map(|(a, _)| *a)
                        .collect();
                    for a in ids {
                        self.send(&a, Down::Msg(msg.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Metrics and logs for what the service says.
    fn observe(&mut self, msg: &CoordinatorMsg) -> Result<()> {
        let Stage::Running(s) = &self.stage else {
            return Ok(());
        };
        match msg {
            CoordinatorMsg::ShareRequest(r) => {
                let per = self.c.ciphertexts() as u64;
                self.metrics
                    .ciphertexts_aggregated(per * r.submissions.len() as u64);
                self.metrics
                    .observe_phase(Phase::Train, self.phase_started.elapsed());
                self.phase_started = Instant::now();
                info!(
                    round = r.round,
                    inputs = r.submissions.len(),
                    height = s.ledger().height(),
                    "coordinator: submissions closed, shares requested"
                );
            }
            CoordinatorMsg::RangeRequest(r) => {
                warn!(
                    round = r.round,
                    plaintext = r.plaintext,
                    height = s.ledger().height(),
                    "coordinator: the aggregate does not unpack; blame step opened, range proofs requested"
                );
            }
            CoordinatorMsg::RoundResult(r) => {
                self.metrics
                    .observe_phase(Phase::Decrypt, self.phase_started.elapsed());
                self.idle_since = Instant::now();
                let height = s.ledger().height();
                self.metrics.set_ledger_height(height);
                let names = |v: &[Address]| -> Vec<String> {
                    let st = s.ledger().chain().state();
                    v.iter()
                        .map(|a| {
                            st.participants
                                .get(a)
                                .map_or_else(|| format!("{a:?}"), |p| p.pseudonym.clone())
                        })
                        .collect()
                };
                if r.committed {
                    self.metrics.round_committed();
                    for _ in &r.missing {
                        self.metrics.penalty(PenaltyReason::MissedDeadline);
                    }
                    let accuracy = self.evaluate(s.params());
                    if let Some(acc) = accuracy {
                        self.metrics.set_model_accuracy(acc)?;
                    }
                    info!(
                        round = r.round,
                        height,
                        accepted = ?names(&r.accepted),
                        missing = ?names(&r.missing),
                        shares = r.share_providers.len(),
                        params = %r.new_params_hash.map(|h| hex::encode(h.0)).unwrap_or_default(),
                        accuracy = accuracy.unwrap_or(f64::NAN),
                        "coordinator: round committed"
                    );
                } else {
                    self.metrics.round_voided();
                    info!(round = r.round, height, "coordinator: round voided");
                    // members a blame step of this round found out of range (THREAT-MODEL A5)
                    let st = s.ledger().chain().state();
                    if let Some(j) = st.jobs.get(&s.job()) {
                        let blamed: Vec<Address> = j
                            .excluded
                            .iter()
                            .filter(|a| {
                                j.punished.contains(&(
                                    r.round,
                                    **a,
                                    fedchain_ledger::types::Offence::OUT_OF_RANGE,
                                ))
                            })
                            .copied()
                            .collect();
                        for _ in &blamed {
                            self.metrics.penalty(PenaltyReason::OutOfRange);
                        }
                        if !blamed.is_empty() {
                            warn!(round = r.round, blamed = ?names(&blamed), "coordinator: aggregate did not unpack; members without a range proof penalised and excluded from the job");
                        }
                    }
                }
                let st = s.ledger().chain().state();
                for (a, p) in &st.participants {
                    self.metrics.set_token_balance(&p.pseudonym, st.balance(a));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Accuracy of `params` on the held-out split.
    fn evaluate(&self, params: &[f32]) -> Option<f64> {
        let mut m = self.c.spec.build(self.c.cfg.seed).ok()?;
        m.set_params(params).ok()?;
        match m.evaluate(&self.c.split.test) {
            Ok(e) => Some(e.accuracy),
            Err(e) => {
                error!(error = %e, "coordinator: evaluation failed");
                None
            }
        }
    }
}

fn reject_label(r: &Refusal) -> RejectReason {
    match r {
        Refusal::SenderMismatch { .. } | Refusal::Chain(_) => RejectReason::BadSignature,
        Refusal::NotMember(_) => RejectReason::NotMember,
        Refusal::WrongJob { .. } | Refusal::Version { .. } => RejectReason::WrongJob,
        Refusal::NoOpenRound | Refusal::Closed { .. } => RejectReason::WrongRound,
        Refusal::Equivocation => RejectReason::Equivocation,
        Refusal::Late { .. } => RejectReason::Late,
        Refusal::Engine(_) => RejectReason::InvalidPayload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedchain_coordinator::{Quiet, SimulateConfig};
    use fedchain_crypto::vector::encrypt_update;
    use fedchain_crypto::Encryptor;
    use fedchain_net::wire::{FrameKind, Header, FLAG_PAYLOAD};
    use rand::rngs::{OsRng, StdRng};
    use rand::SeedableRng;

    fn consortium(hospitals: usize, key_bits: u32) -> Consortium {
        let cfg = SimulateConfig {
            hospitals,
            threshold: 2,
            key_bits,
            rounds: 1,
            baseline: false,
            ..SimulateConfig::default()
        };
        Consortium::new(&cfg, &mut Quiet).expect("consortium")
    }

    /// The computed bounds hold what the crypto actually writes, with little to spare.
    #[test]
    fn bounds_hold_real_submissions_shares_and_frames() {
        for (hospitals, key_bits) in [(4, 512), (7, 768)] {
            let c = consortium(hospitals, key_bits);
            let Protection::Encrypted(e) = &c.protection else {
                panic!("an encrypted job")
            };
            let pk = e.key.public_key();
            let b = MessageBounds::of(&c).expect("bounds");
            let enc = Encryptor::new(pk.clone(), 4).expect("encryptor");
            let share_key = c.shares[hospitals - 1].as_ref().expect("a share");
            let mut rounding = StdRng::seed_from_u64(7);
            for (i, x) in [0.0f32, 1.0, -1.0].into_iter().enumerate() {
                let update = vec![x; c.num_params];
                let pv = encrypt_update(
                    &enc,
                    &e.packer,
                    &update,
                    c.max_samples,
                    b"context",
                    &mut rounding,
                    &mut OsRng,
                )
                .expect("encrypt");
                let payload = pv.to_bytes(pk);
                let len = payload.len() as u64;
                assert!(len <= b.submission, "{len} > {}", b.submission);
                assert!(b.submission - len < 160, "{} for {len}", b.submission);
                let share = share_key
                    .decrypt_share(&e.key, &pv.ciphertexts.0, &mut OsRng)
                    .expect("share")
                    .to_bytes(pk);
                let slen = share.len() as u64;
                assert!(slen <= b.share, "{slen} > {}", b.share);
                assert!(b.share - slen < 160, "{} for {slen}", b.share);

                let key = &c.hospital_keys[0];
                let tx = Transaction {
                    chain_id: c.genesis.chain_id.clone(),
                    sender: key.verifying_key(),
                    nonce: 3 + i as u64,
                    kind: TxKind::Submit {
                        job: 0,
                        round: i as u32,
                        payload: Hash(pv.ciphertexts.digest(pk)),
                        samples: c.max_samples,
                        payload_bytes: len,
                    },
                }
                .sign(key);
                let sub = SubmissionMsg { tx, payload };
                let up = fedchain_net::wire::encode(&Up::Msg(WorkerMsg::Submit(sub.clone())))
                    .expect("encode");
                assert!(up.len() as u64 <= b.frame);
                assert!(b.frame - up.len() as u64 <= FRAME_MARGIN + 160);
                let down = fedchain_net::wire::encode(&Down::Msg(CoordinatorMsg::ShareRequest(
                    ShareRequest {
                        job: 0,
                        round: 0,
                        submissions: vec![sub; hospitals],
                    },
                )))
                .expect("encode");
                assert!(down.len() as u64 <= b.down);
            }
        }
    }

    #[test]
    fn the_coordinator_refuses_a_256_mib_body_at_the_header() {
        let c = consortium(4, 512);
        let b = MessageBounds::of(&c).expect("bounds");
        let net = NetConfig::default();
        let l = limits(&net, &b).expect("limits");
        assert_eq!(l.max_payload, b.frame);
        assert_eq!(l.max_send, net.max_payload);
        assert_eq!(l.peer_budget, 2 * b.frame + 16 * net.max_control);
        assert_eq!(l.handshake_timeout, Duration::from_secs(5));
        let huge = Header {
            kind: FrameKind::Message,
            flags: FLAG_PAYLOAD,
            len: 256 << 20,
        };
        assert_eq!(
            Header::parse(&huge.to_bytes(), &l),
            Err(fedchain_net::WireError::TooLarge {
                len: 256 << 20,
                limit: b.frame
            })
        );
        // an explicit budget is kept; one that cannot hold a message, or a send limit that
        // cannot carry a share request, is a configuration error
        let l = limits(
            &NetConfig {
                peer_budget: Some(64 << 20),
                ..NetConfig::default()
            },
            &b,
        )
        .expect("limits");
        assert_eq!(l.peer_budget, 64 << 20);
        let small = MessageBounds { frame: 8192, ..b };
        let e = limits(
            &NetConfig {
                peer_budget: Some(4096),
                max_control: 4096,
                ..NetConfig::default()
            },
            &small,
        )
        .expect_err("budget below one message");
        assert!(e.to_string().contains("net.peer_budget"), "{e}");
        let e = limits(
            &NetConfig {
                max_payload: 4096,
                max_control: 4096,
                ..NetConfig::default()
            },
            &MessageBounds { down: 5000, ..b },
        )
        .expect_err("cannot send a share request");
        assert!(e.to_string().contains("net.max_payload"), "{e}");
    }

    #[test]
    fn a_peer_that_falls_behind_has_a_byte_budget() {
        let (tx, _rx) = mpsc::channel(PEER_QUEUE);
        let outbox = Outbox {
            tx,
            queued: Arc::new(AtomicU64::new(0)),
            budget: 1000,
            denied: Arc::default(),
        };
        let d = Down::Finished { rounds: 1 };
        let size = d.held_bytes();
        let fits = (1000 / size) as usize;
        for _ in 0..fits {
            outbox.push(d.clone()).expect("fits");
        }
        let e = outbox.push(d).expect_err("over the byte budget");
        assert!(e.contains("budget 1000"), "{e}");
        assert_eq!(outbox.queued.load(Ordering::Acquire), fits as u64 * size);
    }

    /// A ledger holding a bootstrapped job of `c` in `dir` (the simulated hospitals enroll).
    fn bootstrapped(dir: &std::path::Path, c: &Consortium) {
        let mut hospitals = c.hospitals().expect("hospitals");
        CoordinatorService::create(dir, c, &mut hospitals).expect("bootstrap");
    }

    /// `c` as the deployed coordinator loads it, with `threshold_key` from its job directory.
    fn deployed(c: &Consortium, threshold_key: Option<ThresholdPublicKey>) -> Consortium {
        let keys = DeploymentKeys {
            genesis: c.genesis.clone(),
            aggregator: c.aggregator.clone(),
            validators: c.validators.clone(),
            committee: c.hospital_keys.iter().map(|k| k.verifying_key()).collect(),
            threshold_key,
        };
        Consortium::deployment(&c.cfg, keys).expect("deployment")
    }

    fn key_of(c: &Consortium) -> Option<ThresholdPublicKey> {
        match &c.protection {
            Protection::Encrypted(e) => Some(e.key.clone()),
            Protection::Plaintext => None,
        }
    }

    /// Issue #13: a coordinator whose `threshold_key.fc` is not the key in the job's
    /// `CreateJob` on chain (another keygen's, e.g. a job directory of another deployment)
    /// stops at start with a typed error instead of running rounds under the wrong key.
    #[test]
    fn a_threshold_key_other_than_the_jobs_on_chain_stops_the_coordinator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = dir.path().join("ledger");
        let key_file = dir.path().join("job/threshold_key.fc");
        let c = consortium(4, 512);
        bootstrapped(&ledger, &c);
        let other = consortium(4, 512);
        let wrong = deployed(&c, key_of(&other));
        match recover_stage(&ledger, &key_file, &wrong, &mut |_, _| {}) {
            Err(NodeError::ThresholdKeyMismatch {
                path,
                job,
                on_chain,
                loaded,
            }) => {
                assert_eq!((path, job), (key_file.clone(), 0));
                assert_ne!(on_chain, loaded);
            }
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("started under another threshold key"),
        }
        // the job's own key starts it
        let right = deployed(&c, key_of(&c));
        let stage = recover_stage(&ledger, &key_file, &right, &mut |_, _| {}).expect("start");
        assert!(matches!(stage, Stage::Running(_)));
    }

    /// Issue #13: a restart whose stored state does not match its head replays the chain ONCE
    /// (it was replayed by the first open of the ledger and again by the service's own open):
    /// each block is applied once, and the service runs on the replayed state.
    #[test]
    fn a_damaged_snapshot_is_replayed_once_at_restart() {
        use fedchain_ledger::{Column, Recovery, RocksStore, Store};
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = dir.path().join("ledger");
        let c = consortium(4, 512);
        bootstrapped(&ledger, &c);
        let height = {
            let store = RocksStore::open(&ledger).expect("store");
            let mut s = store
                .raw_get(Column::State, RocksStore::state_key())
                .expect("read")
                .expect("state");
            let at = s.len() / 2;
            s[at] ^= 0x01;
            store
                .raw_put(Column::State, RocksStore::state_key(), &s)
                .expect("write");
            store.head().expect("head").expect("a head").height
        };
        assert!(height >= 1);
        let mut applied = Vec::new();
        let stage = recover_stage(
            &ledger,
            &dir.path().join("threshold_key.fc"),
            &deployed(&c, key_of(&c)),
            &mut |done, total| applied.push((done, total)),
        )
        .expect("start");
        let want: Vec<(u64, u64)> = (1..=height).map(|h| (h, height)).collect();
        assert_eq!(applied, want, "each block applied exactly once");
        let Stage::Running(s) = stage else {
            panic!("not running")
        };
        assert!(matches!(
            s.ledger().chain().recovery(),
            Recovery::Replayed { .. }
        ));
        assert_eq!(s.ledger().height(), height);
    }
}
