//! The `fedchain` command line: `simulate`, `audit`, `inspect`, and the deployment's `keys`,
//! `ca`, `keygen`, `coordinator` and `worker` (their logic lives in fedchain-net and
//! fedchain-node).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

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
use fedchain_ledger::{audit_ledger, stored_genesis, Chain, RocksStore};
use indicatif::{ProgressBar, ProgressStyle};

/// Privacy-preserving federated learning across hospitals with threshold Paillier encryption
/// and a verifiable ledger.
#[derive(Parser, Debug)]
#[command(name = "fedchain", version, about)]
pub struct Cli {
    /// Log format of the coordinator and worker processes (RUST_LOG filters, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run hospitals, the aggregator and validators in one process: encrypted federated
    /// training on real data, every round committed to a RocksDB ledger. Defaults need no config.
    Simulate(SimulateArgs),
    /// Re-verify a ledger from genesis (signatures, certificates, state, payloads and every
    /// round's cryptography); exits non-zero naming the first bad block. The result holds
    /// relative to the genesis the ledger holds: pass --genesis with the published chain id
    /// to refuse a ledger of another chain.
    Audit {
        /// The ledger directory (e.g. fedchain-out/ledger).
        ledger: PathBuf,
        /// The expected genesis hash (the chain id, 64 hex digits, as `fedchain genesis`
        /// printed it): a ledger holding another genesis fails.
        #[arg(long)]
        genesis: Option<String>,
        /// A block known final, `<height>:<hash>` (64 hex digits, e.g. from a validator or an
        /// earlier audit's head): a ledger whose head is below it, or that holds another block
        /// at that height, fails.
        #[arg(long, value_parser = parse_head)]
        head: Option<fedchain_ledger::Head>,
    },
    /// Print a ledger's jobs, rounds, balances and parameter-hash history.
    Inspect {
        /// The ledger directory.
        ledger: PathBuf,
    },
    /// A participant's own keys: generate them with a request for the CA, install the
    /// certificate the CA sends back.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The consortium's certificate authority: init, issue (from a participant's request),
    /// revoke. It never sees a secret.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Deal a job's threshold Paillier key (trusted dealer: run it in an isolated ceremony):
    /// the public key, the committee order and each share sealed to its hospital's X25519 key
    /// into the job directory.
    Keygen(fedchain_net::pki::KeygenArgs),
    /// Write the deployment's genesis (validators, allocations to the aggregator and the
    /// committee, time, a nonce) into the job directory as genesis.json, from certified public
    /// files only; prints the chain id, which is its hash. Hand it out with the job directory.
    Genesis(GenesisArgs),
    /// Run the aggregator of a job over QUIC (mutual TLS), with its ledger and metrics.
    Coordinator(CoordinatorArgs),
    /// Run a hospital: train on its partition, submit, publish decryption shares.
    Worker(WorkerArgs),
    /// Run one institute's validator: its own consensus key and RocksDB replica, ordering
    /// transactions with the other genesis validators (commonware simplex), serving members
    /// over QUIC (mutual TLS).
    Validator(ValidatorArgs),
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Generate this participant's TLS, BLS and X25519 keys (OS randomness, 0600 files) and
    /// request.json (no secret) for the CA.
    New(fedchain_net::pki::KeysNewArgs),
    /// Check the CA's output against this participant's keys and install it: the key
    /// directory becomes the participant's bundle.
    Install(fedchain_net::pki::KeysInstallArgs),
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Create a consortium CA (key, certificate, index, empty CRL).
    Init(fedchain_net::pki::CaInitArgs),
    /// Certify a participant's request (CSR and BLS proof of possession checked): writes its
    /// certificate binding name, role and BLS key, the CA certificate, the CRL, identity.json.
    Issue(fedchain_net::pki::CaIssueArgs),
    /// Revoke a participant and re-sign the CRL.
    Revoke(fedchain_net::pki::CaRevokeArgs),
}

