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
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::{Method, Request, StatusCode};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::admission::{Admission, Slot, Ticket};
use super::config::Peer;
use super::metrics::{OUTBOUND, PeerResult, Side};
use crate::runtime::backoff::Backoff;

/// How long an accepted client waits for its peer's connection to become ready.
const PEER_WAIT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that dies sooner than this counts as a failed attempt (backoff grows).
const HEALTHY_AFTER: Duration = Duration::from_secs(2);
/// A nudged pool retries after this, so that a stream of nudges is at most 4 attempts a second.
const NUDGE_DELAY: Duration = Duration::from_millis(250);
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
        source: h2::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("peer gateway {peer} is not reachable ({last})")]
    Unavailable { peer: String, last: String },
    #[error("peer gateway refused the stream: {status} {reason}")]
    Refused { status: StatusCode, reason: String },
    #[error("the CONNECT stream failed")]
    Stream(#[source] h2::Error),
}

#[derive(Clone)]
enum PoolState {
    Connecting,
    Ready(SendRequest<Bytes>),
    Backoff(Arc<str>),
    Closed,
}

/// The pooled connection to one peer gateway.
pub struct PeerPool {
    name: String,
    admission: Arc<Admission>,
    peer: Peer,
    state: watch::Receiver<PoolState>,
    /// Stops the pool's reconnect loop.
    cancel: CancellationToken,
    /// Drops the pool's connection and so resets its tunnels (the Link was deleted or now names
    /// another identity). A pool replaced for a new address only lets its tunnels finish.
    cut: CancellationToken,
    /// Cuts a back-off short (see [`PeerPool::nudge`]).
    nudge: Arc<tokio::sync::Notify>,
}

impl PeerPool {
    fn start(name: &str, peer: &Peer, shared: Arc<Shared>) -> Arc<Self> {
        let (tx, rx) = watch::channel(PoolState::Connecting);
        let cancel = shared.hard.child_token();
        let cut = shared.hard.child_token();
        let owner = shared.metrics.claim_pool_state(name);
        let admission = Admission::new(shared.settings.max_streams_per_peer as usize);
        let nudge = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(maintain(
            owner,
            name.to_owned(),
            peer.clone(),
            tx,
            shared,
            Controls {
                cancel: cancel.clone(),
                cut: cut.clone(),
                nudge: nudge.clone(),
            },
        ));
        Arc::new(Self {
            admission,
            name: name.to_owned(),
            peer: peer.clone(),
            state: rx,
            cancel,
            cut,
            nudge,
        })
    }

    /// Asks a pool that is backing off to try again soon (after [`NUDGE_DELAY`], never sooner):
    /// a split sends this when the mirror controller's probe says the peer is alive again, so
    /// that traffic returns with the probe instead of after a back-off of up to 10 s.
    fn nudge(&self) {
        self.nudge.notify_waiters();
    }

    /// Opens a CONNECT stream to `authority` on the pooled connection.
    pub async fn open(
        &self,
        authority: &str,
    ) -> Result<(SendStream<Bytes>, RecvStream), OpenError> {
        self.open_with(authority, false).await
    }

