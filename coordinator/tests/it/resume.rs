//! `simulate --resume` (issue #13 item 6): a run stopped between rounds (SIGINT, SIGTERM) or
//! dead in the middle of one (kill -9: everything the store synced survives, nothing else)
//! continues from its ledger with the key material it kept in its output directory, and ends
//! as the uninterrupted run would have: every planned round committed, one row each, the
//! audit clean, no honest deposit touched, the same final model bit for bit.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use fedchain_coordinator::config::SimulateConfig;
use fedchain_coordinator::resume::{ResumeError, RunFiles, SECRET_FILE};
use fedchain_coordinator::setup::JOIN_DEPOSIT;
use fedchain_coordinator::simulate::{resume, run_one, simulate, Progress, SimError, Summary};
use fedchain_coordinator::{Observer, Quiet};
use fedchain_ledger::state::RoundOutcome;
use fedchain_ledger::{Chain, RocksStore};

fn small(out: &Path, rounds: u32) -> SimulateConfig {
    SimulateConfig {
        key_bits: 512,
        hospitals: 4,
        threshold: 2,
        validators: 3,
        rounds,
        baseline: false,
        out: out.to_path_buf(),
        ..SimulateConfig::default()
    }
}

/// Asks the run to stop (as the CLI does on SIGINT) once `after` rounds have finished.
struct StopAfter {
    after: usize,
    seen: usize,
}

impl Observer for StopAfter {
    fn progress(&mut self, p: Progress<'_>) {
        if let Progress::Round(_) = p {
            self.seen += 1;
        }
    }

    fn stop_requested(&self) -> bool {
        self.seen >= self.after
    }
}

/// Dies the `nth` time (from 1) a round `round` enters `phase` (the plaintext baseline's
/// rounds count too): like a kill -9 there, only what the store synced before survives (the
/// unwinding drops the store without writing anything more).
struct DieAt {
    round: u32,
    phase: &'static str,
    nth: usize,
}

impl DieAt {
    fn first(round: u32, phase: &'static str) -> Self {
        Self {
            round,
            phase,
            nth: 1,
        }
    }
}

impl Observer for DieAt {
    fn progress(&mut self, p: Progress<'_>) {
        if let Progress::Phase { round, phase } = p {
            if round == self.round && phase == self.phase {
                self.nth -= 1;
                if self.nth == 0 {
                    panic!("killed at round {round}, {phase}");
                }
            }
        }
    }
}

/// Every round of the job on chain, by outcome (committed or not).
fn chain_rounds(ledger: &Path) -> Vec<bool> {
    let chain = Chain::open_existing(RocksStore::open_read_only(ledger).unwrap()).unwrap();
    let job = chain.state().jobs.get(&0).unwrap();
    assert!(job.open.is_none(), "a round is still open");
    job.history
        .iter()
        .map(|r| matches!(r.outcome, RoundOutcome::Committed { .. }))
        .collect()
}

