//! fedchain-net: the consortium PKI (participants' own keys, CA, bundles, CRLs, threshold key
//! dealing with shares sealed to their holders),
//! the mutual-TLS QUIC transport and the versioned wire framing the coordinator and workers
//! talk over.
//!
//! - [`pki`]: `keys new / install`, `ca init / issue / revoke` and `keygen` as library
//!   functions with clap `Args`. Every participant generates its own secrets; the CA signs
//!   public keys from a request (CSR + BLS proof of possession) and never sees a secret.
//!   A participant's certificate binds its identity (name in the SAN, role and BLS public key
//!   in a private X.509 extension, see [`pki::IDENTITY_EXTENSION_OID`]).
//! - [`sealed`]: a key share sealed to its holder's X25519 key (X25519 + HKDF-SHA256 +
//!   ChaCha20-Poly1305, the header with holder index and key fingerprint authenticated).
//! - [`transport`]: [`Server`] / [`Client`] endpoints; a peer without a valid consortium
//!   certificate (no certificate, another CA, revoked) is refused during the TLS handshake.
//! - [`wire`]: frames (magic, version, kind, flags, length) checked against [`Limits`] before
//!   the body is read; one message per QUIC stream.
//! - [`budget`]: what one peer may cost (bytes and messages in flight or queued, strikes
//!   before its connection is closed) and the counters of what was refused ([`NetStats`]).
//!
//! Message types are defined by the services; this crate moves any `Serialize` value.

pub mod budget;
pub mod error;
pub mod pki;
pub mod sealed;
pub mod tls;
pub mod transport;
pub mod wire;

pub use budget::{Held, NetStats};
pub use error::{NetError, Result, WireError};
pub use pki::{Bundle, PeerIdentity};
pub use transport::{Client, Incoming, Peer, Responder, Server};
pub use wire::Limits;
