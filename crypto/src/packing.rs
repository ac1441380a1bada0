//! Quantization of f32 updates to b-bit fixed point and packing of k values per plaintext.
//!
//! Sample weighting (FedAvg) is folded into the values: a hospital with s samples scales its
//! update by f = s / max_samples (at most 1) before quantizing, so every party packs with the same
//! unit weight and a slot only needs headroom for the number of parties, not for the total sample
//! count. A scaled value y is clipped to [-clip, clip] and mapped to the level
//! q = round((y + clip) / (2 clip) x (2^b - 1)) in [0, 2^b - 1] (signed values by offset; nearest
//! or unbiased stochastic rounding). The sum of the levels of at most P parties lies below
//! P (2^b - 1), so slots are b + ceil(log2(P)) bits wide and floor(plaintext_bits / slot_bits)
//! of them fit below n (8-bit values for 10 parties: 12-bit slots, 170 per 2048-bit plaintext).
//! Both bounds are checked when the packer is built and again when a sum is unpacked, so an
//! overflowing configuration is an error rather than silent corruption. The weighted average of
//! k summed parties is (dequantized level sum - k clip) / (sum of their f).

use rand_core::RngCore;
use rug::integer::Order;
use rug::Integer;
use serde::{Deserialize, Serialize};

use crate::{CryptoError, Result};

/// How a scaled value is rounded to an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Rounding {
    /// Round to nearest (deterministic).
    #[default]
    Nearest,
    /// Round up with probability equal to the fractional part (unbiased).
    Stochastic,
}

impl std::str::FromStr for Rounding {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nearest" => Ok(Self::Nearest),
            "stochastic" => Ok(Self::Stochastic),
            other => Err(CryptoError::InvalidPacking(format!(
                "rounding {other:?}: expected nearest or stochastic"
            ))),
        }
    }
}

/// Quantization and packing parameters; shared by every party of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackingParams {
    /// Bits per quantized value, 4..=32.
    pub value_bits: u32,
    /// Clipping bound: sample-scaled values are clipped to [-clip, clip].
    pub clip: f32,
    /// Most updates one packed sum may carry (the committee size). 1..=2^20.
    pub max_parties: u32,
    /// Largest sample count a party may declare; a party's weight is samples / max_samples.
    pub max_samples: u64,
    /// Rounding mode of quantization.
    #[serde(default)]
    pub rounding: Rounding,
}

impl Default for PackingParams {
    fn default() -> Self {
        Self {
            value_bits: 16,
            clip: 1.0,
            max_parties: 100,
            max_samples: 1,
            rounding: Rounding::Nearest,
        }
    }
}

/// A validated packing layout for one plaintext size.
#[derive(Clone, Debug, PartialEq)]
pub struct Packer {
    params: PackingParams,
    slot_bits: u32,
    slots: usize,
    qmax: u64,
}

/// Ceiling of log2(x) for x >= 1.
fn ceil_log2(x: u64) -> u32 {
    if x <= 1 {
        0
    } else {
        64 - (x - 1).leading_zeros()
    }
}

impl Packer {
    /// Validate `params` for plaintexts of `plaintext_bits` bits (use `PublicKey::plaintext_bits`).
    pub fn new(params: PackingParams, plaintext_bits: u32) -> Result<Self> {
        let bad = |m: String| Err(CryptoError::InvalidPacking(m));
        if !(4..=32).contains(&params.value_bits) {
            return bad(format!("value_bits {} not in 4..=32", params.value_bits));
        }
        if !(params.clip.is_finite() && params.clip > 0.0) {
            return bad(format!("clip {} must be finite and > 0", params.clip));
        }
        if params.max_parties == 0 || params.max_parties > 1 << 20 {
            return bad(format!(
                "max_parties {} not in 1..=2^20",
                params.max_parties
            ));
        }
        if params.max_samples == 0 {
            return bad("max_samples must be at least 1".into());
        }
        let slot_bits = params.value_bits + ceil_log2(params.max_parties as u64);
        let slots = (plaintext_bits / slot_bits) as usize;
        if slots == 0 {
            return bad(format!(
                "a {slot_bits}-bit slot does not fit a {plaintext_bits}-bit plaintext"
            ));
        }
        let qmax = (1u64 << params.value_bits) - 1;
        Ok(Self {
            params,
            slot_bits,
            slots,
            qmax,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &PackingParams {
        &self.params
    }

    /// Values per plaintext.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Bits per slot (value bits plus headroom).
    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }

    /// Plaintexts needed for `len` values.
    pub fn plaintexts_for(&self, len: usize) -> usize {
        len.div_ceil(self.slots)
    }

    /// The weight of a party that trained on `samples` samples: samples / max_samples.
    pub fn sample_factor(&self, samples: u64) -> Result<f64> {
        if samples == 0 || samples > self.params.max_samples {
            return Err(CryptoError::InvalidPacking(format!(
                "sample count {samples} not in 1..={}",
                self.params.max_samples
            )));
        }
        Ok(samples as f64 / self.params.max_samples as f64)
    }

    /// Quantize `factor * x` for each value x to [0, 2^b - 1]; NaN or infinite input is an
    /// error naming the index. `factor` is a [`Self::sample_factor`] (1.0 for no weighting).
    pub fn quantize<R: RngCore + ?Sized>(
        &self,
        values: &[f32],
        factor: f64,
        rng: &mut R,
    ) -> Result<Vec<u64>> {
        let clip = self.params.clip as f64;
        let scale = self.qmax as f64 / (2.0 * clip);
        values
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                if !x.is_finite() {
                    return Err(CryptoError::NonFinite { index: i });
                }
                let y = ((x as f64 * factor).clamp(-clip, clip) + clip) * scale;
                let q = match self.params.rounding {
                    Rounding::Nearest => y.round(),
                    Rounding::Stochastic => {
                        let floor = y.floor();
                        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                        if u < y - floor {
                            floor + 1.0
                        } else {
                            floor
                        }
                    }
                };
                Ok((q as u64).min(self.qmax))
            })
            .collect()
    }

