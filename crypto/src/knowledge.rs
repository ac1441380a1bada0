//! Proof of plaintext knowledge for a vector of fast-path Paillier ciphertexts.
//!
//! Statement: ciphertexts `c_1..c_L` under `pk` and a caller-given context (fedchain binds the
//! chain id, job, round and sender address). Witness: plaintexts `m_j` in `[0, n)` and short
//! exponents `a_j` with `c_j = (1 + m_j n) h_s^(a_j) mod n^2`.
//!
//! One sigma protocol proves the whole vector (the batching of the decryption-share proofs):
//! Fiat-Shamir derives 128-bit weights `rho_j` from the statement, and the prover shows it
//! knows `M = sum rho_j m_j` and `A = sum rho_j a_j` with `C = prod c_j^rho_j = (1 + M n) h_s^A`:
//!
//! - commitment `R = (1 + r_m n) h_s^(r_a)` with `r_m` uniform mod n and `r_a` of
//!   `bits(A) + 256 + 128` bits (statistical hiding of `e A`);
//! - challenge `e` (256 bits) = H(statement, R);
//! - responses `z_m = r_m + e M mod n`, `z_a = r_a + e A` over the integers;
//! - the verifier recomputes `R = (1 + z_m n) h_s^(z_a) C^(-e)` and checks the challenge.
//!
//! Soundness: from two answers to one commitment, `C^(e - e') = (1 + (z_m - z_m') n) *
//! h_s^(z_a - z_a')`. `h_s` is an n-th power and `gcd(e - e', n) = 1` (the challenge is shorter
//! than either prime), so `C` is an encryption of `(z_m - z_m') / (e - e') mod n` with an
//! extractable n-th-root randomizer: whoever answers two challenges knows the plaintext of C,
//! and, over the random weights, of every `c_j`. A copy of someone else's ciphertexts (even
//! re-randomised) cannot be proven without their plaintexts, and a proof does not transfer to
//! another context (sender, round) because the context is in the challenge.
//!
//! Cost: the prover does one exponentiation (it knows the witness; it never forms C); the
//! verifier one multi-exponentiation of the L ciphertexts with 128-bit weights plus two single
//! exponentiations.

use rand_core::{CryptoRng, RngCore};
use rug::Integer;

use crate::codec;
use crate::num::{self, mul_mod, public_pow, random_below, random_bits, secret_pow, SecretInt};
use crate::paillier::{Ciphertext, PublicKey};
use crate::transcript::Transcript;
use crate::{CryptoError, Result};

/// Bits of the Fiat-Shamir challenge.
pub const CHALLENGE_BITS: u32 = 256;
/// Bits of the batching weights.
const WEIGHT_BITS: u32 = 128;
/// Statistical hiding margin of `z_a`.
const HIDING_BITS: u32 = 128;
/// Bits reserved for the number of ciphertexts in the bound on `A` (vectors hold at most
/// 2^20 ciphertexts).
const COUNT_BITS: u32 = 21;

/// A non-interactive proof that the sender knows the plaintexts and randomness of a vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnowledgeProof {
    pub e: Integer,
    pub z_m: Integer,
    pub z_a: Integer,
}

/// Bits of the commitment's randomness `r_a` (and bound on the response `z_a`).
fn mask_bits(pk: &PublicKey) -> u32 {
    pk.short_exponent_bits() + WEIGHT_BITS + COUNT_BITS + CHALLENGE_BITS + HIDING_BITS
}

/// The transcript after absorbing the statement, and the batching weights.
fn statement(
    pk: &PublicKey,
    ciphertexts: &[Ciphertext],
    context: &[u8],
) -> (Transcript, Vec<Integer>) {
    let mut t = Transcript::new("fedchain/paillier/plaintext-knowledge/v1");
    t.append(b"key", &pk.fingerprint());
    t.append(b"context", context);
    t.append_u64(b"len", ciphertexts.len() as u64);
    let width = pk.ciphertext_bytes();
    let mut buf = Vec::with_capacity(width * ciphertexts.len());
    for c in ciphertexts {
        codec::put_fixed(&mut buf, &c.0, width);
    }
    t.append(b"ciphertexts", &buf);
    let weights = if ciphertexts.len() == 1 {
        vec![Integer::from(1)]
    } else {
        let mut wt = t.clone();
        (0..ciphertexts.len())
            .map(|_| wt.challenge(b"weight", WEIGHT_BITS))
            .collect()
    };
    (t, weights)
}

