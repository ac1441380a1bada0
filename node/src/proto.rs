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
