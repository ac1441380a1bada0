//! Prime and safe-prime generation (parallel, sieved).
//!
//! A safe prime p = 2p' + 1 (p' prime) is found by sieving a window of candidates p' against
//! small primes for both p' and 2p' + 1, then testing the survivors with a base-2 Fermat test
//! and finally GMP's Baillie-PSW plus Miller-Rabin rounds. Workers search disjoint random
//! windows in parallel with rayon.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use rug::integer::IsPrime;
use rug::Integer;

use crate::num::random_bits;

/// Miller-Rabin rounds on top of Baillie-PSW (GMP counts BPSW as 24 of them).
const PRIME_REPS: u32 = 40;
/// Candidates per sieve window.
const WINDOW: usize = 1 << 14;

fn small_primes() -> Vec<u32> {
    let limit = 1u32 << 15;
    let mut sieve = vec![true; limit as usize];
    let mut out = Vec::new();
    for i in 3..limit {
        if sieve[i as usize] {
            if i % 2 == 1 {
                out.push(i);
            }
            let mut j = i * i;
            while j < limit {
                sieve[j as usize] = false;
                j += i;
            }
        }
    }
    out
}

fn fermat2(x: &Integer) -> bool {
    let e = Integer::from(x - 1u32);
    Integer::from(2)
        .pow_mod(&e, x)
        .map(|r| r == 1)
        .unwrap_or(false)
}

fn is_prime(x: &Integer) -> bool {
    !matches!(x.is_probably_prime(PRIME_REPS), IsPrime::No)
}

/// A random prime of exactly `bits` bits.
pub fn random_prime<R: RngCore + CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Integer {
    loop {
        let mut x = random_bits(bits, rng);
        x.set_bit(bits - 1, true);
        x.set_bit(0, true);
        let p = x.next_prime();
        if p.significant_bits() == bits && is_prime(&p) {
            return p;
        }
    }
}

/// Search one random window for a safe prime of exactly `bits` bits.
fn safe_prime_window(bits: u32, primes: &[u32], rng: &mut ChaCha20Rng) -> Option<Integer> {
    // p' has bits - 1 bits with its top two bits set so that 2p'+1 keeps exactly `bits` bits
    // across the whole window; p' odd.
    let mut q0 = random_bits(bits - 1, rng);
    q0.set_bit(bits - 2, true);
    q0.set_bit(bits - 3, true);
    q0.set_bit(0, true);
    let mut alive = vec![true; WINDOW];
    for &r in primes {
        let r64 = r as u64;
        let q_mod = q0.mod_u(r) as u64;
        // candidates are q0 + 2k; inverses of 2 and 4 modulo the odd prime r
        let inv2 = r64.div_ceil(2) % r64; // (r+1)/2
        let inv4 = inv2 * inv2 % r64;
        let k1 = (r64 - q_mod) % r64 * inv2 % r64; // r | q0 + 2k
        let k2 = (r64 - (2 * q_mod + 1) % r64) % r64 * inv4 % r64; // r | 2(q0+2k)+1
        for start in [k1, k2] {
            let mut k = start as usize;
            while k < WINDOW {
                // the prime r itself is a legitimate value only for tiny sizes we never ask for
                alive[k] = false;
                k += r as usize;
            }
        }
    }
    for (k, ok) in alive.iter().enumerate() {
        if !ok {
            continue;
        }
        let q = Integer::from(&q0 + 2 * k as u64);
        if !fermat2(&q) {
            continue;
        }
        let p = Integer::from(&q * 2u32) + 1u32;
        if !fermat2(&p) {
            continue;
        }
        if is_prime(&q) && is_prime(&p) && p.significant_bits() == bits {
            return Some(p);
        }
    }
    None
}

/// A random safe prime of exactly `bits` bits (bits >= 64), searched on all rayon threads.
pub fn random_safe_prime<R: RngCore + CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Integer {
    assert!(bits >= 64, "safe primes below 64 bits are not supported");
    let primes = small_primes();
    let threads = rayon::current_num_threads().max(1);
    loop {
        let seeds: Vec<[u8; 32]> = (0..threads)
            .map(|_| {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                s
            })
            .collect();
        let found = seeds.into_par_iter().find_map_any(|seed| {
            let mut local = ChaCha20Rng::from_seed(seed);
            // a few windows per task, so the outer RNG is not consulted too often
            (0..8).find_map(|_| safe_prime_window(bits, &primes, &mut local))
        });
        if let Some(p) = found {
            return p;
        }
    }
}

/// Whether `p` is (probably) a safe prime.
pub fn is_safe_prime(p: &Integer) -> bool {
    if *p < 7 || p.is_even() {
        return false;
    }
    let q = Integer::from(p - 1u32) / 2u32;
    is_prime(p) && is_prime(&q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_primes_are_safe() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for bits in [64u32, 128, 256] {
            let p = random_safe_prime(bits, &mut rng);
            assert_eq!(p.significant_bits(), bits);
            assert!(is_safe_prime(&p), "{p} is not safe");
        }
    }

    #[test]
    fn random_prime_has_exact_size() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let p = random_prime(200, &mut rng);
        assert_eq!(p.significant_bits(), 200);
        assert!(is_prime(&p));
    }
}