#[derive(Args, Debug)]
struct GenesisArgs {
    /// The job directory (`keygen` wrote its committee.json; genesis.json goes there).
    #[arg(long)]
    job_dir: PathBuf,
    /// The consortium CA certificate the certificates must verify against.
    #[arg(long)]
    ca_cert: PathBuf,
    /// The CA's current CRL (`crl.pem`): a revoked participant is refused.
    #[arg(long)]
    crl: Option<PathBuf>,
    /// The aggregator's public files (a `ca issue --out` directory or its bundle).
    #[arg(long)]
    aggregator: PathBuf,
    /// Each validator's public files, in validator order.
    #[arg(long = "validator", required = true)]
    validators: Vec<PathBuf>,
    /// Deployment nonce (default: random): two geneses of one consortium differ by it.
    #[arg(long)]
    nonce: Option<u64>,
    /// Genesis time in ms since the Unix epoch (default: now).
    #[arg(long)]
    timestamp_ms: Option<u64>,
}

#[derive(Args, Debug)]
struct CoordinatorArgs {
    /// coordinator.toml (see deploy/local-cluster); flags override it.
    #[arg(long)]
    config: PathBuf,
    /// UDP address of the QUIC endpoint.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Address of the /metrics endpoint.
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// The ledger directory.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// Wall-clock milliseconds per block while a round is open.
    #[arg(long)]
    tick_ms: Option<u64>,
}

#[derive(Args, Debug)]
struct ValidatorArgs {
    /// validator.toml (see deploy/local-cluster); flags override it.
    #[arg(long)]
    config: PathBuf,
    /// TCP address of the validators' network.
    #[arg(long)]
    p2p: Option<std::net::SocketAddr>,
    /// UDP address of the members' QUIC endpoint.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// The ledger directory.
    #[arg(long)]
    ledger: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct WorkerArgs {
    /// worker.toml (see deploy/local-cluster); flags override it.
    #[arg(long)]
    config: PathBuf,
    /// The coordinator's UDP address.
    #[arg(long)]
    coordinator: Option<std::net::SocketAddr>,
    /// Address of the /metrics endpoint.
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// Where the worker keeps what it sent for the open round.
    #[arg(long)]
    state_dir: Option<PathBuf>,
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
    /// Continue the stopped run in --out from its ledger (its stored config.toml is the
    /// base the other flags override; anything but --rounds must stay as it was).
    #[arg(long, conflicts_with = "force")]
    resume: bool,
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
            // a resume starts from the stopped run's own configuration
            None if self.resume => {
                let out = self
                    .out
                    .clone()
                    .unwrap_or_else(|| SimulateConfig::default().out);
                let mut c = fedchain_coordinator::resume::RunFiles::new(&out).load_config()?;
                c.out = out;
                c
            }
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
    /// The signal that asked the run to stop (SIGINT 2, SIGTERM 15), 0 for none.
    stop: Arc<AtomicI32>,
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
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst) != 0
    }

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

/// Record the first SIGINT or SIGTERM in `stop` (a thread of its own: the simulation is
/// synchronous); a second one ends the process at once with the usual code.
fn watch_signals(stop: Arc<AtomicI32>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                let sig = tokio::select! {
                    _ = int.recv() => 2,
                    _ = term.recv() => 15,
                };
                if stop.swap(sig, Ordering::SeqCst) != 0 {
                    std::process::exit(128 + sig);
                }
                eprintln!(
                    "signal {sig}: finishing the round in progress, then writing the reports \
                     (again to stop at once)"
                );
            }
        });
    });
    Ok(())
}

