use fedchain_crypto::threshold::{KeyShare, ThresholdPublicKey, VectorDecryptionShare};
use fedchain_crypto::vector::{aggregate, decrypt_average, encrypt_update};
use fedchain_crypto::{
    deal, CryptoError, Decode, Encode, Encryptor, Integer, Packer, PackingParams,
};
use proptest::prelude::*;

use crate::common::{fixture_primes, rng, small_threshold};

fn encrypt_values(values: &[u64], seed: u64) -> Vec<fedchain_crypto::Ciphertext> {
    let pk = small_threshold().public.public_key();
    let mut r = rng(seed);
    values
        .iter()
        .map(|&v| pk.encrypt(&Integer::from(v), &mut r).unwrap())
        .collect()
}

fn shares_for(
    cs: &[fedchain_crypto::Ciphertext],
    holders: &[u32],
    seed: u64,
) -> Vec<VectorDecryptionShare> {
    let k = small_threshold();
    holders
        .iter()
        .map(|&h| {
            k.shares[h as usize - 1]
                .decrypt_share(&k.public, cs, &mut rng(seed + h as u64))
                .unwrap()
        })
        .collect()
}

#[test]
fn any_t_of_n_decrypts_and_t_minus_1_does_not() {
    let k = small_threshold();
    let values = [0u64, 1, 42, u64::MAX];
    let cs = encrypt_values(&values, 10);
    let want: Vec<Integer> = values.iter().map(|&v| Integer::from(v)).collect();
    // every 3-subset of 5 holders
    for a in 1..=5u32 {
        for b in a + 1..=5 {
            for c in b + 1..=5 {
                let shares = shares_for(&cs, &[c, a, b], 20);
                assert_eq!(
                    k.public.combine(&cs, &shares).unwrap(),
                    want,
                    "holders {a},{b},{c}"
                );
            }
        }
    }
    let two = shares_for(&cs, &[1, 2], 30);
    assert_eq!(
        k.public.combine(&cs, &two),
        Err(CryptoError::InsufficientShares { needed: 3, have: 2 })
    );
    // interpolating t-1 shares gives garbage, not the plaintext
    let garbage = k.public.interpolate_unchecked(&two).unwrap();
    assert_ne!(garbage, want);
}

#[test]
fn tampered_shares_and_proofs_name_their_holder() {
    let k = small_threshold();
    let cs = encrypt_values(&[5, 6, 7], 40);
    let good = shares_for(&cs, &[1, 2, 4], 50);
    let n2 = k.public.public_key().n_squared().clone();

    let mut bad_value = good.clone();
    bad_value[1].values[2] = Integer::from(&bad_value[1].values[2] * 4u32) % &n2;
    assert_eq!(
        k.public.combine(&cs, &bad_value),
        Err(CryptoError::InvalidShareProof { holder: 2 })
    );

    let mut bad_z = good.clone();
    bad_z[2].proof.z += 1;
    assert_eq!(
        k.public.combine(&cs, &bad_z),
        Err(CryptoError::InvalidShareProof { holder: 4 })
    );

    let mut bad_e = good.clone();
    bad_e[0].proof.e ^= Integer::from(1);
    assert_eq!(
        k.public.combine(&cs, &bad_e),
        Err(CryptoError::InvalidShareProof { holder: 1 })
    );

    // a share made for other ciphertexts does not verify against these
    let other = encrypt_values(&[5, 6, 8], 41);
    let moved = shares_for(&other, &[3], 60);
    assert_eq!(
        k.public.verify_share(&cs, &moved[0]),
        Err(CryptoError::InvalidShareProof { holder: 3 })
    );

    // a share claiming another holder's identity
    let mut impostor = good[0].clone();
    impostor.holder = 5;
    assert_eq!(
        k.public.verify_share(&cs, &impostor),
        Err(CryptoError::InvalidShareProof { holder: 5 })
    );

    let mut dup = good.clone();
    dup[1] = dup[0].clone();
    assert_eq!(
        k.public.combine(&cs, &dup),
        Err(CryptoError::DuplicateShare { holder: 1 })
    );

    let mut unknown = good.clone();
    unknown[0].holder = 9;
    assert_eq!(
        k.public.combine(&cs, &unknown),
        Err(CryptoError::UnknownHolder {
            holder: 9,
            parties: 5
        })
    );

    // a share value outside the group
    let mut zero = good;
    zero[0].values[0] = Integer::new();
    assert_eq!(
        k.public.combine(&cs, &zero),
        Err(CryptoError::InvalidShareProof { holder: 1 })
    );
}

#[test]
fn key_shares_serialize_one_holder_each() {
    let k = small_threshold();
    for s in &k.shares {
        let bytes = s.to_bytes();
        let back = KeyShare::from_bytes(&bytes).unwrap();
        assert_eq!(&back, s);
        back.check_key(&k.public).unwrap();
        // the encoding carries exactly one secret
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["holder"], s.holder());
    }
    let tpk_bytes = k.public.to_bytes();
    assert_eq!(
        ThresholdPublicKey::from_bytes(&tpk_bytes).unwrap(),
        k.public
    );
    let json = serde_json::to_string(&k.public).unwrap();
    assert_eq!(
        serde_json::from_str::<ThresholdPublicKey>(&json).unwrap(),
        k.public
    );
    // a share of another key is refused
    let (p, q) = fixture_primes(512);
    let other = deal(&p, &q, 5, 3, &mut rng(99)).unwrap();
    assert!(other.shares[0].check_key(&k.public).is_err());
    let cs = encrypt_values(&[1], 1);
    assert!(other.shares[0]
        .decrypt_share(&k.public, &cs, &mut rng(1))
        .is_err());
}

