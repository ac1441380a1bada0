//! Per-peer resource budgets (threat model G7, attack A10) and the transport's counters.
//!
//! Every authenticated peer (a certificate name; all connections of one name share one
//! budget on a server) has:
//!
//! - a byte budget ([`Limits::peer_budget`]) for frame bodies in flight (being read) and
//!   queued or held by the application. A stream's body length is reserved from the budget
//!   as soon as its header is parsed, before any of the body is allocated; a stream whose
//!   length does not fit is refused ([`WireError::OverBudget`]) and its stream stopped.
//! - a message budget ([`Limits::incoming_queue`]): streams being read, decoded frames queued
//!   and messages the application still holds ([`Held`]) together. When it is spent no
//!   further stream is accepted, so QUIC flow control (at most [`Limits::max_streams`] open
//!   streams per direction) pushes back on the peer.
//! - strikes: a stream refused for its size (over [`Limits::max_control`] /
//!   [`Limits::max_payload`], or over the byte budget) is a strike; at
//!   [`Limits::max_strikes`] the connection is closed ([`NetError::Abusive`]).
//!
//! A refusal is a typed error for the application (it logs it) and a count in [`NetStats`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{NetError, WireError};
use crate::wire::Limits;

/// Counters of what the transport refused (a snapshot; see [`crate::Server::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Initial packets answered with a QUIC Retry (address validation).
    pub retries: u64,
    /// Handshakes refused: too many in flight from one source address.
    pub handshakes_refused_address: u64,
    /// Handshakes refused: too many in flight on the server.
    pub handshakes_refused_busy: u64,
    /// Handshakes that failed or did not finish within `handshake_timeout`.
    pub handshakes_failed: u64,
    /// Connections refused: the peer already has `max_connections_per_peer`.
    pub connections_refused: u64,
    /// Streams refused at the header: over `max_control` / `max_payload`.
    pub frames_too_large: u64,
    /// Streams refused at the header: over the peer's byte budget.
    pub streams_over_budget: u64,
    /// Connections closed after `max_strikes` refusals.
    pub connections_closed_abusive: u64,
}

/// The live counters behind [`NetStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub retries: AtomicU64,
    pub handshakes_refused_address: AtomicU64,
    pub handshakes_refused_busy: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub connections_refused: AtomicU64,
    pub frames_too_large: AtomicU64,
    pub streams_over_budget: AtomicU64,
    pub connections_closed_abusive: AtomicU64,
}

impl Counters {
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> NetStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStats {
            retries: r(&self.retries),
            handshakes_refused_address: r(&self.handshakes_refused_address),
            handshakes_refused_busy: r(&self.handshakes_refused_busy),
            handshakes_failed: r(&self.handshakes_failed),
            connections_refused: r(&self.connections_refused),
            frames_too_large: r(&self.frames_too_large),
            streams_over_budget: r(&self.streams_over_budget),
            connections_closed_abusive: r(&self.connections_closed_abusive),
        }
    }
}

/// One peer's budget, shared by all its connections to one server.
#[derive(Debug)]
pub(crate) struct PeerBudget {
    name: String,
    limit: u64,
    max_strikes: u32,
    max_connections: usize,
    in_use: AtomicU64,
    slots: Arc<Semaphore>,
    strikes: AtomicU32,
    connections: AtomicUsize,
}

impl PeerBudget {
    fn new(name: &str, limits: &Limits) -> Self {
        Self {
            name: name.to_string(),
            limit: limits.peer_budget,
            max_strikes: limits.max_strikes.max(1),
            max_connections: limits.max_connections_per_peer.max(1),
            in_use: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(limits.incoming_queue.max(1))),
            strikes: AtomicU32::new(0),
            connections: AtomicUsize::new(0),
        }
    }

    /// A budget of its own (a client's connection to a server).
    pub fn single(name: &str, limits: &Limits) -> Arc<Self> {
        Arc::new(Self::new(name, limits))
    }

    /// Wait for a message slot (backpressure: the reader accepts no stream until one is free).
    pub async fn slot(self: &Arc<Self>) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Reserve `len` body bytes, or refuse them.
    pub fn reserve(self: &Arc<Self>, len: u64) -> Result<Bytes, WireError> {
        let mut cur = self.in_use.load(Ordering::Acquire);
        loop {
            let Some(next) = cur.checked_add(len).filter(|n| *n <= self.limit) else {
                return Err(WireError::OverBudget {
                    len,
                    in_use: cur,
                    budget: self.limit,
                });
            };
            match self
                .in_use
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Bytes {
                        budget: Arc::clone(self),
                        len,
                    })
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Count a strike; true when the peer has reached `max_strikes`.
    pub fn strike(&self) -> bool {
        self.strikes.fetch_add(1, Ordering::AcqRel) + 1 >= self.max_strikes
    }

    pub fn strikes(&self) -> u32 {
        self.strikes.load(Ordering::Acquire)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes reserved now (in flight, queued or held).
    pub fn in_use(&self) -> u64 {
        self.in_use.load(Ordering::Acquire)
    }

    /// Count a connection of this peer, or refuse it past `max_connections_per_peer`.
    pub fn connect(self: &Arc<Self>) -> Result<ConnSlot, NetError> {
        let mut cur = self.connections.load(Ordering::Acquire);
        loop {
            if cur >= self.max_connections {
                return Err(NetError::TooManyConnections {
                    name: self.name.clone(),
                    limit: self.max_connections,
                });
            }
            match self.connections.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(ConnSlot(Arc::clone(self))),
                Err(now) => cur = now,
            }
        }
    }
}

