//! Fixtures shared by the fuzz targets (`fuzz_targets/`) and the seed-corpus generator
//! (`src/bin/gen_corpus.rs`), and the round-trip checks the targets assert.
//!
//! Everything here is deterministic, so the committed seeds stay valid against what the
//! targets rebuild at start-up: the threshold key is dealt from the 512-bit fixture primes
//! (`crypto/tests/fixtures/safe_primes_512.json`) with a seeded generator, BLS keys come from
//! fixed seeds, the X25519 recipient key is a constant, and the ledger is built by the real
//! `Chain` over a `MemoryStore`. These are test keys: nothing here is a secret of anything.
//!
//! The PKI fixtures (a CA certificate and a hospital certificate issued by it) cannot be made
//! deterministically (the CA draws its serials and keys from the OS generator), so
//! `gen_corpus` writes them once into `fuzz/fixtures/pki/` and the targets read them from
//! there.

#![forbid(unsafe_code)]

use std::fmt::Debug;
use std::sync::OnceLock;

use fedchain_crypto::identity::SigningKey;
use fedchain_crypto::{
    deal, Ciphertext, DealtKey, Encode, Integer, PublicKey, ThresholdPublicKey,
    VectorDecryptionShare,
};
use fedchain_ledger::state::{assemble_qc, vote, Genesis};
use fedchain_ledger::types::{Certificate, Incentives, JobSpec, Offence};
use fedchain_ledger::{
    Address, Block, Chain, Hash, MemoryStore, Role, SignedTx, State, Transaction, TxKind,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{de::DeserializeOwned, Serialize};

/// The chain id of the fixture ledger.
pub const CHAIN: &str = "fedchain-fuzz";
/// The job of the fixture ledger.
pub const JOB: u64 = 0;
/// The round the fixture ledger has open.
pub const ROUND: u32 = 0;
/// Holders and threshold of the fixture key.
pub const PARTIES: u32 = 4;
pub const THRESHOLD: u32 = 2;
/// The X25519 secret the fixture shares are sealed to (a constant: a test key).
pub const SHARE_SECRET: [u8; 32] = [0x5e; 32];
/// Block timestamps of the fixture ledger start here (ms).
pub const GENESIS_MS: u64 = 1_700_000_000_000;

/// A seeded generator for fixtures (never used for a real secret).
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The fixture primes (512-bit modulus).
pub fn fixture_primes() -> (Integer, Integer) {
    let text = include_str!("../../crypto/tests/fixtures/safe_primes_512.json");
    let v: serde_json::Value = serde_json::from_str(text).expect("fixture json");
    let int = |k: &str| {
        Integer::from_str_radix(v[k].as_str().expect("fixture prime"), 16).expect("fixture hex")
    };
    (int("p"), int("q"))
}

/// The 2-of-4 threshold key dealt from the fixture primes with a seeded generator.
pub fn dealt() -> &'static DealtKey {
    static KEY: OnceLock<DealtKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (p, q) = fixture_primes();
        deal(&p, &q, PARTIES, THRESHOLD, &mut rng(0xfed0)).expect("deal the fixture key")
    })
}

/// The fixture threshold public key.
pub fn tpk() -> &'static ThresholdPublicKey {
    &dealt().public
}

/// Its Paillier public key.
pub fn pk() -> &'static PublicKey {
    tpk().public_key()
}

/// Textbook encryptions of 1, 2, 3 under the fixture key (deterministic: seeded, sequential):
/// what the decryption-share target verifies shares against.
pub fn ciphertexts() -> &'static [Ciphertext] {
    static CTS: OnceLock<Vec<Ciphertext>> = OnceLock::new();
    CTS.get_or_init(|| {
        let mut r = rng(0xc1);
        (1u32..=3)
            .map(|m| {
                pk().encrypt_textbook(&Integer::from(m), &mut r)
                    .expect("encrypt")
            })
            .collect()
    })
}

/// Holder `holder`'s (1-based) valid decryption share of [`ciphertexts`] (seeded proof).
pub fn decryption_share(holder: u32) -> &'static VectorDecryptionShare {
    static SHARES: OnceLock<Vec<VectorDecryptionShare>> = OnceLock::new();
    let all = SHARES.get_or_init(|| {
        dealt()
            .shares
            .iter()
            .map(|s| {
                s.decrypt_share(tpk(), ciphertexts(), &mut rng(0xd0 + u64::from(s.holder())))
                    .expect("decryption share")
            })
            .collect()
    });
    &all[holder as usize - 1]
}

