use std::collections::HashMap;

use fedchain_crypto::identity::SigningKey;
use fedchain_ledger::state::{assemble_qc, vote, Genesis};
use fedchain_ledger::types::{Certificate, Incentives, JobSpec};
use fedchain_ledger::{Address, Block, Chain, Hash, Role, SignedTx, Store, Transaction, TxKind};

/// The test consortium's name (the chain id is the hash of the whole genesis).
pub const CONSORTIUM: &str = "fedchain-test";

/// The largest sample count a member of the test job may declare, and what each declares.
pub const MAX_SAMPLES: u64 = 1_000;

pub fn key(i: u8) -> SigningKey {
    SigningKey::from_seed(&[i; 32])
}

/// A test network: validators, an aggregator, hospitals, nonces.
pub struct Net {
    pub validators: Vec<SigningKey>,
    pub aggregator: SigningKey,
    pub hospitals: Vec<SigningKey>,
    pub genesis: Genesis,
    nonces: HashMap<Address, u64>,
    pub time: u64,
}

impl Net {
    pub fn new(validators: usize, hospitals: usize) -> Self {
        let vks: Vec<SigningKey> = (0..validators).map(|i| key(100 + i as u8)).collect();
        let aggregator = key(1);
        let hs: Vec<SigningKey> = (0..hospitals).map(|i| key(10 + i as u8)).collect();
        let mut allocations = vec![(addr(&aggregator), 1_000_000)];
        allocations.extend(hs.iter().map(|h| (addr(h), 10_000)));
        let genesis = Genesis::new(
            CONSORTIUM,
            0,
            1_700_000_000_000,
            vks.iter().map(SigningKey::verifying_key).collect(),
            allocations,
        );
        Net {
            validators: vks,
            aggregator,
            hospitals: hs,
            genesis,
            nonces: HashMap::new(),
            time: 1_700_000_000_000,
        }
    }

    pub fn tx(&mut self, who: &SigningKey, kind: TxKind) -> SignedTx {
        let n = self.nonces.entry(addr(who)).or_insert(0);
        *n += 1;
        Transaction {
            chain_id: self.genesis.chain_id.clone(),
            sender: who.verifying_key(),
            nonce: *n,
            kind,
        }
        .sign(who)
    }

    /// Certify a block with the votes of the validators whose indices are given.
    pub fn certify(&self, block: &mut Block, signers: &[usize]) {
        let h = block.header.hash();
        let votes: Vec<_> = signers
            .iter()
            .map(|&i| (i as u32, vote(&self.validators[i], i as u32, &h)))
            .collect();
        block.cert = Some(Certificate::Replicas(
            assemble_qc(self.validators.len(), &votes).unwrap(),
        ));
    }

    /// Propose, certify by all validators and commit; returns the rejected transactions' errors.
    pub fn block<S: Store>(
        &mut self,
        chain: &mut Chain<S>,
        txs: Vec<SignedTx>,
    ) -> Vec<fedchain_ledger::TxError> {
        self.time += 1000;
        let p = chain.propose(txs, self.time, &self.validators[0]);
        let mut b = p.block;
        let all: Vec<usize> = (0..self.validators.len()).collect();
        self.certify(&mut b, &all);
        chain.commit(&b).unwrap();
        p.rejected.into_iter().map(|(_, e)| e).collect()
    }

    pub fn job_spec(&self, threshold: u32) -> JobSpec {
        JobSpec {
            model_spec_hash: Hash::sha256(b"logreg 30x1"),
            threshold_key: vec![1, 2, 3],
            packing: r#"{"value_bits":16}"#.into(),
            threshold,
            committee: self.hospitals.iter().map(addr).collect(),
            min_participants: threshold.max(fedchain_ledger::MIN_PARTICIPANTS),
            max_samples: MAX_SAMPLES,
            incentives: Incentives {
                min_deposit: 1000,
                submit_reward: 900,
                share_reward: 300,
                missed_deadline_permille: 100,
                misbehaviour_permille: 500,
            },
        }
    }

    /// Register everybody, create job 0 and join all hospitals.
    pub fn setup_job<S: Store>(&mut self, chain: &mut Chain<S>, threshold: u32) {
        let agg = self.aggregator.clone();
        let mut txs = vec![self.tx(
            &agg,
            TxKind::Register {
                role: Role::Aggregator,
                pseudonym: "agg".into(),
            },
        )];
        for (i, h) in self.hospitals.clone().iter().enumerate() {
            txs.push(self.tx(
                h,
                TxKind::Register {
                    role: Role::Hospital,
                    pseudonym: format!("h{i}"),
                },
            ));
        }
        assert!(self.block(chain, txs).is_empty());
        let spec = self.job_spec(threshold);
        let create = self.tx(&agg, TxKind::CreateJob(spec));
        assert!(self.block(chain, vec![create]).is_empty());
        let joins: Vec<_> = self
            .hospitals
            .clone()
            .iter()
            .map(|h| {
                self.tx(
                    h,
                    TxKind::Join {
                        job: 0,
                        deposit: 2000,
                        samples: MAX_SAMPLES,
                    },
                )
            })
            .collect();
        assert!(self.block(chain, joins).is_empty());
    }
}

pub fn addr(k: &SigningKey) -> Address {
    Address::of(&k.verifying_key())
}
