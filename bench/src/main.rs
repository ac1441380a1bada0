//! fedchain benchmarks: ratios measured in one run (us vs peers, us vs the hardware limit).
//! `cargo run --release -p fedchain-bench -- crypto [--quick]`

mod crypto;
mod ledger;
mod net;
mod overhead;
mod peers;

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
    /// Encrypted vs plaintext round time and accuracy for one simulate configuration, in one
    /// run. Writes bench/results/overhead-<name>.json.
    Overhead(overhead::Args),
    /// A 4 MiB payload sent N times across loopback over mutual-TLS QUIC (MB/s, vs memcpy).
    /// Writes bench/results/net.json.
    Net(net::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Crypto(a) => crypto::run(a),
        Cmd::Ledger(a) => ledger::run(a),
        Cmd::Overhead(a) => overhead::run(a),
        Cmd::Net(a) => net::run(a),
    }
}
