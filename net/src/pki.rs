//! Consortium PKI: a CA per consortium, participants that generate their own keys, revocation
//! lists, and the dealing of a job's threshold Paillier key sealed to each hospital.
//!
//! Every party generates its own secrets; the CA signs public keys and never sees a secret
//! (threat model G6). The flow, and what travels where (nothing that travels is secret):
//!
//! 1. participant: `keys new --name N --role R --out K` ([`keys_new`]) writes its secrets into
//!    the key directory `K` — `tls.key.pem` (ECDSA P-256), `bls.key` (hex), `share.key`
//!    (X25519, hex), all 0600, `K` itself 0700 — and `K/request.json` ([`KeyRequest`]: name,
//!    role, a PKCS#10 CSR of the TLS key, the BLS public key, a BLS proof of possession, the
//!    X25519 public key). It prints the request's fingerprint. `request.json` goes to the CA.
//! 2. CA: `ca issue --dir CA --request request.json --out C` ([`ca_issue`]) checks the CSR's
//!    signature and key type, the proof of possession, the name and duplicates, builds the
//!    certificate itself (nothing is copied from the CSR but its public key) and writes `C`:
//!    `tls.cert.pem`, `ca.cert.pem`, `crl.pem`, `identity.json`. It prints the same
//!    fingerprint, to be compared with the participant's over another channel. `C` goes back.
//! 3. participant: `keys install --key-dir K --cert-dir C` ([`keys_install`]) checks that the
//!    certificate verifies against the CA and carries its own keys, and copies the four public
//!    files into `K`, which is then the bundle [`Bundle::load`] reads.
//! 4. dealer: `keygen --ca-cert ca.cert.pem --hospital C1 --hospital C2 ...` ([`keygen`]) reads
//!    only the hospitals' public files (certificate, identity.json), checks them against the CA,
//!    and writes the job directory: `threshold_key.fc`, `committee.json` and one share per
//!    hospital sealed to its X25519 key, `shares/<name>.share.enc` ([`crate::sealed`]). The
//!    dealer sees the whole key: until distributed key generation exists it must run in an
//!    isolated ceremony. The job directory goes to everyone; a hospital opens its own share
//!    with [`Bundle::key_share`].
//!
//! CA directory (`ca init --dir D`): `ca.key.pem` (0600), `ca.cert.pem`, `index.json`
//! (issued names, roles, serials, public keys, revocations, CRL number) and `crl.pem` (always
//! present, re-signed on every revocation).
//!
//! Proof of possession: the BLS key signs [`pop_message`]: `fedchain/bls-pop/v1`, a zero byte,
//! the name (u16 length, big-endian), the role code, the BLS public key (48 bytes), the X25519
//! public key (32) and the TLS public key (u16 length, the SubjectPublicKeyInfo's key bits). It
//! proves the BLS key is held by whoever made the CSR and binds the X25519 key to the
//! certified BLS key, so a dealer can check a hospital's X25519 key from public files alone.
//! The request fingerprint is the SHA-256 of that message.
//!
//! Identity binding: the leaf certificate carries the participant's name as its SAN DNS name
//! and common name, and a non-critical extension [`IDENTITY_EXTENSION_OID`] whose value is
//! the DER `SEQUENCE { version INTEGER (1), role ENUMERATED (0 hospital, 1 aggregator,
//! 2 validator), blsPublicKey OCTET STRING (SIZE (48)) }`.
//!
//! Secrets read from or written to disk are held in [`Zeroizing`] buffers (scrubbed on drop).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fedchain_crypto::identity::{Signature, SigningKey, VerifyingKey, PUBLIC_KEY_BYTES};
use fedchain_crypto::{deal, Decode, Encode, Integer, KeyShare, ThresholdPublicKey};
use fedchain_ledger::types::Role;
use fedchain_ledger::Address;
use rand::{CryptoRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    RevokedCertParams, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::error::{io_err, NetError, Result};
use crate::sealed::{self, SealError};

/// The private OID of the identity extension: 1.3.6.1.4.1.59337.6.1 ("fedchain identity v1").
/// 59337 is a placeholder private-enterprise arc; a deployment should replace it with its own
/// registered arc (changing it only requires re-issuing certificates).
pub const IDENTITY_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 59337, 6, 1];

/// Domain tag of the BLS proof of possession.
pub const POP_DOMAIN: &[u8] = b"fedchain/bls-pop/v1";
/// Version of [`KeyRequest`].
pub const REQUEST_VERSION: u32 = 1;

const CA_KEY: &str = "ca.key.pem";
const CA_CERT: &str = "ca.cert.pem";
const INDEX: &str = "index.json";
const CRL: &str = "crl.pem";
const TLS_KEY: &str = "tls.key.pem";
const TLS_CERT: &str = "tls.cert.pem";
const BLS_KEY: &str = "bls.key";
const IDENTITY: &str = "identity.json";
/// File name of a participant's X25519 secret (receives its key share) in its key directory.
pub const SHARE_KEY: &str = "share.key";
/// File name of a participant's key request in its key directory.
pub const REQUEST: &str = "request.json";
/// The secret files of a key directory / bundle (0600).
pub const SECRET_FILES: [&str; 3] = [TLS_KEY, BLS_KEY, SHARE_KEY];
/// The public files the CA writes and `keys install` copies into the bundle.
pub const ISSUED_FILES: [&str; 4] = [TLS_CERT, CA_CERT, CRL, IDENTITY];
/// Folder of the sealed key shares inside a job directory.
pub const SHARES: &str = "shares";
/// File name of the public threshold key inside a job directory.
pub const THRESHOLD_KEY: &str = "threshold_key.fc";
/// File name of the committee (holders in order) inside a job directory.
pub const COMMITTEE: &str = "committee.json";

/// Largest request, identity or certificate file read from outside.
const MAX_PUBLIC_FILE: u64 = 64 << 10;

/// Days a CRL is declared valid for (`nextUpdate`); revocations re-sign it.
const CRL_DAYS: i64 = 30;

// ---------------------------------------------------------------------------------------------
// clap arguments

/// `ca init`: create a consortium CA.
#[derive(Debug, Clone, clap::Args)]
pub struct CaInitArgs {
    /// Directory for the CA's key, certificate, index and CRL (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// Consortium name (the CA's common name).
    #[arg(long)]
    pub name: String,
    /// Validity of the CA certificate in days.
    #[arg(long, default_value_t = 3650)]
    pub days: u32,
}

/// `ca issue`: certify a participant's own public keys from its request.
#[derive(Debug, Clone, clap::Args)]
pub struct CaIssueArgs {
    /// The CA directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// The participant's request.json (from `keys new`).
    #[arg(long)]
    pub request: PathBuf,
    /// Output directory for the certificate, CA certificate, CRL and identity.json (must not
    /// exist or be empty); it holds no secret and goes back to the participant.
    #[arg(long)]
    pub out: PathBuf,
    /// Validity of the certificate in days.
    #[arg(long, default_value_t = 825)]
    pub days: u32,
}

