//! Generate the safe-prime key fixtures the tests and benchmarks load, so that no test spends
//! minutes searching for safe primes. Run once:
//! `cargo run --release -p fedchain-crypto --example gen_fixtures -- 512 1024 2048`
//! Writes crypto/tests/fixtures/safe_primes_<bits>.json.

use std::time::Instant;

use fedchain_crypto::paillier::safe_prime_pair;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::create_dir_all(&dir)?;
    let mut rng = rand::rngs::OsRng;
    for arg in std::env::args().skip(1) {
        let bits: u32 = arg.parse()?;
        let t = Instant::now();
        let (p, q) = safe_prime_pair(bits, &mut rng)?;
        let json = serde_json::json!({
            "modulus_bits": bits,
            "p": p.to_string_radix(16),
            "q": q.to_string_radix(16),
            "note": "safe primes p = 2p'+1, q = 2q'+1 for test keys; NOT for production",
        });
        let path = dir.join(format!("safe_primes_{bits}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
        println!(
            "{bits}-bit modulus: {:.1} s -> {}",
            t.elapsed().as_secs_f64(),
            path.display()
        );
    }
    Ok(())
}
