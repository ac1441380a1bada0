//! `fedchain-bench e2e <scenario>`: the whole system (encrypted) and its plaintext baseline in
//! one run per scenario point, with per-round accuracy, seconds per phase and bytes per
//! hospital, plots, and (breast-cancer, digits) the Flower FedAvg baseline on the same
//! partitions. Writes `<out>/<scenario>.json` and `<out>/<scenario>/`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use fedchain_coordinator::config::ModelKind;
use fedchain_coordinator::report::{plot_accuracy, plot_lines, plot_phases, RoundRow};
use fedchain_coordinator::setup::ExperimentData;
use fedchain_coordinator::simulate::{simulate, RunOutcome};
use fedchain_coordinator::{Observer, Progress, SimulateConfig};
use fedchain_datasets::{Builtin, Dataset};
use fedchain_ledger::types::{decode, Certificate};
use fedchain_ledger::{RocksStore, SignedTx, Store, TxKind};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The scenarios of `fedchain-bench e2e`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// DeepChain's CNN on MNIST-5k, 4 hospitals (needs `--features torch`).
    #[value(name = "deepchain-4")]
    Deepchain4,
    /// DeepChain's CNN on MNIST-5k, 10 hospitals (needs `--features torch`).
    #[value(name = "deepchain-10")]
    Deepchain10,
    /// configs/breast-cancer.toml, with the Flower baseline.
    BreastCancer,
    /// configs/digits-mlp.toml, with the Flower baseline.
    Digits,
    /// configs/mnist5k-mlp.toml (the "encrypted <= 3x plaintext" bar).
    MnistMlp,
    /// Synthetic data: 10/50/100 hospitals at ~100k parameters, 10k/100k/1M parameters at 10.
    Scale,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Deepchain4 => "deepchain-4",
            Scenario::Deepchain10 => "deepchain-10",
            Scenario::BreastCancer => "breast-cancer",
            Scenario::Digits => "digits",
            Scenario::MnistMlp => "mnist-mlp",
            Scenario::Scale => "scale",
        }
    }

    /// Whether the Flower baseline runs next to it.
    fn has_flower(self) -> bool {
        matches!(self, Scenario::BreastCancer | Scenario::Digits)
    }
}

/// Options of `fedchain-bench e2e`.
#[derive(clap::Args, Debug)]
pub struct Args {
    scenario: Scenario,
    /// Override the number of rounds of every point.
    #[arg(long)]
    rounds: Option<u32>,
    /// Results directory.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out: PathBuf,
    /// Run only this point of a multi-point scenario (scale: h10-p10k, h10-p100k, h50-p100k,
    /// h100-p100k, h10-p1m).
    #[arg(long)]
    only: Option<String>,
    /// Skip the Flower baseline.
    #[arg(long)]
    no_flower: bool,
    /// Keep the RocksDB ledgers of the runs (they are deleted after their bytes are counted).
    #[arg(long)]
    keep_ledgers: bool,
}

/// One run configuration of a scenario.
#[derive(Clone, Debug)]
pub struct Point {
    pub name: String,
    pub cfg: SimulateConfig,
}

fn from_toml(text: &str) -> anyhow::Result<SimulateConfig> {
    Ok(SimulateConfig::from_toml(text)?)
}

/// DeepChain learning schedule on MNIST-5k (4,000 training images): batch 64 as in the paper;
/// one sharing round is about 15 local iterations as in the paper (4 hospitals: 1,000 images =
/// 16 batches = 1 epoch; 10 hospitals: 400 images = 7 batches, so 2 epochs = 14 iterations);
/// the paper's plain-SGD lr 0.5 becomes lr 0.05 with momentum 0.9 (the same effective step
/// lr / (1 - momentum), steadier on 5k images), as in configs/mnist-cnn.toml; 20 rounds (the
/// paper ran 100 sharing rounds = 1,500 iterations; pass --rounds 100 for the full schedule).
fn deepchain(hospitals: usize) -> anyhow::Result<SimulateConfig> {
    let mut cfg = from_toml(include_str!("../../configs/mnist-cnn.toml"))?;
    cfg.hospitals = hospitals;
    cfg.threshold = (hospitals / 3 + 1) as u32;
    cfg.key_bits = 2048;
    cfg.rounds = 20;
    cfg.train.batch_size = 64;
    cfg.train.epochs = if hospitals <= 4 { 1 } else { 2 };
    Ok(cfg)
}

