//! Blocks as the store keeps them: a `BlockHeader`, a body `(Vec<SignedTx>,
//! Option<Certificate>)` (how `Chain` reads a block back), and a whole `Block`, each with
//! the canonical codec and a round trip. Then what a replica does with a block from the
//! aggregator: `check_block_crypto` (proposer, transaction root, quorum certificate, every
//! signature) against the fixture validators, and `apply_checked_block` on the fixture state
//! (run whatever the crypto said: the proposer chooses a block's content).
#![no_main]

use fedchain_ledger::state::{
    apply_checked_block, check_block_crypto, tx_root, verify_certificate, Certs,
};
use fedchain_ledger::types::Certificate;
use fedchain_ledger::{Block, BlockHeader, Hash, SignedTx};
use libfuzzer_sys::fuzz_target;

type Body = (Vec<SignedTx>, Option<Certificate>);

fuzz_target!(|data: &[u8]| {
    let l = fedchain_fuzz::ledger();
    let validators = l.validator_keys();
    if let Some(h) = fedchain_fuzz::ledger_roundtrip::<BlockHeader>("header", data) {
        let _ = h.hash();
    }
    if let Some((txs, qc)) = fedchain_fuzz::ledger_roundtrip::<Body>("body", data) {
        let _ = tx_root(&txs);
        if let Some(cert) = qc {
            let _ = verify_certificate(&validators, &l.next.header, &cert, None);
        }
    }
    if let Some(b) = fedchain_fuzz::ledger_roundtrip::<Block>("block", data) {
        let _ = check_block_crypto(&validators, &b, Certs::Required(None));
        if let Ok(s) = apply_checked_block(&l.state, &l.head_hash, &b, &|_: &Hash| true) {
            let _ = (s.root(), s.supply_conserved());
        }
    }
});