    /// `open`, but with `fail_fast` a pool that is backing off fails the stream at once instead
    /// of waiting for it (a split has other backends to try).
    async fn open_with(
        &self,
        authority: &str,
        fail_fast: bool,
    ) -> Result<(SendStream<Bytes>, RecvStream), OpenError> {
        // One retry: the connection may die between our look at the state and the request.
        let mut last_err = None;
        for _ in 0..2 {
            let sender = self.ready_sender(fail_fast).await?;
            let req = match Request::builder()
                .method(Method::CONNECT)
                .uri(authority)
                .body(())
            {
                Ok(r) => r,
                Err(_) => {
                    return Err(OpenError::Refused {
                        status: StatusCode::BAD_REQUEST,
                        reason: format!("invalid authority {authority:?}"),
                    });
                }
            };
            let sent = match sender.ready().await {
                Ok(mut sender) => sender.send_request(req, false),
                Err(e) => Err(e),
            };
            let (response, send) = match sent {
                Ok(s) => s,
                Err(e) => {
                    // Not sent (GOAWAY, connection gone): safe to retry on the next connection.
                    tracing::debug!(peer = %self.name, error = %e, "CONNECT failed; retrying once");
                    last_err = Some(e);
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let res = response.await.map_err(OpenError::Stream)?;
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
            return Ok((send, res.into_body()));
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

    async fn ready_sender(&self, fail_fast: bool) -> Result<SendRequest<Bytes>, OpenError> {
        let mut rx = self.state.clone();
        let mut last: Arc<str> = "connecting".into();
        let wait = async {
            loop {
                match &*rx.borrow_and_update() {
                    PoolState::Ready(s) => return Some(s.clone()),
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

/// How a [`PeerPool`] steers its reconnect loop.
struct Controls {
    cancel: CancellationToken,
    cut: CancellationToken,
    nudge: Arc<tokio::sync::Notify>,
}

/// Keeps one connection to the peer up: connect, serve until it breaks, back off, repeat.
async fn maintain(
    owner: u64,
    name: String,
    peer: Peer,
    state: watch::Sender<PoolState>,
    shared: Arc<Shared>,
    controls: Controls,
) {
    let Controls { cancel, cut, nudge } = controls;
    let metrics = &shared.metrics;
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        state.send_replace(PoolState::Connecting);
        metrics.set_pool_state(&name, owner, "connecting");
        let attempt = tokio::select! {
            _ = cancel.cancelled() => break,
            r = connect(&peer, &shared) => r,
        };
        let failure = match attempt {
            Ok((sender, mut conn, peer_not_after)) => {
                metrics
                    .peer_connects
                    .get_or_create(&PeerResult {
                        peer: name.clone(),
                        result: "ok",
                    })
                    .inc();
                tracing::info!(peer = %name, address = %peer.address, identity = %peer.identity, "connected to peer gateway");
                let cut = cut.clone();
                let mut trust = shared.trust_epoch.clone();
                trust.borrow_and_update();
                // The connection outlives this pool if the peer is replaced: open tunnels finish.
                let mut conn_task = tokio::spawn(async move {
                    let keepalive =
                        super::keepalive(conn.ping_pong(), KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
                    // Dropping the connection fails its streams: their tunnels are reset.
                    tokio::select! {
                        r = super::batch::drive(&mut conn) => r.err().map(|e| e.to_string()),
                        _ = keepalive => Some("the peer stopped answering pings".to_owned()),
                        _ = trust.changed() => Some("an anchor was removed; re-verifying the peer".to_owned()),
                        _ = cut.cancelled() => None,
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
        let nudged = async {
            nudge.notified().await;
            tokio::time::sleep(NUDGE_DELAY).await;
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
            _ = nudged => tracing::debug!(peer = %name, "back-off cut short: a split expects this peer"),
        }
    }
    state.send_replace(PoolState::Closed);
    // A removed peer must not look `connecting`/`ready` forever on dashboards.
    metrics.release_pool_state(&name, owner);
}

type Conn = h2::client::Connection<tokio_rustls::client::TlsStream<TcpStream>, Bytes>;

/// Pings find a dead peer (no FIN, e.g. a vanished node) within ~20 s.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(
    peer: &Peer,
    shared: &Shared,
) -> Result<(SendRequest<Bytes>, Conn, Option<std::time::SystemTime>), PoolError> {
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
    let tls: Arc<ClientConfig> = shared.client_tls.borrow().clone();
    let connector = tokio_rustls::TlsConnector::from(tls);
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
    let mut h2 = h2::client::Builder::new();
    h2.initial_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .max_header_list_size(super::MAX_HEADER_LIST)
        .enable_push(false);
    let (sender, conn) = h2
        .handshake(tls_stream)
        .await
        .map_err(|source| PoolError::H2 { address, source })?;
    Ok((sender, conn, not_after))
}

/// Follows the tables: opens/closes outbound listeners and starts/stops peer pools.
pub(crate) async fn manage(shared: Arc<Shared>) {
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
                _ => PeerPool::start(name, peer, shared.clone()),
            };
            next.insert(name.clone(), pool);
        }
        for (name, pool) in current.iter() {
            if !next.get(name).is_some_and(|p| Arc::ptr_eq(p, pool)) {
                pool.cancel.cancel();
                // Deleted, or another identity: the old peer is no longer authorized to carry
                // this cluster's traffic, so its tunnels end now (with resets).
                let same_identity = tables
                    .peers
                    .get(name)
                    .is_some_and(|p| p.identity == pool.peer.identity);
                if !same_identity {
                    tracing::info!(peer = %name, "the Link was removed or names another identity; closing its tunnels");
                    pool.cut.cancel();
                }
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
    // Every way this connection can fail before the tunnel is up ends in an RST, so that the
    // client never mistakes it for a (empty) complete answer.
    let refuse = |tcp: TcpStream, result: &'static str| {
        shared.metrics.stream(OUTBOUND, result);
        shared.metrics.reset(OUTBOUND, result);
        super::tunnel::reset_tcp(tcp);
    };
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
        // A listener outlives its mirror briefly (tables changed since the accept).
        if let Some(suppressed) = shared.logs.allow("no_route") {
            tracing::info!(
                port,
                suppressed,
                "no mirror owns this outbound port any more; resetting the connection"
            );
        }
        return refuse(tcp, "no_route");
    };
    let pool = pools.borrow().get(&route.peer).cloned();
    let Some(pool) = pool else {
        if let Some(suppressed) = shared.logs.allow("no_peer") {
            tracing::info!(port, peer = %route.peer, suppressed, "no Link for this peer; resetting the connection");
        }
        return refuse(tcp, "no_peer");
    };
    let _slot = match admit(&pool, &route.authority, &tcp, &shared).await {
        Ok(slot) => slot,
        Err(result) => {
            if let Some(suppressed) = shared.logs.allow(result) {
                tracing::info!(port, peer = %route.peer, authority = %route.authority, result, suppressed, "an outbound client was not admitted");
            }
            return refuse(tcp, result);
        }
    };
    let opened = tokio::select! {
        o = pool.open(&route.authority) => o,
        _ = shared.hard.cancelled() => return refuse(tcp, "shutdown"),
    };
    let (send, recv) = match opened {
        Ok(s) => s,
        Err(e) => {
            let result = match &e {
                OpenError::Unavailable { .. } => "peer_unavailable",
                OpenError::Refused { .. } => "refused",
                OpenError::Stream(_) => "stream_failed",
            };
            if let Some(suppressed) = shared.logs.allow(result) {
                tracing::info!(port, peer = %route.peer, authority = %route.authority, error = %e, suppressed, "outbound connection failed");
            }
            return refuse(tcp, result);
        }
    };
    shared.metrics.outbound.ok.inc();
    let side = &shared.metrics.outbound;
    side.open.inc();
    let o =
        super::tunnel::splice(tcp, send, recv, shared.settings.idle_timeout, &shared.hard).await;
    side.open.dec();
    side.add_bytes(o.from_tcp, o.from_h2);
    if let Err(cause) = o.result {
        shared.metrics.reset(OUTBOUND, cause.label());
        tracing::debug!(port, peer = %route.peer, cause = cause.label(), "outbound tunnel reset");
    }
}

/// A stream slot to `pool`'s peer: at once, or after queueing (round-robin between services)
/// until a slot frees, `queue_timeout` passes, the client leaves or the gateway stops.
async fn admit(
    pool: &PeerPool,
    authority: &str,
    client: &TcpStream,
    shared: &Shared,
) -> Result<Slot, &'static str> {
    let rx = match pool.admission.enter(authority) {
        Ticket::Now(slot) => return Ok(slot),
        Ticket::Queued(rx) => rx,
    };
    let metrics = &shared.metrics;
    metrics.queued_streams.inc();
    let started = Instant::now();
    let result = tokio::select! {
        slot = rx => slot.map_err(|_| "queue_timeout"),
        _ = tokio::time::sleep(shared.settings.queue_timeout) => Err("queue_timeout"),
        _ = client_gone(client) => Err("client_gone"),
        _ = shared.hard.cancelled() => Err("shutdown"),
    };
    metrics.queued_streams.dec();
    metrics.queue_wait.observe(started.elapsed().as_secs_f64());
    result
}

/// Resolves when the client closed or reset its connection; never once it sent data (it is
/// then still there, and its bytes wait in the socket for the tunnel).
async fn client_gone(tcp: &TcpStream) {
    let mut b = [0u8; 1];
    match tcp.peek(&mut b).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
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
        SplitTarget::Tunnel(l) => pools.get(&l.peer).is_some_and(|p| {
            let failing = p.is_failing();
            // Weight above 0: the controller's probe reaches the peer now; so may we.
            if failing && split.backends[i].weight > 0 {
                p.nudge();
            }
            !failing
        }),
    };
    let mut order = super::split::order(&weights, up, &mut rand::rng());
    if order.is_empty() {
        // Every backend in the tables is down: the peers we cannot reach are still worth a try
        // (a pool that is backing off may be back), rather than refusing while one might answer.
        order = super::split::order(&weights, |_| true, &mut rand::rng());
    }
    let side = &shared.metrics.outbound;
    for i in order {
        let backend = &split.backends[i];
        match &backend.target {
            SplitTarget::Direct(addr) => {
                let dialed =
                    tokio::time::timeout(super::DIAL_TIMEOUT, TcpStream::connect(addr)).await;
                let Ok(Ok(mut server)) = dialed else {
                    tracing::info!(port, split = %split.split, backend = %backend.service, %addr, "split backend did not answer; trying the next");
                    continue;
                };
                let _ = server.set_nodelay(true);
                side.ok.inc();
                side.open.inc();
                let mut tcp = tcp;
                // TCP to TCP, in this cluster: a FIN or an RST on one side reaches the other as
                // the kernel reports it, as with kube-proxy; no HTTP/2 mapping to get right.
                tokio::select! {
                    r = tokio::io::copy_bidirectional(&mut tcp, &mut server) => {
                        if let Ok((up, down)) = r {
                            side.add_bytes(up, down);
                        }
                    }
                    _ = shared.hard.cancelled() => {}
                }
                side.open.dec();
            }
            SplitTarget::Tunnel(route) => {
                let Some(pool) = pools.get(&route.peer).cloned() else {
                    continue;
                };
                let Ok(_slot) = admit(&pool, &route.authority, &tcp, &shared).await else {
                    continue;
                };
                let opened = tokio::select! {
                    o = pool.open_with(&route.authority, true) => o,
                    _ = shared.hard.cancelled() => return super::tunnel::reset_tcp(tcp),
                };
                let (send, recv) = match opened {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::info!(port, split = %split.split, backend = %backend.service, error = %e, "split backend did not answer; trying the next");
                        continue;
                    }
                };
                side.ok.inc();
                side.open.inc();
                let o = super::tunnel::splice(
                    tcp,
                    send,
                    recv,
                    shared.settings.idle_timeout,
                    &shared.hard,
                )
                .await;
                side.open.dec();
                side.add_bytes(o.from_tcp, o.from_h2);
                if let Err(cause) = o.result {
                    shared.metrics.reset(OUTBOUND, cause.label());
                }
            }
        }
        return;
    }
    shared.metrics.stream(OUTBOUND, "no_backend");
    shared.metrics.reset(OUTBOUND, "no_backend");
    if let Some(suppressed) = shared.logs.allow("no_backend") {
        tracing::info!(port, split = %split.split, suppressed, "no backend of the split is up; resetting the connection");
    }
    super::tunnel::reset_tcp(tcp);
}