/// `ca revoke`: revoke a participant's certificate and re-sign the CRL.
#[derive(Debug, Clone, clap::Args)]
pub struct CaRevokeArgs {
    /// The CA directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Participant name.
    #[arg(long)]
    pub name: String,
}

/// `keys new`: a participant generates its own keys and a request for the CA.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysNewArgs {
    /// Participant name (a DNS label sequence: lower-case letters, digits, '-', '.').
    #[arg(long)]
    pub name: String,
    /// Participant role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Key directory (must not exist or be empty): the secrets (0600) and request.json; after
    /// `keys install` it is the participant's bundle.
    #[arg(long)]
    pub out: PathBuf,
}

/// `keys install`: put the CA's output into the key directory, making it a bundle.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysInstallArgs {
    /// The key directory written by `keys new`.
    #[arg(long)]
    pub key_dir: PathBuf,
    /// The directory `ca issue --out` wrote (certificate, CA certificate, CRL, identity.json).
    #[arg(long)]
    pub cert_dir: PathBuf,
}

/// `keygen`: deal a job's threshold Paillier key, each share sealed to its hospital.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Job directory for the public threshold key, the committee list and the sealed shares.
    #[arg(long)]
    pub job_dir: PathBuf,
    /// Shares needed to decrypt.
    #[arg(long)]
    pub threshold: u32,
    /// Modulus size in bits (two safe primes of half the size).
    #[arg(long, default_value_t = 2048)]
    pub key_bits: u32,
    /// The consortium CA certificate the hospitals' certificates must verify against.
    #[arg(long)]
    pub ca_cert: PathBuf,
    /// The CA's current CRL (`crl.pem`): a revoked hospital is refused.
    #[arg(long)]
    pub crl: Option<PathBuf>,
    /// Each hospital's public files (a `ca issue --out` directory or its bundle: only
    /// tls.cert.pem and identity.json are read), in committee order (holder 1, 2, ...).
    #[arg(long = "hospital", required = true)]
    pub hospitals: Vec<PathBuf>,
}

/// A role as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Hospital,
    Aggregator,
    Validator,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Hospital => Role::Hospital,
            RoleArg::Aggregator => Role::Aggregator,
            RoleArg::Validator => Role::Validator,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// on-disk records

/// One issued certificate in the CA's index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IssuedCert {
    pub name: String,
    pub role: Role,
    /// Certificate serial, hex.
    pub serial: String,
    pub bls_public_key: String,
    /// The X25519 key the participant receives its key share on, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x25519_public_key: Option<String>,
    /// Unix seconds of the revocation, if revoked.
    pub revoked_at: Option<i64>,
}

/// The CA's index of issued certificates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CaIndex {
    pub consortium: String,
    /// Number of the last CRL written.
    pub crl_number: u64,
    pub issued: Vec<IssuedCert>,
}

/// `identity.json` in a bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    pub name: String,
    pub role: Role,
    /// Compressed BLS12-381 public key, hex (48 bytes).
    pub bls_public_key: String,
    /// Ledger address (hash of the BLS key), hex (20 bytes).
    pub address: String,
    pub consortium: String,
    /// Certificate serial, hex.
    pub serial: String,
    /// X25519 public key the participant's key share is sealed to, hex (32 bytes).
    pub x25519_public_key: String,
    /// The BLS proof of possession of the request ([`pop_message`]), hex (96 bytes): it binds
    /// the X25519 key to the certified BLS key.
    pub bls_proof_of_possession: String,
}

/// `request.json`: what a participant sends the CA. Holds no secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// [`REQUEST_VERSION`].
    pub version: u32,
    pub name: String,
    pub role: Role,
    /// PKCS#10 certificate signing request of the TLS key, PEM.
    pub csr: String,
    /// Compressed BLS12-381 public key, hex (48 bytes).
    pub bls_public_key: String,
    /// BLS signature of [`pop_message`], hex (96 bytes).
    pub bls_proof_of_possession: String,
    /// X25519 public key to seal key shares to, hex (32 bytes).
    pub x25519_public_key: String,
}

/// One holder in a job's committee (`committee.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CommitteeMember {
    /// 1-based holder index of the key share.
    pub holder: u32,
    pub name: String,
    pub bls_public_key: String,
    pub address: String,
}

/// What `ca issue` certified.
#[derive(Debug, Clone)]
pub struct Issued {
    pub identity: IdentityFile,
    /// The request fingerprint ([`request_fingerprint`]), hex: compare it with the one
    /// `keys new` printed for the participant before handing out the certificate.
    pub fingerprint: String,
}

/// What `keys new` produced.
#[derive(Debug, Clone)]
pub struct NewKeys {
    pub request: KeyRequest,
    /// Path of request.json.
    pub request_path: PathBuf,
    /// The request fingerprint, hex.
    pub fingerprint: String,
}

/// What `keys install` installed.
#[derive(Debug, Clone)]
pub struct Installed {
    pub identity: IdentityFile,
    /// SHA-256 of the CA certificate (DER), hex: compare with `ca init`'s.
    pub ca_fingerprint: String,
}

/// What `keygen` produced.
#[derive(Debug)]
pub struct KeygenOutput {
    pub public: ThresholdPublicKey,
    pub committee: Vec<CommitteeMember>,
}

/// A participant's verified identity, read from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub name: String,
    pub role: Role,
    pub bls_key: VerifyingKey,
}

impl PeerIdentity {
    /// The participant's ledger address.
    pub fn address(&self) -> Address {
        Address::of(&self.bls_key)
    }

    /// Check the certificate's BLS key and role against what the chain registered for this
    /// participant (the coordinator calls this before acting on a peer's messages).
    pub fn check_registered(&self, key: &VerifyingKey, role: Role) -> Result<()> {
        if self.bls_key != *key || self.role != role {
            return Err(NetError::NotRegistered {
                name: self.name.clone(),
                address: hex::encode(self.address().0),
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// helpers

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Write via a temporary file and rename, so a crash never leaves a half-written file.
fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    write_file(&tmp, bytes, secret)?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

fn read_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(io_err(path))
}

/// Read a file holding secret key material into a buffer scrubbed on drop.
fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let f = fs::File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    let mut buf = Zeroizing::new(Vec::with_capacity(
        usize::try_from(len).unwrap_or(0).min(1 << 20),
    ));
    // bounded: a secret key file is small; never let the buffer reallocate (and leave copies)
    f.take(1 << 20)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    Ok(buf)
}

/// Read a public file that came from outside (a request, identity.json, a certificate),
/// refusing one larger than [`MAX_PUBLIC_FILE`].
fn read_public(path: &Path) -> Result<Vec<u8>> {
    let f = fs::File::open(path).map_err(io_err(path))?;
    let mut buf = Vec::new();
    f.take(MAX_PUBLIC_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 > MAX_PUBLIC_FILE {
        return Err(NetError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than {MAX_PUBLIC_FILE} bytes"),
            ),
        });
    }
    Ok(buf)
}

/// Hex of secret bytes, in a buffer scrubbed on drop.
fn secret_hex(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; bytes.len() * 2]);
    // the output has exactly twice the input's length, so encoding cannot fail
    let _ = hex::encode_to_slice(bytes, &mut out);
    out
}

