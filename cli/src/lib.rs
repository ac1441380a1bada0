//! The `fedchain` command line: `simulate`, `audit`, `inspect`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fedchain_coordinator::config::{Byzantine, ModelKind};
use fedchain_coordinator::report::{table_header, table_row};
use fedchain_coordinator::simulate::{Progress, Summary};
use fedchain_coordinator::{simulate, FedchainVerifier, Observer, SimulateConfig};
use fedchain_crypto::Rounding;
use fedchain_datasets::builtin::Builtin;
use fedchain_datasets::Partitioner;
use fedchain_ledger::state::RoundOutcome;
use fedchain_ledger::{stored_genesis, verify_chain_with, Chain, RocksStore};
use indicatif::{ProgressBar, ProgressStyle};

/// Privacy-preserving federated learning across hospitals with threshold Paillier encryption
/// and a verifiable ledger.
#[derive(Parser, Debug)]
#[command(name = "fedchain", version, about)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run hospitals, the aggregator and validators in one process: encrypted federated
    /// training on real data, every round committed to a RocksDB ledger. Defaults need no config.
    Simulate(SimulateArgs),
    /// Re-verify a ledger from genesis (signatures, certificates, state, payloads and every
    /// round's cryptography); exits non-zero naming the first bad block.
    Audit {
        /// The ledger directory (e.g. fedchain-out/ledger).
        ledger: PathBuf,
    },
    /// Print a ledger's jobs, rounds, balances and parameter-hash history.
    Inspect {
        /// The ledger directory.
        ledger: PathBuf,
    },
}

#[derive(Args, Debug)]
struct SimulateArgs {
    /// A TOML configuration (see configs/); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    hospitals: Option<usize>,
    #[arg(long)]
    threshold: Option<u32>,
    #[arg(long)]
    validators: Option<usize>,
    /// Paillier modulus size (2048, 3072; 512 for quick experiments only).
    #[arg(long)]
    key_bits: Option<u32>,
    #[arg(long)]
    rounds: Option<u32>,
    /// breast_cancer, digits or mnist_5k.
    #[arg(long)]
    dataset: Option<Builtin>,
    /// logistic_regression, mlp, or (built with --features torch) deepchain_cnn, lenet5.
    #[arg(long)]
    model: Option<ModelKind>,
    /// iid, dirichlet:ALPHA, quantity:ALPHA or shards:K.
    #[arg(long)]
    partition: Option<Partitioner>,
    #[arg(long)]
    seed: Option<u64>,
    /// Bits per quantized value (4..=32).
    #[arg(long)]
    value_bits: Option<u32>,
    /// Clipping bound of the sample-scaled update values.
    #[arg(long)]
    clip: Option<f32>,
    /// nearest or stochastic.
    #[arg(long)]
    rounding: Option<Rounding>,
    /// Output directory (rounds.csv, summary.json, plots, ledger/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run without encryption (the baseline alone).
    #[arg(long)]
    plaintext: bool,
    /// Do not run the plaintext baseline next to the encrypted run.
    #[arg(long)]
    no_baseline: bool,
    /// Replace an existing output ledger.
    #[arg(long)]
    force: bool,
    /// A misbehaving hospital: HOSPITAL:equivocate|bad-proof|garbage-ciphertext|late|dropout
    /// (repeatable).
    #[arg(long)]
    byzantine: Vec<Byzantine>,
}

impl SimulateArgs {
    fn config(&self) -> anyhow::Result<SimulateConfig> {
        let mut c = match &self.config {
            Some(p) => SimulateConfig::from_toml(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )?,
            None => SimulateConfig::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { c.$f = v; } )* };
        }
        set!(
            hospitals, threshold, validators, key_bits, rounds, dataset, model, partition, seed,
            value_bits, clip, rounding, out
        );
        c.plaintext |= self.plaintext;
        c.force |= self.force;
        if self.no_baseline {
            c.baseline = false;
        }
        c.byzantine.extend(self.byzantine.iter().copied());
        c.validate()?;
        Ok(c)
    }
}

/// Draws a progress bar and the per-round table.
struct Terminal {
    bar: ProgressBar,
    header_done: bool,
    encrypted: bool,
}

impl Terminal {
    /// A line above the bar (printed plainly when the bar is hidden, e.g. output to a file).
    fn line(&self, s: String) {
        if self.bar.is_hidden() {
            println!("{s}");
        } else {
            self.bar.println(s);
        }
    }
}

impl Observer for Terminal {
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
            } => {
                let who = if hospital == usize::MAX {
                    "-".to_string()
                } else {
                    format!("hospital-{hospital}")
                };
                self.line(format!("  round {round}: rejected {who}: {reason}"));
            }
            Progress::Round(row) => {
                if !self.header_done {
                    self.line(table_header());
                    self.header_done = true;
                }
                self.line(table_row(row));
                self.bar.inc(1);
                if self.bar.position() == self.bar.length().unwrap_or(0) && self.encrypted {
                    // the baseline run follows with its own table
                    self.header_done = false;
                    self.encrypted = false;
                    self.bar.set_position(0);
                    self.line("plaintext baseline:".to_string());
                }
            }
        }
    }
}

