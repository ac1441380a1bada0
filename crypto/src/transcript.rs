//! A domain-separated Fiat-Shamir transcript over SHA-256.

use rug::integer::Order;
use rug::Integer;
use sha2::{Digest, Sha256};

/// Absorbs labelled, length-prefixed messages and squeezes challenges.
#[derive(Clone, Debug)]
pub struct Transcript {
    hasher: Sha256,
}

impl Transcript {
    /// A transcript bound to a protocol name.
    pub fn new(domain: &'static str) -> Self {
        let mut t = Self {
            hasher: Sha256::new(),
        };
        t.append(b"fedchain-transcript-v1", domain.as_bytes());
        t
    }

    /// Absorb a labelled message.
    pub fn append(&mut self, label: &[u8], msg: &[u8]) {
        self.hasher.update((label.len() as u64).to_be_bytes());
        self.hasher.update(label);
        self.hasher.update((msg.len() as u64).to_be_bytes());
        self.hasher.update(msg);
    }

    /// Absorb a labelled non-negative big integer.
    pub fn append_int(&mut self, label: &[u8], x: &Integer) {
        self.append(label, &x.to_digits::<u8>(Order::Msf));
    }

    /// Absorb a labelled u64.
    pub fn append_u64(&mut self, label: &[u8], x: u64) {
        self.append(label, &x.to_be_bytes());
    }

    /// A challenge of `bits` bits (any length, counter-mode expansion); the transcript
    /// absorbs the label so later challenges differ.
    pub fn challenge(&mut self, label: &[u8], bits: u32) -> Integer {
        self.append(b"challenge", label);
        let seed = self.hasher.clone().finalize();
        let bytes = bits.div_ceil(8) as usize;
        let mut out = Vec::with_capacity(bytes + 32);
        let mut counter = 0u32;
        while out.len() < bytes {
            let mut h = Sha256::new();
            h.update(seed);
            h.update(counter.to_be_bytes());
            out.extend_from_slice(&h.finalize());
            counter += 1;
        }
        out.truncate(bytes);
        let excess = bytes as u32 * 8 - bits;
        if excess > 0 {
            out[0] &= 0xff >> excess;
        }
        self.hasher.update(seed);
        Integer::from_digits(&out, Order::Msf)
    }
}
