//! A sealed key share (`job/shares/<name>.share.enc`, net/src/sealed.rs) as a hospital opens
//! it: `SealedHeader::parse`, `sealed::open` with the fixture X25519 secret for holder 1 of the
//! fixture key, and then what `Bundle::open_share` does with the plaintext:
//! `KeyShare::from_bytes` and `check_key`.
#![no_main]

use fedchain_crypto::{Decode, KeyShare};
use fedchain_net::sealed::{self, SealedHeader};
use libfuzzer_sys::fuzz_target;
use x25519_dalek::StaticSecret;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = SealedHeader::parse(data) {
        let _ = h.holder;
    }
    let secret = StaticSecret::from(fedchain_fuzz::SHARE_SECRET);
    let tpk = fedchain_fuzz::tpk();
    if let Ok(plain) = sealed::open(&secret, tpk.public_key().fingerprint(), 1, data) {
        if let Ok(share) = KeyShare::from_bytes(&plain) {
            let _ = share.check_key(tpk);
        }
    }
});
