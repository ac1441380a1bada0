use fedchain_crypto::identity::{aggregate, verify_aggregate, Signature, SigningKey, VerifyingKey};
use fedchain_crypto::CryptoError;

use crate::common::rng;

#[test]
fn sign_verify_and_round_trip() {
    let sk = SigningKey::generate(&mut rng(1));
    let vk = sk.verifying_key();
    let sig = sk.sign(b"round 1 of job 7");
    assert!(vk.verify(b"round 1 of job 7", &sig));
    assert!(!vk.verify(b"round 2 of job 7", &sig));
    let other = SigningKey::generate(&mut rng(2)).verifying_key();
    assert!(!other.verify(b"round 1 of job 7", &sig));
    assert_eq!(VerifyingKey::from_bytes(&vk.to_bytes()).unwrap(), vk);
    assert_eq!(Signature::from_bytes(&sig.to_bytes()).unwrap(), sig);
    let sk2 = SigningKey::from_bytes(&sk.to_bytes()).unwrap();
    assert_eq!(sk2.verifying_key(), vk);
    let json = serde_json::to_string(&vk).unwrap();
    assert_eq!(serde_json::from_str::<VerifyingKey>(&json).unwrap(), vk);
    // deterministic from a seed
    assert_eq!(
        SigningKey::from_seed(&[7; 32]).verifying_key(),
        SigningKey::from_seed(&[7; 32]).verifying_key()
    );
    assert!(
        VerifyingKey::from_bytes(&[0u8; 48]).is_err()
            || VerifyingKey::from_bytes(&[0u8; 48]).is_ok()
    );
    assert!(VerifyingKey::from_bytes(&[1u8; 47]).is_err());
    assert!(Signature::from_bytes(&[3u8; 96]).is_err());
}

#[test]
fn aggregate_over_distinct_messages() {
    let keys: Vec<SigningKey> = (0..5)
        .map(|i| SigningKey::generate(&mut rng(10 + i)))
        .collect();
    let msgs: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("block 9 signer {i}").into_bytes())
        .collect();
    let sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let agg = aggregate(&sigs).unwrap();
    let vks: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    assert!(verify_aggregate(&agg, &refs, &vks).unwrap());
    // a missing signer fails
    let partial = aggregate(&sigs[..4]).unwrap();
    assert!(!verify_aggregate(&partial, &refs, &vks).unwrap());
    // swapped keys fail
    let mut swapped = vks.clone();
    swapped.swap(0, 1);
    assert!(!verify_aggregate(&agg, &refs, &swapped).unwrap());
    // repeated messages are refused outright
    let rep: Vec<&[u8]> = vec![b"same", b"same"];
    assert_eq!(
        verify_aggregate(&agg, &rep, &vks[..2]),
        Err(CryptoError::RepeatedMessage { index: 1 })
    );
}