/// What every finished run must show: `rounds` rounds, one row each, all committed on chain,
/// the audit clean, every honest deposit whole, rounds.csv with one line per round.
fn check_complete(summary: &Summary, out: &Path, rounds: u32) {
    assert!(!summary.interrupted);
    assert!(summary.audit.starts_with("ok"), "{}", summary.audit);
    assert_eq!(summary.rounds_run, rounds as usize);
    assert_eq!(
        chain_rounds(&out.join("ledger")),
        vec![true; rounds as usize]
    );
    for b in summary
        .balances
        .iter()
        .filter(|b| b.participant != "aggregator")
    {
        assert_eq!(b.deposit, JOIN_DEPOSIT, "{b:?}");
    }
    let csv = std::fs::read_to_string(out.join("rounds.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (r, v) = (
        header.iter().position(|h| *h == "round").unwrap(),
        header.iter().position(|h| *h == "void").unwrap(),
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let numbers: Vec<String> = rows.iter().map(|c| c[r].to_string()).collect();
    let want: Vec<String> = (0..rounds).map(|i| i.to_string()).collect();
    assert_eq!(numbers, want, "{csv}");
    assert!(rows.iter().all(|c| c[v] == "false"), "{csv}");
}

#[test]
fn a_run_stopped_between_rounds_resumes_to_its_planned_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = small(&out, 3);
    let (stopped, _, _) = simulate(&cfg, &mut StopAfter { after: 2, seen: 0 }).unwrap();
    assert!(stopped.interrupted);
    assert_eq!(stopped.rounds_run, 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // extending rounds is the one change a resume allows
    let more = small(&out, 5);
    let (summary, run, _) = resume(&more, &mut Quiet).unwrap();
    assert_eq!(summary.resumed_after, Some(2));
    check_complete(&summary, &out, 5);
    let stored = RunFiles::new(&out).load_config().unwrap();
    assert_eq!(stored.rounds, 5, "the stored config follows the extension");

    // the same final model as a run that was never stopped (data, model and rounding come
    // from the seed; the keys do not change a decrypted sum)
    let straight = run_one(&more, &dir.path().join("straight"), &mut Quiet).unwrap();
    assert_eq!(run.final_params, straight.final_params);
    assert_eq!(run.params_history, straight.params_history);

    // a finished run resumed again has nothing left to do and writes the same reports
    let (again, _, _) = resume(&more, &mut Quiet).unwrap();
    check_complete(&again, &out, 5);
    assert_eq!(again.ledger_height, summary.ledger_height);
}

#[test]
fn a_run_killed_in_the_middle_of_a_round_continues_that_round() {
    // train: the round is open, nothing submitted; decrypt: every submission on chain, no
    // share; commit: the shares on chain, no commit
    for phase in ["train", "decrypt", "commit"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cfg = small(&out, 3);
        let died = catch_unwind(AssertUnwindSafe(|| {
            simulate(&cfg, &mut DieAt::first(1, phase))
        }));
        assert!(died.is_err(), "{phase}: the run did not die");
        {
            let store = RocksStore::open_read_only(out.join("ledger")).unwrap();
            let chain = Chain::open_existing(store).unwrap();
            let open = chain.state().jobs[&0].open.clone().expect("round 1 open");
            let on_chain = (open.round, open.submissions.len(), open.shares.len());
            let want = match phase {
                "train" => (1, 0, 0),
                "decrypt" => (1, 4, 0),
                _ => (1, 4, 2),
            };
            assert_eq!(
                on_chain, want,
                "{phase}: (round, submissions, shares) on chain"
            );
        }
        let (summary, run, _) = resume(&cfg, &mut Quiet).unwrap();
        assert_eq!(summary.resumed_after, Some(1), "{phase}");
        check_complete(&summary, &out, 3);
        let straight = run_one(&cfg, &dir.path().join("straight"), &mut Quiet).unwrap();
        assert_eq!(run.final_params, straight.final_params, "{phase}");
    }
}

#[test]
fn a_resume_with_another_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = small(&out, 3);
    simulate(&cfg, &mut StopAfter { after: 2, seen: 0 }).unwrap();
    let before = std::fs::read(out.join("config.toml")).unwrap();
    let changed = SimulateConfig {
        seed: 7,
        clip: 0.5,
        ..cfg.clone()
    };
    match resume(&changed, &mut Quiet) {
        Err(SimError::Resume(e)) => match *e {
            ResumeError::ConfigChanged { fields } => assert_eq!(fields, ["clip", "seed"]),
            e => panic!("{e}"),
        },
        r => panic!("resumed: {:?}", r.map(|r| r.0.rounds_run)),
    }
    assert_eq!(std::fs::read(out.join("config.toml")).unwrap(), before);
    // fewer rounds than already ended
    match resume(&small(&out, 1), &mut Quiet) {
        Err(SimError::Resume(e)) => assert!(
            matches!(*e, ResumeError::RoundsBelowDone { given: 1, done: 2 }),
            "{e}"
        ),
        r => panic!("resumed: {:?}", r.map(|r| r.0.rounds_run)),
    }
    // and a fresh run does not silently replace it
    match simulate(&cfg, &mut Quiet) {
        Err(SimError::Resume(e)) => assert!(matches!(*e, ResumeError::Exists { .. }), "{e}"),
        r => panic!("ran: {:?}", r.map(|r| r.0.rounds_run)),
    }
    // the unchanged configuration still resumes
    let (summary, _, _) = resume(&cfg, &mut Quiet).unwrap();
    check_complete(&summary, &out, 3);
}

#[test]
fn a_resume_without_a_run_or_with_damaged_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nothing = dir.path().join("nothing");
    let nothing_there = |r: Result<_, SimError>| match r {
        Err(SimError::Resume(e)) => {
            assert!(matches!(*e, ResumeError::NothingToResume { .. }), "{e}")
        }
        r => panic!(
            "resumed: {:?}",
            r.map(|(s, _, _): (Summary, _, _)| s.rounds_run)
        ),
    };
    nothing_there(resume(&small(&nothing, 2), &mut Quiet));
    assert!(!nothing.exists(), "a refused resume created its directory");
    // a directory with a ledger but no run files (e.g. written by run_one) is no run either
    let bare = dir.path().join("bare");
    run_one(&small(&bare, 1), &bare.join("ledger"), &mut Quiet).unwrap();
    nothing_there(resume(&small(&bare, 2), &mut Quiet));

    let out = dir.path().join("out");
    let cfg = small(&out, 2);
    simulate(&cfg, &mut StopAfter { after: 1, seen: 0 }).unwrap();
    let path = out.join(SECRET_FILE);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();
    match resume(&cfg, &mut Quiet) {
        Err(SimError::Resume(e)) => match *e {
            ResumeError::Secret { reason, .. } => assert!(reason.contains("checksum"), "{reason}"),
            e => panic!("{e}"),
        },
        r => panic!("resumed: {:?}", r.map(|r| r.0.rounds_run)),
    }
    std::fs::write(&path, &good).unwrap();
    let (summary, _, _) = resume(&cfg, &mut Quiet).unwrap();
    check_complete(&summary, &out, 2);
}

