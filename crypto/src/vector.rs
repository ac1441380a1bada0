//! Whole-update operations: encrypt a quantized, packed update; multiply many encrypted
//! updates; decode, validate and digest ciphertext vectors from outside.

use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, Kind, Reader};
use crate::fast::Encryptor;
use crate::knowledge::{self, KnowledgeProof};
use crate::num::{mul_mod, SecretInt};
use crate::packing::Packer;
use crate::paillier::{Ciphertext, PublicKey};
use crate::threshold::{codec_header, ThresholdPublicKey, VectorDecryptionShare, MAX_VECTOR_LEN};
use crate::{CryptoError, Result};

/// An encrypted, packed update (or aggregate): one ciphertext per plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiphertextVector(pub Vec<Ciphertext>);

impl CiphertextVector {
    /// Number of ciphertexts.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compact form: header, count, then fixed-width big-endian ciphertexts.
    pub fn to_bytes(&self, pk: &PublicKey) -> Vec<u8> {
        let w = pk.ciphertext_bytes();
        let mut out = codec_header(Kind::CiphertextVector);
        out.reserve(4 + w * self.0.len());
        codec::put_u32(&mut out, self.0.len() as u32);
        for c in &self.0 {
            pk.encode_ciphertext(c, &mut out);
        }
        out
    }

    /// Decode bytes from outside and check every element is in Z*_{n^2}.
    pub fn from_bytes(pk: &PublicKey, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "ciphertext vector");
        r.header(Kind::CiphertextVector)?;
        let w = pk.ciphertext_bytes();
        let len = r.count(MAX_VECTOR_LEN, "ciphertexts")?;
        if r.remaining() != len * w {
            return Err(r.err(format!(
                "{len} ciphertexts of {w} bytes need {} bytes, have {}",
                len * w,
                r.remaining()
            )));
        }
        let raw = (0..len).map(|_| r.fixed(w)).collect::<Result<Vec<_>>>()?;
        r.finish()?;
        let cs = raw
            .into_par_iter()
            .enumerate()
            .map(|(i, c)| {
                let ct = Ciphertext(c);
                pk.validate(&ct, i)?;
                Ok(ct)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self(cs))
    }

    /// SHA-256 of the compact form: the digest a ledger transaction carries.
    pub fn digest(&self, pk: &PublicKey) -> [u8; 32] {
        Sha256::digest(self.to_bytes(pk)).into()
    }
}

/// A submitted update: its ciphertexts and a proof that the sender knows their plaintexts and
/// randomness ([`crate::knowledge`]), bound to a context (chain, job, round, sender).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenVector {
    pub ciphertexts: CiphertextVector,
    pub proof: KnowledgeProof,
}

impl ProvenVector {
    /// Header, count, fixed-width ciphertexts, then the proof.
    pub fn to_bytes(&self, pk: &PublicKey) -> Vec<u8> {
        let w = pk.ciphertext_bytes();
        let mut out = codec_header(Kind::ProvenCiphertextVector);
        out.reserve(4 + w * self.ciphertexts.len() + 2 * w);
        codec::put_u32(&mut out, self.ciphertexts.len() as u32);
        for c in &self.ciphertexts.0 {
            pk.encode_ciphertext(c, &mut out);
        }
        self.proof.encode(pk, &mut out);
        out
    }

    /// Decode bytes from outside: every ciphertext is checked to be in Z*_{n^2}; the proof is
    /// decoded, not verified (see [`Self::verify`]).
    pub fn from_bytes(pk: &PublicKey, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "proven ciphertext vector");
        r.header(Kind::ProvenCiphertextVector)?;
        let w = pk.ciphertext_bytes();
        let len = r.count(MAX_VECTOR_LEN.min(r.remaining() / w.max(1)), "ciphertexts")?;
        let raw = (0..len).map(|_| r.fixed(w)).collect::<Result<Vec<_>>>()?;
        let proof = KnowledgeProof::decode(pk, &mut r)?;
        r.finish()?;
        let cs = raw
            .into_par_iter()
            .enumerate()
            .map(|(i, c)| {
                let ct = Ciphertext(c);
                pk.validate(&ct, i)?;
                Ok(ct)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            ciphertexts: CiphertextVector(cs),
            proof,
        })
    }

    /// Verify the proof of plaintext knowledge in `context`.
    pub fn verify(&self, pk: &PublicKey, context: &[u8]) -> Result<()> {
        knowledge::verify(pk, &self.ciphertexts.0, &self.proof, context)
    }
}

