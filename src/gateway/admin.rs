//! Admin HTTP/1 server: `/live`, `/ready` (identity minted and tables synced), `/metrics`.
//! Plain HTTP on the probe port; it exposes no secrets.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Metrics;

/// `header_timeout` bounds how long a client may take to send a request's headers (the probe
/// port is unauthenticated: a slow client must not hold a connection forever).
pub(crate) async fn serve(
    listener: TcpListener,
    header_timeout: std::time::Duration,
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
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning a core until a descriptor frees.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let identity = identity.clone();
        let synced = synced.clone();
        let hard = hard.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let r = respond(
                    req.uri().path(),
                    &metrics,
                    *identity.borrow(),
                    *synced.borrow(),
                );
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = conn => {}
                _ = hard.cancelled() => {}
            }
        });
    }
}

fn respond(path: &str, metrics: &Metrics, identity: bool, synced: bool) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    match path {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> String {
        let b = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn ready_is_503_naming_what_is_missing_until_identity_and_tables_are_there() {
        let m = Metrics::new();
        let r = respond("/ready", &m, true, false);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = body(r).await;
        assert!(
            text.contains("routing tables") && !text.contains("identity"),
            "{text}"
        );
        assert_eq!(respond("/ready", &m, true, true).status(), StatusCode::OK);
        assert_eq!(respond("/live", &m, false, false).status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text_and_unknown_paths_are_404() {
        let m = Metrics::new();
        m.inbound.ok.inc();
        let r = respond("/metrics", &m, true, true);
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        assert!(
            body(r)
                .await
                .contains("mc_gateway_streams_total{side=\"inbound\",result=\"ok\"} 1")
        );
        assert_eq!(
            respond("/nope", &m, true, true).status(),
            StatusCode::NOT_FOUND
        );
    }
}
