//! fedchain-crypto: threshold Paillier with fast fixed-base encryption, quantization and
//! packing of model updates, and BLS signing identities.
//!
//! The crate does no I/O and knows nothing of rounds or ledgers. Every value that comes from
//! outside (bytes, ciphertexts, shares, proofs) is checked and rejected with a typed
//! [`CryptoError`], never a panic.
//!
//! - [`paillier`]: keys (g = n + 1), textbook and fast encryption, CRT decryption,
//!   homomorphic add and scalar multiply, ciphertext validity;
//! - [`fast`]: the fixed-base table and the offline/online randomizer pool;
//! - [`threshold`]: trusted-dealer t-of-n keys, decryption shares with proofs, combination;
//! - [`knowledge`]: batched proofs of plaintext knowledge bound to a context;
//! - [`range`]: exact range proofs of a packed ciphertext's slots (the blame of an
//!   aggregate that does not unpack);
//! - [`packing`]: b-bit quantization and k-slot packing with checked headroom;
//! - [`vector`]: whole-update encryption, aggregation, decoding and digests;
//! - [`identity`]: BLS sign / verify / aggregate;
//! - [`codec`]: the versioned binary form.

pub mod codec;
mod error;
pub mod fast;
pub mod identity;
pub mod knowledge;
pub mod num;
pub mod packing;
pub mod paillier;
pub mod primes;
pub mod range;
pub mod threshold;
mod transcript;
pub mod vector;

pub use codec::{Decode, Encode};
pub use error::{CryptoError, Result};
pub use fast::{Encryptor, FixedBaseTable};
pub use packing::{Packer, PackingParams, Rounding};
pub use paillier::{Ciphertext, PrivateKey, PublicKey};
pub use threshold::{deal, DealtKey, KeyShare, ThresholdPublicKey, VectorDecryptionShare};
pub use transcript::Transcript;
pub use vector::{CiphertextVector, ProvenVector};

/// Re-export of the big-integer type used at the API boundary.
pub use rug::Integer;
