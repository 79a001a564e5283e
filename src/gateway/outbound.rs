//! Outbound side: local clients -> remote gateways.
//!
//! ```text
//! tables ─▶ manage: one TCP listener per allocated port, one pool per peer
//! accept on port P ─▶ route = tables.listeners[P] ─▶ pools[route.peer].open(route.authority)
//!                  └▶ or a split: tables.splits[P] ─▶ backend by weight (split.rs) ─▶ dial or open
//!   pool: one mTLS HTTP/2 connection (identity = Link's gatewayIdentity), reconnect w/ backoff
//!   ─▶ CONNECT stream, 200 ─▶ splice(client, stream)
//! ```

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::config::Peer;
use super::metrics::{OUTBOUND, PeerResult, Side};
use crate::runtime::backoff::Backoff;

/// How long an accepted client waits for its peer's connection to become ready.
const PEER_WAIT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that dies sooner than this counts as a failed attempt (backoff grows).
const HEALTHY_AFTER: Duration = Duration::from_secs(2);
/// Retry listeners that failed to bind (port still held by a previous process, ...).
const BIND_RETRY: Duration = Duration::from_secs(5);

type Pools = Arc<HashMap<String, Arc<PeerPool>>>;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect to {address}")]
    Dial {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to {address} timed out")]
    DialTimeout { address: String },
    #[error("{identity:?} is not a valid DNS name for a gateway identity")]
    ServerName {
        identity: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error(
        "{identity:?} is not a gateway identity (expected {expected}<cluster>.<trust-domain>); fix the Link's gatewayIdentity"
    )]
    NotAGateway { identity: String, expected: String },
    #[error("TLS handshake with {address} (expecting {identity}) failed")]
    Tls {
        address: String,
        identity: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with {address} timed out")]
    TlsTimeout { address: String },
    #[error("{address} did not negotiate HTTP/2 (ALPN h2); is it an mc gateway?")]
    NoAlpn { address: String },
    #[error("HTTP/2 handshake with {address} failed")]
    H2 {
        address: String,
        #[source]
        source: hyper::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("peer gateway {peer} is not reachable ({last})")]
    Unavailable { peer: String, last: String },
    #[error("peer gateway refused the stream: {status} {reason}")]
    Refused { status: StatusCode, reason: String },
    #[error("the CONNECT stream failed")]
    Stream(#[source] hyper::Error),
    #[error("the CONNECT stream was not upgraded")]
    Upgrade(#[source] hyper::Error),
}

#[derive(Clone)]
enum PoolState {
    Connecting,
    Ready(SendRequest<Empty<Bytes>>),
    Backoff(Arc<str>),
    Closed,
}

/// The pooled connection to one peer gateway.
pub struct PeerPool {
    name: String,
    peer: Peer,
    state: watch::Receiver<PoolState>,
    cancel: CancellationToken,
}

impl PeerPool {
    fn start(name: &str, peer: &Peer, tls: Arc<ClientConfig>, shared: Arc<Shared>) -> Arc<Self> {
        let (tx, rx) = watch::channel(PoolState::Connecting);
        let cancel = shared.hard.child_token();
        let owner = shared.metrics.claim_pool_state(name);
        tokio::spawn(maintain(
            owner,
            name.to_owned(),
            peer.clone(),
            tls,
            tx,
            shared,
            cancel.clone(),
        ));
        Arc::new(Self {
            name: name.to_owned(),
            peer: peer.clone(),
            state: rx,
            cancel,
        })
    }

    /// Opens a CONNECT stream to `authority` on the pooled connection.
    pub async fn open(&self, authority: &str) -> Result<hyper::upgrade::Upgraded, OpenError> {
        self.open_with(authority, false).await
    }

    /// `open`, but with `fail_fast` a pool that is backing off fails the stream at once instead
    /// of waiting for it (a split has other backends to try).
    async fn open_with(
        &self,
        authority: &str,
        fail_fast: bool,
    ) -> Result<hyper::upgrade::Upgraded, OpenError> {
        // One retry: the connection may die between our look at the state and the request.
        let mut last_err = None;
        for _ in 0..2 {
            let mut sender = self.ready_sender(fail_fast).await?;
            let req = Request::builder()
                .method(Method::CONNECT)
                .uri(authority)
                .body(Empty::<Bytes>::new());
            let req = match req {
                Ok(r) => r,
                Err(_) => {
                    return Err(OpenError::Refused {
                        status: StatusCode::BAD_REQUEST,
                        reason: format!("invalid authority {authority:?}"),
                    });
                }
            };
            match sender.send_request(req).await {
                Ok(mut res) => {
                    if res.status() != StatusCode::OK {
                        let reason = res
                            .headers()
                            .get(super::REFUSAL_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        return Err(OpenError::Refused {
                            status: res.status(),
                            reason,
                        });
                    }
                    return hyper::upgrade::on(&mut res)
                        .await
                        .map_err(OpenError::Upgrade);
                }
                Err(e) => {
                    // A refused stream (GOAWAY, connection reset) is safe to retry: nothing was sent.
                    tracing::debug!(peer = %self.name, error = %e, "CONNECT failed; retrying once");
                    last_err = Some(e);
                    tokio::task::yield_now().await;
                }
            }
        }
        Err(match last_err {
            Some(e) => OpenError::Stream(e),
            None => OpenError::Unavailable {
                peer: self.name.clone(),
                last: "no attempt".into(),
            },
        })
    }

    /// The last attempt to connect failed (or the pool is gone): a split tries others first.
    fn is_failing(&self) -> bool {
        matches!(
            *self.state.borrow(),
            PoolState::Backoff(_) | PoolState::Closed
        )
    }

    async fn ready_sender(&self, fail_fast: bool) -> Result<SendRequest<Empty<Bytes>>, OpenError> {
        let mut rx = self.state.clone();
        let mut last: Arc<str> = "connecting".into();
        let wait = async {
            loop {
                match &*rx.borrow_and_update() {
                    PoolState::Ready(s) if !s.is_closed() => return Some(s.clone()),
                    PoolState::Backoff(e) => {
                        last = e.clone();
                        if fail_fast {
                            return None;
                        }
                    }
                    PoolState::Closed => return None,
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        match tokio::time::timeout(PEER_WAIT, wait).await {
            Ok(Some(s)) => Ok(s),
            _ => Err(OpenError::Unavailable {
                peer: self.name.clone(),
                last: last.to_string(),
            }),
        }
    }
}

/// Keeps one connection to the peer up: connect, serve until it breaks, back off, repeat.
async fn maintain(
    owner: u64,
    name: String,
    peer: Peer,
    tls: Arc<ClientConfig>,
    state: watch::Sender<PoolState>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let metrics = &shared.metrics;
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        state.send_replace(PoolState::Connecting);
        metrics.set_pool_state(&name, owner, "connecting");
        let attempt = tokio::select! {
            _ = cancel.cancelled() => break,
            r = connect(&peer, &tls, &shared) => r,
        };
        let failure = match attempt {
            Ok((sender, conn, peer_not_after)) => {
                metrics
                    .peer_connects
                    .get_or_create(&PeerResult {
                        peer: name.clone(),
                        result: "ok",
                    })
                    .inc();
                tracing::info!(peer = %name, address = %peer.address, identity = %peer.identity, "connected to peer gateway");
                let hard = shared.hard.clone();
                // The connection outlives this pool if the peer is replaced: open tunnels finish.
                let mut conn_task = tokio::spawn(async move {
                    tokio::select! {
                        r = conn => r.err().map(|e| e.to_string()),
                        _ = hard.cancelled() => None,
                    }
                });
                state.send_replace(PoolState::Ready(sender));
                metrics.set_pool_state(&name, owner, "ready");
                let since = Instant::now();
                // The peer was verified with the certificate it presented then; once that expires,
                // new streams go over a fresh handshake that verifies its current one (the old
                // connection keeps serving its open tunnels, and the peer's own GOAWAY closes it).
                let until_expiry = peer_not_after.map(|t| {
                    t.duration_since(std::time::SystemTime::now())
                        .unwrap_or_default()
                });
                let expired = async {
                    match until_expiry {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                };
                let ended = tokio::select! {
                    _ = cancel.cancelled() => break,
                    r = &mut conn_task => r.ok().flatten(),
                    _ = expired => {
                        tracing::info!(peer = %name, address = %peer.address, "the peer gateway's certificate expired; reconnecting");
                        backoff.reset();
                        continue;
                    }
                };
                tracing::info!(peer = %name, error = ?ended, "connection to peer gateway closed; reconnecting");
                if since.elapsed() >= HEALTHY_AFTER {
                    backoff.reset();
                    continue;
                }
                ended.unwrap_or_else(|| "closed right after connecting".into())
            }
            Err(e) => {
                metrics
                    .peer_connects
                    .get_or_create(&PeerResult {
                        peer: name.clone(),
                        result: "failed",
                    })
                    .inc();
                let msg = super::anyhow_chain(&e);
                tracing::warn!(peer = %name, error = %msg, "cannot connect to peer gateway");
                msg
            }
        };
        let delay = backoff.next_delay();
        state.send_replace(PoolState::Backoff(failure.into()));
        metrics.set_pool_state(&name, owner, "backoff");
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    state.send_replace(PoolState::Closed);
    // A removed peer must not look `connecting`/`ready` forever on dashboards.
    metrics.release_pool_state(&name, owner);
}

type Conn = hyper::client::conn::http2::Connection<
    TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
    Empty<Bytes>,
    TokioExecutor,
>;

async fn connect(
    peer: &Peer,
    tls: &Arc<ClientConfig>,
    shared: &Shared,
) -> Result<
    (
        SendRequest<Empty<Bytes>>,
        Conn,
        Option<std::time::SystemTime>,
    ),
    PoolError,
> {
    // Checked before dialling: a Link naming anything but a gateway would let any certificate
    // the issuers signed for that name (not a gateway's) receive this cluster's traffic. The
    // inbound side applies the same rule to clients.
    let expected = format!("{}.{}.", crate::k8s::GATEWAY_NAME, shared.name.namespace);
    let labels_after = peer.identity.strip_prefix(&expected).map(|rest| {
        rest.trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
            .count()
    });
    if labels_after.is_none_or(|n| n < 2) {
        return Err(PoolError::NotAGateway {
            identity: peer.identity.clone(),
            expected,
        });
    }
    let address = peer.address.clone();
    let timeout = shared.settings.handshake_timeout;
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(PoolError::Dial { address, source }),
        Err(_) => return Err(PoolError::DialTimeout { address }),
    };
    let _ = tcp.set_nodelay(true);
    let server_name =
        ServerName::try_from(peer.identity.clone()).map_err(|source| PoolError::ServerName {
            identity: peer.identity.clone(),
            source,
        })?;
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let handshake_failed = || {
        shared
            .metrics
            .handshake_failures
            .get_or_create(&Side { side: OUTBOUND })
            .inc();
    };
    let tls_stream = match tokio::time::timeout(timeout, connector.connect(server_name, tcp)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            handshake_failed();
            return Err(PoolError::Tls {
                address,
                identity: peer.identity.clone(),
                source,
            });
        }
        Err(_) => {
            handshake_failed();
            return Err(PoolError::TlsTimeout { address });
        }
    };
    if tls_stream.get_ref().1.alpn_protocol() != Some(super::tls::ALPN_H2) {
        return Err(PoolError::NoAlpn { address });
    }
    let not_after = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| super::identity::cert_not_after(c));
    let mut h2 = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .initial_stream_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .max_header_list_size(super::MAX_HEADER_LIST)
        // Pings find a dead peer (no FIN, e.g. a vanished node) within ~20 s.
        .keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let (sender, conn) = h2
        .handshake(TokioIo::new(tls_stream))
        .await
        .map_err(|source| PoolError::H2 { address, source })?;
    Ok((sender, conn, not_after))
}

/// Follows the tables: opens/closes outbound listeners and starts/stops peer pools.
pub(crate) async fn manage(shared: Arc<Shared>, tls: Arc<ClientConfig>) {
    let (pools_tx, pools_rx) = watch::channel::<Pools>(Arc::new(HashMap::new()));
    let mut listeners: HashMap<u16, CancellationToken> = HashMap::new();
    let mut tables_rx = shared.tables.clone();
    let mut retry = tokio::time::interval(BIND_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let tables = tables_rx.borrow_and_update().clone();

        let current = pools_tx.borrow().clone();
        let mut next: HashMap<String, Arc<PeerPool>> = HashMap::new();
        for (name, peer) in &tables.peers {
            let pool = match current.get(name) {
                Some(p) if p.peer == *peer => p.clone(),
                _ => PeerPool::start(name, peer, tls.clone(), shared.clone()),
            };
            next.insert(name.clone(), pool);
        }
        for (name, pool) in current.iter() {
            if !next.get(name).is_some_and(|p| Arc::ptr_eq(p, pool)) {
                pool.cancel.cancel();
            }
        }
        pools_tx.send_replace(Arc::new(next));

        let wanted: HashSet<u16> = tables
            .listeners
            .keys()
            .chain(tables.splits.keys())
            .copied()
            .collect();
        listeners.retain(|port, token| {
            let keep = wanted.contains(port);
            if !keep {
                tracing::info!(port, "closing outbound listener");
                token.cancel();
            }
            keep
        });
        for port in wanted {
            if listeners.contains_key(&port) {
                continue;
            }
            let addr = SocketAddr::new(shared.settings.outbound_ip, port);
            match crate::runtime::listen(addr) {
                Ok(l) => {
                    tracing::info!(%addr, "outbound listener open");
                    let token = shared.stop.child_token();
                    tokio::spawn(listen(
                        l,
                        port,
                        shared.clone(),
                        pools_rx.clone(),
                        token.clone(),
                    ));
                    listeners.insert(port, token);
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot open outbound listener; will retry");
                }
            }
        }
        shared
            .metrics
            .outbound_listeners
            .set(listeners.len() as i64);

        tokio::select! {
            _ = shared.stop.cancelled() => break,
            r = tables_rx.changed() => {
                if r.is_err() {
                    // The source is gone: keep serving the last tables until told to stop.
                    shared.stop.cancelled().await;
                    break;
                }
            }
            _ = retry.tick() => {}
        }
    }
    for token in listeners.values() {
        token.cancel();
    }
    shared.metrics.outbound_listeners.set(0);
    // Pools stay up while open tunnels drain; `hard` ends them.
    shared.hard.cancelled().await;
}

async fn listen(
    listener: TcpListener,
    port: u16,
    shared: Arc<Shared>,
    pools: watch::Receiver<Pools>,
    token: CancellationToken,
) {
    crate::runtime::accept_loop(listener, "outbound", token, move |tcp, _| {
        tokio::spawn(client(tcp, port, shared.clone(), pools.clone()));
    })
    .await;
}

async fn client(tcp: TcpStream, port: u16, shared: Arc<Shared>, pools: watch::Receiver<Pools>) {
    let _guard = shared.drain_guard();
    let _ = tcp.set_nodelay(true);
    let (route, split) = {
        let tables = shared.tables.borrow();
        (
            tables.listeners.get(&port).cloned(),
            tables.splits.get(&port).cloned(),
        )
    };
    if let (None, Some(split)) = (&route, split) {
        return split_client(tcp, port, split, shared.clone(), pools).await;
    }
    let Some(route) = route else {
        shared.metrics.stream(OUTBOUND, "no_route");
        // A listener outlives its mirror briefly (tables changed since the accept).
        tracing::info!(
            port,
            "no mirror owns this outbound port any more; closing the connection"
        );
        return;
    };
    let pool = pools.borrow().get(&route.peer).cloned();
    let Some(pool) = pool else {
        shared.metrics.stream(OUTBOUND, "no_peer");
        tracing::info!(port, peer = %route.peer, "no Link for this peer; closing the connection");
        return;
    };
    let opened = tokio::select! {
        o = pool.open(&route.authority) => o,
        _ = shared.hard.cancelled() => return,
    };
    let upgraded = match opened {
        Ok(u) => u,
        Err(e) => {
            let result = match &e {
                OpenError::Unavailable { .. } => "peer_unavailable",
                OpenError::Refused { .. } => "refused",
                OpenError::Stream(_) | OpenError::Upgrade(_) => "stream_failed",
            };
            shared.metrics.stream(OUTBOUND, result);
            tracing::info!(port, peer = %route.peer, authority = %route.authority, error = %e, "outbound connection failed");
            return;
        }
    };
    shared.metrics.outbound.ok.inc();
    let side = &shared.metrics.outbound;
    side.open.inc();
    let outcome = tokio::select! {
        o = super::tunnel::splice(tcp, TokioIo::new(upgraded), shared.settings.idle_timeout) => Some(o),
        _ = shared.hard.cancelled() => None,
    };
    side.open.dec();
    if let Some(o) = outcome {
        side.add_bytes(o.to_server, o.to_client);
        if let Err(e) = o.result {
            tracing::debug!(port, error = %e, "outbound tunnel ended with an error");
        }
    }
}

/// A connection on a TrafficSplit port: backends in weighted order until one answers.
async fn split_client(
    tcp: TcpStream,
    port: u16,
    split: super::config::SplitRoute,
    shared: Arc<Shared>,
    pools: watch::Receiver<Pools>,
) {
    use super::config::SplitTarget;
    let pools = pools.borrow().clone();
    let weights: Vec<u32> = split.backends.iter().map(|b| b.weight).collect();
    let up = |i: usize| match &split.backends[i].target {
        SplitTarget::Direct(_) => true,
        SplitTarget::Tunnel(l) => pools.get(&l.peer).is_some_and(|p| !p.is_failing()),
    };
    let mut order = super::split::order(&weights, up, &mut rand::rng());
    if order.is_empty() {
        // Every backend in the tables is down: the peers we cannot reach are still worth a try
        // (a pool that is backing off may be back), rather than refusing while one might answer.
        order = super::split::order(&weights, |_| true, &mut rand::rng());
    }
    for i in order {
        let backend = &split.backends[i];
        let idle = shared.settings.idle_timeout;
        let outcome = match &backend.target {
            SplitTarget::Direct(addr) => {
                let dialed =
                    tokio::time::timeout(super::DIAL_TIMEOUT, TcpStream::connect(addr)).await;
                let Ok(Ok(server)) = dialed else {
                    tracing::info!(port, split = %split.split, backend = %backend.service, %addr, "split backend did not answer; trying the next");
                    continue;
                };
                let _ = server.set_nodelay(true);
                shared.metrics.outbound.ok.inc();
                shared.metrics.outbound.open.inc();
                tokio::select! {
                    o = super::tunnel::splice(tcp, server, idle) => Some(o),
                    _ = shared.hard.cancelled() => None,
                }
            }
            SplitTarget::Tunnel(route) => {
                let Some(pool) = pools.get(&route.peer).cloned() else {
                    continue;
                };
                let opened = tokio::select! {
                    o = pool.open_with(&route.authority, true) => o,
                    _ = shared.hard.cancelled() => return,
                };
                let upgraded = match opened {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::info!(port, split = %split.split, backend = %backend.service, error = %e, "split backend did not answer; trying the next");
                        continue;
                    }
                };
                shared.metrics.outbound.ok.inc();
                shared.metrics.outbound.open.inc();
                tokio::select! {
                    o = super::tunnel::splice(tcp, TokioIo::new(upgraded), idle) => Some(o),
                    _ = shared.hard.cancelled() => None,
                }
            }
        };
        shared.metrics.outbound.open.dec();
        if let Some(o) = outcome {
            shared.metrics.outbound.add_bytes(o.to_server, o.to_client);
        }
        return;
    }
    shared.metrics.stream(OUTBOUND, "no_backend");
    tracing::info!(port, split = %split.split, "no backend of the split is up; closing the connection");
}