/// Decode a secret hex file of exactly `N` bytes.
fn secret_from_hex<const N: usize>(path: &Path, text: &[u8]) -> Result<Zeroizing<[u8; N]>> {
    let trimmed = text.trim_ascii();
    let mut out = Zeroizing::new([0u8; N]);
    hex::decode_to_slice(trimmed, out.as_mut()).map_err(|e| NetError::Bundle {
        path: path.to_path_buf(),
        reason: format!("not {N} bytes of hex: {e}"),
    })?;
    Ok(out)
}

/// Refuse an output directory that exists and is not empty.
fn ensure_empty_dir(out: &Path) -> Result<()> {
    if out.exists() && fs::read_dir(out).map_err(io_err(out))?.next().is_some() {
        return Err(NetError::Bundle {
            path: out.to_path_buf(),
            reason: "output directory exists and is not empty".into(),
        });
    }
    Ok(())
}

/// Create a directory for secrets (0700 on unix).
fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}

/// The message a participant's BLS key signs as its proof of possession (module docs).
pub fn pop_message(
    name: &str,
    role: Role,
    bls: &VerifyingKey,
    x25519: &[u8; 32],
    tls_public_key: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(POP_DOMAIN.len() + 4 + name.len() + 85 + tls_public_key.len());
    m.extend_from_slice(POP_DOMAIN);
    m.push(0);
    // names are at most 253 bytes and TLS public keys far below 64 KiB (checked by callers)
    m.extend_from_slice(&(name.len().min(u16::MAX as usize) as u16).to_be_bytes());
    m.extend_from_slice(name.as_bytes());
    m.push(role_code(role));
    m.extend_from_slice(&bls.to_bytes());
    m.extend_from_slice(x25519);
    m.extend_from_slice(&(tls_public_key.len().min(u16::MAX as usize) as u16).to_be_bytes());
    m.extend_from_slice(tls_public_key);
    m
}

/// The fingerprint of a request: SHA-256 of its [`pop_message`], hex.
pub fn request_fingerprint(pop_message: &[u8]) -> String {
    hex::encode(Sha256::digest(pop_message))
}

/// SHA-256 of a DER certificate, hex.
pub fn cert_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn decode_bls_key(hexs: &str) -> std::result::Result<VerifyingKey, String> {
    let bytes = hex::decode(hexs).map_err(|e| format!("BLS public key: {e}"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("BLS public key: {e}"))
}

fn decode_x25519(hexs: &str) -> std::result::Result<[u8; 32], String> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hexs, &mut k).map_err(|e| format!("X25519 public key: {e}"))?;
    Ok(k)
}

fn decode_pop(hexs: &str) -> std::result::Result<Signature, String> {
    let bytes = hex::decode(hexs).map_err(|e| format!("proof of possession: {e}"))?;
    Signature::from_bytes(&bytes).map_err(|e| format!("proof of possession: {e}"))
}

/// The raw public key (subjectPublicKey bits) of a DER certificate.
fn cert_public_key(der: &[u8]) -> Result<Vec<u8>> {
    let (_, x509) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| NetError::Identity(format!("certificate does not parse: {e}")))?;
    Ok(x509.public_key().subject_public_key.data.to_vec())
}

/// Check a participant name (the DNS name of its certificate): 1 to 253 characters,
/// dot-separated labels of 1 to 63 lower-case letters, digits and inner '-'. Every name read
/// from a request or an identity.json passes here.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(NetError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated label must be 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("only lower-case letters, digits, '-' and '.' are allowed");
        }
    }
    Ok(())
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Hospital => 0,
        Role::Aggregator => 1,
        Role::Validator => 2,
    }
}

/// DER of the identity extension's value (fixed layout, see the module docs).
pub fn identity_extension_value(role: Role, key: &VerifyingKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(58);
    v.extend_from_slice(&[0x30, 0x38, 0x02, 0x01, 0x01, 0x0a, 0x01, role_code(role)]);
    v.extend_from_slice(&[0x04, PUBLIC_KEY_BYTES as u8]);
    v.extend_from_slice(&key.to_bytes());
    v
}

/// Parse the identity extension's value.
pub fn parse_identity_extension(v: &[u8]) -> Result<(Role, VerifyingKey)> {
    let bad = |r: &str| NetError::Identity(r.to_string());
    if v.len() != 58
        || v[..7] != [0x30, 0x38, 0x02, 0x01, 0x01, 0x0a, 0x01]
        || v[8..10] != [0x04, 48]
    {
        return Err(bad(
            "identity extension is not version 1 of the documented layout",
        ));
    }
    let role = match v[7] {
        0 => Role::Hospital,
        1 => Role::Aggregator,
        2 => Role::Validator,
        _ => return Err(bad("unknown role code")),
    };
    let key = VerifyingKey::from_bytes(&v[10..]).map_err(|e| NetError::Identity(e.to_string()))?;
    Ok((role, key))
}

/// Read a participant's identity from its (already verified) DER certificate.
pub fn identity_from_cert(der: &[u8]) -> Result<PeerIdentity> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| NetError::Identity(format!("certificate does not parse: {e}")))?;
    let oid = x509_parser::der_parser::oid::Oid::from(IDENTITY_EXTENSION_OID)
        .map_err(|_| NetError::Identity("bad OID constant".into()))?;
    let mut name = None;
    let mut binding = None;
    for ext in cert.extensions() {
        if ext.oid == oid {
            if binding.is_some() {
                return Err(NetError::Identity("two identity extensions".into()));
            }
            binding = Some(parse_identity_extension(ext.value)?);
        } else if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for gn in &san.general_names {
                if let GeneralName::DNSName(d) = gn {
                    if name.replace(d.to_string()).is_some() {
                        return Err(NetError::Identity("more than one DNS name".into()));
                    }
                }
            }
        }
    }
    let name = name.ok_or_else(|| NetError::Identity("no DNS name in the certificate".into()))?;
    let (role, bls_key) =
        binding.ok_or_else(|| NetError::Identity("no fedchain identity extension".into()))?;
    Ok(PeerIdentity {
        name,
        role,
        bls_key,
    })
}

fn days(d: u32) -> Duration {
    Duration::days(i64::from(d))
}

fn random_serial<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> [u8; 16] {
    let mut s = [0u8; 16];
    rng.fill_bytes(&mut s);
    // Positive, and no leading zero byte (a minimal DER INTEGER of 16 bytes).
    s[0] = (s[0] & 0x3f) | 0x40;
    s
}

// ---------------------------------------------------------------------------------------------
// the CA

/// A consortium CA loaded from its directory.
struct Ca {
    dir: PathBuf,
    key: KeyPair,
    cert_pem: String,
    index: CaIndex,
}

