//! Admin HTTP/1 server: `/live`, `/ready` (identity minted and tables synced), `/metrics`.
//! Plain HTTP on the probe port; it exposes no secrets.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Metrics;

pub(crate) async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    identity: watch::Receiver<bool>,
    synced: watch::Receiver<bool>,
    hard: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = hard.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let metrics = metrics.clone();
        let identity = identity.clone();
        let synced = synced.clone();
        let hard = hard.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let r = respond(&req, &metrics, *identity.borrow(), *synced.borrow());
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = conn => {}
                _ = hard.cancelled() => {}
            }
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    metrics: &Metrics,
    identity: bool,
    synced: bool,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    match req.uri().path() {
        "/live" => text(StatusCode::OK, "live\n".into()),
        "/ready" => {
            if identity && synced {
                text(StatusCode::OK, "ready\n".into())
            } else {
                let mut missing = Vec::new();
                if !identity {
                    missing.push("identity (waiting for the issuer material)");
                }
                if !synced {
                    missing.push("routing tables (waiting for the first list of the watches)");
                }
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", missing.join(", ")),
                )
            }
        }
        "/metrics" => {
            let mut r = text(StatusCode::OK, metrics.encode());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /live, /ready or /metrics\n".into(),
        ),
    }
}
