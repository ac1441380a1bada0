//! Submission payloads under the fixture key: `CiphertextVector::from_bytes` and
//! `ProvenVector::from_bytes` (every ciphertext checked to be in Z*_{n^2}), then `verify` of
//! the proof of plaintext knowledge in the fixture context, as the aggregator, the holders and
//! the verifier do. What decodes must re-encode to bytes that decode to the same value.
#![no_main]

use fedchain_crypto::{CiphertextVector, ProvenVector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pk = fedchain_fuzz::pk();
    if let Ok(v) = CiphertextVector::from_bytes(pk, data) {
        // fixed-width ciphertexts and a header: the encoding is canonical
        assert_eq!(v.to_bytes(pk), data);
        let _ = v.digest(pk);
    }
    if let Ok(v) = ProvenVector::from_bytes(pk, data) {
        let again = ProvenVector::from_bytes(pk, &v.to_bytes(pk)).expect("re-encoding decodes");
        assert_eq!(again, v);
        let _ = v.verify(pk, &fedchain_fuzz::submission_context(0));
    }
});
