//! The round engine: a deterministic state machine with no I/O. Events come in (a submission,
//! a decryption share, the chain reaching a height); actions go out (include a transaction,
//! penalize, reject, ask for decryption shares, complete or void the round). The same engine
//! runs in `fedchain simulate` and behind the network transport.
//!
//! Checks (DeepChain's and ours): transaction kind, job and round, signature, committee
//! membership, deadline, duplicate and equivocation, payload digest and size, sample count,
//! ciphertext validity (every element in Z*_{n^2}, the expected count), the submitter's proof of
//! plaintext knowledge (bound to chain, job, round and sender), and each decryption share's
//! proof against the round's aggregate.

use std::collections::{BTreeMap, BTreeSet};

use fedchain_crypto::threshold::VectorDecryptionShare;
use fedchain_crypto::vector::aggregate;
use fedchain_crypto::CiphertextVector;
use fedchain_ledger::state::BLAME_WINDOW;
use fedchain_ledger::types::Offence;
use fedchain_ledger::{Address, Hash, JobId, SignedTx, TxKind};
use fedchain_worker::{
    check_range_proof, check_submission, decode_plain, Protection, RangeMsg, ShareMsg,
    SubmissionMsg,
};

/// Why a message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("not a transaction of the expected kind")]
    WrongKind,
    #[error("for job {got}, this engine runs job {expected}")]
    WrongJob { expected: JobId, got: JobId },
    #[error("for round {got}, the open round is {expected:?}")]
    WrongRound { expected: Option<u32>, got: u32 },
    #[error("bad signature")]
    BadSignature,
    #[error("sender is not in the job's committee")]
    NotMember,
    #[error("late: deadline height {deadline}, next block {next}")]
    Late { deadline: u64, next: u64 },
    #[error("duplicate of an accepted message (acknowledged, not counted twice)")]
    Duplicate,
    #[error("equivocation: a different message for the same round")]
    Equivocation,
    #[error("payload does not match its transaction: {0}")]
    PayloadMismatch(String),
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    #[error("sample count {got} outside 1..={max} (the count declared at join)")]
    Samples { got: u64, max: u64 },
    #[error("invalid decryption share: {0}")]
    InvalidShare(String),
    #[error("not collecting decryption shares now")]
    NotDecrypting,
    #[error("excluded from the job by a blame step")]
    Excluded,
    #[error("no blame step asks this sender for a range proof now")]
    NotBlaming,
    #[error("invalid range proof: {0}")]
    InvalidRangeProof(String),
}

/// What the driver must do.
#[derive(Clone, Debug)]
pub enum Action {
    /// Store the payload durably, then put the transaction in the next block.
    Include {
        tx: Box<SignedTx>,
        payload: Option<Vec<u8>>,
    },
    /// Put a Penalty transaction (signed by the aggregator) in the next block, or, when
    /// `after_round`, in the first block after the round is committed or voided: evidence that
    /// arrives while the round decrypts must not change the valid set its aggregate, shares and
    /// commit are about (THREAT-MODEL A8).
    Penalize {
        offender: Address,
        offence: Offence,
        after_round: bool,
    },
    /// Tell the sender its message was refused.
    Reject { from: Address, reason: RejectReason },
    /// Submissions are closed: ask the key holders for decryption shares of this aggregate,
    /// the product of `inputs` (the round's valid submissions as signed, which holders check).
    RequestShares {
        round: u32,
        aggregate: CiphertextVector,
        inputs: Vec<SubmissionMsg>,
    },
    /// The round is complete: commit it.
    Complete(RoundResult),
    /// Void the round on chain: too few valid submissions by the deadline (or no commit
    /// within the decryption window).
    Void { round: u32 },
    /// Verified shares decrypt to an aggregate that does not unpack at summed plaintext
    /// `plaintext`: put `VoidUnpackable` on chain and ask every valid submitter for a range
    /// proof of its ciphertext there (THREAT-MODEL A5).
    Unpackable {
        round: u32,
        plaintext: u32,
        submitters: Vec<Address>,
    },
    /// The blame step is over: put `Blame` on chain. `culprits` (the valid submitters without
    /// a verified range proof) are penalised by the chain and excluded from later rounds (the
    /// engine already stopped expecting them).
    Blame { round: u32, culprits: Vec<Address> },
}

