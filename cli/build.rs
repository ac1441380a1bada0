//! With the `torch` feature, give the binaries (fedchain; fedchain-bench shares this script) an
//! rpath to libtorch so they run without LD_LIBRARY_PATH (a library's link arguments do not
//! reach the binaries that use it).
fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        if let Some(t) = std::env::var_os("LIBTORCH") {
            println!(
                "cargo:rustc-link-arg-bins=-Wl,-rpath,{}",
                std::path::Path::new(&t).join("lib").display()
            );
        }
    }
}
