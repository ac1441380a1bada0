use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fedchain_crypto::identity::SigningKey;
use fedchain_crypto::{Encode, Integer, KeyShare};
use fedchain_ledger::types::Role;
use fedchain_net::pki::{
    ca_index, ca_issue, ca_revoke, keygen_with_primes, keys_install, keys_new, load_threshold_key,
    pop_message, read_request, share_path, CaIssueArgs, CaRevokeArgs, KeyRequest, KeygenArgs,
    KeysInstallArgs, KeysNewArgs, RoleArg, ISSUED_FILES, REQUEST, SECRET_FILES,
};
use fedchain_net::{Bundle, NetError};
use rand::SeedableRng;
use rustls::pki_types::pem::PemObject;

use crate::common::{cert_dir, init_ca, issue, Consortium};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn new_keys(name: &str, role: RoleArg, out: &Path) {
    keys_new(&KeysNewArgs {
        name: name.into(),
        role,
        out: out.to_path_buf(),
    })
    .expect("keys new");
}

fn issue_args(ca: &Path, request: &Path, out: &Path) -> CaIssueArgs {
    CaIssueArgs {
        dir: ca.to_path_buf(),
        request: request.to_path_buf(),
        out: out.to_path_buf(),
        days: 30,
    }
}

fn write_request(path: &Path, r: &KeyRequest) {
    fs::write(path, serde_json::to_vec_pretty(r).expect("json")).expect("write request");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(files_in(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn names(files: &[PathBuf]) -> Vec<String> {
    let mut v: Vec<String> = files
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn ca_init_issue_revoke_on_disk() {
    let c = Consortium::new();
    assert_eq!(mode(&c.ca.join("ca.key.pem")), 0o600);
    for f in SECRET_FILES {
        assert_eq!(mode(&c.h1.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&c.h1), 0o700, "the key directory is private");
    for f in ISSUED_FILES {
        assert!(c.h1.join(f).exists(), "{f}");
        assert!(cert_dir(&c.h1).join(f).exists(), "{f}");
    }
    let b = Bundle::load(&c.h1).expect("load");
    assert_eq!(b.identity.name, "h1");
    assert_eq!(b.identity.role, Role::Hospital);
    let key = b.signing_key().expect("bls key");
    let from_cert = b.peer_identity().expect("identity in cert");
    assert_eq!(from_cert.bls_key, key.verifying_key());
    assert_eq!(
        hex::encode(fedchain_ledger::Address::of(&key.verifying_key()).0),
        b.identity.address
    );
    let idx = ca_index(&c.ca).expect("index");
    let h1 = idx.issued.iter().find(|i| i.name == "h1").expect("h1");
    assert_eq!(
        h1.x25519_public_key.as_deref(),
        Some(b.identity.x25519_public_key.as_str())
    );

    // Duplicate names (fresh keys, same name), unknown names, double revocation, re-init.
    let dup = c.dir.path().join("dup");
    new_keys("h1", RoleArg::Validator, &dup);
    let r = ca_issue(&issue_args(
        &c.ca,
        &dup.join(REQUEST),
        &c.dir.path().join("dup.certs"),
    ));
    assert!(
        matches!(r, Err(NetError::DuplicateName { ref name }) if name == "h1"),
        "{r:?}"
    );
    // Resubmitting an issued request is a duplicate name.
    let r = ca_issue(&issue_args(
        &c.ca,
        &c.h2.join(REQUEST),
        &c.dir.path().join("again"),
    ));
    assert!(matches!(r, Err(NetError::DuplicateName { .. })), "{r:?}");
    let unknown = ca_revoke(&CaRevokeArgs {
        dir: c.ca.clone(),
        name: "nobody".into(),
    });
    assert!(
        matches!(unknown, Err(NetError::UnknownName { .. })),
        "{unknown:?}"
    );
    ca_revoke(&CaRevokeArgs {
        dir: c.ca.clone(),
        name: "h2".into(),
    })
    .expect("revoke");
    let again = ca_revoke(&CaRevokeArgs {
        dir: c.ca.clone(),
        name: "h2".into(),
    });
    assert!(
        matches!(again, Err(NetError::AlreadyRevoked { .. })),
        "{again:?}"
    );
    let idx = ca_index(&c.ca).expect("index");
    assert_eq!(idx.crl_number, 2, "one CRL at init, one per revocation");
    let revoked: Vec<_> = idx
        .issued
        .iter()
        .filter(|i| i.revoked_at.is_some())
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(revoked, ["h2"]);
    let reinit = fedchain_net::pki::ca_init(&fedchain_net::pki::CaInitArgs {
        dir: c.ca.clone(),
        name: "x".into(),
        days: 1,
    });
    assert!(
        matches!(reinit, Err(NetError::CaExists { .. })),
        "{reinit:?}"
    );
    // Bad names: refused by `keys new`, and by the CA if a request carries one.
    let bad = keys_new(&KeysNewArgs {
        name: "Bad_Name".into(),
        role: RoleArg::Hospital,
        out: c.dir.path().join("bad"),
    });
    assert!(matches!(bad, Err(NetError::InvalidName { .. })), "{bad:?}");
    let mut req = read_request(&dup.join(REQUEST)).expect("request");
    req.name = "Bad_Name".into();
    let p = c.dir.path().join("bad-request.json");
    write_request(&p, &req);
    let r = ca_issue(&issue_args(&c.ca, &p, &c.dir.path().join("bad")));
    assert!(matches!(r, Err(NetError::InvalidName { .. })), "{r:?}");
    // `keys new` never overwrites a key directory.
    let r = keys_new(&KeysNewArgs {
        name: "h9".into(),
        role: RoleArg::Hospital,
        out: c.h1.clone(),
    });
    assert!(matches!(r, Err(NetError::Bundle { .. })), "{r:?}");
}

/// G6: every party generates its own secret keys; the CA signs public keys and never sees a
/// secret. No file the participant sends (request.json), no file in the CA directory and no
/// file of the CA's output holds any of the participant's secrets, in any encoding; the CA's
/// output holds exactly the four public files; the dealer's job directory holds no share in
/// the clear.
#[test]
fn g6_ca_never_sees_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    init_ca(&ca, "c");
    let ca_files_before = names(&files_in(&ca));
    let parts = [
        ("coord", RoleArg::Aggregator),
        ("val-0", RoleArg::Validator),
        ("h1", RoleArg::Hospital),
        ("h2", RoleArg::Hospital),
        ("h3", RoleArg::Hospital),
    ];
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut bundles = Vec::new();
    for (name, role) in parts {
        let out = dir.path().join(name);
        new_keys(name, role, &out);
        // The request is all that leaves the participant before certification.
        let request = fs::read_to_string(out.join(REQUEST)).expect("request");
        assert!(!request.contains("PRIVATE KEY"), "{request}");
        for f in SECRET_FILES {
            let text = fs::read(out.join(f)).expect("secret");
            secrets.push((format!("{name}/{f}"), text.clone()));
            let trimmed = String::from_utf8(text).expect("utf8");
            let trimmed = trimmed.trim();
            if f == "tls.key.pem" {
                // the PEM body (base64 of the PKCS#8 DER) and the DER itself
                for line in trimmed.lines().filter(|l| !l.starts_with("-----")) {
                    if line.len() >= 16 {
                        secrets.push((format!("{name}/{f} base64"), line.as_bytes().to_vec()));
                    }
                }
                let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(trimmed.as_bytes())
                    .expect("pem");
                secrets.push((format!("{name}/{f} der"), der.secret_der().to_vec()));
            } else {
                // hex, upper-case hex and the raw bytes
                secrets.push((format!("{name}/{f} hex"), trimmed.as_bytes().to_vec()));
                secrets.push((
                    format!("{name}/{f} HEX"),
                    trimmed.to_uppercase().into_bytes(),
                ));
                secrets.push((
                    format!("{name}/{f} raw"),
                    hex::decode(trimmed).expect("hex"),
                ));
            }
        }
        let certs = cert_dir(&out);
        ca_issue(&issue_args(&ca, &out.join(REQUEST), &certs)).expect("issue");
        assert_eq!(
            names(&files_in(&certs)),
            {
                let mut v: Vec<String> = ISSUED_FILES.iter().map(|s| s.to_string()).collect();
                v.sort();
                v
            },
            "the CA writes exactly the public files"
        );
        keys_install(&KeysInstallArgs {
            key_dir: out.clone(),
            cert_dir: certs,
        })
        .expect("install");
        bundles.push(out);
    }
    assert_eq!(
        names(&files_in(&ca)),
        ca_files_before,
        "the CA directory gets no new file (index.json and crl.pem change)"
    );

    // The dealer reads only the CA's output (public files) and seals every share.
    let (p, q) = fixture_primes();
    let job = dir.path().join("job");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
    keygen_with_primes(
        &KeygenArgs {
            job_dir: job.clone(),
            threshold: 2,
            key_bits: 512,
            ca_cert: ca.join("ca.cert.pem"),
            crl: Some(ca.join("crl.pem")),
            hospitals: ["h1", "h2", "h3"]
                .iter()
                .map(|n| cert_dir(&dir.path().join(n)))
                .collect(),
        },
        &p,
        &q,
        &mut rng,
    )
    .expect("keygen");
    let tpk = load_threshold_key(&job).expect("tpk");
    for h in &bundles[2..] {
        let share = Bundle::load(h)
            .expect("bundle")
            .key_share(&job, &tpk)
            .expect("share");
        let bytes = share.to_bytes();
        secrets.push((
            format!("{} key share", h.display()),
            bytes[bytes.len() - 32..].to_vec(),
        ));
    }

    let mut public = files_in(&ca);
    public.extend(files_in(&job));
    for b in &bundles {
        public.push(b.join(REQUEST));
        public.extend(files_in(&cert_dir(b)));
    }
    for f in &public {
        let bytes = fs::read(f).expect("read");
        for (what, s) in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_slice()),
                "{} contains {what}",
                f.display()
            );
        }
    }
}

fn fresh_request(dir: &Path, name: &str, role: RoleArg) -> (PathBuf, KeyRequest) {
    let out = dir.join(name);
    new_keys(name, role, &out);
    let p = out.join(REQUEST);
    let r = read_request(&p).expect("request");
    (p, r)
}

#[test]
fn a_request_with_a_bad_proof_of_possession_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    init_ca(&ca, "c");
    let (_, a) = fresh_request(dir.path(), "a", RoleArg::Hospital);
    let (_, b) = fresh_request(dir.path(), "b", RoleArg::Hospital);
    let try_issue = |r: &KeyRequest, tag: &str| {
        let p = dir.path().join(format!("{tag}.json"));
        write_request(&p, r);
        let out = dir.path().join(format!("{tag}.certs"));
        let res = ca_issue(&issue_args(&ca, &p, &out));
        if res.is_err() {
            assert!(
                !out.exists(),
                "{tag}: nothing written for a refused request"
            );
        }
        res
    };
    let pop_refused = |r: Result<fedchain_net::pki::Issued, NetError>, tag: &str| {
        assert!(
            matches!(r, Err(NetError::ProofOfPossession { .. })),
            "{tag}: {r:?}"
        );
    };
    // another request's (valid) signature
    let mut r = a.clone();
    r.bls_proof_of_possession = b.bls_proof_of_possession.clone();
    pop_refused(try_issue(&r, "other-pop"), "other-pop");
    // someone else's BLS key claimed with a's proof (a rogue-key attempt)
    let mut r = a.clone();
    r.bls_public_key = b.bls_public_key.clone();
    pop_refused(try_issue(&r, "other-bls"), "other-bls");
    // the X25519 key replaced on the way (a share would be sealed to the attacker)
    let mut r = a.clone();
    r.x25519_public_key = b.x25519_public_key.clone();
    pop_refused(try_issue(&r, "other-x25519"), "other-x25519");
    // the role raised on the way
    let mut r = a.clone();
    r.role = Role::Aggregator;
    pop_refused(try_issue(&r, "other-role"), "other-role");
    // the name changed on the way
    let mut r = a.clone();
    r.name = "c".into();
    pop_refused(try_issue(&r, "other-name"), "other-name");
    // a signature that does not decode
    let mut r = a.clone();
    r.bls_proof_of_possession = "00".repeat(96);
    let res = try_issue(&r, "garbage-pop");
    assert!(matches!(res, Err(NetError::Request { .. })), "{res:?}");
    // a low-order X25519 key
    let mut r = a.clone();
    r.x25519_public_key = "00".repeat(32);
    let res = try_issue(&r, "low-order");
    assert!(matches!(res, Err(NetError::Request { .. })), "{res:?}");
    // unknown fields, another version, not JSON
    let p = dir.path().join("extra.json");
    let mut v = serde_json::to_value(&a).expect("value");
    v["tls_private_key"] = "x".into();
    fs::write(&p, v.to_string()).expect("write");
    let res = ca_issue(&issue_args(&ca, &p, &dir.path().join("extra.certs")));
    assert!(matches!(res, Err(NetError::Request { .. })), "{res:?}");
    let mut r = a.clone();
    r.version = 2;
    let res = try_issue(&r, "version");
    assert!(matches!(res, Err(NetError::Request { .. })), "{res:?}");
    // the untouched request is fine
    try_issue(&a, "a-ok").expect("a issues");
    assert_eq!(ca_index(&ca).expect("index").issued.len(), 1);
}

