//! Serves coordinator metrics fed by simulated rounds, to try the Grafana dashboard and the
//! scrape config in deploy/ without running a consortium:
//!
//!     cargo run -p fedchain-metrics --example demo -- [port, default 9464] [rounds, default forever]
//!
//! Every 2 s a round of 4 hospitals is recorded with made-up phase times.

use std::net::SocketAddr;
use std::time::Duration;

use fedchain_metrics::labels::{PenaltyReason, Phase, RejectReason, ShareOutcome};
use fedchain_metrics::{serve, CoordinatorMetrics, MetricsError};

#[tokio::main]
async fn main() -> Result<(), MetricsError> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(9464);
    let rounds: Option<u32> = args.next().and_then(|a| a.parse().ok());
    let metrics = CoordinatorMetrics::new()?;
    let (addr, server) = serve(
        SocketAddr::from(([127, 0, 0, 1], port)),
        metrics.registry().clone(),
        std::future::pending(),
    )
    .await?;
    println!("serving http://{addr}/metrics");
    metrics.set_connected_hospitals(4);
    let mut height = 10u64;
    let mut round = 0u32;
    while rounds.is_none_or(|n| round < n) {
        metrics.round_opened(round);
        let jitter = f64::from(round % 7) / 7.0;
        for (phase, secs) in [
            (Phase::Train, 1.2 + jitter),
            (Phase::Encrypt, 0.3 + jitter / 10.0),
            (Phase::Aggregate, 0.04),
            (Phase::Decrypt, 0.6 + jitter / 2.0),
            (Phase::Combine, 0.02),
            (Phase::Commit, 0.015),
        ] {
            metrics.observe_phase(phase, Duration::from_secs_f64(secs));
        }
        for _ in 0..4 {
            metrics.submission_accepted();
            metrics.bytes_received(1 << 20);
            metrics.decryption_share(ShareOutcome::Accepted);
        }
        if round % 5 == 4 {
            metrics.submission_rejected(RejectReason::Late);
            metrics.penalty(PenaltyReason::MissedDeadline);
        }
        metrics.ciphertexts_aggregated(4 * 89);
        metrics.round_committed();
        height += 4;
        metrics.set_ledger_height(height);
        metrics.set_model_accuracy(1.0 - 0.5 / f64::from(round + 2))?;
        for (i, account) in ["hospital-a", "hospital-b", "hospital-c", "hospital-d"]
            .iter()
            .enumerate()
        {
            metrics.set_token_balance(account, 1_000 + u64::from(round) * (10 + i as u64));
        }
        round += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!("{}", metrics.render()?);
    server.abort();
    Ok(())
}