    /// The value a quantized level stands for.
    pub fn dequantize_one(&self, q: f64) -> f32 {
        let clip = self.params.clip as f64;
        (q / self.qmax as f64 * 2.0 * clip - clip) as f32
    }

    /// Pack quantized values into plaintexts (slot 0 lowest).
    pub fn pack(&self, quantized: &[u64]) -> Result<Vec<Integer>> {
        if let Some(i) = quantized.iter().position(|&q| q > self.qmax) {
            return Err(CryptoError::InvalidPacking(format!(
                "value {i} exceeds {} bits",
                self.params.value_bits
            )));
        }
        Ok(quantized
            .chunks(self.slots)
            .map(|chunk| {
                let mut words =
                    vec![0u64; (chunk.len() * self.slot_bits as usize).div_ceil(64) + 1];
                for (j, &q) in chunk.iter().enumerate() {
                    write_bits(&mut words, j * self.slot_bits as usize, q);
                }
                Integer::from_digits(&words, Order::Lsf)
            })
            .collect())
    }

    /// Unpack summed plaintexts into `len` slot sums. `parties` is the number of packed
    /// vectors the sum carries; above `max_parties` the slots may have overflowed, an error.
    pub fn unpack(&self, plaintexts: &[Integer], len: usize, parties: u64) -> Result<Vec<u64>> {
        self.check_sum_shape(plaintexts, len, parties)?;
        let mut out = Vec::with_capacity(len);
        for (p, pt) in plaintexts.iter().enumerate() {
            out.extend(self.unpack_one(p, pt, len, parties)?);
        }
        Ok(out)
    }

    /// The first of summed plaintexts that does not unpack (the one a blame step asks the
    /// submitters to prove in range), or None when all do or the shape itself is wrong.
    pub fn first_unpackable(
        &self,
        plaintexts: &[Integer],
        len: usize,
        parties: u64,
    ) -> Option<usize> {
        self.check_sum_shape(plaintexts, len, parties).ok()?;
        plaintexts
            .iter()
            .enumerate()
            .position(|(p, pt)| self.unpack_one(p, pt, len, parties).is_err())
    }

    /// Whether summed plaintext `index` of a `len`-value vector fails to unpack for `parties`.
    pub fn unpacks_at(&self, index: usize, plaintext: &Integer, len: usize, parties: u64) -> bool {
        parties >= 1
            && parties <= self.params.max_parties as u64
            && index < self.plaintexts_for(len)
            && self.unpack_one(index, plaintext, len, parties).is_ok()
    }

    /// Slots used in plaintext `index` of a `len`-value vector (the last may be partial).
    pub fn used_slots(&self, index: usize, len: usize) -> usize {
        len.saturating_sub(index * self.slots).min(self.slots)
    }

