//! The coordinator process: the QUIC server, one task per peer, and ONE task that owns the
//! `CoordinatorService` and the metrics.
//!
//! ```text
//! Server::accept ──> peer task (reader) ──┐ bounded mpsc (events)
//!                    peer task (reader) ──┼──────────────> service loop ── owns CoordinatorService
//!                    ...                  │                    │   tick timer (wall clock -> now_ms)
//!  peer writer <── bounded mpsc (Down) <──┴────────────────────┘
//! ```
//!
//! Stages: on a fresh ledger the loop collects each committee member's own signed
//! `Register` + `Join` ([`Up::Enroll`]); with the whole committee enrolled it writes the
//! bootstrap block and opens the `CoordinatorService` on it. On a ledger that already holds the
//! job, the service is reopened from the store (`CoordinatorService::open`: pending accepted
//! messages are replayed, the open round continues).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedchain_coordinator::service::{
    CoordinatorMsg, CoordinatorService, Outbound, Outcome, Refusal, RoundSummary, WorkerMsg,
};
use fedchain_coordinator::setup::DeploymentKeys;
use fedchain_coordinator::{Consortium, Ledger};
use fedchain_ledger::{Address, Hash, Role, SignedTx, TxKind, TxTag};
use fedchain_metrics::labels::{PenaltyReason, Phase, RejectReason, ShareOutcome, TransactionKind};
use fedchain_metrics::CoordinatorMetrics;
use fedchain_net::{Incoming, NetError, Peer, PeerIdentity, Server};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::config::CoordinatorConfig;
use crate::material::{check_registered, load_bundle, load_committee, load_genesis};
use crate::proto::{Down, Up};
use crate::{now_ms, NodeError, Result};

/// Events queued for the service loop (bounded).
const EVENT_QUEUE: usize = 1024;
/// Messages queued for one peer's writer (bounded; a peer that falls this far behind is
/// disconnected and catches up after reconnecting).
const PEER_QUEUE: usize = 256;

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
        tx: mpsc::Sender<Down>,
    },
    Message {
        conn: u64,
        from: Address,
        up: Box<Up>,
        bytes: u64,
    },
    Closed {
        conn: u64,
        from: Address,
    },
}

struct Conn {
    id: u64,
    name: String,
    tx: mpsc::Sender<Down>,
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
    let c = tokio::task::block_in_place(|| Consortium::deployment(&exp, keys))?;
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
    let limits = cfg.net.limits();
    let mut server = Server::bind(cfg.listen, &bundle, limits)?;
    info!(listen = %server.local_addr()?, "coordinator: listening (QUIC, mutual TLS)");

    let (events_tx, events) = mpsc::channel::<Event>(EVENT_QUEUE);
    let accept = tokio::spawn(async move {
        let mut next_conn = 0u64;
        loop {
            match server.accept().await {
                Ok(peer) => {
                    next_conn += 1;
                    tokio::spawn(peer_task(next_conn, peer, events_tx.clone()));
                }
                Err(NetError::Handshake { remote, reason }) => {
                    warn!(%remote, %reason, "coordinator: handshake refused");
                }
                Err(NetError::Closed) => break,
                Err(e) => warn!(error = %e, "coordinator: accept"),
            }
        }
        server.close();
    });

