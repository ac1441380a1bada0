//! fedchain-coordinator: the round engine (a deterministic state machine, no I/O), the server
//! strategies, the validators' crypto re-verification, the in-process simulation and its
//! reports.

pub mod config;
pub mod engine;
pub mod ledger;
pub mod report;
pub mod resume;
pub mod service;
pub mod setup;
pub mod simulate;
pub mod strategy;
pub mod verify;

pub use config::SimulateConfig;
pub use engine::{Action, EngineConfig, Event, RoundEngine, RoundResult};
pub use ledger::{Finalizer, Ledger};
pub use service::{CoordinatorService, Outbound};
pub use setup::{Consortium, Following};
pub use simulate::{simulate, Observer, Progress, Quiet};
pub use verify::FedchainVerifier;
