//! Key material from outside: `ThresholdPublicKey::from_bytes` (a job's key, read from the
//! chain or `threshold_key.fc`), `KeyShare::from_bytes` (an opened sealed share) with
//! `check_key` against the fixture key, and the Paillier `PublicKey` in its binary form and its
//! serde form (JSON). What decodes must round-trip.
#![no_main]

use fedchain_crypto::{Decode, Encode, KeyShare, PublicKey, ThresholdPublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = ThresholdPublicKey::from_bytes(data) {
        let again = ThresholdPublicKey::from_bytes(&k.to_bytes()).expect("re-encoding decodes");
        assert_eq!(again, k);
        let _ = k.public_key().fingerprint();
    }
    if let Ok(s) = KeyShare::from_bytes(data) {
        let again = KeyShare::from_bytes(&s.to_bytes()).expect("re-encoding decodes");
        assert!(again == s, "key share round trip");
        let _ = s.check_key(fedchain_fuzz::tpk());
    }
    if let Ok(k) = PublicKey::from_bytes(data) {
        let again = PublicKey::from_bytes(&k.to_bytes()).expect("re-encoding decodes");
        assert_eq!(again, k);
    }
    if let Ok(k) = serde_json::from_slice::<PublicKey>(data) {
        let json = serde_json::to_vec(&k).expect("encodes");
        let again: PublicKey = serde_json::from_slice(&json).expect("re-encoding decodes");
        assert_eq!(again, k);
    }
});