/// Hidden width of a one-hidden-layer MLP on `features` inputs and `classes` outputs whose
/// parameter count is closest to `params` (params = (f + 1) h + (h + 1) c).
pub fn hidden_for(params: usize, features: usize, classes: usize) -> usize {
    let per_unit = features + 1 + classes;
    (params.saturating_sub(classes) as f64 / per_unit as f64)
        .round()
        .max(1.0) as usize
}

/// The scale grid: synthetic data (32 features, 10 classes), IID, one epoch, threshold 3.
fn scale_points() -> Vec<Point> {
    let base = SimulateConfig {
        dataset: Builtin::Synthetic,
        model: ModelKind::Mlp,
        threshold: 3,
        validators: 4,
        key_bits: 2048,
        rounds: 1,
        partition: fedchain_datasets::Partitioner::Iid,
        ..SimulateConfig::default()
    };
    let grid: [(usize, usize, &str); 5] = [
        (10, 10_000, "h10-p10k"),
        (10, 100_000, "h10-p100k"),
        (50, 100_000, "h50-p100k"),
        (100, 100_000, "h100-p100k"),
        (10, 1_000_000, "h10-p1m"),
    ];
    grid.iter()
        .map(|&(hospitals, params, name)| {
            let mut cfg = base.clone();
            cfg.hospitals = hospitals;
            cfg.hidden = vec![hidden_for(params, 32, 10)];
            cfg.train.batch_size = 32;
            Point {
                name: name.to_string(),
                cfg,
            }
        })
        .collect()
}

/// The points of a scenario, before `--rounds` and output directories are applied.
pub fn points(s: Scenario) -> anyhow::Result<Vec<Point>> {
    let one = |cfg: SimulateConfig| {
        Ok(vec![Point {
            name: s.name().to_string(),
            cfg,
        }])
    };
    match s {
        Scenario::Deepchain4 => one(deepchain(4)?),
        Scenario::Deepchain10 => one(deepchain(10)?),
        Scenario::BreastCancer => one(from_toml(include_str!("../../configs/breast-cancer.toml"))?),
        Scenario::Digits => one(from_toml(include_str!("../../configs/digits-mlp.toml"))?),
        Scenario::MnistMlp => one(from_toml(include_str!("../../configs/mnist5k-mlp.toml"))?),
        Scenario::Scale => Ok(scale_points()),
    }
}

/// Progress bar over all runs of a scenario (encrypted and plaintext rounds).
struct Bar {
    bar: ProgressBar,
}

impl Observer for Bar {
    fn progress(&mut self, p: Progress<'_>) {
        match p {
            Progress::Setup(s) => self.bar.set_message(s.to_string()),
            Progress::Phase { round, phase } => {
                self.bar.set_message(format!("round {round}: {phase}"))
            }
            Progress::Rejected {
                round,
                hospital,
                reason,
            } => self.bar.println(format!(
                "  round {round}: rejected hospital {hospital}: {reason}"
            )),
            Progress::Round(row) => {
                self.bar.println(format!(
                    "  round {}: accuracy {:.2}%, {:.2} s",
                    row.round,
                    row.accuracy * 100.0,
                    row.total_s
                ));
                self.bar.inc(1);
            }
        }
    }
}

/// What each hospital put on the ledger in one round.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoundTraffic {
    /// Submission payload bytes per hospital index.
    pub submit_bytes: BTreeMap<usize, u64>,
    /// Decryption-share payload bytes per hospital index.
    pub share_bytes: BTreeMap<usize, u64>,
    /// Sample counts signed in the submissions, per hospital index.
    pub samples: BTreeMap<usize, u64>,
}

