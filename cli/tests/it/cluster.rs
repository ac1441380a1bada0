//! A consortium of real processes in a temporary directory.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fedchain_coordinator::SimulateConfig;
use fedchain_datasets::Partitioner;
use fedchain_node::config::{CoordinatorConfig, ValidatorConfig, WorkerConfig};
use fedchain_node::validator::Endpoint;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Serialize the cluster tests (they are CPU-bound and time-sensitive).
pub fn lock() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_fedchain")
}

/// `fedchain simulate` on a small, fast job: a 512-bit key (tests only), 4 hospitals, t = 2, no
/// plaintext baseline.
pub const SMALL_SIMULATE: &[&str] = &[
    "simulate",
    "--key-bits",
    "512",
    "--hospitals",
    "4",
    "--threshold",
    "2",
    "--no-baseline",
];

/// Read the table of `child` (a `simulate` with its stdout piped) until `n` round rows went by
/// (they start with the round number), send it SIGINT and wait for it: its exit status and
/// the rest of its output. Panics when the output ends before `n` rows.
pub fn interrupt_after_rows(
    child: &mut Child,
    n: usize,
) -> (std::process::ExitStatus, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut rows = 0;
    for l in lines.by_ref() {
        if l.expect("line")
            .trim_start()
            .starts_with(|c: char| c.is_ascii_digit())
        {
            rows += 1;
            if rows == n {
                break;
            }
        }
    }
    assert_eq!(rows, n, "the output ended after {rows} of {n} round rows");
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    (child.wait().expect("wait"), rest)
}

