//! `fedchain simulate`: hospitals, the aggregator and validators in one process, driving the
//! same round engine, worker and validator code as a deployment (only the transport differs:
//! here messages are handed over in memory, in a fixed order, so a seeded run is reproducible).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fedchain_crypto::threshold::VectorDecryptionShare;
use fedchain_ledger::{
    verify_chain_full, Address, DirLock, Hash, JobId, LedgerError, SignedTx, TxKind, TxTag,
};
use fedchain_validator::SimplexFinality;
use fedchain_worker::{
    encode_plain, round_seed, Hospital, Protection, ShareMsg, SubmissionMsg, WorkerError,
};
use rayon::prelude::*;
use serde::Serialize;

use crate::config::{Behaviour, SimulateConfig};
use crate::engine::{Action, Event, RoundEngine, RoundResult};
use crate::ledger::{Dropped, Ledger};
use crate::report::RoundRow;
use crate::resume::RunFiles;
use crate::setup::Consortium;
use crate::strategy::{params_hash, Strategy};
use crate::verify::FedchainVerifier;

/// Everything that can stop a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("dataset: {0}")]
    Data(#[from] fedchain_datasets::DatasetError),
    #[error("model: {0}")]
    Model(#[from] fedchain_models::ModelError),
    #[error("crypto: {0}")]
    Crypto(#[from] fedchain_crypto::CryptoError),
    #[error("worker: {0}")]
    Worker(#[from] fedchain_worker::WorkerError),
    #[error("ledger: {0}")]
    Ledger(#[from] fedchain_ledger::LedgerError),
    #[error("a validator refused block {height}: {reason}")]
    Validator { height: u64, reason: String },
    #[error("the chain refused the aggregator's transaction: {0}")]
    Refused(String),
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error("coordinator service: {0}")]
    Service(String),
    #[error("failpoint {0} fired")]
    Failpoint(&'static str),
    #[error("resume: {0}")]
    Resume(Box<crate::resume::ResumeError>),
}

pub type Result<T, E = SimError> = std::result::Result<T, E>;

/// Progress reported while a simulation runs.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A setup step (key generation, ledger, ...).
    Setup(&'a str),
    /// A round's phase started.
    Phase { round: u32, phase: &'static str },
    /// A message was refused.
    Rejected {
        round: u32,
        hospital: usize,
        reason: String,
    },
    /// A round finished.
    Round(&'a RoundRow),
}

/// Receives progress; the CLI draws bars and tables, tests ignore it.
pub trait Observer {
    fn progress(&mut self, p: Progress<'_>);

    /// Whether the run should stop (e.g. SIGINT): asked before each round, so the round in
    /// progress finishes, then the run ends as if it had been planned that long.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Ignores progress.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn progress(&mut self, _: Progress<'_>) {}
}

/// Balances at the end of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Balance {
    pub participant: String,
    pub address: String,
    pub balance: u64,
    pub deposit: u64,
}

/// What a run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    pub encrypted: bool,
    pub rows: Vec<RoundRow>,
    pub final_accuracy: f64,
    pub final_params: Vec<f32>,
    /// Global parameters after each round (kept for models up to 1M parameters).
    #[serde(skip)]
    pub params_history: Vec<Vec<f32>>,
    pub ledger: PathBuf,
    pub ledger_height: u64,
    pub balances: Vec<Balance>,
    pub minted: u128,
    pub audit: String,
    pub setup_s: f64,
    /// Stopped before its planned rounds ([`Observer::stop_requested`]).
    pub interrupted: bool,
    /// Continued a stopped run (`simulate --resume`) after this many finished rounds.
    pub resumed_after: Option<u32>,
}

fn behaviour(cfg: &SimulateConfig, h: usize, b: Behaviour) -> bool {
    cfg.byzantine
        .iter()
        .any(|x| x.hospital == h && x.behaviour == b)
}

/// Run one simulation (encrypted, or the plaintext baseline when `cfg.plaintext`), writing its
/// ledger to `ledger_dir`.
pub fn run_one(
    cfg: &SimulateConfig,
    ledger_dir: &Path,
    obs: &mut dyn Observer,
) -> Result<RunOutcome> {
    run_resumable(cfg, ledger_dir, None, false, obs)
}

/// [`run_one`], keeping in `files` what `simulate --resume` needs (the key material, the
/// configuration, a row per finished round: [`crate::resume`]), or with `resume` continuing
/// the run `files` describe from its ledger in `ledger_dir`: the keys are reloaded, the job,
/// its excluded members, the hospitals' nonces and marks and the global parameters come from
/// the chain, and a round the chain holds open is continued where the chain says it stands
/// (its submissions and shares on chain are handed to a fresh engine, the hospitals without
/// one on chain train and submit, those without a share on chain are asked for one; a round
/// in its blame step is ended by `Blame` at the end of its window, which penalises every
/// submitter whose range proof is not on chain: the witnesses died with the process).
pub fn run_resumable(
    cfg: &SimulateConfig,
    ledger_dir: &Path,
    files: Option<&RunFiles>,
    resume: bool,
    obs: &mut dyn Observer,
) -> Result<RunOutcome> {
    cfg.validate()?;
    let setup_start = Instant::now();
    let encrypted = !cfg.plaintext;
    let resuming = match (files, resume) {
        (Some(f), true) => Some(f),
        (None, true) => return Err(SimError::Refused("no run files to resume from".into())),
        _ => None,
    };
    let consortium = match resuming {
        Some(f) => {
            obs.progress(Progress::Setup("reloading the consortium's key material"));
            let keys = f.load_keys(cfg)?;
            Consortium::from_keys(cfg, keys, obs)?
        }
        None => Consortium::new(cfg, obs)?,
    };
    let split = &consortium.split;
    let protection = consortium.protection.clone();
    let mut global_model = consortium.spec.build(cfg.seed)?;
    let num_params = consortium.num_params;
    let mut theta = consortium.initial_params.clone();

    obs.progress(Progress::Setup("opening the ledger"));
    if resuming.is_none() {
        prepare_dir(ledger_dir, cfg.force)?;
        if let Some(f) = files {
            f.write_keys(&consortium)?;
            f.write_config(cfg)?;
        }
    }
    let genesis = consortium.genesis.clone();
    // the blocks are finalized by the consortium's validators, each with its own key and
    // replica, on commonware's deterministic runtime (the deployment's consensus)
    obs.progress(Progress::Setup("starting the validators"));
    let replicas = crate::ledger::validators_dir(ledger_dir);
    if resuming.is_none() && replicas.exists() {
        // the replicas of the ledger prepare_dir just replaced
        std::fs::remove_dir_all(&replicas).map_err(|e| SimError::Output {
            path: replicas.clone(),
            reason: e.to_string(),
        })?;
    }
    let mut ledger = consortium.open_ledger(ledger_dir, &mut |_, _| {})?;
    // a resume of a run that had its job on chain; else (stopped before the bootstrap) the
    // bootstrap runs with the reloaded keys
    let recovered = match resuming {
        Some(_) if ledger.height() > 0 => {
            Some(crate::resume::recover(&ledger, &consortium, ledger_dir)?)
        }
        _ => None,
    };
    let mut hospitals = match &recovered {
        Some(r) => (0..cfg.hospitals)
            .map(|i| {
                let marks = r.marks.get(i).cloned().unwrap_or_default();
                let mut h = consortium.restarted_hospital(i, marks)?;
                h.resume_nonce(r.nonces.get(i).copied().unwrap_or(0));
                Ok(h)
            })
            .collect::<Result<Vec<_>>>()?,
        None => consortium.hospitals()?,
    };

    // registration, the job, deposits
    let job = match &recovered {
        Some(r) => r.job,
        None => consortium.bootstrap(&mut ledger, &mut hospitals)?,
    };
    let declared = declared_samples(&ledger, job);
    let mut engine = RoundEngine::new(consortium.engine_config(job, declared));
    let ciphertexts = consortium.ciphertexts();

    let mut rows = Vec::new();
    let mut params_history = Vec::new();
    let mut interrupted = false;
    let mut first = 0;
    let mut open_round = None;
    let resumed_after = resuming.map(|_| recovered.as_ref().map_or(0, |r| r.history.len() as u32));
    if let (Some(r), Some(f)) = (recovered, resuming) {
        engine.exclude(r.excluded.iter().copied());
        first = r.next_round;
        if cfg.rounds < first {
            return Err(crate::resume::ResumeError::RoundsBelowDone {
                given: cfg.rounds,
                done: first,
            }
            .into());
        }
        // the rows of the finished rounds: as written, or rebuilt from the chain
        let written = f.load_rows()?;
        for (round, void, accepted, th) in r.history {
            let row = match written.get(&round) {
                Some(row) => row.clone(),
                None => evaluated_row(&mut global_model, &th, &split.test, round, accepted, void)?,
            };
            obs.progress(Progress::Round(&row));
            rows.push(row);
            if num_params <= 1 << 20 {
                params_history.push(th);
            }
        }
        f.write_rows(&rows)?;
        theta = r.theta;
        open_round = r.open;
        // a round in its blame step: nothing but range proofs and Blame may follow, and the
        // submitters' witnesses died with the process
        if let Some(o) = open_round.take_if(|o| o.blame_ends.is_some()) {
            let (round, ends) = (o.round, o.blame_ends.unwrap_or(0));
            while ledger.height() < ends {
                left_out(ledger.block(Vec::new())?, obs, round)?;
            }
            let blame = ledger.sign(TxKind::Blame { job, round });
            left_out(ledger.block(vec![blame])?, obs, round)?;
            if let Some(j) = ledger.chain.state().jobs.get(&job) {
                engine.exclude(j.excluded.iter().copied());
            }
            let row = evaluated_row(&mut global_model, &theta, &split.test, round, 0, true)?;
            obs.progress(Progress::Round(&row));
            f.append_row(&row)?;
            rows.push(row);
            if num_params <= 1 << 20 {
                params_history.push(theta.clone());
            }
            first = round + 1;
        }
    }
    if let Some(f) = resuming {
        // the stored configuration follows an extension of the rounds
        let mut stored = f.load_config()?;
        if stored.rounds != cfg.rounds {
            stored.rounds = cfg.rounds;
            f.write_config(&stored)?;
        }
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    for round in first..cfg.rounds {
        if obs.stop_requested() {
            interrupted = true;
            break;
        }
        let t_round = Instant::now();
        let bytes_before = ledger.bytes;
        let mut io = RoundIo::default();
        let resumed = open_round.take().filter(|o| o.round == round);
        let deadline = match &resumed {
            Some(o) => o.deadline,
            None => {
                let theta_bytes = encode_plain(&theta);
                let params = ledger.put_payload(&theta_bytes)?;
                let deadline = ledger.height() + 1 + cfg.deadline_blocks;
                let open = ledger.sign(TxKind::OpenRound {
                    job,
                    round,
                    params_hash: params,
                    deadline,
                });
                ledger.block_all(vec![open])?;
                deadline
            }
        };
        engine.open(round, deadline);
        // a resumed round: what the chain holds of it first (not included again)
        let signed = match &resumed {
            Some(o) => {
                let subs = o.submissions.iter().cloned().map(Event::Submission);
                replay_on_chain(&mut engine, subs, &mut io, obs, round);
                o.signed.clone()
            }
            None => Default::default(),
        };
        tick(&mut engine, &mut ledger, &mut io, obs, round)?;
        if let Some(o) = &resumed {
            let shares = o.shares.iter().cloned().map(Event::Share);
            replay_on_chain(&mut engine, shares, &mut io, obs, round);
        }

        // local training, with encryption randomness precomputed alongside
        obs.progress(Progress::Phase {
            round,
            phase: "train",
        });
        let t = Instant::now();
        // dropouts, and members a blame step excluded, do not take part; a resumed round's
        // members with a submission on chain do not submit again
        let taking_part: Vec<bool> = (0..hospitals.len())
            .map(|i| {
                !behaviour(cfg, i, Behaviour::Dropout)
                    && !engine.excluded().contains(&hospitals[i].address())
            })
            .collect();
        let active: Vec<bool> = (0..hospitals.len())
            .map(|i| taking_part[i] && !signed.contains(&hospitals[i].address()))
            .collect();
        let updates = {
            let th = &theta;
            let seed = cfg.seed;
            hospitals
                .par_iter_mut()
                .enumerate()
                .map(|(i, h)| {
                    if !active[i] {
                        return Ok(None);
                    }
                    h_train(h, th, seed, round, i, ciphertexts).map(Some)
                })
                .collect::<Result<Vec<_>>>()?
        };
        let train_s = t.elapsed().as_secs_f64();

        obs.progress(Progress::Phase {
            round,
            phase: "encrypt",
        });
        let t = Instant::now();
        let mut msgs: Vec<Option<SubmissionMsg>> = hospitals
            .par_iter_mut()
            .zip(updates.par_iter())
            .map(|(h, u)| match u {
                Some(u) => h.submission(job, round, u).map(Some),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let encrypt_s = t.elapsed().as_secs_f64();

        // misbehaviour, as configured
        let mut extra: Vec<(usize, SubmissionMsg)> = Vec::new();
        let mut late: Vec<(usize, SubmissionMsg)> = Vec::new();
        for (i, h) in hospitals.iter_mut().enumerate() {
            let Some(u) = &updates[i] else { continue };
            // a misbehaving hospital signs what it likes, past its own marks
            if behaviour(cfg, i, Behaviour::Equivocate) {
                let mut other = u.clone();
                if let Some(x) = other.update.first_mut() {
                    *x += 0.01;
                }
                let payload = h.protect(job, round, &other)?;
                extra.push((i, signed_submission(h, job, round, u.samples, payload)));
            }
            if behaviour(cfg, i, Behaviour::GarbageCiphertext) {
                if let Some(m) = &msgs[i] {
                    let mut garbage = m.payload.clone();
                    let header = if encrypted { 8 } else { 0 };
                    garbage[header..].fill(0);
                    msgs[i] = Some(signed_submission(h, job, round, u.samples, garbage));
                }
            }
            if behaviour(cfg, i, Behaviour::Overflow) {
                if let (Protection::Encrypted(e), Some(table)) =
                    (&protection, consortium.table.as_ref())
                {
                    let payload = overflowing_payload(
                        e,
                        table,
                        &consortium.genesis.chain_id,
                        job,
                        round,
                        &h.address(),
                        ciphertexts,
                    )?;
                    msgs[i] = Some(signed_submission(h, job, round, u.samples, payload));
                }
            }
            if behaviour(cfg, i, Behaviour::Late) {
                if let Some(m) = msgs[i].take() {
                    late.push((i, m));
                }
            }
        }

        // the aggregator's checks and the ciphertext product
        obs.progress(Progress::Phase {
            round,
            phase: "aggregate",
        });
        let t = Instant::now();

        // in hospital order; an equivocator's second message right after its first
        let mut deliveries: Vec<(usize, SubmissionMsg)> = Vec::new();
        for (i, m) in msgs.into_iter().enumerate() {
            deliveries.extend(m.map(|m| (i, m)));
            deliveries.extend(extra.iter().filter(|(j, _)| *j == i).cloned());
        }
        for (i, m) in deliveries {
            feed(
                &mut engine,
                Event::Submission(m),
                &mut ledger,
                &mut io,
                obs,
                round,
                i,
            )?;
        }
        left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
        // wait for the deadline when not everybody submitted
        while io.outcome.is_none() {
            tick(&mut engine, &mut ledger, &mut io, obs, round)?;
            if io.outcome.is_some() {
                break;
            }
            if ledger.height() >= deadline {
                // the engine closes at the deadline; this is only reached if it did not
                return Err(SimError::Refused(
                    "round did not close at its deadline".into(),
                ));
            }
            left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
        }
        for (i, m) in late {
            feed(
                &mut engine,
                Event::Submission(m),
                &mut ledger,
                &mut io,
                obs,
                round,
                i,
            )?;
        }
        let aggregate_s = t.elapsed().as_secs_f64();

        // decryption shares, one holder after another until the engine has t valid ones
        let t = Instant::now();
        if let Some(Action::RequestShares { inputs, .. }) = io.outcome.clone() {
            obs.progress(Progress::Phase {
                round,
                phase: "decrypt",
            });
            io.outcome = None;
            // each holder checks the round's valid submissions as their senders signed them
            let mut holders: Vec<usize> =
                (0..hospitals.len()).filter(|i| taking_part[*i]).collect();
            // honest holders in order; a misbehaving one answers first so its penalty shows
            holders.sort_by_key(|i| !behaviour(cfg, *i, Behaviour::BadProof));
            for i in holders {
                if io.outcome.is_some() {
                    break;
                }
                let h = &mut hospitals[i];
                let mut m = match h.decryption_share(job, round, &inputs) {
                    Ok(m) => m,
                    // e.g. an equivocator whose own submission is out of the aggregate
                    Err(WorkerError::ShareRefused(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                if behaviour(cfg, i, Behaviour::BadProof) {
                    m = tamper_share(h, &protection, job, round, m)?;
                }
                feed(
                    &mut engine,
                    Event::Share(m),
                    &mut ledger,
                    &mut io,
                    obs,
                    round,
                    i,
                )?;
            }
            left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
        }
        let decrypt_s = t.elapsed().as_secs_f64();

        // commit (or void); the round's shares are on chain by now
        obs.progress(Progress::Phase {
            round,
            phase: "commit",
        });
        let t = Instant::now();
        let (accepted, void) = match io.outcome.take() {
            Some(Action::Complete(RoundResult {
                accepted,
                aggregate,
                average,
                ..
            })) => {
                // every valid share on chain is paid, not only the t the engine combined
                let share_providers = valid_share_providers(&ledger, job, round);
                theta = cfg.server.apply(&theta, &average);
                let next = ledger.put_payload(&encode_plain(&theta))?;
                debug_assert_eq!(next, params_hash(&theta));
                let n = accepted.len();
                let commit = ledger.sign(TxKind::CommitRound {
                    job,
                    round,
                    aggregate,
                    new_params_hash: next,
                    accepted,
                    share_providers,
                });
                io.pending.push(commit);
                left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
                (n, false)
            }
            Some(Action::Unpackable {
                plaintext,
                submitters,
                ..
            }) => {
                // the shares decrypt to an aggregate that does not unpack: the blame step.
                // Every valid submitter is asked for a range proof of its ciphertext at the
                // failing plaintext; whoever has none on chain when it ends is penalised and
                // excluded (THREAT-MODEL A5)
                obs.progress(Progress::Phase {
                    round,
                    phase: "blame",
                });
                let void = ledger.sign(TxKind::VoidUnpackable {
                    job,
                    round,
                    plaintext,
                });
                io.pending.push(void);
                left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
                for (i, h) in hospitals.iter_mut().enumerate() {
                    if io.outcome.is_some() || !submitters.contains(&h.address()) {
                        continue;
                    }
                    match h.range_proof(job, round, plaintext) {
                        Ok(m) => feed(
                            &mut engine,
                            Event::RangeProof(m),
                            &mut ledger,
                            &mut io,
                            obs,
                            round,
                            i,
                        )?,
                        Err(e) => obs.progress(Progress::Rejected {
                            round,
                            hospital: i,
                            reason: format!("no range proof: {e}"),
                        }),
                    }
                }
                left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
                while io.outcome.is_none() {
                    tick(&mut engine, &mut ledger, &mut io, obs, round)?;
                    if io.outcome.is_none() {
                        left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
                    }
                }
                if let Some(Action::Blame { culprits, .. }) = &io.outcome {
                    for c in culprits {
                        obs.progress(Progress::Rejected {
                            round,
                            hospital: hospitals
                                .iter()
                                .position(|h| h.address() == *c)
                                .unwrap_or(usize::MAX),
                            reason: "blamed: no valid range proof of its slots; penalised and excluded from the job".into(),
                        });
                    }
                }
                // the chain's window counts from the block holding the VoidUnpackable
                let ends = ledger
                    .chain
                    .state()
                    .jobs
                    .get(&job)
                    .and_then(|j| j.open.as_ref())
                    .and_then(|o| o.blame.as_ref())
                    .map_or(0, |b| b.since + fedchain_ledger::state::BLAME_WINDOW);
                while ledger.height() < ends {
                    left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
                }
                io.pending.push(ledger.sign(TxKind::Blame { job, round }));
                left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
                (0, true)
            }
            _ => {
                // too few submissions: void after the deadline; a decryption that could not
                // complete: after the decryption window
                let wait = if (engine.counted().len() as u32) < cfg.min_participants() {
                    deadline
                } else {
                    deadline.saturating_add(fedchain_ledger::state::DECRYPTION_WINDOW)
                };
                while ledger.height() < wait {
                    left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
                }
                let void = ledger.sign(TxKind::VoidRound { job, round });
                io.pending.push(void);
                left_out(ledger.block(std::mem::take(&mut io.pending))?, obs, round)?;
                (0, true)
            }
        };
        let commit_s = t.elapsed().as_secs_f64();
        global_model.set_params(&theta)?;
        let eval = global_model.evaluate(&split.test)?;
        let row = RoundRow {
            round,
            accuracy: eval.accuracy,
            loss: eval.loss,
            auc: eval.auc,
            accepted,
            rejected: engine.rejected(),
            void,
            train_s,
            encrypt_s,
            aggregate_s,
            decrypt_s,
            commit_s,
            total_s: t_round.elapsed().as_secs_f64(),
            bytes_on_chain: ledger.bytes - bytes_before,
        };
        obs.progress(Progress::Round(&row));
        if let Some(f) = files {
            f.append_row(&row)?;
        }
        rows.push(row);
        if num_params <= 1 << 20 {
            params_history.push(theta.clone());
        }
    }

    obs.progress(Progress::Setup("auditing the ledger from genesis"));
    let audit = match verify_chain_full(
        ledger.chain.store(),
        &genesis,
        Some(&FedchainVerifier),
        Some(&SimplexFinality::new()),
    ) {
        Ok(r) => format!(
            "ok: {} blocks, {} transactions, {} payloads, {} rounds re-verified",
            r.blocks, r.transactions, r.payloads_checked, r.rounds_verified
        ),
        Err(e) => format!("FAILED: {e}"),
    };
    let audit = format!(
        "{audit}; {}",
        replicas_hold(&replicas, &ledger, consortium.validators.len())
    );
    let state = ledger.chain.state();
    let mut balances = vec![Balance {
        participant: "aggregator".into(),
        address: hex::encode(Address::of(&ledger.aggregator.verifying_key()).0),
        balance: state.balance(&Address::of(&ledger.aggregator.verifying_key())),
        deposit: 0,
    }];
    for (i, h) in hospitals.iter().enumerate() {
        let a = h.address();
        balances.push(Balance {
            participant: format!("hospital-{i}"),
            address: hex::encode(a.0),
            balance: state.balance(&a),
            deposit: state
                .jobs
                .get(&job)
                .and_then(|j| j.members.get(&a))
                .copied()
                .unwrap_or(0),
        });
    }
    Ok(RunOutcome {
        encrypted,
        final_accuracy: rows.last().map_or(0.0, |r| r.accuracy),
        rows,
        final_params: theta,
        params_history,
        ledger: ledger_dir.to_path_buf(),
        ledger_height: ledger.height(),
        balances,
        minted: state.minted,
        audit,
        setup_s,
        interrupted,
        resumed_after,
    })
}

/// A round's row evaluated from the parameters after it, without timings (a round finished
/// before a resume whose row was not written, or ended by the resume itself).
fn evaluated_row(
    model: &mut Box<dyn fedchain_models::Model>,
    theta: &[f32],
    test: &fedchain_datasets::Dataset,
    round: u32,
    accepted: usize,
    void: bool,
) -> Result<RoundRow> {
    model.set_params(theta)?;
    let eval = model.evaluate(test)?;
    Ok(RoundRow {
        round,
        accuracy: eval.accuracy,
        loss: eval.loss,
        auc: eval.auc,
        accepted,
        rejected: 0,
        void,
        train_s: 0.0,
        encrypt_s: 0.0,
        aggregate_s: 0.0,
        decrypt_s: 0.0,
        commit_s: 0.0,
        total_s: 0.0,
        bytes_on_chain: 0,
    })
}

/// Hand the engine what the chain already holds of a resumed round: its transactions are on
/// chain (their Include and penalties are not repeated), only the outcome counts.
fn replay_on_chain(
    engine: &mut RoundEngine,
    events: impl Iterator<Item = Event>,
    io: &mut RoundIo,
    obs: &mut dyn Observer,
    round: u32,
) {
    for e in events {
        for a in engine.handle(e) {
            match a {
                Action::Include { .. } | Action::Penalize { .. } => {}
                Action::Reject { reason, .. } => obs.progress(Progress::Rejected {
                    round,
                    hospital: usize::MAX,
                    reason: format!("on chain, refused by the resumed engine: {reason}"),
                }),
                a => io.outcome = Some(a),
            }
        }
    }
}

/// The members' sample counts of `job` as declared on chain when they joined.
pub(crate) fn declared_samples(ledger: &Ledger, job: JobId) -> BTreeMap<Address, u64> {
    ledger
        .chain
        .state()
        .jobs
        .get(&job)
        .map(|j| j.samples.clone())
        .unwrap_or_default()
}

/// The providers of the valid decryption shares of `job`'s open round `round` on chain: the
/// ones a commit must pay (THREAT-MODEL A13).
pub(crate) fn valid_share_providers(ledger: &Ledger, job: JobId, round: u32) -> Vec<Address> {
    ledger
        .chain
        .state()
        .jobs
        .get(&job)
        .and_then(|j| j.open.as_ref())
        .filter(|o| o.round == round)
        .map(|o| o.valid_share_providers())
        .unwrap_or_default()
}

/// Report what a block left out; the simulation's own round transactions must never be.
fn left_out(dropped: Vec<Dropped>, obs: &mut dyn Observer, round: u32) -> Result<()> {
    for d in dropped {
        if matches!(
            d.kind,
            TxTag::OpenRound
                | TxTag::CommitRound
                | TxTag::VoidRound
                | TxTag::VoidUnpackable
                | TxTag::Blame
        ) {
            return Err(SimError::Refused(format!(
                "{:?} refused by the chain: {}",
                d.kind, d.reason
            )));
        }
        obs.progress(Progress::Rejected {
            round,
            hospital: usize::MAX,
            reason: format!("{:?} left out of the block: {}", d.kind, d.reason),
        });
    }
    Ok(())
}

/// A well-formed, proven submission whose plaintexts have every slot bit set: in range of
/// Paillier and of its proof, out of range of the packing, so the round's aggregate cannot be
/// unpacked (the misbehaviour `overflow`; public for the A5 tests of the services).
pub fn overflowing_payload(
    e: &fedchain_worker::EncryptedJob,
    table: &std::sync::Arc<fedchain_crypto::FixedBaseTable>,
    chain_id: &str,
    job: JobId,
    round: u32,
    sender: &Address,
    ciphertexts: usize,
) -> Result<Vec<u8>> {
    let pk = e.key.public_key();
    let bits = (e.packer.slots() as u32 * e.packer.slot_bits()).min(pk.bits() - 2);
    let full = fedchain_crypto::Integer::from(fedchain_crypto::Integer::u_pow_u(2, bits)) - 1u32;
    let plaintexts = vec![full; ciphertexts];
    let enc = fedchain_crypto::Encryptor::with_table(pk.clone(), std::sync::Arc::clone(table));
    let mut rng = rand::rngs::OsRng;
    let w = enc.encrypt_all_with_witness(&plaintexts, &mut rng)?;
    let context = fedchain_worker::submission_context(chain_id, job, round, sender);
    let proof = fedchain_crypto::knowledge::prove(
        pk,
        &w.ciphertexts,
        &plaintexts,
        &w.exponents,
        &context,
        &mut rng,
    )?;
    Ok(fedchain_crypto::ProvenVector {
        ciphertexts: fedchain_crypto::CiphertextVector(w.ciphertexts),
        proof,
    }
    .to_bytes(pk))
}

/// A submission signed by `h` for any payload (the harness's misbehaving hospitals).
fn signed_submission(
    h: &mut Hospital,
    job: JobId,
    round: u32,
    samples: u64,
    payload: Vec<u8>,
) -> SubmissionMsg {
    let tx = h.sign(TxKind::Submit {
        job,
        round,
        payload: Hash::sha256(&payload),
        samples,
        payload_bytes: payload.len() as u64,
    });
    SubmissionMsg { tx, payload }
}

fn h_train(
    h: &mut Hospital,
    theta: &[f32],
    seed: u64,
    round: u32,
    i: usize,
    ciphertexts: usize,
) -> Result<fedchain_worker::LocalUpdate> {
    Ok(h.train(theta, round_seed(seed, round, i), ciphertexts)?)
}

/// A share whose proof was altered, re-signed (the misbehaviour `bad-proof`).
fn tamper_share(
    h: &mut Hospital,
    protection: &Protection,
    job: u64,
    round: u32,
    m: ShareMsg,
) -> Result<ShareMsg> {
    let Protection::Encrypted(e) = protection else {
        return Ok(m);
    };
    let pk = e.key.public_key();
    let mut s = VectorDecryptionShare::from_bytes(pk, &m.payload)?;
    s.proof.z += 1;
    let payload = s.to_bytes(pk);
    let tx = h.sign(TxKind::DecryptionShare {
        job,
        round,
        payload: Hash::sha256(&payload),
    });
    Ok(ShareMsg { tx, payload })
}

/// What the engine's actions leave for the rest of the round: transactions for the next block
/// and the round's outcome once it has one.
#[derive(Default)]
struct RoundIo {
    pending: Vec<SignedTx>,
    outcome: Option<Action>,
}

/// Tell the engine the ledger's height (it closes a round at its deadline, ends a blame step at
/// its window) and carry out what follows.
fn tick(
    engine: &mut RoundEngine,
    ledger: &mut Ledger,
    io: &mut RoundIo,
    obs: &mut dyn Observer,
    round: u32,
) -> Result<()> {
    let h = Event::Height(ledger.height());
    feed(engine, h, ledger, io, obs, round, usize::MAX)
}

/// Feed one event to the engine and carry out its actions.
fn feed(
    engine: &mut RoundEngine,
    event: Event,
    ledger: &mut Ledger,
    io: &mut RoundIo,
    obs: &mut dyn Observer,
    round: u32,
    hospital: usize,
) -> Result<()> {
    // the chain's admission checks first: this chain, a fresh nonce, a joined member
    if let Event::Submission(SubmissionMsg { tx, .. })
    | Event::Share(ShareMsg { tx, .. })
    | Event::RangeProof(ShareMsg { tx, .. }) = &event
    {
        if let Err(e) = ledger.chain.state().precheck(tx) {
            obs.progress(Progress::Rejected {
                round,
                hospital,
                reason: e.to_string(),
            });
            return Ok(());
        }
    }
    let (pending, outcome) = (&mut io.pending, &mut io.outcome);
    for a in engine.handle(event) {
        match a {
            Action::Include { tx, payload } => {
                if let Some(p) = payload {
                    ledger.put_payload(&p)?;
                }
                pending.push(*tx);
            }
            // the harness delivers every submission before the round closes: no penalty of
            // the simulation has to wait for the round (the services handle `after_round`)
            Action::Penalize {
                offender, offence, ..
            } => {
                let job = ledger.chain.state().next_job - 1;
                pending.push(ledger.sign(TxKind::Penalty {
                    job,
                    offender,
                    offence,
                }));
            }
            Action::Reject { reason, .. } => obs.progress(Progress::Rejected {
                round,
                hospital,
                reason: reason.to_string(),
            }),
            a @ (Action::RequestShares { .. }
            | Action::Complete(_)
            | Action::Void { .. }
            | Action::Unpackable { .. }
            | Action::Blame { .. }) => *outcome = Some(a),
        }
    }
    Ok(())
}

/// Whether every validator's own replica holds the aggregator's head block (a replica may be
/// ahead by the blocks finalized since).
fn replicas_hold(dir: &Path, ledger: &Ledger, validators: usize) -> String {
    let head = ledger.chain.head();
    let mut missing = Vec::new();
    for i in 0..validators {
        let holds = fedchain_ledger::RocksStore::open_read_only(dir.join(i.to_string()))
            .ok()
            .and_then(|s| {
                fedchain_ledger::Store::header(&s, head.height)
                    .ok()
                    .flatten()
            })
            .is_some_and(|h| fedchain_ledger::store::header_hash(&h) == head.hash);
        if !holds {
            missing.push(i.to_string());
        }
    }
    if missing.is_empty() {
        format!("each of the {validators} validators' replicas holds this head")
    } else {
        format!(
            "FAILED: the replicas of validators {} do not hold this head",
            missing.join(", ")
        )
    }
}

/// Create `dir` for a fresh ledger; an existing non-empty one is an error unless `force`.
fn prepare_dir(dir: &Path, force: bool) -> Result<()> {
    let out = |reason: String| SimError::Output {
        path: dir.to_path_buf(),
        reason,
    };
    if !fedchain_ledger::dir::is_vacant(dir).map_err(LedgerError::from)? {
        if !force {
            return Err(out(
                "already holds a ledger; choose another --out or pass --force".into(),
            ));
        }
        // only while no other process owns it (a running simulate or coordinator)
        let lock = DirLock::acquire(dir).map_err(LedgerError::from)?;
        for e in std::fs::read_dir(dir).map_err(|e| out(e.to_string()))? {
            let p = e.map_err(|e| out(e.to_string()))?.path();
            if p.file_name()
                .is_some_and(|n| n == fedchain_ledger::dir::LOCK_FILE)
            {
                continue;
            }
            let r = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|e| out(e.to_string()))?;
        }
        drop(lock);
    }
    std::fs::create_dir_all(dir).map_err(|e| out(e.to_string()))
}

/// The summary written to summary.json.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub config: SimulateConfig,
    /// Rounds that ran (fewer than planned when interrupted).
    pub rounds_run: usize,
    /// Stopped by a signal before the planned rounds: the files describe what ran.
    pub interrupted: bool,
    /// `simulate --resume` continued a stopped run after this many finished rounds (the rows
    /// cover every round; the plaintext baseline, when asked, ran again in full).
    pub resumed_after: Option<u32>,
    pub final_accuracy: f64,
    pub plaintext_final_accuracy: Option<f64>,
    pub accuracy_gap_pp: Option<f64>,
    pub seconds: PhaseTotals,
    pub plaintext_seconds: Option<PhaseTotals>,
    pub setup_s: f64,
    pub ledger: PathBuf,
    pub ledger_height: u64,
    pub audit: String,
    pub balances: Vec<Balance>,
    pub minted: u128,
    pub files: Vec<PathBuf>,
}

/// Seconds per phase over a run.
#[derive(Clone, Debug, Serialize, Default)]
pub struct PhaseTotals {
    pub train: f64,
    pub encrypt: f64,
    pub aggregate: f64,
    pub decrypt: f64,
    pub commit: f64,
    pub total: f64,
}

impl PhaseTotals {
    pub fn of(rows: &[RoundRow]) -> Self {
        let mut t = Self::default();
        for r in rows {
            t.train += r.train_s;
            t.encrypt += r.encrypt_s;
            t.aggregate += r.aggregate_s;
            t.decrypt += r.decrypt_s;
            t.commit += r.commit_s;
            t.total += r.total_s;
        }
        t
    }
}

/// The whole `fedchain simulate`: the run (encrypted unless `plaintext`), the plaintext baseline
/// when asked, then rounds.csv, summary.json and plots in `cfg.out`. The run keeps in `cfg.out`
/// what [`resume`] needs to continue it after a stop ([`crate::resume`]).
pub fn simulate(
    cfg: &SimulateConfig,
    obs: &mut dyn Observer,
) -> Result<(Summary, RunOutcome, Option<RunOutcome>)> {
    simulate_or_resume(cfg, false, obs)
}

/// `fedchain simulate --resume`: continue the stopped run in `cfg.out` (refused when `cfg`
/// differs from the stored configuration in anything but `rounds`, or when `cfg.out` holds no
/// run), then write the reports of all its rounds as [`simulate`] does.
pub fn resume(
    cfg: &SimulateConfig,
    obs: &mut dyn Observer,
) -> Result<(Summary, RunOutcome, Option<RunOutcome>)> {
    simulate_or_resume(cfg, true, obs)
}

fn simulate_or_resume(
    cfg: &SimulateConfig,
    resume: bool,
    obs: &mut dyn Observer,
) -> Result<(Summary, RunOutcome, Option<RunOutcome>)> {
    cfg.validate()?;
    let out = cfg.out.clone();
    let files = RunFiles::new(&out);
    if resume && !files.exists() {
        return Err(crate::resume::ResumeError::NothingToResume { dir: out }.into());
    }
    std::fs::create_dir_all(&out).map_err(|e| SimError::Output {
        path: out.clone(),
        reason: e.to_string(),
    })?;
    // one run per output directory: a second one (even with --force) is refused while this
    // one holds it, so it never deletes a live ledger
    let _owner = DirLock::acquire(&out).map_err(LedgerError::from)?;
    if resume {
        files.check_config(cfg)?;
    } else if cfg.force {
        files.remove()?;
    } else if files.secret().exists() || files.config().exists() {
        return Err(crate::resume::ResumeError::Exists {
            path: files.secret(),
        }
        .into());
    }
    let main = run_resumable(cfg, &out.join("ledger"), Some(&files), resume, obs)?;
    let baseline = if cfg.baseline && !cfg.plaintext && !main.interrupted {
        obs.progress(Progress::Setup(
            "running the plaintext baseline (same seed, no encryption)",
        ));
        let mut b = cfg.clone();
        b.plaintext = true;
        b.byzantine.clear();
        // a resume runs it again in full (an interrupted one may have left its ledger)
        b.force |= resume;
        Some(run_one(&b, &out.join("plaintext-ledger"), obs)?)
    } else {
        None
    };
    let werr = |p: &Path, e: String| SimError::Output {
        path: p.to_path_buf(),
        reason: e,
    };
    let csv = out.join("rounds.csv");
    crate::report::write_rounds_csv(&csv, &main.rows).map_err(|e| werr(&csv, e.to_string()))?;
    let mut files = vec![csv];
    if let Some(b) = &baseline {
        let p = out.join("plaintext-rounds.csv");
        crate::report::write_rounds_csv(&p, &b.rows).map_err(|e| werr(&p, e.to_string()))?;
        files.push(p);
    }
    let acc = out.join("accuracy.png");
    let label = if main.encrypted {
        "plaintext"
    } else {
        "baseline"
    };
    crate::report::plot_accuracy(
        &acc,
        &main.rows,
        baseline.as_ref().map(|b| (label, b.rows.as_slice())),
    )
    .map_err(|e| werr(&acc, e.to_string()))?;
    files.push(acc);
    let phases = out.join("phases.png");
    crate::report::plot_phases(&phases, &main.rows).map_err(|e| werr(&phases, e.to_string()))?;
    files.push(phases);
    let summary_path = out.join("summary.json");
    files.push(summary_path.clone());
    let summary = Summary {
        config: cfg.clone(),
        rounds_run: main.rows.len(),
        interrupted: main.interrupted,
        resumed_after: main.resumed_after,
        final_accuracy: main.final_accuracy,
        plaintext_final_accuracy: baseline.as_ref().map(|b| b.final_accuracy),
        accuracy_gap_pp: baseline
            .as_ref()
            .map(|b| (main.final_accuracy - b.final_accuracy) * 100.0),
        seconds: PhaseTotals::of(&main.rows),
        plaintext_seconds: baseline.as_ref().map(|b| PhaseTotals::of(&b.rows)),
        setup_s: main.setup_s,
        ledger: main.ledger.clone(),
        ledger_height: main.ledger_height,
        audit: main.audit.clone(),
        balances: main.balances.clone(),
        minted: main.minted,
        files,
    };
    let json =
        serde_json::to_string_pretty(&summary).map_err(|e| werr(&summary_path, e.to_string()))?;
    std::fs::write(&summary_path, json).map_err(|e| werr(&summary_path, e.to_string()))?;
    Ok((summary, main, baseline))
}
