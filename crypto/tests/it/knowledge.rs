//! Proofs of plaintext knowledge: honest proofs verify, and nobody can prove a copy of
//! another party's ciphertexts (THREAT-MODEL A2) or move a proof to another context.

use fedchain_crypto::knowledge::{self, KnowledgeProof};
use fedchain_crypto::vector::{encrypt_update, ProvenVector};
use fedchain_crypto::{CryptoError, Encode, Encryptor, Integer, Packer, PackingParams};
use proptest::prelude::*;

use crate::common::{rng, small_threshold};

fn packer() -> Packer {
    let pk = small_threshold().public.public_key();
    Packer::new(
        PackingParams {
            value_bits: 8,
            clip: 1.0,
            max_parties: 5,
            max_samples: 100,
            rounding: Default::default(),
        },
        pk.plaintext_bits(),
    )
    .unwrap()
}

fn encryptor() -> Encryptor {
    Encryptor::new(small_threshold().public.public_key().clone(), 4).unwrap()
}

fn update(len: usize, seed: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i as f32 + seed) * 0.71).sin() * 0.5)
        .collect()
}

fn proven(update: &[f32], context: &[u8], seed: u64) -> ProvenVector {
    encrypt_update(
        &encryptor(),
        &packer(),
        update,
        10,
        context,
        &mut rng(seed),
        &mut rng(seed + 1),
    )
    .unwrap()
}

#[test]
fn an_honest_proof_verifies_and_survives_the_codec() {
    let pk = small_threshold().public.public_key();
    for len in [1usize, 7, 300] {
        let v = proven(&update(len, 1.0), b"victim/round-3", 5);
        assert!(!v.ciphertexts.is_empty());
        v.verify(pk, b"victim/round-3").unwrap();
        let back = ProvenVector::from_bytes(pk, &v.to_bytes(pk)).unwrap();
        assert_eq!(back, v);
        back.verify(pk, b"victim/round-3").unwrap();
    }
}

#[test]
fn a_proof_is_bound_to_its_context() {
    let pk = small_threshold().public.public_key();
    let v = proven(&update(40, 2.0), b"chain/job-0/round-1/hospital-a", 9);
    for other in [
        &b"chain/job-0/round-1/hospital-b"[..],
        b"chain/job-0/round-2/hospital-a",
        b"",
    ] {
        assert_eq!(v.verify(pk, other), Err(CryptoError::InvalidKnowledgeProof));
    }
}

/// A2: a colluder takes the victim's submitted vector and resubmits it as its own, as is or
/// re-randomised. Without the victim's plaintexts it has no valid proof for its own context.
#[test]
fn a02_resubmitted_copy_has_no_proof_of_knowledge() {
    let pk = small_threshold().public.public_key();
    let victim = proven(&update(60, 3.0), b"victim", 11);
    victim.verify(pk, b"victim").unwrap();
    // the victim's proof, presented under the colluder's identity
    assert_eq!(
        victim.verify(pk, b"colluder"),
        Err(CryptoError::InvalidKnowledgeProof)
    );
    // re-randomised copy: c_j * h_s^b_j, with the victim's proof
    let mut r = rng(12);
    let rerandomised: Vec<_> = victim
        .ciphertexts
        .0
        .iter()
        .map(|c| pk.rerandomize(c, &mut r))
        .collect();
    let copy = ProvenVector {
        ciphertexts: fedchain_crypto::CiphertextVector(rerandomised.clone()),
        proof: victim.proof.clone(),
    };
    assert_eq!(
        copy.verify(pk, b"colluder"),
        Err(CryptoError::InvalidKnowledgeProof)
    );
    assert_eq!(
        copy.verify(pk, b"victim"),
        Err(CryptoError::InvalidKnowledgeProof)
    );
    // the colluder proves with a guessed witness (zeros): the proof does not verify either
    let zeros = vec![Integer::new(); rerandomised.len()];
    let exps: Vec<_> = (0..rerandomised.len())
        .map(|_| fedchain_crypto::num::SecretInt(Integer::from(1)))
        .collect();
    let forged =
        knowledge::prove(pk, &rerandomised, &zeros, &exps, b"colluder", &mut rng(13)).unwrap();
    assert_eq!(
        knowledge::verify(pk, &rerandomised, &forged, b"colluder"),
        Err(CryptoError::InvalidKnowledgeProof)
    );
}

