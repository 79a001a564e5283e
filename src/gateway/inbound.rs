//! Inbound side: remote gateways -> local exported services.
//!
//! ```text
//! TCP accept ─▶ TLS 1.3 (client cert: anchor + gateway SAN, timeout) ─▶ HTTP/2 server
//!   each CONNECT stream: route(:authority) ─▶ refuse (400/403/404) | dial ClusterIP:port
//!   ─▶ 502 on dial failure | 200 + splice(stream, backend)
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::metrics::INBOUND;
use super::{REFUSAL_HEADER, Shared};

/// Accepts until `stop`; each connection is handled in its own task.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut h2 = h2::server::Builder::new();
    h2.initial_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .max_header_list_size(super::MAX_HEADER_LIST)
        .max_concurrent_streams(shared.settings.max_streams_per_peer);
    let h2 = Arc::new(h2);
    let pending = super::pending::Pending::new(shared.settings.max_pending_handshakes);
    let stop = shared.stop.clone();
    crate::runtime::accept_loop(listener, "inbound", stop, move |tcp, remote| {
        // Bounded, so that a flood cannot OOM-kill the gateway with every open tunnel; and a
        // full table makes room by cutting the likeliest non-peer (see `pending`).
        let slot = match pending.admit(remote.ip(), std::time::Instant::now()) {
            Ok(a) => {
                if let Some(why) = a.evicted {
                    shared.metrics.connection(INBOUND, why);
                }
                a.slot
            }
            Err(why) => {
                shared.metrics.connection(INBOUND, why);
                tracing::debug!(%remote, why, "no handshake slot; closing");
                drop(tcp);
                return;
            }
        };
        tokio::spawn(connection(
            slot,
            tcp,
            remote,
            // The current trust: a changed anchor bundle applies to the next handshake.
            tokio_rustls::TlsAcceptor::from(shared.server_tls.borrow().clone()),
            h2.clone(),
            shared.clone(),
        ));
    })
    .await;
    tracing::info!("inbound listener stopped");
}

