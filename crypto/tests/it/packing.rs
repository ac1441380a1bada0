use fedchain_crypto::{Packer, PackingParams, Rounding};
use proptest::prelude::*;

use crate::common::rng;

fn params() -> impl Strategy<Value = PackingParams> {
    (
        8u32..=32,
        1u64..=5000,
        prop_oneof![Just(Rounding::Nearest), Just(Rounding::Stochastic)],
        0.01f32..10.0,
    )
        .prop_map(|(value_bits, max_weight, rounding, clip)| PackingParams {
            value_bits,
            clip,
            max_weight,
            rounding,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn pack_unpack_round_trips(p in params(), values in proptest::collection::vec(-20.0f32..20.0, 1..400), seed in any::<u64>()) {
        let packer = Packer::new(p, 2047).unwrap();
        let q = packer.quantize(&values, &mut rng(seed)).unwrap();
        let packed = packer.pack(&q, 1).unwrap();
        prop_assert_eq!(packed.len(), packer.plaintexts_for(values.len()));
        prop_assert_eq!(packer.unpack(&packed, values.len(), 1).unwrap(), q.clone());
        // dequantization error is at most one quantization step inside the clip range
        let clip = packer.params().clip;
        let step = 2.0 * clip as f64 / ((1u64 << packer.params().value_bits) - 1) as f64;
        for (x, y) in values.iter().zip(packer.dequantize_average(&q, 1)) {
            let xc = x.clamp(-clip, clip) as f64;
            prop_assert!((xc - y as f64).abs() <= step * 1.001 + 1e-6, "{} -> {}", x, y);
        }
    }

    #[test]
    fn packed_sum_equals_sum_of_quantized(p in params(), parties in 1usize..12, len in 1usize..200, seed in any::<u64>()) {
        let packer = Packer::new(p, 2047).unwrap();
        let max_w = packer.params().max_weight;
        let mut r = rng(seed);
        let mut total = 0u64;
        let mut plain = vec![0u64; len];
        let mut acc: Option<Vec<rug::Integer>> = None;
        for i in 0..parties {
            let w = 1 + (seed.wrapping_add(i as u64) % (max_w / parties as u64).max(1));
            if total + w > max_w { break; }
            total += w;
            let values: Vec<f32> = (0..len).map(|j| ((i * 31 + j) as f32).sin() * 3.0).collect();
            let q = packer.quantize(&values, &mut r).unwrap();
            for (s, v) in plain.iter_mut().zip(&q) { *s += v * w; }
            let packed = packer.pack(&q, w).unwrap();
            acc = Some(match acc {
                None => packed,
                Some(a) => a.into_iter().zip(packed).map(|(x, y)| x + y).collect(),
            });
        }
        if let Some(acc) = acc {
            prop_assert_eq!(packer.unpack(&acc, len, total).unwrap(), plain);
        }
    }
}

#[test]
fn stochastic_rounding_is_unbiased() {
    let packer = Packer::new(
        PackingParams {
            value_bits: 8,
            clip: 1.0,
            max_weight: 1,
            rounding: Rounding::Stochastic,
        },
        2047,
    )
    .unwrap();
    let x = vec![0.3013f32; 20000];
    let q = packer.quantize(&x, &mut rng(1)).unwrap();
    let mean = packer.dequantize_average(&[q.iter().sum::<u64>()], q.len() as u64)[0];
    assert!((mean - 0.3013).abs() < 1e-3, "{mean}");
}

#[test]
fn non_finite_values_are_errors() {
    let packer = Packer::new(PackingParams::default(), 2047).unwrap();
    assert!(packer.quantize(&[0.0, f32::NAN], &mut rng(1)).is_err());
    assert!(packer.quantize(&[f32::INFINITY], &mut rng(1)).is_err());
}

#[test]
fn corrupted_sums_are_detected() {
    let packer = Packer::new(PackingParams::default(), 2047).unwrap();
    let q = packer.quantize(&[0.5, -0.5], &mut rng(1)).unwrap();
    let mut packed = packer.pack(&q, 1).unwrap();
    packed[0] += rug::Integer::from(1) << 2000;
    assert!(packer.unpack(&packed, 2, 1).is_err());
}