fn challenge(t: &mut Transcript, r: &Integer) -> Integer {
    t.append_int(b"R", r);
    t.challenge(b"e", CHALLENGE_BITS)
}

/// Prove knowledge of `plaintexts` and `exponents` behind `ciphertexts` (as made by
/// [`crate::fast::Encryptor::encrypt_all_with_witness`]) in `context`. `rng` must be the
/// operating system's generator or one freshly seeded from it.
pub fn prove<R: RngCore + CryptoRng + ?Sized>(
    pk: &PublicKey,
    ciphertexts: &[Ciphertext],
    plaintexts: &[Integer],
    exponents: &[SecretInt],
    context: &[u8],
    rng: &mut R,
) -> Result<KnowledgeProof> {
    if ciphertexts.is_empty()
        || plaintexts.len() != ciphertexts.len()
        || exponents.len() != ciphertexts.len()
    {
        return Err(CryptoError::Mismatch(
            "a knowledge proof needs one plaintext and exponent per ciphertext",
        ));
    }
    let (mut t, weights) = statement(pk, ciphertexts, context);
    let n = pk.n();
    let mut big_m = SecretInt::default();
    let mut big_a = SecretInt::default();
    for ((w, m), a) in weights.iter().zip(plaintexts).zip(exponents) {
        big_m.0 += Integer::from(w * m);
        big_a.0 += Integer::from(w * &a.0);
    }
    big_m.0 %= n;
    let r_m = SecretInt(random_below(n, rng));
    let r_a = SecretInt(random_bits(mask_bits(pk), rng));
    let commitment = mul_mod(
        &pk.g_pow(&r_m.0),
        &secret_pow(pk.h_s(), &r_a.0, pk.n_squared()),
        pk.n_squared(),
    );
    let e = challenge(&mut t, &commitment);
    let mut z_m = Integer::from(&e * &big_m.0);
    z_m += &r_m.0;
    z_m %= n;
    let mut z_a = Integer::from(&e * &big_a.0);
    z_a += &r_a.0;
    Ok(KnowledgeProof { e, z_m, z_a })
}

/// Verify a proof of plaintext knowledge for `ciphertexts` (each checked to be in Z*_{n^2})
/// in `context`.
pub fn verify(
    pk: &PublicKey,
    ciphertexts: &[Ciphertext],
    proof: &KnowledgeProof,
    context: &[u8],
) -> Result<()> {
    let invalid = CryptoError::InvalidKnowledgeProof;
    if ciphertexts.is_empty() {
        return Err(invalid);
    }
    for (i, c) in ciphertexts.iter().enumerate() {
        pk.validate(c, i)?;
    }
    let KnowledgeProof { e, z_m, z_a } = proof;
    if *e < 0
        || e.significant_bits() > CHALLENGE_BITS
        || *z_m < 0
        || z_m >= pk.n()
        || *z_a < 0
        || z_a.significant_bits() > mask_bits(pk) + 1
    {
        return Err(invalid);
    }
    let (mut t, weights) = statement(pk, ciphertexts, context);
    let n2 = pk.n_squared();
    let bases: Vec<Integer> = ciphertexts.iter().map(|c| c.0.clone()).collect();
    let c = num::multi_pow(&bases, &weights, n2).ok_or(invalid.clone())?;
    let c_neg_e = public_pow(&c, &Integer::from(-e), n2).ok_or(invalid.clone())?;
    let h = public_pow(pk.h_s(), z_a, n2).ok_or(invalid.clone())?;
    let commitment = mul_mod(&mul_mod(&pk.g_pow(z_m), &h, n2), &c_neg_e, n2);
    if challenge(&mut t, &commitment) == *e {
        Ok(())
    } else {
        Err(invalid)
    }
}

impl KnowledgeProof {
    /// Append the proof: e (32 bytes), z_m (at the width of n), z_a (length-prefixed).
    pub fn encode(&self, pk: &PublicKey, out: &mut Vec<u8>) {
        codec::put_fixed(out, &self.e, (CHALLENGE_BITS / 8) as usize);
        codec::put_fixed(out, &self.z_m, num::byte_width(pk.n()));
        codec::put_int(out, &self.z_a);
    }

    /// Read a proof written by [`Self::encode`] (not yet verified).
    pub fn decode(pk: &PublicKey, r: &mut codec::Reader<'_>) -> Result<Self> {
        let e = r.fixed((CHALLENGE_BITS / 8) as usize)?;
        let z_m = r.fixed(num::byte_width(pk.n()))?;
        let z_a = r.int()?;
        Ok(Self { e, z_m, z_a })
    }
}
