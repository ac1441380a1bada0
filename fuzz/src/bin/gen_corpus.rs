//! Writes the seed corpora (`fuzz/corpus/<target>/`) and the PKI fixtures (`fuzz/fixtures/pki/`)
//! with the real encoders: a few valid inputs per target, so the fuzzers start from inside
//! every decoder instead of at its first length check.
//!
//! Run it with `bench/fuzz.sh --gen-corpus`. It replaces the files it writes and leaves others
//! alone (regression inputs, for one). Everything but the PKI files is deterministic (see the
//! library's docs). The PKI files come from a fresh CA, so they are only made when
//! `fixtures/pki/ca.cert.pem` does not exist yet or `FUZZ_NEW_PKI=1` is set (seeds and
//! fixtures are then replaced together: the seeds must be issued by the fixture CA).
//!
//! It is built by `cargo fuzz build` like the targets, with coverage instrumentation, and an
//! instrumented binary needs libFuzzer's runtime linked in; so it is a libFuzzer binary whose
//! initialization hook does the work and exits before any input is run.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};

use fedchain_coordinator::SimulateConfig;
use fedchain_crypto::{knowledge, CiphertextVector, Encode, Encryptor, Integer, ProvenVector};
use fedchain_fuzz as fx;
use fedchain_ledger::types::{encode, Certificate};
use fedchain_ledger::{Address, Hash, SignedTx, TxKind};
use fedchain_net::pki::{self, CommitteeMember, RoleArg};
use fedchain_net::wire::{FrameKind, Header, FLAG_PAYLOAD};
use fedchain_node::config::{CoordinatorConfig, WorkerConfig};
use fedchain_node::proto::{Down, Up};
use fedchain_worker::{
    Ack, CoordinatorMsg, Outcome, Refusal, RoundOpen, RoundSummary, ShareMsg, ShareRequest,
    SubmissionMsg, WorkerMsg, PROTOCOL_VERSION,
};
use x25519_dalek::{PublicKey as XPublicKey, StaticSecret};

type Seeds = Vec<(String, Vec<u8>)>;

libfuzzer_sys::fuzz_target!(
    init: generate_and_exit(),
    |_data: &[u8]| {}
);

fn generate_and_exit() {
    generate(&PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    std::process::exit(0);
}

fn generate(fuzz_dir: &Path) {
    let repo = fuzz_dir.join("..");
    let pki_dir = fuzz_dir.join("fixtures/pki");
    let new_pki = std::env::var_os("FUZZ_NEW_PKI").is_some_and(|v| v == "1")
        || !pki_dir.join("ca.cert.pem").exists();
    let pki_files = if new_pki {
        pki_seeds(&pki_dir)
    } else {
        println!("pki_files: keeping the seeds issued by fixtures/pki/ca.cert.pem (FUZZ_NEW_PKI=1 remakes them)");
        Vec::new()
    };

    let (up, down) = envelopes();
    let mut frames: Seeds = Vec::new();
    for (name, body) in up.iter().chain(&down) {
        frames.push((name.clone(), frame(FrameKind::Message, body)));
    }
    frames.push(("request-hello".into(), frame(FrameKind::Request, &up[1].1)));
    frames.push((
        "response-welcome".into(),
        frame(FrameKind::Response, &down[0].1),
    ));
    frames.push((
        "error".into(),
        frame(FrameKind::Error, b"refused: unknown job"),
    ));
    let mut payload_class = frame(FrameKind::Message, &up[2].1);
    payload_class[6] = FLAG_PAYLOAD;
    frames.push(("payload-class-submit".into(), payload_class));

    let mut envelope = up.clone();
    envelope.extend(down.clone());

    let targets: Vec<(&str, Seeds)> = vec![
        ("wire_frame", frames),
        ("node_envelope", envelope),
        ("service_msg", service_msgs()),
        ("ledger_tx", txs()),
        ("ledger_block", blocks()),
        ("ledger_state", states()),
        ("crypto_vector", vectors()),
        ("crypto_share", shares()),
        ("crypto_keys", keys()),
        ("sealed_share", sealed()),
        ("pki_files", pki_files),
        ("config_toml", configs(&repo)),
    ];
    check(&targets);
    let mut total = 0;
    for (target, seeds) in targets {
        let dir = fuzz_dir.join("corpus").join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes).expect("write seed");
            total += bytes.len();
        }
        println!("{target:14} {:2} seeds", seeds.len());
    }
    println!(
        "{total} bytes of seeds under {}",
        fuzz_dir.join("corpus").display()
    );
}

