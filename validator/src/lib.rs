//! fedchain's validators: each institute's replica of the ledger, ordered by an existing BFT
//! engine, commonware-consensus `simplex` with `bls12381_multisig` certificates (attributable:
//! a signer bitmap and one aggregated BLS signature of more than 2/3 of the genesis
//! validators). The engine agrees on block digests; the [`app`] actor builds, gossips,
//! re-executes and commits the blocks (the chain rules of `fedchain-ledger`, and a
//! cryptographic [`fedchain_ledger::RoundVerifier`] for aggregates, commits, penalties and
//! voids). Finalized blocks carry their finalization ([`fedchain_ledger::Certificate::Finalization`]),
//! which [`scheme::SimplexFinality`] checks against the genesis validator set in every audit.
//!
//! [`start`] assembles one validator on any commonware runtime (the deterministic one in tests,
//! tokio in a deployment) and any p2p network with its four channels ([`wire`]).

pub mod app;
pub mod embedded;
pub mod network;
pub mod scheme;
pub mod wire;

use std::num::{NonZeroU16, NonZeroUsize};
use std::time::Duration;

use commonware_consensus::simplex::elector::RoundRobin;
use commonware_consensus::simplex::{
    Config as EngineConfig, Engine, Floor, ForwardPolicy, SkipBudget, SkipPolicy,
};
use commonware_consensus::types::{Epoch, ViewDelta};
use commonware_cryptography::bls12381::PublicKey;
use commonware_p2p::{Blocker, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_utils::{NZDuration, NZUsize, NZU16};
use fedchain_ledger::{Certificate, LedgerError, Store};

pub use app::{Application, Config, FinalBlocks, Mailbox, Status};
pub use scheme::{KeyError, SimplexFinality};

/// Timing of the engine (local policy; every validator may set its own).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long to wait for the leader's proposal.
    pub leader: Duration,
    /// How long to wait for a notarized proposal to certify before skipping the view.
    pub certification: Duration,
    /// How often to rebroadcast a nullify when stuck in a view.
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            leader: Duration::from_secs(1),
            certification: Duration::from_secs(2),
            retry: Duration::from_secs(5),
        }
    }
}

/// Why a validator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the head block {0} carries no finalization to start the engine from")]
    NoFloor(u64),
    #[error("the head's finalization does not decode: {0}")]
    BadFloor(String),
}

type Channel<Tx, Rx> = (Tx, Rx);

/// Start one validator: its application actor over `cfg.chain` and a simplex engine that
/// signs with `cfg.key`, on the runtime `context`, with the engine's three channels and the
/// application's gossip channel. The engine starts from the replica's head (the genesis, or
/// the head's finalization after a restart) and journals its votes in the runtime's storage
/// under `partition`. Returns the application's mailbox (submit transactions, read status).
#[allow(clippy::too_many_arguments)]
pub fn start<E, S, B, Tx, Rx>(
    context: E,
    cfg: Config<S>,
    blocker: B,
    partition: String,
    timing: Timing,
    votes: Channel<Tx, Rx>,
    certificates: Channel<Tx, Rx>,
    resolver: Channel<Tx, Rx>,
    gossip: Channel<Tx, Rx>,
) -> Result<Mailbox, StartError>
where
    E: commonware_runtime::Clock
        + commonware_runtime::Spawner
        + commonware_runtime::Storage
        + commonware_runtime::Metrics
        + commonware_runtime::Supervisor
        + rand010::CryptoRng
        + Send
        + 'static,
    S: Store + 'static,
    B: Blocker<PublicKey = PublicKey>,
    Tx: Sender<PublicKey = PublicKey>,
    Rx: Receiver<PublicKey = PublicKey>,
{
    let state = cfg.chain.state();
    let chain_id = state.chain_id.clone();
    let validators = state.validators.clone();
    let scheme = scheme::signer(&chain_id, &validators, &cfg.key)?;
    let head = cfg.chain.head();
    let floor = if head.height == 0 {
        Floor::Genesis(scheme::digest(&head.hash))
    } else {
        let block = cfg
            .chain
            .block(head.height)?
            .ok_or(StartError::NoFloor(head.height))?;
        match block.cert {
            Some(Certificate::Finalization(bytes)) => Floor::Finalized(
                scheme::decode_final(&scheme, &bytes).map_err(StartError::BadFloor)?,
            ),
            _ => return Err(StartError::NoFloor(head.height)),
        }
    };
    let (application, mailbox) = Application::new(context.child("application"), cfg, gossip);
    application.start();
    let page: NonZeroU16 = NZU16!(4096);
    let pages: NonZeroUsize = NZUsize!(64);
    let engine = Engine::new(
        context.child("engine"),
        EngineConfig {
            scheme,
            elector: RoundRobin::<commonware_cryptography::Sha256>::default(),
            blocker,
            automaton: mailbox.clone(),
            relay: mailbox.clone(),
            reporter: mailbox.clone(),
            track_historical_votes: false,
            strategy: Sequential,
            partition,
            mailbox_size: NZUsize!(1024),
            epoch: Epoch::new(0),
            floor,
            replay_buffer: NZUsize!(1024 * 1024),
            write_buffer: NZUsize!(1024 * 1024),
            page_cache: CacheRef::new(page, pages),
            leader_timeout: timing.leader,
            certification_timeout: timing.certification,
            timeout_retry: timing.retry,
            view_retention: ViewDelta::new(16),
            skip: SkipPolicy::Enabled {
                timeout: timing.certification * 5,
                budget: SkipBudget::Participants,
            },
            fetch_timeout: NZDuration!(Duration::from_secs(1)),
            fetch_retry_delay: Duration::from_millis(200),
            forward: ForwardPolicy::SilentVoters,
        },
    );
    engine.start(votes, certificates, resolver);
    Ok(mailbox)
}
