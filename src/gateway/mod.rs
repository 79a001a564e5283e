//! `mc gateway`: the cross-cluster data plane. One process per cluster with two sides.
//!
//! ```text
//!            east cluster                                   west cluster
//!  client ──TCP──▶ outbound listener :10001          inbound :4143 (mTLS, h2)
//!                   │ (port -> peer, authority)        │ verify: chains to anchor + gateway SAN
//!                   ▼                                  ▼
//!             peer pool "west" ═══ one mTLS HTTP/2 ═══▶ CONNECT backend.default.svc.cluster.local:8888
//!             (reconnects with backoff)  connection    │ route: exported now? ──no──▶ 403/404/400
//!                                                      ▼ yes
//!                                                   TCP dial ClusterIP:8888 ──▶ backend pod
//! ```
//!
//! Layers, inside out: `config` (routing tables, pure), `identity` (minting, pure), `tls`
//! (rustls configs), `tunnel` (byte splicing); the I/O modules `inbound` and `outbound` serve
//! sockets through the shared runtime's accept loop, which also provides the admin server; `source_static` and `source_kube` produce the tables. Tables are published as
//! immutable `Arc<Tables>` snapshots through a `tokio::sync::watch`, read once per stream.

pub mod admission;
pub mod batch;
pub mod budget;
pub mod config;
#[cfg(test)]
mod config_props;
pub mod identity;
pub mod inbound;
pub mod loglimit;
pub mod metrics;
pub mod outbound;
pub mod pending;
pub mod source_kube;
pub mod source_static;
pub mod split;
pub mod tls;
pub mod tunnel;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use config::Tables;
pub use identity::{GatewayName, IssuerMaterial};
pub use metrics::Metrics;

use crate::runtime::admin::{AdminServer, Gate, Readiness};
use crate::runtime::backoff::Backoff;

/// HTTP/2 flow-control windows: large enough that one stream can fill a fast link, while the
/// connection window bounds what a peer can make us buffer across all its streams.
pub const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
pub const MAX_FRAME: u32 = 64 * 1024;
/// A CONNECT request carries a handful of headers; anything large is abuse.
pub const MAX_HEADER_LIST: u32 = 16 * 1024;
/// Dialing a local service should take milliseconds; a stuck SYN must not hold a stream forever.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Response header naming why a CONNECT was refused (the metric label).
pub const REFUSAL_HEADER: &str = "mc-refusal";

/// Knobs of a running gateway (flags of `mc gateway`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub inbound_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Address the outbound listeners bind (their ports come from the tables).
    pub outbound_ip: IpAddr,
    /// Domain of this cluster's Service names in inbound `:authority`s.
    pub cluster_domain: String,
    pub cert_lifetime: Duration,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// Concurrent tunnels per peer identity (inbound) and per peer (outbound). The default fits
    /// the default 256 MiB container limit (see `budget`).
    pub max_streams_per_peer: u32,
    /// How long an outbound client may wait for a stream slot to its peer before it is reset.
    pub queue_timeout: Duration,
    /// Inbound TLS handshakes in flight at once. Bounds what unauthenticated clients can make the
    /// gateway hold (memory, descriptors); when full, see `pending` for who makes room.
    pub max_pending_handshakes: usize,
    /// How often the anchor bundle is re-read (a changed bundle applies without a restart).
    pub anchor_poll: Duration,
}

/// Defaults of `mc gateway`'s flags and of [`Settings::default`]: the one place they are
/// written (clap shows them in `--help`; a unit test checks that they parse).
pub mod defaults {
    pub const INBOUND_ADDR: &str = "0.0.0.0:4143";
    pub const ADMIN_ADDR: &str = "0.0.0.0:4191";
    pub const OUTBOUND_IP: &str = "0.0.0.0";
    pub const CLUSTER_DOMAIN: &str = "cluster.local";
    pub const CERT_LIFETIME: &str = "24h";
    pub const HANDSHAKE_TIMEOUT: &str = "10s";
    pub const IDLE_TIMEOUT: &str = "1h";
    pub const DRAIN_TIMEOUT: &str = "30s";
    /// Derived from the memory budget in `budget` (docs/performance.md has the arithmetic).
    pub const MAX_STREAMS_PER_PEER: u32 = 10_000;
    pub const QUEUE_TIMEOUT: &str = "5s";
    pub const MAX_PENDING_HANDSHAKES: usize = 256;
}