/// Scale by the sample weight, quantize, pack and encrypt an update (pooled randomizers first,
/// in parallel), and prove knowledge of its plaintexts in `context`. `samples` is the party's
/// declared sample count (1..=max_samples). `rounding` drives stochastic rounding only (public
/// by design, seeded for reproducibility); `rng` makes every secret (randomizers, the proof's
/// nonces) and must be the operating system's generator or one freshly seeded from it.
pub fn encrypt_update<Q: RngCore + ?Sized, R: RngCore + CryptoRng + ?Sized>(
    enc: &Encryptor,
    packer: &Packer,
    update: &[f32],
    samples: u64,
    context: &[u8],
    rounding: &mut Q,
    rng: &mut R,
) -> Result<ProvenVector> {
    encrypt_update_with_witness(enc, packer, update, samples, context, rounding, rng)
        .map(|(v, _)| v)
}

/// What only the sender of an encrypted update knows: its quantized values and the exponents
/// of its randomizers. Kept (in memory, wiped on drop) until the round is over, to prove the
/// slots in range if the round's aggregate does not unpack ([`crate::range`]).
pub struct UpdateWitness {
    /// The quantized values, in packing order.
    pub values: Vec<u64>,
    /// One randomizer exponent per ciphertext.
    pub exponents: Vec<SecretInt>,
}

impl std::fmt::Debug for UpdateWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpdateWitness({} values, redacted)", self.values.len())
    }
}

impl Drop for UpdateWitness {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.values);
    }
}

/// [`encrypt_update`], also returning the sender's [`UpdateWitness`].
pub fn encrypt_update_with_witness<Q: RngCore + ?Sized, R: RngCore + CryptoRng + ?Sized>(
    enc: &Encryptor,
    packer: &Packer,
    update: &[f32],
    samples: u64,
    context: &[u8],
    rounding: &mut Q,
    rng: &mut R,
) -> Result<(ProvenVector, UpdateWitness)> {
    if packer.slots() * packer.slot_bits() as usize > enc.public_key().plaintext_bits() as usize {
        return Err(CryptoError::InvalidPacking(
            "packer built for a larger key".into(),
        ));
    }
    let q = packer.quantize(update, packer.sample_factor(samples)?, rounding)?;
    let mut plaintexts = packer.pack(&q)?;
    let encrypted = enc.encrypt_all_with_witness(&plaintexts, rng)?;
    let pk = enc.public_key();
    let proof = knowledge::prove(
        pk,
        &encrypted.ciphertexts,
        &plaintexts,
        &encrypted.exponents,
        context,
        rng,
    );
    for p in &mut plaintexts {
        crate::num::scrub(p);
    }
    Ok((
        ProvenVector {
            ciphertexts: CiphertextVector(encrypted.ciphertexts),
            proof: proof?,
        },
        UpdateWitness {
            values: q,
            exponents: encrypted.exponents,
        },
    ))
}

/// Homomorphic sum of encrypted vectors of equal length (parallel over positions).
pub fn aggregate(pk: &PublicKey, vectors: &[CiphertextVector]) -> Result<CiphertextVector> {
    let first = vectors
        .first()
        .ok_or(CryptoError::Mismatch("nothing to aggregate"))?;
    let len = first.len();
    if vectors.iter().any(|v| v.len() != len) {
        return Err(CryptoError::Mismatch(
            "encrypted updates of different lengths",
        ));
    }
    let n2 = pk.n_squared();
    let out = (0..len)
        .into_par_iter()
        .map(|j| {
            let mut acc = vectors[0].0[j].0.clone();
            for v in &vectors[1..] {
                acc = mul_mod(&acc, &v.0[j].0, n2);
            }
            Ciphertext(acc)
        })
        .collect();
    Ok(CiphertextVector(out))
}

/// Combine verified decryption shares of an aggregate of the updates of parties with these
/// sample counts, unpack and return the sample-weighted average.
pub fn decrypt_average(
    tpk: &ThresholdPublicKey,
    packer: &Packer,
    aggregate: &CiphertextVector,
    shares: &[VectorDecryptionShare],
    len: usize,
    samples: &[u64],
) -> Result<Vec<f32>> {
    let plaintexts = tpk.combine(&aggregate.0, shares)?;
    let sums = packer.unpack(&plaintexts, len, samples.len() as u64)?;
    packer.weighted_average(&sums, samples)
}