fn print_summary(s: &Summary) {
    println!();
    println!("final test accuracy: {:.2}%", s.final_accuracy * 100.0);
    if let (Some(p), Some(gap)) = (s.plaintext_final_accuracy, s.accuracy_gap_pp) {
        println!(
            "plaintext baseline:  {:.2}% (encrypted - plaintext = {gap:+.2} pp)",
            p * 100.0
        );
    }
    let t = &s.seconds;
    println!(
        "seconds: train {:.2}, encrypt {:.2}, aggregate {:.2}, decrypt {:.2}, commit {:.2}, total {:.2} (setup {:.2})",
        t.train, t.encrypt, t.aggregate, t.decrypt, t.commit, t.total, s.setup_s
    );
    if let Some(p) = &s.plaintext_seconds {
        println!(
            "plaintext total {:.2} s: encrypted / plaintext = {:.1}x",
            p.total,
            t.total / p.total.max(1e-9)
        );
    }
    println!(
        "ledger: {} (height {}), audit {}",
        s.ledger.display(),
        s.ledger_height,
        s.audit
    );
    println!("balances (tokens: free + deposit), {} minted:", s.minted);
    for b in &s.balances {
        println!(
            "  {:<12} {:>8} + {:>5}",
            b.participant, b.balance, b.deposit
        );
    }
    println!("files:");
    for f in &s.files {
        println!("  {}", f.display());
    }
}

fn run_simulate(a: &SimulateArgs) -> anyhow::Result<()> {
    let cfg = a.config()?;
    let bar = ProgressBar::new(cfg.rounds as u64);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rounds  {msg}",
    )?);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    println!(
        "fedchain simulate: {} hospitals (t = {}), {} validators, {}-bit key, {:?} on {}, {} rounds, seed {}{}",
        cfg.hospitals, cfg.threshold, cfg.validators, cfg.key_bits, cfg.model, cfg.dataset.name(), cfg.rounds, cfg.seed,
        if cfg.plaintext { ", PLAINTEXT" } else { "" }
    );
    let mut term = Terminal {
        bar,
        header_done: false,
        encrypted: !cfg.plaintext && cfg.baseline,
    };
    let result = simulate(&cfg, &mut term);
    term.bar.finish_and_clear();
    let (summary, _, _) = result?;
    print_summary(&summary);
    if summary.audit.starts_with("FAILED") {
        anyhow::bail!("the ledger audit failed: {}", summary.audit);
    }
    Ok(())
}

/// Write a command's output; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn run_audit(dir: &PathBuf) -> anyhow::Result<()> {
    let store =
        RocksStore::open_existing(dir).with_context(|| format!("opening {}", dir.display()))?;
    let genesis = stored_genesis(&store)?;
    let g = fedchain_ledger::state::genesis_block(&genesis)
        .header
        .hash();
    println!(
        "genesis {} ({}), {} validators",
        hex::encode(g.0),
        genesis.chain_id,
        genesis.validators.len()
    );
    let t = std::time::Instant::now();
    let r = verify_chain_with(&store, &genesis, Some(&FedchainVerifier))?;
    println!(
        "audit ok: {} blocks, {} transactions, {} payloads, {} rounds re-verified (ciphertext products, share proofs, next parameters), supply {} tokens, head {}, {:.2} s",
        r.blocks, r.transactions, r.payloads_checked, r.rounds_verified, r.supply, hex::encode(r.head.0), t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_inspect(dir: &PathBuf) -> anyhow::Result<()> {
    let store =
        RocksStore::open_existing(dir).with_context(|| format!("opening {}", dir.display()))?;
    let chain = Chain::open_existing(store)?;
    let s = chain.state();
    let mut o = String::new();
    macro_rules! w {
        ($($t:tt)*) => {{
            use std::fmt::Write as _;
            let _ = writeln!(o, $($t)*);
        }};
    }
    w!(
        "chain {}: height {}, head {}",
        s.chain_id,
        chain.head().height,
        hex::encode(chain.head().hash.0)
    );
    w!(
        "tokens: genesis {} + minted {} = {}",
        s.genesis_supply,
        s.minted,
        s.total_tokens()
    );
    w!("participants:");
    for (a, p) in &s.participants {
        w!(
            "  {:<14} {:<10} {}  balance {}",
            p.pseudonym,
            p.role.name(),
            hex::encode(a.0),
            s.balance(a)
        );
    }
    for (id, j) in &s.jobs {
        w!(
            "job {id}: aggregator {}, threshold {}, {} members, model spec {}",
            a_name(s, &j.aggregator),
            j.spec.threshold,
            j.members.len(),
            hex::encode(j.spec.model_spec_hash.0)
        );
        for (m, d) in &j.members {
            w!("  member {:<14} deposit {d}", a_name(s, m));
        }
        w!("  round  height  outcome    accepted  shares  minted  params -> next params");
        for r in &j.history {
            match &r.outcome {
                RoundOutcome::Committed {
                    new_params_hash,
                    accepted,
                    share_providers,
                    minted,
                    ..
                } => w!(
                    "  {:>5}  {:>6}  committed  {:>8}  {:>6}  {:>6}  {} -> {}",
                    r.round,
                    r.height,
                    accepted.len(),
                    share_providers.len(),
                    minted,
                    &hex::encode(r.params_hash.0)[..12],
                    &hex::encode(new_params_hash.0)[..12]
                ),
                RoundOutcome::Void => w!("  {:>5}  {:>6}  void", r.round, r.height),
            }
        }
    }
    emit(&o)
}

fn a_name(s: &fedchain_ledger::State, a: &fedchain_ledger::Address) -> String {
    s.participants
        .get(a)
        .map_or_else(|| hex::encode(a.0), |p| p.pseudonym.clone())
}

impl Cli {
    /// Run the command; errors are printed and turned into a non-zero exit code.
    pub fn run(self) -> ExitCode {
        let r = match &self.cmd {
            Command::Simulate(a) => run_simulate(a),
            Command::Audit { ledger } => run_audit(ledger),
            Command::Inspect { ledger } => run_inspect(ledger),
        };
        match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}
