//! [`CoordinatorService`]: the aggregator of one job as a state machine.
//!
//! Durability: every message the engine accepts (a submission or a decryption share, with its
//! payload) is written to the store's pending records in one synced write *before* its
//! `Ack` is returned. Pending records live until the round is committed or voided, so
//! [`CoordinatorService::open`] rebuilds the round from the chain plus these records: it replays
//! them into a fresh engine (in their original order), puts the ones not yet on chain back into
//! the next block, and continues. Nothing acknowledged is lost, and a record already on chain
//! is not included twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fedchain_ledger::state::DECRYPTION_WINDOW;
use fedchain_ledger::types::{decode, encode, Offence};
use fedchain_ledger::{
    verify_chain_full, Address, AuditReport, Hash, JobId, SignedTx, Store, TxKind, TxTag,
};
use fedchain_worker::{decode_plain, encode_plain, Hospital, ShareMsg, SubmissionMsg};

use super::RangeRequest;
use serde::{Deserialize, Serialize};

use super::{
    Ack, CoordinatorMsg, Outcome, Refusal, RoundOpen, RoundSummary, ShareRequest, WorkerMsg,
    PROTOCOL_VERSION,
};
use crate::engine::{Action, Event, RejectReason, RoundEngine, RoundResult};
use crate::ledger::{Dropped, Ledger};
use crate::setup::Consortium;
use crate::simulate::{Result, SimError};
use crate::strategy::{ServerStep, Strategy};
use crate::verify::FedchainVerifier;

/// Name of the failpoint (feature `failpoints`) just before the service commits a block. It
/// fires when configured as `return(<ledger dir>)` for this service's ledger directory, so
/// tests running other services in parallel are not affected.
pub const FAILPOINT_BEFORE_BLOCK: &str = "coordinator::before-block";

/// Name of the failpoint (feature `failpoints`) that makes the service a censoring aggregator
/// (THREAT-MODEL A7): configured as `return(<i>)`, it silently drops every submission of
/// committee member `i` (no record, no acknowledgement).
pub const FAILPOINT_DROP_SUBMISSION: &str = "coordinator::drop-submission";

/// A message for the transport to deliver.
#[derive(Clone, Debug, PartialEq)]
pub enum Outbound {
    /// To one hospital (usually the sender of the message being answered).
    To(Address, CoordinatorMsg),
    /// To every committee member.
    All(CoordinatorMsg),
}

/// An accepted message as kept in the store until its round ends (the payload is stored
/// under the digest its transaction names).
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Record {
    Submit { round: u32, tx: SignedTx },
    Share { round: u32, tx: SignedTx },
    Range { round: u32, tx: SignedTx },
}

impl Record {
    fn round_and_tx(&self) -> (u32, &SignedTx) {
        match self {
            Record::Submit { round, tx }
            | Record::Share { round, tx }
            | Record::Range { round, tx } => (*round, tx),
        }
    }
}

/// The message whose engine actions are being carried out.
#[derive(Debug)]
struct Origin {
    /// The authenticated peer.
    from: Address,
    /// The payload digest its transaction names (for the `Ack`).
    digest: Hash,
    record: Record,
    /// The payload of a possibly equivocating second submission, to keep as evidence.
    evidence: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
enum Phase {
    Idle,
    Collecting(RoundOpen),
    Decrypting(RoundOpen, ShareRequest),
    /// The aggregate did not unpack: submitters prove their slots in range (THREAT-MODEL A5).
    Blaming(RoundOpen, RangeRequest),
}

/// How the actions of one engine event are carried out.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// A live message: record accepted ones durably, acknowledge.
    Live,
    /// Replaying a pending record; `on_chain`: its transaction is already in a block.
    Replay { on_chain: bool },
}

/// The coordinator of one job.
#[derive(Debug)]
pub struct CoordinatorService {
    ledger: Ledger,
    engine: RoundEngine,
    job: JobId,
    server: ServerStep,
    deadline_blocks: u64,
    committee: Vec<Address>,
    theta: Vec<f32>,
    phase: Phase,
    /// Transactions for the next block.
    txs: Vec<SignedTx>,
    /// Penalties whose evidence came while the round decrypted: signed and committed right
    /// after the round's commit or void (THREAT-MODEL A8).
    after_round: Vec<(Address, Offence)>,
    /// Transactions the chain left out of blocks, for the process to log and count.
    dropped: Vec<Dropped>,
    /// Pending records of the open round.
    seqs: Vec<u64>,
    next_seq: u64,
    /// Accepted messages of the open round: sender -> transaction hash.
    submitted: BTreeMap<Address, Hash>,
    shared: BTreeMap<Address, Hash>,
    ranged: BTreeMap<Address, Hash>,
    /// Highest nonce accepted from each sender (on chain or pending).
    nonces: BTreeMap<Address, u64>,
    results: Vec<RoundSummary>,
    dir: PathBuf,
    /// The head at which the open round's blocks were last read for what reached the chain
    /// without this coordinator.
    scanned: u64,
    /// The transactions of the open round already fed into the engine from the chain (each is
    /// fed once, whatever the engine made of it).
    fed: std::collections::BTreeSet<Hash>,
    /// Those transactions (round, sender, kind), for the process to log.
    adopted: Vec<(u32, Address, TxTag)>,
}

