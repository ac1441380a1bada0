//! The stored chain state and genesis (`State`, `Genesis`: what `Chain::open` and the audit
//! decode from a ledger directory), with the canonical codec and a round trip; then what is
//! computed from them: the state root and supply, `Genesis::check`, the genesis state and
//! block.
#![no_main]

use fedchain_ledger::state::genesis_block;
use fedchain_ledger::{Genesis, State};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = fedchain_fuzz::ledger_roundtrip::<State>("state", data) {
        let _ = (s.root(), s.total_tokens(), s.supply_conserved());
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
