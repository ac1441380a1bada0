//! Encrypted vs plaintext round time for the same configuration, measured in one run (the
//! simulation's baseline runs the same pipeline without encryption).

use std::path::{Path, PathBuf};

use anyhow::Context;
use fedchain_coordinator::simulate::{simulate, PhaseTotals};
use fedchain_coordinator::{Quiet, SimulateConfig};
use serde_json::json;

/// Options of `fedchain-bench overhead`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A simulate configuration (default: the embedded default, breast cancer).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override the number of rounds.
    #[arg(long)]
    rounds: Option<u32>,
    /// Name of the result (bench/results/overhead-<name>.json).
    #[arg(long, default_value = "default")]
    name: String,
}

fn per_round(t: &PhaseTotals, rounds: u32) -> serde_json::Value {
    let r = rounds.max(1) as f64;
    json!({
        "train": t.train / r, "encrypt": t.encrypt / r, "aggregate": t.aggregate / r,
        "decrypt": t.decrypt / r, "commit": t.commit / r, "total": t.total / r,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(p) => SimulateConfig::from_toml(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => SimulateConfig::default(),
    };
    if let Some(r) = args.rounds {
        cfg.rounds = r;
    }
    cfg.baseline = true;
    cfg.plaintext = false;
    cfg.force = true;
    let dir = tempfile::tempdir()?;
    cfg.out = dir.path().to_path_buf();
    eprintln!(
        "overhead: {} hospitals, {:?} on {}, {}-bit key, {} rounds (encrypted, then plaintext)",
        cfg.hospitals,
        cfg.model,
        cfg.dataset.name(),
        cfg.key_bits,
        cfg.rounds
    );
    let (summary, _, _) = simulate(&cfg, &mut Quiet)?;
    let plain = summary
        .plaintext_seconds
        .clone()
        .context("no plaintext baseline")?;
    let enc = &summary.seconds;
    let ratio = enc.total / plain.total.max(1e-9);
    let report = json!({
        "name": args.name,
        "config": cfg,
        "rounds": cfg.rounds,
        "encrypted_seconds_per_round": per_round(enc, cfg.rounds),
        "plaintext_seconds_per_round": per_round(&plain, cfg.rounds),
        "encrypted_over_plaintext": ratio,
        "final_accuracy": summary.final_accuracy,
        "plaintext_final_accuracy": summary.plaintext_final_accuracy,
        "audit": summary.audit,
    });
    println!(
        "{}: encrypted {:.2} s/round (train {:.2}, encrypt {:.2}, aggregate {:.2}, decrypt {:.2}, commit {:.2}); plaintext {:.2} s/round; ratio {ratio:.1}x; accuracy {:.2}% vs {:.2}%",
        args.name,
        enc.total / cfg.rounds as f64,
        enc.train / cfg.rounds as f64,
        enc.encrypt / cfg.rounds as f64,
        enc.aggregate / cfg.rounds as f64,
        enc.decrypt / cfg.rounds as f64,
        enc.commit / cfg.rounds as f64,
        plain.total / cfg.rounds as f64,
        summary.final_accuracy * 100.0,
        summary.plaintext_final_accuracy.unwrap_or(0.0) * 100.0,
    );
    let out =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("results/overhead-{}.json", args.name));
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
