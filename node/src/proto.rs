//! The envelope the processes exchange around the services' own messages. Every value
//! travels as one wire frame on its own QUIC stream (`Peer::notify`).

use fedchain_coordinator::service::{CoordinatorMsg, WorkerMsg};
use fedchain_ledger::SignedTx;
use serde::{Deserialize, Serialize};

/// Worker -> coordinator. (A message is decoded, moved once into the service queue and
/// consumed; boxing the enrollment would buy nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Up {
    /// The hospital's own signed `Register` (role hospital, its certificate name as pseudonym)
    /// and `Join` of the job. Sent on every connection; ignored once on chain.
    Enroll { register: SignedTx, join: SignedTx },
    /// A service message (`Hello`, `Submit`, `Share`).
    Msg(WorkerMsg),
}

/// Coordinator -> worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Down {
    /// A service message.
    Msg(CoordinatorMsg),
    /// The job's rounds are all done; the worker may stop.
    Finished { rounds: u32 },
}

impl Down {
    /// About the bytes this message holds while it waits to be sent (payloads, parameters,
    /// addresses, plus a fixed part), for the per-peer send budget. Not an encoded size.
    pub fn held_bytes(&self) -> u64 {
        const FIXED: u64 = 256;
        let n = |v: usize, each: u64| v as u64 * each;
        FIXED
            + match self {
                Down::Msg(CoordinatorMsg::ShareRequest(r)) => r
                    .submissions
                    .iter()
                    .map(|s| s.payload.len() as u64 + FIXED)
                    .sum(),
                Down::Msg(CoordinatorMsg::RoundOpen(o)) => n(o.params.len(), 4),
                Down::Msg(CoordinatorMsg::RoundResult(r)) => n(
                    r.accepted.len() + r.missing.len() + r.share_providers.len(),
                    32,
                ),
                Down::Msg(CoordinatorMsg::Refused { reason }) => reason.to_string().len() as u64,
                _ => 0,
            }
    }
}

/// Member -> validator, over mutual-TLS QUIC; each one a request (`Peer::request`) answered
/// with a [`ChainReply`]. (Decoded once and consumed; boxing the transaction buys nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ChainRequest {
    /// A signed transaction with the payloads it references, for the mempool.
    Submit {
        tx: SignedTx,
        payloads: Vec<serde_bytes::ByteBuf>,
    },
    /// The validator's head and counters.
    Status,
    /// Finalized blocks from height `from` on (at most `max`, and at most the validator's
    /// batch), each with its payloads; the last one carries its finalization.
    Blocks { from: u64, max: u32 },
}

/// Validator -> member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ChainReply {
    /// In the mempool (and gossiped to the other validators): its hash.
    Submitted {
        tx: fedchain_ledger::Hash,
    },
    /// The chain rules refuse it at the validator's head (why).
    Refused {
        reason: String,
    },
    Status(ChainStatus),
    Blocks(Vec<(fedchain_ledger::Block, Vec<serde_bytes::ByteBuf>)>),
}

/// What a validator says about itself (informative: a member trusts only certificates).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainStatus {
    pub chain_id: String,
    /// This validator's index in the genesis validator set.
    pub index: usize,
    pub height: u64,
    pub head: fedchain_ledger::Hash,
    pub state_root: fedchain_ledger::Hash,
    pub mempool: usize,
    /// Verified blocks not final yet.
    pub pending: usize,
    /// Finalizations committed since the process started.
    pub finalized: u64,
    /// Evidence of validator faults the engine reported.
    pub faults: Vec<String>,
}
