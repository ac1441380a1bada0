//! The `/metrics` and `/healthz` HTTP endpoint (axum).

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use tokio::net::TcpListener;
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

/// Binds `addr` (port 0 picks a free port) and serves [`router`] until `shutdown` completes.
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
    let server = axum::serve(listener, router(registry)).with_graceful_shutdown(shutdown);
    let handle = tokio::spawn(async move {
        server.await.map_err(|source| MetricsError::Serve {
            addr: local,
            source,
        })
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
