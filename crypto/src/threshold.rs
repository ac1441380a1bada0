//! Threshold Paillier (Shoup's RSA scheme carried to Paillier by Damgard-Jurik, s = 1) with a
//! trusted dealer.
//!
//! n = pq with safe primes p = 2p'+1, q = 2q'+1; m = p'q'. The dealer picks d with
//! d = 0 mod m and d = 1 mod n, and shares it with a random polynomial f of degree t-1 over
//! Z_{nm}: holder i (1-based) gets s_i = f(i). With Delta = l! (l holders):
//!
//! - verification key: v_i = v^(Delta s_i) mod n^2 for a public random square v;
//! - decryption share of c: c_i = c^(2 Delta s_i) mod n^2;
//! - combination over a set S of t holders: c' = prod c_i^(2 lambda_i) with the integer
//!   Lagrange coefficients lambda_i = Delta prod_{j in S, j != i} j / (j - i); then
//!   c' = c^(4 Delta^2 d) = 1 + n (4 Delta^2 M) and M = L(c') (4 Delta^2)^-1 mod n.
//!
//! Proof of correct decryption: holders decrypt whole vectors, so one proof covers a vector.
//! Fiat-Shamir derives 128-bit weights rho_j from the ciphertexts and shares; with
//! C = prod c_j^rho_j and D = prod c_ij^rho_j the holder proves log_{C^4}(D^2) = log_v(v_i)
//! (Chaum-Pedersen over the integers, challenge 256 bits, response z = r + e Delta s_i).
//! Squaring removes the order-2 elements of Z*_{n^2}, so a wrong share passes only with
//! probability about 2^-128.

use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use rug::Integer;
use serde::{Deserialize, Serialize};

use crate::codec::{self, Decode, Encode, Kind, Reader};
use crate::num::{self, mul_mod, public_pow, secret_pow, SecretInt};
use crate::paillier::{random_h_s, Ciphertext, PublicKey};
use crate::transcript::Transcript;
use crate::{CryptoError, Result};

/// Bits of the Fiat-Shamir challenge.
const CHALLENGE_BITS: u32 = 256;
/// Bits of the batching weights.
const WEIGHT_BITS: u32 = 128;
/// Statistical hiding margin of the proof's response.
const HIDING_BITS: u32 = 128;
/// Most holders a key may have (Delta = l! stays small and proofs fast).
pub const MAX_PARTIES: u32 = 1024;
/// Most ciphertexts in one vector decoded from outside.
pub const MAX_VECTOR_LEN: usize = 1 << 20;

/// The public side of a threshold key: the Paillier key plus what verifies shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ThresholdPublicKeyRepr", into = "ThresholdPublicKeyRepr")]
pub struct ThresholdPublicKey {
    pk: PublicKey,
    parties: u32,
    threshold: u32,
    v: Integer,
    verification_keys: Vec<Integer>,
    delta: Integer,
    combine_factor: Integer,
}

#[derive(Serialize, Deserialize)]
struct ThresholdPublicKeyRepr {
    public_key: PublicKey,
    parties: u32,
    threshold: u32,
    #[serde(with = "num::serde_hex")]
    v: Integer,
    #[serde(with = "num::serde_hex::vec")]
    verification_keys: Vec<Integer>,
}

impl From<ThresholdPublicKey> for ThresholdPublicKeyRepr {
    fn from(k: ThresholdPublicKey) -> Self {
        Self {
            public_key: k.pk,
            parties: k.parties,
            threshold: k.threshold,
            v: k.v,
            verification_keys: k.verification_keys,
        }
    }
}

impl TryFrom<ThresholdPublicKeyRepr> for ThresholdPublicKey {
    type Error = CryptoError;
    fn try_from(r: ThresholdPublicKeyRepr) -> Result<Self> {
        ThresholdPublicKey::from_parts(
            r.public_key,
            r.parties,
            r.threshold,
            r.v,
            r.verification_keys,
        )
    }
}

fn factorial(l: u32) -> Integer {
    Integer::from(Integer::factorial(l))
}

