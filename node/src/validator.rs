//! `fedchain validator`: one institute's validator as a process.
//!
//! - Its consensus key is the BLS key of its own bundle (generated at the institute by
//!   `fedchain keys new --role validator`, certified by the consortium CA); it must be one of
//!   the genesis validators.
//! - Its replica is a RocksDB ledger of its own (created on first start, recovered with its
//!   anchor and lock afterwards), opened with the simplex finality check; the engine journals
//!   its votes in `consensus_dir` so that a restart never signs twice in one view.
//! - Ordering: [`fedchain_validator::start`] (commonware simplex) over
//!   [`fedchain_validator::network`] (commonware-p2p, authenticated by the genesis keys), on
//!   commonware's tokio runtime. Blocks are re-executed with the chain rules and the
//!   cryptographic [`FedchainVerifier`] before this validator votes.
//! - Members reach it over mutual-TLS QUIC ([`fedchain_net::Server`] with its certificate):
//!   [`ChainRequest::Submit`] puts a signed transaction and its payloads in the mempool (the
//!   chain rules checked at the head first), [`ChainRequest::Blocks`] serves finalized blocks
//!   with their payloads and finalization, [`ChainRequest::Status`] says where it is.
//!   [`ChainClient`] is that protocol's client.
//! - SIGINT/SIGTERM (the `stop` channel) stop it; everything final is already on disk, and a
//!   kill -9 loses nothing final either.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use commonware_runtime::{Runner as _, Supervisor as _};
use fedchain_coordinator::FedchainVerifier;
use fedchain_ledger::{Block, Chain, FinalityRef, Hash, RocksStore, Role, SignedTx};
use fedchain_net::{Bundle, Client, Incoming, Limits, NetError, Peer, Server};
use fedchain_validator::{Mailbox, SimplexFinality, Timing};
use serde_bytes::ByteBuf;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::config::ValidatorConfig;
use crate::material::{load_bundle, load_genesis};
use crate::proto::{ChainReply, ChainRequest, ChainStatus};
use crate::{NodeError, Result};

