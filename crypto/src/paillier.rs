//! Paillier over GMP with g = n + 1, the Damgard-Jurik-Nielsen fast encryption path,
//! CRT decryption and homomorphic operations.
//!
//! Encryption of m is `(1 + m n) * R mod n^2` where the randomizer R is either `r^n` for a
//! random unit r (textbook) or `h_s^a` for a short random exponent a (fast path; `h_s = h^n`
//! with h a random square's negation, published with the key). Both give ciphertexts that
//! decrypt the same way; the fast path replaces one |n|-bit exponentiation by
//! `ceil(|a| / w)` multiplications from a fixed-base table (see [`crate::fast`]).

use rand_core::{CryptoRng, RngCore};
use rug::Integer;
use serde::{Deserialize, Serialize};

use crate::codec::{self, Decode, Encode, Kind, Reader};
use crate::num::{self, mul_mod, public_pow, secret_pow};
use crate::primes;
use crate::{CryptoError, Result};

/// Short-exponent length for the fast path: four times the key's security level
/// (448 bits at 2048-bit n, 512 at 3072).
pub fn short_exponent_bits(modulus_bits: u32) -> u32 {
    match modulus_bits {
        0..=1024 => 320,
        1025..=2048 => 448,
        2049..=3072 => 512,
        _ => 608,
    }
}

/// A Paillier public key (g = n + 1) with the fast-path base `h_s`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PublicKeyRepr", into = "PublicKeyRepr")]
pub struct PublicKey {
    n: Integer,
    n2: Integer,
    h_s: Integer,
    bits: u32,
}

#[derive(Serialize, Deserialize)]
struct PublicKeyRepr {
    #[serde(with = "num::serde_hex")]
    n: Integer,
    #[serde(with = "num::serde_hex")]
    h_s: Integer,
}

impl From<PublicKey> for PublicKeyRepr {
    fn from(pk: PublicKey) -> Self {
        Self {
            n: pk.n,
            h_s: pk.h_s,
        }
    }
}

impl TryFrom<PublicKeyRepr> for PublicKey {
    type Error = CryptoError;
    fn try_from(r: PublicKeyRepr) -> Result<Self> {
        PublicKey::from_parts(r.n, r.h_s)
    }
}

/// A ciphertext: an element of Z*_{n^2}. Construct from outside bytes only through
/// [`PublicKey::ciphertext`], which checks group membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ciphertext(#[serde(with = "num::serde_hex")] pub(crate) Integer);

impl Ciphertext {
    /// The underlying integer.
    pub fn as_integer(&self) -> &Integer {
        &self.0
    }
}

impl PublicKey {
    /// Rebuild a public key from n and h_s, checking their basic shape.
    pub fn from_parts(n: Integer, h_s: Integer) -> Result<Self> {
        if n <= 3 || n.is_even() {
            return Err(CryptoError::InvalidKeyParams(
                "modulus must be odd and > 3".into(),
            ));
        }
        let n2 = Integer::from(n.square_ref());
        let pk = Self {
            bits: n.significant_bits(),
            n,
            n2,
            h_s,
        };
        pk.check_element(&pk.h_s, 0)
            .map_err(|_| CryptoError::InvalidKeyParams("h_s is not a unit mod n^2".into()))?;
        Ok(pk)
    }

    /// The modulus n.
    pub fn n(&self) -> &Integer {
        &self.n
    }

    /// n^2.
    pub fn n_squared(&self) -> &Integer {
        &self.n2
    }

    /// The fast-path base h_s = h^n mod n^2.
    pub fn h_s(&self) -> &Integer {
        &self.h_s
    }

    /// Bit length of n.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Bytes of a fixed-width ciphertext (bytes of n^2).
    pub fn ciphertext_bytes(&self) -> usize {
        num::byte_width(&self.n2)
    }

    /// Largest number of plaintext bits that always fit below n.
    pub fn plaintext_bits(&self) -> u32 {
        self.bits - 1
    }

