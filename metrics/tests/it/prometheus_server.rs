//! A real Prometheus server scrapes the endpoint on loopback; the value comes back through its
//! HTTP query API.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fedchain_metrics::serve;

use crate::util::{coordinator_after_two_rounds, find_binary, free_port, http_get};

/// Kills the Prometheus process when dropped, also when the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape_config(target: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: fedchain-coordinator\n    scrape_interval: 1s\n    \
         scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
    )
}

fn start_prometheus(binary: &Path, dir: &Path, target: SocketAddr, port: u16) -> KillOnDrop {
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, scrape_config(target)).expect("write config");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
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

/// The value of the single sample of an instant-query response, if there is one.
fn single_value(json: &serde_json::Value) -> Option<String> {
    let result = json.pointer("/data/result")?.as_array()?;
    let [sample] = result.as_slice() else {
        return None;
    };
    Some(sample.pointer("/value/1")?.as_str()?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_coordinator() {
    let Some(binary) = find_binary("prometheus") else {
        eprintln!(
            "SKIP a_real_prometheus_scrapes_the_coordinator: prometheus not found \
             (Debian package `prometheus`; scripts/setup.sh installs it)"
        );
        return;
    };
    let metrics = coordinator_after_two_rounds();
    let (target, server) = serve(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics.registry().clone(),
        std::future::pending(),
    )
    .await
    .expect("serve");

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let prom_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let _prometheus = start_prometheus(&binary, dir.path(), target, port);

    // Poll the query API until the scraped value is there (start-up, WAL replay and the first
    // scrape take a few seconds).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::from("no answer yet");
    let height = loop {
        if Instant::now() > deadline {
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            panic!("Prometheus did not report fedchain_ledger_height in 60 s; last: {last}\nlog:\n{log}");
        }
        match http_get(prom_addr, "/api/v1/query?query=fedchain_ledger_height").await {
            Ok(resp) if resp.status == 200 => {
                let json: serde_json::Value =
                    serde_json::from_str(&resp.body).expect("query API answers JSON");
                assert_eq!(json["status"], "success", "{json}");
                if let Some(v) = single_value(&json) {
                    break v;
                }
                last = resp.body;
            }
            Ok(resp) => last = format!("HTTP {}: {}", resp.status, resp.body),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(height, "42");

    // The target is healthy and labelled with the job of the scrape config.
    let targets = http_get(prom_addr, "/api/v1/targets")
        .await
        .expect("targets");
    let json: serde_json::Value = serde_json::from_str(&targets.body).expect("JSON");
    let active = json
        .pointer("/data/activeTargets")
        .and_then(|t| t.as_array())
        .expect("activeTargets");
    assert_eq!(active.len(), 1, "{json}");
    assert_eq!(active[0]["health"], "up", "{json}");
    assert_eq!(active[0]["labels"]["job"], "fedchain-coordinator", "{json}");

    // A labelled counter and a histogram quantile go through PromQL as the dashboard uses them.
    let q = "/api/v1/query?query=sum(fedchain_submissions_total%7Boutcome%3D%22accepted%22%7D)";
    let json: serde_json::Value =
        serde_json::from_str(&http_get(prom_addr, q).await.expect("query").body).expect("JSON");
    assert_eq!(single_value(&json).as_deref(), Some("8"), "{json}");
    let q = "/api/v1/query?query=histogram_quantile(0.5%2Csum%20by%20(le)(fedchain_round_phase_duration_seconds_bucket%7Bphase%3D%22train%22%7D))";
    let json: serde_json::Value =
        serde_json::from_str(&http_get(prom_addr, q).await.expect("query").body).expect("JSON");
    let median: f64 = single_value(&json)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no median in {json}"));
    assert!(
        (1.0..=2.5).contains(&median),
        "train median {median} outside its bucket (1, 2.5]"
    );

    server.abort();
}
