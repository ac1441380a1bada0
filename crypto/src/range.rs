//! Proof that every slot of a packed Paillier ciphertext is in range: the blame step of an
//! aggregate that cannot be unpacked (THREAT-MODEL A5).
//!
//! Statement: a fast-path ciphertext `c = (1 + m n) h_s^a mod n^2` under `pk`, the job's packing
//! (`b` value bits, `w`-bit slots) with `k` used slots in this plaintext, and a context (the
//! chain, job, round and sender). Claim: `m = sum_j x_j 2^(w j) mod n` with every
//! `x_j` in `[0, 2^b)` exactly, so a sum of at most `max_parties` such plaintexts always unpacks.
//!
//! Two parts, one Fiat-Shamir transcript:
//!
//! 1. **Exact ranges on Pedersen commitments** (Ristretto, `bulletproofs` 5): commitments
//!    `V_j = x_j B + g_j B'` and an aggregated Bulletproof that each opens to a value in
//!    `[0, 2^b')`, `b'` the smallest of 8, 16, 32 at least `b`; when `b < b'` a second one that
//!    `V_j + (2^b' - 2^b) B` does too, so `x_j < 2^b`. Bulletproofs have no slack: the bound is
//!    exact. (The number of commitments is padded with zeros to a power of two.)
//! 2. **A link between the commitments and the ciphertext**, a sigma protocol over the
//!    integers: the prover draws `alpha_j` of `b + 128 + 80` bits, scalars `beta_j`, and `r_a` of
//!    `|a| + 128 + 80` bits; commits `A = (1 + (sum alpha_j 2^(w j) mod n) n) h_s^(r_a)` and
//!    `C_j = alpha_j B + beta_j B'`; the challenge `e` has 128 bits; the responses are
//!    `z_j = alpha_j + e x_j` (integers, checked below `2^(b + 209)`), `t_j = beta_j + e g_j`
//!    (scalars) and `z_a = r_a + e a` (an integer). The verifier recomputes
//!    `C_j = z_j B + t_j B' - e V_j` and `A = (1 + (sum z_j 2^(w j) mod n) n) h_s^(z_a) c^(-e)`
//!    and checks the challenge.
//!
//! Soundness (why `m` is exactly the packing of in-range values): from two answers to one
//! commitment with `D = e - e'` (nonzero, below 2^128 in absolute value), the commitment
//! equations give `(z_j - z_j') B + (t_j - t_j') B' = D V_j`, so by the binding of Pedersen
//! commitments (discrete logarithms in Ristretto) `z_j - z_j' = D x_j mod l` for the value
//! `x_j` the Bulletproof bounds. Both sides are integers below `2^242` in absolute value and
//! `l > 2^252`, so the equality holds over the integers. The Paillier equation gives
//! `g^(Z - Z') h_s^(z_a - z_a') = c^D` with `Z - Z' = D sum x_j 2^(w j)`; writing
//! `c = g^m r^n` (unique in Z*_{n^2}) and comparing the `g` parts, `D m = D sum x_j 2^(w j)
//! mod n`, and `D` is invertible mod n (it is shorter than either prime factor), so
//! `m = sum x_j 2^(w j) mod n`. Zero knowledge: `alpha_j` hides `e x_j` (below `2^(b+128)`)
//! within `2^-80` statistically, `r_a` hides `e a` alike, `beta_j` is uniform, and
//! Bulletproofs are zero-knowledge; the proof reveals nothing of the update.
//!
//! Cost (measured in bench/results/crypto.json, `fedchain-bench crypto`): one Bulletproof of
//! `k` values (two when `b` is not 8, 16 or 32) and `k` Ristretto commitments per ciphertext.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use bulletproofs::{BulletproofGens, PedersenGens, RangeProof};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use rand_core::{CryptoRng, RngCore};
use rug::integer::Order;
use rug::Integer;

