//! The hospital side of a deployment, without any network code: the wire messages between a
//! worker and the coordinator, and [`WorkerService`], a state machine around a [`Hospital`]
//! that turns coordinator messages into replies. A transport only carries the messages (any
//! serde format; every message is plain data) and tells each side who the authenticated peer
//! is.
//!
//! Retries are safe: the service remembers what it sent for each round and sends the very same
//! submission (same digest, same nonce) again instead of training anew, so a worker that lost
//! its connection cannot equivocate by accident.

use std::collections::BTreeMap;

use fedchain_ledger::{Address, Hash, JobId, State};
use serde::{Deserialize, Serialize};

use crate::{
    round_seed, Hospital, Protection, RangeMsg, Result, ShareMsg, SubmissionMsg, WorkerError,
};

/// Version of the messages below; a peer speaking another one is refused at `Hello`
/// (2: the blame step's `RangeRequest` and `RangeProof`).
pub const PROTOCOL_VERSION: u16 = 2;

/// What a worker sends to the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerMsg {
    /// First message on a (re)connection: who the worker says it is and which job it serves.
    Hello {
        version: u16,
        address: Address,
        job: JobId,
    },
    /// A round's submission.
    Submit(SubmissionMsg),
    /// A decryption share of a round's aggregate.
    Share(ShareMsg),
    /// A blame step's range proof of this worker's submission.
    RangeProof(RangeMsg),
}

/// The aggregate of a round did not unpack at summed plaintext `plaintext` (the verified
/// shares and a `VoidUnpackable` are on chain): prove your ciphertext there in range, or be
/// penalised and excluded when the blame step ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    pub job: JobId,
    pub round: u32,
    pub plaintext: u32,
}

/// A round is open: train from `params` and submit before block height `deadline`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundOpen {
    pub job: JobId,
    pub round: u32,
    /// The global parameters theta_r (their hash is on chain in `OpenRound`).
    pub params: Vec<f32>,
    pub deadline: u64,
}

/// Submissions are closed: decrypt the product of the round's valid submissions. Each comes
/// as its submitter signed it (transaction and payload), so a holder checks every rule of
/// [`crate::ShareRefusal`] itself and computes the product; nothing else is taken on trust.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareRequest {
    pub job: JobId,
    pub round: u32,
    pub submissions: Vec<SubmissionMsg>,
}

/// Why the coordinator refused a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("protocol version {got}, the coordinator speaks {want}")]
    Version { got: u16, want: u16 },
    #[error("the authenticated peer is {peer:?} but the message is from {claimed:?}")]
    SenderMismatch { peer: Address, claimed: Address },
    #[error("{0:?} is not a member of the job's committee")]
    NotMember(Address),
    #[error("job {got}, the coordinator runs job {want}")]
    WrongJob { got: JobId, want: JobId },
    #[error("no round is open")]
    NoOpenRound,
    #[error("refused by the chain's admission checks: {0}")]
    Chain(String),
    #[error("equivocation: a different message for the same round")]
    Equivocation,
    #[error("late: deadline height {deadline}, next block {next}")]
    Late { deadline: u64, next: u64 },
    /// For a round that is already over: in a clean run, a decryption share that arrives after
    /// the round committed with the shares already on chain (only the first t are needed), or
    /// a resend after a reconnect. Nothing is lost and nobody is charged.
    #[error("round {round} is already closed")]
    Closed { round: u32 },
    #[error("refused by the round engine: {0}")]
    Engine(String),
}

/// The coordinator's verdict on a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Durably recorded; it will be on chain.
    Accepted,
    /// The same message was accepted before (counted once).
    Duplicate,
    Rejected {
        reason: Refusal,
    },
}

/// The reply to a `Submit` or `Share`: `digest` is the payload digest the transaction names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub digest: Hash,
    pub outcome: Outcome,
}

/// How a round ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundSummary {
    pub job: JobId,
    pub round: u32,
    /// Committed (false: voided).
    pub committed: bool,
    pub accepted: Vec<Address>,
    /// Committee members without a counted submission (charged for the missed deadline).
    pub missing: Vec<Address>,
    pub share_providers: Vec<Address>,
    /// Hash of theta_{r+1} when committed.
    pub new_params_hash: Option<Hash>,
    /// Height of the block that closed the round.
    pub height: u64,
}

/// What the coordinator sends to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CoordinatorMsg {
    /// The answer to `Hello`: the last nonce the coordinator knows from this worker (chain or
    /// accepted), so a restarted worker continues after it, and the open round if the
    /// coordinator already holds this worker's submission (`submitted`) or decryption share
    /// (`shared`) for it, so a restarted worker does not answer again with a different one.
    Welcome {
        job: JobId,
        nonce: u64,
        submitted: Option<u32>,
        shared: Option<u32>,
    },
    /// `Hello` refused (wrong version, job or identity).
    Refused {
        reason: Refusal,
    },
    RoundOpen(RoundOpen),
    ShareRequest(ShareRequest),
    RangeRequest(RangeRequest),
    Ack(Ack),
    RoundResult(RoundSummary),
}