impl CoordinatorService {
    /// A coordinator on a fresh ledger in `dir` (created): the bootstrap blocks
    /// (registrations, the job, deposits; the hospitals sign their own transactions).
    pub fn create(dir: &Path, c: &Consortium, hospitals: &mut [Hospital]) -> Result<Self> {
        let mut ledger = c.open_ledger(dir, &mut |_, _| {})?;
        if ledger.height() != 0 {
            return Err(SimError::Service(format!(
                "{} already holds a ledger; use CoordinatorService::open",
                dir.display()
            )));
        }
        let job = c.bootstrap(&mut ledger, hospitals)?;
        Ok(Self::with(ledger, c, job, c.initial_params.clone(), dir))
    }

    /// Reopen the coordinator whose ledger is in `dir` (after a crash or a restart): the chain
    /// is recovered and caught up with the validators, and the open round is rebuilt from its
    /// pending records and continued. Gives the messages to send (the open round or the
    /// share request again, and whatever the replay completed).
    pub fn open(dir: &Path, c: &Consortium) -> Result<(Self, Vec<Outbound>)> {
        Self::open_observed(dir, c, &mut |_, _| {})
    }

    /// [`CoordinatorService::open`], reporting `progress(done, total)` of a fallback replay
    /// (only when the state stored with the head does not match it; see `Ledger::open`).
    pub fn open_observed(
        dir: &Path,
        c: &Consortium,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(Self, Vec<Outbound>)> {
        Self::recover(c.open_ledger(dir, progress)?, dir, c)
    }

    /// [`CoordinatorService::open`] on the ledger of `dir` as the caller already opened it
    /// (`Ledger::open_observed`), so a process that looks at its ledger before it starts the
    /// service opens it, and replays a damaged snapshot, once.
    pub fn recover(ledger: Ledger, dir: &Path, c: &Consortium) -> Result<(Self, Vec<Outbound>)> {
        let state = ledger.chain().state();
        let job = state
            .next_job
            .checked_sub(1)
            .ok_or_else(|| SimError::Service("the ledger holds no job".into()))?;
        let j = state
            .jobs
            .get(&job)
            .ok_or_else(|| SimError::Service(format!("job {job} missing")))?;
        let params_hash = j.open.as_ref().map(|o| o.params_hash).or(j.current_params);
        let theta = match params_hash {
            None => c.initial_params.clone(),
            Some(h) => {
                let bytes = ledger
                    .chain()
                    .store()
                    .payload(&h)?
                    .ok_or_else(|| SimError::Service(format!("parameters {h} missing")))?;
                decode_plain(&bytes, c.num_params)
                    .ok_or_else(|| SimError::Service(format!("parameters {h} undecodable")))?
            }
        };
        let open = j.open.as_ref().map(|o| (o.round, o.deadline));
        let mut nonces = BTreeMap::new();
        for a in c.committee() {
            if let Some(n) = state.nonces.get(&a) {
                nonces.insert(a, *n);
            }
        }
        let mut s = Self::with(ledger, c, job, theta, dir);
        s.nonces = nonces;
        let records = s.ledger.chain().store().pending()?;
        s.next_seq = records.last().map_or(0, |(seq, _)| seq + 1);
        let Some((round, deadline)) = open else {
            let stale: Vec<u64> = records.iter().map(|(seq, _)| *seq).collect();
            s.ledger.chain().store().remove_pending(&stale)?;
            return Ok((s, Vec::new()));
        };
        let mut out = s.begin(round, deadline);
        let mut stale = Vec::new();
        let mut later = Vec::new();
        for (seq, bytes) in records {
            let record: Record = decode("pending record", &bytes)?;
            if record.round_and_tx().0 != round {
                stale.push(seq);
                continue;
            }
            s.seqs.push(seq);
            match record {
                Record::Submit { .. } => out.extend(s.replay(record)?),
                // shares and range proofs after the round closed (in their original order)
                _ => later.push(record),
            }
        }
        s.ledger.chain().store().remove_pending(&stale)?;
        out.extend(s.adopt_from_chain()?);
        // the round may have closed at its deadline before the crash
        let h = s.ledger.height();
        let actions = s.engine.handle(Event::Height(h));
        out.extend(s.carry_out(actions, None, Mode::Live)?);
        for record in later {
            out.extend(s.replay(record)?);
        }
        match &s.phase {
            Phase::Collecting(o) => out.push(Outbound::All(CoordinatorMsg::RoundOpen(o.clone()))),
            Phase::Decrypting(_, r) if !out.iter().any(is_share_request) => {
                out.push(Outbound::All(CoordinatorMsg::ShareRequest(r.clone())))
            }
            Phase::Blaming(_, r) => {
                out.push(Outbound::All(CoordinatorMsg::RangeRequest(r.clone())))
            }
            _ => {}
        }
        Ok((s, out))
    }

    fn with(ledger: Ledger, c: &Consortium, job: JobId, theta: Vec<f32>, dir: &Path) -> Self {
        let declared = crate::simulate::declared_samples(&ledger, job);
        let mut engine = RoundEngine::new(c.engine_config(job, declared));
        // members an earlier blame step excluded stay excluded after a restart
        if let Some(j) = ledger.chain().state().jobs.get(&job) {
            engine.exclude(j.excluded.iter().copied());
        }
        Self {
            ledger,
            engine,
            job,
            server: c.cfg.server,
            deadline_blocks: c.cfg.deadline_blocks,
            committee: c.committee(),
            theta,
            phase: Phase::Idle,
            txs: Vec::new(),
            seqs: Vec::new(),
            after_round: Vec::new(),
            dropped: Vec::new(),
            next_seq: 0,
            submitted: BTreeMap::new(),
            shared: BTreeMap::new(),
            ranged: BTreeMap::new(),
            nonces: BTreeMap::new(),
            results: Vec::new(),
            dir: dir.to_path_buf(),
            scanned: 0,
            fed: Default::default(),
            adopted: Vec::new(),
        }
    }

    pub fn job(&self) -> JobId {
        self.job
    }

    /// The current global parameters (theta of the open round, or of the next one).
    pub fn params(&self) -> &[f32] {
        &self.theta
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The open round, if any.
    pub fn round(&self) -> Option<u32> {
        match &self.phase {
            Phase::Idle => None,
            Phase::Collecting(o) | Phase::Decrypting(o, _) | Phase::Blaming(o, _) => Some(o.round),
        }
    }

    /// Hospitals whose submission to the open round is accepted and counted.
    pub fn counted(&self) -> Vec<Address> {
        self.engine.counted().into_iter().collect()
    }

    /// Rounds finished since this service was started or reopened.
    pub fn results(&self) -> &[RoundSummary] {
        &self.results
    }

    /// Audit the whole ledger from genesis, re-verifying every round's cryptography.
    pub fn audit(&self, c: &Consortium) -> Result<AuditReport> {
        verify_chain_full(
            self.ledger.chain().store(),
            &c.genesis,
            Some(&FedchainVerifier),
            Some(&fedchain_validator::SimplexFinality::new()),
        )
        .map_err(|e| SimError::Service(format!("audit: {e}")))
    }

    /// Open the job's next round from the current parameters: an `OpenRound` block, then the
    /// round announcement to every hospital.
    pub fn start_round(&mut self) -> Result<Vec<Outbound>> {
        if let Some(r) = self.round() {
            return Err(SimError::Service(format!("round {r} is still open")));
        }
        // following independent validators, the deadline is counted from their head
        self.ledger.catch_up()?;
        let round = self
            .ledger
            .chain()
            .state()
            .jobs
            .get(&self.job)
            .map_or(0, |j| j.next_round);
        let params = self.ledger.put_payload(&encode_plain(&self.theta))?;
        let deadline = self.ledger.height() + 1 + self.deadline_blocks;
        let open = self.ledger.sign(TxKind::OpenRound {
            job: self.job,
            round,
            params_hash: params,
            deadline,
        });
        let mut txs = std::mem::take(&mut self.txs);
        txs.push(open);
        self.commit_block(txs)?;
        let mut out = self.begin(round, deadline);
        let h = self.ledger.height();
        let actions = self.engine.handle(Event::Height(h));
        out.extend(self.carry_out(actions, None, Mode::Live)?);
        if let Phase::Collecting(o) = &self.phase {
            out.push(Outbound::All(CoordinatorMsg::RoundOpen(o.clone())));
        }
        Ok(out)
    }

    fn begin(&mut self, round: u32, deadline: u64) -> Vec<Outbound> {
        self.engine.open(round, deadline);
        self.fed.clear();
        self.submitted.clear();
        self.shared.clear();
        self.ranged.clear();
        self.phase = Phase::Collecting(RoundOpen {
            job: self.job,
            round,
            params: self.theta.clone(),
            deadline,
        });
        Vec::new()
    }

    /// Time passes: a block is produced (carrying what was accepted). While submissions are
    /// open, the round closes when the chain reaches its deadline; while decrypting, a round
    /// without t valid shares [`DECRYPTION_WINDOW`] blocks after its deadline is voided.
    pub fn on_tick(&mut self) -> Result<Vec<Outbound>> {
        match &self.phase {
            Phase::Idle => Ok(Vec::new()),
            // the engine closes submissions at the deadline, and a blame step at its end
            Phase::Collecting(_) | Phase::Blaming(..) => {
                let txs = std::mem::take(&mut self.txs);
                self.commit_block(txs)?;
                let mut out = self.adopt_from_chain()?;
                let h = self.ledger.height();
                let actions = self.engine.handle(Event::Height(h));
                out.extend(self.carry_out(actions, None, Mode::Live)?);
                match &self.phase {
                    // a blame the chain refused before (or a restart after the engine ended
                    // the step): end it once the chain's window is over
                    Phase::Blaming(o, _) if out.is_empty() && self.blame_due(o.round) => {
                        let round = o.round;
                        self.blame(round, Vec::new())
                    }
                    _ => Ok(out),
                }
            }
            Phase::Decrypting(o, _) => {
                let (round, deadline) = (o.round, o.deadline);
                let txs = std::mem::take(&mut self.txs);
                self.commit_block(txs)?;
                let out = self.adopt_from_chain()?;
                if self.round() != Some(round) {
                    // the adopted shares completed the round
                    return Ok(out);
                }
                // too few valid shares within the decryption window: void the round
                if self.ledger.height() >= deadline.saturating_add(DECRYPTION_WINDOW) {
                    let mut out = out;
                    out.extend(self.void(round)?);
                    return Ok(out);
                }
                Ok(out)
            }
        }
    }

    /// A message from the authenticated peer `from`.
    pub fn on_message(&mut self, from: Address, msg: WorkerMsg) -> Result<Vec<Outbound>> {
        match msg {
            WorkerMsg::Hello {
                version,
                address,
                job,
            } => Ok(self.hello(from, version, address, job)),
            WorkerMsg::Submit(m) => self.submit(from, m),
            WorkerMsg::Share(m) => self.share_or_proof(from, m, false),
            WorkerMsg::RangeProof(m) => self.share_or_proof(from, m, true),
        }
    }

    fn hello(&self, from: Address, version: u16, address: Address, job: JobId) -> Vec<Outbound> {
        let refuse = |reason| vec![Outbound::To(from, CoordinatorMsg::Refused { reason })];
        if version != PROTOCOL_VERSION {
            return refuse(Refusal::Version {
                got: version,
                want: PROTOCOL_VERSION,
            });
        }
        if address != from {
            return refuse(Refusal::SenderMismatch {
                peer: from,
                claimed: address,
            });
        }
        if !self.committee.contains(&from) {
            return refuse(Refusal::NotMember(from));
        }
        if job != self.job {
            return refuse(Refusal::WrongJob {
                got: job,
                want: self.job,
            });
        }
        let on_chain = self.ledger.chain().state().nonces.get(&from).copied();
        let nonce = self.nonces.get(&from).copied().max(on_chain).unwrap_or(0);
        let round = self.round();
        let mut out = vec![Outbound::To(
            from,
            CoordinatorMsg::Welcome {
                job: self.job,
                nonce,
                submitted: round.filter(|_| self.submitted.contains_key(&from)),
                shared: round.filter(|_| self.shared.contains_key(&from)),
            },
        )];
        match &self.phase {
            Phase::Collecting(o) => {
                out.push(Outbound::To(from, CoordinatorMsg::RoundOpen(o.clone())));
            }
            Phase::Decrypting(o, r) => {
                out.push(Outbound::To(from, CoordinatorMsg::RoundOpen(o.clone())));
                out.push(Outbound::To(from, CoordinatorMsg::ShareRequest(r.clone())));
            }
            Phase::Blaming(o, r) => {
                out.push(Outbound::To(from, CoordinatorMsg::RoundOpen(o.clone())));
                out.push(Outbound::To(from, CoordinatorMsg::RangeRequest(r.clone())));
            }
            Phase::Idle => {}
        }
        out
    }

    /// Checks common to submissions and shares; `Some(outcome)` answers without the engine.
    fn admit(&self, from: Address, tx: &SignedTx, seen: Option<&Hash>) -> Option<Outcome> {
        let claimed = tx.sender();
        if claimed != from {
            return Some(Outcome::Rejected {
                reason: Refusal::SenderMismatch {
                    peer: from,
                    claimed,
                },
            });
        }
        if matches!(self.phase, Phase::Idle) {
            return Some(Outcome::Rejected {
                reason: Refusal::NoOpenRound,
            });
        }
        if seen == Some(&tx.hash()) {
            return Some(Outcome::Duplicate);
        }
        // already final (its sender gave it to the validators directly): the chain took it
        let final_ = matches!(
            self.ledger.chain().store().tx_location(&tx.hash()),
            Ok(Some(_))
        );
        if final_ {
            return None;
        }
        if let Err(e) = self.ledger.chain().state().precheck(tx) {
            return Some(Outcome::Rejected {
                reason: Refusal::Chain(e.to_string()),
            });
        }
        None
    }

    fn submit(&mut self, from: Address, m: SubmissionMsg) -> Result<Vec<Outbound>> {
        #[cfg(feature = "failpoints")]
        {
            let member = self.committee.iter().position(|a| *a == from);
            if fail::eval(FAILPOINT_DROP_SUBMISSION, |arg| {
                member.is_some() && arg.and_then(|a| a.parse::<usize>().ok()) == member
            }) == Some(true)
            {
                return Ok(Vec::new());
            }
        }
        let digest = payload_digest(&m.tx, &m.payload);
        if let Some(outcome) = self.admit(from, &m.tx, self.submitted.get(&from)) {
            return Ok(vec![ack(from, digest, outcome)]);
        }
        let round = self.round().unwrap_or(0);
        let record = Record::Submit {
            round,
            tx: m.tx.clone(),
        };
        // a second, different submission from this sender is evidence of equivocation: it is
        // kept (durably, before the answer) so the penalty survives a restart
        let evidence = self
            .submitted
            .contains_key(&from)
            .then(|| m.payload.clone());
        let actions = self.engine.handle(Event::Submission(m));
        let origin = Origin {
            from,
            digest,
            record,
            evidence,
        };
        self.carry_out(actions, Some(origin), Mode::Live)
    }

    /// A decryption share (`range: false`) or a blame step's range proof (`range: true`).
    fn share_or_proof(&mut self, from: Address, m: ShareMsg, range: bool) -> Result<Vec<Outbound>> {
        let digest = payload_digest(&m.tx, &m.payload);
        let seen = if range { &self.ranged } else { &self.shared };
        if let Some(outcome) = self.admit(from, &m.tx, seen.get(&from)) {
            return Ok(vec![ack(from, digest, outcome)]);
        }
        let (round, tx) = (self.round().unwrap_or(0), m.tx.clone());
        let (record, event) = if range {
            (Record::Range { round, tx }, Event::RangeProof(m))
        } else {
            (Record::Share { round, tx }, Event::Share(m))
        };
        let actions = self.engine.handle(event);
        let origin = Origin {
            from,
            digest,
            record,
            evidence: None,
        };
        self.carry_out(actions, Some(origin), Mode::Live)
    }

    /// What reached the chain for the open round without this coordinator: submissions,
    /// decryption shares and range proofs their senders gave the validators directly
    /// (THREAT-MODEL A7). Each time the head moved, the round's blocks are read and each such
    /// transaction of the phase's kind goes into the engine as a record already on chain, so
    /// the round's valid set is the chain's (a commit must list every valid submission and pay
    /// every valid share on chain, and holders decrypt only that set).
    fn adopt_from_chain(&mut self) -> Result<Vec<Outbound>> {
        let head = self.ledger.height();
        if head == self.scanned {
            return Ok(Vec::new());
        }
        self.scanned = head;
        let Some(opened_at) = self
            .ledger
            .chain()
            .state()
            .jobs
            .get(&self.job)
            .and_then(|j| j.open.as_ref())
            .filter(|o| Some(o.round) == self.round())
            .map(|o| o.opened_at)
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for h in opened_at..=head {
            let Some(block) = self.ledger.chain().block(h)? else {
                continue;
            };
            for tx in block.txs {
                let Some(round) = self.round() else {
                    return Ok(out);
                };
                let (TxKind::Submit { job, round: r, .. }
                | TxKind::DecryptionShare { job, round: r, .. }
                | TxKind::RangeProof { job, round: r, .. }) = tx.tx.kind
                else {
                    continue;
                };
                if job != self.job || r != round {
                    continue;
                }
                let (seen, record) = match (&self.phase, tx.tx.kind.tag()) {
                    (Phase::Collecting(_), TxTag::Submit) => {
                        (&self.submitted, Record::Submit { round, tx })
                    }
                    (Phase::Decrypting(..), TxTag::DecryptionShare) => {
                        (&self.shared, Record::Share { round, tx })
                    }
                    (Phase::Blaming(..), TxTag::RangeProof) => {
                        (&self.ranged, Record::Range { round, tx })
                    }
                    _ => continue,
                };
                let tx = record.round_and_tx().1;
                if seen.get(&tx.sender()) == Some(&tx.hash()) || !self.fed.insert(tx.hash()) {
                    continue;
                }
                self.adopted.push((round, tx.sender(), tx.tx.kind.tag()));
                out.extend(self.replay(record)?);
            }
        }
        Ok(out)
    }

    /// Transactions the chain held that did not come through this coordinator, since the last
    /// call (round, sender, kind), for the process to log: a hospital that gave them only to
    /// the validators (its messages here were lost, or this coordinator was down).
    pub fn take_adopted(&mut self) -> Vec<(u32, Address, TxTag)> {
        std::mem::take(&mut self.adopted)
    }

    /// Feed a pending record back into the engine after a restart.
    fn replay(&mut self, record: Record) -> Result<Vec<Outbound>> {
        let tx = record.round_and_tx().1.clone();
        let digest = tx
            .tx
            .kind
            .payload()
            .ok_or_else(|| SimError::Service("pending record of another kind".into()))?;
        let store = self.ledger.chain().store();
        let payload = store.payload(&digest)?.ok_or_else(|| {
            SimError::Service(format!("payload {digest} of a pending record missing"))
        })?;
        let on_chain = store.tx_location(&tx.hash())?.is_some();
        let from = tx.sender();
        let event = match &record {
            Record::Submit { .. } => Event::Submission(SubmissionMsg { tx, payload }),
            Record::Share { .. } => Event::Share(ShareMsg { tx, payload }),
            Record::Range { .. } => Event::RangeProof(ShareMsg { tx, payload }),
        };
        let actions = self.engine.handle(event);
        let origin = Origin {
            from,
            digest,
            record,
            evidence: None,
        };
        self.carry_out(actions, Some(origin), Mode::Replay { on_chain })
    }

    /// Carry out the engine's actions for one event. `origin`: the message that caused them.
    fn carry_out(
        &mut self,
        actions: Vec<Action>,
        origin: Option<Origin>,
        mode: Mode,
    ) -> Result<Vec<Outbound>> {
        let mut out = Vec::new();
        let mut outcome: Option<Outcome> = None;
        let on_chain = matches!(mode, Mode::Replay { on_chain: true });
        for a in actions {
            match a {
                Action::Include { tx, payload } => {
                    if let Some(Origin { record, .. }) = &origin {
                        if matches!(mode, Mode::Live) {
                            // durable before acknowledged: record and payload in one write
                            let seq = self.next_seq;
                            let bytes = encode(record);
                            let payload = payload.as_deref().unwrap_or_default();
                            self.ledger
                                .chain()
                                .store()
                                .put_pending(seq, &bytes, payload)?;
                            self.next_seq += 1;
                            self.seqs.push(seq);
                        }
                        let (sender, h) = (tx.sender(), tx.hash());
                        match record {
                            Record::Submit { .. } => self.submitted.insert(sender, h),
                            Record::Share { .. } => self.shared.insert(sender, h),
                            Record::Range { .. } => self.ranged.insert(sender, h),
                        };
                        let n = self.nonces.entry(sender).or_default();
                        *n = (*n).max(tx.tx.nonce);
                    } else if let Some(p) = payload {
                        self.ledger.put_payload(&p)?;
                    }
                    if !on_chain {
                        self.txs.push(*tx);
                    }
                    outcome.get_or_insert(Outcome::Accepted);
                }
                Action::Penalize {
                    offender,
                    offence,
                    after_round,
                } => {
                    if let (Mode::Live, Some(o)) = (mode, &origin) {
                        if let Some(payload) = &o.evidence {
                            let seq = self.next_seq;
                            let bytes = encode(&o.record);
                            self.ledger
                                .chain()
                                .store()
                                .put_pending(seq, &bytes, payload)?;
                            self.next_seq += 1;
                            self.seqs.push(seq);
                        }
                    }
                    // also for a record already on chain (a transaction its sender gave the
                    // validators directly, or one replayed after a restart): the chain counts it
                    // valid until the penalty with its evidence is final too
                    if self.punished(&offender, &offence) {
                    } else if after_round {
                        // signed once the round is on chain (nonces go up in block order)
                        self.after_round.push((offender, offence));
                    } else {
                        let tx = self.ledger.sign(TxKind::Penalty {
                            job: self.job,
                            offender,
                            offence,
                        });
                        self.txs.push(tx);
                    }
                }
                Action::Reject { reason, .. } => {
                    outcome = Some(match reason {
                        RejectReason::Duplicate => Outcome::Duplicate,
                        RejectReason::Equivocation => Outcome::Rejected {
                            reason: Refusal::Equivocation,
                        },
                        RejectReason::Late { deadline, next } => Outcome::Rejected {
                            reason: Refusal::Late { deadline, next },
                        },
                        RejectReason::WrongRound { expected, got }
                            if expected.is_none_or(|open| got < open) =>
                        {
                            Outcome::Rejected {
                                reason: Refusal::Closed { round: got },
                            }
                        }
                        r => Outcome::Rejected {
                            reason: Refusal::Engine(r.to_string()),
                        },
                    });
                }
                Action::RequestShares { round, inputs, .. } => {
                    // what the holders decrypt is final on chain first: commit what was
                    // accepted, then hand them the valid submissions as their senders signed
                    let txs = std::mem::take(&mut self.txs);
                    self.commit_block(txs)?;
                    let request = ShareRequest {
                        job: self.job,
                        round,
                        submissions: inputs,
                    };
                    if let Phase::Collecting(o) = &self.phase {
                        self.phase = Phase::Decrypting(o.clone(), request.clone());
                    }
                    out.push(Outbound::All(CoordinatorMsg::ShareRequest(request)));
                }
                Action::Complete(result) => out.extend(self.complete(result)?),
                Action::Void { round } => out.extend(self.void(round)?),
                Action::Unpackable {
                    round, plaintext, ..
                } => out.extend(self.unpackable(round, plaintext)?),
                Action::Blame { round, culprits } => out.extend(self.blame(round, culprits)?),
            }
        }
        if let (Some(o), Some(outcome), Mode::Live) = (origin, outcome, mode) {
            // the acknowledgement goes before any round-level message it caused
            out.insert(0, ack(o.from, o.digest, outcome));
        }
        Ok(out)
    }

    /// Whether the chain already holds a penalty for this offence (a replayed one is not
    /// signed again).
    fn punished(&self, offender: &Address, offence: &Offence) -> bool {
        let round = match offence {
            Offence::Equivocation { first, .. } => match &first.tx.kind {
                TxKind::Submit { round, .. } | TxKind::DecryptionShare { round, .. } => *round,
                _ => return false,
            },
            Offence::InvalidPayload { round, .. } | Offence::InvalidShare { round, .. } => *round,
        };
        self.ledger
            .chain()
            .state()
            .jobs
            .get(&self.job)
            .is_some_and(|j| j.punished.contains(&(round, *offender, offence.kind())))
    }

    fn complete(&mut self, r: RoundResult) -> Result<Vec<Outbound>> {
        let theta = self.server.apply(&self.theta, &r.average);
        let next = self.ledger.put_payload(&encode_plain(&theta))?;
        // the accepted shares first, then the commit listing every valid share on chain (not
        // only the t the engine combined). Holders also give their shares to the validators
        // directly, so one may become final between the list and the commit: the commit is
        // then made again with the chain's list (each member has at most one share, so this
        // ends). A commit in one block with shares not yet final is not safe with independent
        // validators: their mempools may order the commit before a share it lists.
        let txs = std::mem::take(&mut self.txs);
        if !txs.is_empty() {
            self.commit_block(txs)?;
        }
        let mut share_providers: Vec<Address> = Vec::new();
        let mut committed = false;
        for attempt in 0..=self.committee.len() {
            // following validators: the shares final by now (no wait)
            self.ledger.catch_up()?;
            let now = crate::simulate::valid_share_providers(&self.ledger, self.job, r.round);
            if attempt > 0 && now == share_providers {
                // refused with the chain's own list: not a share race
                break;
            }
            share_providers = now;
            let commit = self.ledger.sign(TxKind::CommitRound {
                job: self.job,
                round: r.round,
                aggregate: r.aggregate,
                new_params_hash: next,
                accepted: r.accepted.clone(),
                share_providers: share_providers.clone(),
            });
            if self.commit_one(commit)? {
                committed = true;
                break;
            }
        }
        if !committed {
            // refused by the chain (logged by the process): the round stays open and is voided
            // at the end of its decryption window
            return Ok(Vec::new());
        }
        self.theta = theta;
        self.penalize_after_round()?;
        self.finish(r.round, true, r.accepted, share_providers, Some(next))
    }

    /// The aggregate does not unpack: `VoidUnpackable` on chain (unless it already is, after
    /// a restart), then every hospital is asked for the range proof of its ciphertext there.
    fn unpackable(&mut self, round: u32, plaintext: u32) -> Result<Vec<Outbound>> {
        let txs = std::mem::take(&mut self.txs);
        if !txs.is_empty() {
            self.commit_block(txs)?;
        }
        let job = self.job;
        let blaming = self
            .ledger
            .chain()
            .state()
            .jobs
            .get(&job)
            .and_then(|j| j.open.as_ref())
            .is_some_and(|o| o.round == round && o.blame.is_some());
        if !blaming {
            let void = self.ledger.sign(TxKind::VoidUnpackable {
                job,
                round,
                plaintext,
            });
            if !self.commit_one(void)? {
                // refused (logged by the process): the decryption window voids the round
                return Ok(Vec::new());
            }
        }
        let request = RangeRequest {
            job,
            round,
            plaintext,
        };
        if let Phase::Decrypting(o, _) = &self.phase {
            self.phase = Phase::Blaming(o.clone(), request.clone());
        }
        Ok(vec![Outbound::All(CoordinatorMsg::RangeRequest(request))])
    }

    /// Whether the chain's blame step of `round` has passed its window.
    fn blame_due(&self, round: u32) -> bool {
        let state = self.ledger.chain().state();
        state
            .jobs
            .get(&self.job)
            .and_then(|j| j.open.as_ref())
            .filter(|o| o.round == round)
            .and_then(|o| o.blame.as_ref())
            .is_some_and(|b| {
                self.ledger.height() + 1
                    > b.since.saturating_add(fedchain_ledger::state::BLAME_WINDOW)
            })
    }

    /// The blame step is over: `Blame` on chain (the culprits penalised and excluded), and
    /// the round ends void.
    fn blame(&mut self, round: u32, culprits: Vec<Address>) -> Result<Vec<Outbound>> {
        let txs = std::mem::take(&mut self.txs);
        if !txs.is_empty() {
            self.commit_block(txs)?;
        }
        let blame = self.ledger.sign(TxKind::Blame {
            job: self.job,
            round,
        });
        if !self.commit_one(blame)? {
            // refused (logged and counted by the process as dropped): tried again at a tick
            let _ = culprits;
            return Ok(Vec::new());
        }
        self.penalize_after_round()?;
        self.finish(round, false, Vec::new(), Vec::new(), None)
    }

    fn void(&mut self, round: u32) -> Result<Vec<Outbound>> {
        let txs = std::mem::take(&mut self.txs);
        if !txs.is_empty() {
            self.commit_block(txs)?;
        }
        let job = self.job;
        let void = self.ledger.sign(TxKind::VoidRound { job, round });
        if !self.commit_one(void)? {
            // not voidable yet (logged by the process): tried again at the next tick
            return Ok(Vec::new());
        }
        self.penalize_after_round()?;
        self.finish(round, false, Vec::new(), Vec::new(), None)
    }

    /// Commit a block holding `tx` alone; whether the chain took it.
    fn commit_one(&mut self, tx: SignedTx) -> Result<bool> {
        let h = tx.hash();
        let before = self.dropped.len();
        self.commit_block(vec![tx])?;
        Ok(!self.dropped[before..].iter().any(|d| d.tx == h))
    }

    /// The penalties that waited for the round, in a block of their own.
    fn penalize_after_round(&mut self) -> Result<()> {
        let mut waiting = std::mem::take(&mut self.after_round);
        waiting.retain(|(offender, offence)| !self.punished(offender, offence));
        let txs: Vec<SignedTx> = waiting
            .into_iter()
            .map(|(offender, offence)| {
                self.ledger.sign(TxKind::Penalty {
                    job: self.job,
                    offender,
                    offence,
                })
            })
            .collect();
        if !txs.is_empty() {
            self.commit_block(txs)?;
        }
        Ok(())
    }

    /// What the chain left out of blocks since the last call (the process logs and counts it).
    pub fn take_dropped(&mut self) -> Vec<Dropped> {
        std::mem::take(&mut self.dropped)
    }

    fn finish(
        &mut self,
        round: u32,
        committed: bool,
        accepted: Vec<Address>,
        share_providers: Vec<Address>,
        new_params_hash: Option<Hash>,
    ) -> Result<Vec<Outbound>> {
        // the round is on chain: its pending records are done with (a crash before this
        // removal leaves stale records, which `open` discards)
        let seqs = std::mem::take(&mut self.seqs);
        self.ledger.chain().store().remove_pending(&seqs)?;
        self.phase = Phase::Idle;
        let missing = self
            .committee
            .iter()
            .filter(|a| !accepted.contains(a))
            .copied()
            .collect();
        let summary = RoundSummary {
            job: self.job,
            round,
            committed,
            accepted,
            missing,
            share_providers,
            new_params_hash,
            height: self.ledger.height(),
        };
        self.results.push(summary.clone());
        Ok(vec![Outbound::All(CoordinatorMsg::RoundResult(summary))])
    }

    fn commit_block(&mut self, txs: Vec<SignedTx>) -> Result<()> {
        #[cfg(feature = "failpoints")]
        {
            let me = self.dir.display().to_string();
            if fail::eval(FAILPOINT_BEFORE_BLOCK, |arg| {
                arg.as_deref() == Some(me.as_str())
            }) == Some(true)
            {
                return Err(SimError::Failpoint(FAILPOINT_BEFORE_BLOCK));
            }
        }
        let dropped = self.ledger.block(txs)?;
        self.dropped.extend(dropped);
        Ok(())
    }
}

fn ack(to: Address, digest: Hash, outcome: Outcome) -> Outbound {
    Outbound::To(to, CoordinatorMsg::Ack(Ack { digest, outcome }))
}

fn is_share_request(o: &Outbound) -> bool {
    matches!(
        o,
        Outbound::All(CoordinatorMsg::ShareRequest(_))
            | Outbound::To(_, CoordinatorMsg::ShareRequest(_))
    )
}

/// The payload digest a message's transaction names (or the payload's own hash).
fn payload_digest(tx: &SignedTx, payload: &[u8]) -> Hash {
    tx.tx
        .kind
        .payload()
        .unwrap_or_else(|| Hash::sha256(payload))
}
