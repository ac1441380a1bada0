//! Mutual-TLS QUIC endpoints and peers.
//!
//! - [`Server::bind`] / [`Server::accept`]: handshakes run concurrently in the background; a
//!   refused or failed handshake comes out of `accept` as an error ([`NetError::Handshake`],
//!   [`NetError::HandshakesFromAddress`], [`NetError::HandshakesBusy`],
//!   [`NetError::TooManyConnections`]) and the server keeps accepting. Before a handshake gets
//!   any state the client's address is validated (a QUIC Retry, [`Limits::validate_address`]);
//!   at most [`Limits::max_handshakes`] run at once, [`Limits::max_handshakes_per_address`]
//!   from one address, each for at most [`Limits::handshake_timeout`]. Attempts beyond are
//!   refused at once, so an outsider that stalls its handshakes holds only its own slots.
//! - [`Client::connect`]: one connection to a named server.
//! - [`Peer`]: a verified connection. [`Peer::request`] opens a bidirectional stream (one
//!   message, one reply), [`Peer::notify`] a unidirectional one; [`Peer::next_incoming`] yields
//!   what the other side opened. Incoming streams are read by a background task within the
//!   peer's budget (see [`crate::budget`]): a stream whose header declares more than the
//!   frame limits or the peer's remaining byte budget is refused before its body is read, and
//!   when the peer's message slots are taken no further stream is accepted (QUIC flow control
//!   pushes back).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex as StdMutex};

use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio::task::JoinHandle;

use crate::budget::{ConnSlot, Counters, Held, NetStats, PeerBudget, Registry};
use crate::error::{NetError, Result, WireError};
use crate::pki::{identity_from_cert, Bundle, PeerIdentity};
use crate::tls;
use crate::wire::{self, timed, timed_for, FrameKind, Limits};

/// QUIC application error code on a stream whose frame was refused.
const BAD_FRAME: quinn::VarInt = quinn::VarInt::from_u32(1);

/// QUIC application error code on a request stream dropped without a reply.
const NO_REPLY: quinn::VarInt = quinn::VarInt::from_u32(2);

/// QUIC application error code on a stream refused for its size (frame limit or budget).
pub const OVER_LIMIT: quinn::VarInt = quinn::VarInt::from_u32(3);

/// QUIC application error code closing the connection of a peer that kept exceeding limits.
pub const ABUSIVE: quinn::VarInt = quinn::VarInt::from_u32(4);

/// QUIC application error code closing a connection refused after its handshake.
pub const REFUSED: quinn::VarInt = quinn::VarInt::from_u32(5);

/// QUIC application error code closing the connection of a peer the server will not admit at
/// all (e.g. not registered on chain under its certificate's key): retrying cannot help, and
/// the peer stops ([`permanent_refusal`]).
pub const DENIED: quinn::VarInt = quinn::VarInt::from_u32(6);

/// TLS alerts that refuse a certificate: bad, unsupported, revoked, expired or unknown
/// certificate, unknown CA, access denied, certificate required.
const CERTIFICATE_ALERTS: [u8; 8] = [42, 43, 44, 45, 46, 48, 49, 116];

fn alert_name(alert: u64) -> &'static str {
    match alert {
        42 => "bad certificate",
        43 => "unsupported certificate",
        44 => "certificate revoked",
        45 => "certificate expired",
        46 => "certificate unknown",
        48 => "unknown CA",
        49 => "access denied",
        _ => "certificate required",
    }
}

/// Why a connection ended for good, if it did: the other side (or this one) refused a
/// certificate in the handshake (a TLS alert of [`CERTIFICATE_ALERTS`]: e.g. this side's
/// certificate is revoked, or the server's is not of our CA), or the server closed it with
/// [`DENIED`]. Retrying cannot help. `None` for everything a reconnect may cure (timeouts,
/// resets, a peer that restarted or closed normally).
pub fn permanent_refusal(e: &quinn::ConnectionError) -> Option<String> {
    let alert = |code: u64| {
        (0x100..=0x1ff).contains(&code) && CERTIFICATE_ALERTS.contains(&((code - 0x100) as u8))
    };
    match e {
        quinn::ConnectionError::ConnectionClosed(c) if alert(u64::from(c.error_code)) => {
            Some(format!(
                "the peer refused this participant's certificate (TLS alert {}: {})",
                u64::from(c.error_code) - 0x100,
                alert_name(u64::from(c.error_code) - 0x100)
            ))
        }
        quinn::ConnectionError::TransportError(t) if alert(u64::from(t.code)) => Some(format!(
            "the peer's certificate is refused here: {}",
            t.reason
        )),
        quinn::ConnectionError::ApplicationClosed(c) if c.error_code == DENIED => Some(format!(
            "the peer does not admit this participant: {}",
            String::from_utf8_lossy(&c.reason)
        )),
        _ => None,
    }
}

