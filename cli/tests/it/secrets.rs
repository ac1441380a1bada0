//! Issue #13 case 7: secret files that check themselves, permanent errors that stop a process
//! with a clear message, and a revoked member that neither storms the coordinator with
//! reconnections nor keeps the rounds waiting.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{bin, fedchain, lock, Cluster};

/// `fedchain worker --config worker-0.toml` with no coordinator running: it must stop by
/// itself (non-zero, within seconds) with an error naming `what`, printed once, before it
/// has written anything (no state directory: nothing was enrolled or signed).
fn worker_refuses(c: &Cluster, what: &str) {
    worker_refuses_any(c, &[what]);
}

/// [`worker_refuses`] with an error naming one of `whats` (a damage that may show either way).
fn worker_refuses_any(c: &Cluster, whats: &[&str]) {
    let what = whats.join(" | ");
    let t = Instant::now();
    let mut child = Command::new(bin())
        .current_dir(c.dir.path())
        .args(["worker", "--config", "worker-0.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the worker did not stop on a damaged file ({what})");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    assert!(!status.success(), "{what}: exit 0\n{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{what}: no error line\n{err}"));
    let found = whats
        .iter()
        .find(|w| line.contains(**w))
        .unwrap_or_else(|| panic!("{what}:\n{err}"));
    assert_eq!(
        line.matches(found).count(),
        1,
        "the error chain is printed once: {line}"
    );
    assert!(
        !c.path("workers/hospital-0").exists(),
        "{what}: the worker wrote state before checking its secrets"
    );
}

/// Flip one byte (xor 0x01) of `path` at `at` (a fraction of its length).
fn flip(path: &std::path::Path, at: f64) -> Vec<u8> {
    let orig = fs::read(path).expect("read");
    let mut b = orig.clone();
    let i = ((b.len() as f64) * at) as usize;
    b[i] ^= 0x01;
    fs::write(path, &b).expect("write");
    orig
}

#[test]
fn a_damaged_secret_file_stops_the_worker_before_it_costs_a_deposit() {
    let _g = lock();
    let c = Cluster::new(4, 1);
    // one flipped byte in the sealed key share: authenticated, so refused at load
    let share = c.path("job/shares/hospital-0.share.enc");
    let orig = flip(&share, 0.6);
    worker_refuses(&c, "was altered");
    fs::write(&share, orig).expect("restore");
    // the public threshold key the share is checked against
    let tpk = c.path("job/threshold_key.fc");
    let orig = flip(&tpk, 0.03); // inside n: another key, or one that no longer decodes
    worker_refuses_any(&c, &["threshold public key", "belongs to another key"]);
    fs::write(&tpk, orig).expect("restore");
    // a BLS key with one changed digit: checked against identity.json
    let bls = c.path("bundles/hospital-0/bls.key");
    let orig = fs::read_to_string(&bls).expect("read");
    let changed: String = orig
        .char_indices()
        .map(|(i, ch)| {
            if i == 10 {
                if ch == '0' {
                    '1'
                } else {
                    '0'
                }
            } else {
                ch
            }
        })
        .collect();
    fs::write(&bls, changed).expect("write");
    worker_refuses(&c, "BLS key does not match identity.json");
    fs::write(&bls, orig).expect("restore");
    // another hospital's TLS key: it does not belong to the certificate
    let key = c.path("bundles/hospital-0/tls.key.pem");
    let orig = fs::read(&key).expect("read");
    fs::copy(c.path("bundles/hospital-1/tls.key.pem"), &key).expect("copy");
    worker_refuses(&c, "is not the key of the certificate");
    fs::write(&key, orig).expect("restore");
}

/// A hospital revoked after the job started: before, it reconnected about 7 times a second
/// for ever (its connections were closed right after the handshake and every connect reset
/// its backoff) and each round waited `wait_for_members_ms` for it. Now its handshake is
/// refused with a TLS alert the worker takes as permanent (it stops, non-zero, naming the
/// revocation), and the coordinator, which recorded the revoked certificate, no longer waits
/// for it.
#[test]
fn a_revoked_hospital_stops_and_the_rounds_do_not_wait_for_it() {
    let _g = lock();
    let mut c = Cluster::new(4, 3);
    c.coordinator.wait_for_members_ms = 120_000;
    c.write_configs();
    c.start_all();
    c.wait_for("round 0 to commit", 180, |c| {
        c.log("coordinator")
            .lines()
            .any(|l| l.contains("round committed") && l.contains("round=0"))
    });
    // stop the coordinator and hospital-3, revoke hospital-3, give the coordinator the CRL
    c.kill_worker(3);
    c.kill_coordinator();
    fedchain(
        c.dir.path(),
        &["ca", "revoke", "--dir", "ca", "--name", "hospital-3"],
    );
    fs::copy(c.path("ca/crl.pem"), c.path("bundles/aggregator/crl.pem")).expect("crl");
    let restarted = Instant::now();
    c.start_coordinator(&[]);
    c.start_worker(3, &[]);
    // hospital-3 stops by itself
    let mut w3 = c.workers[3].take().expect("worker 3");
    let st = loop {
        if let Some(st) = w3.try_wait().expect("wait") {
            break st;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "the revoked hospital keeps retrying\n{}",
            c.log("worker-3")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log3 = c.log("worker-3");
    assert!(
        !st.success(),
        "a revoked hospital must exit non-zero\n{log3}"
    );
    assert!(
        log3.contains("refused for good") && log3.contains("revoked"),
        "{log3}"
    );
    let attempts = log3
        .lines()
        .skip_while(|l| !l.contains("ready"))
        .filter(|l| l.contains("connected") || l.contains("connect failed"))
        .count();
    eprintln!(
        "revoked hospital stopped after {:?}, {attempts} connection lines in its last run",
        restarted.elapsed()
    );
    // the remaining rounds go on with the three others without waiting 120 s for it
    assert!(c.wait_coordinator(100), "coordinator failed\n{}", c.logs());
    c.wait_workers(60);
    let finished = restarted.elapsed();
    eprintln!("rounds 1-2 finished {finished:?} after the restart (wait_for_members 120 s)");
    assert!(
        finished < Duration::from_secs(100),
        "the rounds waited for the revoked member: {finished:?}"
    );
    let (audit, inspect) = c.audit();
    assert!(audit.contains("audit ok"), "{audit}");
    assert!(inspect.contains("committed"), "{inspect}");
}
