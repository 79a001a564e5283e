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
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    let mut h2 = h2::server::Builder::new();
    h2.initial_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .max_header_list_size(super::MAX_HEADER_LIST)
        .max_concurrent_streams(shared.settings.max_streams_per_peer);
    let h2 = Arc::new(h2);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(
        shared.settings.max_pending_handshakes,
    ));
    loop {
        let accepted = tokio::select! {
            _ = shared.stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, remote)) => {
                // Peers are pooled and reconnect rarely: a flood of handshakes is not a peer, and
                // refusing it beats being OOM-killed with every open tunnel.
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    shared.metrics.connection(INBOUND, "handshake_overload");
                    tracing::debug!(%remote, "too many TLS handshakes in flight; closing");
                    drop(tcp);
                    continue;
                };
                tokio::spawn(connection(
                    permit,
                    tcp,
                    remote,
                    acceptor.clone(),
                    h2.clone(),
                    shared.clone(),
                ));
            }
            Err(e) => {
                // Usually EMFILE: back off a little instead of spinning.
                tracing::warn!(error = %e, "inbound accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!("inbound listener stopped");
}

async fn connection(
    handshake_permit: tokio::sync::OwnedSemaphorePermit,
    tcp: TcpStream,
    remote: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    h2: Arc<h2::server::Builder>,
    shared: Arc<Shared>,
) {
    let _guard = shared.drain_guard();
    let _ = tcp.set_nodelay(true);
    let tls =
        match tokio::time::timeout(shared.settings.handshake_timeout, acceptor.accept(tcp)).await {
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
                        shared.metrics.connection(INBOUND, "certificate_rejected");
                        tracing::info!(%remote, %reason, "refused an inbound client certificate");
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
    drop(handshake_permit);
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
        tracing::info!(%remote, %peer, not_after = ?not_after.map(humantime::format_rfc3339_seconds), "refusing a resumed TLS session whose client certificate has expired");
        return;
    };
    shared.metrics.connection(INBOUND, "ok");
    tracing::debug!(%remote, %peer, "inbound connection from a gateway");

    let handshake = tokio::time::timeout(shared.settings.handshake_timeout, h2.handshake(tls));
    let mut conn = match handshake.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(%remote, %peer, error = %e, "inbound HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, %peer, "inbound HTTP/2 handshake timed out");
            return;
        }
    };
    // Tunnels of this connection end (with resets) when it ends, whatever the reason.
    let cut = shared.hard.child_token();
    let _cut_on_exit = cut.clone().drop_guard();
    let keepalive = super::keepalive(conn.ping_pong(), KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
    tokio::pin!(keepalive);
    let expiry = tokio::time::sleep(until_expiry);
    tokio::pin!(expiry);
    let mut closing = false;
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((req, respond))) => {
                    tokio::spawn(stream(req, respond, shared.clone(), peer.clone(), cut.clone()));
                }
                Some(Err(e)) => {
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
            _ = shared.hard.cancelled() => break,
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
    tracing::info!(%peer, %authority, %status, reason, "refused an inbound stream");
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
            tracing::warn!(%authority, %backend_addr, error = %e, "dialing the exported service failed");
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
            tracing::warn!(%authority, %backend_addr, "dialing the exported service timed out");
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