/// A fixed BLS key.
pub fn key(i: u8) -> SigningKey {
    SigningKey::from_seed(&[i; 32])
}

/// The address of a key.
pub fn addr(k: &SigningKey) -> Address {
    Address::of(&k.verifying_key())
}

/// The context a submission of hospital `i` in the fixture round is proven in.
pub fn submission_context(i: usize) -> Vec<u8> {
    fedchain_worker::submission_context(chain_id(), JOB, ROUND, &addr(&ledger().hospitals[i]))
}

/// The fixture ledger: validators, an aggregator and hospitals, registered, job 0 created
/// with the fixture threshold key, every hospital joined and round 0 open.
#[derive(Debug)]
pub struct Ledger {
    pub validators: Vec<SigningKey>,
    pub aggregator: SigningKey,
    pub hospitals: Vec<SigningKey>,
    pub genesis: Genesis,
    /// The committed blocks after genesis, in order (each with its quorum certificate).
    pub blocks: Vec<Block>,
    /// The state after the last of them.
    pub state: State,
    /// The hash of the last header.
    pub head_hash: Hash,
    /// The next block: every hospital's submission of round 0 (certified, not committed).
    pub next: Block,
}

/// A signed transaction of the fixture chain from `who` with `nonce`.
pub fn sign_tx(who: &SigningKey, nonce: u64, kind: TxKind) -> SignedTx {
    Transaction {
        chain_id: chain_id().into(),
        sender: who.verifying_key(),
        nonce,
        kind,
    }
    .sign(who)
}

/// Certify a block with the votes of all `validators`.
pub fn certify(validators: &[SigningKey], block: &mut Block) {
    let h = block.header.hash();
    let votes: Vec<_> = validators
        .iter()
        .enumerate()
        .map(|(i, k)| (i as u32, vote(k, i as u32, &h)))
        .collect();
    block.cert = Some(Certificate::Replicas(
        assemble_qc(validators.len(), &votes).expect("qc"),
    ));
}

/// The job the fixture ledger creates (its committee: `hospitals`).
pub fn job_spec(hospitals: &[SigningKey]) -> JobSpec {
    JobSpec {
        model_spec_hash: Hash::sha256(b"logreg 30x1"),
        threshold_key: tpk().to_bytes(),
        packing: r#"{"num_params":31,"packing":{"value_bits":16,"clip":1.0,"max_parties":4,"max_samples":1000,"rounding":"Nearest"},"server":{"lr":1.0}}"#.into(),
        threshold: THRESHOLD,
        committee: hospitals.iter().map(addr).collect(),
        min_participants: fedchain_ledger::MIN_PARTICIPANTS,
        max_samples: 1000,
        incentives: Incentives {
            min_deposit: 1000,
            submit_reward: 900,
            share_reward: 300,
            missed_deadline_permille: 100,
            misbehaviour_permille: 500,
        },
    }
}

/// A submission of hospital `who` in the fixture round for a payload.
pub fn submit(who: &SigningKey, nonce: u64, samples: u64, payload: &[u8]) -> SignedTx {
    sign_tx(
        who,
        nonce,
        TxKind::Submit {
            job: JOB,
            round: ROUND,
            payload: Hash::sha256(payload),
            samples,
            payload_bytes: payload.len() as u64,
        },
    )
}

impl Ledger {
    /// Validator public keys.
    pub fn validator_keys(&self) -> Vec<fedchain_crypto::identity::VerifyingKey> {
        self.validators
            .iter()
            .map(SigningKey::verifying_key)
            .collect()
    }
}

/// The fixture ledger (built once).
pub fn ledger() -> &'static Ledger {
    static LEDGER: OnceLock<Ledger> = OnceLock::new();
    LEDGER.get_or_init(build_ledger)
}

