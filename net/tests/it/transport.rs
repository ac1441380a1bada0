use std::time::Duration;

use fedchain_ledger::types::Role;
use fedchain_net::pki::{ca_revoke, CaRevokeArgs};
use fedchain_net::wire::{FrameKind, Header, FLAG_PAYLOAD};
use fedchain_net::{tls, Client, Incoming, NetError, Server, WireError};
use rand::RngCore;

use crate::common::{limits, Consortium, EchoServer, Event, Msg};

/// A good client still gets an answer (the server kept serving).
async fn good_client_works(c: &Consortium, srv: &EchoServer) {
    let peer = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h2), limits())
        .await
        .expect("good client connects");
    let r: Msg = peer.request(&Msg::Ping(42)).await.expect("request");
    assert_eq!(r, Msg::Ping(42));
}

/// A refused client: either its connect or its first request fails.
async fn refused(res: Result<fedchain_net::Peer, NetError>) {
    if let Ok(peer) = res {
        let r = peer.request::<Msg, Msg>(&Msg::Ping(1)).await;
        assert!(r.is_err(), "a refused client got an answer: {r:?}");
    }
}

#[tokio::test]
async fn peers_see_each_others_identity() {
    let c = Consortium::new();
    let server_bundle = c.bundle(&c.coordinator);
    let mut srv = EchoServer::start(&server_bundle, limits());
    let h1 = c.bundle(&c.h1);
    let peer = Client::connect(srv.addr, "coordinator", &h1, limits())
        .await
        .expect("connect");
    let id = peer.identity();
    assert_eq!(id.name, "coordinator");
    assert_eq!(id.role, Role::Aggregator);
    assert_eq!(
        id.bls_key,
        server_bundle.signing_key().expect("key").verifying_key()
    );
    let r: Msg = peer
        .request(&Msg::Text("hello".into()))
        .await
        .expect("request");
    assert_eq!(r, Msg::Text("hello".into()));

    let ev = srv.events.recv().await.expect("event");
    let Event::Connected(seen) = ev else {
        panic!("expected a connection, got {ev:?}")
    };
    assert_eq!(seen.name, "h1");
    assert_eq!(seen.role, Role::Hospital);
    assert_eq!(seen.bls_key, h1.signing_key().expect("key").verifying_key());
    assert_eq!(
        hex::encode(seen.address().0),
        h1.identity.address,
        "address from the certificate equals the bundle's ledger address"
    );
    let h1_key = h1.signing_key().expect("key").verifying_key();
    seen.check_registered(&h1_key, Role::Hospital)
        .expect("matches the chain's registration");
    let other = c.bundle(&c.h2).signing_key().expect("key").verifying_key();
    assert!(matches!(
        seen.check_registered(&other, Role::Hospital),
        Err(NetError::NotRegistered { .. })
    ));
    assert!(matches!(
        seen.check_registered(&h1_key, Role::Validator),
        Err(NetError::NotRegistered { .. })
    ));
}

#[tokio::test]
async fn unanswered_and_refused_requests_fail_promptly() {
    let c = Consortium::new();
    let srv = EchoServer::start(&c.bundle(&c.coordinator), limits());
    let peer = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h1), limits())
        .await
        .expect("connect");
    let t = std::time::Instant::now();
    let r = peer.request::<Msg, Msg>(&Msg::Text("drop".into())).await;
    assert!(
        matches!(r, Err(NetError::Wire(WireError::Stream(_)))),
        "{r:?}"
    );
    assert!(t.elapsed() < limits().timeout, "reset, not timed out");
    let r = peer.request::<Msg, Msg>(&Msg::Text("fail".into())).await;
    assert!(
        matches!(&r, Err(NetError::Wire(WireError::Remote(m))) if m == "refused on purpose"),
        "{r:?}"
    );
    // A request the server cannot decode is answered with the decode error.
    let r = peer.request::<u8, Msg>(&7u8).await;
    assert!(
        matches!(r, Err(NetError::Wire(WireError::Remote(_)))),
        "{r:?}"
    );
    let r: Msg = peer.request(&Msg::Ping(1)).await.expect("still served");
    assert_eq!(r, Msg::Ping(1));
}

