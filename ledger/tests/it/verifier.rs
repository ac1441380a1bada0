//! Crypto re-verification plugged into the audit: a verifier that recomputes the Paillier
//! product of the accepted submissions from the stored payloads and checks the committed digest.

use fedchain_crypto::vector::aggregate;
use fedchain_crypto::{CiphertextVector, Integer, PrivateKey, PublicKey};
use fedchain_ledger::{
    verify_chain_with, AuditError, Chain, Hash, MemoryStore, PenaltyClaim, RangeClaim, RoundClaim,
    RoundVerifier, TxKind, VoidClaim,
};
use rand::SeedableRng;

use crate::common::{addr, Net};

struct ProductVerifier(PublicKey);

impl RoundVerifier for ProductVerifier {
    fn verify_round(
        &self,
        c: &RoundClaim,
        payload: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String> {
        let vectors = c
            .accepted
            .iter()
            .map(|(who, d, _)| {
                let bytes = payload(d).ok_or(format!("payload of {who} missing"))?;
                CiphertextVector::from_bytes(&self.0, &bytes).map_err(|e| format!("{who}: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let product = aggregate(&self.0, &vectors).map_err(|e| e.to_string())?;
        if Hash(product.digest(&self.0)) != c.aggregate {
            return Err(
                "committed aggregate is not the product of the accepted ciphertexts".into(),
            );
        }
        Ok(())
    }

    fn verify_penalty(
        &self,
        _: &PenaltyClaim,
        _: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String> {
        Err("this test's chains hold no penalty".into())
    }

    fn verify_void(
        &self,
        _: &VoidClaim,
        _: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String> {
        Err("this test's chains hold no void of an unpackable round".into())
    }

    fn verify_range(
        &self,
        _: &RangeClaim,
        _: &(dyn Fn(&Hash) -> Option<Vec<u8>> + Sync),
    ) -> Result<(), String> {
        Err("this test's chains hold no blame step".into())
    }
}

fn run_round(aggregate_lies: bool) -> (Net, Chain<MemoryStore>, PublicKey) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
    let sk = PrivateKey::generate(256, &mut rng).unwrap();
    let pk = sk.public_key().clone();
    let mut net = Net::new(4, 3);
    let mut chain = Chain::open(MemoryStore::new(), &net.genesis).unwrap();
    net.setup_job(&mut chain, 2);
    let agg = net.aggregator.clone();
    let open = net.tx(
        &agg,
        TxKind::OpenRound {
            job: 0,
            round: 0,
            params_hash: Hash::default(),
            deadline: 100,
        },
    );
    assert!(net.block(&mut chain, vec![open]).is_empty());
    let mut vectors = Vec::new();
    let mut subs = Vec::new();
    for h in 0..3 {
        let v = CiphertextVector(
            (0..4u32)
                .map(|i| pk.encrypt(&Integer::from(i * 10 + h), &mut rng).unwrap())
                .collect(),
        );
        let d = chain.put_payload(&v.to_bytes(&pk)).unwrap();
        let k = net.hospitals[h as usize].clone();
        subs.push(net.tx(
            &k,
            TxKind::Submit {
                job: 0,
                round: 0,
                payload: d,
                samples: 10,
                payload_bytes: 4,
            },
        ));
        vectors.push(v);
    }
    assert!(net.block(&mut chain, subs).is_empty());
    let mut shares = Vec::new();
    for h in 0..2 {
        let d = chain.put_payload(format!("share {h}").as_bytes()).unwrap();
        let k = net.hospitals[h].clone();
        shares.push(net.tx(
            &k,
            TxKind::DecryptionShare {
                job: 0,
                round: 0,
                payload: d,
            },
        ));
    }
    assert!(net.block(&mut chain, shares).is_empty());
    let used = if aggregate_lies {
        &vectors[..2]
    } else {
        &vectors[..]
    };
    let digest = Hash(aggregate(&pk, used).unwrap().digest(&pk));
    let accepted: Vec<_> = net.hospitals.iter().map(addr).collect();
    let commit = net.tx(
        &agg,
        TxKind::CommitRound {
            job: 0,
            round: 0,
            aggregate: digest,
            new_params_hash: Hash::default(),
            share_providers: accepted[..2].to_vec(),
            accepted,
        },
    );
    assert!(net.block(&mut chain, vec![commit]).is_empty());
    (net, chain, pk)
}

#[test]
fn the_audit_recomputes_the_ciphertext_product() {
    let (net, chain, pk) = run_round(false);
    let report =
        verify_chain_with(chain.store(), &net.genesis, Some(&ProductVerifier(pk))).unwrap();
    assert_eq!(report.rounds_verified, 1);

    let (net, chain, pk) = run_round(true);
    // the chain rules alone cannot see the lie; the crypto verifier does, at the commit's height
    fedchain_ledger::verify_chain(chain.store(), &net.genesis).unwrap();
    let e = verify_chain_with(chain.store(), &net.genesis, Some(&ProductVerifier(pk))).unwrap_err();
    assert!(
        matches!(e, AuditError::Crypto { height, .. } if height == chain.head().height),
        "{e}"
    );
}