fn check_counts(parties: u32, threshold: u32) -> Result<()> {
    if parties == 0 || parties > MAX_PARTIES {
        return Err(CryptoError::InvalidKeyParams(format!(
            "holders must be in 1..={MAX_PARTIES}, got {parties}"
        )));
    }
    if threshold == 0 || threshold > parties {
        return Err(CryptoError::InvalidKeyParams(format!(
            "threshold must be in 1..={parties}, got {threshold}"
        )));
    }
    Ok(())
}

impl ThresholdPublicKey {
    /// Rebuild from parts (e.g. read from a ledger), checking shapes.
    pub fn from_parts(
        pk: PublicKey,
        parties: u32,
        threshold: u32,
        v: Integer,
        verification_keys: Vec<Integer>,
    ) -> Result<Self> {
        check_counts(parties, threshold)?;
        if verification_keys.len() != parties as usize {
            return Err(CryptoError::InvalidKeyParams(format!(
                "{} verification keys for {parties} holders",
                verification_keys.len()
            )));
        }
        let bad =
            |what: &str| CryptoError::InvalidKeyParams(format!("{what} is not a unit mod n^2"));
        pk.ciphertext(v.clone()).map_err(|_| bad("v"))?;
        for vk in &verification_keys {
            pk.ciphertext(vk.clone())
                .map_err(|_| bad("a verification key"))?;
        }
        let delta = factorial(parties);
        let four_delta2 = Integer::from(delta.square_ref()) * 4u32;
        let combine_factor = four_delta2
            .invert(pk.n())
            .map_err(|_| CryptoError::InvalidKeyParams("4 Delta^2 not invertible mod n".into()))?;
        Ok(Self {
            pk,
            parties,
            threshold,
            v,
            verification_keys,
            delta,
            combine_factor,
        })
    }

    /// The Paillier public key that encrypts for this group.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// Number of key holders l.
    pub fn parties(&self) -> u32 {
        self.parties
    }

    /// Shares needed to decrypt t.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// Verification key of holder `holder` (1-based).
    pub fn verification_key(&self, holder: u32) -> Result<&Integer> {
        holder
            .checked_sub(1)
            .and_then(|i| self.verification_keys.get(i as usize))
            .ok_or(CryptoError::UnknownHolder {
                holder,
                parties: self.parties,
            })
    }

    fn proof_randomness_bits(&self) -> u32 {
        2 * self.pk.bits() + self.delta.significant_bits() + CHALLENGE_BITS + HIDING_BITS
    }