async fn connection(
    slot: super::pending::Slot,
    tcp: TcpStream,
    remote: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    h2: Arc<h2::server::Builder>,
    shared: Arc<Shared>,
) {
    let _guard = shared.drain_guard();
    let _ = tcp.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + shared.settings.handshake_timeout;
    let mut one = [0u8; 1];
    let first_byte = tokio::time::timeout(
        super::pending::FIRST_BYTE.min(shared.settings.handshake_timeout),
        tcp.peek(&mut one),
    );
    tokio::select! {
        r = first_byte => match r {
            Ok(Ok(n)) if n > 0 => slot.spoke(),
            Ok(_) => return,
            Err(_) => {
                shared.metrics.connection(INBOUND, "first_byte_timeout");
                return;
            }
        },
        // Evicted to make room (counted at eviction).
        _ = slot.cut.cancelled() => return,
    }
    let handshake = tokio::select! {
        r = tokio::time::timeout_at(deadline, acceptor.accept(tcp)) => r,
        _ = slot.cut.cancelled() => return,
    };
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let tls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            match tls_error {
                // A client that presented a certificate we rejected is almost always a
                // misconfigured peer gateway (wrong anchor, expired, not a gateway name):
                // the peer only sees a bare alert, so the reason is logged here.
                Some(rustls::Error::InvalidCertificate(reason)) => {
                    let cause = match reason {
                        rustls::CertificateError::Expired
                        | rustls::CertificateError::ExpiredContext { .. } => "certificate_expired",
                        _ => "certificate_rejected",
                    };
                    shared.metrics.connection(INBOUND, cause);
                    if let Some(suppressed) = shared.logs.allow(cause) {
                        tracing::info!(%remote, %reason, suppressed, "refused an inbound client certificate");
                    }
                }
                Some(rustls::Error::NoCertificatesPresented) => {
                    shared.metrics.connection(INBOUND, "no_certificate");
                    tracing::debug!(%remote, "inbound client presented no certificate");
                }
                _ => {
                    shared.metrics.connection(INBOUND, "handshake_failed");
                    // Debug, not info: anyone who can reach the port can cause these
                    // (scanners); the counter is the signal, `-v` shows the details.
                    tracing::debug!(%remote, error = %e, "inbound TLS handshake failed");
                }
            }
            // Last, so that a test seeing this total also sees the split above.
            shared
                .metrics
                .handshake_failures
                .get_or_create(&super::metrics::Side { side: INBOUND })
                .inc();
            return;
        }
        Err(_) => {
            shared.metrics.connection(INBOUND, "handshake_timeout");
            shared
                .metrics
                .handshake_failures
                .get_or_create(&super::metrics::Side { side: INBOUND })
                .inc();
            tracing::debug!(%remote, "inbound TLS handshake timed out");
            return;
        }
    };
    drop(slot);
    let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
    let peer: Arc<str> = leaf
        .and_then(|c| super::identity::gateway_identity_in(c, &shared.name.namespace))
        .unwrap_or_default()
        .into();
    // A resumed session (session ticket) skips certificate verification: rustls restores the
    // chain verified when the ticket was issued. Without this check a ticket would keep a peer
    // in for the ticket's lifetime (hours) after its certificate expired.
    let not_after = leaf.and_then(|c| super::identity::cert_not_after(c));
    let Some(until_expiry) = not_after.and_then(|t| t.duration_since(SystemTime::now()).ok())
    else {
        shared.metrics.connection(INBOUND, "certificate_expired");
        shared
            .metrics
            .handshake_failures
            .get_or_create(&super::metrics::Side { side: INBOUND })
            .inc();
        if let Some(suppressed) = shared.logs.allow("certificate_expired") {
            tracing::info!(%remote, %peer, suppressed, not_after = ?not_after.map(humantime::format_rfc3339_seconds), "refusing a resumed TLS session whose client certificate has expired");
        }
        return;
    };
    shared.metrics.connection(INBOUND, "ok");
    tracing::debug!(%remote, %peer, "inbound connection from a gateway");

    let handshake = tokio::time::timeout(shared.settings.handshake_timeout, h2.handshake(tls));
    let mut conn = match handshake.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            shared.metrics.connection(INBOUND, "h2_handshake_failed");
            tracing::debug!(%remote, %peer, error = %e, "inbound HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.connection(INBOUND, "h2_handshake_timeout");
            tracing::debug!(%remote, %peer, "inbound HTTP/2 handshake timed out");
            return;
        }
    };
    // Tunnels of this connection end (with resets) when it ends, whatever the reason.
    let cut = shared.hard.child_token();
    let _cut_on_exit = cut.clone().drop_guard();
    let membership = shared.inbound_peers.join(
        &peer,
        shared.settings.max_streams_per_peer,
        cut.clone(),
        &shared,
    );
    let keepalive = super::keepalive(conn.ping_pong(), KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
    tokio::pin!(keepalive);
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    let mut closing = false;
    loop {
        tokio::select! {
            next = super::batch::drive(std::future::poll_fn(|cx| conn.poll_accept(cx))) => match next {
                Some(Ok((req, mut respond))) => {
                    // The stream budget is the peer's, shared by all its connections.
                    match membership.streams.clone().try_acquire_owned() {
                        Ok(permit) => {
                            tokio::spawn(stream(req, respond, shared.clone(), peer.clone(), cut.clone(), permit));
                        }
                        Err(_) => {
                            // REFUSED_STREAM: nothing was processed, the peer may retry.
                            respond.send_reset(h2::Reason::REFUSED_STREAM);
                            shared.metrics.stream(INBOUND, "peer_stream_limit");
                        }
                    }
                }
                Some(Err(e)) => {
                    // A protocol violation (GOAWAY with an error, e.g. too many malformed
                    // streams) or a broken connection.
                    let cause = if e.is_io() { "connection_lost" } else { "protocol_error" };
                    shared.metrics.connection_end(INBOUND, cause);
                    tracing::debug!(%remote, %peer, error = %e, "inbound connection ended with an error");
                    break;
                }
                None => break,
            },
            _ = shared.stop.cancelled(), if !closing => {
                // GOAWAY: the peer opens new streams elsewhere (or reconnects), open ones finish.
                conn.graceful_shutdown();
                closing = true;
            }
            _ = &mut expiry, if !closing => {
                // The identity this connection was admitted with is no longer valid: no new
                // streams on it (GOAWAY); the peer reconnects and proves its current certificate,
                // open tunnels finish.
                tracing::info!(%remote, %peer, "the peer's client certificate expired; closing its connection gracefully");
                conn.graceful_shutdown();
                closing = true;
            }
            _ = &mut keepalive => {
                tracing::info!(%remote, %peer, "the peer stopped answering pings; closing its connection");
                break;
            }
            // Evicted by a newer connection of the same peer, or the trust changed.
            _ = cut.cancelled() => {
                shared.metrics.connection_end(INBOUND, "cut");
                break;
            }
        }
    }
}