impl Default for Settings {
    fn default() -> Self {
        let duration = |s: &str| humantime::parse_duration(s).unwrap_or(Duration::from_secs(10));
        Self {
            inbound_addr: defaults::INBOUND_ADDR
                .parse()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], crate::k8s::GATEWAY_PORT))),
            admin_addr: defaults::ADMIN_ADDR.parse().unwrap_or(SocketAddr::from((
                [0, 0, 0, 0],
                crate::k8s::GATEWAY_PROBE_PORT,
            ))),
            outbound_ip: defaults::OUTBOUND_IP
                .parse()
                .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            cluster_domain: defaults::CLUSTER_DOMAIN.into(),
            cert_lifetime: duration(defaults::CERT_LIFETIME),
            handshake_timeout: duration(defaults::HANDSHAKE_TIMEOUT),
            idle_timeout: duration(defaults::IDLE_TIMEOUT),
            max_streams_per_peer: defaults::MAX_STREAMS_PER_PEER,
            queue_timeout: duration(defaults::QUEUE_TIMEOUT),
            // 256 x at most ~80 KiB each (see `budget`); a peer gets through a full table anyway.
            max_pending_handshakes: defaults::MAX_PENDING_HANDSHAKES,
            anchor_poll: Duration::from_secs(5),
        }
    }
}

/// Fetches the issuer material; called at start and before every rotation, so that a rotated
/// issuer is picked up without a restart.
pub type MaterialSource =
    Arc<dyn Fn() -> BoxFuture<'static, Result<IssuerMaterial, MaterialError>> + Send + Sync>;

