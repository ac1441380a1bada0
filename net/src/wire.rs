//! Versioned, length-prefixed frames; one frame per QUIC stream direction.
//!
//! Header (16 bytes, big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `FCNW` |
//! | 4 | protocol version ([`VERSION`]) |
//! | 5 | kind ([`FrameKind`]) |
//! | 6 | flags (bit 0: payload class; other bits must be 0) |
//! | 7 | reserved, 0 |
//! | 8..16 | body length, u64 |
//!
//! The body is the bincode encoding of the message (fixint, little-endian, no trailing
//! bytes). The length is checked against [`Limits`] (control or payload class) before any
//! body byte is allocated or read, and the stream must end right after the body.

use std::future::Future;
use std::time::Duration;

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

use crate::error::WireError;

/// Frame magic.
pub const MAGIC: [u8; 4] = *b"FCNW";
/// Wire protocol version.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 16;
/// Flag: the frame is a payload (large) rather than a control message.
pub const FLAG_PAYLOAD: u8 = 0x01;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A one-way message (unidirectional stream).
    Message = 1,
    /// A request expecting one reply (bidirectional stream).
    Request = 2,
    /// The reply to a request.
    Response = 3,
    /// The responder could not answer (body: a UTF-8 reason).
    Error = 4,
}

impl FrameKind {
    fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            1 => Self::Message,
            2 => Self::Request,
            3 => Self::Response,
            4 => Self::Error,
            found => return Err(WireError::UnknownKind { found }),
        })
    }
}

/// Limits of an endpoint: what one frame, one peer and the unauthenticated may cost it
/// (threat model G7). Every await on the network is bounded by `timeout`
/// (`handshake_timeout` for handshakes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest control-class frame body accepted (bytes).
    pub max_control: u64,
    /// Largest payload-class frame body accepted (bytes), e.g. a ciphertext vector. A process
    /// that knows its protocol's largest message sets this to it (the coordinator: one
    /// submission or decryption share), so a frame declaring more is refused at its header.
    pub max_payload: u64,
    /// Largest frame body this side sends (refused before anything is sent). May exceed
    /// `max_payload`: what we send is bounded by the receiver's limits, not ours.
    pub max_send: u64,
    /// Upper bound for one network operation (reading or writing one frame, waiting for a
    /// reply).
    pub timeout: Duration,
    /// Upper bound for a handshake (QUIC and mutual TLS), short: an unauthenticated peer
    /// holds a handshake slot at most this long.
    pub handshake_timeout: Duration,
    /// QUIC keep-alive interval: a PING when nothing else was sent for this long, so an idle
    /// but live connection never reaches `idle_timeout`.
    pub keep_alive: Duration,
    /// QUIC idle timeout: a connection that received nothing (not even a keep-alive) for this
    /// long is dead (its peer crashed or is unreachable) and is closed, so both sides notice a
    /// killed process within seconds, not after `timeout`.
    pub idle_timeout: Duration,
    /// Messages per peer being read, queued or held by the application, together; when all
    /// are taken no further stream is accepted (backpressure).
    pub incoming_queue: usize,
    /// Bytes of frame bodies per peer being read, queued or held by the application,
    /// together. A stream whose declared length does not fit is refused at its header
    /// ([`WireError::OverBudget`]).
    pub peer_budget: u64,
    /// Streams refused for their size (too large, over budget) before the connection is
    /// closed ([`crate::NetError::Abusive`]).
    pub max_strikes: u32,
    /// Streams a peer may have open at once, per direction (QUIC stream limit).
    pub max_streams: u32,
    /// Handshakes in flight at once on a server.
    pub max_handshakes: usize,
    /// Handshakes in flight at once from one source address (IPv4 address, IPv6 /64).
    pub max_handshakes_per_address: usize,
    /// Connections one authenticated peer (certificate name) may have open to a server at
    /// once; they share one `peer_budget` and `incoming_queue`.
    pub max_connections_per_peer: usize,
    /// Require QUIC address validation (a stateless Retry) before a handshake gets any state,
    /// so a spoofed source address cannot take a handshake slot.
    pub validate_address: bool,
    /// Largest UDP payload accepted and probed for by MTU discovery (1452: Ethernet; larger
    /// values only help on paths that carry them, e.g. loopback or jumbo frames).
    pub max_udp_payload: u16,
}

impl Default for Limits {
    fn default() -> Self {
        let max_control = 1 << 20;
        let max_payload = 256 << 20;
        Self {
            max_control,
            max_payload,
            max_send: max_payload,
            timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(6),
            incoming_queue: 32,
            peer_budget: Self::default_budget(max_control, max_payload),
            max_strikes: 8,
            max_streams: 16,
            max_handshakes: 64,
            max_handshakes_per_address: 4,
            max_connections_per_peer: 4,
            validate_address: true,
            max_udp_payload: 1452,
        }
    }
}

