//! Small big-integer helpers shared by the Paillier layers.

use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use rug::integer::Order;
use rug::Integer;

/// A uniformly random integer of at most `bits` bits from a cryptographic RNG.
pub fn random_bits<R: RngCore + CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Integer {
    let bytes = bits.div_ceil(8) as usize;
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    let excess = (bytes as u32) * 8 - bits;
    if excess > 0 {
        buf[0] &= 0xffu8 >> excess;
    }
    Integer::from_digits(&buf, Order::Msf)
}

/// A uniformly random integer in `[0, bound)` by rejection sampling.
pub fn random_below<R: RngCore + CryptoRng + ?Sized>(bound: &Integer, rng: &mut R) -> Integer {
    debug_assert!(*bound > 0);
    let bits = bound.significant_bits();
    loop {
        let x = random_bits(bits, rng);
        if x < *bound {
            return x;
        }
    }
}

/// A uniformly random unit of Z_n (1 <= x < n, gcd(x, n) = 1).
pub fn random_unit<R: RngCore + CryptoRng + ?Sized>(n: &Integer, rng: &mut R) -> Integer {
    loop {
        let x = random_below(n, rng);
        if x != 0 && Integer::from(x.gcd_ref(n)) == 1 {
            return x;
        }
    }
}

/// Overwrite a secret integer's limbs with zeros in place (best effort: GMP clears each set
/// bit in the limb that holds it, lowest first, so the live limbs end up zero; copies GMP made
/// inside earlier arithmetic are not reachable from here). Leaves `x` equal to 0.
pub fn scrub(x: &mut Integer) {
    if *x < 0 {
        x.abs_mut();
    }
    let mut from = 0;
    while let Some(bit) = x.find_one(from) {
        x.set_bit(bit, false);
        from = bit + 1;
    }
}

/// An integer that is scrubbed ([`scrub`]) when dropped: for secret exponents and witnesses.
#[derive(Default)]
pub struct SecretInt(pub Integer);

impl Drop for SecretInt {
    fn drop(&mut self) {
        scrub(&mut self.0);
    }
}

impl std::fmt::Debug for SecretInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretInt(..)")
    }
}

/// `base^exp mod m` in constant time for a secret, non-negative exponent (m odd).
pub fn secret_pow(base: &Integer, exp: &Integer, m: &Integer) -> Integer {
    if *exp == 0 {
        return Integer::from(1);
    }
    Integer::from(base.secure_pow_mod_ref(exp, m))
}

/// `base^exp mod m` for a public exponent; a negative exponent uses the inverse.
/// Returns `None` when the exponent is negative and `base` is not invertible.
pub fn public_pow(base: &Integer, exp: &Integer, m: &Integer) -> Option<Integer> {
    base.pow_mod_ref(exp, m).map(Integer::from)
}

/// `(a * b) mod m` for non-negative operands.
#[inline]
pub fn mul_mod(a: &Integer, b: &Integer, m: &Integer) -> Integer {
    let mut r = Integer::from(a * b);
    r %= m;
    r
}

/// `a = a * b mod m` in place (non-negative operands).
#[inline]
fn mul_assign_mod(a: &mut Integer, b: &Integer, m: &Integer) {
    *a *= b;
    *a %= m;
}

/// `prod bases_j^exps_j mod m` for non-negative public exponents, by Pippenger's bucket method
/// (about `bits / c * (N + 2^(c+1))` multiplications for N bases instead of `N * bits`),
/// split across the rayon pool. `None` if a negative exponent is given.
pub fn multi_pow(bases: &[Integer], exps: &[Integer], m: &Integer) -> Option<Integer> {
    if bases.len() != exps.len() || exps.iter().any(|e| *e < 0) {
        return None;
    }
    let bits = exps.iter().map(|e| e.significant_bits()).max().unwrap_or(0);
    let chunk = bases
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(16);
    let parts: Vec<Integer> = bases
        .par_chunks(chunk)
        .zip(exps.par_chunks(chunk))
        .map(|(b, e)| pippenger(b, e, bits, m))
        .collect();
    let mut acc = Integer::from(1);
    for p in &parts {
        mul_assign_mod(&mut acc, p, m);
    }
    Some(acc)
}

/// Window width minimising `bits / c * (n + 2^(c+1))`.
fn window_for(n: usize, bits: u32) -> u32 {
    (1..=16u32)
        .min_by_key(|&c| (bits.div_ceil(c) as u64) * (n as u64 + (2u64 << c)))
        .unwrap_or(1)
}

