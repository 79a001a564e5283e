//! `mc gateway` end to end on loopback: two in-process gateways (east -> west), real TLS,
//! HTTP/2 and TCP echo backends; plus one run of the built binary with a static config.

pub mod harness;
mod kube;
mod limits;
mod logs;
mod pki;
mod resets;
mod scale;
mod trust;

use std::time::{Duration, SystemTime};

use harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_flow_both_ways_through_the_gateway_pair() {
    let p = pair().await;
    eventually("east's listener and pool", LIMIT, || async {
        echoes(p.outbound).await.then_some(())
    })
    .await;
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let back = roundtrip(p.outbound, &payload).await.unwrap();
    assert_eq!(back, payload);
    assert!(p.backend.accepted() >= 2);
    // Byte counters are added when tunnels close; the west side closes last.
    eventually("byte counters", LIMIT, || async {
        (p.east
            .metric("mc_gateway_bytes_total{side=\"outbound\",direction=\"to_server\"}")
            >= payload.len() as f64
            && p.west
                .metric("mc_gateway_bytes_total{side=\"inbound\",direction=\"to_client\"}")
                >= payload.len() as f64)
            .then_some(())
    })
    .await;
    assert!(
        p.west
            .metric("mc_gateway_streams_total{side=\"inbound\",result=\"ok\"}")
            >= 2.0
    );
    assert_eq!(
        p.east
            .metric("mc_gateway_peer_pool_state{peer=\"west\",state=\"ready\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_valid_gateway_certificate_are_refused_at_the_handshake() {
    let p = pair().await;
    let addr = p.west.running.inbound_addr;
    let anchor = &p.pki.anchor.cert_pem;
    let now = SystemTime::now();
    let gw_east = "mc-gateway.mc-system.east.cluster.local";
    let cases = [
        ("no client certificate", client_config(anchor, None)),
        (
            "a certificate from another anchor",
            client_config(
                anchor,
                Some(issuer_leaf(&p.pki.stranger_issuer, &[gw_east], &[])),
            ),
        ),
        (
            "an expired certificate",
            client_config(
                anchor,
                Some(pki::leaf(
                    &p.pki.east,
                    &[gw_east],
                    &[],
                    now - Duration::from_secs(2 * 86400),
                    now - Duration::from_secs(86400),
                )),
            ),
        ),
        (
            "another cluster's gateway name from an issuer constrained to west",
            client_config(anchor, Some(issuer_leaf(&p.pki.west, &[gw_east], &[]))),
        ),
        (
            "a gateway name of another namespace",
            client_config(
                anchor,
                Some(issuer_leaf(
                    &p.pki.east,
                    &["mc-gateway.other-ns.east.cluster.local"],
                    &["spiffe://cluster.local/cluster/east/ns/other-ns/sa/mc-gateway"],
                )),
            ),
        ),
        (
            "a non-gateway identity from a trusted issuer",
            client_config(
                anchor,
                Some(issuer_leaf(
                    &p.pki.east,
                    &["backend.default.east.cluster.local"],
                    &["spiffe://cluster.local/cluster/east/ns/default/sa/backend"],
                )),
            ),
        ),
    ];
    for (what, config) in cases {
        let r = connect_once(addr, config, BACKEND).await;
        assert!(r.is_err(), "{what} was accepted: {r:?}");
    }
    // The server counts after sending its alert, so the client may see the failure first.
    eventually("six inbound handshake failures", LIMIT, || async {
        let failures = p
            .west
            .metric("mc_gateway_tls_handshake_failures_total{side=\"inbound\"}");
        (failures == 6.0).then_some(())
    })
    .await;
    assert_eq!(
        p.backend.accepted(),
        0,
        "no refused client may reach the backend"
    );
    // The reason class is in the metric, so "why is east refused?" has an answer on west.
    let m = |result: &str| {
        p.west.metric(&format!(
            "mc_gateway_connections_total{{side=\"inbound\",result=\"{result}\"}}"
        ))
    };
    assert_eq!(m("no_certificate"), 1.0);
    // Every refusal is in the handshake failures, and an expired certificate is named as such.
    assert_eq!(m("certificate_expired"), 1.0);
    assert_eq!(m("certificate_rejected"), 4.0);

    // The same path with a real gateway identity works, so the refusals above mean something.
    let ok = connect_once(
        addr,
        client_config(anchor, Some(east_identity(&p.pki))),
        BACKEND,
    )
    .await;
    assert_eq!(ok, Ok((200, String::new())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_a_connection_nor_a_session_ticket_outlives_the_client_certificate() {
    let p = pair().await;
    let addr = p.west.running.inbound_addr;
    let now = SystemTime::now();
    // Whole seconds, as certificates store them.
    let expiry = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 3,
        );
    let short = pki::leaf(
        &p.pki.east,
        &["mc-gateway.mc-system.east.cluster.local"],
        &[],
        now - Duration::from_secs(60),
        expiry,
    );
    // One config, so its session cache carries the ticket from the first to the second handshake.
    let config = client_config(&p.pki.anchor.cert_pem, Some(short));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let server = rustls::pki_types::ServerName::try_from(WEST_ID).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(server.clone(), tcp)
        .await
        .unwrap();
    let (mut first, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let first_conn = tokio::spawn(conn);
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(PRIVATE)
        .body(http_body_util::Empty::new())
        .unwrap();
    assert_eq!(first.send_request(req).await.unwrap().status(), 403);
    // While the certificate is valid, resuming works (the check below does not break tickets).
    let (kind, r) = connect_with_kind(addr, config.clone(), PRIVATE).await;
    assert_eq!(kind, Some(rustls::HandshakeKind::Resumed));
    assert_eq!(r, Ok(403));
    // The connection admitted with that certificate does not outlive it (GOAWAY, then closed),
    // although this client keeps it open and HTTP/2 pings keep it alive.
    eventually("west to close the connection at expiry", LIMIT, || async {
        first_conn.is_finished().then_some(())
    })
    .await;
    // Certificate times have one-second resolution: wait until it is surely expired.
    eventually("the client certificate to expire", LIMIT, || async {
        (SystemTime::now() > expiry + Duration::from_secs(1)).then_some(())
    })
    .await;
    let accepted = p.backend.accepted();

    let (kind, r) = connect_with_kind(addr, config, BACKEND).await;
    assert_eq!(
        kind,
        Some(rustls::HandshakeKind::Resumed),
        "the test must exercise resumption"
    );
    assert!(
        r.is_err(),
        "a resumed session with an expired certificate got {r:?}"
    );
    assert_eq!(p.backend.accepted(), accepted);
    eventually("the refusal to be counted", LIMIT, || async {
        (p.west.metric(
            "mc_gateway_connections_total{side=\"inbound\",result=\"certificate_expired\"}",
        ) == 1.0)
            .then_some(())
    })
    .await;
    assert!(
        p.west
            .metric("mc_gateway_tls_handshake_failures_total{side=\"inbound\"}")
            >= 1.0,
        "a refused resumption is a failed handshake"
    );
}

/// One TLS connection and one CONNECT: how the handshake went (full or resumed) and the status.
/// An authenticated peer that breaks HTTP/2 is counted by cause, on the connection the refusal
/// ended: no preface at all (`h2_handshake_failed`), and a frame HTTP/2 forbids after a valid
/// preface (`protocol_error`, the connection ends with GOAWAY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_violations_by_an_authenticated_peer_are_counted_by_cause() {
    let p = pair().await;
    let addr = p.west.running.inbound_addr;
    let now = SystemTime::now();
    let leaf = pki::leaf(
        &p.pki.east,
        &["mc-gateway.mc-system.east.cluster.local"],
        &[],
        now - Duration::from_secs(60),
        now + Duration::from_secs(3600),
    );
    let config = client_config(&p.pki.anchor.cert_pem, Some(leaf));
    let server = rustls::pki_types::ServerName::try_from(WEST_ID).unwrap();
    let tls = |bytes: &'static [u8]| {
        let config = config.clone();
        let server = server.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(config)
                .connect(server, tcp)
                .await
                .unwrap();
            tls.write_all(bytes).await.unwrap();
            tls.flush().await.unwrap();
            // West ends the connection; what it sends first (GOAWAY or nothing) does not matter.
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(LIMIT, tls.read_to_end(&mut sink)).await;
        }
    };
    tls(b"GET / HTTP/1.1\r\nHost: west\r\n\r\n").await;
    eventually("the failed HTTP/2 handshake counted", LIMIT, || async {
        (p.west.metric(
            "mc_gateway_connections_total{side=\"inbound\",result=\"h2_handshake_failed\"}",
        ) == 1.0)
            .then_some(())
    })
    .await;
    // The client preface, an empty SETTINGS, then a DATA frame on stream 0 (RFC 9113 6.1: a
    // connection error of type PROTOCOL_ERROR).
    const PREFACE_THEN_DATA_ON_STREAM_0: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\
        \x00\x00\x00\x04\x00\x00\x00\x00\x00\
        \x00\x00\x01\x00\x00\x00\x00\x00\x00x";
    tls(PREFACE_THEN_DATA_ON_STREAM_0).await;
    eventually("the protocol error counted", LIMIT, || async {
        (p.west.metric(
            "mc_gateway_connection_errors_total{side=\"inbound\",cause=\"protocol_error\"}",
        ) == 1.0)
            .then_some(())
    })
    .await;
}

async fn connect_with_kind(
    addr: std::net::SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
    authority: &str,
) -> (Option<rustls::HandshakeKind>, Result<u16, String>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let server = rustls::pki_types::ServerName::try_from(WEST_ID).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server, tcp)
        .await
        .unwrap();
    let kind = tls.get_ref().1.handshake_kind();
    let status = async {
        let (mut sender, conn) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(
                    tls,
                ))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(authority)
            .body(http_body_util::Empty::new())
            .unwrap();
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(res.status().as_u16())
    };
    (kind, tokio::time::timeout(LIMIT, status).await.unwrap())
}