impl Limits {
    /// The default byte budget of a peer: two largest payloads and sixteen largest control
    /// messages at once.
    pub const fn default_budget(max_control: u64, max_payload: u64) -> u64 {
        max_payload
            .saturating_mul(2)
            .saturating_add(max_control.saturating_mul(16))
    }

    fn limit_for(&self, flags: u8) -> u64 {
        if flags & FLAG_PAYLOAD != 0 {
            self.max_payload
        } else {
            self.max_control
        }
    }
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: FrameKind,
    pub flags: u8,
    pub len: u64,
}

impl Header {
    /// Encode.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&MAGIC);
        out[4] = VERSION;
        out[5] = self.kind as u8;
        out[6] = self.flags;
        out[8..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    /// Decode and check against the limits (before anything of the body is read).
    pub fn parse(b: &[u8; HEADER_LEN], limits: &Limits) -> Result<Self, WireError> {
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&b[..4]);
        if magic != MAGIC {
            return Err(WireError::BadMagic { found: magic });
        }
        if b[4] != VERSION {
            return Err(WireError::UnsupportedVersion { found: b[4] });
        }
        let kind = FrameKind::from_u8(b[5])?;
        let flags = b[6];
        if flags & !FLAG_PAYLOAD != 0 || b[7] != 0 {
            return Err(WireError::UnknownFlags {
                found: flags | b[7],
            });
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&b[8..]);
        let len = u64::from_be_bytes(len);
        let limit = limits.limit_for(flags);
        if len > limit {
            return Err(WireError::TooLarge { len, limit });
        }
        Ok(Self { kind, flags, len })
    }
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

/// Encode a message body.
pub fn encode<T: Serialize + ?Sized>(msg: &T) -> Result<Vec<u8>, WireError> {
    codec()
        .serialize(msg)
        .map_err(|e| WireError::Encode(e.to_string()))
}

/// Decode a message body (bounded by its own length, no trailing bytes).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    codec()
        .with_limit(body.len() as u64)
        .deserialize(body)
        .map_err(|e| WireError::Decode(e.to_string()))
}

/// Await `fut` for at most `limits.timeout`.
pub async fn timed<F: Future>(
    limits: &Limits,
    op: &'static str,
    fut: F,
) -> Result<F::Output, WireError> {
    timed_for(limits.timeout, op, fut).await
}

/// Await `fut` for at most `limit`.
pub async fn timed_for<F: Future>(
    limit: Duration,
    op: &'static str,
    fut: F,
) -> Result<F::Output, WireError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| WireError::Timeout {
            op,
            ms: limit.as_millis() as u64,
        })
}

/// Write one frame and finish the stream. Bodies above `max_control` go as payload class;
/// a body above `max_send` is refused here, before anything is sent.
pub async fn write_frame(
    send: &mut quinn::SendStream,
    kind: FrameKind,
    body: &[u8],
    limits: &Limits,
) -> Result<(), WireError> {
    let len = body.len() as u64;
    let flags = if len > limits.max_control {
        FLAG_PAYLOAD
    } else {
        0
    };
    let limit = if flags == 0 {
        limits.max_control
    } else {
        limits.max_send
    };
    if len > limit {
        return Err(WireError::TooLarge { len, limit });
    }
    let header = Header { kind, flags, len }.to_bytes();
    timed(limits, "writing a frame", async {
        send.write_all(&header).await?;
        send.write_all(body).await?;
        Ok::<_, quinn::WriteError>(())
    })
    .await?
    .map_err(|e| match e {
        quinn::WriteError::Stopped(code) => WireError::Refused {
            code: code.into_inner(),
        },
        e => WireError::Stream(e.to_string()),
    })?;
    send.finish().map_err(|e| WireError::Stream(e.to_string()))
}

/// Read one frame (header checked before the body is allocated) and check the stream ends.
pub async fn read_frame(
    recv: &mut quinn::RecvStream,
    limits: &Limits,
) -> Result<(Header, Vec<u8>), WireError> {
    let (header, body, ()) = read_frame_admitted(recv, limits, |_| Ok(())).await?;
    Ok((header, body))
}

