//! What validators send each other besides the engine's own votes and certificates (one p2p
//! channel, [`GOSSIP_CHANNEL`]): proposed blocks, mempool transactions and catch-up of
//! finalized blocks. Encoded with the ledger's canonical codec (bounded, no trailing bytes).

use fedchain_ledger::types::{decode, encode};
use fedchain_ledger::{Block, SignedTx};
use serde::{Deserialize, Serialize};

/// The engine's channels (votes, certificates, its resolver) and ours.
pub const VOTE_CHANNEL: u64 = 0;
pub const CERTIFICATE_CHANNEL: u64 = 1;
pub const RESOLVER_CHANNEL: u64 = 2;
pub const GOSSIP_CHANNEL: u64 = 3;

/// Largest message a validator sends or accepts from another (a block gossiped with its
/// payloads is the largest); a larger one is not sent (it is logged).
pub const MAX_MESSAGE: u32 = 64 << 20;

/// Finalized blocks per catch-up answer.
pub const SYNC_BATCH: usize = 64;

/// A payload as it travels (content-addressed by its SHA-256 on arrival).
pub type Payload = serde_bytes::ByteBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Gossip {
    /// A proposed block with the payloads its transactions reference, so that every
    /// validator holds them before it votes.
    Block {
        block: Block,
        payloads: Vec<Payload>,
    },
    /// A transaction for every validator's mempool, with its payloads.
    Tx {
        tx: SignedTx,
        payloads: Vec<Payload>,
    },
    /// "Send me the finalized blocks from this height on."
    SyncRequest { from: u64 },
    /// Finalized blocks in height order, each with its payloads; the last one carries its
    /// finalization (the others are final as its ancestors).
    SyncResponse { blocks: Vec<(Block, Vec<Payload>)> },
}

impl Gossip {
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, fedchain_ledger::LedgerError> {
        decode("validator gossip", bytes)
    }
}
