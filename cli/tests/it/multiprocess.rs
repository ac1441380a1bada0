//! One coordinator and four worker processes on loopback.

use std::time::Instant;

use crate::cluster::{current_params, fedchain, lock, participant, Cluster};

#[test]
fn four_workers_three_rounds_audit_clean_and_equal_the_simulation() {
    let _g = lock();
    let mut c = Cluster::new(4, 3);
    let t = Instant::now();
    c.start_all();
    assert!(c.wait_coordinator(240), "coordinator failed\n{}", c.logs());
    let cluster_s = t.elapsed().as_secs_f64();
    c.wait_workers(60);
    let out = c.out("coordinator");
    for r in 0..3 {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("round {r}:")))
            .unwrap_or_else(|| panic!("round {r} missing:\n{out}\n{}", c.logs()));
        assert!(line.contains("committed"), "{line}");
        assert!(line.contains("accepted 4, missing 0, shares 2"), "{line}");
    }
    let (audit, inspect) = c.audit();
    assert!(audit.contains("audit ok"), "{audit}");
    assert!(audit.contains("3 rounds re-verified"), "{audit}");

    // the same experiment in one process
    let exp = toml::to_string(&c.coordinator.experiment).expect("toml");
    std::fs::write(c.path("experiment.toml"), exp).expect("write");
    let t = Instant::now();
    fedchain(
        c.dir.path(),
        &[
            "simulate",
            "--config",
            "experiment.toml",
            "--out",
            "sim",
            "--no-baseline",
        ],
    );
    let sim_s = t.elapsed().as_secs_f64();
    let sim = fedchain(c.dir.path(), &["inspect", "sim/ledger"]);
    eprintln!(
        "3 rounds, 4 hospitals, 512-bit key (busy shared machine): processes {cluster_s:.2} s \
         (incl. start-up), simulate {sim_s:.2} s (incl. its keygen)"
    );
    assert_eq!(
        current_params(&inspect),
        current_params(&sim),
        "the deployment's final parameters differ from the simulation's\n{inspect}\n{sim}"
    );
    // A17 through the binary: the simulation's ledger is another chain; pinned to the
    // deployment's genesis, its audit fails (and passes unpinned, relative to its own)
    let chain = c.chain_id();
    let out = std::process::Command::new(crate::cluster::bin())
        .current_dir(c.dir.path())
        .args(["audit", "sim/ledger", "--genesis", &chain])
        .output()
        .expect("run fedchain audit");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "another chain's ledger passed: {err}"
    );
    assert!(
        err.contains("holds another chain") && err.contains(&chain),
        "{err}"
    );
    let own = fedchain(c.dir.path(), &["audit", "sim/ledger"]);
    assert!(
        own.contains("holds relative to this genesis") && own.contains("audit ok"),
        "{own}"
    );
}