#[test]
fn a_forged_or_mismatched_csr_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    init_ca(&ca, "c");
    let (_, a) = fresh_request(dir.path(), "a", RoleArg::Hospital);
    let (_, b) = fresh_request(dir.path(), "b", RoleArg::Hospital);
    let try_issue = |r: &KeyRequest, tag: &str| {
        let p = dir.path().join(format!("{tag}.json"));
        write_request(&p, r);
        ca_issue(&issue_args(
            &ca,
            &p,
            &dir.path().join(format!("{tag}.certs")),
        ))
    };
    // b's CSR (another TLS key) in a's request: the proof of possession covers the TLS key
    let mut r = a.clone();
    r.csr = b.csr.clone();
    let res = try_issue(&r, "other-csr");
    assert!(
        matches!(res, Err(NetError::ProofOfPossession { .. })),
        "{res:?}"
    );
    // a CSR whose self-signature does not verify (one byte of the signature flipped)
    let der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(a.csr.as_bytes())
        .expect("csr pem");
    let mut bytes = der.as_ref().to_vec();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    let mut r = a.clone();
    r.csr = pem_encode("CERTIFICATE REQUEST", &bytes);
    let res = try_issue(&r, "bad-sig");
    assert!(matches!(res, Err(NetError::Csr { .. })), "{res:?}");
    // not a CSR at all
    let mut r = a.clone();
    r.csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into();
    let res = try_issue(&r, "garbage-csr");
    assert!(matches!(res, Err(NetError::Csr { .. })), "{res:?}");
    // a P-384 key, properly signed and with a valid proof of possession: still refused
    let (r, _) = hand_made_request(
        "p384",
        Role::Hospital,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        |_| {},
    );
    let res = try_issue(&r, "p384");
    assert!(matches!(res, Err(NetError::Csr { .. })), "{res:?}");
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    use std::fmt::Write;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {tag}-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", std::str::from_utf8(line).expect("ascii"));
    }
    let _ = writeln!(out, "-----END {tag}-----");
    out
}

