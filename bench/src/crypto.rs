//! The crypto benchmark: values encrypted per second per core (fast packed path with its proof
//! of plaintext knowledge, online part, peers, the mulmod limit), threshold decryption shares,
//! combination, aggregation, and the cost of proving and verifying plaintext knowledge.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use fedchain_crypto::vector::{aggregate, encrypt_update};
use fedchain_crypto::{deal, CiphertextVector, Encryptor, Integer, Packer, PackingParams};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};

/// Options of `fedchain-bench crypto`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Shorter runs (about a minute in all) for smoke checks.
    #[arg(long)]
    quick: bool,
    /// Skip the Python peers.
    #[arg(long)]
    no_peers: bool,
    /// Modulus size: 2048 or 3072 (fixture keys).
    #[arg(long, default_value_t = 2048)]
    key_bits: u32,
    /// Output file (default bench/results/crypto.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Run `f` repeatedly for at least `min` and return operations per second (f returns ops done).
fn rate(min: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut ops = 0usize;
    while start.elapsed() < min || ops == 0 {
        ops += f();
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

pub(crate) fn fixture_primes(bits: u32) -> anyhow::Result<(Integer, Integer)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../crypto/tests/fixtures/safe_primes_{bits}.json"));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)?;
    let get = |k: &str| -> anyhow::Result<Integer> {
        let s = v[k].as_str().context("fixture field")?;
        Ok(Integer::from_str_radix(s, 16)?)
    };
    Ok((get("p")?, get("q")?))
}

pub(crate) fn one_core<T: Send>(f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    Ok(pool.install(f))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let quick = args.quick;
    let dur = Duration::from_millis(if quick { 400 } else { 2000 });
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    let (p, q) = fixture_primes(args.key_bits)?;
    let parties = 5;
    let threshold = 3;
    let key = deal(&p, &q, parties, threshold, &mut rng)?;
    let pk = key.public.public_key().clone();
    let n2 = pk.n_squared().clone();
    let packing = PackingParams {
        value_bits: 16,
        clip: 1.0,
        max_parties: 100,
        max_samples: 1,
        ..PackingParams::default()
    };
    let packer = Packer::new(packing.clone(), pk.plaintext_bits())?;
    let slots = packer.slots() as f64;
    eprintln!(
        "key {} bits, {} slots of {} bits per ciphertext",
        pk.bits(),
        packer.slots(),
        packer.slot_bits()
    );

    // the hardware limit: GMP multiplications mod n^2 per second on one core
    let a = fedchain_crypto::num::random_below(&n2, &mut rng);
    let b = fedchain_crypto::num::random_below(&n2, &mut rng);
    let mulmod_per_s = rate(dur, || {
        let mut x = a.clone();
        for _ in 0..1000 {
            x *= &b;
            x %= &n2;
        }
        std::hint::black_box(&x);
        1000
    });
    eprintln!("mulmod mod n^2: {mulmod_per_s:.0}/s");

    let textbook_per_s = one_core(|| {
        let mut r = ChaCha20Rng::seed_from_u64(1);
        rate(dur, || {
            std::hint::black_box(pk.encrypt_textbook(&Integer::from(12345), &mut r).ok());
            1
        })
    })?;

    let windows: &[u32] = if quick { &[8] } else { &[4, 6, 8, 10, 12] };
    let mut table_rows = Vec::new();
    let mut best: Option<(u32, f64, f64)> = None; // (window, enc/s, limit enc/s)
    for &w in windows {
        let t0 = Instant::now();
        let enc = Encryptor::new(pk.clone(), w)?;
        let build_s = t0.elapsed().as_secs_f64();
        let mulmods = enc.table().mulmods_per_randomizer() + 1; // + the (1 + mn) product
        let limit = mulmod_per_s / mulmods as f64;
        // the whole packed path on one core: quantize + pack + encrypt, in values per second
        let update: Vec<f32> = (0..packer.slots() * 32)
            .map(|i| ((i as f32) * 0.01).sin())
            .collect();
        let vals_per_s = one_core(|| {
            let mut r = ChaCha20Rng::seed_from_u64(2);
            let mut r2 = ChaCha20Rng::seed_from_u64(5);
            rate(dur, || {
                std::hint::black_box(
                    encrypt_update(&enc, &packer, &update, 1, b"bench", &mut r2, &mut r).ok(),
                );
                update.len()
            })
        })?;
        let enc_per_s = vals_per_s / slots;
        eprintln!(
            "window {w}: table {:.1} MB built in {build_s:.2} s, {enc_per_s:.0} enc/s = {vals_per_s:.0} values/s, limit {limit:.0} enc/s",
            enc.table().memory_bytes() as f64 / 1e6
        );
        table_rows.push(json!({
            "window": w,
            "table_mb": enc.table().memory_bytes() as f64 / 1e6,
            "table_build_s": build_s,
            "mulmods_per_encryption": mulmods,
            "encryptions_per_s": enc_per_s,
            "values_per_s": vals_per_s,
            "limit_encryptions_per_s": limit,
            "fraction_of_limit": enc_per_s / limit,
        }));
        if w == fedchain_crypto::fast::DEFAULT_WINDOW {
            best = Some((w, enc_per_s, limit));
        }
    }
    let (window, fast_enc_per_s, fast_limit) = best.context("default window not measured")?;
    let fast_values_per_s = fast_enc_per_s * slots;

    // online part only: pooled randomizers, one multiplication per ciphertext
    let enc = Encryptor::new(pk.clone(), window)?;
    let plaintexts: Vec<Integer> = {
        let update: Vec<f32> = (0..packer.slots() * 64)
            .map(|i| ((i as f32) * 0.02).cos())
            .collect();
        let qv = packer.quantize(&update, 1.0, &mut rng)?;
        packer.pack(&qv)?
    };
    let online_per_s = one_core(|| {
        let start = Instant::now();
        let mut done = 0usize;
        let mut busy = Duration::ZERO;
        let mut r = ChaCha20Rng::seed_from_u64(3);
        while start.elapsed() < dur * 3 || done == 0 {
            enc.precompute(plaintexts.len(), &mut r); // offline, not timed
            let t = Instant::now();
            std::hint::black_box(enc.encrypt_all(&plaintexts, &mut r).ok());
            busy += t.elapsed();
            done += plaintexts.len();
        }
        done as f64 / busy.as_secs_f64()
    })?;
    let online_values_per_s = online_per_s * slots;

    // aggregation: ciphertext multiplications per second
    let vectors: Vec<CiphertextVector> = (0..10)
        .map(|_| CiphertextVector(enc.encrypt_all(&plaintexts, &mut rng).unwrap_or_default()))
        .collect();
    let agg_mults_per_s = one_core(|| {
        rate(dur, || {
            std::hint::black_box(aggregate(&pk, &vectors).ok());
            (vectors.len() - 1) * plaintexts.len()
        })
    })?;
    let agg = aggregate(&pk, &vectors)?;

    // threshold decryption: shares (with the vector's proof) per second per core
    let share_len = if quick { 8 } else { 32 };
    let cts = &agg.0[..share_len];
    let mut share_rng = ChaCha20Rng::seed_from_u64(4);
    let t = Instant::now();
    let shares: Vec<_> = one_core(|| {
        key.shares[..threshold as usize]
            .iter()
            .map(|s| s.decrypt_share(&key.public, cts, &mut share_rng))
            .collect::<Result<Vec<_>, _>>()
    })??;
    let shares_per_s = (share_len * threshold as usize) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    one_core(|| {
        shares
            .iter()
            .try_for_each(|s| key.public.verify_share(cts, s))
    })??;
    let verify_per_s = (share_len * threshold as usize) as f64 / t.elapsed().as_secs_f64();
    let combine_per_s = one_core(|| {
        rate(dur, || {
            std::hint::black_box(key.public.interpolate_unchecked(&shares).ok());
            share_len
        })
    })?;
    let check = key.public.combine(cts, &shares)?;
    anyhow::ensure!(check.len() == share_len, "combine returned a wrong length");

    // all cores, the whole packed path
    let cores = rayon::current_num_threads();
    let big: Vec<f32> = (0..packer.slots() * 256)
        .map(|i| ((i as f32) * 0.003).sin())
        .collect();
    let mut rounding = ChaCha20Rng::seed_from_u64(6);
    let all_core_values_per_s = rate(dur, || {
        std::hint::black_box(
            encrypt_update(&enc, &packer, &big, 1, b"bench", &mut rounding, &mut rng).ok(),
        );
        big.len()
    });

    // proofs of plaintext knowledge (one per submitted vector): prove and verify on one core
    // for 1, 29 (the MNIST MLP) and 1,485 (the DeepChain CNN) ciphertexts, against the cost of
    // encrypting the same vector
    let mut knowledge_rows = Vec::new();
    for len in [1usize, 29, 1485] {
        let pts: Vec<Integer> = (0..len)
            .map(|i| plaintexts[i % plaintexts.len()].clone())
            .collect();
        let row = one_core(|| -> anyhow::Result<Value> {
            let t = Instant::now();
            let encrypted = enc.encrypt_all_with_witness(&pts, &mut rng)?;
            let encrypt_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let proof = fedchain_crypto::knowledge::prove(
                &pk,
                &encrypted.ciphertexts,
                &pts,
                &encrypted.exponents,
                b"bench",
                &mut rng,
            )?;
            let prove_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            fedchain_crypto::knowledge::verify(&pk, &encrypted.ciphertexts, &proof, b"bench")?;
            let verify_s = t.elapsed().as_secs_f64();
            eprintln!(
                "knowledge proof, {len} ciphertexts: prove {:.1} ms, verify {:.1} ms, encrypt {:.1} ms",
                prove_s * 1e3,
                verify_s * 1e3,
                encrypt_s * 1e3
            );
            Ok(json!({
                "ciphertexts": len,
                "prove_ms": prove_s * 1e3,
                "verify_ms": verify_s * 1e3,
                "encrypt_ms": encrypt_s * 1e3,
                "verify_vs_encrypt": verify_s / encrypt_s,
                "prove_vs_encrypt": prove_s / encrypt_s,
            }))
        })??;
        knowledge_rows.push(row);
    }

    let peers = if args.no_peers {
        json!({"skipped": "--no-peers"})
    } else {
        match crate::peers::run_paillier_peers(quick) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("python peers could not run: {e:#}");
                json!({"error": format!("{e:#}")})
            }
        }
    };
    let peer_rate = |name: &str| -> Option<f64> {
        let p = &peers[name];
        if p["available"].as_bool() != Some(true) {
            return None;
        }
        // the best of the peer's modes: plain, and packed where it has packing
        [&p["values_per_sec"], &p["packed"]["values_per_sec"]]
            .iter()
            .filter_map(|v| v.as_f64())
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    };
    let phe = peer_rate("phe");
    let fate = peer_rate("fate_utils");
    let limit_values = fast_limit * slots;

    let ratio = |x: Option<f64>| x.map(|x| fast_values_per_s / x);
    let report = json!({
        "machine": { "cores": cores, "key_bits": pk.bits(), "quick": quick },
        "packing": { "value_bits": packing.value_bits, "max_parties": packing.max_parties, "slots": packer.slots(), "slot_bits": packer.slot_bits() },
        "mulmod_per_s_one_core": mulmod_per_s,
        "values_per_s_per_core": {
            "a_fedchain_fast_packed": fast_values_per_s,
            "b_fedchain_online_only": online_values_per_s,
            "c_python_paillier_gmpy2": phe,
            "d_fate_utils": fate,
            "e_mulmod_limit_fast_method": limit_values,
            "fedchain_textbook_packed": textbook_per_s * slots,
        },
        "ratios": {
            "fast_vs_phe": ratio(phe),
            "fast_vs_fate_utils": ratio(fate),
            "fast_vs_limit": fast_values_per_s / limit_values,
            "online_vs_fast": online_values_per_s / fast_values_per_s,
            "fast_vs_textbook": fast_enc_per_s / textbook_per_s,
        },
        "encryptions_per_s_per_core": { "textbook": textbook_per_s, "fast": fast_enc_per_s, "online": online_per_s },
        "windows": table_rows,
        "all_cores_values_per_s": all_core_values_per_s,
        "threshold": {
            "parties": parties, "threshold": threshold, "vector_len": share_len,
            "decryption_shares_per_s_per_core": shares_per_s,
            "share_verifications_per_s_per_core": verify_per_s,
            "combine_per_s_per_core": combine_per_s,
        },
        "aggregation_mults_per_s_per_core": agg_mults_per_s,
        "knowledge_proofs_one_core": knowledge_rows,
        "peers": peers,
    });

    let fmt = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:>12.0}"));
    let fr = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.1}x"));
    println!(
        "\nfedchain crypto bench, {}-bit n, {} slots x {} bits, one core unless noted",
        pk.bits(),
        packer.slots(),
        packer.slot_bits()
    );
    println!(
        "{:<46} {:>12} {:>10}",
        "values encrypted per second per core", "values/s", "ours/this"
    );
    println!(
        "{:<46} {:>12.0} {:>10}",
        "(a) fedchain fast packed (window 8)", fast_values_per_s, "1.0x"
    );
    println!(
        "{:<46} {:>12.0} {:>10}",
        "(b) fedchain online part only (pooled)",
        online_values_per_s,
        format!("{:.2}x", fast_values_per_s / online_values_per_s)
    );
    println!(
        "{:<46} {:>12} {:>10}",
        "(c) python-paillier + gmpy2, 1 value/ct",
        fmt(phe),
        fr(ratio(phe))
    );
    println!(
        "{:<46} {:>12} {:>10}",
        "(d) FATE fate_utils (its packing, 31/ct)",
        fmt(fate),
        fr(ratio(fate))
    );
    println!(
        "{:<46} {:>12.0} {:>10}",
        "(e) mulmod limit for the fast method",
        limit_values,
        format!("{:.2}x", fast_values_per_s / limit_values)
    );
    println!(
        "{:<46} {:>12.0} {:>10}",
        "fedchain textbook r^n, packed",
        textbook_per_s * slots,
        format!("{:.1}x", fast_enc_per_s / textbook_per_s)
    );
    println!(
        "{:<46} {:>12.0}",
        format!("fedchain fast packed, all {cores} cores"),
        all_core_values_per_s
    );
    println!("mulmod mod n^2: {mulmod_per_s:.0}/s; aggregation: {agg_mults_per_s:.0} ct mults/s");
    println!("threshold {threshold}-of-{parties}: {shares_per_s:.1} decryption shares/s (with proof, vector of {share_len}), {verify_per_s:.1} verifications/s, {combine_per_s:.0} combines/s");
    for r in &knowledge_rows {
        println!(
            "knowledge proof of {} ciphertexts: prove {:.1} ms, verify {:.1} ms ({:.2}x its encryption)",
            r["ciphertexts"], r["prove_ms"].as_f64().unwrap_or(0.0), r["verify_ms"].as_f64().unwrap_or(0.0),
            r["verify_vs_encrypt"].as_f64().unwrap_or(0.0)
        );
    }

    let out = args.out.unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/crypto.json")
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
