//! The compact, versioned binary form of the crate's types.
//!
//! Every encoded object starts with a 4-byte header: the magic `FC`, a format version and a
//! kind tag. Integers are big-endian; big integers are fixed-width big-endian (a ciphertext is
//! always exactly `bytes(n^2)` wide) or length-prefixed where no width is implied. Decoding bytes
//! from outside never panics: every shortfall, bad tag or trailing byte is a typed error.

use rug::integer::Order;
use rug::Integer;

use crate::{CryptoError, Result};

/// Magic bytes that open every encoded object.
pub const MAGIC: [u8; 2] = *b"FC";
/// The binary format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Upper bound on one length-prefixed big integer (bytes); keeps hostile lengths cheap.
pub const MAX_INT_BYTES: usize = 1 << 16;

/// Kind tags of encoded objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    PublicKey = 1,
    PrivateKey = 2,
    Ciphertext = 3,
    CiphertextVector = 4,
    ThresholdPublicKey = 5,
    KeyShare = 6,
    DecryptionShare = 7,
    VectorDecryptionShare = 8,
    ProvenCiphertextVector = 9,
    SlotRangeProof = 10,
}

/// Types with a binary form.
pub trait Encode {
    /// The kind tag written in the header.
    const KIND: Kind;
    /// Append the body (without header).
    fn encode_body(&self, out: &mut Vec<u8>);
    /// The full encoding: header then body.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(Self::KIND as u8);
        self.encode_body(&mut out);
        out
    }
}

/// Types that decode from bytes from outside.
pub trait Decode: Encode + Sized {
    /// Read the body (header already checked).
    fn decode_body(r: &mut Reader<'_>) -> Result<Self>;
    /// Decode a full encoding; rejects bad headers and trailing bytes.
    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, kind_name(Self::KIND));
        r.header(Self::KIND)?;
        let v = Self::decode_body(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::PublicKey => "public key",
        Kind::PrivateKey => "private key",
        Kind::Ciphertext => "ciphertext",
        Kind::CiphertextVector => "ciphertext vector",
        Kind::ThresholdPublicKey => "threshold public key",
        Kind::KeyShare => "key share",
        Kind::DecryptionShare => "decryption share",
        Kind::VectorDecryptionShare => "vector decryption share",
        Kind::ProvenCiphertextVector => "proven ciphertext vector",
        Kind::SlotRangeProof => "slot range proof",
    }
}

/// Append a u32 big-endian.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append a length-prefixed (u32) big-endian non-negative integer.
pub fn put_int(out: &mut Vec<u8>, x: &Integer) {
    let digits = x.to_digits::<u8>(Order::Msf);
    put_u32(out, digits.len() as u32);
    out.extend_from_slice(&digits);
}

/// Append a fixed-width big-endian non-negative integer.
pub fn put_fixed(out: &mut Vec<u8>, x: &Integer, width: usize) {
    crate::num::to_fixed_be(x, width, out);
}

/// A cursor over bytes from outside.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`; `what` names the object in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    /// A decode error for this object.
    pub fn err(&self, reason: impl Into<String>) -> CryptoError {
        CryptoError::Decode {
            what: self.what,
            reason: reason.into(),
        }
    }

    /// Take the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.err(format!(
                "truncated at byte {}: need {n} more, have {}",
                self.pos,
                self.buf.len() - self.pos
            ))),
        }
    }

    /// Check the magic, the version and the kind tag.
    pub fn header(&mut self, kind: Kind) -> Result<()> {
        let h = self.take(4)?;
        if h[..2] != MAGIC {
            return Err(self.err("bad magic"));
        }
        if h[2] != FORMAT_VERSION {
            return Err(self.err(format!("unsupported format version {}", h[2])));
        }
        if h[3] != kind as u8 {
            return Err(self.err(format!("wrong kind tag {} (want {})", h[3], kind as u8)));
        }
        Ok(())
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length-prefixed integer, at most [`MAX_INT_BYTES`] long.
    pub fn int(&mut self) -> Result<Integer> {
        let len = self.u32()? as usize;
        if len > MAX_INT_BYTES {
            return Err(self.err(format!("integer of {len} bytes exceeds the limit")));
        }
        Ok(Integer::from_digits(self.take(len)?, Order::Msf))
    }

    /// A fixed-width integer.
    pub fn fixed(&mut self, width: usize) -> Result<Integer> {
        Ok(Integer::from_digits(self.take(width)?, Order::Msf))
    }

    /// A count that must be at most `max`, so a hostile count cannot force a huge allocation.
    pub fn count(&mut self, max: usize, of: &str) -> Result<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(self.err(format!("{n} {of} exceed the limit of {max}")));
        }
        Ok(n)
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Require that every byte was consumed.
    pub fn finish(&self) -> Result<()> {
        if self.pos != self.buf.len() {
            return Err(self.err(format!("{} trailing bytes", self.buf.len() - self.pos)));
        }
        Ok(())
    }
}
