//! Decryption shares: `VectorDecryptionShare::from_bytes` under the fixture key, a round trip,
//! then `ThresholdPublicKey::verify_share` against the fixture ciphertexts and `combine` with
//! a valid share of another fixture holder (what the aggregator and the verifier run on a share payload).
#![no_main]

use fedchain_crypto::VectorDecryptionShare;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tpk = fedchain_fuzz::tpk();
    let pk = tpk.public_key();
    let Ok(share) = VectorDecryptionShare::from_bytes(pk, data) else {
        return;
    };
    let again =
        VectorDecryptionShare::from_bytes(pk, &share.to_bytes(pk)).expect("re-encoding decodes");
    assert_eq!(again, share);
    let cts = fedchain_fuzz::ciphertexts();
    if tpk.verify_share(cts, &share).is_ok() {
        let other = if share.holder == 1 { 2 } else { 1 };
        let _ = tpk.combine(
            cts,
            &[share, fedchain_fuzz::decryption_share(other).clone()],
        );
    }
});