use crate::codec::{self, Kind, Reader};
use crate::num::{mul_mod, public_pow, random_bits, scrub, secret_pow, SecretInt};
use crate::packing::Packer;
use crate::paillier::{Ciphertext, PublicKey};
use crate::threshold::codec_header;
use crate::transcript::Transcript;
use crate::vector::{CiphertextVector, UpdateWitness};
use crate::{CryptoError, Result};

/// Bits of the link's challenge.
pub const CHALLENGE_BITS: u32 = 128;
/// Statistical hiding margin of the link's responses.
const HIDING_BITS: u32 = 80;
/// At most this many slots per ciphertext (a 2^16-slot plaintext would be a 64 Kib key).
const MAX_SLOTS: usize = 1 << 16;

/// A proof that the slots of one packed ciphertext are each below `2^value_bits`.
#[derive(Clone, Debug)]
pub struct SlotRangeProof {
    /// Pedersen commitments to the slot values, padded to a power of two.
    pub commitments: Vec<CompressedRistretto>,
    /// Aggregated Bulletproof: each commitment opens to a value below `2^b'`.
    pub range: RangeProof,
    /// When `b < b'`: each commitment plus `2^b' - 2^b` also opens below `2^b'`.
    pub shifted: Option<RangeProof>,
    /// The link's challenge.
    pub e: Integer,
    /// The link's integer responses, one per used slot.
    pub z: Vec<Integer>,
    /// The link's scalar responses, one per used slot.
    pub t: Vec<Scalar>,
    /// The link's response for the randomizer exponent.
    pub z_a: Integer,
}

/// The Bulletproof bit size for `b`-bit values.
fn proof_bits(b: u32) -> Result<usize> {
    match b {
        0..=8 => Ok(8),
        9..=16 => Ok(16),
        17..=32 => Ok(32),
        _ => Err(CryptoError::InvalidPacking(format!(
            "range proofs cover values of at most 32 bits, not {b}"
        ))),
    }
}

/// Bits of `alpha_j` (and the bound on `z_j` is one more).
fn slot_mask_bits(b: u32) -> u32 {
    b + CHALLENGE_BITS + HIDING_BITS
}

fn exponent_mask_bits(pk: &PublicKey) -> u32 {
    pk.short_exponent_bits() + CHALLENGE_BITS + HIDING_BITS
}

/// Bulletproof generators by (bits, values).
type GensCache = Mutex<BTreeMap<(usize, usize), Arc<BulletproofGens>>>;

/// Generators for `m` values of `bits` bits, built once per shape.
fn generators(bits: usize, m: usize) -> Arc<BulletproofGens> {
    static CACHE: OnceLock<GensCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut map = match cache.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    Arc::clone(
        map.entry((bits, m))
            .or_insert_with(|| Arc::new(BulletproofGens::new(bits, m))),
    )
}

/// An integer below 2^256 as a scalar (reduced mod l).
fn scalar_of(x: &Integer) -> Scalar {
    let mut le = [0u8; 32];
    let digits = x.to_digits::<u8>(Order::Lsf);
    le[..digits.len().min(32)].copy_from_slice(&digits[..digits.len().min(32)]);
    Scalar::from_bytes_mod_order(le)
}

/// The statement's digest: key, packing layout, used slots, ciphertext and context.
fn statement(
    pk: &PublicKey,
    packer: &Packer,
    ciphertext: &Ciphertext,
    used: usize,
    context: &[u8],
) -> Transcript {
    let mut t = Transcript::new("fedchain/paillier/slot-range/v1");
    t.append(b"key", &pk.fingerprint());
    t.append_u64(b"value-bits", packer.params().value_bits as u64);
    t.append_u64(b"slot-bits", packer.slot_bits() as u64);
    t.append_u64(b"slots", used as u64);
    let mut c = Vec::with_capacity(pk.ciphertext_bytes());
    pk.encode_ciphertext(ciphertext, &mut c);
    t.append(b"ciphertext", &c);
    t.append(b"context", context);
    t
}

