//! The application simplex orders: one actor per validator that owns its replica.
//!
//! Simplex agrees on 32-byte payloads; ours is the header hash of a fedchain block. The actor:
//! - **propose**: builds a block on the certified parent the engine names (final or not)
//!   from its mempool, with the chain rules applied on the parent's state
//!   ([`fedchain_ledger::propose_on`]) and every claim re-verified by the cryptographic
//!   verifier (a transaction whose claim fails is dropped from the mempool);
//! - **broadcast** (relay): sends the block with the payloads it references to every
//!   validator, so a validator holds every payload before it votes;
//! - **verify**: re-executes a received block on its parent's state (the chain rules with
//!   its payloads, the claims with the verifier, the proposer is the view's leader, the
//!   parent is the one the engine certified) and answers only then; a block that has not
//!   arrived parks the request until it does;
//! - **certify**: yes only for a block it verified (or can verify now);
//! - **report**: a finalization commits the block and its unfinalized ancestors to the
//!   replica (RocksDB or memory), the finalized one with its certificate; conflicting votes
//!   of a validator are kept as evidence (`Status::faults`);
//! - **catch-up**: a finalization of a block it never saw, or a restart, asks peers for the
//!   finalized blocks after its head; a batch is applied only up to a block whose
//!   finalization verifies.
//!
//! Local clients submit transactions with their payloads ([`Mailbox::submit`]); they are
//! checked against the head state, kept in the mempool and gossiped to every validator.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use commonware_actor::Feedback;
use commonware_consensus::simplex::types::{Activity, Attributable as _, Context};
use commonware_consensus::simplex::Plan;
use commonware_consensus::types::Round;
use commonware_consensus::{Automaton, CertifiableAutomaton, Relay, Reporter, Viewable as _};
use commonware_cryptography::bls12381::PublicKey;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Spawner, Supervisor};
use commonware_utils::channel::fallible::{FallibleExt as _, OneshotExt as _};
use commonware_utils::channel::{mpsc, oneshot};
use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::apply_block;
use fedchain_ledger::{
    claims_of_block, claims_of_txs, propose_on, Block, Certificate, Certs, Chain, Hash, Head,
    RoundVerifier, SignedTx, State, Store,
};
use tracing::{debug, info, warn};

use crate::scheme::{self, Digest, Scheme};
use crate::wire::{Gossip, Payload, SYNC_BATCH};

/// What the engine hands the application with a request.
pub type Ctx = Context<Digest, PublicKey>;

/// Transactions at most in one block.
pub const MAX_BLOCK_TXS: usize = 1024;
/// Transactions at most in the mempool; more are refused until blocks drain it.
pub const MAX_MEMPOOL: usize = 16_384;
/// How far ahead of this validator's clock a proposal's timestamp may be.
pub const MAX_CLOCK_DRIFT: Duration = Duration::from_secs(30);
/// At most one catch-up request per this interval.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// A snapshot of a validator for its operator and tests.
#[derive(Clone, Debug)]
pub struct Status {
    pub head: Head,
    pub state_root: Hash,
    pub mempool: usize,
    /// Blocks this validator verified and holds, not final yet.
    pub pending: usize,
    /// Evidence the engine reported: conflicting notarizes, conflicting finalizes, a
    /// nullify and a finalize for one view, each naming the validator.
    pub faults: Vec<String>,
    /// Finalizations this validator committed.
    pub finalized: u64,
}

enum Message {
    Propose {
        context: Ctx,
        response: oneshot::Sender<Digest>,
    },
    Verify {
        context: Ctx,
        payload: Digest,
        response: oneshot::Sender<bool>,
    },
    Certify {
        payload: Digest,
        response: oneshot::Sender<bool>,
    },
    Broadcast {
        payload: Digest,
    },
    Report(Box<Activity<Scheme, Digest>>),
    Submit {
        tx: Box<SignedTx>,
        payloads: Vec<Vec<u8>>,
        response: oneshot::Sender<Result<Hash, String>>,
    },
    SubmitAll {
        txs: Vec<(SignedTx, Vec<Vec<u8>>)>,
        response: oneshot::Sender<Vec<Result<Hash, String>>>,
    },
    Status {
        response: oneshot::Sender<Status>,
    },
    Blocks {
        from: u64,
        max: usize,
        response: oneshot::Sender<FinalBlocks>,
    },
}