    /// Fiat-Shamir: the batching weights and the transcript state after absorbing the statement.
    fn statement(
        &self,
        holder: u32,
        ciphertexts: &[Ciphertext],
        shares: &[Integer],
    ) -> (Transcript, Vec<Integer>) {
        let mut t = Transcript::new("fedchain/threshold-paillier/decryption-share/v1");
        t.append(b"key", &self.pk.fingerprint());
        t.append_int(b"v", &self.v);
        t.append_u64(b"holder", holder as u64);
        t.append_u64(b"len", ciphertexts.len() as u64);
        let width = self.pk.ciphertext_bytes();
        let mut buf = Vec::with_capacity(width * 2 * ciphertexts.len());
        for (c, s) in ciphertexts.iter().zip(shares) {
            codec::put_fixed(&mut buf, &c.0, width);
            codec::put_fixed(&mut buf, s, width);
        }
        t.append(b"ciphertexts-and-shares", &buf);
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

    /// prod base_j^w_j mod n^2 (public, non-negative exponents): one multi-exponentiation.
    fn weighted_product(&self, bases: &[Integer], weights: &[Integer]) -> Option<Integer> {
        num::multi_pow(bases, weights, self.pk.n_squared())
    }

    /// Verify a holder's vector decryption share against the ciphertexts it claims to decrypt.
    pub fn verify_share(
        &self,
        ciphertexts: &[Ciphertext],
        share: &VectorDecryptionShare,
    ) -> Result<()> {
        let holder = share.holder;
        let vk = self.verification_key(holder)?;
        let invalid = CryptoError::InvalidShareProof { holder };
        if share.values.len() != ciphertexts.len() || ciphertexts.is_empty() {
            return Err(invalid);
        }
        for (i, c) in ciphertexts.iter().enumerate() {
            self.pk.validate(c, i)?;
        }
        for s in &share.values {
            if self.pk.ciphertext(s.clone()).is_err() {
                return Err(invalid);
            }
        }
        let (mut t, weights) = self.statement(holder, ciphertexts, &share.values);
        let cs: Vec<Integer> = ciphertexts.iter().map(|c| c.0.clone()).collect();
        let n2 = self.pk.n_squared();
        let c_agg = self
            .weighted_product(&cs, &weights)
            .ok_or(invalid.clone())?;
        let d_agg = self
            .weighted_product(&share.values, &weights)
            .ok_or(invalid.clone())?;
        let u = public_pow(&c_agg, &Integer::from(4), n2).ok_or(invalid.clone())?;
        let big_u = mul_mod(&d_agg, &d_agg, n2);
        let ShareProof { e, z } = &share.proof;
        if e.significant_bits() > CHALLENGE_BITS
            || *z < 0
            || z.significant_bits() > self.proof_randomness_bits() + 1
        {
            return Err(invalid);
        }
        let neg_e = Integer::from(-e);
        // a = u^z U^-e, b = v^z v_i^-e
        let a = mul_mod(
            &public_pow(&u, z, n2).ok_or(invalid.clone())?,
            &public_pow(&big_u, &neg_e, n2).ok_or(invalid.clone())?,
            n2,
        );
        let b = mul_mod(
            &public_pow(&self.v, z, n2).ok_or(invalid.clone())?,
            &public_pow(vk, &neg_e, n2).ok_or(invalid.clone())?,
            n2,
        );
        let expected = challenge(&mut t, vk, &u, &big_u, &a, &b);
        if expected == *e {
            Ok(())
        } else {
            Err(invalid)
        }
    }

    /// Verify every share, then combine the first `threshold` of them into plaintexts.
    /// An invalid share is an error naming its holder; so are duplicates and unknown holders.
    pub fn combine(
        &self,
        ciphertexts: &[Ciphertext],
        shares: &[VectorDecryptionShare],
    ) -> Result<Vec<Integer>> {
        let mut seen = std::collections::BTreeSet::new();
        for s in shares {
            self.verification_key(s.holder)?;
            if !seen.insert(s.holder) {
                return Err(CryptoError::DuplicateShare { holder: s.holder });
            }
        }
        if (shares.len() as u32) < self.threshold {
            return Err(CryptoError::InsufficientShares {
                needed: self.threshold,
                have: shares.len() as u32,
            });
        }
        let used = &shares[..self.threshold as usize];
        used.par_iter()
            .try_for_each(|s| self.verify_share(ciphertexts, s))?;
        self.interpolate_unchecked(used)
    }

    /// Combine shares without checking proofs, count or duplicates. Only for shares already
    /// verified by [`Self::verify_share`], or for tests that show fewer than t shares fail.
    #[doc(hidden)]
    pub fn interpolate_unchecked(&self, shares: &[VectorDecryptionShare]) -> Result<Vec<Integer>> {
        let len = shares.first().map(|s| s.values.len()).unwrap_or(0);
        if shares.iter().any(|s| s.values.len() != len) {
            return Err(CryptoError::Mismatch("shares of different lengths"));
        }
        let holders: Vec<i64> = shares.iter().map(|s| s.holder as i64).collect();
        // exponents 2 lambda_i
        let exps: Vec<Integer> = holders
            .iter()
            .map(|&i| {
                let mut num = Integer::from(&self.delta * 2u32);
                let mut den = Integer::from(1);
                for &j in &holders {
                    if j != i {
                        num *= j;
                        den *= j - i;
                    }
                }
                num.div_exact(&den)
            })
            .collect();
        let n = self.pk.n();
        let n2 = self.pk.n_squared();
        (0..len)
            .into_par_iter()
            .map(|k| {
                let mut acc = Integer::from(1);
                for (s, e) in shares.iter().zip(&exps) {
                    let p = public_pow(&s.values[k], e, n2)
                        .ok_or(CryptoError::InvalidShareProof { holder: s.holder })?;
                    acc = mul_mod(&acc, &p, n2);
                }
                let m = num::l_function(&acc, n);
                Ok(mul_mod(&m.modulo(n), &self.combine_factor, n))
            })
            .collect()
    }
}

fn challenge(
    t: &mut Transcript,
    vk: &Integer,
    u: &Integer,
    big_u: &Integer,
    a: &Integer,
    b: &Integer,
) -> Integer {
    t.append_int(b"vk", vk);
    t.append_int(b"u", u);
    t.append_int(b"U", big_u);
    t.append_int(b"a", a);
    t.append_int(b"b", b);
    t.challenge(b"e", CHALLENGE_BITS)
}

/// A proof of correct decryption: Fiat-Shamir challenge and response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareProof {
    #[serde(with = "num::serde_hex")]
    pub e: Integer,
    #[serde(with = "num::serde_hex")]
    pub z: Integer,
}

