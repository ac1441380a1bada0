//! Loading the deployment material: bundles (`fedchain keys new`, `ca issue`, `keys install`)
//! and the job directory (`fedchain keygen`).

use std::path::Path;

use fedchain_crypto::identity::VerifyingKey;
use fedchain_crypto::ThresholdPublicKey;
use fedchain_ledger::{Address, Role, State};
use fedchain_net::pki::{CommitteeMember, COMMITTEE};
use fedchain_net::{Bundle, PeerIdentity};

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

/// The chain id: configured, or `fedchain-<consortium>` from the bundle.
pub fn chain_id(configured: &Option<String>, bundle: &Bundle) -> String {
    configured
        .clone()
        .unwrap_or_else(|| format!("fedchain-{}", bundle.identity.consortium))
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
    use fedchain_ledger::state::{Genesis, Participant};

    use super::*;

    fn state_with(key: VerifyingKey, role: Role, pseudonym: &str) -> State {
        let mut s = State::genesis(&Genesis {
            chain_id: "t".into(),
            timestamp_ms: 0,
            validators: Vec::new(),
            allocations: Vec::new(),
        });
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