#[tokio::test]
async fn client_from_another_ca_is_refused() {
    let c = Consortium::new();
    let mut srv = EchoServer::start(&c.bundle(&c.coordinator), limits());
    refused(Client::connect(srv.addr, "coordinator", &c.bundle(&c.intruder), limits()).await).await;
    let ev = srv.next_problem().await;
    assert!(
        matches!(&ev, Event::Refused(NetError::Handshake { reason, .. }) if reason.contains("UnknownIssuer") || reason.contains("unknown")),
        "{ev:?}"
    );
    good_client_works(&c, &srv).await;
}

#[tokio::test]
async fn revoked_client_is_refused() {
    let c = Consortium::new();
    let crl = ca_revoke(&CaRevokeArgs {
        dir: c.ca.clone(),
        name: "h3".into(),
    })
    .expect("revoke");
    let mut server_bundle = c.bundle(&c.coordinator);
    server_bundle.load_crl(&crl).expect("load crl");
    let mut srv = EchoServer::start(&server_bundle, limits());
    refused(Client::connect(srv.addr, "coordinator", &c.bundle(&c.h3), limits()).await).await;
    let ev = srv.next_problem().await;
    assert!(
        matches!(&ev, Event::Refused(NetError::Handshake { reason, .. }) if reason.contains("Revoked") || reason.contains("revoked")),
        "{ev:?}"
    );
    good_client_works(&c, &srv).await;

    // The client side checks the CRL too: a revoked server is refused by a client that has it.
    let mut h3_server = c.bundle(&c.h3);
    h3_server.load_crl(&crl).expect("crl");
    let mut h1 = c.bundle(&c.h1);
    h1.load_crl(&crl).expect("crl");
    let bad_srv =
        Server::bind("127.0.0.1:0".parse().expect("addr"), &h3_server, limits()).expect("bind");
    let r = Client::connect(bad_srv.local_addr().expect("addr"), "h3", &h1, limits()).await;
    assert!(
        // a certificate refusal is permanent (the worker stops instead of retrying)
        matches!(&r, Err(NetError::PeerRefused { reason, .. }) if reason.to_lowercase().contains("revoked")),
        "{r:?}"
    );
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let c = Consortium::new();
    let server_bundle = c.bundle(&c.coordinator);
    let mut srv = EchoServer::start(&server_bundle, limits());
    let tls = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(tls::roots(&server_bundle).expect("roots"))
        .with_no_client_auth();
    let mut tls = tls;
    tls.alpn_protocols = vec![tls::ALPN.to_vec()];
    let cfg = tls::quic_client_config_from(tls, &limits()).expect("cfg");
    refused(Client::connect_with(srv.addr, "coordinator", cfg, limits()).await).await;
    let ev = srv.next_problem().await;
    assert!(
        matches!(ev, Event::Refused(NetError::Handshake { .. })),
        "{ev:?}"
    );
    good_client_works(&c, &srv).await;
}

#[tokio::test]
async fn wrong_server_name_is_refused() {
    let c = Consortium::new();
    let srv = EchoServer::start(&c.bundle(&c.coordinator), limits());
    let r = Client::connect(srv.addr, "h2", &c.bundle(&c.h1), limits()).await;
    assert!(
        matches!(&r, Err(NetError::PeerRefused { reason, .. }) if reason.contains("not valid for name")),
        "{r:?}"
    );
}

#[tokio::test]
async fn garbage_datagrams_do_not_stop_the_server() {
    let c = Consortium::new();
    let srv = EchoServer::start(&c.bundle(&c.coordinator), limits());
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let mut rng = rand::thread_rng();
    for len in [1usize, 17, 100, 1200, 1350, 1500] {
        for _ in 0..20 {
            let mut buf = vec![0u8; len];
            rng.fill_bytes(&mut buf);
            sock.send_to(&buf, srv.addr).expect("send");
        }
    }
    // A datagram shaped like a QUIC Initial (long header, version 1) with a garbage body.
    let mut initial = vec![0u8; 1200];
    rng.fill_bytes(&mut initial);
    initial[0] = 0xc0;
    initial[1..5].copy_from_slice(&1u32.to_be_bytes());
    initial[5] = 8;
    sock.send_to(&initial, srv.addr).expect("send");
    good_client_works(&c, &srv).await;
}

