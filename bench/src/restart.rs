//! `fedchain-bench restart`: how long a coordinator's ledger takes to reopen after a restart,
//! the full replay (every validator replica re-applies every block, as before issue #13)
//! against the head snapshot (the state stored with the head, checked against its certified
//! state root), measured on one ledger in one run. Writes bench/results/restart.json.

use std::path::PathBuf;
use std::time::Instant;

use fedchain_coordinator::simulate::run_one;
use fedchain_coordinator::{Ledger, Quiet, SimulateConfig};
use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::{stored_genesis, RocksStore};
use serde::Serialize;

/// Options of `fedchain-bench restart`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Simulated rounds of the ledger to build (512-bit key, 4 hospitals, breast cancer).
    #[arg(long, default_value_t = 250)]
    rounds: u32,
    /// Reopen an existing ledger instead of building one.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Reopens of each kind (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Output file (default bench/results/restart.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    command: String,
    blocks: u64,
    validators: usize,
    full_replay_s: f64,
    snapshot_s: f64,
    speedup: f64,
    note: &'static str,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = match &a.ledger {
        Some(d) => d.clone(),
        None => {
            let cfg = SimulateConfig {
                key_bits: 512,
                hospitals: 4,
                threshold: 2,
                rounds: a.rounds,
                baseline: false,
                out: tmp.path().to_path_buf(),
                ..SimulateConfig::default()
            };
            let t = Instant::now();
            let d = tmp.path().join("ledger");
            let r = run_one(&cfg, &d, &mut Quiet)?;
            eprintln!(
                "built a ledger of {} blocks ({} rounds) in {:.1} s",
                r.ledger_height + 1,
                a.rounds,
                t.elapsed().as_secs_f64()
            );
            d
        }
    };
    let genesis = stored_genesis(&RocksStore::open_read_only(&dir)?)?;
    // signing keys are used only for new blocks; the replicas check the stored certificates
    // against the genesis validators
    let keys = |n: usize| -> Vec<SigningKey> {
        (0..n)
            .map(|i| SigningKey::from_seed(&[i as u8 + 1; 32]))
            .collect()
    };
    let n = genesis.validators.len();
    let mut blocks = 0;
    let (mut full, mut snap) = (Vec::new(), Vec::new());
    for _ in 0..a.repeat.max(1) {
        let t = Instant::now();
        let l = Ledger::open_replaying(&dir, &genesis, keys(n), keys(1).remove(0))?;
        full.push(t.elapsed().as_secs_f64());
        let replayed = l.replica_heads();
        blocks = l.height() + 1;
        drop(l);
        let t = Instant::now();
        let l = Ledger::open(&dir, &genesis, keys(n), keys(1).remove(0))?;
        snap.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(l.replica_heads() == replayed, "replicas differ");
    }
    let (full_replay_s, snapshot_s) = (median(full), median(snap));
    let report = Report {
        command: format!(
            "cargo run --release -p fedchain-bench -- {}",
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        ),
        blocks,
        validators: n,
        full_replay_s,
        snapshot_s,
        speedup: full_replay_s / snapshot_s.max(1e-9),
        note: "Ledger::open_replaying (every replica re-applies every block, the restart before \
               issue #13) vs Ledger::open (replicas from the head's snapshot); median of the \
               repeats, same ledger, same run",
    };
    println!(
        "{} blocks, {} validators: full replay {:.3} s, snapshot {:.3} s ({:.0}x)",
        report.blocks, n, full_replay_s, snapshot_s, report.speedup
    );
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("bench/results/restart.json"));
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("wrote {}", out.display());
    Ok(())
}
