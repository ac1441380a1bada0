//! fedchain-net: the consortium PKI (CA, participant bundles, CRLs, threshold key dealing),
//! the mutual-TLS QUIC transport and the versioned wire framing the coordinator and workers
//! talk over.
//!
//! - [`pki`]: `ca init / issue / revoke` and `keygen` as library functions with clap `Args`.
//!   A participant's certificate binds its identity (name in the SAN, role and BLS public key
//!   in a private X.509 extension, see [`pki::IDENTITY_EXTENSION_OID`]).
//! - [`transport`]: [`Server`] / [`Client`] endpoints; a peer without a valid consortium
//!   certificate (no certificate, another CA, revoked) is refused during the TLS handshake.
//! - [`wire`]: frames (magic, version, kind, flags, length) checked against [`Limits`] before
//!   the body is read; one message per QUIC stream.
//!
//! Message types are defined by the services; this crate moves any `Serialize` value.

pub mod error;
pub mod pki;
pub mod tls;
pub mod transport;
pub mod wire;

pub use error::{NetError, Result, WireError};
pub use pki::{Bundle, PeerIdentity};
pub use transport::{Client, Incoming, Peer, Responder, Server};
pub use wire::Limits;