/// The seeds are valid where the targets can tell: payloads and shares verify, the sealed
/// share opens, the requests pass `ca issue`'s checks, the transactions' signatures verify and
/// the next block checks and applies on the fixture state.
fn check(targets: &[(&str, Seeds)]) {
    use fedchain_crypto::{Decode, KeyShare, VectorDecryptionShare};
    let seeds = |t: &str| {
        targets
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, s)| s.clone())
            .expect("target")
    };
    let pk = fx::pk();
    for (name, b) in seeds("crypto_vector") {
        if name.starts_with("proven") {
            let v = ProvenVector::from_bytes(pk, &b).expect("decode");
            v.verify(pk, &fx::submission_context(0)).expect(&name);
        }
    }
    for (name, b) in seeds("crypto_share") {
        let sh = VectorDecryptionShare::from_bytes(pk, &b).expect("decode");
        fx::tpk().verify_share(fx::ciphertexts(), &sh).expect(&name);
    }
    let secret = StaticSecret::from(fx::SHARE_SECRET);
    let (_, sealed1) = &seeds("sealed_share")[0];
    let plain = fedchain_net::sealed::open(&secret, pk.fingerprint(), 1, sealed1).expect("open");
    KeyShare::from_bytes(&plain)
        .expect("decode")
        .check_key(fx::tpk())
        .expect("check key");
    for (name, b) in seeds("pki_files") {
        // (empty when the PKI seeds are kept)
        if name.ends_with("request.json") {
            let p = Path::new(&name);
            let req = pki::parse_request(p, &b).expect(&name);
            pki::verify_request(p, &req).expect(&name);
        }
    }
    for (name, b) in seeds("ledger_tx") {
        let tx: SignedTx = fedchain_ledger::types::decode("tx", &b).expect(&name);
        assert!(tx.verify(), "{name}");
    }
    let l = fx::ledger();
    fedchain_ledger::state::check_block_crypto(&l.validator_keys(), &l.next, fedchain_ledger::state::Certs::Required(None))
        .expect("next block");
    fedchain_ledger::state::apply_checked_block(&l.state, &l.head_hash, &l.next, &|_: &Hash| true)
        .expect("next block applies");
}

fn wire(v: &impl serde::Serialize) -> Vec<u8> {
    fedchain_net::wire::encode(v).expect("encode")
}

