//! The shipped example configurations parse and validate.

use std::path::Path;

use fedchain_node::config::{CoordinatorConfig, ValidatorConfig, WorkerConfig};

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/local-cluster")
        .join(name)
}

#[test]
fn local_cluster_examples_parse_and_validate() {
    let c = CoordinatorConfig::load(&example("coordinator.toml")).expect("coordinator.toml");
    c.validate().expect("valid coordinator.toml");
    assert!(
        c.validators.is_empty(),
        "no validator key on the aggregator"
    );
    assert_eq!(c.chain.len(), 4);
    let v = ValidatorConfig::load(&example("validator.toml")).expect("validator.toml");
    v.validate().expect("valid validator.toml");
    assert_eq!(v.validators.len(), 4);
    assert_eq!(c.chain[0].address, v.listen);
    assert!(c.bundle.is_absolute(), "paths resolve against the file");
    assert_eq!(c.experiment.hospitals, 4);
    let w = WorkerConfig::load(&example("worker.toml")).expect("worker.toml");
    w.validate().expect("valid worker.toml");
    assert_eq!(w.coordinator, c.listen);
    assert_eq!(w.experiment, c.experiment, "one experiment on both sides");
}

#[test]
fn unknown_fields_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "listen = \"127.0.0.1:1\"\nbogus = 1\n").expect("write");
    let e = CoordinatorConfig::load(&p).expect_err("unknown field");
    assert!(e.to_string().contains("bogus"), "{e}");
    std::fs::write(&p, "tick_ms = 1\nvalidators = [\"v\"]\n").expect("write");
    let e = CoordinatorConfig::load(&p)
        .expect("parses")
        .validate()
        .expect_err("tick too short");
    assert!(e.to_string().contains("tick_ms"), "{e}");
    let p = dir.path().join("w.toml");
    std::fs::write(&p, "backoff_initial_ms = 0\n").expect("write");
    let e = WorkerConfig::load(&p)
        .expect("parses")
        .validate()
        .expect_err("zero backoff");
    assert!(e.to_string().contains("backoff"), "{e}");
}
