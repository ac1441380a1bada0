//! Issue #13 item 6, `simulate --resume` against the real binary: a run stopped by SIGINT or
//! killed with SIGKILL mid-round continues from its ledger and the key material it kept in
//! `--out` (`consortium.secret`), and ends with every planned round committed, one row each
//! in rounds.csv, the audit clean and no honest deposit touched. A resume with another
//! configuration, or of a directory without a run, is refused.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::cluster::{bin, interrupt_after_rows, lock, wait_for_height, SMALL_SIMULATE};

const ROUNDS: u64 = 6;

/// `fedchain simulate` on a small job (512-bit key, 4 hospitals, t = 2) into `dir/out`.
fn start(dir: &Path, stdout: Stdio) -> Child {
    Command::new(bin())
        .current_dir(dir)
        .args(SMALL_SIMULATE)
        .args(["--rounds", &ROUNDS.to_string(), "--out", "out"])
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
    let (status, rest) = interrupt_after_rows(&mut child, 2);
    assert_eq!(status.code(), Some(130), "{}", rest.join("\n"));

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
    // past the bootstrap (3 blocks) and the first round, into the second or third
    wait_for_height(&mut child, &d.join("out/ledger"), 9);
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    check_complete(d, &resume(d, &[]));
}
