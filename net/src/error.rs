//! The crate's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A problem with one frame on one stream. The connection and the server stay usable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("bad frame magic {found:02x?} (want {:02x?})", crate::wire::MAGIC)]
    BadMagic { found: [u8; 4] },
    #[error(
        "unsupported wire protocol version {found} (this build speaks {})",
        crate::wire::VERSION
    )]
    UnsupportedVersion { found: u8 },
    #[error("unknown frame kind {found}")]
    UnknownKind { found: u8 },
    #[error("unexpected frame kind {found:?}, want {want:?}")]
    UnexpectedKind {
        found: crate::wire::FrameKind,
        want: crate::wire::FrameKind,
    },
    #[error("unknown frame flags {found:#04x}")]
    UnknownFlags { found: u8 },
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: u64, limit: u64 },
    #[error("frame of {len} bytes refused: the peer already has {in_use} of its {budget} bytes in flight or queued")]
    OverBudget { len: u64, in_use: u64, budget: u64 },
    #[error("stream ended after {got} of {expected} bytes")]
    Truncated { expected: u64, got: u64 },
    #[error("bytes after the frame's end")]
    TrailingBytes,
    #[error("timed out after {ms} ms while {op}")]
    Timeout { op: &'static str, ms: u64 },
    #[error("message does not decode: {0}")]
    Decode(String),
    #[error("message does not encode: {0}")]
    Encode(String),
    #[error("stream error: {0}")]
    Stream(String),
    #[error("the peer refused the frame (QUIC code {code}: 1 malformed, 3 over its size or budget limits)")]
    Refused { code: u64 },
    #[error("the peer answered with an error: {0}")]
    Remote(String),
}

/// Errors of fedchain-net.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no consortium CA in {dir} (run `ca init` first)")]
    CaMissing { dir: PathBuf },
    #[error("a consortium CA already exists in {dir}")]
    CaExists { dir: PathBuf },
    #[error("corrupt CA state in {path}: {reason}")]
    CaCorrupt { path: PathBuf, reason: String },
    #[error("no participant named {name:?} was issued by this CA")]
    UnknownName { name: String },
    #[error("a participant named {name:?} was already issued")]
    DuplicateName { name: String },
    #[error("participant {name:?} is already revoked")]
    AlreadyRevoked { name: String },
    #[error("invalid participant name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("bundle {path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
    #[error("invalid keygen request: {0}")]
    Keygen(String),
    #[error("key request {path}: {reason}")]
    Request { path: PathBuf, reason: String },
    #[error("certificate signing request of {name:?} refused: {reason}")]
    Csr { name: String, reason: String },
    #[error("the BLS proof of possession of {name:?} does not verify (the request was not made with this BLS key, or was altered)")]
    ProofOfPossession { name: String },
    #[error("a participant with this {kind} key was already issued (as {name:?})")]
    DuplicateKey { kind: &'static str, name: String },
    #[error("certificate {path} does not verify against the CA: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("the certificate in {cert_dir} was not issued for the keys in {key_dir}: {reason}")]
    NotOurCertificate {
        key_dir: PathBuf,
        cert_dir: PathBuf,
        reason: String,
    },
    #[error("key share {path} is sealed to another holder's X25519 key ({found}, this holder's is {expected})")]
    ShareWrongRecipient {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("key share {path} was altered or is not a sealed share: {reason}")]
    ShareTampered { path: PathBuf, reason: String },
    #[error("key share {path} belongs to another key or holder: {reason}")]
    ShareOtherKey { path: PathBuf, reason: String },
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
    #[error(transparent)]
    Crypto(#[from] fedchain_crypto::CryptoError),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("certificate does not carry a fedchain identity: {0}")]
    Identity(String),
    #[error("peer {name:?} (address {address}) is not registered on chain with this key and role")]
    NotRegistered { name: String, address: String },
    /// A refusal that retrying cannot cure (`transport::permanent_refusal`).
    #[error("{remote} refuses this participant for good: {reason}")]
    PeerRefused { remote: SocketAddr, reason: String },
    #[error("handshake with {remote} refused or failed: {reason}")]
    Handshake { remote: SocketAddr, reason: String },
    #[error(
        "handshake from {remote} refused: {limit} handshakes already in flight from its address"
    )]
    HandshakesFromAddress { remote: SocketAddr, limit: usize },
    #[error("handshake from {remote} refused: {limit} handshakes already in flight")]
    HandshakesBusy { remote: SocketAddr, limit: usize },
    #[error("connection of {name:?} refused: it already has {limit} connections")]
    TooManyConnections { name: String, limit: usize },
    #[error("connection of {name:?} closed: {strikes} streams refused for exceeding its limits")]
    Abusive { name: String, strikes: u32 },
    #[error("connection: {0}")]
    Connection(String),
    #[error("endpoint closed")]
    Closed,
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Result alias of fedchain-net.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> NetError {
    let path = path.into();
    move |source| NetError::Io { path, source }
}