fn pippenger(bases: &[Integer], exps: &[Integer], bits: u32, m: &Integer) -> Integer {
    let c = window_for(bases.len(), bits);
    let words: Vec<Vec<u64>> = exps
        .iter()
        .map(|e| e.to_digits::<u64>(Order::Lsf))
        .collect();
    let digit = |w: &[u64], at: u32| -> usize {
        let (i, o) = ((at / 64) as usize, at % 64);
        let lo = w.get(i).copied().unwrap_or(0) >> o;
        let hi = if o + c > 64 && o > 0 {
            w.get(i + 1).copied().unwrap_or(0) << (64 - o)
        } else {
            0
        };
        ((lo | hi) & ((1u64 << c) - 1)) as usize
    };
    let mut result: Option<Integer> = None;
    let mut buckets: Vec<Option<Integer>> = vec![None; 1 << c];
    for win in (0..bits.div_ceil(c)).rev() {
        if let Some(r) = result.as_mut() {
            for _ in 0..c {
                r.square_mut();
                *r %= m;
            }
        }
        buckets.iter_mut().for_each(|b| *b = None);
        for (b, w) in bases.iter().zip(&words) {
            let d = digit(w, win * c);
            if d != 0 {
                match &mut buckets[d] {
                    Some(x) => mul_assign_mod(x, b, m),
                    slot => *slot = Some(b.clone()),
                }
            }
        }
        // prod_d bucket_d^d as a product of running products, from the top bucket down
        let mut running: Option<Integer> = None;
        let mut acc: Option<Integer> = None;
        for bucket in buckets.iter().skip(1).rev() {
            if let Some(b) = bucket {
                match &mut running {
                    Some(r) => mul_assign_mod(r, b, m),
                    slot => *slot = Some(b.clone()),
                }
            }
            if let Some(r) = &running {
                match &mut acc {
                    Some(a) => mul_assign_mod(a, r, m),
                    slot => *slot = Some(r.clone()),
                }
            }
        }
        match (&mut result, acc) {
            (Some(r), Some(a)) => mul_assign_mod(r, &a, m),
            (slot @ None, Some(a)) => *slot = Some(a),
            _ => {}
        }
    }
    result.unwrap_or_else(|| Integer::from(1))
}

/// Paillier's L function: (x - 1) / d.
pub fn l_function(x: &Integer, d: &Integer) -> Integer {
    let mut r = Integer::from(x - 1u32);
    r /= d;
    r
}

/// Fixed-width big-endian bytes of a non-negative integer that fits in `width` bytes.
pub fn to_fixed_be(x: &Integer, width: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + width, 0);
    let used = x.significant_digits::<u8>();
    debug_assert!(used <= width, "integer wider than its field");
    x.write_digits(&mut out[start + width - used..], Order::Msf);
}

/// Number of bytes needed for integers below `m`.
pub fn byte_width(m: &Integer) -> usize {
    m.significant_bits().div_ceil(8) as usize
}

/// Serde helpers that write a big integer as a lower-case hex string.
pub mod serde_hex {
    use rug::Integer;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &Integer, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&x.to_string_radix(16))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Integer, D::Error> {
        let s = String::deserialize(d)?;
        Integer::from_str_radix(&s, 16).map_err(D::Error::custom)
    }

    /// The same for a vector of integers.
    pub mod vec {
        use rug::Integer;
        use serde::{de::Error, Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(xs: &[Integer], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(xs.iter().map(|x| x.to_string_radix(16)))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Integer>, D::Error> {
            let v = Vec::<String>::deserialize(d)?;
            v.iter()
                .map(|s| Integer::from_str_radix(s, 16).map_err(D::Error::custom))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn multi_pow_is_the_product_of_powers(seed: u64, n in 0usize..300, bits in 1u32..200) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let m = random_bits(512, &mut rng) | Integer::from(1) | (Integer::from(1) << 511);
            let bases: Vec<Integer> = (0..n).map(|_| random_below(&m, &mut rng)).collect();
            let exps: Vec<Integer> = (0..n).map(|i| if i % 7 == 3 { Integer::new() } else { random_bits(bits, &mut rng) }).collect();
            let mut want = Integer::from(1);
            for (b, e) in bases.iter().zip(&exps) {
                want = mul_mod(&want, &public_pow(b, e, &m).expect("non-negative"), &m);
            }
            prop_assert_eq!(multi_pow(&bases, &exps, &m), Some(want));
        }
    }

    #[test]
    fn multi_pow_refuses_negative_exponents() {
        let m = Integer::from(1_000_003);
        assert_eq!(
            multi_pow(&[Integer::from(2)], &[Integer::from(-1)], &m),
            None
        );
    }

    #[test]
    fn scrub_zeroes_the_limbs_in_place() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut x: Integer = random_bits(4096, &mut rng) | (Integer::from(1) << 4095);
        let limbs_before = x.as_limbs().len();
        scrub(&mut x);
        assert_eq!(x, 0);
        assert!(limbs_before >= 64);
        let mut neg = Integer::from(-12345);
        scrub(&mut neg);
        assert_eq!(neg, 0);
    }
}
