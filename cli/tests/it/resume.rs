//! Issue #13 item 6, `simulate --resume` against the real binary: a run stopped by SIGINT or
//! killed with SIGKILL mid-round continues from its ledger and the key material it kept in
//! `--out` (`consortium.secret`), and ends with every planned round committed, one row each
//! in rounds.csv, the audit clean and no honest deposit touched. A resume with another
//! configuration, or of a directory without a run, is refused.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fedchain_ledger::dir::Anchor;

use crate::cluster::{bin, lock};

const ROUNDS: u64 = 6;

/// `fedchain simulate` on a small job (512-bit key, 4 hospitals, t = 2) into `dir/out`.
fn start(dir: &Path, stdout: Stdio) -> Child {
    Command::new(bin())
        .current_dir(dir)
        .args([
            "simulate",
            "--key-bits",
            "512",
            "--hospitals",
            "4",
            "--threshold",
            "2",
            "--rounds",
            &ROUNDS.to_string(),
            "--no-baseline",
            "--out",
            "out",
        ])
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn simulate")
}

/// `fedchain simulate --resume --out out ARGS` in `dir`.
fn resume(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(["simulate", "--resume", "--out", "out"])
        .args(args)
        .output()
        .expect("run resume")
}

/// The finished run in `dir/out` has every planned round, committed, one row each.
fn check_complete(dir: &Path, resumed: &Output) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        resumed.status.success(),
        "{}\n{}",
        text(&resumed.stdout),
        text(&resumed.stderr)
    );
    let out = dir.join("out");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["interrupted"], false, "{summary}");
    assert_eq!(summary["rounds_run"], ROUNDS, "{summary}");
    let after = summary["resumed_after"].as_u64().expect("resumed_after");
    assert!(after < ROUNDS, "nothing was left to resume: {summary}");
    assert!(
        summary["audit"].as_str().unwrap_or("").starts_with("ok"),
        "{summary}"
    );
    for b in summary["balances"].as_array().expect("balances") {
        if b["participant"] != "aggregator" {
            assert_eq!(b["deposit"], 2000, "{b}");
        }
    }
    let csv = std::fs::read_to_string(out.join("rounds.csv")).expect("rounds.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (r, v) = (col("round"), col("void"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let rounds: Vec<String> = rows.iter().map(|c| c[r].to_string()).collect();
    let want: Vec<String> = (0..ROUNDS).map(|i| i.to_string()).collect();
    assert_eq!(rounds, want, "{csv}");
    assert!(rows.iter().all(|c| c[v] == "false"), "a void round:\n{csv}");
    let audit = Command::new(bin())
        .args(["audit"])
        .arg(out.join("ledger"))
        .output()
        .expect("audit");
    assert!(audit.status.success(), "{}", text(&audit.stderr));
}

#[test]
fn sigint_then_resume_ends_with_every_planned_round_and_a_changed_config_is_refused() {
    let _g = lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // nothing to resume in an empty directory (and nothing is created)
    std::fs::create_dir(d.join("empty")).expect("mkdir");
    let o = Command::new(bin())
        .current_dir(d)
        .args(["simulate", "--resume", "--out", "empty/out"])
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nothing to resume"), "{err}");
    assert!(!d.join("empty/out").exists());

    let mut child = start(d, Stdio::piped());
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut rows = 0;
    for l in lines.by_ref() {
        if l.expect("line")
            .trim_start()
            .starts_with(|c: char| c.is_ascii_digit())
        {
            rows += 1;
            if rows == 2 {
                break;
            }
        }
    }
    assert_eq!(rows, 2, "no round rows");
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let _rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    assert_eq!(child.wait().expect("wait").code(), Some(130));

    // another experiment in the same directory is refused, naming what changed
    let o = resume(d, &["--seed", "7"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("differs from the stopped run's") && err.contains("seed"),
        "{err}"
    );
    check_complete(d, &resume(d, &[]));
}

#[test]
fn sigkill_mid_run_then_resume_completes() {
    let _g = lock();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut child = start(d, Stdio::null());
    let ledger = d.join("out/ledger");
    // past the bootstrap (3 blocks) and the first round, into the second or third
    let end = Instant::now() + Duration::from_secs(120);
    while Anchor::read(&ledger).ok().flatten().map_or(0, |a| a.height) < 9 {
        assert!(Instant::now() < end, "simulate wrote no 9 blocks in 120 s");
        assert!(child.try_wait().expect("wait").is_none(), "simulate ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    check_complete(d, &resume(d, &[]));
}
