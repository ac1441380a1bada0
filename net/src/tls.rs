//! rustls configurations for mutual TLS 1.3 inside QUIC, on the ring provider.
//!
//! Both sides trust only the consortium CA of their bundle and check the bundle's CRLs during
//! the handshake (rustls' webpki verifiers): a peer without a certificate, with one from
//! another CA, or with a revoked one never gets past the handshake.

use std::collections::BTreeMap;
use std::sync::Arc;

use fedchain_ledger::Address;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::error::{NetError, Result};
use crate::pki::Bundle;
use crate::wire::Limits;

/// ALPN protocol id of the fedchain wire protocol.
pub const ALPN: &[u8] = b"fedchain/1";

fn tls_err(e: impl std::fmt::Display) -> NetError {
    NetError::Tls(e.to_string())
}

/// The crypto provider used everywhere (ring: no system packages needed to build).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Roots: the consortium CA only.
pub fn roots(bundle: &Bundle) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    roots.add(bundle.ca_cert.clone()).map_err(tls_err)?;
    Ok(Arc::new(roots))
}

/// Verify a participant's certificate against `ca_cert` (and `crls`) as a server verifies a
/// client during the handshake (chain, validity, client EKU, revocation). `keys install` and
/// `keygen` use it on certificates that arrived over untrusted channels.
pub fn verify_certificate(
    ca_cert: &CertificateDer<'static>,
    crls: &[CertificateRevocationListDer<'static>],
    cert: &CertificateDer<'_>,
) -> std::result::Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.clone()).map_err(|e| e.to_string())?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls.iter().cloned())
        .build()
        .map_err(|e| e.to_string())?;
    verifier
        .verify_client_cert(cert, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Participants whose certificate a server refused as revoked (their identity read from the
/// refused certificate, which is the CA's and on its CRL, so whoever presents it, the
/// participant it names is revoked). Shared between a server's handshakes and its owner.
pub type Revoked = Arc<std::sync::Mutex<BTreeMap<Address, String>>>;

/// The webpki client verifier, recording the participants it refuses as revoked.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Revoked,
}

impl ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let r = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)) = &r {
            if let Ok(id) = crate::pki::identity_from_cert(end_entity) {
                if let Ok(mut set) = self.revoked.lock() {
                    set.insert(id.address(), id.name);
                }
            }
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Server side: requires a client certificate from the CA that is not on the CRL.
pub fn server_config(bundle: &Bundle) -> Result<rustls::ServerConfig> {
    server_config_recording(bundle, Revoked::default())
}

/// [`server_config`], recording in `revoked` every participant refused for a revoked
/// certificate.
pub fn server_config_recording(bundle: &Bundle, revoked: Revoked) -> Result<rustls::ServerConfig> {
    let inner = WebPkiClientVerifier::builder_with_provider(roots(bundle)?, provider())
        .with_crls(bundle.crls.iter().cloned())
        .build()
        .map_err(tls_err)?;
    let verifier = Arc::new(RecordingVerifier { inner, revoked });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![bundle.cert.clone()], bundle.tls_key())
        .map_err(tls_err)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// Client side: presents the bundle's certificate, verifies the server against the CA and CRL.
pub fn client_config(bundle: &Bundle) -> Result<rustls::ClientConfig> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(bundle)?, provider())
        .with_crls(bundle.crls.iter().cloned())
        .build()
        .map_err(tls_err)?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(vec![bundle.cert.clone()], bundle.tls_key())
        .map_err(tls_err)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Ok(cfg)
}

