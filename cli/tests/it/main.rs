//! Integration tests of the `fedchain` binary: real processes (coordinator, workers) on
//! loopback. Clusters run one at a time (a process-wide lock), with a 512-bit key and breast
//! cancer so a run takes seconds.
//!
//! The crash tests need failpoints in the binary:
//! `cargo test -p fedchain --features failpoints` (CI runs this in .ci/run).

mod cluster;
mod configs;
#[cfg(feature = "failpoints")]
mod faults;
mod flood;
mod keys;
mod limits;
mod multiprocess;
#[cfg(feature = "failpoints")]
mod restart;
mod resume;
mod secrets;
mod stores;
mod validators;
