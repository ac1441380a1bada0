//! Integration tests of fedchain-net: PKI on disk, handshakes, framing faults, round trips.

mod common;
mod pki;
mod transport;
