//! A10: an authenticated peer floods large frames or many streams; an outsider holds handshake
//! slots. Per-peer budgets refuse the excess with typed errors and the others keep being served.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedchain_net::transport::ABUSIVE;
use fedchain_net::wire::{FrameKind, Header, FLAG_PAYLOAD};
use fedchain_net::{tls, Client, Incoming, Limits, NetError, NetStats, Peer, Server, WireError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::sync::mpsc;

use crate::common::{Consortium, Msg};

fn limits() -> Limits {
    Limits {
        max_control: 64 << 10,
        max_payload: 1 << 20,
        max_send: 1 << 20,
        timeout: Duration::from_secs(5),
        incoming_queue: 8,
        peer_budget: 2_621_440, // 2.5 MiB: two 900 kB bodies, not three
        max_strikes: 16,
        max_streams: 16,
        ..Limits::default()
    }
}

/// What the holding server knows of one peer.
#[derive(Default)]
struct PeerState {
    /// One-way messages it holds (with their budget) right now, and at most.
    held: usize,
    max_held: usize,
    /// Bytes of the peer's budget in use, at most (sampled at every message).
    max_in_use: u64,
    /// The server side of its connection (for the server's counters).
    peer: Option<Arc<Peer>>,
}

/// A server standing for a slow application: it answers requests at once but keeps every
/// one-way message (and its share of the sender's budget) until that sender asks for
/// `release`. Stream errors are reported per peer.
struct Holding {
    addr: SocketAddr,
    errors: mpsc::UnboundedReceiver<(String, NetError)>,
    peers: Arc<Mutex<HashMap<String, PeerState>>>,
}

impl Holding {
    fn start(c: &Consortium, limits: Limits) -> Self {
        let mut server = Server::bind(
            "127.0.0.1:0".parse().expect("addr"),
            &c.bundle(&c.coordinator),
            limits,
        )
        .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (tx, errors) = mpsc::unbounded_channel();
        let peers: Arc<Mutex<HashMap<String, PeerState>>> = Arc::default();
        let state = Arc::clone(&peers);
        tokio::spawn(async move {
            loop {
                let peer = match server.accept().await {
                    Ok(peer) => Arc::new(peer),
                    Err(NetError::Closed) => break,
                    Err(e) => {
                        let _ = tx.send(("<handshake>".into(), e));
                        continue;
                    }
                };
                let name = peer.identity().name.clone();
                state
                    .lock()
                    .expect("lock")
                    .entry(name.clone())
                    .or_default()
                    .peer = Some(Arc::clone(&peer));
                let (tx, state) = (tx.clone(), Arc::clone(&state));
                tokio::spawn(async move {
                    let mut kept = Vec::new();
                    loop {
                        match peer.next_incoming_held::<Msg>().await {
                            Ok((Incoming::Request { request, responder }, _held)) => {
                                if request == Msg::Text("release".into()) {
                                    kept.clear();
                                    state
                                        .lock()
                                        .expect("lock")
                                        .entry(name.clone())
                                        .or_default()
                                        .held = 0;
                                }
                                let _ = responder.respond(&request).await;
                            }
                            Ok((Incoming::Message(m), held)) => {
                                kept.push((m, held));
                                let mut st = state.lock().expect("lock");
                                let s = st.entry(name.clone()).or_default();
                                s.held = kept.len();
                                s.max_held = s.max_held.max(kept.len());
                                s.max_in_use = s.max_in_use.max(peer.budget_in_use());
                            }
                            Err(NetError::Connection(_)) => break,
                            Err(e) => {
                                let _ = tx.send((name.clone(), e));
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            errors,
            peers,
        }
    }

    async fn next_error(&mut self) -> (String, NetError) {
        tokio::time::timeout(Duration::from_secs(10), self.errors.recv())
            .await
            .expect("a stream error within 10 s")
            .expect("server running")
    }

    fn held(&self, name: &str) -> (usize, usize, u64) {
        let st = self.peers.lock().expect("lock");
        st.get(name)
            .map_or((0, 0, 0), |s| (s.held, s.max_held, s.max_in_use))
    }

    fn stats(&self) -> NetStats {
        let st = self.peers.lock().expect("lock");
        st.values()
            .find_map(|s| s.peer.as_ref().map(|p| p.stats()))
            .unwrap_or_default()
    }

    async fn wait_held(&self, name: &str, n: usize) {
        let end = Instant::now() + Duration::from_secs(10);
        while self.held(name).0 < n {
            assert!(Instant::now() < end, "{name} never got {n} messages held");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The well-behaved peer is served: a control request and a payload-sized one.
async fn served(peer: &Peer) {
    let r: Msg = peer.request(&Msg::Ping(7)).await.expect("ping served");
    assert_eq!(r, Msg::Ping(7));
    let big = Msg::Payload(vec![7u8; 900_000]);
    let r: Msg = peer.request(&big).await.expect("payload served");
    assert_eq!(r, big);
}

#[tokio::test]
async fn a10_bodies_over_the_peers_budget_are_refused_while_another_peer_is_served() {
    let c = Consortium::new();
    let l = limits();
    let mut srv = Holding::start(&c, l);
    let h1 = Arc::new(
        Client::connect(srv.addr, "coordinator", &c.bundle(&c.h1), l)
            .await
            .expect("h1"),
    );
    let h2 = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h2), l)
        .await
        .expect("h2");

    // Five 900 kB bodies at once, all held by the server: two fit the 2.5 MiB budget.
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..5u8 {
        let h1 = Arc::clone(&h1);
        sends.spawn(async move { h1.notify(&Msg::Payload(vec![i; 900_000])).await });
    }
    for _ in 0..3 {
        let (name, e) = srv.next_error().await;
        assert_eq!(name, "h1");
        assert!(
            matches!(
                e,
                NetError::Wire(WireError::OverBudget {
                    budget: 2_621_440,
                    ..
                })
            ),
            "{e:?}"
        );
    }
    let mut refused = 0;
    while let Some(r) = sends.join_next().await {
        if let Err(e) = r.expect("task") {
            assert!(
                matches!(e, NetError::Wire(WireError::Refused { code: 3 })),
                "{e:?}"
            );
            refused += 1;
        }
    }
    srv.wait_held("h1", 2).await;
    let (held, max_held, max_in_use) = srv.held("h1");
    assert_eq!((held, max_held), (2, 2));
    assert!(max_in_use <= l.peer_budget, "{max_in_use}");
    eprintln!("a10: 3 of 5 bodies refused at the header (sender saw {refused} refusals)");

    // The other peer's budget is its own.
    served(&h2).await;

    // What the application lets go of is given back: the peer may send again.
    let _: Msg = h1
        .request(&Msg::Text("release".into()))
        .await
        .expect("release");
    h1.notify(&Msg::Payload(vec![1; 900_000]))
        .await
        .expect("fits again");
    h1.notify(&Msg::Payload(vec![2; 900_000]))
        .await
        .expect("fits again");
    srv.wait_held("h1", 2).await;
    assert_eq!(srv.stats().streams_over_budget, 3);
    assert_eq!(srv.stats().connections_closed_abusive, 0);
}

#[tokio::test]
async fn a10_huge_declared_bodies_are_refused_at_the_header_then_the_connection_is_closed() {
    let c = Consortium::new();
    let l = Limits {
        max_strikes: 4,
        ..limits()
    };
    let mut srv = Holding::start(&c, l);
    let h1 = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h1), l)
        .await
        .expect("h1");
    let h2 = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h2), l)
        .await
        .expect("h2");

    // Headers alone, declaring 256 MiB, 1 GiB (as control), 2^64-1 and 256 MiB bodies.
    let frames = [
        (FLAG_PAYLOAD, 256u64 << 20),
        (0, 1 << 30),
        (FLAG_PAYLOAD, u64::MAX),
        (FLAG_PAYLOAD, 256 << 20),
    ];
    for (i, (flags, len)) in frames.into_iter().enumerate() {
        let h = Header {
            kind: FrameKind::Message,
            flags,
            len,
        };
        let mut s = h1.connection().open_uni().await.expect("open");
        s.write_all(&h.to_bytes()).await.expect("header");
        // the body never comes: the header alone is refused
        let (name, e) = srv.next_error().await;
        assert_eq!(name, "h1");
        if i < 3 {
            let limit = if flags == 0 {
                l.max_control
            } else {
                l.max_payload
            };
            assert_eq!(
                e.to_string(),
                WireError::TooLarge { len, limit }.to_string()
            );
        } else {
            assert!(
                matches!(&e, NetError::Abusive { name, strikes: 4 } if name == "h1"),
                "{e:?}"
            );
        }
        served(&h2).await;
    }
    // The abusive connection is closed with its code; the server and the other peer go on.
    let r = h1.request::<Msg, Msg>(&Msg::Ping(1)).await;
    assert!(r.is_err(), "{r:?}");
    let closed = h1.connection().close_reason();
    assert!(
        matches!(&closed, Some(quinn::ConnectionError::ApplicationClosed(a)) if a.error_code == ABUSIVE),
        "{closed:?}"
    );
    assert_eq!(
        srv.held("h1").2,
        0,
        "no byte of a refused body was reserved"
    );
    served(&h2).await;
    let stats = srv.stats();
    assert_eq!(stats.frames_too_large, 4, "{stats:?}");
    assert_eq!(stats.connections_closed_abusive, 1, "{stats:?}");
}

#[tokio::test]
async fn a10_a_flood_of_messages_and_streams_is_held_to_the_peers_queue() {
    let c = Consortium::new();
    let l = Limits {
        timeout: Duration::from_secs(2),
        ..limits()
    };
    let srv = Holding::start(&c, l);
    let h1 = Arc::new(
        Client::connect(srv.addr, "coordinator", &c.bundle(&c.h1), l)
            .await
            .expect("h1"),
    );
    let h2 = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h2), l)
        .await
        .expect("h2");

    // 64 senders of messages without end, and 40 streams that send half a header and stall.
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..64u64 {
        let h1 = Arc::clone(&h1);
        flood.spawn(async move {
            loop {
                let _ = h1.notify(&Msg::Ping(i)).await;
            }
        });
    }
    for _ in 0..40 {
        let h1 = Arc::clone(&h1);
        flood.spawn(async move {
            if let Ok(mut s) = h1.connection().open_uni().await {
                let _ = s.write_all(b"FCNW").await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
    }
    srv.wait_held("h1", l.incoming_queue).await;
    // While h1's queue is full the other peer is served, and h1 gets no further.
    for _ in 0..5 {
        served(&h2).await;
    }
    let (held, max_held, max_in_use) = srv.held("h1");
    assert_eq!((held, max_held), (l.incoming_queue, l.incoming_queue));
    assert!(max_in_use <= l.peer_budget);

    // Released, the flood moves on, never more than the queue at once.
    let _ = h1.request::<Msg, Msg>(&Msg::Text("release".into())).await;
    srv.wait_held("h1", l.incoming_queue).await;
    served(&h2).await;
    let (_, max_held, _) = srv.held("h1");
    assert_eq!(max_held, l.incoming_queue);
    flood.abort_all();
}

#[tokio::test]
async fn a10_one_peers_connections_share_its_budget_and_are_capped() {
    let c = Consortium::new();
    let l = Limits {
        max_connections_per_peer: 2,
        ..limits()
    };
    let mut srv = Holding::start(&c, l);
    let (addr, bundle) = (srv.addr, c.bundle(&c.h1));
    let connect = || Client::connect(addr, "coordinator", &bundle, l);
    let a = connect().await.expect("first connection");
    let b = connect().await.expect("second connection");
    a.notify(&Msg::Payload(vec![1; 900_000]))
        .await
        .expect("fits");
    a.notify(&Msg::Payload(vec![2; 900_000]))
        .await
        .expect("fits");
    srv.wait_held("h1", 2).await;
    // the second connection spends the same budget
    let r = b.notify(&Msg::Payload(vec![3; 900_000])).await;
    assert!(
        matches!(r, Err(NetError::Wire(WireError::Refused { code: 3 }))),
        "{r:?}"
    );
    let (name, e) = srv.next_error().await;
    assert_eq!(name, "h1");
    assert!(
        matches!(e, NetError::Wire(WireError::OverBudget { .. })),
        "{e:?}"
    );
    // a third connection is refused after its handshake
    let third = connect().await;
    if let Ok(p) = third {
        let r = p.request::<Msg, Msg>(&Msg::Ping(3)).await;
        assert!(r.is_err(), "a third connection was served: {r:?}");
    }
    let (name, e) = srv.next_error().await;
    assert_eq!(name, "<handshake>");
    assert!(
        matches!(&e, NetError::TooManyConnections { name, limit: 2 } if name == "h1"),
        "{e:?}"
    );
    assert_eq!(srv.stats().connections_refused, 1);
    let h2 = Client::connect(srv.addr, "coordinator", &c.bundle(&c.h2), l)
        .await
        .expect("h2");
    served(&h2).await;
}

/// A server verifier that stalls the client's handshake (its thread sleeps until released).
#[derive(Debug)]
struct Stall {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    entered: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
}

impl ServerCertVerifier for Stall {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let end = Instant::now() + Duration::from_secs(60);
        while !self.release.load(Ordering::SeqCst) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(rustls::Error::General("stalled on purpose".into()))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// An outsider at `from` that starts `n` handshakes with `server` and stalls each after the
/// server's first flight (one thread and endpoint per handshake, each blocked in [`Stall`]).
struct Outsider {
    entered: Arc<AtomicUsize>,
    release: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Result<(), String>>>,
}

impl Outsider {
    fn start(c: &Consortium, server: SocketAddr, from: IpAddr, n: usize) -> Self {
        let entered = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(AtomicBool::new(false));
        let roots = tls::roots(&c.bundle(&c.coordinator)).expect("roots");
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, tls::provider())
                .build()
                .expect("verifier");
        let mut cfg = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Stall {
                inner,
                entered: Arc::clone(&entered),
                release: Arc::clone(&release),
            }))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![tls::ALPN.to_vec()];
        let quic = tls::quic_client_config_from(cfg, &Limits::default()).expect("quic cfg");
        let threads = (0..n)
            .map(|_| {
                let quic = quic.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(async {
                        let ep = quinn::Endpoint::client(SocketAddr::new(from, 0))
                            .map_err(|e| e.to_string())?;
                        let connecting = ep
                            .connect_with(quic, server, "coordinator")
                            .map_err(|e| e.to_string())?;
                        match tokio::time::timeout(Duration::from_secs(60), connecting).await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("timed out".into()),
                        }
                    })
                })
            })
            .collect();
        Self {
            entered,
            release,
            threads,
        }
    }

    /// Wait until `stalled` handshakes are stalled and the other attempts have ended.
    fn wait(&self, stalled: usize) -> usize {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let ended = self.threads.iter().filter(|t| t.is_finished()).count();
            if self.entered.load(Ordering::SeqCst) >= stalled
                && ended + stalled >= self.threads.len()
            {
                return ended;
            }
            assert!(
                Instant::now() < end,
                "outsider: {} stalled, {ended} ended of {}",
                self.entered.load(Ordering::SeqCst),
                self.threads.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Outsider {
    fn drop(&mut self) {
        self.release.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A handshake's outcome and the server's counters after it.
type Outcome = (Result<(), NetError>, NetStats);

/// A server whose accept loop reports every outcome with the server's counters.
fn start_server(c: &Consortium, limits: Limits) -> (SocketAddr, mpsc::UnboundedReceiver<Outcome>) {
    let mut server = Server::bind(
        "127.0.0.1:0".parse().expect("addr"),
        &c.bundle(&c.coordinator),
        limits,
    )
    .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut peers = Vec::new();
        loop {
            match server.accept().await {
                Ok(peer) => {
                    let _ = tx.send((Ok(()), server.stats()));
                    // answer its requests
                    let peer = Arc::new(peer);
                    peers.push(Arc::clone(&peer));
                    tokio::spawn(async move {
                        while let Ok(inc) = peer.next_incoming::<Msg>().await {
                            if let Incoming::Request { request, responder } = inc {
                                let _ = responder.respond(&request).await;
                            }
                        }
                    });
                }
                Err(NetError::Closed) => break,
                Err(e) => {
                    let _ = tx.send((Err(e), server.stats()));
                }
            }
        }
    });
    (addr, rx)
}

/// The outsider's address: another loopback address, so the real client (127.0.0.1) is not
/// the same source.
fn outsider_ip() -> IpAddr {
    "127.0.0.2".parse().expect("ip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a10_stalled_handshakes_from_one_address_do_not_lock_out_a_client() {
    let c = Consortium::new();
    // Long handshake timeout: only the per-address cap can let the client in.
    let server_limits = Limits {
        handshake_timeout: Duration::from_secs(30),
        max_handshakes: 8,
        max_handshakes_per_address: 2,
        ..limits()
    };
    let (addr, mut events) = start_server(&c, server_limits);
    let outsider = Outsider::start(&c, addr, outsider_ip(), 12);
    let ended = tokio::task::block_in_place(|| outsider.wait(2));
    assert_eq!(
        ended, 10,
        "all but 2 of the outsider's handshakes refused at once"
    );

    let client_limits = Limits {
        handshake_timeout: Duration::from_secs(3),
        ..limits()
    };
    let t = Instant::now();
    let peer = Client::connect(addr, "coordinator", &c.bundle(&c.h1), client_limits)
        .await
        .expect("the real client connects while the outsider stalls");
    let r: Msg = peer.request(&Msg::Ping(1)).await.expect("served");
    assert_eq!(r, Msg::Ping(1));
    eprintln!(
        "a10: client connected in {:?} beside 2 stalled handshakes",
        t.elapsed()
    );

    let mut from_address = 0;
    let mut stats = NetStats::default();
    while let Ok(Some((res, s))) =
        tokio::time::timeout(Duration::from_millis(500), events.recv()).await
    {
        stats = s;
        if let Err(NetError::HandshakesFromAddress { remote, limit }) = res {
            assert_eq!(remote.ip(), outsider_ip());
            assert_eq!(limit, 2);
            from_address += 1;
        }
    }
    assert!(
        from_address >= 1,
        "refusals are reported as typed errors: {stats:?}"
    );
    assert_eq!(stats.handshakes_refused_address, 10, "{stats:?}");
    assert!(
        stats.retries >= 13,
        "every address was validated first: {stats:?}"
    );
    drop(outsider);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a10_stalled_handshakes_give_their_slots_back_after_the_handshake_timeout() {
    let c = Consortium::new();
    // The outsider can fill the server's handshake slots; the timeout frees them.
    let server_limits = Limits {
        handshake_timeout: Duration::from_secs(2),
        max_handshakes: 2,
        max_handshakes_per_address: 2,
        ..limits()
    };
    let (addr, mut events) = start_server(&c, server_limits);
    let outsider = Outsider::start(&c, addr, outsider_ip(), 2);
    tokio::task::block_in_place(|| outsider.wait(2));

    let client_limits = Limits {
        handshake_timeout: Duration::from_secs(3),
        ..limits()
    };
    let end = Instant::now() + Duration::from_secs(20);
    let mut attempts = 0;
    let peer = loop {
        attempts += 1;
        match Client::connect(addr, "coordinator", &c.bundle(&c.h1), client_limits).await {
            Ok(p) => break p,
            Err(e) => {
                assert!(Instant::now() < end, "never connected: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let r: Msg = peer.request(&Msg::Ping(2)).await.expect("served");
    assert_eq!(r, Msg::Ping(2));
    let mut timed_out = 0;
    let mut stats = NetStats::default();
    while let Ok(Some((res, s))) =
        tokio::time::timeout(Duration::from_millis(500), events.recv()).await
    {
        stats = s;
        if let Err(NetError::Handshake { remote, reason }) = &res {
            assert_eq!(remote.ip(), outsider_ip());
            assert!(reason.contains("timed out"), "{reason}");
            timed_out += 1;
        }
    }
    eprintln!("a10: client connected after {attempts} attempts; {stats:?}");
    assert!(
        stats.handshakes_refused_busy >= 1,
        "the slots were full: {stats:?}"
    );
    assert_eq!(timed_out, 2, "{stats:?}");
    assert_eq!(stats.handshakes_failed, 2, "{stats:?}");
    drop(outsider);
}
