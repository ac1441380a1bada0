//! Audit: replay a stored chain from genesis and check everything.

use crate::chain::body_bytes;
use crate::error::AuditError;
use crate::state::{
    apply_checked_block, check_block_crypto, genesis_block, Certs, Finality, Genesis, State,
};
use crate::store::{header_hash, tx_location_bytes, Column, Head, Store};
use rayon::prelude::*;
use std::collections::HashMap;

use crate::types::*;

/// Everything a committed round claims, extracted during replay for crypto re-verification.
#[derive(Debug, Clone)]
pub struct RoundClaim {
    /// Hash of the CommitRound transaction.
    pub tx: Hash,
    /// The chain's id (submissions' knowledge proofs are bound to it).
    pub chain_id: String,
    /// Height of the block holding the commit.
    pub height: u64,
    pub job: JobId,
    pub round: u32,
    pub spec: JobSpec,
    /// Accepted submissions: (hospital, payload digest, sample count).
    pub accepted: Vec<(Address, Hash, u64)>,
    /// Decryption shares used: (holder, payload digest).
    pub shares: Vec<(Address, Hash)>,
    /// Hash of the round's starting parameters (from its OpenRound).
    pub params_hash: Hash,
    /// The committed aggregate digest and new parameters hash.
    pub aggregate: Hash,
    pub new_params_hash: Hash,
}

/// What an `InvalidPayload` or `InvalidShare` penalty claims, with its evidence on chain: the
/// offender's submission (its signed `Submit` names `digest`) is not a valid payload of the
/// job, or its decryption share (`digest`) does not verify against the product of the round's
/// valid submissions. The chain rules check that the offender sent that digest in that round;
/// a [`RoundVerifier`] re-checks that the payload really is invalid.
#[derive(Debug, Clone)]
pub struct PenaltyClaim {
    /// Hash of the Penalty transaction.
    pub tx: Hash,
    pub chain_id: String,
    /// Height of the block holding the penalty.
    pub height: u64,
    pub job: JobId,
    pub round: u32,
    pub spec: JobSpec,
    pub offender: Address,
    /// The payload the penalty is about (the offender's submission, or its share).
    pub digest: Hash,
    /// `true` for `InvalidShare`, `false` for `InvalidPayload`.
    pub share: bool,
    /// The round's valid (non-rejected) submissions just before the penalty: (hospital,
    /// payload digest, samples); a share is checked against their product.
    pub submissions: Vec<(Address, Hash, u64)>,
}

/// What a `VoidUnpackable` claims: the canonical t of the round's valid decryption shares
/// combine into an aggregate that does not unpack.
#[derive(Debug, Clone)]
pub struct VoidClaim {
    /// Hash of the VoidUnpackable transaction.
    pub tx: Hash,
    pub chain_id: String,
    pub height: u64,
    pub job: JobId,
    pub round: u32,
    pub spec: JobSpec,
    /// The round's valid submissions: (hospital, payload digest, samples).
    pub submissions: Vec<(Address, Hash, u64)>,
    /// The round's valid decryption shares: (holder, payload digest).
    pub shares: Vec<(Address, Hash)>,
    /// The summed plaintext the void says does not unpack.
    pub plaintext: u32,
}

/// A range proof of a blame step: a [`RoundVerifier`] checks it against the prover's
/// submission before it may enter a block.
#[derive(Debug, Clone)]
pub struct RangeClaim {
    /// Hash of the RangeProof transaction.
    pub tx: Hash,
    pub chain_id: String,
    pub height: u64,
    pub job: JobId,
    pub round: u32,
    pub spec: JobSpec,
    pub prover: Address,
    /// The prover's submission payload.
    pub submission: Hash,
    /// The blamed summed plaintext.
    pub plaintext: u32,
    /// The proof's payload.
    pub proof: Hash,
}

/// A claim of a block that only the cryptography can check.
#[derive(Debug, Clone)]
pub enum Claim {
    Round(RoundClaim),
    Penalty(PenaltyClaim),
    Void(VoidClaim),
    Range(RangeClaim),
}

impl Claim {
    /// Hash of the transaction that makes the claim.
    pub fn tx(&self) -> Hash {
        match self {
            Claim::Round(c) => c.tx,
            Claim::Penalty(c) => c.tx,
            Claim::Void(c) => c.tx,
            Claim::Range(c) => c.tx,
        }
    }

