//! The chain state and its deterministic transition function.
//!
//! `apply_block(state, head_hash, block, payloads)` either returns the next state or a typed
//! error; it reads no clock, disk or network. Payload presence is asked through the
//! [`Payloads`] trait, which the store adapter answers.

use std::collections::{BTreeMap, BTreeSet};

use fedchain_crypto::identity::{verify_aggregate, SigningKey, VerifyingKey};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{BlockError, TxError};
use crate::merkle;
use crate::types::*;

/// Blocks after a round's deadline within which it must be committed; after that the aggregator
/// may void it (a decryption that cannot complete must not block the job forever).
pub const DECRYPTION_WINDOW: u64 = 16;

/// Most blocks a round stays open for submissions: an `OpenRound` whose deadline is further
/// after its own block is refused (past this a round is a stall, not a deadline).
pub const MAX_DEADLINE_BLOCKS: u64 = 1024;

/// Blocks after a [`TxKind::VoidUnpackable`] within which each valid submitter must put the
/// range proof of its slots on chain; after them the aggregator ends the blame step.
pub const BLAME_WINDOW: u64 = 8;

/// Answers whether a payload is stored and hashes to its digest.
pub trait Payloads {
    fn has_valid(&self, digest: &Hash) -> bool;
}

impl<F: Fn(&Hash) -> bool> Payloads for F {
    fn has_valid(&self, digest: &Hash) -> bool {
        self(digest)
    }
}

/// The genesis configuration: the chain's identity, validators and initial balances.
///
/// The chain id is not chosen: it is the hash of the rest ([`Genesis::derived_id`]), so two
/// deployments (other validators, allocations, time or nonce) never share one and a
/// transaction signed for one is refused by every other (THREAT-MODEL A12). [`Genesis::new`]
/// derives it; a chain refuses to open a genesis whose id is not its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Hex SHA-256 of the other fields (see [`Genesis::derived_id`]): the id every transaction
    /// and block header carries.
    pub chain_id: String,
    /// The consortium's name (free text, part of the hash).
    pub consortium: String,
    /// Distinguishes two deployments of one consortium with the same keys and time.
    pub nonce: u64,
    pub timestamp_ms: u64,
    pub validators: Vec<VerifyingKey>,
    pub allocations: Vec<(Address, u64)>,
}

/// Domain tag of the chain id's hash.
pub const GENESIS_ID_DOMAIN: &[u8] = b"fedchain/genesis-id/v1";

impl Genesis {
    /// A genesis configuration with its derived chain id.
    pub fn new(
        consortium: impl Into<String>,
        nonce: u64,
        timestamp_ms: u64,
        validators: Vec<VerifyingKey>,
        allocations: Vec<(Address, u64)>,
    ) -> Self {
        let mut g = Genesis {
            chain_id: String::new(),
            consortium: consortium.into(),
            nonce,
            timestamp_ms,
            validators,
            allocations,
        };
        g.chain_id = g.derived_id();
        g
    }

    /// Hex of the SHA-256, under [`GENESIS_ID_DOMAIN`], of the canonical encoding of
    /// everything but the id: (consortium, nonce, timestamp, validators, allocations).
    pub fn derived_id(&self) -> String {
        let content = encode(&(
            &self.consortium,
            self.nonce,
            self.timestamp_ms,
            &self.validators,
            &self.allocations,
        ));
        hex::encode(Hash::of(GENESIS_ID_DOMAIN, &[&content]).0)
    }

    /// Ok if the stated chain id is the hash of the content, else both ids.
    pub fn check_id(&self) -> Result<(), (String, String)> {
        let derived = self.derived_id();
        if derived == self.chain_id {
            Ok(())
        } else {
            Err((self.chain_id.clone(), derived))
        }
    }

    /// Check what the rules need of a configuration before a chain starts from it: every
    /// address's allocations (an address may appear more than once) add up to a u64 balance.
    /// `Chain::open` and the audit run it on the configuration they are given or read.
    pub fn check(&self) -> Result<(), crate::LedgerError> {
        let mut balances: BTreeMap<Address, u64> = BTreeMap::new();
        for (a, v) in &self.allocations {
            let b = balances.entry(*a).or_insert(0);
            *b = b.checked_add(*v).ok_or_else(|| {
                crate::LedgerError::Genesis(format!(
                    "the allocations to {a:?} exceed a balance of {}",
                    u64::MAX
                ))
            })?;
        }
        Ok(())
    }
}

/// A registered participant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub key: VerifyingKey,
    pub role: Role,
    pub pseudonym: String,
}

/// One accepted submission of the open round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    pub payload: Hash,
    pub samples: u64,
    pub payload_bytes: u64,
    /// Set by an `InvalidPayload` penalty: the submission may not be accepted.
    pub rejected: bool,
}

/// The open round of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRound {
    pub round: u32,
    pub params_hash: Hash,
    pub opened_at: u64,
    pub deadline: u64,
    pub submissions: BTreeMap<Address, Submission>,
    /// Decryption shares on chain: provider -> (payload digest, taken out by a penalty).
    pub shares: BTreeMap<Address, (Hash, bool)>,
    /// Set by `VoidUnpackable`: the round's aggregate did not unpack and its submitters are
    /// proving their slots in range.
    pub blame: Option<BlameStep>,
}

/// The blame step of a round whose aggregate did not unpack (THREAT-MODEL A5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlameStep {
    /// The summed plaintext that did not unpack: every valid submitter proves its ciphertext
    /// there in range.
    pub plaintext: u32,
    /// Height of the block holding the `VoidUnpackable`.
    pub since: u64,
    /// The range proofs on chain: submitter -> payload digest (each verified before it entered).
    pub proofs: BTreeMap<Address, Hash>,
}

impl OpenRound {
    /// Submissions not taken out by a penalty.
    pub fn valid_submissions(&self) -> usize {
        self.submissions.values().filter(|s| !s.rejected).count()
    }

    /// The providers of decryption shares on chain not taken out by a penalty, in address
    /// order: a commit must pay exactly these (THREAT-MODEL A13).
    pub fn valid_share_providers(&self) -> Vec<Address> {
        self.shares
            .iter()
            .filter(|(_, (_, out))| !out)
            .map(|(a, _)| *a)
            .collect()
    }
}

/// How a finished round ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundOutcome {
    Committed {
        aggregate: Hash,
        new_params_hash: Hash,
        accepted: Vec<Address>,
        share_providers: Vec<Address>,
        minted: u64,
    },
    Void,
}