/// A completed round.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundResult {
    pub round: u32,
    pub accepted: Vec<Address>,
    pub share_providers: Vec<Address>,
    /// Digest of the aggregate payload (ciphertext product, or the plain average's bytes).
    pub aggregate: Hash,
    /// The sample-weighted average update.
    pub average: Vec<f32>,
    pub total_weight: u64,
}

/// What the engine reacts to.
#[derive(Clone, Debug)]
pub enum Event {
    Submission(SubmissionMsg),
    Share(ShareMsg),
    /// A submitter's range proof in a blame step.
    RangeProof(RangeMsg),
    /// The chain's head is now at `height`.
    Height(u64),
}

/// The engine's static configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The chain's id (submissions' knowledge proofs are bound to it).
    pub chain_id: String,
    pub job: JobId,
    pub protection: Protection,
    pub num_params: usize,
    /// The committee in key-holder order: member i holds key share i + 1.
    pub committee: Vec<Address>,
    pub min_participants: u32,
    /// Largest sample count one submission may claim (the job's `max_samples`).
    pub max_samples: u64,
    /// Each member's sample count as declared on chain when it joined: its submissions may
    /// claim no more (THREAT-MODEL A15). A member missing here may claim nothing.
    pub declared: BTreeMap<Address, u64>,
}

impl EngineConfig {
    /// The largest sample count a submission of `member` may claim.
    pub fn samples_bound(&self, member: &Address) -> u64 {
        self.declared
            .get(member)
            .copied()
            .unwrap_or(0)
            .min(self.max_samples)
    }
}

#[derive(Clone, Debug)]
struct Accepted {
    tx: SignedTx,
    payload: Vec<u8>,
    samples: u64,
    /// Decoded update: ciphertexts, or plain values.
    update: Update,
    /// Excluded from the aggregate (equivocation or an invalid payload).
    excluded: bool,
    /// An equivocation of it was penalized (evidence counts once).
    equivocated: bool,
}

#[derive(Clone, Debug)]
enum Update {
    Encrypted(CiphertextVector),
    Plain(Vec<f32>),
    Invalid(String),
}

#[derive(Clone, Debug)]
enum Phase {
    Idle,
    Collecting,
    Decrypting {
        aggregate: CiphertextVector,
        total_weight: u64,
        accepted: Vec<Address>,
        /// Sample counts of the accepted submissions (the weights of the average).
        samples: Vec<u64>,
    },
    /// The aggregate did not unpack at `plaintext`; valid submitters prove their slots until
    /// the chain passes `ends`.
    Blaming {
        plaintext: u32,
        ends: u64,
        proven: BTreeSet<Address>,
    },
    Done,
}

/// The round engine of one job.
#[derive(Debug)]
pub struct RoundEngine {
    cfg: EngineConfig,
    height: u64,
    round: Option<u32>,
    deadline: u64,
    phase: Phase,
    submissions: BTreeMap<Address, Accepted>,
    shares: BTreeMap<Address, (Hash, Option<VectorDecryptionShare>)>,
    rejected: usize,
    /// Members a blame step excluded: never expected, never accepted again.
    excluded: BTreeSet<Address>,
}

