//! The cost of the blame step's slot range proofs ([`fedchain_crypto::range`]) per ciphertext:
//! prove and verify on one core, for 8-, 12- and 16-bit values (12 bits needs the second,
//! shifted Bulletproof), against the cost of encrypting the same ciphertext.

use std::path::PathBuf;
use std::time::Instant;

use fedchain_crypto::range;
use fedchain_crypto::{Encryptor, Packer, PackingParams, PrivateKey};
use serde_json::json;

use crate::crypto::{fixture_primes, one_core};

#[derive(clap::Args)]
pub struct Args {
    /// Modulus size (a safe-prime fixture of crypto/tests/fixtures must exist for it).
    #[arg(long, default_value_t = 2048)]
    key_bits: u32,
    /// Proofs per configuration (the mean is reported).
    #[arg(long, default_value_t = 5)]
    reps: u32,
    /// Where to write the JSON (default bench/results/range.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (p, q) = fixture_primes(args.key_bits)?;
    let mut rng = rand::rngs::OsRng;
    let pk = PrivateKey::from_primes(p, q, &mut rng)?
        .public_key()
        .clone();
    let enc = Encryptor::new(pk.clone(), 8)?;
    let mut rows = Vec::new();
    for value_bits in [8u32, 12, 16] {
        let packer = Packer::new(
            PackingParams {
                value_bits,
                max_parties: 100,
                ..PackingParams::default()
            },
            pk.plaintext_bits(),
        )?;
        let qmax = (1u64 << value_bits) - 1;
        let values: Vec<u64> = (0..packer.slots() as u64)
            .map(|i| (i * 7919) % (qmax + 1))
            .collect();
        let pts = packer.pack(&values)?;
        let row = one_core(|| -> anyhow::Result<serde_json::Value> {
            let (mut encrypt_s, mut prove_s, mut verify_s, mut bytes) = (0.0, 0.0, 0.0, 0usize);
            for _ in 0..args.reps {
                let t = Instant::now();
                let mut w = enc.encrypt_all_with_witness(&pts, &mut rng)?;
                encrypt_s += t.elapsed().as_secs_f64();
                let (c, a) = (w.ciphertexts.remove(0), w.exponents.remove(0));
                let t = Instant::now();
                let proof = range::prove(&pk, &packer, &c, &values, &a, b"bench", &mut rng)?;
                prove_s += t.elapsed().as_secs_f64();
                let t = Instant::now();
                range::verify(&pk, &packer, &c, values.len(), &proof, b"bench")?;
                verify_s += t.elapsed().as_secs_f64();
                bytes = proof.to_bytes().len();
            }
            let r = args.reps as f64;
            let (encrypt_s, prove_s, verify_s) = (encrypt_s / r, prove_s / r, verify_s / r);
            eprintln!(
                "range proof, {value_bits}-bit values, {} slots: prove {:.1} ms, verify {:.1} ms, {bytes} bytes (encrypt {:.2} ms)",
                packer.slots(),
                prove_s * 1e3,
                verify_s * 1e3,
                encrypt_s * 1e3
            );
            Ok(json!({
                "value_bits": value_bits,
                "slots": packer.slots(),
                "prove_ms": prove_s * 1e3,
                "verify_ms": verify_s * 1e3,
                "proof_bytes": bytes,
                "encrypt_ms": encrypt_s * 1e3,
                "prove_vs_encrypt": prove_s / encrypt_s,
            }))
        })??;
        rows.push(row);
    }
    let report = json!({
        "key_bits": pk.bits(),
        "one_core": true,
        "per_ciphertext": rows,
        "command": format!("fedchain-bench range --key-bits {} --reps {}", args.key_bits, args.reps),
    });
    let out = args.out.unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/range.json")
    });
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