    /// Short exponent length of the fast path for this key.
    pub fn short_exponent_bits(&self) -> u32 {
        short_exponent_bits(self.bits)
    }

    fn check_element(&self, c: &Integer, index: usize) -> Result<()> {
        if *c <= 0 || *c >= self.n2 {
            return Err(CryptoError::InvalidCiphertext {
                index,
                reason: "not in (0, n^2)",
            });
        }
        if Integer::from(c.gcd_ref(&self.n)) != 1 {
            return Err(CryptoError::InvalidCiphertext {
                index,
                reason: "shares a factor with n",
            });
        }
        Ok(())
    }

    /// Check an integer from outside and wrap it as a ciphertext (0 < c < n^2, gcd(c, n) = 1).
    pub fn ciphertext(&self, c: Integer) -> Result<Ciphertext> {
        self.check_element(&c, 0)?;
        Ok(Ciphertext(c))
    }

    /// Check a ciphertext from outside; `index` names it in the error.
    pub fn validate(&self, c: &Ciphertext, index: usize) -> Result<()> {
        self.check_element(&c.0, index)
    }

    fn check_plaintext(&self, m: &Integer) -> Result<()> {
        if *m < 0 || *m >= self.n {
            return Err(CryptoError::PlaintextOutOfRange { index: 0 });
        }
        Ok(())
    }

    /// `1 + m n`, the g^m part (below n^2 for m < n, so no reduction is needed).
    pub(crate) fn g_pow(&self, m: &Integer) -> Integer {
        let mut x = Integer::from(m * &self.n);
        x += 1u32;
        x
    }

    /// Combine a plaintext with a precomputed randomizer: one multiplication mod n^2.
    pub fn encrypt_with_randomizer(&self, m: &Integer, randomizer: &Integer) -> Result<Ciphertext> {
        self.check_plaintext(m)?;
        Ok(Ciphertext(mul_mod(&self.g_pow(m), randomizer, &self.n2)))
    }

    /// Textbook encryption with a caller-chosen unit r: `(1 + m n) r^n mod n^2`
    /// (for known-answer tests; r is secret so the exponentiation is constant-time in r's use).
    pub fn encrypt_with_r(&self, m: &Integer, r: &Integer) -> Result<Ciphertext> {
        if *r <= 0 || *r >= self.n || Integer::from(r.gcd_ref(&self.n)) != 1 {
            return Err(CryptoError::InvalidKeyParams(
                "r must be a unit of Z_n".into(),
            ));
        }
        let rn = Integer::from(
            r.pow_mod_ref(&self.n, &self.n2)
                .ok_or(CryptoError::Mismatch("r not invertible"))?,
        );
        self.encrypt_with_randomizer(m, &rn)
    }

    /// Textbook encryption with fresh randomness.
    pub fn encrypt_textbook<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        let r = num::random_unit(&self.n, rng);
        self.encrypt_with_r(m, &r)
    }

    /// Fast-path randomizer `h_s^a` for a fresh short exponent, by plain exponentiation
    /// (the table in [`crate::fast`] does the same with multiplications only).
    pub fn randomizer<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> Integer {
        let a = num::random_bits(self.short_exponent_bits(), rng);
        secret_pow(&self.h_s, &a, &self.n2)
    }

    /// Encryption on the fast path without a table.
    pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        let rz = self.randomizer(rng);
        self.encrypt_with_randomizer(m, &rz)
    }

    /// Homomorphic addition: Dec(add(a, b)) = Dec(a) + Dec(b) mod n.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext(mul_mod(&a.0, &b.0, &self.n2))
    }

    /// In-place homomorphic addition.
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) {
        a.0 *= &b.0;
        a.0 %= &self.n2;
    }

    /// Homomorphic scalar multiplication by a public k >= 0: Dec = k * Dec(c) mod n.
    pub fn mul_scalar(&self, c: &Ciphertext, k: &Integer) -> Result<Ciphertext> {
        if *k < 0 {
            return Err(CryptoError::Mismatch("scalar must be non-negative"));
        }
        public_pow(&c.0, k, &self.n2)
            .map(Ciphertext)
            .ok_or(CryptoError::Mismatch("ciphertext not invertible"))
    }

    /// Re-randomize a ciphertext (multiply by a fresh encryption of 0).
    pub fn rerandomize<R: RngCore + CryptoRng + ?Sized>(
        &self,
        c: &Ciphertext,
        rng: &mut R,
    ) -> Ciphertext {
        Ciphertext(mul_mod(&c.0, &self.randomizer(rng), &self.n2))
    }

    /// A short stable fingerprint (SHA-256 of the encoding), to bind shares and proofs to the key.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.to_bytes()).into()
    }

    /// Encode a ciphertext at this key's fixed width.
    pub fn encode_ciphertext(&self, c: &Ciphertext, out: &mut Vec<u8>) {
        codec::put_fixed(out, &c.0, self.ciphertext_bytes());
    }
}