/// Wait until the ledger in `ledger` (written by `child`) is final at `height` or above, by its
/// anchor; panics after 120 s or when `child` ends first.
pub fn wait_for_height(child: &mut Child, ledger: &Path, height: u64) {
    let end = Instant::now() + Duration::from_secs(120);
    while fedchain_ledger::dir::Anchor::read(ledger)
        .ok()
        .flatten()
        .map_or(0, |a| a.height)
        < height
    {
        assert!(Instant::now() < end, "no {height} blocks in 120 s");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the writer ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `fedchain args` to completion; panics with its output on failure.
pub fn fedchain(dir: &Path, args: &[&str]) -> String {
    let out: Output = Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run fedchain");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fedchain {args:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A participant joins: `keys new` in its own directory `key_dir` (its secrets stay there),
/// the CA (directory `ca`) certifies its request into `issued_dir`, `keys install` makes
/// `key_dir` its bundle. Paths are relative to `dir`.
pub fn participant(dir: &Path, ca: &str, name: &str, role: &str, key_dir: &str, issued_dir: &str) {
    fedchain(
        dir,
        &[
            "keys", "new", "--name", name, "--role", role, "--out", key_dir,
        ],
    );
    let request = format!("{key_dir}/request.json");
    fedchain(
        dir,
        &[
            "ca",
            "issue",
            "--dir",
            ca,
            "--request",
            &request,
            "--out",
            issued_dir,
        ],
    );
    fedchain(
        dir,
        &[
            "keys",
            "install",
            "--key-dir",
            key_dir,
            "--cert-dir",
            issued_dir,
        ],
    );
}

/// A loopback port free for both TCP and UDP now, taken below the kernel's ephemeral range
/// (32768.. on Linux) and never handed out twice by this process: a port asked of the kernel
/// with bind(0) and released can be taken again by any outgoing connection before the process
/// it was meant for binds it (seen in CI: a validator's p2p listener, `BindFailed`).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 600) as u16 * 20,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let p = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(p < 32_768, "no free port below the ephemeral range");
        let tcp = std::net::TcpListener::bind(("127.0.0.1", p));
        let udp = UdpSocket::bind(("127.0.0.1", p));
        if tcp.is_ok() && udp.is_ok() {
            return p;
        }
    }
}

/// The experiment every test runs (512-bit key: tests only).
pub fn experiment(hospitals: usize, rounds: u32) -> SimulateConfig {
    SimulateConfig {
        hospitals,
        threshold: (hospitals / 3 + 1) as u32,
        key_bits: 512,
        rounds,
        partition: Partitioner::Iid,
        deadline_blocks: 4,
        baseline: false,
        ..SimulateConfig::default()
    }
}

/// The deployment's files in `d`, made the way its parties make them: a CA (`ca/`); the
/// aggregator, `validators` validators and `hospitals` hospitals, each with its own keys in
/// `bundles/<name>` and the CA's certificate of them in `issued/<name>`; a dealt job key for
/// the hospitals (t = n/3 + 1, 512 bits; shares sealed to each hospital) in `job/`; and the
/// genesis (`job/genesis.json`) from the certified public files.
pub fn consortium_files(d: &Path, hospitals: usize, validators: usize) {
    fedchain(
        d,
        &["ca", "init", "--dir", "ca", "--name", "test-consortium"],
    );
    let issue = |name: &str, role: &str| {
        participant(
            d,
            "ca",
            name,
            role,
            &format!("bundles/{name}"),
            &format!("issued/{name}"),
        );
    };
    issue("aggregator", "aggregator");
    for v in 0..validators {
        issue(&format!("validator-{v}"), "validator");
    }
    let mut keygen = vec![
        "keygen".to_string(),
        "--job-dir".into(),
        "job".into(),
        "--threshold".into(),
        (hospitals / 3 + 1).to_string(),
        "--key-bits".into(),
        "512".into(),
        "--ca-cert".into(),
        "ca/ca.cert.pem".into(),
        "--crl".into(),
        "ca/crl.pem".into(),
    ];
    for i in 0..hospitals {
        issue(&format!("hospital-{i}"), "hospital");
        // the dealer reads the CA's output (public files), never a bundle
        keygen.push("--hospital".into());
        keygen.push(format!("issued/hospital-{i}"));
    }
    let args: Vec<&str> = keygen.iter().map(String::as_str).collect();
    fedchain(d, &args);
    // the genesis (its hash is the chain id), from the certified public files
    let mut genesis = vec![
        "genesis".to_string(),
        "--job-dir".into(),
        "job".into(),
        "--ca-cert".into(),
        "ca/ca.cert.pem".into(),
        "--crl".into(),
        "ca/crl.pem".into(),
        "--aggregator".into(),
        "issued/aggregator".into(),
    ];
    for v in 0..validators {
        genesis.push("--validator".into());
        genesis.push(format!("issued/validator-{v}"));
    }
    let args: Vec<&str> = genesis.iter().map(String::as_str).collect();
    let out = fedchain(d, &args);
    assert!(out.contains("chain id (genesis hash)"), "{out}");
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub n: usize,
    pub listen: SocketAddr,
    pub coordinator: CoordinatorConfig,
    pub coord: Option<Child>,
    pub workers: Vec<Option<Child>>,
    /// `fedchain validator` processes (`Cluster::with_validators`; none otherwise).
    pub validator_cfgs: Vec<ValidatorConfig>,
    pub validators: Vec<Option<Child>>,
}

impl Cluster {
    /// Generate the PKI (CA; the aggregator, 3 validators and n hospitals each with their own
    /// keys), deal the key (shares sealed to the hospitals) and write the configurations; the
    /// validators' replicas run inside the coordinator. Nothing runs yet.
    pub fn new(n: usize, rounds: u32) -> Self {
        Self::build(n, rounds, 3, false)
    }

    /// Like [`Self::new`] with `v` validators as their own processes (`validator-<i>.toml`,
    /// each with its own bundle, replica and engine journal): the coordinator holds no
    /// validator key and follows them (`chain` in its config).
    pub fn with_validators(n: usize, rounds: u32, v: usize) -> Self {
        Self::build(n, rounds, v, true)
    }

    fn build(n: usize, rounds: u32, v: usize, processes: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        consortium_files(d, n, v);
        fs::create_dir_all(d.join("logs")).expect("logs dir");
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let validator_cfgs: Vec<ValidatorConfig> = if processes {
            let p2p: Vec<SocketAddr> = (0..v)
                .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
                .collect();
            (0..v)
                .map(|i| ValidatorConfig {
                    bundle: d.join(format!("bundles/validator-{i}")),
                    job_dir: d.join("job"),
                    ledger: d.join(format!("validator-{i}/ledger")),
                    consensus_dir: d.join(format!("validator-{i}/consensus")),
                    p2p: p2p[i],
                    validators: p2p.clone(),
                    listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
                    ..ValidatorConfig::default()
                })
                .collect()
        } else {
            Vec::new()
        };
        let coordinator = CoordinatorConfig {
            listen,
            metrics: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            bundle: d.join("bundles/aggregator"),
            validators: if processes {
                Vec::new()
            } else {
                (0..v)
                    .map(|i| d.join(format!("bundles/validator-{i}")))
                    .collect()
            },
            chain: validator_cfgs
                .iter()
                .enumerate()
                .map(|(i, c)| Endpoint {
                    name: format!("validator-{i}"),
                    address: c.listen,
                })
                .collect(),
            job_dir: d.join("job"),
            ledger: d.join("coordinator/ledger"),
            // following validators a tick only hands them what was collected
            tick_ms: if processes { 200 } else { 1000 },
            wait_for_members_ms: 60_000,
            experiment: SimulateConfig {
                // validators pace blocks at one a second whatever the coordinator does, and
                // a dead validator's views cost a leader timeout each: a round stays open for
                // ten of their blocks
                deadline_blocks: if processes { 10 } else { 4 },
                ..experiment(n, rounds)
            },
            ..CoordinatorConfig::default()
        };
        let c = Self {
            dir,
            n,
            listen,
            coordinator,
            coord: None,
            workers: (0..n).map(|_| None).collect(),
            validators: validator_cfgs.iter().map(|_| None).collect(),
            validator_cfgs,
        };
        c.write_configs();
        c
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn write_configs(&self) {
        let d = self.dir.path();
        fs::write(
            d.join("coordinator.toml"),
            toml::to_string(&self.coordinator).expect("toml"),
        )
        .expect("write");
        for i in 0..self.n {
            let w = WorkerConfig {
                coordinator: self.listen,
                bundle: d.join(format!("bundles/hospital-{i}")),
                job_dir: d.join("job"),
                state_dir: d.join(format!("workers/hospital-{i}")),
                // following the validators when they are processes, like the coordinator
                chain: self.coordinator.chain.clone(),
                metrics: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                backoff_max_ms: 2000,
                net: fedchain_node::config::NetConfig {
                    timeout_ms: 5000,
                    ..Default::default()
                },
                experiment: self.coordinator.experiment.clone(),
                ..WorkerConfig::default()
            };
            fs::write(
                d.join(format!("worker-{i}.toml")),
                toml::to_string(&w).expect("toml"),
            )
            .expect("write");
        }
        for (i, v) in self.validator_cfgs.iter().enumerate() {
            fs::write(
                d.join(format!("validator-{i}.toml")),
                toml::to_string(v).expect("toml"),
            )
            .expect("write");
        }
    }

    fn spawn(&self, args: &[&str], log: &str, env: &[(&str, &str)]) -> Child {
        let err = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("logs/{log}.log")))
            .expect("log");
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(&format!("logs/{log}.out")))
            .expect("out");
        let mut cmd = Command::new(bin());
        cmd.current_dir(self.dir.path())
            .args(args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("spawn")
    }

    pub fn start_coordinator(&mut self, env: &[(&str, &str)]) {
        let c = self.spawn(
            &["coordinator", "--config", "coordinator.toml"],
            "coordinator",
            env,
        );
        self.coord = Some(c);
    }

    pub fn start_worker(&mut self, i: usize, env: &[(&str, &str)]) {
        let cfg = format!("worker-{i}.toml");
        let c = self.spawn(&["worker", "--config", &cfg], &format!("worker-{i}"), env);
        self.workers[i] = Some(c);
    }

    pub fn start_validator(&mut self, i: usize) {
        let cfg = format!("validator-{i}.toml");
        let c = self.spawn(
            &["validator", "--config", &cfg],
            &format!("validator-{i}"),
            &[],
        );
        self.validators[i] = Some(c);
    }

    /// SIGKILL validator `i`.
    pub fn kill_validator(&mut self, i: usize) {
        if let Some(mut c) = self.validators[i].take() {
            c.kill().expect("kill");
            let _ = c.wait();
        }
    }

    /// SIGTERM validator `i`; it must exit with success.
    pub fn stop_validator(&mut self, i: usize) {
        let mut c = self.validators[i].take().expect("validator running");
        let sent = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let st = c.wait().expect("wait");
        assert!(
            st.success(),
            "validator {i} exited with {st}\n{}",
            self.logs()
        );
    }

    /// Panics with the logs if validator `i` has exited.
    pub fn validator_alive(&mut self, i: usize) {
        let gone = self.validators[i]
            .as_mut()
            .is_some_and(|c| c.try_wait().expect("wait").is_some());
        assert!(!gone, "validator {i} exited\n{}", self.logs());
    }

    /// Every validator process, then the coordinator and the workers.
    pub fn start_all(&mut self) {
        for i in 0..self.validator_cfgs.len() {
            self.start_validator(i);
        }
        self.start_coordinator(&[]);
        for i in 0..self.n {
            self.start_worker(i, &[]);
        }
    }

    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path(&format!("logs/{name}.log"))).unwrap_or_default()
    }

    pub fn out(&self, name: &str) -> String {
        fs::read_to_string(self.path(&format!("logs/{name}.out"))).unwrap_or_default()
    }

    /// Every log, for a failure message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        let mut names = vec!["coordinator".to_string()];
        names.extend((0..self.n).map(|i| format!("worker-{i}")));
        names.extend((0..self.validator_cfgs.len()).map(|i| format!("validator-{i}")));
        for n in names {
            let l = self.log(&n);
            let tail: Vec<&str> = l.lines().rev().take(25).collect();
            s.push_str(&format!("--- {n}\n"));
            for line in tail.into_iter().rev() {
                s.push_str(line);
                s.push('\n');
            }
        }
        s
    }

    /// Wait until `f` holds, or panic with the logs after `secs`.
    pub fn wait_for(&self, what: &str, secs: u64, mut f: impl FnMut(&Self) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}\n{}", self.logs());
    }

    /// Wait for the coordinator to exit; gives its success.
    pub fn wait_coordinator(&mut self, secs: u64) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        let c = self.coord.as_mut().expect("coordinator running");
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                self.coord = None;
                return st.success();
            }
            if Instant::now() > end {
                panic!(
                    "the coordinator did not finish in {secs} s\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait for every running worker to exit (they stop when the job is finished).
    pub fn wait_workers(&mut self, secs: u64) {
        let end = Instant::now() + Duration::from_secs(secs);
        for i in 0..self.n {
            while let Some(c) = self.workers[i].as_mut() {
                if let Some(st) = c.try_wait().expect("wait") {
                    assert!(st.success(), "worker {i} failed\n{}", self.logs());
                    self.workers[i] = None;
                } else if Instant::now() > end {
                    panic!("worker {i} did not stop\n{}", self.logs());
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// After a restart of the coordinator: it finishes the job, the workers stop, and its log
    /// says it recovered the ledger. Gives the log.
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    pub fn finish_after_restart(&mut self) -> String {
        assert!(
            self.wait_coordinator(240),
            "restarted coordinator failed\n{}",
            self.logs()
        );
        self.wait_workers(60);
        let log = self.log("coordinator");
        assert!(log.contains("recovered the ledger"), "{log}");
        log
    }

    /// Start every worker with its round-1 submission held 3 s after training (failpoint
    /// `worker::before-submit`) and wait until all trained round 1: a kill of the coordinator
    /// now lands while round 1 collects.
    #[cfg(feature = "failpoints")]
    pub fn start_workers_holding_round_1(&mut self) {
        for i in 0..self.n {
            self.start_worker(
                i,
                &[("FAILPOINTS", "worker::before-submit=1*off->1*sleep(3000)")],
            );
        }
        let n = self.n;
        self.wait_for("round 1 to be trained", 240, |c| {
            (0..n).all(|i| {
                c.log(&format!("worker-{i}"))
                    .lines()
                    .any(|l| l.contains("trained and encrypted") && l.contains("round=1"))
            })
        });
    }

    /// kill -9 of the coordinator.
    pub fn kill_coordinator(&mut self) {
        if let Some(mut c) = self.coord.take() {
            c.kill().expect("kill");
            let _ = c.wait();
        }
    }

    /// kill -9.
    pub fn kill_worker(&mut self, i: usize) {
        if let Some(mut c) = self.workers[i].take() {
            c.kill().expect("kill");
            let _ = c.wait();
        }
    }

    /// The chain id: the hash of the job directory's genesis.
    pub fn chain_id(&self) -> String {
        fedchain_node::material::load_genesis(&self.path("job"))
            .expect("genesis")
            .chain_id
    }

    /// `fedchain audit --genesis <chain id>` and `fedchain inspect` of the coordinator's ledger.
    pub fn audit(&self) -> (String, String) {
        let l = self.coordinator.ledger.display().to_string();
        let chain = self.chain_id();
        (
            fedchain(self.dir.path(), &["audit", &l, "--genesis", &chain]),
            fedchain(self.dir.path(), &["inspect", &l]),
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self
            .workers
            .iter_mut()
            .chain(std::iter::once(&mut self.coord))
            .chain(self.validators.iter_mut())
        {
            if let Some(mut c) = c.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The `current parameters <hash>` line of `fedchain inspect`.
pub fn current_params(inspect: &str) -> String {
    inspect
        .lines()
        .find_map(|l| l.trim().strip_prefix("current parameters "))
        .unwrap_or_else(|| panic!("no parameters in\n{inspect}"))
        .to_string()
}

/// `fedchain audit` re-verified `rounds` rounds, each committed with all `n` hospitals, and no
/// hospital's 2000-token deposit was touched (from `fedchain inspect`).
#[cfg(feature = "failpoints")]
pub fn assert_all_rounds_committed_by_all(audit: &str, inspect: &str, rounds: u32, n: usize) {
    assert!(
        audit.contains("audit ok") && audit.contains(&format!("{rounds} rounds re-verified")),
        "{audit}\n{inspect}"
    );
    let history: Vec<&str> = inspect
        .lines()
        .filter(|l| l.contains(" committed ") || l.trim_end().ends_with(" void"))
        .collect();
    assert_eq!(history.len(), rounds as usize, "{inspect}");
    let all = n.to_string();
    for l in &history {
        let cols: Vec<&str> = l.split_whitespace().collect();
        assert!(
            cols.get(2) == Some(&"committed") && cols.get(3) == Some(&all.as_str()),
            "every round commits with all {n} hospitals: {l}\n{inspect}"
        );
    }
    for i in 0..n {
        assert_eq!(
            deposit(inspect, &format!("hospital-{i}")),
            2000,
            "no honest deposit is lost\n{inspect}"
        );
    }
}

/// A member's deposit from `fedchain inspect`.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub fn deposit(inspect: &str, name: &str) -> u64 {
    inspect
        .lines()
        .find_map(|l| {
            let l = l.trim().strip_prefix("member ")?;
            let (n, rest) = l.split_once(' ')?;
            (n == name).then(|| rest.trim().strip_prefix("deposit ")?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no deposit of {name} in\n{inspect}"))
}