/// A finished round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub round: u32,
    pub params_hash: Hash,
    pub height: u64,
    pub outcome: RoundOutcome,
}

/// A job and its rounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub spec: JobSpec,
    pub aggregator: Address,
    /// member -> locked deposit
    pub members: BTreeMap<Address, u64>,
    /// member -> the sample count it declared when it joined (its submissions' bound)
    pub samples: BTreeMap<Address, u64>,
    pub next_round: u32,
    pub open: Option<OpenRound>,
    pub history: Vec<RoundRecord>,
    /// Hash of the parameters the next round must start from (the last committed ones).
    pub current_params: Option<Hash>,
    /// (round, offender, offence kind) already punished: evidence counts once
    pub punished: BTreeSet<(u32, Address, u8)>,
    /// Members a blame step found out of range: they may not submit again, no deadline is
    /// counted against them, and their deposits stay locked (they may still give decryption
    /// shares, each verified).
    pub excluded: BTreeSet<Address>,
}

impl Job {
    /// Members still expected to submit: not excluded.
    pub fn active_members(&self) -> impl Iterator<Item = &Address> {
        self.members.keys().filter(|m| !self.excluded.contains(*m))
    }

    /// Whether the open round `round` takes no more submissions in a block at `height`: its
    /// deadline has passed, or every active member submitted (nobody joins while a round is
    /// open). From then on no submission enters; penalties may still take one out, and the
    /// engine defers those of a closed round until it ends (THREAT-MODEL A8). Only then may a
    /// holder decrypt it (THREAT-MODEL G1). A member following the chain with head `h` asks
    /// it for `height = h + 1`.
    pub fn submissions_closed(&self, round: u32, height: u64) -> bool {
        self.open.as_ref().is_some_and(|o| {
            o.round == round
                && (height > o.deadline
                    || self.active_members().all(|m| o.submissions.contains_key(m)))
        })
    }
}

/// The whole chain state. Ordered maps only, so its encoding (and root) is canonical.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub chain_id: String,
    pub height: u64,
    pub timestamp_ms: u64,
    pub validators: Vec<VerifyingKey>,
    pub participants: BTreeMap<Address, Participant>,
    pub nonces: BTreeMap<Address, u64>,
    pub balances: BTreeMap<Address, u64>,
    pub jobs: BTreeMap<JobId, Job>,
    pub next_job: JobId,
    pub genesis_supply: u128,
    pub minted: u128,
}

impl State {
    /// The state at genesis. For a configuration that fails [`Genesis::check`] an overflowing
    /// balance saturates, so the state's supply is not conserved (no panic, no wrap-around).
    pub fn genesis(g: &Genesis) -> Self {
        let mut balances = BTreeMap::new();
        let mut supply = 0u128;
        for (a, v) in &g.allocations {
            let b = balances.entry(*a).or_insert(0u64);
            *b = b.saturating_add(*v);
            supply += *v as u128;
        }
        State {
            chain_id: g.chain_id.clone(),
            height: 0,
            timestamp_ms: g.timestamp_ms,
            validators: g.validators.clone(),
            participants: BTreeMap::new(),
            nonces: BTreeMap::new(),
            balances,
            jobs: BTreeMap::new(),
            next_job: 0,
            genesis_supply: supply,
            minted: 0,
        }
    }

    /// The state root: hash of the canonical encoding.
    pub fn root(&self) -> Hash {
        Hash::of(b"fedchain/state/v1", &[&encode(self)])
    }

    /// Tokens held: balances plus locked deposits.
    pub fn total_tokens(&self) -> u128 {
        let b: u128 = self.balances.values().map(|&v| v as u128).sum();
        let d: u128 = self
            .jobs
            .values()
            .flat_map(|j| j.members.values())
            .map(|&v| v as u128)
            .sum();
        b + d
    }

    /// Whether supply is conserved: tokens held = genesis supply + minting. A state whose
    /// genesis supply plus minting does not fit a u128 (only a corrupt or forged one: rules
    /// never get there) is not conserved.
    pub fn supply_conserved(&self) -> bool {
        self.expected_supply() == Some(self.total_tokens())
    }

    /// Genesis supply plus minting, unless it overflows (see [`Self::supply_conserved`]).
    pub fn expected_supply(&self) -> Option<u128> {
        self.genesis_supply.checked_add(self.minted)
    }

    /// Balance of an address.
    pub fn balance(&self, a: &Address) -> u64 {
        self.balances.get(a).copied().unwrap_or(0)
    }

    fn credit(&mut self, a: Address, v: u64) -> Result<(), TxError> {
        let b = self.balances.entry(a).or_insert(0);
        *b = b.checked_add(v).ok_or(TxError::Overflow)?;
        Ok(())
    }

    fn debit(&mut self, a: Address, v: u64) -> Result<(), TxError> {
        let have = self.balance(&a);
        if have < v {
            return Err(TxError::InsufficientFunds {
                who: a,
                have,
                need: v,
            });
        }
        self.balances.insert(a, have - v);
        Ok(())
    }

    fn role_of(&self, a: &Address) -> Result<Role, TxError> {
        self.participants
            .get(a)
            .map(|p| p.role)
            .ok_or(TxError::UnknownSender(*a))
    }

    fn require_role(&self, a: &Address, needed: Role) -> Result<(), TxError> {
        let actual = self.role_of(a)?;
        if actual != needed {
            return Err(TxError::WrongRole {
                sender: *a,
                needed: needed.name(),
                actual: actual.name(),
            });
        }
        Ok(())
    }

    fn job_mut(&mut self, job: JobId) -> Result<&mut Job, TxError> {
        self.jobs.get_mut(&job).ok_or(TxError::UnknownJob(job))
    }

    /// This chain and a fresh nonce: the first checks of every transaction. Returns the sender.
    fn check_sender(&self, stx: &SignedTx) -> Result<Address, TxError> {
        let sender = stx.sender();
        if stx.tx.chain_id != self.chain_id {
            return Err(TxError::WrongChain);
        }
        let last = self.nonces.get(&sender).copied().unwrap_or(0);
        if stx.tx.nonce <= last {
            return Err(TxError::Replay {
                sender,
                last,
                got: stx.tx.nonce,
            });
        }
        Ok(sender)
    }

