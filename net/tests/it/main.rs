//! Integration tests of fedchain-net: PKI on disk, handshakes, framing faults, round trips,
//! per-peer budgets and handshake limits (A10).

mod budgets;
mod common;
mod pki;
mod transport;