impl RoundTraffic {
    /// Mean upload (submission + decryption share payloads) per hospital of the committee.
    pub fn bytes_per_hospital(&self, hospitals: usize) -> f64 {
        let total: u64 =
            self.submit_bytes.values().sum::<u64>() + self.share_bytes.values().sum::<u64>();
        total as f64 / hospitals.max(1) as f64
    }
}

/// Reads a finished run's ledger: per round, the payload bytes and sample counts each hospital
/// (identified by its registered pseudonym `hospital-<i>`) submitted.
pub fn ledger_traffic(dir: &Path) -> anyhow::Result<BTreeMap<u32, RoundTraffic>> {
    let store = RocksStore::open_read_only(dir)
        .with_context(|| format!("opening the ledger {}", dir.display()))?;
    let head = store.head()?.context("the ledger has no blocks")?;
    let mut index = BTreeMap::new();
    let mut rounds: BTreeMap<u32, RoundTraffic> = BTreeMap::new();
    for height in 0..=head.height {
        let Some(body) = store.body(height)? else {
            continue;
        };
        let (txs, _): (Vec<SignedTx>, Option<Certificate>) = decode("body", &body)?;
        for t in txs {
            let sender = t.sender();
            match &t.tx.kind {
                TxKind::Register { pseudonym, .. } => {
                    if let Some(i) = pseudonym.strip_prefix("hospital-") {
                        index.insert(sender, i.parse::<usize>()?);
                    }
                }
                TxKind::Submit {
                    round,
                    samples,
                    payload_bytes,
                    ..
                } => {
                    let i = *index
                        .get(&sender)
                        .context("submission from an unregistered sender")?;
                    let r = rounds.entry(*round).or_default();
                    *r.submit_bytes.entry(i).or_default() += payload_bytes;
                    r.samples.insert(i, *samples);
                }
                TxKind::DecryptionShare { round, payload, .. } => {
                    let i = *index
                        .get(&sender)
                        .context("share from an unregistered sender")?;
                    let len = store.payload(payload)?.map_or(0, |p| p.len() as u64);
                    *rounds
                        .entry(*round)
                        .or_default()
                        .share_bytes
                        .entry(i)
                        .or_default() += len;
                }
                _ => {}
            }
        }
    }
    Ok(rounds)
}

/// The hospital datasets, test split and initial parameters of a dense-model configuration,
/// exactly as the simulation prepares them (`ExperimentData::prepare`).
pub fn hospital_data(cfg: &SimulateConfig) -> anyhow::Result<ExperimentData> {
    if matches!(cfg.model, ModelKind::DeepchainCnn | ModelKind::Lenet5) {
        bail!("partition export is for the dense models (the CNNs scale pixels instead)");
    }
    Ok(ExperimentData::prepare(cfg)?)
}

