//! fedchain benchmarks: ratios measured in one run (us vs peers, us vs the hardware limit).
//! `cargo run --release -p fedchain-bench -- crypto [--quick]`, `... -- e2e <scenario>`; see
//! bench/README.md.

mod consensus;
mod crypto;
mod e2e;
mod ledger;
mod net;
mod peers;
mod range;
mod restart;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fedchain-bench",
    about = "fedchain benchmarks against peers and the hardware limit"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Paillier encryption, threshold decryption and aggregation vs python-paillier, FATE and
    /// the GMP mulmod limit. Writes bench/results/crypto.json.
    Crypto(crypto::Args),
    /// Ledger commit latency (10 and 100 submissions per round block, payloads included),
    /// audit speed and bytes on disk per round. Writes bench/results/ledger.json.
    Ledger(ledger::Args),
    /// A 4 MiB payload sent N times across loopback over mutual-TLS QUIC (MB/s, vs memcpy).
    /// Writes bench/results/net.json.
    Net(net::Args),
    /// End-to-end scenarios: the encrypted system and its plaintext baseline in one run
    /// (breast-cancer and digits also against Flower FedAvg). Writes
    /// bench/results/<scenario>.json and plots in bench/results/<scenario>/.
    E2e(e2e::Args),
    /// The blame step's slot range proofs: prove and verify per ciphertext on one core
    /// (8-, 12- and 16-bit values). Writes bench/results/range.json.
    Range(range::Args),
    /// The validators' ordering on loopback with 4 and 7 validators: finalization latency,
    /// transactions per second, blocks per second, and the audit speed with every
    /// finalization checked. Writes bench/results/consensus.json.
    Consensus(consensus::Args),
    /// Reopening a coordinator's ledger after a restart: the full replay against the head
    /// snapshot, on one ledger (built by a 512-bit simulation). Writes
    /// bench/results/restart.json.
    Restart(restart::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Crypto(a) => crypto::run(a),
        Cmd::Ledger(a) => ledger::run(a),
        Cmd::Net(a) => net::run(a),
        Cmd::E2e(a) => e2e::run(a),
        Cmd::Range(a) => range::run(a),
        Cmd::Restart(a) => restart::run(a),
        Cmd::Consensus(a) => consensus::run(a),
    }
}
