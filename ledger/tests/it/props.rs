//! The state machine against a simple model: random valid and invalid transactions.

use fedchain_ledger::state::State;
use fedchain_ledger::{MemoryStore, Role, Transaction, TxError, TxKind};
use proptest::prelude::*;

use crate::common::{addr, key, Net};

#[derive(Debug, Clone)]
struct Op {
    from: usize,
    to: usize,
    amount: u64,
    replay: bool,
    forge: bool,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0usize..4,
        0usize..5,
        0u64..15_000,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(from, to, amount, replay, forge)| Op {
            from,
            to,
            amount,
            replay,
            forge,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn transfers_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let net = Net::new(1, 4);
        let mut state = State::genesis(&net.genesis);
        let keys: Vec<_> = net.hospitals.clone();
        let no_payloads = |_: &fedchain_ledger::Hash| false;
        let mut nonces = [0u64; 4];
        for (i, k) in keys.iter().enumerate() {
            nonces[i] += 1;
            let t = Transaction { chain_id: net.genesis.chain_id.clone(), sender: k.verifying_key(), nonce: nonces[i], kind: TxKind::Register { role: Role::Hospital, pseudonym: format!("{i}") } }.sign(k);
            state.apply_tx(&t, 1, &no_payloads).unwrap();
        }
        let outsider = addr(&key(200));
        let mut model: Vec<u64> = vec![10_000; 4];
        let mut outsider_bal = 0u64;
        for o in ops {
            let k = &keys[o.from];
            let to = if o.to == 4 { outsider } else { addr(&keys[o.to]) };
            let nonce = if o.replay { nonces[o.from] } else { nonces[o.from] + 1 };
            let mut t = Transaction { chain_id: net.genesis.chain_id.clone(), sender: k.verifying_key(), nonce, kind: TxKind::Transfer { to, amount: o.amount } }.sign(k);
            if o.forge {
                t.tx.kind = TxKind::Transfer { to, amount: o.amount + 1 };
            }
            let r = if t.verify() { state.apply_tx(&t, 2, &no_payloads) } else { Err(TxError::BadSignature) };
            let valid = !o.replay && !o.forge && o.amount <= model[o.from];
            prop_assert_eq!(r.is_ok(), valid, "{:?} -> {:?}", o, r);
            if valid {
                nonces[o.from] += 1;
                model[o.from] -= o.amount;
                if o.to == 4 { outsider_bal += o.amount } else { model[o.to] += o.amount }
            }
            for (i, kk) in keys.iter().enumerate() {
                prop_assert_eq!(state.balance(&addr(kk)), model[i]);
            }
            prop_assert_eq!(state.balance(&outsider), outsider_bal);
            prop_assert!(state.supply_conserved());
        }
        let _ = MemoryStore::new();
    }
}
