//! What `fedchain simulate` keeps in its output directory so that `simulate --resume` can
//! continue a stopped run (Ctrl-C, SIGTERM, or a kill -9) from its ledger:
//!
//! - `consortium.secret` ([`SECRET_FILE`]): the simulated consortium's key material, i.e. the
//!   aggregator's, validators' and hospitals' BLS signing keys, the threshold public key and
//!   every key share. It exists ONLY because a simulation is one process playing every party;
//!   a deployment never has such a file (each participant holds its own key, each hospital its
//!   own sealed share). Written once at the start of a fresh run (created exclusively, mode
//!   0600, synced), ending with a SHA-256 checksum of its content; read back only by
//!   `--resume`, which checks the checksum, every key's encoding and every share against the
//!   threshold key (`KeyShare::check_key`). Keys come from the operating system's generator,
//!   never from the seed or the configuration.
//! - `config.toml` ([`CONFIG_FILE`]): the resolved configuration of the run (replaced
//!   atomically when a resume extends `rounds`). A resume with any other difference is
//!   refused ([`ResumeError::ConfigChanged`]).
//! - `rounds.jsonl` ([`ROWS_FILE`]): one [`RoundRow`] per finished round, appended and synced
//!   after the round's last block, so a kill -9 loses at most the row of the round that was
//!   just committed; a resume rebuilds such a row from the chain (accuracy of the committed
//!   parameters, accepted count; its timings are 0).
//!
//! The chain itself says where the run stands: the job, its members and excluded members,
//! every hospital's last nonce, the parameters of the last commit, and a round left open,
//! which the resumed run continues (see `simulate::run_resumable`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use fedchain_crypto::identity::SigningKey;
use fedchain_crypto::threshold::{DealtKey, KeyShare, ThresholdPublicKey};
use fedchain_crypto::{Decode, Encode};
use fedchain_ledger::state::{RoundOutcome, BLAME_WINDOW};
use fedchain_ledger::{Address, Hash, JobId, Store, TxKind};
use fedchain_worker::{decode_plain, Marks, Protection, ShareMsg, SubmissionMsg};
use zeroize::Zeroizing;

use crate::config::SimulateConfig;
use crate::ledger::Ledger;
use crate::report::RoundRow;
use crate::setup::{Consortium, SimKeys};
use crate::simulate::{Result, SimError};

/// The simulated consortium's key material inside the output directory.
pub const SECRET_FILE: &str = "consortium.secret";
/// The resolved configuration of the run inside the output directory.
pub const CONFIG_FILE: &str = "config.toml";
/// The finished rounds' rows, one JSON object a line, inside the output directory.
pub const ROWS_FILE: &str = "rounds.jsonl";

/// First bytes of `consortium.secret`.
const MAGIC: &[u8] = b"fedchain simulation secret v1\n";
/// Largest `consortium.secret` read (a 3072-bit key with 1000 shares is far below).
const MAX_SECRET_FILE: u64 = 16 << 20;

/// Why a run cannot be resumed (or a fresh one cannot start in its directory).
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("{dir}: nothing to resume (no {CONFIG_FILE} and {SECRET_FILE} of a run there)")]
    NothingToResume { dir: PathBuf },
    #[error(
        "the configuration differs from the stopped run's in {fields:?}; --resume may only \
         change rounds"
    )]
    ConfigChanged { fields: Vec<String> },
    #[error("rounds = {given}, but the stopped run already ended {done} rounds")]
    RoundsBelowDone { given: u32, done: u32 },
    #[error("{path}: {reason}")]
    Secret { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Stored { path: PathBuf, reason: String },
    #[error(
        "{dir}: the run stopped during its setup, before its job and deposits were on chain; \
         start it again with --force"
    )]
    Incomplete { dir: PathBuf },
    #[error(
        "{path}: already holds a run's key material; continue it with --resume or pass --force"
    )]
    Exists { path: PathBuf },
    #[error("{dir}: the ledger holds {found}, not what the run's files describe: {reason}")]
    Mismatch {
        dir: PathBuf,
        found: String,
        reason: String,
    },
}

