//! Issue #13 case 9: every configuration value has a range that matches the chain rules and
//! the machine, checked before any setup: the command fails at once, naming the field, and
//! writes nothing (no output directory, no ledger).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{bin, interrupt_after_rows, SMALL_SIMULATE};

/// `fedchain simulate ARGS --out <dir>/out` must fail naming `field`, quickly, and create
/// nothing.
fn refused(args: &[&str], toml: Option<&str>, field: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir.path())
        .args(["simulate", "--key-bits", "512", "--rounds", "1"])
        .args(args)
        .arg("--out")
        .arg(&out);
    if let Some(t) = toml {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, t).expect("write");
        cmd.arg("--config").arg(&p);
    }
    let t = Instant::now();
    let o = cmd.output().expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} {toml:?} ran");
    assert!(
        err.contains(&format!("invalid configuration: {field}:")),
        "{args:?} {toml:?}: the error must name {field}:\n{err}"
    );
    assert!(
        !out.exists(),
        "{args:?} {toml:?}: nothing may be created before the check"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "{args:?}: refused only after {:?}",
        t.elapsed()
    );
}

#[test]
fn out_of_range_values_are_refused_before_any_setup() {
    // was: ran to exit 0 with a destroyed model
    refused(&["--clip", "3e38"], None, "clip");
    refused(&["--clip", "NaN"], None, "clip");
    // was: failed only after setup, leaving a ledger
    refused(&["--hospitals", "1", "--threshold", "1"], None, "hospitals");
    refused(&["--hospitals", "2", "--threshold", "1"], None, "hospitals");
    // was: grew to 6 GB
    refused(
        &[],
        Some("model = \"mlp\"\nhidden = [100000000]\n"),
        "hidden",
    );
    // was: wrote empty blocks for ever
    refused(
        &[],
        Some("deadline_blocks = 9223372036854775807\n"),
        "deadline_blocks",
    );
    refused(&[], Some("deadline_blocks = 0\n"), "deadline_blocks");
}

/// Issue #13 case 8: Ctrl-C on `simulate` used to exit 130 at once with no rounds.csv,
/// summary.json or plots. Now SIGINT finishes the round in progress, the reports of what ran
/// are written (summary.json says `interrupted`), the ledger audits clean, and the exit code
/// is 130.
#[test]
fn sigint_on_simulate_writes_the_reports_of_what_ran_and_exits_130() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let mut child = Command::new(bin())
        .current_dir(dir.path())
        .args(SMALL_SIMULATE)
        .args(["--rounds", "200", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let (status, rest) = interrupt_after_rows(&mut child, 2);
    assert_eq!(status.code(), Some(130), "{}", rest.join("\n"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["interrupted"], true, "{summary}");
    let ran = summary["rounds_run"].as_u64().expect("rounds_run");
    assert!((2..200).contains(&ran), "{ran} rounds ran");
    assert!(
        summary["audit"].as_str().unwrap_or("").starts_with("ok"),
        "{summary}"
    );
    let csv = std::fs::read_to_string(out.join("rounds.csv")).expect("rounds.csv");
    assert_eq!(csv.lines().count() as u64, ran + 1, "{csv}");
    for f in ["accuracy.png", "phases.png"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
}