    /// The checks a transaction must pass before anyone acts on it off chain (the round engine's
    /// driver asks before it feeds a message in): this chain, a fresh nonce, a registered
    /// sender, and for job messages, a member of the job. The full rules run when it is applied.
    pub fn precheck(&self, stx: &SignedTx) -> Result<(), TxError> {
        let tx = &stx.tx;
        let sender = self.check_sender(stx)?;
        self.role_of(&sender)?;
        if let TxKind::Submit { job, .. } | TxKind::DecryptionShare { job, .. } = &tx.kind {
            let j = self.jobs.get(job).ok_or(TxError::UnknownJob(*job))?;
            if !j.members.contains_key(&sender) {
                return Err(TxError::NotMember {
                    job: *job,
                    hospital: sender,
                });
            }
            if matches!(tx.kind, TxKind::Submit { .. }) && j.excluded.contains(&sender) {
                return Err(TxError::Excluded {
                    job: *job,
                    hospital: sender,
                });
            }
        }
        Ok(())
    }

    /// Apply one transaction whose signature has been checked, at block height `height`.
    pub fn apply_tx(
        &mut self,
        stx: &SignedTx,
        height: u64,
        payloads: &dyn Payloads,
    ) -> Result<(), TxError> {
        let tx = &stx.tx;
        let sender = self.check_sender(stx)?;
        if !matches!(tx.kind, TxKind::Register { .. }) {
            self.role_of(&sender)?;
        }
        // work on a copy so a failing transaction leaves no trace
        let mut next = self.clone();
        next.apply_kind(sender, &tx.sender, &tx.kind, height, payloads)?;
        next.nonces.insert(sender, tx.nonce);
        *self = next;
        Ok(())
    }