fn conn_err(e: impl std::fmt::Display) -> NetError {
    NetError::Connection(e.to_string())
}

/// A listening endpoint.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    accepted: mpsc::Receiver<Result<Peer>>,
    acceptor: JoinHandle<()>,
    counters: Arc<Counters>,
    revoked: tls::Revoked,
}

impl Server {
    /// Bind a UDP socket and start accepting mutual-TLS connections.
    pub fn bind(addr: SocketAddr, bundle: &Bundle, limits: Limits) -> Result<Self> {
        let revoked = tls::Revoked::default();
        let cfg = tls::quic_server_config_recording(bundle, &limits, Arc::clone(&revoked))?;
        let endpoint = tls::endpoint(addr, Some(cfg), &limits)?;
        let (tx, accepted) = mpsc::channel(limits.max_handshakes.max(1));
        let counters = Arc::new(Counters::default());
        let acceptor = tokio::spawn(accept_loop(
            endpoint.clone(),
            limits,
            tx,
            Arc::clone(&counters),
        ));
        Ok(Self {
            endpoint,
            accepted,
            acceptor,
            counters,
            revoked,
        })
    }

    /// Participants (address -> certificate name) whose handshake was refused because their
    /// certificate is on the CRL; the handle stays valid after the server moves.
    pub fn revoked(&self) -> tls::Revoked {
        Arc::clone(&self.revoked)
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.endpoint.local_addr().map_err(|source| NetError::Io {
            path: "server socket".into(),
            source,
        })
    }

    /// The next handshake's outcome: a verified peer, or an error for one that was refused
    /// (the server keeps accepting). [`NetError::Closed`] once closed. Refusals made before a
    /// handshake starts are reported while there is room; all are counted in [`Self::stats`].
    pub async fn accept(&mut self) -> Result<Peer> {
        self.accepted.recv().await.unwrap_or(Err(NetError::Closed))
    }

    /// What the server and its peers have refused so far.
    pub fn stats(&self) -> NetStats {
        self.counters.snapshot()
    }

    /// Close every connection and stop accepting.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"server closing");
        self.acceptor.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

/// Handshakes in flight per source address (IPv4 address; IPv6 /64, or the IPv4 address it
/// maps).
#[derive(Debug, Default)]
struct AddressSlots(StdMutex<HashMap<IpAddr, usize>>);

fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AddressSlots {
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            slots: Arc::clone(self),
            key,
        })
    }
}

struct AddressSlot {
    slots: Arc<AddressSlots>,
    key: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut m = self.slots.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

async fn accept_loop(
    ep: quinn::Endpoint,
    limits: Limits,
    tx: mpsc::Sender<Result<Peer>>,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
    let per_address = Arc::new(AddressSlots::default());
    let registry = Arc::new(Registry::default());
    while let Some(incoming) = ep.accept().await {
        let remote = incoming.remote_address();
        if limits.validate_address && !incoming.remote_address_validated() {
            // A stateless Retry: the client must echo its token from the address it claims.
            Counters::bump(&counters.retries);
            if let Err(e) = incoming.retry() {
                e.into_incoming().refuse();
            }
            continue;
        }
        let limit = limits.max_handshakes_per_address.max(1);
        let Some(address_slot) = per_address.take(remote.ip(), limit) else {
            Counters::bump(&counters.handshakes_refused_address);
            incoming.refuse();
            let _ = tx.try_send(Err(NetError::HandshakesFromAddress { remote, limit }));
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            Counters::bump(&counters.handshakes_refused_busy);
            incoming.refuse();
            let limit = limits.max_handshakes;
            let _ = tx.try_send(Err(NetError::HandshakesBusy { remote, limit }));
            continue;
        };
        let tx = tx.clone();
        let counters = Arc::clone(&counters);
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let res = handshake(incoming, limits, &registry, &counters).await;
            drop(address_slot);
            // the handshake slot is given back once the application has the outcome, so
            // finished handshakes waiting for `accept` count too
            let _ = tx.send(res).await;
            drop(permit);
        });
    }
}

