//! `promtool check metrics` on the scraped exposition (no problems, no warnings).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use fedchain_metrics::serve;

use crate::util::{coordinator_after_two_rounds, find_binary, http_get, worker_after_two_rounds};

/// Runs `promtool check metrics` with `text` on stdin; returns (success, stdout + stderr).
fn promtool_check_metrics(promtool: &std::path::Path, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[tokio::test]
async fn promtool_accepts_the_scraped_metrics_without_warnings() {
    let Some(promtool) = find_binary("promtool") else {
        eprintln!(
            "SKIP promtool_accepts_the_scraped_metrics_without_warnings: promtool not found \
             (Debian package `prometheus`; scripts/setup.sh installs it)"
        );
        return;
    };
    let coordinator = coordinator_after_two_rounds();
    let worker = worker_after_two_rounds();
    for (who, registry) in [
        ("coordinator", coordinator.registry().clone()),
        ("worker", worker.registry().clone()),
    ] {
        let (addr, server) = serve(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            registry,
            std::future::pending(),
        )
        .await
        .expect("serve");
        let text = http_get(addr, "/metrics").await.expect("scrape").body;
        server.abort();
        let (ok, report) = promtool_check_metrics(&promtool, &text);
        assert!(
            ok,
            "promtool check metrics failed for the {who}:\n{report}\n{text}"
        );
        assert!(
            report.trim().is_empty(),
            "promtool reported problems for the {who}:\n{report}"
        );
    }
}

#[test]
fn promtool_catches_a_badly_named_metric() {
    // Guards the test above: a lint problem must make promtool_check_metrics fail.
    let Some(promtool) = find_binary("promtool") else {
        eprintln!("SKIP promtool_catches_a_badly_named_metric: promtool not found");
        return;
    };
    let bad = "# HELP fedchain_rounds Rounds.\n# TYPE fedchain_rounds counter\nfedchain_rounds 1\n";
    let (ok, report) = promtool_check_metrics(&promtool, bad);
    assert!(!ok && report.contains("_total"), "{report}");
}

#[test]
fn promtool_accepts_the_shipped_scrape_config() {
    let Some(promtool) = find_binary("promtool") else {
        eprintln!("SKIP promtool_accepts_the_shipped_scrape_config: promtool not found");
        return;
    };
    let config = crate::util::workspace_root().join("deploy/prometheus/prometheus.yml");
    let out = Command::new(promtool)
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check config {}:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
