//! Consortium PKI: a CA per consortium, one bundle per participant, revocation lists, and the
//! dealing of a job's threshold Paillier key into the hospitals' bundles.
//!
//! CA directory (`ca init --dir D`): `ca.key.pem` (0600), `ca.cert.pem`, `index.json`
//! (issued names, roles, serials, revocations, CRL number) and `crl.pem` (always present,
//! re-signed on every revocation).
//!
//! Bundle directory (`ca issue --out B`): `tls.key.pem` (0600), `tls.cert.pem`, `ca.cert.pem`,
//! `crl.pem` (the CA's CRL when the bundle was issued), `bls.key` (hex, 0600), `identity.json`
//! and, after `keygen`, `key_share.fc` (0600, this holder's share only).
//!
//! Identity binding: the leaf certificate carries the participant's name as its SAN DNS name
//! and common name, and a non-critical extension [`IDENTITY_EXTENSION_OID`] whose value is
//! the DER `SEQUENCE { version INTEGER (1), role ENUMERATED (0 hospital, 1 aggregator,
//! 2 validator), blsPublicKey OCTET STRING (SIZE (48)) }`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use fedchain_crypto::identity::{SigningKey, VerifyingKey, PUBLIC_KEY_BYTES};
use fedchain_crypto::{deal, Decode, Encode, Integer, KeyShare, ThresholdPublicKey};
use fedchain_ledger::types::Role;
use fedchain_ledger::Address;
use rand::{CryptoRng, RngCore};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::{io_err, NetError, Result};

/// The private OID of the identity extension: 1.3.6.1.4.1.59337.6.1 ("fedchain identity v1").
/// 59337 is a placeholder private-enterprise arc; a deployment should replace it with its own
/// registered arc (changing it only requires re-issuing certificates).
pub const IDENTITY_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 59337, 6, 1];

const CA_KEY: &str = "ca.key.pem";
const CA_CERT: &str = "ca.cert.pem";
const INDEX: &str = "index.json";
const CRL: &str = "crl.pem";
const TLS_KEY: &str = "tls.key.pem";
const TLS_CERT: &str = "tls.cert.pem";
const BLS_KEY: &str = "bls.key";
const IDENTITY: &str = "identity.json";
/// File name of a hospital's key share inside its bundle.
pub const KEY_SHARE: &str = "key_share.fc";
/// File name of the public threshold key inside a job directory.
pub const THRESHOLD_KEY: &str = "threshold_key.fc";
/// File name of the committee (holders in order) inside a job directory.
pub const COMMITTEE: &str = "committee.json";

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

/// `ca issue`: issue a participant bundle.
#[derive(Debug, Clone, clap::Args)]
pub struct CaIssueArgs {
    /// The CA directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Participant name (a DNS label sequence: lower-case letters, digits, '-', '.').
    #[arg(long)]
    pub name: String,
    /// Participant role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Output bundle directory (must not exist or be empty).
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

/// `keygen`: deal a job's threshold Paillier key into the hospitals' bundles.
#[derive(Debug, Clone, clap::Args)]
pub struct KeygenArgs {
    /// Job directory for the public threshold key and the committee list.
    #[arg(long)]
    pub job_dir: PathBuf,
    /// Shares needed to decrypt.
    #[arg(long)]
    pub threshold: u32,
    /// Modulus size in bits (two safe primes of half the size).
    #[arg(long, default_value_t = 2048)]
    pub key_bits: u32,
    /// Hospital bundles, in committee order (holder 1, 2, ...).
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

fn check_name(name: &str) -> Result<()> {
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
        let key = KeyPair::from_pem(&read_string(&key_path)?)
            .map_err(|e| corrupt(&key_path, e.to_string()))?;
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
pub fn ca_init(args: &CaInitArgs) -> Result<()> {
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
    write_file(&dir.join(CA_KEY), key.serialize_pem().as_bytes(), true)?;
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
    ca.write_crl()
}

/// `ca issue`: issue a bundle for a participant (TLS key and certificate binding its role and
/// a fresh BLS key, the CA certificate, the current CRL, the BLS key and identity.json).
pub fn ca_issue(args: &CaIssueArgs) -> Result<IdentityFile> {
    check_name(&args.name)?;
    let mut ca = Ca::load(&args.dir)?;
    if ca.index.issued.iter().any(|c| c.name == args.name) {
        return Err(NetError::DuplicateName {
            name: args.name.clone(),
        });
    }
    let out = &args.out;
    if out.exists() && fs::read_dir(out).map_err(io_err(out))?.next().is_some() {
        return Err(NetError::Bundle {
            path: out.clone(),
            reason: "output directory exists and is not empty".into(),
        });
    }
    let role = Role::from(args.role);
    let mut rng = rand::rngs::OsRng;
    let bls = SigningKey::generate(&mut rng);
    let bls_pub = bls.verifying_key();

    let tls_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![args.name.clone()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, args.name.clone());
    dn.push(DnType::OrganizationName, ca.index.consortium.clone());
    params.distinguished_name = dn;
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
        identity_extension_value(role, &bls_pub),
    )];
    let cert = params.signed_by(&tls_key, &ca.issuer()?)?;