fn write_csv(path: &Path, d: &Dataset) -> anyhow::Result<()> {
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for (x, y) in d.rows() {
        write!(w, "{y}")?;
        for v in x {
            write!(w, ",{v}")?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}

/// Writes `hospital-<i>.csv` (label first, then the standardized features), `test.csv`,
/// `init.csv` (the initial global parameters, one per line, in fedchain's flat layout) and
/// `meta.json` to `dir`; returns the hospitals' sample counts.
pub fn export_partitions(cfg: &SimulateConfig, dir: &Path) -> anyhow::Result<Vec<usize>> {
    let data = hospital_data(cfg)?;
    std::fs::create_dir_all(dir)?;
    for (i, p) in data.parts.iter().enumerate() {
        write_csv(&dir.join(format!("hospital-{i}.csv")), p)?;
    }
    write_csv(&dir.join("test.csv"), &data.split.test)?;
    let text: String = data
        .initial_params
        .iter()
        .map(|v| format!("{v}\n"))
        .collect();
    std::fs::write(dir.join("init.csv"), text)?;
    let sizes: Vec<usize> = data.parts.iter().map(Dataset::len).collect();
    let hidden: Vec<usize> = match cfg.model {
        ModelKind::Mlp => cfg.hidden.clone(),
        _ => Vec::new(),
    };
    let meta = json!({
        "model": cfg.model,
        "hidden": hidden,
        "activation": "relu",
        "num_features": data.split.test.num_features(),
        "num_classes": data.split.test.num_classes(),
        "head": if data.split.test.num_classes() == 2 { "sigmoid-bce" } else { "softmax-ce" },
        "hospitals": cfg.hospitals,
        "samples": sizes,
        "rounds": cfg.rounds,
        "epochs": cfg.train.epochs,
        "batch": cfg.train.batch_size,
        "lr": cfg.train.sgd.learning_rate,
        "momentum": cfg.train.sgd.momentum,
        "weight_decay": cfg.train.sgd.weight_decay,
        "server_lr": cfg.server.lr,
        "seed": cfg.seed,
        "dataset": cfg.dataset.name(),
        "partition": cfg.partition,
    });
    std::fs::write(dir.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    Ok(sizes)
}

/// What the Flower script writes.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct FlowerResult {
    pub flwr_version: String,
    /// Test accuracy after each round (index 0 = after round 1).
    pub accuracy: Vec<f64>,
    /// Wall seconds of each round.
    pub seconds: Vec<f64>,
}

fn flower_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("flower")
}

fn flower_python() -> PathBuf {
    let venv = std::env::var_os("FEDCHAIN_FLOWER_VENV").map_or_else(
        || {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/fedchain-flower")
        },
        PathBuf::from,
    );
    venv.join("bin/python")
}

/// Runs bench/flower/fedavg.py on exported partitions (installing its venv first if needed).
fn run_flower(partitions: &Path, out: &Path) -> anyhow::Result<FlowerResult> {
    let setup = flower_dir().join("setup.sh");
    let status = Command::new("bash")
        .arg(&setup)
        .status()
        .with_context(|| format!("running {}", setup.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); run it by hand, or pass --no-flower",
            setup.display()
        );
    }
    let status = Command::new(flower_python())
        .arg(flower_dir().join("fedavg.py"))
        .arg("--partitions")
        .arg(partitions)
        .arg("--out")
        .arg(out)
        .status()
        .context("running bench/flower/fedavg.py")?;
    if !status.success() {
        bail!("bench/flower/fedavg.py failed ({status})");
    }
    let text =
        std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// Per-round figures and means of one run.
fn run_json(
    run: &RunOutcome,
    traffic: &BTreeMap<u32, RoundTraffic>,
    hospitals: usize,
) -> serde_json::Value {
    let bytes = |r: &RoundRow| {
        traffic
            .get(&r.round)
            .map_or(0.0, |t| t.bytes_per_hospital(hospitals))
    };
    let rounds: Vec<serde_json::Value> = run
        .rows
        .iter()
        .map(|r| {
            json!({
                "round": r.round,
                "accuracy": r.accuracy,
                "loss": r.loss,
                "accepted": r.accepted,
                "void": r.void,
                "seconds": {
                    "train": r.train_s, "encrypt": r.encrypt_s, "aggregate": r.aggregate_s,
                    "decrypt": r.decrypt_s, "commit": r.commit_s, "total": r.total_s,
                },
                "bytes_per_hospital": bytes(r),
                "bytes_on_chain": r.bytes_on_chain,
            })
        })
        .collect();
    let rows = &run.rows;
    json!({
        "final_accuracy": run.final_accuracy,
        "setup_s": run.setup_s,
        "audit": run.audit,
        "mean_seconds_per_round": {
            "train": mean(rows.iter().map(|r| r.train_s)),
            "encrypt": mean(rows.iter().map(|r| r.encrypt_s)),
            "aggregate": mean(rows.iter().map(|r| r.aggregate_s)),
            "decrypt": mean(rows.iter().map(|r| r.decrypt_s)),
            "commit": mean(rows.iter().map(|r| r.commit_s)),
            "total": mean(rows.iter().map(|r| r.total_s)),
        },
        "mean_bytes_per_hospital_per_round": mean(rows.iter().map(bytes)),
        "rounds": rounds,
    })
}

fn series(rows: &[RoundRow], v: impl Fn(&RoundRow) -> f64) -> Vec<(u32, f64)> {
    rows.iter().map(|r| (r.round, v(r))).collect()
}

/// Runs one point: encrypted + plaintext (+ Flower), plots, and its JSON entry.
fn run_point(
    scenario: Scenario,
    point: &Point,
    dir: &Path,
    args: &Args,
    bar: &mut Bar,
) -> anyhow::Result<serde_json::Value> {
    let mut cfg = point.cfg.clone();
    cfg.baseline = true;
    cfg.plaintext = false;
    cfg.force = true;
    cfg.out = dir.to_path_buf();
    let flower = if scenario.has_flower() && !args.no_flower {
        let parts = dir.join("partitions");
        export_partitions(&cfg, &parts)?;
        bar.bar.set_message("Flower FedAvg baseline");
        let r = bar
            .bar
            .suspend(|| run_flower(&parts, &dir.join("flower.json")))?;
        Some(r)
    } else {
        None
    };
    let (summary, enc, plain) = simulate(&cfg, bar)?;
    let plain = plain.context("the plaintext baseline did not run")?;
    let enc_traffic = ledger_traffic(&enc.ledger)?;
    let plain_traffic = ledger_traffic(&plain.ledger)?;
    if !args.keep_ledgers {
        for l in [&enc.ledger, &plain.ledger] {
            std::fs::remove_dir_all(l).with_context(|| format!("removing {}", l.display()))?;
        }
    }
    let h = cfg.hospitals;

    // plots: simulate drew accuracy.png (encrypted vs plaintext) and phases.png (encrypted)
    let phases_plain = dir.join("phases-plaintext.png");
    plot_phases(&phases_plain, &plain.rows)?;
    let enc_bytes = |r: &RoundRow| {
        enc_traffic
            .get(&r.round)
            .map_or(0.0, |t| t.bytes_per_hospital(h))
    };
    let plain_bytes = |r: &RoundRow| {
        plain_traffic
            .get(&r.round)
            .map_or(0.0, |t| t.bytes_per_hospital(h))
    };
    plot_lines(
        &dir.join("bytes.png"),
        "Upload bytes per hospital per round",
        "bytes (submission + decryption share)",
        &[
            ("encrypted", series(&enc.rows, enc_bytes)),
            ("plaintext", series(&plain.rows, plain_bytes)),
        ],
    )?;
    if let Some(f) = &flower {
        let pct = |r: &RoundRow| r.accuracy * 100.0;
        let fl: Vec<(u32, f64)> = f
            .accuracy
            .iter()
            .enumerate()
            .map(|(i, a)| (i as u32, a * 100.0))
            .collect();
        plot_lines(
            &dir.join("accuracy.png"),
            "Test accuracy per round",
            "test accuracy (%)",
            &[
                ("encrypted", series(&enc.rows, pct)),
                ("plaintext", series(&plain.rows, pct)),
                ("Flower FedAvg", fl),
            ],
        )?;
    } else {
        plot_accuracy(
            &dir.join("accuracy.png"),
            &enc.rows,
            Some(("plaintext", &plain.rows)),
        )?;
    }

    let e = run_json(&enc, &enc_traffic, h);
    let p = run_json(&plain, &plain_traffic, h);
    let ratio = |a: &serde_json::Value, b: &serde_json::Value| {
        let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
        if b > 0.0 {
            a / b
        } else {
            f64::NAN
        }
    };
    let es = &e["mean_seconds_per_round"];
    let ps = &p["mean_seconds_per_round"];
    let mut ratios = json!({
        "seconds_per_round": ratio(&es["total"], &ps["total"]),
        "train": ratio(&es["train"], &ps["train"]),
        "bytes_per_hospital": ratio(&e["mean_bytes_per_hospital_per_round"], &p["mean_bytes_per_hospital_per_round"]),
        "accuracy_gap_pp": (enc.final_accuracy - plain.final_accuracy) * 100.0,
    });
    let flower_json = flower.as_ref().map(|f| {
        let gaps: Vec<f64> = enc
            .rows
            .iter()
            .zip(&f.accuracy)
            .map(|(r, a)| (r.accuracy - a) * 100.0)
            .collect();
        let worst = gaps.iter().copied().fold(f64::INFINITY, f64::min);
        ratios["worst_round_gap_vs_flower_pp"] = json!(worst);
        ratios["seconds_per_round_vs_flower"] =
            json!(ratio(&es["total"], &json!(mean(f.seconds.iter().copied()))));
        json!({
            "flwr_version": f.flwr_version,
            "accuracy": f.accuracy,
            "seconds": f.seconds,
            "final_accuracy": f.accuracy.last(),
            "mean_seconds_per_round": mean(f.seconds.iter().copied()),
            "encrypted_minus_flower_pp_per_round": gaps,
        })
    });
    println!(
        "{}: encrypted {:.2} s/round, plaintext {:.2} s/round ({:.1}x); accuracy {:.2}% vs {:.2}%{}",
        point.name,
        es["total"].as_f64().unwrap_or(0.0),
        ps["total"].as_f64().unwrap_or(0.0),
        ratios["seconds_per_round"].as_f64().unwrap_or(f64::NAN),
        enc.final_accuracy * 100.0,
        plain.final_accuracy * 100.0,
        flower
            .as_ref()
            .and_then(|f| f.accuracy.last())
            .map_or(String::new(), |a| format!(", Flower {:.2}%", a * 100.0)),
    );
    Ok(json!({
        "name": point.name,
        "config": cfg,
        "num_params": enc.final_params.len(),
        "audit": summary.audit,
        "encrypted": e,
        "plaintext": p,
        "flower": flower_json,
        "ratios": ratios,
    }))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let s = args.scenario;
    if matches!(s, Scenario::Deepchain4 | Scenario::Deepchain10) && !cfg!(feature = "torch") {
        bail!(
            "{} trains the DeepChain CNN, which needs libtorch: run scripts/fetch-libtorch.sh, then \
             `cargo run --release -p fedchain-bench --features torch -- e2e {}`",
            s.name(),
            s.name()
        );
    }
    let mut pts = points(s)?;
    if let Some(only) = &args.only {
        pts.retain(|p| &p.name == only);
        if pts.is_empty() {
            let names: Vec<String> = points(s)?.into_iter().map(|p| p.name).collect();
            bail!(
                "{} has no point {only:?} (points: {})",
                s.name(),
                names.join(", ")
            );
        }
    }
    for p in &mut pts {
        if let Some(r) = args.rounds {
            p.cfg.rounds = r;
        }
        p.cfg.validate()?;
    }
    let base = args.out.join(s.name());
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let total: u64 = pts.iter().map(|p| 2 * u64::from(p.cfg.rounds)).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rounds (encrypted + plaintext)  {msg}",
    )?);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let mut obs = Bar { bar };
    let mut results = Vec::new();
    for p in &pts {
        obs.bar.println(format!(
            "{}: {} hospitals (t = {}), {:?} on {}, {}-bit key, {} rounds",
            p.name,
            p.cfg.hospitals,
            p.cfg.threshold,
            p.cfg.model,
            p.cfg.dataset.name(),
            p.cfg.key_bits,
            p.cfg.rounds
        ));
        let dir = if pts.len() == 1 && args.only.is_none() && p.name == s.name() {
            base.clone()
        } else {
            base.join(&p.name)
        };
        results.push(run_point(s, p, &dir, &args, &mut obs)?);
    }
    obs.bar.finish_and_clear();
    let report = json!({
        "scenario": s.name(),
        "notes": [
            "seconds are wall time per round on this machine; decrypt includes the holders' decryption shares, their verification and the combination (the engine does not time combine separately)",
            "bytes_per_hospital: mean upload per committee member per round (submission payload + decryption-share payload, from the ledger)",
            "ratios are encrypted / plaintext from the same invocation",
        ],
        "points": results,
    });
    let name = match &args.only {
        Some(o) => format!("{}-{o}.json", s.name()),
        None => format!("{}.json", s.name()),
    };
    let out = args.out.join(name);
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {} and {}", out.display(), base.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedchain_coordinator::Quiet;

    #[test]
    fn hidden_width_gives_the_parameter_count() {
        for (target, h) in [(10_000, 232), (100_000, 2325), (1_000_000, 23_256)] {
            assert_eq!(hidden_for(target, 32, 10), h);
            let params = 33 * h + (h + 1) * 10;
            assert!(params.abs_diff(target) < 43, "{target}: {params}");
        }
    }

    #[test]
    fn every_scenario_point_validates() -> anyhow::Result<()> {
        use clap::ValueEnum;
        for s in Scenario::value_variants() {
            for p in points(*s)? {
                p.cfg.validate()?;
            }
        }
        let scale = points(Scenario::Scale)?;
        assert_eq!(scale.len(), 5);
        assert!(scale.iter().all(|p| p.cfg.threshold == 3));
        let cnn = points(Scenario::Deepchain10)?;
        assert_eq!((cnn[0].cfg.hospitals, cnn[0].cfg.threshold), (10, 4));
        Ok(())
    }

    /// The exported partitions are the ones the simulation trained on: the sample counts each
    /// hospital signed on the simulation's ledger equal the exported files' row counts.
    #[test]
    fn exported_partitions_match_the_simulations_sample_counts() -> anyhow::Result<()> {
        for s in [Scenario::BreastCancer, Scenario::Digits] {
            let mut cfg = points(s)?.remove(0).cfg;
            cfg.rounds = 1;
            cfg.plaintext = true;
            cfg.baseline = false;
            cfg.force = true;
            let dir = tempfile::tempdir()?;
            cfg.out = dir.path().join("run");
            let (_, run, _) = simulate(&cfg, &mut Quiet)?;
            let traffic = ledger_traffic(&run.ledger)?;
            let round = traffic.get(&0).context("round 0 on the ledger")?;
            let signed: Vec<u64> = (0..cfg.hospitals)
                .map(|i| round.samples.get(&i).copied().unwrap_or(0))
                .collect();

            let parts = dir.path().join("partitions");
            let sizes = export_partitions(&cfg, &parts)?;
            let sizes: Vec<u64> = sizes.iter().map(|&n| n as u64).collect();
            assert_eq!(sizes, signed, "{}", s.name());
            for (i, n) in sizes.iter().enumerate() {
                let text = std::fs::read_to_string(parts.join(format!("hospital-{i}.csv")))?;
                assert_eq!(text.lines().count() as u64, *n);
            }
            let test = hospital_data(&cfg)?.split.test;
            let text = std::fs::read_to_string(parts.join("test.csv"))?;
            assert_eq!(text.lines().count(), test.len());
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(parts.join("meta.json"))?)?;
            assert_eq!(meta["rounds"], 1);
            let init = std::fs::read_to_string(parts.join("init.csv"))?;
            assert_eq!(init.lines().count(), run.final_params.len());

            // plaintext payloads: every hospital uploaded its update, nobody a share
            assert!(round.submit_bytes.values().all(|&b| b > 0));
            assert!(round.share_bytes.is_empty());
            if let Some(keep) = std::env::var_os("FEDCHAIN_EXPORT_DIR") {
                let to = Path::new(&keep).join(s.name());
                std::fs::create_dir_all(&to)?;
                for e in std::fs::read_dir(&parts)? {
                    let e = e?;
                    std::fs::copy(e.path(), to.join(e.file_name()))?;
                }
            }
        }
        Ok(())
    }
}
