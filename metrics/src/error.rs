use std::net::SocketAddr;

/// Everything that can go wrong in fedchain-metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric could not be created or registered (a bug: names are fixed in this crate).
    #[error("metric {name}: {source}")]
    Register {
        name: &'static str,
        #[source]
        source: prometheus::Error,
    },
    /// The registry could not be rendered in the Prometheus text format.
    #[error("encoding metrics in the text format: {0}")]
    Encode(#[source] prometheus::Error),
    /// A ratio outside 0..=1 (or NaN) was given for a `_ratio` gauge.
    #[error("{name} must be a ratio in 0..=1, got {value}")]
    NotARatio { name: &'static str, value: f64 },
    /// The HTTP endpoint could not bind its address.
    #[error("binding the metrics endpoint to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP endpoint failed while serving.
    #[error("serving the metrics endpoint on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of fedchain-metrics.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