async fn handshake(
    incoming: quinn::Incoming,
    limits: Limits,
    registry: &Registry,
    counters: &Arc<Counters>,
) -> Result<Peer> {
    let remote = incoming.remote_address();
    let failed = |reason: String| {
        Counters::bump(&counters.handshakes_failed);
        NetError::Handshake { remote, reason }
    };
    let connecting = incoming.accept().map_err(|e| failed(e.to_string()))?;
    let conn = timed_for(limits.handshake_timeout, "handshake", connecting)
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| failed(e.to_string()))?;
    let identity = peer_identity(&conn).map_err(|e| failed(e.to_string()))?;
    let budget = registry.budget(&identity.name, &limits);
    let slot = match budget.connect() {
        Ok(slot) => slot,
        Err(e) => {
            Counters::bump(&counters.connections_refused);
            conn.close(REFUSED, b"too many connections");
            return Err(e);
        }
    };
    Ok(Peer::start(
        conn,
        identity,
        limits,
        None,
        budget,
        Some(slot),
        Arc::clone(counters),
    ))
}

/// The identity in the certificate the peer presented (verified by rustls).
fn peer_identity(conn: &quinn::Connection) -> Result<PeerIdentity> {
    let certs = conn
        .peer_identity()
        .and_then(|any| {
            any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .ok_or_else(|| NetError::Identity("peer presented no certificate".into()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| NetError::Identity("empty certificate chain".into()))?;
    identity_from_cert(leaf)
}

/// Connecting side.
#[derive(Debug)]
pub struct Client;

impl Client {
    /// Connect to `server_name` (the name in its certificate) at `addr`.
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        bundle: &Bundle,
        limits: Limits,
    ) -> Result<Peer> {
        let cfg = tls::quic_client_config(bundle, &limits)?;
        Self::connect_with(addr, server_name, cfg, limits).await
    }

    /// Connect with an explicit quinn client configuration (see [`tls::quic_client_config_from`]).
    pub async fn connect_with(
        addr: SocketAddr,
        server_name: &str,
        cfg: quinn::ClientConfig,
        limits: Limits,
    ) -> Result<Peer> {
        let bind: SocketAddr = if addr.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = tls::endpoint(bind, None, &limits)?;
        endpoint.set_default_client_config(cfg);
        let handshake_err = |reason: String| NetError::Handshake {
            remote: addr,
            reason,
        };
        let connecting = endpoint
            .connect(addr, server_name)
            .map_err(|e| handshake_err(e.to_string()))?;
        let conn = timed_for(limits.handshake_timeout, "handshake", connecting)
            .await?
            .map_err(|e| match permanent_refusal(&e) {
                Some(reason) => NetError::PeerRefused {
                    remote: addr,
                    reason,
                },
                None => handshake_err(e.to_string()),
            })?;
        let identity = peer_identity(&conn)?;
        let budget = PeerBudget::single(&identity.name, &limits);
        Ok(Peer::start(
            conn,
            identity,
            limits,
            Some(endpoint),
            budget,
            None,
            Arc::new(Counters::default()),
        ))
    }
}

/// What the other side opened.
#[derive(Debug)]
pub enum Incoming<T> {
    /// A one-way message.
    Message(T),
    /// A request; answer through the responder (dropping it resets the stream).
    Request { request: T, responder: Responder },
}

/// The reply side of one request. Dropping it unanswered resets the stream, so the requester
/// gets an error at once instead of waiting for its timeout.
#[derive(Debug)]
pub struct Responder {
    send: Option<quinn::SendStream>,
    limits: Limits,
}

impl Responder {
    fn new(send: quinn::SendStream, limits: Limits) -> Self {
        Self {
            send: Some(send),
            limits,
        }
    }

    async fn reply(mut self, kind: FrameKind, body: &[u8]) -> Result<()> {
        let mut send = self
            .send
            .take()
            .ok_or_else(|| NetError::Connection("reply stream already used".into()))?;
        wire::write_frame(&mut send, kind, body, &self.limits).await?;
        Ok(())
    }

    /// Send the reply.
    pub async fn respond<T: Serialize + ?Sized>(self, reply: &T) -> Result<()> {
        let body = wire::encode(reply)?;
        self.reply(FrameKind::Response, &body).await
    }

    /// Refuse the request with a reason (the requester gets [`WireError::Remote`]).
    pub async fn fail(self, reason: &str) -> Result<()> {
        let body = reason.as_bytes();
        let body = &body[..body.len().min(4096)];
        self.reply(FrameKind::Error, body).await
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(mut send) = self.send.take() {
            let _ = send.reset(NO_REPLY);
        }
    }
}

enum Raw {
    Message(Vec<u8>),
    Request(Vec<u8>, Responder),
}

/// What the reader queues: a frame or a stream's error, with the message slot it holds.
type Item = (Result<Raw>, Held);

/// A connection whose peer presented a valid consortium certificate.
#[derive(Debug)]
pub struct Peer {
    conn: quinn::Connection,
    identity: PeerIdentity,
    limits: Limits,
    incoming: Mutex<mpsc::Receiver<Item>>,
    reader: JoinHandle<()>,
    budget: Arc<PeerBudget>,
    counters: Arc<Counters>,
    _slot: Option<ConnSlot>,
    _endpoint: Option<quinn::Endpoint>,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Raw::Message(b) => write!(f, "Message({} bytes)", b.len()),
            Raw::Request(b, _) => write!(f, "Request({} bytes)", b.len()),
        }
    }
}