/// A per-name seed (test keys only).
fn name_seed(name: &str) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 32] ^= b;
    }
    seed
}

/// A request built by hand (as a participant's own tooling could): a CSR with whatever
/// parameters `tweak` sets, and a valid proof of possession over its keys.
fn hand_made_request(
    name: &str,
    role: Role,
    alg: &'static rcgen::SignatureAlgorithm,
    tweak: impl FnOnce(&mut rcgen::CertificateParams),
) -> (KeyRequest, SigningKey) {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(name_seed(name));
    let tls = rcgen::KeyPair::generate_for(alg).expect("tls key");
    let bls = SigningKey::generate(&mut rng);
    let x = x25519_dalek::StaticSecret::random_from_rng(&mut rng);
    let x_pub = x25519_dalek::PublicKey::from(&x).to_bytes();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    tweak(&mut params);
    let csr = params
        .serialize_request(&tls)
        .expect("csr")
        .pem()
        .expect("pem");
    let msg = pop_message(
        name,
        role,
        &bls.verifying_key(),
        &x_pub,
        tls.public_key_raw(),
    );
    (
        KeyRequest {
            version: 1,
            name: name.into(),
            role,
            csr,
            bls_public_key: hex::encode(bls.verifying_key().to_bytes()),
            bls_proof_of_possession: hex::encode(bls.sign(&msg).to_bytes()),
            x25519_public_key: hex::encode(x_pub),
        },
        bls,
    )
}