/// Finalized blocks in height order, each with the payloads its transactions reference; the
/// last one carries its finalization (the others are final as its ancestors).
pub type FinalBlocks = Vec<(Block, Vec<Payload>)>;

/// The engine's (and a local client's) handle on the application: it is the engine's
/// automaton, relay and reporter.
#[derive(Clone, Debug)]
pub struct Mailbox {
    sender: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Propose { .. } => "Propose",
            Message::Verify { .. } => "Verify",
            Message::Certify { .. } => "Certify",
            Message::Broadcast { .. } => "Broadcast",
            Message::Report(_) => "Report",
            Message::Submit { .. } => "Submit",
            Message::SubmitAll { .. } => "SubmitAll",
            Message::Status { .. } => "Status",
            Message::Blocks { .. } => "Blocks",
        })
    }
}

impl Mailbox {
    /// Submit a transaction with the payloads it references: `Ok(tx hash)` once it applies
    /// to the head state and is in the mempool (and gossiped); the chain's refusal otherwise.
    pub async fn submit(&self, tx: SignedTx, payloads: Vec<Vec<u8>>) -> Result<Hash, String> {
        let (response, rx) = oneshot::channel();
        self.sender.send_lossy(Message::Submit {
            tx: Box::new(tx),
            payloads,
            response,
        });
        rx.await.map_err(|_| "the validator stopped".to_string())?
    }

    /// [`Self::submit`] for many transactions at once, admitted in order before a held
    /// proposal goes out, so they can share a block; one answer per transaction.
    pub async fn submit_all(
        &self,
        txs: Vec<(SignedTx, Vec<Vec<u8>>)>,
    ) -> Vec<Result<Hash, String>> {
        let n = txs.len();
        let (response, rx) = oneshot::channel();
        self.sender.send_lossy(Message::SubmitAll { txs, response });
        rx.await
            .unwrap_or_else(|_| vec![Err("the validator stopped".to_string()); n])
    }

    pub async fn status(&self) -> Option<Status> {
        let (response, rx) = oneshot::channel();
        self.sender.send_lossy(Message::Status { response });
        rx.await.ok()
    }

    /// At most `max` (and at most [`SYNC_BATCH`]) finalized blocks from height `from` on,
    /// ending on a certified block (empty when there is none above `from - 1`); what a member
    /// following the chain fetches. `None` once the validator stopped.
    pub async fn blocks(&self, from: u64, max: usize) -> Option<FinalBlocks> {
        let (response, rx) = oneshot::channel();
        self.sender.send_lossy(Message::Blocks {
            from,
            max,
            response,
        });
        rx.await.ok()
    }
}

impl Automaton for Mailbox {
    type Context = Ctx;
    type Digest = Digest;

    async fn propose(&mut self, context: Ctx) -> oneshot::Receiver<Digest> {
        let (response, rx) = oneshot::channel();
        self.sender
            .send_lossy(Message::Propose { context, response });
        rx
    }

    async fn verify(&mut self, context: Ctx, payload: Digest) -> oneshot::Receiver<bool> {
        let (response, rx) = oneshot::channel();
        self.sender.send_lossy(Message::Verify {
            context,
            payload,
            response,
        });
        rx
    }
}

impl CertifiableAutomaton for Mailbox {
    async fn certify(&mut self, _round: Round, payload: Digest) -> oneshot::Receiver<bool> {
        let (response, rx) = oneshot::channel();
        self.sender
            .send_lossy(Message::Certify { payload, response });
        rx
    }
}

impl Relay for Mailbox {
    type Digest = Digest;
    type PublicKey = PublicKey;
    type Plan = Plan<PublicKey>;

    fn broadcast(&mut self, payload: Digest, plan: Plan<PublicKey>) -> Feedback {
        // a held candidate (Prepare) is never produced: this application does not pipeline
        if matches!(plan, Plan::Prepare { .. }) {
            return Feedback::Ok;
        }
        if self.sender.send_lossy(Message::Broadcast { payload }) {
            Feedback::Ok
        } else {
            Feedback::Closed
        }
    }
}

impl Reporter for Mailbox {
    type Activity = Activity<Scheme, Digest>;

    fn report(&mut self, activity: Self::Activity) -> Feedback {
        if self.sender.send_lossy(Message::Report(Box::new(activity))) {
            Feedback::Ok
        } else {
            Feedback::Closed
        }
    }
}

