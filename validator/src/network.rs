//! The validators' own network: commonware-p2p `authenticated::lookup` among the genesis
//! validator set, each peer at an address its operator configured.
//!
//! Why commonware-p2p and not the consortium's mutual-TLS QUIC: the engine speaks through
//! commonware's `Sender`/`Receiver`/`Blocker` traits (per-channel quotas per peer, send
//! priority, blocking a peer that sent a fault), which `lookup` implements and tests; our QUIC
//! transport would need an adapter re-implementing all of it. The identity is still the
//! consortium's: the handshake (SAKE, then CUPS with ChaCha20-Poly1305) signs with the
//! validator's own BLS key, the key its CA certificate carries and the genesis lists, and a
//! peer is admitted only if its key is in the genesis validator set (the tracked peer set).
//! Members (the aggregator, hospitals, auditors) reach validators over mutual-TLS QUIC
//! instead (the node's client ingress).

use std::net::SocketAddr;
use std::time::Duration;

use commonware_cryptography::bls12381::PublicKey;
use commonware_cryptography::ChaCha20Poly1305;
use commonware_p2p::authenticated::lookup::{self, Network};
use commonware_p2p::{Address, AddressableManager as _};
use commonware_runtime::{Quota, Spawner};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZUsize, NZU32};
use fedchain_crypto::identity::{SigningKey, VerifyingKey};

use crate::scheme::{self, KeyError};
use crate::wire::{
    CERTIFICATE_CHANNEL, GOSSIP_CHANNEL, MAX_MESSAGE, RESOLVER_CHANNEL, VOTE_CHANNEL,
};

/// The sender and receiver of one channel of the validators' network.
pub type Channel<E> = (lookup::Sender<PublicKey, E>, lookup::Receiver<PublicKey>);

/// The four channels [`crate::start`] takes, and the peer blocker.
pub struct Channels<E: commonware_runtime::Clock> {
    pub blocker: lookup::Oracle<PublicKey>,
    pub votes: Channel<E>,
    pub certificates: Channel<E>,
    pub resolver: Channel<E>,
    pub gossip: Channel<E>,
}

impl<E: commonware_runtime::Clock> std::fmt::Debug for Channels<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Channels")
    }
}

/// Messages per second per peer on each channel (a budget, not a target: a block's votes are a
/// handful of messages).
const QUOTA: Quota = Quota::per_second(NZU32!(4096));

/// Start the network of the validator holding `key`: it listens on `listen` and dials the
/// other members of `validators` at `addresses` (both in genesis order; its own entry is its
/// advertised address). `chain_id` binds every handshake to this chain.
pub fn start<E>(
    context: E,
    chain_id: &str,
    key: &SigningKey,
    listen: SocketAddr,
    validators: &[VerifyingKey],
    addresses: &[SocketAddr],
) -> Result<Channels<E>, KeyError>
where
    E: Spawner
        + commonware_runtime::Clock
        + commonware_runtime::Network
        + commonware_runtime::Resolver
        + commonware_runtime::Metrics
        + commonware_runtime::Supervisor
        + rand010::CryptoRng
        + Send
        + 'static,
{
    if validators.len() != addresses.len() {
        return Err(KeyError::Decode(format!(
            "{} validator addresses for {} validators",
            addresses.len(),
            validators.len()
        )));
    }
    let (signer, _) = scheme::private_key(key)?;
    let me = scheme::public_key(&key.verifying_key())?;
    let mut peers = Vec::with_capacity(validators.len());
    for (v, a) in validators.iter().zip(addresses) {
        peers.push((scheme::public_key(v)?, Address::from(*a)));
    }
    if !peers.iter().any(|(p, _)| *p == me) {
        return Err(KeyError::NotAValidator);
    }
    let peers: Map<PublicKey, Address> = peers.try_into().map_err(|_| KeyError::Duplicate)?;
    let upgrader = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer,
            synchrony_bound: Duration::from_secs(30),
            max_handshake_age: Duration::from_secs(60),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let mut cfg = lookup::Config::recommended(
        upgrader,
        &crate::scheme::namespace(chain_id),
        listen,
        NZUsize!(validators.len() + 1),
        MAX_MESSAGE,
        NZUsize!(4096),
    );
    // validators of one consortium often share a private network (or loopback); peers are
    // admitted by their genesis key, not by their address class
    cfg.allow_private_ips = true;
    // a restarted validator is re-admitted within seconds, not a minute
    cfg.peer_connection_cooldown = Duration::from_secs(1);
    cfg.dial_frequency = Duration::from_millis(500);
    cfg.ping_frequency = Duration::from_secs(5);
    cfg.allowed_handshake_rate_per_ip = Quota::per_second(NZU32!(16));
    let (mut network, mut oracle) = Network::new(context.child("p2p"), cfg);
    let _ = oracle.track(0, peers);
    let votes = network.register(VOTE_CHANNEL, QUOTA);
    let certificates = network.register(CERTIFICATE_CHANNEL, QUOTA);
    let resolver = network.register(RESOLVER_CHANNEL, QUOTA);
    let gossip = network.register(GOSSIP_CHANNEL, QUOTA);
    network.start();
    Ok(Channels {
        blocker: oracle,
        votes,
        certificates,
        resolver,
        gossip,
    })
}
