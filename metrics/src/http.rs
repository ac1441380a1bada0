//! The `/metrics` and `/healthz` HTTP endpoint (axum).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::{MetricsError, Result};

/// Content type of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Default port of the coordinator's endpoint; workers use 9465, 9466, ... by convention
/// (deploy/prometheus/prometheus.yml).
pub const DEFAULT_COORDINATOR_PORT: u16 = 9464;

/// Default port of the first worker's endpoint.
pub const DEFAULT_WORKER_PORT: u16 = 9465;

/// The router: `GET /metrics` renders `registry`, `GET /healthz` answers `ok`. Exposed so a
/// service can merge it into a router of its own.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(registry)
}

/// Longest time a client may take to send a request's headers (a slow or partial request is
/// closed then, so it cannot hold a connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest life of one connection, idle keep-alive time included (a scraper reconnects).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Connections served at once; further ones are closed at accept, so no number of clients
/// exhausts the process's file descriptors (a scrape needs one).
pub const MAX_CONNECTIONS: usize = 64;

/// Binds `addr` (port 0 picks a free port) and serves [`router`] until `shutdown` completes.
///
/// Each connection gets [`HEADER_READ_TIMEOUT`] per request's headers and lives at most
/// [`CONNECTION_LIFETIME`]; at most [`MAX_CONNECTIONS`] are served at once (threat model
/// G7: a flood of slow partial requests neither pins the process nor keeps a scrape out for
/// longer than the header timeout).
///
/// Returns the bound address and the server task, whose result is the serving error if any.
/// Must be called inside a tokio runtime.
pub async fn serve<F>(
    addr: SocketAddr,
    registry: Registry,
    shutdown: F,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let app = router(registry);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let handle = tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                r = listener.accept() => match r {
                    Ok((stream, _)) => stream,
                    // e.g. out of file descriptors: wait a little instead of spinning
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                drop(stream); // over the cap: closed at once
                continue;
            };
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
                drop(slot);
            });
        }
    });
    Ok((local, handle))
}

async fn metrics(State(registry): State<Registry>) -> Response {
    match crate::render(&registry) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}