/// A TCP forwarder standing in for the load balancer in front of a peer's gateway pods: new
/// connections go to whatever `target` holds at accept time.
async fn forwarder(
    target: std::sync::Arc<std::sync::Mutex<std::net::SocketAddr>>,
) -> std::net::SocketAddr {
    let l = mc::runtime::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = l.accept().await {
            let to = *target.lock().unwrap();
            tokio::spawn(async move {
                if let Ok(mut up) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_peer_pod_does_not_block_new_streams_while_its_tunnels_finish() {
    init();
    let pki = pki::Pki::new();
    let backend = echo().await;
    let private = echo().await;
    let tables = west_tables(&backend, &private);
    let west1 = start_gw(settings(), "west", pki.material(&pki.west), tables.clone()).await;
    let west2 = start_gw(settings(), "west", pki.material(&pki.west), tables).await;
    let target = std::sync::Arc::new(std::sync::Mutex::new(west1.running.inbound_addr));
    let lb = forwarder(target.clone()).await;
    let lo = Loopback::lease();
    let east = start_gw(
        settings_on(&lo),
        "east",
        pki.material(&pki.east),
        east_tables(OUTBOUND_PORT, lb, WEST_ID, BACKEND),
    )
    .await;
    let outbound = lo.addr(OUTBOUND_PORT);
    eventually("a first echo", LIMIT, || async {
        echoes(outbound).await.then_some(())
    })
    .await;

    // A long-lived tunnel through west1 keeps west1 draining.
    let mut long = tokio::net::TcpStream::connect(outbound).await.unwrap();
    long.write_all(b"before").await.unwrap();
    let mut buf = [0u8; 6];
    long.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"before");

    // Rolling update: the load balancer now sends new connections to west2, west1 drains (GOAWAY).
    *target.lock().unwrap() = west2.running.inbound_addr;
    let harness::Gw { running: w1, .. } = west1;
    let draining = tokio::spawn(w1.shutdown(Duration::from_secs(600)));

    eventually("new connections to flow through west2", LIMIT, || async {
        echoes(outbound).await.then_some(())
    })
    .await;
    long.write_all(b"during").await.unwrap();
    long.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"during", "the draining tunnel must keep working");
    drop(long);
    tokio::time::timeout(LIMIT, draining)
        .await
        .unwrap()
        .unwrap();
    drop(east);
}

/// Connects from another loopback address (a different source for the per-source limit).
async fn connect_from(ip: [u8; 4], addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((ip, 0).into()).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_filling_the_handshake_slots_cannot_keep_a_peer_out() {
    let west_settings = mc::gateway::Settings {
        max_pending_handshakes: 2,
        // Longer than LIMIT: only an eviction, not the timeout, can close a silent connection.
        handshake_timeout: Duration::from_secs(600),
        ..settings()
    };
    let p = pair_with(west_settings, settings()).await;
    // East's pool is connected, so its handshake no longer holds a slot.
    eventually("a first echo", LIMIT, || async {
        echoes(p.outbound).await.then_some(())
    })
    .await;
    let addr = p.west.running.inbound_addr;
    let mut silent1 = connect_from([127, 0, 0, 2], addr).await;
    let _silent2 = connect_from([127, 0, 0, 3], addr).await;
    // Accepts are ordered: both silent connections hold the slots before the peer arrives.
    // A real peer gets in at once: the oldest silent connection makes room.
    let config = client_config(&p.pki.anchor.cert_pem, Some(east_identity(&p.pki)));
    assert_eq!(
        connect_once(addr, config, BACKEND).await,
        Ok((200, String::new()))
    );
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(LIMIT, silent1.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest silent connection was not closed: {r:?}"
    );
    assert_eq!(
        p.west
            .metric("mc_gateway_connections_total{side=\"inbound\",result=\"evicted_silent\"}"),
        1.0
    );
    // Established tunnels are unaffected.
    assert!(echoes(p.outbound).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_cannot_hold_an_admin_connection() {
    init();
    let pki = pki::Pki::new();
    let s = mc::gateway::Settings {
        handshake_timeout: Duration::from_secs(1),
        ..settings()
    };
    let gw = start_gw(s, "west", pki.material(&pki.west), Default::default()).await;
    let mut slow = tokio::net::TcpStream::connect(gw.running.admin_addr)
        .await
        .unwrap();
    slow.write_all(b"GET /live HTTP/1.1\r\n").await.unwrap();
    let mut rest = Vec::new();
    let r = tokio::time::timeout(LIMIT, slow.read_to_end(&mut rest)).await;
    assert!(
        r.is_ok(),
        "the admin server kept a slow client's connection open"
    );
    // A prompt client is still served.
    let mut ok = tokio::net::TcpStream::connect(gw.running.admin_addr)
        .await
        .unwrap();
    ok.write_all(b"GET /live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    ok.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_names_no_gateway_is_never_dialled() {
    init();
    let pki = pki::Pki::new();
    // An impostor with a certificate west's issuer could legitimately sign for a workload.
    let workload = "backend.default.west.cluster.local";
    let leaf = issuer_leaf(&pki.west, &[workload], &[]);
    let mut server =
        rustls::ServerConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
            .with_no_client_auth()
            .with_cert_resolver(mc::gateway::tls::CertStore::new(leaf));
    server.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server));
    let impostor = mc::runtime::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let impostor_addr = impostor.local_addr().unwrap();
    let dialled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = dialled.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = impostor.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut sink = Vec::new();
                    let _ = tls.read_to_end(&mut sink).await;
                }
            });
        }
    });
    let lo = Loopback::lease();
    let east = start_gw(
        settings_on(&lo),
        "east",
        pki.material(&pki.east),
        east_tables(OUTBOUND_PORT, impostor_addr, workload, BACKEND),
    )
    .await;
    eventually("east to refuse the Link", LIMIT, || async {
        (east.metric("mc_gateway_peer_connects_total{peer=\"west\",result=\"failed\"}") >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        east.metric("mc_gateway_peer_connects_total{peer=\"west\",result=\"ok\"}"),
        0.0
    );
    assert_eq!(dialled.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_the_wrong_identity_is_not_used() {
    init();
    let pki = pki::Pki::new();
    let backend = echo().await;
    let private = echo().await;
    let west = start_gw(
        settings(),
        "west",
        pki.material(&pki.west),
        west_tables(&backend, &private),
    )
    .await;
    let lo = Loopback::lease();
    // East expects "north" at west's address: webpki must reject west's certificate.
    let east = start_gw(
        settings_on(&lo),
        "east",
        pki.material(&pki.east),
        east_tables(
            OUTBOUND_PORT,
            west.running.inbound_addr,
            "mc-gateway.mc-system.north.cluster.local",
            BACKEND,
        ),
    )
    .await;
    eventually("an outbound handshake failure", LIMIT, || async {
        (east.metric("mc_gateway_tls_handshake_failures_total{side=\"outbound\"}") >= 1.0)
            .then_some(())
    })
    .await;
    assert!(!echoes(lo.addr(OUTBOUND_PORT)).await);
    assert_eq!(backend.accepted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_peer_leaves_no_pool_state_behind_and_a_moved_one_keeps_its_state() {
    let p = pair().await;
    let ready = "mc_gateway_peer_pool_state{peer=\"west\",state=\"ready\"} 1";
    eventually("the pool to west to be ready", LIMIT, || async {
        p.east
            .running
            .metrics
            .encode()
            .contains(ready)
            .then_some(())
    })
    .await;

    // The Link's address changes: the new pool owns the series, the old one's exit keeps off.
    let dead = DeadPort::new();
    p.east.update(|t| {
        if let Some(peer) = t.peers.get_mut("west") {
            peer.address = dead.addr.to_string();
        }
    });
    eventually("the moved peer to back off", LIMIT, || async {
        (p.east
            .metric("mc_gateway_peer_pool_state{peer=\"west\",state=\"backoff\"}")
            == 1.0)
            .then_some(())
    })
    .await;

    p.east.update(|t| {
        t.peers.clear();
        t.listeners.clear();
    });
    eventually(
        "the removed peer's pool state to disappear",
        LIMIT,
        || async {
            let text = p.east.running.metrics.encode();
            (!text.contains("mc_gateway_peer_pool_state{peer=\"west\"")).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexported_unknown_and_malformed_targets_get_clear_statuses_and_no_dial() {
    let p = pair().await;
    let config = client_config(&p.pki.anchor.cert_pem, Some(east_identity(&p.pki)));
    let addr = p.west.running.inbound_addr;
    let cases = [
        (PRIVATE, 403, "not_exported"),
        ("nosuch.default.svc.cluster.local:80", 404, "no_service"),
        ("backend.default.svc.cluster.local:9999", 404, "no_port"),
        ("backend.default.svc.other.domain:8888", 404, "wrong_domain"),
        ("127.0.0.1:22", 400, "bad_authority"),
        ("backend:8888", 400, "bad_authority"),
    ];
    for (authority, status, reason) in cases {
        let r = connect_once(addr, config.clone(), authority).await;
        assert_eq!(r, Ok((status, reason.to_owned())), "{authority}");
        let counted = p.west.metric(&format!(
            "mc_gateway_streams_total{{side=\"inbound\",result=\"{reason}\"}}"
        ));
        assert!(counted >= 1.0, "{reason} not counted");
    }
    assert_eq!(
        p.private.accepted(),
        0,
        "a non-exported service was dialled"
    );
    assert_eq!(p.backend.accepted(), 0);

    // A backend that is exported but down is a 502, not a hang.
    let dead = DeadPort::new();
    p.west
        .update(|t| t.apply_service("default", "dead", export(true, 80, dead.addr)));
    let r = connect_once(addr, config, "dead.default.svc.cluster.local:80").await;
    assert_eq!(r, Ok((502, "dial_failed".to_owned())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexport_while_connected_refuses_new_streams_and_keeps_the_open_one() {
    let p = pair().await;
    let mut open = open_tunnel(p.outbound, b"hello").await;
    let mut buf = [0u8; 5];
    let accepted_before = p.backend.accepted();

    p.west
        .update(|t| t.apply_service("default", "backend", export(false, 8888, p.backend.addr)));
    assert!(
        !echoes(p.outbound).await,
        "a new connection still got through after unexport"
    );
    assert_eq!(
        p.backend.accepted(),
        accepted_before,
        "the backend was dialled after unexport"
    );
    assert!(
        p.west
            .metric("mc_gateway_streams_total{side=\"inbound\",result=\"not_exported\"}")
            >= 1.0
    );
    assert!(
        p.east
            .metric("mc_gateway_streams_total{side=\"outbound\",result=\"refused\"}")
            >= 1.0
    );

    // Documented behaviour: the tunnel opened before the unexport continues.
    open.write_all(b"again").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"again");

    // Re-export: new streams flow again.
    p.west
        .update(|t| t.apply_service("default", "backend", export(true, 8888, p.backend.addr)));
    assert!(echoes(p.outbound).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_keeps_open_tunnels_and_new_handshakes_use_the_new_leaf() {
    let short = mc::gateway::Settings {
        cert_lifetime: Duration::from_secs(6),
        ..settings()
    };
    let p = pair_with(short.clone(), short).await;
    let mut open = open_tunnel(p.outbound, b"one").await;
    let first_leaf = p.west.running.certs.current().cert[0].clone();
    let mut buf = [0u8; 3];

    eventually("west and east to rotate", LIMIT, || async {
        (p.west.metric("mc_gateway_certificate_rotations_total") >= 1.0
            && p.east.metric("mc_gateway_certificate_rotations_total") >= 1.0)
            .then_some(())
    })
    .await;
    assert_ne!(p.west.running.certs.current().cert[0], first_leaf);

    open.write_all(b"two").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"two", "the open tunnel broke on rotation");

    // A fresh handshake is served the new leaf and succeeds.
    let config = client_config(&p.pki.anchor.cert_pem, Some(east_identity(&p.pki)));
    let tcp = tokio::net::TcpStream::connect(p.west.running.inbound_addr)
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(WEST_ID.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_ne!(served, first_leaf);
    assert!(echoes(p.outbound).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_reconnects_and_verifies_again_when_the_peers_certificate_expires() {
    let short_west = mc::gateway::Settings {
        cert_lifetime: Duration::from_secs(3),
        ..settings()
    };
    let p = pair_with(short_west, settings()).await;
    let mut open = open_tunnel(p.outbound, b"one").await;
    let mut buf = [0u8; 3];

    let connects = "mc_gateway_peer_connects_total{peer=\"west\",result=\"ok\"}";
    eventually(
        "east to reconnect when west's first leaf expires",
        LIMIT,
        || async { (p.east.metric(connects) >= 2.0).then_some(()) },
    )
    .await;
    assert!(echoes(p.outbound).await);
    open.write_all(b"two").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"two", "the open tunnel broke on reconnect");
    // A full handshake each time: a resumed session would restore the expired chain and reconnect
    // again at once (a burst of reconnects until the tickets run out). One reconnect per leaf.
    let n = p.east.metric(connects);
    assert!(n <= 3.0, "{n} connects: the pool is reconnecting in a loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn east_reconnects_when_west_comes_back_on_the_same_port() {
    let p = pair().await;
    eventually("a first echo", LIMIT, || async {
        echoes(p.outbound).await.then_some(())
    })
    .await;
    let west_addr = p.west.running.inbound_addr;
    let harness::Gw { running, .. } = p.west;
    running.kill();
    eventually("east to notice west is gone", LIMIT, || async {
        (p.east
            .metric("mc_gateway_peer_pool_state{peer=\"west\",state=\"ready\"}")
            == 0.0)
            .then_some(())
    })
    .await;
    assert!(
        !echoes(p.outbound).await,
        "traffic flowed while west was down"
    );

    let west_settings = mc::gateway::Settings {
        inbound_addr: west_addr,
        ..settings()
    };
    let material = p.pki.material(&p.pki.west);
    let tables = west_tables(&p.backend, &p.private);
    // The killed listener is released asynchronously: retry the bind until it is free.
    let west2 = eventually("west to bind its old port again", LIMIT, || {
        let (s, m, t) = (west_settings.clone(), material.clone(), tables.clone());
        async move {
            let (tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(t));
            let (_stx, srx) = tokio::sync::watch::channel(true);
            let r = mc::gateway::start(
                s,
                name("west"),
                material_source(m),
                mc::gateway::TableFeed {
                    tables: rx,
                    synced: srx,
                },
            )
            .await
            .ok();
            r.map(|r| (r, tx, _stx))
        }
    })
    .await;
    eventually("traffic through the re-established pool", LIMIT, || async {
        echoes(p.outbound).await.then_some(())
    })
    .await;
    assert!(
        p.east
            .metric("mc_gateway_peer_connects_total{peer=\"west\",result=\"ok\"}")
            >= 2.0
    );
    west2.0.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_waits_for_open_tunnels() {
    let p = pair().await;
    let mut open = open_tunnel(p.outbound, b"hello").await;
    let mut buf = [0u8; 5];

    let harness::Gw { running, .. } = p.east;
    // A drain timeout far beyond the test's patience: finishing means the drain completed.
    let shutdown = tokio::spawn(running.shutdown(Duration::from_secs(600)));
    eventually("east to stop accepting", LIMIT, || async {
        tokio::net::TcpStream::connect(p.outbound)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    open.write_all(b"still").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still", "the open tunnel was cut by the shutdown");
    assert!(
        !shutdown.is_finished(),
        "shutdown returned while a tunnel was open"
    );
    drop(open);
    eventually(
        "the drain to complete once the tunnel closed",
        LIMIT,
        || async { shutdown.is_finished().then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_connections_lose_nothing() {
    let p = pair().await;
    eventually("a first echo", LIMIT, || async {
        echoes(p.outbound).await.then_some(())
    })
    .await;
    let outbound = p.outbound;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        tasks.spawn(async move {
            // Distinct payload per connection, so a crossed stream would be caught.
            let payload: Vec<u8> = (0..8192u32)
                .map(|j| (j.wrapping_mul(31).wrapping_add(i.wrapping_mul(7919)) % 256) as u8)
                .collect();
            let back = roundtrip(outbound, &payload).await;
            (i, back.map(|b| b == payload))
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        let (i, r) = r.unwrap();
        match r {
            Ok(true) => ok += 1,
            Ok(false) => panic!("connection {i} got different bytes back"),
            Err(e) => panic!(
                "connection {i} failed: {e}\neast:\n{}\nwest:\n{}",
                p.east.running.metrics.encode(),
                p.west.running.metrics.encode()
            ),
        }
    }
    assert_eq!(ok, 1000);
    assert!(
        p.west
            .metric("mc_gateway_streams_total{side=\"inbound\",result=\"ok\"}")
            >= 1000.0
    );
    // All of them rode the one pooled connection.
    assert_eq!(
        p.east
            .metric("mc_gateway_peer_connects_total{peer=\"west\",result=\"ok\"}"),
        1.0
    );
}

#[test]
fn the_binary_serves_a_static_config_reports_ready_and_exits_on_sigterm() {
    init();
    let pki = pki::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let [a, c, k] = pki.write(dir.path(), &pki.west, "west");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(echo());
    let config = dir.path().join("west.yaml");
    std::fs::write(
        &config,
        format!(
            "cluster: west\nanchors: {}\nissuerCert: {}\nissuerKey: {}\nexports:\n  - name: backend\n    namespace: default\n    ports: [{{port: 8888, backend: \"{}\"}}]\n",
            a.display(),
            c.display(),
            k.display(),
            backend.addr
        ),
    )
    .unwrap();
    let GatewayProcess {
        mut child,
        inbound,
        admin,
    } = spawn_gateway(
        std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
            .args(["gateway", "--config"])
            .arg(&config)
            .args(["--inbound-addr", "127.0.0.1:0"])
            .args(["--admin-addr", "127.0.0.1:0"])
            .args(["--drain-timeout", "2s"]),
    );
    let get = |path: &str| -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(admin).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let ready = rt.block_on(eventually("/ready", LIMIT, || async {
        get("/ready").filter(|r| r.starts_with("HTTP/1.0 200"))
    }));
    assert!(ready.contains("ready"));
    let ok = rt.block_on(connect_once(
        inbound,
        client_config(&pki.anchor.cert_pem, Some(east_identity(&pki))),
        BACKEND,
    ));
    assert_eq!(ok, Ok((200, String::new())));
    let metrics = get("/metrics").unwrap();
    assert!(metrics.contains("mc_gateway_certificate_expiry_timestamp_seconds"));
    assert!(metrics.contains("mc_gateway_streams_total{side=\"inbound\",result=\"ok\"} 1"));

    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = rt.block_on(eventually("the gateway to exit", LIMIT, || {
        let r = child.try_wait().unwrap();
        async move { r }
    }));
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn a_broken_static_config_is_one_clear_error_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        "cluster: west\nanchors: nope.crt\nissuerCert: nope.crt\nissuerKey: nope.key\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
        .args(["gateway", "--config"])
        .arg(&config)
        .args([
            "--inbound-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.crt"), "{err}");
}

#[test]
fn a_sub_second_certificate_lifetime_is_a_usage_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mc"))
        .args([
            "gateway",
            "--cert-lifetime",
            "10ms",
            "--config",
            "unused.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cert-lifetime"));
}