/// [`read_frame`] with a say before the body is read: `admit` sees the checked header (e.g.
/// reserves its length from the peer's budget) and may refuse the frame. One deadline,
/// `limits.timeout`, covers the whole frame.
pub async fn read_frame_admitted<A, F>(
    recv: &mut quinn::RecvStream,
    limits: &Limits,
    admit: F,
) -> Result<(Header, Vec<u8>, A), WireError>
where
    F: FnOnce(&Header) -> Result<A, WireError>,
{
    timed(limits, "reading a frame", async {
        let mut hb = [0u8; HEADER_LEN];
        read_exact(recv, &mut hb, HEADER_LEN as u64).await?;
        let header = Header::parse(&hb, limits)?;
        let admitted = admit(&header)?;
        let body = read_body(recv, header.len).await?;
        let rest = recv.read_to_end(0).await.map_err(|e| match e {
            quinn::ReadToEndError::TooLong => WireError::TrailingBytes,
            quinn::ReadToEndError::Read(e) => WireError::Stream(e.to_string()),
        })?;
        if !rest.is_empty() {
            return Err(WireError::TrailingBytes);
        }
        Ok((header, body, admitted))
    })
    .await?
}

/// Bytes reserved up front for a body; larger bodies grow as their data actually arrives, so
/// a header alone never makes the reader allocate `max_payload`.
const PREALLOC: u64 = 4 << 20;

async fn read_body(recv: &mut quinn::RecvStream, len: u64) -> Result<Vec<u8>, WireError> {
    let cap = usize::try_from(len.min(PREALLOC)).unwrap_or(0);
    let mut body = Vec::with_capacity(cap);
    let mut got = 0u64;
    while got < len {
        let want = usize::try_from(len - got).unwrap_or(usize::MAX);
        match recv.read_chunk(want, true).await {
            Ok(Some(chunk)) => {
                got += chunk.bytes.len() as u64;
                body.extend_from_slice(&chunk.bytes);
            }
            Ok(None) => return Err(WireError::Truncated { expected: len, got }),
            Err(e) => return Err(WireError::Stream(e.to_string())),
        }
    }
    Ok(body)
}

async fn read_exact(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    expected: u64,
) -> Result<(), WireError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(()),
        Err(quinn::ReadExactError::FinishedEarly(got)) => Err(WireError::Truncated {
            expected,
            got: got as u64,
        }),
        Err(quinn::ReadExactError::ReadError(e)) => Err(WireError::Stream(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_checks() {
        let l = Limits::default();
        let h = Header {
            kind: FrameKind::Request,
            flags: FLAG_PAYLOAD,
            len: 4 << 20,
        };
        assert_eq!(Header::parse(&h.to_bytes(), &l), Ok(h));

        let mut b = h.to_bytes();
        b[0] = b'X';
        assert!(matches!(
            Header::parse(&b, &l),
            Err(WireError::BadMagic { .. })
        ));
        let mut b = h.to_bytes();
        b[4] = 9;
        assert_eq!(
            Header::parse(&b, &l),
            Err(WireError::UnsupportedVersion { found: 9 })
        );
        let mut b = h.to_bytes();
        b[5] = 77;
        assert_eq!(
            Header::parse(&b, &l),
            Err(WireError::UnknownKind { found: 77 })
        );
        let mut b = h.to_bytes();
        b[6] = 0x80;
        assert!(matches!(
            Header::parse(&b, &l),
            Err(WireError::UnknownFlags { .. })
        ));

        // A control frame is held to the control limit even if it fits the payload limit.
        let big = Header {
            kind: FrameKind::Message,
            flags: 0,
            len: l.max_control + 1,
        };
        assert_eq!(
            Header::parse(&big.to_bytes(), &l),
            Err(WireError::TooLarge {
                len: l.max_control + 1,
                limit: l.max_control
            })
        );
        let huge = Header {
            kind: FrameKind::Message,
            flags: FLAG_PAYLOAD,
            len: u64::MAX,
        };
        assert!(matches!(
            Header::parse(&huge.to_bytes(), &l),
            Err(WireError::TooLarge { .. })
        ));
    }

    #[test]
    fn bodies_decode_strictly() {
        let v: (u32, String) = (7, "hi".into());
        let b = encode(&v).expect("encode");
        assert_eq!(decode::<(u32, String)>(&b).expect("decode"), v);
        let mut long = b.clone();
        long.push(0);
        assert!(matches!(
            decode::<(u32, String)>(&long),
            Err(WireError::Decode(_))
        ));
        assert!(matches!(
            decode::<(u32, String)>(&b[..5]),
            Err(WireError::Decode(_))
        ));
        // A length prefix claiming 2^60 elements is refused without allocating.
        let mut bomb = vec![0u8; 8];
        bomb.copy_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(matches!(
            decode::<Vec<u64>>(&bomb),
            Err(WireError::Decode(_))
        ));
    }
}