/// The Bulletproofs transcript of one part, bound to the statement.
fn range_transcript(t: &Transcript, part: &'static [u8]) -> merlin::Transcript {
    let mut st = t.clone();
    let digest = st.challenge(b"bulletproof-binding", 256);
    let mut mt = merlin::Transcript::new(b"fedchain/slot-range/bulletproof/v1");
    mt.append_message(b"statement", &digest.to_digits::<u8>(Order::Msf));
    mt.append_message(b"part", part);
    mt
}

/// `sum_j v_j 2^(w j)`.
fn packed(values: &[Integer], slot_bits: u32) -> Integer {
    let mut acc = Integer::new();
    for v in values.iter().rev() {
        acc <<= slot_bits;
        acc += v;
    }
    acc
}

/// The link's challenge over the statement, both range proofs and the link's commitments.
fn link_challenge(
    t: &Transcript,
    commitments: &[CompressedRistretto],
    range: &RangeProof,
    shifted: Option<&RangeProof>,
    a: &Integer,
    c: &[RistrettoPoint],
) -> Integer {
    let mut t = t.clone();
    let mut v = Vec::with_capacity(32 * commitments.len());
    for x in commitments {
        v.extend_from_slice(x.as_bytes());
    }
    t.append(b"commitments", &v);
    t.append(b"range", &range.to_bytes());
    t.append(
        b"shifted",
        &shifted.map(|p| p.to_bytes()).unwrap_or_default(),
    );
    t.append_int(b"A", a);
    let mut cs = Vec::with_capacity(32 * c.len());
    for p in c {
        cs.extend_from_slice(p.compress().as_bytes());
    }
    t.append(b"C", &cs);
    t.challenge(b"e", CHALLENGE_BITS)
}

fn proof_error(e: bulletproofs::ProofError) -> CryptoError {
    CryptoError::InvalidRangeProof(format!("bulletproof: {e}"))
}

