//! Integration tests of fedchain-ledger.
#![allow(clippy::unwrap_used)]

mod common;
mod crash;
mod flow;
mod payment;
mod props;
mod replay;
mod stores;
mod suite;
mod tamper;
mod verifier;
