//! Re-verification of a committed round from the ledger alone: what validators run before they
//! sign a block and what `fedchain audit` runs over a whole chain. Every payload it reads is
//! re-hashed against the digest that names it. It verifies each accepted submission's proof of
//! plaintext knowledge (bound to chain, job, round and sender), recomputes the ciphertext
//! product of the accepted submissions, verifies every listed decryption share's proof against
//! it (t or more), combines the canonical t of them (the lowest holder indices), unpacks the
//! weighted average and checks that the committed next parameters are exactly
//! `strategy(theta_r, average)`.

use fedchain_crypto::threshold::{ThresholdPublicKey, VectorDecryptionShare};
use fedchain_crypto::vector::aggregate;
use fedchain_crypto::{CiphertextVector, Decode, Packer, PackingParams, ProvenVector};
use fedchain_ledger::{
    Hash, JobSpec, PenaltyClaim, RangeClaim, RoundClaim, RoundVerifier, VoidClaim,
};
use fedchain_worker::{
    check_range_proof, check_submission, decode_plain, encode_plain, submission_context,
    EncryptedJob,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::strategy::{params_hash, ServerStep, Strategy};

/// The job parameters written (as JSON) in a job's `packing` field on chain: everything a
/// verifier needs besides the threshold key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobParams {
    pub num_params: usize,
    /// None for a plaintext job.
    pub packing: Option<PackingParams>,
    pub server: ServerStep,
}

/// The round verifier of fedchain jobs.
#[derive(Debug, Default)]
pub struct FedchainVerifier;

type Payloads<'a> = &'a (dyn Fn(&Hash) -> Option<Vec<u8>> + Sync);

/// The payload named `d`, re-hashed: a stored payload that does not hash to its name is an
/// error, whichever store it came from.
fn payload(get: Payloads<'_>, d: &Hash, what: &str) -> Result<Vec<u8>, String> {
    let bytes = get(d).ok_or_else(|| format!("{what} payload {d} missing"))?;
    if Hash::sha256(&bytes) != *d {
        return Err(format!("{what} payload {d} does not hash to its digest"));
    }
    Ok(bytes)
}

/// The ciphertext product of a round's valid submissions (payloads re-hashed, ciphertexts
/// checked; their proofs were verified when they were accepted), and how many there are.
fn product_of(
    pk: &fedchain_crypto::PublicKey,
    submissions: &[(fedchain_ledger::Address, Hash, u64)],
    get: Payloads<'_>,
) -> Result<(CiphertextVector, u64), String> {
    let vectors = submissions
        .par_iter()
        .map(|(who, d, _)| {
            ProvenVector::from_bytes(pk, &payload(get, d, "submission")?)
                .map(|v| v.ciphertexts)
                .map_err(|e| format!("{who}: {e}"))
        })
        .collect::<Result<Vec<CiphertextVector>, String>>()?;
    let product = aggregate(pk, &vectors).map_err(|e| e.to_string())?;
    Ok((product, vectors.len() as u64))
}

/// The job's parameters and, for an encrypted job, its threshold key and packer, as read from
/// its spec on chain.
fn job_crypto(spec: &JobSpec) -> Result<(JobParams, Option<EncryptedJob>), String> {
    let params: JobParams =
        serde_json::from_str(&spec.packing).map_err(|e| format!("job parameters: {e}"))?;
    let n = params.num_params;
    if n == 0 || n > 1 << 28 {
        return Err(format!("job parameters: {n} parameters"));
    }
    let Some(packing) = &params.packing else {
        return Ok((params, None));
    };
    // the chain bounds declared sample counts by the job's max_samples; the weights are folded
    // in against the packing's
    if packing.max_samples != spec.max_samples {
        return Err(format!(
            "job max_samples {} differs from the packing's {}",
            spec.max_samples, packing.max_samples
        ));
    }
    let key = ThresholdPublicKey::from_bytes(&spec.threshold_key)
        .map_err(|e| format!("threshold key: {e}"))?;
    let packer = Packer::new(packing.clone(), key.public_key().plaintext_bits())
        .map_err(|e| e.to_string())?;
    Ok((params, Some(EncryptedJob { key, packer })))
}

