//! Loading the deployment material: bundles (`fedchain keys new`, `ca issue`, `keys install`)
//! and the job directory (`fedchain keygen`).

use std::path::{Path, PathBuf};

use fedchain_coordinator::setup::consortium_genesis;
use fedchain_crypto::identity::VerifyingKey;
use fedchain_crypto::ThresholdPublicKey;
use fedchain_ledger::{Address, Genesis, LedgerError, Role, State};
use fedchain_net::pki::{load_certified, CommitteeMember, COMMITTEE};
use fedchain_net::{Bundle, PeerIdentity};
use rand::RngCore;

use crate::{NodeError, Result};

fn bad(path: &Path, reason: impl Into<String>) -> NodeError {
    NodeError::Material {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A bundle that must hold the given role.
pub fn load_bundle(dir: &Path, role: Role) -> Result<Bundle> {
    let b = Bundle::load(dir)?;
    if b.identity.role != role {
        return Err(bad(
            dir,
            format!(
                "{} is a {}, expected a {}",
                b.identity.name,
                b.identity.role.name(),
                role.name()
            ),
        ));
    }
    Ok(b)
}

/// The committee in key-holder order (`committee.json` of the job directory).
pub fn load_committee(job_dir: &Path) -> Result<Vec<(CommitteeMember, VerifyingKey)>> {
    let path = job_dir.join(COMMITTEE);
    let text = std::fs::read_to_string(&path).map_err(crate::io_err(&path))?;
    parse_committee(&path, &text)
}

/// Parse the text of a `committee.json` ([`load_committee`] after reading it; `path` only names
/// the file in errors): holders numbered 1, 2, ... in order, each with a valid BLS key, at least
/// one.
pub fn parse_committee(path: &Path, text: &str) -> Result<Vec<(CommitteeMember, VerifyingKey)>> {
    let members: Vec<CommitteeMember> =
        serde_json::from_str(text).map_err(|e| bad(path, e.to_string()))?;
    let mut out = Vec::with_capacity(members.len());
    for (i, m) in members.into_iter().enumerate() {
        if m.holder as usize != i + 1 {
            return Err(bad(
                path,
                format!("entry {i} is holder {}, expected {}", m.holder, i + 1),
            ));
        }
        let bytes = hex::decode(&m.bls_public_key)
            .map_err(|e| bad(path, format!("{}: BLS key: {e}", m.name)))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| bad(path, format!("{}: BLS key: {e}", m.name)))?;
        out.push((m, key));
    }
    if out.is_empty() {
        return Err(bad(path, "empty committee"));
    }
    Ok(out)
}

/// The job's threshold key, unless the experiment runs in plaintext.
pub fn load_threshold_key(job_dir: &Path, plaintext: bool) -> Result<Option<ThresholdPublicKey>> {
    if plaintext {
        return Ok(None);
    }
    Ok(Some(fedchain_net::pki::load_threshold_key(job_dir)?))
}

/// File name of the deployment's genesis inside a job directory (`fedchain genesis`).
pub const GENESIS: &str = "genesis.json";

/// Largest genesis file read.
const MAX_GENESIS_FILE: u64 = 1 << 20;

/// The deployment's genesis, `genesis.json` of the job directory: the one source of the chain
/// id for the coordinator and every worker. Refused unless its chain id is the hash of its
/// content (`LedgerError::GenesisId`).
pub fn load_genesis(job_dir: &Path) -> Result<Genesis> {
    use std::io::Read;
    let path = job_dir.join(GENESIS);
    let f = std::fs::File::open(&path).map_err(crate::io_err(&path))?;
    let mut text = String::new();
    f.take(MAX_GENESIS_FILE + 1)
        .read_to_string(&mut text)
        .map_err(crate::io_err(&path))?;
    if text.len() as u64 > MAX_GENESIS_FILE {
        return Err(bad(&path, format!("larger than {MAX_GENESIS_FILE} bytes")));
    }
    let genesis: Genesis = serde_json::from_str(&text).map_err(|e| bad(&path, e.to_string()))?;
    genesis
        .check_id()
        .map_err(|(stated, derived)| LedgerError::GenesisId { stated, derived })?;
    Ok(genesis)
}

/// What `fedchain genesis` reads: public files only.
#[derive(Clone, Debug)]
pub struct GenesisInput {
    /// The job directory (its `committee.json` from `keygen`; `genesis.json` is written there).
    pub job_dir: PathBuf,
    /// The consortium CA certificate the participants' certificates must verify against.
    pub ca_cert: PathBuf,
    /// The CA's current CRL.
    pub crl: Option<PathBuf>,
    /// The aggregator's public files (a `ca issue --out` directory or its bundle).
    pub aggregator: PathBuf,
    /// The validators' public files, in validator order.
    pub validators: Vec<PathBuf>,
    /// Distinguishes this deployment from others of the consortium; default: random.
    pub nonce: Option<u64>,
    /// Genesis time; default: now.
    pub timestamp_ms: Option<u64>,
}

/// `fedchain genesis`: the deployment's genesis from the certified public keys of the
/// aggregator, the validators and the committee (`consortium_genesis`, the derivation the
/// simulation uses), written to `genesis.json` in the job directory, which must not hold one
/// yet (a new genesis is a new chain). The chain id is its hash.
pub fn write_genesis(input: &GenesisInput) -> Result<Genesis> {
    let path = input.job_dir.join(GENESIS);
    if path.exists() {
        return Err(bad(
            &path,
            "the job directory already holds a genesis (a new one would be another chain)",
        ));
    }
    if input.validators.is_empty() {
        return Err(bad(&input.job_dir, "no validators"));
    }
    let certified = |dir: &Path, role: Role| -> Result<(VerifyingKey, String)> {
        let (id, identity) = load_certified(dir, &input.ca_cert, input.crl.as_deref())?;
        if id.role != role {
            return Err(bad(
                dir,
                format!(
                    "{} is a {}, expected a {}",
                    id.name,
                    id.role.name(),
                    role.name()
                ),
            ));
        }
        Ok((id.bls_key, identity.consortium))
    };
    let (aggregator, consortium) = certified(&input.aggregator, Role::Aggregator)?;
    let mut validators = Vec::with_capacity(input.validators.len());
    for v in &input.validators {
        let (key, theirs) = certified(v, Role::Validator)?;
        if theirs != consortium {
            return Err(bad(
                v,
                format!("of consortium {theirs}, the aggregator's is {consortium}"),
            ));
        }
        if validators.contains(&key) {
            return Err(bad(v, "listed twice"));
        }
        validators.push(key);
    }
    let committee: Vec<VerifyingKey> = load_committee(&input.job_dir)?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    let nonce = input.nonce.unwrap_or_else(|| rand::rngs::OsRng.next_u64());
    let timestamp_ms = input.timestamp_ms.unwrap_or_else(crate::now_ms);
    let genesis = consortium_genesis(
        &consortium,
        nonce,
        timestamp_ms,
        &aggregator,
        validators,
        &committee,
    );
    let json = serde_json::to_string_pretty(&genesis).map_err(|e| bad(&path, e.to_string()))?;
    std::fs::write(&path, json).map_err(crate::io_err(&path))?;
    Ok(genesis)
}

/// The chain id a participant uses: the genesis's, provided the genesis allocates to
/// `member` (a genesis of another deployment does not).
pub fn chain_id_for(genesis: &Genesis, member: &Address, job_dir: &Path) -> Result<String> {
    if !genesis.allocations.iter().any(|(a, _)| a == member) {
        return Err(bad(
            &job_dir.join(GENESIS),
            format!(
                "chain {} allocates nothing to {member:?}: not this deployment's genesis",
                genesis.chain_id
            ),
        ));
    }
    Ok(genesis.chain_id.clone())
}

/// Why a connected peer is not the hospital registered on chain under its address: the
/// certificate's BLS key and role must be the registration's (`PeerIdentity::check_registered`)
/// and its name the registered pseudonym.
pub fn check_registered(id: &PeerIdentity, state: &State) -> Result<Address, String> {
    let a = id.address();
    let Some(p) = state.participants.get(&a) else {
        return Err(format!("{} ({a:?}) is not registered on chain", id.name));
    };
    if p.role != Role::Hospital {
        return Err(format!(
            "{} is registered as a {}, not a hospital",
            id.name,
            p.role.name()
        ));
    }
    id.check_registered(&p.key, p.role)
        .map_err(|e| e.to_string())?;
    if p.pseudonym != id.name {
        return Err(format!(
            "{}: registered on chain as {}",
            id.name, p.pseudonym
        ));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use fedchain_crypto::identity::SigningKey;
    use fedchain_ledger::state::Participant;

    use super::*;

    fn state_with(key: VerifyingKey, role: Role, pseudonym: &str) -> State {
        let mut s = State::genesis(&Genesis::new("t", 0, 0, Vec::new(), Vec::new()));
        s.participants.insert(
            Address::of(&key),
            Participant {
                key,
                role,
                pseudonym: pseudonym.into(),
            },
        );
        s
    }

    #[test]
    fn the_genesis_file_reads_back_with_its_id_and_a_forged_id_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = SigningKey::from_seed(&[3; 32]).verifying_key();
        let g = Genesis::new("c", 7, 1, vec![key], vec![(Address::of(&key), 5)]);
        let json = serde_json::to_string_pretty(&g).expect("json");
        // addresses in hex, as identity.json and committee.json show them
        assert!(json.contains(&hex::encode(Address::of(&key).0)), "{json}");
        std::fs::write(dir.path().join(GENESIS), &json).expect("write");
        assert_eq!(load_genesis(dir.path()).expect("genesis"), g);
        assert_eq!(
            chain_id_for(&g, &Address::of(&key), dir.path()).expect("allocated"),
            g.chain_id
        );
        assert!(chain_id_for(&g, &Address([9; 20]), dir.path()).is_err());
        let mut forged = g.clone();
        forged.nonce = 8;
        std::fs::write(
            dir.path().join(GENESIS),
            serde_json::to_string(&forged).expect("json"),
        )
        .expect("write");
        match load_genesis(dir.path()) {
            Err(NodeError::Ledger(LedgerError::GenesisId { stated, derived })) => {
                assert_eq!(stated, g.chain_id);
                assert_eq!(derived, forged.derived_id());
            }
            other => panic!("a genesis whose id is not its hash was loaded: {other:?}"),
        }
    }

    #[test]
    fn a_peer_must_be_the_hospital_registered_under_its_key() {
        let key = SigningKey::from_seed(&[1; 32]).verifying_key();
        let other = SigningKey::from_seed(&[2; 32]).verifying_key();
        let id = |role, name: &str, bls_key| PeerIdentity {
            name: name.into(),
            role,
            bls_key,
        };
        let st = state_with(key, Role::Hospital, "hospital-0");
        assert_eq!(
            check_registered(&id(Role::Hospital, "hospital-0", key), &st),
            Ok(Address::of(&key))
        );
        // another key: not registered at all
        let e =
            check_registered(&id(Role::Hospital, "hospital-0", other), &st).expect_err("refused");
        assert!(e.contains("not registered"), "{e}");
        // the right key with another role in the certificate
        let e =
            check_registered(&id(Role::Validator, "hospital-0", key), &st).expect_err("refused");
        assert!(
            e.contains("not registered on chain with this key and role"),
            "{e}"
        );
        // the right key under another name
        let e = check_registered(&id(Role::Hospital, "hospital-9", key), &st).expect_err("refused");
        assert!(e.contains("registered on chain as hospital-0"), "{e}");
        // registered as an aggregator
        let st = state_with(key, Role::Aggregator, "hospital-0");
        let e = check_registered(&id(Role::Hospital, "hospital-0", key), &st).expect_err("refused");
        assert!(e.contains("not a hospital"), "{e}");
    }
}