#[test]
fn ca_issue_overrides_what_the_csr_asks_for() {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    init_ca(&ca, "consortium");
    // The CSR asks for extra names, to be a CA, for code signing and for certificate signing.
    let (r, bls) = hand_made_request("h1", Role::Hospital, &rcgen::PKCS_ECDSA_P256_SHA256, |p| {
        p.subject_alt_names.push(rcgen::SanType::DnsName(
            "coordinator".try_into().expect("dns"),
        ));
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::CodeSigning];
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "coordinator");
        dn.push(rcgen::DnType::OrganizationName, "another consortium");
        p.distinguished_name = dn;
    });
    // (the CSR really asks for it)
    let asked = rcgen::CertificateSigningRequestParams::from_pem(&r.csr).expect("csr");
    assert_eq!(asked.params.subject_alt_names.len(), 3);
    assert!(matches!(asked.params.is_ca, rcgen::IsCa::Ca(_)));
    assert_eq!(
        asked.params.extended_key_usages,
        [rcgen::ExtendedKeyUsagePurpose::CodeSigning]
    );
    let p = dir.path().join("greedy.json");
    write_request(&p, &r);
    let out = dir.path().join("greedy.certs");
    let issued = ca_issue(&issue_args(&ca, &p, &out)).expect("issued");
    assert_eq!(issued.identity.name, "h1");
    let pem = fs::read(out.join("tls.cert.pem")).expect("cert");
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse");
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("utf8").to_string())
        .collect();
    assert_eq!(cn, ["h1"]);
    let o: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|a| a.as_str().expect("utf8").to_string())
        .collect();
    assert_eq!(o, ["consortium"]);
    let mut sans = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for g in &san.general_names {
                    match g {
                        GeneralName::DNSName(d) => sans.push(d.to_string()),
                        other => panic!("unexpected SAN {other:?}"),
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => assert!(!bc.ca, "not a CA"),
            ParsedExtension::KeyUsage(ku) => {
                assert!(ku.digital_signature());
                assert!(!ku.key_cert_sign() && !ku.crl_sign());
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.server_auth && eku.client_auth);
                assert!(!eku.code_signing && !eku.any && eku.other.is_empty());
            }
            _ => {}
        }
    }
    assert_eq!(sans, ["h1"]);
    let id = fedchain_net::pki::identity_from_cert(&der).expect("identity");
    assert_eq!(id.role, Role::Hospital);
    assert_eq!(id.bls_key, bls.verifying_key());
    // The certificate carries the CSR's key (and only that is taken from it).
    let csr = rcgen::CertificateSigningRequestParams::from_pem(&r.csr).expect("csr");
    use rcgen::PublicKeyData;
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        csr.public_key.der_bytes()
    );

    // A CSR that asks for its own identity extension (say, a validator's role) is refused.
    let (r, _) = hand_made_request("h2", Role::Hospital, &rcgen::PKCS_ECDSA_P256_SHA256, |p| {
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            fedchain_net::pki::IDENTITY_EXTENSION_OID,
            fedchain_net::pki::identity_extension_value(
                Role::Validator,
                &SigningKey::from_seed(&[1; 32]).verifying_key(),
            ),
        )];
    });
    let p = dir.path().join("ext.json");
    write_request(&p, &r);
    let res = ca_issue(&issue_args(&ca, &p, &dir.path().join("ext.certs")));
    assert!(matches!(res, Err(NetError::Csr { .. })), "{res:?}");
}