impl Ca {
    fn load(dir: &Path) -> Result<Self> {
        let key_path = dir.join(CA_KEY);
        let cert_path = dir.join(CA_CERT);
        let index_path = dir.join(INDEX);
        if !key_path.exists() || !cert_path.exists() || !index_path.exists() {
            return Err(NetError::CaMissing {
                dir: dir.to_path_buf(),
            });
        }
        let corrupt = |path: &Path, reason: String| NetError::CaCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let key_pem = read_secret(&key_path)?;
        let key = std::str::from_utf8(&key_pem)
            .map_err(|e| corrupt(&key_path, e.to_string()))
            .and_then(|pem| {
                KeyPair::from_pem(pem).map_err(|e| corrupt(&key_path, e.to_string()))
            })?;
        let cert_pem = read_string(&cert_path)?;
        // The certificate must parse and belong to the key.
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| corrupt(&cert_path, e.to_string()))?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| corrupt(&cert_path, e.to_string()))?;
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(corrupt(
                &cert_path,
                "certificate does not match ca.key.pem".into(),
            ));
        }
        let index: CaIndex = serde_json::from_str(&read_string(&index_path)?)
            .map_err(|e| corrupt(&index_path, e.to_string()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            cert_pem,
            index,
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>> {
        Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(|e| NetError::CaCorrupt {
            path: self.dir.join(CA_CERT),
            reason: e.to_string(),
        })
    }

    fn save_index(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.index)
            .map_err(|e| NetError::Tls(format!("index encode: {e}")))?;
        write_atomic(&self.dir.join(INDEX), &json, false)
    }

    /// Sign and write the CRL of every revoked serial (bumps the CRL number).
    fn write_crl(&mut self) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        self.index.crl_number += 1;
        let mut revoked = Vec::new();
        for c in &self.index.issued {
            if let Some(at) = c.revoked_at {
                let serial = hex::decode(&c.serial).map_err(|e| NetError::CaCorrupt {
                    path: self.dir.join(INDEX),
                    reason: format!("serial of {}: {e}", c.name),
                })?;
                revoked.push(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: OffsetDateTime::from_unix_timestamp(at).unwrap_or(now),
                    reason_code: None,
                    invalidity_date: None,
                });
            }
        }
        let params = CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + Duration::days(CRL_DAYS),
            crl_number: SerialNumber::from_slice(&self.index.crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer()?)?;
        write_atomic(&self.dir.join(CRL), crl.pem()?.as_bytes(), false)?;
        self.save_index()
    }
}

/// `ca init`: create the consortium CA in `args.dir`. Refuses to overwrite an existing CA.
/// Returns the CA certificate's fingerprint ([`cert_fingerprint`]), for participants to
/// compare with the one `keys install` prints.
pub fn ca_init(args: &CaInitArgs) -> Result<String> {
    let dir = &args.dir;
    if dir.join(CA_KEY).exists() || dir.join(CA_CERT).exists() {
        return Err(NetError::CaExists { dir: dir.clone() });
    }
    if args.name.trim().is_empty() {
        return Err(NetError::InvalidName {
            name: args.name.clone(),
            reason: "the consortium name is empty",
        });
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{} consortium CA", args.name));
    dn.push(DnType::OrganizationName, args.name.clone());
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + days(args.days);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial(
        &mut rand::rngs::OsRng,
    )));
    let cert = params.self_signed(&key)?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    write_file(&dir.join(CA_KEY), key_pem.as_bytes(), true)?;
    write_file(&dir.join(CA_CERT), cert.pem().as_bytes(), false)?;
    let mut ca = Ca {
        dir: dir.clone(),
        key,
        cert_pem: cert.pem(),
        index: CaIndex {
            consortium: args.name.clone(),
            crl_number: 0,
            issued: Vec::new(),
        },
    };
    ca.write_crl()?;
    Ok(cert_fingerprint(cert.der()))
}

