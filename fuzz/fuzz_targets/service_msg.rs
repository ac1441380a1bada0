//! The worker <-> coordinator service messages (`fedchain_worker::{WorkerMsg, CoordinatorMsg}`)
//! with the transport's codec. A decoded submission's payload goes through the aggregator's
//! decoder (`ProvenVector::from_bytes` under the fixture key) and its proof is checked in the
//! context its transaction names (chain, job, round, sender), as `check_submission` does; a
//! share's payload goes through `VectorDecryptionShare::from_bytes` and `verify_share`.
#![no_main]

use fedchain_crypto::{ProvenVector, VectorDecryptionShare};
use fedchain_ledger::TxKind;
use fedchain_worker::{submission_context, CoordinatorMsg, WorkerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(m) = fedchain_fuzz::wire_roundtrip::<WorkerMsg>(data) {
        let pk = fedchain_fuzz::pk();
        match &m {
            WorkerMsg::Hello { .. } => {}
            WorkerMsg::Submit(s) => {
                let _ = s.tx.verify();
                if let Ok(v) = ProvenVector::from_bytes(pk, &s.payload) {
                    let (job, round) = match s.tx.tx.kind {
                        TxKind::Submit { job, round, .. } => (job, round),
                        _ => (fedchain_fuzz::JOB, fedchain_fuzz::ROUND),
                    };
                    let context = submission_context(&s.tx.tx.chain_id, job, round, &s.tx.sender());
                    let _ = v.verify(pk, &context);
                }
            }
            WorkerMsg::RangeProof(s) => {
                let _ = s.tx.verify();
                let _ = fedchain_crypto::range::SlotRangeProof::from_bytes(&s.payload);
            }
            WorkerMsg::Share(s) => {
                let _ = s.tx.verify();
                if let Ok(share) = VectorDecryptionShare::from_bytes(pk, &s.payload) {
                    let _ = fedchain_fuzz::tpk().verify_share(fedchain_fuzz::ciphertexts(), &share);
                }
            }
        }
    }
    if let Some(CoordinatorMsg::ShareRequest(r)) =
        fedchain_fuzz::wire_roundtrip::<CoordinatorMsg>(data)
    {
        for s in &r.submissions {
            let _ = s.tx.verify();
        }
    }
});