/// The test itself plays hospital 3: it enrolls and says hello, then stays silent, so round 0
/// opens with four hospitals and stays open until its deadline (4 blocks of 1 s). The
/// intruders come while it runs; it commits with the other three.
#[test]
fn intruders_and_garbage_do_not_disturb_a_running_round() {
    use fedchain_coordinator::service::{WorkerMsg, PROTOCOL_VERSION};
    use fedchain_ledger::{Address, Role, Transaction, TxKind};
    use fedchain_node::proto::Up;

    let _g = lock();
    let mut c = Cluster::new(4, 2);
    c.coordinator.wait_for_members_ms = 1500;
    c.write_configs();
    // a client whose certificate comes from another CA, but which trusts the consortium's CA
    // (so it gets as far as presenting its own certificate)
    let d = c.dir.path().to_path_buf();
    fedchain(&d, &["ca", "init", "--dir", "rogue-ca", "--name", "rogue"]);
    participant(
        &d,
        "rogue-ca",
        "hospital-0",
        "hospital",
        "rogue",
        "rogue-issued",
    );
    for f in ["ca.cert.pem", "crl.pem"] {
        std::fs::copy(
            c.path("bundles/aggregator").join(f),
            c.path("rogue").join(f),
        )
        .expect("copy");
    }
    let rogue = fedchain_net::Bundle::load(&c.path("rogue")).expect("rogue bundle");
    let silent = fedchain_net::Bundle::load(&c.path("bundles/hospital-3")).expect("bundle");
    let key = silent.signing_key().expect("key");
    let chain = c.chain_id();
    let sign = |nonce, kind| {
        Transaction {
            chain_id: chain.clone(),
            sender: key.verifying_key(),
            nonce,
            kind,
        }
        .sign(&key)
    };
    let enroll = Up::Enroll {
        register: sign(
            1,
            TxKind::Register {
                role: Role::Hospital,
                pseudonym: "hospital-3".into(),
            },
        ),
        join: sign(
            2,
            TxKind::Join {
                job: 0,
                deposit: 2000,
                samples: 1,
            },
        ),
    };
    let hello = Up::Msg(WorkerMsg::Hello {
        version: PROTOCOL_VERSION,
        address: Address::of(&key.verifying_key()),
        job: 0,
    });

    c.start_coordinator(&[]);
    for i in 0..3 {
        c.start_worker(i, &[]);
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let listen = c.listen;
    let limits = fedchain_net::Limits {
        timeout: std::time::Duration::from_secs(5),
        ..fedchain_net::Limits::default()
    };
    let silent_peer = rt.block_on(async {
        let mut tries = 0;
        let peer = loop {
            match fedchain_net::Client::connect(listen, "aggregator", &silent, limits).await {
                Ok(p) => break p,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("silent hospital: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("silent hospital cannot connect: {e}"),
            }
        };
        peer.notify(&enroll).await.expect("enroll");
        peer.notify(&hello).await.expect("hello");
        peer
    });
    c.wait_for("round 0 to open", 120, |c| {
        c.log("coordinator").contains("round opened")
    });
    rt.block_on(async {
        if let Ok(peer) = fedchain_net::Client::connect(listen, "aggregator", &rogue, limits).await
        {
            // TLS 1.3: the client may finish before the server has refused its certificate;
            // nothing gets through
            let r = peer.notify(&0u8).await;
            assert!(r.is_err(), "a foreign certificate got a message through");
        }
    });
    // garbage datagrams to the QUIC port
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..1200).map(|j| (i.wrapping_mul(31) ^ j) as u8).collect();
        udp.send_to(&junk, listen).expect("send");
    }
    // the server logs the refusal from its handshake task, a moment after the client gave up
    c.wait_for("the refused handshake to be logged", 30, |c| {
        c.log("coordinator").contains("handshake refused")
    });
    let log = c.log("coordinator");
    let refused = log.find("handshake refused");
    let committed = log.find("round committed");
    assert!(refused.is_some(), "the refusal is logged\n{}", c.logs());
    assert!(
        committed.is_none() || committed > refused,
        "round 0 ended before the intrusion: the test proves nothing\n{log}"
    );
    // the coordinator's /metrics after round 0 (it charged the silent hospital)
    c.wait_for("round 0 to commit", 120, |c| {
        c.log("coordinator").contains("round committed")
    });
    let metrics = scrape(&c.log("coordinator"));
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert!(value("fedchain_rounds_committed_total") >= 1.0, "{metrics}");
    assert!(
        value("fedchain_penalties_total{reason=\"missed_deadline\"}") >= 1.0,
        "{metrics}"
    );
    assert!(value("fedchain_model_accuracy_ratio") > 0.5, "{metrics}");
    assert!(value("fedchain_ledger_height") >= 3.0, "{metrics}");
    assert!(
        value("fedchain_token_balance{account=\"hospital-3\"}") > 0.0,
        "{metrics}"
    );
    assert!(c.wait_coordinator(240), "coordinator failed\n{}", c.logs());
    drop(silent_peer);
    c.wait_workers(60);
    let out = c.out("coordinator");
    for r in 0..2 {
        let l = out
            .lines()
            .find(|l| l.starts_with(&format!("round {r}:")))
            .unwrap_or_else(|| panic!("round {r} missing\n{out}"))
            .to_string();
        assert!(
            l.contains("committed") && l.contains("accepted 3, missing 1"),
            "{l}"
        );
    }
    let (audit, _) = c.audit();
    assert!(audit.contains("audit ok"), "{audit}");
}

/// GET /metrics from the address the coordinator logged.
fn scrape(log: &str) -> String {
    use std::io::{Read, Write};
    let addr = log
        .lines()
        .find(|l| l.contains("serving /metrics"))
        .and_then(|l| l.split("bound=").nth(1))
        .map(|a| a.trim().to_string())
        .expect("metrics address in the log");
    let mut s = std::net::TcpStream::connect(&addr).expect("connect to /metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: fedchain\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body
}