/// A verified (or own) block that is not final yet, with the state it produces.
struct Pending {
    block: Block,
    state: State,
}

enum Waiter {
    Verify(Box<Ctx>, oneshot::Sender<bool>),
    Certify(oneshot::Sender<bool>),
}

/// Configuration of one validator's application.
pub struct Config<S: Store> {
    /// The replica, opened with a [`crate::scheme::SimplexFinality`].
    pub chain: Chain<S>,
    /// This validator's own key (proposer of its blocks).
    pub key: SigningKey,
    /// The cryptographic re-verification of aggregates, commits, penalties and voids.
    pub verifier: Option<Arc<dyn RoundVerifier + Send + Sync>>,
    /// Least time between an empty block this validator proposes and its parent, by their
    /// timestamps (local policy): an idle chain grows by about one block per interval instead
    /// of one per consensus round trip. A block with transactions is proposed at once (and a
    /// held empty proposal goes out as soon as a transaction arrives). Zero never waits.
    pub block_interval: Duration,
}

impl<S: Store> std::fmt::Debug for Config<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("head", &self.chain.head())
            .field("key", &self.key)
            .finish()
    }
}

/// The application actor (see the module doc).
pub struct Application<E, S: Store, Tx, Rx> {
    context: E,
    chain: Chain<S>,
    key: SigningKey,
    verifier: Option<Arc<dyn RoundVerifier + Send + Sync>>,
    block_interval: Duration,
    /// The engine's latest request to propose, held until the parent is old enough.
    deferred: Option<(Ctx, oneshot::Sender<Digest>, SystemTime)>,
    mailbox: mpsc::UnboundedReceiver<Message>,
    sender: Tx,
    receiver: Rx,
    tree: HashMap<Hash, Pending>,
    received: HashMap<Hash, Block>,
    waiters: HashMap<Hash, Vec<Waiter>>,
    mempool: Vec<SignedTx>,
    in_mempool: HashSet<Hash>,
    /// The head state after the mempool's transactions; `None` once the head or the mempool
    /// changed otherwise than by an admission.
    pending: Option<State>,
    faults: Vec<String>,
    finalized: u64,
    last_sync: Option<SystemTime>,
}