/// Open a raw stream on a verified connection and write `bytes`, then finish.
async fn raw_uni(peer: &fedchain_net::Peer, bytes: &[u8]) {
    let mut s = peer.connection().open_uni().await.expect("open");
    s.write_all(bytes).await.expect("write");
    s.finish().expect("finish");
}

async fn expect_stream_error(srv: &mut EchoServer) -> WireError {
    match srv.next_problem().await {
        Event::StreamError(name, NetError::Wire(e)) => {
            assert_eq!(name, "h1");
            e
        }
        ev => panic!("expected a stream error, got {ev:?}"),
    }
}

#[tokio::test]
async fn bad_frames_get_typed_errors_and_the_server_keeps_serving() {
    let c = Consortium::new();
    let l = limits();
    let mut srv = EchoServer::start(&c.bundle(&c.coordinator), l);
    let peer = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h1), l)
        .await
        .expect("connect");

    // Random bytes.
    let mut junk = vec![0u8; 4096];
    rand::thread_rng().fill_bytes(&mut junk);
    junk[0] = 0;
    raw_uni(&peer, &junk).await;
    assert!(matches!(
        expect_stream_error(&mut srv).await,
        WireError::BadMagic { .. }
    ));

    // Right magic, future version.
    let mut h = Header {
        kind: FrameKind::Message,
        flags: 0,
        len: 1,
    }
    .to_bytes();
    h[4] = 2;
    raw_uni(&peer, &h).await;
    assert_eq!(
        expect_stream_error(&mut srv).await,
        WireError::UnsupportedVersion { found: 2 }
    );

    // Oversized control frame and oversized payload frame: refused from the header alone.
    let big = Header {
        kind: FrameKind::Message,
        flags: 0,
        len: l.max_control + 1,
    };
    raw_uni(&peer, &big.to_bytes()).await;
    assert_eq!(
        expect_stream_error(&mut srv).await,
        WireError::TooLarge {
            len: l.max_control + 1,
            limit: l.max_control
        }
    );
    let huge = Header {
        kind: FrameKind::Message,
        flags: FLAG_PAYLOAD,
        len: 1 << 40,
    };
    raw_uni(&peer, &huge.to_bytes()).await;
    assert_eq!(
        expect_stream_error(&mut srv).await,
        WireError::TooLarge {
            len: 1 << 40,
            limit: l.max_payload
        }
    );

    // Truncated: the header promises 100 bytes, the stream finishes after 10.
    let mut t = Header {
        kind: FrameKind::Message,
        flags: 0,
        len: 100,
    }
    .to_bytes()
    .to_vec();
    t.extend_from_slice(&[0u8; 10]);
    raw_uni(&peer, &t).await;
    assert_eq!(
        expect_stream_error(&mut srv).await,
        WireError::Truncated {
            expected: 100,
            got: 10
        }
    );

    // Trailing bytes after a complete frame.
    let body = fedchain_net::wire::encode(&Msg::Ping(3)).expect("encode");
    let mut f = Header {
        kind: FrameKind::Message,
        flags: 0,
        len: body.len() as u64,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(&body);
    f.extend_from_slice(b"extra");
    raw_uni(&peer, &f).await;
    assert_eq!(
        expect_stream_error(&mut srv).await,
        WireError::TrailingBytes
    );

    // A well-framed body that is not a Msg.
    let mut f = Header {
        kind: FrameKind::Message,
        flags: 0,
        len: 3,
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(&[9, 9, 9]);
    raw_uni(&peer, &f).await;
    assert!(matches!(
        expect_stream_error(&mut srv).await,
        WireError::Decode(_)
    ));

    // Random bytes on a bidirectional stream: the requester is not answered, server goes on.
    let (mut s, mut r) = peer.connection().open_bi().await.expect("bi");
    s.write_all(&junk).await.expect("write");
    s.finish().expect("finish");
    assert!(matches!(
        expect_stream_error(&mut srv).await,
        WireError::BadMagic { .. }
    ));
    let got = tokio::time::timeout(Duration::from_secs(5), r.read_to_end(1 << 20))
        .await
        .expect("the server resets the stream promptly");
    assert!(got.is_err(), "no reply to garbage: {got:?}");

    // The same connection, and another client, are still served.
    let r: Msg = peer
        .request(&Msg::Ping(7))
        .await
        .expect("request after garbage");
    assert_eq!(r, Msg::Ping(7));
    good_client_works(&c, &srv).await;
}

#[tokio::test]
async fn a_stalled_stream_times_out() {
    let c = Consortium::new();
    let mut l = limits();
    l.timeout = Duration::from_millis(500);
    let mut srv = EchoServer::start(&c.bundle(&c.coordinator), l);
    let peer = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h1), limits())
        .await
        .expect("connect");
    let mut s = peer.connection().open_uni().await.expect("open");
    let h = Header {
        kind: FrameKind::Message,
        flags: 0,
        len: 100,
    };
    s.write_all(&h.to_bytes()).await.expect("write");
    // Never finish the stream.
    assert!(matches!(
        expect_stream_error(&mut srv).await,
        WireError::Timeout { .. }
    ));
    drop(s);
    good_client_works(&c, &srv).await;
}