/// A hospital's service: it reacts to coordinator messages and gives the messages to send.
#[derive(Debug)]
pub struct WorkerService {
    hospital: Hospital,
    job: JobId,
    seed: u64,
    index: usize,
    submitted: BTreeMap<u32, SubmissionMsg>,
    shared: BTreeMap<u32, ShareMsg>,
    ranged: BTreeMap<u32, RangeMsg>,
    acks: Vec<Ack>,
    results: Vec<RoundSummary>,
    /// What the coordinator said it holds from us (from `Welcome`).
    held: Held,
    /// The parameters the next round must start from, as far as this hospital knows: theta_0
    /// of its own model, then the `new_params_hash` of each committed round it saw end.
    expected: Expected,
}

/// The round and parameter hash a `RoundOpen` must match (`round` is the next one).
#[derive(Debug, Clone, Copy)]
struct Expected {
    round: u32,
    /// `None` after a gap (a round ended without this hospital seeing its result).
    params: Option<Hash>,
    /// The highest round this service saw opened or asked to decrypt.
    highest: Option<u32>,
}

/// The largest round number a worker acts on (a million rounds; keeps `round + 1` and every
/// scan by round bounded).
pub const MAX_ROUND: u32 = 1 << 20;

/// The largest nonce a coordinator may tell a worker to continue after (far above any real
/// use; keeps `nonce + 1` from overflowing).
pub const MAX_NONCE: u64 = 1 << 48;

/// How far above its final nonce a hospital that follows the chain lets a `Welcome` move it:
/// its transactions the coordinator accepted but the chain has not finalized yet (a
/// submission, a decryption share, a range proof, with room to spare).
pub const MAX_PENDING_NONCES: u64 = 8;

#[derive(Debug, Default)]
struct Held {
    submitted: Option<u32>,
    shared: Option<u32>,
}

impl WorkerService {
    /// A service for `hospital`, member number `index` of `job`'s committee, training round r
    /// with [`round_seed`]`(seed, r, index)`.
    pub fn new(hospital: Hospital, job: JobId, seed: u64, index: usize) -> Self {
        let hospital_params = hospital.initial_params_hash();
        Self {
            hospital,
            job,
            seed,
            index,
            submitted: BTreeMap::new(),
            shared: BTreeMap::new(),
            ranged: BTreeMap::new(),
            acks: Vec::new(),
            results: Vec::new(),
            held: Held::default(),
            expected: Expected {
                round: 0,
                params: Some(hospital_params),
                highest: None,
            },
        }
    }

    pub fn address(&self) -> Address {
        self.hospital.address()
    }

    pub fn hospital(&self) -> &Hospital {
        &self.hospital
    }

    /// The first message of every connection.
    pub fn hello(&self) -> WorkerMsg {
        WorkerMsg::Hello {
            version: PROTOCOL_VERSION,
            address: self.address(),
            job: self.job,
        }
    }

    /// What this worker submitted in `round`, if anything.
    pub fn submission(&self, round: u32) -> Option<&SubmissionMsg> {
        self.submitted.get(&round)
    }

    /// Acknowledgements received, oldest first.
    pub fn acks(&self) -> &[Ack] {
        &self.acks
    }

    /// Round results received, oldest first.
    pub fn results(&self) -> &[RoundSummary] {
        &self.results
    }

    /// Note that round `round` was opened or asked about (refused beyond [`MAX_ROUND`]).
    fn seen(&mut self, round: u32) -> Result<()> {
        if round > MAX_ROUND {
            return Err(WorkerError::OutOfRange {
                what: "round",
                value: round as u64,
            });
        }
        self.expected.highest = Some(self.expected.highest.map_or(round, |h| h.max(round)));
        Ok(())
    }

    /// `RoundOpen.params` must hash to the parameters the round must start from, where this
    /// hospital knows them (theta_0 for round 0; after a result it saw, the committed hash).
    /// A round it has no knowledge of (it missed results while away) is taken as announced;
    /// a hospital following the chain checks the chain's hash instead ([`Self::final_open`]).
    fn check_params(&self, open: &RoundOpen) -> Result<()> {
        let (true, Some(expected)) = (open.round == self.expected.round, self.expected.params)
        else {
            return Ok(());
        };
        let got = Hash::sha256(&crate::encode_plain(&open.params));
        if got != expected {
            return Err(WorkerError::TrapParams {
                round: open.round,
                expected,
                got,
            });
        }
        Ok(())
    }