/// `keys new`: generate a participant's own keys in `args.out` and its request for the CA.
///
/// Everything comes from the operating system's CSPRNG: the BLS key and the X25519 key from
/// `rand::rngs::OsRng`, the TLS key pair (ECDSA P-256) from rcgen's ring backend, which reads
/// the same OS source. The secrets are written 0600 into a 0700 directory and never leave it;
/// `request.json` holds only public keys, the CSR and the proof of possession.
pub fn keys_new(args: &KeysNewArgs) -> Result<NewKeys> {
    check_name(&args.name)?;
    let out = &args.out;
    ensure_empty_dir(out)?;
    let role = Role::from(args.role);
    let mut rng = rand::rngs::OsRng;

    let tls_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let bls = SigningKey::generate(&mut rng);
    let bls_pub = bls.verifying_key();
    let x_secret = x25519_dalek::StaticSecret::random_from_rng(rng);
    let x_pub = x25519_dalek::PublicKey::from(&x_secret).to_bytes();

    // The CSR names the participant (the CA ignores everything in it but the key).
    let mut params = CertificateParams::new(vec![args.name.clone()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, args.name.clone());
    params.distinguished_name = dn;
    let csr = params.serialize_request(&tls_key)?.pem()?;
    let msg = pop_message(&args.name, role, &bls_pub, &x_pub, tls_key.public_key_raw());
    let request = KeyRequest {
        version: REQUEST_VERSION,
        name: args.name.clone(),
        role,
        csr,
        bls_public_key: hex::encode(bls_pub.to_bytes()),
        bls_proof_of_possession: hex::encode(bls.sign(&msg).to_bytes()),
        x25519_public_key: hex::encode(x_pub),
    };

    create_private_dir(out)?;
    let tls_pem = Zeroizing::new(tls_key.serialize_pem());
    write_file(&out.join(TLS_KEY), tls_pem.as_bytes(), true)?;
    let bls_bytes = Zeroizing::new(bls.to_bytes());
    write_file(&out.join(BLS_KEY), &secret_hex(&bls_bytes), true)?;
    let x_bytes = Zeroizing::new(x_secret.to_bytes());
    write_file(&out.join(SHARE_KEY), &secret_hex(x_bytes.as_ref()), true)?;
    let json = serde_json::to_vec_pretty(&request)
        .map_err(|e| NetError::Tls(format!("request encode: {e}")))?;
    let request_path = out.join(REQUEST);
    write_file(&request_path, &json, false)?;
    Ok(NewKeys {
        request,
        request_path,
        fingerprint: request_fingerprint(&msg),
    })
}

/// Read and parse a request file (bounded).
pub fn read_request(path: &Path) -> Result<KeyRequest> {
    parse_request(path, &read_public(path)?)
}

/// Parse the bytes of a request file ([`read_request`] after the bounded read; `path` only
/// names the file in errors): JSON of a [`KeyRequest`] of this build's [`REQUEST_VERSION`].
/// Nothing in it is checked yet (see [`verify_request`]).
pub fn parse_request(path: &Path, bytes: &[u8]) -> Result<KeyRequest> {
    let req: KeyRequest = serde_json::from_slice(bytes).map_err(|e| NetError::Request {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if req.version != REQUEST_VERSION {
        return Err(NetError::Request {
            path: path.to_path_buf(),
            reason: format!(
                "version {} (this build reads {REQUEST_VERSION})",
                req.version
            ),
        });
    }
    Ok(req)
}

/// Whether the CSR's SubjectPublicKeyInfo is an EC key on P-256 (rcgen infers the key type
/// from the signature algorithm, which does not name the curve).
fn csr_key_is_p256(pem: &str) -> bool {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
    use x509_parser::prelude::FromDer;
    let Ok((_, p)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return false;
    };
    let Ok((_, csr)) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&p.contents)
    else {
        return false;
    };
    let alg = &csr.certification_request_info.subject_pki.algorithm;
    alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && alg.parameters.as_ref().and_then(|a| a.as_oid().ok()) == Some(OID_EC_P256)
}

/// A request whose CSR, keys and proof of possession verified.
struct CheckedRequest {
    csr: CertificateSigningRequestParams,
    bls: VerifyingKey,
    x25519: [u8; 32],
    fingerprint: String,
}

/// The checks `ca issue` runs on a parsed request before it certifies anything (the name, the
/// CSR's signature and key type, the public keys, the proof of possession), without a CA
/// directory; returns the request fingerprint ([`request_fingerprint`]). `path` only names the
/// request in errors.
pub fn verify_request(path: &Path, req: &KeyRequest) -> Result<String> {
    check_request(path, req).map(|c| c.fingerprint)
}

/// Check a request: the CSR parses, its signature verifies and its key is ECDSA P-256; the
/// public keys decode (the X25519 key is not of low order); the proof of possession verifies.
fn check_request(path: &Path, req: &KeyRequest) -> Result<CheckedRequest> {
    check_name(&req.name)?;
    let bad = |reason: String| NetError::Request {
        path: path.to_path_buf(),
        reason,
    };
    let csr_err = |reason: String| NetError::Csr {
        name: req.name.clone(),
        reason,
    };
    // from_pem checks the CSR's self-signature (possession of the TLS key) and refuses
    // extensions it does not know; the CA uses nothing of it but the public key.
    let csr =
        CertificateSigningRequestParams::from_pem(&req.csr).map_err(|e| csr_err(e.to_string()))?;
    let tls_pub = csr.public_key.der_bytes();
    if csr.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256
        || !csr_key_is_p256(&req.csr)
        || tls_pub.len() != 65
    {
        return Err(csr_err(
            "the TLS key must be ECDSA P-256, signed with SHA-256".into(),
        ));
    }
    let bls = decode_bls_key(&req.bls_public_key).map_err(bad)?;
    let x25519 = decode_x25519(&req.x25519_public_key).map_err(bad)?;
    if !sealed::is_contributory(
        &x25519_dalek::PublicKey::from(x25519),
        &mut rand::rngs::OsRng,
    ) {
        return Err(bad("the X25519 public key is of low order".into()));
    }
    let pop = decode_pop(&req.bls_proof_of_possession).map_err(bad)?;
    let msg = pop_message(&req.name, req.role, &bls, &x25519, tls_pub);
    if !bls.verify(&msg, &pop) {
        return Err(NetError::ProofOfPossession {
            name: req.name.clone(),
        });
    }
    Ok(CheckedRequest {
        csr,
        bls,
        x25519,
        fingerprint: request_fingerprint(&msg),
    })
}

/// `ca issue`: certify a participant's own public keys from its request. The CA checks the
/// request ([`KeyRequest`]: CSR signature and key type, proof of possession, name, duplicate
/// names and keys), builds the certificate itself (SAN and CN = name, O = consortium, server
/// and client EKU, validity, random serial, the identity extension with role and BLS key;
/// nothing but the public key is taken from the CSR) and writes `tls.cert.pem`,
/// `ca.cert.pem`, `crl.pem` and `identity.json` into `args.out`. It never sees a secret.
pub fn ca_issue(args: &CaIssueArgs) -> Result<Issued> {
    let req = read_request(&args.request)?;
    let checked = check_request(&args.request, &req)?;
    let mut ca = Ca::load(&args.dir)?;
    if ca.index.issued.iter().any(|c| c.name == req.name) {
        return Err(NetError::DuplicateName {
            name: req.name.clone(),
        });
    }
    let bls_hex = hex::encode(checked.bls.to_bytes());
    let x_hex = hex::encode(checked.x25519);
    if let Some(c) = ca.index.issued.iter().find(|c| c.bls_public_key == bls_hex) {
        return Err(NetError::DuplicateKey {
            kind: "BLS",
            name: c.name.clone(),
        });
    }
    if let Some(c) = ca
        .index
        .issued
        .iter()
        .find(|c| c.x25519_public_key.as_deref() == Some(x_hex.as_str()))
    {
        return Err(NetError::DuplicateKey {
            kind: "X25519",
            name: c.name.clone(),
        });
    }
    let out = &args.out;
    ensure_empty_dir(out)?;
    let role = req.role;
    let mut rng = rand::rngs::OsRng;

    let mut params = CertificateParams::new(vec![req.name.clone()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, req.name.clone());
    dn.push(DnType::OrganizationName, ca.index.consortium.clone());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + days(args.days);
    let serial = random_serial(&mut rng);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        IDENTITY_EXTENSION_OID,
        identity_extension_value(role, &checked.bls),
    )];
    let cert = params.signed_by(&checked.csr.public_key, &ca.issuer()?)?;

    let identity = IdentityFile {
        name: req.name.clone(),
        role,
        bls_public_key: bls_hex,
        address: hex::encode(Address::of(&checked.bls).0),
        consortium: ca.index.consortium.clone(),
        serial: hex::encode(serial),
        x25519_public_key: x_hex,
        bls_proof_of_possession: req.bls_proof_of_possession.clone(),
    };
    fs::create_dir_all(out).map_err(io_err(out))?;
    write_file(&out.join(TLS_CERT), cert.pem().as_bytes(), false)?;
    write_file(&out.join(CA_CERT), ca.cert_pem.as_bytes(), false)?;
    let crl = fs::read(args.dir.join(CRL)).map_err(io_err(args.dir.join(CRL)))?;
    write_file(&out.join(CRL), &crl, false)?;
    let json = serde_json::to_vec_pretty(&identity)
        .map_err(|e| NetError::Tls(format!("identity encode: {e}")))?;
    write_file(&out.join(IDENTITY), &json, false)?;

    ca.index.issued.push(IssuedCert {
        name: req.name.clone(),
        role,
        serial: identity.serial.clone(),
        bls_public_key: identity.bls_public_key.clone(),
        x25519_public_key: Some(identity.x25519_public_key.clone()),
        revoked_at: None,
    });
    ca.save_index()?;
    Ok(Issued {
        identity,
        fingerprint: checked.fingerprint,
    })
}

/// `keys install`: check the CA's output against the participant's own keys and copy it
/// into the key directory, which is then the participant's bundle. The certificate must
/// verify against the CA certificate that came with it (and its CRL), carry this
/// directory's TLS key, and identity.json must carry this directory's BLS and X25519 keys
/// and the name and role that were requested.
pub fn keys_install(args: &KeysInstallArgs) -> Result<Installed> {
    let (key_dir, cert_dir) = (&args.key_dir, &args.cert_dir);
    let req = read_request(&key_dir.join(REQUEST))?;
    let b = Bundle::load_from(key_dir, cert_dir)?;
    let mismatch = |reason: &str| NetError::NotOurCertificate {
        key_dir: key_dir.clone(),
        cert_dir: cert_dir.clone(),
        reason: reason.into(),
    };
    if b.identity.name != req.name || b.identity.role != req.role {
        return Err(mismatch("issued for another name or role than requested"));
    }
    if b.identity.bls_public_key != req.bls_public_key
        || b.identity.x25519_public_key != req.x25519_public_key
    {
        return Err(mismatch("identity.json carries other keys than requested"));
    }
    crate::tls::verify_certificate(&b.ca_cert, &b.crls, &b.cert).map_err(|reason| {
        NetError::Untrusted {
            path: cert_dir.join(TLS_CERT),
            reason,
        }
    })?;
    for f in ISSUED_FILES {
        let src = cert_dir.join(f);
        if src.exists() {
            let bytes = read_public(&src)?;
            write_atomic(&key_dir.join(f), &bytes, false)?;
        }
    }
    let installed = Bundle::load(key_dir)?;
    Ok(Installed {
        ca_fingerprint: cert_fingerprint(&installed.ca_cert),
        identity: installed.identity,
    })
}

/// `ca revoke`: mark the participant's certificate revoked and write a new signed CRL
/// (`crl.pem` in the CA directory; distribute it to servers and clients).
pub fn ca_revoke(args: &CaRevokeArgs) -> Result<PathBuf> {
    let mut ca = Ca::load(&args.dir)?;
    let entry = ca
        .index
        .issued
        .iter_mut()
        .find(|c| c.name == args.name)
        .ok_or_else(|| NetError::UnknownName {
            name: args.name.clone(),
        })?;
    if entry.revoked_at.is_some() {
        return Err(NetError::AlreadyRevoked {
            name: args.name.clone(),
        });
    }
    entry.revoked_at = Some(OffsetDateTime::now_utc().unix_timestamp());
    ca.write_crl()?;
    Ok(args.dir.join(CRL))
}

/// Read a CA's index (issued names and their state).
pub fn ca_index(dir: &Path) -> Result<CaIndex> {
    Ok(Ca::load(dir)?.index)
}

// ---------------------------------------------------------------------------------------------
// bundles

/// A participant's bundle (its key directory after `keys install`), loaded for the transport
/// and the services.
pub struct Bundle {
    /// The bundle (key) directory: the secrets are read from here on demand.
    pub dir: PathBuf,
    pub identity: IdentityFile,
    pub cert: CertificateDer<'static>,
    pub ca_cert: CertificateDer<'static>,
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    key: Zeroizing<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("dir", &self.dir)
            .field("identity", &self.identity)
            .field("crls", &self.crls.len())
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// Load a bundle directory and check it: the certificate carries the identity in
    /// identity.json, `tls.key.pem` is the key of the certificate, `bls.key` is the BLS key of
    /// identity.json and `share.key` the secret of its X25519 key.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_from(dir, dir)
    }

    /// [`Bundle::load`] with the secrets from `key_dir` and the CA's output (certificate, CA
    /// certificate, CRL, identity.json) from `cert_dir` (what `keys install` checks).
    pub fn load_from(key_dir: &Path, cert_dir: &Path) -> Result<Self> {
        let bad = |path: &Path, reason: String| NetError::Bundle {
            path: path.to_path_buf(),
            reason,
        };
        let pem_err =
            |f: &str, e: rustls::pki_types::pem::Error| bad(cert_dir, format!("{f}: {e}"));
        let public = |f: &str| read_public(&cert_dir.join(f));
        let cert =
            CertificateDer::from_pem_slice(&public(TLS_CERT)?).map_err(|e| pem_err(TLS_CERT, e))?;
        let ca_cert =
            CertificateDer::from_pem_slice(&public(CA_CERT)?).map_err(|e| pem_err(CA_CERT, e))?;
        let key_pem = read_secret(&key_dir.join(TLS_KEY))?;
        let key = Zeroizing::new(
            PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| bad(key_dir, format!("{TLS_KEY}: {e}")))?,
        );
        let identity: IdentityFile = serde_json::from_slice(&public(IDENTITY)?)
            .map_err(|e| bad(cert_dir, format!("{IDENTITY}: {e}")))?;
        check_name(&identity.name)?;
        let mut b = Self {
            dir: key_dir.to_path_buf(),
            identity,
            cert,
            ca_cert,
            crls: Vec::new(),
            key,
        };
        if cert_dir.join(CRL).exists() {
            b.load_crl(&cert_dir.join(CRL))?;
        }
        let from_cert = identity_from_cert(&b.cert)?;
        if from_cert.name != b.identity.name
            || from_cert.role != b.identity.role
            || hex::encode(from_cert.bls_key.to_bytes()) != b.identity.bls_public_key
            || hex::encode(Address::of(&from_cert.bls_key).0) != b.identity.address
        {
            return Err(bad(
                cert_dir,
                "identity.json does not match the certificate".into(),
            ));
        }
        let pair =
            KeyPair::try_from(&*b.key).map_err(|e| bad(key_dir, format!("{TLS_KEY}: {e}")))?;
        if pair.public_key_raw() != cert_public_key(&b.cert)?.as_slice() {
            return Err(bad(
                key_dir,
                format!("{TLS_KEY} is not the key of the certificate"),
            ));
        }
        drop(pair);
        b.signing_key()?;
        b.share_secret()?;
        Ok(b)
    }

    /// Replace the revocation lists with the CRL in `path` (e.g. the CA's latest `crl.pem`).
    pub fn load_crl(&mut self, path: &Path) -> Result<()> {
        let bytes = read_public(path)?;
        let crl =
            CertificateRevocationListDer::from_pem_slice(&bytes).map_err(|e| NetError::Bundle {
                path: path.to_path_buf(),
                reason: format!("CRL: {e}"),
            })?;
        self.crls = vec![crl];
        Ok(())
    }

    /// The TLS private key.
    pub fn tls_key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// The identity the certificate carries.
    pub fn peer_identity(&self) -> Result<PeerIdentity> {
        identity_from_cert(&self.cert)
    }

    /// The participant's BLS signing key (checked against identity.json).
    pub fn signing_key(&self) -> Result<SigningKey> {
        let path = self.dir.join(BLS_KEY);
        let text = read_secret(&path)?;
        let bytes = secret_from_hex::<32>(&path, &text)?;
        let bad = |reason: String| NetError::Bundle {
            path: path.clone(),
            reason,
        };
        let key = SigningKey::from_bytes(bytes.as_ref()).map_err(|e| bad(e.to_string()))?;
        if hex::encode(key.verifying_key().to_bytes()) != self.identity.bls_public_key {
            return Err(bad("BLS key does not match identity.json".into()));
        }
        Ok(key)
    }

    /// The X25519 secret key shares are sealed to (checked against identity.json).
    fn share_secret(&self) -> Result<x25519_dalek::StaticSecret> {
        let path = self.dir.join(SHARE_KEY);
        let text = read_secret(&path)?;
        let bytes = secret_from_hex::<32>(&path, &text)?;
        let secret = x25519_dalek::StaticSecret::from(*bytes);
        if hex::encode(x25519_dalek::PublicKey::from(&secret).as_bytes())
            != self.identity.x25519_public_key
        {
            return Err(NetError::Bundle {
                path,
                reason: "X25519 key does not match identity.json".into(),
            });
        }
        Ok(secret)
    }

    /// This hospital's threshold key share, opened from the job directory: its holder index
    /// comes from `committee.json` (by name, with this bundle's BLS key), the sealed share from
    /// `shares/<name>.share.enc` ([`share_path`]), opened with `share.key` and checked against
    /// `tpk` (`KeyShare::check_key`). A share sealed to another holder is
    /// [`NetError::ShareWrongRecipient`], an altered one [`NetError::ShareTampered`], one of
    /// another key or holder index [`NetError::ShareOtherKey`].
    pub fn key_share(&self, job_dir: &Path, tpk: &ThresholdPublicKey) -> Result<KeyShare> {
        let committee_path = job_dir.join(COMMITTEE);
        let committee: Vec<CommitteeMember> =
            serde_json::from_slice(&read_public(&committee_path)?).map_err(|e| {
                NetError::Bundle {
                    path: committee_path.clone(),
                    reason: e.to_string(),
                }
            })?;
        let me = committee
            .iter()
            .find(|m| m.name == self.identity.name)
            .filter(|m| m.bls_public_key == self.identity.bls_public_key)
            .ok_or_else(|| NetError::Bundle {
                path: committee_path.clone(),
                reason: format!(
                    "{} (with this BLS key) is not in the committee",
                    self.identity.name
                ),
            })?;
        let path = share_path(job_dir, &self.identity.name);
        self.open_share(&path, tpk, me.holder)
    }

    /// Open the sealed share in `path` as holder `holder` of `tpk`.
    pub fn open_share(
        &self,
        path: &Path,
        tpk: &ThresholdPublicKey,
        holder: u32,
    ) -> Result<KeyShare> {
        let sealed_bytes = read_public(path)?;
        let secret = self.share_secret()?;
        let plain = sealed::open(
            &secret,
            tpk.public_key().fingerprint(),
            holder,
            &sealed_bytes,
        )
        .map_err(|e| share_error(path, e))?;
        let share = KeyShare::from_bytes(&plain).map_err(|e| NetError::ShareTampered {
            path: path.to_path_buf(),
            reason: format!("the opened share does not decode: {e}"),
        })?;
        share.check_key(tpk).map_err(|e| NetError::ShareOtherKey {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if share.holder() != holder {
            return Err(NetError::ShareOtherKey {
                path: path.to_path_buf(),
                reason: format!("holds the share of holder {}", share.holder()),
            });
        }
        Ok(share)
    }
}

fn share_error(path: &Path, e: SealError) -> NetError {
    let path = path.to_path_buf();
    match e {
        SealError::WrongRecipient { expected, found } => NetError::ShareWrongRecipient {
            path,
            expected,
            found,
        },
        SealError::OtherKey(reason) => NetError::ShareOtherKey { path, reason },
        e @ (SealError::Malformed(_) | SealError::Tampered | SealError::NonContributory) => {
            NetError::ShareTampered {
                path,
                reason: e.to_string(),
            }
        }
    }
}

/// Where `keygen` puts a hospital's sealed share inside a job directory.
pub fn share_path(job_dir: &Path, name: &str) -> PathBuf {
    job_dir.join(SHARES).join(format!("{name}.share.enc"))
}

/// Read a job's public threshold key.
pub fn load_threshold_key(job_dir: &Path) -> Result<ThresholdPublicKey> {
    let path = job_dir.join(THRESHOLD_KEY);
    Ok(ThresholdPublicKey::from_bytes(
        &fs::read(&path).map_err(io_err(&path))?,
    )?)
}

// ---------------------------------------------------------------------------------------------
// keygen

/// `keygen`: generate two safe primes of `key_bits / 2` bits and deal the key. The dealer
/// sees the whole key (a trusted dealer, until distributed key generation exists).
pub fn keygen(args: &KeygenArgs) -> Result<KeygenOutput> {
    if args.key_bits < 512 || args.key_bits % 2 != 0 {
        return Err(NetError::Keygen(format!(
            "key bits must be even and at least 512, got {}",
            args.key_bits
        )));
    }
    check_keygen(args)?;
    let mut rng = rand::rngs::OsRng;
    let half = args.key_bits / 2;
    let p = fedchain_crypto::primes::random_safe_prime(half, &mut rng);
    let mut q = fedchain_crypto::primes::random_safe_prime(half, &mut rng);
    while q == p {
        q = fedchain_crypto::primes::random_safe_prime(half, &mut rng);
    }
    keygen_with_primes(args, &p, &q, &mut rng)
}

fn check_keygen(args: &KeygenArgs) -> Result<()> {
    let n = args.hospitals.len();
    if n == 0 {
        return Err(NetError::Keygen("no hospitals".into()));
    }
    if args.threshold == 0 || args.threshold as usize > n {
        return Err(NetError::Keygen(format!(
            "threshold {} must be in 1..={n}",
            args.threshold
        )));
    }
    if args.job_dir.join(THRESHOLD_KEY).exists() {
        return Err(NetError::Keygen(format!(
            "{} already holds a threshold key",
            args.job_dir.display()
        )));
    }
    Ok(())
}

/// A participant's public files in `dir` (a `ca issue --out` directory or its bundle: only
/// `tls.cert.pem` and `identity.json` are read, never a secret), checked: the certificate
/// verifies against the CA certificate in `ca_cert` (and is not on the CRL in `crl`), and
/// identity.json names the certificate's name, role, BLS key and address. `fedchain genesis`
/// reads the aggregator's and the validators' keys this way.
pub fn load_certified(
    dir: &Path,
    ca_cert: &Path,
    crl: Option<&Path>,
) -> Result<(PeerIdentity, IdentityFile)> {
    let bad = |reason: String| NetError::Bundle {
        path: dir.to_path_buf(),
        reason,
    };
    let ca = CertificateDer::from_pem_slice(&read_public(ca_cert)?)
        .map_err(|e| bad(format!("{}: {e}", ca_cert.display())))?;
    let crls = match crl {
        Some(path) => vec![
            CertificateRevocationListDer::from_pem_slice(&read_public(path)?)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?,
        ],
        None => Vec::new(),
    };
    let cert_path = dir.join(TLS_CERT);
    let cert = CertificateDer::from_pem_slice(&read_public(&cert_path)?)
        .map_err(|e| bad(format!("{TLS_CERT}: {e}")))?;
    crate::tls::verify_certificate(&ca, &crls, &cert).map_err(|reason| NetError::Untrusted {
        path: cert_path.clone(),
        reason,
    })?;
    let identity: IdentityFile = serde_json::from_slice(&read_public(&dir.join(IDENTITY))?)
        .map_err(|e| bad(format!("{IDENTITY}: {e}")))?;
    let id = identity_from_cert(&cert)?;
    if id.name != identity.name
        || id.role != identity.role
        || hex::encode(id.bls_key.to_bytes()) != identity.bls_public_key
        || hex::encode(id.address().0) != identity.address
    {
        return Err(bad("identity.json does not match the certificate".into()));
    }
    Ok((id, identity))
}

/// A hospital as the dealer knows it: public files only, checked against the CA.
struct HospitalPublic {
    identity: IdentityFile,
    x25519: x25519_dalek::PublicKey,
}

/// Read a hospital's certificate and identity.json from `dir` (no secret is read) and check
/// them: the certificate verifies against `ca_cert` (and is not on `crls`), carries the identity.json's name, role
/// (hospital) and BLS key, and the proof of possession binds the X25519 key to that BLS key.
fn load_hospital(
    dir: &Path,
    ca_cert: &CertificateDer<'static>,
    crls: &[CertificateRevocationListDer<'static>],
) -> Result<HospitalPublic> {
    let bad = |reason: String| NetError::Keygen(format!("{}: {reason}", dir.display()));
    let cert_path = dir.join(TLS_CERT);
    let cert = CertificateDer::from_pem_slice(&read_public(&cert_path)?)
        .map_err(|e| bad(format!("{TLS_CERT}: {e}")))?;
    crate::tls::verify_certificate(ca_cert, crls, &cert).map_err(|reason| NetError::Untrusted {
        path: cert_path.clone(),
        reason,
    })?;
    let identity: IdentityFile = serde_json::from_slice(&read_public(&dir.join(IDENTITY))?)
        .map_err(|e| bad(format!("{IDENTITY}: {e}")))?;
    check_name(&identity.name)?;
    let id = identity_from_cert(&cert)?;
    if id.name != identity.name
        || id.role != identity.role
        || hex::encode(id.bls_key.to_bytes()) != identity.bls_public_key
        || hex::encode(id.address().0) != identity.address
    {
        return Err(bad("identity.json does not match the certificate".into()));
    }
    if id.role != Role::Hospital {
        return Err(bad(format!(
            "{} is a {}, not a hospital",
            id.name,
            id.role.name()
        )));
    }
    let x = decode_x25519(&identity.x25519_public_key).map_err(&bad)?;
    let pop = decode_pop(&identity.bls_proof_of_possession).map_err(&bad)?;
    let msg = pop_message(&id.name, id.role, &id.bls_key, &x, &cert_public_key(&cert)?);
    if !id.bls_key.verify(&msg, &pop) {
        return Err(NetError::ProofOfPossession { name: id.name });
    }
    Ok(HospitalPublic {
        identity,
        x25519: x25519_dalek::PublicKey::from(x),
    })
}

/// `keygen` from given safe primes (tests use the fixtures; `keygen` generates them).
/// Reads each hospital's public files (never a secret), then writes the public key, the
/// committee and each share sealed to its hospital's X25519 key into the job directory
/// (`shares/<name>.share.enc`), in the order given.
pub fn keygen_with_primes<R: RngCore + CryptoRng + ?Sized>(
    args: &KeygenArgs,
    p: &Integer,
    q: &Integer,
    rng: &mut R,
) -> Result<KeygenOutput> {
    check_keygen(args)?;
    let ca_cert = CertificateDer::from_pem_slice(&read_public(&args.ca_cert)?)
        .map_err(|e| NetError::Keygen(format!("{}: {e}", args.ca_cert.display())))?;
    let crls = match &args.crl {
        Some(path) => vec![
            CertificateRevocationListDer::from_pem_slice(&read_public(path)?)
                .map_err(|e| NetError::Keygen(format!("{}: {e}", path.display())))?,
        ],
        None => Vec::new(),
    };
    let hospitals = args
        .hospitals
        .iter()
        .map(|d| load_hospital(d, &ca_cert, &crls))
        .collect::<Result<Vec<_>>>()?;
    for (i, h) in hospitals.iter().enumerate() {
        let earlier = &hospitals[..i];
        if earlier.iter().any(|o| o.identity.name == h.identity.name) {
            return Err(NetError::Keygen(format!(
                "hospital {} is listed twice",
                h.identity.name
            )));
        }
        if earlier.iter().any(|o| o.x25519 == h.x25519) {
            return Err(NetError::Keygen(format!(
                "hospital {} has the X25519 key of another",
                h.identity.name
            )));
        }
    }
    let parties = u32::try_from(hospitals.len())
        .map_err(|_| NetError::Keygen("too many hospitals".into()))?;
    let dealt = deal(p, q, parties, args.threshold, rng)?;
    let fingerprint = dealt.public.public_key().fingerprint();
    let shares_dir = args.job_dir.join(SHARES);
    fs::create_dir_all(&shares_dir).map_err(io_err(&shares_dir))?;
    let mut committee = Vec::with_capacity(hospitals.len());
    for (h, share) in hospitals.iter().zip(&dealt.shares) {
        let bytes = Zeroizing::new(share.to_bytes());
        let sealed_share = sealed::seal(&h.x25519, fingerprint, share.holder(), &bytes, rng)
            .map_err(|e| NetError::Keygen(format!("{}: {e}", h.identity.name)))?;
        write_file(
            &share_path(&args.job_dir, &h.identity.name),
            &sealed_share,
            false,
        )?;
        committee.push(CommitteeMember {
            holder: share.holder(),
            name: h.identity.name.clone(),
            bls_public_key: h.identity.bls_public_key.clone(),
            address: h.identity.address.clone(),
        });
    }
    drop(dealt.shares);
    let json = serde_json::to_vec_pretty(&committee)
        .map_err(|e| NetError::Keygen(format!("committee encode: {e}")))?;
    write_file(&args.job_dir.join(COMMITTEE), &json, false)?;
    write_file(
        &args.job_dir.join(THRESHOLD_KEY),
        &dealt.public.to_bytes(),
        false,
    )?;
    Ok(KeygenOutput {
        public: dealt.public,
        committee,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_names() {
        assert!(check_name("hospital-1.consortium").is_ok());
        for bad in ["", "Upper", "a..b", "-a", "a b", "a_b"] {
            assert!(
                matches!(check_name(bad), Err(NetError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn identity_extension_round_trips() {
        let k = SigningKey::from_seed(&[7; 32]).verifying_key();
        for role in [Role::Hospital, Role::Aggregator, Role::Validator] {
            let v = identity_extension_value(role, &k);
            assert_eq!(parse_identity_extension(&v).expect("parse"), (role, k));
        }
        let mut v = identity_extension_value(Role::Hospital, &k);
        v[7] = 9;
        assert!(parse_identity_extension(&v).is_err());
        assert!(parse_identity_extension(&v[..40]).is_err());
    }
}