    /// Height of the block holding the claim.
    pub fn height(&self) -> u64 {
        match self {
            Claim::Round(c) => c.height,
            Claim::Penalty(c) => c.height,
            Claim::Void(c) => c.height,
            Claim::Range(c) => c.height,
        }
    }

    /// Check it with `v`; the error names the job, round and (for a penalty) the offender.
    pub fn verify(
        &self,
        v: &dyn RoundVerifier,
        payload: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String> {
        match self {
            Claim::Round(c) => v
                .verify_round(c, payload)
                .map_err(|e| format!("job {} round {}: {e}", c.job, c.round)),
            Claim::Penalty(c) => v.verify_penalty(c, payload).map_err(|e| {
                format!(
                    "job {} round {}: penalty of {}: {e}",
                    c.job, c.round, c.offender
                )
            }),
            Claim::Void(c) => v
                .verify_void(c, payload)
                .map_err(|e| format!("job {} round {}: void: {e}", c.job, c.round)),
            Claim::Range(c) => v.verify_range(c, payload).map_err(|e| {
                format!(
                    "job {} round {}: range proof of {}: {e}",
                    c.job, c.round, c.prover
                )
            }),
        }
    }
}

/// Re-verifies the cryptography of committed rounds (the ciphertext product, decryption-share
/// proofs, the combined result) and the evidence of penalties. The ledger knows no payload
/// formats: the coordinator's rules plug in here. Claims are checked in parallel across cores.
pub trait RoundVerifier: Sync {
    /// Ok, or what is wrong with this round.
    fn verify_round(
        &self,
        claim: &RoundClaim,
        payload: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String>;

    /// Ok if the evidence proves the offence, or why it does not.
    fn verify_penalty(
        &self,
        claim: &PenaltyClaim,
        payload: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String>;

    /// Ok if the round's decrypted aggregate really does not unpack at the named plaintext.
    fn verify_void(
        &self,
        claim: &VoidClaim,
        payload: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String>;

    /// Ok if the range proof proves the prover's ciphertext at the blamed plaintext in range.
    fn verify_range(
        &self,
        claim: &RangeClaim,
        payload: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String>;
}

/// What a clean audit saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub blocks: u64,
    pub transactions: u64,
    pub payloads_checked: u64,
    pub head: Hash,
    pub supply: u128,
    /// Rounds whose cryptography a [`RoundVerifier`] re-checked.
    pub rounds_verified: u64,
    /// Penalties whose evidence a [`RoundVerifier`] re-checked.
    pub penalties_verified: u64,
    /// Range proofs of blame steps re-verified (with a verifier).
    pub range_proofs_verified: u64,
}

/// The claims of the CommitRound and evidence-carrying Penalty transactions in `block`, each
/// read against the state just before it (the block's earlier transactions are applied to a
/// scratch copy first).
pub fn claims_of_block(before: &State, block: &Block, out: &mut Vec<Claim>) {
    claims_of_txs(before, block.header.height, &block.txs, out)
}

/// [`claims_of_block`] of transactions meant for a block at `height` (what a validator checks
/// before it admits a transaction to its mempool).
pub fn claims_of_txs(before: &State, height: u64, txs: &[SignedTx], out: &mut Vec<Claim>) {
    let mut s = before.clone();
    for t in txs {
        match &t.tx.kind {
            TxKind::CommitRound {
                job,
                round,
                aggregate,
                new_params_hash,
                accepted,
                share_providers,
            } => {
                if let Some(j) = s.jobs.get(job) {
                    if let Some(open) = j.open.as_ref().filter(|o| o.round == *round) {
                        out.push(Claim::Round(RoundClaim {
                            tx: t.hash(),
                            chain_id: s.chain_id.clone(),
                            height,
                            job: *job,
                            round: *round,
                            spec: j.spec.clone(),
                            accepted: accepted
                                .iter()
                                .filter_map(|a| {
                                    open.submissions.get(a).map(|x| (*a, x.payload, x.samples))
                                })
                                .collect(),
                            shares: share_providers
                                .iter()
                                .filter_map(|a| open.shares.get(a).map(|x| (*a, x.0)))
                                .collect(),
                            params_hash: open.params_hash,
                            aggregate: *aggregate,
                            new_params_hash: *new_params_hash,
                        }));
                    }
                }
            }
            TxKind::VoidUnpackable {
                job,
                round,
                plaintext,
            } => {
                if let Some(j) = s.jobs.get(job) {
                    if let Some(open) = j.open.as_ref().filter(|o| o.round == *round) {
                        out.push(Claim::Void(VoidClaim {
                            tx: t.hash(),
                            chain_id: s.chain_id.clone(),
                            height,
                            job: *job,
                            round: *round,
                            spec: j.spec.clone(),
                            submissions: valid_submissions(open),
                            shares: open
                                .shares
                                .iter()
                                .filter(|(_, (_, bad))| !bad)
                                .map(|(a, (d, _))| (*a, *d))
                                .collect(),
                            plaintext: *plaintext,
                        }));
                    }
                }
            }
            TxKind::RangeProof {
                job,
                round,
                payload,
            } => {
                let prover = t.sender();
                if let Some(j) = s.jobs.get(job) {
                    if let Some(open) = j.open.as_ref().filter(|o| o.round == *round) {
                        if let (Some(step), Some(sub)) =
                            (open.blame.as_ref(), open.submissions.get(&prover))
                        {
                            out.push(Claim::Range(RangeClaim {
                                tx: t.hash(),
                                chain_id: s.chain_id.clone(),
                                height,
                                job: *job,
                                round: *round,
                                spec: j.spec.clone(),
                                prover,
                                submission: sub.payload,
                                plaintext: step.plaintext,
                                proof: *payload,
                            }));
                        }
                    }
                }
            }
            TxKind::Penalty {
                job,
                offender,
                offence,
            } => {
                // an equivocation's evidence (both signed messages) is checked by the chain
                // rules; invalid payloads and shares need the cryptography
                let evidence = match offence {
                    Offence::InvalidPayload { round, digest, .. } => Some((*round, *digest, false)),
                    Offence::InvalidShare { round, digest, .. } => Some((*round, *digest, true)),
                    Offence::Equivocation { .. } => None,
                };
                if let (Some((round, digest, share)), Some(j)) = (evidence, s.jobs.get(job)) {
                    if let Some(open) = j.open.as_ref().filter(|o| o.round == round) {
                        out.push(Claim::Penalty(PenaltyClaim {
                            tx: t.hash(),
                            chain_id: s.chain_id.clone(),
                            height,
                            job: *job,
                            round,
                            spec: j.spec.clone(),
                            offender: *offender,
                            digest,
                            share,
                            submissions: valid_submissions(open),
                        }));
                    }
                }
            }
            _ => {}
        }
        // invalid transactions make apply_block fail right after; ignore them here
        let _ = s.apply_tx(t, height, &|_: &Hash| true);
    }
}

/// A round's valid submissions as claims list them: (hospital, payload digest, samples).
fn valid_submissions(open: &crate::state::OpenRound) -> Vec<(Address, Hash, u64)> {
    open.submissions
        .iter()
        .filter(|(_, x)| !x.rejected)
        .map(|(a, x)| (*a, x.payload, x.samples))
        .collect()
}

/// Blocks read and checked in parallel at a time.
const AUDIT_CHUNK: u64 = 256;

/// Decode a stored block; a missing or undecodable part is `Corrupt` at its height.
fn decode_block(
    height: u64,
    hb: Option<Vec<u8>>,
    bb: Option<Vec<u8>>,
) -> Result<Block, AuditError> {
    let corrupt = |what: &'static str, reason: String| AuditError::Corrupt {
        height,
        what,
        reason,
    };
    let hb = hb.ok_or_else(|| corrupt("header", "missing".into()))?;
    let bb = bb.ok_or_else(|| corrupt("body", "missing".into()))?;
    let header: BlockHeader =
        decode("header", &hb).map_err(|e| corrupt("header", e.to_string()))?;
    let (txs, cert): (Vec<SignedTx>, Option<Certificate>) =
        decode("body", &bb).map_err(|e| corrupt("body", e.to_string()))?;
    if header.height != height {
        return Err(corrupt("header", format!("says height {}", header.height)));
    }
    Ok(Block { header, txs, cert })
}

fn store_err(e: crate::LedgerError) -> AuditError {
    AuditError::Store(e.to_string())
}

/// The genesis configuration stored in a ledger.
pub fn stored_genesis<S: Store>(store: &S) -> Result<Genesis, AuditError> {
    let bytes = store
        .genesis()
        .map_err(store_err)?
        .ok_or(AuditError::Corrupt {
            height: 0,
            what: "genesis",
            reason: "no genesis configuration stored".into(),
        })?;
    let genesis: Genesis = decode("genesis", &bytes).map_err(|e| AuditError::Corrupt {
        height: 0,
        what: "genesis",
        reason: e.to_string(),
    })?;
    genesis.check().map_err(|e| AuditError::Corrupt {
        height: 0,
        what: "genesis",
        reason: e.to_string(),
    })?;
    Ok(genesis)
}

/// Replay every block from genesis: hashes, links, Merkle roots, quorum certificates,
/// signatures, payload digests, every state transition, the stored state and token supply.
/// The first problem is reported with its height and kind.
pub fn verify_chain<S: Store>(store: &S, genesis: &Genesis) -> Result<AuditReport, AuditError> {
    verify_chain_with(store, genesis, None)
}

/// [`verify_chain`] plus crypto re-verification of every committed round by `verifier`, in
/// parallel; the failing round of lowest height is reported.
pub fn verify_chain_with<S: Store>(
    store: &S,
    genesis: &Genesis,
    verifier: Option<&dyn RoundVerifier>,
) -> Result<AuditReport, AuditError> {
    verify_chain_full(store, genesis, verifier, None)
}

/// [`verify_chain_with`] for a ledger whose blocks carry consensus finalizations, each checked
/// by `finality` against the genesis validator set (a block without a certificate is final
/// only through a certified descendant; the head must carry one).
pub fn verify_chain_full<S: Store>(
    store: &S,
    genesis: &Genesis,
    verifier: Option<&dyn RoundVerifier>,
    finality: Option<&dyn Finality>,
) -> Result<AuditReport, AuditError> {
    let mut claims: Vec<Claim> = Vec::new();
    let head = store
        .head()
        .map_err(store_err)?
        .ok_or(AuditError::Store("empty store".into()))?;
    genesis.check().map_err(|e| AuditError::Corrupt {
        height: 0,
        what: "genesis",
        reason: e.to_string(),
    })?;
    let g = genesis_block(genesis);
    genesis
        .check_id()
        .map_err(|(stated, derived)| AuditError::GenesisId { stated, derived })?;
    let mut state = State::genesis(genesis);
    let mut prev = g.header.hash();
    let (mut txs, mut payloads) = (0u64, 0u64);
    // what the tx index must hold: every transaction's (height, index), nothing else
    let mut index: HashMap<Hash, [u8; 12]> = HashMap::new();
    let mut height = 0u64;
    // genesis needs none; every later head must carry one
    let mut head_certified = true;
    while height <= head.height {
        // phase 1, in parallel over a chunk: read, decode, and check what needs no state
        // (tx root, quorum certificate, every signature)
        let last = (height + AUDIT_CHUNK - 1).min(head.height);
        let raw = (height..=last)
            .map(|h| {
                Ok((
                    h,
                    store.header(h).map_err(store_err)?,
                    store.body(h).map_err(store_err)?,
                ))
            })
            .collect::<Result<Vec<_>, AuditError>>()?;
        let checked: Vec<Result<Block, AuditError>> = raw
            .into_par_iter()
            .map(|(h, hb, bb)| {
                let block = decode_block(h, hb, bb)?;
                if h > 0 {
                    check_block_crypto(&genesis.validators, &block, Certs::IfPresent(finality))
                        .map_err(|error| AuditError::Invalid { height: h, error })?;
                }
                Ok(block)
            })
            .collect();
        // phase 2, in order: links, rules, state roots, payloads, supply
        for block in checked {
            let block = block?;
            let height_now = block.header.height;
            if height_now == 0 {
                if block.header != g.header || body_bytes(&block) != body_bytes(&g) {
                    return Err(AuditError::Corrupt {
                        height: 0,
                        what: "header",
                        reason: "genesis differs from the configuration".into(),
                    });
                }
                continue;
            }
            if block.header.prev_hash != prev {
                return Err(AuditError::BrokenLink { height: height_now });
            }
            if verifier.is_some() {
                claims_of_block(&state, &block, &mut claims);
            }
            state =
                apply_checked_block(&state, &prev, &block, &|_: &Hash| true).map_err(|error| {
                    AuditError::Invalid {
                        height: height_now,
                        error,
                    }
                })?;
            // payloads referenced by the block must be present and intact
            for t in &block.txs {
                if let Some(payload) = &t.tx.kind.payload() {
                    if !store.has_valid_payload(payload) {
                        return Err(AuditError::Payload {
                            height: height_now,
                            digest: *payload,
                        });
                    }
                    payloads += 1;
                }
            }
            if !state.supply_conserved() {
                return Err(AuditError::Supply {
                    expected: state.expected_supply().unwrap_or(u128::MAX),
                    actual: state.total_tokens(),
                });
            }
            txs += block.txs.len() as u64;
            head_certified = block.cert.is_some();
            for (i, t) in block.txs.iter().enumerate() {
                index.insert(t.hash(), tx_location_bytes(height_now, i as u32));
            }
            prev = block.header.hash();
        }
        height = last + 1;
    }
    if prev != head.hash {
        return Err(AuditError::BrokenLink {
            height: head.height,
        });
    }
    if !head_certified {
        return Err(AuditError::Invalid {
            height: head.height,
            error: crate::error::BlockError::BadQuorum("the head carries no certificate".into()),
        });
    }
    let stored = store
        .state()
        .map_err(store_err)?
        .ok_or(AuditError::StateMismatch {
            height: head.height,
        })?;
    if stored != encode(&state) {
        return Err(AuditError::StateMismatch {
            height: head.height,
        });
    }
    let rounds_verified = claims
        .iter()
        .filter(|c| matches!(c, Claim::Round(_)))
        .count() as u64;
    let penalties_verified = claims
        .iter()
        .filter(|c| matches!(c, Claim::Penalty(_)))
        .count() as u64;
    let range_proofs_verified = claims
        .iter()
        .filter(|c| matches!(c, Claim::Range(_)))
        .count() as u64;
    if let Some(v) = verifier {
        let get = |d: &Hash| store.payload(d).ok().flatten();
        let mut failures: Vec<(u64, String)> = claims
            .par_iter()
            .filter_map(|c| c.verify(v, &get).err().map(|e| (c.height(), e)))
            .collect();
        failures.sort();
        if let Some((height, reason)) = failures.into_iter().next() {
            return Err(AuditError::Crypto { height, reason });
        }
    }
    // last, so a damaged payload a round uses is reported with its round by the verifier
    check_columns(store, head, &index)?;
    Ok(AuditReport {
        rounds_verified,
        penalties_verified,
        range_proofs_verified,
        blocks: head.height + 1,
        transactions: txs,
        payloads_checked: payloads,
        head: prev,
        supply: state.total_tokens(),
    })
}

/// Every column family in full, after the replay: no header or body above the head, the tx
/// index exactly the replayed transactions' locations, every stored payload hashing to its
/// key (referenced or not), only the known keys in state and meta, well-formed pending keys.
fn check_columns<S: Store>(
    store: &S,
    head: Head,
    index: &HashMap<Hash, [u8; 12]>,
) -> Result<(), AuditError> {
    let corrupt = |height: u64, what: &'static str, reason: String| AuditError::Corrupt {
        height,
        what,
        reason,
    };
    let key_height = |k: &[u8]| <[u8; 8]>::try_from(k).ok().map(u64::from_be_bytes);
    for (c, what) in [(Column::Headers, "header"), (Column::Bodies, "body")] {
        store
            .scan(c, &mut |k, _| match key_height(k) {
                Some(h) if h <= head.height => Ok(()),
                Some(h) => {
                    Err(corrupt(h, what, format!("stored above the head {}", head.height)).into())
                }
                None => Err(corrupt(head.height, what, format!("key of {} bytes", k.len())).into()),
            })
            .map_err(audit_err)?;
    }
    let mut seen = 0usize;
    store
        .scan(Column::Txs, &mut |k, v| {
            let at =
                <[u8; 8]>::try_from(&v[..8.min(v.len())]).map_or(head.height, u64::from_be_bytes);
            let want = <[u8; 32]>::try_from(k)
                .ok()
                .and_then(|d| index.get(&Hash(d)));
            match want {
                Some(w) if w.as_slice() == v => {
                    seen += 1;
                    Ok(())
                }
                Some(_) => Err(corrupt(
                    at,
                    "tx index",
                    format!("transaction {} located wrongly", hex::encode(k)),
                )
                .into()),
                None => Err(corrupt(
                    at,
                    "tx index",
                    format!("entry {} names no transaction on chain", hex::encode(k)),
                )
                .into()),
            }
        })
        .map_err(audit_err)?;
    if seen != index.len() {
        return Err(corrupt(
            head.height,
            "tx index",
            format!(
                "{} of {} transactions missing",
                index.len() - seen,
                index.len()
            ),
        ));
    }
    store
        .scan(Column::Payloads, &mut |k, v| {
            if Hash::sha256(v).0.as_slice() == k {
                Ok(())
            } else {
                Err(AuditError::StoredPayload {
                    key: hex::encode(k),
                }
                .into())
            }
        })
        .map_err(audit_err)?;
    for (c, what, keys) in [
        (Column::State, "state", &[b"current".as_slice()][..]),
        (
            Column::Meta,
            "meta",
            &[b"head".as_slice(), b"genesis".as_slice()][..],
        ),
    ] {
        store
            .scan(c, &mut |k, _| {
                if keys.contains(&k) {
                    Ok(())
                } else {
                    Err(
                        corrupt(head.height, what, format!("unknown key {}", hex::encode(k)))
                            .into(),
                    )
                }
            })
            .map_err(audit_err)?;
    }
    store
        .scan(Column::Pending, &mut |k, _| {
            if k.len() == 8 {
                Ok(())
            } else {
                Err(corrupt(head.height, "pending", format!("key of {} bytes", k.len())).into())
            }
        })
        .map_err(audit_err)
}

/// An audit finding passed through the store's scan callback, or the store's own error.
fn audit_err(e: crate::LedgerError) -> AuditError {
    match e {
        crate::LedgerError::Audit(a) => a,
        e => store_err(e),
    }
}

/// The store must hold `expected` (a block known final, e.g. from `fedchain audit --head`):
/// its head at or above that height and the header there hashing to that hash.
pub fn check_head<S: Store>(store: &S, expected: Head) -> Result<(), AuditError> {
    let head = store
        .head()
        .map_err(store_err)?
        .ok_or(AuditError::Store("empty store".into()))?;
    if head.height < expected.height {
        return Err(AuditError::BelowHead {
            expected: expected.height,
            head: head.height,
        });
    }
    let found = store
        .header(expected.height)
        .map_err(store_err)?
        .map(|b| header_hash(&b));
    if found != Some(expected.hash) {
        return Err(AuditError::OtherHead {
            height: expected.height,
            expected: expected.hash,
            found: found.map_or_else(|| "nothing".into(), |h| hex::encode(h.0)),
        });
    }
    Ok(())
}

/// What `fedchain audit` runs: read the genesis stored in the ledger, refuse it unless its
/// chain id (the hash of its content) is `expected` when one is given (a ledger replaced by
/// another chain's is `OtherGenesis`, THREAT-MODEL A17), then [`verify_chain_with`]. Without
/// `expected` the result holds relative to the returned genesis only: compare its chain id
/// with the published one.
///
/// With `head` (a block known final), a store whose head is below it or that holds another
/// block there is refused (`BelowHead`, `OtherHead`) before the replay.
pub fn audit_ledger<S: Store>(
    store: &S,
    expected: Option<&str>,
    head: Option<Head>,
    verifier: Option<&dyn RoundVerifier>,
    finality: Option<&dyn Finality>,
) -> Result<(Genesis, AuditReport), AuditError> {
    if let Some(h) = head {
        check_head(store, h)?;
    }
    let genesis = stored_genesis(store)?;
    if let Some(expected) = expected {
        if !expected.eq_ignore_ascii_case(&genesis.chain_id) {
            return Err(AuditError::OtherGenesis {
                expected: expected.to_string(),
                found: genesis.chain_id,
            });
        }
    }
    let report = verify_chain_full(store, &genesis, verifier, finality)?;
    Ok((genesis, report))
}
