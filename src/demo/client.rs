//! The demo's client Pod (`mc demo client`, hidden): an HTTP server on the Pod IP that, asked
//! `GET /burst?target=IP:PORT&n=N&concurrency=C`, makes N HTTP/1.0 requests to the target, each
//! on a new TCP connection (the split is per connection), and answers with the tally of the
//! bodies (agnhost `serve-hostname` answers its Pod name). The demo drives it from outside the
//! cluster; a user can `curl` it the same way.
//!
//! ```text
//! mc demo ──GET /burst──▶ client Pod (east) ──N × new TCP──▶ apex ClusterIP ─▶ gateway ─▶ ...
//!         ◀──{"answers":{pod:count},"failures":f}──
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Port of the client Pod's server.
pub const CLIENT_PORT: u16 = 8080;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds what one request can ask of the client.
const MAX_CONNECTIONS: u32 = 100_000;
const MAX_CONCURRENCY: u32 = 64;

/// What one burst saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Burst {
    /// Answer (the backend Pod's name) → connections it answered.
    pub answers: BTreeMap<String, u32>,
    /// Connections refused, reset or unanswered.
    pub failures: u32,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot listen on {addr} for the demo client")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// One request over one new connection: the body of a 200 answer, trimmed.
pub async fn get_once(target: SocketAddr) -> Option<String> {
    http_get(target, "/").await
}

/// `GET path` over HTTP/1.0 on a new connection: the body of a 200 answer, trimmed, if any.
pub async fn http_get(target: SocketAddr, path: &str) -> Option<String> {
    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: backend\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(ANSWER_TIMEOUT, s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = body.trim();
    (head.contains(" 200 ") && !body.is_empty()).then(|| body.to_owned())
}

/// `n` connections to `target`, `concurrency` at a time.
pub async fn burst(target: SocketAddr, n: u32, concurrency: u32) -> Burst {
    let started = Instant::now();
    let next = Arc::new(AtomicU32::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, MAX_CONCURRENCY) {
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Burst::default();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                match get_once(target).await {
                    Some(answer) => *mine.answers.entry(answer).or_default() += 1,
                    None => mine.failures += 1,
                }
            }
            mine
        }));
    }
    let mut total = Burst::default();
    for w in workers {
        if let Ok(b) = w.await {
            for (k, v) in b.answers {
                *total.answers.entry(k).or_default() += v;
            }
            total.failures += b.failures;
        }
    }
    total.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    total
}

/// The burst a query asks for: `target`, `n` (default 100), `concurrency` (default 8).
pub fn parse_query(query: &str) -> Result<(SocketAddr, u32, u32), String> {
    let mut target = None;
    let mut n = 100;
    let mut concurrency = 8;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "target" => {
                target = Some(
                    v.parse::<SocketAddr>()
                        .map_err(|_| format!("target {v:?} is not IP:PORT"))?,
                )
            }
            "n" => {
                n = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_CONNECTIONS).contains(n))
                    .ok_or_else(|| format!("n must be 1..={MAX_CONNECTIONS}"))?
            }
            "concurrency" => {
                concurrency = v
                    .parse()
                    .ok()
                    .filter(|c| (1..=MAX_CONCURRENCY).contains(c))
                    .ok_or_else(|| format!("concurrency must be 1..={MAX_CONCURRENCY}"))?
            }
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    let target = target.ok_or("target=IP:PORT is required")?;
    Ok((target, n, concurrency))
}

async fn respond(path: &str, query: &str) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    match path {
        "/ready" | "/live" => text(StatusCode::OK, "ok\n".into()),
        "/burst" => match parse_query(query) {
            Ok((target, n, c)) => {
                let b = burst(target, n, c).await;
                text(
                    StatusCode::OK,
                    serde_json::to_string(&b).unwrap_or_default() + "\n",
                )
            }
            Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "try /burst?target=IP:PORT&n=100&concurrency=8\n".into(),
        ),
    }
}

/// Serves until `stop`.
pub async fn serve(addr: SocketAddr, stop: CancellationToken) -> Result<(), ClientError> {
    let listener =
        crate::runtime::listen(addr).map_err(|source| ClientError::Listen { addr, source })?;
    tracing::info!(%addr, "demo client listening");
    crate::runtime::accept_loop(listener, "client", stop, |tcp, _| {
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_owned();
                    let query = req.uri().query().unwrap_or("").to_owned();
                    async move { Ok::<_, Infallible>(respond(&path, &query).await) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    })
    .await;
    Ok(())
}

/// Asks the client Pod at `client` for a burst (from the demo, outside the cluster).
pub async fn request_burst(
    client: SocketAddr,
    target: SocketAddr,
    n: u32,
    concurrency: u32,
) -> Option<Burst> {
    let mut s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(client))
        .await
        .ok()?
        .ok()?;
    let req = format!(
        "GET /burst?target={target}&n={n}&concurrency={concurrency} HTTP/1.0\r\nHost: client\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    // A burst takes as long as its connections; a whole one at most this.
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.contains(" 200 ") {
        return None;
    }
    serde_json::from_str(body.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_with_defaults_and_bounds() {
        assert_eq!(
            parse_query("target=127.0.0.1:80"),
            Ok(("127.0.0.1:80".parse().unwrap(), 100, 8))
        );
        assert_eq!(
            parse_query("target=127.0.0.1:80&n=1000&concurrency=4"),
            Ok(("127.0.0.1:80".parse().unwrap(), 1000, 4))
        );
        for bad in [
            "",
            "target=backend:80",
            "target=127.0.0.1:80&n=0",
            "target=127.0.0.1:80&concurrency=1000",
            "target=127.0.0.1:80&x=1",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_burst_tallies_answers_and_counts_refused_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\npod-a").await;
                });
            }
        });
        let b = burst(addr, 20, 4).await;
        assert_eq!(b.answers, BTreeMap::from([("pod-a".to_owned(), 20)]));
        assert_eq!(b.failures, 0);
        // Bound but not listening: the port refuses connections and stays ours meanwhile.
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = burst(held.local_addr().unwrap(), 5, 2).await;
        assert_eq!((b.answers.len(), b.failures), (0, 5));
    }
}
