//! The shipped deploy/ files.

use std::collections::BTreeSet;

use crate::util::{coordinator_after_two_rounds, worker_after_two_rounds, workspace_root};

/// Every `fedchain_...` metric name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("fedchain_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The dashboard, parsed.
pub fn dashboard() -> serde_json::Value {
    let path = workspace_root().join("deploy/grafana/fedchain.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel query of the dashboard as (panel title, PromQL), with the dashboard's variables
/// replaced as Grafana would for the jobs of deploy/prometheus/prometheus.yml.
pub fn dashboard_queries() -> Vec<(String, String)> {
    let dash = dashboard();
    let mut queries = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .expect("expr")
                .replace("$coordinator", "fedchain-coordinator")
                .replace("$worker", "fedchain-worker")
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h");
            queries.push((title.clone(), expr));
        }
    }
    queries
}

#[test]
fn grafana_dashboard_is_importable_and_queries_exported_metrics() {
    let dash = dashboard();

    // Importable: a datasource input, a title, a uid, a recent schema.
    let inputs = dash["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dash["uid"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dash["schemaVersion"].as_u64().expect("schemaVersion") >= 36);

    // Every metric a panel queries is one the services export.
    let exported: String = [
        coordinator_after_two_rounds().render().expect("render"),
        worker_after_two_rounds().render().expect("render"),
    ]
    .concat();
    let exported: BTreeSet<&str> = exported
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();

    let panels = dash["panels"].as_array().expect("panels");
    let mut queried = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel {} must use the datasource input",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                assert!(
                    exported.contains(name.as_str()),
                    "panel {} queries {name}, which is not exported",
                    panel["title"]
                );
                queried.insert(name);
            }
        }
    }
    for must in [
        "fedchain_rounds_committed_total",
        "fedchain_round_phase_duration_seconds_bucket",
        "fedchain_submissions_total",
        "fedchain_connected_hospitals",
        "fedchain_ledger_height",
        "fedchain_model_accuracy_ratio",
        "fedchain_token_balance",
        "fedchain_penalties_total",
        "fedchain_received_bytes_total",
        "fedchain_decryption_shares_total",
        "fedchain_worker_sent_bytes_total",
        "fedchain_worker_training_duration_seconds_bucket",
    ] {
        assert!(queried.contains(must), "no panel shows {must}");
    }
    // Every variable the queries use is defined (or is one of Grafana's own).
    let defined: BTreeSet<&str> = dash["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for (title, expr) in dashboard_queries() {
        assert!(
            !expr.contains('$'),
            "panel {title}: unknown variable in {expr}"
        );
    }
    assert_eq!(defined, BTreeSet::from(["coordinator", "worker"]));
}

#[test]
fn scrape_config_names_the_default_ports() {
    let text = std::fs::read_to_string(workspace_root().join("deploy/prometheus/prometheus.yml"))
        .expect("read prometheus.yml");
    assert!(text.contains(&format!(
        "127.0.0.1:{}",
        fedchain_metrics::http::DEFAULT_COORDINATOR_PORT
    )));
    assert!(text.contains(&format!(
        "127.0.0.1:{}",
        fedchain_metrics::http::DEFAULT_WORKER_PORT
    )));
}
