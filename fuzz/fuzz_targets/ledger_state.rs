//! The stored chain state and genesis (`State`, `Genesis`: what `Chain::open` and the audit
//! decode from a ledger directory), with the canonical codec and a round trip; then what is
//! computed from them: the state root and supply, `Genesis::check`, the genesis state and
//! block. A decoded state then runs the chain rules as a restarted node would: every fixture
//! transaction (`fedchain_fuzz::sample_txs` and the next block's submissions) through
//! `apply_tx`, and the next block through `apply_checked_block`.
#![no_main]

use fedchain_ledger::state::{apply_checked_block, genesis_block};
use fedchain_ledger::{Genesis, Hash, State};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = fedchain_fuzz::ledger_roundtrip::<State>("state", data) {
        let _ = (s.root(), s.total_tokens(), s.supply_conserved());
        let l = fedchain_fuzz::ledger();
        let height = s.height.saturating_add(1);
        let txs = fedchain_fuzz::sample_txs().iter().map(|(_, t)| t);
        for tx in txs.chain(&l.next.txs) {
            let _ = s.precheck(tx);
            let mut next = s.clone();
            if next.apply_tx(tx, height, &|_: &Hash| true).is_ok() {
                let _ = next.supply_conserved();
            }
        }
        let _ = apply_checked_block(&s, &l.head_hash, &l.next, &|_: &Hash| true);
    }
    if let Some(g) = fedchain_fuzz::ledger_roundtrip::<Genesis>("genesis", data) {
        let _ = g.check();
        let s = State::genesis(&g);
        let _ = (
            s.root(),
            s.supply_conserved(),
            genesis_block(&g).header.hash(),
        );
    }
});
