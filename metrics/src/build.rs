//! Creating and registering metrics with a named error.

use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::{MetricsError, Result};

fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    name: &'static str,
    made: prometheus::Result<C>,
) -> Result<C> {
    let metric = made.map_err(|source| MetricsError::Register { name, source })?;
    registry
        .register(Box::new(metric.clone()))
        .map_err(|source| MetricsError::Register { name, source })?;
    Ok(metric)
}

pub(crate) fn int_counter(
    registry: &Registry,
    name: &'static str,
    help: &str,
) -> Result<IntCounter> {
    register(registry, name, IntCounter::new(name, help))
}

pub(crate) fn int_counter_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec> {
    register(
        registry,
        name,
        IntCounterVec::new(Opts::new(name, help), labels),
    )
}

pub(crate) fn int_gauge(registry: &Registry, name: &'static str, help: &str) -> Result<IntGauge> {
    register(registry, name, IntGauge::new(name, help))
}

pub(crate) fn int_gauge_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec> {
    register(
        registry,
        name,
        IntGaugeVec::new(Opts::new(name, help), labels),
    )
}

pub(crate) fn gauge(registry: &Registry, name: &'static str, help: &str) -> Result<Gauge> {
    register(registry, name, Gauge::new(name, help))
}

pub(crate) fn histogram_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, name, HistogramVec::new(opts, labels))
}

/// A u64 quantity as an `IntGauge` value, saturating at `i64::MAX`.
pub(crate) fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn histogram(
    registry: &Registry,
    name: &'static str,
    help: &str,
    buckets: &[f64],
) -> Result<Histogram> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, name, Histogram::with_opts(opts))
}