    fn apply_kind(
        &mut self,
        sender: Address,
        sender_key: &VerifyingKey,
        kind: &TxKind,
        height: u64,
        payloads: &dyn Payloads,
    ) -> Result<(), TxError> {
        match kind {
            TxKind::Register { role, pseudonym } => {
                if self.participants.contains_key(&sender) {
                    return Err(TxError::AlreadyRegistered(sender));
                }
                self.participants.insert(
                    sender,
                    Participant {
                        key: *sender_key,
                        role: *role,
                        pseudonym: pseudonym.clone(),
                    },
                );
            }
            TxKind::CreateJob(spec) => {
                self.require_role(&sender, Role::Aggregator)?;
                // a job without a threshold key is a plaintext baseline: no decryption shares
                let plain = spec.threshold_key.is_empty();
                let ok = if plain {
                    spec.threshold == 0
                } else {
                    spec.threshold >= 1 && spec.threshold as usize <= spec.committee.len()
                };
                if !ok {
                    return Err(TxError::InvalidJob(format!(
                        "threshold {} for a committee of {} ({})",
                        spec.threshold,
                        spec.committee.len(),
                        if plain {
                            "plaintext job: must be 0"
                        } else {
                            "must be 1..=committee"
                        }
                    )));
                }
                let floor = MIN_PARTICIPANTS.max(spec.threshold);
                if spec.min_participants < floor
                    || spec.min_participants as usize > spec.committee.len()
                {
                    return Err(TxError::MinParticipants {
                        got: spec.min_participants,
                        floor,
                        committee: spec.committee.len() as u32,
                    });
                }
                let distinct: BTreeSet<_> = spec.committee.iter().collect();
                if distinct.len() != spec.committee.len() {
                    return Err(TxError::InvalidJob(
                        "committee lists a hospital twice".into(),
                    ));
                }
                for h in &spec.committee {
                    self.require_role(h, Role::Hospital)?;
                }
                if spec.max_samples == 0 {
                    return Err(TxError::InvalidJob("max_samples must be at least 1".into()));
                }
                let i = &spec.incentives;
                if i.missed_deadline_permille > 1000 || i.misbehaviour_permille > 1000 {
                    return Err(TxError::InvalidJob("penalties above 1000 per mille".into()));
                }
                let id = self.next_job;
                self.next_job += 1;
                self.jobs.insert(
                    id,
                    Job {
                        spec: spec.clone(),
                        aggregator: sender,
                        members: BTreeMap::new(),
                        samples: BTreeMap::new(),
                        next_round: 0,
                        open: None,
                        history: Vec::new(),
                        current_params: None,
                        punished: BTreeSet::new(),
                        excluded: BTreeSet::new(),
                    },
                );
            }
            TxKind::Join {
                job,
                deposit,
                samples,
            } => {
                self.require_role(&sender, Role::Hospital)?;
                let j = self.jobs.get(job).ok_or(TxError::UnknownJob(*job))?;
                if !j.spec.committee.contains(&sender) {
                    return Err(TxError::NotMember {
                        job: *job,
                        hospital: sender,
                    });
                }
                if j.members.contains_key(&sender) {
                    return Err(TxError::AlreadyMember {
                        job: *job,
                        hospital: sender,
                    });
                }
                // a member joining while a round is open would reopen a round that closed
                // with every member in (its valid set, which holders decrypt, is frozen)
                if let Some(o) = &j.open {
                    return Err(TxError::JoinDuringRound {
                        job: *job,
                        round: o.round,
                    });
                }
                if *deposit < j.spec.incentives.min_deposit {
                    return Err(TxError::InsufficientFunds {
                        who: sender,
                        have: *deposit,
                        need: j.spec.incentives.min_deposit,
                    });
                }
                if *samples == 0 || *samples > j.spec.max_samples {
                    return Err(TxError::BadDeclaration {
                        job: *job,
                        hospital: sender,
                        got: *samples,
                        max: j.spec.max_samples,
                    });
                }
                self.debit(sender, *deposit)?;
                let j = self.job_mut(*job)?;
                j.members.insert(sender, *deposit);
                j.samples.insert(sender, *samples);
            }
            TxKind::OpenRound {
                job,
                round,
                params_hash,
                deadline,
            } => {
                let j = self.job_mut(*job)?;
                if j.aggregator != sender {
                    return Err(TxError::NotAggregator { job: *job });
                }
                if j.open.is_some() || *round != j.next_round {
                    return Err(TxError::WrongRound {
                        job: *job,
                        expected: j.next_round,
                        got: *round,
                    });
                }
                if *deadline < height {
                    return Err(TxError::InvalidJob("deadline in the past".into()));
                }
                if *deadline > height.saturating_add(MAX_DEADLINE_BLOCKS) {
                    return Err(TxError::InvalidJob(format!(
                        "deadline {deadline} is more than {MAX_DEADLINE_BLOCKS} blocks after height {height}"
                    )));
                }
                if let Some(current) = j.current_params {
                    if current != *params_hash {
                        return Err(TxError::InvalidJob(
                            "a round must start from the last committed parameters".into(),
                        ));
                    }
                }
                j.open = Some(OpenRound {
                    round: *round,
                    params_hash: *params_hash,
                    opened_at: height,
                    deadline: *deadline,
                    submissions: BTreeMap::new(),
                    shares: BTreeMap::new(),
                    blame: None,
                });
            }
            TxKind::Submit {
                job,
                round,
                payload,
                samples,
                payload_bytes,
            } => {
                let j = self.job_mut(*job)?;
                let declared = j.samples.get(&sender).copied().unwrap_or(0);
                if j.excluded.contains(&sender) {
                    return Err(TxError::Excluded {
                        job: *job,
                        hospital: sender,
                    });
                }
                // an equivocation penalty may be final before either message it names (its
                // evidence carries both): the submission then enters the round rejected
                let punished =
                    j.punished
                        .contains(&(*round, sender, Offence::SUBMISSION_EQUIVOCATION));
                let open = member_round(j, sender, *job, *round)?;
                not_blaming(open, *job)?;
                if height > open.deadline {
                    return Err(TxError::Late {
                        job: *job,
                        round: *round,
                        deadline: open.deadline,
                        height,
                    });
                }
                let previous = open.submissions.get(&sender).map(|s| &s.payload);
                once(previous, payload, *job, *round, sender)?;
                if *samples == 0 || *samples > declared {
                    return Err(TxError::Samples {
                        job: *job,
                        round: *round,
                        hospital: sender,
                        got: *samples,
                        declared,
                    });
                }
                if !payloads.has_valid(payload) {
                    return Err(TxError::MissingPayload { digest: *payload });
                }
                open.submissions.insert(
                    sender,
                    Submission {
                        payload: *payload,
                        samples: *samples,
                        payload_bytes: *payload_bytes,
                        rejected: punished,
                    },
                );
            }
            TxKind::DecryptionShare {
                job,
                round,
                payload,
            } => {
                let j = self.job_mut(*job)?;
                if j.spec.threshold_key.is_empty() {
                    return Err(TxError::InvalidJob(
                        "a plaintext job has no decryption shares".into(),
                    ));
                }
                if j.open.as_ref().is_some_and(|o| o.round == *round)
                    && !j.submissions_closed(*round, height)
                {
                    return Err(TxError::SubmissionsOpen {
                        job: *job,
                        round: *round,
                    });
                }
                let punished = j
                    .punished
                    .contains(&(*round, sender, Offence::SHARE_EQUIVOCATION));
                let open = member_round(j, sender, *job, *round)?;
                not_blaming(open, *job)?;
                once(
                    open.shares.get(&sender).map(|s| &s.0),
                    payload,
                    *job,
                    *round,
                    sender,
                )?;
                if !payloads.has_valid(payload) {
                    return Err(TxError::MissingPayload { digest: *payload });
                }
                open.shares.insert(sender, (*payload, punished));
            }
            TxKind::CommitRound {
                job,
                round,
                aggregate,
                new_params_hash,
                accepted,
                share_providers,
            } => {
                self.commit_round(
                    sender,
                    *job,
                    *round,
                    height,
                    *aggregate,
                    *new_params_hash,
                    accepted,
                    share_providers,
                )?;
            }
            TxKind::VoidRound { job, round } => {
                let j = self.job_mut(*job)?;
                if j.aggregator != sender {
                    return Err(TxError::NotAggregator { job: *job });
                }
                let (min, threshold) = (j.spec.min_participants, j.spec.threshold);
                let open = open_round(j, *job, *round)?;
                not_blaming(open, *job)?;
                let valid = open.valid_submissions() as u32;
                // a round that can be committed (enough valid submissions, t valid shares on
                // chain) must be: voiding it would withhold the share providers' pay
                let shares = open.valid_share_providers().len() as u32;
                if threshold >= 1 && valid >= min && shares >= threshold {
                    return Err(TxError::Decryptable {
                        job: *job,
                        round: *round,
                        shares,
                        threshold,
                    });
                }
                // too few submissions by the deadline, or no commit within the decryption window
                let stuck = height > open.deadline.saturating_add(DECRYPTION_WINDOW);
                if height <= open.deadline || (valid >= min && !stuck) {
                    return Err(TxError::BadCommit {
                        job: *job,
                        round: *round,
                        reason: "a round is void only after its deadline with too few submissions, or after its decryption window"
                            .into(),
                    });
                }
                close_void(j, height);
            }
            TxKind::VoidUnpackable {
                job,
                round,
                plaintext,
            } => {
                let j = self.job_mut(*job)?;
                if j.aggregator != sender {
                    return Err(TxError::NotAggregator { job: *job });
                }
                let t = j.spec.threshold;
                let open = open_round(j, *job, *round)?;
                not_blaming(open, *job)?;
                let valid_shares = open.shares.values().filter(|(_, bad)| !bad).count() as u32;
                if t == 0 || valid_shares < t {
                    return Err(TxError::BadCommit {
                        job: *job,
                        round: *round,
                        reason: format!(
                            "{valid_shares} valid decryption shares, threshold {t}: nothing was decrypted that could fail to unpack"
                        ),
                    });
                }
                open.blame = Some(BlameStep {
                    plaintext: *plaintext,
                    since: height,
                    proofs: BTreeMap::new(),
                });
            }
            TxKind::RangeProof {
                job,
                round,
                payload,
            } => {
                let j = self.job_mut(*job)?;
                let open = member_round(j, sender, *job, *round)?;
                let valid = open.submissions.get(&sender).is_some_and(|s| !s.rejected);
                let Some(blame) = open.blame.as_mut() else {
                    return Err(TxError::BadCommit {
                        job: *job,
                        round: *round,
                        reason: "no blame step is open: nothing to prove".into(),
                    });
                };
                if !valid {
                    return Err(TxError::Blaming {
                        job: *job,
                        round: *round,
                        reason: format!("{sender} has no valid submission to prove"),
                    });
                }
                once(blame.proofs.get(&sender), payload, *job, *round, sender)?;
                if !payloads.has_valid(payload) {
                    return Err(TxError::MissingPayload { digest: *payload });
                }
                blame.proofs.insert(sender, *payload);
            }
            TxKind::Blame { job, round } => {
                self.blame(sender, *job, *round, height)?;
            }
            TxKind::Transfer { to, amount } => {
                self.debit(sender, *amount)?;
                self.credit(*to, *amount)?;
            }
            TxKind::Penalty {
                job,
                offender,
                offence,
            } => {
                self.penalty(sender, *job, *offender, offence)?;
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_round(
        &mut self,
        sender: Address,
        job: JobId,
        round: u32,
        height: u64,
        aggregate: Hash,
        new_params_hash: Hash,
        accepted: &[Address],
        share_providers: &[Address],
    ) -> Result<(), TxError> {
        let bad = |reason: String| TxError::BadCommit { job, round, reason };
        let (j, open) = self.aggregator_round(sender, job, round)?;
        not_blaming(open, job)?;
        let acc: BTreeSet<_> = accepted.iter().copied().collect();
        if acc.len() != accepted.len() {
            return Err(bad("an accepted submitter is listed twice".into()));
        }
        for a in accepted {
            match open.submissions.get(a) {
                Some(s) if !s.rejected => {}
                _ => return Err(bad(format!("{a} has no valid submission"))),
            }
        }
        // every valid submission is in the aggregate: an aggregator may not single one out
        let valid = open.submissions.values().filter(|s| !s.rejected).count();
        if acc.len() != valid {
            return Err(bad(format!(
                "{} accepted of {valid} valid submissions: all must be",
                acc.len()
            )));
        }
        let active = j.active_members().count();
        let all_in = j.active_members().all(|m| open.submissions.contains_key(m));
        if (accepted.len() as u32) < j.spec.min_participants {
            return Err(bad(format!(
                "{} accepted, the job's minimum is {}",
                accepted.len(),
                j.spec.min_participants
            )));
        }
        if !all_in && height <= open.deadline && acc.len() < active {
            return Err(bad("members are still to submit before the deadline".into()));
        }
        let prov: BTreeSet<_> = share_providers.iter().copied().collect();
        if prov.len() != share_providers.len() || (prov.len() as u32) < j.spec.threshold {
            return Err(bad(format!(
                "{} distinct share providers, threshold {}",
                prov.len(),
                j.spec.threshold
            )));
        }
        for p in share_providers {
            match open.shares.get(p) {
                Some((_, false)) => {}
                _ => return Err(bad(format!("{p} has no valid decryption share"))),
            }
        }
        // every valid share on chain is paid: an aggregator may not choose whom to pay
        if let Some(provider) = open
            .valid_share_providers()
            .into_iter()
            .find(|p| !prov.contains(p))
        {
            return Err(TxError::UnpaidShare {
                job,
                round,
                provider,
            });
        }
        // rewards: minted, split by samples among accepted and evenly among share providers
        let inc = j.spec.incentives.clone();
        let total_samples: u128 = accepted
            .iter()
            .map(|a| open.submissions[a].samples as u128)
            .sum();
        let mut payouts: Vec<(Address, u64)> = Vec::new();
        for a in accepted {
            let s = open.submissions[a].samples as u128;
            let v = (inc.submit_reward as u128 * s)
                .checked_div(total_samples)
                .unwrap_or(0);
            payouts.push((*a, v as u64));
        }
        // a plaintext job has no share providers: nothing to split
        let each = inc
            .share_reward
            .checked_div(share_providers.len() as u64)
            .unwrap_or(0);
        payouts.extend(share_providers.iter().map(|p| (*p, each)));
        // missed deadlines: members with no submission forfeit part of their deposit to the accepted
        let missed: Vec<Address> = j
            .active_members()
            .filter(|m| !open.submissions.contains_key(m))
            .copied()
            .collect();
        let params_hash = open.params_hash;
        let minted = payouts
            .iter()
            .try_fold(0u64, |acc, (_, v)| acc.checked_add(*v))
            .ok_or(TxError::Overflow)?;
        for (a, v) in payouts {
            self.credit(a, v)?;
        }
        self.minted = self
            .minted
            .checked_add(minted as u128)
            .ok_or(TxError::Overflow)?;
        let mut forfeited = 0u64;
        {
            let j = self.job_mut(job)?;
            for m in &missed {
                if let Some(d) = j.members.get_mut(m) {
                    let f = forfeit(*d, inc.missed_deadline_permille);
                    *d -= f;
                    forfeited = forfeited.checked_add(f).ok_or(TxError::Overflow)?;
                }
            }
        }
        self.redistribute(forfeited, accepted)?;
        let j = self.job_mut(job)?;
        j.history.push(RoundRecord {
            round,
            params_hash,
            height,
            outcome: RoundOutcome::Committed {
                aggregate,
                new_params_hash,
                accepted: accepted.to_vec(),
                share_providers: share_providers.to_vec(),
                minted,
            },
        });
        j.current_params = Some(new_params_hash);
        j.open = None;
        j.next_round += 1;
        Ok(())
    }

    /// Give `amount` to `to` evenly; the remainder goes to the first (supply stays exact).
    fn redistribute(&mut self, amount: u64, to: &[Address]) -> Result<(), TxError> {
        if amount == 0 || to.is_empty() {
            return Ok(());
        }
        let each = amount / to.len() as u64;
        let rest = amount - each * to.len() as u64;
        for (i, a) in to.iter().enumerate() {
            self.credit(*a, each + if i == 0 { rest } else { 0 })?;
        }
        Ok(())
    }

    /// Job `job` and its open round `round`, for its aggregator `sender` only.
    fn aggregator_round(
        &self,
        sender: Address,
        job: JobId,
        round: u32,
    ) -> Result<(&Job, &OpenRound), TxError> {
        let j = self.jobs.get(&job).ok_or(TxError::UnknownJob(job))?;
        if j.aggregator != sender {
            return Err(TxError::NotAggregator { job });
        }
        let open = j
            .open
            .as_ref()
            .filter(|o| o.round == round)
            .ok_or(TxError::RoundNotOpen { job, round })?;
        Ok((j, open))
    }

    /// End the blame step of `round`: every valid submitter without a range proof on chain
    /// forfeits the misbehaviour share of its deposit (to the other members) and is excluded;
    /// the round is void.
    fn blame(
        &mut self,
        sender: Address,
        job: JobId,
        round: u32,
        height: u64,
    ) -> Result<(), TxError> {
        let (j, open) = self.aggregator_round(sender, job, round)?;
        let Some(step) = &open.blame else {
            return Err(TxError::BadCommit {
                job,
                round,
                reason: "no blame step is open".into(),
            });
        };
        let culprits: Vec<Address> = open
            .submissions
            .iter()
            .filter(|(a, s)| !s.rejected && !step.proofs.contains_key(*a))
            .map(|(a, _)| *a)
            .collect();
        if !culprits.is_empty() && height <= step.since.saturating_add(BLAME_WINDOW) {
            return Err(TxError::Blaming {
                job,
                round,
                reason: format!(
                    "{} submitters may still prove their slots until height {}",
                    culprits.len(),
                    step.since.saturating_add(BLAME_WINDOW)
                ),
            });
        }
        let permille = j.spec.incentives.misbehaviour_permille;
        let honest: Vec<Address> = j
            .active_members()
            .filter(|m| !culprits.contains(m))
            .copied()
            .collect();
        let mut forfeited = 0u64;
        let j = self.job_mut(job)?;
        for c in &culprits {
            j.punished.insert((round, *c, Offence::OUT_OF_RANGE));
            j.excluded.insert(*c);
            // forfeited to the members still in the job (none left: nothing moves)
            if let Some(d) = j.members.get_mut(c).filter(|_| !honest.is_empty()) {
                let f = forfeit(*d, permille);
                *d -= f;
                forfeited = forfeited.checked_add(f).ok_or(TxError::Overflow)?;
            }
        }
        close_void(j, height);
        self.redistribute(forfeited, &honest)
    }

    fn penalty(
        &mut self,
        sender: Address,
        job: JobId,
        offender: Address,
        offence: &Offence,
    ) -> Result<(), TxError> {
        let j = self.jobs.get(&job).ok_or(TxError::UnknownJob(job))?;
        if j.aggregator != sender {
            return Err(TxError::NotAggregator { job });
        }
        if !j.members.contains_key(&offender) {
            return Err(TxError::NotMember {
                job,
                hospital: offender,
            });
        }
        let bad = |m: &str| TxError::InvalidEvidence(m.to_string());
        let (round, kind) = match offence {
            Offence::Equivocation { first, second } => {
                let round_of = |s: &SignedTx| match &s.tx.kind {
                    TxKind::Submit {
                        job: jb,
                        round,
                        payload,
                        ..
                    } if *jb == job => Some((*round, *payload)),
                    TxKind::DecryptionShare {
                        job: jb,
                        round,
                        payload,
                    } if *jb == job => Some((*round, *payload)),
                    _ => None,
                };
                let (Some((r1, p1)), Some((r2, p2))) = (round_of(first), round_of(second)) else {
                    return Err(bad("evidence is not two submissions to this job"));
                };
                if std::mem::discriminant(&first.tx.kind) != std::mem::discriminant(&second.tx.kind)
                {
                    return Err(bad("evidence mixes kinds"));
                }
                if r1 != r2 || p1 == p2 {
                    return Err(bad("evidence is not two different messages for one round"));
                }
                if first.tx.chain_id != self.chain_id || second.tx.chain_id != self.chain_id {
                    return Err(bad("evidence is from another chain"));
                }
                if first.sender() != offender || second.sender() != offender {
                    return Err(bad("evidence is not signed by the offender"));
                }
                if !first.verify() || !second.verify() {
                    return Err(bad("evidence signature does not verify"));
                }
                (r1, offence.kind())
            }
            Offence::InvalidPayload {
                job: jb,
                round,
                digest,
            }
            | Offence::InvalidShare {
                job: jb,
                round,
                digest,
            } => {
                if *jb != job {
                    return Err(bad("evidence names another job"));
                }
                let open = j
                    .open
                    .as_ref()
                    .filter(|o| o.round == *round)
                    .ok_or(TxError::RoundNotOpen { job, round: *round })?;
                let is_payload = matches!(offence, Offence::InvalidPayload { .. });
                let found = if is_payload {
                    open.submissions.get(&offender).map(|s| s.payload)
                } else {
                    open.shares.get(&offender).map(|s| s.0)
                };
                if found != Some(*digest) {
                    return Err(bad("the offender has no such payload in this round"));
                }
                (*round, offence.kind())
            }
        };
        if j.punished.contains(&(round, offender, kind)) {
            return Err(bad("this offence was already punished"));
        }
        let permille = j.spec.incentives.misbehaviour_permille;
        let honest: Vec<Address> = j
            .members
            .keys()
            .filter(|m| **m != offender)
            .copied()
            .collect();
        let j = self.job_mut(job)?;
        j.punished.insert((round, offender, kind));
        if let Some(open) = j.open.as_mut().filter(|o| o.round == round) {
            // the message the offence is about is out of the round: an equivocator's or an
            // invalid submission leaves the aggregate, an equivocator's or an invalid share
            // the combination
            if offence.against_submission() {
                if let Some(s) = open.submissions.get_mut(&offender) {
                    s.rejected = true;
                }
            } else if let Some(s) = open.shares.get_mut(&offender) {
                s.1 = true;
            }
        }
        let d = j.members.get_mut(&offender).ok_or(TxError::NotMember {
            job,
            hospital: offender,
        })?;
        let f = forfeit(*d, permille);
        *d -= f;
        self.redistribute(f, &honest)
    }
}

/// One message per sender and round: the same payload again is `Duplicate`, another one
/// `Equivocation`.
fn once(
    previous: Option<&Hash>,
    payload: &Hash,
    job: JobId,
    round: u32,
    hospital: Address,
) -> Result<(), TxError> {
    match previous {
        Some(d) if d == payload => Err(TxError::Duplicate {
            job,
            round,
            hospital,
        }),
        Some(_) => Err(TxError::Equivocation {
            job,
            round,
            hospital,
        }),
        None => Ok(()),
    }
}

/// Refuse what only a round outside its blame step may do.
fn not_blaming(open: &OpenRound, job: JobId) -> Result<(), TxError> {
    if open.blame.is_some() {
        return Err(TxError::Blaming {
            job,
            round: open.round,
            reason: "its aggregate did not unpack; only range proofs and the blame may follow"
                .into(),
        });
    }
    Ok(())
}

/// End the open round of `j` as void (recorded in its history) and move to the next round.
fn close_void(j: &mut Job, height: u64) {
    if let Some(open) = j.open.take() {
        j.history.push(RoundRecord {
            round: open.round,
            params_hash: open.params_hash,
            height,
            outcome: RoundOutcome::Void,
        });
        j.next_round += 1;
    }
}

/// The part of a deposit forfeited at `permille`, never more than the deposit: `CreateJob`
/// refuses a per-mille above 1000, so only a forged stored state gets there.
fn forfeit(deposit: u64, permille: u32) -> u64 {
    let f = deposit as u128 * permille as u128 / 1000;
    u64::try_from(f).unwrap_or(u64::MAX).min(deposit)
}

/// The open round `round` of job `j`, for a member `sender` of it.
fn member_round(
    j: &mut Job,
    sender: Address,
    job: JobId,
    round: u32,
) -> Result<&mut OpenRound, TxError> {
    if !j.members.contains_key(&sender) {
        return Err(TxError::NotMember {
            job,
            hospital: sender,
        });
    }
    open_round(j, job, round)
}

fn open_round(j: &mut Job, job: JobId, round: u32) -> Result<&mut OpenRound, TxError> {
    j.open
        .as_mut()
        .filter(|o| o.round == round)
        .ok_or(TxError::RoundNotOpen { job, round })
}

/// Check a quorum certificate: more than 2/3 of the validators signed the header hash.
pub fn verify_qc(
    validators: &[VerifyingKey],
    header_hash: &Hash,
    qc: &QuorumCertificate,
) -> Result<(), BlockError> {
    if qc.signers.len() != validators.len() {
        return Err(BlockError::BadQuorum(format!(
            "bitmap of {} for {} validators",
            qc.signers.len(),
            validators.len()
        )));
    }
    let count = qc.signers.iter().filter(|s| **s).count();
    if count * 3 <= validators.len() * 2 {
        return Err(BlockError::BadQuorum(format!(
            "{count} of {} signed, need more than 2/3",
            validators.len()
        )));
    }
    let (msgs, keys): (Vec<Vec<u8>>, Vec<VerifyingKey>) = qc
        .signers
        .iter()
        .enumerate()
        .filter(|(_, s)| **s)
        .map(|(i, _)| (vote_message(header_hash, i as u32), validators[i]))
        .unzip();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    match verify_aggregate(&qc.signature, &refs, &keys) {
        Ok(true) => Ok(()),
        Ok(false) => Err(BlockError::BadQuorum(
            "aggregate signature does not verify".into(),
        )),
        Err(e) => Err(BlockError::BadQuorum(e.to_string())),
    }
}

/// A validator's vote on a header.
pub fn vote(
    key: &SigningKey,
    index: u32,
    header_hash: &Hash,
) -> fedchain_crypto::identity::Signature {
    key.sign(&vote_message(header_hash, index))
}

/// Assemble a quorum certificate from votes `(validator index, signature)`.
pub fn assemble_qc(
    validators: usize,
    votes: &[(u32, fedchain_crypto::identity::Signature)],
) -> Result<QuorumCertificate, BlockError> {
    let mut signers = vec![false; validators];
    for (i, _) in votes {
        let slot = signers
            .get_mut(*i as usize)
            .ok_or_else(|| BlockError::BadQuorum(format!("no validator {i}")))?;
        if *slot {
            return Err(BlockError::BadQuorum(format!("validator {i} voted twice")));
        }
        *slot = true;
    }
    let sigs: Vec<_> = votes.iter().map(|(_, s)| *s).collect();
    let signature = fedchain_crypto::identity::aggregate(&sigs)
        .map_err(|e| BlockError::BadQuorum(e.to_string()))?;
    Ok(QuorumCertificate { signers, signature })
}

/// The transaction root of a body.
pub fn tx_root(txs: &[SignedTx]) -> Hash {
    let hashes: Vec<Hash> = txs.iter().map(SignedTx::hash).collect();
    merkle::root(&hashes)
}

/// Check every transaction signature of a body: one aggregate BLS verification over the
/// distinct signed messages (a single multi-pairing), and only when that fails, one check per
/// transaction in parallel to name the first bad one.
pub fn verify_signatures(txs: &[SignedTx]) -> Result<(), BlockError> {
    if txs.is_empty() {
        return Ok(());
    }
    let msgs: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_bytes()).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let keys: Vec<VerifyingKey> = txs.iter().map(|t| t.tx.sender).collect();
    let sigs: Vec<_> = txs.iter().map(|t| t.signature).collect();
    let batch_ok = fedchain_crypto::identity::aggregate(&sigs)
        .ok()
        .and_then(|agg| verify_aggregate(&agg, &refs, &keys).ok())
        .unwrap_or(false);
    if batch_ok {
        return Ok(());
    }
    match txs.par_iter().position_first(|t| !t.verify()) {
        Some(index) => Err(BlockError::Tx {
            index,
            error: TxError::BadSignature,
        }),
        // all valid one by one: the batch failed only on repeated messages (a replayed
        // transaction inside the block), which the nonce rule rejects during application
        None => Ok(()),
    }
}

/// Apply the transactions of a body whose signatures were checked, at `height`.
/// Returns the first failure with its index.
pub fn apply_txs(
    state: &mut State,
    txs: &[SignedTx],
    height: u64,
    payloads: &dyn Payloads,
) -> Result<(), BlockError> {
    for (index, t) in txs.iter().enumerate() {
        state
            .apply_tx(t, height, payloads)
            .map_err(|error| BlockError::Tx { index, error })?;
    }
    Ok(())
}

/// The state-independent checks of a block: transaction root, the quorum certificate (with
/// `certs`) against the validator set, and every signature. Blocks can be checked this
/// way in parallel; [`apply_checked_block`] then replays them in order.
pub fn check_block_crypto(
    validators: &[VerifyingKey],
    block: &Block,
    certs: Certs<'_>,
) -> Result<(), BlockError> {
    let h = &block.header;
    if !validators.contains(&h.proposer) {
        return Err(BlockError::UnknownProposer);
    }
    if tx_root(&block.txs) != h.tx_root {
        return Err(BlockError::WrongTxRoot);
    }
    let finality = match certs {
        Certs::Unchecked => None,
        Certs::Required(f) | Certs::IfPresent(f) => Some(f),
    };
    if let Some(finality) = finality {
        match &block.cert {
            Some(cert) => verify_certificate(validators, h, cert, finality)?,
            None if matches!(certs, Certs::Required(_)) => {
                return Err(BlockError::BadQuorum("missing".into()))
            }
            None => {}
        }
    }
    verify_signatures(&block.txs)
}

/// Which certificate checks [`check_block_crypto`] makes.
#[derive(Clone, Copy)]
pub enum Certs<'a> {
    /// None (a proposal, before it is certified).
    Unchecked,
    /// The block must carry a valid certificate.
    Required(Option<&'a dyn Finality>),
    /// A certificate the block carries must be valid; a block without one is final only
    /// through a certified descendant (the caller checks that the head carries one).
    IfPresent(Option<&'a dyn Finality>),
}

impl std::fmt::Debug for Certs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Certs::Unchecked => "Unchecked",
            Certs::Required(_) => "Required",
            Certs::IfPresent(_) => "IfPresent",
        })
    }
}