    let mut lp = Loop {
        cfg,
        c,
        stage,
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
    accept.abort();
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
            let _ = conn
                .tx
                .send_timeout(Down::Finished { rounds }, Duration::from_millis(200))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(lp.report())
}

/// A fresh ledger waits for enrollments; one holding the job reopens the service.
fn open_stage(cfg: &CoordinatorConfig, c: &Consortium) -> Result<Stage> {
    let ledger = tokio::task::block_in_place(|| {
        Ledger::open(
            &cfg.ledger,
            &c.genesis,
            c.validators.clone(),
            c.aggregator.clone(),
        )
    })?;
    if ledger.height() == 0 {
        info!(ledger = %cfg.ledger.display(), "coordinator: fresh ledger, waiting for the committee to enroll");
        return Ok(Stage::Enrolling {
            ledger: Some(Box::new(ledger)),
            enrolled: BTreeMap::new(),
        });
    }
    drop(ledger);
    let (s, out) = tokio::task::block_in_place(|| CoordinatorService::open(&cfg.ledger, c))?;
    info!(
        height = s.ledger().height(),
        round = ?s.round(),
        counted = s.counted().len(),
        pending_messages = out.len(),
        "coordinator: recovered the ledger"
    );
    // the recovered round's announcements go out as hospitals say hello again
    Ok(Stage::Running(Box::new(s)))
}

/// One connection: read its messages into the event queue; a writer task sends `Down`s.
async fn peer_task(conn: u64, peer: Peer, events: mpsc::Sender<Event>) {
    let peer = Arc::new(peer);
    let id = peer.identity().clone();
    let from = id.address();
    let timeout = peer.limits().timeout;
    let (tx, mut rx) = mpsc::channel::<Down>(PEER_QUEUE);
    info!(peer = %id.name, remote = %peer.remote_address(), "coordinator: peer connected");
    if events
        .send_timeout(
            Event::Connected {
                conn,
                id: id.clone(),
                tx,
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
            while let Some(d) = rx.recv().await {
                if let Err(e) = peer.notify(&d).await {
                    warn!(peer = %name, error = %e, "coordinator: send failed, closing");
                    break;
                }
            }
            peer.close("closing");
        })
    };
    loop {
        match peer.next_incoming::<Up>().await {
            Ok(Incoming::Message(up)) => {
                let bytes = match &up {
                    Up::Msg(WorkerMsg::Submit(m)) => m.payload.len() as u64,
                    Up::Msg(WorkerMsg::Share(m)) => m.payload.len() as u64,
                    _ => 0,
                };
                let ev = Event::Message {
                    conn,
                    from,
                    up: Box::new(up),
                    bytes,
                };
                if events.send_timeout(ev, timeout).await.is_err() {
                    warn!(peer = %id.name, "coordinator: service queue full or gone, dropping the peer");
                    break;
                }
            }
            Ok(Incoming::Request { responder, .. }) => {
                let _ = responder
                    .fail("requests are not part of this protocol")
                    .await;
            }
            Err(NetError::Wire(e)) => {
                warn!(peer = %id.name, error = %e, "coordinator: bad frame (stream dropped)");
            }
            Err(e) => {
                info!(peer = %id.name, reason = %e, "coordinator: peer disconnected");
                break;
            }
        }
    }
    writer.abort();
    peer.close("closing");
    let _ = events
        .send_timeout(Event::Closed { conn, from }, timeout)
        .await;
}

struct Loop {
    cfg: CoordinatorConfig,
    c: Arc<Consortium>,
    stage: Stage,
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

    /// Transactions the chain left out of blocks: logged and counted, never fatal.
    fn report_dropped(&mut self) {
        let Stage::Running(s) = &mut self.stage else {
            return;
        };
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
            Event::Connected { conn, id, tx } => {
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
                    return Ok(()); // dropping `tx` ends its writer and closes the connection
                }
                self.conns.insert(
                    a,
                    Conn {
                        id: conn,
                        name: id.name.clone(),
                        tx,
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
        drop(l);
        let (s, _) = CoordinatorService::open(&self.cfg.ledger, &self.c)?;
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
        };
        let out = s.on_message(from, msg, now_ms())?;
        if kind == 0 {
            let welcomed = out
                .iter()
                .any(|o| matches!(o, Outbound::To(_, CoordinatorMsg::Welcome { .. })));
            if let Some(c) = self.conns.get_mut(&from) {
                c.hello = welcomed;
                info!(peer = %c.name, welcomed, "coordinator: hello");
            }
            if self.finished_at.is_some() {
                self.send(
                    &from,
                    Down::Finished {
                        rounds: self.c.cfg.rounds,
                    },
                );
            }
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

    fn on_tick(&mut self) -> Result<()> {
        if let Stage::Running(s) = &mut self.stage {
            if s.round().is_some() {
                let out = s.on_tick(now_ms())?;
                self.metrics.set_ledger_height(s.ledger().height());
                self.deliver(out)?;
            }
        }
        self.maybe_start()
    }

    /// Open the next round when idle: at once if every member is connected, otherwise after
    /// `wait_for_members_ms` with at least the minimum; or finish after the last round.
    fn maybe_start(&mut self) -> Result<()> {
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
        let all = ready == self.c.members.len();
        let waited =
            self.idle_since.elapsed() >= Duration::from_millis(self.cfg.wait_for_members_ms);
        if !(all || (waited && ready as u32 >= self.c.cfg.min_participants())) {
            return Ok(());
        }
        let out = s.start_round(now_ms())?;
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
        if c.tx.try_send(d).is_err() {
            warn!(peer = %c.name, "coordinator: peer queue full, disconnecting it");
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
        Refusal::NoOpenRound => RejectReason::WrongRound,
        Refusal::Equivocation => RejectReason::Equivocation,
        Refusal::Late { .. } => RejectReason::Late,
        Refusal::Engine(_) => RejectReason::InvalidPayload,
    }
}