/// What a stopped validator reports.
#[derive(Clone, Debug)]
pub struct ValidatorReport {
    pub index: usize,
    pub height: u64,
    pub head: Hash,
    pub finalized: u64,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> NodeError {
    NodeError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Run the validator of `cfg` until `stop` fires (or its sender is dropped). Blocking: it
/// owns its runtime (commonware's tokio runtime with the engine's storage in
/// `consensus_dir`).
pub fn run(cfg: ValidatorConfig, stop: oneshot::Receiver<()>) -> Result<ValidatorReport> {
    cfg.validate()?;
    let bundle = load_bundle(&cfg.bundle, Role::Validator)?;
    let key = bundle.signing_key()?;
    let genesis = load_genesis(&cfg.job_dir)?;
    let me = key.verifying_key();
    let index = genesis
        .validators
        .iter()
        .position(|v| *v == me)
        .ok_or_else(|| {
            invalid(
                "bundle",
                format!(
                    "{}: its key is not one of the {} genesis validators of chain {}",
                    cfg.bundle.display(),
                    genesis.validators.len(),
                    genesis.chain_id
                ),
            )
        })?;
    if cfg.validators.len() != genesis.validators.len() {
        return Err(invalid(
            "validators",
            format!(
                "{} addresses for the {} genesis validators",
                cfg.validators.len(),
                genesis.validators.len()
            ),
        ));
    }
    let store = RocksStore::open(&cfg.ledger)?;
    let finality = FinalityRef(Some(Arc::new(SimplexFinality::new())));
    let mut last = std::time::Instant::now();
    let chain = Chain::open_with(store, &genesis, finality, &mut |done, total| {
        if last.elapsed() > Duration::from_secs(2) {
            info!(done, total, "validator: replaying the ledger");
            last = std::time::Instant::now();
        }
    })?;
    let head = chain.head();
    info!(
        index,
        chain = %genesis.chain_id,
        height = head.height,
        ledger = %cfg.ledger.display(),
        "validator: replica open"
    );
    std::fs::create_dir_all(&cfg.consensus_dir).map_err(crate::io_err(&cfg.consensus_dir))?;
    let runtime = commonware_runtime::tokio::Config::new()
        .with_worker_threads(2)
        .with_storage_directory(cfg.consensus_dir.clone());
    let runner = commonware_runtime::tokio::Runner::new(runtime);
    let timing = Timing {
        leader: Duration::from_millis(cfg.leader_timeout_ms),
        certification: Duration::from_millis(cfg.certification_timeout_ms),
        retry: Duration::from_millis(cfg.certification_timeout_ms * 2),
    };
    runner.start(|context| async move {
        let channels = fedchain_validator::network::start(
            context.child("network"),
            &genesis.chain_id,
            &key,
            cfg.p2p,
            &genesis.validators,
            &cfg.validators,
        )
        .map_err(|e| invalid("bundle", e.to_string()))?;
        let mailbox = fedchain_validator::start(
            context.child("validator"),
            fedchain_validator::Config {
                chain,
                key,
                verifier: Some(Arc::new(FedchainVerifier)),
                block_interval: Duration::from_millis(cfg.block_interval_ms),
            },
            channels.blocker,
            "fedchain-engine".to_string(),
            timing,
            channels.votes,
            channels.certificates,
            channels.resolver,
            channels.gossip,
        )
        .map_err(|e| NodeError::Runtime(format!("validator: {e}")))?;
        let limits = cfg.net.limits();
        let mut server = Server::bind(cfg.listen, &bundle, limits)?;
        info!(
            index,
            p2p = %cfg.p2p,
            listen = %server.local_addr()?,
            "validator: running (p2p authenticated by the genesis keys; members over QUIC)"
        );
        let ingress = {
            let mailbox = mailbox.clone();
            let chain_id = genesis.chain_id.clone();
            tokio::spawn(async move {
                loop {
                    match server.accept().await {
                        Ok(peer) => {
                            tokio::spawn(serve_member(
                                peer,
                                mailbox.clone(),
                                chain_id.clone(),
                                index,
                                limits,
                            ));
                        }
                        Err(NetError::Handshake { remote, reason }) => {
                            debug!(%remote, %reason, "validator: handshake refused");
                        }
                        Err(e) => {
                            debug!(error = %e, "validator: connection refused");
                        }
                    }
                }
            })
        };
        let _ = stop.await;
        info!(index, "validator: stopping");
        ingress.abort();
        let status = mailbox
            .status()
            .await
            .ok_or_else(|| NodeError::Runtime("the validator's application stopped".into()))?;
        Ok(ValidatorReport {
            index,
            height: status.head.height,
            head: status.head.hash,
            finalized: status.finalized,
        })
    })
}

/// Answer one member's requests until it goes away.
async fn serve_member(
    peer: Peer,
    mailbox: Mailbox,
    chain_id: String,
    index: usize,
    limits: Limits,
) {
    let who = peer.identity().name.clone();
    loop {
        let (request, responder) = match peer.next_incoming::<ChainRequest>().await {
            Ok(Incoming::Request { request, responder }) => (request, responder),
            Ok(Incoming::Message(_)) => {
                debug!(peer = %who, "validator: a one-way message from a member, ignored");
                continue;
            }
            Err(e) => {
                debug!(peer = %who, error = %e, "validator: member gone");
                return;
            }
        };
        let reply = match request {
            ChainRequest::Submit { tx, payloads } => {
                let payloads = payloads.into_iter().map(ByteBuf::into_vec).collect();
                match mailbox.submit(tx, payloads).await {
                    Ok(tx) => ChainReply::Submitted { tx },
                    Err(reason) => ChainReply::Refused { reason },
                }
            }
            ChainRequest::Status => match mailbox.status().await {
                Some(s) => ChainReply::Status(ChainStatus {
                    chain_id: chain_id.clone(),
                    index,
                    height: s.head.height,
                    head: s.head.hash,
                    state_root: s.state_root,
                    mempool: s.mempool,
                    pending: s.pending,
                    finalized: s.finalized,
                    faults: s.faults,
                }),
                None => {
                    let _ = responder.fail("the validator is stopping").await;
                    return;
                }
            },
            ChainRequest::Blocks { from, max } => match mailbox.blocks(from, max as usize).await {
                Some(blocks) => match fit_reply(blocks, limits.max_send) {
                    Ok(blocks) => ChainReply::Blocks(blocks),
                    Err(reason) => {
                        let _ = responder.fail(&reason).await;
                        continue;
                    }
                },
                None => {
                    let _ = responder.fail("the validator is stopping").await;
                    return;
                }
            },
        };
        if let Err(e) = responder.respond(&reply).await {
            warn!(peer = %who, error = %e, "validator: reply not sent");
        }
    }
}

/// Shorten a batch of final blocks until its reply fits `max` bytes, still ending on a
/// certified block (each block's encoded size counted once).
fn fit_reply(
    mut blocks: Vec<(Block, Vec<ByteBuf>)>,
    max: u64,
) -> std::result::Result<Vec<(Block, Vec<ByteBuf>)>, String> {
    // the reply's own framing and the length prefixes: well under a kilobyte
    const OVERHEAD: u64 = 1024;
    let sizes: Vec<u64> = blocks
        .iter()
        .map(|b| fedchain_net::wire::encode(b).map_or(u64::MAX, |v| v.len() as u64))
        .collect();
    let mut total = sizes.iter().fold(OVERHEAD, |a, s| a.saturating_add(*s));
    while total > max || blocks.last().is_some_and(|(b, _)| b.cert.is_none()) {
        if blocks.pop().is_none() {
            break;
        }
        total -= sizes[blocks.len()];
    }
    if blocks.is_empty() && !sizes.is_empty() {
        return Err(format!(
            "the next finalized blocks do not fit a reply of {max} bytes"
        ));
    }
    Ok(blocks)
}

/// A member's connection to one validator.
#[derive(Debug)]
pub struct ChainClient {
    peer: Peer,
}

impl ChainClient {
    /// Connect to the validator whose certificate names `name`, at `addr`, with this
    /// member's bundle.
    pub async fn connect(
        addr: SocketAddr,
        name: &str,
        bundle: &Bundle,
        limits: Limits,
    ) -> Result<Self> {
        Ok(Self {
            peer: Client::connect(addr, name, bundle, limits).await?,
        })
    }

    async fn ask(&self, req: &ChainRequest) -> Result<ChainReply> {
        Ok(self.peer.request::<ChainRequest, ChainReply>(req).await?)
    }

    /// Submit a transaction with its payloads: `Ok(Ok(hash))` once it is in the validator's
    /// mempool, `Ok(Err(reason))` when the chain rules refuse it.
    pub async fn submit(
        &self,
        tx: &SignedTx,
        payloads: &[Vec<u8>],
    ) -> Result<std::result::Result<Hash, String>> {
        let req = ChainRequest::Submit {
            tx: tx.clone(),
            payloads: payloads.iter().cloned().map(ByteBuf::from).collect(),
        };
        match self.ask(&req).await? {
            ChainReply::Submitted { tx } => Ok(Ok(tx)),
            ChainReply::Refused { reason } => Ok(Err(reason)),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn status(&self) -> Result<ChainStatus> {
        match self.ask(&ChainRequest::Status).await? {
            ChainReply::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Finalized blocks from `from` on (see [`ChainRequest::Blocks`]).
    pub async fn blocks(&self, from: u64, max: u32) -> Result<Vec<(Block, Vec<ByteBuf>)>> {
        match self.ask(&ChainRequest::Blocks { from, max }).await? {
            ChainReply::Blocks(b) => Ok(b),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(r: &ChainReply) -> NodeError {
    NodeError::Runtime(format!(
        "unexpected reply from the validator: {}",
        match r {
            ChainReply::Submitted { .. } => "Submitted",
            ChainReply::Refused { .. } => "Refused",
            ChainReply::Status(_) => "Status",
            ChainReply::Blocks(_) => "Blocks",
        }
    ))
}

/// A validator a member reaches: the name in its certificate and its QUIC address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub name: String,
    pub address: SocketAddr,
}

/// The aggregator's [`fedchain_coordinator::Finalizer`] over the network: the validators at
/// `endpoints`, one connection at a time (the next one when it fails), from synchronous code
/// running on a multi-thread tokio runtime (`block_in_place`).
pub struct NetFinalizer {
    handle: tokio::runtime::Handle,
    bundle_dir: std::path::PathBuf,
    role: Role,
    endpoints: Vec<Endpoint>,
    limits: Limits,
    at: usize,
    client: Option<ChainClient>,
}

impl std::fmt::Debug for NetFinalizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetFinalizer")
            .field("endpoints", &self.endpoints)
            .field("at", &self.at)
            .finish()
    }
}

/// Passes over the validators [`NetFinalizer`] makes before it gives up on connecting.
const CONNECT_PASSES: usize = 3;

/// How long [`NetFinalizer::blocks_after`] waits (when asked to) for a new block before it
/// asks again and, still without one, answers none.
const FOLLOW_WAIT: Duration = Duration::from_millis(25);

impl NetFinalizer {
    /// `bundle_dir` is the member's bundle (loaded again at each connection).
    pub fn new(
        handle: tokio::runtime::Handle,
        bundle_dir: std::path::PathBuf,
        role: Role,
        endpoints: Vec<Endpoint>,
        limits: Limits,
    ) -> Self {
        Self {
            handle,
            bundle_dir,
            role,
            endpoints,
            limits,
            at: 0,
            client: None,
        }
    }

    /// Leave the current validator for the next one (after it served something that does
    /// not verify).
    pub fn switch(&mut self) {
        self.client = None;
        self.at = (self.at + 1) % self.endpoints.len();
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        tokio::task::block_in_place(|| self.handle.block_on(f))
    }

    /// A connected client: the current one, or the next endpoint that answers (one pass).
    fn client(&mut self) -> std::result::Result<&ChainClient, String> {
        if self.client.is_none() {
            let bundle = load_bundle(&self.bundle_dir, self.role).map_err(|e| e.to_string())?;
            let mut errors = Vec::new();
            // a few passes over every validator: at a cluster's start they may still be coming up
            for attempt in 0..CONNECT_PASSES * self.endpoints.len() {
                if attempt > 0 && attempt % self.endpoints.len() == 0 {
                    self.block_on(tokio::time::sleep(Duration::from_secs(1)));
                }
                let e = self.endpoints[self.at].clone();
                match self.block_on(ChainClient::connect(
                    e.address,
                    &e.name,
                    &bundle,
                    self.limits,
                )) {
                    Ok(c) => {
                        info!(validator = %e.name, address = %e.address, "connected to a validator");
                        self.client = Some(c);
                        break;
                    }
                    Err(err) => {
                        errors.push(format!("{} at {}: {err}", e.name, e.address));
                        self.at = (self.at + 1) % self.endpoints.len();
                    }
                }
            }
            if self.client.is_none() {
                return Err(format!("no validator answers: {}", errors.join("; ")));
            }
        }
        self.client
            .as_ref()
            .ok_or_else(|| "no validator connection".to_string())
    }

    /// Ask the current validator; on a transport error, once more on the next one.
    fn ask(&mut self, req: &ChainRequest) -> std::result::Result<ChainReply, String> {
        let handle = self.handle.clone();
        for attempt in 0..2 {
            let client = self.client()?;
            match tokio::task::block_in_place(|| handle.block_on(client.ask(req))) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    warn!(error = %e, attempt, "validator request failed; trying the next one");
                    self.client = None;
                    self.at = (self.at + 1) % self.endpoints.len();
                }
            }
        }
        Err("the validators did not answer".into())
    }
}

impl fedchain_coordinator::Finalizer for NetFinalizer {
    fn submit(&mut self, tx: &SignedTx, payloads: Vec<Vec<u8>>) -> std::result::Result<(), String> {
        let req = ChainRequest::Submit {
            tx: tx.clone(),
            payloads: payloads.into_iter().map(ByteBuf::from).collect(),
        };
        match self.ask(&req)? {
            ChainReply::Submitted { .. } => Ok(()),
            ChainReply::Refused { reason } => Err(reason),
            other => Err(unexpected(&other).to_string()),
        }
    }

    fn blocks_after(
        &mut self,
        height: u64,
        wait: bool,
    ) -> std::result::Result<fedchain_coordinator::ledger::FinalRun, String> {
        let tries: &[bool] = if wait { &[false, true] } else { &[false] };
        for &pause in tries {
            if pause {
                self.block_on(tokio::time::sleep(FOLLOW_WAIT));
            }
            let blocks = match self.ask(&ChainRequest::Blocks {
                from: height + 1,
                max: 64,
            })? {
                ChainReply::Blocks(b) => b,
                other => return Err(unexpected(&other).to_string()),
            };
            if !blocks.is_empty() {
                return Ok(blocks
                    .into_iter()
                    .map(|(b, p)| (b, p.into_iter().map(ByteBuf::into_vec).collect()))
                    .collect());
            }
        }
        Ok(Vec::new())
    }
}