impl Encode for PublicKey {
    const KIND: Kind = Kind::PublicKey;
    fn encode_body(&self, out: &mut Vec<u8>) {
        codec::put_int(out, &self.n);
        codec::put_int(out, &self.h_s);
    }
}

impl Decode for PublicKey {
    fn decode_body(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.int()?;
        let h_s = r.int()?;
        PublicKey::from_parts(n, h_s).map_err(|e| r.err(e.to_string()))
    }
}

/// A non-threshold Paillier secret key with CRT decryption.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "PrivateKeyRepr", into = "PrivateKeyRepr")]
pub struct PrivateKey {
    pk: PublicKey,
    p: Integer,
    q: Integer,
    p2: Integer,
    q2: Integer,
    p_minus_1: Integer,
    q_minus_1: Integer,
    hp: Integer,
    hq: Integer,
    p_inv_q: Integer,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("bits", &self.pk.bits)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct PrivateKeyRepr {
    #[serde(with = "num::serde_hex")]
    p: Integer,
    #[serde(with = "num::serde_hex")]
    q: Integer,
    #[serde(with = "num::serde_hex")]
    h_s: Integer,
}

impl From<PrivateKey> for PrivateKeyRepr {
    fn from(k: PrivateKey) -> Self {
        Self {
            p: k.p,
            q: k.q,
            h_s: k.pk.h_s,
        }
    }
}

impl TryFrom<PrivateKeyRepr> for PrivateKey {
    type Error = CryptoError;
    fn try_from(r: PrivateKeyRepr) -> Result<Self> {
        PrivateKey::from_primes_with_h_s(r.p, r.q, Some(r.h_s), &mut rand::rngs::OsRng)
    }
}

/// A random `h_s = (-x^2)^n mod n^2` for the fast path.
pub(crate) fn random_h_s<R: RngCore + CryptoRng + ?Sized>(
    n: &Integer,
    n2: &Integer,
    rng: &mut R,
) -> Integer {
    let x = num::random_unit(n, rng);
    let h = n - Integer::from(x.square_ref()) % n;
    Integer::from(
        h.pow_mod_ref(n, n2)
            .expect("n is positive, so the power exists"),
    )
}

impl PrivateKey {
    /// Generate a key with an n of `bits` bits (two primes of bits/2 bits).
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Result<Self> {
        check_modulus_bits(bits)?;
        loop {
            let p = primes::random_prime(bits / 2, rng);
            let q = primes::random_prime(bits / 2, rng);
            if p == q {
                continue;
            }
            let n = Integer::from(&p * &q);
            if n.significant_bits() != bits {
                continue;
            }
            return Self::from_primes_with_h_s(p, q, None, rng);
        }
    }