/// QUIC transport parameters from the limits. Windows are sized so a multi-MiB payload
/// streams at loopback speed, and no larger than the peer's byte budget (at least 1 MiB, at
/// most 64 MiB per connection, 16 MiB per stream): what quinn buffers for a connection before
/// the reader takes it is bounded by the connection window. Stream counts bound what a peer
/// may have in flight.
pub fn transport_config(limits: &Limits) -> Result<Arc<quinn::TransportConfig>> {
    let mut t = quinn::TransportConfig::default();
    let streams = quinn::VarInt::from_u32(limits.max_streams);
    t.max_concurrent_bidi_streams(streams);
    t.max_concurrent_uni_streams(streams);
    let window = limits.peer_budget.clamp(1 << 20, 64 << 20);
    let window32 = u32::try_from(window).unwrap_or(64 << 20);
    t.stream_receive_window(quinn::VarInt::from_u32(window32.min(16 << 20)));
    t.receive_window(quinn::VarInt::from_u32(window32));
    t.send_window(64 << 20);
    // a dead peer is noticed after `idle_timeout` (keep-alives keep a live one open); at
    // least twice the keep-alive interval so one lost PING does not close a live connection
    let idle = limits
        .idle_timeout
        .max(limits.keep_alive.saturating_mul(2))
        .max(std::time::Duration::from_millis(200));
    let idle = quinn::IdleTimeout::try_from(idle).map_err(tls_err)?;
    t.max_idle_timeout(Some(idle));
    // MTU discovery probes (with DF set) up to the configured payload size.
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(limits.max_udp_payload.max(1200));
    t.mtu_discovery_config(Some(mtu));
    t.keep_alive_interval(Some(
        limits.keep_alive.max(std::time::Duration::from_millis(100)),
    ));
    Ok(Arc::new(t))
}

/// Endpoint settings shared by servers and clients.
pub fn endpoint_config(limits: &Limits) -> Result<quinn::EndpointConfig> {
    let mut cfg = quinn::EndpointConfig::default();
    cfg.max_udp_payload_size(limits.max_udp_payload.max(1200))
        .map_err(tls_err)?;
    Ok(cfg)
}

/// A quinn endpoint on `addr` (server when `server` is given).
pub fn endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
    limits: &Limits,
) -> Result<quinn::Endpoint> {
    let io = |source| NetError::Io {
        path: addr.to_string().into(),
        source,
    };
    let socket = std::net::UdpSocket::bind(addr).map_err(io)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| NetError::Tls("no async runtime (call from inside tokio)".into()))?;
    quinn::Endpoint::new(endpoint_config(limits)?, server, socket, runtime).map_err(io)
}

/// quinn server configuration for a bundle. Retry tokens (address validation) live as long
/// as a handshake may take; connection attempts waiting for the accept loop are few and
/// small (the loop hands each to a task at once).
pub fn quic_server_config(bundle: &Bundle, limits: &Limits) -> Result<quinn::ServerConfig> {
    quic_server_config_recording(bundle, limits, Revoked::default())
}

/// [`quic_server_config`] recording revoked participants ([`server_config_recording`]).
pub fn quic_server_config_recording(
    bundle: &Bundle,
    limits: &Limits,
    revoked: Revoked,
) -> Result<quinn::ServerConfig> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_config_recording(
        bundle, revoked,
    )?)
    .map_err(tls_err)?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(transport_config(limits)?);
    cfg.retry_token_lifetime(
        limits
            .handshake_timeout
            .max(std::time::Duration::from_secs(2)),
    );
    let pending = limits.max_handshakes.saturating_mul(4).max(64);
    cfg.max_incoming(pending);
    cfg.incoming_buffer_size(64 << 10);
    cfg.incoming_buffer_size_total(
        u64::try_from(pending)
            .unwrap_or(u64::MAX)
            .saturating_mul(16 << 10),
    );
    Ok(cfg)
}

/// quinn client configuration for a bundle.
pub fn quic_client_config(bundle: &Bundle, limits: &Limits) -> Result<quinn::ClientConfig> {
    quic_client_config_from(client_config(bundle)?, limits)
}

/// quinn client configuration from any rustls client config (tests use it to play peers
/// without a valid certificate).
pub fn quic_client_config_from(
    tls: rustls::ClientConfig,
    limits: &Limits,
) -> Result<quinn::ClientConfig> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(tls_err)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(transport_config(limits)?);
    Ok(cfg)
}
