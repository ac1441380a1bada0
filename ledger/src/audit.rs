//! Audit: replay a stored chain from genesis and check everything.

use crate::chain::body_bytes;
use crate::error::{AuditError, BlockError};
use crate::state::{apply_block, genesis_block, Genesis, State};
use crate::store::Store;
use crate::types::*;

/// What a clean audit saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub blocks: u64,
    pub transactions: u64,
    pub payloads_checked: u64,
    pub head: Hash,
    pub supply: u128,
}

fn store_err(e: crate::LedgerError) -> AuditError {
    AuditError::Store(e.to_string())
}

/// Replay every block from genesis: hashes, links, Merkle roots, quorum certificates,
/// signatures, payload digests, every state transition, the stored state and token supply.
/// The first problem is reported with its height and kind.
pub fn verify_chain<S: Store>(store: &S, genesis: &Genesis) -> Result<AuditReport, AuditError> {
    let head = store
        .head()
        .map_err(store_err)?
        .ok_or(AuditError::Store("empty store".into()))?;
    let g = genesis_block(genesis);
    let mut state = State::genesis(genesis);
    let mut prev = g.header.hash();
    let (mut txs, mut payloads) = (0u64, 0u64);
    for height in 0..=head.height {
        let corrupt = |what: &'static str, reason: String| AuditError::Corrupt {
            height,
            what,
            reason,
        };
        let hb = store
            .header(height)
            .map_err(store_err)?
            .ok_or_else(|| corrupt("header", "missing".into()))?;
        let bb = store
            .body(height)
            .map_err(store_err)?
            .ok_or_else(|| corrupt("body", "missing".into()))?;
        let header: BlockHeader =
            decode("header", &hb).map_err(|e| corrupt("header", e.to_string()))?;
        let (body_txs, qc): (Vec<SignedTx>, Option<QuorumCertificate>) =
            decode("body", &bb).map_err(|e| corrupt("body", e.to_string()))?;
        let block = Block {
            header,
            txs: body_txs,
            qc,
        };
        if height == 0 {
            if block.header != g.header || body_bytes(&block) != body_bytes(&g) {
                return Err(corrupt(
                    "header",
                    "genesis differs from the configuration".into(),
                ));
            }
            continue;
        }
        if block.header.prev_hash != prev {
            return Err(AuditError::BrokenLink { height });
        }
        state = apply_block(&state, &prev, &block, &|_: &Hash| true, true)
            .map_err(|error| AuditError::Invalid { height, error })?;
        // payloads referenced by the block must be present and intact
        for t in &block.txs {
            if let TxKind::Submit { payload, .. } | TxKind::DecryptionShare { payload, .. } =
                &t.tx.kind
            {
                if !store.has_valid_payload(payload) {
                    return Err(AuditError::Payload {
                        height,
                        digest: *payload,
                    });
                }
                payloads += 1;
            }
        }
        if !state.supply_conserved() {
            return Err(AuditError::Supply {
                expected: state.genesis_supply + state.minted,
                actual: state.total_tokens(),
            });
        }
        txs += block.txs.len() as u64;
        prev = block.header.hash();
    }
    if prev != head.hash {
        return Err(AuditError::BrokenLink {
            height: head.height,
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
    Ok(AuditReport {
        blocks: head.height + 1,
        transactions: txs,
        payloads_checked: payloads,
        head: prev,
        supply: state.total_tokens(),
    })
}

/// Keep the BlockError type reachable for callers matching audit errors.
pub type InvalidBlock = BlockError;
