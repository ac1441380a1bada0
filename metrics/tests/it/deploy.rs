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

#[test]
fn grafana_dashboard_is_importable_and_queries_exported_metrics() {
    let path = workspace_root().join("deploy/grafana/fedchain.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");

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
    ] {
        assert!(queried.contains(must), "no panel shows {must}");
    }
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
