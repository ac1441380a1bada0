//! Integration tests of fedchain-ledger.
#![allow(clippy::unwrap_used)]

mod common;
mod crash;
mod flow;
mod props;
mod suite;
mod tamper;
mod verifier;