/// `simulate`; `Some(code)` when a signal stopped it (128 + the signal, after the reports of
/// what ran are written).
fn run_simulate(a: &SimulateArgs) -> anyhow::Result<Option<u8>> {
    let cfg = a.config()?;
    let stop = Arc::new(AtomicI32::new(0));
    watch_signals(Arc::clone(&stop))?;
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
        stop: Arc::clone(&stop),
    };
    let result = if a.resume {
        fedchain_coordinator::simulate::resume(&cfg, &mut term)
    } else {
        simulate(&cfg, &mut term)
    };
    term.bar.finish_and_clear();
    let (summary, _, _) = result?;
    print_summary(&summary);
    if summary.audit.starts_with("FAILED") {
        anyhow::bail!("the ledger audit failed: {}", summary.audit);
    }
    if summary.interrupted {
        let sig = stop.load(Ordering::SeqCst);
        eprintln!(
            "interrupted by signal {sig} after {} of {} rounds (the files above describe them)",
            summary.rounds_run, cfg.rounds
        );
        return Ok(Some(u8::try_from(128 + sig).unwrap_or(1)));
    }
    Ok(None)
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

/// `--head <height>:<hash>`.
fn parse_head(s: &str) -> Result<fedchain_ledger::Head, String> {
    let (h, hash) = s
        .split_once(':')
        .ok_or("expected <height>:<hash>, e.g. 37:9f2c...")?;
    let height = h.parse::<u64>().map_err(|e| format!("height {h:?}: {e}"))?;
    let bytes = hex::decode(hash).map_err(|e| format!("hash: {e}"))?;
    let hash = <[u8; 32]>::try_from(bytes)
        .map_err(|b| format!("hash of {} bytes, expected 32", b.len()))?;
    Ok(fedchain_ledger::Head {
        height,
        hash: fedchain_ledger::Hash(hash),
    })
}

fn run_audit(
    dir: &PathBuf,
    expected: Option<&str>,
    head: Option<fedchain_ledger::Head>,
) -> anyhow::Result<()> {
    let store =
        RocksStore::open_read_only(dir).with_context(|| format!("opening {}", dir.display()))?;
    let genesis = stored_genesis(&store)?;
    let about = format!(
        "genesis {} (consortium {}, {} validators)",
        genesis.chain_id,
        genesis.consortium,
        genesis.validators.len()
    );
    match expected {
        Some(e) => println!("{about}, expected {e}"),
        None => println!(
            "{about}: the result holds relative to this genesis; pass --genesis <hash> to check \
             that it is the published one"
        ),
    }
    let t = std::time::Instant::now();
    let (_, r) = audit_ledger(
        &store,
        expected,
        head,
        Some(&FedchainVerifier),
        Some(&fedchain_validator::SimplexFinality::new()),
    )?;
    println!(
        "audit ok: {} blocks, {} transactions, {} payloads, {} rounds re-verified (ciphertext products, share proofs, next parameters), supply {} tokens, head {}, {:.2} s",
        r.blocks, r.transactions, r.payloads_checked, r.rounds_verified, r.supply, hex::encode(r.head.0), t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_inspect(dir: &PathBuf) -> anyhow::Result<()> {
    let store =
        RocksStore::open_read_only(dir).with_context(|| format!("opening {}", dir.display()))?;
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
        let declared: Vec<String> = j
            .samples
            .iter()
            .map(|(m, n)| format!("{} {n}", a_name(s, m)))
            .collect();
        w!(
            "  declared samples (max {}): {}",
            j.spec.max_samples,
            declared.join(", ")
        );
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
        if let Some(h) = j.current_params {
            w!("  current parameters {}", hex::encode(h.0));
        }
    }
    emit(&o)
}

fn a_name(s: &fedchain_ledger::State, a: &fedchain_ledger::Address) -> String {
    s.participants
        .get(a)
        .map_or_else(|| hex::encode(a.0), |p| p.pseudonym.clone())
}

/// Logs at `info` unless RUST_LOG says otherwise; `simulate` keeps its embedded consensus
/// engines' start-up lines out of the table it prints.
fn init_logs(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

/// A multi-threaded runtime whose `shutdown` fires on SIGINT or SIGTERM.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn on_signal(stop: tokio::sync::oneshot::Sender<()>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("signal received, stopping");
    let _ = stop.send(());
}

fn run_coordinator(a: &CoordinatorArgs) -> anyhow::Result<()> {
    use fedchain_node::config::CoordinatorConfig;
    let mut cfg = CoordinatorConfig::load(&a.config)?;
    if let Some(v) = a.listen {
        cfg.listen = v;
    }
    if let Some(v) = a.metrics {
        cfg.metrics = Some(v);
    }
    if let Some(v) = &a.ledger {
        cfg.ledger = v.clone();
    }
    if let Some(v) = a.tick_ms {
        cfg.tick_ms = v;
    }
    cfg.validate()?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let (stop, shutdown) = tokio::sync::oneshot::channel();
        tokio::spawn(on_signal(stop));
        fedchain_node::coordinator::run(cfg, shutdown).await
    })?;
    for r in &report.rounds {
        println!(
            "round {}: {} at height {}, accepted {}, missing {}, shares {}, params {}",
            r.round,
            if r.committed { "committed" } else { "voided" },
            r.height,
            r.accepted.len(),
            r.missing.len(),
            r.share_providers.len(),
            r.new_params_hash
                .map_or_else(|| "-".into(), |h| hex::encode(h.0))
        );
    }
    println!(
        "coordinator stopped: ledger {} at height {}, finished {}, parameters {}",
        report.ledger.display(),
        report.height,
        report.finished,
        report
            .params_hash
            .map_or_else(|| "-".into(), |h| hex::encode(h.0))
    );
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

