//! With the `torch` feature, records an rpath to libtorch's lib/ directory in this crate's test,
//! example and bench binaries, so they run without LD_LIBRARY_PATH. LIBTORCH comes from
//! .cargo/config.toml (or the environment), as for torch-sys.
//!
//! Cargo applies `rustc-link-arg` only to this package's own binaries: a binary crate of the
//! workspace that enables `fedchain-models/torch` needs the same two lines in its build script.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_LIB");
    if env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" && target_os != "macos" {
        return;
    }
    // torch-sys links against $LIBTORCH_LIB/lib if set, else $LIBTORCH/lib.
    if let Some(root) = env::var_os("LIBTORCH_LIB").or_else(|| env::var_os("LIBTORCH")) {
        let lib = PathBuf::from(root).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