/// Prove that `ciphertext` (made by the fast path with randomizer exponent `exponent`) packs
/// `values` (its used slots, each below `2^value_bits`) in `context`. Refused with a typed
/// error when the values are out of range or do not encrypt to the ciphertext (a witness that
/// is not this ciphertext's). `rng` must be the operating system's generator or one freshly
/// seeded from it.
pub fn prove<R: RngCore + CryptoRng>(
    pk: &PublicKey,
    packer: &Packer,
    ciphertext: &Ciphertext,
    values: &[u64],
    exponent: &SecretInt,
    context: &[u8],
    rng: &mut R,
) -> Result<SlotRangeProof> {
    let b = packer.params().value_bits;
    let bits = proof_bits(b)?;
    let used = values.len();
    if used == 0 || used > packer.slots() {
        return Err(CryptoError::Mismatch(
            "a range proof covers 1..=slots values",
        ));
    }
    let qmax = (1u64 << b) - 1;
    if let Some(j) = values.iter().position(|&x| x > qmax) {
        return Err(CryptoError::InvalidRangeProof(format!(
            "slot {j} holds {}, above {qmax}: cannot be proven",
            values[j]
        )));
    }
    let n = pk.n();
    let n2 = pk.n_squared();
    let xs: Vec<Integer> = values.iter().map(|&x| Integer::from(x)).collect();
    let m = packed(&xs, packer.slot_bits());
    let expected = mul_mod(
        &pk.g_pow(&Integer::from(&m % n)),
        &secret_pow(pk.h_s(), &exponent.0, n2),
        n2,
    );
    if expected != ciphertext.0 {
        return Err(CryptoError::InvalidRangeProof(
            "these values and randomizer do not make this ciphertext".into(),
        ));
    }
    let t = statement(pk, packer, ciphertext, used, context);
    let pc = PedersenGens::default();
    let padded = used.next_power_of_two();
    let gens = generators(bits, padded);
    let mut vals = values.to_vec();
    vals.resize(padded, 0);
    let blindings: Vec<Scalar> = (0..padded).map(|_| Scalar::random(&mut *rng)).collect();
    let mut mt = range_transcript(&t, b"range");
    let (range, commitments) = RangeProof::prove_multiple_with_rng(
        &gens, &pc, &mut mt, &vals, &blindings, bits, &mut *rng,
    )
    .map_err(proof_error)?;
    let shifted = if (b as usize) < bits {
        let shift = (1u64 << bits) - (1u64 << b);
        let up: Vec<u64> = vals.iter().map(|x| x + shift).collect();
        let mut mt = range_transcript(&t, b"shifted");
        let (p, _) = RangeProof::prove_multiple_with_rng(
            &gens, &pc, &mut mt, &up, &blindings, bits, &mut *rng,
        )
        .map_err(proof_error)?;
        Some(p)
    } else {
        None
    };
    // the link
    let mut alphas: Vec<Integer> = (0..used)
        .map(|_| random_bits(slot_mask_bits(b), &mut *rng))
        .collect();
    let betas: Vec<Scalar> = (0..used).map(|_| Scalar::random(&mut *rng)).collect();
    let r_a = SecretInt(random_bits(exponent_mask_bits(pk), &mut *rng));
    let mut alpha_packed = packed(&alphas, packer.slot_bits());
    alpha_packed %= n;
    let a = mul_mod(
        &pk.g_pow(&alpha_packed),
        &secret_pow(pk.h_s(), &r_a.0, n2),
        n2,
    );
    scrub(&mut alpha_packed);
    let c: Vec<RistrettoPoint> = alphas
        .iter()
        .zip(&betas)
        .map(|(al, be)| pc.commit(scalar_of(al), *be))
        .collect();
    let e = link_challenge(&t, &commitments, &range, shifted.as_ref(), &a, &c);
    let e_scalar = scalar_of(&e);
    let z: Vec<Integer> = alphas
        .iter()
        .zip(&xs)
        .map(|(al, x)| Integer::from(&e * x) + al)
        .collect();
    let tt: Vec<Scalar> = betas
        .iter()
        .zip(&blindings)
        .map(|(be, g)| be + e_scalar * g)
        .collect();
    let z_a = Integer::from(&e * &exponent.0) + &r_a.0;
    for al in &mut alphas {
        scrub(al);
    }
    Ok(SlotRangeProof {
        commitments,
        range,
        shifted,
        e,
        z,
        t: tt,
        z_a,
    })
}

