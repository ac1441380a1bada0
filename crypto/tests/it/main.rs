//! Integration tests of fedchain-crypto (one binary, see CONVENTIONS.md).
#![allow(clippy::unwrap_used)]

mod codec;
mod common;
mod identity;
mod knowledge;
mod packing;
mod paillier;
mod threshold;