/// One holder's decryption shares of a vector of ciphertexts, with one proof for all of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorDecryptionShare {
    /// The holder's 1-based index.
    pub holder: u32,
    /// c_j^(2 Delta s_i) mod n^2 for each ciphertext c_j.
    #[serde(with = "num::serde_hex::vec")]
    pub values: Vec<Integer>,
    /// Proof that every value used the holder's key share.
    pub proof: ShareProof,
}

/// One holder's secret key share. Serialized alone so a hospital receives only its own.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyShare {
    holder: u32,
    parties: u32,
    threshold: u32,
    key_fingerprint: [u8; 32],
    #[serde(with = "num::serde_hex")]
    secret: Integer,
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare")
            .field("holder", &self.holder)
            .field("parties", &self.parties)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        num::scrub(&mut self.secret);
    }
}

impl KeyShare {
    /// The holder's 1-based index.
    pub fn holder(&self) -> u32 {
        self.holder
    }

    /// Check that this share belongs to `tpk` and is the secret behind its holder's
    /// verification key (`v^(Delta s_i) = v_i`: one exponentiation; run it when a share is
    /// loaded, before it is used).
    pub fn check_key(&self, tpk: &ThresholdPublicKey) -> Result<()> {
        self.check_key_shape(tpk)?;
        let vk = tpk.verification_key(self.holder)?;
        let x = SecretInt(Integer::from(&tpk.delta * &self.secret));
        if secret_pow(&tpk.v, &x.0, tpk.pk.n_squared()) != *vk {
            return Err(CryptoError::ShareKeyMismatch {
                holder: self.holder,
            });
        }
        Ok(())
    }

    /// The cheap part of [`Self::check_key`]: key fingerprint, counts and holder index.
    fn check_key_shape(&self, tpk: &ThresholdPublicKey) -> Result<()> {
        if self.key_fingerprint != tpk.pk.fingerprint()
            || self.parties != tpk.parties
            || self.threshold != tpk.threshold
        {
            return Err(CryptoError::Mismatch("key share belongs to another key"));
        }
        tpk.verification_key(self.holder).map(|_| ())
    }