/// The fixture chain's genesis (its id is its hash, as on every chain).
pub fn fixture_genesis() -> Genesis {
    let validators: Vec<SigningKey> = (0..4).map(|i| key(100 + i)).collect();
    let aggregator = key(1);
    let hospitals: Vec<SigningKey> = (0..PARTIES as u8).map(|i| key(10 + i)).collect();
    let mut allocations = vec![(addr(&aggregator), 1_000_000)];
    allocations.extend(hospitals.iter().map(|h| (addr(h), 10_000)));
    Genesis::new(
        CHAIN,
        0,
        GENESIS_MS,
        validators.iter().map(SigningKey::verifying_key).collect(),
        allocations,
    )
}

/// The fixture chain's id (the hash of [`fixture_genesis`]).
pub fn chain_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| fixture_genesis().chain_id)
}

fn build_ledger() -> Ledger {
    let validators: Vec<SigningKey> = (0..4).map(|i| key(100 + i)).collect();
    let aggregator = key(1);
    let hospitals: Vec<SigningKey> = (0..PARTIES as u8).map(|i| key(10 + i)).collect();
    let genesis = fixture_genesis();
    let mut chain = Chain::open(MemoryStore::new(), &genesis).expect("open the fixture chain");
    let mut register = vec![sign_tx(
        &aggregator,
        1,
        TxKind::Register {
            role: Role::Aggregator,
            pseudonym: "aggregator".into(),
        },
    )];
    register.extend(hospitals.iter().enumerate().map(|(i, h)| {
        sign_tx(
            h,
            1,
            TxKind::Register {
                role: Role::Hospital,
                pseudonym: format!("hospital-{i}"),
            },
        )
    }));
    let create = vec![sign_tx(
        &aggregator,
        2,
        TxKind::CreateJob(job_spec(&hospitals)),
    )];
    let joins = hospitals
        .iter()
        .map(|h| {
            sign_tx(
                h,
                2,
                TxKind::Join {
                    job: JOB,
                    deposit: 2000,
                    samples: 1000,
                },
            )
        })
        .collect();
    let params = chain.put_payload(b"theta_0").expect("payload");
    let open = vec![sign_tx(
        &aggregator,
        3,
        TxKind::OpenRound {
            job: JOB,
            round: ROUND,
            params_hash: params,
            deadline: 10,
        },
    )];
    let mut blocks = Vec::new();
    let mut time = GENESIS_MS;
    for body in [register, create, joins, open] {
        time += 1000;
        let p = chain.propose(body, time, &validators[0]);
        assert!(
            p.rejected.is_empty(),
            "fixture tx rejected: {:?}",
            p.rejected
        );
        let mut b = p.block;
        certify(&validators, &mut b);
        chain.commit(&b).expect("commit a fixture block");
        blocks.push(b);
    }
    let submits = hospitals
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let payload = format!("payload of hospital {i}").into_bytes();
            chain.put_payload(&payload).expect("payload");
            submit(h, 3, 100 + i as u64, &payload)
        })
        .collect();
    let p = chain.propose(submits, time + 1000, &validators[0]);
    assert!(
        p.rejected.is_empty(),
        "fixture submit rejected: {:?}",
        p.rejected
    );
    let mut next = p.block;
    certify(&validators, &mut next);
    Ledger {
        state: chain.state().clone(),
        head_hash: chain.head().hash,
        validators,
        aggregator,
        hospitals,
        genesis,
        blocks,
        next,
    }
}

/// Decode with the transport's codec (`fedchain_net::wire`); if it decodes, its encoding must
/// decode again to a value with the very same encoding (encodings are compared, not values:
/// f32 NaNs are not equal to themselves). Byte-for-byte equality with the input is not
/// required: a few decoders accept more than one spelling of a value (upper-case hex in BLS
/// keys, unsorted maps), which the re-encoding normalizes.
pub fn wire_roundtrip<T: Serialize + DeserializeOwned + Debug>(data: &[u8]) -> Option<T> {
    let v: T = fedchain_net::wire::decode(data).ok()?;
    let e1 = fedchain_net::wire::encode(&v).expect("a decoded value encodes");
    let w: T = fedchain_net::wire::decode(&e1)
        .unwrap_or_else(|e| panic!("re-encoding of {v:?} does not decode: {e}"));
    let e2 = fedchain_net::wire::encode(&w).expect("encodes");
    assert_eq!(e1, e2, "decode(encode(x)) changed {v:?}");
    Some(v)
}