#[test]
fn altered_proofs_and_ciphertexts_are_refused() {
    let pk = small_threshold().public.public_key();
    let v = proven(&update(200, 4.0), b"ctx", 21);
    assert!(v.ciphertexts.len() >= 2);
    let bump = |x: &Integer| Integer::from(x + 1);
    let mut bad = v.clone();
    bad.proof.e = bump(&bad.proof.e);
    assert!(bad.verify(pk, b"ctx").is_err());
    let mut bad = v.clone();
    bad.proof.z_m = bump(&bad.proof.z_m);
    assert!(bad.verify(pk, b"ctx").is_err());
    let mut bad = v.clone();
    bad.proof.z_a = bump(&bad.proof.z_a);
    assert!(bad.verify(pk, b"ctx").is_err());
    // an oversized response is refused before any exponentiation
    let mut bad = v.clone();
    bad.proof.z_a = Integer::from(1) << 100_000;
    assert!(bad.verify(pk, b"ctx").is_err());
    let mut bad = v.clone();
    bad.proof.z_m = pk.n().clone();
    assert!(bad.verify(pk, b"ctx").is_err());
    // one ciphertext swapped for an encryption of something else
    let mut bad = v.clone();
    bad.ciphertexts.0[1] = pk.encrypt(&Integer::from(7), &mut rng(22)).unwrap();
    assert!(bad.verify(pk, b"ctx").is_err());
    // a dropped ciphertext
    let mut bad = v.clone();
    bad.ciphertexts.0.pop();
    assert!(bad.verify(pk, b"ctx").is_err());
    // no ciphertexts at all
    let empty = KnowledgeProof {
        e: Integer::new(),
        z_m: Integer::new(),
        z_a: Integer::new(),
    };
    assert!(knowledge::verify(pk, &[], &empty, b"ctx").is_err());
}

#[test]
fn mismatched_witness_lengths_are_an_error() {
    let pk = small_threshold().public.public_key();
    let c = pk.encrypt(&Integer::from(1), &mut rng(30)).unwrap();
    assert!(knowledge::prove(pk, &[c], &[], &[], b"x", &mut rng(31)).is_err());
}

#[test]
fn two_encryptions_of_one_update_differ() {
    // the same rounding seed (public) with fresh secret randomness: same plaintexts, other
    // ciphertexts (A3/A4 at the crypto layer)
    let pk = small_threshold().public.public_key();
    let enc = encryptor();
    let u = update(30, 5.0);
    let mk = |secret: u64| {
        encrypt_update(&enc, &packer(), &u, 10, b"c", &mut rng(1), &mut rng(secret)).unwrap()
    };
    let (a, b) = (mk(100), mk(200));
    assert_ne!(a.ciphertexts, b.ciphertexts);
    assert_ne!(a.proof, b.proof);
    a.verify(pk, b"c").unwrap();
    b.verify(pk, b"c").unwrap();
    let _ = pk.to_bytes();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn random_updates_prove_and_verify(seed in 0u64..1_000_000, len in 1usize..120) {
        let pk = small_threshold().public.public_key();
        let v = proven(&update(len, seed as f32), &seed.to_be_bytes(), seed);
        prop_assert!(v.verify(pk, &seed.to_be_bytes()).is_ok());
    }

    #[test]
    fn mutated_bytes_never_panic(seed in 0u64..1_000, at in 0usize..4096, byte: u8) {
        let pk = small_threshold().public.public_key();
        let v = proven(&update(5, 1.0), b"m", seed);
        let mut bytes = v.to_bytes(pk);
        let i = at % bytes.len();
        bytes[i] ^= byte.max(1);
        if let Ok(back) = ProvenVector::from_bytes(pk, &bytes) {
            prop_assert!(back.verify(pk, b"m").is_err());
        }
        prop_assert!(ProvenVector::from_bytes(pk, &bytes[..i]).is_err());
    }
}
