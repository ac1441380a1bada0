//! Integration tests of fedchain-metrics: the HTTP endpoint scraped over TCP, `promtool check
//! metrics` on what it serves, a real Prometheus server scraping it, and the deploy/ files.
//!
//! promtool and prometheus come from Debian's `prometheus` package (scripts/setup.sh installs
//! it); where they are missing, the tests that need them print why and return.

mod deploy;
mod endpoint;
mod prometheus_server;
mod promtool;
mod util;