/// One of a peer's connections (released on drop).
#[derive(Debug)]
pub(crate) struct ConnSlot(Arc<PeerBudget>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A server's budgets by peer name; an entry lives as long as one of its connections.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    peers: Mutex<HashMap<String, Weak<PeerBudget>>>,
}

impl Registry {
    /// The budget of `name` (shared with its other live connections).
    pub fn budget(&self, name: &str, limits: &Limits) -> Arc<PeerBudget> {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = peers.get(name).and_then(Weak::upgrade) {
            return b;
        }
        peers.retain(|_, w| w.strong_count() > 0);
        let b = Arc::new(PeerBudget::new(name, limits));
        peers.insert(name.to_string(), Arc::downgrade(&b));
        b
    }
}

/// Body bytes reserved from a peer's budget (given back on drop).
#[derive(Debug)]
pub(crate) struct Bytes {
    budget: Arc<PeerBudget>,
    len: u64,
}

impl Drop for Bytes {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(self.len, Ordering::AcqRel);
    }
}

/// A received message's share of its peer's budget: its body bytes and one message slot.
/// The application keeps it as long as it keeps the message (e.g. in its own queue); dropping
/// it gives both back.
#[derive(Debug)]
pub struct Held {
    bytes: Option<Bytes>,
    _slot: OwnedSemaphorePermit,
}

impl Held {
    pub(crate) fn new(bytes: Option<Bytes>, slot: OwnedSemaphorePermit) -> Self {
        Self { bytes, _slot: slot }
    }

    /// Body bytes this message holds of its peer's budget.
    pub fn bytes(&self) -> u64 {
        self.bytes.as_ref().map_or(0, |b| b.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            peer_budget: 100,
            incoming_queue: 3,
            max_strikes: 2,
            max_connections_per_peer: 2,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn bytes_and_slots_come_back_when_released() {
        let b = PeerBudget::single("h1", &limits());
        let h1 = Held::new(
            Some(b.reserve(60).expect("fits")),
            b.slot().await.expect("slot"),
        );
        assert_eq!(
            b.reserve(41).expect_err("over budget"),
            WireError::OverBudget {
                len: 41,
                in_use: 60,
                budget: 100
            }
        );
        let h2 = Held::new(
            Some(b.reserve(40).expect("fits exactly")),
            b.slot().await.expect("slot"),
        );
        assert_eq!(b.in_use(), 100);
        assert_eq!(b.slots.available_permits(), 1);
        drop(h1);
        assert_eq!(b.in_use(), 40);
        assert_eq!(h2.bytes(), 40);
        drop(h2);
        assert_eq!(b.in_use(), 0);
        assert_eq!(b.slots.available_permits(), 3);
        // u64 overflow is refused, not wrapped
        let _held = b.reserve(1).expect("fits");
        assert!(b.reserve(u64::MAX).is_err());
    }

    #[test]
    fn strikes_and_connections_are_counted() {
        let b = PeerBudget::single("h1", &limits());
        assert!(!b.strike());
        assert!(b.strike());
        let c1 = b.connect().expect("first");
        let _c2 = b.connect().expect("second");
        assert!(matches!(
            b.connect(),
            Err(NetError::TooManyConnections { limit: 2, .. })
        ));
        drop(c1);
        assert!(b.connect().is_ok());
    }

    #[test]
    fn one_budget_per_name_while_connected() {
        let r = Registry::default();
        let a = r.budget("h1", &limits());
        let b = r.budget("h1", &limits());
        assert!(Arc::ptr_eq(&a, &b));
        let c = r.budget("h2", &limits());
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        let d = r.budget("h1", &limits());
        assert_eq!(
            d.strikes(),
            0,
            "a fresh budget once every connection is gone"
        );
    }
}