#[test]
fn missing_and_corrupt_cas_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (request, _) = fresh_request(dir.path(), "h1", RoleArg::Hospital);
    let args = |d: &Path| issue_args(d, &request, &dir.path().join("out"));
    let r = ca_issue(&args(&dir.path().join("none")));
    assert!(matches!(r, Err(NetError::CaMissing { .. })), "{r:?}");

    let ca = dir.path().join("ca");
    init_ca(&ca, "c");
    fs::write(ca.join("index.json"), b"{ not json").expect("write");
    let r = ca_issue(&args(&ca));
    assert!(matches!(r, Err(NetError::CaCorrupt { .. })), "{r:?}");

    let ca2 = dir.path().join("ca2");
    init_ca(&ca2, "c");
    let other = dir.path().join("ca3");
    init_ca(&other, "d");
    fs::copy(other.join("ca.key.pem"), ca2.join("ca.key.pem")).expect("swap key");
    let r = ca_issue(&args(&ca2));
    assert!(
        matches!(&r, Err(NetError::CaCorrupt { reason, .. }) if reason.contains("does not match")),
        "{r:?}"
    );
    // no request file, a huge request file
    let r = ca_issue(&issue_args(
        &ca2,
        &dir.path().join("nope.json"),
        &dir.path().join("o"),
    ));
    assert!(matches!(r, Err(NetError::Io { .. })), "{r:?}");
    let huge = dir.path().join("huge.json");
    fs::write(&huge, vec![b' '; 100 << 10]).expect("write");
    let r = ca_issue(&issue_args(&ca2, &huge, &dir.path().join("o")));
    assert!(matches!(r, Err(NetError::Io { .. })), "{r:?}");
}

