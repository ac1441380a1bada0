//! A consortium's validators in one process: `V` validators, each with its own key and its own
//! RocksDB replica, running the real engine ([`crate::start`]: simplex, `bls12381_multisig`
//! certificates, re-execution of every block) on commonware's deterministic runtime and its
//! simulated network (seeded, no sockets), in a thread of their own. What `fedchain simulate`
//! finalizes its blocks with, so the embedded run exercises the deployment's consensus.
//!
//! The runtime advances only while a request is served: [`Embedded::submit_all`] hands
//! transactions to the validators' mempools, and
//! [`Embedded::blocks_after`] returns the finalized blocks above a height, with `wait` running
//! the consensus (in simulated time) until there is one. Between requests the runtime's only
//! task that runs is the one waiting for the next request, so simulated time stands still
//! while the caller trains or encrypts, and a run is a function of its seed and its requests.
//! The runtime's seed schedules tasks and delays messages; it never reaches a key.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use commonware_cryptography::bls12381::PublicKey;
use commonware_p2p::simulated::{Config as NetConfig, Link, Network};
use commonware_runtime::{deterministic, Clock as _, Quota, Runner as _, Supervisor as _};
use commonware_utils::{probability, NZUsize, NZU32};
use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::Genesis;
use fedchain_ledger::{Block, Chain, FinalityRef, RocksStore, RoundVerifier, SignedTx};

use crate::app::{Config, Mailbox, Status};
use crate::scheme::{self, SimplexFinality};
use crate::{start, StartError, Timing};

/// Messages per second a validator may send on each channel of the simulated network.
const QUOTA: Quota = Quota::per_second(NZU32!(100_000));
/// Longest simulated time a [`Embedded::blocks_after`] with `wait` runs the consensus for.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Simulated time between two looks at the finalized head while waiting.
const POLL: Duration = Duration::from_millis(5);

/// Finalized blocks in height order with the payloads each references, ending on a block
/// that carries its finalization.
pub type Run = Vec<(Block, Vec<Vec<u8>>)>;

/// How the embedded validators run.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Schedules tasks and delays on the simulated network (never a key).
    pub seed: u64,
    /// Each validator's replica: `dir/<i>` (created, or reopened after a stop).
    pub dir: PathBuf,
    /// Latency of every simulated link (jitter is a fifth of it).
    pub latency: Duration,
    /// Least simulated time between two empty blocks.
    pub block_interval: Duration,
}

impl EmbeddedConfig {
    pub fn new(seed: u64, dir: &Path) -> Self {
        Self {
            seed,
            dir: dir.to_path_buf(),
            latency: Duration::from_millis(10),
            block_interval: Duration::from_millis(100),
        }
    }
}

/// Why the embedded validators could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("validator {index}: {source}")]
    Start { index: usize, source: StartError },
    #[error("validator {index}'s replica in {path}: {reason}")]
    Replica {
        index: usize,
        path: PathBuf,
        reason: String,
    },
    #[error("the embedded validators stopped")]
    Stopped,
}

enum Request {
    Submit {
        txs: Vec<(SignedTx, Vec<Vec<u8>>)>,
        reply: mpsc::Sender<Vec<Result<(), String>>>,
    },
    Blocks {
        after: u64,
        wait: bool,
        reply: mpsc::Sender<Result<Run, String>>,
    },
    Advance {
        reply: mpsc::Sender<Result<(), String>>,
    },
    Status {
        reply: mpsc::Sender<Vec<Status>>,
    },
}

/// The running validators (see the module doc); stopped when dropped.
pub struct Embedded {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    validators: usize,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("validators", &self.validators)
            .finish()
    }
}