fn run_validator(a: &ValidatorArgs) -> anyhow::Result<()> {
    use fedchain_node::config::ValidatorConfig;
    let mut cfg = ValidatorConfig::load(&a.config)?;
    if let Some(v) = a.p2p {
        cfg.p2p = v;
    }
    if let Some(v) = a.listen {
        cfg.listen = v;
    }
    if let Some(v) = &a.ledger {
        cfg.ledger = v.clone();
    }
    cfg.validate()?;
    // the validator owns its runtime (commonware's); signals are watched on a thread of
    // their own
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || signals.block_on(on_signal(stop)));
    let r = fedchain_node::validator::run(cfg, stopped)?;
    println!(
        "validator {} stopped: height {}, head {}, {} finalizations committed",
        r.index,
        r.height,
        hex::encode(r.head.0),
        r.finalized
    );
    Ok(())
}

fn run_worker(a: &WorkerArgs) -> anyhow::Result<()> {
    use fedchain_node::config::WorkerConfig;
    let mut cfg = WorkerConfig::load(&a.config)?;
    if let Some(v) = a.coordinator {
        cfg.coordinator = v;
    }
    if let Some(v) = a.metrics {
        cfg.metrics = Some(v);
    }
    if let Some(v) = &a.state_dir {
        cfg.state_dir = v.clone();
    }
    cfg.validate()?;
    let rt = runtime()?;
    let report = rt.block_on(async {
        let (stop, shutdown) = tokio::sync::oneshot::channel();
        tokio::spawn(on_signal(stop));
        fedchain_node::worker::run(cfg, shutdown).await
    })?;
    println!(
        "worker {} stopped: {} round results seen, {} connections",
        report.name, report.rounds_seen, report.connections
    );
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

fn run_keys(c: &KeysCommand) -> anyhow::Result<()> {
    match c {
        KeysCommand::New(a) => {
            let k = fedchain_net::pki::keys_new(a)?;
            println!(
                "keys of {} ({}) generated in {} (secrets 0600, never to leave it)",
                k.request.name,
                k.request.role.name(),
                a.out.display()
            );
            println!(
                "send {} to the CA; request fingerprint {}",
                k.request_path.display(),
                k.fingerprint
            );
        }
        KeysCommand::Install(a) => {
            let i = fedchain_net::pki::keys_install(a)?;
            println!(
                "installed the certificate of {} ({}), address {}: bundle {}",
                i.identity.name,
                i.identity.role.name(),
                i.identity.address,
                a.key_dir.display()
            );
            println!("CA certificate fingerprint {}", i.ca_fingerprint);
        }
    }
    Ok(())
}

fn run_ca(c: &CaCommand) -> anyhow::Result<()> {
    match c {
        CaCommand::Init(a) => {
            let fingerprint = fedchain_net::pki::ca_init(a)?;
            println!(
                "CA {} created in {}; CA certificate fingerprint {fingerprint}",
                a.name,
                a.dir.display(),
            );
        }
        CaCommand::Issue(a) => {
            let i = fedchain_net::pki::ca_issue(a)?;
            let id = &i.identity;
            println!(
                "issued {} ({}), address {}, request fingerprint {}: certificate in {}",
                id.name,
                id.role.name(),
                id.address,
                i.fingerprint,
                a.out.display()
            );
        }
        CaCommand::Revoke(a) => {
            let crl = fedchain_net::pki::ca_revoke(a)?;
            println!("revoked {}; CRL {}", a.name, crl.display());
        }
    }
    Ok(())
}

fn run_genesis(a: &GenesisArgs) -> anyhow::Result<()> {
    let g = fedchain_node::material::write_genesis(&fedchain_node::material::GenesisInput {
        job_dir: a.job_dir.clone(),
        ca_cert: a.ca_cert.clone(),
        crl: a.crl.clone(),
        aggregator: a.aggregator.clone(),
        validators: a.validators.clone(),
        nonce: a.nonce,
        timestamp_ms: a.timestamp_ms,
    })?;
    println!(
        "genesis of consortium {} (nonce {}, {} validators, {} allocations) in {}",
        g.consortium,
        g.nonce,
        g.validators.len(),
        g.allocations.len(),
        a.job_dir.join(fedchain_node::material::GENESIS).display()
    );
    println!("chain id (genesis hash) {}", g.chain_id);
    println!(
        "publish it: `fedchain audit <ledger> --genesis {}` checks a ledger against it",
        g.chain_id
    );
    Ok(())
}

fn run_keygen(a: &fedchain_net::pki::KeygenArgs) -> anyhow::Result<()> {
    eprintln!(
        "warning: keygen is a trusted dealer: this process sees the whole decryption key. Run it \
         in an isolated ceremony (an offline machine, wiped afterwards) until distributed key \
         generation (issue #15) lands."
    );
    let t = std::time::Instant::now();
    let out = fedchain_net::pki::keygen(a)?;
    println!(
        "dealt a {}-of-{} threshold key ({} bits) in {:.2} s; job directory {}",
        out.public.threshold(),
        out.public.parties(),
        a.key_bits,
        t.elapsed().as_secs_f64(),
        a.job_dir.display()
    );
    for m in &out.committee {
        println!(
            "  holder {}: {} {} (share sealed to it in {})",
            m.holder,
            m.name,
            m.address,
            fedchain_net::pki::share_path(&a.job_dir, &m.name).display()
        );
    }
    println!("hand the job directory to every participant (the sealed shares travel with it)");
    Ok(())
}

/// An error and its causes, each printed once: a cause whose text its parent already shows
/// (an enum variant that formats its source, `#[error("network: {0}")]`) is left out.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut shown = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if shown.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        shown = text;
    }
    out
}

impl Cli {
    /// Run the command; errors are printed and turned into a non-zero exit code.
    pub fn run(self) -> ExitCode {
        let default = match self.cmd {
            Command::Simulate(_) => "info,commonware_consensus=warn,commonware_p2p=warn",
            _ => "info",
        };
        init_logs(self.log_format, default);
        let r = match &self.cmd {
            Command::Simulate(a) => match run_simulate(a) {
                Ok(Some(code)) => return ExitCode::from(code),
                r => r.map(|_| ()),
            },
            Command::Audit {
                ledger,
                genesis,
                head,
            } => run_audit(ledger, genesis.as_deref(), *head),
            Command::Inspect { ledger } => run_inspect(ledger),
            Command::Keys(c) => run_keys(c),
            Command::Ca(c) => run_ca(c),
            Command::Keygen(a) => run_keygen(a),
            Command::Genesis(a) => run_genesis(a),
            Command::Coordinator(a) => run_coordinator(a),
            Command::Worker(a) => run_worker(a),
            Command::Validator(a) => run_validator(a),
        };
        match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", error_chain(&e));
                ExitCode::FAILURE
            }
        }
    }
}
