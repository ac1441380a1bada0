//! `fedchain-bench restart`: how long a member's chain takes to reopen after a restart, the
//! full replay (every block re-executed from the genesis, every finalization checked: what a
//! restart without the head snapshot costs, as before issue #13) against the head snapshot
//! (`Chain::open_with`: the state stored with the head, checked against its certified state
//! root), measured on one ledger in one run. Writes bench/results/restart.json.

use std::path::PathBuf;
use std::time::Instant;

use fedchain_coordinator::simulate::run_one;
use std::sync::Arc;

use fedchain_coordinator::{Quiet, SimulateConfig};
use fedchain_ledger::{stored_genesis, verify_chain_full, Chain, FinalityRef, RocksStore};
use fedchain_validator::SimplexFinality;
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
    let n = genesis.validators.len();
    let mut blocks = 0;
    let (mut full, mut snap) = (Vec::new(), Vec::new());
    for _ in 0..a.repeat.max(1) {
        let store = RocksStore::open_read_only(&dir)?;
        let t = Instant::now();
        let report = verify_chain_full(&store, &genesis, None, Some(&SimplexFinality::new()))?;
        full.push(t.elapsed().as_secs_f64());
        blocks = report.blocks;
        let t = Instant::now();
        let finality = FinalityRef(Some(Arc::new(SimplexFinality::new())));
        let chain = Chain::open_with(store, &genesis, finality, &mut |_, _| {})?;
        snap.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(
            chain.head().height + 1 == blocks,
            "the reopened head differs"
        );
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
        note: "full replay (every block re-executed from the genesis, every finalization \
               checked) vs Chain::open_with (the head's snapshot); median of the repeats, same \
               ledger, same run",
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