impl RoundVerifier for FedchainVerifier {
    /// The evidence of an `InvalidPayload` penalty is the offender's signed submission and its
    /// payload: the payload must fail the checks every submission passes (decoding, the
    /// ciphertext count, the proof of plaintext knowledge for the offender). The evidence of an
    /// `InvalidShare` penalty is the share: it must fail to verify against the product of the
    /// round's valid submissions, for the offender's holder index.
    fn verify_penalty(&self, c: &PenaltyClaim, get: Payloads<'_>) -> Result<(), String> {
        let (params, crypto) = job_crypto(&c.spec)?;
        let n = params.num_params;
        let bytes = payload(get, &c.digest, if c.share { "share" } else { "submission" })?;
        let proven = if c.share {
            let Some(e) = &crypto else {
                return Err("a plaintext job has no decryption shares".into());
            };
            let pk = e.key.public_key();
            let (product, _) = product_of(pk, &c.submissions, get)?;
            let holder = c
                .spec
                .committee
                .iter()
                .position(|a| *a == c.offender)
                .map(|i| i as u32 + 1);
            match VectorDecryptionShare::from_bytes(pk, &bytes) {
                Err(_) => true,
                Ok(s) => Some(s.holder) != holder || e.key.verify_share(&product.0, &s).is_err(),
            }
        } else {
            match &crypto {
                None => decode_plain(&bytes, n).is_none(),
                Some(e) => check_submission(
                    e,
                    &c.chain_id,
                    c.job,
                    c.round,
                    &c.offender,
                    &bytes,
                    e.packer.plaintexts_for(n),
                )
                .is_err(),
            }
        };
        if proven {
            Ok(())
        } else {
            Err(format!(
                "the evidence does not prove the offence: the {} is valid",
                if c.share { "share" } else { "submission" }
            ))
        }
    }

    /// The round's aggregate (the product of its valid submissions), decrypted by the canonical
    /// t of its valid shares (each verified), must fail to unpack at the named plaintext.
    fn verify_void(&self, c: &VoidClaim, get: Payloads<'_>) -> Result<(), String> {
        let (params, crypto) = job_crypto(&c.spec)?;
        let Some(EncryptedJob { key: tpk, packer }) = &crypto else {
            return Err("a plaintext job decrypts nothing".into());
        };
        let pk = tpk.public_key();
        let (product, parties) = product_of(pk, &c.submissions, get)?;
        let mut shares = c
            .shares
            .iter()
            .map(|(who, d)| {
                VectorDecryptionShare::from_bytes(pk, &payload(get, d, "decryption share")?)
                    .map_err(|e| format!("{who}: {e}"))
            })
            .collect::<Result<Vec<_>, String>>()?;
        shares.sort_by_key(|s| s.holder);
        shares.truncate(tpk.threshold() as usize);
        let plaintexts = tpk
            .combine(&product.0, &shares)
            .map_err(|e| e.to_string())?;
        let p = c.plaintext as usize;
        let sum = plaintexts
            .get(p)
            .ok_or_else(|| format!("the aggregate has no plaintext {p}"))?;
        if packer.unpacks_at(p, sum, params.num_params, parties) {
            Err(format!(
                "plaintext {p} of the aggregate unpacks: nothing to blame there"
            ))
        } else {
            Ok(())
        }
    }

    /// A range proof must verify against the prover's submitted ciphertext at the blamed
    /// plaintext, bound to (chain, job, round, prover).
    fn verify_range(&self, c: &RangeClaim, get: Payloads<'_>) -> Result<(), String> {
        let (params, crypto) = job_crypto(&c.spec)?;
        let Some(e) = &crypto else {
            return Err("a plaintext job has no blame step".into());
        };
        let pk = e.key.public_key();
        let v = ProvenVector::from_bytes(pk, &payload(get, &c.submission, "submission")?)
            .map_err(|err| err.to_string())?;
        let proof = payload(get, &c.proof, "range proof")?;
        check_range_proof(
            e,
            &c.chain_id,
            c.job,
            c.round,
            &c.prover,
            &v.ciphertexts,
            c.plaintext,
            params.num_params,
            &proof,
        )
        .map_err(|err| err.to_string())
    }