#[test]
fn dealer_rejects_bad_parameters() {
    let (p, q) = fixture_primes(512);
    assert!(deal(&p, &q, 5, 6, &mut rng(1)).is_err());
    assert!(deal(&p, &q, 5, 0, &mut rng(1)).is_err());
    assert!(deal(&p, &p, 5, 3, &mut rng(1)).is_err());
    assert!(deal(&Integer::from(&p + 2u32), &q, 5, 3, &mut rng(1)).is_err());
}

#[test]
fn encrypted_fedavg_pipeline_matches_plain_average() {
    let k = small_threshold();
    let pk = k.public.public_key();
    let params = PackingParams {
        value_bits: 16,
        clip: 1.0,
        max_parties: 5,
        max_samples: 400,
        ..PackingParams::default()
    };
    let packer = Packer::new(params, pk.plaintext_bits()).unwrap();
    let enc = Encryptor::new(pk.clone(), 6).unwrap();
    let len = 50;
    let weights = [100u64, 250, 30, 400];
    let updates: Vec<Vec<f32>> = (0..weights.len())
        .map(|h| {
            (0..len)
                .map(|i| ((i as f32 * 0.37 + h as f32).sin()) * 0.9)
                .collect()
        })
        .collect();
    let mut r = rng(70);
    let encrypted: Vec<_> = updates
        .iter()
        .zip(weights)
        .map(|(u, w)| {
            encrypt_update(&enc, &packer, u, w, b"test", &mut rng(71), &mut r)
                .unwrap()
                .ciphertexts
        })
        .collect();
    let agg = aggregate(pk, &encrypted).unwrap();
    let total: u64 = weights.iter().sum();
    let factors: Vec<f64> = weights
        .iter()
        .map(|&w| packer.sample_factor(w).unwrap())
        .collect();
    let shares: Vec<_> = [2u32, 3, 5]
        .iter()
        .map(|&h| {
            k.shares[h as usize - 1]
                .decrypt_share(&k.public, &agg.0, &mut r)
                .unwrap()
        })
        .collect();
    let avg = decrypt_average(&k.public, &packer, &agg, &shares, len, &weights).unwrap();
    // exact: the decrypted average is the weighted average of the quantized scaled values
    let quantized: Vec<Vec<u64>> = updates
        .iter()
        .zip(&factors)
        .map(|(u, &f)| packer.quantize(u, f, &mut r).unwrap())
        .collect();
    let sums: Vec<u64> = (0..len)
        .map(|i| quantized.iter().map(|q| q[i]).sum())
        .collect();
    assert_eq!(avg, packer.weighted_average(&sums, &weights).unwrap());
    // each of the k parties rounds its scaled value by at most half a step of 2 / 65535
    let bound = weights.len() as f64 / 65535.0 / factors.iter().sum::<f64>() + 1e-6;
    for i in 0..len {
        let plain: f32 = updates
            .iter()
            .zip(weights)
            .map(|(u, w)| u[i] * w as f32)
            .sum::<f32>()
            / total as f32;
        assert!(
            ((avg[i] - plain).abs() as f64) < bound,
            "slot {i}: {} vs {plain}",
            avg[i]
        );
    }
    // the vector's bytes decode and digest stably
    let bytes = agg.to_bytes(pk);
    let back = fedchain_crypto::CiphertextVector::from_bytes(pk, &bytes).unwrap();
    assert_eq!(back.digest(pk), agg.digest(pk));
    let sb = shares[0].to_bytes(pk);
    assert_eq!(
        VectorDecryptionShare::from_bytes(pk, &sb).unwrap(),
        shares[0]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn random_subsets_of_t_decrypt(holders in proptest::sample::subsequence(vec![1u32, 2, 3, 4, 5], 3..=5), v in any::<u64>(), seed in any::<u64>()) {
        let k = small_threshold();
        let cs = encrypt_values(&[v], seed);
        let shares = shares_for(&cs, &holders, seed);
        prop_assert_eq!(k.public.combine(&cs, &shares).unwrap(), vec![Integer::from(v)]);
    }
}

#[test]
fn a_key_share_that_does_not_match_its_verification_key_is_refused() {
    let k = small_threshold();
    for s in &k.shares {
        s.check_key(&k.public).unwrap();
    }
    // holder 2's secret relabelled as holder 1 (the holder index is the body's first u32)
    let mut bytes = k.shares[1].to_bytes();
    bytes[4..8].copy_from_slice(&1u32.to_be_bytes());
    let wrong = KeyShare::from_bytes(&bytes).unwrap();
    assert_eq!(
        wrong.check_key(&k.public),
        Err(CryptoError::ShareKeyMismatch { holder: 1 })
    );
}
