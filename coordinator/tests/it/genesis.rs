//! The deployment's genesis: the coordinator takes the chain id from the genesis it is given,
//! and refuses one that is not `consortium_genesis` of its own keys or whose id is not its hash
//! (THREAT-MODEL A12).

use fedchain_coordinator::setup::{consortium_genesis, DeploymentKeys};
use fedchain_coordinator::simulate::SimError;
use fedchain_coordinator::{Consortium, Quiet, SimulateConfig};
use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::Genesis;
use fedchain_ledger::LedgerError;
use fedchain_worker::Protection;

fn small() -> SimulateConfig {
    SimulateConfig {
        key_bits: 512,
        hospitals: 4,
        threshold: 2,
        rounds: 1,
        validators: 3,
        baseline: false,
        ..SimulateConfig::default()
    }
}

fn keys(c: &Consortium, genesis: Genesis) -> DeploymentKeys {
    let Protection::Encrypted(e) = &c.protection else {
        panic!("encrypted job")
    };
    DeploymentKeys {
        genesis,
        aggregator: c.aggregator.clone(),
        validators: c.validators.clone(),
        committee: c
            .hospital_keys
            .iter()
            .map(SigningKey::verifying_key)
            .collect(),
        threshold_key: Some(e.key.clone()),
    }
}

fn genesis_of(c: &Consortium, nonce: u64, validators: &[SigningKey]) -> Genesis {
    let committee: Vec<_> = c
        .hospital_keys
        .iter()
        .map(SigningKey::verifying_key)
        .collect();
    consortium_genesis(
        "test-consortium",
        nonce,
        1_800_000_000_000,
        &c.aggregator.verifying_key(),
        validators.iter().map(SigningKey::verifying_key).collect(),
        &committee,
    )
}

#[test]
fn a12_the_deployment_runs_on_the_given_genesis_and_refuses_a_foreign_one() {
    let cfg = small();
    let c = Consortium::new(&cfg, &mut Quiet).unwrap();
    // the given genesis: the chain id (and so every transaction and proof context) is its hash
    let g = genesis_of(&c, 7, &c.validators);
    let d = Consortium::deployment(&cfg, keys(&c, g.clone())).unwrap();
    assert_eq!(d.genesis, g);
    assert_eq!(d.engine_config(0, Default::default()).chain_id, g.chain_id);
    // another nonce is another chain
    let other = genesis_of(&c, 8, &c.validators);
    assert_ne!(other.chain_id, g.chain_id);
    // a genesis naming other validators than the ones whose keys the coordinator holds
    let strangers: Vec<SigningKey> = (0..3)
        .map(|_| SigningKey::generate(&mut rand::rngs::OsRng))
        .collect();
    let foreign = genesis_of(&c, 7, &strangers);
    assert!(matches!(
        Consortium::deployment(&cfg, keys(&c, foreign)),
        Err(SimError::Refused(why)) if why.contains("not this deployment's")
    ));
    // a genesis whose id is not its hash
    let mut forged = g.clone();
    forged.chain_id = other.chain_id.clone();
    assert!(matches!(
        Consortium::deployment(&cfg, keys(&c, forged)),
        Err(SimError::Ledger(LedgerError::GenesisId { .. }))
    ));
}
