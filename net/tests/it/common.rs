use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedchain_net::pki::{
    ca_init, ca_issue, keys_install, keys_new, CaInitArgs, CaIssueArgs, KeysInstallArgs,
    KeysNewArgs, RoleArg, REQUEST,
};
use fedchain_net::{Bundle, Incoming, Limits, NetError, PeerIdentity, Server};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The services define their own messages; this is a stand-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    Ping(u64),
    Text(String),
    Payload(Vec<u8>),
}

pub fn init_ca(dir: &Path, name: &str) {
    ca_init(&CaInitArgs {
        dir: dir.to_path_buf(),
        name: name.into(),
        days: 30,
    })
    .expect("ca init");
}

/// Where [`issue`] has the CA write its output for the key directory `out`.
pub fn cert_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().expect("a directory name").to_os_string();
    name.push(".certs");
    out.with_file_name(name)
}

/// The participant generates its keys in `out`, the CA certifies its request into
/// [`cert_dir`]`(out)`, the participant installs the result: `out` is the bundle.
pub fn issue(ca: &Path, name: &str, role: RoleArg, out: &Path) -> PathBuf {
    keys_new(&KeysNewArgs {
        name: name.into(),
        role,
        out: out.to_path_buf(),
    })
    .expect("keys new");
    let certs = cert_dir(out);
    ca_issue(&CaIssueArgs {
        dir: ca.to_path_buf(),
        request: out.join(REQUEST),
        out: certs.clone(),
        days: 30,
    })
    .expect("ca issue");
    keys_install(&KeysInstallArgs {
        key_dir: out.to_path_buf(),
        cert_dir: certs,
    })
    .expect("keys install");
    out.to_path_buf()
}

/// A consortium: CA, a coordinator, two hospitals, a third hospital (to revoke), and an
/// intruder named like a hospital but issued by another CA.
pub struct Consortium {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub coordinator: PathBuf,
    pub h1: PathBuf,
    pub h2: PathBuf,
    pub h3: PathBuf,
    pub intruder: PathBuf,
}

impl Consortium {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca");
        init_ca(&ca, "test-consortium");
        let b = |n: &str, r| issue(&ca, n, r, &dir.path().join(n));
        let coordinator = b("coordinator", RoleArg::Aggregator);
        let h1 = b("h1", RoleArg::Hospital);
        let h2 = b("h2", RoleArg::Hospital);
        let h3 = b("h3", RoleArg::Hospital);
        let other = dir.path().join("other-ca");
        init_ca(&other, "other-consortium");
        let intruder = issue(
            &other,
            "h1",
            RoleArg::Hospital,
            &dir.path().join("intruder"),
        );
        Self {
            dir,
            ca,
            coordinator,
            h1,
            h2,
            h3,
            intruder,
        }
    }

    pub fn bundle(&self, p: &Path) -> Bundle {
        Bundle::load(p).expect("load bundle")
    }
}

pub fn limits() -> Limits {
    let (max_control, max_payload) = (64 << 10, 8 << 20);
    Limits {
        max_control,
        max_payload,
        max_send: max_payload,
        timeout: Duration::from_secs(5),
        incoming_queue: 16,
        peer_budget: Limits::default_budget(max_control, max_payload),
        max_streams: 16,
        ..Limits::default()
    }
}

/// What the echo server saw.
#[derive(Debug)]
pub enum Event {
    Connected(PeerIdentity),
    Refused(NetError),
    StreamError(String, NetError),
    Message(String, Msg),
}

/// A server that answers every request with the request itself and reports what it saw.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub events: mpsc::UnboundedReceiver<Event>,
}

impl EchoServer {
    pub fn start(bundle: &Bundle, limits: Limits) -> Self {
        let mut server =
            Server::bind("127.0.0.1:0".parse().expect("addr"), bundle, limits).expect("bind");
        let addr = server.local_addr().expect("local addr");
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match server.accept().await {
                    Ok(peer) => {
                        let _ = tx.send(Event::Connected(peer.identity().clone()));
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let name = peer.identity().name.clone();
                            loop {
                                match peer.next_incoming::<Msg>().await {
                                    Ok(Incoming::Request { request, responder }) => {
                                        match &request {
                                            Msg::Text(t) if t == "drop" => drop(responder),
                                            Msg::Text(t) if t == "fail" => {
                                                let _ = responder.fail("refused on purpose").await;
                                            }
                                            _ => {
                                                let _ = responder.respond(&request).await;
                                            }
                                        }
                                    }
                                    Ok(Incoming::Message(m)) => {
                                        let _ = tx.send(Event::Message(name.clone(), m));
                                    }
                                    Err(NetError::Connection(_)) => break,
                                    Err(e) => {
                                        let _ = tx.send(Event::StreamError(name.clone(), e));
                                    }
                                }
                            }
                        });
                    }
                    Err(NetError::Closed) => break,
                    Err(e) => {
                        let _ = tx.send(Event::Refused(e));
                    }
                }
            }
        });
        Self { addr, events }
    }

    /// The next event that is not a successful connection.
    pub async fn next_problem(&mut self) -> Event {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), self.events.recv())
                .await
                .expect("an event within 10 s")
                .expect("server running");
            if !matches!(ev, Event::Connected(_)) {
                return ev;
            }
        }
    }
}