fn frame(kind: FrameKind, body: &[u8]) -> Vec<u8> {
    let mut f = Header {
        kind,
        flags: 0,
        len: body.len() as u64,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(body);
    f
}

/// A valid submission payload of hospital `i`: `len` ciphertexts with their proof of plaintext
/// knowledge in hospital `i`'s context of the fixture round (seeded: a test fixture).
fn proven(i: usize, len: u32) -> ProvenVector {
    let pk = fx::pk();
    let enc = Encryptor::new(pk.clone(), 4).expect("encryptor");
    let plaintexts: Vec<Integer> = (1..=len)
        .map(|m| Integer::from(m * 1000 + i as u32))
        .collect();
    let mut r = fx::rng(0x50 + i as u64 + 16 * u64::from(len));
    let e = enc
        .encrypt_all_with_witness(&plaintexts, &mut r)
        .expect("encrypt");
    let proof = knowledge::prove(
        pk,
        &e.ciphertexts,
        &plaintexts,
        &e.exponents,
        &fx::submission_context(i),
        &mut r,
    )
    .expect("prove");
    ProvenVector {
        ciphertexts: CiphertextVector(e.ciphertexts),
        proof,
    }
}

fn submission(i: usize) -> SubmissionMsg {
    let payload = proven(i, 3).to_bytes(fx::pk());
    let l = fx::ledger();
    SubmissionMsg {
        tx: fx::submit(&l.hospitals[i], 3, 100 + i as u64, &payload),
        payload,
    }
}

fn share_msg(holder: u32) -> ShareMsg {
    let payload = fx::decryption_share(holder).to_bytes(fx::pk());
    let l = fx::ledger();
    ShareMsg {
        tx: fx::sign_tx(
            &l.hospitals[holder as usize - 1],
            4,
            TxKind::DecryptionShare {
                job: fx::JOB,
                round: fx::ROUND,
                payload: Hash::sha256(&payload),
            },
        ),
        payload,
    }
}

fn hello(i: usize) -> WorkerMsg {
    WorkerMsg::Hello {
        version: PROTOCOL_VERSION,
        address: fx::addr(&fx::ledger().hospitals[i]),
        job: fx::JOB,
    }
}

fn coordinator_msgs() -> Vec<(&'static str, CoordinatorMsg)> {
    let l = fx::ledger();
    let a = |i: usize| fx::addr(&l.hospitals[i]);
    vec![
        (
            "welcome",
            CoordinatorMsg::Welcome {
                job: fx::JOB,
                nonce: 2,
                submitted: Some(0),
                shared: None,
            },
        ),
        (
            "refused",
            CoordinatorMsg::Refused {
                reason: Refusal::SenderMismatch {
                    peer: a(0),
                    claimed: a(1),
                },
            },
        ),
        (
            "round-open",
            CoordinatorMsg::RoundOpen(RoundOpen {
                job: fx::JOB,
                round: fx::ROUND,
                params: vec![0.0, -1.5, 2.25, f32::MIN_POSITIVE],
                deadline: 10,
            }),
        ),
        (
            "share-request",
            CoordinatorMsg::ShareRequest(ShareRequest {
                job: fx::JOB,
                round: fx::ROUND,
                submissions: vec![submission(0), submission(1)],
            }),
        ),
        (
            "ack",
            CoordinatorMsg::Ack(Ack {
                digest: Hash::sha256(b"payload"),
                outcome: Outcome::Rejected {
                    reason: Refusal::Late {
                        deadline: 10,
                        next: 11,
                    },
                },
            }),
        ),
        (
            "round-result",
            CoordinatorMsg::RoundResult(RoundSummary {
                job: fx::JOB,
                round: fx::ROUND,
                committed: true,
                accepted: vec![a(0), a(1), a(2)],
                missing: vec![a(3)],
                share_providers: vec![a(0), a(1)],
                new_params_hash: Some(Hash::sha256(b"theta_1")),
                height: 7,
            }),
        ),
    ]
}

fn service_msgs() -> Seeds {
    let mut s: Seeds = vec![
        ("worker-hello".into(), wire(&hello(0))),
        (
            "worker-submit".into(),
            wire(&WorkerMsg::Submit(submission(0))),
        ),
        ("worker-share".into(), wire(&WorkerMsg::Share(share_msg(1)))),
    ];
    for (name, m) in coordinator_msgs() {
        s.push((format!("coordinator-{name}"), wire(&m)));
    }
    s
}

/// `Up` and `Down` bodies (the first three `Up`s are enroll, hello, submit).
fn envelopes() -> (Seeds, Seeds) {
    let l = fx::ledger();
    let up = vec![
        (
            "up-enroll".into(),
            wire(&Up::Enroll {
                register: l.blocks[0].txs[1].clone(),
                join: l.blocks[2].txs[0].clone(),
            }),
        ),
        ("up-hello".into(), wire(&Up::Msg(hello(1)))),
        (
            "up-submit".into(),
            wire(&Up::Msg(WorkerMsg::Submit(submission(1)))),
        ),
        (
            "up-share".into(),
            wire(&Up::Msg(WorkerMsg::Share(share_msg(2)))),
        ),
    ];
    let mut down: Seeds = coordinator_msgs()
        .into_iter()
        .filter(|(n, _)| *n != "share-request")
        .map(|(n, m)| (format!("down-{n}"), wire(&Down::Msg(m))))
        .collect();
    down.push(("down-finished".into(), wire(&Down::Finished { rounds: 3 })));
    (up, down)
}

fn txs() -> Seeds {
    let l = fx::ledger();
    let mut s: Seeds = Vec::new();
    for (b, block) in l.blocks.iter().chain(std::iter::once(&l.next)).enumerate() {
        for (t, tx) in block.txs.iter().enumerate().take(2) {
            s.push((format!("block{}-tx{t}", b + 1), encode(tx)));
        }
    }
    s.extend(
        fx::sample_txs()
            .iter()
            .map(|(n, t)| (n.to_string(), encode(t))),
    );
    s
}

fn blocks() -> Seeds {
    let l = fx::ledger();
    let mut s: Seeds = Vec::new();
    for (i, b) in l.blocks.iter().chain(std::iter::once(&l.next)).enumerate() {
        let h = i + 1;
        s.push((format!("header{h}"), encode(&b.header)));
        s.push((format!("body{h}"), encode(&(b.txs.clone(), b.cert.clone()))));
        s.push((format!("block{h}"), encode(b)));
    }
    let no_qc: (Vec<SignedTx>, Option<Certificate>) = (l.next.txs.clone(), None);
    s.push(("body-no-qc".into(), encode(&no_qc)));
    s
}

fn states() -> Seeds {
    let l = fx::ledger();
    vec![
        ("state-round-open".into(), encode(&l.state)),
        ("genesis".into(), encode(&l.genesis)),
        (
            "state-genesis".into(),
            encode(&fedchain_ledger::State::genesis(&l.genesis)),
        ),
    ]
}

fn vectors() -> Seeds {
    let pk = fx::pk();
    vec![
        (
            "ciphertext-vector".into(),
            CiphertextVector(fx::ciphertexts().to_vec()).to_bytes(pk),
        ),
        ("proven-vector-1".into(), proven(0, 1).to_bytes(pk)),
        ("proven-vector-3".into(), proven(0, 3).to_bytes(pk)),
    ]
}

fn shares() -> Seeds {
    (1..=fx::PARTIES)
        .map(|h| {
            (
                format!("decryption-share-{h}"),
                fx::decryption_share(h).to_bytes(fx::pk()),
            )
        })
        .collect()
}

fn keys() -> Seeds {
    let d = fx::dealt();
    let mut s: Seeds = vec![
        ("threshold-key".into(), d.public.to_bytes()),
        ("public-key".into(), fx::pk().to_bytes()),
        (
            "public-key-json".into(),
            serde_json::to_vec(fx::pk()).expect("json"),
        ),
    ];
    for share in d.shares.iter().take(2) {
        s.push((format!("key-share-{}", share.holder()), share.to_bytes()));
    }
    s
}

fn sealed() -> Seeds {
    let recipient = XPublicKey::from(&StaticSecret::from(fx::SHARE_SECRET));
    let fp = fx::pk().fingerprint();
    let mut r = fx::rng(0x5ea1);
    fx::dealt()
        .shares
        .iter()
        .take(2)
        .map(|share| {
            let sealed = fedchain_net::sealed::seal(
                &recipient,
                fp,
                share.holder(),
                &share.to_bytes(),
                &mut r,
            )
            .expect("seal");
            (format!("sealed-share-{}", share.holder()), sealed)
        })
        .collect()
}

/// A CA, two hospitals (the second revoked), their requests and the CA's output: the seeds of
/// `pki_files`, and the fixture CA and hospital certificates written to `fixtures`.
fn pki_seeds(fixtures: &Path) -> Seeds {
    let tmp = tempfile::tempdir().expect("tempdir");
    let t = tmp.path();
    pki::ca_init(&pki::CaInitArgs {
        dir: t.join("ca"),
        name: "fuzz-consortium".into(),
        days: 3650,
    })
    .expect("ca init");
    let mut s: Seeds = Vec::new();
    for (name, role) in [
        ("hospital-0", RoleArg::Hospital),
        ("hospital-1", RoleArg::Hospital),
        ("aggregator", RoleArg::Aggregator),
    ] {
        let keys = t.join("keys").join(name);
        pki::keys_new(&pki::KeysNewArgs {
            name: name.into(),
            role,
            out: keys.clone(),
        })
        .expect("keys new");
        let out = t.join("issued").join(name);
        pki::ca_issue(&pki::CaIssueArgs {
            dir: t.join("ca"),
            request: keys.join(pki::REQUEST),
            out: out.clone(),
            days: 825,
        })
        .expect("ca issue");
        if name != "hospital-1" {
            s.push((
                format!("{name}-request.json"),
                read(&keys.join(pki::REQUEST)),
            ));
        }
        if name == "hospital-0" {
            s.push(("identity.json".into(), read(&out.join("identity.json"))));
            let pem = read(&out.join("tls.cert.pem"));
            s.push(("tls.cert.pem".into(), pem.clone()));
            s.push(("ca.cert.pem".into(), read(&out.join("ca.cert.pem"))));
            fs::create_dir_all(fixtures).expect("fixtures dir");
            fs::write(fixtures.join("hospital.cert.pem"), &pem).expect("fixture");
            fs::write(fixtures.join("ca.cert.pem"), read(&out.join("ca.cert.pem")))
                .expect("fixture");
            let der = {
                use rustls::pki_types::pem::PemObject;
                rustls::pki_types::CertificateDer::from_pem_slice(&pem)
                    .expect("pem")
                    .to_vec()
            };
            s.push(("tls.cert.der".into(), der));
        }
    }
    let crl = pki::ca_revoke(&pki::CaRevokeArgs {
        dir: t.join("ca"),
        name: "hospital-1".into(),
    })
    .expect("revoke");
    s.push(("crl.pem".into(), read(&crl)));
    let committee: Vec<CommitteeMember> = fx::ledger()
        .hospitals
        .iter()
        .enumerate()
        .map(|(i, k)| CommitteeMember {
            holder: i as u32 + 1,
            name: format!("hospital-{i}"),
            bls_public_key: hex::encode(k.verifying_key().to_bytes()),
            address: hex::encode(Address::of(&k.verifying_key()).0),
        })
        .collect();
    s.push((
        "committee.json".into(),
        serde_json::to_vec_pretty(&committee).expect("json"),
    ));
    s
}

fn configs(repo: &Path) -> Seeds {
    let mut s: Seeds = Vec::new();
    for f in [
        "configs/breast-cancer.toml",
        "configs/digits-mlp.toml",
        "configs/mnist-cnn.toml",
        "deploy/local-cluster/coordinator.toml",
        "deploy/local-cluster/worker.toml",
    ] {
        let name = f.replace('/', "-");
        s.push((name, read(&repo.join(f))));
    }
    s.push((
        "default-simulate.toml".into(),
        toml(&SimulateConfig::default()),
    ));
    s.push((
        "default-coordinator.toml".into(),
        toml(&CoordinatorConfig::default()),
    ));
    s.push(("default-worker.toml".into(), toml(&WorkerConfig::default())));
    s
}

fn toml<T: serde::Serialize>(v: &T) -> Vec<u8> {
    toml::to_string(v).expect("toml").into_bytes()
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