    let identity = IdentityFile {
        name: args.name.clone(),
        role,
        bls_public_key: hex::encode(bls_pub.to_bytes()),
        address: hex::encode(Address::of(&bls_pub).0),
        consortium: ca.index.consortium.clone(),
        serial: hex::encode(serial),
    };
    fs::create_dir_all(out).map_err(io_err(out))?;
    write_file(&out.join(TLS_KEY), tls_key.serialize_pem().as_bytes(), true)?;
    write_file(&out.join(TLS_CERT), cert.pem().as_bytes(), false)?;
    write_file(&out.join(CA_CERT), ca.cert_pem.as_bytes(), false)?;
    let crl = fs::read(args.dir.join(CRL)).map_err(io_err(args.dir.join(CRL)))?;
    write_file(&out.join(CRL), &crl, false)?;
    write_file(
        &out.join(BLS_KEY),
        hex::encode(bls.to_bytes()).as_bytes(),
        true,
    )?;
    let json = serde_json::to_vec_pretty(&identity)
        .map_err(|e| NetError::Tls(format!("identity encode: {e}")))?;
    write_file(&out.join(IDENTITY), &json, false)?;

    ca.index.issued.push(IssuedCert {
        name: args.name.clone(),
        role,
        serial: identity.serial.clone(),
        bls_public_key: identity.bls_public_key.clone(),
        revoked_at: None,
    });
    ca.save_index()?;
    Ok(identity)
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

/// A participant's bundle, loaded for the transport and the services.
pub struct Bundle {
    pub dir: PathBuf,
    pub identity: IdentityFile,
    pub cert: CertificateDer<'static>,
    pub ca_cert: CertificateDer<'static>,
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    key: PrivateKeyDer<'static>,
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
    /// Load a bundle directory and check that its certificate carries the identity in
    /// identity.json.
    pub fn load(dir: &Path) -> Result<Self> {
        let bad = |reason: String| NetError::Bundle {
            path: dir.to_path_buf(),
            reason,
        };
        let pem_err = |f: &str, e: rustls::pki_types::pem::Error| bad(format!("{f}: {e}"));
        let read = |f: &str| fs::read(dir.join(f)).map_err(io_err(dir.join(f)));
        let cert =
            CertificateDer::from_pem_slice(&read(TLS_CERT)?).map_err(|e| pem_err(TLS_CERT, e))?;
        let ca_cert =
            CertificateDer::from_pem_slice(&read(CA_CERT)?).map_err(|e| pem_err(CA_CERT, e))?;
        let key =
            PrivateKeyDer::from_pem_slice(&read(TLS_KEY)?).map_err(|e| pem_err(TLS_KEY, e))?;
        let identity: IdentityFile = serde_json::from_slice(&read(IDENTITY)?)
            .map_err(|e| bad(format!("{IDENTITY}: {e}")))?;
        let mut b = Self {
            dir: dir.to_path_buf(),
            identity,
            cert,
            ca_cert,
            crls: Vec::new(),
            key,
        };
        if dir.join(CRL).exists() {
            b.load_crl(&dir.join(CRL))?;
        }
        let from_cert = identity_from_cert(&b.cert)?;
        if from_cert.name != b.identity.name
            || from_cert.role != b.identity.role
            || hex::encode(from_cert.bls_key.to_bytes()) != b.identity.bls_public_key
        {
            return Err(bad("identity.json does not match the certificate".into()));
        }
        Ok(b)
    }