impl Peer {
    fn start(
        conn: quinn::Connection,
        identity: PeerIdentity,
        limits: Limits,
        endpoint: Option<quinn::Endpoint>,
        budget: Arc<PeerBudget>,
        slot: Option<ConnSlot>,
        counters: Arc<Counters>,
    ) -> Self {
        // every queued item holds one of the peer's `incoming_queue` slots, so the queue
        // never fills before the slots run out
        let (tx, rx) = mpsc::channel(limits.incoming_queue.max(1));
        let reader = tokio::spawn(read_streams(
            conn.clone(),
            limits,
            tx,
            Arc::clone(&budget),
            Arc::clone(&counters),
        ));
        Self {
            conn,
            identity,
            limits,
            incoming: Mutex::new(rx),
            reader,
            budget,
            counters,
            _slot: slot,
            _endpoint: endpoint,
        }
    }

    /// The peer's verified identity (from its certificate).
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// The limits of this connection.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Why the connection ended for good ([`permanent_refusal`]), once it is closed: then
    /// reconnecting cannot help.
    pub fn refusal(&self) -> Option<NetError> {
        let e = self.conn.close_reason()?;
        permanent_refusal(&e).map(|reason| NetError::PeerRefused {
            remote: self.conn.remote_address(),
            reason,
        })
    }

    /// Close the connection for good with [`DENIED`] and `reason` (the peer stops retrying).
    pub fn deny(&self, reason: &str) {
        self.conn.close(DENIED, reason.as_bytes());
    }

    /// The underlying QUIC connection (diagnostics and tests of raw streams).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Send a request on its own bidirectional stream and wait for the reply.
    pub async fn request<Req, Resp>(&self, req: &Req) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = wire::encode(req)?;
        let (mut send, mut recv) = timed(&self.limits, "opening a stream", self.conn.open_bi())
            .await?
            .map_err(conn_err)?;
        wire::write_frame(&mut send, FrameKind::Request, &body, &self.limits).await?;
        let (header, body) = wire::read_frame(&mut recv, &self.limits).await?;
        match header.kind {
            FrameKind::Response => Ok(wire::decode(&body)?),
            FrameKind::Error => {
                Err(WireError::Remote(String::from_utf8_lossy(&body).into_owned()).into())
            }
            found => Err(WireError::UnexpectedKind {
                found,
                want: FrameKind::Response,
            }
            .into()),
        }
    }

    /// Send a one-way message on its own unidirectional stream; returns once the peer has read
    /// all of it, or [`WireError::Refused`] when it refused the frame (e.g. over its budget).
    pub async fn notify<T: Serialize + ?Sized>(&self, msg: &T) -> Result<()> {
        let body = wire::encode(msg)?;
        let mut send = timed(&self.limits, "opening a stream", self.conn.open_uni())
            .await?
            .map_err(conn_err)?;
        wire::write_frame(&mut send, FrameKind::Message, &body, &self.limits).await?;
        // Wait until the peer has the whole frame, so a dropped connection is reported here.
        match timed(&self.limits, "waiting for delivery", send.stopped()).await? {
            Ok(None) | Err(quinn::StoppedError::ZeroRttRejected) => Ok(()),
            Ok(Some(code)) => Err(WireError::Refused {
                code: code.into_inner(),
            }
            .into()),
            Err(e) => Err(conn_err(e)),
        }
    }

    /// The next stream the other side opened, decoded as `T`. A bad or refused frame on one
    /// stream is an error for that stream only ([`NetError::Wire`]); call again for the next.
    /// A peer that kept exceeding its limits: [`NetError::Abusive`] (its connection is
    /// closed). When the connection is gone: [`NetError::Connection`].
    pub async fn next_incoming<T: DeserializeOwned>(&self) -> Result<Incoming<T>> {
        self.next_incoming_held()
            .await
            .map(|(incoming, _)| incoming)
    }

    /// [`Self::next_incoming`], with the message's share of the peer's budget: keep the
    /// [`Held`] as long as the message is kept (e.g. queued for another task), so the peer's
    /// byte and message budgets cover it until it is consumed.
    pub async fn next_incoming_held<T: DeserializeOwned>(&self) -> Result<(Incoming<T>, Held)> {
        let (raw, held) = self
            .incoming
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| NetError::Connection("connection closed".into()))?;
        match raw? {
            Raw::Message(body) => Ok((Incoming::Message(wire::decode(&body)?), held)),
            Raw::Request(body, responder) => match wire::decode(&body) {
                Ok(request) => Ok((Incoming::Request { request, responder }, held)),
                Err(e) => {
                    let reason = e.to_string();
                    tokio::spawn(async move {
                        let _ = responder.fail(&reason).await;
                    });
                    Err(e.into())
                }
            },
        }
    }

    /// Bytes of this peer's budget in use now (frames being read, queued or held).
    pub fn budget_in_use(&self) -> u64 {
        self.budget.in_use()
    }

    /// What was refused so far: on a server, the server's counters (all peers); on a client,
    /// this connection's.
    pub fn stats(&self) -> NetStats {
        self.counters.snapshot()
    }

    /// Close the connection.
    pub fn close(&self, reason: &str) {
        self.conn.close(0u32.into(), reason.as_bytes());
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Accept the peer's streams while it has message slots, read one frame from each
/// (concurrently, each within the peer's byte budget) and queue the results.
async fn read_streams(
    conn: quinn::Connection,
    limits: Limits,
    tx: mpsc::Sender<Item>,
    budget: Arc<PeerBudget>,
    counters: Arc<Counters>,
) {
    loop {
        let Some(slot) = budget.slot().await else {
            return;
        };
        let stream = tokio::select! {
            uni = conn.accept_uni() => uni.map(|recv| (recv, None)),
            bi = conn.accept_bi() => bi.map(|(send, recv)| (recv, Some(send))),
        };
        match stream {
            Ok((recv, send)) => {
                let stream = Stream {
                    conn: conn.clone(),
                    limits,
                    budget: Arc::clone(&budget),
                    counters: Arc::clone(&counters),
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let item = stream.read(recv, send, slot).await;
                    let _ = tx.send(item).await;
                });
            }
            Err(e) => {
                let _ = tx.send((Err(conn_err(e)), Held::new(None, slot))).await;
                return;
            }
        }
    }
}