/// Verify that the `used` slots of `ciphertext` (checked to be in Z*_{n^2}) are each below
/// `2^value_bits` in `context`.
pub fn verify(
    pk: &PublicKey,
    packer: &Packer,
    ciphertext: &Ciphertext,
    used: usize,
    proof: &SlotRangeProof,
    context: &[u8],
) -> Result<()> {
    let bad = |why: &str| CryptoError::InvalidRangeProof(why.to_string());
    pk.validate(ciphertext, 0)?;
    let b = packer.params().value_bits;
    let bits = proof_bits(b)?;
    if used == 0 || used > packer.slots() {
        return Err(bad("the number of used slots is not in 1..=slots"));
    }
    let padded = used.next_power_of_two();
    if proof.commitments.len() != padded || proof.z.len() != used || proof.t.len() != used {
        return Err(bad("wrong number of commitments or responses"));
    }
    if proof.shifted.is_some() != ((b as usize) < bits) {
        return Err(bad("the shifted range proof is missing or unexpected"));
    }
    let z_bound = slot_mask_bits(b) + 1;
    if proof.e < 0
        || proof.e.significant_bits() > CHALLENGE_BITS
        || proof
            .z
            .iter()
            .any(|z| *z < 0 || z.significant_bits() > z_bound)
        || proof.z_a < 0
        || proof.z_a.significant_bits() > exponent_mask_bits(pk) + 1
    {
        return Err(bad("a response is out of its bounds"));
    }
    let points: Vec<RistrettoPoint> = proof
        .commitments
        .iter()
        .map(|c| c.decompress().ok_or(bad("a commitment is not a point")))
        .collect::<Result<_>>()?;
    let t = statement(pk, packer, ciphertext, used, context);
    let pc = PedersenGens::default();
    let gens = generators(bits, padded);
    let mut mt = range_transcript(&t, b"range");
    proof
        .range
        .verify_multiple(&gens, &pc, &mut mt, &proof.commitments, bits)
        .map_err(proof_error)?;
    if let Some(s) = &proof.shifted {
        let shift = Scalar::from((1u64 << bits) - (1u64 << b));
        let up: Vec<CompressedRistretto> = points
            .iter()
            .map(|v| (v + shift * pc.B).compress())
            .collect();
        let mut mt = range_transcript(&t, b"shifted");
        s.verify_multiple(&gens, &pc, &mut mt, &up, bits)
            .map_err(proof_error)?;
    }
    let neg_e = -scalar_of(&proof.e);
    let c: Vec<RistrettoPoint> = (0..used)
        .map(|j| {
            RistrettoPoint::vartime_multiscalar_mul(
                [scalar_of(&proof.z[j]), proof.t[j], neg_e],
                [pc.B, pc.B_blinding, points[j]],
            )
        })
        .collect();
    let n = pk.n();
    let n2 = pk.n_squared();
    let mut zp = packed(&proof.z, packer.slot_bits());
    zp %= n;
    let h = public_pow(pk.h_s(), &proof.z_a, n2).ok_or(bad("z_a"))?;
    let c_neg_e =
        public_pow(&ciphertext.0, &Integer::from(-&proof.e), n2).ok_or(bad("not invertible"))?;
    let a = mul_mod(&mul_mod(&pk.g_pow(&zp), &h, n2), &c_neg_e, n2);
    let e = link_challenge(
        &t,
        &proof.commitments,
        &proof.range,
        proof.shifted.as_ref(),
        &a,
        &c,
    );
    if e == proof.e {
        Ok(())
    } else {
        Err(bad(
            "the link between the commitments and the ciphertext fails",
        ))
    }
}

/// Prove plaintext `index` of the sender's own encrypted update `vector` (of `len` values)
/// in range from its [`UpdateWitness`].
pub fn prove_at<R: RngCore + CryptoRng>(
    pk: &PublicKey,
    packer: &Packer,
    vector: &CiphertextVector,
    witness: &UpdateWitness,
    index: usize,
    context: &[u8],
    rng: &mut R,
) -> Result<SlotRangeProof> {
    let (Some(c), Some(a)) = (vector.0.get(index), witness.exponents.get(index)) else {
        return Err(CryptoError::Mismatch("no ciphertext at this index"));
    };
    let values = packer.slot_values(index, &witness.values);
    prove(pk, packer, c, values, a, context, rng)
}

/// Verify a range proof of plaintext `index` of `vector` (an update of `len` values).
pub fn verify_at(
    pk: &PublicKey,
    packer: &Packer,
    vector: &CiphertextVector,
    len: usize,
    index: usize,
    proof: &SlotRangeProof,
    context: &[u8],
) -> Result<()> {
    let c = vector
        .0
        .get(index)
        .ok_or(CryptoError::Mismatch("no ciphertext at this index"))?;
    verify(pk, packer, c, packer.used_slots(index, len), proof, context)
}

/// Bytes of one integer response `z_j` (fixed width: 242 bits fit 31 bytes).
const Z_BYTES: usize = 31;