impl RoundEngine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg,
            height: 0,
            round: None,
            deadline: 0,
            phase: Phase::Idle,
            submissions: BTreeMap::new(),
            shares: BTreeMap::new(),
            rejected: 0,
            excluded: BTreeSet::new(),
        }
    }

    /// Stop expecting `members` (excluded on chain by a blame step, e.g. before a restart).
    pub fn exclude(&mut self, members: impl IntoIterator<Item = Address>) {
        self.excluded.extend(members);
    }

    /// Members excluded by blame steps.
    pub fn excluded(&self) -> &BTreeSet<Address> {
        &self.excluded
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Messages refused or penalized in the current round.
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    /// The open round, if any.
    pub fn round(&self) -> Option<u32> {
        self.round
    }

    /// Start collecting round `round` (its OpenRound transaction is on chain) until `deadline`.
    pub fn open(&mut self, round: u32, deadline: u64) {
        self.round = Some(round);
        self.deadline = deadline;
        self.phase = Phase::Collecting;
        self.submissions.clear();
        self.shares.clear();
        self.rejected = 0;
    }

    /// React to one event.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Submission(m) => self.submission(m),
            Event::Share(m) => self.share(m),
            Event::RangeProof(m) => self.range_proof(m),
            Event::Height(h) => {
                self.height = h;
                match &self.phase {
                    Phase::Collecting if h >= self.deadline => self.close(),
                    Phase::Blaming { ends, .. } if h >= *ends => self.end_blame(),
                    _ => Vec::new(),
                }
            }
        }
    }

    fn reject(&mut self, from: Address, reason: RejectReason) -> Vec<Action> {
        self.rejected += 1;
        vec![Action::Reject { from, reason }]
    }

    /// Common checks of a message's transaction: job, round, signature, membership.
    fn check_tx(&self, tx: &SignedTx, job: JobId, round: u32) -> Result<(), RejectReason> {
        if job != self.cfg.job {
            return Err(RejectReason::WrongJob {
                expected: self.cfg.job,
                got: job,
            });
        }
        if self.round != Some(round) {
            return Err(RejectReason::WrongRound {
                expected: self.round,
                got: round,
            });
        }
        if !tx.verify() {
            return Err(RejectReason::BadSignature);
        }
        if !self.cfg.committee.contains(&tx.sender()) {
            return Err(RejectReason::NotMember);
        }
        Ok(())
    }

    fn submission(&mut self, m: SubmissionMsg) -> Vec<Action> {
        let from = m.tx.sender();
        let TxKind::Submit {
            job,
            round,
            payload,
            samples,
            payload_bytes,
        } = m.tx.tx.kind.clone()
        else {
            return self.reject(from, RejectReason::WrongKind);
        };
        if let Err(r) = self.check_tx(&m.tx, job, round) {
            return self.reject(from, r);
        }
        if self.excluded.contains(&from) {
            return self.reject(from, RejectReason::Excluded);
        }
        if Hash::sha256(&m.payload) != payload || m.payload.len() as u64 != payload_bytes {
            return self.reject(
                from,
                RejectReason::PayloadMismatch("digest or size differs".into()),
            );
        }
        if let Some(prev) = self.submissions.get_mut(&from) {
            let TxKind::Submit { payload: first, .. } = prev.tx.tx.kind else {
                return Vec::new();
            };
            if first == payload {
                return vec![Action::Reject {
                    from,
                    reason: RejectReason::Duplicate,
                }];
            }
            if prev.excluded || prev.equivocated {
                self.rejected += 1;
                return vec![Action::Reject {
                    from,
                    reason: RejectReason::Equivocation,
                }];
            }
            // while collecting, the equivocator leaves the valid set now; once the round is
            // closed its aggregate is fixed, so the penalty waits until the round is on chain
            let after_round = !matches!(self.phase, Phase::Collecting);
            prev.excluded |= !after_round;
            prev.equivocated = true;
            let offence = Offence::Equivocation {
                first: Box::new(prev.tx.clone()),
                second: Box::new(m.tx),
            };
            self.rejected += 1;
            return vec![
                Action::Penalize {
                    offender: from,
                    offence,
                    after_round,
                },
                Action::Reject {
                    from,
                    reason: RejectReason::Equivocation,
                },
            ];
        }
        // evidence of equivocation counts whenever it arrives; anything new must be in time
        if !matches!(self.phase, Phase::Collecting) || self.height + 1 > self.deadline {
            return self.reject(
                from,
                RejectReason::Late {
                    deadline: self.deadline,
                    next: self.height + 1,
                },
            );
        }
        let max = self.cfg.samples_bound(&from);
        if samples == 0 || samples > max {
            return self.reject(from, RejectReason::Samples { got: samples, max });
        }
        let update = self.decode_update(&m.payload, round, &from);
        let mut actions = vec![Action::Include {
            tx: Box::new(m.tx.clone()),
            payload: Some(m.payload.clone()),
        }];
        let invalid = matches!(update, Update::Invalid(_));
        if let Update::Invalid(why) = &update {
            self.rejected += 1;
            actions.push(Action::Penalize {
                offender: from,
                offence: Offence::InvalidPayload {
                    job,
                    round,
                    digest: payload,
                },
                after_round: false,
            });
            actions.push(Action::Reject {
                from,
                reason: RejectReason::InvalidPayload(why.clone()),
            });
        }
        self.submissions.insert(
            from,
            Accepted {
                tx: m.tx,
                payload: m.payload,
                samples,
                update,
                excluded: invalid,
                equivocated: false,
            },
        );
        if self.submissions.len() == self.cfg.committee.len() - self.excluded.len() {
            actions.extend(self.close());
        }
        actions
    }

    fn decode_update(&self, payload: &[u8], round: u32, from: &Address) -> Update {
        match &self.cfg.protection {
            Protection::Encrypted(e) => {
                let want = e.packer.plaintexts_for(self.cfg.num_params);
                match check_submission(
                    e,
                    &self.cfg.chain_id,
                    self.cfg.job,
                    round,
                    from,
                    payload,
                    want,
                ) {
                    Ok(v) => Update::Encrypted(v.ciphertexts),
                    Err(why) => Update::Invalid(why.to_string()),
                }
            }
            Protection::Plaintext => decode_plain(payload, self.cfg.num_params).map_or_else(
                || Update::Invalid("not the expected number of finite values".into()),
                Update::Plain,
            ),
        }
    }

    /// Close submissions: aggregate the valid ones, or void the round.
    fn close(&mut self) -> Vec<Action> {
        let Some(round) = self.round else {
            return Vec::new();
        };
        let valid: Vec<(&Address, &Accepted)> = self
            .submissions
            .iter()
            .filter(|(_, a)| !a.excluded)
            .collect();
        if (valid.len() as u32) < self.cfg.min_participants {
            self.phase = Phase::Done;
            return vec![Action::Void { round }];
        }
        let accepted: Vec<Address> = valid.iter().map(|(a, _)| **a).collect();
        let total_weight: u64 = valid.iter().map(|(_, a)| a.samples).sum();
        match &self.cfg.protection {
            Protection::Encrypted(e) => {
                let vectors: Vec<CiphertextVector> = valid
                    .iter()
                    .filter_map(|(_, a)| match &a.update {
                        Update::Encrypted(v) => Some(v.clone()),
                        _ => None,
                    })
                    .collect();
                let pk = e.key.public_key();
                let inputs: Vec<SubmissionMsg> = valid
                    .iter()
                    .map(|(_, a)| SubmissionMsg {
                        tx: a.tx.clone(),
                        payload: a.payload.clone(),
                    })
                    .collect();
                match aggregate(pk, &vectors) {
                    Ok(agg) => {
                        self.phase = Phase::Decrypting {
                            aggregate: agg.clone(),
                            total_weight,
                            accepted,
                            samples: valid.iter().map(|(_, a)| a.samples).collect(),
                        };
                        vec![Action::RequestShares {
                            round,
                            aggregate: agg,
                            inputs,
                        }]
                    }
                    // unreachable for decoded vectors of the checked length; void rather than panic
                    Err(_) => {
                        self.phase = Phase::Done;
                        vec![Action::Void { round }]
                    }
                }
            }
            Protection::Plaintext => {
                let mut sum = vec![0f64; self.cfg.num_params];
                for (_, a) in &valid {
                    if let Update::Plain(u) = &a.update {
                        for (s, x) in sum.iter_mut().zip(u) {
                            *s += *x as f64 * a.samples as f64;
                        }
                    }
                }
                let average: Vec<f32> = sum
                    .iter()
                    .map(|s| (s / total_weight as f64) as f32)
                    .collect();
                self.phase = Phase::Done;
                let digest = Hash::sha256(&fedchain_worker::encode_plain(&average));
                vec![Action::Complete(RoundResult {
                    round,
                    accepted,
                    share_providers: Vec::new(),
                    aggregate: digest,
                    average,
                    total_weight,
                })]
            }
        }
    }

    fn share(&mut self, m: ShareMsg) -> Vec<Action> {
        let from = m.tx.sender();
        let TxKind::DecryptionShare {
            job,
            round,
            payload,
        } = m.tx.tx.kind.clone()
        else {
            return self.reject(from, RejectReason::WrongKind);
        };
        if let Err(r) = self.check_tx(&m.tx, job, round) {
            return self.reject(from, r);
        }
        let (
            Phase::Decrypting {
                aggregate,
                total_weight,
                accepted,
                samples,
            },
            Protection::Encrypted(e),
        ) = (&self.phase, &self.cfg.protection)
        else {
            return self.reject(from, RejectReason::NotDecrypting);
        };
        if Hash::sha256(&m.payload) != payload {
            return self.reject(from, RejectReason::PayloadMismatch("digest differs".into()));
        }
        if let Some((first, _)) = self.shares.get(&from) {
            let reason = if *first == payload {
                RejectReason::Duplicate
            } else {
                RejectReason::Equivocation
            };
            return self.reject(from, reason);
        }
        let holder = self
            .cfg
            .committee
            .iter()
            .position(|a| *a == from)
            .map(|i| i as u32 + 1);
        let pk = e.key.public_key();
        let verdict = VectorDecryptionShare::from_bytes(pk, &m.payload)
            .map_err(|err| err.to_string())
            .and_then(|s| {
                if Some(s.holder) != holder {
                    return Err(format!(
                        "share claims holder {}, sender holds {:?}",
                        s.holder, holder
                    ));
                }
                e.key
                    .verify_share(&aggregate.0, &s)
                    .map(|()| s)
                    .map_err(|err| err.to_string())
            });
        let mut actions = vec![Action::Include {
            tx: Box::new(m.tx.clone()),
            payload: Some(m.payload),
        }];
        match verdict {
            Ok(s) => {
                self.shares.insert(from, (payload, Some(s)));
            }
            Err(why) => {
                self.rejected += 1;
                self.shares.insert(from, (payload, None));
                actions.push(Action::Penalize {
                    offender: from,
                    offence: Offence::InvalidShare {
                        job,
                        round,
                        digest: payload,
                    },
                    after_round: false,
                });
                actions.push(Action::Reject {
                    from,
                    reason: RejectReason::InvalidShare(why),
                });
                return actions;
            }
        }
        let valid: Vec<(Address, VectorDecryptionShare)> = self
            .shares
            .iter()
            .filter_map(|(a, (_, s))| s.clone().map(|s| (*a, s)))
            .collect();
        if (valid.len() as u32) < e.key.threshold() {
            return actions;
        }
        let used: Vec<VectorDecryptionShare> = valid.iter().map(|(_, s)| s.clone()).collect();
        let providers: Vec<Address> = valid.iter().map(|(a, _)| *a).collect();
        let (agg_digest, total_weight, accepted) =
            (Hash(aggregate.digest(pk)), *total_weight, accepted.clone());
        let parties = samples.len() as u64;
        let (len, samples) = (self.cfg.num_params, samples.clone());
        let points = e.key.interpolate_unchecked(&used);
        let result = points
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|pts| e.packer.unpack(pts, len, parties))
            .and_then(|sums| e.packer.weighted_average(&sums, &samples));
        let Some(round) = self.round else {
            return actions;
        };
        self.phase = Phase::Done;
        match (result, points) {
            (Ok(average), _) => actions.push(Action::Complete(RoundResult {
                round,
                accepted,
                share_providers: providers,
                aggregate: agg_digest,
                average,
                total_weight,
            })),
            // verified shares that do not unpack: some submission overflowed its slots (in
            // range of Paillier and of its proof, out of range of the packing). The shares on
            // chain are the evidence; every valid submitter now proves its ciphertext at the
            // first failing plaintext in range, and whoever cannot is blamed (THREAT-MODEL A5)
            (Err(_), Ok(pts)) => {
                let plaintext = e.packer.first_unpackable(&pts, len, parties).unwrap_or(0) as u32;
                self.phase = Phase::Blaming {
                    plaintext,
                    ends: self.height + 1 + BLAME_WINDOW,
                    proven: BTreeSet::new(),
                };
                actions.push(Action::Unpackable {
                    round,
                    plaintext,
                    submitters: accepted,
                });
            }
            // verified shares that do not interpolate: unreachable; the decryption window
            // voids the round
            (Err(_), Err(_)) => {}
        }
        actions
    }

    /// A range proof of the blame step: verified against the sender's own accepted
    /// submission at the blamed plaintext, then included.
    fn range_proof(&mut self, m: RangeMsg) -> Vec<Action> {
        let from = m.tx.sender();
        let TxKind::RangeProof {
            job,
            round,
            payload,
        } = m.tx.tx.kind.clone()
        else {
            return self.reject(from, RejectReason::WrongKind);
        };
        if let Err(r) = self.check_tx(&m.tx, job, round) {
            return self.reject(from, r);
        }
        let verdict = (|| {
            let (
                Phase::Blaming {
                    plaintext, proven, ..
                },
                Protection::Encrypted(e),
            ) = (&self.phase, &self.cfg.protection)
            else {
                return Err(RejectReason::NotBlaming);
            };
            let Some(Update::Encrypted(v)) = self
                .submissions
                .get(&from)
                .filter(|a| !a.excluded)
                .map(|a| &a.update)
            else {
                return Err(RejectReason::NotBlaming);
            };
            if proven.contains(&from) {
                return Err(RejectReason::Duplicate);
            }
            if Hash::sha256(&m.payload) != payload {
                return Err(RejectReason::PayloadMismatch("digest differs".into()));
            }
            check_range_proof(
                e,
                &self.cfg.chain_id,
                job,
                round,
                &from,
                v,
                *plaintext,
                self.cfg.num_params,
                &m.payload,
            )
            .map_err(|why| RejectReason::InvalidRangeProof(why.to_string()))
        })();
        match verdict {
            Ok(()) => {}
            Err(RejectReason::Duplicate) => {
                return vec![Action::Reject {
                    from,
                    reason: RejectReason::Duplicate,
                }]
            }
            Err(r) => return self.reject(from, r),
        }
        if let Phase::Blaming { proven, .. } = &mut self.phase {
            proven.insert(from);
        }
        let mut actions = vec![Action::Include {
            tx: Box::new(m.tx),
            payload: Some(m.payload),
        }];
        let everyone = self.submissions.values().filter(|a| !a.excluded).count();
        if matches!(&self.phase, Phase::Blaming { proven, .. } if proven.len() == everyone) {
            actions.extend(self.end_blame());
        }
        actions
    }

    /// End the blame step: the valid submitters without a verified proof are the culprits.
    fn end_blame(&mut self) -> Vec<Action> {
        let (Some(round), Phase::Blaming { proven, .. }) = (self.round, &self.phase) else {
            return Vec::new();
        };
        let culprits: Vec<Address> = self
            .submissions
            .iter()
            .filter(|(a, s)| !s.excluded && !proven.contains(*a))
            .map(|(a, _)| *a)
            .collect();
        self.excluded.extend(culprits.iter().copied());
        self.phase = Phase::Done;
        vec![Action::Blame { round, culprits }]
    }

    /// Hospitals with a valid, counted submission so far.
    pub fn counted(&self) -> BTreeSet<Address> {
        self.submissions
            .iter()
            .filter(|(_, a)| !a.excluded)
            .map(|(a, _)| *a)
            .collect()
    }
}
