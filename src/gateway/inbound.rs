//! Inbound side: remote gateways -> local exported services.
//!
//! ```text
//! TCP accept ─▶ TLS 1.3 (client cert: anchor + gateway SAN, timeout) ─▶ HTTP/2 server
//!   each CONNECT stream: route(:authority) ─▶ refuse (400/403/404) | dial ClusterIP:port
//!   ─▶ 502 on dial failure | 200 + splice(stream, backend)
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::metrics::INBOUND;
use super::{REFUSAL_HEADER, Shared};

/// Accepts until `stop`; each connection is handled in its own task.
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .initial_stream_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        .max_header_list_size(super::MAX_HEADER_LIST)
        .max_concurrent_streams(shared.settings.max_streams_per_peer)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let h2 = Arc::new(h2);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(
        shared.settings.max_pending_handshakes,
    ));
    let stop = shared.stop.clone();
    crate::runtime::accept_loop(listener, "inbound", stop, move |tcp, remote| {
        // Peers are pooled and reconnect rarely: a flood of handshakes is not a peer, and
        // refusing it beats being OOM-killed with every open tunnel.
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            shared.metrics.connection(INBOUND, "handshake_overload");
            tracing::debug!(%remote, "too many TLS handshakes in flight; closing");
            drop(tcp);
            return;
        };
        tokio::spawn(connection(
            permit,
            tcp,
            remote,
            acceptor.clone(),
            h2.clone(),
            shared.clone(),
        ));
    })
    .await;
    tracing::info!("inbound listener stopped");
}

async fn connection(
    handshake_permit: tokio::sync::OwnedSemaphorePermit,
    tcp: TcpStream,
    remote: std::net::SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    h2: Arc<hyper::server::conn::http2::Builder<TokioExecutor>>,
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

    let svc_shared = shared.clone();
    let svc_peer = peer.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        let peer = svc_peer.clone();
        async move { Ok::<_, Infallible>(stream(req, shared, peer).await) }
    });
    let conn = h2.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shared.stop.cancelled() => {
            // GOAWAY: the peer opens new streams elsewhere (or reconnects), open ones finish.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                _ = shared.hard.cancelled() => Ok(()),
            }
        }
        _ = tokio::time::sleep(until_expiry) => {
            // The identity this connection was admitted with is no longer valid: no new streams
            // on it (GOAWAY); the peer reconnects and proves its current certificate, open
            // tunnels finish.
            tracing::info!(%remote, %peer, "the peer's client certificate expired; closing its connection gracefully");
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                _ = shared.hard.cancelled() => Ok(()),
            }
        }
        _ = shared.hard.cancelled() => Ok(()),
    };
    if let Err(e) = result {
        tracing::debug!(%remote, %peer, error = %e, "inbound connection ended with an error");
    }
}

fn refuse(
    shared: &Shared,
    peer: &str,
    authority: &str,
    status: StatusCode,
    reason: &'static str,
) -> Response<Empty<Bytes>> {
    shared.metrics.stream(INBOUND, reason);
    tracing::info!(%peer, %authority, %status, reason, "refused an inbound stream");
    let mut res = Response::new(Empty::new());
    *res.status_mut() = status;
    res.headers_mut()
        .insert(REFUSAL_HEADER, http::HeaderValue::from_static(reason));
    res
}

async fn stream(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: Arc<str>,
) -> Response<Empty<Bytes>> {
    if req.method() != Method::CONNECT {
        return refuse(
            &shared,
            &peer,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            "not_connect",
        );
    }
    let Some(authority) = req.uri().authority().cloned() else {
        return refuse(&shared, &peer, "", StatusCode::BAD_REQUEST, "bad_authority");
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
                &shared,
                &peer,
                authority.as_str(),
                refusal.status(),
                refusal.reason(),
            );
        }
    };
    let started = Instant::now();
    let dialed = tokio::time::timeout(super::DIAL_TIMEOUT, TcpStream::connect(backend_addr)).await;
    shared
        .metrics
        .dial_duration
        .observe(started.elapsed().as_secs_f64());
    let backend = match dialed {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%authority, %backend_addr, error = %e, "dialing the exported service failed");
            return refuse(
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
                &shared,
                &peer,
                authority.as_str(),
                StatusCode::GATEWAY_TIMEOUT,
                "dial_timeout",
            );
        }
    };
    let _ = backend.set_nodelay(true);
    shared.metrics.inbound.ok.inc();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let guard = shared.drain_guard();
    tokio::spawn(async move {
        let _guard = guard;
        let upgraded = tokio::select! {
            u = on_upgrade => u,
            _ = shared.hard.cancelled() => return,
        };
        let upgraded = match upgraded {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%authority, error = %e, "CONNECT stream closed before upgrade");
                return;
            }
        };
        let side = &shared.metrics.inbound;
        side.open.inc();
        let outcome = tokio::select! {
            o = super::tunnel::splice(TokioIo::new(upgraded), backend, shared.settings.idle_timeout) => Some(o),
            _ = shared.hard.cancelled() => None,
        };
        side.open.dec();
        if let Some(o) = outcome {
            side.add_bytes(o.to_server, o.to_client);
            if let Err(e) = o.result {
                tracing::debug!(%authority, error = %e, "inbound tunnel ended with an error");
            }
        }
    });
    Response::new(Empty::new())
}