    fn not_final(&self, round: u32, claim: &'static str, state: &State) -> WorkerError {
        let chain = match state.jobs.get(&self.job).and_then(|j| j.open.as_ref()) {
            Some(o) => format!(
                "at height {}: round {} open, deadline {}",
                state.height, o.round, o.deadline
            ),
            None => format!("at height {}: no round open", state.height),
        };
        WorkerError::NotFinal {
            job: self.job,
            round,
            claim,
            chain,
        }
    }

    /// The round `open` announces is the chain's open round, still taking submissions, with
    /// its deadline and the parameters whose hash the chain holds.
    fn final_open(&self, state: &State, open: &RoundOpen) -> Result<()> {
        let job = state.jobs.get(&self.job);
        let Some(o) = job
            .and_then(|j| j.open.as_ref())
            .filter(|o| o.round == open.round)
        else {
            return Err(self.not_final(open.round, "the round's opening", state));
        };
        let contradicted = |claim| WorkerError::NotOnChain {
            job: self.job,
            round: open.round,
            claim,
        };
        if o.deadline != open.deadline {
            return Err(contradicted("the deadline"));
        }
        if job.is_some_and(|j| j.submissions_closed(open.round, state.height + 1)) {
            // a submission now would be refused, and signing it would block this hospital's
            // share of the round (its marks would name a submission that is not in the set)
            return Err(contradicted("a round still taking submissions"));
        }
        let got = Hash::sha256(&crate::encode_plain(&open.params));
        if got != o.params_hash {
            return Err(WorkerError::TrapParams {
                round: open.round,
                expected: o.params_hash,
                got,
            });
        }
        Ok(())
    }

    /// The chain takes no more submissions for the requested round, and the request's inputs
    /// are exactly its valid submissions there (sender and payload digest).
    fn final_set(&self, state: &State, req: &ShareRequest) -> Result<()> {
        let job = state.jobs.get(&self.job);
        let Some(o) = job
            .filter(|j| j.submissions_closed(req.round, state.height + 1))
            .and_then(|j| j.open.as_ref())
        else {
            return Err(self.not_final(req.round, "the close of submissions", state));
        };
        let chain: BTreeMap<Address, Hash> = o
            .submissions
            .iter()
            .filter(|(_, s)| !s.rejected)
            .map(|(a, s)| (*a, s.payload))
            .collect();
        let asked: BTreeMap<Address, Option<Hash>> = req
            .submissions
            .iter()
            .map(|m| (m.tx.sender(), m.tx.tx.kind.payload()))
            .collect();
        let missing = chain
            .iter()
            .filter(|(a, d)| asked.get(*a) != Some(&Some(**d)))
            .count();
        let extra = asked
            .iter()
            .filter(|(a, d)| d.is_none() || chain.get(*a) != d.as_ref())
            .count();
        if missing > 0 || extra > 0 || asked.len() != req.submissions.len() {
            return Err(crate::ShareRefusal::NotFinalSet {
                round: req.round,
                missing,
                extra,
            }
            .into());
        }
        Ok(())
    }

    /// The chain's open round is in the blame step the request names.
    fn final_blame(&self, state: &State, req: &RangeRequest) -> Result<()> {
        let blaming = state
            .jobs
            .get(&self.job)
            .and_then(|j| j.open.as_ref())
            .filter(|o| o.round == req.round)
            .and_then(|o| o.blame.as_ref())
            .is_some_and(|b| b.plaintext == req.plaintext);
        if !blaming {
            return Err(self.not_final(req.round, "the blame step", state));
        }
        Ok(())
    }

    /// React to one coordinator message; gives the replies. Without a chain of its own, the
    /// hospital checks what it can (signatures, proofs, the parameters it knows) and takes
    /// the round facts as announced: see [`Self::on_message_at`].
    pub fn on_message(&mut self, msg: CoordinatorMsg) -> Result<Vec<WorkerMsg>> {
        self.on_message_at(msg, None)
    }

