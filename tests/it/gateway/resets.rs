//! Abnormal ends look abnormal (RFC 9113 §8.5): a TCP RST on one side becomes RST_STREAM
//! (CONNECT_ERROR) between the gateways and an RST on the other side; refusals, drain deadlines
//! and a lost peer reset the local sockets instead of closing them with a FIN; every reset is
//! counted in `tunnel_resets_total`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::LIMIT;
use super::harness::*;

/// Reads until the end; `Ok` for a FIN, the error otherwise.
async fn read_to_end(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut out))
        .await
        .expect("the connection neither ended nor failed")?;
    Ok(out)
}

/// Points west's `backend.default:8888` at `addr`.
fn retarget(p: &Pair, addr: SocketAddr) {
    p.west
        .update(|t| t.apply_service("default", "backend", export(true, 8888, addr)));
}

/// A backend that echoes what it reads and reports how its connection ended (`Ok(bytes)` for a
/// FIN, the error kind otherwise).
async fn reporting_echo() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Result<usize, io::ErrorKind>>,
) {
    let l = mc::runtime::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut total = 0;
                let mut buf = [0u8; 4096];
                let end = loop {
                    match s.read(&mut buf).await {
                        Ok(0) => break Ok(total),
                        Ok(n) => {
                            total += n;
                            if s.write_all(&buf[..n]).await.is_err() {
                                break Err(io::ErrorKind::BrokenPipe);
                            }
                        }
                        Err(e) => break Err(e.kind()),
                    }
                };
                let _ = tx.send(end);
            });
        }
    });
    (addr, rx)
}

