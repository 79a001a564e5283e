//! The admin HTTP/1 server of every long-running command: `/live`, `/ready` (from named
//! readiness gates; the 503 body lists what is not ready) and `/metrics` (Prometheus/OpenMetrics
//! text from an encoder the program passes).
//!
//! The port is unauthenticated and, for the gateway, reachable through its load balancer (remote
//! clusters probe it), so what one client can make it hold is bounded: at most
//! [`MAX_CONNECTIONS`] connections (more are closed at accept), [`MAX_HEADER_BYTES`] of request
//! head, [`HEADER_TIMEOUT`] to send it, and [`MAX_CONNECTION_AGE`] per connection. See
//! docs/security.md.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;

use super::net::{accept_loop, listen};

/// Concurrent admin connections; a kubelet, a Prometheus and a few remote probers need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// Request line plus headers. hyper's read buffer cannot be smaller than 8 KiB; the header
/// limit is what a probe or scrape sends with room to spare.
pub const MAX_HEADER_BYTES: usize = 4 * 1024;
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// Probes and scrapers send their request at once.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Keep-alive is allowed (scrapers like it) but no connection lives longer than this.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);

/// Renders the metrics text on each scrape.
pub type MetricsEncoder = Arc<dyn Fn() -> String + Send + Sync>;

/// Named readiness gates: `/ready` is 200 when every gate is open.
#[derive(Clone, Default)]
pub struct Readiness {
    gates: Arc<Mutex<Vec<(String, bool)>>>,
}

/// One condition of readiness, e.g. "routing tables (waiting for the first list of the watches)".
#[derive(Clone)]
pub struct Gate {
    gates: Arc<Mutex<Vec<(String, bool)>>>,
    index: usize,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a closed gate; `description` says what is awaited while it is closed.
    pub fn gate(&self, description: &str) -> Gate {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.push((description.to_owned(), false));
        Gate {
            gates: self.gates.clone(),
            index: gates.len() - 1,
        }
    }

    /// Descriptions of the closed gates, in the order they were added.
    pub fn missing(&self) -> Vec<String> {
        let gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates
            .iter()
            .filter(|(_, open)| !open)
            .map(|(d, _)| d.clone())
            .collect()
    }
}

impl Gate {
    pub fn set(&self, open: bool) {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = gates.get_mut(self.index) {
            g.1 = open;
        }
    }

    pub fn open(&self) {
        self.set(true);
    }
}

/// A running admin server.
pub struct AdminServer {
    pub addr: SocketAddr,
}

impl AdminServer {
    /// Binds `addr` and serves until `stop`.
    pub fn start(
        addr: SocketAddr,
        readiness: Readiness,
        metrics: MetricsEncoder,
        stop: CancellationToken,
    ) -> std::io::Result<AdminServer> {
        let listener = listen(addr)?;
        let addr = listener.local_addr()?;
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let conn_stop = stop.clone();
        tokio::spawn(accept_loop(listener, "admin", stop, move |tcp, remote| {
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::debug!(%remote, "too many admin connections; closing");
                return;
            };
            let readiness = readiness.clone();
            let metrics = metrics.clone();
            let stop = conn_stop.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = hyper::service::service_fn(move |req| {
                    let r = respond(req.uri().path(), &readiness, &metrics);
                    async move { Ok::<_, Infallible>(r) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(READ_BUFFER_BYTES)
                    .max_header_size(MAX_HEADER_BYTES)
                    .serve_connection(TokioIo::new(tcp), service);
                tokio::select! {
                    _ = conn => {}
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(MAX_CONNECTION_AGE) => {}
                }
            });
        }));
        Ok(AdminServer { addr })
    }
}

fn respond(path: &str, readiness: &Readiness, metrics: &MetricsEncoder) -> Response<Full<Bytes>> {
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
            let missing = readiness.missing();
            if missing.is_empty() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {}\n", missing.join(", ")),
                )
            }
        }
        "/metrics" => {
            let mut r = text(StatusCode::OK, metrics());
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

    fn no_metrics() -> MetricsEncoder {
        Arc::new(|| "# EOF\n".to_owned())
    }

    #[tokio::test]
    async fn ready_is_503_naming_each_closed_gate_until_all_are_open() {
        let r = Readiness::new();
        let identity = r.gate("identity (waiting for the issuer material)");
        let tables = r.gate("routing tables (waiting for the first list of the watches)");
        identity.open();
        let resp = respond("/ready", &r, &no_metrics());
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = body(resp).await;
        assert!(
            text.contains("routing tables") && !text.contains("identity"),
            "{text}"
        );
        tables.open();
        assert_eq!(
            respond("/ready", &r, &no_metrics()).status(),
            StatusCode::OK
        );
        tables.set(false);
        assert_eq!(
            respond("/ready", &r, &no_metrics()).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(respond("/live", &r, &no_metrics()).status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_come_from_the_encoder_as_openmetrics_and_unknown_paths_are_404() {
        let r = Readiness::new();
        let m: MetricsEncoder = Arc::new(|| "x_total 1\n# EOF\n".to_owned());
        let resp = respond("/metrics", &r, &m);
        assert!(
            resp.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        assert!(body(resp).await.contains("x_total 1"));
        assert_eq!(respond("/nope", &r, &m).status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn oversized_request_heads_are_refused_and_connections_are_capped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stop = CancellationToken::new();
        let server = AdminServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Readiness::new(),
            no_metrics(),
            stop.clone(),
        )
        .unwrap();
        let mut big = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "GET /live HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n",
            "a".repeat(2 * MAX_HEADER_BYTES)
        );
        let _ = big.write_all(head.as_bytes()).await;
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), big.read_to_end(&mut reply)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");

        // Fill every slot with idle connections; the next one is closed without an answer.
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
        }
        // Let the server accept them all before the extra one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut extra = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await;
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), extra.read_to_end(&mut got)).await;
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
        drop(held);
        stop.cancel();
    }
}