/// Why the issuer material could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("cannot read {object}")]
    Read {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("{object} has no PEM key {key}; re-run `mc install`")]
    MissingKey { object: String, key: &'static str },
    #[error(transparent)]
    Config(#[from] crate::k8s::McConfigError),
    #[error("cannot read {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where the routing tables come from: a snapshot channel and whether the source is synced.
pub struct TableFeed {
    pub tables: watch::Receiver<Arc<Tables>>,
    pub synced: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr} ({what})")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the issuer material")]
    Material(#[source] MaterialError),
    #[error("cannot mint the gateway certificate")]
    Mint(#[source] identity::IdentityError),
    #[error("the trust anchors are unusable")]
    Anchors(#[source] identity::IdentityError),
    #[error("cannot build the TLS configuration")]
    Tls(#[source] tls::TlsError),
}

/// State shared by every task of one gateway.
pub(crate) struct Shared {
    pub settings: Settings,
    pub name: GatewayName,
    pub metrics: Arc<Metrics>,
    pub tables: watch::Receiver<Arc<Tables>>,
    /// Cancelled on shutdown: stop accepting.
    pub stop: CancellationToken,
    /// Cancelled when draining is over (or on kill): drop every open tunnel.
    pub hard: CancellationToken,
    /// Each open connection/tunnel holds a receiver; draining waits for all to be dropped.
    pub drain: watch::Sender<()>,
    /// Inbound connections and stream budgets per peer identity.
    pub inbound_peers: inbound::PeerRegistry,
    /// Rate limits of the log lines clients and peers can trigger.
    pub logs: Arc<loglimit::LogLimit>,
    /// TLS configurations for new connections; replaced when the anchor bundle changes.
    pub server_tls: watch::Receiver<Arc<rustls::ServerConfig>>,
    pub client_tls: watch::Receiver<Arc<rustls::ClientConfig>>,
    /// Bumped when an anchor is removed: every outbound connection re-verifies its peer.
    pub trust_epoch: watch::Receiver<u64>,
}

impl Shared {
    pub fn drain_guard(&self) -> watch::Receiver<()> {
        self.drain.subscribe()
    }
}

/// A running gateway. Dropping it does not stop it; call [`Running::shutdown`] or [`Running::kill`].
pub struct Running {
    pub inbound_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    /// The identity store; exposed so tests and the admin can see the current leaf.
    pub certs: Arc<tls::CertStore>,
    shared: Arc<Shared>,
}

impl Running {
    /// Stop accepting, let open tunnels finish for up to `drain`, then drop what is left.
    pub async fn shutdown(self, drain: Duration) {
        self.shared.stop.cancel();
        let drain_tx = &self.shared.drain;
        if tokio::time::timeout(drain, drain_tx.closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = drain_tx.receiver_count(),
                "drain timeout: closing the remaining connections"
            );
        }
        self.shared.hard.cancel();
    }

    /// Drop everything now, as a crash would (open connections are reset, not drained).
    pub fn kill(self) {
        self.shared.stop.cancel();
        self.shared.hard.cancel();
    }
}

/// Starts a gateway: mints the first leaf (retrying while the material is unavailable), binds
/// the admin and inbound addresses, and starts the outbound manager and the rotation task.
pub async fn start(
    settings: Settings,
    name: GatewayName,
    material: MaterialSource,
    feed: TableFeed,
) -> Result<Running, GatewayError> {
    let metrics = Arc::new(Metrics::new());
    let stop = CancellationToken::new();
    let hard = CancellationToken::new();

    let readiness = Readiness::new();
    let identity_ready = readiness.gate("identity (waiting for the issuer material)");
    let tables_ready = readiness.gate("routing tables (waiting for the first list of the watches)");
    follow_gate(feed.synced.clone(), tables_ready);
    let encoder_metrics = metrics.clone();
    let admin = AdminServer::start(
        settings.admin_addr,
        readiness,
        Arc::new(move || encoder_metrics.encode()),
        hard.clone(),
    )
    .map_err(|source| GatewayError::Bind {
        addr: settings.admin_addr,
        what: "admin",
        source,
    })?;
    let admin_addr = admin.addr;

    let first = first_material(&material, &hard).await?;
    let roots = Arc::new(identity::root_store(&first.anchors_pem).map_err(GatewayError::Anchors)?);
    let leaf = identity::mint(&name, &first, settings.cert_lifetime, SystemTime::now())
        .map_err(GatewayError::Mint)?;
    tracing::info!(
        identity = %name.dns(),
        serial = %leaf.serial_hex,
        expires = %humantime::format_rfc3339_seconds(leaf.not_after),
        "minted the gateway certificate"
    );
    metrics.cert_expiry.set(unix_secs(leaf.not_after));
    let certs = tls::CertStore::new(leaf.certified.clone());
    let logs = Arc::new(loglimit::LogLimit::default());
    let server_tls =
        tls::server_config(roots.clone(), certs.clone(), &name.namespace, logs.clone())
            .map_err(GatewayError::Tls)?;
    let client_tls = tls::client_config(roots, certs.clone()).map_err(GatewayError::Tls)?;
    identity_ready.open();

    let inbound_listener = bind(settings.inbound_addr, "inbound").await?;
    let inbound_addr = local_addr(&inbound_listener, settings.inbound_addr, "inbound")?;

    let (drain, _) = watch::channel(());
    let (server_tls_tx, server_tls) = watch::channel(server_tls);
    let (client_tls_tx, client_tls) = watch::channel(client_tls);
    let (trust_epoch_tx, trust_epoch) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        settings,
        name,
        metrics: metrics.clone(),
        tables: feed.tables,
        stop,
        hard,
        drain,
        inbound_peers: Default::default(),
        logs,
        server_tls,
        client_tls,
        trust_epoch,
    });
    tokio::spawn(inbound::serve(inbound_listener, shared.clone()));
    tokio::spawn(outbound::manage(shared.clone()));
    tokio::spawn(follow_anchors(
        shared.clone(),
        material.clone(),
        certs.clone(),
        first.anchors_pem.clone(),
        TrustSenders {
            server: server_tls_tx,
            client: client_tls_tx,
            epoch: trust_epoch_tx,
        },
    ));
    tokio::spawn(rotate(
        shared.clone(),
        material,
        certs.clone(),
        leaf.rotate_at,
    ));
    tracing::info!(%inbound_addr, %admin_addr, "gateway started");
    Ok(Running {
        inbound_addr,
        admin_addr,
        metrics,
        certs,
        shared,
    })
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
) -> Result<tokio::net::TcpListener, GatewayError> {
    crate::runtime::listen(addr).map_err(|source| GatewayError::Bind { addr, what, source })
}

/// Keeps a readiness gate in step with a `synced` flag.
fn follow_gate(mut synced: watch::Receiver<bool>, gate: Gate) {
    tokio::spawn(async move {
        loop {
            gate.set(*synced.borrow_and_update());
            if synced.changed().await.is_err() {
                break;
            }
        }
    });
}

fn local_addr(
    l: &tokio::net::TcpListener,
    addr: SocketAddr,
    what: &'static str,
) -> Result<SocketAddr, GatewayError> {
    l.local_addr()
        .map_err(|source| GatewayError::Bind { addr, what, source })
}

