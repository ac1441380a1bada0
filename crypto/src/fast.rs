//! Fast encryption: a fixed-base table for `h_s^a` and an offline/online randomizer pool.
//!
//! With window w and short exponents of e bits, the table holds `ceil(e/w)` rows of `2^w - 1`
//! powers `h_s^(j * 2^(w*i))`, so `h_s^a` costs at most `ceil(e/w) - 1` multiplications mod n^2
//! and no squaring. Memory is `ceil(e/w) * (2^w - 1) * bytes(n^2)`: at 2048-bit n (512-byte
//! elements, e = 448) that is 7.3 MB for w = 8, 23.5 MB for w = 10 and 80 MB for w = 12.
//!
//! The pool precomputes randomizers (offline, e.g. while the model trains) so that the online
//! cost of an encryption is one multiplication mod n^2.

use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore};
use rayon::prelude::*;
use rug::Integer;

use crate::num::{mul_mod, random_bits, SecretInt};
use crate::paillier::{Ciphertext, PublicKey};
use crate::{CryptoError, Result};

/// Default window width (7.3 MB of table at 2048-bit n).
pub const DEFAULT_WINDOW: u32 = 8;

/// Precomputed powers of the key's `h_s`.
#[derive(Debug)]
pub struct FixedBaseTable {
    window: u32,
    exp_bits: u32,
    /// rows[i][j-1] = h_s^(j * 2^(w*i)) mod n^2, j in 1..2^w
    rows: Vec<Vec<Integer>>,
}

impl FixedBaseTable {
    /// Build the table for `pk` with window `window` (1..=16); parallel over rows.
    pub fn new(pk: &PublicKey, window: u32) -> Result<Self> {
        if !(1..=16).contains(&window) {
            return Err(CryptoError::InvalidKeyParams(format!(
                "window {window} must be in 1..=16"
            )));
        }
        let exp_bits = pk.short_exponent_bits();
        let nrows = exp_bits.div_ceil(window) as usize;
        let n2 = pk.n_squared();
        // bases[i] = h_s^(2^(w*i)) by repeated squaring
        let mut bases = Vec::with_capacity(nrows);
        let mut b = pk.h_s().clone();
        for _ in 0..nrows {
            bases.push(b.clone());
            for _ in 0..window {
                b.square_mut();
                b %= n2;
            }
        }
        let per_row = (1usize << window) - 1;
        let rows = bases
            .into_par_iter()
            .map(|base| {
                let mut row = Vec::with_capacity(per_row);
                let mut acc = base.clone();
                row.push(acc.clone());
                for _ in 1..per_row {
                    acc = mul_mod(&acc, &base, n2);
                    row.push(acc.clone());
                }
                row
            })
            .collect();
        Ok(Self {
            window,
            exp_bits,
            rows,
        })
    }

    /// Window width.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Bytes held by the table's integers.
    pub fn memory_bytes(&self) -> usize {
        self.rows
            .iter()
            .flatten()
            .map(|x| x.significant_bits().div_ceil(8) as usize)
            .sum()
    }

    /// Multiplications mod n^2 per randomizer (upper bound).
    pub fn mulmods_per_randomizer(&self) -> usize {
        self.rows.len().saturating_sub(1)
    }

    /// `h_s^a mod n^2` for an exponent of at most `exp_bits` bits, by table look-ups.
    pub fn pow(&self, a: &Integer, n2: &Integer) -> Integer {
        let w = self.window;
        let mask = (1u32 << w) - 1;
        let mut acc: Option<Integer> = None;
        for (i, row) in self.rows.iter().enumerate() {
            let mut d = 0u32;
            for bit in 0..w {
                if a.get_bit(i as u32 * w + bit) {
                    d |= 1 << bit;
                }
            }
            let d = d & mask;
            if d == 0 {
                continue;
            }
            let x = &row[d as usize - 1];
            acc = Some(match acc {
                None => x.clone(),
                Some(mut v) => {
                    v *= x;
                    v %= n2;
                    v
                }
            });
        }
        acc.unwrap_or_else(|| Integer::from(1))
    }

    /// A fresh randomizer `h_s^a` with a random short exponent, with the exponent (the
    /// encryption's witness, needed to prove plaintext knowledge).
    pub fn randomizer<R: RngCore + CryptoRng + ?Sized>(
        &self,
        n2: &Integer,
        rng: &mut R,
    ) -> Randomizer {
        let a = SecretInt(random_bits(self.exp_bits, rng));
        let value = self.pow(&a.0, n2);
        Randomizer { exponent: a, value }
    }
}

/// A randomizer `h_s^a mod n^2` and its secret short exponent `a`; the exponent is scrubbed
/// when the randomizer is dropped.
#[derive(Debug)]
pub struct Randomizer {
    pub exponent: SecretInt,
    pub value: Integer,
}

/// Ciphertexts with the secret exponents of their randomizers (`c_j = (1 + m_j n) h_s^(a_j)`),
/// the witness of a proof of plaintext knowledge.
#[derive(Debug)]
pub struct Encrypted {
    pub ciphertexts: Vec<Ciphertext>,
    pub exponents: Vec<SecretInt>,
}

/// The fast encryptor of one public key: table plus an optional pool of precomputed randomizers.
#[derive(Debug)]
pub struct Encryptor {
    pk: PublicKey,
    table: Arc<FixedBaseTable>,
    pool: Mutex<Vec<Randomizer>>,
}

