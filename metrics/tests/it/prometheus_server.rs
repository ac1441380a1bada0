//! A real Prometheus server scrapes a coordinator and a worker endpoint on loopback; values come
//! back through its HTTP query API, and every query of the Grafana dashboard evaluates.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fedchain_metrics::serve;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::deploy::dashboard_queries;
use crate::util::{
    coordinator_after_two_rounds, find_binary, free_port, http_get, worker_after_two_rounds,
};

/// Kills the Prometheus process when dropped, also when the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape_config(coordinator: SocketAddr, worker: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: fedchain-coordinator\n    static_configs:\n      - targets: ['{coordinator}']\n\
         \x20 - job_name: fedchain-worker\n    static_configs:\n      - targets: ['{worker}']\n"
    )
}

fn start_prometheus(binary: &Path, dir: &Path, config: &str, port: u16) -> KillOnDrop {
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write config");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn prometheus");
    KillOnDrop(child)
}

/// Runs an instant query; Err is a transport problem or a non-200 answer.
async fn query(prom: SocketAddr, promql: &str) -> Result<serde_json::Value, String> {
    let path = format!(
        "/api/v1/query?query={}",
        utf8_percent_encode(promql, NON_ALPHANUMERIC)
    );
    let resp = http_get(prom, &path).await.map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!("HTTP {}: {}", resp.status, resp.body));
    }
    serde_json::from_str(&resp.body).map_err(|e| format!("{e}: {}", resp.body))
}

/// The samples of an instant-query response.
fn samples(json: &serde_json::Value) -> &[serde_json::Value] {
    json.pointer("/data/result")
        .and_then(|r| r.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The value of the single sample of an instant-query response, if there is exactly one.
fn single_value(json: &serde_json::Value) -> Option<&str> {
    let [sample] = samples(json) else {
        return None;
    };
    sample.pointer("/value/1")?.as_str()
}

/// Polls `promql` until `ready` accepts the answer, or panics after `timeout` with the
/// Prometheus log.
async fn wait_for(
    prom: SocketAddr,
    promql: &str,
    timeout: Duration,
    dir: &Path,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match query(prom, promql).await {
            Ok(json) if ready(&json) => return json,
            Ok(json) => json.to_string(),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            panic!(
                "Prometheus did not answer `{promql}` as expected within {timeout:?}; \
                 last: {last}\nlog:\n{log}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_endpoints() {
    let Some(binary) = find_binary("prometheus") else {
        eprintln!(
            "SKIP a_real_prometheus_scrapes_the_endpoints: prometheus not found \
             (Debian package `prometheus`; scripts/setup.sh installs it)"
        );
        return;
    };
    let coordinator = coordinator_after_two_rounds();
    let worker = worker_after_two_rounds();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (coordinator_addr, coordinator_server) = serve(
        loopback,
        coordinator.registry().clone(),
        std::future::pending(),
    )
    .await
    .expect("serve coordinator");
    let (worker_addr, worker_server) =
        serve(loopback, worker.registry().clone(), std::future::pending())
            .await
            .expect("serve worker");

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let prom = SocketAddr::from(([127, 0, 0, 1], port));
    let _prometheus = start_prometheus(
        &binary,
        dir.path(),
        &scrape_config(coordinator_addr, worker_addr),
        port,
    );

    // Start-up and the first scrape take a few seconds.
    let json = wait_for(
        prom,
        "fedchain_ledger_height",
        Duration::from_secs(60),
        dir.path(),
        |j| single_value(j).is_some(),
    )
    .await;
    assert_eq!(single_value(&json), Some("42"), "{json}");

    // Both targets are up (each scraped at least once), under the jobs of the scrape config.
    wait_for(prom, "sum(up)", Duration::from_secs(20), dir.path(), |j| {
        single_value(j) == Some("2")
    })
    .await;
    let targets = http_get(prom, "/api/v1/targets").await.expect("targets");
    let json: serde_json::Value = serde_json::from_str(&targets.body).expect("JSON");
    let mut jobs: Vec<(String, String)> = json
        .pointer("/data/activeTargets")
        .and_then(|t| t.as_array())
        .expect("activeTargets")
        .iter()
        .map(|t| (t["labels"]["job"].to_string(), t["health"].to_string()))
        .collect();
    jobs.sort();
    assert_eq!(
        jobs,
        [
            (r#""fedchain-coordinator""#.into(), r#""up""#.into()),
            (r#""fedchain-worker""#.into(), r#""up""#.into())
        ],
        "{json}"
    );

    // A value recorded now is scraped within a few intervals.
    coordinator.set_ledger_height(43);
    wait_for(
        prom,
        "fedchain_ledger_height",
        Duration::from_secs(10),
        dir.path(),
        |j| single_value(j) == Some("43"),
    )
    .await;

    // A labelled counter and a phase quantile through PromQL.
    let json = query(
        prom,
        r#"sum(fedchain_submissions_total{outcome="accepted"})"#,
    )
    .await
    .expect("query");
    assert_eq!(single_value(&json), Some("8"), "{json}");
    let json = query(
        prom,
        r#"histogram_quantile(0.5, sum by (le) (fedchain_round_phase_duration_seconds_bucket{phase="train"}))"#,
    )
    .await
    .expect("query");
    let median: f64 = single_value(&json)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no median in {json}"));
    assert!(
        (1.0..=2.5).contains(&median),
        "train median {median} outside its bucket (1, 2.5]"
    );
    let json = query(prom, "fedchain_worker_sent_bytes_total")
        .await
        .expect("query");
    assert_eq!(single_value(&json), Some("2097152"), "{json}");

    // Every dashboard query evaluates and returns series once rates have two samples.
    wait_for(
        prom,
        "count_over_time(fedchain_worker_connected[1m]) >= 3",
        Duration::from_secs(20),
        dir.path(),
        |j| !samples(j).is_empty(),
    )
    .await;
    for (title, promql) in dashboard_queries() {
        let json = query(prom, &promql)
            .await
            .unwrap_or_else(|e| panic!("panel {title}: `{promql}` failed: {e}"));
        assert_eq!(json["status"], "success", "panel {title}: {json}");
        assert!(
            !samples(&json).is_empty(),
            "panel {title}: `{promql}` returned no series"
        );
    }

    coordinator_server.abort();
    worker_server.abort();
}