    /// Decrypt-share a vector of ciphertexts with one proof; ciphertexts are checked first.
    pub fn decrypt_share<R: RngCore + CryptoRng + ?Sized>(
        &self,
        tpk: &ThresholdPublicKey,
        ciphertexts: &[Ciphertext],
        rng: &mut R,
    ) -> Result<VectorDecryptionShare> {
        self.check_key_shape(tpk)?;
        if ciphertexts.is_empty() {
            return Err(CryptoError::Mismatch("no ciphertexts to decrypt"));
        }
        for (i, c) in ciphertexts.iter().enumerate() {
            tpk.pk.validate(c, i)?;
        }
        let n2 = tpk.pk.n_squared();
        let x = SecretInt(Integer::from(&tpk.delta * &self.secret));
        let two_x = SecretInt(Integer::from(&x.0 * 2u32));
        let values: Vec<Integer> = ciphertexts
            .par_iter()
            .map(|c| secret_pow(&c.0, &two_x.0, n2))
            .collect();
        let (mut t, weights) = tpk.statement(self.holder, ciphertexts, &values);
        let cs: Vec<Integer> = ciphertexts.iter().map(|c| c.0.clone()).collect();
        let err = CryptoError::Mismatch("ciphertext not invertible");
        let c_agg = tpk.weighted_product(&cs, &weights).ok_or(err.clone())?;
        let d_agg = tpk.weighted_product(&values, &weights).ok_or(err)?;
        let u = secret_pow(&c_agg, &Integer::from(4), n2);
        let big_u = mul_mod(&d_agg, &d_agg, n2);
        let r = SecretInt(num::random_bits(tpk.proof_randomness_bits(), rng));
        let a = secret_pow(&u, &r.0, n2);
        let b = secret_pow(&tpk.v, &r.0, n2);
        let vk = tpk.verification_key(self.holder)?;
        let e = challenge(&mut t, vk, &u, &big_u, &a, &b);
        let z = &r.0 + Integer::from(&e * &x.0);
        Ok(VectorDecryptionShare {
            holder: self.holder,
            values,
            proof: ShareProof { e, z },
        })
    }
}

/// The dealer's output: the public key and one share per holder.
#[derive(Debug)]
pub struct DealtKey {
    pub public: ThresholdPublicKey,
    pub shares: Vec<KeyShare>,
}

/// Deal a threshold key from two safe primes (trusted dealer).
pub fn deal<R: RngCore + CryptoRng + ?Sized>(
    p: &Integer,
    q: &Integer,
    parties: u32,
    threshold: u32,
    rng: &mut R,
) -> Result<DealtKey> {
    check_counts(parties, threshold)?;
    if !crate::primes::is_safe_prime(p) || !crate::primes::is_safe_prime(q) || p == q {
        return Err(CryptoError::InvalidKeyParams(
            "p and q must be distinct safe primes".into(),
        ));
    }
    let n = Integer::from(p * q);
    let n2 = Integer::from(n.square_ref());
    let pp = Integer::from(p - 1u32) / 2u32;
    let qq = Integer::from(q - 1u32) / 2u32;
    if pp <= parties || qq <= parties {
        return Err(CryptoError::InvalidKeyParams(
            "primes too small for this many holders".into(),
        ));
    }
    let m = Integer::from(&pp * &qq);
    let nm = Integer::from(&n * &m);
    // d = 0 mod m, d = 1 mod n
    let m_inv = m
        .clone()
        .invert(&n)
        .map_err(|_| CryptoError::InvalidKeyParams("m not invertible mod n".into()))?;
    let d = Integer::from(&m * &m_inv);
    let coeffs: Vec<Integer> = std::iter::once(d)
        .chain((1..threshold).map(|_| num::random_below(&nm, rng)))
        .collect();
    let delta = factorial(parties);
    let h_s = random_h_s(&n, &n2, rng);
    let pk = PublicKey::from_parts(n.clone(), h_s)?;
    let r = num::random_unit(&n2, rng);
    let v = mul_mod(&r, &r, &n2);
    let secrets: Vec<Integer> = (1..=parties)
        .map(|i| {
            // Horner evaluation of f(i) mod nm
            let mut acc = Integer::new();
            for c in coeffs.iter().rev() {
                acc *= i;
                acc += c;
                acc = acc.modulo(&nm);
            }
            acc
        })
        .collect();
    let verification_keys: Vec<Integer> = secrets
        .par_iter()
        .map(|s| secret_pow(&v, &Integer::from(&delta * s), &n2))
        .collect();
    let public = ThresholdPublicKey::from_parts(pk, parties, threshold, v, verification_keys)?;
    let fp = public.pk.fingerprint();
    let shares = secrets
        .into_iter()
        .enumerate()
        .map(|(i, secret)| KeyShare {
            holder: i as u32 + 1,
            parties,
            threshold,
            key_fingerprint: fp,
            secret,
        })
        .collect();
    Ok(DealtKey { public, shares })
}