impl SlotRangeProof {
    /// Header, commitments, range proofs, then the link (fixed widths where known).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = codec_header(Kind::SlotRangeProof);
        codec::put_u32(&mut out, self.commitments.len() as u32);
        for c in &self.commitments {
            out.extend_from_slice(c.as_bytes());
        }
        let r = self.range.to_bytes();
        codec::put_u32(&mut out, r.len() as u32);
        out.extend_from_slice(&r);
        match &self.shifted {
            Some(s) => {
                let s = s.to_bytes();
                out.push(1);
                codec::put_u32(&mut out, s.len() as u32);
                out.extend_from_slice(&s);
            }
            None => out.push(0),
        }
        codec::put_fixed(&mut out, &self.e, (CHALLENGE_BITS / 8) as usize);
        codec::put_u32(&mut out, self.z.len() as u32);
        for (z, t) in self.z.iter().zip(&self.t) {
            codec::put_fixed(&mut out, z, Z_BYTES);
            out.extend_from_slice(t.as_bytes());
        }
        codec::put_int(&mut out, &self.z_a);
        out
    }

    /// Decode bytes from outside (not yet verified): lengths bounded, scalars canonical.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "slot range proof");
        r.header(Kind::SlotRangeProof)?;
        let k = r.count(MAX_SLOTS.min(r.remaining() / 32), "commitments")?;
        let commitments = (0..k)
            .map(|_| {
                let b = r.take(32)?;
                let mut a = [0u8; 32];
                a.copy_from_slice(b);
                Ok(CompressedRistretto(a))
            })
            .collect::<Result<Vec<_>>>()?;
        let proof = |r: &mut Reader<'_>| -> Result<RangeProof> {
            let len = r.count(r.remaining(), "range proof bytes")?;
            let b = r.take(len)?;
            RangeProof::from_bytes(b).map_err(|e| r.err(format!("range proof: {e}")))
        };
        let range = proof(&mut r)?;
        let shifted = match r.u8()? {
            0 => None,
            1 => Some(proof(&mut r)?),
            x => return Err(r.err(format!("bad shifted flag {x}"))),
        };
        let e = r.fixed((CHALLENGE_BITS / 8) as usize)?;
        let used = r.count(MAX_SLOTS.min(r.remaining() / (Z_BYTES + 32)), "responses")?;
        let mut z = Vec::with_capacity(used);
        let mut t = Vec::with_capacity(used);
        for _ in 0..used {
            z.push(r.fixed(Z_BYTES)?);
            let b = r.take(32)?;
            let mut a = [0u8; 32];
            a.copy_from_slice(b);
            let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(a))
                .ok_or_else(|| r.err("a scalar response is not canonical"))?;
            t.push(s);
        }
        let z_a = r.int()?;
        r.finish()?;
        Ok(Self {
            commitments,
            range,
            shifted,
            e,
            z,
            t,
            z_a,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::Encryptor;
    use crate::packing::PackingParams;
    use crate::paillier::PrivateKey;
    use rand::rngs::OsRng;

    fn setup(value_bits: u32) -> (PublicKey, Packer, Encryptor) {
        let sk = PrivateKey::generate(512, &mut OsRng).expect("key");
        let pk = sk.public_key().clone();
        let packer = Packer::new(
            PackingParams {
                value_bits,
                max_parties: 10,
                ..PackingParams::default()
            },
            pk.plaintext_bits(),
        )
        .expect("packer");
        let enc = Encryptor::new(pk.clone(), 4).expect("encryptor");
        (pk, packer, enc)
    }

    fn encrypt(packer: &Packer, enc: &Encryptor, values: &[u64]) -> (Ciphertext, SecretInt) {
        let pts = packer.pack(values).expect("pack");
        let mut w = enc.encrypt_all_with_witness(&pts, &mut OsRng).expect("enc");
        (w.ciphertexts.remove(0), w.exponents.remove(0))
    }

    #[test]
    fn honest_slots_prove_and_verify_and_survive_encoding() {
        for b in [8u32, 12, 16] {
            let (pk, packer, enc) = setup(b);
            let qmax = (1u64 << b) - 1;
            let values: Vec<u64> = (0..packer.slots() as u64)
                .map(|i| (i * 37) % qmax)
                .collect();
            let mut vals = values.clone();
            vals[0] = qmax;
            let (c, a) = encrypt(&packer, &enc, &vals);
            let p = prove(&pk, &packer, &c, &vals, &a, b"ctx", &mut OsRng).expect("prove");
            verify(&pk, &packer, &c, vals.len(), &p, b"ctx").expect("verify");
            let back = SlotRangeProof::from_bytes(&p.to_bytes()).expect("decode");
            verify(&pk, &packer, &c, vals.len(), &back, b"ctx").expect("verify decoded");
            // bound to its context and to its ciphertext
            assert!(verify(&pk, &packer, &c, vals.len(), &p, b"other").is_err());
            let (c2, _) = encrypt(&packer, &enc, &vals);
            assert!(verify(&pk, &packer, &c2, vals.len(), &p, b"ctx").is_err());
        }
    }

    #[test]
    fn a_partial_last_plaintext_proves_its_used_slots() {
        let (pk, packer, enc) = setup(16);
        let vals = vec![5u64, 65_535, 0];
        let (c, a) = encrypt(&packer, &enc, &vals);
        let p = prove(&pk, &packer, &c, &vals, &a, b"x", &mut OsRng).expect("prove");
        verify(&pk, &packer, &c, 3, &p, b"x").expect("verify");
        assert!(verify(&pk, &packer, &c, 4, &p, b"x").is_err());
    }

    #[test]
    fn an_overflowing_plaintext_cannot_be_proven() {
        let (pk, packer, enc) = setup(16);
        // every bit of the used slots set: each slot holds 2^w - 1 > 2^b - 1
        let w = packer.slot_bits();
        let full = Integer::from(Integer::u_pow_u(2, w * packer.slots() as u32)) - 1u32;
        let mut wit = enc
            .encrypt_all_with_witness(std::slice::from_ref(&full), &mut OsRng)
            .expect("enc");
        let (c, a) = (wit.ciphertexts.remove(0), wit.exponents.remove(0));
        let slot = (1u64 << w) - 1;
        let vals = vec![slot; packer.slots()];
        assert!(matches!(
            prove(&pk, &packer, &c, &vals, &a, b"x", &mut OsRng),
            Err(CryptoError::InvalidRangeProof(_))
        ));
        // an honest-looking witness for other values does not make this ciphertext
        let small = vec![1u64; packer.slots()];
        assert!(prove(&pk, &packer, &c, &small, &a, b"x", &mut OsRng).is_err());
        // and a valid proof of another ciphertext does not transfer to it
        let (c2, a2) = encrypt(&packer, &enc, &small);
        let p = prove(&pk, &packer, &c2, &small, &a2, b"x", &mut OsRng).expect("prove");
        assert!(verify(&pk, &packer, &c, packer.slots(), &p, b"x").is_err());
    }

    #[test]
    fn tampered_responses_fail() {
        let (pk, packer, enc) = setup(16);
        let vals = vec![7u64; 4];
        let (c, a) = encrypt(&packer, &enc, &vals);
        let p = prove(&pk, &packer, &c, &vals, &a, b"x", &mut OsRng).expect("prove");
        let mut q = p.clone();
        q.z[1] += 1u32;
        assert!(verify(&pk, &packer, &c, 4, &q, b"x").is_err());
        let mut q = p.clone();
        q.t[0] += Scalar::ONE;
        assert!(verify(&pk, &packer, &c, 4, &q, b"x").is_err());
        let mut q = p.clone();
        q.commitments.swap(0, 1);
        assert!(verify(&pk, &packer, &c, 4, &q, b"x").is_err());
        let mut q = p;
        q.z_a += 1u32;
        assert!(verify(&pk, &packer, &c, 4, &q, b"x").is_err());
        // truncated bytes are a decode error, not a panic
        let bytes = SlotRangeProof::from_bytes(&[0u8; 3]);
        assert!(bytes.is_err());
    }
}