/// Connections one peer identity may hold at once. A pool keeps one; a second exists while an
/// old one drains (peer certificate expired, Link moved). Each may make us buffer a connection
/// window, so this bounds a peer's buffering at 2 x 8 MiB.
pub const MAX_CONNECTIONS_PER_PEER: usize = 2;

/// Inbound connections and stream budgets by peer identity.
#[derive(Default)]
pub(crate) struct PeerRegistry {
    peers: std::sync::Mutex<std::collections::HashMap<Arc<str>, PeerConns>>,
    next: std::sync::atomic::AtomicU64,
}

struct PeerConns {
    /// Oldest first.
    conns: std::collections::VecDeque<(u64, CancellationToken)>,
    streams: Arc<tokio::sync::Semaphore>,
}

/// A connection's place in the registry; leaves it when dropped.
pub(crate) struct Membership<'a> {
    registry: &'a PeerRegistry,
    peer: Arc<str>,
    id: u64,
    pub streams: Arc<tokio::sync::Semaphore>,
}

impl PeerRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Arc<str>, PeerConns>> {
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a connection of `peer`; the oldest beyond [`MAX_CONNECTIONS_PER_PEER`] is cut.
    /// A newer connection is the one the peer uses: an older one is draining or dead.
    fn join(
        &self,
        peer: &Arc<str>,
        max_streams: u32,
        cut: CancellationToken,
        shared: &Shared,
    ) -> Membership<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut peers = self.lock();
        let entry = peers.entry(peer.clone()).or_insert_with(|| PeerConns {
            conns: Default::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(max_streams as usize)),
        });
        entry.conns.push_back((id, cut));
        while entry.conns.len() > MAX_CONNECTIONS_PER_PEER {
            if let Some((_, oldest)) = entry.conns.pop_front() {
                shared.metrics.connection(INBOUND, "evicted_by_newer");
                if let Some(suppressed) = shared.logs.allow("evicted_by_newer") {
                    tracing::info!(%peer, suppressed, "a peer opened another connection; closing its oldest");
                }
                oldest.cancel();
            }
        }
        Membership {
            registry: self,
            peer: peer.clone(),
            id,
            streams: entry.streams.clone(),
        }
    }
}

impl PeerRegistry {
    /// Cuts every connection (and so every tunnel); returns how many.
    pub(crate) fn cut_all(&self) -> usize {
        let peers = self.lock();
        let mut n = 0;
        for conns in peers.values() {
            for (_, cut) in &conns.conns {
                cut.cancel();
                n += 1;
            }
        }
        n
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        let mut peers = self.registry.lock();
        if let Some(entry) = peers.get_mut(&self.peer) {
            entry.conns.retain(|(id, _)| *id != self.id);
            if entry.conns.is_empty() {
                peers.remove(&self.peer);
            }
        }
    }
}