/// The check of a consensus engine's finalization certificate. The ledger does not know the
/// engine; `fedchain-validator` implements this for commonware `simplex` (`bls12381_multisig`).
pub trait Finality: Send + Sync {
    /// `Ok` when `finalization` (the engine's encoding) finalizes the block whose header
    /// hash is `header_hash` on the chain `chain_id`, signed by more than 2/3 of
    /// `validators` (the genesis validator set, in genesis order).
    fn verify(
        &self,
        chain_id: &str,
        validators: &[VerifyingKey],
        header_hash: &Hash,
        finalization: &[u8],
    ) -> Result<(), String>;
}

/// Check a block's certificate against the validator set: a replicas' quorum certificate
/// here, a consensus finalization by `finality` (refused when there is none to check it).
pub fn verify_certificate(
    validators: &[VerifyingKey],
    header: &BlockHeader,
    cert: &Certificate,
    finality: Option<&dyn Finality>,
) -> Result<(), BlockError> {
    match cert {
        Certificate::Replicas(qc) => verify_qc(validators, &header.hash(), qc),
        Certificate::Finalization(bytes) => {
            let f = finality.ok_or_else(|| {
                BlockError::BadQuorum(
                    "a consensus finalization, and no finality verifier to check it".into(),
                )
            })?;
            f.verify(&header.chain_id, validators, &header.hash(), bytes)
                .map_err(BlockError::BadQuorum)
        }
    }
}

