//! Small big-integer helpers shared by the Paillier layers.

use rand_core::{CryptoRng, RngCore};
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