impl From<ResumeError> for SimError {
    fn from(e: ResumeError) -> Self {
        SimError::Resume(Box::new(e))
    }
}

/// The files of a resumable run in `dir` (the output directory).
#[derive(Clone, Debug)]
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn secret(&self) -> PathBuf {
        self.dir.join(SECRET_FILE)
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    pub fn rows(&self) -> PathBuf {
        self.dir.join(ROWS_FILE)
    }

    /// Whether `dir` holds a run to resume (its configuration and key material).
    pub fn exists(&self) -> bool {
        self.config().is_file() && self.secret().is_file()
    }

    /// Remove the run's files (a fresh run with `--force`; the caller holds the directory).
    pub fn remove(&self) -> Result<()> {
        for p in [self.secret(), self.config(), self.rows()] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(stored(&p, e.to_string()).into()),
            }
        }
        Ok(())
    }

    /// The configuration of the stopped run.
    pub fn load_config(&self) -> Result<SimulateConfig> {
        if !self.exists() {
            return Err(ResumeError::NothingToResume {
                dir: self.dir.clone(),
            }
            .into());
        }
        let p = self.config();
        let text = std::fs::read_to_string(&p).map_err(|e| stored(&p, e.to_string()))?;
        SimulateConfig::from_toml(&text).map_err(|e| stored(&p, e.to_string()).into())
    }

    /// Write the run's configuration (temporary file, sync, rename, sync of the directory).
    pub fn write_config(&self, cfg: &SimulateConfig) -> Result<()> {
        let p = self.config();
        let text = toml::to_string(cfg).map_err(|e| stored(&p, e.to_string()))?;
        let tmp = self.dir.join(format!("{CONFIG_FILE}.tmp"));
        let io = |e: std::io::Error| stored(&p, e.to_string());
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &p).map_err(io)?;
        sync_dir(&self.dir).map_err(io)?;
        Ok(())
    }

    /// Refuse `given` unless it is the stored configuration with only `rounds` changed (`out`
    /// and `force` name the directory, not the run).
    pub fn check_config(&self, given: &SimulateConfig) -> Result<()> {
        let fields = changed_fields(&self.load_config()?, given);
        if !fields.is_empty() {
            return Err(ResumeError::ConfigChanged { fields }.into());
        }
        Ok(())
    }

    /// Write the consortium's key material, created exclusively with mode 0600 and synced.
    pub fn write_keys(&self, c: &Consortium) -> Result<()> {
        let path = self.secret();
        let mut items: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        items.push(Zeroizing::new(c.aggregator.to_bytes()));
        items.push(count(c.validators.len()));
        items.extend(c.validators.iter().map(|k| Zeroizing::new(k.to_bytes())));
        items.push(count(c.hospital_keys.len()));
        items.extend(c.hospital_keys.iter().map(|k| Zeroizing::new(k.to_bytes())));
        match &c.protection {
            Protection::Encrypted(e) => {
                items.push(Zeroizing::new(e.key.to_bytes()));
                items.push(count(c.shares.len()));
                for s in &c.shares {
                    let s = s
                        .as_ref()
                        .ok_or_else(|| secret(&path, "a hospital has no share"))?;
                    items.push(Zeroizing::new(s.to_bytes()));
                }
            }
            Protection::Plaintext => {
                items.push(Zeroizing::new(Vec::new()));
                items.push(count(0));
            }
        }
        // one allocation of the final size: no reallocation leaves copies of a secret behind
        let len = MAGIC.len() + items.iter().map(|i| 4 + i.len()).sum::<usize>() + 32;
        let mut buf = Zeroizing::new(Vec::with_capacity(len));
        buf.extend_from_slice(MAGIC);
        for i in &items {
            buf.extend_from_slice(&(i.len() as u32).to_be_bytes());
            buf.extend_from_slice(i);
        }
        let sum = Hash::sha256(&buf);
        buf.extend_from_slice(&sum.0);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                SimError::from(ResumeError::Exists { path: path.clone() })
            } else {
                secret(&path, e.to_string()).into()
            }
        })?;
        let io = |e: std::io::Error| secret(&path, e.to_string());
        f.write_all(&buf).map_err(io)?;
        f.sync_all().map_err(io)?;
        sync_dir(&self.dir).map_err(io)?;
        Ok(())
    }

    /// Read the key material back: checksum, encodings, counts against `cfg`, and every share
    /// against the threshold key.
    pub fn load_keys(&self, cfg: &SimulateConfig) -> Result<SimKeys> {
        use std::io::Read;
        let path = self.secret();
        let io = |e: std::io::Error| secret(&path, e.to_string());
        let f = std::fs::File::open(&path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        if len > MAX_SECRET_FILE {
            return Err(secret(&path, format!("larger than {MAX_SECRET_FILE} bytes")).into());
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(len as usize));
        f.take(MAX_SECRET_FILE).read_to_end(&mut buf).map_err(io)?;
        let bad = |reason: &str| SimError::from(secret(&path, reason));
        if buf.len() < MAGIC.len() + 32 || !buf.starts_with(MAGIC) {
            return Err(bad("not a simulation's key material"));
        }
        let (body, sum) = buf.split_at(buf.len() - 32);
        if Hash::sha256(body).0 != sum {
            return Err(bad("checksum mismatch: the file is damaged"));
        }
        let mut r = Items(&body[MAGIC.len()..]);
        let signing =
            |b: &[u8]| SigningKey::from_bytes(b).map_err(|e| bad(&format!("a signing key: {e}")));
        let aggregator = signing(r.item().ok_or_else(|| bad("truncated"))?)?;
        let keys = |r: &mut Items<'_>, what: &str, want: usize| {
            let n = r.count().ok_or_else(|| bad("truncated"))?;
            if n != want {
                return Err(bad(&format!(
                    "{n} {what} keys, the configuration says {want}"
                )));
            }
            (0..n)
                .map(|_| signing(r.item().ok_or_else(|| bad("truncated"))?))
                .collect::<Result<Vec<_>>>()
        };
        let validators = keys(&mut r, "validator", cfg.validators)?;
        let hospitals = keys(&mut r, "hospital", cfg.hospitals)?;
        let tpk_bytes = r.item().ok_or_else(|| bad("truncated"))?;
        let n = r.count().ok_or_else(|| bad("truncated"))?;
        let threshold = if tpk_bytes.is_empty() {
            None
        } else {
            let public = ThresholdPublicKey::from_bytes(tpk_bytes)
                .map_err(|e| bad(&format!("the threshold key: {e}")))?;
            let shares = (0..n)
                .map(|i| {
                    let s = KeyShare::from_bytes(r.item().ok_or_else(|| bad("truncated"))?)
                        .map_err(|e| bad(&format!("key share {}: {e}", i + 1)))?;
                    s.check_key(&public)
                        .map_err(|e| bad(&format!("key share {}: {e}", i + 1)))?;
                    if s.holder() as usize != i + 1 {
                        return Err(bad(&format!("share {} is holder {}'s", i + 1, s.holder())));
                    }
                    Ok(s)
                })
                .collect::<Result<Vec<_>>>()?;
            if shares.len() != cfg.hospitals {
                return Err(bad(&format!(
                    "{} key shares, the configuration says {} hospitals",
                    shares.len(),
                    cfg.hospitals
                )));
            }
            Some(DealtKey { public, shares })
        };
        if !r.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(SimKeys {
            aggregator,
            validators,
            hospitals,
            threshold,
        })
    }

    /// Append a finished round's row (synced).
    pub fn append_row(&self, row: &RoundRow) -> Result<()> {
        let p = self.rows();
        let io = |e: std::io::Error| stored(&p, e.to_string());
        let mut line = serde_json::to_string(row).map_err(|e| stored(&p, e.to_string()))?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(io)?;
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        Ok(())
    }

    /// The rows written so far, by round. A line that does not parse (cut by a kill) is
    /// left out: its round's row is rebuilt from the chain.
    pub fn load_rows(&self) -> Result<BTreeMap<u32, RoundRow>> {
        let p = self.rows();
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(stored(&p, e.to_string()).into()),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<RoundRow>(l).ok())
            .map(|r| (r.round, r))
            .collect())
    }

    /// Rewrite the rows file with exactly `rows` (after a resume dropped a torn line).
    pub fn write_rows(&self, rows: &[RoundRow]) -> Result<()> {
        let p = self.rows();
        let tmp = self.dir.join(format!("{ROWS_FILE}.tmp"));
        let io = |e: std::io::Error| stored(&p, e.to_string());
        let mut text = String::new();
        for r in rows {
            text.push_str(&serde_json::to_string(r).map_err(|e| stored(&p, e.to_string()))?);
            text.push('\n');
        }
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &p).map_err(io)?;
        Ok(sync_dir(&self.dir).map_err(io)?)
    }
}

