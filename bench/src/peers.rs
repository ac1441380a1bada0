//! Python peers (python-paillier, FATE's fate_utils) run from their own venv.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// The peers folder of this crate.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// Set up the venv (idempotent) and run the Paillier peers; returns their JSON report.
pub fn run_paillier_peers(quick: bool) -> anyhow::Result<serde_json::Value> {
    let dir = peers_dir();
    let setup = Command::new("bash")
        .arg(dir.join("setup.sh"))
        .output()
        .context("running bench/peers/setup.sh")?;
    let setup_out = String::from_utf8_lossy(&setup.stdout);
    eprint!("{}", String::from_utf8_lossy(&setup.stderr));
    if !setup.status.success() {
        bail!("bench/peers/setup.sh failed: {setup_out}");
    }
    let python = venv_python();
    let mut cmd = Command::new(&python);
    cmd.arg(dir.join("paillier_peers.py"));
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("paillier_peers.py exited with {}", out.status);
    }
    serde_json::from_slice(&out.stdout).context("parsing the peers' JSON")
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("FEDCHAIN_PY_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/fedchain-py")))
        .unwrap_or_else(|| PathBuf::from(".cache/fedchain-py"));
    venv.join("bin/python")
}
