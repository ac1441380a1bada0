//! The validators' keys and certificates in commonware's types.
//!
//! A validator's consensus key is the BLS12-381 key it generated itself with `fedchain keys
//! new` and had certified by the consortium CA with a proof of possession (the key the genesis
//! lists). The same key is its identity on the validators' authenticated p2p network and its
//! signing key in `bls12381_multisig` (min-pk: 48-byte public keys in G1, signatures in G2),
//! so the certificate of a block names validators of the genesis set and nothing else. Both
//! libraries use blst and the same compressed points; the scalar is little-endian in
//! bls-signatures and big-endian in commonware. The conversion is checked by deriving the
//! public key on both sides.

use std::sync::Mutex;

use commonware_codec::{Copying, Decode, DecodeExt, Encode};
use commonware_consensus::simplex::scheme::bls12381_multisig;
use commonware_consensus::simplex::types::Finalization;
use commonware_cryptography::bls12381::primitives::group::Private;
use commonware_cryptography::bls12381::primitives::variant::{MinPk, Variant};
use commonware_cryptography::bls12381::{PrivateKey, PublicKey};
use commonware_cryptography::certificate::Verifier as _;
use commonware_cryptography::{sha256, Signer as _};
use commonware_parallel::Sequential;
use commonware_utils::ordered::BiMap;
use fedchain_crypto::identity::{SigningKey, VerifyingKey};
use fedchain_ledger::{Finality, Hash};

/// The consensus signing scheme: attributable BLS multisignatures, identities = BLS keys.
pub type Scheme = bls12381_multisig::Scheme<PublicKey, MinPk>;
/// Block digests (our header hashes, SHA-256).
pub type Digest = sha256::Digest;
/// A finalization certificate of one block.
pub type Final = Finalization<Scheme, Digest>;

/// Key conversion failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("validator key does not decode as a BLS12-381 key: {0}")]
    Decode(String),
    #[error("the converted key derives another public key")]
    Mismatch,
    #[error("the genesis lists a validator twice")]
    Duplicate,
    #[error("this key is not one of the genesis validators")]
    NotAValidator,
}

/// The domain of every consensus signature of one chain.
pub fn namespace(chain_id: &str) -> Vec<u8> {
    format!("fedchain/simplex/v1/{chain_id}").into_bytes()
}

pub fn digest(h: &Hash) -> Digest {
    sha256::Digest(h.0)
}

pub fn hash(d: &Digest) -> Hash {
    Hash(d.0)
}

/// A genesis validator key as a commonware public key.
pub fn public_key(k: &VerifyingKey) -> Result<PublicKey, KeyError> {
    PublicKey::decode(Copying(&k.to_bytes()[..])).map_err(|e| KeyError::Decode(e.to_string()))
}

/// A validator's own key as commonware's identity key and multisig signing scalar.
pub fn private_key(k: &SigningKey) -> Result<(PrivateKey, Private), KeyError> {
    // bls-signatures writes the scalar little-endian, commonware reads it big-endian
    let mut raw = zeroize::Zeroizing::new(k.to_bytes());
    raw.reverse();
    let identity =
        PrivateKey::decode(Copying(&raw[..])).map_err(|e| KeyError::Decode(e.to_string()))?;
    let scalar = Private::decode(Copying(&raw[..])).map_err(|e| KeyError::Decode(e.to_string()))?;
    if identity.public_key() != public_key(&k.verifying_key())? {
        return Err(KeyError::Mismatch);
    }
    Ok((identity, scalar))
}

/// The participant map of a validator set (identity key to BLS key: the same key here).
pub fn participants(
    validators: &[VerifyingKey],
) -> Result<BiMap<PublicKey, <MinPk as Variant>::Public>, KeyError> {
    let pairs = validators
        .iter()
        .map(|v| {
            let pk = public_key(v)?;
            let g1 = *pk.as_ref();
            Ok((pk, g1))
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    BiMap::try_from(pairs).map_err(|_| KeyError::Duplicate)
}

/// The scheme a validator signs with.
pub fn signer(
    chain_id: &str,
    validators: &[VerifyingKey],
    key: &SigningKey,
) -> Result<Scheme, KeyError> {
    let (_, scalar) = private_key(key)?;
    Scheme::signer(&namespace(chain_id), participants(validators)?, scalar)
        .ok_or(KeyError::NotAValidator)
}

/// The scheme anyone verifies certificates with.
pub fn verifier(chain_id: &str, validators: &[VerifyingKey]) -> Result<Scheme, KeyError> {
    Ok(Scheme::verifier(
        &namespace(chain_id),
        participants(validators)?,
    ))
}

/// Decode a finalization as stored in a block (bounded by the validator set's size).
pub fn decode_final(scheme: &Scheme, bytes: &[u8]) -> Result<Final, String> {
    let cfg = scheme.certificate_codec_config();
    Final::decode_cfg(Copying(bytes), &cfg).map_err(|e| e.to_string())
}

pub fn encode_final(f: &Final) -> Vec<u8> {
    f.encode().to_vec()
}

/// The ledger's check of simplex finalizations: the block's header hash is the finalized
/// payload and more than 2/3 of the genesis validators signed it (one aggregated signature,
/// checked against the aggregate of the signers' keys).
#[derive(Debug, Default)]
pub struct SimplexFinality {
    /// The verifier of the last validator set seen (an audit checks one set many times).
    cache: Mutex<Option<(String, Vec<VerifyingKey>, Scheme)>>,
}

impl SimplexFinality {
    pub fn new() -> Self {
        Self::default()
    }

    fn scheme(&self, chain_id: &str, validators: &[VerifyingKey]) -> Result<Scheme, String> {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((id, vs, s)) = c.as_ref() {
            if id == chain_id && vs == validators {
                return Ok(s.clone());
            }
        }
        let s = verifier(chain_id, validators).map_err(|e| e.to_string())?;
        *c = Some((chain_id.to_string(), validators.to_vec(), s.clone()));
        Ok(s)
    }
}

impl Finality for SimplexFinality {
    fn verify(
        &self,
        chain_id: &str,
        validators: &[VerifyingKey],
        header_hash: &Hash,
        finalization: &[u8],
    ) -> Result<(), String> {
        let scheme = self.scheme(chain_id, validators)?;
        let f = decode_final(&scheme, finalization)?;
        if f.proposal.payload != digest(header_hash) {
            return Err("the finalization is for another block".into());
        }
        let mut rng: rand010::rngs::StdRng = rand010::make_rng();
        if !f.verify(&mut rng, &scheme, &Sequential) {
            return Err("the finalization's aggregate signature does not verify".into());
        }
        Ok(())
    }
}