    /// The quantized values packed into plaintext `index` of a vector of `quantized` values.
    pub fn slot_values<'a>(&self, index: usize, quantized: &'a [u64]) -> &'a [u64] {
        let start = (index * self.slots).min(quantized.len());
        let end = (start + self.slots).min(quantized.len());
        &quantized[start..end]
    }

    fn check_sum_shape(&self, plaintexts: &[Integer], len: usize, parties: u64) -> Result<()> {
        if parties == 0 || parties > self.params.max_parties as u64 {
            return Err(CryptoError::InvalidPacking(format!(
                "{parties} parties not in 1..={}",
                self.params.max_parties
            )));
        }
        if plaintexts.len() != self.plaintexts_for(len) {
            return Err(CryptoError::Mismatch(
                "plaintext count does not match the length",
            ));
        }
        Ok(())
    }

    /// The slot sums of summed plaintext `p`: each at most `parties` (2^b - 1), no bit beyond
    /// its used slots.
    fn unpack_one(&self, p: usize, pt: &Integer, len: usize, parties: u64) -> Result<Vec<u64>> {
        let limit = parties as u128 * self.qmax as u128;
        if *pt < 0 {
            return Err(CryptoError::Mismatch("negative plaintext"));
        }
        let words = pt.to_digits::<u64>(Order::Lsf);
        let here = self.used_slots(p, len);
        let mut out = Vec::with_capacity(here);
        for j in 0..here {
            let v = read_bits(&words, j * self.slot_bits as usize, self.slot_bits);
            if v as u128 > limit {
                return Err(CryptoError::InvalidPacking(format!(
                    "slot {} holds {v}, above {limit} for {parties} parties",
                    p * self.slots + j
                )));
            }
            out.push(v);
        }
        if pt.significant_bits() as usize > here * self.slot_bits as usize {
            return Err(CryptoError::InvalidPacking(format!(
                "plaintext {p} has bits beyond its {here} slots"
            )));
        }
        Ok(out)
    }

    /// The sample-weighted average of the original values from the slot sums of the parties
    /// with these sample counts (each within 1..=max_samples; at most max_parties of them).
    pub fn weighted_average(&self, sums: &[u64], samples: &[u64]) -> Result<Vec<f32>> {
        if samples.is_empty() || samples.len() > self.params.max_parties as usize {
            return Err(CryptoError::InvalidPacking(format!(
                "{} parties not in 1..={}",
                samples.len(),
                self.params.max_parties
            )));
        }
        let mut weight = 0f64;
        for &s in samples {
            weight += self.sample_factor(s)?;
        }
        let clip = self.params.clip as f64;
        let offset = samples.len() as f64 * clip;
        let step = 2.0 * clip / self.qmax as f64;
        Ok(sums
            .iter()
            .map(|&s| ((s as f64 * step - offset) / weight) as f32)
            .collect())
    }
}

fn write_bits(words: &mut [u64], bit: usize, value: u64) {
    let (w, o) = (bit / 64, bit % 64);
    words[w] |= value << o;
    if o > 0 {
        if let Some(next) = words.get_mut(w + 1) {
            *next |= value >> (64 - o);
        }
    }
}

fn read_bits(words: &[u64], bit: usize, len: u32) -> u64 {
    let (w, o) = (bit / 64, bit % 64);
    let lo = words.get(w).copied().unwrap_or(0) >> o;
    let hi = if o > 0 {
        words.get(w + 1).copied().unwrap_or(0) << (64 - o)
    } else {
        0
    };
    let v = lo | hi;
    if len >= 64 {
        v
    } else {
        v & ((1u64 << len) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_example_has_89_slots() {
        let p = Packer::new(PackingParams::default(), 2047).expect("valid");
        assert_eq!(p.slot_bits(), 23);
        assert_eq!(p.slots(), 89);
    }

    #[test]
    fn eight_bit_ten_parties_has_170_slots() {
        let params = PackingParams {
            value_bits: 8,
            max_parties: 10,
            ..PackingParams::default()
        };
        assert_eq!(Packer::new(params, 2047).expect("valid").slots(), 170);
    }

    #[test]
    fn overflowing_configs_are_rejected() {
        let big = PackingParams {
            value_bits: 32,
            max_parties: 1 << 20,
            ..PackingParams::default()
        };
        assert!(Packer::new(big, 40).is_err());
        let bad_bits = PackingParams {
            value_bits: 3,
            ..PackingParams::default()
        };
        assert!(Packer::new(bad_bits, 2047).is_err());
        let p = Packer::new(PackingParams::default(), 2047).expect("valid");
        assert!(p.pack(&[1, 1 << 16]).is_err());
        let packed = p.pack(&[1, 2]).expect("pack");
        assert!(p.unpack(&packed, 2, 101).is_err());
        assert!(p.sample_factor(0).is_err() && p.sample_factor(2).is_err());
    }
}