#[test]
fn a_tampered_bundle_is_refused() {
    let c = Consortium::new();
    // identity.json claims another role than the certificate.
    let p = c.h1.join("identity.json");
    let s = fs::read_to_string(&p)
        .expect("read")
        .replace("Hospital", "Aggregator");
    fs::write(&p, s).expect("write");
    let r = Bundle::load(&c.h1);
    assert!(matches!(r, Err(NetError::Bundle { .. })), "{r:?}");
}

#[test]
fn a_bundle_with_another_partys_secret_is_refused() {
    let c = Consortium::new();
    // each secret of h1 replaced by h2's: refused, naming the file
    for f in SECRET_FILES {
        let saved = fs::read(c.h1.join(f)).expect("read");
        fs::copy(c.h2.join(f), c.h1.join(f)).expect("copy");
        let r = Bundle::load(&c.h1);
        assert!(
            matches!(&r, Err(NetError::Bundle { path, .. }) if path.ends_with(f) || path == &c.h1),
            "{f}: {r:?}"
        );
        fs::write(c.h1.join(f), saved).expect("restore");
        Bundle::load(&c.h1).expect("restored");
    }
    // A freshly generated TLS key (same name) does not match the certificate either.
    let other = c.dir.path().join("other-h1");
    new_keys("h1", RoleArg::Hospital, &other);
    fs::copy(other.join("tls.key.pem"), c.h1.join("tls.key.pem")).expect("copy");
    let r = Bundle::load(&c.h1);
    assert!(
        matches!(&r, Err(NetError::Bundle { reason, .. }) if reason.contains("not the key of the certificate")),
        "{r:?}"
    );
}

#[test]
fn keys_install_refuses_a_certificate_for_other_keys() {
    let c = Consortium::new();
    // h2's certificate into a fresh key directory named h2
    let k = c.dir.path().join("h2-again");
    new_keys("h2", RoleArg::Hospital, &k);
    let r = keys_install(&KeysInstallArgs {
        key_dir: k.clone(),
        cert_dir: cert_dir(&c.h2),
    });
    assert!(matches!(r, Err(NetError::Bundle { .. })), "{r:?}");
    assert!(!k.join("tls.cert.pem").exists(), "nothing installed");
    // a certificate that does not verify against the CA certificate that came with it
    let mixed = c.dir.path().join("mixed.certs");
    fs::create_dir_all(&mixed).expect("dir");
    for f in ISSUED_FILES {
        fs::copy(cert_dir(&c.h1).join(f), mixed.join(f)).expect("copy");
    }
    fs::copy(
        cert_dir(&c.intruder).join("ca.cert.pem"),
        mixed.join("ca.cert.pem"),
    )
    .expect("copy");
    fs::remove_file(mixed.join("crl.pem")).expect("rm crl");
    let k1 = c.dir.path().join("h1-copy");
    fs::create_dir_all(&k1).expect("dir");
    for f in SECRET_FILES.iter().chain(&[REQUEST]) {
        fs::copy(c.h1.join(f), k1.join(f)).expect("copy");
    }
    let r = keys_install(&KeysInstallArgs {
        key_dir: k1.clone(),
        cert_dir: mixed,
    });
    assert!(matches!(r, Err(NetError::Untrusted { .. })), "{r:?}");
    assert!(!k1.join("tls.cert.pem").exists(), "nothing installed");
}

fn fixture_primes() -> (Integer, Integer) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crypto/tests/fixtures/safe_primes_512.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(path).expect("fixture")).expect("json");
    let int = |k: &str| Integer::from_str_radix(v[k].as_str().expect("hex"), 16).expect("int");
    (int("p"), int("q"))
}