/// The same with the ledger's canonical codec (`fedchain_ledger::types`), and the values must
/// be equal too (ledger types hold no floats).
pub fn ledger_roundtrip<T: Serialize + DeserializeOwned + Debug + PartialEq>(
    what: &'static str,
    data: &[u8],
) -> Option<T> {
    use fedchain_ledger::types::{decode, encode};
    let v: T = decode(what, data).ok()?;
    let e1 = encode(&v);
    let w: T =
        decode(what, &e1).unwrap_or_else(|e| panic!("re-encoding of {v:?} does not decode: {e}"));
    assert_eq!(v, w, "decode(encode(x)) != x");
    assert_eq!(e1, encode(&w));
    Some(v)
}

/// Where `gen_corpus` writes the PKI fixtures (public files only).
pub fn pki_fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pki")
}

fn pem_fixture(name: &str) -> Option<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    let bytes = std::fs::read(pki_fixture_dir().join(name)).ok()?;
    rustls::pki_types::CertificateDer::from_pem_slice(&bytes).ok()
}

/// The fixture CA certificate (`fixtures/pki/ca.cert.pem`), if `gen_corpus` wrote it.
pub fn ca_cert() -> Option<&'static rustls::pki_types::CertificateDer<'static>> {
    static CERT: OnceLock<Option<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();
    CERT.get_or_init(|| pem_fixture("ca.cert.pem")).as_ref()
}

/// A hospital certificate the fixture CA issued (`fixtures/pki/hospital.cert.pem`).
pub fn hospital_cert() -> Option<&'static rustls::pki_types::CertificateDer<'static>> {
    static CERT: OnceLock<Option<rustls::pki_types::CertificateDer<'static>>> = OnceLock::new();
    CERT.get_or_init(|| pem_fixture("hospital.cert.pem"))
        .as_ref()
}

/// Transactions of every other kind on the fixture chain (penalties, commit and void of the
/// round, a transfer, a decryption share), validly signed: seeds of `ledger_tx`, and what
/// `ledger_state` applies to each state it decodes.
pub fn sample_txs() -> &'static [(&'static str, SignedTx)] {
    static TXS: OnceLock<Vec<(&'static str, SignedTx)>> = OnceLock::new();
    TXS.get_or_init(|| {
        let l = ledger();
        let h = &l.hospitals;
        let agg = &l.aggregator;
        let a = |k: &SigningKey| addr(k);
        let first = submit(&h[0], 3, 100, b"one");
        let second = submit(&h[0], 3, 100, b"two");
        vec![
            (
                "penalty-equivocation",
                sign_tx(
                    agg,
                    4,
                    TxKind::Penalty {
                        job: JOB,
                        offender: a(&h[0]),
                        offence: Offence::Equivocation {
                            first: Box::new(first),
                            second: Box::new(second),
                        },
                    },
                ),
            ),
            (
                "penalty-invalid-share",
                sign_tx(
                    agg,
                    4,
                    TxKind::Penalty {
                        job: JOB,
                        offender: a(&h[1]),
                        offence: Offence::InvalidShare {
                            job: JOB,
                            round: ROUND,
                            digest: Hash::sha256(b"share"),
                        },
                    },
                ),
            ),
            (
                "commit-round",
                sign_tx(
                    agg,
                    4,
                    TxKind::CommitRound {
                        job: JOB,
                        round: ROUND,
                        aggregate: Hash::sha256(b"aggregate"),
                        new_params_hash: Hash::sha256(b"theta_1"),
                        accepted: h.iter().take(3).map(a).collect(),
                        share_providers: h.iter().take(2).map(a).collect(),
                    },
                ),
            ),
            (
                "void-round",
                sign_tx(
                    agg,
                    4,
                    TxKind::VoidRound {
                        job: JOB,
                        round: ROUND,
                    },
                ),
            ),
            (
                "transfer",
                sign_tx(
                    &h[2],
                    3,
                    TxKind::Transfer {
                        to: a(&h[3]),
                        amount: 17,
                    },
                ),
            ),
            (
                "decryption-share",
                sign_tx(
                    &h[0],
                    4,
                    TxKind::DecryptionShare {
                        job: JOB,
                        round: ROUND,
                        payload: Hash::sha256(&decryption_share(1).to_bytes(pk())),
                    },
                ),
            ),
        ]
    })
}
