//! What one peer identity can hold: its stream budget is shared by all its connections, and it
//! keeps at most two connections (a newer one cuts the oldest).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::LIMIT;
use super::harness::*;

/// A raw HTTP/2 connection to a gateway's inbound side, as a peer gateway would open it.
pub async fn h2_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(WEST_ID.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    send
}

/// Sends a CONNECT; `Ok(status, stream)` or the error (a reset) as text.
pub async fn h2_open(
    send: &h2::client::SendRequest<Bytes>,
    authority: &str,
) -> Result<(u16, h2::SendStream<Bytes>, h2::RecvStream), String> {
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(authority)
        .body(())
        .unwrap();
    let mut send = send.clone().ready().await.map_err(|e| e.to_string())?;
    let (res, stream) = send.send_request(req, false).map_err(|e| e.to_string())?;
    let res = tokio::time::timeout(LIMIT, res)
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok((res.status().as_u16(), stream, res.into_body()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers_stream_budget_is_shared_by_its_connections() {
    let west_settings = mc::gateway::Settings {
        max_streams_per_peer: 2,
        ..settings()
    };
    let p = pair_with(west_settings, settings()).await;
    // East's own pool connection (same identity) must be the oldest, so that `b` below cuts it
    // and not `a`: under load it could otherwise connect after `a`.
    eventually("east's pool to west to be ready", LIMIT, || async {
        (p.east
            .metric("mc_gateway_peer_pool_state{peer=\"west\",state=\"ready\"}")
            == 1.0)
            .then_some(())
    })
    .await;
    let config = client_config(&p.pki.anchor.cert_pem, Some(east_identity(&p.pki)));
    let addr = p.west.running.inbound_addr;
    let a = h2_connect(addr, config.clone()).await;
    let (s1, _t1, _r1) = h2_open(&a, BACKEND).await.unwrap();
    let (s2, _t2, _r2) = h2_open(&a, BACKEND).await.unwrap();
    assert_eq!((s1, s2), (200, 200));
    let b = h2_connect(addr, config).await;
    let third = h2_open(&b, BACKEND).await.map(|(s, ..)| s);
    assert!(
        third.as_ref().is_err_and(|e| e.contains("refused")),
        "a second connection must not double the peer's stream budget: {third:?}"
    );
    assert_eq!(
        p.west
            .metric("mc_gateway_streams_total{side=\"inbound\",result=\"peer_stream_limit\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_holds_at_most_two_connections_and_a_newer_one_cuts_the_oldest() {
    let p = pair().await;
    // East's own pool may hold a connection of this identity already; start from a known state.
    p.east.update(|t| t.peers.clear());
    let config = client_config(&p.pki.anchor.cert_pem, Some(east_identity(&p.pki)));
    let addr = p.west.running.inbound_addr;
    let oldest = h2_connect(addr, config.clone()).await;
    let (status, _send, mut recv) = h2_open(&oldest, BACKEND).await.unwrap();
    assert_eq!(status, 200);
    let _second = h2_connect(addr, config.clone()).await;
    let third = h2_connect(addr, config).await;
    assert_eq!(h2_open(&third, BACKEND).await.map(|(s, ..)| s), Ok(200));
    // The oldest connection's tunnel ends with an error, not a clean end of data.
    let end = tokio::time::timeout(LIMIT, recv.data()).await.unwrap();
    assert!(matches!(end, Some(Err(_))), "{end:?}");
    eventually("the eviction to be counted", LIMIT, || async {
        (p.west
            .metric("mc_gateway_connections_total{side=\"inbound\",result=\"evicted_by_newer\"}")
            >= 1.0)
            .then_some(())
    })
    .await;
}

/// East may open one stream to west: a second client queues (counted), is skipped when it leaves
/// while queued, and is reset at the queue deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_clients_have_a_deadline_and_are_skipped_once_gone() {
    use tokio::io::AsyncReadExt;
    let east_settings = mc::gateway::Settings {
        max_streams_per_peer: 1,
        queue_timeout: std::time::Duration::from_millis(300),
        ..settings()
    };
    let p = pair_with(settings(), east_settings).await;
    let _held = open_tunnel(p.outbound, b"holds the only slot").await;
    let accepted = p.backend.accepted();

    // A client that leaves while queued: its stream is never opened.
    let gone = TcpStream::connect(p.outbound).await.unwrap();
    eventually("the client to be queued", LIMIT, || async {
        (p.east.metric("mc_gateway_queued_streams ") == 1.0).then_some(())
    })
    .await;
    drop(gone);
    eventually("the departed client to be counted", LIMIT, || async {
        (p.east
            .metric("mc_gateway_streams_total{side=\"outbound\",result=\"client_gone\"}")
            == 1.0)
            .then_some(())
    })
    .await;

    // A client that stays is reset at the deadline.
    let mut waits = TcpStream::connect(p.outbound).await.unwrap();
    let mut buf = Vec::new();
    let end = tokio::time::timeout(LIMIT, waits.read_to_end(&mut buf))
        .await
        .unwrap();
    assert_eq!(
        end.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionReset)
    );
    assert_eq!(
        p.east
            .metric("mc_gateway_streams_total{side=\"outbound\",result=\"queue_timeout\"}"),
        1.0
    );
    assert_eq!(p.east.metric("mc_gateway_queued_streams "), 0.0);
    assert_eq!(p.backend.accepted(), accepted, "a queued stream was opened");
}

/// Beyond the peer's stream limit, services take turns: the waiter of a quiet service is served
/// before a busy service's second waiter, although it arrived last (first come, first served
/// would let one busy service starve the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_streams_take_turns_between_services() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let east_settings = mc::gateway::Settings {
        max_streams_per_peer: 1,
        ..settings()
    };
    let p = pair_with(settings(), east_settings).await;
    let quiet = SocketAddr::new(p.outbound.ip(), OUTBOUND_PORT + 1);
    let backend = p.backend.addr;
    p.west
        .update(|t| t.apply_service("default", "quiet", export(true, 8888, backend)));
    p.east.update(|t| {
        t.listeners.insert(
            quiet.port(),
            mc::gateway::config::Listener {
                peer: "west".into(),
                authority: "quiet.default.svc.cluster.local:8888".into(),
            },
        );
    });
    eventually("the quiet service to echo", LIMIT, || async {
        echoes(quiet).await.then_some(())
    })
    .await;

    let held = open_tunnel(p.outbound, b"holds the only slot").await;
    let mut waiting = Vec::new();
    for (queued, (addr, name)) in [
        (p.outbound, "busy1"),
        (p.outbound, "busy2"),
        (quiet, "quiet"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(name.as_bytes()).await.unwrap();
        eventually("the client to be queued", LIMIT, || async {
            (p.east.metric("mc_gateway_queued_streams ") == (queued + 1) as f64).then_some(())
        })
        .await;
        waiting.push(Box::pin(async move {
            let mut echoed = [0u8; 5];
            client.read_exact(&mut echoed).await.unwrap();
            assert_eq!(&echoed, name.as_bytes());
            (name, client)
        }));
    }
    drop(held);
    // One tunnel at a time: whoever gets its echo first is done and frees the slot.
    let mut order = Vec::new();
    while !waiting.is_empty() {
        let ((name, client), _, rest) =
            tokio::time::timeout(LIMIT, futures::future::select_all(waiting))
                .await
                .expect("a queued client to be served");
        order.push(name);
        drop(client);
        waiting = rest;
    }
    let quiet_at = order.iter().position(|n| *n == "quiet").unwrap();
    assert!(
        quiet_at <= 1,
        "the quiet service must be served before the busy one's second waiter: {order:?}"
    );
}
