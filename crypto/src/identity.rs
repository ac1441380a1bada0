//! Signing identities: BLS12-381 signatures (blst) for participants and validators.
//!
//! Public keys are 48-byte compressed G1 points, signatures 96-byte compressed G2 points.
//! Aggregates are verified over distinct messages only (which is what makes plain aggregation
//! safe against rogue keys); callers that sign one message with many keys, such as quorum
//! certificates, bind each signer's identity into its message.

use bls_signatures::Serialize as _;
use rand_core::{CryptoRng, RngCore};
use serde::{de::Error as _, Deserialize, Deserializer, Serialize, Serializer};

use crate::{CryptoError, Result};

/// Bytes of a compressed public key.
pub const PUBLIC_KEY_BYTES: usize = 48;
/// Bytes of a compressed signature.
pub const SIGNATURE_BYTES: usize = 96;

/// A participant's secret signing key.
#[derive(Clone)]
pub struct SigningKey(bls_signatures::PrivateKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SigningKey")
            .field(&self.verifying_key())
            .finish()
    }
}

/// A participant's public verifying key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(bls_signatures::PublicKey);

/// A signature, single or aggregate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(bls_signatures::Signature);

impl SigningKey {
    /// A fresh key from a cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut ikm = [0u8; 32];
        rng.fill_bytes(&mut ikm);
        Self::from_seed(&ikm)
    }

    /// A key derived from 32 bytes of input keying material (deterministic).
    pub fn from_seed(ikm: &[u8; 32]) -> Self {
        Self(bls_signatures::PrivateKey::new(ikm))
    }

    /// The 32-byte secret scalar.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.as_bytes()
    }

    /// Decode a secret key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        bls_signatures::PrivateKey::from_bytes(bytes)
            .map(Self)
            .map_err(|e| CryptoError::Bls(e.to_string()))
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.public_key())
    }

    /// Sign a message.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg))
    }
}

impl VerifyingKey {
    /// Compressed bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_BYTES] {
        let mut out = [0u8; PUBLIC_KEY_BYTES];
        out.copy_from_slice(&self.0.as_bytes());
        out
    }

    /// Decode (checks the point is on the curve and in the subgroup).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != PUBLIC_KEY_BYTES {
            return Err(CryptoError::Bls(format!(
                "public key of {} bytes, want {PUBLIC_KEY_BYTES}",
                bytes.len()
            )));
        }
        bls_signatures::PublicKey::from_bytes(bytes)
            .map(Self)
            .map_err(|e| CryptoError::Bls(e.to_string()))
    }

    /// Verify a single signature.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> bool {
        self.0.verify(sig.0, msg)
    }
}

impl Signature {
    /// Compressed bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BYTES] {
        let mut out = [0u8; SIGNATURE_BYTES];
        out.copy_from_slice(&self.0.as_bytes());
        out
    }

    /// Decode (checks the point).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != SIGNATURE_BYTES {
            return Err(CryptoError::Bls(format!(
                "signature of {} bytes, want {SIGNATURE_BYTES}",
                bytes.len()
            )));
        }
        bls_signatures::Signature::from_bytes(bytes)
            .map(Self)
            .map_err(|e| CryptoError::Bls(e.to_string()))
    }
}

/// Aggregate signatures into one.
pub fn aggregate(signatures: &[Signature]) -> Result<Signature> {
    let raw: Vec<_> = signatures.iter().map(|s| s.0).collect();
    bls_signatures::aggregate(&raw)
        .map(Signature)
        .map_err(|e| CryptoError::Bls(e.to_string()))
}

/// Verify an aggregate signature over distinct messages, one per key.
/// Repeated messages are an error (they would open the door to rogue-key forgeries).
pub fn verify_aggregate(
    sig: &Signature,
    messages: &[&[u8]],
    keys: &[VerifyingKey],
) -> Result<bool> {
    if messages.len() != keys.len() {
        return Err(CryptoError::Mismatch("one message per key"));
    }
    let mut seen = std::collections::HashSet::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        if !seen.insert(*m) {
            return Err(CryptoError::RepeatedMessage { index: i });
        }
    }
    if messages.is_empty() {
        return Ok(false);
    }
    let pks: Vec<_> = keys.iter().map(|k| k.0).collect();
    Ok(bls_signatures::verify_messages(&sig.0, messages, &pks))
}

macro_rules! hex_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(self.to_bytes()))
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let b = hex::decode(s).map_err(D::Error::custom)?;
                Self::from_bytes(&b).map_err(D::Error::custom)
            }
        }
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "{}({})",
                    stringify!($t),
                    hex::encode(&self.to_bytes()[..8])
                )
            }
        }
    };
}
hex_serde!(VerifyingKey);
hex_serde!(Signature);

impl Serialize for SigningKey {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for SigningKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let b = hex::decode(s).map_err(D::Error::custom)?;
        Self::from_bytes(&b).map_err(D::Error::custom)
    }
}