/// Pings find a dead peer (no FIN, e.g. a vanished node): its tunnels are reset, not orphaned.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

fn refuse(
    respond: &mut SendResponse<Bytes>,
    shared: &Shared,
    peer: &str,
    authority: &str,
    status: StatusCode,
    reason: &'static str,
) {
    shared.metrics.stream(INBOUND, reason);
    if let Some(suppressed) = shared.logs.allow(reason) {
        tracing::info!(%peer, suppressed, %authority, %status, reason, "refused an inbound stream");
    }
    let mut res = Response::new(());
    *res.status_mut() = status;
    res.headers_mut()
        .insert(REFUSAL_HEADER, http::HeaderValue::from_static(reason));
    let _ = respond.send_response(res, true);
}

async fn stream(
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    shared: Arc<Shared>,
    peer: Arc<str>,
    cut: CancellationToken,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let _guard = shared.drain_guard();
    if req.method() != Method::CONNECT {
        return refuse(
            &mut respond,
            &shared,
            &peer,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "not_connect",
        );
    }
    let Some(authority) = req.uri().authority().cloned() else {
        return refuse(
            &mut respond,
            &shared,
            &peer,
            "",
            StatusCode::BAD_REQUEST,
            "bad_authority",
        );
    };
    // One snapshot per stream: an unexport published after this point affects the next stream.
    let route = shared
        .tables
        .borrow()
        .route_inbound(authority.as_str(), &shared.settings.cluster_domain);
    let backend_addr = match route {
        Ok(addr) => addr,
        Err(refusal) => {
            return refuse(
                &mut respond,
                &shared,
                &peer,
                authority.as_str(),
                refusal.status(),
                refusal.reason(),
            );
        }
    };
    let started = Instant::now();
    let dial = tokio::time::timeout(super::DIAL_TIMEOUT, TcpStream::connect(backend_addr));
    let dialed = tokio::select! {
        d = dial => d,
        // The client gave up (or the connection died) while we dialled: nothing to answer.
        _ = std::future::poll_fn(|cx| respond.poll_reset(cx)) => return,
        _ = cut.cancelled() => return,
    };
    shared
        .metrics
        .dial_duration
        .observe(started.elapsed().as_secs_f64());
    let backend = match dialed {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            if let Some(suppressed) = shared.logs.allow("dial_failed") {
                tracing::warn!(%authority, suppressed, %backend_addr, error = %e, "dialing the exported service failed");
            }
            return refuse(
                &mut respond,
                &shared,
                &peer,
                authority.as_str(),
                StatusCode::BAD_GATEWAY,
                "dial_failed",
            );
        }
        Err(_) => {
            if let Some(suppressed) = shared.logs.allow("dial_timeout") {
                tracing::warn!(%authority, suppressed, %backend_addr, "dialing the exported service timed out");
            }
            return refuse(
                &mut respond,
                &shared,
                &peer,
                authority.as_str(),
                StatusCode::GATEWAY_TIMEOUT,
                "dial_timeout",
            );
        }
    };
    let _ = backend.set_nodelay(true);
    let send = match respond.send_response(Response::new(()), false) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%authority, error = %e, "CONNECT stream closed before the answer");
            super::tunnel::reset_tcp(backend);
            return;
        }
    };
    shared.metrics.inbound.ok.inc();
    let side = &shared.metrics.inbound;
    side.open.inc();
    let o = super::tunnel::splice(
        backend,
        send,
        req.into_body(),
        shared.settings.idle_timeout,
        &cut,
    )
    .await;
    side.open.dec();
    side.add_bytes(o.from_h2, o.from_tcp);
    if let Err(cause) = o.result {
        shared.metrics.reset(INBOUND, cause.label());
        tracing::debug!(%peer, %authority, cause = cause.label(), "inbound tunnel reset");
    }
}
