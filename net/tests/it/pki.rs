use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use fedchain_crypto::{Integer, KeyShare};
use fedchain_ledger::types::Role;
use fedchain_net::pki::{
    ca_index, ca_issue, ca_revoke, keygen_with_primes, load_threshold_key, CaIssueArgs,
    CaRevokeArgs, KeygenArgs, RoleArg, KEY_SHARE,
};
use fedchain_net::{Bundle, NetError};
use rand::SeedableRng;

use crate::common::{init_ca, issue, Consortium};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn ca_init_issue_revoke_on_disk() {
    let c = Consortium::new();
    assert_eq!(mode(&c.ca.join("ca.key.pem")), 0o600);
    for f in ["tls.key.pem", "bls.key"] {
        assert_eq!(mode(&c.h1.join(f)), 0o600, "{f}");
    }
    for f in ["tls.cert.pem", "ca.cert.pem", "crl.pem", "identity.json"] {
        assert!(c.h1.join(f).exists(), "{f}");
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

    // Duplicate names, unknown names, double revocation, re-init, bad names.
    let dup = ca_issue(&CaIssueArgs {
        dir: c.ca.clone(),
        name: "h1".into(),
        role: RoleArg::Validator,
        out: c.dir.path().join("dup"),
        days: 30,
    });
    assert!(
        matches!(dup, Err(NetError::DuplicateName { ref name }) if name == "h1"),
        "{dup:?}"
    );
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
    let bad = ca_issue(&CaIssueArgs {
        dir: c.ca.clone(),
        name: "Bad_Name".into(),
        role: RoleArg::Hospital,
        out: c.dir.path().join("bad"),
        days: 30,
    });
    assert!(matches!(bad, Err(NetError::InvalidName { .. })), "{bad:?}");
}

#[test]
fn missing_and_corrupt_cas_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = |d: &Path| CaIssueArgs {
        dir: d.to_path_buf(),
        name: "h1".into(),
        role: RoleArg::Hospital,
        out: dir.path().join("out"),
        days: 30,
    };
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
fn keygen_puts_one_share_in_each_hospital_bundle_and_t_of_them_decrypt() {
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

    // Only hospitals hold shares.
    let mut args = KeygenArgs {
        job_dir: job.clone(),
        threshold: 2,
        key_bits: 512,
        hospitals: vec![hs[0].clone(), coord],
    };
    let r = keygen_with_primes(&args, &p, &q, &mut rng);
    assert!(matches!(r, Err(NetError::Keygen(_))), "{r:?}");
    args.hospitals = hs.clone();
    args.threshold = 4;
    assert!(matches!(
        keygen_with_primes(&args, &p, &q, &mut rng),
        Err(NetError::Keygen(_))
    ));
    args.threshold = 2;

    let out = keygen_with_primes(&args, &p, &q, &mut rng).expect("keygen");
    let tpk = load_threshold_key(&job).expect("public key");
    assert_eq!(tpk, out.public);
    assert!(job.join("committee.json").exists());
    assert!(
        !job.join(KEY_SHARE).exists(),
        "no share in the job directory"
    );
    let shares: Vec<KeyShare> = hs
        .iter()
        .enumerate()
        .map(|(i, h)| {
            assert_eq!(mode(&h.join(KEY_SHARE)), 0o600);
            let b = Bundle::load(h).expect("bundle");
            let s = b.key_share(&tpk).expect("share");
            assert_eq!(s.holder(), i as u32 + 1, "committee order");
            assert_eq!(out.committee[i].name, b.identity.name);
            assert_eq!(out.committee[i].address, b.identity.address);
            s
        })
        .collect();
    assert_ne!(shares[0], shares[1]);

    // Dealing again into bundles that already hold a share is refused.
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