    /// React to one coordinator message, checking every claim it makes against `chain`, the
    /// final state of the chain this hospital follows (the state at its head, every block
    /// of it certified by the genesis validators): the parameters a round starts from and its
    /// deadline, the valid set of a round it decrypts (exactly the chain's, once the chain
    /// takes no more submissions: THREAT-MODEL G1), the blame step it proves for, and how far
    /// a `Welcome` may move its nonce. A claim the chain does not (yet) show is refused with
    /// [`WorkerError::NotFinal`] (or [`crate::ShareRefusal::NotFinalSet`]); the process
    /// catches up and asks again before it gives up. Resending what it already signed needs
    /// no check.
    pub fn on_message_at(
        &mut self,
        msg: CoordinatorMsg,
        chain: Option<&State>,
    ) -> Result<Vec<WorkerMsg>> {
        match msg {
            CoordinatorMsg::Welcome {
                job,
                nonce,
                submitted,
                shared,
            } if job == self.job => {
                if nonce > MAX_NONCE {
                    return Err(WorkerError::OutOfRange {
                        what: "Welcome nonce",
                        value: nonce,
                    });
                }
                let Some(state) = chain else {
                    self.hospital.resume_nonce(nonce);
                    self.held.submitted = submitted;
                    self.held.shared = shared;
                    return Ok(Vec::new());
                };
                // following the chain: its final nonce, raised by at most what can be pending;
                // what the coordinator says it holds is not taken (the hospital's durable marks
                // and stored messages already keep it from signing twice, and a coordinator
                // claiming to hold what it dropped must not silence it, THREAT-MODEL A7)
                let last = state.nonces.get(&self.address()).copied().unwrap_or(0);
                self.hospital.resume_nonce(last);
                if nonce > last.saturating_add(MAX_PENDING_NONCES) {
                    return Err(WorkerError::OutOfRange {
                        what: "Welcome nonce (more above the final one than transactions can be pending)",
                        value: nonce,
                    });
                }
                self.hospital.resume_nonce(nonce);
                Ok(Vec::new())
            }
            CoordinatorMsg::RoundOpen(open) if open.job == self.job => {
                self.seen(open.round)?;
                if chain.is_none() {
                    self.check_params(&open)?;
                }
                if let Some(m) = self.submitted.get(&open.round) {
                    return Ok(vec![WorkerMsg::Submit(m.clone())]);
                }
                if self.held.submitted == Some(open.round) {
                    // sent before a restart and accepted: never a second, different one
                    return Ok(Vec::new());
                }
                if let Some(state) = chain {
                    self.final_open(state, &open)?;
                }
                let ciphertexts = match self.hospital.protection() {
                    Protection::Encrypted(e) => e.packer.plaintexts_for(open.params.len()),
                    Protection::Plaintext => 0,
                };
                let seed = round_seed(self.seed, open.round, self.index);
                let update = self.hospital.train(&open.params, seed, ciphertexts)?;
                let m = self.hospital.submission(self.job, open.round, &update)?;
                self.submitted.insert(open.round, m.clone());
                Ok(vec![WorkerMsg::Submit(m)])
            }
            CoordinatorMsg::ShareRequest(req) if req.job == self.job => {
                self.seen(req.round)?;
                if let Some(m) = self.shared.get(&req.round) {
                    return Ok(vec![WorkerMsg::Share(m.clone())]);
                }
                if self.held.shared == Some(req.round) {
                    return Ok(Vec::new());
                }
                if let Some(state) = chain {
                    self.final_set(state, &req)?;
                }
                let m = self
                    .hospital
                    .decryption_share(self.job, req.round, &req.submissions)?;
                self.shared.insert(req.round, m.clone());
                Ok(vec![WorkerMsg::Share(m)])
            }
            CoordinatorMsg::RangeRequest(req) if req.job == self.job => {
                self.seen(req.round)?;
                if let Some(m) = self.ranged.get(&req.round) {
                    return Ok(vec![WorkerMsg::RangeProof(m.clone())]);
                }
                if let Some(state) = chain {
                    self.final_blame(state, &req)?;
                }
                let m = self
                    .hospital
                    .range_proof(self.job, req.round, req.plaintext)?;
                self.ranged.insert(req.round, m.clone());
                Ok(vec![WorkerMsg::RangeProof(m)])
            }
            CoordinatorMsg::Ack(a) => {
                self.acks.push(a);
                Ok(Vec::new())
            }
            CoordinatorMsg::RoundResult(r) if r.job == self.job => {
                if self.expected.highest.is_none_or(|h| r.round > h) {
                    // a result for a round this hospital never saw: nothing to act on
                    return Err(WorkerError::UnknownRound { round: r.round });
                }
                if r.round >= self.expected.round {
                    let gap = r.round > self.expected.round;
                    self.expected.params = match (r.committed, r.new_params_hash) {
                        (true, Some(h)) => Some(h),
                        _ if gap => None,
                        _ => self.expected.params,
                    };
                    self.expected.round = r.round + 1;
                }
                // nothing of an earlier round will be asked for again
                self.submitted.retain(|round, _| *round > r.round);
                self.shared.retain(|round, _| *round > r.round);
                self.ranged.retain(|round, _| *round > r.round);
                self.results.push(r);
                Ok(Vec::new())
            }
            // another job's messages, or a refused hello: nothing to answer
            _ => Ok(Vec::new()),
        }
    }
}