#[test]
fn a_plaintext_run_resumes_too() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = SimulateConfig {
        plaintext: true,
        ..small(&out, 3)
    };
    let died = catch_unwind(AssertUnwindSafe(|| {
        simulate(&cfg, &mut DieAt::first(2, "train"))
    }));
    assert!(died.is_err());
    let (summary, run, _) = resume(&cfg, &mut Quiet).unwrap();
    assert_eq!(summary.resumed_after, Some(2));
    check_complete(&summary, &out, 3);
    assert!(!run.encrypted);
}

#[test]
fn a_run_killed_in_its_baseline_runs_the_baseline_again_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = SimulateConfig {
        baseline: true,
        ..small(&out, 2)
    };
    // the second round 1 to train is the baseline's: the encrypted run is complete
    let died = catch_unwind(AssertUnwindSafe(|| {
        let mut die = DieAt {
            round: 1,
            phase: "train",
            nth: 2,
        };
        simulate(&cfg, &mut die)
    }));
    assert!(died.is_err());
    assert!(out.join("plaintext-ledger").exists());
    let (summary, _, baseline) = resume(&cfg, &mut Quiet).unwrap();
    assert_eq!(
        summary.resumed_after,
        Some(2),
        "the encrypted run had ended"
    );
    check_complete(&summary, &out, 2);
    let baseline = baseline.expect("the baseline ran");
    assert_eq!(baseline.rows.len(), 2);
    assert!(baseline.audit.starts_with("ok"), "{}", baseline.audit);
    assert!(summary.plaintext_final_accuracy.is_some());
    let csv = std::fs::read_to_string(out.join("plaintext-rounds.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}