async fn first_material(
    material: &MaterialSource,
    hard: &CancellationToken,
) -> Result<IssuerMaterial, GatewayError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match material().await {
            Ok(m) => return Ok(m),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %anyhow_chain(&e), retry_in = ?delay, "waiting for the issuer material");
                tokio::select! {
                    _ = hard.cancelled() => return Err(GatewayError::Material(e)),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Mints a new leaf two thirds into the current one's life; on failure retries while the current
/// leaf is still valid (logging loudly), so a briefly missing Secret does not cause an outage.
async fn rotate(
    shared: Arc<Shared>,
    material: MaterialSource,
    certs: Arc<tls::CertStore>,
    mut rotate_at: SystemTime,
) {
    loop {
        let wait = rotate_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        tokio::select! {
            _ = shared.hard.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let minted = match material().await {
            Ok(m) => identity::mint(
                &shared.name,
                &m,
                shared.settings.cert_lifetime,
                SystemTime::now(),
            )
            .map_err(|e| anyhow_chain(&e)),
            Err(e) => Err(anyhow_chain(&e)),
        };
        match minted {
            Ok(leaf) => {
                certs.swap(leaf.certified.clone());
                shared.metrics.cert_expiry.set(unix_secs(leaf.not_after));
                shared.metrics.cert_rotations.inc();
                tracing::info!(
                    serial = %leaf.serial_hex,
                    expires = %humantime::format_rfc3339_seconds(leaf.not_after),
                    "rotated the gateway certificate"
                );
                rotate_at = leaf.rotate_at;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot rotate the gateway certificate; retrying");
                // Retry soon, but not in a hot loop.
                let retry = (shared.settings.cert_lifetime / 30)
                    .clamp(Duration::from_millis(100), Duration::from_secs(30));
                rotate_at = SystemTime::now() + retry;
            }
        }
    }
}

/// Resolves once the peer failed to answer a ping within `timeout` (or the connection is gone);
/// never, if this connection has no ping handle.
pub(crate) async fn keepalive(ping: Option<h2::PingPong>, interval: Duration, timeout: Duration) {
    let Some(mut ping) = ping else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(interval).await;
        match tokio::time::timeout(timeout, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
    }
}

struct TrustSenders {
    server: watch::Sender<Arc<rustls::ServerConfig>>,
    client: watch::Sender<Arc<rustls::ClientConfig>>,
    epoch: watch::Sender<u64>,
}

/// Re-reads the anchor bundle every `anchor_poll`. A changed bundle applies to new handshakes at
/// once (so an added anchor, the start of a rotation, is accepted without a restart). If an
/// anchor was *removed*, every established connection was verified against a root that is no
/// longer trusted: all are cut (their tunnels reset) and peers reconnect, re-verified.
async fn follow_anchors(
    shared: Arc<Shared>,
    material: MaterialSource,
    certs: Arc<tls::CertStore>,
    mut current: String,
    senders: TrustSenders,
) {
    loop {
        tokio::select! {
            _ = shared.hard.cancelled() => return,
            _ = tokio::time::sleep(shared.settings.anchor_poll) => {}
        }
        let Ok(m) = material().await else {
            // The rotation task logs unavailable material; keep the current trust.
            continue;
        };
        if m.anchors_pem == current {
            continue;
        }
        let roots = match identity::root_store(&m.anchors_pem) {
            Ok(r) => Arc::new(r),
            Err(e) => {
                tracing::error!(error = %anyhow_chain(&e), "the new anchor bundle is unusable; keeping the current one");
                continue;
            }
        };
        let configs = tls::server_config(
            roots.clone(),
            certs.clone(),
            &shared.name.namespace,
            shared.logs.clone(),
        )
        .and_then(|s| Ok((s, tls::client_config(roots, certs.clone())?)));
        let (server, client) = match configs {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %anyhow_chain(&e), "cannot build TLS configurations for the new anchor bundle; keeping the current one");
                continue;
            }
        };
        let removed = identity::anchors_removed(&current, &m.anchors_pem);
        senders.server.send_replace(server);
        senders.client.send_replace(client);
        current = m.anchors_pem;
        shared.metrics.anchor_changes.inc();
        if removed {
            let cut = shared.inbound_peers.cut_all();
            senders.epoch.send_modify(|e| *e += 1);
            tracing::warn!(
                inbound_connections = cut,
                "an anchor was removed from the bundle: closing every gateway connection so that peers re-verify"
            );
        } else {
            tracing::info!("the anchor bundle gained an anchor; new handshakes accept it");
        }
    }
}

/// Renders an error with its sources, `a: b: c`.
fn anyhow_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_as_written() {
        for addr in [defaults::INBOUND_ADDR, defaults::ADMIN_ADDR] {
            addr.parse::<SocketAddr>().unwrap();
        }
        defaults::OUTBOUND_IP.parse::<IpAddr>().unwrap();
        for d in [
            defaults::CERT_LIFETIME,
            defaults::HANDSHAKE_TIMEOUT,
            defaults::IDLE_TIMEOUT,
            defaults::DRAIN_TIMEOUT,
        ] {
            humantime::parse_duration(d).unwrap();
        }
        let s = Settings::default();
        assert_eq!(s.inbound_addr.port(), crate::k8s::GATEWAY_PORT);
        assert_eq!(s.cert_lifetime, Duration::from_secs(24 * 3600));
    }
}