/// The top-level fields in which `given` differs from `stored`, other than `rounds`, `out`
/// and `force`.
fn changed_fields(stored: &SimulateConfig, given: &SimulateConfig) -> Vec<String> {
    let strip = |c: &SimulateConfig| {
        let mut c = c.clone();
        c.rounds = 0;
        c.out = PathBuf::new();
        c.force = false;
        serde_json::to_value(c).unwrap_or(serde_json::Value::Null)
    };
    let (a, b) = (strip(stored), strip(given));
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .cloned()
                .collect()
        }
        _ if a == b => Vec::new(),
        _ => vec!["(unreadable)".into()],
    }
}

fn count(n: usize) -> Zeroizing<Vec<u8>> {
    Zeroizing::new((n as u32).to_be_bytes().to_vec())
}

/// Length-prefixed items of the key file.
struct Items<'a>(&'a [u8]);

impl<'a> Items<'a> {
    fn item(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let rest = self.0.get(4..)?;
        let (item, rest) = (rest.get(..len)?, rest.get(len..)?);
        self.0 = rest;
        Some(item)
    }

    fn count(&mut self) -> Option<usize> {
        let b = self.item()?;
        Some(u32::from_be_bytes(b.try_into().ok()?) as usize)
    }
}

fn secret(path: &Path, reason: impl Into<String>) -> ResumeError {
    ResumeError::Secret {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn stored(path: &Path, reason: impl Into<String>) -> ResumeError {
    ResumeError::Stored {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Where a stopped run stands, read from its chain.
pub(crate) struct Recovered {
    pub job: JobId,
    /// The round the job continues with (open or next to open).
    pub next_round: u32,
    /// The global parameters after the last finished round.
    pub theta: Vec<f32>,
    /// Each finished round: (round, void, accepted, parameters after it).
    pub history: Vec<(u32, bool, usize, Vec<f32>)>,
    /// A round left open, to continue.
    pub open: Option<OpenRoundState>,
    /// Each committee member's last nonce on chain and its marks.
    pub nonces: Vec<u64>,
    pub marks: Vec<Marks>,
    pub excluded: BTreeSet<Address>,
}

/// A round the chain holds open: what is on chain of it.
pub(crate) struct OpenRoundState {
    pub round: u32,
    pub deadline: u64,
    /// The valid (not penalized) submissions on chain, as signed, with their payloads.
    pub submissions: Vec<SubmissionMsg>,
    /// Every member with a submission on chain (valid or not): it does not submit again.
    pub signed: BTreeSet<Address>,
    /// The valid decryption shares on chain.
    pub shares: Vec<ShareMsg>,
    /// The height at which its blame step may end, when it is in one.
    pub blame_ends: Option<u64>,
}

/// Read where the run in `ledger` stands. `dir` names it in errors.
pub(crate) fn recover(ledger: &Ledger, c: &Consortium, dir: &Path) -> Result<Recovered> {
    let state = ledger.chain().state();
    let store = ledger.chain().store();
    let incomplete = || {
        SimError::from(ResumeError::Incomplete {
            dir: dir.to_path_buf(),
        })
    };
    let job = state.next_job.checked_sub(1).ok_or_else(incomplete)?;
    let j = state.jobs.get(&job).ok_or_else(incomplete)?;
    if j.members.len() != c.members.len() {
        return Err(incomplete());
    }
    if j.spec.committee != c.members {
        return Err(ResumeError::Mismatch {
            dir: dir.to_path_buf(),
            found: format!("job {job}"),
            reason: "its committee is not the reloaded hospitals' keys".into(),
        }
        .into());
    }
    let params = |h: &Hash| -> Result<Vec<f32>> {
        let bytes = store
            .payload(h)?
            .ok_or_else(|| SimError::Refused(format!("parameters {h} missing from the ledger")))?;
        decode_plain(&bytes, c.num_params)
            .ok_or_else(|| SimError::Refused(format!("parameters {h} undecodable")))
    };
    let mut theta = c.initial_params.clone();
    let mut history = Vec::new();
    for r in &j.history {
        let (void, accepted) = match &r.outcome {
            RoundOutcome::Committed {
                new_params_hash,
                accepted,
                ..
            } => {
                theta = params(new_params_hash)?;
                (false, accepted.len())
            }
            RoundOutcome::Void => (true, 0),
        };
        history.push((r.round, void, accepted, theta.clone()));
    }
    if let Some(h) = j.current_params {
        theta = params(&h)?;
    }
    let mut marks = vec![Marks::default(); c.members.len()];
    let open = match &j.open {
        None => None,
        Some(o) => {
            let mut submissions = Vec::new();
            let mut signed = BTreeSet::new();
            let mut shares = Vec::new();
            for height in o.opened_at..=ledger.height() {
                let Some(block) = ledger.chain().block(height)? else {
                    continue;
                };
                for tx in block.txs {
                    let sender = tx.sender();
                    let Some(i) = c.members.iter().position(|m| *m == sender) else {
                        continue;
                    };
                    match &tx.tx.kind {
                        TxKind::Submit {
                            job: jb,
                            round,
                            payload,
                            ..
                        } if *jb == job && *round == o.round => {
                            marks[i].submitted.insert(job, (o.round, *payload));
                            signed.insert(sender);
                            let valid = o
                                .submissions
                                .get(&sender)
                                .is_some_and(|s| !s.rejected && s.payload == *payload);
                            if let (true, Some(bytes)) = (valid, store.payload(payload)?) {
                                submissions.push(SubmissionMsg { tx, payload: bytes });
                            }
                        }
                        TxKind::DecryptionShare {
                            job: jb,
                            round,
                            payload,
                        } if *jb == job && *round == o.round => {
                            marks[i].shared.insert(job, o.round);
                            let valid = o.shares.get(&sender) == Some(&(*payload, false));
                            if let (true, Some(bytes)) = (valid, store.payload(payload)?) {
                                shares.push(ShareMsg { tx, payload: bytes });
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some(OpenRoundState {
                round: o.round,
                deadline: o.deadline,
                submissions,
                signed,
                shares,
                blame_ends: o.blame.as_ref().map(|b| b.since + BLAME_WINDOW),
            })
        }
    };
    let nonces = c
        .members
        .iter()
        .map(|a| state.nonces.get(a).copied().unwrap_or(0))
        .collect();
    Ok(Recovered {
        job,
        next_round: j.next_round,
        theta,
        history,
        open,
        nonces,
        marks,
        excluded: j.excluded.clone(),
    })
}
