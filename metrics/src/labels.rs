//! The closed label sets. Each enum is one label; `as_str` is its value on the wire.
//!
//! The services map their own enums onto these with an exhaustive `match` (this crate must not
//! depend on fedchain-coordinator or fedchain-ledger, which depend on it), so a new variant there
//! fails to compile until it is given a label here. Closed sets keep the series count bounded,
//! and every combination is pre-registered at zero so that `rate()` and `increase()` see the
//! first event.

macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value of the label, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value as it appears in the exposition.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// Label `phase` of `fedchain_round_phase_duration_seconds`: the steps of one round.
    Phase {
        /// Local training (hospitals), from round open until the updates are ready.
        Train => "train",
        /// Quantize, pack and encrypt the updates.
        Encrypt => "encrypt",
        /// Multiply the accepted ciphertext vectors.
        Aggregate => "aggregate",
        /// Collect decryption shares of the aggregate.
        Decrypt => "decrypt",
        /// Verify and combine the shares, unpack and dequantize.
        Combine => "combine",
        /// Propose, validate and commit the round's block.
        Commit => "commit",
    }
}

label_enum! {
    /// Label `reason` of a rejected submission (outcome `rejected`). One value per variant of
    /// `fedchain_coordinator::engine::RejectReason`.
    RejectReason {
        /// `RejectReason::WrongKind`
        WrongKind => "wrong_kind",
        /// `RejectReason::WrongJob`
        WrongJob => "wrong_job",
        /// `RejectReason::WrongRound`
        WrongRound => "wrong_round",
        /// `RejectReason::BadSignature`
        BadSignature => "bad_signature",
        /// `RejectReason::NotMember`
        NotMember => "not_member",
        /// `RejectReason::Late`
        Late => "late",
        /// `RejectReason::Duplicate` (acknowledged, not counted twice)
        Duplicate => "duplicate",
        /// `RejectReason::Equivocation`
        Equivocation => "equivocation",
        /// `RejectReason::PayloadMismatch`
        PayloadMismatch => "payload_mismatch",
        /// `RejectReason::InvalidPayload`
        InvalidPayload => "invalid_payload",
        /// `RejectReason::Samples`
        Samples => "samples",
        /// `RejectReason::InvalidShare`
        InvalidShare => "invalid_share",
        /// `RejectReason::NotDecrypting`
        NotDecrypting => "not_decrypting",
    }
}

label_enum! {
    /// Label `reason` of `fedchain_penalties_total` (and of a penalized submission): the
    /// variants of `fedchain_ledger::types::Offence`, plus the deposit forfeited at commit by a
    /// member that missed the deadline.
    PenaltyReason {
        /// `Offence::Equivocation`: two different signed submissions for one round.
        Equivocation => "equivocation",
        /// `Offence::InvalidPayload`: a submission whose ciphertexts failed the checks.
        InvalidPayload => "invalid_payload",
        /// `Offence::InvalidShare`: a decryption share whose proof failed.
        InvalidShare => "invalid_share",
        /// A committee member that did not submit before the deadline (forfeit at commit).
        MissedDeadline => "missed_deadline",
        /// A blame step found the member without a range proof of its slots (it is then
        /// excluded from the job).
        OutOfRange => "out_of_range",
    }
}

label_enum! {
    /// Label `outcome` of `fedchain_decryption_shares_total`.
    ShareOutcome {
        /// The share's proof verified and it was included.
        Accepted => "accepted",
        /// The proof failed: included with an `InvalidShare` penalty.
        Penalized => "penalized",
        /// Refused before verification (not decrypting now, not a holder, wrong round...).
        Rejected => "rejected",
    }
}

label_enum! {
    /// Label `outcome` of `fedchain_worker_submissions_total`: what the hospital heard back.
    WorkerSubmitOutcome {
        /// The coordinator acknowledged the submission (a retried duplicate included).
        Accepted => "accepted",
        /// The coordinator refused it with a reason.
        Rejected => "rejected",
        /// No answer: the connection failed or timed out (the worker will retry).
        Failed => "failed",
    }
}

label_enum! {
    /// Label `reason` of `fedchain_worker_refusals_total`: a request the hospital refused to act
    /// on (one value per variant of `fedchain_worker::ShareRefusal`, plus a second submission).
    WorkerRefusal {
        /// It already shared this round (or a later one) of the job.
        AlreadyShared => "already_shared",
        /// Fewer submissions than the job's minimum.
        TooFew => "too_few",
        /// An input is not a Submit of this chain, job and round.
        WrongStatement => "wrong_statement",
        /// An input's signature does not verify.
        BadSignature => "bad_signature",
        /// An input's payload does not hash to its signed digest or size.
        PayloadMismatch => "payload_mismatch",
        /// An input's sender is not in the committee.
        NotMember => "not_member",
        /// Two inputs from one sender.
        DuplicateSender => "duplicate_sender",
        /// The hospital's own submission of the round is missing.
        OwnSubmissionMissing => "own_submission_missing",
        /// An input's payload does not decode to the job's ciphertexts.
        InvalidPayload => "invalid_payload",
        /// An input has no valid proof of plaintext knowledge.
        NoKnowledgeProof => "no_knowledge_proof",
        /// It was asked to sign a second submission for a round it already signed.
        AlreadySubmitted => "already_submitted",
        /// It was asked for a range proof of a submission whose witness it does not hold
        /// (not its last one, or lost in a restart).
        NoWitness => "no_witness",
        /// A round opened with parameters that do not hash to the ones it must start from.
        TrapParams => "trap_params",
        /// A nonce or round number out of range.
        OutOfRange => "out_of_range",
        /// A result for a round the hospital never saw.
        UnknownRound => "unknown_round",
        /// A claim (a round's opening, the close of its submissions, a blame step) the chain
        /// the hospital follows does not show as final.
        NotFinal => "not_final",
        /// A claim the final chain contradicts (another deadline, a closed round).
        NotOnChain => "not_on_chain",
        /// Share inputs that are not the round's valid submissions final on chain.
        NotFinalSet => "not_final_set",
    }
}

label_enum! {
    /// Label `kind` of `fedchain_dropped_transactions_total`: the kind of a transaction the
    /// chain left out of a block (one value per variant of `fedchain_ledger::TxKind`).
    TransactionKind {
        Register => "register",
        CreateJob => "create_job",
        Join => "join",
        OpenRound => "open_round",
        Submit => "submit",
        DecryptionShare => "decryption_share",
        CommitRound => "commit_round",
        VoidRound => "void_round",
        VoidUnpackable => "void_unpackable",
        RangeProof => "range_proof",
        Blame => "blame",
        Transfer => "transfer",
        Penalty => "penalty",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_snake_case_and_distinct() {
        fn check(values: &[&str]) {
            let mut seen = std::collections::BTreeSet::new();
            for v in values {
                assert!(v.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{v}");
                assert!(seen.insert(*v), "duplicate label value {v}");
            }
        }
        check(&Phase::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>());
        check(
            &RejectReason::ALL
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
        );
        check(
            &PenaltyReason::ALL
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
        );
        check(
            &ShareOutcome::ALL
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
        );
        check(
            &WorkerSubmitOutcome::ALL
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
        );
        check(
            &TransactionKind::ALL
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
        );
        check(
            &WorkerRefusal::ALL
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>(),
        );
        assert_eq!(RejectReason::ALL.len(), 13);
        assert_eq!(Phase::Commit.to_string(), "commit");
    }
}
