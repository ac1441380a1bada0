//! Binary Merkle trees over transaction hashes, with inclusion proofs.
//!
//! Leaves and inner nodes are hashed under different domains (no second-preimage trick); an odd
//! node at the end of a level is promoted unchanged. The root of no leaves is the hash of the
//! empty domain.

use serde::{Deserialize, Serialize};

use crate::types::Hash;

fn leaf(h: &Hash) -> Hash {
    Hash::of(b"fedchain/merkle-leaf/v1", &[&h.0])
}

fn node(l: &Hash, r: &Hash) -> Hash {
    Hash::of(b"fedchain/merkle-node/v1", &[&l.0, &r.0])
}

/// Pair up a level; an odd last node is promoted unchanged.
fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|c| {
            if c.len() == 2 {
                node(&c[0], &c[1])
            } else {
                c[0]
            }
        })
        .collect()
}

/// The Merkle root of `items`.
pub fn root(items: &[Hash]) -> Hash {
    if items.is_empty() {
        return Hash::of(b"fedchain/merkle-empty/v1", &[]);
    }
    let mut level: Vec<Hash> = items.iter().map(leaf).collect();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// An inclusion proof: the sibling path from a leaf to the root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    pub index: u64,
    pub leaves: u64,
    /// (sibling, sibling is on the left)
    pub path: Vec<(Hash, bool)>,
}

/// The proof that `items[index]` is in `root(items)`.
pub fn prove(items: &[Hash], index: usize) -> Option<Proof> {
    if index >= items.len() {
        return None;
    }
    let mut level: Vec<Hash> = items.iter().map(leaf).collect();
    let mut i = index;
    let mut path = Vec::new();
    while level.len() > 1 {
        let sib = i ^ 1;
        if sib < level.len() {
            path.push((level[sib], sib < i));
        }
        level = next_level(&level);
        i /= 2;
    }
    Some(Proof {
        index: index as u64,
        leaves: items.len() as u64,
        path,
    })
}

/// Whether `proof` shows `item` under `root`.
pub fn verify(root_hash: &Hash, item: &Hash, proof: &Proof) -> bool {
    if proof.index >= proof.leaves {
        return false;
    }
    // recompute the expected shape of the path from index and leaf count
    let (mut i, mut n) = (proof.index, proof.leaves);
    let mut acc = leaf(item);
    let mut steps = proof.path.iter();
    while n > 1 {
        let sib = i ^ 1;
        if sib < n {
            let Some((h, left)) = steps.next() else {
                return false;
            };
            if *left != (sib < i) {
                return false;
            }
            acc = if *left { node(h, &acc) } else { node(&acc, h) };
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    steps.next().is_none() && acc == *root_hash
}
