//! Validators on commonware's deterministic runtime and simulated network: the real simplex
//! engine, the real application actor, real RocksDB replicas; audited afterwards from the
//! genesis with every finalization checked against the genesis validator set.
#![allow(clippy::unwrap_used)]

mod consensus;
mod embedded;