/// The state-dependent checks of a block whose [`check_block_crypto`] passed: height, parent,
/// time, every rule, and the state root. Returns the state it produces.
pub fn apply_checked_block(
    state: &State,
    head_hash: &Hash,
    block: &Block,
    payloads: &dyn Payloads,
) -> Result<State, BlockError> {
    let h = &block.header;
    if h.height != state.height + 1 {
        return Err(BlockError::WrongHeight {
            expected: state.height + 1,
            got: h.height,
        });
    }
    if h.chain_id != state.chain_id || h.prev_hash != *head_hash {
        return Err(BlockError::WrongParent);
    }
    if h.timestamp_ms < state.timestamp_ms {
        return Err(BlockError::TimeWentBack {
            parent: state.timestamp_ms,
            got: h.timestamp_ms,
        });
    }
    let mut next = state.clone();
    apply_txs(&mut next, &block.txs, h.height, payloads)?;
    next.height = h.height;
    next.timestamp_ms = h.timestamp_ms;
    if !next.supply_conserved() {
        return Err(BlockError::Tx {
            index: block.txs.len().saturating_sub(1),
            error: TxError::Overflow,
        });
    }
    if next.root() != h.state_root {
        return Err(BlockError::WrongStateRoot);
    }
    Ok(next)
}