impl Encryptor {
    /// An encryptor with a table of the given window.
    pub fn new(pk: PublicKey, window: u32) -> Result<Self> {
        let table = Arc::new(FixedBaseTable::new(&pk, window)?);
        Ok(Self::with_table(pk, table))
    }

    /// An encryptor over a shared table (the table is public; the pool stays this
    /// encryptor's own, so randomizers are never shared).
    pub fn with_table(pk: PublicKey, table: Arc<FixedBaseTable>) -> Self {
        Self {
            pk,
            table,
            pool: Mutex::new(Vec::new()),
        }
    }

    /// The shared table.
    pub fn shared_table(&self) -> Arc<FixedBaseTable> {
        Arc::clone(&self.table)
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.pk
    }

    /// The table.
    pub fn table(&self) -> &FixedBaseTable {
        &self.table
    }

    /// A fresh randomizer from the table.
    pub fn randomizer<R: RngCore + CryptoRng + ?Sized>(&self, rng: &mut R) -> Randomizer {
        self.table.randomizer(self.pk.n_squared(), rng)
    }

    /// Encrypt one plaintext: a table randomizer, then one multiplication.
    pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        let rz = self.randomizer(rng);
        self.pk.encrypt_with_randomizer(m, &rz.value)
    }

    /// Offline phase: precompute `count` randomizers into the pool, in parallel.
    /// `rng` must be a cryptographic generator seeded by the operating system (each rayon task
    /// expands its own ChaCha20 stream from 32 bytes of it); a pooled randomizer is used once.
    pub fn precompute<R: RngCore + CryptoRng + ?Sized>(&self, count: usize, rng: &mut R) {
        let fresh = self.randomizers(count, rng);
        self.lock_pool().extend(fresh);
    }

    /// `count` fresh randomizers computed in parallel.
    pub fn randomizers<R: RngCore + CryptoRng + ?Sized>(
        &self,
        count: usize,
        rng: &mut R,
    ) -> Vec<Randomizer> {
        let seeds = chunk_seeds(count, rng);
        seeds
            .into_par_iter()
            .flat_map_iter(|(seed, len)| {
                let mut local = ChaCha20Rng::from_seed(seed);
                (0..len)
                    .map(|_| self.randomizer(&mut local))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Randomizers ready in the pool.
    pub fn pooled(&self) -> usize {
        self.lock_pool().len()
    }

    /// Take up to `count` pooled randomizers (each leaves the pool: none is used twice).
    pub fn take_pooled(&self, count: usize) -> Vec<Randomizer> {
        let mut pool = self.lock_pool();
        let k = pool.len().saturating_sub(count);
        pool.split_off(k)
    }

    fn lock_pool(&self) -> std::sync::MutexGuard<'_, Vec<Randomizer>> {
        // a poisoned pool only means another thread panicked while pushing; its content is
        // still a vector of valid randomizers
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Online phase: encrypt with a pooled randomizer (one multiplication mod n^2); falls back
    /// to a fresh table randomizer when the pool is empty.
    pub fn encrypt_online<R: RngCore + CryptoRng + ?Sized>(
        &self,
        m: &Integer,
        rng: &mut R,
    ) -> Result<Ciphertext> {
        let pooled = self.lock_pool().pop();
        let rz = match pooled {
            Some(rz) => rz,
            None => self.randomizer(rng),
        };
        self.pk.encrypt_with_randomizer(m, &rz.value)
    }

    /// Encrypt many plaintexts in parallel: pooled randomizers first, fresh ones for the rest.
    pub fn encrypt_all<R: RngCore + CryptoRng + ?Sized>(
        &self,
        plaintexts: &[Integer],
        rng: &mut R,
    ) -> Result<Vec<Ciphertext>> {
        Ok(self.encrypt_all_with_witness(plaintexts, rng)?.ciphertexts)
    }

    /// [`Self::encrypt_all`], keeping the randomizers' exponents (to prove plaintext knowledge).
    pub fn encrypt_all_with_witness<R: RngCore + CryptoRng + ?Sized>(
        &self,
        plaintexts: &[Integer],
        rng: &mut R,
    ) -> Result<Encrypted> {
        let mut rzs = self.take_pooled(plaintexts.len());
        let missing = plaintexts.len() - rzs.len();
        rzs.extend(self.randomizers(missing, rng));
        let ciphertexts = plaintexts
            .par_iter()
            .zip(rzs.par_iter())
            .enumerate()
            .map(|(i, (m, rz))| {
                self.pk
                    .encrypt_with_randomizer(m, &rz.value)
                    .map_err(|_| CryptoError::PlaintextOutOfRange { index: i })
            })
            .collect::<Result<Vec<_>>>()?;
        let exponents = rzs.into_iter().map(|r| r.exponent).collect();
        Ok(Encrypted {
            ciphertexts,
            exponents,
        })
    }
}

/// Split `count` items into per-task (seed, len) chunks for parallel seeded work.
pub(crate) fn chunk_seeds<R: RngCore + CryptoRng + ?Sized>(
    count: usize,
    rng: &mut R,
) -> Vec<([u8; 32], usize)> {
    const CHUNK: usize = 16;
    let mut out = Vec::with_capacity(count.div_ceil(CHUNK));
    let mut left = count;
    while left > 0 {
        let len = left.min(CHUNK);
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        out.push((seed, len));
        left -= len;
    }
    out
}
