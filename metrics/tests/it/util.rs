//! Shared helpers: a realistic set of recorded events, a plain HTTP/1.0 GET over a tokio
//! TcpStream, and locating the Prometheus binaries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedchain_metrics::labels::{
    PenaltyReason, Phase, RejectReason, ShareOutcome, WorkerSubmitOutcome,
};
use fedchain_metrics::{CoordinatorMetrics, WorkerMetrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A coordinator after two committed rounds of a 4-hospital job (one equivocator, one late
/// submission, one bad share).
pub fn coordinator_after_two_rounds() -> CoordinatorMetrics {
    let m = CoordinatorMetrics::new().expect("metrics");
    for _ in 0..4 {
        m.hospital_connected();
    }
    for round in 0..2u32 {
        m.round_opened(round);
        m.observe_phase(Phase::Train, Duration::from_millis(1500));
        m.observe_phase(Phase::Encrypt, Duration::from_millis(300));
        for _ in 0..4 {
            m.submission_accepted();
            m.bytes_received(1 << 20);
        }
        m.observe_phase(Phase::Aggregate, Duration::from_millis(40));
        m.ciphertexts_aggregated(4 * 89);
        for _ in 0..3 {
            m.decryption_share(ShareOutcome::Accepted);
        }
        m.observe_phase(Phase::Decrypt, Duration::from_millis(700));
        m.observe_phase(Phase::Combine, Duration::from_millis(20));
        m.observe_phase(Phase::Commit, Duration::from_millis(12));
        m.round_committed();
    }
    m.submission_rejected(RejectReason::Late);
    m.submission_rejected(RejectReason::Duplicate);
    m.submission_penalized(PenaltyReason::Equivocation);
    m.penalty(PenaltyReason::Equivocation);
    m.decryption_share(ShareOutcome::Penalized);
    m.penalty(PenaltyReason::InvalidShare);
    m.hospital_disconnected();
    m.set_ledger_height(42);
    m.set_model_accuracy(0.9375).expect("a ratio");
    m.set_token_balance("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", 1_250);
    m.set_token_balance("hospital-b", 980);
    m
}

/// A worker that trained two rounds, lost its connection once.
pub fn worker_after_two_rounds() -> WorkerMetrics {
    let m = WorkerMetrics::new().expect("metrics");
    m.set_connected(true);
    for round in 0..2u32 {
        m.set_round(round);
        m.observe_training(Duration::from_millis(1500));
        m.observe_encryption(Duration::from_millis(300));
        m.bytes_sent(1 << 20);
        m.submission(WorkerSubmitOutcome::Accepted);
        m.decryption_share_produced();
    }
    m.set_connected(false);
    m.submission(WorkerSubmitOutcome::Failed);
    m.reconnected();
    m
}

/// A response: status code, headers (lower-cased names) and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GET `path_and_query` from `addr` with HTTP/1.0 (no chunked encoding, the server closes).
pub async fn http_get(addr: SocketAddr, path_and_query: &str) -> std::io::Result<HttpResponse> {
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect"))??;
    let request = format!("GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read"))??;
    let text = String::from_utf8(raw)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no header end"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, status_line.to_string())
        })?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_string(),
    })
}

/// The path of `name` if it is an executable on PATH (or in /usr/bin).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The workspace root (deploy/ lives there).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("metrics/ has a parent")
        .to_path_buf()
}

/// A free loopback port (bound then released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
