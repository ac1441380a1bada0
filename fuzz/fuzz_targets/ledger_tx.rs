//! A signed transaction (`fedchain_ledger::types::decode::<SignedTx>`, the canonical codec of
//! every ledger object). What decodes must round-trip; then the checks a node runs on it: its
//! signature, its hash and address, and the chain rules against the fixture state (registered
//! participants, job 0 with round 0 open): `precheck` and `apply_tx`. The rules run whatever
//! the signature says: anyone can sign a transaction with a key of their own, so no rule may
//! rely on the signature to stay away from a panic.
#![no_main]

use fedchain_ledger::{Hash, SignedTx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(tx) = fedchain_fuzz::ledger_roundtrip::<SignedTx>("transaction", data) else {
        return;
    };
    let _ = (tx.verify(), tx.hash(), tx.sender(), tx.tx.kind.clone());
    let l = fedchain_fuzz::ledger();
    let _ = l.state.precheck(&tx);
    let mut s = l.state.clone();
    let height = s.height + 1;
    if s.apply_tx(&tx, height, &|_: &Hash| true).is_ok() {
        let _ = (s.root(), s.supply_conserved());
    }
});