    fn verify_round(&self, c: &RoundClaim, get: Payloads<'_>) -> Result<(), String> {
        let (params, crypto) = job_crypto(&c.spec)?;
        let n = params.num_params;
        let theta = decode_plain(&payload(get, &c.params_hash, "round parameters")?, n)
            .ok_or("round parameters malformed")?;
        let total_weight = c
            .accepted
            .iter()
            .try_fold(0u64, |acc, (_, _, s)| acc.checked_add(*s))
            .ok_or("sample counts overflow")?;
        let average = match &crypto {
            None => {
                let mut sum = vec![0f64; n];
                for (who, d, samples) in &c.accepted {
                    let u = decode_plain(&payload(get, d, "submission")?, n)
                        .ok_or(format!("{who}: malformed update"))?;
                    for (s, x) in sum.iter_mut().zip(&u) {
                        *s += *x as f64 * *samples as f64;
                    }
                }
                let avg: Vec<f32> = sum
                    .iter()
                    .map(|s| (s / total_weight as f64) as f32)
                    .collect();
                if Hash::sha256(&encode_plain(&avg)) != c.aggregate {
                    return Err(
                        "committed aggregate is not the weighted average of the accepted updates"
                            .into(),
                    );
                }
                avg
            }
            Some(EncryptedJob { key: tpk, packer }) => {
                let pk = tpk.public_key();
                let vectors = c
                    .accepted
                    .par_iter()
                    .map(|(who, d, _)| {
                        let v = ProvenVector::from_bytes(pk, &payload(get, d, "submission")?)
                            .map_err(|e| format!("{who}: {e}"))?;
                        v.verify(pk, &submission_context(&c.chain_id, c.job, c.round, who))
                            .map_err(|e| format!("{who}: {e}"))?;
                        Ok(v.ciphertexts)
                    })
                    .collect::<Result<Vec<CiphertextVector>, String>>()?;
                let product = aggregate(pk, &vectors).map_err(|e| e.to_string())?;
                if Hash(product.digest(pk)) != c.aggregate {
                    return Err(
                        "committed aggregate is not the product of the accepted ciphertexts".into(),
                    );
                }
                let shares = c
                    .shares
                    .iter()
                    .map(|(who, d)| {
                        VectorDecryptionShare::from_bytes(pk, &payload(get, d, "decryption share")?)
                            .map_err(|e| format!("{who}: {e}"))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                // t or more shares, each from the holder whose key share it claims, every one
                // verified; the canonical t (lowest holder indices) are combined
                if shares.len() < tpk.threshold() as usize {
                    return Err(format!(
                        "{} shares listed, threshold {}",
                        shares.len(),
                        tpk.threshold()
                    ));
                }
                for ((who, _), s) in c.shares.iter().zip(&shares) {
                    let pos = c
                        .spec
                        .committee
                        .iter()
                        .position(|a| a == who)
                        .map(|i| i as u32 + 1);
                    if pos != Some(s.holder) {
                        return Err(format!("{who} published a share of holder {}", s.holder));
                    }
                }
                shares
                    .par_iter()
                    .try_for_each(|s| tpk.verify_share(&product.0, s))
                    .map_err(|e| e.to_string())?;
                let mut canonical = shares;
                canonical.sort_by_key(|s| s.holder);
                canonical.truncate(tpk.threshold() as usize);
                // distinct holders (each the position of a distinct provider), all verified above
                let plaintexts = tpk
                    .interpolate_unchecked(&canonical)
                    .map_err(|e| e.to_string())?;
                let samples: Vec<u64> = c.accepted.iter().map(|(_, _, s)| *s).collect();
                let sums = packer
                    .unpack(&plaintexts, n, samples.len() as u64)
                    .map_err(|e| e.to_string())?;
                packer
                    .weighted_average(&sums, &samples)
                    .map_err(|e| e.to_string())?
            }
        };
        let next = params.server.apply(&theta, &average);
        if params_hash(&next) != c.new_params_hash {
            return Err("committed next parameters differ from strategy(theta, average)".into());
        }
        match get(&c.new_params_hash) {
            Some(b) if b == encode_plain(&next) => Ok(()),
            Some(_) => Err("stored next parameters differ from the recomputed ones".into()),
            None => Err("next parameters payload missing".into()),
        }
    }
}