/// Validate a block on top of `(state, head_hash)` and return the state it produces.
/// With `require_qc`, the block must carry a quorum certificate of more than 2/3 validators.
pub fn apply_block(
    state: &State,
    head_hash: &Hash,
    block: &Block,
    payloads: &dyn Payloads,
    certs: Certs<'_>,
) -> Result<State, BlockError> {
    check_block_crypto(&state.validators, block, certs)?;
    apply_checked_block(state, head_hash, block, payloads)
}

/// The genesis block of a configuration (height 0, no transactions, no certificate).
pub fn genesis_block(g: &Genesis) -> Block {
    let state = State::genesis(g);
    let proposer = g.validators.first().copied();
    Block {
        header: BlockHeader {
            chain_id: g.chain_id.clone(),
            height: 0,
            prev_hash: Hash::default(),
            tx_root: tx_root(&[]),
            state_root: state.root(),
            timestamp_ms: g.timestamp_ms,
            proposer: proposer.unwrap_or_else(|| SigningKey::from_seed(&[0; 32]).verifying_key()),
        },
        txs: Vec::new(),
        cert: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `ledger_state` fuzz target: a decoded state whose genesis supply plus
    /// minting overflows made `supply_conserved` panic (overflow check) instead of answering.
    #[test]
    fn supply_of_a_forged_state_overflows_without_panicking() {
        let mut s = State::genesis(&Genesis::new("c", 0, 0, Vec::new(), Vec::new()));
        s.genesis_supply = u128::MAX;
        s.minted = 1;
        assert_eq!(s.expected_supply(), None);
        assert!(!s.supply_conserved());
        let back: State = crate::types::decode("state", &encode(&s)).expect("decode");
        assert!(!back.supply_conserved());
    }

    /// Found by the `ledger_state` fuzz target: two allocations to one address whose sum
    /// exceeds a u64 made `State::genesis` panic (overflow check; a silent wrap-around in a
    /// release build). `Genesis::check` now refuses the configuration with a typed error and
    /// the genesis state saturates instead.
    #[test]
    fn overflowing_genesis_allocations_are_refused() {
        let a = Address([7; 20]);
        let g = Genesis::new("c", 0, 0, Vec::new(), vec![(a, u64::MAX), (a, 1)]);
        assert!(matches!(g.check(), Err(crate::LedgerError::Genesis(_))));
        let s = State::genesis(&g);
        assert_eq!(s.balance(&a), u64::MAX);
        assert!(!s.supply_conserved());
        let ok = Genesis {
            allocations: vec![(a, u64::MAX - 1), (a, 1)],
            ..g
        };
        assert!(ok.check().is_ok());
        assert_eq!(State::genesis(&ok).balance(&a), u64::MAX);
    }

    /// Found by the `ledger_state` fuzz target: a decoded state whose job has a per-mille above
    /// 1000 (`CreateJob` refuses one, a forged stored state need not) made a penalty forfeit more
    /// than the deposit and panic (subtract with overflow). A forfeit is now at most the deposit.
    #[test]
    fn a_forfeit_never_exceeds_the_deposit() {
        assert_eq!(forfeit(2000, 500), 1000);
        assert_eq!(forfeit(2000, 1000), 2000);
        assert_eq!(forfeit(2000, u32::MAX), 2000);
        assert_eq!(forfeit(u64::MAX, 1000), u64::MAX);
        assert_eq!(forfeit(u64::MAX, u32::MAX), u64::MAX);
        assert_eq!(forfeit(0, 700), 0);
    }
}