#[test]
fn keygen_seals_one_share_to_each_hospital_and_t_of_them_decrypt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    init_ca(&ca, "c");
    let hs: Vec<_> = (1..=3)
        .map(|i| {
            issue(
                &ca,
                &format!("h{i}"),
                RoleArg::Hospital,
                &dir.path().join(format!("h{i}")),
            )
        })
        .collect();
    let coord = issue(&ca, "coord", RoleArg::Aggregator, &dir.path().join("coord"));
    let (p, q) = fixture_primes();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
    let job = dir.path().join("job");
    // The dealer gets the CA's output directories: public files only.
    let public: Vec<PathBuf> = hs.iter().map(|h| cert_dir(h)).collect();

    // Only hospitals hold shares.
    let mut args = KeygenArgs {
        job_dir: job.clone(),
        threshold: 2,
        key_bits: 512,
        ca_cert: ca.join("ca.cert.pem"),
        crl: None,
        hospitals: vec![public[0].clone(), cert_dir(&coord)],
    };
    let r = keygen_with_primes(&args, &p, &q, &mut rng);
    assert!(matches!(r, Err(NetError::Keygen(_))), "{r:?}");
    args.hospitals = public.clone();
    args.threshold = 4;
    assert!(matches!(
        keygen_with_primes(&args, &p, &q, &mut rng),
        Err(NetError::Keygen(_))
    ));
    args.threshold = 2;
    // Certificates of another CA are refused.
    let other = dir.path().join("other-ca");
    init_ca(&other, "other");
    args.ca_cert = other.join("ca.cert.pem");
    let r = keygen_with_primes(&args, &p, &q, &mut rng);
    assert!(matches!(r, Err(NetError::Untrusted { .. })), "{r:?}");
    args.ca_cert = ca.join("ca.cert.pem");
    // An X25519 key swapped in identity.json on the way to the dealer is refused.
    let swapped = dir.path().join("swapped");
    fs::create_dir_all(&swapped).expect("dir");
    for f in ISSUED_FILES {
        fs::copy(public[0].join(f), swapped.join(f)).expect("copy");
    }
    let id0 = fs::read_to_string(public[0].join("identity.json")).expect("id");
    let id1: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(public[1].join("identity.json")).expect("id"))
            .expect("json");
    let mut v: serde_json::Value = serde_json::from_str(&id0).expect("json");
    v["x25519_public_key"] = id1["x25519_public_key"].clone();
    fs::write(swapped.join("identity.json"), v.to_string()).expect("write");
    args.hospitals = vec![swapped, public[1].clone(), public[2].clone()];
    let r = keygen_with_primes(&args, &p, &q, &mut rng);
    assert!(
        matches!(r, Err(NetError::ProofOfPossession { .. })),
        "{r:?}"
    );
    args.hospitals = public.clone();
    // With the CA's current CRL, a revoked hospital is refused.
    let spare = issue(&ca, "h4", RoleArg::Hospital, &dir.path().join("h4"));
    ca_revoke(&CaRevokeArgs {
        dir: ca.clone(),
        name: "h4".into(),
    })
    .expect("revoke");
    args.crl = Some(ca.join("crl.pem"));
    args.hospitals.push(cert_dir(&spare));
    let r = keygen_with_primes(&args, &p, &q, &mut rng);
    assert!(
        matches!(&r, Err(NetError::Untrusted { reason, .. }) if reason.contains("evoked")),
        "{r:?}"
    );
    args.hospitals = public.clone();

    let out = keygen_with_primes(&args, &p, &q, &mut rng).expect("keygen");
    let tpk = load_threshold_key(&job).expect("public key");
    assert_eq!(tpk, out.public);
    assert!(job.join("committee.json").exists());
    for h in &hs {
        assert!(
            !h.join("key_share.fc").exists(),
            "nothing written into a bundle"
        );
    }
    let shares: Vec<KeyShare> = hs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let b = Bundle::load(h).expect("bundle");
            assert!(share_path(&job, &b.identity.name).exists());
            let s = b.key_share(&job, &tpk).expect("share");
            assert_eq!(s.holder(), i as u32 + 1, "committee order");
            assert_eq!(out.committee[i].name, b.identity.name);
            assert_eq!(out.committee[i].address, b.identity.address);
            s
        })
        .collect();
    assert_ne!(shares[0], shares[1]);

    // Dealing again into the same job directory is refused.
    assert!(matches!(
        keygen_with_primes(&args, &p, &q, &mut rng),
        Err(NetError::Keygen(_))
    ));

    // Encrypt, decrypt-share with holders 1 and 3, combine.
    let m = Integer::from(123_456_789u64);
    let ct = tpk.public_key().encrypt(&m, &mut rng).expect("encrypt");
    let cts = [ct];
    let d1 = shares[0]
        .decrypt_share(&tpk, &cts, &mut rng)
        .expect("share 1");
    let d3 = shares[2]
        .decrypt_share(&tpk, &cts, &mut rng)
        .expect("share 3");
    let plain = tpk.combine(&cts, &[d1.clone(), d3]).expect("combine");
    assert_eq!(plain, vec![m]);
    assert!(tpk.combine(&cts, &[d1]).is_err(), "one share is not enough");
}

