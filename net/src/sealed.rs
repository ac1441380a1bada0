//! Key shares sealed to their holder's X25519 key, so a dealer's output can travel over
//! untrusted channels (and sit in a job directory everyone receives).
//!
//! Layout of a sealed share (`job/shares/<name>.share.enc`), all integers big-endian:
//!
//! ```text
//! magic "FCSE" | version 1 (u8) | holder (u32) | threshold key fingerprint (32) |
//! recipient X25519 public key (32) | ephemeral X25519 public key (32) | ciphertext + tag
//! ```
//!
//! The sender draws a fresh ephemeral X25519 key, computes the shared secret with the
//! recipient's public key (refusing a non-contributory result, i.e. a low-order recipient
//! key), and derives a ChaCha20-Poly1305 key and nonce with HKDF-SHA256 (salt
//! [`DOMAIN`], info = the whole header). The header is the associated data, so the holder
//! index, the threshold key fingerprint and both public keys are authenticated: a share
//! moved to another holder, another key or another recipient does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Domain separation of the key derivation and the associated data.
pub const DOMAIN: &[u8] = b"fedchain/sealed-key-share/v1";
/// Magic bytes of a sealed share.
pub const MAGIC: [u8; 4] = *b"FCSE";
/// Format version.
pub const VERSION: u8 = 1;
/// Bytes of the header (authenticated, not encrypted).
pub const HEADER_BYTES: usize = 4 + 1 + 4 + 32 + 32 + 32;
/// Bytes of the Poly1305 tag.
pub const TAG_BYTES: usize = 16;

/// Why a sealed share does not open (or cannot be sealed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not a sealed share of this format (too short, bad magic, unknown version).
    #[error("not a sealed key share: {0}")]
    Malformed(&'static str),
    /// Sealed to another X25519 key than the opener's.
    #[error("sealed to X25519 key {found}, not to this holder's {expected}")]
    WrongRecipient { expected: String, found: String },
    /// Sealed for another threshold key or another holder index.
    #[error("sealed for {0}")]
    OtherKey(String),
    /// Authentication failed: the header or the ciphertext was altered, or the recipient key
    /// in the header was replaced.
    #[error("authentication failed (altered or not sealed to this key)")]
    Tampered,
    /// The recipient's public key is of low order (the shared secret would be predictable).
    #[error("the recipient's X25519 key is of low order")]
    NonContributory,
}

/// The authenticated header of a sealed share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHeader {
    pub holder: u32,
    pub key_fingerprint: [u8; 32],
    pub recipient: [u8; 32],
    pub ephemeral: [u8; 32],
}

impl SealedHeader {
    fn to_bytes(&self) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5..9].copy_from_slice(&self.holder.to_be_bytes());
        h[9..41].copy_from_slice(&self.key_fingerprint);
        h[41..73].copy_from_slice(&self.recipient);
        h[73..105].copy_from_slice(&self.ephemeral);
        h
    }

    /// Parse the header of a sealed share (nothing is authenticated yet).
    pub fn parse(sealed: &[u8]) -> Result<Self, SealError> {
        if sealed.len() < HEADER_BYTES + TAG_BYTES {
            return Err(SealError::Malformed("too short"));
        }
        if sealed[..4] != MAGIC {
            return Err(SealError::Malformed("bad magic"));
        }
        if sealed[4] != VERSION {
            return Err(SealError::Malformed("unknown version"));
        }
        let arr = |r: std::ops::Range<usize>| {
            let mut a = [0u8; 32];
            a.copy_from_slice(&sealed[r]);
            a
        };
        let mut holder = [0u8; 4];
        holder.copy_from_slice(&sealed[5..9]);
        Ok(Self {
            holder: u32::from_be_bytes(holder),
            key_fingerprint: arr(9..41),
            recipient: arr(41..73),
            ephemeral: arr(73..105),
        })
    }
}

fn cipher(
    shared: &[u8; 32],
    header: &[u8; HEADER_BYTES],
) -> Result<(ChaCha20Poly1305, [u8; 12]), SealError> {
    let hk = Hkdf::<Sha256>::new(Some(DOMAIN), shared);
    let mut okm = Zeroizing::new([0u8; 44]);
    // 44 bytes is far below HKDF-SHA256's limit of 255 * 32, so this does not fail.
    hk.expand(header, okm.as_mut())
        .map_err(|_| SealError::Malformed("key derivation"))?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    Ok((ChaCha20Poly1305::new(Key::from_slice(&okm[..32])), nonce))
}