#[tokio::test]
async fn notify_and_request_round_trips_with_a_4_mib_payload() {
    let c = Consortium::new();
    let mut srv = EchoServer::start(&c.bundle(&c.coordinator), limits());
    let peer = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h1), limits())
        .await
        .expect("connect");

    peer.notify(&Msg::Text("one-way".into()))
        .await
        .expect("notify");
    match srv.next_problem().await {
        Event::Message(from, m) => {
            assert_eq!(from, "h1");
            assert_eq!(m, Msg::Text("one-way".into()));
        }
        ev => panic!("{ev:?}"),
    }

    let mut payload = vec![0u8; 4 << 20];
    rand::thread_rng().fill_bytes(&mut payload);
    let msg = Msg::Payload(payload);
    let r: Msg = peer.request(&msg).await.expect("4 MiB request");
    assert_eq!(r, msg);

    // Many requests at once on one connection (more than the stream limit).
    let peer = std::sync::Arc::new(peer);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..40u64 {
        let peer = peer.clone();
        set.spawn(async move { (i, peer.request::<Msg, Msg>(&Msg::Ping(i)).await) });
    }
    while let Some(res) = set.join_next().await {
        let (i, r) = res.expect("task");
        assert_eq!(r.expect("reply"), Msg::Ping(i));
    }

    // A payload above the limit is refused by the sender before anything is sent.
    let too_big = Msg::Payload(vec![0u8; (limits().max_payload + 1) as usize]);
    let r = peer.request::<Msg, Msg>(&too_big).await;
    assert!(
        matches!(r, Err(NetError::Wire(WireError::TooLarge { .. }))),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_server_can_push_to_a_client() {
    let c = Consortium::new();
    let mut server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &c.bundle(&c.coordinator),
        limits(),
    )
    .expect("bind");
    let addr = server.local_addr().expect("addr");
    let client = tokio::spawn({
        let h1 = c.bundle(&c.h1);
        async move {
            let peer = Client::connect(addr, "coordinator", &h1, limits())
                .await
                .expect("connect");
            match peer.next_incoming::<Msg>().await.expect("incoming") {
                Incoming::Request { request, responder } => {
                    assert_eq!(request, Msg::Text("round 1 open".into()));
                    responder.respond(&Msg::Ping(1)).await.expect("respond");
                }
                other => panic!("{other:?}"),
            }
            // Stay until the server is done with us.
            let _ = peer.next_incoming::<Msg>().await;
        }
    });
    let peer = server.accept().await.expect("accept");
    let r: Msg = peer
        .request(&Msg::Text("round 1 open".into()))
        .await
        .expect("push");
    assert_eq!(r, Msg::Ping(1));
    peer.close("done");
    client.await.expect("client task");
}
