//! Fuzz-style tests: random and mutated bytes into every decoder return errors, never panic.

use fedchain_crypto::threshold::{KeyShare, ThresholdPublicKey, VectorDecryptionShare};
use fedchain_crypto::{CiphertextVector, Decode, Encode, PublicKey};
use proptest::prelude::*;

use crate::common::{rng, small_threshold};

fn decode_all(bytes: &[u8]) {
    let pk = small_threshold().public.public_key();
    let _ = PublicKey::from_bytes(bytes);
    let _ = ThresholdPublicKey::from_bytes(bytes);
    let _ = KeyShare::from_bytes(bytes);
    let _ = CiphertextVector::from_bytes(pk, bytes);
    let _ = VectorDecryptionShare::from_bytes(pk, bytes);
    let _ = fedchain_crypto::identity::Signature::from_bytes(bytes);
    let _ = fedchain_crypto::identity::VerifyingKey::from_bytes(bytes);
    let _ = fedchain_crypto::identity::SigningKey::from_bytes(bytes);
}

fn valid_encodings() -> Vec<Vec<u8>> {
    let k = small_threshold();
    let pk = k.public.public_key();
    let mut r = rng(1);
    let cs: Vec<_> = (0..3u32)
        .map(|i| pk.encrypt(&i.into(), &mut r).unwrap())
        .collect();
    let share = k.shares[0].decrypt_share(&k.public, &cs, &mut r).unwrap();
    vec![
        pk.to_bytes(),
        k.public.to_bytes(),
        k.shares[0].to_bytes(),
        CiphertextVector(cs).to_bytes(pk),
        share.to_bytes(pk),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode_all(&bytes);
        // the same with a valid header for every kind
        for kind in 1u8..=8 {
            let mut b = vec![b'F', b'C', 1, kind];
            b.extend_from_slice(&bytes);
            decode_all(&b);
        }
    }

    #[test]
    fn mutated_encodings_never_panic(which in 0usize..5, pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let encs = valid_encodings();
        let mut e = encs[which].clone();
        let i = pos.index(e.len());
        e[i] = byte;
        decode_all(&e);
        let c = cut.index(e.len());
        decode_all(&e[..c]);
    }
}

#[test]
fn truncation_and_trailing_bytes_are_typed_errors() {
    let k = small_threshold();
    let pk = k.public.public_key();
    let bytes = pk.to_bytes();
    for cut in 0..bytes.len() {
        let e = PublicKey::from_bytes(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(e, fedchain_crypto::CryptoError::Decode { .. }),
            "{e}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(PublicKey::from_bytes(&long).is_err());
    let mut wrong_version = bytes;
    wrong_version[2] = 9;
    assert!(PublicKey::from_bytes(&wrong_version)
        .unwrap_err()
        .to_string()
        .contains("version"));
}

#[test]
fn out_of_group_ciphertexts_in_a_vector_are_rejected() {
    let k = small_threshold();
    let pk = k.public.public_key();
    let mut r = rng(2);
    let cs: Vec<_> = (0..2u32)
        .map(|i| pk.encrypt(&i.into(), &mut r).unwrap())
        .collect();
    let mut bytes = CiphertextVector(cs).to_bytes(pk);
    let w = pk.ciphertext_bytes();
    // second ciphertext := 0
    let start = bytes.len() - w;
    bytes[start..].fill(0);
    let e = CiphertextVector::from_bytes(pk, &bytes).unwrap_err();
    assert_eq!(
        e,
        fedchain_crypto::CryptoError::InvalidCiphertext {
            index: 1,
            reason: "not in (0, n^2)"
        }
    );
    // second ciphertext := n (shares a factor with n)
    let mut fixed = Vec::new();
    fedchain_crypto::num::to_fixed_be(pk.n(), w, &mut fixed);
    bytes[start..].copy_from_slice(&fixed);
    assert!(matches!(
        CiphertextVector::from_bytes(pk, &bytes),
        Err(fedchain_crypto::CryptoError::InvalidCiphertext { index: 1, .. })
    ));
    // second ciphertext := 0xff..ff >= n^2
    bytes[start..].fill(0xff);
    assert!(CiphertextVector::from_bytes(pk, &bytes).is_err());
}