impl<E, S: Store, Tx, Rx> std::fmt::Debug for Application<E, S, Tx, Rx> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("head", &self.chain.head())
            .field("pending", &self.tree.len())
            .field("mempool", &self.mempool.len())
            .finish()
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<E, S, Tx, Rx> Application<E, S, Tx, Rx>
where
    E: Clock + Spawner + Supervisor,
    S: Store + 'static,
    Tx: Sender<PublicKey = PublicKey>,
    Rx: Receiver<PublicKey = PublicKey>,
{
    pub fn new(context: E, cfg: Config<S>, gossip: (Tx, Rx)) -> (Self, Mailbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                context,
                chain: cfg.chain,
                key: cfg.key,
                verifier: cfg.verifier,
                block_interval: cfg.block_interval,
                deferred: None,
                mailbox: rx,
                sender: gossip.0,
                receiver: gossip.1,
                tree: HashMap::new(),
                received: HashMap::new(),
                waiters: HashMap::new(),
                mempool: Vec::new(),
                in_mempool: HashSet::new(),
                pending: None,
                faults: Vec::new(),
                finalized: 0,
                last_sync: None,
            },
            Mailbox { sender: tx },
        )
    }

    /// Run the actor until the mailbox closes or the runtime stops.
    pub fn start(self) -> commonware_runtime::Handle<()>
    where
        E: Send + 'static,
    {
        let context = self.context.child("actor");
        context.spawn(move |_| self.run())
    }

    async fn run(mut self) {
        // catch up with whatever the others finalized while this one was away
        self.request_sync();
        loop {
            let due = match &self.deferred {
                Some((_, _, at)) => futures::future::Either::Left(self.context.sleep_until(*at)),
                None => futures::future::Either::Right(futures::future::pending::<()>()),
            };
            commonware_macros::select! {
                _ = due => {
                    if let Some((context, response, _)) = self.deferred.take() {
                        if let Some(d) = self.propose(&context) {
                            response.send_lossy(d);
                        }
                    }
                },
                m = self.mailbox.recv() => {
                    let Some(m) = m else { break };
                    self.on_message(m);
                },
                g = self.receiver.recv() => {
                    match g {
                        Ok((from, bytes)) => self.on_gossip(from, bytes.as_ref()),
                        Err(e) => {
                            debug!(error = %e, "gossip receiver closed");
                            break;
                        }
                    }
                },
            }
        }
    }

    fn parent_state(&self, parent: &Hash) -> Option<State> {
        if *parent == self.chain.head().hash {
            return Some(self.chain.state().clone());
        }
        self.tree.get(parent).map(|p| p.state.clone())
    }

    fn on_message(&mut self, m: Message) {
        match m {
            Message::Propose { context, response } => {
                // a newer request replaces a held one (the engine moved to another view)
                // (never longer than one interval: a parent stamped ahead of this clock does
                // not hold the proposal until then)
                let parent = scheme::hash(&context.parent.1);
                let now = self.context.current();
                let due = self.parent_state(&parent).map(|s| {
                    (UNIX_EPOCH + Duration::from_millis(s.timestamp_ms) + self.block_interval)
                        .min(now + self.block_interval)
                });
                match due {
                    // only an empty block waits: transactions are proposed at once
                    Some(at) if at > now && self.candidates(&parent).is_empty() => {
                        self.deferred = Some((context, response, at));
                    }
                    _ => {
                        self.deferred = None;
                        if let Some(d) = self.propose(&context) {
                            response.send_lossy(d);
                        }
                    }
                }
            }
            Message::Verify {
                context,
                payload,
                response,
            } => {
                let h = scheme::hash(&payload);
                if let Some(p) = self.tree.get(&h) {
                    let ok = self.fits(&context, &p.block);
                    response.send_lossy(ok);
                } else if let Some(b) = self.received.remove(&h) {
                    let ok = self.fits(&context, &b) && self.verify_block(b);
                    response.send_lossy(ok);
                } else {
                    self.waiters
                        .entry(h)
                        .or_default()
                        .push(Waiter::Verify(Box::new(context), response));
                }
            }
            Message::Certify { payload, response } => {
                let h = scheme::hash(&payload);
                if self.tree.contains_key(&h) || self.chain_holds(&h) {
                    response.send_lossy(true);
                } else if let Some(b) = self.received.remove(&h) {
                    response.send_lossy(self.verify_block(b));
                } else {
                    self.waiters
                        .entry(h)
                        .or_default()
                        .push(Waiter::Certify(response));
                }
            }
            Message::Broadcast { payload } => {
                let h = scheme::hash(&payload);
                if let Some(p) = self.tree.get(&h) {
                    let g = Gossip::Block {
                        block: p.block.clone(),
                        payloads: self.payloads_of(&p.block),
                    };
                    self.send(Recipients::All, &g);
                }
            }
            Message::Report(a) => self.on_activity(*a),
            Message::Submit {
                tx,
                payloads,
                response,
            } => {
                let r = self.admit(*tx, payloads, true);
                response.send_lossy(r);
                self.propose_held();
            }
            Message::SubmitAll { txs, response } => {
                let r = txs
                    .into_iter()
                    .map(|(tx, payloads)| self.admit(tx, payloads, true))
                    .collect();
                response.send_lossy(r);
                self.propose_held();
            }
            Message::Status { response } => {
                let head = self.chain.head();
                response.send_lossy(Status {
                    head,
                    state_root: self.chain.state().root(),
                    mempool: self.mempool.len(),
                    pending: self.tree.len(),
                    faults: self.faults.clone(),
                    finalized: self.finalized,
                });
            }
            Message::Blocks {
                from,
                max,
                response,
            } => {
                response.send_lossy(self.final_batch(from, max));
            }
        }
    }

    /// Up to `max` (at most [`SYNC_BATCH`]) stored blocks from `from` on with their payloads,
    /// cut after the last certified one (a receiver can only check a batch that ends on a
    /// finalization).
    fn final_batch(&self, from: u64, max: usize) -> FinalBlocks {
        let mut blocks = Vec::new();
        let head = self.chain.head().height;
        let mut h = from.max(1);
        let max = max.min(SYNC_BATCH);
        while h <= head && blocks.len() < max {
            match self.chain.block(h) {
                Ok(Some(b)) => {
                    let p = self.payloads_of(&b);
                    blocks.push((b, p));
                }
                _ => break,
            }
            h += 1;
        }
        while blocks.last().is_some_and(|(b, _)| b.cert.is_none()) {
            blocks.pop();
        }
        blocks
    }

    /// The chain already holds this block as final (a late request for it).
    fn chain_holds(&self, h: &Hash) -> bool {
        *h == self.chain.head().hash
    }

    /// A block fits the engine's context: built on the certified parent, by the view's
    /// leader, with a timestamp not ahead of this validator's clock by more than the drift.
    fn fits(&self, context: &Ctx, block: &Block) -> bool {
        let parent = scheme::hash(&context.parent.1);
        if block.header.prev_hash != parent {
            warn!(
                height = block.header.height,
                "proposal on another parent than the certified one"
            );
            return false;
        }
        let leader = scheme::public_key(&block.header.proposer);
        if leader.as_ref().ok() != Some(&context.leader) {
            warn!(
                height = block.header.height,
                "proposal signed by a validator that does not lead the view"
            );
            return false;
        }
        // not ahead of this clock (or of the parent's time, when the genesis is later than
        // this clock, as on a simulated one) by more than the drift
        let now = ms(self.context.current())
            .max(self.parent_state(&parent).map_or(0, |s| s.timestamp_ms));
        if block.header.timestamp_ms > now.saturating_add(MAX_CLOCK_DRIFT.as_millis() as u64) {
            warn!(
                height = block.header.height,
                "proposal timestamp ahead of this clock"
            );
            return false;
        }
        true
    }

    /// Claims of `block` on `before` that the verifier refutes, by transaction.
    fn refuted(&self, before: &State, block: &Block) -> Vec<(Hash, String)> {
        let Some(v) = self.verifier.as_deref() else {
            return Vec::new();
        };
        let mut claims = Vec::new();
        claims_of_block(before, block, &mut claims);
        let store = self.chain.store();
        let get = |d: &Hash| store.payload(d).ok().flatten();
        claims
            .iter()
            .filter_map(|c| c.verify(v, &get).err().map(|e| (c.tx(), e)))
            .collect()
    }

    /// Re-execute a block on its parent's state; on success keep it as pending.
    fn verify_block(&mut self, block: Block) -> bool {
        let h = block.header.hash();
        let Some(parent) = self.parent_state(&block.header.prev_hash) else {
            warn!(
                height = block.header.height,
                "proposal on a parent this validator does not hold"
            );
            return false;
        };
        let store = self.chain.store();
        let next = match apply_block(
            &parent,
            &block.header.prev_hash,
            &block,
            &|d: &Hash| store.has_payload(d),
            Certs::Unchecked,
        ) {
            Ok(s) => s,
            Err(e) => {
                warn!(height = block.header.height, error = %e, "proposal breaks the chain rules");
                return false;
            }
        };
        let refuted = self.refuted(&parent, &block);
        if let Some((tx, reason)) = refuted.first() {
            warn!(height = block.header.height, tx = %tx, %reason, "proposal holds a claim the verifier refutes");
            return false;
        }
        self.tree.insert(h, Pending { block, state: next });
        true
    }

    /// A held (empty) proposal goes out at once when transactions arrived for it.
    fn propose_held(&mut self) {
        let ready = self
            .deferred
            .as_ref()
            .is_some_and(|(c, _, _)| !self.candidates(&scheme::hash(&c.parent.1)).is_empty());
        if ready {
            if let Some((context, response, _)) = self.deferred.take() {
                if let Some(d) = self.propose(&context) {
                    response.send_lossy(d);
                }
            }
        }
    }

    /// The mempool's transactions for a block on `parent`: those not already in its
    /// unfinalized ancestors, at most [`MAX_BLOCK_TXS`].
    fn candidates(&self, parent: &Hash) -> Vec<SignedTx> {
        let mut included = HashSet::new();
        let mut at = *parent;
        while let Some(p) = self.tree.get(&at) {
            included.extend(p.block.txs.iter().map(SignedTx::hash));
            at = p.block.header.prev_hash;
        }
        self.mempool
            .iter()
            .filter(|t| !included.contains(&t.hash()))
            .take(MAX_BLOCK_TXS)
            .cloned()
            .collect()
    }

    fn propose(&mut self, context: &Ctx) -> Option<Digest> {
        let parent = scheme::hash(&context.parent.1);
        let state = self.parent_state(&parent)?;
        let now = ms(self.context.current());
        let mut candidates = self.candidates(&parent);
        // a claim the verifier refutes takes its transaction out, then the block is rebuilt
        let proposal = loop {
            let store = self.chain.store();
            let p = propose_on(
                &state,
                parent,
                candidates.clone(),
                now,
                &self.key,
                &|d: &Hash| store.has_payload(d),
            );
            let refuted = self.refuted(&state, &p.block);
            if refuted.is_empty() {
                break p;
            }
            let bad: HashSet<Hash> = refuted.into_iter().map(|(t, _)| t).collect();
            self.drop_from_mempool(&bad);
            candidates.retain(|t| !bad.contains(&t.hash()));
        };
        let h = proposal.block.header.hash();
        debug!(
            height = proposal.block.header.height,
            txs = proposal.block.txs.len(),
            "proposing"
        );
        self.tree.insert(
            h,
            Pending {
                block: proposal.block,
                state: proposal.state,
            },
        );
        Some(scheme::digest(&h))
    }

    fn drop_from_mempool(&mut self, gone: &HashSet<Hash>) {
        self.pending = None;
        self.mempool.retain(|t| !gone.contains(&t.hash()));
        for g in gone {
            self.in_mempool.remove(g);
        }
    }

    /// Every payload the block's transactions reference (submissions, shares, proofs and the
    /// parameters rounds start from and end with), as this validator holds them.
    fn payloads_of(&self, block: &Block) -> Vec<Payload> {
        block
            .txs
            .iter()
            .flat_map(|t| t.tx.kind.referenced())
            .filter_map(|d| self.chain.store().payload(&d).ok().flatten())
            .map(Payload::from)
            .collect()
    }

    fn store_payloads(&self, payloads: &[impl AsRef<[u8]>]) {
        for p in payloads {
            if let Err(e) = self.chain.put_payload(p.as_ref()) {
                warn!(error = %e, "payload not stored");
            }
        }
    }

    /// A transaction into the mempool: it must apply to the head state, or else after the
    /// mempool's pending transactions (a sender's next nonce, a join of the job a pending
    /// transaction creates); `gossip` sends it on to the other validators. Only the payloads
    /// it references are kept, and only once it is admitted.
    fn admit(
        &mut self,
        tx: SignedTx,
        payloads: Vec<Vec<u8>>,
        gossip: bool,
    ) -> Result<Hash, String> {
        let h = tx.hash();
        if self.in_mempool.contains(&h) {
            return Ok(h);
        }
        if self.mempool.len() >= MAX_MEMPOOL {
            return Err("the mempool is full".into());
        }
        if !tx.verify() {
            return Err(fedchain_ledger::TxError::BadSignature.to_string());
        }
        let referenced = tx.tx.kind.referenced();
        let given: HashMap<Hash, Vec<u8>> = payloads
            .into_iter()
            .map(|p| (Hash::sha256(&p), p))
            .filter(|(d, _)| referenced.contains(d))
            .collect();
        let height = self.chain.state().height + 1;
        // after the pending transactions (the usual case: it extends the pending state); if
        // it conflicts with them, it must at least apply at the head, the pending state then
        // left as it was
        let before = self.pending_state();
        let mut after = before.clone();
        let store = self.chain.store();
        let has = |d: &Hash| given.contains_key(d) || store.has_payload(d);
        let (before, after) = if after.apply_tx(&tx, height, &has).is_ok() {
            (before, Some(after))
        } else {
            let at_head = self.chain.state().clone();
            let mut next = at_head.clone();
            next.apply_tx(&tx, height, &has)
                .map_err(|e| e.to_string())?;
            (at_head, None)
        };
        // what only the cryptography can check (a commit's product, shares and step, a
        // penalty's evidence, a void, a range proof), before the transaction is taken: the
        // sender learns at once, instead of seeing it left out of every block
        if let Some(v) = self.verifier.as_deref() {
            let mut claims = Vec::new();
            claims_of_txs(&before, height, std::slice::from_ref(&tx), &mut claims);
            let get = |d: &Hash| {
                given
                    .get(d)
                    .cloned()
                    .or_else(|| store.payload(d).ok().flatten())
            };
            for c in &claims {
                c.verify(v, &get)
                    .map_err(|e| format!("the verifier refutes its claim: {e}"))?;
            }
        }
        if after.is_some() {
            self.pending = after;
        }
        let payloads: Vec<Vec<u8>> = given.into_values().collect();
        self.store_payloads(&payloads);
        if gossip {
            let g = Gossip::Tx {
                tx: tx.clone(),
                payloads: payloads.into_iter().map(Payload::from).collect(),
            };
            self.send(Recipients::All, &g);
        }
        self.in_mempool.insert(h);
        self.mempool.push(tx);
        Ok(h)
    }

    /// The head state with the mempool's transactions applied in order (those that apply),
    /// computed once per head.
    fn pending_state(&mut self) -> State {
        if let Some(s) = &self.pending {
            return s.clone();
        }
        let store = self.chain.store();
        let has = |d: &Hash| store.has_payload(d);
        let mut state = self.chain.state().clone();
        let height = state.height + 1;
        for t in &self.mempool {
            let mut next = state.clone();
            if next.apply_tx(t, height, &has).is_ok() {
                state = next;
            }
        }
        self.pending = Some(state.clone());
        state
    }

    fn send(&mut self, to: Recipients<PublicKey>, g: &Gossip) {
        let bytes = g.to_bytes();
        if bytes.len() > crate::wire::MAX_MESSAGE as usize {
            warn!(
                bytes = bytes.len(),
                max = crate::wire::MAX_MESSAGE,
                "gossip larger than a validator message: not sent"
            );
            return;
        }
        self.sender.send(to, bytes, false);
    }

    fn on_gossip(&mut self, from: PublicKey, bytes: &[u8]) {
        let g = match Gossip::from_bytes(bytes) {
            Ok(g) => g,
            Err(e) => {
                warn!(error = %e, "undecodable gossip from a validator");
                return;
            }
        };
        match g {
            Gossip::Block { block, payloads } => {
                self.store_payloads(&payloads);
                let h = block.header.hash();
                if self.tree.contains_key(&h) {
                    return;
                }
                match self.waiters.remove(&h) {
                    Some(waiters) => {
                        let mut ok = None;
                        for w in waiters {
                            match w {
                                Waiter::Verify(ctx, r) => {
                                    let fits = self.fits(&ctx, &block);
                                    let v = *ok.get_or_insert_with(|| {
                                        fits && self.verify_block(block.clone())
                                    });
                                    r.send_lossy(fits && v);
                                }
                                Waiter::Certify(r) => {
                                    let v =
                                        *ok.get_or_insert_with(|| self.verify_block(block.clone()));
                                    r.send_lossy(v);
                                }
                            }
                        }
                    }
                    None => {
                        // bounded: blocks of views long past are pruned at each finalization
                        self.received.insert(h, block);
                    }
                }
            }
            Gossip::Tx { tx, payloads } => {
                let payloads = payloads.into_iter().map(|p| p.into_vec()).collect();
                if let Err(e) = self.admit(tx, payloads, false) {
                    debug!(error = %e, "gossiped transaction refused");
                }
                self.propose_held();
            }
            Gossip::SyncRequest { from: height } => {
                let blocks = self.final_batch(height, SYNC_BATCH);
                if !blocks.is_empty() {
                    self.send(Recipients::One(from), &Gossip::SyncResponse { blocks });
                }
            }
            Gossip::SyncResponse { blocks } => self.on_sync(blocks),
        }
    }

    /// Apply a catch-up batch: in order from the head, up to its last block whose
    /// finalization verifies (the ones before are final as its ancestors).
    fn on_sync(&mut self, blocks: Vec<(Block, Vec<Payload>)>) {
        let head = self.chain.head();
        let mut state = self.chain.state().clone();
        let mut prev = head.hash;
        let mut run: Vec<(Block, State)> = Vec::new();
        for (b, payloads) in blocks {
            if b.header.height <= head.height && run.is_empty() {
                continue;
            }
            self.store_payloads(&payloads);
            let store = self.chain.store();
            let finality = scheme::SimplexFinality::new();
            let next = match apply_block(
                &state,
                &prev,
                &b,
                &|d: &Hash| store.has_payload(d),
                Certs::IfPresent(Some(&finality)),
            ) {
                Ok(s) => s,
                Err(e) => {
                    warn!(height = b.header.height, error = %e, "catch-up block refused");
                    break;
                }
            };
            prev = b.header.hash();
            state = next.clone();
            run.push((b, next));
        }
        while run.last().is_some_and(|(b, _)| b.cert.is_none()) {
            run.pop();
        }
        if run.is_empty() {
            return;
        }
        info!(
            from = head.height + 1,
            to = head.height + run.len() as u64,
            "caught up from a peer"
        );
        for (b, s) in run {
            if let Err(e) = self.chain.commit_executed(&b, s) {
                warn!(height = b.header.height, error = %e, "catch-up commit failed");
                return;
            }
            self.after_commit(&b);
        }
        self.prune();
        // more may follow
        self.last_sync = None;
        self.request_sync();
    }

    fn request_sync(&mut self) {
        let now = self.context.current();
        if let Some(t) = self.last_sync {
            if now.duration_since(t).unwrap_or_default() < SYNC_INTERVAL {
                return;
            }
        }
        self.last_sync = Some(now);
        let from = self.chain.head().height + 1;
        self.send(Recipients::All, &Gossip::SyncRequest { from });
    }

    fn on_activity(&mut self, a: Activity<Scheme, Digest>) {
        match a {
            Activity::Finalization(f) => self.on_finalization(f),
            Activity::ConflictingNotarize(c) => self.fault(
                format!("conflicting notarizes at view {}", c.view()),
                c.signer(),
            ),
            Activity::ConflictingFinalize(c) => self.fault(
                format!("conflicting finalizes at view {}", c.view()),
                c.signer(),
            ),
            Activity::NullifyFinalize(c) => self.fault(
                format!("nullify and finalize at view {}", c.view()),
                c.signer(),
            ),
            _ => {}
        }
    }

    fn fault(&mut self, what: String, signer: commonware_utils::Participant) {
        warn!(%what, signer = %signer, "validator fault evidence");
        self.faults.push(format!("{what} by validator {signer}"));
    }

    fn on_finalization(&mut self, f: scheme::Final) {
        let target = scheme::hash(&f.proposal.payload);
        let head = self.chain.head();
        if target == head.hash {
            return;
        }
        // a block the validator never verified: verify it now if it arrived
        if !self.tree.contains_key(&target) {
            if let Some(b) = self.received.remove(&target) {
                self.verify_block(b);
            }
        }
        // the path from the head to the finalized block
        let mut path = Vec::new();
        let mut at = target;
        while at != head.hash {
            match self.tree.get(&at) {
                Some(p) => {
                    path.push(at);
                    at = p.block.header.prev_hash;
                }
                None => {
                    // below the head (already final) or never seen: catch up from peers
                    if self
                        .tree
                        .get(&target)
                        .is_none_or(|p| p.block.header.height > head.height)
                    {
                        self.request_sync();
                    }
                    return;
                }
            }
        }
        path.reverse();
        let cert = Certificate::Finalization(scheme::encode_final(&f));
        for h in path {
            let Some(mut p) = self.tree.remove(&h) else {
                return;
            };
            if h == target {
                p.block.cert = Some(cert.clone());
            }
            if let Err(e) = self.chain.commit_executed(&p.block, p.state) {
                warn!(height = p.block.header.height, error = %e, "commit of a finalized block failed");
                return;
            }
            self.after_commit(&p.block);
        }
        self.finalized += 1;
        self.prune();
    }

    fn after_commit(&mut self, b: &Block) {
        let gone: HashSet<Hash> = b.txs.iter().map(SignedTx::hash).collect();
        self.drop_from_mempool(&gone);
        debug!(height = b.header.height, txs = b.txs.len(), "finalized");
    }

    /// Forget what can no longer be finalized: pending blocks at or below the head, parked
    /// blocks and requests of heights below it, mempool transactions that no longer apply
    /// (in order, after the ones before them).
    fn prune(&mut self) {
        let h = self.chain.head().height;
        self.tree.retain(|_, p| p.block.header.height > h);
        self.received.retain(|_, b| b.header.height > h);
        // in mempool order, as they would be proposed: one that applies neither at the head
        // nor after the ones before it is stale
        let mut stale = HashSet::new();
        let mut state = self.chain.state().clone();
        let height = state.height + 1;
        {
            let store = self.chain.store();
            let has = |d: &Hash| store.has_payload(d);
            for t in &self.mempool {
                let mut next = state.clone();
                if next.apply_tx(t, height, &has).is_ok() {
                    state = next;
                } else {
                    stale.insert(t.hash());
                }
            }
        }
        self.drop_from_mempool(&stale);
        self.pending = Some(state);
        if self.waiters.len() > 1024 {
            self.waiters.clear();
        }
    }
}