async fn wait_metric(gw: &Gw, line: &str) {
    eventually(line, LIMIT, || async {
        (gw.metric(line) >= 1.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_reset_reaches_the_client_as_a_reset() {
    let p = pair().await;
    open_tunnel(p.outbound, b"warm").await;
    let l = mc::runtime::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    retarget(&p, l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 5];
                let _ = s.read_exact(&mut b).await;
                let _ = s.write_all(b"partial").await;
                let _ = s.set_zero_linger();
            });
        }
    });
    let mut client = TcpStream::connect(p.outbound).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let end = read_to_end(&mut client).await;
    assert_eq!(
        end.map_err(|e| e.kind()).err(),
        Some(io::ErrorKind::ConnectionReset),
        "a backend's RST must not reach the client as a complete answer"
    );
    wait_metric(
        &p.west,
        "mc_gateway_tunnel_resets_total{side=\"inbound\",cause=\"tcp_error\"}",
    )
    .await;
    wait_metric(
        &p.east,
        "mc_gateway_tunnel_resets_total{side=\"outbound\",cause=\"peer_reset\"}",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reset_reaches_the_backend_as_a_reset() {
    let p = pair().await;
    open_tunnel(p.outbound, b"warm").await;
    let (addr, mut ends) = reporting_echo().await;
    retarget(&p, addr);
    let mut client = TcpStream::connect(p.outbound).await.unwrap();
    client.write_all(b"upload").await.unwrap();
    let mut b = [0u8; 6];
    client.read_exact(&mut b).await.unwrap();
    client.set_zero_linger().unwrap();
    drop(client);
    let end = tokio::time::timeout(LIMIT, ends.recv()).await.unwrap();
    assert_eq!(
        end,
        Some(Err(io::ErrorKind::ConnectionReset)),
        "a client's RST must not reach the backend as a complete upload"
    );
    wait_metric(
        &p.east,
        "mc_gateway_tunnel_resets_total{side=\"outbound\",cause=\"tcp_error\"}",
    )
    .await;
    wait_metric(
        &p.west,
        "mc_gateway_tunnel_resets_total{side=\"inbound\",cause=\"peer_reset\"}",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stream_is_a_reset_not_an_empty_answer() {
    let p = pair().await;
    open_tunnel(p.outbound, b"warm").await;
    p.east.update(|t| {
        t.listeners.get_mut(&p.port).unwrap().authority = PRIVATE.into();
    });
    // The reset can come so fast that it is reported by the connect itself.
    let end = match TcpStream::connect(p.outbound).await {
        Ok(mut client) => {
            let _ = client.write_all(b"hello").await;
            read_to_end(&mut client).await
        }
        Err(e) => Err(e),
    };
    assert_eq!(
        end.map_err(|e| e.kind()).err(),
        Some(io::ErrorKind::ConnectionReset)
    );
    wait_metric(
        &p.east,
        "mc_gateway_tunnel_resets_total{side=\"outbound\",cause=\"refused\"}",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_deadline_resets_the_tunnels_it_cuts_on_both_sides() {
    let p = pair().await;
    open_tunnel(p.outbound, b"warm").await;
    let (addr, mut ends) = reporting_echo().await;
    retarget(&p, addr);
    let mut client = TcpStream::connect(p.outbound).await.unwrap();
    client.write_all(b"begun").await.unwrap();
    let mut b = [0u8; 5];
    client.read_exact(&mut b).await.unwrap();
    let Pair { east, west, .. } = p;
    east.running.shutdown(Duration::from_millis(50)).await;
    let end = read_to_end(&mut client).await;
    assert_eq!(
        end.map_err(|e| e.kind()).err(),
        Some(io::ErrorKind::ConnectionReset),
        "the client of a cut tunnel must see a reset"
    );
    let end = tokio::time::timeout(LIMIT, ends.recv()).await.unwrap();
    assert_eq!(end, Some(Err(io::ErrorKind::ConnectionReset)));
    drop(west);
}

/// The peer dies while the backend does not read (so the tunnel's write towards it is blocked):
/// the tunnel must still end, with a reset, instead of waiting for the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_peer_resets_tunnels_even_when_their_backend_does_not_read() {
    let p = pair().await;
    open_tunnel(p.outbound, b"warm").await;
    let l = mc::runtime::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    retarget(&p, l.local_addr().unwrap());
    let (read_now_tx, read_now) = oneshot::channel::<()>();
    let (end_tx, end_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).await.unwrap();
        s.write_all(b"ready").await.unwrap();
        // Stop reading until told to.
        let _ = read_now.await;
        let mut sink = Vec::new();
        let _ = end_tx.send(s.read_to_end(&mut sink).await.map_err(|e| e.kind()));
    });
    let client = TcpStream::connect(p.outbound).await.unwrap();
    let (mut rd, mut wr) = client.into_split();
    wr.write_all(b"hello").await.unwrap();
    let mut b = [0u8; 5];
    rd.read_exact(&mut b).await.unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        while wr.write_all(&chunk).await.is_ok() {
            w.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    // Every buffer between the client and the backend is full once the writer stops advancing.
    let mut seen = 0;
    eventually("the upload to stall", LIMIT, || {
        let now = written.load(Ordering::Relaxed);
        let stalled = now > 0 && now == seen;
        seen = now;
        async move { stalled.then_some(()) }
    })
    .await;

    let Pair { east, west, .. } = p;
    // Killed in-process, east may still reset the stream before its connection drops: either
    // cause is a reset.
    east.running.kill();
    eventually("west to reset the tunnel", LIMIT, || async {
        let text = west.running.metrics.encode();
        let resets: f64 = text
            .lines()
            .filter(|l| l.starts_with("mc_gateway_tunnel_resets_total{side=\"inbound\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (resets >= 1.0).then_some(())
    })
    .await;
    assert_eq!(
        west.metric("mc_gateway_open_streams{side=\"inbound\"}"),
        0.0
    );
    let _ = read_now_tx.send(());
    let end = tokio::time::timeout(LIMIT, end_rx).await.unwrap().unwrap();
    assert_eq!(end, Err(io::ErrorKind::ConnectionReset));
}
