//! The key ceremony through the command line: every party generates its own keys, the CA
//! certifies requests, the dealer seals each share to its hospital (threat model G6).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::cluster::{bin, fedchain, participant};

/// Run `fedchain args`, expecting it to fail; gives its stderr.
fn fedchain_fails(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run fedchain");
    assert!(!out.status.success(), "fedchain {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn g6_the_command_line_ceremony_keeps_every_secret_with_its_owner() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fedchain(d, &["ca", "init", "--dir", "ca", "--name", "t"]);
    for i in 0..3 {
        participant(
            d,
            "ca",
            &format!("hospital-{i}"),
            "hospital",
            &format!("keys/hospital-{i}"),
            &format!("issued/hospital-{i}"),
        );
    }
    let mut secrets = Vec::new();
    for i in 0..3 {
        let k = d.join(format!("keys/hospital-{i}"));
        assert_eq!(
            fs::metadata(&k).expect("dir").permissions().mode() & 0o777,
            0o700
        );
        for f in ["tls.key.pem", "bls.key", "share.key"] {
            let p = k.join(f);
            assert_eq!(
                fs::metadata(&p).expect("secret").permissions().mode() & 0o777,
                0o600,
                "{}",
                p.display()
            );
            let text = fs::read_to_string(&p).expect("read");
            for line in text.lines().filter(|l| !l.starts_with("-----")) {
                secrets.push((p.clone(), line.trim().to_string()));
            }
        }
        fedchain_net::Bundle::load(&k).expect("an installed bundle");
    }

    // A request altered on its way to the CA (the X25519 key replaced, so that the attacker
    // would receive the share) is refused, naming the proof of possession.
    fedchain(
        d,
        &[
            "keys",
            "new",
            "--name",
            "late",
            "--role",
            "hospital",
            "--out",
            "keys/late",
        ],
    );
    let req = d.join("keys/late/request.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&req).expect("read")).expect("json");
    let other: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(d.join("keys/hospital-0/request.json")).expect("read"),
    )
    .expect("json");
    v["x25519_public_key"] = other["x25519_public_key"].clone();
    fs::write(d.join("forged.json"), v.to_string()).expect("write");
    let err = fedchain_fails(
        d,
        &[
            "ca",
            "issue",
            "--dir",
            "ca",
            "--request",
            "forged.json",
            "--out",
            "issued/late",
        ],
    );
    assert!(err.contains("proof of possession"), "{err}");
    assert!(!d.join("issued/late").exists());

    // The dealer: public files only; it says it is a trusted dealer.
    let out = Command::new(bin())
        .current_dir(d)
        .args([
            "keygen",
            "--job-dir",
            "job",
            "--threshold",
            "2",
            "--key-bits",
            "512",
            "--ca-cert",
            "ca/ca.cert.pem",
            "--hospital",
            "issued/hospital-0",
            "--hospital",
            "issued/hospital-1",
            "--hospital",
            "issued/hospital-2",
        ])
        .output()
        .expect("keygen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("trusted dealer") && stderr.contains("isolated ceremony"),
        "{stderr}"
    );

    // Nothing the CA, the dealer or the network saw holds a secret.
    let mut public = Vec::new();
    for p in ["ca", "issued", "job"] {
        all_files(&d.join(p), &mut public);
    }
    for i in 0..3 {
        public.push(d.join(format!("keys/hospital-{i}/request.json")));
    }
    for f in &public {
        let text = String::from_utf8_lossy(&fs::read(f).expect("read")).into_owned();
        for (from, s) in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{} holds a secret of {}",
                f.display(),
                from.display()
            );
        }
    }

    // Each hospital opens its own share; hospital-1 cannot open hospital-0's.
    let tpk = fedchain_net::pki::load_threshold_key(&d.join("job")).expect("tpk");
    let b0 = fedchain_net::Bundle::load(&d.join("keys/hospital-0")).expect("bundle");
    let b1 = fedchain_net::Bundle::load(&d.join("keys/hospital-1")).expect("bundle");
    assert_eq!(
        b0.key_share(&d.join("job"), &tpk).expect("share").holder(),
        1
    );
    assert_eq!(
        b1.key_share(&d.join("job"), &tpk).expect("share").holder(),
        2
    );
    let r = b1.open_share(&d.join("job/shares/hospital-0.share.enc"), &tpk, 1);
    assert!(
        matches!(r, Err(fedchain_net::NetError::ShareWrongRecipient { .. })),
        "{r:?}"
    );
}