    /// Replace the revocation lists with the CRL in `path` (e.g. the CA's latest `crl.pem`).
    pub fn load_crl(&mut self, path: &Path) -> Result<()> {
        let bytes = fs::read(path).map_err(io_err(path))?;
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
        let hexs = read_string(&path)?;
        let bad = |reason: String| NetError::Bundle {
            path: path.clone(),
            reason,
        };
        let bytes = hex::decode(hexs.trim()).map_err(|e| bad(e.to_string()))?;
        let key = SigningKey::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
        if hex::encode(key.verifying_key().to_bytes()) != self.identity.bls_public_key {
            return Err(bad("BLS key does not match identity.json".into()));
        }
        Ok(key)
    }

    /// This hospital's threshold key share, if `keygen` wrote one, checked against `tpk`.
    pub fn key_share(&self, tpk: &ThresholdPublicKey) -> Result<KeyShare> {
        let path = self.dir.join(KEY_SHARE);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let share = KeyShare::from_bytes(&bytes)?;
        share.check_key(tpk)?;
        Ok(share)
    }
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

/// `keygen`: generate two safe primes of `key_bits / 2` bits and deal the key.
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
        return Err(NetError::Keygen("no hospital bundles".into()));
    }
    if args.threshold == 0 || args.threshold as usize > n {
        return Err(NetError::Keygen(format!(
            "threshold {} must be in 1..={n}",
            args.threshold
        )));
    }
    Ok(())
}

/// `keygen` from given safe primes (tests use the fixtures; `keygen` generates them).
/// Writes the public key and committee into the job directory and each share only into its
/// hospital's bundle, in the order given.
pub fn keygen_with_primes<R: RngCore + CryptoRng + ?Sized>(
    args: &KeygenArgs,
    p: &Integer,
    q: &Integer,
    rng: &mut R,
) -> Result<KeygenOutput> {
    check_keygen(args)?;
    let bundles = args
        .hospitals
        .iter()
        .map(|d| Bundle::load(d))
        .collect::<Result<Vec<_>>>()?;
    for (i, b) in bundles.iter().enumerate() {
        if b.identity.role != Role::Hospital {
            return Err(NetError::Keygen(format!(
                "{} is a {}, not a hospital",
                b.identity.name,
                b.identity.role.name()
            )));
        }
        if bundles[..i]
            .iter()
            .any(|o| o.identity.name == b.identity.name)
        {
            return Err(NetError::Keygen(format!(
                "hospital {} is listed twice",
                b.identity.name
            )));
        }
        if b.dir.join(KEY_SHARE).exists() {
            return Err(NetError::Keygen(format!(
                "{} already holds a key share ({})",
                b.identity.name,
                b.dir.join(KEY_SHARE).display()
            )));
        }
    }
    let parties =
        u32::try_from(bundles.len()).map_err(|_| NetError::Keygen("too many hospitals".into()))?;
    let dealt = deal(p, q, parties, args.threshold, rng)?;
    fs::create_dir_all(&args.job_dir).map_err(io_err(&args.job_dir))?;
    let mut committee = Vec::with_capacity(bundles.len());
    for (b, share) in bundles.iter().zip(&dealt.shares) {
        write_file(&b.dir.join(KEY_SHARE), &share.to_bytes(), true)?;
        committee.push(CommitteeMember {
            holder: share.holder(),
            name: b.identity.name.clone(),
            bls_public_key: b.identity.bls_public_key.clone(),
            address: b.identity.address.clone(),
        });
    }
    write_file(
        &args.job_dir.join(THRESHOLD_KEY),
        &dealt.public.to_bytes(),
        false,
    )?;
    let json = serde_json::to_vec_pretty(&committee)
        .map_err(|e| NetError::Keygen(format!("committee encode: {e}")))?;
    write_file(&args.job_dir.join(COMMITTEE), &json, false)?;
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