impl Embedded {
    /// Start one validator per key of `genesis.validators` (`keys` in that order), each
    /// re-verifying rounds with `verifier`, on a fully connected simulated network.
    pub fn start(
        cfg: EmbeddedConfig,
        genesis: &Genesis,
        keys: Vec<SigningKey>,
        verifier: Option<Arc<dyn RoundVerifier + Send + Sync>>,
    ) -> Result<Self, EmbeddedError> {
        // the replicas first, here, so a bad one is an error before any thread
        let mut chains = Vec::with_capacity(keys.len());
        for i in 0..keys.len() {
            let path = cfg.dir.join(i.to_string());
            let bad = |reason: String| EmbeddedError::Replica {
                index: i,
                path: path.clone(),
                reason,
            };
            std::fs::create_dir_all(&path).map_err(|e| bad(e.to_string()))?;
            let store = RocksStore::open(&path).map_err(|e| bad(e.to_string()))?;
            let finality = FinalityRef(Some(Arc::new(SimplexFinality::new())));
            let chain = Chain::open_with(store, genesis, finality, &mut |_, _| {})
                .map_err(|e| bad(e.to_string()))?;
            chains.push(chain);
        }
        let identities = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                scheme::public_key(&k.verifying_key()).map_err(|e| EmbeddedError::Start {
                    index: i,
                    source: e.into(),
                })
            })
            .collect::<Result<Vec<PublicKey>, _>>()?;
        let validators = keys.len();
        // simulated time starts at the chain's: its blocks' timestamps follow on
        let start_ms = chains
            .iter()
            .map(|c| c.state().timestamp_ms)
            .max()
            .unwrap_or(0)
            .max(genesis.timestamp_ms);
        let start_time = std::time::UNIX_EPOCH + Duration::from_millis(start_ms + 1);
        let (requests, inbox) = mpsc::channel::<Request>();
        let (ready_tx, ready) = mpsc::channel::<Result<(), EmbeddedError>>();
        let thread = std::thread::Builder::new()
            .name("validators".into())
            .spawn(move || {
                let runner = deterministic::Runner::new(
                    deterministic::Config::new()
                        .with_seed(cfg.seed)
                        .with_start_time(start_time)
                        .with_catch_panics(false),
                );
                runner.start(|context| async move {
                    let mailboxes =
                        match boot(&context, &cfg, chains, keys, identities, verifier).await {
                            Ok(m) => {
                                let _ = ready_tx.send(Ok(()));
                                m
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        };
                    // blocking on purpose: nothing else runs, simulated time stands still
                    while let Ok(req) = inbox.recv() {
                        serve(&context, &mailboxes, req).await;
                    }
                });
            })
            .map_err(|e| EmbeddedError::Replica {
                index: 0,
                path: PathBuf::new(),
                reason: format!("no thread for the validators: {e}"),
            })?;
        match ready.recv() {
            Ok(Ok(())) => Ok(Self {
                requests: Some(requests),
                thread: Some(thread),
                validators,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(EmbeddedError::Stopped)
            }
        }
    }

    fn ask<T>(&self, make: impl FnOnce(mpsc::Sender<T>) -> Request) -> Result<T, EmbeddedError> {
        let (reply, answer) = mpsc::channel();
        self.requests
            .as_ref()
            .ok_or(EmbeddedError::Stopped)?
            .send(make(reply))
            .map_err(|_| EmbeddedError::Stopped)?;
        answer.recv().map_err(|_| EmbeddedError::Stopped)
    }

    /// Hand transactions with the payloads they reference to every validator at once (so they
    /// can share the next block, whoever leads it): per transaction, validator 0's verdict
    /// (the chain's refusal at its head as `Err`).
    pub fn submit_all(&self, txs: Vec<(SignedTx, Vec<Vec<u8>>)>) -> Vec<Result<(), String>> {
        let n = txs.len();
        match self.ask(|reply| Request::Submit { txs, reply }) {
            Ok(r) => r,
            Err(e) => vec![Err(e.to_string()); n],
        }
    }

    /// Finalized blocks above `height` with their payloads, ending on a certified block; with
    /// `wait`, the consensus runs until there is one (at most [`MAX_WAIT`] simulated).
    pub fn blocks_after(&self, height: u64, wait: bool) -> Result<Run, String> {
        self.ask(|reply| Request::Blocks {
            after: height,
            wait,
            reply,
        })
        .map_err(|e| e.to_string())?
    }

    /// Run the consensus until validator 0 finalized one more block (at most [`MAX_WAIT`]
    /// simulated): what time passing means here.
    pub fn advance(&self) -> Result<(), String> {
        self.ask(|reply| Request::Advance { reply })
            .map_err(|e| e.to_string())?
    }

    /// Every validator's status, in key order.
    pub fn status(&self) -> Result<Vec<Status>, EmbeddedError> {
        self.ask(|reply| Request::Status { reply })
    }

    /// How many validators run.
    pub fn validators(&self) -> usize {
        self.validators
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // the runtime's loop ends with its request channel
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn boot(
    context: &deterministic::Context,
    cfg: &EmbeddedConfig,
    chains: Vec<Chain<RocksStore>>,
    keys: Vec<SigningKey>,
    identities: Vec<PublicKey>,
    verifier: Option<Arc<dyn RoundVerifier + Send + Sync>>,
) -> Result<Vec<Mailbox>, EmbeddedError> {
    let (network, oracle) = Network::new_with_peers(
        context.child("network"),
        NetConfig {
            max_size: crate::wire::MAX_MESSAGE,
            disconnect_on_block: true,
            max_peers_per_set: NZUsize!(identities.len().max(1)),
            tracked_peer_sets: NZUsize!(1),
        },
        identities.clone(),
    )
    .await;
    network.start();
    let link = Link {
        latency: cfg.latency,
        jitter: cfg.latency / 5,
        success_rate: probability!(1.0),
    };
    for a in &identities {
        for b in &identities {
            if a != b {
                // a link between two of our own peers cannot be refused
                let _ = oracle.add_link(a.clone(), b.clone(), link.clone()).await;
            }
        }
    }
    let mut mailboxes = Vec::with_capacity(keys.len());
    for (i, (chain, key)) in chains.into_iter().zip(keys).enumerate() {
        let control = oracle.control(identities[i].clone());
        let stopped = |_| EmbeddedError::Stopped;
        let votes = control.register(0, QUOTA).await.map_err(stopped)?;
        let certificates = control.register(1, QUOTA).await.map_err(stopped)?;
        let resolver = control.register(2, QUOTA).await.map_err(stopped)?;
        let gossip = control.register(3, QUOTA).await.map_err(stopped)?;
        let mailbox = start(
            context.child("validator").with_attribute("index", i),
            Config {
                chain,
                key,
                verifier: verifier.clone(),
                block_interval: cfg.block_interval,
            },
            control,
            format!("validator-{i}"),
            Timing::default(),
            votes,
            certificates,
            resolver,
            gossip,
        )
        .map_err(|source| EmbeddedError::Start { index: i, source })?;
        mailboxes.push(mailbox);
    }
    Ok(mailboxes)
}

async fn serve(context: &deterministic::Context, mailboxes: &[Mailbox], req: Request) {
    match req {
        Request::Submit { txs, reply } => {
            let mut verdict = Vec::new();
            for (i, m) in mailboxes.iter().enumerate() {
                let r = m.submit_all(txs.clone()).await;
                if i == 0 {
                    verdict = r.into_iter().map(|r| r.map(|_| ())).collect();
                }
            }
            let _ = reply.send(verdict);
        }
        Request::Blocks { after, wait, reply } => {
            let deadline = context.current() + MAX_WAIT;
            let r = loop {
                let Some(blocks) = mailboxes[0].blocks(after + 1, usize::MAX).await else {
                    break Err("validator 0 stopped".to_string());
                };
                if !blocks.is_empty() || !wait || context.current() >= deadline {
                    break Ok(blocks
                        .into_iter()
                        .map(|(b, p)| (b, p.into_iter().map(|x| x.into_vec()).collect()))
                        .collect());
                }
                context.sleep(POLL).await;
            };
            let _ = reply.send(r);
        }
        Request::Advance { reply } => {
            let deadline = context.current() + MAX_WAIT;
            let start = mailboxes[0].status().await.map(|s| s.head.height);
            let r = loop {
                let Some(from) = start else {
                    break Err("validator 0 stopped".to_string());
                };
                match mailboxes[0].status().await {
                    None => break Err("validator 0 stopped".to_string()),
                    Some(s) if s.head.height > from => break Ok(()),
                    Some(_) if context.current() >= deadline => {
                        break Err(format!(
                            "no block finalized in {} s of simulated time",
                            MAX_WAIT.as_secs()
                        ))
                    }
                    Some(_) => context.sleep(POLL).await,
                }
            };
            let _ = reply.send(r);
        }
        Request::Status { reply } => {
            let mut all = Vec::with_capacity(mailboxes.len());
            for m in mailboxes {
                if let Some(s) = m.status().await {
                    all.push(s);
                }
            }
            let _ = reply.send(all);
        }
    }
}
