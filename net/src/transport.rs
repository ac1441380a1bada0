//! Mutual-TLS QUIC endpoints and peers.
//!
//! - [`Server::bind`] / [`Server::accept`]: handshakes run concurrently in the background; a
//!   refused or failed handshake comes out of `accept` as [`NetError::Handshake`] and the
//!   server keeps accepting.
//! - [`Client::connect`]: one connection to a named server.
//! - [`Peer`]: a verified connection. [`Peer::request`] opens a bidirectional stream (one
//!   message, one reply), [`Peer::notify`] a unidirectional one; [`Peer::next_incoming`] yields
//!   what the other side opened. Incoming streams are read by a background task into a bounded
//!   queue; when it is full, no further streams are accepted (QUIC flow control pushes back).

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio::task::JoinHandle;

use crate::error::{NetError, Result, WireError};
use crate::pki::{identity_from_cert, Bundle, PeerIdentity};
use crate::tls;
use crate::wire::{self, timed, FrameKind, Limits};

/// QUIC application error code on a stream whose frame was refused.
const BAD_FRAME: quinn::VarInt = quinn::VarInt::from_u32(1);

/// QUIC application error code on a request stream dropped without a reply.
const NO_REPLY: quinn::VarInt = quinn::VarInt::from_u32(2);

/// Handshakes in flight at once on a server.
const MAX_HANDSHAKES: usize = 64;

fn conn_err(e: impl std::fmt::Display) -> NetError {
    NetError::Connection(e.to_string())
}

/// A listening endpoint.
#[derive(Debug)]
pub struct Server {
    endpoint: quinn::Endpoint,
    accepted: mpsc::Receiver<Result<Peer>>,
    acceptor: JoinHandle<()>,
}

impl Server {
    /// Bind a UDP socket and start accepting mutual-TLS connections.
    pub fn bind(addr: SocketAddr, bundle: &Bundle, limits: Limits) -> Result<Self> {
        let cfg = tls::quic_server_config(bundle, &limits)?;
        let endpoint = tls::endpoint(addr, Some(cfg), &limits)?;
        let (tx, accepted) = mpsc::channel(MAX_HANDSHAKES);
        let ep = endpoint.clone();
        let acceptor = tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
            while let Some(incoming) = ep.accept().await {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    let res = handshake(incoming, limits)
                        .await
                        .map_err(|reason| NetError::Handshake { remote, reason });
                    drop(permit);
                    let _ = tx.send(res).await;
                });
            }
        });
        Ok(Self {
            endpoint,
            accepted,
            acceptor,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.endpoint.local_addr().map_err(|source| NetError::Io {
            path: "server socket".into(),
            source,
        })
    }

    /// The next handshake's outcome: a verified peer, or [`NetError::Handshake`] for one that
    /// was refused (the server keeps accepting). [`NetError::Closed`] once closed.
    pub async fn accept(&mut self) -> Result<Peer> {
        self.accepted.recv().await.unwrap_or(Err(NetError::Closed))
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

async fn handshake(incoming: quinn::Incoming, limits: Limits) -> Result<Peer, String> {
    let connecting = incoming.accept().map_err(|e| e.to_string())?;
    let conn = timed(&limits, "handshake", connecting)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Peer::new(conn, limits, None).map_err(|e| e.to_string())
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
        let conn = timed(&limits, "handshake", connecting)
            .await?
            .map_err(|e| handshake_err(e.to_string()))?;
        Peer::new(conn, limits, Some(endpoint))
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

/// A connection whose peer presented a valid consortium certificate.
#[derive(Debug)]
pub struct Peer {
    conn: quinn::Connection,
    identity: PeerIdentity,
    limits: Limits,
    incoming: Mutex<mpsc::Receiver<Result<Raw>>>,
    reader: JoinHandle<()>,
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
    fn new(
        conn: quinn::Connection,
        limits: Limits,
        endpoint: Option<quinn::Endpoint>,
    ) -> Result<Self> {
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
        let identity = identity_from_cert(leaf)?;
        let (tx, rx) = mpsc::channel(limits.incoming_queue.max(1));
        let reader = tokio::spawn(read_streams(conn.clone(), limits, tx));
        Ok(Self {
            conn,
            identity,
            limits,
            incoming: Mutex::new(rx),
            reader,
            _endpoint: endpoint,
        })
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

    /// Send a one-way message on its own unidirectional stream.
    pub async fn notify<T: Serialize + ?Sized>(&self, msg: &T) -> Result<()> {
        let body = wire::encode(msg)?;
        let mut send = timed(&self.limits, "opening a stream", self.conn.open_uni())
            .await?
            .map_err(conn_err)?;
        wire::write_frame(&mut send, FrameKind::Message, &body, &self.limits).await?;
        // Wait until the peer has the whole frame, so a dropped connection is reported here.
        match timed(&self.limits, "waiting for delivery", send.stopped()).await? {
            Ok(_) | Err(quinn::StoppedError::ZeroRttRejected) => Ok(()),
            Err(e) => Err(conn_err(e)),
        }
    }

    /// The next stream the other side opened, decoded as `T`. A bad frame on one stream is an
    /// error for that stream only ([`NetError::Wire`]); call again for the next. When the
    /// connection is gone: [`NetError::Connection`].
    pub async fn next_incoming<T: DeserializeOwned>(&self) -> Result<Incoming<T>> {
        let raw = self
            .incoming
            .lock()
            .await
            .recv()
            .await
            .unwrap_or_else(|| Err(NetError::Connection("connection closed".into())))?;
        match raw {
            Raw::Message(body) => Ok(Incoming::Message(wire::decode(&body)?)),
            Raw::Request(body, responder) => match wire::decode(&body) {
                Ok(request) => Ok(Incoming::Request { request, responder }),
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

/// Accept the peer's streams, read one frame from each (concurrently, at most
/// `incoming_queue` in flight or queued) and queue the results.
async fn read_streams(conn: quinn::Connection, limits: Limits, tx: mpsc::Sender<Result<Raw>>) {
    let slots = Arc::new(Semaphore::new(limits.incoming_queue.max(1)));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        tokio::select! {
            uni = conn.accept_uni() => match uni {
                Ok(mut recv) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let res = match wire::read_frame(&mut recv, &limits).await {
                            Ok((h, body)) if h.kind == FrameKind::Message => Ok(Raw::Message(body)),
                            Ok((h, _)) => Err(WireError::UnexpectedKind { found: h.kind, want: FrameKind::Message }.into()),
                            Err(e) => {
                                let _ = recv.stop(BAD_FRAME);
                                Err(e.into())
                            }
                        };
                        let _ = tx.send(res).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    let _ = tx.send(Err(conn_err(e))).await;
                    return;
                }
            },
            bi = conn.accept_bi() => match bi {
                Ok((mut send, mut recv)) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let res = match wire::read_frame(&mut recv, &limits).await {
                            Ok((h, body)) if h.kind == FrameKind::Request => {
                                Ok(Raw::Request(body, Responder::new(send, limits)))
                            }
                            Ok((h, _)) => Err(WireError::UnexpectedKind { found: h.kind, want: FrameKind::Request }.into()),
                            Err(e) => {
                                let _ = recv.stop(BAD_FRAME);
                                let _ = send.reset(BAD_FRAME);
                                Err(e.into())
                            }
                        };
                        let _ = tx.send(res).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    let _ = tx.send(Err(conn_err(e))).await;
                    return;
                }
            },
        }
    }
}