#[test]
fn a_sealed_share_opens_only_for_its_holder_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    init_ca(&ca, "c");
    let hs: Vec<_> = (1..=3)
        .map(|i| {
            issue(
                &ca,
                &format!("h{i}"),
                RoleArg::Hospital,
                &dir.path().join(format!("h{i}")),
            )
        })
        .collect();
    let (p, q) = fixture_primes();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let deal_into = |job: &Path, rng: &mut rand_chacha::ChaCha20Rng| {
        keygen_with_primes(
            &KeygenArgs {
                job_dir: job.to_path_buf(),
                threshold: 2,
                key_bits: 512,
                ca_cert: ca.join("ca.cert.pem"),
                crl: None,
                hospitals: hs.iter().map(|h| cert_dir(h)).collect(),
            },
            &p,
            &q,
            rng,
        )
        .expect("keygen")
    };
    let job = dir.path().join("job");
    let job2 = dir.path().join("job2");
    deal_into(&job, &mut rng);
    deal_into(&job2, &mut rng);
    let tpk = load_threshold_key(&job).expect("tpk");
    let tpk2 = load_threshold_key(&job2).expect("tpk2");
    assert_ne!(tpk, tpk2);
    let b1 = Bundle::load(&hs[0]).expect("h1");
    let b2 = Bundle::load(&hs[1]).expect("h2");
    let s1 = share_path(&job, "h1");
    let s2 = share_path(&job, "h2");
    let original = fs::read(&s2).expect("h2 share");
    let restore = || fs::write(&s2, &original).expect("restore");

    // h2 cannot open h1's share, directly or when it is put in its place.
    let r = b2.open_share(&s1, &tpk, 1);
    assert!(
        matches!(r, Err(NetError::ShareWrongRecipient { .. })),
        "{r:?}"
    );
    fs::copy(&s1, &s2).expect("copy");
    let r = b2.key_share(&job, &tpk);
    assert!(
        matches!(r, Err(NetError::ShareWrongRecipient { .. })),
        "{r:?}"
    );
    restore();
    b2.key_share(&job, &tpk).expect("h2's own share");

    // Every flipped byte is refused: magic and version (tampered), holder (another holder),
    // fingerprint (another key), recipient (another recipient), ephemeral key and ciphertext
    // (authentication fails).
    for i in 0..original.len() {
        let mut t = original.clone();
        t[i] ^= 0x80;
        fs::write(&s2, &t).expect("write");
        let r = b2.key_share(&job, &tpk);
        match i {
            0..=4 | 73.. => assert!(
                matches!(r, Err(NetError::ShareTampered { .. })),
                "byte {i}: {r:?}"
            ),
            5..=40 => assert!(
                matches!(r, Err(NetError::ShareOtherKey { .. })),
                "byte {i}: {r:?}"
            ),
            _ => assert!(
                matches!(r, Err(NetError::ShareWrongRecipient { .. })),
                "byte {i}: {r:?}"
            ),
        }
    }
    // truncated
    fs::write(&s2, &original[..original.len() - 1]).expect("write");
    let r = b2.key_share(&job, &tpk);
    assert!(matches!(r, Err(NetError::ShareTampered { .. })), "{r:?}");
    // The recipient field rewritten to h2's own key on h1's share: addressed to h2, but
    // sealed to h1, so it does not open.
    let mut t = fs::read(&s1).expect("h1 share");
    let x2 = hex::decode(&b2.identity.x25519_public_key).expect("hex");
    t[41..73].copy_from_slice(&x2);
    t[5..9].copy_from_slice(&2u32.to_be_bytes());
    fs::write(&s2, &t).expect("write");
    let r = b2.key_share(&job, &tpk);
    assert!(matches!(r, Err(NetError::ShareTampered { .. })), "{r:?}");
    restore();

    // A share of another job's key is refused.
    fs::copy(share_path(&job2, "h2"), &s2).expect("copy");
    let r = b2.key_share(&job, &tpk);
    assert!(matches!(r, Err(NetError::ShareOtherKey { .. })), "{r:?}");
    restore();
    b1.key_share(&job, &tpk).expect("h1");
    b1.key_share(&job2, &tpk2).expect("h1 in job 2");
    // the right file with the wrong threshold key
    let r = b1.key_share(&job, &tpk2);
    assert!(matches!(r, Err(NetError::ShareOtherKey { .. })), "{r:?}");
}