    /// Build a key from its primes (e.g. fixtures or known-answer tests).
    pub fn from_primes<R: RngCore + CryptoRng + ?Sized>(
        p: Integer,
        q: Integer,
        rng: &mut R,
    ) -> Result<Self> {
        Self::from_primes_with_h_s(p, q, None, rng)
    }

    fn from_primes_with_h_s<R: RngCore + CryptoRng + ?Sized>(
        p: Integer,
        q: Integer,
        h_s: Option<Integer>,
        rng: &mut R,
    ) -> Result<Self> {
        if p == q || p < 3 || q < 3 || p.is_even() || q.is_even() {
            return Err(CryptoError::InvalidKeyParams(
                "p and q must be distinct odd primes".into(),
            ));
        }
        let n = Integer::from(&p * &q);
        let n2 = Integer::from(n.square_ref());
        let h_s = match h_s {
            Some(h) => h,
            None => random_h_s(&n, &n2, rng),
        };
        let pk = PublicKey::from_parts(n, h_s)?;
        let p2 = Integer::from(p.square_ref());
        let q2 = Integer::from(q.square_ref());
        let p_minus_1 = Integer::from(&p - 1u32);
        let q_minus_1 = Integer::from(&q - 1u32);
        // h_p = L_p(g^(p-1) mod p^2)^-1 mod p
        let h = |prime: &Integer, prime2: &Integer, e: &Integer| -> Result<Integer> {
            let gp = secret_pow(&Integer::from(pk.n() + 1u32), e, prime2);
            num::l_function(&gp, prime).invert(prime).map_err(|_| {
                CryptoError::InvalidKeyParams("p, q do not form a Paillier key".into())
            })
        };
        let hp = h(&p, &p2, &p_minus_1)?;
        let hq = h(&q, &q2, &q_minus_1)?;
        let p_inv_q = p
            .clone()
            .invert(&q)
            .map_err(|_| CryptoError::InvalidKeyParams("p not invertible mod q".into()))?;
        Ok(Self {
            pk,
            p,
            q,
            p2,
            q2,
            p_minus_1,
            q_minus_1,
            hp,
            hq,
            p_inv_q,
        })
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// The primes (p, q).
    pub fn primes(&self) -> (&Integer, &Integer) {
        (&self.p, &self.q)
    }

    /// CRT decryption; checks the ciphertext first.
    pub fn decrypt(&self, c: &Ciphertext) -> Result<Integer> {
        self.pk.validate(c, 0)?;
        let part = |prime: &Integer, prime2: &Integer, e: &Integer, h: &Integer| {
            let cp = Integer::from(&c.0 % prime2);
            let x = secret_pow(&cp, e, prime2);
            mul_mod(&num::l_function(&x, prime), h, prime)
        };
        let mp = part(&self.p, &self.p2, &self.p_minus_1, &self.hp);
        let mq = part(&self.q, &self.q2, &self.q_minus_1, &self.hq);
        // m = mp + p * ((mq - mp) * p^-1 mod q)
        let mut t = Integer::from(&mq - &mp);
        t *= &self.p_inv_q;
        t = t.modulo(&self.q);
        Ok(mp + t * &self.p)
    }
}

/// Generate a pair of safe primes whose product has exactly `bits` bits.
pub fn safe_prime_pair<R: RngCore + CryptoRng + ?Sized>(
    bits: u32,
    rng: &mut R,
) -> Result<(Integer, Integer)> {
    check_modulus_bits(bits)?;
    loop {
        let p = primes::random_safe_prime(bits / 2, rng);
        let q = primes::random_safe_prime(bits / 2, rng);
        if p != q && Integer::from(&p * &q).significant_bits() == bits {
            return Ok((p, q));
        }
    }
}

fn check_modulus_bits(bits: u32) -> Result<()> {
    if bits < 128 || bits % 2 != 0 {
        return Err(CryptoError::InvalidKeyParams(format!(
            "modulus size {bits} must be even and >= 128"
        )));
    }
    Ok(())
}
