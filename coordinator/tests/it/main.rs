//! Integration tests of the round engine and the simulation: the same code a deployment runs.
#![allow(clippy::unwrap_used)]

mod confidentiality;
mod engine;
mod genesis;
mod integrity;
mod resume;
mod service;
mod simulate;