impl Encode for ThresholdPublicKey {
    const KIND: Kind = Kind::ThresholdPublicKey;
    fn encode_body(&self, out: &mut Vec<u8>) {
        self.pk.encode_body(out);
        codec::put_u32(out, self.parties);
        codec::put_u32(out, self.threshold);
        let w = self.pk.ciphertext_bytes();
        codec::put_fixed(out, &self.v, w);
        for vk in &self.verification_keys {
            codec::put_fixed(out, vk, w);
        }
    }
}

impl Decode for ThresholdPublicKey {
    fn decode_body(r: &mut Reader<'_>) -> Result<Self> {
        let pk = PublicKey::decode_body(r)?;
        let parties = r.u32()?;
        let threshold = r.u32()?;
        check_counts(parties, threshold).map_err(|e| r.err(e.to_string()))?;
        let w = pk.ciphertext_bytes();
        let v = r.fixed(w)?;
        let vks = (0..parties)
            .map(|_| r.fixed(w))
            .collect::<Result<Vec<_>>>()?;
        ThresholdPublicKey::from_parts(pk, parties, threshold, v, vks)
            .map_err(|e| r.err(e.to_string()))
    }
}

impl Encode for KeyShare {
    const KIND: Kind = Kind::KeyShare;
    fn encode_body(&self, out: &mut Vec<u8>) {
        codec::put_u32(out, self.holder);
        codec::put_u32(out, self.parties);
        codec::put_u32(out, self.threshold);
        out.extend_from_slice(&self.key_fingerprint);
        codec::put_int(out, &self.secret);
    }
}

impl Decode for KeyShare {
    fn decode_body(r: &mut Reader<'_>) -> Result<Self> {
        let holder = r.u32()?;
        let parties = r.u32()?;
        let threshold = r.u32()?;
        check_counts(parties, threshold).map_err(|e| r.err(e.to_string()))?;
        if holder == 0 || holder > parties {
            return Err(r.err(format!("holder {holder} outside 1..={parties}")));
        }
        let mut key_fingerprint = [0u8; 32];
        key_fingerprint.copy_from_slice(r.take(32)?);
        let secret = r.int()?;
        Ok(Self {
            holder,
            parties,
            threshold,
            key_fingerprint,
            secret,
        })
    }
}

impl VectorDecryptionShare {
    /// Encode at the key's fixed ciphertext width.
    pub fn to_bytes(&self, pk: &PublicKey) -> Vec<u8> {
        let mut out = codec_header(Kind::VectorDecryptionShare);
        let w = pk.ciphertext_bytes();
        codec::put_u32(&mut out, self.holder);
        codec::put_u32(&mut out, self.values.len() as u32);
        for v in &self.values {
            codec::put_fixed(&mut out, v, w);
        }
        codec::put_fixed(&mut out, &self.proof.e, (CHALLENGE_BITS / 8) as usize);
        codec::put_int(&mut out, &self.proof.z);
        out
    }

    /// Decode bytes from outside for key `pk` (proof not yet verified).
    pub fn from_bytes(pk: &PublicKey, bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "vector decryption share");
        r.header(Kind::VectorDecryptionShare)?;
        let w = pk.ciphertext_bytes();
        let holder = r.u32()?;
        let len = r.count(MAX_VECTOR_LEN.min(r.remaining() / w.max(1)), "shares")?;
        let values = (0..len).map(|_| r.fixed(w)).collect::<Result<Vec<_>>>()?;
        let e = r.fixed((CHALLENGE_BITS / 8) as usize)?;
        let z = r.int()?;
        r.finish()?;
        Ok(Self {
            holder,
            values,
            proof: ShareProof { e, z },
        })
    }
}

pub(crate) fn codec_header(kind: Kind) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&codec::MAGIC);
    out.push(codec::FORMAT_VERSION);
    out.push(kind as u8);
    out
}
