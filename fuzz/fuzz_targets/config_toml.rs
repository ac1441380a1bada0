//! The TOML configurations: `SimulateConfig::from_toml` (`fedchain simulate --config`), the
//! node's `CoordinatorConfig` and `WorkerConfig` (`toml::from_str`, what their `load` runs
//! after reading the file), and `validate()` on whatever parses.
#![no_main]

use fedchain_coordinator::SimulateConfig;
use fedchain_node::config::{CoordinatorConfig, WorkerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = SimulateConfig::from_toml(text) {
        let _ = c.validate();
        let _ = c.min_participants();
    }
    if let Ok(c) = toml::from_str::<CoordinatorConfig>(text) {
        let _ = c.validate();
        let _ = c.net.limits();
    }
    if let Ok(c) = toml::from_str::<WorkerConfig>(text) {
        let _ = c.validate();
        let _ = c.net.limits();
    }
});
