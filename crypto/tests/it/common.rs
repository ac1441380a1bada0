use std::sync::OnceLock;

use fedchain_crypto::{deal, DealtKey, Integer, PrivateKey};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Safe primes from the checked-in fixture for a modulus of `bits` bits.
pub fn fixture_primes(bits: u32) -> (Integer, Integer) {
    let path = format!(
        "{}/tests/fixtures/safe_primes_{bits}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p = Integer::from_str_radix(v["p"].as_str().unwrap(), 16).unwrap();
    let q = Integer::from_str_radix(v["q"].as_str().unwrap(), 16).unwrap();
    (p, q)
}

/// A plain Paillier key on the 512-bit fixture.
pub fn small_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (p, q) = fixture_primes(512);
        PrivateKey::from_primes(p, q, &mut rng(1)).unwrap()
    })
}

/// A 3-of-5 threshold key on the 512-bit fixture.
pub fn small_threshold() -> &'static DealtKey {
    static KEY: OnceLock<DealtKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (p, q) = fixture_primes(512);
        deal(&p, &q, 5, 3, &mut rng(2)).unwrap()
    })
}
