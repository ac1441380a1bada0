//! The consortium's key and bundle files as fedchain-net and fedchain-node read them:
//! - `request.json` (`pki::parse_request`, then `pki::verify_request`: name, CSR signature and
//!   key type, BLS and X25519 keys, proof of possession, as `ca issue` checks it);
//! - `identity.json` (`IdentityFile` JSON, `pki::check_name`, the hex keys);
//! - `committee.json` (`fedchain_node::material::parse_committee`);
//! - certificates, PEM (`CertificateDer::from_pem_slice`) and DER: `pki::identity_from_cert`
//!   and `tls::verify_certificate` against the fixture CA;
//! - CRLs, PEM: `tls::verify_certificate` of the fixture hospital certificate with that CRL.
//!
//! Every decoder sees every input (they are cheap next to the fuzzer's own work).
#![no_main]

use std::path::Path;

use fedchain_net::pki::{self, IdentityFile};
use libfuzzer_sys::fuzz_target;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input");
    if let Ok(req) = pki::parse_request(path, data) {
        let _ = pki::verify_request(path, &req);
    }
    if let Ok(id) = serde_json::from_slice::<IdentityFile>(data) {
        let _ = pki::check_name(&id.name);
        let _ = hex::decode(&id.bls_public_key)
            .map(|b| fedchain_crypto::identity::VerifyingKey::from_bytes(&b));
        let _ = hex::decode(&id.bls_proof_of_possession)
            .map(|b| fedchain_crypto::identity::Signature::from_bytes(&b));
        let mut x = [0u8; 32];
        let _ = hex::decode_to_slice(&id.x25519_public_key, &mut x);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fedchain_node::material::parse_committee(path, text);
    }
    let _ = pki::identity_from_cert(data);
    let _ = pki::parse_identity_extension(data);
    if let Ok(cert) = CertificateDer::from_pem_slice(data) {
        let _ = pki::identity_from_cert(&cert);
        if let Some(ca) = fedchain_fuzz::ca_cert() {
            let _ = fedchain_net::tls::verify_certificate(ca, &[], &cert);
        }
    }
    if let Ok(crl) = CertificateRevocationListDer::from_pem_slice(data) {
        if let (Some(ca), Some(cert)) = (fedchain_fuzz::ca_cert(), fedchain_fuzz::hospital_cert()) {
            let _ = fedchain_net::tls::verify_certificate(ca, &[crl], cert);
        }
    }
});
