//! Building blocks: echo backends that count connections, an in-process gateway pair with
//! tables the test can change, `mc gateway` child processes that report the addresses they
//! bound, a raw HTTP/2 CONNECT client, and polling helpers.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
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

/// East's outbound port for backend.default (west) in the in-process pairs: fixed, since it is a
/// key of east's tables, and on a [`Loopback`] of the test's own, so that it is never taken.
pub const OUTBOUND_PORT: u16 = 4140;

pub use crate::support::{DeadPort, KillOnDrop, Loopback, eventually, init};

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

/// Sends `payload`, half-closes, returns everything read back.
pub async fn roundtrip(addr: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
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

/// Waits until the east listener on `addr` echoes, then opens one tunnel through it and proves it
/// carries `greeting` both ways; the tunnel stays open for the caller.
pub async fn open_tunnel(addr: SocketAddr, greeting: &[u8]) -> TcpStream {
    eventually("a first echo", super::LIMIT, || async {
        echoes(addr).await.then_some(())
    })
    .await;
    let mut open = TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; greeting.len()];
    open.write_all(greeting).await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, greeting);
    open
}

/// Whether an echo through a listener on `addr` currently works.
pub async fn echoes(addr: SocketAddr) -> bool {
    let payload = b"ping through the gateways";
    matches!(
        tokio::time::timeout(Duration::from_secs(10), roundtrip(addr, payload)).await,
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

/// [`settings`] with the outbound listeners on `lo` (fixed ports there are the test's own).
pub fn settings_on(lo: &Loopback) -> Settings {
    Settings {
        outbound_ip: lo.ip.into(),
        ..settings()
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
    /// East's outbound port for backend.default (west), the key of its listener in the tables.
    pub port: u16,
    /// Where that listener is: east's outbound IP (the pair's own loopback address) and `port`.
    pub outbound: SocketAddr,
    _loopback: Loopback,
}

/// A west and an east gateway, east linked to west with one listener for backend.default;
/// east's outbound IP is a [`Loopback`] of the pair's own (whatever `east_settings` says).
pub async fn pair_with(west_settings: Settings, east_settings: Settings) -> Pair {
    init();
    let loopback = Loopback::lease();
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
    let port = OUTBOUND_PORT;
    let east = start_gw(
        Settings {
            outbound_ip: loopback.ip.into(),
            ..east_settings
        },
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
        outbound: loopback.addr(port),
        _loopback: loopback,
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

/// An `mc gateway` child process and the addresses it bound.
pub struct GatewayProcess {
    pub child: KillOnDrop,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
}

/// Spawns `cmd` (an `mc gateway` command line, whose `--inbound-addr` and `--admin-addr` may
/// name port 0) with JSON logs on a pipe, and reads the addresses the gateway bound from its
/// `gateway started` line. The pipe is drained until the child exits, so that the child never
/// blocks on it; with `MC_LOG` set (the child inherits it) its lines are copied to stderr.
pub fn spawn_gateway(cmd: &mut Command) -> GatewayProcess {
    cmd.args(["--log-format", "json"]).stderr(Stdio::piped());
    let mut child = crate::support::spawn(cmd);
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let copy = std::env::var_os("MC_LOG").is_some();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if copy {
                eprintln!("{line}");
            }
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + super::LIMIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            panic!(
                "mc gateway logged no \"gateway started\" line within {:?} (exit: {:?}); its log:\n{}",
                super::LIMIT,
                child.try_wait(),
                seen.join("\n")
            );
        };
        if let Some((inbound, admin)) = started(&line) {
            return GatewayProcess {
                child,
                inbound,
                admin,
            };
        }
        seen.push(line);
    }
}

/// The inbound and admin addresses of a JSON `gateway started` log line.
fn started(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &v["fields"];
    if fields["message"] != "gateway started" {
        return None;
    }
    let addr = |key: &str| fields[key].as_str()?.parse().ok();
    Some((addr("inbound_addr")?, addr("admin_addr")?))
}
