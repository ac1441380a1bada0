use fedchain_crypto::{Packer, PackingParams, Rounding};
use proptest::prelude::*;

use crate::common::rng;

fn params() -> impl Strategy<Value = PackingParams> {
    (
        4u32..=32,
        1u32..=5000,
        1u64..=100_000,
        prop_oneof![Just(Rounding::Nearest), Just(Rounding::Stochastic)],
        0.01f32..10.0,
    )
        .prop_map(
            |(value_bits, max_parties, max_samples, rounding, clip)| PackingParams {
                value_bits,
                clip,
                max_parties,
                max_samples,
                rounding,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn pack_unpack_round_trips(p in params(), values in proptest::collection::vec(-20.0f32..20.0, 1..400), seed in any::<u64>()) {
        let packer = Packer::new(p, 2047).unwrap();
        let q = packer.quantize(&values, 1.0, &mut rng(seed)).unwrap();
        let packed = packer.pack(&q).unwrap();
        prop_assert_eq!(packed.len(), packer.plaintexts_for(values.len()));
        prop_assert_eq!(packer.unpack(&packed, values.len(), 1).unwrap(), q.clone());
        let max = packer.params().max_samples;
        // dequantization error is at most one quantization step inside the clip range
        let clip = packer.params().clip;
        let step = 2.0 * clip as f64 / ((1u64 << packer.params().value_bits) - 1) as f64;
        for (x, y) in values.iter().zip(packer.weighted_average(&q, &[max]).unwrap()) {
            let xc = x.clamp(-clip, clip) as f64;
            prop_assert!((xc - y as f64).abs() <= step * 1.001 + 1e-6, "{} -> {}", x, y);
        }
    }

    #[test]
    fn packed_sum_equals_sum_of_quantized(p in params(), parties in 1usize..12, len in 1usize..200, seed in any::<u64>()) {
        let packer = Packer::new(p, 2047).unwrap();
        let parties = parties.min(packer.params().max_parties as usize);
        let max_s = packer.params().max_samples;
        let mut r = rng(seed);
        let mut plain = vec![0u64; len];
        let mut acc: Option<Vec<rug::Integer>> = None;
        for i in 0..parties {
            let samples = 1 + seed.wrapping_add(i as u64) % max_s;
            let values: Vec<f32> = (0..len).map(|j| ((i * 31 + j) as f32).sin() * 3.0).collect();
            let f = packer.sample_factor(samples).unwrap();
            let q = packer.quantize(&values, f, &mut r).unwrap();
            for (s, v) in plain.iter_mut().zip(&q) { *s += v; }
            let packed = packer.pack(&q).unwrap();
            acc = Some(match acc {
                None => packed,
                Some(a) => a.into_iter().zip(packed).map(|(x, y)| x + y).collect(),
            });
        }
        if let Some(acc) = acc {
            prop_assert_eq!(packer.unpack(&acc, len, parties as u64).unwrap(), plain);
        }
    }
}

#[test]
fn stochastic_rounding_is_unbiased() {
    let packer = Packer::new(
        PackingParams {
            value_bits: 8,
            clip: 1.0,
            max_parties: 1,
            max_samples: 1,
            rounding: Rounding::Stochastic,
        },
        2047,
    )
    .unwrap();
    let x = vec![0.3013f32; 20000];
    let q = packer.quantize(&x, 1.0, &mut rng(1)).unwrap();
    let mean = q
        .iter()
        .map(|&l| packer.dequantize_one(l as f64) as f64)
        .sum::<f64>()
        / q.len() as f64;
    assert!((mean - 0.3013).abs() < 1e-3, "{mean}");
}

#[test]
fn four_bit_stochastic_sums_are_unbiased_weighted_averages() {
    // 10 parties of unequal size, 4-bit values: the weighted average is right on average
    let packer = Packer::new(
        PackingParams {
            value_bits: 4,
            clip: 1.0,
            max_parties: 10,
            max_samples: 500,
            rounding: Rounding::Stochastic,
        },
        2047,
    )
    .unwrap();
    assert_eq!(packer.slots(), 255);
    let samples: Vec<u64> = (0..10).map(|i| 50 + 45 * i).collect();
    let values: Vec<f32> = (0..10).map(|i| -0.5 + 0.1 * i as f32).collect();
    let want: f64 = samples
        .iter()
        .zip(&values)
        .map(|(&s, &v)| s as f64 * v as f64)
        .sum::<f64>()
        / samples.iter().sum::<u64>() as f64;
    let len = 4000;
    let mut r = rng(9);
    let mut sums = vec![0u64; len];
    for (&s, &v) in samples.iter().zip(&values) {
        let q = packer
            .quantize(&vec![v; len], packer.sample_factor(s).unwrap(), &mut r)
            .unwrap();
        let packed = packer.pack(&q).unwrap();
        let back = packer.unpack(&packed, len, 1).unwrap();
        for (a, b) in sums.iter_mut().zip(back) {
            *a += b;
        }
    }
    let avg = packer.weighted_average(&sums, &samples).unwrap();
    let mean = avg.iter().map(|&x| x as f64).sum::<f64>() / len as f64;
    assert!((mean - want).abs() < 2e-3, "{mean} vs {want}");
}

#[test]
fn non_finite_values_are_errors() {
    let packer = Packer::new(PackingParams::default(), 2047).unwrap();
    assert!(packer.quantize(&[0.0, f32::NAN], 1.0, &mut rng(1)).is_err());
    assert!(packer.quantize(&[f32::INFINITY], 1.0, &mut rng(1)).is_err());
}

#[test]
fn corrupted_sums_are_detected() {
    let packer = Packer::new(PackingParams::default(), 2047).unwrap();
    let q = packer.quantize(&[0.5, -0.5], 1.0, &mut rng(1)).unwrap();
    let mut packed = packer.pack(&q).unwrap();
    packed[0] += rug::Integer::from(1) << 2000;
    assert!(packer.unpack(&packed, 2, 1).is_err());
}