/// Seal `plaintext` (a serialized key share) to `recipient` for holder `holder` of the
/// threshold key with fingerprint `key_fingerprint`.
pub fn seal<R: RngCore + CryptoRng + ?Sized>(
    recipient: &PublicKey,
    key_fingerprint: [u8; 32],
    holder: u32,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    let eph = EphemeralSecret::random_from_rng(&mut *rng);
    let header = SealedHeader {
        holder,
        key_fingerprint,
        recipient: recipient.to_bytes(),
        ephemeral: PublicKey::from(&eph).to_bytes(),
    }
    .to_bytes();
    let shared = eph.diffie_hellman(recipient);
    if !shared.was_contributory() {
        return Err(SealError::NonContributory);
    }
    let (c, nonce) = cipher(shared.as_bytes(), &header)?;
    let ct = c
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &header,
            },
        )
        .map_err(|_| SealError::Malformed("plaintext too long"))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + ct.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Open a sealed share with the holder's X25519 secret, checking first that it was sealed to
/// this key, for `holder` of the threshold key with fingerprint `key_fingerprint`.
pub fn open(
    secret: &StaticSecret,
    key_fingerprint: [u8; 32],
    holder: u32,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let h = SealedHeader::parse(sealed)?;
    let mine = PublicKey::from(secret).to_bytes();
    if h.recipient != mine {
        return Err(SealError::WrongRecipient {
            expected: hex::encode(mine),
            found: hex::encode(h.recipient),
        });
    }
    if h.key_fingerprint != key_fingerprint {
        return Err(SealError::OtherKey(format!(
            "threshold key {}, not this job's {}",
            hex::encode(h.key_fingerprint),
            hex::encode(key_fingerprint)
        )));
    }
    if h.holder != holder {
        return Err(SealError::OtherKey(format!(
            "holder {}, not holder {holder}",
            h.holder
        )));
    }
    let shared = secret.diffie_hellman(&PublicKey::from(h.ephemeral));
    if !shared.was_contributory() {
        return Err(SealError::Tampered);
    }
    let header = h.to_bytes();
    let (c, nonce) = cipher(shared.as_bytes(), &header)?;
    c.decrypt(
        Nonce::from_slice(&nonce),
        Payload {
            msg: &sealed[HEADER_BYTES..],
            aad: &header,
        },
    )
    .map(Zeroizing::new)
    .map_err(|_| SealError::Tampered)
}

/// Whether an X25519 public key is usable as a recipient (not of low order).
pub fn is_contributory<R: RngCore + CryptoRng + ?Sized>(key: &PublicKey, rng: &mut R) -> bool {
    EphemeralSecret::random_from_rng(&mut *rng)
        .diffie_hellman(key)
        .was_contributory()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn seals_and_opens_and_refuses_alterations() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let a = StaticSecret::random_from_rng(&mut rng);
        let b = StaticSecret::random_from_rng(&mut rng);
        let fp = [7u8; 32];
        let sealed = seal(&PublicKey::from(&a), fp, 2, b"share", &mut rng).expect("seal");
        assert_eq!(open(&a, fp, 2, &sealed).expect("open").as_slice(), b"share");
        assert!(matches!(
            open(&b, fp, 2, &sealed),
            Err(SealError::WrongRecipient { .. })
        ));
        assert!(matches!(
            open(&a, [8; 32], 2, &sealed),
            Err(SealError::OtherKey(_))
        ));
        assert!(matches!(
            open(&a, fp, 3, &sealed),
            Err(SealError::OtherKey(_))
        ));
        for i in [5, 9, 80, HEADER_BYTES, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 1;
            let r = open(&a, fp, 2, &t);
            assert!(r.is_err(), "byte {i}");
        }
        // the header claims b as recipient: b finds it addressed to itself, but it does not open
        let mut t = sealed.clone();
        t[41..73].copy_from_slice(PublicKey::from(&b).as_bytes());
        assert_eq!(open(&b, fp, 2, &t), Err(SealError::Tampered));
        assert!(matches!(
            open(&a, fp, 2, &sealed[..HEADER_BYTES]),
            Err(SealError::Malformed(_))
        ));
        // a low-order recipient key is refused
        assert_eq!(
            seal(&PublicKey::from([0u8; 32]), fp, 1, b"x", &mut rng),
            Err(SealError::NonContributory)
        );
        assert!(!is_contributory(&PublicKey::from([0u8; 32]), &mut rng));
    }
}
