//! Building blocks: echo backends that count connections, an in-process gateway pair with
//! tables the test can change, a raw HTTP/2 CONNECT client, and polling helpers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mc::gateway::config::{Listener, Peer, ServiceEntry, Tables};
use mc::gateway::{GatewayName, MaterialSource, Running, Settings, TableFeed};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::pki::{Ca, Pki};

pub const WEST_ID: &str = "mc-gateway.mc-system.west.cluster.local";
pub const BACKEND: &str = "backend.default.svc.cluster.local:8888";
pub const PRIVATE: &str = "private.default.svc.cluster.local:80";

pub use crate::support::{eventually, init};

pub struct Echo {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
}

impl Echo {
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A TCP echo server on 127.0.0.1 that counts the connections it accepted.
pub async fn echo() -> Echo {
    echo_at("127.0.0.1:0".parse().unwrap()).await
}

/// An echo server on a given address (e.g. a simulated Service's ClusterIP and port).
pub async fn echo_at(addr: SocketAddr) -> Echo {
    let l = mc::runtime::listen(addr).unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Echo { addr, accepted }
}

/// `n` distinct ports free on `ip`, all chosen while held so that they cannot repeat. On an IP
/// of its own a test cannot collide with the ephemeral ports other tests' clients use on
/// 127.0.0.1 (which is what a port from [`free_port`] can, between picking and binding).
pub fn free_ports_on(ip: std::net::Ipv4Addr, n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind((ip, 0)).unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `payload`, half-closes, returns everything read back.
pub async fn roundtrip(port: u16, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    roundtrip_at(std::net::SocketAddr::from(([127, 0, 0, 1], port)), payload).await
}

/// [`roundtrip`] to any address.
pub async fn roundtrip_at(addr: std::net::SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let stage = |what: &'static str| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    let mut s = TcpStream::connect(addr).await.map_err(stage("connect"))?;
    s.write_all(payload).await.map_err(stage("write"))?;
    s.shutdown().await.map_err(stage("shutdown"))?;
    let mut out = Vec::with_capacity(payload.len());
    s.read_to_end(&mut out).await.map_err(stage("read"))?;
    Ok(out)
}

/// Whether an echo through `port` currently works.
pub async fn echoes(port: u16) -> bool {
    echoes_at(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// Waits until the east listener on `port` echoes, then opens one tunnel through it and proves it
/// carries `greeting` both ways; the tunnel stays open for the caller.
pub async fn open_tunnel(port: u16, greeting: &[u8]) -> TcpStream {
    eventually("a first echo", super::LIMIT, || async {
        echoes(port).await.then_some(())
    })
    .await;
    let mut open = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = vec![0u8; greeting.len()];
    open.write_all(greeting).await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, greeting);
    open
}

/// [`echoes`] through a listener on any address.
pub async fn echoes_at(addr: std::net::SocketAddr) -> bool {
    let payload = b"ping through the gateways";
    matches!(
        tokio::time::timeout(Duration::from_secs(10), roundtrip_at(addr, payload)).await,
        Ok(Ok(ref v)) if v == payload
    )
}

pub fn name(cluster: &str) -> GatewayName {
    GatewayName {
        cluster: cluster.into(),
        trust_domain: "cluster.local".into(),
        namespace: "mc-system".into(),
    }
}

pub fn material_source(m: mc::gateway::IssuerMaterial) -> MaterialSource {
    Arc::new(move || {
        let m = m.clone();
        Box::pin(async move { Ok(m) })
    })
}

pub fn settings() -> Settings {
    Settings {
        inbound_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        outbound_ip: "127.0.0.1".parse().unwrap(),
        ..Settings::default()
    }
}

/// A gateway plus the handle to change its tables.
pub struct Gw {
    pub running: Running,
    pub tables: watch::Sender<Arc<Tables>>,
    _synced: watch::Sender<bool>,
}

impl Gw {
    pub fn update(&self, f: impl FnOnce(&mut Tables)) {
        self.tables.send_modify(|t| {
            let mut next = (**t).clone();
            f(&mut next);
            *t = Arc::new(next);
        });
    }

    pub fn metric(&self, line_prefix: &str) -> f64 {
        metric(&self.running.metrics.encode(), line_prefix)
    }
}

/// Value of the first exposition line starting with `line_prefix` (0 if absent).
pub fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub async fn start_gw(
    settings: Settings,
    cluster: &str,
    material: mc::gateway::IssuerMaterial,
    tables: Tables,
) -> Gw {
    let (tables_tx, tables_rx) = watch::channel(Arc::new(tables));
    let (synced_tx, synced) = watch::channel(true);
    let running = mc::gateway::start(
        settings,
        name(cluster),
        material_source(material),
        TableFeed {
            tables: tables_rx,
            synced,
        },
    )
    .await
    .unwrap();
    Gw {
        running,
        tables: tables_tx,
        _synced: synced_tx,
    }
}

pub fn export(exported: bool, port: u16, backend: SocketAddr) -> ServiceEntry {
    ServiceEntry {
        exported,
        backends: HashMap::from([(port, backend)]),
    }
}

pub fn west_tables(backend: &Echo, private: &Echo) -> Tables {
    let mut t = Tables::default();
    t.apply_service("default", "backend", export(true, 8888, backend.addr));
    t.apply_service("default", "private", export(false, 80, private.addr));
    t
}

pub fn east_tables(port: u16, west: SocketAddr, identity: &str, authority: &str) -> Tables {
    let mut t = Tables::default();
    t.listeners.insert(
        port,
        Listener {
            peer: "west".into(),
            authority: authority.into(),
        },
    );
    t.peers.insert(
        "west".into(),
        Peer {
            address: west.to_string(),
            identity: identity.into(),
        },
    );
    t
}

pub struct Pair {
    pub pki: Pki,
    pub west: Gw,
    pub east: Gw,
    pub backend: Echo,
    pub private: Echo,
    /// East's outbound port for backend.default (west).
    pub port: u16,
}

pub async fn pair_with(west_settings: Settings, east_settings: Settings) -> Pair {
    init();
    let pki = Pki::new();
    let backend = echo().await;
    let private = echo().await;
    let west = start_gw(
        west_settings,
        "west",
        pki.material(&pki.west),
        west_tables(&backend, &private),
    )
    .await;
    let port = free_port();
    let east = start_gw(
        east_settings,
        "east",
        pki.material(&pki.east),
        east_tables(port, west.running.inbound_addr, WEST_ID, BACKEND),
    )
    .await;
    Pair {
        pki,
        west,
        east,
        backend,
        private,
        port,
    }
}

pub async fn pair() -> Pair {
    pair_with(settings(), settings()).await
}

/// A TLS client config trusting `anchor_pem`, presenting `cert` (if any).
pub fn client_config(
    anchor_pem: &str,
    cert: Option<Arc<CertifiedKey>>,
) -> Arc<rustls::ClientConfig> {
    let roots = mc::gateway::identity::root_store(anchor_pem).unwrap();
    let b = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
        .with_root_certificates(roots);
    let mut c = match cert {
        Some(k) => b.with_client_cert_resolver(mc::gateway::tls::CertStore::new(k)),
        None => b.with_no_client_auth(),
    };
    c.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(c)
}

/// Opens an HTTP/2 connection to a gateway's inbound side and sends one CONNECT.
/// Returns the status and the `mc-refusal` header, or the error text if TLS/HTTP/2 failed.
pub async fn connect_once(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    authority: &str,
) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(WEST_ID.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
        .await
        .map_err(|e| format!("h2: {e}"))?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(authority)
        .body(Empty::new())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| format!("request: {e}"))?;
    let reason = res
        .headers()
        .get(mc::gateway::REFUSAL_HEADER)
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    Ok((res.status().as_u16(), reason))
}

/// A valid east gateway identity, minted the way the gateway mints its own.
pub fn east_identity(pki: &Pki) -> Arc<CertifiedKey> {
    mc::gateway::identity::mint(
        &name("east"),
        &pki.material(&pki.east),
        Duration::from_secs(3600),
        std::time::SystemTime::now(),
    )
    .unwrap()
    .certified
}

pub fn issuer_leaf(issuer: &Ca, dns: &[&str], uris: &[&str]) -> Arc<CertifiedKey> {
    let (from, to) = super::pki::valid_now();
    super::pki::leaf(issuer, dns, uris, from, to)
}
