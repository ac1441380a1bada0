//! The crate's one error type.

/// Every failure of `fedchain-crypto`, typed so callers can tell bad input from misuse.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// A ciphertext from outside is not an element of Z*_{n^2}.
    #[error("ciphertext {index} is not in Z*_(n^2): {reason}")]
    InvalidCiphertext { index: usize, reason: &'static str },
    /// A plaintext is outside [0, n).
    #[error("plaintext {index} is outside [0, n)")]
    PlaintextOutOfRange { index: usize },
    /// Two operands were made under different keys or have different lengths.
    #[error("operands do not match: {0}")]
    Mismatch(&'static str),
    /// Key generation or dealing was asked for something impossible.
    #[error("invalid key parameters: {0}")]
    InvalidKeyParams(String),
    /// A packing configuration whose sums could overflow a slot or the plaintext.
    #[error("invalid packing configuration: {0}")]
    InvalidPacking(String),
    /// A value to quantize was NaN or infinite.
    #[error("value {index} is not finite")]
    NonFinite { index: usize },
    /// A decryption share's proof of correct decryption does not verify.
    #[error("decryption share of holder {holder} has an invalid proof")]
    InvalidShareProof { holder: u32 },
    /// A proof of plaintext knowledge does not verify (for these ciphertexts and context).
    #[error("the proof of plaintext knowledge does not verify")]
    InvalidKnowledgeProof,
    /// A slot range proof does not verify, or cannot be made for this witness.
    #[error("slot range proof: {0}")]
    InvalidRangeProof(String),
    /// A loaded key share does not produce its holder's verification key.
    #[error("key share of holder {holder} does not match its verification key")]
    ShareKeyMismatch { holder: u32 },
    /// A decryption share names a holder the key does not have.
    #[error("decryption share names unknown holder {holder} (key has {parties} holders)")]
    UnknownHolder { holder: u32, parties: u32 },
    /// Two decryption shares from the same holder were given to combine.
    #[error("holder {holder} gave more than one decryption share")]
    DuplicateShare { holder: u32 },
    /// Fewer valid shares than the threshold.
    #[error("need {needed} decryption shares, have {have}")]
    InsufficientShares { needed: u32, have: u32 },
    /// Bytes from outside could not be decoded.
    #[error("decode error in {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// A signature or public key is malformed.
    #[error("bad BLS encoding: {0}")]
    Bls(String),
    /// An aggregate signature verification was asked over repeated messages.
    #[error("aggregate verification needs distinct messages; message {index} repeats")]
    RepeatedMessage { index: usize },
}

/// Result alias of this crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
