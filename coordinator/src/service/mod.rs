//! The coordinator as a service without network code: [`CoordinatorService`] is an
//! event-driven state machine around the round engine and the block-producing ledger. A
//! transport hands it messages with the authenticated peer's address and ticks with the
//! time; it answers with [`Outbound`] messages. The wire messages live in
//! `fedchain_worker::service` (the worker must not depend on the coordinator) and are
//! re-exported here.

mod coordinator;

pub use coordinator::{
    CoordinatorService, Outbound, FAILPOINT_BEFORE_BLOCK, FAILPOINT_DROP_SUBMISSION,
};
pub use fedchain_worker::service::{
    Ack, CoordinatorMsg, Outcome, RangeRequest, Refusal, RoundOpen, RoundSummary, ShareRequest,
    WorkerMsg, WorkerService, PROTOCOL_VERSION,
};