/// What reading one incoming stream needs.
struct Stream {
    conn: quinn::Connection,
    limits: Limits,
    budget: Arc<PeerBudget>,
    counters: Arc<Counters>,
}

impl Stream {
    /// Read one frame: a message (unidirectional) or a request (bidirectional, `send` given).
    async fn read(
        self,
        mut recv: quinn::RecvStream,
        send: Option<quinn::SendStream>,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Item {
        let want = if send.is_some() {
            FrameKind::Request
        } else {
            FrameKind::Message
        };
        let budget = &self.budget;
        let res = wire::read_frame_admitted(&mut recv, &self.limits, |h| budget.reserve(h.len))
            .await
            .and_then(|(h, body, bytes)| {
                if h.kind == want {
                    Ok((body, bytes))
                } else {
                    Err(WireError::UnexpectedKind {
                        found: h.kind,
                        want,
                    })
                }
            });
        match res {
            Ok((body, bytes)) => {
                let raw = match send {
                    Some(send) => Raw::Request(body, Responder::new(send, self.limits)),
                    None => Raw::Message(body),
                };
                (Ok(raw), Held::new(Some(bytes), slot))
            }
            Err(e) => {
                let over = matches!(e, WireError::TooLarge { .. } | WireError::OverBudget { .. });
                let code = if over { OVER_LIMIT } else { BAD_FRAME };
                let _ = recv.stop(code);
                if let Some(mut send) = send {
                    let _ = send.reset(code);
                }
                let err = if over { self.strike(&e) } else { e.into() };
                (Err(err), Held::new(None, slot))
            }
        }
    }

    /// A stream refused for its size: count it; at `max_strikes` close the connection.
    fn strike(&self, e: &WireError) -> NetError {
        let c = &self.counters;
        match e {
            WireError::OverBudget { .. } => Counters::bump(&c.streams_over_budget),
            _ => Counters::bump(&c.frames_too_large),
        }
        if self.budget.strike() && self.conn.close_reason().is_none() {
            Counters::bump(&c.connections_closed_abusive);
            self.conn.close(ABUSIVE, b"resource limits exceeded");
            return NetError::Abusive {
                name: self.budget.name().to_string(),
                strikes: self.budget.strikes(),
            };
        }
        e.clone().into()
    }
}
